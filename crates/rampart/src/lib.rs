//! Rampart as a library: load a config into a plan and run a gateway from it. The binary
//! (`main.rs`) is a thin CLI over this; integration tests use it directly.
#![forbid(unsafe_code)]

pub mod admin;
pub mod demo;
pub mod diff;
pub mod reload;

use std::path::Path;

pub use rampart_config::{ConfigError, ConfigErrors};
pub use rampart_proxy::{Gateway, Plan};

/// A short fingerprint of a secret value (first 16 hex digits of its SHA-256), so two
/// configurations can be compared for the same secret without revealing it.
pub fn secret_fingerprint(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses, validates and compiles YAML text. Relative file paths in it are read from
/// `base`.
pub fn compile_str(yaml: &str, base: &Path) -> Result<Plan, ConfigErrors> {
    let spec = rampart_config::parse(yaml)?;
    Plan::compile(&spec, base)
}

/// Parses, validates and compiles a config file (the `validate` and `run` path).
pub fn compile_file(path: &Path) -> Result<Plan, ConfigErrors> {
    let spec = rampart_config::load_file(path)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Plan::compile(&spec, base)
}

/// Compiles `yaml` and starts serving it.
pub fn start(yaml: &str, base: &Path) -> anyhow::Result<Gateway> {
    let plan = compile_str(yaml, base).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    Ok(Gateway::start(plan)?)
}
