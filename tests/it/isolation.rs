use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use tenant_cache::{Cache, Tenant};

use crate::support::PATIENCE;

#[test]
fn the_same_key_under_two_tenants_is_two_entries() {
    let cache: Cache<String, String> = Cache::new(100);
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    a.insert("k".into(), "from a".into());
    assert_eq!(b.get("k"), None, "b must not see a's entry");
    b.insert("k".into(), "from b".into());
    assert_eq!(a.get("k").as_deref(), Some("from a"));
    assert_eq!(b.get("k").as_deref(), Some("from b"));
    assert_eq!(cache.entry_count(), 2);
    assert_eq!((a.entry_count(), b.entry_count()), (1, 1));
}

#[test]
fn a_tenant_cannot_invalidate_another_tenants_entries() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let a = cache.tenant("a");
    let b = cache.tenant("b");
    a.insert(1, 10);
    b.insert(1, 20);
    assert!(b.invalidate(&1));
    assert!(!b.invalidate(&1));
    assert_eq!(b.remove(&1), None);
    assert_eq!(a.get(&1), Some(10));
    b.insert(1, 22);
    assert_eq!(b.remove(&1), Some(22));
    assert_eq!(a.get(&1), Some(10));
    b.insert(1, 21);
    b.invalidate_all();
    assert_eq!(a.get(&1), Some(10));
    assert_eq!(b.get(&1), None);
    assert!(a.contains(&1) && !b.contains(&1));
}

#[test]
fn numeric_and_named_tenants_with_equal_text_are_distinct() {
    let cache: Cache<u32, u32> = Cache::new(100);
    cache.tenant(7u64).insert(1, 1);
    assert_eq!(cache.tenant("7").get(&1), None);
    assert_eq!(cache.tenant(String::from("x")).id().as_str(), Some("x"));
}

#[test]
fn concurrent_tenants_writing_the_same_keys_never_read_each_others_values() {
    const TENANTS: u64 = 16;
    const KEYS: u64 = 64;
    let cache: Cache<u64, (u64, u64)> = Cache::builder()
        .max_capacity(TENANTS * KEYS / 2) // evictions happen too
        .shards(4)
        .build();
    let wrong = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..TENANTS)
        .map(|t| {
            let cache = cache.clone();
            let wrong = wrong.clone();
            thread::spawn(move || {
                let me = cache.tenant(t);
                for round in 0..2_000u64 {
                    let key = round % KEYS;
                    me.insert(key, (t, round));
                    for probe in [key, (key * 7) % KEYS] {
                        if let Some((owner, _)) = me.get(&probe) {
                            if owner != t {
                                wrong.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    if round % 97 == 0 {
                        me.invalidate_all();
                    }
                    if round % 31 == 0 {
                        let fresh = me.get_with(KEYS + key, || (t, round));
                        if fresh.0 != t {
                            wrong.store(true, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        !wrong.load(Ordering::Relaxed),
        "a tenant read another tenant's value"
    );
    cache.validate();
}

/// Found by the stress test: a generation id was recycled to a new tenant
/// while a load under it was still in flight, so the new tenant joined the
/// old tenant's load.
#[test]
fn a_load_in_flight_across_invalidate_all_is_never_shared_with_another_tenant() {
    use std::sync::mpsc;
    use std::time::Duration;
    let cache: Cache<u32, String> = Cache::new(100);
    let a = cache.tenant("a");
    let (release, gate) = mpsc::channel::<()>();
    let leader_a = a.clone();
    let leader = thread::spawn(move || {
        leader_a.get_with(1, move || {
            gate.recv_timeout(Duration::from_secs(10)).unwrap();
            "a's value".to_string()
        })
    });
    let started = std::time::Instant::now();
    while a.stats().loads == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "leader never started"
        );
        thread::yield_now();
    }
    a.invalidate_all();
    let b = cache.tenant("b");
    let got = b
        .load(1)
        .timeout(Duration::from_secs(2))
        .run(|_| Ok::<_, ()>("b's value".to_string()));
    assert_eq!(got.as_deref(), Ok("b's value"), "b joined a's load");
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap(), "a's value");
    assert_eq!(a.get(&1), None, "a's pre-invalidation load came back");
    assert_eq!(b.get(&1).as_deref(), Some("b's value"));
}

/// A key of `a` and a key of `b` that the cache files under the same
/// 32-bit hash: among 200,000 keys of `a`, each key of `b` collides with
/// one with odds of about 1 in 21,000.
fn keys_with_equal_stored_hashes(a: &Tenant<u64, u64>, b: &Tenant<u64, u64>) -> (u64, u64) {
    let of_a: HashMap<u32, u64> = (0..200_000u64)
        .map(|k| (a.debug_hash(&k) as u32, k))
        .collect();
    (0..10_000_000u64)
        .find_map(|k| of_a.get(&(b.debug_hash(&k) as u32)).map(|&ka| (ka, k)))
        .expect("no colliding pair among 10M keys")
}

#[test]
fn tenants_whose_keys_share_a_stored_hash_never_share_entries_or_loads() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(100).shards(1).build();
    let (a, b) = (cache.tenant("a"), cache.tenant("b"));
    let (ka, kb) = keys_with_equal_stored_hashes(&a, &b);
    a.insert(ka, 1);
    assert_eq!((b.get(&kb), b.contains(&kb)), (None, false));
    a.invalidate(&ka);
    let (started, has_started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let leader = {
        let a = a.clone();
        thread::spawn(move || {
            a.try_get_with(ka, move |_| {
                started.send(()).unwrap();
                gate.recv_timeout(PATIENCE).unwrap();
                Ok::<_, ()>(1)
            })
        })
    };
    has_started.recv_timeout(PATIENCE).unwrap();
    assert_eq!(
        b.try_get_with(kb, |_| Ok::<_, ()>(2)),
        Ok(2),
        "b joined a's load"
    );
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap(), Ok(1));
    assert_eq!((a.get(&ka), b.get(&kb)), (Some(1), Some(2)));
}
