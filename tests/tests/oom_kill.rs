//! Every OOM kill is caught in the kernel (oom:mark_victim) with the
//! victim's pid, comm, RSS and cgroup, and the cgroup is still named after
//! it has been removed. A process leaking 16 MiB/s runs in a test cgroup
//! limited to 64 MiB: with cgroup v2's memory.max where the v2 memory
//! controller is available to the test's cgroup, else in a cgroup v1
//! memory child of the test's own memory cgroup (this machine's layout).

use std::{
    fs,
    os::unix::process::CommandExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use spawnscope_tests::{TestCgroup, Tracer, require_root, skip, summary, workload_bin};

const LIMIT: u64 = 64 << 20;

/// A cgroup v1 memory directory made for this test, removed on drop.
struct V1Memcg(PathBuf);

impl Drop for V1Memcg {
    fn drop(&mut self) {
        for _ in 0..100 {
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.0.display());
    }
}

fn v1_memcg(tag: &str) -> Option<V1Memcg> {
    let mounts =
        spawnscope::cgroupfs::cgroup_mounts(std::path::Path::new("/proc/self/mountinfo")).ok()?;
    let m = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "memory"))?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        ctrl.split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })?;
    let dir = m
        .mount_point
        .join(rel.trim_start_matches('/'))
        .join(format!("spawnscope-test-{tag}-{}", std::process::id()));
    fs::create_dir(&dir).ok()?;
    Some(V1Memcg(dir))
}

#[test]
fn oom_kill_is_caught_with_pid_comm_rss_and_unit() {
    if !require_root("oom_kill") {
        return;
    }
    let cg = TestCgroup::new("oom");
    let v2_max = cg.path.join("memory.max");
    let v1 = if v2_max.exists() {
        fs::write(&v2_max, LIMIT.to_string()).unwrap();
        None
    } else {
        match v1_memcg("oom") {
            Some(v1) => {
                fs::write(v1.0.join("memory.limit_in_bytes"), LIMIT.to_string()).unwrap();
                Some(v1)
            }
            None => {
                skip(
                    "oom_kill: no memory controller (cgroup v2 memory.max or v1 memory) for the test's cgroup",
                );
                return;
            }
        }
    };
    let tracer = Tracer::start(&["--interval", "1s"]);
    let mut c = cg.command(workload_bin());
    c.args(["--leak-mib-per-s", "16"]);
    if let Some(v1) = &v1 {
        let procs = v1.0.join("cgroup.procs");
        // SAFETY: the closure only writes a file, as pre_exec allows.
        unsafe {
            c.pre_exec(move || fs::write(&procs, b"0"));
        }
    }
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let st = child.wait().unwrap();
    let lived = t0.elapsed();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "the leaker was OOM-killed: {st}"
    );
    let rel = cg.rel.clone();
    let id = cg.id;
    drop(cg);
    drop(v1);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let kills: Vec<_> = summary(&lines)["oom_kills"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["tgid"] == pid)
        .cloned()
        .collect();
    assert_eq!(kills.len(), 1, "{lines:?}");
    let k = &kills[0];
    assert_eq!(k["pid"], pid);
    assert_eq!(k["comm"], "spawn-workload");
    assert_eq!(k["cgroup_id"], id);
    assert_eq!(k["cgroup"], rel.as_str(), "named though the cgroup is gone");
    let rss = k["rss_bytes"].as_u64().unwrap();
    assert!(
        (LIMIT / 2..=LIMIT + (8 << 20)).contains(&rss),
        "RSS at the kill {rss} vs limit {LIMIT}"
    );
    assert_eq!(
        k["killer"]["tgid"], pid,
        "the leaker's own allocation set it off"
    );
    // The live alert came first, as a JSON line of its own.
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "oom_kill" && l["tgid"] == pid)
    );
    eprintln!("leaker lived {lived:?}; killed at rss {} MiB", rss >> 20);
}
