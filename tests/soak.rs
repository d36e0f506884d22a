//! A minute of everything at once: 4× cores threads, 100 tenants, Zipf
//! keys, every operation mixed, loaders that fail (10%), panic (1%) and
//! overrun their deadline (5%). Ignored by default; CI runs it with
//! `cargo test --release --test soak -- --ignored`. `SOAK_SECS` sets the
//! length (default 60).

use std::time::Duration;

use tenant_cache::Cache;

mod workload;

#[test]
#[ignore = "a minute long; run by .ci/run"]
fn a_minute_of_mixed_load_keeps_every_promise() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let w = workload::Workload {
        threads: 4 * cores,
        tenants: 100,
        hot_tenants: true,
        keys: 2_000,
        skew: 1.0,
        run_for: Duration::from_secs(secs),
        timeout: Duration::from_millis(25),
        slack: Duration::from_millis(500),
        // Both caps below what the workload would keep resident, so both
        // evict throughout: the busiest tenants meet their own cap, and the
        // many others fill the global one.
        max_capacity: 5_000,
        tenant_capacity: 100,
        fail_pct: 10,
        panic_pct: 1,
        overrun_pct: 5,
        warm_up: Some(Duration::from_secs(secs / 4)),
    };
    // Expected panics would flood the log: keep only the unexpected ones.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("on purpose") {
            default_hook(info);
        }
    }));
    let cache: Cache<u64, (u64, u64)> = Cache::builder()
        .max_capacity(w.max_capacity)
        .tenant_capacity(w.tenant_capacity)
        .time_to_live(Duration::from_millis(500))
        .stale_if_error(Duration::from_secs(1))
        .refresh_after(Duration::from_millis(200))
        .build();
    let r = w.run(&cache);
    println!("{} calls; stats {:?}", r.calls, cache.stats());
    println!(
        "resident MB after warm-up: {:?}",
        r.rss.iter().map(|b| b >> 20).collect::<Vec<_>>()
    );
    assert!(
        !r.overlapping_loads,
        "two loaders of one key ran at once in one generation"
    );
    assert!(!r.cross_tenant_reads, "a tenant got another tenant's value");
    assert!(
        r.late_calls.is_empty(),
        "{} calls overran their deadline: {:?}",
        r.late_calls.len(),
        r.late_calls
    );
    assert!(r.unexpected_errors.is_empty(), "{:?}", r.unexpected_errors);
    let stats = cache.stats();
    assert!(
        stats.evictions > stats.tenant_evictions && stats.tenant_evictions > 0,
        "both caps should have evicted: {stats:?}"
    );
    assert!(cache.weighted_size() <= w.max_capacity);
    for (id, s) in cache.tenants() {
        assert!(s.weighted_size <= w.tenant_capacity, "{id} over its cap");
    }
    let first = *r.rss.first().expect("resident memory was sampled");
    let peak = *r.rss.iter().max().unwrap();
    // Flat: no more than 10% (or 16 MiB) above the first sample after warm-up.
    assert!(
        peak <= first + (first / 10).max(16 << 20),
        "resident memory grew from {first} to {peak} bytes"
    );
}
