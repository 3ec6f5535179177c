//! postgrey's recipient whitelist: [`RecipientWhitelist`].

use super::clients::{add_regex, add_suffix};
use super::file::{self, finish, Entry};
use crate::list::{
    EntryError, EntryErrorKind, EntryToken, FileEntryError, List, ListBuilder, ListKind,
};
use crate::request::Address;

/// A `postgrey_whitelist_recipients` file (postgrey 1.37's format), compiled
/// for lookups that allocate nothing. See the
/// [module docs](super#recipient-whitelist) for the entries and how each is
/// matched.
///
/// ```
/// use policy_core::greylist::RecipientWhitelist;
/// use policy_core::Address;
///
/// let whitelist = RecipientWhitelist::parse(
///     "postmaster@\n\
///      abuse@example.com\n\
///      lists.example.org\n\
///      /^noreply-/\n",
/// )
/// .map_err(|errors| errors[0].clone())?;
/// assert!(whitelist.matches(&Address::new(b"PostMaster@example.net")));
/// assert!(whitelist.matches(&Address::new(b"abuse+spam@example.com")));
/// assert!(whitelist.matches(&Address::new(b"joe@dev.lists.example.org")));
/// assert!(whitelist.matches(&Address::new(b"noreply-42@example.com")));
/// assert!(!whitelist.matches(&Address::new(b"abuse@example.org")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecipientWhitelist {
    /// `user@domain` and `user@` entries (keys `user@domain`, `user@`).
    users: List,
    /// The longest user of `users`, in bytes: bounds which `+` of a
    /// recipient can end a user.
    max_user_len: usize,
    /// Whether some user of `users` contains `+`: otherwise only the first
    /// `+` of a recipient can end a user.
    user_has_plus: bool,
    /// Domain entries that are valid domains, as `.domain` entries: the
    /// domain and every subdomain.
    domains: List,
    /// `/regex/` entries, and postgrey's own regex for the entries that do
    /// not fit the tables: matched on the whole recipient.
    patterns: List,
    /// Entries read.
    len: usize,
}

impl RecipientWhitelist {
    /// Compile the text of a recipient whitelist file. Every bad entry is
    /// reported with its line and column (at most
    /// [`MAX_FILE_ERRORS`](crate::list::MAX_FILE_ERRORS), then one more
    /// saying the rest was not read).
    pub fn parse(text: &str) -> Result<Self, Vec<FileEntryError>> {
        let mut builder = Builder {
            users: ListBuilder::new(Some(ListKind::Address)),
            max_user_len: 0,
            user_has_plus: false,
            domains: ListBuilder::new(Some(ListKind::Domain)),
            patterns: ListBuilder::new(Some(ListKind::Regex)),
            len: 0,
        };
        let read = file::for_each_entry(text, |entry| builder.add(entry));
        finish(read, builder.build())
    }

    /// Whether the recipient is whitelisted, matching its whole address as
    /// sent (`raw`) as postgrey does, ignoring ASCII case: `user@domain`
    /// and `user@` entries also match `user+extension@...`; a domain entry
    /// matches that domain and its subdomains; a `/regex/` matches anywhere
    /// in the address. Allocates nothing (the regex set fills its per-thread
    /// cache on first use).
    pub fn matches(&self, recipient: &Address<'_>) -> bool {
        let raw = recipient.raw;
        if self.patterns.contains_bytes(raw) {
            return true;
        }
        if !self.users.is_empty() && self.matches_user(raw) {
            return true;
        }
        if !self.domains.is_empty() {
            // postgrey: `(?:@|\.)DOMAIN$` on the whole address.
            let tail = match raw.iter().rposition(|&b| b == b'@') {
                // `@DOMAIN` or `.DOMAIN` at the end: the part after the last
                // `@` is the domain or a subdomain (DOMAIN has no `@`).
                Some(at) => &raw[at + 1..],
                // `.DOMAIN` at the end: what follows the first dot is the
                // domain or a subdomain.
                None => match raw.iter().position(|&b| b == b'.') {
                    Some(dot) => &raw[dot + 1..],
                    None => return false,
                },
            };
            // The domain table ignores one trailing dot; postgrey does not.
            return !tail.ends_with(b".") && self.domains.contains_domain(tail);
        }
        false
    }

    /// postgrey: `^USER(?:\+[^@]+)?@` (`user@`) and
    /// `^USER(?:\+[^@]+)?@DOMAIN$` (`user@domain`): what comes before the
    /// first `@` is the user, or the user, `+` and a non-empty extension.
    fn matches_user(&self, raw: &[u8]) -> bool {
        let Some(at) = raw.iter().position(|&b| b == b'@') else {
            return false;
        };
        let head = &raw[..at];
        let tail = &raw[at + 1..];
        // A `user@domain` entry's domain has no `@` and no trailing dot:
        // such a tail can only match `user@` entries, looked up with an
        // empty domain.
        let domain = if tail.ends_with(b".") || tail.contains(&b'@') {
            &[][..]
        } else {
            tail
        };
        let user_is = |local: &[u8]| self.users.contains_address(&Address { raw, local, domain });
        if user_is(head) {
            return true;
        }
        for (plus, _) in head.iter().enumerate().filter(|&(_, &b)| b == b'+') {
            if plus > self.max_user_len {
                break;
            }
            if plus + 1 < head.len() && user_is(&head[..plus]) {
                return true;
            }
            if !self.user_has_plus {
                break;
            }
        }
        false
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
        self.users.heap_bytes() + self.domains.heap_bytes() + self.patterns.heap_bytes()
    }
}

struct Builder {
    users: ListBuilder,
    max_user_len: usize,
    user_has_plus: bool,
    domains: ListBuilder,
    patterns: ListBuilder,
    len: usize,
}

impl Builder {
    /// Add one entry, in postgrey 1.37's order of shapes.
    fn add(&mut self, entry: Entry<'_>) -> Result<(), FileEntryError> {
        let result = if let Some(pattern) = entry.regex() {
            add_regex(&mut self.patterns, pattern)
        } else if let Some((user, domain)) = entry.text.split_once('@') {
            self.add_user(entry.text, user, domain)
        } else {
            self.add_domain(entry.text)
        };
        result.map_err(|error| entry.error(error))?;
        self.len += 1;
        Ok(())
    }

    /// `user@domain` or `user@` (split at the first `@`).
    fn add_user(&mut self, text: &str, user: &str, domain: &str) -> Result<(), EntryError> {
        if !user.is_empty()
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
        {
            match self.users.add(EntryToken::Bare(text)) {
                Ok(_) => {
                    self.max_user_len = self.max_user_len.max(user.len());
                    self.user_has_plus |= user.contains('+');
                    return Ok(());
                }
                Err(error) if error.kind() == EntryErrorKind::TooMany => return Err(error),
                // Not a valid address: postgrey's own regex below keeps its meaning.
                Err(_) => {}
            }
        }
        let mut pattern = format!(r"^{}(?:\+[^@]+)?@", regex::escape(user));
        if !domain.is_empty() {
            pattern.push_str(&regex::escape(domain));
            pattern.push('$');
        }
        add_regex(&mut self.patterns, &pattern)
    }

    /// A domain: that domain and its subdomains.
    fn add_domain(&mut self, domain: &str) -> Result<(), EntryError> {
        add_suffix(&mut self.domains, &mut self.patterns, domain, "@")
    }

    fn build(self) -> Result<RecipientWhitelist, EntryError> {
        Ok(RecipientWhitelist {
            users: self.users.build()?,
            max_user_len: self.max_user_len,
            user_has_plus: self.user_has_plus,
            domains: self.domains.build()?,
            patterns: self.patterns.build()?,
            len: self.len,
        })
    }
}
