//! Builds the limits probe as userspace/build.rs builds spawnscope's, with
//! the same pinned nightly.

use std::path::Path;

const NIGHTLY: &str = include_str!("../../probe/nightly-toolchain");

fn main() -> aya_build::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../limits-probe");
    // Rebuild when the shared record types change too (the record set is
    // as large as spawnscope's exec record).
    for watched in ["../../common/src", "../../probe/nightly-toolchain"] {
        println!("cargo:rerun-if-changed={}", dir.join(watched).display());
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "spawnscope-limits-probe",
            root_dir: dir.to_str().expect("workspace path is UTF-8"),
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(NIGHTLY.trim()),
    )
}
