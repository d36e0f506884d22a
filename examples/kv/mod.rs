//! What the two server examples share: the database, the cache, the line
//! protocol and the metrics page. Each example only supplies its threads.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use rusqlite::{Connection, OptionalExtension};
use tenant_cache::{Cache, LoadError, Tenant};

/// A cached row: `None` remembers that the row does not exist.
pub type Row = Option<Arc<str>>;

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
    /// Serving threads (executors); one per core by default.
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
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl Config {
    /// Reads `--port`, `--metrics-port`, `--db`, `--query-delay-ms`,
    /// `--deadline-ms` and `--threads`.
    pub fn from_args() -> Config {
        let mut config = Config::default();
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            let number = || -> u64 {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag} takes a number"))
            };
            match flag.as_str() {
                "--port" => config.port = number() as u16,
                "--metrics-port" => config.metrics_port = number() as u16,
                "--db" => config.db = Some(PathBuf::from(&value)),
                "--query-delay-ms" => config.query_delay = Duration::from_millis(number()),
                "--deadline-ms" => config.deadline = Duration::from_millis(number()),
                "--threads" => config.threads = number() as usize,
                other => panic!("unknown flag {other}"),
            }
        }
        config
    }
}

/// The database to serve: the configured one, or a scratch one seeded with
/// rows `t0..t9` × `k0..k999` (returned second, for removal at shutdown).
pub fn database(config: &Config) -> io::Result<(PathBuf, Option<PathBuf>)> {
    if let Some(db) = &config.db {
        return Ok((db.clone(), None));
    }
    let path = std::env::temp_dir().join(format!("tenant-cache-kv-{}.sqlite", std::process::id()));
    seed(&path).map_err(io::Error::other)?;
    Ok((path.clone(), Some(path)))
}

fn seed(path: &PathBuf) -> rusqlite::Result<()> {
    let mut db = Connection::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS kv (tenant TEXT, key TEXT, value TEXT, PRIMARY KEY (tenant, key));",
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

pub fn cache() -> Cache<String, Row> {
    Cache::builder()
        .max_capacity(50_000)
        .tenant_capacity(10_000)
        .time_to_live(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(300))
        .name("kv")
        .build()
}

/// One parsed request line.
pub enum Request<'a> {
    Get { tenant: &'a str, key: &'a str },
    Invalidate { tenant: &'a str },
    Quit,
    Unknown,
}

impl<'a> Request<'a> {
    pub fn parse(line: &'a str) -> Request<'a> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("GET"), Some(tenant), Some(key), None) => Request::Get { tenant, key },
            (Some("INVALIDATE"), Some(tenant), None, None) => Request::Invalidate { tenant },
            (Some("QUIT"), None, None, None) => Request::Quit,
            _ => Request::Unknown,
        }
    }
}

/// The reply line for a row.
pub fn reply(row: &Row) -> String {
    match row {
        Some(v) => format!("VALUE {v}"),
        None => "MISSING".to_string(),
    }
}

/// Loads `key` through the cache (one query for all concurrent callers),
/// within the configured deadline; returns the reply line.
pub fn load(tenant: &Tenant<String, Row>, key: &str, db: &Connection, config: &Config) -> String {
    let loaded = tenant
        .load(key.to_string())
        .timeout(config.deadline)
        .run(|ctx| {
            std::thread::sleep(config.query_delay);
            db.query_row(
                "SELECT value FROM kv WHERE tenant = ?1 AND key = ?2",
                (ctx.tenant().to_string(), ctx.key()),
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map(|v| v.map(Arc::from))
        });
    match loaded {
        Ok(row) => reply(&row),
        Err(LoadError::Timeout) => "ERROR timeout".to_string(),
        Err(e) => format!("ERROR {}", e.to_string().replace('\n', " ")),
    }
}

/// Serves `GET /metrics` (HTTP/1.0) until `stop`: publishes the cache's
/// counters to the recorder, then renders them.
pub fn serve_metrics(
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
