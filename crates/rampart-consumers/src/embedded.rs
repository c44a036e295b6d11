//! The embedded store: one redb file on this node (ACID, copy-on-write B-trees, nothing
//! else to run). Every change is one write transaction, committed durably before the
//! admin API answers; the node's key index is changed right after, in the same process.
//! A redb file is opened by one process at a time: one gateway per file.

use std::path::Path;

use rampart_config::{ConsumerRecord, StoredKeyRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use rampart_identity::live_keys::Loader;

use crate::StoreError;

/// Consumer id → the record as JSON.
const CONSUMERS: TableDefinition<&str, &str> = TableDefinition::new("consumers");
/// Key id → the record as JSON.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("keys");
/// `consumer \0 key id` → nothing: a consumer's keys, in order.
const BY_CONSUMER: TableDefinition<&str, u8> = TableDefinition::new("keys_by_consumer");

pub struct Embedded {
    db: Database,
}

fn io(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(e.into().to_string())
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    // Records are plain data; serialising them cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn link(consumer: &str, key: &str) -> String {
    format!("{consumer}\0{key}")
}

impl Embedded {
    /// Opens (or creates) the store's file, and its directory.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {}", dir.display(), e.kind()))?;
        }
        // The index holds what requests need; the file is read at start and by admin
        // calls, so redb's page cache stays small (its default is 1 GiB).
        let db = Database::builder()
            .set_cache_size(4 << 20)
            .create(path)
            .map_err(|e| format!("cannot open the consumer store {}: {e}", path.display()))?;
        // Create the tables, so a fresh file reads as empty rather than failing.
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        {
            tx.open_table(CONSUMERS).map_err(|e| e.to_string())?;
            tx.open_table(KEYS).map_err(|e| e.to_string())?;
            tx.open_table(BY_CONSUMER).map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(Self { db })
    }

    /// Reads everything into `load` (consumers first, then keys), one record at a time.
    pub fn load_into(&self, load: &mut Loader<'_>) -> Result<(usize, usize), StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let mut n = (0, 0);
        for row in tx.open_table(CONSUMERS).map_err(io)?.iter().map_err(io)? {
            let (_, v) = row.map_err(io)?;
            load.consumer(decode("consumer", v.value())?);
            n.0 += 1;
        }
        for row in tx.open_table(KEYS).map_err(io)?.iter().map_err(io)? {
            let (_, v) = row.map_err(io)?;
            load.key(&decode("key", v.value())?);
            n.1 += 1;
        }
        Ok(n)
    }

    pub fn get_consumer(&self, id: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(CONSUMERS).map_err(io)?;
        match t.get(id).map_err(io)? {
            Some(v) => Ok(Some(decode("consumer", v.value())?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` consumers with ids after `after`, in id order.
    pub fn list_consumers(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConsumerRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(CONSUMERS).map_err(io)?;
        let rows = match after {
            Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => t.iter(),
        }
        .map_err(io)?;
        let mut out = Vec::new();
        for row in rows.take(limit) {
            let (_, v) = row.map_err(io)?;
            out.push(decode("consumer", v.value())?);
        }
        Ok(out)
    }

    /// Writes a consumer: `create` refuses an id that exists, otherwise the id must exist.
    pub fn put_consumer(&self, c: &ConsumerRecord, create: bool) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut t = tx.open_table(CONSUMERS).map_err(io)?;
            let exists = t.get(c.id.as_str()).map_err(io)?.is_some();
            match (create, exists) {
                (true, true) => return Err(StoreError::Exists(format!("consumer {:?}", c.id))),
                (false, false) => return Err(StoreError::NotFound(format!("consumer {:?}", c.id))),
                _ => {}
            }
            t.insert(c.id.as_str(), encode(c).as_str()).map_err(io)?;
        }
        tx.commit().map_err(io)
    }

    /// Deletes a consumer and its keys; returns the keys.
    pub fn delete_consumer(&self, id: &str) -> Result<Vec<StoredKeyRecord>, StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        let mut removed = Vec::new();
        let mut records = Vec::new();
        {
            let mut t = tx.open_table(CONSUMERS).map_err(io)?;
            if t.remove(id).map_err(io)?.is_none() {
                return Err(StoreError::NotFound(format!("consumer {id:?}")));
            }
            let mut links = tx.open_table(BY_CONSUMER).map_err(io)?;
            let from = link(id, "");
            let to = format!("{id}\u{1}");
            for row in links
                .range::<&str>(from.as_str()..to.as_str())
                .map_err(io)?
            {
                let (k, _) = row.map_err(io)?;
                if let Some((_, key)) = k.value().split_once('\0') {
                    removed.push(key.to_string());
                }
            }
            let mut keys = tx.open_table(KEYS).map_err(io)?;
            for key in &removed {
                if let Some(v) = keys.remove(key.as_str()).map_err(io)? {
                    records.push(decode("key", v.value())?);
                }
                links.remove(link(id, key).as_str()).map_err(io)?;
            }
        }
        tx.commit().map_err(io)?;
        Ok(records)
    }

    pub fn get_key(&self, id: &str) -> Result<Option<StoredKeyRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(KEYS).map_err(io)?;
        match t.get(id).map_err(io)? {
            Some(v) => Ok(Some(decode("key", v.value())?)),
            None => Ok(None),
        }
    }

    /// A consumer's keys, in id order.
    pub fn list_keys(&self, consumer: &str) -> Result<Vec<StoredKeyRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let links = tx.open_table(BY_CONSUMER).map_err(io)?;
        let keys = tx.open_table(KEYS).map_err(io)?;
        let from = link(consumer, "");
        let to = format!("{consumer}\u{1}");
        let mut out = Vec::new();
        for row in links
            .range::<&str>(from.as_str()..to.as_str())
            .map_err(io)?
        {
            let (k, _) = row.map_err(io)?;
            let Some((_, id)) = k.value().split_once('\0') else {
                continue;
            };
            if let Some(v) = keys.get(id).map_err(io)? {
                out.push(decode("key", v.value())?);
            }
        }
        Ok(out)
    }

    /// Writes a key: `create` refuses an id that exists (the caller draws another),
    /// otherwise the id must exist. Its consumer must exist either way.
    pub fn put_key(&self, k: &StoredKeyRecord, create: bool) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            if tx
                .open_table(CONSUMERS)
                .map_err(io)?
                .get(k.consumer.as_str())
                .map_err(io)?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("consumer {:?}", k.consumer)));
            }
            let mut t = tx.open_table(KEYS).map_err(io)?;
            let exists = t.get(k.id.as_str()).map_err(io)?.is_some();
            match (create, exists) {
                (true, true) => return Err(StoreError::Exists(format!("key {:?}", k.id))),
                (false, false) => return Err(StoreError::NotFound(format!("key {:?}", k.id))),
                _ => {}
            }
            t.insert(k.id.as_str(), encode(k).as_str()).map_err(io)?;
            tx.open_table(BY_CONSUMER)
                .map_err(io)?
                .insert(link(&k.consumer, &k.id).as_str(), 0)
                .map_err(io)?;
        }
        tx.commit().map_err(io)
    }

    /// Deletes a key; returns it.
    pub fn delete_key(&self, id: &str) -> Result<StoredKeyRecord, StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        let key: StoredKeyRecord;
        {
            let mut t = tx.open_table(KEYS).map_err(io)?;
            let Some(v) = t.remove(id).map_err(io)? else {
                return Err(StoreError::NotFound(format!("key {id:?}")));
            };
            key = decode("key", v.value())?;
            drop(v);
            tx.open_table(BY_CONSUMER)
                .map_err(io)?
                .remove(link(&key.consumer, id).as_str())
                .map_err(io)?;
        }
        tx.commit().map_err(io)?;
        Ok(key)
    }

    /// Writes many consumers and keys in one transaction (bulk import, benchmarks).
    pub fn import(
        &self,
        consumers: &[ConsumerRecord],
        keys: &[StoredKeyRecord],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut t = tx.open_table(CONSUMERS).map_err(io)?;
            for c in consumers {
                t.insert(c.id.as_str(), encode(c).as_str()).map_err(io)?;
            }
            let mut t = tx.open_table(KEYS).map_err(io)?;
            let mut links = tx.open_table(BY_CONSUMER).map_err(io)?;
            for k in keys {
                t.insert(k.id.as_str(), encode(k).as_str()).map_err(io)?;
                links
                    .insert(link(&k.consumer, &k.id).as_str(), 0)
                    .map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }
}
