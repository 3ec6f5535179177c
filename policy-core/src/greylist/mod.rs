//! Greylisting: `greylist` rules, their triplets and snapshots, and
//! postgrey compatibility.
//!
//! - The rule (`rule.rs`): a compiled `greylist` rule, the triplet of a
//!   request (client network, normalised sender, recipient), the
//!   whitelists, and its step while deciding, through the state's backend.
//!   Compiling a `greylist` item stays in the language's compiler
//!   (`lang/compile/greylists.rs`): it is a part of the compiler's own
//!   `impl`, and the compiler sits above this module.
//! - The table (`table.rs`, [`GreylistTable`]):
//!   the triplets and client networks of one rule, postgrey's semantics,
//!   in the sharded tables limits use too; its snapshots (`snapshot.rs`),
//!   framed as limit snapshots are.
//! - postgrey's formats: the sender as postgrey keys its triplets
//!   ([`normalize_sender`], `sender.rs`) and postgrey's whitelist files
//!   ([`ClientWhitelist`], [`RecipientWhitelist`]; `clients.rs`,
//!   `recipients.rs`, `file.rs`), so that a postgrey installation's files
//!   and database keys carry over unchanged.
//!
//! Everything here follows **postgrey 1.37** (2016, the last release; source:
//! the `postgrey` Perl script, functions `do_sender_substitutions`,
//! `read_clients_whitelists`, `read_recipients_whitelists` and
//! `smtpd_access_policy`, and its man page, section "Whitelists"). Where
//! postgrey's code and man page disagree, or where a Rust regex cannot mean
//! what a Perl one does, the docs below say so.
//!
//! What the postgrey formats do not do: read files (the caller passes the
//! text).
//!
//! # Sender
//!
//! See [`normalize_sender`]: lower case, BATV `prvs=` unwrapped, the
//! `+extension` removed, VERP numbers folded to `#`.
//!
//! # File format
//!
//! Both files have one entry a line. Everything from the first `#` is a
//! comment (even inside a `/regex/`, as in postgrey), leading and trailing
//! whitespace is ignored, and blank lines are skipped. An entry with
//! whitespace inside is an error (postgrey warns and skips it). `/pattern/`
//! (anything between a leading and a trailing `/`, no whitespace) is a
//! regular expression, always case-insensitive, matched anywhere in the value
//! (anchor it with `^` and `$`).
//!
//! Regular expressions are Rust's `regex` syntax, not Perl's: the common
//! subset (`^ $ . * + ? {n,m} [...] \d \w \s \b (...) |`, escapes) means the
//! same; look-around, backreferences and other Perl-only constructs are
//! errors rather than being silently misread. As in postgrey, they match the
//! bytes as sent: `.` is one byte, `\d`, `\w`, `\s` and `\b` are ASCII, and
//! case is ignored for ASCII letters only.
//!
//! # Client whitelist
//!
//! `postgrey_whitelist_clients` (`--whitelist-clients`). Entries, in the
//! order postgrey tries their shapes:
//!
//! | entry | matches |
//! |---|---|
//! | `/regex/` | a client name (`client_name`) the regex matches |
//! | `192.0.2.1` | that IPv4 address |
//! | `192.0.2.0/24` | an IPv4 address in that network (one or two digits of prefix; host bits are ignored: `192.0.2.77/24` is `192.0.2.0/24`) |
//! | `192.0.2` | `192.0.2.0/24` (the man page: "you can also leave off one number") |
//! | `192.0` | `192.0.0.0/16`: the man page's meaning and postgrey 1.33's (a prefix of the dotted address); postgrey 1.37's code asks `NetAddr::IP` for a /24 here, which looks like a slip |
//! | anything with two `:` | an IPv6 address, optionally `/prefix` (`2001:db8::/32`); IPv4-mapped clients match IPv4 entries |
//! | `example.com` | a client name that is `example.com` or ends with `.example.com` (postgrey: `(?:^\|\.)example\.com$`, ignoring case) |
//!
//! A client whose name is `unknown` (Postfix's word for an address without a
//! verified name) or empty matches no name or regex entry, only address
//! entries. A single number (`10`) is not an address entry in postgrey 1.37:
//! it is a name, which no host name ends with. Entries postgrey would drop
//! without a word (an octet above 255, a prefix above 32 or 128, text with
//! two `:` that is not an IPv6 address) and names with a `/` (which no host
//! name has) are errors here.
//!
//! # Recipient whitelist
//!
//! `postgrey_whitelist_recipients` (`--whitelist-recipients`), matched on
//! the whole recipient address as sent, ignoring ASCII case:
//!
//! | entry | matches (postgrey's regex) |
//! |---|---|
//! | `/regex/` | a recipient the regex matches |
//! | `postmaster@` | `postmaster@` any domain, and `postmaster+anything@` (`^postmaster(?:\+[^@]+)?@`) |
//! | `joe@example.com` | that address and `joe+anything@example.com`; not subdomains (`^joe(?:\+[^@]+)?@example\.com$`) |
//! | `example.com` | any address at `example.com` or a subdomain (`(?:@\|\.)example\.com$`) |
//!
//! The extension delimiter is `+` only, and the extension must not be empty
//! (`joe+@example.com` is not `joe@example.com`'s). `@example.com` is not
//! a domain entry in postgrey: it is user `""` at `example.com`, which
//! matches only `@example.com` and `+x@example.com`; so here too (write
//! `example.com` for the domain).
//!
//! # Cost
//!
//! Entries of the common shapes go into the crate's [`List`](crate::list::List)
//! tables: host names and domains into a subdomain table, users and
//! addresses into an address table, addresses and networks into sorted
//! ranges. Regexes, and entries of unusual shapes (postgrey's own regex
//! for them, with the same meaning), are compiled into one regex set. A
//! lookup is a few hash probes, a binary search and one regex-set pass, and
//! allocates nothing.

mod clients;
mod file;
mod recipients;
pub(crate) mod rule;
mod sender;
pub(crate) mod snapshot;
pub(crate) mod table;

#[cfg(test)]
mod tests;

pub use clients::ClientWhitelist;
pub use recipients::RecipientWhitelist;
pub use rule::{GreyCall, DEFAULT_GREYLIST_CAPACITY, MAX_GREYLIST_CAPACITY};
pub use sender::normalize_sender;
pub use snapshot::GREYLIST_SNAPSHOT_MAGIC;
pub use table::{
    GreyCounts, GreyVerdict, GreylistTable, Timers, CLIENTS_PER_TRIPLET_CAPACITY,
    PASS_COUNT_INTERVAL_MS,
};

pub use crate::limits::snapshot::GREYLIST_SNAPSHOT_VERSION;
