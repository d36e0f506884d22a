//! Hash flooding: with the default, randomly seeded hasher, keys crafted to
//! collide for some fixed seed do not collide in the cache, so lookups stay
//! a bounded number of probe steps.

use std::collections::HashSet;

use tenant_cache::Cache;

/// Bits of the hash that pick a bucket in a table of up to 4096 buckets.
const BITS: u32 = 12;
const KEYS: usize = 400;

/// Keys whose hash under a fixed, known seed agree in the low `BITS` bits:
/// what an attacker who knew the seed would send.
fn crafted_keys() -> Vec<u64> {
    let fixed = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let mask = (1u64 << BITS) - 1;
    let target = fixed.hash_one(0u64) & mask;
    (0u64..)
        .filter(|k| fixed.hash_one(k) & mask == target)
        .take(KEYS)
        .collect()
}

#[test]
fn keys_crafted_for_a_fixed_seed_spread_out_in_the_cache() {
    let keys = crafted_keys();
    let cache: Cache<u64, u64> = Cache::new(10_000);
    let t = cache.tenant("attacker");
    let mask = (1u64 << BITS) - 1;
    // The cache files its entries by the low 32 bits; for tables up to
    // 4096 buckets the bucket is picked by the low 12 of those, mixed.
    let buckets: HashSet<u64> = keys.iter().map(|k| t.debug_hash(k) & mask).collect();
    // 400 random values in 4096 buckets land in about 381 distinct ones;
    // colliding keys would land in 1.
    assert!(
        buckets.len() > KEYS * 8 / 10,
        "crafted keys still collide: {} buckets",
        buckets.len()
    );
    // And two caches seed differently.
    let other: Cache<u64, u64> = Cache::new(10_000);
    let u = other.tenant("attacker");
    let same = keys
        .iter()
        .filter(|k| u.debug_hash(*k) == t.debug_hash(*k))
        .count();
    assert_eq!(same, 0, "two caches hash alike: the seed is not random");
    for k in &keys {
        t.insert(*k, *k);
    }
    assert!(keys.iter().all(|k| t.get(k) == Some(*k)));
}
