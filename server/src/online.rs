//! Online status wiring (the rules are `app::ssr::online`'s): the embedded Pusher server reports
//! its user channels becoming occupied or vacated in the whole cluster, and the records are brought
//! in line with it every [`RECONCILE_EVERY`] (after a restart, a crash or a Redis outage, whatever
//! was not reported); an external Pusher-compatible server reports them by webhook at
//! `POST /pusher/webhooks` (its `channel_occupied` and `channel_vacated` events, signed with the
//! app's secret).

use std::collections::HashSet;
use std::time::Duration;

use app::error::AppError;
use app::ssr::AppState;
use app::ssr::online::{OnlineStatus, all_online, channel_user, stamp};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use pusher_protocol::Credentials;
use pusher_protocol::webhooks::{KEY_HEADER, SIGNATURE_HEADER, WebhookError};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

use crate::pusher::{Hub, Occupancy};

/// How often the records are compared with the embedded server's occupied user channels.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// The user channels' prefixes, plain and encrypted.
const USER_CHANNELS: [&str; 2] = ["private-user.", "private-encrypted-user."];

/// Starts recording who is online. With the embedded server (`hub`), its occupancy changes are
/// followed and the records reconciled with it; without one, only webhooks tell.
pub fn start(state: &AppState, hub: Option<&Hub>) -> OnlineStatus {
    let status = OnlineStatus::start(state.db.clone(), state.broadcaster.clone());
    if let Some(hub) = hub
        && let Some(changes) = hub.occupancy()
    {
        tokio::spawn(follow(changes, status.clone()));
        tokio::spawn(reconcile_every(hub.clone(), state.db.clone(), status.clone(), RECONCILE_EVERY));
    }
    status
}

async fn follow(mut changes: mpsc::UnboundedReceiver<Occupancy>, status: OnlineStatus) {
    while let Some(change) = changes.recv().await {
        match change {
            Occupancy::Occupied(channel) => status.occupied(channel.as_str(), stamp()),
            Occupancy::Vacated(channel) => status.vacated(channel.as_str(), stamp()),
        }
    }
}

async fn reconcile_every(hub: Hub, db: DatabaseConnection, status: OnlineStatus, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reconcile(&hub, &db, &status).await {
            Some(0) | None => {}
            Some(changed) => {
                tracing::info!(people = changed, "online status: records brought in line with the sockets")
            }
        }
    }
}

/// Compares the records with the occupied user channels of the whole cluster once; how many
/// people differed, or `None` when either side could not be read.
pub async fn reconcile(hub: &Hub, db: &DatabaseConnection, status: &OnlineStatus) -> Option<usize> {
    // The records first: someone who comes online in between is then seen occupied (and recorded
    // twice, harmlessly) rather than recorded and not seen (and taken offline).
    let recorded = all_online(db)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "online status: cannot read the records"))
        .ok()?;
    let mut occupied = HashSet::new();
    for prefix in USER_CHANNELS {
        let channels = hub.occupied_everywhere(prefix).await?;
        occupied.extend(channels.iter().filter_map(|channel| channel_user(channel.as_str())));
    }
    Some(status.reconcile(&recorded, &occupied))
}

/// `POST /pusher/webhooks`: an external Pusher-compatible server's `channel_occupied` and
/// `channel_vacated` events, checked against the app's key and secret. 200 when accepted (other
/// events are acknowledged and ignored); 403 unsigned or signed otherwise; 400 not a webhook.
pub async fn webhook(status: OnlineStatus, credentials: Credentials, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let webhook = match credentials.verify_webhook(header(KEY_HEADER), header(SIGNATURE_HEADER), &body) {
        Ok(webhook) => webhook,
        Err(error @ (WebhookError::UnknownKey | WebhookError::InvalidSignature)) => {
            tracing::warn!(%error, "online status: webhook refused");
            return AppError::Forbidden { message: error.to_string() }.into_response();
        }
        Err(error @ WebhookError::Malformed) => {
            return AppError::Invalid { field: None, message: error.to_string() }.into_response();
        }
    };
    // Events of one webhook happened in the order listed, at its time.
    let base = webhook.time_ms.saturating_mul(1_000);
    for (offset, event) in (0_i64..).zip(&webhook.events) {
        let Some(channel) = event.channel.as_deref() else { continue };
        match event.name.as_str() {
            "channel_occupied" => status.occupied(channel, base.saturating_add(offset)),
            "channel_vacated" => status.vacated(channel, base.saturating_add(offset)),
            _ => {}
        }
    }
    axum::Json(serde_json::json!({})).into_response()
}
