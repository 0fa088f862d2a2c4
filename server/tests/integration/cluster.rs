//! Cluster mode of the embedded Pusher server: several instances on one real Redis behave as one
//! server. Each test names its own app id, so its keys and bus in Redis are its own.
//!
//! Redis: `BANTER_TEST_REDIS_URL`, else the machine's `redis://127.0.0.1:6379`. The outage test
//! starts (and kills) a `redis-server` of its own on a free port.

use crate::sockets;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::sockets::{Client, KEY, SECRET, Server, WAIT, channel};
use serde_json::{Value, json};
use server::pusher::{ClusterSettings, Hub, HubSettings, Occupancy};

fn redis_url() -> String {
    std::env::var("BANTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh app id: the cluster's keys and bus channel in Redis are named after it.
fn cluster_name() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

fn fast(url: &str) -> ClusterSettings {
    ClusterSettings {
        heartbeat: Duration::from_millis(200),
        node_timeout: Duration::from_secs(1),
        ..ClusterSettings::new(url)
    }
}

async fn instances(app_id: &str, settings: HubSettings, url: &str) -> (Server, Server) {
    let a = Server::start_clustered(app_id, settings.clone(), fast(url)).await;
    let b = Server::start_clustered(app_id, settings, fast(url)).await;
    a.until_on_the_bus().await;
    b.until_on_the_bus().await;
    (a, b)
}

fn publish(hub: &Hub, channel_name: &str, event: &'static str, data: Value) {
    hub.publish(&[channel(channel_name)], event, &data.to_string(), None);
}

async fn expect_event(client: &mut Client, event: &str) -> Value {
    let frame = client.next_json().await;
    assert_eq!(frame["event"], event, "{frame}");
    frame
}

#[tokio::test]
async fn events_typing_and_sign_outs_cross_instances() {
    let app_id = cluster_name();
    let (a, b) = instances(&app_id, HubSettings::default(), &redis_url()).await;
    // What the app's session cache hears (server::router): every session that ends, anywhere.
    let ended = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let heard = std::sync::Arc::clone(&ended);
    assert!(a.hub.on_session_ended(move |session| heard.lock().unwrap().push(session.to_owned())));
    assert!(!a.hub.on_session_ended(|_| {}), "one listener per hub");
    let mut ann = a.connect().await;
    let mut bea = b.connect().await;
    ann.subscribe_private("private-chat.1.2").await;
    bea.subscribe_private("private-chat.1.2").await;

    // Published on B (as the app publishes a sent message): both instances' subscribers get it once.
    publish(&b.hub, "private-chat.1.2", "message.sent", json!({"id": 1}));
    assert_eq!(expect_event(&mut ann, "message.sent").await["data"], r#"{"id":1}"#);
    assert_eq!(expect_event(&mut bea, "message.sent").await["data"], r#"{"id":1}"#);

    // Typing (a client event) sent on A reaches B, and is not echoed to the sender.
    ann.send(json!({"event": "client-typing", "channel": "private-chat.1.2", "data": {"typing": true}})).await;
    assert_eq!(
        bea.next_text().await,
        r#"{"event":"client-typing","channel":"private-chat.1.2","data":{"typing":true}}"#
    );
    ann.assert_nothing_pending().await;
    bea.assert_nothing_pending().await;

    // The signed HTTP API of either instance publishes to the whole cluster.
    let body = json!({"name": "message.read", "channels": ["private-chat.1.2"], "data": "{}"}).to_string();
    let credentials = pusher_protocol::Credentials::new(KEY, SECRET);
    let path = format!("/apps/{app_id}/events");
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
    let (status, _) = a.api_signed(&credentials, "POST", &path, &[], &body, now).await;
    assert_eq!(status, 200);
    expect_event(&mut ann, "message.read").await;
    expect_event(&mut bea, "message.read").await;

    // A member removed from a group on B loses the room on A too.
    a.hub.bind(&ann.socket_id(), 1, "session-ann").unwrap();
    // B's bus messages arrive in the order B sent them: the unsubscribe before the next event.
    b.hub.unsubscribe_user(1, &[channel("private-chat.1.2")]);
    publish(&b.hub, "private-chat.1.2", "message.sent", json!({"id": 2}));
    expect_event(&mut bea, "message.sent").await;
    ann.assert_nothing_pending().await;

    // Signing out on B closes the socket that session authorized on A (4009: do not reconnect).
    b.hub.end_session("session-ann");
    assert_eq!(ann.close_code().await, 4009);
    bea.assert_nothing_pending().await;
    // A was told before it closed the socket: its cache no longer trusts that session.
    assert_eq!(*ended.lock().unwrap(), ["session-ann"]);
}

#[tokio::test]
async fn presence_is_one_list_across_instances() {
    let app_id = cluster_name();
    let settings = HubSettings { max_presence_members: 3, ..HubSettings::default() };
    let (a, b) = instances(&app_id, settings, &redis_url()).await;
    let room = "presence-room.7";

    let mut watcher = a.connect().await;
    assert_eq!(watcher.join(room, "9").await["ids"], json!(["9"]));

    // User 2 joins on B: they see the watcher on A, and the watcher is told about them.
    let mut bob_b = b.connect().await;
    let presence = bob_b.join(room, "2").await;
    let mut ids: Vec<String> = serde_json::from_value(presence["ids"].clone()).unwrap();
    ids.sort();
    assert_eq!((ids, presence["count"].clone()), (vec!["2".to_owned(), "9".to_owned()], json!(2)));
    assert_eq!(presence["hash"]["9"], json!({"name": "User 9"}));
    let added = expect_event(&mut watcher, "pusher_internal:member_added").await;
    assert_eq!(added["data"], r#"{"user_id":"2","user_info":{"name":"User 2"}}"#);

    // User 2 opens a second tab, on A: one user, announced once.
    let mut bob_a = a.connect().await;
    assert_eq!(bob_a.join(room, "2").await["count"], 2);
    watcher.assert_nothing_pending().await;
    bob_b.assert_nothing_pending().await;

    // The cluster-wide cap: a third user fits, a fourth is refused on either instance.
    let mut cy = b.connect().await;
    cy.join(room, "3").await;
    expect_event(&mut watcher, "pusher_internal:member_added").await;
    let mut dee = b.connect().await;
    let member = pusher_protocol::PresenceMember::new("4", Some(json!({"name": "User 4"})));
    let channel_data = member.to_channel_data();
    let auth = pusher_protocol::Credentials::new(KEY, SECRET)
        .authorize_channel(&dee.socket_id(), &channel(room), Some(&channel_data))
        .auth;
    dee.send(
        json!({"event": "pusher:subscribe", "data": {"channel": room, "auth": auth, "channel_data": channel_data}}),
    )
    .await;
    assert_eq!(expect_event(&mut dee, "pusher:subscription_error").await["channel"], room);
    drop(cy);
    let removed = expect_event(&mut watcher, "pusher_internal:member_removed").await;
    assert_eq!(removed["data"], r#"{"user_id":"3"}"#);

    // User 2 closes the tab on B: still there through A. Then the last tab: gone, once.
    drop(bob_b);
    // Once B has recorded that tab's leaving (2 subscriptions left: the watcher and the tab on
    // A), any announcement of it would already be on its way.
    let info = [("info", "subscription_count")];
    let expected = json!({"occupied": true, "subscription_count": 2});
    api_until(&b, &format!("/apps/{app_id}/channels/{room}"), &info, expected).await;
    watcher.assert_nothing_pending().await;
    drop(bob_a);
    let removed = expect_event(&mut watcher, "pusher_internal:member_removed").await;
    assert_eq!(removed["data"], r#"{"user_id":"2"}"#);
    watcher.assert_nothing_pending().await;
}

/// A signed `GET` of the Pusher HTTP API at `addr`; the JSON it answers (status 200).
async fn api_get(addr: std::net::SocketAddr, path: &str, params: &[(&str, &str)]) -> Value {
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
    let query = pusher_protocol::Credentials::new(KEY, SECRET).sign_request("GET", path, params, b"", now);
    let response = reqwest::Client::new().get(format!("http://{addr}{path}")).query(&query).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Asks until the answer is `expected` (subscriptions reach Redis in the background, within
/// milliseconds), at most [`WAIT`].
async fn api_until(server: &Server, path: &str, params: &[(&str, &str)], expected: Value) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let answer = api_get(server.addr, path, params).await;
        if answer == expected || std::time::Instant::now() >= deadline {
            assert_eq!(answer, expected, "{path}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The HTTP API of any instance answers occupancy and presence members for the whole cluster.
#[tokio::test]
async fn the_http_api_answers_for_the_whole_cluster() {
    let app_id = cluster_name();
    let (a, b) = instances(&app_id, HubSettings::default(), &redis_url()).await;
    let room = "presence-room.3";
    let mut one = a.connect().await;
    one.join(room, "1").await;
    let mut two = b.connect().await;
    two.join(room, "2").await;
    let mut two_again = b.connect().await;
    two_again.join(room, "2").await;
    let mut lobby = b.connect().await;
    lobby.subscribe_private("private-user.5").await;

    let (channel, users, channels) = (
        format!("/apps/{app_id}/channels/{room}"),
        format!("/apps/{app_id}/channels/{room}/users"),
        format!("/apps/{app_id}/channels"),
    );
    for server in [&a, &b] {
        let info = [("info", "subscription_count,user_count")];
        api_until(server, &channel, &info, json!({"occupied": true, "subscription_count": 3, "user_count": 2})).await;
        api_until(server, &users, &[], json!({"users": [{"id": "1"}, {"id": "2"}]})).await;
        let expected = json!({"channels": {
            "presence-room.3": {"subscription_count": 3},
            "private-user.5": {"subscription_count": 1},
        }});
        api_until(server, &channels, &[("info", "subscription_count")], expected).await;
    }

    drop(one);
    drop(lobby);
    let presence = [("filter_by_prefix", "presence-"), ("info", "user_count")];
    api_until(&a, &channels, &presence, json!({"channels": {"presence-room.3": {"user_count": 1}}})).await;
    api_until(&a, &format!("/apps/{app_id}/channels/private-user.5"), &[], json!({"occupied": false})).await;
}

/// The next occupancy change an instance reports, within [`WAIT`].
async fn next_change(changes: &mut tokio::sync::mpsc::UnboundedReceiver<Occupancy>) -> Occupancy {
    tokio::time::timeout(WAIT, changes.recv()).await.expect("no occupancy change reported").unwrap()
}

/// A channel is reported occupied once, by the instance of its first subscription anywhere, and
/// vacated once, by the instance of its last: what online status rests on.
#[tokio::test]
async fn occupancy_is_reported_once_for_the_whole_cluster() {
    let app_id = cluster_name();
    let (a, b) = instances(&app_id, HubSettings::default(), &redis_url()).await;
    let (mut on_a, mut on_b) = (a.hub.occupancy().unwrap(), b.hub.occupancy().unwrap());
    let user = "private-user.7";
    let mut tab_a = a.connect().await;
    tab_a.subscribe_private(user).await;
    assert_eq!(next_change(&mut on_a).await, Occupancy::Occupied(channel(user)));
    let mut tab_b = b.connect().await;
    tab_b.subscribe_private(user).await;
    let mut tab_b2 = b.connect().await;
    tab_b2.subscribe_private(user).await;
    let path = format!("/apps/{app_id}/channels/{user}");
    let info = [("info", "subscription_count")];
    api_until(&a, &path, &info, json!({"occupied": true, "subscription_count": 3})).await;
    drop(tab_a);
    drop(tab_b);
    api_until(&a, &path, &info, json!({"occupied": true, "subscription_count": 1})).await;
    assert!(on_a.try_recv().is_err() && on_b.try_recv().is_err(), "still occupied through B");
    drop(tab_b2);
    assert_eq!(next_change(&mut on_b).await, Occupancy::Vacated(channel(user)));
    // Occupied again, through B this time.
    let mut again = b.connect().await;
    again.subscribe_private(user).await;
    assert_eq!(next_change(&mut on_b).await, Occupancy::Occupied(channel(user)));
    assert!(on_a.try_recv().is_err());
}

/// An instance that dies without leaving (its runtime dropped: no close, no cleanup) is noticed by
/// its silence, and the users only it held are announced gone to the others.
#[tokio::test]
async fn a_vanished_instance_is_taken_out_of_presence() {
    let app_id = cluster_name();
    let url = redis_url();
    let a = Server::start_clustered(&app_id, HubSettings::default(), fast(&url)).await;
    a.until_on_the_bus().await;
    let mut on_a = a.hub.occupancy().unwrap();
    let room = "presence-room.8";
    let mut watcher = a.connect().await;
    watcher.join(room, "9").await;
    assert_eq!(next_change(&mut on_a).await, Occupancy::Occupied(channel(room)));

    // Instance C runs on a runtime of its own, in its own thread, until it is dropped.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let (c_app, c_url) = (app_id.clone(), url.clone());
    let c_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(async {
            let c = Server::start_clustered(&c_app, HubSettings::default(), fast(&c_url)).await;
            c.until_on_the_bus().await;
            c
        });
        addr_tx.send(server.addr).unwrap();
        crash_rx.recv().unwrap();
        runtime.shutdown_background();
    });
    let c_addr = addr_rx.recv().unwrap();
    let mut ghost = sockets::connect_at(c_addr).await;
    ghost.join(room, "5").await;
    ghost.subscribe_private("private-user.5").await;
    expect_event(&mut watcher, "pusher_internal:member_added").await;
    let path = format!("/apps/{app_id}/channels/private-user.5");
    api_until(&a, &path, &[], json!({"occupied": true})).await;

    crash_tx.send(()).unwrap();
    c_thread.join().unwrap();
    // A notices C's silence within its node timeout (1 s here) plus a heartbeat.
    let removed = expect_event(&mut watcher, "pusher_internal:member_removed").await;
    assert_eq!(removed["data"], r#"{"user_id":"5"}"#);
    watcher.assert_nothing_pending().await;
    // User 5's channel only C held is vacated (the room is still occupied through A).
    assert_eq!(next_change(&mut on_a).await, Occupancy::Vacated(channel("private-user.5")));
    assert!(on_a.try_recv().is_err());
}

/// A `redis-server` of the test's own on a free port, so it can be stopped and started again.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Without Redis each instance carries on alone: sends still reach its own sockets, nothing fails
/// or hangs. When Redis is back, every socket is asked to reconnect (4200) so each browser
/// resubscribes and fetches what it missed, and the cluster is one again.
#[tokio::test]
async fn a_redis_outage_degrades_to_one_instance_and_heals_by_itself() {
    let mut redis = OwnRedis::start();
    let app_id = cluster_name();
    let (a, b) = instances(&app_id, HubSettings::default(), &redis.url()).await;
    let mut ann = a.connect().await;
    let mut bea = b.connect().await;
    ann.subscribe_private("private-user.1").await;
    bea.subscribe_private("private-user.1").await;

    redis.kill();
    // The bus is gone: live events stay on the instance they were published on.
    let stats = a.hub.cluster_stats().unwrap();
    tokio::time::timeout(WAIT, async {
        while stats.connected.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the outage was not noticed");
    let started = std::time::Instant::now();
    publish(&a.hub, "private-user.1", "message.sent", json!({"id": 1}));
    assert!(started.elapsed() < Duration::from_millis(100), "publishing must not wait for Redis");
    expect_event(&mut ann, "message.sent").await;
    ann.assert_nothing_pending().await;

    // Redis is back (empty, as after a restart): both instances ask their sockets to come back.
    redis.restart();
    assert_eq!(ann.close_code().await, 4200);
    assert_eq!(bea.close_code().await, 4200);
    a.until_on_the_bus().await;
    b.until_on_the_bus().await;
    assert!(stats.outages.load(std::sync::atomic::Ordering::Relaxed) >= 1);

    // The reconnected sockets are one cluster again.
    let mut ann = a.connect().await;
    let mut bea = b.connect().await;
    ann.subscribe_private("private-user.1").await;
    bea.subscribe_private("private-user.1").await;
    publish(&a.hub, "private-user.1", "message.sent", json!({"id": 2}));
    assert_eq!(expect_event(&mut bea, "message.sent").await["data"], r#"{"id":2}"#);
    expect_event(&mut ann, "message.sent").await;
}
