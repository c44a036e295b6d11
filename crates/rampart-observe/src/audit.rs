//! Audit events: who did what to the gateway itself (admin API calls, reloads), as one
//! type every writer uses, so the admin API today and the tamper-evident audit trail later
//! record the same fields.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::SystemTime;

use rampart_core::json_escape_into;

/// One administrative action.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub time: SystemTime,
    /// Where the caller connected from.
    pub peer: SocketAddr,
    /// Who the caller proved to be: a token fingerprint, a certificate subject, or
    /// `unauthenticated`; never a credential.
    pub actor: &'a str,
    /// What was asked, e.g. `GET /config`.
    pub method: &'a str,
    pub path: &'a str,
    /// The answer's status (0: the connection was refused before any request).
    pub status: u16,
    /// A short reason for a refusal (`too_many_connections`, `tls_handshake`, …).
    pub refused: Option<&'a str>,
}

impl AuditEvent<'_> {
    /// The event as one JSON object.
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(192);
        o.push_str("{\"time\":\"");
        crate::access_log::write_rfc3339(&mut o, self.time);
        let _ = write!(o, "\",\"peer\":\"{}\",\"actor\":\"", self.peer);
        json_escape_into(&mut o, self.actor);
        o.push_str("\",\"method\":\"");
        json_escape_into(&mut o, self.method);
        o.push_str("\",\"path\":\"");
        // The access log's redactor: an identifier in an admin path (a consumer's
        // e-mail, say) is masked the same way.
        crate::access_log::write_path(&mut o, self.path);
        let _ = write!(o, "\",\"status\":{}", self.status);
        if let Some(r) = self.refused {
            o.push_str(",\"refused\":\"");
            json_escape_into(&mut o, r);
            o.push('"');
        }
        o.push('}');
        o
    }

    /// Writes the event to the audit trail (when there is one) and to the process log
    /// under the `audit` target (warn for refusals).
    pub fn record(&self, trail: Option<&crate::audit_trail::AuditTrail>) {
        if let Some(t) = trail {
            let mut f = crate::audit_trail::Fields::new()
                .str("peer", &self.peer.to_string())
                .str("actor", self.actor)
                .str("method", self.method);
            let mut path = String::new();
            crate::access_log::write_path(&mut path, self.path);
            f = f
                .escaped("path", &path)
                .num("status", u64::from(self.status));
            if let Some(r) = self.refused {
                f = f.str("refused", r);
            }
            t.record("admin", f);
        }
        self.emit();
    }

    /// Writes the event to the process log under the `audit` target (warn for refusals).
    pub fn emit(&self) {
        let json = self.to_json();
        if self.refused.is_some() || self.status >= 400 {
            tracing::warn!(target: "audit", event = %json, "admin request refused");
        } else {
            tracing::info!(target: "audit", event = %json, "admin request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_is_one_json_object_with_escaped_fields() {
        let e = AuditEvent {
            time: SystemTime::UNIX_EPOCH,
            peer: "127.0.0.1:9".parse().unwrap(),
            actor: "cert:CN=\"x\"",
            method: "POST",
            path: "/admin/reload",
            status: 200,
            refused: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["actor"], "cert:CN=\"x\"");
        assert_eq!(v["status"], 200);
        assert!(v.get("refused").is_none());
    }

    #[test]
    fn personal_data_in_an_admin_path_is_masked() {
        let e = AuditEvent {
            time: SystemTime::UNIX_EPOCH,
            peer: "127.0.0.1:9".parse().unwrap(),
            actor: "token:ab12",
            method: "DELETE",
            path: "/admin/consumers/jane%40example.com/keys",
            status: 204,
            refused: None,
        };
        let json = e.to_json();
        assert!(!json.contains("jane"), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["path"], "/admin/consumers/[email]/keys");
    }
}
