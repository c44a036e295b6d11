//! Following the Redis store: each node reads the whole store once, then the change
//! stream from where that read stood, with a blocking read (a change arrives within
//! milliseconds). A failed read marks the store down and is retried with a growing pause;
//! the index keeps serving what it last had, and the next successful contact reads the
//! whole store again (the stream may have been trimmed meanwhile). Every `resync` the
//! whole store is read again as a backstop.

use std::sync::Arc;
use std::time::Duration;

use rampart_identity::live_keys::{Change, LiveKeys};

use crate::redis_backend::{unavailable, RedisBackend};
use crate::service::Health;
use crate::StoreError;

/// How long one blocking read waits for a change before it asks again.
const BLOCK: Duration = Duration::from_millis(1000);

/// Entries read at once.
const BATCH: usize = 1000;

/// Follows the store until `stop` changes.
pub(crate) async fn follow(
    backend: Arc<RedisBackend>,
    live: Arc<LiveKeys>,
    health: Arc<Health>,
    resync: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut at: Option<String> = None;
    let mut pause = Duration::from_millis(100);
    let mut next_resync = tokio::time::Instant::now() + resync;
    // Its own connection: a blocking read holds it.
    let mut conn = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if at.is_none() || tokio::time::Instant::now() >= next_resync {
            match load(&backend, &live).await {
                Ok(pos) => {
                    at = Some(pos);
                    health.set_up();
                    pause = Duration::from_millis(100);
                    next_resync = tokio::time::Instant::now() + resync;
                }
                Err(e) => {
                    health.set_down(&e.to_string());
                    tracing::warn!(error = %e, "consumer store: cannot read the store; still serving the last index");
                    wait(&mut stop, pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        if conn.is_none() {
            match backend.client.connect(BLOCK + Duration::from_secs(4)).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    health.set_down(&unavailable(e).to_string());
                    at = None;
                    wait(&mut stop, pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let Some(pos) = at.clone() else { continue };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&backend.names.feed)
            .arg(&pos);
        let read = cmd.query_async::<Option<Vec<(String, Vec<(String, Vec<String>)>)>>>(c);
        let r = tokio::select! {
            r = read => r,
            _ = stop.changed() => return,
        };
        match r {
            Ok(streams) => {
                health.set_up();
                let mut reload = false;
                for (_, entries) in streams.unwrap_or_default() {
                    for (id, fields) in entries {
                        if fields.first().map(String::as_str) == Some("op")
                            && fields.get(1).map(String::as_str) == Some("resync")
                        {
                            reload = true;
                        } else if let Some(change) = change_of(&fields) {
                            live.apply(change);
                        }
                        at = Some(id);
                    }
                }
                live.touch();
                if reload {
                    // After a bulk import: the whole store, read again.
                    at = None;
                }
            }
            Err(e) => {
                health.set_down(&unavailable(e).to_string());
                tracing::warn!("consumer store: the change feed failed; still serving the last index, reading the whole store when Redis answers again");
                conn = None;
                at = None;
                wait(&mut stop, pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Reads the whole store into the index; returns the feed position it reflects.
async fn load(backend: &RedisBackend, live: &LiveKeys) -> Result<String, StoreError> {
    let started = std::time::Instant::now();
    let mut loader = live.loader();
    let (at, nc, nk) = backend.load_into(&mut loader).await?;
    let skipped = loader.finish();
    crate::log_loaded("redis", (nc, nk), skipped, started);
    Ok(at)
}

async fn wait(stop: &mut tokio::sync::watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// The change a feed entry records (`op`, `id`, `v` as flat field/value pairs).
fn change_of(fields: &[String]) -> Option<Change> {
    let get = |name: &str| {
        fields
            .chunks(2)
            .find(|p| p.len() == 2 && p[0] == name)
            .map(|p| p[1].as_str())
    };
    let id = get("id")?.to_string();
    let v = get("v");
    let change = match get("op")? {
        "put_consumer" => Change::PutConsumer(serde_json::from_str(v?).ok()?),
        "del_consumer" => Change::DeleteConsumer(id),
        "put_key" => Change::PutKey(serde_json::from_str(v?).ok()?),
        "del_key" => Change::DeleteKey(serde_json::from_str(v?).ok()?),
        other => {
            tracing::warn!(
                op = other,
                "consumer store: an unknown change in the feed is ignored"
            );
            return None;
        }
    };
    Some(change)
}
