/// What a verified client certificate told us (mTLS). Only set when the certificate chain
/// verified against the listener's client CA bundle, so identity work can trust it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsPeer {
    /// Subject distinguished name, RFC 4514 style (`CN=acme,O=Acme Corp`).
    pub subject: String,
    /// Subject common name, when present.
    pub common_name: Option<String>,
    /// DNS names from subjectAltName.
    pub san_dns: Vec<String>,
    /// URIs from subjectAltName (e.g. SPIFFE IDs).
    pub san_uri: Vec<String>,
    /// SHA-256 of the leaf certificate's DER, lowercase hex.
    pub fingerprint_sha256: String,
}
