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
        assert!(total < 2 * 1024 * 1024, "prompt set is {total} bytes");
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
