//! Compact JWS parsing (RFC 7515 §7.1) and the claim checks of RFC 7519 / RFC 9068. The
//! parser repairs nothing: exactly three base64url segments without padding or
//! whitespace, a JSON object header and payload, an `alg` from the issuer's allow-list.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rampart_config::JwtAlgorithm;
use rampart_core::Reason;
use serde_json::{Map, Value};

use super::strict_json;

/// Longest token accepted (a header block is 16 KiB at most anyway).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// A token split and decoded, signature not yet checked.
pub struct Parsed<'a> {
    pub alg: JwtAlgorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// `header.payload`, the signed bytes.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
    pub claims: Map<String, Value>,
}

fn decode(seg: &[u8]) -> Result<Vec<u8>, Reason> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .map_err(|_| Reason::JwtMalformed)
}

/// Splits and decodes `token`; checks `alg` against `allowed`.
pub fn parse<'a>(token: &'a [u8], allowed: &[JwtAlgorithm]) -> Result<Parsed<'a>, Reason> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Reason::JwtMalformed);
    }
    let mut dots = token.iter().enumerate().filter(|(_, b)| **b == b'.');
    let (Some((d1, _)), Some((d2, _)), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(Reason::JwtMalformed);
    };
    let (h, p, s) = (&token[..d1], &token[d1 + 1..d2], &token[d2 + 1..]);
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(Reason::JwtMalformed);
    }
    // RFC 7515 §4: member names must be unique; a repeated one is refused, not resolved.
    let header = strict_json::parse_object(&decode(h)?).ok_or(Reason::JwtMalformed)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => crate::jwt::keys::parse_alg(a).ok_or(Reason::JwtAlgorithm)?,
        _ => return Err(Reason::JwtMalformed),
    };
    if !allowed.contains(&alg) {
        return Err(Reason::JwtAlgorithm);
    }
    // RFC 7515 §4.1.11: extensions we do not understand must not be ignored.
    if header.contains_key("crit") {
        return Err(Reason::JwtMalformed);
    }
    // `jku`, `x5u`, `jwk` and `x5c` are deliberately not read: keys only ever come from
    // the issuer's configuration, never from the token that wants to be trusted.
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= 256 => Some(k.clone()),
        Some(_) => return Err(Reason::JwtMalformed),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(Reason::JwtMalformed),
    };
    let claims = strict_json::parse_object(&decode(p)?).ok_or(Reason::JwtMalformed)?;
    Ok(Parsed {
        alg,
        kid,
        typ,
        signing_input: &token[..d2],
        signature: decode(s)?,
        claims,
    })
}

/// What the claims must satisfy.
pub struct ClaimRules<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    pub leeway: Duration,
    pub max_lifetime: Duration,
    pub typ: Option<&'a str>,
    pub required: &'a [String],
}

fn numeric_date(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Checks the registered claims; returns `exp` (for caching).
pub fn check_claims(
    p: &Parsed<'_>,
    rules: &ClaimRules<'_>,
    now: SystemTime,
) -> Result<SystemTime, Reason> {
    if let Some(want) = rules.typ {
        // RFC 7515 §4.1.9: compare case-insensitively, `application/` optional.
        let got = p.typ.as_deref().unwrap_or("");
        let strip = |s: &str| {
            let l = s.to_ascii_lowercase();
            l.strip_prefix("application/")
                .map(str::to_string)
                .unwrap_or(l)
        };
        if strip(got) != strip(want) {
            return Err(Reason::JwtType);
        }
    }
    let c = &p.claims;
    // `iss` is compared exactly: `https://idp/` and `https://idp` are different issuers.
    if c.get("iss").and_then(|v| v.as_str()) != Some(rules.issuer) {
        return Err(Reason::JwtIssuer);
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => rules.audiences.iter().any(|w| w == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str())
            .any(|a| rules.audiences.iter().any(|w| w == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(Reason::JwtAudience);
    }
    let now_s = unix(now);
    let leeway = rules.leeway.as_secs_f64();
    let exp = c
        .get("exp")
        .and_then(numeric_date)
        .ok_or(Reason::JwtMissingClaim)?;
    if now_s >= exp + leeway {
        return Err(Reason::JwtExpired);
    }
    if exp - now_s > rules.max_lifetime.as_secs_f64() + leeway {
        return Err(Reason::JwtLifetime);
    }
    if let Some(nbf) = c.get("nbf") {
        let nbf = numeric_date(nbf).ok_or(Reason::JwtMalformed)?;
        if nbf > now_s + leeway {
            return Err(Reason::JwtNotYetValid);
        }
    }
    if let Some(iat) = c.get("iat") {
        let iat = numeric_date(iat).ok_or(Reason::JwtMalformed)?;
        if iat > now_s + leeway {
            return Err(Reason::JwtIssuedInFuture);
        }
    }
    for name in rules.required {
        if !c.contains_key(name) {
            return Err(Reason::JwtMissingClaim);
        }
    }
    Ok(UNIX_EPOCH + Duration::from_secs_f64(exp.max(0.0)))
}

/// Reads a claim as a list of strings: a JSON array of strings, or one space-separated
/// string (OAuth `scope`, RFC 8693 §4.2).
pub fn string_list(v: Option<&Value>) -> Vec<std::sync::Arc<str>> {
    match v {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Into::into)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(Into::into)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn rejects_alg_none_in_every_spelling() {
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let t = token(&format!("{{\"alg\":\"{alg}\"}}"), "{}");
            assert_eq!(
                parse(t.as_bytes(), &[JwtAlgorithm::RS256]).err(),
                Some(Reason::JwtAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn rejects_malformed_shapes() {
        let good = token("{\"alg\":\"RS256\"}", "{}");
        assert!(parse(good.as_bytes(), &[JwtAlgorithm::RS256]).is_ok());
        let bad = [
            format!("{good}.extra"),
            format!(" {good}"),
            format!("{good} "),
            good.replacen('.', "=.", 1),
            format!("{good}=="),
            "a.b".to_string(),
            format!("{}..{}", b64("{\"alg\":\"RS256\"}"), b64("x")),
            token("[1]", "{}"),
            token("{\"alg\":\"RS256\"}", "[]"),
            token("{\"alg\":\"RS256\",\"crit\":[\"b64\"]}", "{}"),
            token("{\"alg\":\"RS256\",\"kid\":7}", "{}"),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for t in bad {
            assert!(parse(t.as_bytes(), &[JwtAlgorithm::RS256]).is_err(), "{t}");
        }
    }

    #[test]
    fn alg_outside_the_allow_list_is_refused() {
        let t = token("{\"alg\":\"HS256\"}", "{}");
        assert_eq!(
            parse(t.as_bytes(), &[JwtAlgorithm::RS256]).err(),
            Some(Reason::JwtAlgorithm)
        );
    }
}
