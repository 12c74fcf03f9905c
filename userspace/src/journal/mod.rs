//! systemd's journal files, read directly (see systemd's
//! JOURNAL_FILE_FORMAT): what `postmortem` and the start-up look at the
//! journal work from.
//!
//! The reader hands out [`Fields`]: one journal entry, with its fields
//! looked up by name. The analyses are written against the trait, so they
//! are tested on fixtures without journal files.
//!
//! # What is read
//!
//! [`open`] collects `*.journal` and `*.journal~` files ([`Which`]): the
//! default system and user journals of this machine
//! (`/var/log/journal/<machine-id>/`, `/run/log/journal/<machine-id>/`), a
//! directory (a copied `/var/log/journal` is looked into one level down),
//! or named files. Each file is mapped read-only (`mmap`) at the size it
//! has when opened; nothing links libsystemd or runs journalctl. Regular
//! and compact (`HEADER_INCOMPATIBLE_COMPACT`, 32-bit offsets) files are
//! read. DATA payloads compressed with XZ, LZ4 (journald's 8-byte
//! size prefix then one LZ4 block) or ZSTD are decompressed by pure-Rust
//! decoders, each capped at [`MAX_VALUE`] bytes of output.
//!
//! # How
//!
//! A file's entries are walked in stored (seqnum) order through the chain
//! of entry arrays the header points to, never collected: per file only a
//! cursor and the next entry's fixed part (timestamps, boot ID, where its
//! items are) are held. [`Journal::read`] merges the files' cursors on
//! `__REALTIME_TIMESTAMP` (a k-way merge over a heap of one entry per
//! file), drops an entry already delivered from another file (same
//! seqnum ID and seqnum, or same boot ID, monotonic time and xor hash,
//! among the last few thousand delivered), and hands each entry to the
//! caller as a [`Fields`] view. A field's DATA object is only looked at
//! when [`Fields::get`] asks for it; a compressed one is decompressed into
//! a scratch buffer that lives until the next entry. Pages already read
//! are dropped from the process's resident set as the cursors move on
//! (`MADV_DONTNEED`; they stay in the page cache), so memory stays flat on
//! journals of any size.
//!
//! [`Journal::matching`] finds the entries holding one field value the
//! way `journalctl FIELD=value` does, without walking the journal: the
//! value's DATA object through the file's DATA hash table (SipHash-2-4
//! keyed with the file ID where the header says `KEYED_HASH`, else
//! Jenkins' lookup3), then the entries that object lists. That is how the
//! start-up finds the first restart of a loop's count in the manager's
//! journal (`N_RESTARTS=1`).
//!
//! # What is skipped, and reported
//!
//! Journal files are untrusted input: a `*.journal~` file is one journald
//! found dirty and set aside, a copied directory may be cut short. Nothing
//! in a file can make the reader panic, loop, or allocate without bound;
//! it reads as far as it can and reports every skip as a [`Problem`] in
//! [`ReadStats`] (at most 100 per file, then a count):
//!
//! - a file without the `LPKSHHRH` signature, with a header too short or of
//!   a bad size, or with incompatible flags this reader does not know is
//!   not read at all ("not a journal file (bad signature)");
//! - a file shorter than its header's arena is read up to its end
//!   ("truncated at byte N: the entries after it are unreadable"); every
//!   offset is checked against the size the file had when mapped, so a
//!   read never runs past the mapping;
//! - an entry-array item naming something that is not a readable ENTRY
//!   object (outside the file, wrong type, bad size, a zeroed page, or an
//!   offset not after the previous entry's) is skipped; consecutive
//!   failures are one problem ("entry at 0x…: wrong type 0 (expected
//!   Entry), 37 entries skipped");
//! - when the entry-array chain itself breaks (a damaged array, a next
//!   pointer that loops back, arrays ending short of the header's entry
//!   count), the reader scans the objects that follow the last entry read,
//!   one by one, and resynchronises past garbage on the next plausible
//!   object header ("object at 0x…: bad header (…), N bytes skipped to
//!   the next object at 0x…");
//! - a DATA object that is unreadable or whose payload fails to
//!   decompress (corrupt, or larger than [`MAX_VALUE`]: a decompression
//!   bomb) is reported once and its field is absent from the entries that
//!   reference it.
//!
//! The one hazard the checks cannot cover is a file shrinking while it is
//! mapped (SIGBUS on the vanished pages); journald only ever appends.

mod decompress;
mod file;
mod hash;
#[cfg(test)]
mod tests;

use std::{
    cell::{OnceCell, RefCell},
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet, VecDeque},
    fs::File,
    io,
    path::{Path, PathBuf},
};

pub use decompress::MAX_VALUE;
use decompress::decompress;
use file::{Cursor, EntryHead, JournalFile, Problems};

/// Which journal files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// This machine's system and user journals:
    /// `/var/log/journal/<machine-id>/` and `/run/log/journal/<machine-id>/`
    /// (the machine ID from `/etc/machine-id`; where that directory is
    /// missing, every subdirectory).
    Default,
    /// Another machine's system journals, as [`Which::Default`] finds this
    /// one's, under its root directory: a container's, seen through
    /// `/proc/PID/root`.
    Root(PathBuf),
    /// The journal files in a directory; if it holds none, those in its
    /// subdirectories one level down (a copied `/var/log/journal` has
    /// `<machine-id>/` inside).
    Directory(PathBuf),
    /// These files.
    Files(Vec<PathBuf>),
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no journal files (*.journal, *.journal~) in {}", list(.searched))]
    NoFiles { searched: Vec<PathBuf> },
    #[error("cannot open journal file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list journal directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "an empty list of files".to_string();
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// A 128-bit ID (boot, machine) as systemd writes it: 32 hex digits, with
/// or without the dashes of the UUID form.
pub fn parse_id128(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.trim().bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut id = [0u8; 16];
    for (b, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
        *b = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}

/// One boot seen in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub id: [u8; 16],
    /// Realtime of its first and last entry, microseconds since the epoch.
    pub first_us: u64,
    pub last_us: u64,
    pub entries: u64,
}

/// Which entries [`Journal::read`] delivers: all of them by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only entries of this boot.
    pub boot: Option<[u8; 16]>,
    /// Only entries with `__REALTIME_TIMESTAMP >= since_us`.
    pub since_us: Option<u64>,
    /// Only entries with `__REALTIME_TIMESTAMP <= until_us`.
    pub until_us: Option<u64>,
}

impl Filter {
    fn matches(&self, head: &EntryHead) -> bool {
        self.boot.is_none_or(|b| b == head.boot_id)
            && self.since_us.is_none_or(|s| head.realtime >= s)
            && self.until_us.is_none_or(|u| head.realtime <= u)
    }
}

/// What a read covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Journal files read (files that are not journals are not counted).
    pub files: usize,
    /// Entries delivered to the callback.
    pub entries: u64,
    /// Size of the files read.
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

/// Something in a file that could not be read, and what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// One line.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

/// Open journal files.
pub struct Journal {
    files: Vec<JournalFile>,
    /// Files found but not readable as journals, reported by every read.
    unreadable: Vec<Problem>,
}

/// Relative to the machine's root.
const DEFAULT_ROOTS: [&str; 2] = ["var/log/journal", "run/log/journal"];

/// Finds and maps the journal files `which` names. Fails when a named file
/// or directory cannot be opened, or when no journal file is found; a file
/// that opens but is not a journal is reported by each read instead.
pub fn open(which: &Which) -> Result<Journal, JournalError> {
    let paths = match which {
        Which::Default | Which::Root(_) => {
            let top = match which {
                Which::Root(r) => r.as_path(),
                _ => Path::new("/"),
            };
            let machine_id = std::fs::read_to_string(top.join("etc/machine-id")).ok();
            let roots: Vec<PathBuf> = DEFAULT_ROOTS.iter().map(|r| top.join(r)).collect();
            let dirs = default_dirs(&roots, machine_id.as_deref().map(str::trim));
            let mut files = Vec::new();
            for dir in &dirs {
                files.extend(journal_files(dir)?);
            }
            if files.is_empty() {
                return Err(JournalError::NoFiles { searched: roots });
            }
            files
        }
        Which::Directory(dir) => {
            let mut files = journal_files(dir)?;
            if files.is_empty() {
                for sub in subdirectories(dir)? {
                    files.extend(journal_files(&sub)?);
                }
            }
            if files.is_empty() {
                return Err(JournalError::NoFiles {
                    searched: vec![dir.clone()],
                });
            }
            files
        }
        Which::Files(files) => {
            if files.is_empty() {
                return Err(JournalError::NoFiles {
                    searched: Vec::new(),
                });
            }
            files.clone()
        }
    };
    let mut journal = Journal {
        files: Vec::new(),
        unreadable: Vec::new(),
    };
    for path in paths {
        let file = File::open(&path).map_err(|source| JournalError::Open {
            path: path.clone(),
            source,
        })?;
        match JournalFile::open(path.clone(), file) {
            Err(source) => return Err(JournalError::Open { path, source }),
            Ok(Ok(f)) => journal.files.push(f),
            Ok(Err(e)) => journal.unreadable.push(Problem {
                path,
                what: e.to_string(),
            }),
        }
    }
    Ok(journal)
}

/// The directories [`Which::Default`] reads under `roots`: `<machine-id>/`
/// in each, or every subdirectory where that is missing.
fn default_dirs(roots: &[PathBuf], machine_id: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for root in roots {
        let own = machine_id
            .filter(|m| !m.is_empty() && !m.contains('/'))
            .map(|m| root.join(m));
        match own {
            Some(d) if d.is_dir() => dirs.push(d),
            _ => dirs.extend(subdirectories(root).unwrap_or_default()),
        }
    }
    dirs
}

fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, std::fs::FileType)>, JournalError> {
    let err = |source| JournalError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        // Follows symlinks, as journalctl does for files it is pointed at.
        let kind = match std::fs::metadata(entry.path()) {
            Ok(m) => m.file_type(),
            Err(_) => continue,
        };
        out.push((entry.path(), kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|(_, k)| k.is_dir())
        .map(|(p, _)| p)
        .collect())
}

fn journal_files(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|(p, k)| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            k.is_file() && (name.ends_with(".journal") || name.ends_with(".journal~"))
        })
        .map(|(p, _)| p)
        .collect())
}

/// After the cursors moved over this many bytes, the pages read so far
/// are dropped from the resident set.
const RELEASE_AFTER: u64 = 16 << 20;
/// How many delivered entries are remembered to drop duplicates from
/// other files. Copies of one entry carry the same realtime, so they
/// meet within a few entries of each other in the merge.
const RECENT: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum EntryKey {
    Seqnum([u8; 16], u64),
    Boot([u8; 16], u64, u64),
}

/// The keys of the last [`RECENT`] delivered entries.
struct Recent {
    set: HashSet<EntryKey>,
    order: VecDeque<[EntryKey; 2]>,
}

impl Recent {
    /// Whether the entry was seen; remembers it if not.
    fn seen(&mut self, keys: [EntryKey; 2]) -> bool {
        if keys.iter().any(|k| self.set.contains(k)) {
            return true;
        }
        if self.order.len() == RECENT
            && let Some(old) = self.order.pop_front()
        {
            for k in old {
                self.set.remove(&k);
            }
        }
        self.set.extend(keys);
        self.order.push_back(keys);
        false
    }
}

/// What is known of one compressed item of the current entry: its field
/// name once decoded (None: undecodable), and its payload once asked for.
#[derive(Default)]
struct Decoded {
    field: OnceCell<Option<Box<[u8]>>>,
    value: OnceCell<Vec<u8>>,
}

/// Per-file state while reading: the file's problems and the compressed
/// DATA objects already found bad (decoded and reported once).
struct FileState {
    problems: Problems,
    bad_data: HashSet<u64>,
}

impl Journal {
    /// Every boot in the files, oldest first (by its first entry's
    /// realtime). An entry stored in two files counts once.
    pub fn boots(&mut self) -> Result<Vec<Boot>, JournalError> {
        let mut boots: Vec<Boot> = Vec::new();
        let mut index: HashMap<[u8; 16], usize> = HashMap::new();
        self.walk(&Filter::default(), &mut |_, _, head, _| {
            let i = *index.entry(head.boot_id).or_insert_with(|| {
                boots.push(Boot {
                    id: head.boot_id,
                    first_us: head.realtime,
                    last_us: head.realtime,
                    entries: 0,
                });
                boots.len() - 1
            });
            let b = &mut boots[i];
            b.first_us = b.first_us.min(head.realtime);
            b.last_us = b.last_us.max(head.realtime);
            b.entries += 1;
        });
        boots.sort_by_key(|b| (b.first_us, b.id));
        Ok(boots)
    }

    /// Calls `f` for every entry `filter` matches, in realtime order across
    /// files, each entry once.
    pub fn read(
        &mut self,
        filter: &Filter,
        f: &mut dyn FnMut(&dyn Fields),
    ) -> Result<ReadStats, JournalError> {
        let mut decoded: Vec<Decoded> = Vec::new();
        Ok(self.walk(filter, &mut |file, index, head, state| {
            f(&Entry::new(file, index, head, &mut decoded, state));
        }))
    }

    /// Calls `f` for every entry `filter` matches that holds the field
    /// value `payload` (`FIELD=value`, as stored), found through each
    /// file's DATA hash table and the value's own list of entries, as
    /// `journalctl FIELD=value` finds them: the cost is that of the
    /// matching entries, not of the journal. File by file, each in stored
    /// order; an entry stored in two files is delivered twice.
    pub fn matching(
        &mut self,
        payload: &[u8],
        filter: &Filter,
        f: &mut dyn FnMut(&dyn Fields),
    ) -> ReadStats {
        let mut stats = ReadStats {
            files: self.files.len(),
            bytes: self.files.iter().map(JournalFile::size).sum(),
            problems: self.unreadable.clone(),
            ..ReadStats::default()
        };
        let mut decoded: Vec<Decoded> = Vec::new();
        for (index, file) in self.files.iter_mut().enumerate() {
            let mut state = FileState {
                problems: Problems::default(),
                bad_data: HashSet::new(),
            };
            if let Some(what) = file.recheck_size() {
                state.problems.push(what);
            }
            let file = &*file;
            let mut offsets = Vec::new();
            let found = file.find_data(payload).and_then(|data| match data {
                Some(d) => file.data_entries(d, &mut |e| offsets.push(e)),
                None => Ok(()),
            });
            if let Err(what) = found {
                state.problems.push(what);
            }
            for offset in offsets {
                let head = match file.entry(offset) {
                    Ok(h) => h,
                    Err(e) => {
                        state.problems.push(format!("entry at {offset:#x}: {e}"));
                        continue;
                    }
                };
                if !filter.matches(&head) {
                    continue;
                }
                f(&Entry::new(file, index, head, &mut decoded, &mut state));
                stats.entries += 1;
            }
            file.release();
            report(&mut stats, file, state.problems);
        }
        stats
    }

    /// The merge both [`Journal::read`] and [`Journal::boots`] run on.
    fn walk(
        &mut self,
        filter: &Filter,
        each: &mut dyn FnMut(&JournalFile, usize, EntryHead, &mut FileState),
    ) -> ReadStats {
        let mut shrunk: Vec<Option<String>> = self
            .files
            .iter_mut()
            .map(JournalFile::recheck_size)
            .collect();
        let files = &self.files;
        let mut stats = ReadStats {
            files: files.len(),
            bytes: files.iter().map(JournalFile::size).sum(),
            ..ReadStats::default()
        };
        let mut states: Vec<FileState> = files
            .iter()
            .zip(&mut shrunk)
            .map(|(f, shrunk)| {
                let mut problems = Problems::default();
                if let Some(what) = shrunk.take() {
                    problems.push(what);
                } else if let Some(at) = f.truncated_at {
                    problems.push(format!(
                        "truncated at byte {at}: the entries after it are unreadable"
                    ));
                }
                FileState {
                    problems,
                    bad_data: HashSet::new(),
                }
            })
            .collect();
        let mut cursors: Vec<Cursor> = files
            .iter()
            .zip(&mut states)
            .map(|(f, s)| Cursor::new(f, &mut s.problems))
            .collect();
        let next = |i: usize, cursors: &mut [Cursor], states: &mut [FileState]| loop {
            match cursors[i].next(&files[i], &mut states[i].problems) {
                Some(head) if filter.matches(&head) => return Some(head),
                Some(_) => {}
                None => return None,
            }
        };
        let mut heads: Vec<Option<EntryHead>> = Vec::with_capacity(files.len());
        let mut heap = BinaryHeap::new();
        for i in 0..files.len() {
            let head = next(i, &mut cursors, &mut states);
            if let Some(h) = &head {
                heap.push(Reverse((h.realtime, i)));
            }
            heads.push(head);
        }
        let mut recent = (files.len() > 1).then(|| Recent {
            set: HashSet::new(),
            order: VecDeque::new(),
        });
        let mut popped = 0u64;
        while let Some(Reverse((_, i))) = heap.pop() {
            let Some(head) = heads[i].take() else {
                continue;
            };
            let duplicate = recent.as_mut().is_some_and(|r| {
                r.seen([
                    EntryKey::Seqnum(files[i].seqnum_id, head.seqnum),
                    EntryKey::Boot(head.boot_id, head.monotonic, head.xor_hash),
                ])
            });
            if !duplicate {
                each(&files[i], i, head, &mut states[i]);
                stats.entries += 1;
            }
            heads[i] = next(i, &mut cursors, &mut states);
            if let Some(h) = &heads[i] {
                heap.push(Reverse((h.realtime, i)));
            }
            popped += 1;
            if popped.is_multiple_of(1024)
                && cursors.iter().map(|c| c.touched).sum::<u64>() >= RELEASE_AFTER
            {
                files.iter().for_each(JournalFile::release);
                cursors.iter_mut().for_each(|c| c.touched = 0);
            }
        }
        files.iter().for_each(JournalFile::release);
        stats.problems = self.unreadable.clone();
        for (f, s) in files.iter().zip(states) {
            report(&mut stats, f, s.problems);
        }
        stats
    }
}

/// Adds one file's problems to `stats`, with a count of those not listed.
fn report(stats: &mut ReadStats, file: &JournalFile, problems: Problems) {
    stats
        .problems
        .extend(problems.list.into_iter().map(|what| Problem {
            path: file.path.clone(),
            what,
        }));
    if problems.dropped > 0 {
        stats.problems.push(Problem {
            path: file.path.clone(),
            what: format!("{} more problems not listed", problems.dropped),
        });
    }
}

/// One entry as [`Fields`]: the entry's fixed part, and its items looked
/// up in the mapping on demand.
struct Entry<'a> {
    file: &'a JournalFile,
    tag: u64,
    head: EntryHead,
    decoded: &'a [Decoded],
    state: RefCell<&'a mut FileState>,
}

/// Whether payload `p` (`FIELD=value`) is of field `name`.
fn is_field(p: &[u8], name: &[u8]) -> bool {
    p.len() > name.len() && p[name.len()] == b'=' && p.starts_with(name)
}

impl<'a> Entry<'a> {
    /// The view of entry `head` of file `index`, with `decoded` emptied
    /// and sized for its items.
    fn new(
        file: &'a JournalFile,
        index: usize,
        head: EntryHead,
        decoded: &'a mut Vec<Decoded>,
        state: &'a mut FileState,
    ) -> Self {
        let n = (head.items_end - head.items_start) / if file.compact { 4 } else { 16 };
        decoded.iter_mut().for_each(|d| {
            d.field.take();
            d.value.take();
        });
        decoded.resize_with(n, Decoded::default);
        Entry {
            file,
            tag: (index as u64) << 48,
            head,
            decoded,
            state: RefCell::new(state),
        }
    }

    fn bad(&self, offset: u64, why: String) {
        let mut state = self.state.borrow_mut();
        if state.bad_data.insert(offset) {
            state.problems.push(format!(
                "data object at {offset:#x}: {why}; its field is missing from the entries using it"
            ));
        }
    }

    /// The first item of field `name`: its DATA object's offset and value.
    /// A compressed item is decompressed to learn its field; its value is
    /// kept (until the next entry) only if it is the one asked for, so an
    /// entry of many large compressed values holds one at a time.
    fn find(&self, name: &str) -> Option<(u64, &[u8])> {
        let name = name.as_bytes();
        for (i, offset) in self.file.items(&self.head).enumerate() {
            let data = match self.file.data(offset) {
                Ok(d) => d,
                Err(e) => {
                    self.bad(offset, e.to_string());
                    continue;
                }
            };
            let Some(kind) = data.compression else {
                if is_field(data.payload, name) {
                    return Some((offset, &data.payload[name.len() + 1..]));
                }
                continue;
            };
            let Some(cell) = self.decoded.get(i) else {
                continue;
            };
            if let Some(v) = cell.value.get() {
                if is_field(v, name) {
                    return Some((offset, &v[name.len() + 1..]));
                }
                continue;
            }
            match cell.field.get() {
                Some(Some(field)) if **field != *name => continue,
                Some(None) => continue,
                _ => {}
            }
            if self.state.borrow().bad_data.contains(&offset) {
                let _ = cell.field.set(None);
                continue;
            }
            match decompress(kind, data.payload, MAX_VALUE) {
                Err(e) => {
                    self.bad(offset, e.to_string());
                    let _ = cell.field.set(None);
                }
                Ok(v) => {
                    let field = v
                        .iter()
                        .position(|&b| b == b'=')
                        .map_or(&v[..], |eq| &v[..eq]);
                    let _ = cell.field.set(Some(field.into()));
                    if is_field(&v, name) {
                        let v = cell.value.get_or_init(|| v);
                        return Some((offset, &v[name.len() + 1..]));
                    }
                }
            }
        }
        None
    }
}

impl Fields for Entry<'_> {
    fn realtime_us(&self) -> u64 {
        self.head.realtime
    }

    fn monotonic_us(&self) -> u64 {
        self.head.monotonic
    }

    fn boot_id(&self) -> [u8; 16] {
        self.head.boot_id
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.find(name).map(|(_, v)| v)
    }

    fn value_id(&self, name: &str) -> Option<u64> {
        self.find(name).map(|(offset, _)| self.tag | offset)
    }
}

/// One journal entry, as the analyses see it.
pub trait Fields {
    /// `__REALTIME_TIMESTAMP`: microseconds since the Unix epoch.
    fn realtime_us(&self) -> u64;
    /// `__MONOTONIC_TIMESTAMP`: microseconds since the entry's boot.
    fn monotonic_us(&self) -> u64;
    /// `_BOOT_ID`, as 16 bytes.
    fn boot_id(&self) -> [u8; 16];
    /// The value of field `name` (e.g. `"MESSAGE"`), as stored: bytes,
    /// not necessarily UTF-8. The first value when a field repeats.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// A number naming the stored value of field `name`, the same for
    /// every entry that shares that value within one read (journald stores
    /// each distinct `FIELD=value` once): a key to cache work done on a
    /// value, such as masking the numbers of a message. None when the
    /// field is absent.
    fn value_id(&self, name: &str) -> Option<u64>;
}
