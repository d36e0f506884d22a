//! Entry storage for one shard: a vector of slots addressed by `u32`.
//!
//! The hash table and the eviction queues refer to entries by slot index,
//! which keeps the table at 4 bytes a bucket and lets queues link entries
//! through a `u32` inside the entry itself. An entry for `u64 → u64` takes
//! 32 bytes: the slot enum needs no tag of its own because `Queue` leaves a
//! niche. Timestamps and weights live in side vectors that exist only for
//! caches that need them.

use std::sync::atomic::AtomicU8;

/// "No slot": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// Which eviction queue an entry is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Queue {
    /// Probation: new entries that have not proved themselves.
    Small,
    /// Protected: entries that were used again, or came back from the ghost.
    Main,
}

pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// Low 32 bits of the entry's hash; the table hash is derived from it.
    pub(crate) hash: u32,
    /// Tenant generation the entry belongs to.
    pub(crate) tid: u32,
    /// Next entry in the same queue, or `NIL`.
    pub(crate) next: u32,
    /// Recent-use counter, saturating; bumped by readers only when it
    /// changes, so hot entries are never written by hits.
    pub(crate) freq: AtomicU8,
    pub(crate) queue: Queue,
    /// Whether `times` holds an expiry for this entry.
    pub(crate) timed: bool,
}

enum Slot<K, V> {
    Occupied(Entry<K, V>),
    /// Removed from the table but still linked in its queue; freed when the
    /// queue reaches it (queues are singly linked, so unlinking from the
    /// middle would need a walk).
    Tombstone {
        next: u32,
    },
    Vacant {
        next_free: u32,
    },
}

/// When an entry expires and when it was written, as clock stamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    pub(crate) expires_at: u64,
    pub(crate) written_at: u64,
}

impl Times {
    pub(crate) const NEVER: Times = Times {
        expires_at: u64::MAX,
        written_at: 0,
    };
}

pub(crate) struct Slab<K, V> {
    slots: Vec<Slot<K, V>>,
    free: u32,
    /// Parallel to `slots` once any entry has had a time; else empty.
    times: Vec<Times>,
    /// Parallel to `slots` when the cache has a weigher; else empty and
    /// every weight is 1.
    weights: Vec<u32>,
    weighted: bool,
    live: usize,
}

impl<K, V> Slab<K, V> {
    pub(crate) fn new(weighted: bool) -> Self {
        Self {
            slots: Vec::new(),
            free: NIL,
            times: Vec::new(),
            weights: Vec::new(),
            weighted,
            live: 0,
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    #[inline]
    pub(crate) fn alloc(&mut self, entry: Entry<K, V>, times: Option<Times>, weight: u32) -> u32 {
        if times.is_some() && self.times.len() < self.slots.len() {
            self.times.resize(self.slots.len(), Times::NEVER);
        }
        let idx = if self.free != NIL {
            let idx = self.free;
            match self.slots[idx as usize] {
                Slot::Vacant { next_free } => self.free = next_free,
                _ => unreachable!("free list points at a used slot"),
            }
            self.slots[idx as usize] = Slot::Occupied(entry);
            idx
        } else {
            let idx = self.slots.len() as u32;
            self.slots.push(Slot::Occupied(entry));
            if !self.times.is_empty() || times.is_some() {
                self.times.push(Times::NEVER);
            }
            if self.weighted {
                self.weights.push(1);
            }
            idx
        };
        if let Some(t) = times {
            self.times[idx as usize] = t;
        }
        if self.weighted {
            self.weights[idx as usize] = weight;
        }
        self.live += 1;
        idx
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32) -> &Entry<K, V> {
        match &self.slots[idx as usize] {
            Slot::Occupied(e) => e,
            _ => unreachable!("slot {idx} is not occupied"),
        }
    }

    pub(crate) fn get_mut(&mut self, idx: u32) -> &mut Entry<K, V> {
        match &mut self.slots[idx as usize] {
            Slot::Occupied(e) => e,
            _ => unreachable!("slot {idx} is not occupied"),
        }
    }

    /// Whether the entry at `idx` has expired; `now` is only called for
    /// entries that can expire.
    #[inline]
    pub(crate) fn is_expired(&self, idx: u32, now: impl FnOnce() -> u64) -> bool {
        self.get(idx).timed && self.times(idx).expires_at <= now()
    }

    /// Starts loading slot `idx` (if there is one) ahead of its use.
    #[inline]
    pub(crate) fn prefetch(&self, idx: u32) {
        if let Some(slot) = self.slots.get(idx as usize) {
            crate::prefetch::prefetch(slot);
        }
    }

    /// Slots allocated so far, in use or not.
    pub(crate) fn slots(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Whether slot `idx` holds a live entry.
    pub(crate) fn is_occupied(&self, idx: u32) -> bool {
        matches!(self.slots[idx as usize], Slot::Occupied(_))
    }

    pub(crate) fn is_tombstone(&self, idx: u32) -> bool {
        matches!(self.slots[idx as usize], Slot::Tombstone { .. })
    }

    pub(crate) fn next(&self, idx: u32) -> u32 {
        match &self.slots[idx as usize] {
            Slot::Occupied(e) => e.next,
            Slot::Tombstone { next } => *next,
            Slot::Vacant { .. } => unreachable!("vacant slot {idx} in a queue"),
        }
    }

    pub(crate) fn set_next(&mut self, idx: u32, to: u32) {
        match &mut self.slots[idx as usize] {
            Slot::Occupied(e) => e.next = to,
            Slot::Tombstone { next } => *next = to,
            Slot::Vacant { .. } => unreachable!("vacant slot {idx} in a queue"),
        }
    }

    #[inline]
    pub(crate) fn times(&self, idx: u32) -> Times {
        self.times
            .get(idx as usize)
            .copied()
            .unwrap_or(Times::NEVER)
    }

    pub(crate) fn set_times(&mut self, idx: u32, t: Times) {
        if self.times.len() < self.slots.len() {
            self.times.resize(self.slots.len(), Times::NEVER);
        }
        self.times[idx as usize] = t;
    }

    pub(crate) fn weight(&self, idx: u32) -> u64 {
        if self.weighted {
            u64::from(self.weights[idx as usize])
        } else {
            1
        }
    }

    pub(crate) fn set_weight(&mut self, idx: u32, w: u32) {
        if self.weighted {
            self.weights[idx as usize] = w;
        }
    }

    /// Takes the entry out and leaves a tombstone that keeps its queue link.
    pub(crate) fn tombstone(&mut self, idx: u32) -> Entry<K, V> {
        let next = self.next(idx);
        let old = std::mem::replace(&mut self.slots[idx as usize], Slot::Tombstone { next });
        self.live -= 1;
        match old {
            Slot::Occupied(e) => e,
            _ => unreachable!("slot {idx} is not occupied"),
        }
    }

    /// Frees a slot that is no longer linked anywhere; returns its entry
    /// unless it was a tombstone.
    pub(crate) fn release(&mut self, idx: u32) -> Option<Entry<K, V>> {
        let old = std::mem::replace(
            &mut self.slots[idx as usize],
            Slot::Vacant {
                next_free: self.free,
            },
        );
        self.free = idx;
        match old {
            Slot::Occupied(e) => {
                self.live -= 1;
                Some(e)
            }
            Slot::Tombstone { .. } => None,
            Slot::Vacant { .. } => unreachable!("double free of slot {idx}"),
        }
    }

    /// Heap bytes held, for memory accounting in tests and benches.
    #[cfg(test)]
    pub(crate) fn slot_size() -> usize {
        std::mem::size_of::<Slot<K, V>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: u64) -> Entry<u64, u64> {
        Entry {
            key,
            value: key,
            hash: 0,
            tid: 0,
            next: NIL,
            freq: AtomicU8::new(0),
            queue: Queue::Small,
            timed: false,
        }
    }

    #[test]
    fn a_u64_entry_takes_32_bytes() {
        assert_eq!(Slab::<u64, u64>::slot_size(), 32);
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut s = Slab::new(true);
        let a = s.alloc(entry(1), None, 5);
        let b = s.alloc(entry(2), Some(Times::NEVER), 6);
        assert_eq!(s.weight(a), 5);
        assert_eq!(s.weight(b), 6);
        assert!(s.release(a).is_some());
        let c = s.alloc(entry(3), None, 7);
        assert_eq!(c, a);
        assert_eq!(s.get(c).key, 3);
        assert_eq!(s.live(), 2);
        let e = s.tombstone(b);
        assert_eq!(e.key, 2);
        assert!(s.is_tombstone(b));
        assert!(s.release(b).is_none());
        assert_eq!(s.live(), 1);
    }
}
