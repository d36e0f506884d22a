//! Entry counts a write changes, settled once at its end.
//!
//! The cache's totals and each tenant generation's entries and weight are
//! atomics that every writing thread shares. A write into a full cache adds
//! one entry and evicts one, usually of the same tenant: the counts end
//! where they started. Adding and subtracting anyway moves those cache
//! lines between cores on every insert, which is what stops inserts from
//! scaling. A `Ledger` keeps the changes of one write, nets them, and
//! writes the shared counters only for what is left.
//!
//! Capacity checks read the shared counter plus this write's pending
//! change, so a write sees its own insert. Another thread's pending insert
//! is not visible until it settles; the writer that settles last sees every
//! settled insert and evicts the excess (see `Inner::enforce`), so no excess
//! outlives the write that caused it. Before settling, a write evicts no
//! more than it added; an excess that other writes left is evicted in
//! turns, after settling, so it is evicted once.

use crate::sync::{AtomicU64, Ordering::Relaxed};

use crate::registry::Generation;

/// The cache-wide counts of resident entries and their weight.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub(crate) entries: AtomicU64,
    pub(crate) weight: AtomicU64,
}

/// The pending changes of one write.
pub(crate) struct Ledger<'a> {
    totals: &'a Totals,
    /// The generation the write inserts into, whose changes are netted too;
    /// entries of other generations are counted out at once.
    generation: Option<&'a Generation>,
    entries: i64,
    weight: i64,
    own_entries: i64,
    own_weight: i64,
}

impl<'a> Ledger<'a> {
    #[inline]
    pub(crate) fn new(totals: &'a Totals, generation: Option<&'a Generation>) -> Self {
        Self {
            totals,
            generation,
            entries: 0,
            weight: 0,
            own_entries: 0,
            own_weight: 0,
        }
    }

    /// An entry of the ledger's generation came in.
    #[inline]
    pub(crate) fn added(&mut self, weight: u64) {
        self.entries += 1;
        self.weight += weight as i64;
        self.own_entries += 1;
        self.own_weight += weight as i64;
    }

    /// A resident entry of the ledger's generation changed weight from
    /// `old` to `new`.
    #[inline]
    pub(crate) fn reweighed(&mut self, old: u64, new: u64) {
        let change = new as i64 - old as i64;
        self.weight += change;
        self.own_weight += change;
    }

    /// An entry of `generation` left the cache.
    #[inline]
    pub(crate) fn removed(&mut self, generation: &Generation, weight: u64) {
        self.entries -= 1;
        self.weight -= weight as i64;
        if self.generation.is_some_and(|g| std::ptr::eq(g, generation)) {
            self.own_entries -= 1;
            self.own_weight -= weight as i64;
        } else {
            generation.adjust(-1, -(weight as i64));
        }
    }

    /// The cache's weight, this write's pending change included.
    #[inline]
    pub(crate) fn total_weight(&self) -> u64 {
        with(self.totals.weight.load(Relaxed), self.weight)
    }

    /// The ledger generation's weight, this write's pending change included.
    #[inline]
    pub(crate) fn own_weight(&self) -> u64 {
        self.generation
            .map_or(0, |g| with(g.weight(), self.own_weight))
    }

    /// Whether this write's pending changes still add weight to the cache.
    #[inline]
    pub(crate) fn grows_total(&self) -> bool {
        self.weight > 0
    }

    /// Whether this write's pending changes still add weight to the
    /// ledger's generation.
    #[inline]
    pub(crate) fn grows_own(&self) -> bool {
        self.own_weight > 0
    }

    /// Writes what is left of the changes to the shared counters.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if self.entries == 0 && self.weight == 0 && self.own_entries == 0 && self.own_weight == 0 {
            return;
        }
        apply(&self.totals.entries, self.entries);
        apply(&self.totals.weight, self.weight);
        if let Some(g) = self.generation {
            if self.own_entries != 0 || self.own_weight != 0 {
                g.adjust(self.own_entries, self.own_weight);
            }
        }
        self.entries = 0;
        self.weight = 0;
        self.own_entries = 0;
        self.own_weight = 0;
    }
}

impl Drop for Ledger<'_> {
    /// Settles what an unwinding write left pending.
    #[inline]
    fn drop(&mut self) {
        self.settle();
    }
}

#[inline]
fn with(shared: u64, pending: i64) -> u64 {
    shared.saturating_add_signed(pending)
}

/// Adds a signed change to a counter; writes nothing for zero.
#[inline]
pub(crate) fn apply(counter: &AtomicU64, delta: i64) {
    if delta > 0 {
        counter.fetch_add(delta as u64, Relaxed);
    } else if delta < 0 {
        counter.fetch_sub(delta.unsigned_abs(), Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::tenant_id::TenantKey;

    #[test]
    fn an_insert_that_evicts_its_own_entry_writes_no_shared_counter() {
        let reg = Registry::new();
        let g = reg.acquire(TenantKey::from("a")).generation().unwrap();
        g.adjust(10, 10);
        let totals = Totals::default();
        totals.entries.store(10, Relaxed);
        totals.weight.store(10, Relaxed);
        let mut ledger = Ledger::new(&totals, Some(&g));
        ledger.added(1);
        assert_eq!(ledger.total_weight(), 11, "the write sees its own insert");
        assert_eq!(ledger.own_weight(), 11);
        assert_eq!(totals.weight.load(Relaxed), 10, "pending, not shared yet");
        assert_eq!(g.weight(), 10, "pending, not shared yet");
        ledger.removed(&g, 1);
        ledger.settle();
        assert_eq!(totals.entries.load(Relaxed), 10);
        assert_eq!(totals.weight.load(Relaxed), 10);
        assert_eq!((g.entries(), g.weight()), (10, 10));
    }

    #[test]
    fn another_generations_entry_is_counted_out_at_once() {
        let reg = Registry::new();
        let own = reg.acquire(TenantKey::from("a")).generation().unwrap();
        let other = reg.acquire(TenantKey::from("b")).generation().unwrap();
        other.adjust(2, 5);
        let totals = Totals::default();
        totals.entries.store(2, Relaxed);
        totals.weight.store(5, Relaxed);
        let mut ledger = Ledger::new(&totals, Some(&own));
        ledger.added(3);
        ledger.removed(&other, 4);
        assert_eq!((other.entries(), other.weight()), (1, 1), "not pending");
        assert_eq!(ledger.total_weight(), 4);
        drop(ledger);
        assert_eq!((own.entries(), own.weight()), (1, 3), "settled on drop");
        assert_eq!(totals.entries.load(Relaxed), 2);
        assert_eq!(totals.weight.load(Relaxed), 4);
    }

    #[test]
    fn a_reweighed_entry_changes_only_the_totals_weight() {
        let totals = Totals::default();
        let mut ledger = Ledger::new(&totals, None);
        ledger.added(3);
        ledger.reweighed(3, 1);
        ledger.settle();
        assert_eq!(totals.entries.load(Relaxed), 1);
        assert_eq!(totals.weight.load(Relaxed), 1);
        assert_eq!(ledger.own_weight(), 0, "no generation of its own");
    }
}
