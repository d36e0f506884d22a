use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tenant_cache::{Cache, RemovalCause, TenantId};

use crate::support::recording;

#[test]
fn invalidate_all_hides_every_entry_of_the_tenant_at_once_and_walks_none() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100_000)
        .eviction_listener(move |_: &TenantId, _: &u64, _: &u64, c| {
            assert_eq!(c, RemovalCause::Invalidated);
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    for k in 0..10_000 {
        a.insert(k, k);
        b.insert(k, k);
    }
    a.invalidate_all();
    // O(1): nothing was walked, so nothing has been reported yet.
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert!((0..10_000).all(|k| a.get(&k).is_none()));
    assert!((0..10_000).all(|k| b.get(&k) == Some(k)));
    assert_eq!(a.entry_count(), 0);
    assert_eq!(b.entry_count(), 10_000);
    // The dropped entries still count against capacity until reclaimed,
    // and count as invalidations as they are reclaimed.
    assert_eq!(cache.entry_count(), 20_000);
    assert_eq!(a.stats().invalidations, 0);
    cache.validate();
    cache.reclaim_invalidated();
    assert_eq!(a.stats().invalidations, 10_000);
    assert_eq!(calls.load(Ordering::Relaxed), 10_000);
    assert_eq!(cache.entry_count(), 10_000);
}

#[test]
fn dropped_entries_are_reclaimed_incrementally_by_later_writes() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(100_000).shards(4).build();
    let a = cache.tenant("a");
    for k in 0..1_000 {
        a.insert(k, k);
    }
    a.invalidate_all();
    assert_eq!(cache.entry_count(), 1_000);
    let b = cache.tenant("b");
    let mut last = cache.entry_count();
    let mut writes = 0;
    while cache.entry_count() > b.entry_count() {
        b.insert(writes, writes);
        writes += 1;
        let now = cache.entry_count() - b.entry_count();
        assert!(now <= last, "reclaiming never goes backwards");
        last = now;
        assert!(writes < 10_000, "dropped entries were never reclaimed");
    }
    assert!(writes > 1, "reclaiming all at once would be a full scan");
    cache.validate();
}

#[test]
fn dropped_entries_are_reclaimed_first_under_pressure() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(1_000).shards(1).build();
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    for k in 0..500 {
        b.insert(k, k);
        b.get(&k);
    }
    for k in 0..500 {
        a.insert(k, k);
    }
    a.invalidate_all();
    for k in 0..500 {
        a.insert(1_000 + k, k);
    }
    assert_eq!(
        b.entry_count(),
        500,
        "pressure took live entries before dropped ones"
    );
    assert_eq!(a.entry_count(), 500);
}

#[test]
fn reclaim_invalidated_frees_everything_now() {
    let cache: Cache<u64, u64> = Cache::new(10_000);
    let a = cache.tenant("a");
    for k in 0..5_000 {
        a.insert(k, k);
    }
    cache.invalidate_all();
    cache.reclaim_invalidated();
    assert_eq!((cache.entry_count(), cache.weighted_size()), (0, 0));
    a.insert(1, 1);
    assert_eq!(a.get(&1), Some(1), "the tenant works after invalidation");
    cache.validate();
}

#[test]
fn cache_invalidate_all_drops_every_tenant() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    a.insert(1, 1);
    b.insert(1, 2);
    cache.invalidate_all();
    assert_eq!((a.get(&1), b.get(&1)), (None, None));
    b.insert(1, 3);
    assert_eq!(b.get(&1), Some(3));
}

#[test]
fn cache_invalidate_all_forgets_tenants_no_handle_holds() {
    let cache: Cache<u32, u32> = Cache::new(100);
    cache.tenant("idle").insert(1, 1);
    let held = cache.tenant("held");
    held.insert(1, 2);
    cache.invalidate_all();
    let ids: Vec<TenantId> = cache.tenants().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![TenantId::from("held")]);
    assert_eq!(cache.tenant_stats("idle"), None);
}

#[test]
fn invalidate_reports_whether_it_removed_something() {
    let cache: Cache<String, u32> = Cache::new(100);
    let a = cache.tenant("a");
    a.insert("x".into(), 1);
    assert!(a.invalidate("x"));
    assert!(!a.invalidate("x"));
    assert_eq!(a.stats().invalidations, 1);
}

#[test]
fn remove_hands_back_the_live_value_once_the_listener_has_seen_it() {
    let (builder, heard) = recording(Cache::<u32, String>::builder().max_capacity(100));
    let cache = builder.build();
    let a = cache.tenant("a");
    a.insert(1, "one".into());
    a.insert(2, "two".into());
    assert_eq!(a.remove(&1).as_deref(), Some("one"));
    assert_eq!(a.remove(&1), None);
    assert_eq!(a.get(&1), None);
    assert_eq!(a.get(&2).as_deref(), Some("two"));
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 1);
    assert_eq!(
        (&heard[0].0, heard[0].1, heard[0].2.as_str(), heard[0].3),
        (&TenantId::from("a"), 1, "one", RemovalCause::Invalidated)
    );
    let s = a.stats();
    assert_eq!((s.invalidations, s.entry_count), (1, 1));
}

#[test]
fn insert_invalidate_cycles_keep_tombstones_bounded() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(100).shards(1).build();
    let a = cache.tenant("a");
    for round in 0..100_000u64 {
        a.insert(round % 10, round);
        a.invalidate(&(round % 10));
        if round % 1_000 == 0 {
            cache.validate();
        }
    }
    cache.validate();
    assert_eq!(cache.entry_count(), 0);
}
