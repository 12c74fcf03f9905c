//! Detection latency, measured (not asserted): `cargo xtask bench detect`
//! runs this ignored test. Three crash loops in a real systemd, restarting
//! every 10 s, 2 s and 100 ms (RestartSec; each run fails after 50 ms),
//! are traced until each is reported; then they are stopped and traced
//! until each is marked stopped. Prints restarts and seconds to detection,
//! and seconds from the last start to the stopped mark.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use spawnscope::clock::now_unix;
use spawnscope_tests::{
    Tracer, bench_report, sentinel::Sentinel, systemd::SystemdContainer, workload_bin,
};

const LOOPS: [(&str, &str); 3] = [
    ("loop-10s.service", "10s"),
    ("loop-2s.service", "2s"),
    ("loop-100ms.service", "100ms"),
];

#[test]
#[ignore = "a benchmark: cargo xtask bench detect"]
fn detection_latency() {
    let Some(ct) = SystemdContainer::boot("bench") else {
        return;
    };
    ct.copy_in(&workload_bin(), "/usr/local/bin/app");
    for (unit, every) in LOOPS {
        ct.install_unit(
            unit,
            &format!(
                "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/usr/local/bin/app --fail-after 50\n\
                 Restart=always\nRestartSec={every}\n"
            ),
        );
    }
    let mut tracer = Tracer::start(&["--interval", "1s"]);
    // The sentinel as shipped (5 s polls), its alerts in a file.
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let sentinel = Sentinel::start(
        dir.path(),
        &format!(
            "state = \"{}\"\nlisten = \"127.0.0.1:0\"\n[alerts]\njsonl = \"{}\"\n",
            dir.path().join("state").display(),
            alerts.display()
        ),
    );
    let t0 = Instant::now();
    let mut started_unix = BTreeMap::new();
    for (unit, _) in LOOPS {
        started_unix.insert(unit, now_unix());
        ct.run(&["systemctl", "start", unit]);
    }
    let mut detected = BTreeMap::new();
    while detected.len() < LOOPS.len() {
        let (f, at) = tracer.wait_for(Duration::from_secs(120), "detection", |v| {
            v["type"] == "finding"
                && v["change"] == "detected"
                && v["container"] == ct.name.as_str()
        });
        detected.insert(f["unit"].as_str().unwrap().to_string(), (f, at));
    }
    let opened = sentinel_alerts(&alerts, "finding_opened", &ct.name, &sentinel);
    let stopped_at = Instant::now();
    let mut stopped_unix = BTreeMap::new();
    for (unit, _) in LOOPS {
        ct.run(&["systemctl", "stop", unit]);
        stopped_unix.insert(unit, now_unix());
    }
    let mut stopped = BTreeMap::new();
    while stopped.len() < LOOPS.len() {
        let (f, at) = tracer.wait_for(Duration::from_secs(150), "stopped mark", |v| {
            v["type"] == "finding" && v["change"] == "stopped" && v["container"] == ct.name.as_str()
        });
        stopped.insert(f["unit"].as_str().unwrap().to_string(), (f, at));
    }
    let (code, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let closed = sentinel_alerts(&alerts, "finding_closed", &ct.name, &sentinel);
    drop(sentinel);
    let mut md = String::from(
        "`spawnscope trace`:\n\n\
         | loop (RestartSec) | interval p50 | restarts to detection | seconds to detection | \
         seconds from last start to 'stopped' |\n|---|---|---|---|---|\n",
    );
    let mut sentinel_md = String::from(
        "\n`spawnscope sentinel` (default configuration: 5 s polls), on the same loops at the \
         same time:\n\n\
         | loop (RestartSec) | restarts at the opening alert | seconds from the first start \
         to the alert | seconds from the stop to the closing alert |\n|---|---|---|---|\n",
    );
    // Per loop: restarts and seconds to detection, and whether the stopped
    // mark came within max(3 intervals, 60 s).
    let mut met = BTreeMap::new();
    for (unit, every) in LOOPS {
        let (f, _) = &detected[unit];
        let (s, at) = &stopped[unit];
        let to_detect =
            f["last_seen_unix"].as_f64().unwrap() - f["first_seen_unix"].as_f64().unwrap();
        // The stopped mark is printed at a tick; measure from the loop's
        // last start (in the finding) to when the line arrived.
        let arrived_unix = now_unix() - at.elapsed().as_secs_f64();
        let to_stop = arrived_unix - s["last_seen_unix"].as_f64().unwrap();
        let p50 = f["interval_ms"]["p50"].as_f64().unwrap() / 1000.0;
        md.push_str(&format!(
            "| {unit} ({every}) | {p50:.3} s | {} | {to_detect:.2} | {to_stop:.1} |\n",
            f["restarts"],
        ));
        met.insert(
            unit,
            (
                f["restarts"].as_u64().unwrap(),
                to_detect,
                to_stop <= (3.0 * p50).max(60.0),
            ),
        );
        let (o, c) = (&opened[unit], &closed[unit]);
        sentinel_md.push_str(&format!(
            "| {unit} ({every}) | {} | {:.2} | {:.1} |\n",
            o["detail"]["restarts"],
            o["time_unix"].as_f64().unwrap() - started_unix[unit],
            c["time_unix"].as_f64().unwrap() - stopped_unix[unit],
        ));
    }
    md.push_str(&sentinel_md);
    md.push_str(&format!(
        "\n(One run: {:.0} s in all; the loops were stopped {:.0} s in.)\n",
        t0.elapsed().as_secs_f64(),
        (stopped_at - t0).as_secs_f64()
    ));
    let verdict = |ok: bool| if ok { "**Met.**" } else { "**Not met.**" };
    let (r10, _, _) = met["loop-10s.service"];
    let (_, s100, _) = met["loop-100ms.service"];
    md.push_str(&format!(
        "\nTargets (issue 6, for `trace`): a 10 s loop reported by its 3rd restart ({r10}): {} \
         A 100 ms loop within 2 s ({s100:.2} s): {} Each loop marked stopped within max(3 \
         intervals, 60 s) of its last start: {}\n",
        verdict(r10 <= 3),
        verdict(s100 <= 2.0),
        verdict(met.values().all(|m| m.2)),
    ));
    println!("{md}");
    bench_report(&md);
    ct.shutdown();
}

/// The sentinel's `event` alert for each loop, by unit, waiting for all.
fn sentinel_alerts(
    path: &std::path::Path,
    event: &str,
    container: &str,
    sentinel: &Sentinel,
) -> BTreeMap<&'static str, serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found: BTreeMap<&'static str, serde_json::Value> = LOOPS
            .iter()
            .filter_map(|(unit, _)| {
                let key = format!("{unit} @{container}");
                text.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|a| a["event"] == event && a["key"] == key.as_str())
                    .map(|a| (*unit, a))
            })
            .collect();
        if found.len() == LOOPS.len() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {event} alert for every loop within 150 s: {text}\nstderr:\n{}",
            sentinel.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
