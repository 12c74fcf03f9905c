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
