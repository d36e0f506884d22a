//! Where the cache gets its time from.
//!
//! Expiry, `refresh_after`, `stale_if_error` and load deadlines all read the
//! same [`Clock`], so tests can move time forward with a [`ManualClock`]
//! instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source of monotonic time for one cache.
///
/// The default is [`SystemClock`]. Implement this to drive the cache from
/// your own time source; a clock must never go backwards.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The operating system's monotonic clock, [`Instant::now`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to: for tests of expiry and deadlines.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tenant_cache::{Cache, ManualClock};
///
/// let clock = ManualClock::new();
/// let cache: Cache<u32, u32> = Cache::builder()
///     .max_capacity(100)
///     .time_to_live(Duration::from_secs(10))
///     .clock(clock.clone())
///     .build();
/// let t = cache.tenant("a");
/// t.insert(1, 1);
/// clock.advance(Duration::from_secs(11));
/// assert_eq!(t.get(&1), None);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    base: Instant,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the instant it was made.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ManualInner {
                base: Instant::now(),
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves the clock forward by `by` (saturating after about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .offset_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(nanos))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let offset = Duration::from_nanos(self.inner.offset_nanos.load(Ordering::Acquire));
        self.inner
            .base
            .checked_add(offset)
            .unwrap_or(self.inner.base)
    }
}

/// The cache's view of time: the clock plus the epoch that stored
/// timestamps (nanoseconds as `u64`) are counted from.
pub(crate) struct Time {
    clock: Option<Arc<dyn Clock>>,
    epoch: Instant,
}

/// The longest a waiter blocks at once when the clock is not the system
/// clock: a custom clock can jump at any moment, so waiters look again often.
const CUSTOM_CLOCK_POLL: Duration = Duration::from_millis(1);

impl Time {
    pub(crate) fn new(clock: Option<Arc<dyn Clock>>) -> Self {
        let epoch = match &clock {
            Some(c) => c.now(),
            None => Instant::now(),
        };
        Self { clock, epoch }
    }

    pub(crate) fn now(&self) -> Instant {
        match &self.clock {
            Some(c) => c.now(),
            None => Instant::now(),
        }
    }

    /// Nanoseconds from the epoch to `at` (0 for instants before it).
    pub(crate) fn stamp(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX).min(u64::MAX - 1)
    }

    pub(crate) fn now_stamp(&self) -> u64 {
        self.stamp(self.now())
    }

    /// `stamp + d`, saturating at `u64::MAX`, which means "never": stamps
    /// themselves stop at `u64::MAX - 1`, so a saturated expiry is never
    /// reached.
    pub(crate) fn after(stamp: u64, d: Duration) -> u64 {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        stamp.saturating_add(nanos)
    }

    /// `stamp - d`, saturating at 0: the stamp `d` before `stamp`.
    pub(crate) fn before(stamp: u64, d: Duration) -> u64 {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        stamp.saturating_sub(nanos)
    }

    /// How long a waiter may block before looking at the clock again.
    pub(crate) fn park_slice(&self, remaining: Duration) -> Duration {
        match self.clock {
            Some(_) => remaining.min(CUSTOM_CLOCK_POLL),
            None => remaining,
        }
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.clock {
            Some(c) => f.debug_tuple("Time").field(c).finish(),
            None => f.write_str("Time(SystemClock)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now() - t0, Duration::from_secs(3));
    }

    #[test]
    fn stamps_saturate_instead_of_overflowing() {
        let time = Time::new(None);
        assert_eq!(Time::after(u64::MAX - 5, Duration::from_secs(1)), u64::MAX);
        assert_eq!(Time::after(0, Duration::MAX), u64::MAX);
        assert!(time.now_stamp() < u64::MAX - 1);
    }
}
