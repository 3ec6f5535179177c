//! The one-shot sub-commands: `policyd check` (compile policy files, report
//! every diagnostic), `policyd test` (decide requests read from files with
//! a policy, print what it answers and why) and `policyd state` (show what a
//! state file, or Redis for a policy's `backend redis` items, holds: the
//! keys counting the most in each limit, the pending, passed and
//! whitelisted entries of each greylist).
//!
//! Each writes its report to standard output and returns the exit code (see
//! `policyd --help`). None starts a thread or listens; `policyd state
//! --redis` opens one connection to Redis and only reads
//! ([`crate::redis_state::view`]). `policyd test` with a
//! policy that has DNS tests asks them as the daemon does ([`crate::dns`]:
//! its client, cache and deadline; UDP sockets of its own), unless
//! `--no-dns`; the DNS client's warnings (answers missing at the deadline, a
//! list's error code) go to standard error, the report to standard output.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use policy_core::base::attr::{is_known_attribute, KNOWN_ATTRIBUTES};
use policy_core::facts::{Answer, FactId, Facts, QueryKind};
use policy_core::{Decision, Engine, Request, Scratch, Step, Timestamp};
use policy_proto::{Framer, Limits};

use policy_core::greylist::{GreyCounts, GreylistTable, Timers, MAX_GREYLIST_CAPACITY};
use policy_core::lang::did_you_mean;
use policy_core::limits::{LimitTable, TopKey, Window, MAX_LIMIT_CAPACITY};
use policy_core::state::Item;
use policy_core::store::{self, TableKind};
use policy_core::State;

use crate::cli::{
    CheckArgs, PolicySource, RedisArgs, StateArgs, StateSource, TestArgs, EX_CONFIG, EX_DATAERR,
    EX_NOINPUT, EX_UNAVAILABLE, EX_USAGE,
};
use crate::clock;
use crate::dns::{self, Client, Questions, Rounds};
use crate::log::push_escaped;
use crate::policy_file::{self, plural, LoadError};
use crate::redis_state::view::{self, MAX_SCAN_KEYS};
use crate::redis_state::{connect_read_only, read_password, read_tls_files, redacted, StartError};
use crate::shared::dns::DnsShared;
use crate::statefile::{self, ReadError};

/// Exit code when stdout cannot be written (`sysexits.h` `EX_IOERR`).
pub(crate) const EX_IOERR: u8 = 74;

/// Largest request input read by `policyd test`, per file or from standard
/// input: 64 MiB, tens of thousands of full Postfix requests. The whole
/// input is held in memory; the cap keeps a wrong file from exhausting it.
pub(crate) const MAX_REQUESTS_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// The name standard input goes by, on the command line and in the report.
const STDIN_NAME: &str = "-";

/// `policyd check`: compile each file, print its diagnostics and a summary
/// line. 0 when every file compiles (and has no warning under
/// `--deny-warnings`), 1 otherwise.
pub(crate) fn check(args: &CheckArgs, out: &mut dyn Write) -> u8 {
    let mut failed = false;
    let mut report = String::new();
    for path in &args.files {
        report.clear();
        failed |= check_one(path, args.deny_warnings, &mut report);
        if out.write_all(report.as_bytes()).is_err() {
            return EX_IOERR;
        }
    }
    if out.flush().is_err() {
        return EX_IOERR;
    }
    u8::from(failed)
}

/// Check one file into `report`; true if it fails.
fn check_one(path: &Path, deny_warnings: bool, report: &mut String) -> bool {
    let name = path.display();
    match policy_file::load(&PolicySource::File(path.to_owned())) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                let _ = writeln!(report, "{warning}\n");
            }
            let warnings = loaded.warnings.len();
            let fails = deny_warnings && warnings > 0;
            let _ = writeln!(
                report,
                "{name}: {}: {} {}, {} list {}, {warnings} {}{}",
                if fails { "FAILED" } else { "OK" },
                loaded.rules,
                plural(loaded.rules, "rule", "rules"),
                loaded.files,
                plural(loaded.files, "file", "files"),
                plural(warnings, "warning", "warnings"),
                if fails { " (--deny-warnings)" } else { "" },
            );
            fails
        }
        Err(LoadError::Compile { errors, .. }) => {
            for diagnostic in errors.errors.iter().chain(&errors.warnings) {
                let _ = writeln!(report, "{diagnostic}\n");
            }
            let (e, w) = (errors.errors.len(), errors.warnings.len());
            let _ = writeln!(
                report,
                "{name}: FAILED: {e} {}, {w} {}",
                plural(e, "error", "errors"),
                plural(w, "warning", "warnings"),
            );
            true
        }
        Err(e @ LoadError::Read { .. }) => {
            let _ = writeln!(report, "{name}: error: {e}");
            let _ = writeln!(report, "{name}: FAILED: cannot be read");
            true
        }
    }
}

/// `policyd test`: decide every request of every input with the policy and
/// print the outcome. 0 when every request parsed and every input was read,
/// 1 otherwise, [`EX_CONFIG`] when the policy cannot be loaded.
pub(crate) fn test(args: &TestArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> u8 {
    let loaded = match policy_file::load(&args.policy) {
        Ok(loaded) => loaded,
        Err(e) => {
            let mut report = String::new();
            if let LoadError::Compile { errors, .. } = &e {
                for diagnostic in errors.errors.iter().chain(&errors.warnings) {
                    let _ = writeln!(report, "{diagnostic}");
                }
            }
            let _ = writeln!(report, "policyd: error: {e}");
            // Standard error: the requests were not tested at all.
            let _ = io::stderr().write_all(report.as_bytes());
            return EX_CONFIG;
        }
    };
    let now = args
        .now
        .map_or_else(|| clock::now().as_unix_millis(), |secs| secs * 1000);
    let mut report = String::new();
    let dns = if !loaded.policy.uses_outside_facts() {
        None
    } else if args.no_dns {
        let _ = writeln!(
            report,
            "dns: not asked (--no-dns): every DNS test is unknown, and a rule whose \
             condition depends on one does not apply; SPF is `temperror`\n"
        );
        None
    } else {
        match dns::servers(&args.dns) {
            Ok(servers) => {
                let shown: Vec<String> = servers.iter().map(ToString::to_string).collect();
                let zones: Vec<String> = loaded
                    .policy
                    .dns_zones()
                    .map(|z| String::from_utf8_lossy(z).into_owned())
                    .collect();
                let _ = writeln!(
                    report,
                    "dns: asking {} (deadline {} ms); lists: {}\n",
                    shown.join(" "),
                    args.dns.deadline.as_millis(),
                    if zones.is_empty() {
                        "none".to_owned()
                    } else {
                        zones.join(" ")
                    }
                );
                let shared = DnsShared::new(args.dns.clone());
                let _ = shared.servers.set(servers.into());
                Some(TestDns {
                    shared,
                    client: Client::new(),
                    asked: Vec::new(),
                })
            }
            Err(e) => {
                let _ = writeln!(
                    io::stderr(),
                    "policyd: error: policy {} has DNS tests and no DNS server to ask: {e} \
                     (or --no-dns: every DNS test unknown)",
                    loaded.name
                );
                return EX_CONFIG;
            }
        }
    };
    let engine = Engine::new(loaded.policy);
    let mut tester = Tester {
        engine: &engine,
        dns,
        explain: args.explain,
        now: Timestamp::from_unix_millis(now),
        framer: Framer::new(Limits::default()).allow_empty_lines(true),
        scratch: Scratch::new(),
        report,
        decided: 0,
        failed: 0,
    };
    // Standard error: stdout is the requests' report.
    if !loaded.warnings.is_empty() {
        let mut warnings = String::new();
        for warning in &loaded.warnings {
            let _ = writeln!(warnings, "{warning}");
        }
        let _ = io::stderr().write_all(warnings.as_bytes());
    }
    let stdin_path = PathBuf::from(STDIN_NAME);
    let inputs: &[PathBuf] = if args.inputs.is_empty() {
        std::slice::from_ref(&stdin_path)
    } else {
        &args.inputs
    };
    for input in inputs {
        let name = input.display().to_string();
        let bytes = if input.as_os_str() == STDIN_NAME {
            read_stdin(stdin)
        } else {
            // Bytes, not text: Postfix's attribute values need not be UTF-8.
            policy_file::read_bytes(input, MAX_REQUESTS_INPUT_BYTES, "MAX_REQUESTS_INPUT_BYTES")
        };
        match bytes {
            Ok(bytes) => tester.run(&name, &bytes),
            Err(reason) => {
                tester.failed += 1;
                let _ = writeln!(tester.report, "{name}: error: cannot read: {reason}");
            }
        }
        if out.write_all(tester.report.as_bytes()).is_err() {
            return EX_IOERR;
        }
        tester.report.clear();
    }
    let _ = writeln!(
        tester.report,
        "{} {} decided, {} not parsed or unreadable",
        tester.decided,
        plural(tester.decided, "request", "requests"),
        tester.failed
    );
    if out.write_all(tester.report.as_bytes()).is_err() || out.flush().is_err() {
        return EX_IOERR;
    }
    u8::from(tester.failed > 0)
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    stdin
        .take(MAX_REQUESTS_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::listen::describe(&e))?;
    if bytes.len() as u64 > MAX_REQUESTS_INPUT_BYTES {
        return Err(format!(
            "too large: expected at most {MAX_REQUESTS_INPUT_BYTES} bytes (MAX_REQUESTS_INPUT_BYTES)"
        ));
    }
    Ok(bytes)
}

/// One request of an input: its lines with their line numbers.
struct Block<'a> {
    /// `(line number, line without LF)`, comments left out.
    lines: Vec<(usize, &'a [u8])>,
}

/// Split `input` into requests: runs of non-empty lines (a line of only CR
/// counts as empty), `#` comment lines left out.
fn blocks(input: &[u8]) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut current = Vec::new();
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    if input.is_empty() {
        return blocks;
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() || line == b"\r" {
            if !current.is_empty() {
                blocks.push(Block {
                    lines: std::mem::take(&mut current),
                });
            }
        } else if !line.starts_with(b"#") {
            current.push((i + 1, line));
        }
    }
    if !current.is_empty() {
        blocks.push(Block { lines: current });
    }
    blocks
}

/// `policyd test`'s state across inputs.
struct Tester<'p> {
    engine: &'p Engine,
    /// The DNS client, for a policy with DNS tests (unless `--no-dns`).
    dns: Option<TestDns>,
    explain: bool,
    now: Timestamp,
    framer: Framer,
    scratch: Scratch,
    /// The report of the current input.
    report: String,
    /// Requests decided so far.
    decided: usize,
    /// Requests (or inputs) that failed so far.
    failed: usize,
}

/// The attribute every hand-written request may leave out.
const REQUEST_LINE: &[u8] = b"request=smtpd_access_policy";

impl Tester<'_> {
    /// Decide every request of one input named `name`.
    fn run(&mut self, name: &str, input: &[u8]) {
        let blocks = blocks(input);
        if blocks.is_empty() {
            let _ = writeln!(self.report, "{name}: no requests");
        }
        let mut bytes = Vec::new();
        for (index, block) in blocks.iter().enumerate() {
            let number = index + 1;
            let first_line = block.lines[0].0;
            // A hand-written request may leave out `request=`.
            let implicit = !block.lines.iter().any(|(_, l)| l.starts_with(b"request="));
            bytes.clear();
            if implicit {
                bytes.extend_from_slice(REQUEST_LINE);
                bytes.push(b'\n');
            }
            for (_, line) in &block.lines {
                bytes.extend_from_slice(line);
                bytes.push(b'\n');
            }
            bytes.push(b'\n');
            // Frame line `n` (1-based) is input line `line_of(n)`.
            let line_of = |n: usize| -> usize {
                let n = if implicit { n.saturating_sub(1) } else { n };
                block
                    .lines
                    .get(n.saturating_sub(1))
                    .map_or(first_line, |l| l.0)
            };
            self.framer.reset();
            self.framer.feed(&bytes);
            let frame = match self.framer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    // Unreachable: the block ends with an empty line.
                    self.failed += 1;
                    let _ = writeln!(
                        self.report,
                        "{name}:{first_line}: request {number}: error: incomplete request\n"
                    );
                    continue;
                }
                Err(e) => {
                    self.failed += 1;
                    let line = line_of(usize::try_from(e.line()).unwrap_or(usize::MAX));
                    let _ = writeln!(
                        self.report,
                        "{name}:{line}: request {number}: error: {}\n",
                        strip_line_prefix(&e.to_string(), e.line())
                    );
                    continue;
                }
            };
            let request = match Request::parse(frame) {
                Ok(request) => request,
                Err(e) => {
                    self.failed += 1;
                    let (line, text) = parse_error_location(&e, block, &line_of);
                    let _ = writeln!(
                        self.report,
                        "{name}:{line}: request {number}: error: {text}\n"
                    );
                    continue;
                }
            };
            self.decided += 1;
            // Postfix sends only the known attributes: another name is a
            // typo, and the attribute it meant is left empty.
            for &(line, text) in &block.lines {
                let attribute = text.split(|&b| b == b'=').next().unwrap_or(text);
                if !is_known_attribute(attribute) {
                    let attribute = String::from_utf8_lossy(attribute);
                    let _ = writeln!(
                        self.report,
                        "{name}:{line}: request {number}: warning: Postfix sends no attribute \
                         `{attribute}`; it is ignored{}",
                        did_you_mean(&attribute, KNOWN_ATTRIBUTES)
                            .map_or_else(String::new, |a| format!(" (did you mean `{a}`?)"))
                    );
                }
            }
            let _ = write!(self.report, "{name}:{first_line}: request {number}:");
            header(&request, &mut self.report);
            self.report.push('\n');
            // Explained before deciding: explaining checks limits without
            // counting, so it sees the counters and the message state this
            // decision sees. With DNS, the answers are gathered first (as a
            // connection of the daemon does, `conn.rs`: in rounds, the
            // queries of each asked live), so the explanation shows them;
            // without (`--no-dns`), `Engine::decide` takes them all as
            // unknown.
            let uses_dns = self.engine.policy().uses_outside_facts();
            let mut gathered = false;
            if let (Some(dns), true) = (&mut self.dns, uses_dns) {
                dns.asked.clear();
                let mut rounds = Rounds::new(&dns.shared.settings);
                let mut waiting = self
                    .engine
                    .gather(&request, self.now, &mut self.scratch, true);
                while waiting {
                    dns.round(self.engine, &mut rounds, self.scratch.facts_mut(), self.now);
                    waiting = self
                        .engine
                        .gather(&request, self.now, &mut self.scratch, false);
                }
                gathered = true;
            } else if uses_dns && self.explain {
                self.engine
                    .assume_unknown(&request, self.now, &mut self.scratch);
            }
            let explanation = self.explain.then(|| {
                self.engine
                    .explain_with(&request, self.now, &self.scratch)
                    .to_string()
            });
            let decision = if gathered {
                match self.engine.resume(&request, self.now, &mut self.scratch) {
                    Step::Decided(decision) => decision,
                    Step::NeedFacts => self.engine.decide(&request, self.now, &mut self.scratch),
                }
            } else {
                self.engine.decide(&request, self.now, &mut self.scratch)
            };
            let _ = writeln!(
                self.report,
                "    action: {}",
                String::from_utf8_lossy(decision.wire())
            );
            let _ = writeln!(self.report, "    rule: {}", decision.rule);
            for hit in decision.dry_run {
                let _ = writeln!(
                    self.report,
                    "    dry-run: {} would answer {}",
                    hit.rule,
                    String::from_utf8_lossy(hit.wire)
                );
            }
            if uses_dns {
                dns_lines(self.dns.as_ref(), &decision, &mut self.report);
            }
            if let Some(explanation) = explanation {
                for line in explanation.lines() {
                    let _ = writeln!(self.report, "    | {line}");
                }
                if uses_dns && self.dns.is_none() {
                    let _ = writeln!(
                        self.report,
                        "    | (--no-dns: every DNS test is unknown; SPF is temperror)"
                    );
                }
            }
            self.report.push('\n');
        }
    }
}

/// Name of `policyd test` in the DNS client's warnings, where the daemon
/// names the connection's peer.
const TEST_PEER: &str = "policyd-test";

/// `policyd test`'s DNS: the daemon's client and cache, and what the
/// request being decided asked.
struct TestDns {
    shared: DnsShared,
    client: Client,
    /// The queries of the current request and their answers, in the order
    /// they were answered.
    asked: Vec<Asked>,
}

/// One query of `policyd test` and its answer, as printed.
struct Asked {
    kind: QueryKind,
    name: String,
    answer: String,
}

impl TestDns {
    /// One round of a request's DNS queries, noting each answer.
    fn round(&mut self, engine: &Engine, rounds: &mut Rounds, facts: &mut Facts, now: Timestamp) {
        let mut noted = Noted {
            facts,
            asked: &mut self.asked,
        };
        rounds.round(
            engine,
            &self.shared,
            &mut self.client,
            &mut noted,
            now,
            TEST_PEER,
        );
    }
}

/// A decision's facts, noting each answer supplied (for the report).
struct Noted<'a> {
    facts: &'a mut Facts,
    asked: &'a mut Vec<Asked>,
}

impl Noted<'_> {
    fn note(&mut self, id: FactId, answer: &Answer<'_>) {
        let Some((_, query)) = self.facts.pending().find(|(i, _)| *i == id) else {
            return;
        };
        self.asked.push(Asked {
            kind: query.kind,
            name: String::from_utf8_lossy(query.name).into_owned(),
            answer: answer_text(answer),
        });
    }
}

impl Questions for Noted<'_> {
    type Id = FactId;

    fn each_pending(&self, f: impl FnMut(FactId, QueryKind, &[u8])) {
        self.facts.each_pending(f);
    }

    fn supply(&mut self, id: FactId, answer: Answer<'_>) {
        self.note(id, &answer);
        self.facts.supply(id, answer);
    }

    fn expire(&mut self) {
        let pending: Vec<FactId> = self.facts.pending().map(|(id, _)| id).collect();
        for id in pending {
            self.note(id, &Answer::Unknown);
        }
        self.facts.expire();
    }
}

/// An answer as `policyd test` prints it.
fn answer_text(answer: &Answer<'_>) -> String {
    let escaped = |value: &[u8]| {
        let mut out = Vec::with_capacity(value.len());
        push_escaped(&mut out, value);
        String::from_utf8_lossy(&out).into_owned()
    };
    match answer {
        Answer::Addresses(found) => found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        Answer::Names(names) => names
            .iter()
            .map(|n| {
                if n.is_empty() {
                    ".".to_owned()
                } else {
                    escaped(n)
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Answer::Texts(texts) => texts
            .iter()
            .map(|t| format!("\"{}\"", escaped(t)))
            .collect::<Vec<_>>()
            .join(" "),
        Answer::NotFound => "not found (NXDOMAIN or no such record)".to_owned(),
        _ => "unknown (no answer by the deadline, a server failure, a skipped list or a \
              list's error code)"
            .to_owned(),
    }
}

/// The DNS lines of a request's report: each query and its answer, and how
/// many were unknown (with `--no-dns`, all of them).
fn dns_lines(dns: Option<&TestDns>, decision: &Decision<'_>, report: &mut String) {
    let unknown = decision.unknown_facts();
    let Some(dns) = dns else {
        let _ = writeln!(
            report,
            "    dns: not asked (--no-dns): {unknown} {} unknown",
            plural(unknown, "query", "queries")
        );
        return;
    };
    for asked in &dns.asked {
        let _ = writeln!(
            report,
            "    dns: {} {}: {}",
            asked.name,
            asked.kind.as_str(),
            asked.answer
        );
    }
    if unknown > 0 {
        let _ = writeln!(
            report,
            "    dns: {unknown} {} unknown: a rule whose condition depends on one did not apply",
            plural(unknown, "answer", "answers")
        );
    }
}

/// `line N: rest` → `rest` (the caller prints the line in the input instead).
fn strip_line_prefix(text: &str, line: impl std::fmt::Display) -> String {
    let prefix = format!("line {line}: ");
    text.strip_prefix(&prefix).unwrap_or(text).to_owned()
}

/// Where in the input a parse error is, and its text without the frame-relative
/// line number.
fn parse_error_location(
    e: &policy_core::ParseError,
    block: &Block<'_>,
    line_of: &dyn Fn(usize) -> usize,
) -> (usize, String) {
    use policy_core::ParseError as P;
    let text = e.to_string();
    match *e {
        P::UnterminatedLine { line }
        | P::TrailingData { line }
        | P::MissingEquals { line }
        | P::EmptyName { line }
        | P::InvalidName { line } => (line_of(line), strip_line_prefix(&text, line)),
        // The line of the attribute: its first occurrence, or its second when
        // it is repeated.
        P::InvalidValue { attribute, .. } => (attribute_line(block, attribute, 0), text),
        P::DuplicateAttribute(attribute) => (attribute_line(block, attribute, 1), text),
        _ => (block.lines[0].0, text),
    }
}

/// The input line of the `nth` (0-based) `attribute=` line of `block`, or the
/// block's first line.
fn attribute_line(block: &Block<'_>, attribute: &str, nth: usize) -> usize {
    block
        .lines
        .iter()
        .filter(|(_, l)| {
            l.strip_prefix(attribute.as_bytes())
                .is_some_and(|rest| rest.starts_with(b"="))
        })
        .nth(nth)
        .map_or(block.lines[0].0, |l| l.0)
}

/// ` state=RCPT client=192.0.2.1 sender=<a@b> recipient=<c@d>`: the attributes
/// that tell requests apart, those present only, client bytes escaped.
fn header(request: &Request<'_>, out: &mut String) {
    let mut push = |label: &str, value: &[u8], brackets: bool| {
        let mut escaped = Vec::with_capacity(value.len() + 2);
        if brackets {
            escaped.push(b'<');
        }
        push_escaped(&mut escaped, value);
        if brackets {
            escaped.push(b'>');
        }
        // Escaping leaves printable ASCII only.
        let _ = write!(out, " {label}={}", String::from_utf8_lossy(&escaped));
    };
    if let Some(state) = request.protocol_state {
        push("state", state.as_bytes(), false);
    }
    if let Some(client) = request.get(b"client_address") {
        push("client", client, false);
    }
    if let Some(sender) = request.get(b"sender") {
        push("sender", sender, true);
    }
    if let Some(recipient) = request.get(b"recipient") {
        push("recipient", recipient, true);
    }
    if !request.sasl_username.is_empty() {
        push("sasl_username", request.sasl_username, false);
    }
}

/// `policyd state`: read a state file offline and print, per table (or the
/// one `--limit` names): for a limit, its key count, its windows and the
/// `--top` keys counting the most units in each window (or the one
/// `--window` names); for a greylist, its timers and how many triplets are
/// pending and passed and how many client networks are tracked and
/// auto-whitelisted; all as of the time the file was written. 0; 1 when
/// `--limit` or `--window` names nothing in the file; [`EX_NOINPUT`] when
/// the file cannot be read; [`EX_DATAERR`] when it (or a table in it) is
/// damaged or not a state file. With `--redis`, the same views of what
/// Redis holds now ([`state_redis`]).
pub(crate) fn state(args: &StateArgs, out: &mut dyn Write) -> u8 {
    match &args.source {
        StateSource::File(path) => state_file(path, args, out),
        StateSource::Redis { redis, policy } => state_redis(redis, policy, args, out),
    }
}

/// `policyd state`'s error line on standard error; returns `code`.
fn fail(code: u8, message: &str) -> u8 {
    let _ = writeln!(io::stderr(), "policyd: error: {message}");
    code
}

/// `policyd state --state-file PATH`.
fn state_file(path: &Path, args: &StateArgs, out: &mut dyn Write) -> u8 {
    let name = path.display().to_string();
    let fail = |code: u8, message: String| fail(code, &message);
    let bytes = match statefile::read(path) {
        Ok(bytes) => bytes,
        Err(ReadError::Missing) => {
            return fail(
                EX_NOINPUT,
                format!("cannot read state file {name}: no such file or directory"),
            )
        }
        Err(ReadError::Unreadable(reason)) => {
            return fail(
                EX_NOINPUT,
                format!("cannot read state file {name}: {reason}"),
            )
        }
        Err(ReadError::NotAFile(what)) => {
            return fail(EX_NOINPUT, format!("cannot read state file {name}: {what}"))
        }
    };
    let stored = match store::decode(&bytes) {
        Ok(stored) => stored,
        Err(e) => return fail(EX_DATAERR, format!("state file {name} is unusable: {e}")),
    };
    let written = stored.written_at.as_unix_millis();
    let now = clock::now().as_unix_millis();
    let mut report = String::new();
    let _ = writeln!(report, "state file {name}");
    let _ = writeln!(
        report,
        "written {} ({}); counts as of then",
        statefile::utc(written),
        statefile::age(written, now)
    );
    let selected: Vec<_> = stored
        .entries
        .iter()
        .filter(|e| args.limit.as_deref().map_or(true, |l| l == e.name))
        .collect();
    if let Some(limit) = &args.limit {
        if selected.is_empty() {
            let names: Vec<&str> = stored.entries.iter().map(|e| e.name).collect();
            return fail(
                1,
                format!(
                    "no limit or greylist {limit:?} in state file {name} (it has: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            );
        }
    } else {
        let n = stored.entries.len();
        let _ = writeln!(report, "{n} {}", plural(n, "table", "tables"));
    }
    let mut code = 0;
    let mut shown_windows = 0;
    for entry in selected {
        report.push('\n');
        match entry.kind {
            TableKind::Limit => {
                match show_limit(
                    entry.name,
                    entry.payload,
                    args,
                    stored.written_at,
                    &mut report,
                ) {
                    Ok(windows) => shown_windows += windows,
                    Err(()) => code = EX_DATAERR,
                }
            }
            TableKind::Greylist => {
                if show_greylist(entry.name, entry.payload, stored.written_at, &mut report).is_err()
                {
                    code = EX_DATAERR;
                }
            }
            _ => {
                let _ = writeln!(
                    report,
                    "table {}: of a kind this version does not know ({:?}); not shown",
                    entry.name, entry.kind
                );
            }
        }
    }
    if out
        .write_all(report.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return EX_IOERR;
    }
    if let Some(w) = args.window {
        // A greylist has no windows: --window is about the limits shown.
        if shown_windows == 0 && code == 0 {
            return fail(1, format!("no limit shown has a window {w}"));
        }
    }
    code
}

/// `policyd state --redis URL --config FILE`: the policy's items of
/// `backend redis` as they are in Redis now, in the views of a state file
/// (an item kept locally is named as such); nothing in Redis is changed.
/// 0; 1 when `--limit` or `--window` names nothing in the policy;
/// [`EX_CONFIG`] when the policy or the password file cannot be used or
/// the URL is not one; [`EX_UNAVAILABLE`] when Redis does not answer or
/// fails during the scan (the items read until then are printed).
fn state_redis(redis: &RedisArgs, policy: &Path, args: &StateArgs, out: &mut dyn Write) -> u8 {
    let Some(url) = redis.url.as_deref() else {
        // The command line requires it (cli::state_command).
        return fail(EX_USAGE, "policyd state --redis needs a URL");
    };
    let shown_url = redacted(url);
    let loaded = match policy_file::load(&PolicySource::File(policy.to_owned())) {
        Ok(loaded) => loaded,
        Err(e) => {
            if let LoadError::Compile { errors, .. } = &e {
                for diagnostic in errors.errors.iter().chain(&errors.warnings) {
                    let _ = writeln!(io::stderr(), "{diagnostic}");
                }
            }
            return fail(EX_CONFIG, &e.to_string());
        }
    };
    let state = State::for_policy(&loaded.policy);
    let names: Vec<&str> = state
        .limits()
        .map(|l| l.name)
        .chain(state.greylists().map(|g| g.name))
        .collect();
    if let Some(limit) = &args.limit {
        if !names.contains(&limit.as_str()) {
            return fail(
                1,
                &format!(
                    "no limit or greylist {limit:?} in policy {} (it has: {})",
                    loaded.name,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            );
        }
    }
    let selected = |name: &str| args.limit.as_deref().map_or(true, |l| l == name);
    let remote = state.limits().filter(|l| l.remote).count()
        + state.greylists().filter(|g| g.remote).count();
    let now = clock::now().as_unix_millis();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "redis {shown_url} (prefix {}), policy {}",
        redis.prefix, loaded.name
    );
    let _ = writeln!(report, "read {}; counts as of then", statefile::utc(now));
    if args.limit.is_none() {
        let n = names.len();
        let _ = writeln!(
            report,
            "{n} {}, {}",
            plural(n, "item", "items"),
            match remote {
                0 => "none in Redis (backend redis): nothing to read there".to_owned(),
                r if r == n => "all in Redis".to_owned(),
                r => format!("{r} in Redis"),
            }
        );
    }
    let needs_redis = state.limits().any(|l| l.remote && selected(l.name))
        || state.greylists().any(|g| g.remote && selected(g.name));
    let mut con = if needs_redis {
        let password = match &redis.password_file {
            Some(path) => match read_password(path) {
                Ok(password) => Some(password),
                Err(e) => {
                    return fail(
                        EX_CONFIG,
                        &format!("--redis-password-file {}: {e}", path.display()),
                    )
                }
            },
            None => None,
        };
        let tls = match read_tls_files(redis) {
            Ok(tls) => tls,
            Err(e) => return fail(EX_CONFIG, &e),
        };
        match connect_read_only(url, password.as_deref(), &tls, view::VIEW_TIMEOUT) {
            Ok(con) => Some(con),
            Err(e) => {
                let code = match e {
                    StartError::Url(_) => EX_CONFIG,
                    _ => EX_UNAVAILABLE,
                };
                return fail(code, &format!("--redis {shown_url}: {e}"));
            }
        }
    } else {
        None
    };
    let prefix = &redis.prefix;
    let mut shown_windows = 0;
    let mut failed = None;
    for limit in state.limits().filter(|l| selected(l.name)) {
        report.push('\n');
        let (Some(con), true) = (con.as_mut(), limit.remote) else {
            let _ = writeln!(report, "limit {}: kept locally (not in Redis)", limit.name);
            continue;
        };
        let windows = limit.limit.windows();
        let item = Item {
            name: limit.name,
            signature: limit.signature,
            index: 0,
            windows,
            timers: None,
        };
        let only = args.window.map(|w| w - 1);
        match view::limit(con, prefix, &item, only, args.top, now) {
            Ok(mut found) => {
                let keys = found.keys;
                let _ = writeln!(
                    report,
                    "limit {}: {keys} {}",
                    limit.name,
                    plural(keys, "key", "keys")
                );
                for note in scan_notes(found.skipped, found.stopped) {
                    let _ = writeln!(report, "  {note}");
                }
                shown_windows += show_windows(
                    windows,
                    args.window,
                    &mut |i| found.top.get_mut(i).map(std::mem::take).unwrap_or_default(),
                    &mut report,
                );
            }
            Err(e) => {
                failed = Some(format!("limit {}: {e}", limit.name));
                break;
            }
        }
    }
    for grey in state.greylists().filter(|g| selected(g.name)) {
        if failed.is_some() {
            break;
        }
        report.push('\n');
        let (Some(con), true) = (con.as_mut(), grey.remote) else {
            let _ = writeln!(
                report,
                "greylist {}: kept locally (not in Redis)",
                grey.name
            );
            continue;
        };
        let timers = grey.table.timers();
        match view::greylist(con, prefix, grey.name, grey.signature, timers, now) {
            Ok(found) => show_grey_counts(
                grey.name,
                timers,
                found.counts,
                &scan_notes(found.skipped, found.stopped),
                &mut report,
            ),
            Err(e) => failed = Some(format!("greylist {}: {e}", grey.name)),
        }
    }
    if out
        .write_all(report.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return EX_IOERR;
    }
    if let Some(failed) = failed {
        return fail(
            EX_UNAVAILABLE,
            &format!("--redis {shown_url}: reading {failed}"),
        );
    }
    if let Some(w) = args.window {
        if shown_windows == 0 {
            return fail(1, &format!("no limit shown has a window {w}"));
        }
    }
    0
}

/// The lines an item read from Redis gets about keys left out.
fn scan_notes(skipped: usize, stopped: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if stopped {
        notes.push(format!(
            "(the scan stopped at {MAX_SCAN_KEYS} keys, MAX_SCAN_KEYS: the counts are of \
             those, and there may be more)"
        ));
    }
    if skipped > 0 {
        notes.push(format!(
            "({skipped} {} named as the item's but not as policyd writes {}: left out)",
            plural(skipped, "key", "keys"),
            plural(skipped, "it", "them")
        ));
    }
    notes
}

/// One limit of `policyd state`: its key count, windows and top keys, as of
/// `at`. The number of windows shown; `Err` (reported) when its snapshot
/// does not decode.
fn show_limit(
    name: &str,
    payload: &[u8],
    args: &StateArgs,
    at: Timestamp,
    report: &mut String,
) -> Result<usize, ()> {
    let table = match LimitTable::decode_snapshot_as_written(payload, MAX_LIMIT_CAPACITY) {
        Ok(table) => table,
        Err(e) => {
            let _ = writeln!(report, "limit {name}: error: {e}");
            return Err(());
        }
    };
    let keys = table.len();
    let _ = writeln!(
        report,
        "limit {name}: {keys} {}",
        plural(keys, "key", "keys")
    );
    Ok(show_windows(
        table.limit().windows(),
        args.window,
        &mut |i| table.top(i, args.top, at),
        report,
    ))
}

/// A limit's windows (or window `only`, from 1) and the keys `top` gives
/// for each (by index from 0), most first. The number of windows shown.
fn show_windows(
    windows: &[Window],
    only: Option<usize>,
    top: &mut dyn FnMut(usize) -> Vec<TopKey>,
    report: &mut String,
) -> usize {
    let mut shown = 0;
    for (i, window) in windows.iter().enumerate() {
        if only.is_some_and(|w| w != i + 1) {
            continue;
        }
        shown += 1;
        let _ = writeln!(
            report,
            "  window {}: max {} per {}",
            i + 1,
            window.max(),
            statefile::window_text(window.per_ms())
        );
        let top = top(i);
        if top.is_empty() {
            let _ = writeln!(report, "    (no key counts anything in this window)");
            continue;
        }
        let width = top[0].units.to_string().len().max(5);
        let _ = writeln!(report, "    {:>width$}  key", "units");
        for key in &top {
            let mut text = Vec::with_capacity(key.text.len() + 3);
            push_escaped(&mut text, &key.text);
            if key.truncated {
                text.extend_from_slice(b"...");
            }
            let _ = writeln!(
                report,
                "    {:>width$}  {}",
                key.units,
                String::from_utf8_lossy(&text)
            );
        }
    }
    shown
}

/// A greylist timer as the policy language writes it, in the largest unit
/// up to days that divides it (`35d`, not `5w`: postgrey's `--max-age` is in
/// days, and so are the defaults).
fn timer_text(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    UNITS
        .iter()
        .find(|&&(unit, _)| ms >= unit && ms % unit == 0)
        .map_or_else(
            || format!("{ms}ms"),
            |&(unit, name)| format!("{}{name}", ms / unit),
        )
}

/// One greylist of `policyd state`: its timers and the counts of its live
/// entries as of `at` (entries expired by then are not counted, as the
/// daemon would not have kept them). `Err` (reported) when its snapshot
/// does not decode.
fn show_greylist(name: &str, payload: &[u8], at: Timestamp, report: &mut String) -> Result<(), ()> {
    let table = match GreylistTable::decode_snapshot_as_written(payload, MAX_GREYLIST_CAPACITY) {
        Ok(table) => table,
        Err(e) => {
            let _ = writeln!(report, "greylist {name}: error: {e}");
            return Err(());
        }
    };
    show_grey_counts(name, table.timers(), table.counts(at), &[], report);
    Ok(())
}

/// A greylist's header line, `notes` (lines of its own, indented), its
/// timers and its counts.
fn show_grey_counts(
    name: &str,
    t: Timers,
    counts: GreyCounts,
    notes: &[String],
    report: &mut String,
) {
    let triplets = counts.pending + counts.passed;
    let _ = writeln!(
        report,
        "greylist {name}: {triplets} {}",
        plural(triplets, "triplet", "triplets")
    );
    for note in notes {
        let _ = writeln!(report, "  {note}");
    }
    let auto_whitelist = if t.auto_whitelist == 0 {
        "off".to_owned()
    } else {
        t.auto_whitelist.to_string()
    };
    let _ = writeln!(
        report,
        "  delay {}, retry_window {}, max_age {}, auto_whitelist {auto_whitelist}",
        timer_text(t.delay_ms),
        timer_text(t.retry_window_ms),
        timer_text(t.max_age_ms),
    );
    let width = [
        counts.pending,
        counts.passed,
        counts.whitelisted_clients,
        counts.clients,
    ]
    .iter()
    .map(|n| n.to_string().len())
    .max()
    .unwrap_or(1);
    for (n, what) in [
        (counts.pending, "pending triplets (waiting for a retry)"),
        (counts.passed, "passed triplets"),
        (
            counts.whitelisted_clients,
            "auto-whitelisted client networks",
        ),
        (counts.clients, "client networks tracked"),
    ] {
        let _ = writeln!(report, "    {n:>width$}  {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_into_requests() {
        let input = b"# a comment\na=1\r\nb=2\r\n\r\n\n\nc=3\n#x\nd=4";
        let blocks = blocks(input);
        let lines: Vec<Vec<usize>> = blocks
            .iter()
            .map(|b| b.lines.iter().map(|l| l.0).collect())
            .collect();
        assert_eq!(lines, [vec![2, 3], vec![7, 9]]);
        assert_eq!(blocks[0].lines[0].1, b"a=1\r");
        assert!(super::blocks(b"").is_empty());
        assert!(super::blocks(b"\n\n# only a comment\n").is_empty());
    }

    #[test]
    fn scan_notes_say_what_was_left_out() {
        assert!(scan_notes(0, false).is_empty());
        assert_eq!(
            scan_notes(1, true),
            [
                "(the scan stopped at 1000000 keys, MAX_SCAN_KEYS: the counts are of those, \
                 and there may be more)",
                "(1 key named as the item's but not as policyd writes it: left out)",
            ]
        );
        assert_eq!(
            scan_notes(3, false),
            ["(3 keys named as the item's but not as policyd writes them: left out)"]
        );
    }

    #[test]
    fn greylist_timers_in_days_at_most() {
        let rows = [
            (300_000, "5m"),
            (2 * 86_400_000, "2d"),
            (35 * 86_400_000, "35d"),
            (90_000, "90s"),
            (1500, "1500ms"),
            (0, "0ms"),
        ];
        for (ms, text) in rows {
            assert_eq!(timer_text(ms), text);
        }
    }
}
