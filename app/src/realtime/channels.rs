//! Every channel Banter uses, and who may subscribe to it: the one place that reads and writes our
//! channel names and states the rules side by side.
//!
//! | channel                  | who may subscribe                | carries                                      |
//! |--------------------------|----------------------------------|----------------------------------------------|
//! | `private-user.{id}`      | user `id` only                   | that user's messages, read receipts, group changes |
//! | `private-chat.{lo}.{hi}` | users `lo` and `hi` only         | `client-typing` whispers of a one-to-one chat |
//! | `private-room.{id}`      | current members of group `id`    | the group's messages, read marks and changes |
//! | `presence-room.{id}`     | current members of group `id`    | who of the group is online; `client-typing`  |
//!
//! With end-to-end encryption on ([`EventChannels::Encrypted`]), the user and room channels are
//! `private-encrypted-user.{id}` and `private-encrypted-room.{id}` instead, with the same rules:
//! every event the server publishes is then encrypted. Typing whispers and presence stay on their
//! private and presence channels, since Pusher allows no client events on encrypted ones.
//!
//! Who is online is not a presence channel (Pusher caps those at 100 members): a person is online
//! while their user channel is occupied, and their circle hears of it on their own user channels
//! (`ssr::online`).
//!
//! The layers around this module only do their own part: `pusher-protocol` checks that a name is a
//! valid Pusher channel name (and signs), `ssr::realtime::RealtimeSettings::authorize` signs what
//! this module allows, and the server's `/broadcasting/auth` handler reads the form and the session.
//! Group membership is read from the database at every subscription, so a removed member's next
//! subscription fails; the removal also ends their current ones (`Broadcaster::unsubscribe`).

/// Where the server's own events go: the user and room channels, encrypted end to end or not.
/// The server decides (its master key) and tells the browser in [`super::RealtimeConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventChannels {
    /// `private-user.{id}`, `private-room.{id}`.
    #[default]
    Private,
    /// `private-encrypted-user.{id}`, `private-encrypted-room.{id}`.
    Encrypted,
}

impl EventChannels {
    fn prefix(self) -> &'static str {
        match self {
            Self::Private => "private-",
            Self::Encrypted => "private-encrypted-",
        }
    }

    /// The channel of one user: their messages, read receipts and group changes, in every tab.
    pub fn user(self, user_id: i64) -> String {
        format!("{}user.{user_id}", self.prefix())
    }

    /// A group's channel: its messages, read marks, membership and rename events.
    pub fn room(self, room_id: i64) -> String {
        format!("{}room.{room_id}", self.prefix())
    }
}

/// The private channel two people share for typing whispers; the same for both of them.
pub fn chat_channel(a: i64, b: i64) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("private-chat.{lo}.{hi}")
}

/// A group's presence channel: who of the group is online, and its typing whispers.
pub fn room_presence_channel(room_id: i64) -> String {
    format!("presence-room.{room_id}")
}

/// A channel name as the auth endpoint sees it: who may subscribe to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAccess {
    /// `private-user.{id}` or `private-encrypted-user.{id}`: only that user.
    User(i64),
    /// `private-chat.{lo}.{hi}` with lo < hi: only those two.
    Chat(i64, i64),
    /// `private-room.{id}` or `private-encrypted-room.{id}`: the group's current members.
    Room(i64),
    /// `presence-room.{id}`: the group's current members.
    RoomPresence(i64),
}

/// What deciding a subscription needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Decided by the user id alone.
    Decided(bool),
    /// Only if the user is a current member of this group (a database question).
    MemberOf(i64),
}

impl ChannelAccess {
    /// The one place that reads our channel names. `None` for any name we never hand out
    /// (including non-canonical spellings like `private-chat.2.1` or `private-user.01`).
    pub fn parse(name: &str) -> Option<Self> {
        let events = name.strip_prefix("private-encrypted-").or_else(|| name.strip_prefix("private-"));
        if let Some(id) = events.and_then(|rest| rest.strip_prefix("user.")) {
            return canonical_id(id).map(Self::User);
        }
        if let Some(id) = events.and_then(|rest| rest.strip_prefix("room.")) {
            return canonical_id(id).map(Self::Room);
        }
        if let Some(id) = name.strip_prefix("presence-room.") {
            return canonical_id(id).map(Self::RoomPresence);
        }
        let (lo, hi) = name.strip_prefix("private-chat.")?.split_once('.')?;
        let (lo, hi) = (canonical_id(lo)?, canonical_id(hi)?);
        (lo < hi).then_some(Self::Chat(lo, hi))
    }

    /// Who may subscribe: the rules of every channel kind, side by side.
    pub fn rule(self, user_id: i64) -> Rule {
        match self {
            Self::User(id) => Rule::Decided(id == user_id),
            Self::Chat(lo, hi) => Rule::Decided(user_id == lo || user_id == hi),
            Self::Room(room) | Self::RoomPresence(room) => Rule::MemberOf(room),
        }
    }

    /// Whether the server publishes its events here (so the name must match its [`EventChannels`]).
    pub fn carries_events(self) -> bool {
        matches!(self, Self::User(_) | Self::Room(_))
    }

    /// Presence channels sign the member (id and name) into the subscription.
    pub fn is_presence(self) -> bool {
        matches!(self, Self::RoomPresence(_))
    }
}

/// A positive id written exactly as `i64::to_string` writes it.
fn canonical_id(text: &str) -> Option<i64> {
    let id: i64 = text.parse().ok()?;
    (id > 0 && id.to_string() == text).then_some(id)
}

/// Whether `user_id` may subscribe to `access` now (group membership is read from the database).
#[cfg(feature = "ssr")]
pub async fn may_subscribe(
    db: &sea_orm::DatabaseConnection,
    user_id: i64,
    access: ChannelAccess,
) -> Result<bool, crate::error::AppError> {
    match access.rule(user_id) {
        Rule::Decided(allowed) => Ok(allowed),
        Rule::MemberOf(room) => crate::ssr::groups::is_member(db, user_id, room).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_canonical() {
        assert_eq!(EventChannels::Private.user(7), "private-user.7");
        assert_eq!(EventChannels::Encrypted.user(7), "private-encrypted-user.7");
        assert_eq!(EventChannels::Encrypted.room(4), "private-encrypted-room.4");
        assert_eq!(ChannelAccess::parse("private-encrypted-user.7"), Some(ChannelAccess::User(7)));
        assert_eq!(ChannelAccess::parse("private-encrypted-room.4"), Some(ChannelAccess::Room(4)));
        assert_eq!(chat_channel(9, 2), "private-chat.2.9");
        assert_eq!(chat_channel(2, 9), "private-chat.2.9");
        assert_eq!(EventChannels::Private.room(4), "private-room.4");
        assert_eq!(room_presence_channel(4), "presence-room.4");
        assert_eq!(ChannelAccess::parse("private-user.7"), Some(ChannelAccess::User(7)));
        assert_eq!(ChannelAccess::parse("private-chat.2.9"), Some(ChannelAccess::Chat(2, 9)));
        assert_eq!(ChannelAccess::parse("private-room.4"), Some(ChannelAccess::Room(4)));
        assert_eq!(ChannelAccess::parse("presence-room.4"), Some(ChannelAccess::RoomPresence(4)));
        for bad in [
            "private-user.07",
            "private-user.-1",
            "private-user.0",
            "private-user.",
            "private-chat.9.2",
            "private-chat.2.2",
            "private-chat.2",
            "private-chat.2.9.1",
            "private-users.7",
            // Online status is no presence channel any more: it would cap at 100 members.
            "presence-online",
            "presence-online2",
            "private-room.04",
            "private-room.1.2",
            "presence-room.",
            "private-encrypted-room.01",
            "private-encrypted-chat.1.2",
            "private-encrypted-online",
            "presence-encrypted-room.1",
            "public",
        ] {
            assert_eq!(ChannelAccess::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn access_rules() {
        assert_eq!(ChannelAccess::User(7).rule(7), Rule::Decided(true));
        assert_eq!(ChannelAccess::User(7).rule(8), Rule::Decided(false));
        assert_eq!(ChannelAccess::Chat(2, 9).rule(2), Rule::Decided(true));
        assert_eq!(ChannelAccess::Chat(2, 9).rule(9), Rule::Decided(true));
        assert_eq!(ChannelAccess::Chat(2, 9).rule(3), Rule::Decided(false));
        assert_eq!(ChannelAccess::Room(4).rule(123), Rule::MemberOf(4));
        assert_eq!(ChannelAccess::RoomPresence(4).rule(1), Rule::MemberOf(4));
        assert!(ChannelAccess::RoomPresence(4).is_presence());
        assert!(!ChannelAccess::Room(4).is_presence());
    }
}
