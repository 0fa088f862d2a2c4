//! [`StartupError`]: everything that keeps the server from starting once its configuration is read
//! (`config::ConfigError` says what is wrong with the variables), each naming the setting to look
//! at. Requests never see it: once serving, errors are `app::error::AppError`s.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::pusher::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL: cannot create {}: {source}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("DATABASE_URL: cannot open the database: {0}")]
    Database(sea_orm::DbErr),
    #[error("DATABASE_URL: migrations failed: {0}")]
    Migrations(sea_orm::DbErr),
    #[error("LEPTOS_SITE_ADDR: cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The attachment store (local folder or S3) could not be opened.
    #[error("attachments: {0}")]
    Storage(String),
    /// Generated credentials or the encryption master key could not be read or stored.
    #[error("realtime: cannot read or store the generated {what}: {source}")]
    Generated { what: &'static str, source: sea_orm::DbErr },
}
