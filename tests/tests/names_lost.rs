//! Cgroup names are never lost silently. With the reader paused, 1,500
//! cgroups are created: the 1 MiB ring buffer of cgroup_mkdir records holds
//! about 1,000, and every record that does not fit is counted in
//! `probe.names_lost`. Cgroups whose record was lost are still named by the
//! tree walk while they exist; one already removed stays counted, unnamed.

use spawnscope_tests::{TestCgroup, Tracer, command_in, require_root, row_with_id, summary};
use std::os::unix::fs::MetadataExt;

#[test]
fn lost_mkdir_records_are_counted_and_walked_for() {
    if !require_root("names_lost") {
        return;
    }
    let parent = TestCgroup::new("names-lost");
    let tracer = Tracer::start(&["--by", "cgroup", "--interval", "1h", "--no-detect"]);
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(tracer.pid(), libc::SIGSTOP) };
    let mut kids = Vec::new();
    for i in 0..1500 {
        let p = parent.path.join(format!("c{i:04}"));
        std::fs::create_dir(&p).unwrap();
        kids.push(p);
    }
    // Work in the last children (whose records certainly did not fit).
    let run_in = |dir: &std::path::Path| {
        assert!(command_in(dir, "/bin/true").status().unwrap().success());
    };
    let kept = &kids[1499];
    run_in(kept);
    let gone = &kids[1498];
    run_in(gone);
    let gone_id = std::fs::metadata(gone).unwrap().ino();
    let kept_id = std::fs::metadata(kept).unwrap().ino();
    // rmdir can race the exiting process's release; retry briefly.
    for _ in 0..100 {
        if std::fs::remove_dir(gone).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!gone.exists());
    // SAFETY: as above.
    unsafe { libc::kill(tracer.pid(), libc::SIGCONT) };
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let lost = s["probe"]["names_lost"].as_u64().unwrap();
    // 1 MiB holds 1,000 records of 1,048 bytes (record and header).
    assert!(
        (499..=1500).contains(&lost),
        "expected about 500 lost of 1500: {}",
        s["probe"]
    );
    let kept_row = row_with_id(s, kept_id);
    let kept_rel = format!("{}/c1499", parent.rel);
    assert_eq!(
        kept_row["cgroups"][0]["path"],
        kept_rel.as_str(),
        "named by the walk"
    );
    assert_eq!(kept_row["total"]["execs"], 1);
    let gone_row = row_with_id(s, gone_id);
    assert_eq!(gone_row["cgroups"][0]["path"], serde_json::Value::Null);
    assert_eq!(gone_row["group"], format!("cgroup-id:{gone_id}").as_str());
    assert_eq!(gone_row["total"]["execs"], 1, "counted though unnamed");
    eprintln!("names_lost = {lost}");
}
