//! Builds the eBPF probe with the pinned nightly toolchain
//! (probe/nightly-toolchain) and bpf-linker, and leaves it in OUT_DIR for
//! `include_bytes_aligned!`.

use std::path::Path;

/// A dated nightly, so that the probe, and with it the release binaries,
/// are the same bytes for the same commit; `cargo xtask setup` installs it.
const NIGHTLY: &str = include_str!("../probe/nightly-toolchain");

fn main() -> aya_build::Result<()> {
    let probe_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe");
    let root = probe_dir.to_str().expect("workspace path is UTF-8");
    if which_bpf_linker().is_none() {
        // aya-build would fail with a cargo-in-cargo error; say what to do.
        println!("cargo:warning=bpf-linker not found in PATH: run `cargo xtask setup` first");
    }
    // Rebuild when the shared record types change too.
    println!(
        "cargo:rerun-if-changed={}",
        probe_dir.join("../common/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        probe_dir.join("nightly-toolchain").display()
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "spawnscope-probe",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(NIGHTLY.trim()),
    )
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}
