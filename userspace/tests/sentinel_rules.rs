//! The shipped Prometheus rules (dist/spawnscope.rules.yml) pass
//! `promtool check rules`, and `promtool test rules` proves they fire, with
//! the expected labels and text, on the series a sentinel exports, and stay
//! quiet otherwise (userspace/tests/fixtures/spawnscope.rules.test.yml).

mod common;

use std::{path::Path, process::Command};

use common::have;

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn shipped_rules_check_and_fire_as_tested() {
    if !have("promtool", "--version") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (ok, said) = promtool(&["check", "rules", "dist/spawnscope.rules.yml"], &root);
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS: 11 rules found"), "{said}");
    let (ok, said) = promtool(
        &["test", "rules", "spawnscope.rules.test.yml"],
        &root.join("userspace/tests/fixtures"),
    );
    assert!(ok, "{said}");
}
