//! Prometheus metrics at `GET /metrics` (text format), recorded through the `metrics` facade by
//! the code that knows what happened:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `route` (the matched route, not the path), `method`, `status` |
//! | `http_request_duration_seconds` | histogram | `route`, `method` |
//! | `banter_messages_sent_total` | counter | |
//! | `banter_send_batch_size` | histogram | (sends written per SQLite transaction, see `app::ssr::group_commit`) |
//! | `banter_rate_limit_refusals_total` | counter | |
//! | `banter_database_errors_total` | counter | |
//! | `banter_redis_errors_total` | counter | `component` (`bus`, `presence`, `rate_limits`) |
//! | `banter_pusher_connections` | gauge | |
//! | `banter_pusher_subscriptions` | gauge | `kind` (`public`, `private`, `encrypted`, `presence`) |
//! | `banter_pusher_deliveries_total` | counter | |
//! | `banter_pusher_queue_overflows_total` | counter | (connections closed with 4100) |
//!
//! The endpoint is mounted only when someone may read it: `METRICS_TOKEN` (sent as
//! `Authorization: Bearer <token>`) and/or `METRICS_ALLOW` (addresses or CIDR blocks, matched
//! against the client address as `TRUSTED_PROXIES` resolves it). Anyone else gets 403.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use app::ssr::security::{IpBlock, SecurityPolicy};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Who may read `/metrics`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetricsAccess {
    /// `METRICS_TOKEN`: a bearer token that opens it from anywhere.
    pub token: Option<String>,
    /// `METRICS_ALLOW`: client addresses that may read it without a token.
    pub allow: Vec<IpBlock>,
}

impl MetricsAccess {
    /// Whether anyone may read it (otherwise `/metrics` is not mounted at all).
    pub fn enabled(&self) -> bool {
        self.token.is_some() || !self.allow.is_empty()
    }
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow", &self.allow)
            .finish()
    }
}

/// Request latency buckets, in seconds: pages and API calls take a millisecond or a few.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Sends per SQLite group commit (`app::ssr::group_commit`): one when idle, more under load.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// The process's recorder, installed on first use (one per process: tests start many servers).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("banter_send_batch_size".into()), BATCH_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("metrics: another recorder is installed; /metrics will stay empty");
        }
        handle
    })
}

/// Keeps the recorder's histograms tidy; call once at start-up.
pub fn spawn_upkeep() {
    let handle = handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Counts each request and times it, by matched route (bounded: never the raw path).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// What the `/metrics` handler needs.
#[derive(Clone)]
pub struct Exposition {
    access: Arc<MetricsAccess>,
    security: Arc<SecurityPolicy>,
}

impl Exposition {
    pub fn new(access: MetricsAccess, security: Arc<SecurityPolicy>) -> Self {
        Self { access: Arc::new(access), security }
    }

    fn allowed(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
        if let Some(token) = &self.access.token
            && let Some(given) =
                headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
            && constant_time_eq(given.trim().as_bytes(), token.as_bytes())
        {
            return true;
        }
        let Some(peer) = peer else { return false };
        let client = self.security.client_address(peer.ip(), headers);
        self.access.allow.iter().any(|block| block.contains(client))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /metrics`: the Prometheus text exposition, or 403.
pub async fn expose(
    State(exposition): State<Exposition>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let peer = peer.map(|axum::Extension(ConnectInfo(addr))| addr);
    if !exposition.allowed(peer, &headers) {
        return (StatusCode::FORBIDDEN, "metrics are readable from METRICS_ALLOW addresses or with METRICS_TOKEN\n")
            .into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle().render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_token_never_reaches_debug_output() {
        let access = MetricsAccess { token: Some("hunter2".into()), allow: Vec::new() };
        assert!(!format!("{access:?}").contains("hunter2"));
        assert!(access.enabled());
        assert!(!MetricsAccess::default().enabled());
    }
}
