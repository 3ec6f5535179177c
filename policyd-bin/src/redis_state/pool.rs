//! A small pool of blocking Redis connections, and what it does when Redis
//! is down.
//!
//! A call takes an idle connection, or opens one if fewer than the pool's
//! size are open (within the call's budget), and gives it back when the
//! call succeeded. A connection whose call failed on the connection (a
//! timeout, a reset) is dropped: a late reply would be read as the answer
//! to the next call.
//!
//! When a connection cannot be opened, or an open one breaks, the pool is
//! **down**: calls answer [`BackendError::Unavailable`] at once, without
//! trying, and one background thread tries to connect, waiting 100 ms, then
//! twice as long each time up to 5 s. When it connects, the pool is up
//! again and the connection is the first idle one. No request waits on a
//! Redis that is down, and the first requests after it is back find a
//! connection ready.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use policy_core::state::BackendError;

use super::{is_connection_error, CallError};

/// The first wait between reconnection attempts.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The connections, and whether Redis is reachable.
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

/// Run on each connection the reconnecting thread opens, before the pool
/// is up again (the backend stores its key seeds again: a Redis that
/// restarted empty has lost them).
pub(crate) type OnReconnect = Box<dyn Fn(&mut redis::Connection) + Send + Sync>;

struct Inner {
    client: redis::Client,
    on_reconnect: Mutex<Option<OnReconnect>>,
    size: usize,
    /// Idle connections, and how many are open (idle or in use).
    conns: Mutex<Conns>,
    /// Signalled when a connection is given back or closed.
    returned: Condvar,
    /// Redis is down: calls fail at once while the reconnecting thread runs.
    down: AtomicBool,
    /// Wakes the reconnecting thread (a stop, for tests and shutdown).
    wake: Condvar,
    wake_lock: Mutex<bool>,
    /// Times the pool went down, for logs and tests.
    outages: AtomicU64,
}

#[derive(Default)]
struct Conns {
    idle: Vec<redis::Connection>,
    open: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size)
            .field("open", &self.inner.conns.lock().open)
            .field("down", &self.is_down())
            .finish()
    }
}

impl Pool {
    /// A pool of at most `size` connections of `client`; none open yet.
    pub(crate) fn new(client: redis::Client, size: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                on_reconnect: Mutex::new(None),
                size,
                conns: Mutex::new(Conns::default()),
                returned: Condvar::new(),
                down: AtomicBool::new(false),
                wake: Condvar::new(),
                wake_lock: Mutex::new(false),
                outages: AtomicU64::new(0),
            }),
        }
    }

    /// Set what runs on each reconnection.
    pub(crate) fn on_reconnect(&self, hook: OnReconnect) {
        *self.inner.on_reconnect.lock() = Some(hook);
    }

    /// Whether Redis is taken as down (calls fail at once).
    pub(crate) fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire)
    }

    /// How many times the pool went down.
    #[cfg(test)]
    pub(crate) fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }

    /// Run `f` on a connection, by `deadline`.
    pub(crate) fn with_connection<T>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&mut redis::Connection) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        if self.is_down() {
            return Err(CallError::Backend(BackendError::Unavailable));
        }
        let mut con = self.take(deadline)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.give_back(con);
            return Err(CallError::Backend(BackendError::Timeout));
        }
        if let Err(e) = con
            .set_read_timeout(Some(left))
            .and_then(|()| con.set_write_timeout(Some(left)))
        {
            self.broken(con, &e);
            return Err(CallError::Redis(e));
        }
        match f(&mut con) {
            Ok(value) => {
                self.give_back(con);
                Ok(value)
            }
            Err(CallError::Redis(e)) if is_connection_error(&e) => {
                self.broken(con, &e);
                Err(CallError::Redis(e))
            }
            Err(other) => {
                self.give_back(con);
                Err(other)
            }
        }
    }

    /// An idle connection, or a new one if the pool has room; when it is
    /// full, wait for one until `deadline`.
    fn take(&self, deadline: Instant) -> Result<redis::Connection, CallError> {
        {
            let mut conns = self.inner.conns.lock();
            loop {
                if let Some(con) = conns.idle.pop() {
                    return Ok(con);
                }
                if conns.open < self.inner.size {
                    conns.open += 1;
                    break;
                }
                if self
                    .inner
                    .returned
                    .wait_until(&mut conns, deadline)
                    .timed_out()
                {
                    return Err(CallError::Backend(BackendError::Timeout));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let opened = if left.is_zero() {
            Err(CallError::Backend(BackendError::Timeout))
        } else {
            self.inner
                .client
                .get_connection_with_timeout(left)
                .map_err(CallError::Redis)
        };
        if opened.is_err() {
            self.closed();
            if let Err(CallError::Redis(e)) = &opened {
                if !e.is_timeout() {
                    self.go_down(e);
                }
            }
        }
        opened
    }

    fn give_back(&self, con: redis::Connection) {
        self.inner.conns.lock().idle.push(con);
        self.inner.returned.notify_one();
    }

    /// A connection was closed (or never opened): room for another.
    fn closed(&self) {
        let mut conns = self.inner.conns.lock();
        conns.open = conns.open.saturating_sub(1);
        drop(conns);
        self.inner.returned.notify_one();
    }

    /// `con` failed with `e`: drop it, and take Redis as down unless the
    /// call only ran out of time (a slow Redis is not a dead one).
    fn broken(&self, con: redis::Connection, e: &redis::RedisError) {
        drop(con);
        self.closed();
        if !e.is_timeout() {
            self.go_down(e);
        }
    }

    /// Mark Redis down because of `why` and start the reconnecting thread
    /// (once).
    fn go_down(&self, why: &redis::RedisError) {
        if self.inner.down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.outages.fetch_add(1, Ordering::Relaxed);
        // The idle connections are probably broken too.
        {
            let mut conns = self.inner.conns.lock();
            let dropped = conns.idle.len();
            conns.idle.clear();
            conns.open = conns.open.saturating_sub(dropped);
        }
        self.inner.returned.notify_all();
        crate::log::message(
            crate::log::Level::Warn,
            format_args!(
                "redis: unreachable ({why}); state items apply their on_failure until it is \
                 back (reconnecting in the background)"
            ),
        );
        let inner = Arc::clone(&self.inner);
        let spawned = thread::Builder::new()
            .name("redis-reconnect".into())
            .spawn(move || reconnect(&inner));
        if spawned.is_err() {
            // No thread: let the next call try on its own.
            self.inner.down.store(false, Ordering::Release);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        *self.inner.wake_lock.lock() = true;
        self.inner.wake.notify_all();
    }
}

/// Try to connect, with backoff, until it works (or the pool is dropped).
fn reconnect(inner: &Inner) {
    let mut wait = BACKOFF_START;
    let started = Instant::now();
    loop {
        {
            let mut stop = inner.wake_lock.lock();
            if !*stop {
                inner.wake.wait_for(&mut stop, wait);
            }
            if *stop {
                return;
            }
        }
        if let Ok(mut con) = inner.client.get_connection_with_timeout(BACKOFF_MAX) {
            let ping: Result<String, _> = redis::cmd("PING").query(&mut con);
            if ping.is_ok() {
                if let Some(hook) = &*inner.on_reconnect.lock() {
                    hook(&mut con);
                }
                {
                    let mut conns = inner.conns.lock();
                    conns.open += 1;
                    conns.idle.push(con);
                }
                inner.returned.notify_one();
                inner.down.store(false, Ordering::Release);
                crate::log::message(
                    crate::log::Level::Warn,
                    format_args!(
                        "redis: reachable again after {} ms",
                        started.elapsed().as_millis()
                    ),
                );
                return;
            }
        }
        wait = (wait * 2).min(BACKOFF_MAX);
    }
}
