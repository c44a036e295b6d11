//! The chunked transfer-coding framer: follows a chunked body byte by byte so the guard
//! always knows where the next request head starts.

use std::io;

/// Where the framer is inside a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Size { value: u64, digits: u8 },
    Ext { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerLineStart { bytes: usize },
    TrailerLine { bytes: usize },
    TrailerLineLf { bytes: usize },
    TrailerEndLf,
}

/// Advances the chunked-body state machine over `data` (RFC 9112 §7.1). Returns the next
/// state (`None` when the body, trailers included, is complete) and how many bytes were
/// consumed. Strict: no bare LF, no whitespace around the size, at most 16 hex digits.
pub(super) fn scan_chunked(
    mut c: Chunk,
    data: &[u8],
    max_trailer: usize,
) -> io::Result<(Option<Chunk>, usize)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body");
    let mut i = 0;
    while i < data.len() {
        if let Chunk::Data(n) = c {
            let take = (data.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
            i += take;
            let left = n - take as u64;
            c = if left == 0 {
                Chunk::DataCr
            } else {
                Chunk::Data(left)
            };
            continue;
        }
        let b = data[i];
        i += 1;
        c = match c {
            Chunk::Data(_) => unreachable!("handled above"),
            Chunk::Size { value, digits } => match (b as char).to_digit(16) {
                Some(d) if digits < 16 => Chunk::Size {
                    value: value << 4 | u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return Err(bad()),
                None if digits == 0 => return Err(bad()),
                None if b == b';' => Chunk::Ext { value },
                None if b == b'\r' => Chunk::SizeLf { value },
                None => return Err(bad()),
            },
            Chunk::Ext { value } => match b {
                b'\r' => Chunk::SizeLf { value },
                b if b < 0x20 && b != b'\t' => return Err(bad()),
                _ => Chunk::Ext { value },
            },
            Chunk::SizeLf { value } => match (b, value) {
                (b'\n', 0) => Chunk::TrailerLineStart { bytes: 0 },
                (b'\n', n) => Chunk::Data(n),
                _ => return Err(bad()),
            },
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => Chunk::Size {
                value: 0,
                digits: 0,
            },
            Chunk::DataCr | Chunk::DataLf => return Err(bad()),
            Chunk::TrailerLineStart { bytes } => match b {
                b'\r' => Chunk::TrailerEndLf,
                b'\n' | b' ' | b'\t' => return Err(bad()),
                _ => Chunk::TrailerLine { bytes: bytes + 1 },
            },
            Chunk::TrailerLine { bytes } => match b {
                _ if bytes > max_trailer => return Err(bad()),
                b'\r' => Chunk::TrailerLineLf { bytes },
                b if b < 0x20 && b != b'\t' => return Err(bad()),
                _ => Chunk::TrailerLine { bytes: bytes + 1 },
            },
            Chunk::TrailerLineLf { bytes } if b == b'\n' => Chunk::TrailerLineStart { bytes },
            Chunk::TrailerLineLf { .. } => return Err(bad()),
            Chunk::TrailerEndLf if b == b'\n' => return Ok((None, i)),
            Chunk::TrailerEndLf => return Err(bad()),
        };
    }
    Ok((Some(c), i))
}
