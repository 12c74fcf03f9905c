//! The release artifacts of `cargo xtask dist`, as the tests that prove
//! them on real systems take them: checked against SHA256SUMS with
//! `sha256sum`, unpacked with `tar`, as an operator would. `cargo xtask
//! test` builds them (and the static spawn-workload of each architecture)
//! before the tests run; artifacts older than a source of the binaries,
//! a file they pack (dist/, the licences) or dist itself are refused, so a
//! by-hand `cargo test` cannot prove a stale copy.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{newer_source, skip, systemd::run_with_timeout};

/// An architecture the release is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// As the tarball names it (`uname -m`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// As dpkg names it.
    pub fn deb(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// Where `cargo xtask dist` wrote: $SPAWNSCOPE_DIST_DIR, else target/dist.
pub fn dist_dir() -> PathBuf {
    std::env::var_os("SPAWNSCOPE_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/dist"))
}

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The release directory, once its SHA256SUMS has been checked; None after
/// a loud skip when `cargo xtask dist` has not run.
pub fn checked_dir(test: &str) -> Option<PathBuf> {
    let dir = dist_dir();
    let sums = dir.join("SHA256SUMS");
    let Ok(meta) = fs::metadata(&sums) else {
        skip(&format!(
            "{test}: no release artifacts in {} (cargo xtask test builds them; by hand: cargo \
             xtask dist)",
            dir.display()
        ));
        return None;
    };
    let built = meta.modified().expect("mtime");
    // What dist packs beside the binaries, and dist itself.
    for rel in ["dist", "LICENSE-MIT", "LICENSE-APACHE", "xtask/src/dist.rs"] {
        let p = workspace().join(rel);
        let mut todo = vec![p];
        while let Some(p) = todo.pop() {
            let m = fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if m.is_dir() {
                todo.extend(fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            } else if m.modified().is_ok_and(|t| t > built) {
                panic!(
                    "{} is older than {}: run `cargo xtask dist` (cargo xtask test does)",
                    sums.display(),
                    p.display()
                );
            }
        }
    }
    for a in [Arch::X86_64, Arch::Aarch64] {
        let dep_info = workspace().join(format!("target/{}/release-dist/spawnscope.d", a.triple()));
        if let Some(src) = newer_source(&dep_info, built) {
            panic!(
                "{} is older than {}: run `cargo xtask dist` (cargo xtask test does)",
                sums.display(),
                src.display()
            );
        }
    }
    let out = run_with_timeout(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(&dir),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "sha256sum --check in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

pub fn tarball_name(a: Arch) -> String {
    format!("spawnscope-{}-{}.tar.gz", version(), a.name())
}

pub fn deb_name(a: Arch) -> String {
    format!("spawnscope_{}_{}.deb", version(), a.deb())
}

/// A release tarball unpacked into a temporary directory.
pub struct Unpacked {
    _tmp: tempfile::TempDir,
    /// The tarball's top directory.
    pub top: PathBuf,
}

impl Unpacked {
    pub fn bin(&self) -> PathBuf {
        self.top.join("spawnscope")
    }
}

/// The checked tarball of `a`, unpacked with `tar`; None after a loud skip.
pub fn unpack(a: Arch, test: &str) -> Option<Unpacked> {
    let dir = checked_dir(test)?;
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = run_with_timeout(
        Command::new("tar")
            .arg("-xzf")
            .arg(dir.join(tarball_name(a)))
            .arg("-C")
            .arg(tmp.path()),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "tar -xzf {}: {}",
        tarball_name(a),
        String::from_utf8_lossy(&out.stderr)
    );
    let top = tmp
        .path()
        .join(format!("spawnscope-{}-{}", version(), a.name()));
    assert!(
        top.is_dir(),
        "{} holds no {}",
        tarball_name(a),
        top.display()
    );
    Some(Unpacked { _tmp: tmp, top })
}

/// spawn-workload built static for `a` (`cargo xtask test` builds it), so
/// that a VM or an old userland can run it beside the release binary.
pub fn static_workload(a: Arch) -> PathBuf {
    let dir = workspace().join(format!("target/{}/release", a.triple()));
    let bin = dir.join("spawn-workload");
    let build = format!(
        "run `cargo build --release --target {} -p spawnscope-workload` (cargo xtask test does)",
        a.triple()
    );
    let built = fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; {build}", bin.display()));
    if let Some(src) = newer_source(&dir.join("spawn-workload.d"), built) {
        panic!("{} is older than {}: {build}", bin.display(), src.display());
    }
    bin
}

/// `file`'s description of `path`.
pub fn file_says(path: &Path) -> String {
    let out = run_with_timeout(
        Command::new("file").arg("-b").arg(path),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
