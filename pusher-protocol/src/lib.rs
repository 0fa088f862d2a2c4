//! The Pusher Channels protocol, version 7: frames, channel names, signatures and error codes, with no transport.
//!
//! The embedded server (axum) and the WASM client both speak through these types: the transport only
//! moves text frames, everything that decides what a frame means lives here. Nothing in this crate does
//! I/O or reads a clock; callers pass `now` in where time matters.
//!
//! Map of the crate:
//! - [`frames`]: [`Frame`], every event we send or accept, with `parse` and `to_json`.
//! - [`channels`]: [`ChannelName`] and [`ChannelKind`].
//! - [`encryption`]: end-to-end encrypted channels (shared secrets, secretbox payloads).
//! - [`signing`]: [`SocketId`], channel authorization signatures and HTTP API request signing.
//! - [`error`]: [`ProtocolError`] with its close/error codes, [`ApiAuthError`], [`ReconnectPolicy`].
//! - [`connection`]: the protocol version check made before the first frame.
//! - [`limits`]: the protocol's numeric limits.
//! - [`webhooks`]: the webhooks a server sends the app, and their signature.
#![forbid(unsafe_code)]
// Every input is untrusted peer data: library code must report errors, never abort.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod channels;
pub mod connection;
pub mod encryption;
pub mod error;
pub mod frames;
pub mod limits;
pub mod signing;
pub mod webhooks;

pub use channels::{ChannelKind, ChannelName};
pub use error::{ApiAuthError, ProtocolError, ReconnectPolicy, reconnect_policy};
pub use frames::{ClientEvent, Event, Frame, PresenceMember, Subscribe, SubscriptionError};
pub use signing::{ChannelAuthorization, Credentials, SocketId};
