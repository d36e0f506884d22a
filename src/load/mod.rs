//! Loading through the cache: single flight per `(tenant, key)`, deadlines,
//! retry, fallback, stale-if-error and refresh.
//!
//! The protocol, for a miss:
//! 1. Under the shard's write lock, look for the key's flight in the
//!    shard's in-flight table. Found: if this thread leads it, that is a
//!    recursion; otherwise release the lock and park on it until it ends
//!    or this caller's deadline passes.
//! 2. Not found: add a flight, release the lock, run the loader with no
//!    lock held (retrying per policy).
//! 3. On success, take the write lock, remove the flight and install the
//!    value unless the flight was superseded or the tenant's generation
//!    died; then publish the outcome and wake every waiter.
//!
//! A guard publishes `Panicked` and clears the flight if the leader
//! unwinds, so a panicking loader cannot strand its waiters.

pub(crate) mod flight;

mod ctx;
mod error;
mod request;
mod retry;

use std::convert::Infallible;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use ctx::LoadCtx;
pub use error::LoadError;
pub use request::LoadRequest;
pub use retry::Retry;

use crate::cache::Store;
use crate::clock::Time;
use crate::registry::TenantState;
use crate::stats::Event;
use crate::tenant::Tenant;
use flight::{Flight, Outcome};

/// Load settings chosen on the builder.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoadDefaults {
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Retry,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) refresh_after: Option<Duration>,
}

type Fallback<'f, V, E> = Box<dyn FnOnce(&LoadError<E>) -> Option<V> + 'f>;

/// How one call loads.
pub(crate) struct Policy<'f, V, E> {
    /// Counted from the first moment the call needs a deadline (a miss),
    /// so hits never read the clock for it.
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    retry: Retry,
    stale_if_error: Option<Duration>,
    fallback: Option<Fallback<'f, V, E>>,
    /// Reload even if a value is present (`refresh`).
    force: bool,
    /// After the shared load panicked, load again instead of failing
    /// (`get_with`, which has no error to return).
    rerun_on_panic: bool,
}

impl<V, E> Policy<'_, V, E> {
    fn defaults(d: &LoadDefaults) -> Self {
        Policy {
            timeout: d.timeout,
            deadline: None,
            retry: d.retry,
            stale_if_error: d.stale_if_error,
            fallback: None,
            force: false,
            rerun_on_panic: false,
        }
    }

    /// The call's deadline, fixing a timeout to an instant on first use.
    fn deadline(&mut self, time: &Time) -> Option<Instant> {
        if let Some(timeout) = self.timeout.take() {
            // A timeout too large for `Instant` means no deadline.
            if let Some(at) = time.now().checked_add(timeout) {
                self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
            }
        }
        self.deadline
    }
}

/// One call's lookup, counted once, as a hit or a miss, however many passes
/// the call takes: a waiter that counted a miss and, after the load it
/// joined panicked or failed with another error type, finds a value on its
/// next pass has still made one lookup. Likewise a call that joins a
/// second load after the first one panicked counts as one coalesced call.
struct Lookup<'a> {
    state: &'a TenantState,
    counted: bool,
    joined: bool,
}

impl Lookup<'_> {
    fn joined(&mut self) {
        if !std::mem::replace(&mut self.joined, true) {
            self.state.record(Event::Coalesced, 1);
        }
    }

    fn hit(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.state.hit();
        }
    }

    fn miss(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.state.miss();
        }
    }
}

/// Publishes `Panicked` and clears the flight if the leader unwinds before
/// publishing an outcome.
struct LeaderGuard<'a, K: Hash + Eq, V> {
    tenant: &'a Tenant<K, V>,
    flight: &'a Arc<Flight<K, V>>,
}

impl<K: Hash + Eq, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        if !self.flight.is_pending() {
            return;
        }
        self.tenant.state.record(Event::LoadFailure, 1);
        self.tenant.state.record(Event::LoadPanic, 1);
        self.tenant
            .inner
            .shard(self.flight.hash)
            .write()
            .remove_flight(self.flight);
        self.flight.complete(Outcome::Panicked);
    }
}

impl<K, V> Tenant<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// The value for `key`, computing it with `init` on a miss.
    ///
    /// Concurrent callers for the same missing key share one call of
    /// `init`; the others wait for it (with no deadline: `init` cannot
    /// fail). If the `init` they wait on panics, a waiter runs its own.
    ///
    /// # Panics
    ///
    /// If `init` panics, on the thread that ran it. If `init` asks this
    /// tenant for `key` itself (a recursive load), with a message saying
    /// so, instead of hanging.
    ///
    /// ```
    /// let cache: tenant_cache::Cache<u32, String> = tenant_cache::Cache::new(100);
    /// let t = cache.tenant("a");
    /// assert_eq!(t.get_with(1, || "one".to_string()), "one");
    /// assert_eq!(t.get_with(1, || unreachable!()), "one");
    /// ```
    #[inline]
    pub fn get_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        if let Some(v) = self.plain_hit(&key) {
            return v;
        }
        self.get_with_miss(key, init)
    }

    /// `get_with` past its hit check, kept out of line so that a hit
    /// costs what a `get` costs.
    #[inline(never)]
    fn get_with_miss(&self, key: K, init: impl FnOnce() -> V) -> V {
        let mut init = Some(init);
        let policy = Policy {
            timeout: None,
            deadline: None,
            retry: Retry::NONE,
            stale_if_error: None,
            fallback: None,
            force: false,
            rerun_on_panic: true,
        };
        let loader = |_: &LoadCtx<'_, K>| match init.take() {
            Some(f) => Ok::<V, Infallible>(f()),
            None => unreachable!("get_with calls its init at most once"),
        };
        match self.run(key, policy, loader) {
            Ok(v) => v,
            Err(LoadError::Recursive) => panic!(
                "tenant-cache: get_with's init asked for the key it is loading \
                 (a recursive load of the same tenant and key on one thread)"
            ),
            Err(_) => unreachable!("get_with has no deadline and cannot fail"),
        }
    }

    /// The value for `key`, loading it with `loader` on a miss, with the
    /// cache's default deadline, retry and stale-if-error settings.
    ///
    /// See the [loading rules](Tenant#loading). Use [`load`](Tenant::load)
    /// to choose a deadline, retry or fallback for one call.
    ///
    /// ```
    /// use tenant_cache::{Cache, LoadError};
    ///
    /// let cache: Cache<u32, String> = Cache::new(100);
    /// let t = cache.tenant("a");
    /// let v = t.try_get_with(7, |ctx| Ok::<_, std::io::Error>(format!("row {}", ctx.key())));
    /// assert_eq!(v.unwrap(), "row 7");
    ///
    /// let err = t.try_get_with(8, |_| Err("backend down")).unwrap_err();
    /// assert!(matches!(err, LoadError::Failed(e) if *e == "backend down"));
    /// ```
    #[inline]
    pub fn try_get_with<E, F>(&self, key: K, loader: F) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: FnMut(&LoadCtx<'_, K>) -> Result<V, E>,
    {
        if let Some(v) = self.plain_hit(&key) {
            return Ok(v);
        }
        self.run(key, Policy::defaults(&self.inner.load), loader)
    }

    /// A load of `key` with its own deadline, retry and fallback; finish
    /// with [`run`](LoadRequest::run).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenant_cache::{Cache, Retry};
    ///
    /// let cache: Cache<u32, String> = Cache::new(100);
    /// let t = cache.tenant("a");
    /// let v = t
    ///     .load(1)
    ///     .timeout(Duration::from_millis(50))
    ///     .retry(Retry::attempts(3).backoff(Duration::from_millis(1)))
    ///     .fallback(|_err| Some("default".to_string()))
    ///     .run(|_ctx| Err::<String, _>("unavailable"))
    ///     .unwrap();
    /// assert_eq!(v, "default");
    /// ```
    pub fn load<E>(&self, key: K) -> LoadRequest<'_, K, V, E> {
        LoadRequest::new(self, key)
    }

    /// Loads `key` now even if a value is present. Until the new value is
    /// in, everyone else keeps getting the current one; if the load fails,
    /// the current value stays.
    pub fn refresh<E, F>(&self, key: K, loader: F) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: FnMut(&LoadCtx<'_, K>) -> Result<V, E>,
    {
        let mut policy = Policy::defaults(&self.inner.load);
        policy.force = true;
        self.run(key, policy, loader)
    }

    /// A hit by the same path as `get`, unless entries may need a refresh
    /// (then `run` looks at their age). Misses are left to `run`.
    #[inline]
    pub(crate) fn plain_hit(&self, key: &K) -> Option<V> {
        if self.inner.load.refresh_after.is_some() {
            return None;
        }
        self.inner.get_hit(&self.state, key)
    }

    fn refresh_due(&self, written_at: u64, now: u64) -> bool {
        self.inner.load.refresh_after.is_some_and(|age| {
            let age = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
            now.saturating_sub(written_at) >= age
        })
    }

    /// Single flight: find the value, join the key's load, or lead one.
    #[inline(never)]
    pub(crate) fn run<E, F>(
        &self,
        key: K,
        mut policy: Policy<'_, V, E>,
        mut loader: F,
    ) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: FnMut(&LoadCtx<'_, K>) -> Result<V, E>,
    {
        let inner = &*self.inner;
        let state = &self.state;
        let mut lookup = Lookup {
            state,
            counted: false,
            joined: false,
        };
        loop {
            let tid = state.tid();
            let hash = inner.hash(tid, &key);
            let h32 = hash as u32;
            let shard = inner.shard(hash);
            // The value being refreshed, served to everyone but the leader.
            let mut current = None;
            if !policy.force {
                let g = shard.read();
                let found = if inner.load.refresh_after.is_some() {
                    let now = inner.time.now_stamp();
                    g.get_timed(h32, tid, &key, now)
                        .map(|(v, written)| (v, self.refresh_due(written, now)))
                } else {
                    // The common case: the clock is read only for entries
                    // that can expire, as in `get`.
                    g.get(h32, tid, &key, || inner.time.now_stamp())
                        .map(|v| (v, false))
                };
                if let Some((v, due)) = found {
                    if !due || g.flight(h32, tid, &key).is_some() {
                        drop(g);
                        if state.tid() != tid {
                            continue;
                        }
                        lookup.hit();
                        return Ok(v);
                    }
                    current = Some(v);
                }
            }
            let now = inner.time.now_stamp();
            let mut g = shard.write();
            // Generation ids are recycled between tenants: what this lock
            // guards is this tenant's only if `tid` still is its generation.
            if state.tid() != tid {
                continue;
            }
            if !policy.force && current.is_none() {
                if let Some((v, written)) = g.get_timed(h32, tid, &key, now) {
                    if !self.refresh_due(written, now) {
                        drop(g);
                        lookup.hit();
                        return Ok(v);
                    }
                    current = Some(v);
                }
            }
            if let Some(flight) = g.flight(h32, tid, &key) {
                if flight.led_by_current_thread() {
                    return Err(LoadError::Recursive);
                }
                let flight = flight.clone();
                drop(g);
                if let Some(v) = current {
                    // Someone else is refreshing it: keep serving this one.
                    lookup.hit();
                    return Ok(v);
                }
                lookup.miss();
                lookup.joined();
                match flight.wait(policy.deadline(&inner.time), &inner.time) {
                    None => return self.recover(&key, LoadError::Timeout, &mut policy),
                    Some(Outcome::Value(v)) => return Ok(v),
                    Some(Outcome::Failed(e)) => match e.downcast::<E>() {
                        Ok(e) => return self.recover(&key, LoadError::Failed(e), &mut policy),
                        // A loader with another error type failed; this
                        // caller's own loader gets its turn.
                        Err(_) => continue,
                    },
                    Some(Outcome::Panicked) if policy.rerun_on_panic => continue,
                    Some(Outcome::Panicked) => {
                        return self.recover(&key, LoadError::Panicked, &mut policy)
                    }
                    Some(Outcome::Pending) => unreachable!("wait returns finished outcomes"),
                }
            }
            // The flight pins its generation (see `Flight::generation`).
            let Some(generation) = state.generation().filter(|g| g.tid == tid && g.try_link())
            else {
                continue;
            };
            let flight = Flight::new(key.clone(), hash, generation);
            g.add_flight(flight.clone());
            drop(g);
            if current.is_some() {
                lookup.hit();
            } else {
                lookup.miss();
            }
            return self.lead(key, &flight, current, &mut policy, &mut loader);
        }
    }

    /// Runs the loader (with retries) as the key's leader and publishes
    /// the outcome.
    fn lead<E, F>(
        &self,
        key: K,
        flight: &Arc<Flight<K, V>>,
        current: Option<V>,
        policy: &mut Policy<'_, V, E>,
        loader: &mut F,
    ) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: FnMut(&LoadCtx<'_, K>) -> Result<V, E>,
    {
        let inner = &*self.inner;
        let deadline = policy.deadline(&inner.time);
        let _guard = LeaderGuard {
            tenant: self,
            flight,
        };
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let ctx = LoadCtx {
                key: &key,
                tenant: &self.state.id,
                deadline,
                attempt,
                time: &inner.time,
            };
            self.state.record(Event::Load, 1);
            let started = Instant::now();
            let outcome = loader(&ctx);
            let took = started.elapsed();
            self.state.load_time(took);
            #[cfg(feature = "metrics")]
            crate::metrics::record_load_time(inner, &self.state.id, took);
            match outcome {
                Ok(v) => break Ok(v),
                Err(e) if attempt >= policy.retry.max_attempts() => break Err(e),
                Err(e) => {
                    let pause = policy.retry.delay(attempt + 1);
                    match deadline {
                        None => std::thread::sleep(pause),
                        Some(deadline) => {
                            let now = inner.time.now();
                            if now >= deadline {
                                break Err(e);
                            }
                            std::thread::sleep(pause.min(deadline - now));
                            if inner.time.now() >= deadline {
                                break Err(e);
                            }
                        }
                    }
                }
            }
        };
        match result {
            Ok(v) => {
                self.state.record(Event::LoadSuccess, 1);
                inner.store(&self.state, key, v.clone(), None, Store::Load(flight));
                flight.complete(Outcome::Value(v.clone()));
                Ok(v)
            }
            Err(e) => {
                self.state.record(Event::LoadFailure, 1);
                let e = Arc::new(e);
                inner.shard(flight.hash).write().remove_flight(flight);
                flight.complete(Outcome::Failed(e.clone()));
                match current {
                    // A failed refresh keeps the current value.
                    Some(v) => Ok(v),
                    None => self.recover(&key, LoadError::Failed(e), policy),
                }
            }
        }
    }

    /// After a failed or late load: a stale value if allowed and present,
    /// else the fallback's value, else the error.
    fn recover<E>(
        &self,
        key: &K,
        err: LoadError<E>,
        policy: &mut Policy<'_, V, E>,
    ) -> Result<V, LoadError<E>> {
        let inner = &*self.inner;
        if err.is_timeout() {
            self.state.record(Event::LoadTimeout, 1);
        }
        if let Some(window) = policy.stale_if_error {
            let tid = self.state.tid();
            let hash = inner.hash(tid, key);
            let not_before = Time::before(inner.time.now_stamp(), window);
            let stale = inner
                .shard(hash)
                .read()
                .get_stale(hash as u32, tid, key, not_before);
            if let Some(v) = stale.filter(|_| self.state.tid() == tid) {
                self.state.record(Event::StaleServed, 1);
                return Ok(v);
            }
        }
        if let Some(fallback) = policy.fallback.take() {
            if let Some(v) = fallback(&err) {
                self.state.record(Event::Fallback, 1);
                return Ok(v);
            }
        }
        Err(err)
    }
}
