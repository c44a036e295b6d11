//! Certificates generated per test with rcgen: a CA that issues server and client leaves.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct TestCa {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses) with common name `cn`.
    pub fn leaf(&self, cn: &str, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl TestCa {
    /// A client leaf with common name `cn` and a URI subjectAltName (a SPIFFE ID, say).
    pub fn client_with_uri(&self, cn: &str, uri: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Leaf {
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fn fingerprint(&self) -> String {
        use rustls_pki_types::pem::PemObject;
        use sha2::Digest;
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap();
        sha2::Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The certificate chain and key, parsed for a rustls server.
    pub fn chain_and_key(
        &self,
    ) -> (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ) {
        use rustls_pki_types::pem::PemObject;
        let chain = rustls_pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        (chain, key)
    }

    /// Writes `<name>.pem` and `<name>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

pub fn write_ca(ca: &TestCa, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.pem"));
    std::fs::write(&p, ca.pem()).unwrap();
    p
}

/// The files of an mTLS admin listener in `dir`: its certificate for `admin.internal`
/// (`admin.pem`, `admin.key`) and the operators' CA (`operators.pem`). Returns the
/// server's CA (for clients to trust) and the operators' CA (to sign client leaves).
pub fn admin_mtls(dir: &Path) -> (TestCa, TestCa) {
    let server_ca = TestCa::new("Admin server CA");
    let client_ca = TestCa::new("Operators CA");
    server_ca
        .leaf("admin.internal", &["admin.internal"])
        .write(dir, "admin");
    write_ca(&client_ca, dir, "operators");
    (server_ca, client_ca)
}

impl TestCa {
    /// A leaf for `names` that expires `days` days from now.
    pub fn leaf_expiring(&self, cn: &str, names: &[&str], days: u64) -> Leaf {
        let at = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86400);
        let date = humantime::format_rfc3339_seconds(at).to_string();
        let ymd: Vec<i32> = date[..10].split('-').map(|p| p.parse().unwrap()).collect();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_after = rcgen::date_time_ymd(ymd[0], ymd[1] as u8, ymd[2] as u8);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
