//! The `metrics` export agrees with `Stats` (feature `metrics`).
#![cfg(feature = "metrics")]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tenant_cache::{Cache, Stats};

/// (name, sorted labels) → value, as the recorder saw them.
type Seen = HashMap<(String, Vec<(String, String)>), DebugValue>;

fn record(f: impl FnOnce()) -> Seen {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, f);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            ((key.key().name().to_string(), labels), value)
        })
        .collect()
}

/// What the recorder saw under `name` and `labels` (in any order).
fn value<'a>(seen: &'a Seen, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    seen.get(&(name.to_string(), labels))
}

fn counter(seen: &Seen, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(seen, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

fn gauge(seen: &Seen, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(seen, name, labels) {
        Some(DebugValue::Gauge(g)) => g.into_inner(),
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

fn assert_agrees(seen: &Seen, labels: &[(&str, &str)], s: &Stats) {
    let with = |k: &'static str, v: &'static str| {
        let mut l = labels.to_vec();
        l.push((k, v));
        l
    };
    assert_eq!(
        counter(seen, "tenant_cache_requests_total", &with("result", "hit")),
        s.hits
    );
    assert_eq!(
        counter(seen, "tenant_cache_requests_total", &with("result", "miss")),
        s.misses
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_loads_total",
            &with("outcome", "success")
        ),
        s.load_successes
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_loads_total",
            &with("outcome", "failure")
        ),
        s.load_failures - s.load_panics
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_loads_total",
            &with("outcome", "timeout")
        ),
        s.load_timeouts
    );
    assert_eq!(
        counter(seen, "tenant_cache_loads_total", &with("outcome", "panic")),
        s.load_panics
    );
    assert_eq!(
        counter(seen, "tenant_cache_coalesced_total", labels),
        s.coalesced
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_evictions_total",
            &with("cause", "capacity")
        ),
        s.evictions - s.tenant_evictions
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_evictions_total",
            &with("cause", "tenant_capacity")
        ),
        s.tenant_evictions
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_evictions_total",
            &with("cause", "expired")
        ),
        s.expirations
    );
    assert_eq!(
        counter(
            seen,
            "tenant_cache_evictions_total",
            &with("cause", "invalidated")
        ),
        s.invalidations
    );
    assert_eq!(
        counter(seen, "tenant_cache_stale_served_total", labels),
        s.stale_served
    );
    assert_eq!(
        counter(seen, "tenant_cache_fallbacks_total", labels),
        s.fallbacks
    );
    assert_eq!(
        gauge(seen, "tenant_cache_entries", labels),
        s.entry_count as f64
    );
    assert_eq!(
        gauge(seen, "tenant_cache_weighted_size", labels),
        s.weighted_size as f64
    );
}

fn exercise(cache: &Cache<u32, u32>) {
    for tenant in ["a", "b"] {
        let t = cache.tenant(tenant);
        for k in 0..20 {
            t.insert(k, k);
        }
        t.get(&1);
        t.get(&100);
        let _ = t.try_get_with(200, |_| Ok::<_, ()>(1));
        let _ = t.try_get_with(201, |_| Err::<u32, _>(()));
        let _ = t.load(202).fallback(|_| Some(0)).run(|_| Err::<u32, _>(()));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.get_with(203, || panic!("a loader panics on purpose"))
        }));
        t.invalidate(&2);
    }
}

#[test]
fn exported_totals_agree_with_stats() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(30)
        .tenant_capacity(16)
        .name("totals")
        .build();
    let mut stats = Stats::default();
    let seen = record(|| {
        exercise(&cache);
        cache.publish_metrics();
        stats = cache.stats();
    });
    assert!(stats.evictions > 0 && stats.tenant_evictions > 0 && stats.load_panics == 2);
    assert_agrees(&seen, &[("cache", "totals")], &stats);
    let loads = seen
        .iter()
        .find(|((name, _), _)| name == "tenant_cache_load_duration_seconds")
        .map(|(_, v)| v);
    match loads {
        // One sample per loader call that returned (a panicking call has no duration).
        Some(DebugValue::Histogram(h)) => {
            assert_eq!(h.len() as u64, stats.loads - stats.load_panics)
        }
        other => panic!("no load histogram: {other:?}"),
    }
    assert!(
        seen.keys()
            .all(|(_, labels)| labels.iter().all(|(k, _)| k != "tenant")),
        "a tenant label without metrics_per_tenant"
    );
}

#[test]
fn per_tenant_export_agrees_with_each_tenants_stats() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .name("per-tenant")
        .metrics_per_tenant(true)
        .build();
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    let seen = record(|| {
        exercise(&cache);
        cache.publish_metrics();
    });
    assert_agrees(
        &seen,
        &[("cache", "per-tenant"), ("tenant", "a")],
        &a.stats(),
    );
    assert_agrees(
        &seen,
        &[("cache", "per-tenant"), ("tenant", "b")],
        &b.stats(),
    );
}
