//! The dashboard, under `/ui` on the admin listener (never on a public one).
//!
//! Server-rendered pages ([`pages`]), one small script and one stylesheet embedded in the
//! binary, live numbers over Server-Sent Events ([`live`]). Signing in takes an admin
//! token: `admin.token` makes an operator, `admin.read_token` a viewer who can only look.
//! The session is a random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` on
//! TLS); every form that changes something carries the session's CSRF token, and its
//! `Origin`, when sent, must be this listener. Every answer carries a strict Content
//! Security Policy (no inline script or style, nothing from elsewhere) and forbids
//! framing. Every request is an audit event naming the session's token fingerprint.

pub(crate) mod live;
mod pages;
pub(crate) mod session;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::State;
use session::{Role, Sessions};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");
/// Largest form body read.
const MAX_FORM: usize = 16 * 1024;

/// The dashboard's state on the admin listener.
pub(crate) struct Ui {
    pub sessions: Sessions,
    pub live: Arc<live::Live>,
}

pub(crate) fn owns(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The answer, who asked (for the audit line) and why it was refused, if it was.
pub(crate) struct Handled {
    pub response: Response<Body>,
    pub actor: String,
    pub refused: Option<&'static str>,
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// Adds the headers every dashboard answer carries.
fn harden(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    let set = |h: &mut http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin`, not `no-referrer`: with `no-referrer` browsers send `Origin: null` on
    // form posts, and the Origin check could not tell the dashboard from a sandboxed frame.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn html(status: StatusCode, page: maud::Markup) -> Response<Body> {
    let mut r = Response::new(full(page.into_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn asset(body: &'static str, kind: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

fn sse(body: http_body_util::channel::Channel<Bytes, Infallible>) -> Response<Body> {
    let mut r = Response::new(body.boxed());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}

/// Serves one `/ui` request.
pub(crate) async fn handle(
    state: &Arc<State>,
    req: Request<Incoming>,
    cert: Option<Arc<str>>,
) -> Handled {
    let mut h = route(state, req, cert.as_deref()).await;
    h.response = harden(h.response);
    h
}

/// The role a verified client certificate signs in with, if its subject is listed.
fn cert_role(ui: &rampart_proxy::plan::UiPlan, cert: Option<&str>) -> Option<(String, Role)> {
    let subject = cert?;
    let role = match ui.certificates.get(subject)? {
        rampart_config::UiRole::Operator => Role::Operator,
        rampart_config::UiRole::Viewer => Role::Viewer,
    };
    Some((subject.to_string(), role))
}

async fn route(state: &Arc<State>, req: Request<Incoming>, cert: Option<&str>) -> Handled {
    let anonymous = |response, refused| Handled {
        response,
        actor: "unauthenticated".into(),
        refused,
    };
    let status = state.gateway.status();
    let Some((admin, ui)) = status
        .admin
        .as_ref()
        .and_then(|a| Some((a, a.ui.as_ref()?)))
    else {
        return anonymous(html(StatusCode::NOT_FOUND, pages::off()), Some("ui_off"));
    };
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/ui/assets/app.js") => {
            return anonymous(asset(APP_JS, "text/javascript; charset=utf-8"), None)
        }
        (&Method::GET, "/ui/assets/app.css") => {
            return anonymous(asset(APP_CSS, "text/css; charset=utf-8"), None)
        }
        (&Method::GET, "/ui/assets/favicon.svg") => {
            return anonymous(asset(FAVICON, "image/svg+xml"), None)
        }
        (&Method::GET, "/ui/login") => {
            let offer = cert_role(ui, cert);
            return anonymous(
                html(StatusCode::OK, pages::login(None, offer.as_ref())),
                None,
            );
        }
        (&Method::POST, "/ui/login") => return sign_in(state, admin, ui, cert, req).await,
        _ => {}
    }
    let id = session::cookie(req.headers()).map(str::to_string);
    let found = id
        .as_deref()
        .and_then(|id| state.ui.sessions.find(id, ui.session_idle, ui.session_max));
    // A session lasts no longer than the token it was opened with (a reload may change it).
    // One opened with a certificate lasts while that certificate is presented and
    // still listed with that role.
    let found = found.filter(|s| match s.who.strip_prefix("cert:") {
        Some(subject) => {
            cert == Some(subject) && cert_role(ui, cert).is_some_and(|(_, r)| r == s.role)
        }
        None => {
            let token = match s.role {
                Role::Operator => admin.token.as_ref(),
                Role::Viewer => admin.read_token.as_ref(),
            };
            token.is_some_and(|t| crate::token_actor(t.expose()) == s.who)
        }
    });
    let Some(session) = found else {
        let response = if path.starts_with("/ui/live/") || req.method() != Method::GET {
            html(
                StatusCode::UNAUTHORIZED,
                pages::login(Some("Sign in again: the session has ended."), None),
            )
        } else {
            redirect("/ui/login")
        };
        return anonymous(response, Some("ui_no_session"));
    };
    let actor = format!("ui:{} ({})", session.who, session.role.as_str());
    let done = |response| Handled {
        response,
        actor: actor.clone(),
        refused: None,
    };
    let refuse = |response, why| Handled {
        response,
        actor: actor.clone(),
        refused: Some(why),
    };
    if req.method() == Method::POST {
        let origin_ok = same_origin(req.headers());
        let form = read_form(req).await;
        let csrf_ok = form
            .iter()
            .any(|(k, v)| k == "csrf" && session::same_secret(v, &session.csrf));
        if !origin_ok || !csrf_ok {
            return refuse(
                html(StatusCode::FORBIDDEN, pages::refused(&session, "This form is out of date or did not come from this dashboard. Reload the page and try again.")),
                "ui_csrf",
            );
        }
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        return match path.as_str() {
            "/ui/logout" => {
                if let Some(id) = &id {
                    state.ui.sessions.close(id);
                }
                let mut r = redirect("/ui/login");
                r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("rampart_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"));
                done(r)
            }
            "/ui/config/rollback" | "/ui/reload" if session.role != Role::Operator => refuse(
                html(StatusCode::FORBIDDEN, pages::refused(&session, "Only an operator may change the running config. You signed in with the read-only token.")),
                "ui_read_only",
            ),
            "/ui/config/rollback" | "/ui/reload" if trail_failing(state) => refuse(
                html(StatusCode::SERVICE_UNAVAILABLE, pages::refused(&session, "The audit trail cannot be written: changes are refused until it can.")),
                "audit_trail_failing",
            ),
            "/ui/config/rollback" => {
                let outcome = rollback(state, field("version").unwrap_or(""));
                done(html(outcome_status(&outcome), pages::config(state, &session, Some(outcome))))
            }
            "/ui/reload" => {
                let outcome = match &state.hooks.reload {
                    None => Err("This gateway was not started from a file.".to_string()),
                    Some(reload) => reload(&state.gateway)
                        .map(|()| "Reloaded the config file.".to_string())
                        .map_err(|errors| format!("The config file did not load; the running config stays. {}", errors.join("; "))),
                };
                done(html(outcome_status(&outcome), pages::config(state, &session, Some(outcome))))
            }
            _ => refuse(html(StatusCode::NOT_FOUND, pages::not_found(&session)), "ui_not_found"),
        };
    }
    if req.method() != Method::GET {
        return refuse(
            html(StatusCode::METHOD_NOT_ALLOWED, pages::not_found(&session)),
            "ui_method",
        );
    }
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let alive = {
        let (state, id) = (state.clone(), id.clone().unwrap_or_default());
        let (idle, max) = (ui.session_idle, ui.session_max);
        move || state.ui.sessions.find(&id, idle, max).is_some()
    };
    match path.as_str() {
        "/ui/live/overview" | "/ui/live/decisions" => {
            let Some(slot) = state.ui.live.stream_slot(ui.max_live) else {
                return refuse(
                    html(
                        StatusCode::SERVICE_UNAVAILABLE,
                        pages::refused(&session, "Too many live views are open."),
                    ),
                    "ui_too_many_streams",
                );
            };
            let body = if path == "/ui/live/overview" {
                state.ui.live.overview_stream(slot, alive)
            } else {
                let after = param("after").and_then(|a| a.parse().ok()).unwrap_or(0);
                live::Live::decisions_stream(slot, state.gateway.clone(), after, alive)
            };
            done(sse(body))
        }
        "/ui" | "/ui/" => done(html(StatusCode::OK, pages::overview(state, &session))),
        "/ui/decisions" => done(html(StatusCode::OK, pages::decisions(state, &session))),
        "/ui/routes" => done(html(StatusCode::OK, pages::routes(state, &session))),
        "/ui/consumers" => done(html(StatusCode::OK, pages::consumers(state, &session))),
        "/ui/upstreams" => done(html(StatusCode::OK, pages::upstreams(state, &session))),
        "/ui/security" => done(html(StatusCode::OK, pages::security(state, &session))),
        "/ui/config" => done(html(StatusCode::OK, pages::config(state, &session, None))),
        "/ui/config/diff" => done(html(
            StatusCode::OK,
            pages::diff(
                state,
                &session,
                &param("from").unwrap_or_default(),
                &param("to").unwrap_or_default(),
            ),
        )),
        "/ui/config/rollback" => done(html(
            StatusCode::OK,
            pages::confirm_rollback(state, &session, &param("version").unwrap_or_default()),
        )),
        _ => refuse(
            html(StatusCode::NOT_FOUND, pages::not_found(&session)),
            "ui_not_found",
        ),
    }
}

/// 200 for a change made, 422 for one refused (the page says why either way, and the
/// audit line gets the status).
fn outcome_status(outcome: &Result<String, String>) -> StatusCode {
    match outcome {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn trail_failing(state: &State) -> bool {
    let plan = state.gateway.plan();
    rampart_observe::audit_trail::current(&plan.state, &plan.spec).is_some_and(|t| t.is_failing())
}

/// Makes a kept version live; what the operator reads either way.
fn rollback(state: &State, version: &str) -> Result<String, String> {
    let Some(rollback) = &state.hooks.rollback else {
        return Err("This gateway keeps no config history: set state_dir.".into());
    };
    match rollback(&state.gateway, version) {
        Ok(id) => Ok(format!(
            "Rolled back: version {} is live.",
            &id[..id.len().min(12)]
        )),
        Err(r) if r.errors.is_empty() => Err(r.detail),
        Err(r) => Err(format!("{} {}", r.detail, r.errors.join("; "))),
    }
}

/// True unless the request names an `Origin` other than the host it was sent to (a form
/// posted from another site; `SameSite=Strict` already keeps the cookie off it).
fn same_origin(h: &http::HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|r| !host.is_empty() && r.eq_ignore_ascii_case(host))
}

async fn read_form(req: Request<Incoming>) -> Vec<(String, String)> {
    let Ok(body) = Limited::new(req.into_body(), MAX_FORM).collect().await else {
        return Vec::new();
    };
    form_urlencoded::parse(&body.to_bytes())
        .into_owned()
        .collect()
}

async fn sign_in(
    state: &Arc<State>,
    admin: &rampart_proxy::plan::AdminPlan,
    ui: &rampart_proxy::plan::UiPlan,
    cert: Option<&str>,
    req: Request<Incoming>,
) -> Handled {
    let origin_ok = same_origin(req.headers());
    let secure = admin.tls.is_some();
    let form = read_form(req).await;
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let presented = field("token").unwrap_or("");
    let with_cert = field("certificate").is_some();
    let refuse = |status, message, why| Handled {
        response: html(status, pages::login(Some(message), None)),
        actor: "unauthenticated".into(),
        refused: Some(why),
    };
    if !origin_ok {
        return refuse(
            StatusCode::FORBIDDEN,
            "Sign in from this dashboard's own page.",
            "ui_csrf",
        );
    }
    if state.ui.sessions.locked() {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins: wait a minute.",
            "ui_sign_in_locked",
        );
    }
    let signed = if with_cert {
        cert_role(ui, cert).map(|(subject, role)| (role, format!("cert:{subject}")))
    } else {
        match (&admin.token, &admin.read_token) {
            (Some(t), _) if session::same_secret(presented, t.expose()) => {
                Some((Role::Operator, t))
            }
            (_, Some(t)) if session::same_secret(presented, t.expose()) => Some((Role::Viewer, t)),
            _ => None,
        }
        .map(|(role, t)| (role, crate::token_actor(t.expose())))
    };
    let Some((role, who)) = signed else {
        state.ui.sessions.failed();
        let message = if with_cert {
            "This connection's certificate is not listed in admin.ui.certificates."
        } else {
            "That token is not valid."
        };
        return refuse(StatusCode::UNAUTHORIZED, message, "ui_sign_in");
    };
    let Some((id, _)) = state.ui.sessions.open(role, who.clone()) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway could not make a session id (no system randomness).",
            "ui_no_randomness",
        );
    };
    let mut r = redirect("/ui");
    let max_age = ui.session_max.as_secs();
    let cookie = format!(
        "{}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Handled {
        response: r,
        actor: format!("ui:{who} ({})", role.as_str()),
        refused: None,
    }
}
