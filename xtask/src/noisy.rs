//! `cargo xtask test --noisy`: the neighbours a test run must tolerate.
//! While the tests run, the host also runs, each in a cgroup of its own
//! below ours:
//!
//! - `noisy-cpu-hog`: `stress-ng --cpu 0` (a worker on every CPU);
//! - `noisy-crashloop.service`: a shell restarting `/bin/false` twice a
//!   second, forever: a respawn loop that is nobody's test;
//! - `noisy-install`: `debootstrap --variant=minbase` of Debian bookworm into
//!   a scratch directory, again and again (dpkg and its maintainer scripts
//!   in a chroot, with failing children), from a tarball of the packages
//!   downloaded once.
//!
//! Tests judge only their own cgroups and units, so they must pass. The
//! noise must really have run: a neighbour that died early, or an install
//! loop that completed nothing, fails the run. Every process is stopped
//! (through `cgroup.kill`, else by pid, only inside our own cgroups), on
//! SIGINT and SIGTERM too, and the cgroups and scratch directory removed.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    bench::{Slice, cgroup2_dir, join_cgroup, remove_cgroup_tree},
    util::{Fail, run_with_retries, step},
};

const SUITE: &str = "bookworm";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Where the packages and the scratch installs live: not /tmp, which may be
/// a `nodev` tmpfs that debootstrap refuses.
const CACHE: &str = "/var/cache/spawnscope-tests";
/// The packages debootstrap installs, fetched once; the quiet-corpus test
/// installs from it too.
pub const TARBALL: &str = "noisy-bookworm-minbase.tgz";

pub struct Neighbours {
    slice: Slice,
    scratch: PathBuf,
    hog: Option<Child>,
    crash: Option<Child>,
    stop: Arc<AtomicBool>,
    installer: Option<JoinHandle<Result<u32, Fail>>>,
}

impl Neighbours {
    pub fn start() -> Result<Self, Fail> {
        require_root()?;
        crate::setup::ensure_packages(&["stress-ng", "debootstrap"])?;
        let tarball = ensure_tarball()?;
        let pid = std::process::id();
        let scratch = Path::new(CACHE).join(format!("noisy-scratch.{pid}"));
        std::fs::create_dir_all(&scratch)
            .map_err(|e| Fail(format!("{}: {e}", scratch.display())))?;
        // From here on, an error drops `n`, which stops whatever started.
        let mut n = Self {
            slice: cgroup2_dir(&format!("spawnscope-noisy-{pid}"))?,
            scratch,
            hog: None,
            crash: None,
            stop: Arc::new(AtomicBool::new(false)),
            installer: None,
        };
        on_signal_clean_up(&n.slice.0, &n.scratch)?;
        let mut c = Command::new("stress-ng");
        c.args(["--cpu", "0", "--timeout", "4h", "--quiet"]);
        join_cgroup(&mut c, &n.sub("noisy-cpu-hog")?)?;
        n.hog = Some(spawn(&mut c, "stress-ng")?);
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "while :; do /bin/false; sleep 0.5; done"]);
        join_cgroup(&mut c, &n.sub("noisy-crashloop.service")?)?;
        n.crash = Some(spawn(&mut c, "the crash loop")?);
        let install = n.sub("noisy-install")?;
        let (stop, scratch) = (n.stop.clone(), n.scratch.clone());
        n.installer = Some(std::thread::spawn(move || {
            install_loop(&tarball, &install, &scratch, &stop)
        }));
        Ok(n)
    }

    fn sub(&self, name: &str) -> Result<PathBuf, Fail> {
        let d = self.slice.0.join(name);
        std::fs::create_dir(&d).map_err(|e| Fail(format!("mkdir {}: {e}", d.display())))?;
        Ok(d)
    }

    /// Stops every neighbour. Says how many rootfs installs completed, or
    /// fails when the noise did not run as asked.
    pub fn stop(mut self) -> Result<String, Fail> {
        // Before anything is killed: each must still be running.
        let mut dead = Vec::new();
        for (c, what) in [
            (&mut self.hog, "stress-ng"),
            (&mut self.crash, "the crash loop"),
        ] {
            if let Some(st) = c.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                dead.push(format!("{what} ended early ({st})"));
            }
        }
        let installs = match self.halt() {
            Ok(0) => {
                dead.push("the install loop completed no install".into());
                0
            }
            Ok(n) => n,
            Err(Fail(e)) => {
                dead.push(e);
                0
            }
        };
        if dead.is_empty() {
            Ok(format!("{installs} rootfs installs completed"))
        } else {
            Err(Fail(format!(
                "the noise did not run as asked: {}",
                dead.join("; ")
            )))
        }
    }

    /// Kills everything in our cgroups and cleans up; what the install loop
    /// returned.
    fn halt(&mut self) -> Result<u32, Fail> {
        self.stop.store(true, Ordering::Relaxed);
        kill_all_in(&self.slice.0);
        for c in [self.hog.take(), self.crash.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.wait();
        }
        // The install loop may have started one more debootstrap between
        // its last look at the flag and the kill.
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.installer.as_ref().is_some_and(|t| !t.is_finished()) {
            if Instant::now() > deadline {
                // Left detached; its cgroup keeps the slice from going.
                self.installer = None;
                remove_tree(&self.scratch);
                return Err(Fail("the install loop did not stop within 60 s".into()));
            }
            kill_all_in(&self.slice.0);
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = match self.installer.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Fail("the install loop panicked".into())),
            None => Ok(0),
        };
        remove_tree(&self.scratch);
        r
    }
}

impl Drop for Neighbours {
    fn drop(&mut self) {
        if self.hog.is_some() || self.crash.is_some() || self.installer.is_some() {
            let _ = self.halt();
        }
        remove_tree(&self.scratch);
    }
}

/// Checked before any lint or build runs, too.
pub fn require_root() -> Result<(), Fail> {
    crate::util::require_root("test --noisy starts its neighbours in cgroups of their own")
}

fn spawn(c: &mut Command, what: &str) -> Result<Child, Fail> {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Fail(format!("cannot start {what}: {e}")))
}

/// On SIGINT or SIGTERM (Ctrl-C, a CI timeout), stops the neighbours and
/// removes what they made before xtask ends, so that no CPU hog or crash
/// loop outlives it.
fn on_signal_clean_up(slice: &Path, scratch: &Path) -> Result<(), Fail> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Fail(format!("signal setup: {e}")))?;
    let (slice, scratch) = (slice.to_path_buf(), scratch.to_path_buf());
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("xtask: signal {sig}: stopping the noisy neighbours");
            kill_all_in(&slice);
            remove_tree(&scratch);
            remove_cgroup_tree(&slice);
            std::process::exit(128 + sig);
        }
    });
    Ok(())
}

/// Kills every process in `dir`'s cgroup tree, until none is left: with
/// `cgroup.kill` where the kernel has it (5.14+), which cannot hit a
/// reused pid, else SIGKILL by pid.
fn kill_all_in(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pids = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
                pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            for pid in pids {
                // SAFETY: only processes in our own cgroup tree.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The packages of a minbase bookworm, downloaded once (retried).
pub fn ensure_tarball() -> Result<PathBuf, Fail> {
    let tarball = Path::new(CACHE).join(TARBALL);
    if tarball.exists() {
        return Ok(tarball);
    }
    step(
        "downloading the packages of a minbase bookworm (once; debootstrap --unpack-tarball installs from them)",
    );
    std::fs::create_dir_all(CACHE).map_err(|e| Fail(format!("{CACHE}: {e}")))?;
    let pid = std::process::id();
    let part = Path::new(CACHE).join(format!("noisy-tarball.{pid}.tgz"));
    let work = Path::new(CACHE).join(format!("noisy-tarball.{pid}.d"));
    let mirror =
        std::env::var("SPAWNSCOPE_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let made = run_with_retries(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--make-tarball={}", part.display()))
            .arg(SUITE)
            .arg(&work)
            .arg(&mirror)
            .stdout(Stdio::null()),
        3,
    )
    .and_then(|()| {
        std::fs::rename(&part, &tarball).map_err(|e| Fail(format!("{}: {e}", tarball.display())))
    });
    remove_tree(&work);
    if made.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    made.map(|()| tarball)
}

/// debootstrap from `tarball` into a fresh directory below `scratch`, in
/// the cgroup `cgroup`, again and again until `stop`; returns how many
/// completed.
fn install_loop(
    tarball: &Path,
    cgroup: &Path,
    scratch: &Path,
    stop: &AtomicBool,
) -> Result<u32, Fail> {
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let target = scratch.join(format!("root-{done}"));
        let log = scratch.join("debootstrap.log");
        let out =
            std::fs::File::create(&log).map_err(|e| Fail(format!("{}: {e}", log.display())))?;
        let mut c = Command::new("debootstrap");
        c.arg("--variant=minbase")
            .arg(format!("--unpack-tarball={}", tarball.display()))
            .arg(SUITE)
            .arg(&target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out);
        join_cgroup(&mut c, cgroup)?;
        let st = c
            .status()
            .map_err(|e| Fail(format!("cannot run debootstrap: {e}")))?;
        remove_tree(&target);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if !st.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text.lines().last().unwrap_or("(no output)");
            return Err(Fail(format!(
                "debootstrap --unpack-tarball={} failed ({st}): {last}",
                tarball.display()
            )));
        }
        done += 1;
    }
    Ok(done)
}

/// Removes `dir` after detaching whatever is mounted below it (a
/// debootstrap that was stopped leaves its /proc and /sys mounted).
fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let mut below: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    // Deepest first.
    below.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in below {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: a NUL-terminated path; MNT_DETACH has no other needs.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    // --one-file-system: never into anything that is still mounted.
    let _ = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status();
}
