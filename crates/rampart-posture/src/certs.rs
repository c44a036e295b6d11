//! The certificates a config names (listeners', client CAs, the admin listener's,
//! upstream CAs and client certificates, JWKS CAs), read for their expiry: for the
//! posture report, and as a metric per certificate (seconds left) so an alert can fire
//! before an outage.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_config::Spec;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// One certificate of a file the config names.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// What it is for (`listener:public`, `upstream:billing CA`).
    pub usage: String,
    pub file: PathBuf,
    /// Its subject (`CN=api.example.com`).
    pub subject: String,
    /// `None` when the file could not be read or parsed (`error` says why).
    pub not_after: Option<SystemTime>,
    pub error: Option<String>,
}

/// Every certificate file `spec` names, with what it is for; relative paths from `base`.
pub fn files(spec: &Spec, base: &Path) -> Vec<(String, PathBuf)> {
    let at = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut out = Vec::new();
    let tls = |usage: String, t: &rampart_config::TlsSpec, out: &mut Vec<(String, PathBuf)>| {
        for c in &t.certificates {
            out.push((usage.clone(), at(&c.cert_file)));
        }
        if let Some(ca) = &t.client_auth {
            out.push((format!("{usage} client CA"), at(&ca.ca_file)));
        }
    };
    for l in &spec.listeners {
        if let Some(t) = &l.tls {
            tls(format!("listener:{}", l.name), t, &mut out);
        }
    }
    if let Some(t) = spec.admin.as_ref().and_then(|a| a.tls.as_ref()) {
        tls("admin".into(), t, &mut out);
    }
    for (name, u) in &spec.upstreams {
        if let Some(t) = &u.tls {
            if let Some(ca) = &t.ca_file {
                out.push((format!("upstream:{name} CA"), at(ca)));
            }
            if let Some(c) = &t.client_cert {
                out.push((
                    format!("upstream:{name} client certificate"),
                    at(&c.cert_file),
                ));
            }
        }
    }
    for (name, j) in &spec.identity.jwt {
        if let Some(ca) = &j.ca_file {
            out.push((format!("jwt:{name} JWKS CA"), at(ca)));
        }
    }
    out
}

/// Reads every certificate in every file `spec` names.
pub fn read(spec: &Spec, base: &Path) -> Vec<CertInfo> {
    let mut out = Vec::new();
    for (usage, file) in files(spec, base) {
        let ders: Result<Vec<CertificateDer<'static>>, _> =
            CertificateDer::pem_file_iter(&file).and_then(|it| it.collect());
        let failed = |why: String| CertInfo {
            usage: usage.clone(),
            file: file.clone(),
            subject: String::new(),
            not_after: None,
            error: Some(why),
        };
        let ders = match ders {
            Ok(d) if !d.is_empty() => d,
            Ok(_) => {
                out.push(failed("holds no certificate".into()));
                continue;
            }
            Err(e) => {
                out.push(failed(format!("cannot be read ({e})")));
                continue;
            }
        };
        for der in ders {
            match x509_parser::parse_x509_certificate(&der) {
                Ok((_, cert)) => {
                    let secs = cert.validity().not_after.timestamp();
                    out.push(CertInfo {
                        usage: usage.clone(),
                        file: file.clone(),
                        subject: cert.subject().to_string(),
                        not_after: Some(if secs >= 0 {
                            UNIX_EPOCH + Duration::from_secs(secs as u64)
                        } else {
                            UNIX_EPOCH
                        }),
                        error: None,
                    });
                }
                Err(e) => out.push(failed(format!("a certificate does not parse ({e})"))),
            }
        }
    }
    out
}

/// `rampart_certificate_expiry_seconds`: seconds until each certificate expires
/// (negative once it has), computed when scraped.
pub struct ExpiryMetrics(pub Vec<CertInfo>);

impl rampart_core::MetricsSource for ExpiryMetrics {
    fn render(&self, out: &mut rampart_core::MetricsText) {
        out.family(
            "rampart_certificate_expiry_seconds",
            "gauge",
            "Seconds until the certificate expires (negative once it has).",
        );
        let now = SystemTime::now();
        for c in &self.0 {
            let Some(t) = c.not_after else { continue };
            let left = match t.duration_since(now) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            let file = c.file.to_string_lossy();
            out.sample_f64(
                "rampart_certificate_expiry_seconds",
                &[
                    ("usage", &c.usage),
                    ("file", &file),
                    ("subject", &c.subject),
                ],
                left.round(),
            );
        }
    }
}
