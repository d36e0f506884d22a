//! A thread-per-core key-value service in front of SQLite, on std threads.
//!
//! One thread per core (pinned where the OS allows) accepts connections on
//! one loopback listener and serves them; all threads share one `Cache`.
//! A miss loads the row from SQLite through `load(..).timeout(..).run(..)`,
//! so concurrent first requests for a key make one query. Metrics are
//! rendered by `metrics-exporter-prometheus` on a second loopback port.
//!
//! Protocol, one line per request and per reply:
//!
//! ```text
//! GET <tenant> <key>     →  VALUE <value> | MISSING | ERROR <reason>
//! INVALIDATE <tenant>    →  OK
//! ```
//!
//! Run: `cargo run --release --example std_server -- --port 7878 --metrics-port 9898`,
//! then `printf 'GET t1 k7\n' | nc 127.0.0.1 7878` and
//! `curl 127.0.0.1:9898/metrics`. Port 0 picks a free port; the addresses
//! are printed first.

mod kv;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use kv::Config;
use kv::{Request, Row};
use metrics_exporter_prometheus::PrometheusBuilder;
use rusqlite::Connection;
use tenant_cache::Cache;

pub struct Server {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub cache: Cache<String, Row>,
    scratch_db: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

pub fn start(config: Config) -> io::Result<Server> {
    let (db, scratch_db) = kv::database(&config)?;
    let cache = kv::cache();
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(io::Error::other)?;
    let listener = TcpListener::bind(("127.0.0.1", config.port))?;
    let metrics_listener = TcpListener::bind(("127.0.0.1", config.metrics_port))?;
    let (addr, metrics_addr) = (listener.local_addr()?, metrics_listener.local_addr()?);
    let stop = Arc::new(AtomicBool::new(false));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut threads = Vec::new();
    for i in 0..config.threads {
        let listener = listener.try_clone()?;
        let (cache, stop, db, config) = (cache.clone(), stop.clone(), db.clone(), config.clone());
        let core = cores.get(i % cores.len().max(1)).copied();
        threads.push(thread::spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let conn = Connection::open(&db).expect("open the database");
            while !stop.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                if !stop.load(Ordering::Relaxed) {
                    let _ = serve(stream, &cache, &conn, &config);
                }
            }
        }));
    }
    let (c, s) = (cache.clone(), stop.clone());
    threads.push(thread::spawn(move || {
        kv::serve_metrics(metrics_listener, metrics, c, s)
    }));
    Ok(Server {
        addr,
        metrics_addr,
        cache,
        scratch_db,
        stop,
        threads,
    })
}

impl Server {
    /// Stops every thread, waits for them, and removes a scratch database.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for _ in 0..self.threads.len() {
            let _ = TcpStream::connect(self.addr);
            let _ = TcpStream::connect(self.metrics_addr);
        }
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(db) = self.scratch_db {
            let _ = std::fs::remove_file(db);
        }
    }
}

/// Serves one connection on this thread; loads run here too (a std thread
/// may block).
fn serve(
    stream: TcpStream,
    cache: &Cache<String, Row>,
    db: &Connection,
    config: &Config,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let reply = match Request::parse(&line) {
            Request::Get { tenant, key } => kv::load(&cache.tenant(tenant), key, db, config),
            Request::Invalidate { tenant } => {
                cache.tenant(tenant).invalidate_all();
                "OK".to_string()
            }
            Request::Quit => return Ok(()),
            Request::Unknown => "ERROR unknown request".to_string(),
        };
        writeln!(out, "{reply}")?;
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let server = start(Config::from_args())?;
    println!(
        "serving on {}; metrics on http://{}/metrics",
        server.addr, server.metrics_addr
    );
    for t in server.threads {
        let _ = t.join();
    }
    Ok(())
}
