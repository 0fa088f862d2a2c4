//! `fanout`: M subscribers over K channels; signed HTTP API publishes at rising rates; deliveries and
//! latency per step, stopping at the knee.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::Ctx;
use crate::client::{self, AbortOnDrop};
use crate::report::{Better, ScenarioReport, Table};
use crate::stats::{Samples, ms, ms_f64};

#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Private channels (self-signed auth) instead of public ones.
    #[arg(long)]
    pub private: bool,
    /// Channels each publish names (the Pusher API allows up to 100): 1 spreads publishes over the
    /// channels, the number of channels sends each event to every subscriber.
    #[arg(long, default_value_t = 10)]
    pub channels_per_publish: usize,
    /// Publish rates to step through, publishes per second.
    #[arg(long, value_delimiter = ',', default_value = "10,25,50,100,200,300,400,600,800")]
    pub rates: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 5)]
    pub step_secs: u64,
}

impl FanoutArgs {
    pub fn smoke() -> Self {
        Self {
            subscribers: 40,
            channels: 4,
            channels_per_publish: 2,
            private: true,
            rates: vec![5.0, 20.0],
            step_secs: 1,
        }
    }
}

pub async fn run(ctx: &Ctx, args: &FanoutArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let k = args.channels.max(1);
    let per_publish = args.channels_per_publish.clamp(1, k.min(100));
    let prefix = if args.private { "private-bench" } else { "bench" };
    let names: Vec<String> = (0..k).map(|i| format!("{prefix}.{}.{i}", ctx.nonce)).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();

    let t0 = Instant::now();
    let mut per_channel = vec![0usize; k];
    let mut readers = Vec::new();
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let mut up = 0;
    while up < args.subscribers {
        while next < args.subscribers && pending.len() < 64 {
            let target = ctx.at(next).1.clone();
            let channel = names[next % k].clone();
            let private = args.private;
            let source = (next % 200) as u8 + 1;
            pending.push(async move {
                let (mut ws, sid) = client::ws_connect(&target, Some(source)).await?;
                let auth = if private { Some(client::self_auth(&target, &sid, &channel)?) } else { None };
                client::subscribe(&mut ws, &channel, auth).await?;
                Ok::<_, client::Error>(ws)
            });
            per_channel[next % k] += 1;
            next += 1;
        }
        let Some(ws) = pending.next().await else { break };
        let ws = ws?;
        let tx = tx.clone();
        // Raw frames: parsing each one fully would make the generator the bottleneck sooner.
        readers.push(tokio::spawn(client::pump_raw(ws, move |frame| {
            if frame.contains("BenchEvent")
                && let Some(seq) = client::raw_seq(frame)
            {
                let _ = tx.send((seq, Instant::now()));
            }
        })));
        up += 1;
    }
    drop(tx);
    // Close every socket when the scenario ends, so later scenarios measure a server without them.
    let _close = AbortOnDrop(readers);
    r.figure(
        "subscribers",
        format!(
            "{up} over {k} {} channels in {:.1} s",
            if args.private { "private" } else { "public" },
            t0.elapsed().as_secs_f64()
        ),
    );

    let http = client::http_client();
    let mut table =
        Table::new(&["publish/s", "published", "errors", "expected", "delivered", "delivery %", "deliveries/s"], true);
    let mut seq: u64 = 0;
    let mut base_p99: Option<Duration> = None;
    let mut knee: Option<String> = None;
    let mut best_rate = 0.0;
    // Deliveries per second and p99 of the highest clean step.
    let mut best = (0.0, Duration::ZERO);
    let mut total_errors = 0;
    for &rate in &args.rates {
        let count = (rate * args.step_secs as f64).round().max(1.0) as usize;
        // (seq, first channel, start)
        let starts: Arc<Mutex<Vec<(u64, usize, Instant)>>> = Arc::default();
        let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let first_seq = seq;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let step_start = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            ticker.tick().await;
            let s = seq;
            seq += 1;
            let ch = i % k;
            let named: Vec<String> = (0..per_publish).map(|j| names[(ch + j) % k].clone()).collect();
            let (http, target) = (http.clone(), ctx.at(s as usize).1.clone());
            let (starts, errors) = (starts.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let data = format!("{{\"seq\":{s}}}");
                let named: Vec<&str> = named.iter().map(String::as_str).collect();
                match client::publish(&http, &target, &named, "BenchEvent", &data).await {
                    Ok(200) => starts.lock().unwrap().push((s, ch, started)),
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let starts = std::mem::take(&mut *starts.lock().unwrap());
        let expected: usize =
            starts.iter().map(|(_, ch, _)| (0..per_publish).map(|j| per_channel[(ch + j) % k]).sum::<usize>()).sum();
        let mut by_seq = std::collections::HashMap::new();
        for (s, _, t) in &starts {
            by_seq.insert(*s, *t);
        }
        // Drain: until everything expected arrived or 3 s of waiting.
        let mut lat = Samples::default();
        let mut delivered = 0usize;
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = step_start;
        while delivered < expected && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Ok(Some((s, at))) => {
                    if let Some(t) = by_seq.get(&s).filter(|_| s >= first_seq) {
                        lat.push(at.saturating_duration_since(*t));
                        delivered += 1;
                        last = last.max(at);
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
        let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
        total_errors += errors;
        let secs = last.saturating_duration_since(step_start).as_secs_f64().max(args.step_secs as f64);
        let pct = if expected > 0 { delivered as f64 * 100.0 / expected as f64 } else { 0.0 };
        let s = lat.summary();
        let mut row = vec![
            format!("{rate}"),
            starts.len().to_string(),
            errors.to_string(),
            expected.to_string(),
            delivered.to_string(),
            format!("{pct:.1}"),
            format!("{:.0}", delivered as f64 / secs),
        ];
        row.extend(s.latency_cells());
        table.rows.push(row);
        let floor = Duration::from_millis(1);
        let base = *base_p99.get_or_insert(s.p99.max(floor));
        if delivered < expected || errors > 0 {
            knee = Some(format!("{rate} publish/s: {pct:.1} % delivered, {errors} publish errors"));
            break;
        }
        if s.p99 > base * 3 {
            knee = Some(format!("{rate} publish/s: p99 {} > 3 × {}", ms(s.p99), ms(base)));
            break;
        }
        best_rate = rate;
        best = (delivered as f64 / secs, s.p99);
        // Per clean step, so two servers compare at the rates both handle.
        r.metric(&format!("p99 at {rate} publish/s"), ms_f64(s.p99), "ms", Better::Lower);
    }
    r.figure(
        "highest clean step",
        format!(
            "{best_rate} publish/s × {per_publish} channel(s) × {:.0} subscribers each",
            args.subscribers as f64 / k as f64
        ),
    );
    r.figure("knee", knee.clone().unwrap_or_else(|| "not reached".into()));
    r.metric("deliveries per second, highest clean step", best.0, "/s", Better::Higher);
    r.figure("p99 at the highest clean step", ms(best.1));
    r.table = Some(table);
    if best_rate == 0.0 {
        r.fail(format!("even the first step was not clean: {}", knee.unwrap_or_default()));
    }
    if total_errors > 0 && best_rate == 0.0 {
        r.fail(format!("{total_errors} publish errors"));
    }
    Ok(())
}
