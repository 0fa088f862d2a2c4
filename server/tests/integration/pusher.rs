//! The embedded Pusher server over real sockets: WebSocket clients (tokio-tungstenite) and signed
//! HTTP API calls (reqwest) against `Hub::router()` served on a free port. No database involved.

use std::time::Duration;

use crate::sockets::{APP_ID, KEY, SECRET, Server, WAIT, channel, unix_now};
use pusher_protocol::{Credentials, SocketId};
use serde_json::{Value, json};
use server::pusher::HubSettings;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connection_established_carries_a_socket_id_and_the_activity_timeout() {
    let server = Server::with_defaults().await;
    let mut client = server.connect_raw(&format!("/app/{KEY}?protocol=7")).await;
    let text = client.next_text().await;
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(frame.as_object().unwrap().len(), 2, "{text}");
    assert_eq!(frame["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(frame["data"].as_str().expect("data is a JSON string")).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap();
    let (left, right) = socket_id.split_once('.').unwrap();
    assert!(!left.is_empty() && left.bytes().all(|b| b.is_ascii_digit()), "{socket_id}");
    assert!(!right.is_empty() && right.bytes().all(|b| b.is_ascii_digit()), "{socket_id}");
    assert_eq!(data["activity_timeout"], 120);

    let other = server.connect().await;
    assert_ne!(other.socket_id, socket_id);
    assert_eq!(server.hub.connection_count(), 2);
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = Server::with_defaults().await;
    let mut client = server.connect().await;
    client.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(client.next_text().await, r#"{"event":"pusher:pong","data":{}}"#);
}

#[tokio::test]
async fn unknown_key_and_bad_protocol_versions_are_refused_with_their_codes() {
    let server = Server::with_defaults().await;
    let mut client = server.connect_raw("/app/not-our-key?protocol=7").await;
    assert_eq!(
        client.next_text().await,
        r#"{"event":"pusher:error","data":{"message":"Application does not exist","code":4001}}"#
    );
    assert_eq!(client.close_code().await, 4001);
    for (query, code) in [("protocol=6", 4007), ("protocol=seven", 4006), ("client=js", 4008)] {
        let mut client = server.connect_raw(&format!("/app/{KEY}?{query}")).await;
        assert_eq!(client.close_code().await, code, "{query}");
    }
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test]
async fn private_channels_need_a_valid_signature_and_a_forged_one_keeps_the_connection() {
    let server = Server::with_defaults().await;
    let mut client = server.connect().await;
    // Signed for another socket: what a thief replaying someone else's auth would send.
    let stolen = Credentials::new(KEY, SECRET)
        .authorize_channel(&SocketId::parse("1.1").unwrap(), &channel("private-user.1"), None)
        .auth;
    client.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.1", "auth": stolen}})).await;
    assert_eq!(
        client.next_text().await,
        r#"{"event":"pusher:subscription_error","channel":"private-user.1","data":"{\"type\":\"AuthError\",\"error\":\"Invalid signature\",\"status\":401}"}"#
    );
    let forged = Credentials::new(KEY, "guessed-secret")
        .authorize_channel(&client.socket_id(), &channel("private-user.1"), None)
        .auth;
    client.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.1", "auth": forged}})).await;
    assert_eq!(client.next_json().await["event"], "pusher:subscription_error");
    client.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.1"}})).await;
    assert_eq!(client.next_json().await["event"], "pusher:subscription_error");

    client.subscribe_private("private-user.1").await;
    let (status, body) = server.api("GET", &format!("/apps/{APP_ID}/channels/private-user.1"), &[], "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"occupied":true}"#));
}

#[tokio::test]
async fn presence_lists_a_user_once_across_connections() {
    let server = Server::with_defaults().await;
    let room = "presence-room.1";
    let mut watcher = server.connect().await;
    let presence = watcher.join(room, "9").await;
    assert_eq!(presence, json!({"ids": ["9"], "hash": {"9": {"name": "User 9"}}, "count": 1}));

    let mut tab1 = server.connect().await;
    let mut tab2 = server.connect().await;
    let presence = tab1.join(room, "1").await;
    assert_eq!(presence["count"], 2);
    assert_eq!(
        watcher.next_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-room.1","data":"{\"user_id\":\"1\",\"user_info\":{\"name\":\"User 1\"}}"}"#
    );
    let presence = tab2.join(room, "1").await;
    assert_eq!(presence["count"], 2, "one entry per user, however many tabs");
    assert_eq!(presence["ids"], json!(["1", "9"]));
    watcher.assert_nothing_pending().await;
    tab1.assert_nothing_pending().await;

    let (status, body) = server.api("GET", &format!("/apps/{APP_ID}/channels/{room}/users"), &[], "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"users":[{"id":"1"},{"id":"9"}]}"#));
    let info = [("info", "subscription_count,user_count")];
    let (_, body) = server.api("GET", &format!("/apps/{APP_ID}/channels/{room}"), &info, "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"occupied": true, "subscription_count": 3, "user_count": 2})
    );
    let list = [("filter_by_prefix", "presence-"), ("info", "user_count")];
    let (_, body) = server.api("GET", &format!("/apps/{APP_ID}/channels"), &list, "").await;
    assert_eq!(body, r#"{"channels":{"presence-room.1":{"user_count":2}}}"#);

    // The first tab unsubscribes: user 1 is still there through the second.
    tab1.send(json!({"event": "pusher:unsubscribe", "data": {"channel": room}})).await;
    tab1.assert_nothing_pending().await;
    watcher.assert_nothing_pending().await;
    // The second tab disconnects: now user 1 has left.
    drop(tab2);
    assert_eq!(
        watcher.next_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room.1","data":"{\"user_id\":\"1\"}"}"#
    );
    watcher.assert_nothing_pending().await;
}

#[tokio::test]
async fn client_events_reach_the_others_and_are_not_echoed() {
    let server = Server::with_defaults().await;
    let mut ann = server.connect().await;
    let mut bea = server.connect().await;
    ann.subscribe_private("private-chat.1.2").await;
    bea.subscribe_private("private-chat.1.2").await;
    ann.send(json!({"event": "client-typing", "channel": "private-chat.1.2", "data": {"typing": true}})).await;
    assert_eq!(
        bea.next_text().await,
        r#"{"event":"client-typing","channel":"private-chat.1.2","data":{"typing":true}}"#
    );
    ann.assert_nothing_pending().await;

    // On presence channels the server names the sender, whatever it claimed.
    ann.join("presence-room.5", "1").await;
    bea.join("presence-room.5", "2").await;
    assert_eq!(ann.next_json().await["event"], "pusher_internal:member_added");
    bea.send(json!({"event": "client-typing", "channel": "presence-room.5", "data": {}, "user_id": "1"})).await;
    assert_eq!(
        ann.next_text().await,
        r#"{"event":"client-typing","channel":"presence-room.5","data":{},"user_id":"2"}"#
    );
}

#[tokio::test]
async fn the_eleventh_client_event_within_a_second_is_refused_with_4301() {
    let server = Server::with_defaults().await;
    let mut sender = server.connect().await;
    let mut receiver = server.connect().await;
    sender.subscribe_private("private-chat.1.2").await;
    receiver.subscribe_private("private-chat.1.2").await;
    for n in 0..11 {
        sender.send(json!({"event": "client-n", "channel": "private-chat.1.2", "data": n})).await;
    }
    assert_eq!(
        sender.next_text().await,
        r#"{"event":"pusher:error","data":{"message":"Client event rejected due to rate limit","code":4301}}"#
    );
    sender.assert_nothing_pending().await;
    for n in 0..10 {
        assert_eq!(receiver.next_json().await["data"], n);
    }
    receiver.assert_nothing_pending().await;
}

#[tokio::test]
async fn an_oversize_client_event_is_an_error_and_not_relayed() {
    let server = Server::with_defaults().await;
    let mut sender = server.connect().await;
    let mut receiver = server.connect().await;
    sender.subscribe_private("private-chat.1.2").await;
    receiver.subscribe_private("private-chat.1.2").await;
    let big = "x".repeat(11 * 1024);
    sender.send(json!({"event": "client-big", "channel": "private-chat.1.2", "data": big})).await;
    let error = sender.next_json().await;
    assert_eq!(error["event"], "pusher:error");
    assert_eq!(error["data"]["code"], 4300);
    assert!(error["data"]["message"].as_str().unwrap().starts_with("Event data is 11266 bytes"), "{error}");
    receiver.assert_nothing_pending().await;
    sender.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_signed_http_event_is_delivered_and_socket_id_excludes_the_sender() {
    let server = Server::with_defaults().await;
    let mut ann = server.connect().await;
    let mut bea = server.connect().await;
    ann.subscribe_public("lobby").await;
    bea.subscribe_public("lobby").await;

    let body = json!({"name": "hello", "channels": ["lobby", "elsewhere"], "data": "{\"n\":1}"}).to_string();
    let (status, text) = server.api("POST", &format!("/apps/{APP_ID}/events"), &[], &body).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    for client in [&mut ann, &mut bea] {
        assert_eq!(client.next_text().await, r#"{"event":"hello","channel":"lobby","data":"{\"n\":1}"}"#);
    }

    let body = json!({"name": "edited", "channel": "lobby", "data": "2", "socket_id": ann.socket_id}).to_string();
    assert_eq!(server.api("POST", &format!("/apps/{APP_ID}/events"), &[], &body).await.0, 200);
    assert_eq!(bea.next_json().await["event"], "edited");
    ann.assert_nothing_pending().await;

    // The in-process broadcaster honours the exclusion the same way.
    server.hub.publish(&[channel("lobby")], "deleted", "3", Some(&bea.socket_id()));
    assert_eq!(ann.next_text().await, r#"{"event":"deleted","channel":"lobby","data":"3"}"#);
    bea.assert_nothing_pending().await;

    let batch = json!({"batch": [
        {"channel": "lobby", "name": "one", "data": "1"},
        {"channel": "lobby", "name": "two", "data": "2", "socket_id": ann.socket_id},
    ]})
    .to_string();
    let (status, text) = server.api("POST", &format!("/apps/{APP_ID}/batch_events"), &[], &batch).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    assert_eq!(ann.next_json().await["event"], "one");
    ann.assert_nothing_pending().await;
    assert_eq!(bea.next_json().await["event"], "one");
    assert_eq!(bea.next_json().await["event"], "two");
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_big_bodies_are_refused() {
    let server = Server::with_defaults().await;
    let mut listener = server.connect().await;
    listener.subscribe_public("lobby").await;
    let path = format!("/apps/{APP_ID}/events");
    let body = json!({"name": "hello", "channel": "lobby", "data": "{}"}).to_string();

    let impostor = Credentials::new(KEY, "guessed-secret");
    let refused = server.api_signed(&impostor, "POST", &path, &[], &body, unix_now()).await;
    assert_eq!(refused, (401, "Invalid auth_signature".to_owned()));

    let ours = Credentials::new(KEY, SECRET);
    let (status, text) = server.api_signed(&ours, "POST", &path, &[], &body, unix_now() - 700).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("auth_timestamp is 70"), "{text}");

    let other_app = server.api("POST", "/apps/1/events", &[], &body).await;
    assert_eq!(other_app.0, 404);

    let big_data = json!({"name": "hello", "channel": "lobby", "data": "x".repeat(10 * 1024 + 1)}).to_string();
    let (status, text) = server.api("POST", &path, &[], &big_data).await;
    assert_eq!((status, text.as_str()), (413, "Event data is 10241 bytes; at most 10240 are allowed"));
    let huge_body = json!({"name": "hello", "channel": "lobby", "data": "x".repeat(300 * 1024)}).to_string();
    assert_eq!(server.api("POST", &path, &[], &huge_body).await.0, 413);

    let (status, text) = server.api("POST", &path, &[], r#"{"name":"hello","channel":"a b","data":"{}"}"#).await;
    assert_eq!(status, 400);
    assert!(text.starts_with("Invalid channel name"), "{text}");

    listener.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_others_keep_receiving() {
    let server = Server::start(HubSettings { send_queue: 16, ..HubSettings::default() }).await;
    let mut slow = server.connect().await;
    slow.subscribe_public("firehose").await;
    let mut fast = server.connect().await;
    fast.subscribe_public("firehose").await;

    let (received_tx, mut received) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut count = 0;
        while let Some(message) = fast.next().await {
            if let Message::Text(text) = message
                && text.as_str().starts_with(r#"{"event":"tick""#)
            {
                count += 1;
                received_tx.send_replace(count);
            }
        }
    });

    // Publish in rounds smaller than the queue, letting the fast reader catch up after each; the
    // slow one's socket buffers fill, then its queue, and it is dropped.
    let data = "x".repeat(10_000);
    let mut published = 0;
    while server.hub.connection_count() == 2 {
        assert!(published < 50_000, "the slow client was never cut off");
        for _ in 0..8 {
            server.hub.publish(&[channel("firehose")], "tick", &data, None);
            published += 1;
        }
        tokio::time::timeout(WAIT, received.wait_for(|&n| n >= published)).await.unwrap().unwrap();
    }
    assert_eq!(server.hub.connection_count(), 1);

    // The fast client is still served.
    server.hub.publish(&[channel("firehose")], "tick", "last", None);
    published += 1;
    tokio::time::timeout(WAIT, received.wait_for(|&n| n == published)).await.unwrap().unwrap();

    // The slow client finds the connection ended after what was already in flight (with a 4100
    // close frame if it could still be written).
    let mut slow_got = 0;
    let close_code = loop {
        match slow.next().await {
            Some(Message::Text(_)) => slow_got += 1,
            Some(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            None => break None,
            Some(other) => panic!("unexpected {other:?}"),
        }
    };
    assert!(slow_got < published, "slow client got {slow_got} of {published}");
    assert!(matches!(close_code, None | Some(4100)), "{close_code:?}");
    reader.abort();
}

#[tokio::test]
async fn a_client_that_does_not_answer_the_ping_is_closed_with_4201() {
    let settings = HubSettings {
        activity_timeout: Duration::from_millis(300),
        pong_timeout: Duration::from_millis(300),
        ..HubSettings::default()
    };
    let server = Server::start(settings).await;
    let mut client = server.connect().await;
    assert_eq!(client.next_text().await, r#"{"event":"pusher:ping","data":{}}"#);
    let frame = match client.next().await {
        Some(Message::Close(Some(frame))) => frame,
        other => panic!("expected a close frame, got {other:?}"),
    };
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4201, "Pong reply not received in time"));
    assert!(server.hub.wait_until_closed(WAIT).await);
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_4200() {
    let server = Server::with_defaults().await;
    let mut ann = server.connect().await;
    let mut bea = server.connect().await;
    ann.subscribe_public("lobby").await;
    server.hub.shutdown();
    assert_eq!(ann.close_code().await, 4200);
    assert_eq!(bea.close_code().await, 4200);
    assert!(server.hub.wait_until_closed(WAIT).await);
    assert_eq!(server.hub.connection_count(), 0);
    let (status, body) = server.api("GET", &format!("/apps/{APP_ID}/channels"), &[], "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"channels":{}}"#));
}
