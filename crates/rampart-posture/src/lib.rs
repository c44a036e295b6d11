//! The security posture report (`rampart posture`, `GET /admin/posture`): a config, on
//! file or running, checked for which controls are in place, globally and per route,
//! each finding `pass`, `warn` or `fail` with its reason and mapped to OWASP API
//! Security Top 10 2023, NIST SP 800-53 rev. 5 and PCI DSS v4.0 (`catalog`). Rendered
//! as text, JSON or one self-contained HTML page (`render`).
//!
//! Also a feature of the gateway: the certificates its config names, as a metric of
//! seconds left before each expires (`certs`).
#![forbid(unsafe_code)]

pub mod catalog;
pub mod certs;
pub mod checks;
pub mod render;

use std::path::Path;
use std::time::SystemTime;

use serde::ser::SerializeStruct;

/// A finding's verdict, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// `warn` or `fail` (`--fail-on`).
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pass" => Some(Status::Pass),
            "warn" => Some(Status::Warn),
            "fail" => Some(Status::Fail),
            _ => None,
        }
    }
}

/// One check's verdict on one scope (`global`, `route:orders`, `listener:public`, …).
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static checks::Check,
    pub scope: String,
    pub status: Status,
    pub reason: String,
}

impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Finding", 8)?;
        st.serialize_field("check", self.check.id)?;
        st.serialize_field("title", self.check.title)?;
        st.serialize_field("scope", &self.scope)?;
        st.serialize_field("status", self.status.as_str())?;
        st.serialize_field("reason", &self.reason)?;
        st.serialize_field("owasp", self.check.owasp)?;
        st.serialize_field("nist", self.check.nist)?;
        st.serialize_field("pci_dss", self.check.pci)?;
        st.end()
    }
}

/// A whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// What was checked: a config file's path, or `gateway` with its version.
    pub source: String,
    pub generated_unix: u64,
    pub summary: Summary,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Report {
    /// The worst verdict of any finding.
    pub fn worst(&self) -> Status {
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Pass)
    }
}

/// Checks `spec` (relative file paths from `base`) as of `now`.
pub fn evaluate(spec: &rampart_config::Spec, base: &Path, source: &str, now: SystemTime) -> Report {
    let certs = certs::read(spec, base);
    let findings = checks::run(spec, &certs, now);
    let mut summary = Summary::default();
    for f in &findings {
        match f.status {
            Status::Pass => summary.pass += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
        }
    }
    Report {
        source: source.to_string(),
        generated_unix: now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        summary,
        findings,
    }
}

/// The gateway feature: no filters; the certificate expiry metric.
pub fn compile(
    spec: &rampart_config::Spec,
    base: &Path,
    _state: &rampart_core::StateStore,
) -> Result<rampart_core::FeaturePlan, Vec<rampart_config::ConfigError>> {
    let mut out = rampart_core::FeaturePlan::for_routes(spec.routes.len());
    let certs = certs::read(spec, base);
    if !certs.is_empty() {
        out.metrics
            .push(std::sync::Arc::new(certs::ExpiryMetrics(certs)));
    }
    Ok(out)
}
