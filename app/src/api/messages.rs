//! `/api/contacts` and `/api/messages/*`: the contact list, history, sending and read receipts.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ChatMessage, Contact, ConversationPage};

/// `POST /api/contacts`: everyone else, people you talked to first, with unread counts.
#[server(prefix = "/api", endpoint = "contacts")]
pub async fn contacts() -> Result<Vec<Contact>, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::contacts(request.db(), me.id).await
}

/// `POST /api/messages`: a page of the conversation with `peer_id`, oldest first.
#[server(prefix = "/api", endpoint = "messages")]
pub async fn messages(peer_id: i64, before_id: Option<i64>, limit: Option<u32>) -> Result<ConversationPage, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::conversation(request.db(), me.id, peer_id, before_id, limit).await
}

/// `POST /api/messages/send`: stores a message (idempotent per `client_id`) and returns it.
#[server(prefix = "/api", endpoint = "messages/send")]
pub async fn send_message(recipient_id: i64, body: String, client_id: String) -> Result<ChatMessage, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    let sent =
        conversations::send(request.db(), &request.state.send_limiter, me.id, recipient_id, &body, &client_id).await?;
    // The message is stored: this is the one place where it can be announced to others.
    Ok(sent.message)
}

/// `POST /api/messages/read`: marks messages from `peer_id` up to `up_to_id` as read; returns how many changed.
#[server(prefix = "/api", endpoint = "messages/read")]
pub async fn mark_as_read(peer_id: i64, up_to_id: i64) -> Result<u64, AppError> {
    use crate::ssr::{conversations, request};
    let request = request()?;
    let me = request.require_user().await?;
    conversations::mark_as_read(request.db(), me.id, peer_id, up_to_id).await
}
