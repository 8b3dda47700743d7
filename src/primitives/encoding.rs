//! Bitcoin's consensus encoding: one canonical byte form per type.
//!
//! As in rust-bitcoin, every wire type implements [`Encodable`] and [`Decodable`]; [`deserialize`]
//! decodes a whole buffer and rejects trailing bytes, so two different byte strings never decode to
//! the same value. Nothing outside `primitives` parses bytes.

use thiserror::Error;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input at byte {offset}: needed {needed} more byte(s) for {what}")]
    UnexpectedEnd {
        /// Offset at which the read was attempted.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
        /// What was being read.
        what: &'static str,
    },
    /// The value ended before the input did.
    #[error("{extra} trailing byte(s) after the value, starting at byte {offset}")]
    TrailingBytes {
        /// Where the trailing bytes start.
        offset: usize,
        /// How many there are.
        extra: usize,
    },
    /// A CompactSize integer not in its shortest form (Bitcoin Core: "non-canonical ReadCompactSize()").
    #[error("non-canonical CompactSize {value} at byte {offset}")]
    NonCanonicalCompactSize {
        /// Where it starts.
        offset: usize,
        /// Its value.
        value: u64,
    },
    /// A length or count beyond what any valid input can have.
    #[error("{what} of {len} at byte {offset} exceeds the limit of {max}")]
    TooLong {
        /// Where the length was read.
        offset: usize,
        /// What it counts.
        what: &'static str,
        /// The length read.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Bytes that are well-formed but not a valid encoding of the value.
    #[error("invalid {what} at byte {offset}: {why}")]
    Invalid {
        /// Where.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Why it is invalid.
        why: &'static str,
    },
}

/// Bitcoin Core's `MAX_SIZE`: no CompactSize length may exceed it.
pub const MAX_COMPACT_SIZE: u64 = 0x0200_0000;

/// A cursor over a byte slice that remembers its offset, for precise errors.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The current offset from the start of the buffer.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd { offset: self.pos, needed: n - self.remaining(), what });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N, what)?.try_into().expect("length checked"))
    }

    /// A little-endian `u32`.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `i32`.
    pub fn i32_le(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `i64`.
    pub fn i64_le(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// A CompactSize integer in its shortest form (Bitcoin Core `ReadCompactSize`, range-checked
    /// against `MAX_SIZE`).
    pub fn compact_size(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let v = match self.u8(what)? {
            0xfd => {
                let v = u16::from_le_bytes(self.array(what)?) as u64;
                if v < 0xfd {
                    return Err(DecodeError::NonCanonicalCompactSize { offset: at, value: v });
                }
                v
            }
            0xfe => {
                let v = u32::from_le_bytes(self.array(what)?) as u64;
                if v < 0x1_0000 {
                    return Err(DecodeError::NonCanonicalCompactSize { offset: at, value: v });
                }
                v
            }
            0xff => {
                let v = u64::from_le_bytes(self.array(what)?);
                if v < 0x1_0000_0000 {
                    return Err(DecodeError::NonCanonicalCompactSize { offset: at, value: v });
                }
                v
            }
            b => b as u64,
        };
        if v > MAX_COMPACT_SIZE {
            return Err(DecodeError::TooLong { offset: at, what, len: v, max: MAX_COMPACT_SIZE });
        }
        Ok(v)
    }

    /// A CompactSize length followed by that many bytes.
    pub fn var_bytes(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.compact_size(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }

    /// The bytes between two offsets already read (for hashing a value's exact encoding).
    pub fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        &self.buf[from..to]
    }
}

/// Bytes a CompactSize integer takes in its shortest form.
pub fn compact_size_len(v: u64) -> usize {
    match v {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Bytes a CompactSize length plus that many bytes take.
pub fn var_bytes_len(n: usize) -> usize {
    compact_size_len(n as u64) + n
}

/// Appends a CompactSize integer in its shortest form.
pub fn write_compact_size(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfc => out.push(v as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Appends a CompactSize length and the bytes.
pub fn write_var_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_compact_size(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A type with one canonical consensus encoding.
pub trait Encodable {
    /// Appends the encoding to `out`.
    fn consensus_encode(&self, out: &mut Vec<u8>);
}

/// A type that decodes from its canonical consensus encoding.
pub trait Decodable: Sized {
    /// Reads one value from `r`.
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Encodes a value into a new vector.
pub fn serialize<T: Encodable + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.consensus_encode(&mut out);
    out
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error.
pub fn deserialize<T: Decodable>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = T::consensus_decode(&mut r)?;
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes { offset: r.offset(), extra: r.remaining() });
    }
    Ok(v)
}
