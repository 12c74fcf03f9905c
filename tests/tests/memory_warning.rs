//! The early warning: a process leaking 16 MiB/s into a 256 MiB memory
//! limit (about 16 s from start to kill) is named by a memory warning in
//! the first half of its life, so at least half of it ahead of the OOM
//! killer, and the kill report carries that warning. The system as a
//! whole is not forecast to run out from those few seconds of growth, even
//! with a 6 h horizon. A steady hog that does not grow raises nothing.

use std::time::Duration;

use spawnscope_tests::{MemCgroup, Tracer, require_root, summary, workload_bin};

const MIB: u64 = 1 << 20;

#[test]
fn leak_is_forecast_well_before_the_kill() {
    if !require_root("memory_warning") {
        return;
    }
    let Some(mcg) = MemCgroup::new("memwarn", 256 * MIB) else {
        return;
    };
    // 6 h ahead: at 16 MiB/s any host with more than a few hundred MiB
    // free is forecast to run out within it, but not within twice the
    // leak's few seconds, which is all a forecast may reach.
    let tracer = Tracer::start(&[
        "--interval",
        "1s",
        "--mem-interval",
        "500ms",
        "--mem-warn-before",
        "6h",
    ]);
    let mut c = mcg.command(workload_bin());
    let leak_started = spawnscope::clock::now_unix();
    let st = c.args(["--leak-mib-per-s", "16"]).status().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL)
    );
    let mem_rel = mcg.mem_rel.clone();
    drop(mcg);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let warning = lines
        .iter()
        .find(|l| l["type"] == "memory_warning" && l["cgroup"] == mem_rel.as_str())
        .unwrap_or_else(|| panic!("no warning for {mem_rel}: {lines:?}"));
    let kill = lines
        .iter()
        .find(|l| l["type"] == "oom_kill" && l["comm"] == "spawn-workload")
        .expect("the kill");
    let killed = kill["time_unix"].as_f64().unwrap();
    let lead = killed - warning["time_unix"].as_f64().unwrap();
    // A loaded host slows the leak and the sampling alike; the lead is
    // judged against the leak's own life, as measured here.
    let life = killed - leak_started;
    eprintln!(
        "warning lead time {lead:.1} s of a {life:.1} s life: {}",
        warning["message"].as_str().unwrap()
    );
    assert!(
        lead >= life / 2.0,
        "warned only {lead:.1} s before the kill, {life:.1} s after the leak began"
    );
    assert_eq!(
        kill["last_warning"], *warning,
        "the kill carries the forecast"
    );
    // The live view's forecast ranked the leak first while it grew.
    assert!(
        lines.iter().any(|l| l["type"] == "interval"
            && l["memory"]["top_growth"][0]["cgroup"] == mem_rel.as_str()),
        "no interval ranked {mem_rel} first"
    );
    let system: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "memory_warning" && l["target"] == "system")
        .collect();
    assert!(system.is_empty(), "{system:?}");
    let s = summary(&lines);
    assert!(
        s["memory"]["pass_us_p50"].as_u64().is_some(),
        "{}",
        s["memory"]
    );
    eprintln!("sampling pass: {} µs (median)", s["memory"]["pass_us_p50"]);
}

#[test]
fn steady_hog_raises_no_warning() {
    if !require_root("memory_warning") {
        return;
    }
    let Some(mcg) = MemCgroup::new("memhog", 256 * MIB) else {
        return;
    };
    let mut hog = mcg
        .command(workload_bin())
        .args(["--hold-mib", "128"])
        .spawn()
        .unwrap();
    // Let it take its memory before watching: steady from then on.
    std::thread::sleep(Duration::from_secs(2));
    let tracer = Tracer::start(&["--interval", "1s", "--mem-interval", "500ms"]);
    std::thread::sleep(Duration::from_secs(8));
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let _ = hog.kill();
    let _ = hog.wait();
    let mine: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "memory_warning" && l["cgroup"] == mcg.mem_rel.as_str())
        .collect();
    assert!(mine.is_empty(), "{mine:?}");
    let s = summary(&lines);
    // Watched long enough to forecast (3 samples at least) twice over: 16
    // passes in 8 s at 500 ms, fewer on a loaded host.
    assert!(
        s["memory"]["samples"].as_u64().unwrap() >= 6,
        "{}",
        s["memory"]
    );
}
