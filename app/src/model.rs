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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// When its author last edited it.
    #[serde(default)]
    pub edited_at: Option<DateTime<Utc>>,
    /// A tombstone: the author deleted it, its body is gone (empty) for everyone.
    #[serde(default)]
    pub deleted: bool,
    /// The number of its latest edit, deletion or reaction change in the server's count of
    /// message changes; 0 while it never changed. Of two copies, the one with the lower number is
    /// older (a copy shows at least the state its number names).
    #[serde(default)]
    pub change: i64,
    /// The message this one answers, quoted.
    #[serde(default)]
    pub reply_to: Option<ReplyQuote>,
    /// Reactions, in the order each emoji was first added.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    /// Files sent with it, in the order they were attached.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A file sent with a message, as the browser shows it: an image preview or a file chip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: i64,
    /// The name it was uploaded with, made safe to show and to save under.
    pub name: String,
    /// What its bytes are (sniffed on upload, never the browser's claim).
    pub content_type: String,
    pub size: i64,
    /// Pixel size of an image that decoded as one; `None` for other files.
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// Whether a smaller preview exists (`url` + `/preview`).
    #[serde(default)]
    pub preview: bool,
}

impl Attachment {
    /// Where it is downloaded (or shown full size), through Banter's checks.
    pub fn url(&self) -> String {
        format!("/files/{}", self.id)
    }

    /// Where its preview is, when it has one.
    pub fn preview_url(&self) -> Option<String> {
        self.preview.then(|| format!("/files/{}/preview", self.id))
    }

    /// An image shown inline (it decoded as one of the types served inline).
    pub fn is_image(&self) -> bool {
        self.width.is_some() && self.height.is_some()
    }
}

/// The most files one message may carry.
pub const ATTACHMENTS_PER_MESSAGE: usize = 10;
/// The largest file Banter accepts, in bytes (25 MB).
pub const ATTACHMENT_MAX_BYTES: u64 = 25 * 1000 * 1000;
/// Uploads one person may make in any [`UPLOAD_WINDOW_MINUTES`].
pub const UPLOADS_PER_WINDOW: usize = 60;
pub const UPLOAD_WINDOW_MINUTES: u64 = 10;

/// The limits on files, as the composer states them.
pub fn attachment_limits() -> String {
    format!(
        "up to {ATTACHMENTS_PER_MESSAGE} per message, {} MB each, {UPLOADS_PER_WINDOW} in {UPLOAD_WINDOW_MINUTES} minutes",
        ATTACHMENT_MAX_BYTES / 1_000_000
    )
}

impl ChatMessage {
    /// Whether `user_id` may still edit this message at `now`: their own text, not deleted, sent
    /// less than [`EDIT_WINDOW_MINUTES`] ago.
    pub fn editable_by(&self, user_id: i64, now: DateTime<Utc>) -> bool {
        self.sender_id == user_id
            && self.kind == MessageKind::Text
            && !self.deleted
            && now - self.created_at < chrono::Duration::minutes(EDIT_WINDOW_MINUTES)
    }
}

/// How long after sending a message its author may edit it.
pub const EDIT_WINDOW_MINUTES: i64 = 15;
/// What a deleted message shows in its place, in the log, the list and quotes.
pub const TOMBSTONE: &str = "This message was deleted";
/// The most characters of the original a reply's quote carries.
pub const QUOTE_MAX_CHARS: usize = 120;
/// The most different emoji one message may collect.
pub const REACTIONS_MAX_KINDS: usize = 50;
/// The names a reaction carries (for "who reacted"); its count is always complete.
pub const REACTION_NAMES_SHOWN: usize = 20;

/// The start of the message a reply answers: who wrote it and its first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyQuote {
    pub id: i64,
    pub sender_id: i64,
    pub sender_name: String,
    /// The first line, at most [`QUOTE_MAX_CHARS`] characters; empty when deleted.
    pub excerpt: String,
    pub deleted: bool,
}

impl ReplyQuote {
    /// The quote of `message` as it is now.
    pub fn of(message: &ChatMessage) -> Self {
        Self {
            id: message.id,
            sender_id: message.sender_id,
            sender_name: message.sender_name.clone(),
            excerpt: if message.deleted { String::new() } else { excerpt(&message.body) },
            deleted: message.deleted,
        }
    }
}

/// The first non-blank line of `body` as it reads (formatting markers dropped), cut to
/// [`QUOTE_MAX_CHARS`] characters with "…".
pub fn excerpt(body: &str) -> String {
    let text = crate::text::plain(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if line.chars().count() <= QUOTE_MAX_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(QUOTE_MAX_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// One emoji on a message and who added it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    /// Everyone who added it, earliest first; its length is the count.
    pub user_ids: Vec<i64>,
    /// The names of the first [`REACTION_NAMES_SHOWN`] of them.
    pub names: Vec<String>,
}

impl Reaction {
    pub fn count(&self) -> usize {
        self.user_ids.len()
    }

    /// "Ann, Bob and 3 others reacted with 👍".
    pub fn who(&self) -> String {
        let shown = self.names.len();
        let others = self.count().saturating_sub(shown);
        let names = match (self.names.as_slice(), others) {
            ([], _) => format!("{} people", self.count()),
            ([one], 0) => one.clone(),
            ([first @ .., last], 0) => format!("{} and {last}", first.join(", ")),
            (names, 1) => format!("{} and 1 other", names.join(", ")),
            (names, n) => format!("{} and {n} others", names.join(", ")),
        };
        format!("{names} reacted with {}", self.emoji)
    }
}

/// The newest message of a conversation, for the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LastMessage {
    pub body: String,
    pub from_me: bool,
    pub created_at: DateTime<Utc>,
    /// Who wrote it, in a group ("Dana: see you at 5"); `None` one-to-one.
    #[serde(default)]
    pub sender_name: Option<String>,
    #[serde(default)]
    pub kind: MessageKind,
    /// Deleted: the list says so instead of the (erased) body.
    #[serde(default)]
    pub deleted: bool,
}

/// What a row of the conversation list opens: a person (one-to-one) or a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Contact {
    /// The user's id, or the group's id when `kind` is a group.
    pub id: i64,
    #[serde(default)]
    pub kind: ContactKind,
    pub name: String,
    pub last_message: Option<LastMessage>,
    /// Messages from them to you that you have not read, counted up to [`UNREAD_COUNTED`].
    pub unread: i64,
    pub last_message_id: Option<i64>,
    /// I muted this conversation: no notification, no sound.
    #[serde(default)]
    pub muted: bool,
    /// A person of my circle (see `ssr::online`) who is online as the list is read.
    #[serde(default)]
    pub online: bool,
}

/// What the contact list shows: your conversations, newest first, then a few people you have not
/// talked to yet (newest members first), or the people a search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPage {
    pub people: Vec<Contact>,
    /// Unread messages from everyone, listed or not (the document title shows it): the sum of
    /// each conversation's count, so past [`UNREAD_COUNTED`] only "more than 99" is exact.
    pub unread: i64,
}

/// How far a conversation's unread messages are counted. Past 99 a badge says "99+", so counting
/// further would only make a page that someone opens after a busy group's thousands of messages
/// cost one index step per message: counting stops here.
pub const UNREAD_COUNTED: i64 = 100;

/// An unread count as badges, the title and the favicon show it: "99+" past 99.
pub fn unread_label(unread: i64) -> String {
    if unread > 99 { "99+".to_owned() } else { unread.to_string() }
}

/// An unread count as a screen reader hears it: "3 unread", "more than 99 unread".
pub fn unread_spoken(unread: i64) -> String {
    if unread > 99 { "more than 99 unread".to_owned() } else { format!("{unread} unread") }
}

impl Contact {
    /// Where the row leads: `/chat/{user}` or `/chat/g/{group}`.
    pub fn href(&self) -> String {
        self.conversation().href()
    }

    /// The conversation this row opens.
    pub fn conversation(&self) -> ConversationRef {
        match self.kind {
            ContactKind::Person => ConversationRef::Direct(self.id),
            ContactKind::Group { .. } => ConversationRef::Group(self.id),
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
    /// `u{id}` for a person, `g{id}` for a group: how addresses (`?in=`) and stored choices name it.
    pub fn key(self) -> String {
        match self {
            Self::Direct(id) => format!("u{id}"),
            Self::Group(id) => format!("g{id}"),
        }
    }

    /// The conversation a [`key`](Self::key) names.
    pub fn from_key(key: &str) -> Option<Self> {
        let id = key.get(1..)?.parse().ok()?;
        match key.as_bytes().first()? {
            b'u' => Some(Self::Direct(id)),
            b'g' => Some(Self::Group(id)),
            _ => None,
        }
    }

    /// Where it opens: `/chat/{user}` or `/chat/g/{group}`.
    pub fn href(self) -> String {
        match self {
            Self::Direct(id) => format!("/chat/{id}"),
            Self::Group(id) => format!("/chat/g/{id}"),
        }
    }

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
    /// How far I have read (0: nothing yet), which places the "New messages" divider.
    #[serde(default)]
    pub my_read_up_to: i64,
}

/// A member of a group, as the member panel lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub admin: bool,
    /// Online as the page is read.
    #[serde(default)]
    pub online: bool,
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
    /// The change sequence this page is current up to: a catch-up asks for changes after it.
    #[serde(default)]
    pub changes_up_to: i64,
    /// I muted this conversation.
    #[serde(default)]
    pub muted: bool,
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
    /// Messages up to the tab's newest that were edited, deleted or reacted to after the tab's
    /// `changes_after`, as they are now, in the order they changed.
    #[serde(default)]
    pub changed: Vec<ChatMessage>,
    /// Where the next catch-up's `changes_after` starts.
    #[serde(default)]
    pub changes_up_to: i64,
    /// True when more changes follow: ask again from `changes_up_to`.
    #[serde(default)]
    pub more_changes: bool,
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
    fn unread_counts_read_99_plus_past_99() {
        use super::{unread_label, unread_spoken};
        assert_eq!(
            (unread_label(1), unread_label(99), unread_label(100), unread_label(201)),
            ("1".into(), "99".into(), "99+".into(), "99+".into())
        );
        assert_eq!((unread_spoken(7), unread_spoken(100)), ("7 unread".into(), "more than 99 unread".into()));
    }

    #[test]
    fn excerpts_are_the_first_line_as_it_reads() {
        assert_eq!(super::excerpt("\n  *Plan*: _hike_ at `9`\nthen lunch"), "Plan: hike at 9");
        assert_eq!(super::excerpt("```\nlet x = 1;\n```"), "let x = 1;");
        let long = super::excerpt(&"word ".repeat(100));
        assert_eq!(long.chars().count(), super::QUOTE_MAX_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn uuid_v4_shape() {
        let id = super::uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(crate::validation::client_id(&id).is_ok());
    }
}

/// Search hits a page of results shows.
pub const SEARCH_PAGE: u32 = 20;
/// The most pages of hits a search goes through (relevance fades long before).
pub const SEARCH_PAGES_MAX: u32 = 50;
/// The longest search text, in characters.
pub const SEARCH_MAX_CHARS: usize = 200;

/// A piece of a hit's excerpt: its text, and whether it is one of the words searched for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcerptPart {
    pub text: String,
    pub hit: bool,
}

/// One message a search found, with where it is and the words that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub message_id: i64,
    pub conversation: ConversationRef,
    /// The other person's name, or the group's.
    pub conversation_name: String,
    pub sender_id: i64,
    pub sender_name: String,
    pub created_at: DateTime<Utc>,
    /// The message, or the part of a long one around its first match.
    pub excerpt: Vec<ExcerptPart>,
}

impl SearchHit {
    /// The conversation, opened at this message.
    pub fn href(&self) -> String {
        let id = self.message_id;
        format!("{}?at={id}#m-{id}", self.conversation.href())
    }
}

/// One page of search results, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// True when a next page exists.
    pub has_more: bool,
}
