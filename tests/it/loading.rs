use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tenant_cache::{Cache, LoadError, ManualClock, Retry, Tenant};

use crate::support::PATIENCE;

/// Polls `cond` until it holds; fails the test instead of hanging.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `n` callers have joined someone else's load of `t`.
fn wait_for_waiters(t: &Tenant<u32, String>, n: u64) {
    wait_until("waiters to join", || t.stats().coalesced >= n);
}

fn cache() -> Cache<u32, String> {
    Cache::builder().max_capacity(1_000).build()
}

/// Runs `call` with a handle of tenant "a" on a thread of its own. The
/// `wait` it is given blocks until the returned sender fires (at most
/// `PATIENCE`): a loader that calls it stays in flight until the test lets
/// it finish.
fn gated<R: Send + 'static>(
    cache: &Cache<u32, String>,
    call: impl FnOnce(&Tenant<u32, String>, &dyn Fn()) -> R + Send + 'static,
) -> (thread::JoinHandle<R>, mpsc::Sender<()>) {
    let (release, gate) = mpsc::channel::<()>();
    let t = cache.tenant("a");
    let wait = move || gate.recv_timeout(PATIENCE).unwrap();
    (thread::spawn(move || call(&t, &wait)), release)
}

#[test]
fn many_callers_of_a_missing_key_share_one_load() {
    const CALLERS: usize = 32;
    let cache = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let start = Arc::new(Barrier::new(CALLERS));
    let threads: Vec<_> = (0..CALLERS)
        .map(|i| {
            let t = cache.tenant("a");
            let calls = calls.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let probe = t.clone();
                let load = move || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Hold the load open until everyone else has joined it.
                    wait_for_waiters(&probe, CALLERS as u64 - 1);
                    "value".to_string()
                };
                if i % 2 == 0 {
                    t.get_with(1, load)
                } else {
                    let mut load = Some(load);
                    t.try_get_with(1, |_| Ok::<_, ()>(load.take().unwrap()()))
                        .unwrap()
                }
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "value");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the loader ran more than once"
    );
    let s = cache.tenant("a").stats();
    assert_eq!(
        (s.loads, s.coalesced, s.misses),
        (1, CALLERS as u64 - 1, CALLERS as u64)
    );
}

#[test]
fn loads_of_other_keys_and_other_tenants_run_in_parallel_in_one_shard() {
    let cache: Cache<u32, String> = Cache::builder().max_capacity(100).shards(1).build();
    // Three loads that each wait until all three are running: if any one
    // blocked another, they would all time out.
    let running = Arc::new(AtomicU32::new(0));
    let jobs = [("a", 1), ("a", 2), ("b", 1)];
    let threads: Vec<_> = jobs
        .into_iter()
        .map(|(tenant, key)| {
            let t = cache.tenant(tenant);
            let running = running.clone();
            thread::spawn(move || {
                t.get_with(key, || {
                    running.fetch_add(1, Ordering::SeqCst);
                    wait_until("all three loads to run at once", || {
                        running.load(Ordering::SeqCst) == 3
                    });
                    format!("{tenant}{key}")
                })
            })
        })
        .collect();
    let got: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(got, ["a1", "a2", "b1"]);
    assert_eq!(cache.tenant("b").get(&1).as_deref(), Some("b1"));
}

#[test]
fn a_failure_reaches_every_waiter_as_the_same_arc_and_is_not_cached() {
    let cache = cache();
    // Held throughout: a tenant with no handle and no entry is forgotten,
    // stats and all.
    let t = cache.tenant("a");
    let leader_t = cache.tenant("a");
    let probe = cache.tenant("a");
    let leader = thread::spawn(move || {
        leader_t.try_get_with(1, |_| {
            wait_for_waiters(&probe, 3);
            Err::<String, _>(String::from("backend down"))
        })
    });
    wait_until("the leader to start", || t.stats().loads == 1);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let t = cache.tenant("a");
            thread::spawn(move || t.try_get_with(1, |_| Ok::<_, String>("never".into())))
        })
        .collect();
    let mut errors = vec![leader.join().unwrap().unwrap_err()];
    errors.extend(waiters.into_iter().map(|w| w.join().unwrap().unwrap_err()));
    let first = errors[0].failure().unwrap().clone();
    assert_eq!(*first, "backend down");
    for e in &errors {
        assert!(
            Arc::ptr_eq(e.failure().unwrap(), &first),
            "waiters got different errors"
        );
    }
    // Not cached: the next call loads again.
    assert_eq!(
        t.try_get_with(1, |_| Ok::<_, String>("ok".into())).unwrap(),
        "ok"
    );
    let s = t.stats();
    assert_eq!((s.loads, s.load_failures, s.coalesced), (2, 1, 3));
}

#[test]
fn a_waiter_returns_at_its_own_deadline_and_the_late_load_still_installs() {
    let clock = ManualClock::new();
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(100)
        .clock(clock.clone())
        .build();
    let (leader, release) = gated(&cache, |t, wait| {
        t.get_with(1, || {
            wait();
            "late".to_string()
        })
    });
    let t = cache.tenant("a");
    wait_until("the leader to start", || t.stats().loads == 1);
    let waiter_t = cache.tenant("a");
    let waiter = thread::spawn(move || {
        waiter_t
            .load(1)
            .timeout(Duration::from_millis(100))
            .run(|_| Ok::<_, ()>("mine".into()))
    });
    wait_for_waiters(&t, 1);
    clock.advance(Duration::from_millis(150));
    assert_eq!(waiter.join().unwrap(), Err(LoadError::Timeout));
    assert_eq!(t.get(&1), None, "the leader has not finished");
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap(), "late");
    assert_eq!(
        t.get(&1).as_deref(),
        Some("late"),
        "a late load still installs"
    );
    assert_eq!(t.stats().load_timeouts, 1);
}

#[test]
fn a_waiter_on_the_system_clock_returns_at_its_deadline() {
    let cache = cache();
    let (leader, release) = gated(&cache, |t, wait| {
        t.get_with(1, || {
            wait();
            "v".to_string()
        })
    });
    let t = cache.tenant("a");
    wait_until("the leader to start", || t.stats().loads == 1);
    let r = t
        .load(1)
        .timeout(Duration::from_millis(20))
        .run(|_| Ok::<_, ()>("mine".into()));
    assert_eq!(r, Err(LoadError::Timeout));
    release.send(()).unwrap();
    leader.join().unwrap();
}

#[test]
fn retries_run_once_per_key_and_waiters_share_them() {
    let cache = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let leader_t = cache.tenant("a");
    let probe = cache.tenant("a");
    let c = calls.clone();
    let leader = thread::spawn(move || {
        leader_t
            .load(1)
            .retry(Retry::attempts(3).backoff(Duration::from_millis(1)))
            .run(|ctx| {
                c.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt() == 1 {
                    wait_for_waiters(&probe, 2);
                }
                if ctx.attempt() < 3 {
                    Err("flaky")
                } else {
                    Ok(format!("ok after {}", ctx.attempt()))
                }
            })
    });
    let t = cache.tenant("a");
    wait_until("the leader to start", || t.stats().loads >= 1);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let t = cache.tenant("a");
            let c = calls.clone();
            thread::spawn(move || {
                t.load(1).retry(Retry::attempts(5)).run(|_| {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err::<String, _>("waiters must not run loaders")
                })
            })
        })
        .collect();
    assert_eq!(leader.join().unwrap().unwrap(), "ok after 3");
    for w in waiters {
        assert_eq!(w.join().unwrap().unwrap(), "ok after 3");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(t.stats().loads, 3);
}

#[test]
fn retries_stop_once_the_deadline_has_passed() {
    let clock = ManualClock::new();
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(100)
        .clock(clock.clone())
        .build();
    let t = cache.tenant("a");
    let calls = AtomicU32::new(0);
    let r = t
        .load(1)
        .timeout(Duration::from_millis(10))
        .retry(Retry::attempts(10))
        .run(|ctx| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert!(ctx.remaining().is_some());
            clock.advance(Duration::from_millis(20)); // a slow backend
            assert_eq!(ctx.remaining(), Some(Duration::ZERO));
            Err::<String, _>("slow")
        });
    assert!(r.unwrap_err().is_failed());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn retries_run_until_success_while_the_deadline_is_ahead() {
    let cache = cache();
    let t = cache.tenant("a");
    let attempts = AtomicU32::new(0);
    let r = t
        .load(1)
        .timeout(Duration::from_secs(60))
        .retry(Retry::attempts(3))
        .run(|ctx| {
            attempts.fetch_add(1, Ordering::SeqCst);
            match ctx.attempt() {
                3 => Ok("third time".to_string()),
                _ => Err("down"),
            }
        });
    assert_eq!(r.unwrap(), "third time");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!((t.stats().loads, t.stats().load_failures), (3, 0));
}

#[test]
fn a_load_that_sets_neither_runs_under_the_builders_timeout_and_retry() {
    let clock = ManualClock::new();
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(100)
        .clock(clock.clone())
        .load_timeout(Duration::from_millis(10))
        .retry(Retry::attempts(3).backoff(Duration::from_millis(1)))
        .build();
    let t = cache.tenant("a");
    let r = t.load(1).run(|ctx| {
        assert_eq!(ctx.remaining(), Some(Duration::from_millis(10)));
        match ctx.attempt() {
            3 => Ok("third time".to_string()),
            _ => Err("down"),
        }
    });
    assert_eq!(r.unwrap(), "third time", "the builder's three attempts");
    let calls = AtomicU32::new(0);
    let r = t.load(2).run(|ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        clock.advance(Duration::from_millis(20)); // past the builder's deadline
        assert_eq!(ctx.remaining(), Some(Duration::ZERO));
        Err::<String, _>("slow")
    });
    assert!(r.unwrap_err().is_failed());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no retry after the deadline"
    );
}

/// Sleeps are never shorter than asked, so the lower bounds hold however
/// loaded the machine is.
#[test]
fn each_retry_waits_at_least_half_of_a_doubling_backoff() {
    let cache = cache();
    let t = cache.tenant("a");
    let mut starts = Vec::new();
    let r = t
        .load(1)
        .retry(Retry::attempts(4).backoff(Duration::from_millis(20)))
        .run(|_| {
            starts.push(Instant::now());
            Err::<String, _>("down")
        });
    assert!(r.unwrap_err().is_failed());
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 3);
    for (gap, step) in gaps.iter().zip([20, 40, 80]) {
        let least = Duration::from_millis(step / 2);
        assert!(
            *gap >= least,
            "waited {gap:?} before a retry, not {least:?}: {gaps:?}"
        );
    }
}

#[test]
fn cached_counts_a_hit_and_leaves_the_miss_to_the_load_that_follows() {
    let cache = cache();
    let t = cache.tenant("a");
    t.insert(1, "one".into());
    assert_eq!(t.cached(&1).as_deref(), Some("one"));
    assert_eq!(t.cached(&2), None);
    assert_eq!((t.stats().hits, t.stats().misses), (1, 0));
    let two = t.try_get_with(2, |_| Ok::<_, ()>("two".into()));
    assert_eq!(two.unwrap(), "two");
    assert_eq!((t.stats().hits, t.stats().misses), (1, 1));
    assert_eq!(cache.tenant("b").cached(&1), None);
}

#[test]
fn load_ctx_describes_the_load() {
    let cache = cache();
    let t = cache.tenant(9u64);
    let v = t.load(5).timeout(Duration::from_secs(60)).run(|ctx| {
        assert_eq!(*ctx.key(), 5);
        assert_eq!(ctx.tenant().as_u64(), Some(9));
        assert_eq!(ctx.attempt(), 1);
        assert!(ctx.deadline().is_some());
        assert!(ctx.remaining().unwrap() <= Duration::from_secs(60));
        Ok::<_, ()>("v".to_string())
    });
    assert_eq!(v.unwrap(), "v");
    assert_eq!(
        t.try_get_with(6, |ctx| Ok::<_, ()>(format!("{:?}", ctx.remaining())))
            .unwrap(),
        "None"
    );
}

fn stale_cache() -> (Cache<u32, String>, ManualClock) {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(10))
        .stale_if_error(Duration::from_secs(60))
        .clock(clock.clone())
        .build();
    (cache, clock)
}

#[test]
fn a_failed_load_serves_a_value_expired_within_the_stale_window() {
    let (cache, clock) = stale_cache();
    let t = cache.tenant("a");
    t.insert(1, "old".into());
    clock.advance(Duration::from_secs(40)); // expired 30 s ago
    assert_eq!(t.get(&1), None, "expired values are not hits");
    let r = t.try_get_with(1, |_| Err::<String, _>("down"));
    assert_eq!(r.unwrap(), "old");
    clock.advance(Duration::from_secs(40)); // expired 70 s ago
    let r = t.try_get_with(1, |_| Err::<String, _>("down"));
    assert!(r.unwrap_err().is_failed());
    assert_eq!(t.stats().stale_served, 1);
}

#[test]
fn reclaim_expired_keeps_a_value_the_stale_window_still_covers() {
    let (cache, clock) = stale_cache();
    let t = cache.tenant("a");
    t.insert(1, "old".into());
    t.insert(2, "older".into());
    clock.advance(Duration::from_secs(70)); // both expired 60 s ago: the window's edge
    cache.reclaim_expired();
    assert_eq!(
        t.entry_count(),
        2,
        "a sweep keeps what a failed load may serve"
    );
    let r = t.try_get_with(1, |_| Err::<String, _>("down"));
    assert_eq!(r.unwrap(), "old");
    clock.advance(Duration::from_nanos(1));
    cache.reclaim_expired();
    assert_eq!(
        t.entry_count(),
        0,
        "past the window, the sweep removes them"
    );
    assert_eq!(t.stats().expirations, 2);
    let r = t.try_get_with(2, |_| Err::<String, _>("down"));
    assert!(r.unwrap_err().is_failed());
}

#[test]
fn a_request_sets_its_own_stale_window_and_zero_turns_the_builders_off() {
    let (cache, clock) = stale_cache();
    let t = cache.tenant("a");
    t.insert(1, "old".into());
    clock.advance(Duration::from_secs(40)); // expired 30 s ago
    let r = t
        .load(1)
        .stale_if_error(Duration::ZERO)
        .run(|_| Err::<String, _>("down"));
    assert!(
        r.unwrap_err().is_failed(),
        "no stale value with the window off"
    );
    let r = t
        .load(1)
        .stale_if_error(Duration::from_secs(20))
        .run(|_| Err::<String, _>("down"));
    assert!(r.unwrap_err().is_failed(), "expired longer ago than 20 s");
    let r = t
        .load(1)
        .stale_if_error(Duration::from_secs(31))
        .run(|_| Err::<String, _>("down"));
    assert_eq!(r.unwrap(), "old");
    assert_eq!(t.stats().stale_served, 1);
}

#[test]
fn the_fallback_answers_only_when_no_stale_value_exists_and_is_not_cached() {
    let (cache, clock) = stale_cache();
    let t = cache.tenant("a");
    let r = t
        .load(1)
        .fallback(|e| {
            assert!(e.is_failed());
            Some("fallback".to_string())
        })
        .run(|_| Err::<String, _>("down"));
    assert_eq!(r.unwrap(), "fallback");
    assert_eq!(t.get(&1), None, "a fallback value is not cached");
    t.insert(2, "stale".into());
    clock.advance(Duration::from_secs(11));
    let r = t
        .load(2)
        .fallback(|_| Some("fallback".to_string()))
        .run(|_| Err::<String, _>("down"));
    assert_eq!(
        r.unwrap(),
        "stale",
        "a stale value comes before the fallback"
    );
    let r = t
        .load(3)
        .fallback(|_| None)
        .run(|_| Err::<String, _>("down"));
    assert!(r.is_err(), "a fallback returning None passes the error on");
    let s = t.stats();
    assert_eq!((s.fallbacks, s.stale_served), (1, 1));
}

#[test]
fn a_timed_out_waiter_gets_the_stale_value() {
    let (cache, clock) = stale_cache();
    let t = cache.tenant("a");
    t.insert(1, "stale".into());
    clock.advance(Duration::from_secs(11));
    let (leader, release) = gated(&cache, |t, wait| {
        t.try_get_with(1, |_| {
            wait();
            Ok::<_, ()>("fresh".to_string())
        })
    });
    wait_until("the leader to start", || t.stats().loads == 1);
    let waiter_t = cache.tenant("a");
    let waiter = thread::spawn(move || {
        waiter_t
            .load(1)
            .timeout(Duration::from_millis(5))
            .run(|_| Ok::<_, ()>("mine".into()))
    });
    wait_for_waiters(&t, 1);
    clock.advance(Duration::from_millis(10));
    assert_eq!(waiter.join().unwrap().unwrap(), "stale");
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap().unwrap(), "fresh");
}

#[test]
fn refresh_after_reloads_once_while_others_keep_the_current_value() {
    let clock = ManualClock::new();
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(100)
        .refresh_after(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let t = cache.tenant("a");
    assert_eq!(t.get_with(1, || "v1".into()), "v1");
    clock.advance(Duration::from_secs(9));
    let r = t.try_get_with(1, |_| Ok::<_, ()>("too soon".into()));
    assert_eq!(r.unwrap(), "v1");
    assert_eq!(
        t.stats().loads,
        1,
        "a value younger than refresh_after reloaded"
    );
    clock.advance(Duration::from_secs(2));
    let (leader, release) = gated(&cache, |t, wait| {
        t.try_get_with(1, |_| {
            wait();
            Ok::<_, ()>("v2".to_string())
        })
    });
    wait_until("the refresh to start", || t.stats().loads == 2);
    for _ in 0..5 {
        let r = t.try_get_with(1, |_| Ok::<_, ()>("must not run".into()));
        assert_eq!(r.unwrap(), "v1", "others get the current value at once");
    }
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap().unwrap(), "v2");
    assert_eq!(t.get(&1).as_deref(), Some("v2"));
    // A failing refresh keeps the current value.
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        t.try_get_with(1, |_| Err::<String, _>("down")).unwrap(),
        "v2"
    );
    assert_eq!(t.get(&1).as_deref(), Some("v2"));
    assert_eq!(t.stats().loads, 3);
}

#[test]
fn refresh_reloads_a_present_value_while_gets_see_the_old_one() {
    let cache = cache();
    let t = cache.tenant("a");
    t.insert(1, "old".into());
    let (refresher, release) = gated(&cache, |t, wait| {
        t.refresh(1, |_| {
            wait();
            Ok::<_, ()>("new".to_string())
        })
    });
    wait_until("the refresh to start", || t.stats().loads == 1);
    assert_eq!(t.get(&1).as_deref(), Some("old"));
    release.send(()).unwrap();
    assert_eq!(refresher.join().unwrap().unwrap(), "new");
    assert_eq!(t.get(&1).as_deref(), Some("new"));
    assert!(t.refresh(1, |_| Err::<String, _>("down")).is_err());
    assert_eq!(
        t.get(&1).as_deref(),
        Some("new"),
        "a failed refresh keeps the value"
    );
}

#[test]
fn a_panicking_loader_panics_its_caller_and_its_waiters_get_panicked_promptly() {
    let cache = cache();
    let leader_t = cache.tenant("a");
    let probe = cache.tenant("a");
    let leader = thread::spawn(move || {
        leader_t.try_get_with(1, |_| -> Result<String, ()> {
            wait_for_waiters(&probe, 2);
            panic!("loader blew up");
        })
    });
    let t = cache.tenant("a");
    wait_until("the leader to start", || t.stats().loads == 1);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let t = cache.tenant("a");
            thread::spawn(move || t.try_get_with(1, |_| Ok::<_, ()>("never".into())))
        })
        .collect();
    assert!(
        leader.join().is_err(),
        "the panic goes to the leader's caller"
    );
    for w in waiters {
        assert_eq!(w.join().unwrap(), Err(LoadError::Panicked));
    }
    // Nothing stays locked or poisoned: the next call loads afresh.
    assert_eq!(
        t.try_get_with(1, |_| Ok::<_, ()>("fresh".into())).unwrap(),
        "fresh"
    );
    assert_eq!(t.stats().load_failures, 1);
}

#[test]
fn get_with_waiters_run_the_load_themselves_after_a_panic() {
    let cache = cache();
    let leader_t = cache.tenant("a");
    let probe = cache.tenant("a");
    let leader = thread::spawn(move || {
        leader_t.get_with(1, || {
            wait_for_waiters(&probe, 1);
            panic!("first init panics");
        })
    });
    let t = cache.tenant("a");
    wait_until("the leader to start", || t.stats().loads == 1);
    let waiter_t = cache.tenant("a");
    let waiter = thread::spawn(move || waiter_t.get_with(1, || "second init".to_string()));
    assert!(leader.join().is_err());
    assert_eq!(waiter.join().unwrap(), "second init");
    assert_eq!(t.get(&1).as_deref(), Some("second init"));
}

/// A `get_with` of key 1 for tenant "a" whose init, once it has started,
/// panics when told to.
fn panicking_leader(cache: &Cache<u32, String>) -> (thread::JoinHandle<String>, mpsc::Sender<()>) {
    let (leader, release) = gated(cache, |t, wait| {
        t.get_with(1, || {
            wait();
            panic!("init panics on purpose");
        })
    });
    let t = cache.tenant("a");
    wait_until("the leader to start", || t.stats().loads == 1);
    (leader, release)
}

/// A waiter that missed, and after the panic finds the value an insert
/// put in meanwhile, made one call: one miss, not a miss and a hit.
#[test]
fn a_get_with_waiter_that_finds_a_value_after_the_panic_counts_one_lookup() {
    let cache = cache();
    let (leader, release) = panicking_leader(&cache);
    let t = cache.tenant("a");
    let waiter_t = cache.tenant("a");
    let waiter = thread::spawn(move || waiter_t.get_with(1, || unreachable!("a value is in")));
    wait_for_waiters(&t, 1);
    t.insert(1, "inserted".to_string());
    release.send(()).unwrap();
    assert!(leader.join().is_err());
    assert_eq!(waiter.join().unwrap(), "inserted");
    let s = t.stats();
    assert_eq!(
        (s.hits, s.misses),
        (0, 2),
        "(hits, misses) of two calls that missed"
    );
}

/// Two `get_with` waiters whose leader panics run the load again: one
/// leads it and the other joins it. Each call joined a load, and each
/// counts once as coalesced.
#[test]
fn a_get_with_waiter_that_joins_a_second_load_after_a_panic_counts_once_as_coalesced() {
    let cache = cache();
    let (leader, release) = panicking_leader(&cache);
    let t = cache.tenant("a");
    let (release_rerun, rerun_gate) = mpsc::channel::<()>();
    let rerun_gate = Arc::new(std::sync::Mutex::new(rerun_gate));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (waiter_t, rerun_gate) = (cache.tenant("a"), rerun_gate.clone());
            thread::spawn(move || {
                waiter_t.get_with(1, || {
                    rerun_gate.lock().unwrap().recv_timeout(PATIENCE).unwrap();
                    "rerun".to_string()
                })
            })
        })
        .collect();
    wait_for_waiters(&t, 2);
    release.send(()).unwrap();
    assert!(leader.join().is_err());
    wait_until("one waiter to run the load again", || t.stats().loads == 2);
    // Time for the other waiter to join that load; if it comes later, it
    // finds the value instead, and counts once all the same.
    thread::sleep(Duration::from_millis(100));
    release_rerun.send(()).unwrap();
    for w in waiters {
        assert_eq!(w.join().unwrap(), "rerun");
    }
    assert_eq!(t.stats().coalesced, 2, "coalesced calls");
}

#[test]
fn a_loader_asking_for_its_own_key_gets_recursive_at_once() {
    let cache = cache();
    let t = cache.tenant("a");
    let inner_result = std::cell::RefCell::new(None);
    let v = t.try_get_with(1, |_| {
        *inner_result.borrow_mut() = Some(t.try_get_with(1, |_| Ok::<_, ()>("inner".into())));
        // Loading another key from inside a loader works.
        let other = t.get_with(2, || "two".to_string());
        Ok::<_, ()>(format!("outer+{other}"))
    });
    assert_eq!(v.unwrap(), "outer+two");
    assert_eq!(inner_result.into_inner(), Some(Err(LoadError::Recursive)));
    assert_eq!(t.get(&2).as_deref(), Some("two"));
}

#[test]
fn get_with_recursing_into_its_own_key_panics_with_a_message_instead_of_hanging() {
    let cache = cache();
    let t = cache.tenant("a");
    let err = catch_unwind(AssertUnwindSafe(|| {
        t.get_with(1, || t.get_with(1, || "x".to_string()))
    }))
    .unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(msg.contains("recursive"), "unclear panic message: {msg}");
    assert_eq!(
        t.get_with(1, || "after".to_string()),
        "after",
        "the key is usable again"
    );
}

/// Runs a load that stays in flight while `meddle` runs, and returns what
/// the load and its waiter got.
fn with_load_in_flight(cache: &Cache<u32, String>, meddle: impl FnOnce()) -> (String, String) {
    let t = cache.tenant("a");
    let (loads, coalesced) = (t.stats().loads, t.stats().coalesced);
    let (leader, release) = gated(cache, |t, wait| {
        t.get_with(1, || {
            wait();
            "loaded".to_string()
        })
    });
    wait_until("the leader to start", || t.stats().loads > loads);
    let waiter_t = cache.tenant("a");
    let waiter = thread::spawn(move || waiter_t.get_with(1, || "waiter loaded".to_string()));
    wait_for_waiters(&t, coalesced + 1);
    meddle();
    release.send(()).unwrap();
    (leader.join().unwrap(), waiter.join().unwrap())
}

#[test]
fn an_insert_during_a_load_wins_over_the_loaded_value() {
    let cache = cache();
    let t = cache.tenant("a");
    let got = with_load_in_flight(&cache, || t.insert(1, "inserted".into()));
    assert_eq!(
        got,
        ("loaded".into(), "loaded".into()),
        "waiters get the load's result"
    );
    assert_eq!(t.get(&1).as_deref(), Some("inserted"));
}

#[test]
fn an_invalidate_during_a_load_wins_over_the_loaded_value() {
    let cache = cache();
    let t = cache.tenant("a");
    with_load_in_flight(&cache, || {
        t.invalidate(&1);
    });
    assert_eq!(t.get(&1), None);
}

#[test]
fn a_tenant_invalidate_all_during_a_load_keeps_the_old_load_out() {
    let cache = cache();
    let t = cache.tenant("a");
    with_load_in_flight(&cache, || t.invalidate_all());
    assert_eq!(t.get(&1), None, "a pre-invalidation load came back");
    let other = cache.tenant("b");
    other.insert(1, "b".into());
    with_load_in_flight(&cache, || cache.invalidate_all());
    assert_eq!(t.get(&1), None);
    assert_eq!(other.get(&1), None);
}

#[test]
fn load_errors_explain_themselves() {
    let e: LoadError<std::io::Error> = LoadError::Failed(Arc::new(std::io::Error::other("disk")));
    assert_eq!(e.to_string(), "load failed: disk");
    assert!(std::error::Error::source(&e).is_some());
    let t: LoadError<std::io::Error> = LoadError::Timeout;
    assert!(t.is_timeout() && !t.is_failed());
    assert!(std::error::Error::source(&t).is_none());
    assert!(LoadError::<()>::Recursive.is_recursive());
    assert!(LoadError::<()>::Panicked.is_panicked());
    let cloned = e.clone();
    assert!(Arc::ptr_eq(cloned.failure().unwrap(), e.failure().unwrap()));
}

#[test]
fn load_stats_count_time_spent_loading() {
    let cache = cache();
    let t = cache.tenant("a");
    let _ = t.get_with(1, || {
        thread::sleep(Duration::from_millis(5));
        "v".to_string()
    });
    let flag = AtomicBool::new(false);
    let _ = t.try_get_with(2, |_| {
        flag.store(true, Ordering::Relaxed);
        Err::<String, _>(())
    });
    let s = t.stats();
    assert!(s.total_load_time >= Duration::from_millis(5));
    assert_eq!((s.loads, s.load_failures, s.inserts), (2, 1, 1));
    assert_eq!(cache.stats().loads, 2);
}
