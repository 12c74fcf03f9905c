//! A throwaway virtual machine for what this host cannot do to itself: a
//! Debian 6.12 kernel (another kernel than the host's) booted under qemu
//! with software emulation, from an initramfs that holds spawnscope, the
//! test workload and busybox, and whose /init is the test's script. The
//! console is the test's output. Used for a real global OOM kill (the VM
//! runs out of memory, not the host) on a pure cgroup2 layout.
//!
//! Kernel packages are fetched once with `apt-get download` into
//! /var/cache/spawnscope-tests/<meta-package> (outside the repo), under a
//! file lock, with retries; qemu-system-x86 and busybox-static come from
//! `cargo xtask setup`.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    skip,
    systemd::{Lock, have, run_with_timeout},
};

/// Where a test kernel comes from: a meta-package that always depends on
/// the current kernel of a series (serial console and initramfs support
/// built in), from the host's apt sources or from `apt` lines of its own
/// (fetched into a private apt state, the host's left alone).
pub struct KernelSource {
    /// Cache directory name under /var/cache/spawnscope-tests.
    pub name: &'static str,
    pub meta: &'static str,
    pub sources: Option<&'static str>,
    /// A dpkg architecture other than the host's.
    pub arch: Option<&'static str>,
}

/// Linux 6.12 (bookworm-security): `mark_victim` passes the victim's task.
pub const KERNEL_6_12: KernelSource = KernelSource {
    name: "linux-image-6.12-cloud-amd64",
    meta: "linux-image-6.12-cloud-amd64",
    sources: None,
    arch: None,
};
/// Bookworm's 6.1: no `group_dead` in `sched_process_exit`, and the
/// pre-6.2 `mm_rss_stat` layout.
pub const KERNEL_6_1: KernelSource = KernelSource {
    name: "linux-image-cloud-amd64",
    meta: "linux-image-cloud-amd64",
    sources: None,
    arch: None,
};
/// Bullseye's 5.10, the oldest Debian kernel with BTF.
pub const KERNEL_5_10: KernelSource = KernelSource {
    name: "bullseye-linux-image-cloud-amd64",
    meta: "linux-image-cloud-amd64",
    sources: Some(
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian-security bullseye-security main",
    ),
    arch: None,
};
/// Bookworm's arm64 6.1 (the generic flavour: its PL011 console driver is
/// built in, as `-machine virt` needs), with BTF.
pub const KERNEL_ARM64_6_1: KernelSource = KernelSource {
    name: "arm64-linux-image-arm64",
    meta: "linux-image-arm64",
    sources: Some(BOOKWORM_ARM64),
    arch: Some("arm64"),
};

const BOOKWORM_ARM64: &str = "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
     http://deb.debian.org/debian bookworm main\n\
     deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
     http://deb.debian.org/debian-security bookworm-security main";

/// Written last, beside `root/`: a directory without it is a half-done fetch.
const STAMP: &str = ".spawnscope-package-complete";

fn cache_dir(name: &str) -> PathBuf {
    PathBuf::from("/var/cache/spawnscope-tests").join(name)
}

/// `-o` options pointing apt at a private sources list and state in `dir`
/// (for `arch`, if given).
fn private_apt(dir: &Path, sources: &str, arch: Option<&str>) -> Vec<String> {
    for d in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir private apt state");
    }
    fs::write(dir.join("sources.list"), format!("{sources}\n")).expect("write sources.list");
    fs::write(dir.join("status"), b"").expect("write empty dpkg status");
    let mut opts: Vec<String> = [
        ("Dir::Etc::SourceList", "sources.list"),
        ("Dir::Etc::SourceParts", "no-parts"),
        ("Dir::State::Lists", "lists"),
        ("Dir::Cache", "cache"),
        ("Dir::State::status", "status"),
    ]
    .iter()
    .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={}", dir.join(v).display())])
    .collect();
    if let Some(a) = arch {
        opts.extend([
            "-o".to_string(),
            format!("APT::Architecture={a}"),
            "-o".to_string(),
            format!("APT::Architectures={a}"),
        ]);
    }
    opts
}

/// Whether this host can run an x86_64 VM; false after a loud skip.
pub fn available(test: &str) -> bool {
    available_with(test, "qemu-system-x86_64", "qemu-system-x86")
}

/// Whether this host can run an aarch64 VM; false after a loud skip.
pub fn available_arm64(test: &str) -> bool {
    available_with(test, "qemu-system-aarch64", "qemu-system-arm")
}

fn available_with(test: &str, qemu: &str, qemu_pkg: &str) -> bool {
    for (prog, pkg) in [
        (qemu, qemu_pkg),
        ("busybox", "busybox-static"),
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
    ] {
        if !have(prog) {
            skip(&format!(
                "{test}: no {prog} (package {pkg}; cargo xtask test installs it)"
            ));
            return false;
        }
    }
    true
}

/// The files of a Debian package, fetched once into
/// /var/cache/spawnscope-tests/`name` and unpacked there (`root/`) by
/// `dpkg-deb -x`, under a file lock, with retries. `package` is the
/// package, or with `resolve_meta` a meta-package whose kernel dependency
/// is fetched instead.
fn fetch_package(
    name: &str,
    package: &str,
    resolve_meta: bool,
    sources: Option<&str>,
    arch: Option<&str>,
) -> PathBuf {
    let dir = cache_dir(name);
    if dir.join(STAMP).exists() {
        return dir.join("root");
    }
    let parent = dir.parent().expect("cache dir has a parent");
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    let _lock = Lock::take(&parent.join(format!(".{name}.lock")));
    if dir.join(STAMP).exists() {
        return dir.join("root");
    }
    let tmp = parent.join(format!(".{name}.fetching"));
    let _ = fs::remove_dir_all(&tmp);
    let apt_opts = match sources {
        Some(lines) => {
            let opts = private_apt(&tmp.join("apt"), lines, arch);
            let mut ok = false;
            for attempt in 1..=3 {
                eprintln!("vm fixture: apt-get update for {name} (attempt {attempt})");
                let out = run_with_timeout(
                    Command::new("apt-get").args(&opts).args(["update", "-q"]),
                    Duration::from_secs(300),
                );
                if out.status.success() {
                    ok = true;
                    break;
                }
                std::thread::sleep(Duration::from_secs(5 * attempt));
            }
            assert!(ok, "apt-get update for {name} failed 3 times");
            opts
        }
        None => Vec::new(),
    };
    let package = if resolve_meta {
        let deps = run_with_timeout(
            Command::new("apt-cache")
                .args(&apt_opts)
                .args(["depends", package]),
            Duration::from_secs(60),
        );
        let deps = String::from_utf8_lossy(&deps.stdout);
        deps.lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .filter(|p| p.starts_with("linux-image-"))
            .unwrap_or_else(|| panic!("apt-cache depends {package} names no kernel:\n{deps}"))
            .to_string()
    } else {
        package.to_string()
    };
    let fetch = tmp.join("deb");
    let mut last = String::new();
    for attempt in 1..=3 {
        let _ = fs::remove_dir_all(&fetch);
        fs::create_dir_all(&fetch).expect("mkdir fetch dir");
        eprintln!("vm fixture: apt-get download {package} (attempt {attempt})");
        let out = run_with_timeout(
            Command::new("apt-get")
                .args(&apt_opts)
                .args(["download", "-q", &package])
                .current_dir(&fetch),
            Duration::from_secs(600),
        );
        if out.status.success() {
            let deb = fs::read_dir(&fetch)
                .expect("read fetch dir")
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "deb"))
                .expect("apt-get download wrote a .deb");
            let staged = tmp.join("root");
            let x = run_with_timeout(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staged),
                Duration::from_secs(120),
            );
            assert!(x.status.success(), "dpkg-deb -x {}", deb.display());
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("mkdir package cache");
            fs::rename(&staged, dir.join("root")).expect("move unpacked package");
            fs::write(dir.join(STAMP), b"").expect("write stamp");
            let _ = fs::remove_dir_all(&tmp);
            return dir.join("root");
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_secs(5 * attempt));
    }
    let _ = fs::remove_dir_all(&tmp);
    panic!("apt-get download {package} failed 3 times:\n{last}");
}

/// The cached kernel image of `src`, fetched on first use; and its
/// release.
pub fn kernel(src: &KernelSource) -> (PathBuf, String) {
    let root = fetch_package(src.name, src.meta, true, src.sources, src.arch);
    let image = fs::read_dir(root.join("boot"))
        .expect("the package has /boot")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .expect("a vmlinuz in the package");
    let release = image
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    (image, release)
}

/// busybox (static) for arm64, from bookworm's busybox-static:arm64.
pub fn busybox_arm64() -> PathBuf {
    fetch_package(
        "arm64-busybox-static",
        "busybox-static",
        false,
        Some(BOOKWORM_ARM64),
        Some("arm64"),
    )
    .join("bin/busybox")
}

/// An initramfs in the kernel's `newc` cpio format, uncompressed.
#[derive(Default)]
pub struct Initramfs {
    out: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
    files: std::collections::BTreeSet<String>,
}

impl Initramfs {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
        self.out.extend_from_slice(data);
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn parents(&mut self, path: &str) {
        let mut at = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for p in &parts[..parts.len() - 1] {
            at = if at.is_empty() {
                p.to_string()
            } else {
                format!("{at}/{p}")
            };
            if self.dirs.insert(at.clone()) {
                self.entry(&at, 0o040755, &[]);
            }
        }
    }

    pub fn dir(&mut self, path: &str) {
        self.parents(&format!("{path}/x"));
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.parents(path);
        self.entry(path, 0o100000 | mode, data);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entry(path, 0o120777, target.as_bytes());
    }

    /// A host binary at `path`, without its debug info, with the shared
    /// libraries `ldd` says it loads at their host paths.
    pub fn binary(&mut self, host: &Path, path: &str) {
        let stripped = tempfile::NamedTempFile::new().expect("temp file");
        let st = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(stripped.path())
            .arg(host)
            .status();
        let bytes = if st.is_ok_and(|s| s.success()) {
            fs::read(stripped.path())
        } else {
            fs::read(host)
        }
        .unwrap_or_else(|e| panic!("read {}: {e}", host.display()));
        self.file(path, 0o755, &bytes);
        let ldd = run_with_timeout(Command::new("ldd").arg(host), Duration::from_secs(30));
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            // Each library once, with the contents its symlinks lead to.
            if self.files.insert(lib.to_string()) {
                let data = fs::read(lib).unwrap_or_else(|e| panic!("read {lib}: {e}"));
                self.file(lib, 0o755, &data);
            }
        }
    }

    /// busybox with links for the applets a script uses.
    pub fn busybox(&mut self, applets: &[&str]) {
        let bb = which("busybox").expect("busybox (package busybox-static)");
        self.busybox_from(&bb, applets);
    }

    /// [`Initramfs::busybox`] with the (static) busybox at `bb`.
    pub fn busybox_from(&mut self, bb: &Path, applets: &[&str]) {
        let data = fs::read(bb).unwrap_or_else(|e| panic!("read {}: {e}", bb.display()));
        self.file("bin/busybox", 0o755, &data);
        for a in applets {
            self.symlink(&format!("bin/{a}"), "busybox");
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Boots `kernel` with `initramfs` and `mem_mib` of memory under qemu's
/// software emulation (no KVM: not every host has it), and returns the
/// console output. The script must end with `poweroff -f`.
pub fn boot(kernel: &Path, initramfs: &[u8], mem_mib: u32, limit: Duration) -> String {
    let mut qemu = Command::new("qemu-system-x86_64");
    // One vCPU: with two, TCG can let one CPU run kernel code that the
    // other is live-patching (an int3 oops in do_exit as the probe's
    // tracepoints are switched on).
    qemu.args(["-m", &mem_mib.to_string(), "-smp", "1", "-cpu", "max"]);
    run_qemu(qemu, "ttyS0", kernel, initramfs, limit)
}

/// [`boot`] for an arm64 kernel: qemu's `virt` machine, emulated.
pub fn boot_arm64(kernel: &Path, initramfs: &[u8], mem_mib: u32, limit: Duration) -> String {
    let mut qemu = Command::new("qemu-system-aarch64");
    qemu.args(["-machine", "virt", "-cpu", "max", "-smp", "1"])
        .args(["-m", &mem_mib.to_string()]);
    run_qemu(qemu, "ttyAMA0", kernel, initramfs, limit)
}

fn run_qemu(
    mut qemu: Command,
    console: &str,
    kernel: &Path,
    initramfs: &[u8],
    limit: Duration,
) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let initrd = dir.path().join("initrd.cpio");
    fs::write(&initrd, initramfs).expect("write initramfs");
    let out = run_with_timeout(
        qemu.args(["-accel", "tcg", "-nodefaults", "-no-reboot"])
            .args(["-display", "none", "-serial", "stdio"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &format!("console={console} panic=-1 quiet")]),
        limit,
    );
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.success(),
        "qemu failed ({}): {}\nconsole:\n{console}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    console
}

/// The lines a script printed between `VM-OUTPUT-BEGIN` and
/// `VM-OUTPUT-END`.
pub fn section(console: &str) -> Vec<String> {
    console
        .lines()
        .skip_while(|l| !l.contains("VM-OUTPUT-BEGIN"))
        .skip(1)
        .take_while(|l| !l.contains("VM-OUTPUT-END"))
        .map(str::to_string)
        .collect()
}

/// The busybox applets the test scripts use.
const APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "cat", "sleep", "echo", "grep", "kill", "poweroff", "true", "false",
    "sed", "wget", "ifconfig", "rmdir",
];

/// An initramfs with spawnscope and spawn-workload (the test builds, with
/// the shared libraries they load) in /bin, the busybox applets a test
/// script uses, and `init` as /init.
pub fn spawnscope_initramfs(init: &str) -> Vec<u8> {
    let mut ir = Initramfs::default();
    ir.busybox(APPLETS);
    ir.binary(&crate::spawnscope_bin(), "bin/spawnscope");
    ir.binary(&crate::workload_bin(), "bin/spawn-workload");
    for d in ["proc", "sys", "dev", "tmp"] {
        ir.dir(d);
    }
    ir.file("init", 0o755, init.as_bytes());
    ir.finish()
}

/// An initramfs with no userland but a static busybox: the static release
/// binary `spawnscope` and a static `workload`, copied byte for byte (no
/// libraries: there are none to load), and `init` as /init.
pub fn static_initramfs(busybox: &Path, spawnscope: &Path, workload: &Path, init: &str) -> Vec<u8> {
    let mut ir = Initramfs::default();
    ir.busybox_from(busybox, APPLETS);
    for (host, path) in [
        (spawnscope, "bin/spawnscope"),
        (workload, "bin/spawn-workload"),
    ] {
        let data = fs::read(host).unwrap_or_else(|e| panic!("read {}: {e}", host.display()));
        ir.file(path, 0o755, &data);
    }
    for d in ["proc", "sys", "dev", "tmp"] {
        ir.dir(d);
    }
    ir.file("init", 0o755, init.as_bytes());
    ir.finish()
}

/// The host's static busybox (busybox-static).
pub fn busybox_host() -> PathBuf {
    which("busybox").expect("busybox (package busybox-static)")
}

/// The rest of the console line `VM: <what> ...` a script printed.
pub fn said(console: &str, what: &str) -> String {
    console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("VM: {what} ")))
        .unwrap_or_else(|| panic!("no 'VM: {what}' line:\n{console}"))
        .trim()
        .to_string()
}

/// The /init script a VM test runs: mounts, `spawnscope trace --json`
/// started and waited for, then `body`, then the trace stopped with
/// SIGINT, its stderr and (between the markers [`section`] reads) its JSON
/// printed, and the VM powered off. `body` may print `VM: <what> <value>`
/// lines for [`said`].
pub fn script(body: &str) -> String {
    format!(
        r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /sys/fs/cgroup /tmp
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
echo "VM: kernel $(cat /proc/sys/kernel/osrelease)"
/bin/spawnscope trace --json --interval 1s --mem-interval 200ms > /tmp/out.jsonl 2> /tmp/err.txt &
T=$!
n=0
while ! grep -q "spawnscope: tracing" /tmp/err.txt && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
{body}
kill -INT $T
wait $T
echo "VM: spawnscope exit $?"
cat /tmp/err.txt
echo VM-OUTPUT-BEGIN
cat /tmp/out.jsonl
echo VM-OUTPUT-END
poweroff -f
"#
    )
}

/// Script lines: a process leaking 64 MiB/s into `/limited` (memory.max
/// 64M) until the kernel kills it; prints `VM: memcg pid` and `VM: memcg
/// exit`, and leaves the sampler a second to see the cgroup's counter.
pub const MEMCG_KILL: &str = r#"mkdir /sys/fs/cgroup/limited
echo 64M > /sys/fs/cgroup/limited/memory.max
sh -c 'echo $$ > /sys/fs/cgroup/limited/cgroup.procs; exec /bin/spawn-workload --leak-mib-per-s 64' &
M=$!
echo "VM: memcg pid $M"
wait $M
echo "VM: memcg exit $?"
sleep 1"#;
