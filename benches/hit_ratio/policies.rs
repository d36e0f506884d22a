//! The policies replayed: the caches under test, and LRU and Belady's OPT
//! (with and without bypass) as references.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How many entries a cache held during a replay, as multiples of its
/// size: the mean and the peak over evenly spaced samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Occupancy {
    pub mean: f64,
    pub peak: f64,
}

/// Samples of occupancy taken per replay: enough to see the peaks, few
/// enough that counting 100k entries each time stays cheap.
const OCCUPANCY_SAMPLES: usize = 1024;

/// A single-threaded replay (`get`; on a miss, `insert`): the hits, and
/// what `held` said the cache held, sampled evenly.
pub fn replay(
    keys: &[u64],
    size: usize,
    mut get: impl FnMut(u64) -> bool,
    mut insert: impl FnMut(u64),
    held: impl Fn() -> usize,
) -> (usize, Occupancy) {
    let every = (keys.len() / OCCUPANCY_SAMPLES).max(1);
    let (mut hits, mut total, mut peak, mut samples) = (0, 0, 0, 0);
    for (i, &k) in keys.iter().enumerate() {
        if get(k) {
            hits += 1;
        } else {
            insert(k);
        }
        if i % every == every - 1 {
            let n = held();
            total += n;
            peak = peak.max(n);
            samples += 1;
        }
    }
    let of_size = |n: f64| n / size.max(1) as f64;
    let occupancy = Occupancy {
        mean: of_size(total as f64 / f64::from(samples.max(1))),
        peak: of_size(peak as f64),
    };
    (hits, occupancy)
}

pub fn tenant_cache(keys: &[u64], size: usize) -> (usize, Occupancy) {
    let mut builder = tenant_cache::Cache::builder().max_capacity(size as u64);
    if let Some(shards) = std::env::var("SHARDS").ok().and_then(|s| s.parse().ok()) {
        builder = builder.shards(shards);
    }
    let cache: tenant_cache::Cache<u64, ()> = builder.build();
    let t = cache.tenant("trace");
    replay(
        keys,
        size,
        |k| t.get(&k).is_some(),
        |k| t.insert(k, ()),
        || cache.entry_count() as usize,
    )
}

pub fn quick_cache(keys: &[u64], size: usize) -> (usize, Occupancy) {
    let cache = quick_cache::sync::Cache::<u64, ()>::new(size);
    replay(
        keys,
        size,
        |k| cache.get(&k).is_some(),
        |k| cache.insert(k, ()),
        || cache.len(),
    )
}

/// moka with its defaults, as an application would use it. It applies
/// evictions in batches, so between two batches it holds more entries
/// than its size; the occupancy shows how many.
pub fn moka(keys: &[u64], size: usize) -> (usize, Occupancy) {
    let cache = moka::sync::Cache::<u64, ()>::new(size as u64);
    replay(
        keys,
        size,
        |k| cache.get(&k).is_some(),
        |k| cache.insert(k, ()),
        // `entry_count` lags behind the batches; counting the map sees
        // every entry a `get` could return.
        || cache.iter().count(),
    )
}

/// Least recently used.
pub fn lru(keys: &[u64], size: usize) -> usize {
    let mut last_use: HashMap<u64, usize> = HashMap::new();
    let mut by_age: BTreeMap<usize, u64> = BTreeMap::new();
    let mut hits = 0;
    for (t, &k) in keys.iter().enumerate() {
        if let Some(old) = last_use.insert(k, t) {
            by_age.remove(&old);
            hits += 1;
        } else if last_use.len() > size {
            let (_, victim) = by_age.pop_first().expect("cache is over size");
            last_use.remove(&victim);
        }
        by_age.insert(t, k);
        if size == 0 {
            last_use.clear();
            by_age.clear();
        }
    }
    hits
}

/// For each request, when its key is asked for next (`usize::MAX`: never).
fn next_uses(keys: &[u64]) -> Vec<usize> {
    let mut next = vec![usize::MAX; keys.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (t, &k) in keys.iter().enumerate().rev() {
        if let Some(&later) = seen.get(&k) {
            next[t] = later;
        }
        seen.insert(k, t);
    }
    next
}

/// Belady's MIN: evict the key used farthest in the future. With `bypass`,
/// a missed key used later than everything resident is not admitted.
pub fn opt(keys: &[u64], size: usize, bypass: bool) -> usize {
    let next = next_uses(keys);
    // (next use, key) of every resident key; `usize::MAX - t` keeps keys
    // never used again distinct.
    let mut resident: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut due: HashMap<u64, usize> = HashMap::new();
    let mut hits = 0;
    for (t, &k) in keys.iter().enumerate() {
        let upcoming = if next[t] == usize::MAX {
            usize::MAX - t
        } else {
            next[t]
        };
        if let Some(old) = due.get(&k).copied() {
            hits += 1;
            resident.remove(&(old, k));
            resident.insert((upcoming, k));
            due.insert(k, upcoming);
            continue;
        }
        if size == 0 {
            continue;
        }
        if resident.len() >= size {
            let &(farthest, victim) = resident.last().expect("cache is full");
            if bypass && upcoming > farthest {
                continue;
            }
            resident.pop_last();
            due.remove(&victim);
        }
        resident.insert((upcoming, k));
        due.insert(k, upcoming);
    }
    hits
}
