//! Server-only code: database, entities, services, sessions, and the request context that
//! server functions read. Compiled only with the `ssr` feature.

pub mod accounts;
pub mod broadcast;
pub mod conversations;
pub mod entities;
pub mod password;
pub mod rate_limit;
pub mod realtime;
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
    pub realtime: Arc<realtime::RealtimeSettings>,
    pub broadcaster: Arc<dyn broadcast::Broadcaster>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        realtime: realtime::RealtimeSettings,
        broadcaster: Arc<dyn broadcast::Broadcaster>,
    ) -> Self {
        Self {
            db,
            login_limiter: Arc::default(),
            send_limiter: Arc::new(rate_limit::message_sends()),
            realtime: Arc::new(realtime),
            broadcaster,
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        tracing::error!(error = %err, "database error");
        AppError::Internal
    }
}

/// True when `err` is a unique-constraint violation: the database, not a prior read, decided a
/// race between two identical writes.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
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

/// Everything a server function needs from the request, read from the reactive context in one
/// synchronous step. Server functions must call [`request`] before their first `.await`: after an
/// await the context is not guaranteed to be there (seen as "AppState missing" during SSR).
pub struct RequestContext {
    pub state: AppState,
    token: Option<SessionToken>,
    client: Option<IpAddr>,
    https: bool,
    accepts_html: bool,
    response: ResponseOptions,
}

pub fn request() -> Result<RequestContext, AppError> {
    let missing = |what: &str| {
        tracing::error!("{what} missing from the request context");
        AppError::Internal
    };
    let state = use_context::<AppState>().ok_or_else(|| missing("AppState"))?;
    let parts = use_context::<Parts>().ok_or_else(|| missing("request parts"))?;
    let response = use_context::<ResponseOptions>().ok_or_else(|| missing("response options"))?;
    let token = SessionToken::from_headers(&parts.headers);
    let forwarded_https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let accepts_html =
        parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    Ok(RequestContext {
        state,
        token,
        client: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()),
        https: forwarded_https || parts.uri.scheme_str() == Some("https"),
        accepts_html,
        response,
    })
}

impl RequestContext {
    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.state.db
    }

    /// The signed-in user, or `None`.
    pub async fn current_user(&self) -> Result<Option<users::Model>, AppError> {
        let Some(token) = &self.token else { return Ok(None) };
        Ok(sessions::user_for(&self.state.db, token).await?)
    }

    /// The signed-in user, or 401.
    pub async fn require_user(&self) -> Result<users::Model, AppError> {
        self.current_user().await?.ok_or(AppError::Unauthorized)
    }

    /// The address of the client, as seen by this server's socket.
    pub fn client_address(&self) -> Option<IpAddr> {
        self.client
    }

    fn set_cookie(&self, value: String) -> Result<(), AppError> {
        let value = header::HeaderValue::from_str(&value).map_err(|_| AppError::Internal)?;
        self.response.append_header(header::SET_COOKIE, value);
        Ok(())
    }

    /// Signs `user_id` in on this response: a brand-new session (any old one is revoked) and its cookie.
    pub async fn begin_session(&self, user_id: i64) -> Result<(), AppError> {
        let token = sessions::start(&self.state.db, user_id, self.token.as_ref()).await?;
        self.set_cookie(token.set_cookie(self.https))
    }

    /// Signs out: the session is deleted server-side and the cookie cleared.
    pub async fn end_session(&self) -> Result<(), AppError> {
        if let Some(token) = &self.token {
            sessions::revoke(&self.state.db, token).await?;
        }
        self.set_cookie(SessionToken::clear_cookie(self.https))
    }

    /// Sends the browser to `path` after this call: a real 302 for a plain form post, and the
    /// server-function redirect header for calls made from WASM (as `leptos_axum::redirect`).
    pub fn redirect(&self, path: &str) {
        let Ok(location) = header::HeaderValue::from_str(path) else { return };
        self.response.insert_header(header::LOCATION, location);
        if self.accepts_html {
            self.response.set_status(axum::http::StatusCode::FOUND);
        } else {
            self.response.insert_header(
                header::HeaderName::from_static(leptos::server_fn::redirect::REDIRECT_HEADER),
                header::HeaderValue::from_static(""),
            );
        }
    }
}
