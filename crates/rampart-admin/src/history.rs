//! `/admin/history` and `/admin/rollback`: the config versions kept in `state_dir`
//! (`rampart_observe::config_history`) and making one of them live again.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/admin/history` | `{"current": ID, "versions": [...]}`, newest first |
//! | POST | `/admin/rollback` | `{"version": ID or a prefix of 6+}` → 200 with the version; 400 for a malformed or ambiguous one, 404 for an unknown one, 409 without history, 422 with every problem when it no longer loads |

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use rampart_observe::config_history::History;

use crate::consumers::{problem, read_json, Bad};
use crate::{json_response, State};

pub(crate) fn owns(path: &str) -> bool {
    path == "/admin/history" || path == "/admin/rollback"
}

pub(crate) async fn handle(
    state: &State,
    req: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/admin/history") => list(state),
        (&Method::POST, "/admin/rollback") => match read_json(req).await {
            Ok(body) => rollback(state, &body),
            Err(bad) => bad.answer(),
        },
        _ => problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /admin/history, POST /admin/rollback",
        ),
    }
}

fn no_history() -> http::Response<Full<Bytes>> {
    problem(
        StatusCode::CONFLICT,
        "the running config keeps no history: set state_dir",
    )
}

fn list(state: &State) -> http::Response<Full<Bytes>> {
    let plan = state.gateway.plan();
    let Some(origin) = plan.origin.as_ref() else {
        return no_history();
    };
    let Some(history) = History::of(&plan.spec, origin.base()) else {
        return no_history();
    };
    match history.list() {
        Ok(mut versions) => {
            versions.reverse();
            json_response(
                StatusCode::OK,
                json!({"current": origin.version, "versions": versions}),
            )
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn rollback(state: &State, body: &serde_json::Value) -> http::Response<Full<Bytes>> {
    let Some(version) = body.get("version").and_then(|v| v.as_str()) else {
        return Bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            "version: required, a kept version's id (or its first 6+ characters)".into(),
        )
        .answer();
    };
    let Some(rollback) = &state.hooks.rollback else {
        return no_history();
    };
    match rollback(&state.gateway, version) {
        Ok(id) => json_response(StatusCode::OK, json!({"ok": true, "version": id})),
        Err(r) => json_response(
            r.status,
            json!({"status": r.status.as_u16(), "title": r.status.canonical_reason(), "detail": r.detail, "errors": r.errors}),
        ),
    }
}
