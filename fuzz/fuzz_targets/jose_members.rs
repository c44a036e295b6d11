//! JOSE headers and claim sets written by the fuzzer directly as JSON (two texts split at
//! the first 0xff byte, base64url-encoded into a token), so it explores duplicate member
//! names, nesting and escapes rather than base64. The strict parser must never panic;
//! whatever it accepts must read exactly as a last-wins JSON parser reads it (so no two
//! readings exist), and a token it parses must have had unique members.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use rampart_config::JwtAlgorithm::*;
use rampart_identity::jwt::{strict_json, token};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0xff).unwrap_or(data.len());
    let (header, claims) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    for text in [header, claims] {
        if let Some(strict) = strict_json::parse_object(text) {
            let lenient: serde_json::Value = serde_json::from_slice(text).expect("lenient parse");
            assert_eq!(serde_json::Value::Object(strict), lenient);
        }
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let tok = format!("{}.{}.c2ln", b64(header), b64(claims));
    if let Ok(p) = token::parse(tok.as_bytes(), &[RS256, ES256, EdDSA, HS256]) {
        assert!(strict_json::parse_object(header).is_some());
        assert_eq!(Some(p.claims), strict_json::parse_object(claims));
    }
});
