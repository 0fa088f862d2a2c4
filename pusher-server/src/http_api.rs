//! The Pusher HTTP API of the embedded server: signed requests that publish events
//! (`POST /apps/{id}/events`, `/batch_events`) and read channel state (`GET /apps/{id}/channels...`).
//!
//! Every request is checked in the same order: app id (404), body size (413), signature (401), then
//! the JSON and its fields (400, or 413 for event data over 10 KiB). A request is validated whole
//! before anything is published, so a bad event in a batch publishes nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pusher_protocol::{ApiAuthError, ChannelKind, ChannelName, Frame, ProtocolError, SocketId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Hub;

/// Largest request body accepted (Pusher's own limit is lower per event; this bounds memory).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Channels one `POST /events` may name.
const MAX_CHANNELS_PER_EVENT: usize = 100;
/// Events one `POST /batch_events` may carry.
const MAX_BATCH_EVENTS: usize = 10;

/// Every way an API request fails, mapped to its status here and only here.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("Unknown app")]
    UnknownApp,
    #[error("{0}")]
    Unauthorized(#[from] ApiAuthError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnknownApp => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl From<ProtocolError> for ApiError {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::DataTooLarge { .. } => Self::TooLarge(error.to_string()),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status().as_u16(), error = %self, "pusher: HTTP API request refused");
        (self.status(), self.to_string()).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// A request whose signature checked out: its decoded query parameters, raw body, and the
/// `{channel}` path segment when the route has one. Extracting it runs the checks every endpoint
/// shares: the app exists (404), the body fits (413), the signature is right (401).
pub(crate) struct Signed {
    params: Vec<(String, String)>,
    body: Bytes,
    channel: Option<String>,
}

impl FromRequest<Hub> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request, hub: &Hub) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let Path(mut path) = Path::<HashMap<String, String>>::from_request_parts(&mut parts, hub)
            .await
            .map_err(|e| bad_request(e.body_text()))?;
        if path.get("app_id").map(String::as_str) != Some(hub.app_id()) {
            return Err(ApiError::UnknownApp);
        }
        let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| bad_request(format!("Invalid query string: {}", e.body_text())))?;
        let too_large = || ApiError::TooLarge(format!("Request body exceeds {} KiB", MAX_BODY_BYTES / 1024));
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large())?;
        // The signed path is the request path as sent (`/apps/123/events`), whatever the router mounts.
        let signed_path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |uri| uri.0.path());
        hub.credentials().verify_request(parts.method.as_str(), signed_path, &params, &body, unix_now())?;
        Ok(Self { params, body, channel: path.remove("channel") })
    }
}

impl Signed {
    /// The `{channel}` of `/channels/{channel}` routes, validated.
    fn channel(&self) -> Result<ChannelName, ApiError> {
        let name = self.channel.as_deref().ok_or_else(|| bad_request("no channel in the path"))?;
        Ok(ChannelName::parse(name)?)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| bad_request(format!("Invalid JSON body: {e}")))
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One event as `POST /events` and each `batch` entry carry it.
#[derive(Debug, Deserialize)]
struct EventBody {
    name: String,
    data: Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    batch: Vec<EventBody>,
}

/// An event ready to go: one serialized frame per channel, and the connection to skip.
struct Outgoing {
    frames: Vec<(ChannelName, Utf8Bytes)>,
    exclude: Option<SocketId>,
    info: Vec<Info>,
}

impl EventBody {
    fn validate(self, max_channels: usize) -> Result<Outgoing, ApiError> {
        let data = match self.data {
            Value::String(data) => data,
            _ => return Err(bad_request("data must be a string (JSON-encode objects before publishing)")),
        };
        let names = match (self.channels, self.channel) {
            (Some(channels), _) => channels,
            (None, Some(channel)) => vec![channel],
            (None, None) => return Err(bad_request("channels (or channel) is required")),
        };
        if names.is_empty() || names.len() > max_channels {
            return Err(bad_request(format!("channels must list 1 to {max_channels} channels, not {}", names.len())));
        }
        let exclude = self.socket_id.as_deref().map(SocketId::parse).transpose()?;
        let info = Info::parse_list(self.info.as_deref());
        let mut frames: Vec<(ChannelName, Utf8Bytes)> = Vec::with_capacity(names.len());
        for name in names {
            let channel = ChannelName::try_from(name)?;
            if frames.iter().any(|(c, _)| *c == channel) {
                continue;
            }
            // Serialized once per channel here; every subscriber shares these bytes.
            let frame = Frame::event(&self.name, channel.clone(), data.as_str())?;
            frames.push((channel, frame.to_json().into()));
        }
        if info.contains(&Info::UserCount)
            && let Some((channel, _)) = frames.iter().find(|(c, _)| c.kind() != ChannelKind::Presence)
        {
            return Err(user_count_not_presence(channel));
        }
        Ok(Outgoing { frames, exclude, info })
    }
}

impl Outgoing {
    fn publish(&self, hub: &Hub) {
        for (channel, text) in &self.frames {
            hub.publish_frame(channel, text, self.exclude.as_ref());
        }
    }

    /// `{"channels": {name: {...}}}` when `info` was asked for, after publishing.
    async fn info_json(&self, hub: &Hub) -> Option<Value> {
        if self.info.is_empty() {
            return None;
        }
        let mut channels = Map::new();
        for (channel, _) in &self.frames {
            channels.insert(channel.to_string(), Value::Object(channel_attributes(hub, channel, &self.info).await));
        }
        Some(json!({ "channels": channels }))
    }
}

/// The channel attributes a request may ask for with `info=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Info {
    SubscriptionCount,
    UserCount,
}

impl Info {
    /// A comma-separated `info` value; unknown attributes are ignored, as Pusher does.
    fn parse_list(info: Option<&str>) -> Vec<Self> {
        let mut list = Vec::new();
        for attribute in info.unwrap_or("").split(',').map(str::trim) {
            let parsed = match attribute {
                "subscription_count" => Self::SubscriptionCount,
                "user_count" => Self::UserCount,
                _ => continue,
            };
            if !list.contains(&parsed) {
                list.push(parsed);
            }
        }
        list
    }
}

fn user_count_not_presence(channel: &ChannelName) -> ApiError {
    bad_request(format!("info=user_count is only available for presence channels, not {channel}"))
}

async fn channel_attributes(hub: &Hub, channel: &ChannelName, info: &[Info]) -> Map<String, Value> {
    let stats = hub.channel_stats(channel).await;
    let mut attributes = Map::new();
    for attribute in info {
        match attribute {
            Info::SubscriptionCount => {
                attributes.insert("subscription_count".into(), stats.map_or(0, |s| s.subscription_count).into());
            }
            Info::UserCount => {
                attributes.insert("user_count".into(), stats.and_then(|s| s.user_count).unwrap_or(0).into());
            }
        }
    }
    attributes
}

/// `POST /apps/{app_id}/events`: one event to 1–100 channels. Answers `{}`.
pub(crate) async fn events(State(hub): State<Hub>, request: Signed) -> Result<Json<Value>, ApiError> {
    let outgoing = request.json::<EventBody>()?.validate(MAX_CHANNELS_PER_EVENT)?;
    outgoing.publish(&hub);
    Ok(Json(outgoing.info_json(&hub).await.unwrap_or_else(|| json!({}))))
}

/// `POST /apps/{app_id}/batch_events`: up to 10 events, each to one channel.
pub(crate) async fn batch_events(State(hub): State<Hub>, request: Signed) -> Result<Json<Value>, ApiError> {
    let BatchBody { batch } = request.json()?;
    if batch.len() > MAX_BATCH_EVENTS {
        return Err(bad_request(format!("batch has {} events; at most {MAX_BATCH_EVENTS} are allowed", batch.len())));
    }
    let outgoing = batch
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            event.validate(1).map_err(|e| match e {
                ApiError::BadRequest(m) => ApiError::BadRequest(format!("batch[{i}]: {m}")),
                ApiError::TooLarge(m) => ApiError::TooLarge(format!("batch[{i}]: {m}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for event in &outgoing {
        event.publish(&hub);
    }
    if outgoing.iter().all(|event| event.info.is_empty()) {
        return Ok(Json(json!({})));
    }
    let mut batch: Vec<Value> = Vec::with_capacity(outgoing.len());
    for event in &outgoing {
        // One channel per batch entry: its attributes, flat.
        let attributes = match event.frames.first() {
            Some((channel, _)) => channel_attributes(&hub, channel, &event.info).await,
            None => Map::new(),
        };
        batch.push(Value::Object(attributes));
    }
    Ok(Json(json!({ "batch": batch })))
}

/// `GET /apps/{app_id}/channels?filter_by_prefix=presence-&info=user_count`: the occupied channels.
pub(crate) async fn channels(State(hub): State<Hub>, request: Signed) -> Result<Json<Value>, ApiError> {
    let prefix = request.param("filter_by_prefix").unwrap_or("");
    let info = Info::parse_list(request.param("info"));
    if info.contains(&Info::UserCount) && !prefix.starts_with("presence-") {
        return Err(bad_request("info=user_count requires filter_by_prefix=presence-"));
    }
    let channels: Map<String, Value> = hub
        .occupied_channels(prefix)
        .await
        .into_iter()
        .map(|(channel, stats)| {
            let mut attributes = Map::new();
            if info.contains(&Info::SubscriptionCount) {
                attributes.insert("subscription_count".into(), stats.subscription_count.into());
            }
            if info.contains(&Info::UserCount) {
                attributes.insert("user_count".into(), stats.user_count.unwrap_or(0).into());
            }
            (channel.to_string(), Value::Object(attributes))
        })
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

/// `GET /apps/{app_id}/channels/{channel}?info=subscription_count,user_count`.
pub(crate) async fn channel(State(hub): State<Hub>, request: Signed) -> Result<Json<Value>, ApiError> {
    let channel = request.channel()?;
    let info = Info::parse_list(request.param("info"));
    if info.contains(&Info::UserCount) && channel.kind() != ChannelKind::Presence {
        return Err(user_count_not_presence(&channel));
    }
    let mut body = channel_attributes(&hub, &channel, &info).await;
    body.insert("occupied".into(), hub.channel_stats(&channel).await.is_some().into());
    Ok(Json(Value::Object(body)))
}

/// `GET /apps/{app_id}/channels/{channel}/users`: a presence channel's members.
pub(crate) async fn users(State(hub): State<Hub>, request: Signed) -> Result<Json<Value>, ApiError> {
    let channel = request.channel()?;
    if channel.kind() != ChannelKind::Presence {
        return Err(bad_request(format!("users are only available for presence channels, not {channel}")));
    }
    let users: Vec<Value> = hub.presence_user_ids(&channel).await.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(Json(json!({ "users": users })))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use pusher_protocol::Credentials;
    use tower::ServiceExt;

    use super::*;
    use crate::HubSettings;

    fn hub() -> Hub {
        Hub::new("7", Credentials::new("key", "secret"), HubSettings::default())
    }

    /// Sends a request signed like the official SDKs do; returns the status and the body text.
    async fn call(hub: &Hub, method: &str, path: &str, params: &[(&str, &str)], body: &str) -> (u16, String) {
        let query = hub.credentials().sign_request(method, path, params, body.as_bytes(), unix_now());
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", v.replace(' ', "+"))).collect();
        let request = Request::builder()
            .method(method)
            .uri(format!("{path}?{}", query.join("&")))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = hub.router(true).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_valid_event_is_accepted() {
        let body = r#"{"name":"hello","channels":["lobby"],"data":"{\"n\":1}"}"#;
        assert_eq!(call(&hub(), "POST", "/apps/7/events", &[], body).await, (200, "{}".into()));
    }

    #[tokio::test]
    async fn unknown_app_is_404() {
        let body = r#"{"name":"hello","channels":["lobby"],"data":"{}"}"#;
        assert_eq!(call(&hub(), "POST", "/apps/8/events", &[], body).await.0, 404);
    }

    #[tokio::test]
    async fn each_malformed_field_has_its_own_400() {
        let hub = hub();
        let cases = [
            ("{", "Invalid JSON body"),
            (r#"{"name":"e","channels":[],"data":"{}"}"#, "channels must list 1 to 100 channels, not 0"),
            (r#"{"name":"e","data":"{}"}"#, "channels (or channel) is required"),
            (r#"{"name":"e","channel":"a b","data":"{}"}"#, "Invalid channel name"),
            (r#"{"name":"pusher:x","channel":"a","data":"{}"}"#, "Invalid event name"),
            (r#"{"name":"e","channel":"a","data":{"x":1}}"#, "data must be a string"),
            (r#"{"name":"e","channel":"a","data":"{}","socket_id":"x"}"#, "Invalid socket_id"),
        ];
        for (body, message) in cases {
            let (status, text) = call(&hub, "POST", "/apps/7/events", &[], body).await;
            assert_eq!(status, 400, "{body}");
            assert!(text.starts_with(message), "{body}: {text}");
        }
        let channels: Vec<String> = (0..101).map(|i| format!("\"c{i}\"")).collect();
        let body = format!(r#"{{"name":"e","channels":[{}],"data":"{{}}"}}"#, channels.join(","));
        assert_eq!(call(&hub, "POST", "/apps/7/events", &[], &body).await.0, 400);
    }

    #[tokio::test]
    async fn big_data_and_big_bodies_are_413() {
        let hub = hub();
        let data = "x".repeat(10 * 1024 + 1);
        let body = format!(r#"{{"name":"e","channel":"a","data":"{data}"}}"#);
        let (status, text) = call(&hub, "POST", "/apps/7/events", &[], &body).await;
        assert_eq!((status, text.as_str()), (413, "Event data is 10241 bytes; at most 10240 are allowed"));
        let body = format!(r#"{{"name":"e","channel":"a","data":"{}"}}"#, "x".repeat(300 * 1024));
        assert_eq!(call(&hub, "POST", "/apps/7/events", &[], &body).await.0, 413);
    }

    #[tokio::test]
    async fn batches_are_validated_whole_and_limited_to_10() {
        let hub = hub();
        let ok = r#"{"batch":[{"channel":"a","name":"e","data":"1"},{"channel":"b","name":"e","data":"2"}]}"#;
        assert_eq!(call(&hub, "POST", "/apps/7/batch_events", &[], ok).await, (200, "{}".into()));
        let bad = r#"{"batch":[{"channel":"a","name":"e","data":"1"},{"channel":"b","name":"client-x","data":"2"}]}"#;
        let (status, text) = call(&hub, "POST", "/apps/7/batch_events", &[], bad).await;
        assert_eq!(status, 400);
        assert!(text.starts_with("batch[1]: Invalid event name"), "{text}");
        let eleven: Vec<&str> = std::iter::repeat_n(r#"{"channel":"a","name":"e","data":"1"}"#, 11).collect();
        let body = format!(r#"{{"batch":[{}]}}"#, eleven.join(","));
        assert_eq!(call(&hub, "POST", "/apps/7/batch_events", &[], &body).await.0, 400);
    }

    #[tokio::test]
    async fn channel_queries_answer_for_unoccupied_channels() {
        let hub = hub();
        assert_eq!(call(&hub, "GET", "/apps/7/channels", &[], "").await, (200, r#"{"channels":{}}"#.into()));
        let (status, text) = call(&hub, "GET", "/apps/7/channels", &[("info", "user_count")], "").await;
        assert_eq!((status, text.as_str()), (400, "info=user_count requires filter_by_prefix=presence-"));
        let info = [("info", "subscription_count,user_count")];
        let (status, text) = call(&hub, "GET", "/apps/7/channels/presence-room", &info, "").await;
        assert_eq!(status, 200);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, json!({"occupied": false, "subscription_count": 0, "user_count": 0}));
        assert_eq!(call(&hub, "GET", "/apps/7/channels/lobby", &info, "").await.0, 400);
        assert_eq!(call(&hub, "GET", "/apps/7/channels/lobby/users", &[], "").await.0, 400);
        assert_eq!(
            call(&hub, "GET", "/apps/7/channels/presence-room/users", &[], "").await,
            (200, r#"{"users":[]}"#.into())
        );
    }

    #[tokio::test]
    async fn a_tampered_request_is_401_with_the_reason() {
        let hub = hub();
        let body = r#"{"name":"hello","channels":["lobby"],"data":"{}"}"#;
        let no_params: [(&str, &str); 0] = [];
        let query = hub.credentials().sign_request("POST", "/apps/7/events", &no_params, b"{}", unix_now());
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = Request::post(format!("/apps/7/events?{}", query.join("&"))).body(Body::from(body)).unwrap();
        let response = hub.router(true).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let text = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(text, "body_md5 does not match the request body");
    }
}
