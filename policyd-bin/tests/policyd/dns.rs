//! The daemon's DNS: the real `policyd` asking a real unbound
//! ([`crate::unbound`], the test zones of `dns/zones.conf`) for its
//! `in dnsbl` tests; the cache; the deadline; a list that keeps timing out.
//!
//! No test waits for time to pass: each waits for a reply or a log line.
//! Policy time (the cache's TTLs, a list's skip) is the daemon's test
//! clock, moved by the tests.

use std::net::UdpSocket;
use std::time::Duration;

use crate::common::{
    request, request_with, run, run_env, Daemon, TempDir, TestClock, TEST_CLOCK_VAR,
    TEST_RESOLV_CONF_VAR,
};
use crate::unbound::Unbound;

const DUNNO: &[u8] = b"action=DUNNO\n\n";
const LISTED: &[u8] = b"action=REJECT 5.7.1 listed in bl.test\n\n";

/// A policy that rejects clients listed in bl.test.
const POLICY: &str = "rule listed {\n\
    if client_address in dnsbl \"bl.test\" then REJECT \"5.7.1 listed in bl.test\"\n\
}\n\
default DUNNO\n";

fn client(ip: &str) -> Vec<u8> {
    request_with(&[("client_address", ip)])
}

/// Start `policyd` with `policy`, asking `server`, on a test clock.
fn daemon(dir: &TempDir, policy: &str, clock: &TestClock, extra: &[&str]) -> Daemon {
    let config = dir.write("policy.conf", policy);
    let mut args = vec!["--config", &config];
    args.extend_from_slice(extra);
    match Daemon::try_start_env(&args, &[(TEST_CLOCK_VAR, clock.path())]) {
        Ok(daemon) => daemon,
        Err(failure) => panic!("policyd {args:?} failed to start: {failure:?}"),
    }
}

#[test]
fn listed_clients_are_rejected_and_others_not() {
    let Some(unbound) = Unbound::start("daemon-listed") else {
        return;
    };
    let dir = TempDir::new("dns-listed");
    let clock = TestClock::new(dir.path(), "clock");
    let server = unbound.addr().to_string();
    let daemon = daemon(&dir, POLICY, &clock, &["--dns-server", &server]);
    daemon.expect_log("the servers in use", |l| {
        l.contains(&format!("has DNS tests: asking {server} ")) && l.contains("lists: bl.test")
    });
    let mut conn = daemon.connect();
    // Listed (127.0.0.2), listed with another code (127.0.0.10), listed
    // by its IPv6 address (the nibble form).
    for ip in ["192.0.2.66", "192.0.2.10", "2001:db8::66"] {
        assert_eq!(request(&mut conn, &client(ip)), LISTED, "{ip}");
    }
    // Not listed (NXDOMAIN).
    for ip in ["192.0.2.1", "2001:db8::1"] {
        assert_eq!(request(&mut conn, &client(ip)), DUNNO, "{ip}");
    }
    // The list's error code (127.255.255.254: "query through a public
    // resolver") is no listing: unknown, and said so.
    assert_eq!(request(&mut conn, &client("192.0.2.99")), DUNNO);
    daemon.expect_log("the list's error code", |l| {
        l.contains("warning: DNS list answered an error code")
            && l.contains("query=99.2.0.192.bl.test answer=127.255.255.254")
    });
}

/// Later rounds: a listing's TXT record (`$dnsbl_reason`) and FCrDNS (PTR,
/// then the addresses of each name) are asked after the first answers.
#[test]
fn later_rounds_ask_what_the_first_answers_lead_to() {
    let Some(unbound) = Unbound::start("daemon-rounds") else {
        return;
    };
    let dir = TempDir::new("dns-rounds");
    let clock = TestClock::new(dir.path(), "clock");
    let server = unbound.addr().to_string();
    let policy = "dnsbl bl { zone \"bl.test\" txt }\n\
                  rule rdns { unless fcrdns then DEFER \"4.7.1 no confirmed reverse DNS\" }\n\
                  rule listed { if client_address in dnsbl bl then REJECT \"5.7.1 $dnsbl_reason\" }\n\
                  default DUNNO\n";
    let daemon = daemon(&dir, policy, &clock, &["--dns-server", &server]);
    let mut conn = daemon.connect();
    // PTR mail.good.example, whose A is the client: FCrDNS holds; listed,
    // with the list's TXT record as the reason.
    assert_eq!(
        request(&mut conn, &client("192.0.2.66")),
        b"action=REJECT 5.7.1 Listed: see https://bl.test/?192.0.2.66\n\n"
    );
    // PTR mail.liar.example, whose A is elsewhere; and no PTR at all.
    for ip in ["192.0.2.77", "192.0.2.1"] {
        assert_eq!(
            request(&mut conn, &client(ip)),
            b"action=DEFER 4.7.1 no confirmed reverse DNS\n\n",
            "{ip}"
        );
    }
    assert!(
        !daemon
            .log()
            .iter()
            .any(|l| l.contains("DNS answers missing")),
        "every answer came: {:?}",
        daemon.log()
    );
}

#[test]
fn answers_come_from_the_cache_until_their_ttl() {
    let Some(mut unbound) = Unbound::start("daemon-cache") else {
        return;
    };
    let dir = TempDir::new("dns-cache");
    let mut clock = TestClock::new(dir.path(), "clock");
    let server = unbound.addr().to_string();
    let daemon = daemon(
        &dir,
        POLICY,
        &clock,
        &["--dns-server", &server, "--dns-deadline", "300ms"],
    );
    let mut conn = daemon.connect();
    assert_eq!(request(&mut conn, &client("192.0.2.66")), LISTED);
    assert_eq!(request(&mut conn, &client("192.0.2.1")), DUNNO);

    // unbound gone: the answers come from the cache, on this connection
    // and on another one (the cache is shared).
    unbound.stop();
    assert_eq!(request(&mut conn, &client("192.0.2.66")), LISTED);
    let mut other = daemon.connect();
    assert_eq!(request(&mut other, &client("192.0.2.66")), LISTED);
    assert_eq!(request(&mut other, &client("192.0.2.1")), DUNNO);
    assert!(
        !daemon
            .log()
            .iter()
            .any(|l| l.contains("DNS answers missing")),
        "a cached answer sends nothing: {:?}",
        daemon.log()
    );

    // Past the TTL (300 s): asked again, no answer, unknown: the rule does
    // not apply, and the missing answer is logged.
    clock.advance(Duration::from_secs(301));
    assert_eq!(request(&mut conn, &client("192.0.2.66")), DUNNO);
    daemon.expect_log("the missing answer", |l| {
        l.contains("warning: DNS answers missing at the deadline")
            && l.contains("queries=\"66.2.0.192.bl.test A\"")
    });
}

#[test]
fn a_list_that_does_not_answer_is_unknown_at_the_deadline() {
    let Some(unbound) = Unbound::start("daemon-slow") else {
        return;
    };
    let dir = TempDir::new("dns-slow");
    let clock = TestClock::new(dir.path(), "clock");
    let server = unbound.addr().to_string();
    let policy = "rule listed { if client_address in dnsbl \"slow.test\" then REJECT }\n\
                  rule clean { unless client_address in dnsbl \"slow.test\" then OK }\n\
                  rule also { if client_address in dnsbl \"bl.test\" then REJECT \"5.7.1 bl\" }\n\
                  default DEFER \"4.7.1 not decided\"\n";
    let daemon = daemon(
        &dir,
        policy,
        &clock,
        &["--dns-server", &server, "--dns-deadline", "300ms"],
    );
    let mut conn = daemon.connect();
    // slow.test's answer is missing: neither rule on it applies; bl.test
    // answered in the same round.
    assert_eq!(
        request(&mut conn, &client("192.0.2.66")),
        b"action=REJECT 5.7.1 bl\n\n"
    );
    assert_eq!(
        request(&mut conn, &client("192.0.2.1")),
        b"action=DEFER 4.7.1 not decided\n\n"
    );
    let peer = conn.local_addr().unwrap().to_string();
    daemon.expect_log("the missing answer", |l| {
        l.contains("warning: DNS answers missing at the deadline")
            && l.contains("queries=\"66.2.0.192.slow.test A\"")
            && l.contains(&format!("peer={peer}"))
    });
}

/// Datagrams waiting on `socket` (read them all).
fn drain(socket: &UdpSocket) -> usize {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    let mut n = 0;
    while socket.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// After `--dns-skip-after` timeouts in a row, a list is skipped (nothing
/// sent for it) for `--dns-skip-for`, then asked again. The server here is
/// a socket of the test that never answers but counts the queries (a
/// datagram on loopback is in its buffer before the daemon's reply is
/// written, so counting after the reply misses none).
#[test]
fn a_list_that_keeps_timing_out_is_skipped_for_a_while() {
    let dir = TempDir::new("dns-skip");
    let mut clock = TestClock::new(dir.path(), "clock");
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = hole.local_addr().unwrap().to_string();
    let policy = "rule listed { if client_address in dnsbl \"dead.test\" then REJECT }\n\
                  default DUNNO\n";
    let daemon = daemon(
        &dir,
        policy,
        &clock,
        &[
            "--dns-server",
            &server,
            "--dns-deadline",
            "100ms",
            "--dns-skip-after",
            "2",
            "--dns-skip-for",
            "60",
        ],
    );
    let mut conn = daemon.connect();
    for n in 1..=2 {
        assert_eq!(request(&mut conn, &client("192.0.2.5")), DUNNO);
        assert!(drain(&hole) >= 1, "request {n} asked the list");
    }
    daemon.expect_log("the skip", |l| {
        l.contains("warning: DNS list keeps timing out: skipping it")
            && l.contains("zone=dead.test timeouts=2 for_secs=60")
    });
    // Skipped: unknown at once, nothing sent.
    for ip in ["192.0.2.5", "192.0.2.6"] {
        assert_eq!(request(&mut conn, &client(ip)), DUNNO);
        assert_eq!(drain(&hole), 0, "{ip}: a skipped list is not asked");
    }
    // The skip is over: asked again (and skipped again at once after one
    // more timeout).
    clock.advance(Duration::from_secs(60));
    assert_eq!(request(&mut conn, &client("192.0.2.7")), DUNNO);
    assert!(drain(&hole) >= 1);
    daemon.expect_log("the end of the skip", |l| {
        l.contains("info: DNS list skip over: asking it again zone=dead.test")
    });
    assert!(daemon.wait_for_log_count(2, |l| l.contains("keeps timing out: skipping it")));
    assert_eq!(request(&mut conn, &client("192.0.2.8")), DUNNO);
    assert_eq!(drain(&hole), 0);
}

/// The policy of the `policyd test` checks: a list with TXT reasons, a
/// score over a second list and FCrDNS.
const TEST_POLICY: &str = r#"dnsbl bl { zone "bl.test" answer 127.0.0.2-127.0.0.11 txt }
dnsbl bl2 { zone "bl2.test" }
rule listed { if client_address in dnsbl bl then REJECT "5.7.1 Listed: $dnsbl_reason" }
score spam {
    add 3 if client_address in dnsbl bl2 as "bl2"
    add 1.5 unless fcrdns as "no_fcrdns"
    above 4 DEFER_IF_PERMIT "4.7.1 Spam score $score ($score_reasons)"
}
default DUNNO
"#;

/// `policyd test` asks a policy's DNS tests live, as the daemon does, and
/// prints each query and answer; `--no-dns` asks nothing and says so; a
/// policy with DNS tests and no server to ask is refused.
#[test]
fn policyd_test_asks_dns_live() {
    let Some(unbound) = Unbound::start("policyd-test") else {
        return;
    };
    let dir = TempDir::new("dns-policyd-test");
    let config = dir.write("policy.conf", TEST_POLICY);
    let requests = dir.write(
        "requests",
        "client_address=192.0.2.66\n\nclient_address=192.0.2.55\n\nclient_address=192.0.2.1\n",
    );
    let server = unbound.addr().to_string();
    let out = run(&[
        "test",
        "--config",
        &config,
        "--dns-server",
        &server,
        "--dns-deadline",
        "300ms",
        "--explain",
        &requests,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let first = text.find(": request 1:").expect("request 1");
    let second = text.find(": request 2:").expect("request 2");
    let third = text.find(": request 3:").expect("request 3");
    let (header, one, two, three) = (
        &text[..first],
        &text[first..second],
        &text[second..third],
        &text[third..],
    );
    assert!(
        header.starts_with(&format!(
            "dns: asking {server} (deadline 300 ms); lists: bl.test bl2.test\n"
        )),
        "{text}"
    );
    for (part, lines) in [
        (
            one,
            &[
                "    action: REJECT 5.7.1 Listed: Listed: see https://bl.test/?192.0.2.66\n",
                "    rule: listed\n",
                "    dns: 66.2.0.192.bl.test A: 127.0.0.2\n",
                "    dns: 66.2.0.192.bl.test TXT: \"Listed: see https://bl.test/?192.0.2.66\"\n",
                "    dns: 66.2.0.192.in-addr.arpa PTR: mail.good.example\n",
                "    dns: mail.good.example A: 192.0.2.66\n",
            ][..],
        ),
        (
            two,
            &[
                "    action: DEFER_IF_PERMIT 4.7.1 Spam score 4.5 (bl2=3, no_fcrdns=1.5)\n",
                "    dns: 55.2.0.192.bl2.test A: 127.0.0.3\n",
                "    dns: 55.2.0.192.in-addr.arpa PTR: not found",
            ],
        ),
        (
            three,
            &[
                "    action: DUNNO\n",
                "    dns: 1.2.0.192.bl.test A: not found",
                "    dns: 1.2.0.192.in-addr.arpa PTR: not found",
            ],
        ),
    ] {
        for line in lines {
            assert!(part.contains(line), "{line:?} missing from:\n{part}");
        }
    }
    // The explanation shows the answers the decision had.
    assert!(
        one.contains("    |   if client_address in dnsbl bl -> holds\n    |     client_address in dnsbl bl = true\n"),
        "{one}"
    );

    // A list that never answers: unknown at the deadline, said so.
    let slow = dir.write(
        "slow.conf",
        "rule slow { if client_address in dnsbl \"slow.test\" then REJECT }\ndefault DUNNO\n",
    );
    let out = run(&[
        "test",
        "--config",
        &slow,
        "--dns-server",
        &server,
        "--dns-deadline",
        "100ms",
        &requests,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "    dns: 1.2.0.192.slow.test A: unknown (no answer by the deadline",
        "    dns: 1 answer unknown: a rule whose condition depends on one did not apply\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }

    // --no-dns: nothing asked; every test unknown, said so.
    let out = run(&["test", "--config", &config, "--no-dns", &requests]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("dns: not asked (--no-dns): every DNS test is unknown"),
        "{text}"
    );
    assert_eq!(text.matches("    action: DUNNO\n").count(), 3, "{text}");
    assert!(
        text.contains("    dns: not asked (--no-dns): 3 queries unknown\n"),
        "{text}"
    );

    // --no-dns with SPF: the result is temperror, and the explanation shows
    // what the decision saw (a greylist's `whitelist spf_pass` does not
    // hold, so the request is greylisted).
    let spf = dir.write(
        "spf.conf",
        "greylist grey { whitelist spf_pass }\n\
         rule tag { then PREPEND \"Received-SPF: $received_spf\" }\n",
    );
    let spf_request = dir.write(
        "spf-request.txt",
        "protocol_state=RCPT\nclient_address=192.0.2.7\nsender=joe@pass.spf.test\n\
         helo_name=h\nrecipient=r@example.com\ninstance=1\n\n",
    );
    let out = run(&[
        "test",
        "--config",
        &spf,
        "--no-dns",
        "--explain",
        &spf_request,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "    rule: grey\n",
        "    |   unless whitelist spf_pass -> holds\n",
        "    |     whitelist spf_pass = false\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }

    // No --dns-server and no nameserver in resolv.conf: refused, with the
    // way out named.
    let resolv = dir.write("resolv.conf", "# no nameserver\n");
    let out = run_env(
        &["test", "--config", &config, &requests],
        &[(TEST_RESOLV_CONF_VAR, std::path::Path::new(&resolv))],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("has DNS tests and no DNS server to ask") && err.contains("--no-dns"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// SPF through the daemon's DNS client (`policyd test` asks as a
/// connection does): a pass, a fail with its `exp=` explanation, and a
/// softfail found after an include (a second round).
#[test]
fn policyd_test_checks_spf_live() {
    let Some(unbound) = Unbound::start("policyd-test-spf") else {
        return;
    };
    let dir = TempDir::new("dns-policyd-test-spf");
    let config = dir.write(
        "policy.conf",
        "rule spf-fail { if spf == fail then REJECT \"5.7.23 $spf_explanation\" }\n\
         rule spf-soft { if spf == softfail then DEFER_IF_PERMIT \"4.7.24 SPF $spf_result\" }\n\
         rule spf-pass { if spf == pass then PREPEND \"X-SPF: $spf_result\" }\n\
         default DUNNO\n",
    );
    let requests = dir.write(
        "requests",
        "client_address=192.0.2.1\nsender=a@pass.spf.test\n\n\
         client_address=198.51.100.1\nsender=a@fail.spf.test\n\n\
         client_address=198.51.100.1\nsender=a@soft.spf.test\n",
    );
    let server = unbound.addr().to_string();
    let out = run(&[
        "test",
        "--config",
        &config,
        "--dns-server",
        &server,
        &requests,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "    action: PREPEND X-SPF: pass\n",
        "    action: REJECT 5.7.23 198.51.100.1 may not send mail for fail.spf.test\n",
        "    action: DEFER_IF_PERMIT 4.7.24 SPF softfail\n",
        "    dns: inc.spf.test TXT: ",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}
