//! What the fuzz targets share: a scratch directory for the parsers that
//! read a path (as spawnscope reads them, not a copy of their insides).

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// This process's scratch directory under $TMPDIR, made on first use.
/// `cargo xtask fuzz` points TMPDIR to a directory of its own (on tmpfs
/// where there is one) and removes it after each run.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("spawnscope-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d)
            .unwrap_or_else(|e| panic!("cannot make scratch dir {}: {e}", d.display()));
        d
    })
}

/// Writes `bytes` to `name` in the scratch directory (a path below it
/// made as needed) and returns its path.
pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    }
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    p
}

/// The parts of an input that stands for several files, split at NUL
/// bytes (which the text files it stands for never hold); missing parts
/// are empty.
pub fn parts<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    for (slot, part) in out.iter_mut().zip(data.split(|&b| b == 0)) {
        *slot = part;
    }
    out
}

/// Panics unless `msg` is one line: spawnscope reports bad input in one.
pub fn assert_one_line(msg: &str) {
    assert!(
        !msg.contains('\n'),
        "error message is not one line: {msg:?}"
    );
}
