//! The crate's error type and its mapping onto the wire.
//!
//! Every failure has one variant in [`Error`]; the narrower enums ([`ParseError`],
//! [`TransactionError`], [`crate::auth::AuthError`], [`DialogError`], [`crate::sdp::SdpError`])
//! convert into it. A [`ParseError`] knows what the transport should do with the message that
//! caused it ([`ParseError::disposition`]): answer with a status and reason phrase, or drop it.

use crate::msg::{HeaderName, Message};

/// Anything this crate can fail with.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A message could not be read.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The transaction layer refused an action.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// Digest authentication failed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A dialog refused a message.
    #[error(transparent)]
    Dialog(#[from] DialogError),
    /// An SDP body could not be read or answered.
    #[error(transparent)]
    Sdp(#[from] crate::sdp::SdpError),
}

/// What the transport does with a message that failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answer the request with this status code and reason phrase (RFC 3261 §21), built with
    /// [`Message::response_to`] from [`ParseError::request`], then forget it.
    Reply(u16, &'static str),
    /// Drop the message silently: it is not SIP, it is a response, or it is too large.
    Drop,
}

/// What is wrong with a message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Larger than the limit (64 KiB by default). Dropped; on a stream the connection is
    /// closed.
    TooLarge,
    /// The start line is neither a request line nor a status line.
    BadStartLine,
    /// The request line has the right shape but a broken Request-URI (spaces, `<>`).
    BadRequestUri,
    /// A Request-URI whose scheme is not sip, sips or tel (416).
    UnsupportedUriScheme,
    /// A version other than SIP/2.0 (505).
    BadVersion,
    /// A header line without a colon or with an invalid name.
    BadHeaderLine,
    /// The header section is not UTF-8 or contains NUL or control characters.
    BadEncoding,
    /// The body is shorter than Content-Length says, or Content-Length is not a number.
    BadContentLength,
    /// A mandatory header is absent.
    Missing(HeaderName),
    /// A header that must appear once appears several times with different values.
    Duplicate(HeaderName),
    /// A header's value does not parse.
    Bad(HeaderName),
    /// The CSeq method differs from the request method.
    CSeqMethodMismatch,
}

impl ParseErrorKind {
    /// The reason phrase of the answer, naming what is wrong ("Missing Call-ID", "Bad CSeq").
    pub fn reason(self) -> &'static str {
        use HeaderName as H;
        match self {
            ParseErrorKind::TooLarge => "Message Too Large",
            ParseErrorKind::BadStartLine => "Bad Start Line",
            ParseErrorKind::BadRequestUri => "Bad Request-URI",
            ParseErrorKind::UnsupportedUriScheme => "Unsupported URI Scheme",
            ParseErrorKind::BadVersion => "Version Not Supported",
            ParseErrorKind::BadHeaderLine => "Bad Header Line",
            ParseErrorKind::BadEncoding => "Bad Character In Header",
            ParseErrorKind::BadContentLength => "Bad Content-Length",
            ParseErrorKind::CSeqMethodMismatch => "CSeq Method Mismatch",
            ParseErrorKind::Missing(h) => match h {
                H::Via => "Missing Via",
                H::From => "Missing From",
                H::To => "Missing To",
                H::CallId => "Missing Call-ID",
                H::CSeq => "Missing CSeq",
                H::MaxForwards => "Missing Max-Forwards",
                _ => "Missing Header",
            },
            ParseErrorKind::Duplicate(h) => match h {
                H::From => "Duplicate From",
                H::To => "Duplicate To",
                H::CallId => "Duplicate Call-ID",
                H::CSeq => "Duplicate CSeq",
                H::MaxForwards => "Duplicate Max-Forwards",
                H::ContentLength => "Bad Content-Length",
                _ => "Duplicate Header",
            },
            ParseErrorKind::Bad(h) => match h {
                H::Via => "Bad Via",
                H::From => "Bad From",
                H::To => "Bad To",
                H::CallId => "Bad Call-ID",
                H::CSeq => "Bad CSeq",
                H::MaxForwards => "Bad Max-Forwards",
                H::Contact => "Bad Contact",
                H::Expires => "Bad Expires",
                H::ContentLength => "Bad Content-Length",
                H::Route => "Bad Route",
                H::RecordRoute => "Bad Record-Route",
                H::SessionExpires => "Bad Session-Expires",
                H::MinSe => "Bad Min-SE",
                _ => "Bad Header",
            },
        }
    }
}

/// A message that could not be read, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", kind.reason())]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Whether the message was a request (only requests are ever answered).
    pub is_request: bool,
    /// The request as far as it could be read, for building the error response.
    partial: Option<Box<Message>>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, is_request: bool) -> Self {
        ParseError { kind, is_request, partial: None }
    }

    pub(crate) fn with_partial(mut self, msg: Message) -> Self {
        if self.is_request {
            self.partial = Some(Box::new(msg));
        }
        self
    }

    /// What the transport should do: answer requests with a 4xx/5xx whose reason names the
    /// problem, drop everything else (responses, garbage, over-size messages, requests whose
    /// headers are too broken to address an answer to).
    pub fn disposition(&self) -> Disposition {
        if !self.is_request || self.kind == ParseErrorKind::TooLarge || self.partial.is_none() {
            return Disposition::Drop;
        }
        // An answer needs somewhere to go and something to match: without a usable top Via
        // (or Call-ID/CSeq/From/To) there is no way to address it, so stay silent.
        let Some(req) = self.partial.as_deref() else { return Disposition::Drop };
        if !req.is_addressable() {
            return Disposition::Drop;
        }
        let code = match self.kind {
            ParseErrorKind::UnsupportedUriScheme => 416,
            ParseErrorKind::BadVersion => 505,
            _ => 400,
        };
        Disposition::Reply(code, self.kind.reason())
    }

    /// The request as far as it could be read (start line and header lines), present when the
    /// disposition is [`Disposition::Reply`]. Build the answer with [`Message::response_to`].
    pub fn request(&self) -> Option<&Message> {
        self.partial.as_deref()
    }
}

/// Why the transaction layer refused an action.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// The transaction does not exist (any more).
    #[error("no such transaction")]
    NoSuchTransaction,
    /// The transaction has already sent its final response.
    #[error("transaction already completed")]
    AlreadyCompleted,
    /// The message given does not fit the action (a response where a request was expected,
    /// a request without a top Via branch, an ACK given to `send_request`, ...).
    #[error("invalid message for this action: {0}")]
    InvalidMessage(&'static str),
    /// A request with this branch and method is already in progress.
    #[error("duplicate transaction")]
    Duplicate,
}

/// Why a dialog refused a message or an action.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// The message lacks what a dialog needs (To-tag, Contact, Call-ID, ...).
    #[error("message cannot create or update a dialog: {0}")]
    InvalidMessage(&'static str),
    /// The message belongs to another dialog.
    #[error("message does not belong to this dialog")]
    WrongDialog,
    /// A request whose CSeq is not higher than the last one: answer 500 (RFC 3261 §12.2.2).
    #[error("CSeq out of order")]
    CSeqOutOfOrder,
    /// The dialog is terminated.
    #[error("dialog terminated")]
    Terminated,
    /// Session-Expires below our Min-SE: answer 422 with our Min-SE (RFC 4028 §8.1).
    #[error("session interval too small, minimum {0} s")]
    SessionIntervalTooSmall(u32),
}

impl DialogError {
    /// The status code and reason to answer the offending request with, if any.
    pub fn status(&self) -> Option<(u16, &'static str)> {
        match self {
            DialogError::CSeqOutOfOrder => Some((500, "CSeq Out of Order")),
            DialogError::WrongDialog | DialogError::Terminated => Some((481, "Call/Transaction Does Not Exist")),
            DialogError::SessionIntervalTooSmall(_) => Some((422, "Session Interval Too Small")),
            DialogError::InvalidMessage(_) => Some((400, "Bad Request")),
        }
    }
}
