//! Strict HTTP/1.1 parsing and edge limits, spoken over raw sockets: every malformed
//! request gets its 400 (or 408/413/414/431) problem+json, the connection is closed, and
//! nothing reaches the upstream.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncWriteExt;

fn gateway(up: &TestUpstream, limits: &str) -> TestGateway {
    start(&simple_config(&[up.addr], "").replace(
        "access_log:",
        &format!("limits: {{ {limits} }}\naccess_log:"),
    ))
}

/// Sends `request`, expects `status` with problem `code`, a closed connection, and no
/// upstream hit.
async fn expect_rejected(
    gw: &TestGateway,
    up: &TestUpstream,
    request: &[u8],
    status: u16,
    code: &str,
) {
    let before = up.hits();
    let text = raw(gw.http(), request).await;
    assert_eq!(
        raw_status(&text),
        status,
        "request {:?}\nresponse {text}",
        String::from_utf8_lossy(request)
    );
    assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(up.hits(), before, "a rejected request reached the upstream");
}

#[tokio::test]
async fn rejects_content_length_with_transfer_encoding() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    expect_rejected(&gw, &up, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "http.cl_te_conflict").await;
}

#[tokio::test]
async fn rejects_duplicate_content_length_even_when_equal() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    expect_rejected(
        &gw,
        &up,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
        "http.bad_content_length",
    )
    .await;
}

#[tokio::test]
async fn rejects_invalid_content_length() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    for cl in ["-1", "3 3", "0x10", "3,3", ""] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\nabc");
        expect_rejected(&gw, &up, req.as_bytes(), 400, "http.bad_content_length").await;
    }
}

#[tokio::test]
async fn rejects_transfer_encoding_not_ending_in_chunked() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    for te in [
        "gzip",
        "chunked, gzip",
        "chunked, chunked",
        "identity",
        "xchunked",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
        expect_rejected(&gw, &up, req.as_bytes(), 400, "http.bad_transfer_encoding").await;
    }
}

#[tokio::test]
async fn rejects_obs_fold() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
        400,
        "http.obs_fold",
    )
    .await;
}

#[tokio::test]
async fn rejects_whitespace_before_colon() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        400,
        "http.header_whitespace",
    )
    .await;
}

#[tokio::test]
async fn rejects_nul_cr_and_bare_lf_in_headers() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n",
        400,
        "http.bad_header",
    )
    .await;
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        400,
        "http.bad_header",
    )
    .await;
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n",
        400,
        "http.malformed",
    )
    .await;
}

#[tokio::test]
async fn rejects_missing_and_duplicate_host() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
        400,
        "http.bad_host",
    )
    .await;
    expect_rejected(
        &gw,
        &up,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "http.duplicate_host",
    )
    .await;
}

#[tokio::test]
async fn rejected_request_after_a_good_one_on_the_same_connection() {
    // Pipelined: the first request is answered, the smuggled second one is refused and the
    // connection closes; the upstream sees exactly one request.
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    let text = raw(
        gw.http(),
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert!(text.contains("http.cl_te_conflict"), "{text}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn chunked_body_is_framed_and_forwarded() {
    // A valid chunked body (with extension and trailer) is accepted and the next request on
    // the connection is parsed where the body ended.
    let up = TestUpstream::with(|s| {
        Answer::ok(format!("{}:{}", s.uri, String::from_utf8_lossy(&s.body)))
    });
    let gw = gateway(&up, "");
    let text = raw(
        gw.http(),
        b"POST /one HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.contains("/one:hello"), "{text}");
    assert!(text.contains("/two:"), "{text}");
}

#[tokio::test]
async fn allows_header_block_equal_to_limit_and_rejects_over() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "max_header_bytes: 2KiB");
    let base = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Pad: \r\n\r\n".len();
    let at = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(2048 - base)
    );
    assert_eq!(at.len(), 2048);
    assert_eq!(raw_status(&raw(gw.http(), at.as_bytes()).await), 200);
    let over = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(2049 - base)
    );
    expect_rejected(&gw, &up, over.as_bytes(), 431, "limit.header_bytes").await;
}

#[tokio::test]
async fn allows_header_count_equal_to_limit_and_rejects_over() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "max_headers: 10");
    let mk = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
        for i in 0..n - 2 {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        s + "\r\n"
    };
    assert_eq!(raw_status(&raw(gw.http(), mk(10).as_bytes()).await), 200);
    expect_rejected(&gw, &up, mk(11).as_bytes(), 431, "limit.header_count").await;
}

#[tokio::test]
async fn allows_uri_equal_to_limit_and_rejects_over() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "max_uri_bytes: 1KiB");
    let at = format!("/{}", "u".repeat(1023));
    let r = get(gw.http(), &at).await;
    assert_eq!(r.status, 200);
    let over = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(1024));
    expect_rejected(&gw, &up, over.as_bytes(), 414, "limit.uri_length").await;
}

#[tokio::test]
async fn allows_body_equal_to_limit_and_rejects_over() {
    // Content-Length over the limit is refused before any byte is forwarded; a chunked
    // body is cut as soon as it crosses the limit.
    let up = TestUpstream::with(|s| Answer::ok(format!("{}", s.body.len())));
    let gw = gateway(&up, "max_body_bytes: 1KiB");
    let at = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n{}",
        "b".repeat(1024)
    );
    assert_eq!(raw_status(&raw(gw.http(), at.as_bytes()).await), 200);
    let over = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n{}",
        "b".repeat(1025)
    );
    expect_rejected(&gw, &up, over.as_bytes(), 413, "limit.body_bytes").await;
    let chunk = "b".repeat(600);
    let chunked = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    let text = raw(gw.http(), chunked.as_bytes()).await;
    assert_eq!(raw_status(&text), 413, "{text}");
}

#[tokio::test]
async fn route_body_limit_overrides_global() {
    let up = TestUpstream::echo();
    let cfg = simple_config(&[up.addr], "").replace(
        "    upstream: up\n",
        "    upstream: up\n    max_body_bytes: 10\n",
    );
    let gw = start(&cfg);
    let text = raw(
        gw.http(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890",
    )
    .await;
    assert_eq!(raw_status(&text), 413, "{text}");
}

#[tokio::test]
async fn header_deadline_answers_408() {
    // A head that is still incomplete after header_timeout gets 408 and a closed
    // connection, even though bytes keep trickling in.
    let up = TestUpstream::echo();
    let gw = gateway(&up, "header_timeout: 300ms");
    let mut tcp = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let _ = tcp.write_all(b"X-Slow: 1\r\n").await;
    }
    let text = read_to_close(&mut tcp, Duration::from_secs(3)).await;
    assert_eq!(raw_status(&text), 408, "{text}");
    assert!(text.contains("timeout.header"), "{text}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn body_trickled_past_the_total_deadline_is_cut() {
    // A body sent a byte at a time never finishes within body_timeout: 408, closed,
    // even though every single read arrives quickly.
    let up = TestUpstream::echo();
    let gw = gateway(&up, "body_timeout: 500ms");
    let mut tcp = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tcp.write_all(b"x").await.is_err() {
            break;
        }
    }
    let text = read_to_close(&mut tcp, Duration::from_secs(3)).await;
    assert_eq!(raw_status(&text), 408, "{text}");
    assert!(text.contains("timeout.body"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "idle_timeout: 300ms");
    let mut tcp = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The response arrives, then the idle connection is closed by the gateway.
    assert!(closed_within(&mut tcp, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn long_response_is_not_mistaken_for_idle() {
    // A response that takes longer than idle_timeout to stream is not cut by it.
    let up = TestUpstream::with(|_| Answer::ok("chunk").chunked(4, Duration::from_millis(150)));
    let gw = gateway(&up, "idle_timeout: 200ms");
    let r = get(gw.http(), "/slow").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "chunkchunkchunkchunk");
}

#[tokio::test]
async fn caps_connections_per_ip() {
    // The third connection from one IP is closed at accept when the cap is two.
    let up = TestUpstream::echo();
    let gw = gateway(&up, "max_connections_per_ip: 2");
    let _a = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    let _b = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    // Give the workers a moment to account both.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while gw.gateway.open_connections() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let text = read_to_close(&mut c, Duration::from_secs(2)).await;
    assert_eq!(
        text, "",
        "third connection should be closed without an answer"
    );
    drop(_a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while gw.gateway.open_connections() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(gw.http(), "/").await.status, 200);
}

#[tokio::test]
async fn rejects_unsafe_paths_with_400() {
    let up = TestUpstream::echo();
    let gw = gateway(&up, "");
    for path in [
        "/../etc/passwd",
        "/a/%2e%2e/%2e%2e/x",
        "/a%2fb",
        "/a%5cb",
        "/a\\b",
        "/a%00",
        "/a%zz",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        let text = raw(gw.http(), req.as_bytes()).await;
        assert_eq!(raw_status(&text), 400, "{path}: {text}");
        assert!(
            text.contains("request.bad_path") || text.contains("request.bad_target"),
            "{path}: {text}"
        );
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn caps_total_connections() {
    // With max_connections: 2, a third connection is closed at accept, and a slot frees
    // up when a connection closes.
    let up = TestUpstream::echo();
    let gw = gateway(&up, "max_connections: 2");
    let a = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    let _b = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while gw.gateway.open_connections() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(read_to_close(&mut c, Duration::from_secs(2)).await, "");
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while gw.gateway.open_connections() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(gw.http(), "/").await.status, 200);
}
