//! The embedded consumer store, driven through the admin API over real sockets: consumers
//! created, changed and deleted, keys issued, listed, rotated and revoked, each change
//! seen by the next request through the public listener, and all of it still there
//! after the gateway restarts.

mod support;

use std::sync::Arc;

use http::Request;
use http_body_util::Full;
use serde_json::json;
use support::store::*;
use support::*;

#[tokio::test]
async fn an_issued_key_works_at_once_and_a_revoked_one_is_refused_at_once() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (key, id) = consumer_with_key(&n, "acme", json!({"plan": "gold"})).await;
    assert!(key.starts_with("rpk_") && key.contains(&id));

    let r = with_key(&n, "/v1/orders", &key).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.headers["x-consumer-id"], "acme");
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "the credential is stripped"
    );

    let r = call(&n, "DELETE", &format!("/admin/keys/{id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = with_key(&n, "/v1/orders", &key).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.code(),
        "auth.required",
        "the answer says only that it was refused"
    );
    assert_denied(&n, "open", "auth.api_key.unknown").await;
    // Revoking twice: the key is gone.
    assert_eq!(
        call(&n, "DELETE", &format!("/admin/keys/{id}"), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn listed_keys_show_ids_and_dates_never_the_key_or_its_hash() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (key, id) = consumer_with_key(&n, "lister", json!({})).await;
    let r = call(
        &n,
        "POST",
        "/admin/consumers/lister/keys",
        Some(json!({"expires_in": "90d"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let second = r.json();
    let exp = second["expires_unix"].as_u64().unwrap();
    let now = jwt::now() as u64;
    assert!((now + 90 * 86400 - 5..=now + 90 * 86400 + 5).contains(&exp));

    let r = call(&n, "GET", "/admin/consumers/lister/keys", None).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let secret = key.rsplit('_').next().unwrap();
    assert!(
        !text.contains(secret) && !text.contains("hmac-sha256"),
        "{text}"
    );
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&id.as_str()));
    // Last use, as this node saw it: the first key was never used, then it is.
    let first = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert!(first["last_used_unix"].is_null());
    assert_eq!(with_key(&n, "/v1/x", &key).await.status, 200);
    let r = call(&n, "GET", "/admin/consumers/lister/keys", None).await;
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let first = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert!(first["last_used_unix"].as_u64().unwrap() + 5 >= now);
    assert!(keys
        .iter()
        .all(|k| k.get("key").is_none() && k.get("hash").is_none()));
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_overlap_only() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (old, id) = consumer_with_key(&n, "rotor", json!({})).await;

    let r = call(
        &n,
        "POST",
        &format!("/admin/keys/{id}/rotate"),
        Some(json!({"overlap": "1h"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let new = v["key"].as_str().unwrap().to_string();
    assert_eq!(v["replaces"]["id"], id.as_str());
    assert!(v["replaces"]["expires_unix"].as_u64().unwrap() > jwt::now() as u64 + 3500);
    assert_eq!(
        with_key(&n, "/v1/a", &old).await.status,
        200,
        "old key within the overlap"
    );
    assert_eq!(with_key(&n, "/v1/a", &new).await.status, 200);

    // A rotation with no overlap ends the old key now.
    let new_id = v["id"].as_str().unwrap().to_string();
    let r = call(
        &n,
        "POST",
        &format!("/admin/keys/{new_id}/rotate"),
        Some(json!({"overlap": "0s"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let newest = r.json()["key"].as_str().unwrap().to_string();
    let r = with_key(&n, "/v1/a", &new).await;
    assert_eq!(r.status, 401);
    assert_denied(&n, "open", "auth.api_key.expired").await;
    assert_eq!(with_key(&n, "/v1/a", &newest).await.status, 200);
}

#[tokio::test]
async fn a_consumer_change_applies_to_its_keys_at_once_and_a_delete_revokes_them() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    let (key, _) = consumer_with_key(&n, "climber", json!({"roles": ["bronze"]})).await;
    assert_eq!(with_key(&n, "/gold/x", &key).await.status, 403);

    let r = call(
        &n,
        "PUT",
        "/admin/consumers/climber",
        Some(json!({"roles": ["gold"], "plan": "gold"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["roles"], json!(["gold"]));
    assert_eq!(with_key(&n, "/gold/x", &key).await.status, 200);
    assert_eq!(up.last().headers["x-consumer-roles"], "gold");

    let r = call(&n, "DELETE", "/admin/consumers/climber", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["revoked_keys"].as_array().unwrap().len(), 1);
    assert_eq!(with_key(&n, "/v1/x", &key).await.status, 401);
    assert_eq!(
        call(&n, "GET", "/admin/consumers/climber", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn consumers_and_keys_survive_a_restart() {
    let up = TestUpstream::echo();
    let d = dir();
    let yaml = config(&up, "");
    let (kept, gone) = {
        let n = node(&d, &yaml);
        let (kept, _) = consumer_with_key(&n, "stays", json!({})).await;
        let (gone, gone_id) = consumer_with_key(&n, "leaves", json!({})).await;
        assert_eq!(
            call(&n, "DELETE", &format!("/admin/keys/{gone_id}"), None)
                .await
                .status,
            200
        );
        drop(n.admin);
        Arc::try_unwrap(n.gateway)
            .ok()
            .expect("sole owner")
            .shutdown();
        (kept, gone)
    };
    let n = node(&d, &yaml);
    assert_eq!(with_key(&n, "/v1/x", &kept).await.status, 200);
    assert_eq!(with_key(&n, "/v1/x", &gone).await.status, 401);
    let r = call(&n, "GET", "/admin/consumers", None).await;
    let ids: Vec<String> = r.json()["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["leaves", "stays"]);
    let r = call(&n, "GET", "/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["consumer_store"]["keys"], 1);
}

#[tokio::test]
async fn an_id_in_both_the_file_and_the_store_is_refused_either_way() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(
        &d,
        &config(&up, "consumers: [{ id: filed, roles: [gold] }]\n"),
    );
    let r = call(&n, "POST", "/admin/consumers", Some(json!({"id": "filed"}))).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("config file"));

    consumer_with_key(&n, "stored", json!({})).await;
    std::fs::write(&n.path, config(&up, "consumers: [{ id: stored }]\n")).unwrap();
    let r = call(&n, "POST", "/admin/reload", None).await;
    assert_eq!(r.status, 422);
    let text = r.text();
    assert!(
        text.contains("consumers[0].id") && text.contains("consumer store"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_requests_get_a_precise_error_and_change_nothing() {
    let up = TestUpstream::echo();
    let d = dir();
    let n = node(&d, &config(&up, ""));
    for (body, want) in [
        (json!({"id": "has space"}), "id:"),
        (json!({"id": "ok", "plan": "platinum"}), "platinum"),
        (json!({"id": "ok", "roles": ["a,b"]}), "roles"),
        (json!({"id": "ok", "unknown": 1}), "unknown"),
        (json!({"id": "ok", "created": 5}), "created"),
    ] {
        let r = call(&n, "POST", "/admin/consumers", Some(body)).await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(r.text().contains(want), "{}", r.text());
    }
    let r = call(&n, "GET", "/admin/consumers", None).await;
    assert_eq!(r.json()["consumers"], json!([]));

    let req = Request::builder()
        .method("POST")
        .uri("/admin/consumers")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new("{not json".into()))
        .unwrap();
    assert_eq!(send(n.admin.addr(), req).await.status, 400);
    assert_eq!(
        call(&n, "POST", "/admin/consumers/nobody/keys", None)
            .await
            .status,
        404
    );
    let r = call(&n, "POST", "/admin/consumers", Some(json!({"id": "ok"}))).await;
    assert_eq!(r.status, 201);
    let r = call(
        &n,
        "POST",
        "/admin/consumers/ok/keys",
        Some(json!({"expires_in": "soon"})),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        call(&n, "GET", "/admin/consumers/ok/keys", None)
            .await
            .json()["keys"],
        json!([])
    );

    // No token, no store access.
    let req = Request::builder()
        .method("POST")
        .uri("/admin/consumers/ok/keys")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(n.admin.addr(), req).await.status, 401);
}

#[tokio::test]
async fn a_gateway_without_a_store_says_so() {
    let up = TestUpstream::echo();
    let d = dir();
    let yaml =
        config(&up, "").replace("state_dir: state\nconsumer_store: { kind: embedded }\n", "");
    let n = node(&d, &yaml);
    let r = call(&n, "GET", "/admin/consumers", None).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no consumer_store"));
}
