//! `/admin/consumers` and `/admin/keys`: consumers and API keys in the consumer store
//! (crate `rampart-consumers`). Keys are shown once, when issued; every other answer
//! carries key ids and dates only.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/admin/consumer-store` | the store's kind, health, keys indexed, last sync |
//! | GET | `/admin/consumers?after=ID&limit=N` | consumers in id order, and `next` |
//! | POST | `/admin/consumers` | 201 with the consumer; 409 if the id exists |
//! | GET, PUT, DELETE | `/admin/consumers/{id}` | one consumer (DELETE revokes its keys) |
//! | GET | `/admin/consumers/{id}/keys` | its keys: id, created, expires, last used here |
//! | POST | `/admin/consumers/{id}/keys` | 201 with a new key, shown this once |
//! | DELETE | `/admin/keys/{key}` | revokes the key |
//! | POST | `/admin/keys/{key}/rotate` | 201 with a new key; the old one works `overlap` more |

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use rampart_config::{ConsumerRecord, StoredKeyRecord};
use rampart_consumers::{ConsumerStore, StoreError};

use crate::{json_response, State};

/// Largest request body accepted (a consumer with its attributes).
const MAX_BODY: usize = 64 * 1024;

/// Whether `path` is one of this module's.
pub(crate) fn owns(path: &str) -> bool {
    path == "/admin/consumer-store"
        || path == "/admin/consumers"
        || path.starts_with("/admin/consumers/")
        || path.starts_with("/admin/keys/")
}

pub(crate) fn problem(
    status: StatusCode,
    detail: impl Into<String>,
) -> http::Response<Full<Bytes>> {
    json_response(
        status,
        json!({"status": status.as_u16(), "title": status.canonical_reason(), "detail": detail.into()}),
    )
}

/// A refused request: its status and the detail the operator reads.
pub(crate) struct Bad(pub StatusCode, pub String);

impl Bad {
    pub(crate) fn answer(self) -> http::Response<Full<Bytes>> {
        problem(self.0, self.1)
    }
}

fn store_error(e: StoreError) -> http::Response<Full<Bytes>> {
    let status = match &e {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Exists(_) => StatusCode::CONFLICT,
        StoreError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, e.to_string())
}

fn consumer_json(c: &ConsumerRecord) -> Value {
    json!({
        "id": c.id, "plan": c.plan, "roles": c.roles, "scopes": c.scopes,
        "attributes": c.attributes, "certificates": c.certificates,
        "created_unix": c.created, "updated_unix": c.updated,
    })
}

/// A key as listed: never its hash.
fn key_json(k: &StoredKeyRecord) -> Value {
    json!({
        "id": k.id, "consumer": k.consumer, "created_unix": k.created,
        "not_before_unix": k.not_before, "expires_unix": k.expires,
    })
}

pub(crate) async fn read_json(req: http::Request<Incoming>) -> Result<Value, Bad> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            Bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is over 64 KiB or was cut off".into(),
            )
        })?
        .to_bytes();
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body).map_err(|e| {
        Bad(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// A consumer from a request body; `id` from the path when the body has none.
fn consumer_from(mut v: Value, id: Option<&str>) -> Result<ConsumerRecord, Bad> {
    if let (Some(id), Some(obj)) = (id, v.as_object_mut()) {
        match obj.get("id") {
            Some(Value::String(s)) if s != id => {
                return Err(Bad(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "id: differs from the path".into(),
                ))
            }
            _ => {
                obj.insert("id".into(), Value::String(id.into()));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for k in ["created", "updated"] {
            if obj.contains_key(k) {
                return Err(Bad(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{k}: set by the store"),
                ));
            }
        }
    }
    serde_json::from_value(v).map_err(|e| Bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// A duration field (`"90d"`, `"24h"`) as seconds.
fn seconds(v: &Value, field: &str) -> Result<Option<u64>, Bad> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => humantime::parse_duration(s)
            .map(|d| Some(d.as_secs()))
            .map_err(|e| Bad(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: {e}"))),
        Some(_) => Err(Bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: a duration such as \"90d\""),
        )),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn issued_json(i: &rampart_consumers::Issued) -> Value {
    let mut v = key_json(&i.record);
    v["key"] = Value::String(i.key.clone());
    v
}

/// Answers one request to this module's paths.
pub(crate) async fn handle(
    state: &State,
    req: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let plan = state.gateway.plan();
    let Some(store) = rampart_consumers::current(&plan.state, &plan.spec) else {
        return problem(
            StatusCode::NOT_FOUND,
            "this gateway has no consumer_store (docs/consumers.md)",
        );
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["admin", "consumer-store"]) => {
            json_response(StatusCode::OK, json!(store.status()))
        }
        (&Method::GET, ["admin", "consumers"]) => list(&store, &query).await,
        (&Method::POST, ["admin", "consumers"]) => {
            let c = match read_json(req).await.and_then(|v| consumer_from(v, None)) {
                Ok(c) => c,
                Err(b) => return b.answer(),
            };
            match store.create_consumer(c).await {
                Ok(c) => json_response(StatusCode::CREATED, consumer_json(&c)),
                Err(e) => store_error(e),
            }
        }
        (&Method::GET, ["admin", "consumers", id]) => match store.get_consumer(id).await {
            Ok(Some(c)) => json_response(StatusCode::OK, consumer_json(&c)),
            Ok(None) => problem(StatusCode::NOT_FOUND, format!("consumer {id:?} not found")),
            Err(e) => store_error(e),
        },
        (&Method::PUT, ["admin", "consumers", id]) => {
            let id = id.to_string();
            let c = match read_json(req)
                .await
                .and_then(|v| consumer_from(v, Some(&id)))
            {
                Ok(c) => c,
                Err(b) => return b.answer(),
            };
            match store.update_consumer(c).await {
                Ok(c) => json_response(StatusCode::OK, consumer_json(&c)),
                Err(e) => store_error(e),
            }
        }
        (&Method::DELETE, ["admin", "consumers", id]) => match store.delete_consumer(id).await {
            Ok(keys) => json_response(StatusCode::OK, json!({"deleted": id, "revoked_keys": keys})),
            Err(e) => store_error(e),
        },
        (&Method::GET, ["admin", "consumers", id, "keys"]) => match store.list_keys(id).await {
            Ok(keys) => json_response(
                StatusCode::OK,
                json!({"keys": keys
                    .iter()
                    .map(|k| {
                        let mut v = key_json(k);
                        v["last_used_unix"] = json!(store.last_used(k));
                        v
                    })
                    .collect::<Vec<_>>()}),
            ),
            Err(e) => store_error(e),
        },
        (&Method::POST, ["admin", "consumers", id, "keys"]) => {
            let id = id.to_string();
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(b) => return b.answer(),
            };
            let expires = match seconds(&body, "expires_in") {
                Ok(s) => s.map(|s| now_unix() + s),
                Err(b) => return b.answer(),
            };
            match store.issue_key(&id, expires).await {
                Ok(i) => json_response(StatusCode::CREATED, issued_json(&i)),
                Err(e) => store_error(e),
            }
        }
        (&Method::DELETE, ["admin", "keys", key]) => match store.revoke_key(key).await {
            Ok(k) => json_response(StatusCode::OK, json!({"revoked": key_json(&k)})),
            Err(e) => store_error(e),
        },
        (&Method::POST, ["admin", "keys", key, "rotate"]) => {
            let key = key.to_string();
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(b) => return b.answer(),
            };
            // The old key keeps working this long, so clients can switch without an outage.
            let overlap = match seconds(&body, "overlap") {
                Ok(s) => s.unwrap_or(24 * 3600),
                Err(b) => return b.answer(),
            };
            match store.rotate_key(&key, overlap).await {
                Ok((new, old)) => {
                    let mut v = issued_json(&new);
                    v["replaces"] = key_json(&old);
                    json_response(StatusCode::CREATED, v)
                }
                Err(e) => store_error(e),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "no such consumer-store endpoint"),
    }
}

async fn list(store: &Arc<ConsumerStore>, query: &str) -> http::Response<Full<Bytes>> {
    let mut after = None;
    let mut limit = 100usize;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "after" => after = Some(v.into_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => return problem(StatusCode::BAD_REQUEST, "limit: 1 to 1000"),
            },
            _ => {}
        }
    }
    match store.list_consumers(after.as_deref(), limit).await {
        Ok(list) => {
            let next = (list.len() == limit).then(|| list.last().map(|c| c.id.clone()));
            json_response(
                StatusCode::OK,
                json!({"consumers": list.iter().map(consumer_json).collect::<Vec<_>>(), "next": next.flatten()}),
            )
        }
        Err(e) => store_error(e),
    }
}
