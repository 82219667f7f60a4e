//! Who the client is behind proxies the integrator trusts: the connection's
//! peer, unless that peer is a trusted proxy, in which case the address it
//! says it forwarded for (`Forwarded`, RFC 7239, else `X-Forwarded-For`),
//! read right to left and stopping at the first address that is not a
//! trusted proxy. Without trusted proxies the headers are never read: any
//! client can write them.

use std::net::IpAddr;

use crate::model::network::unmapped;
pub use crate::model::network::{Cidr, ParseCidrError};

/// The builder method and the lookup of the client address that every
/// public route's decisions share (leak reports, GitHub's and GitLab's
/// revocation routes), for a type `$ty` with a field `proxies`.
macro_rules! client_address {
    ($ty:ident) => {
        /// The reverse proxies in front of the route, whose `Forwarded`
        /// or `X-Forwarded-For` name the real client (default: none, and
        /// the client is the connection's peer).
        pub fn trusted_proxies(mut self, proxies: crate::TrustedProxies) -> $ty {
            self.proxies = proxies;
            self
        }

        /// The client of a call that arrived from `peer` with these header
        /// values (see [`TrustedProxies::client`](crate::TrustedProxies::client)):
        /// the address the adapters pass on, which the route's
        /// per-address limit counts.
        pub fn client<'a>(
            &self,
            peer: std::net::IpAddr,
            forwarded: impl IntoIterator<Item = &'a [u8]>,
            x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
        ) -> std::net::IpAddr {
            self.proxies.client(peer, forwarded, x_forwarded_for)
        }
    };
}
pub(crate) use client_address;

/// The proxies whose forwarding headers are believed (none by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
    header: Option<ProxyHeader>,
}

/// The forwarding header a proxy writes, when the integrator names it
/// ([`TrustedProxies::reading`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `Forwarded` (RFC 7239).
    Forwarded,
    /// `X-Forwarded-For`.
    XForwardedFor,
}

impl std::str::FromStr for ProxyHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyHeader, String> {
        match s.to_ascii_lowercase().as_str() {
            "forwarded" => Ok(ProxyHeader::Forwarded),
            "x-forwarded-for" => Ok(ProxyHeader::XForwardedFor),
            _ => Err(format!(
                "`{}` is not a forwarding header: give forwarded or x-forwarded-for",
                crate::model::text::printable(s)
            )),
        }
    }
}

impl TrustedProxies {
    /// Trusts no proxy: the client is always the connection's peer.
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Trusts the proxies in `networks`.
    pub fn new(networks: impl IntoIterator<Item = Cidr>) -> TrustedProxies {
        TrustedProxies {
            networks: networks.into_iter().collect(),
            header: None,
        }
    }

    /// Reads only `header`, the one the proxies write. Without it,
    /// `Forwarded` is read when present, else `X-Forwarded-For`: behind a
    /// proxy that writes only `X-Forwarded-For` and passes a client's
    /// `Forwarded` through, name the header, or a client could choose its
    /// address.
    pub fn reading(mut self, header: ProxyHeader) -> TrustedProxies {
        self.header = Some(header);
        self
    }

    /// Whether no proxy is trusted (the client is always the peer).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `addr` is a trusted proxy.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(addr))
    }

    /// The client of a request that arrived from `peer`, with these
    /// `Forwarded` and `X-Forwarded-For` header values (every line of each,
    /// in order). `Forwarded` is read when present, else
    /// `X-Forwarded-For`, unless [`reading`](TrustedProxies::reading) names
    /// one; a value that is not an address (`unknown`, an
    /// obfuscated identifier, garbage) ends the walk at the proxy that
    /// wrote it. What a per-client limit counts by; for a decision about
    /// the client's address itself, see
    /// [`known_client`](TrustedProxies::known_client).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        self.walk(peer, forwarded, x_forwarded_for)
            .unwrap_or_else(|proxy| proxy)
    }

    /// [`client`](TrustedProxies::client), but `None` when the walk ends at
    /// a value that is not an address: the proxy did not know the client,
    /// and its own address must not stand in for it (a token allowed from
    /// the proxy's network would be used from anywhere). What the address
    /// rule is checked against.
    pub fn known_client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        self.walk(peer, forwarded, x_forwarded_for).ok()
    }

    /// The walk from `peer` back through the trusted proxies: the client,
    /// or `Err` with the last trusted proxy when a hop is not an address.
    fn walk<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<IpAddr, IpAddr> {
        let mut client = unmapped(peer);
        if !self.trusts(client) {
            return Ok(client);
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        if self.header != Some(ProxyHeader::XForwardedFor) {
            for line in forwarded {
                hops.extend(forwarded_for(line));
            }
        }
        if hops.is_empty() && self.header != Some(ProxyHeader::Forwarded) {
            for line in x_forwarded_for {
                hops.extend(line.split(|&b| b == b',').map(|v| {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| node_address(v.trim()))
                }));
            }
        }
        for hop in hops.into_iter().rev() {
            let Some(addr) = hop else {
                return Err(client);
            };
            client = unmapped(addr);
            if !self.trusts(client) {
                return Ok(client);
            }
        }
        Ok(client)
    }
}

/// The `for=` of each element of one `Forwarded` line (RFC 7239), in
/// order: `None` for one that is not an address. Each element is decoded
/// on its own, so that a client's bytes that are not UTF-8 cannot hide the
/// element a proxy appended after them.
fn forwarded_for(line: &[u8]) -> Vec<Option<IpAddr>> {
    line.split(|&b| b == b',')
        .filter_map(|element| {
            let Ok(element) = std::str::from_utf8(element) else {
                return Some(None);
            };
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_address(value.trim()))
            })
        })
        .collect()
}

/// A `Forwarded` node (`192.0.2.1`, `"192.0.2.1:80"`, `"[2001:db8::1]:80"`)
/// as its address.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _port) = rest.split_once(']')?;
        return v6.parse().ok();
    }
    match node.parse() {
        Ok(addr) => Some(addr),
        // An IPv4 address with a port.
        Err(_) => node.rsplit_once(':').and_then(|(a, _)| a.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_strictly_and_contain_what_they_should() {
        let net: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(net.contains(ip("192.0.2.200")) && !net.contains(ip("192.0.3.1")));
        assert!(net.contains(ip("::ffff:192.0.2.7")), "IPv4-mapped");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
        let one: Cidr = "10.1.2.3".parse().unwrap();
        assert_eq!(one.to_string(), "10.1.2.3/32");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/x",
            "example.com",
            "::/129",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
        let peer = ip("10.0.0.1");
        let xff = |v: &'static str| proxies.client(peer, None, Some(v.as_bytes()));
        assert_eq!(xff("198.51.100.7"), ip("198.51.100.7"));
        // A client writing its own header gets nothing from it: the walk
        // stops at the first untrusted address.
        assert_eq!(xff("1.1.1.1, 198.51.100.7, 10.0.0.2"), ip("198.51.100.7"));
        assert_eq!(xff("10.0.0.3, 10.0.0.2"), ip("10.0.0.3"), "all trusted");
        assert_eq!(
            xff("garbage, 10.0.0.2"),
            ip("10.0.0.2"),
            "stops at the writer"
        );
        assert_eq!(xff(""), ip("10.0.0.1"));
        // Not from a trusted proxy: the headers are never read.
        assert_eq!(
            proxies.client(ip("203.0.113.5"), None, Some(&b"198.51.100.7"[..])),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::none().client(peer, None, Some(&b"198.51.100.7"[..])),
            peer
        );
        // Forwarded wins over X-Forwarded-For, with its quoting and ports.
        let fwd = |v: &'static str| proxies.client(peer, Some(v.as_bytes()), Some(&b"9.9.9.9"[..]));
        assert_eq!(fwd("for=198.51.100.7;proto=https"), ip("198.51.100.7"));
        assert_eq!(
            fwd(r#"for="[2001:db8:cafe::17]:4711""#),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd(r#"for="198.51.100.7:80", for=10.0.0.9"#),
            ip("198.51.100.7")
        );
        assert_eq!(fwd("for=unknown"), peer);
        assert_eq!(fwd("For=_hidden, for=10.0.0.9"), ip("10.0.0.9"));
    }

    /// Behind a proxy that writes only X-Forwarded-For and passes a
    /// client's own `Forwarded` through, the client chose its address
    /// (issue 25's leftover); naming the header ends that.
    #[test]
    fn a_named_header_is_the_only_one_read() {
        let net = || ["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.1");
        let spoofed = Some(&b"for=192.0.2.66"[..]);
        let written = Some(&b"198.51.100.7"[..]);
        assert_eq!(
            TrustedProxies::new(net()).client(peer, spoofed, written),
            ip("192.0.2.66"),
            "the default prefers Forwarded"
        );
        let xff_only = TrustedProxies::new(net()).reading(ProxyHeader::XForwardedFor);
        assert_eq!(xff_only.client(peer, spoofed, written), ip("198.51.100.7"));
        let fwd_only = TrustedProxies::new(net()).reading(ProxyHeader::Forwarded);
        assert_eq!(
            fwd_only.client(peer, None, written),
            peer,
            "X-Forwarded-For ignored"
        );
        assert_eq!("X-Forwarded-For".parse(), Ok(ProxyHeader::XForwardedFor));
        assert!("via".parse::<ProxyHeader>().is_err());
    }

    // From the attack review: one element a client wrote that is not UTF-8
    // made the whole line unreadable, and an unreadable hop made the proxy
    // the client, so a token allowed from the proxy's network was usable
    // from anywhere.
    #[test]
    fn an_unreadable_hop_is_an_unknown_client_never_the_proxy() {
        let proxies = TrustedProxies::new(["127.0.0.1".parse().unwrap()]);
        let peer = ip("127.0.0.1");
        let none = None::<&[u8]>;
        for (forwarded, client) in [
            (
                &b"for=\"\xff\", for=203.0.113.9"[..],
                Some(ip("203.0.113.9")),
            ),
            (b"for=203.0.113.9, for=\"\xff\"", None),
            (b"for=unknown", None),
            (b"for=_hidden", None),
            (b"for=\"[2001:db8::1]:80\"", Some(ip("2001:db8::1"))),
        ] {
            assert_eq!(
                proxies.known_client(peer, Some(forwarded), none),
                client,
                "{}",
                String::from_utf8_lossy(forwarded)
            );
        }
        // A per-client limit still counts an unknown client as its proxy.
        assert_eq!(proxies.client(peer, Some(&b"for=unknown"[..]), none), peer);
        for (xff, client) in [
            (&b"198.51.100.7:4711"[..], Some(ip("198.51.100.7"))),
            (b"[2001:db8::2]:443", Some(ip("2001:db8::2"))),
            (b"\xff, 198.51.100.8", Some(ip("198.51.100.8"))),
            (b"198.51.100.8, \xff", None),
            (b"unknown", None),
        ] {
            assert_eq!(
                proxies.known_client(peer, none, Some(xff)),
                client,
                "{}",
                String::from_utf8_lossy(xff)
            );
        }
    }
}
