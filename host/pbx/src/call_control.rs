//! The flow engine's [`CallControl`] over a real call: SIP through [`call::PbxHandle`]
//! (answer, ring, hang up) and audio through the call's media session ([`call::CallMedia`]:
//! prompts, digits, recording).
//!
//! One [`PbxCall`] per call a flow runs. At creation it takes the media session's event
//! listener and subscribes to the PBX's call events; one task per call ([`watch_call`])
//! turns them into a digit queue (the caller's leg only, type-ahead kept), the set of
//! finished playbacks, and a "the call ended" flag every waiting method selects on, so a
//! caller who hangs up mid-node ends the node at once with [`CallError::CallerHungUp`].
//!
//! **Architecture invariant:** no SQL here — the few reads and the voicemail insert go
//! through the store's repositories; CDR writes go through [`call::PbxHandle::record_flow`].

use crate::pin_guard::{PinGuard, PinSource};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flow::control::{
    CallControl, CallError, ConferenceOptions, ConferenceOutcome, HangupCause, Party, RingOptions, RingOutcome, Target, VoicemailOptions, VoicemailOutcome,
};
use flow::entity::{ConferenceBridge, VoicemailBox};
use media::{LegId, MediaEvent, PlayRequest, Prompt, RecordMode};
use tokio::sync::{mpsc, watch, Notify};

/// The caller's leg in the call's media session.
const CALLER: LegId = LegId::A;
/// A voicemail recording also ends when the caller's leg sends no RTP for this long.
const VOICEMAIL_SILENCE: Duration = Duration::from_secs(5);
/// Messages shorter than this are discarded (a hang-up at the tone).
const VOICEMAIL_MINIMUM: Duration = Duration::from_secs(2);
/// How long a finished recording may take to appear under its final name.
const RECORDING_SETTLE: Duration = Duration::from_secs(3);
/// Attempts at a conference PIN.
const PIN_TRIES: usize = 3;
/// The longest text read by TTS (the flow host caps it too).
const MAX_TTS: usize = 4000;

/// What the per-call task shares with the control.
#[derive(Default)]
struct Playback {
    finished: Mutex<HashSet<u64>>,
    notify: Notify,
}

/// A real call driven by a flow.
pub struct PbxCall {
    pbx: call::PbxHandle,
    store: store::Store,
    key: call::CallKey,
    call_id: String,
    caller: Party,
    dialled: String,
    data_dir: PathBuf,
    answered: AtomicBool,
    ended: watch::Receiver<bool>,
    digits: tokio::sync::Mutex<mpsc::UnboundedReceiver<char>>,
    playback: Arc<Playback>,
    /// The caller id a `set_caller_id` node chose, presented on later rings.
    caller_id: Mutex<Option<Party>>,
    /// Whether a voicemail message was stored (the CDR's disposition).
    voicemail_left: AtomicBool,
    /// The trunk the call came in on.
    trunk_id: i64,
    /// Conference-PIN failures across calls.
    pins: Arc<PinGuard>,
    /// Voicemail-PIN failures across calls (`*` during a greeting logs in).
    vm_pins: Mutex<Option<Arc<PinGuard>>>,
    /// Whether the flow's last ring found the extension busy (a box's busy greeting then).
    last_ring_busy: AtomicBool,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for PbxCall {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The SIP status that refuses a caller not answered yet, per hang-up cause.
pub fn refusal_status(cause: HangupCause) -> u16 {
    match cause {
        HangupCause::Busy => 486,
        HangupCause::Rejected => 603,
        HangupCause::NoAnswer => 408,
        HangupCause::Congestion => 503,
        HangupCause::Unavailable | HangupCause::Normal => 480,
    }
}

/// A prompt name as flows write it (`system/beep`, `custom/welcome`, `welcome`) → the name
/// the prompt store loads (custom uploads first, then the system set).
pub fn prompt_name(name: &str) -> &str {
    name.strip_prefix("system/").or_else(|| name.strip_prefix("custom/")).unwrap_or(name)
}

/// Where a voicemail message is recorded, relative to the data dir:
/// `voicemail/<box>/<unix ms>-<call key>.wav`.
pub fn voicemail_file(box_id: i64, unix_ms: i64, key: call::CallKey) -> PathBuf {
    Path::new("voicemail").join(box_id.to_string()).join(format!("{unix_ms}-{key}.wav"))
}

/// A WAV written to a pipe (`espeak-ng --stdout`) carries placeholder sizes in its RIFF and
/// `data` headers: set them to what the bytes hold.
pub fn fix_streamed_wav(wav: &mut [u8]) {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return;
    }
    let riff = u32::try_from(wav.len() - 8).unwrap_or(u32::MAX);
    wav[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut at = 12;
    while at + 8 <= wav.len() {
        let size = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]) as usize;
        let body = at + 8;
        if &wav[at..at + 4] == b"data" {
            let real = u32::try_from(size.min(wav.len() - body)).unwrap_or(u32::MAX);
            wav[at + 4..at + 8].copy_from_slice(&real.to_le_bytes());
            return;
        }
        at = body.saturating_add(size).saturating_add(size & 1);
    }
}

/// The media engine's room of a conference bridge.
pub fn conference_room(bridge_id: i64) -> String {
    format!("bridge-{bridge_id}")
}

/// How a PBX ring ended, in the engine's terms (`None`: the caller hung up).
pub fn ring_outcome(o: call::RingOutcome, targets: &[Target]) -> Option<RingOutcome> {
    Some(match o {
        call::RingOutcome::Answered(id) => {
            let to =
                targets.iter().find(|t| matches!(t, Target::Extension(x) if x.id == id)).map(Target::describe).unwrap_or_else(|| format!("extension id {id}"));
            RingOutcome::Answered(to)
        }
        call::RingOutcome::AnsweredOutside { trunk_id } => {
            let to =
                targets.iter().find(|t| matches!(t, Target::Number(_))).map(Target::describe).unwrap_or_else(|| format!("a number through trunk {trunk_id}"));
            RingOutcome::Answered(to)
        }
        call::RingOutcome::NoAnswer => RingOutcome::NoAnswer,
        call::RingOutcome::Busy | call::RingOutcome::Declined => RingOutcome::Busy,
        call::RingOutcome::Unavailable => RingOutcome::Failed("no device of the extension is registered".into()),
        call::RingOutcome::Failed(code) => RingOutcome::Failed(format!("ringing failed with SIP {code}")),
        call::RingOutcome::CallerHungUp => return None,
    })
}

/// The task that follows one call: its media events (digits of the caller's leg, finished
/// playbacks) and the PBX's events (its end).
async fn watch_call(
    pbx: call::PbxHandle,
    key: call::CallKey,
    mut events: tokio::sync::broadcast::Receiver<call::PbxEvent>,
    mut media: Option<mpsc::UnboundedReceiver<MediaEvent>>,
    digits: mpsc::UnboundedSender<char>,
    playback: Arc<Playback>,
    ended: watch::Sender<bool>,
) {
    use tokio::sync::broadcast::error::RecvError;
    if !pbx.is_live(key) {
        let _ = ended.send(true);
        return;
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(call::PbxEvent::CallEnded { key: k, .. }) if k == key => break,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => if !pbx.is_live(key) { break },
                Err(RecvError::Closed) => break,
            },
            ev = async { match media.as_mut() { Some(m) => m.recv().await, None => std::future::pending().await } } => match ev {
                Some(MediaEvent::Dtmf(d)) if d.leg == CALLER => { let _ = digits.send(d.digit); }
                Some(MediaEvent::PlaybackFinished { leg, id, .. }) if leg == CALLER => {
                    playback.finished.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                    playback.notify.notify_waiters();
                }
                Some(_) => {}
                // the media session closed: the call is over
                None => { media = None; if !pbx.is_live(key) { break } }
            },
        }
    }
    let _ = ended.send(true);
    playback.notify.notify_waiters();
}

/// Stops a playback when the `play` future is dropped before it finished (barge-in, a
/// node's wall clock, a hang-up).
struct StopOnDrop<'a> {
    media: &'a call::CallMedia,
    armed: bool,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.media.control().stop_playback(CALLER);
        }
    }
}

/// Stops ringing when the `ring` future is dropped before the ring ended.
struct StopRingOnDrop<'a> {
    pbx: &'a call::PbxHandle,
    key: call::CallKey,
    armed: bool,
}

impl Drop for StopRingOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pbx.stop_ring(self.key);
        }
    }
}

impl PbxCall {
    /// Takes control of the call `incoming` (its digits and playback events from now on).
    pub fn new(pbx: call::PbxHandle, store: store::Store, incoming: &call::IncomingCall, pins: Arc<PinGuard>) -> Arc<PbxCall> {
        let events = pbx.subscribe();
        let media = pbx.call_media(incoming.key).map(|m| m.listen());
        let (digits_tx, digits_rx) = mpsc::unbounded_channel();
        let (ended_tx, ended_rx) = watch::channel(false);
        let playback = Arc::new(Playback::default());
        let watcher = tokio::spawn(watch_call(pbx.clone(), incoming.key, events, media, digits_tx, playback.clone(), ended_tx));
        let data_dir = pbx.media_engine().map(|m| m.config().data_dir.clone()).unwrap_or_default();
        Arc::new(PbxCall {
            store,
            key: incoming.key,
            call_id: incoming.call_id.clone(),
            caller: Party { number: incoming.caller_id_num.clone(), name: incoming.caller_id_name.clone() },
            dialled: incoming.dialled.clone(),
            data_dir,
            answered: AtomicBool::new(false),
            ended: ended_rx,
            digits: tokio::sync::Mutex::new(digits_rx),
            playback,
            caller_id: Mutex::new(None),
            voicemail_left: AtomicBool::new(false),
            trunk_id: incoming.trunk_id,
            pins,
            vm_pins: Mutex::new(None),
            last_ring_busy: AtomicBool::new(false),
            watcher,
            pbx,
        })
    }

    /// Shares the dial-in voicemail's PIN guard (a caller pressing `*` during a greeting
    /// logs in to the box); without one, `*` only skips to the tone.
    pub fn with_voicemail_pins(self: Arc<Self>, guard: Arc<PinGuard>) -> Arc<Self> {
        *self.vm_pins.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        self
    }

    /// The PBX the call is on.
    pub(crate) fn pbx(&self) -> &call::PbxHandle {
        &self.pbx
    }

    /// The store.
    pub(crate) fn store(&self) -> &store::Store {
        &self.store
    }

    /// The PBX's key for the call.
    pub(crate) fn key(&self) -> call::CallKey {
        self.key
    }

    /// The data dir (voicemail files, custom prompts).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Loads prompts by name.
    pub(crate) fn prompts(&self, names: &[&str]) -> Result<Vec<Prompt>, CallError> {
        names.iter().map(|n| self.load_prompt(n)).collect()
    }

    /// Loads a WAV file under the data dir as a prompt (a voicemail message).
    pub(crate) async fn file_prompt(&self, rel: &str) -> Result<Prompt, CallError> {
        let bytes = tokio::fs::read(self.data_dir.join(rel)).await.map_err(|e| CallError::Prompt { name: rel.to_string(), source: flow::control::cause(e) })?;
        Prompt::from_wav(rel, &bytes).map_err(|e| CallError::Prompt { name: rel.to_string(), source: flow::control::cause(e) })
    }

    /// Plays prompts until they end (None) or the caller presses a digit, which stops them
    /// and is returned (type-ahead: a digit pressed before is returned at once).
    pub(crate) async fn play_until_digit(&self, prompts: Vec<Prompt>) -> Result<Option<char>, CallError> {
        if prompts.is_empty() {
            return Ok(None);
        }
        tokio::select! {
            biased;
            d = self.next_digit() => Ok(Some(d?)),
            r = self.play_prompts(prompts) => r.map(|()| None),
        }
    }

    /// Waits up to `timeout` for a digit.
    pub(crate) async fn digit_within(&self, timeout: Duration) -> Result<Option<char>, CallError> {
        match tokio::time::timeout(timeout, self.next_digit()).await {
            Ok(d) => Ok(Some(d?)),
            Err(_) => Ok(None),
        }
    }

    /// Records the caller into `path` (see `record_message`), digits pressed before dropped.
    pub(crate) async fn record_to(&self, path: &Path, max: Duration) -> Result<(Duration, bool), CallError> {
        self.drain_digits().await;
        self.record_message(path, max).await
    }

    /// Whether a voicemail message was left during the flow.
    pub fn left_voicemail(&self) -> bool {
        self.voicemail_left.load(Ordering::Acquire)
    }

    fn hung_up(&self) -> bool {
        *self.ended.borrow()
    }

    fn check_live(&self) -> Result<(), CallError> {
        if self.hung_up() || !self.pbx.is_live(self.key) {
            Err(CallError::CallerHungUp)
        } else {
            Ok(())
        }
    }

    /// Resolves when the call ends.
    async fn until_hangup(&self) {
        let mut rx = self.ended.clone();
        let _ = rx.wait_for(|e| *e).await;
    }

    /// A PBX error, as the engine sees it: the caller hung up when the call is gone.
    fn pbx_error(&self, what: &'static str, e: call::CallError) -> CallError {
        if !self.pbx.is_live(self.key) {
            CallError::CallerHungUp
        } else {
            CallError::Call { what, source: flow::control::cause(e) }
        }
    }

    fn call_media(&self) -> Result<Arc<call::CallMedia>, CallError> {
        self.check_live()?;
        self.pbx.call_media(self.key).ok_or_else(|| CallError::NoMediaSession)
    }

    fn load_prompt(&self, name: &str) -> Result<Prompt, CallError> {
        let engine = self.pbx.media_engine().ok_or_else(|| CallError::NoMediaEngine)?;
        engine.prompts().load(prompt_name(name)).map_err(|e| CallError::Prompt { name: name.to_string(), source: flow::control::cause(e) })
    }

    /// Plays prompts to the caller until they end (answering first). Dropping it stops them.
    async fn play_prompts(&self, prompts: Vec<Prompt>) -> Result<(), CallError> {
        self.answer().await?;
        let media = self.call_media()?;
        let id = media.control().play(CALLER, PlayRequest::sequence(prompts)).await.map_err(|e| {
            if self.hung_up() {
                CallError::CallerHungUp
            } else {
                CallError::Playback(flow::control::cause(e))
            }
        })?;
        let mut guard = StopOnDrop { media: &media, armed: true };
        loop {
            let notified = self.playback.notify.notified();
            if self.playback.finished.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                guard.armed = false;
                return Ok(());
            }
            if self.hung_up() {
                guard.armed = false;
                return Err(CallError::CallerHungUp);
            }
            notified.await;
        }
    }

    /// Removes digits pressed so far (before a recording starts).
    async fn drain_digits(&self) {
        let mut d = self.digits.lock().await;
        while d.try_recv().is_ok() {}
    }

    /// Text to speech with espeak-ng into an 8 kHz WAV (None when espeak-ng is missing).
    async fn synthesize(&self, text: &str) -> Result<Option<Prompt>, CallError> {
        let text: String = text.chars().take(MAX_TTS).collect();
        let out = tokio::process::Command::new("espeak-ng").arg("--stdout").arg("-s").arg("160").arg("--").arg(&text).kill_on_drop(true).output().await;
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CallError::Speech(flow::control::cause(e))),
            Ok(o) if !o.status.success() => Err(CallError::SpeechExit(o.status)),
            Ok(mut o) => {
                fix_streamed_wav(&mut o.stdout);
                Prompt::from_wav("tts", &o.stdout).map(Some).map_err(|e| CallError::Speech(flow::control::cause(e)))
            }
        }
    }

    /// Records the caller into `path` until `max`, `#`, silence or a hang-up; returns the
    /// recorded length and whether the caller hung up.
    async fn record_message(&self, path: &Path, max: Duration) -> Result<(Duration, bool), CallError> {
        let media = self.call_media()?;
        let control = media.control().clone();
        control.start_recording_at(RecordMode::Leg(CALLER), path.to_path_buf()).map_err(|e| CallError::Recording(flow::control::cause(e)))?;
        let silence = async {
            let mut last = None;
            let mut quiet = Duration::ZERO;
            let step = Duration::from_millis(500);
            loop {
                tokio::time::sleep(step).await;
                let Ok(s) = control.stats().await else { return };
                let packets = s.a.received.packets;
                if last == Some(packets) {
                    quiet += step;
                    if quiet >= VOICEMAIL_SILENCE {
                        return;
                    }
                } else {
                    quiet = Duration::ZERO;
                }
                last = Some(packets);
            }
        };
        let pound = async {
            loop {
                match self.next_digit().await {
                    Ok('#') => return,
                    Ok(_) => {}
                    Err(_) => return std::future::pending().await,
                }
            }
        };
        let hung_up = tokio::select! {
            _ = tokio::time::sleep(max) => false,
            _ = pound => false,
            _ = silence => false,
            _ = self.until_hangup() => true,
        };
        if !hung_up && let Ok(info) = control.stop_recording().await {
            return Ok((info.duration, false));
        }
        // the call ended: closing the session finishes the file
        let t0 = tokio::time::Instant::now();
        loop {
            if let Ok(bytes) = tokio::fs::read(path).await
                && let Ok(samples) = media::wav::decode_internal(&bytes)
            {
                return Ok((Duration::from_micros(samples.len() as u64 * 125), true));
            }
            if t0.elapsed() > RECORDING_SETTLE {
                return Err(CallError::RecordingIncomplete);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks for a conference bridge's PIN (three tries, `#` ends an entry).
    async fn ask_conference_pin(&self, bridge_id: i64) -> Result<(), CallError> {
        let options = flow::control::CollectOptions {
            prompt: Some(flow::control::Media::Prompt(media::prompts::ENTER_PIN.into())),
            max_digits: 16,
            first_digit_timeout: Duration::from_secs(10),
            inter_digit_timeout: Duration::from_secs(5),
            terminators: "#".into(),
        };
        let source = PinSource { bridge_id, trunk_id: self.trunk_id, caller: self.caller.number.clone() };
        for _ in 0..PIN_TRIES {
            let entered = self.collect_digits(&options).await?;
            if !self.pins.allowed(&source, std::time::Instant::now()) {
                // too many wrong PINs from this caller (or for this bridge) lately: no check
                tracing::warn!(call_id = %self.call_id, bridge_id, caller = %self.caller.number, "conference PIN entry refused: too many failures");
                break;
            }
            if !entered.digits.is_empty() {
                let ok = self
                    .store
                    .conference_bridges()
                    .verify_pin(bridge_id, &entered.digits)
                    .await
                    .map_err(|e| CallError::ConferencePin(flow::control::cause(e)))?;
                if ok {
                    self.pins.succeeded(&source);
                    return Ok(());
                }
            }
            self.pins.failed(&source, std::time::Instant::now());
            self.play(media::prompts::INVALID_OPTION).await?;
        }
        Err(CallError::NoValidPin(bridge_id))
    }

    fn caller_id_for_ring(&self, options: &RingOptions) -> Option<(Option<String>, String)> {
        let chosen = options.caller_id.clone().or_else(|| self.caller_id.lock().unwrap_or_else(|e| e.into_inner()).clone());
        chosen.map(|p| (p.name, p.number))
    }
}

#[async_trait]
impl CallControl for PbxCall {
    fn call_id(&self) -> &str {
        &self.call_id
    }

    fn caller(&self) -> Party {
        self.caller.clone()
    }

    fn dialled(&self) -> &str {
        &self.dialled
    }

    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    fn is_answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    async fn answer(&self) -> Result<(), CallError> {
        self.check_live()?;
        if self.is_answered() {
            return Ok(());
        }
        self.pbx.answer(self.key).await.map_err(|e| self.pbx_error("answering", e))?;
        self.answered.store(true, Ordering::Release);
        Ok(())
    }

    async fn play(&self, prompt: &str) -> Result<(), CallError> {
        self.check_live()?;
        let p = self.load_prompt(prompt)?;
        self.play_prompts(vec![p]).await
    }

    async fn say(&self, text: &str) -> Result<(), CallError> {
        self.check_live()?;
        match self.synthesize(text).await? {
            Some(p) => self.play_prompts(vec![p]).await,
            None => {
                tracing::warn!(call_id = %self.call_id, "espeak-ng is not installed: text to speech plays nothing");
                self.answer().await
            }
        }
    }

    async fn next_digit(&self) -> Result<char, CallError> {
        self.check_live()?;
        let mut digits = self.digits.lock().await;
        if let Ok(d) = digits.try_recv() {
            return Ok(d);
        }
        tokio::select! {
            d = digits.recv() => d.ok_or(CallError::CallerHungUp),
            _ = self.until_hangup() => Err(CallError::CallerHungUp),
        }
    }

    async fn ring(&self, targets: &[Target], options: &RingOptions) -> Result<RingOutcome, CallError> {
        self.check_live()?;
        let mut extensions = Vec::new();
        let mut numbers = Vec::new();
        for t in targets {
            match t {
                Target::Extension(x) => extensions.push(x.id),
                // out through the outbound routes (the SIP stack's, with their trunks)
                Target::Number(n) => numbers.push(n.clone()),
            }
        }
        let request = call::RingRequest { extensions, numbers, timeout: options.timeout, caller_id: self.caller_id_for_ring(options) };
        // dropped before it ends (the node's wall clock): the phones stop ringing
        let mut guard = StopRingOnDrop { pbx: &self.pbx, key: self.key, armed: true };
        let outcome = tokio::select! {
            r = self.pbx.ring(self.key, request) => r.map_err(|e| self.pbx_error("ringing", e)),
            _ = self.until_hangup() => Err(CallError::CallerHungUp),
        };
        guard.armed = false;
        let outcome = outcome?;
        self.last_ring_busy.store(outcome == call::RingOutcome::Busy, Ordering::Release);
        if matches!(outcome, call::RingOutcome::Answered(_) | call::RingOutcome::AnsweredOutside { .. }) {
            self.answered.store(true, Ordering::Release);
        }
        ring_outcome(outcome, targets).ok_or(CallError::CallerHungUp)
    }

    async fn voicemail(&self, mailbox: &VoicemailBox, options: &VoicemailOptions) -> Result<VoicemailOutcome, CallError> {
        self.check_live()?;
        let db = |e: store::StoreError| CallError::Voicemail { mailbox: mailbox.id, source: flow::control::cause(e) };
        // The box's settings are the ones the flow version runs with (`mailbox`, as it was
        // published); its messages are live, and so must the box be (they are stored in it).
        if self.store.voicemail_boxes().get(mailbox.id).await.map_err(db)?.is_none() {
            return Err(CallError::NoVoicemailBox(mailbox.id));
        }
        let (count, _) = self.store.voicemail_messages().counts(mailbox.id).await.map_err(db)?;
        if count >= i64::from(mailbox.max_messages) {
            tracing::info!(call_id = %self.call_id, mailbox = mailbox.id, count, "mailbox full");
            self.play(media::prompts::MAILBOX_FULL).await?;
            return Ok(VoicemailOutcome { recorded: false, duration: Duration::ZERO });
        }
        let mut prompts = Vec::new();
        if options.play_greeting {
            // a temporary greeting (recorded by phone) wins; then, when the flow's last ring
            // found the extension busy, its busy greeting; then the box's own greeting as
            // published, then one recorded by phone since, then the system one
            let temporary = self.load_prompt(&crate::voicemail_menu::greeting_prompt(mailbox.id, crate::voicemail_menu::Greeting::Temporary)).ok();
            let busy = || {
                self.last_ring_busy
                    .load(Ordering::Acquire)
                    .then(|| self.load_prompt(&crate::voicemail_menu::greeting_prompt(mailbox.id, crate::voicemail_menu::Greeting::Busy)).ok())
                    .flatten()
            };
            let custom = match (mailbox.greeting_type, &mailbox.greeting_file) {
                (flow::entity::GreetingType::Custom, Some(f)) => self.load_prompt(f).ok(),
                _ => None,
            };
            let recorded = || self.load_prompt(&crate::voicemail_menu::greeting_prompt(mailbox.id, crate::voicemail_menu::Greeting::Unavailable)).ok();
            let greeting = match temporary.or_else(busy).or(custom).or_else(recorded) {
                Some(p) => p,
                None => self.load_prompt(media::prompts::VOICEMAIL_GREETING)?,
            };
            tracing::info!(call_id = %self.call_id, mailbox = mailbox.id, greeting = greeting.name(), "voicemail greeting");
            prompts.push(greeting);
        }
        prompts.push(self.load_prompt(media::prompts::BEEP)?);
        // a digit during the greeting skips to the tone; `*` logs in to the box instead
        let mut login = false;
        tokio::select! {
            biased;
            r = self.play_prompts(prompts) => r?,
            d = self.next_digit() => {
                let guard = self.vm_pins.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if d? == '*' && let Some(guard) = guard {
                    let store_box = self.store.voicemail_boxes().get(mailbox.id).await.map_err(db)?.ok_or(CallError::NoVoicemailBox(mailbox.id))?;
                    login = crate::voicemail_menu::greeting_login(self, &store_box, &guard).await?;
                }
                if !login {
                    self.play(media::prompts::BEEP).await?;
                }
            }
        }
        if login {
            return Ok(VoicemailOutcome { recorded: false, duration: Duration::ZERO });
        }
        self.drain_digits().await;

        let limit = Duration::from_secs(u64::from(mailbox.max_message_duration).max(1));
        let max = options.max_duration.map_or(limit, |m| m.min(limit));
        let now = store::Timestamp::now();
        let rel = voicemail_file(mailbox.id, now.unix_millis(), self.key);
        let path = self.data_dir.join(&rel);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| CallError::VoicemailFolder(flow::control::cause(e)))?;
        }
        let (duration, hung_up) = self.record_message(&path, max).await?;
        if duration < VOICEMAIL_MINIMUM {
            tracing::info!(call_id = %self.call_id, mailbox = mailbox.id, ms = duration.as_millis() as u64, "voicemail message too short: discarded");
            let _ = tokio::fs::remove_file(&path).await;
            return if hung_up { Err(CallError::CallerHungUp) } else { Ok(VoicemailOutcome { recorded: false, duration }) };
        }
        let msg = store::NewVoicemailMessage {
            mailbox_id: mailbox.id,
            caller_id_name: self.caller.name.clone(),
            caller_id_num: Some(self.caller.number.clone()),
            timestamp: now,
            duration: Some(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX).max(1)),
            file_path: rel.to_string_lossy().into_owned(),
        };
        let stored = self.store.voicemail_messages().insert(&msg).await.map_err(db)?;
        self.voicemail_left.store(true, Ordering::Release);
        self.pbx.refresh_mwi().await;
        self.pbx.voicemail_left(mailbox.id, stored.id, msg.caller_id_num.clone(), msg.caller_id_name.clone(), msg.duration.unwrap_or(0));
        tracing::info!(call_id = %self.call_id, mailbox = mailbox.id, ms = duration.as_millis() as u64, "voicemail message stored");
        if hung_up {
            return Err(CallError::CallerHungUp);
        }
        Ok(VoicemailOutcome { recorded: true, duration })
    }

    async fn check_voicemail(&self, mailbox: &VoicemailBox) -> Result<(), CallError> {
        self.check_live()?;
        let guard = self.vm_pins.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(CallError::Unsupported("no voicemail PIN guard"))?;
        let db = |e: store::StoreError| CallError::Voicemail { mailbox: mailbox.id, source: flow::control::cause(e) };
        // the box as it is now (its messages and PIN are live, not flow configuration)
        let b = self.store.voicemail_boxes().get(mailbox.id).await.map_err(db)?.ok_or(CallError::NoVoicemailBox(mailbox.id))?;
        self.answer().await?;
        match crate::voicemail_menu::check(self, &b, &guard).await? {
            crate::voicemail_menu::Checked::Left => Ok(()),
            crate::voicemail_menu::Checked::Refused => Err(CallError::NoValidPin(mailbox.id)),
            crate::voicemail_menu::Checked::Bridged => Err(CallError::Ended("bridged to a message's caller".into())),
        }
    }

    async fn transfer(&self, target: &Target) -> Result<(), CallError> {
        self.check_live()?;
        let timeout = match target {
            Target::Extension(x) => Duration::from_secs(u64::from(x.ring_timeout.clamp(5, 600))),
            // a number outside rings through its route until the carrier gives up
            Target::Number(_) => Duration::from_secs(120),
        };
        let options = RingOptions { timeout, caller_id: None };
        match self.ring(std::slice::from_ref(target), &options).await? {
            RingOutcome::Answered(_) => Ok(()),
            other => Err(CallError::Transfer { target: target.describe(), outcome: other }),
        }
    }

    async fn hangup(&self, cause: HangupCause) -> Result<(), CallError> {
        if !self.pbx.is_live(self.key) {
            return Ok(());
        }
        match self.pbx.hangup(self.key, refusal_status(cause)).await {
            Ok(()) => Ok(()),
            Err(_) if !self.pbx.is_live(self.key) => Ok(()),
            Err(e) => Err(CallError::Hangup(flow::control::cause(e))),
        }
    }

    async fn set_caller_id(&self, caller: &Party) -> Result<(), CallError> {
        self.check_live()?;
        *self.caller_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(caller.clone());
        Ok(())
    }

    async fn conference(&self, bridge: &ConferenceBridge, options: &ConferenceOptions) -> Result<ConferenceOutcome, CallError> {
        self.answer().await?;
        if bridge.has_pin {
            self.ask_conference_pin(bridge.id).await?;
        }
        let engine = self.pbx.media_engine().ok_or_else(|| CallError::NoMediaEngine)?;
        let settings = media::ConferenceSettings {
            max_participants: usize::try_from(bridge.max_members).unwrap_or(usize::MAX),
            record: bridge.record,
            music_when_alone: engine.prompts().load(media::prompts::MUSIC_ON_HOLD).ok(),
            ..media::ConferenceSettings::default()
        };
        let room = engine.conference(&conference_room(bridge.id), settings);
        let join = media::JoinOptions {
            muted: options.muted || bridge.mute_on_join,
            announce: if bridge.announce_joins { engine.prompts().load(media::prompts::BEEP).ok() } else { None },
        };
        let media = self.call_media()?;
        let mut participant = room.join(media.control(), CALLER, join).await.map_err(|e| match e {
            media::MediaError::ConferenceFull { .. } => CallError::ConferenceFull(bridge.id),
            _ if self.hung_up() => CallError::CallerHungUp,
            e => CallError::ConferenceJoin { bridge: bridge.id, source: flow::control::cause(e) },
        })?;
        tracing::info!(call_id = %self.call_id, bridge = bridge.id, participant = participant.id(), "joined the conference");
        let t0 = tokio::time::Instant::now();
        tokio::select! {
            reason = participant.left() => {
                tracing::info!(call_id = %self.call_id, bridge = bridge.id, ?reason, "left the conference");
                match reason {
                    media::LeaveReason::Hangup => Err(CallError::CallerHungUp),
                    _ => Ok(ConferenceOutcome { duration: t0.elapsed() }),
                }
            }
            _ = self.until_hangup() => Err(CallError::CallerHungUp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_names_lose_their_folder() {
        assert_eq!(prompt_name("system/beep"), "beep");
        assert_eq!(prompt_name("custom/welcome-2"), "welcome-2");
        assert_eq!(prompt_name("welcome"), "welcome");
        // only one prefix goes: the store refuses what is left
        assert_eq!(prompt_name("system/custom/x"), "custom/x");
    }

    #[test]
    fn hang_up_causes_map_to_sip_statuses() {
        assert_eq!(refusal_status(HangupCause::Busy), 486);
        assert_eq!(refusal_status(HangupCause::Rejected), 603);
        assert_eq!(refusal_status(HangupCause::Congestion), 503);
        assert_eq!(refusal_status(HangupCause::NoAnswer), 408);
        assert_eq!(refusal_status(HangupCause::Normal), 480);
    }

    #[test]
    fn voicemail_files_are_per_box() {
        assert_eq!(voicemail_file(7, 1700000000123, call::CallKey::from_raw(42)), Path::new("voicemail/7/1700000000123-42.wav"));
    }

    #[test]
    fn streamed_wav_sizes_are_fixed() {
        let samples = [1000i16, -1000, 500, -500];
        let mut wav = media::wav::encode(&samples, 1, 8000);
        wav[4..8].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        let data_at = wav.windows(4).position(|w| w == b"data").unwrap();
        wav[data_at + 4..data_at + 8].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        fix_streamed_wav(&mut wav);
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize, wav.len() - 8);
        assert_eq!(u32::from_le_bytes(wav[data_at + 4..data_at + 8].try_into().unwrap()), 8);
        assert_eq!(media::wav::decode_internal(&wav).unwrap(), samples);
        // not a WAV: untouched
        let mut other = b"hello world!".to_vec();
        fix_streamed_wav(&mut other);
        assert_eq!(other, b"hello world!");
    }

    /// When espeak-ng is installed (scripts/setup installs it), its speech decodes to a prompt.
    #[tokio::test]
    async fn espeak_speech_becomes_a_prompt() {
        let Ok(o) = tokio::process::Command::new("espeak-ng").args(["--stdout", "--", "Press one for sales"]).output().await else { return };
        let mut wav = o.stdout;
        fix_streamed_wav(&mut wav);
        let p = Prompt::from_wav("tts", &wav).unwrap();
        assert!(p.duration() > Duration::from_millis(500), "{p:?}");
    }

    fn ext(id: i64, number: &str) -> Target {
        let x: flow::entity::Extension = serde_json::from_value(serde_json::json!({"id": id, "extension": number, "name": "n"})).unwrap();
        Target::Extension(x)
    }

    #[test]
    fn ring_outcomes_name_the_answering_extension() {
        let t = [ext(3, "101"), ext(4, "102")];
        assert_eq!(ring_outcome(call::RingOutcome::Answered(4), &t), Some(RingOutcome::Answered("extension 102".into())));
        assert_eq!(ring_outcome(call::RingOutcome::Declined, &t), Some(RingOutcome::Busy));
        assert_eq!(ring_outcome(call::RingOutcome::NoAnswer, &t), Some(RingOutcome::NoAnswer));
        assert!(matches!(ring_outcome(call::RingOutcome::Unavailable, &t), Some(RingOutcome::Failed(_))));
        assert_eq!(ring_outcome(call::RingOutcome::CallerHungUp, &t), None);
    }
}
