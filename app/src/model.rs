//! Wire types shared by the server and the browser.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The signed-in user as the browser sees it. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// The chat shell's starting point, rendered on the server and read again when hydrating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSession {
    pub user: CurrentUser,
    pub realtime: crate::realtime::RealtimeConfig,
}

/// The longest message body, in characters (Unicode scalar values), after trimming.
pub const MESSAGE_MAX_CHARS: usize = 5_000;
/// Messages per conversation page when the caller does not say.
pub const PAGE_DEFAULT: u32 = 50;
/// The most messages one page may ask for.
pub const PAGE_MAX: u32 = 100;

/// A stored one-to-one message, as both of its people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: i64,
    pub sender_id: i64,
    pub recipient_id: i64,
    pub body: String,
    /// The sending browser's id for this message (the idempotency key of the send).
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// The newest message between you and a contact, for the contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    pub body: String,
    pub from_me: bool,
    pub created_at: DateTime<Utc>,
}

/// Another user, as a row in your contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub last_message: Option<LastMessage>,
    /// Messages from them to you that you have not read.
    pub unread: i64,
    pub last_message_id: Option<i64>,
}

/// What the contact list shows: your conversations, newest first, then a few people you have not
/// talked to yet (newest members first), or the people a search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPage {
    pub people: Vec<Contact>,
    /// Unread messages from everyone, listed or not (the document title shows it).
    pub unread: i64,
}

/// The other person in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: i64,
    pub name: String,
}

/// One page of a conversation, oldest message first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPage {
    pub peer: Peer,
    pub messages: Vec<ChatMessage>,
    /// True when older messages exist before the first one here.
    pub has_more: bool,
    /// A fresh `client_id` for the plain-form composer (no JavaScript); browsers with JavaScript
    /// make their own for every message.
    pub compose_id: String,
}

/// What a tab missed in one conversation: used to catch up after any gap in live events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationUpdate {
    /// Messages newer than the tab's newest, oldest first.
    pub messages: Vec<ChatMessage>,
    /// True when more new messages exist after the last one here: ask again from it.
    pub has_more: bool,
    /// The newest of my messages the peer has read, and when.
    pub peer_read_up_to: Option<i64>,
    pub peer_read_at: Option<DateTime<Utc>>,
}

/// Formats 16 random bytes as a version-4 UUID: the shape of every `client_id` we make.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_v4_shape() {
        let id = super::uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(crate::validation::client_id(&id).is_ok());
    }
}
