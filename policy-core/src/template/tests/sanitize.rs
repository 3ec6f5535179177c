use proptest::prelude::*;

use crate::base::bytes::{is_printable_ascii, printable_ascii_prefix};
use crate::template::sanitize;

#[test]
fn printable_prefix_every_byte_in_every_lane() {
    for b in 0..=255u8 {
        for lane in 0..17 {
            let mut bytes = vec![b'a'; 17];
            bytes[lane] = b;
            let expected = if is_printable_ascii(b) { 17 } else { lane };
            assert_eq!(
                printable_ascii_prefix(&bytes),
                expected,
                "byte {b:#x} at {lane}"
            );
        }
    }
}

#[test]
fn sanitize_table() {
    // (input, max_bytes, output); the rows of policy-proto's own `sanitize`
    // test, which this function is to replace, and then some.
    let rows: &[(&[u8], usize, &str)] = &[
        (b"", 10, ""),
        (b"plain text", 100, "plain text"),
        (b"a\rb\nc\td\0e\x7f", 100, "a b c d e "),
        (b"caf\xc3\xa9", 100, "caf\u{e9}"),
        (b"\xc2\x85next line", 100, " next line"),
        (b"bad\xff\xfe!", 100, "bad\u{fffd}\u{fffd}!"),
        (b"trunc\xe2\x82", 100, "trunc\u{fffd}"),
        (b"abcdef", 3, "abc"),
        (b"ab\xc3\xa9", 3, "ab"),
        (b"ab\xc3\xa9", 4, "ab\u{e9}"),
        (b"\xff", 2, ""),
        (b"\xff", 3, "\u{fffd}"),
        // Spaces are kept: no trimming here.
        (b"  a b  ", 100, "  a b  "),
        (b"\r\n", 100, "  "),
        // No budget at all.
        (b"a\xffb", usize::MAX, "a\u{fffd}b"),
        (b"abc", 0, ""),
    ];
    for (input, max, want) in rows {
        let mut out = b"x".to_vec();
        sanitize(input, *max, &mut out);
        assert_eq!(&out[1..], want.as_bytes(), "{input:?} max {max}");
    }
}

/// What [`sanitize`] promises, written the slow and obvious way.
fn sanitize_reference(text: &[u8], max_bytes: usize) -> Vec<u8> {
    let mut out = String::new();
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid().chars();
        let replaced = valid.map(|c| if c.is_control() { ' ' } else { c });
        let invalid = (!chunk.invalid().is_empty()).then_some('\u{fffd}');
        for c in replaced.chain(invalid) {
            if out.len() + c.len_utf8() > max_bytes {
                return out.into_bytes();
            }
            out.push(c);
        }
    }
    out.into_bytes()
}

proptest! {
    #[test]
    fn printable_prefix_agrees_with_a_byte_loop(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let naive = bytes.iter().position(|&b| !(0x20..0x7f).contains(&b)).unwrap_or(bytes.len());
        prop_assert_eq!(printable_ascii_prefix(&bytes), naive);
    }

    #[test]
    fn sanitize_agrees_with_its_reference(
        text in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..60),
            proptest::collection::vec(
                prop_oneof![
                    Just(b' '), Just(b'\r'), Just(b'\n'), Just(0x7f), Just(b'a'),
                    Just(0xc2), Just(0x85), Just(0xc3), Just(0xa9), Just(0xe2), Just(0xff),
                ],
                0..30
            ),
        ],
        max_bytes in prop_oneof![0usize..70, Just(usize::MAX)],
    ) {
        let mut out = b"prefix".to_vec();
        sanitize(&text, max_bytes, &mut out);
        prop_assert_eq!(&out[..6], b"prefix");
        let appended = &out[6..];
        let expected = sanitize_reference(&text, max_bytes);
        prop_assert_eq!(appended, expected.as_slice());
        prop_assert!(appended.len() <= max_bytes);
        let appended = std::str::from_utf8(appended);
        prop_assert!(appended.is_ok());
        prop_assert!(!appended.unwrap_or_default().chars().any(char::is_control));
    }
}
