//! What the chain decided about a request and who the caller proved to be: the values
//! every phase after the decision reads, and the log phase records.

use std::sync::Arc;

use crate::Reason;

/// How a policy acts on its decision (DESIGN.md §1: every policy can be rolled out in
/// shadow mode first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// The decision is computed, logged and counted, and the request goes on.
    Shadow,
}

/// What happened to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    /// Would have been denied; shadow mode let it through.
    ShadowDeny,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Allow, Outcome::Deny, Outcome::ShadowDeny];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::ShadowDeny => "shadow_deny",
        }
    }

    /// The index of this outcome in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One recorded decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    pub outcome: Outcome,
}

/// Who the caller is, once a filter has proved it. Shared (`Arc`) because the proxy, the
/// later filters and the log phase all read it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The configured consumer this caller resolved to, if any.
    pub consumer: Option<Arc<str>>,
    /// The subject: the consumer id, a JWT `sub`, or a certificate subject.
    pub subject: Arc<str>,
    /// How the identity was proved: `api_key`, `jwt`, `mtls` or `signature`.
    pub method: &'static str,
    /// The public id of the credential used (API key id, JWT issuer name, signing key
    /// id); never the credential itself.
    pub credential: Option<Arc<str>>,
    pub roles: Vec<Arc<str>>,
    pub scopes: Vec<Arc<str>>,
    /// The consumer's plan (tier), for limits.
    pub plan: Option<Arc<str>>,
    /// Free-form attributes for policies: the consumer's configured attributes, or the
    /// verified token's claims.
    pub attributes: Arc<serde_json::Map<String, serde_json::Value>>,
}
