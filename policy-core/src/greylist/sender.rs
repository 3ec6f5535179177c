//! The sender as postgrey keys its triplets: [`normalize_sender`].

/// The BATV scheme tag that postgrey recognises (case-sensitive, as postgrey
/// tests the local part before lower-casing it).
const BATV_PREFIX: &[u8] = b"prvs=";

/// How many lower-case letters or digits start a BATV tag value
/// (`K DDD SSSSSS`: key number, day, six hex digits of signature), the test
/// postgrey uses to tell the tag from the user.
const BATV_TAG_LEN: usize = 10;

/// Append to `out` the envelope sender as postgrey 1.37 (the last release;
/// the rules are the same since 1.32) keys its greylisting triplets: the
/// substitutions of postgrey's `do_sender_substitutions`, then the ASCII
/// lower-casing it applies to the whole triplet key. Writes at most
/// `sender.len()` bytes and does not clear `out`, so with enough capacity it
/// allocates nothing, and a caller may build a longer key in one buffer.
///
/// The rules, in order:
///
/// 1. **No `@`: no substitution.** The sender is only lower-cased: the null
///    sender stays empty, `MAILER-DAEMON` becomes `mailer-daemon`,
///    `Joe+x` becomes `joe+x`.
/// 2. **Split at the first `@`** into user and domain; only the user part
///    is rewritten, the domain is kept (and lower-cased):
///    `"a@b"@example.com` has user `"a`.
/// 3. **BATV** (since postgrey 1.32): a user that starts with `prvs=` (lower
///    case) and is made of exactly three `=`-separated fields (empty fields
///    at the end do not count) is replaced by one of the last two: the one
///    that does *not* start with ten lower-case letters or digits (the tag
///    value); when both or neither do, the last one.
///    `prvs=0123456789=joe@example.com` and `prvs=joe=0123456789@example.com`
///    both become `joe@example.com`. `PRVS=...` is not unwrapped.
/// 4. **Extension** (since 1.13): everything from the first `+` is removed
///    (up to a line feed, which Perl's `.` does not cross; Postfix never
///    sends one): `joe+list@example.com` becomes `joe@example.com`,
///    `+x@example.com` becomes `@example.com`.
/// 5. **VERP numbers** (since 1.6): each run of digits that is a whole word
///    (Perl's `\b\d+\b`: neither neighbour is an ASCII letter, digit or `_`)
///    becomes `#`: `bounce-123-4567@lists.example.org` becomes
///    `bounce-#-#@lists.example.org`, `1.2@x` becomes `#.#@x`, while
///    `user123@x` and `12_34@x` stay.
/// 6. **Lower case**, ASCII only (postgrey's `lc` on the bytes it reads):
///    `Joe@Example.COM` becomes `joe@example.com`; bytes outside ASCII,
///    UTF-8 or not, are kept as they are.
///
/// SRS addresses (`SRS0=hash=tt=domain=user@forwarder`) are not unwrapped:
/// postgrey does not, so neither does this.
///
/// ```
/// use policy_core::greylist::normalize_sender;
///
/// let mut key = Vec::new();
/// normalize_sender(b"prvs=0123456789=Bounce+List-42@Lists.Example.ORG", &mut key);
/// assert_eq!(key, b"bounce@lists.example.org");
/// ```
pub fn normalize_sender(sender: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    match sender.iter().position(|&b| b == b'@') {
        None => out.extend_from_slice(sender),
        Some(at) => {
            let user = unwrap_batv(&sender[..at]);
            let (kept, resumed) = strip_extension(user);
            fold_verp_numbers(kept, resumed, out);
            out.extend_from_slice(&sender[at..]);
        }
    }
    out[start..].make_ascii_lowercase();
}

/// Rule 3: the user inside a BATV local part, or `user` itself.
fn unwrap_batv(user: &[u8]) -> &[u8] {
    if !user.starts_with(BATV_PREFIX) {
        return user;
    }
    // Perl's `split(/=/, $user)`: trailing empty fields are dropped.
    let mut fields = user.split(|&b| b == b'=');
    let (Some(_prvs), Some(first), Some(second)) = (fields.next(), fields.next(), fields.next())
    else {
        return user;
    };
    if fields.any(|rest| !rest.is_empty()) {
        return user;
    }
    if second.is_empty() {
        // `prvs=first=`: fewer than three fields once trailing empty ones are dropped.
        return user;
    }
    let tagged = |field: &[u8]| {
        field.len() >= BATV_TAG_LEN
            && field[..BATV_TAG_LEN]
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    if tagged(second) && !tagged(first) {
        first
    } else {
        second
    }
}

/// Rule 4: `user` without its extension, as the kept start and the part after
/// the removed one (empty unless a line feed ended the removal).
fn strip_extension(user: &[u8]) -> (&[u8], &[u8]) {
    match user.iter().position(|&b| b == b'+') {
        None => (user, &[]),
        Some(plus) => {
            let after = &user[plus..];
            let resumed = after
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |lf| &after[lf..]);
            (&user[..plus], resumed)
        }
    }
}

/// Perl's `\w` on the bytes postgrey reads: ASCII letters, digits and `_`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Rule 5: append `first` followed by `second` to `out`, each run of digits
/// that is a whole word replaced by `#`.
fn fold_verp_numbers(first: &[u8], second: &[u8], out: &mut Vec<u8>) {
    let mut bytes = first.iter().chain(second).copied().peekable();
    let mut previous: Option<u8> = None;
    while let Some(b) = bytes.next() {
        if !b.is_ascii_digit() || previous.is_some_and(is_word) {
            out.push(b);
            previous = Some(b);
            continue;
        }
        // A run of digits starting after a non-word byte (or at the start).
        let run_start = out.len();
        out.push(b);
        while let Some(&d) = bytes.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            out.push(d);
            bytes.next();
        }
        let whole_word = bytes.peek().map_or(true, |&next| !is_word(next));
        if whole_word {
            out.truncate(run_start);
            out.push(b'#');
        }
        // The last byte of the run was a digit either way (a word byte).
        previous = Some(b'0');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(sender: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        normalize_sender(sender, &mut out);
        out
    }

    #[test]
    fn batv_fields() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"prvs=0123456789=joe", b"joe"),
            (b"prvs=joe=0123456789", b"joe"),
            (b"prvs=0123456789=abcdefghij", b"abcdefghij"),
            (b"prvs=joe=ann", b"ann"),
            (b"prvs==joe", b"joe"),
            (b"prvs=joe=", b"prvs=joe="),
            (b"prvs=joe==", b"prvs=joe=="),
            (b"prvs=a=b=", b"b"),
            (b"prvs=a=b==", b"b"),
            (b"prvs=a=b=c", b"prvs=a=b=c"),
            (b"prvs=a=b==c", b"prvs=a=b==c"),
            (b"prvs=", b"prvs="),
            (b"prvs==", b"prvs=="),
            (b"prvs===", b"prvs==="),
            (b"prvs=0123456789", b"prvs=0123456789"),
            (b"xprvs=0123456789=joe", b"xprvs=0123456789=joe"),
            (b"prvs=ABCDEFGHIJ=joe", b"joe"),
            (b"prvs=012345678=joe", b"joe"),
        ];
        for (user, expected) in rows {
            assert_eq!(
                unwrap_batv(user),
                *expected,
                "{:?}",
                String::from_utf8_lossy(user)
            );
        }
    }

    #[test]
    fn never_longer_than_the_input() {
        for sender in [&b""[..], b"@", b"a+@", b"1@", b"prvs=1=2@3", b"\n+\n@"] {
            assert!(normalized(sender).len() <= sender.len());
        }
    }

    #[test]
    fn appends_to_out() {
        let mut out = b"10.0.0.0/".to_vec();
        normalize_sender(b"Joe+x@EXAMPLE.com", &mut out);
        assert_eq!(out, b"10.0.0.0/joe@example.com");
    }
}
