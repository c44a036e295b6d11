//! JWT bearer tokens, resource-server side: one [`Issuer`] per configured issuer, with its
//! keys ([`jwks`]), the strict parser and claim rules ([`token`]), and a per-thread cache
//! of verified tokens so a repeat request costs a hash and a map lookup.

pub mod jwks;
pub mod keys;
pub mod strict_json;
pub mod token;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use rampart_config::{JwtAlgorithm, JwtIssuerSpec};
use rampart_core::{Identity, Reason, Wait};

use crate::consumers::{Consumers, HeaderNames, Resolved};
use jwks::KeySource;

/// The result of checking a token.
pub enum Verified {
    Ok(Resolved),
    Err(Reason),
    /// Keys are being fetched; wait and ask again.
    Wait(Wait),
}

/// One trusted issuer, compiled.
pub struct Issuer {
    pub name: Arc<str>,
    /// Distinguishes this compiled issuer in the per-thread cache across reloads.
    id: u64,
    spec: JwtIssuerSpec,
    pub keys: Arc<KeySource>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Cached {
    resolved: Resolved,
    exp: SystemTime,
    generation: u64,
}

thread_local! {
    /// Verified tokens, keyed by (issuer id, SHA-256 of the token). A hash, not the token,
    /// so the cache holds no credentials; SHA-256, so no token can collide with another.
    static CACHE: RefCell<HashMap<(u64, [u8; 32]), Cached>> = RefCell::new(HashMap::new());
}

impl Issuer {
    pub fn new(name: &str, spec: JwtIssuerSpec, keys: Arc<KeySource>) -> Self {
        Self {
            name: name.into(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            spec,
            keys,
        }
    }

    /// Checks `token` at `now`.
    pub fn verify(
        self: &Arc<Self>,
        token: &[u8],
        now: SystemTime,
        consumers: &Consumers,
        headers: &HeaderNames,
    ) -> Verified {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let keyset = self.keys.keys.load();
        let leeway = self.spec.leeway.get();
        let hit = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            match c.get(&(self.id, key)) {
                Some(e) if e.generation == keyset.generation && now < e.exp + leeway => {
                    Some(e.resolved.clone())
                }
                Some(_) => {
                    c.remove(&(self.id, key));
                    None
                }
                None => None,
            }
        });
        if let Some(r) = hit {
            return Verified::Ok(r);
        }
        let parsed = match token::parse(token, &self.spec.algorithms) {
            Ok(p) => p,
            Err(r) => return Verified::Err(r),
        };
        if keyset.keys.is_empty() {
            return match self.keys.want_fetch() {
                Some(w) => Verified::Wait(w),
                None => Verified::Err(Reason::JwtNoKeys),
            };
        }
        let candidates = keyset.keys.iter().filter(|k| {
            k.fits(parsed.alg)
                && match (&parsed.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    // A token without `kid` may use any key that fits its algorithm; a
                    // token with one must match exactly.
                    (None, _) => true,
                    (Some(_), None) => keyset.keys.iter().all(|k| k.kid.is_none()),
                }
        });
        let mut any = false;
        let mut good = false;
        for k in candidates.take(8) {
            any = true;
            if k.verify(parsed.alg, parsed.signing_input, &parsed.signature) {
                good = true;
                break;
            }
        }
        if !any {
            // Perhaps the IdP rotated: one shared fetch per cooldown.
            return match self.keys.want_fetch() {
                Some(w) => Verified::Wait(w),
                None => Verified::Err(Reason::JwtUnknownKey),
            };
        }
        if !good {
            return Verified::Err(Reason::JwtSignature);
        }
        let rules = token::ClaimRules {
            issuer: &self.spec.issuer,
            audiences: &self.spec.audiences,
            leeway,
            max_lifetime: self.spec.max_lifetime.get(),
            typ: self.spec.typ.as_deref(),
            required: &self.spec.required_claims,
        };
        let exp = match token::check_claims(&parsed, &rules, now) {
            Ok(e) => e,
            Err(r) => return Verified::Err(r),
        };
        let resolved = self.identity(parsed.claims, consumers, headers);
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= self.spec.cache_entries {
                c.retain(|_, e| now < e.exp);
                if c.len() >= self.spec.cache_entries {
                    // Still full of live tokens: start over rather than grow.
                    c.clear();
                }
            }
            c.insert(
                (self.id, key),
                Cached {
                    resolved: resolved.clone(),
                    exp,
                    generation: keyset.generation,
                },
            );
        });
        Verified::Ok(resolved)
    }

    fn identity(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
        consumers: &Consumers,
        headers: &HeaderNames,
    ) -> Resolved {
        let mut roles = token::string_list(claims.get(&self.spec.roles_claim));
        let scopes = self
            .spec
            .scopes_claims
            .iter()
            .find_map(|c| claims.get(c))
            .map(|v| token::string_list(Some(v)))
            .unwrap_or_default();
        let subject: Arc<str> = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .into();
        let mut consumer = None;
        let mut plan = None;
        let mut attributes = claims;
        if let Some(claim) = &self.spec.consumer_claim {
            let id = attributes.get(claim).and_then(|v| v.as_str());
            if let Some(&i) = id.and_then(|id| consumers.by_id.get(id)) {
                let c = &consumers.specs[i];
                consumer = Some(Arc::<str>::from(c.id.as_str()));
                plan = c.plan.as_deref().map(Into::into);
                for r in &c.roles {
                    if !roles.iter().any(|x| **x == **r) {
                        roles.push(r.as_str().into());
                    }
                }
                // The operator's attributes win: a token may not rewrite what the config
                // says about its consumer (`tier`, `tenant`, ...).
                for (k, v) in &c.attributes {
                    attributes.insert(k.clone(), v.clone());
                }
            }
        }
        let identity = Identity {
            consumer,
            subject,
            method: "jwt",
            credential: Some(self.name.clone()),
            roles,
            scopes,
            plan,
            attributes: Arc::new(attributes),
        };
        Resolved {
            headers: headers.render(&identity),
            identity: Arc::new(identity),
        }
    }

    /// The algorithms this issuer accepts.
    pub fn algorithms(&self) -> &[JwtAlgorithm] {
        &self.spec.algorithms
    }
}

/// Loads the keys an issuer starts with (files and secrets; remote sources start empty).
pub fn key_source(
    name: &str,
    spec: &JwtIssuerSpec,
    base: &std::path::Path,
) -> Result<KeySource, String> {
    use keys::{KeyMaterial, VerifyKey};
    let name: Arc<str> = name.into();
    if let Some(secret) = &spec.secret {
        let s = secret.resolve(base)?;
        // RFC 7518 §3.2: a key at least as long as the hash output.
        let need = spec
            .algorithms
            .iter()
            .map(|a| match a {
                rampart_config::JwtAlgorithm::HS384 => 48,
                rampart_config::JwtAlgorithm::HS512 => 64,
                _ => 32,
            })
            .max()
            .unwrap_or(32);
        if s.expose().len() < need {
            return Err(format!(
                "secret: must be at least {need} bytes for the algorithms listed (RFC 7518 §3.2)"
            ));
        }
        return Ok(KeySource::local(
            name,
            vec![VerifyKey {
                kid: None,
                alg: None,
                material: KeyMaterial::Hmac(s.expose().as_bytes().to_vec()),
            }],
        ));
    }
    if let Some(file) = &spec.jwks_file {
        let path = if file.is_absolute() {
            file.clone()
        } else {
            base.join(file)
        };
        let text = std::fs::read(&path)
            .map_err(|e| format!("jwks_file: cannot read {}: {}", path.display(), e.kind()))?;
        let keys = if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let (keys, skipped) = keys::parse_jwks(&text).map_err(|e| format!("jwks_file: {e}"))?;
            if let Some(s) = skipped.first() {
                return Err(format!("jwks_file: {s}"));
            }
            keys
        } else {
            keys::parse_pem(&text).map_err(|e| format!("jwks_file: {e}"))?
        };
        if keys.is_empty() {
            return Err("jwks_file: no keys".into());
        }
        return Ok(KeySource::local(name, keys));
    }
    let tls = crate::fetch::client_tls(
        spec.ca_file
            .as_deref()
            .map(|p| {
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                }
            })
            .as_deref(),
    )
    .map_err(|e| format!("ca_file: {e}"))?;
    Ok(KeySource::remote(
        name,
        spec.jwks_url.clone(),
        spec.issuer.clone(),
        tls,
        spec.refresh.clone(),
    ))
}
