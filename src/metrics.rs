//! Export through the `metrics` facade (cargo feature `metrics`).
//!
//! Lookups are counted in the cache's own per-thread and per-tenant
//! counters, never with a recorder call per hit. [`Cache::publish_metrics`]
//! copies those counters to the installed recorder as absolute values, so
//! what a scrape shows is exactly what `Cache::stats` said at the last
//! publish. Load durations go to the recorder as each loader call ends
//! (loads are the slow path anyway).
//!
//! Every metric carries `cache` = the builder's `name`; with
//! `metrics_per_tenant(true)` each also carries `tenant`, one series per
//! tenant: mind the cardinality.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Label};

use crate::cache::{Cache, Inner};
use crate::stats::Stats;
use crate::tenant_id::TenantId;

fn labels<K, V>(inner: &Inner<K, V>, tenant: Option<&TenantId>) -> Vec<Label> {
    let mut labels = vec![Label::new("cache", inner.name.to_string())];
    if let Some(t) = tenant {
        labels.push(Label::new("tenant", t.to_string()));
    }
    labels
}

fn with(base: &[Label], key: &'static str, value: &'static str) -> Vec<Label> {
    let mut l = base.to_vec();
    l.push(Label::new(key, value));
    l
}

fn publish_one(base: &[Label], s: &Stats) {
    let requests = "tenant_cache_requests_total";
    counter!(requests, with(base, "result", "hit")).absolute(s.hits);
    counter!(requests, with(base, "result", "miss")).absolute(s.misses);
    let loads = "tenant_cache_loads_total";
    counter!(loads, with(base, "outcome", "success")).absolute(s.load_successes);
    // A part and its whole are read one after the other while writers
    // count on, so the part can be a step ahead: never subtract past zero.
    counter!(loads, with(base, "outcome", "failure"))
        .absolute(s.load_failures.saturating_sub(s.load_panics));
    counter!(loads, with(base, "outcome", "timeout")).absolute(s.load_timeouts);
    counter!(loads, with(base, "outcome", "panic")).absolute(s.load_panics);
    counter!("tenant_cache_coalesced_total", base.to_vec()).absolute(s.coalesced);
    let evictions = "tenant_cache_evictions_total";
    counter!(evictions, with(base, "cause", "capacity"))
        .absolute(s.evictions.saturating_sub(s.tenant_evictions));
    counter!(evictions, with(base, "cause", "tenant_capacity")).absolute(s.tenant_evictions);
    counter!(evictions, with(base, "cause", "expired")).absolute(s.expirations);
    counter!(evictions, with(base, "cause", "invalidated")).absolute(s.invalidations);
    counter!("tenant_cache_stale_served_total", base.to_vec()).absolute(s.stale_served);
    counter!("tenant_cache_fallbacks_total", base.to_vec()).absolute(s.fallbacks);
    gauge!("tenant_cache_entries", base.to_vec()).set(s.entry_count as f64);
    gauge!("tenant_cache_weighted_size", base.to_vec()).set(s.weighted_size as f64);
}

pub(crate) fn record_load_time<K, V>(inner: &Inner<K, V>, tenant: &TenantId, took: Duration) {
    let tenant = inner.metrics_per_tenant.then_some(tenant);
    histogram!("tenant_cache_load_duration_seconds", labels(inner, tenant))
        .record(took.as_secs_f64());
}

impl<K, V> Cache<K, V> {
    /// Writes the cache's counters and gauges to the installed `metrics`
    /// recorder: the totals, or one series per tenant with
    /// `metrics_per_tenant(true)`. Call it before each scrape or on a
    /// timer; between calls the recorder keeps the last values.
    ///
    /// Names (all labelled `cache`, and `tenant` when per-tenant):
    /// `tenant_cache_requests_total{result="hit"|"miss"}`,
    /// `tenant_cache_loads_total{outcome="success"|"failure"|"timeout"|"panic"}`,
    /// `tenant_cache_coalesced_total`,
    /// `tenant_cache_evictions_total{cause="capacity"|"tenant_capacity"|"expired"|"invalidated"}`,
    /// `tenant_cache_stale_served_total`, `tenant_cache_fallbacks_total`,
    /// gauges `tenant_cache_entries` and `tenant_cache_weighted_size`, and
    /// the histogram `tenant_cache_load_duration_seconds` (recorded as
    /// loads finish).
    pub fn publish_metrics(&self) {
        let inner = &*self.inner;
        if inner.metrics_per_tenant {
            for (id, stats) in self.tenants() {
                publish_one(&labels(inner, Some(&id)), &stats);
            }
        } else {
            publish_one(&labels(inner, None), &self.stats());
        }
    }
}
