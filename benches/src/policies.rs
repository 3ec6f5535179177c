//! Policies for the benches and the zero-allocation test, generated
//! deterministically (a seeded [`XorShift64`]), with their list files held in
//! memory ([`MemoryFiles`]).
//!
//! - [`realistic`]: what a busy inbound MX might run. 56 rules, a list of
//!   10,000 CIDRs (8,000 IPv4, 2,000 IPv6) and one of 10,000 domains (half
//!   exact, half with a leading dot) loaded from files, an address list, a
//!   logins map of 1,000 senders, several regular expressions, globs,
//!   predicates, numeric comparisons, 30 per-customer-domain rules, a dry-run
//!   rule, and a templated `PREPEND` as the last rule. For
//!   [`FULL_RCPT`](crate::FULL_RCPT) every rule is tried: none applies before
//!   the last (the dry-run rule records a hit), so the decision is the
//!   worst case for this policy, not an early exit.
//! - [`every_condition`]: one rule per kind of condition (every operator,
//!   every predicate, every list kind), all tried for every request of the
//!   [`MIX`](crate::MIX), then a templated `REJECT` that decides.
//! - [`big_list`]: one list of `n` domains or CIDRs, for compile-time figures.
//! - [`limits`]: three limit rules counting at `RCPT` (per-user recipients
//!   in an hour and a day, messages per client /24, recipients per sender
//!   domain), each tracking up to 2,000,000 keys; [`limit_rcpt`] builds the
//!   request of key number `n` (a distinct user, /24 and sender domain per
//!   `n`). For the `limits` benches.
//! - [`limits_every_mode`]: three limit rules in three counting modes
//!   (recipients at `RCPT` per login, messages per client network, bytes
//!   times recipients per sender domain at `END-OF-MESSAGE` with an override
//!   file), a rule that refuses some recipients after the limits counted
//!   them (so their units are given back), and [`limits_mix`], the requests
//!   of four messages on one connection. For the zero-allocation test.
//! - [`greylist`]: one greylist rule as an inbound MX runs it (not for
//!   authenticated or trusted clients; postgrey-format client and recipient
//!   whitelist files of [`GREYLIST_WHITELIST_CLIENTS`] and
//!   [`GREYLIST_WHITELIST_RECIPIENTS`] entries; a `then` template showing the
//!   recipient domain and the seconds left; an `X-Greylist` header), tracking
//!   up to [`GREYLIST_CAPACITY`] triplets; [`greylist_rcpt`] builds the full
//!   `RCPT` request of triplet number `n` (its own recipient;
//!   [`GREYLIST_TRIPLETS_PER_NETWORK`] triplets per client /24 and VERP
//!   sender). For the `greylist` benches, the instruction budget and the
//!   zero-allocation test.

use std::collections::HashMap;

use policy_core::facts::QueryKind;

use crate::CachedAnswer;
use std::fmt::Write as _;

use policy_core::{Policy, SourceLoader};

use crate::XorShift64;

/// Entries of the realistic policy's CIDR list.
pub const REALISTIC_CIDRS: usize = 10_000;
/// Entries of the realistic policy's domain list.
pub const REALISTIC_DOMAINS: usize = 10_000;
/// Per-customer-domain rules of the realistic policy.
const CUSTOMER_RULES: usize = 30;
/// Senders in the realistic policy's logins map.
const LOGINS: usize = 1_000;

/// A [`SourceLoader`] over files held in memory: path as written in the
/// policy -> text.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles(pub HashMap<String, String>);

impl SourceLoader for MemoryFiles {
    fn load(&mut self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such file in memory: {path}"))
    }
}

/// A policy's source and the list files it names.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The policy file.
    pub source: String,
    /// The files it names.
    pub files: MemoryFiles,
}

impl PolicySource {
    /// Compile it; panics with every diagnostic if it does not compile (these
    /// policies are fixtures: a failure is a bug in the fixture or the compiler).
    pub fn compile(&self) -> Policy {
        let mut files = |path: &str| {
            self.files
                .0
                .get(path)
                .cloned()
                .ok_or_else(|| format!("no such file in memory: {path}"))
        };
        match Policy::compile("bench.conf", &self.source, &mut files) {
            Ok(compiled) => compiled.policy,
            Err(errors) => panic!("the benchmark policy does not compile:\n{errors}"),
        }
    }
}

/// `n` IPv4 networks outside 192.0.2.0/24, 198.51.100.0/24 and
/// 203.0.113.0/24 (the documentation ranges the benchmark requests come
/// from): first octets 1 to 191, prefixes /16 to /32, host bits zero.
fn ipv4_networks(rng: &mut XorShift64, n: usize, out: &mut String) {
    for _ in 0..n {
        let r = rng.next_u64();
        let first = 1 + (r % 191) as u32;
        let address = (first << 24) | ((r >> 8) as u32 & 0x00ff_ffff);
        let prefix = 16 + ((r >> 40) % 17) as u32;
        let network = std::net::Ipv4Addr::from(address & (u32::MAX << (32 - prefix)));
        let _ = writeln!(out, "{network}/{prefix}");
    }
}

/// `n` IPv6 networks inside 2001:db8:8000::/33, /48 to /64, host bits zero
/// (the benchmark requests' IPv6 addresses are in 2001:db8::/33).
fn ipv6_networks(rng: &mut XorShift64, n: usize, out: &mut String) {
    for _ in 0..n {
        let r = rng.next_u64();
        let third = 0x8000 | u128::from(r & 0x7fff);
        let high = (0x2001_0db8_u128 << 96) | (third << 80) | (u128::from(r >> 15) << 31);
        let prefix = 48 + (rng.next_u64() % 17) as u32;
        let network = std::net::Ipv6Addr::from(high & (u128::MAX << (128 - prefix)));
        let _ = writeln!(out, "{network}/{prefix}");
    }
}

/// A random lower-case label of 4 to 11 letters and digits.
fn label(rng: &mut XorShift64, out: &mut String) {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let r = rng.next_u64();
    let len = 4 + (r % 8) as usize;
    let mut bits = r >> 3;
    for i in 0..len {
        if i % 10 == 9 {
            bits = rng.next_u64();
        }
        out.push(char::from(ALPHABET[(bits % 36) as usize]));
        bits /= 36;
    }
}

/// `n` domains under made-up TLDs (never a domain of the benchmark
/// requests), every other one with a leading dot (the domain and its
/// subdomains).
fn domains(rng: &mut XorShift64, n: usize, out: &mut String) {
    const TLDS: [&str; 6] = ["test", "invalid", "example", "xyz", "top", "click"];
    for i in 0..n {
        if i % 2 == 1 {
            out.push('.');
        }
        label(rng, out);
        out.push('.');
        label(rng, out);
        out.push('.');
        out.push_str(TLDS[i % TLDS.len()]);
        out.push('\n');
    }
}

/// The realistic policy: see the module documentation.
pub fn realistic() -> PolicySource {
    let mut rng = XorShift64::new(0x05EE_D0F9_011C);
    let mut files = HashMap::new();

    let mut nets = String::from("# blocked networks (generated)\n");
    ipv4_networks(&mut rng, REALISTIC_CIDRS * 4 / 5, &mut nets);
    ipv6_networks(&mut rng, REALISTIC_CIDRS / 5, &mut nets);
    files.insert("blocked_nets".to_owned(), nets);

    let mut blocked_domains = String::from("# blocked domains (generated)\n");
    domains(&mut rng, REALISTIC_DOMAINS, &mut blocked_domains);
    files.insert("blocked_domains".to_owned(), blocked_domains);

    let mut senders = String::from("# blocked senders (generated)\n");
    for i in 0..200 {
        match i % 3 {
            0 => {
                label(&mut rng, &mut senders);
                senders.push('@');
                label(&mut rng, &mut senders);
                senders.push_str(".test\n");
            }
            1 => {
                label(&mut rng, &mut senders);
                senders.push_str("@\n");
            }
            _ => {
                senders.push('@');
                label(&mut rng, &mut senders);
                senders.push_str(".invalid\n");
            }
        }
    }
    files.insert("blocked_senders".to_owned(), senders);

    let mut logins = String::from("# sender -> logins (generated)\n");
    for i in 0..LOGINS {
        let _ = writeln!(logins, "user{i}@example.org    user{i}, admin");
    }
    logins.push_str("@staff.example.org    staffadmin\n");
    files.insert("sender_logins".to_owned(), logins);

    let mut source = String::from(
        r#"# A realistic inbound MX policy for the benchmarks (generated by
# policyd_benches::policies::realistic).
list trusted_nets    cidr   { 127.0.0.0/8 ::1 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 }
list blocked_nets    cidr   file "blocked_nets"
list blocked_domains domain file "blocked_domains"
list blocked_senders address file "blocked_senders"
list local_domains   domain { example.org .example.org example.com }
list trusted_certs   string { "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89" }
list bad_helos       glob   { "*.localdomain" "localhost*" "*.local" "ylmf-pc" }
list spam_names      regex  { /^(unknown|localhost)$/i /[0-9]+-[0-9]+-[0-9]+-[0-9]+\./ }
logins sender_logins file "sender_logins"

rule trusted            { if client_address in trusted_nets then OK }
rule trusted-cert       { if ccert_fingerprint in trusted_certs then OK }
rule blocked-nets       { if client_address in blocked_nets then REJECT "5.7.1 Client $client_address is blocked" }
rule blocked-sender-dom { if sender_domain in blocked_domains then REJECT "5.7.1 Sender domain $sender_domain is blocked" }
rule blocked-client-dom { if client_name in blocked_domains then REJECT "5.7.1 Client $client_name is blocked" }
rule blocked-helo-dom   { if helo_name in blocked_domains then REJECT "5.7.1 HELO $helo_name is blocked" }
rule blocked-senders    { if sender in blocked_senders then REJECT "5.7.1 Sender $sender is blocked" }
rule spam-names         { if client_name in spam_names or helo_name in spam_names then 450 "4.7.1 Suspicious client name" }
rule dynamic-client     { if client_name matches /(^|[.-])(a?dsl|dyn|dynamic|ppp|pool|dhcp|cable|dialup)[0-9.-]/i then 450 "4.7.1 Dynamic address $client_address" }
rule numeric-sender     { if sender_local matches /^[0-9]{8,}$/ then REJECT "5.7.1 Numeric sender" }
rule bad-tld            { if sender_domain matches /\.(xyz|top|click|loan|work|zip)$/i then DEFER_IF_PERMIT "4.7.1 Try again later" }
rule client-unknown     { if client_unknown and not authenticated then 450 "4.7.25 Client host rejected: cannot find your hostname" }
rule reverse-unknown    { if reverse_client_unknown and not authenticated then 450 "4.7.25 Client host rejected: no reverse DNS" }
rule helo-ip            { if helo_is_ip then REJECT "5.7.1 HELO must not be a bare IP address" }
rule helo-literal       { if helo_is_address_literal and not authenticated then REJECT "5.7.1 HELO literal not allowed" }
rule helo-fqdn          { unless helo_is_fqdn or authenticated then REJECT "5.7.1 HELO must be a FQDN" }
rule helo-bad           { if helo_name in bad_helos then REJECT "5.7.1 Bad HELO $helo_name" }
rule helo-like          { if helo_name like "*.home.arpa" then REJECT "5.7.1 Private HELO" }
rule no-spoofing        { if unauthenticated_local_sender local_domains then REJECT "5.7.1 Authenticate to send as $sender" }
rule login-mismatch     { if sender_login_mismatch sender_logins then REJECT "5.7.1 $sasl_username may not send as $sender" }
rule sasl-plaintext     { if authenticated and not tls then REJECT "5.7.0 Encryption required for authentication" }
rule sasl-method        { if authenticated and sasl_method == "CRAM-MD5" then REJECT "5.7.0 Method not allowed" }
rule too-big            { if size > 50MB then REJECT "5.3.4 Message too big" }
rule too-many-rcpts     { state DATA  if recipient_count > 100 and not authenticated then DEFER "4.5.3 Too many recipients" }
rule weak-tls           { if tls and encryption_keysize < 128 then WARN "weak TLS from $client_address" }
rule old-tls            { if encryption_protocol == "TLSv1" or encryption_protocol == "SSLv3" then WARN "old TLS from $client_address" }
rule submission-only    { if server_port == 587 and not authenticated then REJECT "5.7.0 Authentication required" }
rule low-port           { if client_port < 1024 and client_port > 0 then WARN "privileged source port" }
rule postmaster         { state RCPT  if recipient_local == "postmaster" or recipient_local == "abuse" then DUNNO }
rule stress             { if stress == "yes" and not tls then DEFER_IF_PERMIT "4.7.1 Busy" }
rule bounce-to-list     { if null_sender and recipient_local starts_with "list-" then REJECT "5.7.1 No bounces to lists" }
rule sni-mismatch       { if tls_sni is set and not tls_sni ends_with ".example.org" and not tls_sni ends_with ".example.com" then WARN "unexpected SNI $tls_sni" }
rule cert-subject       { if ccert_subject contains "CN=revoked" then REJECT "5.7.1 Revoked certificate" }
rule queue-id           { state END-OF-MESSAGE  if queue_id is empty then WARN "no queue id" }
rule data-size          { state END-OF-MESSAGE  if size >= 25MiB then HOLD "large message from $sender" }
"#,
    );
    for i in 0..CUSTOMER_RULES {
        let _ = writeln!(
            source,
            "rule customer-{i:02} {{ state RCPT  if recipient_domain == \"customer{i}.example\" \
             and (sender_local starts_with \"info\" or size > {limit}MB) \
             then REJECT \"5.7.1 customer{i} does not accept this for $recipient\" }}",
            limit = 5 + i
        );
    }
    source.push_str(
        r#"rule newsletters dry-run { if sender_local contains "bounces" and size > 10k then HOLD "newsletter review" }
rule tls-header         { state RCPT  if tls then PREPEND "X-Policy-TLS: $encryption_protocol with $encryption_cipher ($encryption_keysize bits) from $client_address" }
default DUNNO
"#,
    );
    PolicySource {
        source,
        files: MemoryFiles(files),
    }
}

/// The DNS lists of [`scoring`]: five DNSBLs and one RHSBL.
pub const SCORING_LISTS: &str = r#"dnsbl zen { zone "zen.example" answer 127.0.0.2-127.0.0.11 }
dnsbl bl1 { zone "bl1.example" }
dnsbl bl2 { zone "bl2.example" }
dnsbl bl3 { zone "bl3.example" answer mask 0.0.0.8 }
dnsbl bl4 { zone "bl4.example" }
rhsbl dbl { zone "dbl.example" answer 127.0.1.2-127.0.1.99 }
"#;

/// The score item of [`scoring`]: 20 conditions, 12 of them on outside
/// facts (five DNSBLs, an RHSBL on two fields, forward-confirmed reverse
/// DNS, the HELO name's addresses, the sender domain), policyd-weight's
/// shape.
pub const SCORE_ITEM: &str = r#"score spam {
    state RCPT
    unless authenticated
    add 4.35 if client_address in dnsbl zen as "zen"
    add 2 if client_address in dnsbl bl1 as "bl1"
    add 2 if client_address in dnsbl bl2 as "bl2"
    add 1.5 if client_address in dnsbl bl3 as "bl3"
    add 1.5 if client_address in dnsbl bl4 as "bl4"
    add 3 if sender_domain in rhsbl dbl as "sender_dbl"
    add 2 if helo_name in rhsbl dbl as "helo_dbl"
    add 1.5 unless fcrdns as "no_fcrdns"
    add 1 unless helo_resolves as "helo_unresolved"
    add -0.5 if helo_matches_client as "helo_matches"
    add 3 if sender_domain_unknown as "sender_domain_unknown"
    add 1 if client_unknown as "client_unknown"
    add 1 if reverse_client_unknown as "no_reverse"
    add 0.5 unless helo_is_fqdn as "helo_not_fqdn"
    add 1 if helo_is_ip as "helo_ip"
    add -1 if tls as "tls"
    add 0.5 if size > 10MB as "big"
    add 1 if sender_domain in blocked_domains as "blocked_domain"
    add 0.25 if null_sender as "null_sender"
    add -2 if client_address in trusted_nets as "trusted"
    above 6 REJECT "5.7.1 Spam score $score ($score_reasons)"
    above 4 DEFER_IF_PERMIT "4.7.1 Spam score $score, try again later"
}
"#;

/// The realistic policy with DNS lists and a score item of 20 conditions
/// ([`SCORE_ITEM`]) before its last two rules: for `FULL_RCPT` with the
/// answers of [`scoring_answers`], the score is 0.5 (listed in `bl1`,
/// HELO matching, TLS), below both thresholds, and the same rule decides.
pub fn scoring() -> PolicySource {
    let mut policy = realistic();
    let at = policy
        .source
        .find("rule newsletters")
        .expect("the realistic policy ends with its newsletters rule");
    policy.source.insert_str(at, SCORE_ITEM);
    policy.source.insert_str(0, SCORING_LISTS);
    policy
}

/// The score item of [`SCORE_ITEM`] alone (with the DNS lists and the two
/// lists it reads, `blocked_domains` of 10,000 entries and `trusted_nets`),
/// then `default DUNNO`: what DNS scoring costs by itself.
pub fn score_only() -> PolicySource {
    let realistic = realistic();
    let mut source = String::from(SCORING_LISTS);
    for line in realistic.source.lines() {
        if line.starts_with("list blocked_domains") || line.starts_with("list trusted_nets") {
            source.push_str(line);
            source.push('\n');
        }
    }
    source.push_str(SCORE_ITEM);
    source.push_str("default DUNNO\n");
    PolicySource {
        source,
        files: realistic.files,
    }
}

/// The DNS answers of `FULL_RCPT`'s queries under [`scoring`], as a cache
/// holds them: (kind, name, answer); everything else is not found.
pub fn scoring_answers() -> Vec<(QueryKind, &'static str, CachedAnswer)> {
    let ip = |s: &str| s.parse().expect("address");
    vec![
        (
            QueryKind::A,
            "47.113.0.203.bl1.example",
            CachedAnswer::Addresses(vec![ip("127.0.0.2")]),
        ),
        (
            QueryKind::Ptr,
            "47.113.0.203.in-addr.arpa",
            CachedAnswer::Names(vec![b"mail-out-07.lists.example-sender.com"
                .to_vec()
                .into()]),
        ),
        (
            QueryKind::A,
            "mail-out-07.lists.example-sender.com",
            CachedAnswer::Addresses(vec![ip("203.0.113.47")]),
        ),
        (
            QueryKind::Mx,
            "lists.example-sender.com",
            CachedAnswer::Names(vec![b"mx.example-sender.com".to_vec().into()]),
        ),
        (
            QueryKind::A,
            "lists.example-sender.com",
            CachedAnswer::Addresses(vec![ip("203.0.113.40")]),
        ),
    ]
}

/// An SPF policy: a fail refused with its explanation, everything else
/// tagged with a `Received-SPF:` header. With [`spf_answers`], `FULL_RCPT`'s
/// sender passes through an include and an `mx` term (three rounds).
pub fn spf() -> PolicySource {
    PolicySource {
        source: "rule spf-fail { if spf == fail then REJECT \"5.7.23 $spf_explanation\" }\n\
                 rule tag { then PREPEND \"Received-SPF: $received_spf\" }\n"
            .to_owned(),
        files: MemoryFiles::default(),
    }
}

/// The DNS answers of `FULL_RCPT`'s SPF check under [`spf`], as a cache
/// holds them: the sender domain's record includes one whose `mx` is the
/// client.
pub fn spf_answers() -> Vec<(QueryKind, &'static str, CachedAnswer)> {
    let text = |t: &str| CachedAnswer::Texts(vec![t.as_bytes().into()]);
    vec![
        (
            QueryKind::Txt,
            "lists.example-sender.com",
            text("v=spf1 include:_spf.example-sender.com -all"),
        ),
        (
            QueryKind::Txt,
            "_spf.example-sender.com",
            text("v=spf1 ip4:198.51.100.0/24 mx ~all"),
        ),
        (
            QueryKind::Mx,
            "_spf.example-sender.com",
            CachedAnswer::Names(vec![b"mx.example-sender.com".to_vec().into()]),
        ),
        (
            QueryKind::A,
            "mx.example-sender.com",
            CachedAnswer::Addresses(vec!["203.0.113.47".parse().expect("address")]),
        ),
    ]
}

/// A policy with one rule per kind of condition, every one tried for every
/// request of the [`MIX`](crate::MIX) (none applies), then a templated
/// `REJECT` that decides every request. For the zero-allocation test.
pub fn every_condition() -> PolicySource {
    let mut files = HashMap::new();
    files.insert(
        "logins".to_owned(),
        "nobody@nowhere.invalid  nobody\n@example.org  alice.smith@example.org\n".to_owned(),
    );
    let source = r#"# One rule per kind of condition; none applies to the benchmark requests.
list nets      cidr    { 198.18.0.0/15 2001:db8:ffff:ffff::/64 }
list names     domain  { never.invalid .never.invalid }
list addrs     address { nobody@nowhere.invalid "nobody@" @nowhere.invalid }
list words     string  { "no such context" }
list globs     glob    { "*.never.*" "x?y" }
list res       regex   { /^never-[0-9]+$/ /NEVER/i }
list mixed             { 198.18.0.1 .mixed.invalid mixed@ "*.mixed.*" /^mixed$/ }
logins owners  file "logins"

rule c-in-cidr      { if client_address in nets then REJECT }
rule c-in-domain    { if helo_name in names or sender in names or client_name in { .inline.invalid } then REJECT }
rule c-in-address   { if sender in addrs or recipient in addrs then REJECT }
rule c-in-string    { if policy_context in words then REJECT }
rule c-in-glob      { if client_name in globs then REJECT }
rule c-in-regex     { if sender in res then REJECT }
rule c-in-mixed     { if sender in mixed or client_address in mixed then REJECT }
rule c-eq           { if helo_name == "never.invalid" or instance == "never" then REJECT }
rule c-ne           { if request != "smtpd_access_policy" then REJECT }
rule c-eq-number    { if server_port == 2 or client_port == 1 then REJECT }
rule c-state        { if protocol_state == VRFY or protocol_state == ETRN then REJECT }
rule c-numbers      { if size > 1GiB or recipient_count >= 100000 or encryption_keysize > 100000 or client_port <= 0 then REJECT }
rule c-prefix       { if sender starts_with "never-" or recipient ends_with ".never.invalid" or ccert_subject contains "never" then REJECT }
rule c-matches      { if client_name matches /^never[0-9]+\./i then REJECT }
rule c-like         { if helo_name like "never*.invalid" then REJECT }
rule c-empty        { if request is empty or sasl_method is set and sasl_username is empty then REJECT }
rule c-predicates   { if (helo_is_ip or helo_is_address_literal or client_unknown or reverse_client_unknown) and not authenticated then REJECT }
rule c-predicates-2 { if not helo_is_fqdn and not authenticated and not tls and null_sender then REJECT }
rule c-local        { if unauthenticated_local_sender { never.invalid } then REJECT }
rule c-logins       { if sender_login_mismatch owners then REJECT }
rule c-derived      { if (sender_local == "never" or sender_domain == "never.invalid") and (recipient_local == "x" or recipient_domain == "y") then REJECT }
rule c-dry dry-run  { if not client_address in nets then WARN "dry-run seen $client_address" }
rule decide         { then REJECT "5.7.1 <$sender> to <$recipient> from $client_address ($client_name) refused by $rule" }
"#;
    PolicySource {
        source: source.to_owned(),
        files: MemoryFiles(files),
    }
}

/// The most keys each limit of [`limits`] tracks: twice the million keys
/// the benches fill them with, so that no shard reaches its share of the
/// bound (keys spread over 64 shards unevenly) and every key is tracked.
pub const LIMITS_CAPACITY: usize = 2_000_000;

/// Three limit rules counting at `RCPT`, see the module documentation.
///
/// The maxima are far above what any benchmark run counts for one key
/// (a billion per window), so that every measured request takes the same
/// path, admitted: checked and counted in every window of the three tables.
/// A refusal would take the `over` action's template instead.
pub fn limits() -> PolicySource {
    let source = format!(
        r#"# Three limit rules for the benchmarks (policyd_benches::policies::limits).
limit per-user {{
    if authenticated
    key sasl_username
    count recipients
    max 1000000000 per 1h, 2000000000 per 1d
    capacity {LIMITS_CAPACITY}
}}
limit per-network {{
    key client_address/24/64
    count messages
    max 1000000000 per 1h
    capacity {LIMITS_CAPACITY}
}}
limit per-domain {{
    key sender_domain
    count recipients
    max 1000000000 per 1d
    capacity {LIMITS_CAPACITY}
}}
default DUNNO
"#
    );
    PolicySource {
        source,
        files: MemoryFiles::default(),
    }
}

/// `request` (a complete request, closed by the empty line) with the values
/// of the named attributes replaced.
///
/// # Panics
///
/// If an attribute of `values` is not in `request` (a fixture bug).
pub fn with_attributes(request: &[u8], values: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.len() + 64);
    let mut seen = vec![false; values.len()];
    for line in request.split_inclusive(|&b| b == b'\n') {
        let name = line.split(|&b| b == b'=').next().unwrap_or_default();
        match values.iter().position(|(n, _)| n.as_bytes() == name) {
            Some(i) if line.contains(&b'=') => {
                seen[i] = true;
                out.extend_from_slice(name);
                out.push(b'=');
                out.extend_from_slice(values[i].1.as_bytes());
                out.push(b'\n');
            }
            _ => out.extend_from_slice(line),
        }
    }
    for ((name, _), seen) in values.iter().zip(seen) {
        assert!(seen, "the request has no attribute {name}");
    }
    out
}

/// The IPv4 client address of key number `n` of [`limit_rcpt`]: one /24 per
/// `n` (16.0.0.0/24, 16.0.1.0/24, ...; distinct for `n` below 2^20), a host
/// address that varies too.
fn limit_client(n: u64) -> std::net::Ipv4Addr {
    let network = (16u32 << 24).wrapping_add(((n as u32) & 0x000f_ffff) << 8);
    std::net::Ipv4Addr::from(network | (1 + (n % 250) as u32))
}

/// A full `RCPT` request ([`SASL_RCPT`](crate::SASL_RCPT) reshaped) for key
/// number `n` of [`limits`]: login `user<n>@example.org`, client address in
/// its own /24, sender `user<n>@domain<n>.example`, and `instance` (use a
/// new one for each message: `count messages` counts a message's first
/// recipient only).
pub fn limit_rcpt(n: u64, instance: u64) -> Vec<u8> {
    let user = format!("user{n}@example.org");
    let client = limit_client(n).to_string();
    let sender = format!("user{n}@domain{n}.example");
    let instance = format!("{instance:x}.6565b8a4.c5d6e.0");
    with_attributes(
        crate::SASL_RCPT,
        &[
            ("sasl_username", &user),
            ("client_address", &client),
            ("sender", &sender),
            ("instance", &instance),
        ],
    )
}

/// The most triplets the greylist of [`greylist`] tracks: a quarter above
/// the 10,000,000 triplets the benches fill it with, so that no shard
/// reaches its share of the bound (the bound is exact per shard, and the
/// triplets spread over 64 shards unevenly: about 156,000 each, give or take
/// a few hundred) and every triplet is tracked. Capacity costs nothing
/// until triplets arrive (the shards grow).
pub const GREYLIST_CAPACITY: usize = 12_500_000;

/// Triplets of [`greylist_rcpt`] per client /24 (and per VERP sender):
/// senders of bulk mail send to many recipients from one network.
pub const GREYLIST_TRIPLETS_PER_NETWORK: u64 = 10;

/// Entries of the generated client whitelist file of [`greylist`] (about
/// the size of the `whitelist_clients` file postgrey ships).
pub const GREYLIST_WHITELIST_CLIENTS: usize = 200;

/// Entries of the generated recipient whitelist file of [`greylist`].
pub const GREYLIST_WHITELIST_RECIPIENTS: usize = 50;

/// A client host name that [`greylist`]'s client whitelist names (so it
/// passes by name, with its subdomains).
pub const GREYLIST_WHITELISTED_CLIENT: &str = "mx2.retries-badly.example";

/// A client host name that a `/regex/` entry of [`greylist`]'s client
/// whitelist matches.
pub const GREYLIST_PATTERN_CLIENT: &str = "smtp-out-17.bulk-sender.example";

/// A recipient that [`greylist`]'s recipient whitelist names (`postmaster@`
/// in every domain).
pub const GREYLIST_WHITELISTED_RECIPIENT: &str = "postmaster@example.org";

/// A new label of [`label`].
fn word(rng: &mut XorShift64) -> String {
    let mut out = String::new();
    label(rng, &mut out);
    out
}

/// A greylist as an inbound MX runs it, see the module documentation.
///
/// The whitelist files are postgrey's formats: host names (with their
/// subdomains), `/regex/` entries, addresses, CIDR networks and partial
/// IPv4 prefixes for clients; `user@`, domains and `/regex/` entries for
/// recipients. None matches the requests of [`greylist_rcpt`] (their
/// networks and names are outside every entry), so each such request is
/// looked up in every whitelist and then in the table: the full cost.
pub fn greylist() -> PolicySource {
    let mut rng = XorShift64::new(0x6e3_1157);
    let mut clients = String::from(
        "# Mail servers known to retry badly (postgrey's whitelist_clients format).\n",
    );
    let _ = writeln!(clients, "{GREYLIST_WHITELISTED_CLIENT}");
    let _ = writeln!(clients, "/^smtp-out-[0-9]+\\.bulk-sender\\.example$/");
    let mut entries = 2;
    while entries < GREYLIST_WHITELIST_CLIENTS {
        let r = rng.next_u64();
        match r % 10 {
            // Regular expressions on the client name, as postgrey's own
            // file has for senders with numbered outbound hosts.
            0 => {
                let _ = writeln!(
                    clients,
                    "/^(mta|out)[0-9]*\\.{}\\.{}$/",
                    word(&mut rng),
                    word(&mut rng)
                );
            }
            // Partial IPv4 (a /16 or /24) and CIDR entries in 100.64.0.0/10
            // (shared address space, never a request of these benches).
            1 => {
                let _ = writeln!(clients, "100.{}.{}", 64 + (r >> 8) % 64, (r >> 16) % 256);
            }
            2 => {
                let _ = writeln!(
                    clients,
                    "100.{}.{}.0/24",
                    64 + (r >> 8) % 64,
                    (r >> 16) % 256
                );
            }
            // Host names: the name and its subdomains.
            _ => {
                let _ = writeln!(
                    clients,
                    "{}.{}.{}",
                    word(&mut rng),
                    word(&mut rng),
                    ["example", "test", "invalid"][(r >> 8) as usize % 3]
                );
            }
        }
        entries += 1;
    }
    let mut recipients = String::from(
        "# Recipients that are never greylisted (postgrey's whitelist_recipients format).\n\
         postmaster@\n\
         abuse@\n\
         /^noreply-[0-9]+@/\n",
    );
    for i in 3..GREYLIST_WHITELIST_RECIPIENTS {
        if i % 2 == 0 {
            let _ = writeln!(recipients, "{}@{}.example", word(&mut rng), word(&mut rng));
        } else {
            let _ = writeln!(recipients, "{}.test", word(&mut rng));
        }
    }
    let mut files = HashMap::new();
    files.insert("greylist_clients".to_owned(), clients);
    files.insert("greylist_recipients".to_owned(), recipients);
    let source = format!(
        r#"# A greylist for the benchmarks (policyd_benches::policies::greylist).
list trusted_nets cidr {{ 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 2001:db8:ffff::/48 }}
greylist grey {{
    unless authenticated or client_address in trusted_nets
    whitelist clients file "greylist_clients"
    whitelist recipients file "greylist_recipients"
    capacity {GREYLIST_CAPACITY}
    then DEFER_IF_PERMIT "4.7.1 Greylisted by mx.example.org for $recipient_domain, try again in $retry_after seconds"
    prepend "X-Greylist: delayed $delay seconds by policyd at mx.example.org"
}}
default DUNNO
"#
    );
    PolicySource {
        source,
        files: MemoryFiles(files),
    }
}

/// Writes the full `RCPT` request ([`FULL_RCPT`](crate::FULL_RCPT)
/// reshaped) of triplet number `n` of [`greylist`] into `out` (cleared
/// first): client address in /24 number `n / 10` (16.0.0.0/24 upwards;
/// distinct for `n` below 10 * 2^20), VERP sender
/// `newsletter-bounces+user<n>=example.org@lists<n / 10>.example-sender.com`
/// (one sender per network after postgrey's normalisation drops the
/// extension), recipient `user<n>@example.org`, and an `instance` of its
/// own (each triplet's request is another message: a greylist sends its
/// header once per message). Allocates nothing once `out` has room for a
/// request.
pub fn greylist_rcpt_into(n: u64, out: &mut Vec<u8>) {
    let network = n / GREYLIST_TRIPLETS_PER_NETWORK;
    out.clear();
    for line in crate::FULL_RCPT.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"client_address=") {
            let client = limit_client(network).octets();
            let _ = writeln!(
                ByteWriter(out),
                "client_address={}.{}.{}.{}",
                client[0],
                client[1],
                client[2],
                1 + n % 250
            );
        } else if line.starts_with(b"sender=") {
            let _ = writeln!(
                ByteWriter(out),
                "sender=newsletter-bounces+user{n}=example.org@lists{network}.example-sender.com"
            );
        } else if line.starts_with(b"recipient=") {
            let _ = writeln!(ByteWriter(out), "recipient=user{n}@example.org");
        } else if line.starts_with(b"instance=") {
            let _ = writeln!(ByteWriter(out), "instance={n:x}.6565b8a2.a1b2c.0");
        } else {
            out.extend_from_slice(line);
        }
    }
}

/// [`greylist_rcpt_into`] in a new buffer.
pub fn greylist_rcpt(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(crate::FULL_RCPT.len() + 64);
    greylist_rcpt_into(n, &mut out);
    out
}

/// `fmt::Write` into a byte buffer.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Three limit rules in three counting modes and a rule refusing some
/// recipients after them, see the module documentation. Maxima far above
/// what a test counts, except the override for `tiny.example`: one byte a
/// day, so its messages are refused by the limit (at `RCPT`, from the
/// `SIZE=` hint) with the templated `over` action.
pub fn limits_every_mode() -> PolicySource {
    let mut files = HashMap::new();
    files.insert(
        "domain_quotas".to_owned(),
        "# sender domain -> daily bytes * recipients
\
         example.org  100000000000000 per 1d
\
         Tiny.Example  1 per 1d
"
        .to_owned(),
    );
    let source = r#"# Limits in every counting mode (policyd_benches::policies::limits_every_mode).
limit user-recipients {
    if authenticated
    key sasl_username
    count recipients
    max 1000000000 per 1h, 2000000000 per 1d
}
limit network-messages {
    key client_address/24/64
    count messages
    max 1000000000 per 10m
}
limit domain-volume {
    key sender_domain
    count bytes * recipients
    at end-of-message
    max 10000000000000 per 1d
    overrides file "domain_quotas"
    over DEFER "4.7.1 $key: $counted of $limit bytes per $window, try again in $retry_after seconds"
}
rule refused-recipients {
    state RCPT
    if recipient_local starts_with "refused-"
    then REJECT "5.1.1 <$recipient>: Recipient address rejected: no such user"
}
default DUNNO
"#;
    PolicySource {
        source: source.to_owned(),
        files: MemoryFiles(files),
    }
}

/// The requests of four messages on one connection, for
/// [`limits_every_mode`], in order: `(what, request)`.
///
/// Per message: two accepted `RCPT`s, one `RCPT` of a `refused-` recipient
/// (counted by `user-recipients`, then refused by `refused-recipients`, so
/// given back), `DATA` and `END-OF-MESSAGE` with `recipient_count=2` and the
/// exact size. Logins `user0`/`user1`, two client /24s, sender domains
/// `example.org` (with an override), `example.com` (without) and
/// `tiny.example` (one byte a day: its `RCPT`s are refused by
/// `domain-volume`). Each message has its own `instance`; the same keys and
/// instances recur each time the mix is sent again.
pub fn limits_mix() -> Vec<(String, Vec<u8>)> {
    let messages = [
        ("user0@example.org", "192.0.2.10", "alice@example.org"),
        ("user1@example.org", "192.0.2.11", "bob@Example.COM"),
        ("user0@example.org", "198.51.100.7", "carol@example.com"),
        ("user1@example.org", "198.51.100.8", "dave@tiny.example"),
    ];
    let mut mix = Vec::new();
    for (m, (user, client, sender)) in messages.into_iter().enumerate() {
        let instance = format!("{:x}.6565b8a4.c5d6e.{m}", 0x7a3b + m);
        let common = [
            ("sasl_username", user),
            ("client_address", client),
            ("sender", sender),
            ("instance", instance.as_str()),
        ];
        for recipient in [
            "one@partner.example",
            "two@partner.example",
            "refused-three@partner.example",
        ] {
            let mut values = common.to_vec();
            values.push(("recipient", recipient));
            mix.push((
                format!("message {m} RCPT {recipient}"),
                with_attributes(crate::SASL_RCPT, &values),
            ));
        }
        for state in ["DATA", "END-OF-MESSAGE"] {
            let mut values = common.to_vec();
            values.extend([
                ("protocol_state", state),
                ("recipient", ""),
                ("recipient_count", "2"),
                ("queue_id", "4Q2Xk81yQWz9sWD"),
                ("size", "2171"),
            ]);
            mix.push((
                format!("message {m} {state}"),
                with_attributes(crate::SASL_RCPT, &values),
            ));
        }
    }
    mix
}

/// Which kind of list [`big_list`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Domains, half of them with a leading dot.
    Domain,
    /// IPv4 (4/5) and IPv6 (1/5) networks.
    Cidr,
}

/// A policy with one list of `n` entries of `kind`, loaded from a file, and
/// one rule that uses it.
pub fn big_list(kind: ListKind, n: usize) -> PolicySource {
    let mut rng = XorShift64::new(0xB16_1157);
    let mut list = String::with_capacity(n * 24);
    let (kind_word, rule) = match kind {
        ListKind::Domain => {
            domains(&mut rng, n, &mut list);
            ("domain", "if sender_domain in big")
        }
        ListKind::Cidr => {
            ipv4_networks(&mut rng, n - n / 5, &mut list);
            ipv6_networks(&mut rng, n / 5, &mut list);
            ("cidr", "if client_address in big")
        }
    };
    let mut files = HashMap::new();
    files.insert("big".to_owned(), list);
    PolicySource {
        source: format!(
            "list big {kind_word} file \"big\"\nrule big {{ {rule} then REJECT \"5.7.1 Listed\" }}\n"
        ),
        files: MemoryFiles(files),
    }
}

#[cfg(test)]
mod tests {
    use policy_core::{Engine, Request, Scratch, Timestamp};

    use super::*;

    #[test]
    fn fixtures_compile_and_decide_as_documented() {
        let now = Timestamp::from_unix_millis(0);
        let mut scratch = Scratch::new();

        let policy = realistic().compile();
        assert!(policy.rule_names().count() >= 50);
        let engine = Engine::new(policy);
        let request = Request::parse(crate::FULL_RCPT).expect("valid request");
        let decision = engine.decide(&request, now, &mut scratch);
        assert_eq!(decision.rule, "tls-header");
        assert_eq!(decision.dry_run.len(), 1);
        assert_eq!(
            decision.wire(),
            b"PREPEND X-Policy-TLS: TLSv1.3 with TLS_AES_256_GCM_SHA384 (256 bits) from 203.0.113.47"
        );

        let every = Engine::new(every_condition().compile());
        for entry in crate::MIX {
            let request = Request::parse(entry.request).expect("valid request");
            let decision = every.decide(&request, now, &mut scratch);
            assert_eq!(decision.rule, "decide", "{}", entry.name);
            assert_eq!(decision.dry_run.len(), 1, "{}", entry.name);
        }

        for kind in [ListKind::Domain, ListKind::Cidr] {
            let policy = big_list(kind, 1000).compile();
            assert_eq!(policy.rule_names().collect::<Vec<_>>(), ["big"]);
        }
    }

    /// The units each key of `limit` counts in its first window, by key text.
    fn counts(engine: &Engine, limit: &str, now: Timestamp) -> Vec<(String, u64)> {
        let state = engine.state();
        let state = state
            .limits()
            .find(|l| l.name == limit)
            .unwrap_or_else(|| panic!("no limit {limit}"));
        let mut keys: Vec<(String, u64)> = state
            .table
            .top(0, 100, now)
            .into_iter()
            .map(|k| (String::from_utf8_lossy(&k.text).into_owned(), k.units))
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn limits_count_one_key_per_request_number() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let engine = Engine::new(limits().compile());
        let state = engine.state();
        let names: Vec<&str> = state.limits().map(|l| l.name).collect();
        assert_eq!(names, ["per-user", "per-network", "per-domain"]);
        let mut scratch = Scratch::new();
        // Key 0: one message with three recipients (the message counts
        // once), then one message for each other key.
        for (n, instance) in [
            (0, 1),
            (0, 1),
            (0, 1),
            (1, 2),
            (255, 3),
            (256, 4),
            ((1 << 20) - 1, 5),
        ] {
            let frame = limit_rcpt(n, instance);
            let request = Request::parse(&frame).expect("valid request");
            let decision = engine.decide(&request, now, &mut scratch);
            assert_eq!((decision.rule, decision.wire()), ("default", &b"DUNNO"[..]));
        }
        let user = counts(&engine, "per-user", now);
        assert_eq!(user.len(), 5, "{user:?}");
        assert!(
            user.contains(&("user0@example.org".to_owned(), 3)),
            "{user:?}"
        );
        assert!(
            user.contains(&("user1048575@example.org".to_owned(), 1)),
            "{user:?}"
        );
        let network = counts(&engine, "per-network", now);
        assert_eq!(
            network,
            [
                ("16.0.0.0/24".to_owned(), 1),
                ("16.0.1.0/24".to_owned(), 1),
                ("16.0.255.0/24".to_owned(), 1),
                ("16.1.0.0/24".to_owned(), 1),
                ("31.255.255.0/24".to_owned(), 1),
            ]
        );
        let domain = counts(&engine, "per-domain", now);
        assert_eq!(domain.len(), 5, "{domain:?}");
        assert!(
            domain.contains(&("domain0.example".to_owned(), 3)),
            "{domain:?}"
        );
        for state in engine.state().limits() {
            assert!(state.table.capacity() >= LIMITS_CAPACITY * 9 / 10);
        }
    }

    #[test]
    fn limits_every_mode_decides_and_counts_as_documented() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let engine = Engine::new(limits_every_mode().compile());
        let mix = limits_mix();
        assert_eq!(mix.len(), 4 * 5);
        let mut scratch = Scratch::new();
        const ROUNDS: u64 = 3;
        for round in 0..ROUNDS {
            for (what, frame) in &mix {
                let request = Request::parse(frame).expect("valid request");
                let decision = engine.decide(&request, now, &mut scratch);
                let wire = String::from_utf8_lossy(decision.wire());
                let expected =
                    if what.starts_with("message 3 RCPT") || what == "message 3 END-OF-MESSAGE" {
                        "domain-volume"
                    } else if what.contains("refused-") {
                        "refused-recipients"
                    } else {
                        "default"
                    };
                assert_eq!(decision.rule, expected, "round {round}, {what}: {wire}");
                if expected == "domain-volume" {
                    assert!(
                        wire.starts_with("DEFER 4.7.1 tiny.example: 0 of 1 bytes per 1d, try again in never seconds"),
                        "{what}: {wire}"
                    );
                }
            }
        }
        // Per round: user0 has two messages of two accepted recipients;
        // user1 one (the other is refused by domain-volume, given back);
        // recipients refused by refused-recipients were given back too.
        assert_eq!(
            counts(&engine, "user-recipients", now),
            [
                ("user0@example.org".to_owned(), 4 * ROUNDS),
                ("user1@example.org".to_owned(), 2 * ROUNDS),
            ]
        );
        // Messages 0 and 1 from 192.0.2.0/24, message 2 from
        // 198.51.100.0/24; message 3 was refused, not counted.
        assert_eq!(
            counts(&engine, "network-messages", now),
            [
                ("192.0.2.0/24".to_owned(), 2 * ROUNDS),
                ("198.51.100.0/24".to_owned(), ROUNDS),
            ]
        );
        // 2171 bytes * 2 recipients at the end of each message (sender
        // domains lower-cased); tiny.example never fits.
        assert_eq!(
            counts(&engine, "domain-volume", now),
            [
                ("example.com".to_owned(), 2 * 4342 * ROUNDS),
                ("example.org".to_owned(), 4342 * ROUNDS),
            ]
        );
    }

    #[test]
    fn greylist_defers_each_triplet_once_and_whitelists_as_documented() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let engine = Engine::new(greylist().compile());
        let source = greylist();
        let entries = |name: &str| {
            source.files.0[name]
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count()
        };
        assert_eq!(entries("greylist_clients"), GREYLIST_WHITELIST_CLIENTS);
        assert_eq!(
            entries("greylist_recipients"),
            GREYLIST_WHITELIST_RECIPIENTS
        );
        let mut scratch = Scratch::new();
        let mut decide = |frame: &[u8]| {
            let request = Request::parse(frame).expect("valid request");
            let d = engine.decide(&request, now, &mut scratch);
            (
                d.rule.to_owned(),
                String::from_utf8_lossy(d.wire()).into_owned(),
            )
        };
        // Triplets of one network, of the next, and the last distinct one:
        // each a first attempt, deferred with the template expanded.
        let last = GREYLIST_TRIPLETS_PER_NETWORK * (1 << 20) - 1;
        let triplets = [0, 1, 9, 10, 11, last];
        let mut buffer = Vec::new();
        for n in triplets {
            greylist_rcpt_into(n, &mut buffer);
            assert_eq!(buffer, greylist_rcpt(n), "triplet {n}");
            let (rule, wire) = decide(&buffer);
            assert_eq!(rule, "grey", "triplet {n}: {wire}");
            assert_eq!(
                wire,
                "DEFER_IF_PERMIT 4.7.1 Greylisted by mx.example.org for example.org, \
                 try again in 300 seconds"
            );
        }
        let request = Request::parse(&buffer).expect("valid request");
        assert_eq!(
            request.client_address,
            Some("31.255.255.10".parse().expect("an address"))
        );
        assert_eq!(
            request.recipient.raw,
            format!("user{last}@example.org").as_bytes()
        );
        let table = || {
            engine
                .state()
                .greylists()
                .next()
                .expect("one greylist")
                .table
                .len()
        };
        assert_eq!(table(), triplets.len());
        // Again: too early, nothing new stored.
        for n in triplets {
            assert_eq!(decide(&greylist_rcpt(n)).0, "grey");
        }
        assert_eq!(table(), triplets.len());
        // What the whitelists and the condition let through.
        let exempt = [
            ("client_name", format!("a.{GREYLIST_WHITELISTED_CLIENT}")),
            ("client_name", GREYLIST_PATTERN_CLIENT.to_owned()),
            ("recipient", GREYLIST_WHITELISTED_RECIPIENT.to_owned()),
            ("sasl_username", "user@example.org".to_owned()),
            ("client_address", "172.16.0.1".to_owned()),
        ];
        for (i, (name, value)) in exempt.iter().enumerate() {
            let frame = with_attributes(&greylist_rcpt(100 + i as u64), &[(name, value)]);
            assert_eq!(
                decide(&frame),
                ("default".to_owned(), "DUNNO".to_owned()),
                "{name}={value}"
            );
        }
        assert_eq!(table(), triplets.len());
        let capacity = engine
            .state()
            .greylists()
            .next()
            .expect("one greylist")
            .table
            .capacity();
        assert!(capacity >= GREYLIST_CAPACITY * 9 / 10, "{capacity}");
    }

    #[test]
    fn with_attributes_replaces_values_and_keeps_the_rest() {
        let request = with_attributes(
            crate::SHORT_2X_RCPT,
            &[("sender", "x@y.example"), ("queue_id", "")],
        );
        let expected = String::from_utf8_lossy(crate::SHORT_2X_RCPT)
            .replace("sender=foo@bar.tld\n", "sender=x@y.example\n")
            .replace("queue_id=8045F2AB23\n", "queue_id=\n");
        assert_eq!(String::from_utf8_lossy(&request), expected);
        Request::parse(&request).expect("valid request");
    }

    #[test]
    #[should_panic(expected = "the request has no attribute no_such_name")]
    fn with_attributes_refuses_an_unknown_attribute() {
        with_attributes(crate::SHORT_2X_RCPT, &[("no_such_name", "x")]);
    }

    #[test]
    fn generated_lists_have_the_stated_sizes() {
        let realistic = realistic();
        let lines = |name: &str| {
            realistic.files.0[name]
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count()
        };
        assert_eq!(lines("blocked_nets"), REALISTIC_CIDRS);
        assert_eq!(lines("blocked_domains"), REALISTIC_DOMAINS);
        let rules = realistic
            .source
            .lines()
            .filter(|l| l.starts_with("rule "))
            .count();
        assert!(rules >= 50, "only {rules} rules");
        let big = big_list(ListKind::Cidr, 1000);
        assert_eq!(big.files.0["big"].lines().count(), 1000);
        // Deterministic: the same text every time.
        assert_eq!(realistic.source, super::realistic().source);
        assert_eq!(realistic.files.0, super::realistic().files.0);
    }
}
