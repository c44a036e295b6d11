//! Country lookups for `ip_rules` (`allow_countries`, `deny_countries`) in a
//! MaxMind-format database the operator supplies (`geoip.database`: GeoLite2-Country,
//! GeoIP2-Country or -City). The file is read whole at each config load; a lookup walks
//! the database's search tree (at most 128 steps) and decodes only the country's ISO
//! code, never the whole record.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

/// An opened database.
pub(crate) struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoIp({})", self.reader.metadata().database_type)
    }
}

/// The largest database read: the City databases are about 60 MB.
const MAX_BYTES: u64 = 512 * 1024 * 1024;

impl GeoIp {
    /// Opens the database at `path`, checking that it carries countries.
    pub(crate) fn open(path: &Path) -> Result<GeoIp, String> {
        let len = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len > MAX_BYTES {
            return Err(format!(
                "{} is {len} bytes; the limit is {MAX_BYTES}",
                path.display()
            ));
        }
        let reader = Reader::open_readfile(path)
            .map_err(|e| format!("{} is not a MaxMind database: {e}", path.display()))?;
        let kind = &reader.metadata().database_type;
        if !(kind.contains("Country") || kind.contains("City") || kind.contains("Enterprise")) {
            return Err(format!(
                "{} is a {kind} database, which has no countries (use a Country or City database)",
                path.display()
            ));
        }
        Ok(GeoIp { reader })
    }

    /// The ISO 3166-1 alpha-2 code of the country `ip` is located in, if the database
    /// knows one (IPv4-mapped addresses are looked up as IPv4).
    pub(crate) fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let ip = rampart_core::canonical_ip(ip);
        let found = self.reader.lookup(ip).ok()?;
        let path = [PathElement::Key("country"), PathElement::Key("iso_code")];
        let code: &str = found.decode_path(&path).ok().flatten()?;
        match code.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some([*a, *b]),
            _ => None,
        }
    }
}
