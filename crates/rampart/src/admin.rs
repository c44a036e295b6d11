//! The admin API: its own listener (never a public one), bearer-token authentication for
//! everything but the health probes, and an audit line for every request.
//!
//! | method | path | auth | answer |
//! |---|---|---|---|
//! | GET | `/healthz` | none | 200 while the process runs |
//! | GET | `/readyz` | none | 200 when every upstream has a usable target, else 503 |
//! | GET | `/upstreams` | token | targets with health, ejection and load |
//! | GET | `/config` | token | the effective config (secrets redacted), fingerprint, load time |
//! | GET | `/metrics` | token | Prometheus text format |
//! | GET | `/admin/reload` | token | the last reload's outcome |
//! | POST | `/admin/reload` | token | reload the config file: 200, or 422 with every error |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::Gateway;

/// A running admin listener. Dropping it stops it.
pub struct Admin {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Admin {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    gateway: Arc<Gateway>,
    config_path: Option<PathBuf>,
}

/// Starts the admin API when the running plan configures one. `config_path` is what
/// `POST /admin/reload` re-reads.
pub fn start(
    gateway: Arc<Gateway>,
    config_path: Option<PathBuf>,
) -> std::io::Result<Option<Admin>> {
    let Some(admin) = gateway.plan().admin.clone() else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(admin.bind).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the admin API to {}: {e}", admin.bind),
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = Arc::new(State {
        gateway,
        config_path,
    });
    let thread = std::thread::Builder::new()
        .name("rampart-admin".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let open = Arc::new(AtomicUsize::new(0));
                loop {
                    let (tcp, peer) = tokio::select! {
                        _ = &mut stop_rx => return,
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    };
                    let plan = state.gateway.plan();
                    let Some(settings) = plan.admin.as_ref() else { continue };
                    // A small cap: the admin API serves operators, not crowds.
                    let Some(slot) = AdminSlot::take(&open, settings.max_connections) else {
                        tracing::warn!(target: "audit", %peer, "admin connection refused: too many open");
                        continue;
                    };
                    let (tls, head) = (settings.tls.clone(), plan.limits.head);
                    drop(plan);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        // TLS (and mTLS) when configured: the verified client certificate's
                        // subject names the caller in the audit log.
                        let Some(config) = tls else {
                            serve(state, peer, None, tcp, head).await;
                            return;
                        };
                        let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
                        let stream = match tokio::time::timeout(head.header_timeout, accept).await {
                            Ok(Ok(s)) => s,
                            _ => {
                                tracing::warn!(target: "audit", %peer, "admin TLS handshake refused");
                                return;
                            }
                        };
                        let subject = rampart_proxy::tls::peer_identity(stream.get_ref().1).map(|p| Arc::<str>::from(p.subject));
                        serve(state, peer, subject, stream, head).await;
                    });
                }
            });
        })?;
    tracing::info!(%addr, "admin API listening");
    Ok(Some(Admin {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }))
}

/// One open admin connection, counted against `admin.max_connections`.
struct AdminSlot(Arc<AtomicUsize>);

impl AdminSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        if open.fetch_add(1, Ordering::AcqRel) >= max {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(open.clone()))
    }
}

impl Drop for AdminSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one admin connection behind the same strict HTTP/1 guard as public listeners:
/// RFC 9112 framing without repairs, the header deadline and the idle timeout.
async fn serve<IO>(
    state: Arc<State>,
    peer: SocketAddr,
    subject: Option<Arc<str>>,
    io: IO,
    head: rampart_proxy::h1_guard::HeadLimits,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = rampart_proxy::h1_guard::ConnShared::new();
    let guard = rampart_proxy::h1_guard::H1Guard::new(io, head, conn.clone());
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let rejection = conn.rejection_for(req.uri().path());
        let state = state.clone();
        let subject = subject.clone();
        async move {
            match rejection {
                Some(p) => {
                    tracing::warn!(target: "audit", %peer, code = p.code, "admin request refused: malformed");
                    let mut r = json_response(
                        p.status,
                        json!({"status": p.status.as_u16(), "title": p.title, "code": p.code}),
                    );
                    r.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                    Ok(r)
                }
                None => handle(state, peer, subject, req).await,
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(guard), svc)
        .await;
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// Who is calling, for the audit log: a fingerprint of the presented token (never the
/// token), or `loopback` when the admin API runs without a token on a loopback address.
fn authenticate(state: &State, req: &Request<Incoming>) -> Result<String, ()> {
    let plan = state.gateway.plan();
    let Some(admin) = &plan.admin else {
        return Err(());
    };
    let Some(expected) = &admin.token else {
        return Ok("loopback".into());
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(())?;
    // Compare digests so the comparison is constant-time whatever the lengths.
    let want = sha2::Sha256::digest(expected.expose().as_bytes());
    let got = sha2::Sha256::digest(presented.as_bytes());
    if bool::from(want.ct_eq(&got)) {
        Ok(format!("token:{}", hex(&want[..6])))
    } else {
        Err(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    client_cert: Option<Arc<str>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return Ok(json_response(StatusCode::OK, json!({"status": "ok"})))
        }
        (&Method::GET, "/readyz") => return Ok(readiness(&state)),
        _ => {}
    }
    let who = match authenticate(&state, &req) {
        Ok(who) => match &client_cert {
            Some(subject) => format!("{who} cert:{subject}"),
            None => who,
        },
        Err(()) => {
            tracing::warn!(target: "audit", %peer, who = "unauthenticated", %method, %path, status = 401, "admin request refused");
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                json!({"status": 401, "title": "Unauthorized"}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return Ok(r);
        }
    };
    let resp = match (&method, path.as_str()) {
        (&Method::GET, "/upstreams") => upstreams(&state),
        (&Method::GET, "/config") => effective_config(&state),
        (&Method::GET, "/metrics") => metrics(&state),
        (&Method::GET, "/admin/reload") => last_reload(&state),
        (&Method::POST, "/admin/reload") => reload(&state),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"status": 404, "title": "Not Found"}),
        ),
    };
    tracing::info!(target: "audit", %peer, %who, %method, %path, status = resp.status().as_u16(), "admin request");
    Ok(resp)
}

fn readiness(state: &State) -> Response<Full<Bytes>> {
    if state.gateway.is_draining() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "draining": true}),
        );
    }
    let plan = state.gateway.plan();
    let now = rampart_proxy::upstream::now_ms();
    let unavailable: Vec<&str> = plan
        .upstreams
        .iter()
        .filter(|u| !u.targets.iter().any(|t| t.is_available(now)))
        .map(|u| &*u.name)
        .collect();
    if unavailable.is_empty() {
        json_response(StatusCode::OK, json!({"ready": true}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "unavailable_upstreams": unavailable}),
        )
    }
}

fn upstreams(state: &State) -> Response<Full<Bytes>> {
    let plan = state.gateway.plan();
    let list: Vec<serde_json::Value> = plan
        .upstreams
        .iter()
        .map(|u| {
            let targets: Vec<serde_json::Value> = u
                .targets
                .iter()
                .map(|t| {
                    json!({
                        "url": &*t.url,
                        "weight": t.weight,
                        "healthy": t.active_healthy.load(Ordering::Relaxed),
                        "ejected": t.is_ejected(),
                        "in_flight": t.in_flight.load(Ordering::Relaxed),
                    })
                })
                .collect();
            json!({"name": &*u.name, "targets": targets})
        })
        .collect();
    json_response(StatusCode::OK, json!({"upstreams": list}))
}

/// The effective config as JSON and its SHA-256 fingerprint.
fn config_and_fingerprint(plan: &rampart_proxy::Plan) -> (serde_json::Value, String) {
    let mut config = serde_json::to_value(&*plan.spec).unwrap_or(serde_json::Value::Null);
    // Secrets show a fingerprint of their value, so drift in a secret is visible (and
    // changes the config fingerprint) without the value ever leaving the process.
    if let (Some(token), Some(obj)) = (
        plan.admin.as_ref().and_then(|a| a.token.as_ref()),
        config
            .pointer_mut("/admin/token")
            .and_then(|t| t.as_object_mut()),
    ) {
        obj.insert(
            "fingerprint".into(),
            crate::secret_fingerprint(token.expose()).into(),
        );
    }
    let fingerprint = hex(&sha2::Sha256::digest(config.to_string().as_bytes()));
    (config, fingerprint)
}

/// Prometheus text format: request counters and durations by route, gateway answers by
/// reason code, connections, target health, reloads and the config fingerprint.
fn metrics(state: &State) -> Response<Full<Bytes>> {
    use rampart_core::MetricsText;
    use rampart_proxy::metrics::{render_requests, render_upstreams_and_listeners};
    let gw = &state.gateway;
    let plan = gw.plan();
    let mut routes: Vec<(&str, &rampart_proxy::metrics::RouteMetrics)> = plan
        .routes
        .iter()
        .map(|r| (&*r.name, &*r.metrics))
        .collect();
    routes.push(("", &plan.unrouted));
    let mut out = MetricsText::new();
    render_requests(&mut out, &routes, &plan.codes);
    let targets: Vec<(&str, &str, &rampart_proxy::metrics::TargetMetrics)> = plan
        .upstreams
        .iter()
        .flat_map(|u| {
            u.targets
                .iter()
                .map(move |t| (&*u.name, &*t.url, &*t.metrics))
        })
        .collect();
    let listeners: Vec<(&str, &rampart_proxy::metrics::ListenerMetrics)> = plan
        .listeners
        .iter()
        .map(|l| (&*l.name, &*l.metrics))
        .collect();
    render_upstreams_and_listeners(&mut out, &targets, &listeners);
    for source in &plan.metric_sources {
        source.render(&mut out);
    }
    out.family(
        "rampart_connections_open",
        "gauge",
        "Client connections open.",
    );
    out.sample(
        "rampart_connections_open",
        &[],
        gw.open_connections() as u64,
    );
    out.family(
        "rampart_target_healthy",
        "gauge",
        "1 when a target may receive traffic (health checks and passive ejection).",
    );
    let now = rampart_proxy::upstream::now_ms();
    for u in &plan.upstreams {
        for t in &u.targets {
            out.sample(
                "rampart_target_healthy",
                &[("upstream", &u.name), ("target", &t.url)],
                u64::from(t.is_available(now)),
            );
        }
    }
    let (ok, failed) = gw.reload_counts();
    out.family(
        "rampart_reloads_total",
        "counter",
        "Configuration reloads by result.",
    );
    out.sample("rampart_reloads_total", &[("result", "success")], ok);
    out.sample("rampart_reloads_total", &[("result", "failure")], failed);
    let (_, fingerprint) = config_and_fingerprint(&plan);
    out.family(
        "rampart_config_info",
        "gauge",
        "The running configuration's fingerprint.",
    );
    out.sample("rampart_config_info", &[("fingerprint", &fingerprint)], 1);
    out.family(
        "rampart_access_log_dropped_total",
        "counter",
        "Access log lines dropped because the writer fell behind.",
    );
    out.sample(
        "rampart_access_log_dropped_total",
        &[],
        gw.access_log_dropped(),
    );
    let mut r = Response::new(Full::new(Bytes::from(out.finish())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// The effective config (defaults filled in; secret fields show their reference and
/// `<redacted>`), its SHA-256 fingerprint and when it was loaded.
fn effective_config(state: &State) -> Response<Full<Bytes>> {
    let plan = state.gateway.plan();
    let (config, fingerprint) = config_and_fingerprint(&plan);
    let at = plan
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json_response(
        StatusCode::OK,
        json!({"fingerprint": fingerprint, "loaded_at_unix": at, "config": config}),
    )
}

fn status_json(s: &rampart_proxy::server::ReloadStatus) -> serde_json::Value {
    let at =
        s.at.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
    json!({"ok": s.ok, "at_unix": at, "errors": s.errors})
}

fn last_reload(state: &State) -> Response<Full<Bytes>> {
    match state.gateway.last_reload() {
        Some(s) => json_response(StatusCode::OK, json!({"last_reload": status_json(&s)})),
        None => json_response(StatusCode::OK, json!({"last_reload": null})),
    }
}

fn reload(state: &State) -> Response<Full<Bytes>> {
    let Some(path) = &state.config_path else {
        return json_response(
            StatusCode::CONFLICT,
            json!({"status": 409, "title": "This gateway was not started from a file"}),
        );
    };
    match crate::reload::reload_file(&state.gateway, path) {
        Ok(()) => json_response(StatusCode::OK, json!({"ok": true})),
        Err(errors) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ok": false, "errors": errors}),
        ),
    }
}
