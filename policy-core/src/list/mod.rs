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
//! (`::ffff:192.0.2.1`) match IPv4 entries; see [`cidr`](self#cidr-lookups).
//!
//! # Cost
//!
//! - **cidr**: sorted, merged ranges; a lookup is one binary search
//!   (`O(log n)`), never a scan. 8 bytes per IPv4 range, 32 per IPv6 range.
//! - **domain, address, string**: an open-addressing hash table with the keys
//!   back to back in one arena: a key costs its length, a 16-byte record, and
//!   8 to 16 bytes of slots. The hasher is ahash's runtime-seeded `RandomState`
//!   (lookups hash client-controlled names). A domain lookup probes once for
//!   the name and once per parent domain if the list has subdomain entries.
//! - **glob, regex**: compiled together into one `regex::bytes::RegexSet`,
//!   matched in a single pass; cost grows with the patterns, so prefer
//!   domain entries (`.example.com`) to globs (`*.example.com`) for long lists.
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
    addresses: KeySet,
    strings: KeySet,
    /// Regex sources (globs translated) for the pattern set.
    patterns: Vec<String>,
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
            addresses: KeySet::default(),
            strings: KeySet::default(),
            patterns: Vec::new(),
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
            }
            ListKind::Address => match domain::normalize_address(text, &mut self.key)? {
                domain::AddressEntry::Null | domain::AddressEntry::Key => {
                    insert(&mut self.addresses, &self.key, 1)?;
                }
                domain::AddressEntry::Domain(flags) => {
                    insert(&mut self.domains, &self.key, flags)?;
                    self.domain_flags |= flags;
                }
            },
            ListKind::String => {
                check_length(text)?;
                insert(&mut self.strings, text.as_bytes(), 1)?;
            }
            ListKind::Glob => {
                check_length(text)?;
                let source = pattern::glob_to_regex(text)?;
                pattern::check_glob(&source)?;
                self.patterns.push(source);
            }
            ListKind::Regex => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Add every entry of a list file's text (format: see below). Every
    /// error is reported, each with its line and column; the entries without
    /// errors are added either way.
    ///
    /// One entry a line: a bare word, a `"quoted string"` (escapes `\"` and
    /// `\\`) or a `/regex/` (flag `i`; `\/` for a slash), optionally followed
    /// by a `#` comment. Blank lines, lines starting with `#`, and leading and
    /// trailing whitespace are ignored; lines end with `\n` or `\r\n`.
    pub fn add_file_text(&mut self, text: &str) -> Result<(), Vec<FileEntryError>> {
        let mut errors = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
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
        Ok(List {
            kinds: self.kinds,
            len: self.len,
            cidrs: cidr::CidrSet::new(self.v4, self.v6),
            domains,
            domain_flags: self.domain_flags,
            addresses,
            strings,
            pattern_source_bytes: self.patterns.iter().map(String::capacity).sum(),
            patterns,
        })
    }
}

fn check_length(text: &str) -> Result<(), EntryError> {
    if text.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::new(
            EntryErrorKind::TooLong,
            "the entry is too long",
            "a string, glob or regex of at most 4096 bytes",
        ));
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
    /// The union of the flags in `domains`: skip the per-label probes when
    /// there is no subdomain entry.
    domain_flags: u8,
    /// `user@domain` and `user@` entries, lower case; `<>` as the empty key.
    addresses: KeySet,
    /// String entries, exact bytes.
    strings: KeySet,
    /// All globs and regexes.
    patterns: Option<RegexSet>,
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
                    self.domain_flags,
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
    pub fn contains_address(&self, address: &Address<'_>) -> bool {
        if address.is_null() {
            return self.addresses.flags(b"").is_some() || self.patterns_match(b"");
        }
        let domain_part = domain::strip_trailing_dot(address.domain);
        let mut buf = [0u8; MAX_ADDRESS_BYTES];
        let local_len = address.local.len();
        if !self.addresses.is_empty() && local_len < buf.len() {
            // `local@` then, when it fits, `local@domain`, lower-cased once.
            if let Some(lower) = domain::lower_into(address.local, &mut buf) {
                let _ = lower;
                buf[local_len] = b'@';
                if self.addresses.flags(&buf[..=local_len]).is_some() {
                    return true;
                }
                if !domain_part.is_empty() {
                    let end = local_len + 1 + domain_part.len();
                    if let Some(rest) = buf.get_mut(local_len + 1..end) {
                        for (o, b) in rest.iter_mut().zip(domain_part) {
                            *o = b.to_ascii_lowercase();
                        }
                        if self.addresses.flags(&buf[..end]).is_some() {
                            return true;
                        }
                    }
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
                    self.domain_flags,
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
        self.patterns
            .as_ref()
            .is_some_and(|set| set.is_match(value))
    }

    /// The kinds of entries the list holds.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Whether `lookup` could ever match: the list holds a kind of entry it
    /// consults. A policy compiler reports `false` as a type error.
    pub fn can_match(&self, lookup: Lookup) -> bool {
        !self.kinds.intersection(lookup.consults()).is_empty()
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
