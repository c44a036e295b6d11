//! `rampart consumers`: the consumer store from the command line. Every subcommand but
//! `import` is one call to a running gateway's admin API (`--admin`, token from
//! `RAMPART_ADMIN_TOKEN`), so it is authorised and audited there like any other call.
//! `import` writes straight into the store a config names (a migration, a load test).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use http::Method;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum ConsumersCommand {
    /// List consumers in id order (100 at a time; `--after` the last id for more).
    List {
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one consumer.
    Show { id: String },
    /// Create a consumer.
    Create {
        id: String,
        #[command(flatten)]
        profile: Profile,
    },
    /// Replace a consumer's plan, roles, scopes and attributes (its keys stay).
    Update {
        id: String,
        #[command(flatten)]
        profile: Profile,
    },
    /// Delete a consumer and revoke every key it has.
    Delete { id: String },
    /// List a consumer's keys (ids and dates; never a key).
    Keys { id: String },
    /// Issue a key to a consumer: printed once, stored only as its peppered hash.
    Issue {
        id: String,
        /// How long the key is valid, e.g. 90d (default: until revoked).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke a key, on every node.
    Revoke { key_id: String },
    /// Issue a replacement for a key; the old one keeps working for `--overlap`.
    Rotate {
        key_id: String,
        #[arg(long, default_value = "24h")]
        overlap: String,
    },
    /// Write consumers and keys from a JSON-lines file straight into the store the config
    /// names: `{"consumer": {...}}` and `{"key": {"id", "consumer", "hash" | "key",
    /// "expires"?}}` lines (a plain `key` is hashed with the config's pepper and never
    /// stored). For the embedded store, the gateway using the file must be stopped.
    Import {
        /// The config whose `consumer_store` (and pepper) to use.
        #[arg(long, short)]
        config: PathBuf,
        /// The JSON-lines file.
        file: PathBuf,
    },
}

/// A consumer's profile, as flags.
#[derive(clap::Args)]
pub struct Profile {
    #[arg(long)]
    plan: Option<String>,
    /// A role (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// A scope (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// An attribute, `name=value` (repeatable; the value is JSON when it parses, else
    /// a string).
    #[arg(long = "attr", value_parser = parse_attr)]
    attributes: Vec<(String, Value)>,
}

fn parse_attr(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s.split_once('=').ok_or("expected name=value")?;
    let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), v))
}

impl Profile {
    fn json(&self, id: &str) -> Value {
        let attrs: serde_json::Map<String, Value> = self.attributes.iter().cloned().collect();
        json!({"id": id, "plan": self.plan, "roles": self.roles, "scopes": self.scopes, "attributes": attrs})
    }
}

/// Runs a subcommand; prints the admin API's answer as JSON. Errors name the call.
pub fn run(command: ConsumersCommand, admin: Option<&str>) -> anyhow::Result<()> {
    if let ConsumersCommand::Import { config, file } = &command {
        return import(config, file);
    }
    let admin =
        admin.context("--admin is required (the admin API's URL, e.g. http://127.0.0.1:9901)")?;
    let token = std::env::var("RAMPART_ADMIN_TOKEN").ok();
    // An id as one path segment: the characters ids may hold pass as they are.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'@');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    let (method, path, body) = match &command {
        ConsumersCommand::List { after, limit } => {
            let mut p = format!("/admin/consumers?limit={limit}");
            if let Some(a) = after {
                p.push_str(&format!("&after={}", enc(a)));
            }
            (Method::GET, p, None)
        }
        ConsumersCommand::Show { id } => {
            (Method::GET, format!("/admin/consumers/{}", enc(id)), None)
        }
        ConsumersCommand::Create { id, profile } => (
            Method::POST,
            "/admin/consumers".to_string(),
            Some(profile.json(id)),
        ),
        ConsumersCommand::Update { id, profile } => (
            Method::PUT,
            format!("/admin/consumers/{}", enc(id)),
            Some(profile.json(id)),
        ),
        ConsumersCommand::Delete { id } => (
            Method::DELETE,
            format!("/admin/consumers/{}", enc(id)),
            None,
        ),
        ConsumersCommand::Keys { id } => (
            Method::GET,
            format!("/admin/consumers/{}/keys", enc(id)),
            None,
        ),
        ConsumersCommand::Issue { id, expires_in } => (
            Method::POST,
            format!("/admin/consumers/{}/keys", enc(id)),
            Some(json!({"expires_in": expires_in})),
        ),
        ConsumersCommand::Revoke { key_id } => {
            (Method::DELETE, format!("/admin/keys/{}", enc(key_id)), None)
        }
        ConsumersCommand::Rotate { key_id, overlap } => (
            Method::POST,
            format!("/admin/keys/{}/rotate", enc(key_id)),
            Some(json!({"overlap": overlap})),
        ),
        ConsumersCommand::Import { .. } => unreachable!("handled above"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, answer) = rt.block_on(crate::admin_client::call(
        admin,
        token.as_deref(),
        method.clone(),
        &path,
        body.as_ref(),
    ))?;
    if !status.is_success() {
        let detail = answer["detail"].as_str().unwrap_or("");
        bail!("{method} {path}: {status}: {detail}");
    }
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// `rampart consumers import`.
fn import(config: &Path, file: &Path) -> anyhow::Result<()> {
    let spec = rampart_config::load_file(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = crate::config_dir(config);
    if spec.consumer_store.is_none() {
        bail!("{} has no consumer_store", config.display());
    }
    let pepper = match &spec.identity.api_keys.pepper {
        Some(r) => r
            .resolve(base)
            .map_err(|e| anyhow::anyhow!("identity.api_keys.pepper: {e}"))?,
        None => bail!("identity.api_keys.pepper is not set"),
    };
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let (mut consumers, mut keys) = (Vec::new(), Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", file.display(), n + 1);
        let mut v: Value = serde_json::from_str(&line).with_context(at)?;
        if let Some(c) = v.get_mut("consumer") {
            let mut c: rampart_config::ConsumerRecord =
                serde_json::from_value(c.take()).with_context(at)?;
            rampart_config::check_consumer_id(&c.id)
                .map_err(|e| anyhow::anyhow!("{}: id: {e}", at()))?;
            c.created = c.created.max(now);
            c.updated = c.created;
            consumers.push(c);
        } else if let Some(k) = v.get_mut("key").and_then(Value::as_object_mut) {
            // A plain key (exported from another gateway) is hashed here and dropped.
            if let Some(plain) = k.remove("key") {
                let plain = plain
                    .as_str()
                    .with_context(|| format!("{}: key must be a string", at()))?;
                let h = rampart_identity::api_key::hash_key(
                    pepper.expose().as_bytes(),
                    plain.as_bytes(),
                );
                let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
                k.insert("hash".into(), Value::String(format!("hmac-sha256:{hex}")));
            }
            k.entry("created").or_insert(json!(now));
            let k: rampart_config::StoredKeyRecord =
                serde_json::from_value(Value::Object(k.clone())).with_context(at)?;
            if rampart_config::parse_key_hash(&k.hash).is_none() {
                bail!("{}: hash: must be hmac-sha256:<64 hex digits>", at());
            }
            keys.push(k);
        } else {
            bail!(
                "{}: expected {{\"consumer\": ...}} or {{\"key\": ...}}",
                at()
            );
        }
    }
    let started = std::time::Instant::now();
    let store = rampart_consumers::ConsumerStore::open(
        &spec,
        base,
        std::sync::Arc::new(rampart_identity::live_keys::LiveKeys::new()),
    )
    .map_err(|e| anyhow::anyhow!("consumer_store: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(store.import(&consumers, &keys))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "imported {} consumers and {} keys in {:.1}s",
        consumers.len(),
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
