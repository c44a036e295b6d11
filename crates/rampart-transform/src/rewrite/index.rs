//! The fast path's quotes, found 64 bytes at a time: a cursor that classifies a block of
//! the frame at once (SSE2 on x86_64) and hands out, in order, the offset of every quote
//! that is not escaped. The walker reads the bytes between strings itself (brackets,
//! colons, commas, whitespace, numbers and literals are short); a string's end is then a
//! bit scan, with no loop over its bytes and no branch that depends on its length.
//!
//! A cursor starts at a byte outside any string that is not escaped, with nothing carried
//! from before it (the rewriter's state machine stands between two tokens there). The
//! walker takes each opening quote from the cursor at the offset where it read one, so a
//! quote the cursor saw that the walker did not (after something malformed the walker
//! stopped at) is never taken as a string's end.

/// Where each byte of a block falls, one bit per byte: quotes and backslashes.
#[derive(Default)]
struct Classes {
    quote: u64,
    backslash: u64,
}

/// The classes of the 64 bytes of `b`. Most blocks hold no backslash: their backslash
/// compares are only OR-ed together and tested once.
#[cfg(target_arch = "x86_64")]
fn classify(b: &[u8; 64]) -> Classes {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
        zeroed_m128i,
    };
    let quote = set_splat_i8_m128i(b'"' as i8);
    let backslash = set_splat_i8_m128i(b'\\' as i8);
    let load = |k: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&b[16 * k..16 * k + 16]);
        m128i::from(w)
    };
    let bits = |m: m128i, k: usize| u64::from(move_mask_i8_m128i(m) as u16) << (16 * k);
    let mut c = Classes::default();
    let mut any = zeroed_m128i();
    for k in 0..4 {
        let v = load(k);
        c.quote |= bits(cmp_eq_mask_i8_m128i(v, quote), k);
        any = bitor_m128i(any, cmp_eq_mask_i8_m128i(v, backslash));
    }
    if move_mask_i8_m128i(any) != 0 {
        for k in 0..4 {
            c.backslash |= bits(cmp_eq_mask_i8_m128i(load(k), backslash), k);
        }
    }
    c
}

/// The classes of the 64 bytes of `b`, a byte at a time (targets without SSE2).
#[cfg(not(target_arch = "x86_64"))]
fn classify(b: &[u8; 64]) -> Classes {
    let mut c = Classes::default();
    for (k, &x) in b.iter().enumerate() {
        match x {
            b'"' => c.quote |= 1 << k,
            b'\\' => c.backslash |= 1 << k,
            _ => {}
        }
    }
    c
}

/// The bytes escaped by a backslash (`backslashes`: the block's; `carry`: the last byte
/// of the block before escapes the first of this one, updated for the next).
fn escaped(backslashes: u64, carry: &mut bool) -> u64 {
    let mut esc = 0;
    let mut bits = backslashes;
    if std::mem::take(carry) {
        esc = 1;
        bits &= !1;
    }
    while bits != 0 {
        let k = bits.trailing_zeros();
        if k == 63 {
            *carry = true;
            break;
        }
        // The byte after an escaping backslash is escaped, and escapes nothing itself.
        esc |= 2 << k;
        bits &= !(3 << k);
    }
    esc
}

/// What one block passes on to the next.
#[derive(Default)]
struct Carry {
    /// The last byte escapes the next.
    escape: bool,
    /// The end of the last block with a backslash: a string that began before it may
    /// hold an escape.
    escapes_to: usize,
}

/// The unescaped quotes of the block of 64 bytes from `at` (past the frame's end,
/// spaces).
fn block(data: &[u8], at: usize, carry: &mut Carry) -> u64 {
    let pad;
    let b: &[u8; 64] = match data.get(at..at + 64).map(<&[u8; 64]>::try_from) {
        Some(Ok(b)) => b,
        _ => {
            let rest = data.get(at..).unwrap_or_default();
            let mut p = [b' '; 64];
            let n = rest.len().min(64);
            p[..n].copy_from_slice(&rest[..n]);
            pad = p;
            &pad
        }
    };
    let c = classify(b);
    if c.backslash == 0 && !carry.escape {
        return c.quote;
    }
    if c.backslash != 0 {
        carry.escapes_to = at + 64;
    }
    c.quote & !escaped(c.backslash, &mut carry.escape)
}

/// Hands out a frame's unescaped quotes in order (see the module's documentation).
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    /// The frame offset of the current block's first byte.
    at: usize,
    /// The current block's quotes not yet handed out.
    bits: u64,
    carry: Carry,
}

impl<'a> Cursor<'a> {
    /// A cursor over `data` from `from`, a byte outside any string.
    pub(super) fn new(data: &'a [u8], from: usize) -> Cursor<'a> {
        let mut carry = Carry::default();
        let bits = block(data, from, &mut carry);
        Cursor {
            data,
            at: from,
            bits,
            carry,
        }
    }

    /// The next quote's offset in the frame, or `None` when the frame has no more.
    #[inline(always)]
    pub(super) fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            if self.at + 64 >= self.data.len() {
                return None;
            }
            self.at += 64;
            self.bits = block(self.data, self.at, &mut self.carry);
        }
        let p = self.at + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(p)
    }

    /// Passes over the quotes before `to` (the end of a value read without the cursor).
    pub(super) fn skip_to(&mut self, to: usize) {
        loop {
            while self.bits == 0 {
                if self.at + 64 >= self.data.len() || self.at + 64 >= to {
                    return;
                }
                self.at += 64;
                self.bits = block(self.data, self.at, &mut self.carry);
            }
            if self.at + self.bits.trailing_zeros() as usize >= to {
                return;
            }
            self.bits &= self.bits - 1;
        }
    }

    /// Whether the string whose opening quote is at `open` and closing quote at `close`
    /// holds a backslash.
    pub(super) fn escaped(&self, open: usize, close: usize) -> bool {
        self.carry.escapes_to > open && memchr::memchr(b'\\', &self.data[open + 1..close]).is_some()
    }
}

#[cfg(test)]
mod tests;
