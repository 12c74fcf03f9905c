//! The sentinel's persistent state: what must
//! survive a restart or a reboot so that totals continue ("421,491
//! restarts since 13 Jan"): cumulative per-unit counts and histograms,
//! active findings with their first-seen time, and recent OOM kills.
//!
//! One JSON file, versioned. Written atomically: a temporary file in the
//! same directory, fsync, rename over the old one, fsync of the directory,
//! so a crash leaves the old state or the new one, never a mix. A file
//! that cannot be parsed, or of another version, is moved aside (renamed
//! with a `.corrupt-<unix time>` suffix) and the caller starts fresh: a bad
//! state file must never keep the sentinel from starting.

use std::{
    collections::{BTreeMap, VecDeque},
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use spawnscope_common::Counters;

use crate::detect::{FindingKind, FindingSource, Severity, severity_for};

pub const STATE_VERSION: u32 = 1;
/// OOM kills kept, newest last.
pub const MAX_OOM_KILLS: usize = 100;
/// Log2 buckets per histogram, as the probe's lifetime histograms.
pub const BUCKETS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write state {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "UnitFile<Vec<u64>>")]
pub struct UnitState {
    /// Process counts. Thread counts are not kept: the state has never
    /// had them, so they would not survive a restart.
    pub counts: Counters,
    /// Process lifetimes, log2 buckets of nanoseconds.
    pub lifetimes: Vec<u64>,
    /// Respawn intervals, log2 buckets of nanoseconds.
    pub intervals: Vec<u64>,
    /// Times its cgroup was created again at the same path: systemd
    /// (re)starts of a service, counted exactly.
    pub recreations: u64,
    /// Restarts systemd had counted (`NRestarts`) when the sentinel first
    /// saw the unit: the restarts total starts there, and later drops of
    /// systemd's counter (`reset-failed`, a reboot) do not lower it.
    pub systemd_restarts: u64,
    /// Last interval with any activity; the least recent units are folded
    /// into [`OTHER_UNIT`] when there are too many.
    pub last_active_unix: f64,
}

/// A unit as the state file has always held it: the counts flat, by
/// their names there (`exit_core_dumped`), without threads or an exit
/// total. A field missing from an older file reads as zero, or empty.
#[derive(Serialize, Deserialize)]
struct UnitFile<L> {
    #[serde(default)]
    forks: u64,
    #[serde(default)]
    execs: u64,
    #[serde(default)]
    exit_clean: u64,
    #[serde(default)]
    exit_failed: u64,
    #[serde(default)]
    exit_signaled: u64,
    #[serde(default)]
    exit_core_dumped: u64,
    #[serde(default)]
    lifetimes: L,
    #[serde(default)]
    intervals: L,
    #[serde(default)]
    recreations: u64,
    // Absent, as before, when systemd had counted nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    systemd_restarts: u64,
    #[serde(default)]
    last_active_unix: f64,
}

impl From<UnitFile<Vec<u64>>> for UnitState {
    fn from(f: UnitFile<Vec<u64>>) -> Self {
        Self {
            counts: Counters {
                forks: f.forks,
                execs: f.execs,
                exit_clean: f.exit_clean,
                exit_failed: f.exit_failed,
                exit_signaled: f.exit_signaled,
                exit_core: f.exit_core_dumped,
                ..Counters::ZERO
            },
            lifetimes: f.lifetimes,
            intervals: f.intervals,
            recreations: f.recreations,
            systemd_restarts: f.systemd_restarts,
            last_active_unix: f.last_active_unix,
        }
    }
}

impl Serialize for UnitState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.counts;
        UnitFile {
            forks: c.forks,
            execs: c.execs,
            exit_clean: c.exit_clean,
            exit_failed: c.exit_failed,
            exit_signaled: c.exit_signaled,
            exit_core_dumped: c.exit_core,
            lifetimes: self.lifetimes.as_slice(),
            intervals: self.intervals.as_slice(),
            recreations: self.recreations,
            systemd_restarts: self.systemd_restarts,
            last_active_unix: self.last_active_unix,
        }
        .serialize(s)
    }
}

/// Where the counts of units beyond [`MAX_UNITS`] go.
pub const OTHER_UNIT: &str = "other";
/// Units kept apart in the state (and so in memory): 10,000 transient
/// units coming and going must not grow the sentinel without bound.
pub const MAX_UNITS: usize = 1000;

fn add_buckets(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.saturating_add(*b);
    }
}

impl UnitState {
    /// Adds `other` (counts since the last save) to this running total.
    pub fn add(&mut self, other: &UnitState) {
        self.counts = self.counts.saturating_add(&other.counts);
        add_buckets(&mut self.lifetimes, &other.lifetimes);
        add_buckets(&mut self.intervals, &other.intervals);
        self.recreations = self.recreations.saturating_add(other.recreations);
        self.systemd_restarts = self.systemd_restarts.saturating_add(other.systemd_restarts);
        self.last_active_unix = self.last_active_unix.max(other.last_active_unix);
    }

    pub fn process_exits(&self) -> u64 {
        let c = &self.counts;
        c.exit_clean
            .saturating_add(c.exit_failed)
            .saturating_add(c.exit_signaled)
            .saturating_add(c.exit_core)
    }

    /// systemd restarts: those systemd had counted before the unit was
    /// first seen, and every re-creation of its cgroup since.
    pub fn restarts(&self) -> u64 {
        self.systemd_restarts.saturating_add(self.recreations)
    }

    pub fn spawns(&self) -> u64 {
        self.counts.forks.saturating_add(self.counts.execs)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FindingFile")]
pub struct FindingState {
    pub unit: String,
    pub first_seen_unix: f64,
    pub last_seen_unix: f64,
    /// Restarts counted since first seen, across sentinel restarts.
    pub restarts: u64,
    pub kind: FindingKind,
    pub severity: Severity,
    pub rate_per_min: f64,
    /// What a drill-down found: executable, argv, exit status.
    pub detail: Option<serde_json::Value>,
    /// Opened from systemd's counters at start, or from restarts seen.
    #[serde(skip_serializing_if = "FindingSource::is_live")]
    pub source: FindingSource,
}

impl FindingState {
    /// How long it has been seen restarting, which its severity follows.
    pub fn seen_for_s(&self) -> f64 {
        (self.last_seen_unix - self.first_seen_unix).max(0.0)
    }
}

/// A finding as a state file holds it. Kind and severity follow from the
/// rate and are worked out again whenever the unit is active, so one that
/// is missing, or no name this version knows (a file that lacked them was
/// saved back with empty strings), must not cost the totals: the kind
/// then reads as a respawn loop, as it always did, and the severity
/// follows from kind and rate.
#[derive(Deserialize)]
struct FindingFile {
    unit: String,
    first_seen_unix: f64,
    last_seen_unix: f64,
    restarts: u64,
    #[serde(default, deserialize_with = "known")]
    kind: Option<FindingKind>,
    #[serde(default, deserialize_with = "known")]
    severity: Option<Severity>,
    #[serde(default)]
    rate_per_min: f64,
    #[serde(default)]
    detail: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "known")]
    source: Option<FindingSource>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The value, or None when it is not one this version knows.
fn known<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

impl From<FindingFile> for FindingState {
    fn from(f: FindingFile) -> Self {
        let kind = f.kind.unwrap_or(FindingKind::RespawnLoop);
        Self {
            severity: f.severity.unwrap_or_else(|| {
                severity_for(kind, (f.last_seen_unix - f.first_seen_unix).max(0.0))
            }),
            kind,
            unit: f.unit,
            first_seen_unix: f.first_seen_unix,
            last_seen_unix: f.last_seen_unix,
            restarts: f.restarts,
            rate_per_min: f.rate_per_min,
            detail: f.detail,
            source: f.source.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// When counting began (the first start with no state).
    pub since_unix: f64,
    pub saved_unix: f64,
    pub units: BTreeMap<String, UnitState>,
    /// Active findings by their key.
    pub findings: BTreeMap<String, FindingState>,
    pub oom_kills: VecDeque<serde_json::Value>,
    /// All OOM kills seen, including those no longer kept.
    #[serde(default)]
    pub oom_kills_total: u64,
}

impl State {
    pub fn fresh(now_unix: f64) -> Self {
        Self {
            version: STATE_VERSION,
            since_unix: now_unix,
            saved_unix: now_unix,
            units: BTreeMap::new(),
            findings: BTreeMap::new(),
            oom_kills: VecDeque::new(),
            oom_kills_total: 0,
        }
    }

    /// Folds the least recently active units into [`OTHER_UNIT`] while
    /// there are more than [`MAX_UNITS`], sparing those with a finding.
    /// A tenth more go at once, so this runs rarely.
    pub fn bound_units(&mut self) {
        if self.units.len() <= MAX_UNITS {
            return;
        }
        let keep = MAX_UNITS - MAX_UNITS / 10;
        let busy: std::collections::HashSet<&str> =
            self.findings.values().map(|f| f.unit.as_str()).collect();
        let mut idle: Vec<(f64, String)> = self
            .units
            .iter()
            .filter(|(k, _)| k.as_str() != OTHER_UNIT && !busy.contains(k.as_str()))
            .map(|(k, u)| (u.last_active_unix, k.clone()))
            .collect();
        idle.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let excess = self.units.len().saturating_sub(keep);
        let mut other = self.units.remove(OTHER_UNIT).unwrap_or_default();
        for (_, k) in idle.into_iter().take(excess) {
            if let Some(u) = self.units.remove(&k) {
                other.add(&u);
            }
        }
        self.units.insert(OTHER_UNIT.to_string(), other);
    }

    /// Keeps an OOM kill, dropping the oldest past [`MAX_OOM_KILLS`].
    pub fn push_oom_kill(&mut self, kill: serde_json::Value) {
        self.oom_kills.push_back(kill);
        self.oom_kills_total = self.oom_kills_total.saturating_add(1);
        while self.oom_kills.len() > MAX_OOM_KILLS {
            self.oom_kills.pop_front();
        }
    }
}

/// What [`load`] found.
#[derive(Debug, PartialEq)]
pub enum Loaded {
    /// No state yet: start fresh.
    Fresh(State),
    /// The saved state: totals continue.
    Restored(State),
    /// The file was unusable and is now at `moved_to`; start fresh, and
    /// warn with `why`.
    MovedAside {
        state: State,
        moved_to: PathBuf,
        why: String,
    },
}

/// Loads the state at `path`. Only an I/O error other than a missing file
/// (the file cannot be read, or cannot be moved aside) is an error.
pub fn load(path: &Path, now_unix: f64) -> Result<Loaded, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Loaded::Fresh(State::fresh(now_unix)));
        }
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let why = match parse(&bytes) {
        Ok(s) => return Ok(Loaded::Restored(s)),
        Err(why) => why,
    };
    let moved_to = aside_name(path, now_unix);
    fs::rename(path, &moved_to).map_err(|source| StateError::Write {
        path: moved_to.clone(),
        source,
    })?;
    Ok(Loaded::MovedAside {
        state: State::fresh(now_unix),
        moved_to,
        why,
    })
}

/// A state file's contents as a state, or in one line why they are none.
pub fn parse(bytes: &[u8]) -> Result<State, String> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) => Err(format!("not valid JSON ({e})")),
        Ok(v) => match v["version"].as_u64() {
            Some(n) if n == u64::from(STATE_VERSION) => serde_json::from_value(v)
                .map_err(|e| format!("not a version-{STATE_VERSION} state ({e})")),
            Some(n) => Err(format!(
                "version {n}, this spawnscope reads version {STATE_VERSION}"
            )),
            None => Err("no version".to_string()),
        },
    }
}

fn aside_name(path: &Path, now_unix: f64) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{}", now_unix as u64));
    path.with_file_name(name)
}

/// Saves `state` at `path` atomically (see the module's documentation).
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        // Serialised whole first: written straight to the file, serde's
        // small writes cost a system call each (thousands per save).
        let mut text = serde_json::to_vec(state).map_err(io::Error::from)?;
        text.push(b'\n');
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory is synced.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State::fresh(1_768_262_400.0);
        let mut u = UnitState {
            counts: Counters {
                forks: 3,
                execs: 421_491,
                exit_failed: 421_490,
                ..Counters::ZERO
            },
            ..Default::default()
        };
        u.lifetimes = vec![0; BUCKETS];
        u.lifetimes[33] = 421_490;
        s.units.insert("serial-getty@ttyS0.service".into(), u);
        s.findings.insert(
            "serial-getty@ttyS0.service\0/sbin/agetty".into(),
            FindingState {
                unit: "serial-getty@ttyS0.service".into(),
                first_seen_unix: 1_768_262_460.0,
                last_seen_unix: 1_772_582_400.0,
                restarts: 421_491,
                kind: FindingKind::RespawnLoop,
                severity: Severity::High,
                rate_per_min: 6.0,
                detail: None,
                source: FindingSource::SystemdAndLive,
            },
        );
        s.push_oom_kill(serde_json::json!({"pid": 42}));
        s
    }

    #[test]
    fn saved_state_loads_back_equal_and_leaves_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        assert_eq!(load(&p, 5.0).unwrap(), Loaded::Fresh(State::fresh(5.0)));
        let s = sample();
        save(&p, &s).unwrap();
        save(&p, &s).unwrap();
        assert_eq!(load(&p, 9.0).unwrap(), Loaded::Restored(s));
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"]);
    }

    #[test]
    fn corrupt_or_foreign_state_is_moved_aside_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        for (content, why) in [
            ("{\"version\":1,\"since_unix\":1,", "not valid JSON"),
            (
                "{\"version\":7}",
                "version 7, this spawnscope reads version 1",
            ),
            ("[1,2]", "no version"),
            ("{\"version\":1,\"units\":3}", "not a version-1 state"),
        ] {
            fs::write(&p, content).unwrap();
            match load(&p, 1_000.0).unwrap() {
                Loaded::MovedAside {
                    state,
                    moved_to,
                    why: w,
                } => {
                    assert!(w.starts_with(why), "{w}");
                    assert_eq!(state, State::fresh(1_000.0));
                    assert_eq!(moved_to, d.path().join("state.corrupt-1000"));
                    assert_eq!(fs::read_to_string(&moved_to).unwrap(), content);
                    assert!(!p.exists());
                }
                other => panic!("{content}: {other:?}"),
            }
        }
    }

    #[test]
    fn totals_continue_across_saves() {
        let mut s = sample();
        let delta = UnitState {
            counts: Counters {
                execs: 9,
                exit_failed: 9,
                ..Counters::ZERO
            },
            lifetimes: vec![0, 0, 1],
            ..Default::default()
        };
        s.units
            .get_mut("serial-getty@ttyS0.service")
            .unwrap()
            .add(&delta);
        let u = &s.units["serial-getty@ttyS0.service"];
        assert_eq!((u.counts.execs, u.counts.exit_failed), (421_500, 421_499));
        assert_eq!((u.lifetimes[2], u.lifetimes[33]), (1, 421_490));
        let mut short = UnitState::default();
        short.add(&delta);
        assert_eq!(short.lifetimes, [0, 0, 1], "grows to fit");
        for i in 0..150 {
            s.push_oom_kill(serde_json::json!({ "pid": i }));
        }
        assert_eq!(s.oom_kills.len(), MAX_OOM_KILLS);
        assert_eq!(s.oom_kills[0]["pid"], 50, "oldest dropped first");
    }

    #[test]
    fn units_beyond_the_bound_fold_into_other_sparing_findings() {
        let mut s = sample();
        for i in 0..MAX_UNITS + 5 {
            s.units.insert(
                format!("run-u{i}.service"),
                UnitState {
                    counts: Counters {
                        execs: 1,
                        ..Counters::ZERO
                    },
                    last_active_unix: i as f64,
                    ..Default::default()
                },
            );
        }
        // The loop's unit is the least recently active of all.
        s.units
            .get_mut("serial-getty@ttyS0.service")
            .unwrap()
            .last_active_unix = -1.0;
        let before: u64 = s.units.values().map(|u| u.counts.execs).sum();
        s.bound_units();
        assert_eq!(s.units.len(), MAX_UNITS - MAX_UNITS / 10 + 1, "+ other");
        assert!(s.units.contains_key("serial-getty@ttyS0.service"));
        assert!(!s.units.contains_key("run-u0.service"), "oldest folded");
        assert!(
            s.units
                .contains_key(&format!("run-u{}.service", MAX_UNITS + 4))
        );
        let after: u64 = s.units.values().map(|u| u.counts.execs).sum();
        assert_eq!(before, after, "nothing lost in the fold");
        // The old "other" is folded again, not replaced.
        for i in 0..MAX_UNITS {
            s.units.insert(
                format!("x{i}.scope"),
                UnitState {
                    counts: Counters {
                        execs: 2,
                        ..Counters::ZERO
                    },
                    ..Default::default()
                },
            );
        }
        s.bound_units();
        let again: u64 = s.units.values().map(|u| u.counts.execs).sum();
        assert_eq!(again, after + 2 * MAX_UNITS as u64);
    }

    #[test]
    fn unwritable_places_are_errors_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        fs::write(&file, "x").unwrap();
        let e = save(&file.join("state"), &sample())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("cannot write state {}/state: ", file.display())),
            "{e}"
        );
        let e = load(&file.join("state"), 1.0).unwrap_err().to_string();
        assert!(e.starts_with("cannot read state "), "{e}");
    }

    /// A state file as this version's predecessors wrote it (counts flat,
    /// kind and severity as names) loads, and is written back byte for
    /// byte.
    #[test]
    fn a_state_file_written_before_loads_and_saves_back_the_same() {
        let text = concat!(
            r#"{"version":1,"since_unix":1768262400.0,"saved_unix":1772582400.0,"#,
            r#""units":{"backup.service":{"forks":5,"execs":5,"exit_clean":1,"exit_failed":4,"#,
            r#""exit_signaled":0,"exit_core_dumped":2,"lifetimes":[0,0,3],"intervals":[],"#,
            r#""recreations":4,"last_active_unix":1772582000.5}},"#,
            r#""findings":{"backup.service":{"unit":"backup.service","#,
            r#""first_seen_unix":1768262460.0,"last_seen_unix":1772582000.5,"restarts":4,"#,
            r#""kind":"failing_periodic_job","severity":"low","rate_per_min":0.5,"#,
            r#""detail":{"executable":"/usr/bin/backup","exit_code":4}}},"#,
            r#""oom_kills":[{"pid":42}],"oom_kills_total":1}"#,
            "\n"
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        fs::write(&p, text).unwrap();
        let Loaded::Restored(s) = load(&p, 1.0).unwrap() else {
            panic!("not restored")
        };
        let u = &s.units["backup.service"];
        assert_eq!(
            u.counts,
            Counters {
                forks: 5,
                execs: 5,
                exit_clean: 1,
                exit_failed: 4,
                exit_core: 2,
                ..Counters::ZERO
            }
        );
        assert_eq!((u.recreations, u.lifetimes.as_slice()), (4, &[0, 0, 3][..]));
        let f = &s.findings["backup.service"];
        assert_eq!(
            (f.kind, f.severity),
            (FindingKind::FailingPeriodicJob, Severity::Low)
        );
        save(&p, &s).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), text);
    }

    /// Fields an older file lacks read as zero, and a kind or severity
    /// this version does not know does not cost the totals.
    #[test]
    fn missing_counts_and_unknown_names_do_not_set_the_state_aside() {
        let text = concat!(
            r#"{"version":1,"since_unix":1.0,"saved_unix":2.0,"#,
            r#""units":{"a.service":{"execs":7}},"#,
            r#""findings":{"a.service":{"unit":"a.service","first_seen_unix":1.0,"#,
            r#""last_seen_unix":701.0,"restarts":9,"kind":"","rate_per_min":6.0},"#,
            r#""b.service":{"unit":"b.service","first_seen_unix":1.0,"#,
            r#""last_seen_unix":2.0,"restarts":3,"kind":"failing_periodic_job","severity":"dire"}},"#,
            r#""oom_kills":[]}"#
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        fs::write(&p, text).unwrap();
        let Loaded::Restored(s) = load(&p, 1.0).unwrap() else {
            panic!("not restored")
        };
        let u = &s.units["a.service"];
        assert_eq!(u.counts.execs, 7);
        assert_eq!(u.process_exits(), 0);
        assert!(u.lifetimes.is_empty() && u.intervals.is_empty());
        // Seen for 700 s: high, by the ladder.
        let a = &s.findings["a.service"];
        assert_eq!(
            (a.kind, a.severity),
            (FindingKind::RespawnLoop, Severity::High)
        );
        let b = &s.findings["b.service"];
        assert_eq!(
            (b.kind, b.severity),
            (FindingKind::FailingPeriodicJob, Severity::Low)
        );
    }
}
