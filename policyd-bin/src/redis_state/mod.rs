//! State shared by several MX hosts in Redis (or Valkey): the [`Backend`]
//! of the items a policy keeps in `backend redis`.
//!
//! Each operation is one server-side script, run atomically by Redis, so N
//! hosts hitting one key together admit exactly the limit:
//!
//! - `limit.lua`: a limit's check-and-count for one key, the algorithm of
//!   policy-core's `LimitTable` (16 buckets per window, the same rounding);
//! - `refund.lua`: giving units back;
//! - `greylist.lua`: a greylist's step (client network, then triplet), the
//!   semantics of policy-core's `GreylistTable`.
//!
//! The model tests (`tests.rs`) run the same operations through these
//! scripts and through the local tables and compare every answer.
//!
//! Scripts are sent by their SHA1 (`EVALSHA`); after a restart of Redis,
//! which forgets them, the `NOSCRIPT` answer makes the client load them
//! again (the `redis` crate's `Script`).
//!
//! # Keys
//!
//! `PREFIX` `l:` ITEM `:` SIGNATURE `:` HASH for a limit's key,
//! `g:`/`c:` for a greylist's triplets and client networks (see
//! [`key_name`]), each a Redis hash with its own expiry: no cleanup job.
//! The key hashes are seeded with [`Backend::seeds`], kept in Redis itself
//! (`PREFIX` `seeds`), so that every host hashes a key alike.
//! `policyd state --redis` reads these keys without writing ([`view`]).
//!
//! # Failure
//!
//! Every call has the request's time budget ([`When`]): the connection's
//! read and write timeouts are set to what is left of it, and a call that
//! runs out answers [`BackendError::Timeout`]. A connection that fails is
//! dropped; while Redis is down, calls answer [`BackendError::Unavailable`]
//! at once, and one thread reconnects in the background with backoff
//! ([`pool`]).
//!
//! # TLS
//!
//! A `rediss://` URL connects over TLS (rustls, on the same blocking
//! connections). The server's certificate must chain to the system's CA
//! certificates (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), or,
//! with [`TlsSettings::ca_pem`], to those CA certificates only, and name
//! the URL's host. A client certificate is shown when the server asks for
//! one ([`TlsSettings::client`]). A certificate the client refuses at start
//! is a [`StartError::Certificate`], not an unreachable server.

mod pool;
#[cfg(test)]
mod tests;
pub(crate) mod view;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy_core::greylist::{GreyCall, GreyVerdict};
use policy_core::limits::{LimitCall, Refusal, Verdict};
use policy_core::state::{Backend, BackendError, BatchAnswer, Batched, HashSeeds, Item, When};
use policy_core::{State, Timestamp};

use crate::cli::{RedisArgs, EX_CONFIG, EX_UNAVAILABLE};
use crate::log;

pub(crate) use pool::Pool;

/// The limit script (see the module documentation), after what the
/// scripts share (`common.lua`).
const LIMIT_LUA: &str = concat!(
    include_str!("common.lua"),
    include_str!("limit.lua"),
    "return limit_step(KEYS[1], ARGV)\n"
);
/// The refund script.
const REFUND_LUA: &str = concat!(include_str!("common.lua"), include_str!("refund.lua"));
/// The greylist script.
const GREYLIST_LUA: &str = concat!(
    include_str!("common.lua"),
    include_str!("greylist.lua"),
    "return greylist_step(KEYS[1], KEYS[2], ARGV)\n"
);
/// The batch script: several limit and greylist calls of one request.
const BATCH_LUA: &str = concat!(
    include_str!("common.lua"),
    include_str!("limit.lua"),
    include_str!("greylist.lua"),
    include_str!("batch.lua")
);

/// How to reach Redis and name the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisSettings {
    /// `redis://[user:password@]host[:port][/db]`, the same with
    /// `rediss://` for TLS, or `unix:///path/to/socket[?db=N]` (the `redis`
    /// crate's URL forms).
    pub(crate) url: String,
    /// A password to use instead of the URL's (read from a file, so that it
    /// is not on the command line).
    pub(crate) password: Option<String>,
    /// Put before every key (`policyd:`), so that several policies or
    /// applications can share one Redis.
    pub(crate) prefix: String,
    /// The most connections the daemon holds.
    pub(crate) pool_size: usize,
    /// What a `rediss://` connection trusts and shows.
    pub(crate) tls: TlsSettings,
}

/// The certificates of `rediss://` connections, as PEM text (read from
/// the files at start, so that a reconnection does not depend on them).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// CA certificates that the server's certificate must chain to, instead
    /// of the system's; none: the system's.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its private key, for a server that
    /// asks for one (mutual TLS).
    pub(crate) client: Option<ClientCert>,
}

/// A client certificate chain and its private key, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// The certificate, then any intermediate CA certificates.
    pub(crate) cert_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) key_pem: Vec<u8>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes only: the key is a secret, and PEM text is long.
        f.debug_struct("TlsSettings")
            .field("ca_pem_bytes", &self.ca_pem.as_ref().map(Vec::len))
            .field(
                "client_cert_bytes",
                &self.client.as_ref().map(|c| c.cert_pem.len()),
            )
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Whether anything differs from the defaults (the system's CAs, no
    /// client certificate).
    fn is_set(&self) -> bool {
        self.ca_pem.is_some() || self.client.is_some()
    }
}

/// Check the CA certificates of a PEM text: each certificate must parse,
/// and there must be one at least (a file of keys alone would trust
/// nothing).
pub(crate) fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("a certificate that cannot be a trust anchor: {e}"))?;
    }
    if store.is_empty() {
        return Err(NO_CERTIFICATE.to_owned());
    }
    Ok(())
}

/// rustls's cryptography: *ring*'s.
///
/// rustls 0.23.48 deprecates it for want of post-quantum key exchange (its
/// key exchanges are X25519, P-256 and P-384): the provider that has one,
/// aws-lc-rs, is a much larger C build, for the link between an MX host and
/// its Redis, usually a private network.
#[allow(deprecated)] // See above.
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// What a PEM text without certificates lacks.
const NO_CERTIFICATE: &str = "no certificate in it (-----BEGIN CERTIFICATE-----)";

/// What is wrong with a client certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientCertError {
    /// The certificate chain's PEM text.
    Cert(String),
    /// The key's PEM text.
    Key(String),
    /// The key is not the certificate's, or rustls cannot sign with it.
    Mismatch(String),
}

/// Check a client certificate chain and its key as rustls will use them:
/// certificates first (at least one), a private key, and the key must be
/// the first certificate's.
pub(crate) fn check_client_cert(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), ClientCertError> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientCertError::Cert(format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(ClientCertError::Cert(NO_CERTIFICATE.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        ClientCertError::Key(format!(
            "no usable private key in it (PKCS#8, PKCS#1 or SEC1 PEM): {e}"
        ))
    })?;
    // The provider the connections use, named here as this may run
    // before it is installed.
    rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientCertError::Mismatch(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map(drop)
        .map_err(|e| ClientCertError::Mismatch(e.to_string()))
}

/// The Redis backend: a pool of connections and the scripts.
pub(crate) struct RedisBackend {
    pool: Pool,
    prefix: String,
    seeds: HashSeeds,
    limit: redis::Script,
    refund: redis::Script,
    greylist: redis::Script,
    batch: redis::Script,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("pool", &self.pool)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why the backend could not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The URL is not one the client understands.
    Url(String),
    /// Redis did not answer within the time given (down, wrong address,
    /// wrong password).
    Unreachable(String),
    /// Redis answered, but the seeds it holds are not ours.
    Seeds(String),
    /// The TLS client refused the server's certificate (not signed by a
    /// trusted CA, not for the URL's host, expired).
    Certificate(String),
    /// The TLS handshake failed otherwise (the server is not TLS, or
    /// refused our client certificate, or none was given).
    Tls(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(e) => write!(f, "bad Redis URL: {e}"),
            Self::Unreachable(e) => write!(f, "Redis cannot be reached: {e}"),
            Self::Seeds(e) => write!(f, "Redis holds unusable key seeds: {e}"),
            Self::Certificate(e) => write!(f, "Redis's TLS certificate is refused: {e}"),
            Self::Tls(e) => write!(f, "the TLS handshake with Redis failed: {e}"),
        }
    }
}

impl RedisBackend {
    /// Connect to Redis (within `timeout`) and read, or create, the shared
    /// key seeds.
    pub(crate) fn start(settings: &RedisSettings, timeout: Duration) -> Result<Self, StartError> {
        let client = open_client(&settings.url, settings.password.as_deref(), &settings.tls)?;
        let pool = Pool::new(client, settings.pool_size.max(1));
        let seeds = pool
            .with_connection(Instant::now() + timeout, |con| {
                read_or_create_seeds(con, &settings.prefix)
            })
            .map_err(|e| match e {
                CallError::Backend(b) => StartError::Unreachable(b.to_string()),
                CallError::Redis(r) => match tls_error(&r) {
                    Some(tls @ rustls::Error::InvalidCertificate(_)) => {
                        StartError::Certificate(tls.to_string())
                    }
                    Some(tls) => StartError::Tls(tls.to_string()),
                    None => StartError::Unreachable(r.to_string()),
                },
                CallError::Seeds(s) => StartError::Seeds(s),
            })?;
        // After an outage, store the seeds again: a Redis that restarted
        // empty lost them, and a host starting later must read ours.
        let prefix = settings.prefix.clone();
        let ours = seeds_text(seeds);
        pool.on_reconnect(Box::new(move |con| {
            let key = format!("{prefix}seeds");
            // Two commands, not `SET NX GET` (Redis 7): Redis 6 too.
            let stored: Result<Option<String>, _> = redis::cmd("SET")
                .arg(&key)
                .arg(&ours)
                .arg("NX")
                .query(con)
                .and_then(|_: Option<String>| redis::cmd("GET").arg(&key).query(con));
            match stored {
                Ok(Some(theirs)) if theirs != ours => log::error!(
                    "redis: `{key}` holds other key seeds than this host's (Redis restarted \
                     empty and another host stored new ones): hosts count the same keys apart \
                     until policyd is restarted on every host"
                ),
                Ok(_) => {}
                Err(e) => log::warning!("redis: cannot store the key seeds again: {e}"),
            }
        }));
        Ok(Self {
            pool,
            prefix: settings.prefix.clone(),
            seeds,
            limit: redis::Script::new(LIMIT_LUA),
            refund: redis::Script::new(REFUND_LUA),
            greylist: redis::Script::new(GREYLIST_LUA),
            batch: redis::Script::new(BATCH_LUA),
        })
    }

    /// The pool (its health, for tests).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Run `invocation` within `when`'s budget.
    fn run<T: redis::FromRedisValue>(
        &self,
        when: When,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let budget = when
            .deadline
            .as_unix_millis()
            .saturating_sub(when.now.as_unix_millis());
        if budget == 0 {
            return Err(BackendError::Timeout);
        }
        let deadline = Instant::now() + Duration::from_millis(budget);
        self.pool
            .with_connection(deadline, |con| {
                invocation.invoke(con).map_err(CallError::Redis)
            })
            .map_err(CallError::into_backend)
    }
}

/// A client for `url`, with `password` instead of the URL's when given,
/// and for a `rediss://` URL the certificates of `tls`. Opens no
/// connection yet.
fn open_client(
    url: &str,
    password: Option<&str>,
    tls: &TlsSettings,
) -> Result<redis::Client, StartError> {
    let mut info = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| StartError::Url(e.to_string()))?;
    if let Some(password) = password {
        info.redis.password = Some(password.to_owned());
    }
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } = info.addr {
        // The redis crate would fail at each connection without its
        // tls-rustls-insecure feature, which we do not want.
        return Err(StartError::Url(
            "#insecure is not supported: the server's certificate is always checked \
             (for a private CA, see --redis-ca-file)"
                .to_owned(),
        ));
    }
    if crate::cli::is_tls_url(url) {
        // rustls's cryptography for the whole process: ring, chosen
        // here rather than from rustls's crate features, which another
        // dependency enabling aws-lc-rs too would make ambiguous (a
        // panic at the first TLS connection). An error only says that
        // a provider is installed already.
        let _ = crypto_provider().install_default();
    }
    if tls.is_set() {
        let certificates = redis::TlsCertificates {
            client_tls: tls.client.as_ref().map(|c| redis::ClientTlsConfig {
                client_cert: c.cert_pem.clone(),
                client_key: c.key_pem.clone(),
            }),
            root_cert: tls.ca_pem.clone(),
        };
        // A URL other than rediss:// is refused here too.
        redis::Client::build_with_tls(info, certificates)
    } else {
        redis::Client::open(info)
    }
    .map_err(|e| StartError::Url(e.to_string()))
}

/// One connection to Redis for reading only (`policyd state --redis`):
/// connected within `timeout`, each later command given `timeout` to
/// answer. Unlike [`RedisBackend::start`] it neither reads nor creates the
/// key seeds: a look at Redis changes nothing in it.
pub(crate) fn connect_read_only(
    url: &str,
    password: Option<&str>,
    tls: &TlsSettings,
    timeout: Duration,
) -> Result<redis::Connection, StartError> {
    let client = open_client(url, password, tls)?;
    let unreachable = |e: redis::RedisError| StartError::Unreachable(e.to_string());
    let con = client
        .get_connection_with_timeout(timeout)
        .map_err(unreachable)?;
    con.set_read_timeout(Some(timeout)).map_err(unreachable)?;
    con.set_write_timeout(Some(timeout)).map_err(unreachable)?;
    Ok(con)
}

/// The part of the key names of item `name` (with `signature`) before the
/// key's hash: `PREFIX KIND : ITEM : SIGNATURE :` (see [`key_name`]).
pub(crate) fn key_base(prefix: &str, kind: char, name: &str, signature: u64) -> String {
    format!("{prefix}{kind}:{name}:{signature:016x}:")
}

/// A `SCAN MATCH` pattern for every key of item `name` of `kind`: its
/// [`key_base`], the glob characters in it escaped (a prefix may hold
/// `*`, `?`, `[`), then `*`.
pub(crate) fn key_pattern(prefix: &str, kind: char, name: &str, signature: u64) -> String {
    let base = key_base(prefix, kind, name, signature);
    let mut pattern = String::with_capacity(base.len() + 8);
    for c in base.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// The name of a key of `item`: `PREFIX KIND : ITEM : SIGNATURE : HASH`.
pub(crate) fn key_name(prefix: &str, kind: char, item: &Item<'_>, hash: u64) -> String {
    format!(
        "{prefix}{kind}:{}:{:016x}:{hash:016x}",
        item.name, item.signature
    )
}

/// Read the seeds at `PREFIX seeds`, or store new random ones if there are
/// none (`SET NX`: the first host to start wins, and every host reads the
/// same).
fn read_or_create_seeds(con: &mut redis::Connection, prefix: &str) -> Result<HashSeeds, CallError> {
    let key = format!("{prefix}seeds");
    let fresh = seeds_text(HashSeeds::random());
    let _: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&fresh)
        .arg("NX")
        .query(con)
        .map_err(CallError::Redis)?;
    let text: String = redis::cmd("GET")
        .arg(&key)
        .query(con)
        .map_err(CallError::Redis)?;
    parse_seeds(&text).ok_or_else(|| {
        CallError::Seeds(format!(
            "`{key}` is not 64 hexadecimal digits; delete it to let policyd make new seeds \
             (the shared counters then start over)"
        ))
    })
}

/// Seeds as 64 hexadecimal digits.
fn seeds_text(seeds: HashSeeds) -> String {
    seeds.0.iter().map(|w| format!("{w:016x}")).collect()
}

/// The seeds of a 64-digit hexadecimal text.
fn parse_seeds(text: &str) -> Option<HashSeeds> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut words = [0u64; 4];
    for (i, word) in words.iter_mut().enumerate() {
        *word = u64::from_str_radix(text.get(i * 16..i * 16 + 16)?, 16).ok()?;
    }
    Some(HashSeeds(words))
}

/// What went wrong in a call.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The pool's own answer (down, out of time).
    Backend(BackendError),
    /// Redis or the connection.
    Redis(redis::RedisError),
    /// The seeds Redis holds are not ours.
    Seeds(String),
}

impl CallError {
    /// The error as the policy sees it.
    fn into_backend(self) -> BackendError {
        match self {
            Self::Backend(e) => e,
            Self::Redis(e) if e.is_timeout() => BackendError::Timeout,
            Self::Redis(e) if is_connection_error(&e) => BackendError::Unavailable,
            Self::Redis(_) | Self::Seeds(_) => BackendError::Failed,
        }
    }
}

/// The TLS error under `e`, if the TLS layer failed (rustls's errors
/// reach the `redis` crate inside an `io::Error`).
fn tls_error(e: &redis::RedisError) -> Option<&rustls::Error> {
    let io = std::error::Error::source(e)?.downcast_ref::<std::io::Error>()?;
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether `e` means the connection is no longer usable (rather than an
/// error answer on a working connection).
pub(crate) fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// A refusal of `limit.lua`: `[2, window, counted, retry or -1]`.
fn limit_verdict(reply: &[i64]) -> Result<Verdict, BackendError> {
    match *reply {
        [0] => Ok(Verdict::Admitted),
        [2, window, counted, retry] => Ok(Verdict::Refused(Refusal {
            window: usize::try_from(window).map_err(|_| BackendError::Failed)?,
            counted: u64::try_from(counted).map_err(|_| BackendError::Failed)?,
            retry_after_ms: u64::try_from(retry).ok(),
        })),
        _ => Err(BackendError::Failed),
    }
}

/// The arguments of `limit_step` (limit.lua) for `call` of `item`.
fn limit_args(item: &Item<'_>, call: &LimitCall<'_>, when: When) -> Vec<Vec<u8>> {
    use redis::ToRedisArgs as _;
    let mut args = Vec::with_capacity(5 + 2 * item.windows.len());
    args.extend(when.now.as_unix_millis().to_redis_args());
    args.extend(call.units.to_redis_args());
    args.extend(u8::from(call.count).to_redis_args());
    args.push(call.key.text.to_vec());
    args.extend(item.windows.len().to_redis_args());
    for (i, window) in item.windows.iter().enumerate() {
        let max = call.maxima.get(i).copied().unwrap_or(window.max());
        args.extend(window.per_ms().to_redis_args());
        args.extend(max.to_redis_args());
    }
    args
}

/// The arguments of `greylist_step` (greylist.lua) for `call` of `item`.
fn greylist_args(
    item: &Item<'_>,
    call: &GreyCall,
    when: When,
) -> Result<Vec<Vec<u8>>, BackendError> {
    use redis::ToRedisArgs as _;
    let timers = item.timers.ok_or(BackendError::Failed)?;
    let mut args = Vec::with_capacity(6);
    args.extend(when.now.as_unix_millis().to_redis_args());
    args.extend(u8::from(call.update).to_redis_args());
    args.extend(timers.delay_ms.to_redis_args());
    args.extend(timers.retry_window_ms.to_redis_args());
    args.extend(timers.max_age_ms.to_redis_args());
    args.extend(timers.auto_whitelist.to_redis_args());
    Ok(args)
}

/// A verdict of `greylist.lua`.
fn grey_verdict(reply: &[i64]) -> Result<GreyVerdict, BackendError> {
    let ms = |v: i64| u64::try_from(v).map_err(|_| BackendError::Failed);
    match *reply {
        [0] => Ok(GreyVerdict::ClientWhitelisted),
        [1] => Ok(GreyVerdict::Known),
        [2, waited] => Ok(GreyVerdict::FirstPass {
            waited_ms: ms(waited)?,
        }),
        [3, retry, first] => Ok(GreyVerdict::Defer {
            retry_after_ms: ms(retry)?,
            first: first == 1,
        }),
        _ => Err(BackendError::Failed),
    }
}

impl Backend for RedisBackend {
    fn limit(
        &self,
        item: Item<'_>,
        call: LimitCall<'_>,
        when: When,
    ) -> Result<Verdict, BackendError> {
        if call.units == 0 {
            return Ok(Verdict::Admitted);
        }
        let mut invocation = self.limit.prepare_invoke();
        invocation
            .key(key_name(&self.prefix, 'l', &item, call.key.hash))
            .arg(limit_args(&item, &call, when));
        let reply: Vec<i64> = self.run(when, &invocation)?;
        limit_verdict(&reply)
    }

    fn refund(
        &self,
        item: Item<'_>,
        key_hash: u64,
        units: u64,
        counted_at: Timestamp,
        when: When,
    ) -> Result<(), BackendError> {
        if units == 0 {
            return Ok(());
        }
        let mut invocation = self.refund.prepare_invoke();
        invocation
            .key(key_name(&self.prefix, 'l', &item, key_hash))
            .arg(counted_at.as_unix_millis())
            .arg(units)
            .arg(item.windows.len());
        for window in item.windows {
            invocation.arg(window.per_ms());
        }
        let _: i64 = self.run(when, &invocation)?;
        Ok(())
    }

    fn greylist(
        &self,
        item: Item<'_>,
        call: GreyCall,
        when: When,
    ) -> Result<GreyVerdict, BackendError> {
        let mut invocation = self.greylist.prepare_invoke();
        invocation
            .key(key_name(&self.prefix, 'c', &item, call.client))
            .key(key_name(&self.prefix, 'g', &item, call.triplet))
            .arg(greylist_args(&item, &call, when)?);
        let reply: Vec<i64> = self.run(when, &invocation)?;
        grey_verdict(&reply)
    }

    fn batch(
        &self,
        calls: &[Batched<'_>],
        when: When,
        out: &mut Vec<Result<BatchAnswer, BackendError>>,
    ) {
        let mut invocation = self.batch.prepare_invoke();
        invocation.arg(calls.len());
        for call in calls {
            match call {
                Batched::Limit { item, call } => {
                    let args = limit_args(item, call, when);
                    invocation
                        .key(key_name(&self.prefix, 'l', item, call.key.hash))
                        .arg("l")
                        .arg(args.len())
                        .arg(args);
                }
                Batched::Greylist { item, call } => {
                    let Ok(args) = greylist_args(item, call, when) else {
                        out.extend(calls.iter().map(|_| Err(BackendError::Failed)));
                        return;
                    };
                    invocation
                        .key(key_name(&self.prefix, 'c', item, call.client))
                        .key(key_name(&self.prefix, 'g', item, call.triplet))
                        .arg("g")
                        .arg(args.len())
                        .arg(args);
                }
            }
        }
        let replies: Result<Vec<Vec<i64>>, BackendError> = self.run(when, &invocation);
        match replies {
            Ok(replies) => {
                for (call, reply) in calls.iter().zip(&replies) {
                    out.push(match call {
                        Batched::Limit { .. } => limit_verdict(reply).map(BatchAnswer::Limit),
                        Batched::Greylist { .. } => grey_verdict(reply).map(BatchAnswer::Greylist),
                    });
                }
            }
            // One round trip: each call has its error.
            Err(e) => out.extend(calls.iter().map(|_| Err(e))),
        }
    }

    fn seeds(&self) -> Option<HashSeeds> {
        Some(self.seeds)
    }
}

/// How long the daemon waits for Redis at start.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Put `state`'s `backend redis` items in Redis as `args` say, at the
/// daemon's start: `state` unchanged when the policy has none (a warning if
/// `--redis` was given all the same), else the state with the backend and
/// its budget. An error (exit code and message) when the policy has such
/// items and no `--redis`, or Redis does not answer.
pub(crate) fn attach(
    args: &RedisArgs,
    state: State,
    policy_name: &str,
) -> Result<State, (u8, String)> {
    let remote = state.uses_remote();
    let Some(url) = &args.url else {
        if remote {
            return Err((
                EX_CONFIG,
                format!(
                    "policy {policy_name} keeps state in Redis (backend redis) but no --redis URL was given"
                ),
            ));
        }
        return Ok(state);
    };
    if !remote {
        log::warning!(
            "--redis is given but no limit or greylist of policy {policy_name} says \
             `backend redis`: Redis is not used"
        );
        return Ok(state);
    }
    let password = match &args.password_file {
        Some(path) => Some(read_password(path).map_err(|e| {
            (
                EX_CONFIG,
                format!("--redis-password-file {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let settings = RedisSettings {
        url: url.clone(),
        password,
        prefix: args.prefix.clone(),
        pool_size: args.pool_size,
        tls: read_tls_files(args).map_err(|e| (EX_CONFIG, e))?,
    };
    let backend = RedisBackend::start(&settings, START_TIMEOUT).map_err(|e| match e {
        StartError::Url(_) => (EX_CONFIG, format!("--redis {}: {e}", redacted(url))),
        StartError::Certificate(_) => {
            let trusted = match &args.ca_file {
                Some(path) => format!(
                    "the certificate must be signed by a CA of --redis-ca-file {} and name \
                     the URL's host",
                    path.display()
                ),
                None => "the certificate must be signed by one of the system's CAs \
                         (/etc/ssl/certs) and name the URL's host; for a private CA, give \
                         its certificate with --redis-ca-file"
                    .to_owned(),
            };
            (
                EX_UNAVAILABLE,
                format!("--redis {}: {e} ({trusted})", redacted(url)),
            )
        }
        StartError::Unreachable(_) | StartError::Seeds(_) | StartError::Tls(_) => {
            (EX_UNAVAILABLE, format!("--redis {}: {e}", redacted(url)))
        }
    })?;
    log::notice!(
        "state in Redis at {} (prefix {}, {} connections, budget {} ms)",
        redacted(url),
        settings.prefix,
        settings.pool_size,
        args.budget.as_millis()
    );
    let budget = u64::try_from(args.budget.as_millis()).unwrap_or(u64::MAX);
    Ok(state
        .with_backend(Arc::new(backend) as Arc<dyn Backend>)
        .with_budget(budget))
}

/// The PEM files of `--redis-ca-file`, `--redis-cert-file` and
/// `--redis-key-file`, read and checked (an error names the option and
/// the file).
pub(crate) fn read_tls_files(args: &RedisArgs) -> Result<TlsSettings, String> {
    let read = |option: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{option} {}: {e}", path.display()))
    };
    let ca_pem = match &args.ca_file {
        Some(path) => {
            let pem = read("--redis-ca-file", path)?;
            check_ca_pem(&pem).map_err(|e| format!("--redis-ca-file {}: {e}", path.display()))?;
            Some(pem)
        }
        None => None,
    };
    let client = match &args.client_cert {
        Some((cert, key)) => {
            let cert_pem = read("--redis-cert-file", cert)?;
            let key_pem = read("--redis-key-file", key)?;
            check_client_cert(&cert_pem, &key_pem).map_err(|e| match e {
                ClientCertError::Cert(e) => format!("--redis-cert-file {}: {e}", cert.display()),
                ClientCertError::Key(e) => format!("--redis-key-file {}: {e}", key.display()),
                ClientCertError::Mismatch(e) => format!(
                    "--redis-key-file {} does not go with the certificate of --redis-cert-file \
                     {}: {e}",
                    key.display(),
                    cert.display()
                ),
            })?;
            Some(ClientCert { cert_pem, key_pem })
        }
        None => None,
    };
    Ok(TlsSettings { ca_pem, client })
}

/// The first line of `path`, without its line end.
pub(crate) fn read_password(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the first line is empty",
        ));
    }
    Ok(line.to_owned())
}

/// `url` with its password, if any, replaced by `***`, for logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}
