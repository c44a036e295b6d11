//! Real clients: hyper over TCP or rustls, and raw sockets for malformed requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A finished response with its body read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `code` of a problem+json body.
    pub fn code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text()
        );
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

async fn finish(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    }
}

/// Sends one HTTP/1.1 request on a new connection. `req`'s URI is the path; a Host header
/// is added when missing.
pub async fn send(addr: SocketAddr, mut req: Request<Full<Bytes>>) -> Reply {
    if !req.headers().contains_key(http::header::HOST) {
        req.headers_mut()
            .insert(http::header::HOST, "test.local".parse().unwrap());
    }
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response in time")
        .expect("response");
    finish(resp).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Request::get(path).body(Full::default()).unwrap()).await
}

pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(addr, b.body(Full::default()).unwrap()).await
}

/// A JSON call to an admin API with a bearer token.
pub async fn admin_json(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(
            body.map(|b| b.to_string()).unwrap_or_default().into(),
        ))
        .unwrap();
    send(addr, req).await
}

/// Writes raw bytes and reads until the server closes (or 5 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    read_to_close(&mut tcp, Duration::from_secs(5)).await
}

/// Reads until EOF or `limit`; returns what arrived.
pub async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// True when the server closes `tcp` within `limit`.
pub async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Status code of the first response in raw HTTP/1 text.
pub fn raw_status(text: &str) -> u16 {
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// TLS client settings for tests.
pub struct TlsClient {
    pub roots: Vec<String>,
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    pub alpn: Vec<Vec<u8>>,
    pub client_cert: Option<(String, String)>,
}

impl TlsClient {
    pub fn trusting(ca_pem: &str) -> TlsClient {
        TlsClient {
            roots: vec![ca_pem.to_string()],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            alpn: vec![b"http/1.1".to_vec()],
            client_cert: None,
        }
    }

    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for pem in &self.roots {
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut c = match &self.client_cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = self.alpn.clone();
        Arc::new(c)
    }
}

/// A finished TLS handshake: what was negotiated, and the stream.
pub struct TlsConn {
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl TlsConn {
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.get_ref().1.protocol_version()
    }
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(|a| a.to_vec())
    }
    /// Subject CN of the server's leaf certificate.
    pub fn server_cert_der(&self) -> Vec<u8> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0]
            .as_ref()
            .to_vec()
    }

    /// Sends one request over this connection (HTTP/2 if ALPN chose it).
    pub async fn send(self, mut req: Request<Full<Bytes>>) -> Reply {
        if self.alpn().as_deref() == Some(b"h2") {
            let (mut s, conn) = hyper::client::conn::http2::handshake(
                TokioExecutor::new(),
                TokioIo::new(self.stream),
            )
            .await
            .expect("h2 handshake");
            tokio::spawn(conn);
            if req.uri().authority().is_none() {
                *req.uri_mut() = format!("https://test.local{}", req.uri()).parse().unwrap();
            }
            let resp = s.send_request(req).await.expect("h2 response");
            finish(resp).await
        } else {
            if !req.headers().contains_key(http::header::HOST) {
                req.headers_mut()
                    .insert(http::header::HOST, "test.local".parse().unwrap());
            }
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(self.stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let resp = s.send_request(req).await.expect("response");
            finish(resp).await
        }
    }
}

/// Connects with TLS, sending `sni`. Err carries the handshake error text.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    client: &TlsClient,
) -> Result<TlsConn, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client.config());
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 client auth failures arrive after the client's handshake completes: do a
    // round trip so a rejected certificate surfaces here as an error.
    stream.write_all(b"").await.map_err(|e| e.to_string())?;
    Ok(TlsConn { stream })
}
