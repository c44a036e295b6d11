//! mTLS client identity: a verified client certificate maps to a consumer by its SHA-256
//! fingerprint, a SAN URI (SPIFFE IDs), a SAN DNS name or the subject CN, tried in that
//! order (most to least specific). Only certificates the listener verified against its
//! client CA ever get here.

use std::collections::HashMap;

use rampart_config::CertificateMatchSpec;
use rampart_core::{Reason, TlsPeer};

/// Certificate facts → consumer index.
#[derive(Default)]
pub struct CertificateIndex {
    fingerprint: HashMap<String, usize>,
    san_uri: HashMap<String, usize>,
    san_dns: HashMap<String, usize>,
    subject_cn: HashMap<String, usize>,
}

impl CertificateIndex {
    /// Adds consumer `i`'s mappings; a fact mapped to two consumers is an error.
    pub fn add(&mut self, i: usize, m: &CertificateMatchSpec) -> Result<(), String> {
        let (map, key) = match m {
            CertificateMatchSpec::Fingerprint(f) => (
                &mut self.fingerprint,
                rampart_config::normalize_fingerprint(f).ok_or("invalid fingerprint")?,
            ),
            CertificateMatchSpec::SanUri(u) => (&mut self.san_uri, u.clone()),
            CertificateMatchSpec::SanDns(d) => (&mut self.san_dns, d.to_ascii_lowercase()),
            CertificateMatchSpec::SubjectCn(c) => (&mut self.subject_cn, c.clone()),
        };
        if let Some(prev) = map.insert(key, i) {
            if prev != i {
                return Err("the same certificate fact maps to two consumers".into());
            }
        }
        Ok(())
    }

    /// The consumer a verified certificate stands for.
    pub fn find(&self, peer: &TlsPeer) -> Result<usize, Reason> {
        if let Some(i) = self.fingerprint.get(&peer.fingerprint_sha256) {
            return Ok(*i);
        }
        for u in &peer.san_uri {
            if let Some(i) = self.san_uri.get(u) {
                return Ok(*i);
            }
        }
        for d in &peer.san_dns {
            if let Some(i) = self.san_dns.get(&d.to_ascii_lowercase()) {
                return Ok(*i);
            }
        }
        if let Some(i) = peer
            .common_name
            .as_ref()
            .and_then(|c| self.subject_cn.get(c))
        {
            return Ok(*i);
        }
        Err(Reason::MtlsUnknown)
    }
}
