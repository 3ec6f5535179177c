//! The DNS client against a real resolver: unbound with the test zones
//! (`tests/policyd/dns/zones.conf`), for every kind of query, truncation, the cache and the deadline. The language asks only A
//! queries today (`in dnsbl`), so these tests ask through the client's
//! [`Questions`] seam, as later conditions (PTR, MX, TXT) will.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy_core::facts::{Answer, QueryKind};
use policy_core::{NoFiles, Policy};

use super::client::{Client, Questions, RoundReport};
use crate::cli::DnsSettings;
use crate::shared::dns::DnsShared;

#[path = "../../tests/policyd/unbound.rs"]
mod unbound;

use unbound::Unbound;

/// What a question got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Addresses(Vec<IpAddr>),
    Strings(Vec<String>),
    NotFound,
    Unknown,
}

/// A test's questions and their answers.
#[derive(Debug, Default)]
struct Asked {
    items: Vec<(QueryKind, String, Option<Got>)>,
}

impl Asked {
    fn new(questions: &[(QueryKind, &str)]) -> Self {
        Self {
            items: questions
                .iter()
                .map(|(k, n)| (*k, (*n).to_owned(), None))
                .collect(),
        }
    }

    fn got(&self, kind: QueryKind, name: &str) -> Got {
        let found = self.items.iter().find(|(k, n, _)| *k == kind && n == name);
        match found {
            Some((_, _, Some(got))) => got.clone(),
            other => panic!("{name} {kind:?} not answered: {other:?}"),
        }
    }
}

impl Questions for Asked {
    type Id = usize;

    fn each_pending(&self, mut f: impl FnMut(usize, QueryKind, &[u8])) {
        for (i, (kind, name, got)) in self.items.iter().enumerate() {
            if got.is_none() {
                f(i, *kind, name.as_bytes());
            }
        }
    }

    fn supply(&mut self, id: usize, answer: Answer<'_>) {
        let text = |s: &[&[u8]]| {
            let mut v: Vec<String> = s
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect();
            v.sort();
            Got::Strings(v)
        };
        let got = match answer {
            Answer::Addresses(a) => {
                let mut a = a.to_vec();
                a.sort();
                Got::Addresses(a)
            }
            Answer::Names(n) => text(n),
            Answer::Texts(t) => text(t),
            Answer::NotFound => Got::NotFound,
            _ => Got::Unknown,
        };
        if let Some(item) = self.items.get_mut(id) {
            item.2.get_or_insert(got);
        }
    }

    fn expire(&mut self) {
        for item in &mut self.items {
            item.2.get_or_insert(Got::Unknown);
        }
    }
}

/// The shared DNS state of a daemon asking `server`, with `deadline`.
fn shared(server: std::net::SocketAddr, deadline: Duration) -> DnsShared {
    let dns = DnsShared::new(DnsSettings {
        servers: vec![server],
        deadline,
        ..DnsSettings::default()
    });
    let _ = dns.servers.set(Arc::from(vec![server]));
    dns
}

/// A policy whose DNS lists are bl.test, rbl.test and slow.test.
fn policy() -> Policy {
    let text = "rule a { if client_address in dnsbl \"bl.test\" then REJECT }\n\
                rule b { if client_address in dnsbl \"rbl.test\" then REJECT }\n\
                rule c { if client_address in dnsbl \"slow.test\" then REJECT }\n";
    Policy::compile("t.conf", text, &mut NoFiles)
        .unwrap()
        .policy
}

fn ips(list: &[&str]) -> Got {
    let mut v: Vec<IpAddr> = list.iter().map(|s| s.parse().unwrap()).collect();
    v.sort();
    Got::Addresses(v)
}

fn strings(list: &[&str]) -> Got {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    Got::Strings(v)
}

const QUESTIONS: &[(QueryKind, &str)] = &[
    (QueryKind::A, "66.2.0.192.bl.test"),
    (QueryKind::Txt, "66.2.0.192.bl.test"),
    (QueryKind::A, "10.2.0.192.bl.test"),
    (QueryKind::A, "1.2.0.192.bl.test"),
    (
        QueryKind::A,
        "6.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test",
    ),
    (QueryKind::A, "spam.example.rbl.test"),
    (QueryKind::Ptr, "66.2.0.192.in-addr.arpa"),
    (QueryKind::Ptr, "77.2.0.192.in-addr.arpa"),
    (QueryKind::Ptr, "1.2.0.192.in-addr.arpa"),
    (
        QueryKind::Ptr,
        "6.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
    ),
    (QueryKind::A, "mail.good.example"),
    (QueryKind::Aaaa, "mail.good.example"),
    (QueryKind::A, "mail.liar.example"),
    (QueryKind::A, "helo.good.example"),
    (QueryKind::Mx, "good.example"),
    (QueryKind::Mx, "nomx.example"),
    (QueryKind::Mx, "nullmx.example"),
    (QueryKind::A, "nowhere.example"),
    (QueryKind::Txt, "big.example"),
];

/// Every kind, in one round: the answers, all sent at once. (CNAME chains
/// are tested on crafted answers in `message`: unbound 1.17 does not
/// follow a CNAME of its local data.)
#[test]
fn every_kind_of_question_against_unbound() {
    let Some(unbound) = Unbound::start("client-kinds") else {
        return;
    };
    let dns = shared(unbound.addr(), Duration::from_secs(5));
    let policy = policy();
    let mut client = Client::new();
    let mut asked = Asked::new(QUESTIONS);
    let deadline = Instant::now() + dns.settings.deadline;
    let report = client.round(&dns, &policy, &mut asked, deadline, 0, "test");
    let n = QUESTIONS.len();
    assert_eq!(report.answered, n, "{report:?}\n{}", unbound.log());
    assert_eq!(report.cached, 0);
    assert!(report.sent >= n);

    use QueryKind::{Aaaa, Mx, Ptr, Txt, A};
    assert_eq!(asked.got(A, "66.2.0.192.bl.test"), ips(&["127.0.0.2"]));
    assert_eq!(
        asked.got(Txt, "66.2.0.192.bl.test"),
        strings(&["Listed: see https://bl.test/?192.0.2.66"])
    );
    assert_eq!(asked.got(A, "10.2.0.192.bl.test"), ips(&["127.0.0.10"]));
    assert_eq!(asked.got(A, "1.2.0.192.bl.test"), Got::NotFound);
    assert_eq!(asked.got(A, QUESTIONS[4].1), ips(&["127.0.0.2"]));
    assert_eq!(asked.got(A, "spam.example.rbl.test"), ips(&["127.0.0.2"]));
    assert_eq!(
        asked.got(Ptr, "66.2.0.192.in-addr.arpa"),
        strings(&["mail.good.example"])
    );
    assert_eq!(
        asked.got(Ptr, "77.2.0.192.in-addr.arpa"),
        strings(&["mail.liar.example"])
    );
    assert_eq!(asked.got(Ptr, "1.2.0.192.in-addr.arpa"), Got::NotFound);
    assert_eq!(
        asked.got(Ptr, QUESTIONS[9].1),
        strings(&["mail.good.example"])
    );
    assert_eq!(asked.got(A, "mail.good.example"), ips(&["192.0.2.66"]));
    assert_eq!(asked.got(Aaaa, "mail.good.example"), ips(&["2001:db8::66"]));
    assert_eq!(asked.got(A, "mail.liar.example"), ips(&["198.51.100.7"]));
    assert_eq!(
        asked.got(A, "helo.good.example"),
        ips(&["192.0.2.66", "192.0.2.67"])
    );
    assert_eq!(
        asked.got(Mx, "good.example"),
        strings(&["mail.good.example", "mail2.good.example"])
    );
    assert_eq!(asked.got(Mx, "nomx.example"), Got::NotFound);
    assert_eq!(asked.got(Mx, "nullmx.example"), strings(&[""]));
    assert_eq!(asked.got(A, "nowhere.example"), Got::NotFound);
    // Too big for UDP: truncated, then asked over TCP.
    let Got::Strings(big) = asked.got(Txt, "big.example") else {
        panic!("big.example TXT");
    };
    assert_eq!(big.len(), 8);
    assert!(big.iter().all(|t| t.len() == 200));

    // Again: every answer from the cache, nothing sent.
    let mut again = Asked::new(QUESTIONS);
    let deadline = Instant::now() + dns.settings.deadline;
    let report = client.round(&dns, &policy, &mut again, deadline, 1_000, "test");
    assert_eq!(
        report,
        RoundReport {
            cached: n,
            ..RoundReport::default()
        }
    );
    for (kind, name) in QUESTIONS {
        assert_eq!(again.got(*kind, name), asked.got(*kind, name), "{name}");
    }
    // After the TTL (300 s), asked again.
    let mut later = Asked::new(&QUESTIONS[..1]);
    let deadline = Instant::now() + dns.settings.deadline;
    let report = client.round(&dns, &policy, &mut later, deadline, 301_000, "test");
    assert_eq!((report.cached, report.answered), (0, 1));
}

/// A list's error code is unknown and not cached; a query of a server
/// that never answers is unknown at the deadline.
#[test]
fn error_codes_and_the_deadline() {
    let Some(unbound) = Unbound::start("client-deadline") else {
        return;
    };
    let dns = shared(unbound.addr(), Duration::from_millis(300));
    let policy = policy();
    let mut client = Client::new();
    let questions = [
        (QueryKind::A, "99.2.0.192.bl.test"),
        (QueryKind::A, "2.0.0.127.slow.test"),
        (QueryKind::A, "2.0.0.127.bl.test"),
    ];
    let mut asked = Asked::new(&questions);
    let deadline = Instant::now() + dns.settings.deadline;
    let report = client.round(&dns, &policy, &mut asked, deadline, 0, "test");
    assert_eq!(asked.got(QueryKind::A, "99.2.0.192.bl.test"), Got::Unknown);
    assert_eq!(asked.got(QueryKind::A, "2.0.0.127.slow.test"), Got::Unknown);
    assert_eq!(
        asked.got(QueryKind::A, "2.0.0.127.bl.test"),
        ips(&["127.0.0.2"])
    );
    assert_eq!(report.timed_out, 1, "{report:?}");
    assert_eq!(report.answered, 2, "{report:?}");
    // Neither unknown is cached: both are asked again.
    let mut again = Asked::new(&questions);
    let deadline = Instant::now() + dns.settings.deadline;
    let report = client.round(&dns, &policy, &mut again, deadline, 0, "test");
    assert_eq!(report.cached, 1, "{report:?}");
    assert_eq!(report.timed_out, 1, "{report:?}");
}

/// With no server set, nothing is sent and every question is unknown.
#[test]
fn no_server_no_socket() {
    let dns = DnsShared::new(DnsSettings::default());
    let policy = policy();
    let mut client: Client<usize> = Client::new();
    let mut asked = Asked::new(&[(QueryKind::A, "2.0.0.127.bl.test")]);
    let report = client.round(&dns, &policy, &mut asked, Instant::now(), 0, "test");
    assert_eq!(report, RoundReport::default());
    assert_eq!(asked.got(QueryKind::A, "2.0.0.127.bl.test"), Got::Unknown);
}

/// A fake server on loopback: answers each query it receives with what
/// `reply` makes of it (id, name), from `from` (itself, or a spoofer).
fn fake_server(
    reply: impl Fn(u16, &str) -> Vec<(Vec<u8>, bool)> + Send + 'static,
) -> (std::net::SocketAddr, std::thread::JoinHandle<usize>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let spoofer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut queries = 0;
        // One query is all these tests send to each server.
        if let Ok((n, client)) = socket.recv_from(&mut buf) {
            queries += 1;
            let query = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
            let name = query.queries()[0].name().to_ascii();
            let name = name.trim_end_matches('.');
            for (bytes, spoofed) in reply(query.id(), name) {
                let from = if spoofed { &spoofer } else { &socket };
                from.send_to(&bytes, client).unwrap();
            }
        }
        queries
    });
    (addr, thread)
}

/// Answers from another address, with another id or to another question
/// are ignored; a SERVFAIL moves the query to the next server at once.
#[test]
fn foreign_answers_are_ignored_and_servfail_moves_on() {
    use super::message::tests::{rec, response};
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::RData;

    let listed = |id: u16, name: &str, last: u8| {
        response(
            id,
            QueryKind::A,
            name,
            ResponseCode::NoError,
            vec![rec(name, 60, RData::A(A::new(127, 0, 0, last)))],
            vec![],
        )
    };
    let (first, first_thread) = fake_server(move |id, name| {
        vec![
            // Right id and question, wrong source: a spoofer.
            (listed(id, name, 9), true),
            // Wrong id.
            (listed(id.wrapping_add(1), name, 8), false),
            // Wrong question.
            (listed(id, "3.0.0.127.bl.test", 7), false),
            // Garbage.
            (b"\x00".to_vec(), false),
            (
                response(
                    id,
                    QueryKind::A,
                    name,
                    ResponseCode::ServFail,
                    vec![],
                    vec![],
                ),
                false,
            ),
        ]
    });
    let (second, second_thread) = fake_server(move |id, name| vec![(listed(id, name, 2), false)]);
    let dns = DnsShared::new(DnsSettings {
        servers: vec![first, second],
        deadline: Duration::from_secs(5),
        ..DnsSettings::default()
    });
    let _ = dns.servers.set(Arc::from(vec![first, second]));
    let mut client = Client::new();
    let mut asked = Asked::new(&[(QueryKind::A, "2.0.0.127.bl.test")]);
    let deadline = Instant::now() + dns.settings.deadline;
    let report = client.round(&dns, &policy(), &mut asked, deadline, 0, "test");
    assert_eq!(
        asked.got(QueryKind::A, "2.0.0.127.bl.test"),
        ips(&["127.0.0.2"])
    );
    assert_eq!((report.sent, report.answered), (2, 1), "{report:?}");
    assert_eq!(first_thread.join().unwrap(), 1);
    assert_eq!(second_thread.join().unwrap(), 1);
}

/// A server that does not answer: after a try's timeout (a third of the
/// deadline) the query goes to the next server, here of the other address
/// family (both sockets polled at once).
#[test]
fn an_unanswered_try_moves_to_the_next_server() {
    use super::message::tests::{rec, response};
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::RData;

    let Ok(silent) = std::net::UdpSocket::bind("[::1]:0") else {
        // No IPv6 loopback here: the same test with IPv4 alone.
        eprintln!("no IPv6 loopback: testing the retry over IPv4 only");
        return retry_with(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    };
    retry_with(silent);

    fn retry_with(silent: std::net::UdpSocket) {
        let (answering, thread) = fake_server(|id, name| {
            let data = RData::A(A::new(127, 0, 0, 2));
            vec![(
                response(
                    id,
                    QueryKind::A,
                    name,
                    ResponseCode::NoError,
                    vec![rec(name, 60, data)],
                    vec![],
                ),
                false,
            )]
        });
        let servers = vec![silent.local_addr().unwrap(), answering];
        let dns = DnsShared::new(DnsSettings {
            servers: servers.clone(),
            deadline: Duration::from_secs(3),
            ..DnsSettings::default()
        });
        let _ = dns.servers.set(Arc::from(servers));
        let mut client = Client::new();
        let mut asked = Asked::new(&[(QueryKind::A, "2.0.0.127.bl.test")]);
        let deadline = Instant::now() + dns.settings.deadline;
        let report = client.round(&dns, &policy(), &mut asked, deadline, 0, "test");
        assert_eq!(
            asked.got(QueryKind::A, "2.0.0.127.bl.test"),
            ips(&["127.0.0.2"])
        );
        assert_eq!((report.sent, report.answered, report.timed_out), (2, 1, 0));
        assert_eq!(thread.join().unwrap(), 1);
        // The silent server did get the first try.
        silent.set_nonblocking(true).unwrap();
        assert!(silent.recv_from(&mut [0u8; 512]).is_ok());
    }
}

/// More cached answers than a connection's memo holds: every one is still
/// answered from the cache, by the memo or the shared cache, and right;
/// past their TTL none is (nothing answers then: the server is a socket
/// that never replies, and the deadline has passed).
#[test]
fn the_memo_holds_the_latest_answers_until_their_expiry() {
    use super::client::MEMO_ENTRIES;
    use crate::shared::dns::Records;

    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = shared(hole.local_addr().unwrap(), Duration::from_millis(100));
    let policy = policy();
    let mut client = Client::new();
    let n = MEMO_ENTRIES * 2 + 3;
    let names: Vec<String> = (0..n).map(|i| format!("{i}.2.0.192.bl.test")).collect();
    for (i, name) in names.iter().enumerate() {
        let answer: IpAddr = format!("127.0.0.{}", i + 2).parse().unwrap();
        let records = Records::Addresses(vec![answer].into());
        dns.cache
            .insert(QueryKind::A, name.as_bytes(), records, 300, 0);
    }
    let questions: Vec<(QueryKind, &str)> =
        names.iter().map(|n| (QueryKind::A, n.as_str())).collect();
    for round in 0..3 {
        let mut asked = Asked::new(&questions);
        let deadline = Instant::now() + dns.settings.deadline;
        let report = client.round(&dns, &policy, &mut asked, deadline, 1_000, "test");
        assert_eq!(report.cached, n, "round {round}");
        for (i, name) in names.iter().enumerate() {
            let answer = format!("127.0.0.{}", i + 2);
            assert_eq!(asked.got(QueryKind::A, name), ips(&[&answer]), "{name}");
        }
    }
    // Past the TTL: neither the memo nor the cache answers.
    let mut asked = Asked::new(&questions[..MEMO_ENTRIES]);
    let report = client.round(&dns, &policy, &mut asked, Instant::now(), 301_000, "test");
    assert_eq!(report.cached, 0);
    assert_eq!(asked.got(QueryKind::A, &names[0]), Got::Unknown);
}
