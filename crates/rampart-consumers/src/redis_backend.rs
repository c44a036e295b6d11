//! The shared store: consumers and keys in Redis, every change also appended to a Redis
//! stream that each node follows (`feed.rs`), so a key revoked through any node's admin
//! API is refused by every node within the time it takes to read the stream (a blocking
//! read: milliseconds).
//!
//! Layout, every name under one hash tag (`{prefix}`) so that the scripts' keys sit in one
//! slot and a Redis Cluster works as well as a single node:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:consumers` | hash | consumer id → the record as JSON |
//! | `{p}:consumer_ids` | sorted set (score 0) | consumer ids, for listing in order |
//! | `{p}:keys` | hash | key id → the record as JSON (a peppered hash, never a key) |
//! | `{p}:ckeys:<consumer>` | set | the consumer's key ids |
//! | `{p}:feed` | stream | `op`, `id`, `v` (the record, for puts) per change |
//!
//! Each change is one Lua script: the write and its feed entry happen together or not
//! at all.

use rampart_config::{ConsumerRecord, StoredKeyRecord};
use rampart_redis::{Conn, RedisClient};
use redis::Script;

use rampart_identity::live_keys::Loader;

use crate::StoreError;

/// Feed entries kept (approximately): a node away for longer than this many changes
/// reads the whole store again.
const FEED_LEN: u64 = 100_000;

const PUT_CONSUMER: &str = r"
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if ARGV[3] == 'create' and exists then return 'exists' end
if ARGV[3] == 'update' and not exists then return 'missing' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'put_consumer', 'id', ARGV[1], 'v', ARGV[2])
return 'ok'
";

const DELETE_CONSUMER: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return {'missing'} end
redis.call('ZREM', KEYS[2], ARGV[1])
local out = {'ok'}
for _, k in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local v = redis.call('HGET', KEYS[3], k)
  if v then
    redis.call('HDEL', KEYS[3], k)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', 'op', 'del_key', 'id', k, 'v', v)
    table.insert(out, v)
  end
end
redis.call('DEL', KEYS[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', 'op', 'del_consumer', 'id', ARGV[1])
return out
";

const PUT_KEY: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 'no_consumer' end
local exists = redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1
if ARGV[4] == 'create' and exists then return 'exists' end
if ARGV[4] == 'update' and not exists then return 'missing' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'op', 'put_key', 'id', ARGV[1], 'v', ARGV[3])
return 'ok'
";

const DELETE_KEY: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 'missing' end
if cjson.decode(v)['consumer'] ~= ARGV[2] then return 'moved' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'del_key', 'id', ARGV[1], 'v', v)
return 'ok'
";

/// The key names of one store.
#[derive(Clone)]
pub(crate) struct Names {
    pub consumers: String,
    pub ids: String,
    pub keys: String,
    ckeys: String,
    pub feed: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        let t = format!("{{{prefix}}}");
        Self {
            consumers: format!("{t}:consumers"),
            ids: format!("{t}:consumer_ids"),
            keys: format!("{t}:keys"),
            ckeys: format!("{t}:ckeys:"),
            feed: format!("{t}:feed"),
        }
    }

    fn ckeys(&self, consumer: &str) -> String {
        format!("{}{consumer}", self.ckeys)
    }
}

pub(crate) fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The Redis store's calls (the feed follows it in `feed.rs`).
pub(crate) struct RedisBackend {
    pub client: RedisClient,
    pub names: Names,
    /// The connection for calls (not the feed's, which blocks).
    conn: tokio::sync::OnceCell<Conn>,
    timeout: std::time::Duration,
}

impl RedisBackend {
    pub fn new(client: RedisClient, prefix: &str, timeout: std::time::Duration) -> Self {
        Self {
            client,
            names: Names::new(prefix),
            conn: tokio::sync::OnceCell::new(),
            timeout,
        }
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        let c = self
            .conn
            .get_or_try_init(|| self.client.connect(self.timeout))
            .await
            .map_err(unavailable)?;
        Ok(c.clone())
    }

    /// Reads everything into `load` (consumers first, then keys) in batches; returns the
    /// feed position it reflects (changes after it are read from the feed; one applied
    /// twice changes nothing) and the counts read.
    pub async fn load_into(
        &self,
        load: &mut Loader<'_>,
    ) -> Result<(String, usize, usize), StoreError> {
        let mut c = self.conn().await?;
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(&self.names.feed)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let at = last
            .first()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id.clone());
        let mut consumers = 0;
        hscan(&mut c, &self.names.consumers, |v| {
            load.consumer(decode("consumer", v)?);
            consumers += 1;
            Ok(())
        })
        .await?;
        // A scan may return an entry twice (when the hash grows under it): the loader
        // skips a key whose hash it already holds.
        let mut keys = 0;
        hscan(&mut c, &self.names.keys, |v| {
            load.key(&decode("key", v)?);
            keys += 1;
            Ok(())
        })
        .await?;
        Ok((at, consumers, keys))
    }

    pub async fn get_consumer(&self, id: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        self.hget(&self.names.consumers, "consumer", id).await
    }

    /// One record of a hash.
    async fn hget<T: serde::de::DeserializeOwned>(
        &self,
        hash: &str,
        what: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let mut c = self.conn().await?;
        let v: Option<String> = redis::cmd("HGET")
            .arg(hash)
            .arg(id)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        v.map(|v| decode(what, &v)).transpose()
    }

    /// The records of a hash under `ids`, in that order (missing ones left out).
    async fn hmget<T: serde::de::DeserializeOwned>(
        &self,
        c: &mut Conn,
        hash: &str,
        what: &str,
        ids: &[String],
    ) -> Result<Vec<T>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(hash)
            .arg(ids)
            .query_async(c)
            .await
            .map_err(unavailable)?;
        values
            .into_iter()
            .flatten()
            .map(|v| decode(what, &v))
            .collect()
    }

    pub async fn list_consumers(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConsumerRecord>, StoreError> {
        let mut c = self.conn().await?;
        let from = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let ids: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(&self.names.ids)
            .arg(from)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        self.hmget(&mut c, &self.names.consumers, "consumer", &ids)
            .await
    }

    pub async fn put_consumer(&self, rec: &ConsumerRecord, create: bool) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let r: String = Script::new(PUT_CONSUMER)
            .key(&self.names.consumers)
            .key(&self.names.ids)
            .key(&self.names.feed)
            .arg(&rec.id)
            .arg(encode(rec))
            .arg(if create { "create" } else { "update" })
            .arg(FEED_LEN)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match r.as_str() {
            "ok" => Ok(()),
            "exists" => Err(StoreError::Exists(format!("consumer {:?}", rec.id))),
            _ => Err(StoreError::NotFound(format!("consumer {:?}", rec.id))),
        }
    }

    /// Deletes a consumer and its keys (a feed entry for each key, then the consumer's);
    /// returns the keys.
    pub async fn delete_consumer(&self, id: &str) -> Result<Vec<StoredKeyRecord>, StoreError> {
        let mut c = self.conn().await?;
        let mut r: Vec<String> = Script::new(DELETE_CONSUMER)
            .key(&self.names.consumers)
            .key(&self.names.ids)
            .key(&self.names.keys)
            .key(self.names.ckeys(id))
            .key(&self.names.feed)
            .arg(id)
            .arg(FEED_LEN)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        if r.first().map(String::as_str) != Some("ok") {
            return Err(StoreError::NotFound(format!("consumer {id:?}")));
        }
        r.remove(0);
        r.iter().map(|v| decode("key", v)).collect()
    }

    pub async fn get_key(&self, id: &str) -> Result<Option<StoredKeyRecord>, StoreError> {
        self.hget(&self.names.keys, "key", id).await
    }

    pub async fn list_keys(&self, consumer: &str) -> Result<Vec<StoredKeyRecord>, StoreError> {
        let mut c = self.conn().await?;
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.names.ckeys(consumer))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        ids.sort();
        self.hmget(&mut c, &self.names.keys, "key", &ids).await
    }

    pub async fn put_key(&self, k: &StoredKeyRecord, create: bool) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let r: String = Script::new(PUT_KEY)
            .key(&self.names.consumers)
            .key(&self.names.keys)
            .key(self.names.ckeys(&k.consumer))
            .key(&self.names.feed)
            .arg(&k.id)
            .arg(&k.consumer)
            .arg(encode(k))
            .arg(if create { "create" } else { "update" })
            .arg(FEED_LEN)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match r.as_str() {
            "ok" => Ok(()),
            "exists" => Err(StoreError::Exists(format!("key {:?}", k.id))),
            "no_consumer" => Err(StoreError::NotFound(format!("consumer {:?}", k.consumer))),
            _ => Err(StoreError::NotFound(format!("key {:?}", k.id))),
        }
    }

    pub async fn delete_key(&self, id: &str) -> Result<StoredKeyRecord, StoreError> {
        // The key's consumer names the set it is removed from; the script checks it
        // still is the key's (a key never moves, but the check costs nothing).
        let key = self
            .get_key(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("key {id:?}")))?;
        let mut c = self.conn().await?;
        let r: String = Script::new(DELETE_KEY)
            .key(&self.names.keys)
            .key(self.names.ckeys(&key.consumer))
            .key(&self.names.feed)
            .arg(id)
            .arg(&key.consumer)
            .arg(FEED_LEN)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match r.as_str() {
            "ok" => Ok(key),
            _ => Err(StoreError::NotFound(format!("key {id:?}"))),
        }
    }

    /// Writes many consumers and keys, in batches of one pipeline each, then one feed
    /// entry that makes every node read the whole store again.
    pub async fn import(
        &self,
        consumers: &[ConsumerRecord],
        keys: &[StoredKeyRecord],
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        for chunk in consumers.chunks(1000) {
            let mut p = redis::pipe();
            for r in chunk {
                p.cmd("HSET")
                    .arg(&self.names.consumers)
                    .arg(&r.id)
                    .arg(encode(r))
                    .ignore();
                p.cmd("ZADD")
                    .arg(&self.names.ids)
                    .arg(0)
                    .arg(&r.id)
                    .ignore();
            }
            p.query_async::<()>(&mut c).await.map_err(unavailable)?;
        }
        for chunk in keys.chunks(1000) {
            let mut p = redis::pipe();
            for k in chunk {
                p.cmd("HSET")
                    .arg(&self.names.keys)
                    .arg(&k.id)
                    .arg(encode(k))
                    .ignore();
                p.cmd("SADD")
                    .arg(self.names.ckeys(&k.consumer))
                    .arg(&k.id)
                    .ignore();
            }
            p.query_async::<()>(&mut c).await.map_err(unavailable)?;
        }
        // Tells every node to read the whole store again now.
        redis::cmd("XADD")
            .arg(&self.names.feed)
            .arg("MAXLEN")
            .arg("~")
            .arg(FEED_LEN)
            .arg("*")
            .arg("op")
            .arg("resync")
            .arg("id")
            .arg("-")
            .query_async::<String>(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Every value of a hash, read in batches (never one `HGETALL` that blocks Redis for a
/// million entries), each handed to `each`.
async fn hscan(
    c: &mut Conn,
    key: &str,
    mut each: impl FnMut(&str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut cursor = "0".to_string();
    loop {
        let (next, flat): (String, Vec<String>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(&cursor)
            .arg("COUNT")
            .arg(10_000)
            .query_async(c)
            .await
            .map_err(unavailable)?;
        for v in flat.iter().skip(1).step_by(2) {
            each(v)?;
        }
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}
