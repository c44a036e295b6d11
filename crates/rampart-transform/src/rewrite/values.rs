//! The values the rewriter holds: strings masked by path or scanned by the detectors,
//! numbers and literals; the scan for a string's end; and giving up on a body.

use rampart_config::MaskAction;
use rampart_core::{pii, BodyCounts};

use super::{Disp, Rewriter, St, TOO_LARGE, UNPARSEABLE};
use crate::action;

/// The length of the string content at the start of `b`: up to its closing quote or
/// its next escape. Sixteen bytes at a time on x86_64 (SSE2: two compares and a mask),
/// eight at a time in a word elsewhere and for the last few bytes of a frame, so a
/// short string costs a few instructions; a long one goes to `memchr` after 64 bytes.
pub(super) fn string_end(b: &[u8]) -> usize {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use safe_arch::{
            bitor_m128i, cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
        };
        let quote = set_splat_i8_m128i(b'"' as i8);
        let backslash = set_splat_i8_m128i(b'\\' as i8);
        while let Some(chunk) = b.get(i..i + 16) {
            if i >= 64 {
                return i + memchr::memchr2(b'"', b'\\', &b[i..]).unwrap_or(b.len() - i);
            }
            let mut w = [0u8; 16];
            w.copy_from_slice(chunk);
            let v = m128i::from(w);
            let hit = move_mask_i8_m128i(bitor_m128i(
                cmp_eq_mask_i8_m128i(v, quote),
                cmp_eq_mask_i8_m128i(v, backslash),
            ));
            if hit != 0 {
                return i + hit.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    while i + 8 <= b.len() && i < 64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let v = u64::from_le_bytes(w);
        let hit = zero(v ^ (ONES * u64::from(b'"'))) | zero(v ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i >= 64 {
        return i + memchr::memchr2(b'"', b'\\', &b[i..]).unwrap_or(b.len() - i);
    }
    i + b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .unwrap_or(b.len() - i)
}

/// Whether a string's raw content is text (UTF-8); ASCII needs no decoding pass.
pub(super) fn is_text(raw: &[u8]) -> bool {
    raw.is_ascii() || std::str::from_utf8(raw).is_ok()
}

/// How many rules' counts a rewriter tallies itself (the rest go straight to the
/// exchange's counts).
pub(super) const TALLY: usize = 8;

/// Counts one action of `rule` in `tally`, or in `counts` past the tally's end.
pub(super) fn tally(tally: &mut [u32; TALLY], counts: Option<&BodyCounts>, rule: usize) {
    match tally.get_mut(rule) {
        Some(n) => *n += 1,
        None => {
            if let Some(c) = counts {
                c.add(rule);
            }
        }
    }
}

impl Rewriter {
    /// Counts one action of `rule`.
    pub(super) fn count(&mut self, rule: usize) {
        tally(&mut self.tally, self.counts.as_deref(), rule);
    }

    /// Adds the tallied counts to the exchange's.
    pub(super) fn flush_counts(&mut self) {
        if let Some(c) = &self.counts {
            for (i, n) in self.tally.iter_mut().enumerate() {
                if *n > 0 {
                    c.add_n(i, std::mem::take(n));
                }
            }
        }
    }

    /// A string value ends with the quote at `data[q]`; its content is `data[from..q]`
    /// or, when it began in an earlier frame, held in `tok` (and then nothing of it
    /// has been written but the opening quote).
    pub(super) fn end_string(
        &mut self,
        disp: Disp,
        data: &[u8],
        q: usize,
    ) -> Result<(), &'static str> {
        let from = self.from.take();
        if from.is_some_and(|p| q - p > self.max_value) {
            // The same bound as for a value held across frames.
            return Err(TOO_LARGE);
        }
        match disp {
            Disp::Pass | Disp::Drop => {}
            Disp::Mask(MaskAction::Remove, r) => self.count(r),
            Disp::Mask(action, r) => {
                self.count(r);
                let tok = std::mem::take(&mut self.tok);
                let raw = from.map_or(&tok[..], |p| &data[p..q]);
                let decoded;
                let text = if self.escaped {
                    decoded = action::unescape(raw).ok_or(UNPARSEABLE)?;
                    decoded.as_bytes()
                } else if is_text(raw) {
                    raw
                } else {
                    return Err(UNPARSEABLE);
                };
                self.write_mask(data, from, q, action, text);
                self.tok = tok;
            }
            Disp::Inspect => {
                let tok = std::mem::take(&mut self.tok);
                let raw = from.map_or(&tok[..], |p| &data[p..q]);
                let r = self.inspect(raw, true);
                let changed = !self.found.is_empty();
                match (r, from) {
                    (Err(e), _) => {
                        self.tok = tok;
                        return Err(e);
                    }
                    // Found nothing, in place: the copy goes on over it.
                    (Ok(masked), Some(_)) if !changed => drop(masked),
                    (Ok(masked), Some(p)) => {
                        self.stop(data, p);
                        self.out.extend_from_slice(&masked);
                        self.resume(q);
                    }
                    (Ok(masked), None) => {
                        self.out
                            .extend_from_slice(if changed { &masked } else { &tok });
                        self.resume(q);
                    }
                }
                self.tok = tok;
            }
        }
        self.end_value();
        Ok(())
    }

    /// Scans a string's raw content (`quoted`) or a number for the detectors: the
    /// masked form (JSON-escaped, without quotes) when something was found, in
    /// `self.found`'s order; empty otherwise.
    fn inspect(&mut self, raw: &[u8], quoted: bool) -> Result<Vec<u8>, &'static str> {
        let Some(m) = self.mask.clone() else {
            return Err(UNPARSEABLE);
        };
        self.found.clear();
        // Most values cannot hold any configured kind (a name has no 13 digits and no
        // `@`): one counting pass over the bytes rules them out, and they stay as they
        // came. A value with escapes is decoded first, so `\u0040` counts as `@`.
        let decoded;
        let text = if quoted && self.escaped {
            decoded = action::unescape(raw).ok_or(UNPARSEABLE)?;
            decoded.as_str()
        } else if self.may_hold(raw) {
            std::str::from_utf8(raw).map_err(|_| UNPARSEABLE)?
        } else {
            return Ok(Vec::new());
        };
        pii::find_all(text, &m.kinds, &mut self.found);
        let mut out = Vec::new();
        if self.found.is_empty() {
            return Ok(out);
        }
        let mut at = 0;
        for f in &self.found {
            action::escape(&mut out, &text[at..f.start]);
            let (i, action) = m.rule_of(f.kind);
            action::write(
                &mut out,
                action,
                &text.as_bytes()[f.start..f.end],
                Some(f.kind.name()),
                m.key.as_ref(),
            );
            tally(&mut self.tally, self.counts.as_deref(), i);
            at = f.end;
        }
        action::escape(&mut out, &text[at..]);
        Ok(out)
    }

    /// Writes `text`, the decoded value of the string that ends with the quote at
    /// `data[q]`, masked under `action` in place of its content, which began at `from`
    /// in this frame (`None`: held, so nothing of it was written but the opening quote).
    #[inline(always)]
    pub(super) fn write_mask(
        &mut self,
        data: &[u8],
        from: Option<usize>,
        q: usize,
        action: MaskAction,
        text: &[u8],
    ) {
        if let Some(p) = from {
            self.stop(data, p);
        }
        let key = self.mask.as_ref().and_then(|m| m.key.as_ref());
        action::write(&mut self.out, action, text, None, key);
        self.resume(q);
    }

    /// Whether the detectors could find anything in `raw`: most values are ruled out by
    /// one counting pass ([`Rewriter::inspect`] first, and the fast path before it passes
    /// a value on).
    pub(super) fn may_hold(&self, raw: &[u8]) -> bool {
        self.mask
            .as_ref()
            .is_none_or(|m| pii::Shape::of(raw).may_hold_any(&m.kinds))
    }

    /// A number or literal (in `tok`) ended before offset `i` of the frame.
    pub(super) fn end_scalar(&mut self, disp: Disp, i: usize) -> Result<(), &'static str> {
        let tok = std::mem::take(&mut self.tok);
        let r = self.write_scalar(&tok, disp);
        self.tok = tok;
        r?;
        if !matches!(
            disp,
            Disp::Pass | Disp::Drop | Disp::Mask(MaskAction::Remove, _)
        ) {
            self.resume(i);
        }
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
            Disp::Pass | Disp::Drop => {}
            Disp::Mask(MaskAction::Remove, r) => self.count(r),
            // Nothing to hide in a null.
            Disp::Mask(_, _) if tok == b"null" => self.out.extend_from_slice(tok),
            Disp::Mask(action, r) => {
                self.count(r);
                self.out.push(b'"');
                let m = self.mask.clone().ok_or(UNPARSEABLE)?;
                // A number or literal: ASCII (`is_number` or one of the three words).
                action::write(&mut self.out, action, tok, None, m.key.as_ref());
                self.out.push(b'"');
            }
            Disp::Inspect if number => {
                let masked = self.inspect(tok, false)?;
                if self.found.is_empty() {
                    self.out.extend_from_slice(tok);
                } else {
                    // A masked number becomes a string.
                    self.out.push(b'"');
                    self.out.extend_from_slice(&masked);
                    self.out.push(b'"');
                }
            }
            Disp::Inspect => self.out.extend_from_slice(tok),
        }
        Ok(())
    }

    /// The body cannot be followed from `data[at..]` on: refuse it, or (`pass`) let the
    /// rest go as it came.
    pub(super) fn give_up(
        &mut self,
        code: &'static str,
        data: &[u8],
        at: usize,
    ) -> Result<(), &'static str> {
        if !self.pass {
            return Err(code);
        }
        tracing::warn!(
            code,
            "masking gave up on a response body; the rest passes unmasked"
        );
        if !self.copying {
            match self.st {
                // A string too long to hold: what was held, then the rest, unmasked.
                St::Str(Disp::Mask(MaskAction::Remove, _) | Disp::Drop) => {}
                St::Str(_) if self.from.is_none() => {
                    let tok = std::mem::take(&mut self.tok);
                    self.out.extend_from_slice(&tok);
                }
                // A member name read, its value not begun: the name goes first.
                St::Value if self.stack.last().is_some_and(|f| !f.array) => self.begin(data, at),
                _ => {}
            }
        }
        // What was held back for an undecided member (its comma, its name) goes too.
        let from = match self.pending {
            Some(p) if !self.copying => p,
            _ => at,
        };
        self.pending = None;
        self.key_at = None;
        self.from = None;
        self.resume(from);
        self.st = St::Raw;
        Ok(())
    }
}
