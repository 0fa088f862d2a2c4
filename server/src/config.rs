//! Start-up configuration from the environment (and an optional `.env`). Any invalid value stops
//! start-up with one line naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use app::ssr::security::{CookieSecure, IpBlock, Limit, Limits, SecurityPolicy};
use app::ssr::storage::S3Settings;
use pusher_protocol::encryption::MasterKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn invalid(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { var, problem: problem.into() }
}

/// Where the database lives when `DATABASE_URL` is unset.
pub const DEFAULT_SQLITE_FILE: &str = "data/banter.sqlite";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub site_addr: SocketAddr,
    pub database_url: String,
    /// The folder to create before opening the default SQLite file.
    pub data_dir: Option<PathBuf>,
    pub pusher: Option<PusherConfig>,
    /// End-to-end encryption of the user and room channels.
    pub encryption: Encryption,
    /// Proxies, cookie, origins and request rate limits.
    pub security: SecurityPolicy,
    /// What the embedded Pusher server allows each connection, address and user.
    pub sockets: SocketLimits,
    /// Whether the embedded Pusher server answers its HTTP API (`/apps/...`); `None`: when the
    /// credentials were configured (something outside may publish with them), not when generated.
    pub pusher_http_api: Option<bool>,
    pub http: HttpLimits,
    /// Where attachments are kept.
    pub storage: StorageConfig,
    /// `REDIS_URL`: the Redis that several instances share (cluster mode of the embedded Pusher
    /// server); unset, one process is all there is.
    pub redis_url: Option<RedisUrl>,
    /// Who may read `/metrics`: `METRICS_TOKEN`, `METRICS_ALLOW`.
    pub metrics: crate::telemetry::MetricsAccess,
}

/// A `redis://` URL; it may carry a password, so it is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let url = url.trim();
        if !url.starts_with("redis://") {
            return Err(invalid("REDIS_URL", "must start with redis:// (like redis://127.0.0.1:6379/0)"));
        }
        redis::Client::open(url).map_err(|e| invalid("REDIS_URL", format!("is not a Redis URL: {e}")))?;
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl(<redacted>)")
    }
}

/// Where attachments are kept: a folder (`UPLOADS_DIR`, `data/uploads` by default) or an
/// S3-compatible bucket (`S3_BUCKET` and the other `S3_*` variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Local(PathBuf),
    S3(S3Settings),
}

/// The embedded Pusher server's caps (0 means no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    pub public_channels: bool,
    pub channels_per_connection: usize,
    pub connections_per_address: usize,
    pub connections_per_user: usize,
    pub frames_per_second: u32,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self {
            public_channels: false,
            channels_per_connection: 100,
            connections_per_address: 100,
            connections_per_user: 20,
            frames_per_second: 20,
        }
    }
}

/// What the HTTP server holds open at once, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open TCP connections (HTTP and WebSocket); past it, new ones wait in the kernel's queue.
    pub max_connections: usize,
    /// Requests being answered at once; past it, requests wait their turn (within the timeout).
    pub max_requests_in_flight: usize,
    /// How long a client may take to send a request's headers (slow-client protection).
    pub header_read_timeout: Duration,
    /// How long a request may take from its headers to its response, including waiting its turn.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 25_000,
            max_requests_in_flight: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// End-to-end encrypted channels (`private-encrypted-…`) for every event the server publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    Off,
    /// `PUSHER_ENCRYPTION_MASTER_KEY_BASE64`.
    Key(MasterKey),
    /// `PUSHER_APP_ENCRYPTED=true` without a key: one is generated at first start and kept in the
    /// database, like generated credentials.
    Generate,
}

/// Pusher settings (the names a Laravel `.env` uses). Unset: the embedded server with generated
/// credentials. App id, key and secret alone: the embedded server with those credentials. With
/// `PUSHER_HOST` or `PUSHER_APP_CLUSTER` too: an external Pusher-compatible service. Parsed now so
/// that a typo fails at start-up, not at the first message.
#[derive(Clone, PartialEq, Eq)]
pub struct PusherConfig {
    pub app_id: String,
    pub key: String,
    pub secret: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub scheme: Option<String>,
    pub cluster: Option<String>,
}

impl std::fmt::Debug for PusherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherConfig")
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("scheme", &self.scheme)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl PusherConfig {
    /// True when events go to another server (Pusher, sockudo, soketi, Reverb, another Banter).
    pub fn is_external(&self) -> bool {
        self.host.is_some() || self.cluster.is_some()
    }

    /// Whether the external server is reached over TLS: `PUSHER_SCHEME`, else https for Pusher's
    /// hosted clusters and http for a host of your own.
    pub fn tls(&self) -> bool {
        match self.scheme.as_deref() {
            Some(scheme) => scheme == "https",
            None => self.host.is_none(),
        }
    }
}

impl Config {
    /// From the process environment; an empty value (`PUSHER_APP_HOST=`) counts as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let site_addr = match get("LEPTOS_SITE_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| invalid("LEPTOS_SITE_ADDR", format!("{v:?} is not an address like 127.0.0.1:3000")))?,
        };

        let (database_url, data_dir) = match get("DATABASE_URL") {
            None => (format!("sqlite://{DEFAULT_SQLITE_FILE}?mode=rwc"), Some(PathBuf::from("data"))),
            Some(url) => {
                let url = url.trim().to_owned();
                if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(invalid("DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
                }
                (url, None)
            }
        };

        Ok(Self {
            site_addr,
            database_url,
            data_dir,
            pusher: pusher_from(&get)?,
            encryption: encryption_from(&get)?,
            security: security_from(&get)?,
            sockets: sockets_from(&get)?,
            pusher_http_api: get("PUSHER_HTTP_API").map(|v| boolean("PUSHER_HTTP_API", &v)).transpose()?,
            http: http_from(&get)?,
            storage: storage_from(&get)?,
            redis_url: get("REDIS_URL").map(|url| RedisUrl::parse(&url)).transpose()?,
            metrics: metrics_from(&get)?,
        })
    }
}

/// `S3_BUCKET` chooses S3; `S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) a non-AWS server, which is then
/// addressed path-style unless `S3_PATH_STYLE=false`; `S3_REGION` (or `AWS_REGION`,
/// `AWS_DEFAULT_REGION`); keys from `S3_ACCESS_KEY_ID`/`S3_SECRET_ACCESS_KEY` or the usual `AWS_*`.
fn storage_from(get: &impl Fn(&str) -> Option<String>) -> Result<StorageConfig, ConfigError> {
    let Some(bucket) = get("S3_BUCKET") else {
        return Ok(StorageConfig::Local(PathBuf::from(
            get("UPLOADS_DIR").unwrap_or_else(|| "data/uploads".to_owned()),
        )));
    };
    let endpoint = get("S3_ENDPOINT").or_else(|| get("AWS_ENDPOINT_URL"));
    if let Some(url) = &endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(invalid("S3_ENDPOINT", format!("{url:?} must start with http:// or https://")));
    }
    let path_style = match get("S3_PATH_STYLE") {
        Some(v) => boolean("S3_PATH_STYLE", &v)?,
        None => endpoint.is_some(),
    };
    Ok(StorageConfig::S3(S3Settings {
        bucket: bucket.trim().to_owned(),
        region: get("S3_REGION").or_else(|| get("AWS_REGION")).or_else(|| get("AWS_DEFAULT_REGION")),
        access_key_id: get("S3_ACCESS_KEY_ID"),
        secret_access_key: get("S3_SECRET_ACCESS_KEY"),
        endpoint,
        path_style,
    }))
}

fn boolean(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(var, format!("{value:?} must be true or false"))),
    }
}

fn count<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| invalid(var, format!("{v:?} is not a whole number (0 or more)"))),
    }
}

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(invalid(var, format!("{v:?} is not a number of seconds (1 or more)"))),
        },
    }
}

/// `N/WINDOW`: at most N events per WINDOW, a number with `s`, `m` or `h` (`5/15m`); `0` turns
/// the limit off.
fn limit(get: &impl Fn(&str) -> Option<String>, var: &'static str, default: Limit) -> Result<Limit, ConfigError> {
    let Some(v) = get(var) else { return Ok(default) };
    let wrong =
        || invalid(var, format!("{v:?} must look like 5/15m (events per window: s, m or h), or 0 for no limit"));
    let text = v.trim();
    if text == "0" {
        return Ok(Limit { max: 0, window: default.window });
    }
    let (max, window) = text.split_once('/').ok_or_else(wrong)?;
    let max: usize = max.trim().parse().map_err(|_| wrong())?;
    let window = window.trim();
    let (number, unit) = window.split_at(window.len().saturating_sub(1));
    let number: u64 = number.parse().map_err(|_| wrong())?;
    let secs = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(wrong()),
    };
    if secs == 0 {
        return Err(wrong());
    }
    Ok(Limit { max, window: Duration::from_secs(secs) })
}

fn metrics_from(get: &impl Fn(&str) -> Option<String>) -> Result<crate::telemetry::MetricsAccess, ConfigError> {
    let token = get("METRICS_TOKEN").map(|t| t.trim().to_owned());
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(invalid("METRICS_TOKEN", "must be at least 16 characters (for example `openssl rand -hex 24`)"));
    }
    Ok(crate::telemetry::MetricsAccess { token, allow: ip_blocks(get, "METRICS_ALLOW")? })
}

/// A comma-separated list of addresses and CIDR blocks.
fn ip_blocks(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<Vec<IpBlock>, ConfigError> {
    match get(var) {
        None => Ok(Vec::new()),
        Some(v) => v
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                IpBlock::parse(part)
                    .ok_or_else(|| invalid(var, format!("{:?} is not an address or CIDR block", part.trim())))
            })
            .collect(),
    }
}

fn security_from(get: &impl Fn(&str) -> Option<String>) -> Result<SecurityPolicy, ConfigError> {
    let trusted_proxies = ip_blocks(get, "TRUSTED_PROXIES")?;
    let cookie_secure = match get("COOKIE_SECURE").map(|v| v.trim().to_ascii_lowercase()) {
        None => CookieSecure::Auto,
        Some(v) if v == "auto" => CookieSecure::Auto,
        Some(v) => match boolean("COOKIE_SECURE", &v) {
            Ok(true) => CookieSecure::Always,
            Ok(false) => CookieSecure::Never,
            Err(_) => return Err(invalid("COOKIE_SECURE", format!("{v:?} must be auto, true or false"))),
        },
    };
    let allowed_origins = match get("ALLOWED_ORIGINS") {
        None => Vec::new(),
        Some(v) => v.split(',').filter(|part| !part.trim().is_empty()).map(origin).collect::<Result<_, _>>()?,
    };
    let defaults = Limits::default();
    let limits = Limits {
        sign_ins_per_account: limit(get, "LIMIT_SIGN_INS_PER_ACCOUNT", defaults.sign_ins_per_account)?,
        sign_ins_per_address: limit(get, "LIMIT_SIGN_INS_PER_ADDRESS", defaults.sign_ins_per_address)?,
        sign_ups_per_address: limit(get, "LIMIT_SIGN_UPS_PER_ADDRESS", defaults.sign_ups_per_address)?,
        sends_per_user: limit(get, "LIMIT_SENDS_PER_USER", defaults.sends_per_user)?,
    };
    Ok(SecurityPolicy { trusted_proxies, cookie_secure, allowed_origins, limits })
}

/// An origin as browsers send it: `scheme://host[:port]`, lower-case, no path.
fn origin(text: &str) -> Result<String, ConfigError> {
    let origin = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let valid = match origin.split_once("://") {
        Some(("http" | "https", host)) => !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']),
        _ => false,
    };
    if valid {
        Ok(origin)
    } else {
        Err(invalid("ALLOWED_ORIGINS", format!("{:?} is not an origin like https://chat.example.com", text.trim())))
    }
}

fn sockets_from(get: &impl Fn(&str) -> Option<String>) -> Result<SocketLimits, ConfigError> {
    let d = SocketLimits::default();
    Ok(SocketLimits {
        public_channels: get("PUSHER_PUBLIC_CHANNELS")
            .map(|v| boolean("PUSHER_PUBLIC_CHANNELS", &v))
            .transpose()?
            .unwrap_or(false),
        channels_per_connection: count(get, "PUSHER_MAX_CHANNELS_PER_CONNECTION", d.channels_per_connection)?,
        connections_per_address: count(get, "PUSHER_MAX_CONNECTIONS_PER_ADDRESS", d.connections_per_address)?,
        connections_per_user: count(get, "PUSHER_MAX_CONNECTIONS_PER_USER", d.connections_per_user)?,
        frames_per_second: count(get, "PUSHER_MAX_FRAMES_PER_SECOND", d.frames_per_second)?,
    })
}

fn http_from(get: &impl Fn(&str) -> Option<String>) -> Result<HttpLimits, ConfigError> {
    let d = HttpLimits::default();
    let positive = |var: &'static str, default: usize| -> Result<usize, ConfigError> {
        match count(get, var, default)? {
            0 => Err(invalid(var, "must be 1 or more")),
            n => Ok(n),
        }
    };
    Ok(HttpLimits {
        max_connections: positive("MAX_CONNECTIONS", d.max_connections)?,
        max_requests_in_flight: positive("MAX_REQUESTS_IN_FLIGHT", d.max_requests_in_flight)?,
        header_read_timeout: seconds(get, "HEADER_READ_TIMEOUT_SECS", d.header_read_timeout)?,
        request_timeout: seconds(get, "REQUEST_TIMEOUT_SECS", d.request_timeout)?,
    })
}

/// `name`, or the seed's spelling `alias` of it (`PUSHER_APP_HOST` for `PUSHER_HOST`); both set to
/// different values stops start-up with one line naming both.
fn aliased(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    alias: &'static str,
) -> Result<Option<String>, ConfigError> {
    match (get(name), get(alias)) {
        (Some(a), Some(b)) if a.trim() != b.trim() => {
            Err(invalid(name, format!("{alias} is set too, to a different value; keep one of the two")))
        }
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}

fn encryption_from(get: &impl Fn(&str) -> Option<String>) -> Result<Encryption, ConfigError> {
    const KEY: &str = "PUSHER_ENCRYPTION_MASTER_KEY_BASE64";
    // The key's value never goes into an error: it is a secret.
    let key = get(KEY)
        .map(|text| {
            MasterKey::from_base64(&text)
                .map_err(|e| invalid(KEY, format!("{e} (generate one with: openssl rand -base64 32)")))
        })
        .transpose()?;
    let wanted = get("PUSHER_APP_ENCRYPTED").map(|v| boolean("PUSHER_APP_ENCRYPTED", &v)).transpose()?;
    match (key, wanted) {
        (Some(_), Some(false)) => {
            Err(invalid("PUSHER_APP_ENCRYPTED", format!("is false, but {KEY} is set; unset one")))
        }
        (Some(key), _) => Ok(Encryption::Key(key)),
        (None, Some(true)) => Ok(Encryption::Generate),
        (None, _) => Ok(Encryption::Off),
    }
}

fn pusher_from(get: &impl Fn(&str) -> Option<String>) -> Result<Option<PusherConfig>, ConfigError> {
    let host = aliased(get, "PUSHER_HOST", "PUSHER_APP_HOST")?;
    let port_text = aliased(get, "PUSHER_PORT", "PUSHER_APP_PORT")?;
    let scheme_text = aliased(get, "PUSHER_SCHEME", "PUSHER_APP_SCHEME")?;
    let cluster = get("PUSHER_APP_CLUSTER");
    let app_id = get("PUSHER_APP_ID");
    let key = get("PUSHER_APP_KEY");
    let secret = get("PUSHER_APP_SECRET");
    let (app_id, key, secret) = match (app_id, key, secret) {
        (None, None, None) => {
            let given = [("PUSHER_HOST", &host), ("PUSHER_PORT", &port_text), ("PUSHER_SCHEME", &scheme_text)]
                .into_iter()
                .chain([("PUSHER_APP_CLUSTER", &cluster)]);
            for (var, value) in given {
                if value.is_some() {
                    return Err(invalid(var, "needs PUSHER_APP_ID, PUSHER_APP_KEY and PUSHER_APP_SECRET as well"));
                }
            }
            return Ok(None);
        }
        (Some(a), Some(k), Some(s)) => (a, k, s),
        (None, _, _) => {
            return Err(invalid("PUSHER_APP_ID", "must be set together with PUSHER_APP_KEY and PUSHER_APP_SECRET"));
        }
        (_, None, _) => {
            return Err(invalid("PUSHER_APP_KEY", "must be set together with PUSHER_APP_ID and PUSHER_APP_SECRET"));
        }
        (_, _, None) => {
            return Err(invalid("PUSHER_APP_SECRET", "must be set together with PUSHER_APP_ID and PUSHER_APP_KEY"));
        }
    };
    let port = match port_text {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("PUSHER_PORT", format!("{v:?} is not a port number (1-65535)")))?,
        ),
    };
    let scheme = match scheme_text {
        None => None,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            s @ ("http" | "https") => Some(s.to_owned()),
            _ => return Err(invalid("PUSHER_SCHEME", format!("{v:?} must be http or https"))),
        },
    };
    Ok(Some(PusherConfig { app_id, key, secret, host, port, scheme, cluster }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_local_sqlite_and_the_embedded_pusher_server() {
        let c = config(&[]).unwrap();
        assert_eq!(c.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database_url, "sqlite://data/banter.sqlite?mode=rwc");
        assert_eq!(c.data_dir, Some(PathBuf::from("data")));
        assert_eq!(c.pusher, None);
    }

    #[test]
    fn invalid_values_name_their_variable() {
        assert_eq!(config(&[("LEPTOS_SITE_ADDR", "localhost")]).unwrap_err().var, "LEPTOS_SITE_ADDR");
        assert_eq!(config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().var, "DATABASE_URL");
        assert_eq!(config(&[("PUSHER_APP_ID", "1")]).unwrap_err().var, "PUSHER_APP_KEY");
        let full = [("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", "s")];
        let with = |extra: (&'static str, &'static str)| {
            let mut vars = full.to_vec();
            vars.push(extra);
            config(&vars)
        };
        assert_eq!(with(("PUSHER_PORT", "70000")).unwrap_err().var, "PUSHER_PORT");
        assert_eq!(with(("PUSHER_SCHEME", "ftp")).unwrap_err().var, "PUSHER_SCHEME");
        let ok = with(("PUSHER_PORT", "6001")).unwrap().pusher.unwrap();
        assert_eq!(ok.port, Some(6001));
        assert!(!ok.is_external(), "credentials alone configure the embedded server");
        assert!(with(("PUSHER_HOST", "127.0.0.1")).unwrap().pusher.unwrap().is_external());
        let hosted = with(("PUSHER_APP_CLUSTER", "eu")).unwrap().pusher.unwrap();
        assert!(hosted.is_external() && hosted.tls());
        assert_eq!(config(&[("PUSHER_HOST", "x")]).unwrap_err().var, "PUSHER_HOST");
        assert!(!format!("{ok:?}").contains("\"s\""), "the secret never reaches Debug output");
    }

    #[test]
    fn metrics_access_parses_and_its_token_stays_secret() {
        assert!(!config(&[]).unwrap().metrics.enabled(), "unset: /metrics is not mounted");
        let c = config(&[("METRICS_ALLOW", "10.0.0.0/8, ::1"), ("METRICS_TOKEN", "0123456789abcdef0123")]).unwrap();
        assert_eq!(c.metrics.allow.len(), 2);
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
        assert_eq!(config(&[("METRICS_TOKEN", "short")]).unwrap_err().var, "METRICS_TOKEN");
        assert_eq!(config(&[("METRICS_ALLOW", "everyone")]).unwrap_err().var, "METRICS_ALLOW");
    }

    #[test]
    fn redis_url_turns_on_the_cluster_and_its_password_stays_secret() {
        assert_eq!(config(&[]).unwrap().redis_url, None, "unset: one process, nothing to install");
        let c = config(&[("REDIS_URL", "redis://:hunter2@10.0.0.5:6379/2")]).unwrap();
        assert_eq!(c.redis_url.as_ref().map(RedisUrl::as_str), Some("redis://:hunter2@10.0.0.5:6379/2"));
        assert!(!format!("{c:?}").contains("hunter2"), "the password never reaches Debug output");
        let refused = config(&[("REDIS_URL", "http://10.0.0.5:6379")]).unwrap_err();
        assert_eq!(refused.var, "REDIS_URL");
        assert!(refused.problem.contains("redis://"), "{}", refused.problem);
        assert_eq!(config(&[("REDIS_URL", "redis://[::1")]).unwrap_err().var, "REDIS_URL");
    }

    #[test]
    fn hardening_settings_parse_and_name_their_variable() {
        let c = config(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("COOKIE_SECURE", "true"),
            ("ALLOWED_ORIGINS", "https://Chat.Example.com/"),
            ("LIMIT_SIGN_UPS_PER_ADDRESS", "3/1h"),
            ("LIMIT_SENDS_PER_USER", "0"),
            ("PUSHER_MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ("PUSHER_PUBLIC_CHANNELS", "yes"),
            ("HEADER_READ_TIMEOUT_SECS", "2"),
        ])
        .unwrap();
        assert_eq!(c.security.trusted_proxies.len(), 2);
        assert_eq!(c.security.cookie_secure, CookieSecure::Always);
        assert_eq!(c.security.allowed_origins, ["https://chat.example.com"]);
        assert_eq!(c.security.limits.sign_ups_per_address, Limit::new(3, 3600));
        assert_eq!(c.security.limits.sends_per_user.max, 0);
        assert_eq!(c.security.limits.sign_ins_per_account, Limit::new(5, 900), "defaults stay");
        assert_eq!(c.sockets.connections_per_address, 0);
        assert!(c.sockets.public_channels);
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(2));

        let defaults = config(&[]).unwrap();
        assert!(!defaults.sockets.public_channels, "public channels are off unless configured");
        assert_eq!(defaults.sockets.channels_per_connection, 100);
        assert_eq!(defaults.pusher_http_api, None);

        for (var, value) in [
            ("TRUSTED_PROXIES", "proxy.local"),
            ("COOKIE_SECURE", "sometimes"),
            ("ALLOWED_ORIGINS", "chat.example.com"),
            ("LIMIT_SIGN_INS_PER_ACCOUNT", "5 per minute"),
            ("LIMIT_SIGN_INS_PER_ADDRESS", "5/0s"),
            ("PUSHER_MAX_CHANNELS_PER_CONNECTION", "-1"),
            ("PUSHER_HTTP_API", "maybe"),
            ("MAX_CONNECTIONS", "0"),
            ("REQUEST_TIMEOUT_SECS", "0"),
        ] {
            assert_eq!(config(&[(var, value)]).unwrap_err().var, var, "{var}={value}");
        }
    }

    /// The Pusher block of the seed's Laravel `.env`, verbatim.
    const SEED_ENV: &str = "\
PUSHER_APP_ID=your_app_id
PUSHER_APP_KEY=your_app_key
PUSHER_APP_SECRET=your_app_secret
PUSHER_APP_CLUSTER=mt1
PUSHER_APP_HOST=
PUSHER_APP_PORT=443
PUSHER_APP_SCHEME=https
PUSHER_APP_ENCRYPTED=true
";

    /// Reads a `.env` text as the server does (dotenvy's parser; empty values are unset).
    fn from_dotenv(text: &str) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = dotenvy::from_read_iter(text.as_bytes()).map(|item| item.unwrap()).collect();
        Config::from_lookup(|name| map.get(name).cloned().filter(|v| !v.trim().is_empty()))
    }

    #[test]
    fn the_seed_env_configures_hosted_pusher_with_encrypted_channels() {
        let c = from_dotenv(SEED_ENV).unwrap();
        let pusher = c.pusher.expect("pusher configured");
        assert_eq!((pusher.app_id.as_str(), pusher.key.as_str()), ("your_app_id", "your_app_key"));
        assert_eq!(pusher.secret, "your_app_secret");
        assert_eq!(pusher.cluster.as_deref(), Some("mt1"));
        assert_eq!(pusher.host, None, "an empty PUSHER_APP_HOST= means not set");
        assert_eq!((pusher.port, pusher.scheme.as_deref()), (Some(443), Some("https")));
        assert!(pusher.is_external() && pusher.tls(), "hosted Pusher at the cluster, over https");
        assert_eq!(c.encryption, Encryption::Generate, "encrypted channels on, with a generated key");
    }

    #[test]
    fn seed_spellings_are_aliases_and_must_agree() {
        let full = [("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", "s")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = full.to_vec();
            vars.extend_from_slice(extra);
            config(&vars)
        };
        let p = with(&[("PUSHER_APP_HOST", "ws.local"), ("PUSHER_APP_PORT", "6001"), ("PUSHER_APP_SCHEME", "http")])
            .unwrap()
            .pusher
            .unwrap();
        assert_eq!((p.host.as_deref(), p.port, p.scheme.as_deref()), (Some("ws.local"), Some(6001), Some("http")));
        // Both spellings, same value: fine.
        assert!(with(&[("PUSHER_HOST", "a"), ("PUSHER_APP_HOST", "a")]).is_ok());
        for (name, alias) in [
            ("PUSHER_HOST", "PUSHER_APP_HOST"),
            ("PUSHER_PORT", "PUSHER_APP_PORT"),
            ("PUSHER_SCHEME", "PUSHER_APP_SCHEME"),
        ] {
            let err = with(&[(name, "http"), (alias, "https")]).unwrap_err();
            assert_eq!(err.var, name);
            let line = err.to_string();
            assert!(line.contains(name) && line.contains(alias) && !line.contains('\n'), "{line}");
        }
        // The alias alone, without credentials, is refused like the name.
        assert_eq!(config(&[("PUSHER_APP_HOST", "x")]).unwrap_err().var, "PUSHER_HOST");
    }

    #[test]
    fn encryption_settings() {
        assert_eq!(config(&[]).unwrap().encryption, Encryption::Off);
        assert_eq!(config(&[("PUSHER_APP_ENCRYPTED", "false")]).unwrap().encryption, Encryption::Off);
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let c = config(&[("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", key)]).unwrap();
        assert_eq!(c.encryption, Encryption::Key(MasterKey::from_base64(key).unwrap()));
        assert!(!format!("{c:?}").contains(key), "the key never reaches Debug output");
        let both = config(&[("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", key), ("PUSHER_APP_ENCRYPTED", "true")]);
        assert!(matches!(both.unwrap().encryption, Encryption::Key(_)));
        let short = config(&[("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", "c2hvcnQ=")]).unwrap_err();
        assert_eq!(short.var, "PUSHER_ENCRYPTION_MASTER_KEY_BASE64");
        assert!(!short.to_string().contains("c2hvcnQ="), "the value is not echoed: {short}");
        let contradiction =
            config(&[("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", key), ("PUSHER_APP_ENCRYPTED", "false")]).unwrap_err();
        assert_eq!(contradiction.var, "PUSHER_APP_ENCRYPTED");
        assert_eq!(config(&[("PUSHER_APP_ENCRYPTED", "sure")]).unwrap_err().var, "PUSHER_APP_ENCRYPTED");
    }

    #[test]
    fn error_is_one_line_naming_the_variable() {
        let err = config(&[("LEPTOS_SITE_ADDR", "nope")]).unwrap_err();
        assert_eq!(err.to_string(), "LEPTOS_SITE_ADDR: \"nope\" is not an address like 127.0.0.1:3000");
    }
}
