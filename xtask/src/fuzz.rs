//! `cargo xtask fuzz`: the libFuzzer targets in fuzz/ (cargo-fuzz, on the
//! pinned nightly), one per parser of input spawnscope does not control.
//! Each run starts from the committed seeds, in a scratch corpus under
//! target/fuzz/ so the repository stays clean, and ends with libFuzzer's
//! own figures: executions per second, coverage, corpus size, crashes.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::Instant,
};

use crate::util::{Fail, cmd, run_checked, step, workspace_root};

pub const USAGE: &str = "\
usage: cargo xtask fuzz [--seconds N] [TARGET]

  Builds every fuzz target (cargo-fuzz, libFuzzer, the pinned nightly),
  then runs TARGET, or each target in turn, for N seconds (default 60),
  starting from the seeds in fuzz/corpus/TARGET (with the dictionary in
  fuzz/dict/ of a JSON, TOML or HTTP input). Prints per target the
  executions per second, libFuzzer's coverage (cov, ft), the corpus size
  and the crashes; fails on any crash, timeout or out-of-memory, naming
  the input that caused it.

targets:
  recording       trace --record files, as analyze and export read them
  export          the same, rendered as export renders them (slow per input)
  sentinel_state  the sentinel's state file
  config          the sentinel's TOML configuration
  btf             kernel BTF (--btf FILE)
  mountinfo       /proc/self/mountinfo
  proc_cgroup     /proc/<pid>/cgroup
  unit_name       cgroup path -> systemd unit, slice, user, container
  procfs          meminfo, pressure/memory, slabinfo, statm, stat
  cgroupfs        memory.current/max/high/stat/events/pressure (v1, v2)
  journal         journal files (postmortem)
  http            requests to the sentinel's /metrics endpoint";

/// The targets, as fuzz/Cargo.toml names its binaries.
pub const TARGETS: [&str; 12] = [
    "recording",
    "export",
    "sentinel_state",
    "config",
    "btf",
    "mountinfo",
    "proc_cgroup",
    "unit_name",
    "procfs",
    "cgroupfs",
    "journal",
    "http",
];

/// What one execution may take before libFuzzer calls it a hang, and
/// the memory a process may reach before it calls it out of memory: a
/// parser that allocates what a length field says is a bug too.
const TIMEOUT_S: u32 = 10;
const RSS_LIMIT_MB: u32 = 2048;

#[derive(Debug, PartialEq)]
pub struct Options {
    pub seconds: u64,
    pub target: Option<String>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, Fail> {
        let mut o = Options {
            seconds: 60,
            target: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => {
                    let v = it
                        .next()
                        .ok_or_else(|| Fail(format!("--seconds needs a number\n{USAGE}")))?;
                    o.seconds =
                        v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                            Fail(format!("--seconds {v:?}: not a positive number"))
                        })?;
                }
                "-h" | "--help" => return Err(Fail(USAGE.to_string())),
                t if t.starts_with('-') => {
                    return Err(Fail(format!("unknown option {t:?}\n{USAGE}")));
                }
                t if o.target.is_some() => {
                    return Err(Fail(format!("one target at most, got {t:?} too")));
                }
                t if TARGETS.contains(&t) => o.target = Some(t.to_string()),
                t => {
                    return Err(Fail(format!(
                        "unknown fuzz target {t:?} (targets: {})",
                        TARGETS.join(", ")
                    )));
                }
            }
        }
        Ok(o)
    }
}

/// `cargo xtask fuzz`.
pub fn run(o: &Options) -> Result<(), Fail> {
    crate::setup::run()?;
    crate::setup::ensure_cargo_fuzz()?;
    require_cargo_fuzz()?;
    build()?;
    let targets: Vec<&str> = match &o.target {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    let results = run_targets(&targets, o.seconds, 1)?;
    let bad: Vec<String> = results.iter().filter_map(|r| r.problem()).collect();
    if bad.is_empty() {
        step(&format!("fuzz: {} target(s), no crashes", results.len()));
        Ok(())
    } else {
        Err(Fail(bad.join("\n")))
    }
}

/// Fails with what to do when `cargo fuzz` cannot run.
pub fn require_cargo_fuzz() -> Result<(), Fail> {
    if have_cargo_fuzz() {
        Ok(())
    } else {
        Err(Fail(
            "cargo-fuzz is not installed: run `cargo xtask setup`, or `cargo install cargo-fuzz`"
                .into(),
        ))
    }
}

pub fn have_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn fuzz_target_dir() -> PathBuf {
    workspace_root().join("fuzz/target")
}

fn binary(target: &str) -> PathBuf {
    fuzz_target_dir()
        .join("x86_64-unknown-linux-gnu/release")
        .join(target)
}

/// Builds every target in one cargo invocation: release, with debug
/// assertions and overflow checks (an overflow on odd input is a bug),
/// AddressSanitizer and libFuzzer's coverage instrumentation.
pub fn build() -> Result<(), Fail> {
    let t0 = Instant::now();
    step("fuzz: building every target (cargo fuzz build)");
    let nightly = format!("+{}", crate::setup::NIGHTLY);
    run_checked(
        cmd("cargo")
            .args([nightly.as_str(), "fuzz", "build", "--debug-assertions"])
            .arg("--target-dir")
            .arg(fuzz_target_dir()),
    )?;
    step(&format!(
        "fuzz: targets built ({:.0} s)",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// What one run of a target came to.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub target: String,
    pub seconds: f64,
    pub runs: Option<u64>,
    pub exec_per_s: Option<u64>,
    pub cov: Option<u64>,
    pub ft: Option<u64>,
    pub corpus_units: Option<u64>,
    pub corpus_size: Option<String>,
    pub peak_rss_mb: Option<u64>,
    /// Crash, timeout or out-of-memory: what libFuzzer said, and the
    /// input it saved.
    pub crash: Option<(String, Option<String>)>,
    /// Where the run's output is.
    pub log: PathBuf,
}

impl Outcome {
    /// Reads libFuzzer's output: the last status line (`#N DONE cov: …`
    /// or the last `#N … cov:` before a crash), the `stat::` lines of
    /// -print_final_stats, and what a crash left.
    pub fn parse(target: &str, out: &str) -> Self {
        let mut o = Outcome {
            target: target.to_string(),
            ..Outcome::default()
        };
        let num = |s: &str| s.trim().parse::<u64>().ok();
        for line in out.lines() {
            if line.starts_with('#') && line.contains(" cov: ") {
                let mut w = line.split_whitespace().peekable();
                while let Some(word) = w.next() {
                    let value = w.peek().copied().unwrap_or("");
                    match word {
                        "cov:" => o.cov = num(value),
                        "ft:" => o.ft = num(value),
                        "exec/s:" => o.exec_per_s = num(value),
                        "corp:" => {
                            if let Some((n, size)) = value.split_once('/') {
                                o.corpus_units = num(n);
                                o.corpus_size = Some(size.to_string());
                            }
                        }
                        _ => {}
                    }
                }
            } else if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
                o.runs = num(v);
            } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
                o.exec_per_s = num(v);
            } else if let Some(v) = line.strip_prefix("stat::peak_rss_mb:") {
                o.peak_rss_mb = num(v);
            } else if let Some(what) = crash_kind(line) {
                o.crash.get_or_insert((what, None));
            } else if let Some(rest) = line.split_once("Test unit written to ") {
                let path = rest.1.trim().to_string();
                match &mut o.crash {
                    Some((_, p)) => *p = Some(path),
                    None => o.crash = Some(("crash".into(), Some(path))),
                }
            }
        }
        o
    }

    /// One line: the figures, or the crash.
    pub fn line(&self) -> String {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let mut s = format!(
            "{}: {} exec/s, cov {}, ft {}, corpus {} ({}), {} runs in {:.0} s",
            self.target,
            n(self.exec_per_s),
            n(self.cov),
            n(self.ft),
            n(self.corpus_units),
            self.corpus_size.as_deref().unwrap_or("?"),
            n(self.runs),
            self.seconds,
        );
        if let Some(rss) = self.peak_rss_mb {
            s.push_str(&format!(", peak RSS {rss} MB"));
        }
        match &self.crash {
            None => s.push_str(", 0 crashes"),
            Some((what, _)) => s.push_str(&format!(", 1 crash ({what})")),
        }
        s
    }

    /// Why this run failed, in one line naming the input; None if it
    /// did not.
    pub fn problem(&self) -> Option<String> {
        let (what, input) = self.crash.as_ref()?;
        Some(format!(
            "fuzz target {} found a {what}: input {} (log {}); reproduce with `cargo +{} fuzz run {} INPUT`",
            self.target,
            input.as_deref().unwrap_or("not saved"),
            self.log.display(),
            crate::setup::NIGHTLY,
            self.target,
        ))
    }
}

/// What libFuzzer (or the sanitizer) says when an input failed.
fn crash_kind(line: &str) -> Option<String> {
    let kinds = [
        ("ERROR: libFuzzer: timeout", "timeout"),
        ("ALARM: working on the last Unit for", "timeout"),
        ("ERROR: libFuzzer: out-of-memory", "out-of-memory"),
        ("ERROR: libFuzzer: deadly signal", "crash"),
        ("ERROR: libFuzzer: fuzz target exited", "exit"),
        ("ERROR: AddressSanitizer", "memory error"),
        ("ERROR: LeakSanitizer", "leak"),
    ];
    kinds
        .iter()
        .find(|(needle, _)| line.contains(needle))
        .map(|(_, kind)| kind.to_string())
}

/// The libFuzzer dictionary in fuzz/dict/ of a target whose input has a
/// syntax (JSON, TOML, HTTP): its tokens let mutations get past the
/// tokenizer.
pub fn dict(target: &str) -> Option<&'static str> {
    match target {
        "recording" | "export" | "sentinel_state" => Some("json.dict"),
        "config" => Some("toml.dict"),
        "http" => Some("http.dict"),
        _ => None,
    }
}

/// Runs `target` for `seconds` from its seeds, in a scratch corpus.
fn run_one(target: &str, seconds: u64) -> Result<Outcome, Fail> {
    let bin = binary(target);
    if !bin.is_file() {
        return Err(Fail(format!(
            "{}: not built (cargo fuzz build failed?)",
            bin.display()
        )));
    }
    let seeds = workspace_root().join("fuzz/corpus").join(target);
    let dir = workspace_root().join("target/fuzz").join(target);
    let corpus = dir.join("corpus");
    let artifacts = dir.join("artifacts");
    // On tmpfs where there is one: the targets that read a path rewrite a
    // file per input, and ext4 writes a truncated file's data back when
    // it is closed, which made those targets up to 8 times slower.
    let tmp = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!(
            "/dev/shm/spawnscope-fuzz-{target}-{}",
            std::process::id()
        ))
    } else {
        dir.join("tmp")
    };
    for d in [&corpus, &tmp] {
        fresh_dir(d)?;
    }
    fs::create_dir_all(&artifacts).map_err(|e| Fail(format!("{}: {e}", artifacts.display())))?;
    let log = dir.join("log");
    let log_file = fs::File::create(&log).map_err(|e| Fail(format!("{}: {e}", log.display())))?;
    let t0 = Instant::now();
    let mut c = Command::new(&bin);
    if let Some(d) = dict(target) {
        c.arg(format!(
            "-dict={}",
            workspace_root().join("fuzz/dict").join(d).display()
        ));
    }
    let status = c
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={TIMEOUT_S}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // New inputs go to the first directory only: the seeds stay as
        // committed.
        .arg(&corpus)
        .arg(&seeds)
        // The targets that read paths write their inputs here.
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .map_err(|e| Fail(format!("cannot run {}: {e}", bin.display())))?;
    let seconds = t0.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&tmp);
    let out = fs::read_to_string(&log).map_err(|e| Fail(format!("{}: {e}", log.display())))?;
    let mut o = Outcome::parse(target, &out);
    o.seconds = seconds;
    o.log = log;
    if !status.success() && o.crash.is_none() {
        let last = out.lines().last().unwrap_or("no output");
        o.crash = Some((format!("failure ({status}: {last})"), None));
    }
    Ok(o)
}

fn fresh_dir(d: &Path) -> Result<(), Fail> {
    match fs::remove_dir_all(d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Fail(format!("{}: {e}", d.display()))),
    }
    fs::create_dir_all(d).map_err(|e| Fail(format!("{}: {e}", d.display())))
}

/// Runs `targets`, `jobs` at a time, printing each one's line as it ends;
/// the outcomes in `targets`' order.
pub fn run_targets(targets: &[&str], seconds: u64, jobs: usize) -> Result<Vec<Outcome>, Fail> {
    step(&format!(
        "fuzz: {} target(s), {seconds} s each, {jobs} at a time",
        targets.len()
    ));
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(usize, Result<Outcome, Fail>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("not poisoned");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(t) = targets.get(i) else { break };
                    let r = run_one(t, seconds);
                    if let Ok(o) = &r {
                        step(&format!("fuzz: {}", o.line()));
                    }
                    results.lock().expect("not poisoned").push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("not poisoned");
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = "\
INFO: Seed: 1234
INFO: Loaded 1 modules   (41781 inline 8-bit counters): 41781 [0x1, 0x2),
#2\tINITED cov: 812 ft: 813 corp: 3/21Kb exec/s: 0 rss: 48Mb
#65536\tpulse  cov: 1190 ft: 2903 corp: 120/34Kb lim: 4096 exec/s: 21845 rss: 61Mb
#802816\tDONE   cov: 1203 ft: 3057 corp: 131/39Kb lim: 4096 exec/s: 13158 rss: 62Mb
Done 802816 runs in 61 second(s)
stat::number_of_executed_units: 802816
stat::average_exec_per_sec:     13160
stat::new_units_added:          128
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              62
";

    #[test]
    fn a_clean_run_gives_its_figures() {
        let o = Outcome::parse("config", DONE);
        assert_eq!(
            (o.cov, o.ft, o.exec_per_s, o.runs, o.corpus_units),
            (Some(1203), Some(3057), Some(13160), Some(802816), Some(131))
        );
        assert_eq!(o.corpus_size.as_deref(), Some("39Kb"));
        assert_eq!(o.peak_rss_mb, Some(62));
        assert_eq!(o.crash, None);
        assert!(o.problem().is_none());
        assert!(o.line().ends_with(", 0 crashes"), "{}", o.line());
    }

    #[test]
    fn a_crash_names_its_input() {
        let out = "\
#1024\tpulse  cov: 500 ft: 700 corp: 20/3Kb exec/s: 512 rss: 40Mb
thread '<unnamed>' panicked at userspace/src/export/mod.rs:145:21:
byte index 12 is not a char boundary
==4242== ERROR: libFuzzer: deadly signal
    #0 0x55 in __sanitizer_print_stack_trace
MS: 1 ChangeByte-; base unit: 0
artifact_prefix='/w/target/fuzz/recording/artifacts/'; Test unit written to /w/target/fuzz/recording/artifacts/crash-abc
";
        let o = Outcome::parse("recording", out);
        assert_eq!(
            o.crash,
            Some((
                "crash".into(),
                Some("/w/target/fuzz/recording/artifacts/crash-abc".into())
            ))
        );
        assert_eq!(o.cov, Some(500));
        let p = o.problem().unwrap();
        assert!(
            p.contains("found a crash: input /w/target/fuzz/recording/artifacts/crash-abc"),
            "{p}"
        );
    }

    #[test]
    fn a_timeout_and_an_oom_are_failures_too() {
        let t = Outcome::parse(
            "journal",
            "ALARM: working on the last Unit for 11 seconds\n==1== ERROR: libFuzzer: timeout after 11 seconds\nTest unit written to /a/timeout-1\n",
        );
        assert_eq!(
            t.crash,
            Some(("timeout".into(), Some("/a/timeout-1".into())))
        );
        let m = Outcome::parse(
            "btf",
            "==1== ERROR: libFuzzer: out-of-memory (malloc(4294967296))\nTest unit written to /a/oom-1\n",
        );
        assert_eq!(
            m.crash,
            Some(("out-of-memory".into(), Some("/a/oom-1".into())))
        );
    }

    #[test]
    fn options_parse() {
        assert_eq!(
            Options::parse(&[]).unwrap(),
            Options {
                seconds: 60,
                target: None
            }
        );
        assert_eq!(
            Options::parse(&["--seconds".into(), "5".into(), "http".into()]).unwrap(),
            Options {
                seconds: 5,
                target: Some("http".into())
            }
        );
        let e = Options::parse(&["nosuch".into()]).unwrap_err().0;
        assert!(
            e.starts_with("unknown fuzz target \"nosuch\" (targets: recording,"),
            "{e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(Options::parse(&["--seconds".into(), "0".into()]).is_err());
        assert!(Options::parse(&["--seconds".into()]).is_err());
        assert!(Options::parse(&["http".into(), "btf".into()]).is_err());
    }

    #[test]
    fn every_target_has_a_binary_and_seeds() {
        for d in TARGETS.iter().filter_map(|t| dict(t)) {
            assert!(workspace_root().join("fuzz/dict").join(d).is_file(), "{d}");
        }
        let manifest = fs::read_to_string(workspace_root().join("fuzz/Cargo.toml")).unwrap();
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{t}\"")),
                "{t} not in fuzz/Cargo.toml"
            );
            let seeds = workspace_root().join("fuzz/corpus").join(t);
            assert!(
                fs::read_dir(&seeds).is_ok_and(|mut d| d.next().is_some()),
                "no seeds in {}",
                seeds.display()
            );
        }
    }
}
