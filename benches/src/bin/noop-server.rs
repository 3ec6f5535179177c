//! `noop-server`: the reference the daemon's cost is measured against.
//!
//! Same threading model as `policyd` (std::net, one thread per connection,
//! persistent connections served until the client closes), but no framing
//! limits, no parsing, no policy and no logging: it scans the bytes for the empty
//! line that ends a request and answers `action=DUNNO\n\n` to each. Whatever
//! req/s it reaches on a machine is the ceiling set by syscalls and scheduling,
//! so `policyd`'s req/s divided by this one's is the share of that ceiling the
//! daemon keeps.
//!
//! Usage: `noop-server [--listen HOST:PORT]` (default `127.0.0.1:0`, an ephemeral
//! port). After binding it prints `noop-server: info: listening on ADDR` to
//! stderr, as `policyd` does, then serves until killed.
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

/// The one reply: Postfix's "no opinion".
const REPLY: &[u8] = b"action=DUNNO\n\n";

/// Bytes read per `read` call. A full Postfix 3.x request is under 1 KiB, so one
/// read normally carries a whole request.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Stack of a connection thread: the read buffer lives on the heap, the loop
/// needs very little. Small, as in the daemon, so hundreds of connections cost
/// little memory.
const THREAD_STACK_BYTES: usize = 64 * 1024;

/// Exit code for a bad command line (sysexits `EX_USAGE`), as `policyd` uses.
const EX_USAGE: u8 = 64;
/// Exit code when the listener cannot be bound (sysexits `EX_OSERR`).
const EX_OSERR: u8 = 71;

const USAGE: &str = "usage: noop-server [--listen HOST:PORT]\n\
    Answers action=DUNNO to every policy request (found by its empty line), without parsing.\n\
    --listen HOST:PORT   address to listen on (default 127.0.0.1:0, an ephemeral port)\n";

/// Counts request ends (`\n\n`, a CR before an LF ignored) across reads.
#[derive(Debug, Default)]
struct RequestEnds {
    /// The last significant byte seen was an LF.
    after_newline: bool,
}

impl RequestEnds {
    /// How many requests end in `bytes`.
    fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut ends = 0;
        for &b in bytes {
            match b {
                b'\n' if self.after_newline => {
                    ends += 1;
                    self.after_newline = false;
                }
                b'\n' => self.after_newline = true,
                b'\r' => {}
                _ => self.after_newline = false,
            }
        }
        ends
    }
}

fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut ends = RequestEnds::default();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for _ in 0..ends.scan(&buf[..n]) {
            stream.write_all(REPLY)?;
        }
    }
}

fn main() -> ExitCode {
    let mut listen = String::from("127.0.0.1:0");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => {
                    eprint!("noop-server: error: --listen needs HOST:PORT\n{USAGE}");
                    return ExitCode::from(EX_USAGE);
                }
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprint!("noop-server: error: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(EX_USAGE);
            }
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("noop-server: error: cannot listen on {listen}: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("noop-server: info: listening on {addr}"),
        Err(e) => {
            eprintln!("noop-server: error: cannot read the bound address: {e}");
            return ExitCode::from(EX_OSERR);
        }
    }
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("noop-server: warning: accept failed: {e}");
                continue;
            }
        };
        let spawned = thread::Builder::new()
            .name("noop-conn".into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                if let Err(e) = serve(stream) {
                    eprintln!("noop-server: warning: connection ended: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("noop-server: warning: cannot start a connection thread: {e}");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::RequestEnds;

    #[test]
    fn finds_request_ends_in_any_chunking() {
        let input = b"a=1\nb=2\n\nc=3\r\n\r\nd=4\n\n";
        for split in 0..=input.len() {
            let mut ends = RequestEnds::default();
            let (head, tail) = input.split_at(split);
            assert_eq!(ends.scan(head) + ends.scan(tail), 3, "split at {split}");
        }
        assert_eq!(RequestEnds::default().scan(b"a=1\nb=2\n"), 0);
    }
}
