//! Graceful drain: new connections are refused, idle ones close, in-flight requests
//! finish, readiness fails, and `rampart run` exits 0 once drained.

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "--config"])
        .arg(&path)
        .env("RAMPART_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr: std::net::SocketAddr = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.contains("\"listening\"") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["fields"]["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    let request = tokio::spawn(async move { get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let r = request.await;
    let logs: Vec<String> = rx.try_iter().collect();
    let r = r.unwrap_or_else(|e| panic!("{e}\n{}", logs.join("\n")));
    assert_eq!(r.text(), "done");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
