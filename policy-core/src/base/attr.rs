//! Attribute names: which bytes a name may hold, and the names this version
//! knows.
//!
//! The request parser (`Request::parse`) and the framer in `policy-proto`
//! both check names with this module, so a name (`x!y`) is refused by both or
//! by neither.

use super::bytes::{lanes_in_range, HIGHS, ONES};

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
/// [`bytes`](super::bytes)) that are not [`is_name_byte`]. Every lane is
/// exact.
#[inline]
pub const fn non_name_lanes(w: u64) -> u64 {
    let high = w & HIGHS;
    let w7 = w & !HIGHS;
    // Setting bit 5 maps 'A'..='Z' onto 'a'..='z' (and other bytes elsewhere,
    // but only letters land in 'a'..='z').
    let letter = lanes_in_range(w7 | (ONES * 0x20), b'a', b'z');
    let digit = lanes_in_range(w7, b'0', b'9');
    let punct = lanes_in_range(w7, b'_', b'_') | lanes_in_range(w7, b'-', b'.');
    // A byte with its high bit set is never a name byte (its 7-bit value may
    // look like one).
    (!(letter | digit | punct) | high) & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_name_lanes_agrees_with_the_table() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[lane] = b;
                let flags = non_name_lanes(u64::from_le_bytes(bytes));
                let expected = if is_name_byte(b) {
                    0
                } else {
                    0x80 << (8 * lane)
                };
                assert_eq!(flags, expected, "byte {b:#x} in lane {lane}");
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
