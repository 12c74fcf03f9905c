//! `trace --events`: exit statuses 0, 1, 2, 127 and 255 are reported
//! exactly, each with its exec (file name, argv, unit), and a process that
//! is gone within a millisecond of its exec is reported just as completely.

use spawnscope_tests::{TestCgroup, Tracer, event_for, events_of, require_root, summary};

#[test]
fn exit_statuses_and_short_lived_execs_are_exact() {
    if !require_root("events_exit_status") {
        return;
    }
    // Named like a scope, so its events carry a unit.
    let cg = TestCgroup::named("ev-status", ".scope");
    let unit = spawnscope::unit::parse(cg.rel.as_bytes())
        .unit
        .expect("a .scope cgroup is a unit");
    let tracer = Tracer::start(&["--events", "--interval", "1h"]);
    let failed_sh = Tracer::start(&["--events", "--interval", "1h", "--failed", "--comm", "s?"]);
    let mut by_code = Vec::new();
    for code in [0u8, 1, 2, 127, 255] {
        let script = format!("exit {code}");
        let mut child = cg.command("/bin/sh").args(["-c", &script]).spawn().unwrap();
        let pid = child.id();
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(code as i32));
        by_code.push((code, pid, script));
    }
    let mut quick = Vec::new();
    for i in 0..200 {
        let arg = format!("n{i}");
        let mut child = cg.command("/bin/true").args(["x y", &arg]).spawn().unwrap();
        quick.push((child.id(), arg));
        assert!(child.wait().unwrap().success());
    }
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, failed_lines, stderr) = failed_sh.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");

    // --failed --comm 's?': exactly our four failing shells among our
    // processes, and exits only.
    let ours: Vec<u32> = by_code
        .iter()
        .map(|c| c.1)
        .chain(quick.iter().map(|q| q.0))
        .collect();
    let shown: Vec<&serde_json::Value> = failed_lines
        .iter()
        .filter(|l| {
            l["tgid"]
                .as_u64()
                .is_some_and(|t| ours.contains(&(t as u32)))
        })
        .collect();
    let codes: Vec<u64> = shown.iter().map(|e| e["code"].as_u64().unwrap()).collect();
    assert_eq!(codes, vec![1, 2, 127, 255], "{shown:?}");
    assert!(shown.iter().all(|e| e["type"] == "exit"));
    assert!(
        events_of(&failed_lines, "exec").is_empty(),
        "exit filters hide execs"
    );

    for (code, pid, script) in &by_code {
        let exit = event_for(&lines, "exit", *pid);
        assert_eq!(exit["code"], *code, "{exit}");
        assert!(exit.get("signal").is_none(), "{exit}");
        assert_eq!(exit["cgroup"], cg.rel.as_str());
        let exec = event_for(&lines, "exec", *pid);
        assert_eq!(exec["filename"], "/bin/sh");
        assert_eq!(exec["argv"], serde_json::json!(["/bin/sh", "-c", script]));
        assert_eq!(exec["comm"], "sh");
        assert_eq!(
            exec["start_ns"], exit["start_ns"],
            "one process: {exec} {exit}"
        );
        assert_eq!(exec["ppid"], std::process::id(), "{exec}");
    }

    let mut gaps = Vec::new();
    for (pid, arg) in &quick {
        let exec = event_for(&lines, "exec", *pid);
        let exit = event_for(&lines, "exit", *pid);
        assert_eq!(exec["filename"], "/bin/true");
        assert_eq!(exec["argv"], serde_json::json!(["/bin/true", "x y", arg]));
        assert_eq!(exec["argv_truncated"], false);
        assert_eq!(exec["cgroup"], cg.rel.as_str());
        assert_eq!(exec["cgroup_id"], cg.id);
        assert_eq!(exec["unit"], unit.as_str(), "{exec}");
        assert_eq!(exit["unit"], unit.as_str(), "{exit}");
        assert_eq!(exit["code"], 0);
        gaps.push(exit["ts_ns"].as_u64().unwrap() - exec["ts_ns"].as_u64().unwrap());
    }
    gaps.sort_unstable();
    eprintln!(
        "exec→exit of /bin/true: min {} µs, median {} µs",
        gaps[0] / 1000,
        gaps[gaps.len() / 2] / 1000
    );
    assert!(
        gaps[0] < 1_000_000,
        "no /bin/true was gone within 1 ms of its exec (min {} ns), so the claim is unproven here",
        gaps[0]
    );
    let s = summary(&lines);
    let acc = &s["events"];
    for k in ["exec", "exit"] {
        assert_eq!(acc["dropped"][k], 0, "{acc}");
        assert_eq!(acc["counted"][k], acc["delivered"][k], "{acc}");
    }
    assert!(events_of(&lines, "exec").len() >= 205);
}
