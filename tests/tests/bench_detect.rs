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

use spawnscope_tests::{Tracer, systemd::SystemdContainer, workload_bin};

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
    let t0 = Instant::now();
    for (unit, _) in LOOPS {
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
    let stopped_at = Instant::now();
    for (unit, _) in LOOPS {
        ct.run(&["systemctl", "stop", unit]);
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
    println!();
    println!(
        "loop (RestartSec)   interval p50  restarts to detection  seconds to detection  seconds from last start to 'stopped'"
    );
    for (unit, every) in LOOPS {
        let (f, _) = &detected[unit];
        let (s, at) = &stopped[unit];
        let to_detect =
            f["last_seen_unix"].as_f64().unwrap() - f["first_seen_unix"].as_f64().unwrap();
        // The stopped mark is printed at a tick; measure from the loop's
        // last start (in the finding) to when the line arrived.
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let arrived_unix = now_unix - at.elapsed().as_secs_f64();
        let to_stop = arrived_unix - s["last_seen_unix"].as_f64().unwrap();
        println!(
            "{unit:<19} {:>12.3}s  {:>21}  {:>20.2}  {:>37.1}",
            f["interval_ms"]["p50"].as_f64().unwrap() / 1000.0,
            f["restarts"],
            to_detect,
            to_stop,
        );
        let _ = every;
    }
    println!(
        "(whole run {:.0} s; loops stopped {:.0} s in)",
        t0.elapsed().as_secs_f64(),
        (stopped_at - t0).as_secs_f64()
    );
    ct.shutdown();
}
