//! Model checks with loom: every interleaving (up to the preemption bound)
//! of two or three threads running the load protocol on a one-shard cache,
//! and of two or three writes that race past capacity checks on a
//! two-shard cache.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom`
#![cfg(loom)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use tenant_cache::{Cache, LoadError, ManualClock, Tenant, TenantId};

fn cache() -> Cache<u32, u32> {
    Cache::builder().max_capacity(8).shards(1).build()
}

#[test]
fn concurrent_get_with_runs_one_loader_and_both_see_its_value() {
    loom::model(|| {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let spawn = |cache: &Cache<u32, u32>| {
            let t = cache.tenant("a");
            let calls = calls.clone();
            thread::spawn(move || {
                t.get_with(1, || {
                    calls.fetch_add(1, SeqCst);
                    7
                })
            })
        };
        let a = spawn(&cache);
        let b = spawn(&cache);
        assert_eq!(a.join().unwrap(), 7);
        assert_eq!(b.join().unwrap(), 7);
        assert_eq!(calls.load(SeqCst), 1, "the loader ran twice");
        cache.validate();
    });
}

/// With two waiters, publishing the value must wake both, not one.
#[test]
fn three_concurrent_get_with_run_one_loader_and_all_see_its_value() {
    loom::model(|| {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let load = {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, SeqCst);
                7
            }
        };
        let spawn = |cache: &Cache<u32, u32>| {
            let (t, load) = (cache.tenant("a"), load.clone());
            thread::spawn(move || t.get_with(1, load))
        };
        let (a, b) = (spawn(&cache), spawn(&cache));
        let c = cache.tenant("a").get_with(1, load);
        assert_eq!((a.join().unwrap(), b.join().unwrap(), c), (7, 7, 7));
        assert_eq!(calls.load(SeqCst), 1, "the loader ran more than once");
        cache.validate();
    });
}

#[test]
fn a_failed_load_reaches_its_waiter_and_is_not_cached() {
    loom::model(|| {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let spawn = |cache: &Cache<u32, u32>| {
            let t = cache.tenant("a");
            let calls = calls.clone();
            thread::spawn(move || {
                t.try_get_with(1, |_| {
                    calls.fetch_add(1, SeqCst);
                    Err::<u32, _>("down")
                })
            })
        };
        let a = spawn(&cache).join().unwrap();
        let b = spawn(&cache).join().unwrap();
        assert!(a.unwrap_err().is_failed() && b.unwrap_err().is_failed());
        assert_eq!(calls.load(SeqCst), 2, "sequential failures load again");
        assert_eq!(cache.entry_count(), 0);
    });
}

#[test]
fn a_waiter_sees_the_leaders_error_or_loads_itself() {
    loom::model(|| {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let spawn = |cache: &Cache<u32, u32>| {
            let t = cache.tenant("a");
            let calls = calls.clone();
            thread::spawn(move || {
                t.try_get_with(1, |_| {
                    calls.fetch_add(1, SeqCst);
                    Err::<u32, _>("down")
                })
            })
        };
        let a = spawn(&cache);
        let b = spawn(&cache);
        let (a, b) = (
            a.join().unwrap().unwrap_err(),
            b.join().unwrap().unwrap_err(),
        );
        if calls.load(SeqCst) == 1 {
            assert!(Arc::ptr_eq(a.failure().unwrap(), b.failure().unwrap()));
        }
    });
}

/// A thread that loads key 1 of tenant "a" with a loader that panics;
/// returns whether the panic reached it.
fn spawn_panicking_leader(cache: &Cache<u32, u32>) -> thread::JoinHandle<bool> {
    let t = cache.tenant("a");
    thread::spawn(move || {
        catch_unwind(AssertUnwindSafe(|| {
            t.try_get_with(1, |_| -> Result<u32, ()> { panic!("boom") })
        }))
        .is_err()
    })
}

/// A caller of a load that may have panicked got either one of the values
/// its own loader or another caller's returns, or `Panicked`.
fn assert_loaded_one_of(outcome: Result<u32, LoadError<()>>, values: &[u32]) {
    match outcome {
        Ok(v) => assert!(values.contains(&v), "{v} is none of {values:?}"),
        Err(e) => assert_eq!(e, LoadError::Panicked),
    }
}

#[test]
fn a_panicking_leader_never_strands_its_waiter() {
    loom::model(|| {
        let cache = cache();
        let leader = spawn_panicking_leader(&cache);
        let t = cache.tenant("a");
        let waiter = thread::spawn(move || t.try_get_with(1, |_| Ok::<_, ()>(2)));
        // Either thread may lead; whichever waits on a panicking load gets
        // `Panicked`, and nobody hangs.
        let _leader_panicked = leader.join().unwrap();
        assert_loaded_one_of(waiter.join().unwrap(), &[2]);
        // Nothing stays locked: the key loads again.
        let again = cache.tenant("a").get_with(1, || 3);
        assert!(again == 2 || again == 3);
    });
}

/// With two waiters on a panicking load, both are woken.
#[test]
fn a_panicking_leader_never_strands_two_waiters() {
    loom::model(|| {
        let cache = cache();
        let leader = spawn_panicking_leader(&cache);
        let t = cache.tenant("a");
        let waiter = thread::spawn(move || t.try_get_with(1, |_| Ok::<_, ()>(2)));
        let here = cache.tenant("a").try_get_with(1, |_| Ok::<_, ()>(3));
        let _leader_panicked = leader.join().unwrap();
        for outcome in [waiter.join().unwrap(), here] {
            assert_loaded_one_of(outcome, &[2, 3]);
        }
        cache.validate();
    });
}

#[test]
fn an_insert_during_a_load_wins() {
    loom::model(|| {
        let cache = cache();
        let t = cache.tenant("a");
        let loader = thread::spawn(move || t.get_with(1, || 1));
        let t = cache.tenant("a");
        let writer = thread::spawn(move || t.insert(1, 2));
        let loaded = loader.join().unwrap();
        writer.join().unwrap();
        assert!(loaded == 1 || loaded == 2);
        // However the two interleave, the insert is the newest state.
        assert_eq!(cache.tenant("a").get(&1), Some(2));
        cache.validate();
    });
}

/// Races a `get_with` of key 1 in tenant "a" (loading 1) against
/// `invalidate` on another handle of the same tenant; returns what the load
/// returned and whether it had started when the invalidation began.
fn a_load_racing(cache: &Cache<u32, u32>, invalidate: fn(&Tenant<u32, u32>)) -> (u32, bool) {
    let started = Arc::new(AtomicBool::new(false));
    let (t, s) = (cache.tenant("a"), started.clone());
    let load = move || {
        t.get_with(1, || {
            s.store(true, SeqCst);
            1
        })
    };
    let t = cache.tenant("a");
    let invalidation = move || {
        let load_had_started = started.load(SeqCst);
        invalidate(&t);
        load_had_started
    };
    race(load, invalidation)
}

#[test]
fn an_invalidate_after_a_load_started_keeps_its_result_out() {
    loom::model(|| {
        let cache = cache();
        let (loaded, load_had_started) = a_load_racing(&cache, |t| {
            t.invalidate(&1);
        });
        assert_eq!(loaded, 1);
        if load_had_started {
            assert_eq!(
                cache.tenant("a").get(&1),
                None,
                "a superseded load was installed"
            );
        }
        cache.validate();
    });
}

#[test]
fn invalidate_all_against_a_load() {
    loom::model(|| {
        let cache = cache();
        let (_, load_had_started) = a_load_racing(&cache, Tenant::invalidate_all);
        let t = cache.tenant("a");
        if load_had_started {
            assert_eq!(t.get(&1), None, "a pre-invalidation load came back");
        }
        assert_eq!(t.entry_count(), u64::from(t.contains(&1)));
        cache.validate();
    });
}

#[test]
fn tenant_invalidate_all_against_a_concurrent_insert_stays_consistent() {
    loom::model(|| {
        let cache = cache();
        let t = cache.tenant("a");
        let other = cache.tenant("b");
        other.insert(1, 9);
        let writer = thread::spawn(move || t.insert(1, 1));
        let t = cache.tenant("a");
        let invalidator = thread::spawn(move || t.invalidate_all());
        writer.join().unwrap();
        invalidator.join().unwrap();
        let t = cache.tenant("a");
        assert_eq!(t.entry_count(), u64::from(t.get(&1) == Some(1)));
        assert_eq!(other.get(&1), Some(9), "another tenant was touched");
        cache.reclaim_invalidated();
        assert_eq!(cache.entry_count(), 1 + t.entry_count());
        cache.validate();
    });
}

/// Runs `first` and `second` on two threads and returns both results.
fn race<A, B>(
    first: impl FnOnce() -> A + Send + 'static,
    second: impl FnOnce() -> B + Send + 'static,
) -> (A, B)
where
    A: Send + 'static,
    B: Send + 'static,
{
    let (x, y) = (thread::spawn(first), thread::spawn(second));
    (x.join().unwrap(), y.join().unwrap())
}

/// A two-shard cache that holds `capacity` entries in all.
fn two_shards(capacity: u64) -> Cache<u32, u32> {
    Cache::builder().max_capacity(capacity).shards(2).build()
}

/// The shard of a two-shard cache that `t` puts key `k` in.
fn shard_of(t: &Tenant<u32, u32>, k: u32) -> u64 {
    (t.debug_hash(&k) >> 32) & 1
}

/// The first key after `after` that `t` puts in shard `shard`.
fn next_key_in(t: &Tenant<u32, u32>, after: u32, shard: u64) -> u32 {
    (after + 1..).find(|&k| shard_of(t, k) == shard).unwrap()
}

/// `writers` inserts (2 or 3) of one tenant racing into a two-shard
/// cache, each leaving it one over `caps`' limit; returns the entries left.
/// The first two go to different shards, so each may check its cap before
/// the other settles. A third goes beside the second, and may see an
/// excess while another writer is evicting it.
fn racing_inserts_leave(caps: fn() -> Cache<u32, u32>, writers: usize) -> u64 {
    let cache = caps();
    let a = cache.tenant("a");
    let second = next_key_in(&a, 0, 1 - shard_of(&a, 0));
    let third = next_key_in(&a, second, shard_of(&a, second));
    let others: Vec<_> = [second, third][..writers - 1]
        .iter()
        .map(|&k| {
            let t = cache.tenant("a");
            thread::spawn(move || t.insert(k, k))
        })
        .collect();
    a.insert(0, 0);
    for writer in others {
        writer.join().unwrap();
    }
    cache.validate();
    cache.entry_count()
}

/// A cache of capacity 100 whose tenants hold at most one entry each.
fn tenant_cap_of_one() -> Cache<u32, u32> {
    Cache::builder()
        .max_capacity(100)
        .tenant_capacity(1)
        .shards(2)
        .build()
}

/// Models `writers` racing inserts into the cache `caps` builds and
/// checks that exactly one entry stays, whichever cap is 1.
fn one_entry_stays(caps: fn() -> Cache<u32, u32>, writers: usize) {
    loom::model(move || {
        let left = racing_inserts_leave(caps, writers);
        assert_eq!(left, 1, "a cap of 1, {writers} inserts: one entry stays");
    });
}

#[test]
fn inserts_racing_past_max_capacity_evict_the_excess_once() {
    one_entry_stays(|| two_shards(1), 2);
}

#[test]
fn inserts_racing_past_the_tenant_cap_evict_the_excess_once() {
    one_entry_stays(tenant_cap_of_one, 2);
}

#[test]
fn three_inserts_racing_past_max_capacity_evict_each_excess_once() {
    one_entry_stays(|| two_shards(1), 3);
}

#[test]
fn three_inserts_racing_past_the_tenant_cap_evict_each_excess_once() {
    one_entry_stays(tenant_cap_of_one, 3);
}

#[test]
fn three_tenants_racing_past_max_capacity_evict_each_excess_once() {
    loom::model(|| {
        let cache = two_shards(1);
        let others: Vec<_> = ["b", "c"]
            .into_iter()
            .map(|id| {
                let t = cache.tenant(id);
                thread::spawn(move || t.insert(1, 1))
            })
            .collect();
        cache.tenant("a").insert(1, 1);
        for writer in others {
            writer.join().unwrap();
        }
        cache.validate();
        assert_eq!(
            cache.entry_count(),
            1,
            "capacity 1, three inserts: one entry stays"
        );
    });
}

#[test]
fn a_load_and_two_inserts_racing_past_max_capacity_leave_one_entry() {
    loom::model(|| {
        let cache = two_shards(1);
        let a = cache.tenant("a");
        let second = next_key_in(&a, 0, 1 - shard_of(&a, 0));
        let (x, y) = (cache.tenant("a"), cache.tenant("a"));
        let inserter = thread::spawn(move || x.insert(second, second));
        let loader = thread::spawn(move || y.get_with(7, || 7));
        a.insert(0, 0);
        inserter.join().unwrap();
        assert_eq!(loader.join().unwrap(), 7);
        cache.validate();
        assert_eq!(cache.entry_count(), 1, "capacity 1: one entry stays");
    });
}

/// A tenant is forgotten once it has no handle and no entry. Whoever drops
/// the last handle must see the counts settled through the other handles,
/// or it forgets a tenant that still has an entry, and loses the entry.
#[test]
fn the_last_handle_dropped_after_racing_writes_keeps_a_tenant_with_an_entry() {
    loom::model(|| {
        let cache = two_shards(1);
        let a = cache.tenant("a");
        let second = next_key_in(&a, 0, 1 - shard_of(&a, 0));
        drop(a);
        let (x, y) = (cache.tenant("a"), cache.tenant("a"));
        let inserter = thread::spawn(move || x.insert(second, second));
        let invalidator = thread::spawn(move || y.invalidate(&second));
        cache.tenant("a").insert(0, 0);
        inserter.join().unwrap();
        invalidator.join().unwrap();
        cache.validate();
        let a = cache.tenant("a");
        let visible = u64::from(a.contains(&0)) + u64::from(a.contains(&second));
        assert_eq!(cache.entry_count(), visible, "an entry outlived its tenant");
    });
}

#[test]
fn an_insert_racing_invalidate_all_in_a_full_cache_keeps_counts_exact() {
    loom::model(|| {
        let cache = two_shards(1);
        cache.tenant("a").insert(5, 5);
        let (writer, invalidator) = (cache.tenant("a"), cache.tenant("a"));
        race(
            move || writer.insert(1, 1),
            move || invalidator.invalidate_all(),
        );
        cache.validate();
        assert!(cache.weighted_size() <= 1, "over max_capacity");
        let t = cache.tenant("a");
        assert_eq!(t.get(&5), None, "an entry from before invalidate_all");
        assert_eq!(t.entry_count(), u64::from(t.contains(&1)));
        cache.reclaim_invalidated();
        cache.validate();
        assert_eq!(cache.entry_count(), t.entry_count());
    });
}

/// Tenant "a", holding key 7, inserts key 1 while "b" inserts keys 1 and
/// 2; checks that neither reads the other's value, and hands back both.
fn a_inserting_against_b(cache: &Cache<u32, u32>) -> (Tenant<u32, u32>, Tenant<u32, u32>) {
    cache.tenant("a").insert(7, 7);
    let (a, b) = (cache.tenant("a"), cache.tenant("b"));
    race(
        move || a.insert(1, 1),
        move || {
            b.insert(1, 2);
            b.insert(2, 2);
        },
    );
    cache.validate();
    let (a, b) = (cache.tenant("a"), cache.tenant("b"));
    assert!(matches!(a.get(&1), None | Some(1)), "b's value under a");
    assert!(matches!(b.get(&1), None | Some(2)), "a's value under b");
    (a, b)
}

#[test]
fn a_tenant_at_its_cap_racing_another_evicts_only_its_own_entries() {
    loom::model(|| {
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(2)
            .tenant_capacity(1)
            .shards(2)
            .build();
        let (a, b) = a_inserting_against_b(&cache);
        assert_eq!(
            (a.entry_count(), b.entry_count()),
            (1, 1),
            "each at its cap"
        );
        assert_eq!(
            u64::from(a.contains(&7)) + u64::from(a.contains(&1)),
            1,
            "a holds one of its own entries"
        );
    });
}

#[test]
fn tenants_with_caps_of_their_own_racing_each_evict_only_down_to_their_own() {
    loom::model(|| {
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(3)
            .tenant_capacity(1)
            .tenant_capacity_by(|id: &TenantId| (id.as_str() == Some("b")).then_some(2))
            .shards(2)
            .build();
        cache.tenant("b").insert(5, 5);
        let (a, b) = a_inserting_against_b(&cache);
        assert_eq!(
            (a.entry_count(), b.entry_count()),
            (1, 2),
            "each at its own cap"
        );
    });
}

#[test]
fn a_load_racing_an_insert_in_a_full_cache_leaves_one_entry() {
    loom::model(|| {
        let cache = two_shards(1);
        let (a1, a2) = (cache.tenant("a"), cache.tenant("a"));
        let (loaded, ()) = race(move || a1.get_with(1, || 10), move || a2.insert(2, 20));
        assert_eq!(loaded, 10, "the loader's value");
        cache.validate();
        assert_eq!(cache.entry_count(), 1, "capacity 1");
    });
}

#[test]
fn reclaim_invalidated_racing_an_insert_keeps_counts_exact() {
    loom::model(|| {
        let cache = two_shards(4);
        let a = cache.tenant("a");
        a.insert(1, 1);
        a.insert(2, 2);
        a.invalidate_all();
        let reclaimer = cache.clone();
        race(
            move || reclaimer.reclaim_invalidated(),
            move || a.insert(3, 3),
        );
        cache.validate();
        cache.reclaim_invalidated();
        cache.validate();
        assert_eq!(cache.tenant("a").get(&3), Some(3), "the live entry");
        assert_eq!(cache.entry_count(), 1, "only the live entry is left");
    });
}

#[test]
fn reclaim_expired_racing_a_rewrite_of_an_expired_key_counts_each_expiry_once() {
    loom::model(|| {
        let clock = ManualClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(4)
            .shards(2)
            .time_to_live(Duration::from_secs(1))
            .clock(clock.clone())
            .build();
        let a = cache.tenant("a");
        a.insert(1, 1);
        a.insert(next_key_in(&a, 1, 1 - shard_of(&a, 1)), 2);
        clock.advance(Duration::from_secs(2));
        let sweeper = cache.clone();
        let writer = cache.tenant("a");
        race(
            move || sweeper.reclaim_expired(),
            move || writer.insert(1, 10),
        );
        cache.validate();
        assert_eq!(a.get(&1), Some(10), "the rewritten entry is live");
        assert_eq!(cache.entry_count(), 1, "only the rewritten entry is left");
        assert_eq!(a.stats().expirations, 2, "each expired value once");
    });
}

#[test]
fn invalidate_racing_an_insert_of_the_same_key_keeps_counts_exact() {
    loom::model(|| {
        let cache = two_shards(1);
        let a = cache.tenant("a");
        a.insert(1, 1);
        let writer = cache.tenant("a");
        race(move || a.invalidate(&1), move || writer.insert(1, 2));
        cache.validate();
        let t = cache.tenant("a");
        assert_eq!(t.entry_count(), u64::from(t.contains(&1)));
        assert!(matches!(t.get(&1), None | Some(2)), "the invalidated value");
    });
}
