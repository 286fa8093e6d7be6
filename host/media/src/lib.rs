//! FlowPBX media: the RTP/RTCP relay that anchors every call, G.711 and Opus codecs,
//! SRTP (SDES keys), RFC 4733 DTMF, the prompt player, the recorder, conference rooms and
//! the default prompts.
//!
//! Two layers:
//! - a **sans-IO core** ([`session::Session`] and the modules it uses): bytes and instants
//!   in, bytes, events and deadlines out. It never reads the clock or touches a socket.
//! - a thin **socket layer** ([`engine`]): relay worker threads that own the UDP sockets and
//!   drive the sessions, behind the async [`engine::MediaEngine`] / [`engine::SessionHandle`]
//!   API the B2BUA uses.
//!
//! See `ARCHITECTURE.md` (host/media) for how a B2BUA wires it in.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod error;
pub mod g711;
pub mod jitter;
pub mod latch;
pub mod mixer;
pub mod negotiate;
pub mod player;
pub mod ports;
pub mod prompts;
pub mod record;
pub mod recorder;
pub mod resample;
pub mod rewriter;
pub mod rtcp;
pub mod rtp;
pub mod sdes;
pub mod session;
pub mod srtp;
pub mod stats;
pub mod wav;
pub mod webrtc;

pub use codec::{CodecKind, CodecSpec, OpusSettings};
pub use engine::{
    Conference, ConferenceEvent, ConferenceSettings, ConferenceSummary, EngineConfig, EngineHealth, JoinOptions, LeaveReason, MediaEngine, MediaMetrics,
    Participant, ParticipantInfo, RecordingInfo, SessionControl, SessionHandle,
};
pub use error::{MediaError, Result};
pub use latch::{Learning, StrictRtp};
pub use negotiate::{answer_offer, answer_to_caller, offer_to_callee, plan, LegCodecs, MediaPlan};
pub use player::{PlayRequest, Prompt};
pub use prompts::PromptStore;
pub use record::RecordMode;
pub use sdes::{CryptoAttribute, SdesAnswer, SdesError};
pub use session::{DigitEvent, DtmfSource, MediaDirection, MediaEvent, RemoteMedia, SessionConfig, StreamKind};
pub use srtp::{SrtpContext, SrtpError, SrtpKey, SrtpKeys, SrtpSuite};
pub use stats::{LegStats, SessionStats, StreamStats};

/// One side of a call: A is the caller (the leg that sent the first INVITE), B the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegId {
    /// The caller.
    A,
    /// The callee.
    B,
}

impl LegId {
    /// 0 for A, 1 for B.
    pub fn index(self) -> usize {
        match self {
            LegId::A => 0,
            LegId::B => 1,
        }
    }

    /// The other leg.
    pub fn other(self) -> LegId {
        match self {
            LegId::A => LegId::B,
            LegId::B => LegId::A,
        }
    }
}
