//! `chat`: registered users with sockets on `private-user.{id}` (`private-encrypted-user.{id}`,
//! decrypting every event, when the server encrypts); a share of them send through the HTTP API;
//! send→receive latency, throughput, and exactly-once accounting by message id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::Ctx;
use crate::client::{self, AbortOnDrop, User};
use crate::report::{Better, ScenarioReport};
use crate::stats::{self, Samples, ms, ms_f64};

#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    /// Users, each with one socket.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Percentage of users that send.
    #[arg(long, default_value_t = 20)]
    pub sender_pct: usize,
    /// Total send rate, messages per second (capped at 1.8/s per sender: the server allows 20 per 10 s).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// HTTP clients the users are spread over.
    #[arg(long, default_value_t = 8)]
    pub http_clients: usize,
}

impl ChatArgs {
    pub fn smoke() -> Self {
        Self { users: 20, sender_pct: 50, rate: 10.0, duration: 3, http_clients: 2 }
    }
}

/// Retries of one send before it counts as failed: waits of 1, 2, 4, 8, 16 and 30 s at most.
const RETRIES: u32 = 6;

/// The wait before retry number `attempt` (0 is the first), as the browser's outbox waits
/// (`app/src/components/retry.rs`): 1 s doubling up to 30 s, less up to half of it at random
/// (`spread` in `0.0..1.0`), so sends refused together do not come back together.
fn retry_delay(attempt: u32, spread: f64) -> Duration {
    let full = Duration::from_secs(1 << attempt.min(5)).min(Duration::from_secs(30));
    full.mul_f64(1.0 - spread.clamp(0.0, 1.0) / 2.0)
}

/// What the sends met on the way and got past by trying again.
#[derive(Default)]
struct Retries {
    /// Answers of 503 (the server busy), each followed by a retry.
    busy: AtomicUsize,
    /// Requests that broke before an answer (connection refused or reset, timed out), each retried.
    broken: AtomicUsize,
    /// Sends stored on a retry.
    then_stored: AtomicUsize,
}

/// One receipt: message id, the user whose socket got it, and when.
type Receipt = (i64, i64, Instant);

#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub recipient: i64,
    pub started: Instant,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    pub lost: usize,
    pub duplicated: usize,
    /// Receipts of ids nobody sent in this run, or on a socket that is not the recipient's.
    pub stray: usize,
}

/// Every sent id must reach its recipient's socket exactly once.
pub fn account(sent: &HashMap<i64, Sent>, receipts: &[(i64, i64)]) -> Accounting {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut stray = 0;
    for (id, user) in receipts {
        match sent.get(id) {
            Some(s) if s.recipient == *user => *seen.entry(*id).or_default() += 1,
            _ => stray += 1,
        }
    }
    let lost = sent.keys().filter(|id| !seen.contains_key(id)).count();
    let duplicated = seen.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    Accounting { lost, duplicated, stray }
}

#[derive(Deserialize)]
struct EventData {
    id: i64,
}

pub async fn run(ctx: &Ctx, args: &ChatArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let base = ctx.base_url.clone();
    let clients: Vec<reqwest::Client> = (0..args.http_clients.max(1)).map(|_| client::http_client()).collect();
    let run_tag = format!("b{}", ctx.nonce);

    // 1. Register.
    let t0 = Instant::now();
    let users = client::register_many(&clients, &base, &format!("chat{run_tag}u"), args.users).await?;
    r.figure("users registered", format!("{} in {:.1} s", users.len(), t0.elapsed().as_secs_f64()));

    // 2. Sockets, subscribed to their user channel with auth from /broadcasting/auth.
    let t1 = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
    let mut socket_ids: HashMap<i64, String> = HashMap::new();
    let mut readers = Vec::new();
    let prefix = if ctx.encrypted { "private-encrypted-user" } else { "private-user" };
    let channel_of = |u: &User| format!("{prefix}.{}", u.id);
    let undecryptable = Arc::new(AtomicUsize::new(0));
    let connected = client::subscribe_users(ctx, &clients, &users, channel_of, |i, sid, ws, secret| {
        let uid = users[i].id;
        socket_ids.insert(uid, sid.as_str().to_owned());
        let tx = tx.clone();
        let undecryptable = undecryptable.clone();
        readers.push(tokio::spawn(client::pump(ws, move |event, data| {
            if event == "NewChatMessage" {
                // The receive time is taken after decrypting: that is when a browser could show it.
                let data = match &secret {
                    None => std::borrow::Cow::Borrowed(data),
                    Some(secret) => match secret.decrypt(data) {
                        Ok(plain) => std::borrow::Cow::Owned(plain),
                        Err(_) => {
                            undecryptable.fetch_add(1, Relaxed);
                            return;
                        }
                    },
                };
                let at = Instant::now();
                if let Ok(d) = serde_json::from_str::<EventData>(&data) {
                    let _ = tx.send((d.id, uid, at));
                }
            }
        })));
    })
    .await;
    drop(tx);
    // Close every socket when the scenario ends, so later scenarios measure a server without them.
    let _close = AbortOnDrop(readers);
    let connected = connected?;
    r.figure("sockets subscribed", format!("{connected} in {:.1} s", t1.elapsed().as_secs_f64()));

    // 3. Send at a fixed rate (open loop), round-robin over the senders.
    let senders = (users.len() * args.sender_pct / 100).clamp(1, users.len().max(1));
    let max_rate = senders as f64 * 1.8;
    let rate = args.rate.min(max_rate).max(0.1);
    if rate < args.rate {
        r.notes.push(format!("rate capped at {rate:.1}/s: {senders} senders × 1.8/s (server limit 20 per 10 s)"));
    }
    let sent: Arc<std::sync::Mutex<HashMap<i64, Sent>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(Retries::default());
    let first_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let users = Arc::new(users);
    let socket_ids = Arc::new(socket_ids);
    let total = (rate * args.duration as f64).round() as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let cpu0 = stats::server_cpu(&ctx.server_pids);
    let t2 = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        ticker.tick().await;
        let users = users.clone();
        let socket_ids = socket_ids.clone();
        let http = clients[n % clients.len()].clone();
        // The sender's own instance, as its browser would be.
        let base = ctx.at(n % senders).0.to_owned();
        let (sent, errors, limited, busy, first_error, retries) =
            (sent.clone(), errors.clone(), limited.clone(), busy.clone(), first_error.clone(), retries.clone());
        let client_id = format!("{run_tag}-{n}");
        tasks.push(tokio::spawn(async move {
            let from = &users[n % senders];
            // A recipient other than the sender, spread over everyone.
            let to = &users[(n % senders + 1 + (n / senders) % (users.len() - 1).max(1)) % users.len()];
            let sid = socket_ids.get(&from.id).map(String::as_str);
            let started = Instant::now();
            let body = format!("bench message {n}");
            // As a browser's outbox does: a send refused as busy or broken on the way goes again,
            // with the same client id (so it is stored once), after a growing wait.
            let mut attempt = 0;
            let outcome = loop {
                let outcome = client::send_message(&http, &base, from, to.id, &body, &client_id, sid).await;
                let Err(e) = &outcome else { break outcome };
                let counter = if e.is::<client::Busy>() {
                    &retries.busy
                } else if client::broke_on_the_way(e.as_ref()) {
                    &retries.broken
                } else {
                    break outcome;
                };
                if attempt == RETRIES {
                    break outcome;
                }
                counter.fetch_add(1, Relaxed);
                tokio::time::sleep(retry_delay(attempt, rand::random())).await;
                attempt += 1;
            };
            if attempt > 0 && matches!(outcome, Ok(Some(_))) {
                retries.then_stored.fetch_add(1, Relaxed);
            }
            match outcome {
                Ok(Some(m)) => {
                    sent.lock().unwrap().insert(m.id, Sent { recipient: m.recipient_id, started });
                }
                Ok(None) => {
                    limited.fetch_add(1, Relaxed);
                }
                Err(e) if e.is::<client::Busy>() => {
                    busy.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    errors.fetch_add(1, Relaxed);
                    first_error.lock().unwrap().get_or_insert(e.to_string());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let send_secs = t2.elapsed().as_secs_f64();

    // 4. Drain: wait until every sent id arrived or 5 s of quiet.
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let mut receipts: Vec<Receipt> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Ok(x) = rx.try_recv() {
            receipts.push(x);
        }
        let got: std::collections::HashSet<i64> = receipts.iter().map(|x| x.0).collect();
        if sent.keys().all(|id| got.contains(id)) || Instant::now() > deadline {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(x)) => receipts.push(x),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    // What the servers used for the messages (sending, publishing, delivering), not the sign-ups.
    let cpu: Option<Duration> = stats::cpu_used(&cpu0, &stats::server_cpu(&ctx.server_pids)).into_iter().sum();
    // Duplicates can only show up late: keep reading until the sockets have been quiet for 300 ms.
    while let Ok(Some(x)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        receipts.push(x);
    }

    let pairs: Vec<(i64, i64)> = receipts.iter().map(|(id, u, _)| (*id, *u)).collect();
    let acc = account(&sent, &pairs);
    let mut lat = Samples::default();
    let mut firsts: HashMap<i64, Instant> = HashMap::new();
    for (id, u, at) in &receipts {
        if sent.get(id).is_some_and(|s| s.recipient == *u) {
            firsts.entry(*id).and_modify(|t| *t = (*t).min(*at)).or_insert(*at);
        }
    }
    let mut timed = Vec::with_capacity(firsts.len());
    for (id, at) in &firsts {
        let latency = at.saturating_duration_since(sent[id].started);
        lat.push(latency);
        timed.push((sent[id].started.saturating_duration_since(t2), latency));
    }
    let s = lat.summary();
    let errors = errors.load(Relaxed);
    let limited = limited.load(Relaxed);
    let busy = busy.load(Relaxed);
    r.figure("senders / target rate", format!("{senders} / {rate:.1} msg/s for {} s", args.duration));
    r.figure("sends persisted", format!("{} ({:.1}/s)", sent.len(), sent.len() as f64 / send_secs));
    r.figure("send errors / 429s / 503s (busy)", format!("{errors} / {limited} / {busy}"));
    r.figure(
        "sent again: after a 503 / after breaking on the way; sends stored on a retry",
        format!(
            "{} / {}; {}",
            retries.busy.load(Relaxed),
            retries.broken.load(Relaxed),
            retries.then_stored.load(Relaxed)
        ),
    );
    r.figure("latency p50 / p95 / p99 / max", s.latency_cells().join(" / "));
    r.figure("lost / duplicated", format!("{} / {}", acc.lost, acc.duplicated));
    // Whether the tail is one stall or spread over the run: the seconds (by send time) holding the
    // most sends slower than 10 ms.
    let threshold = Duration::from_millis(10);
    let slow = stats::slow_seconds(&timed, threshold, 3);
    let over = timed.iter().filter(|(_, latency)| *latency > threshold).count();
    let worst: Vec<String> =
        slow.iter().map(|s| format!("{} of {} at {} s (max {})", s.over, s.count, s.at, ms(s.max))).collect();
    r.figure(
        "sends slower than 10 ms",
        if worst.is_empty() { "none".to_owned() } else { format!("{over}; worst seconds: {}", worst.join(", ")) },
    );
    r.metric("send→receive p50", ms_f64(s.p50), "ms", Better::Lower);
    r.metric("send→receive p95", ms_f64(s.p95), "ms", Better::Lower);
    r.metric("send→receive p99", ms_f64(s.p99), "ms", Better::Lower);
    r.metric("sends persisted per second", sent.len() as f64 / send_secs, "msg/s", Better::Higher);
    if let Some(cpu) = cpu.filter(|_| !sent.is_empty()) {
        let per = cpu / sent.len() as u32;
        r.figure(
            "server CPU per message",
            format!("{} ({:.2} s over {} messages)", ms(per), cpu.as_secs_f64(), sent.len()),
        );
        r.metric("server CPU per message", ms_f64(per), "ms", Better::Lower);
    }
    r.figure("stray receipts", acc.stray);
    let undecryptable = undecryptable.load(Relaxed);
    if ctx.encrypted {
        r.figure("channels", format!("private-encrypted-user.{{id}}; events that did not decrypt: {undecryptable}"));
    }
    if undecryptable > 0 {
        r.fail(format!("{undecryptable} events did not decrypt"));
    }
    if errors > 0 {
        r.fail(format!("{errors} send errors, first: {}", first_error.lock().unwrap().clone().unwrap_or_default()));
    }
    if limited > 0 {
        r.fail(format!("{limited} sends rate-limited (429)"));
    }
    if busy > 0 {
        r.fail(format!("{busy} sends still refused after {RETRIES} retries: the server was past its capacity (503)"));
    }
    if acc.lost > 0 || acc.duplicated > 0 {
        r.fail(format!("{} messages lost, {} duplicated", acc.lost, acc.duplicated));
    }
    if sent.is_empty() {
        r.fail("no message was sent");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lost_duplicated_and_stray() {
        let now = Instant::now();
        let sent: HashMap<i64, Sent> = [(1, 10), (2, 20), (3, 30)]
            .into_iter()
            .map(|(id, to)| (id, Sent { recipient: to, started: now }))
            .collect();
        // 1 once, 2 twice, 3 only on the wrong socket, 9 never sent.
        let receipts = [(1, 10), (2, 20), (2, 20), (3, 99), (9, 10)];
        assert_eq!(account(&sent, &receipts), Accounting { lost: 1, duplicated: 1, stray: 2 });
        let exact = [(1, 10), (2, 20), (3, 30)];
        assert_eq!(account(&sent, &exact), Accounting::default());
    }

    #[test]
    fn retries_wait_as_the_browser_does() {
        let secs = |attempt, spread| retry_delay(attempt, spread).as_secs_f64();
        let full: Vec<f64> = (0..RETRIES).map(|a| secs(a, 0.0)).collect();
        assert_eq!(full, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]);
        assert_eq!(secs(40, 0.0), 30.0, "never longer than 30 s");
        assert_eq!(secs(2, 1.0), 2.0, "shortened by half at most");
        assert_eq!(secs(2, 0.5), 3.0);
    }
}
