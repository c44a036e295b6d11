//! What goes out: the input copied on in spans, a member written anew after a cut, and
//! what a frame's end sends or holds.

use super::{Rewriter, St};

impl Rewriter {
    /// Stops copying the input at `upto`: what was copied since the last resume goes out.
    pub(super) fn stop(&mut self, data: &[u8], upto: usize) {
        if self.copying {
            self.out.extend_from_slice(&data[self.span..upto]);
            self.copying = false;
        }
    }

    /// Copies the input from `at` on.
    pub(super) fn resume(&mut self, at: usize) {
        if !self.copying {
            self.copying = true;
            self.span = at;
        }
    }

    /// A value that is sent begins at `data[i]`: what goes before it (the comma, and in
    /// an object the member name) is written unless the input is being copied already
    /// (the first element right after `[`), and copying resumes at the value.
    pub(super) fn begin(&mut self, data: &[u8], i: usize) {
        let Some(top) = self.stack.last_mut() else {
            self.resume(i);
            return;
        };
        let first = !top.wrote;
        top.wrote = true;
        if self.copying {
            return;
        }
        if !first {
            self.out.push(b',');
        }
        if !top.array {
            let key = match self.key_at {
                Some(a) => &data[a + 1..self.key_end],
                None => &self.key,
            };
            self.out.push(b'"');
            self.out.extend_from_slice(key);
            self.out.extend_from_slice(b"\":");
        }
        self.resume(i);
    }

    /// Cuts a dropped value out, with its comma and member name when they are in this
    /// frame (otherwise they were never written).
    pub(super) fn cut(&mut self, data: &[u8], i: usize) {
        let from = self.pending.unwrap_or(i);
        self.stop(data, from);
    }

    /// The frame ends: a held value that began in it moves to `tok`; the copy so far
    /// goes out.
    pub(super) fn end_frame(&mut self, data: &[u8]) -> Result<(), (&'static str, usize)> {
        // A member or element not yet decided: nothing of it goes out yet, and its name
        // is held for `begin`.
        if let Some(p) = self.pending.take() {
            self.stop(data, p);
        }
        if let Some(a) = self.key_at.take() {
            let end = if self.st == St::InKey {
                data.len()
            } else {
                self.key_end
            };
            self.key.clear();
            self.key.extend_from_slice(&data[a + 1..end]);
        }
        if let (St::Str(_), Some(p)) = (self.st, self.from) {
            self.stop(data, p);
            self.from = None;
            self.hold(&data[p..]).map_err(|e| (e, p))?;
        }
        if self.copying {
            self.out.extend_from_slice(&data[self.span..]);
            self.span = data.len();
        }
        Ok(())
    }
}
