//! Random operation sequences over a few tenants and keys, checked after
//! every step against a plain model of what each tenant may see, against
//! what the eviction listener heard, and at the end for values the cache
//! failed to drop.
#![no_main]

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tenant_cache::{Cache, LoadError, ManualClock, RemovalCause, Stats, TenantId};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Loader {
    Succeeds,
    Fails,
    Panics,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert { tenant: u8, key: u8 },
    InsertWithTtl { tenant: u8, key: u8, ttl_ms: u16 },
    Get { tenant: u8, key: u8 },
    Contains { tenant: u8, key: u8 },
    Invalidate { tenant: u8, key: u8 },
    Remove { tenant: u8, key: u8 },
    InvalidateTenant { tenant: u8 },
    InvalidateCache,
    GetWith { tenant: u8, key: u8, panics: bool },
    TryGetWith { tenant: u8, key: u8, loader: Loader },
    Load { tenant: u8, key: u8, loader: Loader, fallback: bool },
    Refresh { tenant: u8, key: u8, loader: Loader },
    Advance { ms: u16 },
    Reclaim,
    ReclaimExpired,
}

#[derive(Arbitrary, Debug)]
struct Input {
    tenants: u8,
    max_capacity: u8,
    tenant_capacity: u8,
    /// Caps of each tenant's own (16 and above: the default).
    own_caps: Option<[u8; 4]>,
    two_shards: bool,
    weighted: bool,
    ttl_ms: Option<u16>,
    ops: Vec<Op>,
}

/// Live copies of each value (made or cloned, not yet dropped), by the
/// value's number; a value with none is not in the map.
static LIVE: Mutex<BTreeMap<u32, u32>> = Mutex::new(BTreeMap::new());

fn live_copies(v: u32) -> u32 {
    LIVE.lock().unwrap().get(&v).copied().unwrap_or(0)
}

fn live_total() -> u64 {
    LIVE.lock().unwrap().values().map(|&n| u64::from(n)).sum()
}

/// A value that counts its live copies, so that a value the cache keeps
/// when it should not shows up.
#[derive(Debug, PartialEq)]
struct Tracked(u32);

impl Tracked {
    fn new(v: u32) -> Self {
        *LIVE.lock().unwrap().entry(v).or_default() += 1;
        Tracked(v)
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap();
        let n = live.get_mut(&self.0).expect("a value dropped more often than made");
        *n -= 1;
        if *n == 0 {
            live.remove(&self.0);
        }
    }
}

/// What the eviction listener heard: tenant, key, value, cause.
type Heard = Arc<Mutex<Vec<(Option<u64>, u8, u32, RemovalCause)>>>;

/// Where each value was handed to the cache, and whether it must end up
/// in it (an insert) or may be left out (a load superseded by newer state).
struct Origin {
    tenant: u8,
    key: u8,
    inserted: bool,
}

/// The counters a tenant's stats must show for the lookups and loads made
/// through it.
#[derive(Default, Debug, PartialEq)]
struct Expected {
    lookups: u64,
    loads: u64,
    load_successes: u64,
    load_failures: u64,
    load_panics: u64,
    fallbacks: u64,
}

impl Expected {
    /// A call whose loader ran `calls` times (0 or 1: no retries here).
    fn load(&mut self, calls: u64, loader: Loader) {
        self.loads += calls;
        match loader {
            Loader::Succeeds => self.load_successes += calls,
            Loader::Fails => self.load_failures += calls,
            Loader::Panics => {
                self.load_failures += calls;
                self.load_panics += calls;
            }
        }
    }

    fn of(s: &Stats) -> Self {
        Expected {
            lookups: s.hits + s.misses,
            loads: s.loads,
            load_successes: s.load_successes,
            load_failures: s.load_failures,
            load_panics: s.load_panics,
            fallbacks: s.fallbacks,
        }
    }
}

/// What the model allows a tenant to see for a key: one value, and when
/// it expires (ms on the manual clock).
type Model = HashMap<(u8, u8), (u32, Option<u64>)>;

/// A weighted run's weigher, which the model weighs with too: 0 to 3, so
/// entries of weight 0, which take no capacity, are fuzzed as well.
fn weight_of(value: u32) -> u32 {
    value % 4
}

fuzz_target!(
    init: {
        // libFuzzer's hook aborts on every panic, even those the target
        // provokes and catches; only unexpected panics should count.
        std::panic::set_hook(Box::new(|info| {
            let msg = info.to_string();
            if !msg.contains("on purpose") {
                eprintln!("{msg}");
                std::process::abort();
            }
        }));
    },
    |input: Input| {
    assert_eq!(live_total(), 0, "values left by an earlier input");
    let tenants = input.tenants % 3 + 2;
    let max_capacity = u64::from(input.max_capacity % 16);
    let tenant_capacity = u64::from(input.tenant_capacity % 16);
    let own_cap = move |t: u8| {
        let cap = input.own_caps?[usize::from(t % 4)] % 20;
        (cap < 16).then_some(u64::from(cap))
    };
    let cap_of = |t: u8| own_cap(t).unwrap_or(tenant_capacity);
    let clock = ManualClock::new();
    let mut builder = Cache::<u8, Tracked>::builder()
        .max_capacity(max_capacity)
        .tenant_capacity(tenant_capacity)
        .shards(if input.two_shards { 2 } else { 1 })
        .clock(clock.clone());
    if input.own_caps.is_some() {
        builder = builder.tenant_capacity_by(move |t: &TenantId| {
            own_cap(u8::try_from(t.as_u64()?).ok()?)
        });
    }
    let heard: Heard = Arc::default();
    let log = heard.clone();
    builder = builder.eviction_listener(move |t: &TenantId, k: &u8, v: &Tracked, cause| {
        log.lock().unwrap().push((t.as_u64(), *k, v.0, cause));
    });
    if input.weighted {
        builder = builder.weigher(|_k: &u8, v: &Tracked| weight_of(v.0));
    }
    let cache_ttl = input.ttl_ms.map(|ms| u64::from(ms % 1_000));
    if let Some(ms) = cache_ttl {
        builder = builder.time_to_live(Duration::from_millis(ms));
    }
    let cache = builder.build();
    let handles: Vec<_> = (0..tenants).map(|t| cache.tenant(u64::from(t))).collect();
    let mut model: Model = HashMap::new();
    let mut now_ms = 0u64;
    let mut next_value = 0u32;
    let mut lookups = 0u64;
    let mut expected: Vec<Expected> = (0..tenants).map(|_| Expected::default()).collect();
    let mut origins: HashMap<u32, Origin> = HashMap::new();
    let mut reported: HashSet<u32> = HashSet::new();
    // Per tenant, reports heard by cause, and of stored values (not
    // refused as too heavy) in all.
    let mut causes: HashMap<(u8, RemovalCause), u64> = HashMap::new();
    let mut stored_and_gone: HashMap<u8, u64> = HashMap::new();
    let weight = |v: u32| if input.weighted { u64::from(weight_of(v)) } else { 1 };
    let refused = |v: u32, t: u8| weight(v) > max_capacity || weight(v) > cap_of(t);

    let expiry = |ttl: Option<u64>, now: u64| ttl.map(|ms| now + ms);
    let live = |model: &Model, t: u8, k: u8, now: u64| {
        model
            .get(&(t, k))
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(v, _)| *v)
    };

    for op in input.ops.into_iter().take(200) {
        next_value += 1;
        let fresh = next_value;
        let mut reclaimed = false;
        if let Some((tenant, key, inserted)) = op.hands_over(tenants) {
            origins.insert(fresh, Origin { tenant, key, inserted });
        }
        match op {
            Op::Insert { tenant, key } | Op::InsertWithTtl { tenant, key, .. } => {
                let t = tenant % tenants;
                let ttl = match op {
                    Op::InsertWithTtl { ttl_ms, .. } => Some(u64::from(ttl_ms % 1_000)),
                    _ => cache_ttl,
                };
                match ttl {
                    Some(ms) if matches!(op, Op::InsertWithTtl { .. }) => {
                        let ttl = Duration::from_millis(ms);
                        handles[t as usize].insert_with_ttl(key, Tracked::new(fresh), ttl)
                    }
                    _ => handles[t as usize].insert(key, Tracked::new(fresh)),
                }
                model.insert((t, key), (fresh, expiry(ttl, now_ms)));
            }
            Op::Get { tenant, key } => {
                let t = tenant % tenants;
                lookups += 1;
                expected[t as usize].lookups += 1;
                let got = handles[t as usize].get(&key).map(|v| v.0);
                check(&got, live(&model, t, key, now_ms), "get");
            }
            Op::Contains { tenant, key } => {
                let t = tenant % tenants;
                if handles[t as usize].contains(&key) {
                    assert!(live(&model, t, key, now_ms).is_some(), "contains: not in model");
                }
            }
            Op::Invalidate { tenant, key } => {
                let t = tenant % tenants;
                let removed = handles[t as usize].invalidate(&key);
                let was_live = live(&model, t, key, now_ms).is_some();
                model.remove(&(t, key));
                assert!(!removed || was_live, "invalidate removed what the model lacks");
            }
            Op::Remove { tenant, key } => {
                let t = tenant % tenants;
                let removed = handles[t as usize].remove(&key).map(|v| v.0);
                check(&removed, live(&model, t, key, now_ms), "remove");
                model.remove(&(t, key));
            }
            Op::InvalidateTenant { tenant } => {
                let t = tenant % tenants;
                handles[t as usize].invalidate_all();
                model.retain(|(mt, _), _| *mt != t);
            }
            Op::InvalidateCache => {
                cache.invalidate_all();
                model.clear();
            }
            Op::GetWith { tenant, key, panics } => {
                let t = tenant % tenants;
                lookups += 1;
                let allowed = live(&model, t, key, now_ms);
                let h = &handles[t as usize];
                let calls = Cell::new(0);
                let got = catch_unwind(AssertUnwindSafe(|| {
                    h.get_with(key, || {
                        calls.set(calls.get() + 1);
                        assert!(!panics, "init panics on purpose");
                        Tracked::new(fresh)
                    })
                    .0
                }));
                let e = &mut expected[t as usize];
                e.lookups += 1;
                e.load(calls.get(), if panics { Loader::Panics } else { Loader::Succeeds });
                match got {
                    Ok(v) if v == fresh => {
                        model.insert((t, key), (fresh, expiry(cache_ttl, now_ms)));
                    }
                    Ok(v) => assert_eq!(Some(v), allowed, "get_with returned a stranger"),
                    Err(_) => assert!(panics, "get_with panicked unasked"),
                }
            }
            Op::TryGetWith { tenant, key, loader }
            | Op::Load { tenant, key, loader, .. }
            | Op::Refresh { tenant, key, loader } => {
                let t = tenant % tenants;
                lookups += 1;
                let allowed = live(&model, t, key, now_ms);
                let h = &handles[t as usize];
                let calls = Cell::new(0);
                let load = |_: &tenant_cache::LoadCtx<'_, u8>| {
                    calls.set(calls.get() + 1);
                    match loader {
                        Loader::Succeeds => Ok(Tracked::new(fresh)),
                        Loader::Fails => Err("fails"),
                        Loader::Panics => panic!("loader panics on purpose"),
                    }
                };
                let fallback_value = u32::MAX;
                let got = catch_unwind(AssertUnwindSafe(|| match op {
                    Op::TryGetWith { .. } => h.try_get_with(key, load),
                    Op::Load { fallback, .. } => {
                        let mut req = h.load(key).timeout(Duration::from_secs(1));
                        if fallback {
                            req = req.fallback(move |_| Some(Tracked::new(fallback_value)));
                        }
                        req.run(load)
                    }
                    _ => h.refresh(key, load),
                }
                .map(|v| v.0)));
                let refresh = matches!(op, Op::Refresh { .. });
                let e = &mut expected[t as usize];
                e.lookups += 1;
                e.load(calls.get(), loader);
                if matches!(got, Ok(Ok(v)) if v == fallback_value) {
                    e.fallbacks += 1;
                }
                match got {
                    Ok(Ok(v)) if v == fresh => {
                        model.insert((t, key), (fresh, expiry(cache_ttl, now_ms)));
                    }
                    Ok(Ok(v)) if v == fallback_value => {
                        assert!(!matches!(loader, Loader::Succeeds));
                    }
                    Ok(Ok(v)) => {
                        assert!(!refresh || !matches!(loader, Loader::Succeeds));
                        assert_eq!(Some(v), allowed, "a load returned a stranger")
                    }
                    Ok(Err(e)) => {
                        assert!(matches!(e, LoadError::Failed(_)), "unexpected {e:?}");
                        assert!(matches!(loader, Loader::Fails));
                    }
                    Err(_) => assert!(matches!(loader, Loader::Panics)),
                }
            }
            Op::Advance { ms } => {
                let ms = u64::from(ms % 2_000);
                clock.advance(Duration::from_millis(ms));
                now_ms += ms;
            }
            Op::Reclaim => {
                cache.reclaim_invalidated();
                reclaimed = true;
            }
            Op::ReclaimExpired => {
                cache.reclaim_expired();
                // No value the model holds as its key's newest is still in
                // the cache once expired.
                for (&(t, k), &(v, expires)) in &model {
                    if expires.is_some_and(|e| e <= now_ms) {
                        assert_eq!(live_copies(v), 0, "{v} of ({t}, {k}) expired and held");
                    }
                }
            }
        }
        cache.validate();
        assert!(cache.weighted_size() <= max_capacity, "over max_capacity");
        for (t, h) in (0..tenants).zip(&handles) {
            assert_eq!(h.capacity(), cap_of(t), "tenant {t}'s cap");
            assert!(h.weighted_size() <= cap_of(t), "tenant {t} over its cap");
        }
        let s = cache.stats();
        assert_eq!(s.hits + s.misses, lookups, "hits + misses != lookups");
        for (h, e) in handles.iter().zip(&expected) {
            assert_eq!(&Expected::of(&h.stats()), e, "tenant {:?}", h.id());
        }
        // The cache's counters add up its tenants'; so do its entries and
        // weight once no invalidated entry is left.
        let mut sum = handles.iter().map(|h| h.stats()).fold(Stats::default(), add);
        if !reclaimed {
            (sum.entry_count, sum.weighted_size) = (s.entry_count, s.weighted_size);
        }
        assert_eq!(sum, s, "the cache's stats against its tenants'");
        // Every removal is reported once, for the tenant and key the value
        // was stored under, and a reported value is gone from the cache.
        for (tenant, key, v, cause) in heard.lock().unwrap().drain(..) {
            let origin = origins.get(&v).unwrap_or_else(|| panic!("{cause:?} of unknown {v}"));
            assert_eq!(tenant, Some(u64::from(origin.tenant)), "{cause:?} of {v}: tenant");
            assert_eq!(key, origin.key, "{cause:?} of {v}: key");
            assert!(reported.insert(v), "{cause:?} of {v}: reported twice");
            assert_eq!(live_copies(v), 0, "{cause:?} of {v}: still held");
            *causes.entry((origin.tenant, cause)).or_default() += 1;
            if !refused(v, origin.tenant) {
                *stored_and_gone.entry(origin.tenant).or_default() += 1;
            }
        }
        // Each tenant's stats count what the listener heard.
        for (t, h) in (0..tenants).zip(&handles) {
            let heard = |cause| causes.get(&(t, cause)).copied().unwrap_or(0);
            let s = h.stats();
            let capacity = heard(RemovalCause::TenantCapacity);
            assert_eq!(s.evictions, heard(RemovalCause::Evicted) + capacity, "evictions");
            assert_eq!(s.tenant_evictions, capacity, "tenant evictions");
            assert_eq!(s.expirations, heard(RemovalCause::Expired), "expirations");
            if reclaimed {
                let invalidated = heard(RemovalCause::Invalidated);
                assert_eq!(s.invalidations, invalidated, "invalidations");
                // Every value stored is still held or has left once.
                let gone = stored_and_gone.get(&t).copied().unwrap_or(0);
                assert_eq!(s.inserts, s.entry_count + gone, "inserts");
            }
        }
        if reclaimed {
            // With invalidated entries gone, every value the cache still
            // holds is an entry of a tenant's current generation and the
            // newest value of its key, and every inserted value is either
            // held or was reported.
            let counted: u64 = handles.iter().map(|h| h.entry_count()).sum();
            assert_eq!(live_total(), counted, "values held past reclaim");
            // And each tenant's weight is the weight of the values it holds.
            let mut held_weight = vec![0u64; usize::from(tenants)];
            for (v, copies) in LIVE.lock().unwrap().iter() {
                let origin = &origins[v];
                held_weight[usize::from(origin.tenant)] += weight(*v) * u64::from(*copies);
            }
            for (h, w) in handles.iter().zip(&held_weight) {
                assert_eq!(h.weighted_size(), *w, "tenant {:?}: weight held", h.id());
            }
            assert_eq!(cache.weighted_size(), held_weight.iter().sum(), "weight held");
            for (v, origin) in &origins {
                let held = live_copies(*v) > 0;
                if held {
                    let newest = model.get(&(origin.tenant, origin.key)).map(|(nv, _)| *nv);
                    assert_eq!(newest, Some(*v), "value {v} held but not its key's newest");
                }
                if origin.inserted {
                    assert!(held || reported.contains(v), "value {v} left the cache unreported");
                }
            }
        }
    }
    drop(handles);
    drop(cache);
    assert_eq!(live_total(), 0, "values outlived the cache");
});

fn add(mut sum: Stats, s: Stats) -> Stats {
    sum.hits += s.hits;
    sum.misses += s.misses;
    sum.inserts += s.inserts;
    sum.evictions += s.evictions;
    sum.tenant_evictions += s.tenant_evictions;
    sum.expirations += s.expirations;
    sum.invalidations += s.invalidations;
    sum.entry_count += s.entry_count;
    sum.weighted_size += s.weighted_size;
    sum.loads += s.loads;
    sum.load_successes += s.load_successes;
    sum.load_failures += s.load_failures;
    sum.load_panics += s.load_panics;
    sum.load_timeouts += s.load_timeouts;
    sum.coalesced += s.coalesced;
    sum.fallbacks += s.fallbacks;
    sum.stale_served += s.stale_served;
    sum.total_load_time += s.total_load_time;
    sum
}

impl Op {
    /// The tenant and key whose value this operation hands to the cache,
    /// and whether the cache must take it (an insert) or may leave it out.
    fn hands_over(&self, tenants: u8) -> Option<(u8, u8, bool)> {
        match *self {
            Op::Insert { tenant, key } | Op::InsertWithTtl { tenant, key, .. } => {
                Some((tenant % tenants, key, true))
            }
            Op::GetWith { tenant, key, .. }
            | Op::TryGetWith { tenant, key, .. }
            | Op::Load { tenant, key, .. }
            | Op::Refresh { tenant, key, .. } => Some((tenant % tenants, key, false)),
            _ => None,
        }
    }
}

fn check(got: &Option<u32>, allowed: Option<u32>, what: &str) {
    if let Some(v) = got {
        assert_eq!(Some(*v), allowed, "{what} returned a value the model does not hold");
    }
}
