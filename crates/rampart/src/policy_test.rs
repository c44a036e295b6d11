//! `rampart test --config FILE CASES.yaml`: policy tests as code. Each case is a request
//! sent through the config's compiled plan (every filter it has: identity, access,
//! limits, validation, masking, transforms) to an in-process upstream that answers as
//! the case says, and what must happen: the status, the deciding reason code, the
//! route, what the client and the upstream must or must not see. No real upstream, no
//! network beyond loopback; see `harness` for what is replaced. Each case is reported;
//! any failure makes the exit code 1, so a config change is tested in CI like code.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::Value;

use harness::{Answer, Observer, TestConsumer, Upstream};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    #[serde(default)]
    consumers: Vec<TestConsumer>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: Request,
    #[serde(default)]
    upstream: Option<UpstreamAnswer>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    json: Option<Value>,
    /// The client's address (the gateway sees it as a trusted proxy's client).
    #[serde(default)]
    client_ip: Option<String>,
    /// A test consumer whose key is sent (in the config's API key header).
    #[serde(default)]
    api_key: Option<String>,
    /// A token signed with the test key of `issuer`, with `iss`, `aud`, `iat` and `exp`
    /// filled in unless given.
    #[serde(default)]
    jwt: Option<JwtRequest>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtRequest {
    issuer: String,
    #[serde(default)]
    claims: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamAnswer {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    json: Option<Value>,
}

fn ok() -> u16 {
    200
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Seen {
    /// Headers that must be present with these values (`""`: present, any value).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    absent_headers: Vec<String>,
    /// JSON pointers (RFC 6901) into the body and the values they must hold.
    #[serde(default)]
    json: BTreeMap<String, Value>,
    #[serde(default)]
    absent_json: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    status: Option<u16>,
    /// The reason code of the gateway's own answer (`authz.role_missing`), or `none`
    /// when the upstream answered.
    #[serde(default)]
    code: Option<String>,
    /// Reason codes that must be among the exchange's decisions (shadow ones too).
    #[serde(default)]
    decisions: Vec<String>,
    #[serde(default)]
    route: Option<String>,
    #[serde(flatten)]
    client: Seen,
    #[serde(default)]
    upstream: Option<UpstreamExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamExpect {
    /// Whether the request reached the upstream at all (default true when given).
    #[serde(default = "yes")]
    reached: bool,
    /// The path and query as received.
    #[serde(default)]
    path: Option<String>,
    #[serde(flatten)]
    seen: Seen,
}

fn yes() -> bool {
    true
}

/// Runs every case; `Ok(true)` when all passed. Errors (a config that does not load,
/// a malformed cases file) are `Err`.
pub fn run(config: &Path, cases: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(cases)
        .with_context(|| format!("cannot read {}", cases.display()))?;
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let cases: Cases = serde_saphyr::from_str_with_options(&text, options)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cases.display()))?;
    let yaml = crate::read_config(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut spec = rampart_config::parse(&yaml)
        .map_err(|e| anyhow::anyhow!("{} does not load:\n{e}", config.display()))?;
    let base = crate::config_dir(config);
    let scratch = tempfile::tempdir()?;
    let upstream = Arc::new(Upstream::default());
    let up_addr = harness::start_upstream(upstream.clone())?;
    let creds = harness::prepare(&mut spec, base, scratch.path(), up_addr, &cases.consumers)
        .map_err(anyhow::Error::msg)?;
    let state = crate::StateStore::new();
    let mut plan =
        crate::compile_spec(Arc::new(spec), base, &state, crate::FEATURES).map_err(|e| {
            anyhow::anyhow!("{} does not compile for the tests:\n{e}", config.display())
        })?;
    let observer = Arc::new(Observer::default());
    let obs: Arc<dyn rampart_core::Filter> = observer.clone();
    let mut extra = rampart_core::FeaturePlan::for_routes(plan.routes.len());
    for r in &mut extra.routes {
        r.push(obs.clone());
    }
    extra.unrouted.push(obs);
    plan.attach(vec![extra])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let gateway = crate::Gateway::start(plan)?;
    let addr = gateway
        .plan()
        .listeners
        .first()
        .and_then(|l| gateway.addr(&l.name))
        .context("no listener")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut passed, mut failed) = (0, 0);
    for case in &cases.cases {
        let problems = rt.block_on(run_case(case, addr, &upstream, &observer, &creds));
        match problems {
            Ok(p) if p.is_empty() => {
                passed += 1;
                println!("PASS  {}", case.name);
            }
            Ok(p) => {
                failed += 1;
                println!("FAIL  {}", case.name);
                for line in p {
                    println!("      {line}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {}\n      {e:#}", case.name);
            }
        }
    }
    gateway.shutdown();
    println!(
        "{} cases: {passed} passed, {failed} failed",
        passed + failed
    );
    Ok(failed == 0)
}

async fn run_case(
    case: &Case,
    addr: std::net::SocketAddr,
    upstream: &Upstream,
    observer: &Observer,
    creds: &harness::Credentials,
) -> anyhow::Result<Vec<String>> {
    let r = &case.request;
    *upstream.answer.lock().unwrap_or_else(|p| p.into_inner()) = match &case.upstream {
        Some(a) => Answer {
            status: a.status,
            headers: a
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(
                    a.json
                        .as_ref()
                        .filter(|_| {
                            !a.headers
                                .keys()
                                .any(|k| k.eq_ignore_ascii_case("content-type"))
                        })
                        .map(|_| ("content-type".to_string(), "application/json".to_string())),
                )
                .collect(),
            body: match (&a.json, &a.body) {
                (Some(j), _) => Bytes::from(j.to_string()),
                (None, Some(b)) => Bytes::from(b.clone()),
                _ => Bytes::new(),
            },
        },
        None => Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(b"{}"),
        },
    };
    *upstream.seen.lock().unwrap_or_else(|p| p.into_inner()) = None;

    let mut req = http::Request::builder()
        .method(r.method.as_str())
        .uri(&r.path)
        .header(http::header::HOST, "localhost");
    for (k, v) in &r.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(ip) = &r.client_ip {
        req = req.header("x-forwarded-for", ip.as_str());
    }
    if let Some(c) = &r.api_key {
        let key = creds.plain.get(c).with_context(|| {
            format!("request.api_key: {c:?} is not a test consumer with an api_key")
        })?;
        req = req.header(creds.api_key_header.as_str(), key.as_str());
    }
    if let Some(j) = &r.jwt {
        let key = creds.keys.get(&j.issuer).with_context(|| {
            format!(
                "request.jwt.issuer: no test key for {:?} (not an issuer, or RSA-only)",
                j.issuer
            )
        })?;
        let (iss, aud) = creds.issuers.get(&j.issuer).cloned().unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), iss.into());
        if let Some(a) = aud {
            claims.insert("aud".into(), a.into());
        }
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + 300).into());
        claims.extend(j.claims.clone());
        let token = key
            .sign(&Value::Object(claims))
            .map_err(anyhow::Error::msg)?;
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match (&r.json, &r.body) {
        (Some(j), _) => {
            if !r
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
            }
            Bytes::from(j.to_string())
        }
        (None, Some(b)) => Bytes::from(b.clone()),
        _ => Bytes::new(),
    };
    let req = req
        .body(Full::new(body))
        .context("request: not a valid HTTP request")?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .context("no answer within 30s")??;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    let id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // The log phase runs after the last byte: wait for it.
    let mut observed = None;
    for _ in 0..200 {
        if let Some(o) = observer
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
        {
            observed = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let observed = observed.unwrap_or_default();

    let e = &case.expect;
    let mut out = Vec::new();
    if let Some(s) = e.status {
        if parts.status.as_u16() != s {
            out.push(format!(
                "status: expected {s}, got {}",
                parts.status.as_u16()
            ));
        }
    }
    if let Some(c) = &e.code {
        let got = observed.code.unwrap_or("none");
        if got != c {
            out.push(format!("code: expected {c}, got {got}"));
        }
    }
    for d in &e.decisions {
        if !observed.decisions.iter().any(|x| x == d) {
            out.push(format!(
                "decisions: {d} not among [{}]",
                observed.decisions.join(", ")
            ));
        }
    }
    if let Some(route) = &e.route {
        let got = observed.route.as_deref().unwrap_or("(none)");
        if got != route {
            out.push(format!("route: expected {route}, got {got}"));
        }
    }
    check_seen("client", &e.client, &parts.headers, &body, &mut out);
    if let Some(u) = &e.upstream {
        let seen = upstream
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match (u.reached, seen) {
            (false, None) => {}
            (false, Some(_)) => out.push("upstream: reached, expected not to be".into()),
            (true, None) => out.push("upstream: not reached".into()),
            (true, Some(s)) => {
                if let Some(p) = &u.path {
                    if &s.path != p {
                        out.push(format!("upstream path: expected {p}, got {}", s.path));
                    }
                }
                check_seen("upstream", &u.seen, &s.headers, &s.body, &mut out);
            }
        }
    }
    Ok(out)
}

/// Checks headers and JSON members that one side saw.
fn check_seen(
    side: &str,
    want: &Seen,
    headers: &http::HeaderMap,
    body: &[u8],
    out: &mut Vec<String>,
) {
    for (k, v) in &want.headers {
        match headers.get(k.as_str()).map(|h| h.to_str().unwrap_or("")) {
            None => out.push(format!("{side} header {k}: missing")),
            Some(got) if !v.is_empty() && got != v => {
                out.push(format!("{side} header {k}: expected {v:?}, got {got:?}"))
            }
            Some(_) => {}
        }
    }
    for k in &want.absent_headers {
        if headers.contains_key(k.as_str()) {
            out.push(format!("{side} header {k}: present, expected absent"));
        }
    }
    if want.json.is_empty() && want.absent_json.is_empty() {
        return;
    }
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        out.push(format!("{side} body: not JSON"));
        return;
    };
    for (p, v) in &want.json {
        match doc.pointer(p) {
            None => out.push(format!("{side} json {p}: missing")),
            Some(got) if got != v => out.push(format!("{side} json {p}: expected {v}, got {got}")),
            Some(_) => {}
        }
    }
    for p in &want.absent_json {
        if doc.pointer(p).is_some() {
            out.push(format!("{side} json {p}: present, expected absent"));
        }
    }
}
