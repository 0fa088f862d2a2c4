//! Sliding-window event counters: password guessing per account and per address, message sends
//! per user. Kept in process memory: limits apply per server instance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many tracked keys, stale ones are dropped on the next write (bounded memory).
const MAX_KEYS_BEFORE_PRUNE: usize = 10_000;

/// At most `max_events` per `window` for each key.
pub struct SlidingWindow {
    max_events: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    pub fn new(max_events: usize, window: Duration) -> Self {
        Self { max_events, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds)` until `key` may try again; `Ok` when it is under the limit.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::wait_for(&map, key, now, self.max_events, self.window)
    }

    fn wait_for(
        map: &HashMap<String, VecDeque<Instant>>,
        key: &str,
        now: Instant,
        max_events: usize,
        window: Duration,
    ) -> Result<(), u64> {
        let Some(times) = map.get(key) else { return Ok(()) };
        let recent: Vec<&Instant> = times.iter().filter(|t| now.duration_since(**t) < window).collect();
        if recent.len() < max_events {
            return Ok(());
        }
        // Blocked until the oldest event that still counts leaves the window.
        let oldest = recent[recent.len() - max_events];
        let wait = window.saturating_sub(now.duration_since(*oldest));
        Err(wait.as_secs_f64().ceil() as u64)
    }

    /// Checks and, when under the limit, counts one event, under one lock: concurrent callers
    /// cannot all slip through between a check and a record.
    pub fn acquire(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::wait_for(&map, key, now, self.max_events, self.window)?;
        self.push(&mut map, key, now);
        Ok(())
    }

    pub fn record(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.push(&mut map, key, now);
    }

    fn push(&self, map: &mut HashMap<String, VecDeque<Instant>>, key: &str, now: Instant) {
        if map.len() >= MAX_KEYS_BEFORE_PRUNE {
            let window = self.window;
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let times = map.entry(key.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        times.push_back(now);
        // Only the newest `max_events` entries can ever matter.
        while times.len() > self.max_events {
            times.pop_front();
        }
    }

    /// Takes back the event counted for `key` at `at` (by [`Self::acquire`] or [`Self::record`]),
    /// for an attempt that turned out not to count: nothing was stored.
    pub fn refund(&self, key: &str, at: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(times) = map.get_mut(key)
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

/// Sign-in throttling: 5 failures per account and 20 per address in 15 minutes.
pub struct LoginLimiter {
    pub per_account: SlidingWindow,
    pub per_address: SlidingWindow,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            per_account: SlidingWindow::new(5, Duration::from_secs(15 * 60)),
            per_address: SlidingWindow::new(20, Duration::from_secs(15 * 60)),
        }
    }
}

/// Message sends: 20 per user in any 10 seconds.
pub fn message_sends() -> SlidingWindow {
    SlidingWindow::new(20, Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_events_until_the_window_moves_on() {
        let limiter = SlidingWindow::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check("k", t0 + Duration::from_secs(i)), Ok(()));
            limiter.record("k", t0 + Duration::from_secs(i));
        }
        // The oldest failure (t0) leaves the window at t0+60.
        assert_eq!(limiter.check("k", t0 + Duration::from_secs(10)), Err(50));
        assert_eq!(limiter.check("other", t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(limiter.check("k", t0 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn a_refund_takes_back_exactly_one_event() {
        let limiter = SlidingWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.acquire("k", t0), Ok(()));
        assert_eq!(limiter.acquire("k", t1), Ok(()));
        assert!(limiter.acquire("k", t1).is_err());
        limiter.refund("k", t1);
        assert_eq!(limiter.acquire("k", t1), Ok(()), "the refunded slot is free again");
        assert!(limiter.acquire("k", t1).is_err(), "and only that one");
        limiter.refund("unknown", t1);
    }

    #[test]
    fn clear_forgets_a_key() {
        let limiter = SlidingWindow::new(1, Duration::from_secs(60));
        let now = Instant::now();
        limiter.record("k", now);
        assert!(limiter.check("k", now).is_err());
        limiter.clear("k");
        assert_eq!(limiter.check("k", now), Ok(()));
    }
}
