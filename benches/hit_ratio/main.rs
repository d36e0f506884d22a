//! Hit ratio on real traces: tenant-cache, quick_cache and moka against LRU
//! and Belady's OPT (classic, and with bypass), single-threaded replay
//! (`get`; on a miss, `insert`).
//!
//! `cargo bench --bench hit_ratio` replays every trace of
//! `../shared/traces/MANIFEST.md` (or `$TRACES_DIR`) at its sizes, checks
//! the LRU and OPT columns against the MANIFEST's reference numbers, prints
//! one table per trace and writes SVG charts to `target/bench-report/`.
//!
//! Your own traces: `cargo bench --bench hit_ratio -- FORMAT:PATH:SIZE,SIZE`
//! (FORMAT one of lirs, arc, cache2k, scarab, cloud_physics).
//! `--smoke` replays only `lirs/cpp` (for CI).

mod plot;
mod policies;
mod traces;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use policies::Occupancy;
use traces::{Format, Reference};

/// The policies, in column order.
const POLICIES: [&str; 6] = ["LRU", "OPT", "OPTb", "tenant-cache", "quick_cache", "moka"];

struct Job {
    name: String,
    path: PathBuf,
    format: Format,
    sizes: Vec<usize>,
    reference: Option<Reference>,
}

/// One trace's results: `ratios[size][policy]`, in percent, and
/// `held[size]`: how full tenant-cache, quick_cache and moka were.
struct Outcome {
    job: Job,
    requests: usize,
    unique: usize,
    ratios: Vec<[f64; 6]>,
    held: Vec<[Occupancy; 3]>,
}

fn run(job: Job) -> Outcome {
    let started = Instant::now();
    let keys = traces::read(&job.path, job.format)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", job.path.display()));
    let unique = keys.iter().collect::<std::collections::HashSet<_>>().len();
    let pct = |hits: usize| 100.0 * hits as f64 / keys.len().max(1) as f64;
    let (ratios, held) = job
        .sizes
        .iter()
        .map(|&size| {
            let (ours, ours_held) = policies::tenant_cache(&keys, size);
            let (quick, quick_held) = policies::quick_cache(&keys, size);
            let (moka, moka_held) = policies::moka(&keys, size);
            let ratios = [
                pct(policies::lru(&keys, size)),
                pct(policies::opt(&keys, size, false)),
                pct(policies::opt(&keys, size, true)),
                pct(ours),
                pct(quick),
                pct(moka),
            ];
            (ratios, [ours_held, quick_held, moka_held])
        })
        .unzip();
    eprintln!(
        "{}: {} requests in {:.1?}",
        job.name,
        keys.len(),
        started.elapsed()
    );
    Outcome {
        requests: keys.len(),
        unique,
        ratios,
        held,
        job,
    }
}

/// Compares the LRU/OPT/OPTb columns with the MANIFEST to two decimals.
fn check(o: &Outcome) -> Vec<String> {
    let Some(r) = &o.job.reference else {
        return Vec::new();
    };
    let mut bad = Vec::new();
    for (i, row) in o.ratios.iter().enumerate() {
        for (col, expected) in [(0, &r.lru), (1, &r.opt), (2, &r.optb)] {
            let Some(&want) = expected.get(i) else {
                continue;
            };
            if (row[col] - want).abs() > 0.005 + 1e-9 {
                bad.push(format!(
                    "{} size {}: {} {:.2} but MANIFEST says {want:.2}",
                    o.job.name, o.job.sizes[i], POLICIES[col], row[col]
                ));
            }
        }
    }
    bad
}

fn table(o: &Outcome) -> String {
    let mut s = format!(
        "\n### {} ({} requests, {} keys)\n\n| size | {} | moka held (mean / peak, × size) |\n|---:|{}---:|\n",
        o.job.name,
        o.requests,
        o.unique,
        POLICIES.join(" | "),
        "---:|".repeat(POLICIES.len())
    );
    for ((size, row), held) in o.job.sizes.iter().zip(&o.ratios).zip(&o.held) {
        let cells: Vec<String> = row.iter().map(|r| format!("{r:.2}")).collect();
        let _ = writeln!(
            s,
            "| {size} | {} | {:.2} / {:.2} |",
            cells.join(" | "),
            held[2].mean,
            held[2].peak
        );
    }
    s
}

/// Means over every row, and where tenant-cache stands.
fn summary(outcomes: &[Outcome]) -> String {
    let rows: Vec<&[f64; 6]> = outcomes.iter().flat_map(|o| &o.ratios).collect();
    let n = rows.len().max(1) as f64;
    let mean = |col: usize| rows.iter().map(|r| r[col]).sum::<f64>() / n;
    let better_peer = |r: &[f64; 6]| r[4].max(r[5]);
    let peer_mean = rows.iter().map(|r| better_peer(r)).sum::<f64>() / n;
    let worst = rows
        .iter()
        .map(|r| r[3] - better_peer(r))
        .fold(f64::INFINITY, f64::min);
    let behind: usize = rows.iter().filter(|r| r[3] < better_peer(r) - 0.5).count();
    let mut s = format!(
        "\n### Mean over all {} rows\n\n| policy | mean hit ratio (%) |\n|---|---:|\n",
        rows.len()
    );
    for (i, p) in POLICIES.iter().enumerate() {
        let _ = writeln!(s, "| {p} | {:.2} |", mean(i));
    }
    let _ = writeln!(
        s,
        "\ntenant-cache: mean {:+.2} points against the better of quick_cache and moka per row ({:.2}); \
         {:.2} points below OPT on average; worst row {:+.2} points; {} row(s) more than 0.5 points behind the better peer.",
        mean(3) - peer_mean,
        peer_mean,
        mean(1) - mean(3),
        worst,
        behind
    );
    let peak = |cache: usize| {
        outcomes
            .iter()
            .flat_map(|o| &o.held)
            .map(|h| h[cache].peak)
            .fold(0.0, f64::max)
    };
    let _ = writeln!(
        s,
        "\nMost entries held at once on any row, as a multiple of the size: \
         tenant-cache {:.2}, quick_cache {:.2}, moka {:.2}.",
        peak(0),
        peak(1),
        peak(2)
    );
    // A cache that never holds more than its size cannot beat Belady's MIN
    // (OPT); a peer that does held more.
    let above_opt: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.job
                .sizes
                .iter()
                .zip(&o.ratios)
                .map(move |(size, r)| (o, size, r))
        })
        .filter(|(_, _, r)| r[4] > r[1] || r[5] > r[1])
        .map(|(o, size, r)| {
            format!(
                "{} at {size} (OPT {:.2}, quick_cache {:.2}, moka {:.2})",
                o.job.name, r[1], r[4], r[5]
            )
        })
        .collect();
    if !above_opt.is_empty() {
        let _ = writeln!(
            s,
            "\nAbove OPT, so holding more entries than the size: {}.",
            above_opt.join("; ")
        );
    }
    s
}

fn jobs_from_args(args: &[String]) -> Vec<Job> {
    args.iter()
        .map(|arg| {
            let mut parts = arg.splitn(3, ':');
            let (Some(format), Some(path), Some(sizes)) =
                (parts.next(), parts.next(), parts.next())
            else {
                panic!("expected FORMAT:PATH:SIZE,SIZE,... but got {arg:?}");
            };
            let format =
                Format::parse(format).unwrap_or_else(|| panic!("unknown format {format:?}"));
            Job {
                name: path.to_string(),
                path: PathBuf::from(path),
                format,
                sizes: sizes
                    .split(',')
                    .map(|s| match s.parse() {
                        Ok(size) if size > 0 => size,
                        _ => panic!("sizes are whole numbers of entries, at least 1; got {s:?}"),
                    })
                    .collect(),
                reference: None,
            }
        })
        .collect()
}

fn jobs_from_manifest(dir: &Path, smoke: bool) -> Vec<Job> {
    let refs = traces::references(dir)
        .unwrap_or_else(|e| panic!("cannot read {}/MANIFEST.md: {e}", dir.display()));
    refs.into_iter()
        .filter(|r| !smoke || r.trace == "lirs/cpp")
        .map(|r| {
            let path = traces::file_of(dir, &r.trace)
                .unwrap_or_else(|| panic!("no file for {} in {}", r.trace, dir.display()));
            Job {
                name: r.trace.clone(),
                format: Format::of_path(&path).expect("MANIFEST folders name formats"),
                path,
                sizes: r.sizes.clone(),
                reference: Some(r),
            }
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let Some(unknown) = args.iter().find(|a| a.starts_with("--") && *a != "--smoke") {
        panic!("unknown option {unknown:?}: the options are --smoke and FORMAT:PATH:SIZE,SIZE");
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let explicit: Vec<String> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    let dir = traces::traces_dir();
    let jobs = if explicit.is_empty() {
        jobs_from_manifest(&dir, smoke)
    } else {
        jobs_from_args(&explicit)
    };
    let outcomes: Vec<Outcome> = jobs.into_iter().map(run).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = format!(
        "## Hit ratio on real traces (%)\n\nSingle-threaded replay; {cores} cores; `cargo bench --bench hit_ratio`.\n"
    );
    let mut mismatches = Vec::new();
    for o in &outcomes {
        report.push_str(&table(o));
        mismatches.extend(check(o));
    }
    if outcomes.len() > 1 {
        report.push_str(&summary(&outcomes));
    }
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    std::fs::create_dir_all(&out).expect("create target/bench-report");
    std::fs::write(out.join("hit_ratio.md"), &report).expect("write hit_ratio.md");
    for o in &outcomes {
        let file = out.join(format!(
            "hit_ratio_{}.svg",
            o.job.name.replace(['/', '.'], "_")
        ));
        plot::chart(&file, &o.job.name, &o.job.sizes, &o.ratios, &POLICIES)
            .unwrap_or_else(|e| panic!("cannot draw {}: {e}", file.display()));
    }
    println!("\nwritten to target/bench-report/ (hit_ratio.md and one SVG per trace)");
    if !mismatches.is_empty() {
        eprintln!("\nreference columns disagree with MANIFEST.md:");
        for m in &mismatches {
            eprintln!("  {m}");
        }
        std::process::exit(1);
    }
    if outcomes.iter().any(|o| o.job.reference.is_some()) {
        println!("LRU, OPT and OPTb columns match MANIFEST.md to two decimals.");
    }
}
