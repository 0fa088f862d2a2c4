//! Trying a send again by itself when it could not get through while the browser is online: the
//! server answered 502 or 503 (a proxy while it restarts, or its own "busy"), or the request broke
//! on the way. The outbox keeps such a message as waiting; without this it would wait for the
//! browser's `online` event or a new socket subscription, which never come when only the HTTP
//! path failed.
//!
//! The waits double from [`FIRST`] up to [`LONGEST`], each shortened by up to half at random so
//! that the tabs a restart failed together do not all come back in the same instant.

use std::time::Duration;

use leptos::prelude::*;

/// The wait before the first retry.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two retries.
pub const LONGEST: Duration = Duration::from_secs(30);

/// The wait before retry number `attempt` (0 is the first), with `spread` in `0.0..1.0` (random):
/// `FIRST · 2^attempt`, at most `LONGEST`, less up to half of it.
pub fn delay(attempt: u32, spread: f64) -> Duration {
    let full = FIRST.saturating_mul(1u32 << attempt.min(16)).min(LONGEST);
    full.mul_f64(1.0 - spread.clamp(0.0, 1.0) / 2.0)
}

/// One retry schedule: at most one retry waits at any time, and the waits grow until a send
/// gets through. Dropped with its component (a waiting retry is cancelled then).
#[derive(Clone, Copy)]
pub struct Retry {
    attempt: StoredValue<u32>,
    waiting: StoredValue<Option<TimeoutHandle>>,
}

impl Retry {
    pub fn new() -> Self {
        let retry = Self { attempt: StoredValue::new(0), waiting: StoredValue::new(None) };
        on_cleanup(move || retry.cancel());
        retry
    }

    /// A send failed: `again` runs after the next wait, in place of a retry already waiting.
    /// Nothing is scheduled while the browser is offline (its `online` event sends then), nor
    /// once the component is gone (a send that was under way when it went ends here).
    pub fn schedule(&self, again: impl FnOnce() + 'static) {
        self.cancel();
        let Some(attempt) = self.attempt.try_get_value() else { return };
        if !super::live::browser_online() {
            return;
        }
        self.attempt.try_set_value(attempt.saturating_add(1));
        let waiting = self.waiting;
        let handle = set_timeout_with_handle(
            move || {
                waiting.try_set_value(None);
                again();
            },
            delay(attempt, spread()),
        );
        self.waiting.try_set_value(handle.ok());
    }

    /// A send got through: the next failure waits [`FIRST`] again.
    pub fn succeeded(&self) {
        self.attempt.try_set_value(0);
    }

    fn cancel(&self) {
        if let Some(Some(handle)) = self.waiting.try_update_value(Option::take) {
            handle.clear();
        }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Self::new()
    }
}

/// A random number in `0.0..1.0` from the browser's random source (0 where there is none).
pub fn spread() -> f64 {
    f64::from(u16::from_le_bytes(super::random_bytes())) / 65_536.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_one_second_up_to_thirty() {
        let waits: Vec<u64> = (0..8).map(|attempt| delay(attempt, 0.0).as_millis() as u64).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
        assert_eq!(delay(u32::MAX, 0.0), LONGEST, "no overflow however long it fails");
    }

    #[test]
    fn the_random_spread_shortens_a_wait_by_at_most_half() {
        assert_eq!(delay(0, 0.5), Duration::from_millis(750));
        assert_eq!(delay(3, 0.999_999).as_millis(), 4_000);
        assert_eq!(delay(5, 1.0), Duration::from_secs(15));
        assert_eq!(delay(2, 7.0), Duration::from_secs(2), "out-of-range spreads are clamped");
        assert_eq!(delay(2, -1.0), Duration::from_secs(4));
    }
}
