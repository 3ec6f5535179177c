//! A mail server embedding policyd's engine, end to end, without a socket:
//!
//! 1. compile a policy with a rate limit, a greylist and a DNSBL check;
//! 2. frame the bytes of a policy connection and parse each request (and
//!    build one from the server's own SMTP state, without bytes);
//! 3. decide, supplying the DNSBL answers from a resolver (a fake one here:
//!    a real server asks DNS), and encode each reply;
//! 4. save the state (counters, greylist triplets) to bytes and restore it
//!    into a fresh engine, as at a restart.
//!
//! Run it with `cargo run -p policy-proto --example mail_server`; CI does.

use std::net::{IpAddr, Ipv4Addr};

use policy_core::facts::{Answer, Query, Resolver};
use policy_core::{
    store, Engine, NoFiles, Policy, ProtocolState, Request, Scratch, Step, Timestamp,
};
use policy_proto::{encode, Framer, Limits};

const POLICY: &str = r#"
# Clients listed in the DNSBL are refused outright.
rule listed {
    if client_address in dnsbl "bl.example"
    then REJECT "5.7.1 $client_address is listed at bl.example"
}

# One message an hour per sender (a refused attempt does not count).
limit per_sender {
    key sender
    count messages
    max 1 per 1h
}

# Unknown triplets wait 5 minutes.
greylist grey {
    delay 5m
}

default DUNNO
"#;

/// A resolver with fixed answers: `192.0.2.66` is listed, nothing else.
struct FakeDns;

impl Resolver for FakeDns {
    fn resolve(&mut self, query: Query<'_>) -> Answer<'_> {
        const LISTED: &[IpAddr] = &[IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))];
        if query.name == b"66.2.0.192.bl.example" {
            Answer::Addresses(LISTED)
        } else {
            Answer::NotFound
        }
    }
}

fn rcpt(client: &str, sender: &str, recipient: &str, instance: u32) -> String {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={client}\n\
         sender={sender}\nrecipient={recipient}\ninstance={instance}\n\n"
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The policy, compiled once; the engine holds it and its state.
    let compiled = Policy::compile("policy.conf", POLICY, &mut NoFiles)?;
    for warning in &compiled.warnings {
        eprintln!("{warning}");
    }
    let engine = Engine::new(compiled.policy);
    let t0 = Timestamp::from_unix_millis(1_700_000_000_000);

    // 2. One connection's bytes, arriving in pieces.
    let mut framer = Framer::new(Limits::default());
    let mut scratch = Scratch::new(); // one per connection, reused
    let mut replies = Vec::new();
    let bytes = [
        rcpt("192.0.2.66", "spam@bad.example", "joe@example.com", 1),
        rcpt("192.0.2.10", "ann@good.example", "joe@example.com", 2),
    ]
    .concat();
    let (first, second) = bytes.as_bytes().split_at(40);
    for piece in [first, second] {
        framer.feed(piece);
        while let Some(frame) = framer.next_frame()? {
            let request = Request::parse(frame)?;
            // 3. The blocking form: the resolver answers each query.
            let decision = engine.decide_with(&request, t0, &mut scratch, &mut FakeDns);
            encode(&decision, &mut replies);
        }
    }
    let replies = String::from_utf8(replies)?;
    print!("{replies}");
    assert_eq!(
        replies,
        "action=REJECT 5.7.1 192.0.2.66 is listed at bl.example\n\n\
         action=DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 300 seconds\n\n"
    );

    // A server that sends its queries itself, in parallel, and resumes:
    // the same decision in steps. Here the request is built from the
    // server's own SMTP state, without bytes.
    let request = Request {
        protocol_state: Some(ProtocolState::Rcpt),
        client_address: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        sender: policy_core::Address::new(b"ann@good.example"),
        recipient: policy_core::Address::new(b"joe@example.com"),
        instance: b"3",
        ..Request::default()
    };
    let later = Timestamp::from_unix_millis(t0.as_unix_millis() + 6 * 60_000);
    let mut step = engine.start(&request, later, &mut scratch);
    while let Step::NeedFacts = step {
        let pending: Vec<_> = scratch.facts().pending().map(|(id, _)| id).collect();
        for id in pending {
            // A real server sends each query now and supplies answers as
            // they come; at its deadline: scratch.facts_mut().expire().
            scratch.facts_mut().supply(id, Answer::NotFound);
        }
        step = engine.resume(&request, later, &mut scratch);
    }
    let Step::Decided(decision) = step else {
        unreachable!("the loop ends when decided")
    };
    // The retry after the delay passes the greylist and is the sender's
    // first counted message (the deferred attempt was given back).
    println!("retry: {}", String::from_utf8_lossy(decision.wire()));
    assert_eq!(decision.wire(), b"DUNNO");

    // 4. Save the state, and restore it into a fresh engine (a restart).
    let mut file = Vec::new();
    let tables = store::encode(&engine.state(), later, &mut file);
    println!("state: {tables} tables, {} bytes", file.len());
    let restarted = Engine::new(Policy::compile("policy.conf", POLICY, &mut NoFiles)?.policy);
    let (state, report) = store::restore(&restarted.state(), &file)?;
    restarted.set_state(state);
    for table in &report.restored {
        println!("restored {}: {} keys", table.name, table.keys);
    }
    // The counters came back: ann's next message this hour is over the limit.
    let mut scratch = Scratch::new();
    let third = rcpt("192.0.2.10", "ann@good.example", "joe@example.com", 4);
    let request = Request::parse(third.as_bytes().strip_suffix(b"\n").unwrap_or_default())?;
    let decision = restarted.decide_with(&request, later, &mut scratch, &mut FakeDns);
    println!("next message: {}", String::from_utf8_lossy(decision.wire()));
    assert!(decision
        .wire()
        .starts_with(b"DEFER 4.7.1 Rate limit reached"));
    Ok(())
}
