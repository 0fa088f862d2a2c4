//! What both sides know about real time: channel names, event names and payloads, and the public
//! connection settings the browser receives. The WASM Pusher client lives in [`client`] (hydrate only).

pub mod channels;
#[cfg(feature = "hydrate")]
pub mod client;
pub mod machine;

pub use channels::{ChannelAccess, EventChannels, chat_channel, room_presence_channel};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::ChatMessage;

/// A message was stored: sent to the recipient's and the sender's user channels. Data: [`ChatMessage`].
pub const EVENT_NEW_MESSAGE: &str = "NewChatMessage";
/// Messages were read: sent to the sender's user channel. Data: [`MessagesRead`].
pub const EVENT_MESSAGES_READ: &str = "MessagesRead";
/// A group changed (members added, removed or promoted, or renamed): on `private-room.{id}`, and on
/// the user channel of each person added or removed. Data: [`GroupChanged`].
pub const EVENT_GROUP_CHANGED: &str = "GroupChanged";
/// A message was edited: on the conversation's channels (as `NewChatMessage`). Data: the whole
/// [`ChatMessage`] as the history returns it.
pub const EVENT_MESSAGE_UPDATED: &str = "MessageUpdated";
/// A message was deleted (it is a tombstone now): on the conversation's channels. Data: [`MessageDeleted`].
pub const EVENT_MESSAGE_DELETED: &str = "MessageDeleted";
/// A message's reactions changed: on the conversation's channels. Data: [`ReactionsChanged`].
pub const EVENT_REACTIONS_CHANGED: &str = "ReactionsChanged";
/// Someone of my circle came online or went offline: on my user channel. Data: [`StatusChanged`].
pub const EVENT_STATUS_CHANGED: &str = "StatusChanged";
/// A whisper between the two people of a conversation, on their `private-chat` channel.
pub const EVENT_TYPING: &str = "client-typing";

/// The `MessagesRead` payload: `reader_id` read every message `peer_id` sent them up to `up_to_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesRead {
    pub reader_id: i64,
    pub peer_id: i64,
    pub up_to_id: i64,
    pub read_at: DateTime<Utc>,
}

/// `MessagesRead` on a group's channel: `reader_id` has read the group up to `up_to_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRead {
    pub room_id: i64,
    pub reader_id: i64,
    pub reader_name: String,
    pub up_to_id: i64,
}

/// The `GroupChanged` payload: the group as it is now, who joined or left, and the history's line
/// about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChanged {
    pub room_id: i64,
    pub name: String,
    pub member_count: i64,
    pub added: Vec<i64>,
    pub removed: Vec<i64>,
    /// Members who became admins.
    pub promoted: Vec<i64>,
    pub line: ChatMessage,
}

/// The `MessageDeleted` payload: message `id`, and the conversation it was in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub id: i64,
    pub sender_id: i64,
    /// 0 in a group.
    pub recipient_id: i64,
    pub room_id: Option<i64>,
    /// The deletion's change number (see [`crate::model::ChatMessage::change`]).
    #[serde(default)]
    pub change: i64,
}

/// The `ReactionsChanged` payload: message `message_id`'s reactions, all of them, as they are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionsChanged {
    pub message_id: i64,
    pub sender_id: i64,
    /// 0 in a group.
    pub recipient_id: i64,
    pub room_id: Option<i64>,
    pub reactions: Vec<crate::model::Reaction>,
    /// The change number these reactions are at least as new as (see
    /// [`crate::model::ChatMessage::change`]).
    #[serde(default)]
    pub change: i64,
}

/// The `StatusChanged` payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChanged {
    pub user_id: i64,
    pub online: bool,
}

/// The `client-typing` whisper's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    pub user_id: i64,
    pub name: String,
}

/// Incoming application events on a user channel, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    NewMessage(ChatMessage),
    MessagesRead(MessagesRead),
    GroupRead(GroupRead),
    GroupChanged(GroupChanged),
    MessageUpdated(ChatMessage),
    MessageDeleted(MessageDeleted),
    ReactionsChanged(ReactionsChanged),
    StatusChanged(StatusChanged),
}

impl LiveEvent {
    /// Decodes an event by name; `None` for events this version does not know or cannot read.
    /// `MessagesRead` is a group's read mark when it names a `room_id`, else a one-to-one receipt.
    pub fn decode(event: &str, data: &str) -> Option<Self> {
        match event {
            EVENT_NEW_MESSAGE => serde_json::from_str(data).ok().map(Self::NewMessage),
            EVENT_MESSAGES_READ => match serde_json::from_str::<GroupRead>(data) {
                Ok(read) => Some(Self::GroupRead(read)),
                Err(_) => serde_json::from_str(data).ok().map(Self::MessagesRead),
            },
            EVENT_GROUP_CHANGED => serde_json::from_str(data).ok().map(Self::GroupChanged),
            EVENT_MESSAGE_UPDATED => serde_json::from_str(data).ok().map(Self::MessageUpdated),
            EVENT_MESSAGE_DELETED => serde_json::from_str(data).ok().map(Self::MessageDeleted),
            EVENT_REACTIONS_CHANGED => serde_json::from_str(data).ok().map(Self::ReactionsChanged),
            EVENT_STATUS_CHANGED => serde_json::from_str(data).ok().map(Self::StatusChanged),
            _ => None,
        }
    }
}

/// The public half of the Pusher settings, rendered into the page for the browser. Never the secret.
///
/// `host: None` means the embedded server: connect to the page's own origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeConfig {
    pub key: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: bool,
    pub cluster: Option<String>,
    /// Whether the user and room channels are end-to-end encrypted (`private-encrypted-…`).
    #[serde(default)]
    pub channels: EventChannels,
}

impl RealtimeConfig {
    /// The WebSocket URL pusher-js would use: `ws[s]://host:port/app/{key}?protocol=7&client=...`.
    /// `page_host` (e.g. `127.0.0.1:3000`) and `page_tls` describe the page, for the embedded server.
    pub fn websocket_url(&self, page_host: &str, page_tls: bool) -> String {
        let query = "protocol=7&client=banter-wasm&version=0.1.0";
        let (tls, authority) = match (&self.host, &self.cluster) {
            (Some(host), _) => {
                let port = self.port.unwrap_or(if self.tls { 443 } else { 80 });
                (self.tls, format!("{host}:{port}"))
            }
            (None, Some(cluster)) => (true, format!("ws-{cluster}.pusher.com:443")),
            (None, None) => (page_tls, page_host.to_owned()),
        };
        let scheme = if tls { "wss" } else { "ws" };
        format!("{scheme}://{authority}/app/{}?{query}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        let mut config = RealtimeConfig {
            key: "k".into(),
            host: None,
            port: None,
            tls: false,
            cluster: None,
            channels: EventChannels::Private,
        };
        assert_eq!(
            config.websocket_url("127.0.0.1:3000", false),
            "ws://127.0.0.1:3000/app/k?protocol=7&client=banter-wasm&version=0.1.0"
        );
        config.cluster = Some("eu".into());
        assert!(config.websocket_url("x", false).starts_with("wss://ws-eu.pusher.com:443/app/k?"));
        config.host = Some("soketi.local".into());
        config.port = Some(6001);
        assert!(config.websocket_url("x", false).starts_with("ws://soketi.local:6001/app/k?"));
    }
}
