//! `server seed-corpus`: a large synthetic corpus (people, one-to-one conversations, messages in
//! a Zipf-like vocabulary) written straight into the database, for measuring search at scale
//! (`banter-bench search`). The search index follows by itself: FTS5 triggers on SQLite, the
//! generated `tsvector` column on PostgreSQL.

use std::collections::HashSet;
use std::time::Instant;

use app::ssr::entities::{messages, users};
use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, QuerySelect, TransactionTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

/// Every seeded person's password (one argon2 hash, computed once and shared).
pub const CORPUS_PASSWORD: &str = "corpus-password";
const EMAIL_DOMAIN: &str = "bench.invalid";
/// Distinct words the messages are drawn from.
const VOCABULARY: usize = 5_000;
/// The Zipf exponent: the word of rank r is drawn with weight 1 / r^s.
const ZIPF_S: f64 = 1.05;
/// Rows per INSERT: 8 parameters a row stays under SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 4_000;
/// Rows per transaction.
const ROWS_PER_TRANSACTION: usize = 40_000;
/// The corpus' messages are spread over this many days up to now.
const SPAN_DAYS: i64 = 365;
/// How many sample words of each frequency band, and phrases, the summary gives.
const SAMPLES: usize = 8;

fn email(i: usize) -> String {
    format!("corpus{i}@{EMAIL_DOMAIN}")
}

/// What to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corpus {
    pub users: usize,
    pub conversations: usize,
    pub messages: usize,
    pub seed: u64,
    /// The newest this many messages are left unread by their recipients (the rest were read a
    /// minute after they were sent).
    pub unread: usize,
}

impl Corpus {
    /// Reads `--users U --conversations C --messages M [--seed S] [--unread N]`.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut corpus = Self { users: 0, conversations: 0, messages: 0, seed: 1, unread: 0 };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |what: &str| value.parse::<u64>().map_err(|_| format!("{what}: {value:?} is not a number"));
            match flag.as_str() {
                "--users" => corpus.users = number("--users")? as usize,
                "--conversations" => corpus.conversations = number("--conversations")? as usize,
                "--messages" => corpus.messages = number("--messages")? as usize,
                "--seed" => corpus.seed = number("--seed")?,
                "--unread" => corpus.unread = number("--unread")? as usize,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if corpus.users < 2 || corpus.conversations == 0 || corpus.messages == 0 {
            return Err(
                "usage: server seed-corpus --users U (≥ 2) --conversations C --messages M [--seed S] [--unread N]"
                    .into(),
            );
        }
        if corpus.unread > corpus.messages {
            return Err(format!("--unread {} is more than the {} messages", corpus.unread, corpus.messages));
        }
        let pairs = corpus.users as u128 * (corpus.users as u128 - 1) / 2;
        if corpus.conversations as u128 > pairs / 2 {
            return Err(format!(
                "{} users make too few distinct pairs for {} conversations",
                corpus.users, corpus.conversations
            ));
        }
        Ok(corpus)
    }
}

/// Synthetic words built from syllables, shortest first: the shortest are the most frequent, as
/// in real language, and words share beginnings, so prefixes match several of them.
fn vocabulary(rng: &mut StdRng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch", "cl",
        "dr", "fl", "gr", "pl", "pr", "sh", "sl", "st", "th", "tr",
    ];
    const NUCLEI: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "oo", "ou"];
    const CODAS: &[&str] = &["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"];
    let mut seen = HashSet::new();
    let mut words = Vec::with_capacity(VOCABULARY);
    while words.len() < VOCABULARY {
        // One to four syllables, fewer more often.
        let syllables = match rng.gen_range(0..10) {
            0..=1 => 1,
            2..=5 => 2,
            6..=8 => 3,
            _ => 4,
        };
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(ONSETS[rng.gen_range(0..ONSETS.len())]);
            word.push_str(NUCLEI[rng.gen_range(0..NUCLEI.len())]);
            word.push_str(CODAS[rng.gen_range(0..CODAS.len())]);
        }
        if word.len() >= 2 && seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words.sort_by_key(String::len);
    words
}

/// Draws word ranks with weight 1 / (rank + 1)^s.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|r| {
                total += 1.0 / (r as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let at = rng.gen_range(0.0..*self.cumulative.last().unwrap_or(&1.0));
        self.cumulative.partition_point(|&c| c <= at).min(self.cumulative.len() - 1)
    }
}

/// Creates the corpus in `db` (migrated, without these people yet) and returns the one-line JSON
/// summary `banter-bench search` reads: the password, the emails, and words to search for.
pub async fn seed_corpus(db: &DatabaseConnection, corpus: Corpus) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    let db_err = |e: sea_orm::DbErr| format!("database: {e}");
    let existing = users::Entity::find()
        .filter(users::Column::Email.like(format!("corpus%@{EMAIL_DOMAIN}")))
        .count(db)
        .await
        .map_err(db_err)?;
    if existing > 0 {
        return Err(format!(
            "this database already holds {existing} corpus accounts (corpus…@{EMAIL_DOMAIN}); seed a fresh one"
        ));
    }
    let mut rng = StdRng::seed_from_u64(corpus.seed);
    let password_hash = app::ssr::password::hash(CORPUS_PASSWORD.to_owned()).await.map_err(|e| e.to_string())?;

    // People.
    let now = Utc::now();
    let people = (0..corpus.users).map(|i| users::ActiveModel {
        name: Set(format!("Corpus {i}")),
        email: Set(email(i)),
        password_hash: Set(password_hash.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    });
    insert_in_batches(db, people).await?;
    let mut ids: Vec<(String, i64)> = users::Entity::find()
        .select_only()
        .column(users::Column::Email)
        .column(users::Column::Id)
        .filter(users::Column::Email.like(format!("corpus%@{EMAIL_DOMAIN}")))
        .into_tuple()
        .all(db)
        .await
        .map_err(db_err)?;
    ids.sort_by_key(|(email, _)| {
        email.trim_start_matches("corpus").split('@').next().unwrap_or("").parse::<usize>().ok()
    });
    let user_id: Vec<i64> = ids.into_iter().map(|(_, id)| id).collect();
    if user_id.len() != corpus.users {
        return Err(format!("expected {} corpus accounts, found {}", corpus.users, user_id.len()));
    }
    let users_seconds = started.elapsed().as_secs_f64();

    // Conversations: distinct pairs of distinct people.
    let mut pairs = HashSet::with_capacity(corpus.conversations);
    let mut conversations = Vec::with_capacity(corpus.conversations);
    while conversations.len() < corpus.conversations {
        let a = rng.gen_range(0..corpus.users);
        let b = rng.gen_range(0..corpus.users);
        if a != b && pairs.insert((a.min(b), a.max(b))) {
            conversations.push((user_id[a], user_id[b]));
        }
    }

    // Messages, oldest first so ids and created_at rise together.
    let words = vocabulary(&mut rng);
    let zipf = Zipf::new(words.len(), ZIPF_S);
    let mut occurrences = vec![0u64; words.len()];
    let mut phrases: Vec<String> = Vec::new();
    let phrase_every = (corpus.messages / SAMPLES).max(1);
    let span = Duration::days(SPAN_DAYS);
    let first = now - span;
    let step_ms = span.num_milliseconds() / corpus.messages as i64;
    let messages_started = Instant::now();
    let read = corpus.messages - corpus.unread;
    let rows = (0..corpus.messages).map(|i| {
        let (a, b) = conversations[rng.gen_range(0..conversations.len())];
        let (from, to) = if rng.r#gen::<bool>() { (a, b) } else { (b, a) };
        let count = rng.gen_range(3..=25);
        let ranks: Vec<usize> = (0..count).map(|_| zipf.sample(&mut rng)).collect();
        for &r in &ranks {
            occurrences[r] += 1;
        }
        if i % phrase_every == 0 && phrases.len() < SAMPLES {
            phrases.push(format!("{} {}", words[ranks[0]], words[ranks[1]]));
        }
        let at = first + Duration::milliseconds(step_ms * i as i64);
        messages::ActiveModel {
            body: Set(sentence(&words, &ranks, rng.gen_range(0..4))),
            user_id: Set(from),
            recipient_id: Set(Some(to)),
            client_id: Set(format!("corpus-{i}")),
            kind: Set("text".into()),
            read_at: Set((i < read).then(|| at + Duration::minutes(1))),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        }
    });
    let before = last_message_id(db).await.map_err(db_err)?;
    insert_in_batches(db, rows).await?;
    // Inserted directly, so put in the search index here (SQLite; PostgreSQL's follows the rows).
    migration::search_index::index_after(db, before).await.map_err(db_err)?;
    let messages_seconds = messages_started.elapsed().as_secs_f64();

    // The planner's statistics, as PostgreSQL's autovacuum would gather them after such a load.
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("VACUUM (ANALYZE) messages").await.map_err(db_err)?;
        db.execute_unprepared("VACUUM (ANALYZE) users").await.map_err(db_err)?;
    }
    app::ssr::checkpoint_sqlite(db).await.map_err(db_err)?;

    // Sample words by how often they occur: the most frequent, some around rank 200, the rarest
    // that occur at all.
    let band = |ranks: &mut dyn Iterator<Item = usize>| -> Vec<serde_json::Value> {
        ranks
            .filter(|&r| occurrences[r] > 0)
            .take(SAMPLES)
            .map(|r| json!({ "word": words[r], "occurrences": occurrences[r] }))
            .collect()
    };
    let mut by_frequency: Vec<usize> = (0..words.len()).collect();
    by_frequency.sort_by_key(|&r| std::cmp::Reverse(occurrences[r]));
    let middle = words.len().min(200);
    Ok(json!({
        "password": CORPUS_PASSWORD,
        "email_format": format!("corpus{{i}}@{EMAIL_DOMAIN}"),
        "emails": format!("{} … {}", email(0), email(corpus.users - 1)),
        "users": corpus.users,
        "conversations": corpus.conversations,
        "messages": corpus.messages,
        "seed": corpus.seed,
        "unread": corpus.unread,
        "vocabulary": words.len(),
        "seconds": started.elapsed().as_secs_f64(),
        "users_seconds": users_seconds,
        "messages_seconds": messages_seconds,
        "common": band(&mut by_frequency.iter().copied()),
        "medium": band(&mut by_frequency.iter().copied().skip(middle)),
        "rare": band(&mut by_frequency.iter().rev().copied()),
        "phrases": phrases,
    }))
}

/// A message body: the words in order, the first capitalised, with an ending.
fn sentence(words: &[String], ranks: &[usize], ending: usize) -> String {
    let mut body = String::with_capacity(ranks.len() * 8);
    for (n, &r) in ranks.iter().enumerate() {
        if n == 0 {
            let mut chars = words[r].chars();
            body.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            body.push_str(chars.as_str());
        } else {
            body.push(' ');
            body.push_str(&words[r]);
        }
    }
    body.push_str([".", "?", "!", ""][ending]);
    body
}

/// Inserts `rows` with multi-row INSERTs of [`ROWS_PER_STATEMENT`], [`ROWS_PER_TRANSACTION`] a
/// transaction, checkpointing SQLite's write-ahead log after each (the server does that, not
/// SQLite, so a long load would otherwise grow it without bound).
/// The newest message's id (0 without any).
async fn last_message_id(db: &DatabaseConnection) -> Result<i64, sea_orm::DbErr> {
    let last: Option<Option<i64>> =
        messages::Entity::find().select_only().column_as(messages::Column::Id.max(), "id").into_tuple().one(db).await?;
    Ok(last.flatten().unwrap_or(0))
}

async fn insert_in_batches<A>(db: &DatabaseConnection, rows: impl Iterator<Item = A>) -> Result<(), String>
where
    A: ActiveModelTrait + Send,
{
    let db_err = |e: sea_orm::DbErr| format!("database: {e}");
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let txn = db.begin().await.map_err(db_err)?;
        for _ in 0..ROWS_PER_TRANSACTION / ROWS_PER_STATEMENT {
            let batch: Vec<A> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
            if batch.is_empty() {
                break;
            }
            A::Entity::insert_many(batch).exec_without_returning(&txn).await.map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)?;
        app::ssr::checkpoint_sqlite(db).await.map_err(db_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Corpus;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn unread_is_optional_and_never_more_than_the_messages() {
        let corpus = Corpus::from_args(&args("--users 4 --conversations 1 --messages 10")).unwrap();
        assert_eq!(corpus.unread, 0);
        let corpus = Corpus::from_args(&args("--users 4 --conversations 1 --messages 10 --unread 10")).unwrap();
        assert_eq!(corpus.unread, 10);
        let err = Corpus::from_args(&args("--users 4 --conversations 1 --messages 10 --unread 11")).unwrap_err();
        assert_eq!(err, "--unread 11 is more than the 10 messages");
    }
}
