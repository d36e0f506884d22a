//! The shard lock: a reader-writer lock whose readers write only a count
//! of their own thread's, so hits on one shard from many cores never
//! bounce a shared line, and whose writers pay one mutex and a read of
//! each reader count, not a lock per reader slot.
//!
//! Readers: a thread that owns a slot (see [`crate::thread_slot`]) bumps
//! its count with a plain store, then a `SeqCst` fence, then checks the
//! writer flag; it leaves with a `Release` store. A thread without a slot
//! does the same on the shared count with locked adds. Writers: take the
//! writer mutex, raise the flag, fence, and wait for every count to read
//! zero. The two fences order each reader's count against the writer's
//! flag (whichever fence comes first, the other side sees its write), so
//! either the writer waits for the reader or the reader sees the flag and
//! steps back until the writer is done.
//!
//! A writer waits for reads in progress by spinning and yielding, not by
//! parking: a read under this lock is a table probe and a clone of the
//! value, so it ends within a few hundred nanoseconds, unless its thread
//! is descheduled or the value's `Clone` is slow.
//!
//! A read nested in a read of the same lock by the same thread, on an
//! owned slot, does not check the flag: the outer read already holds every
//! writer off. On the shared slot a nested read that meets a waiting writer
//! deadlocks, as it does with std's lock; the cache never nests shard
//! locks, though user `Hash`, `Eq` or `Clone` that call back into the cache
//! could.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crossbeam_utils::CachePadded;

use crate::sync::{fence, AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::thread_slot::owned_slots;
#[cfg(not(loom))]
use crate::thread_slot::{thread_slot, ThreadSlot};

#[cfg(not(loom))]
use std::cell::UnsafeCell;

#[cfg(loom)]
use loom::cell::UnsafeCell;

/// A reader-writer lock with one reader count per thread slot.
///
/// In declaration order (`repr(C)`), so that the pointer to the owned
/// counts, which every read looks at, sits on one line with the flag and
/// the writer mutex (which writers write anyway), apart from the value,
/// whose fields writers change on every write.
#[repr(C)]
pub(crate) struct SlotLock<T> {
    /// The reader count of threads without a slot of their own, on a
    /// line of its own.
    shared: CachePadded<AtomicUsize>,
    /// Reader counts, one per owned thread slot.
    owned: Box<[CachePadded<AtomicUsize>]>,
    /// Raised by a writer before it waits for the counts to drain.
    writing: AtomicBool,
    /// Held for the whole of a write: writers queue here, and readers that
    /// met the flag for longer than a short spin park here.
    writer: Mutex<()>,
    /// Starts on a line of its own.
    value: CachePadded<UnsafeCell<T>>,
}

// SAFETY: the lock hands out `&T` to many threads at once only while no
// `&mut T` exists, and `&mut T` to one thread at a time, so sharing the lock
// is sound when `T` may be sent and shared; sending the lock sends `T`.
unsafe impl<T: Send + Sync> Sync for SlotLock<T> {}
// SAFETY: as above; the counts and the flag are plain atomics.
unsafe impl<T: Send> Send for SlotLock<T> {}

impl<T> SlotLock<T> {
    // Under loom the cache's shards use loom's own lock; only this
    // module's models build a `SlotLock`, with slots of their choosing.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn new(value: T) -> Self {
        Self::with_slots(owned_slots(), value)
    }

    /// A lock with `owned` slots for threads of their own, plus the shared
    /// one. A thread whose index is past `owned` reads on the shared one.
    fn with_slots(owned: usize, value: T) -> Self {
        Self {
            owned: (0..owned)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            shared: CachePadded::new(AtomicUsize::new(0)),
            writing: AtomicBool::new(false),
            writer: Mutex::new(()),
            value: CachePadded::new(UnsafeCell::new(value)),
        }
    }

    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        // Under loom every model thread runs on one OS thread, whose slot
        // they would all share: models use the shared count, or pick
        // slots themselves through `read_in`.
        #[cfg(loom)]
        return self.read_in(crate::thread_slot::SHARED);
        #[cfg(not(loom))]
        self.read_in(thread_slot().index())
    }

    /// A read on `slot`, this thread's: for callers that read the slot
    /// once for this lock and for their own per-thread stripes.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn read_on(&self, slot: ThreadSlot) -> ReadGuard<'_, T> {
        self.read_in(slot.index())
    }

    /// A read through slot `slot`, which must be this thread's own (or
    /// `SHARED`, or any index past the owned ones, for the shared count).
    #[inline]
    fn read_in(&self, slot: usize) -> ReadGuard<'_, T> {
        // One comparison picks the count: `SHARED` is past every owned one.
        let (count, owned) = match self.owned.get(slot) {
            Some(count) => (&**count, true),
            None => (&*self.shared, false),
        };
        // A read already held on this thread's own count keeps writers off,
        // so a nested read skips the check; the shared count cannot tell
        // whose reads it holds.
        if raise(count, owned) == 0 || !owned {
            self.admit(count, owned);
        }
        ReadGuard {
            #[cfg(not(loom))]
            value: &*self.value,
            #[cfg(loom)]
            value: Some(self.value.get()),
            count,
            owned,
            _not_send: PhantomData,
        }
    }

    /// Completes a read whose count is raised: returns once no writer is
    /// in.
    #[inline]
    fn admit(&self, count: &AtomicUsize, owned: bool) {
        // Orders the raised count before the flag read; the writer has the
        // mirror fence between raising the flag and reading counts.
        fence(Ordering::SeqCst);
        // Acquire: pairs with the last writer's release of the flag, so its
        // writes are visible to this read.
        if self.writing.load(Ordering::Acquire) {
            self.admit_behind_writer(count, owned);
        }
    }

    /// A writer is in or waiting: steps back (count lowered) so it can
    /// finish, spins a little, and then queues on the writer mutex, behind
    /// which no writer is in and none can start before this read's count
    /// is up again; so a reader is not starved by a stream of writers.
    #[cold]
    fn admit_behind_writer(&self, count: &AtomicUsize, owned: bool) {
        let backoff = crate::sync::Backoff::new();
        loop {
            lower(count, owned);
            while self.writing.load(Ordering::Relaxed) {
                if backoff.is_completed() {
                    // The mutex's acquire orders the last writer's writes
                    // before this read, and its release orders the raised
                    // count before the next writer's look at it.
                    let _exclusive = self.writer.lock();
                    raise(count, owned);
                    return;
                }
                backoff.snooze();
            }
            raise(count, owned);
            fence(Ordering::SeqCst);
            if !self.writing.load(Ordering::Acquire) {
                return;
            }
        }
    }

    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        let exclusive = self.writer.lock();
        self.writing.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        for count in self.owned.iter() {
            wait_for_zero(count);
        }
        wait_for_zero(&self.shared);
        WriteGuard {
            lock: self,
            #[cfg(loom)]
            value: Some(self.value.get_mut()),
            _exclusive: exclusive,
        }
    }
}

/// Waits until no reader holds `count`. Acquire: pairs with each reader's
/// release of its count, so every read finished before the write begins.
#[inline]
fn wait_for_zero(count: &AtomicUsize) {
    let backoff = crate::sync::Backoff::new();
    while count.load(Ordering::Acquire) != 0 {
        backoff.snooze();
    }
}

/// Raises a reader count; returns what it held before. An owned count
/// has this thread as its only writer, so it needs no locked add.
#[inline]
fn raise(count: &AtomicUsize, owned: bool) -> usize {
    if owned {
        let held = count.load(Ordering::Relaxed);
        count.store(held + 1, Ordering::Relaxed);
        held
    } else {
        count.fetch_add(1, Ordering::Relaxed)
    }
}

/// Lowers a reader count. Always `Release`, also when a reader steps back
/// without reading: a writer that sees the count drop to zero must see
/// this thread's earlier reads as finished, and on an owned count a plain
/// store does not carry the release of the store before it.
#[inline]
fn lower(count: &AtomicUsize, owned: bool) {
    if owned {
        count.store(count.load(Ordering::Relaxed) - 1, Ordering::Release);
    } else {
        count.fetch_sub(1, Ordering::Release);
    }
}

/// Reads the value unless a write is under way (perhaps by the thread
/// formatting, which would wait for itself).
impl<T: std::fmt::Debug> std::fmt::Debug for SlotLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SlotLock");
        if self.writing.load(Ordering::Relaxed) {
            d.field("value", &format_args!("<being written>"));
        } else {
            d.field("value", &*self.read());
        }
        d.finish()
    }
}

/// Shared access; lowers this thread's count when dropped.
pub(crate) struct ReadGuard<'a, T> {
    #[cfg(not(loom))]
    value: &'a UnsafeCell<T>,
    /// loom checks accesses through the pointer for as long as it lives;
    /// dropped before the count is lowered.
    #[cfg(loom)]
    value: Option<loom::cell::ConstPtr<T>>,
    count: &'a AtomicUsize,
    owned: bool,
    /// An owned count may only be written by its own thread.
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        #[cfg(not(loom))]
        // SAFETY: this guard's count is raised and was admitted while no
        // writer was in; writers wait for it to drop before writing.
        unsafe {
            &*self.value.get()
        }
        #[cfg(loom)]
        // SAFETY: as above.
        unsafe {
            self.value.as_ref().expect("live guard").deref()
        }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(loom)]
        drop(self.value.take());
        // Release: this read happens before a writer that sees the count
        // lowered.
        lower(self.count, self.owned);
    }
}

/// Exclusive access; lowers the flag and lets the next writer in when
/// dropped.
pub(crate) struct WriteGuard<'a, T> {
    lock: &'a SlotLock<T>,
    /// Dropped before the flag is lowered.
    #[cfg(loom)]
    value: Option<loom::cell::MutPtr<T>>,
    _exclusive: MutexGuard<'a, ()>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        #[cfg(not(loom))]
        // SAFETY: a write guard exists only while the flag is raised, the
        // writer mutex is held and every reader count has drained, so no
        // other reference to the value exists.
        unsafe {
            &*self.lock.value.get()
        }
        #[cfg(loom)]
        // SAFETY: as above.
        unsafe {
            &*self.value.as_ref().expect("live guard").deref()
        }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        // SAFETY: as for `deref`; `&mut self` makes this the only
        // reference through the guard.
        unsafe {
            &mut *self.lock.value.get()
        }
        #[cfg(loom)]
        // SAFETY: as above.
        unsafe {
            self.value.as_ref().expect("live guard").deref()
        }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(loom)]
        drop(self.value.take());
        // Release: this write happens before every reader that sees the
        // flag down. The mutex is released after (field drop order).
        self.lock.writing.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::thread_slot::SHARED;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::mpsc::channel;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Long enough that only a bug, never a slow machine, runs into it.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting until {what}");
            std::thread::yield_now();
        }
    }

    /// Writers keep both halves of the pair equal; a reader that sees them
    /// differ read during a write. Under Miri an overlap is also a data race
    /// error. Readers use their own slots and the shared one.
    #[test]
    fn readers_on_own_and_shared_slots_never_see_a_write_half_done() {
        let lock = Arc::new(SlotLock::new((0u64, 0u64)));
        let rounds = if cfg!(miri) { 30 } else { 20_000 };
        let threads: Vec<_> = (0..5)
            .map(|i| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..rounds {
                        match i {
                            0 | 1 => {
                                let mut g = lock.write();
                                g.0 += 1;
                                std::hint::black_box(&mut *g);
                                g.1 += 1;
                            }
                            2 => {
                                let g = lock.read_in(SHARED);
                                assert_eq!(g.0, g.1, "a read overlapped a write");
                            }
                            _ => {
                                let g = lock.read();
                                assert_eq!(g.0, g.1, "a read overlapped a write");
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.read(), (2 * rounds, 2 * rounds));
        assert!(lock.owned.iter().all(|c| c.load(Relaxed) == 0));
        assert_eq!(lock.shared.load(Relaxed), 0);
    }

    /// A reader that finds the flag up leaves the fast path; a finished
    /// write must not leave it up.
    #[test]
    fn a_finished_write_lets_the_next_read_straight_in() {
        let lock = SlotLock::with_slots(4, 0u32);
        *lock.write() += 1;
        assert!(!lock.writing.load(Relaxed), "the write's flag outlived it");
        assert_eq!(*lock.read_in(1), 1);
        *lock.write() += 1;
        assert!(!lock.writing.load(Relaxed));
    }

    #[test]
    fn a_writer_waits_for_a_read_in_progress_and_then_goes_in() {
        let lock = Arc::new(SlotLock::with_slots(4, 0u32));
        let reading = lock.read_in(1);
        let (wrote, written) = channel();
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                *lock.write() += 1;
                wrote.send(()).unwrap();
            })
        };
        wait_until("the writer raised its flag", || lock.writing.load(Relaxed));
        assert!(written.recv_timeout(Duration::from_millis(50)).is_err());
        assert_eq!(*reading, 0, "the value changed under a reader");
        drop(reading);
        written
            .recv_timeout(PATIENCE)
            .expect("the writer went in once the read was done");
        writer.join().unwrap();
        assert_eq!(*lock.read_in(1), 1);
    }

    /// A writer waiting for a thread's read must not stop that thread's
    /// nested read of the same lock: it would wait for the writer, which
    /// waits for it.
    #[test]
    fn a_nested_read_on_an_owned_slot_passes_a_waiting_writer() {
        let lock = Arc::new(SlotLock::with_slots(4, 7u32));
        let (go, waiting) = channel::<()>();
        let (holding, held) = channel::<()>();
        let (answer, nested) = channel();
        let reader = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let outer = lock.read_in(2);
                holding.send(()).unwrap();
                waiting.recv().unwrap();
                let inner = lock.read_in(2);
                answer.send((*outer, *inner)).unwrap();
            })
        };
        // The writer comes once the outer read is in, so it must wait.
        held.recv_timeout(PATIENCE).expect("the outer read went in");
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || *lock.write() += 1)
        };
        wait_until("the writer raised its flag", || lock.writing.load(Relaxed));
        go.send(()).unwrap();
        assert_eq!(
            nested
                .recv_timeout(PATIENCE)
                .expect("the nested read went in"),
            (7, 7)
        );
        reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(*lock.read_in(2), 8);
    }

    #[test]
    fn debug_of_a_lock_being_written_says_so_instead_of_waiting() {
        let lock = SlotLock::new(5u8);
        assert_eq!(format!("{lock:?}"), "SlotLock { value: 5 }");
        let (answer, shown) = channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _g = lock.write();
                answer.send(format!("{lock:?}")).unwrap();
            });
            assert_eq!(
                shown.recv_timeout(PATIENCE).expect("Debug returned"),
                "SlotLock { value: <being written> }"
            );
        });
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The protocol under loom: the value sits in loom's `UnsafeCell`, so
    //! a read overlapping a write fails the model. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --release --lib slot_lock::`.
    use super::*;
    use crate::thread_slot::SHARED;
    use loom::sync::Arc;
    use loom::thread;

    /// A thread that adds one to the value under the write lock.
    fn spawn_writer(lock: &Arc<SlotLock<u32>>) -> thread::JoinHandle<()> {
        let lock = lock.clone();
        thread::spawn(move || *lock.write() += 1)
    }

    #[test]
    fn a_reader_on_its_own_slot_and_a_writer_never_overlap() {
        loom::model(|| {
            let lock = Arc::new(SlotLock::with_slots(2, 0u32));
            let writer = spawn_writer(&lock);
            let seen = *lock.read_in(0);
            assert!(seen <= 1);
            writer.join().unwrap();
            assert_eq!(*lock.read_in(0), 1);
        });
    }

    #[test]
    fn readers_on_an_owned_and_the_shared_slot_and_a_writer_never_overlap() {
        loom::model(|| {
            let lock = Arc::new(SlotLock::with_slots(1, 0u32));
            let threads = [spawn_writer(&lock), {
                let lock = lock.clone();
                thread::spawn(move || assert!(*lock.read_in(SHARED) <= 1))
            }];
            assert!(*lock.read_in(0) <= 1);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*lock.read_in(0), 1);
        });
    }

    /// The second read may meet the writer's flag and step back; the
    /// writer must still see the first read as finished before it writes.
    #[test]
    fn a_reader_that_steps_back_after_a_read_keeps_that_read_before_the_write() {
        loom::model(|| {
            let lock = Arc::new(SlotLock::with_slots(1, 0u32));
            let writer = spawn_writer(&lock);
            let first = *lock.read_in(0);
            let second = *lock.read_in(0);
            assert!(first <= second && second <= 1);
            writer.join().unwrap();
        });
    }

    #[test]
    fn two_writers_and_a_reader_see_every_write_once() {
        loom::model(|| {
            let lock = Arc::new(SlotLock::with_slots(1, 0u32));
            let writers = [spawn_writer(&lock), spawn_writer(&lock)];
            assert!(*lock.read_in(0) <= 2);
            for w in writers {
                w.join().unwrap();
            }
            assert_eq!(*lock.read_in(0), 2);
        });
    }

    #[test]
    fn a_nested_read_passes_a_writer_waiting_for_the_outer_one() {
        loom::model(|| {
            let lock = Arc::new(SlotLock::with_slots(1, 0u32));
            let writer = spawn_writer(&lock);
            {
                let outer = lock.read_in(0);
                let inner = lock.read_in(0);
                assert_eq!(*outer, *inner);
            }
            writer.join().unwrap();
            assert_eq!(*lock.read_in(0), 1);
        });
    }
}
