//! Stable reason codes for every identity and access decision. The code is what an
//! operator greps for: it is written to the access log and the audit trail, and labels
//! the decision metrics. Responses never carry it (they only say 401 or 403), so a caller
//! cannot probe which check failed.

macro_rules! reasons {
    ($($name:ident => $code:literal, $status:literal;)*) => {
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

            /// The status a denial for this reason answers with (401, 403, 429 or 503).
            pub fn status(self) -> u16 {
                match self { $(Reason::$name => $status),* }
            }
        }
    };
}

reasons! {
    Missing => "auth.missing", 401;
    ApiKeyOk => "auth.api_key.ok", 401;
    ApiKeyUnknown => "auth.api_key.unknown", 401;
    ApiKeyMalformed => "auth.api_key.malformed", 401;
    ApiKeyExpired => "auth.api_key.expired", 401;
    ApiKeyNotYetValid => "auth.api_key.not_yet_valid", 401;
    JwtOk => "auth.jwt.ok", 401;
    JwtMalformed => "auth.jwt.malformed", 401;
    JwtAlgorithm => "auth.jwt.bad_algorithm", 401;
    JwtUnknownKey => "auth.jwt.unknown_kid", 401;
    JwtNoKeys => "auth.jwt.no_keys", 401;
    JwtSignature => "auth.jwt.bad_signature", 401;
    JwtExpired => "auth.jwt.expired", 401;
    JwtNotYetValid => "auth.jwt.not_yet_valid", 401;
    JwtIssuedInFuture => "auth.jwt.issued_in_future", 401;
    JwtLifetime => "auth.jwt.lifetime_too_long", 401;
    JwtIssuer => "auth.jwt.bad_issuer", 401;
    JwtAudience => "auth.jwt.bad_audience", 401;
    JwtType => "auth.jwt.bad_type", 401;
    JwtMissingClaim => "auth.jwt.missing_claim", 401;
    MtlsOk => "auth.mtls.ok", 401;
    MtlsUnknown => "auth.mtls.unknown_certificate", 401;
    SignatureOk => "auth.signature.ok", 401;
    SignatureMalformed => "auth.signature.malformed", 401;
    SignatureUnknownKey => "auth.signature.unknown_key", 401;
    SignatureInvalid => "auth.signature.invalid", 401;
    SignatureSkew => "auth.signature.skew", 401;
    SignatureReplay => "auth.signature.replay", 401;
    CredentialRepeated => "auth.credential_repeated", 401;
    AuthFailuresExceeded => "auth.too_many_failures", 429;
    AuthzOk => "authz.ok", 403;
    RoleMissing => "authz.role_missing", 403;
    ScopeMissing => "authz.scope_missing", 403;
    ConsumerNotAllowed => "authz.consumer_not_allowed", 403;
    PolicyDenied => "authz.policy_denied", 403;
    Unidentified => "authz.unidentified", 403;
    RateLimited => "limit.rate.exceeded", 429;
    QuotaExceeded => "limit.quota.exceeded", 429;
    RateShadow => "limit.rate.shadow", 429;
    ConcurrencyLimited => "limit.concurrency", 429;
    ConcurrencyShadow => "limit.concurrency.shadow", 429;
    LimitStoreError => "limit.store_error", 503;
    LimitStateFull => "limit.state_full", 503;
}

impl Reason {
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
