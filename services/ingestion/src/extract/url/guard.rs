//! Which addresses a URL fetch may connect to, so that a document URL cannot be used to
//! read what only the ingestion host can reach (loopback services, the private network,
//! cloud metadata) or to map that network.
//!
//! [`refusal`] classifies an address: `None` means public. [`Allowlist`] is the operator's
//! exception list (`DA_INGEST_URL_ALLOW`), and [`Allowlist::permits`] the one decision
//! every connection goes through. Cloud-metadata addresses are refused even when listed:
//! they hand out credentials, and a broad range (`100.64.0.0/10`, `169.254.0.0/16`) must not
//! open them by accident.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an address is not public; for the log only (users get one uniform text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `0.0.0.0`, `::`: "this host", which connects to loopback on most systems.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `100.64.0.0/10`, the carrier-grade NAT range (also cloud-internal services).
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`, IPv6's private range.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Special-purpose or unallocated: `0.0.0.0/8`, `192.0.0.0/24`, `198.18.0.0/15`,
    /// `192.88.99.0/24`, `240.0.0.0/4`, IPv4-compatible IPv6, local-use NAT64, `2001::/23`
    /// (Teredo, ORCHID), site-local and everything outside `2000::/3`.
    Reserved,
    /// A cloud provider's instance metadata service; never allowed.
    Metadata,
}

impl std::fmt::Display for Refusal {
    /// A short phrase for log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "unspecified address",
            Self::Loopback => "loopback address",
            Self::Private => "private address",
            Self::SharedAddressSpace => "shared (CGNAT) address",
            Self::LinkLocal => "link-local address",
            Self::UniqueLocal => "unique-local address",
            Self::Multicast => "multicast address",
            Self::Broadcast => "broadcast address",
            Self::Documentation => "documentation address",
            Self::Reserved => "reserved address",
            Self::Metadata => "cloud metadata address",
        })
    }
}

/// Instance-metadata endpoints: AWS, GCP, Azure, OpenStack, DigitalOcean (169.254.169.254),
/// AWS ECS task metadata (169.254.170.2), Alibaba (100.100.100.200), Oracle (192.0.0.192).
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];

/// AWS's IPv6 instance-metadata endpoint.
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

/// Why `ip` must not be connected to, or `None` if it is a public address. IPv6 forms that
/// carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by that address.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

/// `true` if `bits` lies in `network/prefix` (IPv4).
fn in_v4(bits: u32, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    bits & mask == u32::from_be_bytes(network) & mask
}

/// `true` if `bits` lies in `network/prefix` (IPv6).
fn in_v6(bits: u128, network: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    bits & mask == network.to_bits() & mask
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let bits = ip.to_bits();
    let refusal = if METADATA_V4.contains(&ip) {
        Refusal::Metadata
    } else if ip.is_unspecified() {
        Refusal::Unspecified
    } else if ip.is_broadcast() {
        Refusal::Broadcast
    } else if in_v4(bits, [127, 0, 0, 0], 8) {
        Refusal::Loopback
    } else if in_v4(bits, [10, 0, 0, 0], 8)
        || in_v4(bits, [172, 16, 0, 0], 12)
        || in_v4(bits, [192, 168, 0, 0], 16)
    {
        Refusal::Private
    } else if in_v4(bits, [100, 64, 0, 0], 10) {
        Refusal::SharedAddressSpace
    } else if in_v4(bits, [169, 254, 0, 0], 16) {
        Refusal::LinkLocal
    } else if in_v4(bits, [224, 0, 0, 0], 4) {
        Refusal::Multicast
    } else if in_v4(bits, [192, 0, 2, 0], 24)
        || in_v4(bits, [198, 51, 100, 0], 24)
        || in_v4(bits, [203, 0, 113, 0], 24)
    {
        Refusal::Documentation
    } else if in_v4(bits, [0, 0, 0, 0], 8)
        || in_v4(bits, [192, 0, 0, 0], 24)
        || in_v4(bits, [192, 88, 99, 0], 24)
        || in_v4(bits, [198, 18, 0, 0], 15)
        || in_v4(bits, [240, 0, 0, 0], 4)
    {
        Refusal::Reserved
    } else {
        return None;
    };
    Some(refusal)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let bits = ip.to_bits();
    // The low 32 bits, for the forms that carry an IPv4 address there.
    let low_v4 = Ipv4Addr::from_bits(bits as u32);
    let refusal = if METADATA_V6.contains(&ip) {
        Refusal::Metadata
    } else if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4);
    } else if ip.is_unspecified() {
        Refusal::Unspecified
    } else if ip.is_loopback() {
        Refusal::Loopback
    } else if in_v6(bits, Ipv6Addr::UNSPECIFIED, 96) {
        // IPv4-compatible (deprecated): never a legitimate target, public or not.
        refusal_v4(low_v4).unwrap_or(Refusal::Reserved)
    } else if in_v6(bits, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        // Well-known NAT64 prefix: the gateway connects to the embedded IPv4 address.
        return refusal_v4(low_v4);
    } else if in_v6(bits, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        // 6to4: the relay connects to the IPv4 address in bits 16..48.
        return refusal_v4(Ipv4Addr::from_bits((bits >> 80) as u32));
    } else if in_v6(bits, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
        Refusal::LinkLocal
    } else if in_v6(bits, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        Refusal::UniqueLocal
    } else if in_v6(bits, Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8) {
        Refusal::Multicast
    } else if in_v6(bits, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32)
        || in_v6(bits, Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20)
    {
        Refusal::Documentation
    } else if in_v6(bits, Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23)
        || !in_v6(bits, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
    {
        // 2001::/23: Teredo (which tunnels to an embedded IPv4 address), ORCHID and
        // other protocol assignments; outside 2000::/3 nothing is global unicast
        // (this also covers local-use NAT64 64:ff9b:1::/48, site-local fec0::/10,
        // discard 100::/64 and IPv4-translated ::ffff:0:0:0/96).
        Refusal::Reserved
    } else {
        return None;
    };
    Some(refusal)
}

/// Why a `DA_INGEST_URL_ALLOW` entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not a host name, an IP address or a CIDR range: {reason}")]
pub struct AllowlistError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// An IP range `address/prefix`, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u32,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                in_v4(ip.to_bits(), network.octets(), self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => in_v6(ip.to_bits(), network, self.prefix),
            _ => false,
        }
    }
}

/// The operator's exceptions (`DA_INGEST_URL_ALLOW`): host names, IP addresses and CIDR
/// ranges that URL ingestion may reach although they are not public, e.g. an intranet
/// wiki. Empty by default: only public addresses are fetched.
///
/// Written as a comma-separated list, `127.0.0.1,10.0.0.0/8,intranet.example,[::1]`. A host
/// name matches exactly (case and a trailing dot aside), and then every address it
/// resolves to is allowed; an address or range allows those addresses under any name,
/// including their IPv4-mapped IPv6 forms. Ports are not part of an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    networks: Vec<Network>,
    hosts: Vec<String>,
}

impl Allowlist {
    /// `true` if nothing is listed (the default: public addresses only).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.hosts.is_empty()
    }

    /// `true` if the host name `host` is listed by name.
    pub fn lists_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.contains(&host)
    }

    /// `true` if `ip` (or the IPv4 address an IPv4-mapped `ip` carries) is in a listed
    /// address or range.
    pub fn lists_address(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// Whether a connection to `ip` may be made: public addresses always, others when
    /// listed (by address, or by name when `host_listed`), cloud metadata never.
    pub fn permits(&self, ip: IpAddr, host_listed: bool) -> Result<(), Refusal> {
        match refusal(ip) {
            None => Ok(()),
            Some(Refusal::Metadata) => Err(Refusal::Metadata),
            Some(_) if host_listed || self.lists_address(ip) => Ok(()),
            Some(refusal) => Err(refusal),
        }
    }
}

impl FromStr for Allowlist {
    type Err = AllowlistError;

    /// Reads the comma-separated list; blank entries are skipped, anything else that is not
    /// a host name, address or range is an error (a typo must not silently allow nothing
    /// or everything).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut allowlist = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |reason| AllowlistError {
                entry: entry.to_owned(),
                reason,
            };
            if let Some((address, prefix)) = entry.split_once('/') {
                let address = parse_address(address).ok_or_else(|| bad("not an IP address"))?;
                let max = if address.is_ipv4() { 32 } else { 128 };
                let prefix = prefix
                    .parse::<u32>()
                    .ok()
                    .filter(|prefix| *prefix <= max)
                    .ok_or_else(|| bad("the prefix length is not 0..=32 (IPv4) or 0..=128"))?;
                allowlist.networks.push(Network {
                    address: clear_host_bits(address, prefix),
                    prefix,
                });
            } else if let Some(address) = parse_address(entry) {
                let prefix = if address.is_ipv4() { 32 } else { 128 };
                allowlist.networks.push(Network { address, prefix });
            } else if is_host_name(entry) {
                allowlist.hosts.push(normalize_host(entry));
            } else {
                return Err(bad("give host names, addresses or ranges, without ports"));
            }
        }
        Ok(allowlist)
    }
}

/// An IP address, IPv6 optionally in brackets; IPv4-mapped forms become IPv4 so a range
/// matches however the address is written.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn clear_host_bits(address: IpAddr, prefix: u32) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
    }
}

/// Letters, digits, `-` and `.`, in non-empty labels: what a URL's host can match.
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn list(text: &str) -> Allowlist {
        text.parse().expect("test allowlist")
    }

    #[test]
    fn every_refused_range() {
        let cases = [
            ("0.0.0.0", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.255.254", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("10.0.0.1", Refusal::Private),
            ("10.255.255.255", Refusal::Private),
            ("172.16.0.1", Refusal::Private),
            ("172.31.255.255", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("100.64.0.1", Refusal::SharedAddressSpace),
            ("100.127.255.255", Refusal::SharedAddressSpace),
            ("169.254.1.1", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("febf::1", Refusal::LinkLocal),
            ("fc00::1", Refusal::UniqueLocal),
            ("fdff::1", Refusal::UniqueLocal),
            ("224.0.0.1", Refusal::Multicast),
            ("239.255.255.250", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Broadcast),
            ("192.0.2.1", Refusal::Documentation),
            ("198.51.100.7", Refusal::Documentation),
            ("203.0.113.9", Refusal::Documentation),
            ("2001:db8::1", Refusal::Documentation),
            ("3fff::1", Refusal::Documentation),
            ("0.1.2.3", Refusal::Reserved),
            ("192.0.0.8", Refusal::Reserved),
            ("192.88.99.1", Refusal::Reserved),
            ("198.18.0.1", Refusal::Reserved),
            ("198.19.255.255", Refusal::Reserved),
            ("240.0.0.1", Refusal::Reserved),
            ("2001::1", Refusal::Reserved),
            ("2001:10::1", Refusal::Reserved),
            ("fec0::1", Refusal::Reserved),
            ("100::1", Refusal::Reserved),
            ("64:ff9b:1::1", Refusal::Reserved),
            ("::ffff:0:808:808", Refusal::Reserved),
            ("::8.8.8.8", Refusal::Reserved),
            ("4000::1", Refusal::Reserved),
            ("169.254.169.254", Refusal::Metadata),
            ("169.254.170.2", Refusal::Metadata),
            ("100.100.100.200", Refusal::Metadata),
            ("192.0.0.192", Refusal::Metadata),
            ("fd00:ec2::254", Refusal::Metadata),
        ];
        for (address, expected) in cases {
            assert_eq!(refusal(ip(address)), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(refusal(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn ipv4_carried_in_ipv6_is_judged_by_the_ipv4_address() {
        let cases = [
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::ffff:10.1.2.3", Refusal::Private),
            ("::ffff:169.254.169.254", Refusal::Metadata),
            ("::ffff:0.0.0.0", Refusal::Unspecified),
            ("::127.0.0.1", Refusal::Loopback),
            ("::192.168.0.1", Refusal::Private),
            ("64:ff9b::127.0.0.1", Refusal::Loopback),
            ("64:ff9b::a9fe:a9fe", Refusal::Metadata),
            ("64:ff9b::10.0.0.1", Refusal::Private),
            ("2002:7f00:1::", Refusal::Loopback),
            ("2002:c0a8:101::1", Refusal::Private),
            ("2002:a9fe:a9fe::", Refusal::Metadata),
        ];
        for (address, expected) in cases {
            assert_eq!(refusal(ip(address)), Some(expected), "{address}");
        }
    }

    #[test]
    fn the_allowlist_reads_hosts_addresses_and_ranges() {
        let allow = list(" 127.0.0.1, 10.0.0.0/8 ,Intranet.Example., [::1], fd12::/16,,");
        assert!(allow.lists_address(ip("127.0.0.1")));
        assert!(!allow.lists_address(ip("127.0.0.2")));
        assert!(allow.lists_address(ip("10.200.3.4")));
        assert!(!allow.lists_address(ip("11.0.0.1")));
        assert!(allow.lists_address(ip("::1")));
        assert!(allow.lists_address(ip("fd12:3456::1")));
        assert!(!allow.lists_address(ip("fd13::1")));
        assert!(allow.lists_host("intranet.example"));
        assert!(allow.lists_host("INTRANET.example."));
        assert!(!allow.lists_host("www.intranet.example"));
        assert!(!allow.lists_host("intranet.example.com"));
        assert!(Allowlist::default().is_empty());
        assert!(!allow.is_empty());
    }

    #[test]
    fn mapped_forms_match_their_ipv4_entry() {
        let allow = list("127.0.0.1,192.168.0.0/16");
        assert!(allow.lists_address(ip("::ffff:127.0.0.1")));
        assert!(allow.lists_address(ip("::ffff:192.168.44.1")));
        assert!(allow.permits(ip("::ffff:127.0.0.1"), false).is_ok());
        // And a mapped entry matches the plain address.
        assert!(list("::ffff:10.0.0.5").lists_address(ip("10.0.0.5")));
    }

    #[test]
    fn ranges_ignore_host_bits() {
        let allow = list("10.1.2.3/16,fd00:1:2:3::9/48");
        assert!(allow.lists_address(ip("10.1.99.1")));
        assert!(!allow.lists_address(ip("10.2.0.1")));
        assert!(allow.lists_address(ip("fd00:1:2:ffff::1")));
        assert!(list("0.0.0.0/0").lists_address(ip("10.9.9.9")));
    }

    #[test]
    fn permits_public_listed_and_never_metadata() {
        let allow = list("127.0.0.1,169.254.0.0/16,100.64.0.0/10,fd00::/8,169.254.169.254");
        assert!(allow.permits(ip("8.8.8.8"), false).is_ok());
        assert!(allow.permits(ip("127.0.0.1"), false).is_ok());
        assert_eq!(
            allow.permits(ip("127.0.0.2"), false),
            Err(Refusal::Loopback)
        );
        assert!(allow.permits(ip("169.254.1.1"), false).is_ok());
        for metadata in [
            "169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(
                allow.permits(ip(metadata), true),
                Err(Refusal::Metadata),
                "{metadata}"
            );
        }
        // A listed host name allows whatever it resolves to, except metadata.
        let empty = Allowlist::default();
        assert!(empty.permits(ip("10.0.0.1"), true).is_ok());
        assert_eq!(empty.permits(ip("10.0.0.1"), false), Err(Refusal::Private));
    }

    #[test]
    fn bad_entries_are_errors() {
        for entry in [
            "127.0.0.1:8080",
            "intranet.example:80",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "host/8",
            "http://intranet.example",
            "*.example.com",
            "a..b",
            "[::1]:80",
        ] {
            let result = entry.parse::<Allowlist>();
            assert!(
                matches!(&result, Err(AllowlistError { entry: e, .. }) if e == entry),
                "{entry}: {result:?}"
            );
        }
        assert_eq!(list(""), Allowlist::default());
    }
}
