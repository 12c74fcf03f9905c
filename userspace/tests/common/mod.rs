//! Helpers shared by the unprivileged integration tests.
#![allow(dead_code)]

use std::process::Command as Std;

// The workspace's one skip: recorded for `cargo xtask test` to count, a
// failure under CI=true. (The tests crate depends on this one, so it is
// included by path rather than as a dependency.)
#[path = "../../../tests/src/skip.rs"]
mod skip_impl;
pub use skip_impl::skip;

/// Whether `program arg` runs; otherwise a recorded skip (a failure under
/// CI).
pub fn have(program: &str, arg: &str) -> bool {
    let ok = Std::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!(
            "{program} is missing (cargo xtask setup installs it)"
        ));
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
