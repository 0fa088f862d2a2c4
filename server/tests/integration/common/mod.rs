//! The HTTP test harness shared by the integration tests: the real server on a free port, and
//! clients that keep cookies like a browser.
// Each test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use app::ssr::AppState;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use server::config::{Config, PusherConfig};
use server::realtime::Realtime;
use tokio::sync::oneshot;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct TestServer {
    base: String,
    pub addr: SocketAddr,
    pub app_id: String,
    pub credentials: pusher_protocol::Credentials,
    hub: Option<server::pusher::Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, None).await
    }

    /// A server with these Pusher settings (`None`: the embedded server, generated credentials).
    pub async fn start_with(database_url: &str, pusher: Option<PusherConfig>) -> Self {
        Self::start_configured(database_url, |config| config.pusher = pusher).await
    }

    /// A server with the defaults a bare environment gives, changed by `configure`.
    pub async fn start_configured(database_url: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mut config = Config::from_lookup(|_| None).unwrap();
        config.site_addr = addr;
        config.database_url = database_url.to_owned();
        config.data_dir = None;
        let uploads = std::env::temp_dir().join(format!("banter-uploads-{}", rand::random::<u64>()));
        config.storage = server::config::StorageConfig::Local(uploads);
        configure(&mut config);
        let storage = server::open_storage(&config).unwrap();
        let db = server::open_database(&config).await.unwrap();
        let realtime = Realtime::start(&config, &db).await.unwrap();
        let hub = realtime.hub.clone();
        let http_api = realtime.http_api;
        let (app_id, credentials) = (realtime.settings.app_id.clone(), realtime.settings.credentials.clone());
        let mut state = AppState::with_security(db, realtime.settings, realtime.broadcaster, config.security.clone())
            .with_storage(storage);
        if let Some(url) = &config.redis_url {
            state = state.with_shared_limits(&server::shared_limits_redis(url).unwrap());
        }
        // Sessions trusted for an hour, not seconds: a sign-out the cache is not told about fails
        // a test here instead of passing once the TTL is over.
        state.sessions = std::sync::Arc::new(app::ssr::sessions::SessionCache::new(HOUR, 10_000));
        let security = std::sync::Arc::clone(&state.security);
        let app = server::router(state, server::leptos_options(addr), hub.as_ref(), http_api);
        let app = server::with_metrics_endpoint(app, config.metrics.clone(), security);
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = config.http;
        let task = tokio::spawn(async move {
            server::http::serve(listener, app, limits, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self { base: format!("http://{addr}"), addr, app_id, credentials, hub, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The embedded Pusher server, when this server is its own.
    pub fn hub(&self) -> Option<&server::pusher::Hub> {
        self.hub.as_ref()
    }

    /// Waits until this instance is on its cluster's Redis bus (`REDIS_URL`).
    pub async fn until_on_the_bus(&self) {
        let stats = self.hub().and_then(server::pusher::Hub::cluster_stats).expect("a clustered server");
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !stats.connected.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("never joined the cluster bus");
    }

    pub async fn stop(mut self) {
        if let Some(hub) = &self.hub {
            hub.shutdown();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// The attachment stores tests run on: a fresh folder, and an S3 bucket when
/// `BANTER_TEST_S3_ENDPOINT` names an S3-compatible server (scripts/test.sh starts moto and sets
/// it; with `BANTER_TEST_REQUIRE_S3` set, as there, a missing endpoint fails the test).
pub fn storages() -> Vec<server::config::StorageConfig> {
    let local = std::env::temp_dir().join(format!("banter-uploads-{}", rand::random::<u64>()));
    let mut all = vec![server::config::StorageConfig::Local(local)];
    match std::env::var("BANTER_TEST_S3_ENDPOINT") {
        Ok(endpoint) => all.push(server::config::StorageConfig::S3(app::ssr::storage::S3Settings {
            bucket: "banter-test".into(),
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            path_style: true,
        })),
        Err(_) if std::env::var_os("BANTER_TEST_REQUIRE_S3").is_some() => {
            panic!("BANTER_TEST_REQUIRE_S3 is set but BANTER_TEST_S3_ENDPOINT is not")
        }
        Err(_) => {}
    }
    all
}

/// A throw-away SQLite file that outlives one server instance (for restart tests).
/// The Redis the cluster tests share: `BANTER_TEST_REDIS_URL`, else the machine's on 6379.
pub fn test_redis_url() -> String {
    std::env::var("BANTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A `start_configured` change: cluster mode on the Redis at `url`.
pub fn clustered(url: String) -> impl Fn(&mut Config) {
    move |config| config.redis_url = Some(server::config::RedisUrl::parse(&url).unwrap())
}

pub fn temp_sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("banter-http-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}/banter.sqlite?mode=rwc", dir.display())
}

pub fn browser() -> Client {
    Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub async fn post(
    client: &Client,
    url: String,
    form: &[(&str, &str)],
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let response = client.post(url).header("accept", "application/json").form(form).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}

/// `POST /api/me` with `cookie` alone (no cookie jar): the status it gets.
pub async fn me_with_cookie(server: &TestServer, cookie: &str) -> StatusCode {
    let request =
        Client::new().post(server.url("/api/me")).header("cookie", cookie).header("accept", "application/json");
    request.send().await.unwrap().status()
}

pub fn registration<'a>(name: &'a str, email: &'a str, password: &'a str) -> [(&'static str, &'a str); 4] {
    [("name", name), ("email", email), ("password", password), ("password_confirmation", password)]
}

/// A registered person with their own cookie jar.
pub struct Person {
    pub client: Client,
    pub id: i64,
    /// A copy of their session cookie (`name=value`), as someone who kept one could replay it.
    pub cookie: String,
}

pub async fn sign_up(server: &TestServer, name: &str) -> Person {
    let client = browser();
    let email = format!("{}@example.com", name.to_lowercase());
    let (status, body, headers) =
        post(&client, server.url("/api/auth/register"), &registration(name, &email, "password1")).await;
    assert_eq!(status, StatusCode::OK, "registering {name}: {body}");
    let cookie = headers.get("set-cookie").and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next());
    Person { client, id: body["id"].as_i64().unwrap(), cookie: cookie.expect("a session cookie").to_owned() }
}
