//! The client's IP address behind trusted proxies.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network such as `10.0.0.0/8` or `fd00::/8`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Text that is not an address or an address/prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?} (expected e.g. 10.0.0.0/8 or fd00::/8)")]
pub struct InvalidCidr(pub String);

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidCidr(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether the address lies in this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Resolves the client address from the socket peer and `X-Forwarded-For`.
#[derive(Debug, Clone, Default)]
pub struct ClientIpResolver {
    trusted: Vec<Cidr>,
}

impl ClientIpResolver {
    /// A resolver trusting these proxy networks.
    pub fn new(trusted: Vec<Cidr>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(addr))
    }

    /// The client's address, from one `X-Forwarded-For` value.
    ///
    /// When the peer is trusted, `X-Forwarded-For` is read right to left and the first address
    /// that is not a trusted proxy wins: proxies append, so everything left of it could have
    /// been written by the client. Unparseable entries stop the walk at the last good address.
    /// A request may carry several header lines; use [`resolve_headers`](Self::resolve_headers)
    /// then, so that none is ignored.
    pub fn resolve(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        self.walk(peer, forwarded_for.map(str::as_bytes))
    }

    /// The client's address, from every `X-Forwarded-For` line of `headers`.
    ///
    /// The lines count as one list joined in order (RFC 9110 §5.3), walked from the right as
    /// [`resolve`](Self::resolve) walks one: a proxy that appends its own line instead of
    /// extending the client's is still read first, and a client's extra line cannot hide it.
    /// A line that is not visible ASCII stops the walk, like an unparseable entry.
    pub fn resolve_headers(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        self.walk(
            peer,
            headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .map(http::HeaderValue::as_bytes),
        )
    }

    /// Walks the lines last to first and each line's entries right to left, without joining
    /// them: the same order as walking the joined list from the right.
    fn walk<'a, I>(&self, peer: IpAddr, lines: I) -> IpAddr
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        for line in lines.into_iter().rev() {
            let Ok(line) = std::str::from_utf8(line) else {
                return client;
            };
            for entry in line.rsplit(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(addr) => {
                        client = addr;
                        if !self.is_trusted(addr) {
                            return client;
                        }
                    }
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

/// The header a proxy appends the address it received a request from to.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolver(cidrs: &[&str]) -> ClientIpResolver {
        ClientIpResolver::new(cidrs.iter().map(|c| c.parse().unwrap()).collect())
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(
            net.contains(ip("::ffff:10.0.0.1")),
            "IPv4-mapped addresses match"
        );
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let r = resolver(&[]);
        assert_eq!(
            r.resolve(ip("203.0.113.5"), Some("1.1.1.1")),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn a_spoofed_header_from_an_untrusted_peer_changes_nothing() {
        let r = resolver(&["10.0.0.0/8"]);
        assert_eq!(
            r.resolve(ip("198.51.100.9"), Some("10.0.0.1, 1.2.3.4")),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_address_wins() {
        let r = resolver(&["10.0.0.0/8"]);
        // The client wrote "6.6.6.6" itself; the proxy appended the real address.
        let header = "6.6.6.6, 203.0.113.7, 10.0.0.2";
        assert_eq!(r.resolve(ip("10.0.0.1"), Some(header)), ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_peer_without_a_header_is_the_client() {
        let r = resolver(&["10.0.0.0/8"]);
        assert_eq!(r.resolve(ip("10.0.0.1"), None), ip("10.0.0.1"));
    }

    fn forwarded(lines: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        headers
    }

    #[test]
    fn every_forwarded_for_line_counts_joined_in_order() {
        let r = resolver(&["10.0.0.0/8"]);
        // The client sent its own line; the trusted proxy appended a second line with the
        // address it saw. Reading only the first line would believe the client.
        let headers = forwarded(&["6.6.6.6", "203.0.113.7, 10.0.0.2"]);
        assert_eq!(
            r.resolve_headers(ip("10.0.0.1"), &headers),
            ip("203.0.113.7")
        );
        // The walk goes on into earlier lines while the addresses are trusted proxies.
        let headers = forwarded(&["6.6.6.6, 198.51.100.4", "10.0.0.3", "10.0.0.2"]);
        assert_eq!(
            r.resolve_headers(ip("10.0.0.1"), &headers),
            ip("198.51.100.4")
        );
        // Several lines walk exactly as their join does.
        let joined = "6.6.6.6, 198.51.100.4, 10.0.0.3, 10.0.0.2";
        assert_eq!(
            r.resolve_headers(ip("10.0.0.1"), &headers),
            r.resolve(ip("10.0.0.1"), Some(joined))
        );
    }

    #[test]
    fn forwarded_for_lines_change_nothing_for_an_untrusted_peer_or_when_absent() {
        let r = resolver(&["10.0.0.0/8"]);
        let headers = forwarded(&["10.0.0.7", "203.0.113.7"]);
        assert_eq!(
            r.resolve_headers(ip("198.51.100.9"), &headers),
            ip("198.51.100.9")
        );
        assert_eq!(
            r.resolve_headers(ip("10.0.0.1"), &http::HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_line_that_is_not_text_stops_the_walk() {
        let r = resolver(&["10.0.0.0/8"]);
        let mut headers = forwarded(&["6.6.6.6"]);
        headers.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff7.7.7.7").unwrap(),
        );
        headers.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        assert_eq!(r.resolve_headers(ip("10.0.0.1"), &headers), ip("10.0.0.2"));
    }

    #[test]
    fn garbage_in_the_header_stops_the_walk() {
        let r = resolver(&["10.0.0.0/8"]);
        assert_eq!(
            r.resolve(ip("10.0.0.1"), Some("1.2.3.4, bogus, 10.0.0.3")),
            ip("10.0.0.3")
        );
    }
}
