//! Client addresses in the one form every part of the gateway uses (logs, limits, Cedar,
//! forwarding headers), derived once where the address enters.

use std::net::{IpAddr, Ipv6Addr};

/// `::ffff:a.b.c.d` (what a dual-stack `[::]` listener reports for IPv4 clients) becomes
/// `a.b.c.d`; every other address is returned as is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address a per-client counter is keyed by: IPv4 as is, IPv6 masked to its first
/// `v6_prefix` bits (one host usually holds a whole /64, so counting single addresses
/// would give it 2^64 identities).
pub fn client_bucket(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) if v6_prefix < 128 => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ipv4_mapped_to_ipv4() {
        let ip: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(canonical_ip(ip), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }

    #[test]
    fn buckets_ipv6_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_bucket(a, 64), client_bucket(b, 64));
        assert_eq!(
            client_bucket(a, 64),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(client_bucket(a, 128), client_bucket(b, 128));
        let v4: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_bucket(v4, 64), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
