//! Nothing is dropped silently: with a one-page ring buffer under an exec
//! storm (and the reader paused) records are lost, and for each kind the
//! kernel's count equals the records delivered plus the records counted as
//! dropped, exactly.

use spawnscope_tests::{TestCgroup, Tracer, events_of, require_root, summary, workload_bin};

#[test]
fn counted_equals_delivered_plus_dropped_under_an_exec_storm() {
    if !require_root("events_accounting") {
        return;
    }
    let cg = TestCgroup::new("ev-storm");
    let tracer = Tracer::start(&[
        "--events",
        "--forks",
        "--event-buffer",
        "4096",
        "--interval",
        "200ms",
    ]);
    // A reader that keeps up never lets the buffer fill (this machine drains
    // one exec at a time faster than a workload can spawn them), so the
    // reader is paused for the storm: the buffer then certainly overflows.
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(tracer.pid(), libc::SIGSTOP) };
    let st = cg
        .command(workload_bin())
        .args(["--clean", "3000", "--fork-only", "1000"])
        .status()
        .unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(tracer.pid(), libc::SIGCONT) };
    assert!(st.success());
    // Its ticks are overdue once it runs again: at least one status line
    // comes before the stop.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let acc = &s["events"];
    for k in ["exec", "exit", "fork"] {
        let counted = acc["counted"][k].as_u64().unwrap();
        let delivered = acc["delivered"][k].as_u64().unwrap();
        let dropped = acc["dropped"][k].as_u64().unwrap();
        assert_eq!(counted, delivered + dropped, "{k}: {acc}");
        assert_eq!(
            events_of(&lines, k).len() as u64,
            delivered,
            "{k}: every delivered record was printed (no display filter)"
        );
    }
    assert_eq!(acc["undecodable"], 0);
    let dropped_execs = acc["dropped"]["exec"].as_u64().unwrap();
    assert!(
        dropped_execs > 0,
        "a 4 KiB buffer kept up with 3000 execs? {acc}"
    );
    assert!(acc["counted"]["exec"].as_u64().unwrap() >= 3001);
    // The status lines report the drops as they happen.
    let last_status = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "status")
        .expect("status lines");
    assert!(
        last_status["dropped"]["exec"].as_u64().unwrap() > 0,
        "{last_status}"
    );
    eprintln!("storm: {acc}");
}
