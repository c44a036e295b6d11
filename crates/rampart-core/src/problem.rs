//! Every answer the gateway gives on its own behalf is one of these problems, rendered as
//! RFC 9457 `application/problem+json`. The `code` is stable and machine-readable: it is
//! the reason code in the access log and in metrics, so "why was this request blocked?"
//! has one answer everywhere. Bodies never carry internals (addresses, upstream errors).

use bytes::Bytes;
use http::StatusCode;

/// A gateway-generated error: status, a short human title and a stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub code: &'static str,
}

macro_rules! problems {
    ($($name:ident => $status:ident, $title:literal, $code:literal;)*) => {
        impl Problem {
            $(pub const $name: Problem = Problem { status: StatusCode::$status, title: $title, code: $code };)*
            /// Every problem the gateway can answer with (for docs and tests).
            pub const ALL: &'static [Problem] = &[$(Problem::$name),*];
        }
    };
}

problems! {
    ROUTE_NOT_FOUND => NOT_FOUND, "No route matches this request", "route.not_found";
    BAD_PATH => BAD_REQUEST, "The request path cannot be normalised safely", "request.bad_path";
    BAD_REQUEST_TARGET => BAD_REQUEST, "The request target is not valid", "request.bad_target";
    MISSING_HOST => BAD_REQUEST, "The request has no valid Host", "http.bad_host";
    INVALID_HOST => BAD_REQUEST, "The Host is not a valid host[:port]", "http.invalid_host";
    UNDERSCORE_HEADER => BAD_REQUEST, "Header names containing underscores are not accepted", "http.underscore_header";
    PATH_PARAMETERS => BAD_REQUEST, "Path parameters (;) are not accepted on this route", "request.path_parameters";
    DOUBLE_ENCODING => BAD_REQUEST, "An encoded percent sign (%25) is not accepted on this route", "request.double_encoding";
    DUPLICATE_HOST => BAD_REQUEST, "The request has more than one Host header", "http.duplicate_host";
    CL_TE_CONFLICT => BAD_REQUEST, "Content-Length and Transfer-Encoding must not both be sent", "http.cl_te_conflict";
    BAD_CONTENT_LENGTH => BAD_REQUEST, "Content-Length is invalid or repeated", "http.bad_content_length";
    BAD_TRANSFER_ENCODING => BAD_REQUEST, "Transfer-Encoding must end in chunked", "http.bad_transfer_encoding";
    OBS_FOLD => BAD_REQUEST, "Folded header lines are not accepted", "http.obs_fold";
    HEADER_NAME_WHITESPACE => BAD_REQUEST, "Whitespace between a header name and its colon is not accepted", "http.header_whitespace";
    BAD_HEADER => BAD_REQUEST, "A header name or value is malformed", "http.bad_header";
    BAD_CHUNK => BAD_REQUEST, "The chunked request body is malformed", "http.bad_chunk";
    MALFORMED => BAD_REQUEST, "The request is not valid HTTP/1.1", "http.malformed";
    HEADERS_TOO_LARGE => REQUEST_HEADER_FIELDS_TOO_LARGE, "The request header block is too large", "limit.header_bytes";
    TOO_MANY_HEADERS => REQUEST_HEADER_FIELDS_TOO_LARGE, "The request has too many header fields", "limit.header_count";
    URI_TOO_LONG => URI_TOO_LONG, "The request target is too long", "limit.uri_length";
    BODY_TOO_LARGE => PAYLOAD_TOO_LARGE, "The request body is too large", "limit.body_bytes";
    HEADER_TIMEOUT => REQUEST_TIMEOUT, "The request headers did not arrive in time", "timeout.header";
    BODY_TIMEOUT => REQUEST_TIMEOUT, "The request body did not arrive in time", "timeout.body";
    CLIENT_BODY_ERROR => BAD_REQUEST, "The request body could not be read", "request.body_error";
    UPSTREAM_CONNECT => BAD_GATEWAY, "The upstream service could not be reached", "upstream.connect_failed";
    UPSTREAM_PROTOCOL => BAD_GATEWAY, "The upstream service sent an invalid response", "upstream.bad_response";
    UPSTREAM_TIMEOUT => GATEWAY_TIMEOUT, "The upstream service did not answer in time", "upstream.timeout";
    NO_HEALTHY_UPSTREAM => SERVICE_UNAVAILABLE, "No healthy upstream target is available", "upstream.unavailable";
    UPSTREAM_CREDENTIAL => BAD_GATEWAY, "The gateway could not obtain its credential for the upstream service", "upstream.credential_unavailable";
    UPSTREAM_OVERLOADED => SERVICE_UNAVAILABLE, "The upstream service is at its request limit", "upstream.overloaded";
    UNAUTHENTICATED => UNAUTHORIZED, "Valid credentials are required", "auth.required";
    FORBIDDEN => FORBIDDEN, "The credentials do not permit this request", "authz.denied";
    RATE_LIMITED => TOO_MANY_REQUESTS, "Too many requests; retry after the time in Retry-After", "limit.exceeded";
    LIMIT_UNAVAILABLE => SERVICE_UNAVAILABLE, "The rate limit could not be checked", "limit.unavailable";
    JSON_DEPTH => PAYLOAD_TOO_LARGE, "The JSON body is nested too deeply", "json.depth";
    JSON_OBJECT_MEMBERS => PAYLOAD_TOO_LARGE, "A JSON object in the body has too many members", "json.object_members";
    JSON_ARRAY_ITEMS => PAYLOAD_TOO_LARGE, "A JSON array in the body has too many items", "json.array_items";
    JSON_ENTRIES => PAYLOAD_TOO_LARGE, "The JSON body has too many entries", "json.entries";
    JSON_STRING_LENGTH => PAYLOAD_TOO_LARGE, "A JSON string in the body is too long", "json.string_length";
    JSON_NAME_LENGTH => PAYLOAD_TOO_LARGE, "A JSON member name in the body is too long", "json.name_length";
    JSON_NUMBER_LENGTH => PAYLOAD_TOO_LARGE, "A JSON number in the body is too long", "json.number_length";
    JSON_DUPLICATE_NAME => BAD_REQUEST, "A JSON object in the body names a member twice", "json.duplicate_name";
    JSON_INVALID_UTF8 => BAD_REQUEST, "The JSON body is not valid UTF-8", "json.invalid_utf8";
    JSON_LONE_SURROGATE => BAD_REQUEST, "The JSON body escapes a lone surrogate", "json.lone_surrogate";
    JSON_SYNTAX => BAD_REQUEST, "The body is not valid JSON", "json.syntax";
    JSON_TRAILING_DATA => BAD_REQUEST, "The JSON body has data after its value", "json.trailing_data";
    JSON_TRUNCATED => BAD_REQUEST, "The JSON body ends inside its value", "json.truncated";
    INVALID_REQUEST => BAD_REQUEST, "The request does not match the API's contract", "request.invalid";
    MEDIA_TYPE => UNSUPPORTED_MEDIA_TYPE, "The request's media type is not accepted by this operation", "request.media_type";
    METHOD_NOT_ALLOWED => METHOD_NOT_ALLOWED, "The method is not allowed on this path", "request.method_not_allowed";
    ENCODED_BODY => UNSUPPORTED_MEDIA_TYPE, "Encoded (compressed) request bodies are not accepted on this route", "request.encoded_body";
}

impl Problem {
    /// The `application/problem+json` body for this problem. `request_id` is echoed so a
    /// caller can quote it to the operator; it is the only request-derived value here and
    /// is generated or validated by the gateway, never raw client text.
    pub fn body(&self, request_id: &str) -> Bytes {
        self.body_with(request_id, &[])
    }

    /// The body with an `errors` member listing `errors` (when there are any).
    pub fn body_with(&self, request_id: &str, errors: &[crate::FieldError]) -> Bytes {
        let mut out = String::with_capacity(160 + errors.len() * 80);
        out.push_str("{\"type\":\"about:blank\",\"title\":\"");
        out.push_str(self.title);
        out.push_str("\",\"status\":");
        out.push_str(self.status.as_str());
        out.push_str(",\"code\":\"");
        out.push_str(self.code);
        out.push_str("\",\"request_id\":\"");
        json_escape_into(&mut out, request_id);
        out.push('"');
        if !errors.is_empty() {
            out.push_str(",\"errors\":[");
            for (i, e) in errors.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"in\":\"");
                out.push_str(e.location);
                // Body errors name a JSON pointer, the others a parameter.
                out.push_str(if e.location == "body" {
                    "\",\"pointer\":\""
                } else {
                    "\",\"name\":\""
                });
                json_escape_into(&mut out, &e.name);
                out.push_str("\",\"reason\":\"");
                json_escape_into(&mut out, &e.reason);
                out.push_str("\"}");
            }
            out.push(']');
        }
        out.push('}');
        Bytes::from(out)
    }
}

/// The media type of problem bodies (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Appends `s` to `out` as the inside of a JSON string.
pub fn json_escape_into(out: &mut String, s: &str) {
    // Runs of characters that need no escape are copied whole (the common case: all).
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_is_valid_json_with_code_and_request_id() {
        let body = Problem::ROUTE_NOT_FOUND.body("abc\"def");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 404);
        assert_eq!(v["code"], "route.not_found");
        assert_eq!(v["request_id"], "abc\"def");
    }

    #[test]
    fn problem_codes_are_unique() {
        let mut codes: Vec<_> = Problem::ALL.iter().map(|p| p.code).collect();
        codes.sort();
        let n = codes.len();
        codes.dedup();
        assert_eq!(n, codes.len());
    }

    #[test]
    fn json_escape_round_trips_through_a_json_parser() {
        let input = "plain é \" \\ \n\r\t \u{1} \u{1f} \u{7f} ünï 🦀 end";
        let mut out = String::from("\"");
        json_escape_into(&mut out, input);
        out.push('"');
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, input);
        assert!(out.contains("\\u0001") && out.contains("\\u007f"), "{out}");
    }
}
