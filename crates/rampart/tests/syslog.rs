//! The audit trail's copy to syslog: real receivers on loopback, over TCP and over TLS
//! (a certificate generated here), reading octet-counted RFC 5424 frames; each message
//! is the trail's own line for the entry.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::certs::TestCa;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt};

type Got = Arc<Mutex<Vec<String>>>;

/// Reads octet-counted frames (`LEN SP MSG`) until the peer closes.
async fn read_frames(mut s: impl AsyncRead + Unpin, got: Got) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(sp) = buf.iter().position(|b| *b == b' ') {
            let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
            if buf.len() < sp + 1 + len {
                break;
            }
            let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
            got.lock().unwrap().push(msg);
            buf.drain(..sp + 1 + len);
        }
    }
}

/// A receiver on `listener`, over TLS when given a server config.
fn receiver(listener: tokio::net::TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Got {
    let got: Got = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(cfg) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                            read_frames(s, g).await;
                        }
                    }
                    None => read_frames(tcp, g).await,
                }
            });
        }
    });
    got
}

fn server_tls(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    let (chain, key) = ca.leaf("localhost", &["localhost"]).chain_and_key();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

fn config(up: &TestUpstream, syslog: &str) -> String {
    format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
audit: {{ path: audit.jsonl, signing_key: {{ file: audit-key }}, syslog: {syslog} }}
ip_lists: {{ me: {{ cidrs: [127.0.0.1/32] }} }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: walled, match: {{ path_prefix: /walled }}, upstream: up, ip_rules: {{ deny: [me] }} }}
"#,
        up.addr
    )
}

/// Waits until the receiver has messages of the kinds named.
async fn wait_for(got: &Got, kinds: &[&str]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msgs = got.lock().unwrap().clone();
        if kinds
            .iter()
            .all(|k| msgs.iter().any(|m| m.split(' ').nth(5) == Some(k)))
        {
            return msgs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{msgs:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks each message against the trail's file: the header, and the entry's own line.
fn check(msgs: &[String], trail: &str) {
    for m in msgs {
        let parts: Vec<&str> = m.splitn(8, ' ').collect();
        let (pri, ts, host, app, pid, msgid, sd, line) = (
            parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7],
        );
        assert_eq!((app, sd), ("rampart", "-"), "{m}");
        assert_eq!(host, "gw-test");
        assert_eq!(pid, std::process::id().to_string());
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["kind"], msgid);
        // authpriv (10): warning (4) for security events, informational (6) for a start.
        let want = match msgid {
            "security" => "<84>1",
            "process" => "<86>1",
            _ => continue,
        };
        assert_eq!(pri, want, "{m}");
        assert!(
            trail.lines().any(|l| l == line),
            "the trail's own line: {line}"
        );
    }
}

async fn run(syslog: &str, got: &Got) {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    support::process::audit_keygen(dir.path());
    if let Some(ca) = CA.lock().unwrap().as_ref() {
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    }
    let gw = start_in(&config(&up, syslog), dir);
    assert_eq!(get(gw.http(), "/walled").await.status, 403);
    let msgs = wait_for(got, &["process", "security"]).await;
    let trail = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    check(&msgs, &trail);
    let security = msgs.iter().find(|m| m.contains(" security - ")).unwrap();
    assert!(security.contains("\"code\":\"ip.denied\""), "{security}");
    let m = gw.feature_metrics();
    assert!(
        m.contains("rampart_audit_syslog_messages_total{result=\"dropped\"} 0"),
        "{m}"
    );
}

/// The CA of the TLS test's receiver, written next to its config.
static CA: Mutex<Option<String>> = Mutex::new(None);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reach_a_receiver_over_tls_and_over_tcp() {
    // TLS: the receiver's certificate checked against the CA in `ca_file`.
    let ca = TestCa::new("syslog-ca");
    *CA.lock().unwrap() = Some(ca.pem());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = receiver(l, Some(server_tls(&ca)));
    run(
        &format!("{{ address: \"localhost:{port}\", ca_file: ca.pem, hostname: gw-test }}"),
        &got,
    )
    .await;
    // TCP.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = receiver(l, None);
    run(
        &format!("{{ address: \"127.0.0.1:{port}\", transport: tcp, hostname: gw-test, facility: authpriv }}"),
        &got,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_comes_late_gets_what_waited_and_a_wrong_certificate_gets_nothing() {
    // Nothing listens yet: entries wait in the queue.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    support::process::audit_keygen(dir.path());
    let gw = start_in(
        &config(
            &up,
            &format!("{{ address: \"127.0.0.1:{port}\", transport: tcp, hostname: gw-test }}"),
        ),
        dir,
    );
    assert_eq!(get(gw.http(), "/walled").await.status, 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let got = receiver(l, None);
    let msgs = wait_for(&got, &["process", "security"]).await;
    let trail = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    check(&msgs, &trail);
    assert!(gw.feature_metrics().lines().any(|l| l
        .starts_with("rampart_audit_syslog_connect_errors_total ")
        && !l.ends_with(" 0")));

    // A receiver whose certificate the configured CA did not sign: nothing is sent.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = receiver(l, Some(server_tls(&TestCa::new("rogue"))));
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    support::process::audit_keygen(dir.path());
    std::fs::write(dir.path().join("ca.pem"), TestCa::new("trusted").pem()).unwrap();
    let gw = start_in(
        &config(
            &up,
            &format!("{{ address: \"localhost:{port}\", ca_file: ca.pem }}"),
        ),
        dir,
    );
    assert_eq!(get(gw.http(), "/walled").await.status, 403);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !gw
        .feature_metrics()
        .lines()
        .any(|l| l.starts_with("rampart_audit_syslog_connect_errors_total ") && !l.ends_with(" 0"))
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(got.lock().unwrap().is_empty());
}

#[test]
fn bad_syslog_settings_are_refused_with_their_place() {
    let audit = |syslog: &str| {
        format!("audit: {{ path: a.jsonl, signing_key: {{ env: X }}, syslog: {syslog} }}")
    };
    assert_config_errors(&[
        (
            &audit("{ address: nowhere }"),
            "audit.syslog.address: must be host:port",
        ),
        (
            &audit("{ address: \"h:514\", transport: tcp, ca_file: ca.pem }"),
            "audit.syslog.ca_file: only for `transport: tls`",
        ),
        (
            &audit("{ address: \"h:514\", app_name: \"two words\" }"),
            "audit.syslog.app_name: must be 1 to 48 printable ASCII",
        ),
    ]);
}
