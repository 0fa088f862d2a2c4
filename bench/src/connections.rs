//! `connections`: ramp to S idle sockets; the server's RSS before and after, per connection.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::Ctx;
use crate::client;
use crate::report::{Better, ScenarioReport};
use crate::stats::{bytes, rss_bytes};

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionsArgs {
    #[arg(long, default_value_t = 15_000)]
    pub sockets: usize,
    /// Connections opened at once during the ramp.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to hold the sockets open once all are up.
    #[arg(long, default_value_t = 5)]
    pub hold_secs: u64,
    /// Subscribe each socket to a public channel (one of 100).
    #[arg(long)]
    pub subscribe: bool,
}

impl ConnectionsArgs {
    pub fn smoke() -> Self {
        Self { sockets: 200, concurrency: 50, hold_secs: 1, subscribe: true }
    }
}

pub async fn run(ctx: &Ctx, args: &ConnectionsArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let pid = ctx.server_pid;
    let before = pid.and_then(rss_bytes);
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(args.sockets);
    let mut failed = 0usize;
    let mut first_error = None;
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let mut milestones = Vec::new();
    while next < args.sockets || !pending.is_empty() {
        while next < args.sockets && pending.len() < args.concurrency.max(1) {
            let target = ctx.pusher.clone();
            // ~28k ephemeral ports per source address: 1000 sockets per 127.0.0.x is plenty.
            let source = (next / 1000 % 250) as u8 + 1;
            let channel = format!("idle.{}.{}", ctx.nonce, next % 100);
            let subscribe = args.subscribe;
            pending.push(async move {
                let (mut ws, _) = client::ws_connect(&target, Some(source)).await?;
                if subscribe {
                    client::subscribe(&mut ws, &channel, None).await?;
                }
                Ok::<_, client::Error>(ws)
            });
            next += 1;
        }
        match pending.next().await {
            Some(Ok(ws)) => {
                held.push(tokio::spawn(client::pump(ws, |_, _| {})));
                if held.len().is_power_of_two() && held.len() >= 1024 {
                    milestones.push(format!("{} at {:.1} s", held.len(), t0.elapsed().as_secs_f64()));
                }
            }
            Some(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            None => break,
        }
    }
    let ramp = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(args.hold_secs.max(1))).await;
    let alive = held.iter().filter(|h| !h.is_finished()).count();
    let after = pid.and_then(rss_bytes);
    r.figure("sockets open", format!("{} of {} ({failed} failed)", held.len(), args.sockets));
    r.figure("still open after hold", alive);
    r.metric("sockets held open", alive as f64, "", Better::Higher);
    r.figure(
        "ramp",
        format!("{:.1} s ({:.0} connections/s)", ramp.as_secs_f64(), held.len() as f64 / ramp.as_secs_f64()),
    );
    if !milestones.is_empty() {
        r.figure("ramp milestones", milestones.join(", "));
    }
    match (before, after) {
        (Some(b), Some(a)) => {
            r.figure("server RSS before / after", format!("{} / {}", bytes(b), bytes(a)));
            if !held.is_empty() {
                let per = a.saturating_sub(b) / held.len() as u64;
                r.figure("server memory per connection", bytes(per));
                r.metric("server memory per idle socket", per as f64, "B", Better::Lower);
            }
        }
        _ => r.notes.push("no server pid (pass --server-pid or --spawn): RSS not measured".into()),
    }
    for h in &held {
        h.abort();
    }
    if failed > 0 {
        r.fail(format!("{failed} connections failed, first: {}", first_error.unwrap_or_default()));
    }
    if alive < held.len() {
        r.fail(format!("{} sockets closed during the hold", held.len() - alive));
    }
    Ok(())
}
