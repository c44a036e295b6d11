//! Signing keys and token minting for JWT tests: real RSA, ECDSA and Ed25519 keys
//! generated per test with aws-lc-rs, published as JWKs or PEM like an IdP would.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of one of the asymmetric families.
pub enum TestKey {
    Rsa(signature::RsaKeyPair),
    P256(signature::EcdsaKeyPair),
    Ed(signature::Ed25519KeyPair),
}

impl TestKey {
    pub fn rsa() -> Self {
        TestKey::Rsa(signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }
    pub fn p256() -> Self {
        TestKey::P256(
            signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        )
    }
    pub fn ed25519() -> Self {
        TestKey::Ed(signature::Ed25519KeyPair::generate().unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            TestKey::Rsa(_) => "RS256",
            TestKey::P256(_) => "ES256",
            TestKey::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK, with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        match self {
            TestKey::Rsa(k) => {
                let (n, e) = rsa_components(k.public_key().as_ref());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&n), "e": b64(&e)})
            }
            TestKey::P256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            TestKey::Ed(k) => {
                json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        }
    }

    /// The public key as DER SubjectPublicKeyInfo (RSA only).
    pub fn rsa_spki_der(&self) -> Vec<u8> {
        match self {
            TestKey::Rsa(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            _ => panic!("rsa only"),
        }
    }

    /// The public key as a PEM `PUBLIC KEY` block (RSA only).
    pub fn rsa_pem(&self) -> String {
        let der = base64::engine::general_purpose::STANDARD.encode(self.rsa_spki_der());
        let lines: Vec<&str> = der
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub fn sign_raw(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg,
                    &mut sig,
                )
                .unwrap();
                sig
            }
            TestKey::P256(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            TestKey::Ed(k) => k.sign(msg).as_ref().to_vec(),
        }
    }

    /// A token with this header and these claims, signed by this key.
    pub fn token(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign_raw(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// A token with the usual header (`alg` of this key, `kid`).
    pub fn mint(&self, kid: &str, claims: &Value) -> String {
        self.token(
            &json!({"alg": self.alg(), "kid": kid, "typ": "JWT"}),
            claims,
        )
    }
}

/// Reads `SEQUENCE { n INTEGER, e INTEGER }` (PKCS#1 RSAPublicKey DER).
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(b: &[u8]) -> (&[u8], &[u8]) {
        let (len, hdr) = if b[1] < 0x80 {
            (b[1] as usize, 2)
        } else {
            let n = (b[1] & 0x7f) as usize;
            (
                b[2..2 + n].iter().fold(0usize, |a, x| a << 8 | *x as usize),
                2 + n,
            )
        };
        (&b[hdr..hdr + len], &b[hdr + len..])
    }
    let (seq, _) = tlv(der);
    let (n, rest) = tlv(seq);
    let (e, _) = tlv(rest);
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    (strip(n), strip(e))
}

/// An HS256 token signed with `secret`.
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims that pass: issuer `iss`, audience `orders-api`, valid for 10 minutes.
pub fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": "orders-api", "sub": "user-1", "exp": now() + 600, "iat": now(), "scope": "orders:read orders:write", "roles": ["reader"]})
}
