//! `history`: the signed-in chat page of someone with a long history. `server seed-corpus` loads a
//! few people with tens of thousands of messages each before the server starts (as for `search`);
//! then the person in the most conversations opens their newest one, back to back, as `ssr` does
//! with a 60-message conversation. A page that reads a person's or a conversation's whole history
//! shows here as a fall from the `ssr` figure; one that reads only what it shows does not.

use std::time::Duration;

use crate::Ctx;
use crate::client::{self, err};
use crate::report::ScenarioReport;
use crate::search::Shape;
use crate::ssr::{measure, page_table};

#[derive(clap::Args, Debug, Clone)]
pub struct HistoryArgs {
    /// People in the corpus.
    #[arg(long, default_value_t = 11)]
    pub users: usize,
    /// One-to-one conversations between random pairs of them (at most a quarter of the pairs).
    #[arg(long, default_value_t = 13)]
    pub conversations: usize,
    /// Messages, spread evenly over the conversations.
    #[arg(long, default_value_t = 260_000)]
    pub messages: usize,
    /// The newest this many messages of the corpus are left unread by their recipients, so the
    /// reader has unread messages in each conversation (about unread × the reader's share of the
    /// conversations ÷ 2 in all), as someone back from a holiday would.
    #[arg(long, default_value_t = 0)]
    pub unread: usize,
    /// Page loads in flight at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Seconds of page loads.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// A PostgreSQL server to load and serve the corpus from, in a fresh schema dropped afterwards
    /// (default: SQLite in a temporary directory).
    #[arg(long)]
    pub database_url: Option<String>,
}

impl HistoryArgs {
    pub fn smoke() -> Self {
        Self {
            users: 6,
            conversations: 7,
            messages: 20_000,
            unread: 2_000,
            concurrency: 10,
            duration: 1,
            database_url: None,
        }
    }

    pub fn shape(&self) -> Shape {
        Shape {
            users: self.users,
            conversations: self.conversations,
            messages: self.messages,
            seed: 1,
            unread: self.unread,
        }
    }
}

pub async fn run(ctx: &Ctx, args: &HistoryArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let seeded = ctx
        .corpus
        .as_ref()
        .ok_or_else(|| err("history needs --spawn: it loads its corpus before the server starts"))?;
    let corpus = &seeded.summary;
    let http = client::http_client();
    let base = ctx.base_url.as_str();
    r.figure("database", &seeded.database);

    // The reader: the person in the most conversations (the first such, so runs agree).
    let mut reader = None;
    for i in 0..corpus.users {
        let user = client::sign_in(&http, base, &corpus.email(i), &corpus.password).await?;
        let peers = crate::search::partners(&http, base, &user).await?;
        if reader.as_ref().is_none_or(|(_, best): &(client::User, Vec<i64>)| peers.len() > best.len()) {
            reader = Some((user, peers));
        }
    }
    let (reader, peers) = reader.ok_or_else(|| err("the corpus has nobody in it"))?;
    let peer = *peers.first().ok_or_else(|| err("nobody in the corpus has a conversation"))?;
    let per_conversation = corpus.messages / corpus.conversations.max(1);
    r.figure(
        "corpus",
        format!(
            "{} messages in {} conversations among {} people{}, loaded in {:.1} s",
            crate::report::group_thousands(corpus.messages as u64),
            corpus.conversations,
            corpus.users,
            unread_note(corpus.unread),
            corpus.seconds
        ),
    );
    r.figure(
        "the reader",
        format!(
            "in {} conversations of about {} messages each (about {} messages in all); the page: /chat/{peer}, \
             their newest conversation",
            peers.len(),
            crate::report::group_thousands(per_conversation as u64),
            crate::report::group_thousands((per_conversation * peers.len()) as u64),
        ),
    );

    let url = format!("{base}/chat/{peer}");
    let first = http.get(&url).header("cookie", &reader.cookie).send().await?;
    let status = first.status();
    let html = first.text().await?;
    if !status.is_success() {
        return Err(err(format!("GET /chat/{peer}: HTTP {status}")));
    }
    r.figure("page size", crate::stats::bytes(html.len() as u64));

    let m = measure(&http, &url, &reader.cookie, args.concurrency, Duration::from_secs(args.duration)).await?;
    m.report(r, args.concurrency);
    let mut table = page_table();
    let page = format!(
        "chat, {} conversations of ~{} messages{}",
        peers.len(),
        crate::report::group_thousands(per_conversation as u64),
        unread_note(corpus.unread)
    );
    table.rows.push(m.row(page, args.concurrency));
    r.table = Some(table);
    if m.resets > 0 {
        r.fail(format!("{} page loads got no response (the server closed the connection mid-request)", m.resets));
    }
    if m.errors > 0 {
        r.fail(format!("{} failed page requests, first: {}", m.errors, m.first_error.unwrap_or_default()));
    }
    Ok(())
}

/// ", the newest N unread" when the corpus left some unread.
fn unread_note(unread: usize) -> String {
    if unread == 0 {
        String::new()
    } else {
        format!(", the newest {} unread", crate::report::group_thousands(unread as u64))
    }
}
