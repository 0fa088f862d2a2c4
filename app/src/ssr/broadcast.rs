//! Announcing stored changes to browsers: one [`Broadcaster`] trait, implemented by the server
//! crate for the embedded Pusher server (in process) and for any external Pusher HTTP API.
//!
//! Publishing never fails the caller: the database is the truth and clients catch up after a gap,
//! so an implementation logs what it could not deliver and moves on.

use pusher_protocol::{ChannelName, SocketId};

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
}

/// A broadcaster that delivers nothing, for tests of the services alone.
#[derive(Debug, Default)]
pub struct Silent;

impl Broadcaster for Silent {
    fn publish(&self, _: Publication) {}
}
