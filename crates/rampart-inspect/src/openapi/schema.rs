//! OpenAPI schemas made into self-contained JSON Schema 2020-12 documents, compiled once per
//! load. OpenAPI semantics the JSON Schema validator does not know are settled here, at
//! compile time: 3.0's `nullable` and boolean `exclusiveMinimum`/`exclusiveMaximum`,
//! `readOnly` properties (not required in a request, and refused in one; `writeOnly` the
//! same in a response), the `int32`,
//! `int64` and `byte` formats (as bounds and a pattern). Local `$ref`s become `$defs`
//! entries, so each schema carries exactly what it reaches, recursion included.

use std::collections::BTreeMap;

use jsonschema::error::ValidationErrorKind;
use jsonschema::json::Json;
use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::{Map, Value};

use super::tape::Plan;
use super::Document;

/// Formats the validator checks itself (JSON Schema's), or that are settled here.
const KNOWN_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "binary",
    "password",
];

/// Turns the document's schemas into validators.
pub(crate) struct SchemaCompiler<'d> {
    doc: &'d Document,
    /// Formats met that nothing checks: reported once per load.
    pub(crate) unknown_formats: std::collections::BTreeSet<String>,
    /// The keyword of the properties the validated side never sends: `readOnly` for
    /// requests (the default), `writeOnly` for responses.
    pub(crate) hidden: &'static str,
    /// JSON body schemas compiled, and how many of them have a plan.
    pub(crate) bodies: (usize, usize),
}

/// One schema being translated: the `$defs` it has collected so far.
struct Unit {
    /// JSON pointer → `$defs` name.
    names: BTreeMap<String, String>,
    defs: Map<String, Value>,
    /// Pointers whose translation is still to do.
    pending: Vec<String>,
}

impl<'d> SchemaCompiler<'d> {
    pub(crate) fn new(doc: &'d Document) -> Self {
        Self {
            doc,
            unknown_formats: Default::default(),
            bodies: (0, 0),
            hidden: "readOnly",
        }
    }

    /// A validator for `schema` (found at `at`, for errors), as a request sees it, over
    /// the JSON representation `F` (`serde_json` values, or a body's tape).
    pub(crate) fn compile<F: Json>(
        &mut self,
        schema: &Value,
        at: &str,
    ) -> Result<Validator<F>, String> {
        let doc = self.document(schema)?;
        build(&doc).map_err(|e| format!("{at}: the schema does not compile: {e}"))
    }

    /// A JSON body's check: the validator, and the plan that settles most valid bodies
    /// without it.
    pub(crate) fn compile_body(
        &mut self,
        schema: &Value,
        at: &str,
    ) -> Result<super::JsonBody, String> {
        let doc = self.document(schema)?;
        let validator =
            build(&doc).map_err(|e| format!("{at}: the schema does not compile: {e}"))?;
        let plan = Plan::compile(&doc, &mut |one| build(one).ok());
        self.bodies.0 += 1;
        self.bodies.1 += usize::from(plan.is_some());
        Ok(super::JsonBody { validator, plan })
    }

    /// `schema` as a self-contained JSON Schema 2020-12 document.
    pub(crate) fn document(&mut self, schema: &Value) -> Result<Value, String> {
        let mut unit = Unit {
            names: BTreeMap::new(),
            defs: Map::new(),
            pending: Vec::new(),
        };
        let root = self.translate(schema, &mut unit)?;
        while let Some(ptr) = unit.pending.pop() {
            let target = self.doc.pointer(&ptr)?;
            let name = unit.names[&ptr].clone();
            let t = self.translate(target, &mut unit)?;
            unit.defs.insert(name, t);
        }
        let mut doc = match root {
            Value::Object(m) => m,
            // `true`/`false`: wrapped so `$defs` has a place.
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), Value::Array(vec![other]));
                m
            }
        };
        if !unit.defs.is_empty() {
            doc.insert("$defs".into(), Value::Object(unit.defs));
        }
        Ok(Value::Object(doc))
    }

    fn translate(&mut self, node: &Value, unit: &mut Unit) -> Result<Value, String> {
        let Value::Object(obj) = node else {
            // Booleans (3.1) and anything else are taken as they are.
            return Ok(node.clone());
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let ptr = local_pointer(r)?;
            let name = match unit.names.get(&ptr) {
                Some(n) => n.clone(),
                None => {
                    let n = format!("d{}", unit.names.len());
                    unit.names.insert(ptr.clone(), n.clone());
                    unit.pending.push(ptr);
                    n
                }
            };
            let mut out = Map::new();
            out.insert("$ref".into(), Value::String(format!("#/$defs/{name}")));
            // 3.0 ignores a `$ref`'s siblings; 3.1 applies them.
            if self.doc.v31 {
                for (k, v) in obj {
                    if k != "$ref" {
                        out.insert(k.clone(), self.keyword(k, v, unit)?);
                    }
                }
            }
            return Ok(Value::Object(out));
        }
        let mut out = Map::new();
        for (k, v) in obj {
            out.insert(k.clone(), self.keyword(k, v, unit)?);
        }
        if !self.doc.v31 {
            openapi30(&mut out);
        }
        self.formats(&mut out);
        self.read_only(&mut out, unit)?;
        Ok(Value::Object(out))
    }

    /// One keyword's value, with the subschemas in it translated.
    fn keyword(&mut self, k: &str, v: &Value, unit: &mut Unit) -> Result<Value, String> {
        Ok(match k {
            "properties" | "patternProperties" | "dependentSchemas" | "$defs" | "definitions" => {
                match v {
                    Value::Object(m) => {
                        let mut out = Map::new();
                        for (name, s) in m {
                            out.insert(name.clone(), self.translate(s, unit)?);
                        }
                        Value::Object(out)
                    }
                    other => other.clone(),
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => match v {
                Value::Array(a) => Value::Array(
                    a.iter()
                        .map(|s| self.translate(s, unit))
                        .collect::<Result<_, _>>()?,
                ),
                other => other.clone(),
            },
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "unevaluatedProperties"
            | "unevaluatedItems"
            | "additionalItems" => self.translate(v, unit)?,
            _ => v.clone(),
        })
    }

    /// Formats settled at compile time; unknown ones recorded for the load's warning.
    fn formats(&mut self, out: &mut Map<String, Value>) {
        let Some(format) = out.get("format").and_then(Value::as_str).map(str::to_owned) else {
            return;
        };
        let bounds = match format.as_str() {
            "int32" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            "int64" => Some((i64::MIN, i64::MAX)),
            _ => None,
        };
        if let Some((lo, hi)) = bounds {
            out.entry("minimum").or_insert(Value::from(lo));
            out.entry("maximum").or_insert(Value::from(hi));
        }
        if format == "byte" {
            // RFC 4648 base64, padded.
            out.entry("pattern").or_insert(Value::from(
                "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            ));
        }
        if !KNOWN_FORMATS.contains(&format.as_str()) {
            self.unknown_formats.insert(format);
        }
    }

    /// `readOnly` properties are sent by the server, never by a client: not required in
    /// a request, and refused when present (schema `false`); `writeOnly` ones likewise in
    /// a response (`hidden`).
    fn read_only(&mut self, out: &mut Map<String, Value>, unit: &Unit) -> Result<(), String> {
        let Some(Value::Object(props)) = out.get("properties") else {
            return Ok(());
        };
        let mut read_only = Vec::new();
        for (name, s) in props {
            if self.is_read_only(s, unit)? {
                read_only.push(name.clone());
            }
        }
        if read_only.is_empty() {
            return Ok(());
        }
        if let Some(Value::Object(props)) = out.get_mut("properties") {
            for name in &read_only {
                props.insert(name.clone(), Value::Bool(false));
            }
        }
        if let Some(Value::Array(req)) = out.get_mut("required") {
            req.retain(|r| !r.as_str().is_some_and(|r| read_only.iter().any(|n| n == r)));
        }
        Ok(())
    }

    /// Whether a (translated) property schema is `hidden` (`readOnly` or `writeOnly`),
    /// looking through a `$ref`.
    fn is_read_only(&self, s: &Value, unit: &Unit) -> Result<bool, String> {
        if s.get(self.hidden).and_then(Value::as_bool) == Some(true) {
            return Ok(true);
        }
        let Some(r) = s.get("$ref").and_then(Value::as_str) else {
            return Ok(false);
        };
        let name = r.trim_start_matches("#/$defs/");
        let Some(ptr) = unit.names.iter().find(|(_, n)| *n == name).map(|(p, _)| p) else {
            return Ok(false);
        };
        Ok(self
            .doc
            .pointer(ptr)?
            .get(self.hidden)
            .and_then(Value::as_bool)
            == Some(true))
    }
}

/// A validator for a translated document, with the options every schema here has.
pub(crate) fn build<F: Json>(
    doc: &Value,
) -> Result<Validator<F>, jsonschema::ValidationError<'static>> {
    jsonschema::options_for::<F>()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        // Linear-time matching: a `pattern` from a document cannot backtrack forever.
        .with_pattern_options(PatternOptions::regex())
        .build(doc)
}

/// OpenAPI 3.0's schema dialect, as 2020-12 says it.
fn openapi30(out: &mut Map<String, Value>) {
    if out.remove("nullable").and_then(|v| v.as_bool()) == Some(true) {
        if let Some(t) = out.get_mut("type") {
            if let Value::String(s) = t {
                *t = Value::Array(vec![Value::String(std::mem::take(s)), "null".into()]);
            }
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        match out.get(flag) {
            Some(Value::Bool(true)) => {
                let b = out.remove(bound).unwrap_or(Value::Null);
                out.insert(flag.into(), b);
            }
            Some(Value::Bool(false)) => {
                out.remove(flag);
            }
            _ => {}
        }
    }
}

/// The JSON pointer of a local `$ref` (`#/components/schemas/Item`); a remote one is an
/// error (the gateway fetches nothing at load).
pub(crate) fn local_pointer(r: &str) -> Result<String, String> {
    match r.strip_prefix('#') {
        Some(p) if p.is_empty() || p.starts_with('/') => Ok(p.to_string()),
        _ => Err(format!(
            "$ref {r:?} is not local: only references inside the document (#/...) are supported"
        )),
    }
}

/// Why a value broke its schema, in the gateway's words: the rule, never the value.
pub(crate) fn reason(kind: &ValidationErrorKind) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Type { kind } => format!("must be of type {}", type_name(kind)),
        K::Required { property } => {
            format!("is missing the required property {}", short(property))
        }
        K::AdditionalProperties { unexpected } => {
            format!(
                "has {} unexpected propert{}",
                unexpected.len(),
                if unexpected.len() == 1 { "y" } else { "ies" }
            )
        }
        K::FalseSchema => "is not allowed (read-only, or not part of the schema)".into(),
        K::Enum { .. } => "is not one of the allowed values".into(),
        K::Constant { .. } => "is not the required value".into(),
        K::Format { format } => format!("is not a valid {format}"),
        K::Pattern { .. } => "does not match the required pattern".into(),
        K::MinLength { limit } => format!("is shorter than {limit} characters"),
        K::MaxLength { limit } => format!("is longer than {limit} characters"),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        K::MultipleOf { .. } => "is not a multiple of the required step".into(),
        K::MinItems { limit } => format!("has fewer than {limit} items"),
        K::MaxItems { limit } => format!("has more than {limit} items"),
        K::UniqueItems => "has duplicate items".into(),
        K::MinProperties { limit } => format!("has fewer than {limit} properties"),
        K::MaxProperties { limit } => format!("has more than {limit} properties"),
        K::OneOfNotValid { .. } => "matches none of the allowed shapes (oneOf)".into(),
        K::OneOfMultipleValid { .. } => "matches more than one of the shapes (oneOf)".into(),
        K::AnyOf { .. } => "matches none of the allowed shapes (anyOf)".into(),
        K::Not { .. } => "matches a shape that is not allowed".into(),
        _ => "does not match the schema".into(),
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => ts
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// A schema-defined name for a message, cut short.
fn short(v: &Value) -> String {
    let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    s.chars().take(64).collect()
}
