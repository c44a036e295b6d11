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
//! | GET | `/admin/posture` | token | the security posture report of the running config (JSON) |
//! | GET | `/admin/history` | token | the kept config versions, newest first (`history.rs`) |
//! | POST | `/admin/rollback` | token | `{"version": ID}`: make a kept version live |
//! | * | `/admin/consumers…`, `/admin/keys/…` | token | the consumer store (`consumers.rs`) |
//!
//! It reads only what the gateway publishes about itself (`Gateway::status`,
//! `effective_config`, `metrics_text`, `last_reload`), never the plan's internals, and
//! reloads through the callback the binary hands it. Every request, and every refused
//! connection, is an [`AuditEvent`].
#![forbid(unsafe_code)]

mod api;
mod consumers;
mod history;
mod ui;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::Digest;
use subtle::ConstantTimeEq;

use rampart_observe::AuditEvent;
use rampart_proxy::Gateway;

/// How `POST /admin/reload` reloads: re-reads the config the gateway was started from and
/// swaps it in, or returns every problem found (the running config stays).
pub type Reload = Box<dyn Fn(&Gateway) -> Result<(), Vec<String>> + Send + Sync>;

/// How `POST /admin/rollback` makes a kept config version live: the version's full id,
/// or why not.
pub type Rollback = Box<dyn Fn(&Gateway, &str) -> Result<String, Refusal> + Send + Sync>;

/// A refused rollback: the answer's status, what the operator reads, and every problem
/// of a version that no longer loads.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<String>,
}

/// What the binary lends the admin API: how it reloads and rolls back.
#[derive(Default)]
pub struct Hooks {
    /// `None` when the gateway was not started from a file.
    pub reload: Option<Reload>,
    pub rollback: Option<Rollback>,
}

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

pub(crate) struct State {
    gateway: Arc<Gateway>,
    hooks: Hooks,
    ui: ui::Ui,
}

/// Starts the admin API when the running config has one, reloading and rolling back
/// through `hooks`.
pub fn start(gateway: Arc<Gateway>, hooks: Hooks) -> std::io::Result<Option<Admin>> {
    let Some(admin) = gateway.status().admin else {
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
        hooks,
        ui: ui::Ui {
            sessions: Default::default(),
            live: ui::live::Live::new(),
        },
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
                tokio::spawn(ui::live::Live::sample(
                    state.ui.live.clone(),
                    state.gateway.clone(),
                ));
                loop {
                    let (tcp, peer) = tokio::select! {
                        _ = &mut stop_rx => return,
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    };
                    let status = state.gateway.status();
                    let Some(settings) = status.admin.as_ref() else {
                        continue;
                    };
                    // A small cap: the admin API serves operators, not crowds.
                    let Some(slot) = AdminSlot::take(&open, settings.max_connections) else {
                        audit(
                            &state.gateway,
                            peer,
                            "-",
                            "",
                            "",
                            0,
                            Some("too_many_connections"),
                        );
                        continue;
                    };
                    let (tls, head) = (settings.tls.clone(), status.head);
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
                                audit(&state.gateway, peer, "-", "", "", 0, Some("tls_handshake"));
                                return;
                            }
                        };
                        let subject = rampart_proxy::tls::peer_identity(stream.get_ref().1)
                            .map(|p| Arc::<str>::from(p.subject));
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

/// A request whose response has not finished, on one admin connection.
struct Busy(Arc<rampart_proxy::h1_guard::ConnShared>);

impl Busy {
    fn new(conn: Arc<rampart_proxy::h1_guard::ConnShared>) -> Busy {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
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
        // Counted until the response body is done, so the idle timer does not close a
        // connection whose answer is still streaming (the dashboard's live views).
        let busy = Busy::new(conn.clone());
        let answer = async move {
            match rejection {
                Some(p) => {
                    audit(
                        &state.gateway,
                        peer,
                        "-",
                        "",
                        "",
                        p.status.as_u16(),
                        Some(p.code),
                    );
                    let mut r = json_response(
                        p.status,
                        json!({"status": p.status.as_u16(), "title": p.title, "code": p.code}),
                    );
                    r.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                    Ok(r.map(|b| b.boxed()))
                }
                None => handle(state, peer, subject, req).await,
            }
        };
        async move {
            let r: Result<Response<ui::Body>, Infallible> = answer.await;
            r.map(|r| {
                r.map(|b| {
                    b.map_frame(move |f| {
                        let _ = &busy;
                        f
                    })
                    .boxed()
                })
            })
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(guard), svc)
        .await;
}

pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
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

/// How audit lines name a token's holder: `token:` and the first 12 hex digits of its
/// SHA-256 (never the token).
pub(crate) fn token_actor(token: &str) -> String {
    format!(
        "token:{}",
        hex(&sha2::Sha256::digest(token.as_bytes())[..6])
    )
}

/// Who is calling, for the audit log: a fingerprint of the presented token (never the
/// token), or `loopback` when the admin API runs without a token on a loopback address;
/// and whether the caller may change anything (`admin.read_token` may not).
fn authenticate(state: &State, req: &Request<Incoming>) -> Result<(String, bool), ()> {
    let status = state.gateway.status();
    let Some(admin) = &status.admin else {
        return Err(());
    };
    let Some(expected) = &admin.token else {
        return Ok(("loopback".into(), true));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(())?;
    // Compare digests so the comparison is constant-time whatever the lengths; both
    // tokens are always compared, so the time does not say which one matched.
    let got = sha2::Sha256::digest(presented.as_bytes());
    let full = sha2::Sha256::digest(expected.expose().as_bytes());
    let read = admin
        .read_token
        .as_ref()
        .map(|t| sha2::Sha256::digest(t.expose().as_bytes()));
    let is_full = bool::from(full.ct_eq(&got));
    let is_read = read.is_some_and(|r| bool::from(r.ct_eq(&got)));
    if is_full {
        Ok((token_actor(expected.expose()), true))
    } else if is_read {
        Ok((format!("{} (read-only)", token_actor(presented)), false))
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
) -> Result<Response<ui::Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return Ok(json_response(StatusCode::OK, json!({"status": "ok"})).map(|b| b.boxed()))
        }
        (&Method::GET, "/readyz") => return Ok(api::readiness(&state).map(|b| b.boxed())),
        _ => {}
    }
    if ui::owns(&path) {
        let h = ui::handle(&state, req, client_cert.clone()).await;
        let actor = match &client_cert {
            Some(subject) => format!("{} cert:{subject}", h.actor),
            None => h.actor,
        };
        audit(
            &state.gateway,
            peer,
            &actor,
            method.as_str(),
            &path,
            h.response.status().as_u16(),
            h.refused,
        );
        return Ok(h.response);
    }
    let (who, may_change) = match authenticate(&state, &req) {
        Ok((who, may_change)) => match &client_cert {
            Some(subject) => (format!("{who} cert:{subject}"), may_change),
            None => (who, may_change),
        },
        Err(()) => {
            audit(
                &state.gateway,
                peer,
                "unauthenticated",
                method.as_str(),
                &path,
                401,
                Some("unauthenticated"),
            );
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                json!({"status": 401, "title": "Unauthorized"}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return Ok(r.map(|b| b.boxed()));
        }
    };
    let trail = {
        let plan = state.gateway.plan();
        rampart_observe::audit_trail::current(&plan.state, &plan.spec)
    };
    // AU-5: a change the audit trail could not record is not made.
    let changes = !matches!(method, Method::GET | Method::HEAD);
    let resp = if changes && !may_change {
        json_response(
            StatusCode::FORBIDDEN,
            json!({"status": 403, "title": "Forbidden", "detail": "admin.read_token may only read: changes need admin.token"}),
        )
    } else if changes && trail.as_ref().is_some_and(|t| t.is_failing()) {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": 503, "title": "Service Unavailable", "detail": "the audit trail cannot be written: changes are refused until it can"}),
        )
    } else if consumers::owns(&path) {
        consumers::handle(&state, req).await
    } else if history::owns(&path) {
        history::handle(&state, req).await
    } else {
        api::other(&state, &method, &path)
    };
    audit(
        &state.gateway,
        peer,
        &who,
        method.as_str(),
        &path,
        resp.status().as_u16(),
        None,
    );
    Ok(resp.map(|b| b.boxed()))
}

/// Writes one audit event for the admin listener: to the audit trail when the running
/// config has one, and to the process log.
fn audit(
    gateway: &Gateway,
    peer: SocketAddr,
    actor: &str,
    method: &str,
    path: &str,
    status: u16,
    refused: Option<&str>,
) {
    AuditEvent {
        time: std::time::SystemTime::now(),
        peer,
        actor,
        method,
        path,
        status,
        refused,
    }
    .record(
        rampart_observe::audit_trail::current(&gateway.plan().state, &gateway.plan().spec)
            .as_deref(),
    );
}
