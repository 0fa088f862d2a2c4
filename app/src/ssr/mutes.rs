//! Muted conversations: no notification and no sound for them, on any device. Kept per person as
//! `u{id}` / `g{id}` keys (see [`ConversationRef::key`]).

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::AppError;
use crate::model::ConversationRef;
use crate::ssr::entities::{conversation_mutes as mutes, users};

/// Mutes (or unmutes) `conversation` for `me`; the answer is whether it is muted now. Only a
/// conversation I can open may be muted: another person, or a group I am in (404 otherwise).
pub async fn set_muted(
    db: &DatabaseConnection,
    me: i64,
    conversation: ConversationRef,
    muted: bool,
) -> Result<bool, AppError> {
    let mine = match conversation {
        ConversationRef::Direct(peer) => peer != me && users::Entity::find_by_id(peer).one(db).await?.is_some(),
        ConversationRef::Group(room) => crate::ssr::groups::is_member(db, me, room).await?,
    };
    if !mine {
        return Err(AppError::not_found("no such conversation"));
    }
    let key = conversation.key();
    if muted {
        let row = mutes::ActiveModel { user_id: Set(me), conversation: Set(key), created_at: Set(Utc::now()) };
        // Muting twice is muting once.
        mutes::Entity::insert(row).on_conflict_do_nothing().exec(db).await?;
    } else {
        mutes::Entity::delete_many()
            .filter(mutes::Column::UserId.eq(me))
            .filter(mutes::Column::Conversation.eq(key))
            .exec(db)
            .await?;
    }
    Ok(muted)
}

/// `EXISTS (...)`, for a column of a list's query: whether `me` muted the conversation whose key
/// is `key`, an expression of the outer query (`'u' || users.id`, say). A lookup in the table's
/// primary key, asked in the same statement as the row it marks.
pub(crate) fn is_muted(me: i64, key: Expr) -> Expr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(mutes::Entity)
            .and_where(Expr::col((mutes::Entity, mutes::Column::UserId)).eq(me))
            .and_where(Expr::col((mutes::Entity, mutes::Column::Conversation)).eq(key))
            .to_owned(),
    )
}

// Whether one conversation is muted is read with the rest of its page's head:
// [`crate::ssr::messages::page_head`].

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::ssr::test_support::{for_each_database, user};

    #[tokio::test]
    async fn a_mute_is_kept_per_person_and_conversation_and_only_for_mine() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let room = crate::ssr::groups::create(&db, &alice, "Team", &[bob.id]).await.unwrap().group.id;

            assert!(set_muted(&db, alice.id, ConversationRef::Direct(bob.id), true).await.unwrap());
            assert!(set_muted(&db, alice.id, ConversationRef::Direct(bob.id), true).await.unwrap(), "twice is once");
            assert!(set_muted(&db, alice.id, ConversationRef::Group(room), true).await.unwrap());
            let expected: HashSet<_> = [ConversationRef::Direct(bob.id), ConversationRef::Group(room)].into();
            // The contact list marks them, found by a search too.
            let marked = |me: i64, search: Option<&'static str>| {
                let db = db.clone();
                async move {
                    let list = crate::ssr::conversations::contacts(&db, me, search).await.unwrap();
                    list.people.iter().filter(|c| c.muted).map(|c| c.conversation()).collect::<HashSet<_>>()
                }
            };
            assert_eq!(marked(alice.id, None).await, expected);
            assert_eq!(marked(alice.id, Some("bo")).await, HashSet::from([ConversationRef::Direct(bob.id)]));
            assert!(marked(bob.id, None).await.is_empty(), "Bob's side is his own");
            let is_muted = |c| {
                let db = db.clone();
                async move { crate::ssr::messages::page_head(&db, alice.id, c).await.unwrap().muted }
            };
            assert!(is_muted(ConversationRef::Group(room)).await);

            assert!(!set_muted(&db, alice.id, ConversationRef::Direct(bob.id), false).await.unwrap());
            assert!(!is_muted(ConversationRef::Direct(bob.id)).await);
            assert!(is_muted(ConversationRef::Group(room)).await, "the other one stays muted");

            // Not mine: a group I am not in, myself, nobody.
            let not_found = |r: Result<bool, AppError>| matches!(r, Err(AppError::NotFound { .. }));
            assert!(not_found(set_muted(&db, carol.id, ConversationRef::Group(room), true).await));
            assert!(not_found(set_muted(&db, carol.id, ConversationRef::Direct(carol.id), true).await));
            assert!(not_found(set_muted(&db, carol.id, ConversationRef::Direct(999_999), true).await));
        })
        .await;
    }
}
