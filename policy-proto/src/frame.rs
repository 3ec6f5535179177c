//! The framer: bytes in, complete request frames out.

/// Limits the framer enforces before anything is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes in one request, including newlines.
    pub max_request_bytes: usize,
    /// Most bytes in one `name=value` line, including its newline.
    pub max_line_bytes: usize,
    /// Most attribute lines in one request.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 * 1024,
            max_line_bytes: 4096,
            max_attributes: 128,
        }
    }
}

/// Why the byte stream is not a sequence of policy requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Placeholder until filled in: replaced by precise variants.
    Invalid(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(what) => write!(f, "invalid frame: {what}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into complete request frames.
#[derive(Debug, Default)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
}

impl Framer {
    /// A framer enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
        }
    }

    /// Append bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let _ = self.limits;
        todo!("issue 2: framer")
    }
}
