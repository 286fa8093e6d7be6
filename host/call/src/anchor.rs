//! Media anchoring: the port between the PBX core and the media engine.
//!
//! The core decides what a call's media does (it reads and writes SDP, `sdp_media.rs`) and
//! tells a [`MediaPort`] — a few fire-and-forget commands, so the SIP thread never waits on
//! the relay. [`EngineMedia`] is the real one over `media::MediaEngine`: one session per call
//! (two RTP/RTCP port pairs), and one task per session on the runtime that reads the
//! session's events: a media timeout or a digit goes back to the core as a command (BYE both
//! legs; SIP INFO toward a leg without telephone-event), digits and playback ends also go to
//! whoever controls the call (the flow engine's `CallControl`), and when the call ends the
//! task closes the session (ports reclaimed, recording finished) and writes the legs'
//! statistics to the CDR.
//!
//! Unit tests of the core run with no port (SDP passes through) or with a fake one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::{LegId, MediaEngine, MediaError, MediaEvent, RecordMode, RemoteMedia, SessionControl, SessionHandle, SessionStats, SrtpKeys};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::b2bua::CallCommand;
use crate::core::Command;
use crate::events::CallKey;
use crate::persist::{Outbox, PersistOp};

/// What the core asks of the media layer. Commands are fire-and-forget: failures are logged
/// (and show up as silence or a media timeout), never waited for on the SIP thread.
pub(crate) trait MediaPort: Send {
    /// Opens a call's media: FlowPBX's RTP ports toward leg A and leg B.
    fn open(&mut self, key: CallKey, call_id: &str) -> Result<[u16; 2], MediaError>;
    /// What a leg's SDP says (again on every re-INVITE).
    fn set_remote(&mut self, key: CallKey, leg: LegId, remote: RemoteMedia);
    /// A leg's SRTP keys from SDES (None: plain RTP again); sent before the `set_remote` of
    /// the same offer/answer.
    fn set_srtp(&mut self, key: CallKey, leg: LegId, keys: Option<SrtpKeys>);
    /// Makes a leg a WebRTC one by answering its browser's `offer` (ICE-lite, DTLS-SRTP,
    /// rtcp-mux) with `codecs`; returns the SDP answer. The one media call that answers
    /// synchronously: it builds the answer on the calling thread (no I/O) and hands the
    /// transport to the session's worker.
    fn webrtc_answer(&mut self, key: CallKey, leg: LegId, offer: &str, codecs: &[media::CodecSpec]) -> Result<String, MediaError>;
    /// FlowPBX's WebRTC offer toward a leg (a phone registered over WebSocket) with `codecs`;
    /// the port keeps it pending (one per call and leg: forks to several browsers share it)
    /// until [`MediaPort::webrtc_accept`].
    fn webrtc_offer(&mut self, key: CallKey, leg: LegId, codecs: &[media::CodecSpec]) -> Result<String, MediaError>;
    /// The browser's answer to the pending WebRTC offer: the leg becomes WebRTC.
    fn webrtc_accept(&mut self, key: CallKey, leg: LegId, answer: &str) -> Result<(), MediaError>;
    /// Connects the legs.
    fn bridge(&mut self, key: CallKey);
    /// Disconnects the legs (a follow-me number confirming must not hear the caller).
    fn unbridge(&mut self, key: CallKey);
    /// Plays a prompt (by name: a custom upload, else the system one) to a leg `times` times
    /// over.
    fn play_prompt(&mut self, key: CallKey, leg: LegId, name: &str, times: usize);
    /// Stops what plays to a leg (ringback while a flow rings).
    fn stop_playback(&mut self, key: CallKey, leg: LegId);
    /// A digit a leg sent by SIP INFO (already checked with `media::dtmf::parse_sip_info`).
    fn sip_info(&mut self, key: CallKey, leg: LegId, content_type: &str, body: &[u8]);
    /// Starts recording both legs (stereo); the file's path relative to the data dir.
    fn record(&mut self, key: CallKey, name: &str) -> Option<String>;
    /// Stops the call's recording (on demand, `*1` again); its `recordings` row is written
    /// once the file is complete. A call's recording still running at its end is finished and
    /// written the same way by `close`.
    fn stop_record(&mut self, key: CallKey);
    /// The call ended: close the session (statistics to the CDR, ports reclaimed).
    fn close(&mut self, key: CallKey);
}

/// How tasks reach the core: its command queue and the event loop's waker.
#[derive(Clone)]
pub(crate) struct CoreLink {
    pub commands: std::sync::mpsc::Sender<Command>,
    pub waker: Arc<mio::Waker>,
}

impl CoreLink {
    pub(crate) fn send(&self, cmd: Command) -> bool {
        self.commands.send(cmd).is_ok() && self.waker.wake().is_ok()
    }
}

/// A call's media as the rest of the process reaches it (the flow engine's `CallControl`):
/// the session's commands and, while someone listens, its digits and playback ends.
pub struct CallMedia {
    control: SessionControl,
    tap: Mutex<Option<mpsc::UnboundedSender<MediaEvent>>>,
    /// A call recording (not a voicemail message) runs.
    recording: AtomicBool,
}

impl CallMedia {
    /// The session's commands (play, record, DTMF).
    pub fn control(&self) -> &SessionControl {
        &self.control
    }

    /// Starts listening to the call's digits and playback ends (replacing an earlier
    /// listener).
    pub fn listen(&self) -> mpsc::UnboundedReceiver<MediaEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.tap.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    fn tap(&self, ev: &MediaEvent) {
        let mut t = self.tap.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = t.as_ref()
            && tx.send(ev.clone()).is_err()
        {
            *t = None;
        }
    }
}

/// Sessions open, for a clean shutdown (their statistics reach the CDRs before the writer
/// stops).
#[derive(Default)]
pub(crate) struct Open {
    count: AtomicUsize,
    idle: Notify,
}

impl Open {
    /// Waits until every session is closed, at most `limit`.
    pub(crate) async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let idle = self.idle.notified();
                if self.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
    }
}

/// The media engine behind the core.
pub(crate) struct EngineMedia {
    engine: MediaEngine,
    rt: tokio::runtime::Handle,
    link: CoreLink,
    outbox: Arc<Outbox>,
    calls: Arc<dashmap::DashMap<CallKey, Arc<CallMedia>>>,
    open: Arc<Open>,
    closers: HashMap<CallKey, oneshot::Sender<()>>,
    data_dir: PathBuf,
    /// FlowPBX's WebRTC offers waiting for a browser's answer, by call and leg index, with
    /// their SDP (forks to several browsers get the same offer).
    webrtc_pending: HashMap<(CallKey, usize), (media::webrtc::PendingWebRtc, String)>,
}

impl EngineMedia {
    pub(crate) fn new(
        engine: MediaEngine,
        rt: tokio::runtime::Handle,
        link: CoreLink,
        outbox: Arc<Outbox>,
        calls: Arc<dashmap::DashMap<CallKey, Arc<CallMedia>>>,
        open: Arc<Open>,
    ) -> Self {
        let data_dir = engine.config().data_dir.clone();
        EngineMedia { engine, rt, link, outbox, calls, open, closers: HashMap::new(), data_dir, webrtc_pending: HashMap::new() }
    }

    fn control(&self, key: CallKey) -> Option<SessionControl> {
        self.calls.get(&key).map(|c| c.control.clone())
    }
}

impl MediaPort for EngineMedia {
    fn open(&mut self, key: CallKey, call_id: &str) -> Result<[u16; 2], MediaError> {
        let handle = self.engine.create_session(call_id)?;
        let ports = [handle.local_rtp(LegId::A).port(), handle.local_rtp(LegId::B).port()];
        let entry = Arc::new(CallMedia { control: handle.control(), tap: Mutex::new(None), recording: AtomicBool::new(false) });
        self.calls.insert(key, entry.clone());
        let (close_tx, close_rx) = oneshot::channel();
        self.closers.insert(key, close_tx);
        self.open.count.fetch_add(1, Ordering::AcqRel);
        let pump = Pump { key, link: self.link.clone(), outbox: self.outbox.clone(), entry, open: self.open.clone(), data_dir: self.data_dir.clone() };
        self.rt.spawn(pump.run(handle, close_rx));
        Ok(ports)
    }

    fn set_remote(&mut self, key: CallKey, leg: LegId, remote: RemoteMedia) {
        if let Some(c) = self.control(key) {
            c.set_remote(leg, remote);
        }
    }

    fn set_srtp(&mut self, key: CallKey, leg: LegId, keys: Option<SrtpKeys>) {
        if let Some(c) = self.control(key) {
            c.set_srtp(leg, keys);
        }
    }

    fn webrtc_answer(&mut self, key: CallKey, leg: LegId, offer: &str, codecs: &[media::CodecSpec]) -> Result<String, MediaError> {
        self.control(key).ok_or(MediaError::SessionClosed)?.webrtc_answer(leg, offer, codecs)
    }

    fn webrtc_offer(&mut self, key: CallKey, leg: LegId, codecs: &[media::CodecSpec]) -> Result<String, MediaError> {
        if let Some((_, sdp)) = self.webrtc_pending.get(&(key, leg.index())) {
            return Ok(sdp.clone());
        }
        let (pending, sdp) = self.control(key).ok_or(MediaError::SessionClosed)?.webrtc_offer(leg, codecs)?;
        self.webrtc_pending.insert((key, leg.index()), (pending, sdp.clone()));
        Ok(sdp)
    }

    fn webrtc_accept(&mut self, key: CallKey, leg: LegId, answer: &str) -> Result<(), MediaError> {
        let (pending, _) = self.webrtc_pending.remove(&(key, leg.index())).ok_or(MediaError::SessionClosed)?;
        self.control(key).ok_or(MediaError::SessionClosed)?.webrtc_accept(leg, pending, answer)
    }

    fn bridge(&mut self, key: CallKey) {
        if let Some(c) = self.control(key) {
            c.bridge();
        }
    }

    fn unbridge(&mut self, key: CallKey) {
        if let Some(c) = self.control(key) {
            c.unbridge();
        }
    }

    fn play_prompt(&mut self, key: CallKey, leg: LegId, name: &str, times: usize) {
        let Some(c) = self.control(key) else { return };
        let prompt = match self.engine.prompts().load(name) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, prompt = name, "a prompt of the PBX is missing: nothing plays");
                return;
            }
        };
        let req = media::PlayRequest::sequence(vec![prompt; times.max(1)]);
        self.rt.spawn(async move {
            if let Err(e) = c.play(leg, req).await {
                tracing::debug!(error = %e, "prompt not played");
            }
        });
    }

    fn stop_playback(&mut self, key: CallKey, leg: LegId) {
        if let Some(c) = self.control(key) {
            c.stop_playback(leg);
        }
    }

    fn sip_info(&mut self, key: CallKey, leg: LegId, content_type: &str, body: &[u8]) {
        let Some(c) = self.control(key) else { return };
        let (ct, body) = (content_type.to_owned(), body.to_vec());
        self.rt.spawn(async move {
            if let Err(e) = c.sip_info(leg, &ct, &body).await {
                tracing::debug!(error = %e, "SIP INFO digit not taken");
            }
        });
    }

    fn record(&mut self, key: CallKey, name: &str) -> Option<String> {
        let entry = self.calls.get(&key).map(|c| c.clone())?;
        let c = entry.control.clone();
        match c.start_recording(RecordMode::Both, name) {
            Ok(path) => {
                entry.recording.store(true, Ordering::Release);
                Some(path.strip_prefix(&self.data_dir).unwrap_or(&path).to_string_lossy().into_owned())
            }
            Err(e) => {
                tracing::warn!(error = %e, call_id = c.call_id(), "call not recorded");
                None
            }
        }
    }

    fn stop_record(&mut self, key: CallKey) {
        let Some(entry) = self.calls.get(&key).map(|c| c.clone()) else { return };
        if entry.recording.swap(false, Ordering::AcqRel) {
            let (outbox, data_dir) = (self.outbox.clone(), self.data_dir.clone());
            self.rt.spawn(async move { finish_recording(&entry.control, key, &outbox, &data_dir).await });
        }
    }

    fn close(&mut self, key: CallKey) {
        self.calls.remove(&key);
        self.webrtc_pending.retain(|(k, _), _| *k != key);
        // dropping the sender ends the pump, which closes the session
        self.closers.remove(&key);
    }
}

/// The task that reads one session's events.
struct Pump {
    key: CallKey,
    link: CoreLink,
    outbox: Arc<Outbox>,
    entry: Arc<CallMedia>,
    open: Arc<Open>,
    data_dir: PathBuf,
}

/// Stops a call's recording, waits for its file under the final name and queues its
/// `recordings` row.
async fn finish_recording(control: &SessionControl, key: CallKey, outbox: &Outbox, data_dir: &std::path::Path) {
    match control.stop_recording().await {
        Ok(info) => {
            let size_bytes = tokio::fs::metadata(&info.path).await.map(|m| m.len() as i64).unwrap_or(0);
            let file_path = info.path.strip_prefix(data_dir).unwrap_or(&info.path).to_string_lossy().into_owned();
            let duration = info.duration.as_secs_f64().round() as i64;
            let mut ops = vec![PersistOp::Recording { key, call_id: control.call_id().to_owned(), file_path, duration, size_bytes }];
            outbox.extend(&mut ops);
        }
        Err(e) => tracing::warn!(error = %e, key = %key, "a call recording could not be finished"),
    }
}

impl Pump {
    async fn run(self, mut handle: SessionHandle, mut close: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                ev = handle.next_event() => {
                    let Some(ev) = ev else { break };
                    self.on_event(ev);
                }
                _ = &mut close => break,
            }
        }
        if self.entry.recording.swap(false, Ordering::AcqRel) {
            finish_recording(&self.entry.control, self.key, &self.outbox, &self.data_dir).await;
        }
        match handle.close().await {
            Ok(stats) => {
                // a WebRTC leg's media is DTLS-SRTP (its keys are str0m's, not SDES)
                let enc = |l: &media::LegStats| l.srtp.map(|s| s.to_string()).or_else(|| l.webrtc.then(|| "DTLS-SRTP".to_owned()));
                let srtp = [enc(&stats.a), enc(&stats.b)];
                let mut ops = vec![PersistOp::CdrMedia { key: self.key, stats: stats_json(&stats), srtp }];
                self.outbox.extend(&mut ops);
            }
            Err(e) => tracing::debug!(error = %e, key = %self.key, "media session already gone"),
        }
        if self.open.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.open.idle.notify_waiters();
        }
    }

    fn on_event(&self, ev: MediaEvent) {
        match &ev {
            MediaEvent::MediaTimeout { leg, silent_for } => {
                tracing::info!(key = %self.key, ?leg, silent_ms = silent_for.as_millis() as u64, "no media from a leg: ending the call");
                self.link.send(Command::Call(CallCommand::MediaTimeout { call: self.key, leg: *leg }));
            }
            MediaEvent::Dtmf(d) => {
                self.entry.tap(&ev);
                self.link.send(Command::Call(CallCommand::Dtmf { call: self.key, digit: *d }));
            }
            MediaEvent::PlaybackFinished { .. } => self.entry.tap(&ev),
            MediaEvent::Latched { .. } => {}
        }
    }
}

/// The CDR's per-leg media statistics: packets and bytes each way, loss and jitter of what
/// each leg sent us (from sequence numbers), and what its RTCP reported of what we sent; for
/// an SRTP leg its suite and the datagrams dropped for a bad tag or as replays.
pub(crate) fn stats_json(s: &SessionStats) -> serde_json::Value {
    let leg = |l: &media::LegStats| {
        serde_json::json!({
            "packets_received": l.received.packets,
            "bytes_received": l.received.bytes,
            "packets_expected": l.received.expected,
            "packets_lost": l.received.lost,
            "jitter_ms": (l.received.jitter.as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
            "packets_sent": l.sent_packets,
            "bytes_sent": l.sent_bytes,
            "dropped": l.dropped,
            "packets_refused": l.refused,
            "remote_fraction_lost": l.remote.fraction_lost,
            "remote_jitter_ms": (l.remote.jitter.as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
            "rtcp_packets": l.remote.rtcp_packets,
            "srtp": l.srtp.map(|s| s.to_string()),
            "webrtc": l.webrtc,
            "srtp_auth_failures": l.srtp_auth_failures,
            "srtp_replays": l.srtp_replays,
        })
    };
    serde_json::json!({ "a": leg(&s.a), "b": leg(&s.b) })
}
