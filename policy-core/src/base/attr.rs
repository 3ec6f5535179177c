//! Attribute names: which bytes a name may hold, and the names this version
//! knows.
//!
//! The request parser (`Request::parse`) and the framer in `policy-proto`
//! both check names with this module, so a name (`x!y`) is refused by both or
//! by neither.

use super::bytes::{lanes_equal, lanes_in_range, HIGHS};

/// Every attribute name this version knows (Postfix up to 3.12), in the order
/// Postfix sends them. Each one fills a field of `Request`; any other name is
/// reported by `Request::unknown_attributes`.
pub const KNOWN_ATTRIBUTES: [&str; 32] = [
    "request",
    "protocol_state",
    "protocol_name",
    "helo_name",
    "queue_id",
    "sender",
    "recipient",
    "recipient_count",
    "client_address",
    "client_name",
    "reverse_client_name",
    "instance",
    "sasl_method",
    "sasl_username",
    "sasl_sender",
    "size",
    "ccert_subject",
    "ccert_issuer",
    "ccert_fingerprint",
    "encryption_protocol",
    "encryption_cipher",
    "encryption_keysize",
    "etrn_domain",
    "stress",
    "ccert_pubkey_fingerprint",
    "client_port",
    "policy_context",
    "server_address",
    "server_port",
    "compatibility_level",
    "mail_version",
    "tls_sni",
];

/// Whether `name` is one of [`KNOWN_ATTRIBUTES`] (exact, case-sensitive).
/// Not for the hot path: the request parser has its own dispatch.
pub fn is_known_attribute(name: &[u8]) -> bool {
    KNOWN_ATTRIBUTES
        .iter()
        .any(|known| known.as_bytes() == name)
}

/// Which bytes may appear in a name, as a table: one load per byte.
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_name_byte_const(b as u8);
        b += 1;
    }
    table
};

const fn is_name_byte_const(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'
}

/// Whether `b` may appear in an attribute name:
/// `name = 1*( ALPHA / DIGIT / "_" / "-" / "." )`.
#[inline]
pub fn is_name_byte(b: u8) -> bool {
    NAME_BYTES[usize::from(b)]
}

/// Whether `name` is a valid attribute name: not empty, and every byte
/// [`is_name_byte`].
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_name_byte(b))
}

/// Flags the lanes of `w` (eight bytes, little-endian; see
/// [`bytes`](super::bytes)) that may not be name bytes, cheaply: every byte
/// outside `_`..=`z` (0x5f-0x7a), and `` ` `` (0x60). So every byte that is
/// not [`is_name_byte`] is flagged (`=`, LF and NUL among them), and so are the
/// name bytes outside that range (capitals, digits, `-`, `.`): a caller checks
/// a flagged byte with [`is_name_byte`] and goes on to the next flag when it is
/// one. Postfix's names are lower case and `_`, so on its requests that second
/// check only ever meets the real stop; the test is then as cheap as one range
/// (an exact test of the whole name alphabet costs twice the instructions:
/// 1,350 more on a full request).
///
/// The range's flags are exact in every lane; a `` ` `` flag is exact when it
/// is the lowest (a false one lies above a true `` ` ``, itself a stop).
#[inline]
pub const fn name_stop_candidates(w: u64) -> u64 {
    let outside = !lanes_in_range(w & !HIGHS, b'_', b'z') | w;
    (outside & HIGHS) | lanes_equal(w, b'`')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_candidates_flag_every_non_name_byte() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let mut bytes = *b"a_zzzz_a";
                bytes[lane] = b;
                let flags = name_stop_candidates(u64::from_le_bytes(bytes));
                let fast = b.is_ascii_lowercase() || b == b'_';
                let expected = if fast { 0 } else { 0x80 << (8 * lane) };
                // The lowest flag is exact (a false one may lie above a `).
                let lowest = flags & flags.wrapping_neg();
                assert_eq!(lowest, expected, "byte {b:#x} in lane {lane}");
                // A byte that is not a name byte is always flagged.
                assert!(is_name_byte(b) || flags != 0, "{b:#x}");
            }
        }
    }

    #[test]
    fn names() {
        let rows: [(&[u8], bool); 8] = [
            (b"client_address", true),
            (b"x-y.z_1", true),
            (b"X", true),
            (b"", false),
            (b"x!y", false),
            (b"a b", false),
            (b"caf\xc3\xa9", false),
            (b"a=b", false),
        ];
        for (name, valid) in rows {
            assert_eq!(is_valid_name(name), valid, "{name:?}");
        }
        for name in KNOWN_ATTRIBUTES {
            assert!(is_valid_name(name.as_bytes()) && is_known_attribute(name.as_bytes()));
        }
        assert!(!is_known_attribute(b"Sender"));
    }
}
