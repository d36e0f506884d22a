//! Helpers shared by the tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenant_cache::{CacheBuilder, RemovalCause, TenantId};

/// Every listener call, in order.
pub type Heard<K, V> = Arc<Mutex<Vec<(TenantId, K, V, RemovalCause)>>>;

/// Adds a listener that records what it hears.
pub fn recording<K, V>(builder: CacheBuilder<K, V>) -> (CacheBuilder<K, V>, Heard<K, V>)
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let heard: Heard<K, V> = Arc::default();
    let sink = heard.clone();
    let builder = builder.eviction_listener(move |t: &TenantId, k: &K, v: &V, c| {
        sink.lock()
            .unwrap()
            .push((t.clone(), k.clone(), v.clone(), c));
    });
    (builder, heard)
}

pub fn causes<K, V>(heard: &Heard<K, V>) -> Vec<RemovalCause> {
    heard.lock().unwrap().iter().map(|h| h.3).collect()
}

/// The longest any test waits for another thread before calling it a hang.
#[allow(dead_code)]
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Deterministic pseudo-random numbers for workloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
