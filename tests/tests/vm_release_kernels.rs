//! The release binaries (from the `cargo xtask dist` tarballs) on other
//! kernels than the host's, each in a VM whose initramfs holds no userland
//! but a static busybox, the static binary and a static spawn-workload, on
//! a pure cgroup2 layout: Debian's x86_64 6.12, 6.1 and 5.10 (the oldest
//! Debian kernel with BTF), and, emulated, Debian's arm64 6.1, whose field
//! offsets differ and come from its own BTF. None has `group_dead` in
//! sched_process_exit (the legacy exit program runs); before 6.2 the
//! `mm_rss_stat` layout leaves OOM victims' RSS unknown. On each: exact
//! counts for a known mix of spawns, and a memcg OOM kill named with its
//! victim and limiting cgroup, plus the cgroup's own kill counter; and the
//! sentinel loads, drops its capabilities to what the kernel still needs
//! for map reads, counts a unit whose cgroup is gone by the time it polls,
//! and serves that count on /metrics. With `--probe-log`, whose logging
//! code the verifier must then check rather than prune, `trace` and the
//! sentinel still load.

use std::time::Duration;

use serde_json::Value;
use spawnscope_tests::{
    dist::{self, Arch},
    known_mix_threads, require_root, vm,
};

/// The sentinel beside the trace: it must load (with its cgroup_rmdir
/// program and drill-down code) and, having dropped its capabilities to
/// what this kernel's map reads need, still count a short-lived unit.
const SENTINEL: &str = r#"ifconfig lo 127.0.0.1 up
printf 'interval = "500ms"\nstate = "/tmp/state"\nsave_every = 1\nlisten = "127.0.0.1:0"\n' > /tmp/s.toml
/bin/spawnscope sentinel --config /tmp/s.toml 2> /tmp/sentinel.txt &
S=$!
n=0
while ! grep -q "sentinel started" /tmp/sentinel.txt && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
echo "VM: sentinel capeff $(grep CapEff /proc/$S/status)"
mkdir /sys/fs/cgroup/brief.service
sh -c 'echo $$ > /sys/fs/cgroup/brief.service/cgroup.procs; exec /bin/spawn-workload --clean 5'
rmdir /sys/fs/cgroup/brief.service
sleep 2
URL=$(sed -n 's/.*metrics on \(http:[^ ,]*\).*/\1/p' /tmp/sentinel.txt)
wget -q -O /tmp/metrics "$URL"
echo "VM: metrics exit $?"
echo "VM: metrics execs $(grep '^spawnscope_spawns_total{unit="brief.service",kind="exec"}' /tmp/metrics)"
kill -TERM $S
wait $S
echo "VM: sentinel exit $?"
sed 's/^/VM: sentinel said /' /tmp/sentinel.txt
echo "VM: sentinel state $(cat /tmp/state)"
/bin/spawnscope trace --probe-log --for 1s > /dev/null 2> /tmp/trace-log.txt
echo "VM: probe-log trace exit $?"
sed 's/^/VM: probe-log trace said /' /tmp/trace-log.txt
/bin/spawnscope sentinel --config /tmp/s.toml --probe-log 2> /tmp/sentinel-log.txt &
S=$!
n=0
while ! grep -q "sentinel started" /tmp/sentinel-log.txt && [ $n -lt 600 ] && kill -0 $S; do sleep 0.1; n=$((n+1)); done
kill -TERM $S
wait $S
echo "VM: probe-log sentinel exit $?"
sed 's/^/VM: probe-log sentinel said /' /tmp/sentinel-log.txt"#;

fn init(mix: &[String]) -> String {
    vm::script(&format!(
        "mkdir /sys/fs/cgroup/counted\n\
         sh -c 'echo $$ > /sys/fs/cgroup/counted/cgroup.procs; exec /bin/spawn-workload {}'\n\
         echo \"VM: mix exit $?\"\n{}\n{SENTINEL}",
        mix.join(" "),
        vm::MEMCG_KILL
    ))
}

/// What differs between the kernels of the matrix.
struct Expect {
    series: &'static str,
    /// 6.2 reworked `mm_rss_stat`; before it, a victim's RSS is unknown.
    rss_known: bool,
    /// Before 5.19 map reads need CAP_BPF, so the sentinel keeps it.
    keeps_cap_bpf: bool,
}

fn check(arch: Arch, src: &vm::KernelSource, want: Expect) {
    let series = want.series;
    let Some(release_dir) = dist::unpack(arch, "vm_release_kernels") else {
        return;
    };
    let (kernel, release) = vm::kernel(src);
    let busybox = match arch {
        Arch::X86_64 => vm::busybox_host(),
        Arch::Aarch64 => vm::busybox_arm64(),
    };
    // No threads: on these kernels the legacy exit program can count the
    // last joined thread as its process's exit when that thread's exit
    // tracepoint runs after the main thread's exit began (documented;
    // common under emulation, rare on hardware, where the host's
    // exact_counts_legacy_exit covers threads).
    let (mix, expect) = known_mix_threads(5, 0);
    let initramfs = vm::static_initramfs(
        &busybox,
        &release_dir.bin(),
        &dist::static_workload(arch),
        &init(&mix),
    );
    let console = match arch {
        Arch::X86_64 => vm::boot(&kernel, &initramfs, 512, Duration::from_secs(300)),
        Arch::Aarch64 => vm::boot_arm64(&kernel, &initramfs, 512, Duration::from_secs(600)),
    };
    assert!(
        vm::said(&console, "kernel").starts_with(series),
        "{release}: {console}"
    );
    assert_eq!(vm::said(&console, "spawnscope exit"), "0", "{console}");
    assert_eq!(vm::said(&console, "mix exit"), "0", "{console}");
    assert_eq!(vm::said(&console, "memcg exit"), "137", "{console}");
    let lines: Vec<Value> = vm::section(&console)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let s = lines.last().unwrap();
    assert_eq!(s["type"], "summary", "{console}");
    assert_eq!(s["exit_program"], "legacy", "no group_dead before 6.16");
    let row = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cgroups"][0]["path"] == "/counted")
        .unwrap_or_else(|| panic!("no row for /counted: {s}"));
    for (field, want) in expect {
        assert_eq!(row["total"][field], want, "{release}: {field}: {row}");
    }
    for stat in ["map_full", "read_failed", "no_layout", "names_lost"] {
        assert_eq!(s["probe"][stat], 0, "{release}: probe.{stat}: {s}");
    }

    let pid: u32 = vm::said(&console, "memcg pid").parse().unwrap();
    let k = lines
        .iter()
        .find(|l| l["type"] == "oom_kill" && l["pid"] == pid)
        .unwrap_or_else(|| panic!("no kill of {pid}:\n{console}"));
    assert_eq!(k["comm"], "spawn-workload", "{k}");
    assert_eq!(k["cgroup"], "/limited", "{k}");
    if want.rss_known {
        assert!(k["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{k}");
    } else {
        assert!(k["rss_bytes"].is_null(), "pre-6.2 rss_stat layout: {k}");
    }
    // Every kernel of the matrix carries the task form of mark_victim (the
    // older stable series took it from 6.9), so the victim is read in the
    // kernel.
    assert!(
        !console.contains("names the victim by pid only"),
        "{release}: {console}"
    );
    assert_eq!(k["victim_from"], "kernel", "{k}");
    assert_eq!(k["scope"], "memcg", "{k}");
    assert_eq!(k["limiting_cgroup"]["path"], "/limited", "{k}");
    let counted = lines
        .iter()
        .find(|l| l["type"] == "memcg_oom_kill" && l["cgroup"] == "/limited")
        .unwrap_or_else(|| panic!("no memcg_oom_kill for /limited:\n{console}"));
    assert_eq!(counted["kills"], 1, "{counted}");

    // The sentinel.
    assert_eq!(vm::said(&console, "sentinel exit"), "0", "{console}");
    let capeff = vm::said(&console, "sentinel capeff");
    let kept = if want.keeps_cap_bpf {
        "0000008000000000" // CAP_BPF: map reads need it before 5.19
    } else {
        "0000000000000000"
    };
    assert!(capeff.ends_with(kept), "{release}: {capeff}");
    let state: Value = serde_json::from_str(&vm::said(&console, "sentinel state"))
        .unwrap_or_else(|e| panic!("{release}: state ({e}):\n{console}"));
    let u = &state["units"]["brief.service"];
    // The workload's own exec and 5 children, each exec'd and exited
    // clean, its 5 forks; all read after the cgroup was removed.
    assert_eq!(
        (&u["execs"], &u["forks"], &u["exit_clean"]),
        (&Value::from(6), &Value::from(5), &Value::from(6)),
        "{release}: {state}"
    );
    assert_eq!(vm::said(&console, "metrics exit"), "0", "{console}");
    assert_eq!(
        vm::said(&console, "metrics execs"),
        "spawnscope_spawns_total{unit=\"brief.service\",kind=\"exec\"} 6",
        "{release}: /metrics:\n{console}"
    );
    // The programs with their logging code kept pass this kernel's verifier.
    for what in ["probe-log trace exit", "probe-log sentinel exit"] {
        assert_eq!(
            vm::said(&console, what),
            "0",
            "{release}: {what}:\n{console}"
        );
    }
    eprintln!(
        "VM {} {release}: release binary, no userland: exact counts, a memcg kill named in the \
         kernel, the sentinel (CapEff {capeff}) serving /metrics; both load with --probe-log",
        arch.name()
    );
}

const TEST: &str = "vm_release_kernels";

#[test]
fn x86_64_6_12() {
    if require_root(TEST) && vm::available(TEST) {
        let want = Expect {
            series: "6.12.",
            rss_known: true,
            keeps_cap_bpf: false,
        };
        check(Arch::X86_64, &vm::KERNEL_6_12, want);
    }
}

#[test]
fn x86_64_6_1() {
    if require_root(TEST) && vm::available(TEST) {
        let want = Expect {
            series: "6.1.",
            rss_known: false,
            keeps_cap_bpf: false,
        };
        check(Arch::X86_64, &vm::KERNEL_6_1, want);
    }
}

#[test]
fn x86_64_5_10() {
    if require_root(TEST) && vm::available(TEST) {
        let want = Expect {
            series: "5.10.",
            rss_known: false,
            keeps_cap_bpf: true,
        };
        check(Arch::X86_64, &vm::KERNEL_5_10, want);
    }
}

#[test]
fn aarch64_6_1() {
    if require_root(TEST) && vm::available_arm64(TEST) {
        let want = Expect {
            series: "6.1.",
            rss_known: false,
            keeps_cap_bpf: false,
        };
        check(Arch::Aarch64, &vm::KERNEL_ARM64_6_1, want);
    }
}
