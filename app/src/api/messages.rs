//! `/api/contacts` and `/api/messages/*`: the contact list, history, sending and read receipts.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ChatMessage, ContactPage, ConversationPage, ConversationUpdate};

/// `POST /api/contacts`: your conversations, newest first, then the newest members you have not
/// talked to; or, with `search`, the people whose name contains it. Each with unread counts.
#[server(prefix = "/api", endpoint = "contacts")]
pub async fn contacts(#[server(default)] search: Option<String>) -> Result<ContactPage, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::contacts(request.db(), me.id, search.as_deref()).await
}

/// `POST /api/messages`: a page of the conversation with `peer_id`, oldest first.
#[server(prefix = "/api", endpoint = "messages")]
pub async fn messages(peer_id: i64, before_id: Option<i64>, limit: Option<u32>) -> Result<ConversationPage, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::conversation(request.db(), me.id, peer_id, before_id, limit).await
}

/// `POST /api/messages/since`: what changed in the conversation with `peer_id` after message
/// `after_id` (a tab catching up after a gap in live events).
#[server(prefix = "/api", endpoint = "messages/since")]
pub async fn messages_since(peer_id: i64, after_id: i64) -> Result<ConversationUpdate, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::conversation_since(request.db(), me.id, peer_id, after_id).await
}

/// `POST /api/messages/send`: stores a message (idempotent per `client_id`) and returns it.
/// `socket_id` is the sending tab's realtime connection, which is not sent the event again.
#[server(prefix = "/api", endpoint = "messages/send")]
pub async fn send_message(
    recipient_id: i64,
    body: String,
    client_id: String,
    #[server(default)] socket_id: Option<String>,
) -> Result<ChatMessage, AppError> {
    use crate::ssr::{conversations, realtime, request};
    let request = request()?;
    let me = request.require_user().await?;
    let exclude = realtime::sending_socket(socket_id.as_deref())?;
    let sent =
        conversations::send(request.db(), &request.state.send_limiter, me.id, recipient_id, &body, &client_id).await?;
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
