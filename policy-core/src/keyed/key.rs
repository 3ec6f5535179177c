//! Keys as the tables keep them: hashed with secret seeds ([`HashSeeds`]),
//! and the start of their text kept beside them, to show them ([`KeyText`]).

/// The four seeds of the key hash, `ahash::RandomState::with_seeds(s[0], s[1], s[2], s[3])`.
///
/// Keys are client-controlled (sender addresses, client IPs...): with known
/// seeds, a client could make many keys land in one shard or one hash chain.
/// Draw the seeds at random once, keep them secret, and persist them with
/// the snapshot so that hashes stay the same across restarts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashSeeds(pub [u64; 4]);

impl std::fmt::Debug for HashSeeds {
    // The seeds are a secret: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashSeeds(..)")
    }
}

impl HashSeeds {
    /// Fresh random seeds (ahash's runtime-seeded state: secret, and
    /// different in each process).
    pub fn random() -> Self {
        let state = ahash::RandomState::new();
        Self([
            state.hash_one(0x5eed_0001_u64),
            state.hash_one(0x5eed_0002_u64),
            state.hash_one(0x5eed_0003_u64),
            state.hash_one(0x5eed_0004_u64),
        ])
    }

    pub(crate) fn state(self) -> ahash::RandomState {
        let [a, b, c, d] = self.0;
        ahash::RandomState::with_seeds(a, b, c, d)
    }
}

/// Bytes of a key's text kept per tracked key, for
/// [`LimitTable::top`](crate::limits::LimitTable::top): one
/// length byte and up to `KEY_TEXT_BYTES - 1` = 47 bytes of text. Enough for
/// most addresses, domains and masked IPs whole (a longer text is kept
/// truncated and marked so); small enough that the copy costs less than a
/// cache line per key, made once when a key is first tracked, never per request.
pub const KEY_TEXT_BYTES: usize = 48;

/// The most text bytes kept per key (one of [`KEY_TEXT_BYTES`] holds the length).
const KEY_TEXT_MAX: usize = KEY_TEXT_BYTES - 1;

// The length takes the low 7 bits of the length byte.
const _: () = assert!(KEY_TEXT_MAX < 0x80);

/// Set in the length byte of a stored key text cut to [`KEY_TEXT_MAX`] bytes.
const TEXT_TRUNCATED: u8 = 0x80;

/// A key's text as stored: the length byte (with [`TEXT_TRUNCATED`]), then the text.
pub(crate) type KeyText = [u8; KEY_TEXT_BYTES];

/// The stored form of `text`.
pub(crate) fn key_text(text: &[u8]) -> KeyText {
    let mut out = [0u8; KEY_TEXT_BYTES];
    let n = text.len().min(KEY_TEXT_MAX);
    out[1..=n].copy_from_slice(&text[..n]);
    let flag = if text.len() > KEY_TEXT_MAX {
        TEXT_TRUNCATED
    } else {
        0
    };
    // n <= 47 fits in the low 7 bits.
    out[0] = n as u8 | flag;
    out
}

/// The text and truncation flag of a stored key text (a corrupt length byte
/// is clamped, never out of bounds).
pub(crate) fn stored_text(t: &KeyText) -> (&[u8], bool) {
    let n = usize::from(t[0] & !TEXT_TRUNCATED).min(KEY_TEXT_MAX);
    (&t[1..=n], t[0] & TEXT_TRUNCATED != 0)
}
