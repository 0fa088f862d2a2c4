//! Sliding-window event counters: sign-ins per account and per address, sign-ups per address,
//! message sends and uploads per user. Kept in process memory, or, when several instances share a
//! Redis (`REDIS_URL`), in Redis with the same rules, so a client cannot multiply its allowance by
//! spreading requests over instances (see [`SlidingWindow::shared_through`]).
//!
//! Keys are hashed before they are stored (in memory with a per-process random key, in Redis with
//! SHA-256), so a long key (a megabyte "e-mail") costs a few bytes, and the in-memory table never
//! holds more than [`MAX_KEYS`] of them.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::ssr::security::{Limit, Limits};

/// Most keys one limiter tracks. Past it, a new key is refused until stale ones have been dropped:
/// refusing is the safe side for a limiter (evicting would let a flood reset everyone's counters).
pub const MAX_KEYS: usize = 100_000;

/// How often, at most, stale keys are swept out (a sweep visits every key under the lock).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This key is over its limit; it may try again in this many seconds.
    Wait(u64),
    /// The table is full of other keys; try again in this many seconds.
    Full(u64),
}

impl Refusal {
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::Wait(secs) | Self::Full(secs) => secs,
        }
    }
}

/// At most `limit.max` events per `limit.window` for each key; a limit of 0 allows everything.
pub struct SlidingWindow {
    limit: Limit,
    hasher: RandomState,
    state: Mutex<Table>,
    shared: Option<Shared>,
}

/// The window kept in Redis for every instance: one sorted set of event times per key.
struct Shared {
    redis: ConnectionManager,
    /// `banter:rl:{limiter name}:`
    prefix: String,
    /// Whether the "Redis unreachable, counting here" warning is out (once per outage).
    degraded: AtomicBool,
}

/// Drops the events that left the window, then counts one if there is room. Returns 0 when counted,
/// else the milliseconds until the oldest event that still counts leaves the window.
const SHARED_ACQUIRE: &str = r"
local now, window, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], n - max, n - max, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
";

struct Table {
    events: HashMap<u64, VecDeque<Instant>>,
    next_sweep: Option<Instant>,
}

/// One counted event, to give back with [`SlidingWindow::refund`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: u64,
    at: Instant,
    /// Counted in Redis: the sorted set and the event's member there.
    shared: Option<(String, String)>,
}

impl SlidingWindow {
    pub fn new(max_events: usize, window: Duration) -> Self {
        Self::from_limit(Limit { max: max_events, window })
    }

    pub fn from_limit(limit: Limit) -> Self {
        Self {
            limit,
            hasher: RandomState::new(),
            state: Mutex::new(Table { events: HashMap::new(), next_sweep: None }),
            shared: None,
        }
    }

    /// Keeps the window in Redis, under `name`, for every instance that uses the same Redis.
    /// While Redis cannot be reached, events are counted in this process (as without Redis), with
    /// a warning: a limiter never fails a request because its store is down.
    pub fn shared_through(mut self, redis: ConnectionManager, name: &str) -> Self {
        self.shared = Some(Shared { redis, prefix: format!("banter:rl:{name}:"), degraded: AtomicBool::new(false) });
        self
    }

    fn key(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update is a single insert/remove or push/pop: a poisoned table is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks and, when under the limit, counts one event, atomically (under one lock, or in one
    /// Redis script): concurrent callers cannot all slip through between a check and a record.
    pub async fn acquire(&self, key: &str, now: Instant) -> Result<Ticket, Refusal> {
        if let Some(shared) = &self.shared
            && self.limit.max > 0
        {
            match shared.acquire(key, self.limit).await {
                Ok(counted) => {
                    shared.back();
                    return counted;
                }
                Err(e) => shared.down(&e),
            }
        }
        self.acquire_here(key, now)
    }

    fn acquire_here(&self, key: &str, now: Instant) -> Result<Ticket, Refusal> {
        let key = self.key(key);
        let ticket = Ticket { key, at: now, shared: None };
        if self.limit.max == 0 {
            return Ok(ticket);
        }
        let window = self.limit.window;
        let mut table = self.table();
        if table.next_sweep.is_none_or(|at| now >= at) {
            table.events.retain(|_, times| times.back().is_some_and(|t| now.saturating_duration_since(*t) < window));
            table.next_sweep = Some(now + SWEEP_EVERY);
        }
        if !table.events.contains_key(&key) && table.events.len() >= MAX_KEYS {
            return Err(Refusal::Full(SWEEP_EVERY.as_secs().max(1)));
        }
        let times = table.events.entry(key).or_default();
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
            times.pop_front();
        }
        if times.len() >= self.limit.max {
            // Blocked until the oldest event that still counts leaves the window.
            let oldest = times[times.len() - self.limit.max];
            let wait = window.saturating_sub(now.saturating_duration_since(oldest));
            return Err(Refusal::Wait((wait.as_secs_f64().ceil() as u64).max(1)));
        }
        times.push_back(now);
        Ok(ticket)
    }

    /// Takes back a counted event, for an attempt that turned out not to count (a successful
    /// sign-in, a send that stored nothing).
    pub async fn refund(&self, ticket: Ticket) {
        if let (Some(shared), Some((set, member))) = (&self.shared, &ticket.shared) {
            let mut redis = shared.redis.clone();
            if let Err(e) = redis::cmd("ZREM").arg(set).arg(member).query_async::<()>(&mut redis).await {
                shared.down(&e);
            }
            return;
        }
        let mut table = self.table();
        if let Some(times) = table.events.get_mut(&ticket.key)
            && let Some(i) = times.iter().rposition(|t| *t == ticket.at)
        {
            times.remove(i);
            if times.is_empty() {
                table.events.remove(&ticket.key);
            }
        }
    }

    /// Keys tracked right now (tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.table().events.len()
    }
}

impl Shared {
    async fn acquire(&self, key: &str, limit: Limit) -> redis::RedisResult<Result<Ticket, Refusal>> {
        let digest = Sha256::digest(key.as_bytes());
        let set = format!("{}{}", self.prefix, hex::encode(&digest[..16]));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let member = format!("{now}-{:016x}", rand::random::<u64>());
        let window_ms = limit.window.as_millis() as u64;
        let wait_ms: u64 = redis::Script::new(SHARED_ACQUIRE)
            .key(&set)
            .arg(now)
            .arg(window_ms)
            .arg(limit.max)
            .arg(&member)
            .invoke_async(&mut self.redis.clone())
            .await?;
        if wait_ms > 0 {
            return Ok(Err(Refusal::Wait(wait_ms.div_ceil(1000).max(1))));
        }
        Ok(Ok(Ticket { key: 0, at: Instant::now(), shared: Some((set, member)) }))
    }

    fn down(&self, error: &redis::RedisError) {
        metrics::counter!("banter_redis_errors_total", "component" => "rate_limits").increment(1);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(limiter = %self.prefix, %error, "rate limits: Redis unreachable, counting in this instance only until it is back");
        }
    }

    fn back(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(limiter = %self.prefix, "rate limits: shared through Redis again");
        }
    }
}

/// The key for per-address limits: the address itself for IPv4, its /64 network for IPv6 (one
/// subscriber usually holds a whole /64, so counting single IPv6 addresses would count nothing).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The account limits: sign-ins per account and per address, sign-ups per address.
pub struct AccountLimiter {
    pub sign_ins_per_account: SlidingWindow,
    pub sign_ins_per_address: SlidingWindow,
    pub sign_ups_per_address: SlidingWindow,
}

impl AccountLimiter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            sign_ins_per_account: SlidingWindow::from_limit(limits.sign_ins_per_account),
            sign_ins_per_address: SlidingWindow::from_limit(limits.sign_ins_per_address),
            sign_ups_per_address: SlidingWindow::from_limit(limits.sign_ups_per_address),
        }
    }

    /// The three windows, kept in Redis for every instance under names that start with
    /// `namespace` (see [`SlidingWindow::shared_through`]).
    pub fn shared_through(self, redis: &ConnectionManager, namespace: &str) -> Self {
        let name = |limiter: &str| format!("{namespace}{limiter}");
        Self {
            sign_ins_per_account: self
                .sign_ins_per_account
                .shared_through(redis.clone(), &name("sign-ins-per-account")),
            sign_ins_per_address: self
                .sign_ins_per_address
                .shared_through(redis.clone(), &name("sign-ins-per-address")),
            sign_ups_per_address: self
                .sign_ups_per_address
                .shared_through(redis.clone(), &name("sign-ups-per-address")),
        }
    }
}

impl Default for AccountLimiter {
    fn default() -> Self {
        Self::new(&Limits::default())
    }
}

/// Message sends with the default limit (20 per user in any 10 seconds).
pub fn message_sends() -> SlidingWindow {
    SlidingWindow::from_limit(Limits::default().sends_per_user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_max_events_until_the_window_moves_on() {
        let limiter = SlidingWindow::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.acquire("k", t0 + Duration::from_secs(i)).await.is_ok());
        }
        // The oldest event (t0) leaves the window at t0+60.
        assert_eq!(limiter.acquire("k", t0 + Duration::from_secs(10)).await, Err(Refusal::Wait(50)));
        assert!(limiter.acquire("other", t0 + Duration::from_secs(10)).await.is_ok());
        assert!(limiter.acquire("k", t0 + Duration::from_secs(60)).await.is_ok());
    }

    #[tokio::test]
    async fn a_refund_takes_back_exactly_one_event() {
        let limiter = SlidingWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        limiter.acquire("k", t0).await.unwrap();
        let second = limiter.acquire("k", t1).await.unwrap();
        assert!(limiter.acquire("k", t1).await.is_err());
        limiter.refund(second).await;
        assert!(limiter.acquire("k", t1).await.is_ok(), "the refunded slot is free again");
        assert!(limiter.acquire("k", t1).await.is_err(), "and only that one");
    }

    fn redis(url: &str) -> ConnectionManager {
        let client = redis::Client::open(url).unwrap();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        ConnectionManager::new_lazy_with_config(client, config).unwrap()
    }

    /// Two limiters on one Redis are one window (as two instances are); a refund gives back that
    /// one event there. Redis: `BANTER_TEST_REDIS_URL`, else the machine's 6379.
    #[tokio::test]
    async fn a_shared_window_is_one_window_for_every_instance() {
        let url = std::env::var("BANTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let name = format!("test-{:016x}", rand::random::<u64>());
        let one = SlidingWindow::new(3, Duration::from_secs(60)).shared_through(redis(&url), &name);
        let two = SlidingWindow::new(3, Duration::from_secs(60)).shared_through(redis(&url), &name);
        let now = Instant::now();
        one.acquire("k", now).await.unwrap();
        let second = two.acquire("k", now).await.unwrap();
        one.acquire("k", now).await.unwrap();
        let refused = two.acquire("k", now).await.unwrap_err();
        assert!(matches!(refused, Refusal::Wait(59 | 60)), "{refused:?}");
        assert!(one.acquire("other", now).await.is_ok(), "keys have their own windows");
        two.refund(second).await;
        assert!(one.acquire("k", now).await.is_ok(), "the refunded slot is free again");
        assert!(two.acquire("k", now).await.is_err(), "and only that one");
        assert_eq!(one.tracked_keys(), 0, "nothing was counted in the process");
    }

    /// With its Redis unreachable a limiter counts in the process, with the same rules.
    #[tokio::test]
    async fn a_shared_window_without_redis_counts_here() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let limiter = SlidingWindow::new(2, Duration::from_secs(60))
            .shared_through(redis(&format!("redis://127.0.0.1:{closed}")), "x");
        let now = Instant::now();
        limiter.acquire("k", now).await.unwrap();
        limiter.acquire("k", now).await.unwrap();
        assert_eq!(limiter.acquire("k", now).await, Err(Refusal::Wait(60)));
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[tokio::test]
    async fn a_zero_limit_allows_everything_and_tracks_nothing() {
        let limiter = SlidingWindow::new(0, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..100 {
            assert!(limiter.acquire("k", now).await.is_ok());
        }
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn huge_keys_cost_a_hash_and_the_table_is_capped() {
        let limiter = SlidingWindow::new(1, Duration::from_secs(60));
        let now = Instant::now();
        let huge = "x".repeat(1 << 20);
        limiter.acquire(&huge, now).await.unwrap();
        assert_eq!(limiter.acquire(&huge, now).await, Err(Refusal::Wait(60)));
        for i in 1..MAX_KEYS {
            limiter.acquire(&i.to_string(), now).await.unwrap();
        }
        assert_eq!(limiter.tracked_keys(), MAX_KEYS);
        assert_eq!(limiter.acquire("one too many", now).await, Err(Refusal::Full(1)));
        // Once the window has passed, the next sweep drops them all.
        let later = now + Duration::from_secs(61);
        assert!(limiter.acquire("one too many", later).await.is_ok());
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(address_key("203.0.113.7".parse().unwrap()), "203.0.113.7");
    }
}
