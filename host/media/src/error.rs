//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the media crate.
///
/// Callers map it onto the wire where it meets it: [`MediaError::UnreadableAudio`] is an HTTP 422
/// for a prompt upload, [`MediaError::NoCommonCodec`] a SIP 488, [`MediaError::PortsExhausted`]
/// a SIP 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// An RTP packet that is too short or has an inconsistent header.
    #[error("malformed RTP packet: {0}")]
    MalformedRtp(&'static str),
    /// An RTCP packet or compound that does not parse.
    #[error("malformed RTCP packet: {0}")]
    MalformedRtcp(&'static str),
    /// A codec the crate cannot encode or decode.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// Offer/answer found no codec both sides (or the crate) can use.
    #[error("no common or transcodable codec")]
    NoCommonCodec,
    /// The codec library failed (Opus).
    #[error("codec error: {0}")]
    Codec(String),
    /// A DTMF digit or SIP INFO body that does not parse.
    #[error("invalid DTMF: {0}")]
    InvalidDtmf(String),
    /// An audio file that cannot be read or converted; the API answers 422 with this text.
    #[error("cannot read audio: {0}")]
    UnreadableAudio(String),
    /// A prompt name that is not a plain file name, or a prompt that does not exist.
    #[error("prompt not found: {0}")]
    PromptNotFound(String),
    /// Every RTP port pair of the configured range is in use.
    #[error("no free RTP port pair in {min}-{max}")]
    PortsExhausted {
        /// Lowest port of the range.
        min: u16,
        /// Highest port of the range.
        max: u16,
    },
    /// Recording skipped: free disk space is below the configured threshold.
    #[error("recording skipped: {free} bytes free under {path:?}, threshold {threshold}")]
    DiskFull {
        /// Where the space was measured.
        path: PathBuf,
        /// Free bytes available to unprivileged users.
        free: u64,
        /// The configured minimum.
        threshold: u64,
    },
    /// The session was closed (or its engine stopped) before the request could be served.
    #[error("media session closed")]
    SessionClosed,
    /// The conference already has its maximum number of participants.
    #[error("the conference is full ({max} participants)")]
    ConferenceFull {
        /// The maximum.
        max: usize,
    },
    /// The participant (or leg) is not in that conference.
    #[error("not in the conference")]
    NotInConference,
    /// An invalid configuration value.
    #[error("invalid media configuration: {0}")]
    Config(String),
    /// An operating-system error (sockets, files).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;
