//! Against a real systemd: a unit of a user's own manager
//! (`user@0.service/app.slice/ustay.service`) is named with its user, its
//! user-manager slice, and exact counts.

use std::time::{Duration, Instant};

use spawnscope_tests::{
    Tracer, summary,
    systemd::{SystemdContainer, sleeping},
    unit_rows,
};

#[test]
fn user_manager_unit_is_named_with_its_user() {
    let Some(ct) = SystemdContainer::boot("user") else {
        return;
    };
    ct.start_user_manager();
    let unit_file = ct.guest_path("/etc/systemd/user/ustay.service");
    std::fs::write(
        &unit_file,
        "[Service]\nExecStart=/bin/sh -c '/bin/true; /bin/true; exec sleep infinity'\n",
    )
    .unwrap();
    ct.user_systemctl(&["daemon-reload"]);
    let tracer = Tracer::start(&["--interval", "500ms"]);
    ct.user_systemctl(&["start", "ustay.service"]);
    let pid = ct.user_systemctl(&["show", "-p", "MainPID", "--value", "ustay.service"]);
    let proc = ct.guest_path(&format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sleeping(&proc) {
        assert!(
            Instant::now() < deadline,
            "ustay.service never reached its sleep"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);

    let listed = ct.user_systemctl(&["list-units", "--all", "--plain", "--no-legend", "--full"]);
    assert!(
        listed.lines().any(|l| l.starts_with("ustay.service ")),
        "{listed}"
    );
    let rows = unit_rows(s, "ustay.service", Some(&ct.name));
    assert_eq!(rows.len(), 1, "{s}");
    let row = rows[0];
    assert_eq!(row["user"], 0);
    assert_eq!(row["user_manager"], true);
    let slice = ct.user_systemctl(&["show", "-p", "Slice", "--value", "ustay.service"]);
    assert_eq!(row["slice"], slice.trim());
    assert_eq!(row["slice"], "app.slice");
    assert_eq!(
        row["cgroups"][0]["path"],
        format!(
            "{}/payload/user.slice/user-0.slice/user@0.service/app.slice/ustay.service",
            ct.cgroup.rel
        )
        .as_str()
    );
    let t = &row["total"];
    assert_eq!(t["forks"], 2, "{t}");
    assert_eq!(t["execs"], 1 + 2 + 1, "sh, 2 × true, sleep: {t}");
    assert_eq!(t["exit_clean"], 2, "{t}");

    // The manager itself lives in user@0.service/init.scope; it forked the
    // service's process there before moving it, and that row is the user's
    // init.scope, kept apart from the container's own init.scope.
    let mgr: Vec<_> = unit_rows(s, "init.scope", Some(&ct.name))
        .into_iter()
        .filter(|r| r["user_manager"] == true)
        .collect();
    assert_eq!(mgr.len(), 1, "{s}");
    assert_eq!(mgr[0]["user"], 0);
    // The slice as the user manager itself sees it (its own root slice).
    let slice = ct.user_systemctl(&["show", "-p", "Slice", "--value", "init.scope"]);
    assert_eq!(mgr[0]["slice"], slice.trim(), "{}", mgr[0]);
    assert!(
        mgr[0]["total"]["forks"].as_u64().unwrap() >= 1,
        "{}",
        mgr[0]
    );
    ct.shutdown();
}
