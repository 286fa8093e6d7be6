//! The carrier rig on its own, without FlowPBX: Kamailio with `tests/carrier/kamailio.cfg`
//! (through `carrier_support`) and SIPp on both sides. An account registers with digest
//! (MD5 over UDP and TCP, SHA-256 with a client of this file's own) and shows in usrloc;
//! wrong credentials and a foreign AOR are refused; the switches change REGISTER's answer
//! (503 + Retry-After, 403, per account, 423 + Min-Expires, a capped expiry, silence); a PSTN
//! call to a DID reaches the registered contact (as registered, or with the DID as user) and
//! its ACK and BYE come back through the carrier; an authenticated INVITE from the account
//! reaches the PSTN phone of its number prefix with Request-URI, From and P-Asserted-Identity
//! untouched and no credentials; wrong credentials, 503 and silence switches hold calls back;
//! OPTIONS is answered until switched off; an IP trunk needs no registration and no digest;
//! a CANCEL and a busy phone's 486 pass through; the PSTN phone that presses 1 sends RFC 2833
//! event 1 to the caller's media address.

mod carrier_support;
mod sip_support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use carrier_support::{
    options_ping, pstn_call, pstn_phone, register_account, Account, Answer, Carrier, CarrierOptions, Digest, IpTrunk, PstnCall, Switch, PSTN_IP,
};
use sip_support::{free_port, received_responses, sipp, SippResult};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const DID: &str = "+15551230001";
const DID2: &str = "+15551230002";
const WAIT: Duration = Duration::from_secs(20);

/// The trunk account: its auth username differs from the AOR user.
fn trunk() -> Account {
    Account::new("trunk1", "auth-trunk1", "Carrier-pw-1", &[DID])
}

fn trunk2() -> Account {
    Account::new("trunk2", "auth-trunk2", "Carrier-pw-2", &[DID2])
}

fn carrier_with(opts: CarrierOptions) -> anyhow::Result<Carrier> {
    Carrier::start(CarrierOptions { accounts: vec![trunk(), trunk2()], ..opts })
}

/// The last final response a SIPp run received: its status line and headers.
fn last_response(r: &SippResult) -> String {
    received_responses(&r.messages).into_iter().rev().find(|m| !m.starts_with("SIP/2.0 1")).unwrap_or_default()
}

fn contact() -> SocketAddr {
    SocketAddr::from((LO, free_port(LO)))
}

/// The account side calling `number` through the carrier with `account`'s credentials (its
/// SDP names a port nobody listens on, unless `extra` sets `-key rtp_port`).
fn trunk_call(carrier: &Carrier, account: &Account, number: &str, extra: &[&str]) -> anyhow::Result<sip_support::Sipp> {
    let mut args = vec![
        "-s",
        number,
        "-au",
        &account.auth_user,
        "-ap",
        &account.password,
        "-key",
        "caller",
        "+4930123",
        "-key",
        "pai",
        "P-Asserted-Identity: <sip:+4930123@pbx.test>",
        "-m",
        "1",
        "-d",
        "300",
    ];
    let rtp_port = free_port(LO).to_string();
    if !extra.contains(&"rtp_port") {
        args.extend_from_slice(&["-key", "rtp_port", &rtp_port]);
    }
    args.extend_from_slice(extra);
    sipp("trunk_uac.xml", (LO, free_port(LO)), Some(&carrier.sip()), &args)
}

/// How many INVITEs a SIPp phone received.
fn invites(r: &SippResult) -> usize {
    r.messages.matches("\nINVITE sip:").count() + usize::from(r.messages.starts_with("INVITE sip:"))
}

#[test]
fn an_account_registers_with_digest_and_shows_in_usrloc() -> anyhow::Result<()> {
    let c = carrier_with(CarrierOptions::default())?;
    let at = contact();
    register_account(&c, "register.xml", &trunk(), at, 300, &[])?.assert_ok();
    let regs = c.registered_contacts("trunk1")?;
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(regs[0].uri, format!("sip:trunk1@{at}"));
    assert!((290..=300).contains(&regs[0].expires), "{regs:?}");
    assert_eq!(regs[0].socket, format!("udp:{}", c.sip()));
    assert_eq!(regs[0].user_agent, "SIPp");
    // the challenge, then the credentials of the auth username (not the AOR user)
    let ev = c.events_of("REGISTER");
    assert_eq!(ev.len(), 2, "{ev:#?}");
    assert_eq!((ev[0].outcome.as_str(), ev[0].auth_user.as_deref()), ("challenge", None));
    assert_eq!((ev[1].outcome.as_str(), ev[1].auth_user.as_deref()), ("registered (asked expires 300)", Some("auth-trunk1")));
    assert_eq!(ev[1].to, format!("sip:trunk1@{}", c.addr().ip()));

    // over TCP too; the other account's bindings are its own
    let at2 = contact();
    register_account(&c, "register.xml", &trunk2(), at2, 120, &["-t", "t1"])?.assert_ok();
    let regs2 = c.registered_contacts("trunk2")?;
    assert_eq!(regs2.len(), 1, "{regs2:?}");
    assert_eq!(regs2[0].socket, format!("tcp:{}", c.sip()));
    assert_eq!(c.registered_contacts("trunk1")?.len(), 1);
    assert!(c.registered_contacts("nobody")?.is_empty());
    // the carrier forgets a binding (as after its restart)
    c.drop_registrations("trunk2")?;
    assert!(c.registered_contacts("trunk2")?.is_empty());
    c.drop_registrations("nobody")?;

    // a zero expiry removes the binding
    register_account(&c, "register.xml", &trunk(), at, 0, &[])?.assert_ok();
    c.wait_registered("trunk1", 0, WAIT)?;
    Ok(())
}

#[test]
fn wrong_credentials_and_a_foreign_aor_are_refused() -> anyhow::Result<()> {
    let c = carrier_with(CarrierOptions::default())?;
    let at = contact();
    let wrong = Account { password: "not-the-password".into(), ..trunk() };
    let r = register_account(&c, "register_answer.xml", &wrong, at, 300, &[])?;
    r.assert_ok();
    assert!(last_response(&r).starts_with("SIP/2.0 401"), "{}", r.messages);
    assert!(c.events_of("REGISTER").last().is_some_and(|e| e.outcome.starts_with("challenge (wrong credentials")), "{:#?}", c.events());

    let unknown = Account::new("trunk1", "nobody", "Carrier-pw-1", &[]);
    let r = register_account(&c, "register_answer.xml", &unknown, at, 300, &[])?;
    assert!(last_response(&r).starts_with("SIP/2.0 401"), "{}", r.messages);

    // trunk2's own credentials for trunk1's address of record
    let foreign = Account { aor: "trunk1".into(), ..trunk2() };
    let r = register_account(&c, "register_answer.xml", &foreign, at, 300, &[])?;
    assert!(last_response(&r).starts_with("SIP/2.0 403"), "{}", r.messages);
    assert!(c.registered_contacts("trunk1")?.is_empty());
    assert!(c.registered_contacts("trunk2")?.is_empty());
    Ok(())
}

#[test]
fn switches_change_the_register_answer() -> anyhow::Result<()> {
    let c = carrier_with(CarrierOptions::default())?;
    let at = contact();
    let answer = |account: &Account, expires: u32| -> anyhow::Result<String> {
        let r = register_account(&c, "register_answer.xml", account, at, expires, &[])?;
        r.assert_ok();
        Ok(last_response(&r))
    };

    c.set(Switch::Register(Answer::ReplyRetryAfter(503, 30)))?;
    let r = answer(&trunk(), 300)?;
    assert!(r.starts_with("SIP/2.0 503 Service Unavailable"), "{r}");
    assert!(r.contains("\nRetry-After: 30"), "{r}");
    assert!(c.registered_contacts("trunk1")?.is_empty());

    c.set(Switch::Register(Answer::Reply(403)))?;
    let r = answer(&trunk(), 300)?;
    assert!(r.starts_with("SIP/2.0 403 Forbidden"), "{r}");
    assert!(!r.contains("Retry-After"), "{r}");

    // one account's switch wins over the carrier-wide one, and leaves the others alone
    c.set(Switch::Register(Answer::Normal))?;
    c.set_for("auth-trunk1", Switch::Register(Answer::Reply(503)))?;
    assert!(answer(&trunk(), 300)?.starts_with("SIP/2.0 503"));
    assert!(answer(&trunk2(), 300)?.starts_with("SIP/2.0 200"));
    c.set_for("auth-trunk1", Switch::Register(Answer::Normal))?;

    // 423 below the minimum, with the minimum to use; accepted at or above it
    c.set(Switch::MinExpires(600))?;
    let r = answer(&trunk(), 300)?;
    assert!(r.starts_with("SIP/2.0 423"), "{r}");
    assert!(r.contains("\nMin-Expires: 600"), "{r}");
    assert!(c.registered_contacts("trunk1")?.is_empty());
    assert!(answer(&trunk(), 900)?.starts_with("SIP/2.0 200"));
    c.set(Switch::MinExpires(0))?;

    // a capped expiry: granted 20 s for 300 asked
    c.set(Switch::MaxExpires(20))?;
    let r = answer(&trunk(), 300)?;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(r.contains(&format!("<sip:trunk1@{at}>;expires=20")), "{r}");
    assert!(c.registered_contacts("trunk1")?.iter().all(|b| b.expires <= 20));
    c.set(Switch::MaxExpires(0))?;

    // silence after the challenge: the registration times out
    c.set(Switch::Register(Answer::Silence))?;
    let r = register_account(&c, "register_answer.xml", &trunk(), at, 300, &["-timeout", "2s"])?;
    assert_ne!(r.code, Some(0), "{}", r.messages);
    assert!(received_responses(&r.messages).iter().all(|m| m.starts_with("SIP/2.0 401")), "{}", r.messages);
    assert!(c.events_of("REGISTER").iter().any(|e| e.outcome == "dropped (switch reg)"), "{:#?}", c.events());

    c.set(Switch::Register(Answer::Normal))?;
    assert!(answer(&trunk(), 300)?.starts_with("SIP/2.0 200"));
    Ok(())
}

#[test]
fn a_pstn_call_to_a_did_reaches_the_registered_contact() -> anyhow::Result<()> {
    let c = carrier_with(CarrierOptions::default())?;
    // the PBX side: a SIPp phone registered as the trunk account
    let (pbx, pbx_addr) = pstn_phone("pstn_uas.xml", LO, 2, &[])?;
    register_account(&c, "register.xml", &trunk(), pbx_addr, 300, &[])?.assert_ok();

    let call = PstnCall { pai: Some("sip:+15550001111@pstn.test".into()), header: Some("Privacy: none".into()), ..PstnCall::to(DID) };
    pstn_call(&c, &call, &[])?.wait(WAIT).assert_ok();
    c.set(Switch::DidInRequestUri(true))?;
    pstn_call(&c, &call, &[])?.wait(WAIT).assert_ok();
    let pbx = pbx.wait(WAIT);
    pbx.assert_ok();
    let m = &pbx.messages;
    // first the contact as registered, then with the DID as its user; To, From and PAI as sent
    let first = m.find(&format!("INVITE sip:trunk1@{pbx_addr} SIP/2.0")).ok_or_else(|| anyhow::anyhow!("no INVITE to the contact: {m}"))?;
    let second = m.find(&format!("INVITE sip:{DID}@{pbx_addr} SIP/2.0")).ok_or_else(|| anyhow::anyhow!("no INVITE with the DID: {m}"))?;
    assert!(first < second);
    assert!(m.matches(&format!("To: <sip:{DID}@{}>", c.addr().ip())).count() >= 2, "{m}");
    assert!(m.contains(&format!("From: \"PSTN Caller\" <sip:+15550001111@{PSTN_IP}>")), "{m}");
    assert!(m.contains("P-Asserted-Identity: <sip:+15550001111@pstn.test>"), "{m}");
    assert!(m.contains("\nPrivacy: none"), "{m}");
    assert!(m.contains(&format!("Record-Route: <sip:{};lr", c.sip())), "{m}");

    // both dialogs' ACK and BYE came back through the carrier
    let relayed: Vec<_> = c.events_of("INVITE").into_iter().filter(|e| e.outcome.starts_with("relay to registered contact")).collect();
    assert_eq!(relayed.len(), 2, "{:#?}", c.events());
    for inv in &relayed {
        assert_eq!(inv.ruri, format!("sip:{DID}@{}", c.sip()));
        for method in ["ACK", "BYE"] {
            assert!(
                c.events_of(method).iter().any(|e| e.call_id == inv.call_id && e.outcome == "relay in-dialog"),
                "{method} of {}: {:#?}",
                inv.call_id,
                c.events()
            );
        }
    }
    assert!(c.relayed_replies().iter().any(|r| r.method == "INVITE" && r.status == 200));

    // an unknown number, and the DID of an account with no binding
    let r = pstn_call(&c, &PstnCall::to("+15559999999"), &[])?.wait(WAIT);
    assert!(r.messages.contains("SIP/2.0 404"), "{}", r.messages);
    let r = pstn_call(&c, &PstnCall::to(DID2), &[])?.wait(WAIT);
    assert!(r.messages.contains("SIP/2.0 480"), "{}", r.messages);
    assert!(c.events_of("INVITE").iter().any(|e| e.outcome == "480 trunk2 not registered"), "{:#?}", c.events());
    Ok(())
}

#[test]
fn an_authenticated_invite_reaches_the_pstn_phone_untouched() -> anyhow::Result<()> {
    let (uk, uk_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let (other, other_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let c = carrier_with(CarrierOptions { pstn_uas: Some(other_addr), pstn_routes: vec![("0044".into(), uk_addr)], ..Default::default() })?;

    trunk_call(&c, &trunk(), "0044201234567", &[])?.wait(WAIT).assert_ok();
    trunk_call(&c, &trunk(), "0033123456789", &[])?.wait(WAIT).assert_ok();
    let uk = uk.wait(WAIT);
    uk.assert_ok();
    let other = other.wait(WAIT);
    other.assert_ok();
    // the prefix route and the default one; the Request-URI exactly as the account sent it
    assert!(uk.messages.contains(&format!("INVITE sip:0044201234567@{} SIP/2.0", c.sip())), "{}", uk.messages);
    assert!(other.messages.contains(&format!("INVITE sip:0033123456789@{} SIP/2.0", c.sip())), "{}", other.messages);
    assert_eq!((invites(&uk), invites(&other)), (1, 1));
    let m = &uk.messages;
    assert!(m.contains(&format!("From: <sip:+4930123@{}>", c.addr().ip())), "{m}");
    assert!(m.contains(&format!("To: <sip:0044201234567@{}>", c.addr().ip())), "{m}");
    assert!(m.contains("P-Asserted-Identity: <sip:+4930123@pbx.test>"), "{m}");
    assert!(!m.contains("Proxy-Authorization"), "the credentials stay at the carrier: {m}");
    assert!(m.contains(&format!("Record-Route: <sip:{};lr", c.sip())), "{m}");
    let ev = c.events_of("INVITE");
    assert_eq!(ev.iter().filter(|e| e.outcome == format!("relay to pstn {uk_addr} (account auth-trunk1)")).count(), 1, "{ev:#?}");
    assert_eq!(ev.iter().filter(|e| e.outcome == format!("relay to pstn {other_addr} (account auth-trunk1)")).count(), 1, "{ev:#?}");
    for method in ["ACK", "BYE"] {
        assert_eq!(c.events_of(method).iter().filter(|e| e.outcome == "relay in-dialog").count(), 2, "{:#?}", c.events());
    }
    Ok(())
}

#[test]
fn wrong_credentials_and_switches_keep_calls_from_the_pstn() -> anyhow::Result<()> {
    let (phone, phone_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let c = carrier_with(CarrierOptions { pstn_uas: Some(phone_addr), ..Default::default() })?;

    // a wrong password is challenged again, never relayed
    let wrong = Account { password: "not-the-password".into(), ..trunk() };
    let r = trunk_call(&c, &wrong, "0044201234567", &["-timeout", "2s"])?.wait(WAIT);
    assert_ne!(r.code, Some(0));
    let responses = received_responses(&r.messages);
    assert!(responses.iter().filter(|m| m.starts_with("SIP/2.0 407")).count() >= 2, "{}", r.messages);
    assert!(responses.iter().all(|m| m.starts_with("SIP/2.0 407") || m.starts_with("SIP/2.0 100")), "{}", r.messages);
    // no credentials at all, from an address that is neither PSTN nor a trusted peer
    let r = pstn_call(&c, &PstnCall { from_ip: Ipv4Addr::new(127, 0, 0, 8), ..PstnCall::to("0044201234567") }, &["-timeout", "2s"])?.wait(WAIT);
    assert!(r.messages.contains("SIP/2.0 407"), "{}", r.messages);

    // 503 after the digest check (the failover case), then silence (the timeout case)
    c.set(Switch::Invite(Answer::Reply(503)))?;
    let r = trunk_call(&c, &trunk(), "0044201234567", &[])?.wait(WAIT);
    assert_ne!(r.code, Some(0));
    assert!(received_responses(&r.messages).iter().any(|m| m.starts_with("SIP/2.0 503 Service Unavailable")), "{}", r.messages);
    c.set(Switch::Invite(Answer::Silence))?;
    let r = trunk_call(&c, &trunk(), "0044201234567", &["-timeout", "2s"])?.wait(WAIT);
    assert_ne!(r.code, Some(0));
    assert!(received_responses(&r.messages).iter().all(|m| m.starts_with("SIP/2.0 407") || m.starts_with("SIP/2.0 100")), "{}", r.messages);
    let ev = c.events_of("INVITE");
    assert!(ev.iter().any(|e| e.outcome == "503 Service Unavailable (switch inv)"), "{ev:#?}");
    assert!(ev.iter().any(|e| e.outcome == "dropped (switch inv)"), "{ev:#?}");
    assert!(!ev.iter().any(|e| e.outcome.starts_with("relay")), "{ev:#?}");

    // back to normal: the call goes through
    c.set(Switch::Invite(Answer::Normal))?;
    trunk_call(&c, &trunk(), "0044201234567", &[])?.wait(WAIT).assert_ok();
    let phone = phone.wait(WAIT);
    phone.assert_ok();
    assert_eq!(invites(&phone), 1);
    Ok(())
}

#[test]
fn options_are_answered_until_switched_off() -> anyhow::Result<()> {
    let c = carrier_with(CarrierOptions::default())?;
    c.set(Switch::Options(Answer::Normal))?; // already normal: nothing to clear
    assert_eq!(options_ping(c.addr(), LO, Duration::from_secs(5))?, Some(200));
    c.set(Switch::Options(Answer::Silence))?;
    assert_eq!(options_ping(c.addr(), LO, Duration::from_millis(1500))?, None);
    c.set(Switch::Options(Answer::Reply(503)))?;
    assert_eq!(options_ping(c.addr(), LO, Duration::from_secs(5))?, Some(503));
    c.set(Switch::Options(Answer::Normal))?;
    assert_eq!(options_ping(c.addr(), LO, Duration::from_secs(5))?, Some(200));
    let outcomes: Vec<String> = c.events_of("OPTIONS").into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes.first().map(String::as_str), Some("200 options"));
    assert!(outcomes.iter().filter(|o| *o == "dropped (switch opt)").count() >= 2, "retransmissions dropped too: {outcomes:?}");
    Ok(())
}

#[test]
fn an_ip_trunk_needs_no_registration_and_no_digest() -> anyhow::Result<()> {
    let (pbx, pbx_addr) = pstn_phone("pstn_uas.xml", LO, 1, &[])?;
    let (phone, phone_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let c = Carrier::start(CarrierOptions {
        ip_trunks: vec![IpTrunk { peer: pbx_addr, dids: vec!["+15557770001".into()] }],
        pstn_uas: Some(phone_addr),
        ..Default::default()
    })?;
    // in: straight to the peer, the DID as the Request-URI user
    pstn_call(&c, &PstnCall::to("+15557770001"), &[])?.wait(WAIT).assert_ok();
    let pbx = pbx.wait(WAIT);
    pbx.assert_ok();
    assert!(pbx.messages.contains(&format!("INVITE sip:+15557770001@{pbx_addr} SIP/2.0")), "{}", pbx.messages);
    // out: trusted by the source IP, no challenge
    pstn_call(&c, &PstnCall { from_ip: LO, ..PstnCall::to("0044201234567") }, &[])?.wait(WAIT).assert_ok();
    let phone = phone.wait(WAIT);
    phone.assert_ok();
    assert!(phone.messages.contains(&format!("INVITE sip:0044201234567@{} SIP/2.0", c.sip())), "{}", phone.messages);
    let ev = c.events_of("INVITE");
    assert!(ev.iter().any(|e| e.outcome == format!("relay to pstn {phone_addr} (ip trunk 127.0.0.1)")), "{ev:#?}");
    assert!(!ev.iter().any(|e| e.outcome.starts_with("challenge")), "{ev:#?}");
    Ok(())
}

/// A REGISTER client of this file's own (SIPp 3.6 answers MD5 challenges only): REGISTERs
/// `aor` at `carrier`, answers the challenge with `algorithm` ("MD5" or "SHA-256") whatever
/// the challenge asked, and returns the challenge header and the final status.
fn digest_register(carrier: SocketAddr, aor: &str, auth_user: &str, password: &str, algorithm: &str) -> anyhow::Result<(String, u16)> {
    use md5::Digest as _;
    let sock = UdpSocket::bind((LO, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let local = sock.local_addr()?;
    let uri = format!("sip:{carrier}");
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-sha-{cseq}-{port};rport\r\nFrom: <sip:{aor}@{host}>;tag=sha{port}\r\nTo: <sip:{aor}@{host}>\r\nCall-ID: sha-{port}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{aor}@{local}>\r\n{auth}Expires: 120\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            port = local.port(),
            host = carrier.ip(),
        )
    };
    let recv = || -> anyhow::Result<String> {
        let mut buf = [0u8; 4096];
        let (len, _) = sock.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    };
    let status = |m: &str| m.get(8..11).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
    sock.send_to(request(1, "").as_bytes(), carrier)?;
    let challenge_msg = recv()?;
    anyhow::ensure!(status(&challenge_msg) == 401, "{challenge_msg}");
    let challenge = challenge_msg.lines().find(|l| l.starts_with("WWW-Authenticate:")).unwrap_or_default().to_owned();
    let param = |name: &str| -> String {
        let Some(i) = challenge.find(&format!("{name}=")) else { return String::new() };
        let v = &challenge[i + name.len() + 1..];
        match v.strip_prefix('"') {
            Some(q) => q.split('"').next().unwrap_or_default().to_owned(),
            None => v.split([',', ' ']).next().unwrap_or_default().to_owned(),
        }
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let hash = |s: String| -> String {
        let bytes: Vec<u8> = if algorithm == "SHA-256" { sha2::Sha256::digest(s.as_bytes()).to_vec() } else { md5::Md5::digest(s.as_bytes()).to_vec() };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let cnonce = "0a4f113b";
    let ha1 = hash(format!("{auth_user}:{realm}:{password}"));
    let ha2 = hash(format!("REGISTER:{uri}"));
    let response = hash(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    let auth = format!("Authorization: Digest username=\"{auth_user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={algorithm}, qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n");
    sock.send_to(request(2, &auth).as_bytes(), carrier)?;
    let answer = recv()?;
    Ok((challenge, status(&answer)))
}

#[test]
fn sha256_md5_and_qop_less_carriers_take_their_own_digests() -> anyhow::Result<()> {
    let c = carrier_with(CarrierOptions { digest: Digest::Sha256, ..Default::default() })?;
    let t = trunk();
    let (challenge, status) = digest_register(c.addr(), &t.aor, &t.auth_user, &t.password, "SHA-256")?;
    assert!(challenge.contains("algorithm=SHA-256"), "{challenge}");
    assert!(challenge.contains("realm=\"carrier.test\""), "{challenge}");
    assert!(challenge.contains("qop=\"auth\""), "{challenge}");
    assert_eq!(status, 200);
    assert_eq!(c.registered_contacts("trunk1")?.len(), 1);
    // an MD5 answer to a SHA-256 challenge is refused
    let t2 = trunk2();
    let (_, status) = digest_register(c.addr(), &t2.aor, &t2.auth_user, &t2.password, "MD5")?;
    assert_eq!(status, 401);
    assert!(c.registered_contacts("trunk2")?.is_empty());

    // the MD5 carrier: the same client with MD5 registers, its challenge names no algorithm
    let md5 = carrier_with(CarrierOptions::default())?;
    let (challenge, status) = digest_register(md5.addr(), &t.aor, &t.auth_user, &t.password, "MD5")?;
    assert!(!challenge.contains("algorithm"), "{challenge}");
    assert_eq!(status, 200);

    // a carrier without qop (RFC 2069 digests) and with the algorithm named
    let plain = carrier_with(CarrierOptions { qop: false, digest: Digest::Md5Explicit, realm: "sip.example-carrier.net".into(), ..Default::default() })?;
    let r = register_account(&plain, "register.xml", &t, contact(), 300, &[])?;
    r.assert_ok();
    let challenge = received_responses(&r.messages).into_iter().find(|m| m.starts_with("SIP/2.0 401")).unwrap_or_default();
    assert!(challenge.contains("Digest realm=\"sip.example-carrier.net\""), "{challenge}");
    assert!(challenge.contains("algorithm=MD5") && !challenge.contains("qop"), "{challenge}");
    assert_eq!(plain.registered_contacts("trunk1")?.len(), 1);
    Ok(())
}

#[test]
fn a_cancel_and_a_busy_phone_pass_through_the_carrier() -> anyhow::Result<()> {
    let (ringing, ringing_addr) = pstn_phone("uas_ring_cancel.xml", PSTN_IP, 1, &[])?;
    let (busy, busy_addr) = pstn_phone("pstn_uas_busy.xml", PSTN_IP, 1, &[])?;
    let c = carrier_with(CarrierOptions { pstn_uas: Some(ringing_addr), pstn_routes: vec![("0049".into(), busy_addr)], ..Default::default() })?;
    // the account cancels while the PSTN phone rings: 200 to the CANCEL, 487 to the INVITE
    let t = trunk();
    let args = ["-s", "0033123456789", "-au", &t.auth_user, "-ap", &t.password, "-key", "caller", "+4930123", "-m", "1"];
    sipp("uac_cancel.xml", (LO, free_port(LO)), Some(&c.sip()), &args)?.wait(WAIT).assert_ok();
    ringing.wait(WAIT).assert_ok();
    assert!(c.events_of("CANCEL").iter().any(|e| e.outcome == "relay cancel"), "{:#?}", c.events());
    assert!(c.relayed_replies().iter().any(|r| r.method == "INVITE" && r.status == 487), "{:#?}", c.relayed_replies());

    // busy: the 486 comes back to the account, the phone gets its ACK
    let r = trunk_call(&c, &t, "004930123456", &[])?.wait(WAIT);
    assert!(received_responses(&r.messages).iter().any(|m| m.starts_with("SIP/2.0 486 Busy Here")), "{}", r.messages);
    busy.wait(WAIT).assert_ok();
    Ok(())
}

#[test]
fn the_pstn_phone_that_presses_1_sends_rfc2833_to_the_caller() -> anyhow::Result<()> {
    let (phone, phone_addr) = pstn_phone("pstn_uas_press1.xml", PSTN_IP, 1, &["-d", "200"])?;
    let c = carrier_with(CarrierOptions { pstn_uas: Some(phone_addr), ..Default::default() })?;
    // the caller's audio socket: the phone plays its digit to the address of the INVITE's SDP
    let rtp = UdpSocket::bind((LO, 0))?;
    rtp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let port = rtp.local_addr()?.port().to_string();
    let caller = trunk_call(&c, &trunk(), "0044201234567", &["-key", "rtp_port", &port, "-d", "2000"])?;
    let mut events = Vec::new();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 2048];
    while t0.elapsed() < WAIT && !events.iter().any(|(_, end): &(u8, bool)| *end) {
        if let Ok((len, _)) = rtp.recv_from(&mut buf)
            && len >= 16
            && buf[1] & 0x7f == 101
        {
            events.push((buf[12], buf[13] & 0x80 != 0));
        }
    }
    caller.wait(WAIT).assert_ok();
    phone.wait(WAIT).assert_ok();
    assert!(events.len() >= 3, "{events:?}");
    assert!(events.iter().all(|(digit, _)| *digit == 1), "{events:?}");
    assert!(events.last().is_some_and(|(_, end)| *end), "the digit ends: {events:?}");
    Ok(())
}
