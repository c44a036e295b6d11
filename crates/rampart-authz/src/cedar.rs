//! Cedar policies (ABAC). The schema is generated from the config at load time, so
//! `rampart validate` rejects a policy that names an attribute no consumer has, a context
//! field that does not exist, or an action no route uses. The request maps as:
//!
//! - principal: `Consumer::"<id>"` for a caller resolved to a configured consumer, or
//!   `Subject::"<issuer>:<sub>"` for a token subject that maps to none. The two never
//!   share a namespace, so a token whose `sub` equals a consumer id cannot match
//!   `principal == Consumer::"that-id"`. Both carry `roles`, `scopes`, `plan`, `method`,
//!   `subject` and `attributes` (the consumer's configured attributes, which win over
//!   token claims; for unmapped JWT callers, the claims that match a declared
//!   attribute's name and type);
//! - action: the route's `authorize.action`, or the HTTP method (`Action::"GET"`);
//! - resource: `Route::"<route name>"` with `name` and `path` (the normalised path);
//! - context: `client_ip` (ipaddr), `time` (unix seconds), `method`, `path`, `tls`,
//!   `mtls`, and `headers` (the route's `policy_headers`).
//!
//! A route with policies denies unless a policy permits (Cedar's default deny).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use rampart_config::{ConfigError, PolicyMode, RouteSpec, Spec};
use rampart_core::{Filter, Flow, Identity, Mode, Phase, Reason, RequestCtx};
use serde_json::Value;

/// The HTTP methods that are Cedar actions.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

/// An attribute's Cedar type, inferred from the consumers' configured values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrType {
    String,
    Long,
    Bool,
    SetString,
    SetLong,
    SetBool,
}

impl AttrType {
    fn of(v: &Value) -> Option<AttrType> {
        Some(match v {
            Value::String(_) => AttrType::String,
            Value::Bool(_) => AttrType::Bool,
            Value::Number(n) if n.is_i64() => AttrType::Long,
            Value::Array(items) => match items.first() {
                None | Some(Value::String(_)) => AttrType::SetString,
                Some(Value::Bool(_)) => AttrType::SetBool,
                Some(Value::Number(n)) if n.is_i64() => AttrType::SetLong,
                _ => return None,
            },
            _ => return None,
        })
    }

    fn cedar(self) -> &'static str {
        match self {
            AttrType::String => "String",
            AttrType::Long => "Long",
            AttrType::Bool => "Bool",
            AttrType::SetString => "Set<String>",
            AttrType::SetLong => "Set<Long>",
            AttrType::SetBool => "Set<Bool>",
        }
    }

    /// `v` as a Cedar value of this type, or `None` when it does not fit.
    fn value(self, v: &Value) -> Option<RestrictedExpression> {
        let scalar = |t: AttrType, v: &Value| match (t, v) {
            (AttrType::String | AttrType::SetString, Value::String(s)) => {
                Some(RestrictedExpression::new_string(s.clone()))
            }
            (AttrType::Bool | AttrType::SetBool, Value::Bool(b)) => {
                Some(RestrictedExpression::new_bool(*b))
            }
            (AttrType::Long | AttrType::SetLong, Value::Number(n)) => {
                n.as_i64().map(RestrictedExpression::new_long)
            }
            _ => None,
        };
        match self {
            AttrType::String | AttrType::Long | AttrType::Bool => scalar(self, v),
            _ => {
                let items = v.as_array()?;
                let vals: Option<Vec<_>> = items.iter().map(|i| scalar(self, i)).collect();
                Some(RestrictedExpression::new_set(vals?))
            }
        }
    }
}

/// The schema every route's policies are validated against.
pub struct CedarSchema {
    schema: Schema,
    attributes: BTreeMap<String, AttrType>,
    consumer_type: EntityTypeName,
    /// Token subjects that map to no configured consumer.
    subject_type: EntityTypeName,
    route_type: EntityTypeName,
    action_type: EntityTypeName,
    /// Cedar source of the schema (shown by `rampart validate` on errors).
    pub text: String,
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl CedarSchema {
    /// Generates the schema from `spec`, or `None` when no route has policies.
    pub fn generate(spec: &Spec) -> Result<Option<Arc<Self>>, Vec<ConfigError>> {
        if !spec
            .routes
            .iter()
            .any(|r| r.authorize.as_ref().is_some_and(|a| !a.policies.is_empty()))
        {
            return Ok(None);
        }
        let mut errs = Vec::new();
        let mut attributes = BTreeMap::new();
        for (i, c) in spec.consumers.iter().enumerate() {
            for (k, v) in &c.attributes {
                let Some(t) = AttrType::of(v) else {
                    errs.push(ConfigError::new(
                        format!("consumers[{i}].attributes.{k}"),
                        "cannot be used by policies: a string, integer, boolean or a list of one of those is needed",
                    ));
                    continue;
                };
                match attributes.insert(k.clone(), t) {
                    Some(prev) if prev != t => errs.push(ConfigError::new(
                        format!("consumers[{i}].attributes.{k}"),
                        format!(
                            "is a {} here but a {} for another consumer; policies need one type",
                            t.cedar(),
                            prev.cedar()
                        ),
                    )),
                    _ => {}
                }
            }
        }
        let mut actions: BTreeSet<String> = METHODS.iter().map(|m| m.to_string()).collect();
        let mut headers = BTreeSet::new();
        for r in &spec.routes {
            if let Some(a) = &r.authorize {
                if let Some(name) = &a.action {
                    actions.insert(name.clone());
                }
                for h in &a.policy_headers {
                    headers.insert(h.to_ascii_lowercase());
                }
            }
        }
        let attrs: Vec<String> = attributes
            .iter()
            .map(|(k, t)| format!("{}?: {}", quote(k), t.cedar()))
            .collect();
        let header_fields: Vec<String> = headers
            .iter()
            .map(|h| format!("{}?: String", quote(h)))
            .collect();
        let actions: Vec<String> = actions.iter().map(|a| quote(a)).collect();
        let text = format!(
            "entity Consumer, Subject = {{\n  \"subject\": String,\n  \"method\": String,\n  \"roles\": Set<String>,\n  \"scopes\": Set<String>,\n  \"plan\"?: String,\n  \"attributes\": {{ {} }},\n}};\n\
             entity Route = {{ \"name\": String, \"path\": String }};\n\
             action {} appliesTo {{\n  principal: [Consumer, Subject],\n  resource: [Route],\n  context: {{\n    \"client_ip\": ipaddr,\n    \"time\": Long,\n    \"method\": String,\n    \"path\": String,\n    \"tls\": Bool,\n    \"mtls\": Bool,\n    \"headers\": {{ {} }},\n  }},\n}};\n",
            attrs.join(", "),
            actions.join(", "),
            header_fields.join(", "),
        );
        if !errs.is_empty() {
            return Err(errs);
        }
        let schema = match Schema::from_cedarschema_str(&text) {
            Ok((s, _)) => s,
            Err(e) => {
                return Err(vec![ConfigError::new(
                    "routes",
                    format!("the generated Cedar schema is invalid: {e}"),
                )])
            }
        };
        let ty = |n: &str| EntityTypeName::from_str(n).expect("static entity type name");
        Ok(Some(Arc::new(Self {
            schema,
            attributes,
            consumer_type: ty("Consumer"),
            subject_type: ty("Subject"),
            route_type: ty("Route"),
            action_type: ty("Action"),
            text,
        })))
    }
}

/// A route's Cedar policy set.
pub struct CedarPolicy {
    schema: Arc<CedarSchema>,
    policies: PolicySet,
    route: EntityUid,
    route_name: String,
    /// The fixed action, or `None` to use the method.
    action: Option<EntityUid>,
    methods: HashMap<&'static str, EntityUid>,
    headers: Vec<http::HeaderName>,
    mode: Mode,
    authorizer: Authorizer,
}

impl CedarPolicy {
    /// Loads and validates route `i`'s policy files (relative to `base`).
    pub fn load(
        schema: &Arc<CedarSchema>,
        i: usize,
        route: &RouteSpec,
        base: &std::path::Path,
    ) -> Result<Self, Vec<ConfigError>> {
        let Some(a) = &route.authorize else {
            return Err(vec![ConfigError::new(
                format!("routes[{i}]"),
                "no authorize",
            )]);
        };
        let mut errs = Vec::new();
        let mut policies = PolicySet::new();
        for (k, file) in a.policies.iter().enumerate() {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            let at = format!("routes[{i}].authorize.policies[{k}]");
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errs.push(ConfigError::new(
                        at,
                        format!("cannot read {}: {}", path.display(), e.kind()),
                    ));
                    continue;
                }
            };
            let set = match PolicySet::from_str(&text) {
                Ok(set) => set,
                Err(e) => {
                    errs.push(ConfigError::new(
                        at,
                        format!("{}: {}", path.display(), cedar_error(&e)),
                    ));
                    continue;
                }
            };
            if set.templates().next().is_some() {
                errs.push(ConfigError::new(at, "policy templates are not supported"));
                continue;
            }
            // Policies are named `<file>:policy<n>` (n counts from 0 in source order) so
            // errors point at the source.
            let name = file.display().to_string();
            for p in set.policies() {
                let id = cedar_policy::PolicyId::new(format!("{name}:{}", p.id()));
                if let Err(e) = policies.add(p.new_id(id)) {
                    errs.push(ConfigError::new(at.clone(), cedar_error(&e)));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let result =
            Validator::new(schema.schema.clone()).validate(&policies, ValidationMode::Strict);
        // Warnings count as errors: "this policy can never apply" is how a misspelt
        // attribute behind a `has` test shows up, and it must not load silently.
        if !result.validation_passed_without_warnings() {
            let mut out: Vec<ConfigError> = result
                .validation_errors()
                .map(|e| {
                    ConfigError::new(
                        format!("routes[{i}].authorize.policies"),
                        format!("policy {}: {}", e.policy_id(), cedar_error(e)),
                    )
                })
                .collect();
            out.extend(result.validation_warnings().map(|w| {
                ConfigError::new(
                    format!("routes[{i}].authorize.policies"),
                    format!("policy {}: {}", w.policy_id(), cedar_error(w)),
                )
            }));
            return Err(out);
        }
        let uid = |t: &EntityTypeName, id: &str| {
            EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
        };
        Ok(Self {
            policies,
            route: uid(&schema.route_type, &route.name),
            route_name: route.name.clone(),
            action: a.action.as_deref().map(|n| uid(&schema.action_type, n)),
            methods: METHODS
                .iter()
                .map(|m| (*m, uid(&schema.action_type, m)))
                .collect(),
            headers: a
                .policy_headers
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            mode: match route.auth_mode {
                PolicyMode::Enforce => Mode::Enforce,
                PolicyMode::Shadow => Mode::Shadow,
            },
            authorizer: Authorizer::new(),
            schema: schema.clone(),
        })
    }

    fn principal(&self, id: &Identity) -> Entity {
        let s = &self.schema;
        let (ty, name) = match id.consumer.as_deref() {
            Some(c) => (&s.consumer_type, c.to_string()),
            None => (
                &s.subject_type,
                format!(
                    "{}:{}",
                    id.credential.as_deref().unwrap_or(id.method),
                    id.subject
                ),
            ),
        };
        let uid = EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(&name));
        let strings = |v: &[Arc<str>]| {
            RestrictedExpression::new_set(
                v.iter()
                    .map(|x| RestrictedExpression::new_string(x.to_string())),
            )
        };
        let mut attrs = HashMap::new();
        attrs.insert(
            "subject".to_string(),
            RestrictedExpression::new_string(id.subject.to_string()),
        );
        attrs.insert(
            "method".to_string(),
            RestrictedExpression::new_string(id.method.to_string()),
        );
        attrs.insert("roles".to_string(), strings(&id.roles));
        attrs.insert("scopes".to_string(), strings(&id.scopes));
        if let Some(p) = &id.plan {
            attrs.insert(
                "plan".to_string(),
                RestrictedExpression::new_string(p.to_string()),
            );
        }
        // Only declared attributes of the declared type: a token claim named like an
        // attribute but of another type is left out rather than failing the request.
        let fields: Vec<(String, RestrictedExpression)> = s
            .attributes
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.value(id.attributes.get(k)?)?)))
            .collect();
        if let Ok(rec) = RestrictedExpression::new_record(fields) {
            attrs.insert("attributes".to_string(), rec);
        }
        Entity::new(uid, attrs, HashSet::new()).unwrap_or_else(|_| {
            Entity::with_uid(EntityUid::from_type_name_and_id(
                ty.clone(),
                EntityId::new(&name),
            ))
        })
    }

    fn decide(&self, cx: &RequestCtx<'_>, id: &Identity) -> bool {
        let action = match &self.action {
            Some(a) => a.clone(),
            None => match self.methods.get(cx.head.method.as_str()) {
                Some(a) => a.clone(),
                None => return false,
            },
        };
        let principal = self.principal(id);
        let route = Entity::new(
            self.route.clone(),
            HashMap::from([
                (
                    "name".to_string(),
                    RestrictedExpression::new_string(self.route_name.clone()),
                ),
                (
                    "path".to_string(),
                    RestrictedExpression::new_string(cx.path.to_string()),
                ),
            ]),
            HashSet::new(),
        );
        let Ok(route) = route else { return false };
        let time = cx
            .now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let headers: Vec<(String, RestrictedExpression)> = self
            .headers
            .iter()
            .filter_map(|h| {
                let v = cx.head.headers.get(h)?.to_str().ok()?;
                Some((
                    h.as_str().to_string(),
                    RestrictedExpression::new_string(v.to_string()),
                ))
            })
            .collect();
        let Ok(headers) = RestrictedExpression::new_record(headers) else {
            return false;
        };
        let context = Context::from_pairs([
            (
                "client_ip".to_string(),
                RestrictedExpression::new_ip(cx.client_ip.to_string()),
            ),
            ("time".to_string(), RestrictedExpression::new_long(time)),
            (
                "method".to_string(),
                RestrictedExpression::new_string(cx.head.method.as_str().to_string()),
            ),
            (
                "path".to_string(),
                RestrictedExpression::new_string(cx.path.to_string()),
            ),
            ("tls".to_string(), RestrictedExpression::new_bool(cx.tls)),
            (
                "mtls".to_string(),
                RestrictedExpression::new_bool(cx.tls_peer.is_some()),
            ),
            ("headers".to_string(), headers),
        ]);
        let Ok(context) = context else { return false };
        let principal_uid = principal.uid();
        let Ok(entities) = Entities::from_entities([principal, route], None) else {
            return false;
        };
        let Ok(request) =
            cedar_policy::Request::new(principal_uid, action, self.route.clone(), context, None)
        else {
            return false;
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        response.decision() == cedar_policy::Decision::Allow
    }
}

impl Filter for CedarPolicy {
    fn phase(&self) -> Phase {
        Phase::Authorize
    }

    fn name(&self) -> &'static str {
        "cedar"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let result = match cx.identity.clone() {
            None => Err(Reason::Unidentified),
            Some(id) if self.decide(cx, &id) => Ok(Reason::AuthzOk),
            Some(_) => Err(Reason::PolicyDenied),
        };
        crate::rules::decide(cx, self.mode, result)
    }
}

/// A Cedar error on one line, with its help when there is one.
fn cedar_error(e: &(impl std::fmt::Display + ?Sized)) -> String {
    e.to_string().replace('\n', " ")
}
