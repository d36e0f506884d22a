//! A mixed, multi-threaded workload over many tenants with misbehaving
//! loaders, shared by the stress test (seconds) and the soak test (a
//! minute). It records every broken promise it sees.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tenant_cache::{Cache, LoadCtx, LoadError, Retry};

#[derive(Clone, Copy)]
pub struct Workload {
    pub threads: u64,
    pub tenants: u64,
    /// Whether a few tenants get most requests (tenant `i` about as likely
    /// as the harmonic tail from `i` on), so that the busiest ones meet
    /// their cap while the rest press on the global capacity.
    pub hot_tenants: bool,
    pub keys: u64,
    /// Zipf exponent of key popularity (0 = uniform).
    pub skew: f64,
    pub run_for: Duration,
    pub timeout: Duration,
    /// Scheduling noise allowed past a deadline on a shared, noisy machine.
    pub slack: Duration,
    pub max_capacity: u64,
    pub tenant_capacity: u64,
    /// Percent of loads that fail, panic, and overrun their deadline.
    pub fail_pct: u64,
    pub panic_pct: u64,
    pub overrun_pct: u64,
    /// Sample resident memory once a second after this long.
    pub warm_up: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub overlapping_loads: bool,
    pub cross_tenant_reads: bool,
    /// Calls that returned later than their deadline plus slack.
    pub late_calls: Vec<Duration>,
    pub unexpected_errors: Vec<String>,
    pub calls: u64,
    /// Resident bytes, sampled once a second after warm-up.
    pub rss: Vec<u64>,
}

thread_local!(static RAN_LOADER: Cell<bool> = const { Cell::new(false) });

/// A loader's claim on its key while it runs, and the tenant epoch it ran
/// in: two loaders of one key at once are a broken promise only if they
/// belong to the same tenant generation. A loader is placed in a generation
/// only if the tenant's epoch (odd while an `invalidate_all` is under way)
/// was the same even number when its call began and when it started.
struct Running<'a> {
    active: &'a Mutex<Vec<u64>>,
    epoch: u64,
}

const NO_EPOCH: u64 = u64::MAX;

/// Per `(tenant, key)`: the epochs of the loaders running for it now.
type ActiveLoads = HashMap<(u64, u64), Mutex<Vec<u64>>>;

impl<'a> Running<'a> {
    fn enter(
        active: &'a Mutex<Vec<u64>>,
        call_epoch: u64,
        now_epoch: u64,
        overlap: &AtomicBool,
    ) -> Self {
        let epoch = if call_epoch == now_epoch && call_epoch % 2 == 0 {
            call_epoch
        } else {
            NO_EPOCH
        };
        let mut active_epochs = active.lock().unwrap();
        if epoch != NO_EPOCH && active_epochs.contains(&epoch) {
            overlap.store(true, Ordering::SeqCst);
        }
        active_epochs.push(epoch);
        RAN_LOADER.with(|r| r.set(true));
        Running { active, epoch }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut active_epochs = self.active.lock().unwrap();
        if let Some(i) = active_epochs.iter().position(|e| *e == self.epoch) {
            active_epochs.swap_remove(i);
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative Zipf weights over `n` ranks.
fn zipf_cdf(n: u64, s: f64) -> Vec<f64> {
    let mut cdf: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let mut sum = 0.0;
    for c in &mut cdf {
        sum += *c;
        *c = sum;
    }
    cdf.iter_mut().for_each(|c| *c /= sum);
    cdf
}

/// Resident set size of this process, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl Workload {
    pub fn run(&self, cache: &Cache<u64, (u64, u64)>) -> Report {
        let running: Arc<ActiveLoads> = Arc::new(
            (0..self.tenants)
                .flat_map(|t| (0..self.keys).map(move |k| ((t, k), Mutex::default())))
                .collect(),
        );
        let epochs: Arc<Vec<AtomicU64>> =
            Arc::new((0..self.tenants).map(|_| AtomicU64::new(0)).collect());
        let cdf = Arc::new(zipf_cdf(self.keys, self.skew));
        let overlap = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let started = Instant::now();
        let stop_at = started + self.run_for;
        let threads: Vec<_> = (0..self.threads)
            .map(|n| {
                let (cache, running, cdf) = (cache.clone(), running.clone(), cdf.clone());
                let (overlap, report, epochs) = (overlap.clone(), report.clone(), epochs.clone());
                let w = *self;
                thread::spawn(move || {
                    let mut rng = Rng(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                    let mut local = Report::default();
                    while Instant::now() < stop_at {
                        let tenant = if w.hot_tenants {
                            let bound = rng.below(w.tenants) + 1;
                            rng.below(bound)
                        } else {
                            rng.below(w.tenants)
                        };
                        let key = cdf.partition_point(|&c| c < rng.unit()) as u64;
                        let key = key.min(w.keys - 1);
                        let roll = rng.below(100);
                        let op = rng.below(12);
                        let active = &running[&(tenant, key)];
                        let epoch = &epochs[tenant as usize];
                        let call_epoch = epoch.load(Ordering::SeqCst);
                        let t = cache.tenant(tenant);
                        RAN_LOADER.with(|r| r.set(false));
                        let call_started = Instant::now();
                        let loader = |ctx: &LoadCtx<'_, u64>| {
                            let now_epoch = epoch.load(Ordering::SeqCst);
                            let _running = Running::enter(active, call_epoch, now_epoch, &overlap);
                            if roll < w.panic_pct {
                                panic!("a loader panics on purpose");
                            }
                            if roll < w.panic_pct + w.fail_pct {
                                return Err("a loader fails on purpose");
                            }
                            if roll < w.panic_pct + w.fail_pct + w.overrun_pct {
                                // Past the deadline, by a little.
                                let left = ctx.remaining().unwrap_or_default();
                                thread::sleep(left + Duration::from_millis(2));
                            }
                            Ok((tenant, key))
                        };
                        let result = catch_unwind(AssertUnwindSafe(|| match op {
                            0 => {
                                t.insert(key, (tenant, key));
                                Ok(None)
                            }
                            1 => Ok(t.invalidate(&key).then_some((tenant, key))),
                            2 if rng.below(50) == 0 => {
                                epoch.fetch_add(1, Ordering::SeqCst);
                                t.invalidate_all();
                                epoch.fetch_add(1, Ordering::SeqCst);
                                Ok(None)
                            }
                            3 => Ok(t.get(&key)),
                            4 => t.refresh(key, loader).map(Some),
                            5 => t
                                .load(key)
                                .timeout(w.timeout)
                                .retry(Retry::attempts(2).backoff(Duration::from_millis(1)))
                                .fallback(|_| Some((tenant, u64::MAX)))
                                .run(loader)
                                .map(Some),
                            _ => t.load(key).timeout(w.timeout).run(loader).map(Some),
                        }));
                        let elapsed = call_started.elapsed();
                        local.calls += 1;
                        // Refresh has no deadline of its own here; every
                        // other loading call must return by its deadline.
                        if op >= 5 && elapsed > w.timeout + w.slack {
                            local.late_calls.push(elapsed);
                        }
                        match result {
                            Ok(Ok(Some((owner, _)))) if owner != tenant => {
                                local.cross_tenant_reads = true;
                            }
                            Ok(Err(LoadError::Recursive)) => {
                                local.unexpected_errors.push("recursive".into())
                            }
                            _ => {}
                        }
                    }
                    let mut r = report.lock().unwrap();
                    r.calls += local.calls;
                    r.late_calls.extend(local.late_calls);
                    r.unexpected_errors.extend(local.unexpected_errors);
                    r.cross_tenant_reads |= local.cross_tenant_reads;
                })
            })
            .collect();
        if let Some(warm_up) = self.warm_up {
            thread::sleep(warm_up);
            while Instant::now() < stop_at {
                if let Some(rss) = resident_bytes() {
                    report.lock().unwrap().rss.push(rss);
                }
                thread::sleep(Duration::from_secs(1));
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        let mut report = std::mem::take(&mut *report.lock().unwrap());
        report.overlapping_loads = overlap.load(Ordering::SeqCst);
        report
    }
}
