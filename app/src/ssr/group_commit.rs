//! Group commit for sends: the messages people send at about the same moment are written together,
//! with one statement for the messages (and, on SQLite, one for their search index entries).
//!
//! SQLite has one writer at a time, and each statement is a round trip to the driver's thread, so
//! a send written on its own costs four of them (`BEGIN`, the insert, the index, `COMMIT`) while
//! every other send waits for its turn ([`crate::ssr::sqlite_write_turn`]). PostgreSQL writes side
//! by side, but each send written on its own is a statement, a commit and a round trip to another
//! process. Here a send joins a queue and waits for its turn *or* for its answer: the one that
//! gets the turn writes everything queued for its database by then, the others are answered
//! without ever taking it. Under no load a batch is one send and nothing waits longer than before;
//! under load the batches grow by themselves and the cost per send falls well under one round trip.
//!
//! Each send keeps its own outcome: when the batch's insert is refused (a repeated `client_id`, a
//! recipient that does not exist), nothing of that statement is stored and its rows are inserted
//! one by one, so the refused ones fail and the others in the batch are stored. Any other failure
//! (of `BEGIN`, an insert, the index or `COMMIT`) fails the whole batch. On SQLite nothing of it is
//! stored then. On PostgreSQL each statement commits on its own: a batch of more than
//! [`ROWS_PER_INSERT`] sends may have stored its first statements' rows, which a retry (the same
//! `client_id`) is answered with, as any retry is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use migration::search_index::{self, Indexed};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait};
use tokio::sync::oneshot;

use crate::ssr::entities::messages;

type Reply = oneshot::Sender<Result<messages::Model, DbErr>>;

/// A send waiting to be written: which database (see [`database_id`]), the row, where the answer goes.
struct Queued {
    database: usize,
    row: messages::ActiveModel,
    reply: Reply,
}

/// Sends waiting for a writer, of every database this process has open (tests open many).
static QUEUE: Mutex<Vec<Queued>> = Mutex::new(Vec::new());

/// Inserts `row` (a message people wrote) and puts it in the search index, with the sends queued
/// beside it: on SQLite in one transaction, on PostgreSQL in one statement (see [`write_turn`]).
pub async fn insert(db: &DatabaseConnection, row: messages::ActiveModel) -> Result<messages::Model, DbErr> {
    let database = database_id(db);
    let (reply, mut answer) = oneshot::channel();
    QUEUE.lock().unwrap_or_else(|e| e.into_inner()).push(Queued { database, row, reply });
    tokio::select! {
        biased;
        written = &mut answer => return written.unwrap_or_else(|_| Err(lost())),
        turn = write_turn(db) => {
            // Everything queued for this database, this send included unless a writer before took it
            // (then its answer is already there). Written by a task of its own, which holds the turn:
            // if this request goes away (the client hung up), the sends of the others still complete.
            let batch = take(database);
            if !batch.is_empty() {
                let db = db.clone();
                let writer = tokio::spawn(async move {
                    let _turn = turn;
                    write(&db, batch).await;
                });
                let _ = writer.await;
            }
        }
    }
    answer.await.unwrap_or_else(|_| Err(lost()))
}

/// The turn to write a batch of sends. SQLite: its one writer's ([`crate::ssr::sqlite_write_turn`]),
/// shared with its other hot writes. PostgreSQL writes side by side, but a send written on its own
/// is a statement, a commit and a round trip to the database's process each; here at most
/// [`POSTGRES_WRITERS`] batches of sends at a time per process are written, and the sends that
/// arrive meanwhile make the next ones.
async fn write_turn(db: &DatabaseConnection) -> Turn {
    static POSTGRES_SENDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(POSTGRES_WRITERS);
    match crate::ssr::sqlite_write_turn(db).await {
        Some(turn) => Turn::Sqlite(turn),
        None => Turn::Postgres(POSTGRES_SENDS.acquire().await.expect("the semaphore is never closed")),
    }
}

/// Batches of sends written at once on PostgreSQL, by one instance. One batch's rows are inserted
/// by one of the database's processes, on one core: with one writer at a time, 3,000 sends/s
/// offered waited 800 ms (p50) on this 2-core machine, with 2 or 4 about 7-12 ms (2026-12-08,
/// `banter-bench --postgres chat`). Four leave most of the pool (10 connections) to the reads.
const POSTGRES_WRITERS: usize = 4;

/// Held while a batch is written.
enum Turn {
    Sqlite(#[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>),
    Postgres(#[allow(dead_code)] tokio::sync::SemaphorePermit<'static>),
}

/// The database a connection belongs to: every clone of a pool shares its options.
fn database_id(db: &DatabaseConnection) -> usize {
    match db.get_database_backend() {
        DbBackend::Postgres => Arc::as_ptr(&db.get_postgres_connection_pool().connect_options()) as usize,
        _ => Arc::as_ptr(&db.get_sqlite_connection_pool().connect_options()) as usize,
    }
}

fn take(database: usize) -> Vec<Queued> {
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let (mine, others): (Vec<Queued>, Vec<Queued>) = queue.drain(..).partition(|q| q.database == database);
    *queue = others;
    mine
}

fn lost() -> DbErr {
    DbErr::Custom("the batch writing this message stopped before it answered".to_owned())
}

/// How many batches of more than one send this process wrote (for the tests).
#[cfg(test)]
static SHARED_BATCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many batches this process stored with one statement (for the tests).
#[cfg(test)]
static BATCH_INSERTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn write(db: &DatabaseConnection, batch: Vec<Queued>) {
    metrics::histogram!("banter_send_batch_size").record(batch.len() as f64);
    #[cfg(test)]
    if batch.len() > 1 {
        SHARED_BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let (rows, replies): (Vec<messages::ActiveModel>, Vec<Reply>) = batch.into_iter().map(|q| (q.row, q.reply)).unzip();
    match write_rows(db, rows).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, sends = replies.len(), "a batch of sends could not be written");
            for reply in replies {
                let _ = reply.send(Err(DbErr::Custom(format!("the batch of sends failed: {e}"))));
            }
        }
    }
}

/// SQLite: one transaction, each insert with its own outcome, then the index entries of those
/// stored. PostgreSQL: the inserts alone, each statement its own transaction (it indexes a
/// message's words itself, and a statement that fails stores nothing of its rows).
async fn write_rows(
    db: &DatabaseConnection,
    rows: Vec<messages::ActiveModel>,
) -> Result<Vec<Result<messages::Model, DbErr>>, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        return insert_rows(db, &rows).await;
    }
    let tx = crate::ssr::begin_write(db).await?;
    let outcomes = insert_rows(&tx, &rows).await?;
    let stored: Vec<Indexed<'_>> = outcomes
        .iter()
        .flatten()
        .map(|m| Indexed {
            id: m.id,
            body: &m.body,
            sender: m.user_id,
            recipient: m.recipient_id,
            room: m.chat_room_id,
        })
        .collect();
    search_index::index_many(&tx, &stored).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Inserts `rows` in as few statements as it can, each row with its own outcome: up to
/// [`ROWS_PER_INSERT`] at a time, and the rows of a statement a constraint refused one by one, so
/// that only the refused ones fail (SQLite undoes the refused statement alone, and the transaction
/// goes on). A statement that fails otherwise fails the batch.
async fn insert_rows(
    conn: &impl ConnectionTrait,
    rows: &[messages::ActiveModel],
) -> Result<Vec<Result<messages::Model, DbErr>>, DbErr> {
    let mut outcomes = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        match insert_together(conn, chunk).await? {
            Some(stored) => outcomes.extend(stored.into_iter().map(Ok)),
            None => {
                for row in chunk {
                    outcomes.push(row.clone().insert(conn).await);
                }
            }
        }
    }
    Ok(outcomes)
}

/// The most rows one `INSERT` of a batch holds: 12 bound values each, well under SQLite's limit
/// of 32,766 per statement. The default of 1,024 requests served at once
/// (`MAX_REQUESTS_IN_FLIGHT`) keeps a batch to one statement.
const ROWS_PER_INSERT: usize = 1_000;

/// The rows in one `INSERT … RETURNING` (one round trip to the database, where a statement per
/// send was one each), answered in their order. `None` for fewer than two rows, and when a
/// constraint refused the statement (a repeated `client_id` or a recipient that does not exist,
/// anywhere in it): nothing of it was stored, and the caller inserts the rows one by one.
async fn insert_together(
    tx: &impl ConnectionTrait,
    rows: &[messages::ActiveModel],
) -> Result<Option<Vec<messages::Model>>, DbErr> {
    if rows.len() < 2 {
        return Ok(None);
    }
    let stored = match messages::Entity::insert_many(rows.iter().cloned()).exec_with_returning(tx).await {
        Ok(stored) => stored,
        Err(e) if crate::ssr::is_unique_violation(&e) || crate::ssr::is_foreign_key_violation(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    #[cfg(test)]
    BATCH_INSERTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The order of the rows `RETURNING` gives is not promised: each is found by its unique key.
    let mut by_key: HashMap<(i64, String), messages::Model> =
        stored.into_iter().map(|m| ((m.user_id, m.client_id.clone()), m)).collect();
    rows.iter()
        .map(|row| {
            let key = (row.user_id.try_as_ref().copied(), row.client_id.try_as_ref().cloned());
            let (Some(sender), Some(client_id)) = key else { return None };
            by_key.remove(&(sender, client_id))
        })
        .collect::<Option<Vec<_>>>()
        // Not expected: then nothing of the batch is stored (the transaction is not committed).
        .map(Some)
        .ok_or_else(|| DbErr::Custom("a batch insert returned rows that do not match the batch".to_owned()))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    use crate::ssr::conversations::send;
    use crate::ssr::test_support::{for_each_database_file, unlimited, user};

    use super::*;

    type Sends = tokio::task::JoinSet<(i64, Result<crate::ssr::messages::Sent, crate::error::AppError>)>;

    /// Ann's send of `body` to `to` as a task of its own (so that sends queue behind each other's
    /// writes), answered with `tag`.
    struct Sender {
        db: DatabaseConnection,
        limiter: Arc<crate::ssr::rate_limit::SlidingWindow>,
        ann: crate::ssr::entities::users::Model,
    }

    impl Sender {
        fn spawn(&self, sends: &mut Sends, tag: i64, to: i64, body: String, client_id: String) {
            let (db, limiter, ann) = (self.db.clone(), self.limiter.clone(), self.ann.clone());
            sends.spawn(async move { (tag, send(&db, &limiter, &ann, to, &body, &client_id, None).await) });
        }
    }

    /// Ann to send and Ben to receive, on `db`.
    async fn ann_and_ben(db: DatabaseConnection) -> (Sender, crate::ssr::entities::users::Model) {
        let ann = user(&db, "ann").await;
        let ben = user(&db, "ben").await;
        (Sender { db, limiter: Arc::new(unlimited()), ann }, ben)
    }

    /// Sends that arrive together and are all fine, written by one statement per batch: each gets
    /// its own message back (not a neighbour's), stored once and searchable.
    #[tokio::test]
    async fn a_batch_of_good_sends_is_one_insert_and_each_gets_its_own_message() {
        for_each_database_file(|db| async move {
            let (sender, ben) = ann_and_ben(db.clone()).await;
            let inserts_before = BATCH_INSERTS.load(std::sync::atomic::Ordering::Relaxed);
            let mut sends = Sends::new();
            for i in 0..60 {
                sender.spawn(&mut sends, i, ben.id, format!("together word{i}q"), format!("t-{i}"));
            }
            let mut ids = std::collections::HashSet::new();
            for (i, sent) in sends.join_all().await {
                let sent = sent.unwrap();
                assert!(sent.created, "send {i} stored it");
                assert_eq!(sent.message.body, format!("together word{i}q"), "send {i} got its own message");
                assert_eq!(sent.message.client_id, format!("t-{i}"));
                let page = crate::ssr::search::search(&db, ben.id, &format!("word{i}q"), None, 1).await.unwrap();
                assert_eq!(page.hits.iter().map(|h| h.message_id).collect::<Vec<_>>(), [sent.message.id]);
                ids.insert(sent.message.id);
            }
            assert_eq!(ids.len(), 60);
            assert_eq!(sent_by(&db, &sender.ann).await, 60);
            let inserts = BATCH_INSERTS.load(std::sync::atomic::Ordering::Relaxed) - inserts_before;
            assert!(inserts > 0, "some batch was one statement");
        })
        .await;
    }

    async fn sent_by(db: &DatabaseConnection, who: &crate::ssr::entities::users::Model) -> u64 {
        messages::Entity::find().filter(messages::Column::UserId.eq(who.id)).count(db).await.unwrap()
    }

    /// A batch larger than one statement holds (SQLite's bound values: 3,000 rows of 12 would be
    /// 36,000) is written in several statements, and each of its rows is stored and searchable.
    #[tokio::test]
    async fn a_batch_too_large_for_one_statement_is_written_in_several() {
        for_each_database_file(|db| async move {
            use sea_orm::Set;
            let (sender, ben) = ann_and_ben(db.clone()).await;
            let at = chrono::Utc::now();
            let rows: Vec<messages::ActiveModel> = (0..3_000)
                .map(|i| messages::ActiveModel {
                    body: Set(format!("bulk word{i}b")),
                    user_id: Set(sender.ann.id),
                    recipient_id: Set(Some(ben.id)),
                    chat_room_id: Set(None),
                    client_id: Set(format!("b-{i}")),
                    kind: Set("text".to_owned()),
                    read_at: Set(None),
                    edited_at: Set(None),
                    deleted_at: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                    reply_to_id: Set(None),
                    ..Default::default()
                })
                .collect();
            let inserts_before = BATCH_INSERTS.load(std::sync::atomic::Ordering::Relaxed);
            let outcomes = write_rows(&db, rows).await.expect("the batch is written");
            let client_ids: Vec<String> = outcomes.into_iter().map(|stored| stored.unwrap().client_id).collect();
            assert_eq!(client_ids, (0..3_000).map(|i| format!("b-{i}")).collect::<Vec<_>>(), "answered in order");
            assert_eq!(sent_by(&db, &sender.ann).await, 3_000);
            for i in [0, 999, 1_000, 2_999] {
                let page = crate::ssr::search::search(&db, ben.id, &format!("word{i}b"), None, 1).await.unwrap();
                assert_eq!(page.hits.len(), 1, "word{i}b is searchable");
            }
            let inserts = BATCH_INSERTS.load(std::sync::atomic::Ordering::Relaxed) - inserts_before;
            assert!(inserts >= 3, "written by statements of many rows each, not one by one ({inserts})");
        })
        .await;
    }

    /// Sends that arrive together, some refused (a retry racing its first attempt, no recipient):
    /// each gets its own answer, stored once and searchable, the refused ones without harming the
    /// rest (the batch's one statement fails, and its rows are inserted one by one).
    #[tokio::test]
    async fn sends_written_together_keep_their_own_outcomes() {
        for_each_database_file(|db| async move {
            let (sender, ben) = ann_and_ben(db.clone()).await;
            let shared_before = SHARED_BATCHES.load(std::sync::atomic::Ordering::Relaxed);
            // 60 sends at once: 40 new ones, each also sent a second time (a retry racing it), and
            // 10 to nobody. Spawned, so they run side by side and queue behind each other's writes.
            let mut sends = Sends::new();
            for i in 0..40 {
                for _ in 0..2 {
                    sender.spawn(&mut sends, i, ben.id, format!("batched word{i}z"), format!("c-{i}"));
                }
            }
            for i in 0..10 {
                sender.spawn(&mut sends, 100 + i, 99_999, "hello?".to_owned(), format!("x-{i}"));
            }
            let mut ids: std::collections::HashMap<i64, Vec<(i64, bool)>> = std::collections::HashMap::new();
            for (i, sent) in sends.join_all().await {
                if i >= 100 {
                    assert_eq!(sent.unwrap_err().status(), 404, "no such recipient");
                    continue;
                }
                let sent = sent.unwrap();
                assert_eq!(sent.message.body, format!("batched word{i}z"));
                assert_eq!(sent.message.sender_name, "ann");
                ids.entry(i).or_default().push((sent.message.id, sent.created));
            }
            assert_eq!(ids.len(), 40);
            for (i, answers) in &ids {
                assert_eq!(answers[0].0, answers[1].0, "send {i} and its retry got the same message");
                assert!(answers[0].1 != answers[1].1, "exactly one of send {i}'s attempts stored it");
            }
            assert_eq!(sent_by(&db, &sender.ann).await, 40);
            // Each is in the search index, under its own words, for both people.
            for (i, answers) in &ids {
                for reader in [sender.ann.id, ben.id] {
                    let page = crate::ssr::search::search(&db, reader, &format!("word{i}z"), None, 1).await.unwrap();
                    let found: Vec<i64> = page.hits.iter().map(|h| h.message_id).collect();
                    assert_eq!(found, [answers[0].0], "word{i}z for {reader}");
                }
            }
            let shared = SHARED_BATCHES.load(std::sync::atomic::Ordering::Relaxed) - shared_before;
            assert!(shared > 0, "sends waiting together were written together");
        })
        .await;
    }
}
