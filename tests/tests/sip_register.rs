//! Registration against the real binary with SIPp (Debian `sip-tester`): digest
//! authentication, 1000 users from a CSV, refusals that look alike for a wrong password and
//! an unknown user, unregistering, bindings that survive a restart (and a crash), and the ban
//! after repeated failures.

mod sip_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use sip_support::{free_port, received_responses, register, sipp, users_csv, Pbx};

#[tokio::test]
async fn one_user_registers_with_digest_auth() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let id = pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    register(&pbx, "101", "Secret-101-pw", port, 300)?.assert_ok();
    let regs = pbx.wait_registrations(id, 1).await?;
    assert_eq!(regs[0]["contact_uri"], format!("sip:101@127.0.0.1:{port}"));
    assert_eq!(regs[0]["transport"], "udp");
    assert_eq!(regs[0]["user_agent"], "SIPp");
    assert!(pbx.sip_health().await?.contains("1 registrations"));
    Ok(())
}

#[tokio::test]
async fn a_thousand_users_register_from_a_csv() -> anyhow::Result<()> {
    // one source sends all 2000 requests: no per-source limit for this test
    let pbx = Pbx::start(&["--sip-rate-limit", "0", "--sip-log", "off"]).await?;
    let users: Vec<(String, String)> = (0..1000).map(|i| (format!("{}", 2000 + i), format!("Password-{i}-x{}", i * 7))).collect();
    for chunk in users.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for (u, p) in chunk {
            let admin = pbx.admin.clone();
            let body = serde_json::json!({"extension": u, "name": format!("User {u}"), "sip_password": p});
            set.spawn(async move { admin.post("/extensions", &body).await });
        }
        while let Some(r) = set.join_next().await {
            let r = r??;
            anyhow::ensure!(r.status == 201, "{} {}", r.status, r.text);
        }
    }
    pbx.wait_directory(1000, 0, 0).await?;
    let tmp = tempfile::tempdir()?;
    let csv = users_csv(tmp.path(), &users)?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    let run = sipp(
        "register.xml",
        (Ipv4Addr::LOCALHOST, port),
        Some(&pbx.sip()),
        &[
            "-inf",
            csv.to_str().unwrap_or_default(),
            "-au",
            "[field0]",
            "-ap",
            "[field1]",
            "-key",
            "contact_port",
            &port.to_string(),
            "-key",
            "expires",
            "600",
            "-m",
            "1000",
            "-r",
            "400",
            "-l",
            "200",
        ],
    )?;
    let r = run.wait(Duration::from_secs(60));
    r.assert_ok();
    let t0 = std::time::Instant::now();
    loop {
        let h = pbx.sip_health().await?;
        if h.contains("1000 registrations") {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(5), "health: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the store has them too (write-behind)
    let r = pbx.admin.get("/extensions?limit=1&offset=999").await?;
    let last = r.data()[0]["id"].as_i64().unwrap_or_default();
    pbx.wait_registrations(last, 1).await?;
    Ok(())
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let tmp = tempfile::tempdir()?;
    let csv = users_csv(tmp.path(), &[("101".into(), "wrong-password".into()), ("nosuchuser".into(), "whatever".into())])?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    let r = sipp(
        "register_rejected.xml",
        (Ipv4Addr::LOCALHOST, port),
        Some(&pbx.sip()),
        &["-inf", csv.to_str().unwrap_or_default(), "-au", "[field0]", "-ap", "[field1]", "-m", "2", "-l", "1"],
    )?
    .wait(Duration::from_secs(20));
    r.assert_ok();
    let responses = received_responses(&r.messages);
    assert_eq!(responses.len(), 4, "two challenges and two refusals: {responses:#?}");
    let shape = |m: &str| -> (String, Vec<String>) {
        let mut lines = m.lines();
        let status = lines.next().unwrap_or_default().trim().to_owned();
        let names = lines.filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_ascii_lowercase())).collect();
        (status, names)
    };
    let nonce = |m: &str| m.split("nonce=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned();
    // known user with a wrong password (responses 0, 1) vs unknown user (2, 3)
    assert_eq!(shape(&responses[0]), shape(&responses[2]), "the challenges look alike");
    assert_eq!(shape(&responses[1]), shape(&responses[3]), "the refusals look alike");
    assert_eq!(shape(&responses[1]).0, "SIP/2.0 401 Unauthorized");
    let nonces: Vec<String> = responses.iter().map(|m| nonce(m)).collect();
    assert!(nonces.iter().all(|n| n.len() == 64), "{nonces:?}");
    let mut unique = nonces.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "a fresh nonce every time");
    Ok(())
}

#[tokio::test]
async fn unregister_removes_the_binding() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let id = pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    register(&pbx, "101", "Secret-101-pw", port, 300)?.assert_ok();
    pbx.wait_registrations(id, 1).await?;
    register(&pbx, "101", "Secret-101-pw", port, 0)?.assert_ok();
    pbx.wait_registrations(id, 0).await?;
    assert!(pbx.sip_health().await?.contains("0 registrations"));
    // an expiry below the minimum is refused with 423 (SIPp expects 200: the run fails)
    let r = register(&pbx, "101", "Secret-101-pw", port, 10)?;
    assert_eq!(r.code, Some(1));
    assert!(r.messages.contains("SIP/2.0 423 Interval Too Brief") && r.messages.contains("Min-Expires: 60"), "{}", r.messages);
    Ok(())
}

#[tokio::test]
async fn registrations_survive_a_restart_and_a_crash() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&[]).await?;
    let id = pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    register(&pbx, "101", "Secret-101-pw", port, 600)?.assert_ok();
    pbx.wait_registrations(id, 1).await?;
    pbx.server.restart().await?;
    pbx.admin = pbx.server.admin().await?;
    assert!(pbx.sip_health().await?.contains("1 registrations"), "{}", pbx.sip_health().await?);
    // a crash: the binding was written when it was made
    pbx.server.kill()?;
    pbx.server.restart().await?;
    pbx.admin = pbx.server.admin().await?;
    assert!(pbx.sip_health().await?.contains("1 registrations"), "{}", pbx.sip_health().await?);
    let regs = pbx.registrations(id).await?;
    assert_eq!(regs[0]["contact_uri"], format!("sip:101@127.0.0.1:{port}"));
    Ok(())
}

#[tokio::test]
async fn repeated_failures_ban_the_source() -> anyhow::Result<()> {
    let pbx = Pbx::start(&["--sip-auth-fail-limit", "3", "--sip-ban-secs", "600"]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let tmp = tempfile::tempdir()?;
    let csv = users_csv(tmp.path(), &[("101".into(), "wrong-password".into())])?;
    let csv = csv.to_str().unwrap_or_default().to_owned();
    for _ in 0..3 {
        let port = free_port(Ipv4Addr::LOCALHOST);
        let r = sipp("register_rejected.xml", (Ipv4Addr::LOCALHOST, port), Some(&pbx.sip()), &["-inf", &csv, "-au", "[field0]", "-ap", "[field1]", "-m", "1"])?
            .wait(Duration::from_secs(20));
        r.assert_ok();
    }
    // now 127.0.0.1 gets no answer at all, even with the right password
    let port = free_port(Ipv4Addr::LOCALHOST);
    let r = sipp(
        "register.xml",
        (Ipv4Addr::LOCALHOST, port),
        Some(&pbx.sip()),
        &[
            "-inf",
            &csv,
            "-au",
            "101",
            "-ap",
            "Secret-101-pw",
            "-key",
            "contact_port",
            &port.to_string(),
            "-key",
            "expires",
            "60",
            "-m",
            "1",
            "-recv_timeout",
            "2000",
        ],
    )?
    .wait(Duration::from_secs(20));
    assert_ne!(r.code, Some(0));
    assert!(!r.messages.contains("message received"), "a banned source is not answered: {}", r.messages);
    assert!(pbx.server.logs().contains("banned after repeated failed authentications"));
    // another address is served
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let port = free_port(other);
    sipp(
        "register.xml",
        (other, port),
        Some(&pbx.sip()),
        &["-inf", &csv, "-au", "101", "-ap", "Secret-101-pw", "-key", "contact_port", &port.to_string(), "-key", "expires", "60", "-m", "1"],
    )?
    .wait(Duration::from_secs(20))
    .assert_ok();
    Ok(())
}

#[tokio::test]
async fn registration_over_tcp() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let id = pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let tmp = tempfile::tempdir()?;
    let csv = users_csv(tmp.path(), &[("101".into(), "Secret-101-pw".into())])?;
    let port = free_port(Ipv4Addr::LOCALHOST);
    sipp(
        "register.xml",
        (Ipv4Addr::LOCALHOST, port),
        Some(&pbx.sip()),
        &[
            "-t",
            "t1",
            "-inf",
            csv.to_str().unwrap_or_default(),
            "-au",
            "[field0]",
            "-ap",
            "[field1]",
            "-key",
            "contact_port",
            &port.to_string(),
            "-key",
            "expires",
            "300",
            "-m",
            "1",
        ],
    )?
    .wait(Duration::from_secs(20))
    .assert_ok();
    let regs = pbx.wait_registrations(id, 1).await?;
    assert_eq!(regs[0]["transport"], "tcp");
    Ok(())
}
