//! `trace --record FILE`: the event stream and periodic counter snapshots
//! as versioned JSON lines, for offline analysis.
//!
//! Line 1 is a header (`"type":"header"`, `"format":"spawnscope-record"`,
//! `"version"`); then `exec`/`exit`/`fork` lines exactly as `--events
//! --json` prints them (unfiltered), `interval` lines as `--json` prints
//! them, and a final `summary` line. Writes are buffered; the file is
//! flushed at the end, including after Ctrl-C or SIGTERM. [`Reader`]
//! reads one back, for `analyze` and `export` alike.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::output::schema::Schema;

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
    schema: Schema,
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
            schema: Schema,
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

/// Why a recording cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a spawnscope recording (line 1 is no spawnscope-record header)")]
    NotRecord { path: PathBuf, line1: Line1 },
    #[error(
        "{path}: recording format version {found} is not supported (this spawnscope reads version {supported})"
    )]
    Version {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
}

/// What line 1 of a file that is no recording holds, for a caller that
/// tells these apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line1 {
    /// Nothing: the file is empty.
    Missing,
    /// Something that is not JSON.
    NotJson,
    /// JSON, but no header of a spawnscope recording.
    NoHeader,
}

/// What the header says about the run.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct RecordedRun {
    #[serde(default)]
    pub started_unix: f64,
    #[serde(default)]
    pub started_mono_ns: u64,
    #[serde(default)]
    pub monotonic_to_unix_s: f64,
}

/// A recording, line by line, its header checked on open.
pub struct Reader {
    path: PathBuf,
    r: BufReader<File>,
    buf: Vec<u8>,
    line: usize,
    /// A last line without its newline is read as any other.
    unterminated_ok: bool,
    pub run: RecordedRun,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let f = File::open(path).map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut r = Self {
            path: path.to_path_buf(),
            r: BufReader::new(f),
            buf: Vec::new(),
            line: 0,
            unterminated_ok: false,
            run: RecordedRun::default(),
        };
        let not_record = |line1| ReadError::NotRecord {
            path: path.to_path_buf(),
            line1,
        };
        // The header alone may lack its newline: a run that recorded
        // nothing else is still a recording.
        let header: serde_json::Value = match r.read_raw()? {
            Some(_) => serde_json::from_slice(&r.buf).map_err(|_| not_record(Line1::NotJson))?,
            None => return Err(not_record(Line1::Missing)),
        };
        if header["format"] != FORMAT {
            return Err(not_record(Line1::NoHeader));
        }
        let found = header["version"].as_u64().unwrap_or(0);
        if found != u64::from(VERSION) {
            return Err(ReadError::Version {
                path: path.to_path_buf(),
                found,
                supported: VERSION,
            });
        }
        r.run = serde_json::from_value(header).map_err(|_| not_record(Line1::NoHeader))?;
        Ok(r)
    }

    /// Reads a last line without its newline like any other, where
    /// [`next_line`](Self::next_line) otherwise reports it truncated (as a
    /// crash leaves a recording, which `analyze` must say). `export` has
    /// always read such a file whole: one put together by hand often ends
    /// so.
    pub fn accept_unterminated(mut self) -> Self {
        self.unterminated_ok = true;
        self
    }

    /// The next non-blank line: its number, and its JSON or why it is not
    /// usable. A read error ends the reading.
    #[allow(clippy::type_complexity)]
    pub fn next_line(
        &mut self,
    ) -> Result<Option<(usize, Result<serde_json::Value, String>)>, ReadError> {
        loop {
            let Some(complete) = self.read_raw()? else {
                return Ok(None);
            };
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v = if complete || self.unterminated_ok {
                serde_json::from_slice(&self.buf).map_err(|e| format!("not valid JSON ({e})"))
            } else {
                Err("truncated line (no newline at the end of the file)".into())
            };
            return Ok(Some((self.line, v)));
        }
    }

    /// Reads the next line into `buf`, without its newline; whether it
    /// had one.
    fn read_raw(&mut self) -> Result<Option<bool>, ReadError> {
        self.buf.clear();
        let n = self
            .r
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ReadError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let complete = self.buf.last() == Some(&b'\n');
        if complete {
            self.buf.pop();
        }
        Ok(Some(complete))
    }
}
