//! Group commit for sends on SQLite: the messages people send at about the same moment are written
//! in one transaction, with one statement for the messages and one for their search index entries.
//!
//! SQLite has one writer at a time, and each statement is a round trip to the driver's thread, so
//! a send written on its own costs four of them (`BEGIN`, the insert, the index, `COMMIT`) while
//! every other send waits for its turn ([`crate::ssr::sqlite_write_turn`]). Here a send joins a
//! queue and waits for its turn *or* for its answer: the one that gets the turn writes everything
//! queued for its database by then, the others are answered without ever taking it. Under no load
//! a batch is one send and nothing waits longer than before; under load the batches grow by
//! themselves and the cost per send falls well under one round trip.
//!
//! Each send keeps its own outcome: when the batch's insert is refused (a repeated `client_id`, a
//! recipient that does not exist), SQLite undoes that statement alone and the rows are inserted
//! one by one, so the refused ones fail and the others in the batch are stored; only a failed
//! `BEGIN`, index or `COMMIT` fails the whole batch, and then nothing of it is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use migration::search_index::{self, Indexed};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait};
use tokio::sync::oneshot;

use crate::ssr::entities::messages;

type Reply = oneshot::Sender<Result<messages::Model, DbErr>>;

/// A send waiting to be written: which database (see [`database_id`]), the row, where the answer goes.
struct Queued {
    database: usize,
    row: messages::ActiveModel,
    reply: Reply,
}

/// Sends waiting for a writer, of every SQLite database this process has open (tests open many).
static QUEUE: Mutex<Vec<Queued>> = Mutex::new(Vec::new());

/// Inserts `row` (a message people wrote) and puts it in the search index, in a transaction shared
/// with the sends queued beside it. SQLite only: PostgreSQL writes side by side without this.
pub async fn insert(db: &DatabaseConnection, row: messages::ActiveModel) -> Result<messages::Model, DbErr> {
    let database = database_id(db);
    let (reply, mut answer) = oneshot::channel();
    QUEUE.lock().unwrap_or_else(|e| e.into_inner()).push(Queued { database, row, reply });
    tokio::select! {
        biased;
        written = &mut answer => return written.unwrap_or_else(|_| Err(lost())),
        turn = crate::ssr::sqlite_write_turn(db) => {
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

/// The database a connection belongs to: every clone of a pool shares its options.
fn database_id(db: &DatabaseConnection) -> usize {
    Arc::as_ptr(&db.get_sqlite_connection_pool().connect_options()) as usize
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

/// The most sends one batch has written in this process (for the tests).
#[cfg(test)]
static LARGEST_BATCH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many batches this process stored with one statement (for the tests).
#[cfg(test)]
static BATCH_INSERTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn write(db: &DatabaseConnection, batch: Vec<Queued>) {
    metrics::histogram!("banter_send_batch_size").record(batch.len() as f64);
    #[cfg(test)]
    LARGEST_BATCH.fetch_max(batch.len(), std::sync::atomic::Ordering::Relaxed);
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

/// One transaction: each insert with its own outcome, then the index entries of those stored.
async fn write_rows(
    db: &DatabaseConnection,
    rows: Vec<messages::ActiveModel>,
) -> Result<Vec<Result<messages::Model, DbErr>>, DbErr> {
    let tx = crate::ssr::begin_write(db).await?;
    let outcomes = match insert_together(&tx, &rows).await? {
        Some(stored) => stored.into_iter().map(Ok).collect(),
        None => {
            let mut outcomes = Vec::with_capacity(rows.len());
            for row in rows {
                // A constraint failure undoes this statement only; the transaction goes on.
                outcomes.push(row.insert(&tx).await);
            }
            outcomes
        }
    };
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

/// The whole batch in one `INSERT … RETURNING` (one round trip to SQLite's thread, where a
/// statement per send was one each), answered in the batch's order. `None` when the statement was
/// refused (a repeated `client_id` or a recipient that does not exist, anywhere in the batch; or
/// a batch over SQLite's 32,766 bound values, about 2,700 sends of 12 columns, which the default
/// of 1,024 requests served at once, `MAX_REQUESTS_IN_FLIGHT`, keeps it under): SQLite undid it,
/// and the caller inserts the rows one by one so that each gets its own outcome.
async fn insert_together(
    tx: &impl ConnectionTrait,
    rows: &[messages::ActiveModel],
) -> Result<Option<Vec<messages::Model>>, DbErr> {
    if rows.len() < 2 {
        return Ok(None);
    }
    let Ok(stored) = messages::Entity::insert_many(rows.iter().cloned()).exec_with_returning(tx).await else {
        return Ok(None);
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
    use crate::ssr::test_support::{unlimited, user};

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

    /// A SQLite file with its pool (as the server has it), Ann to send and Ben to receive.
    async fn ann_and_ben() -> (std::path::PathBuf, Sender, crate::ssr::entities::users::Model) {
        let dir = std::env::temp_dir().join(format!("banter-group-commit-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = crate::ssr::connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.display())).await.unwrap();
        <migration::Migrator as migration::MigratorTrait>::up(&db, None).await.unwrap();
        let ann = user(&db, "ann").await;
        let ben = user(&db, "ben").await;
        (dir, Sender { db, limiter: Arc::new(unlimited()), ann }, ben)
    }

    /// Sends that arrive together and are all fine, written by one statement per batch: each gets
    /// its own message back (not a neighbour's), stored once and searchable.
    #[tokio::test]
    async fn a_batch_of_good_sends_is_one_insert_and_each_gets_its_own_message() {
        let (dir, sender, ben) = ann_and_ben().await;
        let (db, ann) = (sender.db.clone(), sender.ann.clone());
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
        let stored = messages::Entity::find().filter(messages::Column::UserId.eq(ann.id)).count(&db).await.unwrap();
        assert_eq!(stored, 60);
        assert!(BATCH_INSERTS.load(std::sync::atomic::Ordering::Relaxed) > 0, "some batch was one statement");
        db.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Sends that arrive together, some refused (a retry racing its first attempt, no recipient):
    /// each gets its own answer, stored once and searchable, the refused ones without harming the
    /// rest (the batch's one statement fails, and its rows are inserted one by one).
    #[tokio::test]
    async fn sends_written_together_keep_their_own_outcomes() {
        let (dir, sender, ben) = ann_and_ben().await;
        let (db, ann) = (sender.db.clone(), sender.ann.clone());
        // 60 sends at once: 40 new ones, each also sent a second time (a retry racing it), and 10
        // to nobody. Spawned, so they run side by side and queue behind each other's writes.
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
        let stored = messages::Entity::find().filter(messages::Column::UserId.eq(ann.id)).count(&db).await.unwrap();
        assert_eq!(stored, 40);
        // Each is in the search index, under its own words, for both people.
        for (i, answers) in &ids {
            for reader in [ann.id, ben.id] {
                let page = crate::ssr::search::search(&db, reader, &format!("word{i}z"), None, 1).await.unwrap();
                let found: Vec<i64> = page.hits.iter().map(|h| h.message_id).collect();
                assert_eq!(found, [answers[0].0], "word{i}z for {reader}");
            }
        }
        assert!(
            LARGEST_BATCH.load(std::sync::atomic::Ordering::Relaxed) > 1,
            "sends waiting together were written together"
        );
        db.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
