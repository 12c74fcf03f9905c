//! `spawnscope doctor`: whether this machine can run `trace` and
//! `sentinel`, and if not, why. Nothing is loaded or attached; the only
//! BPF objects made are the feature probes, and only with privileges.

use std::{io::Write, path::Path};

use serde::Serialize;

use crate::{
    btf::{Btf, VMLINUX_BTF},
    caps,
    cgroupfs::{self, CgroupError},
    cli::{DoctorArgs, exit},
    features,
    layout::{self, ExitFlavour, OomFlavour},
    mempress,
};

/// The kernel releases that brought what spawnscope uses, for the checks
/// that cannot probe without privileges.
const RINGBUF_SINCE: (u32, u32) = (5, 8);
const TP_BTF_SINCE: (u32, u32) = (5, 5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Warn,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "MISSING",
            Self::Warn => "warn",
        }
    }
}

/// What a missing check keeps from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A kernel feature: nothing helps but another kernel (or its BTF).
    Kernel,
    /// Root, or the capabilities.
    Privileges,
    /// Something that only degrades a report.
    Optional,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip)]
    pub need: Need,
}

impl Check {
    fn new(name: impl Into<String>, need: Need, result: Result<String, String>) -> Self {
        let (status, detail) = match result {
            Ok(d) => (Status::Ok, d),
            Err(d) => (Status::Missing, d),
        };
        Self {
            name: name.into(),
            status,
            detail,
            need,
        }
    }

    fn warn(name: impl Into<String>, detail: String) -> Self {
        Self {
            name: name.into(),
            status: Status::Warn,
            detail,
            need: Need::Optional,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `trace` and `sentinel` would start.
    Ready,
    /// The kernel would do; the privileges would not.
    Unprivileged,
    /// A kernel feature is missing.
    Unsupported,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Ready => exit::OK,
            Self::Unprivileged => exit::PRIVILEGES,
            Self::Unsupported => exit::UNSUPPORTED,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// uname -r.
    pub kernel: String,
    pub checks: Vec<Check>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: crate::output::schema::Schema,
    ok: bool,
    checks: &'a [Check],
    kernel: &'a str,
}

impl Report {
    fn missing(&self, need: Need) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(move |c| c.status == Status::Missing && c.need == need)
    }

    pub fn verdict(&self) -> Verdict {
        if self.missing(Need::Kernel).next().is_some() {
            Verdict::Unsupported
        } else if self.missing(Need::Privileges).next().is_some() {
            Verdict::Unprivileged
        } else {
            Verdict::Ready
        }
    }

    /// One line per check, then the conclusion.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<7}  {}: {}\n",
                c.status.label(),
                c.name,
                c.detail
            ));
        }
        out.push_str(match self.verdict() {
            Verdict::Ready => "spawnscope trace and sentinel can run here\n",
            Verdict::Unprivileged => {
                "this kernel can run spawnscope; run trace and sentinel as root (or with \
                 CAP_BPF and CAP_PERFMON)\n"
            }
            Verdict::Unsupported => {
                "this kernel cannot run spawnscope trace or sentinel; they need Linux 5.8 or \
                 later with BTF (CONFIG_DEBUG_INFO_BTF=y), the BPF ring buffer, tp_btf and \
                 cgroup v2\n"
            }
        });
        out
    }

    pub fn json(&self) -> String {
        let r = JsonReport {
            schema: crate::output::schema::Schema,
            ok: self.verdict() == Verdict::Ready,
            checks: &self.checks,
            kernel: &self.kernel,
        };
        // Plain strings and booleans always serialise.
        serde_json::to_string(&r).unwrap_or_default() + "\n"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Cgroups(#[from] CgroupError),
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
    #[error("kernel not supported: missing {0}")]
    Unsupported(String),
    #[error("insufficient privileges: {0}")]
    Unprivileged(String),
}

/// (major, minor) of a release such as "6.18.0-1-amd64".
pub fn version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel_check(release: &str) -> Check {
    match version(release) {
        Some(v) if v >= RINGBUF_SINCE => Check::new("kernel", Need::Optional, Ok(release.into())),
        Some(_) => Check::warn(
            "kernel",
            format!(
                "{release} is older than 5.8: it runs spawnscope only with the features below backported"
            ),
        ),
        None => Check::warn(
            "kernel",
            format!("cannot read a version from release {release:?}"),
        ),
    }
}

/// The BTF checks: the file, each tracepoint type the probe attaches to,
/// and the struct layout it reads.
fn btf_checks(path: &Path) -> (Vec<Check>, Option<Btf>) {
    if !path.exists() {
        let missing = vec![Check::new(
            "BTF",
            Need::Kernel,
            Err(format!(
                "not found at {}: spawnscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y \
                 (or pass --btf FILE)",
                path.display()
            )),
        )];
        return (missing, None);
    }
    let btf = match Btf::from_file(path) {
        Ok(b) => b,
        Err(e) => {
            return (
                vec![Check::new("BTF", Need::Kernel, Err(e.to_string()))],
                None,
            );
        }
    };
    let mut out = vec![Check::new(
        "BTF",
        Need::Kernel,
        Ok(path.display().to_string()),
    )];
    for tp in layout::TRACEPOINTS
        .iter()
        .chain([&layout::RMDIR_TRACEPOINT])
    {
        out.push(Check::new(
            format!("tracepoint {tp}"),
            Need::Kernel,
            btf.tracepoint_arg_count(tp)
                .map(|n| format!("btf_trace_{tp}, {n} argument(s)"))
                .map_err(|e| e.to_string()),
        ));
    }
    let layout = layout::from_btf(&btf).and_then(|(kl, exit)| {
        let oom = layout::oom_flavour(&btf)?;
        Ok(format!(
            "every field the probe reads; exit program {}; OOM kills {}{}",
            match exit {
                ExitFlavour::GroupDeadArg => "group-dead",
                ExitFlavour::Legacy => "legacy",
            },
            match oom {
                OomFlavour::Task => "read in the kernel",
                OomFlavour::PidOnly => "by pid only",
            },
            if kl.memcg_layout == 0 {
                ", not classified global or memcg-limited"
            } else {
                ""
            }
        ))
    });
    out.push(Check::new(
        "struct layout",
        Need::Kernel,
        layout.map_err(|e| e.to_string()),
    ));
    (out, Some(btf))
}

/// A feature probed by making the object if privileged, else judged by
/// the kernel release.
fn feature_check(
    name: &str,
    what: &str,
    since: (u32, u32),
    release: &str,
    privileged: bool,
    probe: impl FnOnce() -> Result<bool, String>,
) -> Check {
    let since_text = format!("Linux {}.{}", since.0, since.1);
    if privileged {
        return match probe() {
            Ok(true) => Check::new(name, Need::Kernel, Ok(format!("{what}: supported"))),
            Ok(false) => Check::new(
                name,
                Need::Kernel,
                Err(format!(
                    "the kernel refuses {what} ({since_text} or later has it)"
                )),
            ),
            Err(e) => Check::warn(name, format!("cannot probe {what}: {e}")),
        };
    }
    let result = match version(release) {
        Some(v) if v >= since => Ok(format!(
            "{release} is {since_text} or later (not probed: needs CAP_BPF)"
        )),
        _ => Err(format!(
            "{release} is older than {since_text} (not probed: needs CAP_BPF)"
        )),
    };
    Check::new(name, Need::Kernel, result)
}

fn cgroup_checks(mountinfo: &Path) -> Result<Vec<Check>, CgroupError> {
    let mounts = cgroupfs::cgroup_mounts(mountinfo)?;
    let v1 = mounts.iter().any(|m| m.fstype == "cgroup");
    let v2 = cgroupfs::find_cgroup2(mountinfo)?;
    let hierarchy = match (&v2, v1) {
        (Some(m), false) => Ok(format!("pure v2 at {}", m.mount_point.display())),
        (Some(m), true) => Ok(format!(
            "hybrid: cgroup2 at {}, v1 controllers beside it",
            m.mount_point.display()
        )),
        (None, true) => Err(
            "only cgroup v1 is mounted: counts cannot be split by unit, slice or container"
                .to_string(),
        ),
        (None, false) => Err(format!("no cgroup filesystem in {}", mountinfo.display())),
    };
    let memory = match mempress::memory_tree(&mounts) {
        Some(t) => Check::new(
            "memory controller",
            Need::Optional,
            Ok(format!(
                "cgroup {} at {}",
                if t.v2 { "v2" } else { "v1" },
                t.root.display()
            )),
        ),
        None => Check::warn(
            "memory controller",
            "not enabled: no per-cgroup memory forecast, OOM kills still reported".to_string(),
        ),
    };
    Ok(vec![
        Check::new("cgroup v2", Need::Kernel, hierarchy),
        memory,
    ])
}

/// Root or the capabilities, from an effective capability mask.
pub fn privilege_check(euid: u32, eff: Option<u64>) -> Check {
    let result = match eff.map(caps::missing_for_tracing) {
        None => Err("cannot read CapEff from /proc/self/status".to_string()),
        Some(None) if euid == 0 => Ok("root".to_string()),
        Some(None) => Ok("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) effective".to_string()),
        Some(Some(m)) => Err(format!(
            "missing {m} (or CAP_SYS_ADMIN): run trace and sentinel as root, e.g. with sudo"
        )),
    };
    Check::new("privileges", Need::Privileges, result)
}

/// Every check, in the order printed.
pub fn examine(btf_path: &Path, mountinfo: &Path) -> Result<Report, CgroupError> {
    let kernel = caps::kernel_release();
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| caps::effective_caps(&s));
    let privileges = privilege_check(euid, eff);
    let privileged = privileges.status == Status::Ok;

    let mut checks = vec![kernel_check(&kernel)];
    let (btf_checks, parsed) = btf_checks(btf_path);
    checks.extend(btf_checks);
    checks.push(feature_check(
        "BPF ring buffer",
        "BPF_MAP_TYPE_RINGBUF",
        RINGBUF_SINCE,
        &kernel,
        privileged,
        features::ringbuf_supported,
    ));
    checks.push(feature_check(
        "tp_btf",
        "BTF-typed tracepoint programs",
        TP_BTF_SINCE,
        &kernel,
        privileged,
        || {
            // The probe attaches by the running kernel's type ids: from
            // the file just read when that is the kernel's own.
            let own = Path::new(VMLINUX_BTF);
            let running = match parsed {
                Some(b) if btf_path == own => b,
                _ => Btf::from_file(own).map_err(|e| e.to_string())?,
            };
            let tp = layout::TRACEPOINTS[0];
            let id = running
                .tracepoint_typedef(tp)
                .map_err(|_| format!("{VMLINUX_BTF} has no btf_trace_{tp}"))?;
            features::tp_btf_supported(id).map_err(|e| e.to_string())
        },
    ));
    checks.extend(cgroup_checks(mountinfo)?);
    checks.push(privileges);
    Ok(Report { kernel, checks })
}

pub fn run(args: &DoctorArgs, out: &mut dyn Write) -> Result<(), DoctorError> {
    let report = examine(&args.btf, &args.mountinfo)?;
    let text = if args.json {
        report.json()
    } else {
        report.text()
    };
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that went away still gets the verdict in the exit code.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(DoctorError::Output(e));
        }
        _ => {}
    }
    let names = |need| {
        report
            .missing(need)
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match report.verdict() {
        Verdict::Ready => Ok(()),
        Verdict::Unsupported => Err(DoctorError::Unsupported(names(Need::Kernel))),
        Verdict::Unprivileged => {
            let detail = report
                .missing(Need::Privileges)
                .map(|c| c.detail.clone())
                .next()
                .unwrap_or_default();
            Err(DoctorError::Unprivileged(detail))
        }
    }
}

impl DoctorError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Cgroups(_) | Self::Output(_) => exit::FAILURE,
            Self::Unsupported(_) => Verdict::Unsupported.exit_code(),
            Self::Unprivileged(_) => Verdict::Unprivileged.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::build::BtfBuilder;

    fn check(name: &str, status: Status, need: Need) -> Check {
        Check {
            name: name.into(),
            status,
            detail: format!("{name} detail"),
            need,
        }
    }

    fn report(checks: Vec<Check>) -> Report {
        Report {
            kernel: "6.1.0-9-amd64".into(),
            checks,
        }
    }

    #[test]
    fn verdict_and_exit_code() {
        let ok = check("BTF", Status::Ok, Need::Kernel);
        let warn = check("memory controller", Status::Warn, Need::Optional);
        let no_btf = check("BTF", Status::Missing, Need::Kernel);
        let no_root = check("privileges", Status::Missing, Need::Privileges);
        for (checks, verdict, code) in [
            (vec![ok.clone(), warn.clone()], Verdict::Ready, 0),
            (vec![ok.clone(), no_root.clone()], Verdict::Unprivileged, 3),
            // A kernel that cannot run it is the answer, whoever asks.
            (
                vec![no_btf.clone(), no_root.clone()],
                Verdict::Unsupported,
                4,
            ),
            (vec![no_btf, warn], Verdict::Unsupported, 4),
        ] {
            let r = report(checks);
            assert_eq!(r.verdict(), verdict, "{r:?}");
            assert_eq!(verdict.exit_code(), code);
        }
        assert_eq!(DoctorError::Unsupported("BTF".into()).exit_code(), 4);
        assert_eq!(DoctorError::Unprivileged("x".into()).exit_code(), 3);
        assert_eq!(
            DoctorError::Output(std::io::Error::other("x")).exit_code(),
            1
        );
    }

    #[test]
    fn text_is_one_line_per_check_then_the_conclusion() {
        let r = report(vec![
            check("kernel", Status::Ok, Need::Optional),
            check("BTF", Status::Missing, Need::Kernel),
            check("memory controller", Status::Warn, Need::Optional),
        ]);
        assert_eq!(
            r.text(),
            "ok       kernel: kernel detail\n\
             MISSING  BTF: BTF detail\n\
             warn     memory controller: memory controller detail\n\
             this kernel cannot run spawnscope trace or sentinel; they need Linux 5.8 or \
             later with BTF (CONFIG_DEBUG_INFO_BTF=y), the BPF ring buffer, tp_btf and \
             cgroup v2\n"
        );
    }

    #[test]
    fn json_shape() {
        let r = report(vec![
            check("BTF", Status::Ok, Need::Kernel),
            check("privileges", Status::Missing, Need::Privileges),
            check("memory controller", Status::Warn, Need::Optional),
        ]);
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "schema": crate::output::schema::SCHEMA,
                "ok": false,
                "kernel": "6.1.0-9-amd64",
                "checks": [
                    {"name": "BTF", "status": "ok", "detail": "BTF detail"},
                    {"name": "privileges", "status": "missing", "detail": "privileges detail"},
                    {"name": "memory controller", "status": "warn", "detail": "memory controller detail"},
                ],
            })
        );
        assert!(r.json().ends_with("}\n") && r.json().lines().count() == 1);
        let ready = report(vec![check("BTF", Status::Ok, Need::Kernel)]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ready.json()).unwrap()["ok"],
            true
        );
    }

    #[test]
    fn versions() {
        assert_eq!(version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(version("5.8"), Some((5, 8)));
        assert_eq!(version("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(version("garbage"), None);
        assert_eq!(kernel_check("5.4.0").status, Status::Warn);
        assert_eq!(kernel_check("5.10.0").status, Status::Ok);
    }

    #[test]
    fn unprivileged_feature_checks_go_by_release() {
        let probe = || -> Result<bool, String> { panic!("probed without privileges") };
        let new = feature_check("BPF ring buffer", "x", RINGBUF_SINCE, "5.8.0", false, probe);
        assert_eq!(new.status, Status::Ok);
        assert!(
            new.detail.contains("(not probed: needs CAP_BPF)"),
            "{}",
            new.detail
        );
        let old = feature_check("BPF ring buffer", "x", RINGBUF_SINCE, "5.4.0", false, probe);
        assert_eq!((old.status, old.need), (Status::Missing, Need::Kernel));
        let refused = feature_check("tp_btf", "x", TP_BTF_SINCE, "6.1", true, || Ok(false));
        assert_eq!(refused.status, Status::Missing);
        let unknown = feature_check("tp_btf", "x", TP_BTF_SINCE, "6.1", true, || {
            Err("EPERM".into())
        });
        assert_eq!(unknown.status, Status::Warn);
    }

    #[test]
    fn privileges() {
        const BPF_PERFMON: u64 = (1 << 39) | (1 << 38);
        assert_eq!(privilege_check(0, Some(u64::MAX)).detail, "root");
        assert_eq!(privilege_check(1000, Some(BPF_PERFMON)).status, Status::Ok);
        let none = privilege_check(1000, Some(0));
        assert_eq!(
            (none.status, none.need),
            (Status::Missing, Need::Privileges)
        );
        assert!(
            none.detail.contains("CAP_BPF and CAP_PERFMON"),
            "{}",
            none.detail
        );
        assert_eq!(privilege_check(0, None).status, Status::Missing);
    }

    fn statuses(checks: &[Check]) -> Vec<(&str, Status)> {
        checks.iter().map(|c| (c.name.as_str(), c.status)).collect()
    }

    #[test]
    fn btf_checks_name_each_tracepoint_and_the_layout() {
        let d = tempfile::tempdir().unwrap();
        let (none, parsed) = btf_checks(&d.path().join("absent"));
        assert!(parsed.is_none());
        assert_eq!(statuses(&none), [("BTF", Status::Missing)]);
        assert!(none[0].detail.contains("CONFIG_DEBUG_INFO_BTF"));

        let full = d.path().join("full");
        std::fs::write(&full, crate::layout::tests::kernel(&[1, 2], 8)).unwrap();
        let (checks, parsed) = btf_checks(&full);
        assert!(parsed.is_some());
        assert!(checks.iter().all(|c| c.status == Status::Ok), "{checks:#?}");
        assert_eq!(checks.len(), 1 + 6 + 1, "BTF, six tracepoints, layout");
        assert!(checks.iter().any(|c| c.name == "tracepoint cgroup_rmdir"));

        // Only a tracepoint: the others and the layout are missing.
        let mut b = BtfBuilder::new();
        let vp = b.ptr(0);
        let proto = b.func_proto(&[vp, vp]);
        let pp = b.ptr(proto);
        b.typedef("btf_trace_cgroup_mkdir", pp);
        let partial = d.path().join("partial");
        std::fs::write(&partial, b.finish()).unwrap();
        let (checks, _) = btf_checks(&partial);
        let missing: Vec<&str> = checks
            .iter()
            .filter(|c| c.status == Status::Missing)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            missing,
            [
                "tracepoint sched_process_fork",
                "tracepoint sched_process_exec",
                "tracepoint sched_process_exit",
                "tracepoint mark_victim",
                "tracepoint cgroup_rmdir",
                "struct layout",
            ]
        );

        let garbage = d.path().join("garbage");
        std::fs::write(&garbage, b"not btf at all").unwrap();
        let (checks, _) = btf_checks(&garbage);
        assert_eq!(statuses(&checks), [("BTF", Status::Missing)]);
    }

    #[test]
    fn cgroup_hierarchies() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let v1 = write(
            "v1",
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n",
        );
        let checks = cgroup_checks(&v1).unwrap();
        assert_eq!(
            statuses(&checks),
            [
                ("cgroup v2", Status::Missing),
                ("memory controller", Status::Ok)
            ]
        );
        assert!(
            checks[1]
                .detail
                .starts_with("cgroup v1 at /sys/fs/cgroup/memory")
        );
        // A cgroup2 mount whose controllers file is not there: no memory
        // controller, which is a warning only.
        let root = d.path().join("cg2");
        std::fs::create_dir(&root).unwrap();
        let pure = write(
            "pure",
            &format!("30 22 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display()),
        );
        let checks = cgroup_checks(&pure).unwrap();
        assert_eq!(
            statuses(&checks),
            [
                ("cgroup v2", Status::Ok),
                ("memory controller", Status::Warn)
            ]
        );
        assert!(
            checks[0].detail.starts_with("pure v2 at "),
            "{}",
            checks[0].detail
        );
        std::fs::write(root.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        let checks = cgroup_checks(&pure).unwrap();
        assert_eq!(checks[1].status, Status::Ok);
        assert!(checks[1].detail.starts_with("cgroup v2 at "));
        assert!(cgroup_checks(&d.path().join("absent")).is_err());
    }
}
