//! Start-up configuration from the environment (and an optional `.env`). Any invalid value stops
//! start-up with one line naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;

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

        Ok(Self { site_addr, database_url, data_dir, pusher: pusher_from(&get)? })
    }
}

fn pusher_from(get: &impl Fn(&str) -> Option<String>) -> Result<Option<PusherConfig>, ConfigError> {
    let app_id = get("PUSHER_APP_ID");
    let key = get("PUSHER_APP_KEY");
    let secret = get("PUSHER_APP_SECRET");
    let (app_id, key, secret) = match (app_id, key, secret) {
        (None, None, None) => {
            for var in ["PUSHER_HOST", "PUSHER_PORT", "PUSHER_SCHEME", "PUSHER_APP_CLUSTER"] {
                if get(var).is_some() {
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
    let port = match get("PUSHER_PORT") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("PUSHER_PORT", format!("{v:?} is not a port number (1-65535)")))?,
        ),
    };
    let scheme = match get("PUSHER_SCHEME") {
        None => None,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            s @ ("http" | "https") => Some(s.to_owned()),
            _ => return Err(invalid("PUSHER_SCHEME", format!("{v:?} must be http or https"))),
        },
    };
    Ok(Some(PusherConfig {
        app_id,
        key,
        secret,
        host: get("PUSHER_HOST"),
        port,
        scheme,
        cluster: get("PUSHER_APP_CLUSTER"),
    }))
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
    fn error_is_one_line_naming_the_variable() {
        let err = config(&[("LEPTOS_SITE_ADDR", "nope")]).unwrap_err();
        assert_eq!(err.to_string(), "LEPTOS_SITE_ADDR: \"nope\" is not an address like 127.0.0.1:3000");
    }
}
