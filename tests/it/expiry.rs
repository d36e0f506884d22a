use std::time::Duration;

use tenant_cache::{Cache, CacheBuilder, ManualClock, RemovalCause, TenantId};

use crate::support::{causes, recording, Heard};

fn cache_with_ttl(ttl: Duration) -> (Cache<u32, u32>, ManualClock) {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .time_to_live(ttl)
        .clock(clock.clone())
        .build();
    (cache, clock)
}

/// A cache from `builder` on a manual clock, every removal recorded.
fn recorded(builder: CacheBuilder<u32, u32>) -> (Cache<u32, u32>, ManualClock, Heard<u32, u32>) {
    let clock = ManualClock::new();
    let (builder, heard) = recording(builder.clock(clock.clone()));
    (builder.build(), clock, heard)
}

fn cache_without_ttl() -> (Cache<u32, u32>, ManualClock) {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(10)
        .clock(clock.clone())
        .build();
    (cache, clock)
}

#[test]
fn an_entry_expires_after_the_cache_ttl() {
    let (cache, clock) = cache_with_ttl(Duration::from_secs(10));
    let t = cache.tenant("a");
    t.insert(1, 1);
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(t.get(&1), Some(1));
    clock.advance(Duration::from_millis(1));
    assert_eq!(t.get(&1), None, "an expired entry must never be returned");
    assert!(!t.contains(&1));
}

#[test]
fn a_per_entry_ttl_overrides_the_cache_ttl() {
    let (cache, clock) = cache_with_ttl(Duration::from_secs(10));
    let t = cache.tenant("a");
    t.insert_with_ttl(1, 1, Duration::from_secs(2));
    t.insert_with_ttl(2, 2, Duration::from_secs(20));
    t.insert(3, 3);
    clock.advance(Duration::from_secs(3));
    assert_eq!((t.get(&1), t.get(&2), t.get(&3)), (None, Some(2), Some(3)));
    clock.advance(Duration::from_secs(8));
    assert_eq!((t.get(&2), t.get(&3)), (Some(2), None));
}

#[test]
fn per_entry_ttl_works_in_a_cache_without_ttl() {
    let (cache, clock) = cache_without_ttl();
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert_with_ttl(2, 2, Duration::from_secs(1));
    t.insert(3, 3);
    t.insert(4, 4);
    t.insert_with_ttl(4, 5, Duration::from_secs(1));
    clock.advance(Duration::from_secs(3600));
    assert_eq!((t.get(&1), t.get(&2), t.get(&3)), (Some(1), None, Some(3)));
    assert_eq!(
        t.get(&4),
        None,
        "a value rewritten with a ttl never expires"
    );
}

/// In a cache without a TTL, the first entry to carry one may be a
/// rewrite of an entry that had none.
#[test]
fn an_entry_rewritten_with_the_caches_first_ttl_expires() {
    let (cache, clock) = cache_without_ttl();
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert(2, 2);
    t.insert_with_ttl(2, 3, Duration::from_secs(1));
    assert_eq!(t.get(&2), Some(3));
    clock.advance(Duration::from_secs(2));
    assert_eq!((t.get(&1), t.get(&2)), (Some(1), None));
}

#[test]
fn rewriting_an_entry_restarts_its_ttl() {
    let (cache, clock) = cache_with_ttl(Duration::from_secs(10));
    let t = cache.tenant("a");
    t.insert(1, 1);
    clock.advance(Duration::from_secs(8));
    t.insert(1, 2);
    clock.advance(Duration::from_secs(8));
    assert_eq!(t.get(&1), Some(2));
    clock.advance(Duration::from_secs(2));
    assert_eq!(t.get(&1), None, "the rewritten entry never expires");
}

#[test]
fn expired_entries_are_reported_as_expired_when_removed() {
    let (cache, clock, heard) = recorded(
        Cache::builder()
            .max_capacity(4)
            .shards(1)
            .time_to_live(Duration::from_secs(1)),
    );
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert(2, 2);
    clock.advance(Duration::from_secs(2));
    t.insert(1, 10); // replaces an expired value
    for k in 10..14 {
        t.insert(k, k); // pushes the expired 2 out
    }
    let causes = causes(&heard);
    assert_eq!(causes[0], RemovalCause::Expired);
    assert!(
        causes.contains(&RemovalCause::Expired)
            && causes
                .iter()
                .filter(|c| **c == RemovalCause::Expired)
                .count()
                >= 2
    );
    assert!(t.stats().expirations >= 2);
}

#[test]
fn a_zero_ttl_stores_nothing_visible() {
    let (cache, _clock) = cache_with_ttl(Duration::ZERO);
    let t = cache.tenant("a");
    t.insert(1, 1);
    assert_eq!(t.get(&1), None);
}

#[test]
fn a_huge_ttl_does_not_overflow() {
    let (cache, clock) = cache_with_ttl(Duration::MAX);
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert_with_ttl(2, 2, Duration::MAX);
    clock.advance(Duration::from_secs(1 << 40));
    assert_eq!((t.get(&1), t.get(&2)), (Some(1), Some(2)));
}

#[test]
fn invalidating_an_expired_entry_finds_nothing_and_reports_it_expired() {
    let (cache, clock, heard) = recorded(
        Cache::builder()
            .max_capacity(10)
            .time_to_live(Duration::from_secs(1)),
    );
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert(2, 2);
    clock.advance(Duration::from_secs(1));
    assert!(!t.contains(&1));
    assert!(!t.invalidate(&1), "an expired entry is not a live one");
    assert_eq!(t.remove(&2), None, "an expired value is never handed back");
    assert_eq!(causes(&heard), vec![RemovalCause::Expired; 2]);
    let s = t.stats();
    assert_eq!((s.expirations, s.invalidations, s.entry_count), (2, 0, 0));
}

#[test]
fn reclaim_expired_removes_every_expired_entry_and_only_those() {
    let (cache, clock, heard) = recorded(
        Cache::builder()
            .max_capacity(10_000)
            .shards(2)
            .time_to_live(Duration::from_secs(10)),
    );
    let (a, b) = (cache.tenant("a"), cache.tenant("b"));
    // More entries per shard than one sweep run looks at.
    for k in 0..3_000 {
        a.insert(k, k);
    }
    a.insert_with_ttl(5_000, 5_000, Duration::from_secs(3_600));
    clock.advance(Duration::from_secs(5));
    for k in 0..1_000 {
        b.insert(k, k);
    }
    a.insert(7, 70); // rewritten: its ten seconds start again
    clock.advance(Duration::from_secs(6));
    assert_eq!(cache.entry_count(), 4_001, "nothing is removed on its own");
    cache.reclaim_expired();
    cache.validate();
    let (replaced, mut expired): (Vec<_>, Vec<_>) = heard
        .lock()
        .unwrap()
        .drain(..)
        .partition(|h| h.3 == RemovalCause::Replaced);
    assert_eq!(
        replaced,
        [(TenantId::from("a"), 7, 7, RemovalCause::Replaced)]
    );
    expired.sort_unstable_by_key(|h| h.1);
    let want: Vec<_> = (0..3_000)
        .filter(|&k| k != 7)
        .map(|k| (TenantId::from("a"), k, k, RemovalCause::Expired))
        .collect();
    assert_eq!(expired, want);
    assert_eq!((a.entry_count(), b.entry_count()), (2, 1_000));
    assert_eq!(
        (a.get(&7), a.get(&5_000), b.get(&999)),
        (Some(70), Some(5_000), Some(999))
    );
    assert_eq!(a.stats().expirations, 2_999);
    cache.reclaim_expired();
    assert!(
        heard.lock().unwrap().is_empty(),
        "a second sweep finds nothing"
    );
}

#[test]
fn reclaim_expired_leaves_invalidated_entries_to_be_reported_as_invalidated() {
    let (cache, clock, heard) = recorded(
        Cache::builder()
            .max_capacity(100)
            .time_to_live(Duration::from_secs(1)),
    );
    let t = cache.tenant("a");
    t.insert(1, 1);
    t.insert(2, 2);
    t.invalidate_all();
    clock.advance(Duration::from_secs(2));
    cache.reclaim_expired();
    assert!(causes(&heard).is_empty());
    cache.reclaim_invalidated();
    assert_eq!(causes(&heard), vec![RemovalCause::Invalidated; 2]);
    assert_eq!(t.stats().expirations, 0);
}

#[test]
fn reclaim_expired_keeps_entries_without_a_ttl() {
    let (cache, clock) = cache_without_ttl();
    let t = cache.tenant("a");
    t.insert(1, 1);
    clock.advance(Duration::from_secs(3_600));
    cache.reclaim_expired();
    t.insert_with_ttl(2, 2, Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    cache.reclaim_expired();
    assert_eq!((t.get(&1), t.get(&2), t.entry_count()), (Some(1), None, 1));
    assert_eq!(t.stats().expirations, 1);
}
