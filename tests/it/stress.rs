use std::time::Duration;

use tenant_cache::Cache;

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
