//! The quiet corpus: ordinary administration, watched from start to end by
//! both `trace` and the sentinel, raises no finding and no memory warning,
//! while a real loop running beside it is still caught at its usual
//! latency. Each workload runs where it runs in real life, and is judged
//! by where it ran:
//!
//! - package management in a real systemd (bookworm in nspawn): `apt-get
//!   install`, `remove`, `install --reinstall` and `install` again of cron
//!   and logrotate with their dependencies, real maintainer scripts,
//!   triggers (ldconfig) and service starts, each apt run a transient
//!   service as unattended-upgrades runs it;
//! - a `systemctl daemon-reload` storm, in the same systemd;
//! - log rotation from a timer every 2 s (logrotate, once it is
//!   installed, rotating and compressing a log the job writes), in the
//!   same systemd;
//! - a Debian rootfs built with debootstrap (offline, from the packages
//!   `cargo xtask setup` fetched), its maintainer scripts in a chroot, in a
//!   cgroup of its own on the host;
//! - an autoconf-style `configure`: 300 checks compiled with cc, two in
//!   three failing by design;
//! - a script polling with failing tests (`until pgrep …; test -e …`) for
//!   half a minute;
//! - page-cache growth (6 GiB written and read back) and 1.5 GiB of tmpfs;
//! - beside them, the incident's agetty loop (`serial-getty@ttyS0`,
//!   restarted every 5 s), which both must find by its third restart.
//!
//! The table the test prints gives, per workload, findings and memory
//! warnings from each watcher, and the loop's detection times.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use spawnscope_tests::{
    TestCgroup, Tracer, require_root,
    sentinel::{Sentinel, config, read_jsonl},
    skip,
    systemd::{SystemdContainer, run_with_timeout},
};

const CACHE: &str = "/var/cache/spawnscope-tests";
/// What `cargo xtask setup` fetched for debootstrap (see xtask/src/noisy.rs).
const TARBALL: &str = "noisy-bookworm-minbase.tgz";
/// The packages the corpus installs, with their dependencies as .debs.
const PACKAGES: &[&str] = &["cron", "logrotate"];
const LOOP: &str = "serial-getty@ttyS0.service";

/// The .debs of [`PACKAGES`] and what they need beyond the fixture's
/// rootfs, fetched once through the container's own apt (network, retried)
/// and kept in the cache, so later runs install offline.
fn debs(ct: &SystemdContainer) -> PathBuf {
    let dir = Path::new(CACHE).join("quiet-corpus-debs-bookworm");
    if dir.join(".complete").exists() {
        return dir;
    }
    let mut last = String::new();
    let fetched = (0..3).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(5));
        }
        let mut argv = vec!["sh", "-c"];
        let script = format!(
            "apt-get update -q && apt-get install -q -y --download-only {}",
            PACKAGES.join(" ")
        );
        argv.push(&script);
        let out = run_with_timeout(&mut ct.exec_cmd(&argv), Duration::from_secs(300));
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    assert!(fetched, "apt-get download failed 3 times: {last}");
    let part = Path::new(CACHE).join(format!("quiet-corpus-debs.{}", std::process::id()));
    std::fs::create_dir_all(&part).unwrap();
    for e in std::fs::read_dir(ct.guest_path("/var/cache/apt/archives")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "deb") {
            std::fs::copy(&p, part.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(part.join(".complete"), "").unwrap();
    // Another run may have finished first: either copy is whole.
    if std::fs::rename(&part, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&part);
    }
    dir
}

/// An autoconf-style configure: header and function checks, each compiled
/// with the same command line, most failing by design.
const CONFIGURE: &str = r#"
cd "$1"
n=0
for i in $(seq 1 150); do
  n=$((n + 2))
  case $((i % 3)) in
    0) h=stdio.h ;;
    *) h=nosuch_$i.h ;;
  esac
  printf '#include <%s>\nint main(void) { return 0; }\n' "$h" > conftest.c
  if cc -c -o conftest.o conftest.c 2>/dev/null; then r=yes; else r=no; fi
  echo "checking for $h... $r"
  rm -f conftest.c conftest.o
  case $((i % 3)) in
    0) f=printf ;;
    *) f=nosuch_fn_$i ;;
  esac
  printf 'char %s(void);\nint main(void) { return %s(); }\n' "$f" "$f" > conftest.c
  if cc -o conftest conftest.c 2>/dev/null; then r=yes; else r=no; fi
  echo "checking for $f... $r"
  rm -f conftest conftest.c
done
echo "$n checks"
"#;

/// Page-cache growth and tmpfs use: 3 GiB written and read back twice over
/// (6 GiB through the cache), 1.5 GiB held in a tmpfs for 20 s.
const PAGE_CACHE: &str = r#"
set -e
cd "$1"
dd if=/dev/zero of=big bs=1M count=3072 status=none
cat big > /dev/null
cp big big2
cat big2 > /dev/null
rm -f big big2
mkdir -p tmpfs
mount -t tmpfs -o size=2g quiet-corpus tmpfs
dd if=/dev/zero of=tmpfs/fill bs=1M count=1536 status=none
sleep 20
rm -f tmpfs/fill
umount tmpfs
"#;

/// Waits for a process named `quietready` and a file, with failing tests,
/// every half second; the test starts both after 30 s.
const POLL: &str = r#"
until pgrep -x quietready > /dev/null && test -e "$1/ready"; do
  sleep 0.5
done
"#;

struct Workload {
    name: &'static str,
    /// Matches a finding or warning that belongs to it.
    ours: Box<dyn Fn(&Value) -> bool>,
}

fn starts_with(v: &Value, rel: &str) -> bool {
    v.as_str().is_some_and(|c| c.starts_with(rel))
}

/// A host workload's command in `cg`, output to `log`.
fn host(cg: &TestCgroup, script: &str, arg: &Path, log: &Path) -> std::process::Child {
    cg.command("/bin/sh")
        .args(["-c", script, "sh"])
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap()
}

/// Removes `dir` after detaching whatever is mounted below it (debootstrap
/// leaves /proc and /sys mounted in its target when stopped).
fn remove_tree(dir: &Path) {
    let mut below: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in below {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
    let _ = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status();
}

#[test]
fn ordinary_work_raises_no_finding_and_no_memory_warning() {
    if !require_root("quiet_corpus") {
        return;
    }
    let tarball = Path::new(CACHE).join(TARBALL);
    if !tarball.exists() {
        skip(&format!(
            "quiet_corpus: {} missing (cargo xtask setup fetches it)",
            tarball.display()
        ));
        return;
    }
    let Some(ct) = SystemdContainer::boot("quiet") else {
        return;
    };
    let debs = debs(&ct);
    // The .debs go in before anything is watched; installing them is the
    // workload.
    let guest_debs = ct.guest_path("/root/debs");
    std::fs::create_dir_all(&guest_debs).unwrap();
    for e in std::fs::read_dir(&debs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "deb") {
            std::fs::copy(&p, guest_debs.join(p.file_name().unwrap())).unwrap();
        }
    }
    ct.install_unit(
        LOOP,
        "[Unit]\nDescription=Serial Getty on ttyS0 (incident replay)\nStartLimitIntervalSec=0\n\
         [Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 ttyS0 vt220\n\
         Type=idle\nRestart=always\nRestartSec=5s\n",
    );
    std::fs::write(
        ct.guest_path("/etc/quiet-logrotate.conf"),
        "/var/log/quiet.log {\n  rotate 3\n  missingok\n  compress\n}\n",
    )
    .unwrap();
    ct.install_unit(
        "quiet-rotate.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'date >> /var/log/quiet.log; \
         if [ -x /usr/sbin/logrotate ]; then /usr/sbin/logrotate -f /etc/quiet-logrotate.conf; fi'\n",
    );
    ct.install_unit(
        "quiet-rotate.timer",
        "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=2s\nAccuracySec=1ms\n",
    );

    let scratch = Path::new(CACHE).join(format!("quiet-corpus.{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let cg_boot = TestCgroup::new("quiet-debootstrap");
    let cg_conf = TestCgroup::new("quiet-configure");
    let cg_poll = TestCgroup::new("quiet-poll");
    let cg_cache = TestCgroup::new("quiet-pagecache");
    for d in ["configure", "poll", "pagecache"] {
        std::fs::create_dir_all(scratch.join(d)).unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let sentinel = Sentinel::start(
        dir.path(),
        &config(
            dir.path(),
            &format!("[alerts]\njsonl = \"{}\"\n", alerts.display()),
        ),
    );
    let mut tracer = Tracer::start(&["--interval", "1s"]);

    // The loop, and the timer.
    let t_loop = Instant::now();
    ct.run(&["systemctl", "start", LOOP, "quiet-rotate.timer"]);
    // The host's workloads, at the same time.
    let t0 = Instant::now();
    let boot = cg_boot
        .command("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--unpack-tarball={}", tarball.display()))
        .args(["bookworm"])
        .arg(scratch.join("rootfs"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.join("debootstrap.log")).unwrap())
        .spawn()
        .unwrap();
    let conf = host(
        &cg_conf,
        CONFIGURE,
        &scratch.join("configure"),
        &scratch.join("configure.log"),
    );
    let poll = host(
        &cg_poll,
        POLL,
        &scratch.join("poll"),
        &scratch.join("poll.log"),
    );
    let cache = host(
        &cg_cache,
        PAGE_CACHE,
        &scratch.join("pagecache"),
        &scratch.join("pagecache.log"),
    );
    // Waits for the host's workloads and answers the poll 30 s in (a
    // process named quietready, and the file), from a thread of its own:
    // each workload's time is its own.
    let host_side = {
        let ready_bin = scratch.join("poll/quietready");
        let ready_file = scratch.join("poll/ready");
        let mut ready_cmd = cg_poll.command(&ready_bin);
        ready_cmd.arg("120");
        std::thread::spawn(move || {
            let mut running = vec![
                ("poll", poll),
                ("configure", conf),
                ("page cache and tmpfs", cache),
                ("debootstrap", boot),
            ];
            let mut ended = BTreeMap::new();
            let mut ready = None;
            let deadline = t0 + Duration::from_secs(900);
            while !running.is_empty() {
                if ready.is_none() && t0.elapsed() >= Duration::from_secs(30) {
                    std::fs::copy("/bin/sleep", &ready_bin).unwrap();
                    ready = Some(ready_cmd.spawn().unwrap());
                    std::fs::write(&ready_file, "").unwrap();
                }
                let mut i = 0;
                while i < running.len() {
                    if let Some(st) = running[i].1.try_wait().unwrap() {
                        let (name, _) = running.swap_remove(i);
                        ended.insert(name, (t0.elapsed(), st.success()));
                    } else {
                        i += 1;
                    }
                }
                if Instant::now() > deadline {
                    for (name, c) in &mut running {
                        let _ = c.kill();
                        ended.insert(name, (t0.elapsed(), false));
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(mut r) = ready {
                let _ = r.kill();
                let _ = r.wait();
            }
            ended
        })
    };

    // The loop's detection, by trace; the sentinel's is read from its
    // alerts below.
    let label = format!("{LOOP} @{}", ct.name);
    let (found, at) = tracer.wait_for(Duration::from_secs(120), "the agetty loop", |v| {
        v["type"] == "finding"
            && v["change"] == "detected"
            && v["unit"] == LOOP
            && v["container"] == ct.name.as_str()
    });
    let trace_latency = at - t_loop;

    // Package management, then the reload storm, in the container, each a
    // transient service as unattended-upgrades and a configuration
    // management run would be.
    let apt = |unit: &str, cmd: &str| {
        let t = Instant::now();
        ct.run(&[
            "systemd-run",
            &format!("--unit={unit}"),
            "--wait",
            "--quiet",
            "--pipe",
            "--setenv=DEBIAN_FRONTEND=noninteractive",
            "/bin/sh",
            "-c",
            cmd,
        ]);
        t.elapsed()
    };
    let mut took = BTreeMap::new();
    let t_apt = Instant::now();
    apt(
        "quiet-apt-install",
        "apt-get install -q -y /root/debs/*.deb",
    );
    apt("quiet-apt-remove", "apt-get remove -q -y cron");
    apt(
        "quiet-apt-reinstall",
        "apt-get install -q -y --reinstall /root/debs/logrotate_*.deb",
    );
    apt(
        "quiet-apt-install-again",
        "apt-get install -q -y /root/debs/cron_*.deb",
    );
    took.insert("package management", t_apt.elapsed());
    assert!(
        ct.guest_path("/usr/sbin/cron").exists() && ct.guest_path("/usr/sbin/logrotate").exists(),
        "the packages are installed"
    );
    let t_reload = Instant::now();
    apt(
        "quiet-reload",
        "for i in $(seq 1 40); do systemctl daemon-reload; done",
    );
    took.insert("daemon-reload storm", t_reload.elapsed());

    let ended = host_side.join().unwrap();
    for (name, (at, ok)) in &ended {
        assert!(*ok, "{name} failed or overran; see {}", scratch.display());
        took.insert(*name, *at);
    }
    let checks = std::fs::read_to_string(scratch.join("configure.log")).unwrap();
    assert!(checks.contains("300 checks"), "{checks}");
    let failed_checks = checks.lines().filter(|l| l.ends_with("... no")).count();
    assert_eq!(failed_checks, 200, "two in three checks fail: {checks}");
    remove_tree(&scratch);
    // Everything is over; a last look, with the timer and the loop still
    // going.
    std::thread::sleep(Duration::from_secs(3));
    let rotations = ct.run(&["journalctl", "-u", "quiet-rotate.service", "-o", "cat"]);
    let rotated = rotations
        .lines()
        .filter(|l| l.starts_with("Finished"))
        .count();
    ct.run(&["systemctl", "stop", LOOP, "quiet-rotate.timer"]);

    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    sentinel.signal(libc::SIGTERM);
    let (scode, sstderr) = sentinel.wait();
    assert_eq!(scode, Some(0), "{sstderr}");
    let alerts = read_jsonl(&alerts);

    // Who is whose.
    let in_ct = |unit_prefix: &'static str| {
        let name = ct.name.clone();
        Box::new(move |v: &Value| {
            let unit = v["unit"].as_str().or(v["key"].as_str()).unwrap_or("");
            let container = v["container"].as_str().map(str::to_string).or_else(|| {
                v["key"]
                    .as_str()
                    .and_then(|k| k.split_once(" @"))
                    .map(|(_, c)| c.to_string())
            });
            container.as_deref() == Some(name.as_str())
                && unit.starts_with(unit_prefix)
                && !unit.starts_with(LOOP)
        }) as Box<dyn Fn(&Value) -> bool>
    };
    let in_cg = |cg: &TestCgroup| {
        let rel = cg.rel.clone();
        let name = cg.path.file_name().unwrap().to_string_lossy().into_owned();
        Box::new(move |v: &Value| {
            starts_with(&v["cgroup"], &rel)
                || v["key"].as_str().is_some_and(|k| k.contains(&name))
                || v["culprits"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        starts_with(c, &rel) || c.as_str().is_some_and(|c| c.contains(&name))
                    })
                })
        }) as Box<dyn Fn(&Value) -> bool>
    };
    let workloads = [
        Workload {
            name: "package management",
            // apt's runs, and what they install and start (cron).
            ours: {
                let apt = in_ct("quiet-apt");
                let cron = in_ct("cron");
                let logrotate = in_ct("logrotate");
                Box::new(move |v| apt(v) || cron(v) || logrotate(v))
            },
        },
        Workload {
            name: "daemon-reload storm",
            ours: in_ct("quiet-reload"),
        },
        Workload {
            name: "log rotation timer",
            ours: in_ct("quiet-rotate"),
        },
        Workload {
            name: "debootstrap",
            ours: in_cg(&cg_boot),
        },
        Workload {
            name: "configure",
            ours: in_cg(&cg_conf),
        },
        Workload {
            name: "poll",
            ours: in_cg(&cg_poll),
        },
        Workload {
            name: "page cache and tmpfs",
            ours: in_cg(&cg_cache),
        },
    ];
    let trace_findings: Vec<&Value> = lines
        .iter()
        .filter(|v| v["type"] == "finding")
        .chain(
            lines
                .iter()
                .filter(|v| v["type"] == "summary")
                .flat_map(|s| s["findings"].as_array().into_iter().flatten()),
        )
        .collect();
    let trace_warnings: Vec<&Value> = lines
        .iter()
        .filter(|v| v["type"] == "memory_warning")
        .collect();
    let opened: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["event"] == "finding_opened")
        .collect();
    let sentinel_warnings: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["event"] == "memory_warning")
        .collect();
    // A system-wide warning is everyone's: it counts against the corpus
    // unless it names culprits of others only.
    let system_wide = |w: &&Value| {
        let w = if w["detail"].is_object() {
            &w["detail"]
        } else {
            *w
        };
        w["target"] != "cgroup"
    };

    let mut table = String::from(
        "| workload | ran for | trace findings | trace memory warnings | sentinel findings | sentinel memory warnings |\n|---|---|---|---|---|---|\n",
    );
    let mut bad = Vec::new();
    for w in &workloads {
        let tf: Vec<_> = trace_findings.iter().filter(|v| (w.ours)(v)).collect();
        let tw: Vec<_> = trace_warnings.iter().filter(|v| (w.ours)(v)).collect();
        let sf: Vec<_> = opened.iter().filter(|v| (w.ours)(v)).collect();
        let sw: Vec<_> = sentinel_warnings
            .iter()
            .filter(|v| (w.ours)(&v["detail"]) || (w.ours)(v))
            .collect();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            w.name,
            took.get(w.name)
                .map_or("throughout".to_string(), |d| format!(
                    "{:.0} s",
                    d.as_secs_f64()
                )),
            tf.len(),
            tw.len(),
            sf.len(),
            sw.len()
        ));
        if tf.len() + tw.len() + sf.len() + sw.len() > 0 {
            bad.push(format!("{}: {tf:?} {tw:?} {sf:?} {sw:?}", w.name));
        }
    }
    let system_trace: Vec<_> = trace_warnings.iter().filter(|w| system_wide(w)).collect();
    let system_sentinel: Vec<_> = sentinel_warnings
        .iter()
        .filter(|w| system_wide(w))
        .collect();
    table.push_str(&format!(
        "| (system-wide) | | | {} | | {} |\n",
        system_trace.len(),
        system_sentinel.len()
    ));
    for w in system_trace.iter().chain(&system_sentinel) {
        table.push_str(&format!("  system-wide: {}\n", w["message"]));
    }

    // The loop: found by both, at its usual latency.
    let sentinel_opened = opened
        .iter()
        .find(|a| a["key"] == label.as_str())
        .unwrap_or_else(|| panic!("the sentinel never opened {label}: {alerts:?}"));
    let opened_at = sentinel_opened["time_unix"].as_f64().unwrap();
    let started = ct.start_times(LOOP);
    let sentinel_latency = opened_at - started[0];
    let restarts_seen = |t: f64| {
        started
            .iter()
            .filter(|&&s| s <= t)
            .count()
            .saturating_sub(1)
    };
    table.push_str(&format!(
        "\nthe agetty loop (every 5 s): trace found it {:.1} s after its start, at restart {}; \
         the sentinel {sentinel_latency:.1} s after, at restart {} ({} timer runs meanwhile)\n",
        trace_latency.as_secs_f64(),
        found["restarts"],
        restarts_seen(opened_at),
        rotated
    ));
    eprintln!("{table}");
    assert!(bad.is_empty(), "false alarms:\n{}\n{table}", bad.join("\n"));
    assert!(
        system_trace.is_empty() && system_sentinel.is_empty(),
        "system-wide memory warnings: {system_trace:?} {system_sentinel:?}\n{table}"
    );
    assert_eq!(found["restarts"], 3, "trace: at the 3rd restart: {found}");
    assert_eq!(found["kind"], "respawn_loop");
    assert_eq!(found["executable"], "/sbin/agetty");
    assert!(
        (3..=4).contains(&restarts_seen(opened_at)),
        "the sentinel: at the 3rd restart or the poll after: {sentinel_opened}\n{table}"
    );
    assert!(rotated >= 20, "the timer ran {rotated} times");
    ct.shutdown();
}
