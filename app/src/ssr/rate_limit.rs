//! Sliding-window failure counters, used to slow down password guessing per account and per
//! client address. Kept in process memory: limits apply per server instance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many tracked keys, stale ones are dropped on the next write (bounded memory).
const MAX_KEYS_BEFORE_PRUNE: usize = 10_000;

pub struct FailureWindow {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureWindow {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self { max_failures, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds)` until `key` may try again; `Ok` when it is under the limit.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(times) = map.get(key) else { return Ok(()) };
        let recent: Vec<&Instant> = times.iter().filter(|t| now.duration_since(**t) < self.window).collect();
        if recent.len() < self.max_failures {
            return Ok(());
        }
        // Blocked until the oldest failure that still counts leaves the window.
        let oldest = recent[recent.len() - self.max_failures];
        let wait = self.window.saturating_sub(now.duration_since(*oldest));
        Err(wait.as_secs_f64().ceil() as u64)
    }

    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= MAX_KEYS_BEFORE_PRUNE {
            let window = self.window;
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let times = map.entry(key.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        times.push_back(now);
        // Only the newest `max_failures` entries can ever matter.
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

/// Sign-in throttling: 5 failures per account and 20 per address in 15 minutes.
pub struct LoginLimiter {
    pub per_account: FailureWindow,
    pub per_address: FailureWindow,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            per_account: FailureWindow::new(5, Duration::from_secs(15 * 60)),
            per_address: FailureWindow::new(20, Duration::from_secs(15 * 60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_moves_on() {
        let limiter = FailureWindow::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check("k", t0 + Duration::from_secs(i)), Ok(()));
            limiter.record_failure("k", t0 + Duration::from_secs(i));
        }
        // The oldest failure (t0) leaves the window at t0+60.
        assert_eq!(limiter.check("k", t0 + Duration::from_secs(10)), Err(50));
        assert_eq!(limiter.check("other", t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(limiter.check("k", t0 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn clear_forgets_a_key() {
        let limiter = FailureWindow::new(1, Duration::from_secs(60));
        let now = Instant::now();
        limiter.record_failure("k", now);
        assert!(limiter.check("k", now).is_err());
        limiter.clear("k");
        assert_eq!(limiter.check("k", now), Ok(()));
    }
}
