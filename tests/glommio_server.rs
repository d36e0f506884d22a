//! The glommio server example, driven like the std one: one executor per
//! core, loads moved to the blocking pool, the same clients and checks.
#![cfg(target_os = "linux")]

#[path = "../examples/glommio_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod glommio_server;

mod server_clients;

use std::time::Duration;

#[test]
fn executors_share_one_cache_with_one_query_per_key_and_metrics_agree() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = glommio_server::start(glommio_server::Config {
        query_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(5),
        threads: cores,
        ..Default::default()
    })
    .unwrap();
    // Coalescing depends on how the blocking pool schedules the two
    // clients' misses; one query per key is what must hold.
    let (hits, _coalesced) = server_clients::drive(server.addr, server.metrics_addr);
    assert_eq!(server.cache.stats().hits as f64, hits);
    server.shutdown();
}
