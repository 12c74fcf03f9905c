//! What a trace reports: per-interval rows and the final summary, computed
//! from counter snapshots. Pure, so it is tested without a kernel.

use std::collections::BTreeMap;

use serde::Serialize;
use spawnscope_common::Counters;

/// One reading of the kernel maps, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub per_cgroup: BTreeMap<u64, Counters>,
    /// Events whose cgroup found the counters map full.
    pub overflow: Counters,
    pub probe: ProbeStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProbeStats {
    /// Events counted in `overflow` because the counters map was full.
    pub map_full: u64,
    /// Kernel reads that failed (event still counted).
    pub read_failed: u64,
    /// Events seen with no kernel layout (always 0 with this loader).
    pub no_layout: u64,
}

/// Counters as they appear in JSON: flat, with the process-exit total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CountersOut {
    pub forks: u64,
    pub threads: u64,
    pub execs: u64,
    pub exits: u64,
    pub exit_clean: u64,
    pub exit_failed: u64,
    pub exit_signaled: u64,
    pub exit_core_dumped: u64,
    pub thread_exits: u64,
}

impl From<&Counters> for CountersOut {
    fn from(c: &Counters) -> Self {
        Self {
            forks: c.forks,
            threads: c.threads,
            execs: c.execs,
            exits: c.process_exits(),
            exit_clean: c.exit_clean,
            exit_failed: c.exit_failed,
            exit_signaled: c.exit_signaled,
            exit_core_dumped: c.exit_core,
            thread_exits: c.thread_exits,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub forks_per_s: f64,
    pub execs_per_s: f64,
    pub exits_per_s: f64,
    pub threads_per_s: f64,
}

impl Rates {
    fn of(delta: &Counters, secs: f64) -> Self {
        let r = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        Self {
            forks_per_s: r(delta.forks),
            execs_per_s: r(delta.execs),
            exits_per_s: r(delta.process_exits()),
            threads_per_s: r(delta.threads),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupRow {
    pub cgroup_id: u64,
    /// Path below the cgroup2 mount, or null when it could not be resolved.
    pub cgroup: Option<String>,
    /// Since the trace started.
    pub total: CountersOut,
    /// During the last interval (absent in the summary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<CountersOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rates>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time_unix: f64,
    pub elapsed_s: f64,
    pub interval_s: f64,
    /// Cgroups with any activity in this interval, busiest first.
    pub cgroups: Vec<CgroupRow>,
    pub overflow: CountersOut,
    pub probe: ProbeStats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time_unix: f64,
    pub duration_s: f64,
    /// Sum over every cgroup, overflow included.
    pub totals: CountersOut,
    /// Every cgroup seen, busiest first.
    pub cgroups: Vec<CgroupRow>,
    pub overflow: CountersOut,
    pub probe: ProbeStats,
    /// "group_dead" (exact) or "legacy" (signal_struct.live).
    pub exit_program: &'static str,
}

fn sort_busiest(rows: &mut [CgroupRow], key: impl Fn(&CgroupRow) -> u64) {
    rows.sort_by(|a, b| key(b).cmp(&key(a)).then(a.cgroup_id.cmp(&b.cgroup_id)));
}

/// How busy a cgroup is, for ordering: every event counts once.
fn activity_out(c: &CountersOut) -> u64 {
    c.forks + c.threads + c.execs + c.exits + c.thread_exits
}

/// Rows for the cgroups that changed between `prev` and `cur`.
pub fn interval_rows(
    prev: &Snapshot,
    cur: &Snapshot,
    secs: f64,
    name: impl Fn(u64) -> Option<String>,
) -> Vec<CgroupRow> {
    let mut rows: Vec<CgroupRow> = cur
        .per_cgroup
        .iter()
        .filter_map(|(&id, total)| {
            let before = prev.per_cgroup.get(&id).copied().unwrap_or_default();
            let delta = total.saturating_sub(&before);
            (!delta.is_zero()).then(|| CgroupRow {
                cgroup_id: id,
                cgroup: name(id),
                total: total.into(),
                interval: Some((&delta).into()),
                rate: Some(Rates::of(&delta, secs)),
            })
        })
        .collect();
    sort_busiest(&mut rows, |r| r.interval.as_ref().map_or(0, activity_out));
    rows
}

pub fn summary_rows(cur: &Snapshot, name: impl Fn(u64) -> Option<String>) -> Vec<CgroupRow> {
    let mut rows: Vec<CgroupRow> = cur
        .per_cgroup
        .iter()
        .map(|(&id, total)| CgroupRow {
            cgroup_id: id,
            cgroup: name(id),
            total: total.into(),
            interval: None,
            rate: None,
        })
        .collect();
    sort_busiest(&mut rows, |r| activity_out(&r.total));
    rows
}

pub fn totals(cur: &Snapshot) -> Counters {
    cur.per_cgroup
        .values()
        .fold(cur.overflow, |acc, c| acc.saturating_add(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entries: &[(u64, Counters)]) -> Snapshot {
        Snapshot {
            per_cgroup: entries.iter().copied().collect(),
            ..Default::default()
        }
    }

    fn c(forks: u64, execs: u64, clean: u64) -> Counters {
        Counters {
            forks,
            execs,
            exit_clean: clean,
            ..Counters::ZERO
        }
    }

    #[test]
    fn interval_rows_hold_deltas_rates_and_skip_idle_cgroups() {
        let prev = snap(&[(10, c(5, 5, 5)), (20, c(1, 0, 0))]);
        let cur = snap(&[(10, c(9, 7, 5)), (20, c(1, 0, 0)), (30, c(20, 0, 20))]);
        let rows = interval_rows(&prev, &cur, 2.0, |id| Some(format!("/cg{id}")));
        let ids: Vec<u64> = rows.iter().map(|r| r.cgroup_id).collect();
        assert_eq!(ids, vec![30, 10], "busiest first, idle cgroup 20 left out");
        let r10 = &rows[1];
        assert_eq!(r10.cgroup.as_deref(), Some("/cg10"));
        assert_eq!(r10.total.forks, 9);
        assert_eq!(r10.interval.unwrap().forks, 4);
        assert_eq!(r10.interval.unwrap().execs, 2);
        assert_eq!(r10.rate.unwrap().forks_per_s, 2.0);
        assert_eq!(r10.rate.unwrap().execs_per_s, 1.0);
        assert_eq!(rows[0].rate.unwrap().exits_per_s, 10.0);
    }

    #[test]
    fn zero_length_interval_has_zero_rates_not_nan() {
        let cur = snap(&[(1, c(3, 0, 0))]);
        let rows = interval_rows(&Snapshot::default(), &cur, 0.0, |_| None);
        assert_eq!(rows[0].rate.unwrap().forks_per_s, 0.0);
    }

    #[test]
    fn summary_orders_all_cgroups_and_totals_include_overflow() {
        let mut cur = snap(&[(1, c(1, 0, 0)), (2, c(0, 10, 0)), (3, c(0, 0, 0))]);
        cur.overflow = c(100, 0, 0);
        let rows = summary_rows(&cur, |_| None);
        assert_eq!(
            rows.iter().map(|r| r.cgroup_id).collect::<Vec<_>>(),
            vec![2, 1, 3]
        );
        let t = totals(&cur);
        assert_eq!((t.forks, t.execs), (101, 10));
    }

    #[test]
    fn json_field_names_are_stable() {
        let row = CgroupRow {
            cgroup_id: 7,
            cgroup: None,
            total: (&Counters {
                exit_core: 2,
                exit_signaled: 1,
                ..Counters::ZERO
            })
                .into(),
            interval: None,
            rate: None,
        };
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cgroup_id": 7, "cgroup": null,
                "total": {"forks": 0, "threads": 0, "execs": 0, "exits": 3,
                          "exit_clean": 0, "exit_failed": 0, "exit_signaled": 1,
                          "exit_core_dumped": 2, "thread_exits": 0}
            })
        );
    }
}
