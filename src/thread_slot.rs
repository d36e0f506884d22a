//! Per-thread slot indices, shared by everything that keeps one cache line
//! per thread: the stats stripes and the shard locks' reader counts.
//!
//! A thread claims an index the first time it asks and gives it back when
//! it exits, so a server's long-lived threads each own one. A slot owned
//! by one thread has one writer, which can update it with a plain load and
//! store instead of a locked instruction. Threads beyond the number of
//! owned slots (or asking while their thread-locals are being destroyed)
//! get [`SHARED`] and use a last slot that every such thread shares,
//! atomically.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// The index of the slot that threads without one of their own share.
pub(crate) const SHARED: usize = usize::MAX;

/// How many slots threads can own: twice the cores, rounded up to a power
/// of two, between 4 and 32. Fixed for the life of the process, so every
/// per-thread array sized from it has room for every index handed out.
pub(crate) fn owned_slots() -> usize {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.load(Relaxed);
    if n != 0 {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = (2 * cores).next_power_of_two().clamp(4, 32);
    // Every caller computes the same value, so a racing store is harmless.
    COUNT.store(n, Relaxed);
    n
}

/// A slot index as [`thread_slot`] answered it on the thread holding it.
///
/// Only `thread_slot` makes one, and it is not `Send`, so code that takes
/// a `ThreadSlot` (a shard lock's read, a stats stripe) cannot be handed
/// another thread's slot: an owned slot has one writer, and the shard lock
/// relies on that.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThreadSlot {
    index: usize,
    _this_thread: PhantomData<*const ()>,
}

impl ThreadSlot {
    /// Below [`owned_slots`], or [`SHARED`].
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.index
    }
}

/// This thread's slot.
///
/// An index returned here is this thread's alone until the thread exits:
/// the claim is given back only by the thread-local's destructor, which
/// first makes this function answer `SHARED` for the rest of the thread's
/// life.
#[inline]
pub(crate) fn thread_slot() -> ThreadSlot {
    let mut index = SLOT.with(Cell::get);
    if index == UNCLAIMED {
        index = CLAIM.try_with(|c| c.index).unwrap_or(SHARED);
        SLOT.with(|s| s.set(index));
    }
    ThreadSlot {
        index,
        _this_thread: PhantomData,
    }
}

/// A thread's claim on one slot index, given back when the thread exits.
struct Claim {
    index: usize,
}

/// Free slot indices, and the next never-used one.
static FREE: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

impl Claim {
    fn take() -> Self {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let index = match free.0.pop() {
            Some(i) => i,
            None if free.1 < owned_slots() => {
                free.1 += 1;
                free.1 - 1
            }
            None => SHARED,
        };
        Claim { index }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // From here on this thread uses the shared slot: another thread may
        // own this index as soon as it is back in the free list. `SLOT`
        // needs no destructor, so it is still readable now.
        SLOT.with(|s| s.set(SHARED));
        if self.index != SHARED {
            let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
            free.0.push(self.index);
        }
    }
}

const UNCLAIMED: usize = usize::MAX - 1;

thread_local! {
    /// Gives the index back at thread exit.
    static CLAIM: Claim = Claim::take();
    /// The same index, readable without the lazy-init check.
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Barrier};

    /// The tests below each hold or cycle through every slot, so they take
    /// turns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn threads_alive_at_once_never_share_an_owned_slot() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let n = owned_slots() + 2;
        let barrier = Arc::new(Barrier::new(n));
        let slots: Vec<usize> = (0..n)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let slot = thread_slot().index();
                    // Everyone holds its claim until all have one.
                    barrier.wait();
                    assert_eq!(thread_slot().index(), slot, "a thread's slot is stable");
                    slot
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let owned: Vec<usize> = slots.iter().copied().filter(|&s| s != SHARED).collect();
        let distinct: HashSet<usize> = owned.iter().copied().collect();
        assert_eq!(distinct.len(), owned.len(), "an owned slot given twice");
        assert!(owned.iter().all(|&s| s < owned_slots()));
        // Other tests' threads may hold claims too, so only the overflow
        // is certain: at least two of these threads share.
        assert!(slots.iter().filter(|&&s| s == SHARED).count() >= 2);
    }

    /// Code that runs in a thread-local destructor after the claim was
    /// given back (another thread may own the index by then) gets the
    /// shared slot, not its old index.
    #[test]
    fn a_thread_past_giving_back_its_claim_uses_the_shared_slot() {
        struct Probe(std::sync::mpsc::Sender<(bool, usize)>);
        impl Drop for Probe {
            fn drop(&mut self) {
                let claim_gone = CLAIM.try_with(|_| ()).is_err();
                let _ = self.0.send((claim_gone, thread_slot().index()));
            }
        }
        thread_local! {
            static PROBE: std::cell::RefCell<Option<Probe>> = const { std::cell::RefCell::new(None) };
        }
        let (send, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Registered before the claim, so (on Linux, where thread-local
            // destructors run in reverse order of registration) it is
            // destroyed after it.
            PROBE.with(|p| *p.borrow_mut() = Some(Probe(send)));
            thread_slot();
        })
        .join()
        .unwrap();
        let (claim_gone, slot) = seen.recv().unwrap();
        assert!(claim_gone, "the probe ran before the claim was given back");
        assert_eq!(slot, SHARED);
    }

    #[test]
    fn an_exited_threads_slot_is_given_to_a_later_thread() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        // Many more threads than slots, one after another: each exit gives
        // its claim back, so more of them own a slot than there are slots
        // (other tests' threads may hold a few meanwhile).
        let slots: Vec<usize> = (0..4 * owned_slots())
            .map(|_| std::thread::spawn(|| thread_slot().index()).join().unwrap())
            .collect();
        let owned = slots.iter().filter(|&&s| s != SHARED).count();
        assert!(owned > owned_slots(), "the pool ran dry: {slots:?}");
    }
}
