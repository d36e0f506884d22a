//! A synchronous, sharded in-memory cache that many tenants share inside
//! one process.
//!
//! - **Tenant isolation through handles.** [`Cache::tenant`] returns a
//!   [`Tenant`]; every operation through it is scoped to that tenant. No
//!   tenant sees, overwrites or invalidates another's entries. A per-tenant
//!   cap ([`CacheBuilder::tenant_capacity`], or a tenant's own from
//!   [`CacheBuilder::tenant_capacity_by`]) stops a noisy neighbour from
//!   flushing the others, and [`Tenant::invalidate_all`] is O(1).
//! - **Single-flight loads with deadlines.** [`Tenant::get_with`],
//!   [`Tenant::try_get_with`], [`Tenant::load`] and [`Tenant::refresh`]
//!   run one loader per missing key however many callers ask, with
//!   deadlines, retry, fallbacks and stale-if-error; panics and recursive
//!   loads never hang anyone. See [the loading rules](Tenant#loading).
//! - **Scan-resistant eviction.** S3-FIFO queues per tenant, with ghosts of
//!   recent evictions that adapt the small FIFO's size the way ARC adapts
//!   its lists; capacity is shared by all shards, so the cache fills to its
//!   capacity however keys spread.
//! - **Hits scale with cores.** A hit takes a per-thread reader slot of its
//!   shard's lock, writes nothing other threads write, allocates nothing
//!   and hashes the key once.
//! - **Runtime-agnostic.** Plain blocking calls: std threads,
//!   thread-per-core executors, or any non-async code.
//!
//! ```
//! use std::time::Duration;
//! use tenant_cache::{Cache, LoadError};
//!
//! let cache: Cache<u64, String> = Cache::builder()
//!     .max_capacity(100_000)
//!     .tenant_capacity(20_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .load_timeout(Duration::from_millis(50))
//!     .build();
//!
//! let acme = cache.tenant("acme");
//! let user = acme.try_get_with(42, |ctx| {
//!     // A real loader would pass ctx.remaining() to its backend.
//!     Ok::<_, std::io::Error>(format!("user {}", ctx.key()))
//! });
//! assert_eq!(user.unwrap(), "user 42");
//! assert_eq!(acme.get(&42).as_deref(), Some("user 42"));
//! assert_eq!(cache.tenant("globex").get(&42), None);
//! ```
//!
//! The `unsafe` code is in the shard lock, a reader-writer lock whose
//! readers each write a count of their own thread's (its protocol is
//! model-checked with loom and its tests run under Miri), and in one
//! prefetch hint on x86_64.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod builder;
mod cache;
mod clock;
mod ghost;
mod ledger;
mod listener;
mod load;
#[cfg(feature = "metrics")]
mod metrics;
mod policy;
mod prefetch;
mod registry;
mod removals;
mod shard;
mod slab;
// Under loom the shards use loom's lock; this one is built only for its
// own models there.
#[cfg(any(not(loom), test))]
mod slot_lock;
mod stats;
mod sync;
mod tenant;
mod tenant_id;
mod thread_slot;

pub use builder::{CacheBuilder, ENTRIES_PER_SHARD, MAX_SHARDS};
pub use cache::Cache;
pub use clock::{Clock, ManualClock, SystemClock};
pub use listener::RemovalCause;
pub use load::{LoadCtx, LoadError, LoadRequest, Retry};
pub use stats::Stats;
pub use tenant::Tenant;
pub use tenant_id::{TenantId, TenantKey};

/// The README's Rust examples, compiled and run as doctests so that they
/// stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
