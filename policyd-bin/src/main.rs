//! `policyd`, a Postfix SMTP access policy daemon.
//!
//! Postfix's smtpd asks a policy server about each SMTP command (usually each
//! `RCPT TO`) over the policy delegation protocol; `policyd` decides with a
//! compiled policy file and answers with one access(5) action. Run
//! `policyd --help` for the sub-commands, the options, the Postfix
//! configuration and the log format.
//!
//! The binary is plain threads and `std::net`, no async runtime: Postfix keeps
//! a few hundred persistent connections at most, one request in flight on each,
//! so a thread per connection (with a small stack) is simple and fast.
//!
//! Modules:
//!
//! - [`cli`]: the command line, `--help`, exit codes;
//! - [`policy_file`]: reading and compiling policy files, the embedded
//!   default policy;
//! - [`tools`]: `policyd check`, `policyd test` and `policyd state`;
//! - [`listen`]: TCP and UNIX listeners, bind errors;
//! - [`server`]: accept threads, the connection cap, reloads, orderly stop;
//! - [`shared`]: what every thread shares (engine, stop flag, settings);
//! - [`conn`]: one connection: framing, deciding, replying, timeouts;
//! - [`dns`]: the DNS client of a policy's DNS tests (queries in flight at
//!   once, a deadline, retries), over the shared cache and list health of
//!   [`shared`];
//! - [`signals`]: SIGTERM, SIGINT, SIGHUP;
//! - [`service`]: systemd's readiness protocol and socket activation,
//!   `--user`/`--group`, the UNIX sockets' owner and mode, `--pidfile`;
//! - [`statefile`]: the limits' counters and the greylists' state kept in
//!   `--state-file` across restarts (loaded at start, written periodically
//!   and at stop);
//! - [`log`]: the buffered stderr logger and its escaping;
//! - [`clock`]: the one source of policy time, and the tests' clock.
//!
//! Nothing a client sends can panic the daemon: every fault of the input is an
//! error value that closes that connection with a warning. Should a bug panic
//! a connection thread anyway, the panic is logged, only that connection is
//! lost, and its place under the connection cap is given back.

mod cli;
mod clock;
mod conn;
mod dns;
mod listen;
mod log;
mod policy_file;
mod redis_state;
mod server;
mod service;
mod shared;
mod signals;
mod statefile;
mod tools;

use std::io::Write as _;
use std::process::ExitCode;

use policy_core::{Action, State};

use crate::cli::{Command, Config, PolicySource, EX_CONFIG, EX_OSERR, EX_USAGE};
use crate::log::Level;
use crate::policy_file::LoadError;

fn main() -> ExitCode {
    let command = cli::parse(std::env::args_os().skip(1));
    if matches!(
        command,
        Ok(Command::Serve(_) | Command::Test(_) | Command::State(_))
    ) {
        // Before anything reads the time: a broken test clock refuses the start.
        if let Err(e) = clock::init() {
            eprintln!("policyd: error: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    }
    let config = match command {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Check(args)) => {
            return ExitCode::from(tools::check(&args, &mut std::io::stdout().lock()))
        }
        Ok(Command::Test(args)) => {
            return ExitCode::from(tools::test(
                &args,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            ))
        }
        Ok(Command::State(args)) => {
            return ExitCode::from(tools::state(&args, &mut std::io::stdout().lock()))
        }
        Ok(Command::PrintDefaultPolicy) => return print(policy_file::DEFAULT_POLICY),
        Ok(Command::Help) => return print(&cli::help()),
        Ok(Command::Version) => return print(&cli::version()),
        Err(e) => {
            eprintln!("policyd: error: {e} (see policyd --help)");
            return ExitCode::from(EX_USAGE);
        }
    };
    serve(*config)
}

/// `policyd serve`: load the policy, then run the daemon until it is stopped.
fn serve(config: Config) -> ExitCode {
    // Before anything can go wrong at run time.
    install_panic_hook();
    // Before any thread starts (it takes them out of the environment).
    let activated = match service::activated_listeners() {
        Ok(listeners) => listeners,
        Err(e) => {
            eprintln!("policyd: error: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    // Before binding: a SIGTERM during start-up is then handled, not fatal.
    let mut signals = match signals::Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("policyd: error: cannot install signal handlers: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    if let Err(e) = log::init(&config.log) {
        match e {
            log::InitError::Syslog { socket, error } => eprintln!(
                "policyd: error: cannot log to syslog at {}: {} (is a syslog daemon running? \
                 see --syslog-socket)",
                socket.display(),
                listen::describe(&error)
            ),
            log::InitError::Thread(e) => {
                eprintln!("policyd: error: cannot start the log thread: {e}");
            }
        }
        return ExitCode::from(EX_OSERR);
    }
    // Before binding: a policy that does not compile takes no port.
    let loaded = match policy_file::load(&config.policy) {
        Ok(loaded) => loaded,
        Err(e) => {
            log::flush();
            let mut report = String::new();
            if let LoadError::Compile { errors, .. } = &e {
                for diagnostic in errors.errors.iter().chain(&errors.warnings) {
                    report.push_str(&diagnostic.to_string());
                    report.push('\n');
                }
            }
            report.push_str(&format!("policyd: error: {e}\n"));
            let _ = std::io::stderr().write_all(report.as_bytes());
            return ExitCode::from(EX_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        policy_file::log_diagnostic(warning);
    }
    // Before binding: a policy with DNS tests and no server to ask takes no
    // port. A policy without them reads no resolv.conf.
    let dns_servers = if loaded.policy.uses_outside_facts() {
        let dns = shared::dns::DnsShared::new(config.dns.clone());
        match dns::prepare(&dns, &loaded.policy, &loaded.name) {
            Ok(servers) => servers,
            Err(e) => {
                log::flush();
                eprintln!(
                    "policyd: error: policy {} has DNS tests but no DNS server: {e}",
                    loaded.name
                );
                return ExitCode::from(EX_CONFIG);
            }
        }
    } else {
        None
    };
    if config.policy == PolicySource::Action(Action::Ok) {
        // What the compiler warns about for a rule, said for the shortcut.
        log::warning!(
            "--action OK answers OK to every request: if check_policy_service runs before \
             reject_unauth_destination, this makes an open relay"
        );
    }
    // Before the policy goes into the engine: its tables get their counters.
    let mut state = State::for_policy(&loaded.policy);
    // Held until the process exits, after the final write of the state.
    let _state_lock = match &config.state_file {
        Some(path) => {
            // Locked first: nothing is done with a file another daemon
            // writes. Then probed: nothing is read or moved aside in a
            // directory the daemon could not write its state to.
            let started = statefile::lock(path).and_then(|lock| {
                statefile::probe(path)?;
                statefile::load(path, &mut state, config.state_interval)?;
                Ok(lock)
            });
            match started {
                Ok(lock) => Some(lock),
                Err(e) => {
                    log::flush();
                    eprintln!("policyd: error: {}", e.message);
                    return ExitCode::from(e.code);
                }
            }
        }
        None => {
            let limits = state.limits().count();
            let greylists = state.greylists().count();
            let plural = policy_file::plural;
            let what = match (limits, greylists) {
                (0, 0) => None,
                (l, 0) => Some(format!("{l} limit {}", plural(l, "rule", "rules"))),
                (0, g) => Some(format!("{g} {}", plural(g, "greylist", "greylists"))),
                (l, g) => Some(format!(
                    "{l} limit {} and {g} {}",
                    plural(l, "rule", "rules"),
                    plural(g, "greylist", "greylists")
                )),
            };
            if let Some(what) = what {
                log::warning!(
                    "the policy has {what} but no --state-file: counters and greylisting \
                     state start empty at every start and do not survive a restart"
                );
            }
            None
        }
    };
    // Items of `backend redis`: Redis must answer before a port is taken.
    let state = match redis_state::attach(&config.redis, state, &loaded.name) {
        Ok(state) => state,
        Err((code, message)) => {
            log::flush();
            eprintln!("policyd: error: {message}");
            return ExitCode::from(code);
        }
    };
    let code = server::run(config, loaded, state, dns_servers, activated, &mut signals);
    log::flush();
    ExitCode::from(code)
}

/// Print `text` to stdout; exit 0, or 74 (`EX_IOERR`) if stdout is broken.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(74),
    }
}

/// Log panics through the logger (after everything pending, at error level),
/// so they land in order in the same log. The default hook would print an
/// unprefixed, possibly multi-line message past the buffered lines.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let mut buf = Vec::new();
        let mut line = log::Line::start(&mut buf, Level::Error);
        line.text("internal error (a bug, please report it)")
            .field("thread", thread.name().unwrap_or("unnamed").as_bytes())
            .field("panic", message.as_bytes())
            .field("at", location.as_bytes());
        line.finish();
    }));
}

// The module-graph reader of policy-core's "no cycles" test, one copy for
// both crates (test code only).
#[cfg(test)]
#[path = "../../policy-core/src/module_graph.rs"]
mod module_graph;

#[cfg(test)]
mod module_tree {
    //! The modules of `policyd` form a tree (issue 10, point 5): the test
    //! reads `src/*.rs`, collects every `crate::x` reference outside
    //! comments and unit-test modules, and fails naming the first cycle.

    use std::path::Path;

    use crate::module_graph::{cycle, top_graph};

    #[test]
    fn modules_form_a_tree() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let graph = top_graph(&src, "main");
        assert!(graph.contains_key("conn"), "expected conn.rs in {graph:?}");
        assert!(
            graph.len() > 3,
            "expected the modules of policyd in {graph:?}"
        );
        if let Some(found) = cycle(&graph) {
            panic!("module cycle in policyd-bin: {found}\nthe graph: {graph:#?}");
        }
    }
}
