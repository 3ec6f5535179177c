//! The DNS view an SPF evaluation reads: [`SpfDns`], the shape of its
//! answers ([`DnsAnswer`], [`StringList`]), and [`MemoryDns`], a view kept
//! in memory (for tests and for callers without a facts store).

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use crate::facts::QueryKind;

/// What an SPF evaluation can read of DNS: the answer to a query when it is
/// known, or nothing while it is pending.
///
/// Names are asked as the core's facts keep them: lower case ASCII, no
/// trailing dot. Answers follow the same conventions as
/// [`Answer`](crate::facts::Answer): TXT records each as their strings
/// joined, MX and PTR answers as names (lower case, no trailing dot; a null
/// MX as the empty name), CNAMEs already followed by the resolver.
pub trait SpfDns {
    /// The answer to `kind` of `name`, or `None` while it is not known
    /// (the evaluation then stops and asks for it).
    fn answer(&self, kind: QueryKind, name: &[u8]) -> Option<DnsAnswer<'_>>;
}

/// A known answer to one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAnswer<'a> {
    /// The addresses found, for `A` and `AAAA`.
    Addresses(&'a [IpAddr]),
    /// The texts (TXT) or names (MX, PTR) found.
    Strings(StringList<'a>),
    /// No such name, or no record of the kind (NXDOMAIN, NODATA).
    NotFound,
    /// No usable answer (timeout, SERVFAIL): SPF's `temperror`.
    Unknown,
}

/// The texts or names of an answer, borrowed from wherever the view keeps
/// them: a slice of byte strings, or ranges of one buffer (as the core's
/// facts store them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringList<'a>(Strings<'a>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strings<'a> {
    Slices(&'a [&'a [u8]]),
    Spans {
        spans: &'a [Range<u32>],
        data: &'a [u8],
    },
}

impl<'a> StringList<'a> {
    /// The strings of a slice.
    pub fn from_slices(items: &'a [&'a [u8]]) -> Self {
        Self(Strings::Slices(items))
    }

    /// The strings at `spans` of `data` (a span out of `data` is empty).
    pub fn from_spans(spans: &'a [Range<u32>], data: &'a [u8]) -> Self {
        Self(Strings::Spans { spans, data })
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        match self.0 {
            Strings::Slices(s) => s.len(),
            Strings::Spans { spans, .. } => spans.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th string.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        match self.0 {
            Strings::Slices(s) => s.get(i).copied(),
            Strings::Spans { spans, data } => {
                let r = spans.get(i)?;
                Some(
                    data.get(r.start as usize..r.end as usize)
                        .unwrap_or_default(),
                )
            }
        }
    }

    /// The strings in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.get(i))
    }
}

/// One answer as [`MemoryDns`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    Addresses(Vec<IpAddr>),
    Strings(Vec<Range<u32>>, Vec<u8>),
    NotFound,
    Unknown,
}

/// An [`SpfDns`] view kept in memory: answers are added with its setters,
/// and any query not added is pending (a caller answers the queries an
/// evaluation asked, then evaluates again).
///
/// The map is keyed by names from records on the network; it keeps std's
/// randomly seeded hasher.
#[derive(Debug, Default, Clone)]
pub struct MemoryDns {
    answers: HashMap<(QueryKind, Vec<u8>), Stored>,
}

impl MemoryDns {
    /// An empty view: every query pending.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(kind: QueryKind, name: &[u8]) -> (QueryKind, Vec<u8>) {
        let name = name.strip_suffix(b".").unwrap_or(name);
        (kind, name.to_ascii_lowercase())
    }

    /// Answer `kind` of `name` with addresses (those of the other family
    /// than the kind's are left out).
    pub fn set_addresses(&mut self, kind: QueryKind, name: &[u8], found: &[IpAddr]) {
        let found = found
            .iter()
            .copied()
            .filter(|ip| match kind {
                QueryKind::Aaaa => ip.is_ipv6(),
                _ => ip.is_ipv4(),
            })
            .collect();
        self.answers
            .insert(Self::key(kind, name), Stored::Addresses(found));
    }

    /// Answer `kind` of `name` with texts (TXT: each record's strings
    /// joined) or names (MX, PTR: lower-cased here, a trailing dot dropped).
    pub fn set_strings(&mut self, kind: QueryKind, name: &[u8], found: &[&[u8]]) {
        let texts = kind == QueryKind::Txt;
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for item in found {
            let item = if texts {
                item.to_vec()
            } else {
                let item = item.strip_suffix(b".").unwrap_or(item);
                item.to_ascii_lowercase()
            };
            let start = u32::try_from(data.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&item);
            spans.push(start..u32::try_from(data.len()).unwrap_or(u32::MAX));
        }
        self.answers
            .insert(Self::key(kind, name), Stored::Strings(spans, data));
    }

    /// Answer `kind` of `name` with "no such record".
    pub fn set_not_found(&mut self, kind: QueryKind, name: &[u8]) {
        self.answers.insert(Self::key(kind, name), Stored::NotFound);
    }

    /// Answer `kind` of `name` with "unknown" (a timeout, SERVFAIL).
    pub fn set_unknown(&mut self, kind: QueryKind, name: &[u8]) {
        self.answers.insert(Self::key(kind, name), Stored::Unknown);
    }
}

impl SpfDns for MemoryDns {
    fn answer(&self, kind: QueryKind, name: &[u8]) -> Option<DnsAnswer<'_>> {
        let name = name.strip_suffix(b".").unwrap_or(name);
        let key = (kind, name.to_ascii_lowercase());
        Some(match self.answers.get(&key)? {
            Stored::Addresses(found) => DnsAnswer::Addresses(found),
            Stored::Strings(spans, data) => DnsAnswer::Strings(StringList::from_spans(spans, data)),
            Stored::NotFound => DnsAnswer::NotFound,
            Stored::Unknown => DnsAnswer::Unknown,
        })
    }
}

/// The core's facts of a request, as SPF reads them: an answer supplied is
/// known; a query pending, or never asked, is not yet, until the deadline
/// passed: then it is unknown (`temperror`).
impl SpfDns for crate::facts::Facts {
    fn answer(&self, kind: QueryKind, name: &[u8]) -> Option<DnsAnswer<'_>> {
        Some(match self.known_named(kind, name)? {
            crate::facts::Known::Addresses([]) => DnsAnswer::NotFound,
            crate::facts::Known::Addresses(found) => DnsAnswer::Addresses(found),
            crate::facts::Known::Strings(found) if found.is_empty() => DnsAnswer::NotFound,
            crate::facts::Known::Strings(found) => {
                let (spans, data) = found.parts();
                DnsAnswer::Strings(StringList::from_spans(spans, data))
            }
            crate::facts::Known::Unknown => DnsAnswer::Unknown,
        })
    }
}
