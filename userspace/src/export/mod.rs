//! `spawnscope export`: the histograms of a recording, in formats other
//! tools read. One module per format; this one builds what they all
//! export from a `trace --record` file.
//!
//! Per unit (the label `trace` shows: unit, else cgroup path, with
//! ` @container`):
//! - process lifetime, from exit records (nanoseconds);
//! - respawn interval: the time between two starts of the unit, each the
//!   first exec in a new cgroup of the unit's own (a systemd restart
//!   creates its cgroup anew), as the sentinel measures it (nanoseconds);
//! - exec interval: the time between two execs of the same executable in
//!   the unit (nanoseconds);
//! - exec rate: one value per `trace` interval in which the unit was
//!   active (milli-execs per second, so that rates below 1/s keep their
//!   precision);
//! - exit-class counts.

pub mod hdr;
pub mod json;
pub mod prom;
pub mod svg;

use crate::cli::{ExportArgs, ExportFormat};

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};

use hdrhistogram::Histogram;
use serde_json::Value;
use spawnscope_common::Counters;

use crate::record::{Line1, ReadError, Reader};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file cannot be read, or is no recording this version reads.
    #[error(transparent)]
    Recording(#[from] ReadError),
    #[error("{path}:{line}: not a JSON record")]
    BadLine { path: PathBuf, line: usize },
    #[error("cannot create {path}: {source}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a histogram measures, and in which unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    LifetimeNs,
    RespawnIntervalNs,
    ExecIntervalNs,
    ExecRateMilliPerS,
}

impl Measure {
    pub const ALL: [Measure; 4] = [
        Measure::LifetimeNs,
        Measure::RespawnIntervalNs,
        Measure::ExecIntervalNs,
        Measure::ExecRateMilliPerS,
    ];

    /// Name in exported files.
    pub fn name(self) -> &'static str {
        match self {
            Measure::LifetimeNs => "lifetime",
            Measure::RespawnIntervalNs => "respawn_interval",
            Measure::ExecIntervalNs => "exec_interval",
            Measure::ExecRateMilliPerS => "exec_rate",
        }
    }

    /// Unit of measure of the recorded values.
    pub fn unit(self) -> &'static str {
        match self {
            Measure::LifetimeNs | Measure::RespawnIntervalNs | Measure::ExecIntervalNs => {
                "nanoseconds"
            }
            Measure::ExecRateMilliPerS => "milli-execs per second",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Debug, Clone)]
pub struct UnitData {
    pub hists: BTreeMap<Measure, Histogram<u64>>,
    /// Lifetime and exec interval per executable (the exec'd file name;
    /// a process that exited without an exec seen is under its comm in
    /// brackets).
    pub executables: BTreeMap<String, BTreeMap<Measure, Histogram<u64>>>,
    /// Exit classes counted from exit records (the other counts stay 0).
    pub exits: Counters,
    /// The kernel's forks, execs and exit classes for the unit over the
    /// whole recording, from its summary row: exact, where events may have
    /// been filtered or dropped. None if it has no summary (cut short).
    pub totals: Option<Counters>,
}

/// Everything exported, from one recording.
#[derive(Debug, Clone)]
pub struct Data {
    /// The recording's start and end (seconds since the epoch).
    pub start_unix: f64,
    pub end_unix: f64,
    pub units: BTreeMap<String, UnitData>,
    /// Per unit, (seconds since start, execs per second) of each `trace`
    /// interval in which it was active.
    pub rates: BTreeMap<String, Vec<(f64, f64)>>,
    /// (seconds since start, bytes used, bytes total) of the system's
    /// memory, from each interval's forecast.
    pub memory: Vec<(f64, u64, u64)>,
    /// The same samples' bytes used, as a histogram.
    pub memory_hist: Histogram<u64>,
}

/// 3 significant figures, from 1 up to a day in nanoseconds (and any
/// rate): what every exported histogram uses.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 86_400_000_000_000, 3).expect("valid bounds")
}

fn container_label(c: &Value) -> Option<String> {
    if c.is_null() {
        return None;
    }
    if let Some(l) = c.as_str() {
        return Some(l.to_string());
    }
    let s = |k: &str| c[k].as_str().map(str::to_string);
    s("name")
        .or_else(|| {
            s("id").map(|id| {
                // The short id `docker ps` shows: 12 characters, cut at a
                // character (the recording is not ours to trust).
                let short = id.char_indices().nth(12).map_or(&id[..], |(i, _)| &id[..i]);
                format!("{}:{short}", s("runtime").unwrap_or_default())
            })
        })
        .or_else(|| s("pod_uid").map(|p| format!("pod:{p}")))
        .or_else(|| s("runtime"))
}

/// The label of an event record (unit, else cgroup, else id).
fn event_label(v: &Value) -> String {
    let name = v["unit"]
        .as_str()
        .or(v["cgroup"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("cgroup-id:{}", v["cgroup_id"]));
    match container_label(&v["container"]) {
        Some(c) => format!("{name} @{c}"),
        None => name,
    }
}

/// The label of an interval row (its group).
fn row_label(r: &Value) -> String {
    let name = r["group"].as_str().unwrap_or("?").to_string();
    match container_label(&r["container"]) {
        Some(c) => format!("{name} @{c}"),
        None => name,
    }
}

impl Data {
    /// A start of `exe` in the unit `label` at `ts` (ns): the interval
    /// since its last start.
    fn exec_interval(
        &mut self,
        last_exec: &mut BTreeMap<(String, String), u64>,
        label: String,
        exe: String,
        ts: u64,
    ) {
        let prev = last_exec.insert((label.clone(), exe.clone()), ts);
        let u = self.unit(label);
        if let Some(p) = prev.filter(|p| ts >= *p) {
            record(&mut u.hists, Measure::ExecIntervalNs, ts - p);
            record(per_exe(u, exe), Measure::ExecIntervalNs, ts - p);
        }
    }

    /// An exec record `v` at `ts` (ns) in the unit `label`: when it is the
    /// first in a new cgroup of the unit's own, the unit started again,
    /// and the interval since its last start is a respawn interval. Kernel
    /// cgroup ids only grow, so a smaller id is a late record of an
    /// earlier start; a sub-cgroup of the unit is no start of it.
    fn unit_start(
        &mut self,
        starts: &mut BTreeMap<String, (u64, u64)>,
        label: &str,
        v: &Value,
        ts: u64,
    ) {
        let own = match (v["unit"].as_str(), v["cgroup"].as_str()) {
            (Some(unit), Some(path)) => path.rsplit('/').next() == Some(unit),
            _ => false,
        };
        let Some(id) = v["cgroup_id"].as_u64().filter(|_| own) else {
            return;
        };
        match starts.get(label).copied() {
            Some((last, _)) if id <= last => {}
            Some((_, at)) => {
                starts.insert(label.to_string(), (id, ts));
                if ts >= at {
                    let u = self.unit(label.to_string());
                    record(&mut u.hists, Measure::RespawnIntervalNs, ts - at);
                }
            }
            None => {
                starts.insert(label.to_string(), (id, ts));
            }
        }
    }

    fn unit(&mut self, label: String) -> &mut UnitData {
        self.units.entry(label).or_insert_with(|| UnitData {
            hists: Measure::ALL
                .into_iter()
                .map(|m| (m, new_histogram()))
                .collect(),
            executables: BTreeMap::new(),
            exits: Counters::ZERO,
            totals: None,
        })
    }

    /// Reads a `trace --record` file. Lines that are not JSON objects are
    /// errors; record types this does not use are passed over.
    pub fn from_recording(path: &Path) -> Result<Self, ExportError> {
        let mut data = Data {
            start_unix: 0.0,
            end_unix: 0.0,
            units: BTreeMap::new(),
            rates: BTreeMap::new(),
            memory: Vec::new(),
            memory_hist: new_histogram(),
        };
        // Export has always read an empty file as an empty recording, and
        // named a first line that is no JSON as a bad line, as any other.
        let mut r = match Reader::open(path) {
            Ok(r) => r.accept_unterminated(),
            Err(ReadError::NotRecord {
                line1: Line1::Missing,
                ..
            }) => return Ok(data),
            Err(ReadError::NotRecord {
                path,
                line1: Line1::NotJson,
            }) => return Err(ExportError::BadLine { path, line: 1 }),
            Err(e) => return Err(e.into()),
        };
        data.start_unix = r.run.started_unix;
        data.end_unix = r.run.started_unix;
        // pid -> executable of its last exec, for per-executable lifetimes.
        let mut exe_of: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
        // (unit, executable) -> last exec time (ns).
        let mut last_exec: BTreeMap<(String, String), u64> = BTreeMap::new();
        // unit -> (cgroup id, time of its first exec) of its latest start.
        let mut starts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        // pid -> (unit, executor path, exec time) while the process is in
        // systemd-executor: a start counts once, at its command's exec, or
        // at the executor's if it dies there (as the detector judges it).
        let mut in_executor: std::collections::HashMap<u64, (String, String, u64)> =
            std::collections::HashMap::new();
        while let Some((line, v)) = r.next_line()? {
            let v = v.map_err(|_| ExportError::BadLine {
                path: path.to_path_buf(),
                line,
            })?;
            if let Some(t) = v["time_unix"].as_f64() {
                data.end_unix = data.end_unix.max(t);
            }
            match v["type"].as_str() {
                Some("exit") => {
                    if let Some((label, exe, ts)) =
                        v["pid"].as_u64().and_then(|p| in_executor.remove(&p))
                    {
                        data.exec_interval(&mut last_exec, label, exe, ts);
                    }
                    let exe = v["pid"]
                        .as_u64()
                        .and_then(|p| exe_of.remove(&p))
                        .unwrap_or_else(|| format!("[{}]", v["comm"].as_str().unwrap_or("?")));
                    let u = data.unit(event_label(&v));
                    if let Some(ns) = v["lifetime_ns"].as_u64() {
                        record(&mut u.hists, Measure::LifetimeNs, ns);
                        record(per_exe(u, exe), Measure::LifetimeNs, ns);
                    }
                    let e = &mut u.exits;
                    match (v["code"].as_u64(), v["signal"].as_u64()) {
                        (Some(0), _) => e.exit_clean += 1,
                        (Some(_), _) => e.exit_failed += 1,
                        (None, Some(_)) if v["core_dumped"] == true => e.exit_core += 1,
                        (None, Some(_)) => e.exit_signaled += 1,
                        (None, None) => {}
                    }
                }
                Some("exec") => {
                    let label = event_label(&v);
                    let exe = v["filename"].as_str().unwrap_or("?").to_string();
                    let Some(ts) = v["ts_ns"].as_u64() else {
                        continue;
                    };
                    data.unit_start(&mut starts, &label, &v, ts);
                    let argv: Vec<&str> = v["argv"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let pid = v["pid"].as_u64();
                    if crate::detect::is_executor_argv(&argv) {
                        if let Some(pid) = pid {
                            exe_of.insert(pid, argv[0].to_string());
                            in_executor.insert(pid, (label, argv[0].to_string(), ts));
                        }
                        continue;
                    }
                    if let Some(pid) = pid {
                        in_executor.remove(&pid);
                        exe_of.insert(pid, exe.clone());
                    }
                    data.exec_interval(&mut last_exec, label, exe, ts);
                }
                Some("summary") => {
                    for r in v["rows"].as_array().into_iter().flatten() {
                        let t = &r["total"];
                        let n = |k: &str| t[k].as_u64().unwrap_or(0);
                        data.unit(row_label(r)).totals = Some(Counters {
                            forks: n("forks"),
                            execs: n("execs"),
                            exit_clean: n("exit_clean"),
                            exit_failed: n("exit_failed"),
                            exit_signaled: n("exit_signaled"),
                            exit_core: n("exit_core_dumped"),
                            ..Counters::ZERO
                        });
                    }
                }
                Some("interval") => {
                    let t = v["time_unix"].as_f64().unwrap_or(data.start_unix) - data.start_unix;
                    if let (Some(used), Some(total)) = (
                        v["memory"]["used_bytes"].as_u64(),
                        v["memory"]["total_bytes"].as_u64(),
                    ) {
                        data.memory.push((t, used, total));
                        let h = &mut data.memory_hist;
                        h.record(used.clamp(h.low(), h.high())).expect("clamped");
                    }
                    for r in v["rows"].as_array().into_iter().flatten() {
                        if let Some(rate) = r["rate"]["execs_per_s"].as_f64()
                            && rate > 0.0
                        {
                            data.rates.entry(row_label(r)).or_default().push((t, rate));
                            let u = data.unit(row_label(r));
                            record(
                                &mut u.hists,
                                Measure::ExecRateMilliPerS,
                                (rate * 1000.0).round() as u64,
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(data)
    }
}

/// A unit's histograms for one executable.
fn per_exe(u: &mut UnitData, exe: String) -> &mut BTreeMap<Measure, Histogram<u64>> {
    u.executables.entry(exe).or_insert_with(|| {
        [Measure::LifetimeNs, Measure::ExecIntervalNs]
            .into_iter()
            .map(|m| (m, new_histogram()))
            .collect()
    })
}

fn record(h: &mut BTreeMap<Measure, Histogram<u64>>, m: Measure, v: u64) {
    let hist = h.get_mut(&m).expect("every measure has a histogram");
    // Clamp into the trackable range rather than lose the value.
    let v = v.clamp(hist.low(), hist.high());
    hist.record(v).expect("clamped into range");
}

/// One export format: the files it makes of the data.
pub trait Exporter {
    fn files(&self, data: &Data) -> Vec<(&'static str, Vec<u8>)>;
}

fn exporter(f: ExportFormat) -> Box<dyn Exporter> {
    match f {
        ExportFormat::Hdr => Box::new(hdr::Hdr),
        ExportFormat::Json => Box::new(json::Json),
        ExportFormat::Prom => Box::new(prom::Prom),
        ExportFormat::Svg => Box::new(svg::Svg),
    }
}

/// Writes `formats` of the recording at `file` into `dir` (created if
/// missing), each atomically; returns the paths written.
pub fn export(
    file: &Path,
    dir: &Path,
    formats: &[ExportFormat],
) -> Result<Vec<PathBuf>, ExportError> {
    let data = Data::from_recording(file)?;
    let mut formats = formats.to_vec();
    if formats.is_empty() {
        formats = <ExportFormat as clap::ValueEnum>::value_variants().to_vec();
    }
    formats.sort();
    formats.dedup();
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Mkdir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for f in formats {
        for (name, bytes) in exporter(f).files(&data) {
            written.push(write_atomic(dir, name, &bytes)?);
        }
    }
    Ok(written)
}

/// Every format, as `trace --export DIR` writes them.
pub fn export_all(file: &Path, dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    export(file, dir, &[])
}

/// `spawnscope export`: every asked format (default: all) into --out;
/// prints the paths written.
pub fn run(args: &ExportArgs) -> Result<(), ExportError> {
    let written = export(&args.file, &args.out, &args.format)?;
    let mut out = io::stdout().lock();
    for path in written {
        writeln!(out, "{}", path.display()).map_err(ExportError::Output)?;
    }
    Ok(())
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over the target, so an
/// existing file is never half-overwritten.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ExportError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let err = |source| ExportError::Write {
        path: target.clone(),
        source,
    };
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host-loop.jsonl")
    }

    #[test]
    fn a_recording_gives_per_unit_histograms() {
        let d = Data::from_recording(&fixture()).unwrap();
        assert!(d.end_unix > d.start_unix);
        let root = &d.units["/"];
        // The fixture's root cgroup: 46 exit records, 43 execs.
        let total_exits = root.exits.exit_clean + root.exits.exit_failed + root.exits.exit_signaled;
        assert_eq!(root.hists[&Measure::LifetimeNs].len(), 46);
        assert_eq!(total_exits, 46);
        // Intervals between execs of the same file: 6 × /bin/sh, 30 ×
        // /bin/true, 1 × seq, 6 × sleep; each file's first exec starts none.
        assert_eq!(root.hists[&Measure::ExecIntervalNs].len(), 5 + 29 + 5);
        // Everything ran in the root cgroup, which no unit owns: no unit
        // started twice.
        assert!(root.hists[&Measure::RespawnIntervalNs].is_empty());
        assert_eq!(
            root.hists[&Measure::ExecRateMilliPerS].len(),
            2,
            "2 intervals"
        );
        // Per executable: 30 × /bin/true, so 29 intervals, and as many
        // lifetimes as true processes exited.
        let t = &root.executables["/bin/true"];
        assert_eq!(t[&Measure::ExecIntervalNs].len(), 29);
        assert_eq!(t[&Measure::LifetimeNs].len(), 30);
        let t = root.totals.expect("the summary row");
        assert_eq!((t.forks, t.execs), (43, 43));
        assert_eq!((t.exit_clean, t.exit_failed), (40, 6));
    }

    /// A container id of multibyte characters (a recording is any JSON):
    /// its short form is 12 characters, cut between characters.
    #[test]
    fn a_container_id_with_multibyte_characters_is_cut_at_a_character() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("multibyte.jsonl");
        let id = format!("a{}", "\u{e9}".repeat(20));
        std::fs::write(
            &p,
            format!(
                "{{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":1}}\n\
                 {{\"type\":\"exit\",\"ts_ns\":1,\"pid\":5,\"unit\":\"a.service\",\
                 \"container\":{{\"runtime\":\"docker\",\"id\":\"{id}\"}},\"comm\":\"x\",\"code\":1}}\n"
            ),
        )
        .unwrap();
        let data = Data::from_recording(&p).unwrap();
        let labels: Vec<&String> = data.units.keys().collect();
        assert_eq!(
            labels,
            [&format!("a.service @docker:a{}", "\u{e9}".repeat(11))]
        );
    }

    #[test]
    fn starts_through_systemd_executor_count_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("executor.jsonl");
        let mut text =
            String::from("{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":1}\n");
        let exec = |unit: &str, pid: u64, ts: u64, file: &str, argv: &str| {
            format!(
                "{{\"type\":\"exec\",\"time_unix\":{},\"ts_ns\":{ts},\"pid\":{pid},\"unit\":\"{unit}\",\"container\":null,\"filename\":\"{file}\",\"argv\":{argv}}}\n",
                ts / 1_000_000_000
            )
        };
        let exit = |unit: &str, pid: u64, ts: u64, code: u8| {
            format!(
                "{{\"type\":\"exit\",\"time_unix\":{},\"ts_ns\":{ts},\"pid\":{pid},\"unit\":\"{unit}\",\"container\":null,\"comm\":\"x\",\"code\":{code},\"lifetime_ns\":5000000}}\n",
                ts / 1_000_000_000
            )
        };
        let executor = |n: u64| {
            format!(
                "[\"/usr/lib/systemd/systemd-executor\",\"--deserialize\",\"{n}\",\"--log-level\",\"info\"]"
            )
        };
        const S: u64 = 1_000_000_000;
        for i in 0..3u64 {
            let (a, b) = (100 + 2 * i, 101 + 2 * i);
            let t = 10 * S + i * 10 * S;
            text += &exec("getty.service", a, t, "/proc/self/fd/9", &executor(30 + i));
            text += &exec(
                "getty.service",
                a,
                t + S / 40,
                "/sbin/agetty",
                "[\"/sbin/agetty\"]",
            );
            text += &exit("getty.service", a, t + S / 20, 1);
            // 203/EXEC: the command is missing; the executor is all that ran.
            text += &exec(
                "missing.service",
                b,
                t,
                "/proc/self/fd/9",
                &executor(40 + i),
            );
            text += &exit("missing.service", b, t + S / 20, 203);
        }
        std::fs::write(&p, text).unwrap();
        let d = Data::from_recording(&p).unwrap();
        let getty = &d.units["getty.service"];
        assert_eq!(getty.hists[&Measure::ExecIntervalNs].len(), 2);
        assert_eq!(
            getty.executables.keys().collect::<Vec<_>>(),
            ["/sbin/agetty"]
        );
        let a = &getty.executables["/sbin/agetty"];
        assert_eq!(a[&Measure::ExecIntervalNs].len(), 2);
        assert_eq!(a[&Measure::LifetimeNs].len(), 3);
        let missing = &d.units["missing.service"];
        assert_eq!(missing.hists[&Measure::ExecIntervalNs].len(), 2);
        assert_eq!(
            missing.executables.keys().collect::<Vec<_>>(),
            ["/usr/lib/systemd/systemd-executor"]
        );
        let x = &missing.executables["/usr/lib/systemd/systemd-executor"];
        assert_eq!(x[&Measure::ExecIntervalNs].len(), 2);
        assert_eq!(x[&Measure::LifetimeNs].len(), 3);
        assert_eq!(missing.exits.exit_failed, 3);
    }

    /// A unit's respawn interval runs from one new cgroup of its own to the
    /// next, as the sentinel's does: neither a sub-cgroup, nor a late
    /// record of an earlier start, nor a second exec in the same cgroup is
    /// a start.
    #[test]
    fn a_units_restarts_are_its_new_cgroups() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("restarts.jsonl");
        let mut text =
            String::from("{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":1}\n");
        let exec = |id: u64, cgroup: &str, ts: u64| {
            format!(
                "{{\"type\":\"exec\",\"ts_ns\":{ts},\"pid\":{ts},\"cgroup_id\":{id},\"cgroup\":\"{cgroup}\",\"unit\":\"flaky.service\",\"container\":null,\"filename\":\"/bin/false\",\"argv\":[\"false\"]}}\n"
            )
        };
        const S: u64 = 1_000_000_000;
        const OWN: &str = "/system.slice/flaky.service";
        // Starts at 10 s, 17 s and 30 s, in cgroups 100, 104 and 109.
        text += &exec(100, OWN, 10 * S);
        text += &exec(100, OWN, 11 * S);
        text += &exec(500, "/system.slice/flaky.service/helper", 12 * S);
        text += &exec(104, OWN, 17 * S);
        text += &exec(100, OWN, 18 * S);
        text += &exec(109, OWN, 30 * S);
        std::fs::write(&p, text).unwrap();
        let d = Data::from_recording(&p).unwrap();
        let h = &d.units["flaky.service"].hists[&Measure::RespawnIntervalNs];
        assert_eq!(h.len(), 2);
        assert!(h.equivalent(h.min(), 7 * S), "{}", h.min());
        assert!(h.equivalent(h.max(), 13 * S), "{}", h.max());
        // Execs of one file: every one of them, whatever its cgroup.
        let e = &d.units["flaky.service"].hists[&Measure::ExecIntervalNs];
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn bad_input_is_an_error_with_its_place() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        std::fs::write(&p, "{\"type\":\"summary\"}\n").unwrap();
        assert!(matches!(
            Data::from_recording(&p),
            Err(ExportError::Recording(ReadError::NotRecord { .. }))
        ));
        std::fs::write(
            &p,
            "{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":1}\nnot json\n",
        )
        .unwrap();
        let e = Data::from_recording(&p).unwrap_err().to_string();
        assert!(e.ends_with("x.jsonl:2: not a JSON record"), "{e}");
        std::fs::write(
            &p,
            "{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":7}\n",
        )
        .unwrap();
        let e = Data::from_recording(&p).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "recording format version 7 is not supported (this spawnscope reads version 1)"
            ),
            "{e}"
        );
        assert!(matches!(
            Data::from_recording(&d.path().join("nope")),
            Err(ExportError::Recording(ReadError::Io { .. }))
        ));
    }

    /// Read through the recording reader, export still takes what it
    /// always took: an empty file, and a last line without its newline.
    #[test]
    fn empty_files_and_unterminated_last_lines_still_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        std::fs::write(&p, "").unwrap();
        let e = Data::from_recording(&p).unwrap();
        assert!(e.units.is_empty() && e.start_unix == 0.0);
        std::fs::write(
            &p,
            "{\"type\":\"header\",\"format\":\"spawnscope-record\",\"version\":1,\"started_unix\":5.0}\n\
             {\"type\":\"exit\",\"time_unix\":7.0,\"pid\":3,\"unit\":\"a.service\",\"comm\":\"a\",\"code\":1}",
        )
        .unwrap();
        let e = Data::from_recording(&p).unwrap();
        assert_eq!((e.start_unix, e.end_unix), (5.0, 7.0));
        assert_eq!(e.units["a.service"].exits.exit_failed, 1);
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "a.txt", b"first").unwrap();
        write_atomic(d.path(), "a.txt", b"second").unwrap();
        assert_eq!(std::fs::read(d.path().join("a.txt")).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
        let e = write_atomic(&d.path().join("missing"), "a.txt", b"x").unwrap_err();
        assert!(e.to_string().starts_with("cannot write "), "{e}");
    }
}
