//! The WebSocket and Pusher HTTP API harness shared by the socket tests: the embedded server
//! (`Hub::router()`) on a free port, clients that speak protocol 7 (tokio-tungstenite), and
//! requests signed as the official server SDKs sign them (reqwest).
// Each test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use futures_util::{SinkExt, StreamExt};
use pusher_protocol::{ChannelName, Credentials, PresenceMember, SocketId};
use serde_json::{Value, json};
use server::pusher::{ClusterSettings, Hub, HubSettings};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const APP_ID: &str = "4242";
pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";
/// Upper bound for anything the tests wait for; conditions usually hold within milliseconds.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub addr: SocketAddr,
    pub hub: Hub,
}

impl Server {
    /// The protocol as Pusher speaks it: public channels on, and the HTTP API mounted.
    pub async fn start(settings: HubSettings) -> Self {
        let settings = HubSettings { public_channels: true, ..settings };
        Self::serve(Hub::new(APP_ID, Credentials::new(KEY, SECRET), settings)).await
    }

    /// One instance of a cluster sharing the Redis in `cluster`; `app_id` names the cluster's keys
    /// and bus there, so tests running at once do not meet.
    pub async fn start_clustered(app_id: &str, settings: HubSettings, cluster: ClusterSettings) -> Self {
        let settings = HubSettings { public_channels: true, ..settings };
        let hub = Hub::new(app_id, Credentials::new(KEY, SECRET), settings);
        hub.join_cluster(cluster).unwrap();
        Self::serve(hub).await
    }

    /// Waits until this instance is subscribed to the cluster bus.
    pub async fn until_on_the_bus(&self) {
        let stats = self.hub.cluster_stats().expect("a clustered server");
        tokio::time::timeout(WAIT, async {
            while !stats.connected.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("never joined the cluster bus");
    }

    /// Serves `hub`'s sockets and HTTP API on a free port.
    pub async fn serve(hub: Hub) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().merge(hub.router(true));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hub }
    }

    pub async fn with_defaults() -> Self {
        Self::start(HubSettings::default()).await
    }

    pub async fn connect(&self) -> Client {
        connect_at(self.addr).await
    }

    pub async fn connect_raw(&self, path: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr)).await.unwrap();
        Client { ws, socket_id: String::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request signed as the official server SDKs sign it.
    pub async fn api(&self, method: &str, path: &str, params: &[(&str, &str)], body: &str) -> (u16, String) {
        self.api_signed(&Credentials::new(KEY, SECRET), method, path, params, body, unix_now()).await
    }

    pub async fn api_signed(
        &self,
        credentials: &Credentials,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
        timestamp: i64,
    ) -> (u16, String) {
        let query = credentials.sign_request(method, path, params, body.as_bytes(), timestamp);
        let request = reqwest::Client::new()
            .request(method.parse().unwrap(), self.url(path))
            .query(&query)
            .header("content-type", "application/json")
            .body(body.to_owned());
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// A client connected to the server at `addr`, past `pusher:connection_established`.
pub async fn connect_at(addr: SocketAddr) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/app/{KEY}?protocol=7&client=js&version=8.6.0"))
        .await
        .unwrap();
    let mut client = Client { ws, socket_id: String::new() };
    let established = client.next_json().await;
    assert_eq!(established["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
    client
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
}

impl Client {
    pub fn socket_id(&self) -> SocketId {
        SocketId::parse(&self.socket_id).unwrap()
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// The next message that is not a WebSocket-level ping/pong.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("timed out waiting for a frame");
            match message {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Some(Message::Text(text)) => serde_json::from_str(text.as_str()).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    pub async fn next_text(&mut self) -> String {
        match self.next().await {
            Some(Message::Text(text)) => text.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Reads until the server's close frame and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.next().await {
                Some(Message::Close(Some(frame))) => return frame.code.into(),
                Some(Message::Text(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Proves nothing else was queued for this client: a ping's pong is the very next frame.
    pub async fn assert_nothing_pending(&mut self) {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let next = self.next_json().await;
        assert_eq!(next["event"], "pusher:pong", "unexpected frame {next}");
    }

    pub async fn subscribe_public(&mut self, name: &str) {
        self.send(json!({"event": "pusher:subscribe", "data": {"channel": name}})).await;
        self.expect_subscribed(name).await;
    }

    pub async fn subscribe_private(&mut self, name: &str) {
        let auth = Credentials::new(KEY, SECRET).authorize_channel(&self.socket_id(), &channel(name), None).auth;
        self.send(json!({"event": "pusher:subscribe", "data": {"channel": name, "auth": auth}})).await;
        self.expect_subscribed(name).await;
    }

    /// Joins a presence channel as `user_id`; returns the `presence` member list it was given.
    pub async fn join(&mut self, name: &str, user_id: &str) -> Value {
        let member = PresenceMember::new(user_id, Some(json!({ "name": format!("User {user_id}") })));
        let channel_data = member.to_channel_data();
        let authorization =
            Credentials::new(KEY, SECRET).authorize_channel(&self.socket_id(), &channel(name), Some(&channel_data));
        self.send(json!({"event": "pusher:subscribe", "data": {
            "channel": name, "auth": authorization.auth, "channel_data": channel_data,
        }}))
        .await;
        let succeeded = self.expect_subscribed(name).await;
        serde_json::from_str::<Value>(succeeded["data"].as_str().unwrap()).unwrap()["presence"].clone()
    }

    pub async fn expect_subscribed(&mut self, name: &str) -> Value {
        let frame = self.next_json().await;
        assert_eq!(frame["event"], "pusher_internal:subscription_succeeded", "{frame}");
        assert_eq!(frame["channel"], name);
        frame
    }
}
