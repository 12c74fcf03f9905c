//! A sentinel whose poll loop is stuck still answers `/metrics`, with
//! `spawnscope_last_poll_timestamp_seconds` standing still: the shipped
//! stale-poll alert can then tell it from a sentinel that is gone, whose
//! scrape fails. Only the loop's thread is stopped, by a ptrace interrupt
//! (the stop SIGSTOP makes, for one thread instead of the whole process);
//! once it is let go, polls resume.

use std::time::Duration;

use spawnscope_tests::{
    require_root,
    sentinel::{Sentinel, config},
};

#[test]
fn a_stuck_poll_loop_leaves_metrics_answering_with_its_last_poll_time() {
    if !require_root("sentinel_stalled_poll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Sentinel::start(dir.path(), &config(dir.path(), ""));
    s.wait_metrics(Duration::from_secs(10), "two polls", |m| {
        m["spawnscope_polls_total"] >= 2.0
    });
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", s.pid()))
        .unwrap()
        .map(|t| {
            std::fs::read_to_string(t.unwrap().path().join("comm"))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert!(threads.iter().any(|t| t == "metrics"), "{threads:?}");

    let stopped = s.stop_poll_loop();
    let polls = s.scrape_value("spawnscope_polls_total");
    let last = s.scrape_value("spawnscope_last_poll_timestamp_seconds");
    // Six poll intervals (500 ms each) pass with the loop stopped.
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200, "{body}");
    let m = spawnscope_tests::sentinel::samples(&body);
    assert_eq!(m["spawnscope_polls_total"], polls, "no poll while stopped");
    assert_eq!(
        m["spawnscope_last_poll_timestamp_seconds"], last,
        "the last poll's time stands still"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - last >= 2.5, "stale by {} s", now - last);

    drop(stopped);
    s.wait_metrics(Duration::from_secs(10), "polls again", |m| {
        m["spawnscope_polls_total"] >= polls + 2.0
    });
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
