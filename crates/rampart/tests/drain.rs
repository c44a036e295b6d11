//! Graceful drain: new connections are refused, idle ones close, in-flight requests
//! finish, readiness fails, and `rampart run` exits 0 once drained.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::process::{run_gateway, signal, wait_exit, RunningGateway};
use support::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn drain_finishes_in_flight_requests_and_refuses_new_connections() {
    let slow =
        TestUpstream::with(|_| Answer::ok("slow answer").delayed(Duration::from_millis(800)));
    let dir = tempfile::tempdir().unwrap();
    let yaml = simple_config(&[slow.addr], "").replace(
        "access_log:",
        "admin: { bind: \"127.0.0.1:0\" }\naccess_log:",
    );
    let gateway = Arc::new(
        rampart::Gateway::start(rampart::compile_str(&yaml, dir.path()).unwrap()).unwrap(),
    );
    let admin = rampart::admin::start(gateway.clone(), None)
        .unwrap()
        .unwrap();
    let addr = gateway.addr("public").unwrap();
    let in_flight = tokio::spawn(async move { get(addr, "/slow").await });
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    gateway.begin_drain();
    assert_eq!(get(admin.addr(), "/readyz").await.json()["draining"], true);
    assert!(
        closed_within(&mut idle, Duration::from_secs(2)).await,
        "idle connection not closed"
    );
    // Listeners close: connecting fails (possibly after the workers notice the drain).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(mut s) => {
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
                if read_to_close(&mut s, Duration::from_millis(500))
                    .await
                    .is_empty()
                {
                    break;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting during drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow answer");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while gateway.open_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections left open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_drains_then_exits_zero() {
    let slow = TestUpstream::with(|_| Answer::ok("done").delayed(Duration::from_millis(700)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.yaml");
    std::fs::write(&path, simple_config(&[slow.addr], "")).unwrap();
    let RunningGateway {
        mut child,
        addr,
        logs,
        ..
    } = run_gateway(&path);
    let request = tokio::spawn(async move { get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&child, "TERM");
    let r = request.await;
    let r = r.unwrap_or_else(|e| panic!("{e}\n{}", logs.try_iter().collect::<Vec<_>>().join("\n")));
    assert_eq!(r.text(), "done");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}
