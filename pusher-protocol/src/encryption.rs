//! End-to-end encrypted channels (`private-encrypted-…`), exactly as Pusher defines them, so the
//! official SDKs interoperate:
//!
//! - the app server holds a 32-byte master key; a channel's shared secret is
//!   `SHA-256(channel name ‖ master key)`, as the official server SDKs derive it (pusher-http-node's
//!   `generateSharedSecret`);
//! - the auth endpoint hands the shared secret (base64) to a subscriber it authorizes, next to the
//!   usual `auth` signature; nobody else ever sees it;
//! - an event's `data` on the wire is `{"nonce":"…","ciphertext":"…"}` (both base64): NaCl
//!   `secretbox` (XSalsa20-Poly1305, the 16-byte tag first) of the JSON data text, with a fresh
//!   random 24-byte nonce per event.
//!
//! The Pusher server in between relays the ciphertext untouched. Nothing here draws random numbers:
//! the publisher passes the nonce in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::channels::ChannelName;

/// Bytes in a master key and in a shared secret.
pub const KEY_BYTES: usize = 32;
/// Bytes in a secretbox nonce.
pub const NONCE_BYTES: usize = 24;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not valid base64")]
    NotBase64,
    #[error("must be {KEY_BYTES} bytes once base64-decoded, not {0}")]
    WrongLength(usize),
}

/// Why an encrypted event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the data is not an encrypted payload (nonce and ciphertext)")]
    NotEncrypted,
    #[error("the nonce is not {NONCE_BYTES} bytes of base64")]
    BadNonce,
    /// A wrong (e.g. rotated) key, or data altered on the way.
    #[error("the ciphertext does not open with this channel's key")]
    WrongKey,
    #[error("the decrypted data is not UTF-8 text")]
    NotText,
}

fn key_from_base64(text: &str) -> Result<[u8; KEY_BYTES], KeyError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::NotBase64)?;
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| KeyError::WrongLength(bytes.len()))
}

/// The app's encryption master key (`PUSHER_ENCRYPTION_MASTER_KEY_BASE64`). `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_BYTES]);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        key_from_base64(text).map(Self)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The shared secret of `channel`: `SHA-256(channel name ‖ master key)`.
    pub fn shared_secret(&self, channel: &ChannelName) -> SharedSecret {
        let mut hash = Sha256::new();
        hash.update(channel.as_str().as_bytes());
        hash.update(self.0);
        SharedSecret(hash.finalize().into())
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// One encrypted channel's key, shared by the app server and that channel's subscribers.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret([u8; KEY_BYTES]);

/// An encrypted event's `data`, as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    nonce: String,
    ciphertext: String,
}

impl SharedSecret {
    /// Reads `shared_secret` from an auth endpoint's answer.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        key_from_base64(text).map(Self)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn cipher(&self) -> XSalsa20Poly1305 {
        XSalsa20Poly1305::new(Key::from_slice(&self.0))
    }

    /// The `data` to publish for the JSON text `plaintext`: `{"nonce":"…","ciphertext":"…"}`.
    /// `nonce` must be fresh random bytes for every event.
    pub fn encrypt(&self, nonce: [u8; NONCE_BYTES], plaintext: &str) -> String {
        // Sealing a byte slice in memory cannot fail (the aead API's error is for in-place buffers
        // that cannot grow); an empty ciphertext would only fail to open on the other side.
        let ciphertext = self.cipher().encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes()).unwrap_or_default();
        let payload = Payload { nonce: STANDARD.encode(nonce), ciphertext: STANDARD.encode(ciphertext) };
        // A struct keeps its field order: nonce, then ciphertext, as the official SDKs write it.
        serde_json::to_string(&payload).unwrap_or_default()
    }

    /// The JSON text inside an encrypted event's `data`.
    pub fn decrypt(&self, data: &str) -> Result<String, DecryptError> {
        let payload: Payload = serde_json::from_str(data).map_err(|_| DecryptError::NotEncrypted)?;
        let nonce = STANDARD.decode(&payload.nonce).map_err(|_| DecryptError::BadNonce)?;
        if nonce.len() != NONCE_BYTES {
            return Err(DecryptError::BadNonce);
        }
        let ciphertext = STANDARD.decode(&payload.ciphertext).map_err(|_| DecryptError::NotEncrypted)?;
        let plaintext = self
            .cipher()
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map_err(|_| DecryptError::WrongKey)?;
        String::from_utf8(plaintext).map_err(|_| DecryptError::NotText)
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{Credentials, SocketId};

    /// Known answers from the official Node SDK (`pusher` 5.3.4, end2end/package.json), produced by
    /// this script run in end2end/ (tweetnacl's random nonce pinned to the bytes 1..=24):
    ///
    /// ```js
    /// const nacl = require('tweetnacl');
    /// nacl.randomBytes = (n) => Uint8Array.from({ length: n }, (_, i) => i + 1);
    /// const Pusher = require('pusher');
    /// const masterKey = Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
    /// const pusher = new Pusher({ appId: '1', key: 'key', secret: 'secret', encryptionMasterKeyBase64: masterKey });
    /// const channel = 'private-encrypted-user.42';
    /// console.log(pusher.channelSharedSecret(channel).toString('base64'));
    /// console.log(JSON.stringify(pusher.authorizeChannel('123.456', channel)));
    /// pusher.post = (opts) => { console.log(JSON.stringify(opts.body)); return Promise.resolve(); };
    /// pusher.trigger(channel, 'NewChatMessage', { id: 7, body: 'héllo 👋 "quoted"' });
    /// ```
    const KAT_MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KAT_CHANNEL: &str = "private-encrypted-user.42";
    const KAT_SHARED_SECRET: &str = "md2Zz4o6lfd3wwELm3GxZl+teS7fXaRkcGxupiscmLA=";
    const KAT_AUTH: &str = "key:84c7af451b5ac1dd1a57705dfc9909435414551a03212bdc65ecc3cbd2b35c27";
    const KAT_DATA: &str = r#"{"nonce":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY","ciphertext":"BwTYcILTkEKgSvRg5imymlUNO79BIPn60yOB2MydkDX7UbKmME/1tbk7Hceag5QV+8Sstg47a0o="}"#;
    const KAT_PLAINTEXT: &str = r#"{"id":7,"body":"héllo 👋 \"quoted\""}"#;

    fn kat_nonce() -> [u8; NONCE_BYTES] {
        std::array::from_fn(|i| i as u8 + 1)
    }

    #[test]
    fn shared_secret_and_auth_match_the_node_sdk() {
        let channel = ChannelName::parse(KAT_CHANNEL).unwrap();
        let secret = MasterKey::from_base64(KAT_MASTER_KEY).unwrap().shared_secret(&channel);
        assert_eq!(secret.to_base64(), KAT_SHARED_SECRET);
        let auth =
            Credentials::new("key", "secret").authorize_channel(&SocketId::parse("123.456").unwrap(), &channel, None);
        assert_eq!(auth.auth, KAT_AUTH, "encrypted channels are signed like private ones");
    }

    #[test]
    fn secretbox_matches_the_node_sdk_both_ways() {
        let secret = SharedSecret::from_base64(KAT_SHARED_SECRET).unwrap();
        assert_eq!(secret.encrypt(kat_nonce(), KAT_PLAINTEXT), KAT_DATA);
        assert_eq!(secret.decrypt(KAT_DATA).unwrap(), KAT_PLAINTEXT);
    }

    #[test]
    fn a_payload_opens_with_its_key_only() {
        let key = MasterKey::from_bytes([7; 32]);
        let channel = ChannelName::parse("private-encrypted-user.1").unwrap();
        let secret = key.shared_secret(&channel);
        let data = secret.encrypt([1; 24], r#"{"body":"hello"}"#);
        assert!(!data.contains("hello"));
        assert_eq!(secret.decrypt(&data).unwrap(), r#"{"body":"hello"}"#);
        let other = key.shared_secret(&ChannelName::parse("private-encrypted-user.2").unwrap());
        assert_eq!(other.decrypt(&data), Err(DecryptError::WrongKey));
        let rotated = MasterKey::from_bytes([8; 32]).shared_secret(&channel);
        assert_eq!(rotated.decrypt(&data), Err(DecryptError::WrongKey));
        assert_eq!(secret.decrypt(r#"{"id":1}"#), Err(DecryptError::NotEncrypted));
        assert_eq!(secret.decrypt(r#"{"nonce":"AAAA","ciphertext":""}"#), Err(DecryptError::BadNonce));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(MasterKey::from_base64("not base64!"), Err(KeyError::NotBase64));
        assert_eq!(MasterKey::from_base64("AAAA"), Err(KeyError::WrongLength(3)));
        let key = MasterKey::from_bytes([9; 32]);
        assert_eq!(MasterKey::from_base64(&key.to_base64()).unwrap(), key);
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }
}
