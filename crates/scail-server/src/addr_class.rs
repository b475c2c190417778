//! Which addresses a fetch or webhook may reach without `--allow-fetch-from`: only globally
//! reachable unicast. Every block of the IANA IPv4 and IPv6 special-purpose address registries
//! is refused (std's `is_global` is unstable and its stable helpers miss several), as is IPv4
//! multicast and all IPv6 space outside 2000::/3, which IANA has not allocated for unicast.
//! Addresses that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by it, so
//! `[::7f00:1]` or `[64:ff9b::a00:1]` cannot reach loopback or a private network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks: (first address, prefix length, what it is).
const V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "this network"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 31, 196, 0], 24, "AS112"),
    ([192, 52, 193, 0], 24, "AMT"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "private"),
    ([192, 175, 48, 0], 24, "direct delegation AS112"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved"),
    ([255, 255, 255, 255], 32, "broadcast"),
];

/// IPv6 blocks (segments, prefix length, what it is), except those judged by an embedded IPv4
/// address, which [`embedded_v4`] handles first.
const V6: &[([u16; 8], u8, &str)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"),
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use IPv4/IPv6 translation",
    ),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments (incl. TEREDO)",
    ),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
    (
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing (SRv6) SIDs",
    ),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local"),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (deprecated)"),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:0:0/96), IPv4-compatible
/// (::/96, deprecated but still routed by some stacks), NAT64 (64:ff9b::/96) and 6to4
/// (2002::/16, the site's IPv4 address in bits 16..48).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if in_v6(ip, [0; 8], 96) {
        return Some(low32);
    }
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return Some(low32);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

/// Why an address is not public (the special-purpose block it falls in), or `None` when it is
/// globally reachable unicast.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4
            .iter()
            .find(|(net, p, _)| in_v4(v4, *net, *p))
            .map(|(_, _, why)| *why),
        IpAddr::V6(v6) => {
            if let Some(why) = V6
                .iter()
                .find(|(net, p, _)| in_v6(v6, *net, *p))
                .map(|(_, _, why)| *why)
            {
                return Some(why);
            }
            if let Some(v4) = embedded_v4(v6) {
                return non_public_reason(IpAddr::V4(v4));
            }
            if !in_v6(v6, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
                return Some("outside IPv6 global unicast (2000::/3)");
            }
            None
        }
    }
}

/// Whether an address is in any special-purpose (non globally reachable) block.
pub fn is_non_public(ip: IpAddr) -> bool {
    non_public_reason(ip).is_some()
}

#[cfg(test)]
#[path = "addr_class_tests.rs"]
mod tests;
