//! Every way the protocol can fail, mapped here and only here to its code, HTTP status and client action.

use crate::frames::SubscriptionError;

/// What a client does after the server closed its connection with a given code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectPolicy {
    /// 4000–4099: the same request will be refused again; stay disconnected and report.
    Never,
    /// 4100–4199, and anything not in the Pusher ranges: retry, waiting longer after each failure.
    Backoff,
    /// 4200–4299: the server asked us to come straight back (restart, idle or pong timeout).
    Immediately,
}

/// The reconnect rule for any close code a client may see, including the 1000-range WebSocket codes.
///
/// Pusher only defines 4000–4299 as close codes. Everything else (1000 normal closure, 1006 abnormal,
/// the 4300 error range if a server ever closes with it) backs off: a code we cannot classify must
/// neither stop the client for good nor make it hammer the server.
pub fn reconnect_policy(code: u16) -> ReconnectPolicy {
    match code {
        4000..=4099 => ReconnectPolicy::Never,
        4200..=4299 => ReconnectPolicy::Immediately,
        _ => ReconnectPolicy::Backoff,
    }
}

/// Errors of the WebSocket protocol layer.
///
/// Variants with a 4000–4299 code end the connection (send them as the close frame's code and reason);
/// the 4300-range ones are reported with a `pusher:error` frame (or `pusher:subscription_error` for a
/// failed subscription) and the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    // 4000–4099: connection refused; reconnecting with the same parameters will fail again.
    #[error("Application only accepts TLS connections")]
    TlsOnly,
    #[error("Application does not exist")]
    UnknownApp,
    #[error("Application disabled")]
    AppDisabled,
    #[error("Application is over connection quota")]
    OverConnectionQuota,
    #[error("Path not found")]
    PathNotFound,
    #[error("Invalid version string format")]
    InvalidVersion,
    #[error("Unsupported protocol version {0}")]
    UnsupportedProtocolVersion(u32),
    #[error("No protocol version supplied")]
    NoProtocolVersion,
    #[error("Connection is unauthorized")]
    Unauthorized,

    // 4100–4199: reconnect after a back-off.
    #[error("Over capacity")]
    OverCapacity,
    /// A WebSocket message over the server's size limit; the stream cannot be read past it.
    #[error("Message is over the {max}-byte limit")]
    MessageTooLarge { max: usize },
    /// This address already holds as many connections as the server allows.
    #[error("Too many connections from this address (at most {max})")]
    TooManyConnections { max: usize },

    // 4200–4299: reconnect immediately.
    #[error("Server is going away, reconnect")]
    GoingAway,
    #[error("Pong reply not received in time")]
    PongTimeout,
    #[error("Closed after inactivity")]
    InactivityTimeout,

    // 4300–4399: the request failed, the connection stays open.
    #[error("Client event rejected due to rate limit")]
    ClientEventRateLimited,
    /// Any frame (subscribe, unsubscribe, ping, ...) past the connection's frame rate.
    #[error("Too many frames: at most {per_second} per second")]
    FrameRateLimited { per_second: u32 },
    /// Not JSON, not an object, or a field of the wrong shape. Carries serde's description.
    #[error("Malformed frame: {0}")]
    MalformedFrame(String),
    /// A `pusher:` / `pusher_internal:` event this implementation does not speak (e.g. `pusher:signin`).
    #[error("Unsupported event {0}")]
    UnsupportedEvent(String),
    #[error("Invalid event name: {reason}")]
    InvalidEventName { reason: &'static str },
    #[error("Invalid channel name: {reason}")]
    InvalidChannelName { reason: &'static str },
    #[error("Invalid socket_id")]
    InvalidSocketId,
    #[error("Private and presence channels require an auth signature")]
    MissingAuth,
    #[error("Auth must have the form key:signature")]
    MalformedAuth,
    #[error("Auth was signed for another app key")]
    AuthKeyMismatch,
    #[error("Invalid signature")]
    InvalidSignature,
    #[error("Presence channels require channel_data")]
    MissingChannelData,
    #[error("Invalid channel_data: {0}")]
    InvalidChannelData(String),
    #[error("Event data is {size} bytes; at most {max} are allowed")]
    DataTooLarge { size: usize, max: usize },
    #[error("Client events are only allowed on private and presence channels, not on public or encrypted ones")]
    ClientEventNotAllowed,
    #[error("Presence channel is full ({max} members)")]
    PresenceChannelFull { max: u32 },
    #[error("Public channels are not enabled on this server")]
    PublicChannelsDisabled,
    #[error("A connection may subscribe to at most {max} channels")]
    TooManyChannels { max: usize },
}

/// Code for errors Pusher documents only as "any other type of error" (4300–4399).
const OTHER_ERROR: u16 = 4300;

impl ProtocolError {
    /// The Pusher close/error code: the close frame's code, or `code` in `pusher:error`.
    pub fn code(&self) -> u16 {
        match self {
            Self::TlsOnly => 4000,
            Self::UnknownApp => 4001,
            Self::AppDisabled => 4003,
            Self::OverConnectionQuota => 4004,
            Self::PathNotFound => 4005,
            Self::InvalidVersion => 4006,
            Self::UnsupportedProtocolVersion(_) => 4007,
            Self::NoProtocolVersion => 4008,
            Self::Unauthorized => 4009,
            Self::OverCapacity | Self::MessageTooLarge { .. } | Self::TooManyConnections { .. } => 4100,
            Self::GoingAway => 4200,
            Self::PongTimeout => 4201,
            Self::InactivityTimeout => 4202,
            Self::ClientEventRateLimited | Self::FrameRateLimited { .. } => 4301,
            Self::MalformedFrame(_)
            | Self::UnsupportedEvent(_)
            | Self::InvalidEventName { .. }
            | Self::InvalidChannelName { .. }
            | Self::InvalidSocketId
            | Self::MissingAuth
            | Self::MalformedAuth
            | Self::AuthKeyMismatch
            | Self::InvalidSignature
            | Self::MissingChannelData
            | Self::InvalidChannelData(_)
            | Self::DataTooLarge { .. }
            | Self::ClientEventNotAllowed
            | Self::PresenceChannelFull { .. }
            | Self::PublicChannelsDisabled
            | Self::TooManyChannels { .. } => OTHER_ERROR,
        }
    }

    /// Whether the server must close the connection (with [`code`](Self::code) and this error's text)
    /// rather than answer with an error frame.
    pub fn closes_connection(&self) -> bool {
        (4000..4300).contains(&self.code())
    }

    /// What a client receiving this error's code on close should do.
    pub fn reconnect_policy(&self) -> ReconnectPolicy {
        reconnect_policy(self.code())
    }

    /// The payload of `pusher:subscription_error` for a subscription refused with this error.
    ///
    /// pusher-js hands `{type, error, status}` to `pusher:subscription_error` listeners; for its own
    /// auth-endpoint failures it uses type `AuthError` with the HTTP status, so signature problems look
    /// the same here. Everything else is a `PusherError` with 400.
    pub fn subscription_error(&self) -> SubscriptionError {
        let (error_type, status) = match self {
            Self::MissingAuth
            | Self::MalformedAuth
            | Self::AuthKeyMismatch
            | Self::InvalidSignature
            | Self::MissingChannelData
            | Self::InvalidSocketId => ("AuthError", 401),
            Self::PresenceChannelFull { .. } | Self::PublicChannelsDisabled | Self::TooManyChannels { .. } => {
                ("PusherError", 403)
            }
            _ => ("PusherError", 400),
        };
        SubscriptionError::new(error_type, self.to_string(), status)
    }
}

/// Errors authenticating a request to the HTTP API (`POST /apps/{id}/events` and friends).
///
/// Each check has its own variant so a publisher can tell a skewed clock from a wrong secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    #[error("Missing query parameter {0}")]
    MissingParam(&'static str),
    /// The same key twice would let the checked value and the signed value differ.
    #[error("Query parameter {0} appears more than once")]
    DuplicateParam(String),
    #[error("Unknown auth_key")]
    UnknownKey,
    #[error("Unsupported auth_version; only 1.0 is supported")]
    UnsupportedAuthVersion,
    #[error("auth_timestamp is not an integer")]
    InvalidTimestamp,
    #[error("auth_timestamp is {skew_secs} s away from the server clock; at most {max_secs} s is allowed")]
    StaleTimestamp { skew_secs: u64, max_secs: u64 },
    #[error("body_md5 does not match the request body")]
    BodyMd5Mismatch,
    #[error("Invalid auth_signature")]
    InvalidSignature,
}

impl ApiAuthError {
    /// The HTTP status to answer with. Pusher answers every authentication failure with 401.
    pub fn http_status(&self) -> u16 {
        401
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_policy_follows_the_pusher_ranges() {
        for code in [4000, 4001, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4099] {
            assert_eq!(reconnect_policy(code), ReconnectPolicy::Never, "{code}");
        }
        for code in [4100, 4150, 4199] {
            assert_eq!(reconnect_policy(code), ReconnectPolicy::Backoff, "{code}");
        }
        for code in [4200, 4201, 4202, 4299] {
            assert_eq!(reconnect_policy(code), ReconnectPolicy::Immediately, "{code}");
        }
    }

    #[test]
    fn websocket_and_unknown_codes_back_off() {
        for code in [0, 1000, 1001, 1002, 1006, 1011, 3999, 4300, 4301, 4999, u16::MAX] {
            assert_eq!(reconnect_policy(code), ReconnectPolicy::Backoff, "{code}");
        }
    }

    #[test]
    fn documented_codes() {
        let cases = [
            (ProtocolError::TlsOnly, 4000),
            (ProtocolError::UnknownApp, 4001),
            (ProtocolError::AppDisabled, 4003),
            (ProtocolError::OverConnectionQuota, 4004),
            (ProtocolError::PathNotFound, 4005),
            (ProtocolError::InvalidVersion, 4006),
            (ProtocolError::UnsupportedProtocolVersion(5), 4007),
            (ProtocolError::NoProtocolVersion, 4008),
            (ProtocolError::Unauthorized, 4009),
            (ProtocolError::OverCapacity, 4100),
            (ProtocolError::GoingAway, 4200),
            (ProtocolError::PongTimeout, 4201),
            (ProtocolError::InactivityTimeout, 4202),
            (ProtocolError::ClientEventRateLimited, 4301),
            (ProtocolError::InvalidSignature, 4300),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn only_4000_to_4299_close_the_connection() {
        assert!(ProtocolError::UnknownApp.closes_connection());
        assert!(ProtocolError::OverCapacity.closes_connection());
        assert!(ProtocolError::PongTimeout.closes_connection());
        assert!(!ProtocolError::ClientEventRateLimited.closes_connection());
        assert!(!ProtocolError::MalformedFrame("x".into()).closes_connection());
        assert_eq!(ProtocolError::AppDisabled.reconnect_policy(), ReconnectPolicy::Never);
        assert_eq!(ProtocolError::OverCapacity.reconnect_policy(), ReconnectPolicy::Backoff);
        assert_eq!(ProtocolError::InactivityTimeout.reconnect_policy(), ReconnectPolicy::Immediately);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        // A close frame's reason is limited to 123 bytes (RFC 6455 §5.5: 125 minus the 2-byte code).
        let closing = [
            ProtocolError::TlsOnly,
            ProtocolError::UnknownApp,
            ProtocolError::AppDisabled,
            ProtocolError::OverConnectionQuota,
            ProtocolError::PathNotFound,
            ProtocolError::InvalidVersion,
            ProtocolError::UnsupportedProtocolVersion(u32::MAX),
            ProtocolError::NoProtocolVersion,
            ProtocolError::Unauthorized,
            ProtocolError::OverCapacity,
            ProtocolError::GoingAway,
            ProtocolError::PongTimeout,
            ProtocolError::InactivityTimeout,
        ];
        for error in closing {
            assert!(error.closes_connection(), "{error}");
            assert!(error.to_string().len() <= 123, "{error}");
        }
    }

    #[test]
    fn auth_failures_look_like_pusher_js_auth_errors() {
        let e = ProtocolError::InvalidSignature.subscription_error();
        assert_eq!((e.error_type.as_str(), e.error.as_str(), e.status), ("AuthError", "Invalid signature", 401));
        let e = ProtocolError::MalformedFrame("x".into()).subscription_error();
        assert_eq!((e.error_type.as_str(), e.status), ("PusherError", 400));
    }

    #[test]
    fn api_auth_errors_are_401() {
        assert_eq!(ApiAuthError::InvalidSignature.http_status(), 401);
        assert_eq!(ApiAuthError::StaleTimestamp { skew_secs: 601, max_secs: 600 }.http_status(), 401);
    }
}
