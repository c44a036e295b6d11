//! The fast path's tokens, found 64 bytes at a time: a cursor that classifies a block of
//! the frame at once (SSE2 on x86_64) and hands out, in order, the offset of every byte
//! where a token starts. Walking from token to token is a bit scan, with no loop over
//! a string's bytes or a run of whitespace, and no branch that depends on their length.
//!
//! A token starts at every quote that is not escaped (the opening and the closing quote
//! of each string), at every bracket, colon and comma outside strings, and at the first
//! byte of every run of other bytes outside strings (a number or literal; or something
//! malformed, which the walker refuses to follow). Between two tokens outside a string
//! there is only whitespace (space, tab, line feed, carriage return), or more of the run
//! a token began: the walker reads a number or literal whole and checks where it ends.
//!
//! A cursor starts at a byte outside any string that is not escaped, with nothing carried
//! from before it (the rewriter's state machine stands between two tokens there), so a
//! cursor's view of which bytes are inside strings is the state machine's.

/// Where each byte of a block falls, one bit per byte: quotes, backslashes, brackets,
/// colons and commas, spaces, and controls (below space).
#[derive(Default)]
struct Classes {
    quote: u64,
    backslash: u64,
    op: u64,
    space: u64,
    control: u64,
}

/// `x ^ x << 1 ^ x << 2 ^ ...`: bit `k` is the parity of bits `0..=k`.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The classes of the 64 bytes of `b`.
#[cfg(target_arch = "x86_64")]
fn classify(b: &[u8; 64]) -> Classes {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, m128i, max_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let splat = |c: u8| set_splat_i8_m128i(c as i8);
    let mut c = Classes::default();
    for (k, chunk) in b.chunks_exact(16).enumerate() {
        let mut w = [0u8; 16];
        w.copy_from_slice(chunk);
        let v = m128i::from(w);
        let bits = |m: m128i| u64::from(move_mask_i8_m128i(m) as u16) << (16 * k);
        c.quote |= bits(cmp_eq_mask_i8_m128i(v, splat(b'"')));
        c.backslash |= bits(cmp_eq_mask_i8_m128i(v, splat(b'\\')));
        // `[` and `{`, `]` and `}` differ only in bit 5.
        let folded = bitor_m128i(v, splat(0x20));
        let op = bitor_m128i(
            bitor_m128i(
                cmp_eq_mask_i8_m128i(folded, splat(b'{')),
                cmp_eq_mask_i8_m128i(folded, splat(b'}')),
            ),
            bitor_m128i(
                cmp_eq_mask_i8_m128i(v, splat(b':')),
                cmp_eq_mask_i8_m128i(v, splat(b',')),
            ),
        );
        c.op |= bits(op);
        c.space |= bits(cmp_eq_mask_i8_m128i(v, splat(b' ')));
        c.control |= bits(cmp_eq_mask_i8_m128i(
            max_u8_m128i(v, splat(0x1f)),
            splat(0x1f),
        ));
    }
    c
}

/// The classes of the 64 bytes of `b`, a byte at a time (targets without SSE2).
#[cfg(not(target_arch = "x86_64"))]
fn classify(b: &[u8; 64]) -> Classes {
    let mut c = Classes::default();
    for (k, &x) in b.iter().enumerate() {
        let bit = 1u64 << k;
        match x {
            b'"' => c.quote |= bit,
            b'\\' => c.backslash |= bit,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => c.op |= bit,
            b' ' => c.space |= bit,
            0..0x20 => c.control |= bit,
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
    /// The last byte is inside a string (all ones) or not.
    inside: u64,
    /// The last byte escapes the next.
    escape: bool,
    /// The last byte is in a run of other bytes.
    run: u64,
    /// The end of the last block with a backslash inside a string: a string that began
    /// before it may hold an escape.
    escapes_to: usize,
}

/// The token starts of the block of 64 bytes from `at` (past the frame's end,
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
    let esc = match c.backslash {
        0 if !carry.escape => 0,
        bs => escaped(bs, &mut carry.escape),
    };
    let quotes = c.quote & !esc;
    let inside = prefix_xor(quotes) ^ carry.inside;
    carry.inside = ((inside as i64) >> 63) as u64;
    let mut ws = c.space;
    // Of the controls outside strings, tab, line feed and carriage return are
    // whitespace; any other is a run of other bytes (something malformed).
    let mut controls = c.control & !inside;
    while controls != 0 {
        let k = controls.trailing_zeros() as usize;
        if matches!(b[k], b'\t' | b'\n' | b'\r') {
            ws |= 1 << k;
        }
        controls &= controls - 1;
    }
    let other = !(c.op | ws | c.quote);
    let starts = other & !(other << 1 | carry.run);
    carry.run = other >> 63;
    if c.backslash & inside != 0 {
        carry.escapes_to = at + 64;
    }
    ((c.op | starts) & !inside) | quotes
}

/// Hands out a frame's token starts in order (see the module's documentation).
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    /// The frame offset of the current block's first byte.
    at: usize,
    /// The current block's token starts not yet handed out.
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

    /// The next token's offset in the frame, or `None` when the frame has no more.
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

    /// Passes over the tokens before `to` (the end of a value read without the cursor).
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
