use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::{validate, ConfigError, ConfigErrors, Spec};

/// The largest config file parsed by default: room for 10,000 routes and 10,000 inline
/// consumers with keys, roles and attributes (about 6 MiB), and still a bound on what a
/// mistaken or hostile file can make the loader hold.
pub const DEFAULT_MAX_CONFIG_BYTES: usize = 32 * 1024 * 1024;

/// The most YAML nodes (maps, sequences, scalars) parsed by default: the same 10,000 +
/// 10,000 config is about 600,000.
pub const DEFAULT_MAX_CONFIG_NODES: usize = 2_000_000;

static MAX_CONFIG_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_CONFIG_BYTES);
static MAX_CONFIG_NODES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_CONFIG_NODES);

/// Sets the parser's limits for this process (the `--max-config-bytes` and
/// `--max-config-nodes` flags); every later parse, reloads included, uses them.
pub fn set_parse_limits(max_bytes: Option<usize>, max_nodes: Option<usize>) {
    if let Some(b) = max_bytes {
        MAX_CONFIG_BYTES.store(b, Ordering::Relaxed);
    }
    if let Some(n) = max_nodes {
        MAX_CONFIG_NODES.store(n, Ordering::Relaxed);
    }
}

/// Parses YAML text into a [`Spec`] and validates it.
///
/// Unknown keys, wrong types and duplicate keys are errors, reported with the YAML path of
/// the key and the line/column where the parser stopped. The parser runs under
/// serde-saphyr's budget (bounded depth, aliases and scalar bytes), so a hostile file
/// cannot exhaust memory (billion-laughs and friends).
pub fn parse(text: &str) -> Result<Spec, ConfigErrors> {
    let max_bytes = MAX_CONFIG_BYTES.load(Ordering::Relaxed);
    if text.len() > max_bytes {
        return Err(ConfigError::new(
            "",
            format!(
                "config is {} bytes; the limit is {max_bytes} (raise it with --max-config-bytes, \
                 or keep consumers in the consumer store)",
                text.len()
            ),
        )
        .into());
    }
    let max_nodes = MAX_CONFIG_NODES.load(Ordering::Relaxed);
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = max_nodes;
    // A node is a few events (start, end, scalar): the event budget follows.
    budget.max_events = max_nodes.saturating_mul(4);
    budget.max_reader_input_bytes = Some(max_bytes);
    options.budget = Some(budget);
    // Errors are printed as `path: reason`; a source snippet would echo config values
    // (possibly secrets in a mistyped key) into logs.
    options.with_snippet = false;
    options.strict_booleans = true;
    let mut failed_at: Option<String> = None;
    let result =
        serde_saphyr::with_deserializer_from_str_with_options(text, options.clone(), |de| {
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
    let mut spec = match result {
        Ok(spec) => spec,
        Err(e) => {
            let path = failed_at.filter(|p| p != ".").unwrap_or_default();
            let mut reason = first_line(&e.to_string());
            if reason.contains("budget") {
                reason.push_str(&format!(
                    " (the parser's limit is {max_nodes} YAML nodes: raise it with \
                     --max-config-nodes, or keep consumers in the consumer store)"
                ));
            }
            if reason.starts_with("unknown field") {
                // Report every unknown key and, once they are set aside, every semantic
                // mistake too, in one run.
                if let Some(all) = every_error(text, options) {
                    return Err(ConfigErrors(all));
                }
            }
            return Err(ConfigError::new(path, reason).into());
        }
    };
    let errors = validate(&spec);
    if errors.is_empty() {
        // The parse grew the list by doubling; the spec is kept for the plan's lifetime.
        spec.routes.shrink_to_fit();
        spec.consumers.shrink_to_fit();
        Ok(spec)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string()
}

/// Most unknown keys reported from one file.
const MAX_UNKNOWN_KEYS: usize = 100;

/// Re-reads `text` as a plain YAML tree and deserialises it again and again, each time
/// setting aside the unknown key that stopped it, then validates what parsed. Returns
/// every unknown key and every semantic error, or `None` when the file cannot be read as
/// a tree at all (the first error then stands alone).
fn every_error(text: &str, options: serde_saphyr::Options) -> Option<Vec<ConfigError>> {
    let mut tree: serde_json::Value = serde_saphyr::from_str_with_options(text, options).ok()?;
    let mut errors = Vec::new();
    for _ in 0..MAX_UNKNOWN_KEYS {
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(&tree, &mut track);
        match Spec::deserialize(de) {
            Ok(spec) => {
                errors.extend(validate(&spec));
                return Some(errors);
            }
            Err(e) => {
                let path = track.path();
                let reason = same_wording(&first_line(&e.to_string()));
                let shown = path.to_string();
                errors.push(ConfigError::new(
                    if shown == "." { String::new() } else { shown },
                    reason.clone(),
                ));
                if !reason.starts_with("unknown field") || !remove_key(&mut tree, &path) {
                    return Some(errors);
                }
            }
        }
    }
    Some(errors)
}

/// serde's own wording quotes the expected names (`` expected one of `a`, `b` ``); the
/// YAML loader's does not. One file's errors read alike.
fn same_wording(reason: &str) -> String {
    match reason.split_once(", expected ") {
        Some((head, tail)) => format!("{head}, expected {}", tail.replace('`', "")),
        None => reason.to_string(),
    }
}

/// Removes the map key `path` points at; false when the path does not lead to one.
fn remove_key(tree: &mut serde_json::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for s in parents {
        node = match (s, node) {
            (Segment::Seq { index }, serde_json::Value::Array(a)) => match a.get_mut(*index) {
                Some(n) => n,
                None => return false,
            },
            (Segment::Map { key }, serde_json::Value::Object(m)) => match m.get_mut(key) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        serde_json::Value::Object(m) => m.remove(key).is_some(),
        _ => false,
    }
}

/// The `state_dir` a config names, read leniently (the rest of the file may be invalid):
/// where `rampart run --fallback-to-last-good` looks for the last good version when the
/// file itself does not load. `None` when the text is not YAML or names none.
pub fn peek_state_dir(text: &str) -> Option<std::path::PathBuf> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        state_dir: Option<std::path::PathBuf>,
    }
    if text.len() > MAX_CONFIG_BYTES.load(Ordering::Relaxed) {
        return None;
    }
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<Peek>(text, options)
        .ok()?
        .state_dir
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
