//! The shipped unit, as an operator installs it, in a real systemd (the
//! nspawn fixture, given CAP_BPF and CAP_PERFMON to pass on): it passes
//! `systemd-analyze verify`, its `systemd-analyze security` exposure is
//! reported, and under its whole sandbox the sentinel starts, drops its
//! capabilities, and reports a loop in the journal at warning priority. The
//! loop restarts twice a second, so its restarts fall two to a poll: it is
//! opened at systemd's rate, as first seen by systemd's first restart, and
//! named after its own program (sh), never the systemd-executor that
//! systemd 257 starts it through. On bookworm (systemd 252) and trixie
//! (systemd 257).

use std::time::{Duration, Instant};

use spawnscope_tests::{
    sentinel::{http_get, samples},
    systemd::{Suite, SystemdContainer, restarts_per_min},
};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/sentinel.toml");

const SENTINEL: &str = "spawnscope-sentinel.service";
const FLAKY: &str = "flaky.service";

#[test]
fn shipped_unit_verifies_scores_and_runs_sandboxed_bookworm() {
    shipped_unit_verifies_scores_and_runs_sandboxed(Suite::Bookworm);
}

#[test]
fn shipped_unit_verifies_scores_and_runs_sandboxed_trixie() {
    shipped_unit_verifies_scores_and_runs_sandboxed(Suite::Trixie);
}

fn shipped_unit_verifies_scores_and_runs_sandboxed(suite: Suite) {
    let Some((ct, _)) = SystemdContainer::boot_for_shipped_sentinel("sentinel-service", suite)
    else {
        return;
    };
    // The example configuration, on a port of the kernel's choosing (the
    // container shares the host's network) and polled faster.
    let config = std::fs::read_to_string(CONFIG)
        .unwrap()
        .replace("listen = \"127.0.0.1:9479\"", "listen = \"127.0.0.1:0\"")
        .replace("interval = \"5s\"", "interval = \"1s\"");
    assert!(config.contains("127.0.0.1:0") && config.contains("\"1s\""));
    std::fs::create_dir_all(ct.guest_path("/etc/spawnscope")).unwrap();
    std::fs::write(ct.guest_path("/etc/spawnscope/sentinel.toml"), config).unwrap();

    let verify = ct.run(&[
        "sh",
        "-c",
        "systemd-analyze verify /etc/systemd/system/spawnscope-sentinel.service 2>&1; echo rc=$?",
    ]);
    assert!(verify.trim_end().ends_with("rc=0"), "verify: {verify}");
    let verify_noise: Vec<&str> = verify
        .lines()
        .filter(|l| l.contains("spawnscope-sentinel"))
        .collect();
    assert!(verify_noise.is_empty(), "verify complains: {verify}");

    let (score, security) = ct.security_score("spawnscope-sentinel.service");
    assert!(score <= 2.0, "exposure {score} above 2.0: {security}");

    ct.install_unit(
        "flaky.service",
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sh -c 'exit 7'\nRestart=always\nRestartSec=500ms\n",
    );
    ct.run(&["systemctl", "start", "spawnscope-sentinel.service"]);
    ct.run(&["systemctl", "start", "flaky.service"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let journal = loop {
        let j = ct.run(&[
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "-p",
            "warning",
            "-u",
            "spawnscope-sentinel.service",
        ]);
        if j.contains("finding_opened: respawn loop in flaky.service") {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "no loop at warning priority; journal:\n{}\nstatus:\n{}",
            ct.run(&[
                "journalctl",
                "--no-pager",
                "-u",
                "spawnscope-sentinel.service"
            ]),
            ct.run(&[
                "sh",
                "-c",
                "systemctl status --no-pager spawnscope-sentinel.service; true"
            ])
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    // Read while the finding is open: its rate and first-seen time, and
    // how the drill-down that follows the opening names it (a line at
    // info priority).
    let addr = ct.sentinel_serving(SENTINEL);
    let (status, metrics) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{metrics}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let identified = loop {
        let j = ct.run(&["journalctl", "--no-pager", "-o", "cat", "-u", SENTINEL]);
        if let Some(l) = j
            .lines()
            .find(|l| l.contains("finding_identified: respawn loop in flaky.service"))
        {
            break l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "flaky.service was never identified; journal:\n{j}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    ct.run(&["systemctl", "stop", "flaky.service"]);
    let started = ct.start_times(FLAKY);
    let real_rate = restarts_per_min(&started);
    let opened = journal
        .lines()
        .find(|l| l.contains("finding_opened: respawn loop in flaky.service"))
        .expect("found above")
        .to_string();
    // The sentinel runs in the container but sees the host's cgroup tree:
    // the unit is labelled with its container.
    let label = format!("{FLAKY} @{}", ct.name);
    let metric = |name: &str| {
        samples(&metrics)
            .get(&format!("{name}{{unit=\"{label}\"}}"))
            .copied()
            .unwrap_or_else(|| panic!("no {name} for {label} in:\n{metrics}"))
    };
    let rate_now = 60.0 * metric("spawnscope_finding_restarts_per_second");
    let first = metric("spawnscope_finding_first_seen_timestamp_seconds");
    // "... N restarts since DATE (R/min)": the rate at the opening.
    let rate_opened: f64 = opened
        .split("/min)")
        .next()
        .and_then(|h| h.rsplit('(').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {opened:?}"));
    eprintln!(
        "sentinel ({}): {opened}\n  then {rate_now:.1}/min, first seen {first:.3}; systemd: {real_rate:.1}/min, starts {:?}\n  {identified}",
        suite.name(),
        &started[..started.len().min(4)]
    );
    // Each alert is one structured entry a log pipeline can filter on, not
    // a second copy from the stderr stream.
    let entries: Vec<serde_json::Value> = ct
        .run(&[
            "journalctl",
            "--no-pager",
            "-o",
            "json",
            &format!("SPAWNSCOPE_UNIT={label}"),
        ])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = entries
        .iter()
        .map(|e| e["SPAWNSCOPE_EVENT"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["finding_opened", "finding_identified"],
        "{entries:#?}"
    );
    let e = &entries[0];
    assert_eq!(e["MESSAGE"], opened.as_str(), "{e:#}");
    assert_eq!(e["PRIORITY"], "4", "{e:#}");
    assert_eq!(e["SYSLOG_IDENTIFIER"], "spawnscope", "{e:#}");
    assert_eq!(e["SPAWNSCOPE_KIND"], "respawn_loop", "{e:#}");
    assert_eq!(e["SPAWNSCOPE_SEVERITY"], "medium", "{e:#}");
    assert_eq!(e["_SYSTEMD_UNIT"], SENTINEL, "{e:#}");
    let detail: serde_json::Value =
        serde_json::from_str(e["SPAWNSCOPE_DETAIL"].as_str().unwrap()).unwrap();
    assert_eq!(detail["unit"], label.as_str(), "{detail:#}");
    assert_eq!(detail["kind"], "respawn_loop", "{detail:#}");
    assert_eq!(
        journal
            .lines()
            .filter(|l| l.contains("finding_opened: respawn loop in flaky.service"))
            .count(),
        1,
        "{journal}"
    );
    let main_pid = ct.show("spawnscope-sentinel.service", &["MainPID"])["MainPID"].clone();
    let status = ct.run(&["cat", &format!("/proc/{main_pid}/status")]);
    for set in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(
        !journal.contains("spawnscope: <"),
        "priority prefixes parsed: {journal}"
    );
    ct.run(&["systemctl", "stop", "spawnscope-sentinel.service"]);
    let p = ct.show(
        "spawnscope-sentinel.service",
        &["Result", "ExecMainStatus", "ActiveState"],
    );
    assert_eq!(p["Result"], "success", "{p:?}");
    assert_eq!(p["ExecMainStatus"], "0", "SIGTERM is a clean exit: {p:?}");
    assert!(
        ct.guest_path("/var/lib/spawnscope/state").exists(),
        "state saved in the StateDirectory"
    );

    // Named after what the unit runs: sh, exiting 7.
    assert!(
        identified.ends_with("; runs /bin/sh, exits with status 7"),
        "{identified}"
    );
    assert!(
        !identified.contains("systemd-executor") && !identified.contains("/proc/self/fd/"),
        "names systemd-executor's hand-off, not the unit's own program: {identified}"
    );

    // Restarts two to a poll: the rate is systemd's all the same, at the
    // opening and after, and the finding was first seen by the first
    // restart, not at the poll that opened it.
    for (when, rate) in [("at the opening", rate_opened), ("later", rate_now)] {
        assert!(
            (rate - real_rate).abs() <= 0.1 * real_rate,
            "{when}: {rate}/min, systemd restarted {FLAKY} {real_rate:.1}/min ({started:?}): {opened}"
        );
    }
    assert!(
        first >= started[0] - 0.5 && first <= started[1],
        "first seen {first}, systemd started {FLAKY} at {} and first restarted it at {}: {opened}",
        started[0],
        started[1]
    );
}
