//! The static release binary on an old userland: a Debian bullseye
//! container (glibc 2.31, systemd 247), where a build linked against this
//! host's glibc cannot even start. There, `spawnscope trace` counts a
//! known mix in one of the container's units exactly, and the tarball's
//! four install commands, run as INSTALL gives them, bring the sentinel up
//! under bullseye's systemd, sandbox and all, serving /metrics.

use serde_json::Value;
use spawnscope_tests::{
    dist::{self, Arch},
    known_mix, spawnscope_bin,
    systemd::{Suite, SystemdContainer},
};

const TEST: &str = "dist_old_userland";

/// INSTALL's commands for the sentinel, run from the unpacked tarball.
const INSTALL_COMMANDS: [&str; 4] = [
    "sudo install -m 0755 spawnscope /usr/local/bin/spawnscope",
    "sudo install -D -m 0644 sentinel.toml /etc/spawnscope/sentinel.toml",
    "sudo install -m 0644 spawnscope-sentinel.service /etc/systemd/system/",
    "sudo systemctl enable --now spawnscope-sentinel",
];

#[test]
fn bullseye_runs_the_static_binary_and_the_installed_sentinel() {
    let Some(u) = dist::unpack(Arch::X86_64, TEST) else {
        return;
    };
    let Some(ct) = SystemdContainer::boot_suite(
        "bullseye",
        Suite::Bullseye,
        &[
            "--capability=CAP_BPF,CAP_PERFMON",
            "--system-call-filter=bpf perf_event_open",
        ],
    ) else {
        return;
    };
    let libc = ct.run(&["sh", "-c", "ldd --version | sed -n 1p"]);
    assert!(libc.contains(" 2.31"), "bullseye's glibc: {libc}");

    // The control: a build linked against this host's glibc.
    ct.copy_in(&spawnscope_bin(), "/root/spawnscope-glibc");
    let glibc = ct.run(&[
        "sh",
        "-c",
        "/root/spawnscope-glibc --version 2>&1; echo rc=$?",
    ]);
    assert!(
        glibc.contains("GLIBC_2.") && !glibc.contains("rc=0"),
        "the glibc build started on glibc 2.31: {glibc}"
    );

    // A one-off trace with the static binary, inside the container.
    let dir = "/root/spawnscope-release";
    std::fs::create_dir_all(ct.guest_path(dir)).unwrap();
    for f in [
        "spawnscope",
        "sentinel.toml",
        "spawnscope-sentinel.service",
        "INSTALL",
    ] {
        std::fs::copy(u.top.join(f), ct.guest_path(&format!("{dir}/{f}"))).unwrap();
    }
    ct.copy_in(&dist::static_workload(Arch::X86_64), "/root/spawn-workload");
    let (mix, expect) = known_mix(20);
    let script = format!(
        "cd {dir}\n\
         ./spawnscope trace --json --interval 500ms --unit mix.service > /tmp/t.jsonl 2> /tmp/t.err &\n\
         T=$!\n\
         n=0\n\
         while ! grep -q 'spawnscope: tracing' /tmp/t.err && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done\n\
         systemd-run --quiet --wait --unit mix.service /root/spawn-workload {}\n\
         echo \"mix exit $?\" >&2\n\
         kill -INT $T\n\
         wait $T\n\
         echo \"trace exit $?\" >&2\n\
         cat /tmp/t.err >&2\n\
         cat /tmp/t.jsonl",
        mix.join(" ")
    );
    let out = ct
        .exec_cmd(&["bash", "-c", &script])
        .output()
        .expect("run the trace in the container");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mix exit 0"), "{err}");
    assert!(err.contains("trace exit 0"), "{err}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let s = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {err}"));
    let row = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == "mix.service")
        .unwrap_or_else(|| panic!("no row for mix.service: {s}"));
    for (field, want) in expect {
        assert_eq!(row["total"][field], want, "{field}: {row}");
    }
    for stat in ["map_full", "read_failed", "no_layout", "names_lost"] {
        assert_eq!(s["probe"][stat], 0, "probe.{stat}: {s}");
    }

    // The sentinel, installed by INSTALL's four commands; the example
    // configuration is pointed at a port of the kernel's choosing (the
    // container shares the host's network) before the last one.
    let install = std::fs::read_to_string(u.top.join("INSTALL")).unwrap();
    for c in INSTALL_COMMANDS {
        assert!(install.contains(c), "INSTALL no longer says {c:?}");
    }
    let run_in_dir = |c: &str| {
        let c = c.trim_start_matches("sudo ");
        ct.run(&["sh", "-c", &format!("cd {dir} && {c}")])
    };
    for c in &INSTALL_COMMANDS[..3] {
        run_in_dir(c);
    }
    let conf = ct.guest_path("/etc/spawnscope/sentinel.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let text = text
        .replace("listen = \"127.0.0.1:9479\"", "listen = \"127.0.0.1:0\"")
        .replace("interval = \"5s\"", "interval = \"1s\"");
    assert!(text.contains("127.0.0.1:0") && text.contains("\"1s\""));
    std::fs::write(&conf, text).unwrap();
    run_in_dir(INSTALL_COMMANDS[3]);

    let addr = ct.sentinel_serving("spawnscope-sentinel.service");
    let p = ct.show("spawnscope-sentinel.service", &["ActiveState", "NRestarts"]);
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["NRestarts"], "0", "{p:?}");
    ct.run(&["systemctl", "stop", "spawnscope-sentinel.service"]);
    let p = ct.show("spawnscope-sentinel.service", &["Result", "ExecMainStatus"]);
    assert_eq!(p["Result"], "success", "{p:?}");
    eprintln!("bullseye (glibc 2.31, systemd 247): exact counts, and the sentinel on {addr}");
}
