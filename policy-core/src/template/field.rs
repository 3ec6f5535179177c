//! A [`Var`] as a condition or a limit's key reads it: its type
//! ([`FieldType`], which decides the operators a condition takes) and its
//! value in a request, numbers and IP addresses written as text into a
//! stack buffer ([`TextBuf`]) without allocating.
//!
//! The policy language calls a `Var` read this way a field. The accessors
//! live here, beside `Var`, rather than in the language, because the limit
//! and greylist rules (`limits/`, `greylist/`, below the language) build
//! their keys with them.

use crate::base::bytes::{decimal, dotted_quad};
use std::net::IpAddr;

use super::vars::Var;
use crate::request::Request;

/// How a field's value is typed, which decides the operators it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    /// Text compared case-sensitively.
    Text,
    /// Text compared ignoring ASCII case (addresses, domains, host names).
    TextNoCase,
    /// An envelope address (case-insensitive).
    Address,
    /// A domain or host name (case-insensitive).
    Domain,
    /// A number (`size`, `recipient_count`, ports, key size).
    Number,
    /// An IP address.
    Ip,
    /// The protocol state.
    State,
}

impl Var {
    /// How the field's value is typed.
    pub(crate) fn field_type(self) -> FieldType {
        match self {
            Self::ProtocolState => FieldType::State,
            Self::RecipientCount
            | Self::Size
            | Self::EncryptionKeysize
            | Self::ClientPort
            | Self::ServerPort => FieldType::Number,
            Self::ClientAddress | Self::ServerAddress => FieldType::Ip,
            Self::Sender | Self::Recipient | Self::SaslSender => FieldType::Address,
            Self::HeloName
            | Self::ClientName
            | Self::ReverseClientName
            | Self::EtrnDomain
            | Self::TlsSni
            | Self::SenderDomain
            | Self::RecipientDomain => FieldType::Domain,
            Self::SenderLocal | Self::RecipientLocal => FieldType::TextNoCase,
            _ => FieldType::Text,
        }
    }

    /// The numeric value, for [`FieldType::Number`] fields; `None` when
    /// missing (or for other fields).
    #[inline]
    pub(crate) fn number(self, r: &Request<'_>) -> Option<u64> {
        match self {
            Self::Size => r.size,
            Self::RecipientCount => r.recipient_count.map(u64::from),
            Self::EncryptionKeysize => r.encryption_keysize.map(u64::from),
            Self::ClientPort => r.client_port.map(u64::from),
            Self::ServerPort => r.server_port.map(u64::from),
            _ => None,
        }
    }

    /// The IP value, for [`FieldType::Ip`] fields.
    #[inline]
    pub(crate) fn ip(self, r: &Request<'_>) -> Option<IpAddr> {
        match self {
            Self::ClientAddress => r.client_address,
            Self::ServerAddress => r.server_address,
            _ => None,
        }
    }

    /// The value as text. Typed fields (numbers, IP addresses) are written in
    /// canonical form into `buf`, without allocating; a missing value is empty.
    #[inline]
    pub(crate) fn text<'r>(self, r: &Request<'r>, buf: &'r mut TextBuf) -> &'r [u8] {
        match self {
            Self::Request => r.request,
            Self::ProtocolState => r.protocol_state.map_or(&[][..], |s| s.as_bytes()),
            Self::ProtocolName => r.protocol_name,
            Self::HeloName => r.helo_name,
            Self::QueueId => r.queue_id,
            Self::Sender => r.sender.raw,
            Self::Recipient => r.recipient.raw,
            Self::ClientName => r.client_name,
            Self::ReverseClientName => r.reverse_client_name,
            Self::Instance => r.instance,
            Self::SaslMethod => r.sasl_method,
            Self::SaslUsername => r.sasl_username,
            Self::SaslSender => r.sasl_sender,
            Self::CcertSubject => r.ccert_subject,
            Self::CcertIssuer => r.ccert_issuer,
            Self::CcertFingerprint => r.ccert_fingerprint,
            Self::EncryptionProtocol => r.encryption_protocol,
            Self::EncryptionCipher => r.encryption_cipher,
            Self::EtrnDomain => r.etrn_domain,
            Self::Stress => r.stress,
            Self::CcertPubkeyFingerprint => r.ccert_pubkey_fingerprint,
            Self::PolicyContext => r.policy_context,
            Self::CompatibilityLevel => r.compatibility_level,
            Self::MailVersion => r.mail_version,
            Self::TlsSni => r.tls_sni,
            Self::SenderLocal => r.sender.local,
            Self::SenderDomain => r.sender.domain,
            Self::RecipientLocal => r.recipient.local,
            Self::RecipientDomain => r.recipient.domain,
            // Refused in conditions by the compiler (`lookup_field`).
            Self::Rule
            | Self::Limit
            | Self::Window
            | Self::Counted
            | Self::RetryAfter
            | Self::Key
            | Self::Delay
            | Self::Score
            | Self::ScoreReasons
            | Self::DnsblReason
            | Self::SpfResult
            | Self::SpfExplanation
            | Self::ReceivedSpf => &[],
            Self::RecipientCount
            | Self::Size
            | Self::EncryptionKeysize
            | Self::ClientPort
            | Self::ServerPort => match self.number(r) {
                Some(n) => buf.write_number(n),
                None => &[],
            },
            Self::ClientAddress | Self::ServerAddress => match self.ip(r) {
                Some(ip) => buf.write_ip(ip),
                None => &[],
            },
        }
    }

    /// Whether the field has a value (non-empty text, a number, an address).
    #[inline]
    pub(crate) fn is_set(self, r: &Request<'_>) -> bool {
        match self.field_type() {
            FieldType::Number => self.number(r).is_some(),
            FieldType::Ip => self.ip(r).is_some(),
            FieldType::State => r.protocol_state.is_some(),
            _ => !self.text(r, &mut TextBuf::new()).is_empty(),
        }
    }
}

/// Stack space to write a number or an IP address as text, without allocating.
#[derive(Debug)]
pub(crate) struct TextBuf {
    bytes: [u8; Self::CAPACITY],
}

impl TextBuf {
    /// Enough for the longest IPv6 text form (45 bytes) and any `u64` (20).
    const CAPACITY: usize = 48;

    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; Self::CAPACITY],
        }
    }

    fn write_number(&mut self, n: u64) -> &[u8] {
        let mut buf = [0u8; 20];
        let digits = decimal(n, &mut buf);
        let at = self.bytes.len() - digits.len();
        self.bytes[at..].copy_from_slice(digits);
        &self.bytes[at..]
    }

    /// `ip/bits`, for a masked address in a limit's key.
    pub(crate) fn write_ip_prefix(&mut self, ip: IpAddr, bits: u8) -> &[u8] {
        let mut len = self.put_ip(ip);
        // At most 39 + 4 bytes (IPv4-mapped addresses are masked as IPv4).
        self.bytes[len] = b'/';
        len += 1;
        let mut digits = [0u8; 20];
        let digits = decimal(u64::from(bits), &mut digits);
        self.bytes[len..len + digits.len()].copy_from_slice(digits);
        len += digits.len();
        &self.bytes[..len]
    }

    /// `ip` in its canonical text form (as `Display` writes it).
    pub(crate) fn write_ip(&mut self, ip: IpAddr) -> &[u8] {
        let len = self.put_ip(ip);
        &self.bytes[..len]
    }

    /// Writes `ip` at the start of the buffer as `Display` does (RFC 5952
    /// for IPv6), without `core::fmt` (a third of a limit's decision went to
    /// formatting through it); returns the length.
    fn put_ip(&mut self, ip: IpAddr) -> usize {
        match ip {
            IpAddr::V4(v4) => put_ipv4(v4.octets(), &mut self.bytes),
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    // `::ffff:a.b.c.d`, as Display writes mapped addresses.
                    self.bytes[..7].copy_from_slice(b"::ffff:");
                    return 7 + put_ipv4(v4.octets(), &mut self.bytes[7..]);
                }
                let groups = v6.segments();
                // The longest run of two or more zero groups (the first of
                // equal ones) becomes `::`.
                let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
                for (i, &g) in groups.iter().enumerate() {
                    if g == 0 {
                        if run_len == 0 {
                            run = i;
                        }
                        run_len += 1;
                        if run_len > best_len {
                            (best, best_len) = (run, run_len);
                        }
                    } else {
                        run_len = 0;
                    }
                }
                let mut len = 0;
                let mut i = 0;
                while i < 8 {
                    if best_len >= 2 && i == best {
                        self.bytes[len..len + 2].copy_from_slice(b"::");
                        len += 2;
                        i += best_len;
                        continue;
                    }
                    if i > 0 && !(best_len >= 2 && i == best + best_len) {
                        self.bytes[len] = b':';
                        len += 1;
                    }
                    len += put_hex(groups[i], &mut self.bytes[len..]);
                    i += 1;
                }
                len
            }
        }
    }
}

/// Writes a dotted quad at the start of `out` (at least 15 bytes); returns
/// its length.
fn put_ipv4(octets: [u8; 4], out: &mut [u8]) -> usize {
    let mut text = [0u8; 15];
    let len = dotted_quad(octets, &mut text);
    out[..len].copy_from_slice(&text[..len]);
    len
}

/// Writes a 16-bit group in lower-case hex without leading zeros.
fn put_hex(g: u16, out: &mut [u8]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut len = 0;
    let mut started = false;
    for shift in [12u32, 8, 4, 0] {
        let nibble = usize::from((g >> shift) & 0xf);
        if nibble != 0 || started || shift == 0 {
            out[len] = HEX[nibble];
            len += 1;
            started = true;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written IP text is what `Display` writes, for addresses
        /// with runs of zero groups of every length and position.
        #[test]
        fn ip_text_is_display(groups in proptest::array::uniform8(proptest::prop_oneof![
            3 => proptest::strategy::Just(0u16),
            1 => proptest::strategy::Just(0xffffu16),
            4 => proptest::num::u16::ANY,
        ]), v4 in proptest::num::u32::ANY, bits in 0u8..=128) {
            let mut b = TextBuf::new();
            let v6 = IpAddr::from(std::net::Ipv6Addr::from(groups));
            let v4 = IpAddr::from(std::net::Ipv4Addr::from(v4));
            let mapped = IpAddr::from(std::net::Ipv4Addr::from(u32::from(groups[0])).to_ipv6_mapped());
            for ip in [v6, v4, mapped] {
                let expected = ip.to_string();
                proptest::prop_assert_eq!(b.write_ip(ip), expected.as_bytes());
                let prefixed = format!("{ip}/{bits}");
                proptest::prop_assert_eq!(b.write_ip_prefix(ip, bits), prefixed.as_bytes());
            }
        }
    }

    #[test]
    fn text_buf() {
        let mut b = TextBuf::new();
        assert_eq!(b.write_number(0), b"0");
        assert_eq!(b.write_number(u64::MAX), b"18446744073709551615");
        let ip: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(b.write_ip(ip), ip.to_string().as_bytes());
    }
}
