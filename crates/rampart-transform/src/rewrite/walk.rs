//! The fast path for rule sets that mask by path alone (no field list, no detectors)
//! while the input is copied through: members and elements are read in place, with the
//! punctuation and whitespace between them read a byte at a time (they are short) and
//! each string's end found by a [`Cursor`] over the frame's quotes, so passing over a
//! name or a string costs a bit scan rather than a loop over its bytes. It reads what
//! [`Rewriter::fast`] reads, in the same steps (a value to mask goes to the same helper),
//! and stops where that stops: the state machine goes on from there.
//!
//! With detectors every string is scanned anyway, and the byte-wise fast path (which
//! finds a string's end as it goes) measured faster there.

use super::fast::{scalar, skip_ws};
use super::index::Cursor;
use super::{Child, Rewriter, St, MAX_DEPTH};
use crate::path::{Seg, States};

impl Rewriter {
    /// Reads from `data[i]` on, in a container, for as long as it can (see
    /// [`Rewriter::fast`]): where the state machine goes on, or why the body cannot be
    /// followed and where.
    pub(super) fn walk(
        &mut self,
        data: &[u8],
        mut i: usize,
    ) -> Result<usize, (&'static str, usize)> {
        let Some(m) = self.mask.clone() else {
            return Ok(i);
        };
        let mut cur = Cursor::new(data, i);
        // The string that opens with the quote at `data[k]`: its closing quote, taken
        // from the cursor (`None` when the frame ends first, or the cursor saw another
        // quote first: the state machine reads on from before it).
        let string = |cur: &mut Cursor<'_>, k: usize| match cur.next() {
            Some(o) if o == k => cur.next(),
            _ => None,
        };
        loop {
            let j = skip_ws(data, i);
            let Some(&c) = data.get(j) else {
                return Ok(j);
            };
            if c == b'}' || c == b']' {
                if !self.closes(c, j) {
                    return Ok(j);
                }
                i = j + 1;
                continue;
            }
            let Some(top) = self.stack.last() else {
                return Ok(j);
            };
            let (k, from) = match self.st {
                St::AfterValue if c == b',' => (skip_ws(data, j + 1), Some(j)),
                St::ObjectStart => (j, Some(j)),
                St::ArrayStart => (j, None),
                _ => return Ok(j),
            };
            let parent = top.child.mask;
            // The member's name and colon, or the element's index; then its value.
            let (seg, name, v) = if top.array {
                (Seg::Index(top.index), None, k)
            } else {
                if data.get(k) != Some(&b'"') {
                    return Ok(j);
                }
                let Some(q) = string(&mut cur, k) else {
                    return Ok(j);
                };
                // An escaped name is the state machine's.
                if cur.escaped(k, q) {
                    return Ok(j);
                }
                let colon = skip_ws(data, q + 1);
                if data.get(colon) != Some(&b':') {
                    return Ok(j);
                }
                (
                    Seg::Key(&data[k + 1..q]),
                    Some((k, q)),
                    skip_ws(data, colon + 1),
                )
            };
            let Some(&b) = data.get(v) else {
                return Ok(j);
            };
            let mask = m.paths.step(parent, seg);
            if m.paths.accepts(mask) {
                // Masked: as the fast path does it (a string's end and escapes as found
                // here).
                let known = match b {
                    b'"' => match string(&mut cur, v) {
                        Some(q) => Some((q + 1, cur.escaped(v, q))),
                        None => return Ok(j),
                    },
                    _ => None,
                };
                let Some(end) = self.masked(data, v, mask, from, name, known)? else {
                    return Ok(j);
                };
                if !self.copying || matches!(self.st, St::Skip(_)) {
                    return Ok(end);
                }
                cur.skip_to(end);
                i = end;
                continue;
            }
            i = match b {
                b'"' => match string(&mut cur, v) {
                    Some(q) => q + 1,
                    None => return Ok(j),
                },
                b'{' | b'[' => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Ok(j);
                    }
                    if let Some(top) = self.stack.last_mut() {
                        top.wrote = true;
                    }
                    let below = Child {
                        mask,
                        list: States::default(),
                        list_on: false,
                    };
                    self.open(b == b'[', below);
                    i = v + 1;
                    continue;
                }
                _ => match scalar(data, v, self.max_value) {
                    Some((end, _)) => end,
                    None => return Ok(j),
                },
            };
            self.end_written();
        }
    }
}
