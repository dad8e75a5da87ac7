//! The gateway's resource policy: which source addresses may call it, and which peers are
//! believed when they name the client in `X-Forwarded-For`.
//!
//! - **The client's address** is the TCP peer's, unless the peer is in `trustedProxyCidrs`.
//!   Then `X-Forwarded-For` is read from the right (the hop nearest the gateway first), every
//!   header line in order, skipping addresses that are trusted proxies themselves: the first
//!   untrusted address is the client. A malformed entry ends the walk, and the last trusted hop
//!   is taken as the client (what lies left of it cannot be believed). When every hop is
//!   trusted, the leftmost is the client.
//! - **Admission**: a client in `denyCidrs` is refused, even when also allowed; when
//!   `allowCidrs` is given, the client must be in it. A refusal is
//!   [`GatewayError::PolicyDenied`] (403).
//! - **Private gateways** enforce the policy always: a `Private` gateway without `allowCidrs`
//!   (its callers named by `allowNamespaces`, which a NetworkPolicy enforces) admits only
//!   private-range clients: loopback (`127.0.0.0/8`, `::1`), RFC 1918 (`10.0.0.0/8`,
//!   `172.16.0.0/12`, `192.168.0.0/16`), RFC 6598 shared space (`100.64.0.0/10`), link-local
//!   (`169.254.0.0/16`, `fe80::/10`) and IPv6 unique local addresses (`fc00::/7`). A cluster
//!   whose pods have other addresses lists them in `allowCidrs`. `Regional` and `Edge`
//!   gateways without a policy admit everyone.
//! - **IPv4-mapped IPv6** addresses (`::ffff:10.1.2.3`, what a dual-stack listener reports for
//!   an IPv4 peer) are taken as the IPv4 address they carry, and so are CIDRs written that way.
//! - **A CIDR that does not parse** (the compiler validated them, so this is a table from
//!   elsewhere) is logged and skipped. An allow list whose every entry is skipped admits
//!   nobody: the policy fails closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hyper::HeaderMap;
use hyper::header::HeaderName;
use ipnet::{IpNet, Ipv4Net};
use tollgate_crds::table::EndpointType;
use tollgate_crds::table::ResourcePolicyTable;

use crate::errors::GatewayError;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A policy with its CIDRs parsed, built once per table.
#[derive(Debug, Default)]
pub struct Policy {
    allow: Allow,
    deny: Vec<IpNet>,
    trusted_proxies: Vec<IpNet>,
}

/// Who is admitted when not denied.
#[derive(Debug, Default, PartialEq)]
enum Allow {
    #[default]
    Everyone,
    /// A `Private` gateway without an allow list.
    PrivateRanges,
    Listed(Vec<IpNet>),
}

// === impl Policy ===

impl Policy {
    pub fn build(table: Option<&ResourcePolicyTable>, endpoint_type: EndpointType) -> Self {
        let empty = ResourcePolicyTable::default();
        let table = table.unwrap_or(&empty);
        let allow = if !table.allow_cidrs.is_empty() {
            Allow::Listed(parse_cidrs("allowCidrs", &table.allow_cidrs))
        } else if endpoint_type == EndpointType::Private {
            Allow::PrivateRanges
        } else {
            Allow::Everyone
        };
        Self {
            allow,
            deny: parse_cidrs("denyCidrs", &table.deny_cidrs),
            trusted_proxies: parse_cidrs("trustedProxyCidrs", &table.trusted_proxy_cidrs),
        }
    }

    /// The client's address: the peer's, or the one `X-Forwarded-For` names when the peer is a
    /// trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted_proxy(peer) {
            return peer;
        }
        let mut last_trusted = peer;
        for hop in forwarded_hops(headers) {
            let Some(hop) = hop else {
                tracing::debug!(
                    peer = %peer,
                    client = %last_trusted,
                    "malformed X-Forwarded-For entry: the last trusted hop is the client"
                );
                break;
            };
            if !self.is_trusted_proxy(hop) {
                return hop;
            }
            last_trusted = hop;
        }
        last_trusted
    }

    /// Refuses a client the policy does not admit.
    pub fn check(&self, client: IpAddr) -> Result<(), GatewayError> {
        let client = client.to_canonical();
        if contains(&self.deny, client) || !self.allow.admits(client) {
            return Err(GatewayError::PolicyDenied(client));
        }
        Ok(())
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        contains(&self.trusted_proxies, ip)
    }
}

impl Allow {
    fn admits(&self, client: IpAddr) -> bool {
        match self {
            Self::Everyone => true,
            Self::PrivateRanges => is_private(client),
            Self::Listed(nets) => contains(nets, client),
        }
    }
}

/// The `X-Forwarded-For` entries, rightmost first across every header line; `None` for an
/// entry that is not an address (a line that is not text reads as one such entry).
fn forwarded_hops(headers: &HeaderMap) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|line| line.to_str().unwrap_or("").rsplit(','))
        .map(parse_hop)
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:443`) or in brackets.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&ip))
}

/// Loopback, RFC 1918, RFC 6598, link-local, or IPv6 unique local.
fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || is_shared_address(v4)
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// RFC 6598 shared address space, `100.64.0.0/10` (carrier-grade NAT, some pod networks).
fn is_shared_address(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    a == 100 && (b & 0b1100_0000) == 0b0100_0000
}

/// The CIDRs of one list that parse; the others are logged and skipped.
fn parse_cidrs(list: &'static str, cidrs: &[String]) -> Vec<IpNet> {
    cidrs
        .iter()
        .filter_map(|cidr| match cidr.trim().parse::<IpNet>() {
            Ok(net) => Some(unmap_ipv4(net)),
            Err(error) => {
                tracing::warn!(list, cidr = %cidr, %error, "resource policy CIDR skipped: not a CIDR");
                None
            }
        })
        .collect()
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) as the IPv4 network it covers, since clients are matched by
/// their canonical address.
fn unmap_ipv4(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else {
        return net;
    };
    match (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) {
        (Some(v4), Some(prefix)) => Ipv4Net::new(v4, prefix).map_or(net, IpNet::V4),
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(allow: &[&str], deny: &[&str], trusted: &[&str]) -> ResourcePolicyTable {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ResourcePolicyTable {
            allow_cidrs: strings(allow),
            deny_cidrs: strings(deny),
            trusted_proxy_cidrs: strings(trusted),
        }
    }

    fn regional(allow: &[&str], deny: &[&str], trusted: &[&str]) -> Policy {
        Policy::build(Some(&table(allow, deny, trusted)), EndpointType::Regional)
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn admitted(policy: &Policy, client: &str) -> bool {
        policy.check(ip(client)).is_ok()
    }

    #[test]
    fn without_a_policy_a_regional_gateway_admits_everyone() {
        let policy = Policy::build(None, EndpointType::Regional);
        assert!(admitted(&policy, "203.0.113.7"));
        assert!(admitted(&policy, "2001:db8::1"));
        let edge = Policy::build(None, EndpointType::Edge);
        assert!(admitted(&edge, "198.51.100.1"));
    }

    #[test]
    fn the_deny_list_wins_over_the_allow_list() {
        let policy = regional(&["10.0.0.0/8"], &["10.1.0.0/16"], &[]);
        assert!(admitted(&policy, "10.2.3.4"));
        assert_eq!(
            policy.check(ip("10.1.2.3")),
            Err(GatewayError::PolicyDenied(ip("10.1.2.3")))
        );
        assert!(!admitted(&policy, "192.168.1.1"), "not in the allow list");
    }

    #[test]
    fn a_deny_list_alone_admits_the_rest() {
        let policy = regional(&[], &["203.0.113.0/24", "2001:db8::/32"], &[]);
        assert!(!admitted(&policy, "203.0.113.200"));
        assert!(!admitted(&policy, "2001:db8:1::5"));
        assert!(admitted(&policy, "203.0.114.1"));
        assert!(admitted(&policy, "2001:db9::1"));
    }

    #[test]
    fn cidr_boundaries_and_host_bits() {
        let policy = regional(
            &["192.0.2.64/26", "198.51.100.7/32", "10.9.9.9/8"],
            &[],
            &[],
        );
        assert!(admitted(&policy, "192.0.2.64"));
        assert!(admitted(&policy, "192.0.2.127"));
        assert!(!admitted(&policy, "192.0.2.63"));
        assert!(!admitted(&policy, "192.0.2.128"));
        assert!(admitted(&policy, "198.51.100.7"));
        assert!(!admitted(&policy, "198.51.100.8"));
        assert!(
            admitted(&policy, "10.0.0.1"),
            "host bits in a CIDR are ignored"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_cidrs() {
        let policy = regional(&["10.0.0.0/8"], &["::ffff:10.66.0.0/112"], &[]);
        assert!(admitted(&policy, "::ffff:10.1.2.3"));
        assert!(!admitted(&policy, "::ffff:10.66.1.1"), "a mapped deny CIDR");
        assert!(
            !admitted(&policy, "10.66.1.1"),
            "a mapped CIDR covers plain IPv4"
        );
        assert_eq!(
            policy.check(ip("::ffff:11.0.0.1")),
            Err(GatewayError::PolicyDenied(ip("11.0.0.1"))),
            "the refusal names the IPv4 address"
        );
    }

    #[test]
    fn unparsable_cidrs_are_skipped_and_an_allow_list_fails_closed() {
        let policy = regional(&["not-a-cidr", "10.0.0.0/33"], &["bogus"], &["nope"]);
        assert!(
            !admitted(&policy, "10.0.0.1"),
            "an allow list left empty admits nobody"
        );
        let policy = regional(&["bogus", "10.0.0.0/8"], &["also bogus"], &[]);
        assert!(admitted(&policy, "10.0.0.1"));
        assert!(!admitted(&policy, "11.0.0.1"));
    }

    #[test]
    fn a_private_gateway_without_an_allow_list_admits_private_ranges_only() {
        let private = Policy::build(None, EndpointType::Private);
        for inside in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.10.10",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "::1",
            "fd12:3456::1",
            "fc00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(admitted(&private, inside), "{inside} is private");
        }
        for outside in [
            "172.32.0.1",
            "100.128.0.1",
            "100.63.255.255",
            "192.169.0.1",
            "8.8.8.8",
            "2001:db8::1",
            "fec0::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!admitted(&private, outside), "{outside} is not private");
        }
    }

    #[test]
    fn a_private_gateway_with_an_allow_list_admits_the_list() {
        let private = Policy::build(
            Some(&table(&["203.0.113.0/24"], &[], &[])),
            EndpointType::Private,
        );
        assert!(admitted(&private, "203.0.113.5"));
        assert!(
            !admitted(&private, "10.0.0.1"),
            "the list, not the private ranges"
        );
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let policy = regional(&[], &[], &["10.0.0.0/8"]);
        let headers = xff(&["203.0.113.7"]);
        assert_eq!(policy.client_ip(ip("192.0.2.1"), &headers), ip("192.0.2.1"));
        let no_trust = regional(&[], &[], &[]);
        assert_eq!(no_trust.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        let policy = regional(&[], &[], &["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let peer = ip("10.0.0.1");
        let cases: &[(&[&str], &str)] = &[
            (&["203.0.113.7"], "203.0.113.7"),
            (&["198.51.100.1, 203.0.113.7"], "203.0.113.7"),
            (&["198.51.100.1, 203.0.113.7, 10.1.1.1"], "203.0.113.7"),
            (&["198.51.100.1", "203.0.113.7, 10.1.1.1"], "203.0.113.7"),
            (&["198.51.100.1", "10.2.2.2", "10.1.1.1"], "198.51.100.1"),
            (&["2001:db8::5, 2001:db8:ffff::1"], "2001:db8::5"),
            (&["203.0.113.7:4711"], "203.0.113.7"),
            (&["[2001:db8::5]:443"], "2001:db8::5"),
            (&["[2001:db8::5]"], "2001:db8::5"),
            (&[" 203.0.113.7 ,10.1.1.1 "], "203.0.113.7"),
            (&["::ffff:203.0.113.7"], "203.0.113.7"),
        ];
        for (lines, client) in cases {
            assert_eq!(policy.client_ip(peer, &xff(lines)), ip(client), "{lines:?}");
        }
    }

    #[test]
    fn a_trusted_peer_without_forwarded_for_is_the_client() {
        let policy = regional(&[], &[], &["10.0.0.0/8"]);
        assert_eq!(
            policy.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        assert_eq!(
            policy.client_ip(ip("::ffff:10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1"),
            "a mapped peer is canonical"
        );
    }

    #[test]
    fn only_trusted_hops_name_the_leftmost_as_the_client() {
        let policy = regional(&[], &[], &["10.0.0.0/8"]);
        assert_eq!(
            policy.client_ip(ip("10.0.0.1"), &xff(&["10.3.3.3, 10.2.2.2"])),
            ip("10.3.3.3")
        );
    }

    #[test]
    fn a_malformed_entry_stops_the_walk_at_the_last_trusted_hop() {
        let policy = regional(&[], &[], &["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let cases: &[(&[&str], &str)] = &[
            (&["203.0.113.7, unknown, 10.2.2.2"], "10.2.2.2"),
            (&["203.0.113.7, unknown"], "10.0.0.1"),
            (&["203.0.113.7,, 10.2.2.2"], "10.2.2.2"),
            (&[""], "10.0.0.1"),
            (&["203.0.113.7", "garbage"], "10.0.0.1"),
            (&["garbage", "203.0.113.7"], "203.0.113.7"),
        ];
        for (lines, client) in cases {
            assert_eq!(policy.client_ip(peer, &xff(lines)), ip(client), "{lines:?}");
        }
    }

    #[test]
    fn a_forwarded_for_line_that_is_not_text_is_malformed() {
        let policy = regional(&[], &[], &["10.0.0.0/8"]);
        let mut headers = xff(&["203.0.113.7"]);
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.\xff").unwrap(),
        );
        assert_eq!(policy.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn the_private_ranges_are_exact() {
        assert!(is_shared_address(Ipv4Addr::new(100, 64, 0, 0)));
        assert!(is_shared_address(Ipv4Addr::new(100, 127, 255, 255)));
        assert!(!is_shared_address(Ipv4Addr::new(100, 128, 0, 0)));
        assert!(!is_shared_address(Ipv4Addr::new(100, 63, 255, 255)));
        assert!(!is_shared_address(Ipv4Addr::new(101, 64, 0, 0)));
    }
}
