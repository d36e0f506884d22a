//! [`LoadCtx`]: what a loader knows about the load it runs.

use std::fmt;
use std::time::{Duration, Instant};

use crate::clock::Time;
use crate::tenant_id::TenantId;

/// Passed to a fallible loader: the key, the tenant, the deadline and
/// which attempt this is.
///
/// The deadline is cooperative for the loader: the cache cannot stop it,
/// so a loader that calls a backend should pass [`remaining`](LoadCtx::remaining)
/// on as that call's timeout.
pub struct LoadCtx<'a, K> {
    pub(crate) key: &'a K,
    pub(crate) tenant: &'a TenantId,
    pub(crate) deadline: Option<Instant>,
    pub(crate) attempt: u32,
    pub(crate) time: &'a Time,
}

impl<K> LoadCtx<'_, K> {
    /// The key being loaded.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The tenant the key belongs to.
    pub fn tenant(&self) -> &TenantId {
        self.tenant
    }

    /// When the caller that runs this loader stops waiting, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the deadline (zero once it has passed), or `None`
    /// without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(self.time.now()))
    }

    /// 1 for the first call, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

impl<K: fmt::Debug> fmt::Debug for LoadCtx<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadCtx")
            .field("key", self.key)
            .field("tenant", self.tenant)
            .field("deadline", &self.deadline)
            .field("attempt", &self.attempt)
            .finish()
    }
}
