//! What a response head says about its body, as both body filters (masking and body
//! operations) read it: whether there is a body, its media type, its encoding.

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::response::Parts;
use http::HeaderMap;

/// Whether the answer has no body to rewrite (1xx, 204, 304, or an empty length).
pub(crate) fn no_body(head: &Parts) -> bool {
    let status = head.status.as_u16();
    status == 204
        || status == 304
        || status < 200
        || head.headers.get(CONTENT_LENGTH).is_some_and(|v| v == "0")
}

/// The media type without parameters, lower-cased (`application/json`).
pub(crate) fn essence(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `application/json` or a `+json` type.
pub(crate) fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// `application/xml`, `text/xml` or a `+xml` type.
pub(crate) fn is_xml(essence: &str) -> bool {
    essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml")
}

/// A `Content-Encoding` other than `identity`: the body is compressed.
pub(crate) fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}
