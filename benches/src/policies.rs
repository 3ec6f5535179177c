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

use std::collections::HashMap;
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
    use policy_core::{Request, Scratch, Timestamp};

    use super::*;

    #[test]
    fn fixtures_compile_and_decide_as_documented() {
        let now = Timestamp::from_unix_millis(0);
        let mut scratch = Scratch::new();

        let policy = realistic().compile();
        assert!(policy.rule_names().count() >= 50);
        let request = Request::parse(crate::FULL_RCPT).expect("valid request");
        let decision = policy.decide(&request, now, &mut scratch);
        assert_eq!(decision.rule, "tls-header");
        assert_eq!(decision.dry_run.len(), 1);
        assert_eq!(
            decision.wire(),
            b"PREPEND X-Policy-TLS: TLSv1.3 with TLS_AES_256_GCM_SHA384 (256 bits) from 203.0.113.47"
        );

        let every = every_condition().compile();
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
