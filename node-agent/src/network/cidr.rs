//! A minimal IPv4 CIDR type (the workspace carries no ipnet crate).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::Error;

/// An IPv4 address with a prefix length, e.g. `10.244.1.0/24` (network) or `10.244.1.1/24` (interface address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    /// The address as written (not necessarily the network address).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Builds a CIDR.
    ///
    /// # Panics
    /// If `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        assert!(prefix <= 32, "prefix {prefix} out of range");
        Ipv4Cidr { addr, prefix }
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The same prefix with host bits cleared.
    pub fn trunc(&self) -> Ipv4Cidr {
        Ipv4Cidr::new(self.network(), self.prefix)
    }

    /// The `n`th address of the network (`nth(1)` is the gateway by berth's convention).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from((u32::from(self.addr) & self.mask()).wrapping_add(n))
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::ParseFailed {
            what: "ipv4 cidr".into(),
            detail: format!("{s:?}"),
        };
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let prefix: u8 = p.trim().parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes_offsets() {
        let c: Ipv4Cidr = "10.244.3.7/24".parse().unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(10, 244, 3, 0));
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 244, 3, 1));
        assert!(c.contains(Ipv4Addr::new(10, 244, 3, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 244, 4, 1)));
        assert_eq!(c.trunc().to_string(), "10.244.3.0/24");
        assert_eq!("1.2.3.4".parse::<Ipv4Cidr>().unwrap().prefix, 32);
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("x/8".parse::<Ipv4Cidr>().is_err());
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
