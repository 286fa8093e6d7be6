//! [`CallControl`]: how the engine acts on a call. The `pbx` crate implements it with SIP and
//! media (`PbxCall` in `host/pbx/src/call_control.rs`, over `call::PbxHandle`); the simulator ([`crate::sim`]) with a script on a virtual clock. The engine never
//! sees SIP: destinations arrive resolved to entities, prompts by name, and every wait is an
//! `async` method.
//!
//! Contract for implementations:
//! - Every method fails with [`CallError::CallerHungUp`] once the caller has hung up, and
//!   a method waiting when the caller hangs up returns that error at once.
//! - Futures must be cancel-safe: the engine drops one when a node hits its wall-clock limit
//!   and [`collect_digits`](CallControl::collect_digits) drops `play` on the first digit
//!   (barge-in). Dropping `play` stops the audio; dropping `next_digit` loses no digit.
//! - Time comes from `tokio::time` (the simulator pauses it) and wall-clock time from
//!   [`CallControl::now`].

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::entity::{ConferenceBridge, Extension, VoicemailBox};

/// A party to the call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Party {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Audio for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// A prompt by name (`system/<name>` or an uploaded prompt's name).
    Prompt(String),
    /// Text for TTS.
    Tts(String),
}

/// A destination resolved by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An extension (every registered device; follow-me as configured on it).
    Extension(Extension),
    /// A number outside the PBX, through an outbound trunk.
    Number(String),
}

impl Target {
    /// How it reads in a trace or an event.
    pub fn describe(&self) -> String {
        match self {
            Target::Extension(x) => format!("extension {}", x.extension),
            Target::Number(n) => format!("number {n}"),
        }
    }
}

/// `collect_digits` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// Played while waiting for the first digit; stopped by it.
    pub prompt: Option<Media>,
    pub max_digits: u32,
    /// Counted from the end of the prompt.
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    /// Digits that end collection (not part of the result).
    pub terminators: String,
}

/// Why collection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectEnd {
    MaxDigits,
    Terminator,
    Timeout,
}

/// What was collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub digits: String,
    pub ended_by: CollectEnd,
}

/// `ring` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingOptions {
    pub timeout: Duration,
    /// The caller id to present; the call's caller when `None`.
    pub caller_id: Option<Party>,
}

/// How a ring ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "reason")]
pub enum RingOutcome {
    /// Bridged to the target that answered (its description): the call left the flow.
    Answered(String),
    NoAnswer,
    Busy,
    /// Nothing could ring.
    Failed(String),
}

/// `voicemail` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailOptions {
    pub play_greeting: bool,
    /// Never more than the box's own limit.
    pub max_duration: Option<Duration>,
}

/// What a voicemail deposit stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailOutcome {
    pub recorded: bool,
    pub duration: Duration,
}

/// How the flow ends a call (mapped onto SIP by the implementation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupCause {
    Normal,
    Busy,
    Rejected,
    Unavailable,
    NoAnswer,
    Congestion,
}

/// `conference` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceOptions {
    pub muted: bool,
}

/// How a conference stay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceOutcome {
    pub duration: Duration,
}

/// The underlying error of a failed call operation, from the layer below the
/// [`CallControl`] implementation (SIP stack, media, store, file system). Shared, so a
/// [`CallError`] stays cloneable.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Wraps an underlying error as a [`Cause`].
pub fn cause<E: std::error::Error + Send + Sync + 'static>(e: E) -> Cause {
    Arc::new(e)
}

/// Why a call operation failed. The text is what a node (and the trace) shows; the
/// underlying error, where there is one, is its [`source`](std::error::Error::source).
/// Mapped onto the guest's `node-error` in one place (`host::call_error`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The caller hung up: the call is over.
    #[error("the caller hung up")]
    CallerHungUp,
    /// The flow already ended the call (bridged, transferred, hung up: the reason).
    #[error("the call has ended ({0})")]
    Ended(String),
    /// An operation of the SIP stack (`what`: answering, ringing) failed.
    #[error("{what}: {source}")]
    Call { what: &'static str, source: Cause },
    #[error("the call has no media session")]
    NoMediaSession,
    #[error("no media engine")]
    NoMediaEngine,
    #[error("prompt {name:?}: {source}")]
    Prompt { name: String, source: Cause },
    #[error("playing: {0}")]
    Playback(#[source] Cause),
    #[error("text to speech: {0}")]
    Speech(#[source] Cause),
    #[error("text to speech: espeak-ng exited with {0}")]
    SpeechExit(std::process::ExitStatus),
    #[error("recording: {0}")]
    Recording(#[source] Cause),
    #[error("the recording did not complete")]
    RecordingIncomplete,
    #[error("conference PIN: {0}")]
    ConferencePin(#[source] Cause),
    #[error("no valid PIN for conference bridge {0}")]
    NoValidPin(i64),
    #[error("voicemail box {mailbox}: {source}")]
    Voicemail { mailbox: i64, source: Cause },
    #[error("there is no voicemail box {0}")]
    NoVoicemailBox(i64),
    #[error("voicemail folder: {0}")]
    VoicemailFolder(#[source] Cause),
    /// The transfer target did not answer (how the ring ended instead).
    #[error("transfer to {target}: {outcome:?}")]
    Transfer { target: String, outcome: RingOutcome },
    #[error("hanging up: {0}")]
    Hangup(#[source] Cause),
    #[error("conference bridge {0} is full")]
    ConferenceFull(i64),
    #[error("joining conference bridge {bridge}: {source}")]
    ConferenceJoin { bridge: i64, source: Cause },
    /// The implementation does not offer the operation.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// What the engine needs from a call.
#[async_trait]
pub trait CallControl: Send + Sync {
    /// The call's id (SIP Call-ID for real calls).
    fn call_id(&self) -> &str;
    /// The caller as the call arrived.
    fn caller(&self) -> Party;
    /// The dialled number.
    fn dialled(&self) -> &str;
    /// Wall-clock time as this call sees it (scripted for a simulated call).
    fn now(&self) -> jiff::Timestamp;
    /// Whether the caller's leg has been answered.
    fn is_answered(&self) -> bool;

    /// Answers the caller's leg (no-op when answered).
    async fn answer(&self) -> Result<(), CallError>;
    /// Plays a prompt to its end (answering first if needed). Dropping the future stops it.
    async fn play(&self, prompt: &str) -> Result<(), CallError>;
    /// Reads text with TTS to its end (answering first if needed). Dropping stops it.
    async fn say(&self, text: &str) -> Result<(), CallError>;
    /// The digit-events source: the next DTMF digit the caller pressed, buffered ones first
    /// (type-ahead). Cancel-safe: a digit is consumed only when returned.
    async fn next_digit(&self) -> Result<char, CallError>;
    /// Collects digits: the default plays the prompt with barge-in on [`next_digit`]
    /// (see [`collect_with`]); override only for a better native mechanism.
    ///
    /// [`next_digit`]: CallControl::next_digit
    async fn collect_digits(&self, options: &CollectOptions) -> Result<Collected, CallError> {
        collect_with(self, options).await
    }
    /// Rings the targets at once; the first answer is bridged to the caller (the call then
    /// leaves the flow) and the others are cancelled.
    async fn ring(&self, targets: &[Target], options: &RingOptions) -> Result<RingOutcome, CallError>;
    /// Deposits a message into a box: greeting (the box's own or the system one), tone,
    /// recording, and the message stored in the box. A full box plays a prompt and stores
    /// nothing. No message-waiting indication or e-mail is sent.
    async fn voicemail(&self, mailbox: &VoicemailBox, options: &VoicemailOptions) -> Result<VoicemailOutcome, CallError>;
    /// Lets the caller check a box: its PIN, then the voicemail menu until they leave it.
    async fn check_voicemail(&self, mailbox: &VoicemailBox) -> Result<(), CallError> {
        let _ = mailbox;
        Err(CallError::Unsupported("checking voicemail is not offered here"))
    }
    /// Transfers the caller to the target: FlowPBX rings it itself (no REFER) and bridges the
    /// answer, and the call leaves the flow; an error when it does not answer.
    async fn transfer(&self, target: &Target) -> Result<(), CallError>;
    /// Ends the call.
    async fn hangup(&self, cause: HangupCause) -> Result<(), CallError>;
    /// Changes the caller id presented downstream.
    async fn set_caller_id(&self, caller: &Party) -> Result<(), CallError>;
    /// Joins a conference bridge (asking for its PIN when it has one) until the caller
    /// leaves it.
    async fn conference(&self, bridge: &ConferenceBridge, options: &ConferenceOptions) -> Result<ConferenceOutcome, CallError>;
}

async fn play_media<C: CallControl + ?Sized>(call: &C, m: &Media) -> Result<(), CallError> {
    match m {
        Media::Prompt(p) => call.play(p).await,
        Media::Tts(t) => call.say(t).await,
    }
}

/// Digit collection on top of [`CallControl::play`], [`CallControl::say`] and
/// [`CallControl::next_digit`]: plays the prompt until the first digit (barge-in), then
/// collects until `max_digits`, a terminator, or a timeout (`first_digit_timeout` counted
/// from the end of the prompt, `inter_digit_timeout` between digits).
pub async fn collect_with<C: CallControl + ?Sized>(call: &C, o: &CollectOptions) -> Result<Collected, CallError> {
    let max = o.max_digits.clamp(1, 32) as usize;
    let mut digits = String::new();
    let mut first: Option<char> = None;
    if let Some(m) = &o.prompt {
        tokio::select! {
            biased;
            d = call.next_digit() => first = Some(d?),
            r = play_media(call, m) => r?,
        }
    }
    let mut wait = o.first_digit_timeout;
    loop {
        let d = match first.take() {
            Some(d) => d,
            None => match tokio::time::timeout(wait, call.next_digit()).await {
                Ok(d) => d?,
                Err(_) => return Ok(Collected { digits, ended_by: CollectEnd::Timeout }),
            },
        };
        if o.terminators.contains(d) {
            return Ok(Collected { digits, ended_by: CollectEnd::Terminator });
        }
        digits.push(d);
        if digits.len() >= max {
            return Ok(Collected { digits, ended_by: CollectEnd::MaxDigits });
        }
        wait = o.inter_digit_timeout;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::{sleep_until, Instant};

    /// Digits at fixed times from the start; a prompt that lasts 2 s.
    struct Keypad {
        start: Instant,
        digits: Mutex<Vec<(u64, char)>>,
        played: Mutex<Vec<(u64, u64)>>,
    }

    #[async_trait]
    impl CallControl for Keypad {
        fn call_id(&self) -> &str {
            "k"
        }
        fn caller(&self) -> Party {
            Party { number: "1".into(), name: None }
        }
        fn dialled(&self) -> &str {
            "2"
        }
        fn now(&self) -> jiff::Timestamp {
            jiff::Timestamp::UNIX_EPOCH
        }
        fn is_answered(&self) -> bool {
            true
        }
        async fn answer(&self) -> Result<(), CallError> {
            Ok(())
        }
        async fn play(&self, _p: &str) -> Result<(), CallError> {
            let t0 = self.start.elapsed().as_millis() as u64;
            struct Log<'a>(&'a Keypad, u64);
            impl Drop for Log<'_> {
                fn drop(&mut self) {
                    let t = self.0.start.elapsed().as_millis() as u64;
                    self.0.played.lock().unwrap().push((self.1, t));
                }
            }
            let _log = Log(self, t0);
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        }
        async fn say(&self, t: &str) -> Result<(), CallError> {
            self.play(t).await
        }
        async fn next_digit(&self) -> Result<char, CallError> {
            let next = self.digits.lock().unwrap().first().copied();
            let Some((at, d)) = next else { return std::future::pending().await };
            sleep_until(self.start + Duration::from_millis(at)).await;
            self.digits.lock().unwrap().remove(0);
            Ok(d)
        }
        async fn ring(&self, _: &[Target], _: &RingOptions) -> Result<RingOutcome, CallError> {
            Ok(RingOutcome::NoAnswer)
        }
        async fn voicemail(&self, _: &VoicemailBox, _: &VoicemailOptions) -> Result<VoicemailOutcome, CallError> {
            Err(CallError::Unsupported("none"))
        }
        async fn transfer(&self, _: &Target) -> Result<(), CallError> {
            Ok(())
        }
        async fn hangup(&self, _: HangupCause) -> Result<(), CallError> {
            Ok(())
        }
        async fn set_caller_id(&self, _: &Party) -> Result<(), CallError> {
            Ok(())
        }
        async fn conference(&self, _: &ConferenceBridge, _: &ConferenceOptions) -> Result<ConferenceOutcome, CallError> {
            Ok(ConferenceOutcome { duration: Duration::ZERO })
        }
    }

    fn keypad(d: &[(u64, char)]) -> Keypad {
        Keypad { start: Instant::now(), digits: Mutex::new(d.to_vec()), played: Mutex::new(vec![]) }
    }

    fn opts(max: u32, term: &str) -> CollectOptions {
        CollectOptions {
            prompt: Some(Media::Prompt("p".into())),
            max_digits: max,
            first_digit_timeout: Duration::from_secs(5),
            inter_digit_timeout: Duration::from_secs(3),
            terminators: term.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_digit_during_the_prompt_stops_it() {
        let k = keypad(&[(500, '4'), (1000, '2')]);
        let c = k.collect_digits(&opts(2, "")).await.unwrap();
        assert_eq!(c, Collected { digits: "42".into(), ended_by: CollectEnd::MaxDigits });
        assert_eq!(*k.played.lock().unwrap(), vec![(0, 500)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_timeout_counts_from_the_end_of_the_prompt() {
        let k = keypad(&[(6900, '1')]);
        let c = k.collect_digits(&opts(1, "")).await.unwrap();
        assert_eq!(c.digits, "1");
        let k = keypad(&[(7100, '1')]);
        let t0 = Instant::now();
        let c = k.collect_digits(&opts(1, "")).await.unwrap();
        assert_eq!(c, Collected { digits: String::new(), ended_by: CollectEnd::Timeout });
        assert_eq!(t0.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn inter_digit_timeout_and_terminator_end_collection() {
        let k = keypad(&[(100, '1'), (3000, '2'), (6100, '3')]);
        let c = k.collect_digits(&opts(5, "#")).await.unwrap();
        assert_eq!(c, Collected { digits: "12".into(), ended_by: CollectEnd::Timeout });
        let k = keypad(&[(100, '1'), (200, '#'), (300, '3')]);
        let c = k.collect_digits(&opts(5, "#")).await.unwrap();
        assert_eq!(c, Collected { digits: "1".into(), ended_by: CollectEnd::Terminator });
        // The digit after the terminator stays for the next collection.
        assert_eq!(k.digits.lock().unwrap().len(), 1);
    }

    #[test]
    fn call_errors_keep_their_text_and_chain_the_underlying_error() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only file system");
        let e = CallError::VoicemailFolder(cause(io));
        assert_eq!(e.to_string(), "voicemail folder: read-only file system");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("read-only file system"));
        let e = CallError::Voicemail { mailbox: 7, source: cause(std::fmt::Error) };
        assert_eq!(e.to_string(), "voicemail box 7: an error occurred when formatting an argument");
        assert!(e.source().is_some());
        assert_eq!(CallError::NoValidPin(3).to_string(), "no valid PIN for conference bridge 3");
        assert!(CallError::NoValidPin(3).source().is_none());
        let t = CallError::Transfer { target: "extension 201".into(), outcome: RingOutcome::Busy };
        assert_eq!(t.to_string(), "transfer to extension 201: Busy");
        assert_eq!(CallError::Ended("bridged".into()).to_string(), "the call has ended (bridged)");
    }
}
