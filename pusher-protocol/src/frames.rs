//! Frames: every protocol 7 message we send or accept, parsed into [`Frame`] and written as pusher-js expects.
//!
//! The wire quirks kept on purpose, each pinned by an exact-JSON test:
//! - server → client `data` is a JSON-*encoded string* (`"data":"{\"socket_id\":...}"`), except for
//!   `pusher:error`, `pusher:ping` and `pusher:pong`, whose `data` is an object;
//! - client → server `pusher:subscribe` / `pusher:unsubscribe` carry an object; a string is accepted too;
//! - presence `user_id`s are strings on the wire (numbers from `channel_data` are turned into strings);
//! - client events keep whatever JSON `data` the sender gave, and on presence channels the server adds
//!   the sender's `user_id` next to it.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::channels::ChannelName;
use crate::error::ProtocolError;
use crate::limits::{MAX_EVENT_DATA_BYTES, MAX_EVENT_NAME_LENGTH};
use crate::signing::SocketId;

const CONNECTION_ESTABLISHED: &str = "pusher:connection_established";
const SUBSCRIBE: &str = "pusher:subscribe";
const UNSUBSCRIBE: &str = "pusher:unsubscribe";
const SUBSCRIPTION_SUCCEEDED: &str = "pusher_internal:subscription_succeeded";
const SUBSCRIPTION_ERROR: &str = "pusher:subscription_error";
const PING: &str = "pusher:ping";
const PONG: &str = "pusher:pong";
const ERROR: &str = "pusher:error";
const MEMBER_ADDED: &str = "pusher_internal:member_added";
const MEMBER_REMOVED: &str = "pusher_internal:member_removed";

const CLIENT_EVENT_PREFIX: &str = "client-";
const RESERVED_PREFIXES: [&str; 2] = ["pusher:", "pusher_internal:"];

/// Sent if a frame ever failed to serialize, which the types here make impossible (see [`Frame::to_json`]).
const SERIALIZATION_FAILED: &str =
    r#"{"event":"pusher:error","data":{"message":"Frame could not be serialized","code":null}}"#;

/// One protocol message. Parsing does not know the direction; each side handles the frames it expects
/// (a server must refuse [`Frame::Event`] from a client, for instance).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Server → client, the first frame of a connection.
    ConnectionEstablished { socket_id: SocketId, activity_timeout: u32 },
    /// Client → server.
    Subscribe(Subscribe),
    /// Client → server.
    Unsubscribe { channel: ChannelName },
    /// Server → client. `presence` is the member list on presence channels, `None` elsewhere.
    SubscriptionSucceeded { channel: ChannelName, presence: Option<Vec<PresenceMember>> },
    /// Server → client, for a refused subscription.
    SubscriptionError { channel: ChannelName, error: SubscriptionError },
    /// Either direction; the receiver answers [`Frame::Pong`].
    Ping,
    /// Either direction.
    Pong,
    /// Server → client. `code` is `None` only when a peer sent `null` or no code.
    Error { code: Option<u16>, message: String },
    /// Server → client on presence channels.
    MemberAdded { channel: ChannelName, member: PresenceMember },
    /// Server → client on presence channels.
    MemberRemoved { channel: ChannelName, user_id: String },
    /// `client-*` events, relayed between subscribers of private and presence channels.
    ClientEvent(ClientEvent),
    /// Application events published through the HTTP API; any other name.
    Event(Event),
}

impl Frame {
    pub fn connection_established(socket_id: SocketId, activity_timeout: u32) -> Self {
        Self::ConnectionEstablished { socket_id, activity_timeout }
    }

    pub fn subscribe(channel: ChannelName, auth: Option<String>, channel_data: Option<String>) -> Self {
        Self::Subscribe(Subscribe::new(channel, auth, channel_data))
    }

    pub fn unsubscribe(channel: ChannelName) -> Self {
        Self::Unsubscribe { channel }
    }

    /// `presence` must be `Some` (possibly empty) for presence channels and `None` for the others.
    pub fn subscription_succeeded(channel: ChannelName, presence: Option<Vec<PresenceMember>>) -> Self {
        Self::SubscriptionSucceeded { channel, presence }
    }

    pub fn subscription_error(channel: ChannelName, error: SubscriptionError) -> Self {
        Self::SubscriptionError { channel, error }
    }

    pub fn ping() -> Self {
        Self::Ping
    }

    pub fn pong() -> Self {
        Self::Pong
    }

    pub fn error(code: u16, message: impl Into<String>) -> Self {
        Self::Error { code: Some(code), message: message.into() }
    }

    pub fn member_added(channel: ChannelName, member: PresenceMember) -> Self {
        Self::MemberAdded { channel, member }
    }

    pub fn member_removed(channel: ChannelName, user_id: impl Into<String>) -> Self {
        Self::MemberRemoved { channel, user_id: user_id.into() }
    }

    /// A `client-*` event; see [`ClientEvent::new`] for what is checked.
    pub fn client_event(
        event: &str,
        channel: ChannelName,
        data: Value,
        user_id: Option<String>,
    ) -> Result<Self, ProtocolError> {
        ClientEvent::new(event, channel, data, user_id).map(Self::ClientEvent)
    }

    /// An application event; see [`Event::new`] for what is checked.
    pub fn event(event: &str, channel: ChannelName, data: impl Into<String>) -> Result<Self, ProtocolError> {
        Event::new(event, channel, data.into()).map(Self::Event)
    }

    /// The `event` field this frame is sent with.
    pub fn event_name(&self) -> &str {
        match self {
            Self::ConnectionEstablished { .. } => CONNECTION_ESTABLISHED,
            Self::Subscribe(_) => SUBSCRIBE,
            Self::Unsubscribe { .. } => UNSUBSCRIBE,
            Self::SubscriptionSucceeded { .. } => SUBSCRIPTION_SUCCEEDED,
            Self::SubscriptionError { .. } => SUBSCRIPTION_ERROR,
            Self::Ping => PING,
            Self::Pong => PONG,
            Self::Error { .. } => ERROR,
            Self::MemberAdded { .. } => MEMBER_ADDED,
            Self::MemberRemoved { .. } => MEMBER_REMOVED,
            Self::ClientEvent(e) => &e.event,
            Self::Event(e) => &e.event,
        }
    }

    /// The channel the frame is about, if any (for subscribe/unsubscribe, the one inside `data`).
    pub fn channel(&self) -> Option<&ChannelName> {
        match self {
            Self::ConnectionEstablished { .. } | Self::Ping | Self::Pong | Self::Error { .. } => None,
            Self::Subscribe(s) => Some(&s.channel),
            Self::Unsubscribe { channel }
            | Self::SubscriptionSucceeded { channel, .. }
            | Self::SubscriptionError { channel, .. }
            | Self::MemberAdded { channel, .. }
            | Self::MemberRemoved { channel, .. } => Some(channel),
            Self::ClientEvent(e) => Some(&e.channel),
            Self::Event(e) => Some(&e.channel),
        }
    }

    /// Parses one WebSocket text message. Never panics, whatever the input.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if !is_json_object(text) {
            return Err(ProtocolError::MalformedFrame("a frame must be a JSON object".into()));
        }
        let Incoming { event, channel, data, user_id } =
            serde_json::from_str(text).map_err(|e| ProtocolError::MalformedFrame(e.to_string()))?;
        match event.as_str() {
            CONNECTION_ESTABLISHED => {
                let d: ConnectionIn = decode(CONNECTION_ESTABLISHED, data)?;
                Ok(Self::connection_established(SocketId::parse(&d.socket_id)?, d.activity_timeout))
            }
            SUBSCRIBE => {
                let d: SubscribeIn = decode(SUBSCRIBE, data)?;
                Ok(Self::subscribe(ChannelName::parse(&d.channel)?, d.auth, d.channel_data))
            }
            UNSUBSCRIBE => {
                let d: ChannelIn = decode(UNSUBSCRIBE, data)?;
                Ok(Self::unsubscribe(ChannelName::parse(&d.channel)?))
            }
            SUBSCRIPTION_SUCCEEDED => {
                let channel = required_channel(SUBSCRIPTION_SUCCEEDED, channel)?;
                let d: SubscriptionSucceededIn = decode(SUBSCRIPTION_SUCCEEDED, data)?;
                let presence = d.presence.map(PresenceIn::into_members).transpose()?;
                Ok(Self::subscription_succeeded(channel, presence))
            }
            SUBSCRIPTION_ERROR => {
                let channel = required_channel(SUBSCRIPTION_ERROR, channel)?;
                let d: SubscriptionErrorIn = decode(SUBSCRIPTION_ERROR, data)?;
                Ok(Self::subscription_error(channel, SubscriptionError::new(d.error_type, d.error, d.status)))
            }
            PING => Ok(Self::Ping),
            PONG => Ok(Self::Pong),
            ERROR => {
                let d: ErrorIn = decode(ERROR, data)?;
                // Lenient on purpose: an unusable code must not hide the message from the client.
                let code = d.code.as_ref().and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
                Ok(Self::Error { code, message: d.message })
            }
            MEMBER_ADDED => {
                let channel = required_channel(MEMBER_ADDED, channel)?;
                let d: MemberIn = decode(MEMBER_ADDED, data)?;
                let user_id = user_id_string(&d.user_id).ok_or_else(|| bad_user_id(MEMBER_ADDED))?;
                Ok(Self::member_added(channel, PresenceMember::new(user_id, d.user_info)))
            }
            MEMBER_REMOVED => {
                let channel = required_channel(MEMBER_REMOVED, channel)?;
                let d: MemberIn = decode(MEMBER_REMOVED, data)?;
                let user_id = user_id_string(&d.user_id).ok_or_else(|| bad_user_id(MEMBER_REMOVED))?;
                Ok(Self::member_removed(channel, user_id))
            }
            name if name.starts_with(CLIENT_EVENT_PREFIX) => {
                let channel = required_channel(name, channel)?;
                let user_id = match user_id {
                    None => None,
                    Some(v) => Some(user_id_string(&v).ok_or_else(|| bad_user_id(name))?),
                };
                Self::client_event(name, channel, data.unwrap_or(Value::Null), user_id)
            }
            name if is_reserved(name) => Err(ProtocolError::UnsupportedEvent(truncated(name))),
            name => {
                let channel = required_channel(name, channel)?;
                let data = match data {
                    Some(Value::String(text)) => text,
                    // Other servers may send a bare JSON value; keep its text so the data survives.
                    Some(other) => other.to_string(),
                    None => return Err(ProtocolError::MalformedFrame(format!("{} has no data", truncated(name)))),
                };
                Self::event(name, channel, data)
            }
        }
    }

    /// The frame as pusher-js expects it on the wire.
    pub fn to_json(&self) -> String {
        // Cannot fail: every map key here is a string and no Serialize impl returns an error. The
        // fallback keeps this infallible without a panic path.
        self.try_to_json().unwrap_or_else(|_| SERIALIZATION_FAILED.to_owned())
    }

    fn try_to_json(&self) -> serde_json::Result<String> {
        let channel = self.channel().map(ChannelName::as_str);
        let (channel, data, user_id) = match self {
            Self::ConnectionEstablished { socket_id, activity_timeout } => {
                let data = ConnectionOut { socket_id: socket_id.as_str(), activity_timeout: *activity_timeout };
                (None, OutData::encoded(&data)?, None)
            }
            Self::Subscribe(s) => {
                let data = SubscribeOut {
                    channel: s.channel.as_str(),
                    auth: s.auth.as_deref(),
                    channel_data: s.channel_data.as_deref(),
                };
                (None, OutData::Subscribe(data), None)
            }
            Self::Unsubscribe { channel } => (None, OutData::Channel(ChannelOut { channel: channel.as_str() }), None),
            Self::SubscriptionSucceeded { presence: None, .. } => (channel, OutData::encoded(&Empty {})?, None),
            Self::SubscriptionSucceeded { presence: Some(members), .. } => {
                (channel, OutData::encoded(&PresenceOut::new(members))?, None)
            }
            Self::SubscriptionError { error, .. } => {
                let data =
                    SubscriptionErrorOut { error_type: &error.error_type, error: &error.error, status: error.status };
                (channel, OutData::encoded(&data)?, None)
            }
            Self::Ping | Self::Pong => (None, OutData::Empty(Empty {}), None),
            Self::Error { code, message } => (None, OutData::Error(ErrorOut { message, code: *code }), None),
            Self::MemberAdded { member, .. } => {
                let data = MemberOut { user_id: &member.user_id, user_info: member.user_info.as_ref() };
                (channel, OutData::encoded(&data)?, None)
            }
            Self::MemberRemoved { user_id, .. } => {
                (channel, OutData::encoded(&MemberOut { user_id, user_info: None })?, None)
            }
            Self::ClientEvent(e) => (channel, OutData::Json(&e.data), e.user_id.as_deref()),
            Self::Event(e) => (channel, OutData::Text(Cow::Borrowed(&e.data)), None),
        };
        serde_json::to_string(&Outgoing { event: self.event_name(), channel, data, user_id })
    }
}

impl FromStr for Frame {
    type Err = ProtocolError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// `pusher:error` carrying this error's code and text.
impl From<&ProtocolError> for Frame {
    fn from(error: &ProtocolError) -> Self {
        Self::error(error.code(), error.to_string())
    }
}

/// The `data` of `pusher:subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub channel: ChannelName,
    /// `"key:signature"`, required for private and presence channels.
    pub auth: Option<String>,
    /// Presence channels: the JSON string the auth endpoint signed, `{"user_id":..,"user_info":..}`.
    pub channel_data: Option<String>,
}

impl Subscribe {
    pub fn new(channel: ChannelName, auth: Option<String>, channel_data: Option<String>) -> Self {
        Self { channel, auth, channel_data }
    }
}

/// A member of a presence channel.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceMember {
    /// Always a string on the wire; pusher-js, pusher-java and pusher-swift all read it as one.
    pub user_id: String,
    /// Whatever the app's auth endpoint put in `channel_data`; shared with every member.
    pub user_info: Option<Value>,
}

impl PresenceMember {
    pub fn new(user_id: impl Into<String>, user_info: Option<Value>) -> Self {
        Self { user_id: user_id.into(), user_info }
    }

    /// Reads the member from a presence subscription's `channel_data`. `user_id` may be a string or
    /// an integer there (Pusher's own example uses `10`); it is kept as a string from here on.
    pub fn from_channel_data(channel_data: &str) -> Result<Self, ProtocolError> {
        if !is_json_object(channel_data) {
            return Err(ProtocolError::InvalidChannelData("channel_data must be a JSON object".into()));
        }
        let d: MemberIn =
            serde_json::from_str(channel_data).map_err(|e| ProtocolError::InvalidChannelData(e.to_string()))?;
        let user_id = user_id_string(&d.user_id).ok_or_else(|| {
            ProtocolError::InvalidChannelData("user_id must be a non-empty string or an integer".into())
        })?;
        Ok(Self::new(user_id, d.user_info))
    }

    /// The `channel_data` string an auth endpoint signs and returns for this member.
    pub fn to_channel_data(&self) -> String {
        let data = MemberOut { user_id: &self.user_id, user_info: self.user_info.as_ref() };
        // Same infallibility argument as `Frame::to_json`; "{}" then fails verification cleanly.
        serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// The `data` of `pusher:subscription_error`, shaped like pusher-js's own auth failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionError {
    /// Sent as `type`: `AuthError` for signature problems, `PusherError` otherwise.
    pub error_type: String,
    pub error: String,
    /// HTTP-like status: 401 unauthorized, 403 refused, 400 bad request.
    pub status: u16,
}

impl SubscriptionError {
    pub fn new(error_type: impl Into<String>, error: impl Into<String>, status: u16) -> Self {
        Self { error_type: error_type.into(), error: error.into(), status }
    }
}

/// A `client-*` event. Always valid: built only through [`ClientEvent::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEvent {
    event: String,
    channel: ChannelName,
    data: Value,
    user_id: Option<String>,
}

impl ClientEvent {
    /// Checks that the name starts with `client-` and is at most 200 bytes, that the channel is private
    /// or presence, and that `data` serializes to at most 10 KiB.
    pub fn new(event: &str, channel: ChannelName, data: Value, user_id: Option<String>) -> Result<Self, ProtocolError> {
        check_event_name(event)?;
        if !event.starts_with(CLIENT_EVENT_PREFIX) {
            return Err(ProtocolError::InvalidEventName { reason: "client events must start with client-" });
        }
        if !channel.kind().allows_client_events() {
            return Err(ProtocolError::ClientEventNotAllowed);
        }
        check_data_size(serde_json::to_string(&data).map_or(usize::MAX, |text| text.len()))?;
        Ok(Self { event: event.to_owned(), channel, data, user_id })
    }

    /// The event as the server relays it: `user_id` is the sender's presence id as the server knows
    /// it (`None` off presence channels), replacing anything the sender claimed.
    pub fn with_sender(self, user_id: Option<String>) -> Self {
        Self { user_id, ..self }
    }

    pub fn event(&self) -> &str {
        &self.event
    }

    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    pub fn data(&self) -> &Value {
        &self.data
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

/// An application event. Always valid: built only through [`Event::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    event: String,
    channel: ChannelName,
    data: String,
}

impl Event {
    /// Checks that the name is 1–200 bytes and not reserved (`pusher:`, `pusher_internal:`, `client-`),
    /// and that `data` is at most 10 KiB.
    pub fn new(event: &str, channel: ChannelName, data: String) -> Result<Self, ProtocolError> {
        check_event_name(event)?;
        if is_reserved(event) {
            return Err(ProtocolError::InvalidEventName { reason: "pusher: and pusher_internal: are reserved" });
        }
        if event.starts_with(CLIENT_EVENT_PREFIX) {
            return Err(ProtocolError::InvalidEventName { reason: "client- is reserved for client events" });
        }
        check_data_size(data.len())?;
        Ok(Self { event: event.to_owned(), channel, data })
    }

    pub fn event(&self) -> &str {
        &self.event
    }

    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The payload exactly as published, usually JSON text.
    pub fn data(&self) -> &str {
        &self.data
    }
}

/// Rejects event data over [`MAX_EVENT_DATA_BYTES`]; for callers checking a payload before building a frame.
pub fn check_data_size(size: usize) -> Result<(), ProtocolError> {
    if size > MAX_EVENT_DATA_BYTES {
        Err(ProtocolError::DataTooLarge { size, max: MAX_EVENT_DATA_BYTES })
    } else {
        Ok(())
    }
}

fn check_event_name(event: &str) -> Result<(), ProtocolError> {
    if event.is_empty() {
        Err(ProtocolError::InvalidEventName { reason: "empty" })
    } else if event.len() > MAX_EVENT_NAME_LENGTH {
        Err(ProtocolError::InvalidEventName { reason: "longer than 200 bytes" })
    } else {
        Ok(())
    }
}

fn is_reserved(event: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|prefix| event.starts_with(prefix))
}

/// Keeps peer-chosen names short in error messages (they may be echoed back or logged).
fn truncated(name: &str) -> String {
    name.chars().take(MAX_EVENT_NAME_LENGTH).collect()
}

fn required_channel(event: &str, channel: Option<String>) -> Result<ChannelName, ProtocolError> {
    let channel =
        channel.ok_or_else(|| ProtocolError::MalformedFrame(format!("{} has no channel", truncated(event))))?;
    ChannelName::try_from(channel)
}

fn bad_user_id(event: &str) -> ProtocolError {
    ProtocolError::MalformedFrame(format!("{}: user_id must be a non-empty string or an integer", truncated(event)))
}

/// A presence user id as the wire string: strings as they are, integers in decimal, nothing else.
fn user_id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a frame's `data`, which may be a JSON-encoded object or the object itself.
fn decode<T: DeserializeOwned>(event: &str, data: Option<Value>) -> Result<T, ProtocolError> {
    let result = match data {
        Some(Value::String(text)) if is_json_object(&text) => serde_json::from_str(&text),
        Some(value @ Value::Object(_)) => serde_json::from_value(value),
        None => serde_json::from_value(Value::Object(Map::new())),
        Some(_) => return Err(ProtocolError::MalformedFrame(format!("{event} data must be an object"))),
    };
    result.map_err(|e| ProtocolError::MalformedFrame(format!("{event} data: {e}")))
}

/// Whether `text` can only parse as a JSON object. Serde's derived structs would also accept an
/// array (`["pusher:ping"]` as a ping); every message of the protocol is an object, so insist on one.
fn is_json_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{')
}

// ---- Incoming shapes -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Incoming {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    user_id: Option<Value>,
}

#[derive(Deserialize)]
struct ConnectionIn {
    socket_id: String,
    activity_timeout: u32,
}

#[derive(Deserialize)]
struct SubscribeIn {
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<String>,
}

#[derive(Deserialize)]
struct ChannelIn {
    channel: String,
}

#[derive(Deserialize)]
struct SubscriptionSucceededIn {
    #[serde(default)]
    presence: Option<PresenceIn>,
}

#[derive(Deserialize)]
struct PresenceIn {
    #[serde(default)]
    ids: Vec<Value>,
    #[serde(default)]
    hash: Map<String, Value>,
}

impl PresenceIn {
    /// Members in `ids` order (the hash is an object, whose order JSON does not keep), each id once.
    fn into_members(self) -> Result<Vec<PresenceMember>, ProtocolError> {
        let ids: Vec<String> = if self.ids.is_empty() {
            self.hash.keys().cloned().collect()
        } else {
            self.ids
                .iter()
                .map(|id| user_id_string(id).ok_or_else(|| bad_user_id(SUBSCRIPTION_SUCCEEDED)))
                .collect::<Result<_, _>>()?
        };
        let mut seen = BTreeSet::new();
        Ok(ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .map(|id| {
                let info = self.hash.get(&id).filter(|info| !info.is_null()).cloned();
                PresenceMember::new(id, info)
            })
            .collect())
    }
}

#[derive(Deserialize)]
struct SubscriptionErrorIn {
    #[serde(rename = "type", default)]
    error_type: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    status: u16,
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<Value>,
}

#[derive(Deserialize)]
struct MemberIn {
    user_id: Value,
    #[serde(default)]
    user_info: Option<Value>,
}

// ---- Outgoing shapes: field order here is the order on the wire -------------------------------------

#[derive(Serialize)]
struct Outgoing<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: OutData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutData<'a> {
    /// A string: JSON-encoded data, or an application event's payload as published.
    Text(Cow<'a, str>),
    Json(&'a Value),
    Subscribe(SubscribeOut<'a>),
    Channel(ChannelOut<'a>),
    Error(ErrorOut<'a>),
    Empty(Empty),
}

impl OutData<'_> {
    fn encoded<T: Serialize>(data: &T) -> serde_json::Result<Self> {
        serde_json::to_string(data).map(|text| Self::Text(Cow::Owned(text)))
    }
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ConnectionOut<'a> {
    socket_id: &'a str,
    activity_timeout: u32,
}

#[derive(Serialize)]
struct SubscribeOut<'a> {
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_data: Option<&'a str>,
}

#[derive(Serialize)]
struct ChannelOut<'a> {
    channel: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    message: &'a str,
    code: Option<u16>,
}

#[derive(Serialize)]
struct SubscriptionErrorOut<'a> {
    #[serde(rename = "type")]
    error_type: &'a str,
    error: &'a str,
    status: u16,
}

#[derive(Serialize)]
struct MemberOut<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_info: Option<&'a Value>,
}

/// `{"presence":{"ids":[..],"hash":{id: info},"count":n}}`, each user id once, in the given order.
#[derive(Serialize)]
struct PresenceOut<'a> {
    presence: PresenceBodyOut<'a>,
}

#[derive(Serialize)]
struct PresenceBodyOut<'a> {
    ids: Vec<&'a str>,
    hash: PresenceHashOut<'a>,
    count: u32,
}

struct PresenceHashOut<'a>(Vec<&'a PresenceMember>);

impl<'a> PresenceOut<'a> {
    fn new(members: &'a [PresenceMember]) -> Self {
        // A user with two tabs open is one member; a repeated key would also be invalid in the hash.
        let mut seen = BTreeSet::new();
        let unique: Vec<&PresenceMember> = members.iter().filter(|m| seen.insert(m.user_id.as_str())).collect();
        let count = u32::try_from(unique.len()).unwrap_or(u32::MAX);
        Self {
            presence: PresenceBodyOut {
                ids: unique.iter().map(|m| m.user_id.as_str()).collect(),
                hash: PresenceHashOut(unique),
                count,
            },
        }
    }
}

impl Serialize for PresenceHashOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for member in &self.0 {
            map.serialize_entry(&member.user_id, &member.user_info)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn member(id: &str, name: &str) -> PresenceMember {
        PresenceMember::new(id, Some(json!({ "name": name })))
    }

    /// Exact wire text, and it parses back to the same frame.
    fn assert_wire(frame: Frame, wire: &str) {
        assert_eq!(frame.to_json(), wire);
        assert_eq!(Frame::parse(wire).unwrap(), frame, "round trip of {wire}");
    }

    // ---- exact wire JSON of every constructor ----

    #[test]
    fn connection_established_wire() {
        assert_wire(
            Frame::connection_established(SocketId::parse("123.456").unwrap(), 120),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#,
        );
    }

    #[test]
    fn ping_and_pong_wire() {
        assert_wire(Frame::ping(), r#"{"event":"pusher:ping","data":{}}"#);
        assert_wire(Frame::pong(), r#"{"event":"pusher:pong","data":{}}"#);
    }

    #[test]
    fn error_wire_has_object_data() {
        assert_wire(
            Frame::error(4100, "Over capacity"),
            r#"{"event":"pusher:error","data":{"message":"Over capacity","code":4100}}"#,
        );
        assert_eq!(
            Frame::from(&ProtocolError::ClientEventRateLimited).to_json(),
            r#"{"event":"pusher:error","data":{"message":"Client event rejected due to rate limit","code":4301}}"#
        );
    }

    #[test]
    fn subscribe_and_unsubscribe_wire() {
        assert_wire(
            Frame::subscribe(channel("private-foo"), Some("key:sig".into()), None),
            r#"{"event":"pusher:subscribe","data":{"channel":"private-foo","auth":"key:sig"}}"#,
        );
        assert_wire(
            Frame::subscribe(channel("presence-room"), Some("key:sig".into()), Some(r#"{"user_id":"7"}"#.into())),
            r#"{"event":"pusher:subscribe","data":{"channel":"presence-room","auth":"key:sig","channel_data":"{\"user_id\":\"7\"}"}}"#,
        );
        assert_wire(
            Frame::subscribe(channel("lobby"), None, None),
            r#"{"event":"pusher:subscribe","data":{"channel":"lobby"}}"#,
        );
        assert_wire(
            Frame::unsubscribe(channel("private-foo")),
            r#"{"event":"pusher:unsubscribe","data":{"channel":"private-foo"}}"#,
        );
    }

    #[test]
    fn subscription_succeeded_wire() {
        assert_wire(
            Frame::subscription_succeeded(channel("private-foo"), None),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-foo","data":"{}"}"#,
        );
    }

    #[test]
    fn presence_subscription_succeeded_wire() {
        let members = vec![member("2", "Bea"), PresenceMember::new("10", None), member("1", "Ann")];
        assert_wire(
            Frame::subscription_succeeded(channel("presence-room"), Some(members)),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"2\",\"10\",\"1\"],\"hash\":{\"2\":{\"name\":\"Bea\"},\"10\":null,\"1\":{\"name\":\"Ann\"}},\"count\":3}}"}"#,
        );
        assert_wire(
            Frame::subscription_succeeded(channel("presence-empty"), Some(vec![])),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-empty","data":"{\"presence\":{\"ids\":[],\"hash\":{},\"count\":0}}"}"#,
        );
    }

    #[test]
    fn presence_lists_a_user_once() {
        let members = vec![member("1", "Ann"), member("1", "Ann (second tab)"), member("2", "Bea")];
        let wire = Frame::subscription_succeeded(channel("presence-room"), Some(members)).to_json();
        assert_eq!(
            wire,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"name\":\"Ann\"},\"2\":{\"name\":\"Bea\"}},\"count\":2}}"}"#
        );
    }

    #[test]
    fn subscription_error_wire() {
        assert_wire(
            Frame::subscription_error(channel("private-foo"), ProtocolError::InvalidSignature.subscription_error()),
            r#"{"event":"pusher:subscription_error","channel":"private-foo","data":"{\"type\":\"AuthError\",\"error\":\"Invalid signature\",\"status\":401}"}"#,
        );
    }

    #[test]
    fn member_added_and_removed_wire() {
        assert_wire(
            Frame::member_added(channel("presence-room"), member("42", "Ann")),
            r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"42\",\"user_info\":{\"name\":\"Ann\"}}"}"#,
        );
        assert_wire(
            Frame::member_added(channel("presence-room"), PresenceMember::new("43", None)),
            r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"43\"}"}"#,
        );
        assert_wire(
            Frame::member_removed(channel("presence-room"), "42"),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"42\"}"}"#,
        );
    }

    #[test]
    fn client_event_wire() {
        assert_wire(
            Frame::client_event("client-typing", channel("private-dm.1.2"), json!({"typing": true}), None).unwrap(),
            r#"{"event":"client-typing","channel":"private-dm.1.2","data":{"typing":true}}"#,
        );
        assert_wire(
            Frame::client_event("client-typing", channel("presence-room"), json!({"typing": true}), Some("42".into()))
                .unwrap(),
            r#"{"event":"client-typing","channel":"presence-room","data":{"typing":true},"user_id":"42"}"#,
        );
    }

    #[test]
    fn application_event_wire() {
        assert_wire(
            Frame::event("message-sent", channel("private-conversation.7"), r#"{"id":1,"body":"hi"}"#).unwrap(),
            r#"{"event":"message-sent","channel":"private-conversation.7","data":"{\"id\":1,\"body\":\"hi\"}"}"#,
        );
    }

    // ---- what pusher-js (and other peers) send ----

    #[test]
    fn parses_pusher_js_subscribe() {
        let frame =
            Frame::parse(r#"{"event":"pusher:subscribe","data":{"auth":"key:sig","channel":"private-foo"}}"#).unwrap();
        assert_eq!(frame, Frame::subscribe(channel("private-foo"), Some("key:sig".into()), None));
        assert_eq!(frame.channel().map(ChannelName::as_str), Some("private-foo"));
    }

    #[test]
    fn parses_pusher_js_presence_subscribe() {
        let text = r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-foobar"}}"#;
        let Frame::Subscribe(s) = Frame::parse(text).unwrap() else { panic!("not a subscribe") };
        // channel_data stays byte-for-byte what was signed.
        assert_eq!(s.channel_data.as_deref(), Some(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#));
        assert_eq!(s.auth.as_deref(), Some("k:s"));
    }

    #[test]
    fn subscribe_data_may_be_a_string() {
        let frame = Frame::parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"lobby\"}"}"#).unwrap();
        assert_eq!(frame, Frame::subscribe(channel("lobby"), None, None));
    }

    #[test]
    fn parses_pings_with_or_without_data() {
        assert_eq!(Frame::parse(r#"{"event":"pusher:ping","data":{}}"#).unwrap(), Frame::Ping);
        assert_eq!(Frame::parse(r#"{"event":"pusher:ping"}"#).unwrap(), Frame::Ping);
        assert_eq!(Frame::parse(r#"{"event":"pusher:pong","data":"{}"}"#).unwrap(), Frame::Pong);
    }

    #[test]
    fn parses_pusher_js_client_event() {
        let frame =
            Frame::parse(r#"{"event":"client-typing","data":{"typing":true},"channel":"private-dm.1.2"}"#).unwrap();
        let Frame::ClientEvent(event) = frame else { panic!("not a client event") };
        assert_eq!((event.event(), event.channel().as_str()), ("client-typing", "private-dm.1.2"));
        assert_eq!(event.data(), &json!({"typing": true}));
        assert_eq!(event.user_id(), None);
    }

    #[test]
    fn relayed_client_event_carries_the_servers_user_id() {
        let claimed = r#"{"event":"client-x","channel":"presence-room","data":1,"user_id":"admin"}"#;
        let Frame::ClientEvent(event) = Frame::parse(claimed).unwrap() else { panic!("not a client event") };
        let relayed = Frame::ClientEvent(event.with_sender(Some("42".into())));
        assert_eq!(relayed.to_json(), r#"{"event":"client-x","channel":"presence-room","data":1,"user_id":"42"}"#);
    }

    #[test]
    fn error_frames_from_other_servers() {
        let with_string_data =
            r#"{"event":"pusher:error","data":"{\"code\":4201,\"message\":\"Pong reply not received in time\"}"}"#;
        assert_eq!(Frame::parse(with_string_data).unwrap(), Frame::error(4201, "Pong reply not received in time"));
        let null_code = r#"{"event":"pusher:error","data":{"code":null,"message":"Unsupported event"}}"#;
        assert_eq!(Frame::parse(null_code).unwrap(), Frame::Error { code: None, message: "Unsupported event".into() });
    }

    #[test]
    fn numeric_user_ids_become_strings() {
        let added = r#"{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":10,\"user_info\":null}"}"#;
        assert_eq!(
            Frame::parse(added).unwrap(),
            Frame::member_added(channel("presence-r"), PresenceMember::new("10", None))
        );
        let snapshot = r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-r","data":"{\"presence\":{\"ids\":[10],\"hash\":{\"10\":{\"n\":1}},\"count\":1}}"}"#;
        assert_eq!(
            Frame::parse(snapshot).unwrap(),
            Frame::subscription_succeeded(
                channel("presence-r"),
                Some(vec![PresenceMember::new("10", Some(json!({"n": 1})))])
            )
        );
        assert_eq!(
            PresenceMember::from_channel_data(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).unwrap(),
            PresenceMember::new("10", Some(json!({"name": "Mr. Channels"})))
        );
    }

    #[test]
    fn channel_data_round_trip() {
        let m = member("42", "Ann");
        assert_eq!(m.to_channel_data(), r#"{"user_id":"42","user_info":{"name":"Ann"}}"#);
        assert_eq!(PresenceMember::from_channel_data(&m.to_channel_data()).unwrap(), m);
        for bad in ["", "{}", r#"{"user_id":""}"#, r#"{"user_id":1.5}"#, r#"{"user_id":true}"#, "[1]"] {
            assert!(
                matches!(PresenceMember::from_channel_data(bad), Err(ProtocolError::InvalidChannelData(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn application_events_with_bare_json_data_keep_it_as_text() {
        let frame = Frame::parse(r#"{"event":"update","channel":"lobby","data":{"a":1}}"#).unwrap();
        let Frame::Event(event) = frame else { panic!("not an event") };
        assert_eq!(event.data(), r#"{"a":1}"#);
    }

    // ---- refusals ----

    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        let deep = "[".repeat(100_000);
        for text in [
            "",
            "null",
            "[]",
            r#"["pusher:ping"]"#,
            "\"pusher:ping\"",
            "{",
            "{}",
            r#"{"event":1}"#,
            r#"{"event":"pusher:subscribe"}"#,
            r#"{"event":"pusher:subscribe","data":{"channel":7}}"#,
            r#"{"event":"pusher:subscribe","data":"not json"}"#,
            r#"{"event":"pusher:subscribe","data":["lobby"]}"#,
            r#"{"event":"pusher:subscribe","data":"[\"lobby\"]"}"#,
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.1\"}"}"#,
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.1\",\"activity_timeout\":-1}"}"#,
            r#"{"event":"pusher_internal:member_removed","channel":"presence-a","data":"{}"}"#,
            r#"{"event":"pusher_internal:member_added","data":"{\"user_id\":\"1\"}"}"#,
            r#"{"event":"update","channel":"lobby"}"#,
            deep.as_str(),
        ] {
            assert!(Frame::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn invalid_channels_and_socket_ids_are_reported_as_such() {
        assert!(matches!(
            Frame::parse(r#"{"event":"pusher:subscribe","data":{"channel":"has space"}}"#),
            Err(ProtocolError::InvalidChannelName { .. })
        ));
        assert!(matches!(
            Frame::parse(r#"{"event":"client-x","channel":"private-encrypted-x","data":{}}"#),
            Err(ProtocolError::ClientEventNotAllowed)
        ));
        assert_eq!(
            Frame::parse(
                r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"abc\",\"activity_timeout\":120}"}"#
            ),
            Err(ProtocolError::InvalidSocketId)
        );
    }

    #[test]
    fn unknown_pusher_events_are_unsupported() {
        for name in ["pusher:signin", "pusher_internal:subscription_count", "pusher:cache_miss"] {
            let text = format!(r#"{{"event":"{name}","data":{{}}}}"#);
            assert_eq!(Frame::parse(&text), Err(ProtocolError::UnsupportedEvent(name.into())));
        }
    }

    #[test]
    fn client_events_only_on_authorized_channels() {
        assert_eq!(
            Frame::parse(r#"{"event":"client-x","channel":"lobby","data":{}}"#),
            Err(ProtocolError::ClientEventNotAllowed)
        );
        assert!(matches!(Frame::parse(r#"{"event":"client-x","data":{}}"#), Err(ProtocolError::MalformedFrame(_))));
    }

    #[test]
    fn event_data_is_limited_to_10_kib() {
        // The JSON string's quotes count: 10238 characters serialize to exactly 10240 bytes.
        let at_limit = Value::String("a".repeat(MAX_EVENT_DATA_BYTES - 2));
        assert!(Frame::client_event("client-x", channel("private-a"), at_limit, None).is_ok());
        let over = Value::String("a".repeat(MAX_EVENT_DATA_BYTES - 1));
        assert_eq!(
            Frame::client_event("client-x", channel("private-a"), over, None),
            Err(ProtocolError::DataTooLarge { size: MAX_EVENT_DATA_BYTES + 1, max: MAX_EVENT_DATA_BYTES })
        );
        assert!(Frame::event("e", channel("a"), "a".repeat(MAX_EVENT_DATA_BYTES)).is_ok());
        assert!(matches!(
            Frame::event("e", channel("a"), "a".repeat(MAX_EVENT_DATA_BYTES + 1)),
            Err(ProtocolError::DataTooLarge { .. })
        ));
    }

    #[test]
    fn event_names_are_checked() {
        for (name, ok) in [
            ("message-sent", true),
            ("", false),
            ("pusher:ping", false),
            ("pusher_internal:x", false),
            ("client-x", false),
        ] {
            assert_eq!(Frame::event(name, channel("a"), "{}").is_ok(), ok, "{name:?}");
        }
        assert!(Frame::event(&"e".repeat(200), channel("a"), "{}").is_ok());
        assert!(Frame::event(&"e".repeat(201), channel("a"), "{}").is_err());
        assert!(matches!(
            Frame::client_event("typing", channel("private-a"), Value::Null, None),
            Err(ProtocolError::InvalidEventName { .. })
        ));
    }

    #[test]
    fn from_str_is_parse() {
        let frame: Frame = r#"{"event":"pusher:pong","data":{}}"#.parse().unwrap();
        assert_eq!(frame, Frame::pong());
        assert_eq!(frame.event_name(), "pusher:pong");
    }
}
