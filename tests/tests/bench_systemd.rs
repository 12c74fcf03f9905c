//! Reading systemd's state over D-Bus, timed (not asserted): `cargo xtask
//! bench systemd` runs this ignored test. A booted container gets 500
//! more running services (instances of one template running `sleep
//! infinity`); then the whole reading `spawnscope::systemd` does for one
//! manager (connect from inside the container's PID namespace, list the
//! services, read each one's properties) is timed 10 times in each
//! [`ReadMode`]: every property by two GetAll calls per unit, every
//! property by one Get each, and the default, what a loop needs.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use spawnscope::systemd::{ContainerInit, Manager, ReadMode};
use spawnscope_tests::{bench_report, systemd::SystemdContainer};

const EXTRA: usize = 500;
const RUNS: usize = 10;

fn read_once(init: &ContainerInit, mode: ReadMode) -> (Duration, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t0 = Instant::now();
        let m = Manager::container(init, Path::new("/proc"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let states = m
            .services_with(mode)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (t0.elapsed(), states.len())
    })
}

/// CPU time (user + system) of process `pid` so far, in ms, as the kernel
/// accounts it in clock ticks: summed over all runs, the ticks' coarseness
/// averages out.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised comm: utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1e3 / hz
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

#[test]
#[ignore = "benchmark: cargo xtask bench systemd"]
fn bench_systemd_read() {
    let Some(ct) = SystemdContainer::boot("bench-dbus") else {
        return;
    };
    ct.install_unit(
        "bench@.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    );
    ct.run(&[
        "sh",
        "-c",
        &format!("systemctl start $(seq -f 'bench@%g.service' 1 {EXTRA})"),
    ]);
    let init = ContainerInit {
        pid: ct.leader as u32,
        name: Some(ct.name.clone()),
    };
    let mut md = String::from(
        "| properties by | services read | runs | median ms | min ms | max ms | systemd CPU ms per reading | reader CPU ms per reading |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut verdict = String::new();
    for (mode, label) in [
        (ReadMode::GetAll, "every property, GetAll (2 per unit)"),
        (ReadMode::Get, "every property, Get (13 per unit)"),
        (
            ReadMode::Restarted,
            "what a loop needs (2 Gets per unit, 11 more per restarted unit)",
        ),
    ] {
        // One untimed reading first: systemd builds some replies lazily.
        let (_, n) = read_once(&init, mode);
        assert!(n > EXTRA, "read only {n} services");
        let leader = ct.leader.to_string();
        let (manager0, reader0) = (cpu_ms(&leader), cpu_ms("self"));
        let mut times: Vec<Duration> = (0..RUNS).map(|_| read_once(&init, mode).0).collect();
        let manager = (cpu_ms(&leader) - manager0) / RUNS as f64;
        let reader = (cpu_ms("self") - reader0) / RUNS as f64;
        times.sort();
        let row = format!(
            "| {label} | {n} | {RUNS} | {} | {} | {} | {manager:.0} | {reader:.0} |\n",
            ms(times[RUNS / 2]),
            ms(times[0]),
            ms(times[RUNS - 1])
        );
        eprint!("{row}");
        md.push_str(&row);
        if mode == ReadMode::default() {
            let median = times[RUNS / 2];
            verdict = format!(
                "\nTarget: the whole reading of {n} services, as trace and the sentinel read \
                 them (the last row), ≤ 200 ms, median: **{}** ({} ms).\n",
                if median <= Duration::from_millis(200) {
                    "Met"
                } else {
                    "Not met"
                },
                ms(median)
            );
        }
    }
    md.push_str(&verdict);
    println!("{md}");
    bench_report(&md);
}
