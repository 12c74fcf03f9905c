//! Normal work raises no finding: a healthy oneshot timer every 2 s, a unit
//! running 2,000 short successful commands (both in a real systemd),
//! `stress-ng --fork 2 -t 10`, and a clean `cargo build` of a small crate.

use std::{path::Path, process::Command, time::Duration};

use spawnscope_tests::{TestCgroup, Tracer, skip, summary, systemd::SystemdContainer};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn normal_work_raises_no_finding() {
    let Some(ct) = SystemdContainer::boot("calm") else {
        return;
    };
    for tool in ["stress-ng", "cargo"] {
        if !have(tool) {
            skip(&format!(
                "no_false_alarms: {tool} not installed (cargo xtask setup installs stress-ng)"
            ));
            return;
        }
    }
    ct.install_unit(
        "tick.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'date > /dev/null'\n",
    );
    ct.install_unit(
        "tick.timer",
        "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=2s\nAccuracySec=1ms\n",
    );
    let stress = TestCgroup::new("calm-stress");
    let build = TestCgroup::new("calm-build");
    let krate = tempfile::tempdir().unwrap();
    std::fs::create_dir(krate.path().join("src")).unwrap();
    std::fs::write(
        krate.path().join("Cargo.toml"),
        "[package]\nname = \"calm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        krate.path().join("src/main.rs"),
        "fn main() { println!(\"{}\", (1..10).sum::<u32>()); }\n",
    )
    .unwrap();

    let tracer = Tracer::start(&["--interval", "1s"]);
    ct.run(&["systemctl", "start", "tick.timer"]);
    let mut stress_ng = stress
        .command("stress-ng")
        .args(["--fork", "2", "-t", "10", "--quiet"])
        .spawn()
        .unwrap();
    ct.run(&[
        "systemd-run",
        "--unit=burst2000",
        "--wait",
        "--quiet",
        "/bin/sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done",
    ]);
    let st = build
        .command("cargo")
        .args(["build", "--offline", "--quiet"])
        .current_dir(krate.path())
        .env("CARGO_TARGET_DIR", krate.path().join("target"))
        .status()
        .unwrap();
    assert!(st.success(), "cargo build");
    assert!(stress_ng.wait().unwrap().success(), "stress-ng");
    std::thread::sleep(Duration::from_secs(1));
    let runs = ct.show("tick.service", &["NRestarts"]);
    let ticks = ct.run(&[
        "journalctl",
        "-u",
        "tick.service",
        "-o",
        "cat",
        "--no-pager",
    ]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let ours: Vec<_> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["container"] == ct.name.as_str()
                || [&stress.rel, &build.rel].iter().any(|r| {
                    f["cgroup"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(r.as_str()))
                })
        })
        .collect();
    assert!(ours.is_empty(), "false alarms: {ours:?}");
    // The scenarios really ran: the timer fired several times, and the
    // cgroups were busy.
    let fired = ticks.lines().filter(|l| l.starts_with("Finished")).count();
    assert!(
        fired >= 4,
        "tick.service ran {fired} times: {runs:?} {ticks}"
    );
    assert!(Path::new(&krate.path().join("target/debug/calm")).exists());
    let rows = s["rows"].as_array().unwrap();
    let busy = |rel: &str| {
        rows.iter()
            .filter(|r| {
                r["cgroups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["path"].as_str().is_some_and(|p| p.starts_with(rel)))
            })
            .map(|r| r["total"]["forks"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(
        busy(&stress.rel) > 1000,
        "stress-ng forked: {}",
        busy(&stress.rel)
    );
    assert!(busy(&build.rel) > 5, "cargo ran: {}", busy(&build.rel));
    ct.shutdown();
}
