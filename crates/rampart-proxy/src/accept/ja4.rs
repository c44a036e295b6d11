//! The JA4 fingerprint of a TLS ClientHello (FoxIO's JA4 TLS client fingerprint, BSD
//! 3-Clause; not the JA4+ variants under FoxIO's own licence), computed from the raw
//! handshake records read ahead of rustls, because rustls does not expose the extension
//! list or `supported_versions` (rustls/rustls#2498).
//!
//! `t13d1516h2_8daaf6152771_e5627efa2ab1`: protocol and highest version, SNI or not, the
//! numbers of cipher suites and extensions, the first ALPN's first and last characters;
//! then a truncated SHA-256 of the sorted cipher suites; then one of the sorted extensions
//! (without SNI and ALPN) and the signature algorithms in the client's order. GREASE values
//! are ignored throughout.

use sha2::{Digest, Sha256};

/// The most bytes of handshake records read for a fingerprint; a longer ClientHello gets
/// none (the handshake goes on).
pub(crate) const MAX_HELLO: usize = 16 * 1024;

/// The ClientHello's fields JA4 reads.
#[derive(Debug, Default, PartialEq)]
struct Hello {
    legacy_version: u16,
    ciphers: Vec<u16>,
    extensions: Vec<u16>,
    versions: Vec<u16>,
    sni: bool,
    alpn: Option<Vec<u8>>,
    signature_algorithms: Vec<u16>,
}

/// Whether `records` (TLS records as read from the wire) hold a whole ClientHello yet:
/// `Some(fingerprint)` once they do (`None` inside when they are not a ClientHello).
pub(crate) fn fingerprint(records: &[u8]) -> Option<Option<String>> {
    let hs = handshake(records)?;
    Some(parse(&hs).map(|h| ja4(&h)))
}

/// The first handshake message, reassembled from the records' fragments: `None` until
/// it is complete.
fn handshake(mut records: &[u8]) -> Option<Vec<u8>> {
    let mut hs = Vec::new();
    loop {
        if hs.len() >= 4 {
            let len = usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]);
            if hs.len() >= 4 + len {
                hs.truncate(4 + len);
                return Some(hs);
            }
        }
        let (head, rest) = records.split_at_checked(5)?;
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let (payload, rest) = rest.split_at_checked(len)?;
        if head[0] != 22 {
            // Not a handshake record where the hello should be: nothing to fingerprint.
            return Some(Vec::new());
        }
        hs.extend_from_slice(payload);
        records = rest;
    }
}

/// A cursor over big-endian wire fields.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn parse(hs: &[u8]) -> Option<Hello> {
    let mut r = Reader(hs);
    if r.u8()? != 1 {
        return None;
    }
    r.take(3)?;
    let mut h = Hello {
        legacy_version: r.u16()?,
        ..Hello::default()
    };
    r.take(32)?;
    r.vec8()?;
    h.ciphers = u16s(r.vec16()?);
    r.vec8()?;
    let mut ext = Reader(r.vec16().unwrap_or_default());
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let mut body = Reader(ext.vec16()?);
        h.extensions.push(kind);
        match kind {
            0x0000 => h.sni = true,
            0x0010 => {
                let mut list = Reader(body.vec16()?);
                h.alpn = list.vec8().map(<[u8]>::to_vec);
            }
            0x000d => h.signature_algorithms = u16s(body.vec16()?),
            0x002b => h.versions = u16s(body.vec8()?),
            _ => {}
        }
    }
    Some(h)
}

/// GREASE values (RFC 8701): `0x?a?a` with both bytes equal.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The first 12 hex digits of SHA-256 of the list, or twelve zeros for an empty one.
fn hash12(list: &str) -> String {
    if list.is_empty() {
        return "000000000000".into();
    }
    let digest = Sha256::digest(list.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_list(values: impl Iterator<Item = u16>) -> String {
    values
        .map(|v| format!("{v:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn ja4(h: &Hello) -> String {
    let version = h
        .versions
        .iter()
        .copied()
        .filter(|v| !grease(*v))
        .max()
        .unwrap_or(h.legacy_version);
    let alpn = match h.alpn.as_deref() {
        Some([first, .., last]) | Some([first @ last]) => {
            if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                format!("{}{}", char::from(*first), char::from(*last))
            } else {
                let (f, l) = (format!("{first:02x}"), format!("{last:02x}"));
                format!("{}{}", &f[..1], &l[1..])
            }
        }
        _ => "00".into(),
    };
    let mut ciphers: Vec<u16> = h.ciphers.iter().copied().filter(|v| !grease(*v)).collect();
    let extensions: Vec<u16> = h
        .extensions
        .iter()
        .copied()
        .filter(|v| !grease(*v))
        .collect();
    let a = format!(
        "t{}{}{:02}{:02}{alpn}",
        version_code(version),
        if h.sni { 'd' } else { 'i' },
        ciphers.len().min(99),
        extensions.len().min(99),
    );
    ciphers.sort_unstable();
    let mut sorted: Vec<u16> = extensions
        .into_iter()
        .filter(|v| *v != 0x0000 && *v != 0x0010)
        .collect();
    sorted.sort_unstable();
    let mut c = hex_list(sorted.into_iter());
    let sigs: Vec<u16> = h
        .signature_algorithms
        .iter()
        .copied()
        .filter(|v| !grease(*v))
        .collect();
    if !sigs.is_empty() && !c.is_empty() {
        c.push('_');
        c.push_str(&hex_list(sigs.into_iter()));
    }
    format!(
        "{a}_{}_{}",
        hash12(&hex_list(ciphers.into_iter())),
        hash12(&c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record with these fields (extension bodies filled for the ones JA4
    /// reads, empty otherwise).
    fn hello(ciphers: &[u16], extensions: &[u16], alpn: &[u8], sigs: &[u16]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend(((ciphers.len() * 2) as u16).to_be_bytes());
        ciphers.iter().for_each(|c| body.extend(c.to_be_bytes()));
        body.extend([1, 0]);
        let mut exts = Vec::new();
        for &e in extensions {
            let data: Vec<u8> = match e {
                0x0000 => [&[0, 14, 0, 0, 11][..], b"example.com"].concat(),
                0x0010 => {
                    let mut d = ((alpn.len() + 1) as u16).to_be_bytes().to_vec();
                    d.push(alpn.len() as u8);
                    d.extend(alpn);
                    d
                }
                0x000d => {
                    let mut d = ((sigs.len() * 2) as u16).to_be_bytes().to_vec();
                    sigs.iter().for_each(|s| d.extend(s.to_be_bytes()));
                    d
                }
                0x002b => vec![4, 0x7a, 0x7a, 0x03, 0x04],
                _ => vec![],
            };
            exts.extend(e.to_be_bytes());
            exts.extend((data.len() as u16).to_be_bytes());
            exts.extend(data);
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    /// The cipher suites, extensions and signature algorithms of the JA4 specification's
    /// worked example (Chrome), with GREASE values as Chrome sends them.
    fn chrome() -> Vec<u8> {
        let ciphers = [
            0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
            0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let extensions = [
            0x1a1a, 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d, 0x0012,
            0x0033, 0x002d, 0x002b, 0x001b, 0x4469, 0x0015, 0x3a3a,
        ];
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        hello(&ciphers, &extensions, b"h2", &sigs)
    }

    #[test]
    fn matches_the_specifications_published_example() {
        let fp = fingerprint(&chrome()).unwrap().unwrap();
        assert_eq!(fp, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn waits_for_a_hello_split_over_records_and_segments() {
        let full = chrome();
        // Split the handshake message over two records, and read it in pieces.
        let (hs, body) = (&full[5..], &full[5..]);
        let cut = 100;
        let mut two = vec![22, 3, 1];
        two.extend((cut as u16).to_be_bytes());
        two.extend(&hs[..cut]);
        two.extend([22, 3, 1]);
        two.extend(((body.len() - cut) as u16).to_be_bytes());
        two.extend(&hs[cut..]);
        for end in [3, 5, 50, 105, 110, two.len() - 1] {
            assert_eq!(fingerprint(&two[..end]), None, "{end}");
        }
        assert_eq!(
            fingerprint(&two).unwrap().unwrap(),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn reads_alpn_sni_and_versions_as_the_specification_says() {
        // No SNI, no ALPN, no supported_versions: TLS 1.2 from the legacy version.
        let h = hello(&[0xc02f], &[0x000a], b"", &[]);
        let fp = fingerprint(&h).unwrap().unwrap();
        assert!(fp.starts_with("t12i010100_"), "{fp}");
        // A non-alphanumeric ALPN is written as hex: first digit of the first byte, last
        // of the last.
        let h = hello(&[0x1301], &[0x0000, 0x0010], &[0xab, 0x01, 0xcd], &[]);
        let fp = fingerprint(&h).unwrap().unwrap();
        assert!(fp.starts_with("t12d0102ad_"), "{fp}");
        // No extensions left after SNI and ALPN: twelve zeros.
        assert!(fp.ends_with("_000000000000"), "{fp}");
        // One-character ALPN.
        let h = hello(&[0x1301], &[0x0010], b"h", &[]);
        assert!(fingerprint(&h).unwrap().unwrap().starts_with("t12i0101hh_"));
    }

    #[test]
    fn anything_else_gets_no_fingerprint_and_no_panic() {
        assert_eq!(fingerprint(&[23, 3, 3, 0, 1, 0]), Some(None));
        assert_eq!(fingerprint(&[22, 3, 1, 0, 4, 2, 0, 0, 0]), Some(None));
        let mut h = chrome();
        h[9 + 2 + 32] = 200; // a session id longer than the message
        assert_eq!(fingerprint(&h), Some(None));
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..300u16).map(|i| (i as u8).wrapping_mul(n)).collect();
            let _ = fingerprint(&[&[22u8, 3, 1, 1, 44][..], &junk].concat());
        }
    }

    #[test]
    fn grease_is_every_0x_a_a_value() {
        assert!(grease(0x0a0a) && grease(0xfafa) && grease(0x7a7a));
        assert!(!grease(0x0a1a) && !grease(0x1301));
    }
}
