//! What systemd already knows, used at start: a unit that has been
//! restarting before spawnscope started is a finding at once, with
//! systemd's own counter (`trace`), and the sentinel starts that unit's
//! restarts total at systemd's counter and keeps counting across a
//! `reset-failed` (which drops systemd's to 0) and its own restart. The
//! loop runs in a real systemd (nspawn), read through the container's own
//! manager socket.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    Tracer,
    dist::{self, Arch},
    sentinel::{Sentinel, config, unit_value},
    summary,
    systemd::{Suite, SystemdContainer, run_with_timeout},
};

const UNIT: &str = "flapping.service";

/// A unit that exits 1 every half second, restarted by systemd with no
/// start limit, left to restart until its counter reaches `n`.
fn flapping(ct: &SystemdContainer, n: u64) {
    ct.install_unit(
        UNIT,
        "[Unit]\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 1'\nRestart=always\nRestartSec=300ms\n",
    );
    ct.run(&["systemctl", "start", UNIT]);
    wait_restarts(ct, n);
}

fn n_restarts(ct: &SystemdContainer) -> u64 {
    ct.show(UNIT, &["NRestarts"])["NRestarts"].parse().unwrap()
}

fn wait_restarts(ct: &SystemdContainer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while n_restarts(ct) < n {
        assert!(
            Instant::now() < deadline,
            "{UNIT} never restarted {n} times"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The realtime (µs) of PID 1's latest "restart counter is at 1" message
/// for the unit in this boot, as journalctl finds it in the container.
fn latest_counter_one(ct: &SystemdContainer) -> u64 {
    let out = ct.run(&[
        "journalctl",
        "-b",
        "-o",
        "json",
        "--no-pager",
        "MESSAGE_ID=5eb03494b6584870a536b337290809b3",
        &format!("UNIT={UNIT}"),
        "N_RESTARTS=1",
        "_PID=1",
    ]);
    let last = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no counter-1 message for {UNIT} in the journal"));
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    v["__REALTIME_TIMESTAMP"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_loop_systemd_counted_is_a_finding_before_the_first_interval() {
    let Some(ct) = SystemdContainer::boot_suite("history-trace", Suite::Bookworm, &[]) else {
        return;
    };
    flapping(&ct, 5);
    let before = n_restarts(&ct);
    // An interval longer than a slow reading of every manager on the host
    // (2 s per call at most): the loop comes before the first report.
    let mut tracer = Tracer::start(&["--interval", "8s"]);
    let (prior, _) = tracer.wait_for(Duration::from_secs(60), "finding from systemd", |v| {
        (v["type"] == "finding" && v["source"] == "systemd" && v["container"] == ct.name.as_str())
            || v["type"] == "interval"
    });
    if prior["type"] != "finding" {
        let (_, _, stderr) = tracer.stop_with(libc::SIGINT);
        panic!("no finding from systemd before the first interval; stderr:\n{stderr}");
    }
    let after = n_restarts(&ct);
    assert_eq!(prior["unit"], UNIT);
    assert_eq!(prior["container"], ct.name.as_str());
    let r = prior["restarts"].as_u64().unwrap();
    assert!((before..=after).contains(&r), "{before} ≤ {r} ≤ {after}");
    // Between runs systemd still has the last one's status; while the unit
    // runs it has none.
    if !prior["last_exit_status"].is_null() {
        assert_eq!(prior["last_exit_status"], 1, "{prior}");
    }
    // The count's start is the manager's own "restart counter is at 1"
    // message in the container's journal, whether or not the unit ran.
    let first_us = latest_counter_one(&ct);
    assert_eq!(prior["first_seen_from"], "journal", "{prior}");
    assert_eq!(prior["first_seen_unix"], first_us as f64 / 1e6, "{prior}");
    let msg = prior["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("respawn loop in {UNIT} @{}: ", ct.name))
            && msg.contains("from systemd and its journal"),
        "{msg}"
    );
    // Live restarts continue the same loop, and say so.
    let (live, _) = tracer.wait_for(Duration::from_secs(60), "live finding", |v| {
        v["type"] == "finding"
            && v["change"] == "detected"
            && v["unit"] == UNIT
            && v["source"] == "systemd+live"
    });
    assert_eq!(live["systemd"]["restarts"], prior["restarts"]);
    assert!(
        live["message"]
            .as_str()
            .unwrap()
            .contains("continues a loop systemd had counted"),
        "{live}"
    );
    ct.run(&["systemctl", "stop", UNIT]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let manager = s["systemd"]["managers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["container"] == ct.name.as_str())
        .unwrap_or_else(|| panic!("no reading of {}: {}", ct.name, s["systemd"]));
    assert!(manager["services"].as_u64().unwrap() > 0, "{manager}");
    assert_eq!(manager["error"], serde_json::Value::Null);
}

/// On a machine whose own manager runs the loop, trace reads that manager
/// through its private socket (`/run/systemd/private`, the path a host
/// is read by, not a container's) and its journal from `/var/log/journal`
/// and `/run/log/journal`. The shipped binary runs in the container's mount
/// and PID namespaces, where the container's manager is the machine's own
/// and no container is below it.
#[test]
fn the_machines_own_manager_and_journal_are_read_where_it_runs() {
    let Some(ct) = SystemdContainer::boot_suite("history-own", Suite::Bookworm, &[]) else {
        return;
    };
    let Some(u) = dist::unpack(Arch::X86_64, "systemd_history") else {
        return;
    };
    ct.copy_in(&u.bin(), "/usr/local/bin/spawnscope");
    flapping(&ct, 5);
    let out = run_with_timeout(
        std::process::Command::new("nsenter")
            .args(["--target", &ct.leader.to_string(), "--mount", "--pid", "--"])
            .args([
                "/usr/local/bin/spawnscope",
                "trace",
                "--json",
                "--for",
                "4s",
            ]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let prior = lines
        .iter()
        .find(|v| v["type"] == "finding" && v["source"] == "systemd" && v["unit"] == UNIT)
        .unwrap_or_else(|| panic!("no finding from systemd; stderr:\n{stderr}"));
    assert_eq!(prior["container"], serde_json::Value::Null, "{prior}");
    assert_eq!(prior["first_seen_from"], "journal", "{prior}");
    assert_eq!(
        prior["first_seen_unix"],
        latest_counter_one(&ct) as f64 / 1e6,
        "{prior}"
    );
    let managers = summary(&lines)["systemd"]["managers"].as_array().unwrap();
    assert_eq!(
        managers.len(),
        1,
        "the machine's manager alone: {managers:?}"
    );
    assert_eq!(managers[0]["container"], serde_json::Value::Null);
    assert_eq!(managers[0]["error"], serde_json::Value::Null);
    assert!(managers[0]["services"].as_u64().unwrap() > 0);
    ct.run(&["systemctl", "stop", UNIT]);
}

#[test]
fn the_sentinel_starts_a_units_total_at_systemds_counter_and_never_lowers_it() {
    let Some(ct) = SystemdContainer::boot_suite("history-sentinel", Suite::Bookworm, &[]) else {
        return;
    };
    flapping(&ct, 5);
    let label = format!("{UNIT} @{}", ct.name);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let before = n_restarts(&ct);
    let mut s = Sentinel::start(dir.path(), &cfg);
    let opened = s.wait_line(
        Duration::from_secs(30),
        &format!("finding_opened: respawn loop in {label}:"),
    );
    assert!(
        opened.contains(&label) && opened.contains("from systemd"),
        "{opened}"
    );
    let total = |s: &Sentinel| {
        unit_value(
            &spawnscope_tests::sentinel::samples(&s.scrape()),
            "spawnscope_unit_restarts_total",
            &label,
            "",
        )
    };
    let first = total(&s);
    let after = n_restarts(&ct);
    // A restart that lands while systemd is being read may be seen by
    // neither count, hence the one below.
    assert!(
        (before.saturating_sub(1) as f64..=after as f64).contains(&first),
        "{} ≤ {first} ≤ {after}",
        before.saturating_sub(1)
    );

    // reset-failed drops systemd's counter; the sentinel's goes on.
    ct.run(&["systemctl", "reset-failed", UNIT]);
    assert!(n_restarts(&ct) < before, "reset-failed reset NRestarts");
    let m = s.wait_metrics(Duration::from_secs(30), "restarts counted on", |m| {
        unit_value(m, "spawnscope_unit_restarts_total", &label, "") >= first + 3.0
    });
    let _ = m;
    ct.run(&["systemctl", "stop", UNIT]);
    std::thread::sleep(Duration::from_secs(2));
    let kept = total(&s);
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");

    // Restarted with its state: the unit is known, so systemd's (smaller)
    // counter is not taken again, and nothing is lost or added.
    let s = Sentinel::start(dir.path(), &cfg);
    assert_eq!(total(&s), kept);
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
