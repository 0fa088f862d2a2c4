//! What a browser may do with Banter from elsewhere: state-changing requests and WebSocket upgrades
//! from other sites are refused, and every response carries the headers (a CSP with a per-request
//! script nonce, `nosniff`, no framing, a Referrer-Policy) that keep pages from being abused.
//!
//! The nonce is handed to the page renderer in the request's extensions as a
//! [`leptos::nonce::Nonce`]; `app::shell` provides it to Leptos, which puts it on every inline
//! script it writes. The header and the scripts therefore name the same nonce.

use std::sync::Arc;

use app::error::AppError;
use app::ssr::AppState;
use app::ssr::security::SecurityPolicy;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use leptos::nonce::Nonce;

/// Applies the origin checks and the response headers to every route of `app`, including the
/// embedded Pusher server's; call it on the finished router.
pub fn protect(app: Router, state: &AppState) -> Router {
    let guard = Arc::new(Guard::new(state));
    app.layer(middleware::from_fn_with_state(guard, enforce))
}

/// The policy, and the parts of the CSP that do not change from one request to the next.
struct Guard {
    policy: Arc<SecurityPolicy>,
    /// WebSocket origins besides the page's own, for `connect-src`: an external Pusher server,
    /// the allowed origins, and (under `cargo leptos watch`) the live-reload socket.
    extra_connect_src: String,
}

impl Guard {
    fn new(state: &AppState) -> Self {
        let mut sources: Vec<String> = Vec::new();
        // An external Pusher server: the address the browser is told to open (`None` when it is
        // the embedded one, which is the page's own host).
        if let Some(origin) = websocket_origin(&state.realtime.public.websocket_url("", false)) {
            sources.push(origin);
        }
        for allowed in &state.security.allowed_origins {
            if let Some((scheme, authority)) = split_origin(allowed) {
                let ws = if scheme == "https" { "wss" } else { "ws" };
                sources.push(format!("{ws}://{authority}"));
            }
        }
        // leptos' `AutoReload` opens `ws[s]://<page host>:<reload port>` in development.
        if std::env::var_os("LEPTOS_WATCH").is_some() {
            sources.extend(["ws:".to_owned(), "wss:".to_owned()]);
        }
        sources.retain(|source| is_csp_safe(source));
        sources.dedup();
        Self { policy: state.security.clone(), extra_connect_src: sources.join(" ") }
    }

    fn content_security_policy(&self, nonce: &str, host: Option<&str>) -> HeaderValue {
        // `'self'` covers the page's own ws:/wss: only in browsers that implement CSP level 3's
        // rule for it (older Safari does not): name the WebSocket forms of the own host explicitly.
        let own_sockets = host.filter(|host| is_csp_safe(host)).map(|host| format!(" ws://{host} wss://{host}"));
        let extra =
            if self.extra_connect_src.is_empty() { String::new() } else { format!(" {}", self.extra_connect_src) };
        let policy = format!(
            "default-src 'self'; \
             script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self'; \
             style-src-attr 'unsafe-inline'; \
             img-src 'self' data: blob:; \
             connect-src 'self'{}{extra}; \
             frame-ancestors 'none'; \
             base-uri 'self'; \
             form-action 'self'; \
             object-src 'none'",
            own_sockets.unwrap_or_default(),
        );
        // Every part was checked by `is_csp_safe` (the nonce is URL-safe base64); should that
        // ever fail, a policy that allows no inline script at all is the safe answer.
        HeaderValue::from_str(&policy).unwrap_or_else(|_| {
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'; object-src 'none'",
            )
        })
    }

    /// Whether this request is refused: a state-changing request or a WebSocket handshake from
    /// another site.
    fn refuses(&self, request: &Request) -> bool {
        let headers = request.headers();
        let host = request_host(request);
        if is_websocket_upgrade(request) {
            // Browsers always send `Origin` on a WebSocket handshake; server SDKs send none.
            return match headers.get(header::ORIGIN) {
                None => false,
                Some(origin) => !self.origin_is_ours(origin, host),
            };
        }
        if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return false;
        }
        let origin = headers.get(header::ORIGIN);
        if let Some(site) = headers.get("sec-fetch-site") {
            // Set by the browser itself, so it cannot be forged by a page: trust it first.
            return match site.as_bytes() {
                b"same-origin" | b"none" => false,
                // A sibling subdomain is same-site but not ours: cookies with SameSite=Lax
                // still travel, so it counts as another site.
                _ => !origin.is_some_and(|origin| self.is_allowed(origin)),
            };
        }
        match origin {
            // Curl, server SDKs, Pusher HTTP API publishers: no browser, so no victim's cookie.
            None => false,
            Some(origin) => !self.origin_is_ours(origin, host),
        }
    }

    /// The request's own origin (same host and port as `Host`), or a configured one. `null` never.
    fn origin_is_ours(&self, origin: &HeaderValue, host: Option<&str>) -> bool {
        if self.is_allowed(origin) {
            return true;
        }
        let (Ok(origin), Some(host)) = (origin.to_str(), host) else {
            return false;
        };
        let Some((scheme, authority)) = split_origin(origin) else {
            return false;
        };
        without_default_port(scheme, authority).eq_ignore_ascii_case(without_default_port(scheme, host))
    }

    fn is_allowed(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().trim_end_matches('/');
        self.policy.allowed_origins.iter().any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

async fn enforce(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let host = request_host(&request).map(str::to_owned);
    let nonce = Nonce::new();
    let mut response = if guard.refuses(&request) {
        tracing::debug!(
            method = %request.method(),
            path = request.uri().path(),
            origin = ?request.headers().get(header::ORIGIN),
            "refused a cross-site request"
        );
        AppError::Forbidden { message: "cross-site request refused".into() }.into_response()
    } else {
        request.extensions_mut().insert(nonce.clone());
        next.run(request).await
    };
    let csp = guard.content_security_policy(&nonce, host.as_deref());
    add_headers(response.headers_mut(), csp);
    response
}

/// Sets each header unless the handler chose its own (a stricter CSP for a download, say).
fn add_headers(headers: &mut HeaderMap, csp: HeaderValue) {
    let fixed: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Full URLs within the site (no-JavaScript form posts are redirected back to their
        // `Referer`), nothing at all to other sites: chat URLs name who one talks to.
        (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    ];
    for (name, value) in fixed {
        headers.entry(name).or_insert(value);
    }
}

/// `Host`, or the HTTP/2 `:authority`.
fn request_host(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| request.uri().authority().map(|authority| authority.as_str()))
}

/// A WebSocket handshake, or anything aimed at the embedded Pusher server's socket route.
fn is_websocket_upgrade(request: &Request) -> bool {
    let upgrade = request.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok());
    upgrade.is_some_and(|v| v.to_ascii_lowercase().contains("websocket")) || request.uri().path().starts_with("/app/")
}

/// `https://host:port` → (`https`, `host:port`). Anything else, `null` included, is `None`.
fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.trim().split_once("://")?;
    let authority = authority.trim_end_matches('/');
    let valid = !authority.is_empty() && !authority.contains(['/', '?', '#', '@']);
    (valid && matches!(scheme, "http" | "https")).then_some((scheme, authority))
}

/// `host:443` under https (`:80` under http) is just `host`.
fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// `ws[s]://authority` of a WebSocket URL, when it names a host.
fn websocket_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Safe to put into the CSP header as one source: no separators, quotes or control characters.
fn is_csp_safe(source: &str) -> bool {
    !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'/' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_split_into_scheme_and_authority() {
        assert_eq!(split_origin("https://chat.example.com"), Some(("https", "chat.example.com")));
        assert_eq!(split_origin("http://127.0.0.1:3000"), Some(("http", "127.0.0.1:3000")));
        assert_eq!(split_origin("null"), None);
        assert_eq!(split_origin("file://"), None);
        assert_eq!(split_origin("https://user@evil.example"), None);
        assert_eq!(without_default_port("https", "example.com:443"), "example.com");
        assert_eq!(without_default_port("http", "example.com:443"), "example.com:443");
    }

    #[test]
    fn websocket_origins_name_scheme_and_host_only() {
        assert_eq!(
            websocket_origin("wss://ws-eu.pusher.com:443/app/k?x=1").as_deref(),
            Some("wss://ws-eu.pusher.com:443")
        );
        assert_eq!(websocket_origin("ws:///app/k?x=1"), None);
        assert!(!is_csp_safe("evil.example; script-src *"));
        assert!(is_csp_safe("[::1]:3000"));
    }
}
