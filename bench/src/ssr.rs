//! `ssr`: the signed-in chat page of a conversation with many messages, at fixed concurrency levels.

use std::time::{Duration, Instant};

use crate::Ctx;
use crate::client::{self, err};
use crate::report::{Better, ScenarioReport, Table};
use crate::stats::Samples;

#[derive(clap::Args, Debug, Clone)]
pub struct SsrArgs {
    /// Messages in the conversation (the page shows the newest page of them).
    #[arg(long, default_value_t = 60)]
    pub messages: usize,
    /// People in the reader's contact list (the conversation's peer and others who wrote once).
    #[arg(long, default_value_t = 20)]
    pub contacts: usize,
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    pub concurrency: Vec<usize>,
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

impl SsrArgs {
    pub fn smoke() -> Self {
        Self { messages: 40, contacts: 3, concurrency: vec![10, 50], duration: 1 }
    }
}

pub async fn run(ctx: &Ctx, args: &SsrArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let http = client::http_client();
    let base = &ctx.base_url;
    let (reader, peer) = seed_conversation(ctx, &http, args.messages, args.contacts, r).await?;

    let url = format!("{base}/chat/{}", peer.id);
    // Check once that it really is the signed-in page.
    let first = http.get(&url).header("cookie", &reader.cookie).send().await?;
    let status = first.status();
    let html = first.text().await?;
    if !status.is_success() {
        return Err(err(format!("GET /chat/{}: HTTP {status}", peer.id)));
    }
    r.figure("page size", crate::stats::bytes(html.len() as u64));
    if !html.contains("history message") {
        r.notes.push("the page HTML does not contain the messages' text (rendered client-side?)".into());
    }

    let mut table = page_table();
    let mut total_errors = 0;
    let mut first_error: Option<String> = None;
    let mut total_resets = 0;
    // The chat page at each concurrency; then, for scale, the sign-in page, which the server renders
    // without touching the database.
    let chat_page = format!("/chat/{}", peer.id);
    let mut loads: Vec<(&str, &str, usize)> =
        args.concurrency.iter().map(|&c| (chat_page.as_str(), reader.cookie.as_str(), c)).collect();
    if let Some(&c) = args.concurrency.first() {
        loads.push(("/login", "", c));
    }
    for (path, cookie, c) in loads {
        let url = format!("{base}{path}");
        let m = measure(&http, &url, cookie, c, Duration::from_secs(args.duration)).await?;
        total_errors += m.errors;
        total_resets += m.resets;
        if path == chat_page {
            m.report(r, c);
        }
        let page = if path == chat_page {
            format!("chat, 50 messages, {} listed", args.contacts)
        } else {
            format!("{path} (no database)")
        };
        table.rows.push(m.row(page, c));
        if let Some(f) = m.first_error.filter(|_| first_error.is_none()) {
            first_error = Some(f);
        }
    }
    r.table = Some(table);
    if total_resets > 0 {
        // Seen on Banter: a panic in the page's render task drops the connection without a response.
        r.fail(format!(
            "{total_resets} page loads got no response: the server closed the connection mid-request (hyper \
             IncompleteMessage; a panicking render task does this, see the server log); each was retried once \
             for the figures"
        ));
    }
    if total_errors > 0 {
        r.fail(format!("{total_errors} failed page requests, first: {}", first_error.unwrap_or_default()));
    }
    Ok(())
}

/// One conversation of `messages` messages between two new users, `(reader, peer)`: the reader's
/// page of it is `/chat/{peer.id}`. `contacts - 1` more people write the reader once each, so that
/// the contact list holds `contacts` conversations.
pub async fn seed_conversation(
    ctx: &Ctx,
    http: &reqwest::Client,
    messages: usize,
    contacts: usize,
    r: &mut ScenarioReport,
) -> Result<(client::User, client::User), client::Error> {
    let base = &ctx.base_url;
    let reader = client::register(http, base, &format!("{}{}r", r.name, ctx.nonce)).await?;
    let peer = client::register(http, base, &format!("{}{}p", r.name, ctx.nonce)).await?;
    // The server allows 20 sends per user per 10 s, so more than 40 messages take a pause.
    let mut stored = 0;
    let mut n = 0;
    while stored < messages {
        let (from, to) = if n % 2 == 0 { (&peer, reader.id) } else { (&reader, peer.id) };
        let cid = format!("{}{}-{n}", r.name, ctx.nonce);
        n += 1;
        match client::send_message(http, base, from, to, &format!("history message {n}"), &cid, None).await? {
            Some(_) => stored += 1,
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
        if n > messages * 20 {
            return Err(err("could not store the conversation's messages"));
        }
    }
    let others = client::register_many(
        std::slice::from_ref(http),
        base,
        &format!("{}{}c", r.name, ctx.nonce),
        contacts.saturating_sub(1),
    )
    .await?;
    for (i, other) in others.iter().enumerate() {
        let cid = format!("{}{}-c{i}", r.name, ctx.nonce);
        if client::send_message(http, base, other, reader.id, &format!("hello from contact {i}"), &cid, None)
            .await?
            .is_none()
        {
            return Err(err("a contact's first message was refused"));
        }
    }
    r.figure(
        "conversation",
        format!("{stored} messages, page /chat/{}, {} conversations in the contact list", peer.id, others.len() + 1),
    );
    Ok((reader, peer))
}

/// The table of the page scenarios: a row per page and concurrency.
pub fn page_table() -> Table {
    Table::new(&["page", "concurrency", "requests", "requests/s", "errors", "conn resets (retried)"], true)
}

impl Measured {
    /// Page loads per second and their p99, as the report's metrics for `concurrency`.
    pub fn report(&self, r: &mut ScenarioReport, concurrency: usize) {
        let per_second = self.latency.len() as f64 / self.secs;
        let p99 = crate::stats::ms_f64(self.latency.summary().p99);
        r.metric(&format!("page loads per second at {concurrency} connections"), per_second, "/s", Better::Higher);
        r.metric(&format!("page p99 at {concurrency} connections"), p99, "ms", Better::Lower);
    }

    /// `page`'s row of [`page_table`].
    pub fn row(&self, page: String, concurrency: usize) -> Vec<String> {
        let mut row = vec![
            page,
            concurrency.to_string(),
            self.latency.len().to_string(),
            format!("{:.1}", self.latency.len() as f64 / self.secs),
            self.errors.to_string(),
            self.resets.to_string(),
        ];
        row.extend(self.latency.summary().latency_cells());
        row
    }
}

/// What `concurrency` clients loading `url` back to back for `duration` saw.
pub struct Measured {
    pub latency: Samples,
    pub errors: usize,
    pub first_error: Option<String>,
    pub resets: usize,
    pub secs: f64,
}

pub async fn measure(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Measured, client::Error> {
    let until = Instant::now() + duration;
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, cookie) = (http.clone(), url.to_owned(), cookie.to_owned());
        workers.push(tokio::spawn(async move {
            let mut m = Measured { latency: Samples::default(), errors: 0, first_error: None, resets: 0, secs: 0.0 };
            while Instant::now() < until {
                let t = Instant::now();
                let mut outcome = get(&http, &url, &cookie).await;
                // A keep-alive connection the server dropped mid-exchange (hyper IncompleteMessage): a
                // browser retries such a GET on a fresh connection, so do we, and count it.
                if matches!(&outcome, Err((_, true))) {
                    m.resets += 1;
                    outcome = get(&http, &url, &cookie).await;
                }
                match outcome {
                    Ok(()) => m.latency.push(t.elapsed()),
                    Err((e, _)) => {
                        m.errors += 1;
                        m.first_error.get_or_insert(e);
                    }
                }
            }
            m
        }));
    }
    let mut all = Measured { latency: Samples::default(), errors: 0, first_error: None, resets: 0, secs: 0.0 };
    for w in workers {
        let m = w.await?;
        all.latency.extend(&m.latency);
        all.errors += m.errors;
        all.resets += m.resets;
        all.first_error = all.first_error.or(m.first_error);
    }
    all.secs = t0.elapsed().as_secs_f64();
    Ok(all)
}

/// One page load. `Err((why, retryable))`: retryable when the server closed a reused connection mid-exchange.
async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> Result<(), (String, bool)> {
    let request = if cookie.is_empty() { http.get(url) } else { http.get(url).header("cookie", cookie) };
    match request.send().await {
        Ok(resp) if resp.status().is_success() => resp.bytes().await.map(|_| ()).map_err(|e| (e.to_string(), false)),
        Ok(resp) => Err((format!("HTTP {}", resp.status()), false)),
        Err(e) => {
            let detail = format!("{:?}", std::error::Error::source(&e));
            let retryable = detail.contains("IncompleteMessage");
            Err((format!("{e}: {detail}"), retryable))
        }
    }
}
