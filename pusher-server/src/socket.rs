//! One WebSocket connection: the upgrade at `/app/{key}`, then the loop that answers the client's
//! frames, forwards what the hub queued for it, and pings it when it falls silent.
//!
//! The loop is generic over a `Sink`/`Stream` of WebSocket messages, so unit tests drive it with
//! channels; only [`upgrade`] knows about axum's socket.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use pusher_protocol::connection::check_protocol_version;
use pusher_protocol::{ChannelKind, ChannelName, ClientEvent, Frame, ProtocolError, SocketId, Subscribe};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::Hub;
use super::cluster::JoinOutcome;
use super::hub::{Registration, RelayError, Subscribed};

/// Largest message a client may send. Event data is limited to 10 KiB; the rest is room for the
/// frame around it and a presence subscription's `channel_data`.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What each connection reads into. Clients send small frames (subscribe, ping, typing); a larger
/// one grows the buffer as needed. tungstenite's default, 128 KiB, was most of an idle
/// connection's memory; 4 KiB still 40 % of it.
const READ_BUFFER_BYTES: usize = 1024;

/// Most queued frames written with one flush. A busy socket gets its backlog in a few writes
/// instead of one system call per frame; a quiet one still gets each frame at once.
const MAX_BATCH: usize = 64;

/// Frames are buffered up to this many bytes before they are written (a flush writes sooner).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// How long a presence subscription waits for the cluster's member list before answering with
/// this instance's members.
const CLUSTER_ANSWER: Duration = Duration::from_secs(3);

/// How long a close frame may take to leave; a client that stopped reading does not get longer.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// `GET /app/{key}?protocol=7`: upgrades, then refuses (unknown key, bad protocol version) or serves.
///
/// Refusals happen after the upgrade because pusher-js only understands them as a `pusher:error`
/// frame and a close code.
pub(crate) async fn upgrade(
    State(hub): State<Hub>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let address = peer.map(|Extension(ConnectInfo(peer))| hub.settings().addresses.resolve(peer.ip(), &headers));
    let refusal = if key != hub.credentials().key() {
        Some(ProtocolError::UnknownApp)
    } else {
        check_protocol_version(query_param(query.as_deref().unwrap_or(""), "protocol")).err()
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            match refusal {
                Some(error) => {
                    tracing::debug!(%error, "pusher: connection refused");
                    refuse(sink, &error).await;
                }
                None => serve(hub, address, sink, stream.map(|read| read.map_err(ReadError::from))).await,
            }
        })
}

/// Why reading the next message failed: over the size limit (answered before closing), or anything
/// else (the connection is gone).
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLarge,
    Broken,
}

impl From<axum::Error> for ReadError {
    fn from(error: axum::Error) -> Self {
        let too_large = error
            .into_inner()
            .downcast_ref::<tungstenite::Error>()
            .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
        if too_large { Self::TooLarge } else { Self::Broken }
    }
}

/// A token bucket for every frame a client sends: `burst` at once, `per_second` on average
/// (`per_second == 0`: no limit).
#[derive(Debug)]
pub(crate) struct FrameLimiter {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl FrameLimiter {
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self { per_second: f64::from(per_second), burst, tokens: burst, refilled: now }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The raw value of `name` in a query string. Only used for `protocol`, whose valid values need no
/// percent-decoding; anything encoded is simply an invalid version.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, ""))).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Tells the client why, then closes: `pusher:error` with the code, and a close frame with the same.
async fn refuse<S: Sink<Message> + Unpin>(mut sink: S, error: &ProtocolError) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        sink.send(Message::Text(Frame::from(error).to_json().into())).await?;
        sink.send(close_message(error)).await?;
        sink.close().await
    })
    .await;
}

fn close_message(error: &ProtocolError) -> Message {
    Message::Close(Some(CloseFrame { code: error.code(), reason: error.to_string().into() }))
}

/// Allows `per_second` client events in any one-second window; rejected events do not count.
#[derive(Debug)]
pub(crate) struct ClientEventLimiter {
    per_second: usize,
    accepted: VecDeque<Instant>,
}

impl ClientEventLimiter {
    pub fn new(per_second: u32) -> Self {
        let per_second = usize::try_from(per_second).unwrap_or(usize::MAX);
        Self { per_second, accepted: VecDeque::with_capacity(per_second.min(64)) }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        while self.accepted.front().is_some_and(|&t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
            self.accepted.pop_front();
        }
        if self.accepted.len() < self.per_second {
            self.accepted.push_back(now);
            true
        } else {
            false
        }
    }
}

/// Unregisters the connection however its loop ends (including a panic or a dropped task).
struct Registered {
    hub: Hub,
    socket_id: SocketId,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.table().disconnect(&self.socket_id);
        tracing::debug!(socket_id = %self.socket_id, "pusher: disconnected");
    }
}

/// How the loop ended.
enum End {
    /// The client closed or vanished; nothing more to send.
    Gone,
    /// The server closes with this error's code.
    Close(ProtocolError),
}

/// Serves one connection until it closes: `connection_established` first, then the client's frames,
/// the hub's queued frames and the keep-alive pings.
pub(crate) async fn serve<S, R>(hub: Hub, address: Option<IpAddr>, mut sink: S, mut stream: R)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, ReadError>> + Unpin,
{
    let Registration { socket_id, mut queue, mut close } = match hub.table().connect(address) {
        Ok(registration) => registration,
        Err(error) => return refuse(sink, &error).await,
    };
    let registered = Registered { hub: hub.clone(), socket_id: socket_id.clone() };
    tracing::debug!(socket_id = %socket_id, "pusher: connected");

    let settings = hub.settings().clone();
    let activity_secs = u32::try_from(settings.activity_timeout.as_secs()).unwrap_or(u32::MAX).max(1);
    let established = Frame::connection_established(socket_id.clone(), activity_secs).to_json();
    let mut connection = Connection {
        hub,
        socket_id,
        limiter: ClientEventLimiter::new(settings.client_events_per_second),
        frames: FrameLimiter::new(settings.frames_per_second, settings.frame_burst, Instant::now()),
    };

    let mut silent_until = Instant::now() + settings.activity_timeout;
    let mut pinged = false;
    let end = match send_unless_closed(&mut sink, established.into(), &mut close).await {
        Err(end) => end,
        Ok(()) => loop {
            tokio::select! {
                // Close requests first: a client that stopped reading must not keep the loop busy.
                biased;
                reason = close_requested(&mut close) => break End::Close(reason),
                queued = queue.recv() => {
                    let Some(text) = queued else {
                        // Dropped from the table (queue overflow) between two polls.
                        break End::Close(current_close(&close).unwrap_or(ProtocolError::OverCapacity));
                    };
                    if let Err(end) = send_queued_unless_closed(&mut sink, text, &mut queue, &mut close).await {
                        break end;
                    }
                }
                incoming = stream.next() => {
                    // Any frame counts as activity, including a pong to our ping.
                    silent_until = Instant::now() + settings.activity_timeout;
                    pinged = false;
                    let reply = match incoming {
                        Some(Ok(Message::Text(_) | Message::Binary(_))) if !connection.frames.allow(Instant::now()) => {
                            Some(error_frame(&ProtocolError::FrameRateLimited { per_second: settings.frames_per_second }))
                        }
                        Some(Ok(Message::Text(text))) => connection.handle(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            Some(error_frame(&ProtocolError::MalformedFrame("binary frames are not supported".into())))
                        }
                        // The WebSocket layer answers pings by itself.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                        Some(Err(ReadError::TooLarge)) => {
                            // The stream cannot be read past it: say why, then close.
                            let error = ProtocolError::MessageTooLarge { max: MAX_MESSAGE_BYTES };
                            let _ = send_unless_closed(&mut sink, error_frame(&error), &mut close).await;
                            break End::Close(error);
                        }
                        Some(Ok(Message::Close(_)) | Err(ReadError::Broken)) | None => break End::Gone,
                    };
                    if let Some(reply) = reply
                        && let Err(end) = send_unless_closed(&mut sink, reply, &mut close).await
                    {
                        break end;
                    }
                }
                () = tokio::time::sleep_until(silent_until) => {
                    if pinged {
                        break End::Close(ProtocolError::PongTimeout);
                    }
                    pinged = true;
                    silent_until = Instant::now() + settings.pong_timeout;
                    if let Err(end) = send_unless_closed(&mut sink, Frame::ping().to_json().into(), &mut close).await {
                        break end;
                    }
                }
            }
        },
    };

    if let End::Close(reason) = end {
        tracing::debug!(socket_id = %connection.socket_id, code = reason.code(), "pusher: closing connection");
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            sink.send(close_message(&reason)).await?;
            sink.close().await
        })
        .await;
    }
    drop(registered);
}

/// Sends one text frame, giving up if the hub asks to close meanwhile (a client that stopped reading
/// blocks the send forever).
async fn send_unless_closed<S: Sink<Message> + Unpin>(
    sink: &mut S,
    text: Utf8Bytes,
    close: &mut watch::Receiver<Option<ProtocolError>>,
) -> Result<(), End> {
    tokio::select! {
        biased;
        reason = close_requested(close) => Err(End::Close(reason)),
        sent = sink.send(Message::Text(text)) => sent.map_err(|_| End::Gone),
    }
}

/// Sends `first` and whatever else is already queued (up to [`MAX_BATCH`] frames) with one flush,
/// giving up if the hub asks to close meanwhile.
async fn send_queued_unless_closed<S: Sink<Message> + Unpin>(
    sink: &mut S,
    first: Utf8Bytes,
    queue: &mut tokio::sync::mpsc::Receiver<Utf8Bytes>,
    close: &mut watch::Receiver<Option<ProtocolError>>,
) -> Result<(), End> {
    let batch = async {
        sink.feed(Message::Text(first)).await?;
        for _ in 1..MAX_BATCH {
            let Ok(next) = queue.try_recv() else { break };
            sink.feed(Message::Text(next)).await?;
        }
        sink.flush().await
    };
    tokio::select! {
        biased;
        reason = close_requested(close) => Err(End::Close(reason)),
        sent = batch => sent.map_err(|_| End::Gone),
    }
}

/// Resolves when the hub asks the connection to close, with the reason.
async fn close_requested(close: &mut watch::Receiver<Option<ProtocolError>>) -> ProtocolError {
    match close.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone().unwrap_or(ProtocolError::GoingAway),
        // The hub dropped the connection without a reason; only happens when it goes away.
        Err(_) => ProtocolError::GoingAway,
    }
}

fn current_close(close: &watch::Receiver<Option<ProtocolError>>) -> Option<ProtocolError> {
    close.borrow().clone()
}

fn error_frame(error: &ProtocolError) -> Utf8Bytes {
    Frame::from(error).to_json().into()
}

/// What a connection knows about itself while its loop runs.
struct Connection {
    hub: Hub,
    socket_id: SocketId,
    limiter: ClientEventLimiter,
    frames: FrameLimiter,
}

impl Connection {
    /// Acts on one text frame from the client; returns the reply to send it, if any.
    async fn handle(&mut self, text: &str) -> Option<Utf8Bytes> {
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::debug!(socket_id = %self.socket_id, %error, "pusher: bad frame");
                return Some(error_frame(&error));
            }
        };
        match frame {
            Frame::Ping => Some(Frame::pong().to_json().into()),
            Frame::Pong => None,
            Frame::Subscribe(subscribe) => Some(self.subscribe(subscribe).await),
            Frame::Unsubscribe { channel } => {
                self.hub.table().unsubscribe(&self.socket_id, &channel);
                None
            }
            Frame::ClientEvent(event) => self.client_event(event),
            // Server-to-client frames, or application events a client may not publish.
            other => Some(error_frame(&ProtocolError::UnsupportedEvent(other.event_name().to_owned()))),
        }
    }

    async fn subscribe(&self, subscribe: Subscribe) -> Utf8Bytes {
        let hub = &self.hub;
        let result = if subscribe.channel.kind() == ChannelKind::Public && !hub.settings().public_channels {
            Err(ProtocolError::PublicChannelsDisabled)
        } else {
            hub.credentials()
                .verify_subscription(&self.socket_id, &subscribe)
                .and_then(|member| hub.table().subscribe(&self.socket_id, &subscribe.channel, member))
        };
        let result = match result {
            Ok(Subscribed::Ready(succeeded)) => Ok(succeeded),
            Ok(Subscribed::Pending { outcome, local }) => {
                self.cluster_members(&subscribe.channel, outcome, local).await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(succeeded) => succeeded,
            Err(error) => {
                tracing::debug!(socket_id = %self.socket_id, channel = %subscribe.channel, %error, "pusher: subscription refused");
                Frame::subscription_error(subscribe.channel, error.subscription_error()).to_json().into()
            }
        }
    }

    /// A presence subscription in cluster mode: the members across the cluster, or a refusal when
    /// the channel is full there (the local subscription is then undone). Without an answer from
    /// Redis in time, this instance's members.
    async fn cluster_members(
        &self,
        channel: &ChannelName,
        outcome: oneshot::Receiver<JoinOutcome>,
        local: Utf8Bytes,
    ) -> Result<Utf8Bytes, ProtocolError> {
        match tokio::time::timeout(CLUSTER_ANSWER, outcome).await {
            Ok(Ok(JoinOutcome::Members(members))) => {
                Ok(Frame::subscription_succeeded(channel.clone(), Some(members)).to_json().into())
            }
            Ok(Ok(JoinOutcome::Full { max })) => {
                self.hub.table().unsubscribe(&self.socket_id, channel);
                Err(ProtocolError::PresenceChannelFull { max: u32::try_from(max).unwrap_or(u32::MAX) })
            }
            Ok(Ok(JoinOutcome::Local) | Err(_)) | Err(_) => Ok(local),
        }
    }

    fn client_event(&mut self, event: ClientEvent) -> Option<Utf8Bytes> {
        if !self.limiter.allow(Instant::now()) {
            return Some(error_frame(&ProtocolError::ClientEventRateLimited));
        }
        let channel = event.channel().clone();
        match self.hub.relay_client_event(&self.socket_id, event) {
            Ok(()) => None,
            Err(RelayError::NotSubscribed) => {
                let message = format!("Client event rejected: not subscribed to {channel}");
                Some(Frame::error(ProtocolError::ClientEventNotAllowed.code(), message).to_json().into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use pusher_protocol::Credentials;
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::*;
    use crate::HubSettings;

    const WAIT: Duration = Duration::from_secs(5);

    fn hub(settings: HubSettings) -> Hub {
        Hub::new("1", Credentials::new("key", "secret"), settings)
    }

    /// The client's end of a connection served over in-memory channels.
    struct Client {
        to_server: mpsc::Sender<Message>,
        from_server: mpsc::Receiver<Message>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Client {
        fn connect(hub: &Hub) -> Self {
            let (to_server, server_inbox) = mpsc::channel::<Message>(64);
            let (server_outbox, from_server) = mpsc::channel::<Message>(64);
            let stream = futures_util::stream::unfold(server_inbox, |mut rx| async move {
                rx.recv().await.map(|message| (Ok::<_, ReadError>(message), rx))
            });
            let sink = futures_util::sink::unfold(server_outbox, |tx, message: Message| async move {
                tx.send(message).await.map_err(|_| ())?;
                Ok::<_, ()>(tx)
            });
            let task = tokio::spawn(serve(hub.clone(), None, Box::pin(sink), Box::pin(stream)));
            Self { to_server, from_server, task }
        }

        async fn send(&self, frame: Value) {
            self.to_server.send(Message::Text(frame.to_string().into())).await.unwrap();
        }

        async fn next(&mut self) -> Message {
            tokio::time::timeout(WAIT, self.from_server.recv()).await.unwrap().unwrap()
        }

        async fn next_json(&mut self) -> Value {
            match self.next().await {
                Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
                other => panic!("expected a text frame, got {other:?}"),
            }
        }

        async fn socket_id(&mut self) -> SocketId {
            let established = self.next_json().await;
            assert_eq!(established["event"], "pusher:connection_established");
            let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
            SocketId::parse(data["socket_id"].as_str().unwrap()).unwrap()
        }

        async fn close_code(&mut self) -> u16 {
            loop {
                if let Message::Close(Some(frame)) = self.next().await {
                    return frame.code;
                }
            }
        }
    }

    #[test]
    fn query_param_finds_the_protocol() {
        assert_eq!(query_param("client=js&protocol=7&flash=false", "protocol"), Some("7"));
        assert_eq!(query_param("protocol", "protocol"), Some(""));
        assert_eq!(query_param("", "protocol"), None);
    }

    #[test]
    fn limiter_allows_n_per_second_in_any_window() {
        let mut limiter = ClientEventLimiter::new(10);
        let start = Instant::now();
        for i in 0..10 {
            assert!(limiter.allow(start + Duration::from_millis(i * 10)), "event {i}");
        }
        assert!(!limiter.allow(start + Duration::from_millis(500)), "11th within the second");
        assert!(!limiter.allow(start + Duration::from_millis(999)));
        // The first event's second is over: one slot frees up, not ten.
        assert!(limiter.allow(start + Duration::from_millis(1000)));
        assert!(!limiter.allow(start + Duration::from_millis(1001)));
        assert!(limiter.allow(start + Duration::from_millis(1010)));
        assert!(!ClientEventLimiter::new(0).allow(start));
    }

    #[tokio::test]
    async fn established_first_then_pong_for_ping_and_errors_keep_the_connection() {
        let hub = hub(HubSettings::default());
        let mut client = Client::connect(&hub);
        let established = client.next_json().await;
        let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["activity_timeout"], 120);

        client.send(json!({"event": "pusher:ping", "data": {}})).await;
        assert_eq!(client.next_json().await, json!({"event": "pusher:pong", "data": {}}));

        client.to_server.send(Message::Text("not json".into())).await.unwrap();
        assert_eq!(client.next_json().await["data"]["code"], 4300);
        client.send(json!({"event": "update", "channel": "lobby", "data": "{}"})).await;
        assert_eq!(client.next_json().await["data"]["message"], "Unsupported event update");

        client.send(json!({"event": "pusher:ping"})).await;
        assert_eq!(client.next_json().await["event"], "pusher:pong");
        assert_eq!(hub.connection_count(), 1);
        drop(client.to_server);
        tokio::time::timeout(WAIT, client.task).await.unwrap().unwrap();
        assert_eq!(hub.connection_count(), 0);
    }

    #[tokio::test]
    async fn forged_private_auth_is_a_subscription_error_and_a_valid_one_succeeds() {
        let hub = hub(HubSettings::default());
        let mut client = Client::connect(&hub);
        let socket_id = client.socket_id().await;
        let channel = pusher_protocol::ChannelName::parse("private-user.1").unwrap();

        client
            .send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.1", "auth": "key:00ff"}}))
            .await;
        let refused = client.next_json().await;
        assert_eq!(refused["event"], "pusher:subscription_error");
        assert_eq!(refused["data"], r#"{"type":"AuthError","error":"Invalid signature","status":401}"#);

        let auth = hub.credentials().authorize_channel(&socket_id, &channel, None).auth;
        client.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.1", "auth": auth}})).await;
        assert_eq!(
            client.next_json().await,
            json!({"event": "pusher_internal:subscription_succeeded", "channel": "private-user.1", "data": "{}"})
        );
        assert_eq!(hub.table().channel_stats(&channel).map(|s| s.subscription_count), Some(1));
    }

    #[tokio::test]
    async fn silence_gets_a_ping_and_no_answer_closes_with_4201() {
        let settings = HubSettings {
            activity_timeout: Duration::from_millis(100),
            pong_timeout: Duration::from_millis(100),
            ..HubSettings::default()
        };
        let hub = hub(settings);
        let mut client = Client::connect(&hub);
        client.socket_id().await;
        assert_eq!(client.next_json().await, json!({"event": "pusher:ping", "data": {}}));
        // Answering resets the clock: another ping follows, not a close.
        client.send(json!({"event": "pusher:pong", "data": {}})).await;
        assert_eq!(client.next_json().await["event"], "pusher:ping");
        assert_eq!(client.close_code().await, 4201);
        tokio::time::timeout(WAIT, client.task).await.unwrap().unwrap();
        assert_eq!(hub.connection_count(), 0);
    }

    #[tokio::test]
    async fn shutdown_closes_with_4200() {
        let hub = hub(HubSettings::default());
        let mut client = Client::connect(&hub);
        client.socket_id().await;
        hub.shutdown();
        assert_eq!(client.close_code().await, 4200);
        let mut late = Client::connect(&hub);
        assert_eq!(late.close_code().await, 4200);
    }

    #[tokio::test]
    async fn client_events_are_rate_limited_per_connection() {
        let hub = hub(HubSettings { client_events_per_second: 2, ..HubSettings::default() });
        let mut sender = Client::connect(&hub);
        let socket_id = sender.socket_id().await;
        let channel = pusher_protocol::ChannelName::parse("private-chat.1.2").unwrap();
        let auth = hub.credentials().authorize_channel(&socket_id, &channel, None).auth;
        sender.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-chat.1.2", "auth": auth}})).await;
        assert_eq!(sender.next_json().await["event"], "pusher_internal:subscription_succeeded");
        for _ in 0..3 {
            sender.send(json!({"event": "client-typing", "channel": "private-chat.1.2", "data": {}})).await;
        }
        // The first two go through silently (no echo); the third is refused.
        assert_eq!(sender.next_json().await["data"]["code"], 4301);
    }

    #[tokio::test]
    async fn client_events_need_a_subscription() {
        let hub = hub(HubSettings::default());
        let mut client = Client::connect(&hub);
        client.socket_id().await;
        client.send(json!({"event": "client-typing", "channel": "private-chat.1.2", "data": {}})).await;
        assert_eq!(
            client.next_json().await["data"]["message"],
            "Client event rejected: not subscribed to private-chat.1.2"
        );
        client.send(json!({"event": "client-typing", "channel": "lobby", "data": {}})).await;
        assert_eq!(
            client.next_json().await["data"]["message"],
            "Client events are only allowed on private and presence channels, not on public or encrypted ones"
        );
    }

    #[test]
    fn frame_limiter_allows_a_burst_then_the_average_rate() {
        let start = Instant::now();
        let mut limiter = FrameLimiter::new(10, 3, start);
        assert!((0..3).all(|_| limiter.allow(start)), "the burst");
        assert!(!limiter.allow(start));
        assert!(!limiter.allow(start + Duration::from_millis(50)));
        assert!(limiter.allow(start + Duration::from_millis(100)), "one more every 100 ms");
        assert!(!limiter.allow(start + Duration::from_millis(100)));
        assert!((0..3).all(|_| limiter.allow(start + Duration::from_secs(10))), "never more than the burst saved up");
        assert!(!limiter.allow(start + Duration::from_secs(10)));
        let mut unlimited = FrameLimiter::new(0, 1, start);
        assert!((0..1000).all(|_| unlimited.allow(start)));
    }

    #[tokio::test]
    async fn public_channels_are_refused_unless_enabled() {
        let hub = hub(HubSettings::default());
        let mut client = Client::connect(&hub);
        client.socket_id().await;
        client.send(json!({"event": "pusher:subscribe", "data": {"channel": "lobby"}})).await;
        let refused = client.next_json().await;
        assert_eq!(refused["event"], "pusher:subscription_error");
        assert_eq!(
            refused["data"],
            r#"{"type":"PusherError","error":"Public channels are not enabled on this server","status":403}"#
        );

        let open = hub_with_public_channels();
        let mut client = Client::connect(&open);
        client.socket_id().await;
        client.send(json!({"event": "pusher:subscribe", "data": {"channel": "lobby"}})).await;
        assert_eq!(client.next_json().await["event"], "pusher_internal:subscription_succeeded");
    }

    fn hub_with_public_channels() -> Hub {
        hub(HubSettings { public_channels: true, ..HubSettings::default() })
    }

    #[tokio::test]
    async fn a_flood_of_frames_is_refused_past_the_burst() {
        let hub = hub(HubSettings { frames_per_second: 1, frame_burst: 3, ..HubSettings::default() });
        let mut client = Client::connect(&hub);
        client.socket_id().await;
        for _ in 0..4 {
            client.send(json!({"event": "pusher:ping", "data": {}})).await;
        }
        for _ in 0..3 {
            assert_eq!(client.next_json().await["event"], "pusher:pong");
        }
        let refused = client.next_json().await;
        assert_eq!(refused["event"], "pusher:error");
        assert_eq!(refused["data"]["code"], 4301);
        assert_eq!(refused["data"]["message"], "Too many frames: at most 1 per second");
    }
}
