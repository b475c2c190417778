use super::*;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

fn blocked(ip: IpAddr) -> bool {
    is_non_public(ip)
}

/// (range, first, last, just below or None, just above or None): both ends are refused; a
/// neighbour given here is public (neighbours inside another block are tested with that block).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

const V4_RANGES: &[Case] = &[
    ("0/8", "0.0.0.0", "0.255.255.255", None, Some("1.0.0.0")),
    (
        "10/8",
        "10.0.0.0",
        "10.255.255.255",
        Some("9.255.255.255"),
        Some("11.0.0.0"),
    ),
    (
        "100.64/10",
        "100.64.0.0",
        "100.127.255.255",
        Some("100.63.255.255"),
        Some("100.128.0.0"),
    ),
    (
        "127/8",
        "127.0.0.0",
        "127.255.255.255",
        Some("126.255.255.255"),
        Some("128.0.0.0"),
    ),
    (
        "169.254/16",
        "169.254.0.0",
        "169.254.255.255",
        Some("169.253.255.255"),
        Some("169.255.0.0"),
    ),
    (
        "172.16/12",
        "172.16.0.0",
        "172.31.255.255",
        Some("172.15.255.255"),
        Some("172.32.0.0"),
    ),
    (
        "192.0.0/24",
        "192.0.0.0",
        "192.0.0.255",
        Some("191.255.255.255"),
        Some("192.0.1.0"),
    ),
    (
        "192.0.2/24",
        "192.0.2.0",
        "192.0.2.255",
        Some("192.0.1.255"),
        Some("192.0.3.0"),
    ),
    (
        "192.31.196/24",
        "192.31.196.0",
        "192.31.196.255",
        Some("192.31.195.255"),
        Some("192.31.197.0"),
    ),
    (
        "192.52.193/24",
        "192.52.193.0",
        "192.52.193.255",
        Some("192.52.192.255"),
        Some("192.52.194.0"),
    ),
    (
        "192.88.99/24",
        "192.88.99.0",
        "192.88.99.255",
        Some("192.88.98.255"),
        Some("192.88.100.0"),
    ),
    (
        "192.168/16",
        "192.168.0.0",
        "192.168.255.255",
        Some("192.167.255.255"),
        Some("192.169.0.0"),
    ),
    (
        "192.175.48/24",
        "192.175.48.0",
        "192.175.48.255",
        Some("192.175.47.255"),
        Some("192.175.49.0"),
    ),
    (
        "198.18/15",
        "198.18.0.0",
        "198.19.255.255",
        Some("198.17.255.255"),
        Some("198.20.0.0"),
    ),
    (
        "198.51.100/24",
        "198.51.100.0",
        "198.51.100.255",
        Some("198.51.99.255"),
        Some("198.51.101.0"),
    ),
    (
        "203.0.113/24",
        "203.0.113.0",
        "203.0.113.255",
        Some("203.0.112.255"),
        Some("203.0.114.0"),
    ),
    (
        "224/4",
        "224.0.0.0",
        "239.255.255.255",
        Some("223.255.255.255"),
        None,
    ),
    ("240/4", "240.0.0.0", "255.255.255.254", None, None),
    (
        "broadcast",
        "255.255.255.255",
        "255.255.255.255",
        None,
        None,
    ),
];

const V6_RANGES: &[Case] = &[
    ("::/128", "::", "::", None, None),
    ("::1/128", "::1", "::1", None, None),
    (
        "64:ff9b:1::/48",
        "64:ff9b:1::",
        "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
    ("100::/64", "100::", "100::ffff:ffff:ffff:ffff", None, None),
    (
        "2001::/23",
        "2001::",
        "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        Some("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        Some("2001:200::"),
    ),
    (
        "TEREDO 2001::/32",
        "2001::",
        "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
    (
        "2001:db8::/32",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        Some("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"),
        Some("2001:db9::"),
    ),
    (
        "3fff::/20",
        "3fff::",
        "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        Some("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        Some("3fff:1000::"),
    ),
    (
        "5f00::/16",
        "5f00::",
        "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
    (
        "fc00::/7",
        "fc00::",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
    (
        "fe80::/10",
        "fe80::",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
    (
        "fec0::/10",
        "fec0::",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
    (
        "ff00::/8",
        "ff00::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        None,
        None,
    ),
];

#[test]
fn every_ipv4_special_purpose_block() {
    for (name, first, last, below, above) in V4_RANGES {
        assert!(blocked(v4(first)), "{name}: {first}");
        assert!(blocked(v4(last)), "{name}: {last}");
        for n in [below, above].into_iter().flatten() {
            assert!(!blocked(v4(n)), "{name}: neighbour {n} is public");
        }
    }
    for public in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "223.255.255.255"] {
        assert!(!blocked(v4(public)), "{public}");
    }
}

#[test]
fn every_ipv6_special_purpose_block() {
    for (name, first, last, below, above) in V6_RANGES {
        assert!(blocked(v6(first)), "{name}: {first}");
        assert!(blocked(v6(last)), "{name}: {last}");
        for n in [below, above].into_iter().flatten() {
            assert!(!blocked(v6(n)), "{name}: neighbour {n} is public");
        }
    }
    for public in [
        "2606:4700::1111",
        "2a00:1450:4001::1",
        "2000::",
        "3ffe:ffff::1",
        "2001:200::1",
    ] {
        assert!(!blocked(v6(public)), "{public}");
    }
    // Outside 2000::/3 nothing is allocated for unicast: the neighbours of the blocks above
    // that lie there are refused too.
    for unallocated in [
        "64:ff9b:2::",
        "100:0:0:1::",
        "4000::1",
        "5eff:ffff::1",
        "5f01::",
        "fbff:ffff::1",
        "fe00::",
        "1::",
        "::1:0:0:1",
    ] {
        assert!(blocked(v6(unallocated)), "{unallocated}");
    }
}

/// An address carrying an IPv4 address is judged by that address, in each carrier form.
#[test]
fn embedded_ipv4_is_judged_by_the_ipv4_address() {
    let cases: &[(&str, &str)] = &[
        // IPv4-mapped ::ffff:0:0/96
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:0:0", "0.0.0.0"),
        ("::ffff:ffff:ffff", "255.255.255.255"),
        ("::ffff:8.8.8.8", "8.8.8.8"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        // IPv4-compatible ::/96: the attack report's [::7f00:1]
        ("::7f00:1", "127.0.0.1"),
        ("::a00:1", "10.0.0.1"),
        ("::808:808", "8.8.8.8"),
        ("::c0a8:101", "192.168.1.1"),
        // NAT64 64:ff9b::/96
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("64:ff9b::808:808", "8.8.8.8"),
        ("64:ff9b::", "0.0.0.0"),
        ("64:ff9b::ffff:ffff", "255.255.255.255"),
        // 6to4 2002::/16: the IPv4 address is in bits 16..48
        ("2002:7f00:1::", "127.0.0.1"),
        ("2002:a00:1:ffff::1", "10.0.0.1"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),
        ("2002:808:808::1", "8.8.8.8"),
        ("2002::", "0.0.0.0"),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.255"),
    ];
    for (six, four) in cases {
        let ip: Ipv6Addr = six.parse().unwrap();
        assert_eq!(embedded_v4(ip), Some(four.parse().unwrap()), "{six}");
        assert_eq!(
            blocked(IpAddr::V6(ip)),
            blocked(v4(four)),
            "{six} is judged as {four}"
        );
    }
    assert!(blocked(v6("::7f00:1")), "the reported bypass");
    // Neighbours of the carrier blocks are not carriers.
    for not_carrier in ["64:ff9b:0:1::7f00:1", "2003::", "2001:ffff::", "::1:7f00:1"] {
        assert_eq!(
            embedded_v4(not_carrier.parse().unwrap()),
            None,
            "{not_carrier}"
        );
    }
    assert!(!blocked(v6("2003::1")), "just above 6to4 is public");
    assert!(!blocked(v6("2001:ffff::1")), "just below 6to4 is public");
}

#[test]
fn reasons_name_the_block() {
    assert_eq!(non_public_reason(v4("192.0.2.7")), Some("documentation"));
    assert_eq!(non_public_reason(v6("::7f00:1")), Some("loopback"));
    assert_eq!(
        non_public_reason(v6("2001::1")),
        Some("IETF protocol assignments (incl. TEREDO)")
    );
    assert_eq!(non_public_reason(v4("8.8.8.8")), None);
}
