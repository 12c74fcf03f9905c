//! The three compressions journald applies to DATA payloads, each decoded
//! with a hard cap on the output size, so that a hostile file cannot make
//! the reader allocate more than [`MAX_VALUE`] bytes for one value.

use std::io::{self, Read, Write};

/// The largest decompressed value the reader accepts: journald itself
/// refuses fields beyond `DATA_SIZE_MAX` (64 MiB), but its default
/// `Storage` settings never let one near 16 MiB, and a value this large is
/// not something the analyses look at.
pub const MAX_VALUE: usize = 16 << 20;

/// Which algorithm a DATA object's flags name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Lz4,
    Zstd,
}

impl Compression {
    /// The object flag bits (`OBJECT_COMPRESSED_*`): none, one algorithm,
    /// or an invalid combination.
    pub fn from_flags(flags: u8) -> Result<Option<Compression>, DecompressError> {
        match flags & 0x07 {
            0 => Ok(None),
            1 => Ok(Some(Compression::Xz)),
            2 => Ok(Some(Compression::Lz4)),
            4 => Ok(Some(Compression::Zstd)),
            other => Err(DecompressError::Flags(other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "XZ",
            Compression::Lz4 => "LZ4",
            Compression::Zstd => "ZSTD",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error("invalid compression flags {0:#x}")]
    Flags(u8),
    #[error("{0} value larger than the {limit} MiB limit", limit = MAX_VALUE >> 20)]
    TooLarge(&'static str),
    #[error("corrupt {algorithm} payload: {why}")]
    Corrupt {
        algorithm: &'static str,
        why: String,
    },
}

/// Decompresses `input` with `kind`, refusing to produce more than `limit`
/// bytes.
pub fn decompress(
    kind: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    match kind {
        Compression::Lz4 => lz4(input, limit),
        Compression::Zstd => zstd(input, limit),
        Compression::Xz => xz(input, limit),
    }
}

fn corrupt(kind: Compression, why: impl ToString) -> DecompressError {
    DecompressError::Corrupt {
        algorithm: kind.name(),
        why: why.to_string(),
    }
}

/// journald's LZ4 payload: the uncompressed size as 8 little-endian bytes,
/// then one LZ4 block.
fn lz4(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let kind = Compression::Lz4;
    let (size, block) = input
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(kind, "shorter than its 8-byte size"))?;
    let size = u64::from_le_bytes(*size);
    if size > limit as u64 {
        return Err(DecompressError::TooLarge(kind.name()));
    }
    // Cannot truncate: size <= limit, a usize.
    let size = size as usize;
    let mut out = vec![0u8; size];
    let n = lz4_flex::block::decompress_into(block, &mut out).map_err(|e| corrupt(kind, e))?;
    if n != size {
        return Err(corrupt(
            kind,
            format!("{n} bytes where the header says {size}"),
        ));
    }
    Ok(out)
}

/// A zstd frame, read through ruzstd's streaming decoder for at most
/// `limit + 1` bytes: the decoder only buffers what the reader asks for
/// plus its window, and the window the frame declares is checked against
/// the cap first (ruzstd reserves it up front), so a bomb stops at the cap.
fn zstd(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let kind = Compression::Zstd;
    match zstd_window(input) {
        Some(window) if window <= limit as u64 => {}
        Some(_) => return Err(DecompressError::TooLarge(kind.name())),
        None => return Err(corrupt(kind, "no zstd frame header")),
    }
    let decoder = ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| corrupt(kind, e))?;
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(kind, e))?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge(kind.name()));
    }
    Ok(out)
}

/// The window size a zstd frame header declares (RFC 8878, 3.1.1.1): the
/// content size for a single-segment frame, else from the window
/// descriptor byte.
fn zstd_window(input: &[u8]) -> Option<u64> {
    if input.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = *input.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let w = *input.get(5)?;
        let log = 10 + u32::from(w >> 3);
        let base = 1u64.checked_shl(log)?;
        return Some(base + (base / 8) * u64::from(w & 7));
    }
    let dict_len = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let at = 5 + dict_len;
    let fcs = match descriptor >> 6 {
        0 => u64::from(*input.get(at)?),
        1 => u64::from(u16::from_le_bytes(input.get(at..at + 2)?.try_into().ok()?)) + 256,
        2 => u64::from(u32::from_le_bytes(input.get(at..at + 4)?.try_into().ok()?)),
        _ => u64::from_le_bytes(input.get(at..at + 8)?.try_into().ok()?),
    };
    Some(fcs)
}

/// A writer that fails once more than `limit` bytes arrive.
struct Capped {
    out: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("decompressed value too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An .xz stream. lzma-rs keeps up to the dictionary size of output in
/// memory before it writes any, so the dictionary size the block header
/// declares is checked against the cap first.
fn xz(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let kind = Compression::Xz;
    match xz_dict_size(input) {
        Some(dict) if dict <= limit as u64 => {}
        Some(_) => return Err(DecompressError::TooLarge(kind.name())),
        None => return Err(corrupt(kind, "no LZMA2 block header")),
    }
    let mut out = Capped {
        out: Vec::new(),
        limit,
        exceeded: false,
    };
    let mut reader = input;
    let result = lzma_rs::xz_decompress(&mut reader, &mut out);
    if out.exceeded {
        return Err(DecompressError::TooLarge(kind.name()));
    }
    result.map_err(|e| corrupt(kind, e))?;
    Ok(out.out)
}

/// The LZMA2 dictionary size of an .xz stream's first block: the stream
/// header is 12 bytes; the block header's flags byte says how many
/// filters follow and whether two size varints precede them; the LZMA2
/// filter (id 0x21) has one property byte coding the dictionary size.
fn xz_dict_size(input: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
    if input.get(..6)? != MAGIC {
        return None;
    }
    let header_len = (usize::from(*input.get(12)?) + 1) * 4;
    let header = input.get(12..12 + header_len)?;
    let flags = *header.get(1)?;
    let n_filters = usize::from(flags & 0x03) + 1;
    let mut pos = 2;
    let varint = |pos: &mut usize| -> Option<u64> {
        let mut value = 0u64;
        for i in 0..9 {
            let b = *header.get(*pos)?;
            *pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    if flags & 0x40 != 0 {
        varint(&mut pos)?;
    }
    if flags & 0x80 != 0 {
        varint(&mut pos)?;
    }
    for _ in 0..n_filters {
        let id = varint(&mut pos)?;
        let props_len = usize::try_from(varint(&mut pos)?).ok()?;
        let props = header.get(pos..pos.checked_add(props_len)?)?;
        pos += props_len;
        if id == 0x21 {
            let bits = u32::from(*props.first()? & 0x3f);
            if bits > 40 {
                return None;
            }
            if bits == 40 {
                return Some(u64::from(u32::MAX));
            }
            return Some(u64::from(2 | (bits & 1)) << (bits / 2 + 11));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..2000 {
            v.extend_from_slice(format!("MESSAGE=line {i} of a long value\n").as_bytes());
        }
        v
    }

    fn lz4_payload(data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&lz4_flex::block::compress(data));
        out
    }

    fn xz_payload(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &data[..], &mut out).expect("xz encode");
        out
    }

    fn zstd_payload(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn zstd_round_trips() {
        let data = sample();
        assert_eq!(
            decompress(Compression::Zstd, &zstd_payload(&data), MAX_VALUE),
            Ok(data)
        );
    }

    #[test]
    fn zstd_bomb_beyond_limit_is_refused() {
        let data = vec![b'a'; 1 << 20];
        assert_eq!(
            decompress(Compression::Zstd, &zstd_payload(&data), 64 << 10),
            Err(DecompressError::TooLarge("ZSTD"))
        );
    }

    #[test]
    fn zstd_frame_declaring_a_huge_window_is_refused_before_decoding() {
        // Magic, then a descriptor without single segment, then window
        // descriptor 0xf8: 2^41 bytes.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0, 0, 0, 0];
        assert_eq!(
            decompress(Compression::Zstd, &frame, MAX_VALUE),
            Err(DecompressError::TooLarge("ZSTD"))
        );
    }

    #[test]
    fn lz4_round_trips() {
        let data = sample();
        assert_eq!(
            decompress(Compression::Lz4, &lz4_payload(&data), MAX_VALUE),
            Ok(data)
        );
    }

    #[test]
    fn xz_round_trips() {
        let data = sample();
        assert_eq!(
            decompress(Compression::Xz, &xz_payload(&data), MAX_VALUE),
            Ok(data)
        );
    }

    #[test]
    fn lz4_size_beyond_limit_is_refused_before_decoding() {
        let mut payload = lz4_payload(b"x");
        payload[..8].copy_from_slice(&(u64::MAX).to_le_bytes());
        assert_eq!(
            decompress(Compression::Lz4, &payload, MAX_VALUE),
            Err(DecompressError::TooLarge("LZ4"))
        );
    }

    #[test]
    fn lz4_bomb_beyond_limit_is_refused() {
        let data = vec![b'a'; 4096];
        assert_eq!(
            decompress(Compression::Lz4, &lz4_payload(&data), 1024),
            Err(DecompressError::TooLarge("LZ4"))
        );
    }

    #[test]
    fn xz_bomb_beyond_limit_is_refused() {
        let data = vec![b'a'; 1 << 20];
        assert_eq!(
            decompress(Compression::Xz, &xz_payload(&data), 64 << 10),
            Err(DecompressError::TooLarge("XZ"))
        );
    }

    #[test]
    fn garbage_payloads_are_errors() {
        let garbage: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for kind in [Compression::Lz4, Compression::Xz, Compression::Zstd] {
            let got = decompress(kind, &garbage, MAX_VALUE);
            assert!(
                matches!(
                    got,
                    Err(DecompressError::Corrupt { .. }) | Err(DecompressError::TooLarge(_))
                ),
                "{kind:?}: {got:?}"
            );
        }
    }

    #[test]
    fn lz4_with_wrong_size_header_is_corrupt() {
        let data = sample();
        let mut payload = lz4_payload(&data);
        payload[..8].copy_from_slice(&(data.len() as u64 + 10).to_le_bytes());
        assert!(matches!(
            decompress(Compression::Lz4, &payload, MAX_VALUE),
            Err(DecompressError::Corrupt { .. })
        ));
    }

    #[test]
    fn two_algorithm_flags_are_invalid() {
        assert_eq!(Compression::from_flags(3), Err(DecompressError::Flags(3)));
    }
}
