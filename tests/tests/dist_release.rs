//! The release artifacts of `cargo xtask dist`, checked against their
//! SHA256SUMS and unpacked as an operator would: each binary is static and
//! within its size limit; the tarball and the .deb hold exactly what they
//! promise; the shipped completions are what the binary itself prints. On
//! the host kernel the x86_64 release binary counts a known mix exactly and
//! its sentinel serves /metrics; where the kernel has no BTF it exits 4
//! with one line that names it.

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use spawnscope_tests::{
    assert_exact_counts_bin,
    dist::{self, Arch},
    require_root,
    sentinel::{Sentinel, config},
    systemd::run_with_timeout,
};

const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

/// The manual pages: the top command and each visible subcommand.
const MAN_PAGES: [&str; 8] = [
    "spawnscope.1",
    "spawnscope-analyze.1",
    "spawnscope-completions.1",
    "spawnscope-doctor.1",
    "spawnscope-export.1",
    "spawnscope-postmortem.1",
    "spawnscope-sentinel.1",
    "spawnscope-trace.1",
];

fn lines(out: &std::process::Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn binaries_are_static_and_within_8_mib() {
    for a in ARCHES {
        let Some(u) = dist::unpack(a, "dist_release") else {
            return;
        };
        let what = dist::file_says(&u.bin());
        let arch = match a {
            Arch::X86_64 => "x86-64",
            Arch::Aarch64 => "ARM aarch64",
        };
        assert!(what.contains(arch), "{}: {what}", a.name());
        assert!(
            what.contains("statically linked") || what.contains("static-pie linked"),
            "{}: {what}",
            a.name()
        );
        assert!(!what.contains("interpreter"), "{}: {what}", a.name());
        let size = std::fs::metadata(u.bin()).unwrap().len();
        assert!(size <= 8 << 20, "{}: {size} bytes", a.name());
        eprintln!(
            "release binary {}: {size} bytes ({:.2} MiB): {what}",
            a.name(),
            size as f64 / (1 << 20) as f64
        );
    }
}

#[test]
fn tarball_holds_exactly_what_it_promises() {
    for a in ARCHES {
        let Some(dir) = dist::checked_dir("dist_release") else {
            return;
        };
        let out = run_with_timeout(
            Command::new("tar")
                .arg("-tzvf")
                .arg(dir.join(dist::tarball_name(a))),
            Duration::from_secs(60),
        );
        assert!(out.status.success());
        let top = format!("spawnscope-{}-{}/", dist::version(), a.name());
        let mut names = BTreeSet::new();
        for l in lines(&out) {
            // "-rwxr-xr-x root/root 4281312 2026-11-30 20:00 top/spawnscope"
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[1], "root/root", "{l}");
            let name = f[5];
            assert!(name.starts_with(&top), "{l}");
            let mode = f[0];
            let rel = &name[top.len()..];
            match rel {
                "" | "man/" | "completions/" => assert!(mode.starts_with('d'), "{l}"),
                "spawnscope" => assert_eq!(mode, "-rwxr-xr-x", "{l}"),
                _ => assert_eq!(mode, "-rw-r--r--", "{l}"),
            }
            names.insert(rel.to_string());
        }
        let mut want: BTreeSet<String> = [
            "",
            "spawnscope",
            "spawnscope-sentinel.service",
            "sentinel.toml",
            "spawnscope.rules.yml",
            "spawnscope.dashboard.json",
            "INSTALL",
            "LICENSE-MIT",
            "LICENSE-APACHE",
            "man/",
            "completions/",
            "completions/spawnscope.bash",
            "completions/_spawnscope",
            "completions/spawnscope.fish",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        want.extend(MAN_PAGES.iter().map(|m| format!("man/{m}")));
        assert_eq!(names, want, "{}", a.name());
    }
}

#[test]
fn shipped_completions_and_man_pages_are_the_binarys_own() {
    let Some(u) = dist::unpack(Arch::X86_64, "dist_release") else {
        return;
    };
    for (shell, file) in [
        ("bash", "spawnscope.bash"),
        ("zsh", "_spawnscope"),
        ("fish", "spawnscope.fish"),
    ] {
        let out = Command::new(u.bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "completions {shell}");
        let shipped = std::fs::read(u.top.join("completions").join(file)).unwrap();
        assert_eq!(out.stdout, shipped, "{file} drifted from the binary");
    }
    let bash = run_with_timeout(
        Command::new("bash")
            .arg("-n")
            .arg(u.top.join("completions/spawnscope.bash")),
        Duration::from_secs(30),
    );
    assert!(
        bash.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&bash.stderr)
    );
    let fresh = tempfile::tempdir().unwrap();
    let st = Command::new(u.bin())
        .arg("man")
        .arg("--out")
        .arg(fresh.path())
        .status()
        .unwrap();
    assert!(st.success());
    for m in MAN_PAGES {
        let shipped = std::fs::read(u.top.join("man").join(m)).unwrap();
        assert_eq!(
            std::fs::read(fresh.path().join(m)).unwrap(),
            shipped,
            "{m} drifted from the binary"
        );
        let text = String::from_utf8_lossy(&shipped);
        assert!(text.contains("\n.TH spawnscope"), "{m}: not a man page");
    }
    let trace =
        String::from_utf8_lossy(&std::fs::read(u.top.join("man/spawnscope-trace.1")).unwrap())
            .into_owned();
    assert!(
        trace.contains("\nsudo spawnscope trace \\-\\-for 60s\n"),
        "the trace page carries its examples:\n{trace}"
    );
}

#[test]
fn deb_installs_to_fhs_places() {
    for a in ARCHES {
        let Some(dir) = dist::checked_dir("dist_release") else {
            return;
        };
        let deb = dir.join(dist::deb_name(a));
        let field = |f: &str| {
            let out = Command::new("dpkg-deb")
                .arg("--field")
                .arg(&deb)
                .arg(f)
                .output()
                .unwrap();
            assert!(out.status.success(), "dpkg-deb --field {f}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(field("Package"), "spawnscope");
        assert_eq!(field("Version"), dist::version());
        assert_eq!(field("Architecture"), a.deb());
        let contents = run_with_timeout(
            Command::new("dpkg-deb").arg("--contents").arg(&deb),
            Duration::from_secs(60),
        );
        assert!(contents.status.success());
        let files: BTreeSet<String> = lines(&contents)
            .iter()
            .filter(|l| l.starts_with('-'))
            .map(|l| {
                assert!(l.contains(" root/root "), "{l}");
                l.split_whitespace().last().unwrap().to_string()
            })
            .collect();
        let mut want: BTreeSet<String> = [
            "./usr/bin/spawnscope",
            "./lib/systemd/system/spawnscope-sentinel.service",
            "./etc/spawnscope/sentinel.toml",
            "./usr/share/spawnscope/spawnscope.rules.yml",
            "./usr/share/spawnscope/spawnscope.dashboard.json",
            "./usr/share/doc/spawnscope/copyright",
            "./usr/share/bash-completion/completions/spawnscope",
            "./usr/share/zsh/vendor-completions/_spawnscope",
            "./usr/share/fish/vendor_completions.d/spawnscope.fish",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        want.extend(
            MAN_PAGES
                .iter()
                .map(|m| format!("./usr/share/man/man1/{m}.gz")),
        );
        assert_eq!(files, want, "{}", a.name());
        let conffiles = Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("conffiles")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&conffiles.stdout),
            "/etc/spawnscope/sentinel.toml\n"
        );
        let size = std::fs::metadata(&deb).unwrap().len();
        eprintln!("{}: {size} bytes", dist::deb_name(a));
    }
}

#[test]
fn host_kernel_counts_a_known_mix_exactly() {
    if !require_root("dist_release") {
        return;
    }
    let Some(u) = dist::unpack(Arch::X86_64, "dist_release") else {
        return;
    };
    let workload = dist::static_workload(Arch::X86_64);
    assert_exact_counts_bin(&u.bin(), &workload, "dist-exact", &[]);
}

#[test]
fn host_kernel_sentinel_serves_metrics() {
    if !require_root("dist_release") {
        return;
    }
    let Some(u) = dist::unpack(Arch::X86_64, "dist_release") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Sentinel::start_bin(&u.bin(), dir.path(), &config(dir.path(), ""), &[]);
    let (code, body) = s.get("/metrics");
    assert_eq!(code, 200, "{body}");
    for metric in [
        "spawnscope_spawns_total",
        "spawnscope_polls_total",
        "spawnscope_resident_memory_bytes",
    ] {
        assert!(body.contains(metric), "no {metric} in:\n{body}");
    }
    s.signal(libc::SIGTERM);
    let (code, err) = s.wait();
    assert_eq!(code, Some(0), "{err}");
}

/// Runs `bin ARGS` where /sys/kernel/btf is an empty directory, as on a
/// kernel built without CONFIG_DEBUG_INFO_BTF (in a mount namespace of its
/// own; the host's view is untouched).
fn without_btf(bin: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_with_timeout(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .args([
                "sh",
                "-c",
                "mount -t tmpfs none /sys/kernel/btf && exec \"$@\"",
                "sh",
            ])
            .arg(bin)
            .args(args),
        Duration::from_secs(60),
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kernel_without_btf_exits_4_naming_it() {
    if !require_root("dist_release") {
        return;
    }
    let Some(u) = dist::unpack(Arch::X86_64, "dist_release") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, config(dir.path(), "")).unwrap();
    let cfg = cfg.to_string_lossy().into_owned();
    for args in [
        vec!["trace", "--for", "1s"],
        vec!["sentinel", "--config", cfg.as_str()],
    ] {
        let (code, out, err) = without_btf(&u.bin(), &args);
        assert_eq!(code, Some(4), "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(
            err.contains("BTF") && err.contains("/sys/kernel/btf/vmlinux"),
            "{args:?}: {err}"
        );
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    let (code, out, err) = without_btf(&u.bin(), &["doctor"]);
    assert_eq!(code, Some(4), "doctor: {out}{err}");
    let missing: Vec<&str> = out.lines().filter(|l| l.starts_with("MISSING")).collect();
    assert!(
        missing.iter().any(|l| l.contains("BTF")),
        "doctor names BTF as missing: {out}{err}"
    );
}
