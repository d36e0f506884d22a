//! The synchronization primitives the crate is built on, with one face for
//! two implementations.
//!
//! Normal builds use the crate's [`SlotLock`](crate::slot_lock::SlotLock)
//! for shards (each reader writes only its own thread's count, so hits
//! never bounce a shared line between cores) and parking_lot's
//! `Mutex`/`Condvar` for load slots. Under `--cfg loom` everything switches
//! to loom's model-checked types (the shards to loom's `RwLock`; the slot
//! lock has loom models of its own), which is
//! why no other module names `parking_lot`, `std::sync` locks or atomics
//! directly: loom cannot see what does not go through here. Hash seeds
//! come from here too: random in normal builds, fixed under loom, which
//! replays a model many times and needs every replay to take the same
//! locks.
//!
//! Lock poisoning is deliberately ignored (the slot lock has none; loom's
//! is unwrapped): a panic in a user `Hash`/`Eq` while a shard lock is held
//! unwinds before the shard's own state is touched, so the data behind
//! the lock is still consistent.

pub(crate) use imp::*;

#[cfg(not(loom))]
mod imp {
    use std::time::Duration;

    pub(crate) use crossbeam_utils::Backoff;
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::thread::ThreadId;

    /// Reader-scalable lock: each reader writes only its own thread's count.
    pub(crate) use crate::slot_lock::{SlotLock as RwLock, WriteGuard};

    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        pub(crate) fn wait_for<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> MutexGuard<'a, T> {
            let _ = self.0.wait_for(&mut guard, timeout);
            guard
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) fn current_thread() -> ThreadId {
        std::thread::current().id()
    }

    /// Seeded at random for each table, so that which keys collide, and
    /// which share a shard, cannot be chosen from outside.
    pub(crate) fn new_hasher() -> ahash::RandomState {
        ahash::RandomState::new()
    }
}

#[cfg(loom)]
mod imp {
    use std::sync::PoisonError;
    use std::time::Duration;

    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::thread::ThreadId;

    // Used only by the slot lock, which loom builds only for its models.
    #[cfg(test)]
    pub(crate) use loom::sync::atomic::fence;

    /// A spin that loom can see: every step yields to the other threads.
    #[cfg(test)]
    #[derive(Debug, Default)]
    pub(crate) struct Backoff;

    #[cfg(test)]
    impl Backoff {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn snooze(&self) {
            loom::thread::yield_now();
        }

        /// Always: under loom a waiting reader blocks on the writer mutex
        /// at once, which loom models without spinning.
        pub(crate) fn is_completed(&self) -> bool {
            true
        }
    }

    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    pub(crate) type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        /// Loom's lock has no per-thread counts: the slot goes unused.
        pub(crate) fn read_on(&self, _slot: crate::thread_slot::ThreadSlot) -> ReadGuard<'_, T> {
            self.read()
        }

        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
        }

        /// loom has no time: a timed wait is an ordinary wait, so models
        /// never use deadlines (deadlines are tested with the `Clock` seam).
        pub(crate) fn wait_for<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _timeout: Duration,
        ) -> MutexGuard<'a, T> {
            self.wait(guard)
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) fn current_thread() -> ThreadId {
        loom::thread::current().id()
    }

    /// Fixed seeds: a model must take the same path on every replay, and
    /// which shard a key or a tenant lands in decides which locks it takes.
    pub(crate) fn new_hasher() -> ahash::RandomState {
        ahash::RandomState::with_seeds(1, 2, 3, 4)
    }
}
