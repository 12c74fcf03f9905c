//! Is a service in a respawn loop right now, by systemd's own counters?
//! Pure: a [`ServiceState`] and the time in, a verdict out.
//!
//! The rule. A service is looping now when systemd has restarted it at
//! least [`MIN_RESTARTS`] times (`NRestarts`, which counts automatic
//! restarts since the last manual start or `reset-failed`) and either
//!
//! * it sits between two runs of the loop: its `SubState` is
//!   `auto-restart` (or, systemd >= 254, `auto-restart-queued`,
//!   `dead-before-auto-restart`, `failed-before-auto-restart`), that is,
//!   its last run ended and systemd has scheduled the next; or
//! * it is running (`ActiveState` active, activating or reloading) and
//!   its current run began recently: its last start
//!   (`ExecMainStartTimestamp`, else `InactiveExitTimestamp`) is less than
//!   max(60 s, 6 × `RestartUSec`) ago. Systemd clears the last run's
//!   `Result` and `ExecMainCode`/`ExecMainStatus` as it starts the next, so
//!   a running member of a loop shows no failure; that it was restarted
//!   and started again only moments ago is the evidence.
//!
//! Not looping: a service restarted a few times long ago and running
//! since (its last start is older than the window); one that failed and
//! stays failed (`start-limit-hit`: systemd gave up, the loop is over);
//! one reset (`NRestarts` 0). A loop whose runs last longer than the
//! window is seen only between its runs.

use serde::Serialize;

use super::{ActiveState, ExecMainCode, ServiceResult, ServiceState};
use crate::{
    clock::date,
    detect::{FirstSeenFrom, thousands},
    report::unit_label,
};

/// Restarts before a service counts as looping: one or two may be a
/// transient fault that a restart cured.
pub const MIN_RESTARTS: u32 = 3;

/// The shortest window in which a running service's last start counts as
/// recent.
pub const MIN_WINDOW_US: u64 = 60_000_000;

/// A respawn loop as systemd's own counters show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemdLoop {
    pub unit: String,
    /// The container's name, None for the host's manager.
    pub container: Option<String>,
    /// systemd's `NRestarts`.
    pub n_restarts: u32,
    /// One turn of the loop, estimated: the last run's duration
    /// (`ExecMainExitTimestamp` − `ExecMainStartTimestamp`) plus
    /// `RestartUSec`. None while the service runs (systemd cleared the last
    /// run's exit time) or when either timestamp is missing.
    pub cycle_us: Option<u64>,
    /// 60 s over [`SystemdLoop::cycle_us`].
    pub rate_per_min: Option<f64>,
    /// When systemd's current count began: its first restart as the
    /// manager's journal records it (see [`SystemdLoop::with_journal`]),
    /// else an estimate, now − `n_restarts` × cycle, as if every turn took
    /// as long as the last (systemd keeps no first start time).
    pub first_seen_us: Option<u64>,
    pub first_seen_from: Option<FirstSeenFrom>,
    /// How the last run ended; [`ExecMainCode::None`] while it runs.
    pub last_exit_code: ExecMainCode,
    /// Its exit status, or the signal that ended it.
    pub last_exit_status: i32,
    pub last_result: ServiceResult,
    pub message: String,
}

/// The window in which a running service's last start is recent:
/// max(60 s, 6 × `RestartUSec`).
pub fn recent_window_us(s: &ServiceState) -> u64 {
    MIN_WINDOW_US.max(s.restart_us.saturating_mul(6))
}

/// The loop `s` is in at `now_us` (µs since the epoch), if it is in one;
/// see the module's documentation for the rule.
pub fn looping_now(s: &ServiceState, now_us: u64) -> Option<SystemdLoop> {
    if s.n_restarts < MIN_RESTARTS {
        return None;
    }
    let between_runs = s.sub_state.awaiting_restart();
    let running = matches!(
        s.active_state,
        ActiveState::Active | ActiveState::Activating | ActiveState::Reloading
    );
    let last_start = if s.exec_main_start_us != 0 {
        s.exec_main_start_us
    } else {
        s.inactive_exit_us
    };
    let started_recently =
        last_start != 0 && now_us.saturating_sub(last_start) < recent_window_us(s);
    if !(between_runs || (running && started_recently)) {
        return None;
    }
    let cycle_us = (s.exec_main_start_us != 0 && s.exec_main_exit_us >= s.exec_main_start_us)
        .then(|| (s.exec_main_exit_us - s.exec_main_start_us).saturating_add(s.restart_us))
        .filter(|&c| c > 0);
    let rate_per_min = cycle_us.map(|c| 60e6 / c as f64);
    let first_seen_us =
        cycle_us.map(|c| now_us.saturating_sub(c.saturating_mul(u64::from(s.n_restarts))));
    let mut l = SystemdLoop {
        unit: s.unit.clone(),
        container: s.container.clone(),
        n_restarts: s.n_restarts,
        cycle_us,
        rate_per_min,
        first_seen_us,
        first_seen_from: first_seen_us.map(|_| FirstSeenFrom::Estimate),
        last_exit_code: s.exec_main_code,
        last_exit_status: s.exec_main_status,
        last_result: s.result.clone(),
        message: String::new(),
    };
    l.message = message(&l);
    Some(l)
}

/// Where the manager's journal puts systemd's current count of a
/// service's restarts: the realtime (µs) of its "Scheduled restart job,
/// restart counter is at 1." message, and of the one at the count systemd
/// holds now, when found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSpan {
    pub first_us: u64,
    pub last_us: Option<u64>,
}

impl SystemdLoop {
    /// The loop with its start taken from the journal, and its rate, where
    /// the journal holds both ends, as `n_restarts` − 1 intervals over the
    /// span between them (as `postmortem` reckons a rate).
    pub fn with_journal(mut self, span: RestartSpan) -> SystemdLoop {
        self.first_seen_us = Some(span.first_us);
        self.first_seen_from = Some(FirstSeenFrom::Journal);
        if let Some(last) = span.last_us
            && last > span.first_us
            && self.n_restarts > 1
        {
            self.rate_per_min =
                Some(f64::from(self.n_restarts - 1) * 60e6 / (last - span.first_us) as f64);
        }
        self.message = message(&self);
        self
    }
}

/// "respawn loop in serial-getty@ttyS0.service: 421,491 restarts since
/// 13 Jan 2026 09:00 UTC (6.0/min, from systemd), last exit status 1";
/// "from systemd and its journal" when the start is the journal's.
/// The start and rate are left out when the cycle is unknown.
pub fn message(l: &SystemdLoop) -> String {
    let who = unit_label(&l.unit, None, l.container.as_deref());
    let mut m = format!(
        "respawn loop in {who}: {} restarts",
        thousands(u64::from(l.n_restarts))
    );
    if let Some(first) = l.first_seen_us {
        m.push_str(&format!(" since {}", date(first as f64 / 1e6)));
    }
    let from = match l.first_seen_from {
        Some(FirstSeenFrom::Journal) => "from systemd and its journal",
        Some(FirstSeenFrom::Estimate) | None => "from systemd",
    };
    match l.rate_per_min {
        Some(r) => m.push_str(&format!(" ({r:.1}/min, {from})")),
        None => m.push_str(&format!(" ({from})")),
    }
    match l.last_exit_code {
        ExecMainCode::Exited => {
            m.push_str(&format!(", last exit status {}", l.last_exit_status));
        }
        ExecMainCode::Killed | ExecMainCode::Dumped => m.push_str(&format!(
            ", last killed by signal {}{}",
            l.last_exit_status,
            if l.last_exit_code == ExecMainCode::Dumped {
                " (core dumped)"
            } else {
                ""
            }
        )),
        ExecMainCode::None | ExecMainCode::Other(_) => {}
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::{RestartPolicy, SubState};

    /// 13 Jan 2026 09:00 UTC, in µs.
    const T0: u64 = 1_768_294_800_000_000;
    const S: u64 = 1_000_000;

    /// serial-getty@ttyS0.service of the incident, between two runs: its
    /// agetty ran 50 ms and exited 1, and systemd restarts it every 10 s.
    fn getty(now: u64, n_restarts: u32) -> ServiceState {
        ServiceState {
            container: None,
            unit: "serial-getty@ttyS0.service".into(),
            active_state: ActiveState::Activating,
            sub_state: SubState::AutoRestart,
            result: ServiceResult::ExitCode,
            restart: RestartPolicy::Always,
            n_restarts,
            exec_main_code: ExecMainCode::Exited,
            exec_main_status: 1,
            exec_main_start_us: now - 5 * S - 50_000,
            exec_main_exit_us: now - 5 * S,
            inactive_exit_us: now - 5 * S - 50_000,
            state_change_us: now - 5 * S,
            restart_us: 10 * S - 50_000,
            start_limit_interval_us: 0,
            start_limit_burst: 5,
            control_group: Some(
                "/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service".into(),
            ),
        }
    }

    /// Running since `ago` after `n_restarts` restarts, its last run's
    /// outcome cleared as systemd clears it at a start.
    fn running(now: u64, ago: u64, n_restarts: u32) -> ServiceState {
        ServiceState {
            active_state: ActiveState::Active,
            sub_state: SubState::Running,
            result: ServiceResult::Success,
            exec_main_code: ExecMainCode::None,
            exec_main_status: 0,
            exec_main_start_us: now - ago,
            exec_main_exit_us: 0,
            inactive_exit_us: now - ago,
            state_change_us: now - ago,
            ..getty(now, n_restarts)
        }
    }

    #[test]
    fn the_incident_getty_between_runs_is_looping() {
        let now = T0 + 48 * 86_400 * S;
        let l = looping_now(&getty(now, 421_491), now).expect("looping");
        assert_eq!(l.n_restarts, 421_491);
        assert_eq!(l.cycle_us, Some(10 * S));
        assert_eq!(l.rate_per_min, Some(6.0));
        assert_eq!(l.first_seen_us, Some(now - 421_491 * 10 * S));
        assert_eq!(l.last_exit_code, ExecMainCode::Exited);
        assert_eq!(l.last_exit_status, 1);
        assert_eq!(l.last_result, ServiceResult::ExitCode);
    }

    #[test]
    fn the_message_reads_like_the_incident_report() {
        // 421,491 turns of 10 s before now: the estimate lands on T0.
        let now = T0 + 421_491 * 10 * S;
        let l = looping_now(&getty(now, 421_491), now).unwrap();
        assert_eq!(
            l.message,
            "respawn loop in serial-getty@ttyS0.service: 421,491 restarts since 13 Jan 2026 \
             09:00 UTC (6.0/min, from systemd), last exit status 1"
        );
    }

    #[test]
    fn the_journal_gives_the_start_and_the_rate() {
        // Read while running: systemd alone knows no cycle, hence no start.
        let now = T0 + 48 * 86_400 * S;
        let l = looping_now(&running(now, 2 * S, 421_491), now).unwrap();
        assert_eq!((l.first_seen_us, l.rate_per_min), (None, None));
        let last = T0 + 421_490 * 10 * S;
        let l = l.with_journal(RestartSpan {
            first_us: T0,
            last_us: Some(last),
        });
        assert_eq!(l.first_seen_us, Some(T0));
        assert_eq!(l.first_seen_from, Some(FirstSeenFrom::Journal));
        assert_eq!(l.rate_per_min, Some(6.0));
        assert_eq!(
            l.message,
            "respawn loop in serial-getty@ttyS0.service: 421,491 restarts since 13 Jan 2026 \
             09:00 UTC (6.0/min, from systemd and its journal)"
        );
    }

    #[test]
    fn without_the_last_restart_in_the_journal_the_rate_stays_systemds() {
        let now = T0 + 1000 * S;
        let l = looping_now(&getty(now, 50), now).unwrap();
        let l = l.with_journal(RestartSpan {
            first_us: T0,
            last_us: None,
        });
        assert_eq!(l.first_seen_us, Some(T0));
        assert_eq!(l.rate_per_min, Some(6.0), "the last cycle's rate");
    }

    #[test]
    fn a_container_loop_names_the_container() {
        let now = T0;
        let mut s = getty(now, 4);
        s.container = Some("web".into());
        let l = looping_now(&s, now).unwrap();
        assert!(
            l.message
                .starts_with("respawn loop in serial-getty@ttyS0.service @web: 4 restarts"),
            "{}",
            l.message
        );
    }

    #[test]
    fn a_loop_member_running_since_seconds_is_looping_without_a_cycle() {
        let now = T0;
        let l = looping_now(&running(now, 2 * S, 12), now).expect("looping");
        assert_eq!(l.cycle_us, None);
        assert_eq!(l.rate_per_min, None);
        assert_eq!(l.first_seen_us, None);
        assert_eq!(
            l.message,
            "respawn loop in serial-getty@ttyS0.service: 12 restarts (from systemd)"
        );
    }

    #[test]
    fn restarts_long_ago_then_stable_for_hours_is_not_looping() {
        let now = T0;
        assert_eq!(looping_now(&running(now, 3 * 3600 * S, 5), now), None);
    }

    #[test]
    fn a_window_of_six_restart_delays_when_that_exceeds_a_minute() {
        let now = T0;
        // RestartSec=30s: a run that began 2 minutes ago is recent (window
        // 3 minutes); 4 minutes ago is not.
        let mut s = running(now, 120 * S, 5);
        s.restart_us = 30 * S;
        assert!(looping_now(&s, now).is_some());
        s.exec_main_start_us = now - 240 * S;
        s.inactive_exit_us = s.exec_main_start_us;
        assert_eq!(looping_now(&s, now), None);
    }

    #[test]
    fn a_oneshot_that_failed_once_is_not_looping() {
        let now = T0;
        let s = ServiceState {
            unit: "migrate.service".into(),
            active_state: ActiveState::Failed,
            sub_state: SubState::Failed,
            result: ServiceResult::ExitCode,
            restart: RestartPolicy::No,
            n_restarts: 0,
            exec_main_code: ExecMainCode::Exited,
            exec_main_status: 2,
            ..getty(now, 0)
        };
        assert_eq!(looping_now(&s, now), None);
    }

    #[test]
    fn a_fast_loop_of_100ms_restarts_has_its_rate() {
        let now = T0;
        let mut s = getty(now, 300);
        s.restart_us = 100_000;
        s.exec_main_start_us = now - 100_000;
        s.exec_main_exit_us = now - 50_000;
        let l = looping_now(&s, now).expect("looping");
        assert_eq!(l.cycle_us, Some(150_000));
        assert_eq!(l.rate_per_min, Some(400.0));
        assert_eq!(l.first_seen_us, Some(now - 300 * 150_000));
    }

    #[test]
    fn a_reset_failed_unit_is_not_looping() {
        let now = T0;
        // `systemctl reset-failed` zeroes NRestarts; the unit may still be
        // waiting to restart once more.
        assert_eq!(looping_now(&getty(now, 0), now), None);
    }

    #[test]
    fn two_restarts_are_not_yet_a_loop() {
        let now = T0;
        assert_eq!(looping_now(&getty(now, 2), now), None);
    }

    #[test]
    fn a_loop_systemd_gave_up_on_is_over() {
        let now = T0;
        let s = ServiceState {
            active_state: ActiveState::Failed,
            sub_state: SubState::Failed,
            result: ServiceResult::StartLimitHit,
            ..getty(now, 5)
        };
        assert_eq!(looping_now(&s, now), None);
    }

    #[test]
    fn a_signal_death_is_worded_as_one() {
        let now = T0;
        let mut s = getty(now, 7);
        s.exec_main_code = ExecMainCode::Dumped;
        s.exec_main_status = 11;
        s.result = ServiceResult::CoreDump;
        let l = looping_now(&s, now).unwrap();
        assert!(
            l.message
                .ends_with(", last killed by signal 11 (core dumped)"),
            "{}",
            l.message
        );
    }

    #[test]
    fn clock_skew_and_odd_timestamps_do_not_panic() {
        let mut s = getty(T0, u32::MAX);
        s.exec_main_exit_us = 1;
        s.restart_us = u64::MAX;
        let l = looping_now(&s, 0).expect("still between runs");
        assert_eq!(l.cycle_us, None, "exit before start: no cycle");
        let mut s = getty(T0, u32::MAX);
        s.restart_us = u64::MAX;
        let l = looping_now(&s, T0).unwrap();
        assert_eq!(l.first_seen_us, Some(0));
    }
}
