//! Public-API tests of `policy_core::list`: lookups agree with a naive scan
//! of the entries (proptest, IPv4, IPv6, IPv4-mapped, domains, addresses), and
//! matching allocates nothing once warm (a counting global allocator).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use policy_core::list::{EntryToken, List, ListBuilder, ListKind, LoginMap};
use policy_core::Address;
use proptest::prelude::*;

use crate::common::heap_operations;

mod zero_alloc {
    use super::*;

    #[test]
    fn the_counter_sees_an_allocation() {
        let n = heap_operations(|| drop(std::hint::black_box(vec![1u8; 16])));
        assert_eq!(n, 2, "one allocation and one deallocation");
    }

    #[test]
    fn warm_lookups_allocate_nothing() {
        let mut builder = ListBuilder::new(None);
        builder
            .add_file_text(
                "10.0.0.0/8\n2001:db8::/32\nexample.com\n.tree.example\njoe@example.com\npostmaster@\n\
                 @whole.example\n<>\n\"C=DE, O=Example\"\n*.dyn.example\n/^[0-9]+@/i\n",
            )
            .unwrap();
        let list = builder.build().unwrap();
        let logins = LoginMap::parse("joe@example.com joe\n@example.org admin, root\n").unwrap();
        let long = "a".repeat(2000);
        let ips: Vec<IpAddr> = [
            "10.1.2.3",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let names: [&[u8]; 5] = [
            b"Example.COM.",
            b"a.b.tree.example",
            b"host.DYN.example",
            b"miss.example.net",
            long.as_bytes(),
        ];
        let addresses = [
            "Joe@Example.com",
            "postmaster@x.example",
            "x@whole.example",
            "12345@example.net",
            "",
            "nobody@nowhere.example",
            long.as_str(),
        ];
        let run = |hits: &mut usize| {
            for ip in &ips {
                *hits += usize::from(list.contains_ip(*ip));
            }
            for name in names {
                *hits += usize::from(list.contains_domain(name));
            }
            for raw in addresses {
                let a = Address::new(raw.as_bytes());
                *hits += usize::from(list.contains_address(&a));
                *hits += usize::from(logins.login_mismatch(b"joe", &a));
                *hits += usize::from(logins.owners_of(&a).is_some_and(|o| o.contains(b"root")));
            }
            *hits += usize::from(list.contains_bytes(b"C=DE, O=Example"));
            *hits += usize::from(list.contains_bytes(long.as_bytes()));
        };
        let mut warm = 0;
        for _ in 0..4 {
            run(&mut warm);
        }
        let mut hits = 0;
        let operations = heap_operations(|| {
            for _ in 0..100 {
                run(&mut hits);
            }
        });
        assert_eq!(operations, 0, "lookups allocated");
        assert_eq!(hits, warm / 4 * 100, "the same answers every time");
        assert!(hits > 0);
    }
}

// ---------------------------------------------------------------------------
// CIDR lookups against a naive scan.

mod cidr {
    use super::*;

    /// A network as written in a list.
    #[derive(Debug, Clone)]
    enum Net {
        V4(Ipv4Addr, u32),
        V6(Ipv6Addr, u32),
    }

    impl Net {
        fn text(&self) -> String {
            match self {
                Self::V4(a, p) => format!("{a}/{p}"),
                Self::V6(a, p) => format!("{a}/{p}"),
            }
        }
    }

    fn mask_v4(a: u32, prefix: u32) -> u32 {
        a & !u32::MAX.checked_shr(prefix).unwrap_or(0)
    }

    fn mask_v6(a: u128, prefix: u32) -> u128 {
        a & !u128::MAX.checked_shr(prefix).unwrap_or(0)
    }

    /// The spec, literally: IPv4 entries match IPv4 addresses and IPv4-mapped
    /// IPv6 addresses; IPv6 entries match IPv6 addresses as they are, and
    /// IPv4 addresses only when the entry lies inside `::ffff:0:0/96`.
    fn naive(nets: &[Net], ip: IpAddr) -> bool {
        nets.iter().any(|net| match (net, ip) {
            (Net::V4(n, p), IpAddr::V4(a)) => mask_v4(u32::from(a), *p) == u32::from(*n),
            (Net::V4(n, p), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| mask_v4(u32::from(a), *p) == u32::from(*n)),
            (Net::V6(n, p), IpAddr::V6(a)) => mask_v6(u128::from(a), *p) == u128::from(*n),
            (Net::V6(n, p), IpAddr::V4(a)) => {
                let inside_mapped = *p >= 96 && u128::from(*n) >> 32 == 0xffff;
                inside_mapped && mask_v6(u128::from(a.to_ipv6_mapped()), *p) == u128::from(*n)
            }
        })
    }

    fn v4_net() -> impl Strategy<Value = Net> {
        // Few distinct high bits so that networks overlap and nest.
        (0u32..4, any::<u32>(), 0u32..=32).prop_map(|(high, low, p)| {
            Net::V4(Ipv4Addr::from(mask_v4((high << 30) | (low >> 2), p)), p)
        })
    }

    fn v6_net() -> impl Strategy<Value = Net> {
        prop_oneof![
            (0u128..4, any::<u128>(), 0u32..=128).prop_map(|(high, low, p)| {
                Net::V6(Ipv6Addr::from(mask_v6((high << 126) | (low >> 2), p)), p)
            }),
            // Inside ::ffff:0:0/96, the IPv4-mapped block.
            (any::<u32>(), 96u32..=128).prop_map(|(low, p)| {
                Net::V6(
                    Ipv6Addr::from(mask_v6(0xffff_0000_0000 | u128::from(low), p)),
                    p,
                )
            }),
        ]
    }

    fn query(nets: Vec<Net>) -> impl Strategy<Value = (Vec<Net>, Vec<IpAddr>)> {
        let bases: Vec<IpAddr> = nets
            .iter()
            .map(|n| match n {
                Net::V4(a, _) => IpAddr::V4(*a),
                Net::V6(a, _) => IpAddr::V6(*a),
            })
            .collect();
        let near = proptest::sample::select(if bases.is_empty() {
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        } else {
            bases
        });
        let one = prop_oneof![
            // Near an entry: its base plus a small or large offset.
            (near, any::<u8>(), any::<u32>(), any::<bool>()).prop_map(
                |(base, small, large, far)| {
                    let offset = if far { large } else { u32::from(small) };
                    match base {
                        IpAddr::V4(a) => {
                            IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(offset)))
                        }
                        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
                            u128::from(a).wrapping_add(u128::from(offset)),
                        )),
                    }
                }
            ),
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
            (0u32..4, any::<u32>())
                .prop_map(|(h, l)| IpAddr::V4(Ipv4Addr::from((h << 30) | (l >> 2)))),
        ];
        (Just(nets), proptest::collection::vec(one, 1..64))
    }

    fn build(nets: &[Net]) -> List {
        let mut builder = ListBuilder::new(Some(ListKind::Cidr));
        for net in nets {
            builder.add(EntryToken::Bare(&net.text())).unwrap();
        }
        builder.build().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn v4_lookups_agree_with_a_scan(
            (nets, queries) in proptest::collection::vec(v4_net(), 0..40).prop_flat_map(query)
        ) {
            let list = build(&nets);
            for ip in queries {
                prop_assert_eq!(list.contains_ip(ip), naive(&nets, ip), "{} in {:?}", ip, nets);
            }
        }

        #[test]
        fn v6_and_mixed_lookups_agree_with_a_scan(
            (nets, queries) in proptest::collection::vec(prop_oneof![v4_net(), v6_net()], 0..40).prop_flat_map(query)
        ) {
            let list = build(&nets);
            for ip in queries {
                prop_assert_eq!(list.contains_ip(ip), naive(&nets, ip), "{} in {:?}", ip, nets);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Domain and address lookups against a naive scan.

mod names {
    use super::*;

    /// A small alphabet of labels, so that lists and names share suffixes.
    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("mail".to_owned()),
            Just("xn--d".to_owned()),
            Just("ü".to_owned()),
            "[a-c]{1,3}",
        ]
    }

    fn name(max_labels: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(label(), 1..=max_labels).prop_map(|labels| labels.join("."))
    }

    /// Randomly upper-case ASCII letters.
    fn recase(text: &str, mask: u64) -> String {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    struct DomainEntry {
        name: String,
        tree: bool,
    }

    fn domain_entry() -> impl Strategy<Value = (DomainEntry, u64, bool)> {
        (name(3), any::<bool>(), any::<u64>(), any::<bool>())
            .prop_map(|(name, tree, mask, dot)| (DomainEntry { name, tree }, mask, dot))
    }

    fn entry_text(entry: &DomainEntry, mask: u64, trailing_dot: bool) -> String {
        format!(
            "{}{}{}",
            if entry.tree { "." } else { "" },
            recase(&entry.name, mask),
            if trailing_dot { "." } else { "" }
        )
    }

    fn naive_domain(entries: &[DomainEntry], query: &str) -> bool {
        let q = query
            .strip_suffix('.')
            .unwrap_or(query)
            .to_ascii_lowercase();
        entries
            .iter()
            .any(|e| q == e.name || (e.tree && q.ends_with(&format!(".{}", e.name))))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn domain_lookups_agree_with_a_scan(
            entries in proptest::collection::vec(domain_entry(), 0..30),
            queries in proptest::collection::vec((name(4), any::<u64>(), any::<bool>()), 1..40),
        ) {
            let mut builder = ListBuilder::new(Some(ListKind::Domain));
            for (entry, mask, dot) in &entries {
                builder.add(EntryToken::Bare(&entry_text(entry, *mask, *dot))).unwrap();
            }
            let list = builder.build().unwrap();
            let plain: Vec<DomainEntry> = entries.into_iter().map(|(e, _, _)| e).collect();
            for (query, mask, dot) in queries {
                let query = format!("{}{}", recase(&query, mask), if dot { "." } else { "" });
                prop_assert_eq!(list.contains_domain(query.as_bytes()), naive_domain(&plain, &query), "{} in {:?}", query, plain);
            }
        }

        #[test]
        fn address_lookups_agree_with_a_scan(
            domains in proptest::collection::vec(domain_entry(), 0..10),
            locals in proptest::collection::vec("[a-c]{1,2}", 0..6),
            full in proptest::collection::vec(("[a-c]{1,2}", name(2)), 0..10),
            at_domains in proptest::collection::vec((name(2), any::<bool>()), 0..6),
            queries in proptest::collection::vec(("[a-cA-C]{1,2}", name(3), any::<u64>()), 1..40),
        ) {
            let mut builder = ListBuilder::new(None);
            for (entry, mask, dot) in &domains {
                builder.add(EntryToken::Bare(&entry_text(entry, *mask, *dot))).unwrap();
            }
            for local in &locals {
                builder.add(EntryToken::Bare(&format!("{}@", local.to_ascii_uppercase()))).unwrap();
            }
            for (local, domain) in &full {
                builder.add(EntryToken::Bare(&format!("{local}@{domain}"))).unwrap();
            }
            for (domain, tree) in &at_domains {
                builder.add(EntryToken::Bare(&format!("@{}{domain}", if *tree { "." } else { "" }))).unwrap();
            }
            let list = builder.build().unwrap();
            let domain_entries: Vec<DomainEntry> = domains.into_iter().map(|(e, _, _)| e)
                .chain(at_domains.iter().map(|(name, tree)| DomainEntry { name: name.clone(), tree: *tree }))
                .collect();
            for (local, domain, mask) in queries {
                let raw = format!("{local}@{}", recase(&domain, mask));
                let lower = raw.to_ascii_lowercase();
                let (l, d) = lower.rsplit_once('@').unwrap();
                let expected = locals.iter().any(|x| x == l)
                    || full.iter().any(|(fl, fd)| fl == l && fd == d)
                    || naive_domain(&domain_entries, d);
                prop_assert_eq!(list.contains_address(&Address::new(raw.as_bytes())), expected, "{}", raw);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Any text: no panic, and every error points inside the text.

mod any_text {
    use super::*;

    fn check_positions(
        text: &str,
        errors: &[policy_core::list::FileEntryError],
    ) -> Result<(), TestCaseError> {
        let lines: Vec<&str> = text.lines().collect();
        for e in errors {
            prop_assert!(
                e.line >= 1 && (e.line as usize) <= lines.len(),
                "line {} of {}",
                e.line,
                lines.len()
            );
            let line = lines[e.line as usize - 1];
            prop_assert!(
                e.column >= 1 && (e.column as usize) <= line.chars().count() + 1,
                "{e} in {line:?}"
            );
            prop_assert!(!e.error.to_string().is_empty());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn list_files_never_panic(
            text in "([ \\t#\"/\\\\@.:*?\\[\\]!a-c0-9i-]{0,24}(\\r?\\n)?){0,8}",
            kind in proptest::option::of(proptest::sample::select(ListKind::ALL.to_vec())),
        ) {
            let mut builder = ListBuilder::new(kind);
            if let Err(errors) = builder.add_file_text(&text) {
                prop_assert!(!errors.is_empty());
                check_positions(&text, &errors)?;
            }
            let list = builder.build().unwrap();
            let _ = list.contains_domain(text.as_bytes());
            let _ = list.contains_address(&Address::new(text.as_bytes()));
            let _ = list.contains_bytes(text.as_bytes());
        }

        #[test]
        fn logins_files_never_panic(text in "([ \\t#,@.a-c]{0,24}(\\r?\\n)?){0,8}") {
            match LoginMap::parse(&text) {
                Ok(map) => {
                    let _ = map.login_mismatch(b"a", &Address::new(text.as_bytes()));
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    check_positions(&text, &errors)?;
                }
            }
        }
    }
}
