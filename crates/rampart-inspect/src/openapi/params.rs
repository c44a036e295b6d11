//! Operation parameters (path, query, header, cookie): read from the request as the
//! OpenAPI serialisation rules say (`form` with `explode`, `simple`, `spaceDelimited`,
//! `pipeDelimited`, `deepObject`), turned into the JSON value their schema describes, and
//! validated. A value that cannot be read as its type is refused before its schema runs.

use jsonschema::Validator;
use serde_json::{Map, Value};

use super::schema::SchemaCompiler;
use super::Document;

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// How a parameter's text is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `a=1&a=2` (explode) or `a=1,2`.
    Form {
        explode: bool,
    },
    /// `1,2,3`.
    Simple,
    SpaceDelimited,
    PipeDelimited,
    /// `a[x]=1&a[y]=2`.
    DeepObject,
}

/// The JSON type a parameter's text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    /// Any JSON (no `type`, or a union): the text as a string.
    Any,
}

/// A compiled parameter.
pub(crate) struct Param {
    pub(crate) name: Box<str>,
    pub(crate) location: In,
    pub(crate) required: bool,
    style: Style,
    /// `Some(item kind)` for arrays, `None` for scalars.
    array: Option<Kind>,
    /// Object parameters: the kind of each named property.
    object: Option<Vec<(String, Kind)>>,
    kind: Kind,
    /// `content: application/json`: the text is a JSON document.
    json: bool,
    validator: Validator,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({} in {})", self.name, self.location.as_str())
    }
}

/// The kind a parameter (or form field) with `schema` is read as.
pub(crate) fn kind_for(schema: &Value, doc: &Document) -> Kind {
    let schema = doc.resolve(schema).unwrap_or(schema);
    match schema.get("type") {
        Some(Value::String(t)) => match t.as_str() {
            "integer" => Kind::Integer,
            "number" => Kind::Number,
            "boolean" => Kind::Boolean,
            "string" => Kind::String,
            _ => Kind::Any,
        },
        // 3.1: `type: [integer, "null"]`: the non-null type.
        Some(Value::Array(ts)) => {
            let non_null: Vec<_> = ts.iter().filter(|t| *t != "null").collect();
            match non_null.as_slice() {
                [one] => kind_for(&serde_json::json!({ "type": one }), doc),
                _ => Kind::Any,
            }
        }
        _ => Kind::Any,
    }
}

impl Param {
    /// Compiles one parameter object (already `$ref`-resolved) found at `at`.
    pub(crate) fn compile(
        p: &Value,
        at: &str,
        doc: &Document,
        schemas: &mut SchemaCompiler<'_>,
    ) -> Result<Param, String> {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{at}: a parameter needs a name"))?;
        let location = match p.get("in").and_then(Value::as_str) {
            Some("path") => In::Path,
            Some("query") => In::Query,
            Some("header") => In::Header,
            Some("cookie") => In::Cookie,
            other => return Err(format!("{at}: unknown parameter location {other:?}")),
        };
        let required =
            location == In::Path || p.get("required").and_then(Value::as_bool) == Some(true);
        let (schema, json) = match (p.get("schema"), p.get("content")) {
            (Some(s), _) => (s.clone(), false),
            (None, Some(Value::Object(c))) => {
                let (media, m) = c
                    .iter()
                    .next()
                    .ok_or_else(|| format!("{at}: `content` is empty"))?;
                if !super::is_json(media) {
                    return Err(format!(
                        "{at}: parameter content {media:?} is not supported (only JSON)"
                    ));
                }
                (m.get("schema").cloned().unwrap_or(Value::Bool(true)), true)
            }
            _ => (Value::Bool(true), false),
        };
        let explode_default = matches!(location, In::Query | In::Cookie);
        let explode = p
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(explode_default);
        let style = match p.get("style").and_then(Value::as_str) {
            None => {
                if explode_default {
                    Style::Form { explode }
                } else {
                    Style::Simple
                }
            }
            Some("form") => Style::Form { explode },
            Some("simple") => Style::Simple,
            Some("spaceDelimited") => Style::SpaceDelimited,
            Some("pipeDelimited") => Style::PipeDelimited,
            Some("deepObject") => Style::DeepObject,
            Some(other) => {
                return Err(format!(
                    "{at}: parameter style {other:?} is not supported (form, simple, spaceDelimited, pipeDelimited, deepObject are)"
                ))
            }
        };
        let resolved = doc.resolve(&schema)?;
        let (array, object) = match resolved.get("type").and_then(Value::as_str) {
            Some("array") => (
                Some(
                    resolved
                        .get("items")
                        .map_or(Kind::Any, |i| kind_for(i, doc)),
                ),
                None,
            ),
            Some("object") => {
                let props = resolved
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, s)| (k.clone(), kind_for(s, doc)))
                            .collect()
                    })
                    .unwrap_or_default();
                if style == (Style::Form { explode: true }) && !json {
                    return Err(format!(
                        "{at}: an exploded form object parameter is not supported; use deepObject or explode: false"
                    ));
                }
                (None, Some(props))
            }
            _ => (None, None),
        };
        let validator = schemas.compile(&schema, at)?;
        Ok(Param {
            name: name.into(),
            location,
            required,
            style,
            array,
            object,
            kind: kind_for(&schema, doc),
            json,
            validator,
        })
    }

    /// Reads and validates the parameter from its raw values (several for an exploded
    /// query parameter; `deep` holds `name[key]` pairs for deepObject). `Err` is the
    /// reason, in the gateway's words.
    pub(crate) fn check(&self, raw: &[&str], deep: &[(&str, &str)]) -> Result<(), String> {
        let value = if self.json {
            let Some(text) = raw.first() else {
                return self.missing();
            };
            serde_json::from_str::<Value>(text).map_err(|_| "is not valid JSON".to_string())?
        } else if let Some(item) = self.array {
            if raw.is_empty() {
                return self.missing();
            }
            let parts: Vec<&str> = match self.style {
                Style::Form { explode: true } => raw.to_vec(),
                Style::SpaceDelimited => raw.iter().flat_map(|r| r.split(' ')).collect(),
                Style::PipeDelimited => raw.iter().flat_map(|r| r.split('|')).collect(),
                _ => raw.iter().flat_map(|r| r.split(',')).collect(),
            };
            Value::Array(
                parts
                    .into_iter()
                    .map(|s| coerce(s, item))
                    .collect::<Result<_, _>>()?,
            )
        } else if let Some(props) = &self.object {
            let pairs: Vec<(String, &str)> = if self.style == Style::DeepObject {
                if deep.is_empty() {
                    return self.missing();
                }
                deep.iter().map(|(k, v)| (k.to_string(), *v)).collect()
            } else {
                let Some(text) = raw.first() else {
                    return self.missing();
                };
                let items: Vec<&str> = text.split(',').collect();
                if items.len() % 2 != 0 {
                    return Err("is not a list of key,value pairs".into());
                }
                items
                    .chunks(2)
                    .map(|kv| (kv[0].to_string(), kv[1]))
                    .collect()
            };
            let mut m = Map::new();
            for (k, v) in pairs {
                let kind = props
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map_or(Kind::Any, |(_, kind)| *kind);
                m.insert(k, coerce(v, kind)?);
            }
            Value::Object(m)
        } else {
            match raw {
                [] => return self.missing(),
                [one] => coerce(one, self.kind)?,
                _ => return Err("is given more than once".into()),
            }
        };
        if self.validator.is_valid(&value) {
            return Ok(());
        }
        let first = self.validator.iter_errors(&value).next().map(|e| {
            let at = e.instance_path().to_string();
            let why = super::schema::reason(e.kind());
            if at.is_empty() {
                why
            } else {
                format!("{at} {why}")
            }
        });
        first.map_or(Ok(()), Err)
    }

    fn missing(&self) -> Result<(), String> {
        if self.required {
            Err("is required".into())
        } else {
            Ok(())
        }
    }
}

/// `text` read as a JSON value of `kind`.
pub(crate) fn coerce(text: &str, kind: Kind) -> Result<Value, String> {
    Ok(match kind {
        Kind::String | Kind::Any => Value::String(text.to_string()),
        Kind::Integer => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => match text.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err("must be an integer".into()),
            },
        },
        Kind::Number => match text.parse::<f64>() {
            Ok(n) if n.is_finite() && !text.starts_with('+') => Value::from(n),
            _ => return Err("must be a number".into()),
        },
        Kind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err("must be true or false".into()),
        },
    })
}
