//! `banter-bench`: Banter's load generator (issue 5). See `banter-bench --help` and `scripts/bench-smoke.sh`.

mod bundle;
mod chat;
mod client;
mod connections;
mod fanout;
mod report;
mod ssr;
mod stats;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pusher_protocol::Credentials;

use crate::client::PusherTarget;
use crate::report::ScenarioReport;

#[derive(Parser, Debug)]
#[command(name = "banter-bench", about = "Load generator for Banter and Pusher-compatible servers")]
struct Cli {
    /// Banter's HTTP base URL (ignored with --spawn).
    #[arg(long, global = true, default_value = "http://127.0.0.1:3000")]
    base_url: String,
    /// Pusher server host for fanout/connections (default: the host of --base-url).
    #[arg(long, global = true)]
    pusher_host: Option<String>,
    #[arg(long, global = true)]
    pusher_port: Option<u16>,
    #[arg(long, global = true, default_value = "banter-bench")]
    app_id: String,
    #[arg(long, global = true, default_value = "banter-bench-key")]
    key: String,
    #[arg(long, global = true, default_value = "banter-bench-secret")]
    secret: String,
    /// The server's pid, for RSS figures (set automatically with --spawn).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Start target/release/server on a free port with a temporary database and the credentials above.
    #[arg(long, global = true)]
    spawn: bool,
    /// The server binary for --spawn.
    #[arg(long, global = true, default_value = "target/release/server")]
    server_bin: PathBuf,
    /// The site root (bundle sizes, and LEPTOS_SITE_ROOT for --spawn).
    #[arg(long, global = true, default_value = "target/site")]
    site_root: PathBuf,
    /// Tiny sizes: every scenario in a few seconds.
    #[arg(long, global = true)]
    smoke: bool,
    /// Where the Markdown reports go.
    #[arg(long, global = true, default_value = "target/bench")]
    out_dir: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Users chatting through the HTTP API and their private channels.
    Chat(chat::ChatArgs),
    /// Subscribers over channels; signed HTTP API publishes at rising rates.
    Fanout(fanout::FanoutArgs),
    /// Idle sockets: how many, and what they cost the server.
    Connections(connections::ConnectionsArgs),
    /// The signed-in chat page under concurrent load.
    Ssr(ssr::SsrArgs),
    /// Sizes of the WASM, JS and CSS bundles.
    Bundle,
    /// Every scenario, with default (or --smoke) sizes.
    All,
}

/// What every scenario needs to know about its target.
pub struct Ctx {
    pub base_url: String,
    pub pusher: PusherTarget,
    pub server_pid: Option<u32>,
    /// Distinguishes this run's accounts and channels from earlier runs against the same server.
    pub nonce: u64,
}

/// A server started by --spawn; killed on drop.
struct Spawned {
    child: Child,
    dir: PathBuf,
    stopped: bool,
}

impl Spawned {
    fn stop(&mut self) {
        // Never signal a pid we already reaped: it may belong to someone else by now.
        if std::mem::replace(&mut self.stopped, true) || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first, as a deployment would; then make sure.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn spawn_server(cli: &Cli, nonce: u64) -> Result<(Spawned, String), client::Error> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("banter-bench-{}-{nonce}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("server.log"))?;
    let child = Command::new(&cli.server_bin)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_SITE_ROOT", &cli.site_root)
        .env("LEPTOS_OUTPUT_NAME", "banter")
        .env("DATABASE_URL", format!("sqlite://{}/banter.sqlite?mode=rwc", dir.display()))
        .env("RUST_LOG", "warn")
        .env("PUSHER_APP_ID", &cli.app_id)
        .env("PUSHER_APP_KEY", &cli.key)
        .env("PUSHER_APP_SECRET", &cli.secret)
        .env_remove("PUSHER_HOST")
        .env_remove("PUSHER_PORT")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| client::err(format!("cannot start {}: {e}", cli.server_bin.display())))?;
    let mut spawned = Spawned { child, dir, stopped: false };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = spawned.child.try_wait() {
            let log = std::fs::read_to_string(spawned.dir.join("server.log")).unwrap_or_default();
            return Err(client::err(format!("server exited ({status}): {log}")));
        }
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok((spawned, base));
        }
        if Instant::now() > until {
            return Err(client::err("the spawned server did not answer /healthz within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(80)),
        None => (authority.to_owned(), if url.starts_with("https") { 443 } else { 80 }),
    }
}

async fn run_one(name: &str, cli: &Cli, ctx: &Ctx) -> ScenarioReport {
    let mut r = ScenarioReport::new(name);
    let (wall0, cpu0) = (Instant::now(), stats::cpu_time());
    let rss0 = ctx.server_pid.and_then(stats::rss_bytes);
    let smoke = cli.smoke;
    let result = match (&cli.scenario, name) {
        (Scenario::Chat(a), _) if !smoke => chat::run(ctx, a, &mut r).await,
        (Scenario::Fanout(a), _) if !smoke => fanout::run(ctx, a, &mut r).await,
        (Scenario::Connections(a), _) if !smoke => connections::run(ctx, a, &mut r).await,
        (Scenario::Ssr(a), _) if !smoke => ssr::run(ctx, a, &mut r).await,
        (_, "chat") => {
            chat::run(ctx, &if smoke { chat::ChatArgs::smoke() } else { default_args::<chat::ChatArgs>() }, &mut r)
                .await
        }
        (_, "fanout") => {
            let a = if smoke { fanout::FanoutArgs::smoke() } else { default_args::<fanout::FanoutArgs>() };
            fanout::run(ctx, &a, &mut r).await
        }
        (_, "connections") => {
            let a = if smoke { connections::ConnectionsArgs::smoke() } else { default_args() };
            connections::run(ctx, &a, &mut r).await
        }
        (_, "ssr") => ssr::run(ctx, &if smoke { ssr::SsrArgs::smoke() } else { default_args() }, &mut r).await,
        _ => {
            bundle::run(&cli.site_root, "banter", &mut r);
            Ok(())
        }
    };
    if let Err(e) = result {
        r.fail(format!("scenario error: {e}"));
    }
    if let (Some(a), Some(b)) = (rss0, ctx.server_pid.and_then(stats::rss_bytes))
        && name != "bundle"
    {
        r.figure("server RSS at start / end of scenario", format!("{} / {}", stats::bytes(a), stats::bytes(b)));
    }
    r.wall = wall0.elapsed();
    r.cpu = stats::cpu_time().saturating_sub(cpu0);
    r
}

/// A scenario's arguments with their clap defaults.
fn default_args<A: clap::Args + clap::FromArgMatches>() -> A {
    let cmd = A::augment_args(clap::Command::new("x").no_binary_name(true));
    let matches = cmd.get_matches_from(Vec::<String>::new());
    A::from_arg_matches(&matches).expect("defaults parse")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let nofile = stats::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let ok = rt.block_on(run(cli, nofile));
    // Reader tasks of held sockets must not keep the process alive.
    rt.shutdown_timeout(Duration::from_secs(1));
    if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}

async fn run(cli: Cli, nofile: u64) -> bool {
    let nonce =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
            % 1_000_000_000;
    let needs_server = !matches!(cli.scenario, Scenario::Bundle);
    let mut spawned = None;
    let mut base_url = cli.base_url.trim_end_matches('/').to_owned();
    let mut server_pid = cli.server_pid;
    if cli.spawn && needs_server {
        match spawn_server(&cli, nonce).await {
            Ok((s, base)) => {
                server_pid = Some(s.child.id());
                base_url = base;
                spawned = Some(s);
            }
            Err(e) => {
                eprintln!("banter-bench: {e}");
                return false;
            }
        }
    }
    let (host, port) = host_port(&base_url);
    let pusher = PusherTarget {
        host: cli.pusher_host.clone().unwrap_or(host),
        port: cli.pusher_port.unwrap_or(port),
        app_id: cli.app_id.clone(),
        credentials: Credentials::new(cli.key.clone(), cli.secret.clone()),
    };
    let ctx = Ctx { base_url: base_url.clone(), pusher, server_pid, nonce };
    let (title, names): (&str, Vec<&str>) = match &cli.scenario {
        Scenario::Chat(_) => ("chat", vec!["chat"]),
        Scenario::Fanout(_) => ("fanout", vec!["fanout"]),
        Scenario::Connections(_) => ("connections", vec!["connections"]),
        Scenario::Ssr(_) => ("ssr", vec!["ssr"]),
        Scenario::Bundle => ("bundle", vec!["bundle"]),
        // Connections last: it leaves the most state behind in the server.
        Scenario::All => ("all", vec!["bundle", "chat", "fanout", "ssr", "connections"]),
    };
    let mut reports = Vec::new();
    for name in names {
        eprintln!("banter-bench: running {name}{} ...", if cli.smoke { " (smoke)" } else { "" });
        let r = run_one(name, &cli, &ctx).await;
        print!("{}", report::render_text(std::slice::from_ref(&r)));
        reports.push(r);
    }
    let context = vec![
        ("date (UTC)".to_owned(), utc_now()),
        ("target".to_owned(), format!("{base_url}{}", if spawned.is_some() { " (spawned)" } else { "" })),
        ("pusher".to_owned(), format!("{}:{} app {}", ctx.pusher.host, ctx.pusher.port, ctx.pusher.app_id)),
        ("mode".to_owned(), if cli.smoke { "smoke".into() } else { "full".into() }),
        (
            "generator".to_owned(),
            format!(
                "{} cores, RLIMIT_NOFILE {nofile}",
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
            ),
        ),
    ];
    let md = report::render_markdown(title, &context, &reports);
    let path = cli.out_dir.join(format!("report-{title}.md"));
    if let Err(e) = std::fs::create_dir_all(&cli.out_dir).and_then(|_| std::fs::write(&path, md)) {
        eprintln!("banter-bench: cannot write {}: {e}", path.display());
        return false;
    }
    let ok = reports.iter().all(ScenarioReport::ok);
    if let Some(s) = spawned.as_mut().filter(|_| !ok) {
        // The spawned server's log goes with the temporary directory; keep it for a failed run.
        let kept = cli.out_dir.join(format!("server-{title}.log"));
        s.stop();
        if std::fs::copy(s.dir.join("server.log"), &kept).is_ok() {
            eprintln!("banter-bench: the spawned server's log is in {}", kept.display());
        }
    }
    eprintln!("banter-bench: report written to {} ({})", path.display(), if ok { "ok" } else { "FAILED" });
    drop(spawned);
    ok
}

fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:3000"), ("127.0.0.1".into(), 3000));
        assert_eq!(host_port("https://example.com/x"), ("example.com".into(), 443));
    }

    #[test]
    fn scenario_defaults_come_from_clap() {
        let a: chat::ChatArgs = default_args();
        assert_eq!(a.users, 500);
        let f: fanout::FanoutArgs = default_args();
        assert_eq!((f.subscribers, f.channels), (1000, 10));
    }
}
