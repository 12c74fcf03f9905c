//! The hashes journald files its DATA objects under: SipHash-2-4 keyed
//! with the file's ID (`HEADER_INCOMPATIBLE_KEYED_HASH`, systemd ≥ 246),
//! else Bob Jenkins' lookup3 `hashlittle2` folded to 64 bits, as systemd's
//! `journal_file_hash_data()` chooses.

/// `jenkins_hash64()`: lookup3's `hashlittle2` from zero seeds, the
/// primary (c) result in the high half and the secondary (b) in the low.
pub fn jenkins64(data: &[u8]) -> u64 {
    let (c, b) = hashlittle2(data, 0, 0);
    (u64::from(c) << 32) | u64::from(b)
}

fn hashlittle2(key: &[u8], pc: u32, pb: u32) -> (u32, u32) {
    // lookup3 adds the length as a 32-bit value: longer keys wrap.
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(pc);
    let (mut a, mut b, mut c) = (init, init, init.wrapping_add(pb));
    let word = |k: &[u8], i: usize| -> u32 {
        let mut w = [0u8; 4];
        let part = k.get(i..).unwrap_or(&[]);
        let n = part.len().min(4);
        w[..n].copy_from_slice(&part[..n]);
        u32::from_le_bytes(w)
    };
    let mut k = key;
    while k.len() > 12 {
        a = a.wrapping_add(word(k, 0));
        b = b.wrapping_add(word(k, 4));
        c = c.wrapping_add(word(k, 8));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        // Only an empty key ends here: it needs no final mixing.
        return (c, b);
    }
    // The last 1..=12 bytes, zero-padded, as the byte-wise path adds them.
    a = a.wrapping_add(word(k, 0));
    b = b.wrapping_add(word(k, 4));
    c = c.wrapping_add(word(k, 8));
    fin(&mut a, &mut b, &mut c);
    (c, b)
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn fin(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// SipHash-2-4 of `data` under the 128-bit `key` (two little-endian words).
pub fn siphash24(data: &[u8], key: &[u8; 16]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or([0; 8]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let m = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = blocks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    // The length's low byte goes into the top byte of the last word.
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lookup3.c's own self-test (driver5): hashlittle2 of the empty key
    /// and of "Four score and seven years ago" from several seeds.
    #[test]
    fn hashlittle2_matches_lookup3s_self_test() {
        assert_eq!(hashlittle2(b"", 0, 0), (0xdeadbeef, 0xdeadbeef));
        assert_eq!(hashlittle2(b"", 0, 0xdeadbeef), (0xbd5b7dde, 0xdeadbeef));
        assert_eq!(
            hashlittle2(b"", 0xdeadbeef, 0xdeadbeef),
            (0x9c093ccd, 0xbd5b7dde)
        );
        let text = b"Four score and seven years ago";
        assert_eq!(hashlittle2(text, 0, 0), (0x17770551, 0xce7226e6));
        assert_eq!(hashlittle2(text, 0, 1), (0xe3607cae, 0xbd371de4));
        assert_eq!(hashlittle2(text, 1, 0), (0xcd628161, 0x6cbea4b3));
    }

    /// The SipHash paper's test vectors: key 00..0f, messages 00..(n-1).
    #[test]
    fn siphash24_matches_the_reference_vectors() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0..64u8).collect();
        assert_eq!(siphash24(&msg[..0], &key), 0x726fdb47dd0e0e31);
        assert_eq!(siphash24(&msg[..1], &key), 0x74f839c593dc67fd);
        assert_eq!(siphash24(&msg[..8], &key), 0x93f5f5799a932462);
        assert_eq!(siphash24(&msg[..15], &key), 0xa129ca6149be45e5);
        assert_eq!(siphash24(&msg[..63], &key), 0x958a324ceb064572);
    }
}
