//! Typed readers over /proc/self/mountinfo and the cgroup2 tree. Every reader
//! takes its root path so tests run against a fixture directory.

use std::{
    collections::HashMap,
    ffi::OsStr,
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use thiserror::Error;

pub const MOUNTINFO: &str = "/proc/self/mountinfo";
pub const SELF_CGROUP: &str = "/proc/self/cgroup";

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: malformed mountinfo entry")]
    Mountinfo { path: PathBuf, line: usize },
    #[error("{path}: no cgroup v2 entry (\"0::/...\"); the process is not in a cgroup2 hierarchy")]
    NoV2Membership { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A mounted cgroup filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy appears at the mount point ("/" unless
    /// the mount was made inside a cgroup namespace).
    pub root: String,
    /// "cgroup2" or "cgroup".
    pub fstype: String,
    /// For v1, the controllers in the super options ("memory", "cpu"...).
    pub super_options: Vec<String>,
}

/// Undoes mountinfo's octal escaping of space, tab, newline and backslash.
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Every cgroup (v1 or v2) mount listed in a mountinfo file.
pub fn cgroup_mounts(mountinfo: &Path) -> Result<Vec<CgroupMount>, CgroupError> {
    let text = fs::read(mountinfo).map_err(io(mountinfo))?;
    let text = String::from_utf8_lossy(&text);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || CgroupError::Mountinfo {
            path: mountinfo.to_path_buf(),
            line: n + 1,
        };
        let (pre, post) = line.split_once(" - ").ok_or_else(bad)?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            return Err(bad());
        }
        let fstype = post[0];
        if fstype != "cgroup2" && fstype != "cgroup" {
            continue;
        }
        let mount_point = PathBuf::from(OsStr::from_bytes(&unescape_octal(pre[4])));
        out.push(CgroupMount {
            mount_point,
            root: String::from_utf8_lossy(&unescape_octal(pre[3])).into_owned(),
            fstype: fstype.to_string(),
            super_options: post[2].split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// The cgroup2 mount, if any. With several (bind mounts, nested container
/// views), the one showing the hierarchy's root wins, then the first.
pub fn find_cgroup2(mountinfo: &Path) -> Result<Option<CgroupMount>, CgroupError> {
    let mut v2: Vec<CgroupMount> = cgroup_mounts(mountinfo)?
        .into_iter()
        .filter(|m| m.fstype == "cgroup2")
        .collect();
    let root = v2.iter().position(|m| m.root == "/");
    Ok(match root {
        Some(i) => Some(v2.swap_remove(i)),
        None => v2.into_iter().next(),
    })
}

/// The calling process's cgroup v2 path ("/", "/user.slice/..."), from a
/// /proc/<pid>/cgroup file.
pub fn own_cgroup_v2(proc_cgroup: &Path) -> Result<String, CgroupError> {
    let text = fs::read_to_string(proc_cgroup).map_err(io(proc_cgroup))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
        .ok_or_else(|| CgroupError::NoV2Membership {
            path: proc_cgroup.to_path_buf(),
        })
}

/// Renders a path relative to the mount as "/a/b", escaping bytes that are
/// not printable UTF-8 as \xNN so odd names can neither break output nor
/// collide.
pub fn display_rel(rel: &Path) -> String {
    let mut s = String::from("/");
    let bytes = rel.as_os_str().as_bytes();
    let text = String::from_utf8_lossy(bytes);
    if !text.contains('\u{fffd}') && !text.chars().any(char::is_control) {
        s.push_str(&text);
        return s;
    }
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                for b in c.to_string().bytes() {
                    s.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Walks a cgroup2 tree and maps each cgroup id (the directory's inode
/// number, which is what bpf_get_current_cgroup_id() returns) to its path
/// relative to `mount`. Directories that vanish mid-walk are skipped: cgroups
/// come and go while we look.
pub fn scan_ids(mount: &Path) -> Result<HashMap<u64, String>, CgroupError> {
    let mut out = HashMap::new();
    let meta = fs::metadata(mount).map_err(io(mount))?;
    out.insert(meta.ino(), "/".to_string());
    let mut stack = vec![mount.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if let Ok(rel) = p.strip_prefix(mount) {
                out.insert(m.ino(), display_rel(rel));
            }
            stack.push(p);
        }
    }
    Ok(out)
}

/// Resolves cgroup ids to paths, rescanning the tree when an unknown id
/// shows up. Paths stay known after their cgroup is removed.
pub struct CgroupNames {
    mount: Option<PathBuf>,
    known: HashMap<u64, String>,
    /// Ids a walk did not find (removed before we looked): not worth
    /// another full walk every interval.
    unresolvable: std::collections::HashSet<u64>,
}

impl CgroupNames {
    pub fn new(mount: Option<PathBuf>) -> Self {
        Self {
            mount,
            known: HashMap::new(),
            unresolvable: Default::default(),
        }
    }

    /// Makes sure every id in `ids` has had a chance to be resolved, with at
    /// most one tree walk per call.
    pub fn refresh<'a>(&mut self, ids: impl IntoIterator<Item = &'a u64>) {
        let Some(mount) = &self.mount else { return };
        let unknown: Vec<u64> = ids
            .into_iter()
            .filter(|id| !self.known.contains_key(id) && !self.unresolvable.contains(id))
            .copied()
            .collect();
        if unknown.is_empty() {
            return;
        }
        if let Ok(found) = scan_ids(mount) {
            self.known.extend(found);
            self.unresolvable.extend(
                unknown
                    .into_iter()
                    .filter(|id| !self.known.contains_key(id)),
            );
        }
    }

    pub fn name(&self, id: u64) -> Option<&str> {
        self.known.get(&id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const PURE_V2: &str = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn finds_hybrid_and_pure_v2_mounts() {
        let d = tempfile::tempdir().unwrap();
        let m = find_cgroup2(&write(d.path(), "hybrid", HYBRID))
            .unwrap()
            .unwrap();
        assert_eq!(m.mount_point, Path::new("/sys/fs/cgroup/unified"));
        let m = find_cgroup2(&write(d.path(), "v2", PURE_V2))
            .unwrap()
            .unwrap();
        assert_eq!(m.mount_point, Path::new("/sys/fs/cgroup"));
        assert_eq!(m.root, "/");
        let all = cgroup_mounts(&write(d.path(), "h2", HYBRID)).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[0].super_options.contains(&"memory".to_string()));
    }

    #[test]
    fn v1_only_host_has_no_cgroup2() {
        let d = tempfile::tempdir().unwrap();
        let v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(find_cgroup2(&write(d.path(), "v1", v1)).unwrap(), None);
    }

    #[test]
    fn prefers_the_root_view_and_unescapes_mount_points() {
        let d = tempfile::tempdir().unwrap();
        let text = "\
50 1 0:40 /inner /mnt/ns\\040view rw - cgroup2 cgroup2 rw
51 1 0:40 / /mnt/full\\134x rw - cgroup2 cgroup2 rw
";
        let m = find_cgroup2(&write(d.path(), "m", text)).unwrap().unwrap();
        assert_eq!(m.mount_point, Path::new("/mnt/full\\x"));
        let all = cgroup_mounts(&write(d.path(), "m2", text)).unwrap();
        assert_eq!(all[0].mount_point, Path::new("/mnt/ns view"));
        assert_eq!(all[0].root, "/inner");
    }

    #[test]
    fn malformed_mountinfo_names_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "bad",
            "41 31 0:38 / /x rw - cgroup2 cgroup2 rw\ngarbage\n",
        );
        let e = cgroup_mounts(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: line 2: malformed mountinfo entry", p.display())
        );
        let e = cgroup_mounts(&d.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read ") && e.contains("absent"), "{e}");
    }

    #[test]
    fn own_cgroup_reads_the_v2_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "c",
            "9:name=systemd:/\n4:memory:/x\n0::/user.slice/a b\n",
        );
        assert_eq!(own_cgroup_v2(&p).unwrap(), "/user.slice/a b");
        let p = write(d.path(), "c1", "4:memory:/x\n");
        assert!(matches!(
            own_cgroup_v2(&p),
            Err(CgroupError::NoV2Membership { .. })
        ));
    }

    #[test]
    fn scan_maps_inodes_to_relative_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("system.slice/foo.service")).unwrap();
        fs::create_dir_all(root.join("user.slice")).unwrap();
        fs::write(root.join("system.slice/cgroup.procs"), "").unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"we\xffird\nname");
        fs::create_dir(root.join(odd)).unwrap();
        let ids = scan_ids(root).unwrap();
        let ino = |p: &str| fs::metadata(root.join(p)).unwrap().ino();
        assert_eq!(ids[&fs::metadata(root).unwrap().ino()], "/");
        assert_eq!(
            ids[&ino("system.slice/foo.service")],
            "/system.slice/foo.service"
        );
        assert_eq!(ids[&ino("user.slice")], "/user.slice");
        assert_eq!(
            ids[&fs::metadata(root.join(odd)).unwrap().ino()],
            "/we\\xffird\\x0aname"
        );
        // Files are not cgroups.
        assert_eq!(ids.len(), 5);
    }

    #[test]
    fn names_survive_removal() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("gone.scope")).unwrap();
        let id = fs::metadata(d.path().join("gone.scope")).unwrap().ino();
        let mut names = CgroupNames::new(Some(d.path().to_path_buf()));
        names.refresh([&id]);
        assert_eq!(names.name(id), Some("/gone.scope"));
        // An id no walk finds is not looked for again every interval.
        names.refresh([&u64::MAX]);
        assert_eq!(names.name(u64::MAX), None);
        assert!(names.unresolvable.contains(&u64::MAX));
        // gone.scope still exists here, so late.scope cannot reuse its inode.
        fs::create_dir(d.path().join("late.scope")).unwrap();
        let late = fs::metadata(d.path().join("late.scope")).unwrap().ino();
        names.refresh([&u64::MAX]);
        assert_eq!(
            names.name(late),
            None,
            "walked again for an unresolvable id"
        );
        fs::remove_dir(d.path().join("gone.scope")).unwrap();
        names.refresh([&id, &late]);
        assert_eq!(names.name(late), Some("/late.scope"));
        assert_eq!(
            names.name(id),
            Some("/gone.scope"),
            "name kept after removal"
        );
    }
}
