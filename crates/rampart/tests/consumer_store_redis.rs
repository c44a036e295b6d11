//! The consumer store shared through a real `redis-server`: several gateways, a change
//! made through one node's admin API reaching every other node through the change feed
//! within 2 s, a node started later loading the whole store, and Redis going away
//! changing nothing until it is back.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::redis::RedisServer;
use support::store::*;
use support::*;

/// How long a change may take to reach another node (the bound).
const PROPAGATION: Duration = Duration::from_secs(2);

/// A gateway on the store config with the store in `redis` instead of a file.
fn node(up: &TestUpstream, redis: &RedisServer) -> Node {
    let yaml = config(up, "").replace(
        "state_dir: state\nconsumer_store: { kind: embedded }\n",
        &format!(
            "redis: {{ url: \"{}\", timeout: 500ms }}\nconsumer_store: {{ kind: redis, prefix: t }}\n",
            redis.url()
        ),
    );
    assert!(yaml.contains("kind: redis"));
    node_owning(&yaml)
}

async fn status_with(n: &Node, path: &str, key: &str) -> u16 {
    with_key(n, path, key).await.status.as_u16()
}

/// Waits until `path` with `key` answers `want` on `n`; returns how long it took.
async fn until_status(n: &Node, path: &str, key: &str, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = status_with(n, path, key).await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} still answers {got}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_issued_on_one_node_works_on_another_and_its_revocation_reaches_every_node_within_2s()
{
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let (a, b) = (node(&up, &redis), node(&up, &redis));
    let (key, id) = consumer_with_key(&a, "partner", json!({})).await;
    assert_eq!(
        status_with(&a, "/v1/x", &key).await,
        200,
        "at once on the issuing node"
    );
    until_status(&b, "/v1/x", &key, 200, PROPAGATION).await;
    assert_eq!(up.last().headers["x-consumer-id"], "partner");

    let r = call(&b, "GET", "/admin/consumers/partner/keys", None).await;
    assert_eq!(
        r.json()["keys"][0]["id"],
        id.as_str(),
        "the store is shared"
    );

    let r = call(&a, "DELETE", &format!("/admin/keys/{id}"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(status_with(&a, "/v1/x", &key).await, 401);
    let took = until_status(&b, "/v1/x", &key, 401, PROPAGATION).await;
    eprintln!("revocation reached the second node in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_change_on_one_node_reaches_the_others_keys() {
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let (a, b) = (node(&up, &redis), node(&up, &redis));
    let (key, _) = consumer_with_key(&a, "climber", json!({"roles": ["bronze"]})).await;
    until_status(&b, "/gold/x", &key, 403, PROPAGATION).await;
    let r = call(
        &b,
        "PUT",
        "/admin/consumers/climber",
        Some(json!({"roles": ["gold"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    until_status(&a, "/gold/x", &key, 200, PROPAGATION).await;

    let r = call(&a, "DELETE", "/admin/consumers/climber", None).await;
    assert_eq!(r.status, 200);
    until_status(&b, "/v1/x", &key, 401, PROPAGATION).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_loads_the_whole_store_before_serving() {
    let redis = RedisServer::start();
    let up = TestUpstream::echo();
    let a = node(&up, &redis);
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(
            consumer_with_key(&a, &format!("c{i:02}"), json!({}))
                .await
                .0,
        );
    }
    let late = node(&up, &redis);
    for k in &keys {
        assert_eq!(status_with(&late, "/v1/x", k).await, 200);
    }
    let r = call(&late, "GET", "/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["consumer_store"]["keys"], 20);
    let r = call(&late, "GET", "/admin/consumers?limit=5&after=c07", None).await;
    let ids: Vec<String> = r.json()["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["c08", "c09", "c10", "c11", "c12"]);
    assert_eq!(r.json()["next"], "c12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_changes_nothing_until_it_is_back() {
    let mut redis = RedisServer::start();
    let up = TestUpstream::echo();
    let (a, b) = (node(&up, &redis), node(&up, &redis));
    let (key, _) = consumer_with_key(&a, "steady", json!({})).await;
    until_status(&b, "/v1/x", &key, 200, PROPAGATION).await;

    redis.kill();
    // Requests keep being served from the last index, on both nodes.
    for n in [&a, &b] {
        assert_eq!(status_with(n, "/v1/x", &key).await, 200);
    }
    let r = call(&a, "POST", "/admin/consumers", Some(json!({"id": "new"}))).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let started = Instant::now();
    loop {
        let r = call(&b, "GET", "/readyz", None).await;
        if r.json()["consumer_store"]["up"] == false {
            assert_eq!(r.status, 200, "a node with a loaded index stays ready");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = call(&b, "GET", "/metrics", None).await.text();
    assert!(
        m.contains("rampart_consumer_store_up{kind=\"redis\"} 0"),
        "{m}"
    );
    assert_eq!(status_with(&b, "/v1/x", &key).await, 200);

    // Back, empty (a fresh Redis): the nodes read it whole again and follow it.
    redis.restart();
    let (fresh, _) = {
        let started = Instant::now();
        loop {
            let r = call(&a, "POST", "/admin/consumers", Some(json!({"id": "after"}))).await;
            if r.status == 201 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{}", r.text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = call(&a, "POST", "/admin/consumers/after/keys", None).await;
        assert_eq!(r.status, 201, "{}", r.text());
        (r.json()["key"].as_str().unwrap().to_string(), ())
    };
    until_status(&b, "/v1/x", &fresh, 200, Duration::from_secs(10)).await;
    // The store is the truth: a key it no longer holds is refused.
    until_status(&b, "/v1/x", &key, 401, Duration::from_secs(10)).await;
    let r = call(&b, "GET", "/readyz", None).await;
    assert_eq!(r.json()["consumer_store"]["up"], true);
}
