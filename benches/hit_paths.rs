//! What a hit costs through each read path of a `Tenant`, against a plain
//! `get`. Criterion measures benches one after another, so drift of a
//! shared host between them lands in their ratio; here every path runs the
//! same batch of Zipf hits in turn, many times over, in one process, and
//! each keeps its fastest batch.
//!
//! Run: `cargo bench --bench hit_paths`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::Zipf;
use tenant_cache::{Cache, Tenant};

const KEYS: u64 = 100_000;
const ROUNDS: usize = 300;

/// The time of one pass of `read` over `keys` (every read must hit).
fn batch(keys: &[u64], read: impl Fn(u64) -> Option<u64>) -> Duration {
    let start = Instant::now();
    for &k in keys {
        black_box(read(k).expect("every key is resident"));
    }
    start.elapsed()
}

fn main() {
    let keys = Zipf::new(KEYS as usize, 1.0).keys(1 << 16, 7);
    let cache: Cache<u64, u64> = Cache::new(2 * KEYS);
    let t: Tenant<u64, u64> = cache.tenant("bench");
    for k in 0..KEYS {
        t.insert(k, k);
    }
    let names = ["get", "cached", "try_get_with", "get_with"];
    let mut best = [Duration::MAX; 4];
    for _ in 0..ROUNDS {
        let times = [
            batch(&keys, |k| t.get(&k)),
            batch(&keys, |k| t.cached(&k)),
            batch(&keys, |k| t.try_get_with(k, |_| Err::<u64, ()>(())).ok()),
            batch(&keys, |k| Some(t.get_with(k, || unreachable!("all hits")))),
        ];
        for (b, time) in best.iter_mut().zip(times) {
            *b = (*b).min(time);
        }
    }
    println!(
        "\n### a hit through each read path: {} Zipf(1.0) hits over {KEYS} resident keys, fastest of {ROUNDS} alternating batches\n",
        keys.len()
    );
    println!("| path | fastest batch | ns per hit | × get |\n|---|---:|---:|---:|");
    for (name, b) in names.iter().zip(best) {
        println!(
            "| `{name}` | {:.3} ms | {:.1} | {:.3} |",
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e9 / keys.len() as f64,
            b.as_secs_f64() / best[0].as_secs_f64()
        );
    }
}
