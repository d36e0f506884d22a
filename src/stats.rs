//! Counters and their snapshots.
//!
//! Hits and misses are counted on every lookup, so they live in per-thread
//! stripes (one cache line each): a hit never writes a line that another
//! core writes too. Everything else is counted on paths that already take a
//! shard's write lock, where one shared atomic costs nothing extra.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// A snapshot of a cache's or a tenant's counters.
///
/// Counters only grow, except `entry_count` and `weighted_size`, which say
/// what is resident at the moment of the snapshot.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Lookups that found a live value.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired value).
    pub misses: u64,
    /// Values stored by `insert`, `insert_with_ttl` or a completed load.
    pub inserts: u64,
    /// Entries removed to respect `max_capacity` or `tenant_capacity`,
    /// including entries refused because they were heavier than the capacity.
    pub evictions: u64,
    /// Entries removed because their time to live had passed.
    pub expirations: u64,
    /// Entries removed by `invalidate` or `invalidate_all`.
    pub invalidations: u64,
    /// Entries resident now.
    pub entry_count: u64,
    /// Total weight resident now.
    pub weighted_size: u64,
    /// Loader calls (every attempt, retries included).
    pub loads: u64,
    /// Loads that ended in an error after all their attempts, or panicked.
    pub load_failures: u64,
    /// Callers whose deadline passed before a value was available.
    pub load_timeouts: u64,
    /// Callers that joined a load another caller was already running.
    pub coalesced: u64,
    /// Callers served by their fallback after a failed or late load.
    pub fallbacks: u64,
    /// Callers served an expired value after a failed or late load.
    pub stale_served: u64,
    /// Time spent inside loaders, summed over all loader calls.
    pub total_load_time: Duration,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0.0 before any lookup.
    pub fn hit_ratio(&self) -> f64 {
        let requests = self.requests();
        if requests == 0 {
            0.0
        } else {
            self.hits as f64 / requests as f64
        }
    }

    /// `hits + misses`.
    pub fn requests(&self) -> u64 {
        self.hits.saturating_add(self.misses)
    }
}

/// One cache line of lookup counters, written by the threads mapped to it.
#[repr(align(64))]
#[derive(Default)]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Most stripes a counter set gets: beyond this, threads share stripes
/// rather than every tenant paying a cache line per core.
const MAX_STRIPES: usize = 16;

fn stripe_count() -> usize {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.load(Relaxed);
    if n != 0 {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = cores.next_power_of_two().min(MAX_STRIPES);
    COUNT.store(n, Relaxed);
    n
}

/// This thread's stripe number, handed out round-robin on first use.
fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) });
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Relaxed);
        s.set(v);
        v
    })
}

/// What can happen to a counter outside the lookup path.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Insert,
    Eviction,
    Expiration,
    Invalidation,
    Load,
    LoadFailure,
    LoadTimeout,
    Coalesced,
    Fallback,
    StaleServed,
}

/// The live counters of one tenant.
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
    events: [AtomicU64; 10],
    load_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..stripe_count()).map(|_| Stripe::default()).collect(),
            events: Default::default(),
            load_nanos: AtomicU64::new(0),
        }
    }

    fn stripe(&self) -> &Stripe {
        &self.stripes[thread_stripe() & (self.stripes.len() - 1)]
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.stripe().hits.fetch_add(1, Relaxed);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        self.stripe().misses.fetch_add(1, Relaxed);
    }

    pub(crate) fn record(&self, event: Event, n: u64) {
        if n != 0 {
            self.events[event as usize].fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn load_time(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.load_nanos.fetch_add(nanos, Relaxed);
    }

    /// The counters as a snapshot (without entry count and weight, which
    /// the caller knows better).
    pub(crate) fn snapshot(&self) -> Stats {
        let (mut hits, mut misses) = (0u64, 0u64);
        for s in self.stripes.iter() {
            hits += s.hits.load(Relaxed);
            misses += s.misses.load(Relaxed);
        }
        let e = |ev: Event| self.events[ev as usize].load(Relaxed);
        Stats {
            hits,
            misses,
            inserts: e(Event::Insert),
            evictions: e(Event::Eviction),
            expirations: e(Event::Expiration),
            invalidations: e(Event::Invalidation),
            entry_count: 0,
            weighted_size: 0,
            loads: e(Event::Load),
            load_failures: e(Event::LoadFailure),
            load_timeouts: e(Event::LoadTimeout),
            coalesced: e(Event::Coalesced),
            fallbacks: e(Event::Fallback),
            stale_served: e(Event::StaleServed),
            total_load_time: Duration::from_nanos(self.load_nanos.load(Relaxed)),
        }
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_is_zero_before_any_lookup() {
        assert_eq!(Stats::default().hit_ratio(), 0.0);
    }

    #[test]
    fn counters_sum_over_stripes_and_threads() {
        let c = std::sync::Arc::new(Counters::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.hit();
                    }
                    c.miss();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        c.record(Event::Insert, 3);
        let s = c.snapshot();
        assert_eq!((s.hits, s.misses, s.inserts), (4000, 4, 3));
        assert!((s.hit_ratio() - 4000.0 / 4004.0).abs() < 1e-12);
    }
}
