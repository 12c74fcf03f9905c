//! A real systemd to test against: a minimal Debian booted with
//! systemd-nspawn inside a test cgroup.
//!
//! The rootfs is built once per Debian release with debootstrap and cached
//! outside the repository ($SPAWNSCOPE_ROOTFS_CACHE for bookworm, default
//! /var/cache/spawnscope-tests/<suite>). Each container boots it with
//! `--volatile=overlay`, so units a test installs go to a tmpfs and the
//! cache stays pristine. The container's units show up on the host under
//! `<test cgroup>/payload/…`, where the host-side probe sees them.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::{TestCgroup, skip};

/// A Debian release the fixture can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// Debian 12, systemd 252: the fixture of every scenario test.
    Bookworm,
    /// Debian 13, systemd 257: PID 1 starts every service through
    /// systemd-executor (systemd >= 255), so each start is two execs in
    /// the service's cgroup. The scenario tests run on it too.
    Trixie,
    /// Debian 11, systemd 247 and glibc 2.31: an old userland for the
    /// static release binary.
    Bullseye,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
            Suite::Bullseye => "bullseye",
        }
    }

    /// The major version of the systemd the suite ships.
    pub fn systemd_version(self) -> u32 {
        match self {
            Suite::Bookworm => 252,
            Suite::Trixie => 257,
            Suite::Bullseye => 247,
        }
    }

    /// True when PID 1 starts services through systemd-executor.
    pub fn has_executor(self) -> bool {
        self.systemd_version() >= 255
    }

    /// Execs in a unit's cgroup per start of one of its commands: the
    /// command's, and before it, from systemd 255 on, systemd-executor's.
    pub fn execs_per_start(self) -> u64 {
        if self.has_executor() { 2 } else { 1 }
    }

    /// Forks counted in a unit's cgroup per start of one of its commands.
    /// Trixie's systemd (257, on glibc 2.41) creates the process in the
    /// unit's cgroup (pidfd_spawn with CLONE_INTO_CGROUP), where the probe
    /// counts the fork; bookworm's forks in init.scope and then moves the
    /// child.
    pub fn forks_per_start(self) -> u64 {
        match self {
            Suite::Trixie => 1,
            Suite::Bookworm | Suite::Bullseye => 0,
        }
    }
}

/// Asserts that `what` (a finding or an alert, as JSON) does not name
/// systemd-executor's hand-off (systemd >= 255) as what runs: neither the
/// executor nor the `/proc/self/fd/N` path PID 1 execs it by.
pub fn assert_names_no_executor(what: &serde_json::Value) {
    let text = what.to_string();
    assert!(
        !text.contains("systemd-executor") && !text.contains("/proc/self/fd/"),
        "names systemd-executor's hand-off, not the unit's own program: {what}"
    );
}

/// systemd's "Started UNIT." message (SD_MESSAGE_UNIT_STARTED).
const UNIT_STARTED: &str = "MESSAGE_ID=39f53479d3a045ac8e11786248231fbf";

/// Restarts per minute of a unit started at `starts` (unix seconds, in
/// order): 60 s over the median interval between two starts.
pub fn restarts_per_min(starts: &[f64]) -> f64 {
    let mut gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(!gaps.is_empty(), "no restart in {starts:?}");
    gaps.sort_by(f64::total_cmp);
    let n = gaps.len();
    let median = if n % 2 == 1 {
        gaps[n / 2]
    } else {
        (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0
    };
    60.0 / median
}

const PACKAGES: &str = "systemd,systemd-sysv,dbus";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Written last: a rootfs without it is a half-built one.
const STAMP: &str = ".spawnscope-rootfs-complete";

fn cache_dir(suite: Suite) -> PathBuf {
    match suite {
        Suite::Bookworm => std::env::var_os("SPAWNSCOPE_ROOTFS_CACHE").map(PathBuf::from),
        Suite::Trixie | Suite::Bullseye => None,
    }
    .unwrap_or_else(|| PathBuf::from("/var/cache/spawnscope-tests").join(suite.name()))
}

pub(crate) fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Runs `c`, killing it after `limit`. Panics if it cannot start.
pub fn run_with_timeout(c: &mut Command, limit: Duration) -> Output {
    let what = format!("{c:?}");
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// An exclusive lock on a file, so that test binaries running at the same
/// time build the rootfs once.
pub(crate) struct Lock {
    _held: fs::File,
}

impl Lock {
    pub(crate) fn take(path: &Path) -> Self {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {}", path.display());
        Self { _held: f }
    }
}

/// The cached rootfs, built on first use. Returns the path and whether this
/// call built it (and how long that took).
pub fn rootfs(suite: Suite) -> (PathBuf, Option<Duration>) {
    let dir = cache_dir(suite);
    let suite = suite.name();
    if dir.join(STAMP).exists() {
        return (dir, None);
    }
    let parent = dir.parent().expect("cache dir has a parent");
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    let _lock = Lock::take(&parent.join(format!(".{suite}.lock")));
    if dir.join(STAMP).exists() {
        return (dir, None);
    }
    let t0 = Instant::now();
    let mirror =
        std::env::var("SPAWNSCOPE_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let tmp = parent.join(format!(".{suite}.building"));
    let mut last = String::new();
    // The mirror is on the network: retry, starting clean each time.
    for attempt in 1..=3 {
        let _ = fs::remove_dir_all(&tmp);
        eprintln!(
            "systemd fixture: debootstrap {suite} into {} (attempt {attempt})",
            tmp.display()
        );
        let out = run_with_timeout(
            Command::new("debootstrap")
                .args(["--variant=minbase", &format!("--include={PACKAGES}"), suite])
                .arg(&tmp)
                .arg(&mirror),
            Duration::from_secs(900),
        );
        if out.status.success() {
            fs::write(tmp.join(STAMP), b"").expect("write stamp");
            let _ = fs::remove_dir_all(&dir);
            fs::rename(&tmp, &dir).unwrap_or_else(|e| panic!("rename to {}: {e}", dir.display()));
            return (dir, Some(t0.elapsed()));
        }
        let log = String::from_utf8_lossy(&out.stdout);
        last = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
        std::thread::sleep(Duration::from_secs(5 * attempt));
    }
    let _ = fs::remove_dir_all(&tmp);
    panic!("debootstrap failed 3 times; last lines:\n{last}");
}

/// A booted container. Dropping it shuts it down (and the test cgroup's
/// drop removes whatever is left).
pub struct SystemdContainer {
    /// Machine name; also the name of its cgroup below the test's own.
    pub name: String,
    /// The container's cgroup on the host (nspawn's, with payload/ and
    /// supervisor/ below it).
    pub cgroup: TestCgroup,
    nspawn: Option<Child>,
    /// PID (on the host) of the container's systemd.
    pub leader: i32,
    /// The Debian release it runs.
    pub suite: Suite,
    /// From starting nspawn to `systemctl is-system-running --wait`.
    pub boot_time: Duration,
    /// How long debootstrap took, if this boot had to build the rootfs.
    pub rootfs_build_time: Option<Duration>,
    log: PathBuf,
    _logdir: tempfile::TempDir,
    /// nspawn's exit status, once it has exited.
    exit: Option<std::process::ExitStatus>,
    /// Held for the container's life (released after it is stopped).
    _one_at_a_time: MutexGuard<'static, ()>,
    /// The same, across the test binaries running at the same time.
    _one_on_the_host: Lock,
    /// When this container's turn came (the rootfs build and boot
    /// included): the test's own time, without its wait for the lock.
    turn: Instant,
}

/// One container at a time per test binary, and (by [`CONTAINER_LOCK`]) on
/// the host. A scenario test runs once per suite, and libtest runs a
/// binary's tests on parallel threads, xtask several binaries at once; the probe
/// (trace's or the sentinel's) sees every container on the host, so a
/// second container's units would land in the first test's findings, the
/// sentinel's drill-down could be spent on the wrong loop, and two booted
/// systemds on these 2 CPUs would stretch the restart timings the tests
/// measure.
static ONE_CONTAINER: Mutex<()> = Mutex::new(());
/// The file whose lock a booted container holds.
const CONTAINER_LOCK: &str = "/var/cache/spawnscope-tests/container.lock";

/// The sentinel's unit as shipped.
pub const SENTINEL_UNIT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dist/spawnscope-sentinel.service"
);

impl SystemdContainer {
    /// Boots a container, or returns None after a loud skip when this host
    /// cannot (not root, no systemd-nspawn/debootstrap). Skips fail under CI.
    pub fn boot(tag: &str) -> Option<Self> {
        Self::boot_with(tag, &[])
    }

    /// [`SystemdContainer::boot`] with extra systemd-nspawn arguments.
    pub fn boot_with(tag: &str, nspawn_args: &[&str]) -> Option<Self> {
        Self::boot_suite(tag, Suite::Bookworm, nspawn_args)
    }

    /// Boots `suite` ready for the shipped sentinel unit, as an operator
    /// installs it by hand: the container gets CAP_BPF and CAP_PERFMON to
    /// pass on (and the bpf syscalls through its filter), the binary under
    /// test goes to /usr/local/bin/spawnscope and `dist/`'s unit is
    /// installed. Returns the unit's text too. None after a loud skip.
    pub fn boot_for_shipped_sentinel(tag: &str, suite: Suite) -> Option<(Self, String)> {
        let ct = Self::boot_suite(
            &format!("{tag}-{}", suite.name()),
            suite,
            &[
                "--capability=CAP_BPF,CAP_PERFMON",
                "--system-call-filter=bpf perf_event_open",
            ],
        )?;
        ct.copy_in(&crate::spawnscope_bin(), "/usr/local/bin/spawnscope");
        let unit =
            fs::read_to_string(SENTINEL_UNIT_FILE).expect("dist/spawnscope-sentinel.service");
        ct.install_unit("spawnscope-sentinel.service", &unit);
        Some((ct, unit))
    }

    /// [`SystemdContainer::boot_with`] for another Debian release.
    pub fn boot_suite(tag: &str, suite: Suite, nspawn_args: &[&str]) -> Option<Self> {
        if !crate::require_root(&format!("systemd fixture ({tag})")) {
            return None;
        }
        for tool in ["systemd-nspawn", "debootstrap", "nsenter"] {
            if !have(tool) {
                skip(&format!(
                    "systemd fixture ({tag}): {tool} not installed (cargo xtask setup installs it)"
                ));
                return None;
            }
        }
        // A test that failed while holding it poisoned it; the container
        // it guarded is gone all the same.
        let one_at_a_time = ONE_CONTAINER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock = Path::new(CONTAINER_LOCK);
        if let Some(dir) = lock.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let one_on_the_host = Lock::take(lock);
        let turn = Instant::now();
        let (root, rootfs_build_time) = rootfs(suite);
        let cgroup = TestCgroup::new(&format!("sd-{tag}"));
        let name = cgroup
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let logdir = tempfile::tempdir().expect("tempdir");
        let log = logdir.path().join("console.log");
        let logf = fs::File::create(&log).expect("console log");
        let t0 = Instant::now();
        let nspawn = cgroup
            .command("systemd-nspawn")
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .arg("--directory")
            .arg(&root)
            .args([
                "--register=no",
                "--keep-unit",
                "--boot",
                "--volatile=overlay",
                "--console=passive",
                "--machine",
                &name,
            ])
            .args(nspawn_args)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start systemd-nspawn");
        let mut c = Self {
            name,
            cgroup,
            nspawn: Some(nspawn),
            leader: 0,
            suite,
            boot_time: Duration::ZERO,
            rootfs_build_time,
            log,
            _logdir: logdir,
            exit: None,
            _one_at_a_time: one_at_a_time,
            _one_on_the_host: one_on_the_host,
            turn,
        };
        c.leader = c.wait_for_init();
        // Early on, the process in init.scope may still be nspawn's child
        // setting up, or systemd before its private bus exists; retry
        // until systemd answers, then wait for the boot to finish.
        let deadline = Instant::now() + Duration::from_secs(120);
        let state = loop {
            let out = run_with_timeout(
                &mut c.exec_cmd(&["systemctl", "is-system-running", "--wait"]),
                Duration::from_secs(120),
            );
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !state.is_empty() || Instant::now() > deadline {
                break format!("{state} {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            std::thread::sleep(Duration::from_millis(50));
            if let Some(pid) = c.init_pid() {
                c.leader = pid;
            }
        };
        let state = state.trim();
        assert!(
            state == "running" || state == "degraded",
            "container systemd did not come up: {state:?}; console:\n{}",
            c.console()
        );
        c.boot_time = t0.elapsed();
        eprintln!(
            "systemd fixture: {} ({}) booted in {:.2}s{}",
            c.name,
            suite.name(),
            c.boot_time.as_secs_f64(),
            match c.rootfs_build_time {
                Some(d) => format!(" (rootfs built first, {:.1}s)", d.as_secs_f64()),
                None => " (cached rootfs)".to_string(),
            }
        );
        Some(c)
    }

    fn console(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn init_pid(&self) -> Option<i32> {
        let procs = self.cgroup.path.join("payload/init.scope/cgroup.procs");
        fs::read_to_string(procs)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
    }

    /// The container's systemd, once it has moved itself into init.scope.
    fn wait_for_init(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(pid) = self.init_pid() {
                return pid;
            }
            if let Some(Some(status)) = self.nspawn.as_mut().map(|c| c.try_wait().expect("wait")) {
                panic!(
                    "systemd-nspawn exited ({status}); console:\n{}",
                    self.console()
                );
            }
            assert!(
                Instant::now() < deadline,
                "container init did not start within 60 s; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command run inside the container (all its namespaces).
    pub fn exec_cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["--target", &self.leader.to_string(), "--all", "--"])
            .args(argv);
        c
    }

    /// Runs a command inside and returns its stdout; panics unless it succeeds.
    pub fn run(&self, argv: &[&str]) -> String {
        let out = run_with_timeout(&mut self.exec_cmd(argv), Duration::from_secs(120));
        assert!(
            out.status.success(),
            "in container {}: {argv:?} failed ({}): {}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A path inside the container, reached from the host.
    pub fn guest_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.leader)).join(path.trim_start_matches('/'))
    }

    /// Writes a unit file into /etc/systemd/system and reloads systemd.
    pub fn install_unit(&self, name: &str, text: &str) {
        let p = self.guest_path(&format!("/etc/systemd/system/{name}"));
        let mut f = fs::File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        self.run(&["systemctl", "daemon-reload"]);
    }

    /// Copies a host file into the container, executable.
    pub fn copy_in(&self, host: &Path, guest: &str) {
        let p = self.guest_path(guest);
        fs::copy(host, &p)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", host.display(), p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Starts root's user manager (user@0.service). The minimal rootfs has
    /// no pam_systemd to set XDG_RUNTIME_DIR, so a drop-in does.
    pub fn start_user_manager(&self) {
        let d = self.guest_path("/etc/systemd/system/user@.service.d");
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        fs::write(
            d.join("runtime-dir.conf"),
            "[Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%i\n",
        )
        .unwrap();
        self.run(&["systemctl", "daemon-reload"]);
        self.run(&["systemctl", "start", "user@0.service"]);
    }

    /// `systemctl --user ARGS` against root's user manager (through its
    /// private socket: there is no user D-Bus here).
    pub fn user_systemctl(&self, args: &[&str]) -> String {
        let mut argv = vec!["env", "XDG_RUNTIME_DIR=/run/user/0", "systemctl", "--user"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// `systemd-analyze security`'s overall exposure of `unit` (printed),
    /// and the whole report.
    pub fn security_score(&self, unit: &str) -> (f64, String) {
        let security = self.run(&[
            "sh",
            "-c",
            &format!("systemd-analyze security --no-pager {unit} 2>&1"),
        ]);
        let overall = security
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no score: {security}"))
            .to_string();
        let score: f64 = overall
            .split(':')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{overall}"));
        eprintln!("systemd-analyze security {unit}: {}", overall.trim());
        (score, security)
    }

    /// The /metrics address in the latest "sentinel started" line that
    /// `unit` logged (waits up to 60 s), then waits until that sentinel
    /// has polled (its exposition has `spawnscope_polls_total`).
    pub fn sentinel_serving(&self, unit: &str) -> std::net::SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr: std::net::SocketAddr = loop {
            let j = self.run(&["journalctl", "--no-pager", "-o", "cat", "-u", unit]);
            if let Some(a) = j
                .lines()
                .rev()
                .find_map(|l| l.split("metrics on http://").nth(1))
                .and_then(|r| r.split('/').next())
            {
                break a.parse().unwrap_or_else(|e| panic!("{a}: {e}"));
            }
            assert!(
                Instant::now() < deadline,
                "{unit} did not start:\n{j}\n{}",
                self.run(&[
                    "sh",
                    "-c",
                    &format!("systemctl status --no-pager {unit}; true")
                ])
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = crate::sentinel::http_get(addr, "/metrics");
            assert_eq!(status, 200, "{body}");
            if body.contains("spawnscope_polls_total") {
                return addr;
            }
            assert!(Instant::now() < deadline, "no poll in 30 s:\n{body}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// When systemd started `unit`, each time, as unix seconds in order:
    /// the journal's "Started" messages, which PID 1 logs as it forks the
    /// unit's process, before any exec. systemd's own record of a restart
    /// loop's cadence, to check spawnscope's rates and first-seen times
    /// against.
    ///
    /// The time is `_SOURCE_REALTIME_TIMESTAMP`, the kernel's timestamp on
    /// PID 1's datagram, not `__REALTIME_TIMESTAMP`: that one is when
    /// journald got round to the message, which trails by seconds while
    /// the host writes heavily, long enough to make a start look later
    /// than spawnscope's report of it.
    pub fn start_times(&self, unit: &str) -> Vec<f64> {
        self.run(&[
            "journalctl",
            "--no-pager",
            "--output=json",
            "--output-fields=MESSAGE,_SOURCE_REALTIME_TIMESTAMP",
            UNIT_STARTED,
            &format!("UNIT={unit}"),
        ])
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}"));
            let us: u64 = v["_SOURCE_REALTIME_TIMESTAMP"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("no _SOURCE_REALTIME_TIMESTAMP in {l}"));
            us as f64 / 1e6
        })
        .collect()
    }

    /// `systemctl show -p ...` as a map.
    pub fn show(&self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let mut argv = vec!["systemctl", "show", unit];
        let joined = props.join(",");
        argv.extend(["-p", &joined]);
        self.run(&argv)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Waits until `unit`'s main process is `sleep`, asleep:
    /// `systemctl start` returns once a simple service is forked, before
    /// its exec(s), and the comm changes inside exec, before the exec
    /// tracepoint fires. Sleeping means the exec is long done.
    pub fn wait_main_sleeping(&self, unit: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pid = self.show(unit, &["MainPID"])["MainPID"].clone();
            if pid != "0" && sleeping(&self.guest_path(&format!("/proc/{pid}"))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{unit}'s main process (pid {pid}) never slept in sleep"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every unit systemd knows, loaded or not, by its exact name.
    pub fn list_units(&self) -> Vec<String> {
        self.run(&[
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--full",
        ])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
    }

    /// The host path (from the cgroup2 root) of a cgroup systemd reports as
    /// `ControlGroup=` inside.
    pub fn host_cgroup(&self, control_group: &str) -> String {
        format!("{}/payload{}", self.cgroup.rel, control_group)
    }

    /// Powers the container off, checks that systemd went down in order
    /// (nspawn exit 0, systemd's own "Halting system."), and returns how
    /// long that took.
    pub fn shutdown(mut self) -> Duration {
        let took = self.stop();
        let console = self.console();
        assert!(
            self.exit.is_some_and(|s| s.success()) && console.contains("Halting system."),
            "{} did not shut down cleanly ({:?}); console:\n{console}",
            self.name,
            self.exit
        );
        eprintln!(
            "systemd fixture: {} powered off in {:.2}s, {:.1}s after its boot began",
            self.name,
            took.as_secs_f64(),
            self.turn.elapsed().as_secs_f64()
        );
        took
    }

    fn stop(&mut self) -> Duration {
        let t0 = Instant::now();
        let Some(mut child) = self.nspawn.take() else {
            return Duration::ZERO;
        };
        // nspawn turns SIGTERM into an orderly poweroff of the container.
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("wait") {
                self.exit = Some(status);
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "systemd fixture: {} did not power off within 30 s; killing",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
        t0.elapsed()
    }
}

impl Drop for SystemdContainer {
    fn drop(&mut self) {
        if self.nspawn.is_some() {
            self.stop();
            eprintln!(
                "systemd fixture: {} stopped {:.1}s after its boot began",
                self.name,
                self.turn.elapsed().as_secs_f64()
            );
        }
    }
}

/// True when the process at `proc_dir` (a /proc/PID directory) runs
/// `sleep` and is blocked in its sleep: nanosleep, or pause for `sleep
/// infinity` (coreutils 9).
pub fn sleeping(proc_dir: &Path) -> bool {
    let read = |f: &str| fs::read_to_string(proc_dir.join(f)).unwrap_or_default();
    let wchan = read("wchan");
    read("comm").trim() == "sleep" && (wchan.contains("nanosleep") || wchan.contains("pause"))
}
