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
