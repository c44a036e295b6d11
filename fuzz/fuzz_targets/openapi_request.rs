//! Request validation against an OpenAPI document must never panic, whatever the method,
//! path, query, headers and body: the parameter readers (form/explode, delimited styles,
//! deepObject, cookies, percent-decoding), the path matcher, the body tape and the schema
//! walk all take attacker bytes. The document is the test suite's own (every parameter
//! style it supports).
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_inspect::OpenApiValidator;

fn validator() -> &'static OpenApiValidator {
    static V: OnceLock<OpenApiValidator> = OnceLock::new();
    V.get_or_init(|| {
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/rampart/tests/data/items-3.0.yaml");
        OpenApiValidator::load(&doc, Some("")).expect("the test document loads")
    })
}

fuzz_target!(|data: &[u8]| {
    // method byte | path \0 query \0 header \0 cookie \0 body
    let Some((&m, rest)) = data.split_first() else { return };
    let method = ["GET", "POST", "DELETE", "PUT", "HEAD"][usize::from(m) % 5];
    let mut parts = rest.splitn(5, |b| *b == 0);
    let text = |p: Option<&[u8]>| String::from_utf8_lossy(p.unwrap_or_default()).into_owned();
    let (path, query, tenant, cookie) = (text(parts.next()), text(parts.next()), text(parts.next()), text(parts.next()));
    let body = parts.next().map(bytes::Bytes::copy_from_slice);
    let path = format!("/{}", path.trim_start_matches('/'));
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&tenant) {
        headers.insert("x-tenant", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        headers.insert("cookie", v);
    }
    if m & 0x80 != 0 {
        headers.insert("content-type", http::HeaderValue::from_static("application/json"));
    } else if m & 0x40 != 0 {
        headers.insert("content-type", http::HeaderValue::from_static("application/x-www-form-urlencoded"));
    }
    let _ = validator().check(method, &path, Some(&query), &headers, body.as_ref());
});
