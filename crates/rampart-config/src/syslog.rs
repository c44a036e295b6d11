//! `audit.syslog`: a copy of every audit trail entry sent to a syslog receiver (a SIEM)
//! as RFC 5424 messages over TCP or TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Spec};

/// Where the trail's entries are also sent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyslogSpec {
    /// The receiver, `host:port`.
    pub address: String,
    /// `tls` (default, RFC 5425) or `tcp` (RFC 6587); both octet-counted.
    #[serde(default)]
    pub transport: SyslogTransport,
    /// The CA bundle (PEM) that signs the receiver's certificate (`tls`); default: the
    /// system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The facility (default `authpriv`): `auth`, `authpriv`, `daemon`, `audit`
    /// (13, log audit), `local0` … `local7`.
    #[serde(default)]
    pub facility: SyslogFacility,
    /// APP-NAME of the messages (default `rampart`).
    #[serde(default = "rampart")]
    pub app_name: String,
    /// HOSTNAME of the messages (default: this machine's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Messages waiting while the receiver is slow or away (default 10,000, and as many
    /// again in transit); past it, the oldest are dropped and counted (the trail's file
    /// keeps every entry).
    #[serde(default = "ten_thousand")]
    pub max_queue: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    #[default]
    Tls,
    Tcp,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFacility {
    Auth,
    #[default]
    Authpriv,
    Daemon,
    Audit,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl SyslogFacility {
    /// The facility's number (RFC 5424 §6.2.1).
    pub fn code(self) -> u8 {
        use SyslogFacility::*;
        match self {
            Auth => 4,
            Authpriv => 10,
            Daemon => 3,
            Audit => 13,
            Local0 => 16,
            Local1 => 17,
            Local2 => 18,
            Local3 => 19,
            Local4 => 20,
            Local5 => 21,
            Local6 => 22,
            Local7 => 23,
        }
    }
}

fn rampart() -> String {
    "rampart".into()
}
fn ten_thousand() -> usize {
    10_000
}

/// A header field of RFC 5424: 1 to `max` printable US-ASCII characters, no space.
fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b))
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    let Some(s) = spec.audit.as_ref().and_then(|a| a.syslog.as_ref()) else {
        return;
    };
    let mut err = |path: &str, reason: &str| errs.push(ConfigError::new(path, reason));
    match s.address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => err("audit.syslog.address", "must be host:port"),
    }
    if !printable(&s.app_name, 48) {
        err(
            "audit.syslog.app_name",
            "must be 1 to 48 printable ASCII characters without spaces",
        );
    }
    if let Some(h) = &s.hostname {
        if !printable(h, 255) {
            err(
                "audit.syslog.hostname",
                "must be 1 to 255 printable ASCII characters without spaces",
            );
        }
    }
    if s.ca_file.is_some() && s.transport != SyslogTransport::Tls {
        err("audit.syslog.ca_file", "only for `transport: tls`");
    }
    if !(1..=1_000_000).contains(&s.max_queue) {
        err("audit.syslog.max_queue", "must be between 1 and 1,000,000");
    }
}
