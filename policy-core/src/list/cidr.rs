//! CIDR entries: parsing `192.0.2.0/24`, `2001:db8::/32`, bare addresses, and
//! the lookup structure, sorted merged ranges searched by bisection.
//!
//! IPv4 networks become `u32` ranges, IPv6 networks `u128` ranges. At build
//! time the ranges are sorted and overlapping or adjacent ones merged, so a
//! lookup is one binary search: `O(log n)`, about 14 steps for 10,000 ranges,
//! and never a scan. A range costs 8 bytes (IPv4) or 32 bytes (IPv6).
//!
//! # IPv4-mapped IPv6
//!
//! An IPv6 entry that lies wholly inside `::ffff:0:0/96` (for example
//! `::ffff:192.0.2.0/120`) is stored as the IPv4 network it maps
//! (`192.0.2.0/24`). Looking up an IPv4-mapped IPv6 address
//! (`::ffff:192.0.2.1`) checks the IPv4 ranges with the address it maps *and*
//! the IPv6 ranges with the address as is. So an IPv4 entry matches a client
//! however it is written, while `::/0` still means "every IPv6 address" and
//! matches no plain IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{EntryError, EntryErrorKind};

/// A parsed CIDR entry: a network as an inclusive range of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Network {
    /// An IPv4 network, first and last address.
    V4(u32, u32),
    /// An IPv6 network, first and last address.
    V6(u128, u128),
}

/// What a text that looks like an IP address or network should have been.
const EXPECTED_CIDR: &str =
    "an IPv4 or IPv6 address, optionally with a /prefix length (192.0.2.0/24, 2001:db8::/32)";

/// Whether `text` is shaped like an address or network rather than a domain:
/// it contains `:` or `/` (never in a domain), or consists only of digits and
/// dots with at least one digit (an all-numeric name is not a valid domain).
pub(crate) fn looks_like_ip(text: &str) -> bool {
    text.contains([':', '/'])
        || (text.bytes().any(|b| b.is_ascii_digit())
            && text.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Parse `address` or `address/prefix`. The address is in standard notation
/// (`std::net` syntax: no leading zeros in IPv4 octets, no brackets, no zone);
/// the prefix is 0 to 32 for IPv4 and 0 to 128 for IPv6; the address's host
/// bits must be zero (`10.1.0.0/8` is refused: it is almost always a typo,
/// and Postfix's cidr tables refuse it too).
pub(crate) fn parse(text: &str) -> Result<Network, EntryError> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| EntryError::new(EntryErrorKind::Syntax, "not an IP address", EXPECTED_CIDR))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EntryError::new(
                    EntryErrorKind::Syntax,
                    "invalid prefix length",
                    "a prefix length of decimal digits after `/` (0 to 32 for IPv4, 0 to 128 for IPv6)",
                ));
            }
            // At most three digits: fits.
            let p: u32 = p.parse().unwrap_or(u32::MAX);
            if p > max {
                return Err(EntryError::new(
                    EntryErrorKind::Syntax,
                    "prefix length out of range",
                    "a prefix length of at most 32 for IPv4 and 128 for IPv6",
                )
                .with_detail(format!("found /{p}")));
            }
            p
        }
    };
    let host_bits_error = || {
        EntryError::new(
            EntryErrorKind::HostBits,
            "the address has bits set after the prefix",
            "a network address whose bits after the prefix are zero (10.0.0.0/8, not 10.1.0.0/8)",
        )
    };
    match address {
        IpAddr::V4(a) => {
            let (first, last) = range_u32(u32::from(a), prefix);
            if first != u32::from(a) {
                return Err(host_bits_error());
            }
            Ok(Network::V4(first, last))
        }
        IpAddr::V6(a) => {
            let (first, last) = range_u128(u128::from(a), prefix);
            if first != u128::from(a) {
                return Err(host_bits_error());
            }
            Ok(mapped_to_v4(first, last, prefix).unwrap_or(Network::V6(first, last)))
        }
    }
}

/// `::ffff:0:0/96`, the IPv4-mapped IPv6 addresses.
const MAPPED_FIRST: u128 = 0xffff_0000_0000;

/// The IPv4 network an IPv6 network inside `::ffff:0:0/96` maps, if it is inside.
fn mapped_to_v4(first: u128, last: u128, prefix: u32) -> Option<Network> {
    if prefix >= 96 && first >> 32 == MAPPED_FIRST >> 32 {
        // Both ends share the upper 96 bits: the low 32 bits are the IPv4 range.
        Some(Network::V4(first as u32, last as u32))
    } else {
        None
    }
}

fn range_u32(address: u32, prefix: u32) -> (u32, u32) {
    let host = u32::MAX.checked_shr(prefix).unwrap_or(0);
    (address & !host, address | host)
}

fn range_u128(address: u128, prefix: u32) -> (u128, u128) {
    let host = u128::MAX.checked_shr(prefix).unwrap_or(0);
    (address & !host, address | host)
}

/// Sorted, merged, disjoint ranges of one address family.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ranges<T> {
    /// Inclusive (first, last), sorted by `first`, non-overlapping, non-adjacent.
    ranges: Vec<(T, T)>,
}

/// The integer types used as addresses.
pub(crate) trait Bound: Copy + Ord {
    /// The next value, or `None` at the maximum.
    fn next(self) -> Option<Self>;
}

impl Bound for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Bound for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl<T: Bound> Ranges<T> {
    /// Sort and merge `ranges` (in any order, overlapping or not).
    pub(crate) fn from_unsorted(mut ranges: Vec<(T, T)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            if let Some(previous) = merged.last_mut() {
                // Overlapping or adjacent (previous.1 + 1 >= first) ranges merge;
                // a previous range ending at the maximum swallows everything after.
                if previous.1.next().map_or(true, |after| after >= first) {
                    previous.1 = previous.1.max(last);
                    continue;
                }
            }
            merged.push((first, last));
        }
        merged.shrink_to_fit();
        Self { ranges: merged }
    }

    /// Whether `address` is inside one of the ranges: one binary search.
    #[inline]
    pub(crate) fn contains(&self, address: T) -> bool {
        let after = self.ranges.partition_point(|&(first, _)| first <= address);
        after > 0 && address <= self.ranges[after - 1].1
    }

    /// Number of disjoint ranges after merging.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ranges.capacity() * size_of::<(T, T)>()
    }
}

/// The CIDR part of a list: IPv4 and IPv6 ranges.
#[derive(Debug, Clone, Default)]
pub(crate) struct CidrSet {
    pub(crate) v4: Ranges<u32>,
    pub(crate) v6: Ranges<u128>,
}

impl CidrSet {
    /// Build from parsed networks.
    pub(crate) fn new(v4: Vec<(u32, u32)>, v6: Vec<(u128, u128)>) -> Self {
        Self {
            v4: Ranges::from_unsorted(v4),
            v6: Ranges::from_unsorted(v6),
        }
    }

    /// Whether `ip` is in a network of the set (see the module docs for
    /// IPv4-mapped IPv6 addresses). Allocates nothing.
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains_v4(a),
            IpAddr::V6(a) => self.contains_v6(a),
        }
    }

    fn contains_v4(&self, a: Ipv4Addr) -> bool {
        self.v4.contains(u32::from(a))
    }

    fn contains_v6(&self, a: Ipv6Addr) -> bool {
        if let Some(v4) = a.to_ipv4_mapped() {
            if self.contains_v4(v4) {
                return true;
            }
        }
        self.v6.contains(u128::from(a))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn v6(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, Network)] = &[
            ("192.0.2.1", Network::V4(v4("192.0.2.1"), v4("192.0.2.1"))),
            (
                "192.0.2.1/32",
                Network::V4(v4("192.0.2.1"), v4("192.0.2.1")),
            ),
            (
                "192.0.2.0/24",
                Network::V4(v4("192.0.2.0"), v4("192.0.2.255")),
            ),
            (
                "10.0.0.0/8",
                Network::V4(v4("10.0.0.0"), v4("10.255.255.255")),
            ),
            ("0.0.0.0/0", Network::V4(0, u32::MAX)),
            ("::1", Network::V6(1, 1)),
            ("::/0", Network::V6(0, u128::MAX)),
            (
                "2001:db8::/32",
                Network::V6(
                    v6("2001:db8::"),
                    v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
                ),
            ),
            (
                "2001:db8::1/128",
                Network::V6(v6("2001:db8::1"), v6("2001:db8::1")),
            ),
            (
                "::ffff:192.0.2.0/120",
                Network::V4(v4("192.0.2.0"), v4("192.0.2.255")),
            ),
            (
                "::ffff:192.0.2.7",
                Network::V4(v4("192.0.2.7"), v4("192.0.2.7")),
            ),
            ("::ffff:0.0.0.0/96", Network::V4(0, u32::MAX)),
            (
                "::fffe:0:0/95",
                Network::V6(v6("::fffe:0:0"), v6("::ffff:ffff:ffff")),
            ),
        ];
        for (text, expected) in ok {
            assert_eq!(parse(text), Ok(*expected), "{text}");
        }
        let bad: &[(&str, EntryErrorKind)] = &[
            ("192.0.2.0/33", EntryErrorKind::Syntax),
            ("::/129", EntryErrorKind::Syntax),
            ("192.0.2.0/", EntryErrorKind::Syntax),
            ("192.0.2.0/+8", EntryErrorKind::Syntax),
            ("192.0.2.0/0008", EntryErrorKind::Syntax),
            ("192.0.2.0/8/8", EntryErrorKind::Syntax),
            ("192.0.2.256", EntryErrorKind::Syntax),
            ("192.0.2", EntryErrorKind::Syntax),
            ("192.0.02.1", EntryErrorKind::Syntax),
            ("[::1]", EntryErrorKind::Syntax),
            ("fe80::1%eth0", EntryErrorKind::Syntax),
            ("1:2:3", EntryErrorKind::Syntax),
            ("10.1.0.0/8", EntryErrorKind::HostBits),
            ("2001:db8::1/32", EntryErrorKind::HostBits),
        ];
        for (text, kind) in bad {
            assert_eq!(parse(text).map_err(|e| e.kind()), Err(*kind), "{text}");
        }
    }

    #[test]
    fn looks_like_ip_table() {
        for yes in ["1.2.3.4", "1.2.3", "::1", "a:b", "x/8", "123"] {
            assert!(looks_like_ip(yes), "{yes}");
        }
        for no in ["", ".", "..", "example.com", "1.2.3.com", "a1"] {
            assert!(!looks_like_ip(no), "{no}");
        }
    }

    #[test]
    fn merge_and_lookup() {
        let r = Ranges::from_unsorted(vec![
            (10u32, 20),
            (21, 25),
            (30, 40),
            (35, 36),
            (0, 0),
            (u32::MAX, u32::MAX),
        ]);
        assert_eq!(
            r.ranges,
            vec![(0, 0), (10, 25), (30, 40), (u32::MAX, u32::MAX)]
        );
        for (x, inside) in [
            (0, true),
            (1, false),
            (9, false),
            (10, true),
            (25, true),
            (26, false),
            (40, true),
            (41, false),
            (u32::MAX, true),
            (u32::MAX - 1, false),
        ] {
            assert_eq!(r.contains(x), inside, "{x}");
        }
        let all = Ranges::from_unsorted(vec![(5u32, u32::MAX), (0, 4), (7, 9)]);
        assert_eq!(all.ranges, vec![(0, u32::MAX)]);
        let empty = Ranges::<u128>::from_unsorted(Vec::new());
        assert!(!empty.contains(0));
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn mapped_addresses() {
        let set = CidrSet::new(
            vec![(v4("192.0.2.0"), v4("192.0.2.255"))],
            vec![(v6("2001:db8::"), v6("2001:db8::ff"))],
        );
        let q = |s: &str| set.contains(s.parse().unwrap());
        assert!(q("192.0.2.9"));
        assert!(q("::ffff:192.0.2.9"));
        assert!(
            !q("::192.0.2.9"),
            "IPv4-compatible addresses are not mapped"
        );
        assert!(!q("192.0.3.1"));
        assert!(q("2001:db8::7"));
        assert!(!q("2001:db8::100"));
        let all_v6 = CidrSet::new(Vec::new(), vec![(0, u128::MAX)]);
        assert!(
            !all_v6.contains("192.0.2.1".parse().unwrap()),
            "::/0 is every IPv6 address, not every IPv4"
        );
        assert!(all_v6.contains("::ffff:192.0.2.1".parse().unwrap()));
    }
}
