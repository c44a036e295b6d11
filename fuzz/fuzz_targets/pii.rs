//! The personal-data detectors run on attacker-controlled text (every request path goes
//! through them on its way to the access log): they must never panic, and what they
//! report must be sorted, non-overlapping ranges on character boundaries; masking must
//! keep everything between the findings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rampart_core::pii::{find_all, is, might_hold, write_masked, PiiKind};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut found = Vec::new();
    find_all(&text, &PiiKind::ALL, &mut found);
    let mut end = 0;
    for f in &found {
        assert!(f.start >= end && f.start < f.end && f.end <= text.len(), "{found:?}");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        end = f.end;
        // Whatever a detector finds, the cheap filter lets through.
        assert!(might_hold(&text[f.start..f.end]), "{:?}", &text[f.start..f.end]);
    }
    let mut masked = String::new();
    let any = write_masked(&mut masked, &text, &PiiKind::ALL);
    assert_eq!(any, !found.is_empty() && might_hold(&text));
    for k in PiiKind::ALL {
        let _ = is(k, &text);
    }
});
