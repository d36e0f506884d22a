use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use tenant_cache::{Cache, CacheBuilder, RemovalCause, Tenant, TenantId};

use crate::support::{causes, recording};

/// A builder for `u32 -> u32` entries that weigh their value.
fn weighed_by_value(max_capacity: u64) -> CacheBuilder<u32, u32> {
    Cache::builder()
        .max_capacity(max_capacity)
        .weigher(|_k: &u32, v: &u32| *v)
}

#[test]
fn total_weight_never_exceeds_max_capacity() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(500)
        .weigher(|_k: &u64, v: &u64| (*v % 7 + 1) as u32)
        .build();
    let t = cache.tenant("a");
    for i in 0..20_000u64 {
        t.insert(i, i);
        assert!(
            cache.weighted_size() <= 500,
            "over capacity after insert {i}"
        );
    }
    assert!(cache.weighted_size() > 450, "cache should stay nearly full");
    cache.validate();
}

#[test]
fn concurrent_inserts_stay_within_capacity_beyond_entries_in_flight() {
    const THREADS: u64 = 4;
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(1_000).shards(8).build();
    let over = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let cache = cache.clone();
            let over = over.clone();
            thread::spawn(move || {
                let t = cache.tenant(n % 2);
                for i in 0..20_000 {
                    t.insert(n * 1_000_000 + i, i);
                    // Each thread may have one insert between its weight
                    // being added and its eviction running.
                    if cache.weighted_size() > 1_000 + THREADS {
                        over.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!over.load(Ordering::Relaxed));
    assert!(cache.weighted_size() <= 1_000);
    cache.validate();
}

#[test]
fn concurrent_writers_of_one_tenant_leave_it_within_its_cap_with_exact_counts() {
    const THREADS: u64 = 4;
    const CAP: u64 = 300;
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(1_000)
        .tenant_capacity(CAP)
        .shards(4)
        .build();
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let cache = cache.clone();
            thread::spawn(move || {
                let (hot, other) = (cache.tenant("hot"), cache.tenant(n));
                for i in 0..20_000 {
                    hot.insert(n * 1_000_000 + i, i);
                    if i % 4 == 0 {
                        other.insert(i, i);
                    }
                    if i % 97 == 0 {
                        hot.invalidate(&(n * 1_000_000 + i / 2));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let hot = cache.tenant("hot");
    assert!(
        hot.weighted_size() <= CAP,
        "{} > {CAP}",
        hot.weighted_size()
    );
    assert!(hot.weighted_size() > CAP / 2, "the tenant kept filling");
    assert!(cache.weighted_size() <= 1_000);
    // Every insert and eviction was counted once: the tenants' counts add
    // up to the cache's, and `validate` checks those against the shards.
    let per_tenant: u64 = (0..THREADS).map(|n| cache.tenant(n).entry_count()).sum();
    assert_eq!(per_tenant + hot.entry_count(), cache.entry_count());
    cache.validate();
}

#[test]
fn a_tenant_over_its_cap_evicts_only_its_own_entries() {
    let (builder, heard) = recording(
        Cache::<u64, u64>::builder()
            .max_capacity(1_000)
            .tenant_capacity(100),
    );
    let cache = builder.build();
    let quiet = cache.tenant("quiet");
    let noisy = cache.tenant("noisy");
    for k in 0..50 {
        quiet.insert(k, k);
    }
    for k in 0..10_000 {
        noisy.insert(k, k);
        assert!(noisy.weighted_size() <= 100);
    }
    assert_eq!(
        quiet.entry_count(),
        50,
        "the noisy tenant flushed its neighbour"
    );
    for k in 0..50 {
        assert_eq!(quiet.get(&k), Some(k));
    }
    assert_eq!(noisy.entry_count(), 100);
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 9_900);
    assert!(heard
        .iter()
        .all(|(t, _, _, c)| t.as_str() == Some("noisy") && *c == RemovalCause::TenantCapacity));
    assert_eq!(noisy.stats().evictions, 9_900);
    assert_eq!(quiet.stats().evictions, 0);
}

#[test]
fn a_full_cache_evicts_in_turn_from_the_tenants_holding_at_least_their_even_share() {
    // One shard, so every eviction chooses among the same three queues.
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(100).shards(1).build();
    let (a, b, c) = (cache.tenant("a"), cache.tenant("b"), cache.tenant("c"));
    for k in 0..45 {
        a.insert(k, k);
        b.insert(k, k);
    }
    for k in 0..10 {
        c.insert(k, k);
    }
    assert_eq!(cache.entry_count(), 100, "full, nothing evicted yet");
    // Each of c's new keys evicts one entry. a and b each hold more than a
    // third of the shard throughout; c never does.
    for k in 10..30 {
        c.insert(k, k);
    }
    assert_eq!(cache.entry_count(), 100);
    assert_eq!(c.entry_count(), 30, "c, below its even share, lost nothing");
    assert_eq!(c.stats().evictions, 0);
    assert_eq!(
        (a.entry_count(), b.entry_count()),
        (35, 35),
        "the two tenants above their share gave up entries in turn"
    );
    assert_eq!((a.stats().evictions, b.stats().evictions), (10, 10));
    cache.validate();
}

#[test]
fn an_entry_heavier_than_the_capacity_is_refused_and_the_listener_told() {
    let (builder, heard) = recording(
        Cache::<&'static str, u32>::builder()
            .max_capacity(100)
            .tenant_capacity(50)
            .weigher(|_k: &&str, v: &u32| *v),
    );
    let cache = builder.build();
    let t = cache.tenant("a");
    t.insert("k", 10);
    t.insert("k", 101); // heavier than the cache
    assert_eq!(t.get(&"k"), None, "the replaced value must not linger");
    t.insert("j", 60); // heavier than the tenant cap
    assert_eq!(t.get(&"j"), None);
    assert_eq!(cache.weighted_size(), 0);
    assert_eq!(
        causes(&heard),
        vec![
            RemovalCause::Replaced,
            RemovalCause::Evicted,
            RemovalCause::TenantCapacity
        ]
    );
    assert_eq!(t.stats().evictions, 2);
}

#[test]
fn max_capacity_zero_stores_nothing() {
    let cache: Cache<u32, u32> = Cache::new(0);
    let t = cache.tenant("a");
    t.insert(1, 1);
    assert_eq!(t.get(&1), None);
    assert_eq!(t.get_with(2, || 2), 2);
    assert_eq!(t.get(&2), None);
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn the_cache_fills_to_capacity_however_keys_spread_over_shards() {
    const CAP: u64 = 10_000;
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(CAP).shards(64).build();
    let t = cache.tenant("a");
    for k in 0..CAP {
        t.insert(k, k);
    }
    let resident = (0..CAP).filter(|k| t.contains(k)).count() as u64;
    assert!(
        resident * 100 >= CAP * 99,
        "only {resident} of {CAP} resident"
    );
    assert_eq!(cache.entry_count(), resident);
}

/// Refused at the door: evicting the tenant down to its cap after
/// storing it would flush the tenant's older entries of its shard first
/// (one shard, so all of them are).
#[test]
fn an_entry_heavier_than_the_tenant_cap_is_refused_and_the_tenants_others_stay() {
    let cache = weighed_by_value(10).tenant_capacity(5).shards(1).build();
    assert_eq!((cache.max_capacity(), cache.tenant_capacity()), (10, 5));
    let t = cache.tenant("a");
    t.insert(1, 2);
    t.insert(2, 2);
    t.insert(3, 10);
    assert_eq!((t.get(&1), t.get(&2), t.get(&3)), (Some(2), Some(2), None));
    let s = t.stats();
    assert_eq!((s.evictions, s.tenant_evictions, s.entry_count), (1, 1, 2));
    cache.validate();
}

/// The tenant's weight ends where it was, but it holds one entry fewer:
/// both counts must be settled, not only the weight.
#[test]
fn an_insert_that_evicts_two_lighter_entries_of_its_tenant_counts_both_out() {
    let cache = weighed_by_value(100).tenant_capacity(3).shards(1).build();
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert(2, 2);
    t.insert(3, 3);
    assert_eq!((t.get(&1), t.get(&2), t.get(&3)), (None, None, Some(3)));
    assert_eq!((t.entry_count(), t.weighted_size()), (1, 3));
    assert_eq!((cache.entry_count(), cache.weighted_size()), (1, 3));
    cache.validate();
}

#[test]
fn replacing_a_value_updates_its_weight() {
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(1_000)
        .weigher(|_k: &u32, v: &String| v.len() as u32)
        .build();
    let t = cache.tenant("a");
    t.insert(1, "abc".into());
    t.insert(1, "abcdefgh".into());
    assert_eq!((t.weighted_size(), cache.weighted_size()), (8, 8));
    assert_eq!(t.entry_count(), 1);
    cache.validate();
}

/// Found by the `ops` fuzz target: a refresh whose new value was too heavy
/// to admit left the old value readable.
#[test]
fn a_loaded_value_too_heavy_to_admit_does_not_leave_the_old_one_behind() {
    let cache = weighed_by_value(2).build();
    let t = cache.tenant("a");
    t.insert(1, 1);
    assert_eq!(t.refresh(1, |_| Ok::<_, ()>(3)), Ok(3));
    assert_eq!(
        t.get(&1),
        None,
        "the value the refresh replaced is still served"
    );
    t.insert(2, 2);
    assert_eq!(t.try_get_with(2, |_| Ok::<_, ()>(9)), Ok(2));
}

/// An entry of weight 0 takes no capacity: any number of them fit, even
/// in a cache of capacity 0, and they never make the cache evict. When
/// heavier entries need room they leave in their queue's turn like any
/// other entry, and are reported.
#[test]
fn entries_of_weight_zero_take_no_capacity() {
    let nothing = weighed_by_value(0).build();
    let t = nothing.tenant("a");
    t.insert(1, 0);
    t.insert(2, 1);
    assert_eq!((t.get(&1), t.get(&2)), (Some(0), None), "capacity 0");

    let (builder, heard) = recording(weighed_by_value(4).tenant_capacity(3).shards(1));
    let cache = builder.build();
    let t = cache.tenant("a");
    for k in 0..100 {
        t.insert(k, 0);
    }
    assert_eq!((t.entry_count(), cache.weighted_size()), (100, 0));
    assert!((0..100).all(|k| t.get(&k) == Some(0)), "a free entry lost");
    assert!(heard.lock().unwrap().is_empty(), "nothing needed room");

    for k in 100..110 {
        t.insert(k, 1);
        assert!(t.weighted_size() <= 3, "over the tenant cap");
    }
    cache.validate();
    let gone: Vec<u32> = heard.lock().unwrap().iter().map(|h| h.1).collect();
    for k in 0..110 {
        let reported = gone.iter().filter(|&&g| g == k).count();
        assert_eq!(
            usize::from(t.contains(&k)) + reported,
            1,
            "key {k}: held or reported once"
        );
    }
    assert_eq!(cache.weighted_size(), 3, "the tenant is full at its cap");
}

#[test]
fn tenants_with_caps_of_their_own_each_keep_within_them() {
    let (builder, heard) = recording(
        weighed_by_value(1_000)
            .tenant_capacity(20)
            .tenant_capacity_by(|id: &TenantId| match id.as_str() {
                Some("big") => Some(200),
                Some("tiny") => Some(3),
                _ => None,
            }),
    );
    let cache = builder.build();
    let names = ["big", "tiny", "plain"];
    let tenants: Vec<_> = names.iter().map(|n| cache.tenant(*n)).collect();
    let caps: Vec<u64> = tenants.iter().map(|t| t.capacity()).collect();
    assert_eq!(caps, [200, 3, 20]);
    thread::scope(|s| {
        for t in &tenants {
            for n in 0..2u32 {
                s.spawn(move || {
                    for k in 0..5_000 {
                        t.insert(n * 10_000 + k, 1);
                        assert!(t.weighted_size() <= t.capacity() + 1, "far over its cap");
                    }
                });
            }
        }
    });
    let held: Vec<u64> = tenants.iter().map(|t| t.weighted_size()).collect();
    assert_eq!(held, [200, 3, 20], "each tenant fills to its own cap");
    // A value lighter than the default cap but heavier than tiny's own is
    // refused by tiny alone (a refused value is not counted as inserted).
    let inserts = |t: &Tenant<u32, u32>| t.stats().inserts;
    let before: Vec<u64> = tenants.iter().map(inserts).collect();
    tenants[1].insert(1_000_000, 5);
    tenants[2].insert(1_000_000, 5);
    assert_eq!(
        inserts(&tenants[1]),
        before[1],
        "tiny took a value over its cap"
    );
    assert_eq!(
        inserts(&tenants[2]),
        before[2] + 1,
        "plain refused a value within its cap"
    );
    let heard = heard.lock().unwrap();
    for (name, t) in names.iter().zip(&tenants) {
        let of_t = heard.iter().filter(|h| h.0.as_str() == Some(*name));
        assert!(of_t.clone().all(|h| h.3 == RemovalCause::TenantCapacity));
        assert_eq!(of_t.count() as u64, t.stats().tenant_evictions);
    }
    assert!(heard
        .iter()
        .any(|h| h.0.as_str() == Some("tiny") && h.1 == 1_000_000 && h.2 == 5));
    cache.validate();
}

#[test]
fn a_tenants_own_cap_is_decided_when_the_cache_meets_it_again() {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .tenant_capacity_by(move |_: &TenantId| {
            counter.fetch_add(1, Ordering::SeqCst);
            Some(7)
        })
        .build();
    let a = cache.tenant("a");
    let again = cache.tenant("a");
    assert_eq!((a.capacity(), again.capacity()), (7, 7));
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "asked once while remembered"
    );
    drop((a, again)); // no handle and no entry: forgotten
    assert!(cache.tenants().is_empty());
    assert_eq!(cache.tenant("a").capacity(), 7);
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "asked again after forgetting"
    );
    assert_eq!(cache.tenant_capacity(), 100, "the default is max_capacity");
}
