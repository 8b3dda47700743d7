//! Message framing (docs/PROTOCOL.md, "Framing"):
//!
//! ```text
//! magic [4] | command [12] (ASCII, zero-padded) | length u32 LE | checksum [4] | payload [length]
//! ```
//!
//! `checksum` is the first four bytes of SHA-256d(payload). The length is checked against
//! [`MAX_PAYLOAD`] before the payload is read, so a hostile peer cannot make a node allocate more.

use std::io::{Read, Write};

use crate::primitives::sha256d;

/// Largest payload accepted: a largest block (4,000,000 bytes) plus room for its message fields.
pub const MAX_PAYLOAD: u32 = 4_000_000 + 1024;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 24;

/// One framed message: its command and payload, checksum verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The command name (1..=12 ASCII letters, digits or `_`).
    pub command: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a frame was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is for another network (or the stream lost sync).
    #[error("wrong network magic {got} (expected {want})")]
    Magic {
        /// Received (hex).
        got: String,
        /// Ours (hex).
        want: String,
    },
    /// The command field is not 1..=12 characters of `[a-z0-9_]` followed by zero padding.
    #[error("malformed command field {0}")]
    Command(String),
    /// The declared length is above the limit ([`MAX_PAYLOAD`], or the lower one in force before
    /// the handshake).
    #[error("payload of {len} bytes declared, above the limit of {max}")]
    Oversized {
        /// Declared length.
        len: u32,
        /// The limit in force.
        max: u32,
    },
    /// The payload does not match its checksum.
    #[error("checksum mismatch for {command} ({len} bytes)")]
    Checksum {
        /// Command.
        command: String,
        /// Payload length.
        len: usize,
    },
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    sha256d(payload)[..4].try_into().expect("4 bytes")
}

/// Parses a 12-byte command field.
fn parse_command(field: &[u8; 12]) -> Result<String, FrameError> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(12);
    let (name, pad) = field.split_at(end);
    let ok = !name.is_empty()
        && name.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && pad.iter().all(|&b| b == 0);
    if !ok {
        return Err(FrameError::Command(hex::encode(field)));
    }
    Ok(String::from_utf8(name.to_vec()).expect("ASCII"))
}

/// The 24-byte header and payload of a message.
pub fn encode_frame(magic: [u8; 4], command: &str, payload: &[u8]) -> Vec<u8> {
    assert!(!command.is_empty() && command.len() <= 12, "commands are 1..=12 bytes");
    assert!(payload.len() <= MAX_PAYLOAD as usize, "payload above the limit");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic);
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command.as_bytes());
    out.extend_from_slice(&cmd);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(payload));
    out.extend_from_slice(payload);
    out
}

/// Writes one message.
pub fn write_frame(w: &mut dyn Write, magic: [u8; 4], command: &str, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&encode_frame(magic, command, payload))?;
    w.flush()
}

/// Reads one message, checking magic, command, length limit (before reading the payload) and checksum.
pub fn read_frame(r: &mut dyn Read, magic: [u8; 4]) -> Result<Frame, FrameError> {
    read_frame_limited(r, magic, MAX_PAYLOAD)
}

/// [`read_frame`] with a lower payload limit `max` (at most [`MAX_PAYLOAD`]): a node allows only
/// small frames before the handshake (docs/PROTOCOL.md, "Per-peer bounds"). The payload is read
/// incrementally, so a declared length costs memory only as its bytes arrive: a peer that declares
/// 4 MB and sends 10 bytes holds 10 bytes, not 4 MB.
///
/// Errors: [`FrameError::Oversized`] when the declared length is above `max` (nothing more is read),
/// [`FrameError::Io`] when the stream ends inside the frame, and the other variants as for
/// [`read_frame`].
pub fn read_frame_limited(r: &mut dyn Read, magic: [u8; 4], max: u32) -> Result<Frame, FrameError> {
    let max = max.min(MAX_PAYLOAD);
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head)?;
    if head[..4] != magic {
        return Err(FrameError::Magic { got: hex::encode(&head[..4]), want: hex::encode(magic) });
    }
    let command = parse_command(head[4..16].try_into().expect("12 bytes"))?;
    let len = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    // Grows with the bytes that arrive (at most 64 KiB ahead of them), never at the declared length.
    let mut payload = Vec::with_capacity((len as usize).min(1 << 16));
    r.take(u64::from(len)).read_to_end(&mut payload)?;
    if payload.len() != len as usize {
        return Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the stream ended {} bytes into a {len}-byte {command} payload", payload.len()),
        )));
    }
    if head[20..24] != checksum(&payload) {
        return Err(FrameError::Checksum { command, len: payload.len() });
    }
    Ok(Frame { command, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = [0x70, 0x6b, 0x77, 0xff];

    fn read(bytes: &[u8]) -> Result<Frame, FrameError> {
        read_frame(&mut &bytes[..], MAGIC)
    }

    #[test]
    fn frames_round_trip() {
        for (cmd, payload) in [("ping", vec![1u8; 8]), ("verack", vec![]), ("headers", vec![7u8; 100_000])] {
            let bytes = encode_frame(MAGIC, cmd, &payload);
            assert_eq!(bytes.len(), HEADER_LEN + payload.len());
            let f = read(&bytes).unwrap();
            assert_eq!((f.command.as_str(), f.payload), (cmd, payload));
        }
        // Two frames back to back on one stream.
        let mut stream = encode_frame(MAGIC, "ping", &[1; 8]);
        stream.extend(encode_frame(MAGIC, "pong", &[1; 8]));
        let mut r = &stream[..];
        assert_eq!(read_frame(&mut r, MAGIC).unwrap().command, "ping");
        assert_eq!(read_frame(&mut r, MAGIC).unwrap().command, "pong");
        assert!(matches!(read_frame(&mut r, MAGIC), Err(FrameError::Io(_))));
    }

    #[test]
    fn a_lower_limit_refuses_larger_frames_before_reading_them() {
        let f = encode_frame(MAGIC, "block", &[0; 5000]);
        assert!(matches!(
            read_frame_limited(&mut &f[..], MAGIC, 4096),
            Err(FrameError::Oversized { len: 5000, max: 4096 })
        ));
        assert_eq!(read_frame_limited(&mut &f[..], MAGIC, 5000).unwrap().payload.len(), 5000);
        // A stream that ends inside the payload is an I/O error naming how far it got.
        let e = read_frame_limited(&mut &f[..100], MAGIC, 5000).unwrap_err();
        assert!(matches!(e, FrameError::Io(_)) && e.to_string().contains("76 bytes into a 5000-byte block"), "{e}");
    }

    #[test]
    fn each_malformation_is_named() {
        let good = encode_frame(MAGIC, "ping", &[5; 8]);
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(read(&b), Err(FrameError::Magic { .. })));
        for (at, v) in [(4, b'P'), (10, b'x'), (4, 0), (6, b'-')] {
            let mut b = good.clone();
            b[at] = v;
            assert!(matches!(read(&b), Err(FrameError::Command(_))), "byte {at} = {v}");
        }
        let mut b = good.clone();
        b[16..20].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        assert!(matches!(read(&b), Err(FrameError::Oversized { len, .. }) if len == MAX_PAYLOAD + 1));
        let mut b = good.clone();
        b[30] ^= 1;
        assert!(matches!(read(&b), Err(FrameError::Checksum { .. })));
        assert!(matches!(read(&good[..good.len() - 1]), Err(FrameError::Io(_))));
        assert!(matches!(read(&good[..10]), Err(FrameError::Io(_))));
    }

    #[test]
    fn random_bytes_never_panic_and_never_allocate_past_the_limit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        for _ in 0..20_000 {
            let n = rng.gen_range(0..64);
            let mut b: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) && b.len() >= 4 {
                b[..4].copy_from_slice(&MAGIC);
            }
            let _ = read(&b);
        }
    }
}
