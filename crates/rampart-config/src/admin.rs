//! The admin listener's settings (`admin`) and its dashboard's (`admin.ui`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::listener::TlsSpec;
use crate::units::Duration;

/// The admin API: health, readiness, upstream state and reload, on its own listener
/// (never on a public one).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// Address of the admin listener (default `127.0.0.1:9901`).
    #[serde(default = "admin_bind")]
    pub bind: SocketAddr,
    /// Bearer token required for everything except `/healthz` and `/readyz`. Required
    /// unless `bind` is a loopback address.
    #[serde(default)]
    pub token: Option<crate::SecretRef>,
    /// TLS for the admin listener; with `client_auth`, callers also need a client
    /// certificate from the given CA (mTLS), and the audit log names its subject.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// Most admin connections open at once (default 16); further ones are closed at
    /// accept.
    #[serde(default = "admin_max_connections")]
    pub max_connections: usize,
    /// A second bearer token with read-only rights: the admin API's reads and the
    /// dashboard's viewer role (no reload, rollback or consumer changes). Needs `token`.
    #[serde(default)]
    pub read_token: Option<crate::SecretRef>,
    /// The dashboard under `/ui` on this listener.
    #[serde(default)]
    pub ui: UiSpec,
}

/// The dashboard (`admin.ui`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UiSpec {
    /// Serve `/ui` (default true; it needs `admin.token`).
    pub enabled: bool,
    /// A session unused this long is signed out (default 15m).
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not (default 8h).
    pub session_max: Duration,
    /// Most live views (Server-Sent Events streams) open at once (default 4).
    pub max_live: usize,
    /// Client certificates that may sign in without a token, by subject as the audit
    /// line names it (`CN=alice,O=Ops`), with the role each gets. Needs
    /// `admin.tls.client_auth`.
    pub certificates: std::collections::BTreeMap<String, UiRole>,
}

/// What a dashboard session may do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UiRole {
    /// Looks only.
    Viewer,
    /// Also reloads and rolls back.
    Operator,
}

impl Default for UiSpec {
    fn default() -> Self {
        UiSpec {
            enabled: true,
            session_idle: Duration::secs(15 * 60),
            session_max: Duration::secs(8 * 3600),
            max_live: 4,
            certificates: Default::default(),
        }
    }
}

fn admin_max_connections() -> usize {
    16
}

fn admin_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}
