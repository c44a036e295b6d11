//! Path normalisation invariants: the result is absolute, has no dot or empty segments,
//! no encoded separators, and normalising it again changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Ok(normal) = rampart_proxy::path::normalize(path) {
        assert!(normal.starts_with('/'));
        let body = &normal[1..];
        let segments: Vec<&str> = body.split('/').collect();
        for (i, s) in segments.iter().enumerate() {
            assert!(*s != "." && *s != "..", "{path:?} -> {normal:?}");
            assert!(!s.is_empty() || i + 1 == segments.len(), "{path:?} -> {normal:?}");
        }
        let lower = normal.to_ascii_lowercase();
        assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%2e") && !normal.contains('\\'));
        assert_eq!(rampart_proxy::path::normalize(&normal).unwrap(), normal);
    }
});
