//! Banter's server: start-up, the axum router, and the database it runs on. Everything a request
//! does lives in `app`; this crate wires it to the network.

pub mod assets;
pub mod config;
pub mod demo;
pub mod error;
pub mod files;
pub mod http;
pub mod observe;
pub mod online;
pub mod publisher;
/// The embedded Pusher server: the `pusher-server` crate.
pub use pusher_server as pusher;
pub mod realtime;
pub mod security;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use app::error::AppError;
use app::ssr::AppState;
use app::ssr::security::SecurityPolicy;
use app::{App, shell};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::handler::Handler as _;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
pub use crate::error::StartupError;

/// The largest request body the server reads (`/api/*`, `/broadcasting/auth`, `/apps/...`).
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

/// Opens the database named by the configuration and brings its schema up to date.
pub async fn open_database(config: &Config) -> Result<DatabaseConnection, StartupError> {
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir).map_err(|source| StartupError::DataDir { path: dir.clone(), source })?;
    }
    let db = app::ssr::connect(&config.database_url).await.map_err(StartupError::Database)?;
    Migrator::up(&db, None).await.map_err(StartupError::Migrations)?;
    Ok(db)
}

/// Leptos' own settings (site root, output name), with our site address.
pub fn leptos_options(site_addr: SocketAddr) -> LeptosOptions {
    let mut options = leptos::config::get_configuration(None)
        .map(|conf| conf.leptos_options)
        .unwrap_or_else(|_| LeptosOptions::builder().output_name("banter").build());
    if options.output_name.is_empty() {
        options.output_name = "banter".into();
    }
    // However the binary was started (cargo-leptos, scripts, tests, the bench), the page names the
    // bundle files the last build wrote.
    options.hash_files = assets::hashed_build(&options);
    options.site_addr = site_addr;
    options
}

/// The whole HTTP surface: pages, `/api/*` server functions, static files, `/healthz`,
/// `/broadcasting/auth`, `/pusher/webhooks` (see [`online`]), and the embedded Pusher server's WebSocket and HTTP API when there is one.
///
/// `pusher_http_api` mounts the embedded server's HTTP API (`/apps/...`) as well as its WebSocket.
pub fn router(state: AppState, options: LeptosOptions, hub: Option<&pusher::Hub>, pusher_http_api: bool) -> Router {
    // Installed before anything is recorded (once per process).
    let _ = telemetry::handle();
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let auth_state = state.clone();
    let auth_hub = hub.cloned();
    let db = state.db.clone();
    let online = online::start(&state, hub);
    if let Some(hub) = hub {
        // A session that ends, here or on another instance (the cluster bus), is no longer trusted
        // by this instance's cache from the moment its sockets here are closed.
        let sessions = std::sync::Arc::clone(&state.sessions);
        if !hub.on_session_ended(move |session| sessions.forget(session)) {
            // A second router on one hub: its sessions would outlive their sign-outs elsewhere by
            // up to the cache's TTL.
            tracing::warn!("this hub already reports ended sessions to another router's cache");
        }
    }
    let webhook_credentials = state.realtime.credentials.clone();
    let app = Router::new()
        .route(
            "/healthz",
            get({
                let db = db.clone();
                move || healthz(db.clone())
            }),
        )
        .route("/readyz", {
            let hub = hub.cloned();
            get(move || readyz(db.clone(), hub.clone()))
        })
        .route(
            "/pusher/webhooks",
            post(move |headers, body| online::webhook(online.clone(), webhook_credentials.clone(), headers, body)),
        )
        .route(
            "/broadcasting/auth",
            post(move |headers, form| realtime::broadcasting_auth(auth_state.clone(), auth_hub.clone(), headers, form)),
        )
        .leptos_routes_with_context(&options, routes, move || provide_context(context_state.clone()), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .merge(assets::pkg_router(
            &format!("/{}", options.site_pkg_dir),
            assets::pkg_dir(&options),
            assets::build_hashes(&options),
        ))
        .fallback(leptos_axum::file_and_error_handler(shell).layer(middleware::from_fn(
            |request: Request, next: Next| assets::cache_found(request, next, assets::PUBLIC_FILE),
        )))
        .layer(middleware::from_fn(api_error_status))
        .layer(middleware::map_request(fresh_signed_in_cache))
        .layer(TraceLayer::new_for_http())
        .with_state(options);
    let app = match hub {
        Some(hub) => app.merge(hub.router(pusher_http_api)),
        None => app,
    };
    let app = app.layer(compression());
    // Every request body, `/api/*` forms and the Pusher HTTP API alike, is small: a message is
    // at most 5,000 characters. Larger bodies get 413 before they are read.
    let app = app.layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES));
    // Files have their own, larger limit (and stream to storage as they arrive).
    let app = if state.storage.is_some() { app.merge(files::router(state.clone())) } else { app };
    // Outermost: every answer, refusals included, carries its request id, and every log line
    // written while answering it.
    security::protect(app, &state)
        .layer(middleware::from_fn(telemetry::track))
        .layer(middleware::from_fn(observe::request_id))
}

/// Adds `GET /metrics` when `access` lets anyone read it (see [`telemetry`]).
pub fn with_metrics_endpoint(app: Router, access: telemetry::MetricsAccess, security: Arc<SecurityPolicy>) -> Router {
    if !access.enabled() {
        return app;
    }
    let exposition = telemetry::Exposition::new(access, security);
    app.merge(Router::new().route("/metrics", get(telemetry::expose)).with_state(exposition))
}

/// Pages, JSON, JS, CSS and WASM go brotli- or gzip-compressed to clients that accept it
/// (`Vary: Accept-Encoding`): the WASM is about a quarter of its size on the wire. Not images (already
/// compressed), not bodies under 32 bytes, not WebSocket upgrades. Files people send are served by
/// `files::router`, outside this layer: they go as they were stored.
pub fn compression() -> CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::Predicate as _;
    use tower_http::compression::predicate::DefaultPredicate;
    let not_upgrades =
        |status: StatusCode, _: axum::http::Version, _: &axum::http::HeaderMap, _: &axum::http::Extensions| {
            status != StatusCode::SWITCHING_PROTOCOLS
        };
    CompressionLayer::new().br(true).gzip(true).compress_when(DefaultPredicate::new().and(not_upgrades))
}

/// Every request starts knowing nothing about who is signed in (see `SignedInCache`).
async fn fresh_signed_in_cache(mut request: Request) -> Request {
    request.extensions_mut().insert(app::ssr::SignedInCache::default());
    request
}

async fn healthz(db: DatabaseConnection) -> Response {
    match db.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// Ready for traffic: the database answers and, in cluster mode, this instance is on the Redis bus
/// (a load balancer sends requests elsewhere otherwise). `/healthz` says the process is alive.
async fn readyz(db: DatabaseConnection, hub: Option<pusher::Hub>) -> Response {
    let database = match db.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            "unreachable"
        }
    };
    let mut body = serde_json::json!({ "database": database });
    let mut ready = database == "ok";
    if let Some(stats) = hub.as_ref().and_then(pusher::Hub::cluster_stats) {
        let connected = stats.connected.load(std::sync::atomic::Ordering::Relaxed);
        body["redis"] = (if connected { "ok" } else { "unreachable" }).into();
        ready &= connected;
    }
    body["ready"] = ready.into();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// Server functions answer every error with 500; this gives each `AppError` its own status
/// (`AppError::status`), so `/api/*` speaks plain HTTP to scripts. Form posts without JavaScript
/// are redirects and pass through untouched.
async fn api_error_status(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    if !is_api || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = error.status_code();
        parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The connection the rate limits share through Redis (`REDIS_URL`). Connects lazily and again
/// after any failure; a command that Redis does not answer within half a second counts as failed
/// (the limiter then counts in this instance), so a hung Redis never holds a sign-in or a send.
pub fn shared_limits_redis(url: &config::RedisUrl) -> Result<redis::aio::ConnectionManager, StartupError> {
    let client = redis::Client::open(url.as_str())?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_millis(500)))
        .set_connection_timeout(Some(std::time::Duration::from_millis(500)))
        .set_number_of_retries(1);
    Ok(redis::aio::ConnectionManager::new_lazy_with_config(client, config)?)
}

/// The attachment store the configuration names, opened (the local folder is created).
pub fn open_storage(config: &Config) -> Result<app::ssr::storage::Storage, StartupError> {
    let storage = match &config.storage {
        config::StorageConfig::Local(dir) => app::ssr::storage::Storage::local(dir),
        config::StorageConfig::S3(settings) => app::ssr::storage::Storage::s3(settings),
    }
    .map_err(StartupError::Storage)?;
    tracing::info!(backend = storage.backend(), "attachments: store opened");
    Ok(storage)
}

/// Removes uploads that were never sent, once they are a day old; checks every hour.
pub fn spawn_upload_sweeper(db: DatabaseConnection, storage: app::ssr::storage::Storage) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            match app::ssr::attachments::sweep_unsent(&db, &storage, app::ssr::attachments::ORPHAN_AGE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "attachments: removed uploads never sent"),
                Err(e) => tracing::warn!(error = %e, "attachments: the sweep of unsent uploads failed"),
            }
        }
    });
}

/// Deletes expired sessions once an hour, for as long as the server runs.
pub fn spawn_session_sweeper(db: DatabaseConnection) {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match app::ssr::sessions::purge_expired(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "purged expired sessions"),
                Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
            }
        }
    });
}

/// Checkpoints the SQLite write-ahead log every second, off the request path (requests never do:
/// see `app::ssr::connect`). Nothing to do on PostgreSQL.
pub fn spawn_wal_checkpointer(db: DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    tokio::spawn(async move {
        let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
        every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every_second.tick().await;
            if let Err(e) = app::ssr::checkpoint_sqlite(&db).await {
                tracing::warn!(error = %e, "could not checkpoint the SQLite write-ahead log");
            }
        }
    });
}
