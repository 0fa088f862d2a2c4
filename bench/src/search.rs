//! `search`: message search over a large corpus that `server seed-corpus` loads into a fresh
//! database (SQLite, or a schema of its own on PostgreSQL) before the server starts; then signed-in
//! people search it side by side, each search a random person and a random kind of query.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sea_orm::ConnectionTrait;
use serde::Deserialize;

use crate::client::{self, User, err};
use crate::report::{Better, ScenarioReport, Table};
use crate::stats::{Samples, ms, ms_f64};
use crate::{Cli, Ctx};

/// The budget: p99 per search at most this, at 10 concurrent searches over 1,000,000 messages in
/// 10,000 conversations.
pub const BUDGET_P99: Duration = Duration::from_millis(30);
const BUDGET_MESSAGES: usize = 1_000_000;
const BUDGET_CONVERSATIONS: usize = 10_000;
const BUDGET_CONCURRENCY: usize = 10;

#[derive(clap::Args, Debug, Clone)]
pub struct SearchArgs {
    /// People in the corpus (each in conversations × 2 / users conversations on average).
    #[arg(long, default_value_t = 2_000)]
    pub users: usize,
    /// One-to-one conversations between random pairs of them.
    #[arg(long, default_value_t = 10_000)]
    pub conversations: usize,
    /// Messages, spread evenly over the conversations.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: usize,
    /// The corpus' random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// People who sign in and search, drawn from the corpus.
    #[arg(long, default_value_t = 50)]
    pub searchers: usize,
    /// Seconds of searching.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// A PostgreSQL server to load and serve the corpus from, in a fresh schema dropped afterwards,
    /// e.g. postgres://root@127.0.0.1:5432/test (default: SQLite in a temporary directory).
    #[arg(long)]
    pub database_url: Option<String>,
}

impl SearchArgs {
    pub fn smoke() -> Self {
        Self {
            users: 200,
            conversations: 400,
            messages: 20_000,
            seed: 1,
            concurrency: 10,
            searchers: 20,
            duration: 2,
            database_url: None,
        }
    }
}

/// A database made for one run: a temporary SQLite file, or a fresh PostgreSQL schema.
pub enum Database {
    Sqlite { dir: PathBuf },
    Postgres { server: String, schema: String },
}

impl Database {
    pub async fn create(postgres: Option<&str>, nonce: u64) -> Result<Self, client::Error> {
        match postgres {
            None => {
                let dir = std::env::temp_dir().join(format!("banter-bench-search-{}-{nonce}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                Ok(Self::Sqlite { dir })
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let schema = format!("bench_search_{}_{nonce}", std::process::id());
                let admin = sea_orm::Database::connect(url).await?;
                admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await?;
                admin.close().await?;
                Ok(Self::Postgres { server: url.to_owned(), schema })
            }
            Some(other) => Err(err(format!("--database-url {other:?}: only postgres:// URLs (SQLite is the default)"))),
        }
    }

    /// The server's DATABASE_URL.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { dir } => format!("sqlite://{}/banter.sqlite?mode=rwc", dir.display()),
            Self::Postgres { server, schema } => {
                let separator = if server.contains('?') { '&' } else { '?' };
                format!("{server}{separator}options=-c%20search_path%3D{schema}")
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { .. } => "SQLite (WAL), FTS5 index".to_owned(),
            Self::Postgres { server, schema } => {
                let host = server.split('@').next_back().unwrap_or(server);
                format!("PostgreSQL at {host}, schema {schema}, tsvector + GIN index")
            }
        }
    }

    /// Deletes the file or drops the schema; a failure is only reported.
    pub async fn remove(self) {
        match self {
            Self::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { server, schema } => {
                let dropped = async {
                    let admin = sea_orm::Database::connect(&server).await?;
                    admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await?;
                    admin.close().await
                };
                if let Err(e) = dropped.await {
                    eprintln!("banter-bench: could not drop schema {schema}: {e}");
                }
            }
        }
    }
}

/// A sample word of the corpus and how often it occurs in it.
#[derive(Debug, Clone, Deserialize)]
pub struct Word {
    pub word: String,
    pub occurrences: u64,
}

/// The line `server seed-corpus` ends with.
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    pub password: String,
    pub email_format: String,
    pub users: usize,
    pub conversations: usize,
    pub messages: usize,
    #[serde(default)]
    pub unread: usize,
    pub vocabulary: usize,
    pub seconds: f64,
    pub messages_seconds: f64,
    pub common: Vec<Word>,
    pub medium: Vec<Word>,
    pub rare: Vec<Word>,
    pub phrases: Vec<String>,
}

impl Summary {
    pub fn email(&self, i: usize) -> String {
        self.email_format.replace("{i}", &i.to_string())
    }
}

/// A corpus loaded for this run.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub summary: Summary,
    /// The whole `seed-corpus` command: start-up and migrations too.
    pub wall: Duration,
    pub database: String,
}

/// The size of a corpus `server seed-corpus` loads.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub users: usize,
    pub conversations: usize,
    pub messages: usize,
    pub seed: u64,
    /// The newest this many messages are left unread.
    pub unread: usize,
}

impl SearchArgs {
    pub fn shape(&self) -> Shape {
        Shape {
            users: self.users,
            conversations: self.conversations,
            messages: self.messages,
            seed: self.seed,
            unread: 0,
        }
    }
}

/// Runs `server seed-corpus` on `database` (it migrates the schema first, as the server does).
pub async fn seed(cli: &Cli, database: &Database, args: Shape) -> Result<Seeded, client::Error> {
    let mut command: Command = crate::banter_command(cli, crate::free_port()?, &database.url());
    command.arg("seed-corpus");
    for (flag, value) in [
        ("--users", args.users as u64),
        ("--conversations", args.conversations as u64),
        ("--messages", args.messages as u64),
        ("--seed", args.seed),
        ("--unread", args.unread as u64),
    ] {
        command.arg(flag).arg(value.to_string());
    }
    eprintln!(
        "banter-bench: seeding {} messages in {} conversations among {} people ...",
        args.messages, args.conversations, args.users
    );
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(err(format!("seed-corpus failed ({}): {stderr}{stdout}", output.status)));
    }
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| err("seed-corpus printed no summary"))?;
    let summary: Summary = serde_json::from_str(line).map_err(|e| err(format!("seed-corpus summary: {e}: {line}")))?;
    Ok(Seeded { summary, wall, database: database.describe() })
}

/// The kinds of search each searcher picks from at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Common,
    Medium,
    Rare,
    Prefix,
    Phrase,
    OneConversation,
}

const KINDS: [Kind; 6] = [Kind::Common, Kind::Medium, Kind::Rare, Kind::Prefix, Kind::Phrase, Kind::OneConversation];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Common => "a common word",
            Kind::Medium => "a medium word",
            Kind::Rare => "a rare word",
            Kind::Prefix => "a prefix (3–4 letters)",
            Kind::Phrase => "a quoted two-word phrase",
            Kind::OneConversation => "a common or medium word in one conversation",
        }
    }
}

/// A signed-in person and the people they have conversations with.
struct Searcher {
    user: User,
    peers: Vec<i64>,
}

/// What to search for, drawn from the seed's samples.
struct Words {
    common: Vec<String>,
    medium: Vec<String>,
    rare: Vec<String>,
    phrases: Vec<String>,
}

impl Words {
    fn from(summary: &Summary) -> Self {
        let words = |list: &[Word]| list.iter().map(|w| w.word.clone()).collect();
        Self {
            common: words(&summary.common),
            medium: words(&summary.medium),
            rare: words(&summary.rare),
            phrases: summary.phrases.clone(),
        }
    }

    /// The form of one search of `kind` by `who`.
    fn query(&self, kind: Kind, who: &Searcher, rng: &mut StdRng) -> Vec<(&'static str, String)> {
        let pick = |list: &[String], rng: &mut StdRng| list.choose(rng).cloned().unwrap_or_default();
        match kind {
            Kind::Common => vec![("q", pick(&self.common, rng))],
            Kind::Medium => vec![("q", pick(&self.medium, rng))],
            Kind::Rare => vec![("q", pick(&self.rare, rng))],
            Kind::Prefix => {
                let all: Vec<&String> = self.common.iter().chain(&self.medium).chain(&self.rare).collect();
                let long: Vec<&&String> = all.iter().filter(|w| w.chars().count() >= 5).collect();
                let word = long.choose(rng).map(|w| w.as_str()).unwrap_or_default();
                let letters = rng.gen_range(3..=4);
                vec![("q", word.chars().take(letters).collect())]
            }
            Kind::Phrase => vec![("q", format!("\"{}\"", pick(&self.phrases, rng)))],
            Kind::OneConversation => {
                let list = if rng.r#gen::<bool>() { &self.common } else { &self.medium };
                let mut form = vec![("q", pick(list, rng))];
                if let Some(peer) = who.peers.choose(rng) {
                    form.push(("peer_id", peer.to_string()));
                }
                form
            }
        }
    }
}

/// `/api/search`'s answer, as far as counting goes.
#[derive(Deserialize)]
struct Page {
    hits: Vec<serde::de::IgnoredAny>,
    has_more: bool,
}

/// `/api/contacts`' answer: the people I have conversations with are those with a last message.
#[derive(Deserialize)]
struct Contacts {
    people: Vec<Contact>,
}

#[derive(Deserialize)]
struct Contact {
    id: i64,
    #[serde(default)]
    kind: serde_json::Value,
    last_message_id: Option<i64>,
}

/// The people `user` has one-to-one conversations with, newest conversation first, as their
/// contact list gives them.
pub async fn partners(http: &reqwest::Client, base: &str, user: &User) -> Result<Vec<i64>, client::Error> {
    let contacts: Contacts =
        client::post_as(http, base, "/api/contacts", user, &[]).await?.ok_or_else(|| err("/api/contacts: HTTP 429"))?;
    Ok(contacts
        .people
        .iter()
        .filter(|c| c.last_message_id.is_some() && c.kind.get("type").is_none_or(|t| t == "person"))
        .map(|c| c.id)
        .collect())
}

/// Per kind of search: latencies, hits, and pages with more.
#[derive(Default, Clone)]
struct Tally {
    latency: Samples,
    hits: u64,
    more: u64,
}

#[derive(Default)]
struct Outcome {
    kinds: Vec<Tally>,
    errors: usize,
    first_error: Option<String>,
}

pub async fn run(ctx: &Ctx, args: &SearchArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let seeded =
        ctx.corpus.as_ref().ok_or_else(|| err("search needs --spawn: it loads its corpus before the server starts"))?;
    let corpus = &seeded.summary;
    let http = client::http_client();
    let base = ctx.base_url.as_str();

    r.figure("database", &seeded.database);
    r.figure(
        "corpus",
        format!(
            "{} messages in {} conversations among {} people, {}-word vocabulary (Zipf), 3–25 words a message",
            crate::report::group_thousands(corpus.messages as u64),
            crate::report::group_thousands(corpus.conversations as u64),
            crate::report::group_thousands(corpus.users as u64),
            crate::report::group_thousands(corpus.vocabulary as u64),
        ),
    );
    r.figure(
        "corpus load (server seed-corpus)",
        format!(
            "{:.1} s in all, messages {:.1} s ({} messages/s); command with start-up and migrations {:.1} s",
            corpus.seconds,
            corpus.messages_seconds,
            crate::report::group_thousands((corpus.messages as f64 / corpus.messages_seconds.max(1e-9)) as u64),
            seeded.wall.as_secs_f64()
        ),
    );
    r.metric("corpus load", corpus.seconds, "s", Better::Lower);

    // Sign in as people drawn from the corpus, and learn whom each talks with.
    let mut rng = StdRng::seed_from_u64(ctx.nonce);
    let mut chosen: Vec<usize> = (0..corpus.users).collect();
    chosen.shuffle(&mut rng);
    chosen.truncate(args.searchers.clamp(1, corpus.users));
    let mut searchers = Vec::with_capacity(chosen.len());
    for i in chosen {
        let user = client::sign_in(&http, base, &corpus.email(i), &corpus.password).await?;
        let peers = partners(&http, base, &user).await?;
        searchers.push(Searcher { user, peers });
    }
    let average_peers = searchers.iter().map(|s| s.peers.len()).sum::<usize>() as f64 / searchers.len() as f64;
    r.figure(
        "searchers",
        format!("{} people signed in, {average_peers:.1} conversations each on average", searchers.len()),
    );
    let words = Words::from(corpus);
    let sample = |list: &[Word]| {
        list.iter().take(3).map(|w| format!("{} ({})", w.word, w.occurrences)).collect::<Vec<_>>().join(", ")
    };
    r.figure(
        "query words (occurrences in the corpus)",
        format!("common {}; medium {}; rare {}", sample(&corpus.common), sample(&corpus.medium), sample(&corpus.rare)),
    );

    // One search per searcher first, timed apart: connections open, caches warm. A failure here
    // counts as one, but the run goes on, so a slow kind of search still shows in the table.
    let searchers = Arc::new(searchers);
    let words = Arc::new(words);
    let mut all = Outcome { kinds: vec![Tally::default(); KINDS.len()], ..Outcome::default() };
    let mut warm_up = Samples::default();
    for (n, who) in searchers.iter().enumerate() {
        let form = words.query(KINDS[n % KINDS.len()], who, &mut rng);
        let t = Instant::now();
        match search(&http, base, &who.user, &form).await {
            Ok(_) => warm_up.push(t.elapsed()),
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert(format!("warming up: {e}"));
            }
        }
    }
    let w = warm_up.summary();
    r.figure("warm-up (one search per searcher, not counted)", format!("p50 {}, max {}", ms(w.p50), ms(w.max)));

    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(args.duration);
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let (http, base, searchers, words) = (http.clone(), base.to_owned(), searchers.clone(), words.clone());
        let mut rng = StdRng::seed_from_u64(ctx.nonce.wrapping_mul(31).wrapping_add(w as u64));
        workers.push(tokio::spawn(async move {
            let mut out = Outcome { kinds: vec![Tally::default(); KINDS.len()], ..Outcome::default() };
            while Instant::now() < until {
                let k = rng.gen_range(0..KINDS.len());
                let who = &searchers[rng.gen_range(0..searchers.len())];
                let form = words.query(KINDS[k], who, &mut rng);
                let t = Instant::now();
                match search(&http, &base, &who.user, &form).await {
                    Ok(page) => {
                        let tally = &mut out.kinds[k];
                        tally.latency.push(t.elapsed());
                        tally.hits += page.hits.len() as u64;
                        tally.more += u64::from(page.has_more);
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    for w in workers {
        let out = w.await?;
        for (total, part) in all.kinds.iter_mut().zip(&out.kinds) {
            total.latency.extend(&part.latency);
            total.hits += part.hits;
            total.more += part.more;
        }
        all.errors += out.errors;
        all.first_error = all.first_error.or(out.first_error);
    }
    let secs = t0.elapsed().as_secs_f64();

    let mut overall = Tally::default();
    let mut table = Table::new(&["search", "searches", "hits per search", "with more pages"], true);
    for (kind, tally) in KINDS.iter().zip(&all.kinds) {
        overall.latency.extend(&tally.latency);
        overall.hits += tally.hits;
        overall.more += tally.more;
        table.rows.push(row(kind.label(), tally));
    }
    table.rows.push(row("all", &overall));
    let s = overall.latency.summary();
    let searches = overall.latency.len();
    r.figure(
        "load",
        format!("{} concurrent searches for {} s, {} searchers", args.concurrency, args.duration, searchers.len()),
    );
    r.figure("searches", format!("{searches} ({:.1}/s), {} errors", searches as f64 / secs, all.errors));
    r.figure("latency p50 / p95 / p99 / max", format!("{} / {} / {} / {}", ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max)));
    r.figure("hits per search (a page is 20)", format!("{:.1}", per_search(overall.hits, searches)));
    let budget = if corpus.messages >= BUDGET_MESSAGES
        && corpus.conversations == BUDGET_CONVERSATIONS
        && args.concurrency == BUDGET_CONCURRENCY
    {
        let verdict = if s.p99 <= BUDGET_P99 { "met" } else { "not met" };
        format!("{verdict}: p99 {}", ms(s.p99))
    } else {
        "not measured: the budget is for 1,000,000 messages in 10,000 conversations at 10 concurrent searches"
            .to_owned()
    };
    r.figure(&format!("budget: p99 ≤ {} at {BUDGET_CONCURRENCY} concurrent searches", ms(BUDGET_P99)), budget);
    r.metric("searches per second", searches as f64 / secs, "/s", Better::Higher);
    r.metric("search p50", ms_f64(s.p50), "ms", Better::Lower);
    r.metric("search p99", ms_f64(s.p99), "ms", Better::Lower);
    r.table = Some(table);

    if searches == 0 {
        r.fail("no search completed");
    }
    if all.errors > 0 {
        r.fail(format!("{} failed searches, first: {}", all.errors, all.first_error.unwrap_or_default()));
    }
    Ok(())
}

fn per_search(total: u64, searches: usize) -> f64 {
    if searches == 0 { 0.0 } else { total as f64 / searches as f64 }
}

fn row(label: &str, tally: &Tally) -> Vec<String> {
    let n = tally.latency.len();
    let mut cells = vec![
        label.to_owned(),
        n.to_string(),
        format!("{:.1}", per_search(tally.hits, n)),
        format!("{:.0} %", per_search(tally.more * 100, n)),
    ];
    cells.extend(tally.latency.summary().latency_cells());
    cells
}

/// One `POST /api/search`.
async fn search(http: &reqwest::Client, base: &str, user: &User, form: &[(&str, String)]) -> Result<Page, String> {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match client::post_as::<Page>(http, base, "/api/search", user, &form).await {
        Ok(Some(page)) => Ok(page),
        Ok(None) => Err("/api/search: HTTP 429".to_owned()),
        Err(e) => Err(format!("{e} (searching {form:?})")),
    }
}
