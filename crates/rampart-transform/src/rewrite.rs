//! The streaming JSON rewriter: one pass over the response body's frames, in bounded
//! memory, that drops members a field list does not let through, masks values by path and
//! by detector, and writes everything else as it came (whitespace between tokens is
//! dropped). It holds at most one member name and one value (up to `max_value_bytes`),
//! whatever the body's size, so a value split across two frames is masked like any other.
//!
//! The output is re-serialised from what this parser read, never passed through around
//! it: a body the parser cannot follow is refused (or, with `on_unparseable: pass`, the
//! rest goes on as it came), so a client never parses something the masker did not see.

use std::sync::Arc;

use bytes::Bytes;
use rampart_config::MaskAction;
use rampart_core::pii::{self, Found};
use rampart_core::{BodyCounts, BodyRewriter};

use crate::action::{self, REDACTED};
use crate::path::{Seg, States};
use crate::{FieldList, MaskPlan};

/// The abort codes (the access log's `code`).
const UNPARSEABLE: &str = "mask.unparseable";
const TOO_LARGE: &str = "mask.value_too_large";

/// The length of the string content at the start of `b`: up to its closing quote or
/// its next escape. Most strings in an API's JSON are short, where a byte loop beats
/// `memchr`'s setup; a long one goes to `memchr` after its first 32 bytes.
fn string_end(b: &[u8]) -> usize {
    let head = b.len().min(32);
    match b[..head].iter().position(|&c| c == b'"' || c == b'\\') {
        Some(n) => n,
        None => head + memchr::memchr2(b'"', b'\\', &b[head..]).unwrap_or(b.len() - head),
    }
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
        }
    }

    fn count(&self, rule: usize) {
        if let Some(c) = &self.counts {
            c.add(rule);
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
        let strongest = if m.paths.accepts(c.mask) {
            m.paths
                .accepted(c.mask)
                .map(|r| (m.actions[r], std::cmp::Reverse(r)))
                .max()
        } else {
            None
        };
        match strongest {
            Some((MaskAction::Remove, r)) => (Disp::Mask(MaskAction::Remove, r.0), below),
            Some((a, r)) => (Disp::Mask(a, r.0), below),
            None if m.detect.is_empty() => (Disp::Pass, below),
            None => (Disp::Inspect, below),
        }
    }

    /// Writes what goes before a value that is sent: the comma, and in an object the
    /// member name.
    fn prefix(&mut self) {
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        if top.wrote {
            self.out.push(b',');
        }
        top.wrote = true;
        if !top.array {
            self.out.push(b'"');
            self.out.extend_from_slice(&self.key);
            self.out.extend_from_slice(b"\":");
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

    /// Starts the value whose first byte is `c`.
    fn start_value(&mut self, c: u8) -> Result<(), &'static str> {
        let container = c == b'{' || c == b'[';
        let (disp, below) = self.decide(self.next, container);
        match c {
            b'{' | b'[' => match disp {
                Disp::Drop | Disp::Mask(MaskAction::Remove, _) => {
                    if let Disp::Mask(_, r) = disp {
                        self.count(r);
                    }
                    self.st = St::Skip(1);
                }
                Disp::Mask(_, r) => {
                    self.count(r);
                    self.prefix();
                    self.out.push(b'"');
                    self.out.extend_from_slice(REDACTED.as_bytes());
                    self.out.push(b'"');
                    self.st = St::Skip(1);
                }
                Disp::Inspect | Disp::Pass => {
                    self.prefix();
                    self.out.push(c);
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
                }
            },
            b'"' => {
                self.tok.clear();
                self.escaped = false;
                if disp == Disp::Pass {
                    self.prefix();
                    self.out.push(b'"');
                }
                self.st = St::Str(disp);
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                self.tok.clear();
                self.tok.push(c);
                self.st = St::Scalar(disp);
            }
            _ => return Err(UNPARSEABLE),
        }
        Ok(())
    }

    /// A held string value ended (its raw content is in `tok`).
    fn end_string(&mut self, disp: Disp) -> Result<(), &'static str> {
        match disp {
            Disp::Pass => self.out.push(b'"'),
            Disp::Drop => {}
            Disp::Mask(MaskAction::Remove, r) => self.count(r),
            Disp::Mask(action, r) => {
                self.count(r);
                let text = action::unescape(&self.tok).ok_or(UNPARSEABLE)?;
                self.prefix();
                self.out.push(b'"');
                let m = self.mask.as_deref().ok_or(UNPARSEABLE)?;
                action::write(&mut self.out, action, &text, None, m.key.as_ref());
                self.out.push(b'"');
            }
            Disp::Inspect => {
                let tok = std::mem::take(&mut self.tok);
                let r = self.inspect(&tok, true);
                self.tok = tok;
                r?;
            }
        }
        self.end_value();
        Ok(())
    }

    /// Writes a held string (`quoted`) or number, with whatever the detectors find in it
    /// masked.
    fn inspect(&mut self, raw: &[u8], quoted: bool) -> Result<(), &'static str> {
        let Some(m) = self.mask.clone() else {
            return Err(UNPARSEABLE);
        };
        self.found.clear();
        // Most values cannot hold any configured kind (a name has no 13 digits and no
        // `@`): one counting pass over the bytes rules them out, and they are written as
        // they came. A value with escapes is decoded first, so `\u0040` counts as `@`.
        let decoded;
        let text = if quoted && self.escaped {
            decoded = action::unescape(raw).ok_or(UNPARSEABLE)?;
            decoded.as_str()
        } else if pii::Shape::of(raw).may_hold_any(&m.kinds) {
            std::str::from_utf8(raw).map_err(|_| UNPARSEABLE)?
        } else {
            ""
        };
        if !text.is_empty() {
            pii::find_all(text, &m.kinds, &mut self.found);
        }
        self.prefix();
        if self.found.is_empty() {
            if quoted {
                self.out.push(b'"');
            }
            self.out.extend_from_slice(raw);
            if quoted {
                self.out.push(b'"');
            }
            return Ok(());
        }
        // A masked number becomes a string.
        self.out.push(b'"');
        let mut at = 0;
        for f in &self.found {
            action::escape(&mut self.out, &text[at..f.start]);
            let (i, action) = m.rule_of(f.kind);
            action::write(
                &mut self.out,
                action,
                &text[f.start..f.end],
                Some(f.kind.name()),
                m.key.as_ref(),
            );
            if let Some(c) = &self.counts {
                c.add(i);
            }
            at = f.end;
        }
        action::escape(&mut self.out, &text[at..]);
        self.out.push(b'"');
        Ok(())
    }

    /// A number or literal ended (it is in `tok`).
    fn end_scalar(&mut self, disp: Disp) -> Result<(), &'static str> {
        let tok = std::mem::take(&mut self.tok);
        let r = self.write_scalar(&tok, disp);
        self.tok = tok;
        r?;
        self.end_value();
        Ok(())
    }

    fn write_scalar(&mut self, tok: &[u8], disp: Disp) -> Result<(), &'static str> {
        let number = match tok {
            b"true" | b"false" | b"null" => false,
            t if action::is_number(t) => true,
            _ => return Err(UNPARSEABLE),
        };
        match disp {
            Disp::Drop => {}
            Disp::Mask(MaskAction::Remove, r) => self.count(r),
            // Nothing to hide in a null.
            Disp::Mask(_, _) if tok == b"null" => {
                self.prefix();
                self.out.extend_from_slice(tok);
            }
            Disp::Mask(action, r) => {
                self.count(r);
                self.prefix();
                self.out.push(b'"');
                let m = self.mask.as_deref().ok_or(UNPARSEABLE)?;
                let text = std::str::from_utf8(tok).map_err(|_| UNPARSEABLE)?;
                action::write(&mut self.out, action, text, None, m.key.as_ref());
                self.out.push(b'"');
            }
            Disp::Inspect if number => self.inspect(tok, false)?,
            Disp::Inspect | Disp::Pass => {
                self.prefix();
                self.out.extend_from_slice(tok);
            }
        }
        Ok(())
    }

    /// Runs the state machine over `data`.
    fn feed(&mut self, data: &[u8]) -> Result<(), (&'static str, usize)> {
        let mut i = 0;
        while i < data.len() {
            let c = data[i];
            match self.st {
                St::Raw => {
                    self.out.extend_from_slice(&data[i..]);
                    return Ok(());
                }
                St::Str(_) | St::InKey if !self.esc => {
                    let rest = &data[i..];
                    let n = string_end(rest);
                    self.string_bytes(&rest[..n]).map_err(|e| (e, i))?;
                    i += n;
                    if i == data.len() {
                        break;
                    }
                    if data[i] == b'\\' {
                        self.string_bytes(b"\\").map_err(|e| (e, i))?;
                        self.esc = true;
                        self.escaped = true;
                        i += 1;
                        continue;
                    }
                    i += 1;
                    match self.st {
                        St::Str(disp) => self.end_string(disp).map_err(|e| (e, i))?,
                        _ => self.st = St::Colon,
                    }
                    continue;
                }
                St::Str(_) | St::InKey | St::SkipStr(_) if self.esc => {
                    self.esc = false;
                    if !matches!(self.st, St::SkipStr(_)) {
                        self.string_bytes(&data[i..=i]).map_err(|e| (e, i))?;
                    }
                }
                St::SkipStr(d) => match c {
                    b'\\' => self.esc = true,
                    b'"' => self.st = St::Skip(d),
                    _ => {}
                },
                St::Skip(d) => match c {
                    b'"' => self.st = St::SkipStr(d),
                    b'{' | b'[' => self.st = St::Skip(d + 1),
                    b'}' | b']' if d == 1 => self.end_value(),
                    b'}' | b']' => self.st = St::Skip(d - 1),
                    _ => {}
                },
                St::Scalar(disp) => {
                    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.') {
                        if self.tok.len() >= self.max_value {
                            return Err((TOO_LARGE, i));
                        }
                        self.tok.push(c);
                    } else {
                        self.end_scalar(disp).map_err(|e| (e, i))?;
                        // The byte that ended the scalar is read again in the new state.
                        continue;
                    }
                }
                _ if matches!(c, b' ' | b'\t' | b'\n' | b'\r') => {}
                St::Value => self.start_value(c).map_err(|e| (e, i))?,
                St::ArrayStart if c == b']' => self.close(c).map_err(|e| (e, i))?,
                St::ArrayStart => {
                    self.next = self.child(Seg::Index(0));
                    self.start_value(c).map_err(|e| (e, i))?;
                }
                St::ObjectStart | St::Key if c == b'"' => {
                    self.key.clear();
                    self.escaped = false;
                    self.st = St::InKey;
                }
                St::ObjectStart if c == b'}' => self.close(c).map_err(|e| (e, i))?,
                St::Colon if c == b':' => {
                    let key = std::mem::take(&mut self.key);
                    let next = match self.escaped {
                        false => self.child(Seg::Key(&key)),
                        true => match action::unescape(&key) {
                            Some(k) => self.child(Seg::Key(k.as_bytes())),
                            None => return Err((UNPARSEABLE, i)),
                        },
                    };
                    self.key = key;
                    self.next = next;
                    self.st = St::Value;
                }
                St::AfterValue if c == b',' => match self.stack.last() {
                    Some(top) if top.array => {
                        self.next = self.child(Seg::Index(top.index));
                        self.st = St::Value;
                    }
                    _ => self.st = St::Key,
                },
                St::AfterValue if c == b'}' || c == b']' => self.close(c).map_err(|e| (e, i))?,
                _ => return Err((UNPARSEABLE, i)),
            }
            i += 1;
        }
        Ok(())
    }

    /// Bytes of a string's content: held, or written as they come.
    fn string_bytes(&mut self, b: &[u8]) -> Result<(), &'static str> {
        match self.st {
            St::Str(Disp::Pass) => self.out.extend_from_slice(b),
            St::InKey => {
                if self.key.len() + b.len() > self.max_value {
                    return Err(TOO_LARGE);
                }
                self.key.extend_from_slice(b);
            }
            St::Str(Disp::Drop) | St::Str(Disp::Mask(MaskAction::Remove, _)) => {}
            _ => {
                if self.tok.len() + b.len() > self.max_value {
                    return Err(TOO_LARGE);
                }
                self.tok.extend_from_slice(b);
            }
        }
        Ok(())
    }

    /// `}` or `]` ends the innermost container.
    fn close(&mut self, c: u8) -> Result<(), &'static str> {
        match self.stack.pop() {
            Some(f) if f.array == (c == b']') => {
                self.out.push(c);
                self.end_value();
                Ok(())
            }
            _ => Err(UNPARSEABLE),
        }
    }

    /// The body cannot be followed from `data[at..]` on: refuse it, or (`pass`) let the
    /// rest go as it came.
    fn give_up(&mut self, code: &'static str, data: &[u8], at: usize) -> Result<(), &'static str> {
        if !self.pass {
            return Err(code);
        }
        tracing::warn!(
            code,
            "masking gave up on a response body; the rest passes unmasked"
        );
        match self.st {
            // A string too long to hold: what was held, then the rest, unmasked.
            St::Str(Disp::Pass) => {}
            St::Str(Disp::Inspect | Disp::Mask(MaskAction::Last4 | MaskAction::Hash, _))
            | St::Str(Disp::Mask(MaskAction::Redact, _)) => {
                self.prefix();
                self.out.push(b'"');
                let tok = std::mem::take(&mut self.tok);
                self.out.extend_from_slice(&tok);
            }
            // A member name read, its value not begun: the name goes first.
            St::Value if self.stack.last().is_some_and(|f| !f.array) => self.prefix(),
            _ => {}
        }
        self.st = St::Raw;
        self.out.extend_from_slice(&data[at..]);
        Ok(())
    }
}

impl BodyRewriter for Rewriter {
    fn on_data(&mut self, data: Bytes, end: bool) -> Result<Bytes, &'static str> {
        self.out.reserve(data.len() + 16);
        if let Err((code, at)) = self.feed(&data) {
            self.give_up(code, &data, at)?;
        }
        if end {
            if let St::Scalar(d) = self.st {
                if let Err(code) = self.end_scalar(d) {
                    self.give_up(code, &[], 0)?;
                }
            }
            // A body of nothing (or only whitespace) stays that.
            let empty = self.st == St::Value && self.stack.is_empty();
            if !matches!(self.st, St::Done | St::Raw) && !empty {
                self.give_up(UNPARSEABLE, &[], 0)?;
            }
        }
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }
}

#[cfg(test)]
mod tests;
