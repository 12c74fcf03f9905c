//! `spawnscope postmortem` on hostile input, without root: a file that is
//! not a journal, a truncated journal, and messages carrying terminal
//! escapes. Journals are written by systemd-journal-remote (installed by
//! `cargo xtask test`) from export streams made here.

use std::{io::Write, path::Path, process::Command};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

fn spawnscope() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("spawnscope"))
}

/// A journal of `n` agetty errors (one every 10 s) and restart lines, with
/// `message` as agetty's text.
fn journal(dir: &Path, n: u64, message: &str) -> std::path::PathBuf {
    journal_of(dir, &[(BOOT_A, 0, n)], message)
}

const BOOT_A: &str = "0123456789abcdef0123456789abcdef";
const BOOT_B: &str = "fedcba9876543210fedcba9876543210";
/// 13 Jan 2026 09:00 UTC.
const T0: u64 = 1_768_294_800_000_000;

/// Boots `(id, start offset in s, restarts)`, one after the other.
fn journal_of(dir: &Path, boots: &[(&str, u64, u64)], message: &str) -> std::path::PathBuf {
    assert!(
        Path::new(JOURNAL_REMOTE).exists(),
        "{JOURNAL_REMOTE} is missing: run `cargo xtask test`, which installs systemd-journal-remote"
    );
    let export = dir.join("export");
    let mut f = std::fs::File::create(&export).unwrap();
    for &(boot, from_s, n) in boots {
        let t0 = T0 + from_s * 1_000_000;
        for i in 0..n {
            let t = t0 + i * 10_000_000;
            write!(
                f,
                "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n\
                 _SYSTEMD_UNIT=serial-getty@ttyS0.service\nSYSLOG_IDENTIFIER=agetty\n_PID={}\nPRIORITY=3\nMESSAGE={message}\n\n",
                t - t0 + 1,
                1000 + i
            )
            .unwrap();
            write!(
                f,
                "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n\
                 _PID=1\n_UID=0\nUNIT=serial-getty@ttyS0.service\nMESSAGE_ID=5eb03494b6584870a536b337290809b3\nN_RESTARTS={}\n\
                 MESSAGE=serial-getty@ttyS0.service: Scheduled restart job, restart counter is at {}.\n\n",
                t + 100,
                t - t0 + 101,
                i + 1,
                i + 1
            )
            .unwrap();
        }
    }
    drop(f);
    let out = dir.join("system.journal");
    let st = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", out.display()))
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::remove_file(&export).unwrap();
    out
}

#[test]
fn a_file_that_is_not_a_journal_is_one_line_and_exit_1() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x.journal");
    std::fs::write(&f, b"this is not a journal file at all, just text\n").unwrap();
    let out = spawnscope()
        .args(["postmortem", "--file"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("spawnscope: no journal file could be read: "),
        "{err}"
    );
    assert!(err.contains("x.journal"), "{err}");
}

#[test]
fn a_missing_directory_is_one_line_and_exit_1() {
    let out = spawnscope()
        .args(["postmortem", "--directory", "/nonexistent/journal"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/journal"), "{err}");
}

#[test]
fn a_truncated_journal_is_read_as_far_as_it_goes_and_the_cut_reported() {
    let d = tempfile::tempdir().unwrap();
    let f = journal(
        d.path(),
        2000,
        "ttyS0: failed to get terminal attributes: Input/output error",
    );
    let whole = spawnscope()
        .args(["postmortem", "--json", "--file"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(whole.status.success());
    let whole: serde_json::Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(whole["loops"][0]["restarts"], 2000);
    // Cut in the middle of its objects.
    let len = std::fs::metadata(&f).unwrap().len();
    let used = whole["source"]["bytes"].as_u64().unwrap().min(len);
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(used / 2).unwrap();
    let out = spawnscope()
        .args(["postmortem", "--json", "--file"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let restarts = r["loops"][0]["restarts"].as_u64().unwrap_or(0);
    assert!(restarts > 0 && restarts < 2000, "{restarts}");
    assert!(
        !r["source"]["problems"].as_array().unwrap().is_empty(),
        "{}",
        r["source"]
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("spawnscope: warning: "), "{err}");
}

#[test]
fn terminal_escapes_in_messages_are_rendered_inert() {
    let d = tempfile::tempdir().unwrap();
    let f = journal(d.path(), 5, "evil \u{1b}]0;pwned\u{7} \u{1b}[2J line");
    let out = spawnscope()
        .args(["postmortem", "--file"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("evil \\x1b]0;pwned\\x07"), "{text}");
}

fn restarts_with(f: &Path, args: &[&str]) -> Option<u64> {
    let out = spawnscope()
        .args(["postmortem", "--json", "--file"])
        .arg(f)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    r["loops"][0]["restarts"].as_u64()
}

/// --boot counts as journalctl does (0 the last, -1 the one before, 1 the
/// first) or takes an ID; every boot without it; --since/--until cut by
/// time; a boot that is not there is one line and exit 1.
#[test]
fn boots_and_times_select_what_is_read() {
    let d = tempfile::tempdir().unwrap();
    // Boot A: 30 restarts from 09:00; boot B: 20 from 10:00.
    let f = journal_of(d.path(), &[(BOOT_A, 0, 30), (BOOT_B, 3600, 20)], "x");
    assert_eq!(restarts_with(&f, &[]), Some(50));
    assert_eq!(restarts_with(&f, &["--boot", "-1"]), Some(30));
    assert_eq!(restarts_with(&f, &["--boot", "1"]), Some(30));
    assert_eq!(restarts_with(&f, &["--boot", "0"]), Some(20));
    assert_eq!(restarts_with(&f, &["--boot", BOOT_B]), Some(20));
    // 09:00:00 to 09:02:25: restarts at 0.0001 s, 10.0001 s, … 140.0001 s.
    assert_eq!(
        restarts_with(
            &f,
            &[
                "--since",
                "2026-01-13 09:00",
                "--until",
                "2026-01-13 09:02:25"
            ]
        ),
        Some(15)
    );
    let out = spawnscope()
        .args(["postmortem", "--file"])
        .arg(&f)
        .args(["--boot", "-2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "spawnscope: the journal holds 2 boot(s); there is no boot -2\n"
    );
}
