//! postgrey's client whitelist: [`ClientWhitelist`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::file::{self, finish, posix_pattern, Entry};
use crate::list::{
    EntryError, EntryErrorKind, EntryToken, FileEntryError, List, ListBuilder, ListKind,
};

/// What a client whitelist entry should have been.
const EXPECTED_CLIENT: &str =
    "a host name (example.com: it and its subdomains), an IPv4 address or \
     network (192.0.2.1, 192.0.2.0/24, 192.0.2), an IPv6 address or network (2001:db8::/32), \
     or a /regex/";

/// A `postgrey_whitelist_clients` file (postgrey 1.37's format), compiled for
/// lookups that allocate nothing. See the [module docs](super#client-whitelist)
/// for the entries and how each is matched.
///
/// ```
/// use policy_core::greylist::ClientWhitelist;
///
/// let whitelist = ClientWhitelist::parse(
///     "# senders that never retry\n\
///      example.com\n\
///      192.0.2.0/24\n\
///      198.51.100\n\
///      /^mail\\d+\\.example\\.net$/\n",
/// )
/// .map_err(|errors| errors[0].clone())?;
/// assert!(whitelist.matches(b"MX.Example.com", None));
/// assert!(whitelist.matches(b"mail7.example.net", None));
/// assert!(whitelist.matches(b"unknown", Some("198.51.100.7".parse()?)));
/// assert!(!whitelist.matches(b"badexample.com", Some("203.0.113.1".parse()?)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientWhitelist {
    /// IPv4 and IPv6 addresses and networks (host bits cleared).
    networks: List,
    /// Host name entries that are valid domains, as `.name` entries: the name
    /// and every subdomain.
    names: List,
    /// `/regex/` entries, and postgrey's own suffix regex for host name
    /// entries that are not valid domains: matched on the client name.
    patterns: List,
    /// Entries read.
    len: usize,
}

impl ClientWhitelist {
    /// Compile the text of a client whitelist file. Every bad entry is
    /// reported with its line and column (at most
    /// [`MAX_FILE_ERRORS`](crate::list::MAX_FILE_ERRORS), then one more
    /// saying the rest was not read).
    pub fn parse(text: &str) -> Result<Self, Vec<FileEntryError>> {
        let mut builder = Builder {
            networks: ListBuilder::new(Some(ListKind::Cidr)),
            names: ListBuilder::new(Some(ListKind::Domain)),
            patterns: ListBuilder::new(Some(ListKind::Regex)),
            len: 0,
        };
        let read = file::for_each_entry(text, |entry| builder.add(entry));
        finish(read, builder.build())
    }

    /// Whether the client is whitelisted: its address is in an address or
    /// network entry, or its name (`client_name`) ends with a host name entry
    /// at a label boundary or matches a `/regex/` entry. A name of `unknown`
    /// (what Postfix sends when the address has no verified name) or an
    /// empty name matches no name or regex entry. Allocates nothing (the
    /// regex set fills its per-thread cache on first use).
    pub fn matches(&self, client_name: &[u8], client_address: Option<IpAddr>) -> bool {
        if let Some(address) = client_address {
            if self.networks.contains_ip(address) {
                return true;
            }
        }
        if client_name.is_empty() || client_name == b"unknown" {
            return false;
        }
        // The names table ignores one trailing dot; postgrey's suffix does not.
        (!client_name.ends_with(b".") && self.names.contains_domain(client_name))
            || self.patterns.contains_bytes(client_name)
    }

    /// Number of entries read.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file had no entry (it then matches nothing).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held (see [`List::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.networks.heap_bytes() + self.names.heap_bytes() + self.patterns.heap_bytes()
    }
}

struct Builder {
    networks: ListBuilder,
    names: ListBuilder,
    patterns: ListBuilder,
    len: usize,
}

impl Builder {
    /// Add one entry, in postgrey 1.37's order of shapes.
    fn add(&mut self, entry: Entry<'_>) -> Result<(), FileEntryError> {
        let result = if let Some(pattern) = entry.regex() {
            add_regex(&mut self.patterns, pattern)
        } else if let Some(network) = ipv4_entry(entry.text) {
            network.and_then(|(address, prefix)| {
                let text = format!("{}/{prefix}", Ipv4Addr::from(address));
                self.networks.add(EntryToken::Bare(&text)).map(drop)
            })
        } else if let Some(network) = ipv6_entry(entry.text) {
            network.and_then(|(address, prefix)| {
                let text = format!("{}/{prefix}", Ipv6Addr::from(address));
                self.networks.add(EntryToken::Bare(&text)).map(drop)
            })
        } else {
            self.add_name(entry.text)
        };
        result.map_err(|error| entry.error(error))?;
        self.len += 1;
        Ok(())
    }

    /// A host name entry: the name and its subdomains (postgrey matches
    /// `(?:^|\.)NAME$`, ignoring case).
    fn add_name(&mut self, name: &str) -> Result<(), EntryError> {
        if name.contains('/') {
            // Postgrey would take it as a name suffix, which no host name has.
            return Err(EntryError::new(
                EntryErrorKind::Syntax,
                "neither a host name nor an IP address or network",
                EXPECTED_CLIENT,
            ));
        }
        add_suffix(&mut self.names, &mut self.patterns, name, "^")
    }

    fn build(self) -> Result<ClientWhitelist, EntryError> {
        Ok(ClientWhitelist {
            networks: self.networks.build()?,
            names: self.names.build()?,
            patterns: self.patterns.build()?,
            len: self.len,
        })
    }
}

/// Add a postgrey regex (always case-insensitive, on bytes: see
/// [`posix_pattern`]).
pub(super) fn add_regex(patterns: &mut ListBuilder, pattern: &str) -> Result<(), EntryError> {
    let pattern = posix_pattern(pattern);
    patterns
        .add(EntryToken::Regex {
            pattern: &pattern,
            case_insensitive: true,
        })
        .map(drop)
}

/// Adds `name`, matching that name and every name below it, to `domains`
/// (a domain suffix list); a name that is not a valid domain goes to
/// `patterns` as postgrey's own regex, the name preceded by `start` (`^` for
/// a whole client name, `@` for an address's domain) or a dot.
pub(super) fn add_suffix(
    domains: &mut ListBuilder,
    patterns: &mut ListBuilder,
    name: &str,
    start: &str,
) -> Result<(), EntryError> {
    if !name.starts_with('.') && !name.ends_with('.') {
        let dotted = format!(".{name}");
        match domains.add(EntryToken::Bare(&dotted)) {
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == EntryErrorKind::TooMany => return Err(error),
            // Not a valid domain: postgrey's own regex below keeps its meaning.
            Err(_) => {}
        }
    }
    let pattern = format!(r"(?:{start}|\.){}$", regex::escape(name));
    add_regex(patterns, &pattern)
}

/// Whether `text` is one to `max` ASCII digits.
fn digits(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_digit())
}

/// postgrey 1.37's IPv4 entries: `a.b.c.d` or `a.b.c.d/m` (one or two
/// digits), `a.b.c` (that /24) and `a.b` (that /16), each octet one to three
/// digits. `None` when `text` has none of these shapes; otherwise the
/// network (host bits cleared, as postgrey's `NetAddr::IP::within` ignores
/// them) or why it is not one (an octet above 255, a prefix above 32: postgrey
/// drops such entries without a word).
fn ipv4_entry(text: &str) -> Option<Result<(u32, u32), EntryError>> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let mut octets = [0u32; 4];
    let mut count = 0;
    for part in address.split('.') {
        if count == octets.len() || !digits(part, 3) {
            return None;
        }
        // At most three digits: fits.
        octets[count] = part.parse().unwrap_or(u32::MAX);
        count += 1;
    }
    let prefix = match prefix {
        None if count >= 2 => 8 * count as u32,
        Some(prefix) if count == 4 && digits(prefix, 2) => prefix.parse().unwrap_or(u32::MAX),
        _ => return None,
    };
    if octets.iter().any(|&octet| octet > 255) {
        return Some(Err(EntryError::new(
            EntryErrorKind::Syntax,
            "an IPv4 address with a number above 255",
            "an IPv4 address of numbers 0 to 255 (192.0.2.1), or its first three or two (192.0.2, 192.0)",
        )));
    }
    if prefix > 32 {
        return Some(Err(EntryError::new(
            EntryErrorKind::Syntax,
            "prefix length out of range",
            "a prefix length of at most 32 for IPv4",
        )
        .with_detail(format!("found /{prefix}"))));
    }
    let address = octets[..count]
        .iter()
        .fold(0u32, |acc, &octet| acc << 8 | octet)
        << (8 * (4 - count));
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    Some(Ok((address & mask, prefix)))
}

/// postgrey 1.37's IPv6 entries: text with at least two `:`, an IPv6 address
/// with an optional `/prefix` (0 to 128). `None` without two `:`; otherwise
/// the network (host bits cleared) or why it is not one.
fn ipv6_entry(text: &str) -> Option<Result<(u128, u32), EntryError>> {
    if text.matches(':').count() < 2 {
        return None;
    }
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let Ok(address) = address.parse::<Ipv6Addr>() else {
        return Some(Err(EntryError::new(
            EntryErrorKind::Syntax,
            "not an IPv6 address",
            "an IPv6 address (2001:db8::1), optionally with a /prefix length (2001:db8::/32)",
        )));
    };
    let prefix = match prefix {
        None => 128,
        Some(prefix) if digits(prefix, 3) => prefix.parse().unwrap_or(u32::MAX),
        Some(_) => u32::MAX,
    };
    if prefix > 128 {
        return Some(Err(EntryError::new(
            EntryErrorKind::Syntax,
            "invalid prefix length",
            "a prefix length of decimal digits, at most 128 for IPv6",
        )));
    }
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    Some(Ok((u128::from(address) & mask, prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> u32 {
        u32::from(text.parse::<Ipv4Addr>().unwrap())
    }

    #[test]
    fn ipv4_shapes() {
        let networks: &[(&str, &str, u32)] = &[
            ("192.0.2.1", "192.0.2.1", 32),
            ("192.0.2.77/24", "192.0.2.0", 24),
            ("10.1.2.3/8", "10.0.0.0", 8),
            ("10.1.2.3/0", "0.0.0.0", 0),
            ("192.0.2", "192.0.2.0", 24),
            ("192.168", "192.168.0.0", 16),
            ("010.001.2.3", "10.1.2.3", 32),
        ];
        for (text, address, prefix) in networks {
            let (a, p) = ipv4_entry(text).unwrap().unwrap();
            assert_eq!((a, p), (v4(address), *prefix), "{text}");
        }
        for not_ipv4 in [
            "10",
            "1.2.3.4.5",
            "1.2.3.4/",
            "1.2.3.4/123",
            "1.2.3/24",
            "1.2.3.",
            ".1.2.3",
            "1..2",
            "1234.1.1.1",
            "a.b.c.d",
            "1.2.3.4/x",
        ] {
            assert!(ipv4_entry(not_ipv4).is_none(), "{not_ipv4}");
        }
        for bad in ["256.0.0.1", "1.2.999", "1.2.3.4/33", "1.2.3.4/99"] {
            assert!(ipv4_entry(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_shapes() {
        let (a, p) = ipv6_entry("2001:db8::1/32").unwrap().unwrap();
        assert_eq!(
            (a, p),
            (u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap()), 32)
        );
        assert_eq!(ipv6_entry("::1").unwrap().unwrap(), (1, 128));
        assert_eq!(ipv6_entry("::/0").unwrap().unwrap(), (0, 0));
        assert!(ipv6_entry("host:25").is_none());
        for bad in ["a:b:c", "::1/129", "::1/", "::1/x", "[::1]", "fe80::1%eth0"] {
            assert!(ipv6_entry(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn fallback_regexes_take_any_text() {
        // Not domains: postgrey's suffix regex, with non-ASCII literals on bytes.
        let whitelist = ClientWhitelist::parse("bücher.example.\nx..y\n(a)+b\n").unwrap();
        assert!(whitelist.matches("mx.bücher.example.".as_bytes(), None));
        assert!(!whitelist.matches("mx.BÜCHER.example.".as_bytes(), None));
        assert!(whitelist.matches("a.X..Y".as_bytes(), None));
        assert!(whitelist.matches("(A)+B".as_bytes(), None));
        assert!(!whitelist.matches("aab".as_bytes(), None));
    }
}
