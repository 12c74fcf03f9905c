//! On a host with only cgroup v1 mounted there is no cgroup2 tree to name
//! ids from. spawnscope still counts, says plainly what it cannot
//! attribute, and invents no unit names: the test's own cgroup, made before
//! the trace, stays a bare id, and a cgroup is named only by the kernel's
//! record of its creation (here, those other tests make meanwhile).

use spawnscope_tests::{Tracer, own_cgroup, require_root, row_with_id, spawn_true, summary};

#[test]
fn v1_only_host_counts_without_inventing_names() {
    if !require_root("v1_only_host") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mountinfo = dir.path().join("mountinfo");
    // This machine's own v1 mounts, without its cgroup2 line.
    std::fs::write(
        &mountinfo,
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
         35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
         40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n",
    )
    .unwrap();
    let tracer = Tracer::start(&[
        "--interval",
        "1h",
        "--mountinfo",
        mountinfo.to_str().unwrap(),
    ]);
    spawn_true(10);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let warning = "no cgroup2 hierarchy is mounted (cgroup v1 only): the kernel files every \
                   task under the (unused) cgroup2 root, so counts cannot be split by unit, \
                   slice or container; the totals are exact, the per-unit attribution is not \
                   available";
    assert!(
        stderr.contains(&format!("spawnscope: warning: {warning}")),
        "{stderr}"
    );
    let s = summary(&lines);
    assert_eq!(s["attribution_warning"], warning);
    assert!(s["totals"]["execs"].as_u64().unwrap() >= 10, "{s}");
    // The test's own cgroup, in this host's real cgroup2 tree.
    let (_, own_id) = own_cgroup();
    let mine = row_with_id(s, own_id);
    assert_eq!(mine["group"], format!("cgroup-id:{own_id}"), "{mine}");
    assert_eq!(mine["unit"], serde_json::Value::Null, "{mine}");
    assert_eq!(mine["container"], serde_json::Value::Null, "{mine}");
    assert_eq!(
        mine["cgroups"][0]["path"],
        serde_json::Value::Null,
        "{mine}"
    );
    assert!(mine["total"]["execs"].as_u64().unwrap() >= 10, "{mine}");
    // Any other row is a bare id too, or has the path the kernel gave
    // when it made the cgroup: never a name without it.
    for row in s["rows"].as_array().unwrap() {
        let bare = row["group"].as_str().unwrap().starts_with("cgroup-id:");
        let path = &row["cgroups"][0]["path"];
        if bare {
            assert_eq!(row["unit"], serde_json::Value::Null, "{row}");
            assert_eq!(*path, serde_json::Value::Null, "{row}");
        } else {
            assert!(path.is_string(), "named without a path: {row}");
        }
    }
}
