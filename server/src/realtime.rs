//! Wiring real time: the credentials, which [`Broadcaster`] publishes (the embedded Pusher server
//! or an external one over HTTP), and the channel authorization endpoint `POST /broadcasting/auth`.

use std::sync::Arc;

use app::error::AppError;
use app::realtime::{EventChannels, RealtimeConfig};
use app::ssr::AppState;
use app::ssr::broadcast::{Broadcaster, Encrypting, Publication};
use app::ssr::realtime::{RealtimeSettings, generated_credentials, generated_master_key};
use app::ssr::sessions::SessionToken;
use axum::extract::rejection::FormRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use pusher_protocol::Credentials;
use pusher_protocol::encryption::MasterKey;
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use crate::StartupError;
use crate::config::{Config, Encryption, PusherConfig};
use crate::publisher::HttpBroadcaster;
use crate::pusher::{BindError, ClientAddress, ClusterSettings, Hub, HubSettings};

/// What start-up builds: the settings every request reads, the broadcaster the server functions
/// publish through, and the embedded hub when this server is its own Pusher server.
pub struct Realtime {
    pub settings: RealtimeSettings,
    pub broadcaster: Arc<dyn Broadcaster>,
    pub hub: Option<Hub>,
    /// Whether the embedded server answers its HTTP API (`/apps/...`).
    pub http_api: bool,
}

impl Realtime {
    /// Reads or generates the credentials and starts the embedded server, or the publisher to an
    /// external one, as `config` says.
    pub async fn start(config: &Config, db: &DatabaseConnection) -> Result<Self, StartupError> {
        let hub_settings = hub_settings(config);
        let key = match &config.encryption {
            Encryption::Off => None,
            Encryption::Key(key) => Some(key.clone()),
            Encryption::Generate => Some(
                generated_master_key(db)
                    .await
                    .map_err(|source| StartupError::Generated { what: "encryption master key", source })?,
            ),
        };
        let realtime = Self::configured(config, db, hub_settings, key).await?;
        if let (Some(hub), Some(url)) = (&realtime.hub, &config.redis_url) {
            hub.join_cluster(ClusterSettings::new(url.as_str()))?;
        }
        Ok(realtime)
    }

    async fn configured(
        config: &Config,
        db: &DatabaseConnection,
        hub_settings: HubSettings,
        key: Option<MasterKey>,
    ) -> Result<Self, StartupError> {
        let Some(pusher) = config.pusher.as_ref() else {
            let (app_id, key_id, secret) = generated_credentials(db)
                .await
                .map_err(|source| StartupError::Generated { what: "Pusher credentials", source })?;
            // Nobody outside knows generated credentials: nothing needs the HTTP API.
            let http_api = config.pusher_http_api.unwrap_or(false);
            let credentials = Credentials::new(key_id, secret);
            return Ok(Self::embedded(app_id, credentials, hub_settings, http_api).encrypted(key));
        };
        let config_http_api = config.pusher_http_api;
        let config = pusher;
        let tls = config.tls();
        let base_url = match (&config.host, &config.cluster) {
            (None, None) => {
                let credentials = Credentials::new(config.key.clone(), config.secret.clone());
                // Configured credentials: a backend elsewhere (Laravel, a script) may publish.
                let http_api = config_http_api.unwrap_or(true);
                return Ok(Self::embedded(config.app_id.clone(), credentials, hub_settings, http_api).encrypted(key));
            }
            (Some(host), _) => {
                let port = config.port.unwrap_or(if tls { 443 } else { 80 });
                format!("{}://{host}:{port}", if tls { "https" } else { "http" })
            }
            (None, Some(cluster)) => format!("https://api-{cluster}.pusher.com"),
        };
        Ok(Self::external(config, base_url).encrypted(key))
    }

    /// With a master key, the user and room channels become `private-encrypted-…` and every event
    /// is sealed before it reaches the Pusher server (embedded or external).
    fn encrypted(mut self, key: Option<MasterKey>) -> Self {
        if let Some(key) = key {
            self.broadcaster = Arc::new(Encrypting::new(self.broadcaster, key.clone()));
            self.settings.public.channels = EventChannels::Encrypted;
            self.settings.encryption = Some(key);
        }
        self
    }

    /// This server speaks the Pusher protocol itself, on its own port.
    pub fn embedded(app_id: String, credentials: Credentials, settings: HubSettings, http_api: bool) -> Self {
        let hub = Hub::new(app_id.clone(), credentials.clone(), settings);
        let public = RealtimeConfig {
            key: credentials.key().to_owned(),
            host: None,
            port: None,
            tls: false,
            cluster: None,
            channels: EventChannels::Private,
        };
        Self {
            settings: RealtimeSettings { app_id, credentials, public, encryption: None },
            broadcaster: Arc::new(Embedded(hub.clone())),
            hub: Some(hub),
            http_api,
        }
    }

    /// The embedded server's routes (its WebSocket, and its HTTP API when enabled), if there is one.
    pub fn routes(&self) -> Option<axum::Router> {
        self.hub.as_ref().map(|hub| hub.router(self.http_api))
    }

    /// Events go to an external Pusher-compatible server over its HTTP API.
    fn external(config: &PusherConfig, base_url: String) -> Self {
        let credentials = Credentials::new(config.key.clone(), config.secret.clone());
        let public = RealtimeConfig {
            key: config.key.clone(),
            host: config.host.clone(),
            port: config.port,
            tls: config.tls(),
            cluster: config.cluster.clone(),
            channels: EventChannels::Private,
        };
        let broadcaster = HttpBroadcaster::spawn(base_url, config.app_id.clone(), credentials.clone());
        Self {
            settings: RealtimeSettings { app_id: config.app_id.clone(), credentials, public, encryption: None },
            broadcaster: Arc::new(broadcaster),
            hub: None,
            http_api: false,
        }
    }
}

/// The embedded server as the app's [`Broadcaster`]: in process, no HTTP, no signing.
pub struct Embedded(pub Hub);

impl Broadcaster for Embedded {
    fn publish(&self, publication: Publication) {
        let Publication { channels, event, data, exclude } = publication;
        self.0.publish(&channels, event, &data, exclude.as_ref());
    }

    fn session_ended(&self, session: &str) {
        self.0.end_session(session);
    }

    fn unsubscribe_user(&self, user_id: i64, channels: &[pusher_protocol::ChannelName]) {
        self.0.unsubscribe_user(user_id, channels);
    }
}

/// The embedded server's settings: Pusher's defaults, with the configured caps.
fn hub_settings(config: &Config) -> HubSettings {
    let limits = &config.sockets;
    HubSettings {
        public_channels: limits.public_channels,
        max_channels_per_connection: limits.channels_per_connection,
        max_connections_per_address: limits.connections_per_address,
        max_connections_per_user: limits.connections_per_user,
        frames_per_second: limits.frames_per_second,
        addresses: {
            let policy = config.security.clone();
            ClientAddress::new(move |peer, headers| policy.client_address(peer, headers))
        },
        ..HubSettings::default()
    }
}

#[derive(Deserialize)]
pub struct AuthRequest {
    socket_id: String,
    channel_name: String,
}

/// `POST /broadcasting/auth`: signs a subscription for the signed-in user when our channel rules
/// allow it. 401 signed out, 403 not yours (and nothing else said), 400 malformed input.
pub async fn broadcasting_auth(
    state: AppState,
    hub: Option<Hub>,
    headers: HeaderMap,
    form: Result<Form<AuthRequest>, FormRejection>,
) -> Response {
    match authorize(&state, hub.as_ref(), &headers, form).await {
        Ok(auth) => Json(auth).into_response(),
        Err(error) => error.into_response(),
    }
}

/// With the embedded server, the connection is bound to the user and session that signed for it,
/// so that ending the session closes it, and so that each user holds a bounded number of them.
async fn authorize(
    state: &AppState,
    hub: Option<&Hub>,
    headers: &HeaderMap,
    form: Result<Form<AuthRequest>, FormRejection>,
) -> Result<pusher_protocol::ChannelAuthorization, AppError> {
    let token = SessionToken::from_headers(headers).ok_or(AppError::Unauthorized)?;
    let user = state.sessions.user_for(&state.db, &token).await?.ok_or(AppError::Unauthorized)?;
    let Form(request) = form.map_err(|_| AppError::Invalid {
        field: None,
        message: "send socket_id and channel_name as a form".to_owned(),
    })?;
    let auth =
        state.realtime.authorize(&state.db, user.id, &user.name, &request.socket_id, &request.channel_name).await?;
    if let Some(hub) = hub
        && let Ok(socket_id) = pusher_protocol::SocketId::parse(&request.socket_id)
    {
        hub.bind(&socket_id, user.id, &token.id()).map_err(|refusal| match refusal {
            BindError::OtherUser => AppError::Forbidden { message: refusal.to_string() },
            BindError::TooManyForUser { .. } => {
                AppError::RateLimited { message: refusal.to_string(), retry_after_secs: 5 }
            }
        })?;
    }
    Ok(auth)
}
