//! What operators and load balancers rely on: a readiness probe, a request id on every answer
//! (kept from a proxy's `X-Request-Id` when it is plain, generated otherwise), and the server
//! binary's logs as JSON lines carrying that id when `LOG_FORMAT=json`.

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, temp_sqlite_url};
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
