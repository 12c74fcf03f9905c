//! Who owns a cgroup: the systemd unit, slice, user and container that a
//! cgroup2 path stands for. Pure string work on the path's raw bytes, so it
//! is tested on fixtures and never panics on odd names.

use std::{os::unix::ffi::OsStrExt, path::Path};

use serde::Serialize;

/// A container that a cgroup belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Container {
    /// "nspawn", "machined", "docker", "podman", "containerd", "cri-o" or
    /// "kubernetes" (a pod's cgroup whose runtime the path does not tell).
    pub runtime: &'static str,
    /// Machine name (nspawn, machined).
    pub name: Option<String>,
    /// Container id (docker, podman, containerd, cri-o).
    pub id: Option<String>,
    /// Kubernetes pod uid.
    pub pod_uid: Option<String>,
}

impl Container {
    /// How people refer to it: the machine name, else runtime and short id.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match (&self.id, &self.pod_uid) {
            (Some(id), _) => format!("{}:{}", self.runtime, &id[..id.len().min(12)]),
            (None, Some(pod)) => format!("pod:{pod}"),
            (None, None) => self.runtime.to_string(),
        }
    }

    /// `--container NAME`: the machine name, a container id or its prefix
    /// of at least 12 characters (as `docker ps` shows it), the pod uid, or
    /// the label.
    pub fn matches(&self, want: &str) -> bool {
        self.name.as_deref() == Some(want)
            || self
                .id
                .as_deref()
                .is_some_and(|id| id == want || (want.len() >= 12 && id.starts_with(want)))
            || self.pod_uid.as_deref() == Some(want)
            || self.label() == want
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The root of the hierarchy (or of a container's own tree).
    Root,
    /// A slice's own cgroup.
    Slice,
    /// A unit's cgroup, or a cgroup its manager delegated below it.
    Unit,
    /// A container's cgroup with no systemd unit (cgroupfs-driver runtimes,
    /// an nspawn supervisor).
    Container,
    /// Nothing recognised: only the raw path is known.
    Raw,
}

/// The structured owner of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub kind: Kind,
    /// The innermost systemd unit, exactly as systemd names it
    /// (`serial-getty@ttyS0.service`, `system-serial\x2dgetty.slice`).
    pub unit: Option<String>,
    /// The slice the unit sits in (or, for a slice's own cgroup, the slice).
    pub slice: Option<String>,
    /// For a template instance: the template (`serial-getty@.service`)...
    pub template: Option<String>,
    /// ...and the instance with systemd's `\xNN` escapes undone (`ttyS0`).
    pub instance: Option<String>,
    /// The uid of a `user-UID.slice` or `user@UID.service` the cgroup is in.
    pub user: Option<u32>,
    /// True when `unit` belongs to the user's own manager (`user@UID.service`).
    pub user_manager: bool,
    pub container: Option<Container>,
    /// The part of the path below the unit's (or container's) cgroup, for
    /// cgroups a unit created for itself (delegation).
    pub subpath: Option<String>,
}

impl Owner {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            unit: None,
            slice: None,
            template: None,
            instance: None,
            user: None,
            user_manager: false,
            container: None,
            subpath: None,
        }
    }
}

const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".scope",
    ".slice",
    ".mount",
    ".socket",
    ".swap",
    ".device",
    ".target",
    ".timer",
    ".path",
    ".automount",
];

/// systemd's unit_name_is_valid(): the allowed characters, a known suffix,
/// a non-empty prefix and at most one '@' (with a non-empty instance: a bare
/// template never has a cgroup).
pub fn is_unit_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
    {
        return false;
    }
    let Some(suffix) = UNIT_SUFFIXES.iter().find(|x| s.ends_with(*x)) else {
        return false;
    };
    let stem = &s[..s.len() - suffix.len()];
    if stem.is_empty() {
        return false;
    }
    match stem.split_once('@') {
        None => true,
        Some((prefix, instance)) => {
            !prefix.is_empty() && !instance.is_empty() && !instance.contains('@')
        }
    }
}

/// Undoes systemd's `\xNN` escaping (unit_name_unescape without the path
/// variant). Bytes that do not form UTF-8 are kept as `\xNN`.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1] == b'x' {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => {
            let mut s = String::new();
            for chunk in e.as_bytes().utf8_chunks() {
                s.push_str(chunk.valid());
                for x in chunk.invalid() {
                    s.push_str(&format!("\\x{x:02x}"));
                }
            }
            s
        }
    }
}

/// "a@b.service" → ("a@.service", "b").
fn template_of(unit: &str) -> Option<(String, String)> {
    let (prefix, rest) = unit.split_once('@')?;
    let dot = rest.rfind('.')?;
    Some((format!("{prefix}@{}", &rest[dot..]), unescape(&rest[..dot])))
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<prefix><64 hex>.scope` → the id.
fn scope_id<'a>(c: &'a str, prefix: &str) -> Option<&'a str> {
    let id = c.strip_prefix(prefix)?.strip_suffix(".scope")?;
    is_hex_id(id).then_some(id)
}

/// "user-1000.slice" → 1000, "user@1000.service" → 1000.
fn uid_in(c: &str, prefix: &str, suffix: &str) -> Option<u32> {
    c.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// Parses a cgroup path relative to the cgroup2 root, as raw bytes.
pub fn parse(path: &[u8]) -> Owner {
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    parse_comps(&comps)
}

fn join(comps: &[&[u8]]) -> String {
    let mut raw = Vec::new();
    for c in comps {
        raw.push(b'/');
        raw.extend_from_slice(c);
    }
    display_rel(std::path::Path::new(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(raw.get(1..).unwrap_or(&[])),
    ))
}

fn parse_comps(comps: &[&[u8]]) -> Owner {
    if comps.is_empty() {
        return Owner::new(Kind::Root);
    }
    // nspawn: <container cgroup>/{payload,supervisor}. The payload holds the
    // container's own systemd tree, which is parsed like a host's.
    for i in 0..comps.len().saturating_sub(1) {
        let next = comps[i + 1];
        if next != b"payload" && next != b"supervisor" {
            continue;
        }
        let Ok(outer) = std::str::from_utf8(comps[i]) else {
            continue;
        };
        let (runtime, name) = if let Some(n) = outer
            .strip_prefix("systemd-nspawn@")
            .and_then(|r| r.strip_suffix(".service"))
        {
            ("nspawn", unescape(n))
        } else if let Some(n) = outer
            .strip_prefix("machine-")
            .and_then(|r| r.strip_suffix(".scope"))
        {
            ("machined", unescape(n))
        } else if i == 0 || is_unit_name(outer) {
            // A bare /<name>/payload (nspawn --keep-unit outside systemd),
            // or a unit that runs nspawn --keep-unit.
            ("nspawn", outer.to_string())
        } else {
            continue;
        };
        let container = Container {
            runtime,
            name: Some(name),
            id: None,
            pod_uid: None,
        };
        if next == b"supervisor" {
            let mut o = parse_systemd(&comps[..i + 1]);
            if o.kind == Kind::Raw {
                o = Owner::new(Kind::Container);
            }
            o.kind = Kind::Container;
            o.subpath = Some(join(&comps[i + 1..]));
            o.container = Some(container);
            return o;
        }
        let mut inner = parse_comps(&comps[i + 2..]);
        inner.container = Some(match inner.container.take() {
            // Nested containers: name the path through them.
            Some(mut c) => {
                c.name = Some(format!("{}/{}", container.label(), c.label()));
                c
            }
            None => container,
        });
        return inner;
    }
    let mut o = parse_systemd(comps);
    if let Some((c, at)) = runtime_container(comps) {
        if o.kind == Kind::Raw || o.unit.is_none() {
            o = Owner::new(Kind::Container);
            o.subpath = (at + 1 < comps.len()).then(|| join(&comps[at + 1..]));
        }
        o.container = Some(c);
    }
    o
}

/// A docker/podman/containerd/cri-o/kubernetes container anywhere in the
/// path, and the index of the component naming it.
fn runtime_container(comps: &[&[u8]]) -> Option<(Container, usize)> {
    let s: Vec<Option<&str>> = comps.iter().map(|c| std::str::from_utf8(c).ok()).collect();
    let mut pod_uid: Option<(String, usize)> = None;
    for (i, c) in s.iter().enumerate() {
        let Some(c) = *c else { continue };
        // kubepods-burstable-pod<uid with _>.slice, or pod<uid> under kubepods.
        let in_kube = s[..i]
            .iter()
            .any(|p| p.is_some_and(|p| p.starts_with("kubepods")));
        if in_kube {
            let uid = c
                .rsplit_once("-pod")
                .and_then(|(_, u)| u.strip_suffix(".slice"))
                .map(|u| u.replace('_', "-"))
                .or_else(|| c.strip_prefix("pod").map(str::to_string));
            if let Some(u) = uid.filter(|u| u.len() >= 32) {
                pod_uid = Some((u, i));
                continue;
            }
        }
        let found = |runtime, id: &str| Container {
            runtime,
            name: None,
            id: Some(id.to_string()),
            pod_uid: pod_uid.as_ref().map(|p| p.0.clone()),
        };
        for (prefix, runtime) in [
            ("docker-", "docker"),
            ("libpod-conmon-", "podman"),
            ("libpod-", "podman"),
            ("cri-containerd-", "containerd"),
            ("crio-conmon-", "cri-o"),
            ("crio-", "cri-o"),
        ] {
            if let Some(id) = scope_id(c, prefix) {
                return Some((found(runtime, id), i));
            }
        }
        if is_hex_id(c) && i > 0 {
            let parent = s[i - 1];
            if parent == Some("docker") {
                return Some((found("docker", c), i));
            }
            if pod_uid.is_some() {
                return Some((found("kubernetes", c), i));
            }
        }
    }
    pod_uid.map(|(u, i)| {
        (
            Container {
                runtime: "kubernetes",
                name: None,
                id: None,
                pod_uid: Some(u),
            },
            i,
        )
    })
}

/// A systemd tree: slices down to the first non-slice unit, whose own
/// subtree is delegated (or, for user@UID.service, another systemd tree).
fn parse_systemd(comps: &[&[u8]]) -> Owner {
    let mut slice: Option<String> = None;
    let mut user = None;
    for (i, raw) in comps.iter().enumerate() {
        let Some(c) = std::str::from_utf8(raw).ok().filter(|c| is_unit_name(c)) else {
            return Owner::new(Kind::Raw);
        };
        if c.ends_with(".slice") {
            if let Some(uid) = uid_in(c, "user-", ".slice") {
                user = Some(uid);
            }
            slice = Some(c.to_string());
            continue;
        }
        if let Some(uid) = uid_in(c, "user@", ".service") {
            let rest = &comps[i + 1..];
            if !rest.is_empty() {
                let mut inner = parse_systemd(rest);
                if inner.unit.is_some() {
                    inner.user = Some(uid);
                    inner.user_manager = true;
                    return inner;
                }
            }
        }
        let mut o = Owner::new(Kind::Unit);
        o.unit = Some(c.to_string());
        o.slice = Some(slice.unwrap_or_else(|| "-.slice".to_string()));
        if let Some((t, inst)) = template_of(c) {
            o.template = Some(t);
            o.instance = Some(inst);
        }
        o.user = user;
        o.subpath = (i + 1 < comps.len()).then(|| join(&comps[i + 1..]));
        return o;
    }
    // Only slices: the cgroup is the last slice's own.
    let mut o = Owner::new(Kind::Slice);
    o.unit = slice.clone();
    o.slice = slice;
    o.user = user;
    o
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Owner {
        parse(s.as_bytes())
    }

    #[test]
    fn root_and_raw() {
        assert_eq!(p("/").kind, Kind::Root);
        assert_eq!(p("").kind, Kind::Root);
        let o = p("/spawnscope-test-x-12");
        assert_eq!(o.kind, Kind::Raw);
        assert_eq!(o.unit, None);
        // A non-unit component anywhere makes the path raw, not half-named.
        assert_eq!(p("/system.slice/not a unit").kind, Kind::Raw);
    }

    #[test]
    fn system_services_and_template_instances() {
        let o = p("/system.slice/cron.service");
        assert_eq!(o.kind, Kind::Unit);
        assert_eq!(o.unit.as_deref(), Some("cron.service"));
        assert_eq!(o.slice.as_deref(), Some("system.slice"));
        assert_eq!((o.template, o.instance, o.user), (None, None, None));

        let o = p("/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service");
        assert_eq!(o.unit.as_deref(), Some("serial-getty@ttyS0.service"));
        assert_eq!(o.slice.as_deref(), Some("system-serial\\x2dgetty.slice"));
        assert_eq!(o.template.as_deref(), Some("serial-getty@.service"));
        assert_eq!(o.instance.as_deref(), Some("ttyS0"));

        let o =
            p("/system.slice/system-esc\\x2ddemo.slice/esc-demo@a\\x2db\\x20c\\xc3\\xa9.service");
        assert_eq!(
            o.unit.as_deref(),
            Some("esc-demo@a\\x2db\\x20c\\xc3\\xa9.service")
        );
        assert_eq!(o.instance.as_deref(), Some("a-b cé"));
        assert_eq!(o.template.as_deref(), Some("esc-demo@.service"));
    }

    #[test]
    fn unescape_is_exact_and_total() {
        assert_eq!(unescape("serial\\x2dgetty"), "serial-getty");
        assert_eq!(unescape("a\\x2fb"), "a/b");
        // Not an escape: kept as is.
        assert_eq!(unescape("a\\xZZ"), "a\\xZZ");
        assert_eq!(unescape("tail\\x2"), "tail\\x2");
        assert_eq!(unescape("\\"), "\\");
        // An escape producing invalid UTF-8 stays visible.
        assert_eq!(unescape("x\\xff"), "x\\xff");
    }

    #[test]
    fn slices_scopes_and_root_level_units() {
        let o = p("/system.slice");
        assert_eq!(o.kind, Kind::Slice);
        assert_eq!(o.slice.as_deref(), Some("system.slice"));
        assert_eq!(o.unit.as_deref(), Some("system.slice"));
        let o = p("/init.scope");
        assert_eq!(o.unit.as_deref(), Some("init.scope"));
        assert_eq!(o.slice.as_deref(), Some("-.slice"));
        let o = p("/user.slice/user-1000.slice/session-3.scope");
        assert_eq!(o.unit.as_deref(), Some("session-3.scope"));
        assert_eq!(o.user, Some(1000));
        assert!(!o.user_manager);
        assert_eq!(o.slice.as_deref(), Some("user-1000.slice"));
        let o = p("/system.slice/run-r0123456789abcdef0123456789abcdef.scope");
        assert_eq!(
            o.unit.as_deref(),
            Some("run-r0123456789abcdef0123456789abcdef.scope")
        );
    }

    #[test]
    fn user_units() {
        let o = p("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service");
        assert_eq!(o.unit.as_deref(), Some("foo.service"));
        assert_eq!(o.user, Some(1000));
        assert!(o.user_manager);
        assert_eq!(o.slice.as_deref(), Some("app.slice"));
        let o = p("/user.slice/user-1000.slice/user@1000.service/init.scope");
        assert_eq!(o.unit.as_deref(), Some("init.scope"));
        assert!(o.user_manager);
        // The manager's own cgroup.
        let o = p("/user.slice/user-1000.slice/user@1000.service");
        assert_eq!(o.unit.as_deref(), Some("user@1000.service"));
        assert_eq!(o.instance.as_deref(), Some("1000"));
        assert!(!o.user_manager);
        assert_eq!(o.user, Some(1000));
    }

    #[test]
    fn delegated_subtrees_keep_the_unit() {
        let o = p("/system.slice/foo.service/worker/a");
        assert_eq!(o.unit.as_deref(), Some("foo.service"));
        assert_eq!(o.subpath.as_deref(), Some("/worker/a"));
    }

    #[test]
    fn nspawn_containers() {
        let o = p("/machine.slice/systemd-nspawn@web.service/payload/system.slice/x.service");
        let c = o.container.clone().unwrap();
        assert_eq!((c.runtime, c.name.as_deref()), ("nspawn", Some("web")));
        assert_eq!(o.unit.as_deref(), Some("x.service"));
        assert_eq!(o.slice.as_deref(), Some("system.slice"));

        let o = p("/web/payload/system.slice/x.service");
        assert_eq!(o.container.unwrap().name.as_deref(), Some("web"));
        assert_eq!(o.unit.as_deref(), Some("x.service"));

        let o = p("/machine.slice/machine-my\\x2dvm.scope/payload/init.scope");
        let c = o.container.unwrap();
        assert_eq!((c.runtime, c.name.as_deref()), ("machined", Some("my-vm")));
        assert_eq!(o.unit.as_deref(), Some("init.scope"));

        let o = p("/web/payload");
        assert_eq!(o.kind, Kind::Root);
        assert_eq!(o.container.unwrap().name.as_deref(), Some("web"));

        let o = p("/machine.slice/systemd-nspawn@web.service/supervisor");
        assert_eq!(o.kind, Kind::Container);
        assert_eq!(o.unit.as_deref(), Some("systemd-nspawn@web.service"));
        assert_eq!(o.subpath.as_deref(), Some("/supervisor"));
        assert_eq!(o.container.unwrap().name.as_deref(), Some("web"));

        // A user manager inside a container.
        let o = p("/web/payload/user.slice/user-0.slice/user@0.service/app.slice/a.service");
        assert_eq!(o.unit.as_deref(), Some("a.service"));
        assert_eq!(o.user, Some(0));
        assert_eq!(o.container.unwrap().name.as_deref(), Some("web"));

        // A path component that merely is called payload deep inside a
        // unit's delegated tree is not a container boundary.
        let o = p("/system.slice/weird dir/payload/x");
        assert_eq!(o.container, None);
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn runtime_containers() {
        let o = p(&format!("/system.slice/docker-{ID}.scope"));
        let c = o.container.clone().unwrap();
        assert_eq!((c.runtime, c.id.as_deref()), ("docker", Some(ID)));
        assert_eq!(c.label(), "docker:0123456789ab");
        assert_eq!(o.unit.unwrap(), format!("docker-{ID}.scope"));

        let o = p(&format!("/docker/{ID}"));
        assert_eq!(o.kind, Kind::Container);
        assert_eq!(o.container.unwrap().id.as_deref(), Some(ID));

        let o = p(&format!("/machine.slice/libpod-{ID}.scope/container"));
        let c = o.container.unwrap();
        assert_eq!(c.runtime, "podman");
        assert_eq!(o.subpath.as_deref(), Some("/container"));

        let o = p(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/cri-containerd-{ID}.scope"
        ));
        let c = o.container.unwrap();
        assert_eq!(c.runtime, "containerd");
        assert_eq!(c.id.as_deref(), Some(ID));
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("1b2c3d4e-0000-1111-2222-333344445555")
        );

        let o = p(&format!(
            "/kubepods/besteffort/pod1b2c3d4e-0000-1111-2222-333344445555/{ID}"
        ));
        let c = o.container.unwrap();
        assert_eq!(c.runtime, "kubernetes");
        assert_eq!(c.id.as_deref(), Some(ID));
        assert!(c.matches(&ID[..12]));
        assert!(!c.matches(&ID[..6]), "short prefixes are ambiguous");

        let o = p("/kubepods.slice/kubepods-pod1b2c3d4e_0000_1111_2222_333344445555.slice");
        let c = o.container.unwrap();
        assert_eq!(c.label(), "pod:1b2c3d4e-0000-1111-2222-333344445555");
        assert_eq!(c.id, None);

        let o = p(&format!("/system.slice/crio-conmon-{ID}.scope"));
        assert_eq!(o.container.unwrap().runtime, "cri-o");
    }

    #[test]
    fn odd_bytes_never_panic_and_fall_back_to_raw() {
        for path in [
            &b"/\xff\xfe"[..],
            b"/system.slice/\xc3(.service",
            b"/a/payload",
            b"/payload",
            b"//",
            b"/\\x/\\xz.service",
            b"/x@.service",
            b"/@x.service",
            b"/system.slice/a@b@c.service",
            b"/.service",
        ] {
            let o = parse(path);
            assert!(
                o.unit.as_deref().is_none_or(is_unit_name),
                "{path:?} gave {o:?}"
            );
        }
        assert_eq!(parse(b"/system.slice/\xc3(.service").kind, Kind::Raw);
        assert_eq!(parse(b"/x@.service").kind, Kind::Raw);
        assert_eq!(parse(b"/system.slice/a@b@c.service").kind, Kind::Raw);
        assert!(is_unit_name("a\\x2db.service"));
        assert!(!is_unit_name("a b.service"));
        assert!(!is_unit_name("foo"));
    }
}
