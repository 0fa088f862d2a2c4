//! What operators and load balancers rely on: a readiness probe, a request id on every answer
//! (kept from a proxy's `X-Request-Id` when it is plain, generated otherwise), and the server
//! binary's logs as JSON lines carrying that id when `LOG_FORMAT=json`.

use crate::common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestServer, temp_sqlite_url};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn readiness_and_request_ids() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let client = reqwest::Client::new();

    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let generated = ready.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
    assert_eq!(ready.json::<Value>().await.unwrap(), serde_json::json!({ "ready": true, "database": "ok" }));

    // A proxy's id is kept, on pages, API errors and refusals alike; a strange one is replaced.
    for path in ["/login", "/api/me", "/files/1"] {
        let response = client.get(server.url(path)).header("x-request-id", "edge-42.a:b_c").send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "edge-42.a:b_c", "{path}");
    }
    let response = client.get(server.url("/login")).header("x-request-id", "<script>").send().await.unwrap();
    let replaced = response.headers()["x-request-id"].to_str().unwrap();
    assert!(replaced.len() == 32 && replaced.bytes().all(|b| b.is_ascii_hexdigit()), "{replaced}");
    let second = client.get(server.url("/readyz")).send().await.unwrap();
    assert_ne!(second.headers()["x-request-id"].to_str().unwrap(), generated);
    server.stop().await;
}

/// In cluster mode an instance is ready only while it is on the Redis bus; it still starts, and
/// serves, without Redis.
#[tokio::test]
async fn readiness_includes_redis_in_cluster_mode() {
    let on = TestServer::start_configured(&temp_sqlite_url(), common::clustered(common::test_redis_url())).await;
    on.until_on_the_bus().await;
    let ready = reqwest::get(on.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        serde_json::json!({ "ready": true, "database": "ok", "redis": "ok" })
    );
    on.stop().await;

    // Nothing listens on this port: the instance starts anyway, alive but not ready.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let off =
        TestServer::start_configured(&temp_sqlite_url(), common::clustered(format!("redis://127.0.0.1:{closed}")))
            .await;
    assert_eq!(reqwest::get(off.url("/healthz")).await.unwrap().status(), StatusCode::OK);
    let ready = reqwest::get(off.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        serde_json::json!({ "ready": false, "database": "ok", "redis": "unreachable" })
    );
    off.stop().await;
}

/// `/metrics`: Prometheus text for whoever holds the token or comes from an allowed address,
/// 403 for anyone else, and not there at all unless configured.
#[tokio::test]
async fn metrics_count_what_happened_for_those_allowed_to_read_them() {
    const TOKEN: &str = "metrics-token-0123456789";
    let server = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.metrics.token = Some(TOKEN.to_owned());
    })
    .await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(server.url("/login")).send().await.unwrap().status(), StatusCode::OK);
    let ann = common::sign_up(&server, "Ann").await;
    let ben = common::sign_up(&server, "Ben").await;
    let to = ben.id.to_string();
    let form = [("recipient_id", to.as_str()), ("body", "counted"), ("client_id", "c-metrics-1")];
    let (status, body, _) = common::post(&ann.client, server.url("/api/messages/send"), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let read = |auth: Option<&'static str>| {
        let mut request = client.get(server.url("/metrics"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    assert_eq!(read(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(read(Some("Bearer metrics-token-wrong-guess")).await.unwrap().status(), StatusCode::FORBIDDEN);
    let response = read(Some("Bearer metrics-token-0123456789")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let has = |metric: &str, labels: &[&str]| {
        text.lines().any(|line| line.starts_with(metric) && labels.iter().all(|label| line.contains(label)))
    };
    assert!(has("http_requests_total{", &["route=\"/login\"", "method=\"GET\"", "status=\"200\""]), "{text}");
    assert!(has("http_request_duration_seconds_bucket{", &["route=\"/login\"", "le=\"0.005\""]), "{text}");
    assert!(has("http_requests_total{", &["route=\"/api/messages/send\"", "status=\"200\""]), "{text}");
    assert!(has("banter_messages_sent_total", &[]), "{text}");
    assert!(!text.contains(TOKEN), "the token is not among the metrics");
    server.stop().await;

    // From an allowed address, no token is needed; unconfigured, there is no /metrics at all.
    let allowed = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.metrics.allow = vec![app::ssr::security::IpBlock::parse("127.0.0.1").unwrap()];
    })
    .await;
    assert_eq!(client.get(allowed.url("/metrics")).send().await.unwrap().status(), StatusCode::OK);
    allowed.stop().await;
    let plain = TestServer::start(&temp_sqlite_url()).await;
    assert_eq!(client.get(plain.url("/metrics")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    plain.stop().await;
}

#[tokio::test]
async fn the_binary_logs_json_lines_with_the_request_id() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("banter-logs-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .current_dir(&dir)
        .env_clear()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_OUTPUT_NAME", "banter")
        .env("DATABASE_URL", format!("sqlite://{}/banter.sqlite?mode=rwc", dir.display()))
        .env("UPLOADS_DIR", dir.join("uploads"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < until, "the server did not start");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response =
        client.get(format!("{base}/login?secret=1")).header("x-request-id", "trace-me-7").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}: {out}");

    let lines: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("listening"))), "{out}");
    let answered = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-me-7")
        .unwrap_or_else(|| panic!("no line with the request id: {out}"));
    assert_eq!(answered["message"], "answered");
    assert_eq!((answered["method"].as_str(), answered["path"].as_str()), (Some("GET"), Some("/login")));
    assert_eq!(answered["status"], 200);
    assert_eq!(answered["level"], "INFO");
    // The query (search words, names) is not logged; the probes are not either.
    assert!(!out.contains("secret=1") && !out.contains("/readyz"), "{out}");
}

#[tokio::test]
async fn pages_and_json_go_compressed_and_sent_files_as_stored() {
    use std::io::Read as _;
    let server = TestServer::start(&temp_sqlite_url()).await;
    let client = reqwest::Client::new();

    let page = client.get(server.url("/login")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-encoding"], "gzip");
    assert!(page.headers()["vary"].to_str().unwrap().to_ascii_lowercase().contains("accept-encoding"));
    let zipped = page.bytes().await.unwrap();
    let mut html = String::new();
    flate2::read::GzDecoder::new(&zipped[..]).read_to_string(&mut html).unwrap();
    assert!(html.contains("<html") && html.len() > zipped.len() * 2, "{} -> {}", zipped.len(), html.len());

    // Without Accept-Encoding, as it was.
    let plain = client.get(server.url("/login")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());

    let ann = common::sign_up(&server, "Ann").await;
    let ben = common::sign_up(&server, "Ben").await;
    let json = ann.client.post(server.url("/api/me")).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert_eq!(json.headers()["content-encoding"], "br");
    let mut me = Vec::new();
    brotli::Decompressor::new(&json.bytes().await.unwrap()[..], 4096).read_to_end(&mut me).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&me).unwrap()["name"], "Ann");

    // A sent file goes exactly as stored, whatever the client accepts.
    let text = "a plain text file that would compress well. ".repeat(50);
    let up = ann
        .client
        .post(server.url("/api/uploads"))
        .query(&[("name", "notes.txt")])
        .header("accept", "application/json")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), StatusCode::CREATED);
    let id = up.json::<Value>().await.unwrap()["id"].to_string();
    let form = [
        ("recipient_id", ben.id.to_string()),
        ("body", String::new()),
        ("client_id", "c-1".into()),
        ("attachments[0]", id.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, sent, _) = common::post(&ann.client, server.url("/api/messages/send"), &form).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let file =
        ben.client.get(server.url(&format!("/files/{id}"))).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file.headers().get("content-encoding").is_none());
    assert_eq!(file.text().await.unwrap(), text);
    server.stop().await;
}

#[tokio::test]
async fn the_bundle_goes_precompressed_with_the_caching_its_names_allow() {
    use std::io::Read as _;

    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt as _;

    let dir = std::env::temp_dir().join(format!("banter-pkg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("snippets")).unwrap();
    let wasm: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    std::fs::write(dir.join("banter.Hash_1.wasm"), &wasm).unwrap();
    let snippet = "export function a() { return 1; }\n".repeat(100);
    std::fs::write(dir.join("snippets").join("inline0.js"), &snippet).unwrap();
    let done = server::assets::precompress(&dir).unwrap();
    assert_eq!(done.written, 4);

    let hashed = server::assets::hashed_names("js: Other\nwasm: Hash_1\ncss: Css\n", "banter");
    let app: axum::Router = server::assets::pkg_router("/pkg", dir.clone(), hashed).layer(server::compression());
    let get = |path: &str, encoding: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };

    // Brotli from the file written beside it (not compressed again on the way), immutable.
    let br = get("/pkg/banter.Hash_1.wasm", Some("gzip, deflate, br")).await.unwrap();
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(br.headers()["content-encoding"], "br");
    assert_eq!(br.headers()["content-type"], "application/wasm");
    assert_eq!(br.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(br.headers()["vary"].to_str().unwrap().to_ascii_lowercase().contains("accept-encoding"));
    let body = to_bytes(br.into_body(), usize::MAX).await.unwrap();
    assert_eq!(body, std::fs::read(dir.join("banter.Hash_1.wasm.br")).unwrap());
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut decoded).unwrap();
    assert_eq!(decoded, wasm);

    // Gzip for clients without brotli (Chromium over plain http), the file as it is for the rest.
    let gz = get("/pkg/banter.Hash_1.wasm", Some("gzip")).await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&to_bytes(gz.into_body(), usize::MAX).await.unwrap()[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, wasm);
    let plain = get("/pkg/banter.Hash_1.wasm", None).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(to_bytes(plain.into_body(), usize::MAX).await.unwrap(), wasm);

    // A file whose name does not change with its content is revalidated instead, and a missing
    // one is not cached at all.
    let kept = get("/pkg/snippets/inline0.js", Some("br")).await.unwrap();
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(kept.headers()["cache-control"], "no-cache");
    let missing = get("/pkg/banter.Gone.wasm", Some("br")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().get("cache-control").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
