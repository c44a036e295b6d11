//! The command line's side of the admin API: one call over HTTP/1.1 to the admin
//! listener (`http://host:port`), with the operator token from `RAMPART_ADMIN_TOKEN`.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// Sends `method path` with an optional JSON body; returns the status and the JSON
/// answer (`null` for an empty one).
pub async fn call(
    admin: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(http::StatusCode, Value)> {
    let uri: http::Uri = format!("{}{path}", admin.trim_end_matches('/'))
        .parse()
        .context("invalid --admin URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--admin must be an http:// URL of the admin listener");
    }
    let authority = uri.authority().context("--admin needs host:port")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .with_context(|| format!("cannot reach {authority}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::HOST, authority.as_str());
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(b.to_string()))
        }
        None => Full::default(),
    };
    let resp = sender.send_request(req.body(body)?).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if status == http::StatusCode::UNAUTHORIZED {
        bail!("the admin API answered 401: it refused the token (is RAMPART_ADMIN_TOKEN set?)");
    }
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).context("the admin API sent invalid JSON")?
    };
    Ok((status, value))
}

/// [`call`] from synchronous code, with the token from `RAMPART_ADMIN_TOKEN`.
pub fn call_blocking(
    admin: &str,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(http::StatusCode, Value)> {
    let token = std::env::var("RAMPART_ADMIN_TOKEN").ok();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(call(admin, token.as_deref(), method, path, body))
}
