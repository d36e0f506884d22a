use tenant_cache::{Cache, TenantId};

#[test]
fn a_million_distinct_tenants_leave_the_registry_bounded() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(1_000).build();
    for id in 0..1_000_000u64 {
        let t = cache.tenant(id);
        if id % 4 == 0 {
            t.insert(1, 1);
        }
        if id % 10_000 == 0 {
            // Tenants with entries stay; idle ones go.
            assert!(
                cache.tenants().len() <= 1_001,
                "registry grew to {}",
                cache.tenants().len()
            );
        }
    }
    assert!(cache.tenants().len() <= 1_000);
    assert!(cache.entry_count() <= 1_000);
}

#[test]
fn a_tenant_with_entries_or_handles_stays_listed() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let held = cache.tenant("held");
    cache.tenant("stored").insert(1, 1);
    drop(cache.tenant("idle"));
    let ids: Vec<TenantId> = cache.tenants().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![TenantId::from("held"), TenantId::from("stored")]);
    assert_eq!(cache.tenant_stats("stored").unwrap().entry_count, 1);
    assert!(cache.tenant_stats("idle").is_none());
    drop(held);
    assert!(cache.tenant_stats("held").is_none());
}

#[test]
fn a_tenant_whose_last_entry_is_evicted_is_forgotten() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(1).shards(1).build();
    cache.tenant("a").insert(1, 1);
    assert!(cache.tenant_stats("a").is_some());
    cache.tenant("b").insert(1, 1);
    assert_eq!(cache.entry_count(), 1);
    assert_eq!(cache.tenants().len(), 1);
    // What the forgotten tenant did stays in the cache's totals.
    let total = cache.stats();
    assert_eq!((total.inserts, total.evictions), (2, 1));
}

#[test]
fn tenant_stats_and_cache_stats_agree() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let a = cache.tenant("a");
    let b = cache.tenant(2u64);
    a.insert(1, 1);
    a.get(&1);
    a.get(&2);
    b.get(&1);
    let (sa, sb, total) = (a.stats(), b.stats(), cache.stats());
    assert_eq!(
        (sa.hits, sa.misses, sa.inserts, sa.entry_count),
        (1, 1, 1, 1)
    );
    assert_eq!((sb.hits, sb.misses), (0, 1));
    assert_eq!((total.hits, total.misses, total.inserts), (1, 2, 1));
    assert_eq!(total.entry_count, 1);
    assert!((total.hit_ratio() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(cache.tenant_stats(2u64), Some(sb));
}

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Cache<String, std::sync::Arc<Vec<u8>>>>();
    assert_send_sync::<tenant_cache::Tenant<String, std::sync::Arc<Vec<u8>>>>();
    let cache: Cache<u32, u32> = Cache::new(10);
    let t = cache.tenant("a");
    let t2 = t.clone();
    t2.insert(1, 1);
    assert_eq!(t.get(&1), Some(1));
    assert!(format!("{cache:?}").contains("entry_count: 1"));
    assert!(format!("{t:?}").contains("\"a\""));
}

#[test]
fn a_dropped_clone_leaves_the_tenant_registered_for_the_other_handle() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let t = cache.tenant("a");
    drop(t.clone());
    t.insert(1, 1);
    assert_eq!(
        cache.tenant("a").get(&1),
        Some(1),
        "the tenant was forgotten while a handle still held it"
    );
    assert_eq!(cache.tenants().len(), 1);
}
