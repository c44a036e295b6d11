//! The rewriter's fast path: whole members and elements whose values go out as they
//! came, read straight off the frame while the input is being copied. Most of a body is
//! such members; the byte-at-a-time state machine is left for the rest (a value to mask
//! or drop, an escaped member name, a token the frame's end cuts, anything malformed).
//!
//! It parses exactly what the state machine would: member names, colons, commas,
//! brackets, strings to their closing quote, and numbers and literals validated whole.
//! Its state is the state machine's own (the stack, the copy), changed only when a whole
//! member, element, bracket or run of whitespace has been read, so where it stops the
//! state machine goes on from the same place as if it had read everything itself.

use rampart_core::pii;

use super::values::string_end;
use super::{Child, Disp, Frame, Rewriter, St, MAX_DEPTH};
use crate::action;
use crate::path::{Seg, States};

/// The first byte at or after `data[i]` that is not whitespace (at most one space is
/// the common case: one comparison).
#[inline(always)]
fn skip_ws(data: &[u8], mut i: usize) -> usize {
    while let Some(&b) = data.get(i) {
        if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// The string whose content begins at `data[i]`: the offset past its closing quote, and
/// whether it has an escape; `None` when the frame ends first.
fn string(data: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i += string_end(data.get(i..)?);
        match data.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            // A backslash: the byte after it is part of the string, whatever it is.
            _ => {
                escaped = true;
                i += 2;
            }
        }
    }
}

/// The number or literal at `data[i]`: the offset past it, when it ends in this frame
/// and is one; whether it is a number.
fn scalar(data: &[u8], i: usize, max: usize) -> Option<(usize, bool)> {
    let run = data[i..]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')))?;
    let tok = &data[i..i + run];
    if run > max {
        return None;
    }
    match tok {
        b"true" | b"false" | b"null" => Some((i + run, false)),
        t if action::is_number(t) => Some((i + run, true)),
        _ => None,
    }
}

impl Rewriter {
    /// Whether the fast path may take over here: the input is being copied and nothing
    /// is held or undecided, between two tokens.
    pub(super) fn fast_ready(&self) -> bool {
        #[cfg(test)]
        if self.slow_only {
            return false;
        }
        self.copying
            && self.pending.is_none()
            && self.key_at.is_none()
            && match self.st {
                St::AfterValue | St::ObjectStart | St::ArrayStart => true,
                St::Value => self.stack.is_empty(),
                _ => false,
            }
    }

    /// Reads from `data[i]` on (see [`Rewriter::fast_ready`]) for as long as it can:
    /// where the state machine goes on.
    pub(super) fn fast(&mut self, data: &[u8], mut i: usize) -> usize {
        if self.st == St::Value {
            // The document's own value.
            let j = skip_ws(data, i);
            let Some(&c) = data.get(j) else {
                return j;
            };
            let (disp, below) = self.decide(self.next, c == b'{' || c == b'[');
            match self.value(data, j, disp, below) {
                Some(e) => i = e,
                None => return j,
            }
        }
        loop {
            let j = skip_ws(data, i);
            let Some(&c) = data.get(j) else {
                return j;
            };
            let st = self.st;
            let Some(top) = self.stack.last() else {
                return j;
            };
            if c == b'}' || c == b']' {
                if top.array != (c == b']') {
                    return j;
                }
                self.stack.pop();
                self.end_value();
                i = j + 1;
                continue;
            }
            let k = match st {
                St::AfterValue if c == b',' => skip_ws(data, j + 1),
                St::ObjectStart | St::ArrayStart => j,
                _ => return j,
            };
            match self.item(data, k) {
                Some(e) => i = e,
                None => return j,
            }
        }
    }

    /// The member (its name, colon and value) or element at `data[j]` of the innermost
    /// container, when it goes out as it is and ends in this frame.
    #[inline(always)]
    fn item(&mut self, data: &[u8], mut j: usize) -> Option<usize> {
        let top = self.stack.last()?;
        let parent = top.child;
        let seg = if top.array {
            Seg::Index(top.index)
        } else {
            if data.get(j) != Some(&b'"') {
                return None;
            }
            let k = j + 1;
            let n = string_end(data.get(k..)?);
            // An escaped name (or one the frame cuts) is the state machine's.
            if data.get(k + n) != Some(&b'"') {
                return None;
            }
            j = skip_ws(data, k + n + 1);
            if data.get(j) != Some(&b':') {
                return None;
            }
            j = skip_ws(data, j + 1);
            Seg::Key(&data[k..k + n])
        };
        let &c = data.get(j)?;
        let (disp, below) = match &self.mask {
            // Masking only (no field list deciding here): the common case, in short.
            Some(m) if !parent.list_on => {
                let mask = m.paths.step(parent.mask, seg);
                if m.paths.accepts(mask) {
                    return None;
                }
                let below = Child {
                    mask,
                    list: States::default(),
                    list_on: false,
                };
                match m.detect.is_empty() {
                    true => (Disp::Pass, below),
                    false => (Disp::Inspect, below),
                }
            }
            _ => self.decide(self.child(seg), c == b'{' || c == b'['),
        };
        self.value(data, j, disp, below)
    }

    /// The value at `data[j]` under `disp`, when it goes out as it is and (unless it
    /// opens a container) ends in this frame.
    #[inline(always)]
    fn value(&mut self, data: &[u8], j: usize, disp: Disp, below: Child) -> Option<usize> {
        let inspect = match disp {
            Disp::Pass => false,
            Disp::Inspect => true,
            Disp::Drop | Disp::Mask(..) => return None,
        };
        let end = match data[j] {
            c @ (b'{' | b'[') => {
                if self.stack.len() >= MAX_DEPTH {
                    return None;
                }
                if let Some(top) = self.stack.last_mut() {
                    top.wrote = true;
                }
                let array = c == b'[';
                self.stack.push(Frame {
                    array,
                    index: 0,
                    wrote: false,
                    child: below,
                });
                self.st = if array {
                    St::ArrayStart
                } else {
                    St::ObjectStart
                };
                return Some(j + 1);
            }
            b'"' => {
                let (end, escaped) = string(data, j + 1)?;
                if inspect
                    && (escaped
                        || end - j - 2 > self.max_value
                        || self.may_hold(&data[j + 1..end - 1]))
                {
                    return None;
                }
                end
            }
            _ => {
                let (end, number) = scalar(data, j, self.max_value)?;
                if inspect && number && self.may_hold(&data[j..end]) {
                    return None;
                }
                end
            }
        };
        if let Some(top) = self.stack.last_mut() {
            top.wrote = true;
        }
        self.end_value();
        Some(end)
    }

    /// Whether the detectors could find anything in `raw` (most values are ruled out by
    /// one counting pass, as [`Rewriter::inspect`] does first).
    fn may_hold(&self, raw: &[u8]) -> bool {
        self.mask
            .as_ref()
            .is_none_or(|m| pii::Shape::of(raw).may_hold_any(&m.kinds))
    }
}

#[cfg(test)]
mod tests;
