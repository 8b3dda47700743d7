//! Line reading with the length limit checked while reading: [`read_line_bounded`] reads at most
//! `limit + 1` bytes of a line before it refuses it, so a file of one endless line (a 2 GB file with
//! no newline) costs `limit + 1` bytes of memory, not the whole file. Every reader of line-based
//! input from outside (hex blocks, JSON-lines signature records) goes through it.
//! `BufRead::read_line` reads a whole line before its length can be checked. Small whole files (key
//! files, the node's configuration) are read the same way: [`read_small_file`].

use std::io::{BufRead, ErrorKind, Read};
use std::path::Path;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The line has more than `limit` bytes before its newline (only `limit + 1` were read).
    #[error("line longer than the limit of {limit} bytes")]
    TooLong {
        /// The limit, in bytes (the newline not counted).
        limit: usize,
    },
}

/// Reads the next line of `r` into `line` (cleared first) without its `\n` (a `\r` before it is
/// kept: callers trim). Returns the bytes consumed including the newline, or `None` at the end of
/// the input. A last line without a newline is a line.
///
/// # Errors
/// [`LineError::TooLong`] when the line has more than `limit` bytes before its newline (or the end
/// of the input): at most `limit + 1` bytes are read into `line` and the reader is left inside the
/// line; [`LineError::Io`] when reading fails (`Interrupted` is retried).
pub fn read_line_bounded<R: BufRead + ?Sized>(
    r: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> Result<Option<usize>, LineError> {
    line.clear();
    let mut consumed = 0usize;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            return Ok(if consumed == 0 { None } else { Some(consumed) });
        }
        // Never look past byte `limit + 1` of the line.
        let room = limit.saturating_add(1) - line.len();
        let window = &buf[..buf.len().min(room)];
        if let Some(i) = window.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&window[..i]);
            r.consume(i + 1);
            return Ok(Some(consumed + i + 1));
        }
        let n = window.len();
        line.extend_from_slice(window);
        r.consume(n);
        consumed += n;
        if line.len() > limit {
            return Err(LineError::TooLong { limit });
        }
    }
}

/// Reads the whole file at `path` when it holds at most `limit` bytes, reading at most `limit + 1`
/// (`std::fs::read` would read a file of any size first).
///
/// # Errors
/// The file's I/O errors (`NotFound` and others, as `std::fs::read` gives them), or
/// `ErrorKind::FileTooLarge` with "longer than LIMIT bytes" when it holds more.
pub fn read_small_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(ErrorKind::FileTooLarge, format!("longer than {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    fn lines(input: &[u8], limit: usize, cap: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut r = BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            match read_line_bounded(&mut r, &mut line, limit) {
                Ok(None) => return out,
                Ok(Some(_)) => out.push(Ok(line.clone())),
                Err(LineError::TooLong { limit }) => {
                    out.push(Err(limit));
                    return out;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn lines_split_like_read_line_at_every_buffer_size() {
        for cap in [1, 2, 3, 7, 64] {
            assert_eq!(
                lines(b"ab\n\ncd\r\nef", 4, cap),
                vec![Ok(b"ab".to_vec()), Ok(vec![]), Ok(b"cd\r".to_vec()), Ok(b"ef".to_vec())]
            );
            assert_eq!(lines(b"abcd\n", 4, cap), vec![Ok(b"abcd".to_vec())], "exactly the limit");
            assert_eq!(lines(b"abcde\n", 4, cap), vec![Err(4)], "one over the limit");
            assert_eq!(lines(b"", 4, cap), vec![]);
        }
    }

    /// An endless line is refused after `limit + 1` bytes: the reader is not drained.
    #[test]
    fn an_endless_line_is_refused_after_limit_plus_one_bytes() {
        let mut r = BufReader::with_capacity(16, std::io::repeat(b'x').take(1 << 40));
        let mut line = Vec::new();
        assert!(matches!(read_line_bounded(&mut r, &mut line, 1000), Err(LineError::TooLong { limit: 1000 })));
        assert_eq!(line.len(), 1001);
        assert!(line.capacity() < 4096, "{}", line.capacity());
    }

    /// A small file is read whole; a big one (1 GiB, sparse) is refused after `limit + 1` bytes.
    #[test]
    fn small_files_are_read_and_big_ones_refused() {
        let dir = std::env::temp_dir().join(format!("powkit-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_small_file(&p, 10).unwrap(), b"0123456789");
        let e = read_small_file(&p, 9).unwrap_err();
        assert_eq!((e.kind(), e.to_string()), (ErrorKind::FileTooLarge, "longer than 9 bytes".into()));
        std::fs::File::create(&p).unwrap().set_len(1 << 30).unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(read_small_file(&p, 4096).unwrap_err().kind(), ErrorKind::FileTooLarge);
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(read_small_file(&dir.join("absent"), 9).unwrap_err().kind(), ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
