//! Machine identities end to end: client certificates on an mTLS listener mapped to
//! consumers, and HMAC-signed requests (including from the shipped shell example).

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::certs::{write_ca, TestCa};
use support::*;

const SECRET: &str = "machine-secret-0123456789abcdefghijkl";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn client_certificates_map_to_consumers_by_uri_cn_and_fingerprint() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server-ca");
    let client_ca = TestCa::new("client-ca");
    server_ca
        .leaf("api.test", &["api.test"])
        .write(dir.path(), "server");
    write_ca(&client_ca, dir.path(), "client-ca");
    let partner = client_ca.client_with_uri("partner-client", "spiffe://example.org/partner");
    let acme = client_ca.leaf("acme-client", &[]);
    let pinned = client_ca.leaf("pinned-client", &[]);
    let stranger = client_ca.leaf("stranger", &[]);
    let yaml = format!(
        r#"version: 1
access_log: {{ enabled: false }}
listeners:
  - name: public
    bind: "127.0.0.1:0"
    tls:
      certificates: [{{ cert_file: server.pem, key_file: server.key }}]
      client_auth: {{ ca_file: client-ca.pem, required: false }}
consumers:
  - {{ id: partner, roles: [partner], certificates: [{{ san_uri: "spiffe://example.org/partner" }}] }}
  - {{ id: acme, certificates: [{{ subject_cn: acme-client }}] }}
  - {{ id: pinned, certificates: [{{ fingerprint: "{}" }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: m, match: {{ path_prefix: / }}, upstream: up, authenticate: [mtls] }}
"#,
        pinned.fingerprint(),
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let call = |leaf: Option<&support::certs::Leaf>| {
        let mut c = TlsClient::trusting(&server_ca.pem());
        c.client_cert = leaf.map(|l| (l.cert_pem.clone(), l.key_pem.clone()));
        let addr = gw.http();
        async move {
            tls_connect(addr, "api.test", &c)
                .await
                .unwrap()
                .send(Request::get("/x").body(Full::<Bytes>::default()).unwrap())
                .await
        }
    };
    for (leaf, consumer) in [(&partner, "partner"), (&acme, "acme"), (&pinned, "pinned")] {
        let r = call(Some(leaf)).await;
        assert_eq!(r.status, 200, "{consumer}");
        let h = &r.json()["headers"];
        assert_eq!(h["x-consumer-id"], consumer);
        assert_eq!(h["x-consumer-auth-method"], "mtls");
    }
    // A certificate the CA issued but no consumer claims, and no certificate at all.
    assert_eq!(call(Some(&stranger)).await.status, 401);
    assert_eq!(call(None).await.status, 401);
    assert_eq!(up.hits(), 3);
}

struct Signed {
    gw: TestGateway,
    up: TestUpstream,
    yaml: String,
}

fn signed_gateway() -> Signed {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m1.secret"), SECRET).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity: {{ signatures: {{ max_skew: 60s }} }}
consumers:
  - {{ id: machine, roles: [batch], signing_keys: [{{ id: m1, secret: {{ file: m1.secret }} }}] }}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: sig, match: {{ path_prefix: / }}, upstream: up, authenticate: [signature] }}
"#,
        dir.path().join("access.log").display(),
        up.addr
    );
    Signed {
        gw: start_in(&yaml, dir),
        up,
        yaml,
    }
}

/// A POST signed with `secret` at `ts` with `nonce`; `tamper` changes the body after
/// signing.
fn signed_post(
    path: &str,
    body: &str,
    secret: &str,
    ts: u64,
    nonce: &str,
    tamper: bool,
) -> Request<Full<Bytes>> {
    let (mut parts, ()) = Request::post(path)
        .header("host", "test.local")
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts();
    let auth = rampart_identity::signature::sign(
        secret.as_bytes(),
        "m1",
        &parts,
        body.as_bytes(),
        ts,
        nonce,
        "host content-type",
    )
    .unwrap();
    parts.headers.insert("authorization", auth.parse().unwrap());
    let body = if tamper {
        format!("{body} ")
    } else {
        body.to_string()
    };
    Request::from_parts(parts, Full::from(body))
}

impl Signed {
    async fn code(&self, needle: &str) -> String {
        let line = access_log_line(&self.gw.dir.path().join("access.log"), needle).await;
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

#[tokio::test]
async fn a_valid_signature_passes_and_the_body_arrives_intact() {
    let s = signed_gateway();
    let r = send(
        s.gw.http(),
        signed_post(
            "/jobs?b=2&a=1",
            "{\"n\":1}",
            SECRET,
            unix_now(),
            "nonce-0001",
            false,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["headers"]["x-consumer-id"], "machine");
    assert_eq!(v["headers"]["x-consumer-credential"], "m1");
    assert_eq!(v["body"], "{\"n\":1}");
    assert!(v["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn a_replay_is_refused_across_a_reload() {
    let s = signed_gateway();
    let (parts, body) =
        signed_post("/r", "{}", SECRET, unix_now(), "nonce-reload", false).into_parts();
    let again = Request::from_parts(parts.clone(), body.clone());
    assert_eq!(
        send(s.gw.http(), Request::from_parts(parts, body))
            .await
            .status,
        200
    );
    // A reload keeps each signing key's nonce cache (state store), so the window a
    // fresh cache would open for a captured request stays shut.
    let plan = rampart::compile_str_with(&s.yaml, s.gw.dir.path(), &s.gw.gateway.state()).unwrap();
    s.gw.gateway.reload(plan).unwrap();
    let r = send(s.gw.http(), again).await;
    assert_eq!(r.status, 401);
    assert_eq!(s.up.hits(), 1);
}

#[tokio::test]
async fn wrong_skewed_replayed_and_tampered_signatures_are_refused() {
    let s = signed_gateway();
    let now = unix_now();
    let cases = [
        (
            "/wrong",
            signed_post(
                "/wrong",
                "{}",
                "another-secret-0123456789abcdefghijkl",
                now,
                "nonce-0002",
                false,
            ),
            "auth.signature.invalid",
        ),
        (
            "/old",
            signed_post("/old", "{}", SECRET, now - 600, "nonce-0003", false),
            "auth.signature.skew",
        ),
        (
            "/future",
            signed_post("/future", "{}", SECRET, now + 600, "nonce-0004", false),
            "auth.signature.skew",
        ),
        (
            "/tampered",
            signed_post("/tampered", "{}", SECRET, now, "nonce-0005", true),
            "auth.signature.invalid",
        ),
    ];
    for (path, req, reason) in cases {
        let r = send(s.gw.http(), req).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(s.code(path).await, reason, "{path}");
    }
    // The same signed request twice: the second is a replay (even on another worker).
    let first = signed_post("/replay", "{}", SECRET, now, "nonce-0006", false);
    let (parts, body) = first.into_parts();
    let again = Request::from_parts(parts.clone(), body.clone());
    assert_eq!(
        send(s.gw.http(), Request::from_parts(parts, body))
            .await
            .status,
        200
    );
    let r = send(s.gw.http(), again).await;
    assert_eq!(r.status, 401);
    assert_eq!(s.up.hits(), 1);
    // An unsigned request gets the signature challenge.
    let r = get(s.gw.http(), "/nothing").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Rampart-HMAC-SHA256 realm=\"rampart\"")
    );
}

#[tokio::test]
async fn the_shipped_shell_example_produces_a_valid_signature() {
    let s = signed_gateway();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/sign-request.sh"
    );
    let url = format!("http://{}/v1/jobs?dry_run=1", s.gw.http());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .args(["POST", &url, "{\"n\":1}"])
            .env("KEY_ID", "m1")
            .env("SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["headers"]["x-consumer-id"], "machine");
    assert_eq!(v["body"], "{\"n\":1}");
}
