//! `ssr`: the signed-in chat page of a conversation with many messages, at fixed concurrency levels.

use std::time::{Duration, Instant};

use crate::Ctx;
use crate::client::{self, err};
use crate::report::{ScenarioReport, Table};
use crate::stats::{Samples, ms};

#[derive(clap::Args, Debug, Clone)]
pub struct SsrArgs {
    /// Messages in the conversation (the page shows the newest page of them).
    #[arg(long, default_value_t = 60)]
    pub messages: usize,
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    pub concurrency: Vec<usize>,
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

impl SsrArgs {
    pub fn smoke() -> Self {
        Self { messages: 40, concurrency: vec![10, 50], duration: 1 }
    }
}

pub async fn run(ctx: &Ctx, args: &SsrArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let http = client::http_client();
    let base = &ctx.base_url;
    // One conversation between two users. The server allows 20 sends per user per 10 s, so more than 40
    // messages take a pause.
    let reader = client::register(&http, base, &format!("ssr{}r", ctx.nonce)).await?;
    let peer = client::register(&http, base, &format!("ssr{}p", ctx.nonce)).await?;
    let mut stored = 0;
    let mut n = 0;
    while stored < args.messages {
        let (from, to) = if n % 2 == 0 { (&peer, reader.id) } else { (&reader, peer.id) };
        let cid = format!("ssr{}-{n}", ctx.nonce);
        n += 1;
        match client::send_message(&http, base, from, to, &format!("history message {n}"), &cid, None).await? {
            Some(_) => stored += 1,
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
        if n > args.messages * 20 {
            return Err(err("could not store the conversation's messages"));
        }
    }
    r.figure("conversation", format!("{stored} messages, page /chat/{}", peer.id));

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

    let mut table = Table {
        headers: [
            "concurrency",
            "requests",
            "requests/s",
            "errors",
            "conn resets (retried)",
            "p50",
            "p95",
            "p99",
            "max",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![],
    };
    let mut total_errors = 0;
    let mut first_error: Option<String> = None;
    let mut total_resets = 0;
    for &c in &args.concurrency {
        let until = Instant::now() + Duration::from_secs(args.duration);
        let t0 = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..c {
            let (http, url, cookie) = (http.clone(), url.clone(), reader.cookie.clone());
            workers.push(tokio::spawn(async move {
                let mut lat = Samples::default();
                let mut errors = 0usize;
                let mut first_error = None;
                let mut resets = 0usize;
                while Instant::now() < until {
                    let t = Instant::now();
                    let mut outcome = get(&http, &url, &cookie).await;
                    // A keep-alive connection the server dropped mid-exchange (hyper IncompleteMessage): a
                    // browser retries such a GET on a fresh connection, so do we, and count it.
                    if matches!(&outcome, Err((_, true))) {
                        resets += 1;
                        outcome = get(&http, &url, &cookie).await;
                    }
                    let outcome = outcome.map_err(|(e, _)| e);
                    match outcome {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (lat, errors, first_error, resets)
            }));
        }
        let mut lat = Samples::default();
        let mut errors = 0;
        let mut resets = 0;
        for w in workers {
            let (l, e, first, reset) = w.await?;
            resets += reset;
            lat.extend(&l);
            errors += e;
            if let Some(f) = first.filter(|_| first_error.is_none()) {
                first_error = Some(f);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let s = lat.summary();
        total_errors += errors;
        total_resets += resets;
        table.rows.push(vec![
            c.to_string(),
            lat.len().to_string(),
            format!("{:.1}", lat.len() as f64 / secs),
            errors.to_string(),
            resets.to_string(),
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
        ]);
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

/// One page load. `Err((why, retryable))`: retryable when the server closed a reused connection mid-exchange.
async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> Result<(), (String, bool)> {
    match http.get(url).header("cookie", cookie).send().await {
        Ok(resp) if resp.status().is_success() => resp.bytes().await.map(|_| ()).map_err(|e| (e.to_string(), false)),
        Ok(resp) => Err((format!("HTTP {}", resp.status()), false)),
        Err(e) => {
            let detail = format!("{:?}", std::error::Error::source(&e));
            let retryable = detail.contains("IncompleteMessage");
            Err((format!("{e}: {detail}"), retryable))
        }
    }
}
