//! Injection detection (`routes[].inspect`): SQL injection, XSS, path traversal, command
//! injection and SSRF in the decoded leaf values of a request, scored the way OWASP CRS
//! scores (each finding adds its severity; the request is refused at a threshold), with
//! paranoia levels 1–4 selecting the rule sets.
//!
//! SQLi and XSS are found by libinjection's tokenizers and fingerprints (the
//! `libinjectionrs` port, pinned exactly: it runs behind [`InjectionDetector`], inside
//! `catch_unwind`, so a panic in it is a finding of its own, `waf.detector_error`, never
//! a crash; `fuzz/fuzz_targets/injection.rs` drives it). The other detectors and the
//! higher levels' keyword rules are ours ([`rules`]).
//!
//! Work per value is bounded: a value longer than [`WINDOW`] is inspected in overlapping
//! windows of that size, so the cost is linear in the request's size (which the route's
//! body limit bounds) and padding cannot push a payload out of sight.

mod decode;
mod filter;
mod rules;
#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};

use rampart_core::Reason;

pub(crate) use filter::{compile, sampled};

/// The longest run of a value a detector sees at once.
pub const WINDOW: usize = 8 * 1024;
/// How far consecutive windows overlap, so a payload across a boundary is seen whole.
const OVERLAP: usize = 512;

/// What a finding is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Sqli,
    Xss,
    Traversal,
    Command,
    Ssrf,
    /// A detector failed (panicked) on the value: counted as a critical finding, so a
    /// crafted value that breaks a detector is refused rather than waved through.
    Error,
}

impl Detector {
    pub const ALL: [Detector; 6] = [
        Detector::Sqli,
        Detector::Xss,
        Detector::Traversal,
        Detector::Command,
        Detector::Ssrf,
        Detector::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::Sqli => "sqli",
            Detector::Xss => "xss",
            Detector::Traversal => "traversal",
            Detector::Command => "command",
            Detector::Ssrf => "ssrf",
            Detector::Error => "detector_error",
        }
    }

    pub fn reason(self) -> Reason {
        match self {
            Detector::Sqli => Reason::WafSqli,
            Detector::Xss => Reason::WafXss,
            Detector::Traversal => Reason::WafTraversal,
            Detector::Command => Reason::WafCommand,
            Detector::Ssrf => Reason::WafSsrf,
            Detector::Error => Reason::WafDetectorError,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One rule's match in one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    /// The rule (`sqli.libinjection`, `traversal.dot_dot`, …), for logs.
    pub rule: &'static str,
    /// The points it adds: 5 critical, 4 error, 3 warning, 2 notice.
    pub severity: u8,
}

/// The findings in one value: the most severe per detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings([Option<Finding>; 6]);

impl Findings {
    fn add(&mut self, detector: Detector, rule: &'static str, severity: u8) {
        let slot = &mut self.0[detector.index()];
        if slot.is_none_or(|f| f.severity < severity) {
            *slot = Some(Finding {
                detector,
                rule,
                severity,
            });
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Finding> + '_ {
        self.0.iter().flatten().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The value's points: one finding per detector counts.
    pub fn score(&self) -> u32 {
        self.iter().map(|f| u32::from(f.severity)).sum()
    }
}

/// The detectors of one paranoia level.
#[derive(Debug, Clone, Copy)]
pub struct InjectionDetector {
    paranoia: u8,
}

impl InjectionDetector {
    /// The detectors of `paranoia` (1–4; out-of-range values are clamped).
    pub fn new(paranoia: u8) -> Self {
        InjectionDetector {
            paranoia: paranoia.clamp(1, 4),
        }
    }

    /// The paranoia level, 1–4.
    pub fn paranoia(&self) -> u8 {
        self.paranoia
    }

    /// The findings in one value: as sent, URL-decoded again (up to three rounds), then
    /// HTML-decoded, then with script escapes and fullwidth forms read as ASCII.
    pub fn scan(&self, value: &str) -> Findings {
        let mut out = Findings::default();
        if plain(value) {
            return out;
        }
        let mut start = 0;
        loop {
            let end = boundary(value, start + WINDOW);
            let window = &value[start..end];
            self.scan_window(window, &mut out);
            if end == value.len() {
                break;
            }
            start = boundary(value, end - OVERLAP);
        }
        out
    }

    fn scan_window(&self, raw: &str, out: &mut Findings) {
        // Up to three more rounds of URL decoding: each round an upstream framework
        // might apply is one an attacker can hide behind.
        let mut url = decode::url(raw);
        for _ in 0..2 {
            match decode::url(&url) {
                std::borrow::Cow::Owned(next) if next != *url => url = next.into(),
                _ => break,
            }
        }
        let mut html = decode::html(&url);
        // Browsers drop tabs and newlines inside a URL (`jav&#x09;ascript:`).
        if *html != *url && html.contains(['\t', '\n', '\r']) {
            html = html.replace(['\t', '\n', '\r'], "").into();
        }
        let script = decode::escapes(&html);
        let folded = decode::fold_width(&script);
        self.scan_form(raw, out);
        if *url != *raw {
            self.scan_form(&url, out);
        }
        if *html != *url {
            self.scan_form(&html, out);
        }
        if *folded != *html {
            self.scan_form(&folded, out);
        }
    }

    fn scan_form(&self, v: &str, out: &mut Findings) {
        if plain(v) {
            return;
        }
        let b = v.as_bytes();
        let special = rules::special(b);
        // Digits, spaces and `()+-./,` alone (phone numbers, dates, sums) change no
        // query's meaning, but libinjection's fingerprints match some of them.
        let numeric = b.iter().all(|c| {
            c.is_ascii_digit() || matches!(c, b' ' | b'(' | b')' | b'+' | b'-' | b'.' | b'/' | b',')
        });
        // libinjection's SQL tokenizer is the costliest detector: only where SQL could be
        // (a quote, a comment, an operator, a bracket, or a SQL word).
        let sql_bytes = b.iter().any(|c| {
            matches!(
                c,
                b'\''
                    | b'"'
                    | b'`'
                    | b';'
                    | b'('
                    | b')'
                    | b'='
                    | b'<'
                    | b'>'
                    | b'|'
                    | b'&'
                    | b'#'
                    | b'*'
            )
        }) || v.contains("--");
        let sqli = !numeric && (sql_bytes || rules::sql_words(b));
        // Markup needs a tag, an attribute (`=`), a URL scheme or a template literal.
        let xss = b.iter().any(|c| matches!(c, b'<' | b'=' | b':' | b'`'));
        if sqli || xss {
            match catch_unwind(AssertUnwindSafe(|| {
                (
                    sqli && libinjectionrs::detect_sqli(b).is_injection(),
                    xss && libinjectionrs::detect_xss(b).is_injection(),
                )
            })) {
                Ok((sqli, xss)) => {
                    if sqli {
                        out.add(Detector::Sqli, "sqli.libinjection", 5);
                    }
                    if xss {
                        out.add(Detector::Xss, "xss.libinjection", 5);
                    }
                }
                Err(_) => out.add(Detector::Error, "detector.panic", 5),
            }
        }
        for (r, re) in rules::RULES.iter().zip(rules::COMPILED.iter()) {
            if r.level <= self.paranoia && (special || r.plain) && re.is_match(b) {
                out.add(r.detector, r.id, r.severity);
            }
        }
        if !special {
            return;
        }
        if rules::climbs(v) {
            out.add(Detector::Traversal, "traversal.dot_dot", 5);
        }
        if self.paranoia >= 2 && v.contains('\0') {
            out.add(Detector::Traversal, "traversal.nul_byte", 4);
        }
        if let Some((rule, severity)) = rules::ssrf(v, self.paranoia) {
            out.add(Detector::Ssrf, rule, severity);
        }
    }
}

/// A single token of letters, digits, `_`, `-` and `.`: nothing any detector can find.
fn plain(v: &str) -> bool {
    v.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        && !v.contains("..")
}

/// The largest char boundary of `s` at or below `at`.
fn boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}
