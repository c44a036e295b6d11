//! Listeners: where client traffic is accepted, and their TLS (certificates by SNI,
//! minimum version, optional client certificates for mTLS).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// One bound address that accepts client connections.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// Address and port, e.g. `0.0.0.0:8443` or `[::]:8080`.
    pub bind: SocketAddr,
    /// TLS termination; absent means plain HTTP/1.1.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// Client address allow and deny lists applied at accept, to the TCP peer, before
    /// any byte is read (and before TLS).
    #[serde(default)]
    pub ip_rules: Option<crate::IpRulesSpec>,
}

/// TLS termination settings for one listener.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// Certificate chains with their keys. SNI picks among them by the names in each
    /// certificate (or `server_names`); the first is the default for unknown or absent SNI.
    pub certificates: Vec<CertificateSpec>,
    /// Oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Offer HTTP/2 through ALPN (default true). HTTP/1.1 is always offered.
    #[serde(default = "crate::spec::yes")]
    pub http2: bool,
    /// Client certificate verification (mTLS).
    #[serde(default)]
    pub client_auth: Option<ClientAuthSpec>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// PEM file with the leaf certificate first, then intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// SNI names this certificate serves (exact or `*.example.com`). Default: the DNS
    /// names in the certificate's subjectAltName.
    #[serde(default)]
    pub server_names: Option<Vec<String>>,
}

/// Client certificate verification on a TLS listener.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthSpec {
    /// PEM bundle of the CAs that may issue client certificates.
    pub ca_file: PathBuf,
    /// `true` (default): the handshake fails without a valid client certificate.
    /// `false`: a certificate is verified when offered, and its absence is allowed.
    #[serde(default = "crate::spec::yes")]
    pub required: bool,
}

/// A TLS protocol version. Written `"1.2"` or `"1.3"` (quoted or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TlsVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"1.2\" or \"1.3\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                match v {
                    "1.2" => Ok(TlsVersion::Tls12),
                    "1.3" => Ok(TlsVersion::Tls13),
                    _ => Err(E::custom(format!(
                        "unsupported TLS version {v:?}: use \"1.2\" or \"1.3\""
                    ))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                if v == 1.2 {
                    Ok(TlsVersion::Tls12)
                } else if v == 1.3 {
                    Ok(TlsVersion::Tls13)
                } else {
                    Err(E::custom(format!(
                        "unsupported TLS version {v}: use \"1.2\" or \"1.3\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}
