//! The JSON limit scanner must never panic, must give the same answer however the body
//! is split into frames, and must never accept what serde_json refuses to parse (but
//! for numbers too large for an f64).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rampart_inspect::{JsonLimits, JsonScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, doc)) = data.split_first() else {
        return;
    };
    // Small limits, so the bulk runs (string characters, digits) meet them across a
    // split, and objects grow past the linear duplicate-name scan.
    let limits = JsonLimits {
        max_depth: 16,
        max_object_members: 40,
        max_array_items: 40,
        max_entries: 200,
        max_string_bytes: 24,
        max_name_bytes: 6,
        max_number_bytes: 12,
    };
    let mut whole = JsonScanner::new(limits);
    let whole = whole.feed(doc).and_then(|()| whole.finish());
    let at = usize::from(cut).min(doc.len());
    let mut split = JsonScanner::new(limits);
    let split = split
        .feed(&doc[..at])
        .and_then(|()| split.feed(&doc[at..]))
        .and_then(|()| split.finish());
    assert_eq!(whole, split);
    if whole.is_ok() {
        // serde_json also refuses numbers beyond f64's range, which are valid JSON.
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(doc) {
            assert!(e.to_string().contains("number out of range"), "{e}");
        }
    }
});
