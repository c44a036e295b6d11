//! The fast path for rule sets that mask by path alone (no field list, no detectors)
//! while the input is copied through: members and elements are read from token to token
//! with an [`Cursor`], so passing over a name, a string or a run of whitespace
//! costs a bit scan rather than a loop over its bytes. It reads what [`Rewriter::fast`]
//! reads, in the same steps (a value to mask goes to the same helper), and stops where
//! that stops: the state machine goes on from there.
//!
//! With detectors every string is scanned anyway, and the byte-wise fast path (which
//! finds a string's end as it goes) measured faster there.

use super::fast::scalar;
use super::index::Cursor;
use super::{Child, Rewriter, St, MAX_DEPTH};
use crate::path::{Seg, States};

/// Whether `b`, outside a string, neither is whitespace nor starts a token of its own:
/// a byte of a number or literal, or something malformed.
fn is_other(b: u8) -> bool {
    !matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'{' | b'}' | b'[' | b']' | b':' | b','
    )
}

impl Rewriter {
    /// Reads from `data[i]` on, in a container, for as long as it can (see
    /// [`Rewriter::fast`]): where the state machine goes on, or why the body cannot be
    /// followed and where.
    pub(super) fn walk(&mut self, data: &[u8], i: usize) -> Result<usize, (&'static str, usize)> {
        let Some(m) = self.mask.clone() else {
            return Ok(i);
        };
        let mut cur = Cursor::new(data, i);
        loop {
            let Some(j) = cur.next() else {
                // Only whitespace is left.
                return Ok(data.len());
            };
            let c = data[j];
            if c == b'}' || c == b']' {
                if !self.closes(c, j) {
                    return Ok(j);
                }
                continue;
            }
            let st = self.st;
            let Some(top) = self.stack.last() else {
                return Ok(j);
            };
            let (k, from) = match st {
                St::AfterValue if c == b',' => match cur.next() {
                    Some(k) => (k, Some(j)),
                    None => return Ok(j),
                },
                St::ObjectStart => (j, Some(j)),
                St::ArrayStart => (j, None),
                _ => return Ok(j),
            };
            let parent = top.child.mask;
            // The member's name and colon, or the element's index; then its value.
            let (seg, name, v) = if top.array {
                (Seg::Index(top.index), None, k)
            } else {
                if data[k] != b'"' {
                    return Ok(j);
                }
                // The closing quote: inside a string, only a quote starts a token.
                let Some(q) = cur.next() else {
                    return Ok(j);
                };
                // An escaped name is the state machine's.
                if cur.escaped(k, q) {
                    return Ok(j);
                }
                match (cur.next(), cur.next()) {
                    (Some(colon), Some(v)) if data[colon] == b':' => {
                        (Seg::Key(&data[k + 1..q]), Some((k, q)), v)
                    }
                    _ => return Ok(j),
                }
            };
            let mask = m.paths.step(parent, seg);
            if m.paths.accepts(mask) {
                // Masked: as the fast path does it (a string's end and escapes as found
                // here).
                let known = match data[v] {
                    b'"' => match cur.next() {
                        Some(q) => Some((q + 1, cur.escaped(v, q))),
                        None => return Ok(j),
                    },
                    _ => None,
                };
                let Some(end) = self.masked(data, v, mask, from, name, known)? else {
                    return Ok(j);
                };
                // A number or literal must end where a token starts or whitespace does
                // (the state machine refuses anything else after it).
                let literal = !matches!(data[v], b'"' | b'{' | b'[');
                if !self.copying
                    || matches!(self.st, St::Skip(_))
                    || (literal && data.get(end).is_some_and(|&b| is_other(b)))
                {
                    return Ok(end);
                }
                cur.skip_to(end);
                continue;
            }
            match data[v] {
                b'"' => {
                    if cur.next().is_none() {
                        return Ok(j);
                    }
                }
                b @ (b'{' | b'[') => {
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
                    continue;
                }
                _ => match scalar(data, v, self.max_value) {
                    Some((end, _)) if !is_other(data[end]) => {}
                    _ => return Ok(j),
                },
            }
            if let Some(top) = self.stack.last_mut() {
                top.wrote = true;
            }
            self.end_value();
        }
    }
}
