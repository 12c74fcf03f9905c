//! The reader against real journal files: systemd-journal-remote writes
//! them from an export stream these tests compose, journalctl's export of
//! the same file is the ground truth, and damaged copies check that the
//! reader reads what is readable and reports the rest.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::*;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

fn require_tools() {
    if !Path::new(JOURNAL_REMOTE).exists() {
        panic!(
            "{JOURNAL_REMOTE} is missing: the journal tests make their files with it; \
             run `cargo xtask test`, which installs systemd-journal-remote"
        );
    }
    if Command::new("journalctl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "journalctl is missing: the journal tests compare against its export; run `cargo xtask test`"
        );
    }
}

/// One entry to write: its timestamps, boot, and fields in order.
#[derive(Clone)]
struct In {
    realtime: u64,
    monotonic: u64,
    boot: [u8; 16],
    fields: Vec<(String, Vec<u8>)>,
}

const BOOT_A: [u8; 16] = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef";
const BOOT_B: [u8; 16] = *b"\xfe\xdc\xba\x98\x76\x54\x32\x10\xfe\xdc\xba\x98\x76\x54\x32\x10";

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A text that compresses, but not to nothing: journald compresses values
/// over 512 bytes.
fn big_value(i: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for j in 0..120 {
        write!(v, "{} ", (i * 7919 + j * 104729) % 1_000_003).unwrap_or(());
    }
    v
}

/// Entries shaped like the incident, over two boots, with a binary field
/// (newline and NUL inside, the 64-bit length form), a big field every
/// tenth entry, shared values, and a repeated field.
fn sample(n: usize) -> Vec<In> {
    (0..n)
        .map(|i| {
            let boot = if i < n / 2 { BOOT_A } else { BOOT_B };
            let mut fields = vec![
                ("_PID".to_string(), b"1".to_vec()),
                ("UNIT".to_string(), b"serial-getty@ttyS0.service".to_vec()),
                (
                    "MESSAGE".to_string(),
                    format!("serial-getty@ttyS0.service: Scheduled restart job, restart counter is at {i}.")
                        .into_bytes(),
                ),
                ("PRIORITY".to_string(), b"6".to_vec()),
                ("BINARY".to_string(), format!("line\n{i}\0end").into_bytes()),
                ("REPEATED".to_string(), format!("first {i}").into_bytes()),
                ("REPEATED".to_string(), b"second".to_vec()),
            ];
            if i % 10 == 3 {
                fields.push(("BIG".to_string(), big_value(i)));
            }
            In {
                realtime: 1_700_000_000_000_000 + i as u64 * 10_000_000,
                monotonic: 5_000_000 + i as u64 * 10_000_000,
                boot,
                fields,
            }
        })
        .collect()
}

fn export_stream(entries: &[In]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(
            format!(
                "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={}\n",
                e.realtime,
                e.monotonic,
                hex(&e.boot)
            )
            .as_bytes(),
        );
        for (name, value) in &e.fields {
            if value.contains(&b'\n') || value.contains(&0) {
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
                out.extend_from_slice(value);
                out.push(b'\n');
            } else {
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(value);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` into a journal file at `path` with
/// systemd-journal-remote.
fn make_journal(path: &Path, entries: &[In], compact: bool) {
    make_journal_hashed(path, entries, compact, true)
}

/// [`make_journal`], choosing whether DATA hashes are keyed (SipHash) or
/// not (Jenkins), as journald's SYSTEMD_JOURNAL_KEYED_HASH does.
fn make_journal_hashed(path: &Path, entries: &[In], compact: bool, keyed: bool) {
    require_tools();
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("--split-mode=none")
        .arg(format!("--output={}", path.display()))
        .arg("-")
        .env("SYSTEMD_JOURNAL_COMPACT", if compact { "1" } else { "0" })
        .env("SYSTEMD_JOURNAL_KEYED_HASH", if keyed { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-journal-remote");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&export_stream(entries))
        .expect("write export stream");
    let out = child
        .wait_with_output()
        .expect("wait for systemd-journal-remote");
    assert!(
        out.status.success(),
        "journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One entry of `journalctl -o export`.
#[derive(Debug, Default, PartialEq)]
struct Exported {
    realtime: u64,
    monotonic: u64,
    boot: String,
    fields: Vec<(String, Vec<u8>)>,
}

fn journalctl_export(path: &Path) -> Vec<Exported> {
    journalctl_export_matching(path, &[])
}

/// The entries `journalctl --file PATH MATCHES` exports.
fn journalctl_export_matching(path: &Path, matches: &[&str]) -> Vec<Exported> {
    let out = Command::new("journalctl")
        .arg(format!("--file={}", path.display()))
        .args(["-o", "export", "--no-pager"])
        .args(matches)
        .output()
        .expect("run journalctl");
    assert!(
        out.status.success(),
        "journalctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_export(&out.stdout)
}

fn parse_export(mut s: &[u8]) -> Vec<Exported> {
    let mut entries = Vec::new();
    let mut cur = Exported::default();
    let mut started = false;
    while !s.is_empty() {
        let nl = s
            .iter()
            .position(|&b| b == b'\n')
            .expect("export line ends");
        let line = &s[..nl];
        s = &s[nl + 1..];
        if line.is_empty() {
            if started {
                entries.push(std::mem::take(&mut cur));
                started = false;
            }
            continue;
        }
        started = true;
        let (name, value) = match line.iter().position(|&b| b == b'=') {
            Some(eq) => (
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                line[eq + 1..].to_vec(),
            ),
            None => {
                let len = u64::from_le_bytes(s[..8].try_into().expect("8 bytes")) as usize;
                let value = s[8..8 + len].to_vec();
                s = &s[8 + len + 1..];
                (String::from_utf8_lossy(line).into_owned(), value)
            }
        };
        match name.as_str() {
            "__REALTIME_TIMESTAMP" => {
                cur.realtime = String::from_utf8_lossy(&value).parse().expect("realtime")
            }
            "__MONOTONIC_TIMESTAMP" => {
                cur.monotonic = String::from_utf8_lossy(&value).parse().expect("monotonic")
            }
            "_BOOT_ID" => cur.boot = String::from_utf8_lossy(&value).into_owned(),
            n if n.starts_with("__") => {}
            _ => cur.fields.push((name, value)),
        }
    }
    if started {
        entries.push(cur);
    }
    entries
}

/// What the reader delivered of one entry: its fixed part and, for each
/// name asked, `get` and `value_id`.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    realtime: u64,
    monotonic: u64,
    boot: [u8; 16],
    fields: Vec<(String, Option<Vec<u8>>, Option<u64>)>,
}

const NAMES: [&str; 8] = [
    "_PID", "UNIT", "MESSAGE", "PRIORITY", "BINARY", "REPEATED", "BIG", "ABSENT",
];

fn read_all(which: &Which, filter: &Filter) -> (Vec<Got>, ReadStats) {
    let mut journal = open(which).expect("open");
    let mut got = Vec::new();
    let stats = journal
        .read(filter, &mut |e| {
            got.push(Got {
                realtime: e.realtime_us(),
                monotonic: e.monotonic_us(),
                boot: e.boot_id(),
                fields: NAMES
                    .iter()
                    .map(|n| (n.to_string(), e.get(n).map(<[u8]>::to_vec), e.value_id(n)))
                    .collect(),
            })
        })
        .expect("read");
    (got, stats)
}

fn read_file(path: &Path) -> (Vec<Got>, ReadStats) {
    read_all(&Which::Files(vec![path.to_path_buf()]), &Filter::default())
}

fn value<'a>(g: &'a Got, name: &str) -> Option<&'a [u8]> {
    g.fields
        .iter()
        .find(|(n, _, _)| n == name)
        .and_then(|(_, v, _)| v.as_deref())
}

fn whats(stats: &ReadStats) -> Vec<String> {
    stats.problems.iter().map(|p| p.what.clone()).collect()
}

/// Checks every entry against journalctl's export: timestamps, boot, and
/// the first value of every field it lists.
fn assert_matches_export(path: &Path, got: &[Got]) {
    let want = journalctl_export(path);
    assert_eq!(got.len(), want.len(), "entry count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.realtime, w.realtime, "entry {i} realtime");
        assert_eq!(g.monotonic, w.monotonic, "entry {i} monotonic");
        assert_eq!(hex(&g.boot), w.boot, "entry {i} boot");
        let mut names: Vec<&str> = w.fields.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        for name in names {
            let first = w
                .fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice());
            assert_eq!(value(g, name), first, "entry {i} field {name}");
        }
        assert_eq!(value(g, "ABSENT"), None);
    }
}

/// Offsets of the file's entries and of each one's DATA objects, as the
/// reader's own file layer sees them, to aim damage at.
struct Layout {
    entries: Vec<(u64, Vec<u64>)>,
    entry_array: u64,
}

fn layout(path: &Path) -> Layout {
    let f = File::open(path).expect("open fixture");
    let jf = JournalFile::open(path.to_path_buf(), f)
        .expect("map")
        .expect("journal header");
    let mut problems = Problems::default();
    let mut cursor = Cursor::new(&jf, &mut problems);
    let mut entries = Vec::new();
    while let Some(h) = cursor.next(&jf, &mut problems) {
        entries.push((h.offset, jf.items(&h).collect()));
    }
    assert!(
        problems.list.is_empty(),
        "fixture is damaged: {:?}",
        problems.list
    );
    let entry_array = u64::from_le_bytes(jf.bytes()[176..184].try_into().expect("8 bytes"));
    Layout {
        entries,
        entry_array,
    }
}

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let mut data = std::fs::read(path).expect("read fixture");
    data[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).expect("write fixture");
}

fn fixture(dir: &Path, name: &str, n: usize, compact: bool) -> (PathBuf, Vec<Got>) {
    let path = dir.join(name);
    make_journal(&path, &sample(n), compact);
    let (got, stats) = read_file(&path);
    assert!(stats.problems.is_empty(), "{:?}", stats.problems);
    (path, got)
}

/// The DATA object of field `name` in entry `i` (found by payload
/// prefix, decompressing as the reader does).
fn data_offset(path: &Path, entry: usize, name: &str) -> (u64, u8, u64) {
    let f = File::open(path).expect("open");
    let jf = JournalFile::open(path.to_path_buf(), f)
        .expect("map")
        .expect("header");
    let l = layout(path);
    for &off in &l.entries[entry].1 {
        let d = jf.data(off).expect("data");
        let payload = match d.compression {
            None => d.payload.to_vec(),
            Some(k) => decompress(k, d.payload, MAX_VALUE).expect("decompress"),
        };
        if payload.starts_with(format!("{name}=").as_bytes()) {
            let b = jf.bytes();
            let size = u64::from_le_bytes(
                b[off as usize + 8..off as usize + 16]
                    .try_into()
                    .expect("8"),
            );
            return (off, b[off as usize + 1], size);
        }
    }
    panic!("entry {entry} has no {name}");
}

#[test]
fn regular_file_reads_like_journalctl_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, got) = fixture(dir.path(), "regular.journal", 300, false);
    assert_matches_export(&path, &got);
}

#[test]
fn compact_file_reads_like_journalctl_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, got) = fixture(dir.path(), "compact.journal", 300, true);
    assert_matches_export(&path, &got);
}

#[test]
fn zstd_values_of_a_real_file_are_decompressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, got) = fixture(dir.path(), "z.journal", 20, true);
    let (_, flags, _) = data_offset(&path, 3, "BIG");
    assert_eq!(flags, 4, "journal-remote stored BIG with ZSTD");
    assert_eq!(value(&got[3], "BIG"), Some(big_value(3).as_slice()));
}

/// Rewrites entry 3's BIG object with `payload` under `flags`: the object
/// is shrunk to fit, which the reader, following offsets, does not mind.
fn recompress(path: &Path, flags: u8, payload: &[u8]) {
    let (off, _, size) = data_offset(path, 3, "BIG");
    let start = 72; // compact files
    assert!(
        start + payload.len() as u64 <= size,
        "{} bytes do not fit in {}",
        payload.len(),
        size - start
    );
    patch(path, off + 1, &[flags]);
    patch(path, off + 8, &(start + payload.len() as u64).to_le_bytes());
    patch(path, off + start, payload);
}

#[test]
fn lz4_value_in_a_journal_file_is_decompressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = fixture(dir.path(), "lz4.journal", 20, true);
    let stored = b"BIG=an LZ4 value, an LZ4 value, an LZ4 value, an LZ4 value".to_vec();
    let mut payload = (stored.len() as u64).to_le_bytes().to_vec();
    payload.extend_from_slice(&lz4_flex::block::compress(&stored));
    recompress(&path, 2, &payload);
    let (got, stats) = read_file(&path);
    assert!(stats.problems.is_empty(), "{:?}", stats.problems);
    assert_eq!(value(&got[3], "BIG"), Some(&stored[4..]));
}

#[test]
fn xz_value_in_a_journal_file_is_decompressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = fixture(dir.path(), "xz.journal", 20, true);
    let stored = b"BIG=an XZ value".to_vec();
    let mut payload = Vec::new();
    lzma_rs::xz_compress(&mut &stored[..], &mut payload).expect("xz");
    recompress(&path, 1, &payload);
    let (got, stats) = read_file(&path);
    assert!(stats.problems.is_empty(), "{:?}", stats.problems);
    assert_eq!(value(&got[3], "BIG"), Some(&stored[4..]));
}

#[test]
fn garbage_compressed_payload_is_reported_and_its_field_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, before) = fixture(dir.path(), "garbage.journal", 20, true);
    let (off, _, size) = data_offset(&path, 3, "BIG");
    let garbage: Vec<u8> = (0..size - 72)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect();
    patch(&path, off + 72, &garbage);
    let (got, stats) = read_file(&path);
    assert_eq!(got.len(), before.len());
    assert_eq!(value(&got[3], "BIG"), None);
    assert_eq!(value(&got[3], "MESSAGE"), value(&before[3], "MESSAGE"));
    let w = whats(&stats);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("data object at {off:#x}: corrupt ZSTD payload")),
        "{w:?}"
    );
}

#[test]
fn lz4_size_claiming_more_than_the_cap_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = fixture(dir.path(), "lz4bomb.journal", 20, true);
    let mut payload = (1u64 << 40).to_le_bytes().to_vec();
    payload.extend_from_slice(&lz4_flex::block::compress(b"BIG=x"));
    recompress(&path, 2, &payload);
    let (got, stats) = read_file(&path);
    assert_eq!(value(&got[3], "BIG"), None);
    assert_eq!(
        whats(&stats),
        vec![format!(
            "data object at {:#x}: LZ4 value larger than the 16 MiB limit; its field is missing from the entries using it",
            data_offset_raw(&path, 3)
        )]
    );
}

/// The offset of entry 3's BIG object without decoding it (it no longer
/// decodes).
fn data_offset_raw(path: &Path, entry: usize) -> u64 {
    let f = File::open(path).expect("open");
    let jf = JournalFile::open(path.to_path_buf(), f)
        .expect("map")
        .expect("header");
    let l = layout(path);
    l.entries[entry]
        .1
        .iter()
        .copied()
        .find(|&off| jf.data(off).is_ok_and(|d| d.compression.is_some()))
        .expect("a compressed object")
}

#[test]
fn decompression_bomb_in_a_real_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bomb.journal");
    let mut entries = sample(2);
    entries[1]
        .fields
        .push(("BOMB".to_string(), vec![b'a'; MAX_VALUE + 1]));
    make_journal(&path, &entries, true);
    let (got, stats) = read_file(&path);
    assert_eq!(got.len(), 2);
    assert_eq!(value(&got[1], "BOMB"), None);
    assert_eq!(
        value(&got[1], "UNIT"),
        Some(&b"serial-getty@ttyS0.service"[..])
    );
    let w = whats(&stats);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("ZSTD value larger than the 16 MiB limit"),
        "{w:?}"
    );
}

#[test]
fn truncated_file_reads_the_entries_before_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (written, full) = fixture(dir.path(), "cut.journal", 300, false);
    // journald's name for a file it found dirty and set aside.
    let path = dir.path().join("system@0001-0002.journal~");
    std::fs::rename(&written, &path).expect("rename");
    let l = layout(&path);
    let cut = l.entries[150].0 + 8;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(cut).expect("truncate");
    let (got, stats) = read_file(&path);
    assert_eq!(got, full[..150].to_vec());
    let w = whats(&stats);
    assert_eq!(
        w[0],
        format!("truncated at byte {cut}: the entries after it are unreadable")
    );
}

#[test]
fn zeroed_page_skips_only_the_entries_in_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "zero.journal", 600, false);
    let l = layout(&path);
    let page = (l.entries[300].0 / 4096 + 1) * 4096;
    patch(&path, page, &[0u8; 4096]);
    let in_page = |from: u64, to: u64| from < page + 4096 && to > page;
    // An entry whose object header (type and size) was zeroed is skipped;
    // one that merely overlaps the page is read, damaged.
    let skipped: Vec<usize> = (0..l.entries.len())
        .filter(|&i| in_page(l.entries[i].0, l.entries[i].0 + 16))
        .collect();
    let (got, stats) = read_file(&path);
    assert!(!skipped.is_empty());
    let kept: Vec<usize> = (0..full.len()).filter(|i| !skipped.contains(i)).collect();
    assert_eq!(got.len(), kept.len());
    for (g, &i) in got.iter().zip(&kept) {
        // An entry object is 64 bytes plus 16 per item.
        let (off, items) = &l.entries[i];
        if !in_page(*off, off + 64 + 16 * items.len() as u64) {
            let k = &full[i];
            assert_eq!(
                (g.realtime, g.monotonic, g.boot),
                (k.realtime, k.monotonic, k.boot),
                "entry {i}"
            );
        }
    }
    assert!(
        whats(&stats)
            .iter()
            .any(|w| w.contains("entries skipped") || w.contains("entry skipped")),
        "{:?}",
        whats(&stats)
    );
}

#[test]
fn not_a_journal_is_reported_and_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.journal");
    std::fs::write(
        &path,
        b"just some text, longer than a header would need to be\n".repeat(10),
    )
    .expect("write");
    let (got, stats) = read_file(&path);
    assert!(got.is_empty());
    assert_eq!(stats.files, 0);
    assert_eq!(
        stats.problems,
        vec![Problem {
            path,
            what: "not a journal file (bad signature)".into()
        }]
    );
}

#[test]
fn entry_with_absurd_size_is_skipped_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "size.journal", 50, false);
    let l = layout(&path);
    let off = l.entries[20].0;
    patch(&path, off + 8, &u64::MAX.to_le_bytes());
    let (got, stats) = read_file(&path);
    let mut want = full.clone();
    want.remove(20);
    assert_eq!(got, want);
    assert_eq!(
        whats(&stats),
        vec![format!(
            "entry at {off:#x}: bad size {}, 1 entry skipped",
            u64::MAX
        )]
    );
}

#[test]
fn entry_array_pointing_back_ends_without_losing_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "cycle.journal", 300, false);
    let l = layout(&path);
    // The first array is small (journald doubles them): its next pointer
    // is used. Point it at itself.
    patch(&path, l.entry_array + 16, &l.entry_array.to_le_bytes());
    let (got, stats) = read_file(&path);
    assert_eq!(got, full);
    let w = whats(&stats);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("loops back"), "{w:?}");
}

#[test]
fn damaged_entry_array_falls_back_to_scanning_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "array.journal", 300, false);
    let l = layout(&path);
    // Garbage over the first array's header: type and size unusable.
    patch(&path, l.entry_array, &[0xffu8; 16]);
    let (got, stats) = read_file(&path);
    assert_eq!(got, full);
    let w = whats(&stats);
    assert!(
        w[0].starts_with(&format!(
            "entry array at {:#x}: wrong type 255",
            l.entry_array
        )),
        "{w:?}"
    );
}

#[test]
fn same_file_twice_delivers_each_entry_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "a.journal", 100, false);
    let copy = dir.path().join("b.journal");
    std::fs::copy(&path, &copy).expect("copy");
    let (got, stats) = read_all(&Which::Files(vec![path, copy]), &Filter::default());
    assert_eq!(stats.files, 2);
    let strip =
        |g: &[Got]| -> Vec<(u64, u64)> { g.iter().map(|g| (g.realtime, g.monotonic)).collect() };
    assert_eq!(strip(&got), strip(&full));
}

#[test]
fn files_are_merged_in_realtime_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = sample(40);
    let odd: Vec<In> = all.iter().skip(1).step_by(2).cloned().collect();
    let even: Vec<In> = all.iter().step_by(2).cloned().collect();
    make_journal(&dir.path().join("odd.journal"), &odd, true);
    make_journal(&dir.path().join("even.journal"), &even, false);
    let (got, stats) = read_all(
        &Which::Directory(dir.path().to_path_buf()),
        &Filter::default(),
    );
    assert!(stats.problems.is_empty());
    let times: Vec<u64> = got.iter().map(|g| g.realtime).collect();
    let want: Vec<u64> = all.iter().map(|e| e.realtime).collect();
    assert_eq!(times, want);
}

#[test]
fn boots_are_listed_oldest_first_with_their_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = sample(10);
    let path = dir.path().join("boots.journal");
    make_journal(&path, &entries, true);
    let mut j = open(&Which::Files(vec![path])).expect("open");
    let boots = j.boots().expect("boots");
    assert_eq!(
        boots,
        vec![
            Boot {
                id: BOOT_A,
                first_us: entries[0].realtime,
                last_us: entries[4].realtime,
                entries: 5
            },
            Boot {
                id: BOOT_B,
                first_us: entries[5].realtime,
                last_us: entries[9].realtime,
                entries: 5
            },
        ]
    );
}

#[test]
fn filter_selects_boot_and_time_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = sample(10);
    let path = dir.path().join("filter.journal");
    make_journal(&path, &entries, true);
    let which = Which::Files(vec![path]);
    let filter = Filter {
        boot: Some(BOOT_B),
        since_us: Some(entries[3].realtime),
        until_us: Some(entries[7].realtime),
    };
    let (got, stats) = read_all(&which, &filter);
    let times: Vec<u64> = got.iter().map(|g| g.realtime).collect();
    assert_eq!(
        times,
        entries[5..=7]
            .iter()
            .map(|e| e.realtime)
            .collect::<Vec<_>>()
    );
    assert_eq!(stats.entries, 3);
}

#[test]
fn value_id_is_shared_by_equal_values_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, got) = fixture(dir.path(), "ids.journal", 10, true);
    let id = |g: &Got, n: &str| {
        g.fields
            .iter()
            .find(|(f, _, _)| f == n)
            .and_then(|(_, _, id)| *id)
    };
    assert_eq!(id(&got[0], "UNIT"), id(&got[7], "UNIT"));
    assert_ne!(id(&got[0], "MESSAGE"), id(&got[1], "MESSAGE"));
    assert_eq!(id(&got[0], "ABSENT"), None);
}

#[test]
fn directory_without_files_looks_one_level_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir(&sub).expect("mkdir");
    make_journal(&sub.join("system.journal"), &sample(5), true);
    let (got, stats) = read_all(
        &Which::Directory(dir.path().to_path_buf()),
        &Filter::default(),
    );
    assert_eq!((got.len(), stats.files), (5, 1));
}

#[test]
fn directory_without_journal_files_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("README"), b"x").expect("write");
    let err = open(&Which::Directory(dir.path().to_path_buf()))
        .err()
        .expect("an error");
    assert_eq!(
        err.to_string(),
        format!(
            "no journal files (*.journal, *.journal~) in {}",
            dir.path().display()
        )
    );
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let path = PathBuf::from("/nonexistent/system.journal");
    let err = open(&Which::Files(vec![path])).err().expect("an error");
    assert!(
        err.to_string()
            .starts_with("cannot open journal file /nonexistent/system.journal: "),
        "{err}"
    );
}

#[test]
fn default_dirs_prefer_the_machine_id_then_any_subdirectory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let var = dir.path().join("var");
    let run = dir.path().join("run");
    std::fs::create_dir_all(var.join("mine")).expect("mkdir");
    std::fs::create_dir_all(var.join("other")).expect("mkdir");
    std::fs::create_dir_all(run.join("copied")).expect("mkdir");
    let dirs = default_dirs(&[var.clone(), run.clone()], Some("mine"));
    assert_eq!(dirs, vec![var.join("mine"), run.join("copied")]);
}

#[test]
fn file_shrinking_after_open_is_read_up_to_its_new_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "shrink.journal", 300, true);
    let cut = layout(&path).entries[100].0;
    let mut journal = open(&Which::Files(vec![path.clone()])).expect("open");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(cut)
        .expect("truncate");
    let mut n = 0;
    let stats = journal
        .read(&Filter::default(), &mut |_| n += 1)
        .expect("read");
    assert_eq!(n, 100);
    assert_eq!(full.len(), 300);
    assert_eq!(
        whats(&stats)[0],
        format!("shrank to {cut} bytes since it was opened: reading only those")
    );
}

/// A small deterministic generator, for damage at many places.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
}

#[test]
fn random_damage_never_panics_nor_loses_entries_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    for compact in [false, true] {
        let (path, full) = fixture(dir.path(), "random.journal", 200, compact);
        let pristine = std::fs::read(&path).expect("read");
        let mut rng = Lcg(if compact { 7 } else { 11 });
        for round in 0..60 {
            let mut data = pristine.clone();
            // Damage after the header (a damaged header just makes the
            // file unreadable, which other tests cover).
            for _ in 0..(1 + round % 12) {
                let at = (272 + rng.next() as usize % (data.len() - 280)) & !7;
                let word = rng.next().to_le_bytes();
                let kind = rng.next() % 3;
                match kind {
                    0 => data[at..at + 8].copy_from_slice(&word),
                    1 => data[at..at + 8].fill(0),
                    _ => data[at] = (rng.next() % 8) as u8,
                }
            }
            let damaged = dir
                .path()
                .join(format!("damaged-{compact}-{round}.journal"));
            std::fs::write(&damaged, &data).expect("write");
            let (got, stats) = read_file(&damaged);
            // Never more entries than were written, and none lost silently.
            assert!(
                got.len() <= full.len(),
                "round {round}: {} entries",
                got.len()
            );
            assert!(
                got.len() == full.len() || !stats.problems.is_empty(),
                "round {round}: {} of {} entries and no problem reported",
                got.len(),
                full.len()
            );
            std::fs::remove_file(&damaged).expect("remove");
        }
    }
}

#[test]
fn two_compressed_fields_of_one_entry_are_each_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("two.journal");
    let mut entries = sample(1);
    entries[0].fields.push(("BIG".to_string(), big_value(1)));
    entries[0].fields.push(("OTHER".to_string(), big_value(2)));
    make_journal(&path, &entries, true);
    let mut journal = open(&Which::Files(vec![path])).expect("open");
    let mut seen = Vec::new();
    journal
        .read(&Filter::default(), &mut |e| {
            // Asked after the other one was decoded and set aside, then again.
            seen.push(e.get("OTHER").map(<[u8]>::to_vec));
            seen.push(e.get("BIG").map(<[u8]>::to_vec));
            seen.push(e.get("OTHER").map(<[u8]>::to_vec));
        })
        .expect("read");
    assert_eq!(
        seen,
        vec![Some(big_value(2)), Some(big_value(1)), Some(big_value(2))]
    );
}

#[test]
fn entry_listed_at_an_absurd_offset_is_skipped_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "offset.journal", 50, true);
    let l = layout(&path);
    // Compact entry arrays hold 32-bit offsets; the second item of the
    // first array names entry 1.
    patch(&path, l.entry_array + 24 + 4, &u32::MAX.to_le_bytes());
    let (got, stats) = read_file(&path);
    let mut want = full.clone();
    want.remove(1);
    assert_eq!(got, want);
    assert_eq!(
        whats(&stats),
        vec!["entry at 0xffffffff: misaligned offset, 1 entry skipped".to_string()]
    );
}

#[test]
fn data_item_at_an_absurd_offset_loses_only_its_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, full) = fixture(dir.path(), "item.journal", 20, false);
    let l = layout(&path);
    let (entry, items) = &l.entries[5];
    let f = File::open(&path).expect("open");
    let jf = JournalFile::open(path.clone(), f)
        .expect("map")
        .expect("header");
    let slot = items
        .iter()
        .position(|&off| {
            jf.data(off)
                .is_ok_and(|d| d.payload.starts_with(b"MESSAGE="))
        })
        .expect("MESSAGE item");
    drop(jf);
    let far = 1u64 << 60;
    // Regular entry items: 16 bytes each (offset, hash) after 64 bytes.
    patch(&path, entry + 64 + 16 * slot as u64, &far.to_le_bytes());
    let (got, stats) = read_file(&path);
    assert_eq!(got.len(), full.len());
    assert_eq!(value(&got[5], "MESSAGE"), None);
    assert_eq!(value(&got[5], "UNIT"), value(&full[5], "UNIT"));
    assert_eq!(
        whats(&stats),
        vec![format!(
            "data object at {far:#x}: offset outside the file; its field is missing from the entries using it"
        )]
    );
}

/// Realtimes of the entries `journalctl --file PATH MATCH` lists.
fn journalctl_matching(path: &Path, m: &str) -> Vec<u64> {
    journalctl_export_matching(path, &[m])
        .iter()
        .map(|e| e.realtime)
        .collect()
}

fn matching(path: &Path, payload: &[u8], filter: &Filter) -> (Vec<u64>, ReadStats) {
    let mut journal = open(&Which::Files(vec![path.to_path_buf()])).expect("open");
    let mut got = Vec::new();
    let stats = journal.matching(payload, filter, &mut |e| got.push(e.realtime_us()));
    (got, stats)
}

/// Values looked up by hash find exactly the entries journalctl's matches
/// find, in files with keyed (SipHash) and unkeyed (Jenkins) hashes,
/// regular and compact: a plain value, one shared by every entry, the
/// second value of a repeated field, a compressed value, and one no entry
/// has.
#[test]
fn lookup_by_value_finds_what_journalctl_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (compact, keyed) in [(false, false), (false, true), (true, false), (true, true)] {
        let path = dir.path().join(format!("c{compact}-k{keyed}.journal"));
        make_journal_hashed(&path, &sample(300), compact, keyed);
        let header = std::fs::read(&path).expect("read");
        let flags = u32::from_le_bytes(header[12..16].try_into().expect("4"));
        assert_eq!(
            flags & 4 != 0,
            keyed,
            "keyed-hash flag of {}",
            path.display()
        );
        let big = {
            let mut v = b"BIG=".to_vec();
            v.extend_from_slice(&big_value(13));
            v
        };
        let cases: [&[u8]; 5] = [
            b"MESSAGE=serial-getty@ttyS0.service: Scheduled restart job, restart counter is at 7.",
            b"UNIT=serial-getty@ttyS0.service",
            b"REPEATED=second",
            &big,
            b"UNIT=nope.service",
        ];
        for payload in cases {
            let text = String::from_utf8_lossy(payload).into_owned();
            let want = journalctl_matching(&path, &text);
            let (got, stats) = matching(&path, payload, &Filter::default());
            assert!(stats.problems.is_empty(), "{:?}", stats.problems);
            assert_eq!(
                got,
                want,
                "{} in {}",
                &text[..text.len().min(40)],
                path.display()
            );
        }
        let (all, _) = matching(&path, cases[1], &Filter::default());
        assert_eq!(all.len(), 300);
        let (_, flags, _) = data_offset(&path, 13, "BIG");
        assert_ne!(flags, 0, "BIG is stored compressed");
        let (one_boot, _) = matching(
            &path,
            cases[1],
            &Filter {
                boot: Some(BOOT_B),
                ..Filter::default()
            },
        );
        assert_eq!(one_boot, all[150..].to_vec());
    }
}

/// A damaged DATA object or hash table makes a lookup report the damage
/// and deliver nothing, without a panic.
#[test]
fn lookup_in_a_damaged_file_reports_the_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = fixture(dir.path(), "damaged.journal", 50, true);
    let (unit, _, _) = data_offset(&path, 0, "UNIT");
    patch(&path, unit, &[0u8; 16]);
    let (got, stats) = matching(
        &path,
        b"UNIT=serial-getty@ttyS0.service",
        &Filter::default(),
    );
    assert!(got.is_empty());
    assert_eq!(stats.problems.len(), 1, "{:?}", stats.problems);
    assert!(
        stats.problems[0].what.contains(&format!("{unit:#x}")),
        "{:?}",
        stats.problems
    );
    let table = {
        let b = std::fs::read(&path).expect("read");
        u64::from_le_bytes(b[104..112].try_into().expect("8"))
    };
    patch(&path, table - 16, &[0u8; 16]);
    let (got, stats) = matching(&path, b"PRIORITY=6", &Filter::default());
    assert!(got.is_empty());
    assert!(
        whats(&stats)[0].starts_with("data hash table at "),
        "{:?}",
        stats.problems
    );
}

/// The manager's messages as journald stores them: N_RESTARTS, UNIT,
/// MESSAGE_ID, and _PID=1.
fn restart_message(realtime: u64, boot: [u8; 16], unit: &str, n: u32, pid: &str) -> In {
    In {
        realtime,
        monotonic: realtime - 1_699_999_000_000_000,
        boot,
        fields: vec![
            ("_PID".into(), pid.as_bytes().to_vec()),
            ("UNIT".into(), unit.as_bytes().to_vec()),
            (
                "MESSAGE_ID".into(),
                b"5eb03494b6584870a536b337290809b3".to_vec(),
            ),
            (
                "MESSAGE".into(),
                format!("{unit}: Scheduled restart job, restart counter is at {n}.").into_bytes(),
            ),
            ("N_RESTARTS".into(), n.to_string().into_bytes()),
        ],
    }
}

/// The current count of a unit's restarts is the one its latest counter-1
/// message began, in this boot, from PID 1: an earlier count (ended by
/// reset-failed), another boot's, another unit's, and a forged message
/// from another process are not.
#[test]
fn restart_span_is_the_current_count_from_pid_1() {
    const U: &str = "crashy.service";
    let t = |s: u64| 1_700_000_000_000_000 + s * 1_000_000;
    let mut entries = vec![restart_message(t(0), BOOT_A, U, 1, "1")];
    entries.extend((1..=5).map(|n| restart_message(t(10 * n as u64), BOOT_B, U, n, "1")));
    // reset-failed, then a new count from 1 at t(200).
    entries.extend((1..=4).map(|n| restart_message(t(190 + 10 * n as u64), BOOT_B, U, n, "1")));
    entries.push(restart_message(t(300), BOOT_B, "other.service", 1, "1"));
    entries.push(restart_message(t(310), BOOT_B, U, 1, "4242"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("restarts.journal");
    make_journal(&path, &entries, true);
    let mut j = open(&Which::Files(vec![path.clone()])).expect("open");
    let span = crate::history::restart_span(&mut j, BOOT_B, U, 4).expect("found");
    assert_eq!(span.first_us, t(200));
    assert_eq!(span.last_us, Some(t(230)));
    // A count the journal has not caught up with yet: no last.
    let span = crate::history::restart_span(&mut j, BOOT_B, U, 6).expect("found");
    assert_eq!((span.first_us, span.last_us), (t(200), None));
    assert_eq!(
        crate::history::restart_span(&mut j, BOOT_B, "absent.service", 4),
        None
    );
    let other_boot = [7u8; 16];
    assert_eq!(crate::history::restart_span(&mut j, other_boot, U, 4), None);
}
