//! Against a real systemd: spawnscope's D-Bus reader of systemd's own
//! memory (`spawnscope::systemd`), connected to a booted container's
//! manager through `/proc/<leader>/root/run/systemd/private`. On bookworm
//! (systemd 252) and trixie (systemd 257).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use spawnscope::systemd::{
    ActiveState, ContainerInit, Error, ExecMainCode, Manager, ReadMode, RestartPolicy,
    ServiceResult, ServiceState, SubState, looping_now, scan,
};
use spawnscope_tests::systemd::{Suite, SystemdContainer};

const CRASHY: &str = "crashy.service";
const STABLE: &str = "stable.service";

/// The runtime trace and sentinel run on: one thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn init_of(ct: &SystemdContainer) -> ContainerInit {
    ContainerInit {
        pid: ct.leader as u32,
        name: Some(ct.name.clone()),
    }
}

/// Every service of the container's manager, read by the reader.
fn read(ct: &SystemdContainer) -> Vec<ServiceState> {
    read_with(ct, ReadMode::default())
}

fn read_with(ct: &SystemdContainer, mode: ReadMode) -> Vec<ServiceState> {
    block_on(async {
        let m = Manager::container(&init_of(ct), Path::new("/proc"))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        m.services_with(mode)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"))
    })
}

fn find<'a>(states: &'a [ServiceState], unit: &str) -> &'a ServiceState {
    states
        .iter()
        .find(|s| s.unit == unit)
        .unwrap_or_else(|| panic!("{unit} not among {} services read", states.len()))
}

fn boot(tag: &str, suite: Suite) -> Option<SystemdContainer> {
    SystemdContainer::boot_suite(&format!("{tag}-{}", suite.name()), suite, &[])
}

/// A unit that exits 1 at once, restarted every second without a start
/// limit, until systemd has restarted it 4 times.
fn start_crash_loop(ct: &SystemdContainer) {
    ct.install_unit(
        CRASHY,
        "[Unit]\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=/bin/sh -c 'exit 1'\nRestart=always\nRestartSec=1s\n",
    );
    ct.run(&["systemctl", "start", CRASHY]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while ct.show(CRASHY, &["NRestarts"])["NRestarts"] != "4" {
        assert!(
            Instant::now() < deadline,
            "{CRASHY} did not restart 4 times"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn crash_loop_reads_as_systemctl_shows_it_and_is_looping_bookworm() {
    crash_loop_reads_as_systemctl_shows_it_and_is_looping(Suite::Bookworm);
}

#[test]
fn crash_loop_reads_as_systemctl_shows_it_and_is_looping_trixie() {
    crash_loop_reads_as_systemctl_shows_it_and_is_looping(Suite::Trixie);
}

fn crash_loop_reads_as_systemctl_shows_it_and_is_looping(suite: Suite) {
    let Some(ct) = boot("dbus-loop", suite) else {
        return;
    };
    start_crash_loop(&ct);
    // The run lasts milliseconds and the wait a second: a reading almost
    // always lands between runs, where the last run's outcome is kept.
    // systemctl's NRestarts before and after the reading brackets it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (before, s, after) = loop {
        let before: u32 = ct.show(CRASHY, &["NRestarts"])["NRestarts"]
            .parse()
            .unwrap();
        let states = read(&ct);
        let after: u32 = ct.show(CRASHY, &["NRestarts"])["NRestarts"]
            .parse()
            .unwrap();
        let s = find(&states, CRASHY).clone();
        if before == after && s.sub_state == SubState::AutoRestart {
            break (before, s, after);
        }
        assert!(
            Instant::now() < deadline,
            "never read {CRASHY} between runs with NRestarts steady: {s:?}"
        );
    };
    assert_eq!(
        s.n_restarts, before,
        "NRestarts as systemctl shows it ({after} after)"
    );
    assert!(s.n_restarts >= 4, "{s:?}");
    let show = ct.show(
        CRASHY,
        &["Result", "ExecMainStatus", "ExecMainCode", "Restart"],
    );
    assert_eq!(s.result, ServiceResult::ExitCode, "{show:?}");
    assert_eq!(show["Result"], "exit-code");
    assert_eq!(s.exec_main_code, ExecMainCode::Exited);
    assert_eq!(show["ExecMainCode"], "1", "CLD_EXITED");
    assert_eq!(s.exec_main_status, 1);
    assert_eq!(show["ExecMainStatus"], "1");
    assert_eq!(s.restart, RestartPolicy::Always);
    assert_eq!(s.restart_us, 1_000_000);
    assert_eq!(s.start_limit_interval_us, 0);
    assert_eq!(s.container.as_deref(), Some(ct.name.as_str()));
    assert!(s.exec_main_start_us > 0 && s.exec_main_exit_us >= s.exec_main_start_us);
    let l = looping_now(&s, now_us()).unwrap_or_else(|| panic!("not looping: {s:?}"));
    assert_eq!(l.n_restarts, s.n_restarts);
    let rate = l.rate_per_min.expect("cycle known between runs");
    // A run of milliseconds plus 1 s: just under 60 a minute.
    assert!((50.0..=60.0).contains(&rate), "{rate}/min: {}", l.message);
    eprintln!("{}", l.message);
}

#[test]
fn stable_service_reads_as_systemctl_shows_it_and_is_not_looping_bookworm() {
    stable_service_reads_as_systemctl_shows_it_and_is_not_looping(Suite::Bookworm);
}

#[test]
fn stable_service_reads_as_systemctl_shows_it_and_is_not_looping_trixie() {
    stable_service_reads_as_systemctl_shows_it_and_is_not_looping(Suite::Trixie);
}

fn stable_service_reads_as_systemctl_shows_it_and_is_not_looping(suite: Suite) {
    let Some(ct) = boot("dbus-stable", suite) else {
        return;
    };
    ct.install_unit(
        STABLE,
        "[Service]\nExecStart=/bin/sleep infinity\nRestart=on-failure\n",
    );
    ct.run(&["systemctl", "start", STABLE]);
    // Every property: the default reading skips most of a service that
    // has not restarted.
    let states = read_with(&ct, ReadMode::Get);
    let s = find(&states, STABLE);
    let show = ct.show(
        STABLE,
        &[
            "ActiveState",
            "SubState",
            "NRestarts",
            "ControlGroup",
            "Result",
        ],
    );
    assert_eq!(s.active_state, ActiveState::Active, "{show:?}");
    assert_eq!(show["ActiveState"], "active");
    assert_eq!(s.sub_state, SubState::Running);
    assert_eq!(show["SubState"], "running");
    assert_eq!(s.n_restarts, 0);
    assert_eq!(show["NRestarts"], "0");
    assert_eq!(s.result, ServiceResult::Success);
    assert_eq!(
        s.control_group.as_deref(),
        Some(show["ControlGroup"].as_str())
    );
    assert_eq!(s.restart, RestartPolicy::OnFailure);
    assert_eq!(looping_now(s, now_us()), None, "{s:?}");
}

#[test]
fn get_and_get_all_read_the_same_states() {
    let Some(ct) = boot("dbus-modes", Suite::Bookworm) else {
        return;
    };
    ct.install_unit(
        STABLE,
        "[Service]\nExecStart=/bin/sleep infinity\nRestart=on-failure\n",
    );
    ct.run(&["systemctl", "start", STABLE]);
    let by_get = read_with(&ct, ReadMode::Get);
    let by_get_all = read_with(&ct, ReadMode::GetAll);
    assert!(by_get.len() > 10, "{} services", by_get.len());
    assert_eq!(by_get, by_get_all);
}

/// The default reading, what trace and the sentinel use, has every
/// property of a service systemd has restarted at least 3 times, as the
/// full reading has it, and of every other service its counter, control
/// group and states, and nothing more.
#[test]
fn the_default_reading_has_all_a_loop_needs() {
    const GAVE_UP: &str = "gave-up.service";
    let Some(ct) = boot("dbus-restarted", Suite::Bookworm) else {
        return;
    };
    ct.install_unit(
        STABLE,
        "[Service]\nExecStart=/bin/sleep infinity\nRestart=on-failure\n",
    );
    // Restarted until systemd gives up: its state then holds still.
    ct.install_unit(
        GAVE_UP,
        "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=5\n\
         [Service]\nExecStart=/bin/sh -c 'exit 3'\nRestart=always\nRestartSec=100ms\n",
    );
    ct.run(&["systemctl", "start", STABLE, GAVE_UP]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ct.show(GAVE_UP, &["ActiveState"])["ActiveState"] != "failed" {
        assert!(
            Instant::now() < deadline,
            "{GAVE_UP} never hit its start limit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let full = read_with(&ct, ReadMode::Get);
    let default = read(&ct);
    assert_eq!(
        default.iter().map(|s| &s.unit).collect::<Vec<_>>(),
        full.iter().map(|s| &s.unit).collect::<Vec<_>>()
    );
    let gave_up = find(&full, GAVE_UP);
    assert!(gave_up.n_restarts >= 3, "{gave_up:?}");
    assert_eq!(find(&default, GAVE_UP), gave_up);
    let (d, f) = (find(&default, STABLE), find(&full, STABLE));
    assert_eq!(
        (
            d.n_restarts,
            &d.control_group,
            &d.active_state,
            &d.sub_state
        ),
        (
            f.n_restarts,
            &f.control_group,
            &f.active_state,
            &f.sub_state
        )
    );
    assert!(
        f.control_group.is_some() && f.exec_main_start_us > 0,
        "{f:?}"
    );
    assert_eq!(d.exec_main_start_us, 0, "not read: {d:?}");
}

#[test]
fn container_is_found_by_scanning_proc() {
    let Some(ct) = boot("dbus-scan", Suite::Bookworm) else {
        return;
    };
    let found = scan(Path::new("/proc"));
    assert!(
        found.contains(&init_of(&ct)),
        "{} (leader {}) not among {found:?}",
        ct.name,
        ct.leader
    );
}

#[test]
fn a_container_gone_before_connecting_is_no_manager_in_one_line() {
    if !spawnscope_tests::require_root("a_container_gone_before_connecting") {
        return;
    }
    // A reaped process: its /proc entry, and the root under it, are gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let gone = ContainerInit { pid, name: None };
    let e = block_on(Manager::container(&gone, Path::new("/proc")))
        .map(|_| ())
        .unwrap_err();
    let path = format!("/proc/{pid}/root/run/systemd/private");
    assert!(
        matches!(&e, Error::NoManager { path: p } if p == Path::new(&path)),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("no systemd manager at {path}"));
}

/// A container in a user namespace of its own (`systemd-nspawn -U`, as
/// `systemd-nspawn@.service` runs machines): its root is an unprivileged
/// user of ours, and its manager only talks to its own root, so the reader
/// joins the container's user namespace as well as its PID namespace.
#[test]
fn a_container_in_its_own_user_namespace_is_read_as_its_root() {
    let Some(ct) = SystemdContainer::boot_suite("dbus-userns", Suite::Bookworm, &["-U"]) else {
        return;
    };
    let uid_map = std::fs::read_to_string(format!("/proc/{}/uid_map", ct.leader)).unwrap();
    let host_uid: u64 = uid_map.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(host_uid, 0, "not user-namespaced: uid_map {uid_map}");
    start_crash_loop(&ct);
    let states = read(&ct);
    let after: u32 = ct.show(CRASHY, &["NRestarts"])["NRestarts"]
        .parse()
        .unwrap();
    let s = find(&states, CRASHY);
    assert!(
        (4..=after).contains(&s.n_restarts),
        "4 ≤ {} ≤ {after}",
        s.n_restarts
    );
    assert_eq!(s.restart, RestartPolicy::Always);
    assert!(looping_now(s, now_us()).is_some(), "not looping: {s:?}");
}
