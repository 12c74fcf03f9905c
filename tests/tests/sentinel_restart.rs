//! kill -9, then a restart: the sentinel's per-unit totals continue from
//! its saved state (saved every poll here, so at most one interval can be
//! lost; here none is, as the kill comes after a save), counting since the
//! first start, and a SIGTERM saves and exits 0.

use std::time::Duration;

use spawnscope_tests::{
    TestCgroup, require_root,
    sentinel::{Sentinel, config, unit_value},
};

fn run_true(cg: &TestCgroup, n: usize) {
    for _ in 0..n {
        let s = cg.command("/bin/true").status().unwrap();
        assert!(s.success());
    }
}

#[test]
fn totals_continue_across_kill_9_and_restart() {
    if !require_root("sentinel_restart") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cg = TestCgroup::named("restart", ".service");
    let unit = cg.path.file_name().unwrap().to_str().unwrap().to_string();
    let cfg = config(dir.path(), "");

    let s = Sentinel::start(dir.path(), &cfg);
    run_true(&cg, 50);
    let execs = |m: &_| unit_value(m, "spawnscope_spawns_total", &unit, "kind=\"exec\"");
    let m = s.wait_metrics(Duration::from_secs(20), "50 execs", |m| execs(m) >= 50.0);
    assert_eq!(execs(&m), 50.0);
    let since = m["spawnscope_state_since_timestamp_seconds"];
    // Two more polls: the one that counted the 50 has saved by then.
    let polls = m["spawnscope_polls_total"];
    s.wait_metrics(Duration::from_secs(10), "2 more polls", |m| {
        m["spawnscope_polls_total"] >= polls + 2.0
    });
    s.signal(libc::SIGKILL);
    let (code, _) = s.wait();
    assert_eq!(code, None, "killed by the signal");

    let mut s = Sentinel::start(dir.path(), &cfg);
    let restored = s.wait_line(Duration::from_secs(5), "state restored from");
    assert!(
        restored.starts_with("<6>spawnscope: state restored from"),
        "{restored}"
    );
    let m = s.wait_metrics(Duration::from_secs(10), "first poll", |m| {
        m.contains_key("spawnscope_polls_total")
    });
    assert_eq!(execs(&m), 50.0, "restored, not restarted from zero");
    assert_eq!(
        m["spawnscope_state_since_timestamp_seconds"], since,
        "counting since the first start"
    );
    run_true(&cg, 30);
    let m = s.wait_metrics(Duration::from_secs(20), "80 execs", |m| execs(m) >= 80.0);
    assert_eq!(execs(&m), 80.0);
    assert_eq!(
        unit_value(&m, "spawnscope_exits_total", &unit, "class=\"clean\""),
        80.0
    );

    // SIGTERM: the last counts are saved, and the exit is clean.
    run_true(&cg, 7);
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("sentinel stopped; state saved"), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state")).unwrap()).unwrap();
    assert_eq!(state["units"][&unit]["execs"], 87, "{state}");
    assert_eq!(state["since_unix"].as_f64().unwrap(), since);
}
