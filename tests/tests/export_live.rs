//! `trace --export DIR`: stopped with Ctrl-C, spawnscope writes every
//! export format for what it traced, and leaves no temporary recording.

use std::time::Duration;

use spawnscope::export::hdr;
use spawnscope_tests::{TestCgroup, Tracer, require_root, row_with_id, summary, workload_bin};

#[test]
fn ctrl_c_writes_every_format_for_the_traced_units() {
    if !require_root("export_live") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exports");
    let cg = TestCgroup::new("export");
    let mut tracer = Tracer::start(&["--interval", "500ms", "--export", out.to_str().unwrap()]);
    let st = cg
        .command(workload_bin())
        .args(["--clean", "20", "--failed", "10"])
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    // One interval with the memory forecast, so the series has a point.
    tracer.wait_for(Duration::from_secs(10), "an interval", |v| {
        v["type"] == "interval" && !v["memory"].is_null()
    });
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    // The summary row carries the respawn intervals too: 20 execs of
    // /bin/true and 10 of /bin/false make 19 + 9 intervals.
    let row = row_with_id(summary(&lines), cg.id);
    let n = |k: &str| -> u64 {
        row[k]
            .as_array()
            .unwrap_or_else(|| panic!("no {k}: {row}"))
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(n("intervals"), 19 + 9, "{row}");
    assert_eq!(n("lifetimes"), 31, "{row}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "spawnscope-exec-rate.svg",
            "spawnscope-histograms.json",
            "spawnscope-interval.svg",
            "spawnscope-lifetime.svg",
            "spawnscope-memory.svg",
            "spawnscope.hlog",
            "spawnscope.prom"
        ],
        "every format and no temporary recording"
    );
    for n in &names {
        assert!(
            stderr.contains(&format!("spawnscope: exported {}", out.join(n).display())),
            "{stderr}"
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("spawnscope-histograms.json")).unwrap())
            .unwrap();
    let unit = v["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == cg.rel.as_str())
        .unwrap_or_else(|| panic!("no {} in {v}", cg.rel));
    // 20 clean and 10 failed children, and the workload's own exit.
    assert_eq!(
        unit["exits"],
        serde_json::json!({"clean": 21, "failed": 10, "signaled": 0, "core_dumped": 0})
    );
    assert_eq!(unit["totals"]["execs"], 31);
    // The memory series of the trace's intervals is exported too.
    let mem = v["memory"].as_array().unwrap();
    assert!(!mem.is_empty(), "{v}");
    assert!(
        mem[0]["used_bytes"].as_u64().unwrap() > 0 && mem[0]["total_bytes"].as_u64().unwrap() > 0
    );
    assert!(v["memory_used"]["count"].as_u64().unwrap() >= 1, "{v}");
    // Three executables ran in the unit: each has its own histograms.
    let exes: Vec<&str> = unit["executables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["executable"].as_str().unwrap())
        .collect();
    assert!(
        exes.contains(&"/bin/true") && exes.contains(&"/bin/false"),
        "{exes:?}"
    );
    let t = unit["executables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["executable"] == "/bin/true")
        .unwrap();
    assert_eq!(t["histograms"][0]["count"], 20, "20 lifetimes of true: {t}");
    assert_eq!(t["histograms"][1]["measure"], "exec_interval", "{t}");
    assert_eq!(t["histograms"][1]["count"], 19, "19 intervals: {t}");
    // The exposition with memory gauges still passes promtool.
    let prom = std::fs::read(out.join("spawnscope.prom")).unwrap();
    assert!(String::from_utf8_lossy(&prom).contains("\nspawnscope_memory_used_bytes "));
    let mut c = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs prometheus)");
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), &prom).unwrap();
    let checked = c.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let lifetime = &unit["histograms"][0];
    assert_eq!(lifetime["measure"], "lifetime");
    assert_eq!(lifetime["count"], 31);
    let log = hdr::read(&std::fs::read(out.join("spawnscope.hlog")).unwrap()).unwrap();
    let e = log
        .iter()
        .find(|e| e.unit == cg.rel && e.measure == Some(spawnscope::export::Measure::LifetimeNs))
        .expect("the unit's lifetime histogram in the log");
    assert_eq!(e.hist.len(), 31);
}
