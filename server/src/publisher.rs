//! The HTTP [`Broadcaster`]: signed `POST /apps/{id}/events` requests to an external
//! Pusher-compatible server (Pusher, sockudo, soketi, Laravel Reverb, or another Banter).
//!
//! Publications go into a bounded queue and one task sends them in order, so a request never waits
//! on the realtime service and events for one channel never overtake each other. A failed publish is
//! logged and dropped: the message is already stored and clients catch up after a gap.

use std::time::Duration;

use app::ssr::broadcast::{Broadcaster, Publication};
use pusher_protocol::Credentials;
use serde_json::json;
use tokio::sync::mpsc;

/// Why one publish did not go through (logged; the message is stored either way).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No answer: the server is down, unreachable, or slower than the timeout.
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    /// The server answered, and refused (bad credentials, an invalid event, its own limits).
    #[error("{status}: {body}")]
    Refused { status: reqwest::StatusCode, body: String },
}

/// Publications waiting to be sent; beyond this the newest are dropped (and logged).
const QUEUE: usize = 10_000;

pub struct HttpBroadcaster {
    queue: mpsc::Sender<Publication>,
}

impl HttpBroadcaster {
    /// Starts the sending task. `base_url` is `scheme://host:port` with no trailing slash.
    pub fn spawn(base_url: String, app_id: String, credentials: Credentials) -> Self {
        let (queue, mut pending) = mpsc::channel::<Publication>(QUEUE);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let path = format!("/apps/{app_id}/events");
        tokio::spawn(async move {
            while let Some(publication) = pending.recv().await {
                if let Err(problem) = send(&client, &base_url, &path, &credentials, &publication).await {
                    tracing::warn!(event = publication.event, %problem, "could not publish a realtime event");
                }
            }
        });
        Self { queue }
    }
}

impl Broadcaster for HttpBroadcaster {
    fn publish(&self, publication: Publication) {
        if let Err(e) = self.queue.try_send(publication) {
            tracing::warn!(error = %e, "realtime publish queue is full; event dropped");
        }
    }
}

/// The body of `POST /apps/{id}/events`.
pub fn event_body(publication: &Publication) -> String {
    let channels: Vec<&str> = publication.channels.iter().map(|c| c.as_str()).collect();
    let mut body = json!({ "name": publication.event, "channels": channels, "data": publication.data });
    if let Some(socket_id) = &publication.exclude {
        body["socket_id"] = json!(socket_id.as_str());
    }
    body.to_string()
}

async fn send(
    client: &reqwest::Client,
    base_url: &str,
    path: &str,
    credentials: &Credentials,
    publication: &Publication,
) -> Result<(), PublishError> {
    let body = event_body(publication);
    let now = chrono::Utc::now().timestamp();
    let query = credentials.sign_request("POST", path, &[] as &[(&str, &str)], body.as_bytes(), now);
    let response = client
        .post(format!("{base_url}{path}"))
        .query(&query)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.text().await.unwrap_or_default();
        Err(PublishError::Refused { status, body: text.chars().take(200).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pusher_protocol::{ChannelName, SocketId};

    #[test]
    fn body_is_what_the_events_endpoint_expects() {
        let publication = Publication {
            channels: vec![
                ChannelName::parse("private-user.2").unwrap(),
                ChannelName::parse("private-user.1").unwrap(),
            ],
            event: "NewChatMessage",
            data: r#"{"id":1}"#.into(),
            exclude: Some(SocketId::parse("1.2").unwrap()),
        };
        let body: serde_json::Value = serde_json::from_str(&event_body(&publication)).unwrap();
        assert_eq!(
            body,
            json!({"name":"NewChatMessage","channels":["private-user.2","private-user.1"],"data":"{\"id\":1}","socket_id":"1.2"})
        );
        let without = Publication { exclude: None, ..publication };
        assert!(!event_body(&without).contains("socket_id"));
    }
}
