//! `cargo xtask setup`: what building needs (the pinned nightly, LLVM,
//! bpf-linker, the musl targets of the release binaries); [`test_deps`]:
//! what only the tests add. Both install only what is missing, so running
//! them again costs a few version checks.

use std::path::{Path, PathBuf};

use crate::util::{Fail, cmd, is_root, output, run_with_retries, step};

/// The dated nightly that builds the probe (userspace/build.rs reads the
/// same file): a floating `nightly` would change the release binaries, and
/// could move to an LLVM that the installed bpf-linker cannot read.
pub const NIGHTLY: &str = include_str!("../../probe/nightly-toolchain").trim_ascii();
/// Pinned for reproducible builds; bump deliberately.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Builds and runs the fuzz targets (`cargo xtask fuzz`, and the test
/// suite's smoke of them); pinned like bpf-linker.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Debian packages the tests use beyond the build itself: util-linux for
/// setpriv and nsenter; debootstrap and systemd-container (systemd-nspawn)
/// for the real systemd the scenario tests boot; stress-ng for the
/// no-false-alarm scenario; qemu-system-x86, qemu-system-arm and
/// busybox-static for the VM tests (x86_64 and aarch64); prometheus for
/// `promtool check metrics` on the exposition and, with
/// prometheus-alertmanager, for the fleet test's real servers; file, which
/// the release tests ask whether a binary is static;
/// systemd-journal-remote, which writes the postmortem tests' journal files
/// from an export stream.
const TEST_PACKAGES: &[&str] = &[
    "prometheus",
    "prometheus-alertmanager",
    "util-linux",
    "debootstrap",
    "systemd-container",
    "stress-ng",
    "qemu-system-x86",
    "qemu-system-arm",
    "busybox-static",
    "file",
    "systemd-journal-remote",
];

/// The targets of the release binaries (`cargo xtask dist`): static musl
/// builds, linked by rustc's own rust-lld for aarch64, so no cross gcc.
pub const DIST_TARGETS: &[&str] = &["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// What building needs, and nothing else: this runs on the machine where
/// an operator builds spawnscope, which may be the one they debug.
pub fn run() -> Result<(), Fail> {
    let t0 = std::time::Instant::now();
    ensure_nightly()?;
    let major = nightly_llvm_major()?;
    ensure_llvm(major)?;
    ensure_bpf_linker(major)?;
    ensure_stable_for_dist()?;
    step(&format!(
        "setup complete ({:.1}s)",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// What the tests (and the benchmarks) need beyond the build.
pub fn test_deps() -> Result<(), Fail> {
    // The lint runs clippy on the probe, with the probe's own nightly.
    let installed =
        output(cmd("rustup").args(["component", "list", "--installed", "--toolchain", NIGHTLY]))
            .unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("clippy")) {
        step(&format!("adding clippy to {NIGHTLY} (lints the probe)"));
        run_with_retries(
            cmd("rustup").args(["component", "add", "clippy", "--toolchain", NIGHTLY]),
            3,
        )?;
    }
    ensure_packages(TEST_PACKAGES)?;
    ensure_python_package(PY_HDRHISTOGRAM, "hdrh")?;
    // The quiet corpus builds a Debian rootfs, offline, from these.
    if is_root() {
        crate::noisy::ensure_tarball()?;
    }
    ensure_cargo_fuzz()
}

/// cargo-fuzz, which the fuzz targets are built and run with (the tests
/// smoke them; `cargo xtask fuzz` runs them). Not part of [`run`]: an
/// operator building spawnscope does not need it.
pub fn ensure_cargo_fuzz() -> Result<(), Fail> {
    if installed_by_cargo("cargo-fuzz", CARGO_FUZZ_VERSION, None) {
        return Ok(());
    }
    step(&format!("installing cargo-fuzz {CARGO_FUZZ_VERSION}"));
    run_with_retries(
        cmd("cargo").args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--force",
            "--version",
            CARGO_FUZZ_VERSION,
        ]),
        3,
    )?;
    if !installed_by_cargo("cargo-fuzz", CARGO_FUZZ_VERSION, None) {
        return Err(Fail(
            "cargo-fuzz installed but not recorded by cargo; check ~/.cargo/.crates2.json".into(),
        ));
    }
    Ok(())
}

/// The pinned stable toolchain of the release binaries, with their musl
/// targets.
fn ensure_stable_for_dist() -> Result<(), Fail> {
    let stable = crate::dist::STABLE;
    if output(cmd("rustup").args(["run", stable, "rustc", "-V"])).is_none() {
        step(&format!(
            "installing Rust {stable} (builds the release binaries)"
        ));
        run_with_retries(
            cmd("rustup").args(["toolchain", "install", stable, "--profile", "minimal"]),
            3,
        )?;
    }
    ensure_targets(stable, DIST_TARGETS)
}

fn ensure_targets(toolchain: &str, targets: &[&str]) -> Result<(), Fail> {
    let installed =
        output(cmd("rustup").args(["target", "list", "--installed", "--toolchain", toolchain]))
            .ok_or_else(|| Fail("cannot run `rustup target list --installed`".into()))?;
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("rustup target add {}", missing.join(" ")));
    run_with_retries(
        cmd("rustup")
            .args(["target", "add", "--toolchain", toolchain])
            .args(&missing),
        3,
    )
}

/// Python's HdrHistogram implementation (module `hdrh`), pinned: the
/// export tests decode spawnscope's interval log with it.
const PY_HDRHISTOGRAM: &str = "hdrhistogram==0.10.8";

fn ensure_python_package(requirement: &str, module: &str) -> Result<(), Fail> {
    if cmd("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    step(&format!("pip install {requirement}"));
    run_with_retries(
        cmd("python3").args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            requirement,
        ]),
        3,
    )
}

fn ensure_nightly() -> Result<(), Fail> {
    if output(cmd("rustup").args(["run", NIGHTLY, "rustc", "-V"])).is_none() {
        step("installing the nightly toolchain (builds the eBPF probe)");
        run_with_retries(
            cmd("rustup").args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]),
            3,
        )?;
    }
    let sysroot = output(cmd("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))
        .ok_or_else(|| Fail("cannot query the nightly sysroot".into()))?;
    let src = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core");
    if !src.exists() {
        step("adding rust-src to nightly (needed for -Z build-std=core)");
        run_with_retries(
            cmd("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]),
            3,
        )?;
    }
    Ok(())
}

/// The LLVM major version the nightly compiler uses: bpf-linker must link
/// the same one, or it cannot read the bitcode rustc emits.
fn nightly_llvm_major() -> Result<u32, Fail> {
    let vv = output(cmd("rustc").args([&format!("+{NIGHTLY}"), "-vV"]))
        .ok_or_else(|| Fail("cannot run `rustc +nightly -vV`".into()))?;
    parse_llvm_major(&vv).ok_or_else(|| {
        Fail(format!(
            "no \"LLVM version\" in `rustc +nightly -vV`:\n{vv}"
        ))
    })
}

fn parse_llvm_major(vv: &str) -> Option<u32> {
    let v = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))?
        .trim();
    v.split('.').next()?.parse().ok()
}

fn llvm_prefix(major: u32) -> PathBuf {
    PathBuf::from(format!("/usr/lib/llvm-{major}"))
}

fn have_apt() -> bool {
    Path::new("/usr/bin/apt-get").exists() && Path::new("/usr/bin/dpkg-query").exists()
}

fn dpkg_installed(pkg: &str) -> bool {
    output(cmd("dpkg-query").args(["-W", "-f", "${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_install(pkgs: &[String]) -> Result<(), Fail> {
    if !is_root() {
        return Err(Fail(format!(
            "missing packages {}; run as root: apt-get install {}",
            pkgs.join(" "),
            pkgs.join(" ")
        )));
    }
    step(&format!("apt-get install {}", pkgs.join(" ")));
    run_with_retries(cmd("apt-get").args(["update", "-q"]), 3)?;
    run_with_retries(
        cmd("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        3,
    )
}

pub fn ensure_packages(pkgs: &[&str]) -> Result<(), Fail> {
    if !have_apt() {
        return Ok(());
    }
    let missing: Vec<String> = pkgs
        .iter()
        .filter(|p| !dpkg_installed(p))
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        apt_install(&missing)
    }
}

fn manual_steps(major: u32) -> String {
    format!(
        "this distribution cannot be provisioned automatically (no apt-get). Install by hand:\n\
         \x20 1. LLVM {major} development files (llvm-config, libLLVM, headers, polly, zstd)\n\
         \x20 2. rustup component add rust-src --toolchain {NIGHTLY}\n\
         \x20 3. PATH=<llvm-{major}>/bin:$PATH LLVM_SYS_{major}1_PREFIX=<llvm-{major}> \\\n\
         \x20    cargo install bpf-linker --version {BPF_LINKER_VERSION} --no-default-features --features llvm-{major}"
    )
}

fn ensure_llvm(major: u32) -> Result<(), Fail> {
    if llvm_prefix(major).join("bin/llvm-config").exists() {
        return Ok(());
    }
    if !have_apt() {
        return Err(Fail(manual_steps(major)));
    }
    let pkgs = vec![
        format!("llvm-{major}-dev"),
        format!("libpolly-{major}-dev"),
        "libzstd-dev".to_string(),
    ];
    apt_install(&pkgs)?;
    if !llvm_prefix(major).join("bin/llvm-config").exists() {
        return Err(Fail(format!(
            "installed {} but {} is still missing",
            pkgs.join(" "),
            llvm_prefix(major).join("bin/llvm-config").display()
        )));
    }
    Ok(())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

/// True when cargo's install record shows bpf-linker built for `llvm-<major>`.
fn bpf_linker_matches(major: u32) -> bool {
    installed_by_cargo(
        "bpf-linker",
        BPF_LINKER_VERSION,
        Some(&format!("llvm-{major}")),
    )
}

/// True when cargo's install record shows `krate` at `version` (built
/// with `feature`, if given) and its binary of the same name is there.
fn installed_by_cargo(krate: &str, version: &str, feature: Option<&str>) -> bool {
    let Ok(text) = std::fs::read_to_string(cargo_home().join(".crates2.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    v["installs"].as_object().is_some_and(|m| {
        m.iter().any(|(k, i)| {
            k.starts_with(&format!("{krate} {version} "))
                && feature.is_none_or(|want| {
                    i["features"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == want))
                })
        })
    }) && cargo_home().join("bin").join(krate).exists()
}

fn ensure_bpf_linker(major: u32) -> Result<(), Fail> {
    if bpf_linker_matches(major) {
        return Ok(());
    }
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against LLVM {major}"
    ));
    let prefix = llvm_prefix(major);
    let path = format!(
        "{}:{}",
        prefix.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_with_retries(
        cmd("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("PATH", path)
            // llvm-sys reads LLVM_SYS_<major><minor>_PREFIX; every minor of
            // one major shares a prefix on Debian.
            .env(format!("LLVM_SYS_{major}0_PREFIX"), &prefix)
            .env(format!("LLVM_SYS_{major}1_PREFIX"), &prefix),
        2,
    )?;
    if !bpf_linker_matches(major) {
        return Err(Fail(
            "bpf-linker installed but not recorded by cargo; check ~/.cargo/.crates2.json".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_rustc_vv() {
        let vv =
            "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(vv), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.0\n"), None);
    }
}
