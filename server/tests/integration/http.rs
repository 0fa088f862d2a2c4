//! The real server on a free port, driven over HTTP like a script or a browser would.

use crate::common::{TestServer, browser, me_with_cookie, post, registration, sign_up, temp_sqlite_url};
use reqwest::StatusCode;

#[tokio::test]
async fn register_me_logout_me() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let client = browser();

    let (status, body, headers) =
        post(&client, server.url("/api/auth/register"), &registration("Alice", "Alice@Example.com", "wonderland"))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Alice");
    assert_eq!(body["email"], "alice@example.com");
    assert!(body.get("password_hash").is_none());
    let cookie = headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.starts_with("banter_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http must not get a Secure cookie: {cookie}");

    let (status, body, _) = post(&client, server.url("/api/me"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "alice@example.com");

    let (status, _, _) = post(&client, server.url("/api/auth/logout"), &[]).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body, _) = post(&client, server.url("/api/me"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["kind"], "unauthorized");
    server.stop().await;
}

/// With the embedded Pusher server and with an external one (then there is no hub to hear of the
/// sign-out: the request that signs out makes its instance forget the session itself).
#[tokio::test]
async fn a_stolen_cookie_stops_working_after_logout() {
    let external = server::config::PusherConfig {
        app_id: "77".into(),
        key: "stolen-key".into(),
        secret: "stolen-secret".into(),
        host: Some("127.0.0.1".into()),
        // Nothing is published here: the test sends no message.
        port: Some(9),
        scheme: Some("http".into()),
        cluster: None,
    };
    for pusher in [None, Some(external)] {
        let server = TestServer::start_with(&temp_sqlite_url(), pusher).await;
        let client = browser();
        let (_, _, headers) =
            post(&client, server.url("/api/auth/register"), &registration("Bob", "bob@example.com", "builder123"))
                .await;
        let cookie = headers.get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
        // Used once before: the server remembers the session (sessions::SessionCache).
        assert_eq!(me_with_cookie(&server, &cookie).await, StatusCode::OK);

        post(&client, server.url("/api/auth/logout"), &[]).await;
        let replay = me_with_cookie(&server, &cookie).await;
        assert_eq!(replay, StatusCode::UNAUTHORIZED, "logout must invalidate the session server-side");
        server.stop().await;
    }
}

#[tokio::test]
async fn duplicate_email_is_a_400_with_a_message() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    post(&browser(), server.url("/api/auth/register"), &registration("Carol", "carol@example.com", "password1")).await;
    let (status, body, _) =
        post(&browser(), server.url("/api/auth/register"), &registration("Carol 2", "CAROL@example.com", "password2"))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        serde_json::json!({"kind": "invalid", "field": "email", "message": "this email is already registered"})
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_and_invalid_input_are_400s() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    // A field missing entirely never reaches the function: still a 400, not a 500.
    let (status, body, _) = post(&browser(), server.url("/api/auth/register"), &[("name", "X")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["kind"], "invalid");

    let (status, body, _) =
        post(&browser(), server.url("/api/auth/register"), &registration("Dan", "dan@example.com", "short")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "password");
    assert_eq!(body["message"], "a password needs at least 8 characters");
    server.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    post(&browser(), server.url("/api/auth/register"), &registration("Eve", "eve@example.com", "password1")).await;
    let attempt = [("email", "eve@example.com"), ("password", "wrong-guess")];
    for _ in 0..5 {
        let (status, body, _) = post(&browser(), server.url("/api/auth/login"), &attempt).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "email or password is wrong");
    }
    let (status, body, _) =
        post(&browser(), server.url("/api/auth/login"), &[("email", "eve@example.com"), ("password", "password1")])
            .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["kind"], "rate_limited");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("too many failed sign-ins: try again in "), "{message}");
    assert!(body["retry_after_secs"].as_u64().unwrap() > 0);
    server.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_server_restart() {
    let database = temp_sqlite_url();
    let client = browser();
    let first = TestServer::start(&database).await;
    post(&client, first.url("/api/auth/register"), &registration("Fay", "fay@example.com", "password1")).await;
    first.stop().await;

    let second = TestServer::start(&database).await;
    // Same cookie jar, new process-level state: only the database remembers the session.
    let jar_cookie = client.post(second.url("/api/me")).send().await.unwrap();
    assert_eq!(jar_cookie.status(), StatusCode::OK);
    second.stop().await;
}

#[tokio::test]
async fn healthz_and_pages() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Signed out, `/` and `/chat` redirect to the sign-in page before any HTML is sent.
    for path in ["/", "/chat"] {
        let response = browser().get(server.url(path)).header("accept", "text/html").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        assert_eq!(response.headers()["location"], "/login", "{path}");
    }
    let login = browser().get(server.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let html = login.text().await.unwrap();
    assert!(
        html.contains("<form") && html.contains("action=\"/api/auth/login\""),
        "the sign-in form must work without JS"
    );

    let missing = browser().get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn the_chat_page_carries_its_contact_list_and_conversation_once() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let ann = sign_up(&server, "Ann").await;
    let bob = sign_up(&server, "Bob").await;
    let to_ann = ann.id.to_string();
    let form = [("recipient_id", to_ann.as_str()), ("body", "hello ann"), ("client_id", "page-once-1")];
    let (status, body, _) = post(&bob.client, server.url("/api/messages/send"), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let page = ann.client.get(server.url(&format!("/chat/{}", bob.id))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<p class=\"body\">hello ann"), "the message is drawn by the server");
    // The data the browser hydrates from, serialized as JSON strings in the page: each once (the
    // shell was once drawn twice on the server, loading and sending both again).
    for (what, key) in [("contact list", r#"\"people\":["#), ("conversation", r#"\"messages\":["#)] {
        assert_eq!(html.matches(key).count(), 1, "the page carries its {what} once");
    }
    server.stop().await;
}
