//! Domain and address entries: validation, normalisation, and the lookups over
//! the [`KeySet`]s that hold them.
//!
//! Normalisation, applied to entries when the list is built and to names when
//! looking up: ASCII letters are lower-cased, one trailing dot is removed
//! (`Example.COM.` is `example.com`). Bytes outside ASCII (UTF-8 U-labels) are
//! compared as they are: write internationalised names in the form Postfix
//! sends them (A-labels `xn--...` unless the client used SMTPUTF8).
//! Lookups lower-case into a stack buffer, never the heap.

use super::keyset::KeySet;
use super::{EntryError, EntryErrorKind, MAX_ADDRESS_BYTES, MAX_DOMAIN_BYTES};

/// A domain entry `example.com`: that domain only.
pub(crate) const DOMAIN_EXACT: u8 = 1;
/// A domain entry `.example.com`: that domain and every subdomain.
pub(crate) const DOMAIN_TREE: u8 = 2;
/// An address entry `@example.com`: every address in that domain.
pub(crate) const AT_EXACT: u8 = 4;
/// An address entry `@.example.com`: every address in that domain or a subdomain.
pub(crate) const AT_TREE: u8 = 8;

/// The longest DNS label.
const MAX_LABEL_BYTES: usize = 63;

const EXPECTED_DOMAIN: &str = "a domain: dot-separated labels of letters, digits, `-` or `_` \
     (each with a letter or digit), \
     at most 253 bytes, optionally with a leading `.` for its subdomains \
     (quote other text to make it a string)";

const EXPECTED_ADDRESS: &str =
    "an address: user@domain, user@ (a local part), @domain (a whole domain) or <> (the null sender)";

/// Whether `b` may appear in a domain label: ASCII letters, digits, `-`, `_`,
/// and any non-ASCII byte (UTF-8 U-labels, compared byte for byte).
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80
}

/// Strip one trailing dot.
#[inline]
pub(crate) fn strip_trailing_dot(name: &[u8]) -> &[u8] {
    name.strip_suffix(b".").unwrap_or(name)
}

/// Validate a domain entry and append its normalised form (lower case, no
/// leading or trailing dot) to `out`. Returns whether it had a leading dot
/// (domain and subdomains). A leading dot is refused unless `allow_tree`.
pub(crate) fn normalize_domain(
    text: &str,
    allow_tree: bool,
    out: &mut Vec<u8>,
) -> Result<bool, EntryError> {
    let bytes = text.as_bytes();
    let (tree, rest) = match bytes.strip_prefix(b".") {
        Some(rest) if allow_tree => (true, rest),
        _ => (false, bytes),
    };
    let rest = strip_trailing_dot(rest);
    let invalid = || {
        EntryError::new(
            EntryErrorKind::Syntax,
            "not a valid domain",
            EXPECTED_DOMAIN,
        )
    };
    if rest.is_empty() || rest.len() > MAX_DOMAIN_BYTES {
        return Err(invalid());
    }
    for label in rest.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > MAX_LABEL_BYTES
            || !label.iter().all(|&b| is_label_byte(b))
            // A label of only `-` and `_` (`-`, `_._`) is no name.
            || label.iter().all(|&b| matches!(b, b'-' | b'_'))
        {
            return Err(invalid());
        }
    }
    // The last label must not be all digits: `192.0.2.1` is an address, not a name.
    let last = rest.rsplit(|&b| b == b'.').next().unwrap_or(rest);
    if last.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    out.extend(rest.iter().map(u8::to_ascii_lowercase));
    Ok(tree)
}

/// A parsed address entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressEntry {
    /// `<>`: the null sender. Stored as the empty key.
    Null,
    /// `user@domain` (key `user@domain`) or `user@` (key `user@`) in the
    /// address table.
    Key,
    /// `@domain` or `@.domain` in the domain table with these flags.
    Domain(u8),
}

/// Validate an address entry and append its key (lower case) to `out`.
pub(crate) fn normalize_address(text: &str, out: &mut Vec<u8>) -> Result<AddressEntry, EntryError> {
    if text == "<>" {
        return Ok(AddressEntry::Null);
    }
    let invalid = || {
        EntryError::new(
            EntryErrorKind::Syntax,
            "not a valid address",
            EXPECTED_ADDRESS,
        )
    };
    let Some(at) = text.rfind('@') else {
        return Err(invalid());
    };
    let (local, domain) = (&text[..at], &text[at + 1..]);
    if text.len() > MAX_ADDRESS_BYTES {
        return Err(EntryError::new(
            EntryErrorKind::TooLong,
            "the address is too long",
            "an address of at most 512 bytes",
        )
        .with_detail(format!("{} bytes", text.len())));
    }
    // A local part may hold `@` (Postfix's internal form of
    // `"a@b"@example.com` is `a@b@example.com`), but not at either end:
    // `@@@`, `a@@b` and `@a@b` are typos, not addresses.
    if local.bytes().any(|b| b.is_ascii_control()) || local.starts_with('@') || local.ends_with('@')
    {
        return Err(invalid());
    }
    if local.is_empty() {
        if domain.is_empty() {
            return Err(invalid());
        }
        let tree = normalize_domain(domain, true, out).map_err(|_| invalid())?;
        return Ok(AddressEntry::Domain(if tree { AT_TREE } else { AT_EXACT }));
    }
    out.extend(local.bytes().map(|b| b.to_ascii_lowercase()));
    out.push(b'@');
    if !domain.is_empty() {
        normalize_domain(domain, false, out).map_err(|_| invalid())?;
    }
    Ok(AddressEntry::Key)
}

/// Lower-case `bytes` into the start of `buf`; `None` if it does not fit.
#[inline]
pub(crate) fn lower_into<'b>(bytes: &[u8], buf: &'b mut [u8]) -> Option<&'b mut [u8]> {
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

/// The bit of [`TreeLabels`] for a key with `labels` labels.
pub(crate) fn label_bit(key: &[u8]) -> u128 {
    let labels = key.iter().filter(|&&b| b == b'.').count() + 1;
    // A normalised domain has at most 127 labels (253 bytes); saturate anyway.
    1 << labels.min(127)
}

/// Bit `n` is set when some subdomain entry (`.example.com`, `@.example.com`)
/// has `n` labels: a lookup probes only the parent domains with a label count
/// that some entry has, so a name of many labels (up to 127 in 253 bytes,
/// client-controlled) costs a few probes, not one per label.
pub(crate) type TreeLabels = u128;

/// Whether the normalised `name` is in `set` with one of `exact` flags, or
/// `name` or one of its parent domains is there with one of `tree` flags.
/// One hash probe for the name, one per parent domain whose label count is in
/// `tree_labels`. Allocates nothing.
#[inline]
pub(crate) fn matches(
    set: &KeySet,
    name: &[u8],
    exact: u8,
    tree: u8,
    tree_labels: TreeLabels,
) -> bool {
    if let Some(flags) = set.flags(name) {
        if flags & (exact | tree) != 0 {
            return true;
        }
    }
    if tree_labels == 0 {
        return false;
    }
    // Parent domains from the shortest (the last label) up, while some entry
    // has that many labels; the name itself was probed above.
    let most_labels = 127 - tree_labels.leading_zeros() as usize;
    let mut labels = 0;
    let mut before = name;
    while let Some(dot) = before.iter().rposition(|&b| b == b'.') {
        labels += 1;
        if labels > most_labels {
            return false;
        }
        if tree_labels >> labels & 1 == 1 {
            if let Some(flags) = set.flags(&name[dot + 1..]) {
                if flags & tree != 0 {
                    return true;
                }
            }
        }
        before = &before[..dot];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_domain_table() {
        let ok: &[(&str, bool, &str, bool)] = &[
            ("example.com", true, "example.com", false),
            ("Example.COM.", true, "example.com", false),
            (".example.com", true, "example.com", true),
            (".Example.com.", true, "example.com", true),
            ("localhost", true, "localhost", false),
            (
                "xn--bcher-kva.example",
                true,
                "xn--bcher-kva.example",
                false,
            ),
            ("bücher.example", true, "bücher.example", false),
            ("_dmarc.example.com", true, "_dmarc.example.com", false),
            ("1.example.com", true, "1.example.com", false),
            ("3com", true, "3com", false),
        ];
        for (text, allow_tree, normal, tree) in ok {
            let mut out = Vec::new();
            assert_eq!(
                normalize_domain(text, *allow_tree, &mut out),
                Ok(*tree),
                "{text}"
            );
            assert_eq!(out, normal.as_bytes(), "{text}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        let bad: &[&str] = &[
            "",
            ".",
            "..",
            "a..b",
            ".a..b",
            "exa mple.com",
            "a/b",
            "a:b",
            "a@b",
            "1.2.3.4",
            "a.123",
            "a.b..",
            "a!b.com",
        ];
        for text in bad
            .iter()
            .copied()
            .chain([long_label.as_str(), long_name.as_str()])
        {
            assert!(
                normalize_domain(text, true, &mut Vec::new()).is_err(),
                "{text}"
            );
        }
        assert!(normalize_domain(".example.com", false, &mut Vec::new()).is_err());
    }

    #[test]
    fn normalize_address_table() {
        let ok: &[(&str, AddressEntry, &str)] = &[
            ("<>", AddressEntry::Null, ""),
            ("Joe@Example.COM", AddressEntry::Key, "joe@example.com"),
            ("joe@example.com.", AddressEntry::Key, "joe@example.com"),
            ("Joe@", AddressEntry::Key, "joe@"),
            ("a@b@example.com", AddressEntry::Key, "a@b@example.com"),
            (
                "\"a b\"@example.com",
                AddressEntry::Key,
                "\"a b\"@example.com",
            ),
            (
                "@Example.com",
                AddressEntry::Domain(AT_EXACT),
                "example.com",
            ),
            (
                "@.example.com",
                AddressEntry::Domain(AT_TREE),
                "example.com",
            ),
        ];
        for (text, entry, key) in ok {
            let mut out = Vec::new();
            assert_eq!(normalize_address(text, &mut out), Ok(*entry), "{text}");
            assert_eq!(out, key.as_bytes(), "{text}");
        }
        let too_long = format!("{}@example.com", "a".repeat(600));
        for text in [
            "",
            "@",
            "joe",
            "joe@.example.com",
            "joe@exa mple.com",
            "@a..b",
            "a\u{1}@example.com",
            "<",
            too_long.as_str(),
        ] {
            assert!(normalize_address(text, &mut Vec::new()).is_err(), "{text}");
        }
    }

    #[test]
    fn subdomain_matching() {
        let mut set = KeySet::default();
        set.insert(b"example.com", DOMAIN_TREE).unwrap();
        set.insert(b"exact.org", DOMAIN_EXACT).unwrap();
        let labels = label_bit(b"example.com");
        let m = |name: &[u8]| matches(&set, name, DOMAIN_EXACT, DOMAIN_TREE, labels);
        assert!(m(b"example.com"));
        assert!(m(b"mail.example.com"));
        assert!(m(b"a.b.c.example.com"));
        assert!(!m(b"badexample.com"));
        assert!(!m(b"com"));
        assert!(m(b"exact.org"));
        assert!(!m(b"sub.exact.org"));
        assert!(!m(b""));
        assert!(!m(b"."));
        assert!(
            !matches(&set, b"mail.example.com", DOMAIN_EXACT, DOMAIN_TREE, 0),
            "no subdomain entries"
        );
        assert!(
            !matches(
                &set,
                b"mail.example.com",
                DOMAIN_EXACT,
                DOMAIN_TREE,
                label_bit(b"a.b.c")
            ),
            "only parents with an entry's label count are probed"
        );
        let deep = [&b"x."[..]; 120].concat();
        assert!(m(&[&deep[..], b"example.com"].concat()));
        assert_eq!(label_bit(b"com"), 2);
        assert_eq!(label_bit(b"example.com"), 4);
    }
}
