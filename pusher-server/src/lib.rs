//! A Pusher Channels server (protocol 7) to embed in an axum application: WebSocket connections at
//! `/app/{key}` and the Pusher HTTP API at `/apps/{app_id}/...`, on the application's own port.
//! Above `pusher-protocol` and below the application (Banter's `server` crate), as sockudo
//! separates its crates: it knows nothing of users, databases or pages.
//!
//! Everything that decides what a frame means lives in the `pusher-protocol` crate; this crate only
//! moves frames:
//! - [`hub`]: the channel table (who is subscribed where, presence members) and delivery;
//! - [`socket`]: one connection's loop, generic over a `Sink`/`Stream` of WebSocket messages;
//! - [`http_api`]: the signed HTTP API publishers use (`POST /events`, `GET /channels`, ...);
//! - [`cluster`]: with `REDIS_URL`, the Redis bus and presence records that make several instances
//!   one server.
//!
//! The application merges `hub.router(..)` into its router, publishes through [`Hub::publish`],
//! follows [`Hub::occupancy`] if it cares who is online, and calls [`Hub::shutdown`] when the
//! process is asked to stop.

mod cluster;
mod http_api;
mod hub;
mod socket;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::net::IpAddr;

use axum::Router;
use axum::extract::ws::Utf8Bytes;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use pusher_protocol::limits::{CLIENT_EVENTS_PER_SECOND, DEFAULT_ACTIVITY_TIMEOUT_SECS, MAX_PRESENCE_MEMBERS};
use pusher_protocol::{ChannelName, Credentials, Frame, SocketId};
use tokio::sync::mpsc;

use self::cluster::Cluster;
pub use self::cluster::{ClusterError, ClusterSettings, ClusterStats};
pub use self::hub::BindError;
use self::hub::{Caps, ChannelStats, RelayError, Table};

/// A channel got its first subscriber anywhere in the cluster, or lost its last one: what Pusher's
/// `channel_occupied` and `channel_vacated` webhooks report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupancy {
    Occupied(ChannelName),
    Vacated(ChannelName),
}

/// Tunables of the embedded server. The defaults are Pusher's; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Client silence after which the server sends `pusher:ping`; advertised in
    /// `pusher:connection_established` (in whole seconds, at least 1).
    pub activity_timeout: Duration,
    /// How long the server waits for any frame after its `pusher:ping` before closing with 4201.
    pub pong_timeout: Duration,
    /// Frames queued per connection; a client that lets its queue fill is closed with 4100.
    pub send_queue: usize,
    /// Client events one connection may send per second; the next ones get `pusher:error` 4301.
    pub client_events_per_second: u32,
    /// Distinct users a presence channel holds; the next user's subscription is refused.
    pub max_presence_members: usize,
    /// Channels one connection may be subscribed to at once (0: no limit).
    pub max_channels_per_connection: usize,
    /// Open connections per client address (0: no limit); the next one is closed with 4100.
    pub max_connections_per_address: usize,
    /// Connections `/broadcasting/auth` signs for one user (0: no limit); then it answers 429.
    pub max_connections_per_user: usize,
    /// Frames of any kind a connection may send per second, on average (0: no limit)...
    pub frames_per_second: u32,
    /// ...and at once (a burst: subscribing to a page's channels after connecting).
    pub frame_burst: u32,
    /// Whether public channels (no auth) may be subscribed to. Banter itself uses none.
    pub public_channels: bool,
    /// Who the client is behind a trusted proxy (for the per-address cap).
    pub addresses: ClientAddress,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            activity_timeout: Duration::from_secs(u64::from(DEFAULT_ACTIVITY_TIMEOUT_SECS)),
            pong_timeout: Duration::from_secs(30),
            send_queue: 256,
            client_events_per_second: CLIENT_EVENTS_PER_SECOND,
            max_presence_members: MAX_PRESENCE_MEMBERS as usize,
            max_channels_per_connection: 100,
            max_connections_per_address: 100,
            max_connections_per_user: 20,
            frames_per_second: 20,
            frame_burst: 100,
            public_channels: false,
            addresses: ClientAddress::default(),
        }
    }
}

/// How a connection's client address is found from the peer's address and the request's headers
/// (the application's trusted-proxy rules). By default, the peer's address.
#[derive(Clone)]
pub struct ClientAddress(Arc<Resolve>);

type Resolve = dyn Fn(IpAddr, &HeaderMap) -> IpAddr + Send + Sync;

impl ClientAddress {
    pub fn new(resolve: impl Fn(IpAddr, &HeaderMap) -> IpAddr + Send + Sync + 'static) -> Self {
        Self(Arc::new(resolve))
    }

    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        (self.0)(peer, headers)
    }
}

impl Default for ClientAddress {
    fn default() -> Self {
        Self::new(|peer, _| peer)
    }
}

impl std::fmt::Debug for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientAddress")
    }
}

/// The embedded server: one app's credentials, its settings and its channel table.
///
/// Cheap to clone (an `Arc` inside); every clone is the same server.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    app_id: String,
    credentials: Credentials,
    settings: HubSettings,
    table: Arc<Table>,
    /// Set once, by [`Hub::join_cluster`].
    cluster: OnceLock<Arc<Cluster>>,
}

impl Hub {
    pub fn new(app_id: impl Into<String>, credentials: Credentials, settings: HubSettings) -> Self {
        // A zero-length queue cannot exist (tokio panics); one frame is the least that works.
        let settings = HubSettings { send_queue: settings.send_queue.max(1), ..settings };
        let caps = Caps {
            channels_per_connection: settings.max_channels_per_connection,
            connections_per_address: settings.max_connections_per_address,
            connections_per_user: settings.max_connections_per_user,
        };
        let table = Table::with_caps(settings.send_queue, settings.max_presence_members, caps);
        let table = Arc::new(table);
        Self {
            inner: Arc::new(Inner { app_id: app_id.into(), credentials, settings, table, cluster: OnceLock::new() }),
        }
    }

    /// Cluster mode: from now on this hub is one of the instances sharing the Redis at
    /// `settings.url` (see [`cluster`]). Returns at once; Redis being down is an outage, not an
    /// error. Joining twice keeps the first cluster.
    pub fn join_cluster(&self, settings: ClusterSettings) -> Result<(), ClusterError> {
        if self.inner.cluster.get().is_some() {
            return Ok(());
        }
        let cluster = Cluster::start(Arc::clone(&self.inner.table), &self.inner.app_id, settings)?;
        let _ = self.inner.cluster.set(cluster);
        Ok(())
    }

    /// What the cluster bus did so far; `None` outside cluster mode.
    pub fn cluster_stats(&self) -> Option<&ClusterStats> {
        self.inner.cluster.get().map(|cluster| &*cluster.stats)
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.get().map(|cluster| &**cluster)
    }

    /// Delivers a serialized event to `channel`'s subscribers here and on the other instances.
    pub(crate) fn publish_frame(&self, channel: &ChannelName, text: &Utf8Bytes, exclude: Option<&SocketId>) {
        self.table().publish_frame(channel, text, exclude);
        if let Some(cluster) = self.cluster() {
            cluster.deliver(channel, text, exclude);
        }
    }

    /// Relays a client event to the channel's other subscribers, here and on the other instances.
    pub(crate) fn relay_client_event(
        &self,
        sender: &SocketId,
        event: pusher_protocol::ClientEvent,
    ) -> Result<(), RelayError> {
        let channel = event.channel().clone();
        let relayed = self.table().relay_client_event(sender, event)?;
        if let Some(cluster) = self.cluster() {
            cluster.deliver(&channel, &relayed, Some(sender));
        }
        Ok(())
    }

    /// From now on, every channel becoming occupied or vacated in the whole cluster (once, by the
    /// instance where it happened or that noticed another one vanish). Only the first caller gets
    /// the changes; `None` for any later one.
    pub fn occupancy(&self) -> Option<mpsc::UnboundedReceiver<Occupancy>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.table().report_occupancy(sender).then_some(receiver)
    }

    /// From now on, `listener` is told the id of every session that ends, on this instance or (in
    /// cluster mode) on another one, right before its connections here are closed. Only the first
    /// caller is kept; false for any later one.
    pub fn on_session_ended(&self, listener: impl Fn(&str) + Send + Sync + 'static) -> bool {
        self.table().report_ended_sessions(hub::SessionListener(Box::new(listener)))
    }

    /// The occupied channels whose name starts with `prefix`, in the whole cluster; `None` when the
    /// cluster cannot be asked (Redis unreachable), since this instance's view is then not all.
    pub async fn occupied_everywhere(&self, prefix: &str) -> Option<Vec<ChannelName>> {
        let channels = match self.cluster() {
            Some(cluster) => cluster.occupied_channels(prefix).await.ok()?,
            None => self.table().occupied_channels(prefix),
        };
        Some(channels.into_iter().map(|(name, _)| name).collect())
    }

    /// A channel's numbers across the cluster (this instance's without one, or when Redis cannot
    /// be asked); `None` when nobody is subscribed.
    pub(crate) async fn channel_stats(&self, channel: &ChannelName) -> Option<ChannelStats> {
        let cluster = self.cluster().map(|c| c.channel_stats(channel));
        cluster_or_here(cluster, || self.table().channel_stats(channel)).await
    }

    /// Occupied channels whose name starts with `prefix`, across the cluster, sorted by name.
    pub(crate) async fn occupied_channels(&self, prefix: &str) -> Vec<(ChannelName, ChannelStats)> {
        let cluster = self.cluster().map(|c| c.occupied_channels(prefix));
        cluster_or_here(cluster, || self.table().occupied_channels(prefix)).await
    }

    /// The `user_id`s on a presence channel across the cluster, sorted.
    pub(crate) async fn presence_user_ids(&self, channel: &ChannelName) -> Vec<String> {
        let cluster = self.cluster().map(|c| c.presence_user_ids(channel));
        cluster_or_here(cluster, || self.table().presence_user_ids(channel)).await
    }

    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    pub fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    /// `/app/{key}` (WebSocket), and with `http_api` the `/apps/{app_id}/...` HTTP API that other
    /// processes publish through, with no fallback, for merging into the main router. The app
    /// itself publishes in process and needs no HTTP API.
    pub fn router(&self, http_api: bool) -> Router {
        let sockets = Router::new().route("/app/{key}", get(socket::upgrade)).with_state(self.clone());
        if !http_api {
            return sockets;
        }
        Router::new()
            .route("/apps/{app_id}/events", post(http_api::events))
            .route("/apps/{app_id}/batch_events", post(http_api::batch_events))
            .route("/apps/{app_id}/channels", get(http_api::channels))
            .route("/apps/{app_id}/channels/{channel}", get(http_api::channel))
            .route("/apps/{app_id}/channels/{channel}/users", get(http_api::users))
            .with_state(self.clone())
            .merge(sockets)
    }

    /// Records that `session` of `user_id` signed a subscription of `socket_id` (see
    /// [`hub::Table::bind`]); refused when the connection is someone else's or the user has
    /// reached their share of connections.
    pub fn bind(&self, socket_id: &pusher_protocol::SocketId, user_id: i64, session: &str) -> Result<(), BindError> {
        self.table().bind(socket_id, user_id, session)
    }

    /// Closes every connection with 4200 (server going away) so clients reconnect at once, and refuses
    /// new ones the same way from now on. Used on SIGTERM / Ctrl-C.
    pub fn shutdown(&self) {
        let closed = self.table().shut_down();
        tracing::info!(connections = closed, "pusher: shutting down, closing connections with 4200");
    }

    /// Waits, at most `limit`, until every connection has closed; `true` if they all did. Call it after
    /// [`shutdown`](Self::shutdown) so the 4200 close frames leave before the process exits (axum's
    /// graceful shutdown does not wait for upgraded WebSockets).
    pub async fn wait_until_closed(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.table().idle()).await.is_ok()
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.table().connection_count()
    }

    fn table(&self) -> &Table {
        &self.inner.table
    }
}

/// The cluster's answer when there is a cluster and Redis answers; this instance's otherwise.
async fn cluster_or_here<T>(
    cluster: Option<impl std::future::Future<Output = redis::RedisResult<T>>>,
    here: impl FnOnce() -> T,
) -> T {
    if let Some(asked) = cluster {
        match asked.await {
            Ok(answer) => return answer,
            Err(e) => {
                tracing::warn!(error = %e, "pusher: the cluster's view is unavailable, answering for this instance")
            }
        }
    }
    here()
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("app_id", &self.inner.app_id)
            .field("credentials", &self.inner.credentials)
            .field("connections", &self.connection_count())
            .finish()
    }
}

/// In-process publishing: no HTTP, no signing; each channel's frame is serialized once.
impl Hub {
    /// Delivers an application event to `channels`' subscribers on every instance, except
    /// `exclude`; an invalid event (reserved name, data over 10 KB) is logged and dropped.
    pub fn publish(&self, channels: &[ChannelName], event: &str, data: &str, exclude: Option<&SocketId>) {
        for channel in channels {
            match Frame::event(event, channel.clone(), data) {
                Ok(frame) => self.publish_frame(channel, &Utf8Bytes::from(frame.to_json()), exclude),
                Err(e) => tracing::warn!(channel = %channel, event, error = %e, "pusher: event not published"),
            }
        }
    }

    /// Closes, on every instance, the connections `session` authorized (it ended).
    pub fn end_session(&self, session: &str) {
        if let Some(cluster) = self.cluster() {
            cluster.end_session(session);
        }
        let closed = self.table().end_session(session);
        if closed > 0 {
            tracing::debug!(connections = closed, "pusher: closed the connections of an ended session");
        }
    }

    /// Unsubscribes, on every instance, `user_id`'s connections from `channels`.
    pub fn unsubscribe_user(&self, user_id: i64, channels: &[ChannelName]) {
        if let Some(cluster) = self.cluster() {
            cluster.unsubscribe_user(user_id, channels);
        }
        let ended = self.table().unsubscribe_user(user_id, channels);
        if ended > 0 {
            tracing::debug!(subscriptions = ended, "pusher: ended the subscriptions of a removed member");
        }
    }
}
