//! Header and parsing integrity (the hardening audit): what a client sends can never undo
//! what the gateway sets, smuggle a twin of it, steer an upstream framework, switch the
//! strict HTTP/1 checks off, or make the gateway and the upstream disagree about the host
//! or the path. Real gateway, real echo upstream, raw sockets where the bytes matter.

mod support;

use std::time::Duration;

use rampart_identity::api_key::generate;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PEPPER: &str = "test-pepper-0123456789abcdef";

/// A gateway with an API-key route (`/orders`), a public route (`/public`), a WebSocket
/// route (`/ws`) and routes that opt in to `;` and `%25`; `limits` is spliced into
/// `limits:`, `extra` appended at top level.
struct Fixture {
    gw: TestGateway,
    up: TestUpstream,
    key: String,
}

fn fixture(limits: &str, extra: &str) -> Fixture {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let key = generate(PEPPER.as_bytes()).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
limits: {{ {limits} }}
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }} }}
  headers: {{ strip: [X-User] }}
consumers:
  - {{ id: acme, roles: [reader], api_keys: [{{ id: acme-1, hash: "{hash}" }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - {{ name: orders, match: {{ path_prefix: /orders }}, upstream: up, authenticate: [api_key] }}
  - {{ name: public, match: {{ path_prefix: /public }}, upstream: up }}
  - {{ name: ws, match: {{ path_prefix: /ws }}, upstream: up, websocket: true }}
  - {{ name: matrix, match: {{ path_prefix: /matrix }}, upstream: up, allow_path_parameters: true }}
  - {{ name: encoded, match: {{ path_prefix: /encoded }}, upstream: up, allow_encoded_percent: true }}
  - {{ name: host-only, match: {{ hosts: [right.example], path_prefix: /host }}, upstream: up }}
{extra}
"#,
        log = dir.path().join("access.log").display(),
        hash = key.hash,
        up = up.addr,
    );
    Fixture {
        gw: start_in(&yaml, dir),
        up,
        key: key.key,
    }
}

impl Fixture {
    async fn log(&self, needle: &str) -> String {
        access_log_line(&self.gw.dir.path().join("access.log"), needle).await
    }
}

/// Sends one raw request (which must ask for `Connection: close` or be refused) and
/// returns the response text.
async fn raw_request(f: &Fixture, req: &str) -> String {
    raw(f.gw.http(), req.as_bytes()).await
}

#[tokio::test]
async fn connection_cannot_remove_the_identity_headers_the_gateway_sets() {
    // The audit's bypass: nominate the gateway's identity headers in Connection so that
    // hop-by-hop stripping deletes them after authentication, and plant twins.
    let f = fixture("", "");
    let req = format!(
        "GET /orders/1 HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nConnection: close, x-consumer-id, x-consumer-roles, x-custom\r\nX_Consumer_Id: victim\r\nX_Consumer_Roles: admin\r\nX-Custom: gone\r\n\r\n",
        f.key
    );
    let text = raw_request(&f, &req).await;
    assert_eq!(raw_status(&text), 200, "{text}");
    let seen = f.up.last().headers;
    assert_eq!(seen.get("x-consumer-id").unwrap(), "acme");
    assert_eq!(seen.get("x-consumer-roles").unwrap(), "reader");
    assert!(seen.get("x_consumer_id").is_none() && seen.get("x_consumer_roles").is_none());
    // What the client nominated for itself is still removed (RFC 9110 §7.6.1).
    assert!(seen.get("x-custom").is_none() && seen.get("connection").is_none());
}

#[tokio::test]
async fn underscore_twins_of_owned_headers_are_removed_even_when_underscores_are_allowed() {
    let f = fixture("headers_with_underscores: allow", "");
    let r = get_with(
        f.gw.http(),
        "/public/x",
        &[
            ("x_consumer_id", "victim"),
            ("x_forwarded_for", "1.2.3.4"),
            ("x_user", "admin"),
            ("x_api_key", "stolen"),
            ("x_trace_tag", "kept"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = f.up.last().headers;
    for gone in ["x_consumer_id", "x_forwarded_for", "x_user", "x_api_key"] {
        assert!(seen.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(seen.get("x_trace_tag").unwrap(), "kept");
}

#[tokio::test]
async fn drops_headers_with_underscores_by_default() {
    let f = fixture("", "");
    let r = get_with(
        f.gw.http(),
        "/public/x",
        &[("x_trace_tag", "1"), ("x-trace-tag", "2")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = f.up.last().headers;
    assert!(seen.get("x_trace_tag").is_none());
    assert_eq!(seen.get("x-trace-tag").unwrap(), "2");
}

#[tokio::test]
async fn rejects_headers_with_underscores_when_configured() {
    let f = fixture("headers_with_underscores: reject", "");
    let before = f.up.hits();
    let r = get_with(f.gw.http(), "/public/x", &[("x_trace_tag", "1")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "http.underscore_header");
    assert_eq!(f.up.hits(), before);
    let ok = get_with(f.gw.http(), "/public/x", &[("x-trace-tag", "1")]).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn strips_spoofable_routing_headers_from_untrusted_peers() {
    let f = fixture("", "");
    let spoofed = [
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-forwarded-prefix", "/admin"),
        ("x-forwarded-server", "evil"),
        ("x-real-ip", "10.0.0.1"),
        ("true-client-ip", "10.0.0.1"),
        ("x-client-ip", "10.0.0.1"),
        ("cf-connecting-ip", "10.0.0.1"),
        ("x-http-method-override", "DELETE"),
    ];
    let r = get_with(f.gw.http(), "/public/x", &spoofed).await;
    assert_eq!(r.status, 200);
    let seen = f.up.last().headers;
    for (name, _) in spoofed {
        assert!(seen.get(name).is_none(), "{name} reached the upstream");
    }
}

#[tokio::test]
async fn keeps_spoofable_routing_headers_from_trusted_proxies() {
    let f = fixture("", "trusted_proxies: [127.0.0.1/32]");
    let r = get_with(
        f.gw.http(),
        "/public/x",
        &[("x-original-url", "/kept"), ("x-real-ip", "192.0.2.1")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = f.up.last().headers;
    assert_eq!(seen.get("x-original-url").unwrap(), "/kept");
    assert_eq!(seen.get("x-real-ip").unwrap(), "192.0.2.1");
}

#[tokio::test]
async fn refuses_repeated_api_key_headers() {
    let f = fixture("", "");
    let before = f.up.hits();
    let req = format!(
        "GET /orders/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {}\r\nX-API-Key: rpk_other_secret\r\n\r\n",
        f.key
    );
    let text = raw_request(&f, &req).await;
    assert_eq!(raw_status(&text), 401, "{text}");
    assert_eq!(f.up.hits(), before);
    let line = f.log("auth.credential_repeated").await;
    assert!(
        line.contains("\"code\":\"auth.credential_repeated\""),
        "{line}"
    );
    // One key, the same request otherwise: accepted.
    let r = get_with(f.gw.http(), "/orders/1", &[("x-api-key", &f.key)]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn refused_upgrade_closes_the_connection_instead_of_switching_the_guard_off() {
    // The audit's bypass: an Upgrade head answered by the gateway itself (here 401) left
    // the connection open with the strict parser off, so a bare-LF request followed.
    let f = fixture("", "");
    let mut tcp = tokio::net::TcpStream::connect(f.gw.http()).await.unwrap();
    tcp.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /public/x HTTP/1.1\nHost: x\n\n")
        .await
        .unwrap();
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(raw_status(&text), 401, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "a second response: {text}"
    );
    assert_eq!(f.up.hits(), 0);
}

#[tokio::test]
async fn upgrade_on_a_route_without_websocket_goes_upstream_as_a_plain_request() {
    let f = fixture("", "");
    let text = raw_request(
        &f,
        "GET /public/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    // The echo upstream would answer 101 to any upgrade it saw: it saw none.
    assert_eq!(raw_status(&text), 200, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    let seen = f.up.last().headers;
    assert!(seen.get("upgrade").is_none() && seen.get("connection").is_none());
}

#[tokio::test]
async fn never_forwards_an_h2c_upgrade() {
    // h2c smuggling: a proxy that forwards `Upgrade: h2c` hands the client an HTTP/2
    // connection straight to the upstream, past every route rule.
    let f = fixture("", "");
    let text = raw_request(
        &f,
        "GET /ws/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 200, "{text}");
    let seen = f.up.last().headers;
    assert!(
        seen.get("upgrade").is_none(),
        "Upgrade reached the upstream"
    );
    assert!(seen.get("http2-settings").is_none());
}

#[tokio::test]
async fn http2_settings_is_removed_from_every_request() {
    let f = fixture("", "");
    let r = get_with(f.gw.http(), "/public/x", &[("http2-settings", "AAMAAABk")]).await;
    assert_eq!(r.status, 200);
    assert!(f.up.last().headers.get("http2-settings").is_none());
}

#[tokio::test]
async fn websocket_upgrade_tunnels_on_a_route_that_allows_it() {
    let f = fixture("", "");
    let mut tcp = tokio::net::TcpStream::connect(f.gw.http()).await.unwrap();
    tcp.write_all(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tcp.write_all(b"frames").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"FRAMES");
}

#[tokio::test]
async fn rejects_invalid_host_values() {
    let f = fixture("", "");
    for host in ["a b", "a,b", "user@host", "host:99999", "[::1", "a%20b"] {
        let text = raw_request(
            &f,
            &format!("GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(raw_status(&text), 400, "{host}: {text}");
        assert!(
            text.contains("\"code\":\"http.invalid_host\""),
            "{host}: {text}"
        );
    }
    assert_eq!(f.up.hits(), 0);
}

#[tokio::test]
async fn accepts_valid_host_values() {
    let f = fixture("", "");
    for host in [
        "api.example.com",
        "api.example.com:8080",
        "127.0.0.1:80",
        "[::1]:443",
    ] {
        let text = raw_request(
            &f,
            &format!("GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(raw_status(&text), 200, "{host}: {text}");
    }
}

#[tokio::test]
async fn absolute_form_authority_replaces_host_for_routing() {
    // RFC 9112 §3.2.2: the target's authority wins over a conflicting Host.
    let f = fixture("", "");
    let text = raw_request(
        &f,
        "GET http://right.example/host/x HTTP/1.1\r\nHost: wrong.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 200, "{text}");
    assert_eq!(
        f.up.last().headers.get("x-forwarded-host").unwrap(),
        "right.example"
    );
    let text = raw_request(
        &f,
        "GET http://user@right.example/host/x HTTP/1.1\r\nHost: right.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 400, "userinfo in the authority: {text}");
}

#[tokio::test]
async fn refuses_path_parameters_by_default() {
    // `/public/..;/orders` is `/orders` to Tomcat, but a public path to a naive router.
    let f = fixture("", "");
    let text = raw_request(
        &f,
        "GET /public/..;/orders/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 400, "{text}");
    assert!(
        text.contains("\"code\":\"request.path_parameters\""),
        "{text}"
    );
    assert_eq!(f.up.hits(), 0);
}

#[tokio::test]
async fn passes_path_parameters_verbatim_where_the_route_allows_them() {
    let f = fixture("", "");
    let r = get(f.gw.http(), "/matrix/items;v=2/7").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.up.last().uri, "/matrix/items;v=2/7");
}

#[tokio::test]
async fn refuses_double_encoding_unless_the_route_allows_it() {
    let f = fixture("", "");
    let r = get(f.gw.http(), "/public/%252e%252e/orders").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "request.double_encoding");
    let r = get(f.gw.http(), "/encoded/100%25").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.up.last().uri, "/encoded/100%25");
}

#[tokio::test]
async fn refuses_overlong_utf8_in_the_path() {
    let f = fixture("", "");
    for p in [
        "/public/%C0%AE%C0%AE/orders",
        "/public/%c0%af",
        "/public/%FF",
    ] {
        let r = get(f.gw.http(), p).await;
        assert_eq!(r.status, 400, "{p}");
        assert_eq!(r.code(), "request.bad_path", "{p}");
    }
    let r = get(f.gw.http(), "/public/caf%C3%A9").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn accepts_a_head_trickled_one_byte_at_a_time() {
    // The guard resumes its search for the end of the head where it stopped, so a
    // trickled head costs one pass, and is still accepted whole.
    let f = fixture("", "");
    let mut tcp = tokio::net::TcpStream::connect(f.gw.http()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let filler = "a".repeat(2000);
    let head = format!(
        "GET /public/x HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\nConnection: close\r\n\r\n"
    );
    for b in head.as_bytes() {
        tcp.write_all(std::slice::from_ref(b)).await.unwrap();
    }
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(raw_status(&text), 200, "{text}");
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_are_logged_and_forwarded_canonically() {
    // A `[::]` listener reports IPv4 clients as `::ffff:a.b.c.d`; everything downstream
    // must see `a.b.c.d`.
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 1\nworkers: 1\naccess_log: {{ output: \"{}\" }}\nlisteners: [{{ name: public, bind: \"[::]:0\" }}]\nupstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\nroutes: [{{ name: all, match: {{ path_prefix: / }}, upstream: up }}]\n",
        dir.path().join("access.log").display(),
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let port = gw.http().port();
    let r = get(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().headers.get("x-forwarded-for").unwrap(),
        "127.0.0.1"
    );
    let line = access_log_line(&gw.dir.path().join("access.log"), "\"/x\"").await;
    assert!(line.contains("\"client_ip\":\"127.0.0.1\""), "{line}");
}
