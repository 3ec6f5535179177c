//! DNS messages: a query built, a response checked and read, with
//! hickory-proto's message layer (no I/O, no runtime).
//!
//! A response is used only when its id, its question (name, type, class
//! IN) and its QR bit match the query sent; anything else is
//! [`Ignored`] (a stale answer to an earlier try, a spoofing attempt, a
//! stray datagram), and the client keeps waiting. Nothing here panics on
//! what a server sends: a message that does not parse is ignored too.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use policy_core::facts::QueryKind;

use crate::shared::dns::Records;

/// The UDP payload size announced with EDNS0: 1232 bytes, the size DNS
/// Flag Day 2020 settled on, which fits any path's MTU without IP
/// fragmentation (fragments are what off-path spoofing exploits).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

/// Most CNAME records followed within one answer: 8, as resolvers bound
/// their own chains (BIND follows 16 across queries); a longer chain in one
/// message is a loop or an attack, and the answer counts as unknown.
pub(crate) const MAX_CNAME_CHAIN: usize = 8;

/// Most records of one answer kept: 64. A DNS list answers one or a few
/// addresses, a domain a handful of MX; the rest of a huge answer is left
/// out so one answer cannot fill the cache.
pub(crate) const MAX_RECORDS: usize = 64;

/// What a checked response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Records of the kind asked, with the TTL to keep them for (the
    /// lowest of the records and of the CNAMEs followed).
    Found { records: Records, ttl: u32 },
    /// NXDOMAIN or NODATA, with the negative TTL of RFC 2308 (the SOA
    /// record's TTL or MINIMUM, whichever is lower); `None` without an SOA
    /// record, and then it is not cached.
    NotFound { ttl: Option<u32> },
    /// The server could not answer (SERVFAIL, REFUSED, ...): unknown.
    Failed(ResponseCode),
    /// The answer did not fit in the datagram (the TC bit): ask again over
    /// TCP.
    Truncated,
}

/// Why a datagram was not taken as the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ignored {
    /// It is not a DNS message.
    Malformed,
    /// Another id than the query's.
    WrongId,
    /// A query, not a response, or another opcode.
    NotResponse,
    /// Another question than the query's.
    WrongQuestion,
    /// A CNAME chain longer than [`MAX_CNAME_CHAIN`], or one that loops.
    CnameChain,
}

/// The wire form of the query `kind` of `name` (lower-case ASCII without
/// the trailing dot) with `id`, recursion desired, EDNS0 with
/// [`EDNS_PAYLOAD`]. An error for a name that is no domain name (a label
/// over 63 bytes, an empty label).
pub(crate) fn query(id: u16, kind: QueryKind, name: &[u8]) -> Result<Vec<u8>, String> {
    let name = to_name(name)?;
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, RecordType::from(kind.record_type())));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    message.to_vec().map_err(|e| e.to_string())
}

/// `name` as a fully qualified hickory `Name`.
fn to_name(name: &[u8]) -> Result<Name, String> {
    if name.is_empty() {
        return Ok(Name::root());
    }
    let mut name = Name::from_labels(name.split(|&b| b == b'.')).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// The id of a message, if it has a header.
pub(crate) fn id_of(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Check `bytes` against the query (`id`, `kind`, `name`) and read it.
pub(crate) fn parse(bytes: &[u8], id: u16, kind: QueryKind, name: &[u8]) -> Result<Reply, Ignored> {
    if id_of(bytes) != Some(id) {
        return Err(Ignored::WrongId);
    }
    let message = Message::from_vec(bytes).map_err(|_| Ignored::Malformed)?;
    if message.message_type() != MessageType::Response || message.op_code() != OpCode::Query {
        return Err(Ignored::NotResponse);
    }
    let rtype = RecordType::from(kind.record_type());
    let asked = match message.queries() {
        [q] if q.query_type() == rtype && q.query_class() == DNSClass::IN => q.name(),
        _ => return Err(Ignored::WrongQuestion),
    };
    let mut text = Vec::with_capacity(name.len());
    name_bytes(asked, &mut text);
    if text != name {
        return Err(Ignored::WrongQuestion);
    }
    if message.truncated() {
        return Ok(Reply::Truncated);
    }
    match message.response_code() {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            return Ok(Reply::NotFound {
                ttl: negative_ttl(message.name_servers()),
            })
        }
        other => return Ok(Reply::Failed(other)),
    }
    // Follow the CNAME chain from the name asked, within this message.
    let mut target = asked.clone();
    let mut ttl = u32::MAX;
    for _ in 0..=MAX_CNAME_CHAIN {
        let mut found = Found::new(kind);
        for record in message.answers() {
            if record.record_type() == rtype
                && record.dns_class() == DNSClass::IN
                && record.name() == &target
            {
                found.add(record);
            }
        }
        if let Some(records) = found.finish() {
            let ttl = ttl.min(found.ttl);
            return Ok(Reply::Found { records, ttl });
        }
        let cname = message.answers().iter().find_map(|r| match r.data() {
            RData::CNAME(cname) if r.name() == &target && r.dns_class() == DNSClass::IN => {
                Some((cname.0.clone(), r.ttl()))
            }
            _ => None,
        });
        match cname {
            Some((next, cname_ttl)) => {
                target = next;
                ttl = ttl.min(cname_ttl);
            }
            // No data at the end of the chain: NODATA.
            None => {
                return Ok(Reply::NotFound {
                    ttl: negative_ttl(message.name_servers()),
                })
            }
        }
    }
    Err(Ignored::CnameChain)
}

/// The negative TTL of RFC 2308 section 5: the lower of the SOA record's
/// TTL and its MINIMUM field; `None` without an SOA record.
fn negative_ttl(authority: &[Record]) -> Option<u32> {
    authority.iter().find_map(|r| match r.data() {
        RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
        _ => None,
    })
}

/// The records of the kind asked, as they are found.
struct Found {
    kind: QueryKind,
    addresses: Vec<IpAddr>,
    strings: Vec<Box<[u8]>>,
    ttl: u32,
}

impl Found {
    fn new(kind: QueryKind) -> Self {
        Self {
            kind,
            addresses: Vec::new(),
            strings: Vec::new(),
            ttl: u32::MAX,
        }
    }

    fn add(&mut self, record: &Record) {
        if self.addresses.len() + self.strings.len() >= MAX_RECORDS {
            return;
        }
        let before = self.addresses.len() + self.strings.len();
        match record.data() {
            RData::A(a) => self.addresses.push(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => self.addresses.push(IpAddr::V6(aaaa.0)),
            RData::PTR(ptr) => {
                let mut out = Vec::new();
                name_bytes(&ptr.0, &mut out);
                self.strings.push(out.into());
            }
            RData::MX(mx) => {
                let mut out = Vec::new();
                name_bytes(mx.exchange(), &mut out);
                self.strings.push(out.into());
            }
            RData::TXT(txt) => {
                let joined: Vec<u8> = txt
                    .txt_data()
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                self.strings.push(joined.into());
            }
            _ => {}
        }
        if self.addresses.len() + self.strings.len() > before {
            self.ttl = self.ttl.min(record.ttl());
        }
    }

    /// The records, if any was found.
    fn finish(&mut self) -> Option<Records> {
        let strings = std::mem::take(&mut self.strings).into_boxed_slice();
        match self.kind {
            QueryKind::A | QueryKind::Aaaa if !self.addresses.is_empty() => Some(
                Records::Addresses(std::mem::take(&mut self.addresses).into_boxed_slice()),
            ),
            QueryKind::Ptr | QueryKind::Mx if !strings.is_empty() => Some(Records::Names(strings)),
            QueryKind::Txt if !strings.is_empty() => Some(Records::Texts(strings)),
            _ => None,
        }
    }
}

/// `name` as policy-core writes names: lower-case labels joined by dots,
/// without the trailing dot; the root as the empty name.
pub(crate) fn name_bytes(name: &Name, out: &mut Vec<u8>) {
    out.clear();
    for (n, label) in name.iter().enumerate() {
        if n > 0 {
            out.push(b'.');
        }
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Golden responses, built with the crate as a server would send them.

    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};

    use super::*;

    /// A response to `kind` of `name` with `id`: `answers`, `authority`,
    /// `rcode`.
    pub(crate) fn response(
        id: u16,
        kind: QueryKind,
        name: &str,
        rcode: ResponseCode,
        answers: Vec<Record>,
        authority: Vec<Record>,
    ) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .set_recursion_available(true)
            .set_response_code(rcode)
            .add_query(Query::query(n(name), RecordType::from(kind.record_type())));
        m.add_answers(answers);
        m.add_name_servers(authority);
        m.to_vec().unwrap()
    }

    pub(crate) fn n(name: &str) -> Name {
        Name::from_ascii(format!("{name}.")).unwrap()
    }

    pub(crate) fn rec(name: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(n(name), ttl, data)
    }

    fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
        rec(
            zone,
            ttl,
            RData::SOA(SOA::new(
                n("ns.test"),
                n("admin.test"),
                1,
                3600,
                600,
                86400,
                minimum,
            )),
        )
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(A(Ipv4Addr::from(ip)))
    }

    #[test]
    fn queries_are_built_with_edns_and_recursion() {
        let bytes = query(0x1234, QueryKind::Txt, b"2.0.0.127.bl.test").unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert!(m.recursion_desired());
        assert_eq!(m.message_type(), MessageType::Query);
        assert_eq!(m.queries()[0].name(), &n("2.0.0.127.bl.test"));
        assert_eq!(m.queries()[0].query_type(), RecordType::TXT);
        assert_eq!(m.extensions().as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
        // Not a domain name: an error, no panic.
        assert!(query(1, QueryKind::A, &[b'a'; 64]).is_err());
        assert!(query(1, QueryKind::A, b"a..b").is_err());
    }

    #[test]
    fn addresses_and_the_lowest_ttl() {
        let name = "2.0.0.127.bl.test";
        let bytes = response(
            7,
            QueryKind::A,
            name,
            ResponseCode::NoError,
            vec![
                rec(name, 300, a([127, 0, 0, 2])),
                rec(name, 60, a([127, 0, 0, 4])),
            ],
            vec![],
        );
        assert_eq!(
            parse(&bytes, 7, QueryKind::A, name.as_bytes()),
            Ok(Reply::Found {
                records: Records::Addresses(Box::new([
                    "127.0.0.2".parse().unwrap(),
                    "127.0.0.4".parse().unwrap()
                ])),
                ttl: 60
            })
        );
        let v6 = response(
            8,
            QueryKind::Aaaa,
            "mx.test",
            ResponseCode::NoError,
            vec![rec("mx.test", 30, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)))],
            vec![],
        );
        assert!(matches!(
            parse(&v6, 8, QueryKind::Aaaa, b"mx.test"),
            Ok(Reply::Found { ttl: 30, .. })
        ));
    }

    #[test]
    fn cname_chains_are_followed() {
        let bytes = response(
            1,
            QueryKind::A,
            "www.test",
            ResponseCode::NoError,
            vec![
                rec("www.test", 600, RData::CNAME(CNAME(n("Web.Test")))),
                rec("web.test", 100, RData::CNAME(CNAME(n("host.test")))),
                rec("other.test", 5, a([192, 0, 2, 9])),
                rec("host.test", 300, a([192, 0, 2, 1])),
            ],
            vec![],
        );
        assert_eq!(
            parse(&bytes, 1, QueryKind::A, b"www.test"),
            Ok(Reply::Found {
                records: Records::Addresses(Box::new(["192.0.2.1".parse().unwrap()])),
                ttl: 100
            })
        );
        // A chain that loops.
        let looping = response(
            1,
            QueryKind::A,
            "a.test",
            ResponseCode::NoError,
            vec![
                rec("a.test", 60, RData::CNAME(CNAME(n("b.test")))),
                rec("b.test", 60, RData::CNAME(CNAME(n("a.test")))),
            ],
            vec![],
        );
        assert_eq!(
            parse(&looping, 1, QueryKind::A, b"a.test"),
            Err(Ignored::CnameChain)
        );
        // A chain that ends without data: NODATA.
        let dangling = response(
            1,
            QueryKind::A,
            "a.test",
            ResponseCode::NoError,
            vec![rec("a.test", 60, RData::CNAME(CNAME(n("gone.test"))))],
            vec![soa("test", 3600, 120)],
        );
        assert_eq!(
            parse(&dangling, 1, QueryKind::A, b"a.test"),
            Ok(Reply::NotFound { ttl: Some(120) })
        );
    }

    #[test]
    fn nxdomain_and_nodata_take_the_soa_negative_ttl() {
        let name = "9.2.0.192.bl.test";
        let nx = response(
            2,
            QueryKind::A,
            name,
            ResponseCode::NXDomain,
            vec![],
            vec![soa("bl.test", 900, 300)],
        );
        assert_eq!(
            parse(&nx, 2, QueryKind::A, name.as_bytes()),
            Ok(Reply::NotFound { ttl: Some(300) })
        );
        // The lower of the two: here the record's TTL.
        let nodata = response(
            3,
            QueryKind::Mx,
            "nomx.test",
            ResponseCode::NoError,
            vec![],
            vec![soa("test", 60, 3600)],
        );
        assert_eq!(
            parse(&nodata, 3, QueryKind::Mx, b"nomx.test"),
            Ok(Reply::NotFound { ttl: Some(60) })
        );
        // Without an SOA: not cacheable.
        let bare = response(
            4,
            QueryKind::A,
            name,
            ResponseCode::NXDomain,
            vec![],
            vec![],
        );
        assert_eq!(
            parse(&bare, 4, QueryKind::A, name.as_bytes()),
            Ok(Reply::NotFound { ttl: None })
        );
        // Records of another type only: NODATA.
        let other = response(
            5,
            QueryKind::A,
            "x.test",
            ResponseCode::NoError,
            vec![rec("x.test", 60, RData::TXT(TXT::new(vec!["t".into()])))],
            vec![],
        );
        assert_eq!(
            parse(&other, 5, QueryKind::A, b"x.test"),
            Ok(Reply::NotFound { ttl: None })
        );
    }

    #[test]
    fn names_texts_and_the_null_mx() {
        let mx = response(
            1,
            QueryKind::Mx,
            "example.test",
            ResponseCode::NoError,
            vec![
                rec(
                    "example.test",
                    300,
                    RData::MX(MX::new(10, n("MX1.Example.Test"))),
                ),
                rec(
                    "example.test",
                    300,
                    RData::MX(MX::new(20, n("mx2.example.test"))),
                ),
            ],
            vec![],
        );
        assert_eq!(
            parse(&mx, 1, QueryKind::Mx, b"example.test"),
            Ok(Reply::Found {
                records: Records::Names(Box::new([
                    b"mx1.example.test"[..].into(),
                    b"mx2.example.test"[..].into()
                ])),
                ttl: 300
            })
        );
        let null = response(
            1,
            QueryKind::Mx,
            "nullmx.test",
            ResponseCode::NoError,
            vec![rec("nullmx.test", 300, RData::MX(MX::new(0, Name::root())))],
            vec![],
        );
        assert_eq!(
            parse(&null, 1, QueryKind::Mx, b"nullmx.test"),
            Ok(Reply::Found {
                records: Records::Names(Box::new([b""[..].into()])),
                ttl: 300
            })
        );
        let ptr = response(
            1,
            QueryKind::Ptr,
            "1.2.0.192.in-addr.arpa",
            ResponseCode::NoError,
            vec![rec(
                "1.2.0.192.in-addr.arpa",
                60,
                RData::PTR(PTR(n("mail.example.test"))),
            )],
            vec![],
        );
        assert!(matches!(
            parse(&ptr, 1, QueryKind::Ptr, b"1.2.0.192.in-addr.arpa"),
            Ok(Reply::Found { records: Records::Names(names), .. }) if &*names[0] == b"mail.example.test"
        ));
        let txt = response(
            1,
            QueryKind::Txt,
            "2.0.0.127.bl.test",
            ResponseCode::NoError,
            vec![rec(
                "2.0.0.127.bl.test",
                60,
                RData::TXT(TXT::new(vec![
                    "Listed: ".into(),
                    "see https://bl.test/".into(),
                ])),
            )],
            vec![],
        );
        assert_eq!(
            parse(&txt, 1, QueryKind::Txt, b"2.0.0.127.bl.test"),
            Ok(Reply::Found {
                records: Records::Texts(Box::new([b"Listed: see https://bl.test/"[..].into()])),
                ttl: 60
            })
        );
    }

    #[test]
    fn truncated_failed_and_foreign_responses() {
        let name = "2.0.0.127.bl.test";
        let mut m = Message::from_vec(&response(
            9,
            QueryKind::Txt,
            name,
            ResponseCode::NoError,
            vec![],
            vec![],
        ))
        .unwrap();
        m.set_truncated(true);
        let truncated = m.to_vec().unwrap();
        assert_eq!(
            parse(&truncated, 9, QueryKind::Txt, name.as_bytes()),
            Ok(Reply::Truncated)
        );

        let servfail = response(
            9,
            QueryKind::A,
            name,
            ResponseCode::ServFail,
            vec![],
            vec![],
        );
        assert_eq!(
            parse(&servfail, 9, QueryKind::A, name.as_bytes()),
            Ok(Reply::Failed(ResponseCode::ServFail))
        );
        let refused = response(9, QueryKind::A, name, ResponseCode::Refused, vec![], vec![]);
        assert_eq!(
            parse(&refused, 9, QueryKind::A, name.as_bytes()),
            Ok(Reply::Failed(ResponseCode::Refused))
        );

        let good = response(
            9,
            QueryKind::A,
            name,
            ResponseCode::NoError,
            vec![rec(name, 5, a([127, 0, 0, 2]))],
            vec![],
        );
        // Wrong id, wrong name, wrong type: ignored.
        assert_eq!(
            parse(&good, 10, QueryKind::A, name.as_bytes()),
            Err(Ignored::WrongId)
        );
        assert_eq!(
            parse(&good, 9, QueryKind::A, b"3.0.0.127.bl.test"),
            Err(Ignored::WrongQuestion)
        );
        assert_eq!(
            parse(&good, 9, QueryKind::Txt, name.as_bytes()),
            Err(Ignored::WrongQuestion)
        );
        // The name compares without regard to case (0x20 and servers' habits).
        let upper = response(
            9,
            QueryKind::A,
            "2.0.0.127.BL.test",
            ResponseCode::NoError,
            vec![],
            vec![],
        );
        assert!(parse(&upper, 9, QueryKind::A, name.as_bytes()).is_ok());
        // A query echoed back is not an answer.
        let echoed = query(9, QueryKind::A, name.as_bytes()).unwrap();
        assert_eq!(
            parse(&echoed, 9, QueryKind::A, name.as_bytes()),
            Err(Ignored::NotResponse)
        );
        // Garbage and every prefix of a good answer: ignored, never a panic.
        assert_eq!(parse(b"", 9, QueryKind::A, b"x"), Err(Ignored::WrongId));
        for end in 0..good.len() {
            let _ = parse(&good[..end], 9, QueryKind::A, name.as_bytes());
        }
        let mut flipped = good.clone();
        for i in 2..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = parse(&flipped, 9, QueryKind::A, name.as_bytes());
            flipped[i] ^= 0xff;
        }
    }
}
