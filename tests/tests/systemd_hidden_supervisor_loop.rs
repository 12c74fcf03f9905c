//! A loop hidden inside one unit: its shell keeps restarting a program that
//! fails after 50 ms (`while true; do app; sleep 1; done`). systemd sees one
//! healthy service; spawnscope reports the program, its unit and the shell
//! that supervises it, once the shell has kept at it for a minute.

use std::time::Duration;

use spawnscope_tests::{Tracer, summary, systemd::SystemdContainer, workload_bin};

#[test]
fn supervisor_loop_inside_a_unit_is_reported() {
    let Some(ct) = SystemdContainer::boot("hidden") else {
        return;
    };
    ct.copy_in(&workload_bin(), "/usr/local/bin/app");
    ct.install_unit(
        "hidden.service",
        "[Service]\nExecStart=/bin/sh -c 'while true; do /usr/local/bin/app --fail-after 50; sleep 1; done'\n",
    );
    let mut tracer = Tracer::start(&["--interval", "1s"]);
    ct.run(&["systemctl", "start", "hidden.service"]);
    let (f, _) = tracer.wait_for(Duration::from_secs(150), "hidden loop", |v| {
        v["type"] == "finding" && v["change"] == "detected" && v["unit"] == "hidden.service"
    });
    let active = ct.show("hidden.service", &["ActiveState", "NRestarts"]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        active["ActiveState"], "active",
        "systemd sees nothing wrong"
    );
    assert_eq!(active["NRestarts"], "0");
    assert_eq!(f["executable"], "/usr/local/bin/app");
    assert_eq!(f["parent"]["comm"], "sh");
    assert_eq!(f["dominant"]["code"], 1);
    // Restarted in place: a loop once it has gone on for a minute, and
    // not before.
    let seen_for = f["last_seen_unix"].as_f64().unwrap() - f["first_seen_unix"].as_f64().unwrap();
    assert!(
        (60.0..63.0).contains(&seen_for),
        "seen for {seen_for} s: {f}"
    );
    assert!(f["restarts"].as_u64().unwrap() >= 50, "{f}");
    assert_eq!(f["severity"], "medium");
    let all = summary(&lines)["findings"].as_array().unwrap().clone();
    let ours: Vec<_> = all
        .iter()
        .filter(|x| x["container"] == ct.name.as_str())
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "only the app loops, not sleep or sh: {ours:?}"
    );
    ct.shutdown();
}
