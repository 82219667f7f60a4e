//! Addresses and networks: what a token's address rule and the trusted
//! proxies are written in.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address it
/// stands for; any other address as it is.
pub(crate) fn unmapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// An IPv4 or IPv6 network, `192.0.2.0/24` or `2001:db8::/32`; a bare
/// address is the network of that address alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a text is not a [`Cidr`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not an address or a network (e.g. 10.0.0.0/8, 2001:db8::/32): {reason}",
    crate::model::text::redacted(text)
)]
pub struct ParseCidrError {
    text: String,
    reason: &'static str,
}

impl Cidr {
    /// The network of `addr` with a `prefix` bit long prefix; `None` for a
    /// prefix longer than the address (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let network = unmapped(addr);
        let max = if network.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    /// The address it was written with.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length, in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether every address of this network is in `other`.
    pub fn within(&self, other: &Cidr) -> bool {
        self.prefix >= other.prefix && other.contains(self.network)
    }

    /// Whether `addr` is in this network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, unmapped(addr)) {
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

impl FromStr for Cidr {
    type Err = ParseCidrError;

    fn from_str(text: &str) -> Result<Cidr, ParseCidrError> {
        let err = |reason| ParseCidrError {
            text: text.to_owned(),
            reason,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        let network = unmapped(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| err("the prefix length is too long for the address"))?,
            Some(_) => return Err(err("the prefix length is not a number")),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
