//! The browser's Pusher connection as a sans-IO state machine: inputs in (socket events, frames, the
//! clock, subscriptions, auth answers), commands out. `client` (hydrate) only wires web-sys to it, so
//! every decision here is tested natively.
//!
//! Invariants:
//! - a socket exists exactly while the state is `Connecting` or `Connected`; whenever the machine leaves
//!   those states on its own decision it emits [`Command::Close`], and the transport then forgets that
//!   socket (its late events are never fed back in);
//! - a channel is known while it has at least one listener, and only subscribed channels are announced to
//!   the server; after every `pusher:connection_established` each known channel is subscribed again,
//!   because a new socket id invalidates every earlier auth signature;
//! - an auth answer counts only if it was requested for the current socket id and the channel still waits
//!   for it;
//! - an encrypted channel's events reach listeners only decrypted, with the shared secret its auth answer
//!   brought; one that does not open makes the machine ask for the key again (once per
//!   [`REKEY_INTERVAL_MS`], the master key may have been rotated), and what still does not open is
//!   reported as [`ChannelEvent::Undecryptable`], never handed over as ciphertext.

use std::collections::BTreeMap;

use pusher_protocol::encryption::SharedSecret;
use pusher_protocol::limits::DEFAULT_ACTIVITY_TIMEOUT_SECS;
use pusher_protocol::{
    ChannelAuthorization, ChannelName, Frame, PresenceMember, ProtocolError, ReconnectPolicy, reconnect_policy,
};
use serde_json::Value;

/// The connection's state, named as pusher-js names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Created, not yet asked to connect.
    Initialized,
    /// A socket is open or opening, and the server has not yet sent `pusher:connection_established`.
    Connecting,
    /// Established: subscriptions and whispers work.
    Connected,
    /// Lost; a reconnect is scheduled (or waits for the network to come back).
    Unavailable,
    /// The server refused us for good (close codes 4000–4099); nothing more is tried.
    Failed,
    /// Closed on purpose by [`Machine::disconnect`]; nothing more is tried.
    Disconnected,
}

/// One listener's registration, returned by `subscribe` and given back to `unsubscribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(u64);

impl ListenerId {
    /// Never registered (ids start at 1): what a client that is gone hands out; unsubscribing it does nothing.
    pub const DETACHED: ListenerId = ListenerId(0);
}

/// What a channel listener receives.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    /// After every successful (re)subscription, and at once for a listener joining a subscribed channel.
    /// `members` is the presence member list (one entry per user id) on presence channels, else `None`.
    Subscribed {
        members: Option<Vec<PresenceMember>>,
    },
    /// The auth endpoint or the server refused the subscription. `status` is the HTTP status (0 when the
    /// auth endpoint could not be reached at all); 5xx and 0 are retried by themselves.
    SubscriptionFailed {
        status: u16,
        message: String,
    },
    MemberAdded(PresenceMember),
    /// The user id of a member who left (their last connection to the channel closed).
    MemberRemoved(String),
    /// An application event; `data` is the JSON text as published (decrypted, on encrypted channels).
    Event {
        name: String,
        data: String,
    },
    /// `count` events of an encrypted channel could not be decrypted, even with a key asked for
    /// again: they are lost on this socket, so the listener should fetch what it missed.
    Undecryptable {
        count: usize,
    },
    /// A `client-*` event from another subscriber; `user_id` is the sender on presence channels.
    Whisper {
        name: String,
        data: Value,
        user_id: Option<String>,
    },
}

/// What the transport must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SetState(ConnectionState),
    /// Open a new socket (replacing and forgetting any current one).
    Connect,
    /// Close the current socket and forget it: its close event must not be fed back.
    Close,
    /// Send a text frame on the current socket.
    Send(String),
    /// Ask the auth endpoint to sign `channel` for `socket_id`, then call `auth_ok` or `auth_failed`.
    Authorize {
        channel: String,
        socket_id: String,
    },
    /// Hand `event` to each of these listeners (skip any that left meanwhile).
    Deliver {
        listeners: Vec<ListenerId>,
        event: ChannelEvent,
    },
    /// Something worth a console warning, e.g. a `pusher:error` from the server.
    Log(String),
}

/// First reconnect delay after a lost connection; it doubles after each failed attempt.
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// The longest wait between reconnect attempts (before jitter, which only shortens it).
pub const BACKOFF_MAX_MS: u64 = 15_000;
/// A socket that has not brought `pusher:connection_established` by then is given up on.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How long to wait for any frame after our `pusher:ping` before declaring the socket dead.
pub const PONG_TIMEOUT_MS: u64 = 30_000;
/// Never wait longer than this for activity before pinging, whatever the server advertises.
pub const MAX_ACTIVITY_TIMEOUT_MS: u64 = 120_000;
/// After an immediate reconnect, the next one within this window backs off instead, so a server that
/// keeps accepting and then closing with 42xx is not hammered in a tight loop.
pub const IMMEDIATE_RECONNECT_WINDOW_MS: u64 = 10_000;
/// The close code fed to [`Machine::closed`] when a socket could not even be created.
pub const ABNORMAL_CLOSURE: u16 = 1006;
/// An encrypted channel asks for its key again at most this often; events that do not open in
/// between are reported as undecryptable at once.
pub const REKEY_INTERVAL_MS: u64 = 30_000;
/// Events of an encrypted channel held while its key is asked for again; later ones are counted as
/// undecryptable (the catch-up fetch brings them).
pub const MAX_HELD_EVENTS: usize = 100;

/// The subscription's progress on the current socket.
#[derive(Debug, Clone, PartialEq)]
enum Subscription {
    /// Not asked for on this socket (not connected yet).
    Idle,
    /// Waiting for the auth endpoint's answer for this socket id.
    Authorizing {
        socket_id: String,
    },
    /// The auth endpoint failed with a 5xx or could not be reached; ask again at `at`.
    RetryAuthAt {
        at: u64,
    },
    /// `pusher:subscribe` sent, no answer yet.
    Pending,
    Subscribed,
    /// Refused; a new listener, or the next connection, tries again.
    Failed {
        status: u16,
        message: String,
    },
}

#[derive(Debug)]
struct Channel {
    name: ChannelName,
    listeners: Vec<ListenerId>,
    subscription: Subscription,
    /// Presence channels: the members, one per user id, in the order the server listed them.
    members: Vec<PresenceMember>,
    /// Consecutive auth endpoint failures that are retried (5xx, network), for the retry delay.
    auth_failures: u32,
    /// Encrypted channels: the shared secret from the last auth answer.
    key: Option<SharedSecret>,
    /// Encrypted channels: the key is being asked for again, for this socket; events wait here.
    rekey: Option<Rekey>,
    /// When the key was last asked for again.
    last_rekey_at: Option<u64>,
}

#[derive(Debug)]
struct Rekey {
    socket_id: String,
    /// (event name, encrypted data), in arrival order.
    held: Vec<(String, String)>,
    /// Events that arrived when `held` was full.
    dropped: usize,
}

impl Channel {
    fn is_presence(&self) -> bool {
        self.name.kind() == pusher_protocol::ChannelKind::Presence
    }

    fn members_event(&self) -> ChannelEvent {
        ChannelEvent::Subscribed { members: self.is_presence().then(|| self.members.clone()) }
    }

    /// Whether the server knows us as a subscriber (or will, once it reads our `pusher:subscribe`).
    fn server_side(&self) -> bool {
        matches!(self.subscription, Subscription::Pending | Subscription::Subscribed)
    }
}

/// The connection and subscription logic of one Pusher client. All times are milliseconds on any clock
/// that only moves forward (going backwards only delays timers).
#[derive(Debug)]
pub struct Machine {
    state: ConnectionState,
    socket_id: Option<String>,
    activity_timeout_ms: u64,
    /// Last frame received (or socket opened) on the current socket.
    last_activity: u64,
    /// When our `pusher:ping` went out, while no frame has arrived since.
    ping_sent_at: Option<u64>,
    /// When the current socket was asked for.
    connecting_since: u64,
    /// Connection attempts since the last established connection; drives the backoff.
    failed_attempts: u32,
    last_immediate_reconnect: Option<u64>,
    reconnect_at: Option<u64>,
    channels: BTreeMap<String, Channel>,
    listener_channels: BTreeMap<ListenerId, String>,
    next_listener: u64,
    rng: u64,
}

impl Machine {
    /// `seed` feeds the reconnect jitter, so many browsers do not come back in lockstep.
    pub fn new(seed: u64) -> Self {
        Self {
            state: ConnectionState::Initialized,
            socket_id: None,
            activity_timeout_ms: activity_timeout_ms(DEFAULT_ACTIVITY_TIMEOUT_SECS),
            last_activity: 0,
            ping_sent_at: None,
            connecting_since: 0,
            failed_attempts: 0,
            last_immediate_reconnect: None,
            reconnect_at: None,
            channels: BTreeMap::new(),
            listener_channels: BTreeMap::new(),
            next_listener: 1,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The current socket id, while connected.
    pub fn socket_id(&self) -> Option<&str> {
        self.socket_id.as_deref()
    }

    /// When the next reconnect attempt is due, while one is scheduled.
    pub fn reconnect_at(&self) -> Option<u64> {
        self.reconnect_at
    }

    /// Starts connecting unless a socket is already there or the server refused us for good.
    pub fn connect(&mut self, now: u64) -> Vec<Command> {
        let mut out = Vec::new();
        match self.state {
            ConnectionState::Initialized | ConnectionState::Unavailable | ConnectionState::Disconnected => {
                self.open(now, &mut out)
            }
            ConnectionState::Connecting | ConnectionState::Connected | ConnectionState::Failed => {}
        }
        out
    }

    /// Closes for good: no reconnect until [`connect`](Self::connect) is called again.
    pub fn disconnect(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        if self.has_socket() {
            out.push(Command::Close);
        }
        self.forget_socket();
        self.reconnect_at = None;
        self.set_state(ConnectionState::Disconnected, &mut out);
        out
    }

    /// The socket's `open` event.
    pub fn opened(&mut self, now: u64) -> Vec<Command> {
        if self.state == ConnectionState::Connecting {
            self.last_activity = now;
        }
        Vec::new()
    }

    /// The socket's `close` event, with the close frame's code (1006 when there was none).
    pub fn closed(&mut self, now: u64, code: u16) -> Vec<Command> {
        let mut out = Vec::new();
        if !self.has_socket() {
            // A socket we already gave up on; its fate was decided when we closed it.
            return out;
        }
        self.forget_socket();
        match reconnect_policy(code) {
            ReconnectPolicy::Never => {
                out.push(Command::Log(format!("realtime: the server refused the connection (close code {code})")));
                self.reconnect_at = None;
                self.set_state(ConnectionState::Failed, &mut out);
            }
            ReconnectPolicy::Immediately => self.reconnect_immediately(now, &mut out),
            ReconnectPolicy::Backoff => self.back_off(now, &mut out),
        }
        out
    }

    /// One text frame from the server.
    pub fn frame(&mut self, now: u64, text: &str) -> Vec<Command> {
        let mut out = Vec::new();
        if !self.has_socket() {
            return out;
        }
        self.last_activity = now;
        self.ping_sent_at = None;
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err(error) => {
                out.push(Command::Log(format!("realtime: ignoring a frame we cannot read: {error}")));
                return out;
            }
        };
        match frame {
            Frame::ConnectionEstablished { socket_id, activity_timeout } => {
                self.socket_id = Some(socket_id.as_str().to_owned());
                self.activity_timeout_ms = activity_timeout_ms(activity_timeout);
                self.failed_attempts = 0;
                self.reconnect_at = None;
                self.set_state(ConnectionState::Connected, &mut out);
                let names: Vec<String> = self.channels.keys().cloned().collect();
                for name in names {
                    self.start_subscription(&name, &mut out);
                }
            }
            Frame::Ping => out.push(Command::Send(Frame::pong().to_json())),
            Frame::Pong => {}
            Frame::Error { code, message } => {
                let code = code.map_or_else(|| "no code".to_owned(), |c| c.to_string());
                out.push(Command::Log(format!("realtime: pusher:error {code}: {message}")));
            }
            Frame::SubscriptionSucceeded { channel, presence } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    c.subscription = Subscription::Subscribed;
                    c.auth_failures = 0;
                    c.members = dedup_members(presence.unwrap_or_default());
                    out.push(Command::Deliver { listeners: c.listeners.clone(), event: c.members_event() });
                }
            }
            Frame::SubscriptionError { channel, error } => {
                self.fail_subscription(channel.as_str(), error.status, error.error, &mut out);
            }
            Frame::MemberAdded { channel, member } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    let changed = match c.members.iter_mut().find(|m| m.user_id == member.user_id) {
                        // A second connection of someone already here: same person, maybe fresher info.
                        Some(existing) if *existing == member => false,
                        Some(existing) => {
                            *existing = member.clone();
                            true
                        }
                        None => {
                            c.members.push(member.clone());
                            true
                        }
                    };
                    if changed {
                        out.push(Command::Deliver {
                            listeners: c.listeners.clone(),
                            event: ChannelEvent::MemberAdded(member),
                        });
                    }
                }
            }
            Frame::MemberRemoved { channel, user_id } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    let before = c.members.len();
                    c.members.retain(|m| m.user_id != user_id);
                    if c.members.len() != before {
                        out.push(Command::Deliver {
                            listeners: c.listeners.clone(),
                            event: ChannelEvent::MemberRemoved(user_id),
                        });
                    }
                }
            }
            Frame::ClientEvent(event) => {
                if let Some(c) = self.channels.get(event.channel().as_str()) {
                    out.push(Command::Deliver {
                        listeners: c.listeners.clone(),
                        event: ChannelEvent::Whisper {
                            name: event.event().to_owned(),
                            data: event.data().clone(),
                            user_id: event.user_id().map(str::to_owned),
                        },
                    });
                }
            }
            Frame::Event(event) => {
                let (name, data) = (event.event().to_owned(), event.data().to_owned());
                self.application_event(now, event.channel().as_str(), name, data, &mut out);
            }
            Frame::Subscribe(_) | Frame::Unsubscribe { .. } => {
                out.push(Command::Log(format!("realtime: ignoring the client frame {}", frame.event_name())));
            }
        }
        out
    }

    /// The clock: reconnects that are due, the connect timeout, keepalive pings and auth retries.
    pub fn tick(&mut self, now: u64) -> Vec<Command> {
        let mut out = Vec::new();
        match self.state {
            ConnectionState::Unavailable => {
                if self.reconnect_at.is_some_and(|at| now >= at) {
                    self.open(now, &mut out);
                }
            }
            ConnectionState::Connecting => {
                if now.saturating_sub(self.connecting_since) >= CONNECT_TIMEOUT_MS {
                    out.push(Command::Log("realtime: no connection_established in time; retrying".to_owned()));
                    out.push(Command::Close);
                    self.forget_socket();
                    self.back_off(now, &mut out);
                }
            }
            ConnectionState::Connected => match self.ping_sent_at {
                Some(sent) if now.saturating_sub(sent) >= PONG_TIMEOUT_MS => {
                    out.push(Command::Log("realtime: no answer to pusher:ping; reconnecting".to_owned()));
                    out.push(Command::Close);
                    self.forget_socket();
                    self.reconnect_immediately(now, &mut out);
                }
                Some(_) => {}
                None => {
                    if now.saturating_sub(self.last_activity) >= self.activity_timeout_ms {
                        self.send_ping(now, &mut out);
                    }
                }
            },
            ConnectionState::Initialized | ConnectionState::Failed | ConnectionState::Disconnected => {}
        }
        if self.state == ConnectionState::Connected {
            let due: Vec<String> = self
                .channels
                .iter()
                .filter(|(_, c)| matches!(c.subscription, Subscription::RetryAuthAt { at } if now >= at))
                .map(|(name, _)| name.clone())
                .collect();
            for name in due {
                self.start_subscription(&name, &mut out);
            }
        }
        out
    }

    /// The browser went offline: a socket it keeps open is dead anyway (Chromium keeps one open under
    /// emulated offline), so drop it now and wait; `online` brings us back at once.
    pub fn offline(&mut self, now: u64) -> Vec<Command> {
        let mut out = Vec::new();
        if self.has_socket() {
            out.push(Command::Close);
            self.forget_socket();
            self.back_off(now, &mut out);
        }
        out
    }

    /// The browser is back online: reconnect now rather than after the backoff.
    pub fn online(&mut self, now: u64) -> Vec<Command> {
        let mut out = Vec::new();
        match self.state {
            ConnectionState::Unavailable => self.open(now, &mut out),
            // An attempt started while offline may hang; start a fresh one.
            ConnectionState::Connecting => {
                out.push(Command::Close);
                self.forget_socket();
                self.open(now, &mut out);
            }
            // Check that the socket survived the outage instead of trusting it.
            ConnectionState::Connected if self.ping_sent_at.is_none() => self.send_ping(now, &mut out),
            _ => {}
        }
        out
    }

    /// The tab became visible: if we are waiting to reconnect, do it now (timers are throttled while hidden).
    pub fn visible(&mut self, now: u64) -> Vec<Command> {
        let mut out = Vec::new();
        if self.state == ConnectionState::Unavailable {
            self.open(now, &mut out);
        }
        out
    }

    /// Adds a listener to `channel`, subscribing to it if it is new. The caller registers the listener
    /// under the returned id before running the commands (they may deliver to it).
    pub fn subscribe(&mut self, channel: &str) -> (ListenerId, Vec<Command>) {
        let id = ListenerId(self.next_listener);
        self.next_listener += 1;
        let mut out = Vec::new();
        let name = match ChannelName::parse(channel) {
            Ok(name) => name,
            Err(error) => {
                // Not kept: there is nothing to subscribe to. The listener hears why.
                out.push(Command::Deliver {
                    listeners: vec![id],
                    event: ChannelEvent::SubscriptionFailed { status: 400, message: error.to_string() },
                });
                return (id, out);
            }
        };
        self.listener_channels.insert(id, channel.to_owned());
        let connected = self.state == ConnectionState::Connected;
        let c = self.channels.entry(channel.to_owned()).or_insert_with(|| Channel {
            name,
            listeners: Vec::new(),
            subscription: Subscription::Idle,
            members: Vec::new(),
            auth_failures: 0,
            key: None,
            rekey: None,
            last_rekey_at: None,
        });
        c.listeners.push(id);
        match &c.subscription {
            Subscription::Subscribed => out.push(Command::Deliver { listeners: vec![id], event: c.members_event() }),
            Subscription::Idle | Subscription::Failed { .. } if connected => {
                self.start_subscription(channel, &mut out);
            }
            // Waiting for an answer or for the connection: the new listener hears the outcome with the others.
            _ => {}
        }
        (id, out)
    }

    /// Removes a listener; the channel is left when its last listener goes.
    pub fn unsubscribe(&mut self, id: ListenerId) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(name) = self.listener_channels.remove(&id) else { return out };
        let Some(c) = self.channels.get_mut(&name) else { return out };
        c.listeners.retain(|l| *l != id);
        if c.listeners.is_empty() {
            if c.server_side() && self.state == ConnectionState::Connected {
                out.push(Command::Send(Frame::unsubscribe(c.name.clone()).to_json()));
            }
            self.channels.remove(&name);
        }
        out
    }

    /// The auth endpoint signed `channel` for `socket_id`.
    pub fn auth_ok(&mut self, channel: &str, socket_id: &str, authorization: ChannelAuthorization) -> Vec<Command> {
        let mut out = Vec::new();
        if self.awaits_rekey(channel, socket_id) {
            let key = authorization.shared_secret.as_deref().and_then(|k| SharedSecret::from_base64(k).ok());
            self.finish_rekey(channel, key, &mut out);
            return out;
        }
        if !self.awaits_auth(channel, socket_id) {
            return out;
        }
        let Some(c) = self.channels.get_mut(channel) else { return out };
        if c.is_presence() && authorization.channel_data.is_none() {
            let message = "the auth endpoint sent no channel_data for a presence channel".to_owned();
            self.fail_subscription(channel, 500, message, &mut out);
            return out;
        }
        if c.name.kind().is_encrypted() {
            match authorization.shared_secret.as_deref().map(SharedSecret::from_base64) {
                Some(Ok(key)) => c.key = Some(key),
                _ => {
                    let message = "the auth endpoint sent no valid shared_secret for an encrypted channel".to_owned();
                    self.fail_subscription(channel, 500, message, &mut out);
                    return out;
                }
            }
        }
        c.subscription = Subscription::Pending;
        let frame = Frame::subscribe(c.name.clone(), Some(authorization.auth), authorization.channel_data);
        out.push(Command::Send(frame.to_json()));
        out
    }

    /// The auth endpoint answered `status` (not 2xx), or could not be reached (`status` 0), or its 2xx
    /// answer could not be read (pass 500). 5xx and 0 are retried after a growing delay.
    pub fn auth_failed(
        &mut self,
        now: u64,
        channel: &str,
        socket_id: &str,
        status: u16,
        message: String,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        if self.awaits_rekey(channel, socket_id) {
            out.push(Command::Log(format!("realtime: could not renew the key of {channel}: {status} {message}")));
            self.finish_rekey(channel, None, &mut out);
            return out;
        }
        if !self.awaits_auth(channel, socket_id) {
            return out;
        }
        self.fail_subscription(channel, status, message, &mut out);
        if status == 0 || status >= 500 {
            let delay = self.backoff_delay_after(self.channels.get(channel).map_or(0, |c| c.auth_failures));
            if let Some(c) = self.channels.get_mut(channel) {
                c.auth_failures = c.auth_failures.saturating_add(1);
                c.subscription = Subscription::RetryAuthAt { at: now.saturating_add(delay) };
            }
        }
        out
    }

    /// The `client-*` frame to send for a whisper, if one may go out now: connected, subscribed, a
    /// private or presence channel, a `client-` name and at most 10 KiB of data.
    pub fn whisper(&self, channel: &str, event: &str, data: Value) -> Result<String, WhisperRefused> {
        if self.state != ConnectionState::Connected {
            return Err(WhisperRefused::NotConnected);
        }
        let c = self.channels.get(channel).ok_or(WhisperRefused::NotSubscribed)?;
        if c.subscription != Subscription::Subscribed {
            return Err(WhisperRefused::NotSubscribed);
        }
        Frame::client_event(event, c.name.clone(), data, None).map(|f| f.to_json()).map_err(WhisperRefused::Invalid)
    }

    // ---- internals -------------------------------------------------------------------------------

    fn has_socket(&self) -> bool {
        matches!(self.state, ConnectionState::Connecting | ConnectionState::Connected)
    }

    fn set_state(&mut self, state: ConnectionState, out: &mut Vec<Command>) {
        if self.state != state {
            self.state = state;
            out.push(Command::SetState(state));
        }
    }

    fn open(&mut self, now: u64, out: &mut Vec<Command>) {
        self.reconnect_at = None;
        self.connecting_since = now;
        self.last_activity = now;
        self.ping_sent_at = None;
        self.set_state(ConnectionState::Connecting, out);
        out.push(Command::Connect);
    }

    /// Clears everything tied to the socket that just went away. Listeners and members stay until the
    /// next subscription replaces them.
    fn forget_socket(&mut self) {
        self.socket_id = None;
        self.ping_sent_at = None;
        for c in self.channels.values_mut() {
            c.subscription = Subscription::Idle;
            // Held events went with the socket; the next subscription's catch-up brings them.
            c.rekey = None;
        }
    }

    /// After a connection that had been established, come straight back (once per window); a
    /// connection that never got established backs off instead.
    fn reconnect_immediately(&mut self, now: u64, out: &mut Vec<Command>) {
        let recently =
            self.last_immediate_reconnect.is_some_and(|t| now.saturating_sub(t) < IMMEDIATE_RECONNECT_WINDOW_MS);
        if self.failed_attempts == 0 && !recently {
            self.last_immediate_reconnect = Some(now);
            self.failed_attempts = 1;
            self.open(now, out);
        } else {
            self.back_off(now, out);
        }
    }

    fn back_off(&mut self, now: u64, out: &mut Vec<Command>) {
        let delay = self.backoff_delay_after(self.failed_attempts);
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        self.reconnect_at = Some(now.saturating_add(delay));
        self.set_state(ConnectionState::Unavailable, out);
    }

    /// 1 s, 2 s, 4 s … capped at 15 s, each shortened by up to a quarter at random.
    fn backoff_delay_after(&mut self, failures: u32) -> u64 {
        let base = backoff_base(failures);
        base - self.next_random() % (base / 4 + 1)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn send_ping(&mut self, now: u64, out: &mut Vec<Command>) {
        self.ping_sent_at = Some(now);
        out.push(Command::Send(Frame::ping().to_json()));
    }

    /// Asks for `name` on the current socket: public channels at once, the others through the auth endpoint.
    fn start_subscription(&mut self, name: &str, out: &mut Vec<Command>) {
        let Some(socket_id) = self.socket_id.clone() else { return };
        let Some(c) = self.channels.get_mut(name) else { return };
        if c.name.kind().requires_auth() {
            c.subscription = Subscription::Authorizing { socket_id: socket_id.clone() };
            out.push(Command::Authorize { channel: name.to_owned(), socket_id });
        } else {
            c.subscription = Subscription::Pending;
            out.push(Command::Send(Frame::subscribe(c.name.clone(), None, None).to_json()));
        }
    }

    fn awaits_auth(&self, channel: &str, socket_id: &str) -> bool {
        self.state == ConnectionState::Connected
            && self.socket_id.as_deref() == Some(socket_id)
            && self.channels.get(channel).is_some_and(
                |c| matches!(&c.subscription, Subscription::Authorizing { socket_id: s } if s == socket_id),
            )
    }

    /// An application event for `channel`: handed over as it came, or decrypted on an encrypted
    /// channel (asking for the key again when it does not open).
    fn application_event(&mut self, now: u64, channel: &str, name: String, data: String, out: &mut Vec<Command>) {
        let socket_id = self.socket_id.clone();
        let Some(c) = self.channels.get_mut(channel) else { return };
        if !c.name.kind().is_encrypted() {
            out.push(Command::Deliver { listeners: c.listeners.clone(), event: ChannelEvent::Event { name, data } });
            return;
        }
        if let Some(rekey) = &mut c.rekey {
            if rekey.held.len() < MAX_HELD_EVENTS {
                rekey.held.push((name, data));
            } else {
                rekey.dropped += 1;
            }
            return;
        }
        match c.key.as_ref().map(|key| key.decrypt(&data)) {
            Some(Ok(plain)) => {
                out.push(Command::Deliver {
                    listeners: c.listeners.clone(),
                    event: ChannelEvent::Event { name, data: plain },
                });
            }
            failed => {
                let why = match failed {
                    Some(Err(error)) => error.to_string(),
                    _ => "no key".to_owned(),
                };
                let may_rekey = c.last_rekey_at.is_none_or(|at| now.saturating_sub(at) >= REKEY_INTERVAL_MS);
                match socket_id.filter(|_| may_rekey && c.subscription == Subscription::Subscribed) {
                    Some(socket_id) => {
                        out.push(Command::Log(format!(
                            "realtime: an event on {channel} did not decrypt ({why}); asking for the key again"
                        )));
                        c.last_rekey_at = Some(now);
                        c.rekey = Some(Rekey { socket_id: socket_id.clone(), held: vec![(name, data)], dropped: 0 });
                        out.push(Command::Authorize { channel: channel.to_owned(), socket_id });
                    }
                    None => {
                        out.push(Command::Log(format!("realtime: an event on {channel} did not decrypt ({why})")));
                        out.push(Command::Deliver {
                            listeners: c.listeners.clone(),
                            event: ChannelEvent::Undecryptable { count: 1 },
                        });
                    }
                }
            }
        }
    }

    fn awaits_rekey(&self, channel: &str, socket_id: &str) -> bool {
        self.state == ConnectionState::Connected
            && self.socket_id.as_deref() == Some(socket_id)
            && self
                .channels
                .get(channel)
                .and_then(|c| c.rekey.as_ref())
                .is_some_and(|rekey| rekey.socket_id == socket_id)
    }

    /// The key asked for again arrived (`Some`), or could not be had: the held events are opened
    /// with it, and those that still do not open are reported once.
    fn finish_rekey(&mut self, channel: &str, key: Option<SharedSecret>, out: &mut Vec<Command>) {
        let Some(c) = self.channels.get_mut(channel) else { return };
        let Some(rekey) = c.rekey.take() else { return };
        if key.is_some() {
            c.key = key;
        }
        let mut lost = rekey.dropped;
        for (name, data) in rekey.held {
            match c.key.as_ref().map(|k| k.decrypt(&data)) {
                Some(Ok(plain)) => out.push(Command::Deliver {
                    listeners: c.listeners.clone(),
                    event: ChannelEvent::Event { name, data: plain },
                }),
                _ => lost += 1,
            }
        }
        if lost > 0 {
            out.push(Command::Log(format!(
                "realtime: {lost} event(s) on {channel} did not decrypt even with a fresh key; catching up instead"
            )));
            out.push(Command::Deliver {
                listeners: c.listeners.clone(),
                event: ChannelEvent::Undecryptable { count: lost },
            });
        }
    }

    fn fail_subscription(&mut self, name: &str, status: u16, message: String, out: &mut Vec<Command>) {
        if let Some(c) = self.channels.get_mut(name) {
            c.subscription = Subscription::Failed { status, message: message.clone() };
            c.members.clear();
            out.push(Command::Deliver {
                listeners: c.listeners.clone(),
                event: ChannelEvent::SubscriptionFailed { status, message },
            });
        }
    }
}

/// Why a whisper was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhisperRefused {
    NotConnected,
    NotSubscribed,
    /// The event name, channel kind or data size breaks the protocol's rules.
    Invalid(ProtocolError),
}

/// The undithered reconnect delay after `failures` failed attempts.
pub fn backoff_base(failures: u32) -> u64 {
    BACKOFF_BASE_MS.saturating_mul(1u64 << failures.min(16)).min(BACKOFF_MAX_MS)
}

/// How long we stay silent before pinging: the server's activity timeout, at most 120 s (and at least 1 s,
/// so a server advertising 0 does not make us ping on every tick).
fn activity_timeout_ms(secs: u32) -> u64 {
    (u64::from(secs) * 1_000).clamp(1_000, MAX_ACTIVITY_TIMEOUT_MS)
}

/// One entry per user id (a user with two tabs is listed once); the first listing wins the position,
/// the last one the info.
fn dedup_members(members: Vec<PresenceMember>) -> Vec<PresenceMember> {
    let mut out: Vec<PresenceMember> = Vec::with_capacity(members.len());
    for member in members {
        match out.iter_mut().find(|m| m.user_id == member.user_id) {
            Some(existing) => *existing = member,
            None => out.push(member),
        }
    }
    out
}

/// The auth endpoint's form body, `socket_id=..&channel_name=..`, as `application/x-www-form-urlencoded`.
pub fn auth_form(socket_id: &str, channel: &str) -> String {
    format!("socket_id={}&channel_name={}", form_encode(socket_id), form_encode(channel))
}

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What a refused auth request tells the user: the `message` of a JSON error body when there is one,
/// else a generic text with the status.
pub fn auth_error_message(status: u16, body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("channel authorization failed (HTTP {status})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ESTABLISHED: &str =
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#;

    fn established(socket_id: &str, activity_timeout: u32) -> String {
        Frame::connection_established(pusher_protocol::SocketId::parse(socket_id).unwrap(), activity_timeout).to_json()
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn member(id: &str, name: &str) -> PresenceMember {
        PresenceMember::new(id, Some(json!({ "name": name })))
    }

    fn succeeded(name: &str, members: Option<Vec<PresenceMember>>) -> String {
        Frame::subscription_succeeded(channel(name), members).to_json()
    }

    fn auth(channel_data: Option<&str>) -> ChannelAuthorization {
        ChannelAuthorization {
            auth: "key:sig".into(),
            channel_data: channel_data.map(str::to_owned),
            shared_secret: None,
        }
    }

    /// A machine connected with socket id 123.456 at t = 0.
    fn connected() -> Machine {
        let mut m = Machine::new(7);
        m.connect(0);
        m.opened(0);
        m.frame(0, ESTABLISHED);
        assert_eq!(m.state(), ConnectionState::Connected);
        m
    }

    fn sent(commands: &[Command]) -> Vec<String> {
        commands.iter().filter_map(|c| if let Command::Send(s) = c { Some(s.clone()) } else { None }).collect()
    }

    fn delivered(commands: &[Command]) -> Vec<(Vec<ListenerId>, ChannelEvent)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Deliver { listeners, event } => Some((listeners.clone(), event.clone())),
                _ => None,
            })
            .collect()
    }

    fn authorizes(commands: &[Command]) -> Vec<(String, String)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Authorize { channel, socket_id } => Some((channel.clone(), socket_id.clone())),
                _ => None,
            })
            .collect()
    }

    fn subscribe_json(name: &str, auth: Option<&str>, data: Option<&str>) -> String {
        Frame::subscribe(channel(name), auth.map(str::to_owned), data.map(str::to_owned)).to_json()
    }

    // ---- connection states -------------------------------------------------------------------

    #[test]
    fn connects_like_pusher_js() {
        let mut m = Machine::new(1);
        assert_eq!(m.state(), ConnectionState::Initialized);
        assert_eq!(m.connect(0), vec![Command::SetState(ConnectionState::Connecting), Command::Connect]);
        assert!(m.connect(5).is_empty(), "a second connect while connecting does nothing");
        assert!(m.opened(10).is_empty());
        assert_eq!(m.state(), ConnectionState::Connecting);
        assert_eq!(m.frame(20, ESTABLISHED), vec![Command::SetState(ConnectionState::Connected)]);
        assert_eq!(m.socket_id(), Some("123.456"));
    }

    #[test]
    fn refused_codes_fail_for_good() {
        for code in [4000, 4001, 4009, 4099] {
            let mut m = connected();
            let out = m.closed(1_000, code);
            assert!(out.contains(&Command::SetState(ConnectionState::Failed)), "{code}");
            assert!(!out.contains(&Command::Connect));
            assert_eq!(m.reconnect_at(), None);
            assert!(m.tick(1_000_000).is_empty(), "never retried");
            assert!(m.online(1_000_001).is_empty() && m.visible(1_000_002).is_empty());
            assert_eq!(m.socket_id(), None);
        }
    }

    #[test]
    fn going_away_reconnects_at_once_then_backs_off_if_it_keeps_failing() {
        let mut m = connected();
        let out = m.closed(50_000, 4200);
        assert_eq!(out, vec![Command::SetState(ConnectionState::Connecting), Command::Connect]);
        // The new attempt is closed again before being established: no tight loop.
        let out = m.closed(50_100, 4201);
        assert_eq!(out, vec![Command::SetState(ConnectionState::Unavailable)]);
        let wait = m.reconnect_at().unwrap() - 50_100;
        assert!((1_500..=2_000).contains(&wait), "{wait}");
    }

    #[test]
    fn going_away_right_after_an_immediate_reconnect_backs_off() {
        let mut m = connected();
        m.closed(50_000, 4200);
        m.frame(50_100, ESTABLISHED);
        let out = m.closed(50_200, 4200);
        assert_eq!(out, vec![Command::SetState(ConnectionState::Unavailable)]);
        // Outside the window, immediate again.
        m.tick(m.reconnect_at().unwrap());
        m.frame(70_000, ESTABLISHED);
        assert!(m.closed(70_100, 4202).contains(&Command::Connect));
    }

    #[test]
    fn lost_connections_back_off_exponentially_up_to_a_cap() {
        let mut m = connected();
        let mut now = 10_000;
        let mut waits = Vec::new();
        let mut code = 1006;
        for _ in 0..8 {
            let out = m.closed(now, code);
            assert!(out.is_empty() || out == vec![Command::SetState(ConnectionState::Unavailable)]);
            assert_eq!(m.state(), ConnectionState::Unavailable);
            let at = m.reconnect_at().unwrap();
            waits.push(at - now);
            assert!(m.tick(at - 1).is_empty(), "not before it is due");
            assert_eq!(m.tick(at), vec![Command::SetState(ConnectionState::Connecting), Command::Connect]);
            now = at + 100;
            code = 4100;
        }
        for (i, wait) in waits.iter().enumerate() {
            let base = backoff_base(i as u32);
            assert!(*wait <= base && *wait >= base * 3 / 4, "attempt {i}: {wait} for base {base}");
            assert!(*wait <= BACKOFF_MAX_MS);
        }
        assert_eq!([0, 1, 2, 3, 4, 10].map(backoff_base), [1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
        assert_eq!(backoff_base(u32::MAX), BACKOFF_MAX_MS);
        // Jitter: not all waits at the same base are identical.
        let capped: Vec<_> = waits[4..].to_vec();
        assert!(capped.windows(2).any(|w| w[0] != w[1]), "{capped:?}");
    }

    #[test]
    fn a_successful_connection_resets_the_backoff() {
        let mut m = connected();
        for _ in 0..5 {
            m.closed(0, 1006);
            m.tick(m.reconnect_at().unwrap());
        }
        m.frame(100_000, ESTABLISHED);
        m.closed(200_000, 1006);
        assert!(m.reconnect_at().unwrap() - 200_000 <= 1_000);
    }

    #[test]
    fn a_connection_that_is_never_established_times_out() {
        let mut m = Machine::new(3);
        m.connect(0);
        m.opened(100);
        assert!(m.tick(CONNECT_TIMEOUT_MS - 1).is_empty());
        let out = m.tick(CONNECT_TIMEOUT_MS);
        assert!(out.contains(&Command::Close));
        assert!(out.contains(&Command::SetState(ConnectionState::Unavailable)));
        // The forgotten socket's close event changes nothing.
        assert!(m.closed(CONNECT_TIMEOUT_MS + 5, 1006).is_empty());
    }

    #[test]
    fn disconnect_stops_everything() {
        let mut m = connected();
        let id = m.subscribe("lobby").0;
        assert_eq!(m.disconnect(), vec![Command::Close, Command::SetState(ConnectionState::Disconnected)]);
        assert!(m.closed(10, 1000).is_empty());
        assert!(m.tick(1_000_000).is_empty());
        assert!(m.online(1_000_000).is_empty());
        assert!(m.unsubscribe(id).is_empty(), "no frame without a socket");
        // Disconnecting while waiting to reconnect cancels the retry.
        let mut m = connected();
        m.closed(0, 1006);
        assert_eq!(m.disconnect(), vec![Command::SetState(ConnectionState::Disconnected)]);
        assert_eq!(m.reconnect_at(), None);
    }

    #[test]
    fn offline_drops_the_socket_and_online_reconnects_at_once() {
        let mut m = connected();
        let out = m.offline(5_000);
        assert_eq!(out, vec![Command::Close, Command::SetState(ConnectionState::Unavailable)]);
        assert!(m.closed(5_001, 1006).is_empty(), "the dropped socket's close is ignored");
        assert!(m.offline(5_002).is_empty());
        assert_eq!(m.online(6_000), vec![Command::SetState(ConnectionState::Connecting), Command::Connect]);
        // Online while an attempt is pending replaces it.
        assert_eq!(m.online(6_100), vec![Command::Close, Command::Connect]);
        // Online while connected checks the socket is alive.
        m.frame(6_200, ESTABLISHED);
        assert_eq!(sent(&m.online(6_300)), vec![r#"{"event":"pusher:ping","data":{}}"#]);
    }

    #[test]
    fn becoming_visible_reconnects_only_when_unavailable() {
        let mut m = connected();
        assert!(m.visible(1).is_empty());
        m.closed(10, 1006);
        assert!(m.reconnect_at().unwrap() > 10);
        assert_eq!(m.visible(20), vec![Command::SetState(ConnectionState::Connecting), Command::Connect]);
        assert_eq!(m.reconnect_at(), None);
    }

    // ---- keepalive ---------------------------------------------------------------------------

    #[test]
    fn pings_after_silence_and_reconnects_without_an_answer() {
        let mut m = Machine::new(1);
        m.connect(0);
        m.frame(0, &established("1.2", 30));
        assert!(m.tick(29_999).is_empty());
        assert_eq!(sent(&m.tick(30_000)), vec![r#"{"event":"pusher:ping","data":{}}"#]);
        assert!(m.tick(40_000).is_empty(), "one ping at a time");
        // Any frame counts as an answer.
        m.frame(45_000, r#"{"event":"pusher:pong","data":{}}"#);
        assert!(m.tick(74_999).is_empty());
        assert_eq!(sent(&m.tick(75_000)).len(), 1);
        assert!(m.tick(104_999).is_empty());
        let out = m.tick(105_000);
        assert!(out.contains(&Command::Close));
        assert!(out.contains(&Command::Connect), "a dead socket after a good connection: come back at once");
    }

    #[test]
    fn activity_timeout_is_capped_at_120_seconds() {
        let mut m = Machine::new(1);
        m.connect(0);
        m.frame(0, &established("1.2", 3_600));
        assert!(m.tick(119_999).is_empty());
        assert_eq!(sent(&m.tick(120_000)).len(), 1);
        let mut m = Machine::new(1);
        m.connect(0);
        m.frame(0, &established("1.2", 0));
        assert_eq!(sent(&m.tick(1_000)).len(), 1, "0 from the server does not mean ping on every tick");
    }

    #[test]
    fn answers_server_pings_and_logs_errors() {
        let mut m = connected();
        assert_eq!(
            m.frame(1, r#"{"event":"pusher:ping","data":{}}"#),
            vec![Command::Send(r#"{"event":"pusher:pong","data":{}}"#.to_owned())]
        );
        let out = m.frame(2, r#"{"event":"pusher:error","data":{"message":"Client event rejected","code":4301}}"#);
        assert!(matches!(&out[..], [Command::Log(text)] if text.contains("4301")));
        assert!(matches!(&m.frame(3, "not json")[..], [Command::Log(_)]));
        assert!(matches!(&m.frame(4, r#"{"event":"pusher:signin","data":{}}"#)[..], [Command::Log(_)]));
        assert_eq!(m.state(), ConnectionState::Connected);
    }

    // ---- subscriptions -----------------------------------------------------------------------

    #[test]
    fn listeners_share_one_subscription() {
        let mut m = connected();
        let (a, out) = m.subscribe("lobby");
        assert_eq!(sent(&out), vec![subscribe_json("lobby", None, None)]);
        let (b, out) = m.subscribe("lobby");
        assert!(out.is_empty(), "no second pusher:subscribe while the first is pending");
        let out = m.frame(5, &succeeded("lobby", None));
        assert_eq!(delivered(&out), vec![(vec![a, b], ChannelEvent::Subscribed { members: None })]);
        let out = m.frame(6, r#"{"event":"NewChatMessage","channel":"lobby","data":"{\"id\":1}"}"#);
        assert_eq!(
            delivered(&out),
            vec![(vec![a, b], ChannelEvent::Event { name: "NewChatMessage".into(), data: r#"{"id":1}"#.into() })]
        );
        // A late joiner hears Subscribed at once, alone, and nothing is sent.
        let (c, out) = m.subscribe("lobby");
        assert_eq!(
            out,
            vec![Command::Deliver { listeners: vec![c], event: ChannelEvent::Subscribed { members: None } }]
        );
        // Only the last listener leaving unsubscribes.
        assert!(m.unsubscribe(a).is_empty());
        assert!(m.unsubscribe(c).is_empty());
        assert!(m.unsubscribe(c).is_empty(), "unsubscribing twice is harmless");
        assert_eq!(sent(&m.unsubscribe(b)), vec![r#"{"event":"pusher:unsubscribe","data":{"channel":"lobby"}}"#]);
        assert!(delivered(&m.frame(7, r#"{"event":"x","channel":"lobby","data":"{}"}"#)).is_empty());
    }

    #[test]
    fn subscribing_before_the_connection_waits_for_it() {
        let mut m = Machine::new(1);
        let (_, out) = m.subscribe("lobby");
        assert!(out.is_empty());
        let (_, out) = m.subscribe("private-user.7");
        assert!(out.is_empty());
        m.connect(0);
        let out = m.frame(1, ESTABLISHED);
        assert_eq!(sent(&out), vec![subscribe_json("lobby", None, None)]);
        assert_eq!(authorizes(&out), vec![("private-user.7".to_owned(), "123.456".to_owned())]);
    }

    #[test]
    fn private_channels_are_authorized_then_subscribed() {
        let mut m = connected();
        let (a, out) = m.subscribe("private-user.7");
        assert_eq!(out, vec![Command::Authorize { channel: "private-user.7".into(), socket_id: "123.456".into() }]);
        let out = m.auth_ok("private-user.7", "123.456", auth(None));
        assert_eq!(sent(&out), vec![subscribe_json("private-user.7", Some("key:sig"), None)]);
        assert!(m.auth_ok("private-user.7", "123.456", auth(None)).is_empty(), "a duplicate answer is ignored");
        let out = m.frame(2, &succeeded("private-user.7", None));
        assert_eq!(delivered(&out), vec![(vec![a], ChannelEvent::Subscribed { members: None })]);
    }

    #[test]
    fn every_channel_is_subscribed_again_after_a_reconnect() {
        let mut m = connected();
        let (a, _) = m.subscribe("private-user.7");
        m.auth_ok("private-user.7", "123.456", auth(None));
        m.frame(1, &succeeded("private-user.7", None));
        let (b, _) = m.subscribe("lobby");
        m.frame(2, &succeeded("lobby", None));
        let (c, _) = m.subscribe("presence-room.9");
        let left = m.subscribe("private-chat.1.2").0;
        m.unsubscribe(left);

        m.closed(3, 1006);
        assert!(m.subscribe("lobby").1.is_empty(), "nothing to send while disconnected");
        m.tick(m.reconnect_at().unwrap());
        let out = m.frame(5_000, &established("9.9", 120));
        assert_eq!(sent(&out), vec![subscribe_json("lobby", None, None)]);
        assert_eq!(
            authorizes(&out),
            vec![("presence-room.9".to_owned(), "9.9".to_owned()), ("private-user.7".to_owned(), "9.9".to_owned())]
        );
        // The auth answer for the old socket is stale.
        assert!(m.auth_ok("private-user.7", "123.456", auth(None)).is_empty());
        assert_eq!(sent(&m.auth_ok("private-user.7", "9.9", auth(None))).len(), 1);
        let out = m.frame(5_001, &succeeded("private-user.7", None));
        assert_eq!(delivered(&out), vec![(vec![a], ChannelEvent::Subscribed { members: None })]);
        let _ = (b, c);
    }

    #[test]
    fn stale_auth_answers_are_dropped() {
        let mut m = connected();
        m.subscribe("private-user.7");
        m.closed(1, 1006);
        assert!(m.auth_ok("private-user.7", "123.456", auth(None)).is_empty(), "socket gone");
        assert!(m.auth_failed(2, "private-user.7", "123.456", 403, "no".into()).is_empty());
        let mut m = connected();
        let (id, _) = m.subscribe("private-user.7");
        m.unsubscribe(id);
        assert!(m.auth_ok("private-user.7", "123.456", auth(None)).is_empty(), "channel left");
    }

    #[test]
    fn refused_auth_is_reported_and_not_retried() {
        let mut m = connected();
        let (a, _) = m.subscribe("private-user.8");
        let out = m.auth_failed(1, "private-user.8", "123.456", 403, "not yours".into());
        assert_eq!(
            delivered(&out),
            vec![(vec![a], ChannelEvent::SubscriptionFailed { status: 403, message: "not yours".into() })]
        );
        assert!(authorizes(&m.tick(1_000_000)).is_empty());
        // Leaving a refused channel sends nothing: the server never subscribed us.
        let (b, out) = m.subscribe("private-user.8");
        assert_eq!(authorizes(&out).len(), 1, "a new listener tries again");
        m.auth_failed(2, "private-user.8", "123.456", 403, "not yours".into());
        m.unsubscribe(a);
        assert!(m.unsubscribe(b).is_empty());
    }

    #[test]
    fn server_errors_from_the_auth_endpoint_are_retried() {
        let mut m = connected();
        let (a, _) = m.subscribe("private-user.7");
        let out = m.auth_failed(1_000, "private-user.7", "123.456", 503, "busy".into());
        assert_eq!(
            delivered(&out),
            vec![(vec![a], ChannelEvent::SubscriptionFailed { status: 503, message: "busy".into() })]
        );
        assert!(authorizes(&m.tick(1_000)).is_empty());
        assert_eq!(authorizes(&m.tick(2_000)).len(), 1);
        m.auth_failed(2_000, "private-user.7", "123.456", 0, "network".into());
        assert!(authorizes(&m.tick(3_000)).is_empty(), "the second retry waits longer");
        assert_eq!(authorizes(&m.tick(4_000)).len(), 1);
        let out = m.auth_ok("private-user.7", "123.456", auth(None));
        assert_eq!(sent(&out).len(), 1);
    }

    #[test]
    fn server_subscription_errors_reach_listeners() {
        let mut m = connected();
        let (a, _) = m.subscribe("lobby");
        let frame = r#"{"event":"pusher:subscription_error","channel":"lobby","data":"{\"type\":\"PusherError\",\"error\":\"Presence channel is full\",\"status\":403}"}"#;
        assert_eq!(
            delivered(&m.frame(1, frame)),
            vec![(
                vec![a],
                ChannelEvent::SubscriptionFailed { status: 403, message: "Presence channel is full".into() }
            )]
        );
        // A late joiner of the failed channel tries again.
        assert_eq!(sent(&m.subscribe("lobby").1).len(), 1);
    }

    #[test]
    fn invalid_channel_names_fail_the_listener_only() {
        let mut m = connected();
        let (a, out) = m.subscribe("has space");
        assert!(
            matches!(&delivered(&out)[..], [(ids, ChannelEvent::SubscriptionFailed { status: 400, .. })] if ids == &vec![a])
        );
        assert!(m.unsubscribe(a).is_empty());
    }

    // ---- presence ----------------------------------------------------------------------------

    #[test]
    fn presence_members_are_kept_once_per_user() {
        let mut m = connected();
        let (a, _) = m.subscribe("presence-room.9");
        let data = r#"{"user_id":"1","user_info":{"name":"Ann"}}"#;
        let out = m.auth_ok("presence-room.9", "123.456", auth(Some(data)));
        assert_eq!(sent(&out), vec![subscribe_json("presence-room.9", Some("key:sig"), Some(data))]);
        let out = m.frame(1, &succeeded("presence-room.9", Some(vec![member("1", "Ann"), member("2", "Bob")])));
        assert_eq!(
            delivered(&out),
            vec![(vec![a], ChannelEvent::Subscribed { members: Some(vec![member("1", "Ann"), member("2", "Bob")]) })]
        );
        let added = Frame::member_added(channel("presence-room.9"), member("3", "Cy")).to_json();
        assert_eq!(delivered(&m.frame(2, &added)), vec![(vec![a], ChannelEvent::MemberAdded(member("3", "Cy")))]);
        // Bob opens a second tab: a (non-compliant) repeat changes nothing and is not delivered twice.
        let again = Frame::member_added(channel("presence-room.9"), member("2", "Bob")).to_json();
        assert!(delivered(&m.frame(3, &again)).is_empty());
        let removed = Frame::member_removed(channel("presence-room.9"), "2").to_json();
        assert_eq!(delivered(&m.frame(4, &removed)), vec![(vec![a], ChannelEvent::MemberRemoved("2".into()))]);
        assert!(delivered(&m.frame(5, &removed)).is_empty(), "already gone");
        // A late joiner gets the current members.
        let (b, out) = m.subscribe("presence-room.9");
        assert_eq!(
            delivered(&out),
            vec![(vec![b], ChannelEvent::Subscribed { members: Some(vec![member("1", "Ann"), member("3", "Cy")]) })]
        );
    }

    #[test]
    fn duplicate_members_in_the_list_are_merged() {
        let mut m = connected();
        let (a, _) = m.subscribe("presence-room.9");
        m.auth_ok("presence-room.9", "123.456", auth(Some(r#"{"user_id":"1"}"#)));
        // The wire format (ids + hash) already carries one info per id, but may repeat an id.
        let frame = r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-room.9","data":"{\"presence\":{\"ids\":[\"1\",\"2\",\"1\"],\"hash\":{\"1\":{\"name\":\"Ann\"},\"2\":{\"name\":\"Bob\"}},\"count\":3}}"}"#;
        assert_eq!(
            delivered(&m.frame(1, frame)),
            vec![(vec![a], ChannelEvent::Subscribed { members: Some(vec![member("1", "Ann"), member("2", "Bob")]) })]
        );
        let list = vec![member("1", "Ann"), member("2", "Bob"), member("1", "Ann B.")];
        assert_eq!(dedup_members(list), vec![member("1", "Ann B."), member("2", "Bob")]);
    }

    #[test]
    fn presence_auth_without_channel_data_fails() {
        let mut m = connected();
        let (a, _) = m.subscribe("presence-room.9");
        let out = m.auth_ok("presence-room.9", "123.456", auth(None));
        assert!(sent(&out).is_empty());
        assert!(matches!(&delivered(&out)[..], [(ids, ChannelEvent::SubscriptionFailed { .. })] if ids == &vec![a]));
    }

    // ---- whispers ----------------------------------------------------------------------------

    #[test]
    fn whispers_need_a_subscribed_private_channel() {
        let mut m = connected();
        assert_eq!(m.whisper("private-chat.1.2", "client-typing", json!({})), Err(WhisperRefused::NotSubscribed));
        let (a, _) = m.subscribe("private-chat.1.2");
        assert_eq!(m.whisper("private-chat.1.2", "client-typing", json!({})), Err(WhisperRefused::NotSubscribed));
        m.auth_ok("private-chat.1.2", "123.456", auth(None));
        m.frame(1, &succeeded("private-chat.1.2", None));
        assert_eq!(
            m.whisper("private-chat.1.2", "client-typing", json!({"user_id": 1})).unwrap(),
            r#"{"event":"client-typing","channel":"private-chat.1.2","data":{"user_id":1}}"#
        );
        assert!(matches!(m.whisper("private-chat.1.2", "typing", json!({})), Err(WhisperRefused::Invalid(_))));
        let incoming = r#"{"event":"client-typing","channel":"private-chat.1.2","data":{"user_id":2}}"#;
        assert_eq!(
            delivered(&m.frame(2, incoming)),
            vec![(
                vec![a],
                ChannelEvent::Whisper { name: "client-typing".into(), data: json!({"user_id": 2}), user_id: None }
            )]
        );
        m.closed(3, 1006);
        assert_eq!(m.whisper("private-chat.1.2", "client-typing", json!({})), Err(WhisperRefused::NotConnected));
    }

    // ---- auth request helpers ----------------------------------------------------------------

    #[test]
    fn auth_form_is_url_encoded() {
        assert_eq!(auth_form("123.456", "private-chat.1.2"), "socket_id=123.456&channel_name=private-chat.1.2");
        assert_eq!(auth_form("1.2", "a=b,c;d@e f"), "socket_id=1.2&channel_name=a%3Db%2Cc%3Bd%40e+f");
    }

    #[test]
    fn auth_error_messages_come_from_the_body() {
        assert_eq!(auth_error_message(403, r#"{"kind":"forbidden","message":"not your channel"}"#), "not your channel");
        assert_eq!(auth_error_message(502, "<html>Bad gateway</html>"), "channel authorization failed (HTTP 502)");
        assert_eq!(auth_error_message(403, r#"{"message":""}"#), "channel authorization failed (HTTP 403)");
    }

    // ---- encrypted channels --------------------------------------------------------------------

    const SECRET: &str = "private-encrypted-user.1";

    fn key(byte: u8) -> SharedSecret {
        pusher_protocol::encryption::MasterKey::from_bytes([byte; 32]).shared_secret(&channel(SECRET))
    }

    fn keyed(key: &SharedSecret) -> ChannelAuthorization {
        ChannelAuthorization { shared_secret: Some(key.to_base64()), ..auth(None) }
    }

    fn sealed(key: &SharedSecret, text: &str) -> String {
        let data = key.encrypt([9; 24], text);
        json!({ "event": "NewChatMessage", "channel": SECRET, "data": data }).to_string()
    }

    /// Connected and subscribed to the encrypted channel with `key(1)`.
    fn subscribed_encrypted() -> (Machine, ListenerId) {
        let mut m = connected();
        let (id, out) = m.subscribe(SECRET);
        assert_eq!(authorizes(&out), [(SECRET.to_owned(), "123.456".to_owned())]);
        let out = m.auth_ok(SECRET, "123.456", keyed(&key(1)));
        assert_eq!(sent(&out).len(), 1);
        m.frame(0, &succeeded(SECRET, None));
        (m, id)
    }

    fn events(commands: &[Command]) -> Vec<ChannelEvent> {
        delivered(commands).into_iter().map(|(_, e)| e).collect()
    }

    fn event(data: &str) -> ChannelEvent {
        ChannelEvent::Event { name: "NewChatMessage".into(), data: data.into() }
    }

    #[test]
    fn encrypted_events_arrive_decrypted() {
        let (mut m, _) = subscribed_encrypted();
        let out = m.frame(1, &sealed(&key(1), r#"{"id":1}"#));
        assert_eq!(events(&out), [event(r#"{"id":1}"#)]);
    }

    #[test]
    fn an_encrypted_channel_without_a_shared_secret_fails() {
        let mut m = connected();
        let (_, _) = m.subscribe(SECRET);
        let out = m.auth_ok(SECRET, "123.456", auth(None));
        assert!(sent(&out).is_empty(), "never subscribed without a key");
        assert!(matches!(&events(&out)[..], [ChannelEvent::SubscriptionFailed { status: 500, .. }]));
    }

    #[test]
    fn a_rotated_key_is_asked_for_again_and_held_events_follow_in_order() {
        let (mut m, _) = subscribed_encrypted();
        // The master key was rotated: events now come sealed with another key.
        let out = m.frame(1, &sealed(&key(2), r#"{"id":2}"#));
        assert!(events(&out).is_empty(), "nothing handed over undecrypted");
        assert_eq!(authorizes(&out), [(SECRET.to_owned(), "123.456".to_owned())]);
        let out = m.frame(2, &sealed(&key(2), r#"{"id":3}"#));
        assert!(out.iter().all(|c| !matches!(c, Command::Deliver { .. } | Command::Authorize { .. })));
        // The new key arrives: both events, in order; no new subscribe frame.
        let out = m.auth_ok(SECRET, "123.456", keyed(&key(2)));
        assert!(sent(&out).is_empty());
        assert_eq!(events(&out), [event(r#"{"id":2}"#), event(r#"{"id":3}"#)]);
        let out = m.frame(3, &sealed(&key(2), r#"{"id":4}"#));
        assert_eq!(events(&out), [event(r#"{"id":4}"#)]);
    }

    #[test]
    fn what_a_fresh_key_cannot_open_is_reported_and_never_shown() {
        let (mut m, _) = subscribed_encrypted();
        // Sealed with a key nobody hands out (or tampered with): a fresh key does not help.
        m.frame(1, &sealed(&key(3), r#"{"id":2}"#));
        let out = m.auth_ok(SECRET, "123.456", keyed(&key(1)));
        assert_eq!(events(&out), [ChannelEvent::Undecryptable { count: 1 }]);
        // Within the interval: reported at once, the key is not asked for again.
        let out = m.frame(1_000, &sealed(&key(3), r#"{"id":3}"#));
        assert!(authorizes(&out).is_empty());
        assert_eq!(events(&out), [ChannelEvent::Undecryptable { count: 1 }]);
        // Good events still arrive.
        assert_eq!(events(&m.frame(1_001, &sealed(&key(1), "{}"))), [event("{}")]);
        // Plaintext on an encrypted channel is not handed over either.
        let plain = json!({ "event": "NewChatMessage", "channel": SECRET, "data": "{\"id\":5}" }).to_string();
        assert_eq!(events(&m.frame(1_002, &plain)), [ChannelEvent::Undecryptable { count: 1 }]);
        // After the interval, the key is asked for again.
        let out = m.frame(1 + REKEY_INTERVAL_MS, &sealed(&key(3), "{}"));
        assert_eq!(authorizes(&out).len(), 1);
        // The auth endpoint fails this time: the held event is reported.
        let out = m.auth_failed(1 + REKEY_INTERVAL_MS, SECRET, "123.456", 503, "down".into());
        assert_eq!(events(&out), [ChannelEvent::Undecryptable { count: 1 }]);
        assert_eq!(
            m.whisper(SECRET, "client-typing", json!({})),
            Err(WhisperRefused::Invalid(ProtocolError::ClientEventNotAllowed))
        );
    }

    #[test]
    fn a_new_socket_drops_held_events_and_subscribes_with_a_new_key() {
        let (mut m, _) = subscribed_encrypted();
        m.frame(1, &sealed(&key(2), "{}"));
        m.closed(2, 1006);
        m.tick(60_000);
        let out = m.frame(60_000, &established("5.6", 120));
        assert_eq!(authorizes(&out), [(SECRET.to_owned(), "5.6".to_owned())]);
        // The answer to the old socket's key request no longer counts.
        assert!(m.auth_ok(SECRET, "123.456", keyed(&key(2))).is_empty());
        m.auth_ok(SECRET, "5.6", keyed(&key(2)));
        let out = m.frame(60_001, &succeeded(SECRET, None));
        assert_eq!(events(&out), [ChannelEvent::Subscribed { members: None }]);
        assert_eq!(events(&m.frame(60_002, &sealed(&key(2), "{}"))), [event("{}")]);
    }
}
