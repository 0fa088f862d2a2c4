//! Group conversations: creating a group, its history and catch-up, sends, per-member read marks,
//! and the membership actions (rename, add, remove, leave, make admin) with the history lines they
//! leave. Every function takes the asking user and checks, before anything else, what they are:
//! never a member (404, nothing is said about the group), a former member (reads what they saw
//! before leaving, 403 on anything else), a member, or an admin (403 on admin actions otherwise).

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use crate::error::AppError;
use crate::model::{
    ChatMessage, Contact, ContactKind, ConversationPage, ConversationUpdate, GROUP_MAX_MEMBERS, GroupInfo, LastMessage,
    MEMBERS_PAGE, Member, MemberPage, MessageKind, PAGE_MAX, Peer, ReadMark,
};
use crate::realtime::{GroupChanged, GroupRead};
use crate::ssr::conversations::new_client_id;
use crate::ssr::entities::{chat_room_participants as participants, chat_rooms, messages, users};
use crate::ssr::messages::{Destination, Draft, NewMessage, Sent, names};
use crate::ssr::rate_limit::SlidingWindow;
use crate::validation;

/// What the asking user is to a group.
struct Membership {
    room: chat_rooms::Model,
    row: participants::Model,
}

impl Membership {
    fn is_current(&self) -> bool {
        self.row.left_at.is_none()
    }

    /// 403 for a former member: they know the group, and may only read.
    fn require_current(&self) -> Result<(), AppError> {
        if self.is_current() {
            Ok(())
        } else {
            Err(AppError::Forbidden { message: "you are no longer a member of this group".into() })
        }
    }

    fn require_admin(&self) -> Result<(), AppError> {
        self.require_current()?;
        if self.row.is_admin {
            Ok(())
        } else {
            Err(AppError::Forbidden { message: "only the group's admins can do that".into() })
        }
    }

    /// The newest message this member may read: all of them while a member.
    fn visible_up_to(&self) -> i64 {
        if self.is_current() { i64::MAX } else { self.row.visible_up_to.unwrap_or(0) }
    }
}

fn no_such_group() -> AppError {
    AppError::not_found("no such group")
}

/// Whether `user_id` is a member of group `room_id` now (not before, not never).
pub async fn is_member(db: &impl ConnectionTrait, user_id: i64, room_id: i64) -> Result<bool, AppError> {
    Ok(participants::Entity::find_by_id((room_id, user_id)).one(db).await?.is_some_and(|row| row.left_at.is_none()))
}

async fn membership(db: &impl ConnectionTrait, me: i64, room_id: i64) -> Result<Membership, AppError> {
    let row = participants::Entity::find_by_id((room_id, me)).one(db).await?.ok_or_else(no_such_group)?;
    let room = chat_rooms::Entity::find_by_id(room_id).one(db).await?.ok_or_else(no_such_group)?;
    Ok(Membership { room, row })
}

async fn member_count(db: &impl ConnectionTrait, room_id: i64) -> Result<i64, AppError> {
    let count = participants::Entity::find()
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::LeftAt.is_null())
        .count(db)
        .await?;
    Ok(i64::try_from(count).unwrap_or(i64::MAX))
}

/// Stored rows as the browser sees them (names, quotes, reactions).
async fn with_names(db: &impl ConnectionTrait, rows: Vec<messages::Model>) -> Result<Vec<ChatMessage>, AppError> {
    crate::ssr::messages::present(db, rows).await
}

/// A group name: 1–80 characters after trimming, no control characters.
pub fn group_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(AppError::invalid("name", "give the group a name"));
    }
    if chars > crate::model::GROUP_NAME_MAX_CHARS {
        return Err(AppError::invalid(
            "name",
            format!("a group name has at most {} characters", crate::model::GROUP_NAME_MAX_CHARS),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::invalid("name", "a group name cannot contain control characters"));
    }
    Ok(name.to_owned())
}

/// The people `ids` names, without `me` and repeats; 400 when one of them does not exist.
async fn people(db: &impl ConnectionTrait, me: i64, ids: &[i64]) -> Result<Vec<users::Model>, AppError> {
    let wanted: HashSet<i64> = ids.iter().copied().filter(|&id| id != me).collect();
    if wanted.len() >= GROUP_MAX_MEMBERS {
        return Err(AppError::invalid("member_ids", format!("a group has at most {GROUP_MAX_MEMBERS} members")));
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let found = users::Entity::find().filter(users::Column::Id.is_in(wanted.iter().copied())).all(db).await?;
    if found.len() != wanted.len() {
        return Err(AppError::invalid("member_ids", "one of the people to add does not exist"));
    }
    Ok(found)
}

/// "Bob", "Bob and Carol", "Bob, Carol and Dana", "Bob, Carol and 5 others".
fn list_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [first @ .., last] if names.len() <= 3 => format!("{} and {last}", first.join(", ")),
        [a, b, rest @ ..] => format!("{a}, {b} and {} others", rest.len()),
    }
}

/// Stores a system line about group `room_id`, written by `actor`.
async fn system_line(
    db: &impl ConnectionTrait,
    room_id: i64,
    actor: &users::Model,
    text: String,
) -> Result<ChatMessage, AppError> {
    let at = Utc::now();
    let row = messages::ActiveModel {
        body: Set(text),
        user_id: Set(actor.id),
        recipient_id: Set(None),
        chat_room_id: Set(Some(room_id)),
        client_id: Set(new_client_id()),
        kind: Set(MessageKind::System.as_str().to_owned()),
        read_at: Set(None),
        edited_at: Set(None),
        deleted_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let mut line = ChatMessage::from(row);
    line.sender_name = actor.name.clone();
    Ok(line)
}

/// Adds (or brings back) `people` as plain members of `room_id`, having read up to `read_up_to`.
async fn join(
    db: &impl ConnectionTrait,
    room_id: i64,
    people: &[users::Model],
    read_up_to: i64,
) -> Result<(), AppError> {
    let now = Utc::now();
    let ids: Vec<i64> = people.iter().map(|p| p.id).collect();
    // Former members come back as new members: the row is replaced.
    participants::Entity::delete_many()
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::UserId.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    for chunk in ids.chunks(500) {
        let rows = chunk.iter().map(|&user_id| participants::ActiveModel {
            chat_room_id: Set(room_id),
            user_id: Set(user_id),
            last_read_message_id: Set(Some(read_up_to)),
            joined_at: Set(now),
            is_admin: Set(false),
            left_at: Set(None),
            visible_up_to: Set(None),
        });
        participants::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// What a group action did: the history's line, and what the group's channels must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub line: ChatMessage,
    pub event: GroupChanged,
}

impl Change {
    fn new(room: &chat_rooms::Model, member_count: i64, line: ChatMessage) -> Self {
        let event = GroupChanged {
            room_id: room.id,
            name: room.name.clone(),
            member_count,
            added: Vec::new(),
            removed: Vec::new(),
            promoted: Vec::new(),
            line: line.clone(),
        };
        Self { line, event }
    }
}

/// A created group, as the conversation list shows it, and its first change (everyone added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub group: Contact,
    pub change: Change,
}

/// Creates group `name` with `me` as its first admin and `member_ids` as members.
pub async fn create(
    db: &DatabaseConnection,
    me: &users::Model,
    name: &str,
    member_ids: &[i64],
) -> Result<Created, AppError> {
    let name = group_name(name)?;
    let people = people(db, me.id, member_ids).await?;
    if people.is_empty() {
        return Err(AppError::invalid("member_ids", "add at least one person to the group"));
    }
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let at = Utc::now();
    let room = chat_rooms::ActiveModel {
        name: Set(name.clone()),
        created_by: Set(Some(me.id)),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let mut names: Vec<String> = people.iter().map(|p| p.name.clone()).collect();
    names.sort_by_key(|n| n.to_lowercase());
    let line = system_line(&tx, room.id, me, format!("{} created the group and added {}", me.name, list_names(&names)))
        .await?;
    participants::ActiveModel {
        chat_room_id: Set(room.id),
        user_id: Set(me.id),
        last_read_message_id: Set(Some(line.id)),
        joined_at: Set(at),
        is_admin: Set(true),
        left_at: Set(None),
        visible_up_to: Set(None),
    }
    .insert(&tx)
    .await?;
    join(&tx, room.id, &people, line.id).await?;
    tx.commit().await?;

    let member_count = i64::try_from(people.len() + 1).unwrap_or(i64::MAX);
    let mut change = Change::new(&room, member_count, line.clone());
    // The creator's other tabs learn of the group as the people added do.
    change.event.added = std::iter::once(me.id).chain(people.iter().map(|p| p.id)).collect();
    let group = Contact {
        id: room.id,
        kind: ContactKind::Group { members: member_count, member: true },
        name,
        last_message: Some(last_message(me.id, &line)),
        unread: 0,
        last_message_id: Some(line.id),
        muted: false,
        online: false,
    };
    Ok(Created { group, change })
}

fn last_message(me: i64, m: &ChatMessage) -> LastMessage {
    LastMessage {
        body: m.body.clone(),
        from_me: m.sender_id == me,
        created_at: m.created_at,
        sender_name: Some(m.sender_name.clone()),
        kind: m.kind,
        deleted: m.deleted,
    }
}

/// The group's info for a page: size, my standing, and the other members' read marks that reach
/// at least message `from_id`.
async fn info(db: &impl ConnectionTrait, me: &Membership, from_id: i64) -> Result<GroupInfo, AppError> {
    let room_id = me.room.id;
    let marks: Vec<(i64, Option<i64>)> = participants::Entity::find()
        .select_only()
        .column(participants::Column::UserId)
        .column(participants::Column::LastReadMessageId)
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::LeftAt.is_null())
        .filter(participants::Column::UserId.ne(me.row.user_id))
        .filter(participants::Column::LastReadMessageId.gte(from_id))
        .into_tuple()
        .all(db)
        .await?;
    let names = names(db, marks.iter().map(|&(id, _)| id)).await?;
    let read_marks = marks
        .into_iter()
        .filter_map(|(user_id, up_to)| Some(ReadMark { user_id, name: names.get(&user_id)?.clone(), up_to_id: up_to? }))
        .collect();
    Ok(GroupInfo {
        member_count: member_count(db, room_id).await?,
        member: me.is_current(),
        admin: me.is_current() && me.row.is_admin,
        read_marks,
        my_read_up_to: me.row.last_read_message_id.unwrap_or(0),
    })
}

/// One page of group `room_id`'s history, oldest first (the newest `limit`, or those before
/// `before_id`). A former member gets what they could see before they left.
pub async fn history(
    db: &impl ConnectionTrait,
    me: i64,
    room_id: i64,
    before_id: Option<i64>,
    limit: Option<u32>,
) -> Result<ConversationPage, AppError> {
    page(db, me, room_id, before_id, validation::page_limit(limit)?).await
}

/// The newest page of group `room_id` that reaches back to message `at` (a search hit), with a
/// few older ones before it (see [`crate::ssr::messages::reach`]).
pub async fn history_at(
    db: &impl ConnectionTrait,
    me: i64,
    room_id: i64,
    at: i64,
) -> Result<ConversationPage, AppError> {
    let limit =
        crate::ssr::messages::reach(db, sea_orm::Condition::all().add(messages::Column::ChatRoomId.eq(room_id)), at)
            .await?;
    page(db, me, room_id, None, limit).await
}

async fn page(
    db: &impl ConnectionTrait,
    me: i64,
    room_id: i64,
    before_id: Option<i64>,
    limit: u64,
) -> Result<ConversationPage, AppError> {
    let membership = membership(db, me, room_id).await?;
    // Read before the rows: a change made meanwhile is sent again by the next catch-up, never lost.
    let head = crate::ssr::messages::page_head(db, me, crate::model::ConversationRef::Group(room_id)).await?;
    let mut query = messages::Entity::find()
        .filter(messages::Column::ChatRoomId.eq(room_id))
        .filter(messages::Column::Id.lte(membership.visible_up_to()));
    if let Some(before_id) = before_id {
        query = query.filter(messages::Column::Id.lt(before_id));
    }
    let mut rows = query.order_by_desc(messages::Column::Id).limit(limit + 1).all(db).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    let from_id = rows.first().map_or(0, |m| m.id);
    Ok(ConversationPage {
        peer: Peer { id: room_id, name: membership.room.name.clone() },
        group: Some(info(db, &membership, from_id).await?),
        messages: with_names(db, rows).await?,
        has_more,
        compose_id: new_client_id(),
        changes_up_to: head.changes_up_to,
        muted: head.muted,
    })
}

/// What a tab missed in group `room_id` after message `after_id` (at most [`PAGE_MAX`], oldest
/// first), the messages up to it changed after change `changes_after`, and the members' read
/// marks now.
pub async fn since(
    db: &impl ConnectionTrait,
    me: i64,
    room_id: i64,
    after_id: i64,
    changes_after: i64,
) -> Result<ConversationUpdate, AppError> {
    let membership = membership(db, me, room_id).await?;
    let visible = std::cmp::min(after_id, membership.visible_up_to());
    let (changed, changes_up_to, more_changes) = crate::ssr::messages::changed_since(
        db,
        sea_orm::Condition::all().add(messages::Column::ChatRoomId.eq(room_id)),
        changes_after,
        visible,
    )
    .await?;
    let limit = u64::from(PAGE_MAX);
    let mut rows = messages::Entity::find()
        .filter(messages::Column::ChatRoomId.eq(room_id))
        .filter(messages::Column::Id.gt(after_id))
        .filter(messages::Column::Id.lte(membership.visible_up_to()))
        .order_by_asc(messages::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok(ConversationUpdate {
        messages: with_names(db, rows).await?,
        has_more,
        peer_read_up_to: None,
        peer_read_at: None,
        group: Some(info(db, &membership, 0).await?),
        changed,
        changes_up_to,
        more_changes,
    })
}

/// Sends `body` from `me` to group `room_id`, answering message `reply_to_id` if given.
/// `(me, client_id)` makes it idempotent, as a one-to-one send; the same rate limit counts both.
pub async fn send(
    db: &DatabaseConnection,
    limiter: &SlidingWindow,
    me: &users::Model,
    room_id: i64,
    body: &str,
    client_id: &str,
    reply_to_id: Option<i64>,
) -> Result<Sent, AppError> {
    send_draft(db, limiter, me, room_id, Draft { body, client_id, reply_to_id, attachments: &[] }).await
}

/// As [`send`], with files: `draft.attachments` are `me`'s uploads, and the text may then be empty.
pub async fn send_draft(
    db: &DatabaseConnection,
    limiter: &SlidingWindow,
    me: &users::Model,
    room_id: i64,
    draft: Draft<'_>,
) -> Result<Sent, AppError> {
    let client_id = validation::client_id(draft.client_id)?;
    let to = Destination::Group(room_id);
    let attempt = async {
        crate::ssr::messages::checked_body(draft.body, draft.attachments)?;
        membership(db, me.id, room_id).await?.require_current()?;
        let Draft { body, reply_to_id, attachments, .. } = draft;
        let new =
            NewMessage { me: me.id, sender_name: &me.name, to, body, client_id: &client_id, reply_to_id, attachments };
        crate::ssr::messages::store(db, limiter, new).await
    };
    // A retry is answered with what the first attempt stored, whatever changed since (a former
    // member's retry included).
    crate::ssr::messages::or_already_sent(db, me.id, to, &client_id, attempt.await).await
}

/// Moves my read mark in group `room_id` forward to `up_to_id` (never past the group's newest
/// message, never back). `Some` with the new mark when it moved.
pub async fn mark_read(
    db: &DatabaseConnection,
    me: &users::Model,
    room_id: i64,
    up_to_id: i64,
) -> Result<Option<GroupRead>, AppError> {
    membership(db, me.id, room_id).await?.require_current()?;
    let newest: Option<i64> = messages::Entity::find()
        .select_only()
        .column_as(messages::Column::Id.max(), "newest")
        .filter(messages::Column::ChatRoomId.eq(room_id))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    let up_to_id = std::cmp::min(up_to_id, newest.unwrap_or(0));
    if up_to_id <= 0 {
        return Ok(None);
    }
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let moved = participants::Entity::update_many()
        .col_expr(participants::Column::LastReadMessageId, Expr::value(up_to_id))
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::UserId.eq(me.id))
        .filter(participants::Column::LeftAt.is_null())
        .filter(
            participants::Column::LastReadMessageId.is_null().or(participants::Column::LastReadMessageId.lt(up_to_id)),
        )
        .exec(db)
        .await?
        .rows_affected;
    Ok((moved > 0).then(|| GroupRead { room_id, reader_id: me.id, reader_name: me.name.clone(), up_to_id }))
}

/// A page of group `room_id`'s members: admins first, then by name. `after` is the previous
/// page's `next`.
pub async fn members(
    db: &impl ConnectionTrait,
    me: i64,
    room_id: i64,
    after: Option<&str>,
) -> Result<MemberPage, AppError> {
    membership(db, me, room_id).await?.require_current()?;
    let after = match after.filter(|a| !a.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| AppError::invalid("after", "after must be a member id"))?),
    };
    let rows: Vec<(i64, bool)> = participants::Entity::find()
        .select_only()
        .column(participants::Column::UserId)
        .column(participants::Column::IsAdmin)
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::LeftAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let names = names(db, rows.iter().map(|&(id, _)| id)).await?;
    let mut all: Vec<Member> = rows
        .into_iter()
        .map(|(id, admin)| Member { id, name: names.get(&id).cloned().unwrap_or_default(), admin, online: false })
        .collect();
    all.sort_by(|a, b| {
        b.admin.cmp(&a.admin).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase())).then(a.id.cmp(&b.id))
    });
    let start = match after {
        None => 0,
        Some(id) => all.iter().position(|m| m.id == id).map_or(all.len(), |i| i + 1),
    };
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let page: Vec<Member> = all.into_iter().skip(start).take(MEMBERS_PAGE as usize + 1).collect();
    let more = page.len() > MEMBERS_PAGE as usize;
    let mut members: Vec<Member> = page.into_iter().take(MEMBERS_PAGE as usize).collect();
    // Fellow members are each other's circle: their status is theirs to see.
    let online = crate::ssr::online::online_among(db, members.iter().map(|m| m.id)).await?;
    for member in &mut members {
        member.online = online.contains(&member.id);
    }
    let next = more.then(|| members.last().map(|m| m.id.to_string())).flatten();
    Ok(MemberPage { members, next, total })
}

/// Renames group `room_id` (admins).
pub async fn rename(db: &DatabaseConnection, me: &users::Model, room_id: i64, name: &str) -> Result<Change, AppError> {
    let membership = membership(db, me.id, room_id).await?;
    membership.require_admin()?;
    let name = group_name(name)?;
    if name == membership.room.name {
        return Err(AppError::invalid("name", "the group already has this name"));
    }
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let mut room: chat_rooms::ActiveModel = membership.room.into();
    room.name = Set(name.clone());
    room.updated_at = Set(Utc::now());
    let room = room.update(&tx).await?;
    let line = system_line(&tx, room_id, me, format!("{} renamed the group to “{name}”", me.name)).await?;
    tx.commit().await?;
    Ok(Change::new(&room, member_count(db, room_id).await?, line))
}

/// Adds `member_ids` to group `room_id` (admins). People already in it are refused, so a repeated
/// request does not write a second line.
pub async fn add(
    db: &DatabaseConnection,
    me: &users::Model,
    room_id: i64,
    member_ids: &[i64],
) -> Result<Change, AppError> {
    let membership = membership(db, me.id, room_id).await?;
    membership.require_admin()?;
    let people = people(db, me.id, member_ids).await?;
    if people.is_empty() {
        return Err(AppError::invalid("member_ids", "choose at least one person to add"));
    }
    let mut current = HashSet::new();
    for person in &people {
        if is_member(db, person.id, room_id).await? {
            current.insert(person.id);
        }
    }
    if !current.is_empty() {
        return Err(AppError::invalid("member_ids", "some of these people are already in the group"));
    }
    let count = member_count(db, room_id).await?;
    if count as usize + people.len() > GROUP_MAX_MEMBERS {
        return Err(AppError::invalid("member_ids", format!("a group has at most {GROUP_MAX_MEMBERS} members")));
    }
    let mut names: Vec<String> = people.iter().map(|p| p.name.clone()).collect();
    names.sort_by_key(|n| n.to_lowercase());
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let line = system_line(&tx, room_id, me, format!("{} added {}", me.name, list_names(&names))).await?;
    join(&tx, room_id, &people, line.id).await?;
    tx.commit().await?;
    let mut change = Change::new(&membership.room, count + people.len() as i64, line);
    change.event.added = people.iter().map(|p| p.id).collect();
    Ok(change)
}

/// Ends `user_id`'s membership after `line` (they still see it), and hands the admin role on when
/// nobody else holds it. Returns who was promoted.
async fn depart(tx: &impl ConnectionTrait, room_id: i64, user_id: i64, line: &ChatMessage) -> Result<(), AppError> {
    participants::Entity::update_many()
        .col_expr(participants::Column::LeftAt, Expr::value(Utc::now()))
        .col_expr(participants::Column::VisibleUpTo, Expr::value(line.id))
        .col_expr(participants::Column::IsAdmin, Expr::value(false))
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::UserId.eq(user_id))
        .exec(tx)
        .await?;
    Ok(())
}

/// When no current member is an admin, the longest-standing one becomes admin.
async fn ensure_admin(tx: &impl ConnectionTrait, room_id: i64) -> Result<Option<i64>, AppError> {
    let current = participants::Entity::find()
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::LeftAt.is_null());
    if current.clone().filter(participants::Column::IsAdmin.eq(true)).count(tx).await? > 0 {
        return Ok(None);
    }
    let Some(eldest) =
        current.order_by_asc(participants::Column::JoinedAt).order_by_asc(participants::Column::UserId).one(tx).await?
    else {
        return Ok(None);
    };
    participants::Entity::update_many()
        .col_expr(participants::Column::IsAdmin, Expr::value(true))
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::UserId.eq(eldest.user_id))
        .exec(tx)
        .await?;
    Ok(Some(eldest.user_id))
}

/// Removes member `user_id` from group `room_id` (admins; yourself: leave instead).
pub async fn remove(
    db: &DatabaseConnection,
    me: &users::Model,
    room_id: i64,
    user_id: i64,
) -> Result<Change, AppError> {
    let membership = membership(db, me.id, room_id).await?;
    membership.require_admin()?;
    if user_id == me.id {
        return Err(AppError::invalid("user_id", "to remove yourself, leave the group"));
    }
    if !is_member(db, user_id, room_id).await? {
        return Err(AppError::not_found("no such member"));
    }
    let name = names(db, [user_id]).await?.remove(&user_id).unwrap_or_default();
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let line = system_line(&tx, room_id, me, format!("{} removed {name}", me.name)).await?;
    depart(&tx, room_id, user_id, &line).await?;
    tx.commit().await?;
    let mut change = Change::new(&membership.room, member_count(db, room_id).await?, line);
    change.event.removed = vec![user_id];
    Ok(change)
}

/// I leave group `room_id`. When I was its last admin, the longest-standing member becomes admin.
pub async fn leave(db: &DatabaseConnection, me: &users::Model, room_id: i64) -> Result<Change, AppError> {
    let membership = membership(db, me.id, room_id).await?;
    membership.require_current()?;
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    let mut line = system_line(&tx, room_id, me, format!("{} left", me.name)).await?;
    depart(&tx, room_id, me.id, &line).await?;
    let promoted = ensure_admin(&tx, room_id).await?;
    if let Some(id) = promoted {
        let name = names(&tx, [id]).await?.remove(&id).unwrap_or_default();
        // One line says both: "Bob left; Carol is now an admin".
        let text = format!("{} left; {name} is now an admin", me.name);
        messages::Entity::update_many()
            .col_expr(messages::Column::Body, Expr::value(text.clone()))
            .filter(messages::Column::Id.eq(line.id))
            .exec(&tx)
            .await?;
        line.body = text;
    }
    tx.commit().await?;
    let mut change = Change::new(&membership.room, member_count(db, room_id).await?, line);
    change.event.removed = vec![me.id];
    change.event.promoted = promoted.into_iter().collect();
    Ok(change)
}

/// Makes member `user_id` an admin of group `room_id` (admins).
pub async fn make_admin(
    db: &DatabaseConnection,
    me: &users::Model,
    room_id: i64,
    user_id: i64,
) -> Result<Change, AppError> {
    let membership = membership(db, me.id, room_id).await?;
    membership.require_admin()?;
    let target = participants::Entity::find_by_id((room_id, user_id))
        .one(db)
        .await?
        .filter(|row| row.left_at.is_none())
        .ok_or_else(|| AppError::not_found("no such member"))?;
    if target.is_admin {
        return Err(AppError::invalid("user_id", "already an admin"));
    }
    let name = names(db, [user_id]).await?.remove(&user_id).unwrap_or_default();
    let _turn = crate::ssr::sqlite_write_turn(db).await;
    let tx = crate::ssr::begin_write(db).await?;
    participants::Entity::update_many()
        .col_expr(participants::Column::IsAdmin, Expr::value(true))
        .filter(participants::Column::ChatRoomId.eq(room_id))
        .filter(participants::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    let line = system_line(&tx, room_id, me, format!("{} made {name} an admin", me.name)).await?;
    tx.commit().await?;
    let mut change = Change::new(&membership.room, member_count(db, room_id).await?, line);
    change.event.promoted = vec![user_id];
    Ok(change)
}

/// The groups `me` is or was in, as conversation-list rows: newest message, my unread count
/// (messages by others after my read mark, up to [`crate::model::UNREAD_COUNTED`]), size and my
/// standing. `search` narrows by name.
/// Two queries however many groups: the rows, then the newest messages' senders' names.
pub async fn list(db: &impl ConnectionTrait, me: i64, search: Option<&str>) -> Result<Vec<Contact>, AppError> {
    // Per group of mine: the newest message I may see (all of them while a member; up to my
    // leaving after), my unread count while a member, and the current members. Each subquery is
    // a seek in an index on (chat_room_id, id) or (chat_room_id, left_at), not a scan of the group.
    let backend = db.get_database_backend();
    let me_param = match backend {
        DbBackend::Postgres => "$1",
        _ => "?1",
    };
    // Around it, the newest message itself, its sender's name and whether I muted the group: the
    // whole row of the list in one statement.
    let sql = format!(
        "SELECT g.room_id, g.name, g.member, g.last_id, g.unread, g.members, \
           m.user_id AS last_sender, m.body AS last_body, m.kind AS last_kind, m.created_at AS last_at, \
           m.deleted_at AS last_deleted_at, s.name AS last_sender_name, \
           CAST(CASE WHEN EXISTS (SELECT 1 FROM conversation_mutes c \
              WHERE c.user_id = {me_param} AND c.conversation = 'g' || g.room_id) THEN 1 ELSE 0 END AS BIGINT) AS muted \
         FROM (SELECT p.chat_room_id AS room_id, r.name AS name, \
           CAST(CASE WHEN p.left_at IS NULL THEN 1 ELSE 0 END AS BIGINT) AS member, \
           (SELECT MAX(m.id) FROM messages m WHERE m.chat_room_id = p.chat_room_id \
              AND m.id <= CASE WHEN p.left_at IS NULL THEN {newest} ELSE COALESCE(p.visible_up_to, 0) END) AS last_id, \
           CASE WHEN p.left_at IS NULL THEN (SELECT COUNT(*) FROM (SELECT 1 FROM messages m \
              WHERE m.chat_room_id = p.chat_room_id \
              AND m.id > COALESCE(p.last_read_message_id, 0) AND m.deleted_at IS NULL \
              AND m.user_id <> {me_param} AND m.kind = '{text}' LIMIT {counted}) AS u) ELSE 0 END AS unread, \
           (SELECT COUNT(*) FROM chat_room_participants q \
              WHERE q.chat_room_id = p.chat_room_id AND q.left_at IS NULL) AS members \
         FROM chat_room_participants p JOIN chat_rooms r ON r.id = p.chat_room_id \
         WHERE p.user_id = {me_param}) g \
         LEFT JOIN messages m ON m.id = g.last_id LEFT JOIN users s ON s.id = m.user_id \
         ORDER BY g.room_id",
        newest = i64::MAX,
        text = MessageKind::Text.as_str(),
        counted = crate::model::UNREAD_COUNTED,
    );
    let needle = search.map(str::to_lowercase);
    let mut groups = Vec::new();
    for row in db.query_all_raw(Statement::from_sql_and_values(backend, sql, [me.into()])).await? {
        let name: String = row.try_get("", "name")?;
        if needle.as_ref().is_some_and(|n| !name.to_lowercase().contains(n.as_str())) {
            continue;
        }
        let last_id: Option<i64> = row.try_get("", "last_id")?;
        let last = match last_id {
            Some(_) => {
                let deleted_at: Option<chrono::DateTime<Utc>> = row.try_get("", "last_deleted_at")?;
                let body: String = row.try_get("", "last_body")?;
                let sender: i64 = row.try_get("", "last_sender")?;
                let kind: String = row.try_get("", "last_kind")?;
                Some(LastMessage {
                    body: if deleted_at.is_some() { String::new() } else { body },
                    from_me: sender == me,
                    created_at: row.try_get("", "last_at")?,
                    sender_name: Some(row.try_get::<Option<String>>("", "last_sender_name")?.unwrap_or_default()),
                    kind: MessageKind::from_column(&kind),
                    deleted: deleted_at.is_some(),
                })
            }
            None => None,
        };
        groups.push(Contact {
            id: row.try_get("", "room_id")?,
            kind: ContactKind::Group {
                members: row.try_get("", "members")?,
                member: row.try_get::<i64>("", "member")? == 1,
            },
            name,
            last_message_id: last_id,
            last_message: last,
            unread: row.try_get("", "unread")?,
            muted: row.try_get::<i64>("", "muted")? == 1,
            online: false,
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::test_support::{for_each_database, unlimited, user};

    #[test]
    fn names_are_listed_as_people_say_them() {
        let n = |names: &[&str]| list_names(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(n(&["Bob"]), "Bob");
        assert_eq!(n(&["Bob", "Carol"]), "Bob and Carol");
        assert_eq!(n(&["Bob", "Carol", "Dana"]), "Bob, Carol and Dana");
        assert_eq!(n(&["Bob", "Carol", "Dana", "Erin", "Finn"]), "Bob, Carol and 3 others");
    }

    #[test]
    fn group_names_are_checked() {
        assert_eq!(group_name("  Trip  ").unwrap(), "Trip");
        assert_eq!(group_name(&"é".repeat(80)).unwrap().chars().count(), 80);
        for bad in ["", "   ", "tab\tname", &"x".repeat(81)] {
            assert_eq!(group_name(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn creating_a_group_makes_me_its_admin_and_tells_everyone() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let created = create(&db, &alice, " Trip ", &[bob.id, carol.id, bob.id, alice.id]).await.unwrap();
            assert_eq!(created.group.name, "Trip");
            assert_eq!(created.group.kind, ContactKind::Group { members: 3, member: true });
            assert_eq!(created.change.line.body, "alice created the group and added bob and carol");
            assert_eq!(created.change.line.kind, MessageKind::System);
            let mut added = created.change.event.added.clone();
            added.sort_unstable();
            assert_eq!(added, [alice.id, bob.id, carol.id]);

            let err = create(&db, &alice, "Solo", &[alice.id]).await.unwrap_err();
            assert_eq!(err.for_field("member_ids").as_deref(), Some("add at least one person to the group"));
            let err = create(&db, &alice, "Ghosts", &[bob.id, 9_999]).await.unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(create(&db, &alice, "", &[bob.id]).await.unwrap_err().for_field("name").is_some());
        })
        .await;
    }

    use crate::ssr::rate_limit::message_sends;

    fn status<T: std::fmt::Debug>(result: Result<T, AppError>) -> u16 {
        result.expect_err("refused").status()
    }

    fn bodies(page: &[ChatMessage]) -> Vec<&str> {
        page.iter().map(|m| m.body.as_str()).collect()
    }

    #[tokio::test]
    async fn every_action_checks_membership_and_role() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let admin = user(&db, "ada").await;
            let member = user(&db, "bob").await;
            let removed = user(&db, "rex").await;
            let outsider = user(&db, "olga").await;
            let extra = user(&db, "eve").await;
            let room = create(&db, &admin, "Team", &[member.id, removed.id]).await.unwrap().group.id;
            remove(&db, &admin, room, removed.id).await.unwrap();

            // A stranger learns nothing: 404 everywhere, as for a group that does not exist.
            for (who, room) in [(&outsider, room), (&admin, room + 100)] {
                assert_eq!(status(history(&db, who.id, room, None, None).await), 404);
                assert_eq!(status(since(&db, who.id, room, 0, 0).await), 404);
                assert_eq!(status(send(&db, &limiter, who, room, "hi", "c-x", None).await), 404);
                assert_eq!(status(mark_read(&db, who, room, 1).await), 404);
                assert_eq!(status(members(&db, who.id, room, None).await), 404);
                assert_eq!(status(rename(&db, who, room, "Mine").await), 404);
                assert_eq!(status(add(&db, who, room, &[extra.id]).await), 404);
                assert_eq!(status(remove(&db, who, room, member.id).await), 404);
                assert_eq!(status(leave(&db, who, room).await), 404);
                assert_eq!(status(make_admin(&db, who, room, member.id).await), 404);
            }
            assert!(!is_member(&db, outsider.id, room).await.unwrap());

            // A plain member talks, reads and leaves, but the admin actions are 403.
            let first = send(&db, &limiter, &member, room, "hello team", "c-1", None).await.unwrap();
            assert!(first.created);
            let retry = send(&db, &limiter, &member, room, "hello team", "c-1", None).await.unwrap();
            assert_eq!((retry.created, retry.message.id), (false, first.message.id), "a retry stores nothing");
            // The key of a group message cannot be used again elsewhere.
            let elsewhere = crate::ssr::conversations::send(&db, &limiter, &member, admin.id, "hi", "c-1", None).await;
            assert_eq!(status(elsewhere), 400);
            assert_eq!(members(&db, member.id, room, None).await.unwrap().total, 2);
            assert_eq!(status(rename(&db, &member, room, "Mine").await), 403);
            assert_eq!(status(add(&db, &member, room, &[extra.id]).await), 403);
            assert_eq!(status(remove(&db, &member, room, admin.id).await), 403);
            assert_eq!(status(make_admin(&db, &member, room, member.id).await), 403);

            // A removed member reads what they saw, and nothing else is allowed.
            let page = history(&db, removed.id, room, None, None).await.unwrap();
            assert_eq!(bodies(&page.messages), ["ada created the group and added bob and rex", "ada removed rex"]);
            let info = page.group.unwrap();
            assert!(!info.member && !info.admin);
            assert!(since(&db, removed.id, room, 0, 0).await.unwrap().messages.len() == 2, "not bob's later message");
            assert_eq!(status(send(&db, &limiter, &removed, room, "let me in", "c-r", None).await), 403);
            assert_eq!(status(mark_read(&db, &removed, room, i64::MAX).await), 403);
            assert_eq!(status(members(&db, removed.id, room, None).await), 403);
            assert_eq!(status(leave(&db, &removed, room).await), 403);
            assert_eq!(status(rename(&db, &removed, room, "Mine").await), 403);
            assert!(!is_member(&db, removed.id, room).await.unwrap());

            // The admin does all of it; each action leaves its line in the history.
            rename(&db, &admin, room, "Dream team").await.unwrap();
            assert_eq!(status(rename(&db, &admin, room, "Dream team").await), 400);
            let added = add(&db, &admin, room, &[extra.id, removed.id]).await.unwrap();
            assert_eq!(added.event.member_count, 4);
            assert_eq!(status(add(&db, &admin, room, &[extra.id]).await), 400, "already in");
            assert_eq!(status(add(&db, &admin, room, &[99_999]).await), 400);
            assert_eq!(status(remove(&db, &admin, room, admin.id).await), 400, "leave instead");
            assert_eq!(status(remove(&db, &admin, room, outsider.id).await), 404);
            make_admin(&db, &admin, room, member.id).await.unwrap();
            assert_eq!(status(make_admin(&db, &admin, room, member.id).await), 400);
            let page = history(&db, admin.id, room, None, None).await.unwrap();
            assert_eq!(
                bodies(&page.messages)[2..],
                [
                    "hello team",
                    "ada renamed the group to “Dream team”",
                    "ada added eve and rex",
                    "ada made bob an admin",
                ]
            );
            assert!(page.messages.iter().filter(|m| m.body.starts_with("ada ")).all(|m| m.kind == MessageKind::System));
            assert_eq!(page.messages[2].kind, MessageKind::Text);
            assert_eq!(page.messages[2].sender_name, "bob");
            assert_eq!(page.peer.name, "Dream team");
            // Back in the group, rex sees everything again.
            assert_eq!(history(&db, removed.id, room, None, None).await.unwrap().messages.len(), 6);
        })
        .await;
    }

    #[tokio::test]
    async fn the_longest_standing_member_takes_over_when_the_last_admin_leaves() {
        for_each_database(|db| async move {
            let ada = user(&db, "ada").await;
            let bob = user(&db, "bob").await;
            let cy = user(&db, "cy").await;
            let room = create(&db, &ada, "Club", &[bob.id]).await.unwrap().group.id;
            // Cy joins later than Bob.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            add(&db, &ada, room, &[cy.id]).await.unwrap();

            let left = leave(&db, &ada, room).await.unwrap();
            assert_eq!(left.line.body, "ada left; bob is now an admin");
            assert_eq!(left.event.removed, [ada.id]);
            assert_eq!(left.event.promoted, [bob.id]);
            assert_eq!(left.event.member_count, 2);
            let page = members(&db, cy.id, room, None).await.unwrap();
            let listed: Vec<(&str, bool)> = page.members.iter().map(|m| (m.name.as_str(), m.admin)).collect();
            assert_eq!(listed, [("bob", true), ("cy", false)]);
            // Bob is an admin now; another admin's leaving hands nothing on.
            rename(&db, &bob, room, "Bob's club").await.unwrap();
            make_admin(&db, &bob, room, cy.id).await.unwrap();
            let left = leave(&db, &bob, room).await.unwrap();
            assert_eq!(left.line.body, "bob left");
            assert!(left.event.promoted.is_empty());
            // Ada reads up to her departure, read-only.
            let page = history(&db, ada.id, room, None, None).await.unwrap();
            assert_eq!(page.messages.last().unwrap().body, "ada left; bob is now an admin");
            // The last member leaving leaves an empty group, still listed for them read-only.
            leave(&db, &cy, room).await.unwrap();
            let listed = list(&db, cy.id, None).await.unwrap();
            assert_eq!(listed[0].kind, ContactKind::Group { members: 0, member: false });
        })
        .await;
    }

    #[tokio::test]
    async fn the_list_shows_each_group_as_its_member_sees_it_and_a_left_one_as_it_was_when_left() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let ada = user(&db, "ada").await;
            let bob = user(&db, "bob").await;
            let cy = user(&db, "cy").await;
            let left = create(&db, &ada, "Left behind", &[bob.id, cy.id]).await.unwrap().group.id;
            let kept = create(&db, &ada, "Kept", &[bob.id]).await.unwrap().group.id;
            send(&db, &limiter, &ada, left, "before", "c-1", None).await.unwrap();
            leave(&db, &bob, left).await.unwrap();
            send(&db, &limiter, &ada, left, "after bob left", "c-2", None).await.unwrap();
            send(&db, &limiter, &cy, kept, "not a member", "c-3", None).await.unwrap_err();
            send(&db, &limiter, &ada, kept, "one", "c-4", None).await.unwrap();
            send(&db, &limiter, &ada, kept, "two", "c-5", None).await.unwrap();

            let listed = list(&db, bob.id, None).await.unwrap();
            let row = |id: i64| listed.iter().find(|c| c.id == id).unwrap();
            let gone = row(left);
            assert_eq!(gone.kind, ContactKind::Group { members: 2, member: false });
            assert_eq!(gone.unread, 0, "a group you left counts nothing as unread");
            let last = gone.last_message.as_ref().unwrap();
            assert_eq!(last.body, "bob left", "what was said after you left stays unseen");
            let here = row(kept);
            assert_eq!(here.kind, ContactKind::Group { members: 2, member: true });
            assert_eq!(here.unread, 2);
            let last = here.last_message.as_ref().unwrap();
            assert_eq!((last.body.as_str(), last.sender_name.as_deref(), last.from_me), ("two", Some("ada"), false));

            let found = list(&db, bob.id, Some("KEP")).await.unwrap();
            assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), [kept]);
            assert!(list(&db, user(&db, "dee").await.id, None).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn read_marks_are_kept_per_member_and_only_move_forward() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let ada = user(&db, "ada").await;
            let bob = user(&db, "bob").await;
            let cy = user(&db, "cy").await;
            let room = create(&db, &ada, "Trio", &[bob.id, cy.id]).await.unwrap().group.id;
            let m1 = send(&db, &limiter, &ada, room, "one", "c-1", None).await.unwrap().message;
            let m2 = send(&db, &limiter, &ada, room, "two", "c-2", None).await.unwrap().message;
            let unread = |who: i64| {
                let db = db.clone();
                async move { list(&db, who, None).await.unwrap()[0].unread }
            };
            assert_eq!((unread(ada.id).await, unread(bob.id).await, unread(cy.id).await), (0, 2, 2));

            let read = mark_read(&db, &bob, room, m1.id).await.unwrap().unwrap();
            assert_eq!((read.reader_id, read.reader_name.as_str(), read.up_to_id), (bob.id, "bob", m1.id));
            assert_eq!(mark_read(&db, &bob, room, m1.id).await.unwrap(), None, "already there");
            assert_eq!(unread(bob.id).await, 1);
            assert_eq!(unread(cy.id).await, 2, "Bob's read is Bob's alone");
            // Far ahead is clamped to the newest message; never backwards.
            let read = mark_read(&db, &cy, room, i64::MAX).await.unwrap().unwrap();
            assert_eq!(read.up_to_id, m2.id);
            assert_eq!(mark_read(&db, &cy, room, m1.id).await.unwrap(), None);
            assert_eq!(unread(cy.id).await, 0);

            // Ada's page: who has read what ("Seen by").
            let page = history(&db, ada.id, room, None, None).await.unwrap();
            let mut marks: Vec<(String, i64)> =
                page.group.unwrap().read_marks.into_iter().map(|m| (m.name, m.up_to_id)).collect();
            marks.sort();
            assert_eq!(marks, [("bob".to_owned(), m1.id), ("cy".to_owned(), m2.id)]);
            // Catch-up carries the marks too.
            let update = since(&db, ada.id, room, m2.id, 0).await.unwrap();
            assert!(update.messages.is_empty());
            assert_eq!(update.group.unwrap().read_marks.len(), 2);
            // The title count adds group unread to one-to-one unread.
            let contacts = crate::ssr::conversations::contacts(&db, bob.id, None).await.unwrap();
            assert_eq!(contacts.unread, 1);
            let row = contacts.people.iter().find(|c| c.is_group()).unwrap();
            let last = row.last_message.as_ref().unwrap();
            assert_eq!((last.body.as_str(), last.sender_name.as_deref(), last.from_me), ("two", Some("ada"), false));
        })
        .await;
    }

    #[tokio::test]
    async fn group_sends_are_idempotent_validated_and_rate_limited() {
        for_each_database(|db| async move {
            let ada = user(&db, "ada").await;
            let bob = user(&db, "bob").await;
            let room = create(&db, &ada, "Pair+", &[bob.id]).await.unwrap().group.id;
            let limiter = message_sends();
            let first = send(&db, &limiter, &ada, room, "hello", "c-1", None).await.unwrap();
            assert!(first.created);
            assert_eq!((first.message.room_id, first.message.sender_name.as_str()), (Some(room), "ada"));
            let (one, two) = tokio::join!(
                send(&db, &limiter, &ada, room, "twice", "c-2", None),
                send(&db, &limiter, &ada, room, "twice", "c-2", None),
            );
            let (one, two) = (one.unwrap(), two.unwrap());
            assert_eq!(one.message, two.message);
            assert!(one.created != two.created);
            let again = send(&db, &limiter, &ada, room, "hello", "c-1", None).await.unwrap();
            assert!(!again.created);
            assert_eq!(again.message, first.message);
            // A client id of a one-to-one message cannot be replayed into the group, nor back.
            crate::ssr::conversations::send(&db, &limiter, &ada, bob.id, "direct", "c-3", None).await.unwrap();
            assert_eq!(status(send(&db, &limiter, &ada, room, "direct", "c-3", None).await), 400);
            assert_eq!(
                status(crate::ssr::conversations::send(&db, &limiter, &ada, bob.id, "x", "c-1", None).await),
                400
            );
            for body in ["", "   ", &"a".repeat(5001)] {
                assert!(
                    send(&db, &limiter, &ada, room, body, "c-bad", None).await.unwrap_err().for_field("body").is_some()
                );
            }
            // The same 20-per-10s allowance as one-to-one sends (three used above).
            for i in 0..17 {
                assert!(send(&db, &limiter, &ada, room, "spam", &format!("s-{i}"), None).await.is_ok(), "send {i}");
            }
            assert_eq!(status(send(&db, &limiter, &ada, room, "spam", "s-17", None).await), 429);
            let page = history(&db, bob.id, room, None, None).await.unwrap();
            assert_eq!(page.messages.iter().filter(|m| m.body == "twice").count(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn history_pages_carry_system_lines_and_the_member_panel_pages() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let ada = user(&db, "ada").await;
            let mut others = Vec::new();
            for i in 0..120 {
                others.push(user(&db, &format!("m{i:03}")).await.id);
            }
            let room = create(&db, &ada, "Big", &others[..60]).await.unwrap().group.id;
            for i in 0..70 {
                send(&db, &limiter, &ada, room, &format!("msg {i}"), &format!("c-{i}"), None).await.unwrap();
            }
            add(&db, &ada, room, &others[60..]).await.unwrap();
            let newest = history(&db, ada.id, room, None, Some(30)).await.unwrap();
            assert!(newest.has_more);
            assert_eq!(newest.messages.last().unwrap().body, "ada added m060, m061 and 58 others");
            let mut seen: Vec<String> = newest.messages.iter().map(|m| m.body.clone()).collect();
            let mut before = newest.messages[0].id;
            loop {
                let page = history(&db, ada.id, room, Some(before), Some(30)).await.unwrap();
                let mut bodies: Vec<String> = page.messages.iter().map(|m| m.body.clone()).collect();
                bodies.append(&mut seen);
                seen = bodies;
                if !page.has_more {
                    break;
                }
                before = page.messages[0].id;
            }
            assert_eq!(seen.len(), 72);
            assert!(seen[0].starts_with("ada created the group"));
            assert_eq!(seen[1], "msg 0");

            // 121 members, 50 a page, admins first, then by name; no one twice, no one missed.
            let mut listed = Vec::new();
            let mut after = None;
            loop {
                let page = members(&db, ada.id, room, after.as_deref()).await.unwrap();
                assert!(page.members.len() <= MEMBERS_PAGE as usize);
                assert_eq!(page.total, 121);
                listed.extend(page.members.into_iter().map(|m| (m.name, m.admin)));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(listed.len(), 121);
            assert_eq!(listed[0], ("ada".to_owned(), true));
            assert_eq!(listed[1].0, "m000");
            assert_eq!(listed[120].0, "m119");
            assert_eq!(status(members(&db, ada.id, room, Some("x")).await), 400);
        })
        .await;
    }

    #[tokio::test]
    async fn a_group_holds_at_most_a_thousand_members() {
        for_each_database(|db| async move {
            let ada = user(&db, "ada").await;
            let now = Utc::now();
            let rows = (0..1000).map(|i| users::ActiveModel {
                name: Set(format!("p{i}")),
                email: Set(format!("p{i}@example.com")),
                password_hash: Set(crate::ssr::password::PasswordHash::placeholder()),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            });
            for chunk in rows.collect::<Vec<_>>().chunks(200) {
                users::Entity::insert_many(chunk.to_vec()).exec(&db).await.unwrap();
            }
            let ids: Vec<i64> = users::Entity::find()
                .filter(users::Column::Id.ne(ada.id))
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.id)
                .collect();
            assert_eq!(status(create(&db, &ada, "Too big", &ids).await), 400);
            let group = create(&db, &ada, "Full", &ids[..999]).await.unwrap().group;
            assert_eq!(group.kind, ContactKind::Group { members: 1000, member: true });
            assert_eq!(status(add(&db, &ada, group.id, &ids[999..]).await), 400);
        })
        .await;
    }
}
