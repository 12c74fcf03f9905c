//! Harness for the privileged tests: root checks that refuse to skip under
//! CI, throwaway cgroups below our own, and a running `spawnscope trace`.

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use spawnscope::cgroupfs;

pub mod dist;
pub mod journal;
pub mod prom;
pub mod sentinel;
mod skip;
pub mod systemd;
pub mod vm;

pub use skip::{skip, skip_dir};

/// True when the test may run; otherwise see [`skip`].
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(&format!(
        "{test}: needs root (CAP_BPF, CAP_PERFMON, cgroup writes)"
    ));
    false
}

/// A binary of this workspace, next to the running test executable in
/// target/<profile>/ (`cargo xtask test` builds them all first). A binary
/// older than a source it is built from is refused: a plain `cargo test -p
/// spawnscope-tests` builds the test code but not spawnscope itself, and
/// would otherwise test a stale copy.
fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(name);
    let build = "run `cargo build --workspace --exclude spawnscope-probe --exclude spawnscope-limits-probe --bins` first (`cargo xtask test` does)";
    let built = fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; {build}", bin.display()));
    if let Some(src) = newer_source(&profile_dir.join(format!("{name}.d")), built) {
        panic!("{} is older than {}: {build}", bin.display(), src.display());
    }
    bin
}

/// A source listed in cargo's dep-info file `dep_info` (the files and
/// directories a binary was built from) modified after `built`.
pub(crate) fn newer_source(dep_info: &Path, built: std::time::SystemTime) -> Option<PathBuf> {
    let text = fs::read_to_string(dep_info)
        .unwrap_or_else(|e| panic!("{}: {e}; rebuild the binaries", dep_info.display()));
    // "target: dep dep ...", spaces in paths escaped as "\\ ".
    let deps = text
        .split_once(": ")
        .map_or("", |(_, d)| d.lines().next().unwrap_or(""));
    let deps = deps.replace("\\ ", "\0");
    let mut todo: Vec<PathBuf> = deps
        .split_whitespace()
        .map(|d| PathBuf::from(d.replace('\0', " ")))
        .collect();
    // A directory (a build script's rerun-if-changed) counts by every file
    // below it, as cargo counts it.
    while let Some(p) = todo.pop() {
        let Ok(meta) = fs::metadata(&p) else {
            // A source that is gone changed too.
            return Some(p);
        };
        if meta.is_dir() {
            // Not into symlinked directories: a link loop would never end.
            todo.extend(
                fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| {
                        e.file_type()
                            .is_ok_and(|t| !t.is_symlink() || !e.path().is_dir())
                    })
                    .map(|e| e.path()),
            );
        } else if meta.modified().is_ok_and(|t| t > built) {
            return Some(p);
        }
    }
    None
}

/// The spawnscope binary under test: $SPAWNSCOPE_BIN, else the workspace's.
pub fn spawnscope_bin() -> PathBuf {
    std::env::var_os("SPAWNSCOPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_bin("spawnscope"))
}

pub fn workload_bin() -> PathBuf {
    target_bin("spawn-workload")
}

/// A cgroup v2 directory created below this process's own cgroup, removed
/// on drop after killing (by pid) any process of ours still inside.
pub struct TestCgroup {
    pub path: PathBuf,
    /// Path relative to the cgroup2 mount, as spawnscope prints it.
    pub rel: String,
    pub id: u64,
}

/// This process's cgroup in the host's cgroup2 tree: its path from the
/// root, as /proc/self/cgroup gives it, and its id.
pub fn own_cgroup() -> (String, u64) {
    let mount = cgroupfs::find_cgroup2(Path::new(cgroupfs::MOUNTINFO))
        .expect("read mountinfo")
        .expect("this test needs a cgroup2 mount");
    let own = cgroupfs::own_cgroup_v2(Path::new(cgroupfs::SELF_CGROUP)).expect("own cgroup");
    let id = fs::metadata(mount.mount_point.join(own.trim_start_matches('/')))
        .expect("own cgroup's directory")
        .ino();
    (own, id)
}

impl TestCgroup {
    pub fn new(tag: &str) -> Self {
        Self::named(tag, "")
    }

    /// A test cgroup whose name ends in `suffix` (".scope": systemd's naming
    /// then reads it as a unit).
    pub fn named(tag: &str, suffix: &str) -> Self {
        let mount = cgroupfs::find_cgroup2(Path::new(cgroupfs::MOUNTINFO))
            .expect("read mountinfo")
            .expect("this test needs a cgroup2 mount");
        let own = cgroupfs::own_cgroup_v2(Path::new(cgroupfs::SELF_CGROUP)).expect("own cgroup");
        let parent_rel = own.trim_end_matches('/').to_string();
        let name = format!("spawnscope-test-{tag}-{}{suffix}", std::process::id());
        let rel = format!("{parent_rel}/{name}");
        let path = mount.mount_point.join(rel.trim_start_matches('/'));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let id = fs::metadata(&path).unwrap().ino();
        Self { path, rel, id }
    }

    /// A Command whose child moves itself into this cgroup before exec, so
    /// everything it does from exec on is attributed here.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        command_in(&self.path, program)
    }
}

impl TestCgroup {
    /// A short-lived unit below this cgroup: the child cgroup `name` is
    /// created, `/bin/true` runs in it (moved in before its exec), and the
    /// cgroup is removed.
    pub fn run_transient(&self, name: &str) {
        let (mut c, cg) = child_command(&self.path, name, "/bin/true");
        assert!(c.status().unwrap().success());
        remove_cgroup(&cg);
    }
}

/// A Command whose child moves itself into the cgroup directory `dir`
/// before exec, so everything it does from exec on is attributed there.
pub fn command_in(dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let procs = dir.join("cgroup.procs");
    let mut c = Command::new(program);
    // SAFETY: the closure only writes a path prepared before the fork, as
    // pre_exec requires.
    unsafe {
        c.pre_exec(move || fs::write(&procs, b"0"));
    }
    c
}

/// [`command_in`] a new child cgroup `name` of `parent`, made here; and
/// that cgroup's directory (see [`remove_cgroup`]).
pub fn child_command(
    parent: &Path,
    name: &str,
    program: impl AsRef<std::ffi::OsStr>,
) -> (Command, PathBuf) {
    let cg = parent.join(name);
    fs::create_dir(&cg).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.display()));
    (command_in(&cg, program), cg)
}

/// Removes an empty cgroup directory, retrying while the release of its
/// last process trails that process's exit; panics after 5 s.
pub fn remove_cgroup(dir: &Path) {
    let mut tries = 0;
    while let Err(e) = fs::remove_dir(dir) {
        tries += 1;
        assert!(tries < 250, "rmdir {}: {e}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every cgroup directory at and below `dir`, deepest first.
fn cgroup_dirs_bottom_up(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(cgroup_dirs_bottom_up(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

fn procs_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Subtrees (a container's systemd makes its own) go too, deepest
        // first; every process in them was started by this test.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dirs = cgroup_dirs_bottom_up(&self.path);
            let pids: Vec<i32> = dirs.iter().flat_map(|d| procs_in(d)).collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: only processes in this test's own cgroup tree.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // rmdir can race the last exit's cgroup release; retry briefly.
        for _ in 0..100 {
            for d in cgroup_dirs_bottom_up(&self.path) {
                let _ = fs::remove_dir(&d);
            }
            if !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.path.display());
    }
}

/// A running `spawnscope trace --json`.
/// Dropping it (say, when an assertion fails first) kills the tracer, so
/// no probe outlives its test.
pub struct Tracer {
    child: Child,
    /// Each line with the moment the reader thread got it.
    stdout: Option<mpsc::Receiver<(Instant, String)>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Lines already read by [`Tracer::wait_for`]; `finish` returns them too.
    seen: Vec<String>,
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Tracer {
    /// Starts `trace --json EXTRA` and returns once it reports that probes
    /// are attached.
    pub fn start(extra: &[&str]) -> Self {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        Self::start_plain(&args)
    }

    /// Starts `trace ARGS` (human output unless ARGS has --json).
    pub fn start_plain(args: &[&str]) -> Self {
        Self::start_bin(&spawnscope_bin(), args)
    }

    /// [`Tracer::start_plain`] with the spawnscope binary at `bin` (a
    /// release artifact).
    pub fn start_bin(bin: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .arg("trace")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spawnscope");
        let out = child.stdout.take().unwrap();
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut seen = String::new();
            let mut line = String::new();
            while err.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("spawnscope: tracing") {
                    let _ = ready_tx.send(());
                }
                seen.push_str(&line);
                line.clear();
            }
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            seen + &rest
        });
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "spawnscope did not attach within 60 s; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
        Self {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// Reads output lines as they come until a JSON line satisfies `pred`,
    /// and returns it with the instant it arrived (read from the pipe, not
    /// when this call got to it). Panics after `limit`.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Instant) {
        let deadline = Instant::now() + limit;
        let rx = self.stdout.as_ref().expect("not finished");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((at, line)) => {
                    let v = serde_json::from_str::<Value>(&line).ok();
                    self.seen.push(line);
                    if let Some(v) = v.filter(|v| pred(v)) {
                        return (v, at);
                    }
                }
                Err(_) => panic!(
                    "no {what} within {limit:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal`, waits for the exit, and returns (exit code, stdout
    /// JSON lines, stderr).
    pub fn stop_with(self, signal: i32) -> (Option<i32>, Vec<Value>, String) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid(), signal) };
        self.finish()
    }

    /// Waits for a self-terminating trace (`--for`).
    pub fn finish(self) -> (Option<i32>, Vec<Value>, String) {
        let (code, lines, stderr) = self.finish_text();
        let lines = lines
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect();
        (code, lines, stderr)
    }

    /// Sends `signal`, waits, and returns stdout as lines of text.
    pub fn stop_text(self, signal: i32) -> (Option<i32>, Vec<String>, String) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid(), signal) };
        self.finish_text()
    }

    /// Waits for the exit; stdout as lines of text.
    pub fn finish_text(mut self) -> (Option<i32>, Vec<String>, String) {
        let stdout = self.stdout.take().expect("finished once");
        let stderr = self.stderr.take().expect("finished once");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("spawnscope did not exit within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut lines = std::mem::take(&mut self.seen);
        lines.extend(stdout.iter().map(|(_, l)| l));
        (status.code(), lines, stderr.join().unwrap())
    }
}

/// The summary object (the last line) of a JSON trace.
pub fn summary(lines: &[Value]) -> &Value {
    let s = lines.last().expect("no output at all");
    assert_eq!(s["type"], "summary", "last line is not the summary: {s}");
    s
}

/// The event lines of one type ("exec", "exit", "fork") of a JSON trace.
pub fn events_of<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

/// The one event of `kind` whose tgid is `pid`; panics unless exactly one.
pub fn event_for<'a>(lines: &'a [Value], kind: &str, pid: u32) -> &'a Value {
    let found: Vec<&Value> = events_of(lines, kind)
        .into_iter()
        .filter(|e| e["tgid"] == pid)
        .collect();
    assert_eq!(found.len(), 1, "{kind} events for pid {pid}: {found:?}");
    found[0]
}

/// Runs `spawnscope analyze --json FILE` and returns its findings.
pub fn analyze_json(file: &Path) -> Value {
    let out = Command::new(spawnscope_bin())
        .args(["analyze", "--json"])
        .arg(file)
        .output()
        .expect("run spawnscope analyze");
    assert!(
        out.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("analyze --json output")
}

/// The row (of an interval or the summary) holding cgroup `id`.
pub fn row_with_id(report: &Value, id: u64) -> &Value {
    report["rows"]
        .as_array()
        .expect("rows array")
        .iter()
        .find(|r| {
            r["cgroups"]
                .as_array()
                .expect("cgroups array")
                .iter()
                .any(|m| m["ids"].as_array().unwrap().iter().any(|i| *i == id))
        })
        .unwrap_or_else(|| panic!("cgroup id {id} absent from report: {report}"))
}

/// The summary total of the row holding cgroup `id`.
pub fn cgroup_total(summary: &Value, id: u64) -> &Value {
    &row_with_id(summary, id)["total"]
}

/// Rows whose `unit` is `unit`, in container `container` (None: the host).
pub fn unit_rows<'a>(report: &'a Value, unit: &str, container: Option<&str>) -> Vec<&'a Value> {
    report["rows"]
        .as_array()
        .expect("rows array")
        .iter()
        .filter(|r| {
            r["unit"] == unit
                && match container {
                    Some(c) => r["container"]["name"] == c,
                    None => r["container"].is_null(),
                }
        })
        .collect()
}

/// Ids of the loaded BPF programs named like ours. Ids are not reused
/// soon, so they tell this run's programs from a previous run's, which the
/// kernel frees only after an RCU grace period.
pub fn loaded_spawnscope_programs() -> std::collections::BTreeSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        // The kernel keeps 15 characters of a program name.
        .filter(|p| {
            p.name_as_str()
                .is_some_and(|n| n.starts_with("sched_process_"))
        })
        .map(|p| p.id())
        .collect()
}

/// Ids of the BPF programs process `pid` holds (by a program's or a link's
/// descriptor): its own, whatever else is loaded on the host meanwhile.
pub fn programs_held_by(pid: i32) -> std::collections::BTreeSet<u32> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Default::default();
    };
    fds.flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix("prog_id:"))
                .filter_map(|id| id.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Runs `n` short commands in the calling process's own cgroup.
pub fn spawn_true(n: usize) {
    for _ in 0..n {
        let s = Command::new("/bin/true").status().expect("/bin/true");
        assert!(s.success());
    }
}

/// The exact-count scenario: a workload of known shape in a fresh cgroup,
/// traced with `extra` arguments; every counter of that cgroup must match.
/// spawn-workload's arguments for a known mix of spawns, scaled by `k`,
/// and the counters it must produce in its own cgroup. The workload
/// process is moved in before its exec: its exec and its clean exit belong
/// there, its fork to the parent's cgroup.
pub fn known_mix(k: u64) -> (Vec<String>, [(&'static str, u64); 9]) {
    known_mix_threads(k, k)
}

/// [`known_mix`] with `threads` threads.
pub fn known_mix_threads(k: u64, threads: u64) -> (Vec<String>, [(&'static str, u64); 9]) {
    let (clean, failed, killed, fork_only) = (10 * k, 5 * k, 3 * k, 2 * k);
    let args = [
        ("--clean", clean),
        ("--failed", failed),
        ("--killed", killed),
        ("--fork-only", fork_only),
        ("--threads", threads),
    ]
    .iter()
    .flat_map(|(f, n)| [f.to_string(), n.to_string()])
    .collect();
    let expect = [
        ("forks", clean + failed + killed + fork_only),
        ("threads", threads),
        ("execs", 1 + clean + failed),
        ("exit_clean", clean + fork_only + 1),
        ("exit_failed", failed),
        ("exit_signaled", killed),
        ("exit_core_dumped", 0),
        ("exits", clean + failed + killed + fork_only + 1),
        ("thread_exits", threads),
    ];
    (args, expect)
}

pub fn assert_exact_counts(tag: &str, extra: &[&str]) -> Value {
    assert_exact_counts_bin(&spawnscope_bin(), &workload_bin(), tag, extra)
}

/// [`assert_exact_counts`] with the given spawnscope and spawn-workload
/// binaries (release artifacts).
pub fn assert_exact_counts_bin(bin: &Path, workload: &Path, tag: &str, extra: &[&str]) -> Value {
    let cg = TestCgroup::new(tag);
    let mut args = vec!["--json", "--interval", "500ms"];
    args.extend_from_slice(extra);
    let tracer = Tracer::start_bin(bin, &args);

    let (mix, expect) = known_mix(100);
    let status = cg
        .command(workload)
        .args(&mix)
        .status()
        .expect("run workload");
    assert!(
        status.success(),
        "workload reported a child that did not end as asked: {status}"
    );

    let (code, lines, stderr) = tracer.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "spawnscope failed: {stderr}");
    let s = summary(&lines).clone();
    let t = cgroup_total(&s, cg.id);

    for (field, want) in expect {
        assert_eq!(
            t[field], want,
            "{field} for cgroup {} ({}): {t}",
            cg.id, cg.rel
        );
    }
    let row = row_with_id(&s, cg.id);
    // Not a unit: the row is named by the raw path.
    assert_eq!(row["group"], cg.rel.as_str(), "{row}");
    assert_eq!(row["unit"], Value::Null, "{row}");
    assert_eq!(
        row["cgroups"][0]["path"],
        cg.rel.as_str(),
        "cgroup path resolved from the id"
    );
    for stat in ["map_full", "read_failed", "no_layout", "names_lost"] {
        assert_eq!(s["probe"][stat], 0, "probe.{stat}: {s}");
    }
    s
}

/// A cgroup v1 memory directory made for a test, removed on drop.
struct V1Memcg(PathBuf);

impl Drop for V1Memcg {
    fn drop(&mut self) {
        for _ in 0..100 {
            // Children (made by `MemCgroup::command_in`) first.
            for d in cgroup_dirs_bottom_up(&self.0) {
                let _ = fs::remove_dir(&d);
            }
            if !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.0.display());
    }
}

/// A test cgroup with a memory limit: cgroup v2's memory.max where the v2
/// memory controller reaches the test's cgroup, else a cgroup v1 memory
/// child of the test process's own memory cgroup (the hybrid layout).
pub struct MemCgroup {
    pub cg: TestCgroup,
    v1: Option<V1Memcg>,
    /// Path in the memory-accounting hierarchy, as spawnscope names it.
    pub mem_rel: String,
}

impl MemCgroup {
    /// None (after a loud skip) when no memory controller is available.
    pub fn new(tag: &str, limit: u64) -> Option<Self> {
        let cg = TestCgroup::new(tag);
        let v2_max = cg.path.join("memory.max");
        if v2_max.exists() {
            fs::write(&v2_max, limit.to_string()).expect("write memory.max");
            let mem_rel = cg.rel.clone();
            return Some(Self {
                cg,
                v1: None,
                mem_rel,
            });
        }
        let mounts = cgroupfs::cgroup_mounts(Path::new(cgroupfs::MOUNTINFO)).ok()?;
        let Some(m) = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "memory"))
        else {
            skip(&format!(
                "{tag}: no memory controller (cgroup v2 memory.max or v1 memory)"
            ));
            return None;
        };
        let own = fs::read_to_string("/proc/self/cgroup").expect("own cgroups");
        let parent = own
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
                ctrl.split(',')
                    .any(|c| c == "memory")
                    .then(|| path.to_string())
            })
            .expect("a v1 memory line in /proc/self/cgroup");
        let name = cg.path.file_name().unwrap().to_string_lossy().into_owned();
        let mem_rel = format!("{}/{name}", parent.trim_end_matches('/'));
        let dir = m.mount_point.join(mem_rel.trim_start_matches('/'));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let v1 = V1Memcg(dir);
        fs::write(v1.0.join("memory.limit_in_bytes"), limit.to_string()).expect("set v1 limit");
        Some(Self {
            cg,
            v1: Some(v1),
            mem_rel,
        })
    }

    /// True when the limit is a cgroup v1 memory cgroup's.
    pub fn is_v1(&self) -> bool {
        self.v1.is_some()
    }

    /// A command whose child joins a new child cgroup `name` of this one
    /// (in both hierarchies), below the limit; returns it with the child's
    /// path in the memory hierarchy.
    pub fn command_in(
        &self,
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> (Command, String) {
        let mut c = Command::new(program);
        let v2 = self.cg.path.join(name);
        fs::create_dir(&v2).unwrap_or_else(|e| panic!("mkdir {}: {e}", v2.display()));
        let mut joins = vec![v2.join("cgroup.procs")];
        let mem_rel = format!("{}/{name}", self.mem_rel);
        match &self.v1 {
            Some(v1) => {
                let d = v1.0.join(name);
                fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
                joins.push(d.join("cgroup.procs"));
            }
            None => fs::write(self.cg.path.join("cgroup.subtree_control"), "+memory")
                .expect("delegate memory to the child"),
        }
        // SAFETY: the closure only writes files, as pre_exec allows.
        unsafe {
            c.pre_exec(move || {
                for p in &joins {
                    fs::write(p, b"0")?;
                }
                Ok(())
            });
        }
        (c, mem_rel)
    }

    /// Moves a running process `pid` into a new child `name` of the v1
    /// memory cgroup (false on cgroup v2): the limit still applies, and the
    /// kernel names the child as the task's memory cgroup, as it names a
    /// unit's own cgroup on a host where systemd runs the v1 memory
    /// hierarchy.
    pub fn adopt_v1_as(&self, pid: i32, name: &str) -> bool {
        let Some(v1) = &self.v1 else {
            return false;
        };
        let dir = v1.0.join(name);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let procs = dir.join("cgroup.procs");
        fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", procs.display()));
        true
    }

    /// A command whose child joins both the test cgroup and the memory one.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.cg.command(program);
        if let Some(v1) = &self.v1 {
            let procs = v1.0.join("cgroup.procs");
            // SAFETY: the closure only writes a file, as pre_exec allows.
            unsafe {
                c.pre_exec(move || fs::write(&procs, b"0"));
            }
        }
        c
    }
}

/// A benchmark's section of BENCHMARKS.md: written to the file named by
/// `SPAWNSCOPE_BENCH_OUT` when `cargo xtask bench` runs the benchmark.
pub fn bench_report(markdown: &str) {
    if let Some(path) = std::env::var_os("SPAWNSCOPE_BENCH_OUT") {
        fs::write(&path, markdown).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
}

/// Voluntary context switches of `pid`'s main thread: each sleep it woke
/// from.
pub fn main_thread_wakeups(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The running kernel as the tests must expect it: its version (uname) and
/// what its BTF says, so that expectations follow the kernel instead of
/// assuming the one this suite was written on.
pub struct RunningKernel {
    pub release: String,
    /// (major, minor) from the release string.
    pub version: (u32, u32),
    pub btf: spawnscope::btf::Btf,
}

impl RunningKernel {
    /// None after a loud skip on a kernel without BTF.
    pub fn get(test: &str) -> Option<Self> {
        let path = Path::new(spawnscope::btf::VMLINUX_BTF);
        if !path.exists() {
            skip(&format!(
                "{test}: {} absent (kernel without CONFIG_DEBUG_INFO_BTF)",
                path.display()
            ));
            return None;
        }
        let release = fs::read_to_string("/proc/sys/kernel/osrelease")
            .expect("/proc/sys/kernel/osrelease")
            .trim()
            .to_string();
        let mut nums = release.split(|c: char| !c.is_ascii_digit()).map(|n| {
            n.parse::<u32>()
                .expect("kernel release starts with its version")
        });
        let version = (nums.next().unwrap(), nums.next().unwrap());
        let btf = spawnscope::btf::Btf::from_file(path).expect("parse the kernel's BTF");
        Some(Self {
            release,
            version,
            btf,
        })
    }

    /// Whether `sched_process_exit` passes `group_dead` (upstream since
    /// 6.16; a distribution may carry it earlier, which BTF shows), as the
    /// layout spawnscope loads with reads it.
    pub fn passes_group_dead(&self) -> bool {
        let (_, flavour) =
            spawnscope::layout::from_btf(&self.btf).expect("the running kernel's layout");
        let passes = flavour == spawnscope::layout::ExitFlavour::GroupDeadArg;
        assert!(
            passes || self.version < (6, 16),
            "{}: 6.16+ without group_dead in sched_process_exit",
            self.release
        );
        passes
    }

    /// The exit program `trace --exit-program auto` picks here, as the
    /// summary's `exit_program` names it.
    pub fn auto_exit_program(&self) -> &'static str {
        if self.passes_group_dead() {
            "group_dead"
        } else {
            "legacy"
        }
    }
}
