//! IPv4 CIDRs are [`ipnet::Ipv4Net`]; this module keeps only what the agent adds on top: the lenient
//! parse it has always applied to addresses from the API and CNI plugins, and berth's "nth address" rule.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::Error;

/// Parses `10.244.1.0/24`, or a bare address as a `/32`, ignoring whitespace around either part.
///
/// # Errors
/// `ParseFailed` when the address or the prefix is malformed, or the prefix is over 32.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, Error> {
    let bad = || Error::ParseFailed {
        what: "ipv4 cidr".into(),
        detail: format!("{s:?}"),
    };
    let (a, p) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
    let prefix: u8 = p.trim().parse().map_err(|_| bad())?;
    Ipv4Net::new(addr, prefix).map_err(|_| bad())
}

/// The `n`th address of the network (`nth(net, 1)` is the gateway by berth's convention).
pub fn nth(net: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes_offsets() {
        let c = parse_cidr("10.244.3.7/24").unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(10, 244, 3, 0));
        assert_eq!(nth(&c, 1), Ipv4Addr::new(10, 244, 3, 1));
        assert!(c.contains(&Ipv4Addr::new(10, 244, 3, 200)));
        assert!(!c.contains(&Ipv4Addr::new(10, 244, 4, 1)));
        assert_eq!(c.trunc().to_string(), "10.244.3.0/24");
        assert_eq!(c.to_string(), "10.244.3.7/24");
        assert_eq!(parse_cidr("1.2.3.4").unwrap().prefix_len(), 32);
        assert_eq!(
            parse_cidr(" 10.0.0.1 / 8 ").unwrap().to_string(),
            "10.0.0.1/8"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("x/8").is_err());
        let all = parse_cidr("0.0.0.0/0").unwrap();
        assert!(all.contains(&Ipv4Addr::new(8, 8, 8, 8)));
    }
}
