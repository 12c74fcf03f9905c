//! `trace` reads its ring buffers on its own schedule (every 100 ms at
//! most), so streamed records do not wake it one by one: a wakeup per
//! record costs the traced task an irq_work, which on this VM made the
//! exec program ten times dearer. 300 paced spawns, each of which the
//! reader would otherwise wake for twice (exec, exit), cost it about one
//! wakeup per 100 ms, and every record still arrives.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    TestCgroup, Tracer, events_of, main_thread_wakeups as wakeups, require_root,
};

const SPAWNS: usize = 300;

#[test]
fn event_records_wait_for_the_reader() {
    if !require_root("trace_wakeups") {
        return;
    }
    let cg = TestCgroup::new("trace-wakeups");
    let tracer = Tracer::start(&["--events", "--no-detect", "--interval", "1h"]);
    let before = wakeups(tracer.pid());
    let t0 = Instant::now();
    for _ in 0..SPAWNS {
        let st = cg.command("/bin/true").status().expect("run /bin/true");
        assert!(st.success());
        // Paced, so that a reader woken per record would be idle (and
        // woken) for each one.
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t0.elapsed();
    let woke = wakeups(tracer.pid()) - before;
    // One wakeup per 100 ms poll, doubled for slack, plus a few for the
    // rest of the loop's work.
    let bound = 2 * (elapsed.as_millis() as u64 / 100) + 20;
    eprintln!(
        "{woke} wakeups in {elapsed:?} for {} records (bound {bound})",
        2 * SPAWNS
    );
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        woke <= bound,
        "{woke} wakeups in {elapsed:?} for {} records",
        2 * SPAWNS
    );
    assert!(
        bound < SPAWNS as u64,
        "the run was too slow to tell: {elapsed:?}"
    );
    for kind in ["exec", "exit"] {
        let n = events_of(&lines, kind)
            .iter()
            .filter(|e| e["cgroup_id"] == cg.id)
            .count();
        assert_eq!(n, SPAWNS, "{kind} records for {}", cg.rel);
    }
}
