//! Search indexes each word once per scope that may read its message (`u7xdeploy`: "deploy" in a
//! message person 7 can see; see [`crate::search_index`]), so a search reads the searcher's own
//! postings only, not those of every message in the database that holds the word.
//!
//! - SQLite: `messages_fts` becomes one column, `words`, written by Banter when it stores or edits
//!   a message; triggers take a message out when its body changes (an edit, which then writes it
//!   again) or its row goes. Rebuilt from `messages` here. No prefix indexes: a prefix is a range
//!   of the searcher's own terms, already small.
//! - PostgreSQL: `messages.search` is generated as the scoped `tsvector` (`banter_scoped`), under
//!   the same GIN index; `banter_scope_query` writes a search's `tsquery` for the searcher's
//!   scopes, after `to_tsquery` has read the words exactly as `to_tsvector` reads the text.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, TransactionTrait};

use crate::m20261203_000008_message_search as unscoped;
use crate::search_index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
    "CREATE VIRTUAL TABLE messages_fts USING fts5(words, content = '', contentless_delete = 1, \
     tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN \
     DELETE FROM messages_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, deleted_at, kind ON messages BEGIN \
     DELETE FROM messages_fts WHERE rowid = old.id; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TABLE IF EXISTS messages_fts",
];

const POSTGRES_UP: &[&str] = &[
    // A tsvector's lexemes, each once per scope (`u7xdeploy`), with their positions, so phrases
    // still match words in a row. Lexemes of `banter_search` hold no quote, but are quoted anyway.
    r"CREATE FUNCTION banter_scoped(words tsvector, scopes text[]) RETURNS tsvector
      LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT coalesce(string_agg(
          '''' || replace(replace(s || 'x' || w.lexeme, '\', '\\'), '''', '''''') || '''' ||
          CASE WHEN cardinality(w.positions) > 0 THEN ':' || array_to_string(w.positions, ',') ELSE '' END,
          ' '), '')::tsvector
        FROM unnest(words) AS w, unnest(scopes) AS s
      $$",
    // A search for `scopes`: each lexeme of `q` scoped, the copies joined by OR (any of my
    // conversations) or AND (`every`: both people of one conversation).
    r"CREATE FUNCTION banter_scope_query(q tsquery, scopes text[], every boolean) RETURNS tsquery
      LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT coalesce(string_agg(
          '(' || regexp_replace(q::text, '''((?:[^'']|'''')*)''', '''' || s || 'x\1''', 'g') || ')',
          CASE WHEN every THEN ' & ' ELSE ' | ' END), '')::tsquery
        FROM unnest(scopes) AS s
      $$",
    "DROP INDEX IF EXISTS idx_messages_search",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search",
    "ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS \
     (CASE WHEN kind = 'text' THEN banter_scoped(to_tsvector('banter_search'::regconfig, body), \
      CASE WHEN chat_room_id IS NOT NULL THEN ARRAY['g' || chat_room_id::text] \
      WHEN recipient_id = user_id THEN ARRAY['u' || user_id::text] \
      ELSE ARRAY['u' || user_id::text, 'u' || recipient_id::text] END) END) STORED",
    "CREATE INDEX idx_messages_search ON messages USING GIN (search)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS idx_messages_search",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search",
    "ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS \
     (CASE WHEN kind = 'text' THEN to_tsvector('banter_search'::regconfig, body) END) STORED",
    "CREATE INDEX idx_messages_search ON messages USING GIN (search)",
    "DROP FUNCTION IF EXISTS banter_scope_query(tsquery, text[], boolean)",
    "DROP FUNCTION IF EXISTS banter_scoped(tsvector, text[])",
];

/// Runs `statements` in one transaction, so on one connection: a pool's other connection could
/// still read the schema from before a statement (seen: "trigger already exists" after its drop).
async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let txn = manager.get_connection().begin().await?;
    for statement in statements {
        txn.execute_unprepared(statement).await?;
    }
    txn.commit().await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                let txn = manager.get_connection().begin().await?;
                for statement in SQLITE_UP {
                    txn.execute_unprepared(statement).await?;
                }
                search_index::index_after(&txn, 0).await?;
                txn.commit().await
            }
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            other => Err(DbErr::Migration(format!("message search is not written for {other:?}"))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => run(manager, &[SQLITE_DOWN, unscoped::SQLITE_UP].concat()).await,
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            other => Err(DbErr::Migration(format!("message search is not written for {other:?}"))),
        }
    }
}
