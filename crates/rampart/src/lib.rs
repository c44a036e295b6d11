//! Rampart as a library: load a config into a plan and run a gateway from it. The binary
//! (`main.rs`) is a thin CLI over this; integration tests use it directly.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_client;
pub mod audit_cli;
pub mod backup;
pub mod certs;
pub mod consumers_cli;
pub mod demo;
pub mod diff;
pub mod history;
pub mod history_cli;
pub mod local_server;
pub mod openapi_import;
pub mod policy_test;
pub mod posture_cli;
pub mod reload;

use std::path::Path;
use std::sync::Arc;

pub use rampart_config::{ConfigError, ConfigErrors};
pub use rampart_core::StateStore;
pub use rampart_proxy::plan::dir_of as config_dir;
pub use rampart_proxy::{Gateway, Plan};

pub use rampart_proxy::status::secret_fingerprint;

/// A feature's compile step: its filters for each route (by index), tagged with their
/// phase. Each feature crate exposes one (`rampart_identity::compile`, …).
pub type Feature = fn(
    &rampart_config::Spec,
    &Path,
    &StateStore,
) -> Result<rampart_core::FeaturePlan, Vec<ConfigError>>;

/// The features every gateway runs. Their order here only breaks ties between filters
/// of the same phase; the chain order itself comes from each filter's `Phase`.
pub const FEATURES: &[Feature] = &[
    rampart_observe::audit_trail::compile,
    rampart_inspect::compile,
    // Before identity: opens and loads the consumer store the identity filters read.
    rampart_consumers::compile,
    rampart_identity::compile,
    rampart_authz::compile,
    rampart_limits::compile,
    // After the audit trail: flags are written to it.
    rampart_monitor::compile,
    rampart_transform::compile,
    rampart_headers::compile,
    rampart_posture::compile,
];

/// Parses, validates and compiles YAML text against a fresh state store (a new gateway,
/// or `validate`). Relative file paths in it are read from `base`.
pub fn compile_str(yaml: &str, base: &Path) -> Result<Plan, ConfigErrors> {
    compile_str_with(yaml, base, &StateStore::new())
}

/// Like [`compile_str`], against a running gateway's state ([`Gateway::state`]), so
/// reloading the result keeps limits, counters and key caches.
pub fn compile_str_with(
    yaml: &str,
    base: &Path,
    state: &Arc<StateStore>,
) -> Result<Plan, ConfigErrors> {
    let spec = rampart_config::parse(yaml)?;
    compile_spec(Arc::new(spec), base, state, FEATURES)
}

/// Compiles a validated spec: the data-plane plan, then every feature's filters, each
/// route's chain sorted by phase.
pub fn compile_spec(
    spec: Arc<rampart_config::Spec>,
    base: &Path,
    state: &Arc<StateStore>,
    features: &[Feature],
) -> Result<Plan, ConfigErrors> {
    let mut errors = Vec::new();
    let plan = Plan::compile(&spec, base, state).map_err(|e| errors.extend(e.0));
    let mut compiled = Vec::new();
    for feature in features {
        match feature(&spec, base, state) {
            Ok(f) => compiled.push(f),
            Err(e) => errors.extend(e),
        }
    }
    match plan {
        Ok(mut plan) if errors.is_empty() => {
            plan.attach(compiled)?;
            Ok(plan)
        }
        _ => Err(ConfigErrors(errors)),
    }
}

/// Parses, validates and compiles a config file (the `validate` and first `run` path).
pub fn compile_file(path: &Path) -> Result<Plan, ConfigErrors> {
    compile_file_with(path, &StateStore::new())
}

/// Checks a config file as [`compile_file`] does, without opening what a running
/// gateway may hold (the consumer store, the audit trail): `rampart validate`.
pub fn validate_file(path: &Path) -> Result<Plan, ConfigErrors> {
    compile_file_with(path, &StateStore::dry())
}

/// Like [`compile_file`], against a running gateway's state (the reload path).
pub fn compile_file_with(path: &Path, state: &Arc<StateStore>) -> Result<Plan, ConfigErrors> {
    compile_text(&read_config(path)?, path, state)
}

/// Reads a config file's text.
pub fn read_config(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )
        .into()
    })
}

/// Compiles config text read from `source` (relative paths in it are read from its
/// directory); the plan remembers both for the config history.
pub fn compile_text(
    text: &str,
    source: &Path,
    state: &Arc<StateStore>,
) -> Result<Plan, ConfigErrors> {
    let origin = rampart_proxy::ConfigOrigin {
        version: rampart_observe::config_history::version_id(text),
        source: source.to_path_buf(),
    };
    let spec = rampart_config::parse(text)?;
    let mut plan = compile_spec(Arc::new(spec), origin.base(), state, FEATURES)?;
    plan.origin = Some(origin);
    Ok(plan)
}

/// Records a config load, reload, rollback or fallback in the audit trail (when the
/// running config has one): its fingerprint and version when it went live, the number
/// of problems when it did not.
pub fn record_config(gateway: &Gateway, action: &str, outcome: Result<(), usize>) {
    record_config_change(gateway, action, outcome, None);
}

/// Like [`record_config`], with a summary of what changed from `previous` (the config
/// that was live before) when there was one.
pub fn record_config_change(
    gateway: &Gateway,
    action: &str,
    outcome: Result<(), usize>,
    previous: Option<&rampart_config::Spec>,
) {
    let plan = gateway.plan();
    let Some(trail) = rampart_observe::audit_trail::current(&plan.state, &plan.spec) else {
        return;
    };
    let fields = rampart_observe::audit_trail::Fields::new().str("action", action);
    // The config as JSON, once: what changed, and the secrets it references.
    let doc = outcome
        .is_ok()
        .then(|| serde_json::to_value(&*plan.spec).unwrap_or_default());
    let fields = match outcome {
        Ok(()) => {
            let fields = fields
                .str("result", "ok")
                .str("fingerprint", &gateway.effective_config().1);
            let fields = match &plan.origin {
                Some(o) => fields
                    .str("version", &o.version)
                    .str("source", &o.source.to_string_lossy()),
                None => fields,
            };
            match (previous, &doc) {
                (Some(old), Some(new)) => {
                    let old = serde_json::to_value(old).unwrap_or_default();
                    fields.strs("changes", &diff::summary(&old, new, 50))
                }
                _ => fields,
            }
        }
        Err(problems) => fields
            .str("result", "refused")
            .num("problems", problems as u64),
    };
    trail.record("config", fields);
    if let Some(doc) = &doc {
        trail.secrets_observed(secret_fingerprints(doc, &plan.base));
    }
}

/// Every secret reference in a config (as JSON, where each shows as its reference) that
/// resolves here (`env:NAME`, `file:PATH`), with a fingerprint of its value: what the
/// audit trail compares to see rotations. Relative files are read from `base`.
pub fn secret_fingerprints(
    doc: &serde_json::Value,
    base: &Path,
) -> std::collections::BTreeMap<String, String> {
    fn walk(
        v: &serde_json::Value,
        base: &Path,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        match v {
            serde_json::Value::Object(m)
                if m.get("value").and_then(|x| x.as_str()) == Some("<redacted>") =>
            {
                let r = match (
                    m.get("env").and_then(|x| x.as_str()),
                    m.get("file").and_then(|x| x.as_str()),
                ) {
                    (Some(e), _) => rampart_config::SecretRef::Env(e.to_string()),
                    (None, Some(f)) => rampart_config::SecretRef::File(f.into()),
                    _ => return,
                };
                let label = match &r {
                    rampart_config::SecretRef::Env(e) => format!("env:{e}"),
                    rampart_config::SecretRef::File(f) => format!("file:{}", f.display()),
                };
                if let Ok(secret) = r.resolve(base) {
                    out.insert(label, secret_fingerprint(secret.expose()));
                }
            }
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, base, out)),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, base, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(doc, base, &mut out);
    out
}

/// Goes on in a new audit trail file when the old one was moved away (log rotation,
/// SIGUSR1); the old one ends with a checkpoint.
pub fn reopen_audit_trail(gateway: &Gateway) {
    let plan = gateway.plan();
    let Some(trail) = rampart_observe::audit_trail::current(&plan.state, &plan.spec) else {
        return;
    };
    match trail.reopen() {
        Ok(true) => {
            tracing::info!("audit trail: the file was moved away; the chain goes on in a new one")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "audit trail: cannot open a new file; writing to the old one")
        }
    }
}

/// Compiles `yaml` and starts serving it.
pub fn start(yaml: &str, base: &Path) -> anyhow::Result<Gateway> {
    let plan = compile_str(yaml, base).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    Ok(Gateway::start(plan)?)
}
