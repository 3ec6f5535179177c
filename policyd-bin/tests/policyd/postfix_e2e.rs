//! End to end against a real Postfix: a throwaway Postfix instance asks `policyd`
//! through `check_policy_service`, and the SMTP replies follow the daemon's answers.
//!
//! The test starts one `policyd` per configured action (each on an ephemeral
//! loopback port), then one private Postfix instance in a temporary directory
//! (its own `config_directory`, `queue_directory`, `data_directory` and
//! `maillog_file`) with one loopback smtpd listener per daemon. It drives SMTP
//! sessions over plain TCP and checks:
//!
//! * `DUNNO` lets the recipient through (250), and the daemon was asked;
//! * `REJECT 5.7.1 text` gives a 5xx RCPT reply carrying the daemon's text;
//! * `DEFER 4.7.1 text` and `450 4.7.1 text` give 4xx RCPT replies with the text;
//! * `REJECT` answered at `smtpd_end_of_data_restrictions` rejects the message
//!   after DATA (the END-OF-MESSAGE request);
//! * a relay attempt is refused by `reject_unauth_destination` before the
//!   policy service is asked (the placement the README recommends);
//! * with a real policy file (`--config`): a blacklisted sender gets a 5xx
//!   RCPT reply with the policy's text (its `$sender` template expanded), a
//!   trusted client passes (the daemon answered OK, rule `trusted`), and a
//!   dry-run rule changes nothing (250) but is logged by the daemon;
//! * a rate limit (`limit per-sender { key sender count messages max 3 per
//!   1h ... }`): three messages from one sender are accepted (250 at every
//!   RCPT and after DATA), the first of them with three recipients (a message
//!   counts once, however many recipients); the fourth gets a 450 at RCPT
//!   with exactly the limit's `over` text (4.7.1, the sender and the seconds
//!   until it frees up expanded); another sender still gets through;
//! * a greylist (`greylist grey { delay 2s then DEFER_IF_PERMIT "..." prepend
//!   "X-Greylist: ..." }`): the first RCPT of a triplet gets a 450 at RCPT
//!   with exactly the greylist's text (Postfix turns `DEFER_IF_PERMIT` into a
//!   450 at the end of the restriction list); a retry before the delay is
//!   deferred again, with no more seconds left (the delay is not reset); a
//!   retry after the seconds the text gave (the greylist's daemon runs on a
//!   test clock, `POLICYD_TEST_CLOCK`, which the test moves: it never sleeps
//!   through the delay) (its sender written in another
//!   case, with another `+extension`: the same triplet) gets 250, and the
//!   message queued (held by the listener's `smtpd_data_restrictions`, so it
//!   stays in the queue) carries the `X-Greylist` header with the seconds
//!   waited; the triplet passes again without a header; another recipient,
//!   and another sender, are still greylisted;
//! * Postfix's log shows the rejections and no policy-protocol warning;
//! * DNS checks and scoring (a second test, `postfix_follows_policyd_dns_answers`,
//!   with its own instance and a throwaway unbound, [`crate::unbound`]): through
//!   XCLIENT each session presents a client of the test zones; a client listed
//!   in the test DNS list gets the rule's 5xx with the list's TXT reason
//!   (`$dnsbl_reason`), one whose score is above the defer threshold and under
//!   the reject one gets the threshold's 450 and text, a clean one gets 250.
//!   On a second listener with an SPF policy: an SPF pass is accepted and its
//!   message carries the `Received-SPF:` header, a fail gets the 5xx with the
//!   domain's `exp=` text, a softfail (behind an include) the 450;
//!
//! It needs Debian's `postfix` package and root (Postfix's master must start as
//! root). Without them it prints `SKIPPED: postfix end-to-end test: <reason>` and
//! passes, unless `POLICYD_REQUIRE_POSTFIX=1` is set (as `.ci/run` does): then a
//! missing prerequisite fails the test. The system's own Postfix instance is never
//! touched: every command gets `-c <our config directory>`.
//!
//! Set `POLICYD_E2E_KEEP=1` to keep the temporary directory (configuration and
//! `maillog`) for inspection.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bound on any `postfix` command (start, stop, status): they normally take
/// well under a second, `start` a little more when it creates the queue.
const POSTFIX_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Postfix may take to accept its first SMTP connection after `start`.
const SMTPD_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Read and write timeout on the SMTP client socket. Longer than the policy
/// service timeout given to Postfix (10 s) so that a slow policy reply shows up
/// as Postfix's own reply, not as a client timeout.
const SMTP_IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The `timeout=` given to `check_policy_service`.
const POLICY_TIMEOUT_SECS: u32 = 10;
/// How long postlogd may take to write the lines we wait for into `maillog`.
const LOG_WAIT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest SMTP reply line we accept from Postfix (RFC 5321 allows 512).
const MAX_SMTP_LINE: usize = 4096;
/// Attempts at starting Postfix: the smtpd ports are found free by binding and
/// releasing them, and another process may take one in between.
const POSTFIX_START_ATTEMPTS: u32 = 3;

/// The local test domain: Postfix delivers it locally (`mydestination`), so a
/// recipient there passes `reject_unauth_destination`.
const LOCAL_DOMAIN: &str = "e2e.test";

const REJECT_ACTION: &str = "REJECT 5.7.1 policyd e2e says no";
const REJECT_TEXT: &str = "policyd e2e says no";
const DEFER_ACTION: &str = "DEFER 4.7.1 policyd e2e says later";
const DEFER_TEXT: &str = "policyd e2e says later";
const STATUS_ACTION: &str = "450 4.7.1 policyd e2e numeric status";
const STATUS_TEXT: &str = "policyd e2e numeric status";
const EOM_ACTION: &str = "REJECT 5.7.1 policyd e2e rejects the message";
const EOM_TEXT: &str = "policyd e2e rejects the message";

/// The policy file of the `policy` listener. Every SMTP client of this test
/// connects from 127.0.0.1, so the blacklist comes first and the trusted
/// network decides everything else; the dry-run rule comes before both.
const POLICY: &str = r#"# policyd end-to-end test policy
list trusted_nets cidr { 127.0.0.0/8 }
list blocked_senders file "blocked_senders"

rule dry-run-check dry-run {
    state RCPT
    if recipient_local == "dry-run-target"
    then REJECT "5.7.1 policyd e2e dry run would reject $recipient"
}
rule blocked-senders {
    state RCPT
    if sender in blocked_senders
    then REJECT "5.7.1 Sender $sender is blocked by policyd e2e"
}
rule trusted { if client_address in trusted_nets then OK }
default DUNNO
"#;
const BLOCKED_SENDERS: &str = "# blocked senders\nspammer@blocked.e2e\n";
const POLICY_REJECT_TEXT: &str = "Sender spammer@blocked.e2e is blocked by policyd e2e";

/// Messages a sender may send per hour under [`LIMIT_POLICY`].
const LIMIT_MAX: usize = 3;
/// The policy file of the `limit` listener: one sender-keyed message limit of
/// [`LIMIT_MAX`] per hour (an hour: the test cannot outlast the window).
const LIMIT_POLICY: &str = r#"# policyd end-to-end test policy: a rate limit
limit per-sender {
    key sender
    count messages
    max 3 per 1h
    over DEFER "4.7.1 Too many messages from $sender, try again in $retry_after seconds"
}
default DUNNO
"#;
/// The greylist's `delay`, in seconds. The `grey` daemon runs on a test
/// clock (`POLICYD_TEST_CLOCK`): the test moves it past the delay instead of
/// sleeping.
const GREY_DELAY_SECS: u64 = 2;
/// The policy file of the `grey` listener: one greylist with a short delay,
/// its own deferral text and an `X-Greylist` header on the first accepted
/// retry.
const GREY_POLICY: &str = r#"# policyd end-to-end test policy: greylisting
greylist grey {
    delay 2s
    then DEFER_IF_PERMIT "4.7.1 Greylisted by the e2e test, try again in $retry_after seconds"
    prepend "X-Greylist: delayed $delay seconds by policyd e2e"
}
default DUNNO
"#;
/// The text of the greylist's deferral up to the number of seconds.
const GREY_TEXT_PREFIX: &str = "Greylisted by the e2e test, try again in ";
/// The header of the first accepted retry up to the number of seconds.
const GREY_HEADER_PREFIX: &str = "X-Greylist: delayed ";
/// The rest of the header after the number of seconds.
const GREY_HEADER_SUFFIX: &str = " seconds by policyd e2e";

/// The greylisted triplet's sender, recipient (on the first attempt and the
/// early retry), and the sender of the retry that passes: the same sender
/// after postgrey's normalisation (lower case, `+extension` dropped).
const GREY_SENDER: &str = "grey-sender+first@client.e2e";
const GREY_SENDER_RETRY: &str = "Grey-Sender+Retry@Client.E2E";
const GREY_RECIPIENT: &str = "grey-rcpt@e2e.test";
/// Another recipient of [`GREY_SENDER`]: another triplet.
const GREY_OTHER_RECIPIENT: &str = "grey-other@e2e.test";

/// The sender that reaches the limit (upper case in part: the key ignores case).
const LIMITED_SENDER: &str = "Limited@Client.e2e";
/// The start of the limit's text for [`LIMITED_SENDER`] (`$sender` expanded
/// as the client wrote it); the number of seconds and ` seconds` follow.
const LIMIT_TEXT_PREFIX: &str = "4.7.1 Too many messages from Limited@Client.e2e, try again in ";

#[test]
fn postfix_follows_policyd_answers() {
    let Some(postfix) = postfix_or_skip("postfix end-to-end test") else {
        return;
    };
    let started = Instant::now();

    // Daemons first: locals drop in reverse order, so Postfix (declared later)
    // is stopped before its policy servers go away.
    let dunno = Daemon::start("DUNNO");
    let reject = Daemon::start(REJECT_ACTION);
    let defer = Daemon::start(DEFER_ACTION);
    let status = Daemon::start(STATUS_ACTION);
    let eom = Daemon::start(EOM_ACTION);
    // Removed when the test ends, also when it fails.
    let policy_dir_guard = RemoveOnDrop(unique_temp_dir());
    let policy_dir = &policy_dir_guard.0;
    fs::write(policy_dir.join("blocked_senders"), BLOCKED_SENDERS).expect("write the list file");
    let policy_file = policy_dir.join("policy.conf");
    fs::write(&policy_file, POLICY).expect("write the policy file");
    let policy_path = policy_file.to_str().expect("UTF-8 temp path").to_owned();
    let policy = Daemon::spawn(
        &format!("--config {policy_path}"),
        &["--config", &policy_path],
    );
    assert!(
        LIMIT_POLICY.contains(&format!("max {LIMIT_MAX} per 1h")),
        "LIMIT_MAX and LIMIT_POLICY disagree"
    );
    let limit_file = policy_dir.join("limit.conf");
    fs::write(&limit_file, LIMIT_POLICY).expect("write the limit policy file");
    let limit_path = limit_file.to_str().expect("UTF-8 temp path").to_owned();
    let limit = Daemon::spawn(
        &format!("--config {limit_path}"),
        &["--config", &limit_path],
    );
    assert!(
        GREY_POLICY.contains(&format!("delay {GREY_DELAY_SECS}s")),
        "GREY_DELAY_SECS and GREY_POLICY disagree"
    );
    let grey_file = policy_dir.join("grey.conf");
    fs::write(&grey_file, GREY_POLICY).expect("write the greylist policy file");
    let grey_path = grey_file.to_str().expect("UTF-8 temp path").to_owned();
    let mut grey_clock = crate::common::TestClock::new(policy_dir, "grey.clock");
    let grey = Daemon::spawn_with_clock(
        &format!("--config {grey_path}"),
        &["--config", &grey_path],
        &grey_clock,
    );

    let listeners = [
        Listener::rcpt("dunno", dunno.addr),
        Listener::rcpt("reject", reject.addr),
        Listener::rcpt("defer", defer.addr),
        Listener::rcpt("status", status.addr),
        Listener {
            eom_policy: Some(eom.addr),
            ..Listener::rcpt("eom", dunno.addr)
        },
        Listener::rcpt("policy", policy.addr),
        Listener::rcpt("limit", limit.addr),
        // Accepted messages are held in the queue, so that the header the
        // greylist prepends can be read back with postcat.
        Listener {
            hold: true,
            ..Listener::rcpt("grey", grey.addr)
        },
    ];
    let pf = Postfix::start(&postfix, &listeners);
    let port = |name: &str| pf.smtpd_port(name);

    // DUNNO: the recipient passes, on a persistent policy connection (several
    // requests in one transaction, then a second SMTP session).
    {
        let mut s = Smtp::connect(port("dunno"));
        s.ehlo();
        s.expect("MAIL FROM:<sender@client.e2e>", 250);
        let r = s.expect("RCPT TO:<dunno-one@e2e.test>", 250);
        assert!(r.contains("2.1.5"), "DUNNO: unexpected RCPT reply {r:?}");
        s.expect("RCPT TO:<dunno-two@e2e.test>", 250);
        // Relay attempt: refused by reject_unauth_destination, which comes
        // before check_policy_service, so the daemon is never asked.
        let r = s.command("RCPT TO:<relay-attempt@elsewhere.example>");
        assert!(
            r.starts_with("554") && r.contains("Relay access denied"),
            "relay attempt: expected 554 Relay access denied, got {r:?}"
        );
        s.expect("RSET", 250);
        s.quit();

        let mut s = Smtp::connect(port("dunno"));
        s.ehlo();
        s.expect("MAIL FROM:<>", 250);
        s.expect("RCPT TO:<dunno-three@e2e.test>", 250);
        s.quit();
    }

    // REJECT 5.7.1 text: 5xx with the daemon's enhanced code and text.
    {
        let mut s = Smtp::connect(port("reject"));
        s.ehlo();
        s.expect("MAIL FROM:<sender@client.e2e>", 250);
        let r = s.command("RCPT TO:<reject-me@e2e.test>");
        assert_code_class(&r, '5', "REJECT");
        assert!(r.contains("5.7.1"), "REJECT: no 5.7.1 in {r:?}");
        assert!(
            r.contains(REJECT_TEXT),
            "REJECT: daemon text missing in {r:?}"
        );
        // The transaction goes on: another recipient gets the same answer.
        let r = s.command("RCPT TO:<reject-me-too@e2e.test>");
        assert_code_class(&r, '5', "REJECT (second recipient)");
        s.expect("RSET", 250);
        s.quit();
    }

    // DEFER 4.7.1 text: 4xx with the daemon's text.
    {
        let mut s = Smtp::connect(port("defer"));
        s.ehlo();
        s.expect("MAIL FROM:<sender@client.e2e>", 250);
        let r = s.command("RCPT TO:<defer-me@e2e.test>");
        assert_code_class(&r, '4', "DEFER");
        assert!(r.contains("4.7.1"), "DEFER: no 4.7.1 in {r:?}");
        assert!(
            r.contains(DEFER_TEXT),
            "DEFER: daemon text missing in {r:?}"
        );
        s.expect("RSET", 250);
        s.quit();
    }

    // 450 4.7.1 text: exactly that code.
    {
        let mut s = Smtp::connect(port("status"));
        s.ehlo();
        s.expect("MAIL FROM:<sender@client.e2e>", 250);
        let r = s.command("RCPT TO:<status-me@e2e.test>");
        assert!(r.starts_with("450 4.7.1"), "450 status: got {r:?}");
        assert!(
            r.contains(STATUS_TEXT),
            "450 status: daemon text missing in {r:?}"
        );
        s.expect("RSET", 250);
        s.quit();
    }

    // END-OF-MESSAGE: the recipient passes (DUNNO daemon), the end-of-data
    // check (REJECT daemon) refuses the message after the final dot.
    {
        let mut s = Smtp::connect(port("eom"));
        s.ehlo();
        s.expect("MAIL FROM:<sender@client.e2e>", 250);
        s.expect("RCPT TO:<eom-rcpt@e2e.test>", 250);
        s.expect("DATA", 354);
        let r = s.command(
            "Subject: policyd e2e\r\nFrom: <sender@client.e2e>\r\n\r\nThis message must be rejected.\r\n.",
        );
        assert_code_class(&r, '5', "END-OF-MESSAGE REJECT");
        assert!(
            r.contains(EOM_TEXT),
            "END-OF-MESSAGE: daemon text missing in {r:?}"
        );
        s.quit();
    }

    // A real policy file: blacklisted sender, trusted client, dry-run rule.
    {
        let mut s = Smtp::connect(port("policy"));
        s.ehlo();
        s.expect("MAIL FROM:<spammer@blocked.e2e>", 250);
        let r = s.command("RCPT TO:<policy-blocked@e2e.test>");
        assert_code_class(&r, '5', "policy: blacklisted sender");
        assert!(r.contains("5.7.1"), "policy: no 5.7.1 in {r:?}");
        assert!(
            r.contains(POLICY_REJECT_TEXT),
            "policy: the policy's text (template expanded) is missing in {r:?}"
        );
        s.expect("RSET", 250);

        s.expect("MAIL FROM:<friend@client.e2e>", 250);
        s.expect("RCPT TO:<policy-trusted@e2e.test>", 250);
        // The dry-run rule applies but changes nothing.
        s.expect("RCPT TO:<dry-run-target@e2e.test>", 250);
        s.expect("RSET", 250);
        s.quit();
    }

    // A rate limit: LIMIT_MAX messages from one sender pass, the next is
    // deferred at RCPT with the limit's text, another sender still passes.
    let limit_reply = {
        let mut s = Smtp::connect(port("limit"));
        s.ehlo();
        for message in 1..=LIMIT_MAX {
            s.expect(&format!("MAIL FROM:<{LIMITED_SENDER}>"), 250);
            // The first message has three recipients: it still counts once
            // (counted per recipient, the second message would be refused).
            let recipients = if message == 1 { 3 } else { 1 };
            for r in 1..=recipients {
                s.expect(&format!("RCPT TO:<limit-m{message}-r{r}@e2e.test>"), 250);
            }
            s.send_message(&format!(
                "message {message} of {LIMIT_MAX} from {LIMITED_SENDER}"
            ));
        }
        // The next message: over the limit, deferred at its first RCPT.
        s.expect(&format!("MAIL FROM:<{LIMITED_SENDER}>"), 250);
        let over = s.command("RCPT TO:<limit-over@e2e.test>");
        assert!(
            over.starts_with("450 4.7.1 "),
            "limit: expected 450 4.7.1 for message {}, got {over:?}",
            LIMIT_MAX + 1
        );
        let seconds = limit_retry_after(&over).unwrap_or_else(|| {
            panic!(
                "limit: the reply lacks the policy's text {LIMIT_TEXT_PREFIX:?}N seconds: {over:?}"
            )
        });
        // Exactly: Postfix's code, the policy's enhanced code, Postfix's
        // words for a recipient restriction, the policy's text.
        assert_eq!(
            over,
            format!(
                "450 4.7.1 <limit-over@e2e.test>: Recipient address rejected: \
                 Too many messages from {LIMITED_SENDER}, try again in {seconds} seconds"
            ),
            "limit: the deferral is not the policy's text"
        );
        // Documented bound (docs/rate-limiting.md, Windows): at most T + T/16,
        // the window and one of its 16 buckets.
        let most = 3600 + 3600 / 16;
        assert!(
            (1..=most).contains(&seconds),
            "limit: $retry_after {seconds} is not within 1..={most} s for a 1h window: {over:?}"
        );
        // Another recipient of the same message: still over (the refused
        // recipient counted nothing, the message was never admitted).
        let again = s.command("RCPT TO:<limit-over-2@e2e.test>");
        assert!(
            again.starts_with("450 4.7.1 ") && limit_retry_after(&again).is_some(),
            "limit: a second recipient of the refused message: got {again:?}"
        );
        s.expect("RSET", 250);
        // A different sender (same client, same connection) is not limited.
        s.expect("MAIL FROM:<unlimited@client.e2e>", 250);
        s.expect("RCPT TO:<limit-other@e2e.test>", 250);
        s.send_message("from another sender");
        s.quit();

        // A new SMTP session from the limited sender, written in lower case:
        // the same key (the key ignores the case of addresses), still over.
        let mut s = Smtp::connect(port("limit"));
        s.ehlo();
        s.expect(
            &format!("MAIL FROM:<{}>", LIMITED_SENDER.to_ascii_lowercase()),
            250,
        );
        let r = s.command("RCPT TO:<limit-later@e2e.test>");
        assert!(
            r.starts_with("450 4.7.1 ") && r.contains("Too many messages from limited@client.e2e"),
            "limit: the limited sender (lower case) in a new session: got {r:?}"
        );
        s.expect("RSET", 250);
        s.quit();
        over
    };
    let limit_text = limit_reply
        .split_once("Too many messages")
        .map(|(_, rest)| format!("Too many messages{rest}"))
        .expect("checked above");

    // A greylist: the first attempt of a triplet and an early retry are
    // deferred with the greylist's text; the retry after the seconds it gave
    // passes, and its message carries the X-Greylist header.
    let grey_first = grey_attempt(port("grey"), GREY_SENDER, GREY_RECIPIENT);
    let first_left = expect_greylisted(&grey_first, GREY_RECIPIENT, "the first attempt");
    // The first attempt is kept rounded up to a whole second, so from the
    // delay to the delay plus one second is left, shown rounded up.
    assert!(
        (GREY_DELAY_SECS..=GREY_DELAY_SECS + 1).contains(&first_left),
        "greylist: the first attempt should have {GREY_DELAY_SECS} to {} s left: {grey_first:?}",
        GREY_DELAY_SECS + 1
    );
    // An early retry, in a new session as an MTA retries: deferred again,
    // and the delay is not reset (no more seconds left than before).
    let early = grey_attempt(port("grey"), GREY_SENDER, GREY_RECIPIENT);
    assert!(
        early.starts_with("450 "),
        "greylist: a retry at once after the first attempt (the delay is          {GREY_DELAY_SECS} s) was not deferred: {early:?}"
    );
    let early_left = expect_greylisted(&early, GREY_RECIPIENT, "the early retry");
    assert!(
        (1..=first_left).contains(&early_left),
        "greylist: the early retry should have 1 to {first_left} s left: {early:?}"
    );
    // The retry when the deferral said: accepted (the sender in another
    // case, with another +extension: the same triplet).
    grey_clock.advance(Duration::from_secs(early_left));
    let (passed_id, known_id) = {
        let mut s = Smtp::connect(port("grey"));
        s.ehlo();
        s.expect(&format!("MAIL FROM:<{GREY_SENDER_RETRY}>"), 250);
        s.expect(&format!("RCPT TO:<{GREY_RECIPIENT}>"), 250);
        let passed_id = s.send_message("the greylisted message, retried in time");
        // Known from now on: passes again (without a header).
        s.expect(&format!("MAIL FROM:<{GREY_SENDER}>"), 250);
        s.expect(&format!("RCPT TO:<{GREY_RECIPIENT}>"), 250);
        let known_id = s.send_message("a second message of a known triplet");
        // Another recipient of that sender: another triplet, greylisted.
        s.expect(&format!("MAIL FROM:<{GREY_SENDER}>"), 250);
        let r = s.command(&format!("RCPT TO:<{GREY_OTHER_RECIPIENT}>"));
        expect_greylisted(&r, GREY_OTHER_RECIPIENT, "another recipient");
        s.expect("RSET", 250);
        // Another sender to the recipient that passed: greylisted too.
        s.expect("MAIL FROM:<another-sender@client.e2e>", 250);
        let r = s.command(&format!("RCPT TO:<{GREY_RECIPIENT}>"));
        expect_greylisted(&r, GREY_RECIPIENT, "another sender");
        s.expect("RSET", 250);
        s.quit();
        (passed_id, known_id)
    };
    // The header reached the queued message of the first accepted retry
    // (and only that one), with the seconds waited: at least the delay, at
    // most the time this part of the test took.
    let headers = pf.queued_headers(&passed_id);
    let waited = headers
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(GREY_HEADER_PREFIX)?;
            rest.strip_suffix(GREY_HEADER_SUFFIX)?.parse::<u64>().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "greylist: the message {passed_id} lacks the header                  {GREY_HEADER_PREFIX}N{GREY_HEADER_SUFFIX}; postcat -h shows:\n{headers}"
            )
        });
    // The test clock moved by `early_left` seconds only, and the first
    // attempt is kept rounded up to a whole second.
    let most = early_left + 1;
    assert!(
        (GREY_DELAY_SECS..=most).contains(&waited),
        "greylist: the header says {waited} s waited, expected {GREY_DELAY_SECS} to {most}:\n{headers}"
    );
    let known_headers = pf.queued_headers(&known_id);
    assert!(
        !known_headers.contains("X-Greylist"),
        "greylist: the known triplet's message {known_id} got a header too:\n{known_headers}"
    );
    let grey_text = grey_first
        .split_once(GREY_TEXT_PREFIX)
        .map(|(_, rest)| format!("{GREY_TEXT_PREFIX}{rest}"))
        .expect("checked above");

    // Postfix's log: our rejections are there (so we read the right log), and
    // no warning about the policy service.
    let log = pf.wait_for_log(&[
        REJECT_TEXT,
        DEFER_TEXT,
        STATUS_TEXT,
        EOM_TEXT,
        POLICY_REJECT_TEXT,
        &limit_text,
        &grey_text,
        "Relay access denied",
    ]);
    let policy_warnings: Vec<&str> = log
        .lines()
        .filter(|l| {
            is_policy_warning(
                l,
                &[
                    dunno.addr,
                    reject.addr,
                    defer.addr,
                    status.addr,
                    eom.addr,
                    policy.addr,
                    limit.addr,
                    grey.addr,
                ],
            )
        })
        .collect();
    assert!(
        policy_warnings.is_empty(),
        "Postfix logged policy-protocol warnings:\n{}",
        policy_warnings.join("\n")
    );
    for l in log.lines().filter(|l| l.contains("warning:")) {
        eprintln!("note: unrelated Postfix warning: {l}");
    }

    // The daemons were really asked, with the recipients we sent.
    dunno.expect_decision_mentioning("dunno-one@e2e.test");
    dunno.expect_decision_mentioning("dunno-two@e2e.test");
    dunno.expect_decision_mentioning("dunno-three@e2e.test");
    dunno.expect_decision_mentioning("eom-rcpt@e2e.test");
    dunno.expect_no_line_mentioning("relay-attempt@elsewhere.example");
    reject.expect_decision_mentioning("reject-me@e2e.test");
    defer.expect_decision_mentioning("defer-me@e2e.test");
    status.expect_decision_mentioning("status-me@e2e.test");
    eom.expect_decision_mentioning("END-OF-MESSAGE");
    policy.expect_line(
        "the blacklisted sender's decision",
        &[
            "info: decision rule=blocked-senders ",
            "policy-blocked@e2e.test",
        ],
    );
    policy.expect_line(
        "the trusted client's decision",
        &[
            "info: decision rule=trusted action=OK ",
            "policy-trusted@e2e.test",
        ],
    );
    policy.expect_line(
        "the dry-run line",
        &[
            "info: dry-run rule=dry-run-check ",
            "would=\"REJECT 5.7.1 policyd e2e dry run would reject dry-run-target@e2e.test\"",
            "decided_by=trusted",
        ],
    );
    policy.expect_line(
        "the decision after the dry run",
        &[
            "info: decision rule=trusted action=OK ",
            "dry-run-target@e2e.test",
        ],
    );
    for message in 1..=LIMIT_MAX {
        limit.expect_line(
            "an accepted message's first recipient",
            &[
                "info: decision rule=default action=DUNNO ",
                &format!("limit-m{message}-r1@e2e.test"),
            ],
        );
    }
    limit.expect_line(
        "the limit's deferral",
        &[
            "info: decision rule=per-sender ",
            LIMIT_TEXT_PREFIX,
            "limit-over@e2e.test",
        ],
    );
    limit.expect_line(
        "the other sender's decision",
        &[
            "info: decision rule=default action=DUNNO ",
            "limit-other@e2e.test",
        ],
    );
    grey.expect_line(
        "the first attempt's deferral",
        &[
            "info: decision rule=grey ",
            &format!("DEFER_IF_PERMIT 4.7.1 {GREY_TEXT_PREFIX}{first_left} seconds"),
            GREY_RECIPIENT,
        ],
    );
    grey.expect_line(
        "the first accepted retry's header",
        &[
            "info: decision rule=grey ",
            &format!("PREPEND {GREY_HEADER_PREFIX}{waited}{GREY_HEADER_SUFFIX}"),
            GREY_RECIPIENT,
        ],
    );
    grey.expect_line(
        "the known triplet's decision",
        &["info: decision rule=default action=DUNNO ", GREY_RECIPIENT],
    );
    grey.expect_line(
        "another recipient's deferral",
        &[
            "info: decision rule=grey ",
            GREY_TEXT_PREFIX,
            GREY_OTHER_RECIPIENT,
        ],
    );
    for d in [
        &dunno, &reject, &defer, &status, &eom, &policy, &limit, &grey,
    ] {
        d.expect_no_warning();
    }

    eprintln!("postfix end-to-end test passed in {:?}", started.elapsed());
}

/// The policy of the DNS end-to-end test: a DNS list whose listing rejects
/// with the list's own reason (its TXT record, `$dnsbl_reason`), and a score
/// whose defer threshold a client on a second list without reverse DNS
/// crosses (3 + 1.5 = 4.5: above 4, not above 6).
const DNS_POLICY: &str = r#"# policyd end-to-end test policy: DNS checks and scoring
dnsbl bl { zone "bl.test" answer 127.0.0.2-127.0.0.11 txt }
dnsbl bl2 { zone "bl2.test" }
rule listed {
    state RCPT
    if client_address in dnsbl bl
    then REJECT "5.7.1 Listed in bl.test: $dnsbl_reason"
}
score spam {
    state RCPT
    add 3 if client_address in dnsbl bl2 as "bl2"
    add 1.5 unless fcrdns as "no_fcrdns"
    above 6 REJECT "5.7.1 Spam score $score ($score_reasons)"
    above 4 DEFER_IF_PERMIT "4.7.1 Spam score $score ($score_reasons), try again later"
}
default DUNNO
"#;
/// The SPF policy of the end-to-end test: a fail is refused with the
/// domain's explanation, a softfail deferred, and everything else gets a
/// `Received-SPF:` header.
const SPF_POLICY: &str = r#"# policyd end-to-end test policy: SPF
rule spf-fail {
    state RCPT
    if spf == fail
    then REJECT "5.7.23 SPF fail: $spf_explanation"
}
rule spf-soft {
    state RCPT
    if spf == softfail
    then DEFER_IF_PERMIT "4.7.24 SPF softfail for $sender_domain, try again later"
}
rule spf-header { state RCPT  then PREPEND "Received-SPF: $received_spf" }
"#;
/// Inside pass.spf.test's and fail.spf.test's 192.0.2.0/24.
const SPF_PERMITTED: (&str, &str) = ("192.0.2.20", "[UNAVAILABLE]");
/// Outside every SPF record's networks.
const SPF_STRANGER: (&str, &str) = ("198.51.100.7", "[UNAVAILABLE]");

/// Listed in bl.test with a TXT reason; its reverse DNS confirms
/// (`dns/zones.conf`).
const LISTED_CLIENT: (&str, &str) = ("192.0.2.66", "mail.good.example");
/// bl.test's TXT record for [`LISTED_CLIENT`].
const LISTED_REASON: &str = "Listed: see https://bl.test/?192.0.2.66";
/// Listed in bl2.test only, no reverse DNS: a score of 4.5.
const SCORED_CLIENT: (&str, &str) = ("192.0.2.55", "[UNAVAILABLE]");
/// On no list, no reverse DNS: a score of 1.5, under both thresholds.
const CLEAN_CLIENT: (&str, &str) = ("192.0.2.1", "[UNAVAILABLE]");

/// DNS checks and scoring through a real Postfix: a `policyd` asking a real
/// unbound (the test zones of `dns/zones.conf`) behind
/// `check_policy_service`.
///
/// Postfix sees every test session come from 127.0.0.1. The listener lets
/// that host use XCLIENT (`smtpd_authorized_xclient_hosts`), and each
/// session presents one of the test clients of the zones (192.0.2.x, the
/// addresses the daemon's own DNS tests use) before EHLO. This was chosen
/// over records for 127.0.0.1 in the zones: XCLIENT gives each session its
/// own client, so one instance shows a listed, a scored and a clean client
/// against the same zones; RFC 5782 says 127.0.0.1 must never be listed
/// (lists and their clients use it to spot a broken list); and unbound
/// answers the reverse of 127.0.0.1 from its built-in `localhost` zone,
/// so the score's FCrDNS would depend on unbound's defaults.
#[test]
fn postfix_follows_policyd_dns_answers() {
    let Some(postfix) = postfix_or_skip("postfix end-to-end test with DNS") else {
        return;
    };
    let Some(unbound) = crate::unbound::Unbound::start("postfix-e2e") else {
        return;
    };
    let policy_dir_guard = RemoveOnDrop(unique_temp_dir());
    let policy_file = policy_dir_guard.0.join("dns.conf");
    fs::write(&policy_file, DNS_POLICY).expect("write the DNS policy file");
    let policy_path = policy_file.to_str().expect("UTF-8 temp path").to_owned();
    let server = unbound.addr().to_string();
    let dns = Daemon::spawn(
        &format!("--config {policy_path} --dns-server {server}"),
        &["--config", &policy_path, "--dns-server", &server],
    );
    dns.expect_line(
        "the DNS servers in use",
        &[
            &format!("has DNS tests: asking {server} "),
            "lists: bl.test bl2.test",
        ],
    );
    let spf_file = policy_dir_guard.0.join("spf.conf");
    fs::write(&spf_file, SPF_POLICY).expect("write the SPF policy file");
    let spf_path = spf_file.to_str().expect("UTF-8 temp path").to_owned();
    let spf = Daemon::spawn(
        &format!("--config {spf_path} --dns-server {server}"),
        &["--config", &spf_path, "--dns-server", &server],
    );
    let listeners = [
        Listener {
            xclient: true,
            ..Listener::rcpt("dns", dns.addr)
        },
        Listener {
            xclient: true,
            hold: true,
            ..Listener::rcpt("spf", spf.addr)
        },
    ];
    let pf = Postfix::start(&postfix, &listeners);
    let port = pf.smtpd_port("dns");

    // Listed: the rule's 5xx, with the list's reason.
    let mut s = xclient_session(port, LISTED_CLIENT);
    s.expect_refused(
        ("sender@client.e2e", "dns-listed@e2e.test"),
        "554 5.7.1",
        &format!("Listed in bl.test: {LISTED_REASON}"),
        "a client listed in bl.test: not the policy's reject with the list's reason",
    );
    s.quit();

    // Scored 4.5: above 4, under 6: the defer threshold's 4xx (Postfix
    // turns DEFER_IF_PERMIT into a 450 at the end of the restrictions).
    let mut s = xclient_session(port, SCORED_CLIENT);
    let score_text = "Spam score 4.5 (bl2=3, no_fcrdns=1.5), try again later";
    s.expect_refused(
        ("sender@client.e2e", "dns-scored@e2e.test"),
        "450 4.7.1",
        score_text,
        "a client scored 4.5: not the score's defer threshold",
    );
    s.quit();

    // Scored 1.5: nothing applies.
    let mut s = xclient_session(port, CLEAN_CLIENT);
    s.expect("MAIL FROM:<sender@client.e2e>", 250);
    s.expect("RCPT TO:<dns-clean@e2e.test>", 250);
    s.expect("RSET", 250);
    s.quit();

    // The daemon saw the presented clients and decided with their DNS
    // answers (none missing: no warning).
    dns.expect_line(
        "the listed client's decision",
        &["info: decision rule=listed ", "client=192.0.2.66 "],
    );
    dns.expect_line(
        "the scored client's decision",
        &[
            "info: decision rule=spam ",
            score_text,
            " score=4.5 score_reasons=\"bl2=3, no_fcrdns=1.5\" ",
            "client=192.0.2.55 ",
        ],
    );
    dns.expect_line(
        "the clean client's decision",
        &[
            "info: decision rule=default action=DUNNO score=1.5 score_reasons=no_fcrdns=1.5 ",
            "client=192.0.2.1 ",
        ],
    );
    dns.expect_no_warning();

    // SPF, on its own listener. A pass: accepted, and the message carries
    // the Received-SPF header.
    let spf_port = pf.smtpd_port("spf");
    let mut s = xclient_session(spf_port, SPF_PERMITTED);
    s.expect("MAIL FROM:<joe@pass.spf.test>", 250);
    s.expect("RCPT TO:<spf-pass@e2e.test>", 250);
    let pass_id = s.send_message("a message from an SPF pass");
    s.quit();
    let headers = pf.queued_headers(&pass_id);
    let received_spf = "Received-SPF: pass (domain of joe@pass.spf.test designates \
                        192.0.2.20 as permitted sender) client-ip=192.0.2.20; \
                        helo=client.e2e; identity=mailfrom; envelope-from=\"joe@pass.spf.test\";";
    assert!(
        headers.lines().any(|l| l == received_spf),
        "SPF pass: the message {pass_id} lacks `{received_spf}`; postcat -h shows:\n{headers}"
    );

    // A fail: the rule's 5xx with the domain's exp= text, macros expanded.
    let mut s = xclient_session(spf_port, SPF_STRANGER);
    let fail_text = "SPF fail: 198.51.100.7 may not send mail for fail.spf.test";
    s.expect_refused(
        ("joe@fail.spf.test", "spf-fail@e2e.test"),
        "554 5.7.23",
        fail_text,
        "SPF fail: not the policy's reject with the exp= explanation",
    );

    // A softfail, reached through an include (a second DNS round): 450.
    let soft_text = "SPF softfail for soft.spf.test, try again later";
    s.expect_refused(
        ("joe@soft.spf.test", "spf-soft@e2e.test"),
        "450 4.7.24",
        soft_text,
        "SPF softfail: not the policy's defer",
    );
    s.quit();
    spf.expect_line(
        "the SPF fail's decision",
        &["info: decision rule=spf-fail ", "client=198.51.100.7 "],
    );
    spf.expect_no_warning();

    let log = pf.wait_for_log(&[LISTED_REASON, score_text, fail_text, soft_text]);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| is_policy_warning(l, &[dns.addr, spf.addr]))
        .collect();
    assert!(
        warnings.is_empty(),
        "Postfix warned about the policy service:\n{}",
        warnings.join("\n")
    );
}

/// An SMTP session to `port` that presents itself with XCLIENT as coming
/// from `client` (address, name), then says EHLO again (XCLIENT starts the
/// session over with a new greeting).
fn xclient_session(port: u16, client: (&str, &str)) -> Smtp {
    let (addr, name) = client;
    let mut s = Smtp::connect(port);
    let ehlo = s.expect("EHLO client.e2e", 250);
    assert!(
        ehlo.contains("XCLIENT"),
        "smtpd does not offer XCLIENT to 127.0.0.1: {ehlo:?}"
    );
    s.expect(&format!("XCLIENT ADDR={addr} NAME={name}"), 220);
    s.ehlo();
    s
}

/// The `postfix` command, or `None` after a loud `SKIPPED: {what}: <reason>`
/// when it cannot run here (see [`prerequisites`]); a failure instead under
/// `POLICYD_REQUIRE_POSTFIX=1`.
fn postfix_or_skip(what: &str) -> Option<PathBuf> {
    match prerequisites() {
        Ok(path) => Some(path),
        Err(reason) => {
            if std::env::var_os("POLICYD_REQUIRE_POSTFIX").is_some_and(|v| v == "1") {
                panic!("{what} is required (POLICYD_REQUIRE_POSTFIX=1) but cannot run: {reason}");
            }
            // Written to the process's stderr directly: the test harness
            // captures `eprintln!` of passing tests, and this must be seen.
            let banner = "*".repeat(70);
            let _ = writeln!(
                std::io::stderr().lock(),
                "\n{banner}\nSKIPPED: {what}: {reason}\n\
                 (set POLICYD_REQUIRE_POSTFIX=1 to make this a failure)\n{banner}"
            );
            None
        }
    }
}

/// Finds the `postfix` command and checks that we may start an instance.
fn prerequisites() -> Result<PathBuf, String> {
    if !cfg!(target_os = "linux") {
        return Err("only supported on Linux".to_owned());
    }
    let postfix = find_program("postfix")
        .ok_or("`postfix` not found in PATH, /usr/sbin or /usr/local/sbin")?;
    let euid = effective_uid().ok_or("cannot read the effective uid from /proc/self/status")?;
    if euid != 0 {
        return Err(format!(
            "not running as root (euid {euid}); Postfix's master must start as root"
        ));
    }
    Ok(postfix)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/local/sbin", "/sbin"]
                .into_iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The effective uid, from the `Uid:` line of `/proc/self/status` (real,
/// effective, saved, filesystem).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The `$retry_after` of a reply carrying the limit's text for
/// [`LIMITED_SENDER`]: `... 4.7.1 ...Too many messages from Limited@Client.e2e,
/// try again in N seconds`, the text ending the reply. Postfix puts the
/// recipient between the status codes and the policy's text, so the text
/// after the codes is matched from `Too many`.
fn limit_retry_after(reply: &str) -> Option<u64> {
    let text = LIMIT_TEXT_PREFIX.strip_prefix("4.7.1 ")?;
    let (_, rest) = reply.split_once(text)?;
    let seconds = rest.strip_suffix(" seconds")?;
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seconds.parse().ok()
}

/// The RCPT reply of one SMTP session from `sender` to `recipient`, as an
/// MTA's delivery attempt (the session is reset and closed afterwards).
fn grey_attempt(port: u16, sender: &str, recipient: &str) -> String {
    let mut s = Smtp::connect(port);
    s.ehlo();
    s.expect(&format!("MAIL FROM:<{sender}>"), 250);
    let reply = s.command(&format!("RCPT TO:<{recipient}>"));
    s.expect("RSET", 250);
    s.quit();
    reply
}

/// Checks that `reply` is exactly Postfix's 450 for the greylist's
/// `DEFER_IF_PERMIT` at `recipient` (the policy's enhanced code and text);
/// returns the seconds left that the text gives.
fn expect_greylisted(reply: &str, recipient: &str, what: &str) -> u64 {
    let seconds = reply
        .split_once(GREY_TEXT_PREFIX)
        .and_then(|(_, rest)| rest.strip_suffix(" seconds"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!("greylist, {what}: the reply lacks the text {GREY_TEXT_PREFIX:?}N seconds: {reply:?}")
        });
    assert_eq!(
        reply,
        format!(
            "450 4.7.1 <{recipient}>: Recipient address rejected: {GREY_TEXT_PREFIX}{seconds} seconds"
        ),
        "greylist, {what}: the deferral is not the policy's text"
    );
    seconds
}

fn assert_code_class(reply: &str, class: char, what: &str) {
    assert!(
        reply.starts_with(class)
            && reply
                .as_bytes()
                .get(3)
                .is_some_and(|b| *b == b' ' || *b == b'-'),
        "{what}: expected a {class}xx reply, got {reply:?}"
    );
}

/// A warning line of Postfix's log that concerns a policy service.
fn is_policy_warning(line: &str, daemons: &[SocketAddr]) -> bool {
    if line.contains("problem talking to server") {
        return true;
    }
    if !(line.contains("warning:") || line.contains("error:") || line.contains("fatal:")) {
        return false;
    }
    let lower = line.to_ascii_lowercase();
    lower.contains("policy") || daemons.iter().any(|a| line.contains(&a.to_string()))
}

/// Runs a command with a deadline; kills it when the deadline passes.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    // Drain both pipes in threads so a chatty child cannot block on a full pipe.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            // Short polling with a deadline: the command's exit has no event
            // to wait on with a timeout in std (its pipes are being drained).
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let join =
        |h: Option<thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A running `policyd` (the shared test helper, killed on drop), with a label
/// for messages and its log printed if the test fails.
struct Daemon {
    /// What it serves, for messages: the action or `--config FILE`.
    action: String,
    inner: crate::common::Daemon,
    addr: SocketAddr,
}

impl Daemon {
    fn start(action: &str) -> Self {
        Self::spawn(action, &["--action", action])
    }

    /// Start `policyd` with `args` on an ephemeral loopback port; `label`
    /// names it in messages.
    fn spawn(label: &str, args: &[&str]) -> Self {
        Self::wrap(label, crate::common::Daemon::start(args))
    }

    /// Like [`Daemon::spawn`], with policy time read from `clock`.
    fn spawn_with_clock(label: &str, args: &[&str], clock: &crate::common::TestClock) -> Self {
        Self::wrap(label, crate::common::Daemon::start_with_clock(args, clock))
    }

    fn wrap(label: &str, inner: crate::common::Daemon) -> Self {
        let addr = inner.addr();
        Self {
            action: label.to_owned(),
            inner,
            addr,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.inner.log()
    }

    /// The daemon logged a decision line mentioning `needle` (the decision is
    /// logged after the reply is written, so give it a moment).
    fn expect_decision_mentioning(&self, needle: &str) {
        let found = self.inner.wait_for_log_within(LOG_WAIT_TIMEOUT, |l| {
            l.contains("info: decision ") && l.contains(needle)
        });
        assert!(
            found.is_some(),
            "policyd {:?} logged no decision mentioning {needle:?}; stderr:\n{}",
            self.action,
            self.lines().join("\n")
        );
    }

    /// The daemon logged a line containing every one of `needles`.
    fn expect_line(&self, what: &str, needles: &[&str]) {
        let found = self
            .inner
            .wait_for_log_within(LOG_WAIT_TIMEOUT, |l| needles.iter().all(|n| l.contains(n)));
        assert!(
            found.is_some(),
            "policyd {} logged no line with {what} ({needles:?}); stderr:\n{}",
            self.action,
            self.lines().join("\n")
        );
    }

    fn expect_no_line_mentioning(&self, needle: &str) {
        let lines = self.lines();
        let hits: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(
            hits.is_empty(),
            "policyd {:?} was asked about {needle:?}, which Postfix should have refused first:\n{hits:?}",
            self.action
        );
    }

    /// No warning or error since the daemon was ready (start-up warnings are
    /// about the configuration, e.g. the policy compiler's, not the serving).
    fn expect_no_warning(&self) {
        let lines = self.lines();
        let serving = lines
            .iter()
            .position(|l| l.contains(": info: policyd ") && l.contains(" ready "))
            .map_or(0, |i| i + 1);
        let bad: Vec<&String> = lines[serving..]
            .iter()
            .filter(|l| l.contains(": warning: ") || l.contains(": error: "))
            .collect();
        assert!(
            bad.is_empty(),
            "policyd {:?} logged warnings while serving Postfix:\n{}",
            self.action,
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- policyd {:?} on {} stderr ---\n{}",
                self.action,
                self.addr,
                self.lines().join("\n")
            );
        }
    }
}

/// One smtpd listener of the Postfix instance and the policy servers it asks.
struct Listener {
    name: &'static str,
    /// Asked in `smtpd_recipient_restrictions`.
    rcpt_policy: SocketAddr,
    /// Asked in `smtpd_end_of_data_restrictions`, if set.
    eom_policy: Option<SocketAddr>,
    /// Whether accepted messages are put on hold (`smtpd_data_restrictions`
    /// answers HOLD), so that they stay in the queue for `postcat`.
    hold: bool,
    /// Whether the test's SMTP client (on 127.0.0.1) may use XCLIENT
    /// (`smtpd_authorized_xclient_hosts`) to present another client
    /// address, name and HELO name to smtpd, and so to the policy service.
    xclient: bool,
}

impl Listener {
    fn rcpt(name: &'static str, policy: SocketAddr) -> Self {
        Self {
            name,
            rcpt_policy: policy,
            eom_policy: None,
            hold: false,
            xclient: false,
        }
    }
}

/// A throwaway Postfix instance in a temporary directory. Dropping it stops
/// the instance and removes the directory.
struct Postfix {
    postfix: PathBuf,
    dir: PathBuf,
    config_dir: PathBuf,
    maillog: PathBuf,
    ports: Vec<(&'static str, u16)>,
    running: bool,
}

impl Postfix {
    fn start(postfix: &Path, listeners: &[Listener]) -> Self {
        let dir = unique_temp_dir();
        let config_dir = dir.join("etc");
        fs::create_dir(&config_dir).expect("create config_directory");
        // The queue directory must exist and belong to root; `postfix start`
        // creates its subdirectories. The data directory must not exist yet:
        // Postfix creates it owned by `mail_owner`.
        let queue_dir = dir.join("queue");
        fs::create_dir(&queue_dir).expect("create queue_directory");
        fs::set_permissions(&queue_dir, fs::Permissions::from_mode(0o755))
            .expect("chmod queue_directory");
        let mut pf = Self {
            postfix: postfix.to_owned(),
            maillog: dir.join("maillog"),
            dir,
            config_dir,
            ports: Vec::new(),
            running: false,
        };
        let mut last_error = String::new();
        for attempt in 1..=POSTFIX_START_ATTEMPTS {
            pf.ports = listeners.iter().map(|l| (l.name, free_port())).collect();
            pf.write_config(listeners);
            let out = pf.postfix_cmd("start");
            // Even a failed start may have left a master behind; stop() copes.
            pf.running = true;
            match out {
                Ok(o) if o.status.success() => match pf.wait_until_accepting() {
                    Ok(()) => return pf,
                    Err(e) => last_error = e,
                },
                Ok(o) => last_error = format!("postfix start: {}\n{}", o.status, describe(&o)),
                Err(e) => last_error = e,
            }
            eprintln!(
                "postfix start attempt {attempt} failed: {last_error}\n{}",
                pf.read_log()
            );
            pf.stop();
        }
        panic!(
            "cannot start the test Postfix instance in {}: {last_error}",
            pf.dir.display()
        );
    }

    fn write_config(&self, listeners: &[Listener]) {
        let dir = self.dir.display();
        let mut main = format!(
            "# Throwaway Postfix instance for policyd's end-to-end test.\n\
             compatibility_level = 3.6\n\
             queue_directory = {dir}/queue\n\
             data_directory = {dir}/data\n\
             maillog_file = {maillog}\n\
             maillog_file_prefixes = {dir}\n\
             syslog_name = postfix-policyd-e2e\n\
             myhostname = mx.{LOCAL_DOMAIN}\n\
             mydomain = {LOCAL_DOMAIN}\n\
             myorigin = $myhostname\n\
             mydestination = {LOCAL_DOMAIN}\n\
             # Any local part of the test domain exists; nothing is ever delivered:\n\
             # accepted test mail is discarded.\n\
             local_recipient_maps =\n\
             local_transport = discard:policyd-e2e\n\
             alias_maps =\n\
             alias_database =\n\
             relay_domains =\n\
             relayhost =\n\
             mynetworks = 127.0.0.0/8\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             smtpd_peername_lookup = no\n\
             smtputf8_enable = no\n\
             biff = no\n\
             smtpd_tls_security_level = none\n\
             # Relay control in smtpd_recipient_restrictions only, as in the README.\n\
             smtpd_relay_restrictions =\n\
             smtpd_end_of_data_restrictions =\n\
             # The recommended placement: the policy service after reject_unauth_destination.\n\
             # Postfix's default default_action (451 4.3.5) is kept so that a protocol\n\
             # problem cannot pass for one of the daemon's answers.\n",
            maillog = self.maillog.display(),
        );
        let mut master =
            String::from("# Throwaway Postfix instance for policyd's end-to-end test.\n");
        for (l, (_, port)) in listeners.iter().zip(&self.ports) {
            let name = l.name;
            writeln!(
                main,
                "policyd_e2e_{name}_rcpt = reject_unauth_destination, \
                 check_policy_service {{ inet:{}, timeout={POLICY_TIMEOUT_SECS}s }}, permit",
                l.rcpt_policy
            )
            .expect("write to String");
            write!(
                master,
                "127.0.0.1:{port} inet n - n - - smtpd\n  -o syslog_name=postfix-policyd-e2e/{name}\n  \
                 -o smtpd_recipient_restrictions=$policyd_e2e_{name}_rcpt\n"
            )
            .expect("write to String");
            if let Some(eom) = l.eom_policy {
                writeln!(
                    main,
                    "policyd_e2e_{name}_eom = check_policy_service {{ inet:{eom}, timeout={POLICY_TIMEOUT_SECS}s }}"
                )
                .expect("write to String");
                writeln!(
                    master,
                    "  -o smtpd_end_of_data_restrictions=$policyd_e2e_{name}_eom"
                )
                .expect("write to String");
            }
            if l.hold {
                writeln!(
                    main,
                    "policyd_e2e_{name}_data = check_client_access static:HOLD"
                )
                .expect("write to String");
                writeln!(
                    master,
                    "  -o smtpd_data_restrictions=$policyd_e2e_{name}_data"
                )
                .expect("write to String");
            }
            if l.xclient {
                master.push_str("  -o smtpd_authorized_xclient_hosts=127.0.0.1\n");
            }
        }
        // Only the services smtpd needs to answer RCPT and to open and abort a
        // queue file; none of them chrooted (the queue is in a temp dir).
        master.push_str(
            "cleanup   unix  n       -       n       -       0       cleanup\n\
             qmgr      unix  n       -       n       300     1       qmgr\n\
             rewrite   unix  -       -       n       -       -       trivial-rewrite\n\
             bounce    unix  -       -       n       -       0       bounce\n\
             defer     unix  -       -       n       -       0       bounce\n\
             trace     unix  -       -       n       -       0       bounce\n\
             verify    unix  -       -       n       -       1       verify\n\
             proxymap  unix  -       -       n       -       -       proxymap\n\
             error     unix  -       -       n       -       -       error\n\
             retry     unix  -       -       n       -       -       error\n\
             discard   unix  -       -       n       -       -       discard\n\
             local     unix  -       n       n       -       -       local\n\
             anvil     unix  -       -       n       -       1       anvil\n\
             scache    unix  -       -       n       -       1       scache\n\
             postlog   unix-dgram n  -       n       -       1       postlogd\n",
        );
        fs::write(self.config_dir.join("main.cf"), main).expect("write main.cf");
        fs::write(self.config_dir.join("master.cf"), master).expect("write master.cf");
    }

    fn postfix_cmd(&self, verb: &str) -> Result<Output, String> {
        run_bounded(
            Command::new(&self.postfix)
                .arg("-c")
                .arg(&self.config_dir)
                .arg(verb),
            POSTFIX_COMMAND_TIMEOUT,
        )
    }

    /// Waits until every smtpd listener answers with its 220 greeting.
    fn wait_until_accepting(&self) -> Result<(), String> {
        let deadline = Instant::now() + SMTPD_READY_TIMEOUT;
        for (name, port) in &self.ports {
            loop {
                let addr = SocketAddr::from(([127, 0, 0, 1], *port));
                let err = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(stream) => match Smtp::from_stream(stream).read_reply_then_quit() {
                        Ok(r) if r.starts_with("220") => break,
                        Ok(r) => format!("unexpected greeting {r:?}"),
                        Err(e) => e,
                    },
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    return Err(format!("smtpd listener {name} on {addr} not ready: {err}"));
                }
                // Short polling with a deadline: Postfix's master gives no
                // signal when its smtpd listeners are up.
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn smtpd_port(&self, name: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .expect("listener name is configured")
    }

    /// The headers of queued message `queue_id` (`postcat -h -q`).
    fn queued_headers(&self, queue_id: &str) -> String {
        let postcat = self
            .postfix
            .parent()
            .map(|dir| dir.join("postcat"))
            .filter(|p| p.is_file())
            .or_else(|| find_program("postcat"))
            .expect("postcat is installed next to postfix");
        let out = run_bounded(
            Command::new(postcat)
                .arg("-c")
                .arg(&self.config_dir)
                .args(["-h", "-q", queue_id]),
            POSTFIX_COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("postcat: {e}"));
        assert!(
            out.status.success(),
            "postcat -q {queue_id}: {}\n{}",
            out.status,
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn read_log(&self) -> String {
        fs::read(&self.maillog)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log holds every needle (postlogd writes asynchronously),
    /// and returns it.
    fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + LOG_WAIT_TIMEOUT;
        loop {
            let log = self.read_log();
            let missing: Vec<&&str> = needles.iter().filter(|n| !log.contains(**n)).collect();
            if missing.is_empty() {
                return log;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Postfix's log {} lacks {missing:?}:\n{log}",
                    self.maillog.display()
                );
            }
            // Short polling with a deadline: postlogd appends to a file
            // and sends no notice (no inotify in std).
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the instance (if it may be running) and waits until its master is gone.
    fn stop(&mut self) {
        if !self.running {
            return;
        }
        if let Err(e) = self.postfix_cmd("stop") {
            eprintln!("postfix stop: {e}");
        }
        // `postfix status` fails once the master no longer holds its lock.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.postfix_cmd("status") {
                Ok(o) if !o.status.success() => break,
                // Short polling with a deadline: the master is not our child,
                // so its exit is only seen through `postfix status`.
                Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
                Ok(_) => {
                    eprintln!("postfix did not stop within 10 s; aborting it");
                    if let Err(e) = self.postfix_cmd("abort") {
                        eprintln!("postfix abort: {e}");
                    }
                    break;
                }
                Err(e) => {
                    eprintln!("postfix status: {e}");
                    break;
                }
            }
        }
        self.running = false;
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- Postfix log {} ---\n{}",
                self.maillog.display(),
                self.read_log()
            );
        }
        if std::env::var_os("POLICYD_E2E_KEEP").is_some_and(|v| v == "1") {
            eprintln!("kept the Postfix test instance in {}", self.dir.display());
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn describe(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

/// A new directory, mode 0755, under `/tmp`: Postfix's daemons run as the
/// `postfix` user and must traverse every parent to reach their queue, which a
/// `$TMPDIR` under a private home directory would not allow. Falls back to the
/// system temp dir where `/tmp` does not exist.
fn unique_temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = Path::new("/tmp");
    let base = if tmp.is_dir() {
        tmp.to_owned()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "policyd-postfix-e2e-{}-{nanos}",
        std::process::id()
    ));
    fs::create_dir(&dir).expect("create the test instance directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .expect("chmod the test instance directory");
    dir
}

/// A directory removed (with its contents) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A minimal SMTP client: one command, one (possibly multi-line) reply.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    fn connect(port: u16) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, SMTP_IO_TIMEOUT).expect("connect to smtpd");
        let mut s = Self::from_stream(stream);
        let greeting = s.read_reply().expect("read the SMTP greeting");
        assert!(
            greeting.starts_with("220"),
            "unexpected SMTP greeting {greeting:?}"
        );
        s
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(SMTP_IO_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(SMTP_IO_TIMEOUT))
            .expect("set write timeout");
        let writer = stream.try_clone().expect("clone the SMTP socket");
        Self {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Reads one reply; the lines of a multi-line reply are joined with `\n`.
    fn read_reply(&mut self) -> Result<String, String> {
        let mut reply = String::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.reader)
                .take(MAX_SMTP_LINE as u64)
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("reading an SMTP reply: {e}"))?;
            if n == 0 {
                return Err(format!("connection closed by smtpd after {reply:?}"));
            }
            if line.last() != Some(&b'\n') {
                return Err(format!("SMTP reply line longer than {MAX_SMTP_LINE} bytes"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                return Err(format!("malformed SMTP reply line {line:?}"));
            }
            if !reply.is_empty() {
                reply.push('\n');
            }
            reply.push_str(line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(reply);
            }
        }
    }

    /// Reads the greeting, then says QUIT so smtpd logs a clean disconnect.
    fn read_reply_then_quit(mut self) -> Result<String, String> {
        let greeting = self.read_reply()?;
        if self.writer.write_all(b"QUIT\r\n").is_ok() {
            let _ = self.read_reply();
        }
        Ok(greeting)
    }

    fn command(&mut self, cmd: &str) -> String {
        self.writer
            .write_all(format!("{cmd}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {cmd:?}: {e}"));
        self.read_reply()
            .unwrap_or_else(|e| panic!("after {cmd:?}: {e}"))
    }

    fn expect(&mut self, cmd: &str, code: u16) -> String {
        let reply = self.command(cmd);
        assert!(
            reply.starts_with(&code.to_string()),
            "{cmd:?}: expected {code}, got {reply:?}"
        );
        reply
    }

    /// DATA, a short message whose body says `what`, the final dot: expects
    /// 354, then 250 (queued); returns the queue id.
    fn send_message(&mut self, what: &str) -> String {
        self.expect("DATA", 354);
        let r = self.expect(
            &format!("Subject: policyd e2e\r\n\r\nThis is {what}.\r\n."),
            250,
        );
        r.split_once("queued as ")
            .map(|(_, id)| id.trim().to_owned())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_else(|| panic!("{what}: not queued: {r:?}"))
    }

    fn ehlo(&mut self) {
        self.expect("EHLO client.e2e", 250);
    }

    /// MAIL FROM and RCPT TO of `(sender, recipient)`: expects the
    /// recipient refused with `code` (`554 5.7.1`) and the policy's `text`,
    /// as Postfix words a policy refusal; then RSET.
    fn expect_refused(
        &mut self,
        (sender, recipient): (&str, &str),
        code: &str,
        text: &str,
        what: &str,
    ) {
        self.expect(&format!("MAIL FROM:<{sender}>"), 250);
        let reply = self.command(&format!("RCPT TO:<{recipient}>"));
        assert_eq!(
            reply,
            format!("{code} <{recipient}>: Recipient address rejected: {text}"),
            "{what}"
        );
        self.expect("RSET", 250);
    }

    fn quit(mut self) {
        self.expect("QUIT", 221);
    }
}
