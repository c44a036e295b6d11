//! Proxying behaviour a client and an upstream can observe: bodies, headers, request ids,
//! forwarding headers and their trust, rewrites, WebSocket pass-through.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn proxies_get_and_post_with_body() {
    // A GET and a POST go through unchanged in method, path, query and body.
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let r = get(gw.http(), "/a/b?x=1&y=2").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/a/b?x=1&y=2");
    let post = Request::post("/items")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from("hello body")))
        .unwrap();
    let r = send(gw.http(), post).await;
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.json()["body"], "hello body");
}

#[tokio::test]
async fn streams_large_request_body_through() {
    // A body bigger than any buffer streams through intact (chunked from the client).
    let up = TestUpstream::with(|s| Answer::ok(format!("{}", s.body.len())));
    let gw = start(&simple_config(&[up.addr], "").replace(
        "access_log:",
        "limits: { max_body_bytes: 8MiB }\naccess_log:",
    ));
    let big = vec![b'x'; 3 * 1024 * 1024];
    let r = send(
        gw.http(),
        Request::post("/upload")
            .body(Full::new(Bytes::from(big)))
            .unwrap(),
    )
    .await;
    assert_eq!(r.text(), (3 * 1024 * 1024).to_string());
}

#[tokio::test]
async fn generates_request_id_and_sends_it_both_ways() {
    // Without a trusted proxy, the gateway makes a UUIDv7 request id, sends it upstream and
    // returns it to the client; a client-supplied one is replaced.
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let r = get_with(gw.http(), "/", &[("x-request-id", "spoofed-id")]).await;
    let id = r.header("x-request-id").unwrap().to_string();
    assert_ne!(id, "spoofed-id");
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "UUID version 7: {id}");
    assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());
}

#[tokio::test]
async fn keeps_request_id_from_trusted_proxy() {
    // A trusted proxy's X-Request-Id is kept end to end.
    let up = TestUpstream::echo();
    let cfg = simple_config(&[up.addr], "")
        .replace("access_log:", "trusted_proxies: [127.0.0.0/8]\naccess_log:");
    let gw = start(&cfg);
    let r = get_with(gw.http(), "/", &[("x-request-id", "edge-123")]).await;
    assert_eq!(r.header("x-request-id"), Some("edge-123"));
    assert_eq!(r.json()["headers"]["x-request-id"], "edge-123");
}

#[tokio::test]
async fn strips_hop_by_hop_and_connection_named_headers() {
    // Hop-by-hop headers and headers named in Connection never reach the upstream.
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let r = get_with(
        gw.http(),
        "/",
        &[
            ("connection", "keep-alive, x-internal-secret"),
            ("x-internal-secret", "s3cr3t"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic abc"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    let h = &r.json()["headers"];
    for gone in [
        "x-internal-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "connection",
    ] {
        assert!(h.get(gone).is_none(), "{gone} leaked upstream: {h}");
    }
    assert_eq!(h["x-kept"], "yes");
}

#[tokio::test]
async fn strips_server_and_powered_by_from_responses() {
    // Upstream software banners are removed from responses.
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let r = get(gw.http(), "/").await;
    assert!(r.header("server").is_none(), "{:?}", r.headers);
    assert!(r.header("x-powered-by").is_none());
}

#[tokio::test]
async fn replaces_forwarding_headers_from_untrusted_clients() {
    // A client that is not a trusted proxy cannot plant X-Forwarded-* or Forwarded.
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let r = get_with(
        gw.http(),
        "/",
        &[
            ("host", "api.example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ],
    )
    .await;
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example.com");
    assert_eq!(
        h["forwarded"],
        "for=127.0.0.1;proto=http;host=\"api.example.com\""
    );
    assert!(h.get("x-real-ip").is_none());
}

#[tokio::test]
async fn extends_forwarding_chain_from_trusted_proxy_and_logs_real_client() {
    // From a trusted proxy, X-Forwarded-For is extended and the client IP in the access log
    // is the right-most untrusted address.
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = simple_config(&[up.addr], "").replace(
        "access_log: { enabled: false }",
        &format!(
            "access_log: {{ output: {} }}\ntrusted_proxies: [127.0.0.1]",
            log.display()
        ),
    );
    let gw = start_in(&cfg, dir);
    let r = get_with(
        gw.http(),
        "/",
        &[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    let line = access_log_line(&log, "client_ip").await;
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["client_ip"], "198.51.100.7");
}

/// A gateway in front of `up` that writes its access log to a file in its temp dir.
fn logging_gateway(up: &TestUpstream) -> (TestGateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = simple_config(&[up.addr], "").replace(
        "access_log: { enabled: false }",
        &format!("access_log: {{ output: {} }}", log.display()),
    );
    (start_in(&cfg, dir), log)
}

#[tokio::test]
async fn access_log_lines_buffered_at_shutdown_are_written_out() {
    // Lines wait in per-worker buffers; stopping the gateway writes every one of them
    // before it returns, so a restart loses no line.
    let up = TestUpstream::echo();
    let (gw, log) = logging_gateway(&up);
    for i in 0..50 {
        assert_eq!(get(gw.http(), &format!("/n{i}")).await.status, 200);
    }
    let TestGateway { gateway, dir: _dir } = gw;
    tokio::task::spawn_blocking(move || gateway.shutdown())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    for i in 0..50 {
        assert!(
            text.contains(&format!("\"/n{i}\"")),
            "line {i} missing:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), 50);
}

#[tokio::test]
async fn access_log_has_fields_and_no_credentials() {
    // One JSON line per request with the documented fields; query values, Authorization
    // and cookies never appear.
    let up = TestUpstream::echo();
    let (gw, log) = logging_gateway(&up);
    let r = get_with(
        gw.http(),
        "/search?api_key=SECRETKEY1&q=shoes",
        &[
            ("authorization", "Bearer SECRETTOKEN2"),
            ("cookie", "session=SECRETCOOKIE3"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let missing = get(gw.http(), "/../x").await;
    assert_eq!(missing.status, 400);
    let text = wait_for_file(&log, |t| complete_lines(t).count() >= 2).await;
    for secret in ["SECRETKEY1", "SECRETTOKEN2", "SECRETCOOKIE3", "shoes"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the access log: {text}"
        );
    }
    let lines: Vec<serde_json::Value> = complete_lines(&text)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each worker buffers its own lines, so lines from different workers need not be in
    // time order: find them by content.
    let ok = lines
        .iter()
        .find(|l| l["status"] == 200)
        .expect("the 200's line");
    assert_eq!(ok["path"], "/search?api_key&q");
    assert_eq!(ok["route"], "all");
    assert_eq!(ok["upstream"], "up");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["request_id"], r.header("x-request-id").unwrap());
    for field in [
        "time",
        "client_ip",
        "method",
        "host",
        "target",
        "bytes_in",
        "bytes_out",
        "duration_ms",
    ] {
        assert!(ok.get(field).is_some(), "missing {field}: {ok}");
    }
    let bad = lines
        .iter()
        .find(|l| l["status"] == 400)
        .expect("the 400's line");
    assert_eq!(bad["code"], "request.bad_path");
}

#[tokio::test]
async fn rewrites_paths_and_sets_host() {
    // strip_prefix and replace_prefix rewrite the matched path; Host is the target's
    // unless preserve_host is set.
    let up = TestUpstream::echo();
    let cfg = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{a}\" }}] }}\nroutes:\n\
         - {{ name: strip, match: {{ path_prefix: /api }}, upstream: up, rewrite: {{ strip_prefix: /api }} }}\n\
         - {{ name: replace, match: {{ path_prefix: /v1 }}, upstream: up, rewrite: {{ replace_prefix: {{ from: /v1, to: /internal/v2 }} }}, preserve_host: true }}\n",
        a = up.addr
    );
    let gw = start(&cfg);
    let r = get_with(
        gw.http(),
        "/api/users/7?x=1",
        &[("host", "api.example.com")],
    )
    .await;
    assert_eq!(r.json()["uri"], "/users/7?x=1");
    assert_eq!(r.json()["headers"]["host"], up.addr.to_string());
    let r = get_with(gw.http(), "/v1/orders", &[("host", "api.example.com")]).await;
    assert_eq!(r.json()["uri"], "/internal/v2/orders");
    assert_eq!(r.json()["headers"]["host"], "api.example.com");
}

#[tokio::test]
async fn upstream_receives_the_normalised_path() {
    // The path the upstream sees is the one that was matched: normalised once.
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let text = raw(
        gw.http(),
        b"GET /a/./b//c/../d/%7Euser HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 200, "{text}");
    assert!(text.contains("\"uri\":\"/a/b/d/~user\""), "{text}");
}

#[tokio::test]
async fn passes_websocket_upgrades_through() {
    // An Upgrade handshake reaches the upstream, the 101 comes back, and bytes then flow
    // both ways over the same connection.
    let up = TestUpstream::echo();
    let gw = start(&format!(
        "{}    websocket: true\n",
        simple_config(&[up.addr], "")
    ));
    let mut tcp = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    tcp.write_all(b"hello over ws").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"HELLO OVER WS");
}

#[tokio::test]
async fn answers_404_problem_json_when_no_route_matches() {
    // No matching route: RFC 9457 problem+json with a stable code and the request id.
    let up = TestUpstream::echo();
    let cfg = simple_config(&[up.addr], "").replace("path_prefix: /", "path_prefix: /only");
    let gw = start(&cfg);
    let r = get(gw.http(), "/elsewhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "route.not_found");
    assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap());
    assert_eq!(up.hits(), 0);
}
