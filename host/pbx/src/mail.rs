//! Voicemail e-mail: SMTP submission through an outbox.
//!
//! When a message is left (`call::PbxEvent::VoicemailLeft`) in a box with `email_notify` and
//! an address, a mail naming the caller, the time and the length is queued in `mail_outbox`
//! (so nothing is lost on a restart): with the WAV attached when the box's
//! `email_attach_audio` is on, else with a link to it (the `hostname` setting's URL). One
//! worker submits what is due over SMTP (lettre with rustls: `smtp://host:587?tls=required`
//! for STARTTLS, `smtps://host:465` for implicit TLS, credentials in the URL's user info,
//! `--smtp-url`). A transient refusal (4xx) or a connection failure is retried with
//! exponential backoff for an hour; a permanent one (5xx), a bad address or the hour running
//! out marks the mail `failed` with the reason, logged and listed by the API.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use store::{MailItem, MailStatus, NewMail, Store, Timestamp};
use tokio::sync::Notify;

/// How mail leaves.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The submission server as a lettre URL; `None`: mail is queued and never sent (a
    /// warning says so once).
    pub smtp_url: Option<String>,
    /// The sender (`FlowPBX <pbx@example.com>`).
    pub from: String,
    /// Where the web UI is reached, for links (`https://pbx.example.com`).
    pub base_url: Option<String>,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
    /// One submission's timeout.
    pub timeout: Duration,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            from: "FlowPBX <flowpbx@localhost>".into(),
            base_url: None,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(600),
            give_up_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(30),
        }
    }
}

struct Inner {
    store: Store,
    data_dir: PathBuf,
    config: MailConfig,
    wake: Notify,
}

/// The running mailer (cheap to clone).
#[derive(Clone)]
pub struct Mailer(Arc<Inner>);

/// What a voicemail mail says.
pub struct VoicemailMail<'a> {
    pub box_name: &'a str,
    pub caller_id_num: Option<&'a str>,
    pub caller_id_name: Option<&'a str>,
    pub at: Timestamp,
    pub duration_secs: i64,
    /// The link when the audio is not attached.
    pub link: Option<String>,
}

/// The subject and body of a voicemail mail (the template: caller, time, length).
pub fn voicemail_text(m: &VoicemailMail<'_>) -> (String, String) {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).take(80).collect::<String>();
    let caller = match (m.caller_id_name.map(clean).filter(|s| !s.is_empty()), m.caller_id_num.map(clean).filter(|s| !s.is_empty())) {
        (Some(n), Some(num)) => format!("{n} <{num}>"),
        (None, Some(num)) => num,
        (Some(n), None) => n,
        (None, None) => "an unknown caller".into(),
    };
    let len = format!("{}:{:02}", m.duration_secs.max(0) / 60, m.duration_secs.max(0) % 60);
    let at = m.at.as_offset_date_time();
    let when = format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second());
    let subject = format!("New voicemail from {caller} ({len})");
    let mut body = format!("A caller left a message in voicemail box {}.\n\nFrom:   {caller}\nTime:   {when}\nLength: {len}\n", clean(m.box_name));
    match &m.link {
        Some(l) => body.push_str(&format!("\nListen: {l}\n")),
        None => body.push_str("\nThe message is attached.\n"),
    }
    (subject, body)
}

fn backoff(c: &MailConfig, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    c.retry_base.saturating_mul(factor).min(c.retry_max)
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis().saturating_add(d.as_millis() as i64)).unwrap_or(t)
}

/// Why a submission failed, and whether trying again can help.
struct SendError {
    message: String,
    permanent: bool,
}

impl Mailer {
    /// Starts the mailer: one task queues a mail per voicemail left (when the box asks for
    /// it), one submits what is due.
    pub fn start(store: Store, data_dir: PathBuf, events: Option<tokio::sync::broadcast::Receiver<call::PbxEvent>>, config: MailConfig) -> Mailer {
        let m = Mailer(Arc::new(Inner { store, data_dir, config, wake: Notify::new() }));
        if m.0.config.smtp_url.is_none() {
            tracing::info!("no --smtp-url: voicemail e-mail is queued but not sent");
        }
        if let Some(rx) = events {
            tokio::spawn(m.clone().listen(rx));
        }
        tokio::spawn(m.clone().work());
        m
    }

    /// Queues a mail (and looks at the outbox now).
    pub async fn enqueue(&self, mail: &NewMail) -> store::Result<MailItem> {
        let item = self.0.store.mail_outbox().enqueue(mail, Timestamp::now()).await?;
        self.0.wake.notify_one();
        Ok(item)
    }

    /// Queues the mail for a message left in a box, as the box asks (off, attached, link).
    pub async fn voicemail_left(&self, mailbox_id: i64, message_id: i64) -> store::Result<Option<MailItem>> {
        let Some(b) = self.0.store.voicemail_boxes().get(mailbox_id).await? else { return Ok(None) };
        let Some(to) = b.email_address.clone().filter(|a| b.email_notify && !a.trim().is_empty()) else { return Ok(None) };
        let Some(msg) = self.0.store.voicemail_messages().get(message_id).await? else { return Ok(None) };
        let link = if b.email_attach_audio {
            None
        } else {
            let base = self.0.config.base_url.clone().unwrap_or_default();
            Some(format!("{}/api/v1/voicemail-boxes/{mailbox_id}/messages/{message_id}/audio", base.trim_end_matches('/')))
        };
        let (subject, body) = voicemail_text(&VoicemailMail {
            box_name: &b.name,
            caller_id_num: msg.caller_id_num.as_deref(),
            caller_id_name: msg.caller_id_name.as_deref(),
            at: msg.timestamp,
            duration_secs: msg.duration.unwrap_or(0),
            link: link.clone(),
        });
        let attach = link.is_none();
        let mail = NewMail {
            kind: "voicemail".into(),
            recipient: to,
            subject,
            body,
            attachment_path: attach.then(|| msg.file_path.clone()),
            attachment_name: attach.then(|| format!("voicemail-{mailbox_id}-{message_id}.wav")),
        };
        self.enqueue(&mail).await.map(Some)
    }

    async fn listen(self, mut rx: tokio::sync::broadcast::Receiver<call::PbxEvent>) {
        loop {
            match rx.recv().await {
                Ok(call::PbxEvent::VoicemailLeft { mailbox_id, message_id, .. }) => {
                    if let Err(e) = self.voicemail_left(mailbox_id, message_id).await {
                        tracing::warn!(error = %e, mailbox_id, "a voicemail e-mail could not be queued");
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "the mailer fell behind the PBX's events"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn work(self) {
        let Some(url) = self.0.config.smtp_url.clone() else { return };
        let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(&url) {
            Ok(b) => b.timeout(Some(self.0.config.timeout)).build(),
            Err(e) => return tracing::error!(error = %e, "--smtp-url is not usable: no e-mail is sent"),
        };
        loop {
            let due = self.0.store.mail_outbox().due(Timestamp::now(), 20).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the mail outbox");
                Vec::new()
            });
            for m in due {
                self.attempt(&transport, m).await;
            }
            crate::notify::wait_for_due(self.0.store.mail_outbox().next_due().await, &self.0.wake).await;
        }
    }

    async fn attempt(&self, transport: &AsyncSmtpTransport<Tokio1Executor>, m: MailItem) {
        let cfg = &self.0.config;
        let now = Timestamp::now();
        let outcome = match self.build(&m).await {
            Ok(msg) => transport.send(msg).await.map(|_| ()).map_err(|e| SendError { permanent: e.is_permanent(), message: e.to_string() }),
            Err(e) => Err(e),
        };
        let attempts = u32::try_from(m.attempts).unwrap_or(u32::MAX).saturating_add(1);
        let (status, next, err) = match outcome {
            Ok(()) => (MailStatus::Sent, None, None),
            Err(e) => {
                let next = later(now, backoff(cfg, attempts));
                if e.permanent || next > later(m.created_at, cfg.give_up_after) {
                    let why = format!("gave up after {attempts} attempt(s): {}", e.message);
                    tracing::warn!(mail = m.id, recipient = %m.recipient, reason = %why, "an e-mail could not be sent");
                    (MailStatus::Failed, None, Some(why))
                } else {
                    (MailStatus::Pending, Some(next), Some(e.message))
                }
            }
        };
        if let Err(e) = self.0.store.mail_outbox().record(m.id, status, next, err.as_deref(), Timestamp::now()).await {
            tracing::warn!(error = %e, mail = m.id, "a mail's outcome could not be written");
        }
    }

    async fn build(&self, m: &MailItem) -> Result<Message, SendError> {
        let bad = |message: String| SendError { message, permanent: true };
        let from: Mailbox = self.0.config.from.parse().map_err(|e| bad(format!("the sender address: {e}")))?;
        let to: Mailbox = m.recipient.parse().map_err(|e| bad(format!("the recipient address: {e}")))?;
        let b = Message::builder().from(from).to(to).subject(m.subject.clone());
        let text = SinglePart::plain(m.body.clone());
        let attachment = match (&m.attachment_path, &m.attachment_name) {
            (Some(rel), Some(name)) => {
                let p = Path::new(rel);
                if !p.components().all(|c| matches!(c, Component::Normal(_))) {
                    return Err(bad("the attachment is outside the data dir".into()));
                }
                match tokio::fs::read(self.0.data_dir.join(p)).await {
                    Ok(bytes) => Some(Attachment::new(name.clone()).body(bytes, ContentType::parse("audio/wav").map_err(|e| bad(e.to_string()))?)),
                    Err(e) => return Err(bad(format!("the message's audio cannot be read: {e}"))),
                }
            }
            _ => None,
        };
        let built = match attachment {
            Some(a) => b.multipart(MultiPart::mixed().singlepart(text).singlepart(a)),
            None => b.singlepart(text),
        };
        built.map_err(|e| bad(format!("the mail cannot be built: {e}")))
    }
}

#[cfg(test)]
mod tests;
