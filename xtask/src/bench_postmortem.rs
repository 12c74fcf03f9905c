//! `cargo xtask bench postmortem`: `spawnscope postmortem` over the
//! incident's journal at full size (1.26 M entries, written by
//! systemd-journal-remote), against the floor of reading the same files:
//! `journalctl -o export > /dev/null`. Wall time and peak RSS of each, runs
//! interleaved.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use crate::{
    bench::{Section, median},
    util::{Fail, step},
};

const RUNS: usize = 3;

/// Runs `c` with stdout to /dev/null; its wall time (s) and peak RSS (KiB).
fn measure(c: &mut Command) -> Result<(f64, u64), Fail> {
    let t0 = Instant::now();
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail(format!("cannot start {c:?}: {e}")))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers; the Child is
    // not waited for again (it is only dropped).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let secs = t0.elapsed().as_secs_f64();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(Fail(format!("{c:?} failed (status {status}): {err}")));
    }
    Ok((secs, ru.ru_maxrss as u64))
}

/// `release`: where the release build's helper binaries are; `bin`: the
/// spawnscope measured, the static binary as it ships.
pub fn postmortem(release: &Path, bin: &Path) -> Result<Section, Fail> {
    let dir = tempfile_dir()?;
    step("bench postmortem: the incident's journal at full size (systemd-journal-remote)");
    let out = Command::new(release.join("incident-journal"))
        .arg(&dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Fail(format!("cannot run incident-journal: {e}")))?;
    if !out.status.success() {
        return Err(Fail(format!("incident-journal failed: {}", out.status)));
    }
    let truth: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Fail(format!("incident-journal printed no JSON: {e}")))?;
    let entries = truth["entries"]
        .as_u64()
        .ok_or_else(|| Fail("incident-journal: no entries count".into()))?;
    let bytes: u64 = std::fs::read_dir(&dir)
        .map_err(|e| Fail(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let (mut jt, mut jr, mut pt, mut pr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        step(&format!("bench postmortem: run {}/{RUNS}", i + 1));
        let (t, rss) = measure(
            Command::new("journalctl")
                .arg("--directory")
                .arg(&dir)
                .args(["-o", "export", "--no-pager"]),
        )?;
        jt.push(t);
        jr.push(rss as f64);
        let (t, rss) = measure(
            Command::new(bin)
                .args(["postmortem", "--json", "--directory"])
                .arg(&dir),
        )?;
        pt.push(t);
        pr.push(rss as f64);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (jt, jr, pt, pr) = (
        median(&mut jt),
        median(&mut jr),
        median(&mut pt),
        median(&mut pr),
    );
    let mib = |kib: f64| kib / 1024.0;
    let rate = |t: f64| entries as f64 / t / 1e6;
    let body = format!(
        "The incident's journal: {} entries in {:.0} MiB of journal files, written by \
         systemd-journal-remote from a generated export stream (421,491 restart cycles of \
         serial-getty@ttyS0.service over 48.7 days, an OOM kill, a second boot); spawnscope \
         as it ships, the static release-dist binary. Medians of {RUNS} interleaved runs; peak \
         RSS from wait4.\n\n\
         | reader | wall time | entries/s | peak RSS |\n\
         |---|---|---|---|\n\
         | `journalctl --directory D -o export > /dev/null` (the floor) | {jt:.2} s | {:.2} M | {:.1} MiB |\n\
         | `spawnscope postmortem --json --directory D` | {pt:.2} s | {:.2} M | {:.1} MiB |\n\n\
         Targets: postmortem's throughput at least journalctl's (wall time ratio {:.2}, \
         target ≤ 1): **{}**. postmortem's peak RSS ≤ 64 MiB ({:.1} MiB): **{}**.\n",
        thousands(entries),
        bytes as f64 / 1048576.0,
        rate(jt),
        mib(jr),
        rate(pt),
        mib(pr),
        pt / jt,
        met(pt <= jt),
        mib(pr),
        met(mib(pr) <= 64.0),
    );
    Ok(Section {
        title: "6. postmortem over the incident's journal".into(),
        body,
    })
}

fn met(ok: bool) -> &'static str {
    if ok { "Met" } else { "Not met" }
}

fn tempfile_dir() -> Result<std::path::PathBuf, Fail> {
    let d = std::env::temp_dir().join(format!("spawnscope-bench-journal-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| Fail(format!("{}: {e}", d.display())))?;
    Ok(d)
}

/// 1264488 → "1,264,488".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
