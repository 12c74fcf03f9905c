use std::{
    ffi::OsStr,
    path::PathBuf,
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

/// A failure with a message meant for the person at the terminal.
#[derive(Debug)]
pub struct Fail(pub String);

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn cmd(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.current_dir(workspace_root());
    c
}

pub fn step(what: &str) {
    eprintln!("==> {what}");
}

fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn run_checked(c: &mut Command) -> Result<(), Fail> {
    let status = c
        .status()
        .map_err(|e| Fail(format!("cannot run `{}`: {e}", describe(c))))?;
    if status.success() {
        Ok(())
    } else {
        Err(Fail(format!("`{}` failed ({status})", describe(c))))
    }
}

/// For network installs: a mirror hiccup should not fail a fresh setup.
pub fn run_with_retries(c: &mut Command, attempts: u32) -> Result<(), Fail> {
    let mut last = Fail(String::new());
    for n in 1..=attempts {
        match run_checked(c) {
            Ok(()) => return Ok(()),
            Err(e) => {
                eprintln!("xtask: attempt {n}/{attempts} failed: {}", e.0);
                last = e;
                if n < attempts {
                    sleep(Duration::from_secs(5 * n as u64));
                }
            }
        }
    }
    Err(last)
}

/// Runs and captures stdout; None when the program is missing or fails.
pub fn output(c: &mut Command) -> Option<String> {
    let out = c.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with "`what`: run it as root" unless we are root.
pub fn require_root(what: &str) -> Result<(), Fail> {
    if is_root() {
        Ok(())
    } else {
        Err(Fail(format!("{what}: run it as root")))
    }
}
