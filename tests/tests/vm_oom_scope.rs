//! Real OOM kills of both kinds, in a VM running another kernel (Debian's
//! 6.12) on a pure cgroup2 layout with the memory controller: a process
//! leaking into a 64 MiB `memory.max` is a "memcg" kill naming that
//! cgroup (with its own `memory.events` oom_kill counter reported), and a
//! process that runs the whole VM out of memory is a "global" kill. The
//! host cannot run itself out of memory politely; the VM can.

use std::time::Duration;

use serde_json::Value;
use spawnscope_tests::{require_root, vm};

/// After the memcg kill, a process that holds most of the VM's memory with
/// oom_score_adj 1000 runs the whole VM out of memory.
const GLOBAL_KILL: &str = r#"mkdir /sys/fs/cgroup/victim
sh -c 'echo $$ > /sys/fs/cgroup/victim/cgroup.procs; echo 1000 > /proc/self/oom_score_adj; exec /bin/spawn-workload --leak-mib-per-s 400' &
G=$!
echo "VM: global pid $G"
wait $G
echo "VM: global exit $?"
sleep 1"#;

#[test]
fn memcg_and_global_kills_are_told_apart_on_another_kernel() {
    if !require_root("vm_oom_scope") || !vm::available("vm_oom_scope") {
        return;
    }
    let (kernel, release) = vm::kernel(&vm::KERNEL_6_12);
    let console = vm::boot(
        &kernel,
        &vm::spawnscope_initramfs(&vm::script(&format!("{}\n{GLOBAL_KILL}", vm::MEMCG_KILL))),
        512,
        Duration::from_secs(300),
    );
    assert!(
        vm::said(&console, "kernel").starts_with("6.12"),
        "{release}: {console}"
    );
    assert_eq!(vm::said(&console, "spawnscope exit"), "0", "{console}");
    // Both were SIGKILLed (128 + 9).
    assert_eq!(vm::said(&console, "memcg exit"), "137", "{console}");
    assert_eq!(vm::said(&console, "global exit"), "137", "{console}");
    let lines: Vec<Value> = vm::section(&console)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let kill = |pid: &str| {
        let pid: u32 = pid.parse().unwrap();
        lines
            .iter()
            .find(|l| l["type"] == "oom_kill" && l["pid"] == pid)
            .unwrap_or_else(|| panic!("no kill of {pid}:\n{console}"))
            .clone()
    };
    let m = kill(&vm::said(&console, "memcg pid"));
    assert_eq!(m["comm"], "spawn-workload");
    assert_eq!(m["cgroup"], "/limited");
    assert_eq!(m["victim_from"], "kernel");
    assert_eq!(m["scope"], "memcg", "{m}");
    assert_eq!(m["limiting_cgroup"]["hierarchy"], "v2", "{m}");
    assert_eq!(m["limiting_cgroup"]["path"], "/limited", "{m}");
    assert_eq!(m["last_forecast"]["cgroup"]["cgroup"], "/limited", "{m}");
    let rss = m["rss_bytes"].as_u64().unwrap() >> 20;
    assert!((32..=72).contains(&rss), "{rss} MiB at a 64 MiB limit: {m}");
    let counted = lines
        .iter()
        .find(|l| l["type"] == "memcg_oom_kill" && l["cgroup"] == "/limited")
        .unwrap_or_else(|| panic!("no memcg_oom_kill for /limited:\n{console}"));
    assert_eq!(counted["kills"], 1, "{counted}");

    let g = kill(&vm::said(&console, "global pid"));
    assert_eq!(g["cgroup"], "/victim");
    assert_eq!(g["scope"], "global", "{g}");
    assert!(g["limiting_cgroup"].is_null(), "{g}");
    let rss = g["rss_bytes"].as_u64().unwrap() >> 20;
    assert!(rss >= 200, "it held most of the 512 MiB VM: {rss} MiB: {g}");
    eprintln!(
        "VM {release}: memcg kill at {} MiB, global kill at {rss} MiB",
        m["rss_bytes"].as_u64().unwrap() >> 20
    );
}
