//! Request validation against an OpenAPI 3.0 or 3.1 document (next-wave.md §1a). The
//! document is read once per load: `$ref`s resolved (local only), every operation's
//! parameters and body schemas compiled into validators, path templates into a matcher.
//! A request then costs a path match, a few parameter checks and, for a body, one parse
//! and one schema walk.

mod filter;
mod params;
mod paths;
mod responses;
mod schema;
pub(crate) mod tape;

use std::path::Path;
use std::sync::Arc;

use jsonschema::Validator;
use serde_json::Value;

pub(crate) use filter::compile;
pub use filter::OpenApiValidator;

use params::Param;
use paths::PathMatcher;
use schema::SchemaCompiler;

/// Largest document read: the biggest public API descriptions are a few megabytes.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The OpenAPI document as parsed.
pub(crate) struct Document {
    root: Value,
    /// 3.1 (JSON Schema 2020-12 schemas) rather than 3.0.
    v31: bool,
}

impl Document {
    fn load(path: &Path) -> Result<Document, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "{} is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                path.display(),
                meta.len()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let root: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text)
                .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?
        } else {
            let mut options = serde_saphyr::Options::default();
            options.with_snippet = false;
            // Public documents are large (tens of thousands of operations' worth of nodes);
            // the budget still bounds aliases, anchors and depth.
            let mut budget = serde_saphyr::Budget::default();
            budget.max_events = 50_000_000;
            budget.max_nodes = 20_000_000;
            options.budget = Some(budget);
            serde_saphyr::from_str_with_options(&text, options)
                .map_err(|e| format!("{} is not valid YAML: {e}", path.display()))?
        };
        let version = root
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{} has no `openapi` version", path.display()))?;
        let v31 = if version.starts_with("3.1.") {
            true
        } else if version.starts_with("3.0.") {
            false
        } else {
            return Err(format!(
                "{}: OpenAPI {version} is not supported (3.0.x and 3.1.x are)",
                path.display()
            ));
        };
        Ok(Document { root, v31 })
    }

    /// The value at a JSON pointer.
    fn pointer(&self, ptr: &str) -> Result<&Value, String> {
        self.root
            .pointer(ptr)
            .ok_or_else(|| format!("$ref #{ptr} points at nothing in the document"))
    }

    /// `node`, following `$ref`s (parameters, request bodies, path items, schemas).
    fn resolve<'a>(&'a self, mut node: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..32 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => node = self.pointer(&schema::local_pointer(r)?)?,
                None => return Ok(node),
            }
        }
        Err("a $ref chain is longer than 32 links (a cycle?)".into())
    }

    /// The path of the first `servers` URL: the request path prefix of the API.
    fn server_base_path(&self) -> String {
        let url = self
            .root
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .unwrap_or("");
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
            None => url,
        };
        path.trim_end_matches('/').to_string()
    }
}

/// Whether a media type is JSON (`application/json`, `*/*+json`).
pub(crate) fn is_json(media: &str) -> bool {
    let Some((_, sub)) = split_type(essence(media)) else {
        return false;
    };
    // `get`: a media type from a document may end in a character of several bytes.
    sub.eq_ignore_ascii_case("json")
        || sub.len() > 5
            && sub
                .get(sub.len() - 5..)
                .is_some_and(|t| t.eq_ignore_ascii_case("+json"))
}

/// What `rampart openapi import` prints a config from: the document's paths and their
/// methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiOutline {
    pub title: String,
    pub version: String,
    /// The request path prefix the document's `servers` imply (`/v1`), or empty.
    pub base_path: String,
    /// Each path template with its upper-case methods, in the document's order.
    pub paths: Vec<(String, Vec<String>)>,
    /// Operations in all.
    pub operations: usize,
}

/// Reads a document as `validate` would (every schema compiled, so a document that would
/// not load is refused here too) and outlines it.
pub fn outline(path: &Path) -> Result<OpenApiOutline, String> {
    let doc = Document::load(path)?;
    Api::compile(&doc, path, false)?;
    let text = |p: &str| {
        doc.root
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut paths = Vec::new();
    let mut operations = 0;
    for (template, item) in doc
        .root
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let item = doc.resolve(item)?;
        let methods: Vec<String> = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ]
        .into_iter()
        .filter(|m| item.get(*m).is_some())
        .map(str::to_ascii_uppercase)
        .collect();
        operations += methods.len();
        paths.push((template.clone(), methods));
    }
    Ok(OpenApiOutline {
        title: text("/info/title"),
        version: text("/info/version"),
        base_path: doc.server_base_path(),
        paths,
        operations,
    })
}

/// A JSON body's schema: the validator, and the plan that settles most valid bodies
/// in a fraction of its time (`None` when the schema uses a keyword it does not settle).
pub(crate) struct JsonBody {
    pub(crate) validator: Validator<tape::TapeJson>,
    pub(crate) plan: Option<tape::Plan>,
}

impl JsonBody {
    /// Whether the body is valid: the plan first, the validator when it is not sure.
    fn is_valid(&self, tape: &tape::Tape) -> bool {
        self.plan.as_ref().is_some_and(|p| p.accepts(tape)) || self.validator.is_valid(tape.root())
    }
}

/// How a request body of one media type is checked.
enum BodyCheck {
    /// Parsed as JSON (into a tape) and validated.
    Json(Arc<JsonBody>),
    /// `application/x-www-form-urlencoded`: read into an object (each field as the
    /// schema's property type) and validated.
    Form(Vec<(String, params::Kind)>, Validator),
    /// Any other media type: accepted as declared, its bytes not read.
    Opaque,
}

/// One media type an operation accepts (or, in a response, answers with).
struct Media {
    /// Lower case; `type/*` and `*/*` are wildcards.
    range: String,
    check: BodyCheck,
}

/// A media type without its parameters: what comes before any `;`, trimmed (a byte
/// search: this runs for every request with a body).
pub(crate) fn essence(media: &str) -> &str {
    let end = media.bytes().position(|b| b == b';').unwrap_or(media.len());
    media.get(..end).unwrap_or("").trim_ascii()
}

/// A media type's essence split at its `/` into type and subtype (a byte search too).
fn split_type(essence: &str) -> Option<(&str, &str)> {
    let slash = essence.bytes().position(|b| b == b'/')?;
    Some((essence.get(..slash)?, essence.get(slash + 1..)?))
}

/// The media entry for a `Content-Type`: the exact media type first, then `type/*`, then
/// `*/*` (request bodies and responses alike).
fn pick_media<'a>(media: &'a [Media], content_type: &str) -> Option<&'a Media> {
    let essence = essence(content_type);
    let top = split_type(essence).map_or("", |(t, _)| t);
    let exact = |m: &&Media| !essence.starts_with('/') && m.range.eq_ignore_ascii_case(essence);
    let family = |m: &&Media| {
        !top.is_empty()
            && m.range
                .strip_suffix("/*")
                .is_some_and(|t| t.eq_ignore_ascii_case(top))
    };
    media
        .iter()
        .find(exact)
        .or_else(|| media.iter().find(family))
        .or_else(|| media.iter().find(|m| m.range == "*/*"))
}

/// One method on one path.
pub(crate) struct Operation {
    params: Vec<Param>,
    /// `None`: the operation takes no body.
    body: Option<Vec<Media>>,
    body_required: bool,
    /// The documented responses, by status (compiled only for routes that validate
    /// responses).
    responses: Vec<responses::Response>,
}

/// A compiled document: the paths and their operations.
pub(crate) struct Api {
    paths: PathMatcher,
    pub(crate) base_path: String,
    /// Whether any operation reads a body (the route then buffers bodies).
    pub(crate) reads_bodies: bool,
}

impl Api {
    /// Reads and compiles the document at `path`, with the response schemas when
    /// `responses`.
    pub(crate) fn load(path: &Path, responses: bool) -> Result<Api, String> {
        Api::compile(&Document::load(path)?, path, responses)
    }

    /// Compiles a parsed document (`path` names it in warnings).
    fn compile(doc: &Document, path: &Path, responses: bool) -> Result<Api, String> {
        let mut schemas = SchemaCompiler::new(doc);
        let mut paths = PathMatcher::default();
        let mut reads_bodies = false;
        let empty = serde_json::Map::new();
        let items = doc
            .root
            .get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (template, item) in items {
            let at = format!("paths.{template}");
            let item = doc.resolve(item)?;
            let shared = item.get("parameters");
            let mut ops = Vec::new();
            for method in [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ] {
                let Some(op) = item.get(method) else { continue };
                let at = format!("{at}.{method}");
                let mut op = compile_operation(doc, op, shared, &at, &mut schemas)?;
                if responses {
                    op.responses =
                        responses::compile(doc, op_value(item, method), &at, &mut schemas)?;
                }
                reads_bodies |= op
                    .body
                    .as_ref()
                    .is_some_and(|b| b.iter().any(|m| !matches!(m.check, BodyCheck::Opaque)));
                ops.push((method.to_ascii_uppercase(), op));
            }
            paths.add(template, ops).map_err(|e| format!("{at}: {e}"))?;
        }
        if !schemas.unknown_formats.is_empty() {
            tracing::warn!(
                document = %path.display(),
                formats = ?schemas.unknown_formats,
                "OpenAPI formats that nothing checks: values with them are validated by type only"
            );
        }
        tracing::debug!(
            document = %path.display(),
            bodies = schemas.bodies.0,
            planned = schemas.bodies.1,
            "OpenAPI JSON body schemas compiled; the planned ones settle valid bodies without the full validator"
        );
        let base_path = doc.server_base_path();
        paths.finish();
        Ok(Api {
            paths,
            base_path,
            reads_bodies,
        })
    }
}

fn compile_operation(
    doc: &Document,
    op: &Value,
    shared: Option<&Value>,
    at: &str,
    schemas: &mut SchemaCompiler<'_>,
) -> Result<Operation, String> {
    // Operation parameters override path-item ones with the same name and location.
    let mut raw: Vec<&Value> = Vec::new();
    for list in [shared, op.get("parameters")].into_iter().flatten() {
        for p in list.as_array().into_iter().flatten() {
            let p = doc.resolve(p)?;
            let key = (p.get("name"), p.get("in"));
            raw.retain(|q| (q.get("name"), q.get("in")) != key);
            raw.push(p);
        }
    }
    let mut params = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        params.push(Param::compile(
            p,
            &format!("{at}.parameters[{i}]"),
            doc,
            schemas,
        )?);
    }
    let (body, body_required) = match op.get("requestBody") {
        None => (None, false),
        Some(b) => {
            let b = doc.resolve(b)?;
            let required = b.get("required").and_then(Value::as_bool) == Some(true);
            let mut media = Vec::new();
            for (range, m) in b
                .get("content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let at = format!("{at}.requestBody.content.{range}");
                let schema = m.get("schema");
                let check = match schema {
                    None => BodyCheck::Opaque,
                    Some(s) if is_json(range) => {
                        BodyCheck::Json(Arc::new(schemas.compile_body(s, &at)?))
                    }
                    Some(s) if range.eq_ignore_ascii_case("application/x-www-form-urlencoded") => {
                        let props = doc
                            .resolve(s)?
                            .get("properties")
                            .and_then(Value::as_object)
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.clone(), params::kind_for(v, doc)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        BodyCheck::Form(props, schemas.compile(s, &at)?)
                    }
                    Some(_) => {
                        tracing::debug!(at, "body schema of a non-JSON media type is not checked");
                        BodyCheck::Opaque
                    }
                };
                media.push(Media {
                    range: range.to_ascii_lowercase(),
                    check,
                });
            }
            (Some(media), required)
        }
    };
    Ok(Operation {
        params,
        body,
        body_required,
        responses: Vec::new(),
    })
}

/// The operation object of `method` in a path item.
fn op_value<'a>(item: &'a Value, method: &str) -> &'a Value {
    item.get(method).unwrap_or(&Value::Null)
}

#[cfg(test)]
mod tests {
    use super::{essence, is_json};

    #[test]
    fn reads_a_media_type_without_its_parameters() {
        assert_eq!(
            essence(" application/json ; charset=utf-8"),
            "application/json"
        );
        assert_eq!(essence("text/plain"), "text/plain");
        assert_eq!(essence(";x"), "");
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "a/vnd.x+json",
        ] {
            assert!(is_json(json), "{json}");
        }
        // A name of several-byte characters near its end is not JSON, and no panic.
        for other in [
            "application/aéjson",
            "application/é+jsonx",
            "json",
            "text/plain",
            "",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }
}
