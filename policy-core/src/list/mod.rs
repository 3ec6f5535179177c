//! Lists: sets of CIDRs, domains, addresses, strings, globs and regexes,
//! built once from the entries of a policy file or a list file and then
//! matched many times without allocating.
//!
//! A [`ListBuilder`] takes entries one at a time ([`ListBuilder::add`], with
//! an [`EntryToken`] as the policy lexer produced it) or a whole list file
//! ([`ListBuilder::add_file_text`]), classifies or checks each, and
//! [`ListBuilder::build`]s an immutable [`List`] (`Send + Sync`).
//! [`LoginMap`] is the login-to-senders map of Postfix's
//! `smtpd_sender_login_maps`.
//!
//! # Entries
//!
//! | entry | kind | matches |
//! |---|---|---|
//! | `192.0.2.0/24`, `192.0.2.1`, `2001:db8::/32`, `::1` | cidr | an IP address in the network |
//! | `example.com` | domain | that domain (any case, trailing dot or not) |
//! | `.example.com` | domain | that domain and all its subdomains |
//! | `joe@example.com` | address | that address |
//! | `joe@` | address | any address with that local part |
//! | `@example.com` / `@.example.com` | address | any address in the domain / in it or a subdomain |
//! | `<>` | address | the null sender |
//! | `"any text"` | string | exactly that value, case-sensitive |
//! | `*.dyn.example.net`, `mail?.*`, `[a-f]*` | glob | the whole value, ignoring case |
//! | `/^[0-9]+@/i` | regex | anywhere in the value; `i`: ignoring case |
//!
//! A list declared without a kind classifies each entry by its shape, in this
//! order: a `/regex/` is a regex; text with `*`, `?` or `[` is a glob; text
//! with `@` (or `<>`) is an address; text with `:` or `/` or made only of
//! digits and dots is a CIDR; other text is a domain. A *quoted* entry that
//! does not fit the shape it was classified as (spaces, say) is a string; a
//! bare one is an error. A list declared with a [`ListKind`] takes every entry
//! as that kind and refuses what does not fit (`string` and `glob` lists take
//! any text, bare or quoted; `regex` lists only `/regex/`).
//!
//! # Lookups
//!
//! Each lookup consults some kinds of entries ([`Lookup::consults`]); a list
//! with none of them can never match, which the policy compiler reports as a
//! type error ([`List::can_match`]).
//!
//! | lookup | consults |
//! |---|---|
//! | [`List::contains_ip`] | cidr |
//! | [`List::contains_domain`] | domain, glob, regex |
//! | [`List::contains_address`] | address, domain (on the address's domain), glob, regex (on the whole address) |
//! | [`List::contains_bytes`] | string, glob, regex |
//!
//! Normalisation: domains and addresses compare ignoring ASCII case (as
//! Postfix, which lower-cases lookup keys), local parts included; one trailing
//! dot on a domain is ignored. Non-ASCII bytes compare exactly. Strings
//! compare exactly, case-sensitive. Globs always ignore case; regexes ignore
//! case only with the `i` flag, and see the value as sent (before lower-casing,
//! with the trailing dot of a domain removed). IPv4-mapped IPv6 addresses
//! (`::ffff:192.0.2.1`) match IPv4 entries; see [CIDR lookups](self#cidr-lookups).
//!
//! # Globs and regexes
//!
//! A glob matches the whole value, ignoring case: `*` is any run of bytes
//! (dots and `@` included: `*.example.com` matches `a.b.example.com`, not
//! `example.com`), `?` is one character, `[abc]`, `[a-z]`, `[!a-z]` (or
//! `[^a-z]`) a character class, and `\` makes the next character literal.
//!
//! A regex is `/pattern/` in the syntax of Rust's `regex` crate (no
//! look-around, no backreferences: matching time is linear in the input,
//! whatever the pattern), searched anywhere in the value (anchor it with `^`
//! and `$`), case-sensitive unless written `/pattern/i`, matched on bytes (a
//! value that is not UTF-8 is still matched). A pattern that does not compile,
//! or compiles to more than [`MAX_PATTERN_COMPILED_BYTES`], is refused at its
//! entry.
//!
//! # Cost
//!
//! - **cidr**: sorted, merged ranges; a lookup is one binary search
//!   (`O(log n)`), never a scan. 8 bytes per IPv4 range, 32 per IPv6 range.
//! - **domain, address, string**: an open-addressing hash table with the keys
//!   back to back in one arena: a key costs its length, a 16-byte record, and
//!   8 to 16 bytes of slots. The hasher is ahash's runtime-seeded `RandomState`
//!   (lookups hash client-controlled names). A domain lookup probes once for
//!   the name, and once for each parent domain with as many labels as some
//!   `.domain` entry has (so a 100-label name costs a few probes, not 100).
//! - **glob, regex**: compiled together into one `regex::bytes::RegexSet`,
//!   matched in a single pass; cost grows with the patterns, so prefer
//!   domain entries (`.example.com`) to globs (`*.example.com`) for long lists.
//!   The first 16 globs of a simple shape (`*.example`, `host*`, `name`, ASCII,
//!   no `?` or `[`) are matched by comparing bytes instead, with the same
//!   result (case folded as the regex folds it) for a fraction of the cost.
//!
//! Measured (`cargo bench -p policyd-benches --bench lists`, medians, release
//! build on a shared 2-core x86-64 VM, so ranges over runs; bytes from
//! [`List::heap_bytes`]):
//!
//! | list | heap bytes per entry | lookup |
//! |---|---|---|
//! | 10,000 CIDRs (80 % IPv4 /16–/32, 20 % IPv6 /32–/64) | 12.7 | 13–19 ns IPv4 hit or miss, 16–17 ns IPv6 |
//! | 10,000 domains (about 14 bytes each, half `.domain`) | 44.1 | 23–26 ns exact hit, 30 ns subdomain hit (4 labels), 37–42 ns miss (5 labels), 20 ns sender address by its domain |
//! | 20 globs and regexes | (compiled set, not counted) | 56 ns hit, 26–30 ns miss on a host name |
//!
//! Building from the text of a 100,000-line list file, parsing included:
//! 17–23 ms for domains (41.5 bytes per entry), 14–23 ms for CIDRs (11.9
//! bytes per entry), 20–27 ms for domains and CIDRs mixed and classified by
//! shape (26.9 bytes per entry): about a quarter of a microsecond per entry.
//!
//! # CIDR lookups
//!
//! An IPv6 entry inside `::ffff:0:0/96` is stored as the IPv4 network it maps.
//! Looking up an IPv4-mapped IPv6 address checks the IPv4 entries with the
//! IPv4 address it maps, and the IPv6 entries with the address as is. So
//! `192.0.2.0/24` matches `::ffff:192.0.2.1`, while `::/0` ("every IPv6
//! address") does not match the IPv4 address `192.0.2.1`.
//!
//! # Example
//!
//! ```
//! use policy_core::list::{EntryToken, ListBuilder, ListKind, Lookup};
//! use policy_core::Address;
//!
//! let mut builder = ListBuilder::new(None);
//! assert_eq!(builder.add(EntryToken::Bare("10.0.0.0/8"))?, ListKind::Cidr);
//! assert_eq!(builder.add(EntryToken::Bare(".spam.example"))?, ListKind::Domain);
//! assert_eq!(builder.add(EntryToken::Quoted("bad@"))?, ListKind::Address);
//! builder.add_file_text("# more\n*.dyn.example.net\n/^[0-9]+@/i\n").map_err(|e| e[0].clone())?;
//! let list = builder.build()?;
//!
//! assert!(list.contains_ip("10.1.2.3".parse()?));
//! assert!(list.contains_domain(b"MX.Spam.Example."));
//! assert!(list.contains_address(&Address::new(b"Bad@example.org")));
//! assert!(list.contains_address(&Address::new(b"12345@example.org")));
//! assert!(list.contains_domain(b"host-7.dyn.example.net"));
//! assert!(!list.contains_domain(b"example.org"));
//! assert!(list.can_match(Lookup::Ip) && list.can_match(Lookup::Bytes));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cidr;
mod domain;
mod file;
mod keyset;
mod logins;
mod pattern;

use std::fmt;
use std::net::IpAddr;

use regex::bytes::RegexSet;

use crate::request::Address;
use keyset::{KeySet, KeySetFull, MAX_KEY_BYTES};

pub use logins::{LoginEntryError, LoginMap, LoginMapBuilder, LoginPart, Owners};
pub use pattern::{MAX_PATTERN_COMPILED_BYTES, MAX_PATTERN_SET_COMPILED_BYTES};

/// The most entries one list may hold (duplicates counted). Ten times the
/// largest public block lists in common use; it bounds the memory and build
/// time a list file can cost (about 50 bytes and well under a microsecond per
/// entry, so at most about 0.5 GB and a few seconds).
pub const MAX_LIST_ENTRIES: usize = 10_000_000;

/// The longest string, glob or regex entry, in bytes. Longer than any header
/// or attribute value worth matching exactly; it bounds what one line of a
/// list file can cost.
pub const MAX_ENTRY_BYTES: usize = 4096;

/// The longest domain, in bytes, without the trailing dot: the DNS limit
/// (RFC 1035: 255 octets on the wire is 253 characters of text).
pub const MAX_DOMAIN_BYTES: usize = 253;

/// The longest address entry, in bytes: twice RFC 5321's 256-octet path
/// limit, for tolerance. Longer addresses cannot be in the hash tables, so a
/// lookup of one skips them (globs and regexes still see it) and uses a stack
/// buffer of this size for lower-casing.
pub const MAX_ADDRESS_BYTES: usize = 512;

/// The most errors reported for one list or logins file. A file that is not
/// a list at all (a binary, the wrong file) would otherwise yield one error
/// per line, many times the file's size in memory; after this many the file
/// is abandoned with one last error saying so.
pub const MAX_FILE_ERRORS: usize = 1000;

/// The last error of a file abandoned after [`MAX_FILE_ERRORS`] errors.
pub(crate) const fn too_many_errors() -> EntryError {
    EntryError::new(
        EntryErrorKind::TooMany,
        "too many errors, the rest of the file was not read",
        "a list file (is this the right file?)",
    )
}

const _: () = assert!(MAX_ENTRY_BYTES <= MAX_KEY_BYTES && MAX_ADDRESS_BYTES <= MAX_KEY_BYTES);

/// The kind of a list entry, and the optional kind keyword of a list
/// declaration (`list NAME cidr { ... }`). Displays as the keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListKind {
    /// IPv4 and IPv6 addresses and networks: `192.0.2.0/24`, `::1`.
    Cidr,
    /// Domains: `example.com` (exactly), `.example.com` (and subdomains).
    Domain,
    /// Addresses: `user@domain`, `user@`, `@domain`, `<>`.
    Address,
    /// Exact, case-sensitive strings.
    String,
    /// Globs over the whole value, ignoring case: `*.example.com`.
    Glob,
    /// Regular expressions: `/^[0-9]+@/i`.
    Regex,
}

impl ListKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Cidr,
        Self::Domain,
        Self::Address,
        Self::String,
        Self::Glob,
        Self::Regex,
    ];

    /// The keyword: `cidr`, `domain`, `address`, `string`, `glob`, `regex`.
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::Cidr => "cidr",
            Self::Domain => "domain",
            Self::Address => "address",
            Self::String => "string",
            Self::Glob => "glob",
            Self::Regex => "regex",
        }
    }

    /// The kind named by `keyword` (exact, lower case), if any.
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.keyword() == keyword)
    }

    /// What an entry of this kind looks like, for error messages.
    pub const fn expected(self) -> &'static str {
        match self {
            Self::Cidr => "a CIDR entry (192.0.2.0/24, 2001:db8::/32, or one address)",
            Self::Domain => "a domain entry (example.com, or .example.com for subdomains too)",
            Self::Address => "an address entry (user@domain, user@, @domain or <>)",
            Self::String => "a string entry (a bare word or a \"quoted string\")",
            Self::Glob => "a glob entry (a bare word or a \"quoted string\" with * ? [ ])",
            Self::Regex => "a regex entry (/pattern/ or /pattern/i)",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A set of [`ListKind`]s: which kinds of entries a list holds, or which a
/// [`Lookup`] consults. Displays as `cidr, domain` (`nothing` when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u8);

impl KindSet {
    /// No kind.
    pub const EMPTY: Self = Self(0);

    /// The set of the given kinds.
    pub const fn of(kinds: &[ListKind]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < kinds.len() {
            bits |= kinds[i].bit();
            i += 1;
        }
        Self(bits)
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: ListKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Add `kind`.
    pub fn insert(&mut self, kind: ListKind) {
        self.0 |= kind.bit();
    }

    /// The kinds in either set.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The kinds in both sets.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`ListKind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ListKind> {
        ListKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        for (i, kind) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(kind.keyword())?;
        }
        Ok(())
    }
}

/// The ways to look something up in a [`List`], for type-checking a policy:
/// which kinds of entries each consults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// [`List::contains_ip`]: an IP address (`client_address`).
    Ip,
    /// [`List::contains_domain`]: a host or domain name (`client_name`,
    /// `helo_name`, `sender_domain`, ...).
    Domain,
    /// [`List::contains_address`]: an envelope address (`sender`, `recipient`).
    Address,
    /// [`List::contains_bytes`]: any other value (`sasl_username`, ...).
    Bytes,
}

impl Lookup {
    /// The kinds of entries this lookup consults; others never match it.
    pub const fn consults(self) -> KindSet {
        match self {
            Self::Ip => KindSet::of(&[ListKind::Cidr]),
            Self::Domain => KindSet::of(&[ListKind::Domain, ListKind::Glob, ListKind::Regex]),
            Self::Address => KindSet::of(&[
                ListKind::Address,
                ListKind::Domain,
                ListKind::Glob,
                ListKind::Regex,
            ]),
            Self::Bytes => KindSet::of(&[ListKind::String, ListKind::Glob, ListKind::Regex]),
        }
    }
}

/// One entry as the policy lexer read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryToken<'a> {
    /// A bare word: a run of characters other than whitespace, `{ } " #`.
    Bare(&'a str),
    /// A `"quoted string"`'s value, escapes already resolved.
    Quoted(&'a str),
    /// A `/regex/flags`: the pattern with `\/` already turned into `/`, and
    /// whether the `i` flag was given.
    Regex {
        /// The pattern, `regex` crate syntax.
        pattern: &'a str,
        /// `/.../i`.
        case_insensitive: bool,
    },
}

/// What went wrong with an entry (the broad class; [`EntryError`] has the words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryErrorKind {
    /// The entry is malformed for the kind it has or was classified as.
    Syntax,
    /// The entry cannot be of the list's declared kind (a `/regex/` in a `cidr` list).
    WrongKind,
    /// A CIDR whose address has bits set after the prefix (`10.1.0.0/8`).
    HostBits,
    /// The entry is longer than its limit ([`MAX_ENTRY_BYTES`], [`MAX_ADDRESS_BYTES`]).
    TooLong,
    /// The list is full ([`MAX_LIST_ENTRIES`]).
    TooMany,
    /// A glob or regex that does not compile.
    Pattern,
    /// The list's globs and regexes together exceed [`MAX_PATTERN_SET_COMPILED_BYTES`].
    TooComplex,
    /// A sender that appears twice in a logins map.
    Duplicate,
}

/// An entry that could not be added to a list, naming what was expected.
///
/// Displays as `PROBLEM; expected EXPECTED`, with the `regex` crate's reason
/// in parentheses for patterns: `invalid regular expression (unclosed group);
/// expected a regular expression in the syntax of Rust's `regex` crate ...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryError {
    kind: EntryErrorKind,
    problem: &'static str,
    expected: &'static str,
    /// The `regex` crate's one-line reason, for patterns.
    detail: Option<Box<str>>,
}

impl EntryError {
    pub(crate) const fn new(
        kind: EntryErrorKind,
        problem: &'static str,
        expected: &'static str,
    ) -> Self {
        Self {
            kind,
            problem,
            expected,
            detail: None,
        }
    }

    pub(crate) fn with_detail(mut self, detail: String) -> Self {
        self.detail = Some(detail.into_boxed_str());
        self
    }

    /// The broad class of the error.
    pub fn kind(&self) -> EntryErrorKind {
        self.kind
    }

    /// What is wrong, e.g. `prefix length out of range`.
    pub fn problem(&self) -> &'static str {
        self.problem
    }

    /// What was expected, e.g. `a prefix length of at most 32 for IPv4 and 128 for IPv6`.
    pub fn expected(&self) -> &'static str {
        self.expected
    }

    /// For globs and regexes, the `regex` crate's reason (`unclosed group`).
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.problem)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        write!(f, "; expected {}", self.expected)
    }
}

impl std::error::Error for EntryError {}

/// An error in a list or logins file: the line and column (both 1-based; the
/// column counts characters and points at the entry, or at the unexpected text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileEntryError {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong.
    pub error: EntryError,
}

impl fmt::Display for FileEntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.error
        )
    }
}

impl std::error::Error for FileEntryError {}

/// Builds a [`List`] from entries. See the [module docs](self) for the entry
/// shapes and how a list without a declared kind classifies them.
#[derive(Debug, Clone)]
pub struct ListBuilder {
    declared: Option<ListKind>,
    kinds: KindSet,
    len: usize,
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    domains: KeySet,
    domain_flags: u8,
    tree_labels: domain::TreeLabels,
    addresses: KeySet,
    strings: KeySet,
    /// Regex sources (globs translated) for the pattern set.
    patterns: Vec<String>,
    /// The first [`pattern::MAX_SIMPLE_GLOBS`] globs of a simple shape,
    /// matched without the pattern set.
    simple_globs: Vec<pattern::SimpleGlob>,
    /// Reused for normalised keys.
    key: Vec<u8>,
}

impl ListBuilder {
    /// A builder for a list of the declared `kind`, or classifying each entry
    /// by its shape when `None`.
    pub fn new(kind: Option<ListKind>) -> Self {
        Self {
            declared: kind,
            kinds: KindSet::EMPTY,
            len: 0,
            v4: Vec::new(),
            v6: Vec::new(),
            domains: KeySet::default(),
            domain_flags: 0,
            tree_labels: 0,
            addresses: KeySet::default(),
            strings: KeySet::default(),
            patterns: Vec::new(),
            simple_globs: Vec::new(),
            key: Vec::new(),
        }
    }

    /// The declared kind, if any.
    pub fn declared_kind(&self) -> Option<ListKind> {
        self.declared
    }

    /// Entries added so far (duplicates counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add one entry: classify it by shape (no declared kind) or check it
    /// against the declared kind, validate it, and store it. Returns the kind
    /// it was stored as. Globs and regexes are compiled here, so an invalid
    /// one is reported at its entry.
    pub fn add(&mut self, entry: EntryToken<'_>) -> Result<ListKind, EntryError> {
        if self.len >= MAX_LIST_ENTRIES {
            return Err(EntryError::new(
                EntryErrorKind::TooMany,
                "the list has too many entries",
                "at most 10,000,000 entries in one list",
            ));
        }
        let kind = match self.declared {
            Some(kind) => {
                self.add_as(kind, entry)?;
                kind
            }
            None => self.add_classified(entry)?,
        };
        self.kinds.insert(kind);
        self.len += 1;
        Ok(kind)
    }

    fn add_classified(&mut self, entry: EntryToken<'_>) -> Result<ListKind, EntryError> {
        let (text, quoted) = match entry {
            EntryToken::Regex { .. } => {
                self.add_as(ListKind::Regex, entry)?;
                return Ok(ListKind::Regex);
            }
            EntryToken::Bare(text) => (text, false),
            EntryToken::Quoted(text) => (text, true),
        };
        let kind = if pattern::is_glob(text) {
            ListKind::Glob
        } else if text.contains('@') || text == "<>" {
            ListKind::Address
        } else if cidr::looks_like_ip(text) {
            ListKind::Cidr
        } else {
            ListKind::Domain
        };
        match self.add_as(kind, entry) {
            Ok(()) => Ok(kind),
            Err(error) if quoted && error.kind != EntryErrorKind::TooMany => {
                self.add_as(ListKind::String, entry)?;
                Ok(ListKind::String)
            }
            Err(error) => Err(error),
        }
    }

    fn add_as(&mut self, kind: ListKind, entry: EntryToken<'_>) -> Result<(), EntryError> {
        let text = match (kind, entry) {
            (
                ListKind::Regex,
                EntryToken::Regex {
                    pattern,
                    case_insensitive,
                },
            ) => {
                check_length(pattern)?;
                let source = pattern::regex_source(pattern, case_insensitive)?;
                self.patterns.push(source);
                return Ok(());
            }
            (ListKind::Regex, _) | (_, EntryToken::Regex { .. }) => {
                return Err(EntryError::new(
                    EntryErrorKind::WrongKind,
                    "the entry does not fit the list's declared kind",
                    kind.expected(),
                ))
            }
            (_, EntryToken::Bare(text) | EntryToken::Quoted(text)) => text,
        };
        self.key.clear();
        match kind {
            ListKind::Cidr => match cidr::parse(text)? {
                cidr::Network::V4(first, last) => self.v4.push((first, last)),
                cidr::Network::V6(first, last) => self.v6.push((first, last)),
            },
            ListKind::Domain => {
                let tree = domain::normalize_domain(text, true, &mut self.key)?;
                let flags = if tree {
                    domain::DOMAIN_TREE
                } else {
                    domain::DOMAIN_EXACT
                };
                insert(&mut self.domains, &self.key, flags)?;
                self.domain_flags |= flags;
                if tree {
                    self.tree_labels |= domain::label_bit(&self.key);
                }
            }
            ListKind::Address => match domain::normalize_address(text, &mut self.key)? {
                domain::AddressEntry::Null | domain::AddressEntry::Key => {
                    insert(&mut self.addresses, &self.key, 1)?;
                }
                domain::AddressEntry::Domain(flags) => {
                    insert(&mut self.domains, &self.key, flags)?;
                    self.domain_flags |= flags;
                    if flags == domain::AT_TREE {
                        self.tree_labels |= domain::label_bit(&self.key);
                    }
                }
            },
            ListKind::String => {
                check_length(text)?;
                insert(&mut self.strings, text.as_bytes(), 1)?;
            }
            ListKind::Glob => {
                check_length(text)?;
                let source = pattern::glob_to_regex(text)?;
                match pattern::SimpleGlob::new(text) {
                    Some(simple) if self.simple_globs.len() < pattern::MAX_SIMPLE_GLOBS => {
                        self.simple_globs.push(simple);
                    }
                    _ => {
                        pattern::check_glob(&source)?;
                        self.patterns.push(source);
                    }
                }
            }
            ListKind::Regex => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Add every entry of a list file's text (format: see below). Every
    /// error is reported, each with its line and column (up to
    /// [`MAX_FILE_ERRORS`], then one more saying the rest was not read); the
    /// entries without errors are added either way.
    ///
    /// One entry a line: a bare word, a `"quoted string"` (escapes `\"` and
    /// `\\`) or a `/regex/` (flag `i`; `\/` for a slash), optionally followed
    /// by a `#` comment. Blank lines, lines starting with `#`, and leading and
    /// trailing whitespace are ignored; lines end with `\n` or `\r\n`.
    pub fn add_file_text(&mut self, text: &str) -> Result<(), Vec<FileEntryError>> {
        let mut errors = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            if errors.len() == MAX_FILE_ERRORS {
                errors.push(FileEntryError {
                    line: line_number,
                    column: 1,
                    error: too_many_errors(),
                });
                break;
            }
            let at = |offset, error| FileEntryError {
                line: line_number,
                column: file::column(line, offset),
                error,
            };
            match file::scan_line(line) {
                Ok(None) => {}
                Ok(Some((offset, entry))) => {
                    if let Err(error) = self.add(entry.token()) {
                        let too_many = error.kind == EntryErrorKind::TooMany;
                        errors.push(at(offset, error));
                        if too_many {
                            break;
                        }
                    }
                }
                Err((offset, error)) => errors.push(at(offset, error)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Build the list: sort and merge the CIDR ranges, compile the globs and
    /// regexes into one set. Fails only when that set is too big
    /// ([`MAX_PATTERN_SET_COMPILED_BYTES`]).
    pub fn build(self) -> Result<List, EntryError> {
        let patterns = pattern::compile_set(&self.patterns)?;
        let mut domains = self.domains;
        let mut addresses = self.addresses;
        let mut strings = self.strings;
        domains.shrink();
        addresses.shrink();
        strings.shrink();
        // A declared kind counts even when no entry of it is present (an
        // empty or comment-only list file): type checks follow the declaration.
        let kinds = match self.declared {
            Some(kind) => self.kinds.union(KindSet::of(&[kind])),
            None => self.kinds,
        };
        Ok(List {
            kinds,
            len: self.len,
            cidrs: cidr::CidrSet::new(self.v4, self.v6),
            domains,
            domain_flags: self.domain_flags,
            tree_labels: self.tree_labels,
            addresses,
            strings,
            pattern_source_bytes: self.patterns.iter().map(String::capacity).sum::<usize>()
                + self
                    .simple_globs
                    .iter()
                    .map(pattern::SimpleGlob::heap_bytes)
                    .sum::<usize>(),
            patterns,
            simple_globs: self.simple_globs.into_boxed_slice(),
        })
    }
}

fn check_length(text: &str) -> Result<(), EntryError> {
    if text.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::new(
            EntryErrorKind::TooLong,
            "the entry is too long",
            "a string, glob or regex of at most 4096 bytes",
        )
        .with_detail(format!("{} bytes", text.len())));
    }
    Ok(())
}

fn insert(set: &mut KeySet, key: &[u8], flags: u8) -> Result<(), EntryError> {
    set.insert(key, flags).map(drop).map_err(|full| {
        EntryError::new(
            EntryErrorKind::TooMany,
            match full {
                KeySetFull::Bytes => "the list's entries take more than 4 GiB",
                KeySetFull::Keys => "the list has too many entries",
                KeySetFull::KeyTooLong => "the entry is too long",
            },
            "a smaller list",
        )
    })
}

/// An immutable, compiled list (`Send + Sync`). Every lookup allocates
/// nothing (the regex set's per-thread cache is filled on first use). See the
/// [module docs](self) for what each lookup consults and how it normalises.
#[derive(Debug, Clone)]
pub struct List {
    kinds: KindSet,
    len: usize,
    cidrs: cidr::CidrSet,
    /// Domain entries (`example.com`, `.example.com`) and address entries for
    /// whole domains (`@example.com`), lower case, flagged by which.
    domains: KeySet,
    /// The union of the flags in `domains`: skip the table when it has no
    /// entry that the lookup consults.
    domain_flags: u8,
    /// The label counts of the subdomain entries in `domains`: which parent
    /// domains a lookup probes.
    tree_labels: domain::TreeLabels,
    /// `user@domain` and `user@` entries, lower case; `<>` as the empty key.
    addresses: KeySet,
    /// String entries, exact bytes.
    strings: KeySet,
    /// The globs and regexes not in `simple_globs`.
    patterns: Option<RegexSet>,
    /// Globs of a simple shape (`*.example`, `host*`, `name`), matched by
    /// comparing bytes: much cheaper than a regex search for a few of them.
    simple_globs: Box<[pattern::SimpleGlob]>,
    pattern_source_bytes: usize,
}

impl List {
    /// Whether `ip` is in one of the CIDR entries. IPv4-mapped IPv6
    /// addresses match IPv4 entries too (see the [module docs](self#cidr-lookups)).
    #[inline]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.cidrs.contains(ip)
    }

    /// Whether the host or domain `name` matches: a domain entry for it (any
    /// case; one trailing dot ignored), a `.domain` entry for it or a parent
    /// domain, or a glob or regex.
    pub fn contains_domain(&self, name: &[u8]) -> bool {
        let name = domain::strip_trailing_dot(name);
        if self.domain_flags & (domain::DOMAIN_EXACT | domain::DOMAIN_TREE) != 0 {
            let mut buf = [0u8; MAX_DOMAIN_BYTES];
            if let Some(lower) = domain::lower_into(name, &mut buf) {
                if domain::matches(
                    &self.domains,
                    lower,
                    domain::DOMAIN_EXACT,
                    domain::DOMAIN_TREE,
                    self.tree_labels,
                ) {
                    return true;
                }
            }
        }
        self.patterns_match(name)
    }

    /// Whether the envelope address matches, ignoring ASCII case throughout
    /// (Postfix lower-cases whole addresses for table lookups): a
    /// `user@domain` entry for it, a `user@` entry for its local part, an
    /// `@domain` / `@.domain` entry or a domain entry for its domain, a glob
    /// or regex on the whole address as sent, or `<>` for the null sender.
    /// An address without `@` is all local part (`postmaster` matches
    /// `postmaster@`).
    pub fn contains_address(&self, address: &Address<'_>) -> bool {
        if address.is_null() {
            return self.addresses.flags(b"").is_some() || self.patterns_match(b"");
        }
        let domain_part = domain::strip_trailing_dot(address.domain);
        let mut buf = [0u8; MAX_ADDRESS_BYTES];
        let local_len = address.local.len();
        // `local@`, then `local@domain`, lower-cased once into `buf`.
        if !self.addresses.is_empty() && domain::lower_into(address.local, &mut buf).is_some() {
            if let Some(at) = buf.get_mut(local_len) {
                *at = b'@';
                if self.addresses.flags(&buf[..=local_len]).is_some() {
                    return true;
                }
                let end = local_len + 1 + domain_part.len();
                if !domain_part.is_empty()
                    && domain::lower_into(domain_part, &mut buf[local_len + 1..]).is_some()
                    && self.addresses.flags(&buf[..end]).is_some()
                {
                    return true;
                }
            }
        }
        if !domain_part.is_empty() && self.domain_flags != 0 {
            let mut buf = [0u8; MAX_DOMAIN_BYTES];
            if let Some(lower) = domain::lower_into(domain_part, &mut buf) {
                if domain::matches(
                    &self.domains,
                    lower,
                    domain::DOMAIN_EXACT | domain::AT_EXACT,
                    domain::DOMAIN_TREE | domain::AT_TREE,
                    self.tree_labels,
                ) {
                    return true;
                }
            }
        }
        self.patterns_match(address.raw)
    }

    /// Whether `value` is a string entry (exact, case-sensitive) or matches a
    /// glob or regex.
    pub fn contains_bytes(&self, value: &[u8]) -> bool {
        (!self.strings.is_empty() && self.strings.flags(value).is_some())
            || self.patterns_match(value)
    }

    #[inline]
    fn patterns_match(&self, value: &[u8]) -> bool {
        self.simple_globs.iter().any(|glob| glob.is_match(value))
            || self
                .patterns
                .as_ref()
                .is_some_and(|set| set.is_match(value))
    }

    /// The kinds of entries the list holds, and its declared kind if any.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Whether `lookup` fits the list: the list holds (or was declared with) a
    /// kind of entry it consults. A policy compiler reports `false` as a type
    /// error. An empty list without a declared kind fits every lookup (and
    /// matches nothing): a list file emptied for the time being must not make
    /// the policy fail to compile.
    pub fn can_match(&self, lookup: Lookup) -> bool {
        self.kinds.is_empty() || !self.kinds.intersection(lookup.consults()).is_empty()
    }

    /// Entries added (duplicates counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held: the ranges, hash tables and key bytes
    /// exactly (by capacity), the patterns by their source text only (the
    /// `regex` crate does not report its compiled size; it is bounded by
    /// [`MAX_PATTERN_SET_COMPILED_BYTES`]).
    pub fn heap_bytes(&self) -> usize {
        self.cidrs.heap_bytes()
            + self.domains.heap_bytes()
            + self.addresses.heap_bytes()
            + self.strings.heap_bytes()
            + self.pattern_source_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(text: &str) -> EntryToken<'_> {
        EntryToken::Bare(text)
    }

    fn quoted(text: &str) -> EntryToken<'_> {
        EntryToken::Quoted(text)
    }

    fn re(pattern: &str, case_insensitive: bool) -> EntryToken<'_> {
        EntryToken::Regex {
            pattern,
            case_insensitive,
        }
    }

    fn list_of(kind: Option<ListKind>, entries: &[EntryToken<'_>]) -> List {
        let mut builder = ListBuilder::new(kind);
        for entry in entries {
            builder
                .add(*entry)
                .unwrap_or_else(|e| panic!("{entry:?}: {e}"));
        }
        builder.build().unwrap()
    }

    fn addr(raw: &str) -> Address<'_> {
        Address::new(raw.as_bytes())
    }

    #[test]
    fn classification_by_shape() {
        let rows: &[(EntryToken<'_>, ListKind)] = &[
            (bare("192.0.2.1"), ListKind::Cidr),
            (bare("192.0.2.0/24"), ListKind::Cidr),
            (bare("::1"), ListKind::Cidr),
            (bare("2001:db8::/32"), ListKind::Cidr),
            (bare("::ffff:10.0.0.0/104"), ListKind::Cidr),
            (bare("example.com"), ListKind::Domain),
            (bare(".example.com"), ListKind::Domain),
            (bare("Example.COM."), ListKind::Domain),
            (bare("localhost"), ListKind::Domain),
            (bare("joe@example.com"), ListKind::Address),
            (bare("joe@"), ListKind::Address),
            (bare("\"a@b\"@example.com"), ListKind::Address),
            (bare("_dmarc.example.com"), ListKind::Domain),
            (bare("x-1.example"), ListKind::Domain),
            (bare("@example.com"), ListKind::Address),
            (bare("@.example.com"), ListKind::Address),
            (bare("<>"), ListKind::Address),
            (bare("*.dyn.*"), ListKind::Glob),
            (bare("mail?.example.com"), ListKind::Glob),
            (bare("[a-z]*@example.com"), ListKind::Glob),
            (re("^[0-9]+@", true), ListKind::Regex),
            (quoted("bad@"), ListKind::Address),
            (quoted("example.org"), ListKind::Domain),
            (quoted("10.0.0.0/8"), ListKind::Cidr),
            (quoted("*.example.org"), ListKind::Glob),
            (quoted("a b c"), ListKind::String),
            (quoted(""), ListKind::String),
            (quoted("10.1.0.0/8"), ListKind::String),
            (quoted("a b@example.com"), ListKind::Address),
            (quoted("x@exa mple.com"), ListKind::String),
            (quoted("[unclosed"), ListKind::String),
            (quoted("C=DE, O=Example"), ListKind::String),
        ];
        for (entry, kind) in rows {
            let mut builder = ListBuilder::new(None);
            assert_eq!(builder.add(*entry), Ok(*kind), "{entry:?}");
            let list = builder.build().unwrap();
            assert_eq!(list.kinds(), KindSet::of(&[*kind]), "{entry:?}");
            assert_eq!(list.len(), 1);
        }
    }

    #[test]
    fn classification_errors() {
        let rows: &[(EntryToken<'_>, EntryErrorKind, &str)] = &[
            (
                bare("192.0.2.0/33"),
                EntryErrorKind::Syntax,
                "prefix length out of range",
            ),
            (
                bare("10.1.0.0/8"),
                EntryErrorKind::HostBits,
                "the address has bits set after the prefix",
            ),
            (
                bare("192.0.2.256"),
                EntryErrorKind::Syntax,
                "not an IP address",
            ),
            (bare("foo:bar"), EntryErrorKind::Syntax, "not an IP address"),
            (bare("a..b"), EntryErrorKind::Syntax, "not a valid domain"),
            (
                bare("exa!mple.com"),
                EntryErrorKind::Syntax,
                "not a valid domain",
            ),
            (bare("."), EntryErrorKind::Syntax, "not a valid domain"),
            (bare("@"), EntryErrorKind::Syntax, "not a valid address"),
            // The field trial's `@@@`, and other text that fits no kind.
            (bare("@@@"), EntryErrorKind::Syntax, "not a valid address"),
            (bare("a@@b"), EntryErrorKind::Syntax, "not a valid address"),
            (bare("@a@b"), EntryErrorKind::Syntax, "not a valid address"),
            (bare("-"), EntryErrorKind::Syntax, "not a valid domain"),
            (bare("_._"), EntryErrorKind::Syntax, "not a valid domain"),
            (
                bare("@-.example"),
                EntryErrorKind::Syntax,
                "not a valid address",
            ),
            (
                bare("joe@.example.com"),
                EntryErrorKind::Syntax,
                "not a valid address",
            ),
            (
                bare("joe@a..b"),
                EntryErrorKind::Syntax,
                "not a valid address",
            ),
            (
                bare("[abc"),
                EntryErrorKind::Pattern,
                "a `[` character class is not closed with `]`",
            ),
            (bare("[z-a]"), EntryErrorKind::Pattern, "invalid glob"),
            (
                re("a(b", false),
                EntryErrorKind::Pattern,
                "invalid regular expression",
            ),
            (
                re("", false),
                EntryErrorKind::Pattern,
                "the regex is empty (it would match everything)",
            ),
        ];
        for (entry, kind, problem) in rows {
            let mut builder = ListBuilder::new(None);
            let error = builder.add(*entry).unwrap_err();
            assert_eq!(
                (error.kind(), error.problem()),
                (*kind, *problem),
                "{entry:?}"
            );
            assert!(builder.is_empty());
        }
        let long = "x".repeat(MAX_ENTRY_BYTES + 1);
        let error = ListBuilder::new(Some(ListKind::String))
            .add(quoted(&long))
            .unwrap_err();
        assert_eq!(error.kind(), EntryErrorKind::TooLong);
        assert!(ListBuilder::new(Some(ListKind::String))
            .add(quoted(&long[1..]))
            .is_ok());
    }

    #[test]
    fn declared_kinds_accept_and_refuse() {
        use ListKind::*;
        // (declared kind, entry, accepted)
        let rows: &[(ListKind, EntryToken<'_>, bool)] = &[
            (Cidr, bare("10.0.0.0/8"), true),
            (Cidr, quoted("::1"), true),
            (Cidr, bare("example.com"), false),
            (Cidr, re("x", false), false),
            (Domain, bare("example.com"), true),
            (Domain, bare(".example.com"), true),
            (Domain, quoted("example.com"), true),
            (Domain, bare("joe@example.com"), false),
            (Domain, bare("10.0.0.1"), false),
            (Domain, bare("*.example.com"), false),
            (Domain, re("x", false), false),
            (Address, bare("joe@example.com"), true),
            (Address, bare("<>"), true),
            (Address, bare("@example.com"), true),
            (Address, bare("example.com"), false),
            (Address, re("x", false), false),
            (String, bare("alice"), true),
            (String, quoted("a b"), true),
            (String, bare("*.x"), true),
            (String, quoted(""), true),
            (String, re("x", false), false),
            (Glob, bare("*.example.com"), true),
            (Glob, bare("plain"), true),
            (Glob, quoted("a b*"), true),
            (Glob, bare("[x"), false),
            (Glob, re("x", false), false),
            (Regex, re("x", false), true),
            (Regex, bare("x"), false),
            (Regex, quoted("x"), false),
        ];
        for (declared, entry, accepted) in rows {
            let mut builder = ListBuilder::new(Some(*declared));
            let result = builder.add(*entry);
            assert_eq!(
                result.is_ok(),
                *accepted,
                "{declared} {entry:?}: {result:?}"
            );
            if let Ok(kind) = result {
                assert_eq!(kind, *declared);
            }
        }
        let error = ListBuilder::new(Some(Cidr))
            .add(re("x", false))
            .unwrap_err();
        assert_eq!(error.kind(), EntryErrorKind::WrongKind);
        assert_eq!(
            error.to_string(),
            "the entry does not fit the list's declared kind; expected a CIDR entry (192.0.2.0/24, 2001:db8::/32, or one address)"
        );
    }

    #[test]
    fn ip_lookups() {
        let list = list_of(
            Some(ListKind::Cidr),
            &[
                bare("10.0.0.0/8"),
                bare("192.0.2.7"),
                bare("2001:db8::/32"),
                bare("::1/128"),
                bare("::ffff:198.51.100.0/120"),
            ],
        );
        let rows: &[(&str, bool)] = &[
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.0.2.7", true),
            ("192.0.2.6", false),
            ("192.0.2.8", false),
            ("::ffff:10.1.2.3", true),
            ("::ffff:192.0.2.7", true),
            ("198.51.100.99", true),
            ("::ffff:198.51.100.99", true),
            ("198.51.101.0", false),
            ("2001:db8::1", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("::1", true),
            ("::2", false),
            ("::", false),
            ("0.0.0.0", false),
        ];
        for (ip, expected) in rows {
            assert_eq!(list.contains_ip(ip.parse().unwrap()), *expected, "{ip}");
        }
        let everything = list_of(None, &[bare("0.0.0.0/0"), bare("::/0")]);
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:1.2.3.4",
        ] {
            assert!(everything.contains_ip(ip.parse().unwrap()), "{ip}");
        }
        let v4_all = list_of(None, &[bare("0.0.0.0/0")]);
        assert!(!v4_all.contains_ip("::".parse().unwrap()));
        assert!(v4_all.contains_ip("::ffff:0.0.0.0".parse().unwrap()));
        let hosts = list_of(
            None,
            &[
                bare("255.255.255.255/32"),
                bare("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
            ],
        );
        assert!(hosts.contains_ip("255.255.255.255".parse().unwrap()));
        assert!(!hosts.contains_ip("255.255.255.254".parse().unwrap()));
        assert!(hosts.contains_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()));
        let no_cidr = list_of(None, &[bare("example.com")]);
        assert!(!no_cidr.contains_ip("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn domain_lookups() {
        let list = list_of(
            None,
            &[
                bare("exact.example"),
                bare(".tree.example"),
                bare("@at.example"),
                bare("Upper.EXAMPLE."),
                bare("xn--bcher-kva.example"),
                bare("bücher.example"),
            ],
        );
        let rows: &[(&[u8], bool)] = &[
            (b"exact.example", true),
            (b"EXACT.Example", true),
            (b"exact.example.", true),
            (b"exact.example..", false),
            (b"sub.exact.example", false),
            (b"tree.example", true),
            (b"a.tree.example", true),
            (b"A.B.TREE.EXAMPLE.", true),
            (b"notree.example", false),
            (b"tree.example.com", false),
            (b"at.example", false),
            (b"upper.example", true),
            (b"xn--bcher-kva.example", true),
            ("bücher.example".as_bytes(), true),
            ("BÜCHER.example".as_bytes(), false),
            (b"example", false),
            (b"", false),
            (b".", false),
            (b"\xff.tree.example", true),
        ];
        for (name, expected) in rows {
            assert_eq!(
                list.contains_domain(name),
                *expected,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        let long = format!("{}.tree.example", "a".repeat(300));
        assert!(
            !list.contains_domain(long.as_bytes()),
            "names longer than any entry never match"
        );
        let patterns = list_of(
            None,
            &[
                bare("*.dyn.example"),
                re(r"^mx[0-9]+\.", false),
                re(r"^smtp\.", true),
            ],
        );
        assert!(patterns.contains_domain(b"host-1.DYN.example."));
        assert!(!patterns.contains_domain(b"dyn.example"));
        assert!(patterns.contains_domain(b"mx12.example.net"));
        assert!(
            !patterns.contains_domain(b"MX12.example.net"),
            "regexes are case-sensitive without /i"
        );
        assert!(patterns.contains_domain(b"SMTP.example.net"));
        assert!(!patterns.contains_domain(b""));
    }

    #[test]
    fn address_lookups() {
        let list = list_of(
            None,
            &[
                bare("Joe@Example.com"),
                bare("postmaster@"),
                bare("@whole.example"),
                bare("@.tree.example"),
                bare(".dom-tree.example"),
                bare("dom.example"),
                bare("*@glob.example"),
                re(r"^[0-9]+@", false),
            ],
        );
        let rows: &[(&str, bool)] = &[
            ("joe@example.com", true),
            ("JOE@EXAMPLE.COM", true),
            ("joe@example.com.", true),
            ("joe2@example.com", false),
            ("joe@sub.example.com", false),
            ("postmaster@anywhere.example", true),
            ("PostMaster@x", true),
            ("postmaster", true),
            ("postmasters@x.example", false),
            ("anyone@whole.example", true),
            ("anyone@sub.whole.example", false),
            ("anyone@tree.example", true),
            ("anyone@a.b.tree.example", true),
            ("anyone@dom-tree.example", true),
            ("anyone@x.dom-tree.example", true),
            ("anyone@dom.example", true),
            ("anyone@x.dom.example", false),
            ("x@GLOB.example", true),
            ("12345@example.net", true),
            ("a12345@example.net", false),
            ("", false),
            ("dom.example", false),
            ("@", false),
        ];
        for (raw, expected) in rows {
            assert_eq!(list.contains_address(&addr(raw)), *expected, "{raw}");
        }
        let null = list_of(None, &[bare("<>")]);
        assert!(null.contains_address(&addr("")));
        assert!(!null.contains_address(&addr("joe@example.com")));
        assert!(
            !null.contains_bytes(b""),
            "<> is an address entry, not a string"
        );
        let empty_regex = list_of(None, &[re("^$", false)]);
        assert!(empty_regex.contains_address(&addr("")));
        let long_local = format!("{}@whole.example", "a".repeat(MAX_ADDRESS_BYTES));
        assert!(
            list.contains_address(&addr(&long_local)),
            "an over-long local part still matches by domain"
        );
    }

    #[test]
    fn bytes_lookups() {
        let list = list_of(
            Some(ListKind::String),
            &[
                bare("alice"),
                quoted("Bob Smith"),
                quoted(""),
                quoted("ünï"),
            ],
        );
        let rows: &[(&[u8], bool)] = &[
            (b"alice", true),
            (b"Alice", false),
            (b"alice ", false),
            (b"Bob Smith", true),
            (b"bob smith", false),
            (b"", true),
            ("ünï".as_bytes(), true),
            (b"\xff", false),
        ];
        for (value, expected) in rows {
            assert_eq!(
                list.contains_bytes(value),
                *expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        let mixed = list_of(
            None,
            &[
                quoted("C=DE, O=Example"),
                bare("adm*"),
                re("(?-u)^\\xff", false),
            ],
        );
        assert!(mixed.contains_bytes(b"C=DE, O=Example"));
        assert!(mixed.contains_bytes(b"ADMIN"), "globs ignore case");
        assert!(mixed.contains_bytes(b"\xff\xfe"));
        assert!(!mixed.contains_bytes(b"c=de, o=example"));
        let domains_only = list_of(None, &[bare("example.com")]);
        assert!(
            !domains_only.contains_bytes(b"example.com"),
            "domain entries are not strings"
        );
    }

    #[test]
    fn kinds_and_can_match() {
        let list = list_of(None, &[bare("10.0.0.0/8"), bare("example.com")]);
        assert_eq!(
            list.kinds(),
            KindSet::of(&[ListKind::Cidr, ListKind::Domain])
        );
        assert_eq!(list.kinds().to_string(), "cidr, domain");
        assert!(list.can_match(Lookup::Ip));
        assert!(list.can_match(Lookup::Domain));
        assert!(list.can_match(Lookup::Address));
        assert!(!list.can_match(Lookup::Bytes));
        let domains = list_of(None, &[bare("example.com")]);
        assert!(!domains.can_match(Lookup::Ip));
        let globs = list_of(None, &[bare("*x")]);
        assert!(!globs.can_match(Lookup::Ip));
        assert!(
            globs.can_match(Lookup::Bytes)
                && globs.can_match(Lookup::Address)
                && globs.can_match(Lookup::Domain)
        );
        let empty = ListBuilder::new(None).build().unwrap();
        assert!(empty.is_empty() && empty.kinds().is_empty());
        assert_eq!(empty.kinds().to_string(), "nothing");
        // An empty list without a declared kind fits every lookup (and
        // matches nothing); with a declared kind, the declaration decides.
        for lookup in [Lookup::Ip, Lookup::Domain, Lookup::Address, Lookup::Bytes] {
            assert!(empty.can_match(lookup));
        }
        assert!(!empty.contains_ip("192.0.2.1".parse().unwrap()) && !empty.contains_bytes(b"x"));
        let empty_cidr = ListBuilder::new(Some(ListKind::Cidr)).build().unwrap();
        assert_eq!(empty_cidr.kinds(), KindSet::of(&[ListKind::Cidr]));
        assert!(empty_cidr.can_match(Lookup::Ip) && !empty_cidr.can_match(Lookup::Domain));
        assert_eq!(
            Lookup::Address.consults().to_string(),
            "domain, address, glob, regex"
        );
        for kind in ListKind::ALL {
            assert_eq!(ListKind::from_keyword(kind.keyword()), Some(kind));
            assert_eq!(kind.to_string(), kind.keyword());
        }
        assert_eq!(ListKind::from_keyword("CIDR"), None);
    }

    #[test]
    fn duplicates_count_but_store_once() {
        let list = list_of(
            None,
            &[
                bare("example.com"),
                bare("EXAMPLE.com."),
                bare("10.0.0.0/8"),
                bare("10.0.0.0/8"),
            ],
        );
        assert_eq!(list.len(), 4);
        assert_eq!(list.domains.len(), 1);
        assert!(list.contains_domain(b"example.com"));
        // Exact and subtree entries for the same name merge.
        let both = list_of(None, &[bare("example.com"), bare(".example.com")]);
        assert!(both.contains_domain(b"a.example.com"));
    }

    #[test]
    fn file_text_entries_and_errors() {
        let text = "# comment\n\n  10.0.0.0/8   # office\nexample.com\n\"a b\"\n/^x/i\n\
                    bad..domain\n  10.1.0.0/8\n/a(/\nx y\n\"open\nfine.example\r\n";
        let mut builder = ListBuilder::new(None);
        let errors = builder.add_file_text(text).unwrap_err();
        let got: Vec<(u32, u32, &str)> = errors
            .iter()
            .map(|e| (e.line, e.column, e.error.problem()))
            .collect();
        assert_eq!(
            got,
            vec![
                (7, 1, "not a valid domain"),
                (8, 3, "the address has bits set after the prefix"),
                (9, 1, "invalid regular expression"),
                (10, 3, "more text after the entry"),
                (11, 1, "the string is not closed"),
            ]
        );
        assert_eq!(builder.len(), 5);
        let list = builder.build().unwrap();
        assert!(list.contains_domain(b"fine.example"));
        assert!(list.contains_bytes(b"a b"));
        assert!(list.contains_bytes(b"X marks"));
        assert_eq!(
            errors[1].to_string(),
            "line 8, column 3: the address has bits set after the prefix; expected a network address \
             whose bits after the prefix are zero (10.0.0.0/8, not 10.1.0.0/8)"
        );
        assert_eq!(errors[2].error.detail(), Some("unclosed group"));
        assert!(errors[2].to_string().starts_with(
            "line 9, column 1: invalid regular expression (unclosed group); expected"
        ));

        let mut declared = ListBuilder::new(Some(ListKind::Domain));
        let errors = declared
            .add_file_text("ok.example\n  10.0.0.1\n/re/\n")
            .unwrap_err();
        assert_eq!(
            errors
                .iter()
                .map(|e| (e.line, e.column, e.error.kind()))
                .collect::<Vec<_>>(),
            vec![
                (2, 3, EntryErrorKind::Syntax),
                (3, 1, EntryErrorKind::WrongKind)
            ]
        );
        let mut clean = ListBuilder::new(None);
        assert_eq!(clean.add_file_text(""), Ok(()));
        assert_eq!(clean.add_file_text("a.example\nb.example"), Ok(()));
        assert_eq!(clean.len(), 2);
    }

    #[test]
    fn a_file_of_errors_stops_after_the_limit() {
        let text = "bad..entry\n".repeat(MAX_FILE_ERRORS + 500);
        let errors = ListBuilder::new(None).add_file_text(&text).unwrap_err();
        assert_eq!(errors.len(), MAX_FILE_ERRORS + 1);
        let last = errors.last().unwrap();
        assert_eq!(
            (last.line as usize, last.error.kind()),
            (MAX_FILE_ERRORS + 1, EntryErrorKind::TooMany)
        );
        let logins = "nonsense\n".repeat(MAX_FILE_ERRORS + 500);
        let errors = LoginMap::parse(&logins).unwrap_err();
        assert_eq!(errors.len(), MAX_FILE_ERRORS + 1);
        assert_eq!(errors.last().unwrap().error.kind(), EntryErrorKind::TooMany);
    }

    #[test]
    fn list_is_send_sync_and_reports_heap() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<List>();
        assert_send_sync::<LoginMap>();
        let list = list_of(
            None,
            &[bare("example.com"), bare("10.0.0.0/8"), bare("*.x")],
        );
        assert!(list.heap_bytes() > "example.com".len() + 8);
    }
}
