//! `AppError`: the one error every server function returns, and its HTTP status.
//!
//! It travels as JSON (`{"kind":"invalid","field":"email","message":"..."}`), so scripts get the
//! same specific message the UI shows. The server maps `status()` onto the response in one
//! middleware; nothing else decides a status code.

use serde::{Deserialize, Serialize};
use server_fn_error::{FromServerFnError, ServerFnErrorErr};

/// Re-exported so that `app` does not name `server_fn` in two places.
mod server_fn_error {
    pub use leptos::server_fn::codec::JsonEncoding;
    pub use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppError {
    /// The input was wrong; `field` names the form field when there is one.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    #[error("please sign in first")]
    Unauthorized,
    /// Signed in, but not allowed; says nothing about what exists.
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// A file or request over a stated size limit.
    #[error("{message}")]
    TooLarge { message: String },
    /// Something broke on our side. The details are logged, never sent.
    #[error("something went wrong on our side; please try again")]
    Internal,
    /// The request never reached the function (network down, server unreachable, bad encoding).
    #[error("could not reach Banter: {message}")]
    Transport { message: String },
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: Some(field.to_owned()), message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound { message: message.into() }
    }

    pub fn rate_limited(what: &str, retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        #[cfg(feature = "ssr")]
        metrics::counter!("banter_rate_limit_refusals_total").increment(1);
        let unit = if secs == 1 { "second" } else { "seconds" };
        Self::RateLimited { message: format!("{what}: try again in {secs} {unit}"), retry_after_secs: secs }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::TooLarge { .. } => 413,
            Self::RateLimited { .. } => 429,
            Self::Internal => 500,
            Self::Transport { .. } => 502,
        }
    }

    /// [`Self::status`] as axum's type: the one place a status number becomes a response status.
    #[cfg(feature = "ssr")]
    pub fn status_code(&self) -> axum::http::StatusCode {
        axum::http::StatusCode::from_u16(self.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message for `field`, when this error is about that form field.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            Self::Invalid { field: Some(f), message } if f == name => Some(message.clone()),
            _ => None,
        }
    }

    /// A message for the form as a whole: everything that is not about one field.
    pub fn form_message(&self) -> Option<String> {
        match self {
            Self::Invalid { field: Some(_), .. } => None,
            other => Some(other.to_string()),
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = server_fn_error::JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request reached us but its fields did not decode: the caller's mistake.
            ServerFnErrorErr::Args(message) => {
                Self::Invalid { field: None, message: format!("invalid request: {message}") }
            }
            ServerFnErrorErr::MissingArg(name) => {
                Self::Invalid { field: Some(name.clone()), message: format!("{name} is required") }
            }
            ServerFnErrorErr::Request(message) | ServerFnErrorErr::Response(message) => Self::Transport { message },
            other => Self::Transport { message: other.to_string() },
        }
    }
}

/// The answer every handler outside the server functions gives for an error: its status, its JSON,
/// and `Retry-After` when it is a rate limit.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        let mut response = (self.status_code(), axum::Json(self)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_json_is_tagged_and_specific() {
        let err = AppError::invalid("email", "this email is already registered");
        let json = serde_json::to_string(&err).unwrap();
        assert_eq!(json, r#"{"kind":"invalid","field":"email","message":"this email is already registered"}"#);
        assert_eq!(serde_json::from_str::<AppError>(&json).unwrap(), err);
    }

    #[test]
    fn rate_limit_message_says_when() {
        let err = AppError::rate_limited("too many failed sign-ins", 42);
        assert_eq!(err.to_string(), "too many failed sign-ins: try again in 42 seconds");
        assert_eq!(err.status(), 429);
        assert_eq!(AppError::rate_limited("x", 0).to_string(), "x: try again in 1 second");
    }

    #[test]
    fn field_errors_stay_with_their_field() {
        let err = AppError::invalid("password", "too short");
        assert_eq!(err.for_field("password").as_deref(), Some("too short"));
        assert_eq!(err.for_field("email"), None);
        assert_eq!(err.form_message(), None);
        assert_eq!(AppError::Unauthorized.form_message().as_deref(), Some("please sign in first"));
    }
}
