//! The tenant registry: one [`TenantState`] per tenant id that has a live
//! handle or resident entries, and the generations that make
//! `invalidate_all` O(1).
//!
//! Every entry carries the 32-bit id (`tid`) of the tenant *generation* it
//! was written in. `Tenant::invalidate_all` gives the tenant a fresh tid, so
//! lookups stop matching the old entries at once; shards reclaim the dead
//! generation's entries incrementally. A tid goes back to the pool only when
//! its generation is dead and nothing holds it any more: no shard queue
//! that links one of its entries or tombstones, no load in flight.

use std::sync::{Arc, Weak};

use hashbrown::HashTable;

use crate::stats::{Counters, Event, Stats, Tally};
use crate::sync::Ordering::Relaxed;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering, RwLock};
use crate::tenant_id::{IdRef, TenantId, TenantKey};
use crate::thread_slot::ThreadSlot;

/// Hands out generation ids and takes back the ones no entry uses.
#[derive(Debug, Default)]
pub(crate) struct TidPool {
    next: u32,
    free: Vec<u32>,
}

impl TidPool {
    fn alloc(&mut self) -> u32 {
        if let Some(tid) = self.free.pop() {
            return tid;
        }
        // 2^32 generations alive at once would need far more memory than
        // their entries could ever occupy, so running out is not reachable.
        let tid = self.next;
        self.next = self.next.wrapping_add(1);
        tid
    }
}

/// Bit set in [`Generation::links`] once the generation is dead.
const DEAD: u64 = 1 << 63;

/// One lifetime of a tenant's data, between two `invalidate_all`s.
#[derive(Debug)]
pub(crate) struct Generation {
    pub(crate) tid: u32,
    pub(crate) tenant: Arc<TenantState>,
    /// What can still hold this generation's tid: its queues in shards
    /// (one per shard that holds any of its entries or tombstones) and its
    /// loads in flight; plus the DEAD bit. Counting queues, not entries,
    /// keeps this shared line out of inserts and evictions into a queue
    /// that already exists.
    links: AtomicU64,
    entries: AtomicU64,
    weight: AtomicU64,
    pool: Arc<Mutex<TidPool>>,
}

impl Generation {
    fn new(tenant: Arc<TenantState>, pool: Arc<Mutex<TidPool>>) -> Arc<Self> {
        let tid = pool.lock().alloc();
        Arc::new(Self {
            tid,
            tenant,
            links: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            weight: AtomicU64::new(0),
            pool,
        })
    }

    /// Counts one more holder (a new shard queue or a load in flight),
    /// unless the generation is dead: the check and the count are one
    /// atomic step, so a tid can never be recycled while a holder is being
    /// added under it.
    pub(crate) fn try_link(&self) -> bool {
        let mut cur = self.links.load(Ordering::Acquire);
        loop {
            if cur & DEAD != 0 {
                return false;
            }
            match self.links.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Counts one holder out; the last one out of a dead generation frees
    /// its tid.
    pub(crate) fn unlink(&self) {
        let prev = self.links.fetch_sub(1, Ordering::AcqRel);
        if prev == DEAD | 1 {
            self.recycle();
        }
    }

    /// Marks the generation dead; returns false if it already was.
    fn kill(&self) -> bool {
        let prev = self.links.fetch_or(DEAD, Ordering::AcqRel);
        if prev & DEAD != 0 {
            return false;
        }
        if prev == 0 {
            self.recycle();
        }
        true
    }

    fn recycle(&self) {
        self.pool.lock().free.push(self.tid);
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.links.load(Ordering::Acquire) & DEAD != 0
    }

    pub(crate) fn entries(&self) -> u64 {
        self.entries.load(Relaxed)
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Relaxed)
    }

    /// Adds signed changes to the entry count and weight (see `ledger`).
    pub(crate) fn adjust(&self, entries: i64, weight: i64) {
        crate::ledger::apply(&self.entries, entries);
        crate::ledger::apply(&self.weight, weight);
    }
}

/// Everything the cache keeps about one tenant.
pub(crate) struct TenantState {
    pub(crate) id: TenantId,
    /// The most weight this tenant holds, decided when its state is made.
    pub(crate) capacity: u64,
    hash: u64,
    /// The current generation's tid, read on every lookup.
    tid: AtomicU32,
    current: Mutex<Option<Arc<Generation>>>,
    handles: AtomicUsize,
    removed: AtomicBool,
    pub(crate) counters: Counters,
    totals: Arc<Counters>,
}

impl Drop for TenantState {
    fn drop(&mut self) {
        // A forgotten tenant's counts go to the cache's totals now that
        // nothing can count in them any more (see `Registry::forgotten`).
        if self.removed.load(Relaxed) {
            self.totals.absorb_tallies(&self.counters);
        }
    }
}

impl std::fmt::Debug for TenantState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantState")
            .field("id", &self.id)
            .field("tid", &self.tid())
            .finish_non_exhaustive()
    }
}

impl TenantState {
    #[inline]
    pub(crate) fn tid(&self) -> u32 {
        self.tid.load(Ordering::Acquire)
    }

    /// The current generation. `None` only after the tenant was removed
    /// from the registry, which cannot happen while a handle exists.
    pub(crate) fn generation(&self) -> Option<Arc<Generation>> {
        self.current.lock().clone()
    }

    /// Hits, misses, inserts and evictions (tenant evictions among them)
    /// are counted per tenant only; the cache's totals add them up when
    /// asked (see `Registry::totals`), which keeps each to one write of
    /// this thread's own counter.
    #[inline]
    pub(crate) fn tally(&self, t: Tally) {
        self.counters.tally(t);
    }

    /// `tally` in the stripe of `slot`, this thread's.
    #[inline]
    pub(crate) fn tally_in(&self, slot: ThreadSlot, t: Tally) {
        self.counters.tally_in(slot, t);
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.tally(Tally::Hit);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        self.tally(Tally::Miss);
    }

    pub(crate) fn record(&self, event: Event, n: u64) {
        self.counters.record(event, n);
        self.totals.record(event, n);
    }

    pub(crate) fn load_time(&self, d: std::time::Duration) {
        self.counters.load_time(d);
        self.totals.load_time(d);
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.counters.snapshot();
        if let Some(g) = self.generation() {
            s.entry_count = g.entries();
            s.weighted_size = g.weight();
        }
        s
    }

    /// One more handle, for a clone of an existing one (which keeps the
    /// tenant registered, so no registry lock is needed).
    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Relaxed);
    }

    /// Live handles. Reading 0 makes every write done through the
    /// dropped handles visible (see `Registry::release`), so the entry
    /// count read next includes them.
    pub(crate) fn handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }
}

const REGISTRY_SHARDS: usize = 16;

/// All tenants, keyed by id.
pub(crate) struct Registry {
    shards: Box<[RwLock<HashTable<Arc<TenantState>>>]>,
    hasher: ahash::RandomState,
    pool: Arc<Mutex<TidPool>>,
    /// Bumped on every generation death, so shards know when to look for
    /// dead queues to reclaim.
    deaths: AtomicU64,
    pub(crate) totals: Arc<Counters>,
    /// Tenants removed from the registry that something still holds: a
    /// generation waiting to be reclaimed, or a write in progress, can still
    /// count an eviction in them. Each adds its counts to `totals` when it
    /// is dropped, after the last of those; until then `totals()` reads
    /// them here.
    forgotten: Mutex<Forgotten>,
    caps: Caps,
}

/// A tenant's own cap, if it has one, from the builder's
/// `tenant_capacity_by`.
pub(crate) type CapOf = Arc<dyn Fn(&TenantId) -> Option<u64> + Send + Sync>;

/// How each tenant's cap is decided.
#[derive(Clone, Default)]
pub(crate) struct Caps {
    /// Of tenants that `by_tenant` gives none.
    pub(crate) default: u64,
    pub(crate) by_tenant: Option<CapOf>,
}

impl Caps {
    fn of(&self, id: &TenantId) -> u64 {
        self.by_tenant
            .as_ref()
            .and_then(|cap_of| cap_of(id))
            .unwrap_or(self.default)
    }
}

#[derive(Default)]
struct Forgotten {
    states: Vec<Weak<TenantState>>,
    /// Length at which to drop the entries of tenants already gone, so
    /// that pruning costs O(1) per forgotten tenant.
    prune_at: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tenants", &self.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry whose tenants may hold any weight.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_caps(Caps {
            default: u64::MAX,
            by_tenant: None,
        })
    }

    pub(crate) fn with_caps(caps: Caps) -> Self {
        Self {
            shards: (0..REGISTRY_SHARDS)
                .map(|_| RwLock::new(HashTable::new()))
                .collect(),
            hasher: crate::sync::new_hasher(),
            pool: Arc::new(Mutex::new(TidPool::default())),
            deaths: AtomicU64::new(0),
            totals: Arc::new(Counters::new()),
            forgotten: Mutex::new(Forgotten::default()),
            caps,
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<Arc<TenantState>>> {
        &self.shards[(hash >> 60) as usize % REGISTRY_SHARDS]
    }

    /// The tenant for `key`, created if needed, with one more handle counted.
    pub(crate) fn acquire(&self, key: TenantKey<'_>) -> Arc<TenantState> {
        let hash = self.hasher.hash_one(key.as_ref());
        let shard = self.shard(hash);
        let eq = |s: &Arc<TenantState>| s.id.as_ref() == key.as_ref();
        {
            let table = shard.read();
            if let Some(state) = table.find(hash, eq) {
                // Counted under the lock, so `try_remove` (which needs the
                // write lock) sees it.
                state.handles.fetch_add(1, Relaxed);
                return state.clone();
            }
        }
        // The cap may come from user code: decided before locking, so that
        // code never runs under the registry's lock.
        let id = key.into_owned();
        let capacity = self.caps.of(&id);
        let eq = |s: &Arc<TenantState>| s.id == id;
        let mut table = shard.write();
        if let Some(state) = table.find(hash, eq) {
            state.handles.fetch_add(1, Relaxed);
            return state.clone();
        }
        let state = Arc::new(TenantState {
            id,
            capacity,
            hash,
            tid: AtomicU32::new(0),
            current: Mutex::new(None),
            handles: AtomicUsize::new(1),
            removed: AtomicBool::new(false),
            counters: Counters::new(),
            totals: self.totals.clone(),
        });
        let generation = Generation::new(state.clone(), self.pool.clone());
        state.tid.store(generation.tid, Ordering::Release);
        *state.current.lock() = Some(generation);
        table.insert_unique(hash, state.clone(), |s| s.hash);
        state
    }

    /// Gives the tenant a new generation; the old one's entries become
    /// invisible at once. They are counted as invalidations one by one as
    /// shards reclaim them, not here: the old generation's entry count
    /// still misses the writes in progress (which settle their counts after
    /// unlocking their shard) and still holds entries those writes have
    /// just evicted, so counting it here would be off under racing writes.
    pub(crate) fn new_generation(&self, state: &Arc<TenantState>) {
        let mut current = state.current.lock();
        let Some(old) = current.take() else {
            return;
        };
        let fresh = Generation::new(state.clone(), self.pool.clone());
        state.tid.store(fresh.tid, Ordering::Release);
        *current = Some(fresh);
        drop(current);
        if old.kill() {
            self.deaths.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn deaths(&self) -> u64 {
        self.deaths.load(Ordering::Acquire)
    }

    /// One handle fewer; reclaims the tenant if it was the last and the
    /// tenant holds no entries.
    pub(crate) fn release(&self, state: &Arc<TenantState>) {
        // Handles are made per request, so most last-handle drops are of
        // tenants that keep entries: look before taking the write lock.
        // Release, so the writes made through this handle (whose settled
        // counts `try_remove` reads) happen before whoever sees the count
        // reach 0; acquire, for the same of the handles dropped before.
        if state.handles.fetch_sub(1, Ordering::AcqRel) == 1
            && state.generation().is_some_and(|g| g.entries() == 0)
        {
            self.try_remove(state);
        }
    }

    /// Removes an idle tenant (no handle, no entry) from the registry.
    pub(crate) fn try_remove(&self, state: &Arc<TenantState>) {
        let mut table = self.shard(state.hash).write();
        if state.handles() != 0 || state.removed.load(Relaxed) {
            return;
        }
        let Some(generation) = state.generation() else {
            return;
        };
        if generation.entries() != 0 {
            return;
        }
        if let Ok(slot) = table.find_entry(state.hash, |s| Arc::ptr_eq(s, state)) {
            slot.remove();
        }
        state.removed.store(true, Relaxed);
        *state.current.lock() = None;
        drop(table);
        let mut forgotten = self.forgotten.lock();
        if forgotten.states.len() >= forgotten.prune_at {
            forgotten.states.retain(|s| s.strong_count() > 0);
            forgotten.prune_at = (2 * forgotten.states.len()).max(16);
        }
        forgotten.states.push(Arc::downgrade(state));
        drop(forgotten);
        if generation.kill() {
            self.deaths.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn find(&self, id: IdRef<'_>) -> Option<Arc<TenantState>> {
        let hash = self.hasher.hash_one(id);
        self.shard(hash)
            .read()
            .find(hash, |s| s.id.as_ref() == id)
            .cloned()
    }

    /// The cache's totals: events as counted, striped counts summed over
    /// every tenant (forgotten ones included).
    pub(crate) fn totals(&self) -> Stats {
        let mut totals = self.totals.snapshot();
        let mut add = |state: &TenantState| {
            let [hits, misses, inserts, evictions, tenant_evictions] = state.counters.tallies();
            totals.hits += hits;
            totals.misses += misses;
            totals.inserts += inserts;
            totals.evictions += evictions;
            totals.tenant_evictions += tenant_evictions;
        };
        for shard in self.shards.iter() {
            for state in shard.read().iter() {
                add(state);
            }
        }
        let forgotten = self.forgotten.lock();
        for state in forgotten.states.iter().filter_map(Weak::upgrade) {
            add(&state);
        }
        drop(forgotten);
        totals
    }

    pub(crate) fn all(&self) -> Vec<Arc<TenantState>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(shard.read().iter().cloned());
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Generation ids waiting to be reused.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn free_tids(&self) -> Vec<u32> {
        self.pool.lock().free.clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // A tenant and its current generation point at each other; break
        // the cycle so both are freed with the cache.
        for shard in self.shards.iter() {
            for state in shard.read().iter() {
                state.current.lock().take();
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_dead_generation_gives_its_tid_back_only_when_empty() {
        let reg = Registry::new();
        let t = reg.acquire(TenantKey::from("a"));
        let g0 = t.generation().unwrap();
        assert!(g0.try_link());
        reg.new_generation(&t);
        assert!(g0.is_dead());
        assert!(!g0.try_link(), "a dead generation takes no new holders");
        assert!(
            reg.pool.lock().free.is_empty(),
            "tid still in use by a holder"
        );
        g0.unlink();
        assert_eq!(reg.pool.lock().free, vec![g0.tid]);
    }

    #[test]
    fn idle_tenants_leave_the_registry() {
        let reg = Registry::new();
        let t = reg.acquire(TenantKey::from(1u64));
        let again = reg.acquire(TenantKey::from(1u64));
        assert!(Arc::ptr_eq(&t, &again));
        assert_eq!(reg.len(), 1);
        reg.release(&t);
        assert_eq!(reg.len(), 1, "one handle is still live");
        reg.release(&again);
        assert_eq!(reg.len(), 0);
    }
}
