//! What `rampart test` runs the cases against: the config compiled as it is, with what
//! reaches outside the process replaced — one plain listener on loopback, every upstream
//! pointed at an in-process upstream that answers as each case says and records what it
//! was sent, no admin API, audit trail, state directory, consumer store or Redis — plus
//! test consumers with known keys and a test signing key for each JWT issuer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use rampart_config::{JwtAlgorithm, SecretRef, Spec};
use rampart_core::{ExchangeRecord, Filter, Phase};

/// Stands in for a secret the config names but this machine does not hold.
const TEST_SECRET: &str = "rampart-test-secret-0123456789abcdef0123456789abcdef";

/// What the upstream answers, and what it was last sent.
#[derive(Default)]
pub struct Upstream {
    pub answer: Mutex<Answer>,
    pub seen: Mutex<Option<Seen>>,
}

#[derive(Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Starts the upstream on loopback (a thread of its own); returns its address.
pub fn start_upstream(state: Arc<Upstream>) -> std::io::Result<SocketAddr> {
    crate::local_server::serve_loopback("rampart-test-upstream", move |req| {
        let state = state.clone();
        async move { Ok(state.answer(req).await) }
    })
}

impl Upstream {
    /// Records the request, and answers as the case says.
    async fn answer(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> http::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(Seen {
            path: parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            headers: parts.headers,
            body,
        });
        let a = self
            .answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut resp = http::Response::new(Full::new(a.body));
        *resp.status_mut() = http::StatusCode::from_u16(a.status).unwrap_or(http::StatusCode::OK);
        for (k, v) in &a.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::try_from(k.as_str()),
                http::HeaderValue::try_from(v.as_str()),
            ) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }
}

/// What the gateway decided about one exchange, by request id.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub route: Option<String>,
    pub code: Option<&'static str>,
    pub decisions: Vec<&'static str>,
}

/// A log-phase filter on every chain that keeps each exchange's decisions.
#[derive(Default)]
pub struct Observer(pub Mutex<HashMap<String, Observed>>);

impl Filter for Observer {
    fn phase(&self) -> Phase {
        Phase::ResponseHeaders
    }

    fn name(&self) -> &'static str {
        "test.observer"
    }

    fn on_log(&self, r: &ExchangeRecord<'_>) {
        let o = Observed {
            route: r.route.map(str::to_string),
            code: r.code,
            decisions: r
                .exchange
                .map(|x| x.decisions.iter().map(|d| d.reason.code()).collect())
                .unwrap_or_default(),
        };
        let id = r.request_id.to_str().unwrap_or("").to_string();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, o);
    }
}

/// A test consumer from the cases file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConsumer {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, Value>,
    /// The consumer's API key in the tests (stored hashed with the config's pepper).
    #[serde(default)]
    pub api_key: Option<String>,
}

/// A signing key for one JWT issuer.
pub enum TestKey {
    Es256(aws_lc_rs::signature::EcdsaKeyPair),
    EdDsa(aws_lc_rs::signature::Ed25519KeyPair),
    Hmac(JwtAlgorithm, Vec<u8>),
}

impl TestKey {
    /// Signs `claims` as a compact JWT.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let alg = match self {
            TestKey::Es256(_) => "ES256",
            TestKey::EdDsa(_) => "EdDSA",
            TestKey::Hmac(a, _) => match a {
                JwtAlgorithm::HS384 => "HS384",
                JwtAlgorithm::HS512 => "HS512",
                _ => "HS256",
            },
        };
        let input = format!(
            "{}.{}",
            b64.encode(json!({"alg": alg, "typ": "JWT", "kid": "rampart-test"}).to_string()),
            b64.encode(claims.to_string())
        );
        let sig = match self {
            TestKey::Es256(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
                .map_err(|_| "cannot sign")?
                .as_ref()
                .to_vec(),
            TestKey::EdDsa(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
            TestKey::Hmac(a, secret) => {
                let algo = match a {
                    JwtAlgorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    JwtAlgorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => aws_lc_rs::hmac::HMAC_SHA256,
                };
                aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(algo, secret), input.as_bytes())
                    .as_ref()
                    .to_vec()
            }
        };
        Ok(format!("{input}.{}", b64.encode(sig)))
    }
}

/// What requests are signed with: each issuer's test key, each test consumer's key, and
/// where they go.
pub struct Credentials {
    pub keys: HashMap<String, TestKey>,
    /// Plain API keys by test consumer id.
    pub plain: HashMap<String, String>,
    pub api_key_header: String,
    /// `iss` and the first audience, by issuer name.
    pub issuers: HashMap<String, (String, Option<String>)>,
}

/// Rewrites `spec` for the run (see the module's doc) and makes a key for each JWT
/// issuer (its JWKS written into `dir`).
pub fn prepare(
    spec: &mut Spec,
    base: &Path,
    dir: &Path,
    upstream: SocketAddr,
    consumers: &[TestConsumer],
) -> Result<Credentials, String> {
    use aws_lc_rs::signature::KeyPair as _;
    let listener = spec
        .listeners
        .first()
        .map_or("public".to_string(), |l| l.name.clone());
    spec.listeners = vec![
        serde_json::from_value(json!({"name": listener, "bind": "127.0.0.1:0"}))
            .map_err(|e| e.to_string())?,
    ];
    spec.trusted_proxies = vec![
        serde_json::from_value(json!("127.0.0.1/32")).map_err(|e| e.to_string())?,
        serde_json::from_value(json!("::1/128")).map_err(|e| e.to_string())?,
    ];
    spec.admin = None;
    spec.audit = None;
    spec.state_dir = None;
    spec.consumer_store = None;
    spec.redis = None;
    spec.access_log.enabled = false;
    for l in spec.rate_limits.iter_mut() {
        l.store = rampart_config::LimitStore::Local;
    }
    for r in spec.routes.iter_mut() {
        if let Some(l) = r.rate_limit.as_mut() {
            l.store = rampart_config::LimitStore::Local;
        }
    }
    for u in spec.upstreams.values_mut() {
        u.targets = vec![
            serde_json::from_value(json!({"url": format!("http://{upstream}")}))
                .map_err(|e| e.to_string())?,
        ];
        u.tls = None;
        u.protocol = rampart_config::UpstreamProtocol::Http1;
        u.health_check = None;
    }
    // Test consumers, with their keys hashed by the config's pepper (or a test one).
    // The config's pepper when it can be read here; otherwise (a production secret the
    // test machine does not hold) a test one in its place.
    let pepper = match spec
        .identity
        .api_keys
        .pepper
        .as_ref()
        .map(|r| r.resolve(base))
    {
        Some(Ok(p)) => p.expose().as_bytes().to_vec(),
        _ => {
            let p = dir.join("pepper");
            std::fs::write(&p, TEST_SECRET).map_err(|e| e.to_string())?;
            spec.identity.api_keys.pepper = Some(SecretRef::File(p));
            TEST_SECRET.as_bytes().to_vec()
        }
    };
    let mut plain = HashMap::new();
    for c in consumers {
        if spec.consumers.iter().any(|x| x.id == c.id) {
            return Err(format!(
                "test consumer {:?} is also a consumer in the config",
                c.id
            ));
        }
        let mut keys = Vec::new();
        if let Some(k) = &c.api_key {
            let hash = rampart_identity::api_key::hash_key(&pepper, k.as_bytes());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            keys.push(
                json!({"id": format!("test-{}", c.id), "hash": format!("hmac-sha256:{hex}")}),
            );
            plain.insert(c.id.clone(), k.clone());
        }
        let v = json!({"id": c.id, "roles": c.roles, "scopes": c.scopes, "plan": c.plan, "attributes": c.attributes, "api_keys": keys});
        spec.consumers
            .push(serde_json::from_value(v).map_err(|e| format!("test consumer {:?}: {e}", c.id))?);
    }
    // A key of our own for each issuer, in a JWKS file of its own.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut keys = HashMap::new();
    for (name, issuer) in spec.identity.jwt.iter_mut() {
        let algs = &issuer.algorithms;
        let key = if let Some(a) = algs.iter().find(|a| a.is_symmetric()) {
            // The issuer's secret when it can be read here, else a test one in its place.
            let secret = match issuer.secret.as_ref().map(|r| r.resolve(base)) {
                Some(Ok(s)) => s.expose().as_bytes().to_vec(),
                _ => {
                    let p = dir.join(format!("jwt-secret-{name}"));
                    std::fs::write(&p, TEST_SECRET).map_err(|e| e.to_string())?;
                    issuer.secret = Some(SecretRef::File(p));
                    TEST_SECRET.as_bytes().to_vec()
                }
            };
            keys.insert(name.clone(), TestKey::Hmac(*a, secret));
            continue;
        } else if algs.contains(&JwtAlgorithm::ES256) {
            let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map_err(|_| "cannot make a key")?;
            let k = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                doc.as_ref(),
            )
            .map_err(|_| "cannot make a key")?;
            let p = k.public_key().as_ref().to_vec();
            let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "rampart-test", "x": b64.encode(&p[1..33]), "y": b64.encode(&p[33..65])});
            (TestKey::Es256(k), jwk)
        } else if algs.contains(&JwtAlgorithm::EdDSA) {
            let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| "cannot make a key")?;
            let k = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|_| "cannot make a key")?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "rampart-test", "x": b64.encode(k.public_key().as_ref())});
            (TestKey::EdDsa(k), jwk)
        } else {
            // RSA-only issuers: tokens can still be given as headers.
            continue;
        };
        let file = dir.join(format!("jwks-{name}.json"));
        std::fs::write(&file, json!({"keys": [key.1]}).to_string()).map_err(|e| e.to_string())?;
        issuer.jwks_url = None;
        issuer.discovery = false;
        issuer.ca_file = None;
        issuer.jwks_file = Some(file);
        keys.insert(name.clone(), key.0);
    }
    Ok(Credentials {
        keys,
        plain,
        api_key_header: spec.identity.api_keys.header.clone(),
        issuers: spec
            .identity
            .jwt
            .iter()
            .map(|(n, j)| (n.clone(), (j.issuer.clone(), j.audiences.first().cloned())))
            .collect(),
    })
}
