use tenant_cache::Cache;

use crate::support::Rng;

#[test]
fn a_one_time_scan_twice_the_capacity_does_not_flush_a_hot_working_set() {
    const CAP: u64 = 1_000;
    const HOT: u64 = 500;
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(CAP).shards(8).build();
    let t = cache.tenant("a");
    // Warm the hot set: every key used a few times.
    for _ in 0..4 {
        for k in 0..HOT {
            if t.get(&k).is_none() {
                t.insert(k, k);
            }
        }
    }
    // One pass over cold keys, twice the capacity long.
    for k in 1_000_000..1_000_000 + 2 * CAP {
        if t.get(&k).is_none() {
            t.insert(k, k);
        }
    }
    let kept = (0..HOT).filter(|k| t.contains(k)).count() as u64;
    assert!(
        kept * 100 >= HOT * 95,
        "scan flushed the hot set: {kept} of {HOT} kept"
    );
    cache.validate();
}

#[test]
fn frequently_used_keys_survive_churn_better_than_rare_ones() {
    const CAP: u64 = 500;
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(CAP).shards(4).build();
    let t = cache.tenant("a");
    let mut rng = Rng::new(7);
    let (mut hot_hits, mut hot_reqs) = (0u64, 0u64);
    for i in 0..200_000u64 {
        // Half the requests go to 100 hot keys, half to 100k cold ones.
        let key = if i % 2 == 0 {
            rng.below(100)
        } else {
            1_000 + rng.below(100_000)
        };
        let hit = t.get(&key).is_some();
        if !hit {
            t.insert(key, key);
        }
        if key < 100 && i > 10_000 {
            hot_reqs += 1;
            hot_hits += u64::from(hit);
        }
    }
    let ratio = hot_hits as f64 / hot_reqs as f64;
    assert!(ratio > 0.95, "hot keys hit only {ratio:.3}");
}

#[test]
fn a_loop_longer_than_the_cache_keeps_a_stable_part_of_it_resident() {
    // Keys 0..2·CAP requested in order, again and again. LRU and FIFO hit
    // nothing here; the best any policy can do is keep CAP keys for good
    // and hit half the requests.
    const CAP: u64 = 1_000;
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(CAP).shards(8).build();
    let t = cache.tenant("a");
    let (mut hits, mut requests) = (0u64, 0u64);
    for pass in 0..20 {
        for k in 0..2 * CAP {
            let hit = t.get(&k).is_some();
            if !hit {
                t.insert(k, k);
            }
            if pass >= 2 {
                requests += 1;
                hits += u64::from(hit);
            }
        }
    }
    let ratio = hits as f64 / requests as f64;
    assert!(
        ratio >= 0.45,
        "a loop twice the capacity hit only {:.1}% (at most 50% is possible)",
        100.0 * ratio
    );
    cache.validate();
}

#[test]
fn keys_reused_just_beyond_the_initial_small_fifo_grow_it_until_their_reuses_hit() {
    // Every key is used twice, 40 new keys apart: 4% of the cache, more
    // than the 1% the small FIFO starts with. Each reuse that misses finds
    // the key in the small FIFO's ghost and grows the FIFO, until it holds
    // the 40 keys and reuses hit.
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(1000).shards(1).build();
    let t = cache.tenant("t");
    let access = |k: u64| {
        if t.get(&k).is_some() {
            true
        } else {
            t.insert(k, k);
            false
        }
    };
    const GAP: u64 = 40;
    const KEYS: u64 = 20_000;
    let mut late_reuse_hits = 0;
    for k in 0..KEYS {
        access(k);
        if k >= GAP {
            let hit = access(k - GAP);
            if k >= KEYS / 2 && hit {
                late_reuse_hits += 1;
            }
        }
    }
    let late_reuses = KEYS / 2;
    assert!(
        late_reuse_hits * 10 >= late_reuses * 9,
        "only {late_reuse_hits} of the last {late_reuses} reuses hit"
    );
}

/// A key used while still on probation is kept when probation ends,
/// instead of being evicted with the one-time keys inserted after it.
#[test]
fn a_key_used_once_after_its_insert_outlives_the_scan_that_follows() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(100).shards(1).build();
    let t = cache.tenant("a");
    t.insert(0, 0);
    assert_eq!(t.get(&0), Some(0));
    for k in 1..=300 {
        t.insert(k, k);
    }
    assert!(t.contains(&0), "the used key left with the scan");
    assert_eq!(t.entry_count(), 100);
}
