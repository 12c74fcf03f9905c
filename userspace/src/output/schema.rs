//! The JSON documents `trace` writes (`--json`, `--record`) and `analyze`
//! reads back: one interval line per tick and one summary at the end.

use serde::{Serialize, Serializer};
use spawnscope_common::Counters;

use crate::report::{By, EventCounts, Filter, ProbeStats, Row};

/// The version of the JSON objects spawnscope writes: every `--json` line
/// (`trace`, `analyze`, `postmortem`, `doctor`), every line of a recording
/// and the sentinel's alerts, each as its `schema` field. It is raised when a field changes meaning
/// or goes away; a new field leaves it as it is.
pub const SCHEMA: u32 = 1;

/// The `schema` field of every object written: serialized as [`SCHEMA`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schema;

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(SCHEMA)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: Schema,
    pub time_unix: f64,
    pub elapsed_s: f64,
    pub interval_s: f64,
    pub by: By,
    /// Groups with any activity in this interval, busiest first.
    pub rows: Vec<Row>,
    pub overflow: Counters,
    pub probe: ProbeStats,
    /// The memory forecast as of the latest sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::mempress::MemForecast>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: Schema,
    pub time_unix: f64,
    pub duration_s: f64,
    pub by: By,
    pub filter: Filter,
    /// Sum over every cgroup, overflow included, whatever the filter.
    pub totals: Counters,
    /// Sum over the rows that passed the filter; null without a filter.
    pub matched: Option<Counters>,
    /// Every group seen, busiest first.
    pub rows: Vec<Row>,
    pub overflow: Counters,
    pub probe: ProbeStats,
    /// "group_dead" (exact) or "legacy" (signal_struct.live).
    pub exit_program: &'static str,
    /// Null when cgroups can be named; otherwise why they cannot.
    pub attribution_warning: Option<String>,
    /// Present when events were streamed or recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventAccounting>,
    /// CLOCK_MONOTONIC ns of this summary: `analyze` judges a recording
    /// as of this instant, as the live run did.
    pub monotonic_end_ns: u64,
    /// Respawn loops and failing periodic jobs, most severe first; absent
    /// with --no-detect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<crate::detect::Finding>>,
    /// What systemd's managers (the host's and each container's) said at
    /// start; absent with --no-systemd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd: Option<SystemdSummary>,
    /// Every OOM kill seen, oldest first (the same objects as the live
    /// `oom_kill` lines).
    pub oom_kills: Vec<serde_json::Value>,
    pub memory: MemorySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySummary {
    /// Which hierarchy's memory cgroups were sampled; null for none.
    pub hierarchy: Option<crate::mempress::MemHierarchy>,
    pub samples: usize,
    /// Median cost of one sampling pass, in microseconds.
    pub pass_us_p50: Option<u64>,
    /// Median of the passes that also read /proc/slabinfo (1 in 6).
    pub pass_us_slab_p50: Option<u64>,
    pub pass_us_max: Option<u64>,
    /// Memory cgroups read per pass (the last pass).
    pub cgroups: usize,
    pub warnings: Vec<crate::mempress::MemWarning>,
    /// Rises of memory cgroups' own OOM-kill counters.
    pub memcg_oom_kills: Vec<crate::mempress::MemcgOomKill>,
    /// As of the last sample.
    pub forecast: crate::mempress::MemForecast,
}

/// Per kind, `counted` = `delivered` + `dropped`, exactly: the probes are
/// detached before the final reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventAccounting {
    /// The kernel's counters: execs, process exits, forks (0 unless fork
    /// events were asked for).
    pub counted: EventCounts,
    /// Records userspace received (before any display filter).
    pub delivered: EventCounts,
    /// Records that found the ring buffer full.
    pub dropped: EventCounts,
    /// Records of an unknown kind or size (0 unless probe and loader differ).
    pub undecodable: u64,
}

/// systemd's own memory, read once at start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemdSummary {
    /// Wall time of the whole read, every manager at once.
    pub read_ms: f64,
    pub managers: Vec<ManagerReading>,
    /// Loops systemd had counted that no live finding continues: each was
    /// reported at start, as a finding with `source: "systemd"`.
    pub loops: Vec<crate::detect::Prior>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagerReading {
    /// None for the host's manager.
    pub container: Option<String>,
    /// Services read; 0 when the manager could not be read.
    pub services: usize,
    /// Why it could not be read.
    pub error: Option<String>,
}
