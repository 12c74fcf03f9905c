//! Against a real systemd: a transient service (`systemd-run --unit`) and a
//! transient scope (`systemd-run --scope`) each run 200 short commands and
//! are gone before spawnscope reads a single counter. Both are still named,
//! from the kernel's cgroup_mkdir record, with exact counts. On bookworm
//! (systemd 252) and trixie (systemd 257).

use std::path::Path;

use spawnscope_tests::{
    Tracer, summary,
    systemd::{Suite, SystemdContainer},
    unit_rows,
};

const LOOP: &str = "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done";

#[test]
fn vanished_transient_units_are_named_after_their_cgroup_is_gone_bookworm() {
    vanished_transient_units_are_named_after_their_cgroup_is_gone(Suite::Bookworm);
}

#[test]
fn vanished_transient_units_are_named_after_their_cgroup_is_gone_trixie() {
    vanished_transient_units_are_named_after_their_cgroup_is_gone(Suite::Trixie);
}

fn vanished_transient_units_are_named_after_their_cgroup_is_gone(suite: Suite) {
    let Some(ct) = SystemdContainer::boot_suite(&format!("transient-{}", suite.name()), suite, &[])
    else {
        return;
    };
    // No interval elapses during the test: the only reading is the summary.
    let tracer = Tracer::start(&["--interval", "1h"]);
    ct.run(&[
        "systemd-run",
        "--unit=burst-svc",
        "--wait",
        "--quiet",
        "/bin/sh",
        "-c",
        LOOP,
    ]);
    ct.run(&[
        "systemd-run",
        "--scope",
        "--unit=burst-scope",
        "--quiet",
        "/bin/sh",
        "-c",
        LOOP,
    ]);
    for cg in [
        "/system.slice/burst-svc.service",
        "/system.slice/burst-scope.scope",
    ] {
        let host = ct.cgroup.path.join(format!("payload{cg}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while host.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} still exists",
                host.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!Path::new(&host).exists());
    }
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    // Only the summary reports counts (a finding about the host's own
    // activity may come before it).
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l["type"] != "interval"),
        "no interval was reported: {lines:?}"
    );

    for (unit, slice) in [
        ("burst-svc.service", "system.slice"),
        ("burst-scope.scope", "system.slice"),
    ] {
        let rows = unit_rows(s, unit, Some(&ct.name));
        assert_eq!(rows.len(), 1, "{unit} not named: {s}");
        let row = rows[0];
        assert_eq!(row["slice"], slice);
        let path = format!("{}/payload/system.slice/{unit}", ct.cgroup.rel);
        assert_eq!(row["cgroups"][0]["path"], path.as_str());
        // sh is exec'd in the unit; it forks and execs /bin/true 200 times,
        // and all 201 processes exit cleanly there. The service's sh is
        // started by PID 1 (on systemd 257 spawned into the unit's cgroup,
        // through systemd-executor); the scope's by systemd-run itself,
        // which moves into the scope and execs it.
        let (forks, execs) = if unit.ends_with(".service") {
            (suite.forks_per_start(), suite.execs_per_start() - 1)
        } else {
            (0, 0)
        };
        let t = &row["total"];
        assert_eq!(t["forks"], 200 + forks, "{unit}: {t}");
        assert_eq!(t["execs"], 201 + execs, "{unit}: {t}");
        assert_eq!(t["exit_clean"], 201, "{unit}: {t}");
    }
    assert_eq!(s["probe"]["names_lost"], 0);
    ct.shutdown();
}
