//! The gateway's own HTTP/1.1 server, spoken to over raw sockets: pipelined requests,
//! `100 Continue`, response framing for HTTP/1.1 and HTTP/1.0 clients, `Date`, and
//! connections left at an unknown place closed rather than reused.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `tcp` until `text` has been seen `times` times (or 5 s pass).
async fn read_until(tcp: &mut TcpStream, text: &str, times: usize) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while String::from_utf8_lossy(&out).matches(text).count() < times {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn answers_pipelined_requests_in_order_on_one_connection() {
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut tcp, "HTTP/1.1 200", 2).await;
    let first = text.find("/first").expect("first answered");
    let second = text.find("/second").expect("second answered");
    assert!(first < second, "{text}");
    // The connection stays open for a third request.
    tcp.write_all(b"GET /third HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert!(read_until(&mut tcp, "/third", 1).await.contains("/third"));
}

#[tokio::test]
async fn sends_100_continue_only_when_the_body_is_wanted() {
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_until(&mut tcp, "\r\n\r\n", 1).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    tcp.write_all(b"hello").await.unwrap();
    let text = read_until(&mut tcp, "hello", 1).await;
    assert_eq!(raw_status(&text), 200, "{text}");
    assert!(text.contains("\"body\":\"hello\""), "{text}");
}

#[tokio::test]
async fn refused_request_gets_no_100_continue_and_its_connection_closes() {
    let up = TestUpstream::echo();
    let yaml = simple_config(&[up.addr], "").replace(
        "routes:\n",
        "routes:\n  - { name: tiny, match: { path_prefix: /tiny }, upstream: up, max_body_bytes: 4 }\n",
    );
    let gw = start(&yaml);
    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(
        b"POST /tiny HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(raw_status(&text), 413, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn unknown_length_is_chunked_for_http11_and_close_delimited_for_http10() {
    // Three chunks of "abc", no length: the upstream streams.
    let up = TestUpstream::with(|_| Answer::ok("abc").chunked(3, Duration::from_millis(5)));
    let gw = start(&simple_config(&[up.addr], ""));

    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut tcp, "0\r\n\r\n", 1).await;
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{text}");
    assert!(!lower.contains("content-length"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let decoded: String = body
        .split("\r\n")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|c| c.get(1).copied())
        .collect();
    assert_eq!(decoded, "abcabcabc", "{text}");

    let text = raw(gw.http(), b"GET / HTTP/1.0\r\nHost: a\r\n\r\n").await;
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("transfer-encoding"), "{text}");
    assert!(lower.contains("connection: close"), "{text}");
    assert!(text.ends_with("\r\n\r\nabcabcabc"), "{text}");
}

#[tokio::test]
async fn http10_keep_alive_is_honoured_when_asked_for() {
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET /a HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut tcp, "/a", 1).await;
    assert!(
        text.to_ascii_lowercase().contains("connection: keep-alive"),
        "{text}"
    );
    tcp.write_all(b"GET /b HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(text.contains("/b"), "{text}");
}

#[tokio::test]
async fn every_response_carries_a_date() {
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let ok = get(gw.http(), "/x").await;
    assert!(ok.header("date").is_some_and(|d| d.ends_with(" GMT")));
    let text = raw(gw.http(), b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;
    assert_eq!(raw_status(&text), 400);
    assert!(text.to_ascii_lowercase().contains("\r\ndate: "), "{text}");
}

#[tokio::test]
async fn head_response_keeps_the_length_and_sends_no_body() {
    let up = TestUpstream::with(|_| Answer::ok("0123456789"));
    let gw = start(&simple_config(&[up.addr], ""));
    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut tcp, "0123456789", 1).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-length: 10"),
        "{text}"
    );
    // The HEAD answer has no body: the next bytes are the GET's status line.
    let second = text
        .find("\r\n\r\nHTTP/1.1 200")
        .expect("second response follows the head");
    assert!(text[second + 4..].ends_with("0123456789"), "{text}");
}

#[tokio::test]
async fn a_partial_head_at_eof_closes_quietly() {
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let mut tcp = TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    tcp.shutdown().await.unwrap();
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(text, "");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn a_client_that_leaves_mid_request_frees_its_concurrency_slot_at_once() {
    // One slot on the route; the upstream holds /slow for 10 s.
    let up = TestUpstream::with(|seen| {
        if seen.uri.starts_with("/slow") {
            Answer::ok("late").delayed(Duration::from_secs(10))
        } else {
            Answer::ok("quick")
        }
    });
    let yaml = simple_config(&[up.addr], "").replace(
        "    upstream: up\n",
        "    upstream: up\n    concurrency: { max: 1 }\n",
    );
    let gw = start(&yaml);
    let mut leaving = TcpStream::connect(gw.http()).await.unwrap();
    leaving
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while up.hits() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.hits(), 1, "the slow request reached the upstream");
    drop(leaving);
    // The slot is free again long before the upstream would have answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let r = get(gw.http(), "/quick").await;
        if r.status == 200 {
            assert_eq!(r.text(), "quick");
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot stayed taken after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
