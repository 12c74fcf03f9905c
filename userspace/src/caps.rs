//! Privilege checks, so a missing capability is named before the kernel
//! answers with a bare EPERM.

use std::fs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask from a /proc/<pid>/status text.
pub fn effective_caps(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// What is missing for loading and attaching tracing programs, or None.
/// Kernels >= 5.8 accept CAP_BPF + CAP_PERFMON; CAP_SYS_ADMIN covers both.
pub fn missing_for_tracing(eff: u64) -> Option<String> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    Some(missing.join(" and "))
}

pub fn check_bpf_privileges() -> Result<(), String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status to check privileges: {e}"))?;
    let eff = effective_caps(&status).ok_or("cannot find CapEff in /proc/self/status")?;
    match missing_for_tracing(eff) {
        None => Ok(()),
        Some(m) => Err(format!(
            "insufficient privileges: missing {m} (or CAP_SYS_ADMIN); run as root, e.g. with sudo"
        )),
    }
}

/// The highest capability number this code knows to drop from the
/// bounding set; the kernel answers EINVAL past its own last one.
const CAP_LAST_KNOWN: u32 = 63;

/// Drops every capability but `keep`, for good: from the bounding set
/// (so an exec cannot regain them; skipped without CAP_SETPCAP), the
/// ambient set, and the effective, permitted and inheritable sets. For after the probe is loaded: reading
/// its maps through the file descriptors already open needs none.
pub fn drop_to(keep: &[u32]) -> std::io::Result<()> {
    let mask: u64 = keep.iter().fold(0, |m, c| m | (1u64 << c));
    for cap in 0..=CAP_LAST_KNOWN {
        if mask & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // Past the kernel's last capability: nothing more to drop.
            // EPERM: no CAP_SETPCAP, as under a unit whose bounding set is
            // already the two capabilities loading needs; there, the unit's
            // SecureBits=noroot keeps an exec (a hook) from regaining them.
            if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) {
                break;
            }
            return Err(e);
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| (mask >> shift) as u32;
    let data = [
        Data {
            effective: half(0),
            permitted: half(0),
            inheritable: 0,
        },
        Data {
            effective: half(32),
            permitted: half(32),
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads a valid header and two data structs, the
    // layout of _LINUX_CAPABILITY_VERSION_3.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The capabilities still needed once the probe is loaded, on a kernel
/// of this release ("6.18.0-1-amd64"): reading and updating maps through
/// file descriptors already held needs none since 5.19 (the
/// unprivileged_bpf_disabled check moved to map and program creation);
/// before, every bpf() call needs CAP_BPF (5.8+) or CAP_SYS_ADMIN.
pub fn needed_after_load(release: &str) -> Vec<u32> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version >= (5, 19) {
        Vec::new()
    } else if version >= (5, 8) {
        vec![CAP_BPF]
    } else {
        vec![CAP_SYS_ADMIN]
    }
}

/// The running kernel's release (uname -r).
pub fn kernel_release() -> String {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_what_old_kernels_need_for_map_access() {
        assert_eq!(needed_after_load("6.18.0-2-amd64"), Vec::<u32>::new());
        assert_eq!(needed_after_load("5.19.0"), Vec::<u32>::new());
        assert_eq!(needed_after_load("5.10.0-35-amd64"), vec![CAP_BPF]);
        assert_eq!(needed_after_load("5.8.1"), vec![CAP_BPF]);
        assert_eq!(needed_after_load("4.19.0-27-amd64"), vec![CAP_SYS_ADMIN]);
        assert_eq!(needed_after_load("garbage"), vec![CAP_SYS_ADMIN]);
    }

    #[test]
    fn parses_capeff() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(s), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("Name: x\n"), None);
    }

    #[test]
    fn names_exactly_what_is_missing() {
        assert_eq!(
            missing_for_tracing(0).as_deref(),
            Some("CAP_BPF and CAP_PERFMON")
        );
        assert_eq!(
            missing_for_tracing(1 << CAP_BPF).as_deref(),
            Some("CAP_PERFMON")
        );
        assert_eq!(
            missing_for_tracing(1 << CAP_PERFMON).as_deref(),
            Some("CAP_BPF")
        );
        assert_eq!(
            missing_for_tracing((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
        assert_eq!(missing_for_tracing(1 << CAP_SYS_ADMIN), None);
    }
}
