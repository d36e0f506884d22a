//! Arbitrary builder settings: the cache builds and works, or the builder
//! refuses with its documented panic (never anything else).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tenant_cache::{Cache, Retry};

#[derive(Arbitrary, Debug)]
struct Config {
    max_capacity: Option<u64>,
    tenant_capacity: Option<u64>,
    /// A cap of their own for the tenants of even id.
    even_tenants_capacity: Option<u64>,
    ttl: Option<(u64, u32)>,
    shards: Option<usize>,
    weight: Option<u32>,
    load_timeout: Option<(u64, u32)>,
    retry: Option<(u32, u64)>,
    stale_if_error: Option<(u64, u32)>,
    refresh_after: Option<(u64, u32)>,
    name: String,
    keys: Vec<(u8, u16)>,
}

fn duration((secs, nanos): (u64, u32)) -> Duration {
    Duration::new(secs, nanos % 1_000_000_000)
}

fuzz_target!(|c: Config| {
    let mut b = Cache::<u16, u64>::builder().name(c.name);
    if let Some(n) = c.max_capacity {
        b = b.max_capacity(n);
    }
    if let Some(n) = c.tenant_capacity {
        b = b.tenant_capacity(n);
    }
    if let Some(n) = c.even_tenants_capacity {
        b = b.tenant_capacity_by(move |id| id.as_u64().filter(|t| t % 2 == 0).map(|_| n));
    }
    if let Some(d) = c.ttl {
        b = b.time_to_live(duration(d));
    }
    if let Some(s) = c.shards {
        // 0 is the documented panic; everything else must build.
        b = b.shards(s.max(1));
    }
    if let Some(w) = c.weight {
        b = b.weigher(move |_k: &u16, _v: &u64| w);
    }
    if let Some(d) = c.load_timeout {
        b = b.load_timeout(duration(d));
    }
    if let Some((n, ms)) = c.retry {
        b = b.retry(Retry::attempts(n % 3).backoff(Duration::from_micros(ms % 100)));
    }
    if let Some(d) = c.stale_if_error {
        b = b.stale_if_error(duration(d));
    }
    if let Some(d) = c.refresh_after {
        b = b.refresh_after(duration(d));
    }
    let cache = b.build();
    for (tenant, key) in c.keys.into_iter().take(64) {
        let t = cache.tenant(u64::from(tenant));
        t.insert(key, 1);
        let _ = t.get(&key);
        let _ = t.try_get_with(key.wrapping_add(1), |_| Err::<u64, ()>(()));
        assert!(cache.weighted_size() <= cache.max_capacity());
        assert!(t.weighted_size() <= t.capacity());
    }
    cache.validate();
});
