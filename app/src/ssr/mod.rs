//! Server-only code: database, entities, services, sessions, and the request context that
//! server functions read. Compiled only with the `ssr` feature.

pub mod accounts;
pub mod attachments;
pub mod broadcast;
pub mod conversations;
pub mod entities;
pub mod group_commit;
pub mod groups;
pub mod messages;
pub mod mutes;
pub mod online;
pub mod password;
pub mod rate_limit;
pub mod realtime;
pub mod search;
pub mod security;
pub mod sessions;
pub mod storage;
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
    pub account_limiter: Arc<rate_limit::AccountLimiter>,
    pub send_limiter: Arc<rate_limit::SlidingWindow>,
    pub realtime: Arc<realtime::RealtimeSettings>,
    pub broadcaster: Arc<dyn broadcast::Broadcaster>,
    pub security: Arc<security::SecurityPolicy>,
    /// Where attachments are kept; `None`: this server takes no files (see [`AppState::with_storage`]).
    pub storage: Option<storage::Storage>,
    pub upload_limiter: Arc<rate_limit::SlidingWindow>,
    /// The sessions this instance looked up lately (see [`sessions::SessionCache`]).
    pub sessions: Arc<sessions::SessionCache>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        realtime: realtime::RealtimeSettings,
        broadcaster: Arc<dyn broadcast::Broadcaster>,
    ) -> Self {
        Self::with_security(db, realtime, broadcaster, security::SecurityPolicy::default())
    }

    /// As [`AppState::new`], with the configured proxies, cookie and origin rules, and limits.
    pub fn with_security(
        db: DatabaseConnection,
        realtime: realtime::RealtimeSettings,
        broadcaster: Arc<dyn broadcast::Broadcaster>,
        security: security::SecurityPolicy,
    ) -> Self {
        Self {
            db,
            account_limiter: Arc::new(rate_limit::AccountLimiter::new(&security.limits)),
            send_limiter: Arc::new(rate_limit::SlidingWindow::from_limit(security.limits.sends_per_user)),
            realtime: Arc::new(realtime),
            broadcaster,
            security: Arc::new(security),
            storage: None,
            upload_limiter: Arc::new(attachments::upload_limiter()),
            sessions: Arc::default(),
        }
    }

    /// Every rate limit (sign-ins, sign-ups, sends, uploads) counted in the Redis that all
    /// instances share, instead of per process; under this deployment's Pusher app id, so two
    /// deployments on one Redis do not count each other's users.
    pub fn with_shared_limits(mut self, redis: &redis::aio::ConnectionManager) -> Self {
        let limits = self.security.limits;
        let name = |limiter: &str| format!("{}:{limiter}", self.realtime.app_id);
        self.account_limiter = Arc::new(rate_limit::AccountLimiter::new(&limits).shared_through(redis, &name("")));
        self.send_limiter = Arc::new(
            rate_limit::SlidingWindow::from_limit(limits.sends_per_user).shared_through(redis.clone(), &name("sends")),
        );
        self.upload_limiter = Arc::new(attachments::upload_limiter().shared_through(redis.clone(), &name("uploads")));
        self
    }

    /// Takes files, kept in `storage`.
    pub fn with_storage(mut self, storage: storage::Storage) -> Self {
        self.storage = Some(storage);
        self
    }
}

/// Who signed in, looked up at most once per request: a page asks in every server function it
/// renders (the session, the contacts, the conversation). The server inserts a fresh one into each
/// request's extensions; without it every call looks the session up itself.
#[derive(Clone, Default)]
pub struct SignedInCache(Arc<tokio::sync::Mutex<Option<Option<users::Model>>>>);

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        tracing::error!(error = %err, "database error");
        metrics::counter!("banter_database_errors_total").increment(1);
        AppError::Internal
    }
}

/// True when `err` is a unique-constraint violation: the database, not a prior read, decided a
/// race between two identical writes.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// True when `err` is a foreign-key violation: a row refers to one that does not exist.
pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)))
}

/// Connections to a SQLite file: readers side by side (WAL), one writer at a time.
const SQLITE_CONNECTIONS: u32 = 8;

/// Rows a SQLite connection's thread may hand over before the query's task takes them: more than
/// any page the chat reads at once (a conversation's page is 51 rows, the contact list up to 220).
const SQLITE_ROW_BUFFER: usize = 256;

/// How much of a SQLite file is read through memory mapping.
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// Opens the pool. SQLite files use WAL (readers never wait for the writer) and enforce foreign keys.
/// They do not checkpoint the WAL on commit (that would put a file sync in some request's path):
/// a server calls [`checkpoint_sqlite`] from the background instead.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    // sea-orm gives SQLite one connection unless told otherwise, which made every query of the
    // server wait for the one before it (searches at 10 at a time: 60 % more per second with 8).
    // WAL lets readers run beside the writer, and writes take turns anyway
    // ([`sqlite_write_turn`]). An in-memory database is one per connection: it keeps one.
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if url.starts_with("sqlite:") && !in_memory {
        options.max_connections(SQLITE_CONNECTIONS);
    }
    if url.starts_with("sqlite:") {
        // The pool would ping a connection before lending it, a round trip to the connection's
        // thread where nothing can have gone away (the connection is a file handle of this
        // process). A query was three hand-offs to that thread (the ping, the query, the ping sqlx
        // always makes when the connection comes back) and is now two; a chat page makes about 15.
        // Measured 2026-12-04, builds alternating: the chat page 245 → 276 and 277 → 308 pages/s;
        // sends 2,760 → 3,596/s (all that was offered) at 0.36 → 0.28 ms of CPU each.
        options.test_before_acquire(false);
    }
    options.sqlx_logging(false).map_sqlx_sqlite_opts(|opts| {
        opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5))
            .pragma("wal_autocheckpoint", "0")
            // Pages read through memory mapping, not one `pread` and copy each (searches read
            // many pages of the full-text index): up to 1 GiB of the file, shared by the
            // connections and the kernel's page cache.
            .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
            // A connection's thread hands rows over through a channel of this many; when it is
            // full the thread sleeps until the query's task takes some, two more thread switches.
            // sqlx's 50 is one short of a page of messages (50 and one more, to know whether
            // older ones exist).
            .row_buffer_size(SQLITE_ROW_BUFFER)
    });
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA foreign_keys = ON").await?;
    }
    Ok(db)
}

/// Copies what the SQLite write-ahead log holds into the database file, without waiting for
/// readers or blocking writers; a no-op on PostgreSQL.
pub async fn checkpoint_sqlite(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await?;
    }
    Ok(())
}

/// SQLite has one writer at a time: a second one gets SQLITE_BUSY and sleeps in SQLite's busy
/// handler (1 ms, then 2, 5, ...), which showed as send→receive p99 spikes under load. The hot
/// writes (sends, read receipts) take turns here instead, in arrival order and without sleeping.
/// PostgreSQL writes run side by side: `None`.
pub async fn sqlite_write_turn(db: &DatabaseConnection) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static SQLITE_WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    Some(SQLITE_WRITER.lock().await)
}

/// Starts a transaction that writes. On SQLite it is `BEGIN IMMEDIATE`: it takes the write lock
/// at once (waiting in the busy handler, as any writer does), so what it reads is the newest. A
/// plain (deferred) `BEGIN` reads from the snapshot of its first read; when another connection
/// commits a write between that read and the transaction's first write, the write fails at once
/// with "database is locked" (SQLITE_BUSY_SNAPSHOT), whatever the busy timeout says. Seen in CI on
/// 2026-12-04 as a 500 for a reaction (its transaction reads before it writes) beside a write
/// that does not take [`sqlite_write_turn`]. PostgreSQL: a plain `BEGIN`.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::TransactionTrait;
    let sqlite_transaction_mode =
        (db.get_database_backend() == DbBackend::Sqlite).then_some(sea_orm::SqliteTransactionMode::Immediate);
    db.begin_with_options(sea_orm::TransactionOptions { sqlite_transaction_mode, ..Default::default() }).await
}

/// Starts a transaction for a server function that only reads, several times: the contact list,
/// a page of a conversation, a catch-up. Its reads see one snapshot (the page's unread counts,
/// messages and change cursor agree with each other): SQLite's transactions always do, PostgreSQL's
/// at `REPEATABLE READ`. And they share one connection: each query made on the pool borrows a
/// connection and gives it back, and sqlx pings a connection that comes back, so a query was two
/// round trips to a SQLite connection's worker thread, not one, plus a task to return it (the chat
/// page: 66 thread switches per page before, 48 after, with [`SQLITE_ROW_BUFFER`]). The transaction
/// ends when it is dropped: a rollback that is not waited for, then the connection's one return.
pub async fn begin_read(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await
        }
        _ => db.begin().await,
    }
}

/// Everything a server function needs from the request, read from the reactive context in one
/// synchronous step. Server functions must call [`request`] before their first `.await`: after an
/// await the context is not guaranteed to be there (seen as "AppState missing" during SSR).
pub struct RequestContext {
    pub state: AppState,
    token: Option<SessionToken>,
    signed_in: Option<SignedInCache>,
    client: Option<IpAddr>,
    /// Whether the session cookie gets `Secure` (see `SecurityPolicy::secure_cookie`).
    secure_cookie: bool,
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
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let over_https = state.security.came_over_https(peer, &parts.headers, parts.uri.scheme_str() == Some("https"));
    let accepts_html =
        parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    Ok(RequestContext {
        client: peer.map(|peer| state.security.client_address(peer, &parts.headers)),
        secure_cookie: state.security.secure_cookie(over_https),
        state,
        token,
        signed_in: parts.extensions.get::<SignedInCache>().cloned(),
        accepts_html,
        response,
    })
}

impl RequestContext {
    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.state.db
    }

    /// A read-only transaction on the request's database (see [`begin_read`]).
    pub async fn reads(&self) -> Result<sea_orm::DatabaseTransaction, AppError> {
        Ok(begin_read(&self.state.db).await?)
    }

    /// The signed-in user, or `None`.
    pub async fn current_user(&self) -> Result<Option<users::Model>, AppError> {
        let Some(token) = &self.token else { return Ok(None) };
        let sessions = &self.state.sessions;
        let Some(cache) = &self.signed_in else { return Ok(sessions.user_for(&self.state.db, token).await?) };
        // Held across the lookup: resources rendering side by side wait for the first one's answer.
        let mut known = cache.0.lock().await;
        if let Some(user) = &*known {
            return Ok(user.clone());
        }
        let user = sessions.user_for(&self.state.db, token).await?;
        *known = Some(user.clone());
        Ok(user)
    }

    /// Forgets who signed in, after this request changed it.
    async fn forget_signed_in(&self) {
        if let Some(cache) = &self.signed_in {
            *cache.0.lock().await = None;
        }
    }

    /// The signed-in user, or 401.
    pub async fn require_user(&self) -> Result<users::Model, AppError> {
        self.current_user().await?.ok_or(AppError::Unauthorized)
    }

    /// The client's address: the socket's peer, or what a trusted proxy says it is.
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
        if let Some(previous) = &self.token {
            // `start` revoked it: whatever it authorized stops too.
            self.session_ended(previous);
        }
        self.forget_signed_in().await;
        self.set_cookie(token.set_cookie(self.secure_cookie))
    }

    /// Signs out: the session is deleted server-side and the cookie cleared.
    pub async fn end_session(&self) -> Result<(), AppError> {
        if let Some(token) = &self.token {
            sessions::revoke(&self.state.db, token).await?;
            self.session_ended(token);
        }
        self.forget_signed_in().await;
        self.set_cookie(SessionToken::clear_cookie(self.secure_cookie))
    }

    /// After `token`'s session was deleted: this instance stops trusting it at once, and the
    /// broadcaster tells the others (the embedded server's cluster bus) and closes its sockets.
    fn session_ended(&self, token: &SessionToken) {
        let id = token.id();
        self.state.sessions.forget(&id);
        self.state.broadcaster.session_ended(&id);
    }

    /// After a plain form post (no JavaScript), sends the browser back to the conversation of
    /// `message` as `me` sees it, at that message; calls made from WASM get their answer only.
    pub fn back_to_message(&self, me: i64, message: &crate::model::ChatMessage) {
        if !self.accepts_html {
            return;
        }
        let conversation = match message.room_id {
            Some(room) => format!("/chat/g/{room}"),
            None if message.sender_id == me => format!("/chat/{}", message.recipient_id),
            None => format!("/chat/{}", message.sender_id),
        };
        self.redirect(&format!("{conversation}#m-{}", message.id));
    }

    /// Sends a plain form post (no JavaScript) to `path` after this call; a call from WASM is
    /// answered in place.
    pub fn redirect_plain_form(&self, path: &str) {
        if self.accepts_html {
            self.redirect(path);
        }
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    /// The first `n` integer columns of the row a PRAGMA answers.
    async fn pragma_row(db: &DatabaseConnection, sql: &str, n: usize) -> Vec<i64> {
        let row = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap().unwrap();
        (0..n).map(|i| row.try_get_by_index(i).unwrap()).collect()
    }

    /// `.cargo/config.toml` builds the bundled SQLite with the query planner stability guarantee,
    /// so a cached statement with `LIMIT ?` is not prepared again at every run.
    #[tokio::test]
    async fn sqlite_keeps_its_plans_whatever_the_bound_values() {
        let db = connect("sqlite::memory:").await.unwrap();
        let found = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT count(*) FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG'",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.try_get_by_index::<i64>(0).unwrap(), 1, "SQLite built without SQLITE_ENABLE_QPSG");
    }

    /// The pool lends SQLite connections without pinging them first (a round trip to the
    /// connection's thread per query, for a file handle that cannot have gone away).
    #[tokio::test]
    async fn sqlite_connections_are_lent_without_a_ping() {
        let db = connect("sqlite::memory:").await.unwrap();
        assert!(!db.get_sqlite_connection_pool().options().get_test_before_acquire());
    }

    /// A write transaction that reads first is not failed by a write another connection commits
    /// meanwhile (with a deferred `BEGIN` its insert got "database is locked" at once).
    #[tokio::test]
    async fn a_write_transaction_that_reads_first_survives_a_write_beside_it() {
        let dir = std::env::temp_dir().join(format!("banter-immediate-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.display())).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (0)").await.unwrap();

        let tx = begin_write(&db).await.unwrap();
        let before = tx
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM t"))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        // Another connection writes (an autocommit statement, as writes outside the turn are).
        let beside = {
            let db = db.clone();
            tokio::spawn(async move { db.execute_unprepared("INSERT INTO t VALUES (1)").await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        tx.execute_unprepared(&format!("INSERT INTO t VALUES ({})", before + 10)).await.unwrap();
        tx.commit().await.unwrap();
        beside.await.unwrap().unwrap();
        assert_eq!(pragma_row(&db, "SELECT count(*) FROM t", 1).await, [3], "both writes are stored");
        db.close().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A server function's reads (`begin_read`) see the database as it was at their first read:
    /// a message stored meanwhile is in none of them, not in some (an unread count that disagrees
    /// with the messages listed), and the next request sees it. SQLite, and PostgreSQL when
    /// `BANTER_TEST_POSTGRES_URL` is set.
    #[tokio::test]
    async fn reads_in_one_transaction_see_one_snapshot() {
        let dir = std::env::temp_dir().join(format!("banter-reads-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.display())).await.unwrap();
        one_snapshot(&sqlite, "t").await;
        sqlite.close().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
        if let Ok(url) = std::env::var("BANTER_TEST_POSTGRES_URL") {
            let postgres = connect(&url).await.unwrap();
            let table = format!("snapshot_{}", hex::encode(rand::random::<[u8; 6]>()));
            one_snapshot(&postgres, &table).await;
            postgres.execute_unprepared(&format!("DROP TABLE {table}")).await.unwrap();
        }
    }

    async fn counted(db: &impl ConnectionTrait, count: &Statement) -> i64 {
        let row = db.query_one_raw(count.clone()).await.unwrap().unwrap();
        row.try_get_by_index(0).unwrap()
    }

    async fn one_snapshot(db: &DatabaseConnection, table: &str) {
        let backend = db.get_database_backend();
        db.execute_unprepared(&format!("CREATE TABLE {table} (x INTEGER)")).await.unwrap();
        db.execute_unprepared(&format!("INSERT INTO {table} VALUES (0)")).await.unwrap();
        let count = Statement::from_string(backend, format!("SELECT count(*) FROM {table}"));

        let reads = begin_read(db).await.unwrap();
        assert_eq!(counted(&reads, &count).await, 1);
        db.execute_unprepared(&format!("INSERT INTO {table} VALUES (1)")).await.unwrap();
        assert_eq!(counted(&reads, &count).await, 1, "{backend:?}: the write came after the snapshot");
        assert_eq!(counted(db, &count).await, 2, "{backend:?}: a read outside the transaction sees it");
        drop(reads);
        assert_eq!(counted(&begin_read(db).await.unwrap(), &count).await, 2, "{backend:?}: so do the next reads");
    }

    #[tokio::test]
    async fn sqlite_files_leave_wal_checkpoints_to_the_background_task() {
        let dir = std::env::temp_dir().join(format!("banter-wal-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.display())).await.unwrap();
        assert_eq!(pragma_row(&db, "PRAGMA wal_autocheckpoint", 1).await, [0], "commits never checkpoint");
        db.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        for i in 0..50 {
            db.execute_unprepared(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
        }
        let wal = dir.join("t.sqlite-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0, "the commits are in the log");

        checkpoint_sqlite(&db).await.unwrap();
        // (busy, frames in the log, frames checkpointed): everything was copied to the database.
        let [busy, log, done] = pragma_row(&db, "PRAGMA wal_checkpoint(PASSIVE)", 3).await[..] else { panic!() };
        assert_eq!((busy, log), (0, done));
        assert!(log > 0);
        db.close().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
