//! Reading cache traces in the formats they are published in, and the
//! reference table of `MANIFEST.md`.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// How a trace file is encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// gzip text, one decimal key per line; `*` lines are checkpoints.
    Lirs,
    /// zstd text, `start count _ _` per line: `count` keys from `start`.
    Arc,
    /// xz, big-endian signed 32-bit keys.
    Cache2k,
    /// xz, big-endian signed 64-bit keys.
    Scarab,
    /// xz, big-endian unsigned 32-bit keys.
    CloudPhysics,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "lirs" => Format::Lirs,
            "arc" => Format::Arc,
            "cache2k" => Format::Cache2k,
            "scarab" => Format::Scarab,
            "cloud_physics" | "cloudphysics" => Format::CloudPhysics,
            _ => return None,
        })
    }

    /// The format of a file in the MANIFEST layout (`folder/name.ext`).
    pub fn of_path(path: &Path) -> Option<Format> {
        let folder = path.parent()?.file_name()?.to_str()?;
        Format::parse(folder)
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Every key of the trace, in order.
pub fn read(path: &Path, format: Format) -> std::io::Result<Vec<u64>> {
    let file = open(path)?;
    match format {
        Format::Lirs => text_keys(
            BufReader::new(flate2::read::GzDecoder::new(file)),
            |line, out| {
                let line = line.trim();
                // Blank lines and `*` (a marker some LIRS traces carry)
                // are not requests.
                if line.is_empty() || line.starts_with('*') {
                    return true;
                }
                line.parse::<i64>().map(|k| out.push(k as u64)).is_ok()
            },
        ),
        Format::Arc => text_keys(
            BufReader::new(zstd::stream::read::Decoder::new(file)?),
            |line, out| {
                // `start count ...`: `count` blocks from `start`; the
                // fields after them are not used.
                let mut fields = line.split_whitespace();
                let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
                    return line.trim().is_empty();
                };
                match (start.parse::<u64>(), count.parse::<u64>()) {
                    (Ok(start), Ok(count)) => {
                        out.extend(start..start.saturating_add(count));
                        true
                    }
                    _ => false,
                }
            },
        ),
        Format::Cache2k => binary_keys::<4>(file, |b| i32::from_be_bytes(b) as i64 as u64),
        Format::Scarab => binary_keys::<8>(file, |b| i64::from_be_bytes(b) as u64),
        Format::CloudPhysics => binary_keys::<4>(file, |b| u64::from(u32::from_be_bytes(b))),
    }
}

/// The keys of a text trace; `parse` adds a line's keys and says whether
/// the line was one the format allows.
fn text_keys(
    reader: impl BufRead,
    mut parse: impl FnMut(&str, &mut Vec<u64>) -> bool,
) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if !parse(&line, &mut out) {
            return Err(invalid(format!(
                "line {}: {line:?} is not a request",
                n + 1
            )));
        }
    }
    Ok(out)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn binary_keys<const N: usize>(
    file: File,
    decode: impl Fn([u8; N]) -> u64,
) -> std::io::Result<Vec<u64>> {
    let mut bytes = Vec::new();
    xz2::read::XzDecoder::new(file).read_to_end(&mut bytes)?;
    if bytes.len() % N != 0 {
        return Err(invalid(format!(
            "{} bytes is not a whole number of {N}-byte keys",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| decode(c.try_into().expect("chunks_exact yields N bytes")))
        .collect())
}

/// One row of the MANIFEST's reference table.
#[derive(Clone, Debug)]
pub struct Reference {
    /// `folder/name`, as in the table.
    pub trace: String,
    pub sizes: Vec<usize>,
    pub lru: Vec<f64>,
    pub opt: Vec<f64>,
    pub optb: Vec<f64>,
}

/// `../shared/traces`, or `$TRACES_DIR`.
pub fn traces_dir() -> PathBuf {
    std::env::var_os("TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces"))
}

/// The reference table of `MANIFEST.md`.
pub fn references(dir: &Path) -> std::io::Result<Vec<Reference>> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md"))?;
    let numbers = |cell: &str| -> Vec<f64> {
        cell.split('/')
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | trace | requests | unique | sizes | LRU | OPT | OPTb |
            if cells.len() != 9 || !cells[1].contains('/') || cells[4].is_empty() {
                return None;
            }
            let sizes: Vec<usize> = cells[4]
                .split('/')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            let (lru, opt, optb) = (numbers(cells[5]), numbers(cells[6]), numbers(cells[7]));
            (!sizes.is_empty() && lru.len() == sizes.len()).then(|| Reference {
                trace: cells[1].to_string(),
                sizes,
                lru,
                opt,
                optb,
            })
        })
        .collect())
}

/// The file of a MANIFEST trace name (`lirs/cpp` → `lirs/cpp.trace.gz`).
pub fn file_of(dir: &Path, trace: &str) -> Option<PathBuf> {
    let (folder, name) = trace.split_once('/')?;
    std::fs::read_dir(dir.join(folder))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}.")) && !f.ends_with(".txt"))
        })
}
