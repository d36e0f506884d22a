use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tenant_cache::{Cache, LoadError, Retry};

use crate::support::Rng;

const THREADS: u64 = 8;
const TENANTS: u64 = 6;
const KEYS: u64 = 24;
const TIMEOUT: Duration = Duration::from_millis(20);
/// Scheduling noise allowed on top of a waiter's deadline (a shared,
/// noisy 2-core machine).
const SLACK: Duration = Duration::from_millis(250);
const RUN_FOR: Duration = Duration::from_millis(1_500);

thread_local!(static RAN_LOADER: Cell<bool> = const { Cell::new(false) });

/// Marks a key's loader as running; finds overlapping loaders of one key.
struct Running<'a> {
    count: &'a AtomicU32,
}

impl<'a> Running<'a> {
    fn enter(count: &'a AtomicU32, overlap: &AtomicBool) -> Self {
        if count.fetch_add(1, Ordering::SeqCst) != 0 {
            overlap.store(true, Ordering::SeqCst);
        }
        RAN_LOADER.with(|r| r.set(true));
        Running { count }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn loads_under_stress_stay_single_flight_bounded_and_isolated() {
    let cache: Cache<u64, (u64, u64)> = Cache::builder()
        .max_capacity(TENANTS * KEYS / 2)
        .tenant_capacity(KEYS / 2)
        .time_to_live(Duration::from_millis(30))
        .stale_if_error(Duration::from_millis(50))
        .shards(4)
        .build();
    let running: Arc<HashMap<(u64, u64), AtomicU32>> = Arc::new(
        (0..TENANTS)
            .flat_map(|t| (0..KEYS).map(move |k| ((t, k), AtomicU32::new(0))))
            .collect(),
    );
    let overlap = Arc::new(AtomicBool::new(false));
    let cross = Arc::new(AtomicBool::new(false));
    let late: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let stop_at = Instant::now() + RUN_FOR;
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let cache = cache.clone();
            let running = running.clone();
            let (overlap, cross, late) = (overlap.clone(), cross.clone(), late.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(n + 1);
                while Instant::now() < stop_at {
                    let tenant = rng.below(TENANTS);
                    let key = rng.below(KEYS);
                    let t = cache.tenant(tenant);
                    let roll = rng.below(100);
                    let sleep = Duration::from_millis(rng.below(4));
                    let op = rng.below(10);
                    RAN_LOADER.with(|r| r.set(false));
                    let started = Instant::now();
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        let count = &running[&(tenant, key)];
                        let loader = |_: &tenant_cache::LoadCtx<'_, u64>| {
                            let _running = Running::enter(count, &overlap);
                            thread::sleep(sleep);
                            match roll {
                                0 => panic!("1% of loads panic"),
                                1..=10 => Err("10% of loads fail"),
                                11..=15 => {
                                    thread::sleep(TIMEOUT * 2); // 5% overrun
                                    Ok((tenant, key))
                                }
                                _ => Ok((tenant, key)),
                            }
                        };
                        match op {
                            0 => {
                                t.insert(key, (tenant, key));
                                Ok(Some((tenant, key)))
                            }
                            1 => {
                                t.invalidate(&key);
                                Ok(None)
                            }
                            2 => Ok(t.get(&key)),
                            3 => t.refresh(key, loader).map(Some),
                            4 => t
                                .load(key)
                                .timeout(TIMEOUT)
                                .retry(Retry::attempts(2).backoff(Duration::from_millis(1)))
                                .fallback(|_| Some((tenant, u64::MAX)))
                                .run(loader)
                                .map(Some),
                            _ => t.load(key).timeout(TIMEOUT).run(loader).map(Some),
                        }
                    }));
                    let elapsed = started.elapsed();
                    let ran_loader = RAN_LOADER.with(|r| r.get());
                    if !ran_loader && op >= 3 && elapsed > TIMEOUT + SLACK {
                        late.lock().unwrap().push(elapsed);
                    }
                    if let Ok(Ok(Some((owner, _)))) = result {
                        if owner != tenant {
                            cross.store(true, Ordering::SeqCst);
                        }
                    }
                    if let Ok(Err(e)) = &result {
                        assert!(!matches!(e, LoadError::Recursive), "no recursion here");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        !overlap.load(Ordering::SeqCst),
        "two loaders of one key ran at once"
    );
    assert!(
        !cross.load(Ordering::SeqCst),
        "a tenant got another tenant's value"
    );
    let late = late.lock().unwrap();
    assert!(late.is_empty(), "waiters overran their deadline: {late:?}");
    assert!(cache.weighted_size() <= TENANTS * KEYS / 2);
    for t in 0..TENANTS {
        assert!(cache.tenant(t).weighted_size() <= KEYS / 2);
    }
    let s = cache.stats();
    assert!(
        s.loads > 100 && s.coalesced > 0,
        "the stress did not stress: {s:?}"
    );
    cache.validate();
}
