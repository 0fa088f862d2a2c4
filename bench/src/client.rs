//! Banter's HTTP API and a minimal Pusher WebSocket client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use pusher_protocol::encryption::SharedSecret;
use pusher_protocol::{ChannelName, Credentials, Frame, SocketId, Subscribe};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<TcpStream>;
pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn err(msg: impl Into<String>) -> Error {
    msg.into().into()
}

/// A 503 from the server: the request waited for a turn or ran past `REQUEST_TIMEOUT_SECS`, so
/// the server was past its capacity; a scenario counts these apart from failures to send.
#[derive(Debug)]
pub struct Busy(pub String);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: HTTP 503, the server is busy", self.0)
    }
}

impl std::error::Error for Busy {}

/// Whether `e` is a request that broke before an answer came (the connection refused, reset or
/// timed out), which a browser would send again, rather than an answer it did not like.
pub fn broke_on_the_way(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<reqwest::Error>().is_some_and(|e| e.is_connect() || e.is_timeout() || e.is_request())
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .expect("reqwest client")
}

/// A registered user with its session cookie (`banter_session=...`).
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub cookie: String,
}

#[derive(Deserialize)]
struct IdOnly {
    id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoredMessage {
    pub id: i64,
    pub recipient_id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoredGroupMessage {
    pub id: i64,
    pub room_id: Option<i64>,
}

pub async fn register(http: &reqwest::Client, base: &str, tag: &str) -> Result<User, Error> {
    let email = format!("{tag}@bench.example");
    let form = [
        ("name", tag),
        ("email", &email),
        ("password", "bench-password-1"),
        ("password_confirmation", "bench-password-1"),
    ];
    let resp =
        http.post(format!("{base}/api/auth/register")).header("accept", "application/json").form(&form).send().await?;
    session(resp, &format!("register {tag}")).await
}

/// Signs in an existing account (`POST /api/auth/login`).
pub async fn sign_in(http: &reqwest::Client, base: &str, email: &str, password: &str) -> Result<User, Error> {
    let form = [("email", email), ("password", password)];
    let resp =
        http.post(format!("{base}/api/auth/login")).header("accept", "application/json").form(&form).send().await?;
    session(resp, &format!("sign in {email}")).await
}

/// The user a sign-up or sign-in answered with, and the session cookie it set.
async fn session(resp: reqwest::Response, what: &str) -> Result<User, Error> {
    let status = resp.status();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("banter_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let text = resp.text().await?;
    if !status.is_success() {
        return Err(err(format!("{what}: HTTP {status}: {text}")));
    }
    let id: IdOnly = serde_json::from_str(&text).map_err(|e| err(format!("{what}: {e}: {text}")))?;
    let cookie = cookie.ok_or_else(|| err(format!("{what}: no banter_session cookie")))?;
    Ok(User { id: id.id, cookie })
}

/// Signs up `count` users named `{prefix}{i}`, 16 at a time over `clients`; sorted by id.
pub async fn register_many(
    clients: &[reqwest::Client],
    base: &str,
    prefix: &str,
    count: usize,
) -> Result<Vec<User>, Error> {
    let mut users: Vec<User> = Vec::with_capacity(count);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while users.len() < count {
        while next < count && pending.len() < 16 {
            let http = clients[next % clients.len()].clone();
            let tag = format!("{prefix}{next}");
            pending.push(async move { register(&http, base, &tag).await });
            next += 1;
        }
        match pending.next().await {
            Some(u) => users.push(u?),
            None => break,
        }
    }
    users.sort_by_key(|u| u.id);
    Ok(users)
}

/// Opens one socket per user, 32 at a time, from source addresses 127.0.0.1–200 in turn, each
/// subscribed to `channel_of(user)` with its auth from `/broadcasting/auth` (the user's session),
/// user `i` on instance `ctx.at(i)`. `ready(index into users, socket id, socket, shared secret)`
/// gets each socket as soon as it is subscribed, with the channel's shared secret when it is an
/// encrypted one.
pub async fn subscribe_users(
    ctx: &crate::Ctx,
    clients: &[reqwest::Client],
    users: &[User],
    channel_of: impl Fn(&User) -> String,
    mut ready: impl FnMut(usize, SocketId, Ws, Option<SharedSecret>),
) -> Result<usize, Error> {
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let mut connected = 0;
    while connected < users.len() {
        while next < users.len() && pending.len() < 32 {
            let user = &users[next];
            let http = &clients[next % clients.len()];
            let channel = channel_of(user);
            let source = (next % 200) as u8 + 1;
            let index = next;
            let (base, target) = ctx.at(next);
            pending.push(async move {
                let (mut ws, socket_id) = ws_connect(target, Some(source)).await?;
                let answer = broadcasting_auth(http, base, user, socket_id.as_str(), &channel).await?;
                subscribe(&mut ws, &channel, Some(answer.auth)).await?;
                let secret = answer.shared_secret.map(|k| SharedSecret::from_base64(&k)).transpose()?;
                Ok::<_, Error>((index, socket_id, ws, secret))
            });
            next += 1;
        }
        let Some(done) = pending.next().await else { break };
        let (index, socket_id, ws, secret) = done?;
        ready(index, socket_id, ws, secret);
        connected += 1;
    }
    Ok(connected)
}

/// POSTs `form` to `path` with `user`'s session and reads the JSON answer; `Ok(None)` on 429
/// (rate limited).
pub async fn post_as<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    user: &User,
    form: &[(&str, &str)],
) -> Result<Option<T>, Error> {
    let resp = http
        .post(format!("{base}{path}"))
        .header("accept", "application/json")
        .header("cookie", &user.cookie)
        .form(form)
        .send()
        .await?;
    let status = resp.status();
    if status.as_u16() == 429 {
        return Ok(None);
    }
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Err(Box::new(Busy(path.to_owned())));
    }
    let text = resp.text().await?;
    if !status.is_success() {
        return Err(err(format!("{path}: HTTP {status}: {text}")));
    }
    Ok(Some(serde_json::from_str(&text).map_err(|e| err(format!("{path}: {e}: {text}")))?))
}

/// `Ok(None)` on 429 (rate limited).
pub async fn send_message(
    http: &reqwest::Client,
    base: &str,
    from: &User,
    to: i64,
    body: &str,
    client_id: &str,
    socket_id: Option<&str>,
) -> Result<Option<StoredMessage>, Error> {
    let to = to.to_string();
    let mut form = vec![("recipient_id", to.as_str()), ("body", body), ("client_id", client_id)];
    if let Some(s) = socket_id {
        form.push(("socket_id", s));
    }
    post_as(http, base, "/api/messages/send", from, &form).await
}

/// `POST /api/groups/create`: a group of `creator` and `member_ids`; returns its room id.
pub async fn create_group(
    http: &reqwest::Client,
    base: &str,
    creator: &User,
    name: &str,
    member_ids: &[i64],
) -> Result<i64, Error> {
    let ids: Vec<String> = member_ids.iter().map(i64::to_string).collect();
    let form: Vec<(&str, &str)> =
        std::iter::once(("name", name)).chain(ids.iter().map(|id| ("member_ids[]", id.as_str()))).collect();
    let group: Option<IdOnly> = post_as(http, base, "/api/groups/create", creator, &form).await?;
    Ok(group.ok_or_else(|| err("/api/groups/create: HTTP 429"))?.id)
}

/// `POST /api/groups/send`; `Ok(None)` on 429 (rate limited).
pub async fn send_to_group(
    http: &reqwest::Client,
    base: &str,
    from: &User,
    room_id: i64,
    body: &str,
    client_id: &str,
    socket_id: Option<&str>,
) -> Result<Option<StoredGroupMessage>, Error> {
    let room = room_id.to_string();
    let mut form = vec![("room_id", room.as_str()), ("body", body), ("client_id", client_id)];
    if let Some(s) = socket_id {
        form.push(("socket_id", s));
    }
    post_as(http, base, "/api/groups/send", from, &form).await
}

/// `/broadcasting/auth`'s answer: the signature, and an encrypted channel's shared secret.
#[derive(Deserialize)]
pub struct AuthAnswer {
    pub auth: String,
    #[serde(default)]
    pub shared_secret: Option<String>,
}

pub async fn broadcasting_auth(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    socket_id: &str,
    channel: &str,
) -> Result<AuthAnswer, Error> {
    let resp = http
        .post(format!("{base}/broadcasting/auth"))
        .header("accept", "application/json")
        .header("cookie", &user.cookie)
        .form(&[("socket_id", socket_id), ("channel_name", channel)])
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        return Err(err(format!("broadcasting/auth: HTTP {status}: {text}")));
    }
    Ok(serde_json::from_str::<AuthAnswer>(&text)?)
}

/// Where the Pusher server is.
#[derive(Debug, Clone)]
pub struct PusherTarget {
    pub host: String,
    pub port: u16,
    pub app_id: String,
    pub credentials: Credentials,
}

impl PusherTarget {
    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}:{}/app/{}?protocol=7&client=banter-bench&version=0.1",
            self.host,
            self.port,
            self.credentials.key()
        )
    }
}

/// The generator's socket settings: tungstenite zero-fills its whole read buffer (128 KiB by
/// default) before every read, which was 39 % of the generator's CPU in `room` (1,000 sockets each
/// reading one small frame at a time, `perf`) and made its deliveries look later than they were.
/// Frames here are under 1 KiB; 8 KiB still takes a burst of them in one read.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// Opens a WebSocket, from source address 127.0.0.`source` when given (loopback targets only), and
/// waits for `pusher:connection_established`.
pub async fn ws_connect(target: &PusherTarget, source: Option<u8>) -> Result<(Ws, SocketId), Error> {
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| err("no IPv4 address for the Pusher host"))?;
    let socket = TcpSocket::new_v4()?;
    if let Some(x) = source.filter(|_| addr.ip().is_loopback()) {
        socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, x)), 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = client_async_with_config(target.ws_url(), stream, Some(ws_config())).await?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .map_err(|_| err("no connection_established within 20 s"))?
            .ok_or_else(|| err("closed before connection_established"))??;
        if let Message::Text(t) = msg {
            match Frame::parse(t.as_str()) {
                Ok(Frame::ConnectionEstablished { socket_id, .. }) => return Ok((ws, socket_id)),
                Ok(Frame::Error { code, message }) => return Err(err(format!("pusher:error {code:?}: {message}"))),
                _ => {}
            }
        }
    }
}

/// Subscribes and waits for `pusher_internal:subscription_succeeded`.
pub async fn subscribe(ws: &mut Ws, channel: &str, auth: Option<String>) -> Result<(), Error> {
    let name = ChannelName::parse(channel)?;
    let frame = Frame::Subscribe(Subscribe::new(name, auth, None));
    ws.send(Message::Text(frame.to_json().into())).await?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .map_err(|_| err("no subscription_succeeded within 20 s"))?
            .ok_or_else(|| err("closed before subscription_succeeded"))??;
        if let Message::Text(t) = msg {
            match Frame::parse(t.as_str()) {
                Ok(Frame::SubscriptionSucceeded { .. }) => return Ok(()),
                Ok(Frame::SubscriptionError { error, .. }) => {
                    return Err(err(format!("subscription error: {error:?}")));
                }
                Ok(Frame::Error { code, message }) => return Err(err(format!("pusher:error {code:?}: {message}"))),
                _ => {}
            }
        }
    }
}

/// Self-signed `auth` for a private channel.
pub fn self_auth(target: &PusherTarget, socket_id: &SocketId, channel: &str) -> Result<String, Error> {
    let name = ChannelName::parse(channel)?;
    Ok(target.credentials.authorize_channel(socket_id, &name, None).auth)
}

/// Reads frames until the socket closes, answering pings; `on_event(name, data)` sees application events.
pub async fn pump(mut ws: Ws, mut on_event: impl FnMut(&str, &str)) {
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) => match Frame::parse(t.as_str()) {
                Ok(Frame::Event(e)) => on_event(e.event(), e.data()),
                Ok(Frame::Ping) => {
                    let _ = ws.send(Message::Text(Frame::pong().to_json().into())).await;
                }
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
}

/// Like [`pump`], for scenarios that must keep up with hundreds of thousands of frames a second:
/// `on_text` sees each text frame as it came, unparsed; pings are answered.
pub async fn pump_raw(mut ws: Ws, mut on_text: impl FnMut(&str)) {
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) if t.as_str().contains("\"pusher:ping\"") => {
                let _ = ws.send(Message::Text(Frame::pong().to_json().into())).await;
            }
            Message::Text(t) => on_text(t.as_str()),
            Message::Close(_) => break,
            _ => {}
        }
    }
}

/// The number after the first `"seq"` key in a raw event frame (see [`raw_number`]).
pub fn raw_seq(frame: &str) -> Option<u64> {
    raw_number(frame, "seq")
}

/// The number after the first `"key"` in a raw event frame, whether the data is nested as a JSON
/// string (`\"key\":12`) or not (`"key":12`). Only the whole key counts: `"id"` is not found in
/// `"room_id":3`.
pub fn raw_number(frame: &str, key: &str) -> Option<u64> {
    let needle = format!("\"{key}");
    let mut rest = frame;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let value = rest
            .strip_prefix("\\\"")
            .or_else(|| rest.strip_prefix('"'))
            .and_then(|v| v.trim_start().strip_prefix(':'))
            .map(str::trim_start);
        if let Some(digits) = value {
            let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
            return digits[..end].parse().ok();
        }
    }
    None
}

/// `POST /apps/{app_id}/events`, signed. Returns the HTTP status.
pub async fn publish(
    http: &reqwest::Client,
    target: &PusherTarget,
    channels: &[&str],
    event: &str,
    data: &str,
) -> Result<u16, Error> {
    let body = serde_json::json!({ "name": event, "channels": channels, "data": data }).to_string();
    let path = format!("/apps/{}/events", target.app_id);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let query = target.credentials.sign_request::<&str, &str>("POST", &path, &[], body.as_bytes(), now as i64);
    let resp = http
        .post(format!("http://{}:{}{path}", target.host, target.port))
        .header("content-type", "application/json")
        .query(&query)
        .body(body)
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

/// Aborts the tasks (closing their sockets) when dropped.
pub struct AbortOnDrop(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_seq_reads_nested_and_plain_data() {
        assert_eq!(raw_seq(r#"{"event":"BenchEvent","channel":"bench.1.0","data":"{\"seq\":12}"}"#), Some(12));
        assert_eq!(raw_seq(r#"{"channel":"x","data":{"seq":7},"event":"BenchEvent"}"#), Some(7));
        assert_eq!(raw_seq(r#"{"event":"other","data":"{}"}"#), None);
    }

    #[test]
    fn raw_number_reads_only_the_whole_key() {
        let nested = r#"{"event":"NewChatMessage","channel":"private-room.3","data":"{\"room_id\":3,\"id\":41,\"sender_id\":2}"}"#;
        assert_eq!(raw_number(nested, "id"), Some(41));
        assert_eq!(raw_number(nested, "room_id"), Some(3));
        let plain = r#"{"data":{"sender_id":2, "id" : 9},"event":"NewChatMessage"}"#;
        assert_eq!(raw_number(plain, "id"), Some(9));
        assert_eq!(raw_number(r#"{"data":{"sender_id":2}}"#, "id"), None);
        assert_eq!(raw_number(r#"{"data":{"id":"x"}}"#, "id"), None);
    }
}
