//! Bitcoin Core's block-file obfuscation (Core 28 and later): every byte of `blk?????.dat` and
//! `rev?????.dat` is XORed with an 8-byte key at the byte's file position modulo 8. The key is the
//! 8 raw bytes of `blocks/xor.dat` (no length prefix); an all-zero key means the files are plain.
//!
//! Source: Bitcoin Core `util/obfuscation.h` (`Obfuscation::operator()`: `key_offset % KEY_SIZE`
//! picks the key rotation) and `node/blockstorage.cpp` (`InitBlocksdirXorKey`: the key file).

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// Bytes in a key (Core's `Obfuscation::KEY_SIZE`).
pub const KEY_BYTES: usize = 8;

/// The name of the key file in a Core `blocks/` directory.
pub const KEY_FILE: &str = "xor.dat";

/// An obfuscation key: byte `p` of a file is stored XORed with `key[p % 8]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XorKey(pub [u8; KEY_BYTES]);

impl XorKey {
    /// True for the all-zero key (Core's "no obfuscation").
    pub fn is_zero(&self) -> bool {
        self.0 == [0; KEY_BYTES]
    }

    /// XORs `buf`, which starts at byte `offset` of its file, with the key (applying it twice
    /// gives the bytes back). Eight bytes at a time: the key rotated to `offset % 8` is one `u64`.
    pub fn apply(&self, buf: &mut [u8], offset: u64) {
        if self.is_zero() {
            return;
        }
        let r = (offset % KEY_BYTES as u64) as usize;
        let rot: [u8; KEY_BYTES] = std::array::from_fn(|i| self.0[(r + i) % KEY_BYTES]);
        let k = u64::from_ne_bytes(rot);
        let (words, rest) = buf.as_chunks_mut::<KEY_BYTES>();
        for w in words {
            *w = (u64::from_ne_bytes(*w) ^ k).to_ne_bytes();
        }
        for (b, k) in rest.iter_mut().zip(rot) {
            *b ^= k;
        }
    }

    /// True when `buf` (de-obfuscated bytes starting at file byte `offset`) is stored as zeros in
    /// the file: Core pre-allocates blk files with plain zeros (`AllocateFileRange`), which read
    /// through the key as the key itself.
    pub fn stored_as_zeros(&self, buf: &[u8], offset: u64) -> bool {
        let r = (offset % KEY_BYTES as u64) as usize;
        let rot: [u8; KEY_BYTES] = std::array::from_fn(|i| self.0[(r + i) % KEY_BYTES]);
        let (words, rest) = buf.as_chunks::<KEY_BYTES>();
        words.iter().all(|w| *w == rot) && rest.iter().zip(rot).all(|(b, k)| *b == k)
    }

    /// Reads a key file (`blocks/xor.dat`): exactly 8 bytes.
    ///
    /// # Errors
    /// The file cannot be read, or it is not 8 bytes long (the message says which).
    pub fn from_file(path: &Path) -> Result<XorKey, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            format!("{} bytes, but a Bitcoin Core obfuscation key file holds exactly {KEY_BYTES}", bytes.len())
        })?;
        Ok(XorKey(key))
    }
}

impl FromStr for XorKey {
    type Err = String;

    /// 16 hex digits, the key's bytes in file order (as Core logs it: `Using obfuscation key for
    /// blocksdir *.dat files (...): '0123456789abcdef'`).
    fn from_str(s: &str) -> Result<XorKey, String> {
        let bytes = hex::decode(s.trim()).map_err(|e| format!("not hex ({e}): expected 16 hex digits"))?;
        let key: [u8; KEY_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("{} bytes, expected {KEY_BYTES} (16 hex digits)", bytes.len()))?;
        Ok(XorKey(key))
    }
}

impl std::fmt::Display for XorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A file read through its obfuscation key: every read is de-obfuscated at its file position.
pub struct XorReader<R> {
    inner: R,
    key: XorKey,
    pos: u64,
}

impl<R: Read> XorReader<R> {
    /// Reads `inner` (positioned at its start) with `key`.
    pub fn new(inner: R, key: XorKey) -> XorReader<R> {
        XorReader { inner, key, pos: 0 }
    }
}

impl<R: Read> Read for XorReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.key.apply(&mut buf[..n], self.pos);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte definition Core's `Obfuscation` implements.
    fn slow(key: &[u8; 8], buf: &mut [u8], offset: u64) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[((offset + i as u64) % 8) as usize];
        }
    }

    #[test]
    fn word_xor_equals_the_byte_definition_at_every_offset_and_length() {
        let key = XorKey([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..17u64 {
            for len in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 300] {
                let mut fast = data[..len].to_vec();
                let mut want = fast.clone();
                key.apply(&mut fast, offset);
                slow(&key.0, &mut want, offset);
                assert_eq!(fast, want, "offset {offset}, len {len}");
                key.apply(&mut fast, offset);
                assert_eq!(fast, &data[..len]);
                let mut zeros = vec![0u8; len];
                key.apply(&mut zeros, offset);
                assert!(key.stored_as_zeros(&zeros, offset));
                if len > 0 {
                    zeros[len / 2] ^= 1;
                    assert!(!key.stored_as_zeros(&zeros, offset), "offset {offset}, len {len}");
                }
            }
        }
    }

    #[test]
    fn reads_of_any_size_deobfuscate_at_their_position() {
        let key = XorKey(*b"\x9a\x00\xff\x10k3y!");
        let plain: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut stored = plain.clone();
        slow(&key.0, &mut stored, 0);
        // A reader that hands out odd-sized pieces.
        struct Odd<'a>(&'a [u8], usize);
        impl Read for Odd<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = self.1 % 13 + 1;
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        XorReader::new(Odd(&stored, 0), key).read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn keys_parse_from_hex_and_key_files_must_be_8_bytes() {
        assert_eq!("0123456789abcdef".parse::<XorKey>().unwrap().0, [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert!("0123".parse::<XorKey>().unwrap_err().contains("2 bytes, expected 8"));
        assert!("zz23456789abcdef".parse::<XorKey>().unwrap_err().contains("not hex"));
        assert!(XorKey::default().is_zero());
        let dir = std::env::temp_dir().join(format!("powkit-xor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("good"), [7u8; 8]).unwrap();
        std::fs::write(dir.join("bad"), [7u8; 9]).unwrap();
        assert_eq!(XorKey::from_file(&dir.join("good")).unwrap(), XorKey([7; 8]));
        assert!(XorKey::from_file(&dir.join("bad")).unwrap_err().contains("9 bytes"));
    }
}
