//! `upload`: people uploading large files all at once (`POST /api/uploads`), then sending them and
//! a peer downloading them all at once (`GET /files/{id}`), with the server's memory sampled
//! throughout: uploads stream to the store in small parts, so 20 files of 25 MB in flight must not
//! cost the server anywhere near 500 MB (the budget is 300 MB of resident memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Deserialize;

use crate::Ctx;
use crate::client::{self, User, err};
use crate::report::{Better, ScenarioReport, Table};
use crate::stats::{self, Samples};

/// The server's resident memory may not pass this while the files are in flight.
const RSS_BUDGET: u64 = 300 * 1024 * 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct UploadArgs {
    /// People uploading at once, one file each per round.
    #[arg(long, default_value_t = 20)]
    pub users: usize,
    /// Bytes per file (the server takes at most 25,000,000).
    #[arg(long, default_value_t = 25_000_000)]
    pub size: usize,
    /// Rounds of uploads, each started once the one before has finished.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

impl UploadArgs {
    pub fn smoke() -> Self {
        Self { users: 4, size: 2_000_000, rounds: 1 }
    }
}

#[derive(Deserialize)]
struct Stored {
    id: i64,
    size: i64,
    content_type: String,
}

/// `size` bytes that do not compress (xorshift), the same for every file of the run.
fn content(size: usize, seed: u64) -> bytes::Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out.into()
}

/// The highest resident memory of `pid` seen while it runs: without file mappings (what the
/// budget counts) and `VmRSS` as `ps` shows it. Sampled every 10 ms until `stop` is set.
struct Peaks {
    anon: AtomicU64,
    total: AtomicU64,
    threads: AtomicU64,
    stop: AtomicBool,
}

/// A number field of `/proc/{pid}/status` (`VmRSS:` in KiB, `Threads:`).
fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok()
}

fn sample(pid: u32, peaks: Arc<Peaks>) -> std::thread::JoinHandle<()> {
    // A thread of its own: a sampler on the runtime would be late exactly when the load is highest.
    std::thread::spawn(move || {
        while !peaks.stop.load(Ordering::Relaxed) {
            if let Some(anon) = stats::rss_bytes(pid) {
                peaks.anon.fetch_max(anon, Ordering::Relaxed);
            }
            if let Some(total) = status_field(pid, "VmRSS:") {
                peaks.total.fetch_max(total * 1024, Ordering::Relaxed);
            }
            if let Some(threads) = status_field(pid, "Threads:") {
                peaks.threads.fetch_max(threads, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

impl Peaks {
    /// The peaks since the last call: anon RSS, VmRSS, threads.
    fn take(&self) -> (u64, u64, u64) {
        (
            self.anon.swap(0, Ordering::Relaxed),
            self.total.swap(0, Ordering::Relaxed),
            self.threads.swap(0, Ordering::Relaxed),
        )
    }
}

/// One line of the table: files moved in one phase, how fast, and the server's peaks meanwhile.
struct Phase {
    files: usize,
    bytes: usize,
    secs: f64,
    /// Anon RSS, VmRSS, threads.
    peaks: (u64, u64, u64),
}

impl Phase {
    fn row(&self, name: String, latency: &Samples) -> Vec<String> {
        let mb = self.bytes as f64 / 1_000_000.0;
        let mut row = vec![
            name,
            self.files.to_string(),
            format!("{mb:.0}"),
            format!("{:.2}", self.secs),
            format!("{:.0}", mb / self.secs.max(1e-9)),
            stats::bytes(self.peaks.0),
            stats::bytes(self.peaks.1),
            self.peaks.2.to_string(),
        ];
        row.extend(latency.summary().latency_cells());
        row
    }
}

async fn upload_one(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    name: &str,
    body: bytes::Bytes,
) -> Result<(Stored, Duration), client::Error> {
    let size = body.len();
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/api/uploads"))
        .query(&[("name", name)])
        .header("cookie", &user.cookie)
        .header("accept", "application/json")
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    let took = started.elapsed();
    if status.as_u16() != 201 {
        return Err(err(format!("upload {name}: HTTP {status}: {text}")));
    }
    let stored: Stored = serde_json::from_str(&text).map_err(|e| err(format!("upload {name}: {e}: {text}")))?;
    if stored.size != size as i64 {
        return Err(err(format!("upload {name}: stored {} bytes of {size}", stored.size)));
    }
    Ok((stored, took))
}

/// Downloads file `id` as `user`, comparing every byte with `expected`.
async fn download_one(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    id: i64,
    expected: &[u8],
) -> Result<Duration, client::Error> {
    let started = Instant::now();
    let mut resp = http.get(format!("{base}/files/{id}")).header("cookie", &user.cookie).send().await?;
    if !resp.status().is_success() {
        return Err(err(format!("GET /files/{id}: HTTP {}", resp.status())));
    }
    let mut at = 0;
    while let Some(chunk) = resp.chunk().await? {
        if expected.get(at..at + chunk.len()) != Some(&chunk[..]) {
            return Err(err(format!("GET /files/{id}: the bytes from offset {at} differ from those uploaded")));
        }
        at += chunk.len();
    }
    if at != expected.len() {
        return Err(err(format!("GET /files/{id}: {at} bytes of {}", expected.len())));
    }
    Ok(started.elapsed())
}

pub async fn run(ctx: &Ctx, args: &UploadArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let Some(pid) = ctx.server_pid else {
        return Err(err("upload needs the server's pid (--spawn or --server-pid) for its memory figures"));
    };
    if args.users == 0 || args.rounds == 0 || args.size == 0 {
        return Err(err("upload needs at least one user, one round and one byte"));
    }
    // Long transfers: the shared client's 30 s timeout is for small requests.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| err(format!("http client: {e}")))?;
    let base = &ctx.base_url;
    let users =
        client::register_many(std::slice::from_ref(&http), base, &format!("up{}u", ctx.nonce), args.users).await?;
    let peer = client::register(&http, base, &format!("up{}peer", ctx.nonce)).await?;
    let body = content(args.size, ctx.nonce);
    let mb = |bytes: f64| bytes / 1_000_000.0;
    r.figure(
        "load",
        format!(
            "{} people each uploading a {} file at once, {} rounds; then the files sent to one person who \
             downloads them all at once",
            args.users,
            stats::bytes(args.size as u64),
            args.rounds
        ),
    );

    let peaks = Arc::new(Peaks {
        anon: AtomicU64::new(0),
        total: AtomicU64::new(0),
        threads: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let sampler = sample(pid, peaks.clone());
    let idle = stats::rss_bytes(pid).unwrap_or(0);

    let mut table =
        Table::new(&["phase", "files", "MB", "seconds", "MB/s", "peak RSS (anon)", "peak VmRSS", "peak threads"], true);
    let mut up_latency = Samples::default();
    let mut stored: Vec<(usize, i64)> = Vec::new();
    let mut up_bytes = 0usize;
    let mut up_secs = 0f64;
    let mut worst_anon = 0u64;
    let mut failure = None;
    for round in 0..args.rounds {
        let started = Instant::now();
        let results = join_all(users.iter().enumerate().map(|(u, user)| {
            let (http, body) = (&http, body.clone());
            async move {
                let name = format!("bench-{round}-{u}.bin");
                upload_one(http, base, user, &name, body).await.map(|(s, took)| (u, s, took))
            }
        }))
        .await;
        let secs = started.elapsed().as_secs_f64();
        let (anon, total, threads) = peaks.take();
        worst_anon = worst_anon.max(anon);
        let mut files = 0;
        let mut round_latency = Samples::default();
        for result in results {
            match result {
                Ok((u, s, took)) => {
                    round_latency.push(took);
                    if s.content_type != "application/octet-stream" {
                        failure.get_or_insert(format!("file {} was stored as {}", s.id, s.content_type));
                    }
                    up_latency.push(took);
                    stored.push((u, s.id));
                    files += 1;
                }
                Err(e) => {
                    failure.get_or_insert(e.to_string());
                }
            }
        }
        up_bytes += files * args.size;
        up_secs += secs;
        let phase = Phase { files, bytes: files * args.size, secs, peaks: (anon, total, threads) };
        table.rows.push(phase.row(format!("upload, round {}", round + 1), &round_latency));
    }

    // Each person sends their files in one message per ten (the per-message limit).
    let mut sent = 0;
    for (u, user) in users.iter().enumerate() {
        let ids: Vec<String> = stored.iter().filter(|(owner, _)| *owner == u).map(|(_, id)| id.to_string()).collect();
        for (n, batch) in ids.chunks(10).enumerate() {
            let to = peer.id.to_string();
            let client_id = format!("up{}-{u}-{n}", ctx.nonce);
            let keys: Vec<String> = (0..batch.len()).map(|i| format!("attachments[{i}]")).collect();
            let mut form = vec![("recipient_id", to.as_str()), ("body", ""), ("client_id", client_id.as_str())];
            form.extend(keys.iter().map(String::as_str).zip(batch.iter().map(String::as_str)));
            match client::post_as::<client::StoredMessage>(&http, base, "/api/messages/send", user, &form).await {
                Ok(Some(_)) => sent += batch.len(),
                Ok(None) => {
                    failure.get_or_insert("a send with files was rate limited".to_owned());
                }
                Err(e) => {
                    failure.get_or_insert(e.to_string());
                }
            }
        }
    }

    // The peer fetches every file at once, `users` at a time (as many as uploaded at once).
    let mut down_latency = Samples::default();
    let started = Instant::now();
    let mut fetched = 0;
    for batch in stored.chunks(args.users) {
        let results = join_all(batch.iter().map(|(_, id)| download_one(&http, base, &peer, *id, &body))).await;
        for result in results {
            match result {
                Ok(took) => {
                    down_latency.push(took);
                    fetched += 1;
                }
                Err(e) => {
                    failure.get_or_insert(e.to_string());
                }
            }
        }
    }
    let down_secs = started.elapsed().as_secs_f64();
    let (anon, total, threads) = peaks.take();
    peaks.stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let phase = Phase { files: fetched, bytes: fetched * args.size, secs: down_secs, peaks: (anon, total, threads) };
    table.rows.push(phase.row(format!("download, {} at once", args.users.min(stored.len().max(1))), &down_latency));
    r.table = Some(table);
    r.notes.push("latency columns: the time of each file's request, from its first byte sent to the answer".into());

    r.figure("server RSS before the uploads (anon)", stats::bytes(idle));
    r.metric("upload throughput", mb(up_bytes as f64) / up_secs.max(1e-9), "MB/s", Better::Higher);
    r.metric("download throughput", mb((fetched * args.size) as f64) / down_secs.max(1e-9), "MB/s", Better::Higher);
    r.metric("upload p99 per file", stats::ms_f64(up_latency.summary().p99), "ms", Better::Lower);
    r.metric("peak server RSS while uploading", mb(worst_anon as f64), "MB", Better::Lower);
    r.figure("files stored / sent / downloaded and checked", format!("{} / {sent} / {fetched}", stored.len()));
    if worst_anon >= RSS_BUDGET {
        r.fail(format!(
            "the server's resident memory reached {} while uploading (budget: under {})",
            stats::bytes(worst_anon),
            stats::bytes(RSS_BUDGET)
        ));
    }
    if let Some(why) = failure {
        r.fail(why);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::content;

    #[test]
    fn the_file_is_the_size_asked_and_not_one_byte_repeated() {
        let bytes = content(1001, 7);
        assert_eq!(bytes.len(), 1001);
        assert!(bytes.iter().any(|&b| b != bytes[0]));
        assert_eq!(content(1001, 7), bytes);
    }
}
