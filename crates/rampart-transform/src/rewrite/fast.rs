//! The rewriter's fast path: whole members and elements read straight off the frame.
//! Most of a body is members whose values go out as they came, passed over in one go;
//! a value to mask, drop or scan is handed to the state machine's own steps once it is
//! known to end in the frame. The byte-at-a-time state machine is left for the rest: an
//! escaped member name, a token the frame's end cuts, anything malformed.
//!
//! It parses exactly what the state machine would: member names, colons, commas,
//! brackets, strings to their closing quote, and numbers and literals validated whole.
//! Its state is the state machine's own (the stack, the copy), changed only when a whole
//! member, element, bracket or run of whitespace has been read, so where it stops the
//! state machine goes on from the same place as if it had read everything itself.
//!
//! With path rules alone (no detectors, no field list) it reads from token to token
//! instead ([`Rewriter::walk`]); this byte-wise reader takes the other rule sets, and a
//! member written anew after one was removed.

use super::values::{is_text, string_end};
use super::{in_scalar, is_ws, Child, Disp, Rewriter, St, MAX_DEPTH};
use crate::action;
use crate::path::{Seg, States};
use rampart_config::MaskAction;

/// The first byte at or after `data[i]` that is not whitespace.
///
/// No whitespace, or one space (after a comma or colon), is the common case, and is
/// answered by a branch the processor predicts, not by arithmetic on the byte read: the
/// next read's offset then does not wait for this one's. Any other run goes out of line.
#[inline(always)]
pub(super) fn skip_ws(data: &[u8], i: usize) -> usize {
    match data.get(i) {
        Some(&b) if b > b' ' => i,
        Some(b' ') if data.get(i + 1).is_some_and(|&b| b > b' ') => i + 1,
        _ => skip_ws_run(data, i),
    }
}

#[cold]
#[inline(never)]
fn skip_ws_run(data: &[u8], mut i: usize) -> usize {
    while data.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// The string whose content begins at `data[i]`: the offset past its closing quote, and
/// whether it has an escape; `None` when the frame ends first.
#[inline(always)]
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

/// A string value's end (past its closing quote) and whether it holds an escape, when
/// they were found already.
pub(super) type Known = Option<(usize, bool)>;

/// The number or literal at `data[i]`: the offset past it, and whether it is a number;
/// `None` when it is malformed, longer than `max`, or may go on in the next frame (the
/// state machine reads a run of letters, digits, `-`, `+` and `.` as one token, so a
/// token followed by more of them is its to refuse).
pub(super) fn scalar(data: &[u8], i: usize, max: usize) -> Option<(usize, bool)> {
    let (end, number) = match data[i] {
        c @ (b't' | b'f' | b'n') => {
            let lit: &[u8] = match c {
                b't' => b"true",
                b'f' => b"false",
                _ => b"null",
            };
            if data.get(i..i + lit.len())? != lit {
                return None;
            }
            (i + lit.len(), false)
        }
        _ => (action::number_end(data, i)?, true),
    };
    let &next = data.get(end)?;
    if in_scalar(next) || end - i > max {
        return None;
    }
    Some((end, number))
}

/// Where the string, number or literal at `data[j]` ends, when it ends in this frame and
/// is well formed (the state machine finds out which when not).
#[inline(always)]
fn value_end(data: &[u8], j: usize, max: usize) -> Option<usize> {
    match data[j] {
        b'"' => Some(string(data, j + 1)?.0),
        _ => Some(scalar(data, j, max)?.0),
    }
}

impl Rewriter {
    /// Whether the fast path may take over here: nothing is held or undecided, between
    /// two tokens.
    pub(super) fn fast_ready(&self) -> bool {
        #[cfg(test)]
        if self.slow_only {
            return false;
        }
        self.pending.is_none()
            && self.key_at.is_none()
            && match self.st {
                St::AfterValue | St::ObjectStart | St::ArrayStart => true,
                St::Value => self.stack.is_empty() && self.copying,
                _ => false,
            }
    }

    /// Reads from `data[i]` on (see [`Rewriter::fast_ready`]) for as long as it can:
    /// where the state machine goes on, or why the body cannot be followed and where.
    pub(super) fn fast(
        &mut self,
        data: &[u8],
        mut i: usize,
    ) -> Result<usize, (&'static str, usize)> {
        if self.st == St::Value {
            // The document's own value, when it goes out as it is.
            let j = skip_ws(data, i);
            let Some(&c) = data.get(j) else {
                return Ok(j);
            };
            let (disp, below) = self.decide(self.next, c == b'{' || c == b'[');
            if disp != Disp::Pass {
                return Ok(j);
            }
            match self.pass(data, j, below, None) {
                Some(e) => i = e,
                None => return Ok(j),
            }
        }
        // Masking by path alone: from token to token.
        if self.list.is_none()
            && self.copying
            && self.mask.as_ref().is_some_and(|m| m.detect.is_empty())
        {
            return self.walk(data, i);
        }
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
            let (k, from) = match self.st {
                St::AfterValue if c == b',' => (skip_ws(data, j + 1), Some(j)),
                St::ObjectStart => (j, Some(j)),
                St::ArrayStart => (j, None),
                _ => return Ok(j),
            };
            match self.item(data, k, from)? {
                Some(e) => i = e,
                None => return Ok(j),
            }
            if matches!(self.st, St::Skip(_)) {
                // A dropped or replaced container: passed over by the state machine.
                return Ok(i);
            }
        }
    }

    /// The closing bracket `c` at `data[j]` ends the innermost container; `false`
    /// (nothing changed) when there is none or it is of the other kind.
    #[inline(always)]
    pub(super) fn closes(&mut self, c: u8, j: usize) -> bool {
        match self.stack.last() {
            Some(top) if top.array == (c == b']') => {
                self.stack.pop();
                self.resume(j);
                self.end_value();
                true
            }
            _ => false,
        }
    }

    /// The member (its name, colon and value) or element at `data[j]` of the innermost
    /// container, whose comma (or, first in an object, name) is at `from`: where it ends,
    /// or `None` (nothing changed) when the state machine is to read it.
    #[inline(always)]
    fn item(
        &mut self,
        data: &[u8],
        mut j: usize,
        from: Option<usize>,
    ) -> Result<Option<usize>, (&'static str, usize)> {
        let Some(top) = self.stack.last() else {
            return Ok(None);
        };
        let parent = top.child;
        let mut name = None;
        let seg = if top.array {
            Seg::Index(top.index)
        } else {
            if data.get(j) != Some(&b'"') {
                return Ok(None);
            }
            let k = j + 1;
            let n = string_end(&data[k..]);
            // An escaped name (or one the frame cuts) is the state machine's.
            if data.get(k + n) != Some(&b'"') {
                return Ok(None);
            }
            name = Some((j, k + n));
            j = skip_ws(data, k + n + 1);
            if data.get(j) != Some(&b':') {
                return Ok(None);
            }
            j = skip_ws(data, j + 1);
            Seg::Key(&data[k..k + n])
        };
        if j >= data.len() {
            return Ok(None);
        }
        match &self.mask {
            // Only masking decides here (no field list, or none below this point).
            Some(m) if !parent.list_on && self.copying => {
                let mask = m.paths.step(parent.mask, seg);
                let below = Child {
                    mask,
                    list: States::default(),
                    list_on: false,
                };
                match m.paths.accepts(mask) {
                    false if m.detect.is_empty() => Ok(self.pass(data, j, below, None)),
                    false => match self.clean(data, j) {
                        Some((true, end)) => Ok(self.pass(data, j, below, end)),
                        Some((false, _)) => self.steps(data, j, below, None, from, name),
                        None => Ok(None),
                    },
                    true => self.masked(data, j, mask, from, name, None),
                }
            }
            _ => self.listed(data, j, seg, from, name),
        }
    }

    /// [`Rewriter::item`]'s value at `data[j]` when a field list decides or the input is
    /// not being copied (out of line: the common case does without it).
    #[inline(never)]
    fn listed(
        &mut self,
        data: &[u8],
        j: usize,
        seg: Seg<'_>,
        from: Option<usize>,
        name: Option<(usize, usize)>,
    ) -> Result<Option<usize>, (&'static str, usize)> {
        let child = self.child(seg);
        let container = matches!(data[j], b'{' | b'[');
        match self.decide(child, container) {
            (Disp::Pass, below) if self.copying => Ok(self.pass(data, j, below, None)),
            (Disp::Pass, below) => Ok(self.anew(data, j, below, name)),
            (Disp::Drop, _) if !container => Ok(self.cut_value(data, j, from)),
            decided => self.steps(data, j, child, Some(decided), from, name),
        }
    }

    /// Whether the string, number or literal at `data[j]` holds nothing the detectors
    /// could find (`true`: it goes out as it is), and where it ends; `None` when it does
    /// not end in this frame. Containers are "clean": their members are looked at one by
    /// one.
    fn clean(&self, data: &[u8], j: usize) -> Option<(bool, Option<usize>)> {
        let (clean, end) = match data[j] {
            b'{' | b'[' => return Some((true, None)),
            b'"' => {
                let (end, escaped) = string(data, j + 1)?;
                let raw = &data[j + 1..end - 1];
                (
                    !escaped && raw.len() <= self.max_value && !self.may_hold(raw),
                    end,
                )
            }
            _ => {
                let (end, number) = scalar(data, j, self.max_value)?;
                (!number || !self.may_hold(&data[j..end]), end)
            }
        };
        Some((clean, Some(end)))
    }

    /// The value at `data[j]` (states `mask`) when a path rule masks it (masking only,
    /// the input being copied; out of line, as few values are): a string in place
    /// (`known`: its end and escapes, when found already), the rest through the state
    /// machine's steps. Where it ends, or `None` (nothing changed) when the state
    /// machine is to read it.
    #[inline(never)]
    pub(super) fn masked(
        &mut self,
        data: &[u8],
        j: usize,
        mask: States,
        from: Option<usize>,
        name: Option<(usize, usize)>,
        known: Known,
    ) -> Result<Option<usize>, (&'static str, usize)> {
        let below = Child {
            mask,
            list: States::default(),
            list_on: false,
        };
        let rule = self.mask.as_ref().and_then(|m| m.strongest(mask));
        if let Some((action, r)) = rule {
            if action != MaskAction::Remove && data[j] == b'"' {
                if let Some(end) = self.mask_string(data, j, action, r, known) {
                    return Ok(Some(end));
                }
            }
        }
        let decided = rule.map(|(a, r)| (Disp::Mask(a, r), below));
        self.steps(data, j, below, decided, from, name)
    }

    /// The string at `data[j]`, masked in place under `action` (rule `r`) while the input
    /// is being copied, as the state machine's steps would (`start_decided`, then
    /// `end_string`): where it ends, or `None` (nothing changed) when those steps are to
    /// take it (an escape, a value over the bound, bytes that are not UTF-8, the frame
    /// ends first).
    fn mask_string(
        &mut self,
        data: &[u8],
        j: usize,
        action: MaskAction,
        r: usize,
        known: Known,
    ) -> Option<usize> {
        let (end, escaped) = known.or_else(|| string(data, j + 1))?;
        let raw = &data[j + 1..end - 1];
        if escaped || raw.len() > self.max_value || !is_text(raw) {
            return None;
        }
        self.count(r);
        self.write_mask(data, Some(j + 1), end - 1, action, raw);
        self.end_written();
        Some(end)
    }

    /// The value at `data[j]`, which goes out as it came (the input is being copied):
    /// where it ends (a container: just after it opens; `known` when it was read
    /// already), or `None` when it does not end in this frame or is malformed (the state
    /// machine finds out which).
    #[inline(always)]
    fn pass(&mut self, data: &[u8], j: usize, below: Child, known: Option<usize>) -> Option<usize> {
        let end = match data[j] {
            c @ (b'{' | b'[') => {
                if self.stack.len() >= MAX_DEPTH {
                    return None;
                }
                if let Some(top) = self.stack.last_mut() {
                    top.wrote = true;
                }
                self.open(c == b'[', below);
                return Some(j + 1);
            }
            _ => match known {
                Some(end) => end,
                None => value_end(data, j, self.max_value)?,
            },
        };
        self.end_written();
        Some(end)
    }

    /// The value at `data[j]`, which goes out as it came while the input is not being
    /// copied (a member before it was cut): its comma and name (`name`: its quotes) are
    /// written anew, as [`Rewriter::begin`] does for the state machine. `None` (nothing
    /// changed) when it does not end in this frame or is malformed.
    fn anew(
        &mut self,
        data: &[u8],
        j: usize,
        below: Child,
        name: Option<(usize, usize)>,
    ) -> Option<usize> {
        let end = match data[j] {
            b'{' | b'[' if self.stack.len() < MAX_DEPTH => None,
            b'{' | b'[' => return None,
            _ => Some(value_end(data, j, self.max_value)?),
        };
        if let Some((q, e)) = name {
            self.key_at = Some(q);
            self.key_end = e;
        }
        self.begin(data, j);
        self.key_at = None;
        match end {
            None => {
                self.open(data[j] == b'[', below);
                Some(j + 1)
            }
            Some(e) => {
                self.end_value();
                Some(e)
            }
        }
    }

    /// The string, number or literal at `data[j]`, kept out by a field list: cut from
    /// its comma or name (`from`), or from itself when first in an array, as
    /// [`Rewriter::cut`] does. `None` (nothing changed) as for [`Rewriter::anew`].
    fn cut_value(&mut self, data: &[u8], j: usize, from: Option<usize>) -> Option<usize> {
        let end = value_end(data, j, self.max_value)?;
        self.stop(data, from.unwrap_or(j));
        self.end_value();
        Some(end)
    }

    /// The value at `data[j]` taken through the state machine's own steps, as it
    /// would have read them (its decision, the comma and name it cuts or writes anew,
    /// the mask, the counts), once the value is known to end in this frame.
    fn steps(
        &mut self,
        data: &[u8],
        j: usize,
        child: Child,
        decided: Option<(Disp, Child)>,
        from: Option<usize>,
        name: Option<(usize, usize)>,
    ) -> Result<Option<usize>, (&'static str, usize)> {
        // How far the value reaches (nothing is changed until it is known to end here).
        let extent = match data[j] {
            b'{' | b'[' => None,
            b'"' => match string(data, j + 1) {
                Some(e) => Some(e),
                None => return Ok(None),
            },
            _ => {
                let run = data[j + 1..].iter().position(|&b| !in_scalar(b));
                match run {
                    Some(n) => Some((j + 1 + n, false)),
                    None => return Ok(None),
                }
            }
        };
        self.next = child;
        self.pending = from;
        if let Some((q, e)) = name {
            self.key.clear();
            self.key_at = Some(q);
            self.key_end = e;
            self.escaped = false;
        }
        self.st = St::Value;
        match decided {
            Some(d) => self.start_decided(data, j, d),
            None => self.start_value(data, j),
        }
        .map_err(|e| (e, j))?;
        match (self.st, extent) {
            (St::Str(disp), Some((end, escaped))) => {
                self.escaped = escaped;
                self.end_string(disp, data, end - 1)
                    .map_err(|e| (e, end - 1))?;
                Ok(Some(end))
            }
            (St::Scalar(disp), Some((end, _))) => {
                if end - j > self.max_value {
                    return Err((super::TOO_LARGE, j + 1));
                }
                self.tok.extend_from_slice(&data[j + 1..end]);
                self.end_scalar(disp, end).map_err(|e| (e, end))?;
                Ok(Some(end))
            }
            // A container opened, or is passed over (`Skip`).
            _ => Ok(Some(j + 1)),
        }
    }
}

#[cfg(test)]
mod tests;
