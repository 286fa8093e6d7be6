//! The mailer against a strict SMTP sink the test runs on 127.0.0.1: greeting, EHLO, MAIL,
//! RCPT, DATA in order (anything else or out of order is 500/503), the message ending at
//! `<CRLF>.<CRLF>`; MAIL FROM answered as the test asks (250, 451, 550).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

struct Sink {
    port: u16,
    /// The DATA of every message accepted.
    messages: Arc<Mutex<Vec<String>>>,
    /// MAIL FROM commands seen (attempts).
    mails: Arc<Mutex<u32>>,
}

async fn sink(mail_reply: &'static str) -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let mails = Arc::new(Mutex::new(0));
    let (m, n) = (messages.clone(), mails.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (m, n) = (m.clone(), n.clone());
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink.test ESMTP strict\r\n").await;
                let (mut helo, mut from, mut rcpt) = (false, false, false);
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end_matches(['\r', '\n']).to_owned();
                    let verb = cmd.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply: String = match verb.as_str() {
                        "EHLO" => {
                            helo = true;
                            "250-sink.test\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n".into()
                        }
                        "HELO" => {
                            helo = true;
                            "250 sink.test\r\n".into()
                        }
                        "MAIL" if helo && cmd.to_ascii_uppercase().starts_with("MAIL FROM:<") => {
                            *n.lock().unwrap() += 1;
                            from = mail_reply.starts_with('2');
                            format!("{mail_reply}\r\n")
                        }
                        "RCPT" if from && cmd.to_ascii_uppercase().starts_with("RCPT TO:<") => {
                            rcpt = true;
                            "250 ok\r\n".into()
                        }
                        "DATA" if rcpt => {
                            let _ = w.write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(&line);
                            }
                            m.lock().unwrap().push(data);
                            from = false;
                            rcpt = false;
                            "250 queued\r\n".into()
                        }
                        "RSET" => {
                            from = false;
                            rcpt = false;
                            "250 ok\r\n".into()
                        }
                        "NOOP" => "250 ok\r\n".into(),
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        "MAIL" | "RCPT" | "DATA" => "503 bad sequence of commands\r\n".into(),
                        _ => "500 unrecognised command\r\n".into(),
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Sink { port, messages, mails }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    data: PathBuf,
    box_id: i64,
    message_id: i64,
    wav: Vec<u8>,
}

async fn fixture(attach: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let store = Store::open(store::StoreOptions::new(data.join("flowpbx.db"), store::SecretKey::generate(), "flowpbx")).await.unwrap();
    let b = store
        .voicemail_boxes()
        .insert(
            &store::VoicemailBoxFields {
                name: "Sales".into(),
                email_notify: true,
                email_address: Some("sales@example.test".into()),
                email_attach_audio: attach,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend((0..4000u32).map(|i| (i * 7 % 251) as u8));
    let rel = "voicemail/1/1-a.wav";
    tokio::fs::create_dir_all(data.join("voicemail/1")).await.unwrap();
    tokio::fs::write(data.join(rel), &wav).await.unwrap();
    let m = store
        .voicemail_messages()
        .insert(&store::NewVoicemailMessage {
            mailbox_id: b.row.id,
            caller_id_name: Some("Alice".into()),
            caller_id_num: Some("0412345678".into()),
            timestamp: Timestamp::parse("2026-03-04T05:06:07Z").unwrap(),
            duration: Some(67),
            file_path: rel.into(),
        })
        .await
        .unwrap();
    Fixture { _dir: dir, store, data, box_id: b.row.id, message_id: m.id, wav }
}

fn config(port: u16) -> MailConfig {
    MailConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        from: "FlowPBX <pbx@example.test>".into(),
        base_url: Some("https://pbx.example.test".into()),
        retry_base: Duration::from_millis(300),
        retry_max: Duration::from_secs(2),
        give_up_after: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
    }
}

async fn wait_item(store: &Store, id: i64, done: impl Fn(&MailItem) -> bool) -> MailItem {
    let t0 = Instant::now();
    loop {
        let m = store.mail_outbox().get(id).await.unwrap().unwrap();
        if done(&m) || t0.elapsed() > Duration::from_secs(10) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_template_names_caller_time_and_length() {
    let (subject, body) = voicemail_text(&VoicemailMail {
        box_name: "Sales",
        caller_id_num: Some("0412345678"),
        caller_id_name: Some("Alice\r\nBcc: evil@example.test"),
        at: Timestamp::parse("2026-03-04T05:06:07Z").unwrap(),
        duration_secs: 67,
        link: None,
    });
    assert_eq!(subject, "New voicemail from AliceBcc: evil@example.test <0412345678> (1:07)", "control characters dropped");
    assert!(body.contains("Time:   2026-03-04 05:06:07 UTC") && body.contains("Length: 1:07") && body.contains("attached"), "{body}");
}

#[tokio::test]
async fn a_voicemail_mail_reaches_the_sink_with_the_wav_attached() {
    let s = sink("250 ok").await;
    let f = fixture(true).await;
    let (tx, rx) = tokio::sync::broadcast::channel(8);
    let _mailer = Mailer::start(f.store.clone(), f.data.clone(), Some(rx), config(s.port));
    // the event the voicemail node emits
    tx.send(call::PbxEvent::VoicemailLeft { mailbox_id: f.box_id, message_id: f.message_id, caller_id_num: None, caller_id_name: None, duration: 67 }).unwrap();
    let t0 = Instant::now();
    while s.messages.lock().unwrap().is_empty() && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = s.messages.lock().unwrap().first().cloned().expect("a message reached the sink");
    assert!(data.contains("To: sales@example.test"), "{data}");
    assert!(data.contains("Subject: New voicemail from Alice <0412345678> (1:07)"), "{data}");
    assert!(data.contains("2026-03-04 05:06:07 UTC"), "{data}");
    assert!(data.contains("Content-Type: audio/wav"), "{data}");
    assert!(data.contains("filename=\"voicemail-"), "{data}");
    // the attachment decodes to the WAV
    let part = data.split("Content-Type: audio/wav").nth(1).unwrap();
    let b64: String = part.split("\r\n\r\n").nth(1).unwrap().lines().take_while(|l| !l.starts_with("--")).collect::<Vec<_>>().concat();
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap();
    assert_eq!(decoded, f.wav, "the attachment is the message's WAV");
    let items = f.store.mail_outbox().list(store::Page { limit: 10, offset: 0 }).await.unwrap().items;
    let sent = wait_item(&f.store, items[0].id, |m| m.status == MailStatus::Sent).await;
    assert_eq!((sent.status, sent.attempts), (MailStatus::Sent, 1));
}

#[tokio::test]
async fn link_only_boxes_get_a_link_and_no_attachment() {
    let s = sink("250 ok").await;
    let f = fixture(false).await;
    let mailer = Mailer::start(f.store.clone(), f.data.clone(), None, config(s.port));
    let item = mailer.voicemail_left(f.box_id, f.message_id).await.unwrap().unwrap();
    assert!(item.attachment_path.is_none());
    wait_item(&f.store, item.id, |m| m.status == MailStatus::Sent).await;
    let data = s.messages.lock().unwrap()[0].clone();
    assert!(data.contains(&format!("https://pbx.example.test/api/v1/voicemail-boxes/{}/messages/{}/audio", f.box_id, f.message_id)), "{data}");
    assert!(!data.contains("audio/wav"), "{data}");
}

#[tokio::test]
async fn a_refusing_sink_makes_the_retry_visible_and_a_permanent_refusal_fails() {
    // 451: retried with backoff, the reason kept
    let s = sink("451 4.3.0 try again later").await;
    let f = fixture(true).await;
    let mailer = Mailer::start(f.store.clone(), f.data.clone(), None, config(s.port));
    let item = mailer.voicemail_left(f.box_id, f.message_id).await.unwrap().unwrap();
    let m = wait_item(&f.store, item.id, |m| m.attempts >= 2).await;
    assert_eq!(m.status, MailStatus::Pending, "{m:?}");
    assert!(m.attempts >= 2, "retried: {m:?}");
    assert!(m.last_error.as_deref().unwrap_or_default().contains("451") || m.last_error.as_deref().unwrap_or_default().contains("try again"), "{m:?}");
    assert!(m.next_attempt_at.is_some());
    assert!(*s.mails.lock().unwrap() >= 2, "the sink saw each attempt");
    assert!(s.messages.lock().unwrap().is_empty());
    // nothing is lost on a restart: a new mailer (the old one's queue in the table) sends it
    let ok = sink("250 ok").await;
    let _again = Mailer::start(f.store.clone(), f.data.clone(), None, config(ok.port));
    let m = wait_item(&f.store, item.id, |m| m.status == MailStatus::Sent).await;
    assert_eq!(m.status, MailStatus::Sent, "{m:?}");

    // 550: given up at once, the reason in the log
    let s = sink("550 5.7.1 relaying denied").await;
    let f = fixture(true).await;
    let mailer = Mailer::start(f.store.clone(), f.data.clone(), None, config(s.port));
    let item = mailer.voicemail_left(f.box_id, f.message_id).await.unwrap().unwrap();
    let m = wait_item(&f.store, item.id, |m| m.status != MailStatus::Pending).await;
    assert_eq!((m.status, m.attempts), (MailStatus::Failed, 1), "{m:?}");
    assert!(m.last_error.as_deref().unwrap_or_default().starts_with("gave up after 1 attempt"), "{m:?}");
}
