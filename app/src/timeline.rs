//! An open conversation (one-to-one or group) as this browser knows it, with no I/O: its rows,
//! read receipts and read marks, the outbox, the catch-up cursor, who is typing, and the log's
//! entries. `components::conversation` feeds it server answers and live events and draws what it
//! holds, so every ordering decision is made, and tested, here.
//!
//! Invariants:
//! - rows are ordered by id; rows without an id yet (my messages on their way) come last, in the
//!   order they were written;
//! - a message is held once: a stored copy replaces the row with its id, or my pending row with
//!   its `(sender, client_id)`, whichever arrives first (the live event or the send's answer);
//! - read state only moves forward: a known read time is never forgotten, read marks never move
//!   back, and a receipt that arrives before my send's answer is applied once the row has its id;
//! - the outbox sends my messages one at a time in the order written; while offline they wait,
//!   and go out in the same order once back;
//! - `synced_up_to` counts only what the server confirmed in order (the first page and
//!   catch-ups), never a live event or my own send, which may be newer than a gap not yet filled.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::{
    Attachment, ChatMessage, ConversationPage, ConversationRef, ConversationUpdate, GroupInfo, MessageKind, Reaction,
    ReplyQuote,
};
use crate::realtime::{GroupChanged, LiveEvent, ReactionsChanged};
use crate::time;

/// Where a message is in its life, as this browser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Stored,
    /// In the outbox, next in line or on its way.
    Sending,
    /// In the outbox while the connection is down; goes out, in order, once back.
    Waiting,
    /// Refused by the server (the reason is for a tooltip); "Retry" writes it again.
    Failed(String),
}

/// One message in the log: stored, or still on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: Option<i64>,
    pub client_id: String,
    pub sender_id: i64,
    /// Empty for my own messages before the server has them.
    pub sender_name: String,
    pub kind: MessageKind,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// One-to-one only: when the recipient read it.
    pub read_at: Option<DateTime<Utc>>,
    pub status: Status,
    pub edited_at: Option<DateTime<Utc>>,
    /// A tombstone: "This message was deleted".
    pub deleted: bool,
    /// The number of the latest change the row shows (see [`ChatMessage::change`]).
    pub change: i64,
    pub reply_to: Option<ReplyQuote>,
    pub reactions: Vec<Reaction>,
    pub attachments: Vec<Attachment>,
}

impl Row {
    pub fn stored(m: ChatMessage) -> Self {
        Self {
            id: Some(m.id),
            client_id: m.client_id,
            sender_id: m.sender_id,
            sender_name: m.sender_name,
            kind: m.kind,
            body: m.body,
            created_at: m.created_at,
            read_at: m.read_at,
            status: Status::Stored,
            edited_at: m.edited_at,
            deleted: m.deleted,
            change: m.change,
            reply_to: m.reply_to,
            reactions: m.reactions,
            attachments: m.attachments,
        }
    }

    /// Whether the row shows a later change than `change`: a copy read before an edit, a deletion
    /// or a reaction change the row already shows (a catch-up's answer, a live event or an
    /// action's answer that arrives late) must not undo it.
    fn is_newer_than(&self, change: i64) -> bool {
        self.change > change
    }

    /// Takes `m` as the row's message, unless the row already shows a later change of it. A read
    /// time either knows is kept. True when the row took `m`.
    fn take(&mut self, m: ChatMessage) -> bool {
        let read_at = m.read_at.or(self.read_at);
        let taken = !self.is_newer_than(m.change);
        if taken {
            *self = Row::stored(m);
        }
        self.read_at = read_at;
        taken
    }

    fn pending(sender_id: i64, draft: Draft, at: DateTime<Utc>, status: Status) -> Self {
        Self {
            id: None,
            client_id: draft.client_id,
            sender_id,
            sender_name: String::new(),
            kind: MessageKind::Text,
            body: draft.body,
            created_at: at,
            read_at: None,
            status,
            edited_at: None,
            deleted: false,
            change: 0,
            reply_to: draft.reply_to,
            reactions: Vec::new(),
            attachments: draft.attachments,
        }
    }

    /// The row as a message, for quoting it.
    fn quote(&self) -> Option<ReplyQuote> {
        Some(ReplyQuote {
            id: self.id?,
            sender_id: self.sender_id,
            sender_name: self.sender_name.clone(),
            excerpt: if self.deleted { String::new() } else { crate::model::excerpt(&self.body) },
            deleted: self.deleted,
        })
    }

    pub fn is_system(&self) -> bool {
        self.kind == MessageKind::System
    }

    /// Changes whenever the row itself must be drawn again.
    fn key(&self) -> String {
        let status = match &self.status {
            Status::Stored => "s",
            Status::Sending => "p",
            Status::Waiting => "w",
            Status::Failed(_) => "f",
        };
        let reactions: Vec<String> =
            self.reactions.iter().map(|r| format!("{}{}", r.emoji, r.user_ids.len())).collect();
        let quote = self.reply_to.as_ref().map(|q| format!("{}{}", q.deleted, q.excerpt)).unwrap_or_default();
        format!(
            "{}:{}:{}:{}:{}:{}:{}:{}",
            self.sender_id,
            self.client_id,
            status,
            self.read_at.is_some(),
            self.edited_at.map(|t| t.timestamp_millis()).unwrap_or_default(),
            self.deleted,
            reactions.join(","),
            quote,
        )
    }
}

/// A message I wrote, before it is stored: its idempotency key, text, and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub client_id: String,
    pub body: String,
    pub reply_to: Option<ReplyQuote>,
    /// Files already uploaded, sent with it.
    pub attachments: Vec<Attachment>,
}

/// A message of mine still to go out, as this browser keeps it across page loads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unsent {
    pub client_id: String,
    pub body: String,
    pub reply_to: Option<ReplyQuote>,
    pub written_at: DateTime<Utc>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

impl Unsent {
    pub fn draft(&self) -> Draft {
        Draft {
            client_id: self.client_id.clone(),
            body: self.body.clone(),
            reply_to: self.reply_to.clone(),
            attachments: self.attachments.clone(),
        }
    }
}

/// How a send ended, as the outbox needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Stored (or already stored: sends are idempotent per `client_id`).
    Stored(Box<ChatMessage>),
    /// The server could not be reached: this and everything after it wait for the connection.
    Offline,
    /// The server refused it (too long, too fast, no longer a member…).
    Failed(String),
}

/// What a live event did to the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Not about this conversation.
    Ignored,
    /// A message arrived (or came back) from `sender_id`: their "typing…" ends, the log scrolls.
    Message { sender_id: i64 },
    /// A receipt or read mark moved.
    Read,
    /// The group changed: its line is in the log, the header may have changed.
    Group,
    /// A message I hold was edited, deleted, or reacted to: redrawn in place.
    Changed,
}

impl Applied {
    /// `Changed` when a row took the change, else `Ignored` (not held here, or older than the row).
    fn changed(taken: bool) -> Self {
        if taken { Self::Changed } else { Self::Ignored }
    }
}

/// The group as the header and composer need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub name: String,
    pub member_count: i64,
    /// False once I left or was removed: the log stays, read-only.
    pub member: bool,
    pub admin: bool,
}

/// A message of the log, with what drawing it needs to know about its neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    pub row: Row,
    pub mine: bool,
    /// The first of consecutive messages by the same sender on the same day (a group shows their
    /// name and avatar there only).
    pub starts_run: bool,
    /// Group members (never the sender) who have read this far, by name.
    pub seen_by: Vec<String>,
}

/// An entry of the log: a day separator or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Day(String),
    /// "New messages": above the first message that was unread when the conversation opened.
    Unread,
    Message(Box<MessageEntry>),
}

/// One open conversation's state. See the module documentation for its invariants.
#[derive(Debug, Clone)]
pub struct Timeline {
    me: i64,
    conversation: ConversationRef,
    rows: Vec<Row>,
    /// One-to-one: how far the peer has read mine, and when. Kept, because a receipt can arrive
    /// before the answer to my own send does: the row it covers has no id yet.
    peer_read: Option<(i64, DateTime<Utc>)>,
    /// Group: the other members' read marks, user id -> (name, read up to this id).
    read_marks: BTreeMap<i64, (String, i64)>,
    /// Group: how far I have read (told by the server, another tab, or this one).
    my_read_up_to: i64,
    /// The first message from others that was unread when the conversation opened: the "New
    /// messages" divider stays above it while the conversation is open.
    unread_from: Option<i64>,
    group: Option<GroupState>,
    synced_up_to: i64,
    /// The change sequence the server has confirmed: catch-ups ask for changes after it.
    changes_up_to: i64,
    catching_up: bool,
    /// A resync arrived during a catch-up: run it once more when it ends, its gap may be newer.
    catch_up_again: bool,
}

impl Timeline {
    /// The conversation as its first page shows it, for user `me`.
    pub fn new(me: i64, page: &ConversationPage) -> Self {
        let mut timeline = Self {
            me,
            conversation: page.conversation(),
            rows: Vec::with_capacity(page.messages.len()),
            peer_read: None,
            read_marks: BTreeMap::new(),
            my_read_up_to: 0,
            unread_from: None,
            group: page.group.as_ref().map(|g| GroupState {
                name: page.peer.name.clone(),
                member_count: g.member_count,
                member: g.member,
                admin: g.admin,
            }),
            synced_up_to: 0,
            changes_up_to: page.changes_up_to,
            catching_up: false,
            catch_up_again: false,
        };
        for m in &page.messages {
            timeline.merge(m.clone());
        }
        if let Some(group) = &page.group {
            timeline.note_group_info(group);
        }
        timeline.synced_up_to = timeline.newest_id();
        timeline.unread_from = timeline.first_unread();
        timeline
    }

    /// The oldest message from others I have not read (stored rows only).
    fn first_unread(&self) -> Option<i64> {
        let theirs = self.rows.iter().filter(|r| r.sender_id != self.me && !r.is_system());
        match self.conversation {
            ConversationRef::Direct(_) => theirs.filter(|r| r.read_at.is_none()).find_map(|r| r.id),
            ConversationRef::Group(_) => theirs.filter_map(|r| r.id).find(|id| *id > self.my_read_up_to),
        }
    }

    /// Where the "New messages" divider stands: above this message.
    pub fn unread_from(&self) -> Option<i64> {
        self.unread_from
    }

    pub fn me(&self) -> i64 {
        self.me
    }

    pub fn conversation(&self) -> ConversationRef {
        self.conversation
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The group's header state; `None` one-to-one.
    pub fn group(&self) -> Option<&GroupState> {
        self.group.as_ref()
    }

    /// False only for a group I am no longer a member of.
    pub fn can_write(&self) -> bool {
        self.group.as_ref().is_none_or(|g| g.member)
    }

    /// The newest stored message id in the log (0 when there is none).
    pub fn newest_id(&self) -> i64 {
        self.rows.iter().filter_map(|r| r.id).max().unwrap_or(0)
    }

    /// The oldest stored message id: where the next older page ends.
    pub fn oldest_id(&self) -> Option<i64> {
        self.rows.iter().find_map(|r| r.id)
    }

    /// Puts a stored message into the log: it replaces the row with its id, or my pending row
    /// with its `client_id`, or is added. A read time we already know is never forgotten, and a
    /// receipt that arrived before the row had its id is applied now. True when it is new.
    pub fn merge(&mut self, message: ChatMessage) -> bool {
        let same = |r: &Row| {
            r.id == Some(message.id) || (r.sender_id == message.sender_id && r.client_id == message.client_id)
        };
        let fresh = match self.rows.iter_mut().find(|r| same(r)) {
            Some(row) => {
                row.take(message);
                false
            }
            None => {
                self.rows.push(Row::stored(message));
                true
            }
        };
        // Stable: pending rows (no id yet) keep their order at the end.
        self.rows.sort_by_key(|r| r.id.unwrap_or(i64::MAX));
        self.settle_reads();
        fresh
    }

    /// An older page (from "Load older messages"): its messages and the read marks reaching them
    /// are merged like any others; the catch-up cursor stays.
    pub fn merge_older(&mut self, page: ConversationPage) {
        for m in page.messages {
            self.merge(m);
        }
        if let Some(group) = &page.group {
            self.note_group_info(group);
        }
    }

    /// A message I already hold, as it is now (edited, deleted, reacted to): replaces its row, and
    /// the quotes of replies to it follow. A message I do not hold is not added: it is older than
    /// what is loaded, and the next older page brings it as it is. A copy older than the row (read
    /// before an edit or a deletion the row shows) leaves it. True when a row changed.
    pub fn replace(&mut self, message: ChatMessage) -> bool {
        let Some(row) = self.rows.iter_mut().find(|r| r.id == Some(message.id)) else { return false };
        if !row.take(message) {
            return false;
        }
        let quote = row.quote();
        self.requote(quote);
        true
    }

    /// Message `id` was deleted (change `change`): its row becomes a tombstone, and quotes of it
    /// say so. False when the row is a tombstone already (a second copy of the event, or a
    /// deleted copy came first): nothing to draw again.
    pub fn tombstone(&mut self, id: i64, change: i64) -> bool {
        let Some(row) = self.rows.iter_mut().find(|r| r.id == Some(id)) else { return false };
        row.change = row.change.max(change);
        if row.deleted {
            return false;
        }
        row.deleted = true;
        row.body.clear();
        row.reactions.clear();
        row.attachments.clear();
        let quote = row.quote();
        self.requote(quote);
        true
    }

    /// A message's reactions are now the event's, unless its row already shows a later change.
    /// True when the row took them.
    fn set_reactions(&mut self, event: &ReactionsChanged) -> bool {
        let Some(row) = self.rows.iter_mut().find(|r| r.id == Some(event.message_id)) else { return false };
        if row.is_newer_than(event.change) {
            return false;
        }
        row.change = event.change;
        row.reactions = event.reactions.clone();
        true
    }

    fn requote(&mut self, quote: Option<ReplyQuote>) {
        let Some(quote) = quote else { return };
        for row in &mut self.rows {
            if let Some(q) = row.reply_to.as_mut().filter(|q| q.id == quote.id) {
                *q = quote.clone();
            }
        }
    }

    /// The row with id `id`, if loaded.
    pub fn row(&self, id: i64) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == Some(id))
    }

    /// Marks as read, at `at`, the stored messages from `sender` up to `up_to_id` (one-to-one).
    pub fn mark_read(&mut self, sender: i64, up_to_id: i64, at: DateTime<Utc>) {
        for row in self.rows.iter_mut().filter(|r| r.sender_id == sender && r.id.is_some_and(|id| id <= up_to_id)) {
            row.read_at.get_or_insert(at);
        }
    }

    /// One-to-one: the peer has read mine up to `up_to_id`. Remembered, so that my rows that get
    /// their id later (the answer to a send that was still on its way) are marked too.
    pub fn note_peer_read(&mut self, up_to_id: i64, at: DateTime<Utc>) {
        if self.peer_read.is_none_or(|(known, _)| known < up_to_id) {
            self.peer_read = Some((up_to_id, at));
        }
        self.mark_read(self.me, up_to_id, at);
    }

    /// Applies the remembered peer receipt to my rows.
    fn settle_reads(&mut self) {
        if let Some((up_to, at)) = self.peer_read {
            self.mark_read(self.me, up_to, at);
        }
    }

    /// Group: `user_id` has read up to `up_to_id`. Marks never move back; mine is kept apart.
    pub fn note_group_read(&mut self, user_id: i64, name: &str, up_to_id: i64) {
        if user_id == self.me {
            self.my_read_up_to = self.my_read_up_to.max(up_to_id);
            return;
        }
        let mark = self.read_marks.entry(user_id).or_insert_with(|| (name.to_owned(), 0));
        if !name.is_empty() {
            name.clone_into(&mut mark.0);
        }
        mark.1 = mark.1.max(up_to_id);
    }

    /// The group's read marks, member state and size as the server last said.
    fn note_group_info(&mut self, info: &GroupInfo) {
        self.my_read_up_to = self.my_read_up_to.max(info.my_read_up_to);
        for mark in &info.read_marks {
            self.note_group_read(mark.user_id, &mark.name, mark.up_to_id);
        }
        if let Some(group) = &mut self.group {
            group.member_count = info.member_count;
            group.member = info.member;
            group.admin = info.admin;
        }
    }

    /// Who of the group (never the sender) has read `row`, by name; empty for a row not stored yet
    /// and in a one-to-one conversation.
    pub fn seen_by(&self, row: &Row) -> Vec<String> {
        let Some(id) = row.id else { return Vec::new() };
        let mut names: Vec<String> = self
            .read_marks
            .iter()
            .filter(|(user, (_, up_to))| **user != row.sender_id && *up_to >= id)
            .map(|(_, (name, _))| name.clone())
            .collect();
        names.sort();
        names
    }

    /// The newest message from others that I have not marked read: what the server should be told
    /// (`mark_as_read` / `mark_group_read`). `None` when there is nothing new, or I am no longer
    /// a member of the group.
    pub fn unread_up_to(&self) -> Option<i64> {
        match self.conversation {
            ConversationRef::Direct(peer) => {
                self.rows.iter().filter(|r| r.sender_id == peer && r.read_at.is_none()).filter_map(|r| r.id).max()
            }
            ConversationRef::Group(_) if !self.can_write() => None,
            ConversationRef::Group(_) => self
                .rows
                .iter()
                .filter(|r| r.sender_id != self.me)
                .filter_map(|r| r.id)
                .filter(|id| *id > self.my_read_up_to)
                .max(),
        }
    }

    /// I have read up to `up_to_id` (here or in another tab): shown at once, asked no more.
    pub fn read_by_me(&mut self, up_to_id: i64, at: DateTime<Utc>) {
        match self.conversation {
            ConversationRef::Direct(peer) => self.mark_read(peer, up_to_id, at),
            ConversationRef::Group(_) => self.my_read_up_to = self.my_read_up_to.max(up_to_id),
        }
    }

    /// A live event, if it concerns this conversation.
    pub fn apply_event(&mut self, event: &LiveEvent) -> Applied {
        let (me, conversation) = (self.me, self.conversation);
        match (event, conversation) {
            (LiveEvent::NewMessage(m), _) if conversation.contains(me, m) => {
                self.merge(m.clone());
                Applied::Message { sender_id: m.sender_id }
            }
            // The peer read mine: ✓ becomes ✓✓.
            (LiveEvent::MessagesRead(r), ConversationRef::Direct(peer)) if r.reader_id == peer && r.peer_id == me => {
                self.note_peer_read(r.up_to_id, r.read_at);
                Applied::Read
            }
            // I read theirs in another tab.
            (LiveEvent::MessagesRead(r), ConversationRef::Direct(peer)) if r.reader_id == me && r.peer_id == peer => {
                self.read_by_me(r.up_to_id, r.read_at);
                Applied::Read
            }
            (LiveEvent::GroupRead(r), ConversationRef::Group(room)) if r.room_id == room => {
                self.note_group_read(r.reader_id, &r.reader_name, r.up_to_id);
                Applied::Read
            }
            (LiveEvent::GroupChanged(change), ConversationRef::Group(room)) if change.room_id == room => {
                self.on_group_changed(change);
                Applied::Group
            }
            (LiveEvent::MessageUpdated(m), _) if conversation.contains(me, m) => {
                Applied::changed(self.replace(m.clone()))
            }
            (LiveEvent::MessageDeleted(d), _) => Applied::changed(self.tombstone(d.id, d.change)),
            (LiveEvent::ReactionsChanged(r), _) => Applied::changed(self.set_reactions(r)),
            _ => Applied::Ignored,
        }
    }

    /// The group was renamed or its members changed: its line joins the log, the header follows,
    /// and if I was removed the conversation becomes read-only (added back: writable again).
    pub fn on_group_changed(&mut self, change: &GroupChanged) {
        if self.conversation.contains(self.me, &change.line) {
            self.merge(change.line.clone());
        }
        let me = self.me;
        if let Some(group) = &mut self.group {
            change.name.clone_into(&mut group.name);
            group.member_count = change.member_count;
            if change.removed.contains(&me) {
                group.member = false;
                group.admin = false;
            } else if change.added.contains(&me) {
                group.member = true;
            }
            if change.promoted.contains(&me) {
                group.admin = true;
            }
        }
    }

    // The outbox.

    /// I wrote a message (or pressed "Retry" on one that failed): it shows at once and joins the
    /// outbox, as waiting when the connection is down.
    pub fn write(&mut self, draft: Draft, at: DateTime<Utc>, offline: bool) {
        let status = if offline { Status::Waiting } else { Status::Sending };
        let me = self.me;
        match self.rows.iter_mut().find(|r| r.sender_id == me && r.client_id == draft.client_id) {
            // A retry: only a row still unsent goes out again.
            Some(row) if row.id.is_none() => row.status = status,
            Some(_) => {}
            None => self.rows.push(Row::pending(me, draft, at, status)),
        }
    }

    /// The quote a reply to message `id` carries, from the loaded row.
    pub fn quote_of(&self, id: i64) -> Option<ReplyQuote> {
        self.row(id).and_then(Row::quote)
    }

    /// My messages that still have to go out (sending or waiting; not failed ones), in order.
    pub fn unsent(&self) -> Vec<Unsent> {
        self.rows
            .iter()
            .filter(|r| {
                r.sender_id == self.me && r.id.is_none() && matches!(r.status, Status::Sending | Status::Waiting)
            })
            .map(|r| Unsent {
                client_id: r.client_id.clone(),
                body: r.body.clone(),
                reply_to: r.reply_to.clone(),
                written_at: r.created_at,
                attachments: r.attachments.clone(),
            })
            .collect()
    }

    /// The next message to send: my oldest row still to go out.
    pub fn next_to_send(&self) -> Option<Draft> {
        self.rows.iter().find(|r| r.sender_id == self.me && r.status == Status::Sending).map(|r| Draft {
            client_id: r.client_id.clone(),
            body: r.body.clone(),
            reply_to: r.reply_to.clone(),
            attachments: r.attachments.clone(),
        })
    }

    /// The send of `client_id` ended.
    pub fn on_send_result(&mut self, client_id: &str, result: SendResult) {
        match result {
            SendResult::Stored(message) => {
                self.merge(*message);
            }
            SendResult::Offline => self.park_sending(),
            SendResult::Failed(reason) => {
                let me = self.me;
                // A row the live event already stored is not failed, whatever the answer said.
                if let Some(row) =
                    self.rows.iter_mut().find(|r| r.sender_id == me && r.client_id == client_id && r.id.is_none())
                {
                    row.status = Status::Failed(reason);
                }
            }
        }
    }

    /// The connection is down: everything still to send waits, in order.
    pub fn park_sending(&mut self) {
        for row in self.rows.iter_mut().filter(|r| r.status == Status::Sending) {
            row.status = Status::Waiting;
        }
    }

    /// The connection is back: what waited goes out, in the order written. True when anything is
    /// to be sent.
    pub fn flush_waiting(&mut self) -> bool {
        for row in self.rows.iter_mut().filter(|r| r.status == Status::Waiting) {
            row.status = Status::Sending;
        }
        self.next_to_send().is_some()
    }

    // Catching up.

    /// The newest message id the server has confirmed in order: catch-ups ask for what is after it.
    pub fn synced_up_to(&self) -> i64 {
        self.synced_up_to
    }

    /// The change sequence the server has confirmed: catch-ups ask for changes after it.
    pub fn changes_up_to(&self) -> i64 {
        self.changes_up_to
    }

    /// A (re)subscription happened: true when the caller should run a catch-up now; false when
    /// one is running already (it will run once more when it ends, see [`Self::finish_catch_up`]).
    pub fn start_catch_up(&mut self) -> bool {
        if self.catching_up {
            self.catch_up_again = true;
            return false;
        }
        self.catching_up = true;
        self.catch_up_again = false;
        true
    }

    /// A catch-up's answer: its messages, receipts and read marks join the log, messages I hold
    /// that changed meanwhile are redrawn as they are now, and both cursors advance. True when the
    /// server has more: ask again from [`Self::synced_up_to`] and [`Self::changes_up_to`].
    pub fn apply_update(&mut self, update: &ConversationUpdate) -> bool {
        for m in &update.messages {
            self.merge(m.clone());
        }
        for m in &update.changed {
            self.replace(m.clone());
        }
        self.changes_up_to = self.changes_up_to.max(update.changes_up_to);
        if let (Some(up_to), Some(at)) = (update.peer_read_up_to, update.peer_read_at) {
            self.note_peer_read(up_to, at);
        }
        if let Some(group) = &update.group {
            self.note_group_info(group);
        }
        if let Some(newest) = update.messages.iter().map(|m| m.id).max() {
            self.synced_up_to = self.synced_up_to.max(newest);
        }
        (update.has_more && !update.messages.is_empty()) || (update.more_changes && !update.changed.is_empty())
    }

    /// The catch-up loop ended (done, or failed). True when a resync arrived meanwhile: run it
    /// again from the new cursor; false when catching up is over.
    pub fn finish_catch_up(&mut self) -> bool {
        if self.catch_up_again {
            self.catch_up_again = false;
            return true;
        }
        self.catching_up = false;
        false
    }

    /// The log as drawn: a day separator before each day's first message, each message with its
    /// run and "seen by". Keys change whenever an entry must be drawn again. `local` picks the
    /// time zone days are counted in; `today` is today's date in it.
    pub fn entries(&self, local: bool, today: NaiveDate) -> Vec<(String, Entry)> {
        let mut out = Vec::with_capacity(self.rows.len() + 4);
        let mut last_day = None;
        let mut previous: Option<&Row> = None;
        for row in &self.rows {
            let day = time::day(row.created_at, local);
            if last_day != Some(day) {
                out.push((format!("day:{day}:{local}"), Entry::Day(time::day_label(day, today))));
                last_day = Some(day);
                previous = None;
            }
            if row.id.is_some() && row.id == self.unread_from {
                out.push(("unread".to_owned(), Entry::Unread));
                previous = None;
            }
            let starts_run = row.is_system() || previous.is_none_or(|p| p.is_system() || p.sender_id != row.sender_id);
            let seen_by = self.seen_by(row);
            let key = format!("{}:{}:{}", row.key(), starts_run, seen_by.join(","));
            let entry = MessageEntry { row: row.clone(), mine: row.sender_id == self.me, starts_run, seen_by };
            out.push((key, Entry::Message(Box::new(entry))));
            previous = Some(row);
        }
        out
    }
}

/// Who is typing in the open conversation, each with the generation of their latest whisper, so
/// that a timer set for an older whisper does not end a newer one. Never me.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typers {
    me: i64,
    /// One-to-one: only the peer's whispers count.
    only: Option<i64>,
    /// In the order they started typing: (user id, name, generation).
    typing: Vec<(i64, String, u64)>,
    generation: u64,
}

impl Typers {
    pub fn new(me: i64, conversation: ConversationRef) -> Self {
        let only = match conversation {
            ConversationRef::Direct(peer) => Some(peer),
            ConversationRef::Group(_) => None,
        };
        Self { me, only, typing: Vec::new(), generation: 0 }
    }

    /// A whisper from `user_id`: they are typing. Returns the generation to pass to
    /// [`Self::expire`] when the indicator should end; `None` when the whisper does not count.
    pub fn typing(&mut self, user_id: i64, name: &str) -> Option<u64> {
        if user_id == self.me || self.only.is_some_and(|peer| peer != user_id) {
            return None;
        }
        self.generation += 1;
        let generation = self.generation;
        match self.typing.iter_mut().find(|(id, ..)| *id == user_id) {
            Some(typer) => {
                name.clone_into(&mut typer.1);
                typer.2 = generation;
            }
            None => self.typing.push((user_id, name.to_owned(), generation)),
        }
        Some(generation)
    }

    /// The indicator set by whisper `generation` of `user_id` ends, unless a newer one came since.
    /// True when someone stopped showing.
    pub fn expire(&mut self, user_id: i64, generation: u64) -> bool {
        let before = self.typing.len();
        self.typing.retain(|(id, _, g)| !(*id == user_id && *g == generation));
        self.typing.len() != before
    }

    /// `user_id`'s message landed: they are no longer typing. True when they were shown.
    pub fn stopped(&mut self, user_id: i64) -> bool {
        let before = self.typing.len();
        self.typing.retain(|(id, ..)| *id != user_id);
        self.typing.len() != before
    }

    /// "Dana is typing…" and so on; `None` when nobody is.
    pub fn label(&self) -> Option<String> {
        let names: Vec<&str> = self.typing.iter().map(|(_, name, _)| name.as_str()).collect();
        typing_label(&names)
    }
}

/// "Dana is typing…", "Dana and Erin are typing…", "Several people are typing…" (three or more).
pub fn typing_label(names: &[&str]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [one, two] => Some(format!("{one} and {two} are typing…")),
        _ => Some("Several people are typing…".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{Peer, ReadMark};
    use crate::realtime::{GroupRead, MessageDeleted, MessagesRead, ReactionsChanged};

    const ME: i64 = 1;
    const PEER: i64 = 2;
    const ROOM: i64 = 40;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, minute, 0).unwrap()
    }

    /// A one-to-one message between ME and PEER.
    fn direct(id: i64, sender_id: i64, client_id: &str) -> ChatMessage {
        ChatMessage {
            id,
            sender_id,
            recipient_id: if sender_id == ME { PEER } else { ME },
            room_id: None,
            sender_name: format!("user{sender_id}"),
            kind: MessageKind::Text,
            body: format!("m{id}"),
            client_id: client_id.to_owned(),
            created_at: at(0),
            read_at: None,
            edited_at: None,
            deleted: false,
            change: 0,
            reply_to: None,
            reactions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    /// A message in group ROOM.
    fn in_group(id: i64, sender_id: i64, client_id: &str) -> ChatMessage {
        ChatMessage { recipient_id: 0, room_id: Some(ROOM), ..direct(id, sender_id, client_id) }
    }

    fn system_line(id: i64, sender_id: i64) -> ChatMessage {
        let client_id = format!("sys{id}");
        ChatMessage { kind: MessageKind::System, body: "Dana added Erin".into(), ..in_group(id, sender_id, &client_id) }
    }

    fn direct_page(messages: Vec<ChatMessage>) -> ConversationPage {
        ConversationPage {
            peer: Peer { id: PEER, name: "Bob".into() },
            group: None,
            messages,
            has_more: false,
            compose_id: "c".into(),
            changes_up_to: 0,
            muted: false,
        }
    }

    fn group_info(read_marks: Vec<ReadMark>) -> GroupInfo {
        GroupInfo { member_count: 4, member: true, admin: false, read_marks, my_read_up_to: 0 }
    }

    fn group_page(messages: Vec<ChatMessage>, read_marks: Vec<ReadMark>) -> ConversationPage {
        ConversationPage {
            peer: Peer { id: ROOM, name: "Climbing".into() },
            group: Some(group_info(read_marks)),
            messages,
            has_more: false,
            compose_id: "c".into(),
            changes_up_to: 0,
            muted: false,
        }
    }

    fn mark(user_id: i64, name: &str, up_to_id: i64) -> ReadMark {
        ReadMark { user_id, name: name.into(), up_to_id }
    }

    fn draft(client_id: &str, body: &str) -> Draft {
        Draft { client_id: client_id.into(), body: body.into(), reply_to: None, attachments: Vec::new() }
    }

    /// What the outbox would send next, as `(client_id, body)`.
    fn sendable(t: &Timeline) -> Option<(String, String)> {
        t.next_to_send().map(|d| (d.client_id, d.body))
    }

    fn update(messages: Vec<ChatMessage>, has_more: bool) -> ConversationUpdate {
        ConversationUpdate {
            messages,
            has_more,
            peer_read_up_to: None,
            peer_read_at: None,
            group: None,
            changed: Vec::new(),
            changes_up_to: 0,
            more_changes: false,
        }
    }

    fn ids(t: &Timeline) -> Vec<Option<i64>> {
        t.rows().iter().map(|r| r.id).collect()
    }

    fn row<'a>(t: &'a Timeline, client_id: &str) -> &'a Row {
        t.rows().iter().find(|r| r.client_id == client_id).expect("row")
    }

    fn change(line: ChatMessage) -> GroupChanged {
        GroupChanged {
            room_id: ROOM,
            name: "Bouldering".into(),
            member_count: 5,
            added: vec![],
            removed: vec![],
            promoted: vec![],
            line,
        }
    }

    #[test]
    fn a_first_page_sets_rows_and_cursor() {
        let t = Timeline::new(ME, &direct_page(vec![direct(3, PEER, "c"), direct(1, ME, "a")]));
        assert_eq!(ids(&t), [Some(1), Some(3)], "ordered by id whatever the page's order");
        assert_eq!(t.newest_id(), 3);
        assert_eq!(t.oldest_id(), Some(1));
        assert_eq!(t.synced_up_to(), 3);
        assert_eq!(t.conversation(), ConversationRef::Direct(PEER));
        assert!(t.group().is_none() && t.can_write() && !t.is_empty());
        assert_eq!(t.me(), ME);

        let empty = Timeline::new(ME, &direct_page(vec![]));
        assert!(empty.is_empty());
        assert_eq!((empty.newest_id(), empty.oldest_id(), empty.synced_up_to()), (0, None, 0));
    }

    #[test]
    fn merging_drops_duplicates_and_keeps_id_order() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, ME, "a"), direct(3, PEER, "c")]));
        t.write(draft("p", "pending"), at(1), false);
        assert!(t.merge(direct(2, PEER, "b")), "a missed message is inserted");
        assert!(!t.merge(direct(2, PEER, "b")), "the same id twice is one message");
        assert!(t.merge(direct(5, PEER, "e")));
        assert_eq!(ids(&t), [Some(1), Some(2), Some(3), Some(5), None], "pending stays last");
        // My pending message comes back stored (from the live event or the HTTP answer): same row.
        assert!(!t.merge(direct(6, ME, "p")));
        assert_eq!(ids(&t), [Some(1), Some(2), Some(3), Some(5), Some(6)]);
        assert_eq!(t.rows().iter().filter(|r| r.client_id == "p").count(), 1);
        assert_eq!(row(&t, "p").status, Status::Stored);
        // The same client_id from someone else is another message.
        assert!(t.merge(direct(7, PEER, "p")));
    }

    #[test]
    fn pending_rows_keep_the_order_they_were_written_in() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a")]));
        for client_id in ["x", "y", "z"] {
            t.write(draft(client_id, client_id), at(1), false);
        }
        t.merge(direct(2, PEER, "b"));
        t.merge(direct(3, ME, "y"));
        let order: Vec<&str> = t.rows().iter().map(|r| r.client_id.as_str()).collect();
        assert_eq!(order, ["a", "b", "y", "x", "z"]);
    }

    #[test]
    fn older_pages_go_first() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(10, PEER, "j"), direct(11, ME, "k")]));
        t.merge_older(direct_page(vec![direct(8, PEER, "h"), direct(9, ME, "i")]));
        assert_eq!(ids(&t), [Some(8), Some(9), Some(10), Some(11)]);
        assert_eq!(t.oldest_id(), Some(8));
        assert_eq!(t.synced_up_to(), 11, "older pages do not move the catch-up cursor");

        let mut g = Timeline::new(ME, &group_page(vec![in_group(10, 3, "j")], vec![]));
        g.merge_older(group_page(vec![in_group(8, ME, "h")], vec![mark(3, "Dana", 9)]));
        assert_eq!(ids(&g), [Some(8), Some(10)]);
        assert_eq!(g.seen_by(row(&g, "h")), ["Dana"], "the older page's read marks count");
    }

    #[test]
    fn a_known_read_time_survives_a_stale_copy() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, ME, "a"), direct(2, PEER, "b")]));
        t.mark_read(ME, 1, at(5));
        assert_eq!(row(&t, "a").read_at, Some(at(5)));
        assert_eq!(row(&t, "b").read_at, None, "only the given sender's messages");
        t.merge(direct(1, ME, "a"));
        assert_eq!(row(&t, "a").read_at, Some(at(5)));
        t.mark_read(ME, 1, at(9));
        assert_eq!(row(&t, "a").read_at, Some(at(5)), "the first read time stays");
    }

    #[test]
    fn a_receipt_before_my_sends_answer_marks_it_once_stored() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, ME, "a")]));
        t.write(draft("b", "hi"), at(1), false);
        assert_eq!(sendable(&t), Some(("b".into(), "hi".into())));
        // The peer's tab got the live event first and read it: the receipt names id 2.
        let read = MessagesRead { reader_id: PEER, peer_id: ME, up_to_id: 2, read_at: at(3) };
        assert_eq!(t.apply_event(&LiveEvent::MessagesRead(read)), Applied::Read);
        assert_eq!(row(&t, "a").read_at, Some(at(3)));
        assert_eq!(row(&t, "b").read_at, None, "no id yet");
        t.on_send_result("b", SendResult::Stored(Box::new(direct(2, ME, "b"))));
        assert_eq!(row(&t, "b").read_at, Some(at(3)), "remembered and applied");
        assert_eq!(row(&t, "b").status, Status::Stored);
        assert_eq!(sendable(&t), None);
        // An older receipt arriving late does not lower what is remembered.
        t.note_peer_read(1, at(2));
        t.write(draft("c", "again"), at(4), false);
        t.on_send_result("c", SendResult::Stored(Box::new(direct(3, ME, "c"))));
        assert_eq!(row(&t, "c").read_at, None, "3 is after what the peer has read");
    }

    #[test]
    fn a_duplicate_live_event_and_http_answer_make_one_row() {
        let mut t = Timeline::new(ME, &direct_page(vec![]));
        t.write(draft("a", "hello"), at(1), false);
        // My other tab's copy arrives live before this tab's answer, then the answer.
        let event = LiveEvent::NewMessage(direct(4, ME, "a"));
        assert_eq!(t.apply_event(&event), Applied::Message { sender_id: ME });
        t.on_send_result("a", SendResult::Stored(Box::new(direct(4, ME, "a"))));
        assert_eq!(ids(&t), [Some(4)]);
        // And the other way round: the answer first, then the event (the server's exclusion of
        // this socket is best effort).
        t.write(draft("b", "again"), at(2), false);
        t.on_send_result("b", SendResult::Stored(Box::new(direct(5, ME, "b"))));
        t.apply_event(&LiveEvent::NewMessage(direct(5, ME, "b")));
        assert_eq!(ids(&t), [Some(4), Some(5)]);
        assert!(t.rows().iter().all(|r| r.status == Status::Stored));
    }

    #[test]
    fn live_events_for_other_conversations_are_ignored() {
        let mut t = Timeline::new(ME, &direct_page(vec![]));
        let elsewhere = ChatMessage { recipient_id: 9, ..direct(1, ME, "x") };
        assert_eq!(t.apply_event(&LiveEvent::NewMessage(elsewhere)), Applied::Ignored);
        assert_eq!(t.apply_event(&LiveEvent::NewMessage(in_group(2, PEER, "g"))), Applied::Ignored);
        let read = MessagesRead { reader_id: 9, peer_id: ME, up_to_id: 5, read_at: at(1) };
        assert_eq!(t.apply_event(&LiveEvent::MessagesRead(read)), Applied::Ignored);
        let group_read = GroupRead { room_id: ROOM, reader_id: PEER, reader_name: "Bob".into(), up_to_id: 3 };
        assert_eq!(t.apply_event(&LiveEvent::GroupRead(group_read)), Applied::Ignored);
        assert_eq!(t.apply_event(&LiveEvent::GroupChanged(change(system_line(3, PEER)))), Applied::Ignored);
        assert!(t.is_empty());

        let mut g = Timeline::new(ME, &group_page(vec![], vec![]));
        assert_eq!(g.apply_event(&LiveEvent::NewMessage(direct(1, PEER, "d"))), Applied::Ignored);
        let other_room = ChatMessage { room_id: Some(ROOM + 1), ..in_group(2, PEER, "o") };
        assert_eq!(g.apply_event(&LiveEvent::NewMessage(other_room)), Applied::Ignored);
        let read = MessagesRead { reader_id: PEER, peer_id: ME, up_to_id: 5, read_at: at(1) };
        assert_eq!(g.apply_event(&LiveEvent::MessagesRead(read)), Applied::Ignored);
        assert!(g.is_empty());
    }

    #[test]
    fn one_to_one_unread_and_reading_in_another_tab() {
        let mut t =
            Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a"), direct(2, ME, "b"), direct(3, PEER, "c")]));
        assert_eq!(t.unread_up_to(), Some(3));
        t.read_by_me(3, at(4));
        assert_eq!(t.unread_up_to(), None, "asked once");
        assert_eq!(row(&t, "a").read_at, Some(at(4)));
        assert_eq!(row(&t, "b").read_at, None, "mine are not read by me");
        t.apply_event(&LiveEvent::NewMessage(direct(4, PEER, "d")));
        assert_eq!(t.unread_up_to(), Some(4));
        let other_tab = MessagesRead { reader_id: ME, peer_id: PEER, up_to_id: 4, read_at: at(6) };
        assert_eq!(t.apply_event(&LiveEvent::MessagesRead(other_tab)), Applied::Read);
        assert_eq!(t.unread_up_to(), None);
        assert_eq!(row(&t, "d").read_at, Some(at(6)));
        assert_eq!(row(&t, "b").read_at, None);
    }

    #[test]
    fn group_read_marks_say_who_has_seen_a_message() {
        let marks = vec![mark(3, "Dana", 2), mark(4, "Erin", 1), mark(ME, "Me", 2)];
        let mut t = Timeline::new(ME, &group_page(vec![in_group(1, ME, "a"), in_group(2, ME, "b")], marks));
        assert_eq!(t.seen_by(row(&t, "a")), ["Dana", "Erin"], "by name");
        assert_eq!(t.seen_by(row(&t, "b")), ["Dana"]);
        // Marks only move forward; a newer name replaces an old one.
        t.note_group_read(4, "Erin B", 2);
        t.note_group_read(3, "Dana", 1);
        assert_eq!(t.seen_by(row(&t, "b")), ["Dana", "Erin B"]);
        // Never the sender, never a row still on its way, and never me.
        t.merge(in_group(3, 3, "c"));
        t.note_group_read(3, "Dana", 3);
        t.note_group_read(4, "Erin B", 3);
        assert_eq!(t.seen_by(row(&t, "c")), ["Erin B"]);
        t.write(draft("p", "soon"), at(2), false);
        assert!(t.seen_by(row(&t, "p")).is_empty());
        // A live read mark.
        t.merge(in_group(4, ME, "d"));
        let read = GroupRead { room_id: ROOM, reader_id: 5, reader_name: "Finn".into(), up_to_id: 4 };
        assert_eq!(t.apply_event(&LiveEvent::GroupRead(read)), Applied::Read);
        assert_eq!(t.seen_by(row(&t, "d")), ["Finn"]);
        // One-to-one has no marks.
        let d = Timeline::new(ME, &direct_page(vec![direct(1, ME, "a")]));
        assert!(d.seen_by(row(&d, "a")).is_empty());
    }

    #[test]
    fn group_unread_follows_my_own_read_mark() {
        let messages = vec![in_group(1, 3, "a"), in_group(2, ME, "b")];
        let mut t = Timeline::new(ME, &group_page(messages.clone(), vec![mark(ME, "Me", 1)]));
        assert_eq!(t.unread_up_to(), None, "read up to 1 already; 2 is mine");
        t.merge(in_group(3, 4, "c"));
        assert_eq!(t.unread_up_to(), Some(3));
        t.read_by_me(3, at(1));
        assert_eq!(t.unread_up_to(), None, "not asked again");
        t.read_by_me(2, at(1));
        t.merge(in_group(4, 4, "d"));
        assert_eq!(t.unread_up_to(), Some(4), "my mark never moves back");
        // My other tab read it.
        let read = GroupRead { room_id: ROOM, reader_id: ME, reader_name: "Me".into(), up_to_id: 4 };
        t.apply_event(&LiveEvent::GroupRead(read));
        assert_eq!(t.unread_up_to(), None);
        assert!(t.seen_by(row(&t, "d")).is_empty(), "my mark is not a 'seen by'");
        // Without my mark on the page, everything from others counts once.
        let fresh = Timeline::new(ME, &group_page(messages, vec![]));
        assert_eq!(fresh.unread_up_to(), Some(1));
    }

    #[test]
    fn group_changes_reach_the_log_and_the_header() {
        let mut t = Timeline::new(ME, &group_page(vec![in_group(1, 3, "a")], vec![]));
        assert_eq!(
            t.group(),
            Some(&GroupState { name: "Climbing".into(), member_count: 4, member: true, admin: false })
        );
        let mut renamed = change(system_line(2, 3));
        renamed.promoted = vec![ME];
        assert_eq!(t.apply_event(&LiveEvent::GroupChanged(renamed.clone())), Applied::Group);
        assert_eq!(ids(&t), [Some(1), Some(2)]);
        assert!(t.rows()[1].is_system());
        let group = t.group().unwrap();
        assert_eq!((group.name.as_str(), group.member_count, group.member, group.admin), ("Bouldering", 5, true, true));
        // The same change twice (room channel and my user channel) is one line.
        t.apply_event(&LiveEvent::GroupChanged(renamed));
        assert_eq!(ids(&t), [Some(1), Some(2)]);
        // Someone else removed: nothing changes for me.
        let mut other = change(system_line(3, 3));
        other.removed = vec![4];
        other.member_count = 4;
        t.apply_event(&LiveEvent::GroupChanged(other));
        assert!(t.can_write());
        assert_eq!(t.group().unwrap().member_count, 4);
        // I am removed: read-only, nothing to mark read.
        t.merge(in_group(4, 3, "b"));
        let mut removed = change(system_line(5, 3));
        removed.removed = vec![ME];
        t.apply_event(&LiveEvent::GroupChanged(removed));
        assert!(!t.can_write());
        assert!(!t.group().unwrap().admin);
        assert_eq!(t.unread_up_to(), None);
        assert_eq!(t.newest_id(), 5, "the line about it is shown");
        // Added back.
        let mut added = change(system_line(6, 3));
        added.added = vec![ME];
        t.apply_event(&LiveEvent::GroupChanged(added));
        assert!(t.can_write());
    }

    /// The keys of the log's entries that are not days: message ids, and "unread" for the divider.
    fn divided(t: &Timeline) -> Vec<String> {
        let today = at(0).date_naive();
        t.entries(false, today)
            .into_iter()
            .filter_map(|(_, e)| match e {
                Entry::Day(_) => None,
                Entry::Unread => Some("unread".to_owned()),
                Entry::Message(m) => Some(m.row.id.map_or("pending".to_owned(), |id| id.to_string())),
            })
            .collect()
    }

    #[test]
    fn the_new_messages_divider_stands_above_the_first_unread_and_stays_there() {
        let read = |m: ChatMessage| ChatMessage { read_at: Some(at(1)), ..m };
        let mut t = Timeline::new(
            ME,
            &direct_page(vec![
                read(direct(1, PEER, "a")),
                direct(2, ME, "b"),
                direct(3, PEER, "c"),
                direct(4, PEER, "d"),
            ]),
        );
        assert_eq!(t.unread_from(), Some(3));
        assert_eq!(divided(&t), ["1", "2", "unread", "3", "4"]);
        // Reading them, and new messages, leave it where it was while the conversation is open.
        t.read_by_me(4, at(2));
        t.merge(direct(5, PEER, "e"));
        assert_eq!(divided(&t), ["1", "2", "unread", "3", "4", "5"]);
        // Nothing unread: no divider.
        let t = Timeline::new(ME, &direct_page(vec![read(direct(1, PEER, "a")), direct(2, ME, "b")]));
        assert_eq!(t.unread_from(), None);
        assert_eq!(divided(&t), ["1", "2"]);
    }

    #[test]
    fn in_a_group_the_divider_follows_my_read_mark_and_skips_mine_and_system_lines() {
        let mut page =
            group_page(vec![in_group(1, 3, "a"), in_group(2, ME, "b"), system_line(3, 4), in_group(4, 4, "d")], vec![]);
        page.group.as_mut().unwrap().my_read_up_to = 1;
        let t = Timeline::new(ME, &page);
        assert_eq!(t.unread_from(), Some(4));
        assert_eq!(divided(&t), ["1", "2", "3", "unread", "4"]);
        assert_eq!(t.unread_up_to(), Some(4), "my mark came with the page");
    }

    #[test]
    fn what_still_has_to_go_out_is_listed_for_keeping_and_comes_back_single() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a")]));
        t.write(draft("x", "first"), at(1), true);
        t.write(draft("y", "second"), at(2), false);
        let unsent = t.unsent();
        assert_eq!(unsent.iter().map(|u| u.client_id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(unsent[0].written_at, at(1));
        // After a reload: the page already holds "x" (it was stored), so only "y" comes back.
        let mut stored = direct(2, ME, "x");
        stored.body = "first".into();
        let mut again = Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a"), stored]));
        for u in &unsent {
            again.write(u.draft(), u.written_at, false);
        }
        assert_eq!(ids(&again), [Some(1), Some(2), None]);
        assert_eq!(again.unsent().iter().map(|u| u.client_id.as_str()).collect::<Vec<_>>(), ["y"]);
        // A failed one is not kept for later: it waits for "Retry".
        t.on_send_result("x", SendResult::Failed("too long".into()));
        assert_eq!(t.unsent().iter().map(|u| u.client_id.as_str()).collect::<Vec<_>>(), ["y"]);
    }

    #[test]
    fn a_catch_up_can_say_i_am_no_longer_a_member() {
        let mut t = Timeline::new(ME, &group_page(vec![in_group(1, 4, "a")], vec![]));
        assert!(t.start_catch_up());
        let mut u = update(vec![in_group(2, 3, "b")], false);
        u.group = Some(GroupInfo {
            member_count: 3,
            member: false,
            admin: false,
            read_marks: vec![mark(3, "Dana", 2), mark(ME, "Me", 1)],
            my_read_up_to: 0,
        });
        assert!(!t.apply_update(&u));
        assert!(!t.finish_catch_up());
        assert!(!t.can_write());
        assert_eq!(t.group().unwrap().member_count, 3);
        assert_eq!(t.seen_by(row(&t, "a")), ["Dana"]);
        assert_eq!(t.synced_up_to(), 2);
    }

    #[test]
    fn the_outbox_sends_in_order_one_at_a_time() {
        let mut t = Timeline::new(ME, &direct_page(vec![]));
        assert_eq!(sendable(&t), None);
        t.write(draft("a", "first"), at(1), false);
        t.write(draft("b", "second"), at(1), false);
        assert_eq!(sendable(&t), Some(("a".into(), "first".into())));
        assert_eq!(sendable(&t), Some(("a".into(), "first".into())), "until its answer");
        t.on_send_result("a", SendResult::Stored(Box::new(direct(1, ME, "a"))));
        assert_eq!(sendable(&t), Some(("b".into(), "second".into())));
        t.on_send_result("b", SendResult::Failed("slow down".into()));
        assert_eq!(row(&t, "b").status, Status::Failed("slow down".into()));
        assert_eq!(sendable(&t), None, "a failed message waits for Retry");
        // Retry: the same row, the same client_id, back in the outbox.
        t.write(draft("b", "second"), at(2), false);
        assert_eq!(t.rows().len(), 2);
        assert_eq!(sendable(&t), Some(("b".into(), "second".into())));
        t.on_send_result("b", SendResult::Stored(Box::new(direct(2, ME, "b"))));
        assert_eq!(sendable(&t), None);
        // Writing a stored client_id again changes nothing.
        t.write(draft("b", "second"), at(3), false);
        assert_eq!(row(&t, "b").status, Status::Stored);
    }

    #[test]
    fn a_failure_after_the_live_event_stored_it_is_not_a_failure() {
        let mut t = Timeline::new(ME, &direct_page(vec![]));
        t.write(draft("a", "hi"), at(1), false);
        t.apply_event(&LiveEvent::NewMessage(direct(1, ME, "a")));
        t.on_send_result("a", SendResult::Failed("timeout".into()));
        assert_eq!(row(&t, "a").status, Status::Stored);
        t.on_send_result("a", SendResult::Offline);
        assert_eq!(row(&t, "a").status, Status::Stored);
    }

    #[test]
    fn offline_then_flush_keeps_the_order() {
        let mut t = Timeline::new(ME, &direct_page(vec![]));
        t.write(draft("a", "one"), at(1), false);
        t.write(draft("b", "two"), at(1), false);
        // The first send finds no network: both wait.
        t.on_send_result("a", SendResult::Offline);
        assert_eq!(sendable(&t), None);
        assert!(t.rows().iter().all(|r| r.status == Status::Waiting));
        // Written while offline: waits too, behind them.
        t.write(draft("c", "three"), at(2), true);
        assert_eq!(row(&t, "c").status, Status::Waiting);
        // Back online: out in the order written.
        assert!(t.flush_waiting());
        let mut sent = Vec::new();
        for id in 1.. {
            let Some((client_id, _)) = sendable(&t) else { break };
            sent.push(client_id.clone());
            t.on_send_result(&client_id, SendResult::Stored(Box::new(direct(id, ME, &client_id))));
        }
        assert_eq!(sent, ["a", "b", "c"]);
        assert_eq!(ids(&t), [Some(1), Some(2), Some(3)]);
        assert!(!t.flush_waiting(), "nothing left");
        // A failed row is not sent by a flush.
        t.write(draft("d", "four"), at(3), false);
        t.on_send_result("d", SendResult::Failed("no".into()));
        assert!(!t.flush_waiting());
        // park_sending on its own parks only what was sending.
        t.write(draft("e", "five"), at(3), false);
        t.park_sending();
        assert_eq!(row(&t, "e").status, Status::Waiting);
        assert_eq!(row(&t, "d").status, Status::Failed("no".into()));
    }

    #[test]
    fn catching_up_pages_until_done_and_ignores_live_rows_for_the_cursor() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a")]));
        // A live event newer than the gap: shown, but the cursor stays where the server confirmed.
        t.apply_event(&LiveEvent::NewMessage(direct(9, PEER, "i")));
        assert_eq!(t.synced_up_to(), 1);
        assert!(t.start_catch_up());
        assert!(t.apply_update(&update(vec![direct(2, PEER, "b"), direct(3, ME, "c")], true)), "more to fetch");
        assert_eq!(t.synced_up_to(), 3);
        assert!(!t.apply_update(&update(vec![direct(4, PEER, "d"), direct(9, PEER, "i")], false)));
        assert_eq!(t.synced_up_to(), 9);
        assert_eq!(ids(&t), [Some(1), Some(2), Some(3), Some(4), Some(9)]);
        // has_more with no messages would loop forever: it ends.
        assert!(!t.apply_update(&update(vec![], true)));
        assert_eq!(t.synced_up_to(), 9, "an empty answer keeps the cursor");
        assert!(!t.finish_catch_up());
    }

    #[test]
    fn a_catch_up_brings_the_peers_receipt() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, ME, "a")]));
        t.write(draft("b", "pending"), at(1), false);
        let mut u = update(vec![direct(2, PEER, "x")], false);
        u.peer_read_up_to = Some(3);
        u.peer_read_at = Some(at(2));
        t.start_catch_up();
        t.apply_update(&u);
        assert_eq!(row(&t, "a").read_at, Some(at(2)));
        // The pending row stored later, as id 3: covered by the receipt remembered from the catch-up.
        t.on_send_result("b", SendResult::Stored(Box::new(direct(3, ME, "b"))));
        assert_eq!(row(&t, "b").read_at, Some(at(2)));
    }

    #[test]
    fn a_resync_during_a_catch_up_runs_it_once_more() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a")]));
        assert!(t.start_catch_up(), "the first resync runs it");
        assert!(!t.start_catch_up(), "a second one while it runs does not start another");
        assert!(!t.start_catch_up(), "nor a third");
        t.apply_update(&update(vec![direct(2, PEER, "b")], false));
        assert!(t.finish_catch_up(), "runs once more, from the new cursor");
        assert_eq!(t.synced_up_to(), 2);
        t.apply_update(&update(vec![direct(3, PEER, "c")], false));
        assert!(!t.finish_catch_up(), "then it is over");
        assert!(t.start_catch_up(), "and the next resync starts a new one");
        assert!(!t.finish_catch_up());
    }

    #[test]
    fn entries_have_day_separators_runs_and_keys() {
        let today = at(0).date_naive();
        let mut yesterday = in_group(1, 3, "y");
        yesterday.created_at = at(0) - chrono::Duration::days(1);
        let messages = vec![
            yesterday,
            in_group(2, 3, "a"),
            in_group(3, 3, "b"),
            system_line(4, 3),
            in_group(5, 3, "c"),
            in_group(6, 4, "d"),
            in_group(7, ME, "e"),
            in_group(8, ME, "f"),
        ];
        let mut page = group_page(messages, vec![mark(3, "Dana", 8)]);
        // All read: no "New messages" divider here (see the divider's own tests).
        page.group.as_mut().unwrap().my_read_up_to = 8;
        let t = Timeline::new(ME, &page);
        let entries = t.entries(false, today);
        let shape: Vec<String> = entries
            .iter()
            .map(|(_, e)| match e {
                Entry::Day(label) => label.clone(),
                Entry::Unread => "unread".to_owned(),
                Entry::Message(m) => format!("{}{}", m.row.client_id, if m.starts_run { "*" } else { "" }),
            })
            .collect();
        // "*" starts a run: a new day, a new sender, or after a system line.
        assert_eq!(shape, ["Yesterday", "y*", "Today", "a*", "b", "sys4*", "c*", "d*", "e*", "f"]);
        let Entry::Message(mine) = &entries[9].1 else { panic!("a message") };
        assert!(mine.mine);
        assert_eq!(mine.seen_by, ["Dana"]);
        // Keys are unique, and change when what is drawn changes.
        let keys: std::collections::HashSet<&String> = entries.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), entries.len());
        let mut t2 = t.clone();
        t2.note_group_read(4, "Erin", 8);
        let after = t2.entries(false, today);
        assert_ne!(entries[9].0, after[9].0, "a new reader redraws the row");
        assert_eq!(entries[7].0, after[7].0, "Erin wrote 6: she is not among those who saw it");
        assert_eq!(entries[0].0, after[0].0, "day separators stay");
        assert!(Timeline::new(ME, &direct_page(vec![])).entries(false, today).is_empty());
    }

    #[test]
    fn typers_ignore_me_and_others_conversations_and_expire_by_generation() {
        let mut typers = Typers::new(ME, ConversationRef::Group(ROOM));
        assert_eq!(typers.label(), None);
        assert_eq!(typers.typing(ME, "Me"), None, "never myself");
        let dana = typers.typing(3, "Dana").unwrap();
        assert_eq!(typers.label().as_deref(), Some("Dana is typing…"));
        let erin = typers.typing(4, "Erin").unwrap();
        assert_eq!(typers.label().as_deref(), Some("Dana and Erin are typing…"));
        typers.typing(5, "Finn");
        assert_eq!(typers.label().as_deref(), Some("Several people are typing…"));
        assert!(typers.stopped(5), "Finn's message landed");
        assert!(!typers.stopped(5));
        // Dana types again: the timer of her first whisper does not end the new one.
        let dana_again = typers.typing(3, "Dana").unwrap();
        assert!(dana_again > dana);
        assert!(!typers.expire(3, dana));
        assert_eq!(typers.label().as_deref(), Some("Dana and Erin are typing…"), "in the order they started");
        assert!(typers.expire(4, erin));
        assert!(typers.expire(3, dana_again));
        assert_eq!(typers.label(), None);

        let mut direct = Typers::new(ME, ConversationRef::Direct(PEER));
        assert_eq!(direct.typing(7, "Stranger"), None, "only the peer, in a one-to-one chat");
        assert_eq!(direct.typing(ME, "Me"), None);
        assert!(direct.typing(PEER, "Bob").is_some());
        assert_eq!(direct.label().as_deref(), Some("Bob is typing…"));
    }

    #[test]
    fn typing_labels() {
        assert_eq!(typing_label(&[]), None);
        assert_eq!(typing_label(&["Dana"]).as_deref(), Some("Dana is typing…"));
        assert_eq!(typing_label(&["Dana", "Erin"]).as_deref(), Some("Dana and Erin are typing…"));
        assert_eq!(typing_label(&["Dana", "Erin", "Finn"]).as_deref(), Some("Several people are typing…"));
        assert_eq!(typing_label(&["a", "b", "c", "d"]).as_deref(), Some("Several people are typing…"));
    }

    fn reaction(emoji: &str, user_ids: &[i64]) -> Reaction {
        Reaction { emoji: emoji.into(), user_ids: user_ids.to_vec(), names: vec![] }
    }

    #[test]
    fn a_late_copy_read_before_an_edit_or_a_deletion_does_not_undo_it() {
        let original = ChatMessage { read_at: Some(at(0)), ..direct(1, PEER, "as sent") };
        let mut t = Timeline::new(ME, &direct_page(vec![original.clone()]));
        let edited = ChatMessage { body: "as edited".into(), edited_at: Some(at(3)), change: 3, ..original.clone() };
        assert_eq!(t.apply_event(&LiveEvent::MessageUpdated(edited.clone())), Applied::Changed);
        // A catch-up read before the edit answers after it.
        assert!(!t.merge(original.clone()));
        assert_eq!(t.rows()[0].body, "as edited");
        // An edit later still replaces it.
        let again = ChatMessage { body: "edited again".into(), edited_at: Some(at(4)), change: 4, ..original.clone() };
        assert!(!t.merge(again));
        assert_eq!(t.rows()[0].body, "edited again");
        // A deletion stays, whatever copy comes after it.
        t.tombstone(1, 5);
        assert!(!t.merge(edited));
        assert!(t.rows()[0].deleted);
    }

    #[test]
    fn a_late_copy_or_answer_does_not_undo_a_newer_edit_reaction_or_deletion() {
        let original = ChatMessage { read_at: Some(at(0)), ..direct(1, PEER, "as sent") };
        let reply = ChatMessage { reply_to: Some(ReplyQuote::of(&original)), ..direct(2, ME, "b") };
        let mut t = Timeline::new(ME, &direct_page(vec![original.clone(), reply]));
        let first = ChatMessage { body: "first edit".into(), edited_at: Some(at(3)), change: 3, ..original.clone() };
        let second = ChatMessage { body: "second edit".into(), edited_at: Some(at(4)), change: 4, ..original.clone() };
        assert_eq!(t.apply_event(&LiveEvent::MessageUpdated(second.clone())), Applied::Changed);
        // A catch-up's changed list read between the two edits answers after the second.
        t.apply_update(&ConversationUpdate { changed: vec![first.clone()], ..update(vec![], false) });
        assert_eq!(t.rows()[0].body, "second edit");
        assert_eq!(t.rows()[1].reply_to.as_ref().unwrap().excerpt, "second edit", "the quote stays");
        assert_eq!(t.rows()[0].read_at, Some(at(0)), "the read time stays");
        // The first edit's own live event, delivered late, changes nothing either.
        assert_eq!(t.apply_event(&LiveEvent::MessageUpdated(first)), Applied::Ignored);
        assert_eq!(t.rows()[0].body, "second edit");
        // Reactions are numbered too: the newest reactions stay, whichever answer comes last.
        let reacted = |change: i64, reactions: Vec<Reaction>| ReactionsChanged {
            message_id: 1,
            sender_id: PEER,
            recipient_id: ME,
            room_id: None,
            reactions,
            change,
        };
        let both = vec![reaction("👍", &[ME, PEER])];
        assert_eq!(t.apply_event(&LiveEvent::ReactionsChanged(reacted(6, both.clone()))), Applied::Changed);
        // My own 👍's answer (the message at change 5) comes after PEER's 👍 (change 6) came live,
        // and so does the live event of mine.
        let mine = vec![reaction("👍", &[ME])];
        assert!(!t.replace(ChatMessage { reactions: mine.clone(), change: 5, ..second.clone() }));
        assert_eq!(t.apply_event(&LiveEvent::ReactionsChanged(reacted(5, mine))), Applied::Ignored);
        // So does a catch-up copy read after the second edit, before either reaction.
        t.apply_update(&ConversationUpdate { changed: vec![second.clone()], ..update(vec![], false) });
        assert_eq!(t.rows()[0].reactions, both);
        // A copy as new as the row is taken (it shows at least that change).
        let copy = ChatMessage { reactions: both.clone(), change: 6, ..second.clone() };
        assert_eq!(t.apply_event(&LiveEvent::MessageUpdated(copy)), Applied::Changed);
        // Deleted: a copy from before the deletion leaves the tombstone.
        t.tombstone(1, 7);
        t.apply_update(&ConversationUpdate { changed: vec![second], ..update(vec![], false) });
        assert!(t.rows()[0].deleted);
        assert!(t.rows()[0].body.is_empty());
    }

    #[test]
    fn edits_deletions_and_reactions_change_rows_in_place_and_quotes_follow() {
        // Read already: no "New messages" divider shifts the entries.
        let original =
            ChatMessage { body: "lunch at noon?\nor 1".into(), read_at: Some(at(0)), ..direct(1, PEER, "a") };
        let reply = ChatMessage { reply_to: Some(ReplyQuote::of(&original)), ..direct(2, ME, "b") };
        let mut t = Timeline::new(ME, &direct_page(vec![original.clone(), reply]));
        assert_eq!(t.rows()[1].reply_to.as_ref().unwrap().excerpt, "lunch at noon?");
        let keys = |t: &Timeline| -> Vec<String> {
            t.entries(false, at(0).date_naive()).into_iter().map(|(key, _)| key).collect()
        };
        let before = keys(&t);

        let edited = ChatMessage { body: "lunch at 1?".into(), edited_at: Some(at(3)), change: 1, ..original.clone() };
        assert_eq!(t.apply_event(&LiveEvent::MessageUpdated(edited)), Applied::Changed);
        assert_eq!(t.rows()[0].body, "lunch at 1?");
        assert_eq!(t.rows()[1].reply_to.as_ref().unwrap().excerpt, "lunch at 1?", "the quote follows");
        let after_edit = keys(&t);
        assert_ne!(before[1], after_edit[1], "the edited row is drawn again");

        let reacted = ReactionsChanged {
            message_id: 1,
            sender_id: PEER,
            recipient_id: ME,
            room_id: None,
            reactions: vec![reaction("👍", &[ME])],
            change: 2,
        };
        assert_eq!(t.apply_event(&LiveEvent::ReactionsChanged(reacted)), Applied::Changed);
        assert_eq!(t.rows()[0].reactions[0].count(), 1);
        assert_ne!(after_edit[1], keys(&t)[1]);

        let deleted = MessageDeleted { id: 1, sender_id: PEER, recipient_id: ME, room_id: None, change: 3 };
        assert_eq!(t.apply_event(&LiveEvent::MessageDeleted(deleted.clone())), Applied::Changed);
        assert!(t.rows()[0].deleted && t.rows()[0].body.is_empty() && t.rows()[0].reactions.is_empty());
        let quote = t.rows()[1].reply_to.clone().unwrap();
        assert!(quote.deleted && quote.excerpt.is_empty(), "a reply to a deleted message shows the tombstone");
        // The same event again (another tab's copy, a catch-up after it) has nothing to draw.
        let after_deletion = keys(&t);
        assert_eq!(t.apply_event(&LiveEvent::MessageDeleted(deleted)), Applied::Ignored);
        assert_eq!(keys(&t), after_deletion);

        // Changes to messages this tab does not hold are not added out of place.
        let elsewhere = MessageDeleted { id: 99, sender_id: PEER, recipient_id: ME, room_id: None, change: 4 };
        assert_eq!(t.apply_event(&LiveEvent::MessageDeleted(elsewhere)), Applied::Ignored);
        let old = ChatMessage { body: "older, edited".into(), ..direct(-5, PEER, "z") };
        assert_eq!(t.apply_event(&LiveEvent::MessageUpdated(old)), Applied::Ignored);
        assert_eq!(t.rows().len(), 2);
    }

    #[test]
    fn a_catch_up_applies_changes_and_advances_the_change_cursor() {
        let mut page = direct_page(vec![direct(1, PEER, "a"), direct(2, ME, "b")]);
        page.changes_up_to = 7;
        let mut t = Timeline::new(ME, &page);
        assert_eq!(t.changes_up_to(), 7);
        let mut u = update(vec![direct(3, PEER, "c")], false);
        u.changed = vec![
            ChatMessage { body: "a, edited".into(), edited_at: Some(at(2)), change: 8, ..direct(1, PEER, "a") },
            ChatMessage { body: String::new(), deleted: true, change: 11, ..direct(2, ME, "b") },
        ];
        u.changes_up_to = 12;
        u.more_changes = true;
        assert!(t.apply_update(&u), "more changes: ask again");
        assert_eq!((t.synced_up_to(), t.changes_up_to()), (3, 12));
        assert_eq!(t.rows()[0].body, "a, edited");
        assert!(t.rows()[1].deleted);
        assert_eq!(t.rows().len(), 3);

        // A late answer never moves the cursor back.
        let mut stale = update(vec![], false);
        stale.changes_up_to = 9;
        assert!(!t.apply_update(&stale));
        assert_eq!(t.changes_up_to(), 12);
    }

    #[test]
    fn a_reply_keeps_its_quote_through_the_outbox() {
        let mut t = Timeline::new(ME, &direct_page(vec![direct(1, PEER, "a")]));
        let quote = t.quote_of(1).unwrap();
        assert_eq!(quote.sender_name, format!("user{PEER}"));
        let draft =
            Draft { client_id: "r".into(), body: "yes".into(), reply_to: Some(quote.clone()), attachments: Vec::new() };
        t.write(draft, at(1), true);
        assert_eq!(t.rows()[1].reply_to.as_ref(), Some(&quote), "shown at once, quoted");
        assert!(t.flush_waiting());
        assert_eq!(t.next_to_send().unwrap().reply_to.map(|q| q.id), Some(1), "sent as a reply");
        assert_eq!(t.quote_of(42), None);
    }
}
