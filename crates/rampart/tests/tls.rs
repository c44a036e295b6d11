//! TLS termination with certificates generated per test: versions, SNI, ALPN/HTTP/2,
//! client certificates (mTLS), and TLS towards upstreams.

mod support;

use std::sync::Arc;

use http::Request;
use http_body_util::Full;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use support::certs::{write_ca, TestCa};
use support::*;

struct Tls {
    ca: TestCa,
    gw: TestGateway,
    up: TestUpstream,
    default_pem: String,
    api_pem: String,
    wild_pem: String,
}

/// A gateway with a TLS listener `public` holding three certificates: a default, an exact
/// name and a wildcard. `tls_extra` is appended inside the `tls:` block.
fn tls_gateway(tls_extra: &str) -> Tls {
    tls_gateway_in(tempfile::tempdir().unwrap(), tls_extra)
}

/// Like [`tls_gateway`], in a directory the caller may already have put files in.
fn tls_gateway_in(dir: tempfile::TempDir, tls_extra: &str) -> Tls {
    let ca = TestCa::new("Test Root");
    let default = ca.leaf("default.test", &["default.test"]);
    let api = ca.leaf("api.example.com", &["api.example.com"]);
    let wild = ca.leaf("wild", &["*.wild.test"]);
    default.write(dir.path(), "default");
    api.write(dir.path(), "api");
    wild.write(dir.path(), "wild");
    let up = TestUpstream::echo();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n    tls:\n      certificates:\n\
         \x20       - {{ cert_file: default.pem, key_file: default.key }}\n\
         \x20       - {{ cert_file: api.pem, key_file: api.key }}\n\
         \x20       - {{ cert_file: wild.pem, key_file: wild.key }}\n{tls_extra}\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: up }}\n",
        up.addr
    );
    let gw = start_in(&yaml, dir);
    Tls {
        ca,
        gw,
        up,
        default_pem: default.cert_pem,
        api_pem: api.cert_pem,
        wild_pem: wild.cert_pem,
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn accepts_tls12_and_tls13_by_default() {
    let t = tls_gateway("");
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut c = TlsClient::trusting(&t.ca.pem());
        c.versions = vec![v];
        let conn = tls_connect(t.gw.http(), "api.example.com", &c)
            .await
            .unwrap();
        assert_eq!(conn.version(), Some(v.version));
        let r = conn
            .send(Request::get("/v").body(Full::default()).unwrap())
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    }
}

#[tokio::test]
async fn refuses_tls12_when_min_version_is_13() {
    let t = tls_gateway("      min_version: \"1.3\"\n");
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.versions = vec![&rustls::version::TLS12];
    assert!(tls_connect(t.gw.http(), "api.example.com", &c)
        .await
        .is_err());
    c.versions = vec![&rustls::version::TLS13];
    assert!(tls_connect(t.gw.http(), "api.example.com", &c)
        .await
        .is_ok());
}

#[tokio::test]
async fn sni_selects_exact_wildcard_and_default_certificates() {
    let t = tls_gateway("");
    let c = TlsClient::trusting(&t.ca.pem());
    let conn = tls_connect(t.gw.http(), "api.example.com", &c)
        .await
        .unwrap();
    assert_eq!(conn.server_cert_der(), der(&t.api_pem));
    let conn = tls_connect(t.gw.http(), "x.wild.test", &c).await.unwrap();
    assert_eq!(conn.server_cert_der(), der(&t.wild_pem));
    // An unknown name gets the default certificate (and so fails name verification).
    let err = tls_connect(t.gw.http(), "unknown.test", &c)
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    let conn = tls_connect(t.gw.http(), "default.test", &c).await.unwrap();
    assert_eq!(conn.server_cert_der(), der(&t.default_pem));
}

#[tokio::test]
async fn negotiates_http2_through_alpn() {
    let t = tls_gateway("");
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let conn = tls_connect(t.gw.http(), "api.example.com", &c)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]));
    let r = conn
        .send(
            Request::get("https://api.example.com/over-h2?q=1")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/over-h2?q=1");
    assert_eq!(r.json()["headers"]["x-forwarded-host"], "api.example.com");
    assert_eq!(t.up.hits(), 1);
}

#[tokio::test]
async fn offers_only_http11_when_http2_is_off() {
    let t = tls_gateway("      http2: false\n");
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let conn = tls_connect(t.gw.http(), "api.example.com", &c)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some(&b"http/1.1"[..]));
}

/// A TLS gateway whose listener verifies client certificates against a new CA.
fn with_client_ca(required: bool) -> (Tls, TestCa) {
    let client_ca = TestCa::new("Partner CA");
    let dir = tempfile::tempdir().unwrap();
    write_ca(&client_ca, dir.path(), "client-ca");
    let extra = format!("      client_auth: {{ ca_file: client-ca.pem, required: {required} }}\n");
    (tls_gateway_in(dir, &extra), client_ca)
}

async fn request_ok(t: &Tls, client: &TlsClient) -> Result<u16, String> {
    let conn = tls_connect(t.gw.http(), "api.example.com", client).await?;
    let tcp_result = tokio::time::timeout(std::time::Duration::from_secs(5), async move {
        let (mut s, c) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(conn.stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(c);
        let resp = s
            .send_request(
                Request::get("/")
                    .header("host", "api.example.com")
                    .body(Full::<bytes::Bytes>::default())
                    .unwrap(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok::<u16, String>(resp.status().as_u16())
    })
    .await;
    tcp_result.map_err(|_| "timeout".to_string())?
}

#[tokio::test]
async fn mtls_required_accepts_valid_client_cert_and_refuses_others() {
    let (t, client_ca) = with_client_ca(true);
    let good = client_ca.leaf("acme-client", &["client.acme.test"]);
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.client_cert = Some((good.cert_pem.clone(), good.key_pem.clone()));
    assert_eq!(request_ok(&t, &c).await, Ok(200));
    // No certificate at all.
    let c = TlsClient::trusting(&t.ca.pem());
    assert!(request_ok(&t, &c).await.is_err());
    // A certificate from a CA the listener does not trust.
    let rogue = TestCa::new("Rogue CA").leaf("acme-client", &["client.acme.test"]);
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.client_cert = Some((rogue.cert_pem, rogue.key_pem));
    assert!(request_ok(&t, &c).await.is_err());
}

#[tokio::test]
async fn mtls_optional_allows_no_cert_but_refuses_an_untrusted_one() {
    let (t, client_ca) = with_client_ca(false);
    let c = TlsClient::trusting(&t.ca.pem());
    assert_eq!(request_ok(&t, &c).await, Ok(200));
    let good = client_ca.leaf("acme-client", &["client.acme.test"]);
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.client_cert = Some((good.cert_pem, good.key_pem));
    assert_eq!(request_ok(&t, &c).await, Ok(200));
    let rogue = TestCa::new("Rogue CA").leaf("x", &["x.test"]);
    let mut c = TlsClient::trusting(&t.ca.pem());
    c.client_cert = Some((rogue.cert_pem, rogue.key_pem));
    assert!(request_ok(&t, &c).await.is_err());
}

fn upstream_server_config(ca: &TestCa, client_ca: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
    let (chain, key) = ca.leaf("localhost", &["localhost"]).chain_and_key();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        Some(cca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(cca.pem().as_bytes()).unwrap())
                .unwrap();
            b.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(b.with_single_cert(chain, key).unwrap())
}

fn https_upstream_gateway(
    up: &TestUpstream,
    tls_block: &str,
    dir: tempfile::TempDir,
) -> TestGateway {
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams:\n  up:\n    targets: [{{ url: \"https://localhost:{}\" }}]\n    retries: {{ max: 0 }}\n{tls_block}\
         routes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: up }}\n",
        up.addr.port()
    );
    start_in(&yaml, dir)
}

#[tokio::test]
async fn verifies_https_upstream_against_configured_ca() {
    let ca = TestCa::new("Internal CA");
    let up = TestUpstream::tls_echo(upstream_server_config(&ca, None));
    let dir = tempfile::tempdir().unwrap();
    write_ca(&ca, dir.path(), "internal-ca");
    let gw = https_upstream_gateway(&up, "    tls: { ca_file: internal-ca.pem }\n", dir);
    let r = get(gw.http(), "/secure").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["uri"], "/secure");
}

#[tokio::test]
async fn refuses_https_upstream_with_untrusted_certificate() {
    let ca = TestCa::new("Internal CA");
    let up = TestUpstream::tls_echo(upstream_server_config(&ca, None));
    let dir = tempfile::tempdir().unwrap();
    write_ca(&TestCa::new("Some other CA"), dir.path(), "other-ca");
    let gw = https_upstream_gateway(&up, "    tls: { ca_file: other-ca.pem }\n", dir);
    let r = get(gw.http(), "/secure").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "upstream.connect_failed");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn presents_client_certificate_to_upstream() {
    let ca = TestCa::new("Internal CA");
    let client_ca = TestCa::new("Gateway clients");
    let up = TestUpstream::tls_echo(upstream_server_config(&ca, Some(&client_ca)));
    let dir = tempfile::tempdir().unwrap();
    write_ca(&ca, dir.path(), "internal-ca");
    client_ca
        .leaf("rampart", &["rampart.internal"])
        .write(dir.path(), "gw-client");
    let gw = https_upstream_gateway(
        &up,
        "    tls: { ca_file: internal-ca.pem, client_cert: { cert_file: gw-client.pem, key_file: gw-client.key } }\n",
        dir,
    );
    let r = get(gw.http(), "/mtls").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Without the client certificate the upstream refuses the handshake.
    let dir = tempfile::tempdir().unwrap();
    write_ca(&ca, dir.path(), "internal-ca");
    let gw = https_upstream_gateway(&up, "    tls: { ca_file: internal-ca.pem }\n", dir);
    assert_eq!(get(gw.http(), "/mtls").await.status, 502);
}

#[tokio::test]
async fn reports_mismatched_key_and_missing_files_with_yaml_paths() {
    let ca = TestCa::new("Test Root");
    let dir = tempfile::tempdir().unwrap();
    let a = ca.leaf("a.test", &["a.test"]);
    let b = ca.leaf("b.test", &["b.test"]);
    a.write(dir.path(), "a");
    b.write(dir.path(), "b");
    let yaml = "version: 1\nlisteners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n    tls:\n      certificates:\n\
        \x20       - { cert_file: a.pem, key_file: b.key }\n        - { cert_file: missing.pem, key_file: a.key }\n";
    let err = rampart::compile_str(yaml, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("listeners[0].tls.certificates[0].key_file: the private key does not match the certificate"), "{err}");
    assert!(
        err.contains("listeners[0].tls.certificates[1].cert_file: cannot read certificates from"),
        "{err}"
    );
    assert!(
        !err.contains("PRIVATE KEY"),
        "key material in an error: {err}"
    );
}

#[tokio::test]
async fn advertises_http2_stream_and_header_limits() {
    // The listener's HTTP/2 SETTINGS carry the configured concurrent-stream cap, and a
    // header block over max_header_bytes is refused.
    let ca = TestCa::new("Test Root");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf("api.example.com", &["api.example.com"])
        .write(dir.path(), "api");
    let up = TestUpstream::echo();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\nlimits: {{ h2_max_concurrent_streams: 7, max_header_bytes: 4KiB }}\n\
         listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n    tls: {{ certificates: [{{ cert_file: api.pem, key_file: api.key }}] }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\nroutes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: up }}\n",
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let mut c = TlsClient::trusting(&ca.pem());
    c.alpn = vec![b"h2".to_vec()];
    let conn = tls_connect(gw.http(), "api.example.com", &c).await.unwrap();
    let (client, connection) = h2::client::handshake(conn.stream).await.unwrap();
    let mut connection = Box::pin(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://api.example.com/ok")
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::select! {
        r = resp => r.unwrap(),
        _ = &mut connection => panic!("connection ended"),
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(connection.max_concurrent_send_streams(), 7);
    let big = http::Request::get("https://api.example.com/big")
        .header("x-big", "b".repeat(8192))
        .body(())
        .unwrap();
    let mut client = client.ready().await.unwrap();
    let (resp, _) = client.send_request(big, true).unwrap();
    let outcome = tokio::select! {
        r = resp => r.map(|r| r.status().as_u16()).map_err(|e| e.to_string()),
        _ = &mut connection => Err("connection closed".into()),
    };
    assert!(
        outcome.is_err() || matches!(outcome, Ok(431)),
        "{outcome:?}"
    );
    assert_eq!(up.hits(), 1);
}
