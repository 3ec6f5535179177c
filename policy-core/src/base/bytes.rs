//! Byte helpers on the hot path: word-at-a-time scans, and (for the crate
//! only: signatures, instance ids, checksums) FNV-1a hashing.
//!
//! The scanners treat a `u64` as eight byte lanes (little-endian, so lane 0
//! is the first byte). Each returns a mask with the high bit of a lane set
//! where that lane is flagged; `mask.trailing_zeros() / 8` is then the index
//! of the first flagged byte. Where a flag is computed with a subtraction, a
//! borrow only propagates upwards, out of a flagged lane, so the *lowest*
//! flagged lane is always exact (lanes above it may be false positives):
//! callers use only the lowest.

/// FNV-1a 64's offset basis: the hash of no bytes, where [`fnv1a`] starts.
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64's prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`, a byte at a time, continuing from `h`
/// ([`FNV_START`] to begin). Stable across builds and processes (for
/// signatures, instance ids and the state file's checksum); no dependency.
/// Any single changed byte changes it: each step `h = (h ^ b) * prime` is a
/// bijection of `h` for a given `b` and of `b` for a given `h`.
#[inline]
pub(crate) fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// A checksum of the FNV-1a family, *not* [`fnv1a`]: FNV-1a's step over
/// little-endian 8-byte words instead of bytes, in four lanes (word `i` into
/// lane `i % 4`) so that the multiplications do not wait on one another, the
/// lanes then folded into one in order, the final bytes (fewer than 8) one at
/// a time. It is a different function from [`fnv1a`] (other results), kept
/// because it is the checksum of the limit and greylist snapshots, a format
/// written to disk: changing it would make every saved state file unreadable.
///
/// As with [`fnv1a`], a change confined to one word (any single changed byte)
/// always changes the result. About 8 times the speed of FNV-1a a byte at a
/// time (a million keys' snapshot: milliseconds, not 100 ms).
pub(crate) fn fnv1a_words(bytes: &[u8]) -> u64 {
    let step = |h: u64, x: u64| (h ^ x).wrapping_mul(FNV_PRIME);
    let mut lanes = [FNV_START; 4];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = step(*lane, word_at(word));
        }
    }
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(8);
    for (lane, word) in lanes.iter_mut().zip(&mut words) {
        *lane = step(*lane, word_at(word));
    }
    let folded = lanes.into_iter().fold(FNV_START, step);
    words
        .remainder()
        .iter()
        .fold(folded, |h, &b| step(h, u64::from(b)))
}

/// The first eight bytes of `chunk` as a little-endian word; missing bytes
/// read as zero (callers pass whole 8-byte chunks).
#[inline]
fn word_at(chunk: &[u8]) -> u64 {
    match chunk.first_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word),
        None => {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            u64::from_le_bytes(word)
        }
    }
}

/// `0x01` in every lane.
pub const ONES: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every lane: the flag bits.
pub const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags the lanes of `w` that are zero (the classic "has zero byte" test).
/// Lowest flagged lane exact.
#[inline]
pub const fn zero_lanes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// Flags the lanes of `w` equal to `b`. Lowest flagged lane exact.
#[inline]
pub const fn lanes_equal(w: u64, b: u8) -> u64 {
    zero_lanes(w ^ (ONES * b as u64))
}

/// Flags the lanes of `w` that are not printable ASCII (space to `~`): below
/// 0x20, 0x7f, or with the high bit set. Lowest flagged lane exact.
#[inline]
pub const fn non_printable_lanes(w: u64) -> u64 {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    (below_space | lanes_equal(w, 0x7f) | w) & HIGHS
}

/// Flags the lanes of `w` whose 7-bit value lies in `lo..=hi`. Every lane is
/// exact: `w7` must have the high bit of every lane clear (then no sum
/// carries into the next lane), and `lo <= hi < 0x80`.
#[inline]
pub const fn lanes_in_range(w7: u64, lo: u8, hi: u8) -> u64 {
    // x + (0x80 - lo) has its high bit set iff x >= lo;
    // x + (0x7f - hi) has its high bit set iff x > hi.
    let at_least_lo = w7.wrapping_add(ONES * (0x80 - lo as u64));
    let above_hi = w7.wrapping_add(ONES * (0x7f - hi as u64));
    at_least_lo & !above_hi & HIGHS
}

/// Whether `b` is printable ASCII (space to `~`).
#[inline]
pub const fn is_printable_ascii(b: u8) -> bool {
    b.wrapping_sub(0x20) < 0x5f
}

/// Runs `flag` on the words of `bytes` and returns the index of the first
/// byte it flags, or `None`; the last bytes (fewer than eight) go through
/// `byte_flag`, which must agree with `flag` byte by byte.
#[inline(always)]
fn first_flagged(
    bytes: &[u8],
    flag: impl Fn(u64) -> u64,
    byte_flag: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let Some(word) = chunk.first_chunk::<8>() else {
            // `chunks_exact(8)` yields 8-byte chunks only.
            break;
        };
        let found = flag(u64::from_le_bytes(*word));
        if found != 0 {
            // trailing_zeros() / 8 < 8: the index of a lane.
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| byte_flag(b))
        .map(|at| offset + at)
}

/// The index of the first `needle` in `haystack`, eight bytes at a time.
///
/// Names and values are short (10-30 bytes): nom's per-byte `take_while` and
/// `take_till` cost about five instructions a byte, and memchr's set-up per
/// call costs more than it saves (`take_until` made the whole request parse
/// 14% more instructions than `take_till`). This word-at-a-time scan took the
/// full 3.x request from 11.4k to 8.9k instructions.
#[inline]
pub fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    first_flagged(haystack, |w| lanes_equal(w, needle), |b| b == needle)
}

/// The length of the run of printable ASCII (space to `~`) at the start of
/// `bytes`, eight bytes at a time. Four times fewer instructions than a byte
/// loop on a typical 20-byte address.
#[inline]
pub fn printable_ascii_prefix(bytes: &[u8]) -> usize {
    first_flagged(bytes, non_printable_lanes, |b| !is_printable_ascii(b)).unwrap_or(bytes.len())
}

/// Writes `n` in decimal at the end of `buf` (`u64::MAX` has 20 digits)
/// and returns the digits. The one decimal writer of the hot path (no
/// `core::fmt`).
#[inline]
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // n % 10 < 10: fits in a u8.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// A score in hundredths as a decimal, as `$score` shows it: `435` ->
/// `4.35`, `-150` -> `-1.5`, `200` -> `2`, `0` -> `0`. Returns the written
/// prefix of `buf`. For the score of [`Decision::score`](crate::Decision::score).
pub fn score(hundredths: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut len = 0;
    let mut push = |bytes: &[u8], buf: &mut [u8; 24]| {
        for &b in bytes {
            if let Some(slot) = buf.get_mut(len) {
                *slot = b;
                len += 1;
            }
        }
    };
    if hundredths < 0 {
        push(b"-", buf);
    }
    let magnitude = hundredths.unsigned_abs();
    let mut digits = [0u8; 20];
    push(decimal(magnitude / 100, &mut digits), buf);
    let fraction = magnitude % 100;
    if fraction != 0 {
        let tens = u8::try_from(fraction / 10).unwrap_or(0);
        let ones = u8::try_from(fraction % 10).unwrap_or(0);
        push(b".", buf);
        push(&[b'0' + tens], buf);
        if ones != 0 {
            push(&[b'0' + ones], buf);
        }
    }
    &buf[..len]
}

/// Writes the dotted quad of `octets` into `out` (the longest,
/// `255.255.255.255`, is 15 bytes) and returns its length.
#[inline]
pub(crate) fn dotted_quad(octets: [u8; 4], out: &mut [u8; 15]) -> usize {
    let mut len = 0;
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let mut buf = [0u8; 20];
        let digits = decimal(u64::from(octet), &mut buf);
        out[len..len + digits.len()].copy_from_slice(digits);
        len += digits.len();
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_as_decimals() {
        let text = |h: i64| {
            let mut buf = [0u8; 24];
            String::from_utf8(score(h, &mut buf).to_vec()).unwrap()
        };
        for (h, expected) in [
            (0, "0"),
            (435, "4.35"),
            (-150, "-1.5"),
            (200, "2"),
            (5, "0.05"),
            (-5, "-0.05"),
            (100_000_000, "1000000"),
            (i64::MIN, "-92233720368547758.08"),
        ] {
            assert_eq!(text(h), expected);
        }
    }

    #[test]
    fn decimal_and_dotted_quad_match_core_fmt() {
        for n in [0u64, 7, 10, 99, 100, 255, 65_535, 4_294_967_296, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
        for octets in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [192, 0, 2, 10],
            [10, 100, 1, 99],
        ] {
            let mut out = [0u8; 15];
            let len = dotted_quad(octets, &mut out);
            let want = std::net::Ipv4Addr::from(octets).to_string();
            assert_eq!(&out[..len], want.as_bytes());
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference (Fowler, Noll, Vo): FNV-1a 64.
        let rows: [(&[u8], u64); 3] = [
            (b"", 0xcbf2_9ce4_8422_2325),
            (b"a", 0xaf63_dc4c_8601_ec8c),
            (b"foobar", 0x8594_4171_f739_67e8),
        ];
        for (input, hash) in rows {
            assert_eq!(fnv1a(FNV_START, input), hash, "{input:?}");
        }
        // Continuing is the same as hashing the concatenation.
        assert_eq!(
            fnv1a(fnv1a(FNV_START, b"foo"), b"bar"),
            fnv1a(FNV_START, b"foobar")
        );
    }

    #[test]
    fn fnv1a_words_is_its_own_format() {
        // Pinned: the snapshot checksum is on disk; it must never change.
        assert_eq!(fnv1a_words(b""), {
            let step = |h: u64, x: u64| (h ^ x).wrapping_mul(FNV_PRIME);
            [FNV_START; 4].into_iter().fold(FNV_START, step)
        });
        let data: Vec<u8> = (0..=70u8).collect();
        for len in 0..data.len() {
            let mut changed = data[..len].to_vec();
            for at in 0..len {
                changed[at] ^= 1;
                assert_ne!(
                    fnv1a_words(&changed),
                    fnv1a_words(&data[..len]),
                    "{len} {at}"
                );
                changed[at] ^= 1;
            }
        }
    }

    #[test]
    fn scanners_agree_with_byte_loops() {
        let mut input = Vec::new();
        for b in 0..=255u8 {
            input.push(b);
            input.extend_from_slice(b"abc=");
        }
        for start in 0..input.len() {
            for len in [0, 1, 7, 8, 9, 17, 40] {
                let Some(bytes) = input.get(start..start + len) else {
                    continue;
                };
                for needle in [b'=', 0, b'\n', 0x80, 0xff] {
                    assert_eq!(
                        find_byte(bytes, needle),
                        bytes.iter().position(|&b| b == needle),
                        "{bytes:?} {needle}"
                    );
                }
                assert_eq!(
                    printable_ascii_prefix(bytes),
                    bytes
                        .iter()
                        .position(|&b| !(b' '..=b'~').contains(&b))
                        .unwrap_or(len),
                    "{bytes:?}"
                );
            }
        }
    }

    #[test]
    fn lanes_in_range_is_exact_in_every_lane() {
        for b in 0..0x80u8 {
            let w = u64::from_le_bytes([b, 0, b'a', 0x7f, b, b'z', b'0', b]);
            let flags = lanes_in_range(w, b'a', b'z');
            for (lane, &x) in w.to_le_bytes().iter().enumerate() {
                let flagged = flags >> (8 * lane) & 0x80 != 0;
                assert_eq!(flagged, x.is_ascii_lowercase(), "{x} in lane {lane}");
            }
        }
    }
}
