//! [`Retry`]: how often a failing loader is called again, and how long the
//! leader waits in between.

use std::cell::Cell;
use std::time::Duration;

/// A retry policy for fallible loads: a number of attempts with
/// exponential backoff and jitter between them. Retries never start once
/// the deadline has passed, and a backoff never sleeps past it.
///
/// One retry loop runs per key: waiters share the leader's, they do not
/// retry on their own.
///
/// ```
/// use std::time::Duration;
/// use tenant_cache::Retry;
///
/// let retry = Retry::attempts(3)
///     .backoff(Duration::from_millis(2))
///     .max_backoff(Duration::from_millis(50));
/// assert_eq!(retry.max_attempts(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
}

impl Retry {
    /// One attempt, no retry (the default).
    pub const NONE: Retry = Retry {
        attempts: 1,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_secs(1),
    };

    /// `attempts` calls of the loader in all (at least 1), with a 1 ms
    /// base backoff doubling up to 1 s.
    pub fn attempts(attempts: u32) -> Self {
        Retry {
            attempts: attempts.max(1),
            ..Retry::NONE
        }
    }

    /// The wait before the first retry; each later one doubles it.
    pub fn backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The longest wait between two attempts.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// How many times the loader may be called.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The pause before attempt `attempt` (2 for the first retry): the
    /// exponential step times a random factor in [0.5, 1.0), so that many
    /// servers retrying the same backend do not do so in step.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(2).min(30);
        let step = self
            .backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        step.mul_f64(0.5 + 0.5 * unit_random())
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry::NONE
    }
}

/// A number in [0, 1) from a per-thread xorshift generator: jitter needs
/// spread, not quality.
fn unit_random() -> f64 {
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0) });
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = ahash::RandomState::new().hash_one(0u8) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        let r = Retry::attempts(10)
            .backoff(Duration::from_millis(4))
            .max_backoff(Duration::from_millis(20));
        for _ in 0..100 {
            let d2 = r.delay(2);
            assert!(d2 >= Duration::from_millis(2) && d2 < Duration::from_millis(4));
            let d3 = r.delay(3);
            assert!(d3 >= Duration::from_millis(4) && d3 < Duration::from_millis(8));
            assert!(r.delay(9) < Duration::from_millis(20));
        }
    }

    #[test]
    fn jitter_spreads_delays_over_the_range_and_differs_between_threads() {
        let r = Retry::attempts(3).backoff(Duration::from_millis(4));
        let sample = move || (0..64).map(|_| r.delay(2)).collect::<Vec<_>>();
        let here = sample();
        let there = std::thread::spawn(sample).join().unwrap();
        let low = here
            .iter()
            .filter(|d| **d < Duration::from_millis(3))
            .count();
        assert!(
            low > 0 && low < here.len(),
            "all 64 delays in one half of [2, 4) ms: {here:?}"
        );
        let distinct: std::collections::HashSet<_> = here.iter().collect();
        assert!(distinct.len() >= 48, "a short cycle: {here:?}");
        let shared = here.iter().filter(|d| there.contains(d)).count();
        assert!(shared < 8, "two threads drew {shared} of 64 delays alike");
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(Retry::attempts(0).max_attempts(), 1);
    }
}
