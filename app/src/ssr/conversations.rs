//! One-to-one conversations: the contact list, history pages, sending and read receipts.
//! Every function takes the asking user's id and answers only about that user's conversations.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr, Order, Query, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, Statement,
};

use crate::error::AppError;
use crate::model::{
    Contact, ContactKind, ContactPage, ConversationPage, ConversationRef, ConversationUpdate, LastMessage, PAGE_MAX,
    Peer, UNREAD_COUNTED,
};
use crate::ssr::entities::{messages, users};
pub use crate::ssr::messages::Sent;
use crate::ssr::messages::{self as messages_service, Destination, Draft, NewMessage};
use crate::ssr::rate_limit::SlidingWindow;
use crate::ssr::{mutes, online};
use crate::validation;

/// Messages between `me` and `peer`, in either direction (one-to-one only; tombstones too).
fn between(me: i64, peer: i64) -> Condition {
    Condition::any()
        .add(messages::Column::UserId.eq(me).and(messages::Column::RecipientId.eq(peer)))
        .add(messages::Column::UserId.eq(peer).and(messages::Column::RecipientId.eq(me)))
}

/// Conversations the contact list shows, newest first (older ones are found by searching).
pub const CONVERSATIONS_SHOWN: usize = 200;
/// People you have not talked to that the list shows, newest members first.
pub const NEWCOMERS_SHOWN: u64 = 20;
/// People a search returns at most.
pub const SEARCH_RESULTS: u64 = 50;

/// The contact list of `me`. Without a search: your conversations, newest first, then the newest
/// members you have not talked to yet. With one: people whose name contains it (any case),
/// conversations first, then by name. Each with the newest message and how many of theirs you
/// have not read. Its size never depends on how many accounts exist.
pub async fn contacts(db: &impl ConnectionTrait, me: i64, search: Option<&str>) -> Result<ContactPage, AppError> {
    let search = validation::search(search)?;

    // Per peer, the newest message id and how many of theirs I have not read.
    let per_peer: Vec<(i64, i64, i64)> = db
        .query_all_raw(per_peer(db.get_database_backend(), me))
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "peer")?, row.try_get("", "last_id")?, row.try_get("", "unread")?)))
        .collect::<Result<_, sea_orm::DbErr>>()?;
    let last_id: HashMap<i64, i64> = per_peer.iter().map(|&(peer, last, _)| (peer, last)).collect();
    let unread: HashMap<i64, i64> =
        per_peer.iter().filter(|&&(_, _, n)| n > 0).map(|&(peer, _, n)| (peer, n)).collect();

    // The people shown, each with the list's marks (online, muted) asked in the same statement,
    // and for those I talked with the newest message between us.
    let shown: Vec<Shown> = match &search {
        Some(needle) => {
            let pattern = |text: &str| LikeExpr::new(format!("%{}%", escape_like(text))).escape('\\');
            // lower() folds every letter on PostgreSQL but only ASCII on SQLite, so the name as
            // typed is tried too.
            let name = Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(users::Column::Name))).like(pattern(&needle.to_lowercase())))
                .add(users::Column::Name.like(pattern(needle)));
            let found = users::Entity::find()
                .select_only()
                .columns([users::Column::Id, users::Column::Name])
                .filter(users::Column::Id.ne(me))
                .filter(name)
                .order_by_asc(users::Column::Name)
                .limit(SEARCH_RESULTS);
            let mut found = Shown::read(db, Shown::marked(me, found, users::Column::Name, Order::Asc)).await?;
            // The newest message with each person found, for those I talked with.
            let newest: Vec<i64> = found.iter().filter_map(|p| last_id.get(&p.id).copied()).collect();
            let mut newest: HashMap<i64, messages::Model> = if newest.is_empty() {
                HashMap::new()
            } else {
                let rows = messages::Entity::find().filter(messages::Column::Id.is_in(newest)).all(db).await?;
                rows.into_iter().map(|m| (m.id, m)).collect()
            };
            for person in &mut found {
                person.last = last_id.get(&person.id).and_then(|id| newest.remove(id)).map(|m| {
                    let last = person_last(me, m.user_id, m.body, m.created_at, m.deleted_at.is_some());
                    (m.id, last)
                });
            }
            found
        }
        None => {
            let mut talked: Vec<i64> = last_id.values().copied().collect();
            talked.sort_unstable_by_key(|&id| std::cmp::Reverse(id));
            talked.truncate(CONVERSATIONS_SHOWN);
            let mut shown = if talked.is_empty() { Vec::new() } else { Shown::read_talked(db, me, talked).await? };
            let newcomers = users::Entity::find()
                .select_only()
                .columns([users::Column::Id, users::Column::Name])
                .filter(users::Column::Id.ne(me))
                .filter(users::Column::Id.is_not_in(last_id.keys().copied()))
                .order_by_desc(users::Column::Id)
                .limit(NEWCOMERS_SHOWN);
            shown.extend(Shown::read(db, Shown::marked(me, newcomers, users::Column::Id, Order::Desc)).await?);
            shown
        }
    };

    let mut people: Vec<Contact> = shown
        .into_iter()
        .map(|person| Contact {
            id: person.id,
            kind: ContactKind::Person,
            unread: unread.get(&person.id).copied().unwrap_or(0),
            muted: person.muted,
            // Online marks only for my circle: the people I talked with, and my groups' members.
            online: person.online && (last_id.contains_key(&person.id) || person.fellow),
            last_message_id: person.last.as_ref().map(|&(id, _)| id),
            last_message: person.last.map(|(_, last)| last),
            name: person.name,
        })
        .collect();
    // Groups I am (or was) in share the list; the title counts their unread messages too.
    let groups = crate::ssr::groups::list(db, me, search.as_deref()).await?;
    let group_unread: i64 = groups.iter().map(|g| g.unread).sum();
    people.extend(groups);
    // Newest conversation first; people without one keep their order (stable sort).
    people.sort_by_key(|c| std::cmp::Reverse(c.last_message_id));
    Ok(ContactPage { people, unread: unread.values().sum::<i64>() + group_unread })
}

/// `SELECT peer, last_id, unread`: one row per person `me` has exchanged direct messages with,
/// with the newest message between us and how many of theirs I have not read.
///
/// Its cost is a few index seeks per person, however long the conversations are: the people come
/// from [`partners_cte`]; each newest message is the last entry of its direction's range, and the
/// unread count reads only the unread rows, and at most [`UNREAD_COUNTED`] of them. The only parameter is in WHERE terms: SQLite prepares
/// a statement again at every run when a parameter sits in an expression it must match (a GROUP
/// BY or a CASE over `me`).
pub(crate) fn per_peer(backend: DbBackend, me: i64) -> Statement {
    let (me_param, greatest) = match backend {
        DbBackend::Postgres => ("$1", "GREATEST"),
        _ => ("?1", "MAX"),
    };
    let sql = format!(
        "{partners} \
         SELECT peer, \
           {greatest}(COALESCE((SELECT MAX(m.id) FROM messages m \
               WHERE m.user_id = {me_param} AND m.recipient_id = peers.peer), 0), \
             COALESCE((SELECT MAX(m.id) FROM messages m \
               WHERE m.user_id = peers.peer AND m.recipient_id = {me_param}), 0)) AS last_id, \
           (SELECT COUNT(*) FROM (SELECT 1 FROM messages m \
             WHERE m.recipient_id = {me_param} AND m.user_id = peers.peer \
             AND m.read_at IS NULL AND m.deleted_at IS NULL LIMIT {counted}) AS u) AS unread \
         FROM peers",
        partners = partners_cte(me_param),
        counted = UNREAD_COUNTED,
    );
    Statement::from_sql_and_values(backend, sql, [me.into()])
}

/// `SELECT peer`: the people `me` has exchanged direct messages with, and nothing more about them
/// (for whom `me`'s online status concerns).
pub(crate) fn partners(backend: DbBackend, me: i64) -> Statement {
    let me_param = if backend == DbBackend::Postgres { "$1" } else { "?1" };
    let sql = format!("{} SELECT peer FROM peers", partners_cte(me_param));
    Statement::from_sql_and_values(backend, sql, [me.into()])
}

/// `WITH RECURSIVE … peers(peer)`: the people `me` (`me_param`) wrote to or got a direct message
/// from, found by skipping from one person to the next in an index (to whom I wrote, in
/// `(user_id, recipient_id, id)`; who wrote to me, in `(recipient_id, user_id, read_at)`): a seek
/// per person, not a read of every message I ever sent or received.
fn partners_cte(me_param: &str) -> String {
    format!(
        "WITH RECURSIVE \
         sent(peer) AS (SELECT MIN(recipient_id) FROM messages WHERE user_id = {me_param} \
           UNION ALL SELECT (SELECT MIN(m.recipient_id) FROM messages m \
             WHERE m.user_id = {me_param} AND m.recipient_id > sent.peer) \
           FROM sent WHERE sent.peer IS NOT NULL), \
         got(peer) AS (SELECT MIN(user_id) FROM messages WHERE recipient_id = {me_param} \
           UNION ALL SELECT (SELECT MIN(m.user_id) FROM messages m \
             WHERE m.recipient_id = {me_param} AND m.user_id > got.peer) \
           FROM got WHERE got.peer IS NOT NULL), \
         peers(peer) AS (SELECT peer FROM sent WHERE peer IS NOT NULL \
           UNION SELECT peer FROM got WHERE peer IS NOT NULL)"
    )
}

/// A person the contact list shows, with its marks and, if we talked, our newest message.
struct Shown {
    id: i64,
    name: String,
    last: Option<(i64, LastMessage)>,
    /// Online now; whether the reader may know it is [`contacts`]'s to decide.
    online: bool,
    /// In a group with the reader now (asked only of people the reader has not talked with).
    fellow: bool,
    muted: bool,
}

impl Shown {
    /// `SELECT id, name, online, fellow, muted` for the people `people` selects (`id` and `name`
    /// of users), in the same order. The marks are asked in an outer query, so that they are
    /// looked up for the rows shown, not for every row the inner one sorts.
    fn marked(me: i64, people: Select<users::Entity>, order: users::Column, direction: Order) -> SelectStatement {
        let person = Alias::new("person");
        let id = || Expr::col((person.clone(), users::Column::Id));
        Query::select()
            .column((person.clone(), users::Column::Id))
            .column((person.clone(), users::Column::Name))
            .expr_as(online::is_online(id()), "online")
            .expr_as(online::is_fellow(me, id()), "fellow")
            .expr_as(mutes::is_muted(me, person_key("person")), "muted")
            .from_subquery(people.into_query(), person.clone())
            .order_by((person, order), direction)
            .to_owned()
    }

    async fn read(db: &impl ConnectionTrait, query: SelectStatement) -> Result<Vec<Self>, AppError> {
        let rows = db.query_all(&query).await?;
        rows.iter()
            .map(|row| {
                Ok(Self {
                    id: row.try_get("", "id")?,
                    name: row.try_get("", "name")?,
                    last: None,
                    online: row.try_get("", "online")?,
                    fellow: row.try_get("", "fellow")?,
                    muted: row.try_get("", "muted")?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(AppError::from)
    }

    /// The people of the conversations whose newest messages are `last_ids`, each with that
    /// message and the list's marks: one statement, from the messages to their people.
    async fn read_talked(db: &impl ConnectionTrait, me: i64, last_ids: Vec<i64>) -> Result<Vec<Self>, AppError> {
        use messages::Column as M;
        let m = |column: M| Expr::col((messages::Entity, column));
        let person_id = || Expr::col((users::Entity, users::Column::Id));
        let peer = Expr::case(m(M::UserId).eq(me), m(M::RecipientId)).finally(m(M::UserId));
        let query = Query::select()
            .expr_as(person_id(), "id")
            .expr_as(Expr::col((users::Entity, users::Column::Name)), "name")
            .expr_as(online::is_online(person_id()), "online")
            .expr_as(mutes::is_muted(me, person_key("users")), "muted")
            .expr_as(m(M::Id), "last_id")
            .expr_as(m(M::UserId), "last_sender")
            .expr_as(m(M::Body), "last_body")
            .expr_as(m(M::CreatedAt), "last_at")
            .expr_as(m(M::DeletedAt), "last_deleted_at")
            .from(messages::Entity)
            .inner_join(users::Entity, person_id().eq(peer))
            .and_where(m(M::Id).is_in(last_ids))
            .to_owned();
        let rows = db.query_all(&query).await?;
        rows.iter()
            .map(|row| {
                let deleted: Option<DateTime<Utc>> = row.try_get("", "last_deleted_at")?;
                let last = person_last(
                    me,
                    row.try_get("", "last_sender")?,
                    row.try_get("", "last_body")?,
                    row.try_get("", "last_at")?,
                    deleted.is_some(),
                );
                Ok(Self {
                    id: row.try_get("", "id")?,
                    name: row.try_get("", "name")?,
                    last: Some((row.try_get("", "last_id")?, last)),
                    online: row.try_get("", "online")?,
                    fellow: false,
                    muted: row.try_get("", "muted")?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(AppError::from)
    }
}

/// The key of the one-to-one conversation with the person in `table`'s `id` column, in SQL
/// (`'u' || person.id`, as [`ConversationRef::key`] spells it).
fn person_key(table: &str) -> Expr {
    Expr::cust(format!("'u' || {table}.id"))
}

/// A one-to-one conversation's newest message as the list shows it.
fn person_last(me: i64, sender: i64, body: String, created_at: DateTime<Utc>, deleted: bool) -> LastMessage {
    LastMessage {
        body: if deleted { String::new() } else { body },
        from_me: sender == me,
        created_at,
        sender_name: None,
        kind: crate::model::MessageKind::Text,
        deleted,
    }
}

/// `text` with LIKE's wildcards (and the escape character itself) escaped by a backslash.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

async fn peer(db: &impl ConnectionTrait, me: i64, peer_id: i64) -> Result<users::Model, AppError> {
    match users::Entity::find_by_id(peer_id).one(db).await? {
        Some(user) if user.id != me => Ok(user),
        _ => Err(AppError::not_found("no such conversation")),
    }
}

/// One page of the conversation between `me` and `peer_id`, oldest first: the newest `limit`
/// messages, or the newest `limit` before `before_id`.
pub async fn conversation(
    db: &impl ConnectionTrait,
    me: i64,
    peer_id: i64,
    before_id: Option<i64>,
    limit: Option<u32>,
) -> Result<ConversationPage, AppError> {
    page(db, me, peer_id, before_id, validation::page_limit(limit)?).await
}

/// The newest page of the conversation with `peer_id` that reaches back to message `at` (a search
/// hit), with a few older ones before it (see [`messages_service::reach`]).
pub async fn conversation_at(
    db: &impl ConnectionTrait,
    me: i64,
    peer_id: i64,
    at: i64,
) -> Result<ConversationPage, AppError> {
    let limit = messages_service::reach(db, between(me, peer_id), at).await?;
    page(db, me, peer_id, None, limit).await
}

async fn page(
    db: &impl ConnectionTrait,
    me: i64,
    peer_id: i64,
    before_id: Option<i64>,
    limit: u64,
) -> Result<ConversationPage, AppError> {
    // Read before the rows: a change made meanwhile is sent again by the next catch-up, never lost.
    let head = messages_service::page_head(db, me, ConversationRef::Direct(peer_id)).await?;
    let peer = Peer {
        id: peer_id,
        name: head.peer_name.filter(|_| peer_id != me).ok_or_else(|| AppError::not_found("no such conversation"))?,
    };
    // One extra row tells whether an older page exists.
    let mut rows = newest_page(me, peer.id, before_id, limit + 1).all(db).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    // Every name on a one-to-one page is one of ours: nothing to look up. (A name not read is left
    // to the lookup, never taken as empty.)
    let mut known = HashMap::from([(peer.id, peer.name.clone())]);
    known.extend(head.reader_name.map(|name| (me, name)));
    Ok(ConversationPage {
        messages: messages_service::present_among(db, rows, known).await?,
        peer,
        group: None,
        has_more,
        compose_id: new_client_id(),
        changes_up_to: head.changes_up_to,
        muted: head.muted,
    })
}

/// The newest `limit` messages between `me` and `peer` (older than `before_id` if given), newest
/// first.
fn newest_page(me: i64, peer: i64, before_id: Option<i64>, limit: u64) -> Select<messages::Entity> {
    messages::Entity::find()
        .filter(messages::Column::Id.in_subquery(newest_between(me, peer, before_id, limit)))
        .order_by_desc(messages::Column::Id)
        .limit(limit)
}

/// `SELECT id`: the newest `limit` messages from `me` to `peer` and the newest `limit` from `peer`
/// to `me` (older than `before_id` if given), each read newest first from `(user_id, recipient_id,
/// id)` and stopped after `limit`: the newest `limit` of the conversation are among them. A page
/// costs the same however long the conversation is; asking for either direction with an `OR`
/// makes both databases gather all of it and sort.
fn newest_between(me: i64, peer: i64, before_id: Option<i64>, limit: u64) -> SelectStatement {
    let direction = |from: i64, to: i64, name: &str| {
        let mut newest = Query::select()
            .column(messages::Column::Id)
            .from(messages::Entity)
            .and_where(messages::Column::UserId.eq(from))
            .and_where(messages::Column::RecipientId.eq(to))
            .to_owned();
        if let Some(before_id) = before_id {
            newest.and_where(messages::Column::Id.lt(before_id));
        }
        newest.order_by(messages::Column::Id, Order::Desc).limit(limit);
        Query::select().column(messages::Column::Id).from_subquery(newest, Alias::new(name)).to_owned()
    };
    let mut ids = direction(me, peer, "mine");
    ids.union(UnionType::All, direction(peer, me, "theirs"));
    ids
}

/// What changed in the conversation with `peer_id` since the browser's newest message `after_id`
/// and its change cursor `changes_after`: the messages after it (oldest first, at most
/// [`PAGE_MAX`]), the ones up to it edited, deleted or reacted to since, and how far the peer has
/// read mine. A tab calls this after every (re)subscription, so a gap in live events never loses
/// anything.
pub async fn conversation_since(
    db: &impl ConnectionTrait,
    me: i64,
    peer_id: i64,
    after_id: i64,
    changes_after: i64,
) -> Result<ConversationUpdate, AppError> {
    let peer = peer(db, me, peer_id).await?;
    let (changed, changes_up_to, more_changes) =
        messages_service::changed_since(db, between(me, peer.id), changes_after, after_id).await?;
    let limit = u64::from(PAGE_MAX);
    let mut rows = messages::Entity::find()
        .filter(between(me, peer.id))
        .filter(messages::Column::Id.gt(after_id))
        .order_by_asc(messages::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let newest_read = messages::Entity::find()
        .filter(messages::Column::UserId.eq(me))
        .filter(messages::Column::RecipientId.eq(peer.id))
        .filter(messages::Column::ReadAt.is_not_null())
        .order_by_desc(messages::Column::Id)
        .one(db)
        .await?;
    Ok(ConversationUpdate {
        messages: messages_service::present(db, rows).await?,
        has_more,
        peer_read_up_to: newest_read.as_ref().map(|m| m.id),
        peer_read_at: newest_read.and_then(|m| m.read_at),
        group: None,
        changed,
        changes_up_to,
        more_changes,
    })
}

/// A random UUID (version 4), as browsers make them for `client_id`.
pub fn new_client_id() -> String {
    crate::model::uuid_v4(rand::random())
}

/// Sends `body` from `me` to `recipient_id`, answering message `reply_to_id` if given.
/// `(me, client_id)` is an idempotency key: a repeat, even a concurrent one, returns the stored
/// message and never stores a second.
pub async fn send(
    db: &DatabaseConnection,
    limiter: &SlidingWindow,
    me: &users::Model,
    recipient_id: i64,
    body: &str,
    client_id: &str,
    reply_to_id: Option<i64>,
) -> Result<Sent, AppError> {
    send_draft(db, limiter, me, recipient_id, Draft { body, client_id, reply_to_id, attachments: &[] }).await
}

/// As [`send`], with files: `draft.attachments` are `me`'s uploads, and the text may then be empty.
pub async fn send_draft(
    db: &DatabaseConnection,
    limiter: &SlidingWindow,
    me: &users::Model,
    recipient_id: i64,
    draft: Draft<'_>,
) -> Result<Sent, AppError> {
    let (me, sender_name) = (me.id, me.name.as_str());
    let client_id = validation::client_id(draft.client_id)?;
    let to = Destination::Person(recipient_id);
    let attempt = async {
        messages_service::checked_body(draft.body, draft.attachments)?;
        if recipient_id == me {
            return Err(AppError::invalid("recipient_id", "you cannot send a message to yourself"));
        }
        let Draft { body, reply_to_id, attachments, .. } = draft;
        let new = NewMessage { me, sender_name, to, body, client_id: &client_id, reply_to_id, attachments };
        messages_service::store(db, limiter, new).await
    };
    messages_service::or_already_sent(db, me, to, &client_id, attempt.await).await
}

/// Marks as read, at `at`, the unread messages from `peer_id` to `me` with id ≤ `up_to_id`; returns
/// how many changed. Never touches messages `me` sent, nor anyone else's conversations.
pub async fn mark_as_read(
    db: &DatabaseConnection,
    me: i64,
    peer_id: i64,
    up_to_id: i64,
    at: DateTime<Utc>,
) -> Result<u64, AppError> {
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let result = messages::Entity::update_many()
        .col_expr(messages::Column::ReadAt, Expr::value(at))
        .filter(messages::Column::UserId.eq(peer_id))
        .filter(messages::Column::RecipientId.eq(me))
        .filter(messages::Column::Id.lte(up_to_id))
        .filter(messages::Column::ReadAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {

    use sea_orm::PaginatorTrait;

    use super::*;
    use crate::ssr::groups;
    use crate::ssr::rate_limit::message_sends;
    use crate::ssr::test_support::{for_each_database, message, unlimited, user};

    fn ids(page: &ConversationPage) -> Vec<i64> {
        page.messages.iter().map(|m| m.id).collect()
    }

    #[tokio::test]
    async fn a_one_to_one_page_names_its_two_people_everywhere() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let hi = send(&db, &limiter, &alice, bob.id, "hi", "c-1", None).await.unwrap().message;
            send(&db, &limiter, &bob, alice.id, "hey", "c-2", Some(hi.id)).await.unwrap();
            crate::ssr::messages::react(&db, bob.id, hi.id, "👍").await.unwrap();
            crate::ssr::messages::react(&db, alice.id, hi.id, "👍").await.unwrap();
            for (me, peer) in [(&alice, &bob), (&bob, &alice)] {
                let page = conversation(&db, me.id, peer.id, None, None).await.unwrap();
                let senders: Vec<&str> = page.messages.iter().map(|m| m.sender_name.as_str()).collect();
                assert_eq!(senders, ["alice", "bob"]);
                assert_eq!(page.messages[0].reactions[0].names, ["bob", "alice"]);
                assert!(page.messages[1].reactions.is_empty());
                assert_eq!(page.messages[1].reply_to.as_ref().unwrap().sender_name, "alice");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_page_opened_at_a_message_reaches_back_to_it_with_ten_before() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let mut sent = Vec::new();
            for n in 0..80 {
                sent.push(message(&db, alice.id, bob.id, &format!("m{n}")).await.id);
            }
            let elsewhere = message(&db, carol.id, alice.id, "not here").await.id;
            // 60 messages from the hit on, and 10 before it.
            let page = conversation_at(&db, alice.id, bob.id, sent[20]).await.unwrap();
            assert_eq!(ids(&page), sent[10..]);
            assert!(page.has_more);
            // A recent hit: a normal page (50).
            assert_eq!(ids(&conversation_at(&db, alice.id, bob.id, sent[75]).await.unwrap()), sent[30..]);
            // Another conversation's message changes nothing; nobody else's conversation holds the hit.
            assert_eq!(ids(&conversation_at(&db, alice.id, bob.id, elsewhere).await.unwrap()), sent[30..]);
            assert!(matches!(conversation_at(&db, carol.id, bob.id, sent[20]).await.map(|p| p.messages.len()), Ok(0)));
        })
        .await;
    }

    fn field_of(err: &AppError) -> Option<&str> {
        match err {
            AppError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// How many messages `sender` has stored, whatever their recipient.
    async fn stored_by(db: &DatabaseConnection, sender: i64) -> u64 {
        messages::Entity::find().filter(messages::Column::UserId.eq(sender)).count(db).await.unwrap()
    }

    /// `(name, unread, last message body, from me)` for each contact, in list order.
    async fn contact_list(db: &DatabaseConnection, me: i64) -> Vec<(String, i64, Option<(String, bool)>)> {
        contacts(db, me, None)
            .await
            .unwrap()
            .people
            .into_iter()
            .map(|c| (c.name, c.unread, c.last_message.map(|m| (m.body, m.from_me))))
            .collect()
    }

    fn row(name: &str, unread: i64, last: Option<(&str, bool)>) -> (String, i64, Option<(String, bool)>) {
        (name.to_owned(), unread, last.map(|(body, from_me)| (body.to_owned(), from_me)))
    }

    #[tokio::test]
    async fn pages_end_exactly_at_the_oldest_message() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let mut sent = Vec::new();
            for i in 0..50 {
                let (from, to) = if i % 3 == 0 { (bob.id, alice.id) } else { (alice.id, bob.id) };
                sent.push(message(&db, from, to, &format!("m{i}")).await.id);
                // Other pairs talk at the same time, with and without Alice or Bob in them.
                if i % 10 == 0 {
                    message(&db, carol.id, bob.id, "carol to bob").await;
                    message(&db, alice.id, carol.id, "alice to carol").await;
                }
            }

            // Exactly one default page: all of it, and nothing older.
            let page = conversation(&db, alice.id, bob.id, None, None).await.unwrap();
            assert_eq!(page.peer, Peer { id: bob.id, name: "bob".into() });
            assert_eq!(ids(&page), sent, "oldest first, no other pair's messages");
            assert_eq!(page.messages[0].body, "m0");
            assert_eq!(page.messages[49].body, "m49");
            assert!(!page.has_more);
            // Bob sees the very same conversation.
            let bobs = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            assert_eq!(ids(&bobs), sent);
            assert!(!bobs.has_more);

            // One more: the newest 50, and a second page with the one left.
            sent.push(message(&db, alice.id, bob.id, "m50").await.id);
            let newest = conversation(&db, alice.id, bob.id, None, None).await.unwrap();
            assert_eq!(ids(&newest), sent[1..]);
            assert_eq!(newest.messages.last().unwrap().body, "m50");
            assert!(newest.has_more);
            let older = conversation(&db, alice.id, bob.id, Some(newest.messages[0].id), None).await.unwrap();
            assert_eq!(ids(&older), [sent[0]]);
            assert!(!older.has_more);
            let before_oldest = conversation(&db, alice.id, bob.id, Some(sent[0]), None).await.unwrap();
            assert!(before_oldest.messages.is_empty());
            assert!(!before_oldest.has_more);

            // Explicit limits: both bounds allowed, just outside refused.
            let one = conversation(&db, alice.id, bob.id, None, Some(1)).await.unwrap();
            assert_eq!(ids(&one), [sent[50]]);
            assert!(one.has_more);
            let hundred = conversation(&db, alice.id, bob.id, None, Some(100)).await.unwrap();
            assert_eq!(ids(&hundred), sent);
            assert!(!hundred.has_more);
            for limit in [0, 101] {
                let err = conversation(&db, alice.id, bob.id, None, Some(limit)).await.unwrap_err();
                assert_eq!(field_of(&err), Some("limit"), "limit {limit}: {err:?}");
                assert_eq!(err.status(), 400);
            }

            // The third pairs only ever see their own messages.
            let carol_bob = conversation(&db, carol.id, bob.id, None, None).await.unwrap();
            assert_eq!(carol_bob.messages.len(), 5);
            assert!(carol_bob.messages.iter().all(|m| m.body == "carol to bob"));
            let carol_alice = conversation(&db, carol.id, alice.id, None, None).await.unwrap();
            assert_eq!(carol_alice.messages.len(), 5);
            assert!(carol_alice.messages.iter().all(|m| m.body == "alice to carol"));
        })
        .await;
    }

    #[tokio::test]
    async fn a_conversation_needs_another_existing_person() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let err = conversation(&db, alice.id, alice.id, None, None).await.unwrap_err();
            assert!(matches!(err, AppError::NotFound { .. }), "{err:?}");
            let err = conversation(&db, alice.id, alice.id + 1000, None, None).await.unwrap_err();
            assert!(matches!(err, AppError::NotFound { .. }), "{err:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn contacts_count_unread_per_sender_and_list_recent_conversations_first() {
        for_each_database(|db| async move {
            // Created in an order that is neither alphabetical nor the conversation order.
            let alice = user(&db, "alice").await;
            let zoe = user(&db, "zoe").await;
            let carol = user(&db, "carol").await;
            let bob = user(&db, "bob").await;
            let dave = user(&db, "dave").await;
            let erin = user(&db, "erin").await;

            // Nobody has talked yet: everyone else, newest member first, nothing unread.
            assert_eq!(
                contact_list(&db, alice.id).await,
                [
                    row("erin", 0, None),
                    row("dave", 0, None),
                    row("bob", 0, None),
                    row("carol", 0, None),
                    row("zoe", 0, None)
                ]
            );

            message(&db, bob.id, alice.id, "hi alice").await;
            message(&db, carol.id, alice.id, "hello from carol").await;
            message(&db, bob.id, alice.id, "are you there?").await;
            message(&db, alice.id, dave.id, "hi dave").await;
            // Other people's conversations count for them, never for Alice.
            message(&db, bob.id, carol.id, "psst").await;
            message(&db, erin.id, zoe.id, "hi zoe").await;

            assert_eq!(
                contact_list(&db, alice.id).await,
                [
                    row("dave", 0, Some(("hi dave", true))),
                    row("bob", 2, Some(("are you there?", false))),
                    row("carol", 1, Some(("hello from carol", false))),
                    row("erin", 0, None),
                    row("zoe", 0, None)
                ]
            );

            // Alice answers Bob: he moves to the top; her reply is not unread for her.
            let reply = message(&db, alice.id, bob.id, "yes!").await;
            let page = contacts(&db, alice.id, None).await.unwrap();
            assert_eq!(page.unread, 3);
            let list = page.people;
            assert!(list.iter().all(|c| c.id != alice.id), "you are not your own contact");
            assert_eq!((list[0].id, list[0].last_message_id), (bob.id, Some(reply.id)));
            assert_eq!(list[0].last_message.as_ref().unwrap().created_at, reply.created_at);
            assert_eq!(
                contact_list(&db, alice.id).await,
                [
                    row("bob", 2, Some(("yes!", true))),
                    row("dave", 0, Some(("hi dave", true))),
                    row("carol", 1, Some(("hello from carol", false))),
                    row("erin", 0, None),
                    row("zoe", 0, None)
                ]
            );

            // Bob's side: one unread from Alice; the three he sent are not unread for him.
            assert_eq!(
                contact_list(&db, bob.id).await,
                [
                    row("alice", 1, Some(("yes!", false))),
                    row("carol", 0, Some(("psst", true))),
                    row("erin", 0, None),
                    row("dave", 0, None),
                    row("zoe", 0, None)
                ]
            );
            // Carol has one unread, from Bob; what she sent Alice is not unread for her.
            assert_eq!(
                contact_list(&db, carol.id).await,
                [
                    row("bob", 1, Some(("psst", false))),
                    row("alice", 0, Some(("hello from carol", true))),
                    row("erin", 0, None),
                    row("dave", 0, None),
                    row("zoe", 0, None)
                ]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn the_contact_list_counts_one_to_one_messages_only_and_no_deleted_one_as_unread() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            // People with ids on both sides of Alice's partners', written to in either direction
            // only, in an order unlike their ids.
            let mut partners = Vec::new();
            for n in 0..12 {
                partners.push(user(&db, &format!("p{n:02}")).await);
            }
            let dana = user(&db, "dana").await;
            let room = groups::create(&db, &alice, "Team", &[bob.id, carol.id]).await.unwrap().group.id;
            groups::send(&db, &unlimited(), &alice, room, "to the team", &new_client_id(), None).await.unwrap();
            groups::send(&db, &unlimited(), &bob, room, "team reply", &new_client_id(), None).await.unwrap();
            for (n, partner) in partners.iter().enumerate().rev() {
                if n % 2 == 0 {
                    message(&db, alice.id, partner.id, &format!("to {}", partner.name)).await;
                } else {
                    message(&db, partner.id, alice.id, &format!("from {}", partner.name)).await;
                }
            }
            message(&db, bob.id, alice.id, "one").await;
            let gone = message(&db, bob.id, alice.id, "two, then deleted").await;
            crate::ssr::messages::delete(&db, None, bob.id, gone.id).await.unwrap();
            message(&db, alice.id, dana.id, "hi dana").await;

            let page = contacts(&db, alice.id, None).await.unwrap();
            let people: Vec<(&str, i64)> = page
                .people
                .iter()
                .filter(|c| matches!(c.kind, ContactKind::Person))
                .map(|c| (c.name.as_str(), c.unread))
                .collect();
            // Newest conversation first; the group's messages make no one a partner; Carol, in the
            // group only, comes after the partners; the deleted message is not unread.
            let mut expected = vec![("dana", 0), ("bob", 1)];
            expected.extend(partners.iter().enumerate().map(|(n, p)| (p.name.as_str(), (n % 2) as i64)));
            expected.push(("carol", 0));
            assert_eq!(people, expected);
            let bobs = page.people.iter().find(|c| c.name == "bob").unwrap();
            assert_eq!(bobs.last_message.as_ref().map(|m| (m.body.as_str(), m.deleted)), Some(("", true)));
            // The title's count: Bob's one and the six partners who wrote, and Bob's group reply.
            assert_eq!(page.unread, 1 + 6 + 1);
        })
        .await;
    }

    /// A conversation's unread messages are counted up to [`UNREAD_COUNTED`] ("99+"), so a page
    /// opened after thousands of them reads a hundred, not thousands; below it the count is exact.
    #[tokio::test]
    async fn unread_counts_stop_at_a_hundred_and_are_exact_below() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let room = groups::create(&db, &alice, "Busy", &[bob.id]).await.unwrap().group.id;
            let mut from_bob = Vec::new();
            for n in 0..UNREAD_COUNTED + 30 {
                from_bob.push(message(&db, bob.id, alice.id, &format!("m{n}")).await);
            }
            for n in 0..UNREAD_COUNTED + 5 {
                groups::send(&db, &unlimited(), &bob, room, &format!("g{n}"), &new_client_id(), None).await.unwrap();
            }
            message(&db, carol.id, alice.id, "just one").await;

            let unread_of =
                |page: &ContactPage, name: &str| page.people.iter().find(|c| c.name == name).unwrap().unread;
            let page = contacts(&db, alice.id, None).await.unwrap();
            assert_eq!(
                (unread_of(&page, "bob"), unread_of(&page, "Busy"), unread_of(&page, "carol")),
                (UNREAD_COUNTED, UNREAD_COUNTED, 1)
            );
            assert_eq!(page.unread, 2 * UNREAD_COUNTED + 1);
            assert_eq!(crate::model::unread_label(page.unread), "99+");

            // Reading all but the newest 40 of Bob's: exact again.
            let up_to = from_bob[from_bob.len() - 41].id;
            assert_eq!(mark_as_read(&db, alice.id, bob.id, up_to, Utc::now()).await.unwrap(), 90);
            let page = contacts(&db, alice.id, None).await.unwrap();
            assert_eq!(unread_of(&page, "bob"), 40);
            assert_eq!(page.unread, 40 + UNREAD_COUNTED + 1);
            // Bob's own view of the group: his messages are never unread for him.
            assert_eq!(contacts(&db, bob.id, None).await.unwrap().unread, 0);
        })
        .await;
    }

    /// SQLite's plans for the contact list's per-person summary and for a conversation's page:
    /// every read of `messages` is a seek in an index (a few per person, or a page's worth), none
    /// a scan of someone's history, and the page is not gathered whole to be sorted.
    #[tokio::test]
    async fn the_contact_list_and_a_page_seek_what_they_show_and_scan_no_history() {
        let db = crate::ssr::test_support::memory_db().await;
        let plan = |statement: Statement| {
            let db = db.clone();
            async move {
                let explain = Statement { sql: format!("EXPLAIN QUERY PLAN {}", statement.sql), ..statement };
                let rows = db.query_all_raw(explain).await.unwrap();
                rows.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect::<Vec<_>>()
            }
        };
        let summary = plan(per_peer(DbBackend::Sqlite, 7)).await;
        let partners = plan(partners(DbBackend::Sqlite, 7)).await;
        let page = plan(newest_page(7, 8, Some(1_000), 51).build(DbBackend::Sqlite)).await;
        for (what, steps) in [("summary", &summary), ("partners", &partners), ("page", &page)] {
            let reads: Vec<&String> = steps.iter().filter(|s| s.contains(" messages") || s.contains(" m ")).collect();
            assert!(!reads.is_empty(), "{what}: {steps:#?}");
            for read in reads {
                assert!(read.starts_with("SEARCH") && read.contains(" USING "), "{what} reads {read:?}: {steps:#?}");
            }
            assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE FOR ORDER BY")), "{what} sorts: {steps:#?}");
        }
        // Who wrote to me, and each person's unread count, come from (recipient, sender, read_at).
        assert!(
            summary.iter().any(|s| s.contains("idx_messages_received (recipient_id=? AND user_id>?)")),
            "{summary:#?}"
        );
        assert!(
            summary.iter().any(|s| s.contains("idx_messages_received (recipient_id=? AND user_id=? AND read_at=?)")),
            "{summary:#?}"
        );
    }

    #[tokio::test]
    async fn the_contact_list_stays_small_however_many_people_sign_up() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let old_friend = user(&db, "old friend").await;
            let mut strangers = Vec::new();
            for n in 0..NEWCOMERS_SHOWN + 5 {
                strangers.push(user(&db, &format!("stranger {n:02}")).await);
            }
            message(&db, old_friend.id, alice.id, "long time no see").await;

            let page = contacts(&db, alice.id, None).await.unwrap();
            let names: Vec<&str> = page.people.iter().map(|c| c.name.as_str()).collect();
            // The conversation, then the 20 newest members; the 5 oldest strangers are left out.
            assert_eq!(names.len(), 1 + NEWCOMERS_SHOWN as usize);
            assert_eq!(names[0], "old friend");
            assert_eq!(names[1], format!("stranger {:02}", NEWCOMERS_SHOWN + 4));
            assert_eq!(names[NEWCOMERS_SHOWN as usize], "stranger 05");
            assert_eq!(page.unread, 1);

            // Anyone left out is one search away.
            let found = contacts(&db, alice.id, Some("STRANGER 0")).await.unwrap();
            let names: Vec<&str> = found.people.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, (0..10).map(|n| format!("stranger {n:02}")).collect::<Vec<_>>());
            // The title's unread count does not depend on who is listed.
            assert_eq!(found.unread, 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_search_matches_names_in_any_case_conversations_first_and_wildcards_literally() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let anna = user(&db, "Anna Bell").await;
            user(&db, "hannah").await;
            user(&db, "bob").await;
            user(&db, "100% real").await;
            user(&db, "snake_case").await;
            user(&db, "Élodie").await;
            message(&db, alice.id, anna.id, "hi anna").await;

            let search = |needle: &'static str| {
                let db = db.clone();
                async move {
                    let page = contacts(&db, alice.id, Some(needle)).await.unwrap();
                    page.people.into_iter().map(|c| c.name).collect::<Vec<_>>()
                }
            };
            // The conversation first, then by name; you never find yourself.
            assert_eq!(search("AN").await, ["Anna Bell", "hannah"]);
            assert_eq!(search("  bell ").await, ["Anna Bell"]);
            assert_eq!(search("alice").await, Vec::<String>::new());
            // LIKE wildcards are just characters.
            assert_eq!(search("%").await, ["100% real"]);
            assert_eq!(search("_").await, ["snake_case"]);
            // A name as typed matches on every database, accents included.
            assert_eq!(search("Élodie").await, ["Élodie"]);
            // An empty search is no search.
            assert_eq!(contacts(&db, alice.id, Some("   ")).await.unwrap().people.len(), 6);

            let err = contacts(&db, alice.id, Some(&"x".repeat(101))).await.unwrap_err();
            assert_eq!(field_of(&err), Some("search"));
        })
        .await;
    }

    #[tokio::test]
    async fn mark_as_read_touches_only_my_unread_messages_from_that_peer() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let b1 = message(&db, bob.id, alice.id, "b1").await;
            let a1 = message(&db, alice.id, bob.id, "a1").await;
            let c1 = message(&db, carol.id, alice.id, "c1").await;
            let b2 = message(&db, bob.id, alice.id, "b2").await;
            let b3 = message(&db, bob.id, alice.id, "b3").await;
            let unread_of = |me: i64, peer: i64| {
                let db = db.clone();
                async move {
                    contacts(&db, me, None).await.unwrap().people.into_iter().find(|c| c.id == peer).unwrap().unread
                }
            };

            // Carol cannot mark Bob's messages to Alice as read.
            assert_eq!(mark_as_read(&db, carol.id, bob.id, i64::MAX, Utc::now()).await.unwrap(), 0);
            assert_eq!(mark_as_read(&db, carol.id, alice.id, i64::MAX, Utc::now()).await.unwrap(), 0);
            assert_eq!(unread_of(alice.id, bob.id).await, 3);
            assert_eq!(unread_of(alice.id, carol.id).await, 1);
            assert_eq!(unread_of(bob.id, alice.id).await, 1);

            // Up to b2: b1 and b2 only. Not b3 (newer), not c1 (Carol's), not a1 (Alice's own).
            assert_eq!(mark_as_read(&db, alice.id, bob.id, b2.id, Utc::now()).await.unwrap(), 2);
            assert_eq!(mark_as_read(&db, alice.id, bob.id, b2.id, Utc::now()).await.unwrap(), 0, "already read");
            let page = conversation(&db, alice.id, bob.id, None, None).await.unwrap();
            let read: Vec<(&str, bool)> =
                page.messages.iter().map(|m| (m.body.as_str(), m.read_at.is_some())).collect();
            assert_eq!(read, [("b1", true), ("a1", false), ("b2", true), ("b3", false)]);
            assert_eq!(page.messages[0].id, b1.id);
            let b1_read_at = page.messages[0].read_at;
            assert_eq!(unread_of(alice.id, bob.id).await, 1);
            assert_eq!(unread_of(alice.id, carol.id).await, 1);
            assert_eq!(unread_of(bob.id, alice.id).await, 1, "what Alice sent stays unread for Bob");

            // Everything from Bob: only the one still unread changes; earlier receipts keep their time.
            assert_eq!(mark_as_read(&db, alice.id, bob.id, b3.id + 1000, Utc::now()).await.unwrap(), 1);
            let page = conversation(&db, alice.id, bob.id, None, None).await.unwrap();
            assert_eq!(page.messages[0].read_at, b1_read_at);
            assert!(page.messages.iter().filter(|m| m.sender_id == bob.id).all(|m| m.read_at.is_some()));
            assert_eq!(page.messages.iter().find(|m| m.id == a1.id).unwrap().read_at, None);
            assert_eq!(unread_of(alice.id, bob.id).await, 0);
            assert_eq!(unread_of(alice.id, carol.id).await, 1);

            // Bob reads Alice's reply; Carol's message to Alice is still unread.
            assert_eq!(mark_as_read(&db, bob.id, alice.id, a1.id, Utc::now()).await.unwrap(), 1);
            assert_eq!(unread_of(bob.id, alice.id).await, 0);
            let carols = conversation(&db, alice.id, carol.id, None, None).await.unwrap();
            assert_eq!(ids(&carols), [c1.id]);
            assert_eq!(carols.messages[0].read_at, None);
        })
        .await;
    }

    #[tokio::test]
    async fn a_repeated_send_stores_one_message() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let limiter = message_sends();

            let first = send(&db, &limiter, &alice, bob.id, "hello", "client-1", None).await.unwrap();
            assert!(first.created);
            assert_eq!(
                (first.message.sender_id, first.message.recipient_id, first.message.body.as_str()),
                (alice.id, bob.id, "hello")
            );
            let again = send(&db, &limiter, &alice, bob.id, "hello", "client-1", None).await.unwrap();
            assert!(!again.created);
            assert_eq!(again.message, first.message);
            assert_eq!(stored_by(&db, alice.id).await, 1);

            // Two identical sends at the same moment (a double click, a retry racing the original).
            for round in 0..5 {
                let client_id = format!("together-{round}");
                let (db1, db2) = (db.clone(), db.clone());
                let (one, two) = tokio::join!(
                    send(&db1, &limiter, &alice, bob.id, "together", &client_id, None),
                    send(&db2, &limiter, &alice, bob.id, "together", &client_id, None),
                );
                let (one, two) = (one.unwrap(), two.unwrap());
                assert_eq!(one.message, two.message, "round {round}");
                assert!(one.created != two.created, "exactly one of them stored it (round {round})");
            }
            assert_eq!(stored_by(&db, alice.id).await, 6);

            // A different client id is a different message, even with the same text.
            let other = send(&db, &limiter, &alice, bob.id, "hello", "client-2", None).await.unwrap();
            assert!(other.created);
            assert_ne!(other.message.id, first.message.id);
            assert_eq!(stored_by(&db, alice.id).await, 7);
            // The same key for another conversation is refused, by name, and stores nothing.
            let carol = user(&db, "carol").await;
            let err = send(&db, &limiter, &alice, carol.id, "hello", "client-1", None).await.unwrap_err();
            assert_eq!((err.status(), field_of(&err)), (400, Some("client_id")), "{err:?}");
            assert_eq!(stored_by(&db, alice.id).await, 7);
            // The key is per sender: Bob may use the same client id.
            let bobs = send(&db, &limiter, &bob, alice.id, "hi", "client-1", None).await.unwrap();
            assert!(bobs.created);
            assert_ne!(bobs.message.id, first.message.id);

            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            let bodies: Vec<&str> = page.messages.iter().map(|m| m.body.as_str()).collect();
            assert_eq!(bodies, ["hello", "together", "together", "together", "together", "together", "hello", "hi"]);
        })
        .await;
    }

    #[tokio::test]
    async fn invalid_sends_are_refused_and_the_21st_in_ten_seconds_is_rate_limited() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let limiter = message_sends();

            for body in ["", "  \n\t  ", &"a".repeat(5001), "ring\u{7}the bell", "nul\0"] {
                let err = send(&db, &limiter, &alice, bob.id, body, "c-bad", None).await.unwrap_err();
                assert_eq!(field_of(&err), Some("body"), "{body:?}: {err:?}");
                assert_eq!(err.status(), 400);
            }
            let at_limit = "é".repeat(5000);
            let err = send(&db, &limiter, &alice, alice.id, "hi me", "c-self", None).await.unwrap_err();
            assert_eq!(field_of(&err), Some("recipient_id"), "{err:?}");
            let err = send(&db, &limiter, &alice, bob.id + 1000, "hi?", "c-nobody", None).await.unwrap_err();
            assert!(matches!(err, AppError::NotFound { .. }), "{err:?}");
            assert_eq!(err.status(), 404);
            let err = send(&db, &limiter, &alice, bob.id, "hi", "not a client id", None).await.unwrap_err();
            assert_eq!(field_of(&err), Some("client_id"), "{err:?}");
            assert_eq!(stored_by(&db, alice.id).await, 0, "nothing refused is stored");

            // Refused sends did not use up the allowance: 20 go through (one of them 5000 characters).
            for i in 0..20 {
                let body = if i == 0 { at_limit.clone() } else { format!("message {i}") };
                let sent = send(&db, &limiter, &alice, bob.id, &body, &format!("c-{i}"), None).await.unwrap();
                assert!(sent.created, "send {i}");
            }
            let err = send(&db, &limiter, &alice, bob.id, "one too many", "c-20", None).await.unwrap_err();
            assert!(matches!(err, AppError::RateLimited { .. }), "{err:?}");
            assert_eq!(err.status(), 429);
            assert!(err.to_string().starts_with("slow down: try again in "), "{err}");
            assert_eq!(stored_by(&db, alice.id).await, 20);

            // A retry of a message already stored is not a new send: it still gets its answer.
            let retry = send(&db, &limiter, &alice, bob.id, "message 5", "c-5", None).await.unwrap();
            assert!(!retry.created);
            assert_eq!(retry.message.body, "message 5");
            // The limit is per sender: Bob can still answer.
            assert!(send(&db, &limiter, &bob, alice.id, "calm down", "c-0", None).await.unwrap().created);
        })
        .await;
    }

    #[tokio::test]
    async fn sends_in_parallel_cannot_outrun_the_rate_limit() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let limiter = std::sync::Arc::new(message_sends());
            // A script firing 40 sends at once, all in flight together.
            let mut sends = tokio::task::JoinSet::new();
            for i in 0..40 {
                let (db, limiter) = (db.clone(), limiter.clone());
                let (alice, bob) = (alice.clone(), bob.id);
                sends.spawn(async move { send(&db, &limiter, &alice, bob, "spam", &format!("p-{i}"), None).await });
            }
            let results = sends.join_all().await;
            let accepted = results.iter().filter(|r| r.is_ok()).count();
            let limited = results.iter().filter(|r| matches!(r, Err(AppError::RateLimited { .. }))).count();
            assert_eq!((accepted, limited), (20, 20));
            assert_eq!(stored_by(&db, alice.id).await, 20);
        })
        .await;
    }

    #[tokio::test]
    async fn sent_bodies_are_stored_normalised_and_otherwise_verbatim() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let limiter = unlimited();
            let markup = "<img src=x onerror=alert(1)>";
            let sent = send(&db, &limiter, &alice, bob.id, markup, "c-1", None).await.unwrap();
            assert_eq!(sent.message.body, markup);
            let sent = send(&db, &limiter, &alice, bob.id, "  two\r\nlines\t\n", "c-2", None).await.unwrap();
            assert_eq!(sent.message.body, "two\nlines");
            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            let bodies: Vec<&str> = page.messages.iter().map(|m| m.body.as_str()).collect();
            assert_eq!(bodies, [markup, "two\nlines"]);
        })
        .await;
    }

    #[tokio::test]
    async fn since_returns_what_a_tab_missed_and_the_read_mark() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let a1 = message(&db, alice.id, bob.id, "a1").await;
            let b1 = message(&db, bob.id, alice.id, "b1").await;
            let _c1 = message(&db, carol.id, alice.id, "c1").await;
            let a2 = message(&db, alice.id, bob.id, "a2").await;

            let update = conversation_since(&db, alice.id, bob.id, a1.id, 0).await.unwrap();
            assert_eq!(update.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [b1.id, a2.id]);
            assert!(!update.has_more);
            assert_eq!(update.peer_read_up_to, None);

            assert_eq!(mark_as_read(&db, bob.id, alice.id, a1.id, Utc::now()).await.unwrap(), 1);
            let update = conversation_since(&db, alice.id, bob.id, a2.id, 0).await.unwrap();
            assert!(update.messages.is_empty());
            assert_eq!(update.peer_read_up_to, Some(a1.id));
            assert!(update.peer_read_at.is_some());

            // Carol sees nothing of Alice and Bob's conversation.
            assert!(conversation_since(&db, carol.id, bob.id, 0, 0).await.unwrap().messages.is_empty());
            assert!(matches!(conversation_since(&db, alice.id, alice.id, 0, 0).await, Err(AppError::NotFound { .. })));

            for i in 0..PAGE_MAX + 5 {
                message(&db, bob.id, alice.id, &format!("m{i}")).await;
            }
            let update = conversation_since(&db, alice.id, bob.id, a2.id, 0).await.unwrap();
            assert_eq!(update.messages.len(), PAGE_MAX as usize);
            assert!(update.has_more);
            assert_eq!(update.messages[0].body, "m0");
        })
        .await;
    }
}
