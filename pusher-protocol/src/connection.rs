//! What a new connection must present before any frame flows: the `protocol` query parameter.

use crate::error::ProtocolError;

/// The only protocol version spoken here; pusher-js sends `?protocol=7`.
pub const PROTOCOL_VERSION: u32 = 7;

/// Checks the `protocol` query parameter of the WebSocket URL (`/app/{key}?protocol=7&...`).
///
/// Each failure has its own close code so the client can tell "upgrade me" (4007) from
/// "I am broken" (4006, 4008); all three are in the do-not-reconnect range.
pub fn check_protocol_version(protocol: Option<&str>) -> Result<u32, ProtocolError> {
    let raw = protocol.ok_or(ProtocolError::NoProtocolVersion)?;
    let version: u32 = raw.parse().map_err(|_| ProtocolError::InvalidVersion)?;
    if version == PROTOCOL_VERSION { Ok(version) } else { Err(ProtocolError::UnsupportedProtocolVersion(version)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_protocol_7() {
        assert_eq!(check_protocol_version(Some("7")), Ok(7));
    }

    #[test]
    fn each_bad_version_has_its_own_code() {
        assert_eq!(check_protocol_version(None).map_err(|e| e.code()), Err(4008));
        assert_eq!(check_protocol_version(Some("seven")).map_err(|e| e.code()), Err(4006));
        assert_eq!(check_protocol_version(Some("-1")).map_err(|e| e.code()), Err(4006));
        assert_eq!(check_protocol_version(Some("5")).map_err(|e| e.code()), Err(4007));
    }
}
