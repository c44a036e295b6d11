//! Data protection on the response side (issue "Data protection"): personal and secret
//! data masked in JSON responses, by path and by detector (`routes[].mask`), and response
//! field allow- and deny-lists (`routes[].response_fields`, OWASP API3), both applied by
//! one streaming rewriter in bounded memory; and CORS per route (`routes[].cors`).
//!
//! A crate of its own rather than part of `rampart-inspect`: inspection judges requests
//! and carries the heavy schema, injection and GeoIP crates; this rewrites responses and
//! needs none of them (an HMAC, base64), so a change to either rebuilds only itself.
#![forbid(unsafe_code)]

mod action;
mod body_filter;
mod body_ops;
mod cors;
mod credentials;
mod filter;
mod headers;
mod media;
mod oauth2;
mod path;
mod query;
mod rewrite;
mod xml;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::hmac;
use rampart_config::{ConfigError, MaskAction, MaskSpec, ResponseFieldsSpec, Spec, Unparseable};
use rampart_core::pii::PiiKind;
use rampart_core::{FeaturePlan, MetricsSource, MetricsText, StateStore};

#[doc(hidden)]
pub use body_ops::fuzz_body_ops;
pub use cors::Cors;
pub use credentials::UpstreamCredential;
pub use filter::DataProtection;
pub use headers::HeaderTransform;
use path::{Paths, States};
#[doc(hidden)]
pub use xml::fuzz_xml;

/// The shortest `hash_key` accepted: an HMAC key needs the entropy of its output's
/// security level to stop a dictionary of likely values (every card number) being hashed.
const MIN_HASH_KEY: usize = 16;

/// A route's compiled masking rules.
pub(crate) struct MaskPlan {
    paths: Paths,
    /// The action of each field rule, by rule index.
    actions: Vec<MaskAction>,
    /// Detector rules; their counts follow the field rules'.
    detect: Vec<(PiiKind, MaskAction)>,
    kinds: Vec<PiiKind>,
    key: Option<hmac::Key>,
    /// Per automaton state, the rule a value there is masked by: the strongest action
    /// among the rules that end there (`remove` over the others), the first such rule
    /// on a tie.
    strongest: Vec<Option<(MaskAction, usize)>>,
}

impl MaskPlan {
    fn new(
        paths: Paths,
        actions: Vec<MaskAction>,
        detect: Vec<(PiiKind, MaskAction)>,
        kinds: Vec<PiiKind>,
        key: Option<hmac::Key>,
    ) -> MaskPlan {
        let strongest = paths
            .states()
            .map(|s| {
                paths
                    .accepted(s)
                    .map(|r| (actions[r], std::cmp::Reverse(r)))
                    .max()
                    .map(|(a, r)| (a, r.0))
            })
            .collect();
        MaskPlan {
            paths,
            actions,
            detect,
            kinds,
            key,
            strongest,
        }
    }

    /// The rule a value in state `states` is masked by, if any ends there.
    fn strongest(&self, states: States) -> Option<(MaskAction, usize)> {
        self.strongest.get(states.id()).copied().flatten()
    }

    /// The count index and action of a detector's kind (only configured kinds are found).
    fn rule_of(&self, kind: PiiKind) -> (usize, MaskAction) {
        let j = self
            .detect
            .iter()
            .position(|(k, _)| *k == kind)
            .unwrap_or(0);
        let action = self.detect.get(j).map_or(MaskAction::Redact, |d| d.1);
        (self.actions.len() + j, action)
    }
}

fn compile_xml(
    spec: &rampart_config::XmlSpec,
    at: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<body_filter::XmlConversion> {
    if !spec.request && !spec.response {
        errors.push(ConfigError::new(
            at,
            "converts nothing: set `request: true` (JSON to XML upstream), `response: true` \
             (XML answers to JSON), or both",
        ));
        return None;
    }
    let Ok(content_type) = http::HeaderValue::from_str(&spec.content_type) else {
        errors.push(ConfigError::new(
            format!("{at}.content_type"),
            "not a header value",
        ));
        return None;
    };
    Some(body_filter::XmlConversion {
        request: spec.request,
        response: spec.response,
        content_type,
        options: xml::XmlOptions {
            strip_namespaces: spec.strip_namespaces,
            arrays: spec.arrays.iter().map(|a| a.as_str().into()).collect(),
        },
    })
}

/// A compiled allow- or deny-list.
pub(crate) struct FieldList {
    paths: Paths,
    allow: bool,
}

/// The feature's entry point: one [`DataProtection`] filter per route with `mask` or
/// `response_fields`.
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    let mut errors = Vec::new();
    let mut totals = Vec::new();
    // One credential filter per upstream, shared by its routes.
    let mut creds = std::collections::HashMap::new();
    let mut tokens = Vec::new();
    for (name, u) in &spec.upstreams {
        if let Some(c) = &u.credentials {
            let at = format!("upstreams.{name}.credentials");
            let t = &mut tokens;
            if let Some(f) = UpstreamCredential::compile(c, name, base, state, &at, t, &mut errors)
            {
                creds.insert(name.as_str(), f);
            }
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        if let Some(t) = &r.transform {
            let at = format!("routes[{i}].transform");
            let params =
                rampart_core::PathParams::from_pattern(r.matcher.path.as_deref().unwrap_or(""));
            let rules = |s: &Option<rampart_config::HeaderRulesSpec>, k: &str, e: &mut Vec<_>| {
                s.as_ref()
                    .map(|s| headers::HeaderRules::compile(s, &params, &format!("{at}.{k}"), e))
                    .unwrap_or_default()
            };
            let request = rules(&t.request_headers, "request_headers", &mut errors);
            let response = rules(&t.response_headers, "response_headers", &mut errors);
            let query = t
                .query
                .as_ref()
                .map(|q| {
                    query::QueryRules::compile(q, &params, &format!("{at}.query"), &mut errors)
                })
                .unwrap_or_default();
            if let Some(f) = HeaderTransform::new(request, response, query) {
                out.routes[i].push(Arc::new(f));
            }
            let ops = |specs: &[rampart_config::BodyOpSpec], k: &str, e: &mut Vec<_>| {
                body_ops::BodyOps::compile(specs, &params, &format!("{at}.{k}"), e)
            };
            let request = ops(&t.request_body, "request_body", &mut errors);
            let response = ops(&t.response_body, "response_body", &mut errors);
            let max = t.max_response_bytes.map_or(1 << 20, |b| b.0) as usize;
            let xml = t
                .xml
                .as_ref()
                .and_then(|x| compile_xml(x, &format!("{at}.xml"), &mut errors));
            if let Some(f) = body_filter::JsonBodyTransform::new(request, response, max, xml) {
                out.routes[i].push(Arc::new(f));
            }
        }
        // After the route's header rules: a rule removing the caller's `Authorization`
        // must not remove the gateway's own credential.
        if let Some(f) = creds.get(r.upstream.as_str()) {
            out.routes[i].push(f.clone());
        }
        if let Some(c) = &r.cors {
            if let Some(c) = Cors::compile(c, &format!("routes[{i}].cors"), &mut errors) {
                out.routes[i].push(Arc::new(c));
            }
        }
        if r.mask.is_none() && r.response_fields.is_none() {
            continue;
        }
        let at = format!("routes[{i}]");
        let mask = r
            .mask
            .as_deref()
            .and_then(|m| compile_mask(m, base, &format!("{at}.mask"), &mut errors));
        let lists = r
            .response_fields
            .as_deref()
            .and_then(|f| compile_lists(f, &format!("{at}.response_fields"), &mut errors));
        let Some(settings) = r.mask.as_deref().map_or(Some(Settings::default()), |m| {
            Settings::from_spec(m, &format!("{at}.mask"), &mut errors)
        }) else {
            continue;
        };
        if (r.mask.is_some() && mask.is_none()) || (r.response_fields.is_some() && lists.is_none())
        {
            continue;
        }
        let names: Arc<[Box<str>]> = r
            .mask
            .as_deref()
            .map(|m| {
                m.fields
                    .iter()
                    .map(|f| f.path.as_str().into())
                    .chain(m.detect.iter().map(|d| d.kind.as_str().into()))
                    .collect()
            })
            .unwrap_or_default();
        let t = Arc::new(Totals {
            route: r.name.as_str().into(),
            names: names.clone(),
            counts: names.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        totals.push(t.clone());
        out.routes[i].push(Arc::new(DataProtection::new(
            mask.map(|m| (Arc::new(m.0), m.1)),
            lists,
            names,
            settings,
            t,
        )));
    }
    if !totals.is_empty() {
        out.metrics.push(Arc::new(Metrics(totals)));
    }
    if !tokens.is_empty() {
        out.metrics.push(Arc::new(oauth2::TokenMetrics(tokens)));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// How a route's rewriter treats what it cannot mask.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pass: bool,
    max_value: usize,
    /// Media types masked besides JSON and `+json` (lowercase essences).
    media: Vec<Box<str>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pass: false,
            max_value: 1 << 20,
            media: Vec::new(),
        }
    }
}

impl Settings {
    fn from_spec(m: &MaskSpec, at: &str, errors: &mut Vec<ConfigError>) -> Option<Settings> {
        let max_value = usize::try_from(m.max_value_bytes.0).unwrap_or(usize::MAX);
        if max_value < 64 {
            errors.push(ConfigError::new(
                format!("{at}.max_value_bytes"),
                "must be at least 64 bytes",
            ));
            return None;
        }
        let mut media = Vec::new();
        for (j, t) in m.media_types.iter().enumerate() {
            let t = t.trim().to_ascii_lowercase();
            if t.split('/').count() != 2 || t.contains(';') || t.contains('*') {
                errors.push(ConfigError::new(
                    format!("{at}.media_types[{j}]"),
                    "write a media type as type/subtype, without parameters or wildcards",
                ));
                return None;
            }
            media.push(t.into());
        }
        Some(Settings {
            pass: m.on_unparseable == Unparseable::Pass,
            max_value,
            media,
        })
    }
}

/// The exemption of a route's masking.
#[derive(Debug, Default)]
pub(crate) struct Exempt {
    roles: Vec<Box<str>>,
    scopes: Vec<Box<str>>,
    consumers: Vec<Box<str>>,
}

fn compile_mask(
    m: &MaskSpec,
    base: &Path,
    at: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<(MaskPlan, Option<Exempt>)> {
    let before = errors.len();
    if m.fields.is_empty() && m.detect.is_empty() {
        errors.push(ConfigError::new(
            at,
            "masks nothing: give `fields`, `detect` or both",
        ));
    }
    let paths: Vec<&str> = m.fields.iter().map(|f| f.path.as_str()).collect();
    let compiled = Paths::compile(&paths)
        .map_err(|(j, e)| errors.push(ConfigError::new(format!("{at}.fields[{j}].path"), e)))
        .ok();
    let mut detect = Vec::new();
    for (j, d) in m.detect.iter().enumerate() {
        match PiiKind::from_name(&d.kind) {
            None => errors.push(ConfigError::new(
                format!("{at}.detect[{j}].kind"),
                format!(
                    "unknown kind `{}`: one of {}",
                    d.kind,
                    PiiKind::ALL.map(|k| k.name()).join(", ")
                ),
            )),
            Some(_) if d.action == MaskAction::Remove => errors.push(ConfigError::new(
                format!("{at}.detect[{j}].action"),
                "`remove` drops a member and applies to fields only; a detected value can be \
                 redacted, hashed or cut to its last 4",
            )),
            Some(k) if detect.iter().any(|(x, _)| *x == k) => errors.push(ConfigError::new(
                format!("{at}.detect[{j}].kind"),
                format!("`{}` is listed twice", d.kind),
            )),
            Some(k) => detect.push((k, d.action)),
        }
    }
    let hashes = m
        .fields
        .iter()
        .map(|f| f.action)
        .chain(m.detect.iter().map(|d| d.action));
    let key = match (&m.hash_key, hashes.clone().any(|a| a == MaskAction::Hash)) {
        (None, true) => {
            errors.push(ConfigError::new(
                format!("{at}.hash_key"),
                "a rule hashes, so a key is required (`hash_key: { env: NAME }`): an unkeyed \
                 hash of a card number or an e-mail is reversed by hashing every candidate",
            ));
            None
        }
        (Some(r), _) => match r.resolve(base) {
            Ok(s) if s.expose().len() >= MIN_HASH_KEY => {
                Some(hmac::Key::new(hmac::HMAC_SHA256, s.expose().as_bytes()))
            }
            Ok(_) => {
                errors.push(ConfigError::new(
                    format!("{at}.hash_key"),
                    format!("the key must be at least {MIN_HASH_KEY} bytes"),
                ));
                None
            }
            Err(e) => {
                errors.push(ConfigError::new(format!("{at}.hash_key"), e));
                None
            }
        },
        (None, false) => None,
    };
    let exempt = m.exempt.as_ref().map(|e| Exempt {
        roles: e.roles_any.iter().map(|s| s.as_str().into()).collect(),
        scopes: e.scopes_any.iter().map(|s| s.as_str().into()).collect(),
        consumers: e.consumers.iter().map(|s| s.as_str().into()).collect(),
    });
    if let Some(e) = &exempt {
        if e.roles.is_empty() && e.scopes.is_empty() && e.consumers.is_empty() {
            errors.push(ConfigError::new(
                format!("{at}.exempt"),
                "exempts no one: give `roles_any`, `scopes_any` or `consumers`",
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    let kinds = detect.iter().map(|(k, _)| *k).collect();
    Some((
        MaskPlan::new(
            compiled?,
            m.fields.iter().map(|f| f.action).collect(),
            detect,
            kinds,
            key,
        ),
        exempt,
    ))
}

/// The route's list and the per-role ones.
pub(crate) struct Lists {
    default: Option<Arc<FieldList>>,
    per_role: Vec<RoleList>,
}

/// The list of callers with any of `roles` (`None`: the whole response).
pub(crate) struct RoleList {
    roles: Vec<Box<str>>,
    list: Option<Arc<FieldList>>,
}

fn compile_lists(f: &ResponseFieldsSpec, at: &str, errors: &mut Vec<ConfigError>) -> Option<Lists> {
    let before = errors.len();
    let one = |allow: &[String], deny: &[String], at: &str, errors: &mut Vec<ConfigError>| {
        let (paths, is_allow, field) = match (allow.is_empty(), deny.is_empty()) {
            (true, true) => return None,
            (false, false) => {
                errors.push(ConfigError::new(
                    at,
                    "give `allow` or `deny`, not both: an allow-list already removes \
                     everything it does not name",
                ));
                return None;
            }
            (false, true) => (allow, true, "allow"),
            (true, false) => (deny, false, "deny"),
        };
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        match Paths::compile(&paths) {
            Ok(p) => Some(Arc::new(FieldList {
                paths: p,
                allow: is_allow,
            })),
            Err((j, e)) => {
                errors.push(ConfigError::new(format!("{at}.{field}[{j}]"), e));
                None
            }
        }
    };
    let default = one(&f.allow, &f.deny, at, errors);
    let mut per_role = Vec::new();
    for (j, r) in f.per_role.iter().enumerate() {
        let at = format!("{at}.per_role[{j}]");
        if r.roles_any.is_empty() {
            errors.push(ConfigError::new(format!("{at}.roles_any"), "names no role"));
        }
        let list = one(&r.allow, &r.deny, &at, errors);
        per_role.push(RoleList {
            roles: r.roles_any.iter().map(|s| s.as_str().into()).collect(),
            list,
        });
    }
    if default.is_none() && per_role.is_empty() && errors.len() == before {
        errors.push(ConfigError::new(
            at,
            "lists nothing: give `allow`, `deny` or `per_role`",
        ));
    }
    (errors.len() == before).then_some(Lists { default, per_role })
}

/// `rampart_masked_values_total{route,rule}`, summed from each exchange's counts.
pub(crate) struct Totals {
    route: Box<str>,
    names: Arc<[Box<str>]>,
    counts: Box<[AtomicU64]>,
}

impl Totals {
    fn add(&self, i: usize, n: u32) {
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(u64::from(n), Ordering::Relaxed);
        }
    }
}

struct Metrics(Vec<Arc<Totals>>);

impl MetricsSource for Metrics {
    fn render(&self, out: &mut MetricsText) {
        out.family(
            "rampart_masked_values_total",
            "counter",
            "Values masked (or removed) in responses, by route and rule (a JSON path or a detector kind).",
        );
        for t in &self.0 {
            for (name, c) in t.names.iter().zip(t.counts.iter()) {
                out.sample(
                    "rampart_masked_values_total",
                    &[("route", &t.route), ("rule", name)],
                    c.load(Ordering::Relaxed),
                );
            }
        }
    }
}

/// For the fuzz target (`fuzz/fuzz_targets/mask.rs`): runs `frames` through a rewriter
/// with a fixed set of rules (field paths with every action, every detector, a deny-list)
/// and returns what the client would receive, or the abort code.
#[doc(hidden)]
pub fn fuzz_rewrite(
    frames: &[&[u8]],
    max_value: usize,
    pass: bool,
) -> Result<Vec<u8>, &'static str> {
    use rampart_core::BodyRewriter as _;
    let paths = [
        "$..ssn",
        "$.card.number",
        "$.items[*].email",
        "$..secret",
        "$.a.*",
    ];
    let mask = MaskPlan::new(
        Paths::compile(&paths).map_err(|_| "paths")?,
        vec![
            MaskAction::Redact,
            MaskAction::Last4,
            MaskAction::Hash,
            MaskAction::Remove,
            MaskAction::Redact,
        ],
        PiiKind::ALL
            .iter()
            .map(|k| (*k, MaskAction::Redact))
            .collect(),
        PiiKind::ALL.to_vec(),
        Some(hmac::Key::new(hmac::HMAC_SHA256, b"fuzzing key 0123")),
    );
    let list = FieldList {
        paths: Paths::compile(&["$..password", "$.x[0]"]).map_err(|_| "paths")?,
        allow: false,
    };
    let mut rw = rewrite::Rewriter::new(
        Some(Arc::new(mask)),
        Some(Arc::new(list)),
        None,
        max_value.max(64),
        pass,
    );
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let end = i + 1 == frames.len();
        out.extend_from_slice(&rw.on_data(bytes::Bytes::copy_from_slice(f), end)?);
    }
    Ok(out)
}
