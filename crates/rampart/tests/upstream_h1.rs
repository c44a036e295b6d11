//! The gateway's own HTTP/1.1 upstream client (requests without a body), against a raw
//! upstream that writes exactly the bytes each test scripts: response framing (length,
//! chunked with trailers, close-delimited, interim 1xx, HEAD), the smuggling-shaped
//! responses it refuses, and how it pools, retries and closes connections.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the raw upstream does after reading a request head.
#[derive(Clone)]
enum Act {
    /// Writes these bytes and keeps the connection for the next request.
    Reply(Vec<u8>),
    /// Writes these bytes and closes.
    ReplyClose(Vec<u8>),
    /// Closes without a word.
    Close,
}

/// A TCP server that answers every request head with the script's action for its path
/// and counts connections and the request heads it read.
struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Connections that ended (the peer closed, or the script did).
    closed: Arc<AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawUpstream {
    async fn start(script: impl Fn(&str, usize) -> Act + Send + Sync + 'static) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let (c, d, h) = (connections.clone(), closed.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                let (script, d, h) = (script.clone(), d.clone(), h.clone());
                tokio::spawn(async move {
                    serve(tcp, n, &*script, &h).await;
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        RawUpstream {
            addr,
            connections,
            closed,
            heads,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut tcp: TcpStream,
    conn: usize,
    script: &(dyn Fn(&str, usize) -> Act + Send + Sync),
    heads: &std::sync::Mutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        heads.lock().unwrap().push(head);
        match script(&path, conn) {
            Act::Reply(b) => {
                if tcp.write_all(&b).await.is_err() {
                    return;
                }
            }
            Act::ReplyClose(b) => {
                let _ = tcp.write_all(&b).await;
                return;
            }
            Act::Close => return,
        }
    }
}

fn gateway(up: SocketAddr, pool: &str) -> TestGateway {
    start(&format!(
        "version: 1\nworkers: 1\naccess_log: {{ enabled: false }}\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{up}\" }}]{pool} }}\n\
         routes: [{{ name: all, match: {{ path_prefix: / }}, upstream: up }}]\n"
    ))
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-up: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A script whose first connection answers once, then closes without a word on reading
/// its second request (the keep-alive race); every other request gets "fine".
fn first_connection_drops_its_second_request() -> impl Fn(&str, usize) -> Act + Send + Sync {
    let seen = AtomicUsize::new(0);
    move |_, conn| {
        if conn == 1 && seen.fetch_add(1, Ordering::SeqCst) == 1 {
            Act::Close
        } else {
            Act::Reply(ok("fine"))
        }
    }
}

/// One raw request on a fresh client connection; the whole answer (the gateway closes
/// after it because the request says so).
async fn raw_get(gw: &TestGateway, path: &str) -> String {
    raw(
        gw.http(),
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test]
async fn length_delimited_responses_reuse_one_upstream_connection() {
    let up = RawUpstream::start(|_, _| Act::Reply(ok("hello"))).await;
    let gw = gateway(up.addr, "");
    for _ in 0..5 {
        let r = get(gw.http(), "/a?x=1").await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "hello"));
        assert_eq!(r.header("x-up"), Some("1"));
    }
    assert_eq!(up.connections(), 1);
    let heads = up.heads.lock().unwrap().clone();
    assert!(
        heads[0].starts_with("GET /a?x=1 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].to_ascii_lowercase().contains("x-request-id: "),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn chunked_bodies_are_decoded_and_trailers_dropped() {
    let body = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";
    let up = RawUpstream::start(move |_, _| Act::Reply(body.to_vec())).await;
    let gw = gateway(up.addr, "");
    for _ in 0..3 {
        let r = get(gw.http(), "/").await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "hello world"));
    }
    assert_eq!(
        up.connections(),
        1,
        "a cleanly ended chunked body keeps the connection"
    );
}

#[tokio::test]
async fn close_delimited_body_is_read_to_the_end_and_not_reused() {
    let up = RawUpstream::start(|_, _| {
        Act::ReplyClose(b"HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\nuntil the end".to_vec())
    })
    .await;
    let gw = gateway(up.addr, "");
    for _ in 0..2 {
        let r = get(gw.http(), "/").await;
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "until the end")
        );
    }
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn connection_close_from_the_upstream_is_honoured() {
    let up = RawUpstream::start(|_, _| {
        Act::Reply(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_vec())
    })
    .await;
    let gw = gateway(up.addr, "");
    for _ in 0..3 {
        assert_eq!(get(gw.http(), "/").await.text(), "ok");
    }
    assert_eq!(up.connections(), 3);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let up = RawUpstream::start(|_, _| {
        let mut b = b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\n".to_vec();
        b.extend(ok("final"));
        Act::Reply(b)
    })
    .await;
    let gw = gateway(up.addr, "");
    let r = get(gw.http(), "/").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "final"));
}

#[tokio::test]
async fn head_responses_have_no_body_and_keep_the_connection() {
    let up = RawUpstream::start(|_, _| {
        Act::Reply(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec())
    })
    .await;
    let gw = gateway(up.addr, "");
    for _ in 0..3 {
        let text = raw(
            gw.http(),
            b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(raw_status(&text), 200, "{text}");
        assert!(
            text.to_ascii_lowercase().contains("content-length: 1000"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"), "no body after a HEAD: {text}");
    }
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn large_bodies_stream_through_intact() {
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let reply = ok(&big);
    let up = RawUpstream::start(move |_, _| Act::Reply(reply.clone())).await;
    let gw = gateway(up.addr, "");
    let r = get(gw.http(), "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), big);
}

#[tokio::test]
async fn smuggling_shaped_responses_are_bad_gateway() {
    let cases: Vec<(&str, &[u8])> = vec![
        ("te+cl", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("two lengths", b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"),
        ("signed length", b"HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc"),
        ("chunked not last", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
        ("garbage", b"HTTP/1.1 2OO OK\r\n\r\n"),
        ("unsolicited 101", b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"),
    ];
    for (name, bytes) in cases {
        let bytes = bytes.to_vec();
        let up = RawUpstream::start(move |_, _| Act::Reply(bytes.clone())).await;
        let gw = gateway(up.addr, "");
        let text = raw_get(&gw, "/").await;
        assert_eq!(raw_status(&text), 502, "{name}: {text}");
        assert!(text.contains("upstream.bad_response"), "{name}: {text}");
    }
}

#[tokio::test]
async fn malformed_chunk_framing_aborts_the_response() {
    let up = RawUpstream::start(|_, _| {
        Act::Reply(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n".to_vec(),
        )
    })
    .await;
    let gw = gateway(up.addr, "");
    let text = raw_get(&gw, "/").await;
    // The head may already be out (then the body is cut off) or not (then the connection
    // closes with nothing): never a completed response.
    assert!(matches!(raw_status(&text), 0 | 200), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "response looked complete: {text}"
    );
    assert!(!text.contains("hello"), "{text}");
}

#[tokio::test]
async fn a_body_cut_short_is_not_passed_off_as_complete() {
    let up = RawUpstream::start(|_, _| {
        Act::ReplyClose(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this".to_vec())
    })
    .await;
    let gw = gateway(up.addr, "");
    let text = raw_get(&gw, "/").await;
    assert!(matches!(raw_status(&text), 0 | 200), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.len() < 100, "{text}");
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced() {
    // The first connection answers once and then closes when the next request arrives,
    // without a word (the keep-alive race); later connections behave.
    let up = RawUpstream::start(first_connection_drops_its_second_request()).await;
    let gw = gateway(up.addr, "");
    for _ in 0..3 {
        let r = get(gw.http(), "/").await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "fine"));
    }
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn a_closed_connection_is_not_retried_for_a_post() {
    let up = RawUpstream::start(first_connection_drops_its_second_request()).await;
    let gw = gateway(up.addr, "");
    assert_eq!(get(gw.http(), "/").await.status, 200);
    // Make sure the gateway's worker has not yet seen the close when the POST goes out:
    // the upstream closes only on reading it.
    let text = raw(
        gw.http(),
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 502, "{text}");
    assert_eq!(up.heads.lock().unwrap().len(), 2, "the POST was sent once");
}

#[tokio::test]
async fn idle_pooled_connections_are_closed_after_the_idle_timeout() {
    let up = RawUpstream::start(|_, _| Act::Reply(ok("x"))).await;
    let gw = gateway(up.addr, ", pool: { idle_timeout: 1s }");
    assert_eq!(get(gw.http(), "/").await.status, 200);
    assert_eq!(up.closed.load(Ordering::SeqCst), 0);
    // No further traffic: the worker's sweep closes the connection on its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while up.closed.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle connection never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_never_used_even_for_a_post() {
    // The upstream closes each connection right after answering, without saying so: the
    // pooled connection is seen to be closed before use, so even a POST (never retried)
    // goes out on a fresh connection.
    let up = RawUpstream::start(|_, _| Act::ReplyClose(ok("fresh"))).await;
    let gw = gateway(up.addr, "");
    assert_eq!(get(gw.http(), "/").await.status, 200);
    while up.closed.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let text = raw(
        gw.http(),
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 200, "{text}");
    assert!(text.ends_with("fresh"), "{text}");
    assert_eq!(up.connections(), 2);
}
