//! The policies replayed: the caches under test, and LRU and Belady's OPT
//! (with and without bypass) as references.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Hits of a single-threaded replay: `get`; on a miss, `insert`.
pub fn replay(
    keys: &[u64],
    mut get: impl FnMut(u64) -> bool,
    mut insert: impl FnMut(u64),
) -> usize {
    let mut hits = 0;
    for &k in keys {
        if get(k) {
            hits += 1;
        } else {
            insert(k);
        }
    }
    hits
}

pub fn tenant_cache(keys: &[u64], size: usize) -> usize {
    let mut builder = tenant_cache::Cache::builder().max_capacity(size as u64);
    if let Some(shards) = std::env::var("SHARDS").ok().and_then(|s| s.parse().ok()) {
        builder = builder.shards(shards);
    }
    let cache: tenant_cache::Cache<u64, ()> = builder.build();
    let t = cache.tenant("trace");
    replay(keys, |k| t.get(&k).is_some(), |k| t.insert(k, ()))
}

pub fn quick_cache(keys: &[u64], size: usize) -> usize {
    let cache = quick_cache::sync::Cache::<u64, ()>::new(size);
    replay(keys, |k| cache.get(&k).is_some(), |k| cache.insert(k, ()))
}

pub fn moka(keys: &[u64], size: usize) -> usize {
    let cache = moka::sync::Cache::<u64, ()>::new(size as u64);
    replay(keys, |k| cache.get(&k).is_some(), |k| cache.insert(k, ()))
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
