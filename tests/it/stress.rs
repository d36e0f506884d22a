use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tenant_cache::{Cache, ManualClock, RemovalCause, Stats, TenantId};

use crate::support::Rng;

#[path = "../workload/mod.rs"]
mod workload;

#[test]
fn loads_under_stress_stay_single_flight_bounded_and_isolated() {
    let w = workload::Workload {
        threads: 8,
        tenants: 6,
        hot_tenants: false,
        keys: 24,
        skew: 0.8,
        run_for: Duration::from_millis(1_500),
        timeout: Duration::from_millis(20),
        slack: Duration::from_millis(250),
        max_capacity: 72,
        tenant_capacity: 12,
        fail_pct: 10,
        panic_pct: 1,
        overrun_pct: 5,
        warm_up: None,
    };
    let cache: Cache<u64, (u64, u64)> = Cache::builder()
        .max_capacity(w.max_capacity)
        .tenant_capacity(w.tenant_capacity)
        .time_to_live(Duration::from_millis(30))
        .stale_if_error(Duration::from_millis(50))
        .shards(4)
        .build();
    let r = w.run(&cache);
    assert!(!r.overlapping_loads, "two loaders of one key ran at once");
    assert!(!r.cross_tenant_reads, "a tenant got another tenant's value");
    assert!(
        r.late_calls.is_empty(),
        "calls overran their deadline: {:?}",
        r.late_calls
    );
    assert!(r.unexpected_errors.is_empty(), "{:?}", r.unexpected_errors);
    assert!(cache.weighted_size() <= w.max_capacity);
    for t in 0..w.tenants {
        assert!(cache.tenant(t).weighted_size() <= w.tenant_capacity);
    }
    let s = cache.stats();
    assert!(
        s.loads > 100 && s.coalesced > 0,
        "the stress did not stress: {s:?}"
    );
    cache.validate();
}

/// Live values and their weight, counted by the values themselves.
#[derive(Default)]
struct Live {
    values: AtomicI64,
    weight: AtomicI64,
}

/// A value that counts itself in `live` while it exists, and knows the
/// tenant it was stored for.
struct Counted {
    id: u64,
    tenant: u64,
    live: Arc<Live>,
}

impl Counted {
    fn new(id: u64, tenant: u64, live: &Arc<Live>) -> Self {
        live.values.fetch_add(1, SeqCst);
        live.weight.fetch_add(Counted::weight(id), SeqCst);
        Counted {
            id,
            tenant,
            live: live.clone(),
        }
    }

    fn weight(id: u64) -> i64 {
        (id % 3 + 1) as i64
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(self.id, self.tenant, &self.live)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.values.fetch_sub(1, SeqCst);
        self.live.weight.fetch_sub(Counted::weight(self.id), SeqCst);
    }
}

/// What the listener heard: tenant, value id, cause.
type Heard = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

/// Four threads inserting, loading, refreshing, invalidating, removing,
/// expiring and sweeping out expired entries of `tenants` tenants at both
/// caps for 0.7 s, then reclaiming
/// what `invalidate_all` dropped; `invalidate_all` is `drops` of every 100
/// operations. Each operation takes a fresh handle, so unless the caller
/// holds handles of its own, idle tenants are forgotten and come back
/// throughout.
fn race_writers(
    cache: &Cache<u64, Counted>,
    clock: &ManualClock,
    live: &Arc<Live>,
    tenants: u64,
    drops: u64,
) {
    let stop = Instant::now() + Duration::from_millis(700);
    thread::scope(|s| {
        for thread in 0..4u64 {
            s.spawn(move || {
                let mut rng = Rng::new(thread + 1);
                let mut n = 0u64;
                while Instant::now() < stop {
                    n += 1;
                    let id = thread << 32 | n;
                    let tenant = rng.below(tenants);
                    let t = cache.tenant(tenant);
                    let key = rng.below(24);
                    let roll = rng.below(100);
                    if roll < drops {
                        t.invalidate_all();
                        continue;
                    }
                    match roll {
                        0..=34 => t.insert(key, Counted::new(id, tenant, live)),
                        35..=44 => {
                            let ttl = Duration::from_millis(rng.below(20));
                            t.insert_with_ttl(key, Counted::new(id, tenant, live), ttl)
                        }
                        45..=69 => drop(t.get(&key)),
                        70..=84 => drop(t.try_get_with(key, |_| {
                            if id % 4 == 0 {
                                Err("fails on purpose")
                            } else {
                                Ok(Counted::new(id, tenant, live))
                            }
                        })),
                        85..=89 => {
                            drop(t.refresh(key, |_| Ok::<_, ()>(Counted::new(id, tenant, live))))
                        }
                        90..=94 => drop(t.invalidate(&key)),
                        95..=96 => drop(t.remove(&key)),
                        97 => cache.reclaim_expired(),
                        _ => clock.advance(Duration::from_millis(5)),
                    }
                }
            });
        }
    });
    cache.reclaim_invalidated();
    cache.validate();
}

/// A cache at both caps whose listener records what it hears, checking
/// that each report names the tenant the value was stored for.
fn listened_cache(clock: &ManualClock) -> (Cache<u64, Counted>, Heard) {
    let heard: Heard = Arc::default();
    let sink = heard.clone();
    let cache = Cache::builder()
        .max_capacity(40)
        .tenant_capacity(16)
        .weigher(|_k: &u64, v: &Counted| Counted::weight(v.id) as u32)
        .shards(4)
        .clock(clock.clone())
        .eviction_listener(move |t: &TenantId, _k: &u64, v: &Counted, cause| {
            assert_eq!(t.as_u64(), Some(v.tenant), "reported under another tenant");
            sink.lock().unwrap().push((v.tenant, v.id, cause));
        })
        .build();
    (cache, heard)
}

/// What the listener heard, by cause, of `tenant` (or of all tenants);
/// panics if a value was reported twice.
fn removals(heard: &Heard, tenant: Option<u64>) -> HashMap<RemovalCause, u64> {
    let mut once = HashSet::new();
    let mut by_cause = HashMap::new();
    for &(t, id, cause) in heard.lock().unwrap().iter() {
        assert!(once.insert(id), "value {id} reported twice ({cause:?})");
        if tenant.is_none_or(|only| only == t) {
            *by_cause.entry(cause).or_default() += 1;
        }
    }
    by_cause
}

/// `stats`' removal counters against what the listener heard; nothing in
/// these races is heavier than a cap, so every report is of a value that
/// was stored, and what was stored is still held or was reported.
fn assert_removals_counted(s: &Stats, heard: &HashMap<RemovalCause, u64>, who: &str) {
    let n = |c| heard.get(&c).copied().unwrap_or(0);
    let capped = n(RemovalCause::TenantCapacity);
    let evicted = n(RemovalCause::Evicted) + capped;
    assert_eq!(s.evictions, evicted, "{who}: evictions");
    assert_eq!(s.tenant_evictions, capped, "{who}: tenant evictions");
    assert_eq!(
        s.expirations,
        n(RemovalCause::Expired),
        "{who}: expirations"
    );
    assert_eq!(
        s.invalidations,
        n(RemovalCause::Invalidated),
        "{who}: invalidations"
    );
    let left: u64 = heard.values().sum();
    assert_eq!(s.inserts, s.entry_count + left, "{who}: inserts");
    assert!(left > 100, "{who}: too few removals to race: {left}");
}

/// The cache holds exactly the values, and the weight, it counts; and
/// nothing once it is gone.
fn assert_values_held(cache: Cache<u64, Counted>, live: &Live) {
    assert_eq!(
        live.values.load(SeqCst),
        cache.entry_count() as i64,
        "values held"
    );
    assert_eq!(
        live.weight.load(SeqCst),
        cache.weighted_size() as i64,
        "weight held"
    );
    drop(cache);
    assert_eq!(live.values.load(SeqCst), 0, "values outlived the cache");
}

/// Writers, readers, loaders, invalidations and expiry racing over a few
/// tenants at both caps: once they have joined and the invalidated entries
/// are reclaimed, every value that left was reported once, for its own
/// tenant, each tenant's stats count exactly those removals, and the cache
/// holds exactly the values it counts.
#[test]
fn racing_writers_report_and_count_every_removal_exactly_once() {
    let (clock, live) = (ManualClock::new(), Arc::default());
    let (cache, heard) = listened_cache(&clock);
    // Held throughout, so that no tenant is forgotten (and its stats
    // folded into the cache's) while it is idle.
    let tenants: Vec<_> = (0..4).map(|t| cache.tenant(t)).collect();
    race_writers(&cache, &clock, &live, 4, 2);
    let mut entries = 0;
    for (t, h) in tenants.iter().enumerate() {
        let s = h.stats();
        assert_removals_counted(
            &s,
            &removals(&heard, Some(t as u64)),
            &format!("tenant {t}"),
        );
        entries += s.entry_count;
    }
    assert_eq!(
        cache.entry_count(),
        entries,
        "the cache's entries against its tenants'"
    );
    assert_removals_counted(&cache.stats(), &removals(&heard, None), "cache");
    drop(tenants);
    assert_values_held(cache, &live);
}

/// The same race over 64 tenants whose handles live for one operation, so
/// that idle tenants are forgotten and recreated while other threads
/// evict their entries, with `invalidate_all` six times as often, so
/// that tenants are forgotten while entries of theirs wait to be
/// reclaimed: the cache's totals keep every count.
#[test]
fn forgotten_tenants_leave_their_counts_in_the_cache_totals_under_racing_writers() {
    let (clock, live) = (ManualClock::new(), Arc::default());
    let (cache, heard) = listened_cache(&clock);
    race_writers(&cache, &clock, &live, 64, 12);
    // At most 40 tenants can hold an entry, and only those are kept.
    assert!(cache.tenants().len() <= 40, "idle tenants were kept");
    assert_removals_counted(&cache.stats(), &removals(&heard, None), "cache");
    assert_values_held(cache, &live);
}

/// What the callers of one tenant did, counted by the callers themselves.
#[derive(Default)]
struct Calls {
    lookups: AtomicU64,
    loader_runs: AtomicU64,
    failed_runs: AtomicU64,
    panicked_runs: AtomicU64,
}

/// Callers racing on a few keys through every lookup path, with inserts
/// and invalidations between, and loaders that are slow enough to be
/// joined and that fail or panic now and then:
/// each call counts one hit or one miss, and each loader run one load and
/// one outcome, however the call went (joined, retried after a panic,
/// restarted by `invalidate_all`).
#[test]
fn racing_callers_count_one_lookup_per_call_and_one_load_per_loader_run() {
    const TENANTS: u64 = 2;
    const THREADS: u64 = 4;
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(8).shards(2).build();
    let tenants: Vec<_> = (0..TENANTS).map(|t| cache.tenant(t)).collect();
    let calls: Vec<Calls> = (0..TENANTS).map(|_| Calls::default()).collect();
    let stop = Instant::now() + Duration::from_millis(700);
    thread::scope(|s| {
        for thread in 0..THREADS {
            let (tenants, calls) = (&tenants, &calls);
            s.spawn(move || {
                let mut rng = Rng::new(thread + 7);
                while Instant::now() < stop {
                    let which = rng.below(TENANTS) as usize;
                    let (t, c) = (&tenants[which], &calls[which]);
                    let key = rng.below(6);
                    let roll = rng.below(100);
                    let fate = rng.below(10);
                    // `get_with`'s init cannot fail: it runs with `can_fail` off.
                    let run = |c: &Calls, can_fail: bool| {
                        c.loader_runs.fetch_add(1, SeqCst);
                        thread::sleep(Duration::from_micros(200));
                        match fate {
                            0 => {
                                c.panicked_runs.fetch_add(1, SeqCst);
                                panic!("loader panics on purpose");
                            }
                            1 | 2 if can_fail => {
                                c.failed_runs.fetch_add(1, SeqCst);
                                Err("fails on purpose")
                            }
                            _ => Ok(key),
                        }
                    };
                    match roll {
                        0..=29 => {
                            c.lookups.fetch_add(1, SeqCst);
                            let _ = t.get(&key);
                        }
                        30..=59 => {
                            c.lookups.fetch_add(1, SeqCst);
                            let _ = catch_unwind(AssertUnwindSafe(|| {
                                t.get_with(key, || run(c, false).unwrap_or(key))
                            }));
                        }
                        60..=89 => {
                            c.lookups.fetch_add(1, SeqCst);
                            let _ = catch_unwind(AssertUnwindSafe(|| {
                                t.try_get_with(key, |_| run(c, true))
                            }));
                        }
                        90..=93 => t.insert(key, key),
                        94..=97 => drop(t.invalidate(&key)),
                        _ => t.invalidate_all(),
                    }
                }
            });
        }
    });
    for (t, c) in tenants.iter().zip(&calls) {
        let s = t.stats();
        let id = t.id();
        assert_eq!(
            s.hits + s.misses,
            c.lookups.load(SeqCst),
            "{id:?}: hits + misses"
        );
        assert_eq!(s.loads, c.loader_runs.load(SeqCst), "{id:?}: loads");
        let (failed, panicked) = (c.failed_runs.load(SeqCst), c.panicked_runs.load(SeqCst));
        assert_eq!(s.load_panics, panicked, "{id:?}: load panics");
        assert_eq!(s.load_failures, failed + panicked, "{id:?}: load failures");
        assert_eq!(
            s.load_successes,
            s.loads - failed - panicked,
            "{id:?}: load successes"
        );
        assert!(s.coalesced > 0, "{id:?}: no call joined a load: {s:?}");
    }
}
