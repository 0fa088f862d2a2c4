//! The HTTP server loop: accepts connections up to a limit, gives each client a bounded time to
//! send its request headers and each request a bounded time to be answered, caps the connections
//! (WebSockets included, and within the open-file limit) and the requests answered at once, and
//! shuts down gracefully. `axum::serve` has none of these settings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::config::HttpLimits;

/// Open files the process keeps for itself besides its connections, at most: the database's (each
/// SQLite connection holds the database, its WAL and its shared memory), files being uploaded or
/// read, logs, the runtime's own.
const FILES_FOR_OTHER_USES: u64 = 1024;

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
    let limits = within_open_file_limit(limits);
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
        // The socket carries its permit: a WebSocket outlives the HTTP connection that upgraded
        // it, and still counts until it closes.
        let stream = Counted { stream, _permit: permit };
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }

    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open {} s after shutdown", SHUTDOWN_GRACE.as_secs());
    }
    Ok(())
}

/// An accepted socket with its turn among `MAX_CONNECTIONS`, given back when the socket is
/// dropped, whether hyper still serves it or a WebSocket handler took it over.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// `limits` with at most as many connections as the open-file limit leaves room for, once the
/// process's other files are counted; the soft limit is raised to the hard one first. Past that
/// limit a connection would not be accepted anyway, and on the way there it would take the
/// descriptor a database file needs: SQLite then fails requests with "unable to open database
/// file" (seen with 25,000 connections allowed and 20,000 files).
fn within_open_file_limit(limits: HttpLimits) -> HttpLimits {
    let Some(files) = raise_open_file_limit() else { return limits };
    let max_connections = connections_within(files, limits.max_connections);
    if max_connections < limits.max_connections {
        tracing::info!(
            max_connections,
            open_file_limit = files,
            "serving at most {max_connections} connections at once: the open-file limit is {files} \
             (MAX_CONNECTIONS asks for {})",
            limits.max_connections
        );
    }
    HttpLimits { max_connections, ..limits }
}

/// The connections `files` open files leave room for beside the process's others (a quarter of a
/// small limit), and never more than `wanted`.
fn connections_within(files: u64, wanted: usize) -> usize {
    let room = files.saturating_sub(FILES_FOR_OTHER_USES.min(files / 4)).max(1);
    usize::try_from(room).unwrap_or(usize::MAX).min(wanted)
}

/// Raises the open-file soft limit to the hard one; returns the limit now in force.
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_room_for_the_processs_other_files() {
        // This machine's limit: the default of 25,000 would run out of files first.
        assert_eq!(connections_within(20_000, 25_000), 18_976);
        assert_eq!(connections_within(1_048_576, 25_000), 25_000, "a high limit leaves the setting as it is");
        assert_eq!(connections_within(1_024, 25_000), 768, "a small limit keeps a quarter for the rest");
        assert_eq!(connections_within(20_000, 100), 100);
        assert_eq!(connections_within(0, 100), 1);
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_one() {
        let files = raise_open_file_limit().expect("getrlimit works here");
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(files, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
