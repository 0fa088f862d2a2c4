//! Full-text search over the messages people wrote, in each database's own engine, kept in step
//! with every send, edit and deletion by the database itself:
//!
//! - SQLite: a contentless FTS5 index (the text is stored once, in `messages`) of each message's
//!   body and its audience (`u{sender} u{recipient}`, or `g{room}`), so one query matches the
//!   words among the conversations a person can see; tokenized by `unicode61` with diacritics
//!   removed, so case and accents do not matter, with prefix indexes for 2 to 4 characters;
//!   triggers keep it in step.
//! - PostgreSQL: a generated `tsvector` column under a text search configuration that lower-cases
//!   and strips accents (`unaccent`) without stemming, and a GIN index on it.
//!
//! Only `kind = 'text'` rows are indexed: a group's system lines are not something people search.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A message's audience as FTS5 tokens: `u{sender} u{recipient}` one-to-one, `g{room}` in a group.
macro_rules! audience {
    ($row:literal) => {
        concat!(
            "CASE WHEN ",
            $row,
            ".chat_room_id IS NULL THEN 'u' || ",
            $row,
            ".user_id || ' u' || ",
            $row,
            ".recipient_id ELSE 'g' || ",
            $row,
            ".chat_room_id END"
        )
    };
}

pub(crate) const SQLITE_UP: &[&str] = &[
    // Contentless: the text stays in `messages` only; rows are deleted by id.
    "CREATE VIRTUAL TABLE messages_fts USING fts5(body, audience, content = '', contentless_delete = 1, \
     tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4')",
    concat!(
        "INSERT INTO messages_fts (rowid, body, audience) SELECT id, body, ",
        audience!("messages"),
        " FROM messages WHERE kind = 'text'"
    ),
    concat!(
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind = 'text' BEGIN ",
        "INSERT INTO messages_fts (rowid, body, audience) VALUES (new.id, new.body, ",
        audience!("new"),
        "); END"
    ),
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind = 'text' BEGIN \
     DELETE FROM messages_fts WHERE rowid = old.id; END",
    concat!(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages WHEN old.kind = 'text' BEGIN ",
        "DELETE FROM messages_fts WHERE rowid = old.id; ",
        "INSERT INTO messages_fts (rowid, body, audience) VALUES (new.id, new.body, ",
        audience!("new"),
        "); END"
    ),
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
];

const POSTGRES_UP: &[&str] = &[
    // Extensions are per database, not per schema: one lock keeps two migrating schemas (parallel
    // tests) from creating it at once, and `public` is where every schema's search path finds it.
    "SELECT pg_advisory_xact_lock(8008135)",
    "CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public",
    "CREATE TEXT SEARCH CONFIGURATION banter_search (COPY = pg_catalog.simple)",
    "ALTER TEXT SEARCH CONFIGURATION banter_search ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, \
     word, hword, hword_part WITH public.unaccent, pg_catalog.simple",
    "ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS \
     (CASE WHEN kind = 'text' THEN to_tsvector('banter_search'::regconfig, body) END) STORED",
    "CREATE INDEX idx_messages_search ON messages USING GIN (search)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS idx_messages_search",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS banter_search",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for statement in statements {
        manager.get_connection().execute_unprepared(statement).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => run(manager, SQLITE_UP).await,
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            other => Err(DbErr::Migration(format!("message search is not written for {other:?}"))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => run(manager, SQLITE_DOWN).await,
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            other => Err(DbErr::Migration(format!("message search is not written for {other:?}"))),
        }
    }
}
