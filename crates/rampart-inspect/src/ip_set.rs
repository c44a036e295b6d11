//! A set of IP addresses for allow and deny lists: sorted, disjoint, merged ranges,
//! searched by binary search (next-wave.md §1d). A million CIDRs cost 8 bytes each for
//! IPv4 and 32 for IPv6, and a lookup is about twenty comparisons whatever the size.
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.7`) are looked up as the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpSet {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

/// The merged range an address matched, for logs (`203.0.113.0/24`, or `a-b` when the
/// merged range is not one prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRange {
    V4(u32, u32),
    V6(u128, u128),
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpRange::V4(lo, hi) => {
                let (a, b) = (Ipv4Addr::from(lo), Ipv4Addr::from(hi));
                match prefix_len(u128::from(lo), u128::from(hi), 32) {
                    Some(n) => write!(f, "{a}/{n}"),
                    None => write!(f, "{a}-{b}"),
                }
            }
            IpRange::V6(lo, hi) => {
                let (a, b) = (Ipv6Addr::from(lo), Ipv6Addr::from(hi));
                match prefix_len(lo, hi, 128) {
                    Some(n) => write!(f, "{a}/{n}"),
                    None => write!(f, "{a}-{b}"),
                }
            }
        }
    }
}

/// The prefix length when `lo..=hi` is exactly one prefix of a `bits`-bit space.
fn prefix_len(lo: u128, hi: u128, bits: u32) -> Option<u32> {
    let span = hi - lo;
    // One prefix: the span is 2^k - 1 and `lo` is aligned to it.
    if span.checked_add(1).is_some_and(|n| !n.is_power_of_two()) || lo & span != 0 {
        return None;
    }
    Some(bits - (128 - span.leading_zeros()))
}

/// A line of a list that is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text:?} is not an IP address or CIDR")]
pub struct BadEntry {
    pub line: usize,
    /// The offending entry, cut to 64 bytes (a feed file is operator data, not a secret).
    pub text: String,
}

/// Collects entries, then sorts and merges them into an [`IpSet`].
#[derive(Debug, Default)]
pub struct IpSetBuilder {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSetBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a network (host bits are ignored, as block lists often carry them).
    pub fn add(&mut self, net: ipnet::IpNet) {
        match net {
            ipnet::IpNet::V4(n) => {
                let n = n.trunc();
                self.v4
                    .push((u32::from(n.network()), u32::from(n.broadcast())));
            }
            ipnet::IpNet::V6(n) => {
                let n = n.trunc();
                match n.network().to_ipv4_mapped() {
                    // `::ffff:0:0/96` and longer: the IPv4 networks they map.
                    Some(v4) if n.prefix_len() >= 96 => {
                        let len = n.prefix_len() - 96;
                        if let Ok(v4net) = ipnet::Ipv4Net::new(v4, len) {
                            self.add(ipnet::IpNet::V4(v4net));
                        }
                    }
                    _ => self
                        .v6
                        .push((u128::from(n.network()), u128::from(n.broadcast()))),
                }
            }
        }
    }

    /// Adds every entry of a list file's text: one address or CIDR per line, blank lines
    /// and comments (`#` or `;` to the end of the line, as in Spamhaus DROP and FireHOL
    /// netsets) ignored. The first bad line is an error.
    pub fn add_text(&mut self, text: &str) -> Result<(), BadEntry> {
        for (i, line) in text.lines().enumerate() {
            let entry = line
                .split(['#', ';'])
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            let Some(entry) = entry else { continue };
            match parse_entry(entry) {
                Some(net) => self.add(net),
                None => {
                    return Err(BadEntry {
                        line: i + 1,
                        text: entry.chars().take(64).collect(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Entries added so far (before merging).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn build(self) -> IpSet {
        IpSet {
            v4: merge(self.v4),
            v6: merge(self.v6),
        }
    }
}

fn parse_entry(s: &str) -> Option<ipnet::IpNet> {
    if s.contains('/') {
        s.parse().ok()
    } else {
        s.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
    }
}

/// Sorts and merges overlapping and adjacent ranges.
fn merge<T: Copy + Ord + Successor>(mut ranges: Vec<(T, T)>) -> Box<[(T, T)]> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if last.1.successor().is_none_or(|next| lo <= next) => {
                last.1 = last.1.max(hi);
            }
            _ => out.push((lo, hi)),
        }
    }
    out.into_boxed_slice()
}

/// The next address, `None` at the top of the space.
trait Successor: Sized {
    fn successor(self) -> Option<Self>;
}

impl Successor for u32 {
    fn successor(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Successor for u128 {
    fn successor(self) -> Option<u128> {
        self.checked_add(1)
    }
}

fn find<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> Option<(T, T)> {
    let i = ranges.partition_point(|r| r.0 <= x);
    let r = *ranges.get(i.checked_sub(1)?)?;
    (x <= r.1).then_some(r)
}

impl IpSet {
    /// The merged range holding `ip`, if any.
    pub fn lookup(&self, ip: IpAddr) -> Option<IpRange> {
        match ip {
            IpAddr::V4(v4) => find(&self.v4, u32::from(v4)).map(|(a, b)| IpRange::V4(a, b)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.lookup(IpAddr::V4(v4)),
                None => find(&self.v6, u128::from(v6)).map(|(a, b)| IpRange::V6(a, b)),
            },
        }
    }

    /// Merged ranges held (a list of overlapping or adjacent entries holds fewer).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Bytes held by the ranges.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.v4) + std::mem::size_of_val(&*self.v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> IpSet {
        let mut b = IpSetBuilder::new();
        b.add_text(text).unwrap();
        b.build()
    }

    fn hit(s: &IpSet, ip: &str) -> Option<String> {
        s.lookup(ip.parse().unwrap()).map(|r| r.to_string())
    }

    #[test]
    fn finds_addresses_inside_networks_and_not_beside_them() {
        let s = set("203.0.113.0/24\n192.0.2.7\n2001:db8::/32\n");
        assert_eq!(hit(&s, "203.0.113.0").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(hit(&s, "203.0.113.255").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(hit(&s, "203.0.112.255"), None);
        assert_eq!(hit(&s, "203.0.114.0"), None);
        assert_eq!(hit(&s, "192.0.2.7").as_deref(), Some("192.0.2.7/32"));
        assert_eq!(hit(&s, "192.0.2.8"), None);
        assert_eq!(
            hit(&s, "2001:db8:ffff::1").as_deref(),
            Some("2001:db8::/32")
        );
        assert_eq!(hit(&s, "2001:db9::1"), None);
        assert_eq!(hit(&s, "0.0.0.0"), None);
        assert_eq!(hit(&s, "255.255.255.255"), None);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
        let s = set("198.51.100.0/24\n::ffff:192.0.2.0/120\n");
        assert_eq!(
            hit(&s, "::ffff:198.51.100.9").as_deref(),
            Some("198.51.100.0/24")
        );
        // A mapped network in the list holds the IPv4 addresses it maps.
        assert_eq!(hit(&s, "192.0.2.200").as_deref(), Some("192.0.2.0/24"));
    }

    #[test]
    fn overlapping_and_adjacent_entries_merge() {
        let s = set("10.0.0.0/8\n10.1.0.0/16\n11.0.0.0/8\n12.0.0.1\n12.0.0.3\n");
        // 10/8 and 11/8 are adjacent; 10.1/16 is inside 10/8; the two hosts are not.
        assert_eq!(s.ranges(), 3);
        assert_eq!(hit(&s, "10.200.0.1").as_deref(), Some("10.0.0.0/7"));
        assert_eq!(hit(&s, "12.0.0.2"), None);
        let s = set("10.0.0.0/8\n11.0.0.0/8\n12.0.0.0/8\n");
        assert_eq!(
            hit(&s, "12.0.0.0").as_deref(),
            Some("10.0.0.0-12.255.255.255")
        );
    }

    #[test]
    fn the_ends_of_the_address_space_are_held() {
        let s = set("0.0.0.0/0\n::/0\n");
        assert!(s.lookup("255.255.255.255".parse().unwrap()).is_some());
        assert!(s.lookup("ffff:ffff::1".parse().unwrap()).is_some());
        assert_eq!(s.ranges(), 2);
    }

    #[test]
    fn reads_comments_blank_lines_and_block_list_formats() {
        // Spamhaus DROP (`; SBL…`), FireHOL (`#` headers), host bits set, CRLF.
        let s = set(
            "# header\r\n\r\n1.10.16.0/20 ; SBL256894\r\n  5.8.37.0/24   # note\n10.0.0.77/24\n",
        );
        assert_eq!(hit(&s, "1.10.31.255").as_deref(), Some("1.10.16.0/20"));
        assert!(s.lookup("5.8.37.1".parse().unwrap()).is_some());
        assert_eq!(hit(&s, "10.0.0.1").as_deref(), Some("10.0.0.0/24"));
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let mut b = IpSetBuilder::new();
        let e = b.add_text("10.0.0.0/8\n\nexample.com\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.text, "example.com");
        assert!(b.add_text("10.0.0.0/33").is_err());
    }

    #[test]
    fn agrees_with_a_linear_scan_of_the_entries() {
        // Pseudo-random entries and probes: the merged set answers as a scan would.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let nets: Vec<ipnet::Ipv4Net> = (0..2000)
            .map(|_| {
                let r = next();
                ipnet::Ipv4Net::new(Ipv4Addr::from(r as u32), 8 + (r >> 32) as u8 % 25)
                    .unwrap()
                    .trunc()
            })
            .collect();
        let mut b = IpSetBuilder::new();
        for n in &nets {
            b.add(ipnet::IpNet::V4(*n));
        }
        let s = b.build();
        for _ in 0..20_000 {
            let ip = Ipv4Addr::from(next() as u32);
            let scan = nets.iter().any(|n| n.contains(&ip));
            assert_eq!(s.lookup(IpAddr::V4(ip)).is_some(), scan, "{ip}");
        }
    }
}
