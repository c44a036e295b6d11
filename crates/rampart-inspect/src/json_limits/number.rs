//! RFC 8259 §6 number grammar, one byte at a time.

/// Where in a number the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumberState {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl NumberState {
    /// The state after a number's first byte (`-` or a digit).
    pub(super) fn start(b: u8) -> Self {
        match b {
            b'-' => NumberState::Minus,
            b'0' => NumberState::Zero,
            _ => NumberState::Int,
        }
    }

    /// Whether a number may end here.
    pub(super) fn complete(self) -> bool {
        matches!(
            self,
            NumberState::Zero | NumberState::Int | NumberState::Frac | NumberState::Exp
        )
    }

    /// Whether the next digits stay in this state (a run of them can be taken at once).
    pub(super) fn in_digits(self) -> bool {
        matches!(
            self,
            NumberState::Int | NumberState::Frac | NumberState::Exp
        )
    }

    /// The state after `b`, or `None` when `b` cannot continue the number.
    pub(super) fn step(self, b: u8) -> Option<NumberState> {
        use NumberState::*;
        Some(match (self, b) {
            (Minus, b'0') => Zero,
            (Minus, b'1'..=b'9') => Int,
            (Int, b'0'..=b'9') => Int,
            (Zero | Int, b'.') => Dot,
            (Zero | Int | Frac, b'e' | b'E') => E,
            (Dot | Frac, b'0'..=b'9') => Frac,
            (E, b'+' | b'-') => ESign,
            (E | ESign | Exp, b'0'..=b'9') => Exp,
            _ => return None,
        })
    }
}
