//! baresip softphones (Debian `baresip-core`) driven headless through their `ctrl_tcp`
//! module (netstring JSON commands and events). Audio without a sound card: the `aufile`
//! module is the microphone (a WAV file at the codec's rate), and the `sndfile` filter, when
//! asked, dumps what the phone decoded (what it would play) to `dump-…-dec.wav`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::free_port;

/// How to start a phone.
pub struct Phone<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// `host:port` of the PBX.
    pub pbx: &'a str,
    pub auto_answer: bool,
    /// Codec modules to load (`g711`, `opus`, …).
    pub codec_modules: &'a [&'a str],
    /// The account's `audio_codecs` (e.g. `PCMU/8000/1`); None: every loaded codec.
    pub audio_codecs: Option<&'a str>,
    /// The microphone: a mono/stereo 16-bit WAV at the codec's rate. None: 30 s of 8 kHz
    /// silence.
    pub source: Option<&'a Path>,
    /// Dump the decoded audio (sndfile) into the phone's directory.
    pub dump: bool,
    /// Register and call over TLS (`pbx` is then the PBX's TLS address).
    pub tls: bool,
    /// The account's address of record is `sips:` (RFC 5630: TLS on every hop; `pbx` is the
    /// PBX's TLS address and `tls` is implied).
    pub sips: bool,
    /// The account's `mediaenc` (`srtp`, `srtp-mand`): SDES-SRTP through the srtp module.
    pub mediaenc: Option<&'a str>,
}

impl<'a> Phone<'a> {
    /// A G.711 phone with a silent microphone and no dump.
    pub fn new(user: &'a str, password: &'a str, pbx: &'a str, auto_answer: bool) -> Self {
        Phone {
            user,
            password,
            pbx,
            auto_answer,
            codec_modules: &["g711"],
            audio_codecs: None,
            source: None,
            dump: false,
            tls: false,
            sips: false,
            mediaenc: None,
        }
    }
}

/// A baresip process with its control connection.
pub struct Baresip {
    child: Child,
    ctrl: TcpStream,
    buf: Vec<u8>,
    events: Vec<Value>,
    dir: tempfile::TempDir,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a 16-bit PCM WAV.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) -> std::io::Result<()> {
    let data = (samples.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    w.extend_from_slice(&(2 * channels).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, w)
}

/// A SIP port whose successor is free too (baresip listens for TLS on port + 1).
fn free_pair() -> u16 {
    loop {
        let p = free_port(Ipv4Addr::LOCALHOST);
        if p < u16::MAX && TcpListener::bind((Ipv4Addr::LOCALHOST, p + 1)).is_ok() {
            return p;
        }
    }
}

impl Baresip {
    /// A G.711 phone with a silent microphone.
    pub async fn start(user: &str, password: &str, pbx: &str, auto_answer: bool) -> anyhow::Result<Baresip> {
        Self::start_phone(&Phone::new(user, password, pbx, auto_answer)).await
    }

    pub async fn start_phone(p: &Phone<'_>) -> anyhow::Result<Baresip> {
        let dir = tempfile::Builder::new().prefix("baresip-").tempdir()?;
        let sip_port = free_pair();
        let ctrl_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let source = match p.source {
            Some(s) => s.to_path_buf(),
            None => {
                let wav = dir.path().join("silence.wav");
                write_wav(&wav, 8000, 1, &vec![0; 8000 * 30])?;
                wav
            }
        };
        let mut modules: Vec<String> = p.codec_modules.iter().map(|m| format!("{m}.so")).collect();
        // before account.so: an account names its mediaenc when it is loaded
        if p.mediaenc.is_some() {
            modules.push("srtp.so".into());
        }
        modules.extend(["aufile.so", "account.so", "menu.so", "ctrl_tcp.so"].map(str::to_owned));
        if p.dump {
            modules.push("sndfile.so".into());
        }
        let rtp = 30000 + (sip_port % 100) * 20;
        // the phone talks to the PBX over loopback: its SDP names the loopback address it
        // sends from (left to itself it names the default route's interface, an address it
        // does not send from, which strict RTP rightly refuses to learn)
        let mut config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\nsip_trans_def udp\nmodule_path /usr/lib/baresip/modules\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\naudio_source aufile,{}\naudio_player aufile,{}\naudio_alert aufile,{}\n\
             rtp_ports {rtp}-{}\nsnd_path {}\n",
            source.display(),
            dir.path().join("out.wav").display(),
            dir.path().join("alert.wav").display(),
            rtp + 19,
            dir.path().display(),
        );
        for m in modules {
            config.push_str(&format!("module {m}\n"));
        }
        std::fs::write(dir.path().join("config"), config)?;
        let answer = if p.auto_answer { ";answermode=auto" } else { "" };
        let codecs = p.audio_codecs.map(|c| format!(";audio_codecs={c}")).unwrap_or_default();
        // baresip 1.0 on libre 1.1 cannot send to a `sips:` URI itself (the register fails
        // with ENOSYS): a `sips:` account routes through an outbound proxy that is the PBX's
        // `sip:…;transport=tls`, and its requests keep their `sips:` URIs
        let (scheme, transport, outbound) = match (p.sips, p.tls) {
            (true, _) => ("sips", "", format!(";outbound=\"sip:{};transport=tls\"", p.pbx)),
            (false, true) => ("sip", ";transport=tls", String::new()),
            (false, false) => ("sip", "", String::new()),
        };
        let enc = p.mediaenc.map(|e| format!(";mediaenc={e}")).unwrap_or_default();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<{scheme}:{}@{}{transport}>;auth_pass={};regint=300{outbound}{answer}{codecs}{enc}\n", p.user, p.pbx, p.password),
        )?;
        let log = std::fs::File::create(dir.path().join("baresip.log"))?;
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("running baresip (Debian package baresip-core)")?;
        let t0 = Instant::now();
        let ctrl = loop {
            match TcpStream::connect((Ipv4Addr::LOCALHOST, ctrl_port)).await {
                Ok(s) => break s,
                Err(_) if t0.elapsed() < Duration::from_secs(10) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => bail!("baresip's ctrl_tcp never listened: {e}"),
            }
        };
        Ok(Baresip { child, ctrl, buf: Vec::new(), events: Vec::new(), dir })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// The phone's directory (config, log, dumps).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The decoded audio sndfile dumped (`dump-…-dec.wav`), once the call is over.
    pub fn decoded_dump(&self) -> anyhow::Result<PathBuf> {
        std::fs::read_dir(self.dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav")))
            .with_context(|| format!("no decoded-audio dump in {}\n{}", self.dir.path().display(), self.log()))
    }

    pub async fn command(&mut self, command: &str, params: &str) -> anyhow::Result<()> {
        let body = json!({"command": command, "params": params, "token": command}).to_string();
        let frame = format!("{}:{body},", body.len());
        self.ctrl.write_all(frame.as_bytes()).await?;
        Ok(())
    }

    /// Reads netstrings until an event of type `kind` arrives.
    pub async fn wait_event(&mut self, kind: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
                return Ok(self.events.remove(i));
            }
            // parse what is buffered
            while let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon])?.trim().parse()?;
                if self.buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let v: Value = serde_json::from_slice(&self.buf[colon + 1..colon + 1 + len])?;
                self.buf.drain(..colon + 1 + len + 1);
                if v["event"] == true {
                    self.events.push(v);
                }
            }
            if self.events.iter().any(|e| e["type"] == kind) {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no {kind} event; got {:?}\n{}", self.events, self.log());
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(left, self.ctrl.read(&mut chunk)).await {
                Ok(Ok(0)) => bail!("baresip closed its control connection\n{}", self.log()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
    }
}
