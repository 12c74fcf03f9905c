//! A live scrape of the sentinel's `/metrics`, with a loop open, passes
//! `promtool check metrics`; the loop is a finding gauge and an alert in
//! the JSON-lines file, named by its executable and exit status through
//! the drill-down; BPF run time per program appears while
//! kernel.bpf_stats_enabled is on (restored afterwards). A restart while
//! the loop goes on restores the finding without alerting it again.

use std::{process::Stdio, time::Duration};

use spawnscope_tests::{
    TestCgroup, require_root,
    sentinel::{Sentinel, config, unit_value},
};

fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut c = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs it)");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

struct BpfStats(String);

impl BpfStats {
    fn enable() -> Self {
        let p = "/proc/sys/kernel/bpf_stats_enabled";
        let old = std::fs::read_to_string(p).unwrap();
        std::fs::write(p, "1").unwrap();
        Self(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", self.0.trim());
    }
}

#[test]
fn live_scrape_passes_promtool_with_a_loop_open() {
    if !require_root("sentinel_metrics_live") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let cg = TestCgroup::named("flaky", ".service");
    let unit = cg.path.file_name().unwrap().to_str().unwrap().to_string();
    let cfg = config(
        dir.path(),
        &format!("[alerts]\njsonl = \"{}\"\n", alerts.display()),
    );
    let s = Sentinel::start(dir.path(), &cfg);
    // A supervisor restarting a failing child in place (no new cgroup):
    // a candidate, drilled into, and a loop once it has gone on for a
    // minute; medium, as a loop seen for a minute is.
    let mut sup = cg
        .command("/bin/sh")
        .args(["-c", "while :; do /bin/sh -c 'exit 3'; sleep 0.2; done"])
        .spawn()
        .unwrap();
    let key =
        format!("spawnscope_finding{{unit=\"{unit}\",kind=\"respawn_loop\",severity=\"medium\"}}");
    s.wait_metrics(Duration::from_secs(180), "the loop's finding", |m| {
        m.get(&key) == Some(&1.0)
    });
    let stats = BpfStats::enable();
    let m = s.wait_metrics(Duration::from_secs(10), "BPF run counts", |m| {
        m.get("spawnscope_bpf_runs_total{program=\"sched_process_exec\"}")
            .is_some_and(|n| *n > 0.0)
    });
    assert_eq!(m["spawnscope_bpf_stats_enabled"], 1.0);
    assert!(m["spawnscope_bpf_run_seconds_total{program=\"sched_process_exec\"}"] > 0.0);
    let text = s.scrape();
    drop(stats);
    let (ok, said) = promtool_check(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
    assert!(unit_value(&m, "spawnscope_exits_total", &unit, "class=\"failed\"") >= 3.0);
    assert!(m["spawnscope_resident_memory_bytes"] > 0.0);
    // Polls every 500 ms: the last one completed moments ago.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let age = now - m["spawnscope_last_poll_timestamp_seconds"];
    assert!((0.0..5.0).contains(&age), "last poll {age} s ago");
    assert_eq!(m["spawnscope_dropped_records_total{kind=\"exec\"}"], 0.0);

    // One opening alert, named through the drill-down.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let opened: Vec<_> = lines
        .iter()
        .filter(|a| a["event"] == "finding_opened" && a["key"] == unit.as_str())
        .collect();
    assert_eq!(opened.len(), 1, "{lines:?}");
    let msg = opened[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("respawn loop in {unit}: ")),
        "{msg}"
    );
    assert!(
        msg.ends_with("; runs /bin/sh, exits with status 3"),
        "{msg}"
    );
    assert_eq!(
        opened[0]["detail"]["detail"]["argv"],
        serde_json::json!(["/bin/sh", "-c", "exit 3"])
    );
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("drill-down into {unit} ended: loop confirmed")),
        "{stderr}"
    );

    // Restarted while the loop goes on: the finding is restored, its
    // restarts keep counting, and it is not alerted as opened again.
    let restarts = |m: &std::collections::BTreeMap<String, f64>| {
        m.get(&format!("spawnscope_finding_restarts{{unit=\"{unit}\"}}"))
            .copied()
    };
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state")).unwrap()).unwrap();
    let saved = state["findings"][&unit]["restarts"].as_f64().unwrap();
    let s = Sentinel::start(dir.path(), &cfg);
    s.wait_metrics(Duration::from_secs(20), "restarts counted on", |m| {
        restarts(m).is_some_and(|r| r >= saved + 3.0)
    });
    sup.kill().unwrap();
    sup.wait().unwrap();
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let opened = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"finding_opened\"") && l.contains(&format!("\"key\":\"{unit}\"")))
        .count();
    assert_eq!(opened, 1, "opened once, across the restart");
}
