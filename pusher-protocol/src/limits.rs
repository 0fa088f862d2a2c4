//! The protocol's numeric limits, in one place so server checks and client expectations agree.

/// Largest `data` of an event, in bytes, for both HTTP-published and client events (Pusher's 10 KiB).
pub const MAX_EVENT_DATA_BYTES: usize = 10 * 1024;

/// Longest channel name, in characters (all allowed characters are ASCII, so also bytes).
pub const MAX_CHANNEL_NAME_LENGTH: usize = 200;

/// Longest event name, in bytes.
pub const MAX_EVENT_NAME_LENGTH: usize = 200;

/// Most members a presence channel holds; the next subscriber is refused.
pub const MAX_PRESENCE_MEMBERS: u32 = 100;

/// Client events one connection may send per second before they are rejected with 4301.
pub const CLIENT_EVENTS_PER_SECOND: u32 = 10;

/// Seconds of silence after which a peer sends `pusher:ping`; advertised in `pusher:connection_established`.
pub const DEFAULT_ACTIVITY_TIMEOUT_SECS: u32 = 120;

/// Seconds an HTTP API request's `auth_timestamp` may differ from the server clock, either way.
pub const AUTH_TIMESTAMP_TOLERANCE_SECS: u64 = 600;
