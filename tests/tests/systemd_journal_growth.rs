//! Against a real systemd: a crash-looping unit that logs ~256 KiB per
//! start makes the container's journal grow, and spawnscope puts a figure
//! on it: bytes of journal per restart of that unit. PID 1 and journald of
//! the container are found and watched too, by their host-side cgroups.

use std::time::Duration;

use spawnscope_tests::{Tracer, summary, systemd::SystemdContainer};

#[test]
fn journal_growth_is_given_per_restart_of_the_loop() {
    let Some(ct) = SystemdContainer::boot("journal") else {
        return;
    };
    // 64 lines of 4,096 random base64 characters: unique, so journald
    // cannot deduplicate them; it compresses them to ~3 KiB each.
    ct.install_unit(
        "chatty.service",
        "[Unit]\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=/bin/sh -c 'for i in $(seq 64); do head -c 3072 /dev/urandom \
         | base64 -w0; echo; done; exit 1'\n\
         Restart=always\nRestartSec=1s\n",
    );
    let tracer = Tracer::start(&["--interval", "5s", "--mem-interval", "1s"]);
    ct.run(&["systemctl", "start", "chatty.service"]);
    std::thread::sleep(Duration::from_secs(30));
    let props = ct.show("chatty.service", &["NRestarts"]);
    ct.run(&["systemctl", "stop", "chatty.service"]);
    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&lines);
    let hidden = s["memory"]["forecast"]["hidden"].as_array().unwrap();
    let find = |what: &str| {
        hidden
            .iter()
            .find(|h| h["what"] == what && h["container"] == ct.name.as_str())
            .unwrap_or_else(|| panic!("no {what} of {} in {hidden:?}", ct.name))
    };
    let pid1 = find("pid1");
    assert_eq!(pid1["comm"], "systemd");
    assert_eq!(pid1["cgroup"], ct.host_cgroup("/init.scope").as_str());
    let journald = find("journald");
    assert_eq!(journald["comm"], "systemd-journal");
    assert_eq!(
        journald["cgroup"],
        ct.host_cgroup("/system.slice/systemd-journald.service")
            .as_str()
    );
    let journal = find("journal");
    assert_eq!(journal["pid"], journald["pid"]);
    assert!(
        journal["disk_bytes"].as_u64().unwrap() >= journal["bytes"].as_u64().unwrap(),
        "{journal}"
    );
    let per = &journal["per_restart"];
    assert_eq!(
        per["loops"],
        serde_json::json!(["chatty.service"]),
        "{journal}"
    );
    let bpr = per["bytes_per_restart"].as_f64().unwrap();
    eprintln!(
        "journal: {:.1} KiB per restart (NRestarts={}), growing {:.1} KiB/s, {} restarts/s; \
         journald rss {:.1} MiB growing {:?} B/s; PID 1 growing {:?} B/s",
        bpr / 1024.0,
        props["NRestarts"],
        journal["growth_bytes_per_s"].as_f64().unwrap() / 1024.0,
        per["restarts_per_s"],
        journald["bytes"].as_f64().unwrap() / 1048576.0,
        journald["growth_bytes_per_s"],
        pid1["growth_bytes_per_s"],
    );
    // 64 messages of 4 KiB, compressed to ~3 KiB, plus their entries and
    // systemd's own lines about each restart.
    assert!(
        (128.0 * 1024.0..=768.0 * 1024.0).contains(&bpr),
        "{bpr} bytes of journal per restart: {journal}"
    );
    ct.shutdown();
}
