//! A candidate does not keep a loop unnamed. A unit whose commands fail
//! now and then, each a different command (no loop), is drilled into as a
//! candidate, which lasts up to two minutes when nothing loops. A unit that
//! then crash-loops by restarts (a new cgroup each time) opens a finding
//! from its counts, and the candidate's drill-down yields to it: the loop
//! is named (`finding_identified`) while the candidate still runs, and the
//! candidate is drilled into again afterwards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use spawnscope_tests::{
    TestCgroup, child_command, remove_cgroup, require_root,
    sentinel::{Sentinel, config, read_jsonl},
    workload_bin,
};

#[test]
fn a_loop_found_from_counts_is_named_before_a_candidate_is_judged() {
    if !require_root("sentinel_drill_priority") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let slice = TestCgroup::named("drill-prio", ".slice");
    let mut s = Sentinel::start(
        dir.path(),
        &config(
            dir.path(),
            &format!("[alerts]\njsonl = \"{}\"\n", alerts.display()),
        ),
    );
    // The candidate: failing commands in one long-lived cgroup, each with
    // its own argv, so no group of starts ever repeats.
    let (mut c, _) = child_command(&slice.path, "candidate.service", "/bin/sh");
    c.args([
        "-c",
        "i=0; while :; do i=$((i+1)); /bin/sh -c 'exit 2' c$i; sleep 0.3; done",
    ]);
    let mut candidate = c.spawn().unwrap();
    // Another host's candidate may hold the drill-down first; ours comes
    // within its two minutes.
    s.wait_line(
        Duration::from_secs(300),
        "drilling into candidate.service (a candidate loop)",
    );

    // The loop: a unit restarted into a new cgroup every ~300 ms, failing.
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (stop, slice_dir) = (stop.clone(), slice.path.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let (mut c, cg) = child_command(&slice_dir, "flappy.service", workload_bin());
                c.args(["--fail-after", "50"]);
                assert_eq!(c.status().unwrap().code(), Some(1));
                remove_cgroup(&cg);
                runs += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            runs
        })
    };
    let key = "flappy.service";
    let deadline = Instant::now() + Duration::from_secs(90);
    let identified = loop {
        let seen = read_jsonl(&alerts);
        if let Some(a) = seen
            .iter()
            .find(|a| a["event"] == "finding_identified" && a["key"] == key)
        {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{key} not named within 90 s: {seen:?}\nstderr:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    let runs = flapper.join().unwrap();
    assert!(
        candidate.try_wait().unwrap().is_none(),
        "the candidate exited early"
    );
    assert_eq!(
        identified["detail"]["detail"]["executable"],
        workload_bin().to_str().unwrap(),
        "{identified}"
    );
    let log = s.stderr();
    let pos = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
    };
    let drilled = pos("drilling into candidate.service (a candidate loop)");
    let paused = pos("drill-down into candidate.service paused");
    let naming = pos("drilling into flappy.service (to name what loops)");
    assert!(drilled < paused && paused < naming, "{log}");
    assert!(
        !log[..naming].contains("drill-down into candidate.service ended"),
        "the candidate was judged before the loop was named:\n{log}"
    );
    // Once the loop is named, the candidate is drilled into again.
    s.wait_line(
        Duration::from_secs(30),
        "drill-down into flappy.service ended",
    );
    let again = s.wait_line_after(
        Duration::from_secs(30),
        naming,
        "drilling into candidate.service (a candidate loop)",
    );
    eprintln!("named after {runs} restarts; then: {again}");
    let _ = candidate.kill();
    let _ = candidate.wait();
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
