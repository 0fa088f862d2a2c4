//! `/api/groups/*`: group conversations. Every endpoint checks membership and role on the server:
//! a non-member gets 404 (nothing is said about the group), a member who is not an admin gets 403
//! on the admin actions. History, catch-up, sends and read marks work as in a one-to-one
//! conversation, and each change is announced on the group's `private-room.{id}` channel.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ChatMessage, Contact, ConversationPage, ConversationUpdate, MemberPage};

/// `POST /api/groups/create`: a new group called `name` with me (its first admin) and
/// `member_ids` (`member_ids[]=2&member_ids[]=3`). Opens it.
#[server(prefix = "/api", endpoint = "groups/create")]
pub async fn create_group(name: String, #[server(default)] member_ids: Vec<i64>) -> Result<Contact, AppError> {
    use crate::ssr::{groups, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let created = groups::create(request.db(), &me, &name, &member_ids).await?;
    realtime::announce_group_change(request.state.broadcaster.as_ref(), &created.change);
    request.redirect(&created.group.href());
    Ok(created.group)
}

/// `POST /api/groups/messages`: a page of group `room_id`'s history, oldest first (see
/// `/api/messages` for `before_id` and `at`).
#[server(prefix = "/api", endpoint = "groups/messages")]
pub async fn group_messages(
    room_id: i64,
    before_id: Option<i64>,
    limit: Option<u32>,
    #[server(default)] at: Option<i64>,
) -> Result<ConversationPage, AppError> {
    use crate::ssr::{groups, request};
    let request = request()?;
    let me = request.require_user().await?;
    let reads = request.reads().await?;
    match (at, before_id) {
        (Some(at), None) => groups::history_at(&reads, me.id, room_id, at).await,
        _ => groups::history(&reads, me.id, room_id, before_id, limit).await,
    }
}

/// `POST /api/groups/messages/since`: what a tab missed in group `room_id` after `after_id`, and
/// the messages up to it changed after change `changes_after` (see `/api/messages/since`).
#[server(prefix = "/api", endpoint = "groups/messages/since")]
pub async fn group_messages_since(
    room_id: i64,
    after_id: i64,
    #[server(default)] changes_after: i64,
) -> Result<ConversationUpdate, AppError> {
    use crate::ssr::{groups, request};
    let request = request()?;
    let me = request.require_user().await?;
    groups::since(&request.reads().await?, me.id, room_id, after_id, changes_after).await
}

/// `POST /api/groups/send`: stores a message in group `room_id` (idempotent per `client_id`, the
/// same rate limit as every send), as a reply to `reply_to_id` if given, and announces it.
#[server(prefix = "/api", endpoint = "groups/send")]
pub async fn send_to_group(
    room_id: i64,
    body: String,
    client_id: String,
    #[server(default)] socket_id: Option<String>,
    #[server(default)] reply_to_id: Option<i64>,
    #[server(default)] attachments: Vec<i64>,
) -> Result<ChatMessage, AppError> {
    use crate::ssr::messages::Draft;
    use crate::ssr::{groups, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let exclude = realtime::sending_socket(socket_id.as_deref())?;
    let draft = Draft { body: &body, client_id: &client_id, reply_to_id, attachments: &attachments };
    let sent = groups::send_draft(request.db(), &request.state.send_limiter, &me, room_id, draft).await?;
    realtime::announce_message(request.state.broadcaster.as_ref(), &sent.message, exclude);
    Ok(sent.message)
}

/// `POST /api/groups/read`: I have read group `room_id` up to `up_to_id`; returns whether my read
/// mark moved (it never moves back).
#[server(prefix = "/api", endpoint = "groups/read")]
pub async fn mark_group_read(room_id: i64, up_to_id: i64) -> Result<bool, AppError> {
    use crate::ssr::{groups, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let read = groups::mark_read(request.db(), &me, room_id, up_to_id).await?;
    if let Some(read) = &read {
        realtime::announce_group_read(request.state.broadcaster.as_ref(), read);
    }
    Ok(read.is_some())
}

/// `POST /api/groups/members`: a page of group `room_id`'s members, admins first, then by name.
#[server(prefix = "/api", endpoint = "groups/members")]
pub async fn group_members(room_id: i64, #[server(default)] after: Option<String>) -> Result<MemberPage, AppError> {
    use crate::ssr::{groups, request};
    let request = request()?;
    let me = request.require_user().await?;
    groups::members(&request.reads().await?, me.id, room_id, after.as_deref()).await
}

/// Runs an admin or membership action and announces what it changed (and, for a removal or a
/// departure, ends that person's subscriptions to the group).
#[cfg(feature = "ssr")]
async fn change(
    room_id: i64,
    action: impl AsyncFnOnce(
        &sea_orm::DatabaseConnection,
        &crate::ssr::entities::users::Model,
    ) -> Result<crate::ssr::groups::Change, AppError>,
) -> Result<ChatMessage, AppError> {
    use crate::ssr::{realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let change = action(request.db(), &me).await?;
    realtime::announce_group_change(request.state.broadcaster.as_ref(), &change);
    request.redirect(&format!("/chat/g/{room_id}"));
    Ok(change.line)
}

/// `POST /api/groups/rename` (admins): renames the group; returns the history's system line.
#[server(prefix = "/api", endpoint = "groups/rename")]
pub async fn rename_group(room_id: i64, name: String) -> Result<ChatMessage, AppError> {
    change(room_id, async |db, me| crate::ssr::groups::rename(db, me, room_id, &name).await).await
}

/// `POST /api/groups/add` (admins): adds `member_ids` (`member_ids[]=…`) to the group.
#[server(prefix = "/api", endpoint = "groups/add")]
pub async fn add_members(room_id: i64, #[server(default)] member_ids: Vec<i64>) -> Result<ChatMessage, AppError> {
    change(room_id, async |db, me| crate::ssr::groups::add(db, me, room_id, &member_ids).await).await
}

/// `POST /api/groups/remove` (admins): removes `user_id`, who keeps what they saw and gets nothing more.
#[server(prefix = "/api", endpoint = "groups/remove")]
pub async fn remove_member(room_id: i64, user_id: i64) -> Result<ChatMessage, AppError> {
    change(room_id, async |db, me| crate::ssr::groups::remove(db, me, room_id, user_id).await).await
}

/// `POST /api/groups/leave`: I leave the group; when I was its last admin, the longest-standing
/// member becomes admin.
#[server(prefix = "/api", endpoint = "groups/leave")]
pub async fn leave_group(room_id: i64) -> Result<ChatMessage, AppError> {
    change(room_id, async |db, me| crate::ssr::groups::leave(db, me, room_id).await).await
}

/// `POST /api/groups/admin` (admins): makes member `user_id` an admin too.
#[server(prefix = "/api", endpoint = "groups/admin")]
pub async fn make_admin(room_id: i64, user_id: i64) -> Result<ChatMessage, AppError> {
    change(room_id, async |db, me| crate::ssr::groups::make_admin(db, me, room_id, user_id).await).await
}
