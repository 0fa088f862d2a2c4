//! `banter-bench`: Banter's load generator (issue 5). See `banter-bench --help` and `scripts/bench-smoke.sh`.

mod budgets;
mod bundle;
mod chat;
mod client;
mod connections;
mod fanout;
mod history;
mod report;
mod room;
mod search;
mod ssr;
mod stats;
mod tti;
mod upload;

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
    /// Also measure another Pusher-compatible server, given as the path of a sockudo binary (needs
    /// --spawn): chat, fanout, room and connections run a second time against it, Banter publishing to it
    /// as an external Pusher server, and the report compares the two.
    #[arg(long, global = true, value_name = "SOCKUDO_BIN")]
    versus: Option<PathBuf>,
    /// Also run chat against a Banter with end-to-end encrypted channels (needs --spawn): the
    /// generator subscribes to `private-encrypted-user.{id}` and decrypts every event, and the report
    /// sets the cost beside the same scenario with encryption off.
    #[arg(long, global = true)]
    encrypted: bool,
    /// Also run chat and fanout against N instances of Banter sharing one PostgreSQL database and one
    /// Redis (needs --spawn, N ≥ 2), their users, sockets and publishes spread over the instances as
    /// a round-robin load balancer would, and against one instance on the same PostgreSQL; the
    /// report compares the two (the scaling ratio).
    #[arg(long, global = true, value_name = "N")]
    cluster: Option<usize>,
    /// Run the scenarios against one Banter on PostgreSQL (a schema of its own in --postgres-url's
    /// database, dropped after) instead of a fresh SQLite file (needs --spawn).
    #[arg(long, global = true)]
    postgres: bool,
    /// The PostgreSQL server of --cluster and --postgres runs (each scenario gets a schema of its own,
    /// dropped after).
    #[arg(long, global = true, default_value = "postgres://root@127.0.0.1:5432/test")]
    postgres_url: String,
    /// The Redis of --cluster runs.
    #[arg(long, global = true, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Pin the generator to CPU 0 and the spawned servers to the other CPUs (needs --spawn and at
    /// least 2 CPUs), so that each side's CPU figure is its own.
    #[arg(long, global = true)]
    pin: bool,
    /// The server binary for --spawn.
    #[arg(long, global = true, default_value = "target/release/server")]
    server_bin: PathBuf,
    /// The site root (bundle sizes, and LEPTOS_SITE_ROOT for --spawn).
    #[arg(long, global = true, default_value = "target/site")]
    site_root: PathBuf,
    /// Tiny sizes: every scenario in a few seconds.
    #[arg(long, global = true)]
    smoke: bool,
    /// Hold the run to the budgets in this TOML file (`bench/budgets.toml`): exit non-zero when one
    /// is broken. Size budgets apply to every run, the others to full-size runs only.
    #[arg(long, global = true, value_name = "BUDGETS")]
    check: Option<PathBuf>,
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
    /// One sender posting to a group whose every member is connected: send→last-delivery latency.
    Room(room::RoomArgs),
    /// Idle sockets: how many, and what they cost the server.
    Connections(connections::ConnectionsArgs),
    /// The signed-in chat page under concurrent load.
    Ssr(ssr::SsrArgs),
    /// Time to interactive and first contentful paint of the chat page in Chromium, on loopback and
    /// under "Fast 3G" (Playwright: `end2end/tti.mjs`, needs node, `npm ci` in end2end and chromium).
    Tti(tti::TtiArgs),
    /// Message search over a large corpus loaded by `server seed-corpus` (needs --spawn).
    Search(search::SearchArgs),
    /// The chat page of someone with tens of thousands of messages, loaded by `server seed-corpus`
    /// (needs --spawn).
    History(history::HistoryArgs),
    /// People uploading large files at once, then one downloading them: MB/s and the server's memory.
    Upload(upload::UploadArgs),
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
    /// Every server process the scenario loads (Banter, and the external Pusher server), for CPU figures.
    pub server_pids: Vec<u32>,
    /// Distinguishes this run's accounts and channels from earlier runs against the same server.
    pub nonce: u64,
    /// The server encrypts its user channels (`private-encrypted-…`).
    pub encrypted: bool,
    /// The corpus the server's database was seeded with (`search` with --spawn).
    pub corpus: Option<search::Seeded>,
    /// More instances of the same Banter (`--cluster`): `chat` and `fanout` spread their users,
    /// sockets and publishes over all of them, as a round-robin load balancer would.
    pub others: Vec<(String, PusherTarget)>,
}

impl Ctx {
    /// The instance (HTTP base URL and Pusher endpoint) that user, socket or publish `i` goes to.
    pub fn at(&self, i: usize) -> (&str, &PusherTarget) {
        match i % (self.others.len() + 1) {
            0 => (&self.base_url, &self.pusher),
            n => {
                let (base, pusher) = &self.others[n - 1];
                (base, pusher)
            }
        }
    }
}

/// A server started by --spawn; killed on drop.
struct Spawned {
    child: Child,
    dir: PathBuf,
    log_name: String,
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

/// CPUs for the spawned servers when pinning: all but CPU 0, which the generator keeps.
fn server_cpus() -> Vec<usize> {
    (1..online_cpus()).collect()
}

/// CPUs online, whatever this process is pinned to (`available_parallelism` follows the pinning).
fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Restricts the calling thread (and every thread it starts later) to `cpus`.
fn pin_to(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts `command` with its output in `dir/log_name`, pinned to the server CPUs when asked.
fn start(mut command: Command, dir: PathBuf, log_name: &str, pin: bool) -> Result<Spawned, client::Error> {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::File::create(dir.join(log_name))?;
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    if pin {
        let cpus = server_cpus();
        // SAFETY: only an async-signal-safe syscall runs between fork and exec.
        unsafe {
            command.pre_exec(move || pin_to(&cpus));
        }
    }
    let program = command.get_program().to_string_lossy().into_owned();
    let child = command.spawn().map_err(|e| client::err(format!("cannot start {program}: {e}")))?;
    Ok(Spawned { child, dir, log_name: log_name.to_owned(), stopped: false })
}

/// Waits until `url` answers (any HTTP status), or the process exits, or 30 s pass.
async fn wait_until_up(spawned: &mut Spawned, url: &str, need_success: bool) -> Result<(), client::Error> {
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = spawned.child.try_wait() {
            let log = std::fs::read_to_string(spawned.dir.join(&spawned.log_name)).unwrap_or_default();
            return Err(client::err(format!("{} exited ({status}): {log}", spawned.log_name)));
        }
        if let Ok(r) = http.get(url).send().await
            && (r.status().is_success() || !need_success)
        {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(client::err(format!("{url} did not answer within 30 s")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The master key of `--encrypted` runs (base64 of 32 bytes; a load test has nothing to keep secret).
const BENCH_MASTER_KEY: &str = "YmFudGVyLWJlbmNoLW1hc3Rlci1rZXktMzItYnl0ZXM=";

/// The server binary with this run's settings, listening on `port`, on `database_url`.
fn banter_command(cli: &Cli, port: u16, database_url: &str) -> Command {
    let mut command = Command::new(&cli.server_bin);
    command
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_SITE_ROOT", &cli.site_root)
        .env("LEPTOS_OUTPUT_NAME", "banter")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("PUSHER_APP_ID", &cli.app_id)
        .env("PUSHER_APP_KEY", &cli.key)
        .env("PUSHER_APP_SECRET", &cli.secret)
        // A load generator is thousands of users and sockets on one address, on public channels
        // too (as in the sockudo runs): the abuse limits would measure themselves.
        .env("LIMIT_SIGN_UPS_PER_ADDRESS", "0")
        .env("LIMIT_SIGN_INS_PER_ADDRESS", "0")
        .env("PUSHER_PUBLIC_CHANNELS", "true")
        .env("PUSHER_MAX_CONNECTIONS_PER_ADDRESS", "0")
        .env("PUSHER_MAX_FRAMES_PER_SECOND", "0")
        // Files go to the local disk in the run's own directory (see spawn_server).
        .env_remove("S3_BUCKET")
        .env_remove("PUSHER_CLUSTER")
        .env_remove("PUSHER_APP_CLUSTER")
        .env_remove("PUSHER_APP_HOST")
        .env_remove("PUSHER_APP_PORT")
        .env_remove("PUSHER_APP_SCHEME")
        .env_remove("PUSHER_APP_ENCRYPTED");
    command
}

/// Starts Banter for scenario `name` on a free port, on `database_url` or a fresh SQLite database:
/// with its embedded Pusher server, or publishing to the external one on `external_port`.
async fn spawn_server(
    cli: &Cli,
    name: &str,
    nonce: u64,
    external_port: Option<u16>,
    encrypted: bool,
    database_url: Option<&str>,
    redis_url: Option<&str>,
) -> Result<(Spawned, String), client::Error> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("banter-bench-{}-{nonce}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = format!("sqlite://{}/banter.sqlite?mode=rwc", dir.display());
    let mut command = banter_command(cli, port, database_url.unwrap_or(&sqlite));
    command.env("UPLOADS_DIR", dir.join("uploads"));
    if encrypted {
        command.env("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", BENCH_MASTER_KEY);
    } else {
        command.env_remove("PUSHER_ENCRYPTION_MASTER_KEY_BASE64");
    }
    // `room` has one sender at 10 messages per second, past the per-user limit of 20 per 10 s;
    // `chat` stays within it (it caps its senders' rates), so it keeps measuring the limiter too.
    if name == "room" {
        command.env("LIMIT_SENDS_PER_USER", "0");
    }
    match redis_url {
        Some(url) => command.env("REDIS_URL", url),
        None => command.env_remove("REDIS_URL"),
    };
    match external_port {
        Some(p) => {
            command.env("PUSHER_HOST", "127.0.0.1").env("PUSHER_PORT", p.to_string()).env("PUSHER_SCHEME", "http")
        }
        None => command.env_remove("PUSHER_HOST").env_remove("PUSHER_PORT").env_remove("PUSHER_SCHEME"),
    };
    let mut spawned = start(command, dir, "server.log", cli.pin)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&mut spawned, &format!("{base}/healthz"), true).await?;
    Ok((spawned, base))
}

/// Starts a sockudo binary on a free port with this run's app credentials, from an empty working
/// directory (so no config file), without its rate limiter and default app quotas (they would
/// refuse the load) or metrics.
async fn spawn_sockudo(cli: &Cli, bin: &std::path::Path, nonce: u64) -> Result<(Spawned, u16), client::Error> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("banter-bench-sockudo-{}-{nonce}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut command = Command::new(bin);
    command
        .current_dir(&dir)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("SOCKUDO_DEFAULT_APP_ID", &cli.app_id)
        .env("SOCKUDO_DEFAULT_APP_KEY", &cli.key)
        .env("SOCKUDO_DEFAULT_APP_SECRET", &cli.secret)
        .env("SOCKUDO_ENABLE_CLIENT_MESSAGES", "true")
        // Its default app allows 100 connections and 100 API events per second.
        .env("SOCKUDO_MAX_CONNECTIONS", "1000000")
        .env("SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", "1000000")
        .env("SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND", "1000000")
        .env("SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND", "1000000")
        .env("SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL", "10000")
        .env("RATE_LIMITER_ENABLED", "false")
        .env("METRICS_ENABLED", "false")
        .env("ADAPTER_DRIVER", "local")
        .env("CACHE_DRIVER", "memory")
        .env("QUEUE_DRIVER", "memory")
        .env("APP_MANAGER_DRIVER", "memory")
        .env("RUST_LOG", "warn");
    let mut spawned = start(command, dir, "sockudo.log", cli.pin)?;
    wait_until_up(&mut spawned, &format!("http://127.0.0.1:{port}/"), false).await?;
    Ok((spawned, port))
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
    let server_cpu = |pids: &[u32]| pids.iter().map(|&p| stats::process_cpu(p)).sum::<Option<Duration>>();
    let server_cpu0 = server_cpu(&ctx.server_pids);
    let rss0 = ctx.server_pid.and_then(stats::rss_bytes);
    let smoke = cli.smoke;
    let result = match (&cli.scenario, name) {
        (Scenario::Chat(a), _) if !smoke => chat::run(ctx, a, &mut r).await,
        (Scenario::Fanout(a), _) if !smoke => fanout::run(ctx, a, &mut r).await,
        (Scenario::Room(a), _) if !smoke => room::run(ctx, a, &mut r).await,
        (Scenario::Connections(a), _) if !smoke => connections::run(ctx, a, &mut r).await,
        (Scenario::Ssr(a), _) if !smoke => ssr::run(ctx, a, &mut r).await,
        (Scenario::Upload(a), _) if !smoke => upload::run(ctx, a, &mut r).await,
        (Scenario::Tti(a), _) if !smoke => tti::run(ctx, a, &mut r).await,
        (_, "search") => search::run(ctx, &search_args(cli), &mut r).await,
        (_, "history") => history::run(ctx, &history_args(cli), &mut r).await,
        (_, "chat") => {
            chat::run(ctx, &if smoke { chat::ChatArgs::smoke() } else { default_args::<chat::ChatArgs>() }, &mut r)
                .await
        }
        (_, "fanout") => {
            let a = if smoke { fanout::FanoutArgs::smoke() } else { default_args::<fanout::FanoutArgs>() };
            fanout::run(ctx, &a, &mut r).await
        }
        (_, "room") => room::run(ctx, &if smoke { room::RoomArgs::smoke() } else { default_args() }, &mut r).await,
        (_, "connections") => {
            let a = if smoke { connections::ConnectionsArgs::smoke() } else { default_args() };
            connections::run(ctx, &a, &mut r).await
        }
        (_, "ssr") => ssr::run(ctx, &if smoke { ssr::SsrArgs::smoke() } else { default_args() }, &mut r).await,
        (_, "tti") => tti::run(ctx, &if smoke { tti::TtiArgs::smoke() } else { default_args() }, &mut r).await,
        (_, "upload") => {
            upload::run(ctx, &if smoke { upload::UploadArgs::smoke() } else { default_args() }, &mut r).await
        }
        _ => {
            bundle::run(&cli.site_root, &cli.server_bin, "banter", &mut r);
            Ok(())
        }
    };
    if let Err(e) = result {
        r.fail(format!("scenario error: {e}"));
    }
    if let (Some(a), Some(b)) = (rss0, ctx.server_pid.and_then(stats::rss_bytes))
        && name != "bundle"
    {
        r.figure(
            "server RSS at start / end of scenario (without file mappings)",
            format!("{} / {}", stats::bytes(a), stats::bytes(b)),
        );
    }
    r.wall = wall0.elapsed();
    r.cpu = stats::cpu_time().saturating_sub(cpu0);
    if name != "bundle" {
        r.server_cpu = server_cpu0.zip(server_cpu(&ctx.server_pids)).map(|(a, b)| b.saturating_sub(a));
    }
    r
}

/// The `search` scenario's arguments: as given, or the --smoke or default sizes.
fn search_args(cli: &Cli) -> search::SearchArgs {
    match &cli.scenario {
        Scenario::Search(a) if !cli.smoke => a.clone(),
        Scenario::Search(a) => {
            search::SearchArgs { database_url: a.database_url.clone(), ..search::SearchArgs::smoke() }
        }
        _ if cli.smoke => search::SearchArgs::smoke(),
        _ => default_args(),
    }
}

/// The `history` scenario's arguments: as given, or the --smoke or default sizes.
fn history_args(cli: &Cli) -> history::HistoryArgs {
    match &cli.scenario {
        Scenario::History(a) if !cli.smoke => a.clone(),
        Scenario::History(a) => {
            history::HistoryArgs { database_url: a.database_url.clone(), ..history::HistoryArgs::smoke() }
        }
        _ if cli.smoke => history::HistoryArgs::smoke(),
        _ => default_args(),
    }
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
    if cli.pin {
        if !cli.spawn || server_cpus().is_empty() {
            eprintln!("banter-bench: --pin needs --spawn and at least 2 CPUs");
            return std::process::ExitCode::FAILURE;
        }
        // Before the runtime exists: its threads inherit this.
        if let Err(e) = pin_to(&[0]) {
            eprintln!("banter-bench: cannot pin to CPU 0: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if (cli.versus.is_some() || cli.encrypted || cli.cluster.is_some() || cli.postgres) && !cli.spawn {
        eprintln!("banter-bench: --versus, --encrypted, --cluster and --postgres need --spawn");
        return std::process::ExitCode::FAILURE;
    }
    if cli.cluster.is_some_and(|n| n < 2) {
        eprintln!("banter-bench: --cluster needs at least 2 instances");
        return std::process::ExitCode::FAILURE;
    }
    let budgets = match cli.check.as_deref().map(budgets::load).transpose() {
        Ok(budgets) => budgets,
        Err(e) => {
            eprintln!("banter-bench: --check: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let ok = rt.block_on(run(cli, nofile, budgets.as_deref()));
    // Reader tasks of held sockets must not keep the process alive.
    rt.shutdown_timeout(Duration::from_secs(1));
    if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}

/// The scenarios a subcommand runs, and the report's title.
fn scenarios(cli: &Cli) -> (&'static str, Vec<&'static str>) {
    match &cli.scenario {
        Scenario::Chat(_) => ("chat", vec!["chat"]),
        Scenario::Fanout(_) => ("fanout", vec!["fanout"]),
        Scenario::Room(_) => ("room", vec!["room"]),
        Scenario::Connections(_) => ("connections", vec!["connections"]),
        Scenario::Ssr(_) => ("ssr", vec!["ssr"]),
        Scenario::Search(_) => ("search", vec!["search"]),
        Scenario::History(_) => ("history", vec!["history"]),
        Scenario::Upload(_) => ("upload", vec!["upload"]),
        Scenario::Tti(_) => ("tti", vec!["tti"]),
        Scenario::Bundle => ("bundle", vec!["bundle"]),
        // Connections last: it leaves the most state behind in the server.
        Scenario::All => (
            "all",
            vec!["bundle", "chat", "fanout", "room", "ssr", "tti", "search", "history", "upload", "connections"],
        ),
    }
}

/// Scenarios that --cluster runs against one instance and against several.
const CLUSTER_SCENARIOS: [&str; 2] = ["chat", "fanout"];

/// Scenarios that load the Pusher server, and so are run against the other one too.
const PUSHER_SCENARIOS: [&str; 4] = ["chat", "fanout", "room", "connections"];

fn pusher_target(cli: &Cli, base_url: &str, port: Option<u16>) -> PusherTarget {
    let (host, base_port) = host_port(base_url);
    PusherTarget {
        host: cli.pusher_host.clone().unwrap_or(host),
        port: port.or(cli.pusher_port).unwrap_or(base_port),
        app_id: cli.app_id.clone(),
        credentials: Credentials::new(cli.key.clone(), cli.secret.clone()),
    }
}

/// The Pusher server the scenarios load.
#[derive(Clone, Copy)]
enum Side<'a> {
    /// Banter's own, embedded one.
    Embedded,
    /// A sockudo binary, Banter publishing to it as an external Pusher server.
    Versus(&'a std::path::Path),
    /// Banter's embedded server, with end-to-end encrypted channels.
    Encrypted,
    /// This many Banter instances on one PostgreSQL database (and, for more than one, one Redis).
    Cluster(usize),
}

/// The processes one scenario runs against (killed on drop), and how to reach them.
struct Target {
    ctx: Ctx,
    processes: Vec<Spawned>,
    /// A database made for this scenario, removed once its processes are stopped.
    database: Option<search::Database>,
}

impl Target {
    /// Stops the processes, then removes the scenario's own database.
    async fn finish(mut self) {
        for p in &mut self.processes {
            p.stop();
        }
        if let Some(database) = self.database.take() {
            database.remove().await;
        }
    }
}

/// With --spawn, fresh processes for one scenario, so that no scenario measures what an earlier one
/// left behind (sockets, sign-ups, allocator state); without it, the server given on the command line.
async fn target_for(cli: &Cli, side: Side<'_>, name: &str, nonce: u64) -> Result<Target, client::Error> {
    let fixed = |base_url: String| Ctx {
        pusher: pusher_target(cli, &base_url, None),
        base_url,
        server_pid: cli.server_pid,
        server_pids: cli.server_pid.into_iter().collect(),
        nonce,
        encrypted: false,
        corpus: None,
        others: Vec::new(),
    };
    if !cli.spawn || name == "bundle" {
        let ctx = fixed(cli.base_url.trim_end_matches('/').to_owned());
        return Ok(Target { ctx, processes: vec![], database: None });
    }
    let corpus = match name {
        "search" => {
            let a = search_args(cli);
            Some((a.shape(), a.database_url.or_else(|| cli.postgres.then(|| cli.postgres_url.clone()))))
        }
        "history" => {
            let a = history_args(cli);
            Some((a.shape(), a.database_url.or_else(|| cli.postgres.then(|| cli.postgres_url.clone()))))
        }
        _ => None,
    };
    if let Some((shape, database_url)) = corpus {
        // The corpus goes in before the server starts; on failure the database is removed.
        let database = search::Database::create(database_url.as_deref(), nonce).await?;
        let seeded = match search::seed(cli, &database, shape).await {
            Ok(seeded) => seeded,
            Err(e) => {
                database.remove().await;
                return Err(e);
            }
        };
        let (banter, base_url) = match spawn_server(cli, name, nonce, None, false, Some(&database.url()), None).await {
            Ok(spawned) => spawned,
            Err(e) => {
                database.remove().await;
                return Err(e);
            }
        };
        let pid = banter.child.id();
        let ctx = Ctx { server_pid: Some(pid), server_pids: vec![pid], corpus: Some(seeded), ..fixed(base_url) };
        return Ok(Target { ctx, processes: vec![banter], database: Some(database) });
    }
    match side {
        Side::Embedded | Side::Encrypted => {
            let encrypted = matches!(side, Side::Encrypted);
            let (banter, base_url) = spawn_server(cli, name, nonce, None, encrypted, None, None).await?;
            let pid = banter.child.id();
            let ctx = Ctx { server_pid: Some(pid), server_pids: vec![pid], encrypted, ..fixed(base_url) };
            Ok(Target { ctx, processes: vec![banter], database: None })
        }
        Side::Cluster(n) => {
            let database = search::Database::create(Some(&cli.postgres_url), nonce).await?;
            let redis = (n > 1).then_some(cli.redis_url.as_str());
            let mut processes: Vec<Spawned> = Vec::new();
            let mut instances = Vec::new();
            // One after the other: the first brings the schema up to date before the others look.
            for _ in 0..n.max(1) {
                match spawn_server(cli, name, nonce, None, false, Some(&database.url()), redis).await {
                    Ok((process, base_url)) => {
                        processes.push(process);
                        let pusher = pusher_target(cli, &base_url, None);
                        instances.push((base_url, pusher));
                    }
                    Err(e) => {
                        for p in &mut processes {
                            p.stop();
                        }
                        database.remove().await;
                        return Err(e);
                    }
                }
            }
            let pids: Vec<u32> = processes.iter().map(|p| p.child.id()).collect();
            let (base_url, _) = instances.remove(0);
            let ctx =
                Ctx { server_pid: pids.first().copied(), server_pids: pids, others: instances, ..fixed(base_url) };
            Ok(Target { ctx, processes, database: Some(database) })
        }
        Side::Versus(bin) => {
            let (sockudo, port) = spawn_sockudo(cli, bin, nonce).await?;
            // On failure `sockudo` is dropped, which stops it.
            let (banter, base_url) = spawn_server(cli, name, nonce, Some(port), false, None, None).await?;
            let ctx = Ctx {
                pusher: pusher_target(cli, &base_url, Some(port)),
                base_url,
                // Memory per socket is the Pusher server's; CPU is both processes'.
                server_pid: Some(sockudo.child.id()),
                server_pids: vec![sockudo.child.id(), banter.child.id()],
                nonce,
                encrypted: false,
                corpus: None,
                others: Vec::new(),
            };
            Ok(Target { ctx, processes: vec![sockudo, banter], database: None })
        }
    }
}

/// Runs `names` against one side; a scenario whose processes do not start is a failed report.
async fn run_side(cli: &Cli, side: Side<'_>, names: &[&str], nonce: u64) -> Vec<ScenarioReport> {
    let mut reports = Vec::new();
    for (i, &name) in names.iter().enumerate() {
        eprintln!("banter-bench: running {name}{} ...", if cli.smoke { " (smoke)" } else { "" });
        let nonce = nonce + i as u64;
        let r = match target_for(cli, side, name, nonce).await {
            Ok(mut target) => {
                let r = run_one(name, cli, &target.ctx).await;
                if !r.ok() {
                    // The processes' logs go with their temporary directories; keep them.
                    for p in &mut target.processes {
                        p.stop();
                        let kept = cli.out_dir.join(format!("{name}-{}", p.log_name));
                        if std::fs::copy(p.dir.join(&p.log_name), &kept).is_ok() {
                            eprintln!("banter-bench: {} is in {}", p.log_name, kept.display());
                        }
                    }
                }
                target.finish().await;
                r
            }
            Err(e) => {
                let mut r = ScenarioReport::new(name);
                r.fail(format!("could not start the servers: {e}"));
                r
            }
        };
        print!("{}", report::render_text(std::slice::from_ref(&r)));
        reports.push(r);
    }
    reports
}

async fn run(cli: Cli, nofile: u64, budgets: Option<&[budgets::Budget]>) -> bool {
    let nonce =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
            % 1_000_000_000;
    if let Err(e) = std::fs::create_dir_all(&cli.out_dir) {
        eprintln!("banter-bench: cannot create {}: {e}", cli.out_dir.display());
        return false;
    }
    let (title, names) = scenarios(&cli);
    let ours = "Banter".to_owned();
    // One instance on PostgreSQL is what --cluster measures beside n of them.
    let (side, on) = if cli.postgres { (Side::Cluster(1), ", on PostgreSQL") } else { (Side::Embedded, "") };
    let mut runs = vec![(format!("{ours} (embedded Pusher server{on})"), run_side(&cli, side, &names, nonce).await)];
    let mut comparisons = Vec::new();
    if let Some(bin) = &cli.versus {
        let theirs = bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "other".into());
        let names: Vec<&str> = names.iter().copied().filter(|n| PUSHER_SCENARIOS.contains(n)).collect();
        let other = run_side(&cli, Side::Versus(bin), &names, nonce + 100).await;
        let rows = report::comparison_rows(&runs[0].1, &other);
        print!("{}", report::render_comparison(&ours, &theirs, &rows, false));
        comparisons.push(report::render_comparison(&ours, &theirs, &rows, true));
        runs.push((format!("{theirs} (Banter publishing to it over its HTTP API)"), other));
    }
    if cli.encrypted && names.contains(&"chat") {
        // Encryption off (the run above) beside on, same scenario, same run: "better by" reads as
        // what encryption costs.
        let encrypted = run_side(&cli, Side::Encrypted, &["chat"], nonce + 200).await;
        let (plain, sealed) = ("encryption off".to_owned(), "encryption on".to_owned());
        let rows = report::comparison_rows(&runs[0].1, &encrypted);
        print!("{}", report::render_comparison(&plain, &sealed, &rows, false));
        comparisons.push(report::render_comparison(&plain, &sealed, &rows, true));
        runs.push(("Banter with end-to-end encrypted channels (private-encrypted-)".to_owned(), encrypted));
    }
    if let Some(n) = cli.cluster {
        // One instance beside n, both on PostgreSQL: "better by" reads as what the cluster gains.
        let names: Vec<&str> = names.iter().copied().filter(|n| CLUSTER_SCENARIOS.contains(n)).collect();
        if !names.is_empty() {
            let one = run_side(&cli, Side::Cluster(1), &names, nonce + 300).await;
            let many = run_side(&cli, Side::Cluster(n), &names, nonce + 400).await;
            let (single, cluster) = ("1 instance".to_owned(), format!("{n} instances"));
            let rows = report::comparison_rows(&one, &many);
            print!("{}", report::render_comparison(&single, &cluster, &rows, false));
            comparisons.push(report::render_comparison(&single, &cluster, &rows, true));
            runs.push(("Banter, one instance on PostgreSQL".to_owned(), one));
            runs.push((format!("Banter, {n} instances on PostgreSQL and Redis, the load spread over them"), many));
        }
    }
    let comparison = (!comparisons.is_empty()).then(|| comparisons.join("\n"));

    let target = if cli.spawn {
        format!("{} started fresh for each scenario", cli.server_bin.display())
    } else {
        cli.base_url.clone()
    };
    let mut context = vec![
        ("date (UTC)".to_owned(), utc_now()),
        ("target".to_owned(), target),
        ("mode".to_owned(), if cli.smoke { "smoke".into() } else { "full".into() }),
        ("machine".to_owned(), format!("{} CPUs online, RLIMIT_NOFILE {nofile}", online_cpus())),
        (
            "pinning".to_owned(),
            if cli.pin {
                format!("generator on CPU 0, servers on CPUs {:?}", server_cpus())
            } else {
                "none: generator and servers share every CPU".to_owned()
            },
        ),
    ];
    if let Some(bin) = &cli.versus {
        context.push(("versus".to_owned(), bin.display().to_string()));
    }
    let database = if cli.postgres { "PostgreSQL (--postgres-url), a fresh schema per scenario" } else { "SQLite" };
    context.push(("database".to_owned(), database.to_owned()));
    if cli.encrypted {
        context.push(("encrypted".to_owned(), "chat also run with end-to-end encrypted channels".to_owned()));
    }
    if let Some(n) = cli.cluster {
        context.push((
            "cluster".to_owned(),
            format!("chat and fanout also run against 1 and {n} instances on one PostgreSQL (and Redis)"),
        ));
    }
    let mut md = report::render_markdown(title, &context, &runs, comparison.as_deref());
    let verdicts = budgets.map(|b| budgets::check(b, &runs[0].1, cli.smoke));
    if let Some(verdicts) = &verdicts {
        print!("{}", budgets::render(verdicts, false));
        md.push_str(&budgets::render(verdicts, true));
    }
    let path = cli.out_dir.join(format!("report-{title}.md"));
    if let Err(e) = std::fs::write(&path, md) {
        eprintln!("banter-bench: cannot write {}: {e}", path.display());
        return false;
    }
    let ok = runs.iter().all(|(_, reports)| reports.iter().all(ScenarioReport::ok))
        && verdicts.iter().flatten().all(|v| !v.broken);
    eprintln!("banter-bench: report written to {} ({})", path.display(), if ok { "ok" } else { "FAILED" });
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
        let g: room::RoomArgs = default_args();
        assert_eq!((g.members, g.rate), (1000, 10.0));
        let u: upload::UploadArgs = default_args();
        assert_eq!((u.users, u.size), (20, 25_000_000));
        let s: search::SearchArgs = default_args();
        assert_eq!((s.messages, s.conversations, s.concurrency), (1_000_000, 10_000, 10));
        let t: tti::TtiArgs = default_args();
        assert_eq!((t.runs, t.messages, t.contacts), (5, 60, 20));
        assert_eq!(tti::TtiArgs::smoke().script, t.script);
    }
}
