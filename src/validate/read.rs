//! Streaming readers for bulk validation and `chain import`: Bitcoin Core `blk*.dat` files (or a
//! directory of them), raw concatenated 80-byte headers, and hex (one block or header per line).
//!
//! Readers only frame the input into records with their file and offset; decoding is
//! `primitives`' job. Memory is bounded by one record (a block is at most 4,000,000 bytes).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::primitives::lines::{read_line_bounded, LineError};

/// Largest block record accepted (Bitcoin's `MAX_BLOCK_SERIALIZED_SIZE`).
pub const MAX_BLOCK_BYTES: usize = 4_000_000;

/// Longest hex line accepted, in bytes before its newline: the hex of a largest block
/// ([`MAX_BLOCK_BYTES`] bytes, 8,000,000 digits) plus 256 bytes of whitespace around it. The limit
/// is checked while the line is read: a longer line is refused after `MAX_HEX_LINE_BYTES + 1` bytes.
pub const MAX_HEX_LINE_BYTES: usize = 2 * MAX_BLOCK_BYTES + 256;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Bitcoin Core blk files: magic, little-endian length, block.
    Blk,
    /// Raw concatenated 80-byte headers.
    Headers,
    /// Hex, one block or header per line.
    Hex,
}

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole block.
    Block,
    /// An 80-byte header alone.
    Header,
    /// A run of consecutive 80-byte headers (raw header files are read this way, without an
    /// allocation per header); header `i` is at `offset + 80 * i`.
    Headers,
}

/// Headers per [`Kind::Headers`] record.
pub const HEADERS_PER_RUN: usize = 4096;

impl Record {
    /// The 80-byte headers this record holds (one for a block or a header, many for a run), with
    /// their offsets.
    pub fn headers(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let step = if self.kind == Kind::Headers { 80 } else { self.bytes.len().max(1) };
        self.bytes.chunks(step).enumerate().map(move |(i, c)| (self.offset + (i * step) as u64, &c[..80.min(c.len())]))
    }

    /// How many headers it holds.
    pub fn header_count(&self) -> usize {
        if self.kind == Kind::Headers {
            self.bytes.len() / 80
        } else {
            1
        }
    }
}

/// One framed record.
#[derive(Clone, Debug)]
pub struct Record {
    /// The file it came from.
    pub file: Arc<PathBuf>,
    /// Its position in the reader's file list.
    pub file_index: u32,
    /// Byte offset of the record's data in the file (for hex: the line number, 1-based).
    pub offset: u64,
    /// Block or header.
    pub kind: Kind,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {at}: {why}")]
pub struct ReadError {
    /// The file.
    pub file: String,
    /// Where (`byte N` or `line N`).
    pub at: String,
    /// What is wrong.
    pub why: String,
}

fn err(file: &Path, at: String, why: impl Into<String>) -> ReadError {
    ReadError { file: file.display().to_string(), at, why: why.into() }
}

/// Expands the paths: a directory becomes its `blk*.dat` files in numeric order.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| err(p, "directory".into(), e.to_string()))?;
            let mut files: Vec<(u64, PathBuf)> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let num = name.strip_prefix("blk")?.strip_suffix(".dat")?.parse::<u64>().ok()?;
                    Some((num, e.path()))
                })
                .collect();
            if files.is_empty() {
                return Err(err(p, "directory".into(), "no blk*.dat files in it"));
            }
            files.sort();
            out.extend(files.into_iter().map(|(_, p)| p));
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads records from several files in turn.
pub struct Reader {
    files: std::vec::IntoIter<PathBuf>,
    format: Format,
    magic: [u8; 4],
    current: Option<(Arc<PathBuf>, Box<dyn BufRead + Send>, u64)>,
    index: u32,
    opened: u32,
    /// Bytes read so far (all files).
    pub bytes_read: u64,
    /// Spent record buffers handed back for reuse (see [`Reader::recycle`]).
    spare: Vec<Vec<u8>>,
}

impl Reader {
    /// A reader over `files` (already expanded) in `format`; `magic` frames blk records.
    pub fn new(files: Vec<PathBuf>, format: Format, magic: [u8; 4]) -> Reader {
        Reader {
            files: files.into_iter(),
            format,
            magic,
            current: None,
            index: 0,
            opened: 0,
            bytes_read: 0,
            spare: Vec::new(),
        }
    }

    /// A reader over one already open input `r`, named `name` in errors and records (a file read
    /// some other way, or bytes in memory: the fuzz targets frame records through this).
    pub fn from_reader(name: PathBuf, r: Box<dyn BufRead + Send>, format: Format, magic: [u8; 4]) -> Reader {
        let mut reader = Reader::new(Vec::new(), format, magic);
        reader.current = Some((Arc::new(name), r, 0));
        reader.opened = 1;
        reader
    }

    fn open_next(&mut self) -> Result<bool, ReadError> {
        let Some(p) = self.files.next() else { return Ok(false) };
        let f = File::open(&p).map_err(|e| err(&p, "open".into(), e.to_string()))?;
        self.index = self.opened;
        self.opened += 1;
        // Raw header runs are read straight into their record (a read at least as long as the
        // buffer bypasses it): one copy from the kernel, not two.
        let capacity = if self.format == Format::Headers { 64 << 10 } else { 1 << 20 };
        self.current = Some((Arc::new(p), Box::new(BufReader::with_capacity(capacity, f)), 0));
        Ok(true)
    }

    /// The next record, `Ok(None)` at the end of the last file.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let r = match self.format {
                Format::Blk => self.next_blk()?,
                Format::Headers => self.next_header()?,
                Format::Hex => self.next_hex()?,
            };
            match r {
                Some(rec) => return Ok(Some(rec)),
                None => self.current = None,
            }
        }
    }

    /// Hands back a spent record buffer: header runs are read into it again instead of into fresh
    /// memory (which would be zeroed and faulted in page by page).
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 16 && buf.capacity() >= 80 * HEADERS_PER_RUN {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Reads up to `buf.len()` bytes; returns how many (0 at end of file).
    fn fill(r: &mut dyn BufRead, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }

    fn next_blk(&mut self) -> Result<Option<Record>, ReadError> {
        let magic = self.magic;
        let file_index = self.index;
        let (path, r, off) = self.current.as_mut().expect("open");
        loop {
            // Bitcoin Core pre-allocates blk files with zeros: skip zero bytes between records.
            let buf = r.fill_buf().map_err(|e| err(path, format!("byte {off}"), e.to_string()))?;
            if buf.is_empty() {
                return Ok(None);
            }
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            if zeros == 0 {
                break;
            }
            r.consume(zeros);
            *off += zeros as u64;
        }
        let mut head = [0u8; 8];
        let n = Self::fill(r.as_mut(), &mut head).map_err(|e| err(path, format!("byte {off}"), e.to_string()))?;
        if n < 8 {
            return Err(err(path, format!("byte {off}"), format!("truncated record header ({n} of 8 bytes)")));
        }
        if head[..4] != magic {
            return Err(err(
                path,
                format!("byte {off}"),
                format!("expected network magic {} but found {}", hex::encode(magic), hex::encode(&head[..4])),
            ));
        }
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        if !(80..=MAX_BLOCK_BYTES).contains(&len) {
            return Err(err(
                path,
                format!("byte {}", *off + 4),
                format!("record length {len} is outside 80..={MAX_BLOCK_BYTES}"),
            ));
        }
        let mut bytes = vec![0u8; len];
        let got = Self::fill(r.as_mut(), &mut bytes).map_err(|e| err(path, format!("byte {off}"), e.to_string()))?;
        if got < len {
            return Err(err(path, format!("byte {}", *off + 8), format!("truncated block: {got} of {len} bytes")));
        }
        let rec = Record { file: path.clone(), file_index, offset: *off + 8, kind: Kind::Block, bytes };
        *off += 8 + len as u64;
        self.bytes_read += 8 + len as u64;
        Ok(Some(rec))
    }

    fn next_header(&mut self) -> Result<Option<Record>, ReadError> {
        let file_index = self.index;
        let (path, r, off) = self.current.as_mut().expect("open");
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.reserve_exact(80 * HEADERS_PER_RUN);
        // `read_to_end` reads into the spare capacity without zeroing it first.
        let n = r
            .as_mut()
            .take(80 * HEADERS_PER_RUN as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| err(path, format!("byte {off}"), e.to_string()))?;
        if n == 0 {
            return Ok(None);
        }
        if n % 80 != 0 {
            let at = *off + (n - n % 80) as u64;
            return Err(err(
                path,
                format!("byte {at}"),
                format!("truncated header: {} of 80 bytes at the end of the file", n % 80),
            ));
        }
        let rec = Record { file: path.clone(), file_index, offset: *off, kind: Kind::Headers, bytes };
        *off += n as u64;
        self.bytes_read += n as u64;
        Ok(Some(rec))
    }

    fn next_hex(&mut self) -> Result<Option<Record>, ReadError> {
        let file_index = self.index;
        let (path, r, line_no) = self.current.as_mut().expect("open");
        let mut line = Vec::new();
        loop {
            let at = *line_no + 1;
            let n = match read_line_bounded(r.as_mut(), &mut line, MAX_HEX_LINE_BYTES) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(None),
                Err(LineError::TooLong { limit }) => {
                    return Err(err(
                        path,
                        format!("line {at}"),
                        format!(
                            "line longer than {limit} bytes (the hex of a largest block, {MAX_BLOCK_BYTES} bytes, \
                             plus whitespace); refused after reading {} bytes of it",
                            limit + 1
                        ),
                    ))
                }
                Err(LineError::Io(e)) => return Err(err(path, format!("line {at}"), e.to_string())),
            };
            *line_no = at;
            self.bytes_read += n as u64;
            let t = line.trim_ascii();
            if t.is_empty() || t[0] == b'#' {
                continue;
            }
            if t.len() > 2 * MAX_BLOCK_BYTES {
                return Err(err(path, format!("line {line_no}"), "line longer than the largest block"));
            }
            let bytes = hex::decode(t).map_err(|e| err(path, format!("line {line_no}"), format!("not hex: {e}")))?;
            if bytes.len() < 80 {
                return Err(err(
                    path,
                    format!("line {line_no}"),
                    format!("{} bytes, shorter than an 80-byte header", bytes.len()),
                ));
            }
            let kind = if bytes.len() == 80 { Kind::Header } else { Kind::Block };
            return Ok(Some(Record { file: path.clone(), file_index, offset: *line_no, kind, bytes }));
        }
    }
}

/// For tests: the block records of `../shared/data/bitcoin/<rel>` (mainnet framing), or `None`
/// with a printed reason when the shared data is not beside the checkout.
#[cfg(test)]
pub(crate) fn shared_blk_records(rel: &str) -> Option<Vec<Vec<u8>>> {
    let p = PathBuf::from(format!("{}/../shared/data/bitcoin/{rel}", env!("CARGO_MANIFEST_DIR")));
    if !p.exists() {
        eprintln!("skipping: {} not present", p.display());
        return None;
    }
    let mut r = Reader::new(vec![p], Format::Blk, [0xf9, 0xbe, 0xb4, 0xd9]);
    Some(std::iter::from_fn(|| r.next_record().expect("the shared data reads")).map(|rec| rec.bytes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, data: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("powkit-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    const MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];

    fn frame(block: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&(block.len() as u32).to_le_bytes());
        v.extend_from_slice(block);
        v
    }

    #[test]
    fn blk_records_zero_padding_and_errors() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 90];
        let mut data = frame(&a);
        data.extend_from_slice(&[0u8; 37]);
        data.extend(frame(&b));
        data.extend_from_slice(&[0u8; 4096]);
        let p = tmp("blk00000.dat", &data);
        let mut r = Reader::new(vec![p.clone()], Format::Blk, MAGIC);
        let r1 = r.next_record().unwrap().unwrap();
        assert_eq!((r1.offset, r1.bytes.clone()), (8, a));
        let r2 = r.next_record().unwrap().unwrap();
        assert_eq!((r2.offset, r2.bytes.clone()), (108 + 37 + 8, b));
        assert!(r.next_record().unwrap().is_none());
        // Wrong magic, truncated block, absurd length: errors naming the offset.
        let mut bad = frame(&[3u8; 100]);
        bad[0] = 0x0b;
        let e = Reader::new(vec![tmp("bad1", &bad)], Format::Blk, MAGIC).next_record().unwrap_err();
        assert!(e.to_string().contains("byte 0") && e.to_string().contains("magic"), "{e}");
        let cut = &frame(&[3u8; 100])[..50];
        let e = Reader::new(vec![tmp("bad2", cut)], Format::Blk, MAGIC).next_record().unwrap_err();
        assert!(e.to_string().contains("truncated block: 42 of 100"), "{e}");
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = Reader::new(vec![tmp("bad3", &huge)], Format::Blk, MAGIC).next_record().unwrap_err();
        assert!(e.to_string().contains("byte 4") && e.to_string().contains("outside"), "{e}");
    }

    #[test]
    fn directory_in_numeric_order_headers_and_hex() {
        let dir = std::env::temp_dir().join(format!("powkit-import-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, n) in [(10, 3u8), (2, 2), (1, 1)] {
            std::fs::write(dir.join(format!("blk{i:05}.dat")), frame(&[n; 80])).unwrap();
        }
        std::fs::write(dir.join("rev00000.dat"), b"ignored").unwrap();
        let files = expand_paths(std::slice::from_ref(&dir)).unwrap();
        let mut r = Reader::new(files, Format::Blk, MAGIC);
        let order: Vec<u8> = std::iter::from_fn(|| r.next_record().unwrap()).map(|x| x.bytes[0]).collect();
        assert_eq!(order, vec![1, 2, 3]);
        let p = tmp("headers.bin", &[[7u8; 80], [8u8; 80]].concat());
        let mut r = Reader::new(vec![p], Format::Headers, MAGIC);
        let run = r.next_record().unwrap().unwrap();
        assert_eq!(run.header_count(), 2);
        let hs: Vec<(u64, u8)> = run.headers().map(|(o, h)| (o, h[0])).collect();
        assert_eq!(hs, vec![(0, 7), (80, 8)]);
        assert!(r.next_record().unwrap().is_none());
        // Runs of HEADERS_PER_RUN, offsets continuing across them.
        let many: Vec<u8> = (0..HEADERS_PER_RUN + 3).flat_map(|i| [(i % 251) as u8; 80]).collect();
        let mut r = Reader::new(vec![tmp("many.bin", &many)], Format::Headers, MAGIC);
        assert_eq!(r.next_record().unwrap().unwrap().header_count(), HEADERS_PER_RUN);
        let second = r.next_record().unwrap().unwrap();
        assert_eq!((second.offset, second.header_count()), (80 * HEADERS_PER_RUN as u64, 3));
        let mut e = Reader::new(vec![tmp("short.bin", &[1u8; 90])], Format::Headers, MAGIC);
        let msg = e.next_record().unwrap_err().to_string();
        assert!(msg.contains("truncated header: 10 of 80") && msg.contains("byte 80"), "{msg}");
        let p = tmp("lines.hex", format!("# comment\n{}\n\n{}\nzz\n", "00".repeat(80), "11".repeat(120)).as_bytes());
        let mut r = Reader::new(vec![p], Format::Hex, MAGIC);
        let a = r.next_record().unwrap().unwrap();
        assert_eq!((a.offset, a.kind), (2, Kind::Header));
        let b = r.next_record().unwrap().unwrap();
        assert_eq!((b.offset, b.kind), (4, Kind::Block));
        assert!(r.next_record().unwrap_err().to_string().contains("line 5"));
    }

    /// Issue 12, fault 9: a hex line is refused once it passes its limit, with the file, the line
    /// and the limit named, after reading `limit + 1` bytes of it (an endless line here).
    #[test]
    fn an_endless_hex_line_is_refused_at_its_limit() {
        let endless = std::io::repeat(b'0').take(1 << 40);
        let input = std::io::Cursor::new(b"# one comment line\n".to_vec()).chain(endless);
        let r = Box::new(std::io::BufReader::new(input));
        let mut reader = Reader::from_reader(PathBuf::from("endless.hex"), r, Format::Hex, MAGIC);
        let e = reader.next_record().unwrap_err().to_string();
        assert!(e.starts_with("endless.hex: line 2: line longer than 8000256 bytes"), "{e}");
        assert_eq!(reader.bytes_read, 19, "the endless line is not counted as read");
    }
}
