//! Request heads parsed after the strict check: framing, keep-alive, shared bytes.

use super::*;

const LIMITS: HeadLimits = HeadLimits::DEFAULT;

fn parse(head: &str) -> Result<(Request<()>, Framing, bool), Problem> {
    parse_request(Bytes::copy_from_slice(head.as_bytes()), &LIMITS)
}

#[test]
fn parses_a_request_head_with_its_headers() {
    let (req, framing, keep_alive) =
        parse("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\n").unwrap();
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/a?b=1");
    assert_eq!(req.headers().get_all("x-two").iter().count(), 2);
    assert_eq!(framing, Framing::None);
    assert!(keep_alive);
}

#[test]
fn keep_alive_follows_version_and_connection() {
    assert!(
        !parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .2
    );
    assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().2);
    assert!(
        parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .2
    );
}

#[test]
fn framing_comes_from_the_strict_check() {
    let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(parse(chunked).unwrap().1, Framing::Chunked);
    let length = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n";
    assert_eq!(parse(length).unwrap().1, Framing::Length(7));
    let upgrade = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    assert_eq!(parse(upgrade).unwrap().1, Framing::Hold);
    let smuggle =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(parse(smuggle).unwrap_err(), Problem::CL_TE_CONFLICT);
}

#[test]
fn absolute_form_targets_keep_their_authority() {
    let (req, _, _) = parse("GET http://api.example/x HTTP/1.1\r\nHost: y\r\n\r\n").unwrap();
    assert_eq!(req.uri().authority().unwrap().as_str(), "api.example");
}
