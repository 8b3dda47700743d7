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
}

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

    /// A little-endian `i32`.
    pub fn i32_le(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
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
