//! What systemd already knows when `trace` or the sentinel starts: every
//! manager's services (the host's and each container's), read once over
//! D-Bus. A loop that is running right now is a finding at once, with
//! systemd's counter; the sentinel starts a unit's restarts total at
//! systemd's count the first time it sees the unit.

use std::{path::Path, time::Instant};

use crate::{
    detect::{FindingKind, FindingSource, FirstSeenFrom, Prior},
    output::schema::{ManagerReading, SystemdSummary},
    sentinel::track::Seed,
    systemd::{self, ExecMainCode, Reading, ServiceState, SystemdLoop},
};

/// Every manager's reading, as of one instant.
pub struct Known {
    pub readings: Vec<Reading>,
    pub read_ms: f64,
    /// When it was read: realtime µs, and CLOCK_MONOTONIC ns.
    pub now_us: u64,
    pub mono_ns: u64,
}

/// Reads the host's manager and every container's under `proc_root`.
pub async fn read(proc_root: &Path) -> Known {
    let t0 = Instant::now();
    let readings = systemd::read_all(proc_root).await;
    Known {
        readings,
        read_ms: t0.elapsed().as_secs_f64() * 1e3,
        now_us: (crate::clock::now_unix() * 1e6) as u64,
        mono_ns: crate::clock::monotonic_now_ns(),
    }
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
    Prior {
        type_: "finding",
        kind: FindingKind::RespawnLoop,
        severity: Prior::severity_of(rate),
        source: FindingSource::Systemd,
        unit: l.unit.clone(),
        container: l.container.clone(),
        restarts: u64::from(l.n_restarts),
        rate_per_min: rate,
        projected_per_day: rate * 1440.0,
        first_seen_unix: l.first_seen_estimate_us.map(|us| us as f64 / 1e6),
        first_seen_from: l.first_seen_estimate_us.map(|_| FirstSeenFrom::Estimate),
        last_seen_unix: last_start as f64 / 1e6,
        last_exit_status: (l.last_exit_code == ExecMainCode::Exited).then_some(l.last_exit_status),
        result: Some(l.last_result.as_str().to_string()),
        message: l.message.clone(),
    }
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

    /// The loops running right now, most restarts first.
    pub fn priors(&self) -> Vec<Prior> {
        let mut out: Vec<Prior> = self
            .services()
            .filter_map(|s| systemd::looping_now(s, self.now_us).map(|l| prior(s, &l)))
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
                prior: systemd::looping_now(s, self.now_us).map(|l| prior(s, &l)),
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
