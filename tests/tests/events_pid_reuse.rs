//! pid reuse: with kernel.pid_max made small, pids come round again within
//! the test; processes are identified by (tgid, start time), so two
//! processes that had the same pid are never merged. The sysctl is restored
//! afterwards, even when the test fails.

use std::collections::HashMap;

use spawnscope_tests::{TestCgroup, Tracer, events_of, require_root};

const PID_MAX: &str = "/proc/sys/kernel/pid_max";

struct RestorePidMax(String);

impl Drop for RestorePidMax {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(PID_MAX, &self.0) {
            eprintln!(
                "warning: could not restore {PID_MAX} to {}: {e}",
                self.0.trim()
            );
        }
    }
}

#[test]
fn reused_pids_stay_separate_processes() {
    if !require_root("events_pid_reuse") {
        return;
    }
    let cg = TestCgroup::new("ev-pid");
    let tracer = Tracer::start(&["--events", "--interval", "1h"]);
    let old = std::fs::read_to_string(PID_MAX).unwrap();
    let guard = RestorePidMax(old);
    // Pids are handed out cyclically; above the new maximum they wrap to
    // 300. About 700 free pids stay for the rest of the host meanwhile.
    std::fs::write(PID_MAX, "1024").unwrap();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut reused = None;
    for i in 0..5000 {
        let mut c = cg
            .command("/bin/true")
            .arg(format!("run{i}"))
            .spawn()
            .unwrap();
        let pid = c.id();
        assert!(c.wait().unwrap().success());
        if let Some(first) = seen.insert(pid, i) {
            reused = Some((pid, first, i));
            break;
        }
    }
    drop(guard);
    let (pid, first, second) = reused.expect("no pid came round in 5000 spawns");
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");

    let execs: Vec<_> = events_of(&lines, "exec")
        .into_iter()
        .filter(|e| e["tgid"] == pid)
        .collect();
    let exits: Vec<_> = events_of(&lines, "exit")
        .into_iter()
        .filter(|e| e["tgid"] == pid)
        .collect();
    assert_eq!(execs.len(), 2, "two processes had pid {pid}: {execs:?}");
    assert_eq!(exits.len(), 2, "{exits:?}");
    assert_ne!(
        execs[0]["start_ns"], execs[1]["start_ns"],
        "same pid, different processes"
    );
    // Each (tgid, start) pairs one exec with one exit, and the argv tells
    // which spawn it was.
    for (exec, run) in execs.iter().zip([first, second]) {
        assert_eq!(exec["argv"][1], format!("run{run}"));
        let matching: Vec<_> = exits
            .iter()
            .filter(|x| x["start_ns"] == exec["start_ns"])
            .collect();
        assert_eq!(matching.len(), 1, "{exec} vs {exits:?}");
        assert!(matching[0]["ts_ns"].as_u64() >= exec["ts_ns"].as_u64());
    }
}
