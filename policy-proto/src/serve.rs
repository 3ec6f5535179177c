//! A small blocking server loop for embedders: one `Read + Write` stream, one
//! decision function.
//!
//! [`serve()`] (or [`Server::serve`], which keeps its buffers for the next
//! connection) reads requests from the stream, parses each, asks the decision
//! function for the action, and writes the reply, until the peer closes the
//! stream. Connections are persistent and answered one request at a time, as
//! Postfix uses them. Once the buffers have grown, serving a request allocates
//! nothing.
//!
//! On a protocol fault (a [`FrameError`] or a [`ParseError`]) the loop returns
//! the error without writing any reply for the faulty request, as Postfix
//! expects of a policy server: the caller should log it and close the stream;
//! Postfix then retries once and applies its default. Replies to complete,
//! valid requests read before the fault are written first.
//!
//! There is no timeout here: set them on the stream (e.g.
//! [`std::net::TcpStream::set_read_timeout`]); a timeout surfaces as
//! [`ServeError::Io`].

use std::fmt;
use std::io::{self, Read, Write};

use policy_core::request::ParseOptions;
use policy_core::{Action, ParseError, Request};

use crate::encode::{encode, encode_text_action, EncodeError};
use crate::frame::{FrameError, Framer, Limits};

/// Where the decision function writes its answer to one request.
///
/// Answer with [`Responder::action`] (or [`Responder::text_action`]); a later
/// answer replaces an earlier one. A request left unanswered gets
/// `action=DUNNO`, Postfix's "no opinion".
#[derive(Debug)]
pub struct Responder<'a> {
    out: &'a mut Vec<u8>,
    mark: usize,
    answered: bool,
}

impl Responder<'_> {
    /// Answer with `action`.
    pub fn action(&mut self, action: &Action) {
        self.out.truncate(self.mark);
        encode(action, self.out);
        self.answered = true;
    }

    /// Answer with a [`Decision`](policy_core::Decision) of a compiled policy,
    /// templates filled in (see [`encode_decision`](crate::encode_decision)).
    pub fn decision(&mut self, decision: &policy_core::Decision<'_>) {
        self.out.truncate(self.mark);
        crate::encode_decision(decision, self.out);
        self.answered = true;
    }

    /// Answer with `verb` and a text that was not validated in advance (e.g. a
    /// template expanded with client data), sanitized as
    /// [`encode_text_action`] does. On error the previous answer (if any)
    /// stands.
    pub fn text_action(&mut self, verb: &str, text: &[u8]) -> Result<(), EncodeError> {
        // Encode after the current answer, so that a refused verb leaves it
        // intact; then drop the current answer (a move, no allocation).
        let end = self.out.len();
        encode_text_action(verb, text, self.out)?;
        self.out.drain(self.mark..end);
        self.answered = true;
        Ok(())
    }

    /// Whether an answer has been given.
    pub fn is_answered(&self) -> bool {
        self.answered
    }
}

/// Why [`serve()`] stopped before the peer closed the stream between requests.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// Reading or writing the stream failed (a timeout set on the stream
    /// included).
    Io(io::Error),
    /// The bytes are not a sequence of policy requests.
    Frame(FrameError),
    /// A complete request is not valid.
    Parse(ParseError),
    /// The peer closed the stream in the middle of a request.
    UnexpectedEof {
        /// Bytes of the unfinished request.
        buffered: usize,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Frame(e) => write!(f, "protocol error: {e}"),
            Self::Parse(e) => write!(f, "invalid request: {e}"),
            Self::UnexpectedEof { buffered } => write!(
                f,
                "peer closed the connection after {buffered} bytes of a request: expected the rest of it"
            ),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Frame(e) => Some(e),
            Self::Parse(e) => Some(e),
            Self::UnexpectedEof { .. } => None,
        }
    }
}

impl From<io::Error> for ServeError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<FrameError> for ServeError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

impl From<ParseError> for ServeError {
    fn from(e: ParseError) -> Self {
        Self::Parse(e)
    }
}

/// Serve one stream with `decide` until the peer closes it; returns the number
/// of requests answered. See [`Server`] to keep the buffers across connections
/// or to relax the parser.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// use policy_core::{Action, Engine, Policy, Scratch, Timestamp};
/// use policy_proto::{decode_reply, encode_request, serve, Limits};
///
/// let (mut client, mut server) = UnixStream::pair()?;
/// let engine = Engine::new(Policy::always(Action::reject("5.7.1 No thanks")?));
/// let daemon = std::thread::spawn(move || {
///     let mut scratch = Scratch::new();
///     serve(&mut server, Limits::default(), |request, reply| {
///         let now = Timestamp::from_unix_millis(0); // a real server reads the clock
///         reply.decision(&engine.decide(request, now, &mut scratch));
///     })
/// });
///
/// let mut request = Vec::new();
/// encode_request(
///     [(&b"request"[..], &b"smtpd_access_policy"[..]), (b"protocol_state", b"RCPT")],
///     &mut request,
/// )?;
/// client.write_all(&request)?;
/// let mut reply = [0; 64];
/// let n = client.read(&mut reply)?;
/// assert_eq!(&reply[..n], b"action=REJECT 5.7.1 No thanks\n\n");
/// assert_eq!(decode_reply(&reply[..n])?, Action::reject("5.7.1 No thanks")?);
///
/// drop(client); // Postfix closes an idle connection: the server returns
/// assert_eq!(daemon.join().unwrap()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve<S, F>(stream: &mut S, limits: Limits, decide: F) -> Result<u64, ServeError>
where
    S: Read + Write + ?Sized,
    F: FnMut(&Request<'_>, &mut Responder<'_>),
{
    Server::new(limits).serve(stream, decide)
}

/// A reusable server loop: its framer and reply buffer are kept from one
/// connection to the next, so a long-lived worker allocates nothing once they
/// have grown. Memory: at most about [`Limits::max_request_bytes`] plus
/// [`crate::READ_CHUNK_BYTES`] for the framer, plus the largest batch of
/// replies.
#[derive(Debug, Default)]
pub struct Server {
    framer: Framer,
    out: Vec<u8>,
    options: ParseOptions,
}

impl Server {
    /// A server enforcing `limits`, with the strict default parser.
    pub fn new(limits: Limits) -> Self {
        Self::with_framer(Framer::new(limits))
    }

    /// A server using `framer` (e.g. with [`Framer::allow_empty_lines`]).
    pub fn with_framer(framer: Framer) -> Self {
        Self {
            framer,
            out: Vec::new(),
            options: ParseOptions::default(),
        }
    }

    /// Parse requests with `options` instead of the strict defaults.
    #[must_use]
    pub fn parse_options(mut self, options: ParseOptions) -> Self {
        self.options = options;
        self
    }

    /// The framer, as the last [`Server::serve`] left it: after an error,
    /// [`Framer::is_mid_request`] and [`Framer::buffered_len`] tell what was
    /// pending.
    pub fn framer(&self) -> &Framer {
        &self.framer
    }

    /// Serve one stream with `decide` until the peer closes it between
    /// requests; returns the number of requests answered. See [`serve()`].
    pub fn serve<S, F>(&mut self, stream: &mut S, mut decide: F) -> Result<u64, ServeError>
    where
        S: Read + Write + ?Sized,
        F: FnMut(&Request<'_>, &mut Responder<'_>),
    {
        self.framer.reset();
        let mut served = 0u64;
        loop {
            self.out.clear();
            // Answer every complete request read so far (one, from Postfix).
            let fault = loop {
                let frame = match self.framer.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break None,
                    Err(e) => break Some(ServeError::Frame(e)),
                };
                let request = match Request::parse_with(frame, self.options) {
                    Ok(request) => request,
                    Err(e) => break Some(ServeError::Parse(e)),
                };
                let mark = self.out.len();
                let mut responder = Responder {
                    out: &mut self.out,
                    mark,
                    answered: false,
                };
                decide(&request, &mut responder);
                if !responder.answered {
                    encode(&Action::Dunno, &mut self.out);
                }
                served += 1;
            };
            if !self.out.is_empty() {
                let written = stream.write_all(&self.out).and_then(|()| stream.flush());
                // A protocol fault is the more useful report of the two.
                if let Some(fault) = fault {
                    return Err(fault);
                }
                written?;
            } else if let Some(fault) = fault {
                return Err(fault);
            }
            if self.framer.read_from(stream)? == 0 {
                if self.framer.is_mid_request() {
                    return Err(ServeError::UnexpectedEof {
                        buffered: self.framer.buffered_len(),
                    });
                }
                return Ok(served);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory stream: reads from `input` in `chunk`-byte pieces, collects
    /// what is written.
    struct Pipe<'a> {
        input: &'a [u8],
        chunk: usize,
        output: Vec<u8>,
    }

    impl Read for Pipe<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.input.len().min(buf.len()).min(self.chunk);
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    impl Write for Pipe<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const REQ: &[u8] = b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b\n\n";

    fn run(input: &[u8], chunk: usize) -> (Result<u64, ServeError>, Vec<u8>) {
        let mut pipe = Pipe {
            input,
            chunk,
            output: Vec::new(),
        };
        let reject = Action::reject("5.7.1 no").expect("valid action");
        let result = serve(&mut pipe, Limits::default(), |request, reply| {
            if request.sender.domain_is(b"B") {
                reply.action(&reject);
            }
        });
        (result, pipe.output)
    }

    #[test]
    fn table() {
        let two = [REQ, REQ].concat();
        let bad_parse = b"protocol_state=RCPT\n\n";
        let rows: Vec<(Vec<u8>, &str, &[u8])> = vec![
            (Vec::new(), "Ok(0)", b""),
            (REQ.to_vec(), "Ok(1)", b"action=REJECT 5.7.1 no\n\n"),
            (
                two.clone(),
                "Ok(2)",
                b"action=REJECT 5.7.1 no\n\naction=REJECT 5.7.1 no\n\n",
            ),
            (REQ.replace_sender(), "Ok(1)", b"action=DUNNO\n\n"),
            (
                [REQ, &b"junk\n"[..]].concat(),
                "Err(Frame(MissingEquals { line: 5 }))",
                b"action=REJECT 5.7.1 no\n\n",
            ),
            (bad_parse.to_vec(), "Err(Parse(MissingRequest))", b""),
            (
                [REQ, &REQ[..10]].concat(),
                "Err(UnexpectedEof { buffered: 10 })",
                b"action=REJECT 5.7.1 no\n\n",
            ),
        ];
        for (input, want, output) in rows {
            for chunk in [1, 7, 4096] {
                let (result, written) = run(&input, chunk);
                assert_eq!(format!("{result:?}"), want, "{input:?} chunk {chunk}");
                assert_eq!(written, output, "{input:?} chunk {chunk}");
            }
        }
    }

    trait ReplaceSender {
        fn replace_sender(&self) -> Vec<u8>;
    }

    impl ReplaceSender for [u8] {
        fn replace_sender(&self) -> Vec<u8> {
            let text = String::from_utf8_lossy(self).replace("a@b", "a@c");
            text.into_bytes()
        }
    }

    #[test]
    fn responder_answers_replace_each_other() {
        let mut out = b"earlier reply\n\n".to_vec();
        let mark = out.len();
        let mut r = Responder {
            out: &mut out,
            mark,
            answered: false,
        };
        assert!(!r.is_answered());
        r.action(&Action::Ok);
        r.text_action("REJECT", b"no\r\n").unwrap();
        assert_eq!(
            r.text_action("bad verb", b"x"),
            Err(EncodeError::InvalidVerb)
        );
        assert!(r.is_answered());
        assert_eq!(out, b"earlier reply\n\naction=REJECT no\n\n");

        let mut out = Vec::new();
        let mut r = Responder {
            out: &mut out,
            mark: 0,
            answered: false,
        };
        r.text_action("WARN", b"x").unwrap();
        r.action(&Action::Dunno);
        assert_eq!(out, b"action=DUNNO\n\n");
    }

    #[test]
    fn io_errors_surface() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::TimedOut, "stalled"))
            }
        }
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = serve(&mut Broken, Limits::default(), |_, _| {}).unwrap_err();
        assert!(matches!(err, ServeError::Io(ref e) if e.kind() == io::ErrorKind::TimedOut));
        assert!(err.to_string().contains("stalled"));
    }
}
