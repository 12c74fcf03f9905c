//! Memory signals: typed parsers for the files the
//! sampler reads, and the trend arithmetic of the forecast. Parsers take
//! the text, readers take a root directory, so everything is tested on
//! fixtures; malformed input is an error value, never a panic.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemError {
    #[error("cannot read {path}: {why}")]
    Io { path: PathBuf, why: String },
    #[error("{what}: line {line}: {why}")]
    Malformed {
        what: String,
        line: usize,
        why: String,
    },
    #[error("{what}: no {field}")]
    Missing { what: String, field: &'static str },
}

fn malformed(what: &str, line: usize, why: impl Into<String>) -> MemError {
    MemError::Malformed {
        what: what.to_string(),
        line,
        why: why.into(),
    }
}

fn read(path: &Path) -> Result<String, MemError> {
    fs::read_to_string(path).map_err(|e| MemError::Io {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// The /proc/meminfo fields the forecast uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub slab: u64,
    pub sunreclaim: u64,
    pub committed_as: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// Parses /proc/meminfo ("Name:   1234 kB" lines).
pub fn parse_meminfo(text: &str, what: &str) -> Result<MemInfo, MemError> {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| malformed(what, i + 1, "no ':'"))?;
        let mut parts = rest.split_whitespace();
        let n: u64 = parts
            .next()
            .ok_or_else(|| malformed(what, i + 1, "no value"))?
            .parse()
            .map_err(|_| malformed(what, i + 1, "value is not a number"))?;
        let bytes = match parts.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            Some(u) => return Err(malformed(what, i + 1, format!("unknown unit {u:?}"))),
        }
        .ok_or_else(|| malformed(what, i + 1, "value overflows"))?;
        m.insert(name.trim(), bytes);
    }
    let get = |field: &'static str| {
        m.get(field).copied().ok_or(MemError::Missing {
            what: what.to_string(),
            field,
        })
    };
    Ok(MemInfo {
        total: get("MemTotal")?,
        available: get("MemAvailable")?,
        slab: get("Slab")?,
        sunreclaim: get("SUnreclaim")?,
        committed_as: get("Committed_AS")?,
        swap_total: get("SwapTotal")?,
        swap_free: get("SwapFree")?,
    })
}

pub fn read_meminfo(proc_root: &Path) -> Result<MemInfo, MemError> {
    let p = proc_root.join("meminfo");
    parse_meminfo(&read(&p)?, &p.display().to_string())
}

/// One line of a PSI file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds stalled, since boot (or since the cgroup was created).
    pub total_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Psi {
    pub some: PsiLine,
    /// Absent from the system-wide cpu file on older kernels.
    pub full: Option<PsiLine>,
}

/// Parses /proc/pressure/memory or a cgroup's memory.pressure.
pub fn parse_psi(text: &str, what: &str) -> Result<Psi, MemError> {
    let mut some = None;
    let mut full = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let mut vals: BTreeMap<&str, &str> = BTreeMap::new();
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| malformed(what, i + 1, format!("{p:?} is not key=value")))?;
            vals.insert(k, v);
        }
        let f = |k: &str| -> Result<f64, MemError> {
            vals.get(k)
                .ok_or_else(|| malformed(what, i + 1, format!("no {k}")))?
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| malformed(what, i + 1, format!("{k} is not a percentage")))
        };
        let l = PsiLine {
            avg10: f("avg10")?,
            avg60: f("avg60")?,
            avg300: f("avg300")?,
            total_us: vals
                .get("total")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| malformed(what, i + 1, "total is not a number"))?,
        };
        match kind {
            "some" => some = Some(l),
            "full" => full = Some(l),
            other => return Err(malformed(what, i + 1, format!("unknown line {other:?}"))),
        }
    }
    Ok(Psi {
        some: some.ok_or(MemError::Missing {
            what: what.to_string(),
            field: "some",
        })?,
        full,
    })
}

/// "key value" files: memory.stat (v1 and v2) and memory.events.
pub fn parse_kv(text: &str, what: &str) -> Result<BTreeMap<String, u64>, MemError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed(what, i + 1, "not \"key value\""));
        };
        let v = v
            .parse()
            .map_err(|_| malformed(what, i + 1, format!("{k}: value is not a number")))?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// A cgroup memory limit: v2 "max" or a v1 value rounded near 2^63 mean
/// no limit.
pub fn parse_limit(text: &str, what: &str) -> Result<Option<u64>, MemError> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    let n: u64 = t
        .parse()
        .map_err(|_| malformed(what, 1, format!("{t:?} is not a limit")))?;
    // v1 reports "unlimited" as PAGE_COUNTER_MAX pages, ~2^63 bytes.
    Ok((n < 1 << 62).then_some(n))
}

/// A single number (memory.current, memory.usage_in_bytes).
pub fn parse_u64(text: &str, what: &str) -> Result<u64, MemError> {
    text.trim()
        .parse()
        .map_err(|_| malformed(what, 1, format!("{:?} is not a number", text.trim())))
}

/// One cgroup's memory, from whichever hierarchy accounts it.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupMemory {
    /// Bytes charged now (v2 memory.current, v1 memory.usage_in_bytes).
    pub current: u64,
    /// The hard limit (v2 memory.max, v1 memory.limit_in_bytes); None if
    /// unlimited.
    pub limit: Option<u64>,
    /// v2 memory.high; None if unset (v1 has none).
    pub high: Option<u64>,
    pub anon: u64,
    pub file: u64,
    /// Kernel memory the cgroup is charged for (v2 kernel or slab; v1 has
    /// no such field and reports 0).
    pub kernel: u64,
    /// OOM kills inside this cgroup (v2 memory.events oom_kill, v1
    /// memory.oom_control oom_kill).
    pub oom_kills: u64,
    /// Times the limit was hit (v2 memory.events max, v1 memory.failcnt).
    pub limit_hits: u64,
    /// v2 memory.pressure; None on v1.
    pub pressure: Option<Psi>,
}

fn file(dir: &Path, name: &str) -> Result<(String, String), MemError> {
    let p = dir.join(name);
    Ok((read(&p)?, p.display().to_string()))
}

/// Reads a cgroup v2 directory's memory files.
pub fn read_cgroup_v2(dir: &Path) -> Result<CgroupMemory, MemError> {
    let (t, w) = file(dir, "memory.current")?;
    let current = parse_u64(&t, &w)?;
    let (t, w) = file(dir, "memory.max")?;
    let limit = parse_limit(&t, &w)?;
    let (t, w) = file(dir, "memory.high")?;
    let high = parse_limit(&t, &w)?;
    let (t, w) = file(dir, "memory.stat")?;
    let stat = parse_kv(&t, &w)?;
    let (t, w) = file(dir, "memory.events")?;
    let events = parse_kv(&t, &w)?;
    let (t, w) = file(dir, "memory.pressure")?;
    let pressure = Some(parse_psi(&t, &w)?);
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    Ok(CgroupMemory {
        current,
        limit,
        high,
        anon: get(&stat, "anon"),
        file: get(&stat, "file"),
        // "kernel" since 5.18; before, slab is the bulk of it.
        kernel: stat
            .get("kernel")
            .copied()
            .unwrap_or_else(|| get(&stat, "slab")),
        oom_kills: get(&events, "oom_kill"),
        limit_hits: get(&events, "max"),
        pressure,
    })
}

/// Reads a cgroup v1 memory-controller directory.
pub fn read_cgroup_v1(dir: &Path) -> Result<CgroupMemory, MemError> {
    let (t, w) = file(dir, "memory.usage_in_bytes")?;
    let current = parse_u64(&t, &w)?;
    let (t, w) = file(dir, "memory.limit_in_bytes")?;
    let limit = parse_limit(&t, &w)?;
    let (t, w) = file(dir, "memory.stat")?;
    let stat = parse_kv(&t, &w)?;
    let (t, w) = file(dir, "memory.failcnt")?;
    let limit_hits = parse_u64(&t, &w)?;
    let (t, w) = file(dir, "memory.oom_control")?;
    let oom = parse_kv(&t, &w)?;
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Ok(CgroupMemory {
        current,
        limit,
        high: None,
        anon: get("rss") + get("rss_huge"),
        file: get("cache"),
        kernel: 0,
        oom_kills: oom.get("oom_kill").copied().unwrap_or(0),
        limit_hits,
        pressure: None,
    })
}

/// Bytes of a cgroup's charge the kernel can reclaim without swap, from
/// its memory.stat: page cache that is not shmem, and (v2) reclaimable
/// slab. Shmem and tmpfs pages are counted in `file` (v2) and `cache` (v1)
/// but live on the anonymous LRU: without swap they stay, so they are use.
/// v1 does not split its kernel memory, so its slab all counts as use.
/// v1 fields are the hierarchical `total_*` ones, as `memory.usage_in_bytes`
/// is hierarchical; the local ones stand in where those are absent.
pub fn reclaimable_bytes(stat: &BTreeMap<String, u64>, v2: bool) -> u64 {
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    if v2 {
        get("file").saturating_sub(get("shmem")) + get("slab_reclaimable")
    } else {
        let total = |k: &str| {
            stat.get(&format!("total_{k}"))
                .copied()
                .unwrap_or_else(|| get(k))
        };
        total("cache").saturating_sub(total("shmem"))
    }
}

/// Whether a slab cache's objects are reclaimable (SLUB's
/// /sys/kernel/slab/NAME/reclaim_account: "1" for caches such as dentry
/// and inodes that the shrinkers empty under pressure).
pub fn parse_reclaim_account(text: &str, what: &str) -> Result<bool, MemError> {
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(malformed(what, 1, format!("{other:?} is not 0 or 1"))),
    }
}

/// One cache of /proc/slabinfo, with the bytes its slabs hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlabCache {
    pub name: String,
    pub active_objs: u64,
    pub num_objs: u64,
    pub objsize: u64,
    pub bytes: u64,
}

/// Parses /proc/slabinfo version 2.x.
pub fn parse_slabinfo(text: &str, what: &str) -> Result<Vec<SlabCache>, MemError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.starts_with("slabinfo - version: 2.") => {}
        _ => return Err(malformed(what, 1, "not slabinfo version 2.x")),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            return Err(malformed(what, i + 1, "too few fields"));
        }
        let n = |j: usize| -> Result<u64, MemError> {
            f[j].parse()
                .map_err(|_| malformed(what, i + 1, format!("field {} is not a number", j + 1)))
        };
        let (active_objs, num_objs, objsize) = (n(1)?, n(2)?, n(3)?);
        out.push(SlabCache {
            name: f[0].to_string(),
            active_objs,
            num_objs,
            objsize,
            bytes: num_objs.saturating_mul(objsize),
        });
    }
    Ok(out)
}

/// Resident bytes from /proc/PID/statm (its second field, in pages).
pub fn parse_statm(text: &str, what: &str, page: u64) -> Result<u64, MemError> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() < 7 {
        return Err(malformed(what, 1, "fewer than 7 fields"));
    }
    let pages: u64 = f[1]
        .parse()
        .map_err(|_| malformed(what, 1, format!("{:?} is not a number", f[1])))?;
    pages
        .checked_mul(page)
        .ok_or_else(|| malformed(what, 1, "resident size overflows"))
}

/// From /proc/PID/stat: the command name and the start time in clock
/// ticks since boot (field 22), which with the pid identifies a process
/// across pid reuse. The name may hold spaces and parentheses: it runs to
/// the last ')'.
pub fn parse_stat_identity(text: &str, what: &str) -> Result<(String, u64), MemError> {
    let open = text
        .find('(')
        .ok_or_else(|| malformed(what, 1, "no '(' before the command name"))?;
    let close = text
        .rfind(')')
        .filter(|c| *c > open)
        .ok_or_else(|| malformed(what, 1, "no ')' after the command name"))?;
    let comm = text[open + 1..close].to_string();
    // Field 3 (state) is the first after the name; starttime is field 22.
    let start = text[close + 1..]
        .split_whitespace()
        .nth(19)
        .ok_or_else(|| malformed(what, 1, "fewer than 22 fields"))?;
    let start = start
        .parse()
        .map_err(|_| malformed(what, 1, format!("starttime {start:?} is not a number")))?;
    Ok((comm, start))
}

/// The journal file header fields that say how much of the file is in use
/// (systemd's journal file format, all little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    pub header_size: u64,
    pub arena_size: u64,
    /// Offset of the last object written; 0 in a file with none yet.
    pub tail_object_offset: u64,
}

/// Bytes of a journal header read: enough for `tail_object_offset`.
pub const JOURNAL_HEADER_READ: usize = 144;

/// Parses the start of a `.journal` file.
pub fn parse_journal_header(b: &[u8], what: &str) -> Result<JournalHeader, MemError> {
    if b.len() < JOURNAL_HEADER_READ {
        return Err(malformed(what, 1, "shorter than a journal header"));
    }
    if &b[..8] != b"LPKSHHRH" {
        return Err(malformed(what, 1, "not a journal file (bad signature)"));
    }
    let le = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let h = JournalHeader {
        header_size: le(88),
        arena_size: le(96),
        tail_object_offset: le(136),
    };
    if h.tail_object_offset != 0
        && (h.tail_object_offset < h.header_size
            || h.tail_object_offset > h.header_size.saturating_add(h.arena_size))
    {
        return Err(malformed(what, 1, "tail object outside the arena"));
    }
    Ok(h)
}

/// The size field of a journal object header (type, flags, 6 reserved
/// bytes, then le64 size).
pub fn parse_journal_object_size(b: &[u8], what: &str) -> Result<u64, MemError> {
    if b.len() < 16 {
        return Err(malformed(what, 1, "object header cut short"));
    }
    Ok(u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")))
}

/// Theil–Sen slope of (t, y) points: the median of the slopes of all
/// pairs, so one outlier sample cannot bend the trend. None with fewer
/// than two distinct times.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dt = b.0 - a.0;
            if dt != 0.0 && dt.is_finite() {
                let s = (b.1 - a.1) / dt;
                if s.is_finite() {
                    slopes.push(s);
                }
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(|a, b| a.total_cmp(b));
    let n = slopes.len();
    Some(if n % 2 == 1 {
        slopes[n / 2]
    } else {
        (slopes[n / 2 - 1] + slopes[n / 2]) / 2.0
    })
}

/// Seconds until `headroom` bytes are used up at `growth` bytes per
/// second; None when nothing grows.
pub fn time_to_exhaustion(headroom: f64, growth_per_s: f64) -> Option<f64> {
    (growth_per_s > 0.0).then(|| (headroom.max(0.0)) / growth_per_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24578496 kB\nMemFree:        20000000 kB\n\
MemAvailable:   22000000 kB\nSlab:             300000 kB\nSUnreclaim:       100000 kB\n\
Committed_AS:    4000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n\
HugePages_Total:       0\n";

    #[test]
    fn meminfo_in_bytes_and_its_errors() {
        let m = parse_meminfo(MEMINFO, "meminfo").unwrap();
        assert_eq!(m.total, 24578496 * 1024);
        assert_eq!(m.available, 22000000 * 1024);
        assert_eq!(m.sunreclaim, 100000 * 1024);
        assert_eq!(m.swap_free, 0);
        assert_eq!(
            parse_meminfo("MemTotal: 1 kB\n", "m").unwrap_err(),
            MemError::Missing {
                what: "m".into(),
                field: "MemAvailable"
            }
        );
        for (bad, line) in [
            ("MemTotal 1 kB\n", 1),
            ("MemTotal: x kB\n", 1),
            ("MemTotal: 1 kB\nSlab:\n", 2),
            ("MemTotal: 1 MB\n", 1),
            ("MemTotal: 99999999999999999999 kB\n", 1),
        ] {
            match parse_meminfo(bad, "m") {
                Err(MemError::Malformed { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Truncated mid-file: the fields after the cut are missing.
        let cut = &MEMINFO[..40];
        assert!(parse_meminfo(cut, "m").is_err());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("meminfo"), MEMINFO).unwrap();
        assert_eq!(read_meminfo(d.path()).unwrap().slab, 300000 * 1024);
        assert!(matches!(
            read_meminfo(&d.path().join("nope")),
            Err(MemError::Io { .. })
        ));
    }

    #[test]
    fn statm_and_stat_identity() {
        assert_eq!(
            parse_statm("5430 2650 1700 300 0 900 0\n", "statm", 4096).unwrap(),
            2650 * 4096
        );
        for bad in [
            "",
            "1 2 3",
            "1 x 3 4 5 6 7",
            "1 99999999999999999999 3 4 5 6 7",
        ] {
            assert!(parse_statm(bad, "statm", 4096).is_err(), "{bad:?}");
        }
        assert!(parse_statm("1 18446744073709551615 3 4 5 6 7", "s", 4096).is_err());
        let stat = "812 (systemd-journal) S 1 812 812 0 -1 4194560 1071 0 0 0 7 5 0 0 \
                    20 0 1 0 123456 29212672 2880 18446744073709551615";
        assert_eq!(
            parse_stat_identity(stat, "stat").unwrap(),
            ("systemd-journal".to_string(), 123456)
        );
        // A hostile name: spaces and a ") " inside it.
        let odd = "9 (a) b (c) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0";
        assert_eq!(
            parse_stat_identity(odd, "stat").unwrap(),
            ("a) b (c".to_string(), 77)
        );
        for bad in ["", "9 a S", "9 (a) S 1 2", "9 )a( S", &stat[..60]] {
            assert!(parse_stat_identity(bad, "stat").is_err(), "{bad:?}");
        }
    }

    fn journal_header(header: u64, arena: u64, tail: u64) -> Vec<u8> {
        let mut b = vec![0u8; 272];
        b[..8].copy_from_slice(b"LPKSHHRH");
        b[88..96].copy_from_slice(&header.to_le_bytes());
        b[96..104].copy_from_slice(&arena.to_le_bytes());
        b[136..144].copy_from_slice(&tail.to_le_bytes());
        b
    }

    #[test]
    fn journal_header_fields_and_damage() {
        let h = parse_journal_header(&journal_header(272, 8_388_336, 600_000), "j").unwrap();
        assert_eq!(
            h,
            JournalHeader {
                header_size: 272,
                arena_size: 8_388_336,
                tail_object_offset: 600_000
            }
        );
        assert_eq!(
            parse_journal_header(&journal_header(272, 1000, 0), "j")
                .unwrap()
                .tail_object_offset,
            0
        );
        let mut bad_sig = journal_header(272, 1000, 500);
        bad_sig[0] = b'X';
        for (bad, why) in [
            (bad_sig, "bad signature"),
            (journal_header(272, 1000, 5000), "outside the arena"),
            (journal_header(272, 1000, 100), "outside the arena"),
            (journal_header(272, 1000, 500)[..100].to_vec(), "shorter"),
        ] {
            let e = parse_journal_header(&bad, "j").unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let mut obj = vec![1u8, 0, 0, 0, 0, 0, 0, 0];
        obj.extend_from_slice(&4200u64.to_le_bytes());
        assert_eq!(parse_journal_object_size(&obj, "o").unwrap(), 4200);
        assert!(parse_journal_object_size(&obj[..12], "o").is_err());
    }

    #[test]
    fn psi_lines() {
        let p = parse_psi(
            "some avg10=12.50 avg60=3.00 avg300=0.75 total=123456\n\
             full avg10=1.00 avg60=0.50 avg300=0.10 total=999\n",
            "psi",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 12.5);
        assert_eq!(p.some.total_us, 123456);
        assert_eq!(p.full.unwrap().avg300, 0.1);
        let p = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "psi").unwrap();
        assert_eq!(p.full, None);
        for bad in [
            "",
            "some avg10=x avg60=0 avg300=0 total=0\n",
            "some avg10=1 avg60=0 total=0\n",
            "some avg10=1 avg60=0 avg300=0 total=-1\n",
            "some avg10=1 avg60=0 avg300=0\n",
            "some avg10=1 avg60=0 avg300=0 total=5 junk\n",
            "most avg10=1 avg60=0 avg300=0 total=5\n",
            "some avg10=NaN avg60=0 avg300=0 total=5\n",
        ] {
            assert!(parse_psi(bad, "psi").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_value_files_limits_and_numbers() {
        let kv = parse_kv("anon 4096\nfile 8192\nslab 100\n", "memory.stat").unwrap();
        assert_eq!(kv["file"], 8192);
        let ev = parse_kv("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", "memory.events").unwrap();
        assert_eq!(ev["oom_kill"], 1);
        assert!(parse_kv("anon\n", "s").is_err());
        assert!(parse_kv("anon 1 2\n", "s").is_err());
        assert_eq!(
            parse_kv("anon 1\nfile x\n", "s").unwrap_err().to_string(),
            "s: line 2: file: value is not a number"
        );
        assert_eq!(parse_limit("max\n", "memory.max"), Ok(None));
        assert_eq!(parse_limit("268435456\n", "memory.max"), Ok(Some(1 << 28)));
        assert_eq!(
            parse_limit("9223372036854771712\n", "limit_in_bytes"),
            Ok(None)
        );
        assert!(parse_limit("lots", "memory.max").is_err());
        assert_eq!(parse_u64("42\n", "memory.current"), Ok(42));
        assert!(parse_u64("", "memory.current").is_err());
    }

    #[test]
    fn slabinfo_caches() {
        let text = "slabinfo - version: 2.1\n\
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
dentry             1000   1200    192   21    1 : tunables    0    0    0 : slabdata     58     58      0\n\
kmalloc-64          500    512     64   64    1 : tunables    0    0    0 : slabdata      8      8      0\n";
        let c = parse_slabinfo(text, "slabinfo").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "dentry");
        assert_eq!(c[0].bytes, 1200 * 192);
        assert!(parse_slabinfo("slabinfo - version: 1.1\n", "s").is_err());
        assert!(parse_slabinfo("", "s").is_err());
        let cut = "slabinfo - version: 2.1\ndentry 1000 12";
        assert_eq!(
            parse_slabinfo(cut, "s").unwrap_err().to_string(),
            "s: line 2: too few fields"
        );
        assert!(parse_slabinfo("slabinfo - version: 2.1\nx a b c d e\n", "s").is_err());
    }

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    #[test]
    fn cgroup_v2_and_v1_readers() {
        let v2 = dir(&[
            ("memory.current", "1048576\n"),
            ("memory.max", "268435456\n"),
            ("memory.high", "max\n"),
            (
                "memory.stat",
                "anon 700000\nfile 300000\nkernel 48576\nslab 40000\n",
            ),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n",
            ),
            (
                "memory.pressure",
                "some avg10=1.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            ),
        ]);
        let m = read_cgroup_v2(v2.path()).unwrap();
        assert_eq!(m.current, 1 << 20);
        assert_eq!(m.limit, Some(1 << 28));
        assert_eq!(m.high, None);
        assert_eq!((m.anon, m.file, m.kernel), (700000, 300000, 48576));
        assert_eq!((m.oom_kills, m.limit_hits), (1, 12));
        assert_eq!(m.pressure.unwrap().some.avg10, 1.0);
        std::fs::write(v2.path().join("memory.events"), "max x\n").unwrap();
        assert!(matches!(
            read_cgroup_v2(v2.path()),
            Err(MemError::Malformed { line: 1, .. })
        ));
        std::fs::remove_file(v2.path().join("memory.events")).unwrap();
        assert!(matches!(
            read_cgroup_v2(v2.path()),
            Err(MemError::Io { .. })
        ));

        let v1 = dir(&[
            ("memory.usage_in_bytes", "5000\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.stat", "cache 1000\nrss 3000\nrss_huge 0\n"),
            ("memory.failcnt", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
        ]);
        let m = read_cgroup_v1(v1.path()).unwrap();
        assert_eq!(
            (m.current, m.limit, m.anon, m.file),
            (5000, None, 3000, 1000)
        );
        assert_eq!(m.oom_kills, 2);
        assert_eq!(m.pressure, None);
        std::fs::write(v1.path().join("memory.usage_in_bytes"), "").unwrap();
        assert!(read_cgroup_v1(v1.path()).is_err(), "truncated to nothing");
    }

    #[test]
    fn reclaimable_bytes_of_v2_and_v1_stat() {
        let v2 = parse_kv(
            "anon 1000\nfile 5000\nshmem 1500\nslab_reclaimable 700\nslab_unreclaimable 300\n",
            "s",
        )
        .unwrap();
        // File pages less tmpfs, plus reclaimable slab.
        assert_eq!(reclaimable_bytes(&v2, true), 5000 - 1500 + 700);
        let v1 = parse_kv(
            "cache 10\nshmem 4\ntotal_cache 9000\ntotal_shmem 2000\ntotal_rss 100\n",
            "s",
        )
        .unwrap();
        assert_eq!(reclaimable_bytes(&v1, false), 7000, "hierarchical");
        let local = parse_kv("cache 10\nshmem 4\nrss 3\n", "s").unwrap();
        assert_eq!(reclaimable_bytes(&local, false), 6);
        // Counters read at different moments may disagree: never below 0.
        let odd = parse_kv("file 100\nshmem 400\n", "s").unwrap();
        assert_eq!(reclaimable_bytes(&odd, true), 0);
        assert_eq!(parse_reclaim_account("1\n", "r"), Ok(true));
        assert_eq!(parse_reclaim_account("0\n", "r"), Ok(false));
        assert!(parse_reclaim_account("yes\n", "r").is_err());
    }

    /// The running machine's own files parse (those this user may read).
    #[test]
    fn this_machines_files_parse() {
        let m = read_meminfo(Path::new("/proc")).unwrap();
        assert!(m.available <= m.total && m.total > 0);
        if let Ok(t) = fs::read_to_string("/proc/pressure/memory") {
            parse_psi(&t, "/proc/pressure/memory").unwrap();
        }
        if let Ok(t) = fs::read_to_string("/proc/slabinfo") {
            assert!(!parse_slabinfo(&t, "/proc/slabinfo").unwrap().is_empty());
        }
        for f in [
            "/sys/fs/cgroup/memory/memory.stat",
            "/sys/fs/cgroup/memory.stat",
        ] {
            if let Ok(t) = fs::read_to_string(f) {
                assert!(!parse_kv(&t, f).unwrap().is_empty(), "{f}");
            }
        }
        // The v1 root has no limit file semantics of its own; a child would.
        let own_v1 = Path::new("/sys/fs/cgroup/memory");
        if own_v1.join("memory.oom_control").exists() && own_v1.join("memory.failcnt").exists() {
            read_cgroup_v1(own_v1).unwrap();
        }
    }

    #[test]
    fn theil_sen_ignores_outliers_and_forecasts() {
        // 16 MiB/s growth with one wild sample.
        let mut pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, i as f64 * 16.0)).collect();
        pts[7].1 = 10_000.0;
        assert_eq!(theil_sen(&pts), Some(16.0));
        assert_eq!(theil_sen(&[(1.0, 5.0)]), None);
        assert_eq!(theil_sen(&[(1.0, 5.0), (1.0, 9.0)]), None, "no time passed");
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 100.0)).collect();
        assert_eq!(theil_sen(&flat), Some(0.0));
        assert_eq!(time_to_exhaustion(160.0, 16.0), Some(10.0));
        assert_eq!(time_to_exhaustion(160.0, 0.0), None);
        assert_eq!(time_to_exhaustion(160.0, -3.0), None);
        assert_eq!(time_to_exhaustion(-5.0, 1.0), Some(0.0));
    }
}
