//! Who may do what: socket ids, channel authorization signatures and HTTP API request signing.
//!
//! Channel auth is `key:hex(HMAC-SHA256(secret, ...))`; HTTP requests carry `auth_signature` over
//! `METHOD\nPATH\nQUERY`. Pure functions: the caller supplies `now`.

use std::collections::BTreeSet;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

use crate::channels::{ChannelKind, ChannelName};
use crate::error::{ApiAuthError, ProtocolError};
use crate::frames::{PresenceMember, Subscribe};
use crate::limits::AUTH_TIMESTAMP_TOLERANCE_SECS;

type HmacSha256 = Hmac<Sha256>;

/// The only HTTP API signature scheme Pusher defines.
const AUTH_VERSION: &str = "1.0";

/// Query parameters the signer owns; a caller-supplied value for one of them is dropped by
/// [`Credentials::sign_request`] so it cannot end up signed twice.
const RESERVED_PARAMS: [&str; 5] = ["auth_key", "auth_timestamp", "auth_version", "body_md5", "auth_signature"];

/// A connection's id, `<digits>.<digits>`, assigned by the server and signed into every channel authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(String);

impl SocketId {
    /// Validates a socket id received from a peer (`^\d+\.\d+$`).
    pub fn parse(id: &str) -> Result<Self, ProtocolError> {
        let (left, right) = id.split_once('.').ok_or(ProtocolError::InvalidSocketId)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if digits(left) && digits(right) { Ok(Self(id.to_owned())) } else { Err(ProtocolError::InvalidSocketId) }
    }

    /// Builds an id from two numbers, e.g. a server instance counter and a random value.
    pub fn from_parts(left: u64, right: u64) -> Self {
        Self(format!("{left}.{right}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SocketId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SocketId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Self::parse(&id).map_err(serde::de::Error::custom)
    }
}

/// The body an auth endpoint returns to pusher-js: `{"auth":"key:signature","channel_data":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAuthorization {
    pub auth: String,
    /// Presence channels only: the exact string that was signed, which the client must send back verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
    /// Encrypted channels only: the channel's shared secret, base64 (see [`crate::encryption`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<String>,
}

/// An app's key and secret. Deliberately not `Serialize`, and `Debug` hides the secret, so the secret
/// cannot leak into a response or a log line by accident.
#[derive(Clone)]
pub struct Credentials {
    key: String,
    secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("key", &self.key).field("secret", &"<redacted>").finish()
    }
}

impl Credentials {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { key: key.into(), secret: secret.into() }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// `hex(HMAC-SHA256(secret, message))`.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        sign_hex(&self.secret, message)
    }

    /// Whether `signature_hex` is [`Self::sign`] of `message`, compared in constant time.
    pub(crate) fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        verify_hex(&self.secret, message, signature_hex)
    }

    /// `hex(HMAC-SHA256(secret, "socket_id:channel"))`, or `"socket_id:channel:channel_data"` when
    /// `channel_data` is given (presence channels).
    pub fn channel_signature(&self, socket_id: &SocketId, channel: &ChannelName, channel_data: Option<&str>) -> String {
        sign_hex(&self.secret, &channel_auth_message(socket_id, channel, channel_data))
    }

    /// What the app's auth endpoint answers for a subscription it allows.
    pub fn authorize_channel(
        &self,
        socket_id: &SocketId,
        channel: &ChannelName,
        channel_data: Option<&str>,
    ) -> ChannelAuthorization {
        ChannelAuthorization {
            auth: format!("{}:{}", self.key, self.channel_signature(socket_id, channel, channel_data)),
            channel_data: channel_data.map(str::to_owned),
            shared_secret: None,
        }
    }

    /// Checks an `auth` string (`"key:signature"`) from `pusher:subscribe`; the signature is compared in
    /// constant time.
    pub fn verify_channel_auth(
        &self,
        socket_id: &SocketId,
        channel: &ChannelName,
        channel_data: Option<&str>,
        auth: &str,
    ) -> Result<(), ProtocolError> {
        let (key, signature) = auth.split_once(':').ok_or(ProtocolError::MalformedAuth)?;
        if key != self.key {
            return Err(ProtocolError::AuthKeyMismatch);
        }
        if verify_hex(&self.secret, &channel_auth_message(socket_id, channel, channel_data), signature) {
            Ok(())
        } else {
            Err(ProtocolError::InvalidSignature)
        }
    }

    /// Decides a `pusher:subscribe` from connection `socket_id`: public channels pass, private ones need a
    /// valid `auth`, presence ones a valid `auth` over `channel_data`. Returns the joining member for
    /// presence channels.
    ///
    /// The signature is checked before `channel_data` is parsed, so unauthenticated input never gets
    /// further than the HMAC.
    pub fn verify_subscription(
        &self,
        socket_id: &SocketId,
        subscribe: &Subscribe,
    ) -> Result<Option<PresenceMember>, ProtocolError> {
        let channel = &subscribe.channel;
        match channel.kind() {
            ChannelKind::Public => Ok(None),
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                let auth = subscribe.auth.as_deref().ok_or(ProtocolError::MissingAuth)?;
                // Private signatures never cover channel_data, even if a client sends some.
                self.verify_channel_auth(socket_id, channel, None, auth)?;
                Ok(None)
            }
            ChannelKind::Presence => {
                let auth = subscribe.auth.as_deref().ok_or(ProtocolError::MissingAuth)?;
                let channel_data = subscribe.channel_data.as_deref().ok_or(ProtocolError::MissingChannelData)?;
                self.verify_channel_auth(socket_id, channel, Some(channel_data), auth)?;
                PresenceMember::from_channel_data(channel_data).map(Some)
            }
        }
    }

    /// Signs an HTTP API request for a publisher. Returns the full query: `params` (minus any auth
    /// parameters they contained), `auth_key`, `auth_timestamp`, `auth_version`, `body_md5` when `body`
    /// is non-empty, and `auth_signature` last. Values are raw; URL-encode them when building the URL.
    pub fn sign_request<K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: &str,
        path: &str,
        params: &[(K, V)],
        body: &[u8],
        timestamp: i64,
    ) -> Vec<(String, String)> {
        let mut query: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| !RESERVED_PARAMS.contains(&k.as_ref().to_lowercase().as_str()))
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        query.push(("auth_key".into(), self.key.clone()));
        query.push(("auth_timestamp".into(), timestamp.to_string()));
        query.push(("auth_version".into(), AUTH_VERSION.into()));
        if !body.is_empty() {
            query.push(("body_md5".into(), body_md5(body)));
        }
        let signature = sign_hex(&self.secret, string_to_sign(method, path, &query).as_bytes());
        query.push(("auth_signature".into(), signature));
        query
    }

    /// Authenticates an HTTP API request on the server. `params` are the decoded query parameters,
    /// `body` the raw body bytes, `now` the server's Unix time in seconds.
    ///
    /// Checks, in order: no duplicate keys, `auth_key`, `auth_version` = 1.0, `auth_timestamp` within
    /// 600 s of `now`, `body_md5` (required when there is a body), then `auth_signature` in constant time.
    pub fn verify_request<K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: &str,
        path: &str,
        params: &[(K, V)],
        body: &[u8],
        now: i64,
    ) -> Result<(), ApiAuthError> {
        let mut seen = BTreeSet::new();
        for (key, _) in params {
            let key = key.as_ref().to_lowercase();
            if !seen.insert(key.clone()) {
                return Err(ApiAuthError::DuplicateParam(key));
            }
        }
        let param = |name: &'static str| {
            params
                .iter()
                .find(|(k, _)| k.as_ref().to_lowercase() == name)
                .map(|(_, v)| v.as_ref())
                .ok_or(ApiAuthError::MissingParam(name))
        };

        if param("auth_key")? != self.key {
            return Err(ApiAuthError::UnknownKey);
        }
        if param("auth_version")? != AUTH_VERSION {
            return Err(ApiAuthError::UnsupportedAuthVersion);
        }
        let timestamp: i64 = param("auth_timestamp")?.parse().map_err(|_| ApiAuthError::InvalidTimestamp)?;
        let skew_secs = now.abs_diff(timestamp);
        if skew_secs > AUTH_TIMESTAMP_TOLERANCE_SECS {
            return Err(ApiAuthError::StaleTimestamp { skew_secs, max_secs: AUTH_TIMESTAMP_TOLERANCE_SECS });
        }
        match param("body_md5") {
            // An empty body needs no body_md5, but one that is sent is signed and must still be right.
            Ok(md5) if !md5.eq_ignore_ascii_case(&body_md5(body)) => return Err(ApiAuthError::BodyMd5Mismatch),
            Err(missing) if !body.is_empty() => return Err(missing),
            _ => {}
        }
        let signature = param("auth_signature")?;
        if verify_hex(&self.secret, string_to_sign(method, path, params).as_bytes(), signature) {
            Ok(())
        } else {
            Err(ApiAuthError::InvalidSignature)
        }
    }
}

/// The HTTP API's string to sign: `METHOD\nPATH\nQUERY`, where QUERY is every parameter except
/// `auth_signature`, keys lower-cased, sorted by key and joined `k=v` with `&`, without URL-escaping.
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(method: &str, path: &str, params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref().to_lowercase(), v.as_ref()))
        .filter(|(k, _)| k != "auth_signature")
        .collect();
    // Sorting by value too keeps the output deterministic if a signer sends a key twice.
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}\n{}\n{}", method.to_uppercase(), path, query.join("&"))
}

/// Lower-case hex MD5 of a request body, the `body_md5` parameter.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

fn channel_auth_message(socket_id: &SocketId, channel: &ChannelName, channel_data: Option<&str>) -> Vec<u8> {
    let mut message = format!("{socket_id}:{channel}");
    if let Some(data) = channel_data {
        message.push(':');
        message.push_str(data);
    }
    message.into_bytes()
}

fn keyed_mac(secret: &str, message: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this is always Some; the Result only exists because the
    // trait also covers fixed-key MACs. Callers still treat None as "does not verify" (fail closed).
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(message);
    Some(mac)
}

fn sign_hex(secret: &str, message: &[u8]) -> String {
    keyed_mac(secret, message).map(|mac| hex::encode(mac.finalize().into_bytes())).unwrap_or_default()
}

/// Constant-time check of a hex signature: decode, then let the MAC compare bytes.
fn verify_hex(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    keyed_mac(secret, message).is_some_and(|mac| mac.verify_slice(&signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published vectors from Pusher's "Authentication and authorization signatures" and HTTP API docs.
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    fn creds() -> Credentials {
        Credentials::new(KEY, SECRET)
    }

    fn socket() -> SocketId {
        SocketId::parse("1234.1234").unwrap()
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    #[test]
    fn socket_id_validation() {
        for ok in ["1234.1234", "0.0", "123456789012345678901234567890.1"] {
            assert_eq!(SocketId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", ".", "1.", ".1", "1", "1.2.3", "a.1", "1.b", " 1.1", "1.1 ", "-1.1", "+1.1", "１.１"] {
            assert_eq!(SocketId::parse(bad), Err(ProtocolError::InvalidSocketId), "{bad:?}");
        }
        assert_eq!(SocketId::from_parts(123, 456).as_str(), "123.456");
    }

    #[test]
    fn private_channel_vector() {
        let auth = creds().authorize_channel(&socket(), &channel("private-foobar"), None);
        assert_eq!(auth.auth, "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
        assert_eq!(auth.channel_data, None);
        assert_eq!(
            serde_json::to_string(&auth).unwrap(),
            r#"{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}"#
        );
    }

    #[test]
    fn presence_channel_vector() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let sig = creds().channel_signature(&socket(), &channel("presence-foobar"), Some(data));
        assert_eq!(sig, "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
    }

    #[test]
    fn channel_auth_verifies_and_rejects() {
        let c = creds();
        let ch = channel("private-foobar");
        let good = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        assert_eq!(c.verify_channel_auth(&socket(), &ch, None, good), Ok(()));
        let other_socket = SocketId::parse("1234.1235").unwrap();
        assert_eq!(c.verify_channel_auth(&other_socket, &ch, None, good), Err(ProtocolError::InvalidSignature));
        let other_channel = channel("private-foobaz");
        assert_eq!(c.verify_channel_auth(&socket(), &other_channel, None, good), Err(ProtocolError::InvalidSignature));
        let wrong_key = good.replacen("278d", "378d", 1);
        assert_eq!(c.verify_channel_auth(&socket(), &ch, None, &wrong_key), Err(ProtocolError::AuthKeyMismatch));
        assert_eq!(c.verify_channel_auth(&socket(), &ch, None, "no-colon"), Err(ProtocolError::MalformedAuth));
        for bad_sig in ["", "zz", "58df", &format!("{}00", &good[21..])] {
            let auth = format!("{KEY}:{bad_sig}");
            assert_eq!(c.verify_channel_auth(&socket(), &ch, None, &auth), Err(ProtocolError::InvalidSignature));
        }
    }

    #[test]
    fn subscription_rules_per_channel_kind() {
        let c = creds();
        let public = Subscribe::new(channel("lobby"), None, None);
        assert_eq!(c.verify_subscription(&socket(), &public), Ok(None));

        let private_unsigned = Subscribe::new(channel("private-foobar"), None, None);
        assert_eq!(c.verify_subscription(&socket(), &private_unsigned), Err(ProtocolError::MissingAuth));
        let auth = c.authorize_channel(&socket(), &channel("private-foobar"), None);
        let private = Subscribe::new(channel("private-foobar"), Some(auth.auth), None);
        assert_eq!(c.verify_subscription(&socket(), &private), Ok(None));

        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let auth = c.authorize_channel(&socket(), &channel("presence-foobar"), Some(data));
        let no_data = Subscribe::new(channel("presence-foobar"), Some(auth.auth.clone()), None);
        assert_eq!(c.verify_subscription(&socket(), &no_data), Err(ProtocolError::MissingChannelData));
        let forged = Subscribe::new(
            channel("presence-foobar"),
            Some(auth.auth.clone()),
            Some(r#"{"user_id":11,"user_info":{"name":"Mr. Channels"}}"#.into()),
        );
        assert_eq!(c.verify_subscription(&socket(), &forged), Err(ProtocolError::InvalidSignature));
        let presence = Subscribe::new(channel("presence-foobar"), Some(auth.auth), auth.channel_data);
        let member = c.verify_subscription(&socket(), &presence).unwrap().unwrap();
        assert_eq!(member.user_id, "10");
        assert_eq!(member.user_info, Some(serde_json::json!({"name": "Mr. Channels"})));
    }

    // The worked example of Pusher's HTTP API reference ("Worked authentication example").
    const EXAMPLE_BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const EXAMPLE_TIMESTAMP: i64 = 1353088179;

    #[test]
    fn http_api_published_example() {
        let no_params: [(&str, &str); 0] = [];
        let query =
            creds().sign_request("POST", "/apps/3/events", &no_params, EXAMPLE_BODY.as_bytes(), EXAMPLE_TIMESTAMP);
        let expected = [
            ("auth_key", "278d425bdf160c739803"),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
            ("auth_signature", "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(query, expected);
        assert_eq!(
            string_to_sign("post", "/apps/3/events", &query),
            "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
        );
        assert_eq!(
            creds().verify_request("POST", "/apps/3/events", &query, EXAMPLE_BODY.as_bytes(), EXAMPLE_TIMESTAMP + 5),
            Ok(())
        );
    }

    #[test]
    fn string_to_sign_lowercases_sorts_and_does_not_escape() {
        let params = [("Name", "Something else"), ("auth_key", "foo"), ("auth_signature", "ignored")];
        assert_eq!(string_to_sign("get", "/x", &params), "GET\n/x\nauth_key=foo&name=Something else");
    }

    fn signed_get(now: i64) -> Vec<(String, String)> {
        creds().sign_request(
            "GET",
            "/apps/3/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            b"",
            now,
        )
    }

    #[test]
    fn get_without_body_has_no_body_md5() {
        let query = signed_get(1_700_000_000);
        assert!(!query.iter().any(|(k, _)| k == "body_md5"));
        assert_eq!(creds().verify_request("GET", "/apps/3/channels", &query, b"", 1_700_000_000), Ok(()));
        // Order and key case of the query do not matter.
        let mut shuffled: Vec<(String, String)> = query.into_iter().rev().collect();
        shuffled[0].0 = shuffled[0].0.to_uppercase();
        assert_eq!(creds().verify_request("GET", "/apps/3/channels", &shuffled, b"", 1_700_000_000), Ok(()));
    }

    #[test]
    fn signer_replaces_caller_supplied_auth_params() {
        let query = creds().sign_request("GET", "/p", &[("auth_key", "evil"), ("AUTH_SIGNATURE", "x")], b"", 1);
        assert_eq!(query.iter().filter(|(k, _)| k.to_lowercase() == "auth_key").count(), 1);
        assert_eq!(creds().verify_request("GET", "/p", &query, b"", 1), Ok(()));
    }

    fn signed_post() -> Vec<(String, String)> {
        let no_params: [(&str, &str); 0] = [];
        creds().sign_request("POST", "/apps/3/events", &no_params, EXAMPLE_BODY.as_bytes(), EXAMPLE_TIMESTAMP)
    }

    fn verify_post(query: &[(String, String)], body: &str, now: i64) -> Result<(), ApiAuthError> {
        creds().verify_request("POST", "/apps/3/events", query, body.as_bytes(), now)
    }

    #[test]
    fn tampered_body_is_rejected() {
        let tampered = EXAMPLE_BODY.replace("foo", "bar");
        assert_eq!(verify_post(&signed_post(), &tampered, EXAMPLE_TIMESTAMP), Err(ApiAuthError::BodyMd5Mismatch));
        let without_md5: Vec<_> = signed_post().into_iter().filter(|(k, _)| k != "body_md5").collect();
        assert_eq!(
            verify_post(&without_md5, EXAMPLE_BODY, EXAMPLE_TIMESTAMP),
            Err(ApiAuthError::MissingParam("body_md5"))
        );
    }

    #[test]
    fn stale_timestamp_is_rejected_both_ways() {
        assert_eq!(verify_post(&signed_post(), EXAMPLE_BODY, EXAMPLE_TIMESTAMP + 600), Ok(()));
        assert_eq!(verify_post(&signed_post(), EXAMPLE_BODY, EXAMPLE_TIMESTAMP - 600), Ok(()));
        assert_eq!(
            verify_post(&signed_post(), EXAMPLE_BODY, EXAMPLE_TIMESTAMP + 601),
            Err(ApiAuthError::StaleTimestamp { skew_secs: 601, max_secs: 600 })
        );
        assert_eq!(
            verify_post(&signed_post(), EXAMPLE_BODY, EXAMPLE_TIMESTAMP - 601),
            Err(ApiAuthError::StaleTimestamp { skew_secs: 601, max_secs: 600 })
        );
        // Extreme clocks must not overflow.
        assert!(matches!(
            verify_post(&signed_post(), EXAMPLE_BODY, i64::MIN),
            Err(ApiAuthError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let other = Credentials::new("someone-else", SECRET);
        let no_params: [(&str, &str); 0] = [];
        let query =
            other.sign_request("POST", "/apps/3/events", &no_params, EXAMPLE_BODY.as_bytes(), EXAMPLE_TIMESTAMP);
        assert_eq!(verify_post(&query, EXAMPLE_BODY, EXAMPLE_TIMESTAMP), Err(ApiAuthError::UnknownKey));
    }

    #[test]
    fn wrong_signature_is_rejected() {
        let mut query = signed_post();
        let last = query.len() - 1;
        query[last].1 = query[last].1.replacen('d', "e", 1);
        assert_eq!(verify_post(&query, EXAMPLE_BODY, EXAMPLE_TIMESTAMP), Err(ApiAuthError::InvalidSignature));
        query[last].1 = "not hex".into();
        assert_eq!(verify_post(&query, EXAMPLE_BODY, EXAMPLE_TIMESTAMP), Err(ApiAuthError::InvalidSignature));
        // Signed by someone with the key but not the secret.
        let impostor = Credentials::new(KEY, "guessed-secret");
        let no_params: [(&str, &str); 0] = [];
        let query =
            impostor.sign_request("POST", "/apps/3/events", &no_params, EXAMPLE_BODY.as_bytes(), EXAMPLE_TIMESTAMP);
        assert_eq!(verify_post(&query, EXAMPLE_BODY, EXAMPLE_TIMESTAMP), Err(ApiAuthError::InvalidSignature));
    }

    #[test]
    fn tampered_param_or_path_is_rejected() {
        let mut query = signed_get(10);
        query[0].1 = "private-".into();
        assert_eq!(
            creds().verify_request("GET", "/apps/3/channels", &query, b"", 10),
            Err(ApiAuthError::InvalidSignature)
        );
        let query = signed_get(10);
        assert_eq!(
            creds().verify_request("GET", "/apps/4/channels", &query, b"", 10),
            Err(ApiAuthError::InvalidSignature)
        );
        assert_eq!(
            creds().verify_request("POST", "/apps/3/channels", &query, b"", 10),
            Err(ApiAuthError::InvalidSignature)
        );
    }

    #[test]
    fn malformed_auth_params_have_their_own_errors() {
        let base = signed_get(10);
        let without = |name: &str| base.iter().filter(|(k, _)| k != name).cloned().collect::<Vec<_>>();
        let with = |name: &str, value: &str| {
            base.iter()
                .map(|(k, v)| (k.clone(), if k == name { value.to_owned() } else { v.clone() }))
                .collect::<Vec<_>>()
        };
        let verify = |q: &[(String, String)]| creds().verify_request("GET", "/apps/3/channels", q, b"", 10);
        assert_eq!(verify(&without("auth_key")), Err(ApiAuthError::MissingParam("auth_key")));
        assert_eq!(verify(&without("auth_signature")), Err(ApiAuthError::MissingParam("auth_signature")));
        assert_eq!(verify(&without("auth_timestamp")), Err(ApiAuthError::MissingParam("auth_timestamp")));
        assert_eq!(verify(&with("auth_version", "2.0")), Err(ApiAuthError::UnsupportedAuthVersion));
        assert_eq!(verify(&with("auth_timestamp", "soon")), Err(ApiAuthError::InvalidTimestamp));
        let mut duplicated = base.clone();
        duplicated.push(("AUTH_KEY".into(), KEY.into()));
        assert_eq!(verify(&duplicated), Err(ApiAuthError::DuplicateParam("auth_key".into())));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let shown = format!("{:?}", creds());
        assert!(shown.contains(KEY));
        assert!(!shown.contains(SECRET));
    }
}
