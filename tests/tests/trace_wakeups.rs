//! `trace` reads its ring buffers on its own schedule (every 100 ms at
//! most), so streamed records do not wake it one by one: a wakeup per
//! record costs the traced task an irq_work, which on this VM made the
//! exec program ten times dearer. Paced spawns, each of which the reader
//! would otherwise wake for twice (exec, exit), cost it about one wakeup
//! per 100 ms of the run, and every record still arrives.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    TestCgroup, Tracer, events_of, main_thread_wakeups as wakeups, require_root,
};

const MIN_SPAWNS: usize = 300;
/// Records per allowed wakeup the run must reach before it can tell a
/// reader on a schedule from one woken per record.
const MARGIN: u64 = 3;

/// The wakeups a reader on a 100 ms schedule may take over `elapsed`: one
/// per poll, doubled for slack, plus a few for the rest of its loop.
fn bound(elapsed: Duration) -> u64 {
    2 * (elapsed.as_millis() as u64 / 100) + 20
}

#[test]
fn event_records_wait_for_the_reader() {
    if !require_root("trace_wakeups") {
        return;
    }
    let cg = TestCgroup::new("trace-wakeups");
    let tracer = Tracer::start(&["--events", "--no-detect", "--interval", "1h"]);
    let before = wakeups(tracer.pid());
    let t0 = Instant::now();
    // A loaded host spawns more slowly, and the allowance grows with the
    // run's length, so the run goes on until its records outnumber the
    // allowance by MARGIN, whatever the pace.
    let mut spawns = 0usize;
    while spawns < MIN_SPAWNS || 2 * (spawns as u64) < MARGIN * bound(t0.elapsed()) {
        let st = cg.command("/bin/true").status().expect("run /bin/true");
        assert!(st.success());
        spawns += 1;
        // Paced, so that a reader woken per record would be idle (and
        // woken) for each one.
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "{spawns} spawns in 10 minutes: too few records to tell"
        );
    }
    let elapsed = t0.elapsed();
    let woke = wakeups(tracer.pid()) - before;
    let allowed = bound(elapsed);
    eprintln!(
        "{woke} wakeups in {elapsed:?} for {} records (bound {allowed})",
        2 * spawns
    );
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        woke <= allowed,
        "{woke} wakeups in {elapsed:?} for {} records",
        2 * spawns
    );
    for kind in ["exec", "exit"] {
        let n = events_of(&lines, kind)
            .iter()
            .filter(|e| e["cgroup_id"] == cg.id)
            .count();
        assert_eq!(n, spawns, "{kind} records for {}", cg.rel);
    }
}
