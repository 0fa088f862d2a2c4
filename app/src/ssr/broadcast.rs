//! Announcing stored changes to browsers: one [`Broadcaster`] trait, implemented by the server
//! crate for the embedded Pusher server (in process) and for any external Pusher HTTP API.
//!
//! Publishing never fails the caller: the database is the truth and clients catch up after a gap,
//! so an implementation logs what it could not deliver and moves on.

use std::sync::Arc;

use pusher_protocol::encryption::MasterKey;
use pusher_protocol::{ChannelName, SocketId};

use crate::realtime::EventChannels;

/// One event for one or more channels, as the Pusher HTTP API's `POST /events` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub channels: Vec<ChannelName>,
    pub event: &'static str,
    /// The JSON text every subscriber receives as `data`.
    pub data: String,
    /// The connection that caused the event, which already knows (the sending tab).
    pub exclude: Option<SocketId>,
}

pub trait Broadcaster: Send + Sync + 'static {
    /// Hands the event over for delivery, in order with earlier publications; returns at once.
    fn publish(&self, publication: Publication);

    /// A session ended (sign-out): the live connections it authorized must stop receiving.
    /// `session` is the session's stored id ([`crate::ssr::sessions::SessionToken::id`]). The
    /// embedded server closes them; an external server is not told (its connections stay until
    /// the browser, sent to the sign-in page, closes them).
    fn session_ended(&self, _session: &str) {}

    /// `user_id` may no longer follow `channels` (removed from a group): every connection of theirs
    /// subscribed to one of them is unsubscribed now, not at its next reconnect. The embedded server
    /// does it; an external one is not told (the user channel's `GroupChanged` tells the browser,
    /// and the next subscription is refused).
    fn unsubscribe_user(&self, _user_id: i64, _channels: &[ChannelName]) {}

    /// The user and room channels events go to: encrypted ones when this broadcaster encrypts.
    fn event_channels(&self) -> EventChannels {
        EventChannels::Private
    }
}

/// End-to-end encryption in front of any broadcaster: the data of every event for a
/// `private-encrypted-…` channel is sealed with that channel's shared secret and a fresh nonce
/// (one publication per channel, since each has its own key, as the official SDKs require), so the
/// Pusher server, embedded or external, relays only ciphertext.
pub struct Encrypting {
    inner: Arc<dyn Broadcaster>,
    key: MasterKey,
}

impl Encrypting {
    pub fn new(inner: Arc<dyn Broadcaster>, key: MasterKey) -> Self {
        Self { inner, key }
    }
}

impl Broadcaster for Encrypting {
    fn publish(&self, publication: Publication) {
        let Publication { channels, event, data, exclude } = publication;
        let (encrypted, plain): (Vec<ChannelName>, Vec<ChannelName>) =
            channels.into_iter().partition(|c| c.kind().is_encrypted());
        for channel in encrypted {
            let sealed = self.key.shared_secret(&channel).encrypt(rand::random(), &data);
            self.inner.publish(Publication { channels: vec![channel], event, data: sealed, exclude: exclude.clone() });
        }
        if !plain.is_empty() {
            self.inner.publish(Publication { channels: plain, event, data, exclude });
        }
    }

    fn session_ended(&self, session: &str) {
        self.inner.session_ended(session);
    }

    fn unsubscribe_user(&self, user_id: i64, channels: &[ChannelName]) {
        self.inner.unsubscribe_user(user_id, channels);
    }

    fn event_channels(&self) -> EventChannels {
        EventChannels::Encrypted
    }
}

/// A broadcaster that delivers nothing, for tests of the services alone.
#[derive(Debug, Default)]
pub struct Silent;

impl Broadcaster for Silent {
    fn publish(&self, _: Publication) {}
}

/// A broadcaster that keeps what it is given, for tests of what gets published.
#[cfg(test)]
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Publication>>);

#[cfg(test)]
impl Broadcaster for Recorder {
    fn publish(&self, publication: Publication) {
        self.0.lock().unwrap().push(publication);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_channels_get_sealed_data_one_channel_each() {
        let recorder = Arc::new(Recorder::default());
        let key = MasterKey::from_bytes([3; 32]);
        let encrypting = Encrypting::new(recorder.clone(), key.clone());
        assert_eq!(encrypting.event_channels(), EventChannels::Encrypted);
        let channels = ["private-encrypted-user.2", "private-encrypted-user.1", "presence-room.4"]
            .map(|c| ChannelName::parse(c).unwrap())
            .to_vec();
        let body = r#"{"body":"secret plans"}"#;
        let exclude = Some(SocketId::parse("1.2").unwrap());
        encrypting.publish(Publication {
            channels,
            event: "NewChatMessage",
            data: body.into(),
            exclude: exclude.clone(),
        });

        let sent = recorder.0.lock().unwrap();
        assert_eq!(sent.len(), 3);
        let mut nonces = Vec::new();
        for p in &sent[..2] {
            assert_eq!(p.channels.len(), 1);
            assert_eq!(p.exclude, exclude);
            assert!(!p.data.contains("secret plans"));
            let payload: serde_json::Value = serde_json::from_str(&p.data).unwrap();
            nonces.push(payload["nonce"].clone());
            assert_eq!(key.shared_secret(&p.channels[0]).decrypt(&p.data).unwrap(), body);
        }
        assert_ne!(nonces[0], nonces[1], "a fresh nonce per event");
        // Another channel's key does not open it.
        assert!(key.shared_secret(&sent[1].channels[0]).decrypt(&sent[0].data).is_err());
        // Channels that are not encrypted get the data as it was.
        assert_eq!(sent[2].channels[0].as_str(), "presence-room.4");
        assert_eq!(sent[2].data, body);
    }
}
