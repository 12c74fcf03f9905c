//! Against a real systemd: a healthy long-running service is named exactly
//! as systemd names it, with its exact fork/exec counts, and every unit
//! spawnscope names in the container is one that systemd lists.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    Tracer, summary,
    systemd::{SystemdContainer, sleeping},
    unit_rows,
};

#[test]
fn healthy_service_is_named_with_exact_counts() {
    let Some(ct) = SystemdContainer::boot("healthy") else {
        return;
    };
    let tracer = Tracer::start(&["--interval", "500ms"]);
    let by_container = Tracer::start(&[
        "--interval",
        "1h",
        "--by",
        "container",
        "--container",
        &ct.name,
    ]);
    // 50 × fork+exec of /bin/true from dash (whose loop and test are
    // builtins), then the shell execs sleep and stays.
    ct.install_unit(
        "healthy.service",
        "[Service]\nExecStart=/bin/sh -c 'i=0; while [ $i -lt 50 ]; do /bin/true; i=$((i+1)); done; exec sleep infinity'\n",
    );
    ct.run(&["systemctl", "start", "healthy.service"]);
    let props = ct.show(
        "healthy.service",
        &["MainPID", "ControlGroup", "ActiveState"],
    );
    assert_eq!(props["ActiveState"], "active", "{props:?}");
    let proc = ct.guest_path(&format!("/proc/{}", props["MainPID"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sleeping(&proc) {
        assert!(
            Instant::now() < deadline,
            "healthy.service never reached its sleep"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let (code, c_lines, stderr) = by_container.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let c = summary(&c_lines);

    let rows = unit_rows(s, "healthy.service", Some(&ct.name));
    assert_eq!(rows.len(), 1, "one row for the unit: {s}");
    let row = rows[0];
    assert_eq!(row["group"], "healthy.service");
    assert_eq!(row["slice"], "system.slice");
    assert_eq!(row["container"]["runtime"], "nspawn");
    assert_eq!(row["cgroups"].as_array().unwrap().len(), 1, "{row}");
    assert_eq!(
        row["cgroups"][0]["path"],
        ct.host_cgroup(&props["ControlGroup"]).as_str(),
        "the path systemd reports, seen from the host"
    );
    // systemd 252 forks the service process in its own cgroup (init.scope)
    // and moves it before exec, so the unit's forks are the shell's 50.
    let t = &row["total"];
    assert_eq!(t["forks"], 50, "{t}");
    assert_eq!(t["execs"], 1 + 50 + 1, "sh, 50 × true, sleep: {t}");
    assert_eq!(t["exit_clean"], 50, "{t}");
    assert_eq!(t["exits"], 50, "{t}");

    // Every unit named in this container is one systemd knows by that name.
    let known = ct.list_units();
    let mut named = 0;
    for r in s["rows"].as_array().unwrap() {
        if r["container"]["name"] != ct.name.as_str() {
            continue;
        }
        if let Some(unit) = r["unit"].as_str() {
            assert!(
                known.iter().any(|k| k == unit),
                "spawnscope named {unit:?}, which systemctl list-units does not show: {known:?}"
            );
            named += 1;
        }
    }
    assert!(named >= 1);

    // --by container --container NAME: one row, the whole container.
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{c}");
    assert_eq!(rows[0]["group"], ct.name.as_str());
    assert_eq!(rows[0]["container"]["name"], ct.name.as_str());
    assert_eq!(rows[0]["unit"], serde_json::Value::Null);
    assert!(rows[0]["total"]["execs"].as_u64().unwrap() >= 52, "{c}");
    assert_eq!(c["matched"], rows[0]["total"]);
    assert!(
        c["totals"]["execs"].as_u64() > rows[0]["total"]["execs"].as_u64(),
        "totals stay unfiltered (the test's own nsenter calls run on the host)"
    );
    ct.shutdown();
}
