//! An OOM kill under the sentinel: alerted at once (error priority, the
//! victim's pid and unit in the JSON), counted in /metrics, the memory
//! cgroup's own kill counter alerted too, and the kill kept in the state,
//! so it is still counted after a restart.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    MemCgroup, require_root,
    sentinel::{Sentinel, config},
    workload_bin,
};

fn alerts(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn oom_kill_is_alerted_counted_and_kept() {
    if !require_root("sentinel_oom") {
        return;
    }
    let Some(mcg) = MemCgroup::new("sentinel-oom", 64 << 20) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("alerts.jsonl");
    let cfg = config(
        dir.path(),
        &format!("[alerts]\njsonl = \"{}\"\n", jsonl.display()),
    );
    let mut s = Sentinel::start(dir.path(), &cfg);
    let mut leaker = mcg.command(workload_bin());
    leaker.args(["--leak-mib-per-s", "16"]);
    let mut child = leaker.spawn().unwrap();
    let pid = child.id();
    let st = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "the leaker was OOM-killed: {st}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let (kill, counted) = loop {
        let a = alerts(&jsonl);
        let kill = a
            .iter()
            .find(|a| a["event"] == "oom_kill" && a["detail"]["tgid"] == pid)
            .cloned();
        let counted = a
            .iter()
            .find(|a| {
                a["event"] == "memcg_oom_kill" && a["detail"]["cgroup"] == mcg.mem_rel.as_str()
            })
            .cloned();
        if let (Some(k), Some(c)) = (kill, counted) {
            break (k, c);
        }
        assert!(
            Instant::now() < deadline,
            "alerts so far: {a:?}\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(kill["priority"], "err");
    assert_eq!(kill["detail"]["comm"], "spawn-workload");
    assert_eq!(kill["detail"]["scope"], "memcg", "{kill}");
    assert_eq!(kill["detail"]["cgroup"], mcg.cg.rel.as_str(), "{kill}");
    // The same object `trace` prints, from the same code: what the memory
    // watch said before the kill comes with it.
    let d = &kill["detail"];
    assert!(d.get("last_warning").is_some(), "{kill}");
    assert_eq!(
        d["last_forecast"]["cgroup"]["cgroup"],
        mcg.mem_rel.as_str(),
        "{kill}"
    );
    assert_eq!(
        d["last_forecast"]["cgroup"]["limit_bytes"],
        64u64 << 20,
        "{kill}"
    );
    assert_eq!(d["unit_label"], kill["key"], "{kill}");
    assert!(
        kill["message"]
            .as_str()
            .unwrap()
            .starts_with("OOM kill in "),
        "{kill}"
    );
    assert_eq!(counted["detail"]["kills"], 1, "{counted}");
    let line = s.wait_line(Duration::from_secs(5), "oom_kill: OOM kill in");
    assert!(line.starts_with("<3>spawnscope: oom_kill: "), "{line}");
    let m = s.wait_metrics(Duration::from_secs(5), "the kill counted", |m| {
        m["spawnscope_oom_kills_total"] == 1.0
    });
    assert_eq!(m["spawnscope_oom_kills_total"], 1.0);
    drop(mcg);
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state")).unwrap()).unwrap();
    assert_eq!(state["oom_kills"][0]["tgid"], pid, "{state}");
    assert_eq!(state["oom_kills_total"], 1);

    let s = Sentinel::start(dir.path(), &cfg);
    let m = s.wait_metrics(Duration::from_secs(5), "a poll", |m| {
        m.contains_key("spawnscope_oom_kills_total")
    });
    assert_eq!(
        m["spawnscope_oom_kills_total"], 1.0,
        "kept across the restart"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait().0, Some(0));
}
