//! TLS configuration, built once per config load: server configs for listeners (SNI
//! certificate selection, versions, ALPN, client certificate verification) and client
//! configs for `https://` upstreams.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rampart_config::{
    ClientAuthSpec, ClientCertSpec, ConfigError, TlsSpec, TlsVersion, UpstreamProtocol,
    UpstreamTlsSpec,
};
use rampart_core::TlsPeer;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn load_certs(path: &Path, yaml: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            ConfigError::new(
                yaml,
                format!("cannot read certificates from {}: {e}", path.display()),
            )
        })?
        .collect();
    let certs = certs
        .map_err(|e| ConfigError::new(yaml, format!("invalid PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            yaml,
            format!("{} contains no certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path, yaml: &str) -> Result<PrivateKeyDer<'static>, ConfigError> {
    // The error never includes key material: only the path and the parser's reason.
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        ConfigError::new(
            yaml,
            format!("cannot read a private key from {}: {e}", path.display()),
        )
    })
}

fn load_roots(path: &Path, yaml: &str) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, yaml)? {
        roots.add(cert).map_err(|e| {
            ConfigError::new(
                yaml,
                format!("{} holds an unusable CA certificate: {e}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    yaml: &str,
) -> Result<(Arc<CertifiedKey>, Vec<CertificateDer<'static>>), ConfigError> {
    let chain = load_certs(cert_file, &format!("{yaml}.cert_file"))?;
    let key = load_key(key_file, &format!("{yaml}.key_file"))?;
    let signing = provider().key_provider.load_private_key(key).map_err(|e| {
        ConfigError::new(
            format!("{yaml}.key_file"),
            format!("unsupported private key: {e}"),
        )
    })?;
    let ck = CertifiedKey::new(chain.clone(), signing);
    ck.keys_match().map_err(|_| {
        ConfigError::new(
            format!("{yaml}.key_file"),
            "the private key does not match the certificate",
        )
    })?;
    Ok((Arc::new(ck), chain))
}

/// Chooses a certificate by SNI: exact name, then a one-label wildcard, then the default.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*`, e.g. `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some(dot) = name.find('.') {
            if let Some(k) = self.wildcard.get(&name[dot..]) {
                return Some(k.clone());
            }
        }
        Some(self.default.clone())
    }
}

/// DNS names in a certificate's subjectAltName, lower-cased.
fn san_dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = x509.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Builds a listener's TLS server config. `yaml` is the listener's YAML path.
pub fn server_config(
    spec: &TlsSpec,
    base: &Path,
    yaml: &str,
) -> Result<Arc<ServerConfig>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    for (i, c) in spec.certificates.iter().enumerate() {
        let p = format!("{yaml}.tls.certificates[{i}]");
        match certified_key(
            &resolve(base, &c.cert_file),
            &resolve(base, &c.key_file),
            &p,
        ) {
            Ok((key, chain)) => {
                let names = c
                    .server_names
                    .clone()
                    .unwrap_or_else(|| san_dns_names(&chain[0]));
                keys.push((key, names));
            }
            Err(e) => errors.push(e),
        }
    }
    let verifier = match &spec.client_auth {
        Some(ca) => match client_verifier(ca, base, &format!("{yaml}.tls.client_auth")) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() || keys.is_empty() {
        return Err(errors);
    }
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    for (key, names) in &keys {
        for n in names {
            match n.strip_prefix('*') {
                Some(suffix) => wildcard
                    .entry(suffix.to_string())
                    .or_insert_with(|| key.clone()),
                None => exact.entry(n.clone()).or_insert_with(|| key.clone()),
            };
        }
    }
    let resolver = SniResolver {
        exact,
        wildcard,
        default: keys[0].0.clone(),
    };
    let versions: &[&'static rustls::SupportedProtocolVersion] = match spec.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder =
        match ServerConfig::builder_with_provider(provider()).with_protocol_versions(versions) {
            Ok(b) => b,
            Err(e) => {
                return Err(vec![ConfigError::new(
                    format!("{yaml}.tls"),
                    format!("TLS setup failed: {e}"),
                )])
            }
        };
    let mut config = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = if spec.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // Session tickets would need key rotation we do not have yet; the stateful cache
    // (rustls default) gives resumption without long-lived ticket keys.
    Ok(Arc::new(config))
}

fn client_verifier(
    ca: &ClientAuthSpec,
    base: &Path,
    yaml: &str,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ConfigError> {
    let roots = Arc::new(load_roots(
        &resolve(base, &ca.ca_file),
        &format!("{yaml}.ca_file"),
    )?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = if ca.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| {
        ConfigError::new(
            format!("{yaml}.ca_file"),
            format!("cannot build client verifier: {e}"),
        )
    })
}

fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            Arc::new(roots)
        })
        .clone()
}

/// Builds the client config for an upstream's `https://` targets.
pub fn client_config(
    spec: Option<&UpstreamTlsSpec>,
    protocol: UpstreamProtocol,
    base: &Path,
    yaml: &str,
) -> Result<Arc<ClientConfig>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let roots = match spec.and_then(|s| s.ca_file.as_ref()) {
        Some(ca) => match load_roots(&resolve(base, ca), &format!("{yaml}.tls.ca_file")) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                errors.push(e);
                Arc::new(RootCertStore::empty())
            }
        },
        None => system_roots(),
    };
    let client_cert = match spec.and_then(|s| s.client_cert.as_ref()) {
        Some(ClientCertSpec {
            cert_file,
            key_file,
        }) => {
            let p = format!("{yaml}.tls.client_cert");
            let chain = load_certs(&resolve(base, cert_file), &format!("{p}.cert_file"));
            let key = load_key(&resolve(base, key_file), &format!("{p}.key_file"));
            match (chain, key) {
                (Ok(c), Ok(k)) => Some((c, k)),
                (c, k) => {
                    errors.extend(c.err());
                    errors.extend(k.err());
                    None
                }
            }
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| {
            vec![ConfigError::new(
                format!("{yaml}.tls"),
                format!("TLS setup failed: {e}"),
            )]
        })?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            vec![ConfigError::new(
                format!("{yaml}.tls.client_cert"),
                format!("unusable client certificate: {e}"),
            )]
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match protocol {
        UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// Reads the verified client certificate of a finished handshake. rustls only exposes
/// peer certificates that passed the listener's client verifier.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<TlsPeer> {
    identity_of(conn.peer_certificates()?.first()?)
}

/// The identity facts of a (verified) leaf certificate.
pub fn identity_of(leaf: &CertificateDer<'_>) -> Option<TlsPeer> {
    use sha2::Digest;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let mut peer = TlsPeer {
        subject: x509.subject().to_string(),
        common_name: x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        fingerprint_sha256: sha2::Sha256::digest(leaf.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        ..TlsPeer::default()
    };
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => {
                    peer.san_dns.push(n.to_string())
                }
                x509_parser::extensions::GeneralName::URI(u) => peer.san_uri.push(u.to_string()),
                _ => {}
            }
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_has_subject_sans_and_fingerprint() {
        let mut params =
            rcgen::CertificateParams::new(vec!["client.acme.test".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "acme-client");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://acme/billing".try_into().unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = identity_of(cert.der()).unwrap();
        assert_eq!(id.common_name.as_deref(), Some("acme-client"));
        assert!(id.subject.contains("CN=acme-client"), "{}", id.subject);
        assert_eq!(id.san_dns, vec!["client.acme.test"]);
        assert_eq!(id.san_uri, vec!["spiffe://acme/billing"]);
        assert_eq!(id.fingerprint_sha256.len(), 64);
    }
}
