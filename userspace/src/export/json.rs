//! JSON: per unit, the exit classes and, per measure, the count,
//! percentiles and non-empty buckets. Schema (version 2):
//!
//! ```text
//! {"type":"spawnscope-histograms","version":2,"start_unix":F,"end_unix":F,
//!  "units":[{"unit":S,
//!            "exits":{"clean":N,"failed":N,"signaled":N,"core_dumped":N},  from exit records
//!            "totals":{"forks":N,"execs":N,"exits":{...}} | null,            the kernel's, from the summary
//!            "histograms":[{"measure":"lifetime"|"respawn_interval"|"exec_interval"|"exec_rate",
//!                           "unit_of_measure":S,"count":N,"min":N,"p50":N,"p90":N,
//!                           "p99":N,"p99_9":N,"max":N,"mean":F,
//!                           "buckets":[{"ge":N,"le":N,"count":N}]}],
//!            "executables":[{"executable":S,"histograms":[...]}]}],   units with 2+ executables
//!  "memory_used":{histogram as above, "measure":"memory_used"} | null,
//!  "exec_rate":[{"unit":S,"points":[{"t_s":F,"per_s":F}]}],   per trace interval
//!  "memory":[{"t_s":F,"used_bytes":N,"total_bytes":N}]}       per trace interval
//! ```
//!
//! `t_s` is seconds since the recording started.
//!
//! Values are integers in the unit of measure, at 3 significant figures:
//! a percentile is the highest value equivalent to the bucket that holds
//! that quantile of the count (rank rounded up); a bucket holds the values
//! from `ge` to `le` inclusive. Histograms with no values are left out.

use serde::Serialize;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use spawnscope_common::Counters;

use super::{Data, Measure};

pub const FILE_NAME: &str = "spawnscope-histograms.json";

pub struct Json;

impl super::Exporter for Json {
    fn files(&self, data: &Data) -> Vec<(&'static str, Vec<u8>)> {
        let mut v = serde_json::to_vec_pretty(&doc(data)).expect("plain data");
        v.push(b'\n');
        vec![(FILE_NAME, v)]
    }
}

#[derive(Serialize)]
struct Doc<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    start_unix: f64,
    end_unix: f64,
    units: Vec<UnitOut<'a>>,
    memory_used: Option<HistOut>,
    exec_rate: Vec<RateOut<'a>>,
    memory: Vec<MemOut>,
}

#[derive(Serialize)]
struct RateOut<'a> {
    unit: &'a str,
    points: Vec<RatePoint>,
}

#[derive(Serialize)]
struct RatePoint {
    t_s: f64,
    per_s: f64,
}

#[derive(Serialize)]
struct MemOut {
    t_s: f64,
    used_bytes: u64,
    total_bytes: u64,
}

/// The exit classes of counters, by this file's short names.
#[derive(Serialize)]
struct ExitsOut {
    clean: u64,
    failed: u64,
    signaled: u64,
    core_dumped: u64,
}

impl From<&Counters> for ExitsOut {
    fn from(c: &Counters) -> Self {
        Self {
            clean: c.exit_clean,
            failed: c.exit_failed,
            signaled: c.exit_signaled,
            core_dumped: c.exit_core,
        }
    }
}

/// The kernel's counts as this file has them: spawns, and the exits
/// nested by class.
#[derive(Serialize)]
struct TotalsOut {
    forks: u64,
    execs: u64,
    exits: ExitsOut,
}

impl From<&Counters> for TotalsOut {
    fn from(c: &Counters) -> Self {
        Self {
            forks: c.forks,
            execs: c.execs,
            exits: c.into(),
        }
    }
}

#[derive(Serialize)]
struct UnitOut<'a> {
    unit: &'a str,
    exits: ExitsOut,
    totals: Option<TotalsOut>,
    histograms: Vec<HistOut>,
    /// Only where it matters: units that ran more than one executable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    executables: Vec<ExeOut<'a>>,
}

#[derive(Serialize)]
struct ExeOut<'a> {
    executable: &'a str,
    histograms: Vec<HistOut>,
}

#[derive(Serialize)]
struct Bucket {
    ge: u64,
    le: u64,
    count: u64,
}

#[derive(Serialize)]
struct HistOut {
    measure: &'static str,
    unit_of_measure: &'static str,
    count: u64,
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p99_9: u64,
    max: u64,
    mean: f64,
    buckets: Vec<Bucket>,
}

fn hist(measure: &'static str, unit: &'static str, h: &Histogram<u64>) -> HistOut {
    HistOut {
        measure,
        unit_of_measure: unit,
        count: h.len(),
        min: h.min(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p99_9: h.value_at_quantile(0.999),
        max: h.max(),
        mean: (h.mean() * 1000.0).round() / 1000.0,
        buckets: h
            .iter_recorded()
            .map(|v| Bucket {
                ge: h.lowest_equivalent(v.value_iterated_to()),
                le: v.value_iterated_to(),
                count: v.count_at_value(),
            })
            .collect(),
    }
}

fn hists(h: &BTreeMap<Measure, Histogram<u64>>) -> Vec<HistOut> {
    h.iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(m, h)| hist(m.name(), m.unit(), h))
        .collect()
}

fn doc(data: &Data) -> Doc<'_> {
    Doc {
        kind: "spawnscope-histograms",
        version: 2,
        start_unix: data.start_unix,
        end_unix: data.end_unix,
        units: data
            .units
            .iter()
            .map(|(label, u)| UnitOut {
                unit: label,
                exits: (&u.exits).into(),
                totals: u.totals.as_ref().map(Into::into),
                histograms: hists(&u.hists),
                executables: if u.executables.len() > 1 {
                    u.executables
                        .iter()
                        .map(|(exe, h)| ExeOut {
                            executable: exe,
                            histograms: hists(h),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect(),
        memory_used: (!data.memory_hist.is_empty())
            .then(|| hist("memory_used", "bytes", &data.memory_hist)),
        exec_rate: data
            .rates
            .iter()
            .map(|(unit, pts)| RateOut {
                unit,
                points: pts
                    .iter()
                    .map(|&(t_s, per_s)| RatePoint { t_s, per_s })
                    .collect(),
            })
            .collect(),
        memory: data
            .memory
            .iter()
            .map(|&(t_s, used_bytes, total_bytes)| MemOut {
                t_s,
                used_bytes,
                total_bytes,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{Exporter, tests::fixture};

    /// The schema, on a fixed recording: any change to it shows here and
    /// must be made on purpose (regenerate with SPAWNSCOPE_BLESS=1).
    #[test]
    fn golden_schema_on_the_fixture() {
        let d = Data::from_recording(&fixture()).unwrap();
        let got = String::from_utf8(Json.files(&d).remove(0).1).unwrap();
        let golden = fixture().with_file_name("host-loop.histograms.json");
        if std::env::var_os("SPAWNSCOPE_BLESS").is_some() {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap();
        assert_eq!(got, want, "differs from {}", golden.display());
        // What the golden file says, checked against the histograms too.
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        let h = &v["units"][0]["histograms"][0];
        assert_eq!(h["measure"], "lifetime");
        let sum: u64 = h["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, h["count"].as_u64().unwrap());
    }
}
