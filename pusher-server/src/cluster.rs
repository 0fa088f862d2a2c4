//! Cluster mode of the embedded server (`REDIS_URL`): any number of instances behind a load
//! balancer behave as one Pusher server, as Laravel Reverb, soketi and sockudo scale out.
//!
//! - **The bus.** Every instance publishes what its own connections must not be the only ones to
//!   see (application events, relayed client events, presence announcements, ended sessions,
//!   removed members) on one Redis pub/sub channel, and applies what the others publish to its own
//!   table. Local delivery never waits for Redis.
//! - **Presence.** A presence channel's members across the cluster live in Redis: per channel, how
//!   many instances hold each user and the user's info; per instance, which (channel, user) pairs it
//!   holds, so the pairs of an instance that vanished without leaving are taken back by the others
//!   once its heartbeat is older than [`ClusterSettings::node_timeout`]. The changes are atomic Lua
//!   scripts, so `member_added` goes out on a user's first connection in the whole cluster and
//!   `member_removed` after the last.
//! - **Outages.** Without Redis, each instance carries on alone: its own connections keep receiving
//!   everything published on it (a warning is logged once, and [`ClusterStats`] counts it), and
//!   nothing waits or fails. Whatever could not cross is made good when Redis is back: the instance
//!   forgets its presence records and asks its connections to reconnect (4200), so each browser
//!   resubscribes and fetches what it missed; an instance whose publishes failed also tells the
//!   others which channels lost events, and they reconnect the connections subscribed to them.
//!
//! One Redis server (or a primary with replicas) is assumed, not Redis Cluster: the scripts touch
//! keys they derive from their arguments.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use pusher_protocol::{ChannelKind, ChannelName, Frame, PresenceMember, SocketId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::Occupancy;
use super::hub::{ChannelStats, Table};

/// How the cluster is reached and how fast it notices a vanished instance.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://[user:password@]host:port[/db]`; never logged (it may hold a password).
    pub url: String,
    /// How often an instance says it is alive.
    pub heartbeat: Duration,
    /// Silence after which an instance counts as gone and its presence records are taken back.
    pub node_timeout: Duration,
}

impl ClusterSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), heartbeat: Duration::from_secs(5), node_timeout: Duration::from_secs(20) }
    }
}

/// Why the cluster could not be set up (only a malformed URL; an unreachable Redis is an outage).
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL: {0}")]
pub struct ClusterError(String);

/// What the bus did so far, for logs, `/readyz` and metrics.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Whether this instance is subscribed to the bus right now.
    pub connected: AtomicBool,
    pub published: AtomicU64,
    /// Bus messages that could not be published (Redis unreachable, or the outbox full).
    pub publish_failures: AtomicU64,
    /// Messages from other instances applied here.
    pub received: AtomicU64,
    /// Times the subscription to the bus was lost.
    pub outages: AtomicU64,
    /// Presence changes recorded only locally because Redis could not be reached.
    pub presence_failures: AtomicU64,
}

/// Messages one instance publishes for the others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Body {
    /// A serialized frame for every subscriber of `channel` but `exclude`.
    Deliver { channel: String, frame: String, exclude: Option<String> },
    /// The session ended: close the connections it authorized (4009).
    EndSession { session: String },
    /// The user left these channels (removed from a group).
    Unsubscribe { user_id: i64, channels: Vec<String> },
    /// Events for these channels (all channels: `None`) did not reach the bus, the last at
    /// `lost_until` (unix ms): reconnect the connections subscribed to them so the browsers catch
    /// up, unless this instance has already done so for all of them since (it lost the bus too).
    Resync { channels: Option<Vec<String>>, lost_until: u64 },
}

#[derive(Debug, Deserialize)]
struct Envelope {
    node: String,
    #[serde(flatten)]
    body: Body,
}

/// An [`Envelope`] as it is written, without copying the body.
#[derive(Serialize)]
struct OutgoingEnvelope<'a> {
    node: &'a str,
    #[serde(flatten)]
    body: &'a Body,
}

/// A subscription or presence change, recorded in Redis in the order the table saw it.
#[derive(Debug)]
pub(crate) enum ClusterJob {
    /// A connection here subscribed to the channel (counted for the HTTP API's occupancy);
    /// `first_here` when no other connection here was.
    Subscribed { channel: ChannelName, first_here: bool },
    /// A connection here left the channel; `last_here` when it was the last one here.
    Unsubscribed { channel: ChannelName, last_here: bool },
    /// Every channel's subscriptions here, as the table counted them when it queued this: the
    /// instance's counts in Redis are rewritten from it (each heartbeat), so any drift heals.
    Snapshot(Vec<(ChannelName, usize)>),
    /// `socket_id` subscribed; `member` is `Some` when it is its user's first connection here.
    Join {
        channel: ChannelName,
        socket_id: SocketId,
        user_id: String,
        member: Option<PresenceMember>,
        max_members: usize,
        reply: oneshot::Sender<JoinOutcome>,
    },
    /// The user's last connection here left the channel.
    Leave { channel: ChannelName, user_id: String },
}

/// What a presence subscription learns from the cluster.
#[derive(Debug)]
pub(crate) enum JoinOutcome {
    /// The members across the cluster, this one included.
    Members(Vec<PresenceMember>),
    /// The channel already holds `max` users across the cluster.
    Full { max: usize },
    /// Redis could not be asked: the local members are all there is.
    Local,
}

/// Events queued for the bus before the oldest are dropped (and their channels resynced).
const OUTBOX: usize = 65_536;
/// Bus messages sent in one pipeline.
const BATCH: usize = 512;
/// Channels remembered as having lost events during an outage; past this, all are resynced.
const MAX_RESYNC_CHANNELS: usize = 1_000;
/// Waits between attempts to reach Redis again.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// A Redis command that takes longer than this counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Adds one to `count` unless the user's instance already holds them; refuses a new user past `max`.
const JOIN: &str = r"
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return 0 end
local max = tonumber(ARGV[4])
if max > 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= max then return -1 end
redis.call('HSET', KEYS[3], ARGV[2], 1)
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  return 1
end
return 0
";

/// Takes back what JOIN added; 1 when the user is gone from the whole cluster.
const LEAVE: &str = r"
if redis.call('HDEL', KEYS[3], ARGV[2]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
";

/// One subscription more on this instance (KEYS[1]: its counts); the channel's first here counts
/// one instance more in the cluster's occupancy (KEYS[2]). 1 when the channel became occupied.
const SUBSCRIBED: &str = r"
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 and redis.call('HINCRBY', KEYS[2], ARGV[1], 1) == 1 then
  return 1
end
return 0
";

/// One subscription fewer on this instance; the field goes at zero (never below), and with it one
/// instance from the channel's occupancy. 1 when the channel became vacated in the whole cluster.
const UNSUBSCRIBED: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[1])
    return 1
  end
end
return 0
";

/// Rewrites this instance's counts (KEYS[1]) from ARGV (channel, count, ...) and brings the
/// cluster's occupancy (KEYS[2]) in line: returns the channels that became occupied and vacated.
const SNAPSHOT: &str = r"
local old = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do old[flat[i]] = true end
redis.call('DEL', KEYS[1])
local occupied, vacated = {}, {}
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if old[ARGV[i]] then
    old[ARGV[i]] = nil
  elseif redis.call('HINCRBY', KEYS[2], ARGV[i], 1) == 1 then
    table.insert(occupied, ARGV[i])
  end
end
for channel in pairs(old) do
  if redis.call('HINCRBY', KEYS[2], channel, -1) <= 0 then
    redis.call('HDEL', KEYS[2], channel)
    table.insert(vacated, channel)
  end
end
return {occupied, vacated}
";

/// Takes back every pair an instance holds, and its subscription counts with their part in the
/// cluster's occupancy (once: only the caller that removes it from the heartbeat set does, unless
/// ARGV[3] forces it); returns the pairs now gone from the cluster, and the channels now vacated.
const REAP: &str = r"
if ARGV[3] ~= '1' and redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {{}, {}} end
local vacated = {}
local occupancy = ARGV[2] .. ':occ'
for _, channel in ipairs(redis.call('HKEYS', KEYS[3])) do
  if redis.call('HINCRBY', occupancy, channel, -1) <= 0 then
    redis.call('HDEL', occupancy, channel)
    table.insert(vacated, channel)
  end
end
redis.call('DEL', KEYS[3])
local gone = {}
for _, pair in ipairs(redis.call('HKEYS', KEYS[2])) do
  local sep = string.find(pair, '\n', 1, true)
  if sep then
    local channel = string.sub(pair, 1, sep - 1)
    local user = string.sub(pair, sep + 1)
    local counts = ARGV[2] .. ':pc:' .. channel
    if redis.call('HINCRBY', counts, user, -1) <= 0 then
      redis.call('HDEL', counts, user)
      redis.call('HDEL', ARGV[2] .. ':pi:' .. channel, user)
      table.insert(gone, pair)
    end
  end
end
redis.call('DEL', KEYS[2])
return {gone, vacated}
";

/// One instance's part in the cluster. Cheap to share; its tasks run until the process ends.
#[derive(Debug)]
pub(crate) struct Cluster {
    node: String,
    /// `banter:{app_id}`: every key and the bus channel start with it.
    prefix: String,
    outbox: mpsc::Sender<Body>,
    pub stats: Arc<ClusterStats>,
    /// For the HTTP API's questions about the whole cluster.
    redis: ConnectionManager,
    node_timeout: Duration,
    /// When this instance last asked all its connections to reconnect (unix ms; 0: never).
    recovered_at: AtomicU64,
    /// Whether "outbox full" was logged since the last publish that went through.
    outbox_full_reported: AtomicBool,
}

impl Cluster {
    /// Starts the bus subscriber, the publisher, the presence recorder and the heartbeat, and
    /// hands the table the queue its presence changes go to. Does not wait for Redis.
    pub fn start(table: Arc<Table>, app_id: &str, settings: ClusterSettings) -> Result<Arc<Self>, ClusterError> {
        let client = redis::Client::open(settings.url.as_str()).map_err(|e| ClusterError(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_MAX);
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| ClusterError(e.to_string()))?;
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let (presence, jobs) = mpsc::unbounded_channel();
        let cluster = Arc::new(Self {
            node: format!("{:016x}", rand::random::<u64>()),
            prefix: format!("banter:{{{app_id}}}"),
            outbox,
            stats: Arc::default(),
            redis: manager.clone(),
            node_timeout: settings.node_timeout,
            recovered_at: AtomicU64::new(0),
            outbox_full_reported: AtomicBool::new(false),
        });
        table.use_cluster_jobs(presence);
        tokio::spawn(Arc::clone(&cluster).publish_loop(manager.clone(), outgoing));
        tokio::spawn(Arc::clone(&cluster).subscribe_loop(client, manager.clone(), Arc::clone(&table)));
        tokio::spawn(Arc::clone(&cluster).presence_loop(manager.clone(), Arc::clone(&table), jobs));
        tokio::spawn(Arc::clone(&cluster).heartbeat_loop(manager, table, settings));
        tracing::info!(node = %cluster.node, "pusher: cluster mode on (Redis pub/sub between instances)");
        Ok(cluster)
    }

    fn bus_channel(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    fn send(&self, body: Body) {
        match self.outbox.try_send(body) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                if !self.outbox_full_reported.swap(true, Ordering::Relaxed) {
                    tracing::warn!("pusher: cluster outbox full, events stay on this instance until Redis catches up");
                }
                // Let the others know something was lost, as soon as there is room.
                let _ = self.outbox.try_send(Body::Resync { channels: None, lost_until: unix_millis() });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// A frame for the subscribers of `channel` on the other instances.
    pub fn deliver(&self, channel: &ChannelName, frame: &Utf8Bytes, exclude: Option<&SocketId>) {
        self.send(Body::Deliver {
            channel: channel.to_string(),
            frame: frame.as_str().to_owned(),
            exclude: exclude.map(ToString::to_string),
        });
    }

    pub fn end_session(&self, session: &str) {
        self.send(Body::EndSession { session: session.to_owned() });
    }

    pub fn unsubscribe_user(&self, user_id: i64, channels: &[ChannelName]) {
        self.send(Body::Unsubscribe { user_id, channels: channels.iter().map(ToString::to_string).collect() });
    }

    /// Sends queued bus messages in pipelines; remembers the channels whose events were lost while
    /// Redis was unreachable and, once a publish goes through again, asks for their resync.
    async fn publish_loop(self: Arc<Self>, mut redis: ConnectionManager, mut outgoing: mpsc::Receiver<Body>) {
        let bus = self.bus_channel();
        let mut lost = Lost::default();
        let mut batch = Vec::with_capacity(BATCH);
        while outgoing.recv_many(&mut batch, BATCH).await > 0 {
            if let Some(resync) = lost.take_if_any() {
                batch.insert(0, resync);
            }
            let mut pipe = redis::pipe();
            for body in &batch {
                match serde_json::to_string(&OutgoingEnvelope { node: &self.node, body }) {
                    Ok(text) => {
                        pipe.publish(&bus, text).ignore();
                    }
                    Err(e) => tracing::error!(error = %e, "pusher: cluster message not serializable"),
                }
            }
            match pipe.query_async::<()>(&mut redis).await {
                Ok(()) => {
                    self.stats.published.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.outbox_full_reported.store(false, Ordering::Relaxed);
                    if lost.reported {
                        tracing::info!("pusher: publishing to the cluster again");
                        lost.reported = false;
                    }
                }
                Err(e) => {
                    self.stats.publish_failures.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    metrics::counter!("banter_redis_errors_total", "component" => "bus").increment(1);
                    if !lost.reported {
                        tracing::warn!(error = %e, "pusher: cannot publish to the cluster; events reach this instance's connections only until Redis is back");
                        lost.reported = true;
                    }
                    let now = unix_millis();
                    for body in &batch {
                        lost.add(body, now);
                    }
                }
            }
            batch.clear();
        }
    }

    /// Applies the other instances' messages; after losing the bus, waits for Redis, then resyncs.
    async fn subscribe_loop(self: Arc<Self>, client: redis::Client, redis: ConnectionManager, table: Arc<Table>) {
        let bus = self.bus_channel();
        let mut retry = RETRY_MIN;
        let mut lost_bus = false;
        loop {
            let subscribed = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&bus).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let mut pubsub = match tokio::time::timeout(RESPONSE_TIMEOUT, subscribed).await {
                Ok(Ok(pubsub)) => pubsub,
                failed => {
                    if !lost_bus {
                        let error = failed.map_or_else(
                            |_| "timed out".to_owned(),
                            |r| r.err().map(|e| e.to_string()).unwrap_or_default(),
                        );
                        tracing::warn!(%error, "pusher: cannot reach Redis; live events stay within this instance until it is back");
                        self.stats.outages.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("banter_redis_errors_total", "component" => "bus").increment(1);
                        lost_bus = true;
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            };
            retry = RETRY_MIN;
            self.stats.connected.store(true, Ordering::Relaxed);
            if lost_bus {
                self.recover(redis.clone(), &table).await;
            }
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match serde_json::from_str::<Envelope>(&payload) {
                    Ok(envelope) if envelope.node == self.node => {}
                    Ok(envelope) => {
                        self.stats.received.fetch_add(1, Ordering::Relaxed);
                        self.apply(&table, envelope.body);
                    }
                    Err(e) => tracing::warn!(error = %e, "pusher: unreadable cluster message ignored"),
                }
            }
            self.stats.connected.store(false, Ordering::Relaxed);
            self.stats.outages.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("banter_redis_errors_total", "component" => "bus").increment(1);
            tracing::warn!("pusher: lost the cluster bus; live events stay within this instance until Redis is back");
            lost_bus = true;
        }
    }

    /// Applies another instance's message to this instance's table.
    fn apply(&self, table: &Table, body: Body) {
        match body {
            Body::Deliver { channel, frame, exclude } => {
                let Ok(channel) = ChannelName::parse(&channel) else { return };
                let exclude = exclude.and_then(|id| SocketId::parse(&id).ok());
                table.publish_frame(&channel, &Utf8Bytes::from(frame), exclude.as_ref());
            }
            Body::EndSession { session } => {
                table.end_session(&session);
            }
            Body::Unsubscribe { user_id, channels } => {
                let channels: Vec<ChannelName> = channels.iter().filter_map(|c| ChannelName::parse(c).ok()).collect();
                table.unsubscribe_user(user_id, &channels);
            }
            Body::Resync { channels, lost_until } => {
                if self.recovered_at.load(Ordering::Relaxed) >= lost_until {
                    return;
                }
                let channels: Option<Vec<ChannelName>> =
                    channels.map(|list| list.iter().filter_map(|c| ChannelName::parse(c).ok()).collect());
                let asked = table.reconnect_all(channels.as_deref());
                tracing::info!(
                    connections = asked,
                    "pusher: events were lost between instances; connections asked to reconnect"
                );
            }
        }
    }

    /// Back on the bus after an outage: this instance's presence records may be stale (Redis may
    /// even have restarted empty), so they are dropped and every connection is asked to come back;
    /// resubscribing records them again and makes each browser fetch what it missed.
    async fn recover(&self, mut redis: ConnectionManager, table: &Table) {
        if let Err(e) = self.reap(&mut redis, table, &self.node, true).await {
            tracing::warn!(error = %e, "pusher: could not clear this instance's presence records");
        }
        self.recovered_at.store(unix_millis(), Ordering::Relaxed);
        let asked = table.reconnect_all(None);
        tracing::info!(
            connections = asked,
            "pusher: back on the cluster bus; connections asked to reconnect and catch up"
        );
    }

    /// Records presence changes in order and announces what changed across the cluster.
    async fn presence_loop(
        self: Arc<Self>,
        mut redis: ConnectionManager,
        table: Arc<Table>,
        mut jobs: mpsc::UnboundedReceiver<ClusterJob>,
    ) {
        let join = redis::Script::new(JOIN);
        let leave = redis::Script::new(LEAVE);
        let subscribed = redis::Script::new(SUBSCRIBED);
        let unsubscribed = redis::Script::new(UNSUBSCRIBED);
        let snapshot = redis::Script::new(SNAPSHOT);
        let mut warned = false;
        let subs = self.subs_key(&self.node);
        let occupancy = self.occupancy_key();
        while let Some(job) = jobs.recv().await {
            match job {
                ClusterJob::Subscribed { channel, first_here } => {
                    let counted = subscribed
                        .key(&subs)
                        .key(&occupancy)
                        .arg(channel.as_str())
                        .invoke_async::<i64>(&mut redis)
                        .await;
                    // Without Redis, this instance's own view decides.
                    let occupied = counted.unwrap_or_else(|e| {
                        self.presence_failed(&mut warned, &e);
                        i64::from(first_here)
                    });
                    if occupied == 1 {
                        table.occupancy_changed(Occupancy::Occupied(channel));
                    }
                }
                ClusterJob::Snapshot(channels) => {
                    let mut invocation = snapshot.prepare_invoke();
                    invocation.key(&subs).key(&occupancy);
                    for (channel, count) in &channels {
                        invocation.arg(channel.as_str()).arg(*count);
                    }
                    match invocation.invoke_async::<(Vec<String>, Vec<String>)>(&mut redis).await {
                        Ok((occupied, vacated)) => {
                            occupancy_changes(&table, occupied, Occupancy::Occupied);
                            occupancy_changes(&table, vacated, Occupancy::Vacated);
                        }
                        Err(e) => self.presence_failed(&mut warned, &e),
                    }
                }
                ClusterJob::Unsubscribed { channel, last_here } => {
                    let counted = unsubscribed
                        .key(&subs)
                        .key(&occupancy)
                        .arg(channel.as_str())
                        .invoke_async::<i64>(&mut redis)
                        .await;
                    let vacated = counted.unwrap_or_else(|e| {
                        self.presence_failed(&mut warned, &e);
                        i64::from(last_here)
                    });
                    if vacated == 1 {
                        table.occupancy_changed(Occupancy::Vacated(channel));
                    }
                }
                ClusterJob::Join { channel, socket_id, user_id, member, max_members, reply } => {
                    let outcome =
                        self.join(&mut redis, &join, &table, &channel, &socket_id, &user_id, member, max_members).await;
                    let outcome = match outcome {
                        Ok(outcome) => outcome,
                        Err((e, member)) => {
                            self.presence_failed(&mut warned, &e);
                            if let Some(member) = member {
                                let added = text(&Frame::member_added(channel.clone(), member));
                                table.publish_frame(&channel, &added, Some(&socket_id));
                            }
                            JoinOutcome::Local
                        }
                    };
                    let _ = reply.send(outcome);
                }
                ClusterJob::Leave { channel, user_id } => {
                    let gone = leave
                        .key(self.counts_key(&channel))
                        .key(self.infos_key(&channel))
                        .key(self.node_key(&self.node))
                        .arg(&user_id)
                        .arg(pair(&channel, &user_id))
                        .invoke_async::<i64>(&mut redis)
                        .await;
                    let gone = gone.unwrap_or_else(|e| {
                        self.presence_failed(&mut warned, &e);
                        1
                    });
                    if gone == 1 {
                        self.announce(&table, &channel, &text(&Frame::member_removed(channel.clone(), user_id)), None);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn join(
        &self,
        redis: &mut ConnectionManager,
        script: &redis::Script,
        table: &Table,
        channel: &ChannelName,
        socket_id: &SocketId,
        user_id: &str,
        member: Option<PresenceMember>,
        max_members: usize,
    ) -> Result<JoinOutcome, (redis::RedisError, Option<PresenceMember>)> {
        if let Some(member) = member {
            let info = member.user_info.as_ref().map_or_else(|| "null".to_owned(), ToString::to_string);
            let joined = script
                .key(self.counts_key(channel))
                .key(self.infos_key(channel))
                .key(self.node_key(&self.node))
                .arg(user_id)
                .arg(pair(channel, user_id))
                .arg(info)
                .arg(max_members)
                .invoke_async::<i64>(redis)
                .await;
            match joined {
                Ok(-1) => return Ok(JoinOutcome::Full { max: max_members }),
                Ok(1) => {
                    let added = text(&Frame::member_added(channel.clone(), member));
                    self.announce(table, channel, &added, Some(socket_id));
                }
                Ok(_) => {}
                Err(e) => return Err((e, Some(member))),
            }
        }
        let infos: Vec<(String, String)> =
            redis::cmd("HGETALL").arg(self.infos_key(channel)).query_async(redis).await.map_err(|e| (e, None))?;
        let members = infos
            .into_iter()
            .map(|(id, info)| {
                PresenceMember::new(id, serde_json::from_str(&info).ok().filter(|v: &serde_json::Value| !v.is_null()))
            })
            .collect();
        Ok(JoinOutcome::Members(members))
    }

    fn presence_failed(&self, warned: &mut bool, error: &redis::RedisError) {
        self.stats.presence_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("banter_redis_errors_total", "component" => "presence").increment(1);
        if !*warned {
            tracing::warn!(%error, "pusher: cannot record presence in Redis; online status is this instance's only");
            *warned = true;
        }
    }

    /// Delivers to this instance's subscribers and publishes for the others'.
    fn announce(&self, table: &Table, channel: &ChannelName, frame: &Utf8Bytes, exclude: Option<&SocketId>) {
        table.publish_frame(channel, frame, exclude);
        self.deliver(channel, frame, exclude);
    }

    /// Says this instance is alive, and takes back the presence records of instances that are not.
    async fn heartbeat_loop(
        self: Arc<Self>,
        mut redis: ConnectionManager,
        table: Arc<Table>,
        settings: ClusterSettings,
    ) {
        let nodes = self.nodes_key();
        let occupancy = self.occupancy_key();
        let mut tick = tokio::time::interval(settings.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = unix_millis();
            let timeout = u64::try_from(settings.node_timeout.as_millis()).unwrap_or(u64::MAX);
            let beat: redis::RedisResult<Vec<String>> = async {
                redis::cmd("ZADD").arg(&nodes).arg(now).arg(&self.node).query_async::<()>(&mut redis).await?;
                // A cluster that stops altogether leaves nothing behind for long, nor any occupancy.
                for key in [&nodes, &occupancy] {
                    redis::cmd("PEXPIRE")
                        .arg(key)
                        .arg(timeout.saturating_mul(10))
                        .query_async::<()>(&mut redis)
                        .await?;
                }
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&nodes)
                    .arg("-inf")
                    .arg(format!("({}", now.saturating_sub(timeout)))
                    .query_async(&mut redis)
                    .await
            }
            .await;
            let Ok(dead) = beat else { continue };
            table.snapshot_subscriptions();
            for node in dead {
                match self.reap(&mut redis, &table, &node, false).await {
                    Ok(gone) => {
                        if !gone.is_empty() {
                            tracing::info!(node = %node, members = gone.len(), "pusher: took back the presence of a vanished instance");
                        }
                        for (channel, user_id) in gone {
                            self.announce(
                                &table,
                                &channel,
                                &text(&Frame::member_removed(channel.clone(), user_id)),
                                None,
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "pusher: could not take back a vanished instance's presence"),
                }
            }
        }
    }

    /// Runs [`REAP`] for `node`: the (channel, user) pairs that left the cluster with it, and the
    /// channels it leaves vacated (already reported to the table's occupancy listener).
    async fn reap(
        &self,
        redis: &mut ConnectionManager,
        table: &Table,
        node: &str,
        force: bool,
    ) -> redis::RedisResult<Vec<(ChannelName, String)>> {
        let (gone, vacated): (Vec<String>, Vec<String>) = redis::Script::new(REAP)
            .key(self.nodes_key())
            .key(self.node_key(node))
            .key(self.subs_key(node))
            .arg(node)
            .arg(&self.prefix)
            .arg(if force { "1" } else { "0" })
            .invoke_async(redis)
            .await?;
        occupancy_changes(table, vacated, Occupancy::Vacated);
        Ok(gone
            .into_iter()
            .filter_map(|pair| {
                let (channel, user) = pair.split_once('\n')?;
                Some((ChannelName::parse(channel).ok()?, user.to_owned()))
            })
            .collect())
    }

    fn counts_key(&self, channel: &ChannelName) -> String {
        format!("{}:pc:{channel}", self.prefix)
    }

    fn infos_key(&self, channel: &ChannelName) -> String {
        format!("{}:pi:{channel}", self.prefix)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    fn subs_key(&self, node: &str) -> String {
        format!("{}:subs:{node}", self.prefix)
    }

    /// Per channel, how many instances hold a subscription to it (REAP spells it too).
    fn occupancy_key(&self) -> String {
        format!("{}:occ", self.prefix)
    }

    /// The instances that said they were alive within the node timeout.
    async fn live_nodes(&self, redis: &mut ConnectionManager) -> redis::RedisResult<Vec<String>> {
        let timeout = u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX);
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.nodes_key())
            .arg(unix_millis().saturating_sub(timeout))
            .arg("+inf")
            .query_async(redis)
            .await
    }

    /// Subscriptions to `channel` on every live instance, and its users if it is a presence
    /// channel; `None` when nobody is subscribed anywhere.
    pub async fn channel_stats(&self, channel: &ChannelName) -> redis::RedisResult<Option<ChannelStats>> {
        let mut redis = self.redis.clone();
        let nodes = self.live_nodes(&mut redis).await?;
        let mut pipe = redis::pipe();
        for node in &nodes {
            pipe.hget(self.subs_key(node), channel.as_str());
        }
        let counts: Vec<Option<usize>> = pipe.query_async(&mut redis).await?;
        let subscription_count: usize = counts.into_iter().flatten().sum();
        if subscription_count == 0 {
            return Ok(None);
        }
        let user_count = match channel.kind() {
            ChannelKind::Presence => {
                Some(redis::cmd("HLEN").arg(self.counts_key(channel)).query_async(&mut redis).await?)
            }
            _ => None,
        };
        Ok(Some(ChannelStats { subscription_count, user_count }))
    }

    /// Channels occupied on any live instance whose name starts with `prefix`, sorted by name.
    pub async fn occupied_channels(&self, prefix: &str) -> redis::RedisResult<Vec<(ChannelName, ChannelStats)>> {
        let mut redis = self.redis.clone();
        let nodes = self.live_nodes(&mut redis).await?;
        let mut pipe = redis::pipe();
        for node in &nodes {
            pipe.hgetall(self.subs_key(node));
        }
        let per_node: Vec<Vec<(String, usize)>> = pipe.query_async(&mut redis).await?;
        let mut totals: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for (name, count) in per_node.into_iter().flatten() {
            if name.starts_with(prefix) && count > 0 {
                *totals.entry(name).or_default() += count;
            }
        }
        let channels: Vec<(ChannelName, usize)> =
            totals.into_iter().filter_map(|(name, n)| Some((ChannelName::parse(&name).ok()?, n))).collect();
        let mut pipe = redis::pipe();
        for (channel, _) in &channels {
            pipe.hlen(self.counts_key(channel));
        }
        let users: Vec<usize> = pipe.query_async(&mut redis).await?;
        Ok(channels
            .into_iter()
            .zip(users)
            .map(|((channel, subscription_count), users)| {
                let user_count = (channel.kind() == ChannelKind::Presence).then_some(users);
                (channel, ChannelStats { subscription_count, user_count })
            })
            .collect())
    }

    /// The `user_id`s present on a presence channel anywhere in the cluster, sorted.
    pub async fn presence_user_ids(&self, channel: &ChannelName) -> redis::RedisResult<Vec<String>> {
        let mut ids: Vec<String> =
            redis::cmd("HKEYS").arg(self.counts_key(channel)).query_async(&mut self.redis.clone()).await?;
        ids.sort();
        Ok(ids)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
}

/// A presence record's field in an instance's hash: channel names cannot hold a newline.
fn pair(channel: &ChannelName, user_id: &str) -> String {
    format!("{channel}\n{user_id}")
}

fn text(frame: &Frame) -> Utf8Bytes {
    Utf8Bytes::from(frame.to_json())
}

/// Hands the table's occupancy listener the changes a script returned.
fn occupancy_changes(table: &Table, channels: Vec<String>, change: fn(ChannelName) -> Occupancy) {
    for channel in channels.iter().filter_map(|c| ChannelName::parse(c).ok()) {
        table.occupancy_changed(change(channel));
    }
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The channels whose events did not reach the bus, to be resynced once it is back.
#[derive(Debug, Default)]
struct Lost {
    channels: HashSet<String>,
    everything: bool,
    /// When the last of them was lost (unix ms).
    until: u64,
    reported: bool,
}

impl Lost {
    fn add(&mut self, body: &Body, now: u64) {
        self.until = now;
        match body {
            Body::Deliver { channel, .. } if self.channels.len() < MAX_RESYNC_CHANNELS => {
                self.channels.insert(channel.clone());
            }
            Body::Unsubscribe { channels, .. } => {
                self.channels.extend(channels.iter().cloned());
            }
            Body::Resync { channels: Some(channels), .. } => self.channels.extend(channels.iter().cloned()),
            // A lost sign-out (or too many channels): every connection reconnects, and the ended
            // session cannot authorize its subscriptions again.
            _ => self.everything = true,
        }
        if self.channels.len() > MAX_RESYNC_CHANNELS {
            self.everything = true;
        }
    }

    fn take_if_any(&mut self) -> Option<Body> {
        if !self.everything && self.channels.is_empty() {
            return None;
        }
        let mut channels: Option<Vec<String>> = (!self.everything).then(|| self.channels.drain().collect());
        if let Some(list) = &mut channels {
            list.sort();
        }
        self.channels.clear();
        self.everything = false;
        Some(Body::Resync { channels, lost_until: self.until })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_messages_round_trip_as_json() {
        let body = Body::Deliver { channel: "private-user.1".into(), frame: "{}".into(), exclude: Some("1.2".into()) };
        let text = serde_json::to_string(&OutgoingEnvelope { node: "n1", body: &body }).unwrap();
        assert_eq!(text, r#"{"node":"n1","kind":"deliver","channel":"private-user.1","frame":"{}","exclude":"1.2"}"#);
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!((back.node.as_str(), back.body), ("n1", body));
    }

    #[test]
    fn lost_events_resync_their_channels_or_everything() {
        let mut lost = Lost::default();
        assert_eq!(lost.take_if_any(), None);
        lost.add(&Body::Deliver { channel: "private-user.1".into(), frame: String::new(), exclude: None }, 5);
        lost.add(&Body::Deliver { channel: "private-user.1".into(), frame: String::new(), exclude: None }, 7);
        assert_eq!(
            lost.take_if_any(),
            Some(Body::Resync { channels: Some(vec!["private-user.1".into()]), lost_until: 7 })
        );
        assert_eq!(lost.take_if_any(), None, "asked once");
        for n in 0..=MAX_RESYNC_CHANNELS {
            lost.add(&Body::Deliver { channel: format!("private-user.{n}"), frame: String::new(), exclude: None }, 8);
        }
        assert_eq!(lost.take_if_any(), Some(Body::Resync { channels: None, lost_until: 8 }));
        lost.add(&Body::EndSession { session: "s".into() }, 9);
        assert_eq!(
            lost.take_if_any(),
            Some(Body::Resync { channels: None, lost_until: 9 }),
            "a lost sign-out reconnects everyone"
        );
    }
}
