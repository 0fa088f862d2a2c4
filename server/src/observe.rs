//! What operators see of each request: one line when it is answered (method, path without its
//! query, status, time), a request id on that line and on every other line written while it is
//! answered (taken from `X-Request-Id` when a proxy set a sensible one, generated otherwise, and
//! returned in the response), and logs as JSON lines when `LOG_FORMAT=json`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// How logs are written: human-readable lines (the default) or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `LOG_FORMAT`: unset, `text` or `json`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("" | "text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(format!("LOG_FORMAT: {other:?} is not `text` or `json`")),
        }
    }
}

/// Starts the process's logging: `filter` as `RUST_LOG` says, in `format`.
pub fn init_logging(format: LogFormat, filter: tracing_subscriber::EnvFilter) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        // Every line carries the spans it was written in, so the request id of a request's lines.
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).flatten_event(true).init(),
    }
}

/// A request id from a client or proxy is kept when it is 1 to 128 characters of letters,
/// digits and `-_.:`; anything else (which would go into every log line) is replaced.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A fresh id: 16 random bytes in hex.
fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Gives the request its id (in the request's headers too, for what runs after), answers it
/// inside a `request` span that carries the id, logs the answer (not for the probes, which a load
/// balancer calls every few seconds), and returns the id as `X-Request-Id`.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(generate, str::to_owned);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let span = tracing::info_span!("request", request_id = %id);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if !matches!(path.as_str(), "/healthz" | "/readyz") {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        span.in_scope(|| tracing::info!(%method, %path, status = response.status().as_u16(), ms, "answered"));
    }
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_outside_are_kept_only_when_plain() {
        assert!(acceptable("3f9a-req_1.2:x"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"a".repeat(129)));
        let fresh = generate();
        assert_eq!(fresh.len(), 32);
        assert!(acceptable(&fresh));
        assert_ne!(fresh, generate());
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        assert!(LogFormat::parse(Some("xml")).unwrap_err().contains("LOG_FORMAT"));
    }
}
