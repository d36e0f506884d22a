//! Baseline micro-benchmarks of tenant-cache alone (criterion):
//! hits, get-or-insert on Zipf keys, `tenant()` lookups, a hit through
//! `try_get_with` next to a plain `get`, a 64-thread miss storm, and
//! `Cache::reclaim_expired` over a million entries.
//!
//! Run: `cargo bench --bench core`

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::Zipf;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tenant_cache::{Cache, ManualClock};

fn hits(c: &mut Criterion) {
    let cache: Cache<u64, u64> = Cache::new(200_000);
    let t = cache.tenant("bench");
    for k in 0..100_000 {
        t.insert(k, k);
    }
    let keys = Zipf::new(100_000, 1.0).keys(1 << 16, 1);
    let mut g = c.benchmark_group("hit");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("get", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(t.get(k));
            }
        })
    });
    g.bench_function("try_get_with", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(t.try_get_with(*k, |_| Err::<u64, ()>(())).ok());
            }
        })
    });
    g.finish();
}

fn get_or_insert(c: &mut Criterion) {
    // A long stream walked in chunks, so the cache keeps seeing new keys
    // instead of one chunk it has long since learned.
    const CHUNK: usize = 1 << 14;
    let keys = Zipf::new(1_000_000, 1.0).keys(1 << 22, 2);
    let cache: Cache<u64, u64> = Cache::new(100_000);
    let t = cache.tenant("bench");
    let mut at = 0;
    let mut g = c.benchmark_group("zipf_1m_keys_cap_100k");
    g.throughput(Throughput::Elements(CHUNK as u64));
    g.bench_function("get_then_insert_on_miss", |b| {
        b.iter(|| {
            for k in &keys[at..at + CHUNK] {
                if t.get(k).is_none() {
                    t.insert(*k, *k);
                }
            }
            at = (at + CHUNK) % keys.len();
        })
    });
    g.finish();
}

fn tenant_lookup(c: &mut Criterion) {
    let cache: Cache<u64, u64> = Cache::new(1_000);
    let names: Vec<String> = (0..1_000).map(|i| format!("tenant-{i}")).collect();
    let held: Vec<_> = names.iter().map(|n| cache.tenant(n)).collect();
    let mut g = c.benchmark_group("tenant");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("lookup_existing", |b| {
        b.iter(|| {
            for n in &names {
                black_box(cache.tenant(n.as_str()));
            }
        })
    });
    g.finish();
    drop(held);
}

fn miss_storm(c: &mut Criterion) {
    const THREADS: usize = 64;
    let mut g = c.benchmark_group("miss_storm_64_threads_10ms_loader");
    g.sample_size(10);
    // From the moment all 64 callers are released until the last returns
    // (thread start-up is outside the measurement).
    g.bench_function("get_with", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let cache = Cache::<u64, u64>::new(100);
                let calls = Arc::new(AtomicU32::new(0));
                let gate = Arc::new(Barrier::new(THREADS + 1));
                let threads: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let t = cache.tenant("bench");
                        let (calls, gate) = (calls.clone(), gate.clone());
                        thread::spawn(move || {
                            gate.wait();
                            t.get_with(1, || {
                                calls.fetch_add(1, Ordering::Relaxed);
                                thread::sleep(Duration::from_millis(10));
                                1
                            })
                        })
                    })
                    .collect();
                gate.wait();
                let released = Instant::now();
                for t in threads {
                    assert_eq!(t.join().unwrap(), 1);
                }
                total += released.elapsed();
                assert_eq!(calls.load(Ordering::Relaxed), 1, "one load per storm");
            }
            total
        })
    });
    g.finish();
}

fn reclaim_expired(c: &mut Criterion) {
    const ENTRIES: u64 = 1_000_000;
    let mut g = c.benchmark_group("reclaim_expired_1m_entries");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ENTRIES));
    for (name, expired) in [
        ("none_expired", 0),
        ("half_expired", ENTRIES / 2),
        ("all_expired", ENTRIES),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Filling the cache is outside the measurement.
                    let clock = ManualClock::new();
                    let cache: Cache<u64, u64> = Cache::builder()
                        .max_capacity(ENTRIES)
                        .time_to_live(Duration::from_secs(60))
                        .clock(clock.clone())
                        .build();
                    let t = cache.tenant("bench");
                    for k in 0..expired {
                        t.insert(k, k);
                    }
                    clock.advance(Duration::from_secs(30));
                    for k in expired..ENTRIES {
                        t.insert(k, k);
                    }
                    clock.advance(Duration::from_secs(31));
                    let start = Instant::now();
                    cache.reclaim_expired();
                    total += start.elapsed();
                    assert_eq!(cache.entry_count(), ENTRIES - expired);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    hits,
    get_or_insert,
    tenant_lookup,
    miss_storm,
    reclaim_expired
);
criterion_main!(benches);
