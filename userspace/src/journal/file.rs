//! One journal file: its mapping, its header, its objects, and a cursor
//! over its entries that survives damage.

use std::{fs::File, io, path::PathBuf};

use crate::mmap::Map;

use super::{
    MAX_VALUE,
    decompress::{Compression, DecompressError},
    hash::{jenkins64, siphash24},
};

const SIGNATURE: &[u8; 8] = b"LPKSHHRH";
/// The header up to `tail_entry_monotonic`: every journal file since
/// systemd 187 has at least this much.
const MIN_HEADER: u64 = 208;
/// Through `tail_entry_array_n_entries` (systemd 252), which a compact file
/// always has.
const COMPACT_HEADER: u64 = 264;

const INCOMPAT_XZ: u32 = 1 << 0;
const INCOMPAT_LZ4: u32 = 1 << 1;
const INCOMPAT_KEYED_HASH: u32 = 1 << 2;
const INCOMPAT_ZSTD: u32 = 1 << 3;
const INCOMPAT_COMPACT: u32 = 1 << 4;
const INCOMPAT_KNOWN: u32 =
    INCOMPAT_XZ | INCOMPAT_LZ4 | INCOMPAT_KEYED_HASH | INCOMPAT_ZSTD | INCOMPAT_COMPACT;

/// Object types (`ObjectType` in journal-def.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Data = 1,
    Field = 2,
    Entry = 3,
    DataHashTable = 4,
    FieldHashTable = 5,
    EntryArray = 6,
    Tag = 7,
}

impl ObjectType {
    fn from_u8(t: u8) -> Option<ObjectType> {
        Some(match t {
            1 => ObjectType::Data,
            2 => ObjectType::Field,
            3 => ObjectType::Entry,
            4 => ObjectType::DataHashTable,
            5 => ObjectType::FieldHashTable,
            6 => ObjectType::EntryArray,
            7 => ObjectType::Tag,
            _ => return None,
        })
    }

    /// The smallest valid object of this type (its fixed part).
    fn min_size(self, compact: bool) -> u64 {
        match self {
            ObjectType::Data if compact => 72,
            ObjectType::Data => 64,
            ObjectType::Field => 40,
            ObjectType::Entry => 64,
            ObjectType::DataHashTable | ObjectType::FieldHashTable => 16,
            ObjectType::EntryArray => 24,
            ObjectType::Tag => 64,
        }
    }
}

/// Why an object could not be used. Printed after "object at 0x…: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("offset outside the file")]
    OutOfBounds,
    #[error("misaligned offset")]
    Misaligned,
    #[error("wrong type {found} (expected {expected:?})")]
    WrongType { found: u8, expected: ObjectType },
    #[error("bad size {0}")]
    BadSize(u64),
    #[error("extends past the end of the file")]
    Truncated,
    #[error("listed out of order (not after the entry before it)")]
    OutOfOrder,
}

fn le64(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(s) => u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
        None => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn id128(b: &[u8], at: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        id.copy_from_slice(s);
    }
    id
}

fn align8(n: u64) -> u64 {
    n.saturating_add(7) & !7
}

/// Why a file is not read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a journal file (bad signature)")]
    Signature,
    #[error("truncated header ({0} bytes)")]
    Short(u64),
    #[error("bad header size {0}")]
    HeaderSize(u64),
    #[error("unsupported incompatible flags {0:#x}")]
    Unsupported(u32),
}

/// One entry's fixed part, and where its items are.
#[derive(Debug, Clone, Copy)]
pub struct EntryHead {
    pub offset: u64,
    pub seqnum: u64,
    pub realtime: u64,
    pub monotonic: u64,
    pub boot_id: [u8; 16],
    pub xor_hash: u64,
    /// Byte range of the items inside the map.
    pub items_start: usize,
    pub items_end: usize,
}

/// A DATA object's payload: `FIELD=value`, maybe compressed.
pub struct Data<'a> {
    pub compression: Option<Compression>,
    pub payload: &'a [u8],
}

pub struct JournalFile {
    pub path: PathBuf,
    map: Map,
    /// Kept open to notice the file shrinking under the mapping.
    file: File,
    pub compact: bool,
    pub seqnum_id: [u8; 16],
    /// The key of its DATA hashes when they are keyed.
    hash_key: Option<[u8; 16]>,
    /// Where the DATA hash table's buckets start, and how many there are.
    data_buckets: (u64, u64),
    header_size: u64,
    n_entries: u64,
    entry_array_offset: u64,
    /// The last object journald wrote; the arena beyond it is unused
    /// (zeroes, as the file is grown ahead of need).
    tail_object_offset: u64,
    /// Where readable objects end: the arena's end, or the file's end if
    /// the file is shorter.
    end: u64,
    /// Set when the file is shorter than its header says.
    pub truncated_at: Option<u64>,
}

impl JournalFile {
    /// Maps `file` and checks its header. An I/O error is fatal for the
    /// caller; a header error makes the file a reported problem.
    pub fn open(path: PathBuf, file: File) -> io::Result<Result<JournalFile, HeaderError>> {
        let len = file.metadata()?.len();
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
        let map = Map::new(&file, len)?;
        Ok(Self::parse(path, file, map))
    }

    /// Checks that the file has not shrunk since it was mapped: reading a
    /// mapped page the file no longer covers raises SIGBUS. If it has,
    /// only the part still there is read from now on; returns the problem
    /// to report.
    pub fn recheck_size(&mut self) -> Option<String> {
        let now = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if now >= self.end {
            return None;
        }
        self.end = now;
        self.truncated_at = Some(now);
        Some(format!(
            "shrank to {now} bytes since it was opened: reading only those"
        ))
    }

    fn parse(path: PathBuf, file: File, map: Map) -> Result<JournalFile, HeaderError> {
        let b = map.bytes();
        let len = b.len() as u64;
        if b.get(..8) != Some(&SIGNATURE[..]) {
            return Err(HeaderError::Signature);
        }
        if len < MIN_HEADER {
            return Err(HeaderError::Short(len));
        }
        let incompatible = le32(b, 12);
        if incompatible & !INCOMPAT_KNOWN != 0 {
            return Err(HeaderError::Unsupported(incompatible & !INCOMPAT_KNOWN));
        }
        let compact = incompatible & INCOMPAT_COMPACT != 0;
        let header_size = le64(b, 88);
        let min = if compact { COMPACT_HEADER } else { MIN_HEADER };
        if header_size < min || !header_size.is_multiple_of(8) || header_size > len {
            return Err(HeaderError::HeaderSize(header_size));
        }
        let arena_size = le64(b, 96);
        let arena_end = header_size.saturating_add(arena_size);
        let (end, truncated_at) = if arena_end > len {
            (len, Some(len))
        } else {
            (arena_end, None)
        };
        let table = le64(b, 104);
        let table_size = le64(b, 112);
        Ok(JournalFile {
            path,
            seqnum_id: id128(b, 72),
            hash_key: (incompatible & INCOMPAT_KEYED_HASH != 0).then(|| id128(b, 24)),
            data_buckets: (table, table_size / 16),
            compact,
            header_size,
            n_entries: le64(b, 152),
            entry_array_offset: le64(b, 176),
            tail_object_offset: le64(b, 136),
            end,
            truncated_at,
            map,
            file,
        })
    }

    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn release(&self) {
        self.map.release();
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// The object at `offset`, checked to be of type `want` and to lie
    /// wholly inside the readable part of the file.
    pub fn object(&self, offset: u64, want: ObjectType) -> Result<&[u8], ObjectError> {
        if !offset.is_multiple_of(8) {
            return Err(ObjectError::Misaligned);
        }
        if offset < self.header_size || offset.saturating_add(16) > self.end {
            return Err(if offset >= self.end && self.truncated_at.is_some() {
                ObjectError::Truncated
            } else {
                ObjectError::OutOfBounds
            });
        }
        let b = self.bytes();
        // In range: offset + 16 <= end <= len, a usize.
        let at = offset as usize;
        let found = b[at];
        if found != want as u8 {
            return Err(ObjectError::WrongType {
                found,
                expected: want,
            });
        }
        let size = le64(b, at + 8);
        if size < want.min_size(self.compact) {
            return Err(ObjectError::BadSize(size));
        }
        if offset.saturating_add(size) > self.end {
            return Err(if self.truncated_at.is_some() && size < (1 << 32) {
                ObjectError::Truncated
            } else {
                ObjectError::BadSize(size)
            });
        }
        Ok(&b[at..at + size as usize])
    }

    pub fn entry(&self, offset: u64) -> Result<EntryHead, ObjectError> {
        let o = self.object(offset, ObjectType::Entry)?;
        let item = if self.compact { 4 } else { 16 };
        let n = (o.len() - 64) / item;
        let start = offset as usize + 64;
        Ok(EntryHead {
            offset,
            seqnum: le64(o, 16),
            realtime: le64(o, 24),
            monotonic: le64(o, 32),
            boot_id: id128(o, 40),
            xor_hash: le64(o, 56),
            items_start: start,
            items_end: start + n * item,
        })
    }

    /// The DATA object offsets an entry's items name, in stored order.
    pub fn items<'a>(&'a self, head: &EntryHead) -> impl Iterator<Item = u64> + 'a {
        let items = self
            .bytes()
            .get(head.items_start..head.items_end)
            .unwrap_or(&[]);
        let (step, compact) = if self.compact { (4, true) } else { (16, false) };
        items.chunks_exact(step).map(move |c| {
            if compact {
                u64::from(le32(c, 0))
            } else {
                le64(c, 0)
            }
        })
    }

    pub fn data(&self, offset: u64) -> Result<Data<'_>, DataError> {
        let o = self
            .object(offset, ObjectType::Data)
            .map_err(DataError::Object)?;
        let compression = Compression::from_flags(o[1]).map_err(DataError::Decompress)?;
        let payload = &o[if self.compact { 72 } else { 64 }..];
        Ok(Data {
            compression,
            payload,
        })
    }
}

impl JournalFile {
    /// The hash this file files `payload` (`FIELD=value`, uncompressed)
    /// under.
    pub fn hash(&self, payload: &[u8]) -> u64 {
        match &self.hash_key {
            Some(key) => siphash24(payload, key),
            None => jenkins64(payload),
        }
    }

    /// The DATA object holding `payload` (`FIELD=value`), looked up in the
    /// file's DATA hash table as journald looks it up: None when the file
    /// has no such value. Errors name the damage that stopped the lookup.
    pub fn find_data(&self, payload: &[u8]) -> Result<Option<u64>, String> {
        let (table, buckets) = self.data_buckets;
        if buckets == 0 {
            return Err("no data hash table".to_string());
        }
        let o = self
            .object(table.wrapping_sub(16), ObjectType::DataHashTable)
            .map_err(|e| format!("data hash table at {table:#x}: {e}"))?;
        // Only buckets inside the table object, whatever the header says.
        let buckets = buckets.min((o.len() as u64 - 16) / 16);
        if buckets == 0 {
            return Err(format!("data hash table at {table:#x}: empty"));
        }
        let hash = self.hash(payload);
        let bucket = table + (hash % buckets) * 16;
        let mut offset = le64(self.bytes(), bucket as usize);
        let mut previous = 0;
        while offset != 0 {
            // journald appends to a chain: each link lies beyond the last.
            if offset <= previous {
                return Err(format!(
                    "data hash chain at {previous:#x}: next object {offset:#x} loops back"
                ));
            }
            let o = self
                .object(offset, ObjectType::Data)
                .map_err(|e| format!("data object at {offset:#x}: {e}"))?;
            if le64(o, 16) == hash {
                let data = self
                    .data(offset)
                    .map_err(|e| format!("data object at {offset:#x}: {e}"))?;
                let same = match data.compression {
                    None => data.payload == payload,
                    Some(kind) => super::decompress::decompress(kind, data.payload, MAX_VALUE)
                        .is_ok_and(|v| v == payload),
                };
                if same {
                    return Ok(Some(offset));
                }
            }
            previous = offset;
            offset = le64(o, 24);
        }
        Ok(None)
    }

    /// Calls `f` with the offset of every entry that references the DATA
    /// object at `data`, in stored order: its first entry, then its own
    /// chain of entry arrays. Errors name the damage that cut the list
    /// short; the entries before it have been delivered.
    pub fn data_entries(&self, data: u64, f: &mut dyn FnMut(u64)) -> Result<(), String> {
        let o = self
            .object(data, ObjectType::Data)
            .map_err(|e| format!("data object at {data:#x}: {e}"))?;
        let (first, mut array, n) = (le64(o, 40), le64(o, 48), le64(o, 56));
        if n == 0 {
            return Ok(());
        }
        f(first);
        let mut last = first;
        let mut left = n - 1;
        let item = if self.compact { 4 } else { 8 };
        let mut previous = 0;
        while left > 0 {
            if array == 0 || array <= previous {
                return Err(format!(
                    "data object at {data:#x}: its entry arrays end {left} entries short"
                ));
            }
            let a = self
                .object(array, ObjectType::EntryArray)
                .map_err(|e| format!("entry array at {array:#x}: {e}"))?;
            for i in 0..((a.len() - 24) / item) {
                if left == 0 {
                    break;
                }
                let entry = if self.compact {
                    u64::from(le32(a, 24 + i * 4))
                } else {
                    le64(a, 24 + i * 8)
                };
                if entry <= last {
                    return Err(format!(
                        "entry array at {array:#x}: entry {entry:#x} out of order"
                    ));
                }
                f(entry);
                last = entry;
                left -= 1;
            }
            previous = array;
            array = le64(a, 16);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Object(ObjectError),
    #[error("{0}")]
    Decompress(DecompressError),
}

/// Problems met in one file, capped so that a file damaged everywhere
/// cannot fill memory with reports.
#[derive(Debug, Default)]
pub struct Problems {
    pub list: Vec<String>,
    pub dropped: u64,
}

impl Problems {
    pub const MAX: usize = 100;

    pub fn push(&mut self, what: String) {
        if self.list.len() < Self::MAX {
            self.list.push(what);
        } else {
            self.dropped += 1;
        }
    }
}

/// A run of consecutive entries that could not be read, reported as one
/// problem when it ends.
struct SkipRun {
    first: u64,
    why: ObjectError,
    count: u64,
}

/// Walks one file's entries in stored (seqnum) order: through the chain
/// of entry arrays from the header; if the chain breaks (bad offset, a
/// loop, a damaged array), by scanning objects one after another from the
/// last entry read, resynchronising past garbage on the next plausible
/// object header.
pub struct Cursor {
    mode: Mode,
    /// Entries taken from arrays, bounded by the header's `n_entries`.
    listed: u64,
    /// Offset of the last entry returned: entries are appended, so every
    /// later one lies beyond it. Guards against loops and repeats.
    last_entry: u64,
    /// End of the last entry returned, where a fallback scan starts.
    last_end: u64,
    skip: Option<SkipRun>,
    /// Bytes of the file the cursor has moved over since the last
    /// release of its pages.
    pub touched: u64,
}

enum Mode {
    Array { offset: u64, index: u64, len: u64 },
    Scan { pos: u64 },
    Done,
}

impl Cursor {
    pub fn new(file: &JournalFile, problems: &mut Problems) -> Cursor {
        let mut c = Cursor {
            mode: Mode::Done,
            listed: 0,
            last_entry: 0,
            last_end: file.header_size,
            skip: None,
            touched: 0,
        };
        if file.entry_array_offset != 0 {
            c.mode = c.load_array(file, file.entry_array_offset, problems);
        } else if file.n_entries != 0 {
            problems.push(format!(
                "header lists {} entries but no entry array: scanning objects",
                file.n_entries
            ));
            c.mode = Mode::Scan {
                pos: file.header_size,
            };
        }
        c
    }

    fn load_array(&mut self, file: &JournalFile, offset: u64, problems: &mut Problems) -> Mode {
        match file.object(offset, ObjectType::EntryArray) {
            Ok(o) => {
                let item = if file.compact { 4 } else { 8 };
                Mode::Array {
                    offset,
                    index: 0,
                    len: (o.len() as u64 - 24) / item,
                }
            }
            Err(e) => self.break_chain(file, format!("entry array at {offset:#x}: {e}"), problems),
        }
    }

    fn break_chain(&mut self, file: &JournalFile, why: String, problems: &mut Problems) -> Mode {
        let pos = self.last_end;
        if pos.saturating_add(16) > file.end {
            problems.push(why);
            return Mode::Done;
        }
        problems.push(format!(
            "{why}: scanning objects from {pos:#x} for the entries after it"
        ));
        Mode::Scan { pos }
    }

    fn skipped(&mut self, offset: u64, why: ObjectError, problems: &mut Problems) {
        match &mut self.skip {
            Some(run) if run.why == why => run.count += 1,
            _ => {
                self.flush_skip(problems);
                self.skip = Some(SkipRun {
                    first: offset,
                    why,
                    count: 1,
                });
            }
        }
    }

    fn flush_skip(&mut self, problems: &mut Problems) {
        if let Some(run) = self.skip.take() {
            problems.push(format!(
                "entry at {:#x}: {}, {} entr{} skipped",
                run.first,
                run.why,
                run.count,
                if run.count == 1 { "y" } else { "ies" }
            ));
        }
    }

    fn accept(&mut self, head: &EntryHead) {
        let end = (head.items_end as u64).max(head.offset + 64);
        self.touched += end.saturating_sub(self.last_end);
        self.last_entry = head.offset;
        self.last_end = align8(end);
    }

    /// The next readable entry, or None at the end. Problems met on the
    /// way are appended to `problems`.
    pub fn next(&mut self, file: &JournalFile, problems: &mut Problems) -> Option<EntryHead> {
        loop {
            match self.mode {
                Mode::Done => {
                    self.flush_skip(problems);
                    return None;
                }
                Mode::Array { offset, index, len } => {
                    if self.listed >= file.n_entries {
                        self.mode = Mode::Done;
                        continue;
                    }
                    if index >= len {
                        let arr = file.bytes();
                        let next = le64(arr, offset as usize + 16);
                        self.mode = if next == 0 {
                            self.flush_skip(problems);
                            let missing = file.n_entries - self.listed;
                            self.break_chain(
                                file,
                                format!(
                                    "entry arrays end {missing} entries short of the header's count"
                                ),
                                problems,
                            )
                        } else if next <= offset {
                            self.flush_skip(problems);
                            self.break_chain(
                                file,
                                format!(
                                    "entry array at {offset:#x}: next array {next:#x} loops back"
                                ),
                                problems,
                            )
                        } else {
                            self.touched += 64;
                            self.load_array(file, next, problems)
                        };
                        continue;
                    }
                    self.mode = Mode::Array {
                        offset,
                        index: index + 1,
                        len,
                    };
                    let base = offset as usize + 24;
                    let item = if file.compact {
                        u64::from(le32(file.bytes(), base + index as usize * 4))
                    } else {
                        le64(file.bytes(), base + index as usize * 8)
                    };
                    if item == 0 {
                        self.flush_skip(problems);
                        let missing = file.n_entries - self.listed;
                        self.mode = self.break_chain(
                            file,
                            format!(
                                "entry array at {offset:#x}: ends {missing} entries short of the header's count"
                            ),
                            problems,
                        );
                        continue;
                    }
                    self.listed += 1;
                    if item <= self.last_entry {
                        self.skipped(item, ObjectError::OutOfOrder, problems);
                        continue;
                    }
                    match file.entry(item) {
                        Ok(head) => {
                            self.flush_skip(problems);
                            self.accept(&head);
                            return Some(head);
                        }
                        Err(e) => self.skipped(item, e, problems),
                    }
                }
                Mode::Scan { pos } => match self.scan(file, pos, problems) {
                    Some(head) => return Some(head),
                    None => self.mode = Mode::Done,
                },
            }
        }
    }

    /// Object by object from `pos` to the end, for the next entry beyond
    /// the last one returned.
    fn scan(
        &mut self,
        file: &JournalFile,
        mut pos: u64,
        problems: &mut Problems,
    ) -> Option<EntryHead> {
        let b = file.bytes();
        while pos.saturating_add(16) <= file.end {
            match plausible(file, pos) {
                Some((kind, size)) => {
                    let next = pos + align8(size);
                    self.touched += next - pos;
                    if kind == ObjectType::Entry
                        && pos > self.last_entry
                        && let Ok(head) = file.entry(pos)
                    {
                        self.mode = Mode::Scan { pos: next };
                        self.accept(&head);
                        return Some(head);
                    }
                    pos = next;
                }
                None if pos > file.tail_object_offset => return None,
                None => {
                    let start = pos;
                    pos += 8;
                    while pos.saturating_add(16) <= file.end && plausible(file, pos).is_none() {
                        pos += 8;
                    }
                    self.touched += pos - start;
                    let found = b.get(start as usize).copied().unwrap_or(0);
                    let size = le64(b, start as usize + 8);
                    if pos.saturating_add(16) <= file.end {
                        problems.push(format!(
                            "object at {start:#x}: bad header (type {found}, size {size}), {} bytes skipped to the next object at {pos:#x}",
                            pos - start
                        ));
                    } else {
                        problems.push(format!(
                            "object at {start:#x}: bad header (type {found}, size {size}), nothing readable after it ({} bytes)",
                            file.end - start
                        ));
                    }
                }
            }
        }
        None
    }
}

/// Whether `pos` holds something that looks like an object header: a known
/// type, known flags, zero reserved bytes, a size that fits its type and
/// the file.
fn plausible(file: &JournalFile, pos: u64) -> Option<(ObjectType, u64)> {
    let b = file.bytes();
    let at = usize::try_from(pos).ok()?;
    let h = b.get(at..at + 16)?;
    let kind = ObjectType::from_u8(h[0])?;
    if h[1] & !0x07 != 0 || h[2..8].iter().any(|&x| x != 0) {
        return None;
    }
    let size = le64(h, 8);
    if size < kind.min_size(file.compact) || pos.checked_add(size)? > file.end {
        return None;
    }
    Some((kind, size))
}
