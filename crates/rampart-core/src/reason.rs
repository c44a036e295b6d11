//! Stable reason codes for every decision a filter of the inbound chain makes (identity,
//! access, limits, inspection). The code is what an operator greps for: it is written to
//! the access log and the audit trail, and labels the decision metrics. Responses never
//! carry it (they carry only the generic problem of [`Reason::problem`]: 401, 403, 415,
//! 429 or 503), so a caller cannot probe which check failed; request validation is the
//! exception by design: its refusal lists what broke the contract (`Denial::errors`).

use crate::Problem;

macro_rules! reasons {
    ($($name:ident => $code:literal, $problem:ident;)*) => {
        /// Why a request was allowed or refused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason { $($name),* }

        impl Reason {
            /// Every reason, in a fixed order (the metric table's index).
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The stable code, e.g. `auth.jwt.expired`.
            pub fn code(self) -> &'static str {
                match self { $(Reason::$name => $code),* }
            }

            /// The problem a denial for this reason answers with. Deliberately generic
            /// (one per status): the body tells a caller "401" or "429", never which
            /// check failed; the precise code goes to the log and the metrics.
            pub fn problem(self) -> Problem {
                match self { $(Reason::$name => Problem::$problem),* }
            }
        }
    };
}

reasons! {
    Missing => "auth.missing", UNAUTHENTICATED;
    ApiKeyOk => "auth.api_key.ok", UNAUTHENTICATED;
    ApiKeyUnknown => "auth.api_key.unknown", UNAUTHENTICATED;
    ApiKeyMalformed => "auth.api_key.malformed", UNAUTHENTICATED;
    ApiKeyExpired => "auth.api_key.expired", UNAUTHENTICATED;
    ApiKeyNotYetValid => "auth.api_key.not_yet_valid", UNAUTHENTICATED;
    JwtOk => "auth.jwt.ok", UNAUTHENTICATED;
    JwtMalformed => "auth.jwt.malformed", UNAUTHENTICATED;
    JwtAlgorithm => "auth.jwt.bad_algorithm", UNAUTHENTICATED;
    JwtUnknownKey => "auth.jwt.unknown_kid", UNAUTHENTICATED;
    JwtNoKeys => "auth.jwt.no_keys", UNAUTHENTICATED;
    JwtSignature => "auth.jwt.bad_signature", UNAUTHENTICATED;
    JwtExpired => "auth.jwt.expired", UNAUTHENTICATED;
    JwtNotYetValid => "auth.jwt.not_yet_valid", UNAUTHENTICATED;
    JwtIssuedInFuture => "auth.jwt.issued_in_future", UNAUTHENTICATED;
    JwtLifetime => "auth.jwt.lifetime_too_long", UNAUTHENTICATED;
    JwtIssuer => "auth.jwt.bad_issuer", UNAUTHENTICATED;
    JwtAudience => "auth.jwt.bad_audience", UNAUTHENTICATED;
    JwtType => "auth.jwt.bad_type", UNAUTHENTICATED;
    JwtMissingClaim => "auth.jwt.missing_claim", UNAUTHENTICATED;
    MtlsOk => "auth.mtls.ok", UNAUTHENTICATED;
    MtlsUnknown => "auth.mtls.unknown_certificate", UNAUTHENTICATED;
    SignatureOk => "auth.signature.ok", UNAUTHENTICATED;
    SignatureMalformed => "auth.signature.malformed", UNAUTHENTICATED;
    SignatureUnknownKey => "auth.signature.unknown_key", UNAUTHENTICATED;
    SignatureInvalid => "auth.signature.invalid", UNAUTHENTICATED;
    SignatureSkew => "auth.signature.skew", UNAUTHENTICATED;
    SignatureReplay => "auth.signature.replay", UNAUTHENTICATED;
    CredentialRepeated => "auth.credential_repeated", UNAUTHENTICATED;
    AuthFailuresExceeded => "auth.too_many_failures", RATE_LIMITED;
    AuthzOk => "authz.ok", FORBIDDEN;
    RoleMissing => "authz.role_missing", FORBIDDEN;
    ScopeMissing => "authz.scope_missing", FORBIDDEN;
    ConsumerNotAllowed => "authz.consumer_not_allowed", FORBIDDEN;
    PolicyDenied => "authz.policy_denied", FORBIDDEN;
    Unidentified => "authz.unidentified", FORBIDDEN;
    RateLimited => "limit.rate.exceeded", RATE_LIMITED;
    QuotaExceeded => "limit.quota.exceeded", RATE_LIMITED;
    RateShadow => "limit.rate.shadow", RATE_LIMITED;
    ConcurrencyLimited => "limit.concurrency", RATE_LIMITED;
    ConcurrencyShadow => "limit.concurrency.shadow", RATE_LIMITED;
    LimitStoreError => "limit.store_error", LIMIT_UNAVAILABLE;
    LimitStateFull => "limit.state_full", LIMIT_UNAVAILABLE;
    JsonEncodedBody => "json.content_encoding", ENCODED_BODY;
    ValidationUnknownPath => "validation.unknown_path", ROUTE_NOT_FOUND;
    ValidationMethod => "validation.method", METHOD_NOT_ALLOWED;
    ValidationParameters => "validation.parameters", INVALID_REQUEST;
    ValidationMediaType => "validation.media_type", MEDIA_TYPE;
    ValidationBody => "validation.body", INVALID_REQUEST;
    ValidationResponse => "validation.response", UPSTREAM_PROTOCOL;
    IpDenied => "ip.denied", FORBIDDEN;
    IpNotAllowed => "ip.not_allowed", FORBIDDEN;
    WafSqli => "waf.sqli", FORBIDDEN;
    WafXss => "waf.xss", FORBIDDEN;
    WafTraversal => "waf.traversal", FORBIDDEN;
    WafCommand => "waf.command", FORBIDDEN;
    WafSsrf => "waf.ssrf", FORBIDDEN;
    WafDetectorError => "waf.detector_error", FORBIDDEN;
    WafEncodedBody => "waf.encoded_body", ENCODED_BODY;
    BotDenied => "bot.denied", FORBIDDEN;
    BotScore => "bot.score", FORBIDDEN;
    BotLimited => "bot.limited", RATE_LIMITED;
    AnomalyThrottled => "anomaly.throttled", RATE_LIMITED;
    AnomalyBanned => "anomaly.banned", FORBIDDEN;
    CorsPreflight => "cors.preflight", FORBIDDEN;
    CorsDenied => "cors.denied", FORBIDDEN;
    MaskExempt => "mask.exempt", UPSTREAM_PROTOCOL;
    MaskUnparseable => "mask.unparseable", UPSTREAM_PROTOCOL;
    MaskEncoded => "mask.encoded_response", UPSTREAM_PROTOCOL;
    UpstreamCredential => "upstream.credential_unavailable", UPSTREAM_CREDENTIAL;
    TransformUnparseable => "transform.unparseable", INVALID_REQUEST;
    TransformEncoded => "transform.encoded_body", ENCODED_BODY;
    TransformResponse => "transform.response_unusable", UPSTREAM_PROTOCOL;
}

impl Reason {
    /// The status a denial for this reason answers with.
    pub fn status(self) -> u16 {
        self.problem().status.as_u16()
    }

    /// The index of this reason in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_indexed_in_order() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert!(seen.insert(r.code()), "duplicate {}", r.code());
            assert_eq!(r.index(), i);
        }
    }
}
