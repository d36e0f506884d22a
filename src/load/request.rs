//! [`LoadRequest`]: one load with its own deadline, retry and fallback.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::{LoadCtx, LoadError, Policy, Retry};
use crate::tenant::Tenant;

/// A load of one key with settings for this call only. Made by
/// [`Tenant::load`]; run with [`run`](LoadRequest::run). Settings not
/// given here come from the builder.
#[must_use = "a load request does nothing until `run` is called"]
pub struct LoadRequest<'a, K, V, E> {
    tenant: &'a Tenant<K, V>,
    key: K,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    retry: Option<Retry>,
    stale_if_error: Option<Option<Duration>>,
    fallback: Option<super::Fallback<'a, V, E>>,
}

impl<'a, K, V, E> LoadRequest<'a, K, V, E> {
    pub(crate) fn new(tenant: &'a Tenant<K, V>, key: K) -> Self {
        Self {
            tenant,
            key,
            timeout: None,
            deadline: None,
            retry: None,
            stale_if_error: None,
            fallback: None,
        }
    }

    /// Give up waiting this long after `run` is called.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Give up waiting at this instant (of the cache's clock). With
    /// `timeout` too, the earlier of the two counts.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The retry policy if this caller ends up running the loader.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Serve a value that expired at most `window` ago if the load fails
    /// or times out; `Duration::ZERO` turns the builder's setting off.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some((!window.is_zero()).then_some(window));
        self
    }

    /// A value for this caller only (not cached) when the load fails or
    /// times out and no stale value is served. Returning `None` passes the
    /// error on.
    pub fn fallback(mut self, fallback: impl FnOnce(&LoadError<E>) -> Option<V> + 'a) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }
}

impl<K, V, E> LoadRequest<'_, K, V, E>
where
    K: Hash + Eq + Clone,
    V: Clone,
    E: Send + Sync + 'static,
{
    /// Returns the key's value, or runs `loader` (once for all concurrent
    /// callers of this key) to get it.
    pub fn run<F>(self, loader: F) -> Result<V, LoadError<E>>
    where
        F: FnMut(&LoadCtx<'_, K>) -> Result<V, E>,
    {
        let inner = &*self.tenant.inner;
        let mut policy = Policy::defaults(&inner.load);
        // Settings given here replace the builder's.
        if self.timeout.is_some() || self.deadline.is_some() {
            policy.timeout = self.timeout;
            policy.deadline = self.deadline;
        }
        if let Some(r) = self.retry {
            policy.retry = r;
        }
        if let Some(s) = self.stale_if_error {
            policy.stale_if_error = s;
        }
        policy.fallback = self.fallback;
        if let Some(v) = self.tenant.plain_hit(&self.key) {
            return Ok(v);
        }
        self.tenant.run(self.key, policy, loader)
    }
}

impl<K: fmt::Debug, V, E> fmt::Debug for LoadRequest<'_, K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadRequest")
            .field("tenant", self.tenant.id())
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("retry", &self.retry)
            .field("stale_if_error", &self.stale_if_error)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}
