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

/// What a stored message is: something a person wrote, or a line the server wrote about the
/// group ("Dana added Erin"), which history, paging and catch-up carry like any other message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    #[default]
    Text,
    System,
}

impl MessageKind {
    /// How the `messages.kind` column spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::System => "system",
        }
    }

    pub fn from_column(text: &str) -> Self {
        if text == "system" { Self::System } else { Self::Text }
    }
}

/// A stored message, as the people of its conversation see it: one-to-one (`recipient_id`) or in
/// a group (`room_id`, and then `recipient_id` is 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: i64,
    pub sender_id: i64,
    pub recipient_id: i64,
    /// The group this message belongs to; `None` in a one-to-one conversation.
    #[serde(default)]
    pub room_id: Option<i64>,
    /// The sender's name, which a group shows above their messages.
    #[serde(default)]
    pub sender_name: String,
    #[serde(default)]
    pub kind: MessageKind,
    pub body: String,
    /// The sending browser's id for this message (the idempotency key of the send).
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// The newest message of a conversation, for the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    pub body: String,
    pub from_me: bool,
    pub created_at: DateTime<Utc>,
    /// Who wrote it, in a group ("Dana: see you at 5"); `None` one-to-one.
    #[serde(default)]
    pub sender_name: Option<String>,
    #[serde(default)]
    pub kind: MessageKind,
}

/// What a row of the conversation list opens: a person (one-to-one) or a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContactKind {
    #[default]
    Person,
    Group {
        members: i64,
        /// False once I left or was removed: the group stays listed, read-only.
        member: bool,
    },
}

/// A row of the conversation list: another user, or a group I am (or was) in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The user's id, or the group's id when `kind` is a group.
    pub id: i64,
    #[serde(default)]
    pub kind: ContactKind,
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

impl Contact {
    /// Where the row leads: `/chat/{user}` or `/chat/g/{group}`.
    pub fn href(&self) -> String {
        match self.kind {
            ContactKind::Person => format!("/chat/{}", self.id),
            ContactKind::Group { .. } => format!("/chat/g/{}", self.id),
        }
    }

    pub fn is_group(&self) -> bool {
        matches!(self.kind, ContactKind::Group { .. })
    }
}

/// The other person in a conversation, or the group (its id and name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: i64,
    pub name: String,
}

/// Which conversation: the one with a person, or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum ConversationRef {
    Direct(i64),
    Group(i64),
}

impl ConversationRef {
    /// Whether `message` belongs to this conversation, as seen by `me`.
    pub fn contains(self, me: i64, message: &ChatMessage) -> bool {
        match self {
            Self::Direct(peer) => {
                message.room_id.is_none()
                    && ((message.sender_id == peer && message.recipient_id == me)
                        || (message.sender_id == me && message.recipient_id == peer))
            }
            Self::Group(room) => message.room_id == Some(room),
        }
    }
}

/// A member's read mark in a group: they have read every message up to `up_to_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    pub user_id: i64,
    pub name: String,
    pub up_to_id: i64,
}

/// What a group page knows about the group besides its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub member_count: i64,
    /// Whether I am still a member; a former member reads what they saw, and nothing more.
    pub member: bool,
    pub admin: bool,
    /// The read marks of the other members that reach this page's messages ("Seen by").
    pub read_marks: Vec<ReadMark>,
}

/// A member of a group, as the member panel lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub admin: bool,
}

/// One page of a group's members, admins first, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPage {
    pub members: Vec<Member>,
    /// Pass as `after` for the next page; `None` when this was the last.
    pub next: Option<String>,
    pub total: i64,
}

/// The members a page of the member panel shows at most.
pub const MEMBERS_PAGE: u64 = 50;
/// The most members a group may have.
pub const GROUP_MAX_MEMBERS: usize = 1_000;
/// The longest group name, in characters, after trimming.
pub const GROUP_NAME_MAX_CHARS: usize = 80;

/// One page of a conversation, oldest message first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPage {
    /// The person, or the group (its id and name).
    pub peer: Peer,
    /// Set for a group.
    #[serde(default)]
    pub group: Option<GroupInfo>,
    pub messages: Vec<ChatMessage>,
    /// True when older messages exist before the first one here.
    pub has_more: bool,
    /// A fresh `client_id` for the plain-form composer (no JavaScript); browsers with JavaScript
    /// make their own for every message.
    pub compose_id: String,
}

impl ConversationPage {
    pub fn conversation(&self) -> ConversationRef {
        match self.group {
            Some(_) => ConversationRef::Group(self.peer.id),
            None => ConversationRef::Direct(self.peer.id),
        }
    }
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
    /// In a group: the members' read marks now, and whether I am still a member.
    #[serde(default)]
    pub group: Option<GroupInfo>,
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
