//! Noisy neighbour: tenant B replays a Zipf workload that fits its share of
//! the cache while tenant A streams one-time keys at 4× B's request rate,
//! interleaved. B's hit ratio alone and with A, for tenant-cache with
//! `tenant_capacity` at 50% of `max_capacity`, and for quick_cache and moka
//! keyed by `(tenant, key)` at the same total capacity.
//!
//! Run: `cargo bench --bench isolation`

mod common;

use std::fmt::Write as _;

use common::{Rng, Zipf};
use tenant_cache::Cache;

const CAPACITY: u64 = 20_000;
const B_KEYS: usize = 8_000;
const B_REQUESTS: usize = 400_000;
const A_PER_B: usize = 4;

trait TwoTenants {
    fn get(&self, tenant: u8, key: u64) -> bool;
    fn insert(&self, tenant: u8, key: u64);
}

struct Ours(Cache<u64, ()>);
struct Quick(quick_cache::sync::Cache<(u8, u64), ()>);
struct Moka(moka::sync::Cache<(u8, u64), ()>);

impl TwoTenants for Ours {
    fn get(&self, tenant: u8, key: u64) -> bool {
        self.0.tenant(u64::from(tenant)).get(&key).is_some()
    }
    fn insert(&self, tenant: u8, key: u64) {
        self.0.tenant(u64::from(tenant)).insert(key, ());
    }
}

impl TwoTenants for Quick {
    fn get(&self, tenant: u8, key: u64) -> bool {
        self.0.get(&(tenant, key)).is_some()
    }
    fn insert(&self, tenant: u8, key: u64) {
        self.0.insert((tenant, key), ());
    }
}

impl TwoTenants for Moka {
    fn get(&self, tenant: u8, key: u64) -> bool {
        self.0.get(&(tenant, key)).is_some()
    }
    fn insert(&self, tenant: u8, key: u64) {
        self.0.insert((tenant, key), ());
    }
}

/// B's hit ratio over its requests, with `A_PER_B` streaming requests of A
/// between two of B's when `noisy`.
fn b_hit_ratio(cache: &dyn TwoTenants, b_keys: &[u64], noisy: bool) -> f64 {
    let mut next_a = 1u64 << 40;
    let mut hits = 0usize;
    for &k in b_keys {
        if noisy {
            for _ in 0..A_PER_B {
                if !cache.get(0, next_a) {
                    cache.insert(0, next_a);
                }
                next_a += 1;
            }
        }
        if cache.get(1, k) {
            hits += 1;
        } else {
            cache.insert(1, k);
        }
    }
    hits as f64 / b_keys.len() as f64
}

fn make(name: &str) -> Box<dyn TwoTenants> {
    match name {
        "tenant-cache" => Box::new(Ours(
            Cache::builder()
                .max_capacity(CAPACITY)
                .tenant_capacity(CAPACITY / 2)
                .build(),
        )),
        "quick_cache" => Box::new(Quick(quick_cache::sync::Cache::new(CAPACITY as usize))),
        _ => Box::new(Moka(moka::sync::Cache::new(CAPACITY))),
    }
}

fn main() {
    let zipf = Zipf::new(B_KEYS, 0.9);
    let mut rng = Rng::new(5);
    let b_keys: Vec<u64> = (0..B_REQUESTS).map(|_| zipf.sample(&mut rng)).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!(
        "## Noisy neighbour\n\n{cores} cores; `cargo bench --bench isolation`. Capacity {CAPACITY}; \
         tenant B: Zipf(0.9) over {B_KEYS} keys, {B_REQUESTS} requests; tenant A: one-time keys, \
         {A_PER_B} requests per request of B. tenant-cache with `tenant_capacity` {}; the others keyed by (tenant, key).\n\n\
         | cache | B alone | B with A | kept |\n|---|---:|---:|---:|\n",
        CAPACITY / 2
    );
    for name in ["tenant-cache", "quick_cache", "moka"] {
        let alone = b_hit_ratio(&*make(name), &b_keys, false);
        let noisy = b_hit_ratio(&*make(name), &b_keys, true);
        let _ = writeln!(
            out,
            "| {name} | {:.2}% | {:.2}% | {:.1}% |",
            100.0 * alone,
            100.0 * noisy,
            100.0 * noisy / alone
        );
    }
    print!("{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    std::fs::create_dir_all(&dir).expect("create target/bench-report");
    std::fs::write(dir.join("isolation.md"), out).expect("write isolation.md");
}
