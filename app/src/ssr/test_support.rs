//! Helpers for the service tests: fresh migrated databases, SQLite always and PostgreSQL when
//! `BANTER_TEST_POSTGRES_URL` points at a reachable server.

use std::future::Future;

use chrono::Utc;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, Set};

use crate::ssr::entities::{messages, users};
use crate::ssr::password::PasswordHash;
use crate::ssr::rate_limit::SlidingWindow;

pub async fn memory_db() -> DatabaseConnection {
    let db = crate::ssr::connect("sqlite::memory:").await.expect("in-memory SQLite");
    Migrator::up(&db, None).await.expect("migrations on SQLite");
    db
}

/// A fresh, empty PostgreSQL schema of its own, so tests running in parallel never meet.
async fn postgres_db(base_url: &str) -> DatabaseConnection {
    let schema = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
    let admin = crate::ssr::connect(base_url).await.expect("PostgreSQL reachable");
    admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.expect("create schema");
    let separator = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
    let db = crate::ssr::connect(&url).await.expect("PostgreSQL with schema");
    Migrator::up(&db, None).await.expect("migrations on PostgreSQL");
    db
}

/// Runs `test` on SQLite, then on PostgreSQL when `BANTER_TEST_POSTGRES_URL` is set.
pub async fn for_each_database<F, Fut>(test: F)
where
    F: Fn(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    test(memory_db().await).await;
    on_postgres(test).await;
}

/// As [`for_each_database`], with SQLite in a file of its own and the server's pool of
/// connections to it (an in-memory database is one connection), removed afterwards.
pub async fn for_each_database_file<F, Fut>(test: F)
where
    F: Fn(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("banter-test-{}", hex::encode(rand::random::<[u8; 8]>())));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let db = crate::ssr::connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.display())).await.expect("SQLite file");
    Migrator::up(&db, None).await.expect("migrations on SQLite");
    test(db.clone()).await;
    db.close().await.expect("close SQLite");
    std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
    on_postgres(test).await;
}

async fn on_postgres<F, Fut>(test: F)
where
    F: Fn(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Ok(url) = std::env::var("BANTER_TEST_POSTGRES_URL") {
        test(postgres_db(&url).await).await;
    }
}

/// Inserts a user directly (no hashing cost); the password hash is a placeholder that never verifies.
pub async fn user(db: &DatabaseConnection, name: &str) -> users::Model {
    let now = Utc::now();
    users::ActiveModel {
        name: Set(name.to_owned()),
        email: Set(format!("{name}@example.com")),
        password_hash: Set(PasswordHash::placeholder()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert user")
}

/// Inserts a one-to-one message directly (no validation, no rate limit) with a fresh client id.
/// Ids grow with every insert, so the order of calls is the order of the conversation.
pub async fn message(db: &DatabaseConnection, from: i64, to: i64, body: &str) -> messages::Model {
    let now = Utc::now();
    let row = messages::ActiveModel {
        body: Set(body.to_owned()),
        user_id: Set(from),
        recipient_id: Set(Some(to)),
        chat_room_id: Set(None),
        client_id: Set(hex::encode(rand::random::<[u8; 16]>())),
        kind: Set("text".into()),
        read_at: Set(None),
        edited_at: Set(None),
        deleted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    crate::ssr::group_commit::insert(db, row).await.expect("insert message")
}

/// A send limiter that never refuses.
pub fn unlimited() -> SlidingWindow {
    SlidingWindow::new(10_000, std::time::Duration::from_secs(10))
}

/// Runs `test` with an attachment store on the local disk (a fresh folder), then on S3 when
/// `BANTER_TEST_S3_ENDPOINT` names an S3-compatible server with a `banter-test` bucket (the
/// test command starts moto and makes the bucket).
pub async fn for_each_storage<F, Fut>(test: F)
where
    F: Fn(crate::ssr::storage::Storage) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("banter-files-{}", hex::encode(rand::random::<[u8; 8]>())));
    test(crate::ssr::storage::Storage::local(&dir).expect("a local store")).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(endpoint) = std::env::var("BANTER_TEST_S3_ENDPOINT") {
        let settings = crate::ssr::storage::S3Settings {
            bucket: "banter-test".into(),
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            path_style: true,
        };
        test(crate::ssr::storage::Storage::s3(&settings).expect("an S3 store")).await;
    } else if std::env::var_os("BANTER_TEST_REQUIRE_S3").is_some() {
        panic!("BANTER_TEST_REQUIRE_S3 is set but BANTER_TEST_S3_ENDPOINT is not");
    }
}
