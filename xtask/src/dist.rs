//! `cargo xtask dist`: the release artifacts. For each architecture a
//! fully static (musl) binary with the probe embedded, packed as a tarball
//! and as a .deb, and a SHA256SUMS over all of them. Everything written is
//! a function of the commit: archive members are sorted, owned by root,
//! dated SOURCE_DATE_EPOCH (the commit's time unless set), and gzip
//! headers carry no time or name, so two runs give the same bytes.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use sha2::Digest;

use crate::util::{Fail, cmd, output, run_checked, step, workspace_root};

pub const USAGE: &str = "\
usage: cargo xtask dist [--out DIR] [--check-reproducible]

  --out DIR              where the artifacts go (default target/dist)
  --check-reproducible   also build everything from a copy of the tree at
                         another path, and fail unless every artifact is
                         byte-identical";

/// Release binaries may not grow past this: they are copied onto machines
/// in trouble, often by hand.
pub const MAX_BINARY_BYTES: u64 = 8 << 20;

/// The cargo profile of the release binaries (the workspace's Cargo.toml).
const PROFILE: &str = "release-dist";

pub struct Arch {
    pub triple: &'static str,
    /// As in the tarball's name (`uname -m`).
    pub name: &'static str,
    /// As dpkg names it.
    pub deb: &'static str,
    /// ELF e_machine.
    machine: u16,
}

/// Both architectures link with rustc's own lld against musl's
/// self-contained objects: no cross gcc, and no host linker whose version
/// would show in the output.
const LINKER: &str = "rust-lld";

/// The toolchain of the release binaries' userspace: the workspace's
/// rust-version, so that a newer default stable cannot change a byte. (The
/// probe has its own pinned nightly.)
pub const STABLE: &str = "1.95.0";

pub const ARCHES: [Arch; 2] = [
    Arch {
        triple: "x86_64-unknown-linux-musl",
        name: "x86_64",
        deb: "amd64",
        machine: 62,
    },
    Arch {
        triple: "aarch64-unknown-linux-musl",
        name: "aarch64",
        deb: "arm64",
        machine: 183,
    },
];

#[derive(Debug, PartialEq)]
pub struct Options {
    pub out: PathBuf,
    pub check_reproducible: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, Fail> {
        let mut o = Self {
            out: workspace_root().join("target/dist"),
            check_reproducible: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--out" => {
                    let dir = it
                        .next()
                        .ok_or_else(|| Fail(format!("--out needs a directory\n{USAGE}")))?;
                    o.out = PathBuf::from(dir);
                }
                "--check-reproducible" => o.check_reproducible = true,
                "-h" | "--help" => return Err(Fail(USAGE.to_string())),
                other => return Err(Fail(format!("unknown option {other:?}\n{USAGE}"))),
            }
        }
        Ok(o)
    }
}

pub fn run(opts: &Options) -> Result<(), Fail> {
    let t0 = Instant::now();
    let root = workspace_root();
    let epoch = source_date_epoch()?;
    if output(cmd("git").args(["status", "--porcelain", "--untracked-files=no"]))
        .is_some_and(|s| !s.trim().is_empty())
    {
        eprintln!(
            "xtask: warning: the work tree has uncommitted changes; these artifacts are not \
             the commit's"
        );
    }
    // The check builds first, from a copy of the tree at another path, so
    // that the binaries and dep-info left in target/ are the tree's own.
    let check = if opts.check_reproducible {
        let copy = root.join("target/dist-check/src");
        step(&format!(
            "dist: building from a copy of the tree at {}, to compare",
            copy.display()
        ));
        copy_tracked_files(&root, &copy)?;
        let again = root.join("target/dist-check/out");
        Some((again.clone(), build_all(&copy, &again, epoch)?))
    } else {
        None
    };
    let made = build_all(&root, &opts.out, epoch)?;
    step(&format!(
        "dist: {} artifacts in {} ({:.0} s)",
        made.len(),
        opts.out.display(),
        t0.elapsed().as_secs_f64()
    ));
    if let Some((again, second)) = check {
        // The same tree at another path, built into the same target
        // directory: the registry's crates are shared, while spawnscope and
        // its probe were built twice from scratch (their path is part of
        // their identity). Where the tree lies must not change a byte.
        let differ: Vec<&str> = made
            .iter()
            .filter(|(name, sum)| second.get(*name) != Some(sum))
            .map(|(name, _)| name.as_str())
            .collect();
        if !differ.is_empty() || second.len() != made.len() {
            return Err(Fail(format!(
                "not reproducible: {} differ between {} and {}",
                differ.join(", "),
                opts.out.display(),
                again.display()
            )));
        }
        let _ = std::fs::remove_dir_all(root.join("target/dist-check"));
        step(&format!(
            "dist: reproducible: all {} artifacts byte-identical, built from two paths",
            made.len()
        ));
    }
    Ok(())
}

/// Copies the work tree's files that git does not ignore (tracked, and new
/// ones not yet added) from `root` into `to`, emptied first.
fn copy_tracked_files(root: &Path, to: &Path) -> Result<(), Fail> {
    match std::fs::remove_dir_all(to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail_io(to, e)),
    }
    let list = output(cmd("git").args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))
    .ok_or_else(|| Fail("cannot run `git ls-files`".into()))?;
    for rel in list.split('\0').filter(|r| !r.is_empty()) {
        let from = root.join(rel);
        if !from.is_file() {
            // Deleted in the work tree, not yet in the index.
            continue;
        }
        let dest = to.join(rel);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail_io(dir, e))?;
        }
        std::fs::copy(&from, &dest).map_err(|e| fail_io(&from, e))?;
    }
    Ok(())
}

fn fail_io(what: &Path, e: std::io::Error) -> Fail {
    Fail(format!("{}: {e}", what.display()))
}

fn read(p: &Path) -> Result<Vec<u8>, Fail> {
    std::fs::read(p).map_err(|e| fail_io(p, e))
}

/// The version cargo gives the spawnscope package of the tree at `src`.
fn version(src: &Path) -> Result<String, Fail> {
    let meta = output(
        cmd("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(src),
    )
    .ok_or_else(|| Fail("cannot run `cargo metadata`".into()))?;
    let v: serde_json::Value =
        serde_json::from_str(&meta).map_err(|e| Fail(format!("cargo metadata: {e}")))?;
    v["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "spawnscope"))
        .and_then(|p| p["version"].as_str())
        .map(str::to_string)
        .ok_or_else(|| Fail("cargo metadata lists no spawnscope package".into()))
}

/// SOURCE_DATE_EPOCH if set, else the commit's time.
fn source_date_epoch() -> Result<u64, Fail> {
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s.trim().parse().map_err(|_| {
            Fail(format!(
                "SOURCE_DATE_EPOCH={s:?} is not a number of seconds"
            ))
        });
    }
    let t = output(cmd("git").args(["log", "-1", "--format=%ct", "HEAD"])).ok_or_else(|| {
        Fail("no git commit to date the artifacts (set SOURCE_DATE_EPOCH)".into())
    })?;
    t.trim()
        .parse()
        .map_err(|_| Fail(format!("git log gave {t:?} for the commit time")))
}

/// Whether `name` is one `dist` writes (of any version).
fn is_artifact(name: &str) -> bool {
    name == "SHA256SUMS"
        || (name.starts_with("spawnscope-") && name.ends_with(".tar.gz"))
        || (name.starts_with("spawnscope_") && name.ends_with(".deb"))
}

/// Creates `out`, and removes the artifacts an earlier run left there (and
/// nothing else: `--out` may name a directory that holds other files).
fn prepare_out(out: &Path) -> Result<(), Fail> {
    std::fs::create_dir_all(out).map_err(|e| fail_io(out, e))?;
    for e in std::fs::read_dir(out).map_err(|e| fail_io(out, e))? {
        let e = e.map_err(|e| fail_io(out, e))?;
        if e.file_type().is_ok_and(|t| t.is_file()) && is_artifact(&e.file_name().to_string_lossy())
        {
            std::fs::remove_file(e.path()).map_err(|err| fail_io(&e.path(), err))?;
        }
    }
    Ok(())
}

/// Builds every architecture from the tree at `src` (into the workspace's
/// target directory) and writes the artifacts into `out`. Returns each
/// artifact's name and SHA-256.
fn build_all(src: &Path, out: &Path, epoch: u64) -> Result<BTreeMap<String, String>, Fail> {
    if std::env::consts::ARCH != "x86_64" {
        // It runs the x86_64 binary it built, to write the man pages.
        return Err(Fail(format!(
            "dist runs on x86_64 hosts, not {}",
            std::env::consts::ARCH
        )));
    }
    let version = version(src)?;
    prepare_out(out)?;
    let wrapper = remap_wrapper(src)?;

    let mut bins = Vec::new();
    for a in &ARCHES {
        let bin = build_binary(src, &wrapper, a, epoch)?;
        let bytes = read(&bin)?;
        check_binary(a, &bytes).map_err(|e| Fail(format!("{}: {e}", bin.display())))?;
        step(&format!(
            "dist: {} binary, {} bytes ({:.2} MiB), static",
            a.name,
            bytes.len(),
            bytes.len() as f64 / (1 << 20) as f64
        ));
        bins.push(bytes);
    }
    let generated = Generated::from_binary(&build_target_bin(&ARCHES[0]))?;
    let shipped = Shipped::read(src)?;
    let mut made = BTreeMap::new();
    for (a, bin) in ARCHES.iter().zip(&bins) {
        let tar_name = format!("spawnscope-{version}-{}.tar.gz", a.name);
        let tgz = tarball(
            &format!("spawnscope-{version}-{}", a.name),
            bin,
            &shipped,
            &generated,
            epoch,
        )?;
        let deb_name = format!("spawnscope_{version}_{}.deb", a.deb);
        let deb = deb(&version, a, bin, &shipped, &generated, epoch)?;
        for (name, data) in [(tar_name, tgz), (deb_name, deb)] {
            let p = out.join(&name);
            std::fs::write(&p, &data).map_err(|e| fail_io(&p, e))?;
            made.insert(name, hex(&sha2::Sha256::digest(&data)));
        }
    }
    let sums: String = made
        .iter()
        .map(|(name, sum)| format!("{sum}  {name}\n"))
        .collect();
    let p = out.join("SHA256SUMS");
    std::fs::write(&p, &sums).map_err(|e| fail_io(&p, e))?;
    for name in made.keys() {
        let size = std::fs::metadata(out.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        step(&format!("dist: {name} ({size} bytes)"));
    }
    made.insert(
        "SHA256SUMS".into(),
        hex(&sha2::Sha256::digest(sums.as_bytes())),
    );
    Ok(made)
}

/// spawn-workload, static, for every release architecture: the tests run
/// it beside the release binary where nothing else is (a VM's initramfs,
/// an old userland).
pub fn build_static_workloads() -> Result<(), Fail> {
    for a in &ARCHES {
        build_static(a, &["--release"], "spawnscope-workload")?;
    }
    Ok(())
}

/// The sentinel as it ships (static, musl, the release-dist profile), for
/// this host's architecture, built in place without dist's path maps: what
/// the footprint bench measures.
pub fn build_static_host_bin() -> Result<PathBuf, Fail> {
    let a = ARCHES
        .iter()
        .find(|a| a.triple.starts_with(std::env::consts::ARCH))
        .ok_or_else(|| {
            Fail(format!(
                "no release architecture for {}",
                std::env::consts::ARCH
            ))
        })?;
    build_static(a, &["--profile", PROFILE], "spawnscope")?;
    Ok(build_target_bin(a))
}

/// `cargo build` of one package, static for `a`, in this tree.
fn build_static(a: &Arch, profile: &[&str], package: &str) -> Result<(), Fail> {
    let mut c = cmd("cargo");
    c.arg("build")
        .args(profile)
        .args(["--locked", "--package", package, "--target", a.triple]);
    linker_env(&mut c, a);
    run_checked(&mut c)
}

fn linker_env(c: &mut std::process::Command, a: &Arch) {
    c.env(
        format!(
            "CARGO_TARGET_{}_LINKER",
            a.triple.to_uppercase().replace('-', "_")
        ),
        LINKER,
    );
}

fn build_target_bin(a: &Arch) -> PathBuf {
    workspace_root().join(format!("target/{}/{PROFILE}/spawnscope", a.triple))
}

/// A rustc wrapper that maps the paths of `src`, the registry and the
/// toolchains to fixed names, so that where the tree was built does not
/// change a byte. A wrapper, not RUSTFLAGS: the probe is built by a cargo
/// inside the build script that sets its own flags, and a wrapper reaches
/// it too.
fn remap_wrapper(src: &Path) -> Result<PathBuf, Fail> {
    // The target directory (OUT_DIR lies there) is shared by the builds
    // from every path. rustc applies the last map that matches, so the
    // longest prefixes go last: the tree's copy lies inside target/.
    let mut maps = vec![
        (src.to_path_buf(), "/spawnscope"),
        (workspace_root().join("target"), "/target"),
    ];
    maps.extend(home_maps());
    maps.sort_by_key(|(from, _)| from.as_os_str().len());
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut script = String::from(
        "#!/bin/sh\n# Written by `cargo xtask dist`: rustc, with build paths mapped to fixed names.\nexec \"$@\"",
    );
    for (from, to) in &maps {
        script.push(' ');
        script.push_str(&quote(&format!(
            "--remap-path-prefix={}={to}",
            from.display()
        )));
    }
    script.push('\n');
    let dir = workspace_root().join("target/dist-tools");
    std::fs::create_dir_all(&dir).map_err(|e| fail_io(&dir, e))?;
    let name = if src == workspace_root() {
        "rustc-remap".to_string()
    } else {
        "rustc-remap-check".to_string()
    };
    let path = dir.join(name);
    std::fs::write(&path, script).map_err(|e| fail_io(&path, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fail_io(&path, e))?;
    Ok(path)
}

/// `~/.cargo` and `~/.rustup`, and the fixed names they are mapped to.
fn home_maps() -> Vec<(PathBuf, &'static str)> {
    [
        ("CARGO_HOME", ".cargo", "/cargo"),
        ("RUSTUP_HOME", ".rustup", "/rustup"),
    ]
    .into_iter()
    .filter_map(|(var, dflt, to)| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(dflt)))
            .map(|d| (d, to))
    })
    .collect()
}

fn build_binary(src: &Path, wrapper: &Path, a: &Arch, epoch: u64) -> Result<PathBuf, Fail> {
    step(&format!(
        "dist: cargo build --profile {PROFILE} --target {} (in {})",
        a.triple,
        src.display()
    ));
    // The probe is built by a cargo inside userspace's build script, in
    // the build script's OUT_DIR, and that cargo cannot see the wrapper's
    // maps: a probe (or its core) left from a build with other maps would
    // be reused. Cleaning the package gives the build script a new OUT_DIR.
    // spawnscope-common too: cargo names path packages relative to their
    // workspace, so a build from another path would reuse its crate, and
    // the dep-info would name the other path's sources.
    run_checked(
        cmd("cargo")
            .current_dir(src)
            .arg(format!("+{STABLE}"))
            .args(["clean", "--profile", PROFILE, "--target", a.triple])
            .args(["--package", "spawnscope", "--package", "spawnscope-common"])
            .env("CARGO_TARGET_DIR", workspace_root().join("target")),
    )?;
    let mut c = cmd("cargo");
    c.current_dir(src)
        .arg(format!("+{STABLE}"))
        .args([
            "build",
            "--profile",
            PROFILE,
            "--locked",
            "--package",
            "spawnscope",
        ])
        .args(["--target", a.triple])
        .env("CARGO_TARGET_DIR", workspace_root().join("target"))
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("RUSTC_WRAPPER", wrapper)
        // The same maps again as flags, for cargo to see: it does not look
        // into a wrapper, and would reuse crates built without them. (The
        // tree's own map stays in the wrapper only: the crates it touches
        // are rebuilt for each path anyway, and the registry's need not be.)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            home_maps()
                .iter()
                .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
                .collect::<Vec<_>>()
                .join("\x1f"),
        )
        .env_remove("RUSTFLAGS");
    linker_env(&mut c, a);
    run_checked(&mut c)?;
    Ok(build_target_bin(a))
}

/// Checks that `elf` is for `a`, loads nothing at run time (no
/// interpreter, no needed libraries) and fits [`MAX_BINARY_BYTES`].
fn check_binary(a: &Arch, elf: &[u8]) -> Result<(), String> {
    let info = elf_info(elf)?;
    if info.machine != a.machine {
        return Err(format!(
            "ELF machine {} is not {}'s {}",
            info.machine, a.name, a.machine
        ));
    }
    if info.interpreter {
        return Err("has a program interpreter: not static".into());
    }
    if info.needed > 0 {
        return Err(format!(
            "needs {} shared libraries: not static",
            info.needed
        ));
    }
    if elf.len() as u64 > MAX_BINARY_BYTES {
        return Err(format!(
            "{} bytes, above the {} MiB limit",
            elf.len(),
            MAX_BINARY_BYTES >> 20
        ));
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
pub struct ElfInfo {
    pub machine: u16,
    pub interpreter: bool,
    /// DT_NEEDED entries.
    pub needed: usize,
}

/// The facts about a 64-bit little-endian ELF that make it static or not.
pub fn elf_info(b: &[u8]) -> Result<ElfInfo, String> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
    };
    if b.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let short = || "truncated ELF".to_string();
    let machine = u16_at(18).ok_or_else(short)?;
    let phoff = u64_at(32).ok_or_else(short)? as usize;
    let phentsize = u16_at(54).ok_or_else(short)? as usize;
    let phnum = u16_at(56).ok_or_else(short)? as usize;
    let mut info = ElfInfo {
        machine,
        interpreter: false,
        needed: 0,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(ph).ok_or_else(short)? {
            3 => info.interpreter = true,
            2 => {
                let off = u64_at(ph + 8).ok_or_else(short)? as usize;
                let size = u64_at(ph + 32).ok_or_else(short)? as usize;
                for e in (off..off + size).step_by(16) {
                    match u64_at(e).ok_or_else(short)? {
                        0 => break,
                        1 => info.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// What the binary writes about itself: man pages and completions, from
/// its clap definitions, so they cannot drift from `--help`.
struct Generated {
    /// (file name, roff)
    man: Vec<(String, Vec<u8>)>,
    /// Each shell's script.
    completions: Vec<(&'static Completion, Vec<u8>)>,
}

/// A shell's completion script: where each artifact puts it.
struct Completion {
    /// As `spawnscope completions SHELL` takes it.
    shell: &'static str,
    /// In the tarball's completions/.
    tarball: &'static str,
    /// In the .deb: where the shell's own packages look.
    deb: &'static str,
}

const COMPLETIONS: [Completion; 3] = [
    Completion {
        shell: "bash",
        tarball: "spawnscope.bash",
        deb: "usr/share/bash-completion/completions/spawnscope",
    },
    Completion {
        shell: "zsh",
        tarball: "_spawnscope",
        deb: "usr/share/zsh/vendor-completions/_spawnscope",
    },
    Completion {
        shell: "fish",
        tarball: "spawnscope.fish",
        deb: "usr/share/fish/vendor_completions.d/spawnscope.fish",
    },
];

impl Generated {
    fn from_binary(bin: &Path) -> Result<Self, Fail> {
        let dir = workspace_root().join("target/dist-man");
        let _ = std::fs::remove_dir_all(&dir);
        run_checked(cmd(bin).arg("man").arg("--out").arg(&dir))?;
        let mut man = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| fail_io(&dir, e))? {
            let p = e.map_err(|e| fail_io(&dir, e))?.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".1") {
                man.push((name, read(&p)?));
            }
        }
        man.sort();
        if !man.iter().any(|(n, _)| n == "spawnscope.1") {
            return Err(Fail(format!(
                "`spawnscope man` wrote no spawnscope.1 in {}",
                dir.display()
            )));
        }
        let mut completions = Vec::new();
        for c in &COMPLETIONS {
            let shell = c.shell;
            let out = cmd(bin)
                .args(["completions", shell])
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| Fail(format!("{}: {e}", bin.display())))?;
            if !out.status.success() || out.stdout.is_empty() {
                return Err(Fail(format!(
                    "`spawnscope completions {shell}` failed ({})",
                    out.status
                )));
            }
            completions.push((c, out.stdout));
        }
        Ok(Self { man, completions })
    }
}

/// The files the repository ships as they are.
struct Shipped {
    unit: String,
    config: Vec<u8>,
    rules: Vec<u8>,
    dashboard: Vec<u8>,
    install: Vec<u8>,
    license_mit: Vec<u8>,
    license_apache: Vec<u8>,
}

impl Shipped {
    fn read(root: &Path) -> Result<Self, Fail> {
        let unit = String::from_utf8(read(&root.join("dist/spawnscope-sentinel.service"))?)
            .map_err(|_| Fail("dist/spawnscope-sentinel.service is not UTF-8".into()))?;
        Ok(Self {
            unit,
            config: read(&root.join("dist/sentinel.toml"))?,
            rules: read(&root.join("dist/spawnscope.rules.yml"))?,
            dashboard: read(&root.join("dist/spawnscope.dashboard.json"))?,
            install: read(&root.join("dist/INSTALL"))?,
            license_mit: read(&root.join("LICENSE-MIT"))?,
            license_apache: read(&root.join("LICENSE-APACHE"))?,
        })
    }
}

/// Where the tarball's unit (and INSTALL) put the binary.
const TARBALL_BIN: &str = "/usr/local/bin/spawnscope";
const DEB_BIN: &str = "/usr/bin/spawnscope";

/// The unit with its Exec lines pointed at `bin`.
pub fn unit_for(unit: &str, bin: &str) -> Result<String, Fail> {
    let mut n = 0;
    let text: String = unit
        .lines()
        .map(|l| {
            if l.starts_with("Exec") && l.contains(TARBALL_BIN) {
                n += 1;
                l.replace(TARBALL_BIN, bin)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    if n == 0 {
        return Err(Fail(format!(
            "dist/spawnscope-sentinel.service has no Exec line running {TARBALL_BIN}"
        )));
    }
    Ok(text)
}

/// One member of an archive.
enum Member {
    Dir,
    File { mode: u32, data: Vec<u8> },
}

/// A tar.gz of `members` (paths as given, directories before what they
/// hold), every member owned by root and dated `epoch`.
fn tar_gz(members: &BTreeMap<String, Member>, epoch: u64) -> Result<Vec<u8>, Fail> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, m) in members {
        let mut h = tar::Header::new_gnu();
        // Written into the header as given: the builder's path handling
        // would drop the "./" that dpkg's data members carry.
        let name = path.as_bytes();
        let gnu = h.as_gnu_mut().expect("a GNU header");
        if name.len() >= gnu.name.len() {
            return Err(Fail(format!("archive path too long: {path}")));
        }
        gnu.name[..name.len()].copy_from_slice(name);
        h.set_mtime(epoch);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")
            .and_then(|()| h.set_groupname("root"))
            .map_err(|e| Fail(format!("tar header: {e}")))?;
        let data: &[u8] = match m {
            Member::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                &[]
            }
            Member::File { mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                data
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data)
            .map_err(|e| Fail(format!("tar {path}: {e}")))?;
    }
    let tar = b.into_inner().map_err(|e| Fail(format!("tar: {e}")))?;
    Ok(gzip(&tar))
}

/// gzip with no name and no time in its header (`gzip -n`).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    z.write_all(data).expect("gzip into memory");
    z.finish().expect("gzip into memory")
}

/// Adds `path` and every directory above it (with `prefix`, "" or "./").
fn add(members: &mut BTreeMap<String, Member>, prefix: &str, path: &str, m: Member) {
    let mut at = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    if !prefix.is_empty() {
        members.insert(prefix.to_string(), Member::Dir);
    }
    for p in &parts[..parts.len() - 1] {
        at.push_str(p);
        at.push('/');
        members.insert(format!("{prefix}{at}"), Member::Dir);
    }
    members.insert(format!("{prefix}{path}"), m);
}

fn file(mode: u32, data: &[u8]) -> Member {
    Member::File {
        mode,
        data: data.to_vec(),
    }
}

fn tarball(top: &str, bin: &[u8], s: &Shipped, g: &Generated, epoch: u64) -> Result<Vec<u8>, Fail> {
    let mut m = BTreeMap::new();
    let mut put = |path: String, member: Member| add(&mut m, "", &format!("{top}/{path}"), member);
    put("spawnscope".into(), file(0o755, bin));
    put(
        "spawnscope-sentinel.service".into(),
        file(0o644, unit_for(&s.unit, TARBALL_BIN)?.as_bytes()),
    );
    put("sentinel.toml".into(), file(0o644, &s.config));
    put("spawnscope.rules.yml".into(), file(0o644, &s.rules));
    put(
        "spawnscope.dashboard.json".into(),
        file(0o644, &s.dashboard),
    );
    put("INSTALL".into(), file(0o644, &s.install));
    put("LICENSE-MIT".into(), file(0o644, &s.license_mit));
    put("LICENSE-APACHE".into(), file(0o644, &s.license_apache));
    for (name, roff) in &g.man {
        put(format!("man/{name}"), file(0o644, roff));
    }
    for (c, script) in &g.completions {
        put(format!("completions/{}", c.tarball), file(0o644, script));
    }
    tar_gz(&m, epoch)
}

const POSTINST: &str = "#!/bin/sh
set -e
if [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    # An upgrade puts a running sentinel on the new binary. A first install
    # starts nothing: the operator enables the sentinel.
    if [ -n \"$2\" ]; then
        systemctl try-restart spawnscope-sentinel.service >/dev/null 2>&1 || true
    fi
fi
";

const PRERM: &str = "#!/bin/sh
set -e
if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then
    # Stopped and disabled while its unit file is still there to read.
    systemctl disable --now spawnscope-sentinel.service >/dev/null 2>&1 || true
fi
";

const POSTRM: &str = "#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ \"$1\" = purge ]; then
    # Totals, findings and alerts the sentinel kept, and its configuration.
    rm -rf /var/lib/spawnscope /var/log/spawnscope /etc/spawnscope
fi
";

const CONFFILE: &str = "/etc/spawnscope/sentinel.toml";

/// /usr/share/doc/spawnscope/copyright, machine-readable (DEP-5), with
/// the MIT text in full and the Apache licence by reference to the copy
/// every Debian system has.
fn copyright(mit: &[u8]) -> Result<String, Fail> {
    let mit = std::str::from_utf8(mit).map_err(|_| Fail("LICENSE-MIT is not UTF-8".into()))?;
    let body: String = mit
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                " .\n".to_string()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: spawnscope\n\n\
         Files: *\n\
         Copyright: The spawnscope developers\n\
         License: MIT or Apache-2.0\n\n\
         License: MIT\n{body}\n\
         License: Apache-2.0\n\
         \x20On Debian systems, the complete text of the Apache License 2.0 is in\n\
         \x20/usr/share/common-licenses/Apache-2.0.\n"
    ))
}

fn deb(
    version: &str,
    a: &Arch,
    bin: &[u8],
    s: &Shipped,
    g: &Generated,
    epoch: u64,
) -> Result<Vec<u8>, Fail> {
    let mut data = BTreeMap::new();
    let mut put = |path: &str, member: Member| add(&mut data, "./", path, member);
    put("usr/bin/spawnscope", file(0o755, bin));
    put(
        "lib/systemd/system/spawnscope-sentinel.service",
        file(0o644, unit_for(&s.unit, DEB_BIN)?.as_bytes()),
    );
    put(&CONFFILE[1..], file(0o644, &s.config));
    put(
        "usr/share/spawnscope/spawnscope.rules.yml",
        file(0o644, &s.rules),
    );
    put(
        "usr/share/spawnscope/spawnscope.dashboard.json",
        file(0o644, &s.dashboard),
    );
    put(
        "usr/share/doc/spawnscope/copyright",
        file(0o644, copyright(&s.license_mit)?.as_bytes()),
    );
    for (name, roff) in &g.man {
        put(
            &format!("usr/share/man/man1/{name}.gz"),
            file(0o644, &gzip(roff)),
        );
    }
    for (c, script) in &g.completions {
        put(c.deb, file(0o644, script));
    }

    // dpkg-gencontrol's measure: each file's KiB, rounded up, and one per
    // directory.
    let installed_kib: u64 = data
        .values()
        .map(|m| match m {
            Member::Dir => 1,
            Member::File { data, .. } => (data.len() as u64).div_ceil(1024),
        })
        .sum();
    let md5sums: String = data
        .iter()
        .filter_map(|(path, m)| match m {
            Member::File { data, .. } if &path[1..] != CONFFILE => Some(format!(
                "{}  {}\n",
                hex(&md5::Md5::digest(data)),
                &path[2..]
            )),
            _ => None,
        })
        .collect();
    let control = format!(
        "Package: spawnscope\n\
         Version: {version}\n\
         Architecture: {}\n\
         Maintainer: The spawnscope developers <spawnscope@packages.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Section: admin\n\
         Priority: optional\n\
         Description: eBPF process-spawn tracer: respawn loops per systemd unit\n\
         \x20spawnscope counts fork, exec and exit per cgroup in the kernel, names each\n\
         \x20cgroup's systemd unit, reports respawn loops as they start, forecasts\n\
         \x20memory exhaustion and names OOM victims. The sentinel service\n\
         \x20(spawnscope-sentinel) runs resident, alerts through the journal and\n\
         \x20serves Prometheus metrics; it is not started until enabled.\n",
        a.deb
    );
    let mut ctl = BTreeMap::new();
    for (name, mode, text) in [
        ("control", 0o644, control.as_str()),
        ("conffiles", 0o644, &format!("{CONFFILE}\n")),
        ("md5sums", 0o644, md5sums.as_str()),
        ("postinst", 0o755, POSTINST),
        ("prerm", 0o755, PRERM),
        ("postrm", 0o755, POSTRM),
    ] {
        add(&mut ctl, "./", name, file(mode, text.as_bytes()));
    }
    let members: [(&str, Vec<u8>); 3] = [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", tar_gz(&ctl, epoch)?),
        ("data.tar.gz", tar_gz(&data, epoch)?),
    ];
    Ok(ar(&members, epoch))
}

/// A System V `ar` archive, as dpkg reads a .deb.
fn ar(members: &[(&str, Vec<u8>)], epoch: u64) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            epoch,
            0,
            0,
            "100644",
            data.len()
        );
        debug_assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        assert!(!Options::parse(&[]).unwrap().check_reproducible);
        let o =
            Options::parse(&["--out".into(), "/x".into(), "--check-reproducible".into()]).unwrap();
        assert_eq!(o.out, PathBuf::from("/x"));
        assert!(o.check_reproducible);
        assert!(Options::parse(&["--out".into()]).is_err());
        assert!(Options::parse(&["--fast".into()]).is_err());
    }

    #[test]
    fn unit_exec_lines_follow_the_binary() {
        let unit = "# copy to /usr/local/bin/spawnscope\n[Service]\n\
                    ExecStartPre=/usr/local/bin/spawnscope sentinel --check-config\n\
                    ExecStart=/usr/local/bin/spawnscope sentinel\n";
        let deb = unit_for(unit, DEB_BIN).unwrap();
        assert!(deb.contains("ExecStart=/usr/bin/spawnscope sentinel\n"));
        assert!(deb.contains("ExecStartPre=/usr/bin/spawnscope sentinel --check-config\n"));
        // Only Exec lines are rewritten.
        assert!(deb.starts_with("# copy to /usr/local/bin/spawnscope\n"));
        assert!(unit_for("[Service]\nExecStart=/bin/true\n", DEB_BIN).is_err());
    }

    #[test]
    fn ar_headers_are_60_bytes_and_members_even() {
        let a = ar(
            &[("debian-binary", b"2.0\n".to_vec()), ("x", b"abc".to_vec())],
            7,
        );
        assert!(a.starts_with(
            b"!<arch>\ndebian-binary   7           0     0     100644  4         `\n2.0\n"
        ));
        assert_eq!(a.len(), 8 + 60 + 4 + 60 + 3 + 1);
    }

    #[test]
    fn tar_gz_is_deterministic_and_keeps_dot_slash() {
        let mut m = BTreeMap::new();
        add(&mut m, "./", "usr/bin/x", file(0o755, b"hi"));
        let a = tar_gz(&m, 1_700_000_000).unwrap();
        let b = tar_gz(&m, 1_700_000_000).unwrap();
        assert_eq!(a, b);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
        let names: Vec<(String, u64, u32)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8_lossy(&h.as_gnu().unwrap().name)
                        .trim_end_matches('\0')
                        .to_string(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("./".to_string(), 1_700_000_000, 0o755),
                ("./usr/".to_string(), 1_700_000_000, 0o755),
                ("./usr/bin/".to_string(), 1_700_000_000, 0o755),
                ("./usr/bin/x".to_string(), 1_700_000_000, 0o755),
            ]
        );
        // gzip -n: no time in the header.
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn elf_info_reads_this_test_binary() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = elf_info(&me).unwrap();
        let want = if cfg!(target_arch = "x86_64") {
            62
        } else {
            183
        };
        assert_eq!(info.machine, want);
        // A glibc test binary: dynamic, with libc among its needs.
        assert!(info.interpreter);
        assert!(info.needed >= 1);
        assert!(elf_info(b"\x7fELF\x01\x01").is_err());
        assert!(elf_info(&me[..40]).is_err());
    }
}
