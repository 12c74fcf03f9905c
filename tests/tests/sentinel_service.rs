//! The shipped unit, as an operator installs it, in a real systemd (the
//! nspawn fixture, given CAP_BPF and CAP_PERFMON to pass on): it passes
//! `systemd-analyze verify`, its `systemd-analyze security` exposure is
//! reported, and under its whole sandbox the sentinel starts, drops its
//! capabilities, and reports a loop in the journal at error priority.

use std::time::{Duration, Instant};

use spawnscope_tests::{spawnscope_bin, systemd::SystemdContainer};

const UNIT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dist/spawnscope-sentinel.service"
);
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/sentinel.toml");

#[test]
fn shipped_unit_verifies_scores_and_runs_sandboxed() {
    let Some(ct) = SystemdContainer::boot_with(
        "sentinel-service",
        &[
            "--capability=CAP_BPF,CAP_PERFMON",
            "--system-call-filter=bpf perf_event_open",
        ],
    ) else {
        return;
    };
    ct.copy_in(&spawnscope_bin(), "/usr/local/bin/spawnscope");
    let unit = std::fs::read_to_string(UNIT_FILE).unwrap();
    ct.install_unit("spawnscope-sentinel.service", &unit);
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
            "err",
            "-u",
            "spawnscope-sentinel.service",
        ]);
        if j.contains("finding_opened: respawn loop in flaky.service") {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "no loop at error priority; journal:\n{}\nstatus:\n{}",
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
    ct.run(&["systemctl", "stop", "flaky.service"]);
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
}
