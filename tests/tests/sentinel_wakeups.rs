//! The sentinel wakes on its poll interval, not per event: 100 short-lived
//! units (a cgroup created, a process run in it, the cgroup removed: 200
//! ring records) cost its main thread one wakeup per poll that falls in
//! the burst and one or two for a half-full ring, not one per record,
//! while every one of them is still named and counted exactly at the next
//! poll.

use std::time::Duration;

use spawnscope_tests::{
    TestCgroup, main_thread_wakeups as wakeups, require_root,
    sentinel::{Sentinel, config, unit_value},
};

const UNITS: usize = 100;

#[test]
fn cgroup_records_wait_for_the_poll() {
    if !require_root("sentinel_wakeups") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let slice = TestCgroup::named("wakeups", ".slice");
    // Polls 4 s apart, state saved rarely (an fsync is a sleep too).
    let text = config(dir.path(), "top_units = 1000\n")
        .replace("interval = \"500ms\"", "interval = \"4s\"")
        .replace("save_every = 1", "save_every = 100");
    let s = Sentinel::start(dir.path(), &text);
    // Right after a poll, so that the burst falls between two.
    let polls =
        s.wait_metrics(Duration::from_secs(10), "a poll", |_| true)["spawnscope_polls_total"];
    s.wait_metrics(Duration::from_secs(10), "the next poll", |m| {
        m["spawnscope_polls_total"] > polls
    });
    let polls_before = s.scrape_value("spawnscope_polls_total");
    let before = wakeups(s.pid());
    for i in 0..UNITS {
        slice.run_transient(&format!("brief-{i}.service"));
    }
    let woke = wakeups(s.pid()) - before;
    let polls = s.scrape_value("spawnscope_polls_total") - polls_before;
    // 200 records; a wakeup each would be 200. What the loop may wake for:
    // each poll that fell inside the burst (on a loaded host the burst
    // takes longer and spans more of them; one more for a poll that had
    // begun before the first count was read), a half-full ring (about 120
    // records: at most 2 for 200), and a couple of sleeps of the loop's
    // own (a state save, a lock the metrics thread held).
    let allowed = polls as u64 + 1 + 2 + 2;
    eprintln!(
        "{woke} wakeups for {} ring records over {polls} poll(s) (allowed {allowed})",
        2 * UNITS
    );
    assert!(
        woke <= allowed,
        "{woke} wakeups for {} ring records over {polls} poll(s)",
        2 * UNITS
    );
    let m = s.wait_metrics(Duration::from_secs(15), "every unit counted", |m| {
        (0..UNITS).all(|i| {
            unit_value(
                m,
                "spawnscope_spawns_total",
                &format!("brief-{i}.service"),
                "kind=\"exec\"",
            ) == 1.0
        })
    });
    assert_eq!(m["spawnscope_probe_errors_total{kind=\"names_lost\"}"], 0.0);
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
