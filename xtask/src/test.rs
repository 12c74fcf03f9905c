//! `cargo xtask test`: lint, build, then every test, and a last line that
//! says what ran. libtest reports a skipped test as `ok`, so the tests
//! record each skip as a file (see `skip` in the tests crate); this counts
//! them, names them, and fails the run on any skip unless `--allow-skips`.

use std::{collections::BTreeSet, path::Path, time::Instant};

use crate::{
    noisy,
    util::{Fail, cmd, run_checked, step, workspace_root},
};

pub const USAGE: &str = "\
usage: cargo xtask test [--allow-skips] [--noisy]

  --allow-skips  a test that skips (no root, a missing tool) does not fail
                 the run; the skips are still counted and named
  --noisy        run the tests while the host also runs a CPU hog on every
                 CPU, an unrelated crash loop and a Debian rootfs install
                 in a loop (root; all three in cgroups of their own)";

#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub allow_skips: bool,
    pub noisy: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, Fail> {
        let mut o = Self::default();
        for a in args {
            match a.as_str() {
                "--allow-skips" => o.allow_skips = true,
                "--noisy" => o.noisy = true,
                "-h" | "--help" => return Err(Fail(USAGE.to_string())),
                other => return Err(Fail(format!("unknown option {other:?}\n{USAGE}"))),
            }
        }
        Ok(o)
    }
}

/// What libtest's `test result:` lines add up to, and the tests it named
/// as failed.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub failures: Vec<String>,
}

impl Tally {
    /// Folds one line of libtest's output in.
    pub fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("test result: ") {
            // "ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ..."
            for part in rest.split(['.', ';']) {
                let mut w = part.split_whitespace();
                let (Some(n), Some(what)) = (w.next(), w.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            self.failures.push(name.to_string());
        }
    }
}

/// The skips recorded in `dir`, one line each ("binary::test: why").
pub fn read_skips(dir: &Path) -> Result<BTreeSet<String>, Fail> {
    let mut out = BTreeSet::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Fail(format!("{}: {e}", dir.display()))),
    };
    for e in rd {
        let p = e
            .map_err(|e| Fail(format!("{}: {e}", dir.display())))?
            .path();
        let text =
            std::fs::read_to_string(&p).map_err(|e| Fail(format!("{}: {e}", p.display())))?;
        out.extend(text.lines().map(str::to_string));
    }
    Ok(out)
}

/// The closing line: "N passed, M skipped, ..." with the skips named.
pub fn summary(t: &Tally, skips: &BTreeSet<String>, secs: f64) -> String {
    let skipped = skips.len() as u64;
    // A skipped test returned early, so libtest counted it as passed;
    // under CI=true it failed instead, and is counted there.
    let passed_skips = skips
        .iter()
        .filter(|k| !t.failures.iter().any(|f| skip_test(k) == Some(f.as_str())))
        .count() as u64;
    let passed = t.passed.saturating_sub(passed_skips);
    let mut s = format!(
        "{passed} passed, {} failed, {skipped} skipped, {} ignored (benchmarks: cargo xtask bench) in {secs:.0} s",
        t.failed, t.ignored
    );
    for f in &t.failures {
        s.push_str(&format!("\n  failed: {f}"));
    }
    for k in skips {
        s.push_str(&format!("\n  skipped: {k}"));
    }
    s
}

/// The test a skip line ("binary::test: why") names.
fn skip_test(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("::")?;
    rest.split_once(": ").map(|(t, _)| t)
}

/// Seconds each fuzz target runs in the suite: enough to prove that it
/// builds, loads its seeds and runs; finding bugs takes the longer runs
/// of `cargo xtask fuzz`.
const FUZZ_SMOKE_S: u64 = 20;

/// Builds every fuzz target and runs each for [`FUZZ_SMOKE_S`], all at
/// once. A target that does not
/// build fails the run here; one that crashes is a failed test in the
/// tally. Without cargo-fuzz the smoke is a skip, and under CI=true a
/// failure.
fn fuzz_smoke(skip_dir: &Path) -> Result<Vec<crate::fuzz::Outcome>, Fail> {
    step("fuzz: smoke of every target");
    if !crate::fuzz::have_cargo_fuzz() {
        let why = "cargo-fuzz is not installed (cargo xtask test installs it; did that fail?)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            return Err(Fail(format!("fuzz smoke: {why}")));
        }
        std::fs::create_dir_all(skip_dir)
            .and_then(|()| {
                std::fs::write(
                    skip_dir.join("xtask-fuzz"),
                    format!("xtask::fuzz_smoke: {why}\n"),
                )
            })
            .map_err(|e| Fail(format!("{}: {e}", skip_dir.display())))?;
        step(&format!("fuzz: skipped: {why}"));
        return Ok(Vec::new());
    }
    let t0 = Instant::now();
    crate::fuzz::build()?;
    // All at once: the smoke proves that each target builds, loads its
    // seeds and runs without a crash, which a share of a CPU does as well
    // as a whole one, in a sixth of the time.
    let out = crate::fuzz::run_targets(
        &crate::fuzz::TARGETS,
        FUZZ_SMOKE_S,
        crate::fuzz::TARGETS.len(),
    )?;
    for p in out.iter().filter_map(crate::fuzz::Outcome::problem) {
        step(&p);
    }
    step(&format!(
        "fuzz: smoke done ({:.0} s)",
        t0.elapsed().as_secs_f64()
    ));
    Ok(out)
}

pub fn run(opts: &Options) -> Result<(), Fail> {
    let t0 = Instant::now();
    if opts.noisy {
        noisy::require_root()?;
    }
    crate::setup::run()?;
    crate::setup::test_deps()?;
    step("lint: cargo fmt --check");
    run_checked(cmd("cargo").args(["fmt", "--all", "--check"]))?;
    // The fuzz crate is a workspace of its own, which --all does not reach.
    run_checked(cmd("cargo").args(["fmt", "--check", "--manifest-path", "fuzz/Cargo.toml"]))?;
    step("lint: clippy (host crates)");
    crate::cargo_host("clippy", &["--all-targets", "--", "-D", "warnings"])?;
    step("lint: clippy (probes, bpfel-unknown-none)");
    run_checked(
        cmd("cargo")
            .args([
                &format!("+{}", crate::setup::NIGHTLY),
                "clippy",
                "--package",
                "spawnscope-probe",
                "--package",
                "spawnscope-limits-probe",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ])
            .env(
                "CARGO_TARGET_DIR",
                workspace_root().join("target/probe-clippy"),
            ),
    )?;
    let skip_dir = workspace_root().join("target/test-skips");
    match std::fs::remove_dir_all(&skip_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Fail(format!("{}: {e}", skip_dir.display()))),
    }
    // The release artifacts are what the dist tests prove on real systems;
    // rebuilding them proves that they are reproducible.
    crate::dist::run(&crate::dist::Options {
        out: workspace_root().join("target/dist"),
        check_reproducible: true,
    })?;
    step("build: spawn-workload, static, for each release architecture");
    crate::dist::build_static_workloads()?;
    // The privileged tests run the real binary; build it first so they test
    // this tree, not a stale copy.
    step("build: spawnscope (debug) and test helpers");
    crate::cargo_host("build", &["--bins"])?;
    let neighbours = if opts.noisy {
        step("noisy: starting a CPU hog, a crash loop and a rootfs install loop");
        Some(noisy::Neighbours::start()?)
    } else {
        None
    };
    step("test: unit, CLI and privileged integration tests, and the fuzz smoke beside them");
    // The fuzz targets' build (AddressSanitizer, every dependency) is the
    // longest single step left, and the tests mostly wait: it runs beside
    // them at a lower priority, on the CPU time they leave.
    let fuzz = {
        let skip_dir = skip_dir.clone();
        std::thread::spawn(move || {
            // SAFETY: setpriority on the calling thread (who 0 with
            // PRIO_PROCESS is the caller's thread id on Linux); the
            // processes it starts inherit the value.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            fuzz_smoke(&skip_dir)
        })
    };
    let tests = crate::lanes::run_tests(&skip_dir);
    let fuzzed = fuzz
        .join()
        .map_err(|_| Fail("the fuzz smoke's thread panicked".into()))??;
    let (ok, mut tally) = tests?;
    for o in &fuzzed {
        match o.problem() {
            None => tally.passed += 1,
            Some(p) => {
                tally.failed += 1;
                tally.failures.push(format!("fuzz::{} ({p})", o.target));
            }
        }
    }
    let noise = neighbours.map(|n| {
        step("noisy: stopping the neighbours");
        n.stop()
    });
    let skips = read_skips(&skip_dir)?;
    let line = summary(&tally, &skips, t0.elapsed().as_secs_f64());
    step(&line);
    if let Some(noise) = noise {
        // A run whose noise did not run proves nothing about noise.
        step(&format!("noisy: {}", noise?));
    }
    if tally.failed > 0 {
        return Err(Fail(format!("{} test(s) failed", tally.failed)));
    }
    if !ok {
        return Err(Fail("cargo test failed (see above)".into()));
    }
    if !skips.is_empty() && !opts.allow_skips {
        return Err(Fail(format!(
            "{} test(s) skipped, so part of the suite did not run; fix what they name, or \
             pass --allow-skips to accept that",
            skips.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_adds_every_result_line_and_names_failures() {
        let mut t = Tally::default();
        for l in [
            "running 3 tests",
            "test a::one ... ok",
            "test a::two ... FAILED",
            "test a::three ... ignored, a benchmark",
            "test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.20s",
        ] {
            t.line(l);
        }
        assert_eq!(
            t,
            Tally {
                passed: 13,
                failed: 1,
                ignored: 1,
                failures: vec!["a::two".into()],
            }
        );
    }

    #[test]
    fn skipped_tests_are_not_counted_as_passed() {
        let t = Tally {
            passed: 10,
            failed: 0,
            ignored: 2,
            failures: vec![],
        };
        let skips: BTreeSet<String> = ["caps_drop::dropping_capabilities_leaves_none: needs root"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            summary(&t, &skips, 61.4),
            "9 passed, 0 failed, 1 skipped, 2 ignored (benchmarks: cargo xtask bench) in 61 s\n  \
             skipped: caps_drop::dropping_capabilities_leaves_none: needs root"
        );
    }

    #[test]
    fn a_skip_that_failed_under_ci_is_not_taken_from_the_passed() {
        let t = Tally {
            passed: 10,
            failed: 1,
            ignored: 0,
            failures: vec!["dropping_capabilities_leaves_none".into()],
        };
        let skips: BTreeSet<String> = ["caps_drop::dropping_capabilities_leaves_none: needs root"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(
            summary(&t, &skips, 1.0).starts_with("10 passed, 1 failed, 1 skipped,"),
            "{}",
            summary(&t, &skips, 1.0)
        );
    }

    #[test]
    fn skips_are_read_one_per_line_from_every_file() {
        let d = std::env::temp_dir().join(format!("xtask-skips-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a-1-0"), "a::x: no root\n").unwrap();
        std::fs::write(d.join("b-2-0"), "b::y: no qemu\n").unwrap();
        let got = read_skips(&d).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            ["a::x: no root", "b::y: no qemu"]
        );
        assert!(read_skips(&d).unwrap().is_empty(), "absent: none");
    }

    #[test]
    fn options_parse() {
        let o = Options::parse(&["--noisy".into(), "--allow-skips".into()]).unwrap();
        assert_eq!(
            o,
            Options {
                allow_skips: true,
                noisy: true
            }
        );
        assert!(Options::parse(&["--fast".into()]).is_err());
    }
}
