//! The JWT parser, claim checks and key-set parsers must never panic, and no input that
//! is not three strict base64url segments may parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_config::JwtAlgorithm::*;
use rampart_identity::jwt::{keys, token};

fuzz_target!(|data: &[u8]| {
    let all = [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512];
    if let Ok(p) = token::parse(data, &all) {
        assert_eq!(data.iter().filter(|b| **b == b'.').count(), 2);
        assert!(!data.iter().any(|b| b.is_ascii_whitespace()));
        let rules = token::ClaimRules {
            issuer: "https://idp.example",
            audiences: &["api".to_string()],
            leeway: std::time::Duration::from_secs(30),
            max_lifetime: std::time::Duration::from_secs(86_400),
            typ: Some("at+jwt"),
            required: &["sub".to_string()],
        };
        let _ = token::check_claims(&p, &rules, std::time::SystemTime::now());
    }
    let _ = keys::parse_jwks(data);
    let _ = keys::parse_pem(data);
});
