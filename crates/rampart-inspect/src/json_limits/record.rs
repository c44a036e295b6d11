//! Recording the tape while the limits scan: on a validated route the scanner notes one
//! entry per value, with byte offsets into the whole body, so schema validation need not
//! parse the body again ([`crate::openapi::tape::Tape::recorded`]).

use super::JsonScanner;
use crate::openapi::tape::{Entry, TapeEntries};

/// The tape of the document, recorded as it is scanned (for schema validation, which
/// then need not parse the body again): one entry per value, in document order, with
/// byte offsets into the whole body.
#[derive(Debug, Default)]
pub(super) struct Recording {
    pub(super) entries: Vec<Entry>,
    /// The indexes in `entries` of the strings with escapes.
    pub(super) escapes: Vec<u32>,
    /// Offset in the body of the first byte of the piece being scanned.
    pub(super) base: u64,
    /// Where the open string's characters or the open number start.
    pub(super) token_start: u32,
    /// The open string has an escape.
    pub(super) escaped: bool,
}

impl JsonScanner {
    /// Also records the document's tape; `offset` is the body's length before the first
    /// piece this scanner is fed, `declared` its declared length (0: unknown), which
    /// sizes the tape (a value takes 8 bytes of a typical body, about).
    pub(crate) fn record(mut self, offset: u64, declared: usize) -> Self {
        let capacity = (declared / 8).clamp(16, 1 << 16);
        self.recording = Some(Box::new(Recording {
            base: offset,
            entries: Vec::with_capacity(capacity),
            ..Recording::default()
        }));
        self
    }

    /// The recorded tape of a complete, valid document ([`JsonScanner::finish`] passed).
    pub(crate) fn into_tape(self) -> Option<TapeEntries> {
        self.recording.map(|r| TapeEntries {
            entries: r.entries,
            escaped: r.escapes,
        })
    }

    /// A body offset as a tape offset; stops recording past 4 GiB.
    pub(super) fn pos(&mut self, at: u64) -> u32 {
        match u32::try_from(at) {
            Ok(p) => p,
            Err(_) => {
                self.recording = None;
                0
            }
        }
    }

    pub(super) fn push(&mut self, e: Entry) {
        if let Some(r) = &mut self.recording {
            r.entries.push(e);
        }
    }

    /// A string (`skip` 1: after its quote) or number starts at body offset `at`.
    pub(super) fn token_start(&mut self, at: u64, skip: u32) {
        if self.recording.is_some() {
            let p = self.pos(at).saturating_add(skip);
            if let Some(r) = &mut self.recording {
                r.token_start = p;
                r.escaped = false;
            }
        }
    }

    /// The open number ended just before body offset `at`.
    pub(super) fn number_done(&mut self, at: u64) {
        let end = self.pos(at);
        if let Some(r) = &mut self.recording {
            let e = Entry::Number(r.token_start, end);
            r.entries.push(e);
        }
    }

    /// The open string ended at body offset `at` (its closing quote).
    pub(super) fn string_done(&mut self, at: u64) {
        let end = self.pos(at);
        if let Some(r) = &mut self.recording {
            let e = Entry::Str {
                start: r.token_start,
                end,
                escaped: r.escaped,
            };
            if r.escaped {
                r.escapes
                    .push(u32::try_from(r.entries.len()).unwrap_or(u32::MAX));
            }
            r.entries.push(e);
        }
    }

    /// An array or object opens: its entry, filled in when it closes (0 when not
    /// recording).
    pub(super) fn container_entry(&mut self) -> u32 {
        match &mut self.recording {
            Some(r) => {
                r.entries.push(Entry::Null);
                u32::try_from(r.entries.len() - 1).unwrap_or(u32::MAX)
            }
            None => 0,
        }
    }

    /// The container at `entry` closed with `len` members or items.
    pub(super) fn container_done(&mut self, entry: u32, object: bool, len: u32) {
        if let Some(r) = &mut self.recording {
            let end = u32::try_from(r.entries.len()).unwrap_or(u32::MAX);
            if let Some(e) = r.entries.get_mut(entry as usize) {
                *e = if object {
                    Entry::Object { len, end }
                } else {
                    Entry::Array { len, end }
                };
            }
        }
    }
}
