//! `--probe-log` prints the probe's own diagnostic lines, and without it
//! there are none. Two sentinels, one with the flag and one without, watch
//! the same unit restarting into a new cgroup every ~300 ms. Each finds
//! the loop from its counts and drills into it; the probe of each follows
//! the unit into the cgroup of its next restart (the drill-down
//! bookkeeping that logs). The one with the flag prints that, naming the
//! new cgroup and the slot; the other prints no probe line at all, though
//! its drill-down took the same path (it saw the restart's records).

use std::{
    os::unix::fs::MetadataExt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use spawnscope_tests::{
    TestCgroup, child_command, remove_cgroup, require_root,
    sentinel::{Sentinel, config},
    workload_bin,
};

const UNIT: &str = "flappy-log.service";

#[test]
fn probe_log_shows_a_drill_down_following_a_restart_only_when_asked() {
    if !require_root("probe_log") {
        return;
    }
    let (dir_on, dir_off) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let slice = TestCgroup::named("probe-log", ".slice");
    let mut on = Sentinel::start_with(dir_on.path(), &config(dir_on.path(), ""), &["--probe-log"]);
    let mut off = Sentinel::start(dir_off.path(), &config(dir_off.path(), ""));

    // The unit: a new cgroup at each start, a failed exit each time.
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(Mutex::new(Vec::new()));
    let flapper = {
        let (stop, created, slice_dir) = (stop.clone(), created.clone(), slice.path.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (mut c, cg) = child_command(&slice_dir, UNIT, workload_bin());
                created
                    .lock()
                    .unwrap()
                    .push(std::fs::metadata(&cg).unwrap().ino());
                c.args(["--fail-after", "50"]);
                assert_eq!(c.status().unwrap().code(), Some(1));
                remove_cgroup(&cg);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    // Another candidate on the host (another test's failing commands) may
    // hold a slot meanwhile, and be drilled into too: the line that counts
    // is the one naming one of the unit's cgroups, in whichever slot.
    let ended = format!("drill-down into {UNIT} ended");
    on.wait_line(Duration::from_secs(150), &ended);
    let off_ended = off.wait_line(Duration::from_secs(90), &ended);
    stop.store(true, Ordering::Relaxed);
    flapper.join().unwrap();

    // "<6>spawnscope: probe: drill: cgroup ID joins slot N": the sentinel
    // keeps the syslog priority its other lines carry for the journal.
    let ours = created.lock().unwrap().clone();
    let joins = |l: &str| -> Option<(u64, usize)> {
        let rest = l.strip_prefix("<6>spawnscope: probe: drill: cgroup ")?;
        let (id, slot) = rest.split_once(" joins slot ")?;
        Some((id.parse().ok()?, slot.parse().ok()?))
    };
    let log = on.stderr();
    let line = log
        .lines()
        .find(|l| joins(l).is_some_and(|(id, _)| ours.contains(&id)))
        .unwrap_or_else(|| panic!("no probe line names a cgroup of {UNIT} ({ours:?}):\n{log}"))
        .to_string();
    let (_, slot) = joins(&line).expect("found by it");
    assert!(slot < 2, "one of the probe's two slots: {line:?}");
    assert!(
        off_ended.ends_with("detail gathered") || off_ended.ends_with("loop confirmed"),
        "the sentinel without the flag saw no restart's records: {off_ended:?}\n{}",
        off.stderr()
    );

    for s in [&on, &off] {
        s.signal(libc::SIGTERM);
    }
    let (code, on_err) = on.wait();
    assert_eq!(code, Some(0), "{on_err}");
    let (code, off_err) = off.wait();
    assert_eq!(code, Some(0), "{off_err}");
    let probe_lines: Vec<&str> = off_err
        .lines()
        .filter(|l| l.contains("spawnscope: probe:"))
        .collect();
    assert!(
        probe_lines.is_empty(),
        "logged without --probe-log: {probe_lines:?}"
    );
    eprintln!("with --probe-log: {line}");
}
