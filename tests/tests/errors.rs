//! Failures a user can cause: one line on stderr, a meaningful exit code,
//! never a panic.

use std::process::Command;

use spawnscope_tests::{require_root, spawnscope_bin};

fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("run spawnscope");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line, got:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    lines[0]
}

#[test]
fn unprivileged_user_is_told_what_is_missing() {
    if !require_root("errors/unprivileged") {
        return;
    }
    // setpriv (util-linux) drops to nobody with no capabilities at all.
    let (code, stderr) = run(Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(spawnscope_bin())
        .args(["trace", "--for", "1s"]));
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(
        one_line(&stderr),
        "spawnscope: insufficient privileges: missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); \
         run as root, e.g. with sudo"
    );
}

#[test]
fn missing_or_bogus_btf_is_unsupported_kernel() {
    if !require_root("errors/btf") {
        return;
    }
    let (code, stderr) =
        run(Command::new(spawnscope_bin()).args(["trace", "--btf", "/nonexistent/vmlinux"]));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        one_line(&stderr).starts_with("spawnscope: kernel BTF not found at /nonexistent/vmlinux"),
        "{stderr}"
    );

    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"definitely not BTF, just thirty-two bytes..").unwrap();
    let (code, stderr) = run(Command::new(spawnscope_bin())
        .arg("trace")
        .arg("--btf")
        .arg(junk.path()));
    assert_eq!(code, Some(4), "{stderr}");
    assert_eq!(
        one_line(&stderr),
        format!(
            "spawnscope: {}: not BTF data (bad magic)",
            junk.path().display()
        )
    );
}

#[test]
fn closed_stdout_is_a_clean_exit() {
    if !require_root("errors/broken_pipe") {
        return;
    }
    let mut child = Command::new(spawnscope_bin())
        // Whatever the host's systemd managers say is beside the point.
        .args([
            "trace",
            "--interval",
            "100ms",
            "--for",
            "5s",
            "--no-systemd",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end of stdout at once: the first table write hits EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}
