//! The std-thread server example, driven for real: several client threads
//! as several tenants, then a scrape of its /metrics checked against what
//! the clients sent and saw.

#[path = "../examples/std_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod std_server;

mod server_clients;

use std::time::Duration;

#[test]
fn tenants_get_their_own_rows_with_one_query_per_key_and_metrics_agree() {
    let server = std_server::start(std_server::Config {
        query_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(5),
        threads: server_clients::CLIENTS,
        ..Default::default()
    })
    .unwrap();
    let (hits, coalesced) = server_clients::drive(server.addr, server.metrics_addr);
    assert_eq!(server.cache.stats().hits as f64, hits);
    // One thread per connection: the two clients of a tenant ask for each
    // key at the same time, and one of them waits on the other's load.
    assert!(
        coalesced > 0.0,
        "concurrent first requests never overlapped"
    );
    server.shutdown();
}
