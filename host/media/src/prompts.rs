//! The default prompt set (embedded in the binary), its extraction to
//! `<data-dir>/prompts/system`, and loading prompts by name from the custom and system folders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{MediaError, Result};
use crate::player::Prompt;
use crate::wav;

include!(concat!(env!("OUT_DIR"), "/prompts.rs"));

/// The embedded prompts: (name, WAV bytes).
pub fn embedded() -> &'static [(&'static str, &'static [u8])] {
    EMBEDDED
}

/// The embedded WAV of a default prompt.
pub fn embedded_wav(name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Name of the music-on-hold track (a 24 s loop).
pub const MUSIC_ON_HOLD: &str = "music-on-hold";
/// "Welcome. Thank you for calling."
pub const WELCOME: &str = "welcome";
/// "Please hold while we connect your call."
pub const PLEASE_HOLD: &str = "please-hold";
/// "That is not a valid option. Please try again."
pub const INVALID_OPTION: &str = "invalid-option";
/// "Goodbye."
pub const GOODBYE: &str = "goodbye";
/// The flow fallback: "Sorry, we cannot take your call right now. Please try again later."
pub const SORRY: &str = "sorry";
/// The default voicemail greeting: "The person you are calling is not available. …"
pub const VOICEMAIL_GREETING: &str = "voicemail-greeting";
/// "Please leave your message after the tone. …"
pub const LEAVE_MESSAGE_AFTER_TONE: &str = "leave-message-after-tone";
/// A 400 ms 1 kHz tone.
pub const BEEP: &str = "beep";
/// "The mailbox is full and cannot accept new messages."
pub const MAILBOX_FULL: &str = "mailbox-full";
/// "There is no answer."
pub const NO_ANSWER: &str = "no-answer";
/// "The number you are calling is busy."
pub const BUSY: &str = "busy";
/// "Please hold while your call is transferred."
pub const TRANSFER: &str = "transfer";
/// "Please enter your PIN, followed by the pound key."
pub const ENTER_PIN: &str = "enter-pin";
/// Played to a follow-me number that answers: "You have a call. Press one to accept it."
pub const FOLLOW_ME_ACCEPT: &str = "follow-me-accept";

/// The dial-in voicemail: "Voicemail. Please enter your mailbox number, followed by the pound key."
pub const VM_ENTER_MAILBOX: &str = "vm-enter-mailbox";
/// The dial-in voicemail: "There is no such mailbox."
pub const VM_NO_MAILBOX: &str = "vm-no-mailbox";
/// The dial-in voicemail: "Login incorrect."
pub const VM_LOGIN_INCORRECT: &str = "vm-login-incorrect";
/// The dial-in voicemail: "This mailbox is locked after too many wrong PINs. Please try again later."
pub const VM_LOCKED: &str = "vm-locked";
/// The dial-in voicemail: "You have"
pub const VM_YOU_HAVE: &str = "vm-you-have";
/// The dial-in voicemail: "new messages"
pub const VM_NEW_MESSAGES: &str = "vm-new-messages";
/// The dial-in voicemail: "saved messages"
pub const VM_SAVED_MESSAGES: &str = "vm-saved-messages";
/// The dial-in voicemail: "and"
pub const VM_AND: &str = "vm-and";
/// The dial-in voicemail: "Press 1 to listen to your messages. Press 0 for mailbox options. Press pound to exit."
pub const VM_MAIN_MENU: &str = "vm-main-menu";
/// The dial-in voicemail: "Message"
pub const VM_MESSAGE: &str = "vm-message";
/// The dial-in voicemail: "Received"
pub const VM_RECEIVED: &str = "vm-received";
/// The dial-in voicemail: "From"
pub const VM_FROM: &str = "vm-from";
/// The dial-in voicemail: "an unknown caller"
pub const VM_UNKNOWN_CALLER: &str = "vm-unknown-caller";
/// The dial-in voicemail: "Press 5 to repeat this message, 4 for the previous message, 6 for the next message, 7 to delete it, 9 to save it, 3 to call back, 8 to forward it, or star for the main menu."
pub const VM_MESSAGE_MENU: &str = "vm-message-menu";
/// The dial-in voicemail: "Message deleted."
pub const VM_DELETED: &str = "vm-deleted";
/// The dial-in voicemail: "Message saved."
pub const VM_SAVED: &str = "vm-saved";
/// The dial-in voicemail: "There are no more messages."
pub const VM_NO_MORE_MESSAGES: &str = "vm-no-more-messages";
/// The dial-in voicemail: "You have no messages."
pub const VM_NO_MESSAGES: &str = "vm-no-messages";
/// The dial-in voicemail: "Enter the mailbox number to forward this message to, followed by the pound key."
pub const VM_FORWARD_TO: &str = "vm-forward-to";
/// The dial-in voicemail: "Message forwarded."
pub const VM_FORWARDED: &str = "vm-forwarded";
/// The dial-in voicemail: "Press 1 to record your unavailable greeting, 2 to record your busy greeting, 3 to record your name, 4 to record a temporary greeting, 5 to change your PIN, or star for the main menu."
pub const VM_OPTIONS_MENU: &str = "vm-options-menu";
/// The dial-in voicemail: "Record after the tone. Press pound when you are done."
pub const VM_RECORD_AFTER_TONE: &str = "vm-record-after-tone";
/// The dial-in voicemail: "Your recording has been saved."
pub const VM_GREETING_SAVED: &str = "vm-greeting-saved";
/// The dial-in voicemail: "Please enter your new PIN of 4 to 12 digits, followed by the pound key."
pub const VM_NEW_PIN: &str = "vm-new-pin";
/// The dial-in voicemail: "Please enter your new PIN again."
pub const VM_REPEAT_PIN: &str = "vm-repeat-pin";
/// The dial-in voicemail: "Your PIN has been changed."
pub const VM_PIN_CHANGED: &str = "vm-pin-changed";
/// The dial-in voicemail: "The PINs do not match, or are not 4 to 12 digits. Your PIN is unchanged."
pub const VM_PIN_MISMATCH: &str = "vm-pin-mismatch";

/// A prompt name is a plain file stem: letters, digits, `-` and `_`, 1–64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| MediaError::Config(format!("no parent folder for {}", path.display())))?;
    std::fs::create_dir_all(dir)?;
    let tmp = crate::record::temporary_path(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes the default prompts to `<data_dir>/prompts/system/<name>.wav` where they are
/// missing or differ (an upgrade changed them). Returns how many files were written. The
/// binary calls this at start-up.
pub fn extract_system_prompts(data_dir: &Path) -> Result<usize> {
    let dir = data_dir.join("prompts").join("system");
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    for (name, bytes) in EMBEDDED {
        let path = dir.join(format!("{name}.wav"));
        let same = std::fs::read(&path).is_ok_and(|existing| existing == *bytes);
        if !same {
            write_atomically(&path, bytes)?;
            written += 1;
        }
    }
    if written > 0 {
        tracing::info!(dir = %dir.display(), written, "default prompts extracted");
    }
    Ok(written)
}

/// Loads prompts by name: `<data_dir>/prompts/custom/<name>.wav` (uploads) first, then
/// `<data_dir>/prompts/system/<name>.wav`, then the embedded set. System and embedded prompts
/// are cached decoded; custom ones are read each time (an upload may replace them).
#[derive(Debug)]
pub struct PromptStore {
    custom: PathBuf,
    system: PathBuf,
    cache: Mutex<HashMap<String, Prompt>>,
}

impl PromptStore {
    /// A store over `<data_dir>/prompts`.
    pub fn new(data_dir: &Path) -> Self {
        PromptStore { custom: data_dir.join("prompts").join("custom"), system: data_dir.join("prompts").join("system"), cache: Mutex::new(HashMap::new()) }
    }

    /// The folder uploaded prompts live in.
    pub fn custom_dir(&self) -> &Path {
        &self.custom
    }

    /// Loads a prompt by name.
    pub fn load(&self, name: &str) -> Result<Prompt> {
        if !valid_name(name) {
            return Err(MediaError::PromptNotFound(name.into()));
        }
        let custom = self.custom.join(format!("{name}.wav"));
        if let Ok(bytes) = std::fs::read(&custom) {
            return Prompt::from_wav(name, &bytes);
        }
        if let Some(p) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(p);
        }
        let prompt = match std::fs::read(self.system.join(format!("{name}.wav"))) {
            Ok(bytes) => Prompt::from_wav(name, &bytes)?,
            Err(_) => Prompt::from_wav(name, embedded_wav(name).ok_or_else(|| MediaError::PromptNotFound(name.into()))?)?,
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.to_string(), prompt.clone());
        }
        Ok(prompt)
    }

    /// The prompts that read out `digits` one by one (`0`–`9`, `*`, `#`; other characters
    /// are skipped), for a [`crate::PlayRequest::sequence`].
    pub fn digits(&self, digits: &str) -> Result<Vec<Prompt>> {
        digits
            .chars()
            .filter_map(|c| match c {
                '0'..='9' => Some(format!("digit-{c}")),
                '*' => Some("star".into()),
                '#' => Some("pound".into()),
                _ => None,
            })
            .map(|n| self.load(&n))
            .collect()
    }

    /// Converts an upload (any readable WAV) to the internal format and stores it as a custom
    /// prompt; returns the stored file. Unreadable audio is [`MediaError::UnreadableAudio`].
    pub fn save_custom(&self, name: &str, wav_bytes: &[u8]) -> Result<PathBuf> {
        if !valid_name(name) {
            return Err(MediaError::PromptNotFound(name.into()));
        }
        let converted = wav::convert_to_internal(wav_bytes)?;
        let path = self.custom.join(format!("{name}.wav"));
        write_atomically(&path, &converted)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: &[&str] = &[
        WELCOME,
        PLEASE_HOLD,
        INVALID_OPTION,
        GOODBYE,
        SORRY,
        VOICEMAIL_GREETING,
        LEAVE_MESSAGE_AFTER_TONE,
        BEEP,
        MAILBOX_FULL,
        NO_ANSWER,
        BUSY,
        TRANSFER,
        ENTER_PIN,
        FOLLOW_ME_ACCEPT,
        "digit-0",
        "digit-1",
        "digit-2",
        "digit-3",
        "digit-4",
        "digit-5",
        "digit-6",
        "digit-7",
        "digit-8",
        "digit-9",
        "star",
        "pound",
        MUSIC_ON_HOLD,
        VM_ENTER_MAILBOX,
        VM_NO_MAILBOX,
        VM_LOGIN_INCORRECT,
        VM_LOCKED,
        VM_YOU_HAVE,
        VM_NEW_MESSAGES,
        VM_SAVED_MESSAGES,
        VM_AND,
        VM_MAIN_MENU,
        VM_MESSAGE,
        VM_RECEIVED,
        VM_FROM,
        VM_UNKNOWN_CALLER,
        VM_MESSAGE_MENU,
        VM_DELETED,
        VM_SAVED,
        VM_NO_MORE_MESSAGES,
        VM_NO_MESSAGES,
        VM_FORWARD_TO,
        VM_FORWARDED,
        VM_OPTIONS_MENU,
        VM_RECORD_AFTER_TONE,
        VM_GREETING_SAVED,
        VM_NEW_PIN,
        VM_REPEAT_PIN,
        VM_PIN_CHANGED,
        VM_PIN_MISMATCH,
    ];

    #[test]
    fn the_default_set_is_embedded_in_the_internal_format() {
        for name in EXPECTED {
            let bytes = embedded_wav(name).unwrap_or_else(|| panic!("{name} missing"));
            let d = wav::decode(bytes).unwrap();
            assert_eq!((d.format.rate, d.format.channels, d.format.bits, d.format.tag), (8000, 1, 16, 1), "{name}");
            assert!(d.samples.len() > 800, "{name} too short");
        }
        assert_eq!(embedded().len(), EXPECTED.len(), "every embedded prompt is a known one");
        let total: usize = embedded().iter().map(|(_, b)| b.len()).sum();
        // (the dial-in voicemail's menus are most of it)
        assert!(total < 3 * 1024 * 1024, "prompt set is {total} bytes");
        let moh = wav::decode(embedded_wav(MUSIC_ON_HOLD).unwrap()).unwrap();
        let secs = moh.samples.len() / 8000;
        assert!((20..=30).contains(&secs), "{secs}");
    }

    #[test]
    fn extraction_and_loading() {
        let dir = std::env::temp_dir().join(format!("flowpbx-prompts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(extract_system_prompts(&dir).unwrap(), embedded().len());
        assert_eq!(extract_system_prompts(&dir).unwrap(), 0, "second start writes nothing");
        assert!(dir.join("prompts/system/welcome.wav").is_file());
        // a damaged file is rewritten
        std::fs::write(dir.join("prompts/system/beep.wav"), b"junk").unwrap();
        assert_eq!(extract_system_prompts(&dir).unwrap(), 1);

        let store = PromptStore::new(&dir);
        let w = store.load("welcome").unwrap();
        assert!(w.duration().as_millis() > 500);
        assert!(matches!(store.load("../etc/passwd"), Err(MediaError::PromptNotFound(_))));
        assert!(matches!(store.load("nope"), Err(MediaError::PromptNotFound(_))));
        let d = store.digits("4#1*").unwrap();
        assert_eq!(d.iter().map(|p| p.name().to_string()).collect::<Vec<_>>(), vec!["digit-4", "pound", "digit-1", "star"]);

        // a custom upload (stereo 16 kHz) overrides the system prompt under the same name
        let stereo: Vec<i16> = (0..3200).map(|i| ((i % 40) * 100) as i16).collect();
        let upload = wav::encode(&stereo, 2, 16000);
        let path = store.save_custom("welcome", &upload).unwrap();
        assert!(path.ends_with("prompts/custom/welcome.wav"));
        let custom = store.load("welcome").unwrap();
        assert_eq!(custom.samples().len(), 800);
        assert!(matches!(store.save_custom("x", b"not a wav"), Err(MediaError::UnreadableAudio(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
