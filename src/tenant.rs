//! [`Tenant`]: the handle every read and write goes through.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Inner, Store};
use crate::registry::TenantState;
use crate::stats::Stats;
use crate::tenant_id::TenantId;

/// One tenant's view of a [`Cache`](crate::Cache): every operation through
/// it reads and writes only this tenant's entries.
///
/// Made by [`Cache::tenant`](crate::Cache::tenant); cheap to make (one hash
/// lookup) and to clone. Clones are the same tenant.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tenant_cache::Cache;
///
/// let cache: Cache<String, u64> = Cache::new(1_000);
/// let acme = cache.tenant("acme");
///
/// acme.insert("visits".to_string(), 1);
/// acme.insert_with_ttl("session".to_string(), 42, Duration::from_secs(5));
/// assert_eq!(acme.get("visits"), Some(1));
/// assert!(acme.contains("session"));
/// assert!(acme.invalidate("visits"));
/// assert_eq!(acme.get("visits"), None);
///
/// let stats = acme.stats();
/// assert_eq!((stats.hits, stats.misses, stats.entry_count), (1, 1, 1));
/// ```
///
/// # Loading
///
/// [`get_with`](Tenant::get_with), [`try_get_with`](Tenant::try_get_with),
/// [`load`](Tenant::load) and [`refresh`](Tenant::refresh) fetch a missing
/// value through a loader you pass, and make sure concurrent callers share
/// one call of it:
///
/// - **Single flight.** Callers asking for the same missing key of the same
///   tenant while a load runs wait for that load instead of starting their
///   own: the loader runs once and every caller gets its result. Loads of
///   different keys, or of the same key for different tenants, run in
///   parallel; no lock is held while a loader runs.
/// - **Deadlines.** A load can carry a deadline (`load_timeout` on the
///   builder, or [`LoadRequest::timeout`](crate::LoadRequest::timeout)).
///   Waiters are strict: each returns at its own deadline, whatever the
///   loader is doing. The caller that runs the loader (the leader) is
///   cooperative: its loader runs on its own thread and learns its budget
///   from [`LoadCtx::remaining`](crate::LoadCtx::remaining); the cache
///   cannot interrupt it. A load that finishes after its waiters gave up
///   still installs its value for later callers.
/// - **Errors.** [`LoadError::Failed`](crate::LoadError::Failed) carries
///   the loader's error, the same `Arc` for everyone that shared the load;
///   failures are not cached. [`LoadError::Timeout`](crate::LoadError::Timeout)
///   means this caller's deadline passed first.
///   [`LoadError::Panicked`](crate::LoadError::Panicked) means the load it
///   waited on panicked. [`LoadError::Recursive`](crate::LoadError::Recursive)
///   means a loader asked for the key it is loading.
/// - **Panics.** A panicking loader's panic goes on to the caller whose
///   thread ran it. Its waiters return `Panicked` at once (`get_with`
///   waiters run the load themselves instead), and the next call loads
///   afresh: nothing stays locked or poisoned.
/// - **Newer state wins.** An `insert`, `invalidate`, `remove` or
///   `invalidate_all` that happens while a load of that key is in flight
///   wins: the load's result goes to its waiters but is not stored over the
///   newer state.
pub struct Tenant<K, V> {
    pub(crate) inner: Arc<Inner<K, V>>,
    pub(crate) state: Arc<TenantState>,
}

impl<K, V> Tenant<K, V> {
    pub(crate) fn new(inner: Arc<Inner<K, V>>, state: Arc<TenantState>) -> Self {
        Self { inner, state }
    }

    /// This tenant's id.
    pub fn id(&self) -> &TenantId {
        &self.state.id
    }

    /// The most weight this tenant holds: its own cap from
    /// [`tenant_capacity_by`](crate::CacheBuilder::tenant_capacity_by), or
    /// the cache's [`tenant_capacity`](crate::Cache::tenant_capacity).
    pub fn capacity(&self) -> u64 {
        self.state.capacity
    }

    /// This tenant's counters, entries and weight.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Entries this tenant holds, counting expired ones not removed yet
    /// (see [`Cache::reclaim_expired`](crate::Cache::reclaim_expired)).
    pub fn entry_count(&self) -> u64 {
        self.state.generation().map_or(0, |g| g.entries())
    }

    /// Weight this tenant holds, expired entries not removed yet
    /// included; never more than its [`capacity`](Tenant::capacity) once
    /// an insert has returned.
    pub fn weighted_size(&self) -> u64 {
        self.state.generation().map_or(0, |g| g.weight())
    }

    /// Drops every entry of this tenant, and only of this tenant, in O(1):
    /// from the moment this returns no thread sees them. The cache
    /// reclaims their memory incrementally on later writes (or at once
    /// with [`Cache::reclaim_invalidated`](crate::Cache::reclaim_invalidated));
    /// each counts in [`Stats::invalidations`](crate::Stats::invalidations),
    /// and reaches the eviction listener, as it is reclaimed.
    pub fn invalidate_all(&self) {
        self.inner.invalidate_tenant(&self.state);
    }
}

impl<K: Hash + Eq, V> Tenant<K, V> {
    /// The value for `key`, if this tenant has a live one.
    ///
    /// A hit writes no memory shared with other threads (except the use
    /// mark of an entry that has not been marked yet), allocates nothing,
    /// and hashes the key once.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.inner.get(&self.state, key)
    }

    /// The live value for `key` if there is one, counted as a hit; a miss
    /// is not counted, because the caller is expected to follow it with a
    /// loading call (`try_get_with`, `load`) that counts it. For servers
    /// that answer hits inline and move loads elsewhere:
    ///
    /// ```
    /// let cache: tenant_cache::Cache<u32, u32> = tenant_cache::Cache::new(10);
    /// let t = cache.tenant("a");
    /// let v = match t.cached(&1) {
    ///     Some(v) => v,
    ///     // e.g. on a blocking pool, off the executor:
    ///     None => t.try_get_with(1, |_| Ok::<_, ()>(10)).unwrap(),
    /// };
    /// assert_eq!((v, t.stats().hits, t.stats().misses), (10, 0, 1));
    /// ```
    #[inline]
    pub fn cached<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.inner.get_hit(&self.state, key)
    }

    /// The hash the cache files `key` under for this tenant; for tests of
    /// the hasher's seeding.
    #[doc(hidden)]
    pub fn debug_hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.inner.hash(self.state.tid(), key)
    }

    /// Whether this tenant has a live value for `key`. Counts neither hit
    /// nor miss and does not mark the entry used.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.contains(&self.state, key)
    }

    /// Stores `value` for `key`, replacing any previous value, with the
    /// cache's time to live.
    ///
    /// The entry may be evicted at once if the cache is full and the
    /// policy prefers what it holds; a value heavier than the capacity is
    /// not stored at all (the listener hears of it).
    pub fn insert(&self, key: K, value: V) {
        self.inner
            .store(&self.state, key, value, None, Store::Insert);
    }

    /// Like [`insert`](Tenant::insert), with a time to live for this entry
    /// only.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.inner
            .store(&self.state, key, value, Some(ttl), Store::Insert);
    }

    /// Removes this tenant's entry for `key`; returns whether it held a
    /// live value. The listener hears of it as
    /// [`Invalidated`](crate::RemovalCause::Invalidated), or as
    /// [`Expired`](crate::RemovalCause::Expired) if its time to live had
    /// passed (then this returns `false`, as [`contains`](Tenant::contains)
    /// would have). A load of `key` in flight no longer installs its value.
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(&self.state, key).is_some()
    }

    /// Like [`invalidate`](Tenant::invalidate), and hands the live value
    /// back instead of dropping it: `None` if there was none, or if it had
    /// expired. The listener sees the value before it is returned.
    ///
    /// ```
    /// let cache: tenant_cache::Cache<&str, String> = tenant_cache::Cache::new(10);
    /// let t = cache.tenant("a");
    /// t.insert("session", "token".to_string());
    /// assert_eq!(t.remove("session").as_deref(), Some("token"));
    /// assert_eq!(t.remove("session"), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(&self.state, key)
    }
}

impl<K, V> Clone for Tenant<K, V> {
    fn clone(&self) -> Self {
        self.state.add_handle();
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<K, V> Drop for Tenant<K, V> {
    fn drop(&mut self) {
        self.inner.registry.release(&self.state);
    }
}

impl<K, V> fmt::Debug for Tenant<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("id", self.id())
            .field("entry_count", &self.entry_count())
            .field("weighted_size", &self.weighted_size())
            .finish()
    }
}
