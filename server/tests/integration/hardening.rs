//! Abuse the server as an attacker would, over real HTTP and WebSocket connections: sign-in
//! guesses in parallel, megabyte inputs, sign-up floods, socket and channel floods, over-size
//! frames, a socket that outlives its sign-out, a half-sent request, forged proxy headers, more
//! connections than the server allows.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{TestServer, browser, post, registration, sign_up, temp_sqlite_url};
use futures_util::{SinkExt, StreamExt};
use pusher_protocol::{ChannelName, SocketId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upper bound for anything that should happen at once.
const SOON: Duration = Duration::from_secs(10);

async fn open_socket(server: &TestServer) -> (Socket, String) {
    let key = server.credentials.key().to_owned();
    let url = format!("ws://{}/app/{key}?protocol=7&client=test&version=1", server.addr);
    let (mut socket, _) = connect_async(url).await.expect("websocket connects");
    let established = next_json(&mut socket).await;
    assert_eq!(established["event"], "pusher:connection_established", "{established}");
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    (socket, data["socket_id"].as_str().unwrap().to_owned())
}

/// The next text frame as JSON; panics on a close or after [`SOON`].
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(SOON, socket.next()).await.expect("a frame in time").expect("open");
        match message.expect("a websocket message") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the server closes; returns the close code (`None`: closed without a close frame).
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(SOON, socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

async fn subscribe(socket: &mut Socket, channel: &str, auth: Option<String>) -> Value {
    let mut data = json!({ "channel": channel });
    if let Some(auth) = auth {
        data["auth"] = json!(auth);
    }
    socket.send(Message::text(json!({"event": "pusher:subscribe", "data": data}).to_string())).await.unwrap();
    next_json(socket).await
}

fn self_signed(server: &TestServer, socket_id: &str, channel: &str) -> String {
    let socket_id = SocketId::parse(socket_id).unwrap();
    server.credentials.authorize_channel(&socket_id, &ChannelName::parse(channel).unwrap(), None).auth
}

#[tokio::test]
async fn parallel_sign_in_guesses_cannot_race_the_limit() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    sign_up(&server, "Alice").await;
    let guesses = (0..40).map(|i| {
        let url = server.url("/api/auth/login");
        async move {
            let client = browser();
            let password = format!("guess-{i:03}");
            post(&client, url, &[("email", "alice@example.com"), ("password", &password)]).await.0
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");

    // The right password is refused too now: the account is locked for the window.
    let (status, body, _) =
        post(&browser(), server.url("/api/auth/login"), &[("email", "alice@example.com"), ("password", "password1")])
            .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn megabyte_sign_in_fields_are_refused_as_too_long() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let huge = "a".repeat(1 << 20);
    let email = format!("{huge}@example.com");
    let (status, body, _) =
        post(&browser(), server.url("/api/auth/login"), &[("email", &email), ("password", &huge)]).await;
    // Over the body limit as a whole: refused before anything reads it.
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let long_email = format!("{}@example.com", "a".repeat(300));
    let (status, body, _) =
        post(&browser(), server.url("/api/auth/login"), &[("email", &long_email), ("password", "password1")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"kind": "invalid", "field": "email", "message": "that email address is too long"}));
    server.stop().await;
}

#[tokio::test]
async fn sign_ups_from_one_address_are_limited() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let client = browser();
    let url = server.url("/api/auth/register");
    for i in 0..10 {
        let email = format!("person{i}@example.com");
        let (status, body, _) = post(&client, url.clone(), &registration("Person", &email, "password1")).await;
        assert_eq!(status, StatusCode::OK, "sign-up {i}: {body}");
    }
    let (status, body, _) = post(&client, url, &registration("Person", "eleven@example.com", "password1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["kind"], "rate_limited");
    assert!(body["message"].as_str().unwrap().starts_with("too many sign-ups from your network"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn the_socket_server_bounds_what_one_client_can_make_it_hold() {
    let server = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.sockets.connections_per_address = 3;
        config.sockets.channels_per_connection = 5;
    })
    .await;

    // No public channels unless configured: an anonymous socket cannot subscribe to anything.
    let (mut socket, socket_id) = open_socket(&server).await;
    let refused = subscribe(&mut socket, "lobby-1", None).await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    assert_eq!(
        refused["data"].as_str().unwrap(),
        r#"{"type":"PusherError","error":"Public channels are not enabled on this server","status":403}"#
    );

    // At most 5 channels per connection, even with valid signatures.
    for i in 0..5 {
        let channel = format!("private-user.{i}");
        let auth = self_signed(&server, &socket_id, &channel);
        assert_eq!(
            subscribe(&mut socket, &channel, Some(auth)).await["event"],
            "pusher_internal:subscription_succeeded"
        );
    }
    let auth = self_signed(&server, &socket_id, "private-user.5");
    let sixth = subscribe(&mut socket, "private-user.5", Some(auth)).await;
    assert_eq!(sixth["event"], "pusher:subscription_error");
    assert!(sixth["data"].as_str().unwrap().contains("at most 5 channels"), "{sixth}");

    // At most 3 connections per address: the 4th is told why and closed with 4100 (retry later).
    let (_b, _) = open_socket(&server).await;
    let (_c, _) = open_socket(&server).await;
    let key = server.credentials.key().to_owned();
    let (mut fourth, _) = connect_async(format!("ws://{}/app/{key}?protocol=7", server.addr)).await.expect("upgrades");
    let error = next_json(&mut fourth).await;
    assert_eq!(error["event"], "pusher:error");
    assert_eq!(error["data"]["code"], 4100);
    assert_eq!(close_code(&mut fourth).await, Some(4100));
    server.stop().await;
}

#[tokio::test]
async fn an_oversize_frame_gets_a_pusher_error_and_a_pusher_close_code() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let (mut socket, _) = open_socket(&server).await;
    let big = json!({"event": "pusher:ping", "data": "x".repeat(100 * 1024)}).to_string();
    socket.send(Message::text(big)).await.unwrap();
    let error = next_json(&mut socket).await;
    assert_eq!(error["event"], "pusher:error", "{error}");
    assert_eq!(error["data"]["code"], 4100);
    assert_eq!(error["data"]["message"], "Message is over the 65536-byte limit");
    assert_eq!(close_code(&mut socket).await, Some(4100));
    server.stop().await;
}

#[tokio::test]
async fn signing_out_cuts_the_live_feed_of_that_session() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let ann = sign_up(&server, "Ann").await;
    let ben = sign_up(&server, "Ben").await;
    let (mut socket, socket_id) = open_socket(&server).await;
    let channel = format!("private-user.{}", ann.id);
    let (status, auth, _) = post(
        &ann.client,
        server.url("/broadcasting/auth"),
        &[("socket_id", socket_id.as_str()), ("channel_name", channel.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{auth}");
    let subscribed = subscribe(&mut socket, &channel, auth["auth"].as_str().map(str::to_owned)).await;
    assert_eq!(subscribed["event"], "pusher_internal:subscription_succeeded");

    let (status, _, _) = post(&ann.client, server.url("/api/auth/logout"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    // Closed as unauthorized (4009: a client does not come back with the same credentials).
    assert_eq!(close_code(&mut socket).await, Some(4009));

    // And the message sent to her afterwards is stored, but went to no socket of that session.
    let to = ann.id.to_string();
    let (status, body, _) = post(
        &ben.client,
        server.url("/api/messages/send"),
        &[("recipient_id", to.as_str()), ("body", "still there?"), ("client_id", "c-after-logout")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn one_user_holds_a_bounded_number_of_live_connections() {
    let server =
        TestServer::start_configured(&temp_sqlite_url(), |config| config.sockets.connections_per_user = 2).await;
    let ann = sign_up(&server, "Ann").await;
    let channel = format!("private-user.{}", ann.id);
    let mut sockets = Vec::new();
    for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
        let (socket, socket_id) = open_socket(&server).await;
        let (status, body, _) = post(
            &ann.client,
            server.url("/broadcasting/auth"),
            &[("socket_id", socket_id.as_str()), ("channel_name", channel.as_str())],
        )
        .await;
        assert_eq!(status, expected, "{body}");
        sockets.push(socket);
    }
    server.stop().await;
}

/// Sends half a request line and headers, then nothing; returns once the server hangs up.
async fn half_request(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await?;
    let mut buf = [0u8; 1024];
    loop {
        if stream.read(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_half_way_through_its_headers_is_hung_up_on() {
    let server = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.http.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let hung_up = tokio::time::timeout(SOON, half_request(server.addr)).await;
    assert!(hung_up.is_ok(), "the half-open request was still open after {SOON:?}");
    server.stop().await;
}

#[tokio::test]
async fn open_websockets_count_against_the_connection_limit_until_they_close() {
    let server = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.http.max_connections = 2;
    })
    .await;
    let (first, _) = open_socket(&server).await;
    let (_second, _) = open_socket(&server).await;
    // A third connection waits in the kernel's queue: the two sockets hold both turns, though the
    // HTTP requests that opened them were answered long ago.
    let url = server.url("/login");
    let mut third = tokio::spawn(async move { browser().get(url).send().await.map(|r| r.status()) });
    let waited = tokio::time::timeout(Duration::from_secs(1), &mut third).await;
    assert!(waited.is_err(), "a third connection was served while two WebSockets were open: {waited:?}");
    drop(first);
    let status = tokio::time::timeout(SOON, third).await.expect("served once a socket closed").unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn forwarded_headers_count_only_from_a_trusted_proxy() {
    let limit = app::ssr::security::Limit::new(2, 900);
    // Not configured: X-Forwarded-For is whatever the client says, so it is ignored.
    let direct = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.security.limits.sign_ins_per_address = limit;
    })
    .await;
    let guess = |server: &TestServer, forwarded_for: &'static str, email: &'static str| {
        let request = browser()
            .post(server.url("/api/auth/login"))
            .header("accept", "application/json")
            .header("x-forwarded-for", forwarded_for)
            .form(&[("email", email), ("password", "not-the-one")]);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(guess(&direct, "203.0.113.1", "a@example.com").await, StatusCode::BAD_REQUEST);
    assert_eq!(guess(&direct, "203.0.113.2", "b@example.com").await, StatusCode::BAD_REQUEST);
    assert_eq!(guess(&direct, "203.0.113.3", "c@example.com").await, StatusCode::TOO_MANY_REQUESTS);
    direct.stop().await;

    // Behind a trusted proxy (here: this machine), each client has its own allowance.
    let proxied = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.security.limits.sign_ins_per_address = limit;
        config.security.trusted_proxies = vec![app::ssr::security::IpBlock::parse("127.0.0.1").unwrap()];
    })
    .await;
    assert_eq!(guess(&proxied, "203.0.113.1", "a@example.com").await, StatusCode::BAD_REQUEST);
    assert_eq!(guess(&proxied, "203.0.113.1", "b@example.com").await, StatusCode::BAD_REQUEST);
    assert_eq!(guess(&proxied, "203.0.113.1", "c@example.com").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(guess(&proxied, "203.0.113.2", "d@example.com").await, StatusCode::BAD_REQUEST, "another client");
    proxied.stop().await;
}

#[tokio::test]
async fn the_secure_cookie_flag_follows_the_setting_and_trusted_proxies_only() {
    let cookie_of = |headers: &reqwest::header::HeaderMap| {
        headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let register = |server: &TestServer, email: &'static str, proto: Option<&'static str>| {
        let mut request = browser().post(server.url("/api/auth/register")).header("accept", "application/json");
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let request = request.form(&registration("Dee", email, "password1"));
        async move { request.send().await.unwrap() }
    };

    let plain = TestServer::start(&temp_sqlite_url()).await;
    let response = register(&plain, "a@example.com", Some("https")).await;
    let cookie = cookie_of(response.headers());
    assert!(cookie.starts_with("banter_session=") && !cookie.contains("Secure"), "untrusted proto ignored: {cookie}");
    plain.stop().await;

    let proxied = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.security.trusted_proxies = vec![app::ssr::security::IpBlock::parse("127.0.0.0/8").unwrap()];
    })
    .await;
    let cookie = cookie_of(register(&proxied, "b@example.com", Some("https")).await.headers());
    assert!(cookie.starts_with("__Host-banter_session=") && cookie.contains("; Secure"), "{cookie}");
    proxied.stop().await;

    let always = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.security.cookie_secure = app::ssr::security::CookieSecure::Always;
    })
    .await;
    let cookie = cookie_of(register(&always, "c@example.com", None).await.headers());
    assert!(cookie.contains("; Secure"), "{cookie}");
    always.stop().await;
}

#[tokio::test]
async fn the_pusher_http_api_is_mounted_only_when_something_needs_it() {
    let generated = TestServer::start(&temp_sqlite_url()).await;
    let path = format!("/apps/{}/channels", generated.app_id);
    let status = reqwest::get(generated.url(&path)).await.unwrap().status();
    assert_eq!(status, StatusCode::NOT_FOUND, "generated credentials: nobody else can publish, no API");
    generated.stop().await;

    let configured = TestServer::start_with(
        &temp_sqlite_url(),
        Some(server::config::PusherConfig {
            app_id: "77".into(),
            key: "key-77".into(),
            secret: "secret-77".into(),
            host: None,
            port: None,
            scheme: None,
            cluster: None,
        }),
    )
    .await;
    let status = reqwest::get(configured.url("/apps/77/channels")).await.unwrap().status();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "mounted: an unsigned request is refused by the API itself");
    configured.stop().await;
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let ann = sign_up(&server, "Ann").await;
    let body = "x".repeat(server::BODY_LIMIT_BYTES + 1);
    let (status, _, _) = post(
        &ann.client,
        server.url("/api/messages/send"),
        &[("recipient_id", "1"), ("body", body.as_str()), ("client_id", "c-big")],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    server.stop().await;
}

/// Two instances on one database and one Redis: the limits hold across them, so spreading requests
/// over instances buys nothing.
#[tokio::test]
async fn rate_limits_hold_across_instances() {
    let database = temp_sqlite_url();
    let a = TestServer::start_configured(&database, common::clustered(common::test_redis_url())).await;
    let b = TestServer::start_configured(&database, common::clustered(common::test_redis_url())).await;
    let ann = sign_up(&a, "Ann").await;
    let ben = sign_up(&b, "Ben").await;

    // 20 sends in 10 s per user: 10 through each instance, then the 21st is refused on either.
    let to = ben.id.to_string();
    for i in 0..20 {
        let server = if i % 2 == 0 { &a } else { &b };
        let client_id = format!("c-{i}");
        let form = [("recipient_id", to.as_str()), ("body", "hi"), ("client_id", client_id.as_str())];
        let (status, body, _) = post(&ann.client, server.url("/api/messages/send"), &form).await;
        assert_eq!(status, StatusCode::OK, "send {i}: {body}");
    }
    for server in [&a, &b] {
        let form = [("recipient_id", to.as_str()), ("body", "one too many"), ("client_id", "c-20")];
        let (status, body, _) = post(&ann.client, server.url("/api/messages/send"), &form).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(body["message"].as_str().unwrap().starts_with("slow down"), "{body}");
    }

    // 5 wrong passwords per account in 15 minutes, spread over both; then even the right one waits.
    post(&browser(), a.url("/api/auth/register"), &registration("Eve", "eve@example.com", "password1")).await;
    let attempt = [("email", "eve@example.com"), ("password", "wrong-guess")];
    for i in 0..5 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, _, _) = post(&browser(), server.url("/api/auth/login"), &attempt).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "attempt {i}");
    }
    let right = [("email", "eve@example.com"), ("password", "password1")];
    let (status, body, _) = post(&browser(), b.url("/api/auth/login"), &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["retry_after_secs"].as_u64().unwrap() > 0);
    a.stop().await;
    b.stop().await;
}
