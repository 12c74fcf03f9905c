//! Transient units by the hundred, against a counter map three times
//! smaller: each removed cgroup's final counts are read and its entries
//! freed once its removal is read (at the latest when the cgroup ring is
//! half full, about 120 records), so nothing overflows and every unit's
//! exec and exit are counted exactly.

use std::time::Duration;

use spawnscope_tests::{
    TestCgroup, require_root,
    sentinel::{Sentinel, config, unit_value},
};

const UNITS: usize = 600;

#[test]
fn removed_cgroups_are_folded_and_freed() {
    if !require_root("sentinel_transient_units") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let slice = TestCgroup::named("transient", ".slice");
    let s = Sentinel::start_with(
        dir.path(),
        &config(dir.path(), "top_units = 1000\n"),
        &["--max-cgroups", "200"],
    );
    for i in 0..UNITS {
        slice.run_transient(&format!("run-u{i}.service"));
    }
    let m = s.wait_metrics(Duration::from_secs(30), "every unit counted", |m| {
        (0..UNITS).all(|i| {
            unit_value(
                m,
                "spawnscope_spawns_total",
                &format!("run-u{i}.service"),
                "kind=\"exec\"",
            ) == 1.0
        })
    });
    for i in 0..UNITS {
        let u = format!("run-u{i}.service");
        assert_eq!(
            unit_value(&m, "spawnscope_exits_total", &u, "class=\"clean\""),
            1.0,
            "{u}"
        );
    }
    assert_eq!(m["spawnscope_map_overflow_events_total"], 0.0);
    for kind in ["map_full", "lifetimes_full", "names_lost"] {
        assert_eq!(
            m[&format!("spawnscope_probe_errors_total{{kind=\"{kind}\"}}")],
            0.0,
            "{kind}"
        );
    }
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
