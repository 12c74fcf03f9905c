//! Typed readers over /proc/self/mountinfo and the cgroup2 tree. Every reader
//! takes its root path so tests run against a fixture directory.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use thiserror::Error;

use crate::unit::{self, Owner};

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
    parse_mountinfo(&text, mountinfo)
}

/// Every cgroup (v1 or v2) mount in `text`, the contents of the mountinfo
/// file at `mountinfo` (which errors name).
pub fn parse_mountinfo(text: &[u8], mountinfo: &Path) -> Result<Vec<CgroupMount>, CgroupError> {
    let text = String::from_utf8_lossy(text);
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
    v2_membership(&text)
        .map(str::to_string)
        .ok_or_else(|| CgroupError::NoV2Membership {
            path: proc_cgroup.to_path_buf(),
        })
}

/// The cgroup2 path (`0::/path`) in the text of a /proc/<pid>/cgroup file.
pub fn v2_membership(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// What is known about one cgroup id.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Path from the cgroup2 root, None when it could not be resolved.
    pub path: Option<String>,
    pub owner: Option<Owner>,
}

/// Walks a cgroup2 tree and maps each cgroup id (the directory's inode
/// number, which is what bpf_get_current_cgroup_id() returns) to its raw
/// path relative to `mount` ("/a/b"). Directories that vanish mid-walk are
/// skipped: cgroups come and go while we look.
pub fn scan_ids(mount: &Path) -> Result<HashMap<u64, Vec<u8>>, CgroupError> {
    let mut out = HashMap::new();
    let meta = fs::metadata(mount).map_err(io(mount))?;
    out.insert(meta.ino(), b"/".to_vec());
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
                let mut raw = b"/".to_vec();
                raw.extend_from_slice(rel.as_os_str().as_bytes());
                out.insert(m.ino(), raw);
            }
            stack.push(p);
        }
    }
    Ok(out)
}

/// A cgroup's name: its path and what the path stands for.
#[derive(Debug, Clone)]
pub struct Named {
    /// Path from the cgroup2 root, printable (see [`unit::display_rel`]).
    pub path: String,
    pub owner: Owner,
    /// [`CgroupNames`] clock value when the id was last needed.
    last_used: u64,
}

/// Resolves cgroup ids to names. Names come from the probe's cgroup_mkdir
/// records as cgroups are created ([`CgroupNames::learn`]), from one walk of
/// the tree at start, and from a walk when an id shows up that neither
/// named. Names outlive their cgroups; the cache is bounded by evicting the
/// names not needed for the longest time.
pub struct CgroupNames {
    mount: Option<PathBuf>,
    /// The mount's root within the hierarchy ("" for a full view), so walked
    /// paths and the kernel's paths agree.
    root: Vec<u8>,
    known: HashMap<u64, Named>,
    /// Ids a walk did not find (removed before we looked): not worth
    /// another full walk every interval.
    unresolvable: HashSet<u64>,
    cap: usize,
    clock: u64,
    walks: u64,
    evicted: u64,
}

impl CgroupNames {
    /// `cap`: names kept at most (ids still being counted excepted).
    pub fn new(mount: Option<&CgroupMount>, cap: usize) -> Self {
        let root = mount
            .map(|m| m.root.trim_end_matches('/').as_bytes().to_vec())
            .unwrap_or_default();
        Self {
            mount: mount.map(|m| m.mount_point.clone()),
            root,
            known: HashMap::new(),
            unresolvable: HashSet::new(),
            cap: cap.max(1),
            clock: 0,
            walks: 0,
            evicted: 0,
        }
    }

    /// The id of the cgroup at `path` (from the hierarchy root, as
    /// /proc/PID/cgroup gives it), if it exists under the mount.
    pub fn id_of_path(&self, path: &str) -> Option<u64> {
        let mount = self.mount.as_ref()?;
        let rel = path.as_bytes().strip_prefix(self.root.as_slice())?;
        // Whole components only: /webx is not under /web.
        if !(rel.is_empty() || rel.starts_with(b"/")) {
            return None;
        }
        let rel = rel.strip_prefix(b"/").unwrap_or(rel);
        fs::metadata(mount.join(OsStr::from_bytes(rel)))
            .ok()
            .map(|m| m.ino())
    }

    /// Records the path (from the hierarchy root) of a new cgroup.
    pub fn learn(&mut self, id: u64, path: &[u8]) {
        let rel = path.strip_prefix(b"/").unwrap_or(path);
        let named = Named {
            path: unit::display_rel(Path::new(OsStr::from_bytes(rel))),
            owner: unit::parse(path),
            last_used: self.clock,
        };
        self.unresolvable.remove(&id);
        self.known.insert(id, named);
    }

    /// Drops the name of a cgroup that is gone and whose counts are
    /// folded: nothing will ask for it again.
    pub fn forget(&mut self, id: u64) {
        self.known.remove(&id);
        self.unresolvable.remove(&id);
    }

    /// Walks the tree and learns every cgroup not yet known.
    pub fn walk(&mut self) {
        let Some(mount) = &self.mount else { return };
        self.walks += 1;
        let Ok(found) = scan_ids(mount) else { return };
        for (id, rel) in found {
            if self.known.contains_key(&id) {
                continue;
            }
            let abs = match (self.root.is_empty(), rel.as_slice()) {
                (true, _) => rel,
                (false, b"/") => self.root.clone(),
                (false, _) => [self.root.as_slice(), &rel].concat(),
            };
            self.learn(id, &abs);
        }
    }

    /// Marks `ids` as needed now and makes sure each has had its chance to
    /// be named, with at most one tree walk per call; then trims the cache.
    pub fn refresh<'a>(&mut self, ids: impl IntoIterator<Item = &'a u64>) {
        self.clock += 1;
        let mut unknown = Vec::new();
        for id in ids {
            match self.known.get_mut(id) {
                Some(n) => n.last_used = self.clock,
                None if !self.unresolvable.contains(id) => unknown.push(*id),
                None => {}
            }
        }
        if !unknown.is_empty() && self.mount.is_some() {
            self.walk();
            for id in unknown {
                match self.known.get_mut(&id) {
                    Some(n) => n.last_used = self.clock,
                    None => {
                        self.unresolvable.insert(id);
                    }
                }
            }
        }
        if self.unresolvable.len() > self.cap {
            // Forgetting that a walk failed only costs one more walk.
            self.unresolvable.clear();
        }
        self.evict();
    }

    /// Drops the least recently needed names until an eighth of the cap is
    /// free, never one needed by the latest refresh.
    fn evict(&mut self) {
        if self.known.len() <= self.cap {
            return;
        }
        let target = self.cap - self.cap / 8;
        let mut old: Vec<(u64, u64)> = self
            .known
            .iter()
            .filter(|(_, n)| n.last_used < self.clock)
            .map(|(&id, n)| (n.last_used, id))
            .collect();
        old.sort_unstable();
        let excess = self.known.len().saturating_sub(target);
        for (_, id) in old.into_iter().take(excess) {
            self.known.remove(&id);
            self.evicted += 1;
        }
    }

    /// [`CgroupNames::resolve`] for one id outside a reading (an event):
    /// an unknown id gets its one tree walk, as in [`CgroupNames::refresh`].
    pub fn resolve_now(&mut self, id: u64) -> Resolved {
        if !self.known.contains_key(&id) && !self.unresolvable.contains(&id) {
            if self.mount.is_some() {
                self.walk();
            }
            if !self.known.contains_key(&id) {
                self.unresolvable.insert(id);
            }
        }
        self.resolve(id)
    }

    pub fn get(&self, id: u64) -> Option<&Named> {
        self.known.get(&id)
    }

    pub fn resolve(&self, id: u64) -> Resolved {
        match self.known.get(&id) {
            Some(n) => Resolved {
                path: Some(n.path.clone()),
                owner: Some(n.owner.clone()),
            },
            None => Resolved {
                path: None,
                owner: None,
            },
        }
    }

    /// Tree walks so far (the kernel's mkdir records should make them rare).
    pub fn walks(&self) -> u64 {
        self.walks
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// What can be attributed on a host with these cgroup mounts, when not
/// everything can. None when a cgroup2 hierarchy is mounted.
pub fn attribution_warning(mounts: &[CgroupMount]) -> Option<String> {
    if mounts.iter().any(|m| m.fstype == "cgroup2") {
        return None;
    }
    let v1 = mounts.iter().any(|m| m.fstype == "cgroup");
    Some(format!(
        "no cgroup2 hierarchy is mounted{}: the kernel files every task under the \
         (unused) cgroup2 root, so counts cannot be split by unit, slice or container; \
         the totals are exact, the per-unit attribution is not available",
        if v1 { " (cgroup v1 only)" } else { "" }
    ))
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
        assert_eq!(ids[&fs::metadata(root).unwrap().ino()], b"/");
        assert_eq!(
            ids[&ino("system.slice/foo.service")],
            b"/system.slice/foo.service"
        );
        assert_eq!(ids[&ino("user.slice")], b"/user.slice");
        let odd_id = fs::metadata(root.join(odd)).unwrap().ino();
        assert_eq!(ids[&odd_id], b"/we\xffird\nname");
        // Files are not cgroups.
        assert_eq!(ids.len(), 5);
        let mut names = CgroupNames::new(Some(&mount_at(root)), 100);
        names.walk();
        assert_eq!(names.get(odd_id).unwrap().path, "/we\\xffird\\x0aname");
        let foo = names.get(ino("system.slice/foo.service")).unwrap();
        assert_eq!(foo.owner.unit.as_deref(), Some("foo.service"));
    }

    fn mount_at(p: &Path) -> CgroupMount {
        CgroupMount {
            mount_point: p.to_path_buf(),
            root: "/".into(),
            fstype: "cgroup2".into(),
            super_options: vec![],
        }
    }

    #[test]
    fn names_survive_removal_and_unresolvable_ids_cost_one_walk() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("gone.scope")).unwrap();
        let id = fs::metadata(d.path().join("gone.scope")).unwrap().ino();
        let mut names = CgroupNames::new(Some(&mount_at(d.path())), 100);
        names.refresh([&id]);
        assert_eq!(names.get(id).unwrap().path, "/gone.scope");
        assert_eq!(names.walks(), 1);
        // An id no walk finds is not looked for again every interval.
        names.refresh([&u64::MAX]);
        assert_eq!(names.walks(), 2);
        names.refresh([&u64::MAX]);
        names.refresh([&u64::MAX, &id]);
        assert_eq!(names.walks(), 2, "walked again for an unresolvable id");
        fs::remove_dir(d.path().join("gone.scope")).unwrap();
        names.refresh([&id]);
        assert_eq!(
            names.get(id).map(|n| n.path.as_str()),
            Some("/gone.scope"),
            "name kept after removal"
        );
        // A kernel record names an id the walk gave up on.
        names.learn(u64::MAX, b"/system.slice/late.service");
        assert_eq!(
            names.resolve(u64::MAX).owner.unwrap().unit.as_deref(),
            Some("late.service")
        );
    }

    #[test]
    fn learned_names_need_no_walk_and_respect_the_mount_root() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("payload/x.service")).unwrap();
        let x = fs::metadata(d.path().join("payload/x.service"))
            .unwrap()
            .ino();
        // A mount showing /web of the hierarchy: walked paths get the prefix.
        let mut m = mount_at(d.path());
        m.root = "/web".into();
        let mut names = CgroupNames::new(Some(&m), 100);
        names.learn(7, b"/web/payload/system.slice/y.service");
        names.refresh([&7]);
        assert_eq!(names.walks(), 0);
        names.walk();
        assert_eq!(names.get(x).unwrap().path, "/web/payload/x.service");
        let o = &names.get(7).unwrap().owner;
        assert_eq!(o.container.as_ref().unwrap().label(), "web");
        // A hierarchy path (as /proc/PID/cgroup gives it) to its id.
        assert_eq!(names.id_of_path("/web/payload/x.service"), Some(x));
        assert_eq!(names.id_of_path("/web/payload/nope"), None);
        assert_eq!(names.id_of_path("/other/x"), None, "outside the mount");
        fs::create_dir_all(d.path().join("x/payload")).unwrap();
        assert_eq!(
            names.id_of_path("/webx/payload"),
            None,
            "not /web/x/payload"
        );
        // No cgroup2 mount: ids stay unnamed, without errors.
        let mut none = CgroupNames::new(None, 10);
        assert_eq!(none.id_of_path("/a"), None);
        none.refresh([&1]);
        assert_eq!(none.resolve(1).path, None);
        assert_eq!(none.walks(), 0);
    }

    #[test]
    fn cache_is_bounded_and_keeps_what_is_in_use() {
        let mut names = CgroupNames::new(None, 80);
        for id in 0..100u64 {
            names.learn(id, format!("/s{id}.scope").as_bytes());
        }
        // Ids 0..10 are being counted: they survive whatever their age.
        let live: Vec<u64> = (0..10).collect();
        names.refresh(&live);
        assert_eq!(names.len(), 70, "trimmed to cap - cap/8");
        assert_eq!(names.evicted(), 30);
        for id in 0..10 {
            assert!(names.get(id).is_some(), "live id {id} evicted");
        }
        // Under the cap nothing more goes.
        names.refresh(&live);
        assert_eq!(names.len(), 70);
    }

    #[test]
    fn v1_only_hosts_are_told_what_cannot_be_attributed() {
        let d = tempfile::tempdir().unwrap();
        let v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let mounts = cgroup_mounts(&write(d.path(), "v1", v1)).unwrap();
        let w = attribution_warning(&mounts).unwrap();
        assert!(
            w.starts_with("no cgroup2 hierarchy is mounted (cgroup v1 only)"),
            "{w}"
        );
        let mounts = cgroup_mounts(&write(d.path(), "h", HYBRID)).unwrap();
        assert_eq!(attribution_warning(&mounts), None);
    }
}
