//! The B2BUA: every call is an A leg (the caller's INVITE, answered by us) and B legs (one
//! INVITE per contact rung, each its own dialog and Call-ID). The first 2xx wins; the other
//! legs are cancelled. Requests inside a confirmed call are relayed leg to leg.
//!
//! **The media seam.** SDP crosses from one leg to the other in exactly one place,
//! [`Core::sdp_across`] (crossing.rs): every call's media is anchored in a media session
//! opened when the call arrives, each leg's SDP is read for the session and rewritten with
//! FlowPBX's address, ports and negotiated codecs.
//!
//! **The controller seam.** Ringing is a job with a completion: the built-in routing
//! (extension dials extension, a trusted trunk's number) answers the caller itself when the
//! job fails; an async controller (the flow engine, through [`crate::PbxHandle::ring`]) gets
//! the outcome and decides what comes next.

mod crossing;
mod follow_me;
mod replaces;
mod table;
mod transfer;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sip::dialog::{Dialog, SessionTimer, SessionTimerConfig};
use sip::msg::{name_addr, HeaderInjection, SipUriBuilder};
use sip::transaction::{cancel_for, ClientTxId, Peer, ServerTxId};
use sip::{HeaderName, Instant, Message, Method};
use store::{CallDirection, CallDisposition, CdrEnd, NewCdr, SrtpPolicy};
use tokio::sync::oneshot;

use crate::anchor::MediaPort;
use crate::clock::wall;
use crate::core::ALLOW;
use crate::directory::{Directory, User};
use crate::events::{ActiveCall, CallKey, CallState, PbxEvent, Shared};
use crate::persist::PersistOp;
use crate::registrar::Registrar;
use crate::sdp_media::is_sdp;
use crate::signalling::Signalling;
use crate::{CallError, IncomingCall, RingOutcome, RingRequest};
use crossing::{fault_status, leg as media_leg, SdpKind, SdpState};
use table::CallTable;

/// What a B2BUA input runs with: the signalling it writes through, and the directory and
/// registrations it reads. Borrowed from the core for one input.
pub(crate) struct Ctx<'a> {
    pub sig: &'a mut Signalling,
    pub dir: &'a Directory,
    pub registrar: &'a Registrar,
    /// Which trunks are up.
    pub trunks: &'a crate::trunks::Trunks,
}

/// What the async world asks of a call (a controller's action, a media event).
pub(crate) enum CallCommand {
    /// Ring extensions for a call held by an async controller.
    Ring { call: CallKey, request: RingRequest, reply: oneshot::Sender<Result<RingOutcome, CallError>> },
    /// Stop ringing for a call held by an async controller (its ring was abandoned); the
    /// caller keeps waiting.
    StopRing { call: CallKey },
    /// End a call (or refuse it with `code` when it is not answered yet).
    Hangup { call: CallKey, code: u16, reply: oneshot::Sender<Result<(), CallError>> },
    /// Answer a call held by an async controller (FlowPBX answers the caller itself).
    Answer { call: CallKey, reply: oneshot::Sender<Result<(), CallError>> },
    /// A leg of a call sent no media for the media timeout.
    MediaTimeout { call: CallKey, leg: media::LegId },
    /// A leg of a call pressed a digit (RFC 4733 or SIP INFO).
    Dtmf { call: CallKey, digit: media::DigitEvent },
}

/// A call's own deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CallTimer {
    /// The ring timeout.
    Ring(CallKey),
    /// The session timer's expiry (RFC 4028).
    Session(CallKey),
    /// The caller's daily outbound minutes run out.
    Cap(CallKey),
    /// A transfer target rang too long.
    Transfer(CallKey),
    /// A leg's own deadline (a follow-me step) or the next follow-me step is due.
    Legs(CallKey),
}

/// The B2BUA: the calls, their media and their deadlines. Inputs are the `handle_*` and
/// `on_*` methods (with a [`Ctx`]); outputs leave through the context's transaction layer
/// (SIP), [`B2bua::take_ops`] (store writes), [`B2bua::poll_timeout`] (deadlines) and the
/// shared state the handle reads (views of calls, events, inbound calls for a controller).
pub(crate) struct B2bua {
    table: CallTable,
    limits: crate::config::OutboundConfig,
    /// Outbound seconds talked per extension: (UTC day, seconds).
    usage: HashMap<i64, (i64, u64)>,
    /// Where calls' media is anchored (None: SDP passes through, as in unit tests without
    /// a media engine).
    media: Option<Box<dyn MediaPort>>,
    timers: BTreeSet<(Instant, CallTimer)>,
    ops: Vec<PersistOp>,
    shared: Arc<Shared>,
    /// The session interval we grant (RFC 4028).
    session_expires: u32,
}

impl B2bua {
    pub(crate) fn new(media: Option<Box<dyn MediaPort>>, shared: Arc<Shared>, session_expires: u32, limits: crate::config::OutboundConfig) -> B2bua {
        B2bua { table: CallTable::default(), limits, usage: HashMap::new(), media, timers: BTreeSet::new(), ops: Vec::new(), shared, session_expires }
    }

    /// Whether no call is left.
    /// The caller's Call-ID of the call a callee leg's Call-ID belongs to (the SIP message
    /// viewer groups a call's messages under it).
    pub(crate) fn caller_call_id(&self, leg_call_id: &str) -> Option<String> {
        let (key, _) = self.table.by_leg_call_id(leg_call_id)?;
        self.table.get(key)?.a.invite.call_id().map(str::to_owned)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The client transactions of ours towards `peer` (a stream to it failed).
    pub(crate) fn client_txs_to(&self, peer: Peer) -> Vec<ClientTxId> {
        self.table.client_txs_to(peer)
    }

    /// The store writes queued since the last call.
    pub(crate) fn take_ops(&mut self, into: &mut Vec<PersistOp>) {
        into.append(&mut self.ops);
    }

    /// When [`B2bua::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Runs the calls' deadlines due at `now`.
    pub(crate) fn handle_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, t));
            match t {
                CallTimer::Ring(key) => self.ring_timeout(cx, now, key),
                CallTimer::Session(key) => self.session_timeout(cx, now, key),
                CallTimer::Cap(key) => self.cap_reached(cx, now, key),
                CallTimer::Transfer(key) => self.transfer_timeout(cx, now, key),
                CallTimer::Legs(key) => self.legs_due(cx, now, key),
            }
        }
    }

    /// A transaction-layer event about our calls.
    pub(crate) fn handle_event(&mut self, cx: &mut Ctx<'_>, now: Instant, ev: sip::transaction::Event) {
        use sip::transaction::Event;
        match ev {
            Event::Cancel { tx, invite, msg: _ } => self.on_cancel(cx, now, tx, invite),
            Event::Ack { tx, msg, source: _ } => self.on_ack(cx, now, tx, msg),
            Event::Response { tx, msg } => self.on_response(cx, now, tx, msg),
            Event::Timeout { tx } => self.on_client_failure(cx, now, tx, 408),
            Event::TransportError { tx } => self.on_client_failure(cx, now, tx, 503),
            Event::AckTimeout { tx } => self.on_ack_timeout(cx, now, tx),
            _ => {}
        }
    }

    /// A command from the handle.
    pub(crate) fn handle_command(&mut self, cx: &mut Ctx<'_>, now: Instant, cmd: CallCommand) {
        match cmd {
            CallCommand::Ring { call, request, reply } => {
                if let Err((e, reply)) = self.ring_for_controller(cx, now, call, request, reply) {
                    let _ = reply.send(Err(e));
                }
            }
            CallCommand::StopRing { call } => self.ring_timeout(cx, now, call),
            CallCommand::Hangup { call, code, reply } => {
                let r = self.hangup_for_controller(cx, now, call, code);
                let _ = reply.send(r);
            }
            CallCommand::Answer { call, reply } => {
                let r = self.answer_for_controller(cx, now, call);
                let _ = reply.send(r);
            }
            CallCommand::MediaTimeout { call, leg } => self.on_media_timeout(cx, now, call, leg),
            CallCommand::Dtmf { call, digit } => self.on_media_digit(cx, now, call, digit),
        }
    }

    /// Ends every call (the PBX stops).
    pub(crate) fn shutdown(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        for key in self.table.keys() {
            self.end_call(cx, now, key, 503, Cause::Shutdown, None);
        }
    }
}

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

/// Who learns how a ring job ended.
pub(crate) enum Completion {
    /// The built-in routing: answer the caller with the failure.
    Respond,
    /// An async controller waits for the outcome.
    Notify(oneshot::Sender<Result<RingOutcome, CallError>>),
}

/// Why a call ended: the CDR's hangup cause and disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A BYE after the answer.
    Normal,
    /// 486/600.
    Busy,
    /// 603.
    Declined,
    /// The ring timeout, or 480/408 from every contact.
    NoAnswer,
    /// No contact registered.
    Unavailable,
    /// The caller cancelled.
    OriginatorCancel,
    /// The number does not exist.
    NotFound,
    /// Another failure, by SIP status.
    Failed(u16),
    /// The caller never acknowledged the answer.
    AckTimeout,
    /// No session refresh in time (RFC 4028).
    SessionTimeout,
    /// The PBX stopped.
    Shutdown,
    /// A leg sent no media for the media timeout.
    MediaTimeout,
    /// The caller's daily outbound minutes ran out.
    LimitReached,
}

impl Cause {
    pub(crate) fn hangup_cause(self) -> String {
        match self {
            Cause::Normal => "normal_clearing".into(),
            Cause::Busy => "user_busy".into(),
            Cause::Declined => "call_rejected".into(),
            Cause::NoAnswer => "no_answer".into(),
            Cause::Unavailable => "subscriber_absent".into(),
            Cause::OriginatorCancel => "originator_cancel".into(),
            Cause::NotFound => "unallocated_number".into(),
            Cause::Failed(c) => format!("sip_{c}"),
            Cause::AckTimeout => "ack_timeout".into(),
            Cause::SessionTimeout => "session_timeout".into(),
            Cause::Shutdown => "system_shutdown".into(),
            Cause::MediaTimeout => "media_timeout".into(),
            Cause::LimitReached => "outbound_limit".into(),
        }
    }

    fn cause_str(self) -> &'static str {
        match self {
            Cause::Normal => "normal_clearing",
            Cause::Busy => "user_busy",
            Cause::Declined => "call_rejected",
            Cause::NoAnswer => "no_answer",
            Cause::Unavailable => "subscriber_absent",
            Cause::OriginatorCancel => "originator_cancel",
            Cause::NotFound => "unallocated_number",
            Cause::Failed(_) => "failed",
            Cause::AckTimeout => "ack_timeout",
            Cause::SessionTimeout => "session_timeout",
            Cause::Shutdown => "system_shutdown",
            Cause::MediaTimeout => "media_timeout",
            Cause::LimitReached => "outbound_limit",
        }
    }

    fn disposition(self, answered: bool) -> CallDisposition {
        if answered {
            return CallDisposition::Answered;
        }
        match self {
            Cause::Busy | Cause::Declined => CallDisposition::Busy,
            Cause::NoAnswer | Cause::OriginatorCancel | Cause::Normal | Cause::Shutdown => CallDisposition::NoAnswer,
            _ => CallDisposition::Failed,
        }
    }

    /// The cause of a ring that ended with these final statuses from its legs.
    fn from_leg_codes(codes: &[u16]) -> Cause {
        if codes.iter().any(|&c| c == 486 || c == 600) {
            Cause::Busy
        } else if codes.contains(&603) {
            Cause::Declined
        } else if codes.is_empty() || codes.iter().all(|&c| matches!(c, 408 | 480 | 487)) {
            Cause::NoAnswer
        } else {
            let c = codes.iter().copied().filter(|c| !matches!(c, 408 | 480 | 487)).min().unwrap_or(480);
            Cause::Failed(c)
        }
    }

    /// What the caller is answered with.
    fn status(self) -> u16 {
        match self {
            Cause::Busy => 486,
            Cause::Declined => 603,
            Cause::NoAnswer | Cause::Unavailable => 480,
            Cause::OriginatorCancel => 487,
            Cause::NotFound => 404,
            // Redirects and auth challenges of a callee mean nothing to our caller.
            Cause::Failed(c) if (400..700).contains(&c) && !matches!(c, 401 | 407) => c,
            Cause::Failed(_) => 480,
            Cause::Normal | Cause::AckTimeout | Cause::SessionTimeout | Cause::MediaTimeout => 480,
            Cause::LimitReached => 403,
            Cause::Shutdown => 503,
        }
    }

    fn outcome(self) -> RingOutcome {
        match self {
            Cause::Busy => RingOutcome::Busy,
            Cause::Declined => RingOutcome::Declined,
            Cause::NoAnswer => RingOutcome::NoAnswer,
            Cause::Unavailable => RingOutcome::Unavailable,
            Cause::OriginatorCancel => RingOutcome::CallerHungUp,
            c => RingOutcome::Failed(c.status()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// INVITE sent, nothing final.
    Calling,
    /// Answered (the winner).
    Answered,
    /// A follow-me number outside answered and hears "press 1 to accept": its dialog is up,
    /// the caller does not hear it yet.
    Confirming,
    /// Failed, cancelled, or lost the race.
    Done,
    /// Answered, then replaced by a transfer: its dialog is over (a BYE on it gets 200).
    Retired,
}

/// The caller's side.
struct ALeg {
    tx: ServerTxId,
    invite: Message,
    source: Peer,
    to_tag: String,
    /// Our Contact towards A.
    contact: String,
    dialog: Option<Dialog>,
    early_media: bool,
}

/// One contact rung.
struct BLeg {
    /// What it rings.
    target: LegTarget,
    /// Why: the call's ring, or a transfer.
    purpose: LegPurpose,
    call_id: String,
    tx: ClientTxId,
    invite: Message,
    dest: Peer,
    contact: String,
    state: LegState,
    provisional: bool,
    dialog: Option<Dialog>,
    code: Option<u16>,
    /// The trunks still to try, in order, when this leg's trunk fails over.
    fallback: std::collections::VecDeque<TrunkAttempt>,
    /// When it stops ringing (a follow-me step's time; `None`: the ring's own timeout).
    deadline: Option<Instant>,
    /// It must confirm (press 1) before it is put through: a follow-me number outside. Its
    /// early media is not relayed (a carrier's announcements are not the callee).
    confirm: bool,
    /// A confirming leg's answer (content type, SDP), crossed to the caller once confirmed.
    answer: Option<(Option<String>, Bytes)>,
}

impl BLeg {
    /// A leg whose INVITE `tx` just went to `dest`: calling, nothing heard yet.
    fn calling(target: LegTarget, purpose: LegPurpose, call_id: String, tx: ClientTxId, invite: Message, dest: Peer, contact: String) -> BLeg {
        BLeg {
            target,
            purpose,
            call_id,
            tx,
            invite,
            dest,
            contact,
            state: LegState::Calling,
            provisional: false,
            dialog: None,
            code: None,
            fallback: Default::default(),
            deadline: None,
            confirm: false,
            answer: None,
        }
    }

    /// Ringing, or answered and confirming: still in the race.
    fn active(&self) -> bool {
        matches!(self.state, LegState::Calling | LegState::Confirming)
    }
}

struct Ring {
    completion: Completion,
    /// Follow-me's steps still to ring.
    follow: Option<follow_me::FollowMePlan>,
    /// The first of the call's legs this ring started (a flow may ring several times).
    first_leg: usize,
}

/// Why a callee leg was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegPurpose {
    /// To answer the caller (the call's ring job).
    Ring,
    /// To take a side's place: a transfer (REFER) by that side.
    Transfer,
}

/// One contact leg to start.
struct ContactLeg<'a> {
    extension_id: i64,
    ext: &'a str,
    binding: &'a crate::registrar::Binding,
    caller: &'a Party,
    max_forwards: u32,
    purpose: LegPurpose,
}

/// What a callee leg rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegTarget {
    /// A registered contact of this extension.
    Extension(i64),
    /// A number through this trunk; `auth_tried` once it was sent with credentials.
    Trunk { trunk_id: i64, auth_tried: bool },
}

/// The SRTP policy of what a callee leg rings (its extension's or trunk's).
fn target_policy(dir: &Directory, target: LegTarget) -> SrtpPolicy {
    match target {
        LegTarget::Extension(id) => dir.by_id(id).map_or(SrtpPolicy::Off, |u| u.srtp),
        LegTarget::Trunk { trunk_id, .. } => dir.trunk(trunk_id).map_or(SrtpPolicy::Off, |t| t.srtp),
    }
}

/// What a new call is.
struct NewCall {
    direction: CallDirection,
    /// The caller, for the CDR and the legs (internal, inbound).
    caller: Party,
    callee: String,
    trunk_id: Option<i64>,
    flow_id: Option<i64>,
    /// The extension that places it.
    caller_ext: Option<i64>,
    outbound: Option<Outbound>,
}

/// A trunk to try for an outbound leg, with the number and caller id as the route made
/// them.
#[derive(Debug, Clone)]
struct TrunkAttempt {
    trunk_id: i64,
    number: String,
    caller_id_mode: store::RouteCallerId,
    /// The caller id the route chose (`None`: the trunk's, or anonymous).
    caller_id: Option<crate::routing::CallerId>,
}

impl TrunkAttempt {
    /// The trunks of a route's plan, in order.
    fn all_of(p: &crate::routing::Plan) -> std::collections::VecDeque<TrunkAttempt> {
        p.trunk_ids
            .iter()
            .map(|&trunk_id| TrunkAttempt { trunk_id, number: p.number.clone(), caller_id_mode: p.caller_id_mode, caller_id: p.caller_id.clone() })
            .collect()
    }
}

/// The route a call that goes out through trunks took (what it presents is each
/// [`TrunkAttempt`]'s).
#[derive(Debug, Clone)]
struct Outbound {
    route_id: Option<i64>,
    emergency: bool,
    /// The trunk tried last (the one that answered, once answered).
    trunk_id: Option<i64>,
}

/// How long an outbound call rings before it gives up (the carrier usually ends it first).
const OUTBOUND_RING_SECS: u64 = 180;

/// Whether a trunk's final answer sends the call to the next trunk (RFC 3261's server and
/// global failures, timeouts, a trunk we cannot reach), as against an answer about the
/// number or the callee (busy, declined, not found).
fn fails_over(code: u16) -> bool {
    code == 408 || (500..600).contains(&code) || ((600..700).contains(&code) && !matches!(code, 603 | 604 | 606))
}

/// A callee leg's place in its call's `legs` (legs are only ever added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LegIdx(usize);

/// Where a call is. A call that ended is no longer in the table.
enum Phase {
    /// The caller has heard 100 Trying (and maybe ringing) and waits for a final answer. A
    /// controller decides what rings, or the built-in routing rings the dialled extension.
    Waiting { ring: Option<Ring> },
    /// FlowPBX answered the caller itself (a flow plays, collects, records); legs may ring on
    /// the flow's behalf while the caller hears ringback.
    AnsweredLocally { ring: Option<Ring> },
    /// A callee answered: the caller's dialog and `winner`'s are bridged until a BYE.
    Bridged { winner: LegIdx },
}

/// Who the caller is, as FlowPBX presents it on the legs it places.
///
/// Invariant: `number` is `anonymous` or 1–32 characters of `[0-9+*#]`; `name` holds no
/// control characters and at most 64 characters (it is quoted when written).
#[derive(Debug, Clone)]
pub(crate) struct Party {
    pub name: Option<String>,
    pub number: String,
}

impl Party {
    /// A caller id from outside (a trunk's From, a flow's caller-id choice): the number keeps
    /// its `[0-9+*#]` characters (visual separators such as spaces, dashes, dots and
    /// parentheses go; anything else, or nothing left, makes it `anonymous`), the name loses
    /// control characters and is cut to 64 characters.
    pub(crate) fn from_untrusted(name: Option<&str>, number: Option<&str>) -> Party {
        Party { name: name.and_then(clean_display_name), number: number.map_or_else(|| ANONYMOUS.to_owned(), caller_number) }
    }
}

/// The number shown for a caller who withheld or has none.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// A caller number from outside, as we present it (see [`Party`]).
pub(crate) fn caller_number(raw: &str) -> String {
    let raw = raw.trim();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '0'..='9' | '+' | '*' | '#' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return ANONYMOUS.to_owned(),
        }
    }
    if out.is_empty() || out.len() > 32 || out[1..].contains('+') {
        ANONYMOUS.to_owned()
    } else {
        out
    }
}

/// A display name from outside: control characters dropped, at most 64 characters; `None`
/// when nothing is left.
pub(crate) fn clean_display_name(raw: &str) -> Option<String> {
    let s: String = raw.chars().filter(|c| !c.is_control()).take(64).collect();
    let s = s.trim();
    if s.is_empty() {
        None
    } else {
        Some(s.to_owned())
    }
}

/// A B2BUA call.
pub(crate) struct Call {
    key: CallKey,
    direction: CallDirection,
    a: ALeg,
    legs: Vec<BLeg>,
    phase: Phase,
    started_at: Instant,
    answered_at: Option<Instant>,
    caller: Party,
    callee: String,
    session: Option<SessionTimer>,
    /// A 2xx ACK owed to a side until the other side's ACK brings the answer (an offer in a
    /// 2xx, when the INVITE had no SDP).
    pending_ack: Option<(Side, ClientTxId)>,
    /// The deadlines scheduled in the core's timer set for this call.
    ring_at: Option<Instant>,
    session_at: Option<Instant>,
    cap_at: Option<Instant>,
    transfer_at: Option<Instant>,
    legs_at: Option<Instant>,
    /// The extension that placed the call (internal calls).
    caller_ext: Option<i64>,
    /// The trunk the call arrived through (inbound calls from a trunk).
    inbound_trunk: Option<i64>,
    /// The call's anchored media (None on a PBX without a media engine).
    pub(crate) media: Option<SdpState>,
    /// The call's recording, relative to the data dir (the first one, for the CDR).
    recording: Option<String>,
    /// A recording runs now (an on-demand one can be stopped and started again).
    recording_on: bool,
    /// The extension that answered (internal and inbound calls).
    answer_ext: Option<i64>,
    /// The side that pressed `*` last, and when (the on-demand recording code `*1`).
    star: Option<(Side, Instant)>,
    /// Set when it goes out through trunks.
    outbound: Option<Outbound>,
    /// The leg now serving side A: the caller transferred the callee to it.
    a_leg: Option<LegIdx>,
    /// A transfer in progress.
    transfer: Option<transfer::TransferJob>,
    /// The transfers done, for the CDR.
    transfers: Vec<serde_json::Value>,
}

/// What a client transaction of ours is for.
#[derive(Debug, Clone, Copy)]
enum ClientRole {
    BInvite {
        call: CallKey,
        leg: LegIdx,
    },
    ReInvite {
        call: CallKey,
        to: Side,
        server: ServerTxId,
    },
    Relay {
        call: CallKey,
        to: Side,
        server: ServerTxId,
    },
    /// FlowPBX's own re-INVITE of a side (after a transfer).
    LocalReInvite {
        call: CallKey,
        to: Side,
    },
    Fire,
}

impl Call {
    /// What rings for the call, if anything.
    fn ring(&self) -> Option<&Ring> {
        match &self.phase {
            Phase::Waiting { ring } | Phase::AnsweredLocally { ring } => ring.as_ref(),
            Phase::Bridged { .. } => None,
        }
    }

    /// Takes the ring job (it ended, or it is being stopped).
    fn take_ring(&mut self) -> Option<Ring> {
        match &mut self.phase {
            Phase::Waiting { ring } | Phase::AnsweredLocally { ring } => ring.take(),
            Phase::Bridged { .. } => None,
        }
    }

    /// The callee leg the caller is bridged to.
    fn winner(&self) -> Option<LegIdx> {
        match self.phase {
            Phase::Bridged { winner } => Some(winner),
            _ => None,
        }
    }

    /// Whether the caller got its final answer (from FlowPBX or through a callee).
    fn caller_answered(&self) -> bool {
        !matches!(self.phase, Phase::Waiting { .. })
    }

    /// Whether FlowPBX answered the caller itself and no callee is bridged yet.
    pub(crate) fn answered_locally(&self) -> bool {
        matches!(self.phase, Phase::AnsweredLocally { .. })
    }

    fn leg(&self, i: LegIdx) -> Option<&BLeg> {
        self.legs.get(i.0)
    }

    fn leg_mut(&mut self, i: LegIdx) -> Option<&mut BLeg> {
        self.legs.get_mut(i.0)
    }

    fn view(&self) -> ActiveCall {
        let srtp = self.media.as_ref().map(SdpState::encryption).unwrap_or_default();
        ActiveCall {
            key: self.key,
            call_id: self.a.invite.call_id().unwrap_or("").to_owned(),
            direction: self.direction,
            caller_id_name: self.caller.name.clone(),
            caller_id_num: self.caller.number.clone(),
            callee: self.callee.clone(),
            state: if self.answered_at.is_some() {
                CallState::Answered
            } else if self.ring().is_some() {
                CallState::Ringing
            } else {
                CallState::Routing
            },
            started_at_ms: wall(self.started_at).unix_millis(),
            answered_at_ms: self.answered_at.map(|t| wall(t).unix_millis()),
            caller_srtp: srtp[0],
            callee_srtp: srtp[1],
        }
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

impl B2bua {
    // ----- new calls -----

    /// An extension's INVITE (authenticated by the core): to another extension, or out
    /// through the outbound routes.
    pub(crate) fn internal_call(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: Message, source: Peer, caller: Arc<User>) {
        if !self.check_invite(cx, now, tx, &msg) {
            return;
        }
        let dialled = msg.uri().and_then(|u| u.user().map(|u| u.into_owned())).unwrap_or_default();
        if cx.dir.is_voicemail_access(&dialled) {
            return self.dial_in_voicemail(cx, now, tx, msg, source, caller, dialled);
        }
        let Some(target) = cx.dir.by_number(&dialled).cloned() else {
            return self.outbound_from_extension(cx, now, tx, msg, source, caller, dialled);
        };
        let party = Party { name: Some(caller.name.clone()), number: caller.extension.clone() };
        let n = NewCall {
            direction: CallDirection::Internal,
            caller: party,
            callee: dialled,
            trunk_id: None,
            flow_id: None,
            caller_ext: Some(caller.id),
            outbound: None,
        };
        let Some(key) = self.new_call(cx, now, tx, msg, source, n) else { return };
        self.ring_extensions(cx, now, key, &[target], None, None, Completion::Respond, Some(source), Vec::new());
    }

    /// An extension dials the voicemail (`*97`, `*98`, a mailbox number): the call is handed
    /// to the controller (the pbx crate's voicemail menu), like a call to an inbound number.
    #[allow(clippy::too_many_arguments)]
    fn dial_in_voicemail(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: Message, source: Peer, caller: Arc<User>, dialled: String) {
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let party = Party { name: Some(caller.name.clone()), number: caller.extension.clone() };
        let n = NewCall {
            direction: CallDirection::Internal,
            caller: party.clone(),
            callee: dialled.clone(),
            trunk_id: None,
            flow_id: None,
            caller_ext: Some(caller.id),
            outbound: None,
        };
        let Some(key) = self.new_call(cx, now, tx, msg, source, n) else { return };
        let incoming = IncomingCall {
            key,
            call_id,
            caller_id_name: party.name,
            caller_id_num: party.number,
            dialled,
            trunk_id: 0,
            flow_id: None,
            voicemail_from: Some(caller.id),
        };
        if self.shared.hand_off(incoming) {
            return;
        }
        tracing::warn!(extension = %caller.extension, "no controller takes calls: the voicemail menu is unavailable (480)");
        self.end_call(cx, now, key, 480, Cause::Unavailable, None);
    }

    /// An extension dials a number that is not internal: the outbound routes choose the
    /// trunks (emergency numbers first), the extension's classes and limits are checked, and
    /// the trunks are tried in order.
    #[allow(clippy::too_many_arguments)]
    fn outbound_from_extension(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: Message, source: Peer, caller: Arc<User>, dialled: String) {
        use crate::routing::{plan, CallerId, Placer};
        let dialled = dialled.trim().to_owned();
        if dialled.is_empty() || !dialled.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#')) {
            tracing::debug!(caller = %caller.extension, %dialled, "no such extension, and not a number");
            return cx.sig.reply(now, tx, 404);
        }
        let placer = Placer::Extension {
            id: caller.id,
            classes: caller.call_classes.clone(),
            outbound: caller.outbound_caller_id.clone(),
            emergency: caller.emergency_caller_id.clone(),
            own: CallerId { name: Some(caller.name.clone()), number: caller.extension.clone() },
        };
        let all_trunks: Vec<i64> = cx.dir.trunks().iter().map(|t| t.id).collect();
        let p = match plan(&dialled, &placer, cx.dir.routes(), &self.limits.emergency_numbers, &all_trunks) {
            Ok(p) => p,
            Err(refusal) => {
                let (why, reason) = match &refusal {
                    crate::routing::Refusal::NoRoute => ("no outbound route matches the number", "No Route"),
                    crate::routing::Refusal::NotPermitted { .. } => ("the extension may not call this class of number", "Call Class Not Permitted"),
                };
                tracing::warn!(extension = %caller.extension, %dialled, ?refusal, "outbound call refused: {why}");
                if matches!(refusal, crate::routing::Refusal::NotPermitted { .. }) {
                    self.limit_tripped(caller.id, &dialled, "class_not_permitted");
                }
                return cx.sig.reply_with(now, tx, refusal.status(), Some(reason), |_| Ok(()));
            }
        };
        if !p.emergency
            && let Some((limit, reason)) = self.outbound_limit_hit(&caller, now)
        {
            tracing::warn!(extension = %caller.extension, %dialled, limit, "outbound call refused: a limit is reached");
            self.limit_tripped(caller.id, &dialled, limit);
            return cx.sig.reply_with(now, tx, 403, Some(reason), |_| Ok(()));
        }
        let attempts = TrunkAttempt::all_of(&p);
        let outbound = Outbound { route_id: p.route_id, emergency: p.emergency, trunk_id: None };
        let party = Party { name: Some(caller.name.clone()), number: caller.extension.clone() };
        let n = NewCall {
            direction: CallDirection::Outbound,
            caller: party,
            callee: dialled,
            trunk_id: None,
            flow_id: None,
            caller_ext: Some(caller.id),
            outbound: Some(outbound),
        };
        let Some(key) = self.new_call(cx, now, tx, msg, source, n) else { return };
        self.ring_trunks(cx, now, key, attempts, Duration::from_secs(OUTBOUND_RING_SECS), Completion::Respond);
    }

    /// Which outbound limit an extension's new call would break: its calls at once, the
    /// PBX's calls at once, its minutes today. `(name, reason phrase)`.
    fn outbound_limit_hit(&self, caller: &User, now: Instant) -> Option<(&'static str, &'static str)> {
        let mut mine = 0;
        let mut all = 0;
        for c in self.table.calls() {
            if c.outbound.is_some() {
                all += 1;
                if c.caller_ext == Some(caller.id) {
                    mine += 1;
                }
            }
        }
        if mine >= caller.max_outbound_calls {
            return Some(("extension_concurrent_calls", "Too Many Outbound Calls"));
        }
        if all >= self.limits.max_calls {
            return Some(("pbx_concurrent_calls", "Too Many Outbound Calls"));
        }
        if caller.daily_outbound_minutes > 0 && self.used_today(caller.id, now) >= u64::from(caller.daily_outbound_minutes) * 60 {
            return Some(("daily_minutes", "Daily Outbound Minutes Used Up"));
        }
        None
    }

    /// Outbound seconds an extension talked today (UTC).
    fn used_today(&self, extension_id: i64, now: Instant) -> u64 {
        let today = wall(now).unix_millis().div_euclid(86_400_000);
        self.usage.get(&extension_id).filter(|(day, _)| *day == today).map_or(0, |(_, secs)| *secs)
    }

    /// Seconds already talked today per extension (read from the CDRs at start).
    pub(crate) fn set_outbound_usage(&mut self, now: Instant, used: &[(i64, i64)]) {
        let today = wall(now).unix_millis().div_euclid(86_400_000);
        for &(ext, secs) in used {
            self.usage.insert(ext, (today, u64::try_from(secs).unwrap_or(0)));
        }
    }

    /// A toll-fraud limit refused or ended a call: logged, in the audit log and on /ws.
    fn limit_tripped(&mut self, extension_id: i64, number: &str, limit: &'static str) {
        self.ops.push(PersistOp::Audit {
            action: "outbound_limit".into(),
            entity_type: "extension".into(),
            entity_id: Some(extension_id.to_string()),
            details: serde_json::json!({ "limit": limit, "number": number }),
        });
        let number = number.to_owned();
        self.shared.emit(|| PbxEvent::OutboundLimit { extension_id, number, limit });
    }

    /// Starts ringing out through the first usable trunk of `attempts` (the rest wait for a
    /// failover). No usable trunk: the ring fails with 503.
    fn ring_trunks(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        key: CallKey,
        attempts: std::collections::VecDeque<TrunkAttempt>,
        timeout: Duration,
        completion: Completion,
    ) {
        let Some(first_leg) = self.table.get(key).map(|c| c.legs.len()) else { return };
        if self.start_trunk_legs(cx, now, key, attempts, LegPurpose::Ring).is_some() {
            let Some(call) = self.table.get_mut(key) else { return };
            match &mut call.phase {
                Phase::Waiting { ring } | Phase::AnsweredLocally { ring } => *ring = Some(Ring { completion, follow: None, first_leg }),
                Phase::Bridged { .. } => return,
            }
            self.set_timer(key, TimerKind::Ring, Some(now + timeout));
            self.publish(key);
            return;
        }
        tracing::warn!(key = %key, "no trunk can take the call");
        self.finish_ring(cx, now, key, Cause::Failed(503), completion);
    }

    /// Starts a leg through the first usable trunk of `attempts`; the rest stay with the leg
    /// for its failover. `None` when no trunk can take it.
    fn start_trunk_legs(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        key: CallKey,
        mut attempts: std::collections::VecDeque<TrunkAttempt>,
        purpose: LegPurpose,
    ) -> Option<LegIdx> {
        while let Some(a) = attempts.pop_front() {
            if let Ok(idx) = self.start_trunk_leg_for(cx, now, key, &a, purpose) {
                if let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) {
                    leg.fallback = attempts;
                }
                return Some(idx);
            }
        }
        None
    }

    /// A trunk leg failed with `code`: when the code sends calls on to the next trunk and the
    /// leg has one left, a new leg takes its place there (same deadline, same confirmation).
    fn fail_over_leg(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, idx: LegIdx, code: u16) -> bool {
        let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) else { return false };
        if !matches!(leg.target, LegTarget::Trunk { .. }) || !fails_over(code) || leg.fallback.is_empty() {
            return false;
        }
        let attempts = std::mem::take(&mut leg.fallback);
        let (purpose, deadline, confirm) = (leg.purpose, leg.deadline, leg.confirm);
        tracing::info!(key = %key, code, "the trunk failed: trying the next");
        let Some(next) = self.start_trunk_legs(cx, now, key, attempts, purpose) else { return false };
        if let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(next)) {
            leg.deadline = deadline;
            leg.confirm = confirm;
        }
        true
    }

    /// Calls in progress on a trunk (ringing or answered legs).
    fn trunk_channels(&self, trunk_id: i64) -> u32 {
        let mut n = 0;
        for c in self.table.calls() {
            n +=
                c.legs.iter().filter(|l| l.state != LegState::Done && matches!(l.target, LegTarget::Trunk { trunk_id: t, .. } if t == trunk_id)).count() as u32;
        }
        n
    }

    /// Sends the INVITE of an outbound leg to a trunk; `Err` when the trunk cannot take it
    /// (gone, down, full, unresolved, unwritable). The body is FlowPBX's offer for a
    /// transfer, the caller's (rewritten) otherwise.
    fn start_trunk_leg_for(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, a: &TrunkAttempt, purpose: LegPurpose) -> Result<LegIdx, ()> {
        let Some(trunk) = cx.dir.trunk(a.trunk_id).cloned() else {
            tracing::info!(trunk = a.trunk_id, "a route's trunk is disabled or gone: skipped");
            return Err(());
        };
        if !cx.trunks.usable(trunk.id) {
            tracing::info!(trunk = trunk.id, "trunk down (OPTIONS): skipped");
            return Err(());
        }
        if trunk.max_channels > 0 && self.trunk_channels(trunk.id) >= trunk.max_channels {
            tracing::info!(trunk = trunk.id, max = trunk.max_channels, "trunk full: skipped");
            return Err(());
        }
        let Some(dest) = trunk.next_hop else {
            tracing::info!(trunk = trunk.id, "trunk's host does not resolve: skipped");
            return Err(());
        };
        let Some(call) = self.table.get(key) else { return Err(()) };
        let a_mf = call.a.invite.max_forwards().unwrap_or(70);
        let body = call.a.invite.body().clone();
        let content_type = call.a.invite.content_type().map(str::to_owned);
        let number = trunk.dial_string(&a.number);
        let (ct, body) = match (purpose, self.table.get(key).and_then(|c| c.transfer.as_ref()).map(|t| t.by)) {
            (LegPurpose::Transfer, Some(side)) => self.transfer_offer(cx, key, side, dest, trunk.srtp),
            _ => self.offer_for_callee(cx, key, dest, content_type.as_deref(), &body, trunk.srtp),
        };
        let call_id = cx.sig.ids.call_id();
        let from_tag = cx.sig.ids.tag();
        let via = cx.sig.via_for(dest);
        let hostport = if trunk.port == 0 { trunk.domain.clone() } else { format!("{}:{}", trunk.domain, trunk.port) };
        // a registration trunk's provider wants its own domain in From; an IP trunk, ours
        let from_host = if trunk.account.is_some() { hostport.clone() } else { cx.sig.domain_for(dest) };
        let presented = match a.caller_id_mode {
            store::RouteCallerId::Anonymous => None,
            store::RouteCallerId::Trunk => trunk.caller_id.clone(),
            _ => a.caller_id.clone().or_else(|| trunk.caller_id.clone()),
        };
        let contact_user = trunk.account.as_ref().map(|acc| acc.username.clone()).unwrap_or_else(|| "flowpbx".into());
        let contact = cx.sig.contact_for(&contact_user, dest);
        let user_agent = cx.sig.user_agent.clone();
        let built = (|| -> Result<Message, HeaderInjection> {
            let ruri = SipUriBuilder::new(&hostport).user(&number).build().ok_or(HeaderInjection)?;
            let mut inv = Message::request(Method::Invite, &ruri)?;
            inv.push_header(HeaderName::Via, &via)?;
            inv.push_header(HeaderName::MaxForwards, &a_mf.saturating_sub(1).min(70).to_string())?;
            if let Some(route) = &trunk.route {
                inv.push_header(HeaderName::Route, &format!("<{route}>"))?;
            }
            match &presented {
                Some(cid) => {
                    let uri = SipUriBuilder::new(&from_host).user(&cid.number).build().ok_or(HeaderInjection)?;
                    inv.push_header(HeaderName::From, &name_addr(cid.name.as_deref(), &uri, Some(&from_tag)))?;
                    inv.push_header(HeaderName::PAssertedIdentity, &name_addr(cid.name.as_deref(), &uri, None))?;
                }
                None => {
                    inv.push_header(HeaderName::From, &format!("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag={from_tag}"))?;
                    inv.push_header(HeaderName::Privacy, "id")?;
                }
            }
            inv.push_header(HeaderName::To, &name_addr(None, &ruri, None))?;
            inv.push_header(HeaderName::CallId, &call_id)?;
            inv.push_header(HeaderName::CSeq, "1 INVITE")?;
            inv.push_header(HeaderName::Contact, &format!("<{contact}>"))?;
            inv.push_header(HeaderName::Allow, ALLOW)?;
            inv.push_header(HeaderName::UserAgent, &user_agent)?;
            if !body.is_empty() {
                inv.set_body(ct.as_deref(), body)?;
            }
            Ok(inv)
        })();
        let Ok(inv) = built else {
            tracing::warn!(key = %key, trunk = trunk.id, "an INVITE to this trunk could not be written: skipped");
            return Err(());
        };
        let tx = match cx.sig.txl.send_request(now, dest, inv.clone()) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(error = %e, trunk = trunk.id, "could not send the INVITE to a trunk");
                return Err(());
            }
        };
        let target = LegTarget::Trunk { trunk_id: trunk.id, auth_tried: false };
        let idx = self.add_leg(key, BLeg::calling(target, purpose, call_id, tx, inv, dest, contact)).ok_or(())?;
        if let Some(o) = self.table.get_mut(key).and_then(|c| c.outbound.as_mut()) {
            o.trunk_id = Some(trunk.id);
        }
        tracing::info!(key = %key, trunk = trunk.id, %number, "outbound call to a trunk");
        Ok(idx)
    }

    /// A trunk asked a leg for credentials (401/407): sends the INVITE again with them, once,
    /// as a new transaction of the same dialog attempt. False when it cannot (no account, or
    /// already tried: then the challenge is the leg's failure).
    fn authenticate_leg(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, idx: LegIdx, resp: &Message) -> bool {
        let Some(call) = self.table.get_mut(key) else { return false };
        let Some(leg) = call.leg_mut(idx) else { return false };
        let LegTarget::Trunk { trunk_id, auth_tried: false } = leg.target else { return false };
        let Some(account) = cx.dir.trunk(trunk_id).and_then(|t| t.account.clone()) else { return false };
        let header = if resp.status() == Some(407) { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
        let mut challenges: Vec<sip::auth::Challenge> = resp.headers(header).filter_map(|v| sip::auth::Challenge::parse(v).ok()).collect();
        challenges.sort_by_key(|c| if c.algorithm.base() == sip::auth::Algorithm::Sha256 { 0 } else { 1 });
        let Some(ch) = challenges.into_iter().next() else { return false };
        let answer = if resp.status() == Some(407) { HeaderName::ProxyAuthorization } else { HeaderName::Authorization };
        let Some(uri) = leg.invite.uri_str().map(str::to_owned) else { return false };
        let Some(seq) = leg.invite.cseq().map(|c| c.seq + 1) else { return false };
        let cnonce = cx.sig.ids.tag();
        let via = cx.sig.via_for(leg.dest);
        let mut inv = leg.invite.clone();
        let built = inv
            .set_header(HeaderName::Via, &via)
            .and_then(|()| inv.set_header(HeaderName::CSeq, &format!("{seq} INVITE")))
            .and_then(|()| inv.set_header(answer, &ch.authorization("INVITE", &uri, &account.auth_username, &account.password, &cnonce, 1)));
        if built.is_err() {
            return false;
        }
        let dest = leg.dest;
        let Ok(tx) = cx.sig.txl.send_request(now, dest, inv.clone()) else { return false };
        leg.tx = tx;
        leg.invite = inv;
        leg.provisional = false;
        leg.target = LegTarget::Trunk { trunk_id, auth_tried: true };
        self.table.add_client(tx, ClientRole::BInvite { call: key, leg: idx }, dest);
        true
    }

    /// Checks an INVITE we are about to route: a Contact (to reach the caller later) and a
    /// Session-Expires we accept.
    fn check_invite(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: &Message) -> bool {
        if msg.contact().is_none() {
            cx.sig.reply_with(now, tx, 400, Some("Missing Contact"), |_| Ok(()));
            return false;
        }
        if let Some(se) = msg.session_expires() {
            let min = SessionTimerConfig::default().min_se;
            if se.interval < min {
                cx.sig.reply_with(now, tx, 422, None, |r| r.push_header(HeaderName::MinSe, &min.to_string()));
                return false;
            }
        }
        true
    }

    /// A trunk's INVITE to one of our numbers: handed to the controller (a flow). The number
    /// dialled is the Request-URI's user (the To's when the carrier addressed the contact we
    /// registered), made E.164 by the trunk's numbering; the caller is P-Asserted-Identity,
    /// else Remote-Party-ID, else From.
    pub(crate) fn inbound_from_trunk(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: Message, source: Peer, trunk_id: i64) {
        let trunk = cx.dir.trunk(trunk_id).cloned();
        let contact_user = trunk.as_ref().and_then(|t| t.account.as_ref()).map(|a| a.username.clone());
        let ruri_user = msg.uri().and_then(|u| u.user().map(|u| u.into_owned())).filter(|u| !u.is_empty() && Some(u) != contact_user.as_ref());
        let raw = ruri_user.or_else(|| msg.to().and_then(|t| t.uri.user().map(|u| u.into_owned()))).unwrap_or_default();
        let dialled = match &trunk {
            Some(t) => t.numbering.to_e164(&raw),
            None => raw,
        };
        let dialled = dialled.as_str();
        let did = cx.dir.did(dialled).filter(|d| d.trunk_id.is_none_or(|t| t == trunk_id)).cloned();
        let Some(did) = did else {
            tracing::info!(trunk_id, %dialled, "inbound call to an unknown number");
            return cx.sig.reply(now, tx, 404);
        };
        if !self.check_invite(cx, now, tx, &msg) {
            return;
        }
        let identity = msg
            .header(HeaderName::PAssertedIdentity)
            .or_else(|| msg.header(HeaderName::RemotePartyId))
            .and_then(|v| sip::msg::NameAddr::parse(sip::msg::split_list(v).next().unwrap_or(v)))
            .or_else(|| msg.from());
        let number = identity.and_then(|f| f.uri.user().map(|u| u.into_owned())).map(|n| match &trunk {
            Some(t) => t.numbering.to_e164(&n),
            None => n,
        });
        let party = Party::from_untrusted(identity.and_then(|f| f.display_name().map(|d| d.into_owned())).as_deref(), number.as_deref());
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let n = NewCall {
            direction: CallDirection::Inbound,
            caller: party.clone(),
            callee: did.number.clone(),
            trunk_id: Some(trunk_id),
            flow_id: did.flow_id,
            caller_ext: None,
            outbound: None,
        };
        let Some(key) = self.new_call(cx, now, tx, msg, source, n) else {
            return;
        };
        let incoming = IncomingCall {
            key,
            call_id,
            caller_id_name: party.name,
            caller_id_num: party.number,
            dialled: did.number.clone(),
            trunk_id,
            flow_id: did.flow_id,
            voicemail_from: None,
        };
        if self.shared.hand_off(incoming) {
            return;
        }
        // no flow runner takes calls (the process runs no flow engine): never a stuck call
        tracing::warn!(number = %did.number, "no flow runner takes inbound calls: refused with 480");
        self.end_call(cx, now, key, 480, Cause::Unavailable, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn new_call(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, invite: Message, source: Peer, n: NewCall) -> Option<CallKey> {
        let NewCall { direction, caller, callee, trunk_id, flow_id, caller_ext, outbound } = n;
        let call_id = invite.call_id().unwrap_or("").to_owned();
        let key = self.table.peek_key();
        // the caller's SRTP policy: its trunk's for an inbound call, else its extension's
        let caller_policy = match (direction, trunk_id, caller_ext) {
            (CallDirection::Inbound, Some(t), _) => cx.dir.trunk(t).map_or(SrtpPolicy::Off, |t| t.srtp),
            (_, _, Some(e)) => cx.dir.by_id(e).map_or(SrtpPolicy::Off, |u| u.srtp),
            _ => SrtpPolicy::Off,
        };
        let media = match self.open_media(cx, key, &call_id, invite.content_type(), invite.body(), caller_policy) {
            Ok(m) => m,
            Err((code, reason)) => {
                tracing::info!(%call_id, code, "call refused: its media cannot be anchored");
                cx.sig.reply_with(now, tx, code, Some(reason), |_| Ok(()));
                return None;
            }
        };
        cx.sig.reply(now, tx, 100);
        let to_tag = cx.sig.ids.tag();
        let sips = matches!(invite.uri(), Some(sip::msg::Uri::Sip(u)) if u.secure);
        let contact = cx.sig.contact_for_scheme(&callee, source, sips);
        let from_tag = invite.from_tag().unwrap_or("").to_owned();
        self.ops.push(PersistOp::CdrStart {
            key,
            cdr: NewCdr {
                call_id: call_id.clone(),
                start_time: wall(now),
                caller_id_name: caller.name.clone(),
                caller_id_num: Some(caller.number.clone()),
                callee: Some(callee.clone()),
                trunk_id,
                direction,
                flow_id,
                flow_version: None,
                extension_id: caller_ext,
                route_id: outbound.as_ref().and_then(|o| o.route_id),
            },
        });
        let call = Call {
            key,
            direction,
            a: ALeg { tx, invite, source, to_tag, contact, dialog: None, early_media: false },
            legs: Vec::new(),
            phase: Phase::Waiting { ring: None },
            started_at: now,
            answered_at: None,
            caller,
            callee,
            session: None,
            pending_ack: None,
            ring_at: None,
            session_at: None,
            cap_at: None,
            transfer_at: None,
            legs_at: None,
            caller_ext,
            inbound_trunk: trunk_id.filter(|_| direction == CallDirection::Inbound),
            media,
            recording: None,
            recording_on: false,
            answer_ext: None,
            star: None,
            outbound,
            a_leg: None,
            transfer: None,
            transfers: Vec::new(),
        };
        let view = call.view();
        self.shared.metrics.call_started(direction);
        self.shared.calls.insert(key, view.clone());
        self.shared.emit(|| PbxEvent::CallStarted(view));
        self.table.insert(call, call_id, from_tag);
        Some(key)
    }

    fn publish(&mut self, key: CallKey) {
        if let Some(c) = self.table.get(key) {
            let v = c.view();
            self.shared.calls.insert(key, v.clone());
            self.shared.emit(|| PbxEvent::CallUpdated(v));
        }
    }

    /// Starts ringing every live contact of `targets` (except the caller's own device),
    /// showing `caller_id` (the call's caller when None).
    #[allow(clippy::too_many_arguments)]
    fn ring_extensions(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        key: CallKey,
        targets: &[Arc<User>],
        timeout: Option<Duration>,
        caller_id: Option<Party>,
        completion: Completion,
        exclude: Option<Peer>,
        outside: Vec<std::collections::VecDeque<TrunkAttempt>>,
    ) {
        let Some(first_leg) = self.table.get(key).map(|c| c.legs.len()) else { return };
        // numbers outside ring beside the extensions: each through its first usable trunk
        let mut started_outside = 0;
        for attempts in outside {
            if self.start_trunk_legs(cx, now, key, attempts, LegPurpose::Ring).is_some() {
                started_outside += 1;
            }
        }
        if started_outside == 0 && !targets.is_empty() && targets.iter().all(|t| t.dnd) {
            return self.finish_ring(cx, now, key, Cause::Busy, completion);
        }
        // one person with follow-me: their devices, then (or with) their numbers
        if started_outside == 0
            && let [person] = targets
            && let Some(fm) = person.follow_me.clone()
        {
            let devices_for = timeout.unwrap_or(Duration::from_secs(u64::from(person.ring_timeout)));
            return self.ring_follow_me(cx, now, key, person.clone(), &fm, devices_for, caller_id, completion, exclude);
        }
        let secs = targets.iter().map(|t| t.ring_timeout).max().unwrap_or(30);
        let timeout = timeout.unwrap_or(Duration::from_secs(u64::from(secs)));
        let Some(call) = self.table.get(key) else { return };
        let caller = caller_id.unwrap_or_else(|| call.caller.clone());
        let (found, started) = self.start_contacts(cx, now, key, targets, &caller, exclude);
        if found == 0 && started_outside == 0 {
            return self.finish_ring(cx, now, key, Cause::Unavailable, completion);
        }
        if started.is_empty() && started_outside == 0 {
            return self.finish_ring(cx, now, key, Cause::Failed(500), completion);
        }
        let Some(call) = self.table.get_mut(key) else { return };
        match &mut call.phase {
            Phase::Waiting { ring } | Phase::AnsweredLocally { ring } => *ring = Some(Ring { completion, follow: None, first_leg }),
            Phase::Bridged { .. } => {
                // ring_for_controller refuses a bridged call; nothing else rings one
                if let Completion::Notify(reply) = completion {
                    let _ = reply.send(Err(CallError::InvalidState("the call is bridged")));
                }
                return;
            }
        }
        self.set_timer(key, TimerKind::Ring, Some(now + timeout));
        self.publish(key);
    }

    /// Rings every live contact of `targets` that is not on do-not-disturb (and not
    /// `exclude`, the caller's own phone), showing `caller`: how many contacts there were,
    /// and the legs started.
    fn start_contacts(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        key: CallKey,
        targets: &[Arc<User>],
        caller: &Party,
        exclude: Option<Peer>,
    ) -> (usize, Vec<LegIdx>) {
        let Some(call) = self.table.get(key) else { return (0, Vec::new()) };
        // A `sips:` request asks for TLS on every hop (RFC 5630 §3.1.3): only contacts
        // reached over TLS or WSS ring; with none, the caller gets 480, never a clear hop.
        let secure_only = matches!(call.a.invite.uri(), Some(sip::msg::Uri::Sip(u)) if u.secure);
        let mut contacts = Vec::new();
        for t in targets.iter().filter(|t| !t.dnd) {
            for b in cx.registrar.contacts(t.id, now) {
                if Some(b.next_hop) != exclude && (!secure_only || b.next_hop.transport.is_secure()) {
                    contacts.push((t.id, t.extension.clone(), t.srtp, b));
                }
            }
        }
        let a_mf = call.a.invite.max_forwards().unwrap_or(70);
        let body = call.a.invite.body().clone();
        let content_type = call.a.invite.content_type().map(str::to_owned);
        let found = contacts.len();
        let mut started = Vec::new();
        for (extension_id, ext, policy, b) in contacts {
            let (ct, body) = self.offer_for_callee(cx, key, b.next_hop, content_type.as_deref(), &body, policy);
            let spec =
                ContactLeg { extension_id, ext: &ext, binding: &b, caller, max_forwards: u32::from(a_mf.saturating_sub(1).min(70)), purpose: LegPurpose::Ring };
            if let Ok(idx) = self.start_contact_leg(cx, now, key, spec, ct, body) {
                started.push(idx);
            }
        }
        (found, started)
    }

    /// Sends the INVITE of a leg to one registered contact of an extension and adds the leg
    /// to the call; `Err` when it cannot be written or sent.
    fn start_contact_leg(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, spec: ContactLeg<'_>, ct: Option<String>, body: Bytes) -> Result<LegIdx, ()> {
        let ContactLeg { extension_id, ext, binding, caller, max_forwards, purpose } = spec;
        let dest = binding.next_hop;
        let call_id = cx.sig.ids.call_id();
        let from_tag = cx.sig.ids.tag();
        let via = cx.sig.via_for(dest);
        let domain = cx.sig.domain_for(dest);
        let sips = matches!(sip::msg::Uri::parse(&binding.contact), Some(sip::msg::Uri::Sip(u)) if u.secure);
        let contact = cx.sig.contact_for_scheme(&caller.number, dest, sips);
        let built = (|| -> Result<Message, HeaderInjection> {
            let mut inv = Message::request(Method::Invite, &binding.contact)?;
            inv.push_header(HeaderName::Via, &via)?;
            inv.push_header(HeaderName::MaxForwards, &max_forwards.to_string())?;
            let from_uri = SipUriBuilder::new(&domain).user(&caller.number).build().ok_or(HeaderInjection)?;
            inv.push_header(HeaderName::From, &name_addr(caller.name.as_deref(), &from_uri, Some(&from_tag)))?;
            let to_uri = SipUriBuilder::new(&domain).user(ext).build().ok_or(HeaderInjection)?;
            inv.push_header(HeaderName::To, &name_addr(None, &to_uri, None))?;
            inv.push_header(HeaderName::CallId, &call_id)?;
            inv.push_header(HeaderName::CSeq, "1 INVITE")?;
            inv.push_header(HeaderName::Contact, &format!("<{contact}>"))?;
            inv.push_header(HeaderName::Allow, ALLOW)?;
            inv.push_header(HeaderName::UserAgent, &cx.sig.user_agent)?;
            if !body.is_empty() {
                inv.set_body(ct.as_deref(), body)?;
            }
            Ok(inv)
        })();
        let Ok(inv) = built else {
            tracing::warn!(key = %key, %ext, "an INVITE for this contact could not be written: skipped");
            return Err(());
        };
        let tx = match cx.sig.txl.send_request(now, dest, inv.clone()) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(error = %e, "could not send the INVITE of a leg");
                return Err(());
            }
        };
        self.add_leg(key, BLeg::calling(LegTarget::Extension(extension_id), purpose, call_id, tx, inv, dest, contact)).ok_or(())
    }

    /// Adds a leg whose INVITE is on its way to call `key`, indexed by its transaction and
    /// Call-ID; `None` when the call is gone.
    fn add_leg(&mut self, key: CallKey, leg: BLeg) -> Option<LegIdx> {
        let call = self.table.get_mut(key)?;
        let idx = LegIdx(call.legs.len());
        let (tx, dest, call_id) = (leg.tx, leg.dest, leg.call_id.clone());
        call.legs.push(leg);
        self.table.add_client(tx, ClientRole::BInvite { call: key, leg: idx }, dest);
        self.table.index_leg(call_id, key, idx);
        Some(idx)
    }

    /// A ring job ended without an answer.
    fn finish_ring(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, cause: Cause, completion: Completion) {
        self.set_timer(key, TimerKind::Ring, None);
        match completion {
            Completion::Respond => self.end_call(cx, now, key, cause.status(), cause, None),
            Completion::Notify(reply) => {
                let _ = reply.send(Ok(cause.outcome()));
                if cause == Cause::OriginatorCancel {
                    self.end_call(cx, now, key, 487, cause, None);
                } else {
                    self.publish(key);
                }
            }
        }
    }

    fn set_timer(&mut self, key: CallKey, kind: TimerKind, at: Option<Instant>) {
        let Some(call) = self.table.get_mut(key) else { return };
        let (slot, timer) = match kind {
            TimerKind::Ring => (&mut call.ring_at, CallTimer::Ring(key)),
            TimerKind::Session => (&mut call.session_at, CallTimer::Session(key)),
            TimerKind::Cap => (&mut call.cap_at, CallTimer::Cap(key)),
            TimerKind::Transfer => (&mut call.transfer_at, CallTimer::Transfer(key)),
            TimerKind::Legs => (&mut call.legs_at, CallTimer::Legs(key)),
        };
        if let Some(old) = slot.take() {
            self.timers.remove(&(old, timer));
        }
        if let Some(at) = at {
            *slot = Some(at);
            self.timers.insert((at, timer));
        }
    }

    // ----- the controller API -----

    pub(crate) fn ring_for_controller(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        key: CallKey,
        request: RingRequest,
        reply: oneshot::Sender<Result<RingOutcome, CallError>>,
    ) -> Result<(), (CallError, oneshot::Sender<Result<RingOutcome, CallError>>)> {
        let Some(call) = self.table.get_mut(key) else { return Err((CallError::NoSuchCall, reply)) };
        if matches!(call.phase, Phase::Bridged { .. }) {
            return Err((CallError::InvalidState("the call is bridged or over"), reply));
        }
        if call.ring().is_some() {
            return Err((CallError::InvalidState("already ringing"), reply));
        }
        let users: Vec<Arc<User>> = request.extensions.iter().filter_map(|id| cx.dir.by_id(*id).cloned()).collect();
        let caller_id = request.caller_id.map(|(name, number)| Party::from_untrusted(name.as_deref(), Some(&number)));
        // numbers outside go through the outbound routes; a flow is the administrator's, so
        // no extension's classes apply, but the PBX's limit of calls out does
        let mut outside = Vec::new();
        if !request.numbers.is_empty() {
            let shown = caller_id.clone().unwrap_or_else(|| call.caller.clone());
            let placer = crate::routing::Placer::Flow { caller: crate::routing::CallerId { name: shown.name.clone(), number: shown.number.clone() } };
            let all_trunks: Vec<i64> = cx.dir.trunks().iter().map(|t| t.id).collect();
            let out_now = self.table.calls().filter(|c| c.outbound.is_some() && c.key != key).count() as u32;
            for number in &request.numbers {
                match crate::routing::plan(number, &placer, cx.dir.routes(), &self.limits.emergency_numbers, &all_trunks) {
                    Ok(p) if p.emergency || out_now < self.limits.max_calls => {
                        if let Some(call) = self.table.get_mut(key)
                            && call.outbound.is_none()
                        {
                            call.outbound = Some(Outbound { route_id: p.route_id, emergency: p.emergency, trunk_id: None });
                        }
                        outside.push(TrunkAttempt::all_of(&p));
                    }
                    Ok(_) => {
                        tracing::warn!(key = %key, %number, "a flow's call out refused: the PBX's outbound limit is reached");
                        let number = number.clone();
                        self.shared.emit(|| PbxEvent::OutboundLimit { extension_id: 0, number, limit: "pbx_concurrent_calls" });
                    }
                    Err(e) => tracing::warn!(key = %key, %number, refusal = ?e, "a flow's number has no outbound route"),
                }
            }
        }
        if users.is_empty() && outside.is_empty() {
            let outcome = if request.numbers.is_empty() { RingOutcome::Unavailable } else { RingOutcome::Failed(404) };
            let _ = reply.send(Ok(outcome));
            return Ok(());
        }
        if users.is_empty() && outside.len() == 1 {
            // one number: its route's trunks in turn, failing over
            let attempts = outside.pop().unwrap_or_default();
            self.ring_trunks(cx, now, key, attempts, request.timeout, Completion::Notify(reply));
            return Ok(());
        }
        self.ring_extensions(cx, now, key, &users, Some(request.timeout), caller_id, Completion::Notify(reply), None, outside);
        Ok(())
    }

    pub(crate) fn hangup_for_controller(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, code: u16) -> Result<(), CallError> {
        let Some(call) = self.table.get(key) else { return Err(CallError::NoSuchCall) };
        let code = if (300..700).contains(&code) { code } else { 480 };
        let cause = if call.answered_at.is_some() {
            Cause::Normal
        } else {
            match code {
                486 | 600 => Cause::Busy,
                603 => Cause::Declined,
                404 | 484 | 604 => Cause::NotFound,
                480 | 408 => Cause::NoAnswer,
                c => Cause::Failed(c),
            }
        };
        self.end_call(cx, now, key, code, cause, None);
        Ok(())
    }

    // ----- responses to our requests -----

    pub(crate) fn on_response(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, msg: Message) {
        let Some(code) = msg.status() else { return };
        if let Some((dest, cancel)) = self.table.take_owed_cancel(tx) {
            if code < 200 {
                self.send_fire(cx, now, dest, Some(cancel));
            } else if code < 300 {
                self.kill_stray_2xx(cx, now, &msg, Some(dest));
            }
            self.table.take_client(tx);
            return;
        }
        let Some((role, dest)) = self.table.client(tx) else {
            if (200..300).contains(&code) && msg.cseq().is_some_and(|c| c.method == Method::Invite) {
                self.kill_stray_2xx(cx, now, &msg, None);
            }
            return;
        };
        if code >= 200 {
            self.table.take_client(tx);
        }
        match role {
            ClientRole::BInvite { call, leg } => self.on_leg_response(cx, now, tx, call, leg, code, msg, dest),
            ClientRole::ReInvite { call, to, server } => self.on_reinvite_response(cx, now, tx, call, to, server, code, msg),
            ClientRole::LocalReInvite { call, to } => {
                if code >= 200 {
                    self.on_local_reinvite_response(cx, now, tx, call, to, code, msg);
                }
            }
            ClientRole::Relay { call, to, server } => {
                if code >= 200 {
                    let update_ok = (200..300).contains(&code) && msg.cseq().is_some_and(|s| s.method == Method::Update);
                    if update_ok {
                        self.session_refreshed(now, call);
                    }
                    self.relay_response(cx, now, server, call, to, &msg);
                }
            }
            ClientRole::Fire => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_leg_response(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, key: CallKey, idx: LegIdx, code: u16, msg: Message, dest: Peer) {
        let Some(call) = self.table.get_mut(key) else {
            if (200..300).contains(&code) {
                self.kill_stray_2xx(cx, now, &msg, Some(dest));
            }
            return;
        };
        if call.leg(idx).is_some_and(|l| l.purpose == LegPurpose::Transfer) {
            return self.on_transfer_leg_response(cx, now, tx, key, idx, code, msg, dest);
        }
        let caller_answered = call.caller_answered();
        // side B's SDP is this leg's while no callee is bridged: its SRTP policy applies
        if call.winner().is_none()
            && let Some(policy) = call.leg(idx).map(|l| target_policy(cx.dir, l.target))
            && let Some(m) = call.media.as_mut()
        {
            m.set_policy(Side::B, policy);
        }
        let Some(leg) = call.leg_mut(idx) else { return };
        if code < 200 {
            leg.provisional = true;
            if code == 100 || leg.state != LegState::Calling || caller_answered {
                return;
            }
            let quiet = leg.confirm;
            // 180/183 go to the caller; the first early SDP with them (an answer to the
            // caller's offer: without one there is nothing it could answer). A leg that must
            // confirm relays none: what plays there is a carrier's, not the callee.
            let with_sdp = !quiet && !msg.body().is_empty() && !call.a.early_media && call.media.as_ref().is_none_or(SdpState::caller_offer_pending);
            let a_tx = call.a.tx;
            let a_peer = call.a.source;
            let to_tag = call.a.to_tag.clone();
            let contact = call.a.contact.clone();
            let body = if with_sdp {
                match self.sdp_across(cx, key, Side::B, SdpKind::EarlyAnswer, msg.content_type(), msg.body(), a_peer) {
                    Ok(b) if !b.1.is_empty() => Some(b),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::debug!(key = %key, ?e, "early SDP of a callee not usable");
                        None
                    }
                }
            } else {
                None
            };
            if body.is_some()
                && let Some(call) = self.table.get_mut(key)
            {
                call.a.early_media = true;
            }
            let resp_code = if code == 183 && body.is_none() { 180 } else { code };
            let Some(req) = cx.sig.txl.request(a_tx) else { return };
            let mut r = Message::response_to(req, resp_code, None, Some(&to_tag));
            let built = r.push_header(HeaderName::Contact, &format!("<{contact}>")).and_then(|()| match body {
                Some((ct, b)) => r.set_body(ct.as_deref(), b),
                None => Ok(()),
            });
            if built.is_err() {
                tracing::warn!(key = %key, "a provisional answer could not be written: not relayed");
                return;
            }
            let _ = cx.sig.txl.send_response(now, a_tx, r);
            return;
        }
        if code < 300 {
            return self.on_leg_answered(cx, now, tx, key, idx, msg, dest);
        }
        if leg.state == LegState::Calling {
            if matches!(code, 401 | 407) && matches!(leg.target, LegTarget::Trunk { auth_tried: false, .. }) && self.authenticate_leg(cx, now, key, idx, &msg) {
                return;
            }
            let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) else { return };
            leg.state = LegState::Done;
            leg.code = Some(code);
            if self.fail_over_leg(cx, now, key, idx, code) {
                return;
            }
        }
        self.after_leg_failed(cx, now, key);
    }

    /// A leg of the ring ended without winning: when nothing else rings, follow-me's next
    /// step starts, or the ring ends with what the legs answered.
    fn after_leg_failed(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get(key) else { return };
        let Some(ring) = call.ring() else { return };
        let this_ring = || call.legs.iter().skip(ring.first_leg).filter(|l| l.purpose == LegPurpose::Ring);
        if this_ring().any(BLeg::active) {
            return;
        }
        if self.next_follow_me_step(cx, now, key) {
            return;
        }
        let Some(call) = self.table.get_mut(key) else { return };
        let Some(ring) = call.ring() else { return };
        let codes: Vec<u16> = call.legs.iter().skip(ring.first_leg).filter(|l| l.purpose == LegPurpose::Ring).filter_map(|l| l.code).collect();
        let cause = if ring.follow.is_some() { follow_me::cause(&codes) } else { Cause::from_leg_codes(&codes) };
        let Some(ring) = call.take_ring() else { return };
        self.set_timer(key, TimerKind::Legs, None);
        self.finish_ring(cx, now, key, cause, ring.completion);
    }

    fn on_leg_answered(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, key: CallKey, idx: LegIdx, msg: Message, dest: Peer) {
        let Some(call) = self.table.get_mut(key) else { return };
        // the caller still waits for an answer, or a flow answered it and rings on its behalf
        let caller_waits = match call.phase {
            Phase::Waiting { .. } => true,
            Phase::AnsweredLocally { .. } => call.a.dialog.is_some(),
            Phase::Bridged { .. } => false,
        };
        let Some(leg) = call.leg_mut(idx) else { return };
        let won = caller_waits && leg.state == LegState::Calling;
        let dialog = Dialog::uac(&leg.invite, &msg, &leg.contact);
        if !won {
            // Another leg won, or the caller is gone: take this answer and end it.
            leg.state = LegState::Done;
            if let Ok(d) = dialog {
                self.ack_and_bye(cx, now, tx, dest, d);
            }
            return;
        }
        let dialog = match dialog {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "unusable 2xx from a callee");
                leg.state = LegState::Done;
                leg.code = Some(502);
                return self.after_leg_failed(cx, now, key);
            }
        };
        // Our INVITE carried an offer (the 2xx answers it) or not (the 2xx offers, the
        // caller's ACK will answer).
        let b_offered = !leg.invite.body().is_empty();
        let confirm = leg.confirm;
        // a follow-me number outside confirms first (it needs media to hear the prompt)
        if confirm && b_offered && call.media.is_some() && self.media.is_some() {
            return self.start_confirming(cx, now, tx, key, idx, msg, dest, dialog);
        }
        if confirm {
            // a delayed-offer caller (or a PBX without media): no prompt can be heard
            tracing::warn!(key = %key, "a follow-me number answered a call FlowPBX cannot play to (no offer from the caller): put through unconfirmed");
        }
        let a_peer = call.a.source;
        let kind = if b_offered { SdpKind::Answer } else { SdpKind::Offer };
        let (ct, body) = match self.sdp_across(cx, key, Side::B, kind, msg.content_type(), msg.body(), a_peer) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(key = %key, ?e, "a callee answered with SDP FlowPBX cannot anchor: hung up");
                self.ack_and_bye(cx, now, tx, dest, dialog);
                if let Some(l) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) {
                    l.state = LegState::Done;
                    l.code = Some(488);
                }
                return self.after_leg_failed(cx, now, key);
            }
        };
        if b_offered {
            let via = cx.sig.via_for(dest);
            let _ = cx.sig.txl.send_ack(tx, dest, dialog.ack(&via));
        }
        let Some(call) = self.table.get_mut(key) else { return };
        if !b_offered {
            call.pending_ack = Some((Side::B, tx));
        }
        let Some(leg) = call.leg_mut(idx) else { return };
        leg.dialog = Some(dialog);
        self.leg_wins(cx, now, key, idx, ct, body);
    }

    /// A leg answered (and confirmed, where it had to): the caller is bridged to it, the
    /// other legs stop, the ring's controller hears who answered. `ct`/`body` answer the
    /// caller when it still waits.
    fn leg_wins(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, idx: LegIdx, ct: Option<String>, body: Bytes) {
        let Some(call) = self.table.get_mut(key) else { return };
        let local = call.answered_locally();
        let Some(leg) = call.leg_mut(idx) else { return };
        leg.state = LegState::Answered;
        let target = leg.target;
        let ring = call.take_ring();
        call.phase = Phase::Bridged { winner: idx };
        if call.answered_at.is_none() {
            self.shared.metrics.setup.observe(now.saturating_duration_since(call.started_at));
        }
        call.answered_at.get_or_insert(now);
        // The other legs stop ringing (a number confirming is hung up).
        let mut stop = Vec::new();
        let mut hang = Vec::new();
        for (i, l) in call.legs.iter_mut().enumerate() {
            if i == idx.0 {
                continue;
            }
            match l.state {
                LegState::Calling => {
                    l.state = LegState::Done;
                    stop.push((l.tx, l.dest, l.provisional, cancel_for(&l.invite)));
                }
                LegState::Confirming => {
                    l.state = LegState::Done;
                    if let Some(d) = l.dialog.take() {
                        hang.push((l.dest, d));
                    }
                }
                _ => {}
            }
        }
        for (ltx, d, provisional, cancel) in stop {
            self.cancel_leg(cx, now, ltx, d, provisional, cancel);
        }
        self.hang_up_confirming(cx, now, key, hang);
        self.set_timer(key, TimerKind::Ring, None);
        self.set_timer(key, TimerKind::Legs, None);
        let (answering_extension, answering_trunk) = match target {
            LegTarget::Extension(id) => (Some(id), None),
            LegTarget::Trunk { trunk_id, .. } => (None, Some(trunk_id)),
        };
        self.record_if_asked(cx, key, answering_extension, answering_trunk);
        self.cap_outbound_call(cx, now, key);
        if local {
            // the caller, answered by a flow, heard ringback: now the callee
            if let Some(m) = self.media.as_mut() {
                m.stop_playback(key, media::LegId::A);
            }
        } else {
            self.answer_caller(cx, now, key, ct, body);
        }
        self.publish(key);
        if let Some(Ring { completion: Completion::Notify(reply), .. }) = ring {
            let outcome = match target {
                LegTarget::Extension(id) => RingOutcome::Answered(id),
                LegTarget::Trunk { trunk_id, .. } => RingOutcome::AnsweredOutside { trunk_id },
            };
            let _ = reply.send(Ok(outcome));
        }
    }

    /// An answered outbound call of an extension with a daily minute cap ends when the cap is
    /// reached.
    fn cap_outbound_call(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get(key) else { return };
        let (Some(out), Some(ext)) = (&call.outbound, call.caller_ext) else { return };
        if out.emergency {
            return;
        }
        let Some(cap) = cx.dir.by_id(ext).map(|u| u.daily_outbound_minutes).filter(|m| *m > 0) else { return };
        let left = (u64::from(cap) * 60).saturating_sub(self.used_today(ext, now));
        self.set_timer(key, TimerKind::Cap, Some(now + Duration::from_secs(left)));
    }

    /// The daily minute cap ran out during the call.
    pub(crate) fn cap_reached(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get(key) else { return };
        let ext = call.caller_ext.unwrap_or(0);
        let number = call.callee.clone();
        tracing::warn!(key = %key, extension = ext, "daily outbound minutes used up: the call ends");
        self.limit_tripped(ext, &number, "daily_minutes");
        self.end_call(cx, now, key, 0, Cause::LimitReached, None);
    }

    /// Acknowledges a 2xx we do not want and hangs its dialog up.
    fn ack_and_bye(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, dest: Peer, mut d: Dialog) {
        let via = cx.sig.via_for(dest);
        let _ = cx.sig.txl.send_ack(tx, dest, d.ack(&via));
        let via = cx.sig.via_for(dest);
        let bye = d.request(Method::Bye, &via);
        self.send_fire(cx, now, dest, Some(bye));
    }

    /// Records the call (both legs, stereo) when the caller's or the answering extension's
    /// recording mode is `always`, when it arrived through a trunk that records inbound calls,
    /// or when a trunk that records outbound calls answered it.
    fn record_if_asked(&mut self, cx: &mut Ctx<'_>, key: CallKey, answering_extension: Option<i64>, answering_trunk: Option<i64>) {
        let Some(call) = self.table.get_mut(key) else { return };
        call.answer_ext = answering_extension;
        let wants = |id: Option<i64>| id.and_then(|id| cx.dir.by_id(id)).is_some_and(|u| u.record_always);
        let trunk_in = call.inbound_trunk.and_then(|id| cx.dir.trunk(id)).is_some_and(|t| t.record_inbound);
        let trunk_out = answering_trunk.and_then(|id| cx.dir.trunk(id)).is_some_and(|t| t.record_outbound);
        if !(wants(call.caller_ext) || wants(answering_extension) || trunk_in || trunk_out) || call.recording.is_some() {
            return;
        }
        self.start_recording(key, None);
    }

    /// Starts recording the call (both legs, stereo) under `<answer ms>-<Call-ID>` (a later
    /// on-demand segment under its own start time).
    fn start_recording(&mut self, key: CallKey, at: Option<Instant>) {
        let Some(call) = self.table.get(key) else { return };
        let stamp = wall(at.or(call.answered_at).unwrap_or(call.started_at)).unix_millis();
        let name = format!("{stamp}-{}", call.a.invite.call_id().unwrap_or("call"));
        let Some(port) = self.media.as_mut() else { return };
        let path = port.record(key, &name);
        if let Some(call) = self.table.get_mut(key) {
            call.recording_on = path.is_some();
            if call.recording.is_none() {
                call.recording = path;
            }
        }
    }

    /// The on-demand recording code: `*` then `1` within three seconds from a side whose
    /// extension records on demand toggles the recording, with a beep to both sides.
    /// Returns whether the digit was taken as part of the code.
    fn recording_code(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, from: Side, digit: char) -> bool {
        let Some(call) = self.table.get_mut(key) else { return false };
        let ext = match from {
            Side::A => call.caller_ext,
            Side::B => call.answer_ext,
        };
        if call.winner().is_none() || !ext.and_then(|id| cx.dir.by_id(id)).is_some_and(|u| u.record_on_demand) {
            return false;
        }
        match digit {
            '*' => {
                call.star = Some((from, now));
                true
            }
            '1' if call.star.is_some_and(|(side, at)| side == from && now.saturating_duration_since(at) <= Duration::from_secs(3)) => {
                call.star = None;
                let on = call.recording_on;
                if on {
                    call.recording_on = false;
                    if let Some(port) = self.media.as_mut() {
                        port.stop_record(key);
                    }
                } else {
                    self.start_recording(key, Some(now));
                }
                tracing::info!(key = %key, recording = !on, "on-demand recording toggled");
                if let Some(port) = self.media.as_mut() {
                    port.play_prompt(key, media::LegId::A, media::prompts::BEEP, 1);
                    port.play_prompt(key, media::LegId::B, media::prompts::BEEP, 1);
                }
                true
            }
            _ => {
                call.star = None;
                false
            }
        }
    }

    /// Answers the caller with a 2xx carrying `body` (FlowPBX's SDP toward it), starting its
    /// dialog and session timer; the CDR's answer time is written.
    pub(crate) fn answer_caller(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, ct: Option<String>, body: Bytes) {
        let Some(call) = self.table.get_mut(key) else { return };
        let a_tx = call.a.tx;
        let Some(req) = cx.sig.txl.request(a_tx) else { return };
        let mut ok = Message::response_to(req, 200, None, Some(&call.a.to_tag));
        let built = ok
            .push_header(HeaderName::Contact, &format!("<{}>", call.a.contact))
            .and_then(|()| ok.push_header(HeaderName::Allow, ALLOW))
            .and_then(|()| if body.is_empty() { Ok(()) } else { ok.set_body(ct.as_deref(), body) });
        if built.is_err() {
            tracing::warn!(key = %key, "the answer could not be written: the call ends");
            return self.end_call(cx, now, key, 500, Cause::Failed(500), None);
        }
        // RFC 4028: a caller that supports session timers refreshes the session; we hang
        // up when it stops.
        let refresher_is_caller = call.a.invite.session_expires().is_some_and(|se| se.refresher != Some(sip::msg::Refresher::Uas));
        if refresher_is_caller && call.a.invite.supports("timer") {
            let cfg = SessionTimerConfig { interval: self.session_expires, ..SessionTimerConfig::default() };
            call.session = SessionTimer::answer(&cfg, &call.a.invite, &mut ok, now).ok();
        }
        call.a.dialog = Dialog::uas(&call.a.invite, &call.a.to_tag, &call.a.contact, true).ok();
        // a callee's answer bridged the call already; otherwise FlowPBX answers it itself
        if let Phase::Waiting { ring } = &mut call.phase {
            let ring = ring.take();
            call.phase = Phase::AnsweredLocally { ring };
        }
        if call.answered_at.is_none() {
            self.shared.metrics.setup.observe(now.saturating_duration_since(call.started_at));
        }
        call.answered_at.get_or_insert(now);
        let session_at = call.session.map(|s| s.expires_at());
        let _ = cx.sig.txl.send_response(now, a_tx, ok);
        self.ops.push(PersistOp::CdrAnswer { key, at: wall(now) });
        self.set_timer(key, TimerKind::Session, session_at);
    }

    /// Stops a leg that is still ringing: CANCEL now, or as soon as it sends a provisional
    /// response (RFC 3261 §9.1).
    fn cancel_leg(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, dest: Peer, provisional: bool, cancel: Option<Message>) {
        let Some(cancel) = cancel else { return };
        if provisional {
            self.send_fire(cx, now, dest, Some(cancel));
        } else {
            self.table.owe_cancel(tx, dest, cancel);
        }
    }

    /// A 2xx to an INVITE nobody wants (a late fork, a leg that lost the race after its
    /// transaction ended): acknowledge it and hang it up.
    pub(crate) fn kill_stray_2xx(&mut self, cx: &mut Ctx<'_>, now: Instant, msg: &Message, dest: Option<Peer>) {
        let (Some(from), Some(cseq)) = (msg.header(HeaderName::From), msg.cseq()) else { return };
        let Some(contact) = msg.contact().map(|c| c.uri_str.to_owned()) else { return };
        let Some(dest) = dest.or_else(|| peer_of_uri(&contact)) else { return };
        let Ok(mut invite) = Message::request(Method::Invite, &contact) else { return };
        if invite.push_header(HeaderName::From, from).and_then(|()| invite.push_header(HeaderName::CSeq, &format!("{} INVITE", cseq.seq))).is_err() {
            return;
        }
        let local_contact = cx.sig.contact_for("flowpbx", dest);
        let Ok(mut d) = Dialog::uac(&invite, msg, &local_contact) else { return };
        let via = cx.sig.via_for(dest);
        cx.sig.txl.send_stateless(dest, &d.ack(&via));
        let via = cx.sig.via_for(dest);
        let bye = d.request(Method::Bye, &via);
        self.send_fire(cx, now, dest, Some(bye));
    }

    fn send_fire(&mut self, cx: &mut Ctx<'_>, now: Instant, dest: Peer, req: Option<Message>) {
        let Some(req) = req else { return };
        match cx.sig.txl.send_request(now, dest, req) {
            Ok(tx) => {
                self.table.add_client(tx, ClientRole::Fire, dest);
            }
            Err(e) => tracing::debug!(error = %e, "request not sent"),
        }
    }

    pub(crate) fn on_client_failure(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, code: u16) {
        self.table.take_owed_cancel(tx);
        let Some((role, _)) = self.table.take_client(tx) else { return };
        match role {
            ClientRole::BInvite { call, leg } => {
                let transfer = self.table.get(call).and_then(|c| c.leg(leg)).is_some_and(|l| l.purpose == LegPurpose::Transfer);
                let mut failed = false;
                if let Some(l) = self.table.get_mut(call).and_then(|c| c.leg_mut(leg))
                    && l.state == LegState::Calling
                {
                    l.state = LegState::Done;
                    l.code = Some(code);
                    failed = true;
                }
                if transfer {
                    self.transfer_leg_failed(cx, now, call, code);
                } else if !(failed && self.fail_over_leg(cx, now, call, leg, code)) {
                    self.after_leg_failed(cx, now, call);
                }
            }
            ClientRole::ReInvite { server, call, .. } | ClientRole::Relay { server, call, .. } => {
                if self.table.get(call).is_some() {
                    cx.sig.reply(now, server, code);
                }
            }
            ClientRole::LocalReInvite { call, .. } => {
                if let Some(m) = self.table.get_mut(call).and_then(|c| c.media.as_mut()) {
                    m.offer = None;
                }
            }
            ClientRole::Fire => {}
        }
    }

    // ----- CANCEL, ACK, timeouts -----

    pub(crate) fn on_cancel(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, invite: ServerTxId) {
        cx.sig.reply(now, tx, 200);
        match self.table.by_a_invite(invite) {
            Some(key) => {
                let ring = self.table.get_mut(key).and_then(Call::take_ring);
                match ring {
                    Some(r) => {
                        self.stop_ringing(cx, now, key);
                        self.finish_ring(cx, now, key, Cause::OriginatorCancel, r.completion)
                    }
                    None => self.end_call(cx, now, key, 487, Cause::OriginatorCancel, None),
                }
            }
            None => cx.sig.reply(now, invite, 487),
        }
    }

    pub(crate) fn on_ack(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: Option<ServerTxId>, msg: Message) {
        let found = self.find_call(&msg);
        let key = tx.and_then(|t| self.table.by_a_invite(t)).or(found.map(|(k, _)| k));
        let Some(key) = key else { return };
        let side = match found {
            Some((_, Some(s))) => s,
            // an ACK on a retired dialog concerns nothing that remains
            Some((_, None)) => return,
            None => Side::A,
        };
        let Some(call) = self.table.get_mut(key) else { return };
        let Some((to, ctx)) = call.pending_ack else {
            // the answer to an offer FlowPBX made itself in its 2xx
            if self.local_offer_to(key, side) {
                let toward = self.side_peer(key, side);
                if let Some(toward) = toward
                    && let Err(e) = self.sdp_across(cx, key, side, SdpKind::Answer, msg.content_type(), msg.body(), toward)
                {
                    tracing::info!(key = %key, ?e, "the ACK's SDP answer is not usable");
                    // a side that must be encrypted answered without usable keys: its media
                    // would flow in clear, so the call ends
                    if e == crate::sdp_media::SdpFault::Crypto {
                        return self.end_call(cx, now, key, 0, Cause::Failed(488), None);
                    }
                }
            }
            return;
        };
        if to == side {
            return;
        }
        call.pending_ack = None;
        let Some(peer) = self.side_peer(key, to) else { return };
        let (ct, body) = match self.sdp_across(cx, key, side, SdpKind::Answer, msg.content_type(), msg.body(), peer) {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(key = %key, ?e, "the ACK's SDP answer cannot be anchored: hanging up");
                let via = cx.sig.via_for(peer);
                if let Some(d) = self.side_dialog(key, to) {
                    let ack = d.ack(&via);
                    let _ = cx.sig.txl.send_ack(ctx, peer, ack);
                }
                return self.end_call(cx, now, key, 0, Cause::Failed(488), None);
            }
        };
        let via = cx.sig.via_for(peer);
        let Some(dialog) = self.side_dialog(key, to) else { return };
        let mut ack = dialog.ack(&via);
        if !body.is_empty() && ack.set_body(ct.as_deref(), body).is_err() {
            tracing::warn!(key = %key, "an ACK body could not be written: sent without it");
        }
        let _ = cx.sig.txl.send_ack(ctx, peer, ack);
    }

    pub(crate) fn on_ack_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId) {
        if let Some(key) = self.table.by_a_invite(tx)
            && self.table.get(key).is_some_and(|c| c.answered_at.is_some())
        {
            tracing::info!(key = %key, "the caller never acknowledged the answer: hanging up");
            self.end_call(cx, now, key, 0, Cause::AckTimeout, None);
        }
    }

    /// Marks every ringing leg done and cancels it (and hangs up a number confirming).
    fn stop_ringing(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get_mut(key) else { return };
        let mut stop = Vec::new();
        let mut hang = Vec::new();
        for l in call.legs.iter_mut().filter(|l| l.active()) {
            if l.state == LegState::Confirming {
                if let Some(d) = l.dialog.take() {
                    hang.push((l.dest, d));
                }
            } else {
                stop.push((l.tx, l.dest, l.provisional, cancel_for(&l.invite)));
            }
            l.state = LegState::Done;
            l.code.get_or_insert(487);
        }
        for (tx, d, p, c) in stop {
            self.cancel_leg(cx, now, tx, d, p, c);
        }
        self.hang_up_confirming(cx, now, key, hang);
        self.set_timer(key, TimerKind::Legs, None);
    }

    pub(crate) fn ring_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get_mut(key) else { return };
        call.ring_at = None;
        let Some(ring) = call.take_ring() else { return };
        self.stop_ringing(cx, now, key);
        self.finish_ring(cx, now, key, Cause::NoAnswer, ring.completion);
    }

    pub(crate) fn session_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get_mut(key) else { return };
        call.session_at = None;
        let due = call.session.is_some_and(|s| s.expires_at() <= now);
        if due {
            tracing::info!(key = %key, "session timer expired: hanging up");
            self.end_call(cx, now, key, 0, Cause::SessionTimeout, None);
        } else {
            let at = call.session.map(|s| s.expires_at());
            self.set_timer(key, TimerKind::Session, at);
        }
    }

    fn session_refreshed(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.table.get_mut(key) else { return };
        let Some(st) = call.session.as_mut() else { return };
        st.refreshed(now);
        let at = st.expires_at();
        self.set_timer(key, TimerKind::Session, Some(at));
    }

    // ----- in-dialog requests -----

    /// The call and side a request or ACK belongs to; the side is `None` for a dialog a
    /// transfer retired (the transferor's).
    fn find_call(&self, msg: &Message) -> Option<(CallKey, Option<Side>)> {
        let call_id = msg.call_id()?;
        if let Some(k) = msg.from_tag().and_then(|t| self.table.by_caller_dialog(call_id, t)) {
            let retired = self.table.get(k).is_some_and(|c| c.a_leg.is_some());
            return Some((k, (!retired).then_some(Side::A)));
        }
        let (k, leg) = self.table.by_leg_call_id(call_id)?;
        let call = self.table.get(k)?;
        if call.winner() == Some(leg) {
            return Some((k, Some(Side::B)));
        }
        if call.a_leg == Some(leg) {
            return Some((k, Some(Side::A)));
        }
        call.leg(leg).is_some_and(|l| l.state == LegState::Retired).then_some((k, None))
    }

    /// The confirmed dialog of a side.
    fn side_dialog(&mut self, key: CallKey, side: Side) -> Option<&mut Dialog> {
        let call = self.table.get_mut(key)?;
        match side {
            Side::A => match call.a_leg {
                Some(l) => call.leg_mut(l)?.dialog.as_mut(),
                None => call.a.dialog.as_mut(),
            },
            Side::B => {
                let w = call.winner()?;
                call.leg_mut(w)?.dialog.as_mut()
            }
        }
    }

    /// Where a side is reached (the address we have been talking to: symmetric signalling,
    /// so phones behind NAT are reached through their NAT binding).
    fn side_peer(&self, key: CallKey, side: Side) -> Option<Peer> {
        let call = self.table.get(key)?;
        match side {
            Side::A => match call.a_leg {
                Some(l) => call.leg(l).map(|l| l.dest),
                None => Some(call.a.source),
            },
            Side::B => call.leg(call.winner()?).map(|l| l.dest),
        }
    }

    pub(crate) fn on_in_dialog(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: Message) {
        let Some(method) = msg.method().cloned() else { return };
        let Some((key, side)) = self.find_call(&msg) else {
            if let Some((key, idx)) = msg.call_id().and_then(|c| self.table.by_leg_call_id(c))
                && self.table.get(key).and_then(|c| c.leg(idx)).is_some_and(|l| l.state == LegState::Confirming)
            {
                return self.on_confirming_request(cx, now, tx, key, idx, &msg);
            }
            return cx.sig.reply(now, tx, 481);
        };
        let Some(side) = side else {
            // the dialog of a party that transferred its call away: its BYE ends only that
            return if method == Method::Bye { cx.sig.reply(now, tx, 200) } else { cx.sig.reply(now, tx, 481) };
        };
        let check = match self.side_dialog(key, side) {
            Some(d) => d.on_request(&msg),
            None => return cx.sig.reply(now, tx, 481),
        };
        if let Err(e) = check {
            let (code, reason) = e.status().unwrap_or((500, "Server Internal Error"));
            return cx.sig.reply_with(now, tx, code, Some(reason), |_| Ok(()));
        }
        let anchored = self.table.get(key).is_some_and(|c| c.media.is_some());
        let alone = self.side_dialog(key, other(side)).is_none();
        match method {
            Method::Bye => {
                cx.sig.reply(now, tx, 200);
                self.end_call(cx, now, key, 0, Cause::Normal, Some(side));
            }
            Method::Info if anchored && is_dtmf_info(msg.content_type()) => self.on_info_dtmf(cx, now, key, side, tx, &msg),
            // a side with nobody on the other end (a caller in a flow): FlowPBX answers
            Method::Invite | Method::Update if alone && anchored => self.on_local_reoffer(cx, now, key, side, tx, &msg),
            Method::Options | Method::Info if alone => cx.sig.reply(now, tx, 200),
            Method::Invite | Method::Update | Method::Info | Method::Message | Method::Notify | Method::Options => {
                self.relay_request(cx, now, key, other(side), tx, &msg);
            }
            Method::Refer => self.on_refer(cx, now, key, side, tx, &msg),
            _ => cx.sig.reply_with(now, tx, 405, None, |r| r.push_header(HeaderName::Allow, ALLOW)),
        }
    }

    /// Relays an in-dialog request to the other side's dialog.
    fn relay_request(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, to: Side, server: ServerTxId, msg: &Message) {
        let Some(method) = msg.method().cloned() else { return };
        if msg.max_forwards() == Some(0) {
            return cx.sig.reply(now, server, 483);
        }
        let Some(peer) = self.side_peer(key, to) else { return cx.sig.reply(now, server, 481) };
        let (ct, body) = if matches!(method, Method::Invite | Method::Update) {
            match self.sdp_across(cx, key, other(to), SdpKind::Offer, msg.content_type(), msg.body(), peer) {
                Ok(b) => b,
                Err(e) => {
                    let (code, reason) = fault_status(e);
                    return cx.sig.reply_with(now, server, code, Some(reason), |_| Ok(()));
                }
            }
        } else {
            not_sdp(msg)
        };
        let via = cx.sig.via_for(peer);
        let Some(dialog) = self.side_dialog(key, to) else { return cx.sig.reply(now, server, 481) };
        let mut req = dialog.request(method.clone(), &via);
        for h in [HeaderName::ContentDisposition, HeaderName::Event, HeaderName::SubscriptionState, HeaderName::SessionExpires, HeaderName::MinSe] {
            for v in msg.headers(h) {
                // copied from a parsed message: the parser refused CR, LF and NUL
                let _ = req.push_header(h, v);
            }
        }
        if let Some(mf) = msg.max_forwards() {
            let _ = req.set_header(HeaderName::MaxForwards, &mf.saturating_sub(1).min(70).to_string());
        }
        if !body.is_empty() && req.set_body(ct.as_deref(), body).is_err() {
            return cx.sig.reply_with(now, server, 500, None, |_| Ok(()));
        }
        match cx.sig.txl.send_request(now, peer, req) {
            Ok(ctx) => {
                let role = if method == Method::Invite { ClientRole::ReInvite { call: key, to, server } } else { ClientRole::Relay { call: key, to, server } };
                self.table.add_client(ctx, role, peer);
            }
            Err(e) => {
                tracing::debug!(error = %e, "relay failed");
                cx.sig.reply(now, server, 500);
            }
        }
    }

    /// Relays a final response from side `from` to the server transaction it answers, with
    /// our Contact.
    fn relay_response(&mut self, cx: &mut Ctx<'_>, now: Instant, server: ServerTxId, key: CallKey, from: Side, msg: &Message) {
        let Some(code) = msg.status() else { return };
        let (sdp_method, offered) = match cx.sig.txl.request(server) {
            Some(r) => (matches!(r.method(), Some(Method::Invite | Method::Update)), is_sdp(r.content_type(), r.body())),
            None => return,
        };
        let toward = self.side_peer(key, other(from));
        let (ct, body) = match toward {
            Some(toward) if sdp_method && (200..300).contains(&code) => {
                let kind = if offered { SdpKind::Answer } else { SdpKind::Offer };
                self.sdp_across(cx, key, from, kind, msg.content_type(), msg.body(), toward).unwrap_or_else(|e| {
                    tracing::warn!(key = %key, ?e, "an answer FlowPBX cannot anchor: relayed without SDP");
                    (None, Bytes::new())
                })
            }
            _ => not_sdp(msg),
        };
        let Some(req) = cx.sig.txl.request(server) else { return };
        let contact = self.table.get(key).map(|c| {
            // our Contact towards the side the request came from
            if self.table.by_caller_dialog(req.call_id().unwrap_or(""), req.from_tag().unwrap_or("")).is_some() {
                c.a.contact.clone()
            } else {
                c.winner().and_then(|w| c.leg(w)).map(|l| l.contact.clone()).unwrap_or_default()
            }
        });
        let mut r = Message::response_to(req, code, msg.reason(), None);
        let target_refresh = matches!(req.method(), Some(Method::Invite | Method::Update));
        if (200..300).contains(&code) {
            if let Some(c) = contact.filter(|c| target_refresh && !c.is_empty()) {
                let _ = r.push_header(HeaderName::Contact, &format!("<{c}>"));
            }
            // copied from a parsed message: the parser refused CR, LF and NUL
            for h in [HeaderName::SessionExpires, HeaderName::Require] {
                for v in msg.headers(h) {
                    let _ = r.push_header(h, v);
                }
            }
        }
        if (code == 491 || code == 503)
            && let Some(v) = msg.header(HeaderName::RetryAfter)
        {
            let _ = r.push_header(HeaderName::RetryAfter, v);
        }
        if !body.is_empty() && r.set_body(ct.as_deref(), body).is_err() {
            r = Message::response_to(req, 500, None, None);
        }
        let _ = cx.sig.txl.send_response(now, server, r);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_reinvite_response(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, key: CallKey, to: Side, server: ServerTxId, code: u16, msg: Message) {
        if code < 200 {
            return;
        }
        if (200..300).contains(&code) {
            let offer_in_invite = cx.sig.txl.request(server).is_some_and(|r| !r.body().is_empty());
            let peer = self.side_peer(key, to);
            let via = peer.map(|p| cx.sig.via_for(p));
            if let (Some(dialog), Some(peer), Some(via)) = (self.side_dialog(key, to), peer, via) {
                let _ = dialog.on_response(&msg);
                if offer_in_invite {
                    let ack = dialog.ack(&via);
                    let _ = cx.sig.txl.send_ack(tx, peer, ack);
                } else if let Some(c) = self.table.get_mut(key) {
                    c.pending_ack = Some((to, tx));
                }
            }
            self.session_refreshed(now, key);
        }
        self.relay_response(cx, now, server, key, to, &msg);
    }

    // ----- media: digits, re-offers to FlowPBX, timeouts -----

    /// A digit by SIP INFO: answered here and handed to the media session, which reports it
    /// (to a flow collecting digits) and relays it (RFC 4733, or INFO again via
    /// [`Core::on_media_digit`]).
    fn on_info_dtmf(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, side: Side, tx: ServerTxId, msg: &Message) {
        let ct = msg.content_type().unwrap_or("");
        if let Err(e) = media::dtmf::parse_sip_info(ct, msg.body()) {
            tracing::debug!(key = %key, error = %e, "unreadable DTMF INFO");
            return cx.sig.reply_with(now, tx, 400, Some("Bad DTMF Body"), |_| Ok(()));
        }
        cx.sig.reply(now, tx, 200);
        if let Some(port) = self.media.as_mut() {
            port.sip_info(key, media_leg(side), ct, msg.body());
        }
    }

    /// A re-INVITE or UPDATE from a side that has nobody on the other end (a caller a flow
    /// answered): FlowPBX answers it itself — a hold or a new address reaches the session.
    fn on_local_reoffer(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, side: Side, tx: ServerTxId, msg: &Message) {
        let Some(toward) = self.side_peer(key, side) else { return cx.sig.reply(now, tx, 481) };
        let contact = match self.table.get(key) {
            Some(c) if side == Side::A => c.a.contact.clone(),
            Some(c) => c.winner().and_then(|w| c.leg(w)).map(|l| l.contact.clone()).unwrap_or_default(),
            None => return cx.sig.reply(now, tx, 481),
        };
        if msg.method() == Some(&Method::Update) && msg.body().is_empty() {
            self.session_refreshed(now, key);
            return cx.sig.reply_with(now, tx, 200, None, |r| r.push_header(HeaderName::Contact, &format!("<{contact}>")));
        }
        match self.answer_locally(cx, key, side, Some(msg.body()), msg.content_type(), toward) {
            Ok((ct, body)) => {
                self.session_refreshed(now, key);
                cx.sig.reply_with(now, tx, 200, None, |r| {
                    r.push_header(HeaderName::Contact, &format!("<{contact}>"))?;
                    r.push_header(HeaderName::Allow, ALLOW)?;
                    if body.is_empty() {
                        Ok(())
                    } else {
                        r.set_body(ct.as_deref(), body)
                    }
                });
            }
            Err(e) => {
                let (code, reason) = fault_status(e);
                cx.sig.reply_with(now, tx, code, Some(reason), |_| Ok(()));
            }
        }
    }

    /// The media session heard nothing from a leg for the media timeout: BYE both sides.
    /// (The session does not count silence while a side holds.)
    pub(crate) fn on_media_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, leg: media::LegId) {
        if self.table.get(key).is_some_and(|c| c.answered_at.is_some()) {
            tracing::info!(key = %key, ?leg, "media timeout: hanging up both sides");
            self.end_call(cx, now, key, 0, Cause::MediaTimeout, None);
        }
    }

    /// A digit a leg pressed, from the media session: a bridged call relays it to the other
    /// side as SIP INFO when that side negotiated no telephone-event (otherwise the session
    /// already sent it as RFC 4733).
    pub(crate) fn on_media_digit(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, digit: media::DigitEvent) {
        if digit.leg == media::LegId::B && self.confirming_leg(key).is_some() {
            return self.on_confirm_digit(cx, now, key, digit.digit);
        }
        let from = if digit.leg == media::LegId::A { Side::A } else { Side::B };
        let to = other(from);
        // the code's digits still reach the other side (RFC 4733 is relayed by the media
        // path); only SIP INFO toward a side without telephone-event is ours to hold back
        if self.recording_code(cx, now, key, from, digit.digit) {
            return;
        }
        let Some(call) = self.table.get(key) else { return };
        if call.winner().is_none() || call.media.as_ref().and_then(|m| m.telephone_event(to)) != Some(false) {
            return;
        }
        let Some(peer) = self.side_peer(key, to) else { return };
        let via = cx.sig.via_for(peer);
        let Some(dialog) = self.side_dialog(key, to) else { return };
        let mut info = dialog.request(Method::Info, &via);
        let body = format!("Signal={}\r\nDuration={}\r\n", digit.digit, digit.duration.as_millis().clamp(40, 10_000));
        if info.set_body(Some("application/dtmf-relay"), Bytes::from(body)).is_ok() {
            self.send_fire(cx, now, peer, Some(info));
        }
    }

    /// A flow answers the caller: FlowPBX's own answer to the caller's offer (or its offer,
    /// answered by the ACK), a 2xx, the CDR's answer time. Nothing happens when answered.
    pub(crate) fn answer_for_controller(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) -> Result<(), CallError> {
        let Some(call) = self.table.get(key) else { return Err(CallError::NoSuchCall) };
        if call.caller_answered() {
            return if call.a.dialog.is_some() { Ok(()) } else { Err(CallError::NoSuchCall) };
        }
        if call.ring().is_some() {
            return Err(CallError::InvalidState("extensions are ringing"));
        }
        let toward = call.a.source;
        // the caller's offer is still pending (nothing answered it), so `None` reads it
        let (body_ct, body) = match self.answer_locally(cx, key, Side::A, None, None, toward) {
            Ok(b) => b,
            Err(e) => {
                let (code, _) = fault_status(e);
                self.end_call(cx, now, key, code, Cause::Failed(code), None);
                return Err(CallError::InvalidState("the caller's SDP cannot be answered"));
            }
        };
        self.answer_caller(cx, now, key, body_ct, body);
        self.publish(key);
        Ok(())
    }

    // ----- the end -----

    /// Ends a call: answers or hangs up the caller, cancels or hangs up the callee legs,
    /// writes the CDR's end. `a_code` answers an unanswered caller (0: the cause's status);
    /// `by` is the side that hung up (it gets no BYE).
    pub(crate) fn end_call(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, a_code: u16, cause: Cause, by: Option<Side>) {
        self.set_timer(key, TimerKind::Ring, None);
        self.set_timer(key, TimerKind::Session, None);
        self.set_timer(key, TimerKind::Cap, None);
        self.set_timer(key, TimerKind::Transfer, None);
        self.set_timer(key, TimerKind::Legs, None);
        let Some(mut call) = self.table.remove(key) else { return };
        let answered = call.answered_at.is_some();
        // The caller.
        if !call.caller_answered() {
            let code = if a_code >= 300 { a_code } else { cause.status() };
            if let Some(req) = cx.sig.txl.request(call.a.tx) {
                let r = Message::response_to(req, code, None, Some(&call.a.to_tag));
                let _ = cx.sig.txl.send_response(now, call.a.tx, r);
            }
        } else if by != Some(Side::A)
            && call.a_leg.is_none()
            && let Some(d) = call.a.dialog.as_mut()
        {
            let peer = call.a.source;
            let via = cx.sig.via_for(peer);
            let bye = d.request(Method::Bye, &via);
            self.send_fire(cx, now, peer, Some(bye));
        }
        // The callee legs (and a leg that took the caller's place in a transfer).
        let a_leg = call.a_leg;
        for (i, leg) in call.legs.iter_mut().enumerate() {
            let leg_side = if a_leg == Some(LegIdx(i)) { Side::A } else { Side::B };
            match leg.state {
                LegState::Calling => {
                    leg.state = LegState::Done;
                    let cancel = cancel_for(&leg.invite);
                    self.cancel_leg(cx, now, leg.tx, leg.dest, leg.provisional, cancel);
                }
                LegState::Answered | LegState::Confirming if by != Some(leg_side) => {
                    if let Some(d) = leg.dialog.as_mut() {
                        let via = cx.sig.via_for(leg.dest);
                        let bye = d.request(Method::Bye, &via);
                        self.send_fire(cx, now, leg.dest, Some(bye));
                    }
                }
                _ => {}
            }
        }
        if let Some(Ring { completion: Completion::Notify(reply), .. }) = call.take_ring() {
            let _ = reply.send(Ok(cause.outcome()));
        }
        // (the roles of legs still ringing stay until their INVITE finishes, so a late
        // answer is acknowledged and hung up)
        if call.media.is_some()
            && let Some(port) = self.media.as_mut()
        {
            port.close(key);
        }
        // the minutes an outbound call talked count towards its extension's day
        if let (Some(ext), Some(answered_at)) = (call.caller_ext.filter(|_| call.outbound.is_some()), call.answered_at) {
            let secs = now.saturating_duration_since(answered_at).as_secs();
            let today = wall(now).unix_millis().div_euclid(86_400_000);
            let e = self.usage.entry(ext).or_insert((today, 0));
            if e.0 != today {
                *e = (today, 0);
            }
            e.1 += secs;
        }
        let disposition = cause.disposition(answered);
        self.shared.metrics.call_ended(call.direction, disposition);
        self.ops.push(PersistOp::CdrEnd {
            key,
            start: wall(call.started_at),
            answer: call.answered_at.map(wall),
            end: CdrEnd {
                end_time: wall(now),
                disposition,
                hangup_cause: Some(cause.hangup_cause()),
                flow_path: serde_json::json!([]),
                recording_file: call.recording.take(),
                transfers: (!call.transfers.is_empty()).then(|| serde_json::Value::Array(std::mem::take(&mut call.transfers))),
                // an outbound call's trunk is the one it went out on; an inbound call keeps the
                // trunk it came from
                trunk_id: call.outbound.as_ref().filter(|_| call.direction == CallDirection::Outbound).and_then(|o| o.trunk_id),
            },
        });
        self.shared.calls.remove(&key);
        self.shared.emit(|| PbxEvent::CallEnded { key, disposition, cause: cause.cause_str() });
        tracing::debug!(key = %key, ?cause, answered, "call ended");
    }
}

/// SIP INFO carrying a DTMF digit.
fn is_dtmf_info(content_type: Option<&str>) -> bool {
    let mime = content_type.and_then(|c| c.split(';').next()).unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/dtmf-relay") || mime.eq_ignore_ascii_case("application/dtmf")
}

/// A relayed request's or response's body when it is not an offer/answer: passed unless it
/// is SDP (an OPTIONS answer's capabilities would name a phone's own address).
fn not_sdp(msg: &Message) -> (Option<String>, Bytes) {
    if is_sdp(msg.content_type(), msg.body()) {
        (None, Bytes::new())
    } else {
        (msg.content_type().map(str::to_owned), msg.body().clone())
    }
}

/// Which per-call timer.
#[derive(Debug, Clone, Copy)]
enum TimerKind {
    Ring,
    Session,
    /// A transfer target rings too long.
    Transfer,
    /// The daily outbound minute cap.
    Cap,
    /// Legs' deadlines and follow-me steps.
    Legs,
}

/// The address a URI names (for a stray answer we know nothing else about).
fn peer_of_uri(uri: &str) -> Option<Peer> {
    let sip::msg::Uri::Sip(u) = sip::msg::Uri::parse(uri)? else { return None };
    let ip = u.host.ip()?;
    let transport = match u.transport() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => sip::transaction::Transport::Tcp,
        _ => sip::transaction::Transport::Udp,
    };
    Some(Peer { transport, addr: std::net::SocketAddr::new(ip, u.port.unwrap_or(5060)) })
}

#[cfg(test)]
mod tests;
