//! The HTTP server loop: accepts connections up to a limit, gives each client a bounded time to
//! send its request headers and each request a bounded time to be answered, caps the requests
//! answered at once, and shuts down gracefully. `axum::serve` has none of these settings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::HttpLimits;

/// How long open requests get to finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a file upload may take: 25 MB over a slow uplink (about 0.35 Mbit/s) still makes it.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Serves `app` on `listener` until `shutdown` resolves, within `limits`. Every request carries
/// the peer's address as `ConnectInfo<SocketAddr>`. The listener may be bound to port 0 (tests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let in_flight = Arc::new(Semaphore::new(limits.max_requests_in_flight));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        // Past the limit, connections wait in the kernel's accept queue instead of using memory here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: give the open connections a moment to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, in_flight, timeout) = (app.clone(), Arc::clone(&in_flight), limits.request_timeout);
        let service = hyper::service::service_fn(move |request| {
            answer(app.clone(), request, peer, Arc::clone(&in_flight), timeout)
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open {} s after shutdown", SHUTDOWN_GRACE.as_secs());
    }
    Ok(())
}

/// Answers one request: tagged with the peer address, at most `in_flight` answered at once
/// across the server, within `timeout` (waiting for a turn included).
async fn answer(
    app: Router,
    mut request: hyper::Request<Incoming>,
    peer: SocketAddr,
    in_flight: Arc<Semaphore>,
    timeout: Duration,
) -> Result<Response, Infallible> {
    request.extensions_mut().insert(ConnectInfo(peer));
    // An upload's time is mostly spent receiving its body, which the handler reads as it comes.
    let timeout = if request.uri().path() == "/api/uploads" { timeout.max(UPLOAD_TIMEOUT) } else { timeout };
    let request = request.map(Body::new);
    let respond = async move {
        let Ok(_turn) = in_flight.acquire_owned().await else { return busy() };
        match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    Ok(tokio::time::timeout(timeout, respond).await.unwrap_or_else(|_| busy()))
}

/// 503 with a hint to come back shortly: the request waited or ran past its time.
fn busy() -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, "the server is busy; please try again").into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
