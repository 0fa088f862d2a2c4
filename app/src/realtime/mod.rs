//! What both sides know about real time: channel names, event names and payloads, and the public
//! connection settings the browser receives. The WASM Pusher client lives in [`client`] (hydrate only).

#[cfg(feature = "hydrate")]
pub mod client;
pub mod machine;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::ChatMessage;

/// Everyone signed in joins this presence channel; its member list is who is online.
pub const PRESENCE_ONLINE: &str = "presence-online";

/// A message was stored: sent to the recipient's and the sender's user channels. Data: [`ChatMessage`].
pub const EVENT_NEW_MESSAGE: &str = "NewChatMessage";
/// Messages were read: sent to the sender's user channel. Data: [`MessagesRead`].
pub const EVENT_MESSAGES_READ: &str = "MessagesRead";
/// A whisper between the two people of a conversation, on their `private-chat` channel.
pub const EVENT_TYPING: &str = "client-typing";

/// The private channel of one user: their new messages and read receipts, in every tab.
pub fn user_channel(user_id: i64) -> String {
    format!("private-user.{user_id}")
}

/// The private channel two people share for typing whispers; the same for both of them.
pub fn chat_channel(a: i64, b: i64) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("private-chat.{lo}.{hi}")
}

/// A channel name as the auth endpoint sees it: who may subscribe to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAccess {
    /// `private-user.{id}`: only that user.
    User(i64),
    /// `private-chat.{lo}.{hi}` with lo < hi: only those two.
    Chat(i64, i64),
    /// `presence-online`: anyone signed in.
    Online,
}

impl ChannelAccess {
    /// The one place that reads our channel names. `None` for any name we never hand out
    /// (including non-canonical spellings like `private-chat.2.1` or `private-user.01`).
    pub fn parse(name: &str) -> Option<Self> {
        if name == PRESENCE_ONLINE {
            return Some(Self::Online);
        }
        if let Some(id) = name.strip_prefix("private-user.") {
            return canonical_id(id).map(Self::User);
        }
        let (lo, hi) = name.strip_prefix("private-chat.")?.split_once('.')?;
        let (lo, hi) = (canonical_id(lo)?, canonical_id(hi)?);
        (lo < hi).then_some(Self::Chat(lo, hi))
    }

    /// Whether `user_id` may subscribe.
    pub fn allows(self, user_id: i64) -> bool {
        match self {
            Self::User(id) => id == user_id,
            Self::Chat(lo, hi) => user_id == lo || user_id == hi,
            Self::Online => true,
        }
    }
}

/// A positive id written exactly as `i64::to_string` writes it.
fn canonical_id(text: &str) -> Option<i64> {
    let id: i64 = text.parse().ok()?;
    (id > 0 && id.to_string() == text).then_some(id)
}

/// The `MessagesRead` payload: `reader_id` read every message `peer_id` sent them up to `up_to_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesRead {
    pub reader_id: i64,
    pub peer_id: i64,
    pub up_to_id: i64,
    pub read_at: DateTime<Utc>,
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
}

impl LiveEvent {
    /// Decodes an event by name; `None` for events this version does not know or cannot read.
    pub fn decode(event: &str, data: &str) -> Option<Self> {
        match event {
            EVENT_NEW_MESSAGE => serde_json::from_str(data).ok().map(Self::NewMessage),
            EVENT_MESSAGES_READ => serde_json::from_str(data).ok().map(Self::MessagesRead),
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
    fn channel_names_are_canonical() {
        assert_eq!(user_channel(7), "private-user.7");
        assert_eq!(chat_channel(9, 2), "private-chat.2.9");
        assert_eq!(chat_channel(2, 9), "private-chat.2.9");
        assert_eq!(ChannelAccess::parse("private-user.7"), Some(ChannelAccess::User(7)));
        assert_eq!(ChannelAccess::parse("private-chat.2.9"), Some(ChannelAccess::Chat(2, 9)));
        assert_eq!(ChannelAccess::parse("presence-online"), Some(ChannelAccess::Online));
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
            "presence-online2",
            "public",
        ] {
            assert_eq!(ChannelAccess::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn access_rules() {
        assert!(ChannelAccess::User(7).allows(7));
        assert!(!ChannelAccess::User(7).allows(8));
        assert!(ChannelAccess::Chat(2, 9).allows(2) && ChannelAccess::Chat(2, 9).allows(9));
        assert!(!ChannelAccess::Chat(2, 9).allows(3));
        assert!(ChannelAccess::Online.allows(123));
    }

    #[test]
    fn websocket_urls() {
        let mut config = RealtimeConfig { key: "k".into(), host: None, port: None, tls: false, cluster: None };
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
