//! tenant-cache side by side with quick_cache and moka, in one run, with
//! two limit rows that do no eviction bookkeeping at all: a 64-shard
//! `HashMap` under `parking_lot::RwLock`, and the same under crossbeam's
//! `ShardedLock` (per-thread reader slots).
//!
//! Run: `cargo bench --bench compare`. Prints markdown tables and writes
//! them to `target/bench-report/compare.md`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::{Rng, Zipf};
use crossbeam_utils::sync::ShardedLock;
use parking_lot::RwLock;
use tenant_cache::{Cache, Tenant};

// ---------------------------------------------------------------------------
// Allocation counting, for bytes per entry.

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as i64, Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------
// The caches under test, behind one small interface.

trait Subject: Send + Sync {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
}

struct Ours(Tenant<u64, u64>);
struct Quick(quick_cache::sync::Cache<u64, u64>);
struct Moka(moka::sync::Cache<u64, u64>);

const LIMIT_SHARDS: usize = 64;

struct RwMap {
    shards: Box<[RwLock<HashMap<u64, u64, ahash::RandomState>>]>,
    hasher: ahash::RandomState,
}

struct ShardedMap {
    shards: Box<[ShardedLock<HashMap<u64, u64, ahash::RandomState>>]>,
    hasher: ahash::RandomState,
}

impl Subject for Ours {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k)
    }
    fn insert(&self, k: u64, v: u64) {
        self.0.insert(k, v)
    }
}

impl Subject for Quick {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k)
    }
    fn insert(&self, k: u64, v: u64) {
        self.0.insert(k, v)
    }
}

impl Subject for Moka {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k)
    }
    fn insert(&self, k: u64, v: u64) {
        self.0.insert(k, v)
    }
}

fn shard_of<H: BuildHasher>(hasher: &H, k: &impl Hash) -> usize {
    (hasher.hash_one(k) >> 58) as usize % LIMIT_SHARDS
}

impl RwMap {
    fn new() -> Self {
        Self {
            shards: (0..LIMIT_SHARDS).map(|_| RwLock::default()).collect(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl Subject for RwMap {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.shards[shard_of(&self.hasher, &k)]
            .read()
            .get(&k)
            .copied()
    }
    fn insert(&self, k: u64, v: u64) {
        self.shards[shard_of(&self.hasher, &k)].write().insert(k, v);
    }
}

impl ShardedMap {
    fn new() -> Self {
        Self {
            shards: (0..LIMIT_SHARDS).map(|_| ShardedLock::default()).collect(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl Subject for ShardedMap {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.shards[shard_of(&self.hasher, &k)]
            .read()
            .unwrap()
            .get(&k)
            .copied()
    }
    fn insert(&self, k: u64, v: u64) {
        self.shards[shard_of(&self.hasher, &k)]
            .write()
            .unwrap()
            .insert(k, v);
    }
}

const ROWS: [&str; 5] = [
    "tenant-cache",
    "quick_cache",
    "moka",
    "limit: RwLock map",
    "limit: ShardedLock map",
];

fn make(row: &str, capacity: u64) -> Box<dyn Subject> {
    match row {
        "tenant-cache" => Box::new(Ours(Cache::new(capacity).tenant("bench"))),
        "quick_cache" => Box::new(Quick(quick_cache::sync::Cache::new(capacity as usize))),
        "moka" => Box::new(Moka(moka::sync::Cache::new(capacity))),
        "limit: RwLock map" => Box::new(RwMap::new()),
        _ => Box::new(ShardedMap::new()),
    }
}

// ---------------------------------------------------------------------------
// Workloads.

/// Runs `ops` operations per thread over `keys` (each thread from its own
/// offset); returns (Mops/s over all threads, hit ratio).
fn run_threads(
    c: &dyn Subject,
    threads: usize,
    keys: &[u64],
    ops: usize,
    insert_on_miss: bool,
) -> (f64, f64) {
    let gate = Barrier::new(threads + 1);
    let hits = AtomicU64::new(0);
    let elapsed = thread::scope(|s| {
        for t in 0..threads {
            let (gate, hits) = (&gate, &hits);
            s.spawn(move || {
                let start = t * keys.len() / threads;
                let mut local_hits = 0u64;
                gate.wait();
                for i in 0..ops {
                    let k = keys[(start + i) % keys.len()];
                    if c.get(k).is_some() {
                        local_hits += 1;
                    } else if insert_on_miss {
                        c.insert(k, k);
                    }
                }
                hits.fetch_add(local_hits, Relaxed);
                gate.wait();
            });
        }
        gate.wait();
        let started = Instant::now();
        gate.wait();
        started.elapsed()
    });
    let total = (threads * ops) as f64;
    (
        total / elapsed.as_secs_f64() / 1e6,
        hits.load(Relaxed) as f64 / total,
    )
}

struct Row {
    name: &'static str,
    mops: f64,
    extra: String,
}

fn ratio_table(title: &str, threads: usize, rows: &[Row], extra_header: &str) -> String {
    let find = |n: &str| rows.iter().find(|r| r.name == n).map(|r| r.mops);
    let (qc, mk) = (find("quick_cache"), find("moka"));
    let mut out = format!("\n### {title}, {threads} thread(s)\n\n| cache | Mops/s | × quick_cache | × moka |{extra_header}\n|---|---:|---:|---:|{}\n",
        if extra_header.is_empty() { "" } else { "---:|" });
    for r in rows {
        let x = |base: Option<f64>| base.map_or("-".into(), |b| format!("{:.2}", r.mops / b));
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} |{}",
            r.name,
            r.mops,
            x(qc),
            x(mk),
            if r.extra.is_empty() {
                String::new()
            } else {
                format!(" {} |", r.extra)
            }
        );
    }
    out
}

fn pure_hits(threads: usize) -> String {
    const KEYS: u64 = 100_000;
    let keys = Zipf::new(KEYS as usize, 1.0).keys(1 << 20, 11);
    let only = std::env::var("ONLY").ok();
    let subjects: Vec<(&str, Box<dyn Subject>)> = ROWS
        .iter()
        .filter(|name| only.as_deref().is_none_or(|o| o == **name))
        .map(|&name| {
            let c = make(name, 2 * KEYS);
            for k in 0..KEYS {
                c.insert(k, k);
            }
            // Let every cache see each key used, so none is still on
            // probation when measuring.
            for &k in &keys {
                c.get(k);
            }
            (name, c)
        })
        .collect();
    // Rounds over all caches in turn, best round per cache: a disturbance
    // of the shared machine hits one round, not one cache.
    let mut best = vec![0.0f64; subjects.len()];
    for _ in 0..3 {
        for (i, (name, c)) in subjects.iter().enumerate() {
            let ops = std::env::var("HIT_OPS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(4 << 20);
            let (mops, hit) = run_threads(&**c, threads, &keys, ops, false);
            assert!(
                hit > 0.99,
                "{name}: workload (a) expects all hits, got {hit:.3}"
            );
            best[i] = best[i].max(mops);
        }
    }
    let rows: Vec<Row> = subjects
        .iter()
        .zip(best)
        .map(|((name, _), mops)| Row {
            name,
            mops,
            extra: String::new(),
        })
        .collect();
    ratio_table(
        "(a) pure hits, Zipf(1.0) over 100k resident keys",
        threads,
        &rows,
        "",
    )
}

fn get_or_insert(threads: usize) -> String {
    let keys = Zipf::new(1_000_000, 1.0).keys(1 << 22, 12);
    let only = std::env::var("ONLY").ok();
    let names: Vec<&'static str> = ROWS
        .iter()
        .copied()
        .filter(|name| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    // Rounds over all caches in turn, as for (a), each on a fresh cache;
    // the best round per cache (and that round's hit ratio) is reported.
    let mut best = vec![(0.0f64, 0.0f64); names.len()];
    for _ in 0..3 {
        for (name, best) in names.iter().zip(best.iter_mut()) {
            let c = make(name, 100_000);
            let (mops, hit) = run_threads(&*c, threads, &keys, 1 << 22, true);
            if mops > best.0 {
                *best = (mops, hit);
            }
        }
    }
    let rows: Vec<Row> = names
        .iter()
        .zip(best)
        .map(|(&name, (mops, hit))| Row {
            name,
            mops,
            extra: format!("{:.2}%", 100.0 * hit),
        })
        .collect();
    ratio_table(
        "(b) get, insert on miss: Zipf(1.0) over 1M keys, capacity 100k",
        threads,
        &rows,
        " hit ratio |",
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// (c): 64 threads each ask for 16 keys (in their own order) of an empty
/// cache whose loader takes 1 ms.
fn miss_storm() -> String {
    const THREADS: usize = 64;
    const KEYS: u64 = 16;
    const STORMS: usize = 5;
    let mut out = String::from(
        "\n### (c) miss storm: 64 threads, 16 keys, 1 ms loader (5 storms)\n\n| cache | loader calls per key | p50 | p99 |\n|---|---:|---:|---:|\n",
    );
    for name in ["tenant-cache", "quick_cache", "moka"] {
        let mut latencies = Vec::new();
        let mut calls_total = 0;
        for storm in 0..STORMS {
            let calls = AtomicU32::new(0);
            let load = || {
                calls.fetch_add(1, Relaxed);
                thread::sleep(Duration::from_millis(1));
                7u64
            };
            let ours: Cache<u64, u64> = Cache::new(1_000);
            let quick = quick_cache::sync::Cache::<u64, u64>::new(1_000);
            let moka = moka::sync::Cache::<u64, u64>::new(1_000);
            let gate = Barrier::new(THREADS);
            let lat: Vec<Duration> = thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (gate, load, ours, quick, moka) = (&gate, &load, &ours, &quick, &moka);
                        s.spawn(move || {
                            let tenant = ours.tenant("bench");
                            let mut rng = Rng::new((storm * THREADS + t) as u64 + 1);
                            let mut order: Vec<u64> = (0..KEYS).collect();
                            for i in (1..order.len()).rev() {
                                order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                            }
                            gate.wait();
                            order
                                .into_iter()
                                .map(|k| {
                                    let started = Instant::now();
                                    let v = match name {
                                        "tenant-cache" => tenant.get_with(k, load),
                                        "quick_cache" => quick
                                            .get_or_insert_with(&k, || Ok::<_, ()>(load()))
                                            .unwrap(),
                                        _ => moka.get_with(k, load),
                                    };
                                    assert_eq!(v, 7);
                                    started.elapsed()
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            latencies.extend(lat);
            calls_total += calls.load(Relaxed);
        }
        latencies.sort();
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.2?} | {:.2?} |",
            calls_total as f64 / (KEYS as usize * STORMS) as f64,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    out
}

/// (d): four callers of one key whose loader fails after 200 ms.
fn failing_loader() -> String {
    let mut out = String::from(
        "\n### (d) failing loader: 200 ms, 4 callers of one key\n\n| cache | wall time until all 4 returned | loader calls |\n|---|---:|---:|\n",
    );
    for name in ["tenant-cache", "quick_cache", "moka"] {
        let calls = AtomicU32::new(0);
        let fail = || {
            calls.fetch_add(1, Relaxed);
            thread::sleep(Duration::from_millis(200));
            Err::<u64, &str>("down")
        };
        let ours: Cache<u64, u64> = Cache::new(100);
        let quick = quick_cache::sync::Cache::<u64, u64>::new(100);
        let moka = moka::sync::Cache::<u64, u64>::new(100);
        let gate = Barrier::new(4);
        let started = Instant::now();
        thread::scope(|s| {
            for _ in 0..4 {
                let (gate, fail, ours, quick, moka) = (&gate, &fail, &ours, &quick, &moka);
                s.spawn(move || {
                    let tenant = ours.tenant("bench");
                    gate.wait();
                    let failed = match name {
                        "tenant-cache" => tenant.try_get_with(1, |_| fail()).is_err(),
                        "quick_cache" => quick.get_or_insert_with(&1, fail).is_err(),
                        _ => moka.try_get_with(1, fail).is_err(),
                    };
                    assert!(failed);
                });
            }
        });
        let _ = writeln!(
            out,
            "| {name} | {:.0?} | {} |",
            started.elapsed(),
            calls.load(Relaxed)
        );
    }
    out
}

/// Bytes per resident `u64 → u64` entry of a cache of capacity 1M after `inserted`
/// distinct keys: 1M fills it; 2M also makes it evict, which allocates
/// whatever a cache keeps about evicted keys.
fn memory(inserted: u64) -> String {
    const N: u64 = 1_000_000;
    let mut out = format!(
        "\n### memory: bytes per resident u64 → u64 entry, {}M distinct keys inserted, capacity 1M\n\n| cache | resident entries | bytes per entry | × quick_cache |\n|---|---:|---:|---:|\n",
        inserted / N
    );
    let mut measured = Vec::new();
    for name in ROWS {
        LIVE_BYTES.store(0, Relaxed);
        COUNTING.store(true, Relaxed);
        let before = LIVE_BYTES.load(Relaxed);
        let resident;
        let bytes;
        match name {
            "tenant-cache" => {
                let c: Cache<u64, u64> = Cache::new(N);
                let t = c.tenant("bench");
                for k in 0..inserted {
                    t.insert(k, k);
                }
                resident = c.entry_count();
                bytes = LIVE_BYTES.load(Relaxed) - before;
            }
            "quick_cache" => {
                let c = quick_cache::sync::Cache::<u64, u64>::new(N as usize);
                for k in 0..inserted {
                    c.insert(k, k);
                }
                resident = c.len() as u64;
                bytes = LIVE_BYTES.load(Relaxed) - before;
            }
            "moka" => {
                let c = moka::sync::Cache::<u64, u64>::new(N);
                for k in 0..inserted {
                    c.insert(k, k);
                }
                c.run_pending_tasks();
                resident = c.entry_count();
                bytes = LIVE_BYTES.load(Relaxed) - before;
            }
            _ => {
                let c = make(name, N);
                for k in 0..inserted {
                    c.insert(k, k);
                }
                resident = inserted; // the limit maps never evict
                bytes = LIVE_BYTES.load(Relaxed) - before;
            }
        }
        COUNTING.store(false, Relaxed);
        measured.push((name, resident, bytes as f64 / resident as f64));
    }
    let qc = measured
        .iter()
        .find(|m| m.0 == "quick_cache")
        .map(|m| m.2)
        .unwrap();
    for (name, resident, per) in measured {
        let _ = writeln!(out, "| {name} | {resident} | {per:.1} | {:.2} |", per / qc);
    }
    out
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks sections.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    const SECTIONS: [&str; 5] = ["hits", "insert", "storm", "failing", "memory"];
    if let Some(f) = filter
        .iter()
        .find(|f| !SECTIONS.iter().any(|s| s.contains(f.as_str())))
    {
        panic!("{f:?} names no section; the sections are {SECTIONS:?}");
    }
    if let Ok(only) = std::env::var("ONLY") {
        assert!(
            ROWS.contains(&only.as_str()),
            "ONLY={only:?} names no row; the rows are {ROWS:?}"
        );
    }
    let wants = |s: &str| filter.is_empty() || filter.iter().any(|f| s.contains(f.as_str()));
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = format!(
        "## tenant-cache vs quick_cache 0.7 vs moka 0.12\n\n{cores} cores, {}; `cargo bench --bench compare`. \
         Mops/s are absolute for this machine; the × columns are ratios taken in the same run.\n",
        today()
    );
    let mut section = |name: &str, f: &dyn Fn() -> String| {
        if wants(name) {
            let s = f();
            print!("{s}");
            report.push_str(&s);
        }
    };
    for threads in [1, cores] {
        section("hits", &|| pure_hits(threads));
    }
    for threads in [1, cores] {
        section("insert", &|| get_or_insert(threads));
    }
    section("storm", &miss_storm);
    section("failing", &failing_loader);
    section("memory", &|| memory(1_000_000));
    section("memory", &|| memory(2_000_000));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    std::fs::create_dir_all(&dir).expect("create target/bench-report");
    std::fs::write(dir.join("compare.md"), report).expect("write compare.md");
    println!("\nwritten to target/bench-report/compare.md");
}
