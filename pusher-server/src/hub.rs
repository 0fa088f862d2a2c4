//! The channel table: which connection is subscribed where, who is present on presence channels, and
//! delivery of frames into each connection's bounded queue.
//!
//! Invariants:
//! - every frame is serialized once per channel and shared (`Utf8Bytes` is reference-counted), never
//!   once per subscriber;
//! - the lock is a std `RwLock` held only for map updates and `try_send`s, never across an await;
//! - a connection whose queue is full is told to close with 4100 and removed from the table at once,
//!   so a client that stops reading costs at most `send_queue` frames;
//! - a presence channel lists each `user_id` once, however many connections that user has; it
//!   announces `member_added` on the user's first connection and `member_removed` after the last;
//! - a channel's first subscription and its last unsubscription are reported as [`Occupancy`]
//!   changes (by the cluster instead, in cluster mode, where only the whole cluster knows).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::extract::ws::Utf8Bytes;
use pusher_protocol::{ChannelKind, ChannelName, ClientEvent, Frame, PresenceMember, ProtocolError, SocketId};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::Occupancy;
use super::cluster::{ClusterJob, JoinOutcome};

/// A connection as the table sees it: where its frames go and how to ask it to close.
#[derive(Debug)]
struct Peer {
    socket_id: SocketId,
    queue: mpsc::Sender<Utf8Bytes>,
    close: watch::Sender<Option<ProtocolError>>,
}

impl Peer {
    /// Queues a frame without waiting. A full queue means the client stopped reading: it is asked to
    /// close with 4100 and `false` is returned so the caller drops it from the table.
    fn offer(&self, text: &Utf8Bytes) -> bool {
        match self.queue.try_send(text.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(socket_id = %self.socket_id, "pusher: send queue full, closing the connection");
                metrics::counter!("banter_pusher_queue_overflows_total").increment(1);
                self.close(ProtocolError::OverCapacity);
                false
            }
            // The connection's loop has ended and is about to unregister it.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// Asks the connection's loop to close with `reason`; the first reason wins.
    fn close(&self, reason: ProtocolError) {
        self.close.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }
}

/// What a connection's loop holds: its id, its queue of outgoing frames, and the close request.
#[derive(Debug)]
pub(crate) struct Registration {
    pub socket_id: SocketId,
    pub queue: mpsc::Receiver<Utf8Bytes>,
    /// Becomes `Some(error)` when the hub wants the connection closed with that error's code.
    pub close: watch::Receiver<Option<ProtocolError>>,
}

/// A channel's numbers as the HTTP API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelStats {
    pub subscription_count: usize,
    /// Distinct users; `Some` on presence channels only.
    pub user_count: Option<usize>,
}

/// What a subscription answers: at once, or (a presence channel in cluster mode) once the
/// cluster has said who is there.
#[derive(Debug)]
pub(crate) enum Subscribed {
    Ready(Utf8Bytes),
    /// `local` is the answer with this instance's members, for when the cluster cannot be asked.
    Pending {
        outcome: oneshot::Receiver<JoinOutcome>,
        local: Utf8Bytes,
    },
}

#[cfg(test)]
impl Subscribed {
    fn ready(self) -> Utf8Bytes {
        match self {
            Self::Ready(text) => text,
            Self::Pending { .. } => panic!("a single-process table answers at once"),
        }
    }
}

/// Why a client event was not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelayError {
    NotSubscribed,
}

/// What one connection, address or user may hold. 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Caps {
    pub channels_per_connection: usize,
    pub connections_per_address: usize,
    pub connections_per_user: usize,
}

/// Why a connection could not be bound to a user (see [`Table::bind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("this connection belongs to someone else")]
    OtherUser,
    #[error("you already have {max} live connections; close a tab and try again")]
    TooManyForUser { max: usize },
}

#[derive(Debug)]
pub(crate) struct Table {
    state: RwLock<State>,
    send_queue: usize,
    max_presence_members: usize,
    caps: Caps,
    /// Woken whenever the last connection has gone.
    idle: Notify,
    /// Cluster mode: subscriptions and presence changes go here, in order; the cluster records them
    /// and announces presence. Without it, the table announces `member_added`/`member_removed`.
    cluster_jobs: OnceLock<mpsc::UnboundedSender<ClusterJob>>,
    /// Where channels becoming occupied or vacated are reported, once someone asked.
    occupancy: OnceLock<mpsc::UnboundedSender<Occupancy>>,
    /// Told the id of every session that ends, here or on another instance, once someone asked.
    ended_sessions: OnceLock<SessionListener>,
}

/// What [`Table::report_ended_sessions`] calls: synchronously, so that whatever it forgets is
/// forgotten before the next request this instance serves.
pub(crate) struct SessionListener(pub(crate) Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for SessionListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionListener")
    }
}

/// Where the table's changes go besides its own maps: the cluster (which then also reports
/// occupancy), or the occupancy listener directly.
#[derive(Clone, Copy)]
struct Sinks<'a> {
    cluster: Option<&'a mpsc::UnboundedSender<ClusterJob>>,
    occupancy: Option<&'a mpsc::UnboundedSender<Occupancy>>,
}

impl Sinks<'_> {
    /// Reports a change this instance alone can decide (no cluster).
    fn local_occupancy(&self, change: impl FnOnce() -> Occupancy) {
        if self.cluster.is_none()
            && let Some(occupancy) = self.occupancy
        {
            let _ = occupancy.send(change());
        }
    }
}

#[derive(Debug, Default)]
struct State {
    shut_down: bool,
    connections: HashMap<SocketId, Connection>,
    channels: HashMap<ChannelName, Channel>,
    /// Open connections per client address (only addresses that have one).
    per_address: HashMap<IpAddr, usize>,
    /// Connections bound to each user (only users that have one).
    per_user: HashMap<i64, usize>,
}

#[derive(Debug)]
struct Connection {
    peer: Arc<Peer>,
    channels: HashSet<ChannelName>,
    address: Option<IpAddr>,
    /// The user whose `/broadcasting/auth` signed this connection's subscriptions, and the
    /// sessions that did: when one of them ends, so does the connection.
    owner: Option<Owner>,
}

#[derive(Debug)]
struct Owner {
    user_id: i64,
    sessions: Vec<String>,
}

/// Sessions remembered per connection; a tab's socket is signed by one session, rarely two.
const MAX_SESSIONS_PER_CONNECTION: usize = 4;

/// Counts one more for `key` unless it already has `max` (0: no limit). A refused key already
/// had at least one, so no empty entry is left behind.
fn take_slot<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K, max: usize) -> bool {
    let count = counts.entry(key).or_default();
    if max > 0 && *count >= max {
        return false;
    }
    *count += 1;
    true
}

/// Gives back what [`take_slot`] counted; the entry goes when it reaches zero.
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// An occupied channel; removed as soon as its last subscriber leaves.
#[derive(Debug, Default)]
struct Channel {
    subscribers: HashMap<SocketId, Subscriber>,
    /// Presence channels only, keyed by `user_id`.
    members: BTreeMap<String, Member>,
}

#[derive(Debug)]
struct Subscriber {
    peer: Arc<Peer>,
    /// The presence `user_id` this connection joined as.
    user_id: Option<String>,
}

#[derive(Debug)]
struct Member {
    /// From the user's first connection; later connections' info is ignored.
    info: Option<Value>,
    connections: usize,
}

impl Channel {
    fn presence_members(&self) -> Vec<PresenceMember> {
        self.members.iter().map(|(id, m)| PresenceMember::new(id.clone(), m.info.clone())).collect()
    }

    /// Queues `text` for every subscriber but `exclude`; returns those whose queue was full.
    fn deliver(&self, text: &Utf8Bytes, exclude: Option<&SocketId>, overflowed: &mut Vec<SocketId>) {
        let mut delivered = 0u64;
        for (socket_id, subscriber) in &self.subscribers {
            if Some(socket_id) == exclude {
                continue;
            }
            if subscriber.peer.offer(text) {
                delivered += 1;
            } else {
                overflowed.push(socket_id.clone());
            }
        }
        metrics::counter!("banter_pusher_deliveries_total").increment(delivered);
    }

    fn stats(&self, kind: ChannelKind) -> ChannelStats {
        ChannelStats {
            subscription_count: self.subscribers.len(),
            user_count: (kind == ChannelKind::Presence).then_some(self.members.len()),
        }
    }
}

/// The `kind` label of the subscription gauge.
fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Public => "public",
        ChannelKind::Private => "private",
        ChannelKind::PrivateEncrypted => "encrypted",
        ChannelKind::Presence => "presence",
    }
}

fn text(frame: &Frame) -> Utf8Bytes {
    Utf8Bytes::from(frame.to_json())
}

impl State {
    /// Unsubscribes `socket_id` from `channel`, announcing `member_removed` if it was the user's last
    /// connection there. Returns connections that overflowed on that announcement.
    fn leave(&mut self, socket_id: &SocketId, channel: &ChannelName, sinks: Sinks<'_>) -> Vec<SocketId> {
        let cluster = sinks.cluster;
        let mut overflowed = Vec::new();
        let Some(entry) = self.channels.get_mut(channel.as_str()) else {
            return overflowed;
        };
        let Some(subscriber) = entry.subscribers.remove(socket_id) else {
            return overflowed;
        };
        metrics::gauge!("banter_pusher_subscriptions", "kind" => kind_label(channel.kind())).decrement(1.0);
        let last_here = entry.subscribers.is_empty();
        if let Some(cluster) = cluster {
            let _ = cluster.send(ClusterJob::Unsubscribed { channel: channel.clone(), last_here });
        }
        if let Some(user_id) = subscriber.user_id
            && let Some(member) = entry.members.get_mut(&user_id)
        {
            member.connections = member.connections.saturating_sub(1);
            if member.connections == 0 {
                entry.members.remove(&user_id);
                if let Some(cluster) = cluster {
                    let _ = cluster.send(ClusterJob::Leave { channel: channel.clone(), user_id });
                } else {
                    let removed = text(&Frame::member_removed(channel.clone(), user_id));
                    entry.deliver(&removed, None, &mut overflowed);
                }
            }
        }
        if last_here {
            self.channels.remove(channel.as_str());
            sinks.local_occupancy(|| Occupancy::Vacated(channel.clone()));
        }
        overflowed
    }

    /// Removes a connection and all its subscriptions. Returns connections that overflowed on the
    /// resulting `member_removed` announcements.
    fn remove_connection(&mut self, socket_id: &SocketId, sinks: Sinks<'_>) -> Vec<SocketId> {
        let Some(connection) = self.connections.remove(socket_id) else {
            return Vec::new();
        };
        metrics::gauge!("banter_pusher_connections").decrement(1.0);
        if let Some(address) = &connection.address {
            decrement(&mut self.per_address, address);
        }
        if let Some(owner) = &connection.owner {
            decrement(&mut self.per_user, &owner.user_id);
        }
        connection.channels.iter().flat_map(|channel| self.leave(socket_id, channel, sinks)).collect()
    }
}

impl Table {
    #[cfg(test)]
    pub fn new(send_queue: usize, max_presence_members: usize) -> Self {
        Self::with_caps(send_queue, max_presence_members, Caps::default())
    }

    pub fn with_caps(send_queue: usize, max_presence_members: usize, caps: Caps) -> Self {
        Self {
            state: RwLock::default(),
            send_queue: send_queue.max(1),
            max_presence_members,
            caps,
            idle: Notify::new(),
            cluster_jobs: OnceLock::new(),
            occupancy: OnceLock::new(),
            ended_sessions: OnceLock::new(),
        }
    }

    /// From now on, the id of every session that ends (through [`Table::end_session`]: on this
    /// instance, or another's through the cluster bus) is handed to `listener`. Only the first
    /// listener is kept; false for any later one.
    pub fn report_ended_sessions(&self, listener: SessionListener) -> bool {
        self.ended_sessions.set(listener).is_ok()
    }

    /// From now on, channels becoming occupied or vacated are sent to `listener`. Only the first
    /// listener is kept; false for any later one.
    pub fn report_occupancy(&self, listener: mpsc::UnboundedSender<Occupancy>) -> bool {
        self.occupancy.set(listener).is_ok()
    }

    /// Hands an occupancy change the cluster decided to the listener, if any.
    pub fn occupancy_changed(&self, change: Occupancy) {
        if let Some(occupancy) = self.occupancy.get() {
            let _ = occupancy.send(change);
        }
    }

    fn sinks(&self) -> Sinks<'_> {
        Sinks { cluster: self.cluster_jobs.get(), occupancy: self.occupancy.get() }
    }

    /// Cluster mode: from now on subscriptions and presence changes are sent to `jobs`, and
    /// presence is no longer announced here.
    pub fn use_cluster_jobs(&self, jobs: mpsc::UnboundedSender<ClusterJob>) {
        let _ = self.cluster_jobs.set(jobs);
    }

    fn cluster(&self) -> Option<&mpsc::UnboundedSender<ClusterJob>> {
        self.cluster_jobs.get()
    }

    // A panic elsewhere while holding the lock leaves the maps consistent (every update is a single
    // insert/remove), so poisoning is ignored rather than turned into a panic here.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection from `address` under a fresh random socket id. Refused with 4200
    /// after shutdown, and with 4100 when the address already holds its share of connections.
    pub fn connect(&self, address: Option<IpAddr>) -> Result<Registration, ProtocolError> {
        let (queue_tx, queue) = mpsc::channel(self.send_queue);
        let (close_tx, close) = watch::channel(None);
        let mut state = self.write();
        if state.shut_down {
            return Err(ProtocolError::GoingAway);
        }
        let max = self.caps.connections_per_address;
        if let Some(address) = address
            && !take_slot(&mut state.per_address, address, max)
        {
            return Err(ProtocolError::TooManyConnections { max });
        }
        let socket_id = loop {
            let id = SocketId::from_parts(rand::random(), rand::random());
            if !state.connections.contains_key(&id) {
                break id;
            }
        };
        let peer = Arc::new(Peer { socket_id: socket_id.clone(), queue: queue_tx, close: close_tx });
        metrics::gauge!("banter_pusher_connections").increment(1.0);
        state
            .connections
            .insert(socket_id.clone(), Connection { peer, channels: HashSet::new(), address, owner: None });
        Ok(Registration { socket_id, queue, close })
    }

    /// Records that `session` of `user_id` authorized a subscription of `socket_id`. A connection
    /// serves one user; each user holds at most `connections_per_user` of them. Unknown socket ids
    /// (a connection on another server, or one that already closed) have nothing to bind.
    pub fn bind(&self, socket_id: &SocketId, user_id: i64, session: &str) -> Result<(), BindError> {
        let mut guard = self.write();
        let state = &mut *guard;
        let Some(connection) = state.connections.get_mut(socket_id) else { return Ok(()) };
        let owner = match &mut connection.owner {
            Some(owner) if owner.user_id != user_id => return Err(BindError::OtherUser),
            Some(owner) => owner,
            None => {
                let max = self.caps.connections_per_user;
                if !take_slot(&mut state.per_user, user_id, max) {
                    return Err(BindError::TooManyForUser { max });
                }
                connection.owner.insert(Owner { user_id, sessions: Vec::new() })
            }
        };
        if !owner.sessions.iter().any(|s| s == session) {
            if owner.sessions.len() >= MAX_SESSIONS_PER_CONNECTION {
                owner.sessions.remove(0);
            }
            owner.sessions.push(session.to_owned());
        }
        Ok(())
    }

    /// Closes (4009, unauthorized: clients do not reconnect) every connection that `session`
    /// authorized, because that session has ended. Returns how many.
    pub fn end_session(&self, session: &str) -> usize {
        if let Some(listener) = self.ended_sessions.get() {
            (listener.0)(session);
        }
        let state = self.read();
        let mut closed = 0;
        for connection in state.connections.values() {
            if connection.owner.as_ref().is_some_and(|owner| owner.sessions.iter().any(|s| s == session)) {
                connection.peer.close(ProtocolError::Unauthorized);
                closed += 1;
            }
        }
        closed
    }

    /// Unsubscribes every connection bound to `user_id` from `channels` (they were removed from a
    /// group). Returns how many subscriptions ended.
    pub fn unsubscribe_user(&self, user_id: i64, channels: &[ChannelName]) -> usize {
        let subscribed: Vec<(SocketId, ChannelName)> = {
            let state = self.read();
            state
                .connections
                .iter()
                .filter(|(_, c)| c.owner.as_ref().is_some_and(|owner| owner.user_id == user_id))
                .flat_map(|(id, c)| {
                    channels
                        .iter()
                        .filter(|ch| c.channels.contains(ch.as_str()))
                        .map(move |ch| (id.clone(), ch.clone()))
                })
                .collect()
        };
        for (socket_id, channel) in &subscribed {
            self.unsubscribe(socket_id, channel);
        }
        subscribed.len()
    }

    /// Removes a connection and its subscriptions; a no-op for unknown ids.
    pub fn disconnect(&self, socket_id: &SocketId) {
        self.remove_connections(vec![socket_id.clone()]);
    }

    /// Removes connections, then any that overflowed on the `member_removed` frames this caused.
    fn remove_connections(&self, mut pending: Vec<SocketId>) {
        while let Some(socket_id) = pending.pop() {
            let (overflowed, idle) = {
                let mut state = self.write();
                (state.remove_connection(&socket_id, self.sinks()), state.connections.is_empty())
            };
            if idle {
                self.idle.notify_waiters();
            }
            pending.extend(overflowed);
        }
    }

    /// Resolves once no connection is left.
    pub async fn idle(&self) {
        loop {
            // Created before the check, so a notification between the check and the await is kept.
            let notified = self.idle.notified();
            if self.read().connections.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Subscribes an authorized connection (`member` is the verified presence member, `None` for
    /// other kinds). Returns the `subscription_succeeded` frame to send it; subscribing again to the
    /// same channel just repeats that answer.
    pub fn subscribe(
        &self,
        socket_id: &SocketId,
        channel: &ChannelName,
        member: Option<PresenceMember>,
    ) -> Result<Subscribed, ProtocolError> {
        let mut overflowed = Vec::new();
        let mut outcome = None;
        let succeeded = {
            let mut guard = self.write();
            let state = &mut *guard;
            // Already removed (queue overflow or shutdown): the loop is closing anyway.
            let connection = state.connections.get_mut(socket_id).ok_or(ProtocolError::GoingAway)?;
            let max = self.caps.channels_per_connection;
            if max > 0 && connection.channels.len() >= max && !connection.channels.contains(channel.as_str()) {
                return Err(ProtocolError::TooManyChannels { max });
            }
            let entry = state.channels.entry(channel.clone()).or_default();
            if !entry.subscribers.contains_key(socket_id) {
                let user_id = member.as_ref().map(|m| m.user_id.clone());
                if let Some(member) = member {
                    // The user's first connection here: the cluster (or this table) announces it.
                    let mut first = None;
                    if let Some(existing) = entry.members.get_mut(&member.user_id) {
                        existing.connections += 1;
                    } else {
                        if entry.members.len() >= self.max_presence_members {
                            let max = u32::try_from(self.max_presence_members).unwrap_or(u32::MAX);
                            if entry.subscribers.is_empty() {
                                state.channels.remove(channel.as_str());
                            }
                            return Err(ProtocolError::PresenceChannelFull { max });
                        }
                        if self.cluster().is_none() {
                            let added = text(&Frame::member_added(channel.clone(), member.clone()));
                            entry.deliver(&added, None, &mut overflowed);
                        }
                        entry
                            .members
                            .insert(member.user_id.clone(), Member { info: member.user_info.clone(), connections: 1 });
                        first = Some(member.clone());
                    }
                    if let Some(cluster) = self.cluster() {
                        let (reply, receiver) = oneshot::channel();
                        let _ = cluster.send(ClusterJob::Join {
                            channel: channel.clone(),
                            socket_id: socket_id.clone(),
                            user_id: member.user_id,
                            member: first,
                            max_members: self.max_presence_members,
                            reply,
                        });
                        outcome = Some(receiver);
                    }
                }
                let peer = Arc::clone(&connection.peer);
                entry.subscribers.insert(socket_id.clone(), Subscriber { peer, user_id });
                connection.channels.insert(channel.clone());
                metrics::gauge!("banter_pusher_subscriptions", "kind" => kind_label(channel.kind())).increment(1.0);
                let first_here = entry.subscribers.len() == 1;
                if let Some(cluster) = self.cluster() {
                    let _ = cluster.send(ClusterJob::Subscribed { channel: channel.clone(), first_here });
                } else if first_here {
                    self.sinks().local_occupancy(|| Occupancy::Occupied(channel.clone()));
                }
            }
            let presence = (channel.kind() == ChannelKind::Presence).then(|| entry.presence_members());
            text(&Frame::subscription_succeeded(channel.clone(), presence))
        };
        self.remove_connections(overflowed);
        Ok(match outcome {
            Some(outcome) => Subscribed::Pending { outcome, local: succeeded },
            None => Subscribed::Ready(succeeded),
        })
    }

    /// Unsubscribes a connection; a no-op if it was not subscribed.
    pub fn unsubscribe(&self, socket_id: &SocketId, channel: &ChannelName) {
        let overflowed = {
            let mut state = self.write();
            if let Some(connection) = state.connections.get_mut(socket_id) {
                connection.channels.remove(channel.as_str());
            }
            state.leave(socket_id, channel, self.sinks())
        };
        self.remove_connections(overflowed);
    }

    /// Relays a client event from `sender` to the channel's other subscribers, with the sender's
    /// presence `user_id` as the server knows it. Returns the frame as relayed.
    pub fn relay_client_event(&self, sender: &SocketId, event: ClientEvent) -> Result<Utf8Bytes, RelayError> {
        let mut overflowed = Vec::new();
        let relayed = {
            let state = self.read();
            let channel = state.channels.get(event.channel().as_str()).ok_or(RelayError::NotSubscribed)?;
            let subscriber = channel.subscribers.get(sender).ok_or(RelayError::NotSubscribed)?;
            let relayed = text(&Frame::ClientEvent(event.with_sender(subscriber.user_id.clone())));
            channel.deliver(&relayed, Some(sender), &mut overflowed);
            relayed
        };
        self.remove_connections(overflowed);
        Ok(relayed)
    }

    /// Publishes an application event to one channel's subscribers, except `exclude`. Fails only for
    /// an invalid event (reserved name, data over 10 KiB).
    #[cfg(test)]
    pub fn publish(
        &self,
        channel: &ChannelName,
        event: &str,
        data: &str,
        exclude: Option<&SocketId>,
    ) -> Result<(), ProtocolError> {
        let frame = Frame::event(event, channel.clone(), data)?;
        self.publish_frame(channel, &text(&frame), exclude);
        Ok(())
    }

    /// Delivers an already serialized event; the HTTP API validates a whole request before calling this.
    pub fn publish_frame(&self, channel: &ChannelName, text: &Utf8Bytes, exclude: Option<&SocketId>) {
        let mut overflowed = Vec::new();
        if let Some(entry) = self.read().channels.get(channel.as_str()) {
            entry.deliver(text, exclude, &mut overflowed);
        }
        self.remove_connections(overflowed);
    }

    /// Asks every connection to close with 4200 and refuses new ones. Returns how many were asked.
    pub fn shut_down(&self) -> usize {
        let mut state = self.write();
        state.shut_down = true;
        for connection in state.connections.values() {
            connection.peer.close(ProtocolError::GoingAway);
        }
        state.connections.len()
    }

    /// Cluster mode: queues a [`ClusterJob::Snapshot`] of every channel's subscriptions here, in
    /// order with the changes queued around it.
    pub fn snapshot_subscriptions(&self) {
        let state = self.read();
        if let Some(cluster) = self.cluster() {
            let counts = state.channels.iter().map(|(name, c)| (name.clone(), c.subscribers.len())).collect();
            let _ = cluster.send(ClusterJob::Snapshot(counts));
        }
    }

    /// Asks the connections subscribed to any of `channels` (all of them: `None`) to reconnect
    /// (4200), without refusing new ones: after events were lost between instances, a browser that
    /// resubscribes fetches what it missed. Returns how many were asked.
    pub fn reconnect_all(&self, channels: Option<&[ChannelName]>) -> usize {
        let state = self.read();
        let mut asked = 0;
        for connection in state.connections.values() {
            let wanted = channels.is_none_or(|list| list.iter().any(|c| connection.channels.contains(c.as_str())));
            if wanted {
                connection.peer.close(ProtocolError::GoingAway);
                asked += 1;
            }
        }
        asked
    }

    pub fn connection_count(&self) -> usize {
        self.read().connections.len()
    }

    /// A channel's numbers, or `None` when nobody is subscribed.
    pub fn channel_stats(&self, channel: &ChannelName) -> Option<ChannelStats> {
        self.read().channels.get(channel.as_str()).map(|c| c.stats(channel.kind()))
    }

    /// Occupied channels whose name starts with `prefix`, sorted by name.
    pub fn occupied_channels(&self, prefix: &str) -> Vec<(ChannelName, ChannelStats)> {
        let state = self.read();
        let mut channels: Vec<_> = state
            .channels
            .iter()
            .filter(|(name, _)| name.as_str().starts_with(prefix))
            .map(|(name, c)| (name.clone(), c.stats(name.kind())))
            .collect();
        channels.sort_by(|a, b| a.0.cmp(&b.0));
        channels
    }

    /// The `user_id`s present on a presence channel, sorted.
    pub fn presence_user_ids(&self, channel: &ChannelName) -> Vec<String> {
        self.read().channels.get(channel.as_str()).map(|c| c.members.keys().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn member(id: &str) -> PresenceMember {
        PresenceMember::new(id, Some(json!({ "name": format!("user {id}") })))
    }

    /// Everything queued for a connection so far, as text.
    fn drain(registration: &mut Registration) -> Vec<String> {
        let mut frames = Vec::new();
        while let Ok(text) = registration.queue.try_recv() {
            frames.push(text.as_str().to_owned());
        }
        frames
    }

    fn events(frames: &[String]) -> Vec<String> {
        frames.iter().map(|f| serde_json::from_str::<Value>(f).unwrap()["event"].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn socket_ids_are_valid_and_unique() {
        let table = Table::new(8, 100);
        let a = table.connect(None).unwrap();
        let b = table.connect(None).unwrap();
        assert_ne!(a.socket_id, b.socket_id);
        assert_eq!(SocketId::parse(a.socket_id.as_str()).unwrap(), a.socket_id);
        assert_eq!(table.connection_count(), 2);
        table.disconnect(&a.socket_id);
        table.disconnect(&a.socket_id);
        assert_eq!(table.connection_count(), 1);
    }

    #[test]
    fn presence_lists_a_user_once_and_announces_first_join_and_last_leave() {
        let table = Table::new(64, 100);
        let room = channel("presence-room");
        let mut watcher = table.connect(None).unwrap();
        table.subscribe(&watcher.socket_id, &room, Some(member("9"))).unwrap();
        let tab1 = table.connect(None).unwrap();
        let tab2 = table.connect(None).unwrap();

        let first = table.subscribe(&tab1.socket_id, &room, Some(member("1"))).unwrap().ready();
        assert!(first.as_str().contains(r#"\"count\":2"#), "{}", first.as_str());
        let second = table.subscribe(&tab2.socket_id, &room, Some(member("1"))).unwrap().ready();
        assert!(second.as_str().contains(r#"\"count\":2"#), "{}", second.as_str());
        assert_eq!(events(&drain(&mut watcher)), ["pusher_internal:member_added"]);
        assert_eq!(table.presence_user_ids(&room), ["1", "9"]);
        assert_eq!(table.channel_stats(&room), Some(ChannelStats { subscription_count: 3, user_count: Some(2) }));

        table.unsubscribe(&tab1.socket_id, &room);
        assert!(drain(&mut watcher).is_empty(), "the user is still present through tab 2");
        table.disconnect(&tab2.socket_id);
        let removed = drain(&mut watcher);
        assert_eq!(
            removed,
            [r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"1\"}"}"#]
        );
        assert_eq!(table.presence_user_ids(&room), ["9"]);
    }

    #[test]
    fn a_full_presence_channel_refuses_new_users_but_not_new_tabs() {
        let table = Table::new(8, 2);
        let room = channel("presence-room");
        for id in ["1", "2"] {
            let c = table.connect(None).unwrap();
            table.subscribe(&c.socket_id, &room, Some(member(id))).unwrap();
        }
        let third = table.connect(None).unwrap();
        assert_eq!(
            table.subscribe(&third.socket_id, &room, Some(member("3"))).err(),
            Some(ProtocolError::PresenceChannelFull { max: 2 })
        );
        assert!(table.subscribe(&third.socket_id, &room, Some(member("2"))).is_ok());
        assert_eq!(table.channel_stats(&room).unwrap().user_count, Some(2));
    }

    #[test]
    fn an_empty_channel_disappears() {
        let table = Table::new(8, 100);
        let c = table.connect(None).unwrap();
        let lobby = channel("lobby");
        table.subscribe(&c.socket_id, &lobby, None).unwrap();
        assert_eq!(table.occupied_channels("").len(), 1);
        table.unsubscribe(&c.socket_id, &lobby);
        assert_eq!(table.channel_stats(&lobby), None);
        assert!(table.occupied_channels("").is_empty());
    }

    #[test]
    fn a_channel_is_reported_occupied_at_its_first_subscription_and_vacated_after_its_last() {
        let table = Table::new(8, 100);
        let (sender, mut changes) = mpsc::unbounded_channel();
        assert!(table.report_occupancy(sender));
        let user = channel("private-user.7");
        let a = table.connect(None).unwrap();
        let b = table.connect(None).unwrap();
        table.subscribe(&a.socket_id, &user, None).unwrap();
        table.subscribe(&b.socket_id, &user, None).unwrap();
        // Subscribing again changes nothing.
        table.subscribe(&a.socket_id, &user, None).unwrap();
        assert_eq!(changes.try_recv().unwrap(), Occupancy::Occupied(user.clone()));
        assert!(changes.try_recv().is_err());
        table.unsubscribe(&a.socket_id, &user);
        assert!(changes.try_recv().is_err(), "one subscriber is left");
        // Closing the last connection vacates it as unsubscribing would.
        table.disconnect(&b.socket_id);
        assert_eq!(changes.try_recv().unwrap(), Occupancy::Vacated(user.clone()));
        assert!(changes.try_recv().is_err());
        // Only one listener.
        assert!(!table.report_occupancy(mpsc::unbounded_channel().0));
    }

    #[test]
    fn ten_thousand_user_channels_are_each_reported() {
        let table = Table::new(8, 100);
        let (sender, mut changes) = mpsc::unbounded_channel();
        table.report_occupancy(sender);
        let sockets: Vec<Registration> = (1..=10_000)
            .map(|id| {
                let registration = table.connect(None).unwrap();
                table.subscribe(&registration.socket_id, &channel(&format!("private-user.{id}")), None).unwrap();
                registration
            })
            .collect();
        let mut occupied = HashSet::new();
        while let Ok(Occupancy::Occupied(name)) = changes.try_recv() {
            occupied.insert(name);
        }
        assert_eq!(occupied.len(), 10_000);
        assert_eq!(table.occupied_channels("private-user.").len(), 10_000);
        for registration in &sockets {
            table.disconnect(&registration.socket_id);
        }
        let vacated =
            std::iter::from_fn(|| changes.try_recv().ok()).filter(|c| matches!(c, Occupancy::Vacated(_))).count();
        assert_eq!(vacated, 10_000);
    }

    #[test]
    fn a_published_frame_is_serialized_once_and_skips_the_excluded_socket() {
        let table = Table::new(8, 100);
        let lobby = channel("lobby");
        let mut a = table.connect(None).unwrap();
        let mut b = table.connect(None).unwrap();
        let mut c = table.connect(None).unwrap();
        for r in [&a, &b, &c] {
            table.subscribe(&r.socket_id, &lobby, None).unwrap();
        }
        table.publish(&lobby, "hello", r#"{"n":1}"#, Some(&c.socket_id)).unwrap();
        let (ta, tb) = (a.queue.try_recv().unwrap(), b.queue.try_recv().unwrap());
        assert_eq!(ta.as_str(), r#"{"event":"hello","channel":"lobby","data":"{\"n\":1}"}"#);
        // The same bytes, not an equal copy.
        assert_eq!(ta.as_str().as_ptr(), tb.as_str().as_ptr());
        assert!(c.queue.try_recv().is_err());
        assert!(matches!(
            table.publish(&lobby, "e", &"x".repeat(10 * 1024 + 1), None),
            Err(ProtocolError::DataTooLarge { .. })
        ));
    }

    #[test]
    fn a_client_that_stops_reading_is_closed_with_4100_and_removed() {
        let table = Table::new(2, 100);
        let room = channel("presence-room");
        let slow = table.connect(None).unwrap();
        let mut other = table.connect(None).unwrap();
        table.subscribe(&slow.socket_id, &room, Some(member("1"))).unwrap();
        table.subscribe(&other.socket_id, &room, Some(member("2"))).unwrap();
        for n in 0..3 {
            table.publish(&room, "tick", &n.to_string(), None).unwrap();
            drain(&mut other);
        }
        assert_eq!(*slow.close.borrow(), Some(ProtocolError::OverCapacity));
        assert_eq!(table.connection_count(), 1);
        assert_eq!(table.presence_user_ids(&room), ["2"]);
        // The other subscriber saw the slow one leave.
        table.publish(&room, "tick", "after", None).unwrap();
        assert_eq!(events(&drain(&mut other)), ["tick"]);
    }

    #[test]
    fn client_events_need_a_subscription_and_carry_the_servers_user_id() {
        let table = Table::new(8, 100);
        let room = channel("presence-room");
        let mut a = table.connect(None).unwrap();
        let mut b = table.connect(None).unwrap();
        table.subscribe(&a.socket_id, &room, Some(member("1"))).unwrap();
        let outsider = table.connect(None).unwrap();
        let event = |claimed: &str| {
            ClientEvent::new("client-typing", room.clone(), json!({"typing": true}), Some(claimed.into())).unwrap()
        };
        assert_eq!(table.relay_client_event(&outsider.socket_id, event("1")).err(), Some(RelayError::NotSubscribed));
        table.subscribe(&b.socket_id, &room, Some(member("2"))).unwrap();
        drain(&mut a);
        table.relay_client_event(&b.socket_id, event("1")).unwrap();
        assert_eq!(
            drain(&mut a),
            [r#"{"event":"client-typing","channel":"presence-room","data":{"typing":true},"user_id":"2"}"#]
        );
        assert!(drain(&mut b).is_empty(), "never echoed to the sender");
    }

    #[test]
    fn shutdown_closes_everyone_with_4200_and_refuses_newcomers() {
        let table = Table::new(8, 100);
        let a = table.connect(None).unwrap();
        assert_eq!(table.shut_down(), 1);
        assert_eq!(*a.close.borrow(), Some(ProtocolError::GoingAway));
        assert_eq!(table.connect(None).map(|r| r.socket_id), Err(ProtocolError::GoingAway));
    }

    #[test]
    fn caps_bound_channels_per_connection_and_connections_per_address() {
        let caps = Caps { channels_per_connection: 2, connections_per_address: 2, connections_per_user: 0 };
        let table = Table::with_caps(8, 100, caps);
        let home: IpAddr = "203.0.113.1".parse().unwrap();
        let a = table.connect(Some(home)).unwrap();
        let b = table.connect(Some(home)).unwrap();
        assert_eq!(table.connect(Some(home)).map(|r| r.socket_id), Err(ProtocolError::TooManyConnections { max: 2 }));
        assert!(table.connect(Some("203.0.113.2".parse().unwrap())).is_ok(), "another address has its own share");
        table.disconnect(&b.socket_id);
        assert!(table.connect(Some(home)).is_ok(), "a closed connection frees its slot");

        for name in ["one", "two"] {
            table.subscribe(&a.socket_id, &channel(name), None).unwrap();
        }
        assert_eq!(
            table.subscribe(&a.socket_id, &channel("three"), None).err(),
            Some(ProtocolError::TooManyChannels { max: 2 })
        );
        assert!(table.subscribe(&a.socket_id, &channel("two"), None).is_ok(), "repeating one is not a new one");
        table.unsubscribe(&a.socket_id, &channel("one"));
        assert!(table.subscribe(&a.socket_id, &channel("three"), None).is_ok());
    }

    #[test]
    fn a_connection_serves_one_user_and_users_have_a_share() {
        let caps = Caps { connections_per_user: 2, ..Caps::default() };
        let table = Table::with_caps(8, 100, caps);
        let a = table.connect(None).unwrap();
        let b = table.connect(None).unwrap();
        let c = table.connect(None).unwrap();
        table.bind(&a.socket_id, 7, "s1").unwrap();
        table.bind(&a.socket_id, 7, "s1").unwrap();
        assert_eq!(table.bind(&a.socket_id, 8, "s2"), Err(BindError::OtherUser));
        table.bind(&b.socket_id, 7, "s1").unwrap();
        assert_eq!(table.bind(&c.socket_id, 7, "s1"), Err(BindError::TooManyForUser { max: 2 }));
        assert!(table.bind(&c.socket_id, 8, "s2").is_ok());
        table.disconnect(&b.socket_id);
        let d = table.connect(None).unwrap();
        assert!(table.bind(&d.socket_id, 7, "s1").is_ok(), "a closed connection frees the user's slot");
        let unknown = SocketId::from_parts(1, 2);
        assert!(table.bind(&unknown, 7, "s1").is_ok(), "nothing to bind");
    }

    #[test]
    fn ending_a_session_closes_the_connections_it_authorized() {
        let table = Table::new(8, 100);
        let mine = table.connect(None).unwrap();
        let other_tab = table.connect(None).unwrap();
        let someone_else = table.connect(None).unwrap();
        table.bind(&mine.socket_id, 7, "session-a").unwrap();
        table.bind(&other_tab.socket_id, 7, "session-b").unwrap();
        table.bind(&someone_else.socket_id, 8, "session-c").unwrap();
        assert_eq!(table.end_session("session-a"), 1);
        assert_eq!(*mine.close.borrow(), Some(ProtocolError::Unauthorized));
        assert_eq!(*other_tab.close.borrow(), None, "the same user's other session stays");
        assert_eq!(*someone_else.close.borrow(), None);
    }
}
