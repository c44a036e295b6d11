//! Verification keys. Each key is bound at load time to the one family of algorithms it
//! can verify (RSA, P-256, P-384, Ed25519, or an HMAC secret), so a token can never pick
//! how its own key is interpreted: the `alg`-confusion attacks (HS256 "signed" with an
//! RSA public key, `none`) have nothing to work with.

use aws_lc_rs::{hmac, signature};
use base64::Engine;
use rampart_config::JwtAlgorithm;

/// What a key is, decoded once.
pub enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 || x || y`.
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
    Hmac(Vec<u8>),
}

/// One verification key.
pub struct VerifyKey {
    /// The JWK `kid`: only a lookup key, never a path or a query.
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: then only that algorithm may use the key.
    pub alg: Option<JwtAlgorithm>,
    pub material: KeyMaterial,
}

impl VerifyKey {
    /// Whether `alg` may be verified with this key.
    pub fn fits(&self, alg: JwtAlgorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        use JwtAlgorithm::*;
        matches!(
            (&self.material, alg),
            (
                KeyMaterial::Rsa { .. },
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (KeyMaterial::P256(_), ES256)
                | (KeyMaterial::P384(_), ES384)
                | (KeyMaterial::Ed25519(_), EdDSA)
                | (KeyMaterial::Hmac(_), HS256 | HS384 | HS512)
        )
    }

    /// Checks `sig` over `msg`. The caller has checked [`VerifyKey::fits`].
    pub fn verify(&self, alg: JwtAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
        use JwtAlgorithm::*;
        match &self.material {
            KeyMaterial::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .is_ok()
            }
            KeyMaterial::P256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            KeyMaterial::P384(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            KeyMaterial::Ed25519(x) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok(),
            KeyMaterial::Hmac(secret) => {
                let a = match alg {
                    HS256 => hmac::HMAC_SHA256,
                    HS384 => hmac::HMAC_SHA384,
                    HS512 => hmac::HMAC_SHA512,
                    _ => return false,
                };
                // Constant time (aws-lc's verify compares tags in constant time).
                hmac::verify(&hmac::Key::new(a, secret), msg, sig).is_ok()
            }
        }
    }
}

fn b64(s: &serde_json::Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_str()?)
        .ok()
}

/// Parses a JWKS document. Keys that cannot be used for signatures here (encryption
/// keys, unknown types or curves, private keys) are skipped with a reason.
pub fn parse_jwks(text: &[u8]) -> Result<(Vec<VerifyKey>, Vec<String>), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("not a JSON JWKS document: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("a JWKS document needs a \"keys\" array")?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match parse_jwk(k) {
            Ok(key) => out.push(key),
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    Ok((out, skipped))
}

fn parse_jwk(k: &serde_json::Value) -> Result<VerifyKey, String> {
    if k.get("use").is_some_and(|u| u != "sig") {
        return Err("not a signature key (use != sig)".into());
    }
    if k.get("d").is_some() {
        return Err("private keys are refused".into());
    }
    let kid = match k.get("kid") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("kid is not a string".into()),
    };
    let alg = match k.get("alg").and_then(|a| a.as_str()) {
        None => None,
        Some(a) => Some(parse_alg(a).ok_or_else(|| format!("unsupported alg {a:?}"))?),
    };
    let field = |name: &str| {
        k.get(name)
            .and_then(b64)
            .ok_or_else(|| format!("missing or invalid {name}"))
    };
    let material = match k.get("kty").and_then(|t| t.as_str()) {
        Some("RSA") => {
            let n = strip_zeros(field("n")?);
            if n.len() < 256 {
                return Err("RSA keys under 2048 bits are refused".into());
            }
            KeyMaterial::Rsa { n, e: field("e")? }
        }
        Some("EC") => {
            let (x, y) = (field("x")?, field("y")?);
            let (len, p384) = match k.get("crv").and_then(|c| c.as_str()) {
                Some("P-256") => (32, false),
                Some("P-384") => (48, true),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if p384 {
                KeyMaterial::P384(point)
            } else {
                KeyMaterial::P256(point)
            }
        }
        Some("OKP") => match k.get("crv").and_then(|c| c.as_str()) {
            Some("Ed25519") => {
                let x = field("x")?;
                if x.len() != 32 {
                    return Err("Ed25519 key has the wrong length".into());
                }
                KeyMaterial::Ed25519(x)
            }
            other => return Err(format!("unsupported curve {other:?}")),
        },
        // Symmetric keys never come from a key set: an HS* issuer's secret is a secret
        // reference in the config, so a published JWKS can never supply one.
        Some("oct") => return Err("symmetric keys are not accepted from a key set".into()),
        other => return Err(format!("unsupported kty {other:?}")),
    };
    let key = VerifyKey { kid, alg, material };
    if let Some(a) = alg {
        if !key.fits(a) {
            return Err(format!("alg {a} does not fit the key type"));
        }
    }
    Ok(key)
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let z = v.iter().take_while(|b| **b == 0).count();
    v.drain(..z);
    v
}

/// Parses PEM `PUBLIC KEY` blocks (SubjectPublicKeyInfo).
pub fn parse_pem(text: &[u8]) -> Result<Vec<VerifyKey>, String> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let mut out = Vec::new();
    for (i, pem) in x509_parser::pem::Pem::iter_from_buffer(text).enumerate() {
        let pem = pem.map_err(|e| format!("PEM block {i}: {e}"))?;
        if pem.label != "PUBLIC KEY" {
            return Err(format!(
                "PEM block {i} is {:?}; only PUBLIC KEY blocks are read",
                pem.label
            ));
        }
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&pem.contents)
            .map_err(|e| format!("PEM block {i}: {e}"))?;
        let oid = spki.algorithm.algorithm.to_id_string();
        let material = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let n = strip_zeros(rsa.modulus.to_vec());
                if n.len() < 256 {
                    return Err(format!(
                        "PEM block {i}: RSA keys under 2048 bits are refused"
                    ));
                }
                KeyMaterial::Rsa {
                    n,
                    e: strip_zeros(rsa.exponent.to_vec()),
                }
            }
            Ok(PublicKey::EC(point)) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some("1.2.840.10045.3.1.7") => KeyMaterial::P256(point.data().to_vec()),
                    Some("1.3.132.0.34") => KeyMaterial::P384(point.data().to_vec()),
                    other => return Err(format!("PEM block {i}: unsupported curve {other:?}")),
                }
            }
            _ if oid == "1.3.101.112" => {
                KeyMaterial::Ed25519(spki.subject_public_key.data.to_vec())
            }
            _ => return Err(format!("PEM block {i}: unsupported key type {oid}")),
        };
        out.push(VerifyKey {
            kid: None,
            alg: None,
            material,
        });
    }
    if out.is_empty() {
        return Err("no PUBLIC KEY block found".into());
    }
    Ok(out)
}

/// The algorithm names of RFC 7518, exactly (case-sensitive: `none`, `None` and `NONE`
/// are all unknown here).
pub fn parse_alg(s: &str) -> Option<JwtAlgorithm> {
    use JwtAlgorithm::*;
    Some(match s {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        _ => return None,
    })
}
