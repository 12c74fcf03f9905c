//! Just enough of a BTF reader to find struct field offsets and tracepoint
//! signatures in the running kernel's type information.
//!
//! aya parses BTF too, but keeps the lookups we need crate-private; this
//! reader is small and has no unsafe of its own (the kernel's BTF is
//! mapped through [`crate::mmap`]). It is tested on blobs built in memory
//! by [`build`], which also builds the attach stub aya is given.

use std::path::Path;

use crate::mmap::Map;

use thiserror::Error;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
/// Nested anonymous structs/unions and typedef chains are shallow in
/// practice; a bound keeps a corrupt or cyclic blob from recursing forever.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: not BTF data (bad magic)")]
    BadMagic(String),
    #[error("{what}: BTF data is truncated or malformed")]
    Malformed { what: String },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {strukt} has no field {field}")]
    NoField { strukt: String, field: String },
    #[error("kernel BTF has no tracepoint type btf_trace_{0}: tracepoint {0} is missing")]
    NoTracepoint(String),
    #[error("kernel BTF: field {strukt}.{field} is a bitfield, which the probe cannot read")]
    Bitfield { strukt: String, field: String },
}

pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// A field located in a struct: byte offset from the struct start, and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// The kernel's BTF, indexed rather than parsed: one offset per type, and
/// each type decoded when a lookup reaches it. A kernel's BTF holds some
/// 100,000 types of which the layout needs a few dozen, so owned copies of
/// every type would cost several times the blob's own size at start.
pub struct Btf {
    data: Blob,
    /// The type and string sections, as byte ranges of `data`.
    types: std::ops::Range<usize>,
    strings: std::ops::Range<usize>,
    /// Offset of type `id` in the type section at index `id`; index 0,
    /// `void`, has none.
    offsets: Vec<u32>,
}

/// One type's header, decoded on demand.
#[derive(Debug, Clone, Copy)]
struct Head {
    kind: u32,
    name_off: u32,
    /// `size` for sized kinds, `type` for reference kinds.
    size_or_type: u32,
    vlen: u32,
    kind_flag: bool,
    /// Where the kind's extra data starts, in the type section.
    extra: usize,
}

/// A struct or union member.
#[derive(Debug, Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Bit offset, and bitfield size (0 = not a bitfield).
    bit_offset: u32,
    bitfield_size: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}

/// The length of a kind's extra data after its 12-byte header, or None
/// for a kind this reader does not know.
fn extra_len(k: u32, vlen: usize) -> Option<usize> {
    Some(match k {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::ARRAY => 12,
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
        kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
        kind::PTR
        | kind::FWD
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::FLOAT
        | kind::TYPE_TAG => 0,
        _ => return None,
    })
}

/// The blob's bytes: read into memory, or the kernel's own BTF mapped.
/// A mapping's pages leave the resident set with it, where a freed read
/// buffer of this size is often kept by the allocator.
enum Blob {
    Read(Vec<u8>),
    Mapped(Map),
}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Read(v) => v,
            Self::Mapped(m) => m.bytes(),
        }
    }
}

/// Maps a file of the kernel's BTF directory (`/sys/kernel/btf/`, Linux
/// 6.16 and later allow it); None where that fails, and for any other
/// file, which could shrink while mapped.
fn map_kernel_btf(path: &Path) -> Option<Blob> {
    if !path.starts_with("/sys/kernel/btf") {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    if len == 0 {
        return None;
    }
    Map::new(&file, len).ok().map(Blob::Mapped)
}

impl Btf {
    /// Reads (or, for the kernel's own, maps) a BTF file.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let what = path.display().to_string();
        let data = match map_kernel_btf(path) {
            Some(mapped) => mapped,
            None => Blob::Read(std::fs::read(path).map_err(|source| BtfError::Read {
                path: what.clone(),
                source,
            })?),
        };
        Self::index(data, &what)
    }

    /// Indexes a little-endian BTF blob; `what` names it in errors.
    pub fn parse(data: &[u8], what: &str) -> Result<Self, BtfError> {
        Self::index(Blob::Read(data.to_vec()), what)
    }

    /// Every type is walked once, so a truncated or unknown type fails
    /// here, not in a later lookup.
    fn index(data: Blob, what: &str) -> Result<Self, BtfError> {
        let bad = || BtfError::Malformed {
            what: what.to_string(),
        };
        if data.len() < 24 {
            return Err(BtfError::BadMagic(what.to_string()));
        }
        if u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(BtfError::BadMagic(what.to_string()));
        }
        let hdr_len = u32_at(&data, 4).ok_or_else(bad)? as usize;
        let type_off = u32_at(&data, 8).ok_or_else(bad)? as usize;
        let type_len = u32_at(&data, 12).ok_or_else(bad)? as usize;
        let str_off = u32_at(&data, 16).ok_or_else(bad)? as usize;
        let str_len = u32_at(&data, 20).ok_or_else(bad)? as usize;
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            let end = start.checked_add(len)?;
            (end <= data.len()).then_some(start..end)
        };
        let types = section(type_off, type_len).ok_or_else(bad)?;
        let strings = section(str_off, str_len).ok_or_else(bad)?;
        if u32::try_from(types.len()).is_err() {
            return Err(bad());
        }

        let tsec = &data[types.clone()];
        // Types are at least 12 bytes, and the kernel's average about 30:
        // a guess that avoids most of the regrowth.
        let mut offsets = Vec::with_capacity(tsec.len() / 24 + 1);
        offsets.push(0);
        let mut at = 0usize;
        while at < tsec.len() {
            let info = u32_at(tsec, at + 4).ok_or_else(bad)?;
            let vlen = (info & 0xffff) as usize;
            let extra = extra_len((info >> 24) & 0x1f, vlen).ok_or_else(bad)?;
            offsets.push(at as u32);
            at += 12 + extra;
            if at > tsec.len() {
                return Err(bad());
            }
        }
        offsets.shrink_to_fit();
        Ok(Self {
            data,
            types,
            strings,
            offsets,
        })
    }

    fn tsec(&self) -> &[u8] {
        &self.data[self.types.clone()]
    }

    /// Whether the string at `off` is exactly `name`, without decoding it.
    fn name_is(&self, off: u32, name: &str) -> bool {
        let s = &self.data[self.strings.clone()];
        let n = name.as_bytes();
        let start = off as usize;
        s.get(start..start + n.len()) == Some(n) && s.get(start + n.len()) == Some(&0)
    }

    fn ty(&self, id: u32) -> Option<Head> {
        if id == 0 {
            return Some(Head {
                kind: 0,
                name_off: 0,
                size_or_type: 0,
                vlen: 0,
                kind_flag: false,
                extra: 0,
            });
        }
        let at = *self.offsets.get(id as usize)? as usize;
        let t = self.tsec();
        let info = u32_at(t, at + 4)?;
        Some(Head {
            kind: (info >> 24) & 0x1f,
            name_off: u32_at(t, at)?,
            size_or_type: u32_at(t, at + 8)?,
            vlen: info & 0xffff,
            kind_flag: info >> 31 == 1,
            extra: at + 12,
        })
    }

    fn members(&self, h: Head) -> impl Iterator<Item = Member> + '_ {
        let n = if h.kind == kind::STRUCT || h.kind == kind::UNION {
            h.vlen as usize
        } else {
            0
        };
        let t = self.tsec();
        (0..n).filter_map(move |i| {
            let m = h.extra + i * 12;
            let raw = u32_at(t, m + 8)?;
            let (bit_offset, bitfield_size) = if h.kind_flag {
                (raw & 0x00ff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            Some(Member {
                name_off: u32_at(t, m)?,
                type_id: u32_at(t, m + 4)?,
                bit_offset,
                bitfield_size,
            })
        })
    }

    /// FUNC_PROTO parameter `i`'s type.
    fn param(&self, h: Head, i: usize) -> Option<u32> {
        if h.kind != kind::FUNC_PROTO || i >= h.vlen as usize {
            return None;
        }
        u32_at(self.tsec(), h.extra + i * 8 + 4)
    }

    /// The value of an enumerator (`memory_cgrp_id`), whichever enum it
    /// belongs to.
    pub fn enum_value(&self, enumerator: &str) -> Option<i64> {
        let t = self.tsec();
        (1..self.offsets.len() as u32)
            .filter_map(|id| self.ty(id))
            .filter(|h| h.kind == kind::ENUM)
            .find_map(|h| {
                (0..h.vlen as usize).find_map(|i| {
                    let m = h.extra + i * 8;
                    let name = u32_at(t, m)?;
                    self.name_is(name, enumerator)
                        .then(|| u32_at(t, m + 4).map(|v| v as i32 as i64))?
                })
            })
    }

    /// The first type of kind `k` named `name`. A forward declaration or
    /// an empty duplicate must not shadow the real definition, so an empty
    /// struct is passed over.
    pub fn type_id(&self, k: u32, name: &str) -> Option<u32> {
        if name.is_empty() {
            return None;
        }
        (1..self.offsets.len() as u32).find(|&id| {
            self.ty(id).is_some_and(|h| {
                h.kind == k
                    && h.name_off != 0
                    && !(h.kind == kind::STRUCT && h.vlen == 0)
                    && self.name_is(h.name_off, name)
            })
        })
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// Size in bytes of a type, following typedefs and arrays.
    pub fn size_of(&self, id: u32) -> Option<u32> {
        self.size_at(id, 0)
    }

    fn size_at(&self, id: u32, depth: usize) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        let id = self.resolve(id)?;
        let t = self.ty(id)?;
        match t.kind {
            kind::INT | kind::STRUCT | kind::UNION | kind::ENUM | kind::ENUM64 | kind::FLOAT => {
                Some(t.size_or_type)
            }
            kind::PTR => Some(8),
            kind::ARRAY => {
                let elem = u32_at(self.tsec(), t.extra)?;
                let n = u32_at(self.tsec(), t.extra + 8)?;
                self.size_at(elem, depth + 1)?.checked_mul(n)
            }
            _ => None,
        }
    }

    /// Locates `field` in `struct strukt`, looking inside anonymous struct
    /// and union members too: randomized-layout kernels wrap most of
    /// task_struct in one.
    pub fn field(&self, strukt: &str, field: &str) -> Result<Field, BtfError> {
        let id = self
            .type_id(kind::STRUCT, strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        let no_field = || BtfError::NoField {
            strukt: strukt.into(),
            field: field.into(),
        };
        let (bits, bitfield, type_id) = self.find_member(id, field, 0, 0).ok_or_else(no_field)?;
        if bitfield != 0 || bits % 8 != 0 {
            return Err(BtfError::Bitfield {
                strukt: strukt.into(),
                field: field.into(),
            });
        }
        let size = self.size_of(type_id).ok_or_else(no_field)?;
        Ok(Field {
            offset: bits / 8,
            size,
        })
    }

    fn find_member(
        &self,
        id: u32,
        field: &str,
        base: u32,
        depth: usize,
    ) -> Option<(u32, u32, u32)> {
        if depth > MAX_DEPTH {
            return None;
        }
        let t = self.ty(self.resolve(id)?)?;
        if t.kind != kind::STRUCT && t.kind != kind::UNION {
            return None;
        }
        if let Some(m) = self
            .members(t)
            .find(|m| m.name_off != 0 && self.name_is(m.name_off, field))
        {
            return Some((base + m.bit_offset, m.bitfield_size, m.type_id));
        }
        self.members(t)
            .filter(|m| m.name_off == 0)
            .find_map(|m| self.find_member(m.type_id, field, base + m.bit_offset, depth + 1))
    }

    /// The id of a `tp_btf` tracepoint's `btf_trace_<name>` typedef: what
    /// a program attaches by, and where its signature starts.
    pub fn tracepoint_typedef(&self, tracepoint: &str) -> Result<u32, BtfError> {
        self.type_id(kind::TYPEDEF, &format!("btf_trace_{tracepoint}"))
            .ok_or_else(|| BtfError::NoTracepoint(tracepoint.to_string()))
    }

    /// Each tracepoint with its typedef's id ([`Btf::tracepoint_typedef`]).
    pub fn attach_ids<'a>(&self, tracepoints: &[&'a str]) -> Result<Vec<(&'a str, u32)>, BtfError> {
        tracepoints
            .iter()
            .map(|tp| Ok((*tp, self.tracepoint_typedef(tp)?)))
            .collect()
    }

    /// Whether argument `index` (0-based, after the context) of a `tp_btf`
    /// tracepoint is a pointer (`struct task_struct *`) rather than a
    /// number (`int pid`).
    pub fn tracepoint_arg_is_pointer(
        &self,
        tracepoint: &str,
        index: usize,
    ) -> Result<bool, BtfError> {
        let missing = || BtfError::NoTracepoint(tracepoint.to_string());
        let td = self.tracepoint_typedef(tracepoint)?;
        let ptr = self
            .resolve(td)
            .and_then(|id| self.ty(id))
            .filter(|t| t.kind == kind::PTR)
            .ok_or_else(missing)?;
        let proto = self
            .ty(ptr.size_or_type)
            .filter(|t| t.kind == kind::FUNC_PROTO)
            .ok_or_else(missing)?;
        let arg = self.param(proto, index + 1).ok_or_else(missing)?;
        let t = self
            .resolve(arg)
            .and_then(|id| self.ty(id))
            .ok_or_else(missing)?;
        Ok(t.kind == kind::PTR)
    }

    /// The number of arguments a `tp_btf` tracepoint passes, not counting
    /// the leading `void *` context of its `btf_trace_<name>` typedef.
    pub fn tracepoint_arg_count(&self, tracepoint: &str) -> Result<u32, BtfError> {
        let missing = || BtfError::NoTracepoint(tracepoint.to_string());
        let td = self.tracepoint_typedef(tracepoint)?;
        let ptr = self
            .resolve(td)
            .and_then(|id| self.ty(id))
            .ok_or_else(missing)?;
        if ptr.kind != kind::PTR {
            return Err(missing());
        }
        let proto = self.ty(ptr.size_or_type).ok_or_else(missing)?;
        if proto.kind != kind::FUNC_PROTO || proto.vlen == 0 {
            return Err(missing());
        }
        Ok(proto.vlen - 1)
    }
}

/// A BTF blob just big enough for aya to find the attach points of
/// `tp_btf` programs: each `btf_trace_<tracepoint>` typedef at its id in
/// the kernel's BTF (`ids`, from [`Btf::attach_ids`]), every id before the
/// last of them a nameless `void *`.
///
/// aya looks a program's attach id up by name in a parsed [`aya::Btf`];
/// the kernel checks that id against its own BTF. aya's parse of the whole
/// kernel BTF, for a handful of ids, would cost tens of MiB at start; the
/// typedefs come early in it (ids of some 10,000 in a kernel's 100,000
/// types), so the stub is a fraction of the size.
pub fn attach_stub(ids: &[(&str, u32)]) -> Vec<u8> {
    let mut sorted = ids.to_vec();
    sorted.sort_by_key(|&(_, id)| id);
    let mut b = build::BtfBuilder::new();
    for (tp, id) in sorted {
        while b.next_id() < id {
            b.ptr(0);
        }
        if b.next_id() == id {
            // A typedef of void: nothing aya follows.
            b.typedef(&format!("btf_trace_{tp}"), 0);
        }
    }
    b.finish()
}

/// Builds BTF blobs in memory: the attach stub, and the tests' kernels
/// (ours and the kernel layout's).
pub(crate) mod build {
    use super::kind;

    #[derive(Default)]
    pub struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl BtfBuilder {
        pub fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        fn head(&mut self, name: &str, k: u32, vlen: u32, kflag: bool, st: u32) -> u32 {
            let n = self.s(name);
            let info = (k << 24) | vlen | if kflag { 1 << 31 } else { 0 };
            for v in [n, info, st] {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            self.next_id += 1;
            self.next_id - 1
        }

        #[cfg(test)]
        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.head(name, kind::INT, 0, false, size);
            self.types.extend_from_slice(&(size * 8).to_le_bytes());
            id
        }

        /// The id the next type will have.
        pub fn next_id(&self) -> u32 {
            self.next_id
        }

        pub fn ptr(&mut self, to: u32) -> u32 {
            self.head("", kind::PTR, 0, false, to)
        }

        pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.head(name, kind::TYPEDEF, 0, false, to)
        }

        #[cfg(test)]
        pub fn fwd(&mut self, name: &str) -> u32 {
            self.head(name, kind::FWD, 0, false, 0)
        }

        /// Members as (name, type, bit offset, bitfield size).
        #[cfg(test)]
        pub fn composite(
            &mut self,
            k: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let kflag = members.iter().any(|m| m.3 != 0);
            let id = self.head(name, k, members.len() as u32, kflag, size);
            for &(n, t, off, bits) in members {
                let n = self.s(n);
                let off = if kflag { off | (bits << 24) } else { off };
                for v in [n, t, off] {
                    self.types.extend_from_slice(&v.to_le_bytes());
                }
            }
            id
        }

        /// `elem[n]` (index type: `elem`, which the reader ignores).
        #[cfg(test)]
        pub fn array(&mut self, elem: u32, n: u32) -> u32 {
            let id = self.head("", kind::ARRAY, 0, false, 0);
            for v in [elem, elem, n] {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            id
        }

        /// A 4-byte enum of (name, value).
        #[cfg(test)]
        pub fn enumeration(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
            let id = self.head(name, kind::ENUM, values.len() as u32, false, 4);
            for &(n, v) in values {
                let n = self.s(n);
                self.types.extend_from_slice(&n.to_le_bytes());
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            id
        }

        #[cfg(test)]
        pub fn func_proto(&mut self, params: &[u32]) -> u32 {
            let id = self.head("", kind::FUNC_PROTO, params.len() as u32, false, 0);
            for &p in params {
                self.types.extend_from_slice(&0u32.to_le_bytes());
                self.types.extend_from_slice(&p.to_le_bytes());
            }
            id
        }

        pub fn finish(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9fu16.to_le_bytes());
            out.push(1);
            out.push(0);
            for v in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{build::BtfBuilder, *};

    fn sample() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let u64t = b.int("long long unsigned int", 8);
        let pid_t = b.typedef("pid_t", int);
        b.fwd("task_struct");
        let anon = b.composite(
            kind::STRUCT,
            "",
            16,
            &[
                ("pid", pid_t, 0, 0),
                ("tgid", pid_t, 32, 0),
                ("id", u64t, 64, 0),
            ],
        );
        let flags = b.int("unsigned int", 4);
        let task = b.composite(
            kind::STRUCT,
            "task_struct",
            64,
            &[
                ("state", int, 0, 0),
                ("", anon, 128, 0),
                ("bits", flags, 320, 3),
                ("exit_code", int, 352, 0),
            ],
        );
        let ptask = b.ptr(task);
        let void_ptr = b.ptr(0);
        let proto = b.func_proto(&[void_ptr, ptask, int]);
        let pproto = b.ptr(proto);
        b.typedef("btf_trace_sched_process_exit", pproto);
        b.finish()
    }

    #[test]
    fn finds_direct_and_anonymous_nested_fields() {
        let btf = Btf::parse(&sample(), "sample").unwrap();
        assert_eq!(
            btf.field("task_struct", "state").unwrap(),
            Field { offset: 0, size: 4 }
        );
        assert_eq!(
            btf.field("task_struct", "pid").unwrap(),
            Field {
                offset: 16,
                size: 4
            }
        );
        assert_eq!(
            btf.field("task_struct", "tgid").unwrap(),
            Field {
                offset: 20,
                size: 4
            }
        );
        assert_eq!(
            btf.field("task_struct", "id").unwrap(),
            Field {
                offset: 24,
                size: 8
            }
        );
        assert_eq!(
            btf.field("task_struct", "exit_code").unwrap(),
            Field {
                offset: 44,
                size: 4
            }
        );
    }

    #[test]
    fn forward_declaration_does_not_shadow_definition() {
        let btf = Btf::parse(&sample(), "sample").unwrap();
        // The FWD came first in the blob; the lookup must land on the struct.
        assert!(btf.field("task_struct", "pid").is_ok());
    }

    #[test]
    fn missing_pieces_are_named() {
        let btf = Btf::parse(&sample(), "sample").unwrap();
        let e = btf.field("task_struct", "nope").unwrap_err().to_string();
        assert_eq!(e, "kernel BTF: struct task_struct has no field nope");
        let e = btf.field("css_set", "x").unwrap_err().to_string();
        assert_eq!(e, "kernel BTF has no struct css_set");
        let e = btf.field("task_struct", "bits").unwrap_err().to_string();
        assert!(e.contains("bitfield"), "{e}");
        let e = btf
            .tracepoint_arg_count("sched_process_fork")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tracepoint sched_process_fork is missing"),
            "{e}"
        );
    }

    #[test]
    fn the_attach_stub_puts_each_typedef_at_its_kernel_id_for_aya() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        for _ in 0..50 {
            b.ptr(int);
        }
        let void_ptr = b.ptr(0);
        let proto = b.func_proto(&[void_ptr, int]);
        let pproto = b.ptr(proto);
        let exec = b.typedef("btf_trace_sched_process_exec", pproto);
        b.int("long", 8);
        let fork = b.typedef("btf_trace_sched_process_fork", pproto);
        b.composite(kind::STRUCT, "after", 4, &[("x", int, 0, 0)]);
        let btf = Btf::parse(&b.finish(), "k").unwrap();

        let ids = btf
            .attach_ids(&["sched_process_fork", "sched_process_exec"])
            .unwrap();
        assert_eq!(
            ids,
            [("sched_process_fork", fork), ("sched_process_exec", exec)]
        );
        let stub = attach_stub(&ids);
        // Ids up to the last typedef, 12 bytes each, and their two names
        // (28 bytes and a NUL each) after the empty string.
        assert_eq!(stub.len(), 24 + 12 * fork as usize + 1 + 2 * 29);
        let aya = aya::Btf::parse(&stub, aya::Endianness::default()).unwrap();
        for (name, id) in [
            ("btf_trace_sched_process_exec", exec),
            ("btf_trace_sched_process_fork", fork),
        ] {
            assert_eq!(
                aya.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Typedef)
                    .unwrap(),
                id,
                "{name}"
            );
        }
        // Ours reads it too: the same ids.
        let ours = Btf::parse(&stub, "stub").unwrap();
        assert_eq!(
            ours.type_id(kind::TYPEDEF, "btf_trace_sched_process_exec"),
            Some(exec)
        );
        let e = btf.attach_ids(&["mark_victim"]).unwrap_err().to_string();
        assert!(e.contains("tracepoint mark_victim is missing"), "{e}");
    }

    #[test]
    fn the_kernels_btf_mapped_reads_as_it_does_read() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{VMLINUX_BTF} is missing under CI"
            );
            eprintln!("SKIPPED: {VMLINUX_BTF} is missing");
            return;
        }
        let mapped = Btf::from_file(path).unwrap();
        // Linux 6.16 made the file mappable; before, it is read.
        let release = crate::caps::kernel_release();
        if crate::doctor::version(&release).is_some_and(|v| v >= (6, 16)) {
            assert!(
                matches!(mapped.data, Blob::Mapped { .. }),
                "Linux {release}: the kernel's BTF was read, not mapped"
            );
        }
        let read = Btf::parse(&std::fs::read(path).unwrap(), "read").unwrap();
        assert_eq!(mapped.offsets, read.offsets);
        for tp in ["sched_process_exec", "sched_process_exit", "cgroup_mkdir"] {
            let name = format!("btf_trace_{tp}");
            assert_eq!(
                mapped.type_id(kind::TYPEDEF, &name),
                read.type_id(kind::TYPEDEF, &name)
            );
            assert!(mapped.type_id(kind::TYPEDEF, &name).is_some(), "{name}");
        }
        assert_eq!(
            mapped.field("task_struct", "tgid").unwrap(),
            read.field("task_struct", "tgid").unwrap()
        );
    }

    #[test]
    fn tracepoint_args_exclude_context() {
        let btf = Btf::parse(&sample(), "sample").unwrap();
        assert_eq!(btf.tracepoint_arg_count("sched_process_exit").unwrap(), 2);
    }

    #[test]
    fn rejects_garbage_and_truncation_without_panicking() {
        assert!(matches!(Btf::parse(b"", "x"), Err(BtfError::BadMagic(_))));
        assert!(matches!(
            Btf::parse(&[0u8; 64], "x"),
            Err(BtfError::BadMagic(_))
        ));
        let good = sample();
        for cut in [25, 40, good.len() - 1] {
            let mut blob = good[..cut].to_vec();
            // Keep the header's claims, so the sections run past the end.
            blob.resize(cut.max(24), 0);
            assert!(Btf::parse(&blob, "x").is_err(), "cut at {cut} parsed");
        }
        let mut bad_kind = good.clone();
        // First type's info word: kind 31 does not exist.
        bad_kind[24 + 4 + 3] = 31;
        assert!(Btf::parse(&bad_kind, "x").is_err());
    }
}
