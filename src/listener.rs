//! Why entries leave the cache, as told to the eviction listener.

use crate::shard::Why;

/// Why an entry left the cache, passed to the
/// [`eviction_listener`](crate::CacheBuilder::eviction_listener).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// Its time to live had passed.
    Expired,
    /// Removed to keep the cache within `max_capacity`, or refused because
    /// it alone was heavier than `max_capacity`.
    Evicted,
    /// Removed to keep its tenant within `tenant_capacity`, or refused
    /// because it alone was heavier than `tenant_capacity`.
    TenantCapacity,
    /// Removed by `invalidate`, `remove` or `invalidate_all`. After
    /// `invalidate_all` the listener hears of each entry when the cache
    /// reclaims it, which happens incrementally after the call returns.
    Invalidated,
    /// Its key was given a new value.
    Replaced,
}

impl RemovalCause {
    /// Whether the entry was removed by the cache on its own (capacity or
    /// expiry) rather than by a caller.
    pub fn was_evicted(self) -> bool {
        matches!(
            self,
            RemovalCause::Expired | RemovalCause::Evicted | RemovalCause::TenantCapacity
        )
    }

    pub(crate) fn of(why: Why) -> Self {
        match why {
            Why::Expired => RemovalCause::Expired,
            Why::Evicted => RemovalCause::Evicted,
            Why::TenantCapacity => RemovalCause::TenantCapacity,
            Why::Invalidated | Why::Reclaimed => RemovalCause::Invalidated,
            Why::Replaced => RemovalCause::Replaced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RemovalCause::*;

    #[test]
    fn only_capacity_and_expiry_count_as_evictions() {
        for cause in [Expired, Evicted, TenantCapacity] {
            assert!(cause.was_evicted(), "{cause:?}");
        }
        for cause in [Invalidated, Replaced] {
            assert!(!cause.was_evicted(), "{cause:?}");
        }
    }
}
