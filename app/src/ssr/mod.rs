//! Server-only code: database, entities, services, sessions, and the request context that
//! server functions read. Compiled only with the `ssr` feature.

pub mod accounts;
pub mod conversations;
pub mod entities;
pub mod password;
pub mod rate_limit;
pub mod sessions;
#[cfg(test)]
pub(crate) mod test_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts};
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

use crate::error::AppError;
use entities::users;
use sessions::SessionToken;

/// Everything a request needs from the running server. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub login_limiter: Arc<rate_limit::LoginLimiter>,
    pub send_limiter: Arc<rate_limit::SlidingWindow>,
}

impl AppState {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, login_limiter: Arc::default(), send_limiter: Arc::new(rate_limit::message_sends()) }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        tracing::error!(error = %err, "database error");
        AppError::Internal
    }
}

/// Opens the pool. SQLite files use WAL (readers never wait for the writer) and enforce foreign keys.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).map_sqlx_sqlite_opts(|opts| {
        opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5))
    });
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA foreign_keys = ON").await?;
    }
    Ok(db)
}

/// The server state, provided as context by the router.
pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the request context");
        AppError::Internal
    })
}

fn request_parts() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or_else(|| {
        tracing::error!("request parts missing from the context");
        AppError::Internal
    })
}

/// The session token the browser sent, if any.
pub fn session_token() -> Option<SessionToken> {
    let parts = use_context::<Parts>()?;
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(SessionToken::from_cookie_header)
}

/// The signed-in user, or `None`.
pub async fn current_user() -> Result<Option<users::Model>, AppError> {
    let Some(token) = session_token() else { return Ok(None) };
    Ok(sessions::user_for(&state()?.db, &token).await?)
}

/// The signed-in user, or 401.
pub async fn require_user() -> Result<users::Model, AppError> {
    current_user().await?.ok_or(AppError::Unauthorized)
}

/// The address of the client, as seen by this server's socket.
pub fn client_address() -> Option<IpAddr> {
    let parts = use_context::<Parts>()?;
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// Whether the browser reached us over https (directly or through a proxy that says so).
fn is_https() -> Result<bool, AppError> {
    let parts = request_parts()?;
    let forwarded_https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    Ok(forwarded_https || parts.uri.scheme_str() == Some("https"))
}

fn set_cookie(value: String) -> Result<(), AppError> {
    let response = use_context::<ResponseOptions>().ok_or(AppError::Internal)?;
    let value = header::HeaderValue::from_str(&value).map_err(|_| AppError::Internal)?;
    response.append_header(header::SET_COOKIE, value);
    Ok(())
}

/// Signs `user_id` in on this response: a brand-new session (any old one is revoked) and its cookie.
pub async fn begin_session(user_id: i64) -> Result<(), AppError> {
    let state = state()?;
    let token = sessions::start(&state.db, user_id, session_token().as_ref()).await?;
    set_cookie(token.set_cookie(is_https()?))
}

/// Signs out: the session is deleted server-side and the cookie cleared.
pub async fn end_session() -> Result<(), AppError> {
    if let Some(token) = session_token() {
        sessions::revoke(&state()?.db, &token).await?;
    }
    set_cookie(SessionToken::clear_cookie(is_https()?))
}
