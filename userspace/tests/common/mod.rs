//! Helpers shared by the unprivileged integration tests.
#![allow(dead_code)]

use std::process::Command as Std;

/// Whether `program arg` runs; a skip is loud, and a failure under CI.
pub fn have(program: &str, arg: &str) -> bool {
    let ok = Std::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{program} is missing under CI (cargo xtask setup installs it)"
        );
        eprintln!("SKIP: {program} is missing");
    }
    ok
}

pub fn promtool_check(text: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut c = Std::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
