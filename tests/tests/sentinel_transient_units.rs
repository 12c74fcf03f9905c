//! Transient units by the hundred, against a counter map three times
//! smaller: each removed cgroup's final counts are read and its entries
//! freed once its removal is read (at the poll, or sooner once 50 units,
//! a quarter of the map, have come and gone), so nothing overflows and
//! every unit's exec and exit are counted exactly.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use spawnscope_tests::{
    TestCgroup, require_root,
    sentinel::{Sentinel, config, samples, unit_value},
};

const UNITS: usize = 600;
const BATCH: usize = 100;

fn exec_count(m: &BTreeMap<String, f64>, i: usize) -> f64 {
    unit_value(
        m,
        "spawnscope_spawns_total",
        &format!("run-u{i}.service"),
        "kind=\"exec\"",
    )
}

/// Scrapes until every unit of `batch` has its one exec counted; panics
/// with the units that have not and the probe's error counters.
fn wait_counted(s: &Sentinel, batch: &[usize]) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = samples(&s.scrape());
        let wrong: Vec<String> = batch
            .iter()
            .filter(|&&i| exec_count(&m, i) != 1.0)
            .map(|&i| format!("run-u{i}.service={}", exec_count(&m, i)))
            .collect();
        if wrong.is_empty() {
            return m;
        }
        if Instant::now() >= deadline {
            let errors: Vec<String> = m
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("spawnscope_probe_errors_total")
                        || k.starts_with("spawnscope_map_overflow")
                })
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            panic!(
                "{} of {} units not counted once within 60 s, e.g. {:?}\n{}\nstderr:\n{}",
                wrong.len(),
                batch.len(),
                &wrong[..wrong.len().min(10)],
                errors.join("\n"),
                s.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

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
    // In batches, each counted before the next starts: a batch (200
    // records) fits both the cgroup ring (about 240) and the counter map
    // (200) even if the sentinel is not scheduled at all meanwhile, so a
    // busy host cannot make this test lose counts; three batches through a
    // map of 200 can only be counted exactly if removed entries are freed.
    let mut m = Default::default();
    for batch in (0..UNITS).collect::<Vec<_>>().chunks(BATCH) {
        for i in batch {
            slice.run_transient(&format!("run-u{i}.service"));
        }
        m = wait_counted(&s, batch);
    }
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
