//! Command-line behaviour that needs no privileges.

use assert_cmd::Command;

fn spawnscope() -> Command {
    Command::cargo_bin("spawnscope").unwrap()
}

#[test]
fn help_explains_options_and_exit_codes() {
    let out = spawnscope()
        .args(["trace", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for needle in [
        "--for <DURATION>",
        "--interval <DURATION>",
        "--json",
        "--max-cgroups",
        "--by <WHAT>",
        "[default: unit]",
        "- container: One row per container",
        "--unit <GLOB>",
        "--container <NAME>",
        "--events",
        "--forks",
        "--comm <GLOB>",
        "--failed",
        "--min-lifetime <DURATION>",
        "--max-lifetime <DURATION>",
        "--record <FILE>",
        "Exit status:",
        "3  insufficient privileges",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

/// Runs a command line that must be rejected with clap's exit code 2,
/// and returns its stderr.
fn usage_error(args: &[&str]) -> String {
    let out = spawnscope()
        .args(args)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

#[test]
fn bad_command_lines_are_usage_errors() {
    for args in [
        &["trace", "--for", "soon"][..],
        &["trace", "--interval", "0s"],
        &["trace", "--top", "0"],
        &["trace", "--bogus"],
        &["trace", "--by", "pod"],
        &["trace", "--unit", ""],
        &["trace", "--container", ""],
        &["trace", "--forks"],
        &["trace", "--failed"],
        &["trace", "--comm", "sh"],
        &["trace", "--events", "--min-lifetime", "soon"],
        &["trace", "--events", "--event-buffer", "5000"],
        &["trace", "--events", "--event-buffer", "2048"],
        &["analyze"],
        &["trace", "--psi-warn", "120"],
        &["trace", "--mem-interval", "0s"],
        &["analyze", "a", "b"],
        &["frobnicate"],
        &[],
    ] {
        let stderr = usage_error(args);
        assert!(
            stderr.starts_with("error:") || stderr.contains("Usage:"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn invalid_duration_names_the_problem() {
    let stderr = usage_error(&["trace", "--interval", "0s"]);
    assert!(
        stderr
            .contains("invalid value '0s' for '--interval <DURATION>': must be greater than zero"),
        "{stderr}"
    );
}

#[test]
fn empty_filters_name_the_problem() {
    let stderr = usage_error(&["trace", "--unit", ""]);
    assert!(
        stderr.contains("invalid value '' for '--unit <GLOB>': must not be empty"),
        "{stderr}"
    );
}

#[test]
fn unreadable_mountinfo_is_one_line_and_exit_1() {
    // Read before anything needs privileges, so this runs as any user.
    let out = spawnscope()
        .args([
            "trace",
            "--for",
            "1s",
            "--mountinfo",
            "/nonexistent/mountinfo",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "spawnscope: cannot read /nonexistent/mountinfo: No such file or directory (os error 2)\n"
    );
}

#[test]
fn event_filters_need_events() {
    let stderr = usage_error(&["trace", "--failed"]);
    assert!(
        stderr.contains("the following required arguments were not provided")
            && stderr.contains("--events"),
        "{stderr}"
    );
}

#[test]
fn unwritable_record_file_is_one_line_and_exit_1() {
    // Created before anything needs privileges, so this runs as any user.
    let out = spawnscope()
        .args([
            "trace",
            "--for",
            "1s",
            "--record",
            "/nonexistent/dir/trace.jsonl",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "spawnscope: cannot write /nonexistent/dir/trace.jsonl: No such file or directory (os error 2)\n"
    );
}

#[test]
fn uncreatable_export_dir_is_one_line_and_exit_1() {
    // Made before anything needs privileges, so this runs as any user.
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let out = spawnscope()
        .args(["trace", "--for", "1s", "--export"])
        .arg(file.join("sub"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "spawnscope: cannot create {}/sub: Not a directory (os error 20)\n",
            file.display()
        )
    );
}

/// `analyze` needs no privileges: a recording made elsewhere is analysed
/// here as any user (these tests run unprivileged in `cargo xtask test`'s
/// host-crate pass too).
#[test]
fn analyze_reads_a_recording_and_reports_errors_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"type":"header","format":"spawnscope-record","version":1,"started_unix":0.0,"started_mono_ns":0,"monotonic_to_unix_s":0.0}"#;
    let mut body = format!("{header}\n");
    for i in 0..5u64 {
        let t = 1_000_000_000 + i * 1_000_000_000;
        for (kind, extra) in [
            ("exec", String::new()),
            ("exit", r#","code":7"#.to_string()),
        ] {
            body.push_str(&format!(
                r#"{{"type":"{kind}","ts_ns":{},"tgid":{},"ppid":1,"start_ns":{t},"cgroup":"/system.slice/a.service","unit":"a.service","comm":"a","parent_comm":"systemd","filename":"/usr/bin/a","argv":["a"]{extra}}}"#,
                if kind == "exec" { t } else { t + 1_000_000 },
                100 + i
            ));
            body.push('\n');
        }
    }
    let file = dir.path().join("rec.jsonl");
    std::fs::write(&file, &body).unwrap();
    let out = spawnscope()
        .args(["analyze"])
        .arg(&file)
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().nth(1),
        Some(
            "[high] a.service: /usr/bin/a restarted 4 times in 4s (every 1.0 s, p99 1.0 s), \
             exit status 7 in 100% after 1 ms — ≈86,400 restarts/day (active)"
        ),
        "{text}"
    );

    for (content, want) in [
        (
            header.replace("\"version\":1", "\"version\":2") + "\n",
            "recording format version 2 is not supported (this spawnscope reads version 1)",
        ),
        (format!("{header}\n{{broken\n"), ":2: not valid JSON"),
    ] {
        std::fs::write(&file, &content).unwrap();
        let out = spawnscope()
            .args(["analyze"])
            .arg(&file)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("spawnscope: ") && err.contains(want),
            "{err}"
        );
    }
    let out = spawnscope()
        .args(["analyze", "--lenient", "--json"])
        .arg(&file)
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["skipped"], 1);
    assert_eq!(v["skipped_lines"], serde_json::json!([2]));
}

/// A real recording (this machine, `trace --record` while a shell loop
/// failed every 200 ms among 30 healthy `/bin/true` runs): the detector
/// finds the one loop and nothing else, and the findings equal the live
/// run's summary stored in the same file.
#[test]
fn recorded_fixture_gives_the_live_findings() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/host-loop.jsonl"
    );
    let out = spawnscope()
        .args(["analyze", "--json", file])
        .assert()
        .success()
        .get_output()
        .clone();
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = a["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{a}");
    let f = &findings[0];
    assert_eq!(f["executable"], "/bin/sh");
    assert_eq!(f["argv"], serde_json::json!(["/bin/sh", "-c", "exit 3"]));
    assert_eq!(f["restarts"], 5);
    assert_eq!(f["dominant"]["code"], 3);
    let text = std::fs::read_to_string(file).unwrap();
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(a["findings"], summary["findings"], "offline == live");
}
