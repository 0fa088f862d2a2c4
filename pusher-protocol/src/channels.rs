//! Channel names: which names are valid, and what kind of channel (public, private, encrypted,
//! presence) a name denotes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ProtocolError;
use crate::limits::MAX_CHANNEL_NAME_LENGTH;

const PRIVATE_PREFIX: &str = "private-";
const PRESENCE_PREFIX: &str = "presence-";
const ENCRYPTED_PREFIX: &str = "private-encrypted-";

/// What a channel's name prefix promises its subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Any name without a reserved prefix: anyone may subscribe, no signature.
    Public,
    /// `private-…`: subscribing needs an auth signature from the app server.
    Private,
    /// `private-encrypted-…`: private, and every event's data is end-to-end encrypted
    /// ([`crate::encryption`]); the server relays ciphertext and allows no client events.
    PrivateEncrypted,
    /// `presence-…`: like private, plus signed `channel_data` naming the member.
    Presence,
}

impl ChannelKind {
    /// The kind a (syntactically valid) channel name denotes.
    pub fn of(name: &str) -> Self {
        if name.starts_with(ENCRYPTED_PREFIX) {
            Self::PrivateEncrypted
        } else if name.starts_with(PRIVATE_PREFIX) {
            Self::Private
        } else if name.starts_with(PRESENCE_PREFIX) {
            Self::Presence
        } else {
            Self::Public
        }
    }

    /// Whether `pusher:subscribe` must carry an `auth` signature.
    pub fn requires_auth(self) -> bool {
        !matches!(self, Self::Public)
    }

    /// Whether subscribers may send `client-*` events: only where every subscriber was authorized,
    /// and not on encrypted channels (a client event would travel in clear text; Pusher refuses them).
    pub fn allows_client_events(self) -> bool {
        matches!(self, Self::Private | Self::Presence)
    }

    /// Whether events on the channel carry `{"nonce", "ciphertext"}` instead of their data.
    pub fn is_encrypted(self) -> bool {
        self == Self::PrivateEncrypted
    }
}

/// A validated channel name: 1–200 characters from `[A-Za-z0-9_\-=@,.;]`.
///
/// Equality, ordering and hashing use the name alone, and it borrows as `str`, so a
/// `HashMap<ChannelName, _>` can be queried with a plain `&str`.
#[derive(Debug, Clone)]
pub struct ChannelName {
    name: String,
    kind: ChannelKind,
}

impl ChannelName {
    /// Validates `name` and copies it.
    pub fn parse(name: &str) -> Result<Self, ProtocolError> {
        let kind = validate(name)?;
        Ok(Self { name: name.to_owned(), kind })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }
}

/// The one place that decides what a channel name may be.
fn validate(name: &str) -> Result<ChannelKind, ProtocolError> {
    if name.is_empty() {
        return Err(ProtocolError::InvalidChannelName { reason: "empty" });
    }
    if name.len() > MAX_CHANNEL_NAME_LENGTH {
        return Err(ProtocolError::InvalidChannelName { reason: "longer than 200 characters" });
    }
    if !name.bytes().all(is_channel_name_byte) {
        return Err(ProtocolError::InvalidChannelName { reason: "only A-Z, a-z, 0-9 and _ - = @ , . ; are allowed" });
    }
    Ok(ChannelKind::of(name))
}

fn is_channel_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl PartialEq for ChannelName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ChannelName {}

impl PartialOrd for ChannelName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChannelName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

impl Hash for ChannelName {
    // Must hash exactly like `str` for the `Borrow<str>` lookups to work.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ProtocolError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let kind = validate(&name)?;
        Ok(Self { name, kind })
    }
}

impl TryFrom<&str> for ChannelName {
    type Error = ProtocolError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::parse(name)
    }
}

impl Serialize for ChannelName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::try_from(name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_prefix() {
        assert_eq!(ChannelName::parse("chat").unwrap().kind(), ChannelKind::Public);
        assert_eq!(ChannelName::parse("private-user.1").unwrap().kind(), ChannelKind::Private);
        assert_eq!(ChannelName::parse("presence-room-42").unwrap().kind(), ChannelKind::Presence);
        // The prefix must be a prefix, not a substring.
        assert_eq!(ChannelName::parse("not-private-x").unwrap().kind(), ChannelKind::Public);
    }

    #[test]
    fn encrypted_channels_are_private_without_client_events() {
        let kind = ChannelName::parse("private-encrypted-dm").unwrap().kind();
        assert_eq!(kind, ChannelKind::PrivateEncrypted);
        assert!(kind.requires_auth() && kind.is_encrypted() && !kind.allows_client_events());
        assert!(!ChannelKind::Private.is_encrypted());
    }

    #[test]
    fn every_allowed_character_is_accepted() {
        let name = "AZaz09_-=@,.;";
        assert_eq!(ChannelName::parse(name).unwrap().as_str(), name);
    }

    #[test]
    fn other_characters_are_rejected() {
        for name in ["a b", "a/b", "a#b", "é", "a\nb", "a:b", "a*b", "#server-to-user-1"] {
            assert!(matches!(ChannelName::parse(name), Err(ProtocolError::InvalidChannelName { .. })), "{name:?}");
        }
    }

    #[test]
    fn length_is_bounded() {
        assert!(matches!(ChannelName::parse(""), Err(ProtocolError::InvalidChannelName { reason: "empty" })));
        assert!(ChannelName::parse(&"a".repeat(200)).is_ok());
        assert!(matches!(ChannelName::parse(&"a".repeat(201)), Err(ProtocolError::InvalidChannelName { .. })));
    }

    #[test]
    fn auth_and_client_events_follow_the_kind() {
        assert!(!ChannelKind::Public.requires_auth());
        assert!(ChannelKind::Private.requires_auth());
        assert!(ChannelKind::Presence.requires_auth());
        assert!(!ChannelKind::Public.allows_client_events());
        assert!(ChannelKind::Private.allows_client_events());
        assert!(ChannelKind::Presence.allows_client_events());
    }

    #[test]
    fn map_lookup_by_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(ChannelName::parse("presence-room").unwrap(), 1);
        assert_eq!(map.get("presence-room"), Some(&1));
    }

    #[test]
    fn serde_validates() {
        let name: ChannelName = serde_json::from_str("\"private-a\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"private-a\"");
        assert!(serde_json::from_str::<ChannelName>("\"a b\"").is_err());
    }
}
