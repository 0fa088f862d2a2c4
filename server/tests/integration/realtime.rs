//! Real time through the whole server: `/broadcasting/auth`, and messages and read receipts that a
//! send or a read publishes to real WebSocket subscribers, on the embedded Pusher server and through
//! an external one (a second Banter server acting as the Pusher server).

use crate::common;

use std::time::Duration;

use crate::common::{Person, TestServer, browser, post, sign_up, temp_sqlite_url};
use futures_util::{SinkExt, StreamExt};
use pusher_protocol::encryption::{MasterKey, SharedSecret};
use pusher_protocol::{ChannelName, Frame, SocketId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::config::{Encryption, PusherConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long to wait for something that should happen at once.
const SOON: Duration = Duration::from_secs(5);

impl Person {
    async fn auth(&self, server: &TestServer, socket_id: &str, channel: &str) -> (StatusCode, Value) {
        let (status, body, _) = post(
            &self.client,
            server.url("/broadcasting/auth"),
            &[("socket_id", socket_id), ("channel_name", channel)],
        )
        .await;
        (status, body)
    }

    /// Sends through the HTTP API and expects 200; `socket`: the sending tab, which the broadcast skips.
    async fn send_ok(&self, server: &TestServer, to: i64, body: &str, client_id: &str, socket: Option<&str>) -> Value {
        let to = to.to_string();
        let mut form = vec![("recipient_id", to.as_str()), ("body", body), ("client_id", client_id)];
        if let Some(socket) = socket {
            form.push(("socket_id", socket));
        }
        let (status, json, _) = post(&self.client, server.url("/api/messages/send"), &form).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }
}

/// Pusher credentials `app_id` and `key` (the secret is the key's name with `-secret`): alone, a
/// Banter that is its own Pusher server; with `external_port`, one publishing to that server.
fn credentials(app_id: &str, key: &str, external_port: Option<u16>) -> PusherConfig {
    PusherConfig {
        app_id: app_id.into(),
        key: key.into(),
        secret: format!("{}-secret", key.trim_end_matches("-key")),
        host: external_port.map(|_| "127.0.0.1".into()),
        port: external_port,
        scheme: Some("http".into()),
        cluster: None,
    }
}

/// A Pusher connection as a browser tab holds it.
struct Tab {
    socket: Socket,
    socket_id: String,
}

impl Tab {
    async fn open(pusher: &TestServer, key: &str) -> Self {
        let url = format!("ws://{}/app/{key}?protocol=7&client=test&version=1", pusher.addr);
        let (mut socket, _) = connect_async(url).await.expect("websocket connects");
        let Frame::ConnectionEstablished { socket_id, .. } = next_frame(&mut socket).await else {
            panic!("the first frame must be connection_established");
        };
        Self { socket, socket_id: socket_id.to_string() }
    }

    /// Subscribes with an authorization obtained from `app`'s `/broadcasting/auth` as `person`.
    async fn subscribe(&mut self, app: &TestServer, person: &Person, channel: &str) {
        let (status, auth) = person.auth(app, &self.socket_id, channel).await;
        assert_eq!(status, StatusCode::OK, "{auth}");
        let frame = Frame::subscribe(
            ChannelName::parse(channel).unwrap(),
            auth["auth"].as_str().map(str::to_owned),
            auth["channel_data"].as_str().map(str::to_owned),
        );
        self.socket.send(Message::text(frame.to_json())).await.unwrap();
        match self.next().await {
            Frame::SubscriptionSucceeded { channel: c, .. } if c.as_str() == channel => {}
            other => panic!("expected subscription_succeeded for {channel}, got {other:?}"),
        }
    }

    async fn next(&mut self) -> Frame {
        next_frame(&mut self.socket).await
    }

    /// The next application event, skipping presence, ping and online-status traffic.
    async fn next_event(&mut self) -> (String, String, Value) {
        loop {
            if let Frame::Event(event) = self.next().await
                && event.event() != "StatusChanged"
            {
                let data = serde_json::from_str(event.data()).expect("event data is JSON");
                return (event.event().to_owned(), event.channel().as_str().to_owned(), data);
            }
        }
    }

    /// The next online-status event: whose, and whether online.
    async fn next_status(&mut self) -> (i64, bool) {
        loop {
            if let Frame::Event(event) = self.next().await
                && event.event() == "StatusChanged"
            {
                let data: Value = serde_json::from_str(event.data()).unwrap();
                return (data["user_id"].as_i64().unwrap(), data["online"].as_bool().unwrap());
            }
        }
    }

    /// True when no online-status event arrives within a short while.
    async fn hears_no_status(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(500), self.next_status()).await.is_err()
    }

    /// True when no application event arrives within a short while.
    async fn stays_quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(500), self.next_event()).await.is_err()
    }
}

/// The next text frame as it came over the wire, skipping pings.
async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(SOON, socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket stays open")
            .expect("a valid websocket message");
        if let Message::Text(text) = message
            && !text.contains("pusher:ping")
        {
            return text.to_string();
        }
    }
}

async fn next_frame(socket: &mut Socket) -> Frame {
    Frame::parse(&next_text(socket).await).expect("a valid Pusher frame")
}

#[tokio::test]
async fn channel_authorization_follows_the_channel_rules() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let ann = sign_up(&server, "Ann").await;
    let ben = sign_up(&server, "Ben").await;
    let own = format!("private-user.{}", ann.id);

    let (status, body) = ann.auth(&server, "1234.5678", &own).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = server.credentials.authorize_channel(
        &SocketId::parse("1234.5678").unwrap(),
        &ChannelName::parse(&own).unwrap(),
        None,
    );
    assert_eq!(body, json!({ "auth": expected.auth }));

    let (lo, hi) = (ann.id.min(ben.id), ann.id.max(ben.id));
    assert_eq!(ann.auth(&server, "1.2", &format!("private-chat.{lo}.{hi}")).await.0, StatusCode::OK);
    let (status, body) = ann.auth(&server, "1.2", &format!("private-user.{}", ben.id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "you may not subscribe to this channel");
    assert_eq!(ann.auth(&server, "1.2", &format!("private-chat.{hi}.{lo}")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(ann.auth(&server, "1.2", "private-something-else").await.0, StatusCode::FORBIDDEN);

    // Online status rides on user channels now: the old everyone-channel is refused.
    assert_eq!(ann.auth(&server, "1.2", "presence-online").await.0, StatusCode::FORBIDDEN);

    let (status, body) = ann.auth(&server, "12", &own).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "socket_id");
    let (status, _, _) = post(&ann.client, server.url("/broadcasting/auth"), &[("socket_id", "1.2")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "channel_name missing");

    let (status, _, _) =
        post(&browser(), server.url("/broadcasting/auth"), &[("socket_id", "1.2"), ("channel_name", &own)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn a_send_reaches_the_recipient_and_the_senders_other_tabs_at_once() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let key = server.credentials.key().to_owned();
    let ann = sign_up(&server, "Ann").await;
    let ben = sign_up(&server, "Ben").await;

    let mut ben_tab = Tab::open(&server, &key).await;
    ben_tab.subscribe(&server, &ben, &format!("private-user.{}", ben.id)).await;
    let mut ann_sending_tab = Tab::open(&server, &key).await;
    ann_sending_tab.subscribe(&server, &ann, &format!("private-user.{}", ann.id)).await;
    let mut ann_other_tab = Tab::open(&server, &key).await;
    ann_other_tab.subscribe(&server, &ann, &format!("private-user.{}", ann.id)).await;

    let stored = ann
        .send_ok(&server, ben.id, "hello Ben", "5f0c8a4e-2b1d-4c3e-9f00-000000000001", Some(&ann_sending_tab.socket_id))
        .await;

    let (event, channel, data) = ben_tab.next_event().await;
    assert_eq!((event.as_str(), channel), ("NewChatMessage", format!("private-user.{}", ben.id)));
    assert_eq!(data, stored, "the event carries exactly what the send returned");
    let (event, _, data) = ann_other_tab.next_event().await;
    assert_eq!(event, "NewChatMessage");
    assert_eq!(data, stored);
    assert!(ann_sending_tab.stays_quiet().await, "the tab that sent it already has it");

    // Ben reads it: Ann's tabs get the receipt (✓✓), Ben's own tabs too (unread badges).
    let up_to = stored["id"].as_i64().unwrap().to_string();
    let (status, changed, _) = post(
        &ben.client,
        server.url("/api/messages/read"),
        &[("peer_id", ann.id.to_string().as_str()), ("up_to_id", up_to.as_str())],
    )
    .await;
    assert_eq!((status, changed), (StatusCode::OK, json!(1)));
    for tab in [&mut ann_sending_tab, &mut ann_other_tab, &mut ben_tab] {
        let (event, _, data) = tab.next_event().await;
        assert_eq!(event, "MessagesRead");
        assert_eq!(data["reader_id"], ben.id);
        assert_eq!(data["peer_id"], ann.id);
        assert_eq!(data["up_to_id"], stored["id"]);
        assert!(data["read_at"].is_string());
    }

    // Reading again changes nothing and announces nothing.
    let (_, changed, _) = post(
        &ben.client,
        server.url("/api/messages/read"),
        &[("peer_id", ann.id.to_string().as_str()), ("up_to_id", up_to.as_str())],
    )
    .await;
    assert_eq!(changed, json!(0));
    assert!(ann_other_tab.stays_quiet().await);
    server.stop().await;
}

#[tokio::test]
async fn a_forged_or_foreign_authorization_is_refused_by_the_pusher_server() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let key = server.credentials.key().to_owned();
    let ann = sign_up(&server, "Ann").await;
    let ben = sign_up(&server, "Ben").await;
    let mut eve_tab = Tab::open(&server, &key).await;
    // Ann's authorization for her channel, signed for another socket, replayed by this one.
    let (_, auth) = ann.auth(&server, "1.1", &format!("private-user.{}", ann.id)).await;
    let frame = Frame::subscribe(
        ChannelName::parse(&format!("private-user.{}", ann.id)).unwrap(),
        auth["auth"].as_str().map(str::to_owned),
        None,
    );
    eve_tab.socket.send(Message::text(frame.to_json())).await.unwrap();
    assert!(matches!(eve_tab.next().await, Frame::SubscriptionError { .. }));
    ann.send_ok(&server, ben.id, "secret", "5f0c8a4e-2b1d-4c3e-9f00-000000000002", None).await;
    assert!(eve_tab.stays_quiet().await);
    server.stop().await;
}

#[tokio::test]
async fn an_external_pusher_server_carries_the_events_unchanged() {
    // The Pusher server: another Banter, embedded, with known credentials and its own database.
    let pusher = TestServer::start_with(&temp_sqlite_url(), Some(credentials("4242", "external-key", None))).await;
    let app =
        TestServer::start_with(&temp_sqlite_url(), Some(credentials("4242", "external-key", Some(pusher.addr.port()))))
            .await;
    let ann = sign_up(&app, "Ann").await;
    let ben = sign_up(&app, "Ben").await;

    // The page tells the browser where to connect; the secret is not in it.
    let (status, session, _) = post(&ben.client, app.url("/api/session"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        session["realtime"],
        json!({
            "key": "external-key",
            "host": "127.0.0.1",
            "port": pusher.addr.port(),
            "tls": false,
            "cluster": null,
            "channels": "private"
        })
    );
    assert!(!session.to_string().contains("external-secret"));

    let mut ben_tab = Tab::open(&pusher, "external-key").await;
    ben_tab.subscribe(&app, &ben, &format!("private-user.{}", ben.id)).await;
    let stored = ann.send_ok(&app, ben.id, "via the HTTP API", "5f0c8a4e-2b1d-4c3e-9f00-000000000003", None).await;
    let (event, _, data) = ben_tab.next_event().await;
    assert_eq!(event, "NewChatMessage");
    assert_eq!(data, stored);

    // The app server has no Pusher endpoint of its own in this mode.
    let url = format!("ws://{}/app/external-key?protocol=7", app.addr);
    assert!(connect_async(url).await.is_err());
    app.stop().await;
    pusher.stop().await;
}

/// Online status without a presence channel: Ann's user channel becoming occupied makes her
/// online, and the people of her circle who are online hear of it on their own channels; a
/// stranger does not. Her last tab closing makes her offline once the grace is over.
#[tokio::test]
async fn online_status_reaches_the_online_people_of_the_circle() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let key = server.credentials.key().to_owned();
    let ann = sign_up(&server, "Ann").await;
    let ben = sign_up(&server, "Ben").await;
    let eve = sign_up(&server, "Eve").await;
    ann.send_ok(&server, ben.id, "hi Ben", "5f0c8a4e-2b1d-4c3e-9f00-000000000101", None).await;

    let mut ben_tab = Tab::open(&server, &key).await;
    ben_tab.subscribe(&server, &ben, &format!("private-user.{}", ben.id)).await;
    let mut eve_tab = Tab::open(&server, &key).await;
    eve_tab.subscribe(&server, &eve, &format!("private-user.{}", eve.id)).await;
    let mut ann_tab = Tab::open(&server, &key).await;
    ann_tab.subscribe(&server, &ann, &format!("private-user.{}", ann.id)).await;
    assert_eq!(ben_tab.next_status().await, (ann.id, true));
    // Ben came online before her: she learns it from the contact list, not an event.
    let (status, contacts, _) = post(&ann.client, server.url("/api/contacts"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    let ben_row = contacts["people"].as_array().unwrap().iter().find(|c| c["id"] == ben.id).unwrap().clone();
    assert_eq!(ben_row["online"], true, "{contacts}");
    let eve_row = contacts["people"].as_array().unwrap().iter().find(|c| c["id"] == eve.id).unwrap().clone();
    assert_eq!(eve_row["online"], false, "a stranger's status is not Ann's to see: {contacts}");
    // A second tab changes nothing for anyone.
    let mut ann_second = Tab::open(&server, &key).await;
    ann_second.subscribe(&server, &ann, &format!("private-user.{}", ann.id)).await;
    assert!(eve_tab.hears_no_status().await);
    assert!(ben_tab.hears_no_status().await);

    drop(ann_tab);
    drop(ann_second);
    assert_eq!(ben_tab.next_status().await, (ann.id, false));
    assert!(eve_tab.hears_no_status().await);
    server.stop().await;
}

/// With an external Pusher server, its `channel_occupied` / `channel_vacated` webhooks set online
/// status; unsigned, wrongly signed or malformed ones are refused with a specific 4xx.
#[tokio::test]
async fn webhooks_of_an_external_pusher_server_set_online_status() {
    let pusher = TestServer::start_with(&temp_sqlite_url(), Some(credentials("4343", "hooks-key", None))).await;
    let app =
        TestServer::start_with(&temp_sqlite_url(), Some(credentials("4343", "hooks-key", Some(pusher.addr.port()))))
            .await;
    let ann = sign_up(&app, "Ann").await;
    let ben = sign_up(&app, "Ben").await;
    ann.send_ok(&app, ben.id, "hi Ben", "5f0c8a4e-2b1d-4c3e-9f00-000000000102", None).await;
    let mut ben_tab = Tab::open(&pusher, "hooks-key").await;
    ben_tab.subscribe(&app, &ben, &format!("private-user.{}", ben.id)).await;

    let hook = |name: &str, id: i64| {
        json!({"time_ms": chrono::Utc::now().timestamp_millis(), "events": [{"name": name, "channel": format!("private-user.{id}")}]})
            .to_string()
    };
    let signer = pusher_protocol::Credentials::new("hooks-key", "hooks-secret");
    let deliver = |body: String, key: &'static str, signature: Option<String>| {
        let mut request = reqwest::Client::new()
            .post(app.url("/pusher/webhooks"))
            .header("content-type", "application/json")
            .header("x-pusher-key", key);
        if let Some(signature) = signature {
            request = request.header("x-pusher-signature", signature);
        }
        async move {
            let response = request.body(body).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Ben is online only as far as the webhooks say: the app's own records.
    let body = hook("channel_occupied", ben.id);
    assert_eq!(
        deliver(body.clone(), "hooks-key", Some(signer.webhook_signature(body.as_bytes()))).await.0,
        StatusCode::OK
    );

    let body = hook("channel_occupied", ann.id);
    let forged = pusher_protocol::Credentials::new("hooks-key", "guessed").webhook_signature(body.as_bytes());
    let (status, error) = deliver(body.clone(), "hooks-key", Some(forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["message"], "X-Pusher-Signature is missing or does not match the body");
    let (status, error) = deliver(body.clone(), "other-key", Some(signer.webhook_signature(body.as_bytes()))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["message"], "X-Pusher-Key is missing or is not this app's key");
    assert_eq!(deliver(body.clone(), "hooks-key", None).await.0, StatusCode::FORBIDDEN);
    let junk = "[1,2".to_owned();
    let (status, error) = deliver(junk.clone(), "hooks-key", Some(signer.webhook_signature(junk.as_bytes()))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["kind"], "invalid");
    assert!(ben_tab.hears_no_status().await, "nothing refused had an effect");

    let signature = signer.webhook_signature(body.as_bytes());
    assert_eq!(deliver(body, "hooks-key", Some(signature)).await.0, StatusCode::OK);
    assert_eq!(ben_tab.next_status().await, (ann.id, true));
    let body = hook("channel_vacated", ann.id);
    let signature = signer.webhook_signature(body.as_bytes());
    assert_eq!(deliver(body, "hooks-key", Some(signature)).await.0, StatusCode::OK);
    assert_eq!(ben_tab.next_status().await, (ann.id, false));
    app.stop().await;
    pusher.stop().await;
}

#[tokio::test]
async fn generated_credentials_survive_a_restart() {
    let url = temp_sqlite_url();
    let first = TestServer::start(&url).await;
    let (app_id, key) = (first.app_id.clone(), first.credentials.key().to_owned());
    first.stop().await;
    let second = TestServer::start(&url).await;
    assert_eq!((second.app_id.as_str(), second.credentials.key()), (app_id.as_str(), key.as_str()));
    second.stop().await;
}

#[tokio::test]
async fn a_send_succeeds_and_is_stored_when_the_pusher_server_is_down() {
    // Nothing listens on this port: every publish fails.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = PusherConfig {
        app_id: "1".into(),
        key: "k".into(),
        secret: "s".into(),
        host: Some("127.0.0.1".into()),
        port: Some(closed_port),
        scheme: Some("http".into()),
        cluster: None,
    };
    let app = TestServer::start_with(&temp_sqlite_url(), Some(config)).await;
    let ann = sign_up(&app, "Ann").await;
    let ben = sign_up(&app, "Ben").await;
    let stored =
        ann.send_ok(&app, ben.id, "the database is the truth", "5f0c8a4e-2b1d-4c3e-9f00-000000000004", None).await;
    let (status, page, _) =
        post(&ben.client, app.url("/api/messages"), &[("peer_id", ann.id.to_string().as_str())]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"], json!([stored]));
    app.stop().await;
}

/// Posts a form as `person` and returns the status and JSON body.
async fn call(person: &Person, server: &TestServer, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let (status, body, _) = post(&person.client, server.url(path), form).await;
    (status, body)
}

#[tokio::test]
async fn a_group_lives_on_its_channel_and_a_removed_member_stops_receiving_at_once() {
    let server = TestServer::start(&temp_sqlite_url()).await;
    let key = server.credentials.key().to_owned();
    let ann = sign_up(&server, "Ann").await;
    let ben = sign_up(&server, "Ben").await;
    let cat = sign_up(&server, "Cat").await;
    let dan = sign_up(&server, "Dan").await;

    // Ben and Cat follow their user channels: the new group is announced there.
    let mut ben_user = Tab::open(&server, &key).await;
    ben_user.subscribe(&server, &ben, &format!("private-user.{}", ben.id)).await;
    let (ben_id, cat_id) = (ben.id.to_string(), cat.id.to_string());
    let (status, group) = call(
        &ann,
        &server,
        "/api/groups/create",
        &[("name", "Trip"), ("member_ids[]", &ben_id), ("member_ids[]", &cat_id)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["kind"], json!({ "type": "group", "members": 3, "member": true }));
    let room = group["id"].as_i64().unwrap();
    let (event, _, data) = ben_user.next_event().await;
    assert_eq!(event, "GroupChanged");
    assert_eq!(data["room_id"], room);
    assert_eq!(data["line"]["body"], "Ann created the group and added Ben and Cat");

    // Members may subscribe to the group's channels; Dan may not, and learns nothing.
    let channel = format!("private-room.{room}");
    let presence = format!("presence-room.{room}");
    let mut ann_tab = Tab::open(&server, &key).await;
    ann_tab.subscribe(&server, &ann, &channel).await;
    let mut ben_tab = Tab::open(&server, &key).await;
    ben_tab.subscribe(&server, &ben, &channel).await;
    ben_tab.subscribe(&server, &ben, &presence).await;
    let mut cat_tab = Tab::open(&server, &key).await;
    cat_tab.subscribe(&server, &cat, &channel).await;
    for name in [&channel, &presence] {
        let (status, body) = dan.auth(&server, &ann_tab.socket_id, name).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let room_id = room.to_string();
    let (status, _) = call(&dan, &server, "/api/groups/messages", &[("room_id", &room_id)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&ben, &server, "/api/groups/rename", &[("room_id", &room_id), ("name", "Mine")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member who is not an admin");

    // A message reaches every member's tab but the sending one.
    let form = [("room_id", room_id.as_str()), ("body", "see you at 5"), ("client_id", "c-1")];
    let (status, stored) =
        call(&ann, &server, "/api/groups/send", &[&form[..], &[("socket_id", &ann_tab.socket_id)]].concat()).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["sender_name"], "Ann");
    for tab in [&mut ben_tab, &mut cat_tab] {
        let (event, channel_name, data) = tab.next_event().await;
        assert_eq!((event.as_str(), channel_name.as_str()), ("NewChatMessage", channel.as_str()));
        assert_eq!(data, stored);
    }
    assert!(ann_tab.stays_quiet().await);

    // Ben reads it: "Seen by" moves in every member's tab.
    let up_to = stored["id"].to_string();
    let (status, moved) = call(&ben, &server, "/api/groups/read", &[("room_id", &room_id), ("up_to_id", &up_to)]).await;
    assert_eq!((status, moved), (StatusCode::OK, json!(true)));
    let (event, _, data) = ann_tab.next_event().await;
    assert_eq!(event, "MessagesRead");
    assert_eq!((data["reader_id"].as_i64(), data["up_to_id"].clone()), (Some(ben.id), stored["id"].clone()));
    for tab in [&mut ben_tab, &mut cat_tab] {
        assert_eq!(tab.next_event().await.0, "MessagesRead");
    }

    // Ann removes Ben: his open subscriptions end now, and his user channel says why.
    let (status, line) =
        call(&ann, &server, "/api/groups/remove", &[("room_id", &room_id), ("user_id", &ben_id)]).await;
    assert_eq!(status, StatusCode::OK, "{line}");
    assert_eq!(line["body"], "Ann removed Ben");
    let (event, _, data) = ben_user.next_event().await;
    assert_eq!(event, "GroupChanged");
    assert_eq!(data["removed"], json!([ben.id]));
    // Everyone still in the group hears of it on the group's channel (Ben's copy may have gone
    // out before his subscription ended; nothing after it reaches him).
    let (event, _, _) = cat_tab.next_event().await;
    assert_eq!(event, "GroupChanged");
    let _ = tokio::time::timeout(Duration::from_millis(300), ben_tab.next_event()).await;
    let form = [("room_id", room_id.as_str()), ("body", "without Ben"), ("client_id", "c-2")];
    let (status, _) = call(&ann, &server, "/api/groups/send", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cat_tab.next_event().await.2["body"], "without Ben");
    assert!(ben_tab.stays_quiet().await, "a removed member receives nothing more");
    let (status, _) = ben.auth(&server, &ben_tab.socket_id, &channel).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor may subscribe again");
    let (status, _) = call(
        &ben,
        &server,
        "/api/groups/send",
        &[("room_id", room_id.as_str()), ("body", "hey"), ("client_id", "c-3")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // He keeps what he saw.
    let (status, page) = call(&ben, &server, "/api/groups/messages", &[("room_id", &room_id)]).await;
    assert_eq!(status, StatusCode::OK);
    let bodies: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Ann created the group and added Ben and Cat", "see you at 5", "Ann removed Ben"]);
    assert_eq!(page["group"]["member"], false);

    // A rename shows live.
    let (status, _) = call(&ann, &server, "/api/groups/rename", &[("room_id", &room_id), ("name", "Road trip")]).await;
    assert_eq!(status, StatusCode::OK);
    let (event, _, data) = cat_tab.next_event().await;
    assert_eq!((event.as_str(), data["name"].as_str()), ("GroupChanged", Some("Road trip")));
    server.stop().await;
}

/// Subscribes `tab` to `channel` through `app`'s `/broadcasting/auth` and returns the shared secret
/// the auth answer carried.
async fn subscribe_encrypted(tab: &mut Tab, app: &TestServer, person: &Person, channel: &str) -> SharedSecret {
    let (status, auth) = person.auth(app, &tab.socket_id, channel).await;
    assert_eq!(status, StatusCode::OK, "{auth}");
    let secret = SharedSecret::from_base64(auth["shared_secret"].as_str().expect("shared_secret")).unwrap();
    let frame = Frame::subscribe(ChannelName::parse(channel).unwrap(), auth["auth"].as_str().map(str::to_owned), None);
    tab.socket.send(Message::text(frame.to_json())).await.unwrap();
    assert!(matches!(tab.next().await, Frame::SubscriptionSucceeded { .. }));
    secret
}

/// What an encrypted event looks like on the wire: only `nonce` and `ciphertext`, no clear text;
/// it opens with the channel's shared secret to exactly what the send stored.
async fn assert_sealed(tab: &mut Tab, secret: &SharedSecret, channel: &str, stored: &Value, body: &str) {
    let text = next_text(&mut tab.socket).await;
    assert!(!text.contains(body), "clear text on the wire: {text}");
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((frame["event"].as_str(), frame["channel"].as_str()), (Some("NewChatMessage"), Some(channel)));
    let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
    let mut keys: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["ciphertext", "nonce"]);
    let plain: Value = serde_json::from_str(&secret.decrypt(frame["data"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(&plain, stored);
}

#[tokio::test]
async fn encrypted_channels_carry_only_ciphertext_through_the_embedded_and_an_external_server() {
    let key = MasterKey::from_bytes([42; 32]);
    // An external Pusher server that knows nothing of the key, and an app server that has it; and
    // an embedded one with the key.
    let external = TestServer::start_with(&temp_sqlite_url(), Some(credentials("4243", "encrypted-key", None))).await;
    let app = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.pusher = Some(credentials("4243", "encrypted-key", Some(external.addr.port())));
        config.encryption = Encryption::Key(key.clone());
    })
    .await;
    let embedded = TestServer::start_configured(&temp_sqlite_url(), |config| {
        config.encryption = Encryption::Key(key.clone());
    })
    .await;

    for (server, pusher) in [(&embedded, &embedded), (&app, &external)] {
        let ann = sign_up(server, "Ann").await;
        let ben = sign_up(server, "Ben").await;
        let (_, session, _) = post(&ben.client, server.url("/api/session"), &[]).await;
        assert_eq!(session["realtime"]["channels"], "encrypted");
        assert!(!session.to_string().contains(&key.to_base64()), "the master key never reaches the browser");

        let channel = format!("private-encrypted-user.{}", ben.id);
        let mut tab = Tab::open(pusher, pusher.credentials.key()).await;
        // The plain channel carries nothing with encryption on: refused.
        let (status, _) = ben.auth(server, &tab.socket_id, &format!("private-user.{}", ben.id)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = ann.auth(server, &tab.socket_id, &channel).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "not Ann's channel");
        let secret = subscribe_encrypted(&mut tab, server, &ben, &channel).await;

        let body = "the eagle lands at dawn";
        let stored = ann.send_ok(server, ben.id, body, &format!("5f0c8a4e-2b1d-4c3e-9f00-{:012}", ann.id), None).await;
        assert_sealed(&mut tab, &secret, &channel, &stored, body).await;

        // Client events are refused on encrypted channels, as Pusher refuses them.
        let whisper = json!({ "event": "client-typing", "channel": channel, "data": { "name": "Ben" } });
        tab.socket.send(Message::text(whisper.to_string())).await.unwrap();
        match tab.next().await {
            Frame::Error { message, .. } => assert!(message.contains("encrypted"), "{message}"),
            other => panic!("expected pusher:error, got {other:?}"),
        }
    }
    app.stop().await;
    external.stop().await;
    embedded.stop().await;
}

/// Two instances on one database and one Redis (`REDIS_URL`), as behind a load balancer: a send
/// through one reaches sockets held by the other, the sender's own tab excluded wherever it is, and
/// signing out through one cuts the session's socket on the other.
#[tokio::test]
async fn two_instances_on_one_database_and_redis_are_one_banter() {
    let database = temp_sqlite_url();
    let a = TestServer::start_configured(&database, common::clustered(common::test_redis_url())).await;
    let b = TestServer::start_configured(&database, common::clustered(common::test_redis_url())).await;
    assert_eq!((&a.app_id, a.credentials.key()), (&b.app_id, b.credentials.key()), "generated once, in the database");
    a.until_on_the_bus().await;
    b.until_on_the_bus().await;
    let key = a.credentials.key().to_owned();
    let ann = sign_up(&a, "Ann").await;
    let ben = sign_up(&b, "Ben").await;

    let mut ben_tab = Tab::open(&a, &key).await;
    ben_tab.subscribe(&a, &ben, &format!("private-user.{}", ben.id)).await;
    let mut ann_sending_tab = Tab::open(&a, &key).await;
    ann_sending_tab.subscribe(&a, &ann, &format!("private-user.{}", ann.id)).await;
    let mut ann_other_tab = Tab::open(&b, &key).await;
    ann_other_tab.subscribe(&b, &ann, &format!("private-user.{}", ann.id)).await;

    // Ann's tab on A sends through B (the load balancer's choice).
    let stored = ann
        .send_ok(&b, ben.id, "hello across", "5f0c8a4e-2b1d-4c3e-9f00-0000000000c1", Some(&ann_sending_tab.socket_id))
        .await;
    let (event, _, data) = ben_tab.next_event().await;
    assert_eq!((event.as_str(), &data), ("NewChatMessage", &stored));
    let (event, _, data) = ann_other_tab.next_event().await;
    assert_eq!((event.as_str(), &data), ("NewChatMessage", &stored));
    assert!(ann_sending_tab.stays_quiet().await, "the tab that sent it already has it, on whichever instance");

    // Both instances know Ann's session (and remember it: sessions::SessionCache).
    for server in [&a, &b] {
        assert_eq!(common::me_with_cookie(server, &ann.cookie).await, StatusCode::OK);
    }
    // Ann signs out through B: her sockets on A and B close as unauthorized.
    let (status, _, _) = post(&ann.client, b.url("/api/auth/logout"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    for tab in [&mut ann_sending_tab, &mut ann_other_tab] {
        let closed = loop {
            match tokio::time::timeout(SOON, tab.socket.next()).await.expect("closed within 5 s") {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(closed, Some(4009));
    }
    // A closed its socket when the bus told it, and forgot the session then too: a copy of her
    // cookie is refused by both (the test servers trust a session for an hour otherwise).
    for server in [&a, &b] {
        assert_eq!(common::me_with_cookie(server, &ann.cookie).await, StatusCode::UNAUTHORIZED);
    }
    a.stop().await;
    b.stop().await;
}
