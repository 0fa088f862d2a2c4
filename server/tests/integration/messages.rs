//! `/api/contacts` and `/api/messages/*` over real HTTP: who may see, mark and send what, and the
//! status codes a script gets back.

use crate::common::{Person, TestServer, browser, post, sign_up, temp_sqlite_url};
use reqwest::StatusCode;
use serde_json::Value;

impl Person {
    async fn send(&self, server: &TestServer, recipient: i64, body: &str, client_id: &str) -> (StatusCode, Value) {
        let recipient = recipient.to_string();
        let form = [("recipient_id", recipient.as_str()), ("body", body), ("client_id", client_id)];
        let (status, json, _) = post(&self.client, server.url("/api/messages/send"), &form).await;
        (status, json)
    }

    /// The default (newest) page of the conversation with `peer`.
    async fn messages(&self, server: &TestServer, peer: i64) -> (StatusCode, Value) {
        let (status, json, _) =
            post(&self.client, server.url("/api/messages"), &[("peer_id", peer.to_string().as_str())]).await;
        (status, json)
    }

    async fn mark_read(&self, server: &TestServer, peer: i64, up_to_id: i64) -> (StatusCode, Value) {
        let (peer, up_to_id) = (peer.to_string(), up_to_id.to_string());
        let form = [("peer_id", peer.as_str()), ("up_to_id", up_to_id.as_str())];
        let (status, json, _) = post(&self.client, server.url("/api/messages/read"), &form).await;
        (status, json)
    }

    /// How many unread messages from `peer` this person's contact list shows.
    async fn unread_from(&self, server: &TestServer, peer: i64) -> i64 {
        let (status, json, _) = post(&self.client, server.url("/api/contacts"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let contact = json["people"].as_array().unwrap().iter().find(|c| c["id"] == peer).unwrap();
        contact["unread"].as_i64().unwrap()
    }
}

fn bodies(page: &Value) -> Vec<&str> {
    page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_third_person_can_neither_read_nor_mark_nor_send_as_someone_else() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let carol = sign_up(&server, "Carol").await;

    let mut last_id = 0;
    for (i, text) in ["secret one", "secret two"].into_iter().enumerate() {
        let (status, json) = bob.send(&server, alice.id, text, &format!("bob-{i}")).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        last_id = json["id"].as_i64().unwrap();
    }
    let (status, _) = alice.send(&server, bob.id, "secret reply", "alice-0").await;
    assert_eq!(status, StatusCode::OK);

    // Carol asking for "the conversation with Alice" gets hers with Alice: empty.
    let (status, page) = carol.messages(&server, alice.id).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["peer"]["id"], alice.id);
    assert!(bodies(&page).is_empty(), "{page}");
    assert_eq!(page["has_more"], false);
    let (_, page) = carol.messages(&server, bob.id).await;
    assert!(bodies(&page).is_empty(), "{page}");

    // Carol cannot mark Bob's messages to Alice as read.
    let (status, changed) = carol.mark_read(&server, bob.id, i64::MAX).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed, 0);
    let (_, changed) = carol.mark_read(&server, alice.id, i64::MAX).await;
    assert_eq!(changed, 0);
    assert_eq!(alice.unread_from(&server, bob.id).await, 2);
    assert_eq!(bob.unread_from(&server, alice.id).await, 1);

    // The sender is always whoever is signed in, whatever the form claims.
    let form = [
        ("recipient_id", bob.id.to_string()),
        ("body", "hi bob".to_owned()),
        ("client_id", "carol-0".to_owned()),
        ("sender_id", alice.id.to_string()),
        ("user_id", alice.id.to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, sent, _) = post(&carol.client, server.url("/api/messages/send"), &form).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["sender_id"], carol.id);
    let (_, page) = bob.messages(&server, carol.id).await;
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{page}");
    assert_eq!((messages[0]["sender_id"].as_i64(), messages[0]["body"].as_str()), (Some(carol.id), Some("hi bob")));
    let (_, page) = bob.messages(&server, alice.id).await;
    assert_eq!(bodies(&page), ["secret one", "secret two", "secret reply"], "nothing from Carol shows up as Alice's");

    // Alice herself can mark them, and then they are read.
    let (_, changed) = alice.mark_read(&server, bob.id, last_id).await;
    assert_eq!(changed, 2);
    assert_eq!(alice.unread_from(&server, bob.id).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn invalid_messages_are_400s_naming_the_body() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;

    let (status, json) = alice.send(&server, bob.id, "  ", "c-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json, serde_json::json!({"kind": "invalid", "field": "body", "message": "a message cannot be empty"}));

    let (status, json) = alice.send(&server, bob.id, &"a".repeat(5001), "c-2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["kind"], "invalid");
    assert_eq!(json["field"], "body");
    assert_eq!(json["message"], "a message has at most 5000 characters (this one has 5001)");

    let (_, page) = bob.messages(&server, alice.id).await;
    assert!(bodies(&page).is_empty(), "nothing refused is stored: {page}");
    server.stop().await;
}

#[tokio::test]
async fn contacts_search_over_http_and_refuse_an_overlong_search() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    sign_up(&server, "Bob").await;
    sign_up(&server, "Roberta").await;

    let (status, json, _) = post(&alice.client, server.url("/api/contacts"), &[("search", "ROB")]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let names: Vec<&str> = json["people"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Roberta"]);

    let long = "x".repeat(101);
    let (status, json, _) = post(&alice.client, server.url("/api/contacts"), &[("search", long.as_str())]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["field"], "search");
    assert_eq!(json["message"], "a search has at most 100 characters");
    server.stop().await;
}

#[tokio::test]
async fn every_message_endpoint_needs_a_session() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let (bob_id, alice_id) = (bob.id.to_string(), alice.id.to_string());
    let calls: [(&str, Vec<(&str, &str)>); 4] = [
        ("/api/contacts", vec![]),
        ("/api/messages", vec![("peer_id", bob_id.as_str())]),
        ("/api/messages/send", vec![("recipient_id", bob_id.as_str()), ("body", "hi"), ("client_id", "c-1")]),
        ("/api/messages/read", vec![("peer_id", alice_id.as_str()), ("up_to_id", "1000")]),
    ];
    for (path, form) in &calls {
        let (status, json, _) = post(&browser(), server.url(path), form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {json}");
        assert_eq!(json, serde_json::json!({"kind": "unauthorized"}), "{path}");
    }
    let (_, page) = bob.messages(&server, alice.id).await;
    assert!(bodies(&page).is_empty(), "the anonymous send stored nothing: {page}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_people_are_404s() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let nobody = alice.id + 1000;

    let (status, json) = alice.send(&server, nobody, "anyone there?", "c-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_eq!(json["kind"], "not_found");

    let (status, json) = alice.messages(&server, nobody).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_eq!(json["kind"], "not_found");
    server.stop().await;
}

#[tokio::test]
async fn the_21st_send_in_a_row_is_429() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    for i in 0..20 {
        let (status, json) = alice.send(&server, bob.id, &format!("message {i}"), &format!("c-{i}")).await;
        assert_eq!(status, StatusCode::OK, "send {i}: {json}");
    }
    let (status, json) = alice.send(&server, bob.id, "one too many", "c-20").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(json["kind"], "rate_limited");
    let message = json["message"].as_str().unwrap();
    assert!(message.starts_with("slow down"), "{message}");
    assert!((1..=10).contains(&json["retry_after_secs"].as_u64().unwrap()), "{json}");

    let (_, page) = bob.messages(&server, alice.id).await;
    assert_eq!(bodies(&page).len(), 20);
    assert!(!bodies(&page).contains(&"one too many"));
    // Bob is not slowed down by Alice.
    let (status, _) = bob.send(&server, alice.id, "easy there", "c-0").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn resending_the_same_client_id_returns_the_same_message() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let client_id = "0b6c2f0e-8a3b-4c1d-9e2f-1a2b3c4d5e6f";

    let (status, first) = alice.send(&server, bob.id, "only once", client_id).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = alice.send(&server, bob.id, "only once", client_id).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again, first);

    let (_, page) = bob.messages(&server, alice.id).await;
    assert_eq!(bodies(&page), ["only once"]);
    assert_eq!(bob.unread_from(&server, alice.id).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn markup_in_a_body_round_trips_unchanged_as_json() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let alice = sign_up(&server, "Alice").await;
    let bob = sign_up(&server, "Bob").await;
    let markup = "<img src=x onerror=alert(1)>";

    let form = [("recipient_id", bob.id.to_string()), ("body", markup.to_owned()), ("client_id", "c-1".to_owned())];
    let response = alice
        .client
        .post(server.url("/api/messages/send"))
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let sent: Value = response.json().await.unwrap();
    assert_eq!(sent["body"], markup);

    let (_, page) = bob.messages(&server, alice.id).await;
    assert_eq!(bodies(&page), [markup]);
    let (status, contacts, _) = post(&bob.client, server.url("/api/contacts"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contacts["people"][0]["last_message"]["body"], markup);
    server.stop().await;
}
