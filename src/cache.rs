//! The cache itself: shards, the tenant registry and the operations every
//! handle shares. [`Cache`] is the public face; [`Inner`] does the work.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::builder::CacheBuilder;
use crate::clock::Time;
use crate::ledger::{Ledger, Totals};
use crate::listener::RemovalCause;
use crate::load::flight::Flight;
use crate::load::LoadDefaults;
use crate::registry::{CapOf, Caps, Generation, Registry, TenantState};
use crate::removals::Removals;
use crate::shard::{Owner, Removed, ShardData, Upsert, Why};
use crate::slab::Times;
use crate::stats::{Event, Stats, Tally};
use crate::sync::{new_hasher, Mutex, RwLock, WriteGuard};
use crate::tenant::Tenant;
use crate::tenant_id::{TenantId, TenantKey};
use crate::thread_slot::{thread_slot, ThreadSlot};

pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type Listener<K, V> = Box<dyn Fn(&TenantId, &K, &V, RemovalCause) + Send + Sync>;

/// Dead-generation entries a write reclaims on its way, so memory dropped
/// by `invalidate_all` is given back a little at a time.
const RECLAIM_BUDGET: usize = 4;

/// Slots `Cache::reclaim_expired` looks at per shard lock: lookups queued
/// behind the sweep wait for one run, not for the whole shard.
const EXPIRY_SWEEP: u32 = 1024;

/// Where a value being stored comes from.
pub(crate) enum Store<'a, K, V> {
    /// A caller's `insert`: always the tenant's current generation.
    Insert,
    /// A load's result: only for the generation the load started in, and
    /// only if nothing newer happened to the key meanwhile.
    Load(&'a Arc<Flight<K, V>>),
}

/// A shard behind its lock, on its own cache lines.
type Shard<K, V> = CachePadded<RwLock<ShardData<K, V>>>;

pub(crate) struct Inner<K, V> {
    shards: Box<[Shard<K, V>]>,
    shard_mask: usize,
    hasher: ahash::RandomState,
    pub(crate) max_capacity: u64,
    pub(crate) tenant_capacity: u64,
    pub(crate) ttl: Option<Duration>,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    pub(crate) time: Time,
    pub(crate) name: Arc<str>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) metrics_per_tenant: bool,
    /// Written by inserts and evictions that do not cancel out; on lines of
    /// their own so those writes do not slow down hits, which read the
    /// fields around them.
    totals: CachePadded<Totals>,
    pub(crate) registry: Registry,
    pub(crate) load: LoadDefaults,
    /// Whether entries need timestamps (TTL or refresh).
    track_times: bool,
    /// Whether any entry was ever written with a timestamp. Until then a
    /// write has no expiry to check and skips reading the clock.
    times_written: AtomicBool,
    /// Taken by writers that found a cap exceeded after settling, so that
    /// they evict the excess one after another (see `Inner::enforce`).
    trimming: Mutex<()>,
}

/// Everything the builder decided, handed to [`Inner::new`].
pub(crate) struct Config<K, V> {
    pub(crate) max_capacity: u64,
    pub(crate) tenant_capacity: u64,
    pub(crate) tenant_caps: Option<CapOf>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) shards: usize,
    pub(crate) name: String,
    pub(crate) metrics_per_tenant: bool,
    pub(crate) time: Time,
    pub(crate) load: LoadDefaults,
}

impl<K, V> Inner<K, V> {
    pub(crate) fn new(c: Config<K, V>) -> Self {
        let weighted = c.weigher.is_some();
        let track_times = c.ttl.is_some() || c.load.refresh_after.is_some();
        Self {
            shards: (0..c.shards)
                .map(|_| CachePadded::new(RwLock::new(ShardData::new(weighted, c.shards))))
                .collect(),
            shard_mask: c.shards - 1,
            hasher: new_hasher(),
            max_capacity: c.max_capacity,
            tenant_capacity: c.tenant_capacity,
            ttl: c.ttl,
            weigher: c.weigher,
            listener: c.listener,
            time: c.time,
            name: Arc::from(c.name),
            metrics_per_tenant: c.metrics_per_tenant,
            totals: CachePadded::new(Totals::default()),
            registry: Registry::with_caps(Caps {
                default: c.tenant_capacity,
                by_tenant: c.tenant_caps,
            }),
            load: c.load,
            track_times,
            times_written: AtomicBool::new(track_times),
            trimming: Mutex::new(()),
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn weighted_size(&self) -> u64 {
        self.totals.weight.load(Relaxed)
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.totals.entries.load(Relaxed)
    }

    /// A ledger of the cache's totals, netting `generation`'s counts too.
    fn ledger<'a>(&'a self, generation: Option<&'a Generation>) -> Ledger<'a> {
        Ledger::new(&self.totals, generation)
    }

    /// The hash of `(generation, key)`: the key hashed once with the
    /// cache's random seed, then the generation mixed in with one multiply
    /// (so the same key under two tenants lands apart).
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, tid: u32, key: &Q) -> u64 {
        self.hasher.hash_one(key) ^ u64::from(tid).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Shard from bits 32.. of the hash; the low 32 bits are the entry's
    /// stored hash, which picks the bucket inside the shard.
    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &RwLock<ShardData<K, V>> {
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }

    /// The time for a write: read from the clock once any entry carries a
    /// timestamp, else 0 (nothing can have expired then, and the clock
    /// read is a good part of an insert's cost).
    fn write_stamp(&self, ttl: Option<Duration>) -> u64 {
        if !self.times_written.load(Relaxed) {
            if ttl.is_none() {
                return 0;
            }
            self.times_written.store(true, Relaxed);
        }
        self.time.now_stamp()
    }

    fn times_for(&self, ttl: Option<Duration>, now: u64) -> Option<Times> {
        let ttl = ttl.or(self.ttl);
        (self.track_times || ttl.is_some()).then(|| Times {
            expires_at: ttl.map_or(u64::MAX, |d| Time::after(now, d)),
            written_at: now,
        })
    }

    /// Takes a removed entry out of the counts (through the write's ledger)
    /// and counts why it left.
    #[inline]
    fn account(&self, r: &Removed<'_, K, V>, ledger: &mut Ledger<'_>) {
        if r.counted {
            ledger.removed(&r.generation, r.weight);
        }
        let tenant = &r.generation.tenant;
        match r.why {
            Why::Evicted => tenant.tally(Tally::Eviction),
            Why::TenantCapacity => {
                tenant.tally(Tally::Eviction);
                tenant.tally(Tally::TenantEviction);
            }
            Why::Expired => tenant.record(Event::Expiration, 1),
            Why::Invalidated | Why::Reclaimed => tenant.record(Event::Invalidation, 1),
            Why::Replaced => {}
        }
    }

    /// Runs after every lock is released: tells the listener, drops the
    /// removed values, and lets idle tenants go.
    pub(crate) fn finish(&self, removed: Removals<'_, K, V>) {
        // By reference, and all dropped at the end: moving each entry out
        // through the iterator costs more than the rest of this loop.
        removed.for_each(|r| self.report(r));
    }

    /// Tells the listener of one removed entry, and lets its tenant go if
    /// that was the last trace of an idle tenant.
    #[inline]
    fn report(&self, r: &Removed<'_, K, V>) {
        if let Some(listener) = &self.listener {
            listener(
                &r.generation.tenant.id,
                &r.key,
                &r.value,
                RemovalCause::of(r.why),
            );
        }
        let tenant = &r.generation.tenant;
        if tenant.handles() == 0 && tenant.generation().is_some_and(|g| g.entries() == 0) {
            self.registry.try_remove(tenant);
        }
    }

    pub(crate) fn invalidate_tenant(&self, state: &Arc<TenantState>) {
        self.registry.new_generation(state);
    }

    /// Reclaims a few entries of dead generations (never the generation a
    /// write is for, so they are counted out on a ledger of their own).
    fn reclaim(&self, shard: &mut ShardData<K, V>, now: u64, out: &mut Removals<'_, K, V>) {
        let start = out.len();
        shard.reclaim_dead(RECLAIM_BUDGET, now, self.registry.deaths(), out);
        if out.len() > start {
            let mut ledger = self.ledger(None);
            for r in out.since(start) {
                self.account(r, &mut ledger);
            }
        }
    }
}

impl<K: Hash + Eq, V> Inner<K, V> {
    #[inline]
    pub(crate) fn get<Q>(&self, state: &TenantState, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        // Read once for the shard lock and the stats stripe alike.
        let slot = thread_slot();
        let value = self.find_live(state, key, slot);
        let t = if value.is_some() {
            Tally::Hit
        } else {
            Tally::Miss
        };
        state.tally_in(slot, t);
        value
    }

    /// A hit, counted as one; a miss is left for the caller to count.
    #[inline]
    pub(crate) fn get_hit<Q>(&self, state: &TenantState, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let slot = thread_slot();
        let value = self.find_live(state, key, slot);
        if value.is_some() {
            state.tally_in(slot, Tally::Hit);
        }
        value
    }

    #[inline]
    fn find_live<Q>(&self, state: &TenantState, key: &Q, slot: ThreadSlot) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let tid = state.tid();
        let hash = self.hash(tid, key);
        let value = self
            .shard(hash)
            .read_on(slot)
            .get(hash as u32, tid, key, || self.time.now_stamp());
        // A generation id is recycled only after every entry of it is gone,
        // so an entry found under `tid` is this tenant's as long as `tid` is
        // still the tenant's generation after the lookup.
        value.filter(|_| state.tid() == tid)
    }

    pub(crate) fn contains<Q>(&self, state: &TenantState, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tid = state.tid();
        let hash = self.hash(tid, key);
        let found = self
            .shard(hash)
            .read()
            .contains(hash as u32, tid, key, || self.time.now_stamp());
        found && state.tid() == tid
    }

    fn weigh(&self, key: &K, value: &V) -> u32 {
        self.weigher.as_ref().map_or(1, |w| w(key, value))
    }

    /// Stores a value for the tenant. Returns whether it was installed.
    pub(crate) fn store(
        &self,
        state: &Arc<TenantState>,
        mut key: K,
        mut value: V,
        ttl: Option<Duration>,
        from: Store<'_, K, V>,
    ) -> bool {
        let weight = self.weigh(&key, &value);
        let w = u64::from(weight);
        if w > self.max_capacity || w > state.capacity {
            self.refuse(state, key, value, w, from);
            return false;
        }
        let now = self.write_stamp(ttl);
        let times = self.times_for(ttl, now);
        let mut out = Removals::new();
        let (guard, shard, generation, replaced) = loop {
            let tid = match from {
                Store::Insert => state.tid(),
                Store::Load(flight) => flight.tid,
            };
            let hash = self.hash(tid, &key);
            let shard = (hash >> 32) as usize & self.shard_mask;
            let mut g = self.shards[shard].write();
            if let Store::Load(flight) = from {
                g.remove_flight(flight);
                if flight.is_superseded() {
                    return false;
                }
            }
            self.reclaim(&mut g, now, &mut out);
            match g.upsert(state, tid, hash as u32, key, value, weight, times, now) {
                Upsert::Inserted(generation) => break (g, shard, generation, None),
                Upsert::Replaced(generation, old) => break (g, shard, generation, Some(old)),
                Upsert::Stale(k, v) => match from {
                    // The tenant was invalidated after this load started.
                    Store::Load(_) => {
                        drop(g);
                        self.finish(out);
                        return false;
                    }
                    Store::Insert => (key, value) = (k, v),
                },
            }
        };
        let mut ledger = self.ledger(Some(&generation));
        match replaced {
            None => ledger.added(w),
            Some(old) => {
                let old = old.removed_from(&generation);
                ledger.reweighed(old.weight, w);
                self.account(&old, &mut ledger);
                out.push(old);
            }
        }
        state.tally(Tally::Insert);
        self.enforce(shard, guard, &generation, &mut ledger, now, &mut out);
        drop(ledger);
        self.finish(out);
        true
    }

    /// An entry heavier than a capacity: not admitted. The key's old value
    /// goes too, so a reader never sees the value the caller replaced.
    fn refuse(&self, state: &Arc<TenantState>, key: K, value: V, w: u64, from: Store<'_, K, V>) {
        let now = self.time.now_stamp();
        let mut out = Removals::new();
        let tid = match from {
            Store::Insert => state.tid(),
            Store::Load(flight) => flight.tid,
        };
        let hash = self.hash(tid, &key);
        {
            let mut g = self.shard(hash).write();
            let superseded = match from {
                Store::Insert => false,
                Store::Load(flight) => {
                    g.remove_flight(flight);
                    flight.is_superseded()
                }
            };
            // The refused value is newer than the one stored, unless
            // something newer still happened during the load.
            if !superseded {
                if let Ok(Some(mut old)) = g.remove(state, hash as u32, tid, &key, now) {
                    if old.why == Why::Invalidated {
                        old.why = Why::Replaced;
                    }
                    self.account(&old, &mut self.ledger(None));
                    out.push(old);
                }
            }
        }
        let Some(generation) = state.generation() else {
            return;
        };
        state.tally(Tally::Eviction);
        let why = if w > self.max_capacity {
            Why::Evicted
        } else {
            state.tally(Tally::TenantEviction);
            Why::TenantCapacity
        };
        out.push(Removed {
            generation: Owner::Held(generation),
            key,
            value,
            weight: w,
            why,
            counted: false,
        });
        self.finish(out);
    }

    /// Brings the tenant back under its cap (evicting only its own
    /// entries) and the cache under `max_capacity`, starting in the shard
    /// just written and holding one shard lock at a time; settles the
    /// write's ledger.
    ///
    /// The first pass counts this write's own insert as pending. Inserts
    /// that other threads settle meanwhile are invisible to it, so writers
    /// that check at the same time may each evict nothing and, once all
    /// have settled, leave the cache over a cap. Every writer re-checks
    /// after settling, so the one that settles last sees the excess. Two
    /// writers can see the same excess, so they trim it in turns under
    /// `trimming`, each re-checking the settled counts first: the excess
    /// is evicted once, not once per writer that saw it.
    ///
    /// For the same reason the first pass evicts no more than this write
    /// added: an excess it sees beyond that was left by others, and may be
    /// being trimmed right now by a writer whose evictions have not settled
    /// yet. Evicting it here too would evict it twice.
    fn enforce<'a, 'w>(
        &'a self,
        mut shard: usize,
        guard: WriteGuard<'a, ShardData<K, V>>,
        generation: &'w Arc<Generation>,
        ledger: &mut Ledger<'_>,
        now: u64,
        out: &mut Removals<'w, K, V>,
    ) {
        let mut guard = Some(guard);
        let mut turn = None;
        loop {
            let (cap, trimming) = (generation.tenant.capacity, turn.is_some());
            self.evict_while(
                &mut shard,
                &mut guard,
                ledger,
                out,
                |l| (trimming || l.grows_own()) && l.own_weight() > cap,
                |g| g.evict_tenant(generation, now),
            );
            let deaths = self.registry.deaths();
            self.evict_while(
                &mut shard,
                &mut guard,
                ledger,
                out,
                |l| (trimming || l.grows_total()) && l.total_weight() > self.max_capacity,
                |g| g.evict_one(now, deaths, generation),
            );
            if turn.is_some() {
                pause(Pause::Trimmed);
                // Settled before the turn passes on, so the next writer
                // sees it.
                ledger.settle();
                return;
            }
            pause(Pause::BeforeSettle);
            ledger.settle();
            pause(Pause::AfterSettle);
            if self.within_caps(generation) {
                return;
            }
            // Never wait for the turn while holding a shard lock: the
            // writer whose turn it is may need that shard.
            drop(guard.take());
            turn = Some(self.trimming.lock());
            if self.within_caps(generation) {
                return;
            }
            guard = Some(self.shards[shard].write());
        }
    }

    fn within_caps(&self, generation: &Generation) -> bool {
        generation.weight() <= generation.tenant.capacity
            && self.weighted_size() <= self.max_capacity
    }

    /// Evicts with `evict` while `over` says the ledger's view is over a
    /// cap, moving to the next shard when one has nothing to give and
    /// giving up after a lap of shards that had nothing. `guard` is always
    /// `Some` between calls; it is `None` only while changing shards, so
    /// two shard locks are never held at once.
    fn evict_while<'a, 'w>(
        &'a self,
        shard: &mut usize,
        guard: &mut Option<WriteGuard<'a, ShardData<K, V>>>,
        ledger: &mut Ledger<'_>,
        out: &mut Removals<'w, K, V>,
        over: impl Fn(&Ledger<'_>) -> bool,
        mut evict: impl FnMut(&mut ShardData<K, V>) -> Option<Removed<'w, K, V>>,
    ) {
        let mut fruitless = 0;
        while over(ledger) && fruitless < self.shards.len() {
            let Some(g) = guard.as_mut() else { return };
            match evict(g) {
                Some(r) => {
                    self.account(&r, ledger);
                    out.push(r);
                    fruitless = 0;
                }
                None => {
                    *guard = None;
                    *shard = (*shard + 1) & self.shard_mask;
                    *guard = Some(self.shards[*shard].write());
                    fruitless += 1;
                }
            }
        }
    }

    /// Removes the tenant's entry for `key`; returns its value if it was
    /// live. An expired entry goes too, reported as expired.
    pub(crate) fn remove<Q>(&self, state: &TenantState, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.time.now_stamp();
        let mut out = Removals::new();
        let mut ledger = self.ledger(None);
        let removed = loop {
            let tid = state.tid();
            let hash = self.hash(tid, key);
            let mut g = self.shard(hash).write();
            if let Ok(removed) = g.remove(state, hash as u32, tid, key, now) {
                self.reclaim(&mut g, now, &mut out);
                break removed;
            }
        };
        if let Some(r) = &removed {
            self.account(r, &mut ledger);
        }
        drop(ledger);
        self.finish(out);
        // Told apart from the reclaimed entries so that its value can be
        // handed back once the listener has seen it.
        let r = removed?;
        self.report(&r);
        (r.why == Why::Invalidated).then_some(r.value)
    }

    /// Walks every shard and reclaims all entries of invalidated
    /// generations.
    pub(crate) fn reclaim_all(&self) {
        let now = self.time.now_stamp();
        for shard in self.shards.iter() {
            let mut out = Removals::new();
            loop {
                let before = out.len();
                let mut g = shard.write();
                self.reclaim(&mut g, now, &mut out);
                if out.len() == before {
                    break;
                }
            }
            self.finish(out);
        }
    }

    /// Walks every shard's slots, a run of `EXPIRY_SWEEP` per lock, and
    /// removes the expired entries of live generations that the builder's
    /// stale-if-error window no longer covers.
    pub(crate) fn reclaim_expired(&self) {
        if !self.times_written.load(Relaxed) {
            return; // no entry has ever carried a time to live
        }
        let now = self.time.now_stamp();
        // A load that fails may serve a value that expired up to `window`
        // ago (`expires_at >= now - window`): only older ones go.
        let expired_by = match self.load.stale_if_error {
            Some(window) => Time::before(now, window).saturating_sub(1),
            None => now,
        };
        for shard in self.shards.iter() {
            let mut from = Some(0);
            while let Some(start) = from {
                let mut out = Removals::new();
                from = shard
                    .write()
                    .remove_expired(start, EXPIRY_SWEEP, expired_by, &mut out);
                let mut ledger = self.ledger(None);
                out.for_each(|r| self.account(r, &mut ledger));
                drop(ledger);
                self.finish(out);
            }
        }
    }

    pub(crate) fn validate(&self) {
        let mut resident = 0;
        for shard in self.shards.iter() {
            let g = shard.write();
            g.validate();
            resident += g.len();
        }
        assert_eq!(resident as u64, self.entry_count(), "entry count");
    }
}

/// A sharded in-memory cache shared by many tenants.
///
/// All reads and writes go through a [`Tenant`] handle from
/// [`Cache::tenant`], which scopes them to one tenant: the same key under
/// two tenants is two entries, and no tenant can see, replace or invalidate
/// another's. The cache as a whole holds at most
/// [`max_capacity`](CacheBuilder::max_capacity) weight, and each tenant at
/// most [`tenant_capacity`](CacheBuilder::tenant_capacity).
///
/// `Cache` is a cheap handle: clones share the same cache.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tenant_cache::Cache;
///
/// let cache: Cache<String, String> = Cache::builder()
///     .max_capacity(10_000)
///     .tenant_capacity(2_000)
///     .time_to_live(Duration::from_secs(60))
///     .build();
///
/// let acme = cache.tenant("acme");
/// let globex = cache.tenant("globex");
/// acme.insert("greeting".to_string(), "hello".to_string());
/// globex.insert("greeting".to_string(), "bonjour".to_string());
///
/// assert_eq!(acme.get("greeting").as_deref(), Some("hello"));
/// assert_eq!(globex.get("greeting").as_deref(), Some("bonjour"));
///
/// acme.invalidate_all();
/// assert_eq!(acme.get("greeting"), None);
/// assert_eq!(globex.get("greeting").as_deref(), Some("bonjour"));
/// assert_eq!(cache.stats().hits, 3);
/// ```
pub struct Cache<K, V> {
    pub(crate) inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &&*self.inner.name)
            .field("max_capacity", &self.inner.max_capacity)
            .field("tenant_capacity", &self.inner.tenant_capacity)
            .field("shards", &self.inner.shard_count())
            .field("entry_count", &self.inner.entry_count())
            .field("weighted_size", &self.inner.weighted_size())
            .field("tenants", &self.inner.registry.len())
            .finish()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache holding at most `max_capacity` entries, with every other
    /// setting at its default. See [`Cache::builder`] for the rest.
    ///
    /// ```
    /// let cache: tenant_cache::Cache<u64, u64> = tenant_cache::Cache::new(10_000);
    /// cache.tenant(1u64).insert(1, 1);
    /// assert_eq!(cache.entry_count(), 1);
    /// ```
    pub fn new(max_capacity: u64) -> Self {
        CacheBuilder::new().max_capacity(max_capacity).build()
    }

    /// A builder for a cache with settings of your choice.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

impl<K, V> Cache<K, V> {
    /// The handle for one tenant, created on first use. Costs about one
    /// hash lookup: make one per request or per connection.
    ///
    /// A tenant that has no entries and no live handle is forgotten, so a
    /// server that sees millions of distinct tenants stays bounded.
    pub fn tenant<'a>(&self, id: impl Into<TenantKey<'a>>) -> Tenant<K, V> {
        let state = self.inner.registry.acquire(id.into());
        Tenant::new(self.inner.clone(), state)
    }

    /// Counters summed over every tenant, with the cache's resident entries
    /// and weight.
    pub fn stats(&self) -> Stats {
        let mut s = self.inner.registry.totals();
        s.entry_count = self.inner.entry_count();
        s.weighted_size = self.inner.weighted_size();
        s
    }

    /// Every tenant the cache currently knows (those with entries or live
    /// handles), with its stats, ordered by id.
    pub fn tenants(&self) -> Vec<(TenantId, Stats)> {
        let mut all: Vec<_> = self
            .inner
            .registry
            .all()
            .into_iter()
            .map(|t| (t.id.clone(), t.stats()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// One tenant's stats, without creating a handle; `None` if the cache
    /// does not know the tenant.
    pub fn tenant_stats<'a>(&self, id: impl Into<TenantKey<'a>>) -> Option<Stats> {
        let key = id.into();
        self.inner.registry.find(key.as_ref()).map(|t| t.stats())
    }

    /// Entries resident, over all tenants. Entries dropped by
    /// `invalidate_all` count until the cache reclaims them, and expired
    /// ones until it removes them (see
    /// [`reclaim_expired`](Cache::reclaim_expired)). Exact once
    /// writes have returned; a write in progress adds its changes when it
    /// finishes.
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Weight resident, over all tenants (see [`Cache::entry_count`]).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// The most weight the cache holds.
    pub fn max_capacity(&self) -> u64 {
        self.inner.max_capacity
    }

    /// The most weight one tenant holds, unless
    /// [`tenant_capacity_by`](CacheBuilder::tenant_capacity_by) gives it a
    /// cap of its own ([`Tenant::capacity`] tells).
    pub fn tenant_capacity(&self) -> u64 {
        self.inner.tenant_capacity
    }

    /// The builder's `name`, used as the `cache` label of metrics.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl<K: Hash + Eq, V> Cache<K, V> {
    /// Drops every tenant's entries. Like [`Tenant::invalidate_all`], O(1)
    /// per tenant: the entries become invisible at once and are reclaimed
    /// incrementally.
    pub fn invalidate_all(&self) {
        for state in self.inner.registry.all() {
            self.inner.invalidate_tenant(&state);
            if state.handles() == 0 {
                self.inner.registry.try_remove(&state);
            }
        }
    }

    /// Reclaims now, on this thread, every entry that `invalidate_all`
    /// dropped, instead of letting later writes do it a few at a time.
    /// O(entries dropped + shards).
    pub fn reclaim_invalidated(&self) {
        self.inner.reclaim_all();
    }

    /// Removes now, on this thread, every entry whose time to live has
    /// passed; the listener hears of each as
    /// [`Expired`](crate::RemovalCause::Expired).
    ///
    /// An expired entry is never returned, but until it is removed it
    /// keeps its memory and counts in [`entry_count`](Cache::entry_count)
    /// and [`weighted_size`](Cache::weighted_size). The cache removes one
    /// when eviction reaches it, when its key is written, invalidated or
    /// removed, or here; so a cache that is not full keeps its expired
    /// entries until this runs. Call it from a timer or a maintenance
    /// thread when that matters.
    ///
    /// With [`stale_if_error`](crate::CacheBuilder::stale_if_error) set,
    /// an entry stays until it has been expired for longer than that
    /// window, so a failing load can still serve it; a request's own
    /// longer window finds it only if nothing removed it before. Entries
    /// dropped by `invalidate_all` are left to
    /// [`reclaim_invalidated`](Cache::reclaim_invalidated).
    ///
    /// O(slots): it visits every slot of every shard, locking a shard for
    /// a run of at most 1,024 slots at a time, so lookups and writes go on
    /// between runs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenant_cache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .max_capacity(100)
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.tenant("a").insert(1, 1);
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.entry_count(), 1); // expired, not yet removed
    /// cache.reclaim_expired();
    /// assert_eq!((cache.entry_count(), cache.stats().expirations), (0, 1));
    /// ```
    pub fn reclaim_expired(&self) {
        self.inner.reclaim_expired();
    }

    /// Checks the cache's internal invariants (queues against table,
    /// weights, counts) and panics with a description if one fails.
    #[doc(hidden)]
    pub fn validate(&self) {
        self.inner.validate();
    }
}

/// The points of `Inner::enforce` where a test can hold a writer to make
/// writers meet there (see `tests`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    /// Between the capacity check that counts this write's own insert and
    /// the settle that makes it visible to other writers.
    BeforeSettle,
    /// Between the settle and the re-check of the settled counts.
    AfterSettle,
    /// After evicting an excess that other writers' inserts left, before
    /// settling those evictions.
    Trimmed,
}

/// Nothing outside unit tests.
#[cfg(any(not(test), loom))]
#[inline(always)]
fn pause(_at: Pause) {}

#[cfg(all(test, not(loom)))]
use tests::pause;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::RefCell;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    use super::{Cache, Pause};

    /// What a thread runs at each pause of its writes.
    type PauseHook = Box<dyn FnMut(Pause)>;

    thread_local! {
        static AT_PAUSE: RefCell<Option<PauseHook>> = RefCell::new(None);
    }

    pub(super) fn pause(at: Pause) {
        AT_PAUSE.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook(at);
            }
        });
    }

    /// Lets `parties` threads wait for each other, for at most `limit`;
    /// counts who arrived.
    struct Meeting {
        arrived: Mutex<usize>,
        all_here: Condvar,
        parties: usize,
        limit: Duration,
    }

    impl Meeting {
        fn attend(&self) {
            let deadline = Instant::now() + self.limit;
            let mut arrived = self.arrived.lock().unwrap();
            *arrived += 1;
            self.all_here.notify_all();
            while *arrived < self.parties {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                arrived = self.all_here.wait_timeout(arrived, left).unwrap().0;
            }
        }
    }

    /// Where a tenant-"a" key of `cache` lives.
    fn shard_of(cache: &Cache<u64, u64>, key: u64) -> usize {
        (cache.tenant("a").debug_hash(&key) >> 32) as usize & cache.inner.shard_mask
    }

    /// Two keys of tenant "a" that live in different shards.
    fn keys_in_two_shards(cache: &Cache<u64, u64>) -> (u64, u64) {
        let first = 0;
        let second = (1..)
            .find(|&k| shard_of(cache, k) != shard_of(cache, first))
            .unwrap();
        (first, second)
    }

    /// What a writer that has trimmed does before it settles, given its
    /// own key and the other writer's.
    type AtTrimmed = Arc<dyn Fn(u64, u64) + Send + Sync>;

    /// Two writers in different shards both check their cap before either
    /// settles, so each sees only its own insert pending and evicts
    /// nothing; then both settle before either re-checks, so both find the
    /// same excess. One of them must evict it, once: one entry is left, not
    /// none. A writer that has trimmed runs `at_trimmed`, then waits a
    /// little for the other to trim as well, which it would if both
    /// evicted the excess.
    /// Returns the entries left and how many writers reached each pause.
    fn writers_meeting_before_settle_leave(
        cache: &Cache<u64, u64>,
        at_trimmed: AtTrimmed,
    ) -> (usize, [usize; 3]) {
        let (k1, k2) = keys_in_two_shards(cache);
        let meeting = |limit| Meeting {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            parties: 2,
            limit,
        };
        let meetings = Arc::new([
            meeting(Duration::from_secs(5)),
            meeting(Duration::from_secs(5)),
            meeting(Duration::from_millis(200)),
        ]);
        std::thread::scope(|s| {
            for (key, other) in [(k1, k2), (k2, k1)] {
                let (tenant, meetings) = (cache.tenant("a"), Arc::clone(&meetings));
                let at_trimmed = Arc::clone(&at_trimmed);
                s.spawn(move || {
                    AT_PAUSE.with(|hook| {
                        *hook.borrow_mut() = Some(Box::new(move |at| {
                            if at == Pause::Trimmed {
                                at_trimmed(key, other);
                            }
                            meetings[at as usize].attend();
                        }));
                    });
                    tenant.insert(key, key);
                });
            }
        });
        let arrived = meetings.each_ref().map(|m| *m.arrived.lock().unwrap());
        (cache.entry_count() as usize, arrived)
    }

    fn nothing_more(_: u64, _: u64) {}

    fn two_shards_of_capacity_one() -> Cache<u64, u64> {
        Cache::builder().max_capacity(1).shards(2).build()
    }

    fn two_shards_with_a_tenant_cap_of_one() -> Cache<u64, u64> {
        Cache::builder()
            .max_capacity(100)
            .tenant_capacity(1)
            .shards(2)
            .build()
    }

    #[test]
    fn writers_that_checked_before_either_settled_leave_the_cache_within_max_capacity() {
        let cache = two_shards_of_capacity_one();
        assert_eq!(
            writers_meeting_before_settle_leave(&cache, Arc::new(nothing_more)),
            (1, [2, 2, 1]),
            "(entries left, writers that reached each pause)"
        );
        cache.validate();
    }

    #[test]
    fn writers_that_checked_before_either_settled_leave_the_tenant_within_its_cap() {
        let cache = two_shards_with_a_tenant_cap_of_one();
        assert_eq!(
            writers_meeting_before_settle_leave(&cache, Arc::new(nothing_more)),
            (1, [2, 2, 1]),
            "(entries left, writers that reached each pause)"
        );
        cache.validate();
    }

    /// While one writer trims the excess and has not settled its
    /// evictions, a third writer inserts into the other writer's shard and
    /// sees the excess too. It must evict only what it added; the excess is
    /// the trimmer's. The trimmer gives it at most 200 ms, as the third
    /// writer may wait for the trimmer's turn to end.
    fn a_third_writer_during_a_trim_leaves(cache: Cache<u64, u64>) -> (usize, [usize; 3]) {
        let beside = |other: u64| {
            (1..)
                .find(|&k| k != other && shard_of(&cache, k) == shard_of(&cache, other))
                .unwrap()
        };
        let (k1, k2) = keys_in_two_shards(&cache);
        let (beside_k1, beside_k2) = (beside(k1), beside(k2));
        let third = Arc::new(Mutex::new(None));
        let at_trimmed: AtTrimmed = {
            let (tenant, third) = (cache.tenant("a"), Arc::clone(&third));
            Arc::new(move |_own, other| {
                let key = if other == k1 { beside_k1 } else { beside_k2 };
                let (tenant, (done, finished)) = (tenant.clone(), std::sync::mpsc::channel());
                let writer = std::thread::spawn(move || {
                    tenant.insert(key, key);
                    let _ = done.send(());
                });
                let _ = finished.recv_timeout(Duration::from_millis(200));
                *third.lock().unwrap() = Some(writer);
            })
        };
        let left = writers_meeting_before_settle_leave(&cache, at_trimmed);
        let writer = third.lock().unwrap().take();
        writer.expect("a writer trimmed").join().unwrap();
        cache.validate();
        (cache.entry_count() as usize, left.1)
    }

    #[test]
    fn a_writer_that_sees_an_excess_being_trimmed_leaves_the_cache_full() {
        let cache = two_shards_of_capacity_one();
        assert_eq!(
            a_third_writer_during_a_trim_leaves(cache),
            (1, [2, 2, 1]),
            "(entries left, of the two racing writers those that reached each pause)"
        );
    }

    #[test]
    fn a_writer_that_sees_a_tenant_excess_being_trimmed_leaves_the_tenant_full() {
        let cache = two_shards_with_a_tenant_cap_of_one();
        assert_eq!(
            a_third_writer_during_a_trim_leaves(cache),
            (1, [2, 2, 1]),
            "(entries left, of the two racing writers those that reached each pause)"
        );
    }

    /// A generation's id is held by the shard queues that still link any
    /// of its entries or tombstones: it is reused only once the last of
    /// them is gone, and then it is.
    #[test]
    fn an_invalidated_generations_id_is_freed_once_its_last_queue_is_reclaimed() {
        let cache: Cache<u64, u64> = Cache::builder().max_capacity(1_000).shards(4).build();
        let t = cache.tenant("a");
        for k in 0..100 {
            t.insert(k, k);
        }
        t.invalidate(&7); // a tombstone, still linked in its queue
        let first = t.state.tid();
        t.invalidate_all();
        t.insert(1_000, 0);
        let free = || cache.inner.registry.free_tids();
        assert!(
            !free().contains(&first),
            "entries of the invalidated generation still hold its id"
        );
        cache.reclaim_invalidated();
        cache.validate();
        assert_eq!(free(), vec![first], "reclaimed, so its id is free");
        assert_eq!(t.get(&1_000), Some(0), "the live generation is untouched");
    }
}
