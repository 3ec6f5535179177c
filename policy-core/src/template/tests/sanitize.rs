use proptest::prelude::*;

use crate::base::bytes::{is_printable_ascii, printable_ascii_prefix};

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

proptest! {
    #[test]
    fn printable_prefix_agrees_with_a_byte_loop(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let naive = bytes.iter().position(|&b| !(0x20..0x7f).contains(&b)).unwrap_or(bytes.len());
        prop_assert_eq!(printable_ascii_prefix(&bytes), naive);
    }
}
