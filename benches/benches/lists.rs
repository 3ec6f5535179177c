//! Criterion benches of policy lists (`policy_core::list`).
//!
//! - `list_lookup`: one lookup in a list of 10,000 CIDRs (IPv4 and IPv6, hit
//!   and miss), of 10,000 domains (half exact, half `.domain` for
//!   subdomains: exact hit, subdomain hit, miss), an envelope address against
//!   the domain list, and a domain against 20 globs and regexes.
//! - `list_build`: `ListBuilder` from the text of a 100,000-line list file
//!   (domains, CIDRs, and a mix), through `build`: the compile time of a big
//!   list file.
//!
//! Before measuring it prints each list's heap bytes per entry
//! (`List::heap_bytes() / List::len()`).
//!
//! Run: `cargo bench -p policyd-benches --bench lists -- --warm-up-time 1 --measurement-time 2`
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use policy_core::list::{List, ListBuilder, ListKind};
use policy_core::Address;
use policyd_benches::XorShift64;

/// Entries of the lookup lists.
const LOOKUP_ENTRIES: usize = 10_000;

/// Lines of the list files built by `list_build`.
const BUILD_ENTRIES: usize = 100_000;

const TLDS: [&str; 8] = ["com", "net", "org", "de", "info", "co.uk", "ru", "example"];

fn label(rng: &mut XorShift64, min: usize, max: usize) -> String {
    let len = min + (rng.next_u64() as usize) % (max - min + 1);
    (0..len)
        .map(|_| char::from(b'a' + (rng.next_u64() % 26) as u8))
        .collect()
}

/// `count` distinct-looking domains, every other one with a leading dot.
fn domain_lines(seed: u64, count: usize) -> Vec<String> {
    let mut rng = XorShift64::new(seed);
    (0..count)
        .map(|i| {
            let tld = TLDS[(rng.next_u64() % TLDS.len() as u64) as usize];
            let name = format!("{}{}.{tld}", label(&mut rng, 5, 12), i % 97);
            if i % 2 == 0 {
                name
            } else {
                format!(".{name}")
            }
        })
        .collect()
}

/// `count` CIDRs: 80 % IPv4 (/16 to /32), 20 % IPv6 (/32 to /64).
fn cidr_lines(seed: u64, count: usize) -> Vec<String> {
    let mut rng = XorShift64::new(seed);
    (0..count)
        .map(|i| {
            if i % 5 == 4 {
                let prefix = 32 + (rng.next_u64() % 33) as u32;
                let address = u128::from(rng.next_u64()) << 64;
                let network = address & !(u128::MAX >> prefix);
                format!("{}/{prefix}", std::net::Ipv6Addr::from(network))
            } else {
                let prefix = 16 + (rng.next_u64() % 17) as u32;
                let address = rng.next_u64() as u32;
                let network = address & !u32::MAX.checked_shr(prefix).unwrap_or(0);
                format!("{}/{prefix}", std::net::Ipv4Addr::from(network))
            }
        })
        .collect()
}

fn build(kind: Option<ListKind>, text: &str) -> List {
    let mut builder = ListBuilder::new(kind);
    builder.add_file_text(text).expect("generated list parses");
    builder.build().expect("generated list builds")
}

fn report(name: &str, list: &List) {
    eprintln!(
        "lists: {name}: {} entries, {} heap bytes, {:.1} bytes per entry",
        list.len(),
        list.heap_bytes(),
        list.heap_bytes() as f64 / list.len() as f64
    );
}

fn lookup(c: &mut Criterion) {
    let cidr_lines = cidr_lines(1, LOOKUP_ENTRIES);
    let cidrs = build(Some(ListKind::Cidr), &cidr_lines.join("\n"));
    report("10k CIDRs", &cidrs);
    let domain_lines = domain_lines(2, LOOKUP_ENTRIES);
    let domains = build(Some(ListKind::Domain), &domain_lines.join("\n"));
    report("10k domains", &domains);
    let patterns = build(
        None,
        &[
            "*.dyn.*",
            "*.dynamic.*",
            "*.dsl.*",
            "*.pool.*",
            "*.dhcp.*",
            "*-static.*",
            "mail?.*.example",
            "[0-9]*.*",
            "*.cable.*",
            "*.adsl.*",
            "/^[0-9]+[-.][0-9]+[-.][0-9]+[-.][0-9]+\\./",
            "/(^|\\.)dialup\\./i",
            "/\\.ppp\\./",
            "/^ip-?[0-9]/i",
            "/^host[0-9]+\\./",
            "/\\.broadband\\./i",
            "/^unknown$/",
            "/\\.cust\\./",
            "/\\.customer\\./i",
            "/^[a-z]{1,3}[0-9]{6,}\\./",
        ]
        .join("\n"),
    );

    // Queries: the first v4 and v6 entries' networks (hits), addresses outside.
    let v4_hit: IpAddr = cidr_lines[0].split('/').next().unwrap().parse().unwrap();
    let v6_hit: IpAddr = cidr_lines[4].split('/').next().unwrap().parse().unwrap();
    let v4_miss: IpAddr = "0.0.0.1".parse().unwrap();
    assert!(cidrs.contains_ip(v4_hit) && cidrs.contains_ip(v6_hit) && !cidrs.contains_ip(v4_miss));
    let exact = domain_lines[0].to_ascii_uppercase();
    let subdomain = format!("mx1.mail.{}", domain_lines[1].trim_start_matches('.'));
    let miss = "mx1.mail.not-listed.example.com";
    assert!(domains.contains_domain(exact.as_bytes()));
    assert!(domains.contains_domain(subdomain.as_bytes()));
    assert!(!domains.contains_domain(miss.as_bytes()));
    let sender_raw = format!("Some.Body@{}", domain_lines[2]);
    let sender = Address::new(sender_raw.as_bytes());
    assert!(domains.contains_address(&sender));
    let dynamic = "host-192-0-2-1.dyn.isp.example.net";
    let clean = "mail.example.org";
    assert!(
        patterns.contains_domain(dynamic.as_bytes()) && !patterns.contains_domain(clean.as_bytes())
    );

    let mut group = c.benchmark_group("list_lookup");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cidr_10k/v4_hit", |b| {
        b.iter(|| cidrs.contains_ip(black_box(v4_hit)))
    });
    group.bench_function("cidr_10k/v4_miss", |b| {
        b.iter(|| cidrs.contains_ip(black_box(v4_miss)))
    });
    group.bench_function("cidr_10k/v6_hit", |b| {
        b.iter(|| cidrs.contains_ip(black_box(v6_hit)))
    });
    group.bench_function("domain_10k/exact_hit", |b| {
        b.iter(|| domains.contains_domain(black_box(exact.as_bytes())))
    });
    group.bench_function("domain_10k/subdomain_hit", |b| {
        b.iter(|| domains.contains_domain(black_box(subdomain.as_bytes())))
    });
    group.bench_function("domain_10k/miss", |b| {
        b.iter(|| domains.contains_domain(black_box(miss.as_bytes())))
    });
    group.bench_function("domain_10k/address_hit", |b| {
        b.iter(|| domains.contains_address(black_box(&sender)))
    });
    group.bench_function("patterns_20/hit", |b| {
        b.iter(|| patterns.contains_domain(black_box(dynamic.as_bytes())))
    });
    group.bench_function("patterns_20/miss", |b| {
        b.iter(|| patterns.contains_domain(black_box(clean.as_bytes())))
    });
    group.finish();
}

fn compile(c: &mut Criterion) {
    let domains = domain_lines(3, BUILD_ENTRIES).join("\n");
    let cidrs = cidr_lines(4, BUILD_ENTRIES).join("\n");
    let mixed: String = domain_lines(5, BUILD_ENTRIES / 2)
        .into_iter()
        .zip(cidr_lines(6, BUILD_ENTRIES / 2))
        .flat_map(|(d, c)| [d, c])
        .collect::<Vec<_>>()
        .join("\n");
    report("100k domains", &build(Some(ListKind::Domain), &domains));
    report("100k CIDRs", &build(Some(ListKind::Cidr), &cidrs));
    report("100k mixed (auto)", &build(None, &mixed));

    let mut group = c.benchmark_group("list_build");
    group.throughput(Throughput::Elements(BUILD_ENTRIES as u64));
    group.sample_size(10);
    for (name, kind, text) in [
        ("domains_100k", Some(ListKind::Domain), &domains),
        ("cidrs_100k", Some(ListKind::Cidr), &cidrs),
        ("mixed_auto_100k", None, &mixed),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| build(kind, black_box(text)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, compile);
criterion_main!(benches);
