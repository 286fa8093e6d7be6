//! Conference rooms in the socket layer: the threaded side of [`crate::mixer::Room`].
//!
//! A room lives on one relay worker (the worker of the session that joined it first) and
//! ticks on that worker's clock with the sessions' timers. Every session with a leg in the
//! room lives on the same worker, so a participant's packets go from its socket into the
//! room's jitter buffer and the room's frames out of its socket without crossing a thread:
//! a session of another worker that joins is *moved* first (its sockets deregistered from
//! its worker's epoll and registered with the room worker's, its `route` updated so its
//! handles' commands follow it; commands already on their way are forwarded).
//!
//! ```no_run
//! # async fn demo(engine: media::MediaEngine, call: media::SessionHandle) -> media::Result<()> {
//! use media::*;
//! let room = engine.conference("bridge-7", ConferenceSettings { max_participants: 10, record: true, ..Default::default() });
//! let mut me = room.join(&call, LegId::A, JoinOptions { muted: false, announce: None }).await?;
//! let reason = me.left().await; // kicked, or the session closed
//! # let _ = reason; Ok(()) }
//! ```
//!
//! Nothing here blocks a relay thread: the registry's lock is taken by API calls only, the
//! workers touch atomics, non-blocking channels and the recorder's bounded queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::{broadcast, oneshot};

use super::{Cmd, MediaEngine, SessionControl, Slot, Worker};
use crate::codec::CodecKind;
use crate::mixer::{ParticipantId, Room, RoomConfig, RoomEvent};
use crate::player::{PlayRequest, Prompt};
use crate::recorder::RecordingSink;
use crate::session::{ConferencePacket, Session};
use crate::{LegId, MediaError, Result};

/// A worker index no worker has: the room has not been placed yet.
const UNPLACED: usize = usize::MAX;
/// Events a slow subscriber may fall behind by before it misses some (it is told: `Lagged`).
const EVENT_CAPACITY: usize = 256;

/// How a room is set up. Applied when the room is created (its first
/// [`MediaEngine::conference`] call); later calls for the same name get the running room.
#[derive(Debug, Clone)]
pub struct ConferenceSettings {
    /// Most participants at once (`conference_bridges.max_members`); 0 for no limit. A join
    /// over it fails with [`MediaError::ConferenceFull`].
    pub max_participants: usize,
    /// Record the mix (everyone plus announcements, 8 kHz mono WAV) from the first join to
    /// the last leave, to `<data-dir>/recordings/YYYY/MM/DD/conference-<name>-<HHMMSS>.wav`.
    /// Skipped, with an admin alert, when free disk is under the engine's threshold.
    pub record: bool,
    /// Rate the room mixes at: 8000 (G.711 rooms: no resampling) or 16000/24000/48000
    /// (wideband for Opus participants). Default 16000.
    pub mix_rate: u32,
    /// Mean absolute amplitude (of 32767) that counts as talking; 0 mixes everyone always.
    pub talk_threshold: u16,
    /// Looped to a participant while it is alone in the room (not recorded).
    pub music_when_alone: Option<Prompt>,
}

impl Default for ConferenceSettings {
    fn default() -> Self {
        let room = RoomConfig::default();
        ConferenceSettings { max_participants: 0, record: false, mix_rate: 16000, talk_threshold: room.talk_threshold, music_when_alone: None }
    }
}

/// How a leg joins.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// Joins muted (`conference_bridges.mute_on_join`): it hears the room, the room does not
    /// hear it until [`Participant::set_muted`]`(false)`.
    pub muted: bool,
    /// Played into the room when this participant joins and again when it leaves
    /// (`announce_joins`: e.g. `engine.prompts().load(media::prompts::BEEP)?`).
    pub announce: Option<Prompt>,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// [`Participant::leave`], or the [`Participant`] was dropped.
    Left,
    /// [`Conference::kick`].
    Kicked,
    /// Its media session was closed (the call ended).
    Hangup,
    /// The engine shut down.
    Shutdown,
}

/// What a room reports to [`Conference::subscribe`]rs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceEvent {
    /// A participant is in.
    Joined {
        /// Its id.
        participant: u64,
        /// Its session's call id.
        call_id: String,
        /// Its leg.
        leg: LegId,
    },
    /// A participant is out.
    Left {
        /// Its id.
        participant: u64,
        /// Why.
        reason: LeaveReason,
    },
    /// A participant started or stopped talking.
    Talking {
        /// Its id.
        participant: u64,
        /// Whether it talks now.
        talking: bool,
    },
    /// A participant was muted or unmuted.
    Muted {
        /// Its id.
        participant: u64,
        /// Whether it is muted now.
        muted: bool,
    },
    /// The room started recording to this path (the file is complete there once the room
    /// closes; until then it is written under a hidden `.part` name beside it).
    RecordingStarted {
        /// The final path.
        path: PathBuf,
    },
    /// The last participant left: the room's mixer, encoders and buffers are freed. Its
    /// recording, if any, is being finished at `recording` (the recorder writes the last
    /// blocks and renames the file within moments).
    Closed {
        /// The recording's final path.
        recording: Option<PathBuf>,
    },
}

/// A participant as [`Conference::participants`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Its id (as in events, [`Conference::kick`], [`Conference::set_muted`]).
    pub id: u64,
    /// Its session's call id.
    pub call_id: String,
    /// Its leg.
    pub leg: LegId,
    /// Muted.
    pub muted: bool,
    /// Talking now.
    pub talking: bool,
    /// The codec it hears.
    pub codec: CodecKind,
    /// Mean absolute amplitude of its last 20 ms.
    pub level: u16,
    /// When it joined.
    pub joined_at: SystemTime,
}

/// A room in [`MediaEngine::conferences`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceSummary {
    /// Its name.
    pub name: String,
    /// Participants now.
    pub participants: usize,
    /// Whether the mix is being recorded.
    pub recording: bool,
}

/// One room as every handle and its worker share it.
pub(super) struct RoomRef {
    id: u64,
    name: String,
    settings: ConferenceSettings,
    /// The worker the room lives on, [`UNPLACED`] until its first join.
    worker: AtomicUsize,
    /// Participants now (kept by the worker).
    members: AtomicUsize,
    recording: AtomicBool,
    events: broadcast::Sender<ConferenceEvent>,
}

impl RoomRef {
    fn emit(&self, ev: ConferenceEvent) {
        // no subscriber is fine
        let _ = self.events.send(ev);
    }
}

/// The engine's rooms by name.
#[derive(Default)]
pub(super) struct Registry {
    rooms: Mutex<HashMap<String, Arc<RoomRef>>>,
}

impl Registry {
    /// Forgets rooms nobody holds and nobody is in.
    fn prune(map: &mut HashMap<String, Arc<RoomRef>>) {
        map.retain(|_, r| Arc::strong_count(r) > 1 || r.members.load(Ordering::Acquire) > 0);
    }
}

impl MediaEngine {
    /// The conference room `name`, created with `settings` if no room of that name exists
    /// (otherwise the existing room, with the settings it was created with). Rooms take no
    /// resources until someone joins and give them all back when the last one leaves.
    pub fn conference(&self, name: &str, settings: ConferenceSettings) -> Conference {
        let mut map = self.shared.conferences.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Registry::prune(&mut map);
        let room = map
            .entry(name.to_string())
            .or_insert_with(|| {
                let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                Arc::new(RoomRef {
                    id,
                    name: name.to_string(),
                    settings,
                    worker: AtomicUsize::new(UNPLACED),
                    members: AtomicUsize::new(0),
                    recording: AtomicBool::new(false),
                    events: broadcast::channel(EVENT_CAPACITY).0,
                })
            })
            .clone();
        Conference { engine: self.clone(), room }
    }

    /// The rooms that have participants, by name.
    pub fn conferences(&self) -> Vec<ConferenceSummary> {
        let mut map = self.shared.conferences.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Registry::prune(&mut map);
        let mut out: Vec<ConferenceSummary> = map
            .values()
            .filter(|r| r.members.load(Ordering::Acquire) > 0)
            .map(|r| ConferenceSummary {
                name: r.name.clone(),
                participants: r.members.load(Ordering::Acquire),
                recording: r.recording.load(Ordering::Acquire),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// A handle on one conference room. Cheap to clone; holding one keeps the room's name and
/// settings registered (the mixer itself only exists while someone is in).
#[derive(Clone)]
pub struct Conference {
    engine: MediaEngine,
    room: Arc<RoomRef>,
}

impl std::fmt::Debug for Conference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conference").field("name", &self.room.name).field("participants", &self.len()).finish()
    }
}

impl Conference {
    /// The room's name.
    pub fn name(&self) -> &str {
        &self.room.name
    }

    /// The settings the room was created with.
    pub fn settings(&self) -> &ConferenceSettings {
        &self.room.settings
    }

    /// Participants now.
    pub fn len(&self) -> usize {
        self.room.members.load(Ordering::Acquire)
    }

    /// Whether nobody is in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The room's events from now on (joins, leaves, talking, mute changes, recording, close).
    pub fn subscribe(&self) -> broadcast::Receiver<ConferenceEvent> {
        self.room.events.subscribe()
    }

    /// Puts `leg` of a media session into the room: its audio goes into the mix and it hears
    /// everyone else (not itself) in its own codec, on its own SSRC, sequence and timestamps.
    /// While in, the leg's audio is not relayed to the session's other leg. Prompts played to
    /// the leg replace the room's audio while they play; digits still arrive as session events.
    ///
    /// Fails with [`MediaError::ConferenceFull`], [`MediaError::SessionClosed`], or
    /// [`MediaError::Config`] when the leg has no negotiated media yet, is in a room
    /// already, or its session's other leg is in a room that lives on another worker.
    ///
    /// Dropping the returned [`Participant`] takes the leg out again.
    pub async fn join(&self, session: &SessionControl, leg: LegId, options: JoinOptions) -> Result<Participant> {
        let shared = &self.engine.shared;
        let record_ok = self.room.settings.record && {
            let dir = shared.cfg.data_dir.join("recordings");
            match shared.recorder.check_disk(&dir, shared.cfg.min_free_disk) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(room = self.room.name, error = %e, "conference not recorded");
                    false
                }
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, replied) = oneshot::channel();
        let (left_tx, left_rx) = oneshot::channel();
        let join = Join { room: self.room.clone(), session: session.id, leg, id, options, record_ok, reply, left: left_tx };
        session.cmd(Cmd::Conference(Box::new(RoomCmd::Join(join))))?;
        replied.await.map_err(|_| MediaError::SessionClosed)??;
        Ok(Participant { conference: self.clone(), id, call_id: session.call_id.to_string(), leg, left: Some(left_rx), reason: None })
    }

    fn worker_cmd(&self, make: impl FnOnce(u64) -> RoomCmd) -> Result<()> {
        let w = self.room.worker.load(Ordering::Acquire);
        let link = self.engine.shared.workers.get(w).ok_or(MediaError::NotInConference)?;
        link.send(Cmd::Conference(Box::new(make(self.room.id))))
    }

    async fn ask<T>(&self, make: impl FnOnce(u64, oneshot::Sender<T>) -> RoomCmd) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.worker_cmd(|room| make(room, tx))?;
        rx.await.map_err(|_| MediaError::NotInConference)
    }

    /// Who is in, in the order they joined, with their talking state.
    pub async fn participants(&self) -> Result<Vec<ParticipantInfo>> {
        if self.room.worker.load(Ordering::Acquire) == UNPLACED {
            return Ok(Vec::new());
        }
        self.ask(|room, reply| RoomCmd::List { room, reply }).await
    }

    /// Mutes or unmutes a participant (the admin's, or a moderator's, action).
    pub async fn set_muted(&self, participant: u64, muted: bool) -> Result<()> {
        self.ask(|room, reply| RoomCmd::Mute { room, participant, muted, reply }).await?
    }

    /// Takes a participant out ([`LeaveReason::Kicked`]); its [`Participant::left`] returns.
    pub async fn kick(&self, participant: u64) -> Result<()> {
        self.ask(|room, reply| RoomCmd::Kick { room, participant, reply }).await?
    }

    /// Plays a prompt into the room (everyone hears it, the recording has it), queued behind
    /// announcements already playing.
    pub async fn announce(&self, request: PlayRequest) -> Result<()> {
        self.ask(|room, reply| RoomCmd::Announce { room, request, reply }).await?
    }
}

/// One leg in a room. Dropping it takes the leg out (as [`Participant::leave`] does, without
/// waiting).
pub struct Participant {
    conference: Conference,
    id: u64,
    call_id: String,
    leg: LegId,
    left: Option<oneshot::Receiver<LeaveReason>>,
    reason: Option<LeaveReason>,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("id", &self.id)
            .field("room", &self.conference.room.name)
            .field("call_id", &self.call_id)
            .field("leg", &self.leg)
            .finish()
    }
}

impl Participant {
    /// Its id in the room's events and lists.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The leg that is in.
    pub fn leg(&self) -> LegId {
        self.leg
    }

    /// The room.
    pub fn conference(&self) -> &Conference {
        &self.conference
    }

    /// Mutes or unmutes this participant.
    pub async fn set_muted(&self, muted: bool) -> Result<()> {
        self.conference.set_muted(self.id, muted).await
    }

    /// Waits until the participant is out for a reason of the room's (kicked, its session
    /// closed, the engine stopped) and returns it; at once if that happened already.
    /// Cancel-safe.
    pub async fn left(&mut self) -> LeaveReason {
        if let Some(r) = self.reason {
            return r;
        }
        let r = match self.left.as_mut() {
            Some(rx) => rx.await.unwrap_or(LeaveReason::Shutdown),
            None => LeaveReason::Left,
        };
        self.left = None;
        self.reason = Some(r);
        r
    }

    /// Takes the leg out of the room and waits until it is out: the leg is then as before it
    /// joined (relayed to the other leg again if the session is bridged). Ok if it was out
    /// already.
    pub async fn leave(mut self) -> Result<()> {
        self.out_already();
        if self.reason.is_some() {
            return Ok(());
        }
        self.reason = Some(LeaveReason::Left);
        let id = self.id;
        match self.conference.ask(|room, reply| RoomCmd::Leave { room, participant: id, reply: Some(reply) }).await {
            Ok(Ok(())) | Ok(Err(MediaError::NotInConference)) | Err(MediaError::NotInConference) => Ok(()),
            Ok(Err(e)) | Err(e) => Err(e),
        }
    }

    /// Notes a leave the worker already reported.
    fn out_already(&mut self) {
        if self.reason.is_none()
            && let Some(rx) = self.left.as_mut()
            && let Ok(r) = rx.try_recv()
        {
            self.reason = Some(r);
            self.left = None;
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.out_already();
        if self.reason.is_none() {
            let id = self.id;
            let _ = self.conference.worker_cmd(|room| RoomCmd::Leave { room, participant: id, reply: None });
        }
    }
}

// ---- the worker side ----

pub(super) struct Join {
    room: Arc<RoomRef>,
    session: u64,
    leg: LegId,
    id: u64,
    options: JoinOptions,
    record_ok: bool,
    reply: oneshot::Sender<Result<()>>,
    left: oneshot::Sender<LeaveReason>,
}

/// A conference command for a worker.
pub(super) enum RoomCmd {
    /// Sent to the session's worker, which moves the session to the room's if they differ.
    Join(Join),
    /// A session moving here, and the join it moves for.
    Adopt(Box<Slot>, Join),
    Leave {
        room: u64,
        participant: u64,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    Kick {
        room: u64,
        participant: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Mute {
        room: u64,
        participant: u64,
        muted: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    List {
        room: u64,
        reply: oneshot::Sender<Vec<ParticipantInfo>>,
    },
    Announce {
        room: u64,
        request: PlayRequest,
        reply: oneshot::Sender<Result<()>>,
    },
}

struct LiveRoom {
    room: Room,
    shared: Arc<RoomRef>,
    recording: Option<(RecordingSink, PathBuf)>,
}

impl LiveRoom {
    /// Passes the room's talking changes on to subscribers.
    fn emit_events(&mut self) {
        while let Some(ev) = self.room.poll_event() {
            if let RoomEvent::Talking { participant, talking } = ev {
                self.shared.emit(ConferenceEvent::Talking { participant: participant.0, talking });
            }
        }
    }
}

struct Member {
    room: u64,
    session: u64,
    leg: LegId,
    call_id: String,
    joined_at: SystemTime,
    announce: Option<Prompt>,
    left: Option<oneshot::Sender<LeaveReason>>,
}

/// The rooms that live on one worker and their members.
#[derive(Default)]
pub(super) struct Rooms {
    rooms: Vec<LiveRoom>,
    members: HashMap<u64, Member>,
}

impl Rooms {
    /// When the next room tick is due.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.rooms.iter().filter_map(|r| r.room.poll_timeout()).min()
    }

    /// Hands a conference leg's packet (its payload in `buf`) to its room.
    pub(super) fn input(&mut self, p: &ConferencePacket, buf: &[u8]) {
        let Some(m) = self.members.get(&p.tag) else { return };
        let Some(payload) = buf.get(p.payload.clone()) else { return };
        if let Some(r) = self.rooms.iter_mut().find(|r| r.shared.id == m.room) {
            let _ = r.room.push(ParticipantId(p.tag), p.codec, p.sequence, payload);
        }
    }

    /// A leg's SDP changed: what it hears follows its new send codec and packetisation.
    pub(super) fn codec_changed(&mut self, s: &Session, leg: LegId) {
        let Some(pid) = s.conference_tag(leg) else { return };
        let (Some(m), Some(codecs)) = (self.members.get(&pid), s.codecs(leg)) else { return };
        if let Some(r) = self.rooms.iter_mut().find(|r| r.shared.id == m.room)
            && let Err(e) = r.room.set_codec(ParticipantId(pid), codecs.send_codec(), codecs.frame_ms())
        {
            tracing::warn!(room = r.shared.name, participant = pid, error = %e, "conference leg's new codec not usable");
        }
    }

    fn find(&mut self, room: u64) -> Option<&mut LiveRoom> {
        self.rooms.iter_mut().find(|r| r.shared.id == room)
    }
}

impl Worker {
    pub(super) fn room_command(&mut self, c: RoomCmd, now: Instant) {
        match c {
            RoomCmd::Join(j) => self.join(j, now),
            RoomCmd::Adopt(slot, j) => {
                self.moved.remove(&slot.id);
                self.ctx.link.sessions.fetch_add(1, Ordering::Relaxed);
                self.insert_slot(*slot);
                self.join(j, now);
            }
            RoomCmd::Leave { room, participant, reply } => {
                let r = self.leave_checked(room, participant, LeaveReason::Left, now);
                if let Some(tx) = reply {
                    let _ = tx.send(r);
                }
            }
            RoomCmd::Kick { room, participant, reply } => {
                let _ = reply.send(self.leave_checked(room, participant, LeaveReason::Kicked, now));
            }
            RoomCmd::Mute { room, participant, muted, reply } => {
                let r = match self.rooms.find(room) {
                    Some(live) => live.room.set_muted(ParticipantId(participant), muted).map(|changed| {
                        if changed {
                            live.shared.emit(ConferenceEvent::Muted { participant, muted });
                        }
                    }),
                    None => Err(MediaError::NotInConference),
                };
                self.drain_room_events(room);
                let _ = reply.send(r);
            }
            RoomCmd::List { room, reply } => {
                let Rooms { rooms, members } = &self.rooms;
                let list = rooms
                    .iter()
                    .find(|r| r.shared.id == room)
                    .map(|live| {
                        live.room
                            .participants()
                            .filter_map(|p| {
                                let m = members.get(&p.id.0)?;
                                Some(ParticipantInfo {
                                    id: p.id.0,
                                    call_id: m.call_id.clone(),
                                    leg: m.leg,
                                    muted: p.muted,
                                    talking: p.talking,
                                    codec: p.codec,
                                    level: p.level,
                                    joined_at: m.joined_at,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(list);
            }
            RoomCmd::Announce { room, request, reply } => {
                let r = match self.rooms.find(room) {
                    Some(live) => {
                        live.room.announce(request);
                        Ok(())
                    }
                    None => Err(MediaError::NotInConference),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// A command for a session that is not here: it moved to a conference's worker (follow
    /// its route), or it is closed (drop the command: its reply channel tells the caller).
    pub(super) fn forward(&mut self, id: u64, cmd: Cmd) {
        let Some(route) = self.moved.get(&id) else { return };
        let to = route.load(Ordering::Acquire);
        if to == self.ctx.index {
            return;
        }
        if let Some(shared) = self.ctx.ports.0.upgrade()
            && let Some(link) = shared.workers.get(to)
        {
            let _ = link.send(cmd);
        }
    }

    fn join(&mut self, j: Join, now: Instant) {
        let Some(&index) = self.by_id.get(&j.session) else {
            if self.moved.contains_key(&j.session) {
                self.forward(j.session, Cmd::Conference(Box::new(RoomCmd::Join(j))));
            } else {
                let _ = j.reply.send(Err(MediaError::SessionClosed));
            }
            return;
        };
        let here = self.ctx.index;
        let placed = match j.room.worker.compare_exchange(UNPLACED, here, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => here,
            Err(w) => w,
        };
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            let _ = j.reply.send(Err(MediaError::SessionClosed));
            return;
        };
        if slot.session.conference_tag(j.leg).is_some() {
            let _ = j.reply.send(Err(MediaError::Config("the leg is in a conference already".into())));
            return;
        }
        if placed != here {
            if slot.session.conference_tag(j.leg.other()).is_some() {
                let _ = j.reply.send(Err(MediaError::Config("the session's other leg is in a conference on another worker".into())));
                return;
            }
            self.move_session(index, placed, j);
            return;
        }
        let Some(codecs) = slot.session.codecs(j.leg) else {
            let _ = j.reply.send(Err(MediaError::Config("the leg has no negotiated media yet".into())));
            return;
        };
        let (codec, frame_ms) = (codecs.send_codec().clone(), codecs.frame_ms());
        let call_id = slot.call_id.clone();
        let ri = match self.rooms.rooms.iter().position(|r| r.shared.id == j.room.id) {
            Some(i) => i,
            None => match self.open_room(&j.room, j.record_ok) {
                Ok(live) => {
                    self.rooms.rooms.push(live);
                    self.rooms.rooms.len() - 1
                }
                Err(e) => {
                    let _ = j.reply.send(Err(e));
                    return;
                }
            },
        };
        let live = &mut self.rooms.rooms[ri];
        if let Err(e) = live.room.join(ParticipantId(j.id), &codec, frame_ms, j.options.muted, now) {
            let empty = live.room.is_empty();
            let _ = j.reply.send(Err(e));
            if empty {
                self.close_room(ri, now);
            }
            return;
        }
        if let Some(p) = &j.options.announce {
            live.room.announce(PlayRequest::once(p.clone()));
        }
        if let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) {
            slot.session.join_conference(j.leg, j.id);
        }
        live.shared.members.fetch_add(1, Ordering::AcqRel);
        live.shared.emit(ConferenceEvent::Joined { participant: j.id, call_id: call_id.clone(), leg: j.leg });
        tracing::debug!(room = live.shared.name, participant = j.id, call_id, "joined conference");
        self.rooms.members.insert(
            j.id,
            Member { room: j.room.id, session: j.session, leg: j.leg, call_id, joined_at: SystemTime::now(), announce: j.options.announce, left: Some(j.left) },
        );
        let _ = j.reply.send(Ok(()));
    }

    /// Hands the session in `index` to worker `to` (the room's), with the join to run there.
    fn move_session(&mut self, index: usize, to: usize, j: Join) {
        let Some(shared) = self.ctx.ports.0.upgrade() else {
            let _ = j.reply.send(Err(MediaError::SessionClosed));
            return;
        };
        let Some(link) = shared.workers.get(to).cloned() else {
            let _ = j.reply.send(Err(MediaError::SessionClosed));
            return;
        };
        let Some(mut slot) = self.slots.get_mut(index).and_then(Option::take) else { return };
        self.by_id.remove(&slot.id);
        self.free.push(index);
        for s in &mut slot.sockets {
            let _ = self.poll.registry().deregister(s);
        }
        self.ctx.link.sessions.fetch_sub(1, Ordering::Relaxed);
        let route = slot.route.clone();
        let id = slot.id;
        tracing::debug!(call_id = slot.call_id, from = self.ctx.index, to, "media session moves to its conference's worker");
        // the slot is queued there before the route says so: a command that follows the
        // route always finds the session (or its adoption ahead of it in the queue)
        match link.send(Cmd::Conference(Box::new(RoomCmd::Adopt(Box::new(slot), j)))) {
            Ok(()) => {
                route.store(to, Ordering::Release);
                self.moved.insert(id, route);
            }
            Err(e) => {
                // the other worker is gone (the engine is stopping): nothing to put back into
                tracing::warn!(error = %e, "conference worker unreachable");
            }
        }
    }

    fn open_room(&self, r: &Arc<RoomRef>, record_ok: bool) -> Result<LiveRoom> {
        let s = &r.settings;
        let cfg = RoomConfig { mix_rate: s.mix_rate, max_members: s.max_participants, talk_threshold: s.talk_threshold, ..RoomConfig::default() };
        let mut room = Room::new(cfg)?;
        room.set_music(s.music_when_alone.clone());
        let mut recording = None;
        if s.record
            && record_ok
            && let Some(shared) = self.ctx.ports.0.upgrade()
        {
            let now = time::OffsetDateTime::now_utc();
            let name = format!("conference-{}-{:02}{:02}{:02}", r.name, now.hour(), now.minute(), now.second());
            let path = shared.dated_recording_path(&name);
            match shared.recorder.open(path.clone(), 1).and_then(|sink| room.start_recording().map(|()| sink)) {
                Ok(sink) => {
                    r.recording.store(true, Ordering::Release);
                    r.emit(ConferenceEvent::RecordingStarted { path: path.clone() });
                    recording = Some((sink, path));
                }
                Err(e) => tracing::error!(room = r.name, error = %e, "conference recording not started"),
            }
        }
        tracing::debug!(room = r.name, worker = self.ctx.index, "conference room opened");
        Ok(LiveRoom { room, shared: r.clone(), recording })
    }

    /// Finishes an (empty, or shutting down) room: recording closed, resources freed.
    fn close_room(&mut self, ri: usize, now: Instant) {
        if ri >= self.rooms.rooms.len() {
            return;
        }
        let mut live = self.rooms.rooms.swap_remove(ri);
        let _ = now;
        live.room.stop_recording();
        let mut path = None;
        if let Some((sink, p)) = live.recording.take() {
            while let Some(b) = live.room.poll_recording() {
                sink.push(b);
            }
            sink.close(None);
            path = Some(p);
        }
        live.shared.recording.store(false, Ordering::Release);
        tracing::debug!(room = live.shared.name, "conference room closed");
        live.shared.emit(ConferenceEvent::Closed { recording: path });
    }

    fn leave_checked(&mut self, room: u64, participant: u64, reason: LeaveReason, now: Instant) -> Result<()> {
        match self.rooms.members.get(&participant) {
            Some(m) if m.room == room => {
                self.member_gone(participant, reason, now);
                Ok(())
            }
            _ => Err(MediaError::NotInConference),
        }
    }

    /// Takes a participant out of its room: its leg back to normal (if its session is still
    /// here), its handle told why, the others told, the room closed when it was the last.
    pub(super) fn member_gone(&mut self, participant: u64, reason: LeaveReason, now: Instant) {
        let Some(mut m) = self.rooms.members.remove(&participant) else { return };
        if let Some(&i) = self.by_id.get(&m.session)
            && let Some(slot) = self.slots.get_mut(i).and_then(Option::as_mut)
            && slot.session.conference_tag(m.leg) == Some(participant)
        {
            slot.session.leave_conference(m.leg);
        }
        if let Some(tx) = m.left.take() {
            let _ = tx.send(reason);
        }
        let Some(ri) = self.rooms.rooms.iter().position(|r| r.shared.id == m.room) else { return };
        let live = &mut self.rooms.rooms[ri];
        live.room.leave(ParticipantId(participant));
        live.shared.members.fetch_sub(1, Ordering::AcqRel);
        live.shared.emit(ConferenceEvent::Left { participant, reason });
        tracing::debug!(room = live.shared.name, participant, ?reason, "left conference");
        if live.room.is_empty() {
            self.close_room(ri, now);
        } else if let Some(p) = m.announce {
            live.room.announce(PlayRequest::once(p));
        }
    }

    fn drain_room_events(&mut self, room: u64) {
        if let Some(live) = self.rooms.find(room) {
            live.emit_events();
        }
    }

    /// Runs the rooms' due ticks: every participant's frame out of its session's socket.
    pub(super) fn run_rooms(&mut self, now: Instant) {
        let Worker { rooms, slots, by_id, ctx, timers, .. } = self;
        let Rooms { rooms, members } = rooms;
        for live in rooms.iter_mut() {
            while live.room.handle_timeout(now) {
                for out in live.room.outputs() {
                    let Some(m) = members.get(&out.participant.0) else { continue };
                    let Some(&i) = by_id.get(&m.session) else { continue };
                    let Some(slot) = slots.get_mut(i).and_then(Option::as_mut) else { continue };
                    slot.session.send_conference_frame(m.leg, out.codec, out.payload, out.units, now);
                    super::flush(slot, ctx);
                    super::schedule(slot, i, timers);
                }
                live.emit_events();
                if let Some((sink, _)) = &live.recording {
                    while let Some(b) = live.room.poll_recording() {
                        sink.push(b);
                    }
                }
            }
        }
    }

    /// Once a second: forgets moved sessions nobody can address any more.
    pub(super) fn rooms_housekeeping(&mut self, _now: Instant) {
        self.moved.retain(|_, route| Arc::strong_count(route) > 1);
    }

    /// The engine stops: everyone out, recordings finished.
    pub(super) fn rooms_shutdown(&mut self) {
        let now = Instant::now();
        let ids: Vec<u64> = self.rooms.members.keys().copied().collect();
        for id in ids {
            self.member_gone(id, LeaveReason::Shutdown, now);
        }
        while !self.rooms.rooms.is_empty() {
            self.close_room(0, now);
        }
    }
}
