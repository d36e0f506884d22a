//! A thread-per-core key-value service in front of SQLite, on std threads.
//!
//! One thread per core (pinned where the OS allows) accepts connections on
//! one loopback listener and serves them; every thread shares one `Cache`.
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
//! Run: `cargo run --release --example std_server -- --port 7878 --metrics-port 9898`
//! then `printf 'GET acme user:7\n' | nc 127.0.0.1 7878` and
//! `curl 127.0.0.1:9898/metrics`. Port 0 picks a free port; the addresses
//! are printed on the first line.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rusqlite::{Connection, OptionalExtension};
use tenant_cache::{Cache, LoadError, Tenant};

/// A cached row: `None` remembers that the row does not exist.
type Row = Option<Arc<str>>;

#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub metrics_port: u16,
    /// The SQLite file; a fresh, seeded one in the temp dir if `None`.
    pub db: Option<PathBuf>,
    /// Extra latency added to every query, to make loads overlap.
    pub query_delay: Duration,
    /// Each request's deadline for a value.
    pub deadline: Duration,
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            metrics_port: 0,
            db: None,
            query_delay: Duration::ZERO,
            deadline: Duration::from_millis(250),
            threads: thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub cache: Cache<String, Row>,
    /// The database file this server made, removed at shutdown.
    scratch_db: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Rows `<tenant>/<key>` → value for tenants t0..t9 and keys k0..k999.
fn seed(path: &PathBuf) -> rusqlite::Result<()> {
    let mut db = Connection::open(path)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS kv (tenant TEXT, key TEXT, value TEXT, PRIMARY KEY (tenant, key));",
    )?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare("INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3)")?;
        for t in 0..10 {
            for k in 0..1_000 {
                insert.execute((format!("t{t}"), format!("k{k}"), format!("t{t}:k{k}")))?;
            }
        }
    }
    tx.commit()
}

pub fn start(config: Config) -> io::Result<Server> {
    let scratch_db = match &config.db {
        Some(_) => None,
        None => {
            let p = std::env::temp_dir()
                .join(format!("tenant-cache-demo-{}.sqlite", std::process::id()));
            seed(&p).map_err(io::Error::other)?;
            Some(p)
        }
    };
    let db = config
        .db
        .clone()
        .or_else(|| scratch_db.clone())
        .expect("a database");
    let cache: Cache<String, Row> = Cache::builder()
        .max_capacity(50_000)
        .tenant_capacity(10_000)
        .time_to_live(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(300))
        .name("kv")
        .build();
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(io::Error::other)?;
    let listener = TcpListener::bind(("127.0.0.1", config.port))?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(("127.0.0.1", config.metrics_port))?;
    let metrics_addr = metrics_listener.local_addr()?;
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
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = serve(stream, &cache, &conn, &config);
            }
        }));
    }
    {
        let (cache, stop) = (cache.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            serve_metrics(metrics_listener, metrics, cache, stop)
        }));
    }
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
    /// Stops every thread and waits for them.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake every blocked accept.
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
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("GET"), Some(tenant), Some(key)) => get(&cache.tenant(tenant), key, db, config),
            (Some("INVALIDATE"), Some(tenant), None) => {
                cache.tenant(tenant).invalidate_all();
                "OK".to_string()
            }
            (Some("QUIT"), None, None) => return Ok(()),
            _ => "ERROR unknown request".to_string(),
        };
        writeln!(out, "{reply}")?;
    }
    Ok(())
}

fn get(tenant: &Tenant<String, Row>, key: &str, db: &Connection, config: &Config) -> String {
    let loaded = tenant
        .load(key.to_string())
        .timeout(config.deadline)
        .run(|ctx| {
            thread::sleep(config.query_delay);
            db.query_row(
                "SELECT value FROM kv WHERE tenant = ?1 AND key = ?2",
                (ctx.tenant().to_string(), ctx.key()),
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map(|v| v.map(Arc::from))
        });
    match loaded {
        Ok(Some(v)) => format!("VALUE {v}"),
        Ok(None) => "MISSING".to_string(),
        Err(LoadError::Timeout) => "ERROR timeout".to_string(),
        Err(e) => format!("ERROR {}", e.to_string().replace('\n', " ")),
    }
}

/// `GET /metrics` over HTTP/1.0: publish the cache's counters, render.
fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    cache: Cache<String, Row>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut stream, _)) = listener.accept() else {
            continue;
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        cache.publish_metrics();
        let body = handle.render();
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after each flag");
        match arg.as_str() {
            "--port" => config.port = value().parse().expect("--port takes a number"),
            "--metrics-port" => {
                config.metrics_port = value().parse().expect("--metrics-port takes a number")
            }
            "--db" => config.db = Some(PathBuf::from(value())),
            "--query-delay-ms" => {
                config.query_delay = Duration::from_millis(value().parse().expect("a number"))
            }
            "--threads" => config.threads = value().parse().expect("a number"),
            other => panic!("unknown flag {other}"),
        }
    }
    let server = start(config)?;
    println!(
        "serving on {} metrics on http://{}/metrics",
        server.addr, server.metrics_addr
    );
    for t in server.threads {
        let _ = t.join();
    }
    Ok(())
}
