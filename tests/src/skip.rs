//! Loud, counted skips for every test crate of the workspace (included by
//! path where the tests crate itself cannot be a dependency). Only std.

use std::{fs, path::Path, path::PathBuf};

/// Where skips are recorded: `$SPAWNSCOPE_SKIP_DIR` (set by `cargo xtask
/// test`), else `target/test-skips` next to the test executable's profile
/// directory.
pub fn skip_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPAWNSCOPE_SKIP_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in target/<profile>/deps")
        .join("test-skips")
}

/// Skips the calling test loudly, or fails it under CI=true, where a skip
/// is a failure. `why` names the missing feature.
///
/// libtest captures what a passing test prints and reports a skipped test
/// as `ok`, so the skip is also recorded as a file under [`skip_dir`]:
/// `cargo xtask test` counts them, names them and fails the run unless
/// told to allow skips.
pub fn skip(why: &str) {
    record_skip(why);
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; CI=true forbids skipping");
    }
    eprintln!("\n*** SKIPPED {why} ***\n");
}

fn record_skip(why: &str) {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let exe = std::env::current_exe().ok();
    let binary = exe
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // The test executable's name without cargo's hash suffix.
    let binary = binary.rsplit_once('-').map_or(&*binary, |(b, _)| b);
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("main");
    let dir = skip_dir();
    let file = dir.join(format!(
        "{binary}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    // A skip that cannot be recorded must not pass as a silent `ok`.
    fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&file, format!("{binary}::{test}: {why}\n")))
        .unwrap_or_else(|e| {
            panic!(
                "{why}; and the skip cannot be recorded in {}: {e}",
                file.display()
            )
        });
}
