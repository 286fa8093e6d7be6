//! The dial-in voicemail: what a phone reaches by dialling `*97` (its own box: the box whose
//! message-waiting lamp is on the extension), `*98` (any box: its mailbox number, then the
//! PIN) or a box's `mailbox_number`, and what a caller reaches by pressing `*` during a
//! box's greeting. The SIP stack hands such calls over as an [`call::IncomingCall`] with
//! `voicemail_from` set; [`run`] answers and drives the menu over the call's [`PbxCall`].
//!
//! Login: a box with a PIN always asks for it (`enter-pin`, `#` ends it); a box without one
//! opens only from its owner's phone (`*97`). Three wrong PINs end the call; failures count
//! across calls ([`PinGuard`], per calling extension and per box: [`SOURCE_LIMIT`] from one
//! phone or [`BOX_LIMIT`] from anywhere within 15 minutes lock the box, `vm-locked`).
//!
//! Menu (the usual order): "you have N new messages and M saved messages", then 1 listens —
//! new messages first, then saved ones, oldest first; each is announced with its number,
//! when it was received (spoken) and the caller's number, then played and marked read; during
//! or after it: 5 repeat, 4 previous, 6 next, 7 delete, 9 save, 3 call back (the call is
//! bridged to the caller's number), 8 forward to another box (by mailbox number), `*` back;
//! 0 options: 1 unavailable greeting (the box's custom greeting, `vm-<id>-greeting`, the same
//! prompt a greeting upload writes), 2 busy greeting, 3 name, 4 temporary greeting (played
//! instead of any other while it exists; recording it empty removes it), 5 change the PIN
//! (4–12 digits, twice, stored hashed); `#` exits. Every prompt is a replaceable one of
//! `prompts/` (`vm-*`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flow::control::{CallControl, CallError, CollectOptions, HangupCause, Media};
use media::prompts as p;
use media::Prompt;
use store::{Page, SecretUpdate, VoicemailBox, VoicemailMessage};

use crate::call_control::PbxCall;
use crate::pin_guard::{PinGuard, PinSource};

/// Wrong PINs within the window from one phone before the box refuses it (two calls' worth).
pub const SOURCE_LIMIT: usize = 6;
/// Wrong PINs within the window, from anywhere, before the box refuses everyone.
pub const BOX_LIMIT: usize = 12;
/// PIN attempts per call.
const TRIES: usize = 3;
/// How long the menu waits for a choice after its prompt, and how often it asks again.
const CHOICE_WAIT: Duration = Duration::from_secs(8);
const CHOICE_ASKS: usize = 3;
/// The longest greeting or name recorded.
const GREETING_MAX: Duration = Duration::from_secs(120);

/// The PIN guard the dial-in voicemail counts failures in.
pub fn pin_guard() -> PinGuard {
    PinGuard::with_limits(SOURCE_LIMIT, BOX_LIMIT)
}

/// The custom prompt names of a box's greetings.
pub fn greeting_prompt(box_id: i64, kind: Greeting) -> String {
    match kind {
        Greeting::Unavailable => format!("vm-{box_id}-greeting"),
        Greeting::Busy => format!("vm-{box_id}-busy"),
        Greeting::Name => format!("vm-{box_id}-name"),
        Greeting::Temporary => format!("vm-{box_id}-temporary"),
    }
}

/// A recorded greeting's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    Unavailable,
    Busy,
    Name,
    Temporary,
}

fn db(mailbox: i64) -> impl Fn(store::StoreError) -> CallError {
    move |e| CallError::Voicemail { mailbox, source: flow::control::cause(e) }
}

/// How a session ended.
enum End {
    /// Hang up (goodbye played).
    Hangup,
    /// The caller was bridged (call back): leave the call alone.
    Bridged,
}

/// Runs the dial-in voicemail for `call`, dialled as `dialled` from extension
/// `extension_id`, then hangs up.
pub async fn run(call: Arc<PbxCall>, extension_id: i64, dialled: String, guard: Arc<PinGuard>) {
    let end = session(&call, extension_id, &dialled, &guard).await;
    match end {
        Ok(End::Bridged) => return,
        Ok(End::Hangup) | Err(CallError::CallerHungUp) => {}
        Err(e) => tracing::warn!(call_id = %call.call_id(), error = %e, "the voicemail menu failed"),
    }
    if let Err(e) = call.hangup(HangupCause::Normal).await {
        tracing::debug!(error = %e, "hanging up after the voicemail menu");
    }
}

async fn session(call: &PbxCall, extension_id: i64, dialled: &str, guard: &PinGuard) -> Result<End, CallError> {
    call.answer().await?;
    let store = call.store().clone();
    let own = dialled == call::VOICEMAIL_OWN;
    let mailbox = if own {
        store.voicemail_boxes().list_for_extension(extension_id).await.map_err(db(0))?.into_iter().next()
    } else if dialled == call::VOICEMAIL_ANY {
        ask_mailbox(call).await?
    } else {
        store.voicemail_boxes().get_by_mailbox_number(dialled).await.map_err(db(0))?
    };
    let Some(mailbox) = mailbox else {
        call.play_until_digit(call.prompts(&[p::VM_NO_MAILBOX, p::GOODBYE])?).await?;
        return Ok(End::Hangup);
    };
    let caller = call.caller().number;
    if !login(call, &mailbox, own, &caller, guard).await? {
        call.play_until_digit(call.prompts(&[p::GOODBYE])?).await?;
        return Ok(End::Hangup);
    }
    tracing::info!(call_id = %call.call_id(), mailbox = mailbox.row.id, caller = %caller, "voicemail: logged in");
    menu(call, &mailbox).await
}

/// `*` during a box's greeting: the PIN (always: the caller may be anyone), then the menu.
/// Returns false at once for a box without a PIN (`*` then only skips to the tone); true
/// when the caller tried to log in (the flow goes on once they leave the menu, or were
/// bridged, or failed the PIN).
pub(crate) async fn greeting_login(call: &PbxCall, mailbox: &VoicemailBox, guard: &PinGuard) -> Result<bool, CallError> {
    let caller = call.caller().number;
    if !mailbox.pin_set {
        return Ok(false);
    }
    if login(call, mailbox, false, &caller, guard).await? {
        tracing::info!(call_id = %call.call_id(), mailbox = mailbox.row.id, caller = %caller, "voicemail login from the greeting");
        menu(call, mailbox).await?;
    }
    Ok(true)
}

/// How checking a box from a flow ended.
pub(crate) enum Checked {
    /// The caller left the menu: the flow goes on.
    Left,
    /// No PIN, or not the right one: nothing was opened.
    Refused,
    /// A call back bridged the caller: the call has left the flow.
    Bridged,
}

/// The voicemail node's `check` mode: the PIN (always; a box without one is refused), then
/// the menu.
pub(crate) async fn check(call: &PbxCall, mailbox: &VoicemailBox, guard: &PinGuard) -> Result<Checked, CallError> {
    let caller = call.caller().number;
    if !mailbox.pin_set || !login(call, mailbox, false, &caller, guard).await? {
        return Ok(Checked::Refused);
    }
    tracing::info!(call_id = %call.call_id(), mailbox = mailbox.row.id, caller = %caller, "voicemail: logged in from a flow");
    Ok(match menu(call, mailbox).await? {
        End::Bridged => Checked::Bridged,
        End::Hangup => Checked::Left,
    })
}

/// Asks for a mailbox number (three tries).
async fn ask_mailbox(call: &PbxCall) -> Result<Option<VoicemailBox>, CallError> {
    for _ in 0..TRIES {
        let entered = collect(call, p::VM_ENTER_MAILBOX, 6).await?;
        if !entered.is_empty()
            && let Some(b) = call.store().voicemail_boxes().get_by_mailbox_number(&entered).await.map_err(db(0))?
        {
            return Ok(Some(b));
        }
        call.play_until_digit(call.prompts(&[p::VM_NO_MAILBOX])?).await?;
    }
    Ok(None)
}

/// Collects digits after a prompt, `#` ending them.
async fn collect(call: &PbxCall, prompt: &str, max: u32) -> Result<String, CallError> {
    let options = CollectOptions {
        prompt: Some(Media::Prompt(prompt.into())),
        max_digits: max,
        first_digit_timeout: Duration::from_secs(10),
        inter_digit_timeout: Duration::from_secs(5),
        terminators: "#".into(),
    };
    Ok(call.collect_digits(&options).await?.digits)
}

/// Checks the PIN (see the module documentation). Whether the caller is in.
pub(crate) async fn login(call: &PbxCall, mailbox: &VoicemailBox, own: bool, caller: &str, guard: &PinGuard) -> Result<bool, CallError> {
    let id = mailbox.row.id;
    if !mailbox.pin_set {
        if own {
            return Ok(true);
        }
        tracing::info!(call_id = %call.call_id(), mailbox = id, "voicemail login refused: the box has no PIN and this is not its owner's phone");
        call.play_until_digit(call.prompts(&[p::VM_LOGIN_INCORRECT])?).await?;
        return Ok(false);
    }
    let source = PinSource { bridge_id: id, trunk_id: 0, caller: caller.to_owned() };
    for _ in 0..TRIES {
        let entered = collect(call, p::ENTER_PIN, 12).await?;
        if !guard.allowed(&source, std::time::Instant::now()) {
            tracing::warn!(call_id = %call.call_id(), mailbox = id, %caller, "voicemail login refused: the box is locked after too many wrong PINs");
            call.play_until_digit(call.prompts(&[p::VM_LOCKED])?).await?;
            return Ok(false);
        }
        if !entered.is_empty() && call.store().voicemail_boxes().verify_pin(id, &entered).await.map_err(db(id))? {
            guard.succeeded(&source);
            return Ok(true);
        }
        guard.failed(&source, std::time::Instant::now());
        tracing::info!(call_id = %call.call_id(), mailbox = id, %caller, "wrong voicemail PIN");
        call.play_until_digit(call.prompts(&[p::VM_LOGIN_INCORRECT])?).await?;
    }
    Ok(false)
}

/// Digit prompts for a number (`+` and anything else not a digit skipped).
fn digits_of(call: &PbxCall, number: &str) -> Result<Vec<Prompt>, CallError> {
    let names: Vec<String> = number.chars().filter(char::is_ascii_digit).map(|d| format!("digit-{d}")).collect();
    names.iter().map(|n| call.prompts(&[n.as_str()]).map(|mut v| v.remove(0))).collect()
}

/// New messages, then saved ones, oldest first.
async fn messages(call: &PbxCall, box_id: i64) -> Result<Vec<VoicemailMessage>, CallError> {
    let mut all = call.store().voicemail_messages().list(box_id, Page::all()).await.map_err(db(box_id))?.items;
    all.sort_by_key(|m| (m.read, m.timestamp, m.id));
    Ok(all)
}

/// Asks with `prompt` until a digit comes (a few times), None after that.
async fn choose(call: &PbxCall, prompt: &[Prompt]) -> Result<Option<char>, CallError> {
    for _ in 0..CHOICE_ASKS {
        if let Some(d) = call.play_until_digit(prompt.to_vec()).await? {
            return Ok(Some(d));
        }
        if let Some(d) = call.digit_within(CHOICE_WAIT).await? {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

async fn menu(call: &PbxCall, mailbox: &VoicemailBox) -> Result<End, CallError> {
    let id = mailbox.row.id;
    loop {
        let all = messages(call, id).await?;
        let new = all.iter().filter(|m| !m.read).count();
        let saved = all.len() - new;
        let mut intro = call.prompts(&[p::VM_YOU_HAVE])?;
        intro.extend(digits_of(call, &new.to_string())?);
        intro.extend(call.prompts(&[p::VM_NEW_MESSAGES, p::VM_AND])?);
        intro.extend(digits_of(call, &saved.to_string())?);
        intro.extend(call.prompts(&[p::VM_SAVED_MESSAGES, p::VM_MAIN_MENU])?);
        let Some(choice) = choose(call, &intro).await? else { return goodbye(call).await };
        match choice {
            '1' => {
                if all.is_empty() {
                    call.play_until_digit(call.prompts(&[p::VM_NO_MESSAGES])?).await?;
                    continue;
                }
                if listen(call, mailbox, all).await? {
                    return Ok(End::Bridged);
                }
            }
            '0' => options(call, mailbox).await?,
            '#' => return goodbye(call).await,
            _ => {
                call.play_until_digit(call.prompts(&[p::INVALID_OPTION])?).await?;
            }
        }
    }
}

async fn goodbye(call: &PbxCall) -> Result<End, CallError> {
    call.play_until_digit(call.prompts(&[p::GOODBYE])?).await?;
    Ok(End::Hangup)
}

/// When a message was received, in words (the server's time zone).
fn spoken_time(ts: store::Timestamp) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ts.unix_millis()) else { return String::new() };
    let z = t.to_zoned(jiff::tz::TimeZone::system());
    z.strftime("%A, %B %-d, at %-I:%M %p").to_string()
}

/// Plays the messages one by one with the message menu. Back to the main menu on `*` or
/// after the last one (false); true when a call back bridged the caller.
async fn listen(call: &PbxCall, mailbox: &VoicemailBox, mut list: Vec<VoicemailMessage>) -> Result<bool, CallError> {
    let id = mailbox.row.id;
    let store = call.store().clone();
    let mut i = 0usize;
    while i < list.len() {
        let m = list[i].clone();
        // the header: "Message <n>. Received <when>. From <number>."
        let mut header = call.prompts(&[p::VM_MESSAGE])?;
        header.extend(digits_of(call, &(i + 1).to_string())?);
        let mut choice = call.play_until_digit(header).await?;
        if choice.is_none() {
            call.play_until_digit(call.prompts(&[p::VM_RECEIVED])?).await?;
            choice = call.digit_within(Duration::ZERO).await?;
        }
        if choice.is_none() {
            // the date is spoken (espeak-ng); silence when it is not installed
            let when = spoken_time(m.timestamp);
            tokio::select! {
                biased;
                d = call.next_digit() => choice = Some(d?),
                r = call.say(&when) => r?,
            }
        }
        if choice.is_none() {
            let mut from = call.prompts(&[p::VM_FROM])?;
            match m.caller_id_num.as_deref().filter(|n| n.chars().any(|c| c.is_ascii_digit())) {
                Some(n) => from.extend(digits_of(call, n)?),
                None => from.extend(call.prompts(&[p::VM_UNKNOWN_CALLER])?),
            }
            choice = call.play_until_digit(from).await?;
        }
        if choice.is_none() {
            let audio = match call.file_prompt(&m.file_path).await {
                Ok(a) => vec![a],
                Err(e) => {
                    tracing::warn!(message = m.id, error = %e, "a voicemail message's file cannot be played");
                    Vec::new()
                }
            };
            choice = call.play_until_digit(audio).await?;
            if !m.read {
                store.voicemail_messages().set_read(m.id, true).await.map_err(db(id))?;
                list[i].read = true;
                call.pbx().refresh_mwi().await;
            }
        }
        let choice = match choice {
            Some(c) => Some(c),
            None => choose(call, &call.prompts(&[p::VM_MESSAGE_MENU])?).await?,
        };
        match choice {
            Some('5') => {}
            Some('4') => i = i.saturating_sub(1),
            Some('6') => {
                i += 1;
                if i >= list.len() {
                    call.play_until_digit(call.prompts(&[p::VM_NO_MORE_MESSAGES])?).await?;
                }
            }
            Some('7') => {
                if let Some(gone) = store.voicemail_messages().delete(m.id).await.map_err(db(id))? {
                    if let Err(e) = tokio::fs::remove_file(call.data_dir().join(&gone.file_path)).await {
                        tracing::warn!(error = %e, file = %gone.file_path, "could not remove a deleted voicemail message's file");
                    }
                    tracing::info!(call_id = %call.call_id(), mailbox = id, message = m.id, "voicemail message deleted by phone");
                }
                call.pbx().refresh_mwi().await;
                list.remove(i);
                call.play_until_digit(call.prompts(&[p::VM_DELETED])?).await?;
                if i >= list.len() {
                    call.play_until_digit(call.prompts(&[p::VM_NO_MORE_MESSAGES])?).await?;
                }
            }
            Some('9') => {
                store.voicemail_messages().set_read(m.id, true).await.map_err(db(id))?;
                call.pbx().refresh_mwi().await;
                list[i].read = true;
                call.play_until_digit(call.prompts(&[p::VM_SAVED])?).await?;
                i += 1;
                if i >= list.len() {
                    call.play_until_digit(call.prompts(&[p::VM_NO_MORE_MESSAGES])?).await?;
                }
            }
            Some('3') => {
                if call_back(call, &m).await? {
                    return Ok(true);
                }
            }
            Some('8') => forward(call, &m).await?,
            Some('*') | None => return Ok(false),
            Some(_) => {
                call.play_until_digit(call.prompts(&[p::INVALID_OPTION])?).await?;
            }
        }
    }
    Ok(false)
}

/// Rings the message's caller (an extension by its number, else through the outbound
/// routes) and bridges the answer. Whether it was bridged.
async fn call_back(call: &PbxCall, m: &VoicemailMessage) -> Result<bool, CallError> {
    let Some(number) = m.caller_id_num.clone().filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '+')) else {
        call.play_until_digit(call.prompts(&[p::INVALID_OPTION])?).await?;
        return Ok(false);
    };
    let ext = call.store().extensions().get_by_extension(&number).await.map_err(db(m.mailbox_id))?;
    let request = match ext {
        Some(e) => call::RingRequest {
            extensions: vec![e.id],
            numbers: vec![],
            timeout: Duration::from_secs(u64::try_from(e.ring_timeout).unwrap_or(30).clamp(5, 600)),
            caller_id: None,
        },
        None => call::RingRequest { extensions: vec![], numbers: vec![number.clone()], timeout: Duration::from_secs(60), caller_id: None },
    };
    call.play_until_digit(call.prompts(&[p::PLEASE_HOLD])?).await?;
    match call.pbx().ring(call.key(), request).await {
        Ok(call::RingOutcome::Answered(_) | call::RingOutcome::AnsweredOutside { .. }) => Ok(true),
        Ok(call::RingOutcome::CallerHungUp) => Err(CallError::CallerHungUp),
        Ok(other) => {
            tracing::info!(call_id = %call.call_id(), ?other, %number, "voicemail call back not answered");
            call.play_until_digit(call.prompts(&[p::NO_ANSWER])?).await?;
            Ok(false)
        }
        Err(e) => {
            tracing::info!(call_id = %call.call_id(), error = %e, %number, "voicemail call back failed");
            call.play_until_digit(call.prompts(&[p::SORRY])?).await?;
            Ok(false)
        }
    }
}

/// Copies the message into another box (unread there).
async fn forward(call: &PbxCall, m: &VoicemailMessage) -> Result<(), CallError> {
    let number = collect(call, p::VM_FORWARD_TO, 6).await?;
    let target = if number.is_empty() { None } else { call.store().voicemail_boxes().get_by_mailbox_number(&number).await.map_err(db(m.mailbox_id))? };
    let Some(target) = target else {
        call.play_until_digit(call.prompts(&[p::VM_NO_MAILBOX])?).await?;
        return Ok(());
    };
    let now = store::Timestamp::now();
    let rel = crate::call_control::voicemail_file(target.row.id, now.unix_millis(), call.key());
    let dest = call.data_dir().join(&rel);
    let copy = async {
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = dest.with_extension("wav.part");
        tokio::fs::copy(call.data_dir().join(&m.file_path), &tmp).await?;
        tokio::fs::rename(&tmp, &dest).await
    };
    copy.await.map_err(|e| CallError::VoicemailFolder(flow::control::cause(e)))?;
    let msg = store::NewVoicemailMessage {
        mailbox_id: target.row.id,
        caller_id_name: m.caller_id_name.clone(),
        caller_id_num: m.caller_id_num.clone(),
        timestamp: m.timestamp,
        duration: m.duration,
        file_path: rel.to_string_lossy().into_owned(),
    };
    call.store().voicemail_messages().insert(&msg).await.map_err(db(target.row.id))?;
    call.pbx().refresh_mwi().await;
    tracing::info!(call_id = %call.call_id(), from = m.mailbox_id, to = target.row.id, message = m.id, "voicemail message forwarded");
    call.play_until_digit(call.prompts(&[p::VM_FORWARDED])?).await?;
    Ok(())
}

/// The options menu: greetings, name, PIN.
async fn options(call: &PbxCall, mailbox: &VoicemailBox) -> Result<(), CallError> {
    loop {
        let Some(choice) = choose(call, &call.prompts(&[p::VM_OPTIONS_MENU])?).await? else { return Ok(()) };
        match choice {
            '1' => record_greeting(call, mailbox, Greeting::Unavailable).await?,
            '2' => record_greeting(call, mailbox, Greeting::Busy).await?,
            '3' => record_greeting(call, mailbox, Greeting::Name).await?,
            '4' => record_greeting(call, mailbox, Greeting::Temporary).await?,
            '5' => change_pin(call, mailbox).await?,
            '*' | '#' => return Ok(()),
            _ => {
                call.play_until_digit(call.prompts(&[p::INVALID_OPTION])?).await?;
            }
        }
    }
}

/// Records a greeting (tone, until `#`, silence or two minutes) as the box's custom prompt
/// of that kind, replacing the previous one; the unavailable greeting also becomes the
/// box's greeting (`greeting_type = custom`), as an upload does.
async fn record_greeting(call: &PbxCall, mailbox: &VoicemailBox, kind: Greeting) -> Result<(), CallError> {
    let id = mailbox.row.id;
    call.play_until_digit(call.prompts(&[p::VM_RECORD_AFTER_TONE])?).await?;
    call.play_until_digit(call.prompts(&[p::BEEP])?).await?;
    let name = greeting_prompt(id, kind);
    let dir = call.data_dir().join("prompts").join("custom");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| CallError::VoicemailFolder(flow::control::cause(e)))?;
    let tmp: PathBuf = dir.join(format!(".{name}.{}.recording.wav", call.key()));
    let (duration, hung_up) = call.record_to(&tmp, GREETING_MAX).await?;
    if hung_up {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(CallError::CallerHungUp);
    }
    let store = call.store().clone();
    if duration < Duration::from_millis(500) {
        let _ = tokio::fs::remove_file(&tmp).await;
        if kind == Greeting::Temporary {
            // an empty temporary greeting removes it
            if let Some(old) = store.prompts().get_by_name(&name).await.map_err(db(id))? {
                store.prompts().delete(old.id).await.map_err(db(id))?;
                let _ = tokio::fs::remove_file(call.data_dir().join(&old.file_path)).await;
            }
        }
        call.play_until_digit(call.prompts(&[p::INVALID_OPTION])?).await?;
        return Ok(());
    }
    let rel = format!("prompts/custom/{name}.wav");
    let bytes = tokio::fs::read(&tmp).await.map_err(|e| CallError::VoicemailFolder(flow::control::cause(e)))?;
    tokio::fs::rename(&tmp, call.data_dir().join(&rel)).await.map_err(|e| CallError::VoicemailFolder(flow::control::cause(e)))?;
    let new = store::NewPrompt {
        name: name.clone(),
        file_path: rel,
        original_name: None,
        sample_rate: 8000,
        channels: 1,
        bits_per_sample: 16,
        duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
    };
    let mut tx = store.begin().await.map_err(db(id))?;
    if let Some(old) = tx.prompts().get_by_name(&name).await.map_err(db(id))? {
        tx.prompts().delete(old.id).await.map_err(db(id))?;
    }
    tx.prompts().insert(&new).await.map_err(db(id))?;
    if kind == Greeting::Unavailable {
        let mut fields = mailbox.row.fields.clone();
        fields.greeting_file = Some(name.clone());
        fields.greeting_type = store::GreetingType::Custom;
        tx.voicemail_boxes().update(id, &fields, SecretUpdate::Keep).await.map_err(db(id))?;
    }
    let actor = store::Actor { name: format!("phone:{}", call.caller().number), ip: None };
    tx.audit(&actor, "record_greeting", "voicemail_box", Some(&id.to_string()), None, Some(&serde_json::json!({ "prompt": name }))).await.map_err(db(id))?;
    tx.commit().await.map_err(db(id))?;
    tracing::info!(call_id = %call.call_id(), mailbox = id, ?kind, ms = duration.as_millis() as u64, "voicemail greeting recorded by phone");
    call.play_until_digit(call.prompts(&[p::VM_GREETING_SAVED])?).await?;
    Ok(())
}

/// Whether a new PIN is acceptable: 4–12 digits.
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

async fn change_pin(call: &PbxCall, mailbox: &VoicemailBox) -> Result<(), CallError> {
    let id = mailbox.row.id;
    let first = collect(call, p::VM_NEW_PIN, 12).await?;
    let second = if valid_pin(&first) { collect(call, p::VM_REPEAT_PIN, 12).await? } else { String::new() };
    if !valid_pin(&first) || first != second {
        call.play_until_digit(call.prompts(&[p::VM_PIN_MISMATCH])?).await?;
        return Ok(());
    }
    let store = call.store().clone();
    let current = store.voicemail_boxes().get(id).await.map_err(db(id))?.ok_or(CallError::NoVoicemailBox(id))?;
    let mut tx = store.begin().await.map_err(db(id))?;
    tx.voicemail_boxes().update(id, &current.row.fields, SecretUpdate::Set(&first)).await.map_err(db(id))?;
    let actor = store::Actor { name: format!("phone:{}", call.caller().number), ip: None };
    tx.audit(&actor, "change_pin", "voicemail_box", Some(&id.to_string()), None, None).await.map_err(db(id))?;
    tx.commit().await.map_err(db(id))?;
    tracing::info!(call_id = %call.call_id(), mailbox = id, "voicemail PIN changed by phone");
    call.play_until_digit(call.prompts(&[p::VM_PIN_CHANGED])?).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_4_to_12_digits() {
        assert!(valid_pin("1234"));
        assert!(valid_pin("123456789012"));
        assert!(!valid_pin("123"));
        assert!(!valid_pin("1234567890123"));
        assert!(!valid_pin("12a4"));
        assert!(!valid_pin(""));
    }

    #[test]
    fn greetings_are_prompts_per_box_and_kind() {
        assert_eq!(greeting_prompt(7, Greeting::Unavailable), "vm-7-greeting");
        assert_eq!(greeting_prompt(7, Greeting::Busy), "vm-7-busy");
        assert_eq!(greeting_prompt(7, Greeting::Name), "vm-7-name");
        assert_eq!(greeting_prompt(7, Greeting::Temporary), "vm-7-temporary");
        for k in [Greeting::Unavailable, Greeting::Busy, Greeting::Name, Greeting::Temporary] {
            assert!(media::prompts::valid_name(&greeting_prompt(i64::MAX, k)));
        }
    }

    #[test]
    fn a_received_time_is_spoken_in_words() {
        let t = store::Timestamp::from_unix_millis(1_700_000_000_000).unwrap();
        let s = spoken_time(t);
        assert!(s.contains("November") && s.contains(" at "), "{s}");
    }
}
