//! The crate's error type.

/// What the PBX can fail with.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// A socket could not be opened or bound.
    #[error("SIP {what} socket on {addr}: {source}")]
    Bind {
        /// `UDP`, `TCP` or `TLS`.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The event loop could not start.
    #[error("SIP event loop: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the directory or the registrations from the store failed.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// The PBX has stopped.
    #[error("the SIP stack has stopped")]
    Stopped,
    /// The call does not exist (any more).
    #[error("no such call")]
    NoSuchCall,
    /// The trunk is not an enabled trunk the SIP stack holds.
    #[error("no such enabled trunk")]
    NoSuchTrunk,
    /// The call is not in a state that allows this operation (ringing twice, ...).
    #[error("invalid call state: {0}")]
    InvalidState(&'static str),
    /// A SIP-level failure.
    #[error(transparent)]
    Sip(#[from] sip::Error),
}
