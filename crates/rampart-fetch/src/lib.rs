//! Rampart's small HTTP(S) client, on hyper (no second HTTP stack): key sets, discovery
//! documents and OAuth2 tokens for identity, span exports for tracing. One request per
//! connection, a deadline on the whole exchange, a size cap on the answer's body, and
//! certificates checked against the configured CA bundle or the system roots. It runs
//! only on background runtimes, never on a request's worker.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// Documents larger than this are refused.
const MAX_BODY: usize = 1 << 20;

/// A fetched document and how long the server says it may be cached.
pub struct Fetched {
    pub body: bytes::Bytes,
    pub max_age: Option<Duration>,
}

/// TLS trust for fetches (HTTP/1.1 by ALPN).
pub fn client_tls(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    client_config(ca_file, &[b"http/1.1"])
}

/// A TLS client config that trusts the certificates of `ca_file` (PEM), or the system
/// roots, and offers `alpn`: one place that reads a CA bundle for every client the
/// gateway runs (fetches, the syslog copy).
pub fn client_config(
    ca_file: Option<&std::path::Path>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// GETs `url` (already checked by `rampart_config::fetchable_url`); anything but 200 is
/// an error.
pub async fn get(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Fetched, String> {
    let accept = [(http::header::ACCEPT, json())];
    let answer = within(
        timeout,
        exchange(url, tls, http::Method::GET, &accept, None),
    )
    .await?;
    if answer.status != http::StatusCode::OK {
        return Err(format!("status {}", answer.status.as_u16()));
    }
    Ok(Fetched {
        body: answer.body,
        max_age: answer.max_age,
    })
}

/// Any answer to a request: its status, body and cache lifetime.
pub struct Answer {
    pub status: http::StatusCode,
    pub body: bytes::Bytes,
    pub max_age: Option<Duration>,
}

/// POSTs an `application/x-www-form-urlencoded` body to `url` (already checked by
/// `rampart_config::fetchable_url`), with an `Authorization` header when given. Every
/// status is an answer; only transport failures are errors.
pub async fn post_form(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
    authorization: Option<&http::HeaderValue>,
    form: &str,
) -> Result<Answer, String> {
    let body = bytes::Bytes::copy_from_slice(form.as_bytes());
    let mut headers = vec![(http::header::ACCEPT, json())];
    if let Some(a) = authorization {
        headers.push((http::header::AUTHORIZATION, a.clone()));
    }
    let form = http::HeaderValue::from_static("application/x-www-form-urlencoded");
    within(
        timeout,
        exchange(url, tls, http::Method::POST, &headers, Some((form, body))),
    )
    .await
}

/// POSTs `body` as `content_type` to `url` with `headers`. Every status is an answer;
/// only transport failures are errors.
pub async fn post(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
    headers: &[(http::HeaderName, http::HeaderValue)],
    content_type: http::HeaderValue,
    body: bytes::Bytes,
) -> Result<Answer, String> {
    within(
        timeout,
        exchange(
            url,
            tls,
            http::Method::POST,
            headers,
            Some((content_type, body)),
        ),
    )
    .await
}

fn json() -> http::HeaderValue {
    http::HeaderValue::from_static("application/json")
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs_f32()))?
}

async fn exchange(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    method: http::Method,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: Option<(http::HeaderValue, bytes::Bytes)>,
) -> Result<Answer, String> {
    let uri: http::Uri = url.parse().map_err(|_| "invalid URL".to_string())?;
    let host = uri.host().ok_or("URL without host")?.to_string();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::net::TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(
            http::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(http::header::USER_AGENT, "rampart");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let body = match body {
        Some((content_type, b)) => {
            req = req.header(http::header::CONTENT_TYPE, content_type);
            b
        }
        None => bytes::Bytes::new(),
    };
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = if https {
        let name = rustls_pki_types::ServerName::try_from(bare_host.clone())
            .map_err(|_| "invalid TLS server name".to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(TokioIo::new(stream), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    let (parts, body) = resp.into_parts();
    let max_age = parts
        .headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| format!("body unreadable or over {MAX_BODY} bytes"))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        body,
        max_age,
    })
}

async fn send<T>(
    io: TokioIo<T>,
    req: http::Request<Full<bytes::Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}

/// `max-age` from a Cache-Control value; `no-store`/`no-cache` count as 0.
fn max_age(v: &str) -> Option<Duration> {
    let mut out = None;
    for d in v.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            out = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }
}
