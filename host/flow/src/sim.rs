//! The call simulator: runs a flow (a draft or a published version), or one plugin node,
//! against a scripted call — caller, dialled number, a clock in an IANA zone, DTMF with
//! timings, which extensions answer or are busy, presence, canned HTTP responses — and
//! reports the path with each node's output and log lines, and what the caller experienced.
//!
//! Deterministic: the simulation runs on its own current-thread tokio runtime with a paused
//! clock, so every wait (a prompt playing, a ring timeout, a digit arriving, a node's
//! wall-clock limit) happens in virtual time, in the same order every run. The scripted
//! call ([`SimCall`]) reads no wall clock; the nodes see the scripted time through
//! `clock.now`. Only guest CPU use is measured in real time (a runaway loop is stopped by
//! its CPU budget all the same).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, sleep_until, Instant};

use crate::control::*;
use crate::engine::{Engine, PreparedFlow};
use crate::entity::{ConferenceBridge, Entity, EntityKind, VoicemailBox};
use crate::graph::{Graph, ENTRY_TYPE};
use crate::registry::Registry;
use crate::services::{Directory, HttpClient, HttpError, HttpRequest, HttpResponse, KvStore, MemoryKv, Presence, Services};
use crate::trace::Trace;
use crate::types::Capability;
use crate::Error;

/// The scripted clock: a local date-time in a zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptClock {
    /// `2026-12-25T09:00` (local, in `zone`), or an RFC 3339 instant.
    pub start: String,
    /// An IANA zone; UTC when absent.
    #[serde(default = "utc")]
    pub zone: String,
}

fn utc() -> String {
    "UTC".into()
}

impl Default for ScriptClock {
    fn default() -> ScriptClock {
        ScriptClock { start: "2026-01-05T10:00".into(), zone: utc() }
    }
}

impl ScriptClock {
    fn instant(&self) -> Result<jiff::Timestamp, Error> {
        if let Ok(t) = self.start.parse::<jiff::Timestamp>() {
            return Ok(t);
        }
        let dt: jiff::civil::DateTime = self.start.parse().map_err(|e| Error::Script(format!("clock.start {:?}: {e}", self.start)))?;
        let tz = jiff::tz::TimeZone::get(&self.zone).map_err(|e| Error::Script(format!("clock.zone {:?}: {e}", self.zone)))?;
        dt.to_zoned(tz).map(|z| z.timestamp()).map_err(|e| Error::Script(format!("clock: {e}")))
    }
}

/// Digits the caller presses at a time (ms from the start of the call), 150 ms apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dtmf {
    pub at_ms: u64,
    pub digits: String,
}

/// Digits the caller presses when the flow asks for input ([`Script::menu_dtmf`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MenuDtmf {
    pub digits: String,
    /// How long after the asking starts (the prompt is cut short by the first digit).
    #[serde(default = "one_s")]
    pub after_ms: u64,
}

fn one_s() -> u64 {
    1000
}

/// What a rung phone does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Answers after 3 s.
    Answer,
    Busy,
    /// Rings until the timeout.
    NoAnswer,
    /// No device registered.
    Unavailable,
    /// Answers after this long: `{"answer_after_ms": 5000}`.
    #[serde(untagged)]
    After {
        answer_after_ms: u64,
    },
}

/// Presence of an extension (by number).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptPresence {
    #[serde(default = "one")]
    pub registered: u32,
    #[serde(default)]
    pub in_call: bool,
    /// Since the last call ended; absent: no call since start-up.
    #[serde(default)]
    pub idle_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// A canned HTTP response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CannedResponse {
    /// Matches any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// The exact URL, or a prefix ending in `*`.
    pub url: String,
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (a string is sent as is).
    #[serde(default)]
    pub body: serde_json::Value,
    /// How long the server takes.
    #[serde(default)]
    pub delay_ms: u64,
}

fn ok() -> u16 {
    200
}

/// What the caller does after a voicemail recording or in a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    #[default]
    HangUp,
    Stay,
}

/// The caller at a voicemail box.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptVoicemail {
    #[serde(default = "ten_s")]
    pub message_ms: u64,
    #[serde(default)]
    pub then: Then,
}

fn ten_s() -> u64 {
    10_000
}

impl Default for ScriptVoicemail {
    fn default() -> Self {
        ScriptVoicemail { message_ms: ten_s(), then: Then::HangUp }
    }
}

/// The caller in a conference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptConference {
    #[serde(default = "minute")]
    pub stay_ms: u64,
    /// `hang_up` (default) or `stay` (leaves the bridge and continues in the flow).
    #[serde(default)]
    pub then: Then,
}

fn minute() -> u64 {
    60_000
}

impl Default for ScriptConference {
    fn default() -> Self {
        ScriptConference { stay_ms: minute(), then: Then::HangUp }
    }
}

/// An entity the script adds (or replaces) for the simulation only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptEntity {
    pub kind: EntityKind,
    pub data: serde_json::Value,
}

/// For `flowpbx node test`: the one node under test.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScriptNode {
    #[serde(default)]
    pub config: serde_json::Value,
    /// The linked entity (one of `entities`), if any.
    #[serde(default)]
    pub entity: Option<ScriptEntityRef>,
    /// The capabilities granted; everything the node asks for when absent.
    #[serde(default)]
    pub grants: Option<Vec<Capability>>,
}

/// A reference to an entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptEntityRef {
    pub kind: EntityKind,
    pub id: i64,
}

/// A scripted call. Every field has a default; `{}` is a valid script.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default = "default_caller")]
    pub caller: Party,
    #[serde(default)]
    pub dialled: String,
    /// The node to start at; when absent, the entry the dialled number maps to, or the
    /// flow's only entry.
    #[serde(default)]
    pub entry: Option<String>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub clock: ScriptClock,
    #[serde(default)]
    pub dtmf: Vec<Dtmf>,
    /// Digits the caller presses each time the flow asks for input: one entry per digit
    /// collection (an IVR menu's attempt), in order, each `after_ms` after that collection
    /// starts. Unlike `dtmf` (times from the start of the call) this does not depend on how
    /// long the prompts before it last. Both may be used; digits are taken in time order.
    #[serde(default)]
    pub menu_dtmf: Vec<MenuDtmf>,
    /// The caller hangs up at this time (ms from the start).
    #[serde(default)]
    pub hangup_at_ms: Option<u64>,
    /// Extension number → what it does when rung (default: no answer).
    #[serde(default)]
    pub extensions: BTreeMap<String, Answer>,
    /// External number → what it does when rung (default: no answer).
    #[serde(default)]
    pub numbers: BTreeMap<String, Answer>,
    /// Extension number → presence (default: one device, idle since start-up).
    #[serde(default)]
    pub presence: BTreeMap<String, ScriptPresence>,
    #[serde(default)]
    pub http: Vec<CannedResponse>,
    /// Prompt name → length in ms (default `prompt_ms`).
    #[serde(default)]
    pub prompts: BTreeMap<String, u64>,
    #[serde(default = "three_s")]
    pub prompt_ms: u64,
    #[serde(default)]
    pub voicemail: ScriptVoicemail,
    #[serde(default)]
    pub conference: ScriptConference,
    #[serde(default)]
    pub entities: Vec<ScriptEntity>,
    /// Namespace (node type id) → key → value: kv state before the call.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub node: Option<ScriptNode>,
}

fn default_caller() -> Party {
    Party { number: "+61400000000".into(), name: None }
}

fn three_s() -> u64 {
    3000
}

impl Script {
    /// Parses a script from JSON.
    pub fn parse(json: &str) -> Result<Script, Error> {
        serde_json::from_str(json).map_err(|e| Error::Script(e.to_string()))
    }
}

/// Something the caller experienced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimEvent {
    pub at_ms: u64,
    pub event: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A request a node sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    pub at_ms: u64,
    pub request: HttpRequest,
    /// The status answered, or why none.
    pub result: String,
}

/// The result of a simulation.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// The path: each node, its output, timing, error and log lines.
    pub trace: Trace,
    /// What happened to the caller, in order.
    pub events: Vec<SimEvent>,
    pub http_requests: Vec<RecordedRequest>,
    /// Virtual time the call took.
    pub duration_ms: u64,
}

#[derive(Debug)]
struct SimState {
    caller: Party,
    answered: bool,
    digits: VecDeque<(Instant, char)>,
    /// `menu_dtmf` entries not yet pressed.
    menu: VecDeque<MenuDtmf>,
    /// The flow ended the call (bridged, transferred, hung up).
    ended: Option<String>,
    caller_gone: bool,
    events: Vec<SimEvent>,
}

/// A scripted call.
pub struct SimCall {
    call_id: String,
    dialled: String,
    start: Instant,
    start_wall: jiff::Timestamp,
    hangup_at: Option<Instant>,
    script: Arc<Script>,
    state: Mutex<SimState>,
}

impl SimCall {
    /// A call starting now (in tokio time) at the script's clock.
    pub fn new(script: Arc<Script>) -> Result<SimCall, Error> {
        let start = Instant::now();
        let mut digits = VecDeque::new();
        let mut dtmf = script.dtmf.clone();
        dtmf.sort_by_key(|d| d.at_ms);
        let check = |digits: &str| match digits.chars().find(|c| !"0123456789*#ABCD".contains(*c)) {
            Some(c) => Err(Error::Script(format!("{c:?} is not a DTMF digit"))),
            None => Ok(()),
        };
        for d in &dtmf {
            check(&d.digits)?;
            for (i, c) in d.digits.chars().enumerate() {
                digits.push_back((start + Duration::from_millis(d.at_ms + 150 * i as u64), c));
            }
        }
        for m in &script.menu_dtmf {
            check(&m.digits)?;
        }
        let menu = script.menu_dtmf.iter().cloned().collect();
        Ok(SimCall {
            call_id: script.call_id.clone().unwrap_or_else(|| "simulated-call".into()),
            dialled: script.dialled.clone(),
            start,
            start_wall: script.clock.instant()?,
            hangup_at: script.hangup_at_ms.map(|ms| start + Duration::from_millis(ms)),
            state: Mutex::new(SimState { caller: script.caller.clone(), answered: false, digits, menu, ended: None, caller_gone: false, events: Vec::new() }),
            script,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn at_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn event(&self, event: &str, detail: impl Into<String>) {
        let at_ms = self.at_ms();
        self.lock().events.push(SimEvent { at_ms, event: event.into(), detail: detail.into() });
    }

    /// What happened, in order.
    pub fn events(&self) -> Vec<SimEvent> {
        self.lock().events.clone()
    }

    fn check(&self) -> Result<(), CallError> {
        let s = self.lock();
        if s.caller_gone {
            return Err(CallError::CallerHungUp);
        }
        if let Some(why) = &s.ended {
            return Err(CallError::Ended(why.clone()));
        }
        Ok(())
    }

    /// Runs `f` unless the caller hangs up first (at `hangup_at_ms`).
    async fn guard<T>(&self, f: impl Future<Output = Result<T, CallError>>) -> Result<T, CallError> {
        self.check()?;
        if let Some(at) = self.hangup_at {
            if Instant::now() >= at {
                self.caller_hangs_up();
                return Err(CallError::CallerHungUp);
            }
            tokio::select! {
                r = f => r,
                _ = sleep_until(at) => {
                    self.caller_hangs_up();
                    Err(CallError::CallerHungUp)
                }
            }
        } else {
            f.await
        }
    }

    fn caller_hangs_up(&self) {
        let first = {
            let mut s = self.lock();
            !std::mem::replace(&mut s.caller_gone, true)
        };
        if first {
            self.event("caller_hangs_up", "");
        }
    }

    fn answer_now(&self) {
        let first = {
            let mut s = self.lock();
            !std::mem::replace(&mut s.answered, true)
        };
        if first {
            self.event("answer", "");
        }
    }

    fn end(&self, why: String) {
        self.lock().ended = Some(why);
    }

    fn prompt_ms(&self, name: &str) -> u64 {
        self.script.prompts.get(name).copied().unwrap_or(self.script.prompt_ms)
    }

    /// Plays for `ms`, logging an interruption when dropped early (barge-in, limits).
    async fn audio(&self, event: &str, what: &str, ms: u64) -> Result<(), CallError> {
        self.answer_now();
        self.event(event, format!("{what} ({ms} ms)"));
        struct Cut<'a> {
            call: &'a SimCall,
            done: bool,
        }
        impl Drop for Cut<'_> {
            fn drop(&mut self) {
                if !self.done && !self.call.lock().caller_gone {
                    self.call.event("audio_stopped", "");
                }
            }
        }
        let mut cut = Cut { call: self, done: false };
        sleep(Duration::from_millis(ms)).await;
        cut.done = true;
        Ok(())
    }

    /// A digit collection starts: the caller's next `menu_dtmf` entry is pressed `after_ms`
    /// from now.
    fn press_next_menu_entry(&self) {
        let mut s = self.lock();
        if let Some(m) = s.menu.pop_front() {
            let at = Instant::now() + Duration::from_millis(m.after_ms);
            for (i, c) in m.digits.chars().enumerate() {
                s.digits.push_back((at + Duration::from_millis(150 * i as u64), c));
            }
            s.digits.make_contiguous().sort_by_key(|d| d.0);
        }
    }

    fn behaviour(&self, t: &Target) -> (String, Answer) {
        match t {
            Target::Extension(x) => {
                let presence = self.script.presence.get(&x.extension);
                let a = if presence.is_some_and(|p| p.registered == 0) {
                    Answer::Unavailable
                } else if x.dnd {
                    Answer::Busy
                } else {
                    self.script.extensions.get(&x.extension).copied().unwrap_or(Answer::NoAnswer)
                };
                (t.describe(), a)
            }
            Target::Number(n) => (t.describe(), self.script.numbers.get(n).copied().unwrap_or(Answer::NoAnswer)),
        }
    }
}

#[async_trait]
impl CallControl for SimCall {
    fn call_id(&self) -> &str {
        &self.call_id
    }
    fn caller(&self) -> Party {
        self.lock().caller.clone()
    }
    fn dialled(&self) -> &str {
        &self.dialled
    }
    fn now(&self) -> jiff::Timestamp {
        let d = jiff::SignedDuration::try_from(self.start.elapsed()).unwrap_or(jiff::SignedDuration::ZERO);
        self.start_wall.checked_add(d).unwrap_or(self.start_wall)
    }
    fn is_answered(&self) -> bool {
        self.lock().answered
    }

    async fn answer(&self) -> Result<(), CallError> {
        self.guard(async {
            self.answer_now();
            Ok(())
        })
        .await
    }

    async fn play(&self, prompt: &str) -> Result<(), CallError> {
        self.guard(self.audio("play", prompt, self.prompt_ms(prompt))).await
    }

    async fn say(&self, text: &str) -> Result<(), CallError> {
        let ms = (text.chars().count() as u64 * 65).max(1000);
        self.guard(self.audio("say", text, ms)).await
    }

    async fn next_digit(&self) -> Result<char, CallError> {
        self.guard(async {
            let next = self.lock().digits.front().copied();
            let Some((at, _)) = next else {
                return std::future::pending().await;
            };
            sleep_until(at).await;
            let d = self.lock().digits.pop_front().map(|(_, d)| d);
            match d {
                Some(d) => {
                    self.event("digit", d.to_string());
                    Ok(d)
                }
                None => std::future::pending().await,
            }
        })
        .await
    }

    async fn collect_digits(&self, o: &CollectOptions) -> Result<Collected, CallError> {
        self.check()?;
        self.press_next_menu_entry();
        collect_with(self, o).await
    }

    async fn ring(&self, targets: &[Target], o: &RingOptions) -> Result<RingOutcome, CallError> {
        self.guard(async {
            let names: Vec<String> = targets.iter().map(Target::describe).collect();
            let cid = o
                .caller_id
                .as_ref()
                .map(|p| format!(" showing {}{}", p.number, p.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()))
                .unwrap_or_default();
            self.event("ring", format!("{} for {} ms{cid}", names.join(", "), o.timeout.as_millis()));
            let behaviours: Vec<(String, Answer)> = targets.iter().map(|t| self.behaviour(t)).collect();
            let answer = behaviours
                .iter()
                .filter_map(|(who, a)| match a {
                    Answer::Answer => Some((3000, who)),
                    Answer::After { answer_after_ms } => Some((*answer_after_ms, who)),
                    _ => None,
                })
                .filter(|(ms, _)| Duration::from_millis(*ms) < o.timeout)
                .min_by_key(|(ms, _)| *ms);
            if let Some((ms, who)) = answer {
                sleep(Duration::from_millis(ms)).await;
                self.event("bridged", who.clone());
                self.end(format!("bridged to {who}"));
                return Ok(RingOutcome::Answered(who.clone()));
            }
            let rings = behaviours.iter().any(|(_, a)| matches!(a, Answer::NoAnswer | Answer::Answer | Answer::After { .. }));
            if !rings {
                let busy = behaviours.iter().any(|(_, a)| *a == Answer::Busy);
                let r = if busy { RingOutcome::Busy } else { RingOutcome::Failed("no device registered".into()) };
                self.event("ring_result", format!("{r:?}"));
                return Ok(r);
            }
            sleep(o.timeout).await;
            self.event("ring_result", "no answer");
            Ok(RingOutcome::NoAnswer)
        })
        .await
    }

    async fn check_voicemail(&self, mailbox: &VoicemailBox) -> Result<(), CallError> {
        self.guard(async {
            self.audio("play", "enter-pin", self.prompt_ms("enter-pin")).await?;
            self.event("voicemail_menu", format!("voicemail box {}", mailbox.name));
            Ok(())
        })
        .await
    }

    async fn voicemail(&self, mailbox: &VoicemailBox, o: &VoicemailOptions) -> Result<VoicemailOutcome, CallError> {
        self.guard(async {
            if o.play_greeting {
                self.audio("play", &format!("greeting of voicemail box {}", mailbox.name), self.prompt_ms("voicemail/greeting")).await?;
            }
            self.event("record", format!("voicemail box {}", mailbox.name));
            let max = o.max_duration.unwrap_or(Duration::from_secs(u64::from(mailbox.max_message_duration)));
            let len = Duration::from_millis(self.script.voicemail.message_ms).min(max);
            sleep(len).await;
            self.event("message_stored", format!("voicemail box {} ({} ms)", mailbox.name, len.as_millis()));
            if self.script.voicemail.then == Then::HangUp {
                self.caller_hangs_up();
                return Err(CallError::CallerHungUp);
            }
            Ok(VoicemailOutcome { recorded: true, duration: len })
        })
        .await
    }

    async fn transfer(&self, target: &Target) -> Result<(), CallError> {
        self.guard(async {
            self.event("transfer", target.describe());
            self.end(format!("transferred to {}", target.describe()));
            Ok(())
        })
        .await
    }

    async fn hangup(&self, cause: HangupCause) -> Result<(), CallError> {
        self.guard(async {
            self.event("hangup", format!("{cause:?}"));
            self.end("hung up".into());
            Ok(())
        })
        .await
    }

    async fn set_caller_id(&self, caller: &Party) -> Result<(), CallError> {
        self.guard(async {
            self.event("caller_id", format!("{}{}", caller.number, caller.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()));
            self.lock().caller = caller.clone();
            Ok(())
        })
        .await
    }

    async fn conference(&self, bridge: &ConferenceBridge, o: &ConferenceOptions) -> Result<ConferenceOutcome, CallError> {
        self.guard(async {
            self.answer_now();
            let pin = if bridge.has_pin { " after its PIN" } else { "" };
            self.event("conference", format!("joins {}{pin}{}", bridge.name, if o.muted { " muted" } else { "" }));
            let stay = Duration::from_millis(self.script.conference.stay_ms);
            sleep(stay).await;
            if self.script.conference.then == Then::HangUp {
                self.caller_hangs_up();
                return Err(CallError::CallerHungUp);
            }
            self.event("conference_left", bridge.name.clone());
            Ok(ConferenceOutcome { duration: stay })
        })
        .await
    }
}

/// HTTP answered from the script.
pub struct CannedHttp {
    responses: Vec<CannedResponse>,
    start: Instant,
    log: Mutex<Vec<RecordedRequest>>,
}

impl CannedHttp {
    pub fn new(responses: Vec<CannedResponse>) -> CannedHttp {
        CannedHttp { responses, start: Instant::now(), log: Mutex::new(Vec::new()) }
    }
    /// The requests sent so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn record(&self, at_ms: u64, request: HttpRequest, result: String) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(RecordedRequest { at_ms, request, result });
    }
}

#[async_trait]
impl HttpClient for CannedHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let at_ms = self.start.elapsed().as_millis() as u64;
        let url = req.url.to_string();
        let url = url.as_str();
        let hit = self.responses.iter().find(|r| {
            let url_ok = match r.url.strip_suffix('*') {
                Some(prefix) => url.starts_with(prefix),
                None => r.url == url || r.url.trim_end_matches('/') == url.trim_end_matches('/'),
            };
            url_ok && r.method.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(&req.method))
        });
        let Some(r) = hit.cloned() else {
            self.record(at_ms, req, "no canned response".into());
            return Err(HttpError::Failed(format!("connection refused (the script has no response for {url})")));
        };
        let delay = Duration::from_millis(r.delay_ms);
        if delay >= req.timeout {
            sleep(req.timeout).await;
            self.record(at_ms, req, "timeout".into());
            return Err(HttpError::Timeout);
        }
        sleep(delay).await;
        let body = match &r.body {
            serde_json::Value::String(s) => s.clone().into_bytes(),
            serde_json::Value::Null => Vec::new(),
            v => v.to_string().into_bytes(),
        };
        self.record(at_ms, req, r.status.to_string());
        Ok(HttpResponse { status: r.status, headers: r.headers.into_iter().collect(), body })
    }
}

/// Presence from the script.
struct SimDirectory {
    map: BTreeMap<i64, Presence>,
}

impl Directory for SimDirectory {
    fn presence(&self, id: i64) -> Presence {
        self.map.get(&id).cloned().unwrap_or(Presence { registered_devices: 1, in_call: false, last_call_ended: None })
    }
}

/// The flow to simulate.
pub enum SimTarget {
    /// A draft graph (validated and linked with the simulation's entities).
    Draft { flow_id: i64, graph: Graph },
    /// A prepared (published) version, with the plugin versions it was published with.
    Prepared(Arc<PreparedFlow>),
}

impl Engine {
    /// The simulation's services: live entities plus the script's, scripted presence, a
    /// fresh kv seeded from the script, canned HTTP.
    async fn sim_services(&self, script: &Script, http: Arc<CannedHttp>) -> Result<Services, Error> {
        let mut extra = Vec::new();
        for e in &script.entities {
            let ent = Entity::from_json(e.kind, &e.data.to_string()).map_err(|err| Error::Script(format!("entity {}: {err}", e.kind)))?;
            extra.push(ent);
        }
        let entities = Arc::new(self.services().entities.overlay(extra));
        let start = script.clock.instant()?;
        let snap = entities.snapshot();
        let mut map = BTreeMap::new();
        for (number, p) in &script.presence {
            let x = snap.extension_by_number(number).ok_or_else(|| Error::Script(format!("presence: no extension {number}")))?;
            let ended = p.idle_ms.map(|ms| start.checked_sub(jiff::SignedDuration::from_millis(ms as i64)).unwrap_or(start));
            map.insert(x.id, Presence { registered_devices: p.registered, in_call: p.in_call, last_call_ended: ended });
        }
        let kv = Arc::new(MemoryKv::new());
        for (ns, keys) in &script.kv {
            for (k, v) in keys {
                kv.set(ns, k, v.as_bytes()).await.map_err(|e| Error::Script(e.to_string()))?;
            }
        }
        Ok(Services { entities, directory: Arc::new(SimDirectory { map }), kv, http })
    }

    fn sim_runtime() -> Result<tokio::runtime::Runtime, Error> {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().map_err(|e| Error::io("a simulation runtime", e))
    }

    async fn simulate_on(&self, target: SimTarget, script: Script, reg: Option<Registry>) -> Result<SimReport, Error> {
        let script = Arc::new(script);
        let http = Arc::new(CannedHttp::new(script.http.clone()));
        let services = self.sim_services(&script, http.clone()).await?;
        let flow = match target {
            SimTarget::Prepared(f) => f,
            SimTarget::Draft { flow_id, graph } => {
                let reg = match reg {
                    Some(r) => r,
                    None => Registry::clone(&self.registry()),
                };
                self.prepare_with(flow_id, 0, graph, &reg, &services, None).await?
            }
        };
        let entry = match &script.entry {
            Some(e) if flow.nodes.contains_key(e) => e.clone(),
            Some(e) => return Err(Error::Script(format!("entry {e:?} is not a node of the flow"))),
            None => {
                let snap = services.entities.snapshot();
                let mapped = snap.inbound_number(&script.dialled).filter(|n| n.flow_id == Some(flow.flow_id)).and_then(|n| n.flow_entry_node.clone());
                let entries = flow.entries();
                match (mapped, entries.as_slice()) {
                    (Some(e), _) if flow.nodes.contains_key(&e) => e,
                    (_, [only]) => only.to_string(),
                    _ => return Err(Error::Script(format!("the flow has {} entries and {:?} maps to none: set `entry`", entries.len(), script.dialled))),
                }
            }
        };
        let call = Arc::new(SimCall::new(script.clone())?);
        let t0 = Instant::now();
        let trace = self.run_call_with(flow, &entry, call.clone(), &services).await;
        Ok(SimReport { trace, events: call.events(), http_requests: http.requests(), duration_ms: t0.elapsed().as_millis() as u64 })
    }

    /// Simulates a call, blocking the current thread (it runs its own paused-clock runtime;
    /// call it from `spawn_blocking` or a plain thread, not from inside a runtime).
    pub fn simulate_blocking(&self, target: SimTarget, script: Script) -> Result<SimReport, Error> {
        Self::sim_runtime()?.block_on(self.simulate_on(target, script, None))
    }

    /// Simulates a call from async code (on a blocking thread).
    pub async fn simulate(&self, target: SimTarget, script: Script) -> Result<SimReport, Error> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.simulate_blocking(target, script)).await.map_err(|e| Error::Engine(format!("simulation thread: {e}")))?
    }

    /// `flowpbx node test PLUGIN.wasm --script SCRIPT`: the simulator around one node. The
    /// flow is an entry leading to the node (config, entity and grants from `script.node`;
    /// grants default to everything the node asks for). Blocking, like
    /// [`simulate_blocking`](Engine::simulate_blocking).
    pub fn test_plugin_blocking(&self, component: &[u8], script: Script) -> Result<SimReport, Error> {
        let node = script.node.clone().unwrap_or_default();
        let mut t = self.plugin_type(component, &crate::types::PluginGrants::default())?;
        let granted = crate::types::Grants::effective(&t.info.capabilities, node.grants.as_deref());
        t.info.granted = granted.list();
        t.grants = Arc::new(granted);
        let id = t.info.id.clone();
        let mut reg = Registry::clone(&self.registry());
        reg.insert(t);
        let mut data = serde_json::json!({ "label": id, "config": if node.config.is_null() { serde_json::json!({}) } else { node.config.clone() } });
        if let Some(e) = &node.entity {
            data["entity_id"] = e.id.into();
            data["entity_type"] = e.kind.as_str().into();
        }
        let graph = Graph::from_value(serde_json::json!({
            "nodes": [
                { "id": "entry", "type": ENTRY_TYPE, "data": {} },
                { "id": "node", "type": id, "data": data }
            ],
            "edges": [ { "id": "e", "source": "entry", "sourceHandle": "next", "target": "node" } ]
        }))?;
        let mut script = script;
        script.entry = Some("entry".into());
        Self::sim_runtime()?.block_on(self.simulate_on(SimTarget::Draft { flow_id: 0, graph }, script, Some(reg)))
    }
}
