//! The one place a gateway-made answer becomes an HTTP response: problems (bad requests,
//! upstream failures) and refusals (a [`Denial`] renders from its reason). The proxy and
//! the admin API both answer through here, so every error the gateway writes carries the
//! same headers: a body no browser will sniff, frame, run or cache.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::Response;

use crate::{Denial, Problem, PROBLEM_JSON};

/// `X-Request-Id`, on every answer so a caller can quote it.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The Content-Security-Policy of the gateway's own bodies: nothing may load, run or
/// frame them (they are JSON, never a page).
pub const OWN_BODY_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The response for problem `p`. `request_id` is echoed in the body and the header.
pub fn problem(p: Problem, request_id: &HeaderValue) -> Response<Bytes> {
    let mut resp = Response::new(p.body(request_id.to_str().unwrap_or("")));
    *resp.status_mut() = p.status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    // RFC 9111 §5.2.2.5: an error about one request must not be served to another.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(OWN_BODY_CSP),
    );
    h.insert(X_REQUEST_ID.clone(), request_id.clone());
    resp
}

/// Turns an upstream's response head into the head of problem `p`, in place: the status
/// is set, the headers that described the upstream's body (length, encoding, type, range,
/// entity tag, date of change, framing) are removed and the problem's own headers set;
/// what the response phase added (security headers, CORS) stays. Returns the body to send
/// instead of the upstream's.
pub fn problem_in_place(
    head: &mut http::response::Parts,
    p: Problem,
    request_id: &HeaderValue,
) -> Bytes {
    let own = problem(p, request_id);
    let (own_head, body) = own.into_parts();
    head.status = own_head.status;
    for h in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::ETAG,
        header::LAST_MODIFIED,
        header::TRANSFER_ENCODING,
    ] {
        head.headers.remove(h);
    }
    for (n, v) in &own_head.headers {
        head.headers.insert(n.clone(), v.clone());
    }
    body
}

/// The response for a refusal: the generic problem of its reason, plus the headers the
/// denying filter attached (`WWW-Authenticate`, `Retry-After`).
pub fn denial(d: Denial, request_id: &HeaderValue) -> Response<Bytes> {
    let mut resp = problem(d.reason.problem(), request_id);
    if !d.errors.is_empty() {
        let body = d
            .reason
            .problem()
            .body_with(request_id.to_str().unwrap_or(""), &d.errors);
        *resp.body_mut() = body;
    }
    for (n, v) in d.headers {
        resp.headers_mut().append(n, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;

    #[test]
    fn denial_renders_from_its_reason_with_its_headers() {
        let id = HeaderValue::from_static("rid");
        let d = Denial::new(Reason::RateLimited)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("3"));
        let r = denial(d, &id);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], OWN_BODY_CSP);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        // The body says only what the status says, never which check failed.
        let body = String::from_utf8(r.into_body().to_vec()).unwrap();
        assert!(body.contains("\"code\":\"limit.exceeded\""), "{body}");
    }

    #[test]
    fn every_reason_maps_to_a_problem_of_its_class() {
        for r in Reason::ALL {
            let s = r.problem().status.as_u16();
            // 502 only for the upstream's side: its answer breaking the API's contract or
            // not maskable on a masked route, or no credential to call it with.
            let upstream = matches!(
                r,
                Reason::ValidationResponse
                    | Reason::MaskExempt
                    | Reason::MaskUnparseable
                    | Reason::MaskEncoded
                    | Reason::UpstreamCredential
                    | Reason::TransformResponse
            ) && s == 502;
            assert!(
                [400, 401, 403, 404, 405, 415, 429, 503].contains(&s) || upstream,
                "{r:?} -> {s}"
            );
        }
    }
}
