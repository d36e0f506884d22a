//! A hint to the CPU to start loading memory that will be read soon.
//!
//! An eviction reads the entry at the head of a queue, which has not been
//! touched since it was queued and so is almost never in cache: on a full
//! cache that one load is a good part of an insert's time. The queue's next
//! head is known as soon as the current one is unlinked, so each eviction
//! asks for the next one's line, and the next eviction of that queue finds
//! it loaded.

/// Starts loading the cache line that holds `value`, without waiting for
/// it. A hint only: it changes no memory, and on targets without a stable
/// prefetch instruction (or under Miri) it does nothing.
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `_mm_prefetch` requires SSE, which is part of the x86_64
    // baseline, so every CPU this code runs on has it. The instruction only
    // hints: it cannot fault and writes nothing, and the address comes from
    // a live reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = value;
}
