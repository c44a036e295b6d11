use std::path::Path;

use serde::Deserialize;

use crate::{validate, ConfigError, ConfigErrors, Spec};

/// Largest config file we agree to parse. A gateway config is kilobytes; anything near this
/// is a mistake or an attack on the loader.
const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Parses YAML text into a [`Spec`] and validates it.
///
/// Unknown keys, wrong types and duplicate keys are errors, reported with the YAML path of
/// the key and the line/column where the parser stopped. The parser runs under
/// serde-saphyr's budget (bounded depth, aliases and scalar bytes), so a hostile file
/// cannot exhaust memory (billion-laughs and friends).
pub fn parse(text: &str) -> Result<Spec, ConfigErrors> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            "",
            format!(
                "config is {} bytes; the limit is {MAX_CONFIG_BYTES}",
                text.len()
            ),
        )
        .into());
    }
    let mut options = serde_saphyr::Options::default();
    // Errors are printed as `path: reason`; a source snippet would echo config values
    // (possibly secrets in a mistyped key) into logs.
    options.with_snippet = false;
    options.strict_booleans = true;
    let mut failed_at: Option<String> = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        let mut track = serde_path_to_error::Track::new();
        let inner = serde_path_to_error::Deserializer::new(de, &mut track);
        match Spec::deserialize(inner) {
            Ok(spec) => Ok(spec),
            Err(e) => {
                failed_at = Some(track.path().to_string());
                Err(e)
            }
        }
    });
    let spec = match result {
        Ok(spec) => spec,
        Err(e) => {
            let path = failed_at.filter(|p| p != ".").unwrap_or_default();
            let reason = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .trim()
                .to_string();
            return Err(ConfigError::new(path, reason).into());
        }
    };
    let errors = validate(&spec);
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Reads and parses a config file. Relative file paths inside the config (certificates,
/// keys) are later resolved against the file's directory by the compiler.
pub fn load_file(path: &Path) -> Result<Spec, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    parse(&text)
}
