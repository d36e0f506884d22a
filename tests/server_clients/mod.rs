//! Clients for the server examples' tests: what they send, what they must
//! see, and what the server's /metrics must then say.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

pub const KEYS: usize = 20;
pub const CLIENTS: usize = 4;
pub const TENANTS: usize = 2;

fn ask(conn: &mut BufReader<TcpStream>, request: &str) -> String {
    writeln!(conn.get_mut(), "{request}").unwrap();
    let mut reply = String::new();
    conn.read_line(&mut reply).unwrap();
    reply.trim_end().to_string()
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of the sample `name{labels}` in Prometheus text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{text}"))
}

/// Drives a running server: several client threads as several tenants,
/// concurrent first requests, then a scrape of /metrics checked against
/// what the clients sent and saw. Returns (hits, coalesced) as scraped.
pub fn drive(addr: SocketAddr, metrics_addr: SocketAddr) -> (f64, f64) {
    let gate = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let gate = gate.clone();
            thread::spawn(move || {
                let tenant = format!("t{}", c % TENANTS);
                let stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut conn = BufReader::new(stream);
                gate.wait();
                let mut sent = 0;
                // Round 1: first requests, concurrent with the other client
                // of this tenant. Round 2: all cached.
                for _round in 0..2 {
                    for k in 0..KEYS {
                        let reply = ask(&mut conn, &format!("GET {tenant} k{k}"));
                        assert_eq!(reply, format!("VALUE {tenant}:k{k}"), "wrong row");
                        sent += 1;
                    }
                }
                assert_eq!(ask(&mut conn, &format!("GET {tenant} nope")), "MISSING");
                sent + 1
            })
        })
        .collect();
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let text = scrape(metrics_addr);
    let kv = ("cache", "kv");
    let hits = sample(
        &text,
        "tenant_cache_requests_total",
        &[kv, ("result", "hit")],
    );
    let misses = sample(
        &text,
        "tenant_cache_requests_total",
        &[kv, ("result", "miss")],
    );
    let loads = sample(
        &text,
        "tenant_cache_loads_total",
        &[kv, ("outcome", "success")],
    );
    let coalesced = sample(&text, "tenant_cache_coalesced_total", &[kv]);
    let entries = sample(&text, "tenant_cache_entries", &[kv]);
    let distinct = (TENANTS * (KEYS + 1)) as f64;
    assert_eq!(
        hits + misses,
        sent as f64,
        "every request is one hit or one miss"
    );
    assert_eq!(
        loads, distinct,
        "one query per key, however many asked at once"
    );
    assert_eq!(
        misses,
        loads + coalesced,
        "each miss led a load or joined one"
    );
    assert_eq!(entries, distinct);
    (hits, coalesced)
}
