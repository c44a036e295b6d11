//! The streaming JSON rewriter: one pass over the response body's frames, in bounded
//! memory, that drops members a field list does not let through, masks values by path and
//! by detector, and copies everything else through in spans as it came. It holds at most
//! one member name and one value (up to `max_value_bytes`) across frames, whatever the
//! body's size, so a value split across two frames is masked like any other.
//!
//! Every byte sent has been parsed by this parser first, never passed around it: a body
//! it cannot follow is refused (or, with `on_unparseable: pass`, the rest goes on as it
//! came), so a client never parses something the masker did not see.

use std::sync::Arc;

use bytes::Bytes;
use rampart_config::MaskAction;
use rampart_core::pii::Found;
use rampart_core::{BodyCounts, BodyRewriter};

use crate::action::{self, REDACTED};
use crate::path::{Seg, States};
use crate::{FieldList, MaskPlan};
use values::{string_end, TALLY};

/// The abort codes (the access log's `code`).
const UNPARSEABLE: &str = "mask.unparseable";
const TOO_LARGE: &str = "mask.value_too_large";
const TOO_DEEP: &str = "mask.too_deep";

/// The deepest nesting followed (each open container costs a few dozen bytes, so a body
/// of brackets cannot make the rewriter hold many times its size).
const MAX_DEPTH: usize = 512;

/// Whether `b` belongs to a number or literal's run: the state machine reads a run of
/// letters, digits, `-`, `+` and `.` as one token, then checks it.
fn in_scalar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

/// JSON whitespace (RFC 8259 §2).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// What happens to the value about to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disp {
    /// Not sent (a field list keeps it out, or `remove`).
    Drop,
    /// Replaced under this action; the rule's index for the counts.
    Mask(MaskAction, usize),
    /// Sent; strings and numbers scanned by the detectors first.
    Inspect,
    /// Sent as it is.
    Pass,
}

/// The automaton states a container's members start from.
#[derive(Debug, Clone, Copy, Default)]
struct Child {
    mask: States,
    list: States,
    /// The field list still decides below this point.
    list_on: bool,
}

#[derive(Debug)]
struct Frame {
    array: bool,
    /// The next element's index (arrays).
    index: u32,
    /// A member or element has been written (the next one needs a comma).
    wrote: bool,
    child: Child,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// A value is expected (the document, after `:`, after `,` in an array).
    Value,
    /// Right after `[`: a value or `]`.
    ArrayStart,
    /// Right after `{`: a member name or `}`.
    ObjectStart,
    /// After `,` in an object: a member name.
    Key,
    /// Inside a member name.
    InKey,
    Colon,
    /// After a value: `,`, or the container's end.
    AfterValue,
    /// Inside a string value, handled as `Disp` says.
    Str(Disp),
    /// Inside a number or `true`/`false`/`null`.
    Scalar(Disp),
    /// Inside a dropped or replaced object or array, this deep.
    Skip(u32),
    /// Inside a string within a skipped container.
    SkipStr(u32),
    /// The document is complete: only whitespace may follow.
    Done,
    /// Unparseable under `on_unparseable: pass`: the rest goes as it came.
    Raw,
}

/// One response body's rewriter.
pub(crate) struct Rewriter {
    mask: Option<Arc<MaskPlan>>,
    list: Option<Arc<FieldList>>,
    counts: Option<Arc<BodyCounts>>,
    /// The first rules' counts, tallied here and added to `counts` at the body's end (or
    /// when the rewriter is dropped first): an atomic add per masked value cost more
    /// than writing the mask.
    tally: [u32; TALLY],
    max_value: usize,
    pass: bool,
    st: St,
    /// The last byte read was a backslash inside a string.
    esc: bool,
    /// The string (or member name) being read has an escape.
    escaped: bool,
    stack: Vec<Frame>,
    /// The member name being read or just read (raw, as sent).
    key: Vec<u8>,
    /// The value being held (a string's raw content, a number or literal).
    tok: Vec<u8>,
    /// The states of the value about to start.
    next: Child,
    out: Vec<u8>,
    found: Vec<Found>,
    /// A held string value began in the current frame here (its bytes are not copied).
    from: Option<usize>,
    /// The input is being copied through as it is, from `span` in the current frame.
    copying: bool,
    span: usize,
    /// The member name being read (or just read) began with the quote at this offset of
    /// the current frame, and is not held in `key`; `key_end` is its closing quote.
    key_at: Option<usize>,
    key_end: usize,
    /// Where the member or element about to be decided begins in the current frame (its
    /// comma, or its name's quote): what is cut if it is dropped.
    pending: Option<usize>,
    /// Tests compare the fast path with the state machine alone.
    #[cfg(test)]
    slow_only: bool,
}

impl Rewriter {
    pub(crate) fn new(
        mask: Option<Arc<MaskPlan>>,
        list: Option<Arc<FieldList>>,
        counts: Option<Arc<BodyCounts>>,
        max_value: usize,
        pass: bool,
    ) -> Rewriter {
        let next = Child {
            mask: mask.as_ref().map(|m| m.paths.root()).unwrap_or_default(),
            list: list.as_ref().map(|l| l.paths.root()).unwrap_or_default(),
            list_on: list.is_some(),
        };
        Rewriter {
            mask,
            list,
            counts,
            tally: [0; TALLY],
            max_value,
            pass,
            st: St::Value,
            esc: false,
            escaped: false,
            stack: Vec::new(),
            key: Vec::new(),
            tok: Vec::new(),
            next,
            out: Vec::new(),
            found: Vec::new(),
            from: None,
            copying: true,
            span: 0,
            key_at: None,
            key_end: 0,
            pending: None,
            #[cfg(test)]
            slow_only: false,
        }
    }

    /// The states of a child `seg` of the innermost container.
    fn child(&self, seg: Seg<'_>) -> Child {
        let Some(top) = self.stack.last() else {
            return self.next;
        };
        let p = &top.child;
        Child {
            mask: match &self.mask {
                Some(m) => m.paths.step(p.mask, seg),
                None => States::default(),
            },
            list: match (&self.list, p.list_on) {
                (Some(l), true) => l.paths.step(p.list, seg),
                _ => States::default(),
            },
            list_on: p.list_on,
        }
    }

    /// What happens to the value with states `c`, and the states its members start
    /// from; `container` is whether it is an object or an array.
    fn decide(&self, c: Child, container: bool) -> (Disp, Child) {
        let mut below = c;
        if let (Some(l), true) = (&self.list, c.list_on) {
            let hit = l.paths.accepts(c.list);
            if l.allow {
                if hit {
                    below.list_on = false;
                } else if c.list.is_empty() || !container {
                    return (Disp::Drop, below);
                }
            } else if hit {
                return (Disp::Drop, below);
            } else if c.list.is_empty() {
                below.list_on = false;
            }
        }
        let Some(m) = &self.mask else {
            return (Disp::Pass, below);
        };
        let strongest = m.strongest(c.mask);
        match strongest {
            Some((a, r)) => (Disp::Mask(a, r), below),
            None if m.detect.is_empty() => (Disp::Pass, below),
            None => (Disp::Inspect, below),
        }
    }

    /// A value has ended.
    fn end_value(&mut self) {
        match self.stack.last_mut() {
            Some(top) => {
                if top.array {
                    top.index += 1;
                }
                self.st = St::AfterValue;
            }
            None => self.st = St::Done,
        }
    }

    /// [`Rewriter::end_value`] for a value that was sent: its container has written a
    /// member or element (one stack lookup for both).
    #[inline(always)]
    fn end_written(&mut self) {
        match self.stack.last_mut() {
            Some(top) => {
                top.wrote = true;
                if top.array {
                    top.index += 1;
                }
                self.st = St::AfterValue;
            }
            None => self.st = St::Done,
        }
    }

    /// Starts the value whose first byte is `data[i]`.
    fn start_value(&mut self, data: &[u8], i: usize) -> Result<(), &'static str> {
        let c = data[i];
        let decided = self.decide(self.next, c == b'{' || c == b'[');
        self.start_decided(data, i, decided)
    }

    /// [`Rewriter::start_value`] with the value's decision made already.
    fn start_decided(
        &mut self,
        data: &[u8],
        i: usize,
        decided: (Disp, Child),
    ) -> Result<(), &'static str> {
        let r = self.start_value_at(data, i, decided);
        self.pending = None;
        self.key_at = None;
        r
    }

    fn start_value_at(
        &mut self,
        data: &[u8],
        i: usize,
        (disp, below): (Disp, Child),
    ) -> Result<(), &'static str> {
        let c = data[i];
        match c {
            b'{' | b'[' => match disp {
                Disp::Drop | Disp::Mask(MaskAction::Remove, _) => {
                    if let Disp::Mask(_, r) = disp {
                        self.count(r);
                    }
                    self.cut(data, i);
                    self.st = St::Skip(1);
                }
                Disp::Mask(_, r) => {
                    self.count(r);
                    self.begin(data, i);
                    self.stop(data, i);
                    self.out.push(b'"');
                    self.out.extend_from_slice(REDACTED.as_bytes());
                    self.out.push(b'"');
                    self.st = St::Skip(1);
                }
                Disp::Inspect | Disp::Pass => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(TOO_DEEP);
                    }
                    self.begin(data, i);
                    self.open(c == b'[', below);
                }
            },
            b'"' => {
                self.tok.clear();
                self.escaped = false;
                match disp {
                    Disp::Drop | Disp::Mask(MaskAction::Remove, _) => self.cut(data, i),
                    Disp::Pass => self.begin(data, i),
                    // Held in place while it lies in this frame.
                    Disp::Mask(..) | Disp::Inspect => {
                        self.begin(data, i);
                        self.from = Some(i + 1);
                    }
                }
                self.st = St::Str(disp);
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                match disp {
                    Disp::Pass => self.begin(data, i),
                    Disp::Drop | Disp::Mask(MaskAction::Remove, _) => self.cut(data, i),
                    Disp::Mask(..) | Disp::Inspect => {
                        self.begin(data, i);
                        self.stop(data, i);
                    }
                }
                self.tok.clear();
                self.tok.push(c);
                self.st = St::Scalar(disp);
            }
            _ => return Err(UNPARSEABLE),
        }
        Ok(())
    }

    /// An object or array (`array`) opens; its members start from `below`.
    fn open(&mut self, array: bool, below: Child) {
        self.stack.push(Frame {
            array,
            index: 0,
            wrote: false,
            child: below,
        });
        self.st = match array {
            true => St::ArrayStart,
            false => St::ObjectStart,
        };
    }

    /// Bytes of a held string (a member name, or a value that began in an earlier frame).
    fn hold(&mut self, b: &[u8]) -> Result<(), &'static str> {
        let into = match self.st {
            St::InKey if self.key_at.is_none() => &mut self.key,
            // A removed string is passed over, never held (whatever its size).
            St::Str(Disp::Mask(MaskAction::Remove, _)) => return Ok(()),
            St::Str(Disp::Mask(..) | Disp::Inspect) if self.from.is_none() => &mut self.tok,
            _ => return Ok(()),
        };
        if into.len() + b.len() > self.max_value {
            return Err(TOO_LARGE);
        }
        into.extend_from_slice(b);
        Ok(())
    }

    /// Runs the state machine over `data`.
    fn feed(&mut self, data: &[u8]) -> Result<(), (&'static str, usize)> {
        let mut i = 0;
        while i < data.len() {
            if self.fast_ready() {
                i = self.fast(data, i)?;
                if i == data.len() {
                    break;
                }
            }
            let c = data[i];
            match self.st {
                St::Raw => {
                    self.resume(i);
                    return Ok(());
                }
                St::Str(_) | St::InKey if !self.esc => {
                    let rest = &data[i..];
                    let n = string_end(rest);
                    self.hold(&rest[..n]).map_err(|e| (e, i))?;
                    i += n;
                    if i == data.len() {
                        break;
                    }
                    if data[i] == b'\\' {
                        self.hold(b"\\").map_err(|e| (e, i))?;
                        self.esc = true;
                        self.escaped = true;
                        i += 1;
                        continue;
                    }
                    match self.st {
                        St::Str(disp) => self.end_string(disp, data, i).map_err(|e| (e, i))?,
                        _ => {
                            self.key_end = i;
                            self.st = St::Colon;
                        }
                    }
                }
                St::Str(_) | St::InKey | St::SkipStr(_) if self.esc => {
                    self.esc = false;
                    self.hold(&data[i..=i]).map_err(|e| (e, i))?;
                }
                // A dropped or replaced container is passed over in runs: to the next
                // quote or backslash inside its strings, to the next quote or bracket
                // outside them (nothing of it is sent or held).
                St::SkipStr(d) => {
                    i += string_end(&data[i..]);
                    match data.get(i) {
                        None => break,
                        Some(b'\\') => self.esc = true,
                        Some(_) => self.st = St::Skip(d),
                    }
                }
                St::Skip(d) => {
                    let Some(n) = data[i..]
                        .iter()
                        .position(|&b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']'))
                    else {
                        break;
                    };
                    i += n;
                    match data[i] {
                        b'"' => self.st = St::SkipStr(d),
                        b'{' | b'[' => self.st = St::Skip(d + 1),
                        _ if d == 1 => self.end_value(),
                        _ => self.st = St::Skip(d - 1),
                    }
                }
                St::Scalar(disp) => {
                    // The rest of the number or literal in this frame, in one run.
                    let run = data[i..]
                        .iter()
                        .position(|&b| !in_scalar(b))
                        .unwrap_or(data.len() - i);
                    if self.tok.len() + run > self.max_value {
                        return Err((TOO_LARGE, i));
                    }
                    self.tok.extend_from_slice(&data[i..i + run]);
                    i += run;
                    if i == data.len() {
                        break;
                    }
                    self.end_scalar(disp, i).map_err(|e| (e, i))?;
                    // The byte that ended the scalar is read again in the new state.
                    continue;
                }
                _ if is_ws(c) => {}
                St::Value => self.start_value(data, i).map_err(|e| (e, i))?,
                St::ArrayStart if c == b']' => self.close(data, i).map_err(|e| (e, i))?,
                St::ArrayStart => {
                    self.next = self.child(Seg::Index(0));
                    self.start_value(data, i).map_err(|e| (e, i))?;
                }
                St::ObjectStart | St::Key if c == b'"' => {
                    // A member name is read in place; whether it is sent is known at its
                    // value (a dropped member is cut from its comma or its name).
                    self.pending.get_or_insert(i);
                    self.key.clear();
                    self.key_at = Some(i);
                    self.escaped = false;
                    self.st = St::InKey;
                }
                St::ObjectStart if c == b'}' => self.close(data, i).map_err(|e| (e, i))?,
                St::Colon if c == b':' => {
                    let key = std::mem::take(&mut self.key);
                    let raw = match self.key_at {
                        Some(a) => &data[a + 1..self.key_end],
                        None => &key[..],
                    };
                    let next = match self.escaped {
                        false => self.child(Seg::Key(raw)),
                        true => match action::unescape(raw) {
                            Some(k) => self.child(Seg::Key(k.as_bytes())),
                            None => return Err((UNPARSEABLE, i)),
                        },
                    };
                    self.key = key;
                    self.next = next;
                    self.st = St::Value;
                }
                St::AfterValue if c == b',' => {
                    // Copied on unless the next member or element is dropped.
                    self.pending = Some(i);
                    match self.stack.last() {
                        Some(top) if top.array => {
                            self.next = self.child(Seg::Index(top.index));
                            self.st = St::Value;
                        }
                        _ => self.st = St::Key,
                    }
                }
                St::AfterValue if c == b'}' || c == b']' => {
                    self.close(data, i).map_err(|e| (e, i))?
                }
                _ => return Err((UNPARSEABLE, i)),
            }
            i += 1;
        }
        Ok(())
    }

    /// `}` or `]` at `data[i]` ends the innermost container.
    fn close(&mut self, data: &[u8], i: usize) -> Result<(), &'static str> {
        match self.stack.pop() {
            Some(f) if f.array == (data[i] == b']') => {
                self.resume(i);
                self.end_value();
                Ok(())
            }
            _ => Err(UNPARSEABLE),
        }
    }
}

impl BodyRewriter for Rewriter {
    fn on_data(&mut self, data: Bytes, end: bool) -> Result<Bytes, &'static str> {
        self.out.reserve(data.len() + 16);
        self.span = 0;
        if let Err((code, at)) = self.feed(&data) {
            self.give_up(code, &data, at)?;
        }
        if end {
            if let St::Scalar(d) = self.st {
                if let Err(code) = self.end_scalar(d, data.len()) {
                    self.give_up(code, &data, data.len())?;
                }
            }
            // A body of nothing (or only whitespace) stays that.
            let empty = self.st == St::Value && self.stack.is_empty();
            if !matches!(self.st, St::Done | St::Raw) && !empty {
                self.give_up(UNPARSEABLE, &data, data.len())?;
            }
        }
        if let Err((code, at)) = self.end_frame(&data) {
            self.give_up(code, &data, at)?;
            self.end_frame(&data).map_err(|(c, _)| c)?;
        }
        if end {
            self.flush_counts();
        }
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }
}

impl Drop for Rewriter {
    /// A body cut short still counts what was masked in it.
    fn drop(&mut self) {
        self.flush_counts();
    }
}

mod fast;
mod index;
mod output;
mod values;
mod walk;

#[cfg(test)]
mod tests;
