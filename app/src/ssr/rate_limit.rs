//! Sliding-window event counters: sign-ins per account and per address, sign-ups per address,
//! message sends per user. Kept in process memory: limits apply per server instance.
//!
//! Keys are hashed (with a per-process random key) before they are stored, so a long key (a
//! megabyte "e-mail") costs 8 bytes, and the table never holds more than [`MAX_KEYS`] of them.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}

struct Table {
    events: HashMap<u64, VecDeque<Instant>>,
    next_sweep: Option<Instant>,
}

/// One counted event, to give back with [`SlidingWindow::refund`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    key: u64,
    at: Instant,
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
        }
    }

    fn key(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update is a single insert/remove or push/pop: a poisoned table is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks and, when under the limit, counts one event, under one lock: concurrent callers
    /// cannot all slip through between a check and a record.
    pub fn acquire(&self, key: &str, now: Instant) -> Result<Ticket, Refusal> {
        let key = self.key(key);
        let ticket = Ticket { key, at: now };
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
    pub fn refund(&self, ticket: Ticket) {
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

    #[test]
    fn blocks_after_max_events_until_the_window_moves_on() {
        let limiter = SlidingWindow::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.acquire("k", t0 + Duration::from_secs(i)).is_ok());
        }
        // The oldest event (t0) leaves the window at t0+60.
        assert_eq!(limiter.acquire("k", t0 + Duration::from_secs(10)), Err(Refusal::Wait(50)));
        assert!(limiter.acquire("other", t0 + Duration::from_secs(10)).is_ok());
        assert!(limiter.acquire("k", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_refund_takes_back_exactly_one_event() {
        let limiter = SlidingWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        limiter.acquire("k", t0).unwrap();
        let second = limiter.acquire("k", t1).unwrap();
        assert!(limiter.acquire("k", t1).is_err());
        limiter.refund(second);
        assert!(limiter.acquire("k", t1).is_ok(), "the refunded slot is free again");
        assert!(limiter.acquire("k", t1).is_err(), "and only that one");
    }

    #[test]
    fn a_zero_limit_allows_everything_and_tracks_nothing() {
        let limiter = SlidingWindow::new(0, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..100 {
            assert!(limiter.acquire("k", now).is_ok());
        }
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[test]
    fn huge_keys_cost_a_hash_and_the_table_is_capped() {
        let limiter = SlidingWindow::new(1, Duration::from_secs(60));
        let now = Instant::now();
        let huge = "x".repeat(1 << 20);
        limiter.acquire(&huge, now).unwrap();
        assert_eq!(limiter.acquire(&huge, now), Err(Refusal::Wait(60)));
        for i in 1..MAX_KEYS {
            limiter.acquire(&i.to_string(), now).unwrap();
        }
        assert_eq!(limiter.tracked_keys(), MAX_KEYS);
        assert_eq!(limiter.acquire("one too many", now), Err(Refusal::Full(1)));
        // Once the window has passed, the next sweep drops them all.
        let later = now + Duration::from_secs(61);
        assert!(limiter.acquire("one too many", later).is_ok());
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
