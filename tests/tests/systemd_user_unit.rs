//! Against a real systemd: a unit of a user's own manager
//! (`user@0.service/app.slice/ustay.service`) is named with its user, its
//! user-manager slice, and exact counts. On bookworm (systemd 252) and
//! trixie (systemd 257).

use std::time::{Duration, Instant};

use spawnscope_tests::{
    Tracer, summary,
    systemd::{Suite, SystemdContainer, sleeping},
    unit_rows,
};

#[test]
fn user_manager_unit_is_named_with_its_user_bookworm() {
    user_manager_unit_is_named_with_its_user(Suite::Bookworm);
}

#[test]
fn user_manager_unit_is_named_with_its_user_trixie() {
    user_manager_unit_is_named_with_its_user(Suite::Trixie);
}

fn user_manager_unit_is_named_with_its_user(suite: Suite) {
    let Some(ct) = SystemdContainer::boot_suite(&format!("user-{}", suite.name()), suite, &[])
    else {
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
    // The manager forks in its own init.scope to run its generators. On
    // systemd 252 it also forks the service's process there; 257 spawns
    // that straight into the service's cgroup, so the reload is what
    // puts the manager's own row in the report there.
    ct.user_systemctl(&["daemon-reload"]);
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
    // The user manager starts sh as PID 1 starts a service: on systemd
    // 257 spawned into the unit's cgroup, through systemd-executor.
    let t = &row["total"];
    assert_eq!(t["forks"], 2 + suite.forks_per_start(), "{t}");
    assert_eq!(
        t["execs"],
        1 + 2 + 1 + (suite.execs_per_start() - 1),
        "sh, 2 × true, sleep: {t}"
    );
    assert_eq!(t["exit_clean"], 2, "{t}");

    // The manager itself lives in user@0.service/init.scope; it forked
    // there (above), and that row is the user's init.scope, kept apart
    // from the container's own init.scope.
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
