//! `/api/contacts` and `/api/messages/*`: the contact list, history, sending and read receipts.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ChatMessage, ContactPage, ConversationPage, ConversationUpdate, SearchPage};

/// `POST /api/contacts`: your conversations, newest first, then the newest members you have not
/// talked to; or, with `search`, the people whose name contains it. Each with unread counts.
#[server(prefix = "/api", endpoint = "contacts")]
pub async fn contacts(#[server(default)] search: Option<String>) -> Result<ContactPage, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::contacts(&request.reads().await?, me.id, search.as_deref()).await
}

/// `POST /api/messages`: a page of the conversation with `peer_id`, oldest first: the newest, the
/// one before `before_id`, or (with `at`, a search hit) the newest that reaches back to message `at`.
#[server(prefix = "/api", endpoint = "messages")]
pub async fn messages(
    peer_id: i64,
    before_id: Option<i64>,
    limit: Option<u32>,
    #[server(default)] at: Option<i64>,
) -> Result<ConversationPage, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    let reads = request.reads().await?;
    match (at, before_id) {
        (Some(at), None) => conversations::conversation_at(&reads, me.id, peer_id, at).await,
        _ => conversations::conversation(&reads, me.id, peer_id, before_id, limit).await,
    }
}

/// `POST /api/conversations/mute`: mutes (`muted=true`) or unmutes the conversation with
/// `peer_id` or group `room_id`, on every device; answers whether it is muted now. A plain form
/// post is sent back to the conversation.
#[server(prefix = "/api", endpoint = "conversations/mute")]
pub async fn mute_conversation(
    #[server(default)] peer_id: Option<i64>,
    #[server(default)] room_id: Option<i64>,
    muted: bool,
) -> Result<bool, AppError> {
    use crate::model::ConversationRef;
    use crate::ssr::{mutes, request};
    let request = request()?;
    let me = request.require_user().await?;
    let conversation = match (peer_id, room_id) {
        (Some(peer), None) => ConversationRef::Direct(peer),
        (None, Some(room)) => ConversationRef::Group(room),
        _ => return Err(AppError::invalid("peer_id", "name one conversation: peer_id or room_id")),
    };
    let muted = mutes::set_muted(request.db(), me.id, conversation, muted).await?;
    request.redirect_plain_form(&conversation.href());
    Ok(muted)
}

/// `POST /api/search`: page `page` (from 1) of the messages I can see that match `q`, best first;
/// in one conversation with `peer_id` or `room_id`.
#[server(prefix = "/api", endpoint = "search")]
pub async fn search_messages(
    q: String,
    #[server(default)] peer_id: Option<i64>,
    #[server(default)] room_id: Option<i64>,
    #[server(default)] page: Option<u32>,
) -> Result<SearchPage, AppError> {
    use crate::model::ConversationRef;
    use crate::ssr::{request, search};
    let request = request()?;
    let me = request.require_user().await?;
    let scope = match (peer_id, room_id) {
        (Some(peer), None) => Some(ConversationRef::Direct(peer)),
        (None, Some(room)) => Some(ConversationRef::Group(room)),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(AppError::invalid("room_id", "search one conversation or all, not two")),
    };
    search::search(request.db(), me.id, &q, scope, page.unwrap_or(1)).await
}

/// `POST /api/messages/since`: what changed in the conversation with `peer_id` (a tab catching up
/// after a gap in live events): the messages after `after_id`, and those up to it that were
/// edited, deleted or reacted to after change `changes_after` (the `changes_up_to` of the page or
/// catch-up the tab last had).
#[server(prefix = "/api", endpoint = "messages/since")]
pub async fn messages_since(
    peer_id: i64,
    after_id: i64,
    #[server(default)] changes_after: i64,
) -> Result<ConversationUpdate, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::conversation_since(&request.reads().await?, me.id, peer_id, after_id, changes_after).await
}

/// `POST /api/messages/send`: stores a message (idempotent per `client_id`), as a reply to
/// `reply_to_id` if given, and returns it.
/// `socket_id` is the sending tab's realtime connection, which is not sent the event again.
#[server(prefix = "/api", endpoint = "messages/send")]
pub async fn send_message(
    recipient_id: i64,
    body: String,
    client_id: String,
    #[server(default)] socket_id: Option<String>,
    #[server(default)] reply_to_id: Option<i64>,
    #[server(default)] attachments: Vec<i64>,
) -> Result<ChatMessage, AppError> {
    use crate::ssr::messages::Draft;
    use crate::ssr::{conversations, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let exclude = realtime::sending_socket(socket_id.as_deref())?;
    let draft = Draft { body: &body, client_id: &client_id, reply_to_id, attachments: &attachments };
    let sent = conversations::send_draft(request.db(), &request.state.send_limiter, &me, recipient_id, draft).await?;
    // Stored: now, and only now, it is announced. A retry announces again; clients drop duplicates by id.
    realtime::announce_message(request.state.broadcaster.as_ref(), &sent.message, exclude);
    Ok(sent.message)
}

/// `POST /api/messages/read`: marks messages from `peer_id` up to `up_to_id` as read; returns how many changed.
#[server(prefix = "/api", endpoint = "messages/read")]
pub async fn mark_as_read(peer_id: i64, up_to_id: i64) -> Result<u64, AppError> {
    use crate::realtime::MessagesRead;
    use crate::ssr::{conversations, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let read_at = chrono::Utc::now();
    let changed = conversations::mark_as_read(request.db(), me.id, peer_id, up_to_id, read_at).await?;
    if changed > 0 {
        let read = MessagesRead { reader_id: me.id, peer_id, up_to_id, read_at };
        realtime::announce_read(request.state.broadcaster.as_ref(), &read);
    }
    Ok(changed)
}

/// `POST /api/messages/edit`: the author changes message `message_id` to `body`, within 15 minutes
/// of sending it; everyone in the conversation gets `MessageUpdated`. Returns the message as edited.
#[server(prefix = "/api", endpoint = "messages/edit")]
pub async fn edit_message(message_id: i64, body: String) -> Result<ChatMessage, AppError> {
    use crate::ssr::{messages, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let (message, changed) = messages::edit(request.db(), me.id, message_id, &body).await?;
    if changed {
        realtime::announce_update(request.state.broadcaster.as_ref(), &message);
    }
    request.back_to_message(me.id, &message);
    Ok(message)
}

/// `POST /api/messages/delete`: the author deletes message `message_id` for everyone (its body is
/// erased; a tombstone stays); everyone gets `MessageDeleted`. Returns the tombstone.
#[server(prefix = "/api", endpoint = "messages/delete")]
pub async fn delete_message(message_id: i64) -> Result<ChatMessage, AppError> {
    use crate::ssr::{messages, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let (tombstone, event) = messages::delete(request.db(), request.state.storage.as_ref(), me.id, message_id).await?;
    realtime::announce_delete(request.state.broadcaster.as_ref(), &event);
    request.back_to_message(me.id, &tombstone);
    Ok(tombstone)
}

/// `POST /api/messages/react`: adds `emoji` (one emoji) to message `message_id`, once per person;
/// everyone gets `ReactionsChanged`. Returns the message as it is now.
#[server(prefix = "/api", endpoint = "messages/react")]
pub async fn react(message_id: i64, emoji: String) -> Result<ChatMessage, AppError> {
    use crate::ssr::{messages, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let reacted = messages::react(request.db(), me.id, message_id, &emoji).await?;
    if reacted.changed {
        realtime::announce_reactions(request.state.broadcaster.as_ref(), &reacted.event);
    }
    request.back_to_message(me.id, &reacted.message);
    Ok(reacted.message)
}

/// `POST /api/messages/unreact`: takes back my `emoji` from message `message_id`; everyone gets
/// `ReactionsChanged`. Returns the message as it is now.
#[server(prefix = "/api", endpoint = "messages/unreact")]
pub async fn unreact(message_id: i64, emoji: String) -> Result<ChatMessage, AppError> {
    use crate::ssr::{messages, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let reacted = messages::unreact(request.db(), me.id, message_id, &emoji).await?;
    if reacted.changed {
        realtime::announce_reactions(request.state.broadcaster.as_ref(), &reacted.event);
    }
    request.back_to_message(me.id, &reacted.message);
    Ok(reacted.message)
}
