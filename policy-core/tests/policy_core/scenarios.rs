//! Golden policy scenarios (`tests/scenarios/<name>/`, described in
//! `tests/scenarios/README.md`), and the examples of every chapter in
//! `docs/` (the language reference, the rate-limiting chapter), which must
//! all compile.
//!
//! For each scenario: compile `policy.conf` with a loader that reads the files
//! it names from the scenario's directory, compare the compile warnings with
//! `warnings.txt`, then decide every request of `requests.txt` and compare the
//! action (wire form, templates expanded), the deciding rule and the dry-run
//! hits with `expected.txt`, and check that `Engine::explain_with` tells the
//! same story as `Engine::decide`. Every mismatch of every scenario is
//! collected and reported at once, naming the scenario, the request's number
//! and the line of `requests.txt` it starts on.
//!
//! Each request is decided at a simulated time (`now=+DURATION` in its block,
//! an offset from [`START`]) on a simulated connection (`connection=N`, each
//! with its own [`Scratch`]), so that limits can be tested as Postfix would
//! exercise them: several smtpd processes, time passing.
//!
//! A scenario with a `dns.txt` (DNS records, one a line: see
//! [`read_dns`]) is decided with `Engine::decide_with` and a resolver that
//! answers from those records ([`ScenarioDns`]; anything not listed is
//! NXDOMAIN). Without it, `Engine::decide` decides, every outside fact
//! unknown, exactly as before.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use policy_core::facts::{Answer, Query, QueryKind, Resolver};
use policy_core::{Action, Engine, Policy, Request, Scratch, Timestamp};

use crate::common::{tests_dir, MIDNIGHT_MS};

/// The time a scenario starts at (`now=+0s`): 2023-11-15T00:00:00Z, a UTC
/// midnight, so that it is a multiple of the bucket width of every window
/// whose sixteenth divides a day (`1s`, `16s`, `1m`, `1h`, `1d`, ...): a
/// unit counted at `+0s` sits at the very start of its bucket, and the times
/// at which it stops counting are exact offsets (see `README.md`).
const START: Timestamp = Timestamp::from_unix_millis(MIDNIGHT_MS);

/// The connection a request is decided on when its block names none.
const DEFAULT_CONNECTION: u32 = 1;

fn scenarios_dir() -> PathBuf {
    tests_dir().join("scenarios")
}

/// Reads the files a policy names, relative to the scenario's directory, and
/// refuses paths that would leave it (with `..`). An absolute path is read
/// under the scenario's directory as if that were the root
/// (`/etc/postgrey/whitelist_clients` is `<scenario>/etc/postgrey/whitelist_clients`),
/// so that a translation scenario's `policy.conf` can be the docs' example
/// verbatim, with the paths a real system has.
fn dir_loader(dir: &Path) -> impl FnMut(&str) -> Result<String, String> + '_ {
    move |path: &str| {
        let relative = Path::new(path.trim_start_matches('/'));
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "{path}: scenario files must stay in the scenario directory"
            ));
        }
        std::fs::read_to_string(dir.join(relative)).map_err(|e| e.to_string())
    }
}

/// One request of `requests.txt`: its frame (attribute lines, each with its
/// LF) and the line it starts on.
struct RequestEntry {
    line: usize,
    frame: Vec<u8>,
}

/// Split `requests.txt` into requests as Postfix sends them: `name=value`
/// lines, each request ended by one empty line.
fn read_requests(path: &Path) -> Result<Vec<RequestEntry>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !bytes.ends_with(b"\n\n") {
        return Err(format!(
            "{}: must end with an empty line (the end of the last request)",
            path.display()
        ));
    }
    let mut requests = Vec::new();
    let mut current: Option<RequestEntry> = None;
    // The text ends with "\n\n": splitting at LF leaves two empty pieces at
    // the end; the last one is not a line.
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    lines.pop();
    for (index, line) in lines.into_iter().enumerate() {
        let number = index + 1;
        if line.is_empty() {
            match current.take() {
                Some(request) => requests.push(request),
                None => {
                    return Err(format!(
                        "{}:{number}: an empty line where a request should start \
                         (requests are separated by exactly one empty line)",
                        path.display()
                    ))
                }
            }
            continue;
        }
        if !line.contains(&b'=') {
            return Err(format!(
                "{}:{number}: not a `name=value` line (no comments in requests.txt)",
                path.display()
            ));
        }
        let request = current.get_or_insert_with(|| RequestEntry {
            line: number,
            frame: Vec::new(),
        });
        request.frame.extend_from_slice(line);
        request.frame.push(b'\n');
    }
    Ok(requests)
}

/// What `expected.txt` says about one request.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    line: usize,
    action: Option<String>,
    rule: Option<String>,
    dry_run: Vec<String>,
    /// `now=+DURATION`: milliseconds after [`START`] (default: the previous
    /// request's time, [`START`] for the first).
    now: Option<u64>,
    /// `connection=N` (default [`DEFAULT_CONNECTION`]).
    connection: Option<u32>,
}

/// `+DURATION` of a `now=` line in milliseconds: `+`, a number and one unit
/// of `ms`, `s`, `m`, `h`, `d`, `w` (`+0s`, `+61m`, `+1d`, `+3825999ms`).
fn parse_offset(text: &str) -> Result<u64, String> {
    let expected = || {
        format!(
            "expected `now=+N` and a unit ms, s, m, h, d or w (`+90s`, `+1d`), found `now={text}`"
        )
    };
    let rest = text.strip_prefix('+').ok_or_else(expected)?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = rest.split_at(digits);
    let number: u64 = number.parse().map_err(|_| expected())?;
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(expected()),
    };
    number.checked_mul(scale).ok_or_else(expected)
}

fn read_expected(path: &Path) -> Result<Vec<Expected>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut blocks = Vec::new();
    let mut current: Option<Expected> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            continue;
        }
        let block = current.get_or_insert_with(|| Expected {
            line: number,
            ..Expected::default()
        });
        let at = |what: &str| format!("{}:{number}: {what}", path.display());
        if let Some(action) = line.strip_prefix("action=") {
            if block.action.replace(action.to_owned()).is_some() {
                return Err(at("a second `action=` in one block"));
            }
        } else if let Some(rule) = line.strip_prefix("rule=") {
            if block.rule.replace(rule.to_owned()).is_some() {
                return Err(at("a second `rule=` in one block"));
            }
        } else if let Some(hit) = line.strip_prefix("dry-run=") {
            block.dry_run.push(hit.to_owned());
        } else if let Some(offset) = line.strip_prefix("now=") {
            let offset = parse_offset(offset).map_err(|e| at(&e))?;
            if block.now.replace(offset).is_some() {
                return Err(at("a second `now=` in one block"));
            }
        } else if let Some(n) = line.strip_prefix("connection=") {
            let n: u32 = n.parse().map_err(|_| {
                at(&format!(
                    "expected `connection=N` (a number), found `{line}`"
                ))
            })?;
            if block.connection.replace(n).is_some() {
                return Err(at("a second `connection=` in one block"));
            }
        } else {
            return Err(at(
                "expected `action=`, `rule=`, `dry-run=`, `now=`, `connection=`, a `#` comment \
                 or an empty line",
            ));
        }
    }
    blocks.extend(current);
    for block in &blocks {
        if block.action.is_none() || block.rule.is_none() {
            return Err(format!(
                "{}:{}: a block needs one `action=` and one `rule=`",
                path.display(),
                block.line
            ));
        }
    }
    Ok(blocks)
}

/// `file:line` of each expected warning, sorted.
fn read_expected_warnings(path: &Path) -> Result<Vec<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut warnings: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    warnings.sort();
    Ok(warnings)
}

/// What `dns.txt` says one query answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DnsRecord {
    /// `A` or `AAAA` records.
    Addresses(Vec<IpAddr>),
    /// `PTR` or `MX` names (a null MX as the empty name), or `TXT` texts.
    /// Leaked, so that an [`Answer`] can borrow them: a test's few bytes.
    Strings(Vec<&'static [u8]>),
    /// `SERVFAIL`: no usable answer, the fact is unknown.
    Unknown,
}

/// A scenario's DNS: the records of its `dns.txt`, by kind and name (lower
/// case, no trailing dot). A query for anything else is NXDOMAIN.
#[derive(Debug, Default)]
struct ScenarioDns {
    records: BTreeMap<(&'static str, String), DnsRecord>,
}

/// A DNS name as a query names it: lower case, without the trailing dot.
fn dns_key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The record type a `dns.txt` line names, as [`QueryKind::as_str`] has it.
fn record_type(word: &str) -> Option<&'static str> {
    QueryKind::ALL
        .iter()
        .map(|kind| kind.as_str())
        .find(|name| *name == word)
}

/// A `"..."` text of a `TXT` line (`\"` a quote, `\\` a backslash), and what
/// follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &rest[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// Read `dns.txt`: one record a line, `#` comments and blank lines ignored.
///
/// ```text
/// A     2.0.0.127.zen.spamhaus.org  127.0.0.2 127.0.0.4   # one or more addresses
/// AAAA  mx.example.org              2001:db8::25
/// TXT   2.0.0.127.zen.spamhaus.org  "https://www.spamhaus.org/query/ip/127.0.0.2"
/// PTR   9.2.0.192.in-addr.arpa      mail.example.org
/// MX    example.org                 mx1.example.org mx2.example.org
/// MX    null.example                .                       # a null MX (RFC 7505)
/// SERVFAIL  fail.example  MX                                 # unknown
/// ```
///
/// Lines of the same type and name add up (two `TXT` lines are two texts).
/// A name listed with `SERVFAIL` for a type has no other record of it.
fn read_dns(path: &Path) -> Result<Option<ScenarioDns>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut dns = ScenarioDns::default();
    for (index, line) in text.lines().enumerate() {
        let at = |what: String| format!("{}:{}: {what}", path.display(), index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The first two words (separated by any run of blanks), then the rest.
        let word = |text: &str| -> (String, String) {
            let text = text.trim_start();
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            (text[..end].to_owned(), text[end..].trim().to_owned())
        };
        let (first, after_first) = word(line);
        let (name, rest) = word(&after_first);
        if name.is_empty() || name.starts_with('#') {
            return Err(at(format!(
                "expected `TYPE NAME VALUE...` or `SERVFAIL NAME TYPE`, found `{line}`"
            )));
        }
        let (first, name, rest) = (first.as_str(), name.as_str(), rest.as_str());
        // A comment after the values (not inside a TXT's quotes).
        let values =
            |rest: &str| -> String { rest.split('#').next().unwrap_or("").trim().to_owned() };
        let (kind, record) = if first == "SERVFAIL" {
            let kind = record_type(&values(rest)).ok_or_else(|| {
                at(format!(
                    "expected a record type (A, AAAA, TXT, PTR or MX) after `SERVFAIL {name}`"
                ))
            })?;
            (kind, DnsRecord::Unknown)
        } else {
            let kind = record_type(first).ok_or_else(|| {
                at(format!(
                    "unknown record type `{first}`; expected A, AAAA, TXT, PTR, MX or SERVFAIL"
                ))
            })?;
            match kind {
                "A" | "AAAA" => {
                    let mut found = Vec::new();
                    for word in values(rest).split_whitespace() {
                        let ip: IpAddr = word
                            .parse()
                            .map_err(|_| at(format!("`{word}` is not an IP address")))?;
                        if ip.is_ipv4() != (kind == "A") {
                            return Err(at(format!(
                                "`{word}` is not an address of an {kind} record"
                            )));
                        }
                        found.push(ip);
                    }
                    (kind, DnsRecord::Addresses(found))
                }
                "TXT" => {
                    let (text, after) = quoted(rest)
                        .ok_or_else(|| at("expected a quoted text after the name".to_owned()))?;
                    if !values(after).is_empty() {
                        return Err(at(format!("unexpected `{}` after the text", after.trim())));
                    }
                    let text: &'static [u8] = Box::leak(text.into_bytes().into_boxed_slice());
                    (kind, DnsRecord::Strings(vec![text]))
                }
                _ => {
                    let names: Vec<&'static [u8]> = values(rest)
                        .split_whitespace()
                        .map(|n| {
                            let n = if n == "." { String::new() } else { dns_key(n) };
                            &*Box::leak(n.into_bytes().into_boxed_slice())
                        })
                        .collect();
                    (kind, DnsRecord::Strings(names))
                }
            }
        };
        let empty = match &record {
            DnsRecord::Addresses(found) => found.is_empty(),
            DnsRecord::Strings(found) => found.is_empty(),
            DnsRecord::Unknown => false,
        };
        if empty {
            return Err(at(format!("`{first} {name}` has no value")));
        }
        let key = (kind, dns_key(name));
        match (dns.records.get_mut(&key), record) {
            (None, record) => {
                dns.records.insert(key, record);
            }
            (Some(DnsRecord::Addresses(old)), DnsRecord::Addresses(new)) => old.extend(new),
            (Some(DnsRecord::Strings(old)), DnsRecord::Strings(new)) => old.extend(new),
            (Some(_), _) => {
                return Err(at(format!(
                    "`{name}` has both SERVFAIL and records of type {kind}"
                )))
            }
        }
    }
    Ok(Some(dns))
}

impl Resolver for ScenarioDns {
    fn resolve(&mut self, query: Query<'_>) -> Answer<'_> {
        let name = String::from_utf8_lossy(query.name);
        match self.records.get(&(query.kind.as_str(), dns_key(&name))) {
            None => Answer::NotFound,
            Some(DnsRecord::Unknown) => Answer::Unknown,
            Some(DnsRecord::Addresses(found)) => Answer::Addresses(found),
            Some(DnsRecord::Strings(found)) if query.kind == QueryKind::Txt => Answer::Texts(found),
            Some(DnsRecord::Strings(found)) => Answer::Names(found),
        }
    }
}

/// The scenario directories, sorted by name.
fn scenario_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("tests/scenarios exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.join("policy.conf").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Run one scenario; returns the number of requests checked, and appends each
/// mismatch to `failures`.
fn run_scenario(dir: &Path, failures: &mut Vec<String>) -> usize {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut fail = |what: String| failures.push(format!("scenario `{name}`: {what}"));

    let source = match std::fs::read_to_string(dir.join("policy.conf")) {
        Ok(source) => source,
        Err(e) => {
            fail(format!("policy.conf: {e}"));
            return 0;
        }
    };
    let mut loader = dir_loader(dir);
    let compiled = match Policy::compile("policy.conf", &source, &mut loader) {
        Ok(compiled) => compiled,
        Err(errors) => {
            fail(format!("policy.conf does not compile:\n{errors}"));
            return 0;
        }
    };

    match read_expected_warnings(&dir.join("warnings.txt")) {
        Ok(expected) => {
            let mut got: Vec<String> = compiled
                .warnings
                .iter()
                .map(|w| format!("{}:{}", w.file, w.line))
                .collect();
            got.sort();
            if got != expected {
                let mut all = String::new();
                for warning in &compiled.warnings {
                    let _ = writeln!(all, "{warning}");
                }
                fail(format!(
                    "warnings at {got:?}, expected at {expected:?} (warnings.txt); they were:\n{all}"
                ));
            }
        }
        Err(e) => fail(e),
    }

    let requests = match read_requests(&dir.join("requests.txt")) {
        Ok(requests) => requests,
        Err(e) => {
            fail(e);
            return 0;
        }
    };
    let expected = match read_expected(&dir.join("expected.txt")) {
        Ok(expected) => expected,
        Err(e) => {
            fail(e);
            return 0;
        }
    };
    if requests.len() != expected.len() {
        fail(format!(
            "requests.txt has {} requests but expected.txt {} blocks",
            requests.len(),
            expected.len()
        ));
        return 0;
    }

    let mut dns = match read_dns(&dir.join("dns.txt")) {
        Ok(dns) => dns,
        Err(e) => {
            fail(e);
            return 0;
        }
    };

    let engine = Engine::new(compiled.policy);
    // One scratch per simulated connection: the message under way (for
    // `count messages` and the `at data` / `at end-of-message` checks) is
    // per connection, as in the daemon.
    let mut connections: BTreeMap<u32, Scratch> = BTreeMap::new();
    let mut offset = 0;
    for (number, (request, expected)) in requests.iter().zip(&expected).enumerate() {
        let number = number + 1;
        let at = format!(
            "request #{number} (requests.txt line {}, expected.txt line {})",
            request.line, expected.line
        );
        offset = expected.now.unwrap_or(offset);
        let now = Timestamp::from_unix_millis(START.as_unix_millis() + offset);
        let scratch = connections
            .entry(expected.connection.unwrap_or(DEFAULT_CONNECTION))
            .or_default();
        let parsed = match Request::parse(&request.frame) {
            Ok(parsed) => parsed,
            Err(e) => {
                fail(format!("{at}: does not parse: {e}"));
                continue;
            }
        };
        // `explain_with` (for `policyd test --explain`) evaluates on its own
        // and checks limits without counting: run it first, so that it sees
        // the counters and the connection's message state `decide` is about
        // to see; it must tell the same story.
        let explanation = engine.explain_with(&parsed, now, scratch);
        let decision = match dns.as_mut() {
            Some(dns) => engine.decide_with(&parsed, now, scratch, dns),
            None => engine.decide(&parsed, now, scratch),
        };
        let wire = decision.wire();
        let action = String::from_utf8_lossy(wire).into_owned();
        let rule = decision.rule.to_owned();
        let dry_run: Vec<String> = decision
            .dry_run
            .iter()
            .map(|hit| format!("{} {}", hit.rule, String::from_utf8_lossy(hit.wire)))
            .collect();

        // Whatever the scenario expects, the reply must be a valid action.
        if let Err(e) = std::str::from_utf8(wire)
            .map_err(|e| e.to_string())
            .and_then(|text| Action::parse(text).map_err(|e| e.to_string()))
        {
            fail(format!(
                "{at}: the wire form `{action}` is not a valid action: {e}"
            ));
        }
        let mut wrong = String::new();
        if Some(&action) != expected.action.as_ref() {
            let _ = write!(
                wrong,
                "\n    action=`{action}`, expected `{}`",
                expected.action.as_deref().unwrap_or_default()
            );
        }
        if Some(&rule) != expected.rule.as_ref() {
            let _ = write!(
                wrong,
                "\n    rule=`{rule}`, expected `{}`",
                expected.rule.as_deref().unwrap_or_default()
            );
        }
        if dry_run != expected.dry_run {
            let _ = write!(
                wrong,
                "\n    dry-run={dry_run:?}, expected {:?}",
                expected.dry_run
            );
        }
        let explained_dry_run: Vec<String> = explanation
            .dry_run
            .iter()
            .map(|(rule, action)| format!("{rule} {action}"))
            .collect();
        // `explain_with` reads the outside facts of the scratch's last
        // decision, and runs before this one's (to see the counters as
        // `decide` does): with `dns.txt` those are the previous request's,
        // so it tells the same story only without.
        if dns.is_none()
            && (explanation.rule != rule
                || explanation.action != action
                || explained_dry_run != dry_run)
        {
            let _ = write!(
                wrong,
                "\n    explain disagrees with decide: rule=`{}` action=`{}` dry-run={:?}",
                explanation.rule, explanation.action, explained_dry_run
            );
        }
        if !wrong.is_empty() {
            fail(format!("{at}:{wrong}"));
        }
    }
    requests.len()
}

#[test]
fn golden_scenarios() {
    let dirs = scenario_dirs();
    assert!(
        !dirs.is_empty(),
        "no scenario found under {}",
        scenarios_dir().display()
    );
    let mut failures = Vec::new();
    let mut requests = 0;
    for dir in &dirs {
        requests += run_scenario(dir, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} mismatch(es) in the golden scenarios:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(requests > 0, "no request was checked");
    println!("{} scenarios, {requests} requests", dirs.len());
}

/// The harness's readers reject malformed scenario files, so a broken
/// scenario cannot pass by checking nothing.
#[test]
fn scenario_readers_reject_malformed_files() {
    let tmp = std::env::temp_dir().join(format!("policyd-scenarios-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temporary directory");
    let write = |name: &str, text: &str| {
        let path = tmp.join(name);
        std::fs::write(&path, text).expect("write temporary file");
        path
    };

    let ok = write(
        "ok.txt",
        "request=smtpd_access_policy\na=1\n\nrequest=smtpd_access_policy\n\n",
    );
    let requests = read_requests(&ok).expect("well-formed requests");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].line, 1);
    assert_eq!(requests[0].frame, b"request=smtpd_access_policy\na=1\n");
    assert_eq!(requests[1].line, 4);
    for bad in [
        "request=smtpd_access_policy\n",              // no final empty line
        "# comment\nrequest=smtpd_access_policy\n\n", // a comment
        "request=smtpd_access_policy\n\n\nb=2\n\n",   // two empty lines
    ] {
        let path = write("bad.txt", bad);
        assert!(read_requests(&path).is_err(), "accepted {bad:?}");
    }

    let ok = write(
        "expected.txt",
        "# c\naction=REJECT 5.7.1 x\nrule=r\ndry-run=d DUNNO\n\naction=DUNNO\nrule=default\n",
    );
    let blocks = read_expected(&ok).expect("well-formed expectations");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].dry_run, ["d DUNNO"]);
    assert_eq!(blocks[1].line, 6);
    assert_eq!((blocks[0].now, blocks[0].connection), (None, None));

    let ok = write(
        "expected.txt",
        "now=+61m\nconnection=2\naction=DUNNO\nrule=r\n\n\
         action=DUNNO\nnow=+1d\nrule=r\n\nnow=+0s\naction=DUNNO\nrule=r\n\n\
         now=+3825999ms\naction=DUNNO\nrule=r\n\nnow=+2w\naction=DUNNO\nrule=r\n\n\
         now=+90s\naction=DUNNO\nrule=r\nconnection=0\n",
    );
    let blocks = read_expected(&ok).expect("well-formed times and connections");
    let got: Vec<(Option<u64>, Option<u32>)> =
        blocks.iter().map(|b| (b.now, b.connection)).collect();
    assert_eq!(
        got,
        [
            (Some(3_660_000), Some(2)),
            (Some(86_400_000), None),
            (Some(0), None),
            (Some(3_825_999), None),
            (Some(1_209_600_000), None),
            (Some(90_000), Some(0)),
        ]
    );
    for bad in [
        "action=DUNNO\n",                                     // no rule
        "rule=r\n",                                           // no action
        "action=DUNNO\naction=OK\nrule=r\n",                  // two actions
        "action=DUNNO\nrule=r\nverdict=x\n",                  // unknown line
        "now=61m\naction=DUNNO\nrule=r\n",                    // no `+`
        "now=+61\naction=DUNNO\nrule=r\n",                    // no unit
        "now=+1y\naction=DUNNO\nrule=r\n",                    // unknown unit
        "now=+-1s\naction=DUNNO\nrule=r\n",                   // negative
        "now=+1s\nnow=+2s\naction=DUNNO\nrule=r\n",           // two times
        "now=+99999999999999999999s\naction=DUNNO\nrule=r\n", // overflow
        "connection=x\naction=DUNNO\nrule=r\n",               // not a number
        "connection=1\nconnection=2\naction=DUNNO\nrule=r\n", // two connections
    ] {
        let path = write("bad.txt", bad);
        assert!(read_expected(&path).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        read_expected_warnings(&tmp.join("absent.txt")).expect("absent is no warning"),
        Vec::<String>::new()
    );

    assert!(read_dns(&tmp.join("absent.txt"))
        .expect("no dns.txt is no DNS")
        .is_none());
    let ok = write(
        "dns.txt",
        "# records\n\nA 2.0.0.127.Zen.Example. 127.0.0.2 127.0.0.4  # two\n\
         A 2.0.0.127.zen.example 127.0.0.10\n\
         TXT 2.0.0.127.zen.example \"see \\\"here\\\" # not a comment\"\n\
         MX null.example .\nPTR 9.2.0.192.in-addr.arpa Mail.Example.\n\
         SERVFAIL fail.example MX\nAAAA v6.example 2001:db8::1\n",
    );
    let mut dns = read_dns(&ok).expect("well-formed DNS").expect("present");
    let ask = |dns: &mut ScenarioDns, kind: QueryKind, name: &str| -> String {
        match dns.resolve(Query {
            kind,
            name: name.as_bytes(),
        }) {
            Answer::Addresses(found) => format!("{found:?}"),
            Answer::Names(found) | Answer::Texts(found) => found
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
                .join("|"),
            Answer::NotFound => "NXDOMAIN".to_owned(),
            Answer::Unknown => "SERVFAIL".to_owned(),
            _ => "other".to_owned(),
        }
    };
    assert_eq!(
        ask(&mut dns, QueryKind::A, "2.0.0.127.zen.example"),
        "[127.0.0.2, 127.0.0.4, 127.0.0.10]"
    );
    assert_eq!(
        ask(&mut dns, QueryKind::Txt, "2.0.0.127.zen.example"),
        "see \"here\" # not a comment"
    );
    assert_eq!(ask(&mut dns, QueryKind::Mx, "null.example"), "");
    assert_eq!(
        ask(&mut dns, QueryKind::Ptr, "9.2.0.192.in-addr.arpa"),
        "mail.example"
    );
    assert_eq!(ask(&mut dns, QueryKind::Mx, "fail.example"), "SERVFAIL");
    assert_eq!(ask(&mut dns, QueryKind::A, "fail.example"), "NXDOMAIN");
    assert_eq!(
        ask(&mut dns, QueryKind::Aaaa, "v6.example"),
        "[2001:db8::1]"
    );
    for bad in [
        "A zen.example\n",                               // no value
        "A zen.example 2001:db8::1\n",                   // the other family
        "A zen.example 127.0.0.300\n",                   // not an address
        "CNAME a.example b.example\n",                   // unknown type
        "SERVFAIL a.example\n",                          // no type
        "TXT a.example unquoted\n",                      // not quoted
        "TXT a.example \"open\n",                        // never closed
        "SERVFAIL a.example A\nA a.example 127.0.0.2\n", // both
        "A\n",                                           // no name
    ] {
        let path = write("bad.txt", bad);
        assert!(read_dns(&path).is_err(), "accepted {bad:?}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

// ---------------------------------------------------------------------------
// The language reference's examples.

/// Every chapter in `docs/` (`docs/NAME.md` and its text), by name.
fn docs_chapters() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    chapters
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = format!(
                "docs/{}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            );
            (name, text)
        })
        .collect()
}

/// The ```` ```policy ```` blocks of every chapter in `docs/` (the language
/// reference, the rate-limiting chapter, ...), each with its file name and
/// the line it starts on.
fn docs_examples() -> Vec<(String, usize, String)> {
    let mut examples = Vec::new();
    for (name, text) in docs_chapters() {
        let mut current: Option<(usize, String)> = None;
        for (index, line) in text.lines().enumerate() {
            match &mut current {
                None if line.trim_end() == "```policy" => {
                    current = Some((index + 2, String::new()));
                }
                None => {}
                Some(_) if line.starts_with("```") => {
                    examples.extend(current.take().map(|(l, b)| (name.clone(), l, b)));
                }
                Some((_, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
        assert!(current.is_none(), "an unclosed ```policy block in {name}");
    }
    examples
}

/// What the docs test's loader gives for a file an example names: a path
/// containing `logins` is a logins map with one line, one containing
/// `overrides` a limit's overrides file with only a comment (it cannot know
/// the limit's key), one ending in `.cidr` a list with one network, any
/// other file a list with one domain entry (which fits
/// a list with or without the `domain` kind, and every field a domain can
/// match). The examples show the syntax; the files are the reader's own.
fn docs_stub_file(path: &str) -> Result<String, String> {
    Ok(if path.contains("logins") {
        "stub@example.invalid  stub\n".to_owned()
    } else if path.contains("overrides") {
        "# no overrides\n".to_owned()
    } else if path.ends_with(".cidr") {
        "192.0.2.0/24\n".to_owned()
    } else {
        ".stub.invalid\n".to_owned()
    })
}

/// Every example of every chapter in `docs/` compiles (with
/// [`docs_stub_file`] for the files it names).
#[test]
fn docs_examples_compile() {
    let examples = docs_examples();
    for chapter in ["docs/policy-language.md", "docs/rate-limiting.md"] {
        let count = examples
            .iter()
            .filter(|(name, _, _)| name == chapter)
            .count();
        assert!(count >= 5, "only {count} examples found in {chapter}");
    }
    let mut failures = Vec::new();
    for (chapter, line, source) in &examples {
        let mut stub_files = docs_stub_file;
        let name = format!("{chapter}:{line}");
        if let Err(errors) = Policy::compile(&name, source, &mut stub_files) {
            failures.push(format!("the example at {name} does not compile:\n{errors}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// The docs' translations are scenarios.

/// The comment that marks a docs example as a scenario's policy: on the line
/// just before the ```` ```policy ```` fence,
/// `<!-- scenario: translation-postfwd -->`.
const SCENARIO_MARKER: &str = "<!-- scenario: ";

/// One marked example: the chapter, the line of the marker, the scenario it
/// names and the block's text (each line with its LF).
#[derive(Debug, PartialEq, Eq)]
struct MarkedExample {
    chapter: String,
    line: usize,
    scenario: String,
    body: String,
}

/// The marked examples of one chapter's text, or the first malformed marker
/// (not followed by a ```` ```policy ```` block, or a block never closed).
fn marked_examples(chapter: &str, text: &str) -> Result<Vec<MarkedExample>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let Some(rest) = lines[index].trim().strip_prefix(SCENARIO_MARKER) else {
            index += 1;
            continue;
        };
        let line = index + 1;
        let scenario = rest
            .strip_suffix("-->")
            .map(str::trim)
            .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
            .ok_or_else(|| {
                format!(
                    "{chapter}:{line}: expected `<!-- scenario: NAME -->`, found `{}`",
                    lines[index]
                )
            })?;
        if lines.get(index + 1).map(|l| l.trim_end()) != Some("```policy") {
            return Err(format!(
                "{chapter}:{line}: the scenario marker must be followed by a ```policy block"
            ));
        }
        let mut body = String::new();
        let mut end = index + 2;
        loop {
            match lines.get(end) {
                None => {
                    return Err(format!(
                        "{chapter}:{line}: the ```policy block is not closed"
                    ))
                }
                Some(l) if l.starts_with("```") => break,
                Some(l) => {
                    body.push_str(l);
                    body.push('\n');
                }
            }
            end += 1;
        }
        examples.push(MarkedExample {
            chapter: chapter.to_owned(),
            line,
            scenario: scenario.to_owned(),
            body,
        });
        index = end + 1;
    }
    Ok(examples)
}

/// Where a marked example's text and its scenario's `policy.conf` part: the
/// first differing line, both ways.
fn first_difference(doc: &str, conf: &str) -> String {
    let mut doc_lines = doc.lines();
    let mut conf_lines = conf.lines();
    for number in 1.. {
        match (doc_lines.next(), conf_lines.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => break,
            (a, b) => {
                return format!(
                    "line {number} of the block: docs `{}`, policy.conf `{}`",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                )
            }
        }
    }
    "the lines agree; the line ends or the final newline differ".to_owned()
}

/// Every translation in `docs/` is an executable scenario: each example
/// marked `<!-- scenario: NAME -->` is byte for byte the `policy.conf` of
/// `tests/scenarios/NAME/` (whose requests carry the answers of the original
/// tool), and every `translation-*` scenario has its marked example, so the
/// docs and the tests cannot drift apart.
#[test]
fn docs_translations_are_scenarios() {
    let mut failures = Vec::new();
    let mut examples = Vec::new();
    for (chapter, text) in docs_chapters() {
        match marked_examples(&chapter, &text) {
            Ok(found) => examples.extend(found),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        !examples.is_empty() || !failures.is_empty(),
        "no `{SCENARIO_MARKER}NAME -->` marker found in docs/"
    );
    for example in &examples {
        let at = format!("{}:{}", example.chapter, example.line);
        if examples
            .iter()
            .filter(|other| other.scenario == example.scenario)
            .count()
            > 1
        {
            failures.push(format!(
                "{at}: scenario `{}` is marked more than once",
                example.scenario
            ));
        }
        let conf_path = scenarios_dir().join(&example.scenario).join("policy.conf");
        match std::fs::read_to_string(&conf_path) {
            Ok(conf) if conf == example.body => {}
            Ok(conf) => failures.push(format!(
                "{at}: the example differs from {} ({})",
                conf_path.display(),
                first_difference(&example.body, &conf)
            )),
            Err(e) => failures.push(format!(
                "{at}: scenario `{}`: {}: {e}",
                example.scenario,
                conf_path.display()
            )),
        }
    }
    for scenario in scenario_dirs() {
        let name = scenario
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("translation-") && !examples.iter().any(|e| e.scenario == name) {
            failures.push(format!(
                "scenario `{name}` is a translation but no docs example is marked \
                 `{SCENARIO_MARKER}{name} -->`"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} translations checked against their scenarios",
        examples.len()
    );
}

/// The marker reader finds marked blocks, keeps their text exactly, and
/// refuses a marker without its block.
#[test]
fn scenario_markers_are_read_strictly() {
    let text = "# T\n\n<!-- scenario: translation-x -->\n```policy\nrule a { then DUNNO }\n\ndefault DUNNO\n```\n\n```policy\nrule unmarked { then OK }\n```\n";
    let found = marked_examples("docs/t.md", text).expect("well-formed");
    assert_eq!(
        found,
        [MarkedExample {
            chapter: "docs/t.md".to_owned(),
            line: 3,
            scenario: "translation-x".to_owned(),
            body: "rule a { then DUNNO }\n\ndefault DUNNO\n".to_owned(),
        }]
    );
    for bad in [
        "<!-- scenario: x -->\n\n```policy\nrule a { then DUNNO }\n```\n", // a blank line between
        "<!-- scenario: x -->\n```\nrule a { then DUNNO }\n```\n",         // not a policy block
        "<!-- scenario: x -->\n```policy\nrule a { then DUNNO }\n",        // never closed
        "<!-- scenario:  -->\n```policy\nrule a { then DUNNO }\n```\n",    // no name
        "<!-- scenario: x\n```policy\nrule a { then DUNNO }\n```\n",       // no `-->`
    ] {
        assert!(
            marked_examples("docs/t.md", bad).is_err(),
            "accepted {bad:?}"
        );
    }
    assert!(first_difference("a\nb\n", "a\nc\n").contains("line 2"));
}
