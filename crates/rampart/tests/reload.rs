//! Hot reload: new plans apply to new requests, failed reloads change nothing, open
//! connections survive, certificates rotate, and no request is lost across reloads.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::certs::TestCa;
use support::process::{run_gateway, signal, wait_exit, RunningGateway};
use support::*;
use tokio::io::AsyncWriteExt;

fn two_route_config(a: &TestUpstream, b: &TestUpstream, second_path: &str) -> String {
    format!(
        "version: 1\nworkers: 2\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  a: {{ targets: [{{ url: \"http://{}\" }}] }}\n  b: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: first, match: {{ path_prefix: / }}, upstream: a }}\n  - {{ name: second, match: {{ path_prefix: {second_path} }}, upstream: b }}\n",
        a.addr, b.addr
    )
}

#[tokio::test]
async fn reload_applies_to_new_requests_and_keeps_open_connections() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let gw = start(&two_route_config(&a, &b, "/old"));
    // A keep-alive connection opened before the reload.
    let mut tcp = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    tcp.write_all(b"GET /new/x HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((a.hits(), b.hits()), (1, 0));

    let plan = rampart::compile_str_with(
        &two_route_config(&a, &b, "/new"),
        gw.dir.path(),
        &gw.gateway.state(),
    )
    .unwrap();
    gw.gateway.reload(plan).unwrap();
    assert!(gw.gateway.last_reload().unwrap().ok);

    assert_eq!(get(gw.http(), "/new/y").await.status, 200);
    assert_eq!(b.hits(), 1, "a new connection routes with the new plan");
    tcp.write_all(b"GET /new/z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert_eq!(
        b.hits(),
        2,
        "the old keep-alive connection's next request uses the new plan"
    );
}

#[tokio::test]
async fn failed_reload_keeps_serving_and_reports_every_error() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, two_route_config(&a, &b, "/old")).unwrap();
    let gw = rampart::Gateway::start(rampart::compile_file(&path).unwrap()).unwrap();
    let addr = gw.addr("public").unwrap();
    let bad = two_route_config(&a, &b, "/old")
        .replace("upstream: b", "upstream: billing")
        .replace("version: 1", "version: 3");
    std::fs::write(&path, bad).unwrap();
    let errors = rampart::reload::reload_file(&gw, &path).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("version: unsupported version 3")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("routes[1].upstream: unknown upstream \"billing\"")),
        "{errors:?}"
    );
    let status = gw.last_reload().unwrap();
    assert!(!status.ok);
    assert_eq!(status.errors, errors);
    // Still serving the old plan.
    assert_eq!(get(addr, "/old/x").await.status, 200);
    assert_eq!(b.hits(), 1);
    // A file that references a missing certificate is refused the same way.
    let tls = two_route_config(&a, &b, "/old").replace(
        "listeners: [{ name: public, bind: \"127.0.0.1:0\" }]",
        "listeners: [{ name: public, bind: \"127.0.0.1:0\", tls: { certificates: [{ cert_file: gone.pem, key_file: gone.key }] } }]",
    );
    std::fs::write(&path, tls).unwrap();
    let errors = rampart::reload::reload_file(&gw, &path).unwrap_err();
    assert!(
        errors[0]
            .starts_with("listeners[0].tls.certificates[0].cert_file: cannot read certificates"),
        "{errors:?}"
    );
    assert_eq!(get(addr, "/old/x").await.status, 200);
}

#[tokio::test]
async fn listeners_are_added_and_removed_without_a_restart() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let base = two_route_config(&a, &b, "/old");
    let gw = start(&base);
    let public = gw.http();
    // A keep-alive connection on `public`, opened before it is removed.
    let tcp = tokio::net::TcpStream::connect(public).await.unwrap();
    let (mut kept, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = || {
        http::Request::get("/x")
            .header("host", "h")
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .unwrap()
    };
    assert_eq!(kept.send_request(req()).await.unwrap().status(), 200);

    let with_second = base.replace(
        "listeners: [{ name: public, bind: \"127.0.0.1:0\" }]",
        "listeners: [{ name: public, bind: \"127.0.0.1:0\" }, { name: second, bind: \"127.0.0.1:0\" }]",
    );
    gw.gateway
        .reload(
            rampart::compile_str_with(&with_second, gw.dir.path(), &gw.gateway.state()).unwrap(),
        )
        .unwrap();
    let second = gw.gateway.addr("second").expect("new listener bound");
    assert_eq!(get(second, "/x").await.status, 200);
    assert_eq!(get(public, "/x").await.status, 200);

    let only_second = base.replace("name: public", "name: second");
    gw.gateway
        .reload(
            rampart::compile_str_with(&only_second, gw.dir.path(), &gw.gateway.state()).unwrap(),
        )
        .unwrap();
    assert!(gw.gateway.addr("public").is_none());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::net::TcpStream::connect(public).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "removed listener still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kept.ready().await.unwrap();
    assert_eq!(
        kept.send_request(req()).await.unwrap().status(),
        200,
        "open connection survives"
    );
}

#[tokio::test]
async fn a_listener_that_cannot_bind_fails_the_reload() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let base = two_route_config(&a, &b, "/old");
    let gw = start(&base);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = base.replace(
        "listeners: [{ name: public, bind: \"127.0.0.1:0\" }]",
        &format!("listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}, {{ name: busy, bind: \"{}\" }}]", taken.local_addr().unwrap()),
    ).replace("path_prefix: /old", "path_prefix: /new");
    let errors = gw
        .gateway
        .reload(rampart::compile_str_with(&busy, gw.dir.path(), &gw.gateway.state()).unwrap())
        .unwrap_err();
    assert!(
        errors[0].starts_with("listeners[1].bind: cannot bind listener \"busy\""),
        "{errors:?}"
    );
    assert!(gw.gateway.addr("busy").is_none());
    assert_eq!(get(gw.http(), "/new/x").await.status, 200);
    assert_eq!(b.hits(), 0, "the old plan is still routing");
}

#[tokio::test]
async fn rotated_certificate_is_used_by_new_handshakes_only() {
    let ca = TestCa::new("Test Root");
    let dir = tempfile::tempdir().unwrap();
    let old = ca.leaf("api.example.com", &["api.example.com"]);
    old.write(dir.path(), "api");
    let up = TestUpstream::echo();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n    tls: {{ certificates: [{{ cert_file: api.pem, key_file: api.key }}] }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: up }}\n",
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let client = TlsClient::trusting(&ca.pem());
    let before = tls_connect(gw.http(), "api.example.com", &client)
        .await
        .unwrap();
    let old_der = before.server_cert_der();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(before.stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = || {
        http::Request::get("/")
            .header("host", "api.example.com")
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .unwrap()
    };
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);

    let new = ca.leaf("api.example.com", &["api.example.com"]);
    new.write(gw.dir.path(), "api");
    gw.gateway
        .reload(rampart::compile_str_with(&yaml, gw.dir.path(), &gw.gateway.state()).unwrap())
        .unwrap();

    let after = tls_connect(gw.http(), "api.example.com", &client)
        .await
        .unwrap();
    assert_ne!(
        after.server_cert_der(),
        old_der,
        "new handshakes get the new certificate"
    );
    sender.ready().await.unwrap();
    assert_eq!(
        sender.send_request(req()).await.unwrap().status(),
        200,
        "the old connection survives"
    );
}

#[tokio::test]
async fn no_request_is_lost_across_repeated_reloads() {
    let (a, b) = (TestUpstream::echo(), TestUpstream::echo());
    let gw = start(&two_route_config(&a, &b, "/old"));
    let addr = gw.http();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            // Half the clients reuse one keep-alive connection, half connect each time.
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2000 {
                n += 1;
                let status = if c % 2 == 0 {
                    let req = http::Request::get("/old/x")
                        .header("host", "h")
                        .body(http_body_util::Full::<bytes::Bytes>::default())
                        .unwrap();
                    match sender.send_request(req).await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    }
                } else {
                    get(addr, "/old/x").await.status.as_u16()
                };
                if status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for i in 0..20 {
        let path = if i % 2 == 0 { "/new" } else { "/old" };
        let plan = rampart::compile_str_with(
            &two_route_config(&a, &b, path),
            gw.dir.path(),
            &gw.gateway.state(),
        )
        .unwrap();
        gw.gateway.reload(plan).unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "too few requests: {}",
        ok.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert_eq!(a.hits() + b.hits(), ok.load(Ordering::SeqCst));
}

async fn eventually_status(addr: std::net::SocketAddr, path: &str, want: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if get(addr, path).await.status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn one_route(a: &TestUpstream, path: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  a: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:\n  - {{ name: r, match: {{ path_prefix: {path} }}, upstream: a }}\n",
        a.addr
    )
}

#[tokio::test]
async fn reloads_on_sighup_and_logs_failures() {
    let a = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, one_route(&a, "/one")).unwrap();
    let RunningGateway {
        mut child,
        addr,
        logs: rx,
        ..
    } = run_gateway(&path);
    assert_eq!(get(addr, "/two").await.status, 404);
    // The file watcher may notice this write as well; SIGHUP asks for the reload at once.
    std::fs::write(&path, one_route(&a, "/two")).unwrap();
    signal(&child, "HUP");
    eventually_status(addr, "/two", 200).await;
    // A broken file: the reload fails, the error is logged with its path, service goes on.
    std::fs::write(
        &path,
        one_route(&a, "/three").replace("upstream: a", "upstream: nope"),
    )
    .unwrap();
    signal(&child, "HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut saw = false;
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if line.contains("routes[0].upstream: unknown upstream") {
            saw = true;
            break;
        }
    }
    assert!(saw, "reload failure was not logged with its YAML path");
    assert_eq!(get(addr, "/two").await.status, 200);
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

#[tokio::test]
async fn reloads_when_the_file_is_replaced_atomically() {
    let a = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, one_route(&a, "/one")).unwrap();
    let RunningGateway {
        mut child, addr, ..
    } = run_gateway(&path);
    assert_eq!(get(addr, "/two").await.status, 404);
    let tmp = dir.path().join(".rampart.yaml.tmp");
    std::fs::write(&tmp, one_route(&a, "/two")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // Within the watcher's debounce, or the metadata check's period should an event be
    // lost under load.
    eventually_status(addr, "/two", 200).await;
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

#[tokio::test]
async fn sigusr1_reopens_the_access_log_after_rotation() {
    let a = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let path = dir.path().join("rampart.yaml");
    let yaml = one_route(&a, "/one").replace(
        "access_log: { enabled: false }",
        &format!("access_log: {{ output: {} }}", log.display()),
    );
    std::fs::write(&path, yaml).unwrap();
    let RunningGateway {
        mut child, addr, ..
    } = run_gateway(&path);
    assert_eq!(get(addr, "/one/before").await.status, 200);
    wait_for_file(&log, |t| t.contains("/one/before")).await;
    // logrotate: move the file away, then signal.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&child, "USR1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(addr, "/one/after").await.status, 200);
    let fresh = wait_for_file(&log, |t| t.contains("/one/after")).await;
    assert!(fresh.contains("/one/after"), "new file: {fresh:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("/one/before") && !old.contains("/one/after"),
        "{old}"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

#[tokio::test]
async fn websocket_and_http2_connections_survive_a_reload() {
    use tokio::io::AsyncReadExt;
    let ca = TestCa::new("Test Root");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf("api.example.com", &["api.example.com"])
        .write(dir.path(), "api");
    let up = TestUpstream::echo();
    let yaml = |prefix: &str| {
        format!(
            "version: 1\naccess_log: {{ enabled: false }}\nlisteners:\n  - {{ name: public, bind: \"127.0.0.1:0\" }}\n  - name: tls\n    bind: \"127.0.0.1:0\"\n    tls: {{ certificates: [{{ cert_file: api.pem, key_file: api.key }}] }}\n\
             upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:\n  - {{ name: all, match: {{ path_prefix: {prefix} }}, upstream: up, websocket: true }}\n",
            up.addr
        )
    };
    let gw = start_in(&yaml("/"), dir);
    // A WebSocket-style upgraded connection.
    let mut ws = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = ws.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    // An HTTP/2 connection.
    let mut c = TlsClient::trusting(&ca.pem());
    c.alpn = vec![b"h2".to_vec()];
    let tls = tls_connect(gw.addr("tls"), "api.example.com", &c)
        .await
        .unwrap();
    let (h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls.stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let get_h2 =
        |mut s: hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
         path: &'static str| async move {
            let req = http::Request::get(format!("https://api.example.com{path}"))
                .body(http_body_util::Full::default())
                .unwrap();
            s.send_request(req).await.unwrap().status().as_u16()
        };
    assert_eq!(get_h2(h2.clone(), "/before").await, 200);

    // Reload to a plan where only /api routes: old connections stay up and follow it.
    gw.gateway
        .reload(
            rampart::compile_str_with(&yaml("/api"), gw.dir.path(), &gw.gateway.state()).unwrap(),
        )
        .unwrap();

    ws.write_all(b"still here").await.unwrap();
    let n = ws.read(&mut buf).await.unwrap();
    assert_eq!(
        &buf[..n],
        b"STILL HERE",
        "the upgraded connection survives the reload"
    );
    assert_eq!(
        get_h2(h2.clone(), "/api/after").await,
        200,
        "the HTTP/2 connection survives"
    );
    assert_eq!(
        get_h2(h2, "/before").await,
        404,
        "and its new streams use the new plan"
    );
}
