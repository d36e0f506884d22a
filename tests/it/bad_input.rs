use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tenant_cache::{Cache, Retry, MAX_SHARDS};

/// A key whose `Hash` or `Eq` can be told to panic.
#[derive(Clone, Debug)]
struct Touchy {
    id: u64,
    panic_hash: bool,
    panic_eq: bool,
}

fn good(id: u64) -> Touchy {
    Touchy {
        id,
        panic_hash: false,
        panic_eq: false,
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(!self.panic_hash, "Hash panicked on purpose");
        self.id.hash(state);
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        assert!(!(self.panic_eq || other.panic_eq), "Eq panicked on purpose");
        self.id == other.id
    }
}

impl Eq for Touchy {}

#[test]
fn a_key_whose_hash_or_eq_panics_leaves_the_shard_usable() {
    let cache: Cache<Touchy, u64> = Cache::builder().max_capacity(100).shards(1).build();
    let t = cache.tenant("a");
    let other = cache.tenant("b");
    for i in 0..50 {
        t.insert(good(i), i);
    }
    let eq_panics = Touchy {
        id: 7,
        panic_hash: false,
        panic_eq: true,
    };
    let hash_panics = Touchy {
        id: 8,
        panic_hash: true,
        panic_eq: false,
    };
    for key in [eq_panics, hash_panics] {
        let k = key.clone();
        assert!(catch_unwind(AssertUnwindSafe(|| t.insert(k.clone(), 0))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| t.get(&k))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| t.invalidate(&k))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| t.get_with(k.clone(), || 1))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| {
            t.try_get_with(k.clone(), |_| Ok::<_, ()>(1))
        }))
        .is_err());
    }
    // Everyone else carries on, and the shard is consistent.
    for i in 0..50 {
        assert_eq!(t.get(&good(i)), Some(i));
    }
    other.insert(good(7), 70);
    assert_eq!(other.get(&good(7)), Some(70));
    t.insert(good(1_000), 1);
    assert_eq!(t.get_with(good(1_001), || 2), 2);
    cache.validate();
}

#[test]
fn extreme_arguments_are_handled_without_panic() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(u64::MAX)
        .tenant_capacity(u64::MAX)
        .time_to_live(Duration::MAX)
        .load_timeout(Duration::MAX)
        .retry(Retry::attempts(u32::MAX).backoff(Duration::MAX))
        .stale_if_error(Duration::MAX)
        .refresh_after(Duration::MAX)
        .shards(usize::MAX)
        .build();
    let t = cache.tenant(u64::MAX);
    t.insert_with_ttl(u32::MAX, 1, Duration::MAX);
    assert_eq!(t.get(&u32::MAX), Some(1));
    let v = t.load(5).timeout(Duration::MAX).run(|_| Ok::<_, ()>(5));
    assert_eq!(v, Ok(5));
    assert_eq!(cache.tenant("").get(&1), None);
}

#[test]
fn shard_counts_round_up_to_a_power_of_two_and_stop_at_max_shards() {
    let shards = |n| format!("{:?}", Cache::<u32, u32>::builder().shards(n).build());
    assert!(shards(1).contains("shards: 1,"), "{}", shards(1));
    assert!(shards(3).contains("shards: 4,"), "{}", shards(3));
    let most = format!("shards: {MAX_SHARDS},");
    assert!(shards(usize::MAX).contains(&most), "{}", shards(usize::MAX));
}

#[test]
#[should_panic(expected = "at least one shard")]
fn zero_shards_is_refused_with_a_clear_message() {
    let _ = Cache::<u32, u32>::builder().shards(0);
}
