//! The words of messages as the search index holds them: each word once per *scope* that may read
//! the message (`u{id}` for each person of a one-to-one message, `g{id}` for a group's), written
//! `{scope}x{word}`, so `u7xdeploy` is "deploy" in a message person 7 can see.
//!
//! A search then reads only the searcher's own part of the index: "deploy" as a prefix is the
//! range of terms that begin with `u7xdeploy`, a few hundred postings, however often other people
//! wrote it. (With the words indexed once and the audience as a second column, FTS5 had to walk
//! or merge every message in the database holding the word to intersect it with the audience:
//! 5 ms for a common word over a million messages, 25 ms for two of them, against 0.1 to 0.5 ms
//! this way.)
//!
//! - SQLite: the `messages_fts` FTS5 table holds this text, written here, by Banter, in the
//!   transaction that stores or edits a message ([`index_one`]); the database's triggers take a
//!   message out of it when its body changes or it is deleted, so a deleted message's words can
//!   never be found, whatever wrote the row.
//! - PostgreSQL: the generated column `messages.search` applies the same scoping to the
//!   `tsvector` in SQL (`banter_scoped`, see the `scoped_search` migration); nothing to do here.
//!
//! Both a message's text and a search's words are read by [`words`] and [`fold`], so the two
//! always agree on what a word is.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use unicode_normalization::UnicodeNormalization;

/// The words of `text`: runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// A word as the index compares it: lower case, accents removed.
pub fn fold(word: &str) -> String {
    if word.is_ascii() {
        return word.to_ascii_lowercase();
    }
    word.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// The scopes that may read a message: both people of a one-to-one message (once when someone
/// writes to themselves), or its group.
pub fn scopes(sender: i64, recipient: Option<i64>, room: Option<i64>) -> Vec<String> {
    match (room, recipient) {
        (Some(room), _) => vec![format!("g{room}")],
        (None, Some(to)) if to != sender => vec![format!("u{sender}"), format!("u{to}")],
        (None, _) => vec![format!("u{sender}")],
    }
}

/// `word` (folded) as the index holds it for `scope`.
pub fn scoped(scope: &str, word: &str) -> String {
    format!("{scope}x{word}")
}

/// The text the FTS5 index is given for a message: its words once per scope, a line per scope.
pub fn indexed_text(body: &str, scopes: &[String]) -> String {
    let folded: Vec<String> = words(body).map(fold).filter(|w| !w.is_empty()).collect();
    let mut text = String::with_capacity(scopes.len() * (body.len() + folded.len() * 8));
    for scope in scopes {
        for word in &folded {
            text.push_str(&scoped(scope, word));
            text.push(' ');
        }
        text.push('\n');
    }
    text
}

/// What the index is given for one message.
#[derive(Debug, Clone, Copy)]
pub struct Indexed<'a> {
    pub id: i64,
    pub body: &'a str,
    pub sender: i64,
    pub recipient: Option<i64>,
    pub room: Option<i64>,
}

/// SQLite: puts message `id` in the index (replacing what it held for it). PostgreSQL keeps its
/// index itself: nothing to do.
pub async fn index_one<C: ConnectionTrait>(
    db: &C,
    id: i64,
    body: &str,
    sender: i64,
    recipient: Option<i64>,
    room: Option<i64>,
) -> Result<(), DbErr> {
    index_many(db, &[Indexed { id, body, sender, recipient, room }]).await
}

/// SQLite: puts `messages` in the index in one statement (replacing what it held for them).
/// PostgreSQL keeps its index itself: nothing to do.
pub async fn index_many<C: ConnectionTrait>(db: &C, messages: &[Indexed<'_>]) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite || messages.is_empty() {
        return Ok(());
    }
    let mut sql = String::from("INSERT OR REPLACE INTO messages_fts (rowid, words) VALUES ");
    let mut values: Vec<Value> = Vec::with_capacity(messages.len() * 2);
    for (i, m) in messages.iter().enumerate() {
        sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        values.push(m.id.into());
        values.push(indexed_text(m.body, &scopes(m.sender, m.recipient, m.room)).into());
    }
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?;
    Ok(())
}

/// Messages read and indexed per statement by [`index_after`].
const BATCH: u64 = 2_000;

/// SQLite: indexes every searchable message (people's, not deleted) with an id above `after`, in
/// batches: for a migration's backfill and for bulk loads that insert rows directly. Returns how
/// many it indexed. PostgreSQL: nothing to do.
pub async fn index_after<C: ConnectionTrait>(db: &C, mut after: i64) -> Result<u64, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(0);
    }
    let mut indexed = 0;
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT id, body, user_id, recipient_id, chat_room_id FROM messages \
                 WHERE id > ? AND kind = 'text' AND deleted_at IS NULL ORDER BY id LIMIT ?",
                [Value::from(after), Value::from(BATCH as i64)],
            ))
            .await?;
        let Some(last) = rows.last() else { return Ok(indexed) };
        after = last.try_get_by_index(0)?;
        let read = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get_by_index::<i64>(0)?,
                    row.try_get_by_index::<String>(1)?,
                    row.try_get_by_index::<i64>(2)?,
                    row.try_get_by_index::<Option<i64>>(3)?,
                    row.try_get_by_index::<Option<i64>>(4)?,
                ))
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        let batch: Vec<Indexed<'_>> = read
            .iter()
            .map(|(id, body, sender, recipient, room)| Indexed {
                id: *id,
                body,
                sender: *sender,
                recipient: *recipient,
                room: *room,
            })
            .collect();
        index_many(db, &batch).await?;
        indexed += rows.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_indexed_once_per_person_or_group_that_can_read_it() {
        assert_eq!(scopes(3, Some(7), None), ["u3", "u7"]);
        assert_eq!(scopes(3, Some(3), None), ["u3"]);
        assert_eq!(scopes(3, None, Some(9)), ["g9"]);
        assert_eq!(
            indexed_text("Déjà vu, DEPLOY-2!", &scopes(3, Some(7), None)),
            "u3xdeja u3xvu u3xdeploy u3x2 \nu7xdeja u7xvu u7xdeploy u7x2 \n"
        );
        assert_eq!(indexed_text("…", &scopes(3, None, Some(9))), "\n");
    }

    #[test]
    fn one_scope_never_reads_as_another() {
        // "u7" then "x" then the word: u7's "7xab" and u77's "ab" stay apart.
        assert_ne!(scoped("u7", "7xab"), scoped("u77", "ab"));
        assert!(!scoped("u77", "ab").starts_with(&scoped("u7", "")));
    }
}
