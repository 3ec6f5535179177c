//! Signals, through `signal-hook` (no `unsafe` of our own).
//!
//! The main thread blocks in [`Signals::wait`]; the handlers only write to a
//! pipe that `signal-hook` reads for us, so nothing runs in signal context.
//!
//! - SIGTERM, SIGINT: stop (see [`crate::server`]); a second one while stopping
//!   exits at once.
//! - SIGHUP: reload the policy file (see [`crate::server`]): the main thread
//!   only hands the request to the reload thread, so a slow compile never
//!   delays a stop signal.

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator;

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM or SIGINT, by name.
    Stop(&'static str),
    /// SIGHUP.
    Reload,
}

/// The signals the daemon handles, installed once at start.
pub(crate) struct Signals(iterator::Signals);

impl Signals {
    /// Install the handlers. Call before binding, so that a signal arriving
    /// during start-up is not lost (it is handled once the daemon is up).
    pub(crate) fn install() -> io::Result<Self> {
        iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).map(Self)
    }

    /// Block until a handled signal arrives.
    pub(crate) fn wait(&mut self) -> Signal {
        loop {
            // Consume the whole batch (a partly read batch would leave
            // signals behind without a wake-up); a stop outranks a reload.
            // `wait` may return an empty batch: wait again.
            let mut received = None;
            for signal in self.0.wait().filter_map(classify) {
                if received.is_none() || matches!(signal, Signal::Stop(_)) {
                    received = Some(signal);
                }
            }
            if let Some(signal) = received {
                return signal;
            }
        }
    }

    /// A SIGTERM or SIGINT received since the last call, without blocking.
    /// Other signals are consumed and ignored (we are stopping anyway).
    pub(crate) fn poll_stop(&mut self) -> Option<&'static str> {
        let mut stop = None;
        for signal in self.0.pending().filter_map(classify) {
            if let Signal::Stop(name) = signal {
                stop = Some(name);
            }
        }
        stop
    }
}

fn classify(raw: i32) -> Option<Signal> {
    match raw {
        SIGTERM => Some(Signal::Stop("SIGTERM")),
        SIGINT => Some(Signal::Stop("SIGINT")),
        SIGHUP => Some(Signal::Reload),
        _ => None,
    }
}
