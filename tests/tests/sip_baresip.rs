//! Two baresip softphones (Debian `baresip-core`), driven headless through their `ctrl_tcp`
//! module (netstring JSON commands and events), register as extensions 101 and 102; 101
//! calls 102, which answers automatically; media flows; 101 hangs up.

mod sip_support;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sip_support::{free_port, Pbx};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A baresip process with its control connection.
struct Baresip {
    child: Child,
    ctrl: TcpStream,
    buf: Vec<u8>,
    events: Vec<Value>,
    _dir: tempfile::TempDir,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 8 kHz 16-bit mono silence, for baresip's `aufile` audio source (no sound card here).
fn write_silence(path: &Path, seconds: u32) -> std::io::Result<()> {
    let data = 8000 * 2 * seconds;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(44 + data as usize, 0);
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
    async fn start(user: &str, password: &str, pbx: &str, auto_answer: bool) -> anyhow::Result<Baresip> {
        let dir = tempfile::Builder::new().prefix("baresip-").tempdir()?;
        let sip_port = free_pair();
        let ctrl_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let wav = dir.path().join("silence.wav");
        write_silence(&wav, 30)?;
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nsip_trans_def udp\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule aufile.so\nmodule account.so\nmodule menu.so\nmodule ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\naudio_source aufile,{}\naudio_player aufile,{}\naudio_alert aufile,{}\n\
             rtp_ports {}-{}\n",
            wav.display(),
            dir.path().join("out.wav").display(),
            dir.path().join("alert.wav").display(),
            30000 + (sip_port % 100) * 20,
            30000 + (sip_port % 100) * 20 + 19,
        );
        std::fs::write(dir.path().join("config"), config)?;
        let answer = if auto_answer { ";answermode=auto" } else { "" };
        std::fs::write(dir.path().join("accounts"), format!("<sip:{user}@{pbx}>;auth_pass={password};regint=300{answer}\n"))?;
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
        Ok(Baresip { child, ctrl, buf: Vec::new(), events: Vec::new(), _dir: dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("baresip.log")).unwrap_or_default()
    }

    async fn command(&mut self, command: &str, params: &str) -> anyhow::Result<()> {
        let body = json!({"command": command, "params": params, "token": command}).to_string();
        let frame = format!("{}:{body},", body.len());
        self.ctrl.write_all(frame.as_bytes()).await?;
        Ok(())
    }

    /// Reads netstrings until an event of type `kind` arrives.
    async fn wait_event(&mut self, kind: &str, timeout: Duration) -> anyhow::Result<Value> {
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

#[tokio::test]
async fn two_baresip_phones_call_each_other() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let a_id = pbx.extension("101", "Secret-101-pw").await?;
    let b_id = pbx.extension("102", "Secret-102-pw").await?;
    pbx.wait_directory(2, 0, 0).await?;
    let mut a = Baresip::start("101", "Secret-101-pw", &pbx.sip(), false).await?;
    let mut b = Baresip::start("102", "Secret-102-pw", &pbx.sip(), true).await?;
    pbx.wait_registrations(a_id, 1).await?;
    let regs = pbx.wait_registrations(b_id, 1).await?;
    assert!(regs[0]["user_agent"].as_str().unwrap_or_default().contains("baresip"), "{regs:?}");

    a.command("dial", &format!("sip:102@{}", pbx.sip())).await?;
    b.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    a.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    // media flows phone to phone (the SDP crossed the PBX unchanged)
    a.wait_event("CALL_RTPESTAB", Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = pbx.admin.get("/health").await?;
    assert!(calls.data()["components"]["sip"]["detail"].as_str().unwrap_or_default().contains("1 calls"), "{}", calls.text);

    a.command("hangup", "").await?;
    a.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    b.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("answered"), Some("normal_clearing")));
    assert_eq!((c["caller_id_num"].as_str(), c["callee"].as_str()), (Some("101"), Some("102")));
    Ok(())
}
