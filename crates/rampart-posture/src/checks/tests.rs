use super::*;

fn cert(days: i64) -> CertInfo {
    let now = SystemTime::now();
    let d = Duration::from_secs(days.unsigned_abs() * 86400);
    CertInfo {
        usage: "listener:public".into(),
        file: "server.pem".into(),
        subject: "CN=x".into(),
        not_after: Some(if days >= 0 { now + d } else { now - d }),
        error: None,
    }
}

#[test]
fn certificates_pass_warn_and_fail_by_time_left() {
    let now = SystemTime::now();
    let status = |c: CertInfo| {
        let mut o = Out(Vec::new());
        certificate(&c, now, &mut o);
        (o.0[0].status, o.0[0].reason.clone())
    };
    assert_eq!(status(cert(90)).0, Status::Pass);
    assert_eq!(status(cert(29)).0, Status::Warn);
    let (s, why) = status(cert(-1));
    assert_eq!(s, Status::Fail);
    assert!(why.contains("expired"), "{why}");
    let unreadable = CertInfo {
        not_after: None,
        error: Some("cannot be read (no such file)".into()),
        ..cert(1)
    };
    assert_eq!(
        status(unreadable),
        (Status::Fail, "cannot be read (no such file)".into())
    );
}

#[test]
fn upstream_urls_on_loopback_are_told_apart() {
    assert!(loopback_url("http://127.0.0.1:8080/x"));
    assert!(loopback_url("http://[::1]:80"));
    assert!(loopback_url("http://localhost"));
    assert!(!loopback_url("http://10.0.0.5:8080"));
    assert!(!loopback_url("http://api.internal"));
}

#[test]
fn anomaly_detection_is_reported_with_its_action_and_unwatched_routes() {
    let base = r#"version: 1
listeners: [{ name: public, bind: "127.0.0.1:0" }]
upstreams: { up: { targets: [{ url: "http://127.0.0.1:9" }] } }
"#;
    let finding = |extra: &str| {
        let spec = rampart_config::parse(&format!("{base}{extra}")).unwrap();
        let mut o = Out(Vec::new());
        monitoring(&spec, &mut o);
        (o.0[0].status, o.0[0].reason.clone())
    };
    let (s, why) = finding("routes: []\n");
    assert_eq!(s, Status::Warn);
    assert!(why.contains("no anomaly detection"), "{why}");
    let (s, why) = finding(
        "anomaly: { action: ban }\nroutes: [{ name: h, match: { path: /h }, upstream: up, anomaly: { enabled: false } }]\n",
    );
    assert_eq!(s, Status::Pass);
    assert_eq!(
        why,
        "per caller and route, 60-second windows; flags ban the caller; 1 route(s) not watched"
    );
}
