//! `trace --record FILE`: the event stream and periodic counter snapshots
//! as versioned JSON lines, for offline analysis.
//!
//! Line 1 is a header (`"type":"header"`, `"format":"spawnscope-record"`,
//! `"version"`); then `exec`/`exit`/`fork` lines exactly as `--events
//! --json` prints them (unfiltered), `interval` lines as `--json` prints
//! them, and a final `summary` line. Writes are buffered; the file is
//! flushed at the end, including after Ctrl-C or SIGTERM.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

pub const FORMAT: &str = "spawnscope-record";
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct RecordError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
}

#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    format: &'static str,
    version: u32,
    spawnscope: &'static str,
    started_unix: f64,
    /// CLOCK_MONOTONIC ns when the probes were attached; processes started
    /// earlier are not judged by the loop detector.
    started_mono_ns: u64,
    /// time_unix = ts_ns / 1e9 + this (bpf_ktime_get_ns is CLOCK_MONOTONIC).
    monotonic_to_unix_s: f64,
    hostname: &'a str,
    kernel: &'a str,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let f = File::create(path).map_err(|source| RecordError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, f),
        })
    }

    pub fn header(
        &mut self,
        started_unix: f64,
        started_mono_ns: u64,
        monotonic_to_unix_s: f64,
    ) -> Result<(), RecordError> {
        let uts = uname();
        let h = Header {
            kind: "header",
            format: FORMAT,
            version: VERSION,
            spawnscope: env!("CARGO_PKG_VERSION"),
            started_unix,
            started_mono_ns,
            monotonic_to_unix_s,
            hostname: &uts.0,
            kernel: &uts.1,
        };
        let line = serde_json::to_string(&h).expect("header JSON");
        self.line(&line)
    }

    /// One JSON line, already serialised.
    pub fn line(&mut self, json: &str) -> Result<(), RecordError> {
        let r = self
            .out
            .write_all(json.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"));
        r.map_err(|source| RecordError {
            path: self.path.clone(),
            source,
        })
    }

    pub fn value(&mut self, v: &impl Serialize) -> Result<(), RecordError> {
        let line = serde_json::to_string(v).expect("record JSON");
        self.line(&line)
    }

    pub fn finish(mut self) -> Result<(), RecordError> {
        self.out.flush().map_err(|source| RecordError {
            path: self.path.clone(),
            source,
        })?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|source| RecordError {
                path: self.path.clone(),
                source,
            })
    }
}

/// (hostname, kernel release).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.nodename), s(&u.release))
}
