//! tenant-cache in one screen: several tenants served by one thread per
//! core, many callers sharing one load, a deadline, a stale value served
//! while the backend is down, one tenant invalidated while the others keep
//! their data, and per-tenant stats.
//!
//! Run: `cargo run --release --example demo`

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tenant_cache::{Cache, LoadError, Tenant};

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

/// A pretend database: a little latency per query, and a switch to make
/// it fail.
struct Backend {
    queries: AtomicU32,
    down: AtomicBool,
}

#[derive(Debug)]
struct BackendDown;

impl std::fmt::Display for BackendDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("backend down")
    }
}

impl Backend {
    fn fetch(&self, tenant: &str, key: &str, latency: Duration) -> Result<Arc<str>, BackendDown> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        thread::sleep(latency);
        if self.down.load(Ordering::Relaxed) {
            return Err(BackendDown);
        }
        Ok(format!("{tenant}/{key}").into())
    }
}

fn main() {
    let cache: Cache<String, Arc<str>> = Cache::builder()
        .max_capacity(2_000)
        .tenant_capacity(800)
        .time_to_live(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(300))
        .load_timeout(Duration::from_millis(100))
        .name("demo")
        .build();
    let backend = Arc::new(Backend {
        queries: AtomicU32::new(0),
        down: AtomicBool::new(false),
    });

    // 1. One thread per core, each serving every tenant.
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let workers: Vec<_> = (0..cores)
        .map(|core| {
            let cache = cache.clone();
            let backend = backend.clone();
            thread::spawn(move || {
                let mut x = core as u64 + 1;
                for _ in 0..50_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let tenant = cache.tenant(TENANTS[(x % 4) as usize]);
                    // Skewed keys: a few are hot, most are cold.
                    let r = (x >> 11) as f64 / (1u64 << 53) as f64;
                    let key = format!("user:{}", (r.powi(8) * 5_000.0) as u64);
                    let _ = tenant.try_get_with(key, |ctx| {
                        backend.fetch(&ctx.tenant().to_string(), ctx.key(), Duration::ZERO)
                    });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!(
        "1. {cores} threads served {} requests for {} tenants in {:.0?}; {} backend queries",
        cache.stats().requests(),
        TENANTS.len(),
        started.elapsed(),
        backend.queries.load(Ordering::Relaxed)
    );

    // 2. A miss storm: 32 callers, one load.
    let acme = cache.tenant("acme");
    let before = backend.queries.load(Ordering::Relaxed);
    let gate = Arc::new(Barrier::new(32));
    let storm: Vec<_> = (0..32)
        .map(|_| {
            let (acme, backend, gate) = (acme.clone(), backend.clone(), gate.clone());
            thread::spawn(move || {
                gate.wait();
                acme.try_get_with("report:q3".to_string(), |ctx| {
                    backend.fetch("acme", ctx.key(), Duration::from_millis(50))
                })
            })
        })
        .collect();
    let answers: Vec<_> = storm.into_iter().map(|s| s.join().unwrap()).collect();
    println!(
        "2. 32 concurrent callers of one missing key: {} backend query, {} answers",
        backend.queries.load(Ordering::Relaxed) - before,
        answers.iter().filter(|a| a.is_ok()).count()
    );

    // 3. A deadline: the backend takes 300 ms, a waiter gives up at 30 ms.
    let slow_leader = {
        let (acme, backend) = (acme.clone(), backend.clone());
        thread::spawn(move || {
            acme.load("slow".to_string())
                .timeout(Duration::from_secs(1))
                .run(|ctx| backend.fetch("acme", ctx.key(), Duration::from_millis(300)))
        })
    };
    thread::sleep(Duration::from_millis(10));
    let waited = Instant::now();
    let r = acme
        .load("slow".to_string())
        .timeout(Duration::from_millis(30))
        .fallback(|e: &LoadError<BackendDown>| {
            println!("   fallback after: {e}");
            Some("placeholder".into())
        })
        .run(|ctx| backend.fetch("acme", ctx.key(), Duration::from_millis(300)));
    println!(
        "3. a caller with a 30 ms deadline got {:?} after {:.0?}; the load ran on and was cached: {}",
        r.unwrap(),
        waited.elapsed(),
        slow_leader.join().unwrap().is_ok() && acme.contains("slow")
    );

    // 4. Stale-if-error: the backend goes down, an expired value is served.
    let initech = cache.tenant("initech");
    initech.insert_with_ttl("config".to_string(), "v1".into(), Duration::from_millis(20));
    thread::sleep(Duration::from_millis(40));
    backend.down.store(true, Ordering::Relaxed);
    let r = initech.try_get_with("config".to_string(), |ctx| {
        backend.fetch("initech", ctx.key(), Duration::ZERO)
    });
    println!(
        "4. backend down, config expired 20 ms ago: served {:?} (stale)",
        r.unwrap()
    );
    backend.down.store(false, Ordering::Relaxed);

    // 5. Invalidate one tenant; the others keep their data.
    let globex = cache.tenant("globex");
    let counts = |label: &str| {
        let line: Vec<String> = TENANTS
            .iter()
            .map(|t| format!("{t}={}", cache.tenant(*t).entry_count()))
            .collect();
        println!("   {label}: {}", line.join(" "));
    };
    println!("5. globex.invalidate_all():");
    counts("before");
    globex.invalidate_all();
    counts("after ");

    print_stats(&cache, &[acme, globex, initech, cache.tenant("umbrella")]);
}

fn print_stats(cache: &Cache<String, Arc<str>>, _held: &[Tenant<String, Arc<str>>]) {
    println!();
    println!(
        "| {:<9} | {:>8} | {:>7} | {:>6} | {:>7} | {:>6} | {:>9} | {:>5} | {:>9} | {:>5} | {:>7} |",
        "tenant",
        "requests",
        "hit %",
        "loads",
        "shared",
        "fails",
        "timeouts",
        "stale",
        "fallbacks",
        "evict",
        "entries"
    );
    println!("|{}", "---|".repeat(11));
    let mut rows = cache.tenants();
    rows.push(("(all)".into(), cache.stats()));
    for (id, s) in rows {
        println!(
            "| {:<9} | {:>8} | {:>6.1}% | {:>6} | {:>7} | {:>6} | {:>9} | {:>5} | {:>9} | {:>5} | {:>7} |",
            id.to_string(),
            s.requests(),
            100.0 * s.hit_ratio(),
            s.loads,
            s.coalesced,
            s.load_failures,
            s.load_timeouts,
            s.stale_served,
            s.fallbacks,
            s.evictions,
            s.entry_count
        );
    }
}
