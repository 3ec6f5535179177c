//! `loadgen`: a loopback load generator for Postfix policy servers.
//!
//! Opens N persistent connections (one thread each), keeps exactly one request
//! in flight per connection, as Postfix's smtpd processes do, and sends a
//! realistic mix of requests (`policyd_benches::MIX`) drawn from a fixed seed, so
//! every run sends the same sequence. Stops after `--duration` seconds and/or
//! `--requests` requests in total, then prints one line with req/s and the
//! p50/p99/p99.9/max latency (request written to reply read).
//!
//! Nothing in the request loop allocates: requests are `const`s, the reply is
//! read into a fixed buffer and latencies go into a fixed-size histogram.
//!
//! Only point it at servers you run on this machine (loopback).
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use policyd_benches::{LatencyHistogram, XorShift64, MIX};

/// Default number of connections: the figure the daemon's target is stated at.
const DEFAULT_CONNECTIONS: usize = 32;
/// Default run length when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION_SECS: f64 = 10.0;
/// Default seed of the request mix.
const DEFAULT_SEED: u64 = 0x5EED_2026;
/// Requests each connection sends before measuring starts, not counted: they
/// warm the server's per-connection buffers and the caches.
const DEFAULT_WARMUP_REQUESTS: u64 = 100;
/// Most connections: each is a thread here and one at the server; beyond this a
/// loopback test measures the scheduler, not the server.
const MAX_CONNECTIONS: usize = 10_000;
/// Longest reply accepted. A policy reply is `action=` + at most a few hundred
/// bytes of text + `\n\n`; anything longer is a broken server.
const MAX_REPLY_BYTES: usize = 4096;
/// How long to wait for one reply before declaring the server stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Stack of a connection thread (the histogram lives on the heap).
const THREAD_STACK_BYTES: usize = 128 * 1024;
/// Exit code for a bad command line (sysexits `EX_USAGE`).
const EX_USAGE: u8 = 64;

const USAGE: &str = "usage: loadgen --target HOST:PORT [--connections N] [--duration SECS] [--requests N]\n\
    \x20              [--seed N] [--warmup-requests N]\n\
    --target HOST:PORT      the policy server (loopback only)\n\
    --connections N         persistent connections, one request in flight on each (default 32)\n\
    --duration SECS         stop after this many seconds (default 10 if --requests is not given)\n\
    --requests N            stop after this many requests in total\n\
    --seed N                seed of the request mix (default 1592598566)\n\
    --warmup-requests N     uncounted requests per connection before measuring (default 100)\n\
Prints: loadgen target=.. connections=.. requests=.. errors=.. seconds=.. rps=.. p50_us=.. p99_us=.. p999_us=.. max_us=..\n";

#[derive(Debug)]
struct Options {
    target: SocketAddr,
    connections: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    seed: u64,
    warmup_requests: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut target = None;
    let mut connections = DEFAULT_CONNECTIONS;
    let mut duration = None;
    let mut requests = None;
    let mut seed = DEFAULT_SEED;
    let mut warmup_requests = DEFAULT_WARMUP_REQUESTS;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let bad = |what: &str| format!("{arg}: expected {what}, got {value:?}");
        match arg.as_str() {
            "--target" => {
                let addr = value
                    .to_socket_addrs()
                    .map_err(|e| format!("--target {value}: {e}"))?
                    .next()
                    .ok_or_else(|| bad("HOST:PORT"))?;
                target = Some(addr);
            }
            "--connections" => {
                connections = value.parse().map_err(|_| bad("a number"))?;
                if connections == 0 || connections > MAX_CONNECTIONS {
                    return Err(bad(&format!("1..={MAX_CONNECTIONS}")));
                }
            }
            "--duration" => {
                let secs: f64 = value.parse().map_err(|_| bad("seconds"))?;
                if !(secs > 0.0 && secs.is_finite()) {
                    return Err(bad("a positive number of seconds"));
                }
                duration = Some(Duration::from_secs_f64(secs));
            }
            "--requests" => {
                let n: u64 = value.parse().map_err(|_| bad("a number"))?;
                if n == 0 {
                    return Err(bad("at least 1"));
                }
                requests = Some(n);
            }
            "--seed" => seed = value.parse().map_err(|_| bad("a number"))?,
            "--warmup-requests" => warmup_requests = value.parse().map_err(|_| bad("a number"))?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let target = target.ok_or("--target is required")?;
    if duration.is_none() && requests.is_none() {
        duration = Some(Duration::from_secs_f64(DEFAULT_DURATION_SECS));
    }
    Ok(Options {
        target,
        connections,
        duration,
        requests,
        seed,
        warmup_requests,
    })
}

/// Write `request` and read the reply, which ends with the first `\n\n`
/// (one request in flight, so nothing follows it).
fn round_trip(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> io::Result<()> {
    stream.write_all(request)?;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reply longer than MAX_REPLY_BYTES",
            ));
        }
        let n = match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Look for the end from one byte before the new data (it may straddle).
        let from = filled.saturating_sub(1);
        filled += n;
        if let Some(end) = buf[from..filled].windows(2).position(|w| w == b"\n\n") {
            let end = from + end + 2;
            if end != filled {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes after the reply with no request in flight",
                ));
            }
            if !buf.starts_with(b"action=") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply does not start with action=",
                ));
            }
            return Ok(());
        }
    }
}

#[derive(Debug)]
struct Outcome {
    histogram: LatencyHistogram,
    error: Option<io::Error>,
}

fn connection(
    index: usize,
    options: &Options,
    start: &Barrier,
    issued: &AtomicU64,
    deadline: &OnceLock<Option<Instant>>,
) -> Outcome {
    let mut histogram = LatencyHistogram::new();
    let mut buf = [0u8; MAX_REPLY_BYTES];
    // Distinct, reproducible stream per connection.
    let mut rng = XorShift64::new(options.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9));
    let setup = (|| {
        let mut stream = TcpStream::connect(options.target)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        for _ in 0..options.warmup_requests {
            let entry = rng.pick(MIX).ok_or_else(|| io::Error::other("empty mix"))?;
            round_trip(&mut stream, entry.request, &mut buf)?;
        }
        Ok::<_, io::Error>(stream)
    })();
    // Every thread reaches both barriers, even after a failure, so none waits
    // forever: the first says all are warmed up, the second that the deadline
    // is set.
    start.wait();
    start.wait();
    let mut stream = match setup {
        Ok(s) => s,
        Err(e) => {
            return Outcome {
                histogram,
                error: Some(e),
            }
        }
    };
    let deadline = deadline.get().copied().flatten();
    loop {
        if let Some(limit) = options.requests {
            if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let t0 = Instant::now();
        if deadline.is_some_and(|d| t0 >= d) {
            break;
        }
        let Some(entry) = rng.pick(MIX) else { break };
        if let Err(e) = round_trip(&mut stream, entry.request, &mut buf) {
            return Outcome {
                histogram,
                error: Some(e),
            };
        }
        let nanos = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.record(nanos);
    }
    Outcome {
        histogram,
        error: None,
    }
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => Arc::new(o),
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("loadgen: error: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let start = Arc::new(Barrier::new(options.connections + 1));
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Arc::new(OnceLock::new());
    let mut handles = Vec::with_capacity(options.connections);
    for index in 0..options.connections {
        let (options, start, issued, deadline) = (
            Arc::clone(&options),
            Arc::clone(&start),
            Arc::clone(&issued),
            Arc::clone(&deadline),
        );
        let spawned = thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || connection(index, &options, &start, &issued, &deadline));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The threads already started wait at the barrier; exiting
                // the process ends them.
                eprintln!("loadgen: error: cannot start connection thread {index}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Once every connection is warmed up, set the deadline, then release them.
    start.wait();
    let began = Instant::now();
    let _ = deadline.set(options.duration.map(|d| began + d));
    start.wait();

    let mut total = LatencyHistogram::new();
    let mut errors = 0u64;
    for (index, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(outcome) => {
                total.merge(&outcome.histogram);
                if let Some(e) = outcome.error {
                    errors += 1;
                    eprintln!("loadgen: error: connection {index}: {e}");
                }
            }
            Err(_) => {
                errors += 1;
                eprintln!("loadgen: error: connection {index} panicked");
            }
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    let rps = total.len() as f64 / seconds;
    println!(
        "loadgen target={} connections={} requests={} errors={} seconds={:.3} rps={:.0} \
         p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        options.target,
        options.connections,
        total.len(),
        errors,
        seconds,
        rps,
        micros(total.quantile(0.50)),
        micros(total.quantile(0.99)),
        micros(total.quantile(0.999)),
        micros(total.max()),
    );
    if errors > 0 || total.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    use super::{round_trip, DEFAULT_SEED, MAX_REPLY_BYTES, USAGE};

    /// A loopback server that answers each of `replies` to one read each.
    fn server(replies: &'static [&'static [u8]]) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4096];
            for reply in replies {
                if stream.read(&mut buf).unwrap_or(0) == 0 {
                    return;
                }
                // Split the reply in two writes: the client must reassemble it.
                let (a, b) = reply.split_at(reply.len() / 2);
                let _ = stream.write_all(a);
                let _ = stream.flush();
                let _ = stream.write_all(b);
            }
        });
        addr
    }

    #[test]
    fn round_trip_accepts_a_reply_and_refuses_bad_ones() {
        let addr = server(&[b"action=DUNNO\n\n", b"action=OK\n\nextra", b"dunno\n\n"]);
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut buf = [0u8; MAX_REPLY_BYTES];
        let request = policyd_benches::FULL_RCPT;
        round_trip(&mut stream, request, &mut buf).expect("a good reply");
        let e = round_trip(&mut stream, request, &mut buf).expect_err("trailing bytes");
        assert!(e.to_string().contains("after the reply"), "{e}");
        let e = round_trip(&mut stream, request, &mut buf).expect_err("no action=");
        assert!(e.to_string().contains("action="), "{e}");
        let e = round_trip(&mut stream, request, &mut buf).expect_err("closed");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn usage_states_the_default_seed() {
        assert!(USAGE.contains(&format!("(default {DEFAULT_SEED})")));
    }
}
