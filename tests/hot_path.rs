//! The hit path's promises: no allocation, one hash of the key; and a
//! dropped cache frees what it allocated.
//!
//! A separate test binary, because it installs a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use tenant_cache::Cache;

struct Counting;

thread_local!(static ALLOCS: Cell<usize> = const { Cell::new(0) });
// Bytes allocated minus bytes freed by this thread.
thread_local!(static LIVE: Cell<isize> = const { Cell::new(0) });

// SAFETY: forwards every call to the system allocator unchanged; only
// counts, in thread-locals that allocate nothing themselves.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCS.with(|a| a.get())
}

fn live_bytes() -> isize {
    LIVE.with(|l| l.get())
}

/// A tenant and its current generation point at each other; the cache
/// must break that cycle when it goes, whichever handle goes last.
#[test]
fn a_dropped_cache_frees_its_tenants() {
    let build_and_drop = |cache_goes_first: bool| {
        let cache: Cache<u32, u32> = Cache::new(100);
        for id in 0..10u64 {
            cache.tenant(id).insert(1, 1);
        }
        let held = cache.tenant("held");
        held.insert(2, 2);
        if cache_goes_first {
            drop(cache);
            drop(held);
        } else {
            drop(held);
            drop(cache);
        }
    };
    // Per-thread state (reader slots, stats stripes) is made once.
    build_and_drop(true);
    let before = live_bytes();
    for round in 0..10 {
        build_and_drop(round % 2 == 0);
    }
    assert_eq!(live_bytes() - before, 0, "bytes left behind by 10 caches");
}

#[test]
fn a_hit_allocates_nothing() {
    let cache: Cache<String, std::sync::Arc<str>> = Cache::new(1_000);
    let t = cache.tenant("acme");
    for i in 0..100 {
        t.insert(format!("key{i}"), format!("value{i}").into());
    }
    let keys: Vec<String> = (0..100).map(|i| format!("key{i}")).collect();
    // Warm up per-thread state (reader slot, stats stripe).
    for k in &keys {
        assert!(t.get(k.as_str()).is_some());
    }
    let before = allocations();
    for _ in 0..10 {
        for k in &keys {
            assert!(t.get(k.as_str()).is_some());
            assert!(t.contains(k.as_str()));
        }
    }
    assert_eq!(allocations() - before, 0, "hits allocated");
    let key = keys[3].clone();
    let before = allocations();
    let v = t.try_get_with(key, |_| Err::<std::sync::Arc<str>, ()>(()));
    assert!(v.is_ok());
    assert_eq!(
        allocations() - before,
        0,
        "a hit through try_get_with allocated"
    );
}

static HASHES: AtomicUsize = AtomicUsize::new(0);

#[derive(PartialEq, Eq, Clone, Copy)]
struct CountedKey(u64);

impl Hash for CountedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        HASHES.fetch_add(1, Ordering::SeqCst);
        self.0.hash(state);
    }
}

#[test]
fn a_lookup_hashes_the_key_once() {
    let cache: Cache<CountedKey, u64> = Cache::new(100);
    let t = cache.tenant("a");
    t.insert(CountedKey(1), 1);
    let before = HASHES.load(Ordering::SeqCst);
    assert_eq!(t.get(&CountedKey(1)), Some(1));
    assert_eq!(
        HASHES.load(Ordering::SeqCst) - before,
        1,
        "a hit hashed more than once"
    );
    let before = HASHES.load(Ordering::SeqCst);
    assert_eq!(t.get(&CountedKey(2)), None);
    assert_eq!(
        HASHES.load(Ordering::SeqCst) - before,
        1,
        "a miss hashed more than once"
    );
    let before = HASHES.load(Ordering::SeqCst);
    t.insert(CountedKey(3), 3);
    assert_eq!(
        HASHES.load(Ordering::SeqCst) - before,
        1,
        "an insert hashed more than once"
    );
}
