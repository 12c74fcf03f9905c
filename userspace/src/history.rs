//! What systemd already knows when `trace` or the sentinel starts: every
//! manager's services (the host's and each container's), read once over
//! D-Bus. A loop that is running right now is a finding at once, with
//! systemd's counter; the sentinel starts a unit's restarts total at
//! systemd's count the first time it sees the unit.

use std::{collections::HashMap, path::Path, time::Instant};

use crate::{
    detect::{FindingKind, FindingSource, Prior, Severity},
    journal::{self, Filter, Journal, Which},
    output::schema::{ManagerReading, SystemdSummary},
    postmortem::ID_RESTART_SCHEDULED,
    sentinel::track::Seed,
    systemd::{self, ExecMainCode, Reading, RestartSpan, ServiceState, SystemdLoop},
};

/// Every manager's reading, as of one instant.
pub struct Known {
    pub readings: Vec<Reading>,
    /// What the managers' journals say of the loops' current counts, by
    /// (container, unit).
    pub spans: HashMap<(Option<String>, String), RestartSpan>,
    /// The whole read: systemd and the journals.
    pub read_ms: f64,
    /// When it was read: realtime µs, and CLOCK_MONOTONIC ns.
    pub now_us: u64,
    pub mono_ns: u64,
}

/// Reads the host's manager and every container's under `proc_root`, then,
/// for the loops running now, the start of their count in each manager's
/// journal.
pub async fn read(proc_root: &Path) -> Known {
    let t0 = Instant::now();
    let readings = systemd::read_all(proc_root).await;
    let now_us = (crate::clock::now_unix() * 1e6) as u64;
    let mut spans = HashMap::new();
    for r in &readings {
        let Ok(services) = &r.result else { continue };
        let loops: Vec<SystemdLoop> = systemd::loops(services, now_us);
        if loops.is_empty() {
            continue;
        }
        let (Some(boot), Ok(mut j)) = (
            boot_id(&r.root),
            journal::open(&Which::Root(r.root.clone())),
        ) else {
            continue;
        };
        for l in loops {
            if let Some(span) = restart_span(&mut j, boot, &l.unit, l.n_restarts) {
                spans.insert((l.container, l.unit), span);
            }
        }
    }
    Known {
        readings,
        spans,
        read_ms: t0.elapsed().as_secs_f64() * 1e3,
        now_us,
        mono_ns: crate::clock::monotonic_now_ns(),
    }
}

/// The boot ID of the machine whose root is `root`, as its journal stamps
/// its entries: a container's own (nspawn gives each boot of a container
/// one), read through its root.
fn boot_id(root: &Path) -> Option<[u8; 16]> {
    journal::parse_id128(
        &std::fs::read_to_string(root.join("proc/sys/kernel/random/boot_id")).ok()?,
    )
}

/// Where `journal` puts systemd's current count of `unit`'s restarts in
/// boot `boot`: the manager's latest "restart counter is at 1." message
/// for the unit (each `reset-failed` or manual start begins a new count
/// there) and its latest at `n_restarts`. Only messages journald attributes
/// to PID 1 count, so no other process's log can pose as the manager's.
/// Looked up by field value (`N_RESTARTS=1`), so the cost is that of the
/// few matching entries, not of the journal. None when the journal does
/// not hold the first: journald removes the oldest files first, so an
/// older count's message cannot outlive the current one's.
pub fn restart_span(
    journal: &mut Journal,
    boot: [u8; 16],
    unit: &str,
    n_restarts: u32,
) -> Option<RestartSpan> {
    let filter = Filter {
        boot: Some(boot),
        ..Filter::default()
    };
    let mut latest = |count: u32| {
        let mut at: Option<u64> = None;
        journal.matching(
            format!("N_RESTARTS={count}").as_bytes(),
            &filter,
            &mut |e| {
                let ours = e.get("_PID") == Some(b"1".as_slice())
                    && e.get("UNIT") == Some(unit.as_bytes())
                    && e.get("MESSAGE_ID")
                        .is_some_and(|id| id.eq_ignore_ascii_case(ID_RESTART_SCHEDULED));
                if ours {
                    at = at.max(Some(e.realtime_us()));
                }
            },
        );
        at
    };
    let first_us = latest(1)?;
    let last_us = latest(n_restarts).filter(|&l| l >= first_us);
    Some(RestartSpan { first_us, last_us })
}

/// [`read`] on a runtime of its own, in the calling thread, ended (its
/// blocking threads joined) before this returns. None if the runtime
/// cannot be made.
pub fn read_blocking(proc_root: &Path) -> Option<Known> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let known = rt.block_on(read(proc_root));
    drop(rt);
    Some(known)
}

/// [`read_blocking`] on a thread of its own, joined before this returns:
/// no thread made for the reading outlives it (with the capabilities it
/// was made with).
pub fn read_apart(proc_root: &Path) -> Option<Known> {
    std::thread::scope(|s| s.spawn(|| read_blocking(proc_root)).join().ok().flatten())
}

fn prior(s: &ServiceState, l: &SystemdLoop) -> Prior {
    let rate = l.rate_per_min.unwrap_or(0.0);
    let last_start = s.exec_main_start_us.max(s.inactive_exit_us);
    let mut p = Prior {
        type_: "finding",
        kind: FindingKind::RespawnLoop,
        severity: Severity::Medium,
        source: FindingSource::Systemd,
        unit: l.unit.clone(),
        container: l.container.clone(),
        restarts: u64::from(l.n_restarts),
        rate_per_min: rate,
        projected_per_day: rate * 1440.0,
        first_seen_unix: l.first_seen_us.map(|us| us as f64 / 1e6),
        first_seen_from: l.first_seen_from,
        last_seen_unix: last_start as f64 / 1e6,
        last_exit_status: (l.last_exit_code == ExecMainCode::Exited).then_some(l.last_exit_status),
        result: Some(l.last_result.as_str().to_string()),
        message: l.message.clone(),
    };
    p.severity = p.rated();
    p
}

impl Known {
    fn services(&self) -> impl Iterator<Item = &ServiceState> {
        self.readings
            .iter()
            .filter_map(|r| r.result.as_ref().ok())
            .flatten()
    }

    /// One line for the managers that could not be read, if any: their
    /// loops are then found from live restarts only.
    pub fn problem(&self) -> Option<String> {
        let what: Vec<String> = self
            .readings
            .iter()
            .filter_map(|r| {
                let e = r.result.as_ref().err()?;
                Some(match &r.container {
                    None => e.to_string(),
                    Some(c) => format!("container {c}: {e}"),
                })
            })
            .collect();
        (!what.is_empty()).then(|| {
            format!(
                "systemd not read ({}); loops there are found from live restarts only",
                what.join("; ")
            )
        })
    }

    /// The loop `s` is in, if any, with what its journal adds.
    fn looping(&self, s: &ServiceState) -> Option<SystemdLoop> {
        let l = systemd::looping_now(s, self.now_us)?;
        Some(
            match self.spans.get(&(l.container.clone(), l.unit.clone())) {
                Some(&span) => l.with_journal(span),
                None => l,
            },
        )
    }

    /// The loops running right now, most restarts first.
    pub fn priors(&self) -> Vec<Prior> {
        let mut out: Vec<Prior> = self
            .services()
            .filter_map(|s| self.looping(s).map(|l| prior(s, &l)))
            .collect();
        out.sort_by(|a, b| b.restarts.cmp(&a.restarts).then(a.unit.cmp(&b.unit)));
        out
    }

    /// Per service: systemd's counter, and the prior when it loops now.
    pub fn seeds(&self) -> Vec<Seed> {
        self.services()
            .map(|s| Seed {
                label: crate::report::unit_label(&s.unit, None, s.container.as_deref()),
                n_restarts: u64::from(s.n_restarts),
                prior: self.looping(s).map(|l| prior(s, &l)),
                running: s.control_group.is_some(),
            })
            .collect()
    }

    pub fn summary(&self, loops: Vec<Prior>) -> SystemdSummary {
        SystemdSummary {
            read_ms: self.read_ms,
            managers: self
                .readings
                .iter()
                .map(|r| ManagerReading {
                    container: r.container.clone(),
                    services: r.result.as_ref().map_or(0, Vec::len),
                    error: r.result.as_ref().err().map(|e| e.to_string()),
                })
                .collect(),
            loops,
        }
    }
}
