//! [`CacheBuilder`]: every setting of a cache, chosen once.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, Config, Inner, Listener, Weigher};
use crate::clock::{Clock, Time};
use crate::listener::RemovalCause;
use crate::load::{LoadDefaults, Retry};
use crate::registry::CapOf;
use crate::tenant_id::TenantId;

/// Most shards a cache can have.
pub const MAX_SHARDS: usize = 1 << 16;

/// By default a cache has no more than one shard per this many units of
/// `max_capacity`, rounded up to a power of two (see
/// [`CacheBuilder::shards`]).
///
/// Each shard runs its own eviction queues and remembers its own evicted
/// keys, and a shard of a dozen entries has too few to tell a key used
/// again from one seen once. Replaying the traces of the crate's
/// `hit_ratio` benchmark, caches of 100 entries in one shard (with a
/// memory of evicted keys as large as the cache) hit more often than in
/// eight on nine of ten traces, by up to 3.8 points, and 0.05 points less
/// on the tenth; `docs/performance-notes.md` gives the figures.
pub const ENTRIES_PER_SHARD: usize = 64;

/// Builds a [`Cache`]. Get one from [`Cache::builder`].
///
/// Every setting has a default: no capacity limit, `tenant_capacity` equal
/// to `max_capacity`, no expiry, weight 1 per entry, no listener, shards
/// from the number of cores and the capacity, and loads with no deadline
/// and no retry.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tenant_cache::{Cache, RemovalCause, Retry, TenantId};
///
/// let cache: Cache<String, Arc<Vec<u8>>> = Cache::builder()
///     .max_capacity(64 * 1024 * 1024) // bytes, with the weigher below
///     .tenant_capacity(8 * 1024 * 1024)
///     .weigher(|_key: &String, value: &Arc<Vec<u8>>| value.len().try_into().unwrap_or(u32::MAX))
///     .time_to_live(Duration::from_secs(300))
///     .eviction_listener(|tenant: &TenantId, key: &String, _v: &Arc<Vec<u8>>, cause: RemovalCause| {
///         if cause.was_evicted() {
///             eprintln!("{tenant}: {key} left ({cause:?})");
///         }
///     })
///     .load_timeout(Duration::from_millis(50))
///     .retry(Retry::attempts(2))
///     .stale_if_error(Duration::from_secs(60))
///     .shards(16)
///     .name("blobs")
///     .build();
/// assert_eq!(cache.name(), "blobs");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CacheBuilder<K, V> {
    max_capacity: u64,
    tenant_capacity: Option<u64>,
    tenant_caps: Option<CapOf>,
    ttl: Option<Duration>,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    shards: Option<usize>,
    name: String,
    metrics_per_tenant: bool,
    clock: Option<Arc<dyn Clock>>,
    load: LoadDefaults,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("tenant_capacity", &self.tenant_capacity)
            .field("tenant_capacity_by", &self.tenant_caps.is_some())
            .field("time_to_live", &self.ttl)
            .field("weigher", &self.weigher.is_some())
            .field("eviction_listener", &self.listener.is_some())
            .field("shards", &self.shards)
            .field("name", &self.name)
            .field("metrics_per_tenant", &self.metrics_per_tenant)
            .field("clock", &self.clock)
            .field("load", &self.load)
            .finish()
    }
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> CacheBuilder<K, V> {
    /// A builder with every setting at its default.
    pub fn new() -> Self {
        Self {
            max_capacity: u64::MAX,
            tenant_capacity: None,
            tenant_caps: None,
            ttl: None,
            weigher: None,
            listener: None,
            shards: None,
            name: String::from("default"),
            metrics_per_tenant: false,
            clock: None,
            load: LoadDefaults::default(),
            _types: PhantomData,
        }
    }

    /// The most weight the cache holds over all tenants (entries, unless a
    /// weigher is set). 0 stores nothing that weighs more than 0.
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = max_capacity;
        self
    }

    /// The most weight any one tenant holds. A tenant at its cap makes
    /// room by evicting its own entries, never another tenant's.
    pub fn tenant_capacity(mut self, tenant_capacity: u64) -> Self {
        self.tenant_capacity = Some(tenant_capacity);
        self
    }

    /// Gives some tenants a cap of their own: `cap_of` is asked for a
    /// tenant's cap when the cache first meets the tenant, and again when
    /// it meets it after forgetting it (a tenant with no handle and no
    /// entry is forgotten); `None` leaves the tenant at
    /// [`tenant_capacity`](CacheBuilder::tenant_capacity). A cap stays as
    /// it was decided while the cache remembers the tenant. Each tenant
    /// keeps within its own cap the way every tenant keeps within
    /// `tenant_capacity`, and all of them within `max_capacity`.
    ///
    /// `cap_of` runs on the thread that calls [`Cache::tenant`], with no
    /// lock held; a panic in it goes to that caller.
    ///
    /// ```
    /// use tenant_cache::{Cache, TenantId};
    ///
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .max_capacity(1_000)
    ///     .tenant_capacity(100)
    ///     .tenant_capacity_by(|id: &TenantId| (id.as_str() == Some("premium")).then_some(500))
    ///     .build();
    /// let (premium, basic) = (cache.tenant("premium"), cache.tenant("basic"));
    /// for k in 0..1_000 {
    ///     premium.insert(k, k);
    ///     basic.insert(k, k);
    /// }
    /// assert_eq!((premium.capacity(), basic.capacity()), (500, 100));
    /// assert_eq!((premium.entry_count(), basic.entry_count()), (500, 100));
    /// ```
    pub fn tenant_capacity_by(
        mut self,
        cap_of: impl Fn(&TenantId) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.tenant_caps = Some(Arc::new(cap_of));
        self
    }

    /// How long an entry lives after it is written, unless inserted with
    /// its own TTL. An expired entry is never returned; it is removed when
    /// eviction reaches it, when its key is written, or by
    /// [`Cache::reclaim_expired`](crate::Cache::reclaim_expired).
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How much of the capacity an entry takes (default 1). Called once
    /// per insert, never while a lock is held.
    ///
    /// A weight of 0 takes no capacity: such entries never make the cache
    /// or their tenant evict, so a cache whose entries all weigh 0 is
    /// unbounded. When heavier entries need room, an entry of weight 0
    /// is evicted in its queue's turn like any other, and reported to the
    /// eviction listener.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(weigher));
        self
    }

    /// Called for every entry that leaves the cache, with its tenant and
    /// the [`RemovalCause`]. Runs on the thread whose operation removed the
    /// entry, after every lock is released. A listener that panics unwinds
    /// through that operation and skips the rest of its notifications.
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&TenantId, &K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// How many shards to split the cache into; rounded up to a power of
    /// two and capped at [`MAX_SHARDS`]. Capacity is shared by all shards,
    /// so more shards cost no capacity. Each shard's lock takes one 128-byte
    /// line per reader slot (twice the cores, 4 to 32 slots, plus one),
    /// before any entry. Default: four per core, but no more than one per
    /// [`ENTRIES_PER_SHARD`] of `max_capacity` (rounded up to a power of
    /// two), so that a small cache is not split into shards too small for
    /// their eviction queues to tell hot keys from cold ones.
    ///
    /// Raise it when several threads write often: a reader that meets a
    /// writer in its shard waits for it, and more shards make that rarer.
    /// Every hit touches its shard's lock state, so more shards also cost
    /// hits some cache footprint. On the crate's `compare` benchmark (two
    /// cores), 64 shards instead of 8 made get-then-insert-on-miss on two
    /// threads 6–21% faster and pure hits 3–11% slower.
    ///
    /// # Panics
    ///
    /// If `shards` is 0.
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(
            shards > 0,
            "CacheBuilder::shards: a cache needs at least one shard"
        );
        self.shards = Some(shards.min(MAX_SHARDS).next_power_of_two());
        self
    }

    /// A name for the cache, used as the `cache` label of its metrics.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Label metrics with `tenant` too (cargo feature `metrics`): one
    /// series per tenant and metric. Off by default: a server with many
    /// tenants would flood its metrics store.
    pub fn metrics_per_tenant(mut self, per_tenant: bool) -> Self {
        self.metrics_per_tenant = per_tenant;
        self
    }

    /// The time source for expiry and deadlines (default: [`SystemClock`](crate::SystemClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Default deadline for `try_get_with`, `refresh` and `load(..).run`,
    /// counted from the call.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load.timeout = Some(timeout);
        self
    }

    /// Default retry policy for fallible loads.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.load.retry = retry;
        self
    }

    /// Keep serving an expired value for this long after it expired when a
    /// fallible load for its key fails or times out.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.load.stale_if_error = Some(window);
        self
    }

    /// When a loading call finds an entry older than this, the first such
    /// caller reloads it while the others keep getting the current value.
    pub fn refresh_after(mut self, age: Duration) -> Self {
        self.load.refresh_after = Some(age);
        self
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Builds the cache.
    pub fn build(self) -> Cache<K, V> {
        let shards = self
            .shards
            .unwrap_or_else(|| default_shards(self.max_capacity));
        let config = Config {
            max_capacity: self.max_capacity,
            tenant_capacity: self.tenant_capacity.unwrap_or(self.max_capacity),
            tenant_caps: self.tenant_caps,
            ttl: self.ttl,
            weigher: self.weigher,
            listener: self.listener,
            shards,
            name: self.name,
            metrics_per_tenant: self.metrics_per_tenant,
            time: Time::new(self.clock),
            load: self.load,
        };
        Cache {
            inner: Arc::new(Inner::new(config)),
        }
    }
}

fn default_shards(max_capacity: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_cores = (cores * 4).next_power_of_two().min(MAX_SHARDS);
    let by_capacity = usize::try_from(max_capacity / ENTRIES_PER_SHARD as u64)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_SHARDS)
        .next_power_of_two();
    by_cores.min(by_capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shards_follow_the_cores_up_to_one_per_64_entries() {
        let by_cores = default_shards(u64::MAX);
        assert!(by_cores.is_power_of_two() && by_cores <= MAX_SHARDS);
        assert_eq!(default_shards(0), 1, "an empty cache still needs a shard");
        assert_eq!(default_shards(100), 1, "one per 64 entries, at least one");
        assert_eq!(default_shards(200), by_cores.min(4), "3, rounded up");
        assert_eq!(default_shards(1 << 20), by_cores, "enough entries");
    }

    #[test]
    fn the_default_shard_count_reaches_the_cache_and_an_explicit_one_wins() {
        let small: Cache<u64, u64> = Cache::builder().max_capacity(100).build();
        assert_eq!(small.inner.shard_count(), 1);
        let chosen: Cache<u64, u64> = Cache::builder().max_capacity(100).shards(4).build();
        assert_eq!(chosen.inner.shard_count(), 4);
    }
}
