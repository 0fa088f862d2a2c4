//! `room`: one sender posting to a group whose every member has a socket on `private-room.{id}`;
//! send→last-delivery latency (from the HTTP send starting to the last member's socket getting the
//! message), exactly-once delivery to every member, and the server's CPU per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::Ctx;
use crate::client::{self, AbortOnDrop};
use crate::report::{Better, ScenarioReport, group_thousands};
use crate::stats::{self, Samples, ms, ms_f64};

/// The most members a group may have, its creator included (the server's `GROUP_MAX_MEMBERS`).
pub const GROUP_MAX_MEMBERS: usize = 1_000;

/// The budget: send→last delivery p99 at most this, to 1,000 members at 10 messages per second.
pub const BUDGET_P99: Duration = Duration::from_millis(50);
const BUDGET_MEMBERS: usize = 1_000;
const BUDGET_RATE: f64 = 10.0;

/// The event every member's socket gets for a new message.
const EVENT: &str = "NewChatMessage";

#[derive(clap::Args, Debug, Clone)]
pub struct RoomArgs {
    /// Members of the group, the sender included (2 to 1,000), each with one socket.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Messages per second, all from one sender.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// HTTP clients the sign-ups and subscriptions are spread over.
    #[arg(long, default_value_t = 8)]
    pub http_clients: usize,
}

impl RoomArgs {
    pub fn smoke() -> Self {
        Self { members: 50, rate: 10.0, duration: 2, http_clients: 2 }
    }
}

/// One receipt: message id, the member (index) whose socket got it, and when.
pub type Receipt = (i64, u32, Instant);

/// What the members' sockets got, against what was sent.
#[derive(Debug, Default)]
pub struct Tally {
    /// Send start → the last member's socket, for each message every member got.
    pub last: Samples,
    /// Send start → the first member's socket, for each message anyone got.
    pub first: Samples,
    /// Messages at least one member never got.
    pub incomplete: usize,
    /// (message, member) pairs that never arrived.
    pub lost: usize,
    /// Receipts beyond the first of a message on one member's socket.
    pub duplicated: usize,
    /// Receipts of ids nobody sent in this run.
    pub stray: usize,
}

/// Every sent message (id → when its HTTP send started) must reach each of `members` sockets
/// exactly once; its latency is that of the last of them.
pub fn tally(sent: &HashMap<i64, Instant>, members: usize, receipts: &[Receipt]) -> Tally {
    struct Seen {
        by: Vec<bool>,
        count: usize,
        first: Instant,
        last: Instant,
    }
    let mut seen: HashMap<i64, Seen> = HashMap::with_capacity(sent.len());
    let mut t = Tally::default();
    for &(id, member, at) in receipts {
        let member = member as usize;
        if !sent.contains_key(&id) || member >= members {
            t.stray += 1;
            continue;
        }
        let s = seen.entry(id).or_insert_with(|| Seen { by: vec![false; members], count: 0, first: at, last: at });
        if std::mem::replace(&mut s.by[member], true) {
            t.duplicated += 1;
            continue;
        }
        s.count += 1;
        s.first = s.first.min(at);
        s.last = s.last.max(at);
    }
    for (id, started) in sent {
        let Some(s) = seen.get(id) else {
            t.incomplete += 1;
            t.lost += members;
            continue;
        };
        t.first.push(s.first.saturating_duration_since(*started));
        if s.count == members {
            t.last.push(s.last.saturating_duration_since(*started));
        } else {
            t.incomplete += 1;
            t.lost += members - s.count;
        }
    }
    t
}

/// A client id for message `n` of run `nonce`, shaped like the UUID v4 a browser sends.
pub fn client_id(nonce: u64, n: u64) -> String {
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", nonce >> 28, (nonce >> 12) & 0xffff, nonce & 0xfff, 0, n)
}

pub async fn run(ctx: &Ctx, args: &RoomArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let members = args.members.clamp(2, GROUP_MAX_MEMBERS);
    if members != args.members {
        r.notes.push(format!("{} members asked for; a group has 2 to {GROUP_MAX_MEMBERS}", args.members));
    }
    let base = ctx.base_url.clone();
    let clients: Vec<reqwest::Client> = (0..args.http_clients.max(1)).map(|_| client::http_client()).collect();

    // 1. The members sign up; the first creates the group with all the others.
    let t0 = Instant::now();
    let users = client::register_many(&clients, &base, &format!("room{}u", ctx.nonce), members).await?;
    r.figure("members registered", format!("{} in {:.1} s", users.len(), t0.elapsed().as_secs_f64()));
    let sender = users[0].clone();
    let others: Vec<i64> = users[1..].iter().map(|u| u.id).collect();
    let room_id = client::create_group(&clients[0], &base, &sender, &format!("bench {}", ctx.nonce), &others).await?;

    // 2. Every member's socket, the sender's too, subscribed to the group's channel with auth
    // from /broadcasting/auth (which checks membership).
    let channel = format!("private-room.{room_id}");
    let t1 = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
    let mut readers = Vec::new();
    let subscribed = client::subscribe_users(
        ctx,
        &clients,
        &users,
        |_| channel.clone(),
        |i, _, ws, _| {
            let tx = tx.clone();
            let member = i as u32;
            // Raw frames, as in `fanout`: the time is taken before any parsing.
            readers.push(tokio::spawn(client::pump_raw(ws, move |frame| {
                let at = Instant::now();
                if frame.contains(EVENT)
                    && let Some(id) = client::raw_number(frame, "id")
                {
                    let _ = tx.send((id as i64, member, at));
                }
            })));
        },
    )
    .await;
    drop(tx);
    // Close every socket when the scenario ends, so later scenarios measure a server without them.
    let _close = AbortOnDrop(readers);
    let subscribed = subscribed?;
    r.figure(
        "group / sockets subscribed",
        format!("{members} members; {subscribed} sockets on {channel} in {:.1} s", t1.elapsed().as_secs_f64()),
    );

    // 3. One sender at a fixed rate (open loop). No socket_id: the sender's own socket gets each
    // message too, so every message goes to all `members` sockets.
    let rate = args.rate.max(0.1);
    let total = (rate * args.duration as f64).round().max(1.0) as usize;
    let sent: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let http = clients[0].clone();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let cpu0 = stats::server_cpu(&ctx.server_pids);
    let t2 = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        ticker.tick().await;
        let (http, base, sender) = (http.clone(), base.clone(), sender.clone());
        let (sent, errors, limited, first_error) = (sent.clone(), errors.clone(), limited.clone(), first_error.clone());
        let client_id = client_id(ctx.nonce, n as u64);
        tasks.push(tokio::spawn(async move {
            let body = format!("bench room message {n}");
            let started = Instant::now();
            match client::send_to_group(&http, &base, &sender, room_id, &body, &client_id, None).await {
                Ok(Some(m)) if m.room_id == Some(room_id) => {
                    sent.lock().unwrap().insert(m.id, started);
                }
                Ok(Some(m)) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().unwrap().get_or_insert(format!("message {} is not in room {room_id}", m.id));
                }
                Ok(None) => {
                    limited.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().unwrap().get_or_insert(e.to_string());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let send_secs = t2.elapsed().as_secs_f64();

    // 4. Drain: until every member got every message, or 10 s; then until 300 ms of quiet, for
    // late duplicates.
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let expected = sent.len() * members;
    let mut receipts: Vec<Receipt> = Vec::with_capacity(expected);
    let mut matched = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while matched < expected && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(x)) => {
                matched += usize::from(sent.contains_key(&x.0));
                receipts.push(x);
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    // What the servers used for the messages: sending, fanning out, delivering, not sign-ups.
    let cpu = stats::cpu_used(&cpu0, &stats::server_cpu(&ctx.server_pids));
    while let Ok(Some(x)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        receipts.push(x);
    }

    let t = tally(&sent, members, &receipts);
    let last = t.last.summary();
    let first = t.first.summary();
    let errors = errors.load(Ordering::Relaxed);
    let limited = limited.load(Ordering::Relaxed);
    let nth = format!("{}th", group_thousands(members as u64));
    r.figure("sender / target rate", format!("1 / {rate:.1} msg/s for {} s", args.duration));
    r.figure("sends persisted", format!("{} ({:.1}/s)", sent.len(), sent.len() as f64 / send_secs));
    r.figure("send errors / 429s", format!("{errors} / {limited}"));
    r.figure(&format!("send→last delivery (the {nth} member) p50 / p95 / p99 / max"), last.latency_cells().join(" / "));
    r.figure("send→first delivery p50 / p99", format!("{} / {}", ms(first.p50), ms(first.p99)));
    r.figure("lost / duplicated deliveries", format!("{} / {}", t.lost, t.duplicated));
    r.figure("stray receipts", t.stray);
    if let Some(total_cpu) = cpu.iter().copied().sum::<Option<Duration>>()
        && !sent.is_empty()
    {
        let per = total_cpu / sent.len() as u32;
        r.figure(
            "server CPU per message",
            format!(
                "{} ({:.2} s over {} messages × {members} deliveries)",
                ms(per),
                total_cpu.as_secs_f64(),
                sent.len()
            ),
        );
        if cpu.len() > 1 {
            // Against another Pusher server: its share (the fan-out) and Banter's (HTTP, database, publish).
            let parts: Vec<String> = ctx
                .server_pids
                .iter()
                .zip(&cpu)
                .map(|(pid, c)| {
                    let who = if Some(*pid) == ctx.server_pid { "Pusher server" } else { "Banter" };
                    format!("{who} {}", c.map(|c| ms(c / sent.len() as u32)).unwrap_or_else(|| "?".into()))
                })
                .collect();
            r.figure("server CPU per message, by process", parts.join(", "));
        }
        r.metric("server CPU per message", ms_f64(per), "ms", Better::Lower);
    }
    r.metric("send→last delivery p50", ms_f64(last.p50), "ms", Better::Lower);
    r.metric("send→last delivery p99", ms_f64(last.p99), "ms", Better::Lower);
    let budget = if members == BUDGET_MEMBERS && (rate - BUDGET_RATE).abs() < f64::EPSILON {
        let verdict = if last.p99 <= BUDGET_P99 { "met" } else { "not met" };
        format!("{verdict}: p99 {}", ms(last.p99))
    } else {
        "not measured: the budget is for 1,000 members at 10 msg/s".to_owned()
    };
    r.figure(&format!("budget: p99 ≤ {} to the 1,000th member at 10 msg/s", ms(BUDGET_P99)), budget);

    if errors > 0 {
        r.fail(format!("{errors} send errors, first: {}", first_error.lock().unwrap().clone().unwrap_or_default()));
    }
    if limited > 0 {
        r.fail(format!("{limited} sends rate-limited (429): is LIMIT_SENDS_PER_USER=0 set on the server?"));
    }
    if t.lost > 0 || t.duplicated > 0 {
        r.fail(format!(
            "{} deliveries lost ({} of {} messages incomplete), {} duplicated",
            t.lost,
            t.incomplete,
            sent.len(),
            t.duplicated
        ));
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
    fn latency_is_the_last_members_and_gaps_are_counted() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sent: HashMap<i64, Instant> = [(1, at(0)), (2, at(100)), (3, at(200))].into_iter().collect();
        let receipts = [
            // 1: all three members, the last after 30 ms, in any order.
            (1, 2, at(30)),
            (1, 0, at(5)),
            (1, 1, at(12)),
            // 2: all three, one of them twice.
            (2, 0, at(104)),
            (2, 1, at(107)),
            (2, 1, at(109)),
            (2, 2, at(108)),
            // 3: member 2 never gets it.
            (3, 0, at(201)),
            (3, 1, at(202)),
            // Never sent, and a member that does not exist.
            (9, 0, at(50)),
            (1, 7, at(50)),
        ];
        let t = tally(&sent, 3, &receipts);
        let last = t.last.summary();
        assert_eq!(last.count, 2, "only complete messages have a last delivery");
        assert_eq!(last.max, Duration::from_millis(30));
        assert_eq!(last.p50, Duration::from_millis(8));
        let first = t.first.summary();
        assert_eq!(first.count, 3);
        assert_eq!(first.max, Duration::from_millis(5));
        assert_eq!((t.incomplete, t.lost, t.duplicated, t.stray), (1, 1, 1, 2));
    }

    #[test]
    fn a_message_nobody_got_loses_every_delivery() {
        let sent: HashMap<i64, Instant> = [(1, Instant::now())].into_iter().collect();
        let t = tally(&sent, 1000, &[]);
        assert_eq!((t.incomplete, t.lost), (1, 1000));
        assert_eq!(t.last.len(), 0);
    }

    #[test]
    fn client_ids_look_like_uuid_v4_and_differ_per_message() {
        let id = client_id(123_456_789, 42);
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(groups[2].starts_with('4') && groups[3].starts_with('8'), "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'), "{id}");
        assert_ne!(client_id(123_456_789, 43), id);
        assert_ne!(client_id(123_456_790, 42), id);
    }
}
