//! spawnscope on older kernels than the host's, each in a VM on a pure
//! cgroup2 layout: Debian bookworm's 6.1 and bullseye's 5.10 (the oldest
//! Debian kernel with BTF). Both lack `group_dead` in sched_process_exit
//! (the legacy exit program runs) and have the pre-6.2 `mm_rss_stat`
//! layout (OOM victims' RSS is unknown). On each: exact counts for a known
//! mix of spawns, and a memcg OOM kill named with its victim and limiting
//! cgroup, plus the cgroup's own kill counter; and the sentinel loads,
//! drops its capabilities to what the kernel still needs for map reads,
//! and counts a unit whose cgroup is gone by the time it polls.

use std::time::Duration;

use serde_json::Value;
use spawnscope_tests::{known_mix_threads, require_root, vm};

/// The sentinel beside the trace: it must load (with its cgroup_rmdir
/// program and drill-down code) and, having dropped its capabilities to
/// what this kernel's map reads need, still count a short-lived unit.
const SENTINEL: &str = r#"printf 'interval = "500ms"\nstate = "/tmp/state"\nsave_every = 1\nlisten = "0.0.0.0:0"\n' > /tmp/s.toml
/bin/spawnscope sentinel --config /tmp/s.toml 2> /tmp/sentinel.txt &
S=$!
n=0
while ! grep -q "sentinel started" /tmp/sentinel.txt && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
echo "VM: sentinel capeff $(grep CapEff /proc/$S/status)"
mkdir /sys/fs/cgroup/brief.service
sh -c 'echo $$ > /sys/fs/cgroup/brief.service/cgroup.procs; exec /bin/spawn-workload --clean 5'
rmdir /sys/fs/cgroup/brief.service
sleep 2
kill -TERM $S
wait $S
echo "VM: sentinel exit $?"
sed 's/^/VM: sentinel said /' /tmp/sentinel.txt
echo "VM: sentinel state $(cat /tmp/state)""#;

fn init(mix: &[String]) -> String {
    vm::script(&format!(
        "mkdir /sys/fs/cgroup/counted\n\
         sh -c 'echo $$ > /sys/fs/cgroup/counted/cgroup.procs; exec /bin/spawn-workload {}'\n\
         echo \"VM: mix exit $?\"\n{}\n{SENTINEL}",
        mix.join(" "),
        vm::MEMCG_KILL
    ))
}

fn check(src: &vm::KernelSource, series: &str) {
    let (kernel, release) = vm::kernel(src);
    // No threads: on these kernels the legacy exit program can count the
    // last joined thread as its process's exit when that thread's exit
    // tracepoint runs after the main thread's exit began (documented;
    // common under emulation, rare on hardware, where the host's
    // exact_counts_legacy_exit covers threads).
    let (mix, expect) = known_mix_threads(5, 0);
    let console = vm::boot(
        &kernel,
        &vm::spawnscope_initramfs(&init(&mix)),
        512,
        Duration::from_secs(300),
    );
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
    assert!(k["rss_bytes"].is_null(), "pre-6.2 rss_stat layout: {k}");
    // Both pinned kernels carry the task form of mark_victim (their stable
    // series took it from 6.9), so the victim is read in the kernel.
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
    let kept = if series == "5.10." {
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
    eprintln!(
        "VM {release}: exact counts, a memcg kill named in the kernel, and the sentinel (CapEff {capeff})"
    );
}

#[test]
fn bookworm_6_1() {
    if require_root("vm_old_kernels") && vm::available("vm_old_kernels") {
        check(&vm::KERNEL_6_1, "6.1.");
    }
}

#[test]
fn bullseye_5_10() {
    if require_root("vm_old_kernels") && vm::available("vm_old_kernels") {
        check(&vm::KERNEL_5_10, "5.10.");
    }
}
