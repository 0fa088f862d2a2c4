//! The `server` binary: `server` serves Banter; `server demo-accounts` creates the demo accounts;
//! `server seed-corpus` loads a large synthetic corpus for measuring search.

mod seed;

use std::process::ExitCode;

use app::ssr::AppState;
use server::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: server-side rendering allocates a lot of small
/// strings (glibc's malloc was 15 % of the server's CPU under load), and glibc kept the 19 MiB
/// buffers of finished password hashes (500 sign-ups left the process at 348 MiB). The workspace
/// builds it with `override`, so C code (the bundled SQLite) allocates through it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Transparent huge pages: every time the allocator hands memory back and takes it again, the
    // kernel zeroes a whole 2 MiB page on the next touch. Under load that was a quarter of the
    // server's CPU (perf: clear_page_erms under vma_alloc_anon_folio_pmd); 4 KiB pages it zeroes
    // only as they are used.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    serve()
}

#[tokio::main]
async fn serve() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("banter: .env: {e}");
        return ExitCode::from(2);
    }
    let format = match server::observe::LogFormat::parse(std::env::var("LOG_FORMAT").ok().as_deref()) {
        Ok(format) => format,
        Err(e) => return fail(e),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    server::observe::init_logging(format, filter);

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    let db = match server::open_database(&config).await {
        Ok(db) => db,
        Err(e) => return fail(e),
    };

    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("demo-accounts") => {
            return match server::demo::create_demo_accounts(&db).await {
                Ok(created) => {
                    for (name, email) in server::demo::DEMO_ACCOUNTS {
                        let state = if created.contains(&email) { "created" } else { "exists" };
                        println!("{name:<6} {email:<20} password: {}  ({state})", server::demo::DEMO_PASSWORD);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("demo accounts: {e}")),
            };
        }
        Some("seed-corpus") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let corpus = match seed::Corpus::from_args(&args) {
                Ok(corpus) => corpus,
                Err(e) => return fail(format!("seed-corpus: {e}")),
            };
            return match seed::seed_corpus(&db, corpus).await {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("seed-corpus: {e}")),
            };
        }
        Some(other) => {
            return fail(format!("unknown command {other:?}; use `serve`, `demo-accounts` or `seed-corpus`"));
        }
    }

    let listener = match tokio::net::TcpListener::bind(config.site_addr).await {
        Ok(listener) => listener,
        Err(source) => return fail(server::StartupError::Listen { addr: config.site_addr, source }),
    };
    let realtime = match server::realtime::Realtime::start(&config, &db).await {
        Ok(realtime) => realtime,
        Err(e) => return fail(e),
    };
    server::spawn_session_sweeper(db.clone());
    server::spawn_wal_checkpointer(db.clone());
    let hub = realtime.hub.clone();
    let http_api = realtime.http_api;
    let encrypted = realtime.settings.encryption.is_some();
    let storage = match server::open_storage(&config) {
        Ok(storage) => storage,
        Err(e) => return fail(e),
    };
    server::spawn_upload_sweeper(db.clone(), storage.clone());
    let mut state = AppState::with_security(db, realtime.settings, realtime.broadcaster, config.security.clone())
        .with_storage(storage);
    if let Some(url) = &config.redis_url {
        match server::shared_limits_redis(url) {
            Ok(redis) => state = state.with_shared_limits(&redis),
            Err(e) => return fail(e),
        }
        tracing::info!("rate limits: shared with the other instances through Redis");
    }
    let options = server::leptos_options(config.site_addr);
    server::assets::spawn_precompress(&options);
    let security = std::sync::Arc::clone(&state.security);
    let app = server::router(state, options, hub.as_ref(), http_api);
    let app = server::with_metrics_endpoint(app, config.metrics.clone(), security);
    server::telemetry::spawn_upkeep();
    match &hub {
        Some(_) => tracing::info!("realtime: embedded Pusher server at ws://{}/app/<key>", config.site_addr),
        None => tracing::info!("realtime: publishing to an external Pusher-compatible server"),
    }
    if encrypted {
        tracing::info!("realtime: end-to-end encrypted channels (private-encrypted-user/room) on");
    }
    tracing::info!("Banter is listening on http://{}", config.site_addr);
    let shutdown = async move {
        shutdown_signal().await;
        // WebSockets outlive graceful shutdown; closing them with 4200 sends clients straight back.
        if let Some(hub) = hub {
            hub.shutdown();
            hub.wait_until_closed(std::time::Duration::from_secs(3)).await;
        }
    };
    if let Err(e) = server::http::serve(listener, app, config.http, shutdown).await {
        return fail(format!("server error: {e}"));
    }
    ExitCode::SUCCESS
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("banter: {message}");
    ExitCode::from(2)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
