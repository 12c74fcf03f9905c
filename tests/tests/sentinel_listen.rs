//! `/metrics` listens on loopback unless the configuration names another
//! address; answers 404 off /metrics. (The test connects through loopback
//! either way.) Once loaded, the sentinel holds no capability at all on
//! this kernel, and still counts.

use std::time::Duration;

use spawnscope_tests::{
    require_root,
    sentinel::{Sentinel, config},
};

/// Local addresses (hex, as /proc/net/tcp shows them) in LISTEN state on
/// `port`.
fn listeners(port: u16) -> Vec<String> {
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, p) = f[1].split_once(':')?;
            (u16::from_str_radix(p, 16).ok()? == port && f[3] == "0A").then(|| addr.to_string())
        })
        .collect()
}

fn status_field(pid: i32, name: &str) -> String {
    task_status_field(&format!("/proc/{pid}/status"), name)
}

fn task_status_field(status: &str, name: &str) -> String {
    std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap()
}

#[test]
fn loopback_by_default_and_elsewhere_only_when_configured() {
    if !require_root("sentinel_listen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The built-in default, not the tests' own: no `listen` key at all.
    let text = config(dir.path(), "").replace("listen = \"127.0.0.1:0\"\n", "");
    let s = Sentinel::start(dir.path(), &text);
    assert_eq!(s.addr.to_string(), "127.0.0.1:9479");
    assert_eq!(listeners(9479), ["0100007F"], "127.0.0.1 only");
    assert_eq!(s.get("/").0, 404);
    assert_eq!(s.get("/metrics/../etc").0, 404);
    // No capability left, and the maps are still read.
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(s.pid(), set), "0000000000000000", "{set}");
    }
    // Capabilities are per thread: the one serving /metrics holds none
    // either.
    for task in std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap() {
        let status = task.unwrap().path().join("status");
        let status = status.to_str().unwrap();
        let name = task_status_field(status, "Name");
        for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
            assert_eq!(
                task_status_field(status, set),
                "0000000000000000",
                "thread {name}: {set}"
            );
        }
    }
    let polls =
        s.wait_metrics(Duration::from_secs(5), "a poll", |_| true)["spawnscope_polls_total"];
    s.wait_metrics(Duration::from_secs(10), "polls without capabilities", |m| {
        m["spawnscope_polls_total"] >= polls + 2.0
    });
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait().0, Some(0));

    let any = config(dir.path(), "").replace("127.0.0.1:0", "0.0.0.0:0");
    let s = Sentinel::start(dir.path(), &any);
    let port = s.addr.port();
    assert_eq!(s.addr.ip().to_string(), "0.0.0.0");
    assert_eq!(
        listeners(port),
        ["00000000"],
        "all addresses, as configured"
    );
    let mut via_loopback = s;
    via_loopback.addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(via_loopback.scrape().contains("spawnscope_polls_total"));
    via_loopback.signal(libc::SIGTERM);
    assert_eq!(via_loopback.wait().0, Some(0));
}
