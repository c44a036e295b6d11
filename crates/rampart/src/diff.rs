//! `rampart diff`: what would change if this file were loaded into a running gateway.
//!
//! Both sides are compared as the effective config (every default filled in), so a file
//! that spells out defaults, or lists things in another order where order means nothing
//! (hosts, methods, targets, listeners and routes by name), shows no drift. Secret fields
//! are compared by reference (`{env: NAME}` / `{file: PATH}`), never by value: the admin
//! API does not reveal values.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::Value;

/// Keys whose lists are sets (order carries no meaning).
const SET_KEYS: &[&str] = &[
    "hosts",
    "methods",
    "trusted_proxies",
    "on_status",
    "server_names",
];
/// Lists of objects keyed by a field: compared as maps.
const KEYED_LISTS: &[(&str, &str)] = &[
    ("listeners", "name"),
    ("routes", "name"),
    ("targets", "url"),
    ("headers", "name"),
];

/// Normalises a config document for comparison.
pub fn normalise(v: &Value, key: Option<&str>) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalise(v, Some(k))))
                .collect(),
        ),
        Value::Array(items) => {
            if let Some((_, field)) = KEYED_LISTS.iter().find(|(k, _)| Some(*k) == key) {
                let mut keyed = serde_json::Map::new();
                for (i, item) in items.iter().enumerate() {
                    let name = item
                        .get(*field)
                        .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_string))
                        .unwrap_or_else(|| format!("#{i}"));
                    keyed.insert(name, normalise(item, None));
                }
                Value::Object(keyed)
            } else if key.is_some_and(|k| SET_KEYS.contains(&k)) {
                let mut items: Vec<Value> = items.iter().map(|i| normalise(i, None)).collect();
                items.sort_by_key(|a| a.to_string());
                items.dedup();
                Value::Array(items)
            } else {
                Value::Array(items.iter().map(|i| normalise(i, None)).collect())
            }
        }
        other => other.clone(),
    }
}

/// Every difference between `running` and `file`, as `path: description` lines.
pub fn differences(running: &Value, file: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", running, file, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeMap<&String, ()> = x.keys().chain(y.keys()).map(|k| (k, ())).collect();
            for k in keys.keys() {
                let p = if path.is_empty() {
                    (*k).clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(*k), y.get(*k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(_), None) => out.push(format!("{p}: removed")),
                    (None, Some(_)) => out.push(format!("{p}: added")),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {a} -> {b}")),
    }
}

/// What changed from `old` to `new` (two configs as JSON), for the audit trail: each changed place named to
/// three levels (`routes.orders.rate_limit: changed`, `upstreams.billing: added`), no
/// values, at most `max` lines (then how many more).
pub fn summary(old: &Value, new: &Value, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in differences(&normalise(old, None), &normalise(new, None)) {
        let (path, what) = line.split_once(": ").unwrap_or((line.as_str(), ""));
        let kind = match what {
            "added" | "removed" => what,
            _ => "changed",
        };
        let short: Vec<&str> = path.splitn(4, '.').take(3).collect();
        let entry = if short.len() < path.split('.').count() {
            format!("{}: changed", short.join("."))
        } else {
            format!("{path}: {kind}")
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    if out.len() > max {
        let more = out.len() - max;
        out.truncate(max);
        out.push(format!("and {more} more"));
    }
    out
}

/// Fetches the running gateway's effective config from its admin API.
async fn fetch_running(admin: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let (status, doc) =
        crate::admin_client::call(admin, token, http::Method::GET, "/config", None).await?;
    if !status.is_success() {
        bail!("admin API answered {status} for /config");
    }
    doc.get("config")
        .cloned()
        .context("admin API response has no config")
}

/// Runs the comparison: Ok(true) when there is no drift.
pub fn run(file: &Path, admin: &str, token: Option<&str>) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let spec = rampart_config::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: invalid config:\n{e}", file.display()))?;
    let mut local = serde_json::to_value(&spec)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut running = rt.block_on(fetch_running(admin, token))?;
    // Secrets are compared by fingerprint when this machine can read them too; otherwise
    // by reference only.
    if let Some(secret) = spec.admin.as_ref().and_then(|a| a.token.as_ref()) {
        let base = crate::config_dir(file);
        match secret.resolve(base) {
            Ok(value) => {
                if let Some(obj) = local
                    .pointer_mut("/admin/token")
                    .and_then(|t| t.as_object_mut())
                {
                    obj.insert(
                        "fingerprint".into(),
                        crate::secret_fingerprint(value.expose()).into(),
                    );
                }
            }
            Err(reason) => {
                println!("note: admin.token compared by reference only ({reason})");
                if let Some(obj) = running
                    .pointer_mut("/admin/token")
                    .and_then(|t| t.as_object_mut())
                {
                    obj.remove("fingerprint");
                }
            }
        }
    }
    let diffs = differences(&normalise(&running, None), &normalise(&local, None));
    if diffs.is_empty() {
        println!(
            "no drift: {} matches the running configuration",
            file.display()
        );
        Ok(true)
    } else {
        println!(
            "{} difference(s) between the running configuration and {}:",
            diffs.len(),
            file.display()
        );
        for d in &diffs {
            println!("  {d}");
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_of_sets_and_keyed_lists_does_not_matter() {
        let a = json!({"routes": [{"name": "a", "match": {"methods": ["GET", "POST"]}}, {"name": "b"}]});
        let b = json!({"routes": [{"name": "b"}, {"name": "a", "match": {"methods": ["POST", "GET"]}}]});
        assert!(differences(&normalise(&a, None), &normalise(&b, None)).is_empty());
    }

    #[test]
    fn names_what_changed() {
        let a = json!({"routes": [{"name": "a", "upstream": "x"}], "upstreams": {"x": {}}});
        let b = json!({"routes": [{"name": "a", "upstream": "y"}], "upstreams": {"y": {}}});
        let d = differences(&normalise(&a, None), &normalise(&b, None));
        assert_eq!(
            d,
            vec![
                "routes.a.upstream: \"x\" -> \"y\"",
                "upstreams.x: removed",
                "upstreams.y: added"
            ]
        );
    }
}
