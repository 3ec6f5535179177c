//! Compiling DNS lists (`dnsbl NAME { ... }`, `rhsbl NAME { ... }`) and the
//! tests on outside facts (`in dnsbl`, `in rhsbl`, `fcrdns`, ...).

use std::net::Ipv4Addr;

use super::{suggest, to_u32, CompiledTest, Compiler, Declared};
use crate::lang::ast::{AnswerAst, DnsListDecl, DnsListRef, Name, Str};
use crate::lang::outside::{ipv4_bits, AnswerMatch, DnsList, ListSide, Outside};
use crate::lang::program::Test;
use crate::template::FieldType;

/// The longest DNS list zone: a query name is the zone after 64 bytes of
/// reversed IPv6 nibbles, and a name is at most 253 bytes. (An RHSBL's
/// domain may be longer than 64 bytes; such names are cut and match
/// nothing.)
pub(crate) const MAX_DNSBL_ZONE_BYTES: usize = 253 - 64;

/// The most `answer` entries of one DNS list.
pub const MAX_DNS_LIST_ANSWERS: usize = 64;

impl ListSide {
    fn keyword(self) -> &'static str {
        match self {
            Self::Dnsbl => "dnsbl",
            Self::Rhsbl => "rhsbl",
        }
    }
}

impl Compiler<'_> {
    /// Declare `dnsbl NAME { ... }` or `rhsbl NAME { ... }`.
    pub(super) fn declare_dns_list(&mut self, decl: &DnsListDecl) {
        let keyword = decl.side.keyword();
        if let Some(first) = self.dns_lists.get(&decl.name.text) {
            let line = self.line_of(first.name.span);
            self.error(
                decl.name.span,
                format!(
                    "duplicate DNS list `{}`; expected a name not used by another `dnsbl` or \
                     `rhsbl` (first declared on line {line})",
                    decl.name.text
                ),
            );
            return;
        }
        let index = self.dns_list(decl, keyword);
        self.dns_lists.insert(
            decl.name.text.clone(),
            Declared {
                name: decl.name.clone(),
                index,
                used: false,
            },
        );
    }

    fn dns_list(&mut self, decl: &DnsListDecl, keyword: &str) -> Option<u32> {
        let Some(zone) = &decl.zone else {
            self.error(
                decl.head,
                format!(
                    "`{keyword} {}` has no zone; expected `zone \"...\"` (the list's DNS zone, \
                     such as \"zen.spamhaus.org\")",
                    decl.name.text
                ),
            );
            return None;
        };
        let zone = self.zone(zone)?;
        if decl.answers.len() > MAX_DNS_LIST_ANSWERS {
            self.error(
                decl.head,
                format!(
                    "`{keyword} {}` has {} answers; expected at most {MAX_DNS_LIST_ANSWERS}",
                    decl.name.text,
                    decl.answers.len()
                ),
            );
            return None;
        }
        let mut answers = Vec::with_capacity(decl.answers.len());
        let mut ok = true;
        for answer in &decl.answers {
            match self.answer(answer) {
                Some(a) => answers.push(a),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        self.program.dns_lists.push(DnsList {
            name: decl.name.text.clone().into_boxed_str(),
            side: decl.side,
            zone: zone.into_boxed_slice(),
            answers: answers.into_boxed_slice(),
            txt: decl.txt,
        });
        Some(to_u32(self.program.dns_lists.len() - 1))
    }

    /// `zone` as a DNS list zone (lower case, no trailing dot), or an error.
    fn zone(&mut self, zone: &Str) -> Option<Vec<u8>> {
        let name = dns_zone(&zone.value);
        if name.is_none() {
            self.error(
                zone.span,
                format!(
                    "`{}` is not a DNS zone; expected a domain name such as \
                     \"zen.spamhaus.org\" (letters, digits, `-` and `_` in labels of 1 \
                     to 63 bytes, at most {MAX_DNSBL_ZONE_BYTES} bytes)",
                    zone.value
                ),
            );
        }
        name
    }

    /// One `answer` entry.
    fn answer(&mut self, answer: &AnswerAst) -> Option<AnswerMatch> {
        match answer {
            AnswerAst::Range(first, last) => {
                let from = self.answer_address(first)?;
                let to = match last {
                    Some(last) => self.answer_address(last)?,
                    None => from,
                };
                if to < from {
                    let span = first.span.to(last.as_ref().map_or(first.span, |l| l.span));
                    self.error(
                        span,
                        format!(
                            "the range {}-{} ends before it starts; expected the lower address first",
                            first.value,
                            last.as_ref().map_or("", |l| l.value.as_str())
                        ),
                    );
                    return None;
                }
                Some(AnswerMatch::Range {
                    first: from,
                    last: to,
                })
            }
            AnswerAst::Mask(mask) => {
                let bits = match mask.value.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => self.answer_address(mask)?,
                };
                if bits == 0 {
                    self.error(
                        mask.span,
                        "a mask of 0 matches no answer; expected the bits a listing sets \
                         (such as 0.0.0.8)"
                            .to_owned(),
                    );
                    return None;
                }
                Some(AnswerMatch::Mask(bits))
            }
        }
    }

    fn answer_address(&mut self, text: &Str) -> Option<u32> {
        match text.value.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ipv4_bits(ip)),
            Err(_) => {
                self.error(
                    text.span,
                    format!(
                        "`{}` is not an IPv4 address; expected an answer such as 127.0.0.2",
                        text.value
                    ),
                );
                None
            }
        }
    }

    /// `FIELD in dnsbl LIST` or `FIELD in rhsbl LIST`.
    pub(super) fn in_dns_list(
        &mut self,
        field: &Name,
        side: ListSide,
        list: &DnsListRef,
    ) -> Option<CompiledTest> {
        let f = self.field(field);
        let list = self.dns_list_ref(side, list);
        let f = f?;
        let wanted = match side {
            ListSide::Dnsbl => FieldType::Ip,
            ListSide::Rhsbl => FieldType::Domain,
        };
        if f.field_type() != wanted {
            let message = match side {
                ListSide::Dnsbl => format!(
                    "`{}` is not an address; expected an IP field (client_address) before \
                     `in dnsbl`{}",
                    field.text,
                    if f.field_type() == FieldType::Domain {
                        " (domains are looked up with `in rhsbl`)"
                    } else {
                        ""
                    }
                ),
                ListSide::Rhsbl => format!(
                    "`{}` is not a domain; expected sender_domain, helo_name, client_name, \
                     reverse_client_name or recipient_domain before `in rhsbl`{}",
                    field.text,
                    if f.field_type() == FieldType::Ip {
                        " (addresses are looked up with `in dnsbl`)"
                    } else {
                        ""
                    }
                ),
            };
            self.error(field.span, message);
            return None;
        }
        Some((
            Test::Outside(
                Outside::List {
                    field: f,
                    list: list?,
                },
                0,
            ),
            false,
        ))
    }

    /// The list a test names: an inline zone (one list per zone and side)
    /// or a declared list of the same side.
    fn dns_list_ref(&mut self, side: ListSide, list: &DnsListRef) -> Option<u32> {
        match list {
            DnsListRef::Zone(zone) => {
                let zone = self.zone(zone)?;
                let found = self.program.dns_lists.iter().position(|l| {
                    l.side == side
                        && *l.zone == *zone
                        && l.answers.is_empty()
                        && !l.txt
                        && l.name.as_bytes() == &*zone
                });
                Some(match found {
                    Some(i) => to_u32(i),
                    None => {
                        self.program.dns_lists.push(DnsList {
                            name: String::from_utf8_lossy(&zone).into(),
                            side,
                            zone: zone.into_boxed_slice(),
                            answers: Box::default(),
                            txt: false,
                        });
                        to_u32(self.program.dns_lists.len() - 1)
                    }
                })
            }
            DnsListRef::Named(name) => {
                let Some(declared) = self.dns_lists.get_mut(&name.text) else {
                    let mut names: Vec<&str> = self.dns_lists.keys().map(String::as_str).collect();
                    names.sort_unstable();
                    let hint = suggest::hint(&name.text, names);
                    self.error(
                        name.span,
                        format!(
                            "unknown DNS list `{}`; expected a list declared with `{} NAME {{ zone \
                             \"...\" }}` or a quoted zone{hint}",
                            name.text,
                            side.keyword()
                        ),
                    );
                    return None;
                };
                declared.used = true;
                let index = declared.index?;
                let declared_side = self.program.dns_lists.get(index as usize)?.side;
                if declared_side != side {
                    self.error(
                        name.span,
                        format!(
                            "`{}` is declared with `{}`; expected a list declared with `{}` after \
                             `in {}`",
                            name.text,
                            declared_side.keyword(),
                            side.keyword(),
                            side.keyword()
                        ),
                    );
                    return None;
                }
                Some(index)
            }
        }
    }

    /// A predicate on outside facts (`fcrdns`, ...), if `name` is one.
    pub(super) fn outside_predicate(name: &Name) -> Option<CompiledTest> {
        Outside::predicate(&name.text).map(|test| (Test::Outside(test, 0), false))
    }
}

/// `zone` as a DNS list zone (lower case, no trailing dot), if it is a
/// domain name.
fn dns_zone(zone: &str) -> Option<Vec<u8>> {
    let zone = zone.strip_suffix('.').unwrap_or(zone);
    if zone.is_empty() || zone.len() > MAX_DNSBL_ZONE_BYTES {
        return None;
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    zone.split('.')
        .all(label_ok)
        .then(|| zone.to_ascii_lowercase().into_bytes())
}
