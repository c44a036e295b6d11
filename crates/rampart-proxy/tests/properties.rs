//! Property tests (run in CI; the cargo-fuzz targets in `fuzz/` explore the same
//! invariants for longer).

use proptest::prelude::*;
use rampart_proxy::path::normalize;

/// Paths built from the pieces that make normalisation interesting.
fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just("/.".to_string()),
        Just("/..".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%2f".to_string()),
        Just("%41".to_string()),
        Just("%".to_string()),
        Just("\\".to_string()),
        "[a-z]{1,4}".prop_map(|s| s),
        "%[0-9a-fA-F]{2}".prop_map(|s| s),
    ];
    prop::collection::vec(piece, 1..12).prop_map(|v| format!("/{}", v.concat()))
}

proptest! {
    #[test]
    fn normalised_paths_are_safe_and_stable(path in path_strategy()) {
        if let Ok(normal) = normalize(&path) {
            prop_assert!(normal.starts_with('/'));
            let segments: Vec<&str> = normal[1..].split('/').collect();
            for (i, s) in segments.iter().enumerate() {
                prop_assert!(*s != "." && *s != "..", "{} -> {}", path, normal);
                prop_assert!(!s.is_empty() || i + 1 == segments.len(), "{} -> {}", path, normal);
            }
            let lower = normal.to_ascii_lowercase();
            prop_assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%2e"));
            prop_assert_eq!(normalize(&normal).unwrap(), normal.clone());
        }
    }

    #[test]
    fn head_checker_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut head = bytes;
        head.extend_from_slice(b"\r\n\r\n");
        let _ = rampart_proxy::h1_guard::check_request_head(&head);
    }

    #[test]
    fn head_checker_rejects_any_cl_te_combination(cl in 0u32..100000, te in "(chunked|gzip, chunked|identity)") {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\nTransfer-Encoding: {te}\r\n\r\n");
        prop_assert!(rampart_proxy::h1_guard::check_request_head(head.as_bytes()).is_err());
    }
}
