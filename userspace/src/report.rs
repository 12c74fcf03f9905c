//! What a trace reports: per-interval rows and the final summary, computed
//! from counter snapshots. Pure, so it is tested without a kernel.

use std::{collections::BTreeMap, ffi::CString};

use serde::Serialize;
use spawnscope_common::{Counters, Lifetimes};

use crate::{
    cgroupfs::Resolved,
    unit::{Container, Kind},
};

/// One reading of the kernel maps, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub per_cgroup: BTreeMap<u64, Counters>,
    /// Events whose cgroup found the counters map full.
    pub overflow: Counters,
    pub probe: ProbeStats,
    /// Process lifetime histograms per cgroup.
    pub lifetimes: BTreeMap<u64, Lifetimes>,
    /// Event records that found the ring buffer full, by kind.
    pub dropped: EventCounts,
}

/// A count per event kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    pub exec: u64,
    pub exit: u64,
    pub fork: u64,
    /// OOM kill records (streamed in every mode).
    pub oom: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProbeStats {
    /// Events counted in `overflow` because the counters map was full.
    pub map_full: u64,
    /// Kernel reads that failed (event still counted).
    pub read_failed: u64,
    /// Events seen with no kernel layout (always 0 with this loader).
    pub no_layout: u64,
    /// cgroup creations the probe could not report (ring buffer full); those
    /// cgroups are named by walking the tree instead, if they still exist.
    pub names_lost: u64,
    /// Process exits whose cgroup found the lifetimes map full (their
    /// lifetime is in no histogram; the exit itself is counted).
    pub lifetimes_full: u64,
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

/// How rows are grouped (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// One row per systemd unit (per container and user manager).
    Unit,
    /// One row per slice.
    Slice,
    /// One row per cgroup id.
    Cgroup,
    /// One row per container; the host is "host".
    Container,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Unit => "unit",
            By::Slice => "slice",
            By::Cgroup => "cgroup",
            By::Container => "container",
        }
    }
}

/// `--unit GLOB` and `--container NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub units: Vec<String>,
    pub containers: Vec<String>,
}

/// fnmatch(3) without escapes, as `systemctl list-units PATTERN` matches:
/// backslashes in unit names (`\x2d`) are literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (Ok(p), Ok(n)) = (CString::new(pattern), CString::new(name)) else {
        return false;
    };
    // SAFETY: two valid NUL-terminated strings.
    unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), libc::FNM_NOESCAPE) == 0 }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.containers.is_empty()
    }

    pub fn accepts(&self, r: &Resolved) -> bool {
        let owner = r.owner.as_ref();
        let unit_ok = self.units.is_empty()
            || owner
                .and_then(|o| o.unit.as_deref())
                .is_some_and(|u| self.units.iter().any(|g| glob_match(g, u)));
        let container_ok = self.containers.is_empty()
            || owner
                .and_then(|o| o.container.as_ref())
                .is_some_and(|c| self.containers.iter().any(|w| c.matches(w)));
        unit_ok && container_ok
    }

    /// The same test for a unit known by name and container label (a
    /// systemd manager's service), not by cgroup.
    pub fn admits_unit(&self, unit: &str, container: Option<&str>) -> bool {
        (self.units.is_empty() || self.units.iter().any(|g| glob_match(g, unit)))
            && (self.containers.is_empty()
                || container.is_some_and(|c| self.containers.iter().any(|w| w == c)))
    }
}

/// The cgroups a row is made of, by path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// Path from the cgroup2 root, or null if unresolved.
    pub path: Option<String>,
    /// Every cgroup id seen at that path (a restarted unit gets a new one).
    pub ids: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The row's name: the unit, slice, cgroup path or container label,
    /// per `--by`; the raw path (or "cgroup-id:N") when there is none.
    pub group: String,
    /// Owner fields shared by every cgroup of the row; null where they
    /// differ or do not apply to the grouping.
    pub unit: Option<String>,
    pub slice: Option<String>,
    pub template: Option<String>,
    pub instance: Option<String>,
    pub user: Option<u32>,
    pub user_manager: Option<bool>,
    pub container: Option<Container>,
    /// Only with `--by cgroup`: what the path was recognised as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    pub cgroups: Vec<Member>,
    /// Since the trace started.
    pub total: Counters,
    /// Summary only: process lifetimes, log2 buckets with any count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetimes: Option<Vec<LifetimeBucket>>,
    /// Summary only, when events were streamed: exec intervals (time
    /// between two execs of the same executable in this group), log2
    /// buckets with any count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Vec<LifetimeBucket>>,
    /// During the last interval (absent in the summary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Counters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rates>,
}

/// Processes that lived at least `ge_ns` and less than `lt_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LifetimeBucket {
    pub ge_ns: u64,
    pub lt_ns: u64,
    pub count: u64,
}

fn sparse(h: &Lifetimes) -> Vec<LifetimeBucket> {
    h.buckets
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &count)| LifetimeBucket {
            ge_ns: if i == 0 { 0 } else { 1 << i },
            lt_ns: if i == 63 { u64::MAX } else { 1 << (i + 1) },
            count,
        })
        .collect()
}

/// The grouping key: container, user manager, then the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    container: Option<String>,
    user_manager: Option<u32>,
    name: String,
}

impl Key {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's label, if the group is in one.
    pub fn container(&self) -> Option<&str> {
        self.container.as_deref()
    }

    /// One string for the group, as exported files and the sentinel name
    /// it: "name", "name (uid N)" for a user manager's, "... @container".
    pub fn label(&self) -> String {
        unit_label(&self.name, self.user_manager, self.container.as_deref())
    }
}

/// A unit as every report names it: `unit`, `unit (uid N)` for a user
/// manager's, `unit @container`.
pub fn unit_label(name: &str, user_manager: Option<u32>, container: Option<&str>) -> String {
    let mut l = name.to_string();
    if let Some(uid) = user_manager {
        l.push_str(&format!(" (uid {uid})"));
    }
    if let Some(c) = container {
        l.push_str(&format!(" @{c}"));
    }
    l
}

fn id_label(id: u64) -> String {
    format!("cgroup-id:{id}")
}

/// The row a cgroup's counts go to under `--by`.
pub fn key_of(by: By, id: u64, r: &Resolved) -> Key {
    let fallback = || r.path.clone().unwrap_or_else(|| id_label(id));
    let o = r.owner.as_ref();
    let container = o.and_then(|o| o.container.as_ref()).map(Container::label);
    let user_manager = o.filter(|o| o.user_manager).and_then(|o| o.user);
    match by {
        By::Cgroup => Key {
            container: None,
            user_manager: None,
            name: format!("{}\0{id}", fallback()),
        },
        By::Unit => Key {
            container,
            user_manager,
            name: o.and_then(|o| o.unit.clone()).unwrap_or_else(fallback),
        },
        By::Slice => Key {
            container,
            user_manager,
            name: o.and_then(|o| o.slice.clone()).unwrap_or_else(fallback),
        },
        By::Container => Key {
            container: None,
            user_manager: None,
            name: container.unwrap_or_else(|| "host".to_string()),
        },
    }
}

/// The owner fields that mean something for a grouping.
fn owner_view(by: By, r: &Resolved) -> Row {
    let o = r.owner.clone();
    let mut row = Row {
        group: String::new(),
        unit: None,
        slice: None,
        template: None,
        instance: None,
        user: None,
        user_manager: None,
        container: o.as_ref().and_then(|o| o.container.clone()),
        kind: None,
        subpath: None,
        cgroups: Vec::new(),
        total: Counters::ZERO,
        lifetimes: None,
        intervals: None,
        interval: None,
        rate: None,
    };
    let Some(o) = o else { return row };
    if by == By::Container {
        return row;
    }
    row.slice = o.slice;
    row.user = o.user;
    row.user_manager = Some(o.user_manager);
    if by == By::Slice {
        return row;
    }
    row.unit = o.unit;
    row.template = o.template;
    row.instance = o.instance;
    if by == By::Cgroup {
        row.kind = Some(o.kind);
        row.subpath = o.subpath;
    }
    row
}

/// Keeps a field only where both rows agree.
fn keep_common(acc: &mut Row, other: &Row) {
    fn k<T: PartialEq>(a: &mut Option<T>, b: &Option<T>) {
        if a != b {
            *a = None;
        }
    }
    k(&mut acc.unit, &other.unit);
    k(&mut acc.slice, &other.slice);
    k(&mut acc.template, &other.template);
    k(&mut acc.instance, &other.instance);
    k(&mut acc.user, &other.user);
    k(&mut acc.user_manager, &other.user_manager);
    k(&mut acc.container, &other.container);
    k(&mut acc.kind, &other.kind);
    k(&mut acc.subpath, &other.subpath);
}

struct Acc {
    row: Row,
    total: Counters,
    delta: Counters,
    lifetimes: Lifetimes,
}

/// Groups per-cgroup (total, delta) pairs into rows, busiest first.
fn group(
    by: By,
    filter: &Filter,
    entries: impl Iterator<Item = (u64, Counters, Option<Counters>)>,
    resolve: &dyn Fn(u64) -> Resolved,
    secs: Option<f64>,
    lifetimes: Option<&BTreeMap<u64, Lifetimes>>,
    intervals: Option<&BTreeMap<Key, Lifetimes>>,
) -> Vec<Row> {
    let mut groups: BTreeMap<Key, Acc> = BTreeMap::new();
    for (id, total, delta) in entries {
        let r = resolve(id);
        if !filter.accepts(&r) {
            continue;
        }
        let key = key_of(by, id, &r);
        let view = owner_view(by, &r);
        let acc = groups.entry(key.clone()).or_insert_with(|| Acc {
            row: Row {
                group: match by {
                    By::Cgroup => r.path.clone().unwrap_or_else(|| id_label(id)),
                    _ => key.name.clone(),
                },
                ..view.clone()
            },
            total: Counters::ZERO,
            delta: Counters::ZERO,
            lifetimes: Lifetimes::ZERO,
        });
        if let Some(h) = lifetimes.and_then(|l| l.get(&id)) {
            acc.lifetimes = acc.lifetimes.saturating_add(h);
        }
        keep_common(&mut acc.row, &view);
        acc.total = acc.total.saturating_add(&total);
        if let Some(d) = delta {
            acc.delta = acc.delta.saturating_add(&d);
        }
        match acc.row.cgroups.iter_mut().find(|m| m.path == r.path) {
            Some(m) => m.ids.push(id),
            None => acc.row.cgroups.push(Member {
                path: r.path,
                ids: vec![id],
            }),
        }
    }
    let mut rows: Vec<(u64, Row)> = groups
        .into_iter()
        .map(|(key, mut a)| {
            a.row.total = a.total;
            if lifetimes.is_some() {
                a.row.lifetimes = Some(sparse(&a.lifetimes));
            }
            if let Some(iv) = intervals {
                a.row.intervals = Some(iv.get(&key).map(sparse).unwrap_or_default());
            }
            if let Some(secs) = secs {
                a.row.interval = Some(a.delta);
                a.row.rate = Some(Rates::of(&a.delta, secs));
            }
            a.row.cgroups.sort_by(|x, y| x.path.cmp(&y.path));
            let busy = activity(if secs.is_some() { &a.delta } else { &a.total });
            (busy, a.row)
        })
        .collect();
    // Busiest first; ties in name order so output is stable.
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.group.cmp(&b.1.group))
            .then_with(|| a.1.container.cmp(&b.1.container))
    });
    rows.into_iter().map(|(_, r)| r).collect()
}

/// How busy a cgroup is, for ordering: every event counts once.
fn activity(c: &Counters) -> u64 {
    c.forks + c.threads + c.execs + c.process_exits() + c.thread_exits
}

/// Rows for the groups that changed between `prev` and `cur`.
pub fn interval_rows(
    prev: &Snapshot,
    cur: &Snapshot,
    secs: f64,
    by: By,
    filter: &Filter,
    resolve: &dyn Fn(u64) -> Resolved,
) -> Vec<Row> {
    let entries = cur.per_cgroup.iter().filter_map(|(&id, total)| {
        let before = prev.per_cgroup.get(&id).copied().unwrap_or_default();
        let delta = total.saturating_sub(&before);
        (!delta.is_zero()).then_some((id, *total, Some(delta)))
    });
    group(by, filter, entries, resolve, Some(secs), None, None)
}

pub fn summary_rows(
    cur: &Snapshot,
    by: By,
    filter: &Filter,
    resolve: &dyn Fn(u64) -> Resolved,
) -> Vec<Row> {
    summary_rows_with(cur, by, filter, resolve, None)
}

/// [`summary_rows`] with exec intervals per group, where events gave
/// them.
pub fn summary_rows_with(
    cur: &Snapshot,
    by: By,
    filter: &Filter,
    resolve: &dyn Fn(u64) -> Resolved,
    intervals: Option<&BTreeMap<Key, Lifetimes>>,
) -> Vec<Row> {
    let entries = cur.per_cgroup.iter().map(|(&id, t)| (id, *t, None));
    group(
        by,
        filter,
        entries,
        resolve,
        None,
        Some(&cur.lifetimes),
        intervals,
    )
}

/// The sum of rows' totals (for `matched`).
pub fn sum_rows(rows: &[Row]) -> Counters {
    rows.iter()
        .fold(Counters::ZERO, |acc, r| acc.saturating_add(&r.total))
}

pub fn totals(cur: &Snapshot) -> Counters {
    cur.per_cgroup
        .values()
        .fold(cur.overflow, |acc, c| acc.saturating_add(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit;

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

    /// Ids 1..: a crash-looping unit that got two cgroups (restarted), a
    /// delegated subtree, a unit in a container, a raw cgroup, an unknown id.
    fn resolver(id: u64) -> Resolved {
        let path = match id {
            1 | 2 => "/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service",
            3 => "/system.slice/cron.service",
            4 => "/system.slice/cron.service/sub",
            5 => "/web/payload/system.slice/cron.service",
            6 => "/spawnscope-test-x",
            _ => {
                return Resolved {
                    path: None,
                    owner: None,
                };
            }
        };
        Resolved {
            path: Some(path.to_string()),
            owner: Some(unit::parse(path.as_bytes())),
        }
    }

    fn all() -> Snapshot {
        snap(&[
            (1, c(1, 1, 0)),
            (2, c(1, 1, 0)),
            (3, c(5, 0, 0)),
            (4, c(1, 0, 0)),
            (5, c(0, 7, 0)),
            (6, c(0, 0, 3)),
            (99, c(0, 0, 1)),
        ])
    }

    #[test]
    fn by_unit_merges_restarts_and_delegated_cgroups_per_container() {
        let rows = summary_rows(&all(), By::Unit, &Filter::default(), &resolver);
        let names: Vec<(&str, Option<String>)> = rows
            .iter()
            .map(|r| (r.group.as_str(), r.container.as_ref().map(|c| c.label())))
            .collect();
        assert_eq!(
            names,
            vec![
                ("cron.service", Some("web".to_string())),
                ("cron.service", None),
                ("serial-getty@ttyS0.service", None),
                ("/spawnscope-test-x", None),
                ("cgroup-id:99", None),
            ]
        );
        let getty = &rows[2];
        assert_eq!(getty.total.forks, 2);
        assert_eq!(getty.cgroups.len(), 1);
        assert_eq!(getty.cgroups[0].ids, vec![1, 2]);
        assert_eq!(getty.instance.as_deref(), Some("ttyS0"));
        assert_eq!(
            getty.slice.as_deref(),
            Some("system-serial\\x2dgetty.slice")
        );
        let cron = &rows[1];
        assert_eq!(cron.total.forks, 6);
        assert_eq!(
            cron.cgroups
                .iter()
                .map(|m| m.path.clone().unwrap())
                .collect::<Vec<_>>(),
            vec![
                "/system.slice/cron.service",
                "/system.slice/cron.service/sub"
            ]
        );
        assert_eq!(cron.subpath, None, "subpath is per cgroup, not per unit");
        assert_eq!(rows[3].unit, None);
        assert_eq!(rows[4].cgroups[0].path, None);
    }

    #[test]
    fn by_slice_container_and_cgroup() {
        let f = Filter::default();
        let rows = summary_rows(&all(), By::Slice, &f, &resolver);
        let sys = rows
            .iter()
            .find(|r| r.group == "system.slice" && r.container.is_none())
            .unwrap();
        assert_eq!(sys.total.forks, 6);
        assert_eq!(sys.unit, None);
        let rows = summary_rows(&all(), By::Container, &f, &resolver);
        let groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(groups, vec!["host", "web"]);
        assert_eq!(rows[0].total.forks, 8);
        assert_eq!(rows[1].total.execs, 7);
        let rows = summary_rows(&all(), By::Cgroup, &f, &resolver);
        assert_eq!(rows.len(), 7);
        let sub = rows.iter().find(|r| r.cgroups[0].ids == [4]).unwrap();
        assert_eq!(sub.subpath.as_deref(), Some("/sub"));
        assert_eq!(sub.unit.as_deref(), Some("cron.service"));
        assert_eq!(sub.kind, Some(Kind::Unit));
    }

    #[test]
    fn filters_select_units_by_glob_and_containers_by_name() {
        let f = Filter {
            units: vec!["serial-getty@*".into(), "nomatch".into()],
            containers: vec![],
        };
        let rows = summary_rows(&all(), By::Unit, &f, &resolver);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].group, "serial-getty@ttyS0.service");
        assert_eq!(sum_rows(&rows).forks, 2);
        let f = Filter {
            units: vec!["cron.*".into()],
            containers: vec!["web".into()],
        };
        let rows = summary_rows(&all(), By::Unit, &f, &resolver);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cgroups[0].ids, vec![5]);
        // Backslashes are literal, as systemctl matches.
        assert!(glob_match(
            "system-serial\\x2d*.slice",
            "system-serial\\x2dgetty.slice"
        ));
        assert!(!glob_match("a?c", "ac"));
    }

    #[test]
    fn interval_rows_hold_deltas_rates_and_skip_idle_groups() {
        let prev = snap(&[(3, c(5, 5, 5)), (6, c(1, 0, 0))]);
        let cur = snap(&[(3, c(9, 7, 5)), (6, c(1, 0, 0)), (1, c(20, 0, 20))]);
        let rows = interval_rows(&prev, &cur, 2.0, By::Unit, &Filter::default(), &resolver);
        let groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(
            groups,
            vec!["serial-getty@ttyS0.service", "cron.service"],
            "busiest first, idle group left out"
        );
        let cron = &rows[1];
        assert_eq!(cron.total.forks, 9);
        assert_eq!(cron.interval.unwrap().forks, 4);
        assert_eq!(cron.interval.unwrap().execs, 2);
        assert_eq!(cron.rate.unwrap().forks_per_s, 2.0);
        assert_eq!(cron.rate.unwrap().execs_per_s, 1.0);
        assert_eq!(rows[0].rate.unwrap().exits_per_s, 10.0);
    }

    #[test]
    fn zero_length_interval_has_zero_rates_not_nan() {
        let cur = snap(&[(1, c(3, 0, 0))]);
        let rows = interval_rows(
            &Snapshot::default(),
            &cur,
            0.0,
            By::Cgroup,
            &Filter::default(),
            &resolver,
        );
        assert_eq!(rows[0].rate.unwrap().forks_per_s, 0.0);
    }

    #[test]
    fn totals_include_overflow() {
        let mut cur = snap(&[(1, c(1, 0, 0)), (2, c(0, 10, 0))]);
        cur.overflow = c(100, 0, 0);
        let t = totals(&cur);
        assert_eq!((t.forks, t.execs), (101, 10));
    }

    #[test]
    fn json_field_names_are_stable() {
        let mut cur = snap(&[(
            1,
            Counters {
                exit_core: 2,
                exit_signaled: 1,
                ..Counters::ZERO
            },
        )]);
        let mut h = Lifetimes::ZERO;
        h.buckets[0] = 1;
        h.buckets[20] = 2;
        cur.lifetimes.insert(1, h);
        let rows = summary_rows(&cur, By::Unit, &Filter::default(), &resolver);
        let v = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "group": "serial-getty@ttyS0.service",
                "unit": "serial-getty@ttyS0.service",
                "slice": "system-serial\\x2dgetty.slice",
                "template": "serial-getty@.service",
                "instance": "ttyS0",
                "user": null, "user_manager": false, "container": null,
                "cgroups": [{"path": "/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service", "ids": [1]}],
                "total": {"forks": 0, "threads": 0, "execs": 0, "exits": 3,
                          "exit_clean": 0, "exit_failed": 0, "exit_signaled": 1,
                          "exit_core_dumped": 2, "thread_exits": 0},
                "lifetimes": [{"ge_ns": 0, "lt_ns": 2, "count": 1},
                              {"ge_ns": 1 << 20, "lt_ns": 1 << 21, "count": 2}]
            })
        );
    }
}
