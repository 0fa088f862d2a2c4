//! Pusher's webhooks: what a Pusher-compatible server POSTs to an app when channels change
//! (`{"time_ms": …, "events": [{"name": "channel_occupied", "channel": "…"}, …]}`), and how the app
//! checks that it came from the server: `X-Pusher-Key` names the app's key, and
//! `X-Pusher-Signature` is `hex(HMAC-SHA256(secret, body))`.

use serde::{Deserialize, Serialize};

use crate::signing::Credentials;

/// The header naming the app key a webhook was signed with.
pub const KEY_HEADER: &str = "x-pusher-key";
/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-pusher-signature";

/// One webhook request's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// When the server sent it, in unix milliseconds.
    pub time_ms: i64,
    pub events: Vec<WebhookEvent>,
}

/// One event of a webhook. Only the fields every kind carries are read; `channel_occupied` and
/// `channel_vacated` carry nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// Why a webhook was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("X-Pusher-Key is missing or is not this app's key")]
    UnknownKey,
    #[error("X-Pusher-Signature is missing or does not match the body")]
    InvalidSignature,
    #[error("the body is not a Pusher webhook ({{\"time_ms\":…,\"events\":[…]}})")]
    Malformed,
}

impl Credentials {
    /// The `X-Pusher-Signature` of a webhook body.
    pub fn webhook_signature(&self, body: &[u8]) -> String {
        self.sign(body)
    }

    /// Checks a webhook's headers against its body (the signature in constant time), then parses it.
    pub fn verify_webhook(
        &self,
        key: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Webhook, WebhookError> {
        if key != Some(self.key()) {
            return Err(WebhookError::UnknownKey);
        }
        let signature = signature.ok_or(WebhookError::InvalidSignature)?;
        if !self.verify(body, signature) {
            return Err(WebhookError::InvalidSignature);
        }
        serde_json::from_slice(body).map_err(|_| WebhookError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials::new("key", "secret")
    }

    #[test]
    fn a_signed_webhook_is_read() {
        let body = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"private-user.7"}]}"#;
        // hex(HMAC-SHA256("secret", body)), as Pusher computes it.
        let signature = credentials().webhook_signature(body);
        assert_eq!(signature.len(), 64);
        let webhook = credentials().verify_webhook(Some("key"), Some(&signature), body).unwrap();
        assert_eq!(webhook.time_ms, 1_327_078_148_132);
        assert_eq!(
            webhook.events,
            vec![WebhookEvent { name: "channel_occupied".into(), channel: Some("private-user.7".into()) }]
        );
    }

    #[test]
    fn anything_unsigned_or_signed_otherwise_is_refused() {
        let body = br#"{"time_ms":1,"events":[]}"#;
        let good = credentials().webhook_signature(body);
        let other = Credentials::new("key", "other secret").webhook_signature(body);
        let check = |key, signature: Option<&str>, body: &[u8]| credentials().verify_webhook(key, signature, body);
        assert_eq!(check(None, Some(&good), body), Err(WebhookError::UnknownKey));
        assert_eq!(check(Some("other"), Some(&good), body), Err(WebhookError::UnknownKey));
        assert_eq!(check(Some("key"), None, body), Err(WebhookError::InvalidSignature));
        assert_eq!(check(Some("key"), Some(&other), body), Err(WebhookError::InvalidSignature));
        assert_eq!(check(Some("key"), Some("zz"), body), Err(WebhookError::InvalidSignature));
        let tampered = br#"{"time_ms":2,"events":[]}"#;
        assert_eq!(check(Some("key"), Some(&good), tampered), Err(WebhookError::InvalidSignature));
        let junk = b"not json";
        let signed = credentials().webhook_signature(junk);
        assert_eq!(check(Some("key"), Some(&signed), junk), Err(WebhookError::Malformed));
    }
}
