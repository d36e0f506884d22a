//! The slot that one load publishes into and its waiters park on: a
//! once-cell-like cell keyed by `(tenant generation, key)` in the shard's
//! in-flight table.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Time;
use crate::registry::Generation;
use crate::sync::{current_thread, AtomicBool, Condvar, Mutex, Ordering, ThreadId};

/// A load's error, type-erased so loads with different error types can
/// share the in-flight table; waiters downcast it back.
pub(crate) type AnyError = Arc<dyn Any + Send + Sync>;

/// How a load ended, as its waiters see it.
pub(crate) enum Outcome<V> {
    Pending,
    Value(V),
    Failed(AnyError),
    Panicked,
}

impl<V: Clone> Outcome<V> {
    fn snapshot(&self) -> Option<Outcome<V>> {
        match self {
            Outcome::Pending => None,
            Outcome::Value(v) => Some(Outcome::Value(v.clone())),
            Outcome::Failed(e) => Some(Outcome::Failed(e.clone())),
            Outcome::Panicked => Some(Outcome::Panicked),
        }
    }
}

pub(crate) struct Flight<K, V> {
    pub(crate) key: K,
    /// The full hash of `(tid, key)`: it names the shard and the bucket.
    pub(crate) hash: u64,
    pub(crate) tid: u32,
    /// The generation the load started in. The flight counts as one of the
    /// holders of its id until it leaves the in-flight table, so its tid
    /// cannot be recycled to another tenant while the load runs.
    pub(crate) generation: Arc<Generation>,
    /// The thread running the loader: a request for the same key from it
    /// is a recursion, not a waiter.
    pub(crate) leader: ThreadId,
    /// Set (under the shard lock) when an insert or invalidate of the key
    /// happened during the load: its result must not be installed.
    superseded: AtomicBool,
    outcome: Mutex<Outcome<V>>,
    done: Condvar,
}

impl<K, V> Flight<K, V> {
    /// A flight for `generation`, which the caller has already counted as
    /// a holder of its id (`Generation::try_link`).
    pub(crate) fn new(key: K, hash: u64, generation: Arc<Generation>) -> Arc<Self> {
        Arc::new(Self {
            key,
            hash,
            tid: generation.tid,
            generation,
            leader: current_thread(),
            superseded: AtomicBool::new(false),
            outcome: Mutex::new(Outcome::Pending),
            done: Condvar::new(),
        })
    }

    pub(crate) fn supersede(&self) {
        self.superseded.store(true, Ordering::Release);
    }

    pub(crate) fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }

    pub(crate) fn led_by_current_thread(&self) -> bool {
        self.leader == current_thread()
    }

    /// Publishes the outcome and wakes every waiter. The first outcome
    /// wins; later calls (a guard's drop after a normal finish) do nothing.
    pub(crate) fn complete(&self, outcome: Outcome<V>) {
        let mut slot = self.outcome.lock();
        if matches!(*slot, Outcome::Pending) {
            *slot = outcome;
            drop(slot);
            self.done.notify_all();
        }
    }

    pub(crate) fn is_pending(&self) -> bool {
        matches!(*self.outcome.lock(), Outcome::Pending)
    }
}

impl<K, V: Clone> Flight<K, V> {
    /// Parks until the load ends or `deadline` passes (`None`: timed out).
    pub(crate) fn wait(&self, deadline: Option<Instant>, time: &Time) -> Option<Outcome<V>> {
        let mut slot = self.outcome.lock();
        loop {
            if let Some(done) = slot.snapshot() {
                return Some(done);
            }
            slot = match deadline {
                None => self.done.wait(slot),
                Some(deadline) => {
                    let now = time.now();
                    if now >= deadline {
                        return None;
                    }
                    self.done.wait_for(slot, time.park_slice(deadline - now))
                }
            };
        }
    }
}
