//! Proofs of identity (DESIGN.md §1, the authenticate phase): hashed API keys, JWT bearer
//! tokens with JWKS/OIDC key sets, mTLS client certificates and HMAC-signed requests.
//!
//! [`compile`] turns the config's `identity` and `consumers` into lookup tables once per
//! load ([`IdentityPlan`]) and gives each route the [`rampart_core::Filter`] that runs its
//! `authenticate` list.
#![forbid(unsafe_code)]

pub mod api_key;
mod authenticate;
mod background;
pub mod brute_force;
pub mod client_credentials;
mod consumers;
pub use rampart_fetch as fetch;
pub mod jwt;
pub mod live_keys;
mod mtls;
pub mod signature;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rampart_config::{ConfigError, RouteSpec, Spec};
use rampart_core::{FeaturePlan, Mode, StateStore};

pub use authenticate::{Authenticate, Method};
pub use consumers::{Consumers, HeaderNames, Resolved};

/// Everything the authentication filters of one config share.
pub struct IdentityPlan {
    pub consumers: Consumers,
    pub headers: HeaderNames,
    pub api_key_header: HeaderName,
    pub api_key_query: Option<String>,
    pub api_keys: api_key::ApiKeyIndex,
    /// The identity each API key stands for (indexed by `StoredKey::identity`).
    pub key_identities: Vec<Resolved>,
    pub certificates: mtls::CertificateIndex,
    /// The identity each consumer has when proved by certificate.
    pub mtls_identities: Vec<Resolved>,
    pub signatures: signature::SignatureVerifier,
    pub issuers: HashMap<String, Arc<jwt::Issuer>>,
    /// Brute-force protection shared by every authenticated route (`None` when off).
    pub failures: Option<Arc<brute_force::FailureLimiter>>,
    /// Keys issued at run time, from the consumer store (`None` without one).
    pub live: Option<Arc<live_keys::LiveKeys>>,
    /// Tells this plan's identity headers from another plan's, for identities cached
    /// with store keys.
    pub generation: u64,
}

/// The state-store key under which a gateway keeps the index of `spec`'s consumer store
/// (shared by `rampart-consumers`, which fills it, this crate, which reads it, and the
/// admin API). It is the setting as written: a config reloaded from the same file names
/// the same store.
pub fn live_keys_key(spec: &Spec) -> Option<String> {
    let s = spec.consumer_store.as_ref()?;
    Some(match s.kind {
        rampart_config::ConsumerStoreKind::Embedded => format!(
            "consumer-store\nembedded\n{:?}\n{:?}",
            s.path, spec.state_dir
        ),
        rampart_config::ConsumerStoreKind::Redis => format!(
            "consumer-store\nredis\n{:?}\n{}",
            spec.redis
                .as_ref()
                .map(|r| (&r.url, &r.nodes, r.cluster, &r.username)),
            s.prefix
        ),
    })
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The feature's entry point: every route's authentication filter, tagged
/// [`rampart_core::Phase::Authenticate`] (every route gets one: even a public route must
/// remove client-sent identity headers).
pub fn compile(
    spec: &Spec,
    base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let plan = IdentityPlan::compile(spec, base, state)?;
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    let mut errs = Vec::new();
    // Routes with the same settings share one filter (a config of 10,000 routes has a
    // handful of distinct ones).
    let mut shared: HashMap<_, Arc<dyn rampart_core::Filter>> = HashMap::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let key = (
            r.authenticate.as_slice(),
            &*r.api_key_sources,
            r.auth_mode,
            r.forward_credentials,
        );
        if let Some(f) = shared.get(&key) {
            out.routes[i].push(f.clone());
            continue;
        }
        match plan.route_filter(r) {
            Ok(f) => {
                let f: Arc<dyn rampart_core::Filter> = Arc::new(f);
                shared.insert(key, f.clone());
                out.routes[i].push(f);
            }
            Err(e) => errs.push(ConfigError::new(format!("routes[{i}].authenticate"), e)),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

impl IdentityPlan {
    /// Compiles `spec`'s identity settings, resolving secrets relative to `base`.
    ///
    /// Remote key sets (JWKS URLs, OIDC discovery) and the failed-authentication table
    /// are kept in `state` while their settings stay the same, so a reload neither sends
    /// every request back to a cold key fetch nor forgives a brute-forcing client.
    pub fn compile(
        spec: &Spec,
        base: &Path,
        state: &StateStore,
    ) -> Result<Arc<Self>, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let mut err = |path: String, reason: String| errs.push(ConfigError { path, reason });
        let id = &spec.identity;
        let headers = match HeaderNames::new(&id.headers) {
            Ok(h) => h,
            Err(e) => {
                err("identity.headers".into(), e);
                return Err(errs);
            }
        };
        let consumers = Consumers::new(&spec.consumers);
        let live = live_keys_key(spec).map(|k| state.get_or_insert(&k, live_keys::LiveKeys::new));
        if let Some(live) = &live {
            // One id, one consumer: a store consumer cannot be shadowed by (or shadow)
            // one written in the file.
            for (i, c) in spec.consumers.iter().enumerate() {
                if live.has_consumer(&c.id) {
                    err(
                        format!("consumers[{i}].id"),
                        format!(
                            "{:?} is also a consumer in the consumer store; delete one of them",
                            c.id
                        ),
                    );
                }
            }
        }

        let pepper = match &id.api_keys.pepper {
            Some(r) => match r.resolve(base) {
                Ok(s) => Some(s),
                Err(e) => {
                    err("identity.api_keys.pepper".into(), e);
                    None
                }
            },
            None => None,
        };
        let mut stored = Vec::new();
        let mut key_identities = Vec::new();
        let mut certificates = mtls::CertificateIndex::default();
        let mut mtls_identities = Vec::new();
        let mut signing = HashMap::new();
        for (i, c) in spec.consumers.iter().enumerate() {
            for (k, key) in c.api_keys.iter().enumerate() {
                let Some(hash) = rampart_config::parse_key_hash(&key.hash) else {
                    err(
                        format!("consumers[{i}].api_keys[{k}].hash"),
                        "invalid".into(),
                    );
                    continue;
                };
                let identity = consumers.identity(i, "api_key", &key.id);
                key_identities.push(Resolved {
                    headers: headers.render(&identity),
                    identity: Arc::new(identity),
                });
                stored.push(api_key::StoredKey {
                    hash,
                    id: key.id.as_str().into(),
                    identity: key_identities.len() - 1,
                    not_before: key.not_before.map(|t| t.0),
                    expires: key.expires.map(|t| t.0),
                });
            }
            for (k, m) in c.certificates.iter().enumerate() {
                if let Err(e) = certificates.add(i, m) {
                    err(format!("consumers[{i}].certificates[{k}]"), e);
                }
            }
            let identity = consumers.identity(i, "mtls", &c.id);
            mtls_identities.push(Resolved {
                headers: headers.render(&identity),
                identity: Arc::new(identity),
            });
            for (k, s) in c.signing_keys.iter().enumerate() {
                match s.secret.resolve(base) {
                    Ok(secret) if secret.expose().len() >= 32 => {
                        signing.insert(
                            s.id.clone(),
                            signature::SigningKey {
                                consumer: i,
                                key: aws_lc_rs::hmac::Key::new(
                                    aws_lc_rs::hmac::HMAC_SHA256,
                                    secret.expose().as_bytes(),
                                ),
                                not_before: s.not_before.map(|t| t.0),
                                expires: s.expires.map(|t| t.0),
                                // Kept across reloads: a fresh cache would accept, once,
                                // a request replayed from just before the reload.
                                nonces: {
                                    let cap = id.signatures.nonce_cache_entries;
                                    let key = format!("{}\n{}\n{cap}", c.id, s.id);
                                    state.get_or_insert(&key, || signature::NonceCache::new(cap))
                                },
                            },
                        );
                    }
                    Ok(_) => err(
                        format!("consumers[{i}].signing_keys[{k}].secret"),
                        "must be at least 32 bytes".into(),
                    ),
                    Err(e) => err(format!("consumers[{i}].signing_keys[{k}].secret"), e),
                }
            }
        }
        let api_keys = api_key::ApiKeyIndex::new(
            pepper.as_ref().map_or(&b""[..], |p| p.expose().as_bytes()),
            stored,
        );

        let mut issuers = HashMap::new();
        for (name, s) in &id.jwt {
            let remote = s.secret.is_none() && s.jwks_file.is_none();
            // Remote sources are shared across reloads when their settings are equal.
            let reuse_key = format!(
                "{name}\n{}\n{:?}\n{}\n{:?}\n{:?}",
                s.issuer, s.jwks_url, s.discovery, s.ca_file, s.refresh
            );
            let source = if remote {
                state.get_or_try_insert(&reuse_key, || jwt::key_source(name, s, base))
            } else {
                jwt::key_source(name, s, base).map(Arc::new)
            };
            let source = match source {
                Ok(src) => src,
                Err(e) => {
                    err(format!("identity.jwt.{name}"), e);
                    continue;
                }
            };
            issuers.insert(
                name.clone(),
                Arc::new(jwt::Issuer::new(name, s.clone(), source)),
            );
        }

        let api_key_header = HeaderName::from_bytes(id.api_keys.header.as_bytes())
            .unwrap_or(HeaderName::from_static("x-api-key"));
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Arc::new(Self {
            consumers,
            headers,
            api_key_header,
            api_key_query: id.api_keys.query_param.clone(),
            api_keys,
            key_identities,
            certificates,
            mtls_identities,
            signatures: signature::SignatureVerifier {
                keys: signing,
                max_skew: id.signatures.max_skew.get(),
            },
            issuers,
            live,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            failures: id.auth_failures.enabled.then(|| {
                let key = format!("{:?}\n{}", id.auth_failures, spec.limits.ipv6_prefix);
                state.get_or_insert(&key, || {
                    brute_force::FailureLimiter::new(&id.auth_failures, spec.limits.ipv6_prefix)
                })
            }),
        }))
    }

    /// The authentication filter for `route` (every route gets one: even a public route
    /// must remove client-sent identity headers).
    pub fn route_filter(self: &Arc<Self>, route: &RouteSpec) -> Result<Authenticate, String> {
        let mut methods = Vec::new();
        for m in &route.authenticate {
            methods.push(match m.as_str() {
                "api_key" => Method::ApiKey,
                "mtls" => Method::Mtls,
                "signature" => Method::Signature,
                other => {
                    let name = other
                        .strip_prefix("jwt:")
                        .ok_or_else(|| format!("unknown method {other:?}"))?;
                    Method::Jwt(
                        self.issuers
                            .get(name)
                            .cloned()
                            .ok_or_else(|| format!("unknown JWT issuer {name:?}"))?,
                    )
                }
            });
        }
        let bearer = methods.iter().any(|m| matches!(m, Method::Jwt(_)))
            || (methods.iter().any(|m| matches!(m, Method::ApiKey))
                && route
                    .api_key_sources
                    .contains(&rampart_config::ApiKeySource::Bearer));
        let scheme = if bearer {
            "Bearer"
        } else if methods.iter().any(|m| matches!(m, Method::Signature)) {
            signature::SCHEME
        } else if methods.iter().any(|m| matches!(m, Method::ApiKey)) {
            "ApiKey"
        } else {
            "Mutual"
        };
        let challenge = HeaderValue::from_str(&format!("{scheme} realm=\"rampart\""))
            .map_err(|e| e.to_string())?;
        let challenge_invalid = if bearer {
            HeaderValue::from_static("Bearer realm=\"rampart\", error=\"invalid_token\"")
        } else {
            challenge.clone()
        };
        Ok(Authenticate {
            plan: self.clone(),
            methods,
            sources: route.api_key_sources.to_vec(),
            mode: match route.auth_mode {
                rampart_config::PolicyMode::Enforce => Mode::Enforce,
                rampart_config::PolicyMode::Shadow => Mode::Shadow,
            },
            forward_credentials: route.forward_credentials,
            challenge,
            challenge_invalid,
        })
    }
}
