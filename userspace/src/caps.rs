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

#[cfg(test)]
mod tests {
    use super::*;

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
