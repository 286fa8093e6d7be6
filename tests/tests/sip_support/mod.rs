//! Helpers shared by the SIP end-to-end tests: a PBX started through the harness with its
//! administrator client, SIPp runs (scenarios in `tests/sip/`), free ports, and polling the
//! API for what the PBX wrote.
#![allow(dead_code)] // each test file uses its own part

pub mod baresip;

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowpbx_tests::{workspace_root, Client, Server, ServerOptions};
use serde_json::{json, Value};

/// A running PBX and its administrator.
pub struct Pbx {
    pub server: Server,
    pub admin: Client,
}

impl Pbx {
    /// Starts the binary with these extra flags, logged SIP messages, and an administrator.
    pub async fn start(args: &[&str]) -> anyhow::Result<Pbx> {
        let mut a: Vec<String> = vec!["--log-level".into(), "info,call=debug".into()];
        if !args.contains(&"--sip-log") {
            a.extend(["--sip-log".into(), "headers".into()]);
        }
        a.extend(args.iter().map(|s| s.to_string()));
        let server = Server::start_with(ServerOptions { args: a, ..Default::default() }).await?;
        let admin = server.admin().await?;
        Ok(Pbx { server, admin })
    }

    /// `127.0.0.1:<sip port>`
    pub fn sip(&self) -> String {
        format!("127.0.0.1:{}", self.server.ports().sip)
    }

    /// Creates an extension (its number is also its SIP username); returns its id.
    pub async fn extension(&self, number: &str, password: &str) -> anyhow::Result<i64> {
        self.extension_with(json!({"extension": number, "name": format!("Ext {number}"), "sip_password": password})).await
    }

    pub async fn extension_with(&self, body: Value) -> anyhow::Result<i64> {
        let r = self.admin.post("/extensions", &body).await?;
        if r.status != 201 {
            bail!("creating extension {body}: {} {}", r.status, r.text);
        }
        r.data()["id"].as_i64().context("extension id")
    }

    /// The SIP component of `/health`.
    pub async fn sip_health(&self) -> anyhow::Result<String> {
        let r = self.admin.get("/health").await?;
        Ok(r.data()["components"]["sip"]["detail"].as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the SIP stack's in-memory directory holds this many extensions, trusted
    /// trunks and inbound numbers (it follows the store within a refresh interval).
    pub async fn wait_directory(&self, extensions: usize, trunks: usize, numbers: usize) -> anyhow::Result<()> {
        let want = format!("{extensions} extensions, {trunks} trusted trunks, {numbers} numbers");
        let t0 = Instant::now();
        loop {
            let h = self.sip_health().await?;
            if h.starts_with(&want) {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(15) {
                bail!("the SIP directory never reached {want:?}; health says {h:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An extension's registrations, as the API lists them.
    pub async fn registrations(&self, extension_id: i64) -> anyhow::Result<Vec<Value>> {
        let r = self.admin.get(&format!("/extensions/{extension_id}/registrations")).await?;
        Ok(r.data().as_array().cloned().unwrap_or_default())
    }

    /// Polls until the extension has `n` registrations in the store.
    pub async fn wait_registrations(&self, extension_id: i64, n: usize) -> anyhow::Result<Vec<Value>> {
        let t0 = Instant::now();
        loop {
            let regs = self.registrations(extension_id).await?;
            if regs.len() == n {
                return Ok(regs);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("extension {extension_id} has {} registrations, not {n}: {regs:?}", regs.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `n` CDRs have an end time; returns them newest first.
    pub async fn wait_cdrs(&self, n: usize) -> anyhow::Result<Vec<Value>> {
        self.wait_cdrs_with(n, |_| true).await
    }

    /// Waits until at least `n` CDRs have ended and `complete` holds for each of them (the
    /// media statistics, for one, are written just after the end, when the call's media
    /// session has closed).
    pub async fn wait_cdrs_with(&self, n: usize, complete: impl Fn(&Value) -> bool) -> anyhow::Result<Vec<Value>> {
        let t0 = Instant::now();
        loop {
            let r = self.admin.get("/cdrs?limit=100").await?;
            let all = r.data().as_array().cloned().unwrap_or_default();
            let ended: Vec<Value> = all.iter().filter(|c| !c["end_time"].is_null() && complete(c)).cloned().collect();
            if ended.len() >= n {
                return Ok(ended);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("{} ended CDRs, wanted {n}: {all:?}", ended.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A path in `tests/sip/`.
pub fn scenario(name: &str) -> PathBuf {
    workspace_root().join("tests").join("sip").join(name)
}

/// A UDP port on `ip` that is free now (and its TCP twin, for peers that bind both).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    loop {
        let Ok(u) = UdpSocket::bind((ip, 0)) else { continue };
        let Ok(a) = u.local_addr() else { continue };
        if TcpListener::bind((ip, a.port())).is_ok() {
            return a.port();
        }
    }
}

/// One SIPp process.
pub struct Sipp {
    child: Child,
    dir: tempfile::TempDir,
    what: String,
}

/// How a SIPp run ended.
#[derive(Debug)]
pub struct SippResult {
    /// 0: every call succeeded; 1: some failed; others: SIPp's own errors.
    pub code: Option<i32>,
    pub stdout: String,
    pub errors: String,
    pub log: String,
    pub messages: String,
    pub what: String,
}

impl SippResult {
    pub fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "SIPp {} failed:\n{}\n{}\n{}", self.what, self.errors, self.stdout, tail(&self.messages, 6000));
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Starts SIPp with `scenario` from `tests/sip/`, bound to `local` (ip, port), against
/// `remote` (None for a UAS), with traces of errors, logs and messages kept for the result.
pub fn sipp(scenario_name: &str, local: (Ipv4Addr, u16), remote: Option<&str>, args: &[&str]) -> anyhow::Result<Sipp> {
    let dir = tempfile::Builder::new().prefix("sipp-").tempdir()?;
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenario(scenario_name))
        .args(["-i", &local.0.to_string(), "-p", &local.1.to_string()])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
        .args(["-trace_err", "-trace_logs", "-trace_msg"])
        .arg("-error_file")
        .arg(dir.path().join("errors.log"))
        .arg("-log_file")
        .arg(dir.path().join("log.log"))
        .arg("-message_file")
        .arg(dir.path().join("messages.log"))
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(r) = remote {
        cmd.arg(r);
    }
    let child = cmd.spawn().context("running sipp (Debian package sip-tester)")?;
    Ok(Sipp { child, dir, what: format!("{scenario_name} {}", args.join(" ")) })
}

impl Sipp {
    /// Waits for SIPp to exit (killing it after `timeout`).
    pub fn wait(mut self, timeout: Duration) -> SippResult {
        let t0 = Instant::now();
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if t0.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let mut stdout = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut stdout);
        }
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        SippResult {
            code,
            stdout: tail(&stdout, 3000).to_owned(),
            errors: read("errors.log"),
            log: read("log.log"),
            messages: read("messages.log"),
            what: self.what.clone(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes a SIPp injection file (`SEQUENTIAL`, then one `user;password` line per user).
pub fn users_csv(dir: &Path, users: &[(String, String)]) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("users-{}.csv", users.len()));
    let mut s = String::from("SEQUENTIAL\n");
    for (u, p) in users {
        s.push_str(&format!("{u};{p}\n"));
    }
    std::fs::write(&path, s)?;
    Ok(path)
}

/// Registers `user` with SIPp from a socket of its own, binding the contact `contact_port`
/// (a SIPp UAS listening there) for `expires` seconds.
pub fn register(pbx: &Pbx, user: &str, password: &str, contact_port: u16, expires: u32) -> anyhow::Result<SippResult> {
    let tmp = tempfile::tempdir()?;
    let csv = users_csv(tmp.path(), &[(user.to_owned(), password.to_owned())])?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    let csv = csv.to_string_lossy().into_owned();
    let cp = contact_port.to_string();
    let ex = expires.to_string();
    let run = sipp(
        "register.xml",
        (Ipv4Addr::LOCALHOST, port),
        Some(&pbx.sip()),
        &["-inf", &csv, "-au", "[field0]", "-ap", "[field1]", "-key", "contact_port", &cp, "-key", "expires", &ex, "-m", "1"],
    )?;
    Ok(run.wait(Duration::from_secs(20)))
}

/// The final responses in a SIPp message trace (status line and header names, in order).
pub fn received_responses(messages: &str) -> Vec<String> {
    messages
        .split("message received")
        .skip(1)
        .filter_map(|block| {
            let start = block.find("SIP/2.0 ")?;
            let msg = &block[start..];
            let end = msg.find("\r\n\r\n").or_else(|| msg.find("\n\n")).unwrap_or(msg.len());
            Some(msg[..end].to_owned())
        })
        .collect()
}
