//! The admin API's own endpoints: readiness, upstream state, the effective config,
//! metrics, the posture report, and reload (the consumer store and history have their
//! own modules).

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::{json_response, State};

pub(crate) fn other(state: &State, method: &Method, path: &str) -> Response<Full<Bytes>> {
    match (method, path) {
        (&Method::GET, "/upstreams") => upstreams(state),
        (&Method::GET, "/config") => effective_config(state),
        (&Method::GET, "/metrics") => metrics(state),
        (&Method::GET, "/admin/posture") => posture(state),
        (&Method::GET, "/admin/reload") => last_reload(state),
        (&Method::POST, "/admin/reload") => reload(state),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"status": 404, "title": "Not Found"}),
        ),
    }
}

pub(crate) fn readiness(state: &State) -> Response<Full<Bytes>> {
    let status = state.gateway.status();
    if status.draining {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "draining": true}),
        );
    }
    let unavailable: Vec<&str> = status
        .upstreams
        .iter()
        .filter(|u| !u.is_available())
        .map(|u| u.name.as_str())
        .collect();
    // The consumer store: not ready until its first load is in the index; a store that
    // stops answering afterwards is reported, while the last index keeps serving.
    let plan = state.gateway.plan();
    let store = rampart_consumers::current(&plan.state, &plan.spec).map(|s| s.status());
    let store_loaded = store.as_ref().is_none_or(|s| s.loaded);
    let mut body = json!({"ready": unavailable.is_empty() && store_loaded});
    if !unavailable.is_empty() {
        body["unavailable_upstreams"] = json!(unavailable);
    }
    if let Some(s) = store {
        body["consumer_store"] = json!(s);
    }
    let status = if unavailable.is_empty() && store_loaded {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body)
}

fn upstreams(state: &State) -> Response<Full<Bytes>> {
    let list: Vec<serde_json::Value> = state
        .gateway
        .status()
        .upstreams
        .iter()
        .map(|u| {
            let targets: Vec<serde_json::Value> = u
                .targets
                .iter()
                .map(|t| {
                    json!({
                        "url": t.url,
                        "weight": t.weight,
                        "healthy": t.healthy,
                        "ejected": t.ejected,
                        "in_flight": t.in_flight,
                    })
                })
                .collect();
            json!({"name": u.name, "targets": targets})
        })
        .collect();
    json_response(StatusCode::OK, json!({"upstreams": list}))
}

/// Prometheus text format, as the gateway renders it.
fn metrics(state: &State) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(state.gateway.metrics_text())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// The effective config (defaults filled in; secret fields show their reference and
/// `<redacted>`), its SHA-256 fingerprint and when it was loaded.
fn effective_config(state: &State) -> Response<Full<Bytes>> {
    let (config, fingerprint) = state.gateway.effective_config();
    let at = state
        .gateway
        .status()
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let version = state
        .gateway
        .plan()
        .origin
        .as_ref()
        .map(|o| o.version.clone());
    json_response(
        StatusCode::OK,
        json!({"fingerprint": fingerprint, "version": version, "loaded_at_unix": at, "config": config}),
    )
}

/// The security posture of the running config, its certificates read now.
fn posture(state: &State) -> Response<Full<Bytes>> {
    let plan = state.gateway.plan();
    let source = match &plan.origin {
        Some(o) => format!("running gateway, version {}", &o.version[..12]),
        None => "running gateway".to_string(),
    };
    let report = rampart_posture::evaluate(
        &plan.spec,
        &plan.base,
        &source,
        std::time::SystemTime::now(),
    );
    let mut r = Response::new(Full::new(Bytes::from(rampart_posture::render::json(
        &report,
    ))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
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
    let Some(reload) = &state.hooks.reload else {
        return json_response(
            StatusCode::CONFLICT,
            json!({"status": 409, "title": "This gateway was not started from a file"}),
        );
    };
    match reload(&state.gateway) {
        Ok(()) => json_response(StatusCode::OK, json!({"ok": true})),
        Err(errors) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ok": false, "errors": errors}),
        ),
    }
}
