//! Configured consumers, resolved once per load into the identity each one stands for,
//! with the identity headers it produces already rendered.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rampart_config::{ConsumerSpec, IdentityHeadersSpec};
use rampart_core::Identity;

/// An identity plus the headers the gateway sets for it upstream.
#[derive(Clone)]
pub struct Resolved {
    pub identity: Arc<Identity>,
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
}

/// The identity headers' names.
pub struct HeaderNames {
    pub consumer: HeaderName,
    pub subject: HeaderName,
    pub roles: HeaderName,
    pub scopes: HeaderName,
    pub method: HeaderName,
    pub credential: HeaderName,
    /// Every name the gateway owns: removed from every client request, on every route.
    pub strip: Vec<HeaderName>,
}

impl HeaderNames {
    pub fn new(spec: &IdentityHeadersSpec) -> Result<Self, String> {
        let name = |s: &str| {
            HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("invalid header name {s:?}"))
        };
        let mut out = Self {
            consumer: name(&spec.consumer)?,
            subject: name(&spec.subject)?,
            roles: name(&spec.roles)?,
            scopes: name(&spec.scopes)?,
            method: name(&spec.method)?,
            credential: name(&spec.credential)?,
            strip: Vec::new(),
        };
        out.strip = [
            &out.consumer,
            &out.subject,
            &out.roles,
            &out.scopes,
            &out.method,
            &out.credential,
        ]
        .into_iter()
        .cloned()
        .collect();
        for s in &spec.strip {
            out.strip.push(name(s)?);
        }
        Ok(out)
    }

    /// Renders the headers for `id`. A value that cannot be a header value (a JWT `sub`
    /// with control characters) is left out rather than sent mangled.
    pub fn render(&self, id: &Identity) -> Arc<[(HeaderName, HeaderValue)]> {
        let mut out = Vec::with_capacity(6);
        let mut put = |n: &HeaderName, v: &str| {
            if v.is_empty() {
                return;
            }
            if let Ok(v) = HeaderValue::from_str(v) {
                out.push((n.clone(), v));
            }
        };
        if let Some(c) = &id.consumer {
            put(&self.consumer, c);
        }
        put(&self.subject, &id.subject);
        put(&self.roles, &join(&id.roles, ","));
        put(&self.scopes, &join(&id.scopes, " "));
        put(&self.method, id.method);
        if let Some(c) = &id.credential {
            put(&self.credential, c);
        }
        out.into()
    }
}

fn join(items: &[Arc<str>], sep: &str) -> String {
    items
        .iter()
        .map(|s| &**s)
        .filter(|s| !s.contains(sep) && !s.contains(','))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Every configured consumer.
pub struct Consumers {
    pub specs: Vec<ConsumerSpec>,
    pub by_id: HashMap<String, usize>,
}

impl Consumers {
    pub fn new(specs: &[ConsumerSpec]) -> Self {
        Self {
            by_id: specs
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.clone(), i))
                .collect(),
            specs: specs.to_vec(),
        }
    }

    /// The identity consumer `i` has when proved by `method` with `credential`.
    pub fn identity(&self, i: usize, method: &'static str, credential: &str) -> Identity {
        let c = &self.specs[i];
        Identity {
            consumer: Some(c.id.as_str().into()),
            subject: c.id.as_str().into(),
            method,
            credential: Some(credential.into()),
            roles: c.roles.iter().map(|r| r.as_str().into()).collect(),
            scopes: c.scopes.iter().map(|r| r.as_str().into()).collect(),
            plan: c.plan.as_deref().map(Into::into),
            attributes: Arc::new(c.attributes.clone().into_iter().collect()),
        }
    }
}
