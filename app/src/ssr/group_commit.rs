//! Group commit for sends on SQLite: the messages people send at about the same moment are written
//! in one transaction, with one statement for their search index entries.
//!
//! SQLite has one writer at a time, and each statement is a round trip to the driver's thread, so
//! a send written on its own costs four of them (`BEGIN`, the insert, the index, `COMMIT`) while
//! every other send waits for its turn ([`crate::ssr::sqlite_write_turn`]). Here a send joins a
//! queue and waits for its turn *or* for its answer: the one that gets the turn writes everything
//! queued for its database by then, the others are answered without ever taking it. Under no load
//! a batch is one send and nothing waits longer than before; under load the batches grow by
//! themselves and the cost per send falls to about one round trip.
//!
//! Each send keeps its own outcome: a refused insert (a repeated `client_id`, a recipient that does
//! not exist) is undone by SQLite alone, statement by statement, and the others in its batch are
//! stored; only a failed `BEGIN`, index or `COMMIT` fails the whole batch, and then nothing of it
//! is stored.

use std::sync::{Arc, Mutex};

use migration::search_index::{self, Indexed};
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr};
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
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        // A constraint failure undoes this statement only; the transaction goes on.
        outcomes.push(row.insert(&tx).await);
    }
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

#[cfg(test)]
mod tests {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    use crate::ssr::conversations::send;
    use crate::ssr::test_support::{unlimited, user};

    use super::*;

    /// Sends that arrive together, on a SQLite file with its pool (as the server has it): each
    /// gets its own answer, stored once and searchable, the refused ones without harming the rest.
    #[tokio::test]
    async fn sends_written_together_keep_their_own_outcomes() {
        let dir = std::env::temp_dir().join(format!("banter-group-commit-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = crate::ssr::connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.display())).await.unwrap();
        <migration::Migrator as migration::MigratorTrait>::up(&db, None).await.unwrap();
        let ann = user(&db, "ann").await;
        let ben = user(&db, "ben").await;
        let limiter = Arc::new(unlimited());
        // 60 sends at once: 40 new ones, each also sent a second time (a retry racing it), and 10
        // to nobody. Spawned, so they run side by side and queue behind each other's writes.
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..40 {
            for _ in 0..2 {
                let (db, limiter, ann) = (db.clone(), limiter.clone(), ann.clone());
                let to = ben.id;
                sends.spawn(async move {
                    let sent =
                        send(&db, &limiter, &ann, to, &format!("batched word{i}z"), &format!("c-{i}"), None).await;
                    (i, sent)
                });
            }
        }
        for i in 0..10 {
            let (db, limiter, ann) = (db.clone(), limiter.clone(), ann.clone());
            sends.spawn(async move {
                (100 + i, send(&db, &limiter, &ann, 99_999, "hello?", &format!("x-{i}"), None).await)
            });
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
