//! FlowPBX's SIP protocol core, **sans-IO**: it never reads a clock, never touches a socket
//! and never spawns a task. Bytes and instants go in; messages, bytes to send, events and
//! deadlines come out. The `call` crate owns the sockets and the clock and drives it.
//!
//! - [`msg`]: messages. [`Message::parse`] for a datagram, [`StreamFramer`] for TCP/TLS,
//!   typed getters ([`Message::top_via`], [`Message::cseq`], ...), builders
//!   ([`Message::request`], [`Message::response_to`]) and [`Message::to_bytes`].
//! - [`transaction`]: the RFC 3261 §17 transaction layer, [`TransactionLayer`], driven like
//!   quinn-proto: `handle_*` in, `poll_*` out.
//! - [`dialog`]: RFC 3261 §12 dialogs and RFC 4028 session timers.
//! - [`auth`]: digest authentication (RFC 7616/2617), server and client side.
//! - [`sdp`]: SDP parse/build and offer/answer (RFC 4566/3264).
//!
//! Errors: one [`Error`] enum; a [`ParseError`] says whether to answer (and with what status
//! and reason) or to drop the message.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod dialog;
mod error;
mod ids;
pub mod msg;
pub mod sdp;
mod time;
pub mod transaction;

pub use error::{DialogError, Disposition, Error, ParseError, ParseErrorKind, TransactionError};
pub use ids::IdGenerator;
pub use msg::{HeaderName, Message, Method, StreamFramer};
pub use time::Instant;
pub use transaction::TransactionLayer;
