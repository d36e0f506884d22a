//! Integration tests, one binary (link once), one module per behaviour.

mod bad_input;
mod capacity;
mod eviction;
mod expiry;
mod flooding;
mod invalidation;
mod isolation;
mod listener;
mod loading;
mod metrics;
mod registry;
mod stress;
mod support;
