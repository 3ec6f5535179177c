//! The reply sanitizer: untrusted bytes in, one line of valid UTF-8 without
//! control characters out, within a byte budget.
//!
//! This is the one implementation of reply sanitizing in the workspace
//! (ARCHITECTURE.md: "one reply sanitizer"). Template expansion writes every
//! value through [`Sink`]; [`sanitize`] is the same step on its own, for a
//! reply text that is not a template (policy-proto's encoder). Do not write
//! another: change this one.

use crate::base::bytes::printable_ascii_prefix;

/// Append `text` to `out` as at most `max_bytes` bytes of valid UTF-8
/// without control characters: every control character (C0, DEL and C1, CR
/// and LF included) becomes a space, every invalid UTF-8 sequence becomes
/// U+FFFD (one per maximal invalid sequence, as [`String::from_utf8_lossy`]
/// does), and the result is cut on a character boundary so as not to exceed
/// `max_bytes`. Spaces are kept as they are (template expansion, which also
/// trims them, is built on the same code).
///
/// Allocates only if `out` lacks capacity.
///
/// ```
/// let mut out = Vec::new();
/// policy_core::template::sanitize(b"a\r\nb\xffc", 64, &mut out);
/// assert_eq!(out, "a  b\u{fffd}c".as_bytes());
/// ```
pub fn sanitize(text: &[u8], max_bytes: usize, out: &mut Vec<u8>) {
    let start = out.len();
    let mut sink = Sink {
        out,
        start,
        limit: start.saturating_add(max_bytes),
        // Nothing to trim: keep leading spaces, and do not `finish`.
        started: true,
        full: false,
    };
    sink.push_bytes(text);
}

/// Appends sanitized text to a buffer, within a byte budget, without leading
/// or trailing spaces. The sanitizer itself ([`sanitize`] is its untrimmed,
/// public form).
pub(super) struct Sink<'o> {
    out: &'o mut Vec<u8>,
    /// Where this text starts in `out`.
    start: usize,
    /// The length `out` may reach.
    limit: usize,
    /// Whether a non-space character was written (leading spaces are dropped).
    started: bool,
    /// Whether the budget ran out (the text was cut).
    pub(super) full: bool,
}

impl<'o> Sink<'o> {
    pub(super) fn new(out: &'o mut Vec<u8>, budget: usize) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            limit: start + budget,
            started: false,
            full: false,
        }
    }

    /// Append `clean`: valid UTF-8 without control characters (a literal, a
    /// sanitized piece of a value). Cut on a character boundary when the
    /// budget runs out.
    pub(super) fn push_clean(&mut self, mut clean: &[u8]) {
        if !self.started {
            let skip = clean.iter().position(|&b| b != b' ').unwrap_or(clean.len());
            clean = &clean[skip..];
            if clean.is_empty() {
                return;
            }
            self.started = true;
        }
        let room = self.limit - self.out.len();
        if clean.len() <= room {
            self.out.extend_from_slice(clean);
        } else {
            // Back up to a character boundary: not a continuation byte.
            let mut cut = room;
            while cut > 0 && clean[cut] & 0xc0 == 0x80 {
                cut -= 1;
            }
            self.out.extend_from_slice(&clean[..cut]);
            self.full = true;
        }
    }

    /// Append untrusted bytes: control characters as spaces, invalid UTF-8 as
    /// U+FFFD. Printable ASCII (the usual value) is copied in runs; the first
    /// other byte above 0x7f sends the rest through the UTF-8 decoder.
    pub(super) fn push_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.full {
            let run = printable_ascii_prefix(bytes);
            self.push_clean(&bytes[..run]);
            let Some(&b) = bytes.get(run) else {
                return;
            };
            if b < 0x80 {
                // C0 control or DEL.
                self.push_clean(b" ");
                bytes = &bytes[run + 1..];
            } else {
                self.push_utf8(&bytes[run..]);
                return;
            }
        }
    }

    /// The slow path of [`Sink::push_bytes`]: decode, replacing invalid
    /// sequences and control characters.
    fn push_utf8(&mut self, bytes: &[u8]) {
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if self.full {
                    return;
                }
                let c = if c.is_control() { ' ' } else { c };
                let mut buf = [0u8; 4];
                self.push_clean(c.encode_utf8(&mut buf).as_bytes());
            }
            // A character that did not fit ends the text: a U+FFFD after
            // it, though shorter, must not be written in its place.
            if !chunk.invalid().is_empty() && !self.full {
                self.push_clean("\u{fffd}".as_bytes());
            }
        }
    }

    /// Drop trailing spaces; return whether the text was cut.
    pub(super) fn finish(self) -> bool {
        while self.out.len() > self.start && self.out.last() == Some(&b' ') {
            self.out.pop();
        }
        self.full
    }
}
