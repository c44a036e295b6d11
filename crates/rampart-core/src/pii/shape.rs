//! The one-pass prefilter of the detectors.

use super::PiiKind;

/// What a text is made of, counted in one pass: enough to rule out most detectors for
/// most values (a name holds no card number: it has no 13 digits) before any of them
/// scans it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    digits: usize,
    upper: usize,
    dots: usize,
    len: usize,
    at: bool,
    plus: bool,
    dash: bool,
    colon: bool,
}

impl Shape {
    pub fn of(b: &[u8]) -> Shape {
        let mut s = Shape {
            len: b.len(),
            ..Shape::default()
        };
        for &c in b {
            match c {
                b'0'..=b'9' => s.digits += 1,
                b'A'..=b'Z' => s.upper += 1,
                b'.' => s.dots += 1,
                b'@' => s.at = true,
                b'+' => s.plus = true,
                b'-' => s.dash = true,
                b':' => s.colon = true,
                _ => {}
            }
        }
        s
    }

    /// Whether a finding of `kind` is possible at all (a necessary condition).
    pub fn may_hold(&self, kind: PiiKind) -> bool {
        match kind {
            PiiKind::Card => self.digits >= 13,
            PiiKind::Phone => self.plus && self.digits >= 8,
            // The shortest IBAN (Norway) has 15 characters.
            PiiKind::Iban => self.upper >= 2 && self.digits >= 2 && self.len >= 15,
            PiiKind::Email => self.at,
            PiiKind::Ssn => self.dash && self.digits >= 9,
            PiiKind::Jwt => self.dots >= 2 && self.len >= 16,
            PiiKind::ApiKey => self.len >= 16,
            PiiKind::Ip => (self.dots >= 3 && self.digits >= 4) || self.colon,
        }
    }

    /// Whether a finding of any of `kinds` is possible.
    pub fn may_hold_any(&self, kinds: &[PiiKind]) -> bool {
        kinds.iter().any(|k| self.may_hold(*k))
    }
}
