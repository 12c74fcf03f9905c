//! The release .deb in a real systemd (the nspawn fixture, bookworm, given
//! CAP_BPF and CAP_PERFMON to pass on), through its whole life: `dpkg -i`
//! installs it and starts nothing; `systemd-analyze security` of the
//! installed unit stays at or below 2.0; `systemctl enable --now` runs the
//! sentinel, which serves /metrics; installing it again (an upgrade)
//! restarts it on the new binary; with a configuration that does not
//! parse, or pointed at a missing BTF file, the unit fails once and stays
//! failed instead of restarting; `dpkg -r` stops,
//! disables and removes it but keeps the configuration and the state;
//! `dpkg --purge` removes those too.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    dist::{self, Arch},
    systemd::SystemdContainer,
};

const UNIT: &str = "spawnscope-sentinel.service";

/// `sh -c SCRIPT` inside, with its exit status appended as "rc=N".
fn sh(ct: &SystemdContainer, script: &str) -> String {
    ct.run(&["sh", "-c", &format!("{{ {script}\n}} 2>&1; echo rc=$?")])
}

/// Waits for the unit to fail, then checks that it stays failed without
/// a restart for longer than its RestartSec=5s; returns its properties.
fn failed_once(ct: &SystemdContainer) -> std::collections::BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ct.show(UNIT, &["ActiveState"])["ActiveState"] != "failed" {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            ct.show(UNIT, &["ActiveState", "SubState"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Longer than RestartSec=5s: a restart would have happened by now.
    std::thread::sleep(Duration::from_secs(8));
    let p = ct.show(
        UNIT,
        &["ActiveState", "NRestarts", "ExecMainStatus", "Result"],
    );
    assert_eq!(p["ActiveState"], "failed", "{p:?}");
    assert_eq!(p["NRestarts"], "0", "{p:?}");
    assert_eq!(p["Result"], "exit-code", "{p:?}");
    p
}

#[test]
fn deb_installs_runs_fails_once_and_purges() {
    let Some(dir) = dist::checked_dir("dist_deb") else {
        return;
    };
    let Some(ct) = SystemdContainer::boot_with(
        "dist-deb",
        &[
            "--capability=CAP_BPF,CAP_PERFMON",
            "--system-call-filter=bpf perf_event_open",
        ],
    ) else {
        return;
    };
    let deb = dist::deb_name(Arch::X86_64);
    ct.copy_in(&dir.join(&deb), &format!("/root/{deb}"));

    // Install: files in their places, nothing started.
    let out = sh(&ct, &format!("dpkg -i /root/{deb}"));
    assert!(out.trim_end().ends_with("rc=0"), "dpkg -i: {out}");
    assert!(!out.contains("warning"), "dpkg -i warned: {out}");
    let status = sh(&ct, "dpkg-query -W -f '${Status}' spawnscope");
    assert!(status.starts_with("install ok installed"), "{status}");
    for f in [
        "/usr/bin/spawnscope",
        "/lib/systemd/system/spawnscope-sentinel.service",
        "/etc/spawnscope/sentinel.toml",
        "/usr/share/spawnscope/spawnscope.rules.yml",
        "/usr/share/spawnscope/spawnscope.dashboard.json",
        "/usr/share/man/man1/spawnscope-sentinel.1.gz",
        "/usr/share/bash-completion/completions/spawnscope",
    ] {
        assert!(ct.guest_path(f).exists(), "{f} not installed");
    }
    let p = ct.show(
        UNIT,
        &["LoadState", "ActiveState", "UnitFileState", "ExecStart"],
    );
    assert_eq!(p["LoadState"], "loaded", "{p:?}");
    assert_eq!(
        p["ActiveState"], "inactive",
        "installing starts nothing: {p:?}"
    );
    assert_eq!(p["UnitFileState"], "disabled", "{p:?}");
    assert!(p["ExecStart"].contains("/usr/bin/spawnscope"), "{p:?}");

    let (score, security) = ct.security_score(UNIT);
    assert!(score <= 2.0, "exposure {score} above 2.0: {security}");

    // Enabled and started, on a port of the kernel's choosing (the
    // container shares the host's network), polling every second.
    let conf = ct.guest_path("/etc/spawnscope/sentinel.toml");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("listen = \"127.0.0.1:9479\"", "listen = \"127.0.0.1:0\"")
        .replace("interval = \"5s\"", "interval = \"1s\"");
    assert!(text.contains("127.0.0.1:0") && text.contains("\"1s\""));
    std::fs::write(&conf, text).unwrap();
    let out = sh(&ct, &format!("systemctl enable --now {UNIT}"));
    assert!(out.trim_end().ends_with("rc=0"), "{out}");
    ct.sentinel_serving(UNIT);
    // An upgrade (the same package again) puts the running sentinel on
    // the new binary: restarted, still running, still enabled.
    let before = ct.show(UNIT, &["MainPID"])["MainPID"].clone();
    let out = sh(&ct, &format!("dpkg -i /root/{deb}"));
    assert!(out.trim_end().ends_with("rc=0"), "dpkg -i again: {out}");
    let p = ct.show(UNIT, &["MainPID", "ActiveState", "UnitFileState"]);
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["UnitFileState"], "enabled", "{p:?}");
    assert_ne!(p["MainPID"], before, "not restarted by the upgrade: {p:?}");
    ct.run(&["systemctl", "stop", UNIT]);
    assert!(
        ct.guest_path("/var/lib/spawnscope/state").exists(),
        "state saved in the StateDirectory"
    );

    // A configuration that does not parse: one start, exit 2, no restart.
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, "interval = \"soon\"\n").unwrap();
    sh(&ct, &format!("systemctl start {UNIT}"));
    let p = failed_once(&ct);
    assert_eq!(p["ExecMainStatus"], "2", "{p:?}");
    std::fs::write(&conf, good).unwrap();
    ct.run(&["systemctl", "reset-failed", UNIT]);

    // On a kernel it cannot run on (here: a BTF file that is not there)
    // the sentinel fails once and is not restarted.
    let dropin = ct.guest_path(&format!("/etc/systemd/system/{UNIT}.d"));
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("btf.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/bin/spawnscope sentinel --btf /nonexistent/vmlinux\n",
    )
    .unwrap();
    ct.run(&["systemctl", "daemon-reload"]);
    sh(&ct, &format!("systemctl start {UNIT}"));
    let p = failed_once(&ct);
    assert_eq!(p["ExecMainStatus"], "4", "{p:?}");
    let j = ct.run(&["journalctl", "--no-pager", "-o", "cat", "-u", UNIT]);
    let said: Vec<&str> = j
        .lines()
        .filter(|l| l.contains("/nonexistent/vmlinux"))
        .collect();
    assert_eq!(said.len(), 1, "one line, naming the missing BTF:\n{j}");
    assert!(said[0].contains("BTF"), "{}", said[0]);
    std::fs::remove_dir_all(&dropin).unwrap();
    ct.run(&["systemctl", "daemon-reload"]);
    ct.run(&["systemctl", "reset-failed", UNIT]);

    // Remove: stopped, disabled, gone; configuration and state kept.
    ct.run(&["systemctl", "start", UNIT]);
    assert_eq!(ct.show(UNIT, &["ActiveState"])["ActiveState"], "active");
    let out = sh(&ct, "dpkg -r spawnscope");
    assert!(out.trim_end().ends_with("rc=0"), "dpkg -r: {out}");
    let status = sh(&ct, "dpkg-query -W -f '${Status}' spawnscope");
    assert!(status.starts_with("deinstall ok config-files"), "{status}");
    for f in [
        "/usr/bin/spawnscope",
        "/lib/systemd/system/spawnscope-sentinel.service",
        "/etc/systemd/system/multi-user.target.wants/spawnscope-sentinel.service",
        "/usr/share/spawnscope",
        "/usr/share/man/man1/spawnscope.1.gz",
    ] {
        assert!(!ct.guest_path(f).exists(), "{f} left after dpkg -r");
    }
    let p = ct.show(UNIT, &["LoadState", "ActiveState"]);
    assert_eq!(p["LoadState"], "not-found", "{p:?}");
    assert_eq!(p["ActiveState"], "inactive", "{p:?}");
    assert!(ct.guest_path("/etc/spawnscope/sentinel.toml").exists());
    assert!(ct.guest_path("/var/lib/spawnscope/state").exists());

    // Purge: configuration, state and logs too.
    let out = sh(&ct, "dpkg --purge spawnscope");
    assert!(out.trim_end().ends_with("rc=0"), "dpkg --purge: {out}");
    for d in [
        "/etc/spawnscope",
        "/var/lib/spawnscope",
        "/var/log/spawnscope",
    ] {
        assert!(!ct.guest_path(d).exists(), "{d} left after purge");
    }
    let status = sh(&ct, "dpkg-query -W -f '${Status}' spawnscope");
    assert!(
        !status.contains("ok installed") && !status.contains("config-files"),
        "{status}"
    );
}
