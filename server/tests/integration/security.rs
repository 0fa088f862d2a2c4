//! What another site can make a signed-in browser do, over real HTTP against the real server:
//! state-changing requests and WebSocket handshakes from elsewhere are refused with 403; the app's
//! own origin, configured origins and clients that are not browsers pass; every response carries
//! the security headers, and every script on a page carries the nonce its CSP names.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::{Person, TestServer, browser, registration, sign_up, temp_sqlite_url};
use app::ssr::AppState;
use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use server::config::Config;
use server::realtime::Realtime;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

const EVIL: &str = "https://evil.example";

/// A POST as a browser on another page would send it: the form, plus these headers.
async fn post_from(
    client: &Client,
    url: String,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, Value, HeaderMap) {
    let mut request = client.post(url).header("accept", "application/json").form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

/// The page's own origin, as a browser names it in `Origin`.
fn own_origin(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn send_form<'a>(to: &'a str, body: &'a str, client_id: &'a str) -> [(&'static str, &'a str); 3] {
    [("recipient_id", to), ("body", body), ("client_id", client_id)]
}

/// The bodies of the conversation between `person` and `peer`, asked for as a script would.
async fn conversation(server: &TestServer, person: &Person, peer: i64) -> Vec<String> {
    let (status, page, _) =
        post_from(&person.client, server.url("/api/messages"), &[("peer_id", &peer.to_string())], &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect()
}

fn assert_refused(status: StatusCode, body: &Value, headers: &HeaderMap, what: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
    assert_eq!(body, &json!({ "kind": "forbidden", "message": "cross-site request refused" }), "{what}");
    assert_eq!(headers["content-type"], "application/json", "{what}");
}

#[tokio::test]
async fn a_cross_site_send_carrying_the_session_cookie_is_refused_and_stores_nothing() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let to_bob = bob.id.to_string();

    let (status, body, headers) = post_from(
        &alice.client,
        server.url("/api/messages/send"),
        &send_form(&to_bob, "sent by evil.example", "csrf-1"),
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_refused(status, &body, &headers, "cross-site send");

    // An older browser without Fetch Metadata: `Origin` alone decides.
    let (status, body, headers) = post_from(
        &alice.client,
        server.url("/api/messages/send"),
        &send_form(&to_bob, "sent by evil.example", "csrf-2"),
        &[("origin", EVIL)],
    )
    .await;
    assert_refused(status, &body, &headers, "cross-site send without Sec-Fetch-Site");

    assert!(conversation(&server, &alice, bob.id).await.is_empty(), "nothing was stored");
    assert!(conversation(&server, &bob, alice.id).await.is_empty(), "nothing reached Bob");
    server.stop().await;
}

#[tokio::test]
async fn a_sibling_subdomain_is_another_site() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let (status, body, headers) = post_from(
        &alice.client,
        server.url("/api/messages/send"),
        &send_form(&bob.id.to_string(), "from a sibling", "sibling-1"),
        &[("origin", "https://other.example.com"), ("sec-fetch-site", "same-site")],
    )
    .await;
    assert_refused(status, &body, &headers, "same-site sibling");
    assert!(conversation(&server, &alice, bob.id).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn signing_in_or_up_from_another_site_is_refused() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    sign_up(&server, "Alice").await;
    let login = [("email", "alice@example.com"), ("password", "password1")];

    let victim = browser();
    let (status, body, headers) = post_from(
        &victim,
        server.url("/api/auth/login"),
        &login,
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_refused(status, &body, &headers, "cross-site sign-in");
    assert!(headers.get("set-cookie").is_none(), "no session was started");
    let (status, body, headers) = post_from(&victim, server.url("/api/auth/login"), &login, &[("origin", EVIL)]).await;
    assert_refused(status, &body, &headers, "cross-site sign-in without Sec-Fetch-Site");
    let (status, _, _) = post_from(&victim, server.url("/api/me"), &[], &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the victim's browser is not signed in as the attacker");

    let form = registration("Mallory", "mallory@example.com", "password1");
    let (status, body, headers) =
        post_from(&browser(), server.url("/api/auth/register"), &form, &[("origin", EVIL)]).await;
    assert_refused(status, &body, &headers, "cross-site registration");
    server.stop().await;
}

#[tokio::test]
async fn the_own_origin_and_clients_without_origin_pass() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let to_bob = bob.id.to_string();
    let own = own_origin(server.addr);

    let attempts: [(&str, &[(&str, &str)]); 4] = [
        ("fetch from the page", &[("origin", &own), ("sec-fetch-site", "same-origin")]),
        ("older browser, own Origin", &[("origin", &own)]),
        ("typed into the address bar", &[("sec-fetch-site", "none")]),
        ("curl", &[]),
    ];
    for (i, (what, headers)) in attempts.iter().enumerate() {
        let (status, body, _) = post_from(
            &alice.client,
            server.url("/api/messages/send"),
            &send_form(&to_bob, what, &format!("own-{i}")),
            headers,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
    }
    assert_eq!(conversation(&server, &bob, alice.id).await.len(), attempts.len());

    let login = [("email", "alice@example.com"), ("password", "password1")];
    let (status, body, _) = post_from(&browser(), server.url("/api/auth/login"), &login, &[("origin", &own)]).await;
    assert_eq!(status, StatusCode::OK, "sign-in from the page: {body}");
    let (status, body, _) = post_from(&browser(), server.url("/api/auth/login"), &login, &[]).await;
    assert_eq!(status, StatusCode::OK, "sign-in from a script: {body}");
    server.stop().await;
}

#[tokio::test]
async fn an_opaque_or_foreign_origin_is_refused_even_on_the_own_host() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let port = server.addr.port();
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    let https_same_host = format!("https://127.0.0.1:{port}.evil.example");
    for origin in ["null", other_port.as_str(), https_same_host.as_str()] {
        let (status, body, headers) =
            post_from(&alice.client, server.url("/api/auth/logout"), &[], &[("origin", origin)]).await;
        assert_refused(status, &body, &headers, origin);
    }
    let (status, _, _) = post_from(&alice.client, server.url("/api/me"), &[], &[]).await;
    assert_eq!(status, StatusCode::OK, "Alice is still signed in");
    server.stop().await;
}

/// A server as `TestServer` starts one, whose static files come from `site_root`.
async fn start_serving_files(site_root: &std::path::Path) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.site_addr = addr;
    config.database_url = temp_sqlite_url();
    config.data_dir = None;
    let db = server::open_database(&config).await.unwrap();
    let realtime = Realtime::start(&config, &db).await.unwrap();
    let (hub, http_api) = (realtime.hub.clone(), realtime.http_api);
    let state = AppState::with_security(db, realtime.settings, realtime.broadcaster, config.security.clone());
    let mut options = server::leptos_options(addr);
    options.site_root = Arc::from(site_root.to_string_lossy().as_ref());
    let app = server::router(state, options, hub.as_ref(), http_api);
    let limits = config.http;
    tokio::spawn(async move { server::http::serve(listener, app, limits, std::future::pending()).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_configured_origin_may_post_and_open_the_socket() {
    let server = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.security.allowed_origins = vec!["https://chat.example.com".into()];
    })
    .await;
    let (addr, key) = (server.addr, server.credentials.key().to_owned());
    let url = |path: &str| server.url(path);
    let client = browser();
    let form = registration("Ann", "ann@example.com", "password1");
    let (status, body, _) = post_from(
        &client,
        url("/api/auth/register"),
        &form,
        &[("origin", "https://chat.example.com"), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the configured origin: {body}");

    let (status, body, headers) = post_from(
        &client,
        url("/api/auth/logout"),
        &[],
        &[("origin", "https://chat.example.com.evil.example"), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_refused(status, &body, &headers, "an origin that merely starts like the configured one");

    let mut socket =
        open_socket(addr, &key, Some("https://chat.example.com")).await.expect("configured origin connects");
    assert_eq!(first_event(&mut socket).await, "pusher:connection_established");
    let refused = open_socket(addr, &key, Some(EVIL)).await.expect_err("another origin is refused");
    assert_eq!(handshake_status(&refused), Some(403));
    drop(socket);

    let (_, headers, _) = get(&browser(), url("/login")).await;
    let csp = assert_security_headers(&headers, "/login with a configured origin");
    assert!(csp.contains("wss://chat.example.com"), "the configured origin's socket may be opened: {csp}");
    server.stop().await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(addr: SocketAddr, key: &str, origin: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = format!("ws://{addr}/app/{key}?protocol=7&client=test&version=1").into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

fn handshake_status(error: &tungstenite::Error) -> Option<u16> {
    match error {
        tungstenite::Error::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// The `event` of the first frame the server sends.
async fn first_event(socket: &mut Socket) -> String {
    let wait = std::time::Duration::from_secs(5);
    loop {
        let message = tokio::time::timeout(wait, socket.next()).await.expect("a frame within 5 s").unwrap().unwrap();
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            return frame["event"].as_str().unwrap().to_owned();
        }
    }
}

#[tokio::test]
async fn a_websocket_handshake_from_another_site_is_refused() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let key = server.credentials.key().to_owned();

    let refused = open_socket(server.addr, &key, Some(EVIL)).await.expect_err("evil.example is refused");
    assert_eq!(handshake_status(&refused), Some(403), "{refused}");
    let refused = open_socket(server.addr, &key, Some("null")).await.expect_err("an opaque origin is refused");
    assert_eq!(handshake_status(&refused), Some(403), "{refused}");

    let own = own_origin(server.addr);
    let mut page = open_socket(server.addr, &key, Some(&own)).await.expect("the page's own origin connects");
    assert_eq!(first_event(&mut page).await, "pusher:connection_established");
    let mut sdk = open_socket(server.addr, &key, None).await.expect("a client without Origin connects");
    assert_eq!(first_event(&mut sdk).await, "pusher:connection_established");
    drop((page, sdk));
    server.stop().await;
}

/// Asserts the headers every response carries, and returns the CSP.
fn assert_security_headers(headers: &HeaderMap, what: &str) -> String {
    assert_eq!(headers.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{what}");
    assert_eq!(headers.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
    assert_eq!(headers.get("referrer-policy").map(|v| v.to_str().unwrap()), Some("same-origin"), "{what}");
    assert_eq!(headers.get("cross-origin-opener-policy").map(|v| v.to_str().unwrap()), Some("same-origin"), "{what}");
    let csp = headers.get("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    let csp = csp.to_str().unwrap().to_owned();
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "'wasm-unsafe-eval'",
    ] {
        assert!(csp.contains(directive), "{what}: {directive} missing from {csp}");
    }
    assert!(!csp.contains("'unsafe-eval'") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{what}: {csp}");
    csp
}

/// The nonce `script-src` allows.
fn csp_nonce(csp: &str) -> String {
    let start = csp.find("'nonce-").unwrap_or_else(|| panic!("no nonce in {csp}")) + "'nonce-".len();
    let len = csp[start..].find('\'').unwrap();
    csp[start..start + len].to_owned()
}

/// Every `<script` tag in `html` names `nonce`; returns how many there are.
fn assert_scripts_carry(html: &str, nonce: &str, what: &str) -> usize {
    let attribute = format!("nonce=\"{nonce}\"");
    let mut count = 0;
    for (at, _) in html.match_indices("<script") {
        let tag = &html[at..at + html[at..].find('>').unwrap()];
        assert!(tag.contains(&attribute), "{what}: script without the CSP's nonce: {tag}");
        count += 1;
    }
    count
}

async fn get(client: &Client, url: String) -> (StatusCode, HeaderMap, String) {
    let response = client.get(url).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let (status, headers, _) = get(&browser(), server.url("/login")).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers, "/login");

    let (status, _, headers) = post_from(&browser(), server.url("/api/me"), &[], &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_security_headers(&headers, "/api/me");

    let (status, headers, _) = get(&browser(), server.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers, "/healthz");

    let (_, _, headers) = post_from(&browser(), server.url("/api/me"), &[], &[("origin", EVIL)]).await;
    assert_security_headers(&headers, "a refusal");
    server.stop().await;

    // Static files, from a site root of our own.
    let root = std::env::temp_dir().join(format!("banter-site-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let addr = start_serving_files(&root).await;
    let (status, headers, body) = get(&browser(), format!("http://{addr}/favicon.svg")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("<svg"), "the file itself was served: {body}");
    assert_security_headers(&headers, "/favicon.svg");
}

#[tokio::test]
async fn every_script_on_a_page_carries_the_nonce_its_csp_names() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;

    let mut nonces = Vec::new();
    let pages = [
        (browser(), "/login".to_owned(), StatusCode::OK),
        (browser(), "/login".to_owned(), StatusCode::OK),
        (browser(), "/register".to_owned(), StatusCode::OK),
        (browser(), "/no/such/page".to_owned(), StatusCode::NOT_FOUND),
        (alice.client.clone(), "/chat".to_owned(), StatusCode::OK),
        (alice.client.clone(), format!("/chat/{}", bob.id), StatusCode::OK),
    ];
    for (client, path, expected) in pages {
        let (status, headers, html) = get(&client, server.url(&path)).await;
        assert_eq!(status, expected, "{path}: {html}");
        let nonce = csp_nonce(&assert_security_headers(&headers, &path));
        assert!(nonce.len() >= 16, "{path}: a nonce of at least 96 bits, got {nonce}");
        let scripts = assert_scripts_carry(&html, &nonce, &path);
        // The theme script and the hydration script at least.
        assert!(scripts >= 2, "{path}: expected the theme and hydration scripts, found {scripts}");
        assert!(html.contains("banter-theme"), "{path}: the theme script is on the page");
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "each response gets its own nonce");
    server.stop().await;
}
