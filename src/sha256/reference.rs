//! The portable scalar reference: SHA-256 exactly as FIPS 180-4 writes it, no shortcuts.
//!
//! Every fast path in powkit (midstate, early exit, SIMD lanes, SHA-NI, GPU shaders) is tested
//! against these functions, which are themselves tested against the `sha2` crate and the FIPS
//! examples.

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
pub const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

/// The initial hash value H(0) (FIPS 180-4, 5.3.3).
pub const IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Reads a 64-byte block as sixteen big-endian words.
pub fn block_words(block: &[u8; 64]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (i, word) in w.iter_mut().enumerate() {
        *word = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    }
    w
}

/// Σ0 (FIPS 180-4, 4.1.2, equation 4.4).
#[inline(always)]
pub fn bsig0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

/// Σ1 (equation 4.5).
#[inline(always)]
pub fn bsig1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

/// σ0 (equation 4.6).
#[inline(always)]
pub fn ssig0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

/// σ1 (equation 4.7).
#[inline(always)]
pub fn ssig1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// Ch (equation 4.2).
#[inline(always)]
pub fn ch(e: u32, f: u32, g: u32) -> u32 {
    (e & f) ^ (!e & g)
}

/// Maj (equation 4.3).
#[inline(always)]
pub fn maj(a: u32, b: u32, c: u32) -> u32 {
    (a & b) ^ (a & c) ^ (b & c)
}

/// One round of the compression function on state `s` with round constant plus word `kw`.
#[inline(always)]
pub fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h.wrapping_add(bsig1(e)).wrapping_add(ch(e, f, g)).wrapping_add(kw);
    let t2 = bsig0(a).wrapping_add(maj(a, b, c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// The compression function: folds one block (as sixteen words) into `state`.
pub fn compress_words(state: &mut [u32; 8], block: &[u32; 16]) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for i in 16..64 {
        w[i] = w[i - 16].wrapping_add(ssig0(w[i - 15])).wrapping_add(w[i - 7]).wrapping_add(ssig1(w[i - 2]));
    }
    let mut s = *state;
    for i in 0..64 {
        round(&mut s, K[i].wrapping_add(w[i]));
    }
    for i in 0..8 {
        state[i] = state[i].wrapping_add(s[i]);
    }
}

/// The compression function on a 64-byte block.
pub fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    compress_words(state, &block_words(block));
}

/// SHA-256 of `data`, with FIPS 180-4 padding.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state = IV;
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        compress(&mut state, c.try_into().expect("64 bytes"));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let blocks = if rest.len() < 56 { 1 } else { 2 };
    let bit_len = (data.len() as u64).wrapping_mul(8);
    tail[64 * blocks - 8..64 * blocks].copy_from_slice(&bit_len.to_be_bytes());
    for b in 0..blocks {
        compress(&mut state, tail[64 * b..64 * b + 64].try_into().expect("64 bytes"));
    }
    digest_bytes(&state)
}

/// The digest bytes of a final state (each word big-endian).
pub fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, w) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Double SHA-256, Bitcoin's hash for headers, transactions and merkle nodes.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use sha2::{Digest, Sha256};

    #[test]
    fn fips_examples() {
        assert_eq!(hex::encode(sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex::encode(sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(
            hex::encode(sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn matches_sha2_crate_on_every_length_to_300() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for len in 0..300 {
            let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let want: [u8; 32] = Sha256::digest(&data).into();
            assert_eq!(sha256(&data), want, "length {len}");
            let want_d: [u8; 32] = Sha256::digest(Sha256::digest(&data)).into();
            assert_eq!(sha256d(&data), want_d, "sha256d length {len}");
        }
    }
}
