//! What the PBX shares with the rest of the process: the bindings, a view of the calls in
//! progress, counters, and a broadcast of events (for the API's WebSocket). Written by the
//! event loop only; read from anywhere.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::{broadcast, mpsc};

use crate::registrar::{Bindings, ChangeAction};
use crate::IncomingCall;

/// The PBX's name for a call: what the handle's operations, the media session, the CDR
/// writer and the events use. Unique for the life of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(u64);

impl CallKey {
    /// The key after this one.
    pub(crate) fn next(self) -> CallKey {
        CallKey(self.0 + 1)
    }

    /// The number, for logs and wire formats that want one.
    pub fn get(self) -> u64 {
        self.0
    }

    /// A key from its number (a test's, or one read back from a wire format).
    pub fn from_raw(n: u64) -> CallKey {
        CallKey(n)
    }
}

impl std::fmt::Display for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for CallKey {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(CallKey)
    }
}

/// A call in progress, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCall {
    /// The PBX's key for the call (what `ring`/`hangup` take).
    pub key: CallKey,
    /// The caller's Call-ID.
    pub call_id: String,
    /// Internal or inbound.
    pub direction: store::CallDirection,
    /// The caller's name, when known.
    pub caller_id_name: Option<String>,
    /// The caller's number.
    pub caller_id_num: String,
    /// The number dialled.
    pub callee: String,
    /// Where it is.
    pub state: CallState,
    /// When it started, Unix milliseconds.
    pub started_at_ms: i64,
    /// When it was answered, Unix milliseconds.
    pub answered_at_ms: Option<i64>,
    /// The caller's leg is encrypted: its SRTP suite (None: plain RTP, or no media yet).
    pub caller_srtp: Option<&'static str>,
    /// The callee's leg is encrypted: its SRTP suite.
    pub callee_srtp: Option<&'static str>,
}

/// The state of a call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Arrived; waiting for a route or a controller.
    Routing,
    /// Extensions are ringing.
    Ringing,
    /// Answered and bridged.
    Answered,
}

impl CallState {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Routing => "in_flow",
            CallState::Ringing => "ringing",
            CallState::Answered => "bridged",
        }
    }
}

/// Something that happened, for subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PbxEvent {
    /// An extension's contacts changed.
    Registration {
        /// The extension.
        extension_id: i64,
        /// Its live contacts now.
        count: usize,
        /// What happened.
        action: ChangeAction,
    },
    /// A call started.
    CallStarted(ActiveCall),
    /// A call changed state.
    CallUpdated(ActiveCall),
    /// A call ended.
    CallEnded {
        /// The call.
        key: CallKey,
        /// How it ended, for the CDR.
        disposition: store::CallDisposition,
        /// The hangup cause.
        cause: &'static str,
    },
    /// An outbound call was refused, or ended, by a toll-fraud limit (or a class the
    /// extension may not call).
    OutboundLimit {
        /// The extension.
        extension_id: i64,
        /// The number it dialled.
        number: String,
        /// Which: `extension_concurrent_calls`, `pbx_concurrent_calls`, `daily_minutes`,
        /// `class_not_permitted`.
        limit: &'static str,
    },
    /// A trunk's registration or reachability changed.
    TrunkStatus(crate::trunks::TrunkStatus),
    /// A caller left a voicemail message (the flow engine's voicemail, through
    /// `PbxHandle::voicemail_left`).
    VoicemailLeft {
        /// The box.
        mailbox_id: i64,
        /// The message's row.
        message_id: i64,
        /// The caller's number.
        caller_id_num: Option<String>,
        /// The caller's name.
        caller_id_name: Option<String>,
        /// Seconds of audio.
        duration: i64,
    },
    /// A source was banned after repeated failed authentications.
    SourceBanned {
        /// The address.
        ip: IpAddr,
        /// For how long, seconds.
        until_secs: u64,
    },
}

/// Message counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams and frames received.
    pub received: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Sends that failed (buffer full, connection gone).
    pub send_errors: AtomicU64,
    /// WebSocket frames and handshakes dropped: protocol errors, messages that are not SIP.
    pub ws_dropped: AtomicU64,
}

/// What the SIP stack's in-memory directory holds (it follows the store within a refresh
/// interval).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryCounts {
    /// Extensions.
    pub extensions: usize,
    /// Enabled `ip` trunks (trusted by source address).
    pub trusted_trunks: usize,
    /// Enabled inbound numbers.
    pub numbers: usize,
}

/// The state shared between the event loop and the handle.
pub struct Shared {
    pub(crate) bindings: Bindings,
    pub(crate) calls: DashMap<CallKey, ActiveCall>,
    events: broadcast::Sender<PbxEvent>,
    pub(crate) counters: Counters,
    /// The metrics endpoint's counters.
    pub(crate) metrics: crate::metrics::Metrics,
    /// The SIP message viewer's last messages per call (filled only while the SIP log is on).
    pub(crate) sip_trace: Mutex<crate::sip_trace::TraceStore>,
    /// Set while draining: new calls and OPTIONS are refused with 503 (the event loop reads
    /// it at every request, the binary sets it).
    pub(crate) draining: AtomicBool,
    /// Whether the event loop runs.
    pub(crate) running: AtomicBool,
    /// Security counters, refreshed by the loop.
    pub(crate) guard: Mutex<crate::security::GuardStats>,
    /// What the directory in use holds.
    pub(crate) directory: Mutex<DirectoryCounts>,
    /// Each anchored call's media, by call key (the flow controller plays and listens there).
    pub(crate) media: Arc<DashMap<CallKey, Arc<crate::anchor::CallMedia>>>,
    /// Every enabled trunk's registration and reachability.
    pub(crate) trunks: DashMap<i64, crate::trunks::TrunkStatus>,
    /// Each extension's SIP event subscriptions (MWI), refreshed by the loop.
    pub(crate) subscriptions: DashMap<i64, Vec<crate::subscriptions::SubscriptionInfo>>,
    incoming_tx: mpsc::UnboundedSender<IncomingCall>,
    incoming_rx: Mutex<Option<mpsc::UnboundedReceiver<IncomingCall>>>,
    incoming_taken: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        let (events, _) = broadcast::channel(1024);
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        Arc::new(Shared {
            bindings: Arc::new(DashMap::new()),
            calls: DashMap::new(),
            events,
            counters: Counters::default(),
            metrics: crate::metrics::Metrics::default(),
            sip_trace: Mutex::new(Default::default()),
            draining: AtomicBool::new(false),
            running: AtomicBool::new(false),
            guard: Mutex::new(Default::default()),
            directory: Mutex::new(DirectoryCounts::default()),
            media: Arc::new(DashMap::new()),
            trunks: DashMap::new(),
            subscriptions: DashMap::new(),
            incoming_tx,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            incoming_taken: AtomicBool::new(false),
        })
    }

    /// Sends an event if anyone listens (the event is only built then).
    pub(crate) fn emit(&self, f: impl FnOnce() -> PbxEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(f());
        }
    }

    pub(crate) fn set_directory_counts(&self, d: &crate::Directory) {
        let (t, n) = d.trunk_and_number_counts();
        if let Ok(mut c) = self.directory.lock() {
            *c = DirectoryCounts { extensions: d.user_count(), trusted_trunks: t, numbers: n };
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<PbxEvent> {
        self.events.subscribe()
    }

    /// Takes the receiver of inbound calls (once): from then on calls to inbound numbers go
    /// to it (without a receiver they are refused with 480).
    pub(crate) fn take_incoming(&self) -> Option<mpsc::UnboundedReceiver<IncomingCall>> {
        let rx = self.incoming_rx.lock().ok()?.take()?;
        self.incoming_taken.store(true, Ordering::Release);
        Some(rx)
    }

    /// Hands an inbound call to the controller; false when nobody takes calls.
    pub(crate) fn hand_off(&self, call: IncomingCall) -> bool {
        if !self.incoming_taken.load(Ordering::Acquire) {
            return false;
        }
        if self.incoming_tx.send(call).is_err() {
            self.incoming_taken.store(false, Ordering::Release);
            return false;
        }
        true
    }
}
