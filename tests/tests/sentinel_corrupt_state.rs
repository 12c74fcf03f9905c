//! A corrupt state file never keeps the sentinel from starting: it is
//! moved aside with a warning, counting starts fresh, and the next save
//! writes a good state in its place.

use std::time::Duration;

use spawnscope_tests::{
    require_root,
    sentinel::{Sentinel, config},
};

#[test]
fn corrupt_state_is_moved_aside_and_counting_starts_fresh() {
    if !require_root("sentinel_corrupt_state") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let garbage = b"{\"version\":1,\"units\":{\"x\"\x00\xff truncated";
    std::fs::write(&state, garbage).unwrap();

    let mut s = Sentinel::start(dir.path(), &config(dir.path(), ""));
    let warn = s.wait_line(Duration::from_secs(5), "unusable");
    assert!(
        warn.starts_with(&format!(
            "<4>spawnscope: state {} unusable (not valid JSON",
            state.display()
        )),
        "{warn}"
    );
    assert!(warn.ends_with("and counting from now"), "{warn}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "kept as it was");
    assert!(warn.contains(&aside[0].display().to_string()), "{warn}");

    // Running: it serves, and the first save replaces the bad file.
    s.wait_metrics(Duration::from_secs(10), "a saved state", |m| {
        m.get("spawnscope_state_saves_total{result=\"ok\"}")
            .is_some_and(|n| *n >= 1.0)
    });
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
