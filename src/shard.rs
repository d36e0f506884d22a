//! One shard: the entries whose hash lands here, their eviction queues and
//! the loads in flight for them, all behind one reader-scalable lock.
//!
//! Nothing here calls user code except `Hash`/`Eq`/`Clone` of keys and
//! values; every removal is handed back as a [`Removed`] so the caller can
//! run listeners and drop values after the lock is released. User `Eq` is
//! only ever called before the first mutation of an operation, so a
//! panicking `Eq` leaves the shard as it was.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::ghost::Ghost;
use crate::load::flight::Flight;
use crate::policy::{self, Queues, Step, MAX_FREQ};
use crate::registry::{Generation, TenantState};
use crate::removals::Removals;
use crate::slab::{Entry, Queue, Slab, Times, NIL};

/// Why an entry left the cache, as the cache sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    Expired,
    Evicted,
    TenantCapacity,
    Invalidated,
    Replaced,
    /// Reclaimed after its generation was dropped by `invalidate_all`;
    /// counted as invalidated now, as the listener hears of it.
    Reclaimed,
}

/// The generation a removed entry belonged to, kept alive until the entry
/// has been accounted and announced after unlock.
pub(crate) enum Owner<'w> {
    /// The generation of the write that removed the entry, which holds it
    /// for the whole write: the common case of an insert evicting its own
    /// tenant's coldest entry changes no reference count. Each change of
    /// that count is a locked instruction on a line every writer of the
    /// tenant shares.
    Writer(&'w Arc<Generation>),
    /// Any other generation, held here.
    Held(Arc<Generation>),
}

impl std::ops::Deref for Owner<'_> {
    type Target = Arc<Generation>;

    #[inline]
    fn deref(&self) -> &Arc<Generation> {
        match self {
            Owner::Writer(g) => g,
            Owner::Held(g) => g,
        }
    }
}

/// An entry that left a shard, to be accounted and announced after unlock.
pub(crate) struct Removed<'w, K, V> {
    pub(crate) generation: Owner<'w>,
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) weight: u64,
    pub(crate) why: Why,
    /// Whether the cache's totals and its generation's entry count still
    /// include it, so the caller must count it out (false for a replaced
    /// value, whose weight the insert accounts itself, and for a value
    /// refused at the door). Shards keep only their own counts.
    pub(crate) counted: bool,
}

/// The table hash for a stored 32-bit hash: spreads it over 64 bits so
/// hashbrown's bucket index (low bits) and tag (top 7 bits) both vary.
#[inline]
fn table_hash(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What an insert did.
pub(crate) enum Upsert<K, V> {
    /// A new entry, which the caller counts into the cache's and its
    /// generation's totals; the generation is returned for that and for cap
    /// enforcement.
    Inserted(Arc<Generation>),
    /// The key was present; the old value is returned, and the caller
    /// counts the change of weight.
    Replaced(Arc<Generation>, Displaced<K, V>),
    /// The tenant's generation changed under us (a concurrent
    /// `invalidate_all`); retry with the current one.
    Stale(K, V),
}

/// A value an insert replaced. It belongs to the generation the insert
/// writes into, which the write holds, so it leaves as a [`Removed`] that
/// borrows that generation.
pub(crate) struct Displaced<K, V> {
    key: K,
    value: V,
    weight: u64,
    why: Why,
}

impl<K, V> Displaced<K, V> {
    /// The replaced value as removed from `writer`, the write's own
    /// generation. The insert accounts the change of weight itself, so it
    /// is not counted out again.
    pub(crate) fn removed_from(self, writer: &Arc<Generation>) -> Removed<'_, K, V> {
        Removed {
            generation: Owner::Writer(writer),
            key: self.key,
            value: self.value,
            weight: self.weight,
            why: self.why,
            counted: false,
        }
    }
}

/// Tombstones tolerated before a shard compacts its queues.
const TOMBSTONE_SLACK: usize = 64;

pub(crate) struct ShardData<K, V> {
    table: HashTable<u32>,
    slab: Slab<K, V>,
    queues: Queues,
    ghost: Ghost,
    pub(crate) flights: HashTable<Arc<Flight<K, V>>>,
    /// Weight of all entries here, dead generations included.
    weight: u64,
    tombstones: usize,
    /// The registry's death count last time this shard looked for dead
    /// queues, and whether it found any then.
    deaths_seen: u64,
    has_dead: bool,
    /// Whether this shard has evicted yet; until then new entries skip the
    /// small FIFO (see the `policy` module).
    has_evicted: bool,
}

impl<K, V> ShardData<K, V> {
    /// One of a cache's `shards` shards.
    pub(crate) fn new(weighted: bool, shards: usize) -> Self {
        Self {
            table: HashTable::new(),
            slab: Slab::new(weighted),
            queues: Queues::default(),
            ghost: Ghost::new(shards),
            flights: HashTable::new(),
            weight: 0,
            tombstones: 0,
            deaths_seen: 0,
            has_dead: false,
            has_evicted: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.live()
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u32, tid: u32, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find_entry(hash, tid, key).map(|(idx, _)| idx)
    }

    /// The key's slot and entry: a reader looks at the entry it found
    /// without indexing the slab for it again.
    #[inline]
    fn find_entry<Q>(&self, hash: u32, tid: u32, key: &Q) -> Option<(u32, &Entry<K, V>)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slab = &self.slab;
        let mut found = None;
        self.table.find(table_hash(hash), |&i| {
            let e = slab.get(i);
            let hit = e.hash == hash && e.tid == tid && e.key.borrow() == key;
            if hit {
                found = Some((i, e));
            }
            hit
        })?;
        found
    }

    /// The live value for the key, marking it used. `now` is only called
    /// for entries that can expire.
    #[inline]
    pub(crate) fn get<Q>(
        &self,
        hash: u32,
        tid: u32,
        key: &Q,
        now: impl FnOnce() -> u64,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let (_, e) = self.find_live(hash, tid, key, now)?;
        touch(&e.freq);
        Some(e.value.clone())
    }

    /// The key's entry unless it has expired; `now` is only called for
    /// entries that can expire.
    #[inline]
    fn find_live<Q>(
        &self,
        hash: u32,
        tid: u32,
        key: &Q,
        now: impl FnOnce() -> u64,
    ) -> Option<(u32, &Entry<K, V>)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (idx, e) = self.find_entry(hash, tid, key)?;
        let expired = e.timed && self.slab.times(idx).expires_at <= now();
        (!expired).then_some((idx, e))
    }

    /// Like `get`, for loaders: also returns when the value was written.
    pub(crate) fn get_timed<Q>(&self, hash: u32, tid: u32, key: &Q, now: u64) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let (idx, e) = self.find_live(hash, tid, key, || now)?;
        touch(&e.freq);
        Some((e.value.clone(), self.slab.times(idx).written_at))
    }

    /// An expired value that expired no earlier than `not_before`.
    pub(crate) fn get_stale<Q>(&self, hash: u32, tid: u32, key: &Q, not_before: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let (idx, e) = self.find_entry(hash, tid, key)?;
        (!e.timed || self.slab.times(idx).expires_at >= not_before).then(|| e.value.clone())
    }

    pub(crate) fn contains<Q>(
        &self,
        hash: u32,
        tid: u32,
        key: &Q,
        now: impl FnOnce() -> u64,
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find_live(hash, tid, key, now).is_some()
    }

    /// The in-flight load for a key, if any.
    pub(crate) fn flight<Q>(&self, hash: u32, tid: u32, key: &Q) -> Option<&Arc<Flight<K, V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.flights.is_empty() {
            return None;
        }
        self.flights.find(table_hash(hash), |f| {
            f.hash as u32 == hash && f.tid == tid && f.key.borrow() == key
        })
    }

    pub(crate) fn add_flight(&mut self, flight: Arc<Flight<K, V>>) {
        self.flights
            .insert_unique(table_hash(flight.hash as u32), flight, |f| {
                table_hash(f.hash as u32)
            });
    }

    pub(crate) fn remove_flight(&mut self, flight: &Arc<Flight<K, V>>) {
        if let Ok(e) = self
            .flights
            .find_entry(table_hash(flight.hash as u32), |f| Arc::ptr_eq(f, flight))
        {
            e.remove();
            flight.generation.unlink();
        }
    }

    /// Tells a load in flight for this key that newer state exists, so its
    /// result must not be installed.
    fn supersede_flight<Q>(&self, hash: u32, tid: u32, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if let Some(f) = self.flight(hash, tid, key) {
            f.supersede();
        }
    }

    /// The queue for `tid` if its generation is still the tenant's current
    /// one, creating it if needed.
    #[inline]
    fn live_queue(&mut self, tenant: &TenantState, tid: u32) -> Option<usize> {
        if let Some(pos) = self.queues.find(tid) {
            let g = &self.queues.list[pos].generation;
            return (owned_by(g, tenant) && !g.is_dead()).then_some(pos);
        }
        // A new queue holds the generation's tid until it is removed (see
        // `Generation::links`).
        let generation = tenant.generation()?;
        (generation.tid == tid && generation.try_link()).then(|| self.queues.add(generation))
    }

    /// Inserts or replaces `key`'s value for generation `tid`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn upsert(
        &mut self,
        tenant: &TenantState,
        tid: u32,
        hash: u32,
        key: K,
        value: V,
        weight: u32,
        times: Option<Times>,
        now: u64,
    ) -> Upsert<K, V>
    where
        K: Eq,
    {
        // User `Eq` runs here, before anything changes.
        let existing = self.find(hash, tid, &key);
        self.supersede_flight(hash, tid, &key);
        let Some(pos) = self.live_queue(tenant, tid) else {
            return Upsert::Stale(key, value);
        };
        let generation = self.queues.list[pos].generation.clone();
        if let Some(idx) = existing {
            let old_weight = self.slab.weight(idx);
            let was_expired = self.slab.is_expired(idx, || now);
            let entry = self.slab.get_mut(idx);
            let old_value = std::mem::replace(&mut entry.value, value);
            entry.timed = times.is_some_and(|t| t.expires_at != u64::MAX);
            let queue = entry.queue;
            self.slab.set_weight(idx, weight);
            if let Some(t) = times {
                self.slab.set_times(idx, t);
            }
            let new_weight = u64::from(weight);
            let list = self.queues.list[pos].list(queue);
            list.weight = list.weight - old_weight + new_weight;
            self.weight = self.weight - old_weight + new_weight;
            let why = if was_expired {
                Why::Expired
            } else {
                Why::Replaced
            };
            return Upsert::Replaced(
                generation,
                Displaced {
                    key,
                    value: old_value,
                    weight: old_weight,
                    why,
                },
            );
        }
        let queue = if !self.has_evicted || self.ghost.admit_to_main(hash, self.slab.live()) {
            Queue::Main
        } else {
            Queue::Small
        };
        let entry = Entry {
            key,
            value,
            hash,
            tid,
            next: NIL,
            freq: AtomicU8::new(0),
            queue,
            timed: times.is_some_and(|t| t.expires_at != u64::MAX),
        };
        let idx = self.slab.alloc(entry, times, weight);
        let w = u64::from(weight);
        self.queues.list[pos]
            .list(queue)
            .push_back(&mut self.slab, idx, w);
        let slab = &self.slab;
        self.table
            .insert_unique(table_hash(hash), idx, |&i| table_hash(slab.get(i).hash));
        self.weight += w;
        Upsert::Inserted(generation)
    }

    /// Removes the key's entry, leaving a tombstone in its queue. `Err`
    /// if `tid` no longer belongs to `tenant` (read before a concurrent
    /// `invalidate_all`): the caller retries with the current one. An
    /// entry whose time to live had passed by `now` comes back as
    /// `Why::Expired`, the others as `Why::Invalidated`.
    pub(crate) fn remove<Q>(
        &mut self,
        tenant: &TenantState,
        hash: u32,
        tid: u32,
        key: &Q,
        now: u64,
    ) -> Result<Option<Removed<'static, K, V>>, Stale>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let idx = self.find(hash, tid, key);
        let pos = self.queues.find(tid);
        let owner = match pos {
            Some(pos) => Some(&self.queues.list[pos].generation),
            None => self.flight(hash, tid, key).map(|f| &f.generation),
        };
        if owner.is_some_and(|g| !owned_by(g, tenant)) {
            return Err(Stale);
        }
        self.supersede_flight(hash, tid, key);
        let (Some(idx), Some(pos)) = (idx, pos) else {
            return Ok(None);
        };
        let why = if self.slab.is_expired(idx, || now) {
            Why::Expired
        } else {
            Why::Invalidated
        };
        Ok(Some(self.take(idx, pos, why)))
    }

    /// Removes the entries of live generations that had expired by
    /// `expired_by` among slots `from..from + budget`; returns the slot the
    /// next call starts at, `None` once past the last. Entries of
    /// invalidated generations are left for reclaiming, which reports them
    /// as invalidated.
    pub(crate) fn remove_expired(
        &mut self,
        from: u32,
        budget: u32,
        expired_by: u64,
        out: &mut Removals<'_, K, V>,
    ) -> Option<u32> {
        let slots = self.slab.slots();
        let end = slots.min(from.saturating_add(budget));
        for idx in from..end {
            if !self.slab.is_occupied(idx) || !self.slab.is_expired(idx, || expired_by) {
                continue;
            }
            let pos = self.queues.find(self.slab.get(idx).tid);
            if let Some(pos) = pos.filter(|&p| !self.queues.list[p].generation.is_dead()) {
                out.push(self.take(idx, pos, Why::Expired));
            }
        }
        (end < slots).then_some(end)
    }

    /// Takes the entry at `idx`, of the queue at `pos`, out of the table
    /// and the counts, leaving a tombstone in its queue.
    fn take(&mut self, idx: u32, pos: usize, why: Why) -> Removed<'static, K, V> {
        let weight = self.slab.weight(idx);
        self.unindex(idx);
        let entry = self.slab.tombstone(idx);
        let q = &mut self.queues.list[pos];
        q.list(entry.queue).weight -= weight;
        let generation = Owner::Held(q.generation.clone());
        self.weight -= weight;
        self.tombstones += 1;
        self.maybe_compact();
        Removed {
            generation,
            key: entry.key,
            value: entry.value,
            weight,
            why,
            counted: true,
        }
    }

    #[inline]
    fn unindex(&mut self, idx: u32) {
        let h = table_hash(self.slab.get(idx).hash);
        if let Ok(e) = self.table.find_entry(h, |&i| i == idx) {
            e.remove();
        }
    }

    /// Frees tombstones once they outnumber live entries (amortized O(1)).
    #[inline]
    fn maybe_compact(&mut self) {
        // Asked after every eviction; the answer is almost always no.
        if self.tombstones >= TOMBSTONE_SLACK && self.tombstones >= self.slab.live() {
            self.compact();
        }
    }

    /// Frees every queue's tombstones and drops the queues left empty.
    #[cold]
    fn compact(&mut self) {
        for q in self.queues.list.iter_mut() {
            self.tombstones -= q.compact(&mut self.slab);
        }
        for pos in (0..self.queues.list.len()).rev() {
            self.queues.remove_if_empty(pos);
        }
    }

    /// Evicts one entry from the queue at `pos`, for the write into
    /// `writer` if there is one. `None` when the queue ran empty (and was
    /// dropped).
    fn evict_from<'w>(
        &mut self,
        pos: usize,
        now: u64,
        why: Why,
        writer: Option<&'w Arc<Generation>>,
    ) -> Option<Removed<'w, K, V>> {
        self.has_evicted = true;
        loop {
            let q = &mut self.queues.list[pos];
            match policy::step(q, &mut self.slab, &mut self.ghost, now) {
                Step::Empty => {
                    self.queues.remove_if_empty(pos);
                    return None;
                }
                Step::Tombstone(idx) => {
                    self.slab.release(idx);
                    self.tombstones -= 1;
                }
                Step::Evict { idx, expired } => {
                    // A dead generation's entries all leave as invalidated,
                    // expired or not: `invalidate_all` is what dropped them.
                    let why = if expired && why != Why::Reclaimed {
                        Why::Expired
                    } else {
                        why
                    };
                    return Some(self.take_out(pos, idx, why, writer));
                }
            }
        }
    }

    /// Removes an entry already unlinked from its queue, borrowing its
    /// generation from `writer` when it is the writer's.
    fn take_out<'w>(
        &mut self,
        pos: usize,
        idx: u32,
        why: Why,
        writer: Option<&'w Arc<Generation>>,
    ) -> Removed<'w, K, V> {
        let weight = self.slab.weight(idx);
        self.unindex(idx);
        let Some(entry) = self.slab.release(idx) else {
            unreachable!("evicted slot {idx} held no entry");
        };
        let queued = &self.queues.list[pos].generation;
        let generation = match writer {
            Some(w) if Arc::ptr_eq(w, queued) => Owner::Writer(w),
            _ => Owner::Held(queued.clone()),
        };
        self.weight -= weight;
        self.queues.remove_if_empty(pos);
        self.maybe_compact();
        Removed {
            generation,
            key: entry.key,
            value: entry.value,
            weight,
            why,
            counted: true,
        }
    }

    fn note_deaths(&mut self, deaths: u64) {
        if deaths != self.deaths_seen {
            self.deaths_seen = deaths;
            self.has_dead = true;
        }
    }

    fn dead_queue(&mut self) -> Option<usize> {
        if !self.has_dead {
            return None;
        }
        let pos = self.queues.dead();
        self.has_dead = pos.is_some();
        pos
    }

    /// Evicts one entry to relieve global pressure, for a write into
    /// `writer`: entries of dead generations first, then from a tenant
    /// holding at least its even share of this shard.
    pub(crate) fn evict_one<'w>(
        &mut self,
        now: u64,
        deaths: u64,
        writer: &'w Arc<Generation>,
    ) -> Option<Removed<'w, K, V>> {
        self.note_deaths(deaths);
        loop {
            if let Some(pos) = self.dead_queue() {
                if let Some(r) = self.evict_from(pos, now, Why::Reclaimed, None) {
                    return Some(r);
                }
                continue;
            }
            let pos = self.queues.fair_victim(self.weight)?;
            if let Some(r) = self.evict_from(pos, now, Why::Evicted, Some(writer)) {
                self.queues.advance_cursor();
                return Some(r);
            }
        }
    }

    /// Evicts one entry of the writer's generation (its tenant is over its
    /// cap).
    pub(crate) fn evict_tenant<'w>(
        &mut self,
        writer: &'w Arc<Generation>,
        now: u64,
    ) -> Option<Removed<'w, K, V>> {
        let pos = self.queues.find(writer.tid)?;
        self.evict_from(pos, now, Why::TenantCapacity, Some(writer))
    }

    /// Reclaims up to `budget` entries of dead generations.
    #[inline]
    pub(crate) fn reclaim_dead(
        &mut self,
        budget: usize,
        now: u64,
        deaths: u64,
        out: &mut Removals<'_, K, V>,
    ) {
        // Every write asks; almost every time nothing has died since the
        // last look, which this answers without a call.
        if self.has_dead || deaths != self.deaths_seen {
            self.reclaim_some(budget, now, deaths, out);
        }
    }

    #[inline(never)]
    fn reclaim_some(&mut self, budget: usize, now: u64, deaths: u64, out: &mut Removals<'_, K, V>) {
        self.note_deaths(deaths);
        for _ in 0..budget {
            let Some(pos) = self.dead_queue() else {
                return;
            };
            if let Some(r) = self.evict_from(pos, now, Why::Reclaimed, None) {
                out.push(r);
            }
        }
    }

    /// Checks every internal invariant; panics with a description if one
    /// does not hold. For tests and fuzzing.
    pub(crate) fn validate(&self) {
        let mut live = 0usize;
        let mut nodes = 0usize;
        let mut weight = 0u64;
        for q in &self.queues.list {
            assert!(q.nodes() > 0, "empty queue kept");
            nodes += q.nodes() as usize;
            weight += q.weight();
        }
        for q in &self.queues.list {
            for (list, kind) in [(&q.small, Queue::Small), (&q.main, Queue::Main)] {
                let (count, w) = self.walk(list_head(list), kind, q.generation.tid);
                assert_eq!(count.0 + count.1, list.len as usize, "list length");
                assert_eq!(w, list.weight, "list weight");
                live += count.0;
            }
        }
        assert_eq!(live, self.slab.live(), "queues and slab disagree");
        assert_eq!(live, self.table.len(), "table and slab disagree");
        assert_eq!(nodes - live, self.tombstones, "tombstone count");
        assert_eq!(weight, self.weight, "shard weight");
        assert!(
            self.tombstones < TOMBSTONE_SLACK || self.tombstones < self.slab.live(),
            "tombstones pile up: {} for {} live entries",
            self.tombstones,
            self.slab.live()
        );
    }

    fn walk(&self, mut cur: u32, kind: Queue, tid: u32) -> ((usize, usize), u64) {
        let (mut live, mut dead, mut w) = (0, 0, 0);
        while cur != NIL {
            if self.slab.is_tombstone(cur) {
                dead += 1;
            } else {
                let e = self.slab.get(cur);
                assert_eq!(e.queue, kind, "entry in the wrong queue");
                assert_eq!(e.tid, tid, "entry in another generation's queue");
                assert!(self.find_index(cur), "queued entry missing from table");
                live += 1;
                w += self.slab.weight(cur);
            }
            cur = self.slab.next(cur);
        }
        ((live, dead), w)
    }

    fn find_index(&self, idx: u32) -> bool {
        let h = table_hash(self.slab.get(idx).hash);
        self.table.find(h, |&i| i == idx).is_some()
    }
}

fn list_head(list: &policy::List) -> u32 {
    list.head()
}

/// A generation id read some time ago now belongs to another tenant.
pub(crate) struct Stale;

/// Whether `generation` is one of `tenant`'s (ids are recycled between
/// tenants once a generation is dead and empty).
fn owned_by(generation: &Generation, tenant: &TenantState) -> bool {
    std::ptr::eq(Arc::as_ptr(&generation.tenant), tenant)
}

/// Marks an entry used. Written only when the count changes, so entries
/// that are already hot cost readers no write at all.
///
/// A plain store, not a locked read-modify-write: readers hold the shard's
/// read lock, so only other readers race with it, and the worst they do is
/// lose an increment of a saturating hint (two readers that both read 1
/// both write 2), which a compare-exchange without retry lost as well.
#[inline]
fn touch(freq: &AtomicU8) {
    let f = freq.load(Relaxed);
    if f < MAX_FREQ {
        freq.store(f + 1, Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::tenant_id::TenantKey;

    /// A shard (one of eight) holding keys `0..n` of `tenant`'s current
    /// generation.
    fn shard_with(tenant: &TenantState, n: u32) -> ShardData<u32, u32> {
        let mut shard = ShardData::new(false, 8);
        for key in 0..n {
            let upsert = shard.upsert(tenant, tenant.tid(), key, key, key, 1, None, 0);
            assert!(matches!(upsert, Upsert::Inserted(_)), "key {key} is new");
        }
        shard
    }

    /// Keys 10 and 11 enter the small FIFO of a shard whose main holds
    /// 1..4, key 10 is used, main churns if `churn`, and the tenant evicts
    /// one entry, then another. Returns the queue key 10 is in after the
    /// first, and the two evicted keys.
    fn used_small_entry_after_an_eviction(churn: bool) -> (Queue, u32, u32) {
        let registry = Registry::new();
        let tenant = registry.acquire(TenantKey::from("a"));
        let writer = tenant.generation().expect("a new tenant has a generation");
        let mut shard = shard_with(&tenant, 4);
        let first = shard.evict_tenant(&writer, 0).expect("main holds four");
        assert_eq!(first.key, 0, "main's head leaves first");
        for key in [10, 11] {
            shard.upsert(&tenant, tenant.tid(), key, key, key, 1, None, 0);
            let idx = shard.find(key, tenant.tid(), &key).expect("inserted");
            assert_eq!(
                shard.slab.get(idx).queue,
                Queue::Small,
                "new after an eviction"
            );
        }
        assert_eq!(shard.get(10, tenant.tid(), &10, || 0), Some(10));
        if churn {
            let resident = shard.len();
            for hash in 1000..1008 {
                shard.ghost.evicted_from_main(hash, resident);
                shard.ghost.admit_to_main(hash, resident);
            }
            assert!(
                shard.ghost.main_churns(),
                "eight back from main, none from small"
            );
        }
        let evicted = shard
            .evict_tenant(&writer, 0)
            .expect("the tenant holds five");
        let idx = shard
            .find(10, tenant.tid(), &10)
            .expect("a used entry is not evicted while an unused one is queued behind it");
        let queue = shard.slab.get(idx).queue;
        let next = shard
            .evict_tenant(&writer, 0)
            .expect("the tenant holds four");
        (queue, evicted.key, next.key)
    }

    #[test]
    fn a_used_entry_of_the_small_fifo_moves_to_main() {
        // Then main's unused head leaves.
        assert_eq!(
            used_small_entry_after_an_eviction(false),
            (Queue::Main, 11, 1)
        );
    }

    #[test]
    fn a_used_entry_of_the_small_fifo_gets_another_lap_there_while_main_churns() {
        // Its use was cleared on the way round: the next eviction takes it.
        assert_eq!(
            used_small_entry_after_an_eviction(true),
            (Queue::Small, 11, 10)
        );
    }

    #[test]
    fn an_eviction_for_the_writers_own_generation_borrows_it() {
        let registry = Registry::new();
        let tenant = registry.acquire(TenantKey::from("a"));
        let mut shard = shard_with(&tenant, 4);
        let writer = tenant.generation().expect("a new tenant has a generation");
        let held = Arc::strong_count(&writer);
        for evicted in [
            shard.evict_tenant(&writer, 0),
            shard.evict_one(0, 0, &writer),
        ] {
            let removed = evicted.expect("the shard holds entries to evict");
            assert!(matches!(removed.generation, Owner::Writer(_)));
            assert!(Arc::ptr_eq(&removed.generation, &writer));
            assert_eq!(Arc::strong_count(&writer), held, "no reference taken");
        }
    }

    #[test]
    fn an_eviction_of_another_generation_holds_it() {
        let registry = Registry::new();
        let victim = registry.acquire(TenantKey::from("a"));
        let mut shard = shard_with(&victim, 4);
        let writer = registry
            .acquire(TenantKey::from("b"))
            .generation()
            .expect("a new tenant has a generation");
        let generation = victim.generation().expect("a new tenant has a generation");
        let held = Arc::strong_count(&generation);
        let removed = shard
            .evict_one(0, 0, &writer)
            .expect("tenant a's entries are the only ones to evict");
        assert!(matches!(removed.generation, Owner::Held(_)));
        assert!(Arc::ptr_eq(&removed.generation, &generation));
        assert_eq!(Arc::strong_count(&generation), held + 1);
        drop(removed);
        assert_eq!(Arc::strong_count(&generation), held);
    }
}
