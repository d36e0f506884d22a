//! The key-value service of `std_server`, on a glommio `LocalExecutorPool`:
//! one executor per core, all sharing one `Cache`. Linux only; build with
//! `--features glommio`.
//!
//! Run: `cargo run --release --features glommio --example glommio_server -- --port 7878`
//!
//! # Loaders on an executor
//!
//! Cache calls are blocking calls. A hit is a few tens of nanoseconds and
//! is answered inline on the executor with `Tenant::cached`. A miss runs a
//! loader that may wait on a backend, and every task of that executor
//! waits with it, so this server moves the loading call to glommio's
//! blocking thread pool (`spawn_blocking`) and awaits it. Single flight
//! still holds there: concurrent misses for one key share one query.
//!
//! Size deadlines for the whole trip: a request's deadline covers waiting
//! for a blocking thread as well as the query, and a loader that runs
//! inline on an executor (a cheap, local computation) should have a
//! deadline well under the latency budget of everything else queued on
//! that core. Only loaders that are both cheap and bounded belong inline.

mod kv;

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use futures_lite::StreamExt;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement, PoolThreadHandles};
pub use kv::Config;
use kv::{Request, Row};
use metrics_exporter_prometheus::PrometheusBuilder;
use rusqlite::Connection;
use tenant_cache::Cache;

/// Memory each executor registers with io_uring: small, because locked
/// memory is limited (8 MiB here) and this server does no file I/O.
const IO_MEMORY: usize = 256 << 10;

/// Threads in each executor's blocking pool, where loads run.
const BLOCKING_THREADS: usize = 4;

pub struct Server {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub cache: Cache<String, Row>,
    scratch_db: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    executors: PoolThreadHandles<()>,
    metrics_thread: JoinHandle<()>,
}

pub fn start(config: Config) -> io::Result<Server> {
    let (db, scratch_db) = kv::database(&config)?;
    let cache = kv::cache();
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(io::Error::other)?;
    // Every executor binds the same port (glommio sets SO_REUSEPORT); find
    // a free one first if asked for port 0.
    let port = match config.port {
        0 => StdListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        p => p,
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let metrics_listener = StdListener::bind(("127.0.0.1", config.metrics_port))?;
    let metrics_addr = metrics_listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s, conf) = (cache.clone(), stop.clone(), config.clone());
    let executors = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(config.threads, None))
        .io_memory(IO_MEMORY)
        .ring_depth(64)
        // Loads wait on the database; a few threads per executor let
        // misses for different keys wait side by side.
        .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
        .on_all_shards(move || serve_executor(addr, c, db, conf, s))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (c, s) = (cache.clone(), stop.clone());
    let metrics_thread = thread::spawn(move || kv::serve_metrics(metrics_listener, metrics, c, s));
    // Wait until the executors listen.
    for _ in 0..1_000 {
        if StdStream::connect(addr).is_ok() {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(Server {
        addr,
        metrics_addr,
        cache,
        scratch_db,
        stop,
        executors,
        metrics_thread,
    })
}

async fn serve_executor(
    addr: SocketAddr,
    cache: Cache<String, Row>,
    db: PathBuf,
    config: Config,
    stop: Arc<AtomicBool>,
) {
    let listener = TcpListener::bind(addr).expect("bind the shared port");
    // One connection per executor for the blocking pool's queries.
    let conn = Arc::new(Mutex::new(
        Connection::open(&db).expect("open the database"),
    ));
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (cache, conn, config) = (cache.clone(), conn.clone(), config.clone());
        glommio::spawn_local(async move {
            let _ = serve(stream, cache, conn, config).await;
        })
        .detach();
    }
}

async fn serve(
    stream: TcpStream,
    cache: Cache<String, Row>,
    db: Arc<Mutex<Connection>>,
    config: Config,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let reply = match Request::parse(line.trim_end()) {
            Request::Get { tenant, key } => {
                let tenant = cache.tenant(tenant);
                match tenant.cached(key) {
                    Some(row) => kv::reply(&row),
                    None => {
                        let (key, db, config) = (key.to_string(), db.clone(), config.clone());
                        glommio::executor()
                            .spawn_blocking(move || {
                                let db = db.lock().unwrap_or_else(|e| e.into_inner());
                                kv::load(&tenant, &key, &db, &config)
                            })
                            .await
                    }
                }
            }
            Request::Invalidate { tenant } => {
                cache.tenant(tenant).invalidate_all();
                "OK".to_string()
            }
            Request::Quit => return Ok(()),
            Request::Unknown => "ERROR unknown request".to_string(),
        };
        reader
            .get_mut()
            .write_all(format!("{reply}\n").as_bytes())
            .await?;
    }
}

impl Server {
    /// Stops the executors and the metrics thread, and removes a scratch
    /// database.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for _ in 0..64 {
            let _ = StdStream::connect(self.addr);
        }
        let _ = StdStream::connect(self.metrics_addr);
        self.executors.join_all();
        let _ = self.metrics_thread.join();
        if let Some(db) = self.scratch_db {
            let _ = std::fs::remove_file(db);
        }
    }
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let server = start(Config::from_args())?;
    println!(
        "serving on {}; metrics on http://{}/metrics",
        server.addr, server.metrics_addr
    );
    server.executors.join_all();
    Ok(())
}
