//! Just enough of a BTF reader to find struct field offsets and tracepoint
//! signatures in the running kernel's type information.
//!
//! aya parses BTF too, but keeps the lookups we need crate-private; this
//! reader is small, has no unsafe, and is tested on blobs built in memory.

use std::{collections::HashMap, path::Path};

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

#[derive(Debug, Clone)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Bit offset, and bitfield size (0 = not a bitfield).
    bit_offset: u32,
    bitfield_size: u32,
}

#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    name_off: u32,
    /// `size` for sized kinds, `type` for reference kinds.
    size_or_type: u32,
    members: Vec<Member>,
    /// ENUM: (name offset, value).
    enumerators: Vec<(u32, i64)>,
    /// FUNC_PROTO: parameter types.
    params: Vec<u32>,
    /// FUNC_PROTO parameter count; ARRAY element type and count.
    vlen: u32,
    array: Option<(u32, u32)>,
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

pub struct Btf {
    /// Index 0 is `void`.
    types: Vec<Type>,
    strings: Vec<u8>,
    by_name: HashMap<(u32, String), u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data, &path.display().to_string())
    }

    /// Parses a little-endian BTF blob; `what` names it in errors.
    pub fn parse(data: &[u8], what: &str) -> Result<Self, BtfError> {
        let bad = || BtfError::Malformed {
            what: what.to_string(),
        };
        if data.len() < 24 {
            return Err(BtfError::BadMagic(what.to_string()));
        }
        if u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(BtfError::BadMagic(what.to_string()));
        }
        let hdr_len = u32_at(data, 4).ok_or_else(bad)? as usize;
        let type_off = u32_at(data, 8).ok_or_else(bad)? as usize;
        let type_len = u32_at(data, 12).ok_or_else(bad)? as usize;
        let str_off = u32_at(data, 16).ok_or_else(bad)? as usize;
        let str_len = u32_at(data, 20).ok_or_else(bad)? as usize;
        let section = |off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|s| s.checked_add(len).map(|e| (s, e)))
                .and_then(|(s, e)| data.get(s..e))
        };
        let tsec = section(type_off, type_len).ok_or_else(bad)?;
        let strings = section(str_off, str_len).ok_or_else(bad)?.to_vec();

        let mut types = vec![Type {
            kind: 0,
            name_off: 0,
            size_or_type: 0,
            members: Vec::new(),
            enumerators: Vec::new(),
            params: Vec::new(),
            vlen: 0,
            array: None,
        }];
        let mut at = 0usize;
        while at < tsec.len() {
            let name_off = u32_at(tsec, at).ok_or_else(bad)?;
            let info = u32_at(tsec, at + 4).ok_or_else(bad)?;
            let size_or_type = u32_at(tsec, at + 8).ok_or_else(bad)?;
            at += 12;
            let vlen = info & 0xffff;
            let k = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut t = Type {
                kind: k,
                name_off,
                size_or_type,
                members: Vec::new(),
                enumerators: Vec::new(),
                params: Vec::new(),
                vlen,
                array: None,
            };
            let extra = match k {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => {
                    let elem = u32_at(tsec, at).ok_or_else(bad)?;
                    let n = u32_at(tsec, at + 8).ok_or_else(bad)?;
                    t.array = Some((elem, n));
                    12
                }
                kind::STRUCT | kind::UNION => {
                    for i in 0..vlen as usize {
                        let m = at + i * 12;
                        let raw = u32_at(tsec, m + 8).ok_or_else(bad)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (raw & 0x00ff_ffff, raw >> 24)
                        } else {
                            (raw, 0)
                        };
                        t.members.push(Member {
                            name_off: u32_at(tsec, m).ok_or_else(bad)?,
                            type_id: u32_at(tsec, m + 4).ok_or_else(bad)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    12 * vlen as usize
                }
                kind::ENUM => {
                    for i in 0..vlen as usize {
                        let m = at + i * 8;
                        let name = u32_at(tsec, m).ok_or_else(bad)?;
                        let val = u32_at(tsec, m + 4).ok_or_else(bad)? as i32 as i64;
                        t.enumerators.push((name, val));
                    }
                    8 * vlen as usize
                }
                kind::FUNC_PROTO => {
                    for i in 0..vlen as usize {
                        t.params.push(u32_at(tsec, at + i * 8 + 4).ok_or_else(bad)?);
                    }
                    8 * vlen as usize
                }
                kind::DATASEC | kind::ENUM64 => 12 * vlen as usize,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                _ => return Err(bad()),
            };
            at += extra;
            if at > tsec.len() {
                return Err(bad());
            }
            types.push(t);
        }

        let mut btf = Self {
            types,
            strings,
            by_name: HashMap::new(),
        };
        for id in 1..btf.types.len() {
            let t = &btf.types[id];
            // A forward declaration or an empty duplicate must not shadow the
            // real definition, so the first complete one wins.
            if t.name_off == 0 || (t.kind == kind::STRUCT && t.members.is_empty()) {
                continue;
            }
            let key = (t.kind, btf.name(t.name_off).to_string());
            btf.by_name.entry(key).or_insert(id as u32);
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// The value of an enumerator (`memory_cgrp_id`), whichever enum it
    /// belongs to.
    pub fn enum_value(&self, enumerator: &str) -> Option<i64> {
        self.types
            .iter()
            .filter(|t| t.kind == kind::ENUM)
            .flat_map(|t| t.enumerators.iter())
            .find(|(n, _)| self.name(*n) == enumerator)
            .map(|(_, v)| *v)
    }

    pub fn type_id(&self, k: u32, name: &str) -> Option<u32> {
        self.by_name.get(&(k, name.to_string())).copied()
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
        let id = self.resolve(id)?;
        let t = self.ty(id)?;
        match t.kind {
            kind::INT | kind::STRUCT | kind::UNION | kind::ENUM | kind::ENUM64 | kind::FLOAT => {
                Some(t.size_or_type)
            }
            kind::PTR => Some(8),
            kind::ARRAY => {
                let (elem, n) = t.array?;
                self.size_of(elem)?.checked_mul(n)
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
        for m in &t.members {
            if m.name_off != 0 && self.name(m.name_off) == field {
                return Some((base + m.bit_offset, m.bitfield_size, m.type_id));
            }
        }
        t.members
            .iter()
            .filter(|m| m.name_off == 0)
            .find_map(|m| self.find_member(m.type_id, field, base + m.bit_offset, depth + 1))
    }

    /// The number of arguments a `tp_btf` tracepoint passes, not counting
    /// the leading `void *` context of its `btf_trace_<name>` typedef.
    /// Whether argument `index` (0-based, after the context) of a `tp_btf`
    /// tracepoint is a pointer (`struct task_struct *`) rather than a
    /// number (`int pid`).
    pub fn tracepoint_arg_is_pointer(
        &self,
        tracepoint: &str,
        index: usize,
    ) -> Result<bool, BtfError> {
        let missing = || BtfError::NoTracepoint(tracepoint.to_string());
        let td = self
            .type_id(kind::TYPEDEF, &format!("btf_trace_{tracepoint}"))
            .ok_or_else(missing)?;
        let ptr = self
            .resolve(td)
            .and_then(|id| self.ty(id))
            .filter(|t| t.kind == kind::PTR)
            .ok_or_else(missing)?;
        let proto = self
            .ty(ptr.size_or_type)
            .filter(|t| t.kind == kind::FUNC_PROTO)
            .ok_or_else(missing)?;
        let arg = *proto.params.get(index + 1).ok_or_else(missing)?;
        let t = self
            .resolve(arg)
            .and_then(|id| self.ty(id))
            .ok_or_else(missing)?;
        Ok(t.kind == kind::PTR)
    }

    pub fn tracepoint_arg_count(&self, tracepoint: &str) -> Result<u32, BtfError> {
        let missing = || BtfError::NoTracepoint(tracepoint.to_string());
        let td = self
            .type_id(kind::TYPEDEF, &format!("btf_trace_{tracepoint}"))
            .ok_or_else(missing)?;
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

/// Builds BTF blobs in memory for tests (ours and the kernel layout's).
#[cfg(test)]
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

        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.head(name, kind::INT, 0, false, size);
            self.types.extend_from_slice(&(size * 8).to_le_bytes());
            id
        }

        pub fn ptr(&mut self, to: u32) -> u32 {
            self.head("", kind::PTR, 0, false, to)
        }

        pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.head(name, kind::TYPEDEF, 0, false, to)
        }

        pub fn fwd(&mut self, name: &str) -> u32 {
            self.head(name, kind::FWD, 0, false, 0)
        }

        /// Members as (name, type, bit offset, bitfield size).
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
        pub fn array(&mut self, elem: u32, n: u32) -> u32 {
            let id = self.head("", kind::ARRAY, 0, false, 0);
            for v in [elem, elem, n] {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            id
        }

        /// A 4-byte enum of (name, value).
        pub fn enumeration(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
            let id = self.head(name, kind::ENUM, values.len() as u32, false, 4);
            for &(n, v) in values {
                let n = self.s(n);
                self.types.extend_from_slice(&n.to_le_bytes());
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            id
        }

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
