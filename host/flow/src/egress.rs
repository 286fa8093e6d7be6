//! Where a node's outbound HTTP may go, beyond the host names it was granted: which
//! addresses and ports. A granted name is not enough — a name can resolve to anything, so
//! the live client ([`ReqwestClient`](crate::services::ReqwestClient)) resolves it once,
//! checks every address with [`Egress::check_addr`] and connects only to the addresses it
//! checked (no second lookup, so a name that changes its answer between the check and the
//! connection — DNS rebinding — reaches nothing new).
//!
//! The public internet is open (to the granted names). Everything else is closed unless an
//! administrator granted a network (CIDR) that holds the address: loopback, RFC 1918, CGNAT
//! (100.64/10), link-local, unique-local, the documentation and other reserved ranges, each
//! also in its IPv4-mapped IPv6 form. Unspecified, multicast and broadcast addresses are
//! never a destination, whatever was granted. Ports 80 and 443 are open; others must be
//! granted.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an IP address is, for egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// Globally routable unicast.
    Public,
    /// `0.0.0.0`, `::` (on Linux, a connection to it reaches the host itself).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// Carrier-grade NAT, RFC 6598: `100.64/10`.
    SharedCgnat,
    /// `169.254/16`, `fe80::/10` (cloud metadata services live here).
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// The other special-purpose ranges: `0/8`, `192.0.0/24`, `192.88.99/24`,
    /// `198.18/15`, `240/4`, IPv4-compatible IPv6 (`::/96`), `64:ff9b:1::/48`, `100::/64`,
    /// `2001::/23`, site-local `fec0::/10`, and every IPv6 address outside `2000::/3`.
    Reserved,
}

impl AddrClass {
    /// Whether no grant can open it: it names no single unicast host.
    pub fn never(self) -> bool {
        matches!(self, AddrClass::Unspecified | AddrClass::Multicast | AddrClass::Broadcast)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddrClass::Public => "public",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private (RFC 1918)",
            AddrClass::SharedCgnat => "shared (CGNAT)",
            AddrClass::LinkLocal => "link-local",
            AddrClass::UniqueLocal => "unique-local",
            AddrClass::Multicast => "multicast",
            AddrClass::Broadcast => "broadcast",
            AddrClass::Documentation => "documentation",
            AddrClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of an address. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is its IPv4
/// address; a NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address is public only when the
/// IPv4 address it carries is.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(a: Ipv4Addr) -> AddrClass {
    use AddrClass::*;
    match a.octets() {
        [0, 0, 0, 0] => Unspecified,
        [0, ..] => Reserved,
        [10, ..] => Private,
        [100, b, ..] if b & 0xc0 == 64 => SharedCgnat,
        [127, ..] => Loopback,
        [169, 254, ..] => LinkLocal,
        [172, b, ..] if b & 0xf0 == 16 => Private,
        [192, 0, 0, _] | [192, 88, 99, _] => Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [192, 168, ..] => Private,
        [198, b, ..] if b & 0xfe == 18 => Reserved,
        [255, 255, 255, 255] => Broadcast,
        [a, ..] if a & 0xf0 == 224 => Multicast,
        [a, ..] if a & 0xf0 == 240 => Reserved,
        _ => Public,
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn classify_v6(a: Ipv6Addr) -> AddrClass {
    use AddrClass::*;
    if let Some(v4) = a.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if a.is_unspecified() {
        return Unspecified;
    }
    if a.is_loopback() {
        return Loopback;
    }
    match a.segments() {
        // IPv4-compatible (deprecated): `::a.b.c.d`
        [0, 0, 0, 0, 0, 0, _, _] => Reserved,
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => classify_v4(embedded_v4(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Reserved,
        [0x100, 0, 0, 0, ..] => Reserved,
        [0x2001, 0xdb8, ..] => Documentation,
        [0x2001, b, ..] if b < 0x200 => Reserved,
        [0x2002, hi, lo, ..] => classify_v4(embedded_v4(hi, lo)),
        [0x3fff, b, ..] if b < 0x1000 => Documentation,
        [s, ..] if s & 0xfe00 == 0xfc00 => UniqueLocal,
        [s, ..] if s & 0xffc0 == 0xfe80 => LinkLocal,
        [s, ..] if s & 0xffc0 == 0xfec0 => Reserved,
        [s, ..] if s & 0xff00 == 0xff00 => Multicast,
        [s, ..] if s & 0xe000 == 0x2000 => Public,
        _ => Reserved,
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("port {0} was not granted (80 and 443 are open)")]
    Port(u16),
    #[error("{addr} is a {class} address, which no grant opens")]
    Never { addr: IpAddr, class: AddrClass },
    #[error("{addr} is a {class} address and no granted network holds it")]
    NotGranted { addr: IpAddr, class: AddrClass },
}

/// The ports open without a grant.
pub const OPEN_PORTS: [u16; 2] = [80, 443];

/// Beyond the public internet and ports 80 and 443, where a node's HTTP may go: what an
/// administrator granted a plugin (or the engine's configuration, the built-ins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    /// Networks it may reach although they are not public.
    pub networks: Vec<IpNet>,
    /// Ports it may use besides 80 and 443.
    pub ports: Vec<u16>,
}

impl Egress {
    /// Whether a request may go to this port.
    pub fn check_port(&self, port: u16) -> Result<(), Denied> {
        if OPEN_PORTS.contains(&port) || self.ports.contains(&port) {
            Ok(())
        } else {
            Err(Denied::Port(port))
        }
    }

    /// Whether a request may connect to `ip`; `Ok` holds the address to connect to (an
    /// IPv4-mapped IPv6 address as the IPv4 address it is).
    pub fn check_addr(&self, ip: IpAddr) -> Result<IpAddr, Denied> {
        let addr = ip.to_canonical();
        let class = classify(addr);
        if class.never() {
            return Err(Denied::Never { addr, class });
        }
        if class == AddrClass::Public || self.networks.iter().any(|n| n.contains(&addr)) {
            return Ok(addr);
        }
        Err(Denied::NotGranted { addr, class })
    }
}

/// Why a granted network was refused (the text names the input; it is shown to the
/// administrator as it is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{input:?} is not a CIDR (like 10.1.0.0/16 or fd00::/8) or an IP address")]
    Syntax {
        input: String,
        #[source]
        source: ipnet::AddrParseError,
    },
    /// A CIDR with host bits (`10.0.0.1/8`): `network` is what was probably meant.
    #[error("{input:?} has host bits set: the network is {network}")]
    HostBits { input: String, network: IpNet },
}

/// Parses a granted network: a CIDR (`10.1.0.0/16`, `fd00::/8`) without host bits, or one
/// address (a /32 or /128).
pub fn parse_network(s: &str) -> Result<IpNet, NetworkError> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = s.parse().map_err(|source| NetworkError::Syntax { input: s.to_string(), source })?;
    if net.trunc() != net {
        return Err(NetworkError::HostBits { input: s.to_string(), network: net.trunc() });
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddrClass::*;

    fn c(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_ipv4_range_is_classified() {
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("0.255.255.255", Reserved),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("100.63.255.255", Public),
            ("100.64.0.0", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.128.0.0", Public),
            ("126.255.255.255", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("169.253.255.255", Public),
            ("169.254.169.254", LinkLocal),
            ("169.255.0.0", Public),
            ("172.15.255.255", Public),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Documentation),
            ("192.0.3.1", Public),
            ("192.88.99.1", Reserved),
            ("192.167.255.255", Public),
            ("192.168.0.1", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Public),
            ("198.17.255.255", Public),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Public),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("223.255.255.255", Public),
            ("224.0.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
        ];
        for (a, want) in cases {
            assert_eq!(c(a), want, "{a}");
        }
    }

    #[test]
    fn every_ipv6_range_is_classified() {
        let cases = [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::2", Reserved),
            ("::127.0.0.1", Reserved),
            ("::8.8.8.8", Reserved),
            ("64:ff9b::808:808", Public),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a00:1", Private),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::1", Reserved),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:1ff::1", Reserved),
            ("2001:200::1", Public),
            ("2001:db8::1", Documentation),
            ("2001:db9::1", Public),
            ("2002:808:808::1", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
            ("2606:4700::1111", Public),
            ("3fff::1", Documentation),
            ("3fff:fff::1", Documentation),
            ("3fff:1000::1", Public),
            ("4000::1", Reserved),
            ("5f00::1", Reserved),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Reserved),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
        ];
        for (a, want) in cases {
            assert_eq!(c(a), want, "{a}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let cases = [
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:172.16.0.1", Private),
            ("::ffff:192.168.1.1", Private),
            ("::ffff:100.64.0.1", SharedCgnat),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:224.0.0.1", Multicast),
            ("::ffff:255.255.255.255", Broadcast),
            ("::ffff:192.0.2.1", Documentation),
            ("::ffff:240.0.0.1", Reserved),
            ("::ffff:8.8.8.8", Public),
        ];
        for (a, want) in cases {
            assert_eq!(c(a), want, "{a}");
        }
        // and a granted network is matched against the IPv4 address
        let e = Egress { networks: vec!["127.0.0.0/8".parse().unwrap()], ports: vec![] };
        assert_eq!(e.check_addr("::ffff:127.0.0.1".parse().unwrap()), Ok("127.0.0.1".parse().unwrap()));
        assert!(Egress::default().check_addr("::ffff:127.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn only_public_addresses_are_open_without_a_grant() {
        let none = Egress::default();
        assert_eq!(none.check_addr("8.8.8.8".parse().unwrap()), Ok("8.8.8.8".parse().unwrap()));
        assert_eq!(none.check_addr("2606:4700::1111".parse().unwrap()), Ok("2606:4700::1111".parse().unwrap()));
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "100.64.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "fd00::1",
            "fe80::1",
            "::1",
            "192.0.2.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(matches!(none.check_addr(a.parse().unwrap()), Err(Denied::NotGranted { .. })), "{a}");
        }
        for a in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", "::ffff:0.0.0.0"] {
            assert!(matches!(none.check_addr(a.parse().unwrap()), Err(Denied::Never { .. })), "{a}");
        }
    }

    #[test]
    fn a_granted_network_opens_exactly_what_it_holds() {
        let e = Egress {
            networks: vec![parse_network("127.0.0.0/8").unwrap(), parse_network("fd00::/16").unwrap(), parse_network("10.1.2.3").unwrap()],
            ports: vec![],
        };
        assert!(e.check_addr("127.0.0.1".parse().unwrap()).is_ok());
        assert!(e.check_addr("127.9.9.9".parse().unwrap()).is_ok());
        assert!(e.check_addr("fd00::5".parse().unwrap()).is_ok());
        assert!(e.check_addr("fd01::5".parse().unwrap()).is_err());
        assert!(e.check_addr("10.1.2.3".parse().unwrap()).is_ok());
        assert!(e.check_addr("10.1.2.4".parse().unwrap()).is_err());
        assert!(e.check_addr("::1".parse().unwrap()).is_err(), "IPv6 loopback is not 127/8");
        assert!(e.check_addr("169.254.169.254".parse().unwrap()).is_err());
        // even everything granted leaves the never-destinations closed
        let all = Egress { networks: vec![parse_network("0.0.0.0/0").unwrap(), parse_network("::/0").unwrap()], ports: vec![] };
        assert!(all.check_addr("10.0.0.1".parse().unwrap()).is_ok());
        for a in ["0.0.0.0", "::", "239.1.1.1", "255.255.255.255"] {
            assert!(all.check_addr(a.parse().unwrap()).is_err(), "{a}");
        }
    }

    #[test]
    fn ports_other_than_80_and_443_need_a_grant() {
        let e = Egress { networks: vec![], ports: vec![8080] };
        assert!(e.check_port(80).is_ok() && e.check_port(443).is_ok() && e.check_port(8080).is_ok());
        assert_eq!(e.check_port(22), Err(Denied::Port(22)));
        assert_eq!(Egress::default().check_port(8080), Err(Denied::Port(8080)));
    }

    #[test]
    fn granted_networks_parse_strictly() {
        assert_eq!(parse_network("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_network(" 10.1.2.3 ").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_network("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "10.0.0/8", "example.com", "", "10.0.0.0/", "/8", "fd00::1/8", "300.0.0.0/8"] {
            assert!(parse_network(bad).is_err(), "{bad}");
        }
        let e = parse_network("10.0.0.1/8").unwrap_err();
        assert!(matches!(&e, NetworkError::HostBits { network, .. } if network.to_string() == "10.0.0.0/8"), "{e:?}");
        assert!(e.to_string().contains("10.0.0.0/8"));
        assert!(std::error::Error::source(&parse_network("10.0.0/8").unwrap_err()).is_some());
    }
}
