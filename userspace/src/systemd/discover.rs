//! Containers that run their own systemd, found in /proc without machined:
//! a process that is PID 1 of a PID namespace below ours and runs systemd.
//! Its manager is reached through its root: `/proc/PID/root/run/systemd/private`.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The init of a container that runs systemd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInit {
    /// Its PID in our PID namespace.
    pub pid: u32,
    /// The machine name its cgroup tells (nspawn, machined), or another
    /// runtime's label; None when its cgroup names no container.
    pub name: Option<String>,
}

impl ContainerInit {
    /// The name to tag its services with: the machine name, else "pid N".
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("pid {}", self.pid))
    }

    /// Its manager's private socket, reached through its root.
    pub fn private_socket(&self, proc_root: &Path) -> PathBuf {
        proc_root
            .join(self.pid.to_string())
            .join("root/run/systemd/private")
    }
}

/// True when a `/proc/PID/status` text is that of the PID 1 of a PID
/// namespace below the reader's: its `NSpid:` line has more than one PID
/// (one per namespace, ours first) and the innermost is 1.
pub fn is_namespace_init(status: &str) -> bool {
    let Some(line) = status.lines().find_map(|l| l.strip_prefix("NSpid:")) else {
        return false;
    };
    let pids: Vec<&str> = line.split_whitespace().collect();
    pids.len() > 1 && pids.last() == Some(&"1")
}

/// The container a `/proc/PID/cgroup` text places the process in, by its
/// cgroup2 line (`0::/path`), as [`crate::unit::parse`] names it.
pub fn container_name(cgroup: &str) -> Option<String> {
    let path = crate::cgroupfs::v2_membership(cgroup)?;
    crate::unit::parse(path.as_bytes())
        .container
        .map(|c| c.label())
}

/// Every container init running systemd under `proc_root` (normally
/// /proc), in PID order. Processes that vanish or cannot be read are
/// skipped.
pub fn scan(proc_root: &Path) -> Vec<ContainerInit> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found: Vec<ContainerInit> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let p = proc_root.join(pid.to_string());
            // comm first: one short read rules out almost every process.
            let comm = std::fs::read_to_string(p.join("comm")).ok()?;
            if comm.trim_end() != "systemd" {
                return None;
            }
            let status = std::fs::read_to_string(p.join("status")).ok()?;
            if !is_namespace_init(&status) {
                return None;
            }
            let name = std::fs::read_to_string(p.join("cgroup"))
                .ok()
                .and_then(|c| container_name(&c));
            Some(ContainerInit { pid, name })
        })
        .collect();
    found.sort_by_key(|c| c.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_HEAD: &str = "Name:\tsystemd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n";

    #[test]
    fn pid_one_of_a_child_namespace_is_an_init() {
        let s = format!("{STATUS_HEAD}NSpid:\t4242\t1\nNSpgid:\t4242\t1\n");
        assert!(is_namespace_init(&s));
    }

    #[test]
    fn our_own_pid_one_is_not_a_container_init() {
        let s = format!("{STATUS_HEAD}NSpid:\t1\n");
        assert!(!is_namespace_init(&s));
    }

    #[test]
    fn a_process_inside_a_container_other_than_its_init_is_not_one() {
        let s = format!("{STATUS_HEAD}NSpid:\t4250\t17\n");
        assert!(!is_namespace_init(&s));
    }

    #[test]
    fn status_without_nspid_is_not_an_init() {
        // Kernels before 4.1 have no NSpid line.
        assert!(!is_namespace_init(STATUS_HEAD));
        assert!(!is_namespace_init(""));
    }

    #[test]
    fn nspawn_and_machined_cgroups_name_the_machine() {
        assert_eq!(
            container_name("0::/machine.slice/machine-web\\x2d1.scope/payload/init.scope\n")
                .as_deref(),
            Some("web-1")
        );
        assert_eq!(
            container_name("0::/machine.slice/systemd-nspawn@db.service/payload/init.scope\n")
                .as_deref(),
            Some("db")
        );
    }

    #[test]
    fn a_host_cgroup_names_no_container() {
        assert_eq!(container_name("0::/init.scope\n"), None);
        assert_eq!(container_name("garbage"), None);
    }

    #[test]
    fn scan_finds_only_systemd_namespace_inits() {
        let root = tempfile::tempdir().unwrap();
        let mk = |pid: &str, comm: &str, nspid: &str, cg: &str| {
            let d = root.path().join(pid);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("status"), format!("{STATUS_HEAD}NSpid:\t{nspid}\n")).unwrap();
            std::fs::write(d.join("cgroup"), format!("0::{cg}\n")).unwrap();
        };
        mk("1", "systemd", "1", "/init.scope");
        mk(
            "300",
            "systemd",
            "300\t1",
            "/machine.slice/machine-ct.scope/payload/init.scope",
        );
        mk(
            "301",
            "bash",
            "301\t1",
            "/machine.slice/machine-sh.scope/payload",
        );
        mk(
            "302",
            "systemd",
            "302\t5",
            "/machine.slice/machine-ct.scope/payload/user.slice",
        );
        std::fs::create_dir_all(root.path().join("self")).unwrap();
        assert_eq!(
            scan(root.path()),
            [ContainerInit {
                pid: 300,
                name: Some("ct".into())
            }]
        );
    }
}
