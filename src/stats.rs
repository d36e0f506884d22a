//! Counters and their snapshots.
//!
//! Hits and misses are counted on every lookup, inserts and evictions on
//! nearly every write of a full cache (and tenant evictions on every write
//! of a tenant at its cap), so these live in per-thread stripes (one cache
//! line each): counting them never writes a line that another core writes
//! too, and a thread that owns its stripe needs no locked instruction.
//! Everything else is rarer and goes to one shared atomic per event.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::thread_slot::{owned_slots, thread_slot, ThreadSlot};

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
    /// Of `evictions`, those that kept a tenant within `tenant_capacity`.
    pub tenant_evictions: u64,
    /// Entries removed because their time to live had passed.
    pub expirations: u64,
    /// Entries removed by `invalidate`, and entries dropped by
    /// `invalidate_all` as the cache reclaims them, at the moment the
    /// eviction listener hears of them. Until then they count in the
    /// cache's `entry_count` but not in their tenant's, nor here.
    /// `Cache::reclaim_invalidated` reclaims them all at once.
    pub invalidations: u64,
    /// Entries resident now.
    pub entry_count: u64,
    /// Total weight resident now.
    pub weighted_size: u64,
    /// Loader calls (every attempt, retries included).
    pub loads: u64,
    /// Loads that ended with a value (each counted once, retries or not).
    pub load_successes: u64,
    /// Loads that ended in an error after all their attempts, or panicked.
    pub load_failures: u64,
    /// Of `load_failures`, those whose loader panicked.
    pub load_panics: u64,
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

/// The counts kept in per-thread stripes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tally {
    Hit,
    Miss,
    Insert,
    Eviction,
    /// An eviction that kept a tenant within its cap (counted as an
    /// `Eviction` too).
    TenantEviction,
}

/// How many `Tally` kinds there are (the last one's index, plus one).
const TALLIES: usize = Tally::TenantEviction as usize + 1;

/// One cache line of `Tally` counters, indexed by `Tally as usize`.
#[repr(align(64))]
#[derive(Default)]
struct Stripe {
    counts: [AtomicU64; TALLIES],
}

/// Adds one to a counter. A thread that owns its stripe is its only
/// writer, so a plain load and store (no locked instruction) is exact;
/// the shared stripe needs the atomic add.
#[inline]
fn bump(counter: &AtomicU64, owned: bool) {
    if owned {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    } else {
        counter.fetch_add(1, Relaxed);
    }
}

/// Rarer events, counted in one shared atomic each per tenant and once
/// more in the cache totals.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    LoadSuccess,
    LoadPanic,
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
    /// One stripe per owned thread slot.
    stripes: Box<[Stripe]>,
    /// The stripe of threads without a slot of their own.
    shared: Stripe,
    events: [AtomicU64; 10],
    load_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..owned_slots()).map(|_| Stripe::default()).collect(),
            shared: Stripe::default(),
            events: Default::default(),
            load_nanos: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn tally(&self, t: Tally) {
        self.tally_in(thread_slot(), t);
    }

    /// Counts in the stripe of `slot`, this thread's.
    #[inline]
    pub(crate) fn tally_in(&self, slot: ThreadSlot, t: Tally) {
        self.tally_at(slot.index(), t);
    }

    /// Counts in stripe `index`, which must be this thread's own, or
    /// `SHARED`: an owned stripe is written without a locked add.
    #[inline]
    fn tally_at(&self, index: usize, t: Tally) {
        // `SHARED` is past every owned stripe, so one comparison decides.
        match self.stripes.get(index) {
            Some(stripe) => bump(&stripe.counts[t as usize], true),
            None => bump(&self.shared.counts[t as usize], false),
        }
    }

    /// The striped counts, summed over stripes.
    pub(crate) fn tallies(&self) -> [u64; TALLIES] {
        let mut sums = [0u64; TALLIES];
        for s in self.stripes.iter().chain([&self.shared]) {
            for (sum, c) in sums.iter_mut().zip(&s.counts) {
                *sum += c.load(Relaxed);
            }
        }
        sums
    }

    /// Folds another set's striped counts into this one's shared stripe
    /// (when a tenant is forgotten, its counts stay in the cache's totals).
    pub(crate) fn absorb_tallies(&self, other: &Counters) {
        for (c, n) in self.shared.counts.iter().zip(other.tallies()) {
            c.fetch_add(n, Relaxed);
        }
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
        let [hits, misses, inserts, evictions, tenant_evictions] = self.tallies();
        let e = |ev: Event| self.events[ev as usize].load(Relaxed);
        Stats {
            hits,
            misses,
            inserts,
            evictions,
            tenant_evictions,
            expirations: e(Event::Expiration),
            invalidations: e(Event::Invalidation),
            entry_count: 0,
            weighted_size: 0,
            loads: e(Event::Load),
            load_successes: e(Event::LoadSuccess),
            load_failures: e(Event::LoadFailure),
            load_panics: e(Event::LoadPanic),
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
    fn counts_in_the_shared_stripe_are_summed_with_the_owned_ones() {
        let c = Counters::new();
        c.tally_at(0, Tally::Hit);
        c.tally_at(crate::thread_slot::SHARED, Tally::Hit);
        c.tally_at(crate::thread_slot::SHARED, Tally::Miss);
        let s = c.snapshot();
        assert_eq!((s.hits, s.misses), (2, 1));
    }

    #[test]
    fn counters_sum_over_stripes_and_threads() {
        let c = std::sync::Arc::new(Counters::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.tally(Tally::Hit);
                    }
                    c.tally(Tally::Miss);
                    c.tally(Tally::Insert);
                    c.tally(Tally::TenantEviction);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        c.record(Event::Expiration, 3);
        let s = c.snapshot();
        assert_eq!(
            (
                s.hits,
                s.misses,
                s.inserts,
                s.tenant_evictions,
                s.expirations
            ),
            (4000, 4, 4, 4, 3)
        );
        assert!((s.hit_ratio() - 4000.0 / 4004.0).abs() < 1e-12);
    }
}
