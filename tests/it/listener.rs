use std::time::Duration;

use tenant_cache::{Cache, ManualClock, RemovalCause, TenantId};

use crate::support::{causes, recording};

#[test]
fn the_listener_hears_every_cause_with_tenant_key_and_value() {
    let clock = ManualClock::new();
    let (builder, heard) = recording(
        Cache::<u32, u32>::builder()
            .max_capacity(3)
            .tenant_capacity(2)
            .shards(1)
            .clock(clock.clone()),
    );
    let cache = builder.build();
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    a.insert(1, 10);
    a.insert(1, 11); // Replaced
    assert!(a.invalidate(&1)); // Invalidated
    a.insert_with_ttl(2, 20, Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    a.insert(3, 30);
    a.insert(4, 40); // over a's cap of 2: the expired 2 goes (Expired)
    a.insert(5, 50); // over a's cap again: TenantCapacity
    b.insert(1, 100);
    b.insert(2, 200); // cache over 3: Evicted
    let heard = heard.lock().unwrap();
    let first = &heard[0];
    assert_eq!(
        (&first.0, first.1, first.2, first.3),
        (&TenantId::from("a"), 1, 10, RemovalCause::Replaced)
    );
    assert_eq!(
        (heard[1].1, heard[1].2, heard[1].3),
        (1, 11, RemovalCause::Invalidated)
    );
    assert_eq!((heard[2].1, heard[2].3), (2, RemovalCause::Expired));
    assert_eq!(heard[3].3, RemovalCause::TenantCapacity);
    assert_eq!(heard[3].0, TenantId::from("a"));
    assert_eq!(heard.last().unwrap().3, RemovalCause::Evicted);
}

#[test]
fn the_listener_hears_of_invalidate_all_entries_as_they_are_reclaimed() {
    let (builder, heard) = recording(Cache::<u32, u32>::builder().max_capacity(100));
    let cache = builder.build();
    let a = cache.tenant("a");
    a.insert(1, 1);
    a.insert(2, 2);
    a.invalidate_all();
    assert!(causes(&heard).is_empty());
    cache.reclaim_invalidated();
    assert_eq!(causes(&heard), vec![RemovalCause::Invalidated; 2]);
}

/// `invalidate_all` counts every entry of the tenant as invalidated at
/// once, expired or not; the listener must tell the same story when the
/// cache reclaims them, and no entry may count as both.
#[test]
fn an_expired_entry_dropped_by_invalidate_all_is_reported_and_counted_once_as_invalidated() {
    let clock = ManualClock::new();
    let (builder, heard) = recording(
        Cache::<u32, u32>::builder()
            .max_capacity(100)
            .clock(clock.clone()),
    );
    let cache = builder.build();
    let a = cache.tenant("a");
    a.insert_with_ttl(1, 10, Duration::from_secs(1));
    a.insert(2, 20);
    clock.advance(Duration::from_secs(2));
    a.invalidate_all();
    cache.reclaim_invalidated();
    assert_eq!(causes(&heard), vec![RemovalCause::Invalidated; 2]);
    let s = a.stats();
    assert_eq!(
        (s.invalidations, s.expirations),
        (2, 0),
        "(invalidations, expirations)"
    );
}

#[test]
fn the_listener_may_use_the_cache_without_deadlock() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(1).shards(1).build();
    let handle = cache.clone();
    let cache2: Cache<u32, u32> = Cache::builder()
        .max_capacity(1)
        .shards(1)
        .eviction_listener(move |t: &TenantId, k: &u32, v: &u32, _| {
            handle.tenant(t).insert(*k, *v);
        })
        .build();
    let t = cache2.tenant("a");
    t.insert(1, 1);
    t.insert(2, 2);
    assert_eq!(cache.entry_count(), 1);
}
