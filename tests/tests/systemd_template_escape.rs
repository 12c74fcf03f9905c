//! Against a real systemd: a template instance whose name systemd escapes
//! (`esc-demo@a\x2db\x20c.service` in `system-esc\x2ddemo.slice`) is named
//! exactly as systemd lists it, with the instance unescaped. On bookworm
//! (systemd 252) and trixie (systemd 257, which starts each service through
//! systemd-executor).

use spawnscope_tests::{
    Tracer, summary,
    systemd::{Suite, SystemdContainer},
    unit_rows,
};

#[test]
fn escaped_template_instance_is_named_and_unescaped_bookworm() {
    escaped_template_instance_is_named_and_unescaped(Suite::Bookworm);
}

#[test]
fn escaped_template_instance_is_named_and_unescaped_trixie() {
    escaped_template_instance_is_named_and_unescaped(Suite::Trixie);
}

fn escaped_template_instance_is_named_and_unescaped(suite: Suite) {
    let Some(ct) = SystemdContainer::boot_suite(&format!("escape-{}", suite.name()), suite, &[])
    else {
        return;
    };
    ct.install_unit(
        "esc-demo@.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep infinity'\n",
    );
    let instance = ct.run(&["systemd-escape", "a-b c"]).trim().to_string();
    assert_eq!(instance, "a\\x2db\\x20c");
    let unit = format!("esc-demo@{instance}.service");
    let tracer = Tracer::start(&["--interval", "500ms"]);
    ct.run(&["systemctl", "start", &unit]);
    ct.wait_main_sleeping(&unit);
    let props = ct.show(&unit, &["ControlGroup", "Slice"]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);

    assert!(ct.list_units().contains(&unit), "systemd lists {unit}");
    let rows = unit_rows(s, &unit, Some(&ct.name));
    assert_eq!(rows.len(), 1, "{unit} not named: {s}");
    let row = rows[0];
    assert_eq!(row["template"], "esc-demo@.service");
    assert_eq!(row["instance"], "a-b c");
    assert_eq!(row["slice"], props["Slice"].as_str());
    assert_eq!(row["slice"], "system-esc\\x2ddemo.slice");
    assert_eq!(
        row["cgroups"][0]["path"],
        ct.host_cgroup(&props["ControlGroup"]).as_str()
    );
    // On systemd 255 and later, systemd-executor's exec comes first.
    let executor = suite.execs_per_start() - 1;
    assert_eq!(row["total"]["execs"], 2 + executor, "sh, then sleep: {row}");

    // --unit takes systemctl's globs, backslashes literal.
    let tracer = Tracer::start(&["--interval", "1h", "--unit", "esc-demo@*"]);
    ct.run(&["systemctl", "restart", &unit]);
    ct.wait_main_sleeping(&unit);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let units: Vec<&str> = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, vec![unit.as_str()], "only the matching unit: {s}");
    assert_eq!(s["matched"]["execs"], 2 + executor);
    ct.shutdown();
}
