//! The login-to-senders map of Postfix's `smtpd_sender_login_maps`, and the
//! `reject_sender_login_mismatch` test on it.
//!
//! # File format (Postfix's table source format)
//!
//! ```text
//! # sender               logins that own it
//! joe@example.com        joe
//! sales@example.com      alice, bob
//! @example.org           admin
//! ```
//!
//! A key is a full address or `@domain`; the value is one or more login
//! names separated by commas and/or whitespace. Blank lines and lines whose
//! first non-blank character is `#` are ignored; a line starting with
//! whitespace continues the previous line's value. As in Postfix, `#` after
//! a key is not a comment. Keys compare ignoring ASCII case and a trailing
//! dot; logins compare ignoring ASCII case (Postfix compares them with
//! `strcasecmp_utf8`).
//!
//! Lookup order, as Postfix: the whole sender address, then `@domain`. Not
//! done (Postfix does them with knowledge this library lacks): stripping an
//! address extension (`user+ext@`, `recipient_delimiter`), and the bare
//! `user` key for local domains. List the addresses in full.

use std::fmt;

use super::domain::{self, AddressEntry};
use super::keyset::KeySet;
use super::{
    file, too_many_errors, EntryError, EntryErrorKind, FileEntryError, MAX_ADDRESS_BYTES,
    MAX_ENTRY_BYTES, MAX_FILE_ERRORS, MAX_LIST_ENTRIES,
};
use crate::request::Address;

/// Which half of a logins map line an error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginPart {
    /// The sender address (the key).
    Sender,
    /// The login names (the value).
    Logins,
}

/// An invalid sender/logins pair: which half, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginEntryError {
    /// The half that is wrong.
    pub part: LoginPart,
    /// What is wrong with it.
    pub error: EntryError,
}

impl fmt::Display for LoginEntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for LoginEntryError {}

const EXPECTED_SENDER: &str = "a sender address (user@domain) or @domain";

/// Builds a [`LoginMap`] pair by pair (for the inline form
/// `logins NAME { "sender" "login1,login2" ... }`).
#[derive(Debug, Clone, Default)]
pub struct LoginMapBuilder {
    /// Sender keys, lower case: `user@domain` or `@domain`.
    senders: KeySet,
    /// For each sender key (by index), its logins' range in `logins`.
    owners: Vec<(u32, u32)>,
    /// Every sender's logins, each login followed by a `,`.
    logins: Vec<u8>,
    key: Vec<u8>,
}

impl LoginMapBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Senders added so far.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether no sender was added.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Add `sender` (`user@domain` or `@domain`) owned by `logins` (login
    /// names separated by commas and/or whitespace, at least one). A sender
    /// given twice is an error (Postfix would silently keep one of them).
    pub fn insert(&mut self, sender: &str, logins: &str) -> Result<(), LoginEntryError> {
        let sender_error = |error| LoginEntryError {
            part: LoginPart::Sender,
            error,
        };
        let logins_error = |problem, expected| LoginEntryError {
            part: LoginPart::Logins,
            error: EntryError::new(EntryErrorKind::Syntax, problem, expected),
        };
        if self.owners.len() >= MAX_LIST_ENTRIES {
            return Err(sender_error(EntryError::new(
                EntryErrorKind::TooMany,
                "the logins map has too many senders",
                "at most 10,000,000 senders in one logins map",
            )));
        }
        self.key.clear();
        let invalid_sender = || {
            EntryError::new(
                EntryErrorKind::Syntax,
                "not a sender address",
                EXPECTED_SENDER,
            )
        };
        match domain::normalize_address(sender, &mut self.key) {
            Ok(AddressEntry::Key) if !self.key.ends_with(b"@") => {}
            Ok(AddressEntry::Domain(domain::AT_EXACT)) => {
                self.key.insert(0, b'@');
            }
            Ok(_) => return Err(sender_error(invalid_sender())),
            Err(e) if e.kind() == EntryErrorKind::TooLong => return Err(sender_error(e)),
            Err(_) => return Err(sender_error(invalid_sender())),
        }
        let start = self.logins.len();
        for login in logins
            .split([',', ' ', '\t', '\r', '\n'])
            .filter(|l| !l.is_empty())
        {
            if login.len() > MAX_ENTRY_BYTES || login.bytes().any(|b| b.is_ascii_control()) {
                self.logins.truncate(start);
                return Err(logins_error(
                    "not a login name",
                    "login names of printable characters, at most 4096 bytes each",
                ));
            }
            self.logins.extend_from_slice(login.as_bytes());
            self.logins.push(b',');
        }
        if self.logins.len() == start {
            return Err(logins_error(
                "no login names",
                "one or more login names separated by commas or spaces",
            ));
        }
        let range = (
            u32::try_from(start).ok(),
            u32::try_from(self.logins.len()).ok(),
        );
        let (Some(first), Some(end)) = range else {
            self.logins.truncate(start);
            return Err(sender_error(EntryError::new(
                EntryErrorKind::TooMany,
                "the logins map takes more than 4 GiB",
                "a smaller logins map",
            )));
        };
        match self.senders.insert(&self.key, 1) {
            Ok((_, true)) => {
                self.owners.push((first, end));
                Ok(())
            }
            Ok((_, false)) => {
                self.logins.truncate(start);
                Err(sender_error(EntryError::new(
                    EntryErrorKind::Duplicate,
                    "the sender is already in the map",
                    "each sender address once, with all its logins",
                )))
            }
            Err(_) => {
                self.logins.truncate(start);
                Err(sender_error(EntryError::new(
                    EntryErrorKind::TooMany,
                    "the logins map has too many senders",
                    "a smaller logins map",
                )))
            }
        }
    }

    /// The finished map.
    pub fn build(self) -> LoginMap {
        let mut senders = self.senders;
        senders.shrink();
        let mut owners = self.owners;
        owners.shrink_to_fit();
        let mut logins = self.logins;
        logins.shrink_to_fit();
        LoginMap {
            senders,
            owners,
            logins,
        }
    }
}

/// A login-to-senders map (see the module docs above for the format and
/// lookups). Immutable, `Send + Sync`; lookups allocate nothing.
#[derive(Debug, Clone)]
pub struct LoginMap {
    /// Sender keys, lower case (`user@domain`, `@domain`); their index is the
    /// index into `owners`.
    senders: KeySet,
    owners: Vec<(u32, u32)>,
    logins: Vec<u8>,
}

/// The logins that own a sender address, borrowed from the [`LoginMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners<'a> {
    /// Each login followed by `,`.
    joined: &'a [u8],
}

impl<'a> Owners<'a> {
    /// The login names, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> {
        let joined = self.joined;
        joined[..joined.len().saturating_sub(1)].split(|&b| b == b',')
    }

    /// Whether `login` is one of them, ignoring ASCII case. An empty `login`
    /// never is.
    pub fn contains(&self, login: &[u8]) -> bool {
        !login.is_empty() && self.iter().any(|owner| owner.eq_ignore_ascii_case(login))
    }
}

/// A logical line of a logins file being gathered (continuation lines append to `value`).
struct Pending<'t> {
    line: u32,
    key: &'t str,
    value_column: u32,
    value: String,
}

/// Insert a gathered line into `builder`, recording an error at its position.
fn finish(
    builder: &mut LoginMapBuilder,
    pending: Option<Pending<'_>>,
    errors: &mut Vec<FileEntryError>,
) {
    let Some(p) = pending else { return };
    if let Err(e) = builder.insert(p.key, &p.value) {
        errors.push(FileEntryError {
            line: p.line,
            column: match e.part {
                LoginPart::Sender => 1,
                LoginPart::Logins => p.value_column,
            },
            error: e.error,
        });
    }
}

impl LoginMap {
    /// Parse a map in Postfix's table format (see the module docs above).
    /// Every error is reported with its line and column (up to
    /// [`MAX_FILE_ERRORS`](super::MAX_FILE_ERRORS), then one more saying the
    /// rest was not read).
    pub fn parse(text: &str) -> Result<Self, Vec<FileEntryError>> {
        let mut builder = LoginMapBuilder::new();
        let mut errors = Vec::new();
        // The logical line being gathered.
        let mut pending: Option<Pending<'_>> = None;
        for (index, line) in text.lines().enumerate() {
            let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            if errors.len() >= MAX_FILE_ERRORS {
                pending = None;
                errors.push(FileEntryError {
                    line: line_number,
                    column: 1,
                    error: too_many_errors(),
                });
                break;
            }
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.len() != line.len() {
                // A continuation line.
                match pending.as_mut() {
                    Some(Pending { value, .. }) => {
                        value.push(' ');
                        value.push_str(trimmed);
                    }
                    None => errors.push(FileEntryError {
                        line: line_number,
                        column: 1,
                        error: EntryError::new(
                            EntryErrorKind::Syntax,
                            "a continuation line with nothing to continue",
                            "a sender address at the start of the line (a line starting with whitespace continues the previous one)",
                        ),
                    }),
                }
                continue;
            }
            finish(&mut builder, pending.take(), &mut errors);
            let key_end = line.find(char::is_whitespace).unwrap_or(line.len());
            let rest = &line[key_end..];
            let value = rest.trim_start();
            let value_offset = line.len() - value.len();
            pending = Some(Pending {
                line: line_number,
                key: &line[..key_end],
                value_column: file::column(line, value_offset),
                value: value.trim_end().to_owned(),
            });
        }
        finish(&mut builder, pending.take(), &mut errors);
        if errors.is_empty() {
            Ok(builder.build())
        } else {
            Err(errors)
        }
    }

    /// Build from `(sender, logins)` pairs; on error, each failing pair's
    /// index with its error.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Vec<(usize, LoginEntryError)>> {
        let mut builder = LoginMapBuilder::new();
        let errors: Vec<_> = pairs
            .into_iter()
            .enumerate()
            .filter_map(|(i, (sender, logins))| {
                builder.insert(sender, logins).err().map(|e| (i, e))
            })
            .collect();
        if errors.is_empty() {
            Ok(builder.build())
        } else {
            Err(errors)
        }
    }

    /// Senders in the map.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.senders.heap_bytes() + self.owners.capacity() * 8 + self.logins.capacity()
    }

    /// The logins that own `sender`: its entry if the whole address is in
    /// the map, else its domain's `@domain` entry. `None` for the null sender
    /// and for senders the map does not list. Allocates nothing.
    pub fn owners_of(&self, sender: &Address<'_>) -> Option<Owners<'_>> {
        if sender.is_null() || self.owners.is_empty() {
            return None;
        }
        let domain_part = domain::strip_trailing_dot(sender.domain);
        let mut buf = [0u8; MAX_ADDRESS_BYTES];
        let local_len = sender.local.len();
        let full_len = local_len + 1 + domain_part.len();
        if !domain_part.is_empty() && full_len <= buf.len() {
            domain::lower_into(sender.local, &mut buf)?;
            buf[local_len] = b'@';
            domain::lower_into(domain_part, &mut buf[local_len + 1..])?;
            if let Some(index) = self.senders.index_of(&buf[..full_len]) {
                return Some(self.owners_at(index));
            }
        }
        if !domain_part.is_empty() && domain_part.len() < buf.len() {
            buf[0] = b'@';
            domain::lower_into(domain_part, &mut buf[1..])?;
            if let Some(index) = self.senders.index_of(&buf[..=domain_part.len()]) {
                return Some(self.owners_at(index));
            }
        }
        None
    }

    fn owners_at(&self, index: usize) -> Owners<'_> {
        let (start, end) = self.owners[index];
        Owners {
            joined: &self.logins[start as usize..end as usize],
        }
    }

    /// Postfix's `reject_sender_login_mismatch`: true when
    ///
    /// - the client is authenticated (`sasl_username` non-empty) and the map
    ///   lists no owner for the sender, or lists owners that do not include
    ///   the login (`reject_authenticated_sender_login_mismatch`); or
    /// - the client is not authenticated (`sasl_username` empty) and the map
    ///   lists an owner for the sender
    ///   (`reject_unauthenticated_sender_login_mismatch`).
    ///
    /// Never for the null sender (Postfix runs the check only for a non-empty
    /// MAIL FROM). Allocates nothing.
    pub fn login_mismatch(&self, sasl_username: &[u8], sender: &Address<'_>) -> bool {
        if sender.is_null() {
            return false;
        }
        match (self.owners_of(sender), sasl_username.is_empty()) {
            (Some(_), true) => true,
            (None, true) => false,
            (None, false) => true,
            (Some(owners), false) => !owners.contains(sasl_username),
        }
    }

    /// Postfix's `reject_known_sender_login_mismatch` (2.11): like
    /// [`LoginMap::login_mismatch`], but a sender the map does not list is
    /// never a mismatch, authenticated or not.
    pub fn known_login_mismatch(&self, sasl_username: &[u8], sender: &Address<'_>) -> bool {
        match self.owners_of(sender) {
            None => false,
            Some(owners) => !owners.contains(sasl_username),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "\
# sender               owners
joe@example.com        joe
Sales@Example.COM      alice, bob
  carol
@example.org           admin,root
weird@example.net      a,,b  c
";

    fn a(s: &str) -> Address<'_> {
        Address::new(s.as_bytes())
    }

    fn owners(map: &LoginMap, sender: &str) -> Option<Vec<String>> {
        map.owners_of(&a(sender)).map(|o| {
            o.iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        })
    }

    #[test]
    fn parse_and_look_up() {
        let map = LoginMap::parse(MAP).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(owners(&map, "joe@example.com"), Some(vec!["joe".into()]));
        assert_eq!(owners(&map, "JOE@EXAMPLE.COM."), Some(vec!["joe".into()]));
        assert_eq!(
            owners(&map, "sales@example.com"),
            Some(vec!["alice".into(), "bob".into(), "carol".into()])
        );
        assert_eq!(
            owners(&map, "anyone@example.org"),
            Some(vec!["admin".into(), "root".into()])
        );
        assert_eq!(
            owners(&map, "x@sub.example.org"),
            None,
            "@domain is that domain only"
        );
        assert_eq!(
            owners(&map, "weird@example.net"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(owners(&map, "nobody@example.com"), None);
        assert_eq!(owners(&map, ""), None);
        assert_eq!(owners(&map, "joe"), None);
    }

    #[test]
    fn mismatch_follows_postfix() {
        let map = LoginMap::parse(MAP).unwrap();
        // (login, sender, reject_sender_login_mismatch, reject_known_sender_login_mismatch)
        let rows: &[(&str, &str, bool, bool)] = &[
            ("joe", "joe@example.com", false, false),
            ("JOE", "Joe@Example.com", false, false),
            ("alice", "joe@example.com", true, true),
            ("", "joe@example.com", true, true),
            ("", "stranger@example.net", false, false),
            ("joe", "stranger@example.net", true, false),
            ("carol", "sales@example.com", false, false),
            ("root", "x@example.org", false, false),
            ("joe", "", false, false),
            ("", "", false, false),
        ];
        for (login, sender, mismatch, known) in rows {
            assert_eq!(
                map.login_mismatch(login.as_bytes(), &a(sender)),
                *mismatch,
                "{login} {sender}"
            );
            assert_eq!(
                map.known_login_mismatch(login.as_bytes(), &a(sender)),
                *known,
                "{login} {sender}"
            );
        }
    }

    #[test]
    fn parse_errors_have_positions() {
        let text =
            "  x\njoe@example.com\nexample.com joe\nok@example.com joe\nOK@example.com. bob\n\
                    @.example.org  a\nuser@ a\nok2@example.com joe\n  \u{1}\n";
        let errors = LoginMap::parse(text).unwrap_err();
        let got: Vec<(u32, u32, EntryErrorKind)> = errors
            .iter()
            .map(|e| (e.line, e.column, e.error.kind()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, EntryErrorKind::Syntax),
                (2, 16, EntryErrorKind::Syntax),
                (3, 1, EntryErrorKind::Syntax),
                (5, 1, EntryErrorKind::Duplicate),
                (6, 1, EntryErrorKind::Syntax),
                (7, 1, EntryErrorKind::Syntax),
                (8, 17, EntryErrorKind::Syntax),
            ]
        );
        assert_eq!(errors[1].error.problem(), "no login names");
        assert_eq!(
            errors[0].to_string(),
            "line 1, column 1: a continuation line with nothing to continue; expected a sender address at the \
             start of the line (a line starting with whitespace continues the previous one)"
        );
    }

    #[test]
    fn from_pairs_reports_indexes() {
        let map =
            LoginMap::from_pairs([("joe@example.com", "joe"), ("@example.net", "a b")]).unwrap();
        assert!(!map.login_mismatch(b"b", &a("x@example.net")));
        let errors = LoginMap::from_pairs([
            ("joe@example.com", "joe"),
            ("joe", "x"),
            ("a@b.example", ""),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].0, errors[0].1.part), (1, LoginPart::Sender));
        assert_eq!((errors[1].0, errors[1].1.part), (2, LoginPart::Logins));
        assert!(map.heap_bytes() > 0);
    }
}
