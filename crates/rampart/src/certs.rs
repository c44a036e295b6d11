//! `rampart certs dev`: a development CA and certificates signed by it, written where the
//! shipped examples expect them, so `examples/tls.yaml` validates and serves as shipped.
//! Private keys are written with mode 0600. Never for production: the CA key sits next
//! to the certificates it signs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// What `write_dev_certs` wrote.
pub struct DevCerts {
    pub files: Vec<PathBuf>,
}

fn write(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    Ok(())
}

/// Writes into `out`: `dev-ca.pem`/`dev-ca.key` (the CA), `server.pem`/`server.key` (a
/// server certificate for `hosts`), `client.pem`/`client.key` (a client certificate for
/// mTLS tries, CN `dev-client`). Existing files are replaced.
pub fn write_dev_certs(out: &Path, hosts: &[String]) -> anyhow::Result<DevCerts> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Rampart development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

    let mut server = CertificateParams::new(hosts.to_vec())?;
    server.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map_or("localhost", String::as_str),
    );
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "dev-client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &issuer)?;

    let items = [
        ("dev-ca.pem", issuer.pem(), false),
        ("dev-ca.key", ca_key_pem, true),
        ("server.pem", server_cert.pem(), false),
        ("server.key", server_key.serialize_pem(), true),
        ("client.pem", client_cert.pem(), false),
        ("client.key", client_key.serialize_pem(), true),
    ];
    let mut files = Vec::new();
    for (name, text, private) in items {
        let path = out.join(name);
        write(&path, &text, private)?;
        files.push(path);
    }
    Ok(DevCerts { files })
}
