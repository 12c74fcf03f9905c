//! Every OOM kill is caught in the kernel (oom:mark_victim) with the
//! victim's pid, comm, RSS and cgroup, and the cgroup is still named after
//! it has been removed. The kill is classified memcg-limited, naming the
//! limiting memory cgroup, and that cgroup's own kill counter is reported. A process leaking 16 MiB/s runs in a test cgroup
//! limited to 64 MiB: with cgroup v2's memory.max where the v2 memory
//! controller is available to the test's cgroup, else in a cgroup v1
//! memory child of the test's own memory cgroup (this machine's layout).

use std::time::{Duration, Instant};

use spawnscope_tests::{MemCgroup, Tracer, require_root, summary, workload_bin};

const LIMIT: u64 = 64 << 20;

#[test]
fn oom_kill_is_caught_with_pid_comm_rss_and_unit() {
    if !require_root("oom_kill") {
        return;
    }
    let Some(mcg) = MemCgroup::new("oom", LIMIT) else {
        return;
    };
    let mut tracer = Tracer::start(&["--interval", "1s", "--mem-interval", "200ms"]);
    let mut c = mcg.command(workload_bin());
    c.args(["--leak-mib-per-s", "16"]);
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
    let rel = mcg.cg.rel.clone();
    let id = mcg.cg.id;
    let mem_rel = mcg.mem_rel.clone();
    // The cgroup's own counter is read by the next sampling pass: keep the
    // cgroup until then.
    let (counted, _) = tracer.wait_for(Duration::from_secs(10), "memcg_oom_kill", |v| {
        v["type"] == "memcg_oom_kill" && v["cgroup"] == mem_rel.as_str()
    });
    assert_eq!(counted["kills"], 1, "{counted}");
    assert_eq!(counted["total"], 1, "{counted}");
    let v1 = mcg.is_v1();
    drop(mcg);
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
    assert_eq!(k["scope"], "memcg", "{k}");
    let lim = &k["limiting_cgroup"];
    assert_eq!(lim["hierarchy"], if v1 { "v1" } else { "v2" }, "{k}");
    assert_eq!(lim["path"], mem_rel.as_str(), "{k}");
    assert_eq!(
        summary(&lines)["memory"]["memcg_oom_kills"][0]["cgroup"],
        mem_rel.as_str()
    );
    // The forecast the last sampling pass made for that cgroup.
    let f = &k["last_forecast"]["cgroup"];
    assert_eq!(f["cgroup"], mem_rel.as_str(), "{k}");
    assert_eq!(f["limit_bytes"], LIMIT, "{k}");
    let growth = f["growth_bytes_per_s"].as_f64().unwrap();
    assert!(
        (8.0..=32.0).contains(&(growth / (1 << 20) as f64)),
        "the leak grows ~16 MiB/s: {k}"
    );
    // The live alert came first, as a JSON line of its own.
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "oom_kill" && l["tgid"] == pid)
    );
    eprintln!("leaker lived {lived:?}; killed at rss {} MiB", rss >> 20);
}

/// The limit is on the parent of the victim's memory cgroup: the probe
/// walks up from the victim and names the parent.
#[test]
fn limit_on_an_ancestor_names_the_ancestor() {
    if !require_root("oom_kill") {
        return;
    }
    let Some(mcg) = MemCgroup::new("oomparent", LIMIT) else {
        return;
    };
    let tracer = Tracer::start(&["--interval", "1s", "--mem-interval", "200ms"]);
    let (mut c, child_rel) = mcg.command_in("leaf", workload_bin());
    let mut child = c.args(["--leak-mib-per-s", "16"]).spawn().unwrap();
    let pid = child.id();
    let st = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "{st}"
    );
    let mem_rel = mcg.mem_rel.clone();
    drop(mcg);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let k = summary(&lines)["oom_kills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tgid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("kill of {pid} not captured: {lines:?}"));
    assert_eq!(k["scope"], "memcg", "{k}");
    assert_eq!(k["limiting_cgroup"]["path"], mem_rel.as_str(), "{k}");
    assert_ne!(k["limiting_cgroup"]["path"], child_rel.as_str());
    assert!(
        k["cgroup"].as_str().unwrap().ends_with("/leaf"),
        "the victim's own cgroup is the child: {k}"
    );
}
