//! `cargo xtask bench sentinel`: the resident sentinel's footprint. Its
//! own CPU time (every thread's, from /proc/PID/task/*/schedstat, in ns)
//! and resident set while the machine is idle and under a paced 1,000
//! spawns/s, the BPF programs' in-kernel time at that rate (charged to the
//! spawning tasks, not to the sentinel), and its memory while 10,000
//! distinct transient units come and go.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    bench::{
        BpfStats, Section, await_stderr, cgroup2_slice, cpu_ns, join_cgroup, median, minmax,
        require_root, sentinel_scratch,
    },
    util::Fail,
};

const WINDOWS: usize = 3;
const WINDOW: Duration = Duration::from_secs(10);
const SPAWN_RATE: f64 = 1000.0;
const TRANSIENT_UNITS: usize = 10_000;

struct Sentinel {
    child: Child,
    addr: String,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Sentinel {
    /// Starts with no state, with `config` from [`sentinel_scratch`].
    fn start(bin: &Path, dir: &Path, config: &Path, extra: &[&str]) -> Result<Self, Fail> {
        let _ = std::fs::remove_file(dir.join("state"));
        let mut child = Command::new(bin)
            .arg("sentinel")
            .arg("--config")
            .arg(config)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Fail(format!("cannot start {}: {e}", bin.display())))?;
        let line = await_stderr(&mut child, "metrics on http://", "the sentinel")?;
        let addr = line
            .split("metrics on http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        let s = Self { child, addr };
        // The endpoint answers before the first poll has rendered anything;
        // every figure below is read from a rendered exposition.
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.metric("spawnscope_polls_total").is_err() {
            if Instant::now() > deadline {
                return s.metric("spawnscope_polls_total").map(|_| s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(s)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu_ns(&self) -> u64 {
        cpu_ns(self.pid())
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// The sum of every sample of `name` (all its label sets; or exactly
    /// the one named, when `name` carries its labels). A metric the
    /// exposition lacks is an error, never a zero: a renamed metric must
    /// not read as "nothing happened".
    fn metric(&self, name: &str) -> Result<f64, Fail> {
        let mut c = TcpStream::connect(&self.addr).map_err(|e| Fail(format!("scrape: {e}")))?;
        write!(c, "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            .map_err(|e| Fail(format!("scrape: {e}")))?;
        let mut body = String::new();
        c.read_to_string(&mut body)
            .map_err(|e| Fail(format!("scrape: {e}")))?;
        let status = body.lines().next().unwrap_or("");
        if !status.starts_with("HTTP/1.1 200 ") {
            return Err(Fail(format!(
                "scrape of {}: {:?} ({} bytes)",
                self.addr,
                status,
                body.len()
            )));
        }
        sum_samples(&body, name)
    }
}

/// See [`Sentinel::metric`].
fn sum_samples(exposition: &str, name: &str) -> Result<f64, Fail> {
    let mut sum = 0.0;
    let mut found = false;
    for l in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        // The whole name: followed by its labels or by the value.
        if !(rest.starts_with(' ') || !name.ends_with('}') && rest.starts_with('{')) {
            continue;
        }
        let v = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| Fail(format!("unreadable sample of {name}: {l:?}")))?;
        sum += v;
        found = true;
    }
    if found {
        Ok(sum)
    } else {
        Err(Fail(format!(
            "the sentinel's exposition has no {name}; was it renamed?"
        )))
    }
}

/// Spawns /bin/true in `cgroup` at `rate` per second for `d`; returns the
/// rate met. One spawner per CPU, each paced at its share: a single one,
/// waiting for each child, tops out near 1 / (spawn time), which on a slow
/// VM is below the rate the target names.
fn paced_spawns(cgroup: &Path, rate: f64, d: Duration) -> Result<f64, Fail> {
    let spawners = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = rate / spawners as f64;
    let t0 = Instant::now();
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..spawners)
            .map(|_| {
                scope.spawn(|| -> Result<u64, Fail> {
                    let mut n = 0u64;
                    while t0.elapsed() < d {
                        let due = t0 + Duration::from_secs_f64(n as f64 / share);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let mut c = Command::new("/bin/true");
                        join_cgroup(&mut c, cgroup)?;
                        let st = c.status().map_err(|e| Fail(format!("/bin/true: {e}")))?;
                        if !st.success() {
                            return Err(Fail("/bin/true failed".into()));
                        }
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Fail("a spawner panicked".into())))
            })
            .collect::<Result<Vec<u64>, Fail>>()
    })?;
    Ok(counts.iter().sum::<u64>() as f64 / t0.elapsed().as_secs_f64())
}

/// The sentinel's CPU share of one core over one window while `load`
/// runs, in percent; and what `load` returned.
fn cpu_window(s: &Sentinel, load: impl FnOnce() -> Result<f64, Fail>) -> Result<(f64, f64), Fail> {
    let c0 = s.cpu_ns();
    let t0 = Instant::now();
    let r = load()?;
    let pct = (s.cpu_ns() - c0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0;
    Ok((pct, r))
}

/// One transient unit: a cgroup, one process in it, removed.
fn transient_unit(slice: &Path, i: usize) -> Result<(), Fail> {
    let dir = slice.join(format!("run-u{i}.service"));
    std::fs::create_dir(&dir).map_err(|e| Fail(format!("mkdir {}: {e}", dir.display())))?;
    let mut c = Command::new("/bin/true");
    join_cgroup(&mut c, &dir)?;
    let st = c.status().map_err(|e| Fail(format!("/bin/true: {e}")))?;
    if !st.success() {
        return Err(Fail("/bin/true in a transient unit failed".into()));
    }
    std::fs::remove_dir(&dir).map_err(|e| Fail(format!("rmdir {}: {e}", dir.display())))
}

fn settle(s: &Sentinel) -> Result<(), Fail> {
    // Two polls at the default 5 s interval.
    let p = s.metric("spawnscope_polls_total")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.metric("spawnscope_polls_total")? < p + 2.0 {
        if Instant::now() > deadline {
            return Err(Fail("the sentinel stopped polling".into()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

pub fn sentinel(bin: &Path) -> Result<Section, Fail> {
    require_root("sentinel", "loads BPF programs")?;
    let (dir, config) = sentinel_scratch("sentinel")?;
    let mut md = format!(
        "`spawnscope sentinel` as it ships (the static musl binary of `cargo xtask dist`'s \
         release-dist profile), default configuration (5 s polls, state saved every 12 polls). \
         CPU: the sentinel's own CPU time (every thread's `/proc/PID/task/*/schedstat`) over \
         {WINDOWS} windows of {} s, median (min … max), in % of one core. RSS: VmRSS at the end \
         of the phase. Under load the bench spawns `/bin/true` paced at {SPAWN_RATE:.0} per \
         second (one spawner thread per CPU, each at its share); BPF is the probes' own run time at that rate (from the sentinel's \
         `spawnscope_bpf_run_seconds_total`, with `kernel.bpf_stats_enabled` on for that phase \
         and restored afterwards), which the kernel spends in the spawning tasks, not in the \
         sentinel. Last, {TRANSIENT_UNITS} distinct transient units (`run-uN.service` cgroups \
         below the bench's own, one `/bin/true` each, removed right after) against a sentinel \
         whose counter map holds only 2,048 cgroups, with RSS after each quarter.\n\n\
         | phase | sentinel CPU | RSS | other |\n|---|---|---|---|\n",
        WINDOW.as_secs()
    );

    let s = Sentinel::start(bin, &dir, &config, &[])?;
    std::thread::sleep(Duration::from_secs(5));
    let mut idle = Vec::new();
    for _ in 0..WINDOWS {
        idle.push(
            cpu_window(&s, || {
                std::thread::sleep(WINDOW);
                Ok(0.0)
            })?
            .0,
        );
    }
    let idle_rss = s.rss_kib() as f64 / 1024.0;
    let (lo, hi) = minmax(&idle);
    let idle_pct = median(&mut idle);
    md.push_str(&format!(
        "| idle | {idle_pct:.4} % ({lo:.4} … {hi:.4}) | {idle_rss:.1} MiB | |\n"
    ));

    // A unit of its own, as in section 1.
    let load_cgroup = cgroup2_slice()?;
    let stats = BpfStats::enable()?;
    // The sentinel reads the programs' run times at its polls, and
    // exposes them only once it has seen the statistics on.
    settle(&s)?;
    let mut busy = Vec::new();
    let mut rates = Vec::new();
    let mut bpf_pct = Vec::new();
    let mut per_run = Vec::new();
    for _ in 0..WINDOWS {
        let (t0, n0) = (
            s.metric("spawnscope_bpf_run_seconds_total")?,
            s.metric("spawnscope_bpf_runs_total")?,
        );
        let w0 = Instant::now();
        let (pct, rate) = cpu_window(&s, || paced_spawns(&load_cgroup.0, SPAWN_RATE, WINDOW))?;
        settle(&s)?;
        let (t1, n1) = (
            s.metric("spawnscope_bpf_run_seconds_total")?,
            s.metric("spawnscope_bpf_runs_total")?,
        );
        busy.push(pct);
        rates.push(rate);
        // Over the window and the settling polls: every run happened then.
        bpf_pct.push((t1 - t0) / w0.elapsed().as_secs_f64() * 100.0);
        per_run.push((t1 - t0) * 1e9 / (n1 - n0).max(1.0));
    }
    drop(stats);
    drop(load_cgroup);
    let busy_rss = s.rss_kib() as f64 / 1024.0;
    let (lo, hi) = minmax(&busy);
    let busy_pct = median(&mut busy);
    md.push_str(&format!(
        "| {:.0} spawns/s | {busy_pct:.3} % ({lo:.3} … {hi:.3}) | {busy_rss:.1} MiB | BPF {:.3} % \
         of a core, {:.0} ns per run |\n",
        median(&mut rates.clone()),
        median(&mut bpf_pct),
        median(&mut per_run),
    ));
    drop(s);

    // Transient units, against a counter map smaller than their number:
    // only freeing removed cgroups keeps it from overflowing.
    let s = Sentinel::start(bin, &dir, &config, &["--max-cgroups", "2048"])?;
    let slice = cgroup2_slice()?;
    settle(&s)?;
    let mut making = Duration::ZERO;
    let mut rss = vec![(0, s.rss_kib())];
    for i in 0..TRANSIENT_UNITS {
        let t = Instant::now();
        transient_unit(&slice.0, i)?;
        making += t.elapsed();
        if (i + 1) % (TRANSIENT_UNITS / 4) == 0 {
            settle(&s)?;
            rss.push((i + 1, s.rss_kib()));
        }
    }
    let secs = making.as_secs_f64();
    let units = s.metric("spawnscope_tracked_units")?;
    let overflow = s.metric("spawnscope_map_overflow_events_total")?;
    let lost = s.metric("spawnscope_probe_errors_total")?;
    let execs_other = s.metric("spawnscope_spawns_total{unit=\"other\",kind=\"exec\"}")?;
    let last_rss = rss.last().map_or(0.0, |r| r.1 as f64 / 1024.0);
    md.push_str(&format!(
        "| {TRANSIENT_UNITS} transient units, map of 2,048 | | {} | {:.0} units/s; {units:.0} \
         units in state (bounded at 1,000; the rest folded into \"other\": {execs_other:.0} \
         execs); map overflow {overflow:.0}; probe errors {lost:.0} |\n",
        rss.iter()
            .map(|(n, kib)| format!("{:.1} MiB at {n}", *kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", "),
        TRANSIENT_UNITS as f64 / secs
    ));
    drop(slice);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    let met = |ok: bool| crate::bench_overhead::verdict(ok);
    let steady_rss = idle_rss.max(busy_rss).max(last_rss);
    let rate_met = median(&mut rates.clone());
    // The load must have been what the target names.
    let paced = rate_met >= 0.98 * SPAWN_RATE;
    md.push_str(&format!(
        "\nTargets: RSS ≤ 10 MiB at steady state ({steady_rss:.1} MiB): {} ≤ 0.1 % of \
         one core idle ({idle_pct:.4} %): {} ≤ 1 % under 1,000 spawns/s ({busy_pct:.3} % at \
         {rate_met:.0} spawns/s{}): {} Memory bounded as {TRANSIENT_UNITS} transient units come \
         and go ({last_rss:.1} MiB at the end, map overflow {overflow:.0}, probe errors \
         {lost:.0}, {units:.0} units in state): {}\n",
        met(steady_rss <= 10.0),
        met(idle_pct <= 0.1),
        if paced {
            ""
        } else {
            ", below the rate the target names"
        },
        met(paced && busy_pct <= 1.0),
        met(last_rss <= 10.0 && overflow == 0.0 && lost == 0.0 && units <= 1000.0),
    ));
    Ok(Section {
        title: "4. Sentinel footprint".into(),
        body: md,
    })
}

#[cfg(test)]
mod tests {
    use super::sum_samples;

    const EXPO: &str = "# HELP spawnscope_polls_total Polls.\n\
        spawnscope_polls_total 7\n\
        spawnscope_polls_total_extra 100\n\
        spawnscope_spawns_total{unit=\"a\",kind=\"exec\"} 2\n\
        spawnscope_spawns_total{unit=\"other\",kind=\"exec\"} 3\n";

    #[test]
    fn samples_are_summed_by_whole_name() {
        assert_eq!(sum_samples(EXPO, "spawnscope_polls_total").unwrap(), 7.0);
        assert_eq!(sum_samples(EXPO, "spawnscope_spawns_total").unwrap(), 5.0);
        assert_eq!(
            sum_samples(
                EXPO,
                "spawnscope_spawns_total{unit=\"other\",kind=\"exec\"}"
            )
            .unwrap(),
            3.0
        );
    }

    #[test]
    fn a_missing_metric_is_an_error_not_zero() {
        let e = sum_samples(EXPO, "spawnscope_map_overflow_events_total")
            .unwrap_err()
            .0;
        assert_eq!(
            e,
            "the sentinel's exposition has no spawnscope_map_overflow_events_total; was it renamed?"
        );
    }
}
