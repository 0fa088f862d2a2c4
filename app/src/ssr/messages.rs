//! What happens to a message after it is sent, in any conversation (one-to-one or group): its
//! author edits it (within [`EDIT_WINDOW_MINUTES`]) or deletes it (a tombstone whose body is
//! erased), people react to it, and others reply to it. Also how stored rows become what the
//! browser sees (names, reply quotes, reactions), how a new message is stored (shared by both
//! kinds of conversation), and the change sequence catch-ups use.
//!
//! Who may do what: a message you cannot see is 404 (another pair's conversation, a group you were
//! never in, or one sent after you left it); one you can see but not change is 403 (someone else's
//! message, or any action once you left the group).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use migration::search_index;

use crate::error::AppError;
use crate::model::{
    ChatMessage, EDIT_WINDOW_MINUTES, MessageKind, PAGE_MAX, REACTION_NAMES_SHOWN, REACTIONS_MAX_KINDS, Reaction,
    ReplyQuote,
};
use crate::realtime::{MessageDeleted, ReactionsChanged};
use crate::ssr::entities::{chat_room_participants as participants, counters, message_reactions, messages, users};
use crate::ssr::rate_limit::SlidingWindow;
use crate::validation;

impl From<messages::Model> for ChatMessage {
    fn from(m: messages::Model) -> Self {
        let deleted = m.deleted_at.is_some();
        Self {
            id: m.id,
            sender_id: m.user_id,
            recipient_id: m.recipient_id.unwrap_or_default(),
            room_id: m.chat_room_id,
            sender_name: String::new(),
            kind: MessageKind::from_column(&m.kind),
            body: if deleted { String::new() } else { m.body },
            client_id: m.client_id,
            created_at: m.created_at,
            read_at: m.read_at,
            edited_at: m.edited_at,
            deleted,
            change: m.change_seq,
            reply_to: None,
            reactions: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

/// The counter that numbers message changes (edits, deletions, reaction changes).
const CHANGES: &str = "message_changes";

/// The newest change number: everything numbered up to it is visible to a read that follows.
pub async fn changes_now(db: &impl ConnectionTrait) -> Result<i64, AppError> {
    Ok(counters::Entity::find_by_id(CHANGES.to_owned()).one(db).await?.map_or(0, |row| row.value))
}

/// What a page of a conversation reads besides its rows, asked in one round trip to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageHead {
    /// The change cursor now (see [`changes_now`]).
    pub changes_up_to: i64,
    /// Whether the reader muted the conversation.
    pub muted: bool,
    /// One-to-one: the other person's name, `None` when there is no such account. Groups: `None`.
    pub peer_name: Option<String>,
    /// The reader's own name (one-to-one: with the peer's, every name the page shows).
    pub reader_name: Option<String>,
}

/// The change cursor, whether `me` muted `conversation`, `me`'s name and (one-to-one) the peer's,
/// in one statement of subqueries: each was a query of its own, a round trip to the connection's
/// thread apiece on SQLite.
pub async fn page_head(
    db: &impl ConnectionTrait,
    me: i64,
    conversation: crate::model::ConversationRef,
) -> Result<PageHead, AppError> {
    use crate::ssr::entities::conversation_mutes as mutes;
    use sea_orm::sea_query::Query;
    let changes = Query::select()
        .column(counters::Column::Value)
        .from(counters::Entity)
        .and_where(counters::Column::Name.eq(CHANGES))
        .to_owned();
    let muted = Query::select()
        .column(mutes::Column::UserId)
        .from(mutes::Entity)
        .and_where(mutes::Column::UserId.eq(me))
        .and_where(mutes::Column::Conversation.eq(conversation.key()))
        .to_owned();
    let name_of = |id: i64| {
        let name = Query::select()
            .column(users::Column::Name)
            .from(users::Entity)
            .and_where(users::Column::Id.eq(id))
            .to_owned();
        Expr::SubQuery(None, Box::new(name.into()))
    };
    let mut head = Query::select()
        .expr_as(Expr::SubQuery(None, Box::new(changes.into())), "changes")
        .expr_as(Expr::exists(muted), "muted")
        .expr_as(name_of(me), "reader_name")
        .to_owned();
    if let crate::model::ConversationRef::Direct(peer) = conversation {
        head.expr_as(name_of(peer), "peer_name");
    }
    // A SELECT without FROM always gives one row.
    let row = db.query_one(&head).await?.ok_or(AppError::Internal)?;
    Ok(PageHead {
        changes_up_to: row.try_get::<Option<i64>>("", "changes")?.unwrap_or(0),
        muted: row.try_get("", "muted")?,
        peer_name: match conversation {
            crate::model::ConversationRef::Direct(_) => row.try_get("", "peer_name")?,
            crate::model::ConversationRef::Group(_) => None,
        },
        reader_name: row.try_get("", "reader_name")?,
    })
}

/// Draws the next change number, inside the change's transaction: on PostgreSQL the row stays
/// locked until the change commits, so changes become visible in the order of their numbers.
async fn next_change(tx: &impl ConnectionTrait) -> Result<i64, AppError> {
    counters::Entity::update_many()
        .col_expr(counters::Column::Value, Expr::col(counters::Column::Value).add(1))
        .filter(counters::Column::Name.eq(CHANGES))
        .exec(tx)
        .await?;
    changes_now(tx).await
}

/// Messages a page opened at a message (a search hit) shows before it, for context.
pub const AT_CONTEXT: u64 = 10;
/// The longest page opened at a message: an older one is reached by loading older pages.
pub const REACH_MAX: u64 = 500;

/// How many of the newest messages matching `conversation` a page must hold to reach back to
/// message `at` with [`AT_CONTEXT`] before it: at least a normal page, at most [`REACH_MAX`].
pub async fn reach(db: &impl ConnectionTrait, conversation: Condition, at: i64) -> Result<u64, AppError> {
    let newer = messages::Entity::find().filter(conversation).filter(messages::Column::Id.gte(at)).count(db).await?;
    Ok((newer + AT_CONTEXT).clamp(u64::from(crate::model::PAGE_DEFAULT), REACH_MAX))
}

/// Names of `ids`, by id.
pub async fn names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, String>, AppError> {
    let ids: HashSet<i64> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .column(users::Column::Name)
        .filter(users::Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Stored rows as the browser sees them: with their senders' names, the quotes of the messages
/// they reply to, and their reactions. A few queries for the whole page, none per row.
pub async fn present(db: &impl ConnectionTrait, rows: Vec<messages::Model>) -> Result<Vec<ChatMessage>, AppError> {
    present_among(db, rows, HashMap::new()).await
}

/// As [`present`], with names the caller already knows (a one-to-one page knows both people's):
/// only the others are looked up, and when there are none, nothing is.
pub async fn present_among(
    db: &impl ConnectionTrait,
    rows: Vec<messages::Model>,
    known: HashMap<i64, String>,
) -> Result<Vec<ChatMessage>, AppError> {
    present_with(db, rows, Lookups { reactions: true, files: true }, known).await
}

/// What [`present_with`] asks the database for besides names and quotes: a message stored a moment
/// ago has no reactions yet, and files only when it was sent with some.
#[derive(Debug, Clone, Copy)]
struct Lookups {
    reactions: bool,
    files: bool,
}

async fn present_with(
    db: &impl ConnectionTrait,
    rows: Vec<messages::Model>,
    lookups: Lookups,
    known: HashMap<i64, String>,
) -> Result<Vec<ChatMessage>, AppError> {
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let reply_ids: HashSet<i64> = rows.iter().filter_map(|m| m.reply_to_id).collect();
    let originals: Vec<messages::Model> = if reply_ids.is_empty() {
        Vec::new()
    } else {
        messages::Entity::find().filter(messages::Column::Id.is_in(reply_ids)).all(db).await?
    };
    let reactions = if lookups.reactions { reactions_of(db, &ids).await? } else { HashMap::new() };
    let mut files = if lookups.files { crate::ssr::attachments::of_messages(db, &ids).await? } else { HashMap::new() };
    let unknown: Vec<i64> = rows
        .iter()
        .map(|m| m.user_id)
        .chain(originals.iter().map(|m| m.user_id))
        .chain(reactions.values().flatten().flat_map(|(_, users)| users.iter().take(REACTION_NAMES_SHOWN).copied()))
        .filter(|id| !known.contains_key(id))
        .collect();
    let mut named = known;
    named.extend(names(db, unknown).await?);
    let name_of = |id: i64| named.get(&id).cloned().unwrap_or_default();
    let quotes: HashMap<i64, ReplyQuote> = originals
        .into_iter()
        .map(|m| {
            let mut original = ChatMessage::from(m);
            original.sender_name = name_of(original.sender_id);
            (original.id, ReplyQuote::of(&original))
        })
        .collect();
    let mut reactions = reactions;
    Ok(rows
        .into_iter()
        .map(|m| {
            let reply_to = m.reply_to_id.and_then(|id| quotes.get(&id).cloned());
            let mut message = ChatMessage::from(m);
            message.sender_name = name_of(message.sender_id);
            message.reply_to = reply_to;
            message.reactions = reactions
                .remove(&message.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(emoji, user_ids)| Reaction {
                    names: user_ids.iter().take(REACTION_NAMES_SHOWN).map(|&id| name_of(id)).collect(),
                    emoji,
                    user_ids,
                })
                .collect();
            if !message.deleted {
                message.attachments = files.remove(&message.id).unwrap_or_default();
            }
            message
        })
        .collect())
}

/// One stored row as the browser sees it.
pub async fn present_one(db: &impl ConnectionTrait, row: messages::Model) -> Result<ChatMessage, AppError> {
    present(db, vec![row]).await?.pop().ok_or(AppError::Internal)
}

/// Per message, its emoji in the order first added, each with its people in the order they added it.
async fn reactions_of(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<(String, Vec<i64>)>>, AppError> {
    let mut out: HashMap<i64, Vec<(String, Vec<i64>)>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = message_reactions::Entity::find()
        .filter(message_reactions::Column::MessageId.is_in(ids.iter().copied()))
        .order_by_asc(message_reactions::Column::CreatedAt)
        .order_by_asc(message_reactions::Column::UserId)
        .all(db)
        .await?;
    for row in rows {
        let emojis = out.entry(row.message_id).or_default();
        match emojis.iter_mut().find(|(emoji, _)| *emoji == row.emoji) {
            Some((_, users)) => users.push(row.user_id),
            None => emojis.push((row.emoji, vec![row.user_id])),
        }
    }
    Ok(out)
}

/// Which conversation a message is in, as the asking user stands in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// One of the two people of a one-to-one conversation.
    Direct,
    /// A group member now (`true`), or a former member who may still read it (`false`).
    Group { current: bool },
}

/// The message `id` if `me` may see it, with how they stand in its conversation; 404 otherwise.
pub(crate) async fn locate(
    db: &impl ConnectionTrait,
    me: i64,
    id: i64,
) -> Result<(messages::Model, Standing), AppError> {
    let not_found = || AppError::not_found("no such message");
    let row = messages::Entity::find_by_id(id).one(db).await?.ok_or_else(not_found)?;
    match row.chat_room_id {
        None if row.user_id == me || row.recipient_id == Some(me) => Ok((row, Standing::Direct)),
        None => Err(not_found()),
        Some(room) => {
            let membership = participants::Entity::find_by_id((room, me)).one(db).await?.ok_or_else(not_found)?;
            let current = membership.left_at.is_none();
            if !current && row.id > membership.visible_up_to.unwrap_or(0) {
                return Err(not_found());
            }
            Ok((row, Standing::Group { current }))
        }
    }
}

/// The message `id`, if `me` may act on it: visible, and (in a group) while still a member.
async fn locate_for_action(db: &impl ConnectionTrait, me: i64, id: i64) -> Result<messages::Model, AppError> {
    let (row, standing) = locate(db, me, id).await?;
    if standing == (Standing::Group { current: false }) {
        return Err(AppError::Forbidden { message: "you are no longer a member of this group".into() });
    }
    if MessageKind::from_column(&row.kind) == MessageKind::System {
        return Err(AppError::invalid("message_id", "lines about the group cannot be changed or reacted to"));
    }
    Ok(row)
}

fn require_author(row: &messages::Model, me: i64, what: &str) -> Result<(), AppError> {
    if row.user_id == me {
        Ok(())
    } else {
        Err(AppError::Forbidden { message: format!("only its author can {what} a message") })
    }
}

/// Edits `me`'s message `id` to `body` (checked as a send's body), within
/// [`EDIT_WINDOW_MINUTES`] of sending it. An edit to the same text changes nothing (`false`).
pub async fn edit(db: &DatabaseConnection, me: i64, id: i64, body: &str) -> Result<(ChatMessage, bool), AppError> {
    let row = locate_for_action(db, me, id).await?;
    edit_located(db, me, row, body).await
}

/// [`edit`] of the message `row` as it was located (it may have changed since).
async fn edit_located(
    db: &DatabaseConnection,
    me: i64,
    row: messages::Model,
    body: &str,
) -> Result<(ChatMessage, bool), AppError> {
    require_author(&row, me, "edit")?;
    if row.deleted_at.is_some() {
        return Err(deleted_message("edited"));
    }
    if Utc::now() - row.created_at >= chrono::Duration::minutes(EDIT_WINDOW_MINUTES) {
        return Err(AppError::invalid(
            "message_id",
            format!("messages can only be edited for {EDIT_WINDOW_MINUTES} minutes after they are sent"),
        ));
    }
    let body = validation::message_body(body)?;
    if body == row.body {
        return Ok((present_one(db, row).await?, false));
    }
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let seq = next_change(&tx).await?;
    not_deleted_since(&tx, row.id, "edited").await?;
    let now = Utc::now();
    let mut active: messages::ActiveModel = row.into();
    active.body = Set(body);
    active.edited_at = Set(Some(now));
    active.updated_at = Set(now);
    active.change_seq = Set(seq);
    let row = active.update(&tx).await?;
    // The database took the old words out of the search index with the old body.
    search_index::index_one(&tx, row.id, &row.body, row.user_id, row.recipient_id, row.chat_room_id).await?;
    tx.commit().await?;
    Ok((present_one(db, row).await?, true))
}

/// Deletes `me`'s message `id`: its body is erased, its reactions removed and its files taken out
/// of `storage` (with their rows); the row stays as a tombstone so the ids around it, and replies to it, stay coherent. Deleting again is a no-op.
pub async fn delete(
    db: &DatabaseConnection,
    storage: Option<&crate::ssr::storage::Storage>,
    me: i64,
    id: i64,
) -> Result<(ChatMessage, MessageDeleted), AppError> {
    let row = locate_for_action(db, me, id).await?;
    require_author(&row, me, "delete")?;
    let row = if row.deleted_at.is_some() {
        row
    } else {
        let _turn = crate::ssr::sqlite_write_turn(db).await;
        let tx = crate::ssr::begin_write(db).await?;
        let seq = next_change(&tx).await?;
        message_reactions::Entity::delete_many()
            .filter(message_reactions::Column::MessageId.eq(row.id))
            .exec(&tx)
            .await?;
        let now = Utc::now();
        let mut active: messages::ActiveModel = row.into();
        active.body = Set(String::new());
        active.deleted_at = Set(Some(now));
        active.updated_at = Set(now);
        active.change_seq = Set(seq);
        let row = active.update(&tx).await?;
        tx.commit().await?;
        row
    };
    // Its files go with it (again on a repeated delete, in case the store failed the first time).
    if let Some(storage) = storage {
        crate::ssr::attachments::remove_for_message(db, storage, row.id).await?;
    }
    let tombstone = present_one(db, row).await?;
    let event = MessageDeleted {
        id: tombstone.id,
        sender_id: tombstone.sender_id,
        recipient_id: tombstone.recipient_id,
        room_id: tombstone.room_id,
        change: tombstone.change,
    };
    Ok((tombstone, event))
}

/// A reaction: one emoji (with its modifiers and joiners), nothing else.
pub fn reaction_emoji(text: &str) -> Result<String, AppError> {
    let emoji = text.trim();
    if emoji.is_empty() || emoji.len() > 64 || !single_emoji(emoji) {
        return Err(AppError::invalid("emoji", "a reaction is one emoji"));
    }
    Ok(emoji.to_owned())
}

/// One emoji: a pictograph with any variation selectors, skin tones, joiners and keycap marks.
fn single_emoji(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else { return false };
    let pictograph = |c: char| matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x2300..=0x23FF | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA);
    let modifier = |c: char| matches!(c as u32, 0xFE0F | 0xFE0E | 0x1F3FB..=0x1F3FF | 0x20E3 | 0xE0020..=0xE007F);
    let regional = |c: char| matches!(c as u32, 0x1F1E6..=0x1F1FF);
    if regional(first) {
        return chars.next().is_some_and(regional) && chars.next().is_none();
    }
    let keycap = first.is_ascii_digit() || first == '#' || first == '*';
    if !pictograph(first) && !keycap {
        return false;
    }
    let mut joined = false;
    for c in chars {
        if c == '\u{200D}' {
            joined = true;
        } else if modifier(c) || (joined && pictograph(c)) {
            joined = false;
        } else {
            return false;
        }
    }
    !joined && (!keycap || text.ends_with('\u{20E3}'))
}

/// What a reaction change did: whether anything changed, and the message's reactions now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reacted {
    pub changed: bool,
    /// The message with its reactions now.
    pub message: ChatMessage,
    pub event: ReactionsChanged,
}

/// `me` adds `emoji` to message `id` (once per person and emoji: adding it again changes nothing).
pub async fn react(db: &DatabaseConnection, me: i64, id: i64, emoji: &str) -> Result<Reacted, AppError> {
    let emoji = reaction_emoji(emoji)?;
    let row = locate_for_action(db, me, id).await?;
    react_located(db, me, row, emoji).await
}

/// [`react`] with a checked emoji, to the message `row` as it was located (it may have changed
/// since).
async fn react_located(
    db: &DatabaseConnection,
    me: i64,
    row: messages::Model,
    emoji: String,
) -> Result<Reacted, AppError> {
    if row.deleted_at.is_some() {
        return Err(deleted_message("reacted to"));
    }
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let mine = message_reactions::Entity::find_by_id((row.id, me, emoji.clone())).one(&tx).await?;
    if mine.is_some() {
        tx.rollback().await?;
        return reacted(db, row.id, false).await;
    }
    let kinds: Vec<String> = message_reactions::Entity::find()
        .select_only()
        .column(message_reactions::Column::Emoji)
        .distinct()
        .filter(message_reactions::Column::MessageId.eq(row.id))
        .into_tuple()
        .all(&tx)
        .await?;
    if kinds.len() >= REACTIONS_MAX_KINDS && !kinds.contains(&emoji) {
        return Err(AppError::invalid(
            "emoji",
            format!("a message can have at most {REACTIONS_MAX_KINDS} different reactions"),
        ));
    }
    let seq = next_change(&tx).await?;
    not_deleted_since(&tx, row.id, "reacted to").await?;
    let inserted = message_reactions::ActiveModel {
        message_id: Set(row.id),
        user_id: Set(me),
        emoji: Set(emoji),
        created_at: Set(Utc::now()),
    }
    .insert(&tx)
    .await;
    match inserted {
        Ok(_) => {}
        // The same reaction from a parallel request: one of them counts.
        Err(e) if crate::ssr::is_unique_violation(&e) => {
            drop(tx);
            return reacted(db, row.id, false).await;
        }
        Err(e) => return Err(e.into()),
    }
    bump(&tx, row.id, seq).await?;
    tx.commit().await?;
    reacted(db, row.id, true).await
}

/// `me` takes back `emoji` from message `id` (nothing changes when they had not added it).
pub async fn unreact(db: &DatabaseConnection, me: i64, id: i64, emoji: &str) -> Result<Reacted, AppError> {
    let emoji = reaction_emoji(emoji)?;
    let row = locate_for_action(db, me, id).await?;
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let removed = message_reactions::Entity::delete_by_id((row.id, me, emoji)).exec(&tx).await?.rows_affected;
    if removed > 0 {
        let seq = next_change(&tx).await?;
        bump(&tx, row.id, seq).await?;
    }
    tx.commit().await?;
    reacted(db, row.id, removed > 0).await
}

/// The answer to an edit of, or a reaction to, a deleted message.
fn deleted_message(what: &str) -> AppError {
    AppError::invalid("message_id", format!("a deleted message cannot be {what}"))
}

/// Fails when message `id` was deleted after the action located it. Called in the action's
/// transaction once its number is drawn: a deletion that drew its number first has committed by
/// then (SQLite runs one write at a time; on PostgreSQL the counter's row lock waits for it), so
/// an edit cannot put words back into a deleted message, nor a reaction appear on a tombstone.
async fn not_deleted_since(tx: &impl ConnectionTrait, id: i64, what: &str) -> Result<(), AppError> {
    let deleted: Option<Option<chrono::DateTime<Utc>>> =
        messages::Entity::find_by_id(id).select_only().column(messages::Column::DeletedAt).into_tuple().one(tx).await?;
    match deleted {
        Some(Some(_)) => Err(deleted_message(what)),
        _ => Ok(()),
    }
}

/// Gives message `id` change number `seq`.
async fn bump(tx: &impl ConnectionTrait, id: i64, seq: i64) -> Result<(), AppError> {
    messages::Entity::update_many()
        .col_expr(messages::Column::ChangeSeq, Expr::value(seq))
        .filter(messages::Column::Id.eq(id))
        .exec(tx)
        .await?;
    Ok(())
}

/// Message `id` after a reaction change, read again once the change committed: its text and its
/// number are never older than the change (the row read before it can predate an edit made
/// meanwhile, and a copy numbered after that edit must show it).
async fn reacted(db: &impl ConnectionTrait, id: i64, changed: bool) -> Result<Reacted, AppError> {
    let row = messages::Entity::find_by_id(id).one(db).await?.ok_or(AppError::Internal)?;
    let message = present_one(db, row).await?;
    let event = ReactionsChanged {
        message_id: message.id,
        sender_id: message.sender_id,
        recipient_id: message.recipient_id,
        room_id: message.room_id,
        reactions: message.reactions.clone(),
        change: message.change,
    };
    Ok(Reacted { changed, message, event })
}

/// Where a new message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Person(i64),
    Group(i64),
}

/// What a send did: stored a new message, or found the one this `client_id` already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message: ChatMessage,
    pub created: bool,
}

/// The checked parts of a send: who writes, where, what, under which idempotency key.
pub struct NewMessage<'a> {
    pub me: i64,
    /// `me`'s name, which the stored message carries.
    pub sender_name: &'a str,
    pub to: Destination,
    pub body: &'a str,
    pub client_id: &'a str,
    pub reply_to_id: Option<i64>,
    /// `me`'s uploads sent with it (see [`crate::ssr::attachments`]), in order.
    pub attachments: &'a [i64],
}

/// What a person sends, before its conversation is checked: text (optional when files go with
/// it), the idempotency key, the message it answers, and uploads to attach.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    pub body: &'a str,
    pub client_id: &'a str,
    pub reply_to_id: Option<i64>,
    pub attachments: &'a [i64],
}

/// A send's body, checked: it may be empty only when files go with it.
pub fn checked_body(body: &str, attachments: &[i64]) -> Result<String, AppError> {
    crate::ssr::attachments::check_count(attachments)?;
    if !attachments.is_empty() && body.trim().is_empty() {
        return Ok(String::new());
    }
    validation::message_body(body)
}

impl Destination {
    fn matches(self, row: &messages::Model) -> bool {
        match self {
            Self::Person(id) => row.chat_room_id.is_none() && row.recipient_id == Some(id),
            Self::Group(room) => row.chat_room_id == Some(room),
        }
    }
}

/// The message a send answers: it must be in the same conversation (400 otherwise).
async fn reply_target(db: &impl ConnectionTrait, me: i64, to: Destination, id: i64) -> Result<i64, AppError> {
    let invalid = || AppError::invalid("reply_to_id", "you can only reply to a message of this conversation");
    let (row, _) = locate(db, me, id).await.map_err(|_| invalid())?;
    let same = match to {
        Destination::Person(peer) => {
            row.chat_room_id.is_none()
                && ((row.user_id == me && row.recipient_id == Some(peer))
                    || (row.user_id == peer && row.recipient_id == Some(me)))
        }
        Destination::Group(room) => row.chat_room_id == Some(room),
    };
    if !same || MessageKind::from_column(&row.kind) == MessageKind::System {
        return Err(invalid());
    }
    Ok(row.id)
}

/// The message `me` stored under `client_id`, if any.
pub(crate) async fn find_sent(
    db: &impl ConnectionTrait,
    me: i64,
    client_id: &str,
) -> Result<Option<messages::Model>, AppError> {
    Ok(messages::Entity::find()
        .filter(messages::Column::UserId.eq(me))
        .filter(messages::Column::ClientId.eq(client_id))
        .one(db)
        .await?)
}

/// A send that was stored already (same sender and `client_id`): answered with what the first
/// attempt stored, whatever changed since; 400 when the key was used for another conversation.
pub async fn already_sent(
    db: &DatabaseConnection,
    me: i64,
    to: Destination,
    client_id: &str,
) -> Result<Option<Sent>, AppError> {
    match find_sent(db, me, client_id).await? {
        None => Ok(None),
        Some(row) if to.matches(&row) => Ok(Some(Sent { message: present_one(db, row).await?, created: false })),
        Some(_) => Err(AppError::invalid("client_id", "this client_id was used for another message")),
    }
}

/// A send's outcome as its sender sees it: a refused attempt (rate limit, membership, the message it
/// answers, ...) whose key `(me, client_id)` already stored a message is a retry, answered with what
/// the first attempt stored, whatever changed since. Looked up only on refusal: a send does not
/// ask the database whether it is a retry before it tries (the insert's unique key tells).
pub async fn or_already_sent(
    db: &DatabaseConnection,
    me: i64,
    to: Destination,
    client_id: &str,
    attempt: Result<Sent, AppError>,
) -> Result<Sent, AppError> {
    let refused = match attempt {
        Ok(sent) => return Ok(sent),
        Err(refused) => refused,
    };
    match already_sent(db, me, to, client_id).await {
        Ok(Some(sent)) => Ok(sent),
        Ok(None) => Err(refused),
        // The key was used for another conversation: that is what the sender must hear.
        Err(e @ AppError::Invalid { .. }) => Err(e),
        Err(_) => Err(refused),
    }
}

/// Stores a new message once its conversation has been checked by the caller: counts it against
/// `limiter` (refunded when nothing is stored), and answers a repeat of an earlier send (the same
/// `client_id`, even a concurrent one) with the row stored first. `client_id` must already be
/// validated; callers pass refusals through [`or_already_sent`].
pub async fn store(db: &DatabaseConnection, limiter: &SlidingWindow, new: NewMessage<'_>) -> Result<Sent, AppError> {
    let body = checked_body(new.body, new.attachments)?;
    let reply_to_id = match new.reply_to_id {
        Some(id) => Some(reply_target(db, new.me, new.to, id).await?),
        None => None,
    };
    // Counted now, not after the insert: the insert awaits, and sends in parallel must not all
    // pass the check before any of them is recorded.
    let ticket = limiter
        .acquire(&new.me.to_string(), Instant::now())
        .await
        .map_err(|refusal| AppError::rate_limited("slow down", refusal.retry_after_secs()))?;
    let (recipient_id, room_id) = match new.to {
        Destination::Person(id) => (Some(id), None),
        Destination::Group(room) => (None, Some(room)),
    };
    let at = Utc::now();
    let row = messages::ActiveModel {
        body: Set(body),
        user_id: Set(new.me),
        recipient_id: Set(recipient_id),
        chat_room_id: Set(room_id),
        client_id: Set(new.client_id.to_owned()),
        kind: Set(MessageKind::Text.as_str().to_owned()),
        read_at: Set(None),
        edited_at: Set(None),
        deleted_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        reply_to_id: Set(reply_to_id),
        ..Default::default()
    };
    let inserted = match insert_sent(db, new.me, new.attachments, row).await {
        Ok(inserted) => inserted,
        Err(refused) => {
            limiter.refund(ticket).await;
            return Err(refused);
        }
    };
    if inserted.is_err() {
        // Nothing new was stored: the attempt does not use up the allowance.
        limiter.refund(ticket).await;
    }
    let (row, created) = match inserted {
        Ok(row) => (row, true),
        // The recipient is checked by the foreign key, not by a query of its own on every send.
        Err(e) if crate::ssr::is_foreign_key_violation(&e) => return Err(AppError::not_found("no such recipient")),
        // A retry, or a concurrent identical send that won the race: answer with what was stored
        // (400 if the key was used for another conversation).
        Err(e) if crate::ssr::is_unique_violation(&e) => {
            return already_sent(db, new.me, new.to, new.client_id).await?.ok_or(AppError::Internal);
        }
        Err(e) => return Err(e.into()),
    };
    if !created {
        return Ok(Sent { message: present_one(db, row).await?, created });
    }
    metrics::counter!("banter_messages_sent_total").increment(1);
    let message = if reply_to_id.is_none() && new.attachments.is_empty() {
        // Nothing to look up: a message stored a moment ago has no reactions, and its sender is `me`.
        let mut message = ChatMessage::from(row);
        message.sender_name = new.sender_name.to_owned();
        message
    } else {
        let fresh = Lookups { reactions: false, files: !new.attachments.is_empty() };
        present_with(db, vec![row], fresh, HashMap::new()).await?.pop().ok_or(AppError::Internal)?
    };
    Ok(Sent { message, created })
}

/// Inserts a message people wrote and puts it in the search index (PostgreSQL's follows the row by
/// itself). With files, it gives `me`'s uploads `files` to the new message in the same
/// transaction: a refused file stores nothing. The outer error is that refusal (or the
/// transaction failing); the inner one the insert's own (a duplicate `client_id`, no recipient).
/// Sends without files are written with the sends that arrive beside them
/// ([`crate::ssr::group_commit`]); on SQLite the others take the writer's turn.
async fn insert_sent(
    db: &DatabaseConnection,
    me: i64,
    files: &[i64],
    row: messages::ActiveModel,
) -> Result<Result<messages::Model, DbErr>, AppError> {
    if files.is_empty() {
        // Written with the sends that arrive beside it (it takes its own turn).
        return Ok(crate::ssr::group_commit::insert(db, row).await);
    }
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let row = match row.insert(&tx).await {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    if db.get_database_backend() == DbBackend::Sqlite {
        search_index::index_one(&tx, row.id, &row.body, row.user_id, row.recipient_id, row.chat_room_id).await?;
    }
    crate::ssr::attachments::attach(&tx, me, row.id, files).await?;
    tx.commit().await?;
    Ok(Ok(row))
}

/// A conversation's messages up to `up_to_id` that changed after change `after` (at most
/// [`PAGE_MAX`], in the order they changed), and where the next catch-up starts: `(changed,
/// changes_up_to, more)`. `conversation` selects the conversation's rows.
pub async fn changed_since(
    db: &impl ConnectionTrait,
    conversation: Condition,
    after: i64,
    up_to_id: i64,
) -> Result<(Vec<ChatMessage>, i64, bool), AppError> {
    // Read first: every change numbered up to it is visible to the query below.
    let now = changes_now(db).await?;
    if after >= now {
        return Ok((Vec::new(), now, false));
    }
    let limit = u64::from(PAGE_MAX);
    let mut rows = messages::Entity::find()
        .filter(conversation)
        .filter(messages::Column::ChangeSeq.gt(after))
        .filter(messages::Column::ChangeSeq.lte(now))
        .filter(messages::Column::Id.lte(up_to_id))
        .order_by_asc(messages::Column::ChangeSeq)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let cursor = if more { rows.last().map_or(now, |m| m.change_seq) } else { now };
    Ok((present(db, rows).await?, cursor, more))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::PaginatorTrait;

    use super::*;
    use crate::model::{ContactKind, TOMBSTONE};
    use crate::ssr::conversations::{contacts, conversation, conversation_since, send};
    use crate::ssr::groups;
    use crate::ssr::test_support::{for_each_database, message, user};

    fn unlimited() -> SlidingWindow {
        SlidingWindow::new(10_000, Duration::from_secs(10))
    }

    fn status<T: std::fmt::Debug>(result: Result<T, AppError>) -> u16 {
        result.expect_err("refused").status()
    }

    async fn stored(db: &DatabaseConnection, id: i64) -> messages::Model {
        messages::Entity::find_by_id(id).one(db).await.unwrap().unwrap()
    }

    /// Makes message `id` look `minutes` old.
    async fn age(db: &DatabaseConnection, id: i64, minutes: i64) {
        let mut row: messages::ActiveModel = stored(db, id).await.into();
        row.created_at = Set(Utc::now() - chrono::Duration::minutes(minutes));
        row.update(db).await.unwrap();
    }

    #[test]
    fn a_reaction_is_one_emoji() {
        for ok in ["👍", "❤️", "👍🏽", "👩‍💻", "🇫🇷", "1️⃣", " 🎉 "] {
            assert!(reaction_emoji(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a", "+1", "👍👍", "👍 🎉", "<b>", "1", "‍", "👍a", "\u{200D}👍"] {
            assert_eq!(reaction_emoji(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn only_the_author_edits_and_only_within_the_window() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let m = message(&db, alice.id, bob.id, "helo").await;

            assert_eq!(status(edit(&db, bob.id, m.id, "mine now").await), 403, "not the author");
            assert_eq!(status(edit(&db, carol.id, m.id, "hi").await), 404, "cannot see it");
            assert_eq!(status(edit(&db, alice.id, m.id + 100, "hi").await), 404, "no such message");
            for bad in ["", "   ", &"x".repeat(5_001)] {
                assert!(edit(&db, alice.id, m.id, bad).await.unwrap_err().for_field("body").is_some(), "{bad:?}");
            }

            let (edited, changed) = edit(&db, alice.id, m.id, " hello ").await.unwrap();
            assert!(changed);
            assert_eq!(edited.body, "hello");
            assert!(edited.edited_at.is_some());
            assert_eq!(stored(&db, m.id).await.body, "hello");
            // The same text again changes nothing.
            assert!(!edit(&db, alice.id, m.id, "hello").await.unwrap().1);
            // Bob's page shows the edit.
            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            assert_eq!(page.messages[0].body, "hello");
            assert_eq!(page.messages[0].edited_at, edited.edited_at);

            age(&db, m.id, EDIT_WINDOW_MINUTES).await;
            let err = edit(&db, alice.id, m.id, "too late").await.unwrap_err();
            assert_eq!(err.status(), 400);
            assert_eq!(
                err.for_field("message_id").as_deref(),
                Some("messages can only be edited for 15 minutes after they are sent")
            );
            assert_eq!(stored(&db, m.id).await.body, "hello");
        })
        .await;
    }

    #[tokio::test]
    async fn a_deleted_message_is_a_tombstone_whose_body_is_gone() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let m = send(&db, &limiter, &alice, bob.id, "my secret plan", "c-1", None).await.unwrap().message;
            let reacted = react(&db, bob.id, m.id, "😮").await.unwrap();

            assert_eq!(status(delete(&db, None, bob.id, m.id).await), 403, "only the author");
            // Long after the edit window, the author still deletes.
            age(&db, m.id, 60 * 24).await;
            let (tombstone, event) = delete(&db, None, alice.id, m.id).await.unwrap();
            assert!(tombstone.deleted);
            assert_eq!(tombstone.body, "");
            assert!(tombstone.reactions.is_empty());
            assert!(tombstone.change > reacted.event.change, "a later change, numbered later");
            let change = tombstone.change;
            assert_eq!(
                event,
                MessageDeleted { id: m.id, sender_id: alice.id, recipient_id: bob.id, room_id: None, change }
            );

            // Erased in the database, not hidden; its reactions went with it.
            let row = stored(&db, m.id).await;
            assert_eq!(row.body, "");
            assert!(row.deleted_at.is_some());
            assert_eq!(reactions_stored(&db, m.id).await, 0);

            // Everyone sees the tombstone in its place, and the list says so.
            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            assert_eq!(page.messages.len(), 1);
            assert!(page.messages[0].deleted && page.messages[0].body.is_empty());
            let list = contacts(&db, bob.id, None).await.unwrap();
            let last = list.people.iter().find(|c| c.id == alice.id).unwrap().last_message.clone().unwrap();
            assert!(last.deleted && last.body.is_empty());
            assert_eq!(list.unread, 0, "a deleted message is not waiting to be read");

            // Nothing more can be done to it; deleting again is harmless.
            assert_eq!(status(edit(&db, alice.id, m.id, "undo").await), 400);
            assert_eq!(status(react(&db, bob.id, m.id, "👍").await), 400);
            assert!(delete(&db, None, alice.id, m.id).await.unwrap().0.deleted);
            // The retried send of a deleted message answers the tombstone, never the old body.
            let retry = send(&db, &limiter, &alice, bob.id, "my secret plan", "c-1", None).await.unwrap();
            assert!(!retry.created && retry.message.deleted && retry.message.body.is_empty());
            assert_eq!(TOMBSTONE, "This message was deleted");
        })
        .await;
    }

    /// How many reactions message `id` has in the database.
    async fn reactions_stored(db: &DatabaseConnection, id: i64) -> u64 {
        message_reactions::Entity::find().filter(message_reactions::Column::MessageId.eq(id)).count(db).await.unwrap()
    }

    #[tokio::test]
    async fn an_edit_or_a_reaction_that_found_the_message_before_its_deletion_changes_nothing() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            // Both actions located the message; then its deletion committed.
            let located = message(&db, alice.id, bob.id, "my secret plan").await;
            let id = located.id;
            delete(&db, None, alice.id, id).await.unwrap();

            let err = edit_located(&db, alice.id, located.clone(), "my secret plan, again").await.unwrap_err();
            assert_eq!(err.status(), 400);
            assert_eq!(err.for_field("message_id").as_deref(), Some("a deleted message cannot be edited"));
            let err = react_located(&db, bob.id, located, "👍".into()).await.unwrap_err();
            assert_eq!(err.for_field("message_id").as_deref(), Some("a deleted message cannot be reacted to"));

            // The words stay erased and the tombstone has no reaction.
            let row = stored(&db, id).await;
            assert_eq!(row.body, "");
            assert!(row.deleted_at.is_some() && row.edited_at.is_none());
            assert_eq!(reactions_stored(&db, id).await, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn one_reaction_per_person_and_emoji() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let m = message(&db, alice.id, bob.id, "shipped!").await;

            let first = react(&db, bob.id, m.id, "🎉").await.unwrap();
            assert!(first.changed);
            assert!(first.event.change > m.change_seq && first.message.change == first.event.change);
            let again = react(&db, bob.id, m.id, "🎉").await.unwrap();
            assert!(!again.changed, "once per person and emoji");
            assert_eq!(again.event.change, first.event.change, "no change: the same number");
            let hers = react(&db, alice.id, m.id, "🎉").await.unwrap();
            let both = react(&db, bob.id, m.id, "👍").await.unwrap();
            // Each change is numbered after the one before: a browser keeps the newest it saw.
            assert!(first.event.change < hers.event.change && hers.event.change < both.event.change);
            assert_eq!(both.event.reactions.len(), 2);
            let party = &both.event.reactions[0];
            assert_eq!((party.emoji.as_str(), party.count()), ("🎉", 2));
            assert_eq!(party.user_ids, [bob.id, alice.id], "in the order they reacted");
            assert_eq!(party.who(), "bob and alice reacted with 🎉");

            assert_eq!(status(react(&db, carol.id, m.id, "👍").await), 404, "not in the conversation");
            assert_eq!(status(react(&db, bob.id, m.id, "nice").await), 400);

            let after = unreact(&db, bob.id, m.id, "🎉").await.unwrap();
            assert!(after.changed);
            assert!(after.event.change > both.event.change);
            assert_eq!(after.event.reactions[0].user_ids, [alice.id]);
            assert!(!unreact(&db, bob.id, m.id, "🎉").await.unwrap().changed, "not there any more");
            let page = conversation(&db, alice.id, bob.id, None, None).await.unwrap();
            assert_eq!(page.messages[0].reactions, after.event.reactions);
            assert_eq!(page.messages[0].change, after.event.change, "a page's copy carries its number");
        })
        .await;
    }

    #[tokio::test]
    async fn replies_quote_the_original_and_follow_its_fate() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let original =
                send(&db, &limiter, &alice, bob.id, "\n  lunch at noon?\nor 1pm", "c-1", None).await.unwrap();
            let elsewhere = message(&db, carol.id, bob.id, "not yours").await;

            let reply = send(&db, &limiter, &bob, alice.id, "noon!", "c-2", Some(original.message.id)).await.unwrap();
            let quote = reply.message.reply_to.clone().unwrap();
            assert_eq!(
                (quote.id, quote.sender_name.as_str(), quote.excerpt.as_str(), quote.deleted),
                (original.message.id, "alice", "lunch at noon?", false)
            );
            // Only a message of the same conversation can be answered.
            for target in [elsewhere.id, original.message.id + 1000] {
                let err = send(&db, &limiter, &bob, alice.id, "hm", &format!("bad-{target}"), Some(target)).await;
                assert!(err.unwrap_err().for_field("reply_to_id").is_some());
            }

            // Edits reach the quote; a deletion turns it into the tombstone's.
            edit(&db, alice.id, original.message.id, "lunch at 1?").await.unwrap();
            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            assert_eq!(page.messages.last().unwrap().reply_to.as_ref().unwrap().excerpt, "lunch at 1?");
            delete(&db, None, alice.id, original.message.id).await.unwrap();
            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            let quote = page.messages.last().unwrap().reply_to.clone().unwrap();
            assert!(quote.deleted && quote.excerpt.is_empty());
            // Replying to a tombstone is allowed (it shows as one).
            let late = send(&db, &limiter, &bob, alice.id, "?", "c-3", Some(original.message.id)).await.unwrap();
            assert!(late.message.reply_to.unwrap().deleted);
        })
        .await;
    }

    #[tokio::test]
    async fn a_catch_up_brings_changes_to_messages_the_tab_holds() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let ms = [
                message(&db, alice.id, bob.id, "one").await,
                message(&db, bob.id, alice.id, "two").await,
                message(&db, alice.id, bob.id, "three").await,
            ];
            // Bob's tab loads the page, then goes away.
            let page = conversation(&db, bob.id, alice.id, None, None).await.unwrap();
            let newest = ms[2].id;
            // Meanwhile: an edit, a reaction, a deletion, and a change in another conversation.
            edit(&db, alice.id, ms[0].id, "one (fixed)").await.unwrap();
            react(&db, alice.id, ms[1].id, "👍").await.unwrap();
            delete(&db, None, alice.id, ms[2].id).await.unwrap();
            let other = message(&db, carol.id, alice.id, "hi").await;
            react(&db, alice.id, other.id, "👋").await.unwrap();

            let update = conversation_since(&db, bob.id, alice.id, newest, page.changes_up_to).await.unwrap();
            assert!(update.messages.is_empty(), "nothing new");
            let changed: Vec<(i64, &str, usize, bool)> =
                update.changed.iter().map(|m| (m.id, m.body.as_str(), m.reactions.len(), m.deleted)).collect();
            assert_eq!(
                changed,
                [(ms[0].id, "one (fixed)", 0, false), (ms[1].id, "two", 1, false), (ms[2].id, "", 0, true)]
            );
            assert!(!update.more_changes);
            // From the new cursor there is nothing more to learn.
            let again = conversation_since(&db, bob.id, alice.id, newest, update.changes_up_to).await.unwrap();
            assert!(again.changed.is_empty());
            // Messages the tab does not hold yet come as new messages, not as changes.
            let update = conversation_since(&db, bob.id, alice.id, ms[0].id, page.changes_up_to).await.unwrap();
            assert_eq!(update.changed.len(), 1);
            assert_eq!(update.messages.len(), 2);
        })
        .await;
    }

    #[tokio::test]
    async fn a_page_head_is_the_change_cursor_the_mute_and_the_peer_in_one_read() {
        use crate::model::ConversationRef::{Direct, Group};
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let room = groups::create(&db, &alice, "Team", &[bob.id]).await.unwrap().group.id;
            let head = page_head(&db, alice.id, Direct(bob.id)).await.unwrap();
            assert_eq!(
                (head.muted, head.peer_name.as_deref(), head.reader_name.as_deref()),
                (false, Some("bob"), Some("alice"))
            );
            assert_eq!(head.changes_up_to, changes_now(&db).await.unwrap());

            let hi = message(&db, alice.id, bob.id, "hi").await;
            edit(&db, alice.id, hi.id, "hello").await.unwrap();
            crate::ssr::mutes::set_muted(&db, alice.id, Group(room), true).await.unwrap();
            let after = page_head(&db, alice.id, Group(room)).await.unwrap();
            assert_eq!(
                after,
                PageHead {
                    changes_up_to: head.changes_up_to + 1,
                    muted: true,
                    peer_name: None,
                    reader_name: Some("alice".into())
                }
            );
            assert!(
                !page_head(&db, alice.id, Direct(bob.id)).await.unwrap().muted,
                "muting the group is not muting Bob"
            );
            assert!(!page_head(&db, bob.id, Group(room)).await.unwrap().muted, "Alice's mute is hers");
            assert_eq!(page_head(&db, alice.id, Direct(999_999)).await.unwrap().peer_name, None, "nobody");
            let page = conversation(&db, alice.id, 999_999, None, None).await;
            assert_eq!(status(page), 404);
        })
        .await;
    }

    #[tokio::test]
    async fn many_changes_come_in_pages() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let mut ids = Vec::new();
            for i in 0..(PAGE_MAX + 5) {
                ids.push(message(&db, alice.id, bob.id, &format!("m{i}")).await.id);
            }
            let page = conversation(&db, bob.id, alice.id, None, Some(1)).await.unwrap();
            for &id in &ids {
                react(&db, bob.id, id, "👀").await.unwrap();
            }
            let newest = *ids.last().unwrap();
            let first = conversation_since(&db, bob.id, alice.id, newest, page.changes_up_to).await.unwrap();
            assert_eq!(first.changed.len(), PAGE_MAX as usize);
            assert!(first.more_changes);
            let rest = conversation_since(&db, bob.id, alice.id, newest, first.changes_up_to).await.unwrap();
            assert_eq!(rest.changed.len(), 5);
            assert!(!rest.more_changes);
        })
        .await;
    }

    #[tokio::test]
    async fn in_a_group_members_act_and_former_members_only_read() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let ada = user(&db, "ada").await;
            let bob = user(&db, "bob").await;
            let rex = user(&db, "rex").await;
            let olga = user(&db, "olga").await;
            let created = groups::create(&db, &ada, "Team", &[bob.id, rex.id]).await.unwrap();
            let room = created.group.id;
            let hello = groups::send(&db, &limiter, &bob, room, "hello team", "c-1", None).await.unwrap().message;
            let page = groups::history(&db, ada.id, room, None, None).await.unwrap();

            // The system line cannot be changed or reacted to.
            assert_eq!(status(react(&db, ada.id, created.change.line.id, "👍").await), 400);
            assert_eq!(status(delete(&db, None, ada.id, created.change.line.id).await), 400);
            // Members react and reply; the author edits; an admin cannot edit someone else's.
            react(&db, ada.id, hello.id, "👋").await.unwrap();
            react(&db, rex.id, hello.id, "👋").await.unwrap();
            let reply = groups::send(&db, &limiter, &ada, room, "hi bob", "c-2", Some(hello.id)).await.unwrap();
            assert_eq!(reply.message.reply_to.unwrap().sender_name, "bob");
            assert_eq!(status(edit(&db, ada.id, hello.id, "admin edit").await), 403);
            edit(&db, bob.id, hello.id, "hello, team").await.unwrap();
            assert_eq!(status(react(&db, olga.id, hello.id, "👋").await), 404, "never a member");

            groups::remove(&db, &ada, room, rex.id).await.unwrap();
            assert_eq!(status(react(&db, rex.id, hello.id, "🎉").await), 403, "former member");
            assert_eq!(status(unreact(&db, rex.id, hello.id, "👋").await), 403);
            let later = groups::send(&db, &limiter, &bob, room, "after rex left", "c-3", None).await.unwrap().message;
            assert_eq!(status(react(&db, rex.id, later.id, "🎉").await), 404, "sent after they left");

            let update = groups::since(&db, ada.id, room, reply.message.id, page.changes_up_to).await.unwrap();
            let hello_now = update.changed.iter().find(|m| m.id == hello.id).unwrap();
            assert_eq!(hello_now.body, "hello, team");
            assert_eq!(hello_now.reactions[0].count(), 2);
            // The list follows the last message's deletion.
            delete(&db, None, bob.id, later.id).await.unwrap();
            let list = contacts(&db, ada.id, None).await.unwrap();
            let group = list.people.iter().find(|c| c.kind != ContactKind::Person).unwrap();
            assert!(group.last_message.as_ref().unwrap().deleted);
        })
        .await;
    }
}
