//! The guard's framing rules and its upgrade hold, on raw bytes and a duplex stream.

use super::*;

const LIMITS: HeadLimits = HeadLimits::DEFAULT;

fn check(head: &str) -> Result<Framing, Problem> {
    check_head(head.as_bytes(), &LIMITS)
}

#[test]
fn accepts_plain_get_and_length_body() {
    assert_eq!(
        check("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Ok(Framing::Head)
    );
    assert_eq!(
        check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
        Ok(Framing::Length(5))
    );
    assert!(matches!(
        check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(Framing::Chunked)
    ));
}

#[test]
fn rejects_smuggling_shapes() {
    let cases = [
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Problem::CL_TE_CONFLICT,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Problem::BAD_CONTENT_LENGTH,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            Problem::BAD_CONTENT_LENGTH,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Problem::BAD_TRANSFER_ENCODING,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            Problem::BAD_TRANSFER_ENCODING,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            Problem::OBS_FOLD,
        ),
        (
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            Problem::HEADER_NAME_WHITESPACE,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            Problem::BAD_HEADER,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            Problem::MALFORMED,
        ),
        ("GET / HTTP/1.1\r\n\r\n", Problem::MISSING_HOST),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Problem::DUPLICATE_HOST,
        ),
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Problem::MALFORMED),
    ];
    for (head, want) in cases {
        assert_eq!(check(head), Err(want), "{head:?}");
    }
}

async fn read_some(g: &mut H1Guard<tokio::io::DuplexStream>) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(1), g.read(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

const UPGRADE_THEN_BARE_LF: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /x HTTP/1.1\nHost: a\n\n";

#[tokio::test(start_paused = true)]
async fn releases_nothing_after_a_refused_upgrade() {
    use tokio::io::AsyncWriteExt;
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let shared = ConnShared::new();
    let mut g = H1Guard::new(server, LIMITS, shared.clone());
    client.write_all(UPGRADE_THEN_BARE_LF).await.unwrap();
    let head = read_some(&mut g).await.unwrap();
    assert!(head.ends_with(b"Upgrade: websocket\r\n\r\n"));
    assert!(shared.holding.load(Ordering::Acquire));
    // Held: nothing more until the answer is written.
    assert_eq!(read_some(&mut g).await, None);
    g.write_all(b"HTTP/1.1 401 Unauthorized\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(!shared.holding.load(Ordering::Acquire));
    assert_eq!(
        read_some(&mut g).await,
        None,
        "the bare-LF request was released"
    );
}

#[tokio::test(start_paused = true)]
async fn opens_the_tunnel_only_once_a_101_is_written() {
    use tokio::io::AsyncWriteExt;
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let shared = ConnShared::new();
    let mut g = H1Guard::new(server, LIMITS, shared.clone());
    client.write_all(UPGRADE_THEN_BARE_LF).await.unwrap();
    let _head = read_some(&mut g).await.unwrap();
    assert_eq!(read_some(&mut g).await, None);
    // Written in two pieces: the status line is recognised across writes.
    g.write_all(b"HTTP/1.1 1").await.unwrap();
    g.write_all(b"01 Switching Protocols\r\n\r\n")
        .await
        .unwrap();
    // What follows the head is now tunnel data, passed on unchecked.
    assert_eq!(
        read_some(&mut g).await.unwrap(),
        b"GET /x HTTP/1.1\nHost: a\n\n".to_vec()
    );
}

#[test]
fn follows_chunked_framing_including_trailers() {
    let body = b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET";
    let (next, used) = scan_chunked(
        Chunk::Size {
            value: 0,
            digits: 0,
        },
        body,
        1024,
    )
    .unwrap();
    assert_eq!(next, None);
    assert_eq!(&body[used..], b"GET");
    for bad in [&b"5\nhello\r\n"[..], b"5 \r\n", b"x\r\n", b"5\r\nhelloXX"] {
        assert!(
            scan_chunked(
                Chunk::Size {
                    value: 0,
                    digits: 0
                },
                bad,
                1024
            )
            .is_err(),
            "{bad:?}"
        );
    }
}
