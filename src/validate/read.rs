//! Streaming readers for bulk validation and `chain import`: Bitcoin Core `blk*.dat` files (or a
//! directory of them), raw concatenated 80-byte headers, and hex (one block or header per line).
//!
//! Readers only frame the input into records with their file and offset; decoding is
//! `primitives`' job. Memory is bounded by one record (a block is at most 4,000,000 bytes).
//!
//! blk files are framed as Bitcoin Core's `-reindex`/`-loadblock` reader frames them
//! (`validation.cpp`, `ChainstateManager::LoadExternalBlockFile`): bytes that cannot be framed (no
//! network magic, a length outside `80..=MAX_BLOCK_SERIALIZED_SIZE`, a record cut off by the end
//! of the file) are skipped by scanning forward to the next magic, and each skipped run is
//! recorded as a [`Skip`]. Obfuscated files (Core 28+, `blocks/xor.dat`) are read through their
//! key ([`super::xor`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::xor::{XorKey, XorReader, KEY_FILE};
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

/// Bitcoin Core's networks as its data directory lays them out: the network magic, the network's
/// subdirectory of the data directory (`""` for mainnet) and its name. Source: Bitcoin Core
/// `kernel/chainparams.cpp` (`pchMessageStart`; signet: the default signet's) and
/// `chainparamsbase.cpp` (`CreateBaseChainParams`: the data directory names).
pub const CORE_NETWORKS: [([u8; 4], &str, &str); 5] = [
    ([0xf9, 0xbe, 0xb4, 0xd9], "", "bitcoin mainnet"),
    ([0x0b, 0x11, 0x09, 0x07], "testnet3", "bitcoin testnet3"),
    ([0x1c, 0x16, 0x3f, 0x28], "testnet4", "bitcoin testnet4"),
    ([0x0a, 0x03, 0xcf, 0x40], "signet", "bitcoin signet"),
    ([0xfa, 0xbf, 0xb5, 0xda], "regtest", "bitcoin regtest"),
];

/// The number of a Core block file name, `blk?????.dat` (digits only), else `None`.
/// The obfuscation key file `p` is read through: `given` (`--xor-key`) when there is one, else the
/// `xor.dat` beside a `blk?????.dat` (a Bitcoin Core 28+ blocks directory), else none; an all-zero
/// key is none. The reader and the validator's block re-reads both ask here.
///
/// # Errors
/// The `xor.dat` cannot be read or is not 8 bytes.
pub fn file_key(p: &Path, given: Option<XorKey>) -> Result<Option<XorKey>, ReadError> {
    let key = match given {
        Some(k) => Some(k),
        None if p.file_name().and_then(blk_number).is_some() => {
            let kf = p.parent().unwrap_or(Path::new("")).join(KEY_FILE);
            if kf.exists() {
                Some(XorKey::from_file(&kf).map_err(|e| err(&kf, "obfuscation key".into(), e))?)
            } else {
                None
            }
        }
        None => None,
    };
    Ok(key.filter(|k| !k.is_zero()))
}

fn blk_number(name: &std::ffi::OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_prefix("blk")?.strip_suffix(".dat")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The `blk?????.dat` files of `dir`, in number order.
fn blk_files(dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| err(dir, "directory".into(), e.to_string()))?;
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for e in rd {
        let e = e.map_err(|e| err(dir, "directory".into(), e.to_string()))?;
        if let Some(n) = blk_number(&e.file_name()) {
            files.push((n, e.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Expands the paths, in order: a file stays itself; a directory becomes its `blk?????.dat` files
/// in number order (`rev*.dat`, `index/`, `xor.dat` and anything else are ignored). A directory
/// without blk files is taken as a Bitcoin Core data directory: its blocks directory for the
/// network whose magic is `magic` (`DIR/blocks` for mainnet, `DIR/regtest/blocks`,
/// `DIR/testnet3/blocks`, `DIR/testnet4/blocks`, `DIR/signet/blocks`) is read instead.
///
/// # Errors
/// A directory that cannot be listed, or one with no blk files in it or in its blocks directory.
pub fn expand_paths(paths: &[PathBuf], magic: [u8; 4]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut files = blk_files(p)?;
        if files.is_empty() && !p.join(KEY_FILE).exists() {
            if let Some((_, sub, _)) = CORE_NETWORKS.iter().find(|n| n.0 == magic) {
                let blocks = p.join(sub).join("blocks");
                if blocks.is_dir() {
                    files = blk_files(&blocks)?;
                }
            }
        }
        if files.is_empty() {
            let also = match CORE_NETWORKS.iter().find(|n| n.0 == magic) {
                Some((_, sub, _)) => format!(", nor in {}", p.join(sub).join("blocks").display()),
                None => String::new(),
            };
            return Err(err(p, "directory".into(), format!("no blk*.dat files in it{also}")));
        }
        out.extend(files);
    }
    Ok(out)
}

/// Skips listed one by one in a report (the count and bytes cover all of them).
pub const SKIPS_LISTED: usize = 100;

/// Why bytes of a blk file were skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipWhy {
    /// Zero bytes only (Core pre-allocates blk files in 16 MiB chunks of zeros, and its last file
    /// ends in them).
    ZeroPadding,
    /// Bytes that do not start with the network magic.
    NoMagic,
    /// The network magic followed by a length outside `80..=MAX_BLOCK_BYTES`.
    BadLength(u32),
    /// A record whose length runs past the end of the file (`have` of `len` bytes there): the
    /// block Core was writing when it stopped.
    CutOff {
        /// The record's length.
        len: u32,
        /// Bytes of it in the file.
        have: u32,
    },
}

impl std::fmt::Display for SkipWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipWhy::ZeroPadding => f.write_str("zero padding"),
            SkipWhy::NoMagic => f.write_str("no network magic"),
            SkipWhy::BadLength(len) => {
                write!(f, "network magic with a record length of {len}, outside 80..={MAX_BLOCK_BYTES}")
            }
            SkipWhy::CutOff { len, have } => {
                write!(f, "record cut off by the end of the file ({have} of {len} bytes)")
            }
        }
    }
}

impl serde::Serialize for SkipWhy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A run of blk-file bytes that could not be framed and was skipped (as Bitcoin Core's reader
/// skips it): from `offset`, `bytes` long, up to the next record or the end of the file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    /// The file.
    pub file: String,
    /// Byte offset where the skipped run begins.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// What was found at `offset`.
    pub why: SkipWhy,
}

/// Everything a reader skipped: totals and the first [`SKIPS_LISTED`] skips (the `skipped` object
/// of `powkit validate --json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Skipped runs.
    pub count: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// The first of them, in input order.
    pub first: Vec<Skip>,
}

impl Skipped {
    fn add(&mut self, s: Skip) {
        self.count += 1;
        self.bytes += s.bytes;
        if self.first.len() < SKIPS_LISTED {
            self.first.push(s);
        }
    }
}

/// A read window over a blk file: framing peeks at up to 8 bytes and may step back into what it
/// has read (after a cut-off record), as Core's `BufferedFile` does.
struct Window {
    src: Box<dyn Read + Send>,
    /// Bytes read at a time ([`WINDOW_BYTES`]; tests make it small).
    cap: usize,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

/// Bytes a [`Window`] reads at a time.
const WINDOW_BYTES: usize = 1 << 20;

impl Window {
    fn new(src: Box<dyn Read + Send>) -> Window {
        Window { src, cap: WINDOW_BYTES, buf: Vec::new(), pos: 0, end: 0, eof: false }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Makes at least `n` (at most `cap`) bytes available, fewer only when the input ends first;
    /// returns how many are.
    fn fill_to(&mut self, n: usize) -> std::io::Result<usize> {
        while self.end - self.pos < n && !self.eof {
            if self.buf.len() < self.cap {
                self.buf.resize(self.cap, 0);
            }
            if self.buf.len() - self.pos < n || self.end == self.buf.len() {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.pos)
    }

    /// Fills `out`: first from the window, the rest straight from the input. Returns the bytes
    /// filled, fewer than `out.len()` only at the end of the input.
    fn read_up_to(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        while n < out.len() && !self.eof {
            match self.src.read(&mut out[n..]) {
                Ok(0) => self.eof = true,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Makes `rest` the whole remaining input (the input has ended: the bytes after a cut-off
    /// record's first one are scanned again).
    fn rewind_to(&mut self, rest: Vec<u8>) {
        self.end = rest.len();
        self.buf = rest;
        self.pos = 0;
        self.eof = true;
    }
}

/// An open file: its name, its bytes and the offset reached.
struct Open {
    path: Arc<PathBuf>,
    src: Source,
    off: u64,
    /// blk files: whether a record has been framed in it yet.
    framed: bool,
    /// blk files: whether it starts with bytes (not zeros) that are not the magic.
    starts_unframed: bool,
    /// The key it is read through (all zeros: none), to tell Core's zero padding.
    key: XorKey,
}

impl Open {
    fn new(path: PathBuf, src: Source, key: Option<XorKey>) -> Open {
        let key = key.unwrap_or_default();
        Open { path: Arc::new(path), src, off: 0, framed: false, starts_unframed: false, key }
    }
}

/// How an open file is read: blk files through a framing window, the line and header formats
/// through a buffered reader.
enum Source {
    Blk(Window),
    Buffered(Box<dyn BufRead + Send>),
}

/// Reads records from several files in turn.
pub struct Reader {
    files: std::vec::IntoIter<PathBuf>,
    format: Format,
    magic: [u8; 4],
    xor_key: Option<XorKey>,
    current: Option<Open>,
    index: u32,
    opened: u32,
    /// Bytes read so far (all files; skipped bytes included).
    pub bytes_read: u64,
    /// Spent record buffers handed back for reuse (see [`Reader::recycle`]).
    spare: Vec<Vec<u8>>,
    skipped: Skipped,
}

impl Reader {
    /// A reader over `files` (already expanded) in `format`; `magic` frames blk records. A file
    /// named `blk?????.dat` beside a `xor.dat` (a Bitcoin Core 28+ blocks directory) is read
    /// through that key unless [`Reader::with_xor_key`] gives one.
    pub fn new(files: Vec<PathBuf>, format: Format, magic: [u8; 4]) -> Reader {
        Reader {
            files: files.into_iter(),
            format,
            magic,
            xor_key: None,
            current: None,
            index: 0,
            opened: 0,
            bytes_read: 0,
            spare: Vec::new(),
            skipped: Skipped::default(),
        }
    }

    /// Reads every file through `key` (when `Some`), whatever its name and whatever `xor.dat`
    /// lies beside it; an all-zero key reads the files as they are.
    pub fn with_xor_key(mut self, key: Option<XorKey>) -> Reader {
        self.xor_key = key;
        self
    }

    /// A reader over one already open input `r`, named `name` in errors and records (a file read
    /// some other way, or bytes in memory: the fuzz targets frame records through this).
    pub fn from_reader(name: PathBuf, r: Box<dyn BufRead + Send>, format: Format, magic: [u8; 4]) -> Reader {
        let mut reader = Reader::new(Vec::new(), format, magic);
        let src = match format {
            Format::Blk => Source::Blk(Window::new(r)),
            _ => Source::Buffered(r),
        };
        reader.current = Some(Open::new(name, src, None));
        reader.opened = 1;
        reader
    }

    /// The skipped runs of blk bytes so far: the first [`SKIPS_LISTED`] of them.
    pub fn skips(&self) -> &[Skip] {
        &self.skipped.first
    }

    /// Everything skipped so far: count, bytes and the first [`SKIPS_LISTED`] runs.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The key `p` is read through (see [`file_key`]).
    fn key_for(&self, p: &Path) -> Result<Option<XorKey>, ReadError> {
        file_key(p, self.xor_key)
    }

    fn open_next(&mut self) -> Result<bool, ReadError> {
        let Some(p) = self.files.next() else { return Ok(false) };
        let key = self.key_for(&p)?;
        let f = File::open(&p).map_err(|e| err(&p, "open".into(), e.to_string()))?;
        let f: Box<dyn Read + Send> = match key {
            Some(k) => Box::new(XorReader::new(f, k)),
            None => Box::new(f),
        };
        self.index = self.opened;
        self.opened += 1;
        let src = match self.format {
            Format::Blk => Source::Blk(Window::new(f)),
            // Raw header runs are read straight into their record (a read at least as long as
            // the buffer bypasses it): one copy from the kernel, not two.
            Format::Headers => Source::Buffered(Box::new(BufReader::with_capacity(64 << 10, f))),
            Format::Hex => Source::Buffered(Box::new(BufReader::with_capacity(1 << 20, f))),
        };
        self.current = Some(Open::new(p, src, key));
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

    /// The next blk record, framed as Bitcoin Core's `LoadExternalBlockFile` frames one: at the
    /// network magic followed by a length in `80..=MAX_BLOCK_BYTES` and that many bytes. Anything
    /// else is skipped from one byte further on, scanning for the magic's first byte (Core's
    /// `FindByte`), and recorded as one [`Skip`] per run up to the next record or the end of the
    /// file; a record cut off by the end of the file is skipped the same way.
    ///
    /// Errors (where Core would load nothing without a word): I/O errors; a file that starts with
    /// another Bitcoin network's magic (the wrong `--chain`); a file with no record at all that
    /// starts with bytes other than the magic or zeros (not a blk file of this chain, or an
    /// obfuscated one read without its key, or with the wrong one).
    fn next_blk(&mut self) -> Result<Option<Record>, ReadError> {
        let magic = self.magic;
        let file_index = self.index;
        let Open { path, src, off, framed, starts_unframed, key } = self.current.as_mut().expect("open");
        let Source::Blk(w) = src else { unreachable!("blk files are read through a window") };
        // The run being skipped: where it began, why, and whether it is zeros only.
        let mut skip: Option<(u64, SkipWhy, bool)> = None;
        let mut end_skip = |skip: Option<(u64, SkipWhy, bool)>, at: u64, bytes_read: &mut u64| {
            if let Some((start, why, zeros)) = skip {
                let why = if zeros { SkipWhy::ZeroPadding } else { why };
                *bytes_read += at - start;
                *starts_unframed |= start == 0 && why == SkipWhy::NoMagic;
                self.skipped.add(Skip { file: path.display().to_string(), offset: start, bytes: at - start, why });
            }
        };
        // The first 8 bytes of the file, for the message when nothing in it can be framed.
        let mut first = [0u8; 8];
        loop {
            let n = w.fill_to(8).map_err(|e| err(path, format!("byte {off}"), e.to_string()))?;
            if n == 0 {
                end_skip(skip, *off, &mut self.bytes_read);
                if *starts_unframed && !*framed {
                    return Err(err(
                        path,
                        "byte 0".into(),
                        format!(
                            "no block record in this file's {off} bytes: it does not start with the network magic {} \
                             (it starts with {}). Not a blk file of this chain, or an obfuscated one (Bitcoin Core \
                             28+): give its blocks directory (with xor.dat) or --xor-key with the right key",
                            hex::encode(magic),
                            hex::encode(first)
                        ),
                    ));
                }
                return Ok(None);
            }
            let a = w.avail();
            let len = if n >= 8 { u32::from_le_bytes(a[4..8].try_into().expect("4 bytes")) } else { 0 };
            let why = if n < 8 || a[..4] != magic {
                if *off == 0 {
                    first[..n.min(8)].copy_from_slice(&a[..n.min(8)]);
                }
                if *off == 0 && n >= 4 {
                    if let Some((m, _, name)) = CORE_NETWORKS.iter().find(|(m, _, _)| a[..4] == *m) {
                        return Err(err(
                            path,
                            "byte 0".into(),
                            format!(
                                "this file holds {name} blocks (network magic {}), not this chain's (magic {}): \
                                 check --chain",
                                hex::encode(m),
                                hex::encode(magic)
                            ),
                        ));
                    }
                }
                Some(SkipWhy::NoMagic)
            } else if !(80..=MAX_BLOCK_BYTES).contains(&(len as usize)) {
                Some(SkipWhy::BadLength(len))
            } else {
                None
            };
            if let Some(why) = why {
                // Step one byte on, then to the next byte that could start the magic.
                let k = 1 + a[1..].iter().position(|&b| b == magic[0]).unwrap_or(a.len() - 1);
                let zeros = key.stored_as_zeros(&a[..k], *off);
                match &mut skip {
                    None => skip = Some((*off, why, zeros)),
                    Some((_, _, z)) => *z &= zeros,
                }
                w.pos += k;
                *off += k as u64;
                continue;
            }
            let start = *off;
            let head: [u8; 8] = a[..8].try_into().expect("8 bytes");
            w.pos += 8;
            let mut bytes = vec![0u8; len as usize];
            let got = w.read_up_to(&mut bytes).map_err(|e| err(path, format!("byte {}", start + 8), e.to_string()))?;
            if got < bytes.len() {
                // Cut off by the end of the file: scan again from the byte after the magic's first.
                let why = SkipWhy::CutOff { len, have: got as u32 };
                match &mut skip {
                    None => skip = Some((start, why, false)),
                    Some((_, _, z)) => *z = false,
                }
                let mut rest = head[1..].to_vec();
                rest.extend_from_slice(&bytes[..got]);
                w.rewind_to(rest);
                *off = start + 1;
                continue;
            }
            end_skip(skip, start, &mut self.bytes_read);
            *framed = true;
            *off = start + 8 + len as u64;
            self.bytes_read += 8 + len as u64;
            return Ok(Some(Record { file: path.clone(), file_index, offset: start + 8, kind: Kind::Block, bytes }));
        }
    }

    fn next_header(&mut self) -> Result<Option<Record>, ReadError> {
        let file_index = self.index;
        let Open { path, src, off, .. } = self.current.as_mut().expect("open");
        let Source::Buffered(r) = src else { unreachable!("header files are read buffered") };
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
        let Open { path, src, off: line_no, .. } = self.current.as_mut().expect("open");
        let Source::Buffered(r) = src else { unreachable!("hex files are read buffered") };
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

    fn all(r: &mut Reader) -> Vec<(u64, Vec<u8>)> {
        std::iter::from_fn(|| r.next_record().unwrap()).map(|x| (x.offset, x.bytes)).collect()
    }

    fn skips(r: &Reader) -> Vec<(u64, u64, SkipWhy)> {
        r.skips().iter().map(|s| (s.offset, s.bytes, s.why)).collect()
    }

    /// Bytes in memory through the blk framer, read in pieces of 1..=13 bytes through a window of
    /// `cap` bytes (so magics and lengths fall across reads and window refills).
    fn framer(data: &[u8], cap: usize) -> Reader {
        struct Odd(std::io::Cursor<Vec<u8>>, usize);
        impl Read for Odd {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = self.1 % 13 + 1;
                let n = self.1.min(buf.len());
                self.0.read(&mut buf[..n])
            }
        }
        let src = Box::new(BufReader::with_capacity(1, Odd(std::io::Cursor::new(data.to_vec()), 0)));
        let mut r = Reader::from_reader(PathBuf::from("mem.blk"), src, Format::Blk, MAGIC);
        if let Some(Open { src: Source::Blk(w), .. }) = r.current.as_mut() {
            w.cap = cap;
        }
        r
    }

    /// Issue 13, fault 3: zero padding between and after records is a recorded skip (it was
    /// skipped silently); junk, a false magic (bad length) and a cut-off last record are skipped
    /// as Core's `LoadExternalBlockFile` skips them, each one recorded, not an error.
    #[test]
    fn blk_zero_padding_junk_and_cut_off_records_are_skipped_and_recorded() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 90];
        let mut data = frame(&a);
        data.extend_from_slice(&[0u8; 37]);
        data.extend(frame(&b));
        data.extend_from_slice(&[0u8; 4096]);
        let p = tmp("blk00000.dat", &data);
        let mut r = Reader::new(vec![p.clone()], Format::Blk, MAGIC);
        assert_eq!(all(&mut r), vec![(8, a.clone()), (108 + 37 + 8, b.clone())]);
        let end = 108 + 37 + 98;
        assert_eq!(skips(&r), vec![(108, 37, SkipWhy::ZeroPadding), (end, 4096, SkipWhy::ZeroPadding)]);
        assert_eq!(r.skipped().bytes, 37 + 4096);
        assert_eq!(r.bytes_read, data.len() as u64);
        // Junk with a false magic (length 0xffffffff), a magic cut short and a length under 80,
        // between two records; then a record cut off by the end of the file.
        let mut data = frame(&a);
        let junk_at = data.len() as u64;
        data.extend_from_slice(b"\xde\xad");
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&MAGIC[..3]);
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&79u32.to_le_bytes());
        let b_at = data.len() as u64;
        data.extend(frame(&b));
        let cut_at = data.len() as u64;
        data.extend_from_slice(&frame(&[3u8; 100])[..50]);
        for cap in [8, 9, 11, 64, WINDOW_BYTES] {
            let mut r = framer(&data, cap);
            assert_eq!(all(&mut r), vec![(8, a.clone()), (b_at + 8, b.clone())], "window {cap}");
            let want =
                vec![(junk_at, b_at - junk_at, SkipWhy::NoMagic), (cut_at, 50, SkipWhy::CutOff { len: 100, have: 42 })];
            assert_eq!(skips(&r), want, "window {cap}");
            assert_eq!(r.bytes_read, data.len() as u64);
        }
        // A false magic first: the run is named by it.
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend(frame(&a));
        let mut r = framer(&data, 64);
        assert_eq!(all(&mut r), vec![(16, a.clone())]);
        assert_eq!(skips(&r), vec![(0, 8, SkipWhy::BadLength(u32::MAX))]);
    }

    /// After a cut-off record Core scans again from the byte after its magic's first: a whole
    /// record inside the cut-off one's bytes is read (`LoadExternalBlockFile` rewinds to
    /// `nRewind`, one past the magic it found).
    #[test]
    fn a_record_inside_a_cut_off_one_is_found_by_scanning_again() {
        let inner = frame(&[5u8; 100]);
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&1000u32.to_le_bytes());
        data.extend_from_slice(&inner);
        let mut r = framer(&data, 64);
        assert_eq!(all(&mut r), vec![(16, vec![5u8; 100])]);
        assert_eq!(skips(&r), vec![(0, 8, SkipWhy::CutOff { len: 1000, have: 108 })]);
    }

    /// Random junk of random lengths (with the magic's first byte planted often) between random
    /// records, read through windows of several sizes: every record is found at its offset and
    /// every junk run is one skip of its exact length.
    #[test]
    fn random_junk_between_records_is_skipped_exactly() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..40 {
            let mut data = Vec::new();
            let (mut want_recs, mut want_skips) = (Vec::new(), Vec::new());
            for i in 0..8 {
                let junk_len = (rnd() % 40) as usize * usize::from(rnd() % 3 != 0);
                let junk: Vec<u8> = (0..junk_len)
                    .map(|_| match rnd() % 4 {
                        0 => MAGIC[0],
                        1 => MAGIC[1],
                        _ => 1 + (rnd() % 255) as u8,
                    })
                    .collect();
                if junk_len > 0 {
                    want_skips.push((data.len() as u64, junk_len as u64, SkipWhy::NoMagic));
                }
                data.extend_from_slice(&junk);
                let rec: Vec<u8> = (0..80 + rnd() % 200).map(|j| (j as u8) ^ (i as u8)).collect();
                want_recs.push((data.len() as u64 + 8, rec.clone()));
                data.extend(frame(&rec));
            }
            for cap in [8, 10, 13, 100, 4096] {
                let mut r = framer(&data, cap);
                assert_eq!(all(&mut r), want_recs, "round {round}, window {cap}");
                assert_eq!(skips(&r), want_skips, "round {round}, window {cap}");
            }
        }
    }

    /// Clear errors where Core would load nothing without a word: another network's blk file,
    /// and a file that frames no record and starts with neither the magic nor zeros (an
    /// obfuscated file read without its key). A file of zeros only is padding, not an error.
    #[test]
    fn a_file_of_another_network_or_of_no_record_is_an_error() {
        let mut regtest = vec![0xfa, 0xbf, 0xb5, 0xda];
        regtest.extend_from_slice(&100u32.to_le_bytes());
        regtest.extend_from_slice(&[0u8; 100]);
        let e = framer(&regtest, 64).next_record().unwrap_err().to_string();
        assert!(e.contains("byte 0") && e.contains("bitcoin regtest blocks") && e.contains("--chain"), "{e}");
        let mut obfuscated = frame(&[1u8; 100]);
        XorKey(*b"12345678").apply(&mut obfuscated, 0);
        let e = framer(&obfuscated, 64).next_record().unwrap_err().to_string();
        assert!(e.contains("no block record in this file's 108 bytes") && e.contains("--xor-key"), "{e}");
        let mut r = framer(&[0u8; 1000], 64);
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(skips(&r), vec![(0, 1000, SkipWhy::ZeroPadding)]);
        // Only a cut-off record (Core stopped while writing a new file's first block): a skip.
        let mut r = framer(&frame(&[1u8; 100])[..60], 64);
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(skips(&r), vec![(0, 60, SkipWhy::CutOff { len: 100, have: 52 })]);
    }

    /// Issue 13, fault 4: a Core 28+ blocks directory (`xor.dat` beside `blk?????.dat`) is read
    /// through its key, each file from its own offset 0; a data directory stands for its blocks
    /// directory of the chain; an explicit key wins over `xor.dat`.
    #[test]
    fn obfuscated_blocks_directories_and_data_directories() {
        let key = XorKey([0x5a, 0x01, 0xc3, 0x00, 0xff, 0x10, 0x77, 0x80]);
        let datadir = std::env::temp_dir().join(format!("powkit-read-datadir-{}", std::process::id()));
        let blocks = datadir.join("regtest").join("blocks");
        std::fs::create_dir_all(blocks.join("index")).unwrap();
        let regtest = [0xfa, 0xbf, 0xb5, 0xda];
        let rec = |n: u8, len: usize| {
            let mut v = regtest.to_vec();
            v.extend_from_slice(&(len as u32).to_le_bytes());
            v.extend(std::iter::repeat_n(n, len));
            v
        };
        for (i, recs) in [(0, vec![rec(1, 81), rec(2, 90)]), (1, vec![rec(3, 85)])] {
            // Records obfuscated, then Core's pre-allocated zeros (written plain).
            let mut bytes = recs.concat();
            key.apply(&mut bytes, 0);
            bytes.extend_from_slice(&[0u8; 13]);
            std::fs::write(blocks.join(format!("blk{i:05}.dat")), bytes).unwrap();
        }
        std::fs::write(blocks.join("rev00000.dat"), b"undo data, ignored").unwrap();
        std::fs::write(blocks.join("xor.dat"), key.0).unwrap();
        for given in [&datadir, &blocks] {
            let files = expand_paths(std::slice::from_ref(given), regtest).unwrap();
            assert_eq!(files, vec![blocks.join("blk00000.dat"), blocks.join("blk00001.dat")]);
            let mut r = Reader::new(files, Format::Blk, regtest);
            let got: Vec<(u64, u8, usize)> = std::iter::from_fn(|| r.next_record().unwrap())
                .map(|x| (x.offset, x.bytes[0], x.bytes.len()))
                .collect();
            assert_eq!(got, vec![(8, 1, 81), (97, 2, 90), (8, 3, 85)]);
            assert_eq!(r.skipped().count, 2, "the zero padding at the end of each file");
            assert!(r.skips().iter().all(|s| s.why == SkipWhy::ZeroPadding && s.bytes == 13));
        }
        // Mainnet's blocks directory is DATADIR/blocks: none here.
        let e = expand_paths(std::slice::from_ref(&datadir), MAGIC).unwrap_err().to_string();
        assert!(e.contains("no blk*.dat files in it, nor in") && e.contains("blocks"), "{e}");
        // A loose copy: plain without a key (a clear error), read with the key given.
        let loose = tmp("loose-blk.dat", &std::fs::read(blocks.join("blk00001.dat")).unwrap());
        let e = Reader::new(vec![loose.clone()], Format::Blk, regtest).next_record().unwrap_err();
        assert!(e.to_string().contains("no block record"), "{e}");
        let mut r = Reader::new(vec![loose], Format::Blk, regtest).with_xor_key(Some(key));
        assert_eq!(r.next_record().unwrap().unwrap().bytes, vec![3u8; 85]);
        // The key given wins over xor.dat (here: a zero key reads the files as stored).
        let mut r =
            Reader::new(vec![blocks.join("blk00000.dat")], Format::Blk, regtest).with_xor_key(Some(XorKey::default()));
        assert!(r.next_record().unwrap_err().to_string().contains("no block record"));
        // A key file of the wrong size is an error naming it.
        std::fs::write(blocks.join("xor.dat"), [1u8; 9]).unwrap();
        let e = Reader::new(vec![blocks.join("blk00000.dat")], Format::Blk, regtest).next_record().unwrap_err();
        assert!(e.to_string().contains("xor.dat") && e.to_string().contains("9 bytes"), "{e}");
    }

    #[test]
    fn directory_in_numeric_order_headers_and_hex() {
        let dir = std::env::temp_dir().join(format!("powkit-import-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, n) in [(10, 3u8), (2, 2), (1, 1)] {
            std::fs::write(dir.join(format!("blk{i:05}.dat")), frame(&[n; 80])).unwrap();
        }
        std::fs::write(dir.join("rev00000.dat"), b"ignored").unwrap();
        let files = expand_paths(std::slice::from_ref(&dir), MAGIC).unwrap();
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
