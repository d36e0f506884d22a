//! Entries removed under a shard lock, held until every lock is released so
//! that the listener and the values' destructors never run under one.

use crate::shard::Removed;

/// A list of removed entries that keeps the first one inline: a write at
/// capacity usually removes exactly one entry, and an allocation per insert
/// would cost more than the eviction itself.
pub(crate) struct Removals<'w, K, V> {
    first: Option<Removed<'w, K, V>>,
    rest: Vec<Removed<'w, K, V>>,
}

impl<'w, K, V> Removals<'w, K, V> {
    pub(crate) fn new() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, removed: Removed<'w, K, V>) {
        if self.first.is_none() {
            self.first = Some(removed);
        } else {
            self.rest.push(removed);
        }
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// The entries in the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Removed<'w, K, V>> {
        self.first.iter().chain(&self.rest)
    }

    /// Calls `f` on each entry in the order they were pushed; on the write
    /// path this costs less than stepping through `iter`'s chain.
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Removed<'w, K, V>)) {
        if let Some(first) = &self.first {
            f(first);
        }
        self.rest.iter().for_each(f);
    }

    /// The entries from the `start`-th on, in the order they were pushed.
    pub(crate) fn since(&self, start: usize) -> impl Iterator<Item = &Removed<'w, K, V>> {
        self.iter().skip(start)
    }
}

impl<'w, K, V> IntoIterator for Removals<'w, K, V> {
    type Item = Removed<'w, K, V>;
    type IntoIter = std::iter::Chain<
        std::option::IntoIter<Removed<'w, K, V>>,
        std::vec::IntoIter<Removed<'w, K, V>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Owner;

    #[test]
    fn entries_come_back_in_push_order_and_since_skips() {
        let registry = crate::registry::Registry::new();
        let tenant = registry.acquire(crate::tenant_id::TenantKey::from("a"));
        let generation = tenant.generation().expect("a new tenant has a generation");
        // Borrowed from the writer or held: the list treats both alike.
        let removed = |key: u32| Removed {
            generation: if key % 2 == 0 {
                Owner::Held(generation.clone())
            } else {
                Owner::Writer(&generation)
            },
            key,
            value: (),
            weight: 1,
            why: crate::shard::Why::Evicted,
            counted: true,
        };
        let mut out = Removals::new();
        assert_eq!(out.len(), 0);
        for key in 0..4 {
            out.push(removed(key));
        }
        assert_eq!(out.len(), 4);
        let tail: Vec<u32> = out.since(1).map(|r| r.key).collect();
        assert_eq!(tail, [1, 2, 3]);
        let all: Vec<u32> = out.into_iter().map(|r| r.key).collect();
        assert_eq!(all, [0, 1, 2, 3]);
    }
}
