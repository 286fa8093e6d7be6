//! Tests of the PBX core: phones made of bytes, a fake clock, no sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::auth::Challenge;
use sip::transaction::{Peer, Transport};
use sip::{HeaderName, Instant, Message, Method};

use crate::config::{SecurityConfig, SipConfig};
use crate::core::{Core, Ports};
use crate::directory::{Did, Directory, TrustedTrunk, User};
use crate::events::Shared;
use crate::persist::PersistOp;
use crate::RingOutcome;

const REALM: &str = "pbx.test";
const T0: Instant = Instant::from_millis(1_700_000_000_000);
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

struct H {
    core: Core,
    now: Instant,
    shared: Arc<Shared>,
    ops: Vec<PersistOp>,
}

fn peer(s: &str) -> Peer {
    Peer { transport: Transport::Udp, addr: s.parse().unwrap() }
}

fn directory() -> Directory {
    let alice = User::for_test(1, "101", "alice", REALM, "alice-pw");
    let bob = User::for_test(2, "102", "bob", REALM, "bob-pw");
    let mut carol = User::for_test(3, "103", "carol", REALM, "carol-pw");
    carol.dnd = true;
    let mut dave = User::for_test(4, "104", "dave", REALM, "dave-pw");
    dave.ring_timeout = 5;
    let trunk = TrustedTrunk::for_test(9, "carrier", &["198.51.100.0/24"]);
    let did = Did { number: "+61290000000".into(), trunk_id: Some(9), flow_id: Some(1) };
    Directory::new(REALM, vec![alice, bob, carol, dave], vec![trunk], vec![did])
}

impl H {
    fn new() -> H {
        H::with_security(SecurityConfig::default())
    }

    fn with_security(security: SecurityConfig) -> H {
        H::with(|c| c.security = security)
    }

    fn with(f: impl FnOnce(&mut SipConfig)) -> H {
        H::build(f, None)
    }

    /// A core whose calls are anchored in `media`.
    fn with_media(media: FakeMedia) -> H {
        H::build(|_| {}, Some(Box::new(media)))
    }

    fn build(f: impl FnOnce(&mut SipConfig), media: Option<Box<dyn crate::anchor::MediaPort>>) -> H {
        H::build_in(f, media, directory())
    }

    fn build_in(f: impl FnOnce(&mut SipConfig), media: Option<Box<dyn crate::anchor::MediaPort>>, dir: Directory) -> H {
        let mut cfg = SipConfig::new("192.0.2.1".parse().unwrap(), 5060, 5060, [9; 32]);
        f(&mut cfg);
        let shared = Shared::new();
        let core = Core::new(
            cfg,
            Ports { udp: 5060, tcp: 5060, tls: 5061, wss: 8089, ws: 0 },
            Arc::new(dir),
            [1; 32],
            shared.clone(),
            Box::new(|_| "192.0.2.1".parse().unwrap()),
            media,
        );
        let mut h = H { core, now: T0, shared, ops: Vec::new() };
        h.core.handle_timeout(T0);
        h
    }

    fn send(&mut self, from: &str, msg: &Message) {
        self.core.handle_datagram(self.now, peer(from), &msg.to_bytes());
        self.core.take_ops(&mut self.ops);
    }

    fn out(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut v = Vec::new();
        while let Some(t) = self.core.poll_transmit() {
            v.push((t.dest.addr, Message::parse(&t.payload).expect("we send what we can parse")));
        }
        self.core.take_ops(&mut self.ops);
        v
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.core.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.core.handle_timeout(self.now);
        }
        self.now = end;
        self.core.take_ops(&mut self.ops);
    }

    /// Registers `user` from `addr` (challenge round included).
    fn register(&mut self, p: &mut Phone) {
        let r = p.register(None);
        self.send(&p.addr.clone(), &r);
        let out = self.out();
        let ch = challenge_in(&out[0].1).expect("a challenge");
        let r = p.register(Some(&ch));
        self.send(&p.addr.clone(), &r);
        let out = self.out();
        assert_eq!(out[0].1.status(), Some(200), "{}", out[0].1);
    }
}

fn challenge_in(m: &Message) -> Option<Challenge> {
    m.headers(HeaderName::WwwAuthenticate).chain(m.headers(HeaderName::ProxyAuthenticate)).find_map(|v| Challenge::parse(v).ok())
}

fn only(out: &[(SocketAddr, Message)], pred: impl Fn(&Message) -> bool) -> Vec<&(SocketAddr, Message)> {
    out.iter().filter(|(_, m)| pred(m)).collect()
}

fn is_req(m: &Message, method: Method) -> bool {
    m.method() == Some(&method)
}

fn is_status(m: &Message, code: u16) -> bool {
    m.status() == Some(code)
}

/// A phone: builds requests and answers.
struct Phone {
    user: String,
    password: String,
    addr: String,
    call_id: String,
    tag: String,
    cseq: u32,
    n: u32,
}

impl Phone {
    fn new(user: &str, password: &str, addr: &str) -> Phone {
        Phone {
            user: user.into(),
            password: password.into(),
            addr: addr.into(),
            call_id: format!("cid-{user}-{addr}"),
            tag: format!("t-{user}"),
            cseq: 0,
            n: 0,
        }
    }

    fn base(&mut self, method: Method, uri: &str, to: &str) -> Message {
        self.cseq += 1;
        self.n += 1;
        Message::request(method.clone(), uri)
            .unwrap()
            .with_header(HeaderName::Via, &format!("SIP/2.0/UDP {};branch=z9hG4bK{}{};rport", self.addr, self.user, self.n))
            .unwrap()
            .with_header(HeaderName::MaxForwards, "70")
            .unwrap()
            .with_header(HeaderName::From, &format!("<sip:{}@{REALM}>;tag={}", self.user, self.tag))
            .unwrap()
            .with_header(HeaderName::To, to)
            .unwrap()
            .with_header(HeaderName::CallId, &self.call_id)
            .unwrap()
            .with_header(HeaderName::CSeq, &format!("{} {}", self.cseq, method))
            .unwrap()
            .with_header(HeaderName::Contact, &format!("<sip:{}@{}>", self.user, self.addr))
            .unwrap()
    }

    fn register(&mut self, ch: Option<&Challenge>) -> Message {
        let to = format!("<sip:{}@{REALM}>", self.user);
        let mut m = self.base(Method::Register, &format!("sip:{REALM}"), &to).with_header(HeaderName::Expires, "600").unwrap();
        if let Some(ch) = ch {
            let v = ch.authorization("REGISTER", &format!("sip:{REALM}"), &self.user, &self.password, "cn", 1);
            m.push_header(HeaderName::Authorization, &v).unwrap();
        }
        m
    }

    fn invite(&mut self, to: &str, ch: Option<&Challenge>, sdp: bool) -> Message {
        let uri = format!("sip:{to}@{REALM}");
        let mut m = self.base(Method::Invite, &uri, &format!("<{uri}>"));
        if let Some(ch) = ch {
            let v = ch.authorization("INVITE", &uri, &self.user, &self.password, "cn", 1);
            m.push_header(HeaderName::ProxyAuthorization, &v).unwrap();
        }
        if sdp {
            m.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }
        m
    }

    /// Places an authenticated call: INVITE, 407, ACK (by the layer), INVITE with credentials.
    fn call(&mut self, h: &mut H, to: &str, sdp: bool) -> Message {
        let inv = self.invite(to, None, sdp);
        h.send(&self.addr.clone(), &inv);
        let out = h.out();
        assert_eq!(out.len(), 1, "a challenge alone, no 100 Trying before it");
        let ch = out.iter().find_map(|(_, m)| challenge_in(m)).expect("407 challenge");
        let mut inv = self.invite(to, Some(&ch), sdp);
        // the second INVITE of a call shares the Call-ID
        inv.set_header(HeaderName::CSeq, &format!("{} INVITE", self.cseq)).unwrap();
        h.send(&self.addr.clone(), &inv);
        inv
    }

    /// An answer to a request we received.
    fn answer(&self, req: &Message, code: u16, tag: &str, sdp: bool) -> Message {
        let mut r = Message::response_to(req, code, None, Some(tag));
        if (101..300).contains(&code) {
            r.push_header(HeaderName::Contact, &format!("<sip:{}@{}>", self.user, self.addr)).unwrap();
        }
        if sdp {
            r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }
        r
    }

    /// An in-dialog request built from a dialog we are UAS of (the callee side).
    fn in_dialog_as_callee(&mut self, invite: &Message, tag: &str, method: Method) -> Message {
        self.n += 1;
        let from = format!("{};tag={tag}", invite.header(HeaderName::To).unwrap());
        let contact = invite.contact().unwrap().uri_str.to_owned();
        Message::request(method.clone(), &contact)
            .unwrap()
            .with_header(HeaderName::Via, &format!("SIP/2.0/UDP {};branch=z9hG4bKd{}{}", self.addr, self.user, self.n))
            .unwrap()
            .with_header(HeaderName::MaxForwards, "70")
            .unwrap()
            .with_header(HeaderName::From, &from)
            .unwrap()
            .with_header(HeaderName::To, invite.header(HeaderName::From).unwrap())
            .unwrap()
            .with_header(HeaderName::CallId, invite.call_id().unwrap())
            .unwrap()
            .with_header(HeaderName::CSeq, &format!("{} {method}", 100 + self.n))
            .unwrap()
            .with_header(HeaderName::Contact, &format!("<sip:{}@{}>", self.user, self.addr))
            .unwrap()
    }

    /// An in-dialog request from the caller, in the dialog the 200 created.
    fn in_dialog_as_caller(&mut self, ok: &Message, method: Method) -> Message {
        self.n += 1;
        self.cseq += 1;
        let target = ok.contact().unwrap().uri_str.to_owned();
        Message::request(method.clone(), &target)
            .unwrap()
            .with_header(HeaderName::Via, &format!("SIP/2.0/UDP {};branch=z9hG4bKc{}{}", self.addr, self.user, self.n))
            .unwrap()
            .with_header(HeaderName::MaxForwards, "70")
            .unwrap()
            .with_header(HeaderName::From, ok.header(HeaderName::From).unwrap())
            .unwrap()
            .with_header(HeaderName::To, ok.header(HeaderName::To).unwrap())
            .unwrap()
            .with_header(HeaderName::CallId, ok.call_id().unwrap())
            .unwrap()
            .with_header(HeaderName::CSeq, &format!("{} {method}", self.cseq))
            .unwrap()
    }

    fn ack_for(&mut self, ok: &Message, sdp: bool) -> Message {
        let mut a = self.in_dialog_as_caller(ok, Method::Ack);
        self.cseq -= 1;
        a.set_header(HeaderName::CSeq, &format!("{} ACK", ok.cseq().unwrap().seq)).unwrap();
        if sdp {
            a.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }
        a
    }
}

/// Bob registered at 10.0.0.21, Alice (10.0.0.5) calling 102: the phones, Alice's INVITE and
/// the INVITE of Bob's leg.
fn alice_calls_bob(h: &mut H, sdp: bool) -> (Phone, Phone, Message, Message) {
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let inv_a = alice.call(h, "102", sdp);
    let out = h.out();
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    (alice, bob, inv_a, inv)
}

fn cdr_ops(ops: &[PersistOp]) -> Vec<String> {
    ops.iter()
        .filter_map(|o| match o {
            PersistOp::CdrStart { cdr, .. } => Some(format!("start {:?} {}", cdr.direction, cdr.callee.clone().unwrap_or_default())),
            PersistOp::CdrAnswer { .. } => Some("answer".into()),
            PersistOp::CdrEnd { end, .. } => Some(format!("end {} {}", end.disposition, end.hangup_cause.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

// ----- registrar and security -----

#[test]
fn register_is_challenged_then_accepted() {
    let mut h = H::new();
    let mut p = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    h.send("10.0.0.5:5060", &p.register(None));
    let out = h.out();
    assert_eq!(out.len(), 1);
    let resp = &out[0].1;
    assert_eq!(resp.status(), Some(401));
    let algs: Vec<&str> = resp.headers(HeaderName::WwwAuthenticate).map(|v| if v.contains("MD5") { "MD5" } else { "SHA-256" }).collect();
    assert_eq!(algs, ["MD5"], "MD5 alone by default");
    let ch = challenge_in(resp).unwrap();
    h.send("10.0.0.5:5060", &p.register(Some(&ch)));
    let out = h.out();
    let ok = &out[0].1;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(HeaderName::Contact), Some("<sip:alice@10.0.0.5:5060>;expires=600"));
    assert_eq!(h.shared.bindings.get(&1).map(|b| b.len()), Some(1));
    assert!(h.ops.iter().any(|o| matches!(o, PersistOp::RegUpsert(r) if r.extension_id == 1)));
    // a REGISTER for someone else's address is refused
    let mut r = p.register(Some(&ch));
    r.set_header(HeaderName::To, &format!("<sip:bob@{REALM}>")).unwrap();
    h.send("10.0.0.5:5060", &r);
    assert!(h.out().iter().any(|(_, m)| m.status() == Some(403) || m.status() == Some(401)));
}

#[test]
fn sha256_when_offered() {
    let mut h = H::with(|c| c.digest_algorithms = vec![sip::auth::Algorithm::Sha256, sip::auth::Algorithm::Md5]);
    let mut p = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    h.send("10.0.0.5:5060", &p.register(None));
    let resp = h.out().remove(0).1;
    let algs: Vec<&str> = resp.headers(HeaderName::WwwAuthenticate).map(|v| if v.contains("MD5") { "MD5" } else { "SHA-256" }).collect();
    assert_eq!(algs, ["SHA-256", "MD5"], "in the configured order");
    let ch = resp.headers(HeaderName::WwwAuthenticate).find_map(|v| Challenge::parse(v).ok()).unwrap();
    assert_eq!(ch.algorithm, sip::auth::Algorithm::Sha256);
    h.send("10.0.0.5:5060", &p.register(Some(&ch)));
    assert_eq!(h.out()[0].1.status(), Some(200));
    // credentials with an algorithm that is not offered are refused
    let mut h = H::new();
    h.send("10.0.0.5:5060", &p.register(Some(&ch)));
    assert_eq!(h.out()[0].1.status(), Some(401));
}

#[test]
fn unknown_user_and_wrong_password_fail_alike() {
    let mut h = H::new();
    let mut known = Phone::new("alice", "wrong", "10.0.0.5:5060");
    let mut unknown = Phone::new("mallory", "whatever", "10.0.0.5:5060");
    let mut answers = Vec::new();
    for p in [&mut known, &mut unknown] {
        h.send("10.0.0.5:5060", &p.register(None));
        let first = h.out().remove(0).1;
        let ch = challenge_in(&first).unwrap();
        h.send("10.0.0.5:5060", &p.register(Some(&ch)));
        let second = h.out().remove(0).1;
        answers.push((first, second));
    }
    let names = |m: &Message| m.iter_headers().map(|(n, _)| n.to_owned()).collect::<Vec<_>>();
    let nonce = |m: &Message| challenge_in(m).unwrap().nonce;
    let (k, u) = (&answers[0].1, &answers[1].1);
    assert_eq!(k.status(), Some(401));
    assert_eq!(u.status(), k.status());
    assert_eq!(u.reason(), k.reason());
    assert_eq!(names(u), names(k), "same header set");
    assert_ne!(nonce(u), nonce(k), "a fresh nonce each time");
    assert_eq!(names(&answers[0].0), names(&answers[1].0));
    assert_eq!(h.core.guard.stats().auth_failures, 2, "both count as failed authentications");
}

#[test]
fn repeated_failures_ban_the_source() {
    let sec = SecurityConfig { auth_fail_limit: 3, ban_duration: Duration::from_secs(60), ..SecurityConfig::default() };
    let mut h = H::with_security(sec);
    let mut p = Phone::new("alice", "wrong", "10.0.0.9:5060");
    for _ in 0..3 {
        h.send("10.0.0.9:5060", &p.register(None));
        let ch = challenge_in(&h.out()[0].1).unwrap();
        h.send("10.0.0.9:5060", &p.register(Some(&ch)));
        h.out();
    }
    let mut opt = Phone::new("x", "x", "10.0.0.9:5060");
    let o = opt.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
    h.send("10.0.0.9:5060", &o);
    assert!(h.out().is_empty(), "a banned source gets no answer at all");
    let mut other = Phone::new("x", "x", "10.0.0.10:5060");
    let o = other.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
    h.send("10.0.0.10:5060", &o);
    assert_eq!(h.out()[0].1.status(), Some(200), "other sources are served");
    h.advance(Duration::from_secs(61));
    let o = opt.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
    h.send("10.0.0.9:5060", &o);
    assert_eq!(h.out()[0].1.status(), Some(200), "the ban ends");
}

#[test]
fn options_scanners_and_malformed_input() {
    let mut h = H::new();
    let mut p = Phone::new("x", "x", "10.0.0.7:5060");
    let o = p.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
    h.send("10.0.0.7:5060", &o);
    let ok = h.out().remove(0).1;
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header(HeaderName::Allow).is_some_and(|a| a.contains("INVITE")));
    assert_eq!(ok.header(HeaderName::Accept), Some("application/sdp"));
    assert!(ok.header(HeaderName::Supported).is_some());

    let scan =
        p.base(Method::Options, &format!("sip:100@{REALM}"), &format!("<sip:100@{REALM}>")).with_header(HeaderName::UserAgent, "friendly-scanner").unwrap();
    h.send("10.0.0.7:5060", &scan);
    assert!(h.out().is_empty(), "scanners get silence");

    let bad = b"INVITE sip:bob@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKbad\r\nMax-Forwards: 70\r\nFrom: <sip:a@pbx.test>;tag=1\r\nTo: <sip:bob@pbx.test>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    h.core.handle_datagram(h.now, peer("10.0.0.7:5060"), bad);
    let t = h.core.poll_transmit().expect("an answer");
    assert!(t.payload.starts_with(b"SIP/2.0 400 Missing Call-ID\r\n"), "{:?}", t.payload);
    assert_eq!(t.dest.addr.to_string(), "10.0.0.7:5060");
    h.core.handle_datagram(h.now, peer("10.0.0.7:5060"), b"\x00\x01garbage");
    assert!(h.out().is_empty());

    let mut inv = p.invite("102", None, true);
    inv.set_header(HeaderName::MaxForwards, "0").unwrap();
    h.send("10.0.0.7:5060", &inv);
    assert!(h.out().iter().any(|(_, m)| m.status() == Some(483)), "loops end with 483");
}

#[test]
fn rate_limit_drops_a_flood() {
    let sec = SecurityConfig { rate_limit: 5, rate_burst: 10, ..SecurityConfig::default() };
    let mut h = H::with_security(sec);
    let mut p = Phone::new("x", "x", "10.0.0.8:5060");
    let mut answered = 0;
    for _ in 0..30 {
        let o = p.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
        h.send("10.0.0.8:5060", &o);
        answered += h.out().len();
    }
    assert_eq!(answered, 10, "the burst, then nothing");
}

// ----- calls -----

#[test]
fn internal_call_forks_first_answer_wins() {
    let mut h = H::new();
    let mut bob1 = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    let mut bob2 = Phone::new("bob", "bob-pw", "10.0.0.22:5060");
    bob2.call_id = "cid-bob-2".into();
    h.register(&mut bob1);
    h.register(&mut bob2);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(&mut h, "102", true);
    let out = h.out();
    assert!(only(&out, |m| is_status(m, 100)).len() == 1, "100 Trying at once");
    assert!(!out.iter().any(|(_, m)| m.status() == Some(407)), "the authenticated INVITE is not challenged");
    let invites = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invites.len(), 2, "both contacts ring");
    let inv1 = invites.iter().find(|(a, _)| a.to_string() == "10.0.0.21:5060").unwrap().1.clone();
    let inv2 = invites.iter().find(|(a, _)| a.to_string() == "10.0.0.22:5060").unwrap().1.clone();
    assert_ne!(inv1.call_id(), inv2.call_id(), "each leg its own Call-ID");
    assert_ne!(inv1.call_id(), Some(alice.call_id.as_str()));
    assert_eq!(inv1.body().as_ref(), SDP.as_bytes(), "SDP passes through");
    assert_eq!(inv1.max_forwards(), Some(69));
    assert!(inv1.header(HeaderName::From).unwrap().contains("sip:101@"), "caller id is the extension");

    h.send("10.0.0.21:5060", &bob1.answer(&inv1, 180, "b1", false));
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 180)).len(), 1, "180 relayed to the caller");
    h.send("10.0.0.22:5060", &bob2.answer(&inv2, 200, "b2", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Invite)[0].1.clone();
    assert_eq!(ok.body().as_ref(), SDP.as_bytes());
    assert!(only(&out, |m| is_req(m, Method::Ack)).iter().any(|(a, _)| a.to_string() == "10.0.0.22:5060"));
    assert!(only(&out, |m| is_req(m, Method::Cancel)).iter().any(|(a, _)| a.to_string() == "10.0.0.21:5060"), "the loser is cancelled");
    assert_eq!(h.shared.calls.len(), 1);

    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    let bye = alice.in_dialog_as_caller(&ok, Method::Bye);
    h.send("10.0.0.5:5060", &bye);
    let out = h.out();
    assert!(only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Bye).len() == 1);
    let byes = only(&out, |m| is_req(m, Method::Bye));
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0.to_string(), "10.0.0.22:5060");
    assert_eq!(byes[0].1.call_id(), inv2.call_id());
    assert_eq!(cdr_ops(&h.ops), ["start Internal 102", "answer", "end answered normal_clearing"]);
    assert!(h.shared.calls.is_empty());
}

#[test]
fn callee_hangs_up_and_reinvite_is_relayed() {
    let mut h = H::new();
    let (mut alice, mut bob, _, inv) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.out();

    // bob puts the call on hold: the re-INVITE reaches alice, her answer goes back
    let mut reinv = bob.in_dialog_as_callee(&inv, "b1", Method::Invite);
    reinv.set_body(Some("application/sdp"), bytes::Bytes::from_static(b"v=0\r\na=sendonly\r\n")).unwrap();
    h.send("10.0.0.21:5060", &reinv);
    let out = h.out();
    let to_alice = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    assert_eq!(to_alice.0.to_string(), "10.0.0.5:5060");
    assert_eq!(to_alice.1.call_id(), Some(alice.call_id.as_str()), "in alice's dialog");
    assert_eq!(to_alice.1.body().as_ref(), b"v=0\r\na=sendonly\r\n");
    h.send("10.0.0.5:5060", &alice.answer(&to_alice.1, 200, "x", true));
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Ack)).iter().any(|(a, _)| a.to_string() == "10.0.0.5:5060"), "we ACK alice");
    let relayed = only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Invite);
    assert_eq!(relayed[0].0.to_string(), "10.0.0.21:5060");

    let bye = bob.in_dialog_as_callee(&inv, "b1", Method::Bye);
    h.send("10.0.0.21:5060", &bye);
    let out = h.out();
    let to_alice = only(&out, |m| is_req(m, Method::Bye));
    assert_eq!(to_alice.len(), 1);
    assert_eq!(to_alice[0].0.to_string(), "10.0.0.5:5060");
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end answered normal_clearing");
}

#[test]
fn caller_cancels_before_answer() {
    let mut h = H::new();
    let (_alice, bob, inv_a, inv) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv, 180, "b1", false));
    h.out();
    let cancel = sip::transaction::cancel_for(&inv_a).unwrap();
    h.send("10.0.0.5:5060", &cancel);
    let out = h.out();
    assert!(only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Cancel).len() == 1);
    assert!(only(&out, |m| is_status(m, 487)).len() == 1, "the INVITE ends with 487");
    let c = only(&out, |m| is_req(m, Method::Cancel));
    assert_eq!(c[0].1.call_id(), inv.call_id(), "CANCEL propagated to the leg");
    assert_eq!(cdr_ops(&h.ops), ["start Internal 102", "end no_answer originator_cancel"]);
}

#[test]
fn busy_dnd_unregistered_and_unknown() {
    let mut h = H::new();
    let (mut alice, bob, _, inv) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv, 486, "b1", false));
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 486)).len(), 1, "busy relayed");
    assert!(only(&out, |m| is_req(m, Method::Ack)).len() == 1, "the non-2xx is ACKed by the layer");

    for (target, code) in [("103", 486), ("104", 480), ("199", 404)] {
        alice.call_id = format!("cid-{target}");
        alice.call(&mut h, target, true);
        let out = h.out();
        assert_eq!(only(&out, |m| is_status(m, code)).len(), 1, "{target} → {code}");
        assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty());
    }
    assert_eq!(
        cdr_ops(&h.ops),
        ["start Internal 102", "end busy user_busy", "start Internal 103", "end busy user_busy", "start Internal 104", "end failed subscriber_absent"]
    );
}

#[test]
fn ring_timeout_gives_480() {
    let mut h = H::new();
    let mut dave = Phone::new("dave", "dave-pw", "10.0.0.24:5060");
    h.register(&mut dave);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(&mut h, "104", true);
    let out = h.out();
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    h.send("10.0.0.24:5060", &dave.answer(&inv, 180, "d1", false));
    h.out();
    h.advance(Duration::from_millis(4900));
    assert!(only(&h.out(), |m| is_status(m, 480)).is_empty());
    h.advance(Duration::from_millis(200));
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 480)).len(), 1, "ring_timeout of 5 s");
    assert_eq!(only(&out, |m| is_req(m, Method::Cancel)).len(), 1);
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end no_answer no_answer");
}

#[test]
fn leg_without_provisional_is_cancelled_once_it_rings() {
    let mut h = H::new();
    let (_alice, bob, inv_a, inv) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.5:5060", &sip::transaction::cancel_for(&inv_a).unwrap());
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Cancel)).is_empty(), "no CANCEL before a provisional (RFC 3261 §9.1)");
    h.send("10.0.0.21:5060", &bob.answer(&inv, 180, "b1", false));
    assert_eq!(only(&h.out(), |m| is_req(m, Method::Cancel)).len(), 1);
    // the callee answers anyway: acknowledged and hung up
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    assert_eq!(only(&out, |m| is_req(m, Method::Ack)).len(), 1);
    assert_eq!(only(&out, |m| is_req(m, Method::Bye)).len(), 1);
}

#[test]
fn delayed_offer_waits_for_the_callers_ack() {
    let mut h = H::new();
    let (mut alice, bob, _, inv) = alice_calls_bob(&mut h, false);
    assert!(inv.body().is_empty());
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Ack)).is_empty(), "the ACK waits for the caller's answer");
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    assert_eq!(ok.body().as_ref(), SDP.as_bytes(), "the offer goes to the caller");
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, true));
    let out = h.out();
    let ack = only(&out, |m| is_req(m, Method::Ack));
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].0.to_string(), "10.0.0.21:5060");
    assert_eq!(ack[0].1.body().as_ref(), SDP.as_bytes(), "the answer rides in our ACK");
}

#[test]
fn session_timer_ends_a_silent_call() {
    let mut h = H::new();
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let inv = alice.invite("102", None, true).with_header(HeaderName::SessionExpires, "90").unwrap().with_header(HeaderName::Supported, "timer").unwrap();
    h.send("10.0.0.5:5060", &inv);
    let ch = h.out().iter().find_map(|(_, m)| challenge_in(m)).unwrap();
    let mut inv =
        alice.invite("102", Some(&ch), true).with_header(HeaderName::SessionExpires, "90").unwrap().with_header(HeaderName::Supported, "timer").unwrap();
    inv.set_header(HeaderName::CSeq, &format!("{} INVITE", alice.cseq)).unwrap();
    h.send("10.0.0.5:5060", &inv);
    let out = h.out();
    let leg = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    h.send("10.0.0.21:5060", &bob.answer(&leg, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    assert_eq!(ok.header(HeaderName::SessionExpires), Some("90;refresher=uac"));
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    // RFC 4028 §10: the side that does not refresh ends the session at
    // interval - min(32, interval / 3) without a refresh
    h.advance(Duration::from_secs(59));
    assert!(only(&h.out(), |m| is_req(m, Method::Bye)).is_empty());
    h.advance(Duration::from_secs(2));
    let out = h.out();
    let mut dests: Vec<String> = only(&out, |m| is_req(m, Method::Bye)).iter().map(|(a, _)| a.to_string()).collect();
    dests.sort();
    dests.dedup();
    assert_eq!(dests, ["10.0.0.21:5060", "10.0.0.5:5060"], "no refresh: both sides get a BYE");
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end answered session_timeout");
}

// ----- trusted trunks and the controller seam -----

fn trunk_invite(number: &str) -> Message {
    let uri = format!("sip:{number}@192.0.2.1");
    Message::request(Method::Invite, &uri)
        .unwrap()
        .with_header(HeaderName::Via, "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtrunk1")
        .unwrap()
        .with_header(HeaderName::MaxForwards, "70")
        .unwrap()
        .with_header(HeaderName::From, "\"Carrier Caller\" <sip:+61400000001@198.51.100.7>;tag=tr1")
        .unwrap()
        .with_header(HeaderName::To, &format!("<{uri}>"))
        .unwrap()
        .with_header(HeaderName::CallId, "trunk-call-1")
        .unwrap()
        .with_header(HeaderName::CSeq, "1 INVITE")
        .unwrap()
        .with_header(HeaderName::Contact, "<sip:+61400000001@198.51.100.7:5060>")
        .unwrap()
}

#[test]
fn trusted_trunk_call_without_a_flow_runner_is_unavailable() {
    let mut h = H::new();
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    h.send("198.51.100.7:5060", &trunk_invite("61290000000"));
    let out = h.out();
    assert!(only(&out, |m| is_status(m, 407)).is_empty(), "trusted: no challenge");
    // only a flow routes inbound numbers: nothing rings without the runner, and nothing waits
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty());
    assert_eq!(only(&out, |m| is_status(m, 480)).len(), 1);
    assert!(h.shared.calls.is_empty());
    let mut bad = trunk_invite("0299999999");
    bad.set_header(HeaderName::CallId, "trunk-call-2").unwrap();
    bad.set_header(HeaderName::Via, "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtrunk2").unwrap();
    h.send("198.51.100.7:5060", &bad);
    assert_eq!(only(&h.out(), |m| is_status(m, 404)).len(), 1, "unknown number");
    // the same INVITE from an untrusted address is challenged
    let mut other = trunk_invite("61290000000");
    other.set_header(HeaderName::Via, "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bKx").unwrap();
    h.send("203.0.113.9:5060", &other);
    assert_eq!(only(&h.out(), |m| is_status(m, 407)).len(), 1);
    assert_eq!(cdr_ops(&h.ops).iter().filter(|s| s.starts_with("start Inbound")).count(), 1);
}

#[test]
fn a_controller_takes_inbound_calls_and_rings() {
    let mut h = H::new();
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut incoming = h.shared.take_incoming().unwrap();
    h.send("198.51.100.7:5060", &trunk_invite("+61290000000"));
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty(), "the controller decides");
    let call = incoming.try_recv().unwrap();
    assert_eq!((call.dialled.as_str(), call.caller_id_num.as_str(), call.trunk_id), ("+61290000000", "+61400000001", 9));

    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let req = |caller_id| crate::RingRequest { extensions: vec![2], numbers: vec![], timeout: Duration::from_secs(10), caller_id };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Ring { call: call.key, request: req(None), reply: tx }));
    let out = h.out();
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    assert!(inv.header(HeaderName::From).unwrap().starts_with("\"Carrier Caller\" <sip:+61400000001@"), "{inv}");
    h.send("10.0.0.21:5060", &bob.answer(&inv, 486, "b1", false));
    h.out();
    assert_eq!(rx.try_recv().unwrap().unwrap(), RingOutcome::Busy);
    assert_eq!(h.shared.calls.len(), 1, "the caller still waits for the controller");

    let (tx, mut rx) = tokio::sync::oneshot::channel();
    h.core.handle_command(
        h.now,
        crate::core::Command::Call(crate::b2bua::CallCommand::Ring {
            call: call.key,
            request: req(Some((Some("Sales".into()), "+61290000000".into()))),
            reply: tx,
        }),
    );
    let out = h.out();
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    assert!(inv.header(HeaderName::From).unwrap().starts_with("\"Sales\" <sip:+61290000000@"), "the caller id shown: {inv}");
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b2", true));
    let out = h.out();
    assert_eq!(rx.try_recv().unwrap().unwrap(), RingOutcome::Answered(2), "bob (extension id 2) answered");
    assert_eq!(only(&out, |m| is_status(m, 200))[0].0.to_string(), "198.51.100.7:5060");

    let (tx, mut rx) = tokio::sync::oneshot::channel();
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Hangup { call: call.key, code: 0, reply: tx }));
    assert!(rx.try_recv().unwrap().is_ok());
    assert_eq!(only(&h.out(), |m| is_req(m, Method::Bye)).len(), 2);
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end answered normal_clearing");
}

#[test]
fn a_controller_stops_an_abandoned_ring() {
    let mut h = H::new();
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut incoming = h.shared.take_incoming().unwrap();
    h.send("198.51.100.7:5060", &trunk_invite("+61290000000"));
    h.out();
    let call = incoming.try_recv().unwrap();
    let (tx, _rx) = tokio::sync::oneshot::channel();
    let request = crate::RingRequest { extensions: vec![2], numbers: vec![], timeout: Duration::from_secs(30), caller_id: None };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Ring { call: call.key, request, reply: tx }));
    let inv = only(&h.out(), |m| is_req(m, Method::Invite))[0].1.clone();
    h.send("10.0.0.21:5060", &bob.answer(&inv, 180, "b1", false));
    h.out();
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::StopRing { call: call.key }));
    assert_eq!(only(&h.out(), |m| is_req(m, Method::Cancel)).len(), 1, "the phone stops ringing");
    assert_eq!(h.shared.calls.len(), 1, "the caller still waits for the controller");
    // nothing rings any more: stopping again does nothing
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::StopRing { call: call.key }));
    assert!(h.out().is_empty());
}

#[test]
fn shutdown_ends_calls() {
    let mut h = H::new();
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(&mut h, "102", true);
    h.out();
    h.core.handle_command(h.now, crate::core::Command::Shutdown);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 503)).len(), 1);
    assert!(h.core.is_stopped());
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end no_answer system_shutdown");
}

// ----- anchored media -----

/// A media port that notes what the core asks of it.
#[derive(Clone, Default)]
struct FakeMedia(Arc<std::sync::Mutex<Vec<String>>>);

impl FakeMedia {
    fn log(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl crate::anchor::MediaPort for FakeMedia {
    fn open(&mut self, key: crate::CallKey, _call_id: &str) -> Result<[u16; 2], media::MediaError> {
        self.log(format!("open {key}"));
        Ok([20000, 20002])
    }
    fn set_remote(&mut self, _key: crate::CallKey, leg: media::LegId, r: media::RemoteMedia) {
        let rtp = r.rtp.map(|a| a.to_string()).unwrap_or_default();
        self.log(format!("remote {leg:?} {rtp} {:?} te={} {:?}", r.codecs.send_codec().kind, r.codecs.telephone_event.is_some(), r.direction));
    }
    fn set_srtp(&mut self, _key: crate::CallKey, leg: media::LegId, keys: Option<media::SrtpKeys>) {
        match keys {
            Some(k) => self.log(format!("srtp {leg:?} {}", k.outbound.suite())),
            None => self.log(format!("srtp {leg:?} off")),
        }
    }
    fn webrtc_answer(&mut self, _key: crate::CallKey, leg: media::LegId, _offer: &str, codecs: &[media::CodecSpec]) -> Result<String, media::MediaError> {
        self.log(format!("webrtc {leg:?} {:?}", codecs.first().map(|c| c.kind)));
        Ok("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 20000 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 192.0.2.1\r\na=ice-lite\r\n".into())
    }
    fn webrtc_offer(&mut self, _key: crate::CallKey, leg: media::LegId, codecs: &[media::CodecSpec]) -> Result<String, media::MediaError> {
        self.log(format!("webrtc offer {leg:?} {:?}", codecs.iter().map(|c| c.kind).collect::<Vec<_>>()));
        Ok(SDP_WEBRTC.replace("IN IP4 127.0.0.1", "IN IP4 192.0.2.1"))
    }
    fn webrtc_accept(&mut self, _key: crate::CallKey, leg: media::LegId, _answer: &str) -> Result<(), media::MediaError> {
        self.log(format!("webrtc accept {leg:?}"));
        Ok(())
    }
    fn bridge(&mut self, _key: crate::CallKey) {
        self.log("bridge".into());
    }
    fn unbridge(&mut self, _key: crate::CallKey) {
        self.log("unbridge".into());
    }
    fn play_prompt(&mut self, _key: crate::CallKey, leg: media::LegId, name: &str, times: usize) {
        self.log(format!("play {leg:?} {name} x{times}"));
    }
    fn stop_playback(&mut self, _key: crate::CallKey, leg: media::LegId) {
        self.log(format!("stop {leg:?}"));
    }
    fn sip_info(&mut self, _key: crate::CallKey, leg: media::LegId, _ct: &str, body: &[u8]) {
        self.log(format!("info {leg:?} {}", String::from_utf8_lossy(body).trim()));
    }
    fn record(&mut self, _key: crate::CallKey, _name: &str) -> Option<String> {
        self.log("record".into());
        Some("recordings/x.wav".into())
    }
    fn stop_record(&mut self, _key: crate::CallKey) {
        self.log("stop record".into());
    }
    fn close(&mut self, key: crate::CallKey) {
        self.log(format!("close {key}"));
    }
}

fn body_of(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[test]
fn anchored_call_rewrites_sdp_relays_digits_and_times_out() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let (mut alice, mut bob, _, inv) = alice_calls_bob(&mut h, true);
    let offer = body_of(&inv);
    assert!(offer.contains("c=IN IP4 192.0.2.1\r\n"), "the callee sees the PBX: {offer}");
    assert!(offer.contains("m=audio 20002 RTP/AVP 0 8 111 101\r\n"), "the caller's codec first, then what FlowPBX transcodes to: {offer}");
    assert!(!offer.contains("10.0.0.1"), "{offer}");
    assert_eq!(media.take(), ["open 1", "remote A 10.0.0.1:4000 Pcmu te=false SendRecv"]);

    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    let answer = body_of(&ok);
    assert!(answer.contains("c=IN IP4 192.0.2.1\r\n") && answer.contains("m=audio 20000 RTP/AVP 0\r\n"), "{answer}");
    assert_eq!(media.take(), ["remote B 10.0.0.1:4000 Pcmu te=false SendRecv", "remote A 10.0.0.1:4000 Pcmu te=false SendRecv", "bridge"]);
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.out();

    // a digit by INFO is answered and goes to the media session
    let mut info = alice.in_dialog_as_caller(&ok, Method::Info);
    info.set_body(Some("application/dtmf-relay"), bytes::Bytes::from_static(b"Signal=5\r\nDuration=160\r\n")).unwrap();
    h.send("10.0.0.5:5060", &info);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Info).len(), 1);
    assert!(only(&out, |m| is_req(m, Method::Info)).is_empty(), "not relayed as SIP: the session relays it");
    assert_eq!(media.take(), ["info A Signal=5\r\nDuration=160"]);
    // a digit from bob's side reaches alice (no telephone-event) as INFO
    let digit = media::DigitEvent { leg: media::LegId::B, digit: '7', duration: Duration::from_millis(120), source: media::DtmfSource::Rfc4733 };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Dtmf { call: crate::CallKey::from_raw(1), digit }));
    let out = h.out();
    let infos = only(&out, |m| is_req(m, Method::Info));
    assert_eq!(infos[0].0.to_string(), "10.0.0.5:5060");
    assert_eq!(body_of(&infos[0].1), "Signal=7\r\nDuration=120\r\n");

    // bob holds: the re-INVITE reaches alice from the PBX's address, sendonly
    let mut reinv = bob.in_dialog_as_callee(&inv, "b1", Method::Invite);
    let hold = SDP.replace("m=audio 4000 RTP/AVP 0\r\n", "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n");
    reinv.set_body(Some("application/sdp"), bytes::Bytes::from(hold)).unwrap();
    h.send("10.0.0.21:5060", &reinv);
    let out = h.out();
    let to_alice = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    let b = body_of(&to_alice);
    assert!(b.contains("a=sendonly") && b.contains("m=audio 20000 ") && b.contains("o=FlowPBX ") && b.contains(" 2 IN IP4 192.0.2.1"), "{b}");
    assert_eq!(media.take(), ["remote B 10.0.0.1:4000 Pcmu te=false SendOnly"]);

    // media timeout: BYE both, CDR cause, session closed
    h.core
        .handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::MediaTimeout { call: crate::CallKey::from_raw(1), leg: media::LegId::A }));
    let out = h.out();
    assert_eq!(only(&out, |m| is_req(m, Method::Bye)).len(), 2);
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end answered media_timeout");
    assert_eq!(media.take(), ["close 1"]);
}

#[test]
fn unusable_offers_are_refused_and_ports_released() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.6:5060");
    let inv = alice.invite("102", None, false);
    h.send("10.0.0.6:5060", &inv);
    let ch = h.out().iter().find_map(|(_, m)| challenge_in(m)).unwrap();
    let mut inv = alice.invite("102", Some(&ch), false);
    inv.set_body(
        Some("application/sdp"),
        bytes::Bytes::from_static(b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n"),
    )
    .unwrap();
    h.send("10.0.0.6:5060", &inv);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 488)).len(), 1, "G.729 only: not acceptable here");
    assert!(media.take().is_empty(), "no session opened");
    // a caller that cancels releases its session
    let (_alice, bob, inv_a, inv) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv, 180, "b1", false));
    h.out();
    h.send("10.0.0.5:5060", &sip::transaction::cancel_for(&inv_a).unwrap());
    h.out();
    assert_eq!(media.take().last().map(String::as_str), Some("close 1"));
}

#[test]
fn a_flow_answers_the_caller_then_rings_and_bridges() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut incoming = h.shared.take_incoming().unwrap();
    let mut inv = trunk_invite("+61290000000");
    let offer = SDP.replace("m=audio 4000 RTP/AVP 0\r\n", "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
    inv.set_body(Some("application/sdp"), bytes::Bytes::from(offer)).unwrap();
    h.send("198.51.100.7:5060", &inv);
    h.out();
    let call = incoming.try_recv().unwrap();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Answer { call: call.key, reply: tx }));
    assert!(rx.try_recv().unwrap().is_ok());
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    assert!(body_of(&ok).contains("m=audio 20000 RTP/AVP 0 101\r\n"), "FlowPBX answers with the first codec and telephone-event: {}", body_of(&ok));
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "answer");
    media.take();

    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let req = crate::RingRequest { extensions: vec![2], numbers: vec![], timeout: Duration::from_secs(10), caller_id: None };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Ring { call: call.key, request: req, reply: tx }));
    let out = h.out();
    let to_bob = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    assert!(body_of(&to_bob).contains("m=audio 20002 RTP/AVP 0 8 111 101\r\n"), "FlowPBX offers the callee itself: {}", body_of(&to_bob));
    h.send("10.0.0.21:5060", &bob.answer(&to_bob, 200, "b1", true));
    let out = h.out();
    assert_eq!(rx.try_recv().unwrap().unwrap(), RingOutcome::Answered(2));
    assert!(only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Invite).is_empty(), "the caller was answered before");
    assert_eq!(only(&out, |m| is_req(m, Method::Ack)).len(), 1, "bob's answer is acknowledged at once");
    assert_eq!(media.take(), ["remote B 10.0.0.1:4000 Pcmu te=false SendRecv", "bridge", "stop A"]);
}

// ----- hostile input: reflection, injection, RFC 4475 -----

/// A request naming another host in its Via, or carrying its own `received`/`rport`, is
/// answered at its real source, on the stateless path (OPTIONS, REGISTER challenges), the
/// transaction path (the 407 to an INVITE and its retransmissions) and the parse-error path.
#[test]
fn answers_go_to_the_source_whatever_the_via_says() {
    let mut h = H::new();
    let src = "203.0.113.50:5999";
    for (i, via) in [
        "SIP/2.0/UDP 127.0.0.1:22;branch=z9hG4bKr1",
        "SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKr2;received=10.9.9.9;rport=53",
        "SIP/2.0/UDP 192.168.1.1;branch=z9hG4bKr3;rport",
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
        let mut o = p.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
        o.set_header(HeaderName::Via, via).unwrap();
        h.send(src, &o);
        let mut inv = p.invite("102", None, true);
        inv.set_header(HeaderName::Via, &via.replace("z9hG4bKr", "z9hG4bKi")).unwrap();
        inv.set_header(HeaderName::CallId, &format!("reflect-{i}")).unwrap();
        h.send(src, &inv);
        let out = h.out();
        assert_eq!(out.len(), 2, "{via}: {out:?}");
        for (dest, m) in &out {
            assert_eq!(dest.ip().to_string(), "203.0.113.50", "{via}: {m}");
            let v = m.top_via().unwrap();
            assert!(v.received().is_none_or(|r| r == "203.0.113.50"), "{via}: {m}");
        }
        // the 407's retransmissions go to the same place
        h.advance(Duration::from_millis(600));
        for (dest, _) in h.out() {
            assert_eq!(dest.ip().to_string(), "203.0.113.50");
        }
    }
    // a request too broken for a transaction: its 400 goes to the source too
    let bad = b"OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKbad;received=10.20.30.40\r\nMax-Forwards: 70\r\nFrom: <sip:a@pbx.test>;tag=1\r\nTo: <sip:pbx.test>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.core.handle_datagram(h.now, peer(src), bad);
    let t = h.core.poll_transmit().expect("a 400");
    assert!(t.payload.starts_with(b"SIP/2.0 400 Missing Call-ID"));
    assert_eq!(t.dest.addr.to_string(), src);
    assert!(h.core.poll_transmit().is_none());
}

/// A caller id from a trunk (and from a flow) never writes a header of its own: escaped user
/// parts, numbers limited to `[0-9+*#]`, display names quoted.
#[test]
fn caller_ids_cannot_inject_headers() {
    let mut h = H::new();
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut incoming = h.shared.take_incoming().unwrap();
    let mut inv = trunk_invite("+61290000000");
    // %0D%0A decodes to CR LF: a user part that would end the From line once unescaped
    inv.set_header(HeaderName::From, "\"Evil\\\" <sip:x@y>\" <sip:+614%0D%0AX-Injected:%201@carrier.example>;tag=e1").unwrap();
    h.send("198.51.100.7:5060", &inv);
    h.out();
    let call = incoming.try_recv().unwrap();
    assert_eq!(call.caller_id_num, "anonymous", "not a number: withheld");
    let (tx, _rx) = tokio::sync::oneshot::channel();
    // a flow's caller id with a line break in the name and letters in the number
    let request = crate::RingRequest {
        extensions: vec![2],
        numbers: vec![],
        timeout: Duration::from_secs(10),
        caller_id: Some((Some("Sales\r\nX-Evil: 1".into()), "+1 (555) 010-0199".into())),
    };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Ring { call: call.key, request, reply: tx }));
    let out = h.out();
    let (_, leg) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    let text = leg.to_string();
    assert!(!text.contains("X-Evil") || text.contains("\"SalesX-Evil: 1\""), "{text}");
    assert!(!text.contains("\r\nX-Evil") && !text.contains("\r\nX-Injected"), "{text}");
    assert!(leg.header(HeaderName::From).unwrap().starts_with("\"SalesX-Evil: 1\" <sip:+15550100199@"), "{text}");
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::StopRing { call: call.key }));
}

#[test]
fn unknown_extensions_unreadable_bodies_and_stray_responses() {
    let mut h = H::new();
    let mut p = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    // RFC 4475 §3.3.5: Require with unknown extensions → 420 listing them (Proxy-Require is
    // a proxy's business), on the stateless path too
    let mut o = p.base(Method::Options, &format!("sip:{REALM}"), &format!("<sip:{REALM}>"));
    o.push_header(HeaderName::Require, "nothingSupportsThis, nothingSupportsThisEither").unwrap();
    o.push_header(HeaderName::ProxyRequire, "noProxiesSupportThis").unwrap();
    h.send("10.0.0.5:5060", &o);
    let r = h.out().remove(0).1;
    assert_eq!(r.status(), Some(420), "{r}");
    assert_eq!(r.header(HeaderName::Unsupported), Some("nothingSupportsThis, nothingSupportsThisEither"));
    let mut inv = p.invite("102", None, true);
    inv.push_header(HeaderName::Require, "timer, 100rel").unwrap();
    h.send("10.0.0.5:5060", &inv);
    let r = h.out().remove(0).1;
    assert_eq!((r.status(), r.header(HeaderName::Unsupported)), (Some(420), Some("100rel")));
    // RFC 4475 §3.3.6: a body we cannot read → 415 with Accept
    let mut inv = p.invite("102", None, false);
    inv.set_body(Some("application/unknownformat"), bytes::Bytes::from_static(b"<audio> <pcmu port=\"443\"/> </audio>")).unwrap();
    h.send("10.0.0.5:5060", &inv);
    let r = h.out().remove(0).1;
    assert_eq!(r.status(), Some(415), "{r}");
    assert_eq!(r.header(HeaderName::Accept), Some("application/sdp"));
    let mut inv = p.invite("102", None, true);
    inv.push_header(HeaderName::ContentEncoding, "gzip").unwrap();
    h.send("10.0.0.5:5060", &inv);
    assert_eq!(h.out().remove(0).1.status(), Some(415));
    // a 2xx that matches nothing of ours is dropped, not acknowledged towards its Contact
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnotours\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\
                 Call-ID: stray@x\r\nCSeq: 1 INVITE\r\nContact: <sip:victim@10.66.66.66:5060>\r\nContent-Length: 0\r\n\r\n";
    h.core.handle_datagram(h.now, peer("203.0.113.9:5060"), stray.as_bytes());
    h.advance(Duration::from_secs(1));
    let out = h.out();
    assert!(out.iter().all(|(dest, m)| dest.to_string() == "10.0.0.5:5060" && !m.is_request()), "stray responses get silence: {out:?}");
}

/// An in-dialog request with Max-Forwards 0 that would be relayed to the other side ends
/// with 483 instead.
#[test]
fn in_dialog_relay_honours_max_forwards() {
    let mut h = H::new();
    let (mut alice, bob, _inv_a, inv_b) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv_b, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    let ack = alice.ack_for(&ok, false);
    h.send("10.0.0.5:5060", &ack);
    h.out();
    let mut info = alice.in_dialog_as_caller(&ok, Method::Message);
    info.set_header(HeaderName::MaxForwards, "0").unwrap();
    info.set_body(Some("text/plain"), bytes::Bytes::from_static(b"hi")).unwrap();
    h.send("10.0.0.5:5060", &info);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 483)).len(), 1, "{out:?}");
    assert!(only(&out, |m| is_req(m, Method::Message)).is_empty());
}

/// Credentials computed for another Request-URI are not accepted (and not counted); a
/// trusted trunk's address registers nothing and is never banned, whatever arrives from it.
#[test]
fn digest_uri_and_trunk_addresses() {
    let mut h = H::with_security(SecurityConfig { auth_fail_limit: 2, ..SecurityConfig::default() });
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let r = alice.register(None);
    h.send("10.0.0.5:5060", &r);
    let ch = challenge_in(&h.out()[0].1).unwrap();
    let mut r = alice.register(None);
    let v = ch.authorization("REGISTER", "sip:elsewhere.test", "alice", "alice-pw", "cn", 1);
    r.push_header(HeaderName::Authorization, &v).unwrap();
    h.send("10.0.0.5:5060", &r);
    assert_eq!(h.out()[0].1.status(), Some(401), "another URI's credentials");
    h.register(&mut alice);

    // from the trunk's network: REGISTER refused, failures never ban it
    let mut fake = Phone::new("alice", "wrong", "198.51.100.7:5060");
    for _ in 0..5 {
        let r = fake.register(None);
        h.send("198.51.100.7:5060", &r);
        assert_eq!(h.out()[0].1.status(), Some(403));
        let inv = fake.invite("102", Some(&ch), true);
        h.send("198.51.100.7:5060", &inv);
        h.out();
    }
    assert!(!h.core.guard.is_banned("198.51.100.7".parse().unwrap(), h.now), "a trunk's address is never banned");
    let mut incoming = h.shared.take_incoming().unwrap();
    let mut inv = trunk_invite("+61290000000");
    inv.set_header(HeaderName::CallId, "after-failures").unwrap();
    h.send("198.51.100.7:5060", &inv);
    h.out();
    assert!(incoming.try_recv().is_ok(), "the carrier's calls still come in");
}

// ----- registration trunks -----

const CARRIER: &str = "203.0.113.10:5060";

fn reg_trunk_directory() -> Directory {
    let account = crate::directory::Account { username: "acme".into(), auth_username: "acme-auth".into(), password: "trunk-pw".into(), expiry: 300 };
    let trunk = crate::directory::Trunk::for_test(20, "sip.carrier.test", CARRIER, Some(account));
    let mut d = directory();
    d = d.with_trunks(vec![trunk], vec![]);
    d
}

impl H {
    fn with_directory(d: Directory) -> H {
        let mut h = H::build(|_| {}, None);
        h.core.handle_command(h.now, crate::core::Command::Directory(Arc::new(d)));
        h.advance(Duration::ZERO);
        h
    }
}

/// The carrier's answer to a request of ours.
fn carrier_answer(req: &Message, code: u16, f: impl FnOnce(&mut Message)) -> Message {
    let mut r = Message::response_to(req, code, None, Some("carrier-tag"));
    f(&mut r);
    r
}

fn status(h: &H) -> crate::trunks::TrunkStatus {
    h.shared.trunks.get(&20).map(|s| s.clone()).expect("a status")
}

#[test]
fn a_registration_trunk_registers_with_digest_and_refreshes() {
    let mut h = H::with_directory(reg_trunk_directory());
    let out = h.out();
    let reg = only(&out, |m| is_req(m, Method::Register));
    assert_eq!(reg.len(), 1, "{out:?}");
    let (dest, reg) = reg[0].clone();
    assert_eq!(dest.to_string(), CARRIER);
    assert_eq!(reg.uri_str(), Some("sip:sip.carrier.test"));
    assert_eq!(reg.to().unwrap().uri_str, "sip:acme@sip.carrier.test");
    assert_eq!(reg.expires(), Some(300));
    assert!(reg.contact().unwrap().uri_str.starts_with("sip:acme@192.0.2.1:5060"));
    assert_eq!(status(&h).registration.unwrap().state, crate::RegistrationState::Registering);
    // the OPTIONS keep-alive goes too
    assert_eq!(only(&out, |m| is_req(m, Method::Options)).len(), 1);

    // 401: answered with the auth username, same Call-ID, next CSeq
    let challenge = "Digest realm=\"carrier\", nonce=\"abc123\", algorithm=MD5, qop=\"auth\"";
    h.send(CARRIER, &carrier_answer(&reg, 401, |r| r.push_header(HeaderName::WwwAuthenticate, challenge).unwrap()));
    let out = h.out();
    let (_, reg2) = only(&out, |m| is_req(m, Method::Register))[0].clone();
    assert_eq!(reg2.call_id(), reg.call_id());
    assert_eq!(reg2.cseq().unwrap().seq, reg.cseq().unwrap().seq + 1);
    let creds = sip::auth::Credentials::from_message(&reg2, HeaderName::Authorization, "carrier").unwrap();
    assert_eq!(creds.username, "acme-auth");
    let ha1 = sip::auth::ha1(sip::auth::Algorithm::Md5, "acme-auth", "carrier", "trunk-pw");
    let srv = sip::auth::DigestServer::new([0; 32], "carrier", Duration::from_secs(300));
    let _ = srv; // the response is checked by recomputing it below
    let expected =
        Challenge::parse(challenge).unwrap().authorization("REGISTER", "sip:sip.carrier.test", "acme-auth", "trunk-pw", creds.cnonce.as_deref().unwrap(), 1);
    assert!(expected.contains(&format!("response=\"{}\"", creds.response)), "{expected} vs {}", creds.response);
    let _ = ha1;

    // 200 granting 120 s: registered, refreshed at 90 s
    h.send(
        CARRIER,
        &carrier_answer(&reg2, 200, |r| {
            let c = reg2.contact().unwrap().uri_str.to_owned();
            r.push_header(HeaderName::Contact, &format!("<{c}>;expires=120")).unwrap();
        }),
    );
    h.out();
    let st = status(&h).registration.unwrap();
    assert_eq!(st.state, crate::RegistrationState::Registered);
    assert!(st.expires_at_ms.is_some() && st.error.is_none());
    h.advance(Duration::from_secs(89));
    assert!(only(&h.out(), |m| is_req(m, Method::Register)).is_empty());
    h.advance(Duration::from_secs(2));
    let out = h.out();
    let mut refresh = only(&out, |m| is_req(m, Method::Register));
    refresh.dedup_by_key(|(_, m)| m.cseq().map(|c| c.seq));
    assert_eq!(refresh.len(), 1, "the refresh at 85% or expiry-30 s (retransmissions aside)");
    let (_, r3) = refresh[0].clone();

    // 503 with Retry-After: failed, retried then
    h.send(CARRIER, &carrier_answer(&r3, 503, |r| r.push_header(HeaderName::RetryAfter, "20").unwrap()));
    h.out();
    let st = status(&h).registration.unwrap();
    assert_eq!((st.state, st.last_response.clone().map(|r| r.0)), (crate::RegistrationState::Failed, Some(503)));
    h.advance(Duration::from_secs(19));
    assert!(only(&h.out(), |m| is_req(m, Method::Register)).is_empty());
    h.advance(Duration::from_secs(2));
    let out = h.out();
    let (_, r4) = only(&out, |m| is_req(m, Method::Register))[0].clone();

    // 423: the Min-Expires is taken and sent at once
    h.send(CARRIER, &carrier_answer(&r4, 423, |r| r.push_header(HeaderName::MinExpires, "600").unwrap()));
    let out = h.out();
    let (_, r5) = only(&out, |m| is_req(m, Method::Register))[0].clone();
    assert_eq!(r5.expires(), Some(600));

    // 403: stopped, nothing more until the trunk is edited
    h.send(CARRIER, &carrier_answer(&r5, 403, |_| {}));
    h.out();
    assert_eq!(status(&h).registration.unwrap().state, crate::RegistrationState::Stopped);
    h.advance(Duration::from_secs(3600));
    assert!(only(&h.out(), |m| is_req(m, Method::Register)).is_empty(), "no retry after 403");
    // an edit (another password: another fingerprint) starts again
    let account = crate::directory::Account { username: "acme".into(), auth_username: "acme-auth".into(), password: "new-pw".into(), expiry: 300 };
    let edited = directory().with_trunks(vec![crate::directory::Trunk::for_test(20, "sip.carrier.test", CARRIER, Some(account))], vec![]);
    h.core.handle_command(h.now, crate::core::Command::Directory(Arc::new(edited)));
    h.advance(Duration::ZERO);
    assert_eq!(only(&h.out(), |m| is_req(m, Method::Register)).len(), 1);
}

#[test]
fn failures_back_off_doubling_and_wrong_credentials_are_not_retried_at_once() {
    let mut h = H::with_directory(reg_trunk_directory());
    let out = h.out();
    let (_, reg) = only(&out, |m| is_req(m, Method::Register))[0].clone();
    let challenge = "Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"";
    h.send(CARRIER, &carrier_answer(&reg, 401, |r| r.push_header(HeaderName::WwwAuthenticate, challenge).unwrap()));
    let out = h.out();
    let (_, reg2) = only(&out, |m| is_req(m, Method::Register))[0].clone();
    // the same challenge again: the credentials are wrong — a failure, not a loop
    h.send(CARRIER, &carrier_answer(&reg2, 401, |r| r.push_header(HeaderName::WwwAuthenticate, challenge).unwrap()));
    assert!(only(&h.out(), |m| is_req(m, Method::Register)).is_empty());
    let st = status(&h).registration.unwrap();
    assert_eq!(st.state, crate::RegistrationState::Failed);
    assert!(st.error.unwrap().contains("credentials"));
    // retries: 30 s ±20 %, then 60 s ±20 % (timeouts: the carrier says nothing)
    let mut gaps = Vec::new();
    let mut last = h.now;
    let mut last_cseq = reg2.cseq().unwrap().seq;
    for _ in 0..3 {
        let mut waited = Duration::ZERO;
        loop {
            h.advance(Duration::from_secs(1));
            waited += Duration::from_secs(1);
            let out = h.out();
            // a new REGISTER (not a retransmission of the last): a higher CSeq
            let fresh = only(&out, |m| is_req(m, Method::Register)).iter().filter_map(|(_, m)| m.cseq().map(|c| c.seq)).filter(|&c| c > last_cseq).max();
            if let Some(c) = fresh {
                last_cseq = c;
                break;
            }
            assert!(waited < Duration::from_secs(200), "no retry");
        }
        gaps.push(h.now.saturating_duration_since(last).as_secs());
        last = h.now;
        // no answer at all: the transaction times out (32 s) and the next wait doubles
    }
    assert!((24..=37).contains(&gaps[0]), "{gaps:?}");
    assert!(gaps[1] >= 32 + 48 && gaps[1] <= 32 + 73, "timeout then about 60 s: {gaps:?}");
}

#[test]
fn a_trunk_that_stops_answering_options_is_down_until_it_answers() {
    let mut h = H::with_directory(reg_trunk_directory());
    let out = h.out();
    let (_, opt) = only(&out, |m| is_req(m, Method::Options))[0].clone();
    h.send(CARRIER, &carrier_answer(&opt, 200, |_| {}));
    h.out();
    assert_eq!(status(&h).reachable, Some(true));
    assert!(status(&h).rtt_ms.is_some());
    h.advance(Duration::from_secs(30));
    assert_eq!(only(&h.out(), |m| is_req(m, Method::Options)).len(), 1, "every 30 s");
    h.advance(Duration::from_secs(9));
    h.out();
    assert_eq!(status(&h).reachable, Some(false), "8 s without an answer: down");
    assert!(!h.core.trunks.usable(20));
    h.advance(Duration::from_secs(21));
    let out = h.out();
    let (_, opt) = only(&out, |m| is_req(m, Method::Options))[0].clone();
    h.send(CARRIER, &carrier_answer(&opt, 404, |_| {}));
    h.out();
    assert_eq!(status(&h).reachable, Some(true), "any answer is a live carrier");
    assert!(h.core.trunks.usable(20));
}

// ----- outbound through trunks -----

const CARRIER_B: &str = "203.0.113.20:5060";

fn route(id: i64, patterns: &[&str], class: store::CallClass, trunks: &[i64]) -> crate::routing::Route {
    crate::routing::Route {
        id,
        name: format!("route {id}"),
        patterns: patterns.iter().map(|p| crate::routing::Pattern::parse(p).unwrap()).collect(),
        class,
        strip_digits: 0,
        prepend: String::new(),
        caller_id_mode: store::RouteCallerId::Extension,
        caller_id: None,
        extension_ids: vec![],
        trunk_ids: trunks.to_vec(),
    }
}

/// Alice (101) with an outbound caller id and national calls only; two carriers: 20
/// (registration, account "acme"), 21 (IP trunk, strips the 0 and adds 61); a national
/// route over 20 then 21 that makes 0290001234 into +61290001234.
fn outbound_directory(f: impl FnOnce(&mut Vec<crate::directory::Trunk>, &mut Vec<crate::routing::Route>, &mut User)) -> Directory {
    outbound_directory_with(f, |_| {})
}

/// [`outbound_directory`], Bob as `g` makes him.
fn outbound_directory_with(
    f: impl FnOnce(&mut Vec<crate::directory::Trunk>, &mut Vec<crate::routing::Route>, &mut User),
    g: impl FnOnce(&mut User),
) -> Directory {
    let account = crate::directory::Account { username: "acme".into(), auth_username: "acme".into(), password: "trunk-pw".into(), expiry: 300 };
    let mut t20 = crate::directory::Trunk::for_test(20, "sip.carrier.test", CARRIER, Some(account));
    t20.options_interval = 0;
    let mut t21 = crate::directory::Trunk::for_test(21, "ip.carrier.test", CARRIER_B, None);
    t21.options_interval = 0;
    t21.prefix_strip = 1;
    t21.prefix_add = "61".into();
    let mut national = route(1, &["_0[2-9]XXXXXXXX"], store::CallClass::National, &[20, 21]);
    national.caller_id_mode = store::RouteCallerId::Extension;
    let intl = route(2, &["_0011."], store::CallClass::International, &[20]);
    let mut trunks = vec![t20, t21];
    let mut routes = vec![national, intl];
    let mut alice = User::for_test(1, "101", "alice", REALM, "alice-pw");
    alice.outbound_caller_id = Some(crate::routing::CallerId { name: Some("Acme Sales".into()), number: "+61290000101".into() });
    alice.emergency_caller_id = Some(crate::routing::CallerId { name: None, number: "+61290000999".into() });
    f(&mut trunks, &mut routes, &mut alice);
    let mut bob = User::for_test(2, "102", "bob", REALM, "bob-pw");
    g(&mut bob);
    Directory::new(REALM, vec![alice, bob], vec![], vec![]).with_trunks(trunks, routes)
}

fn dial(h: &mut H, number: &str) -> (Phone, Vec<(SocketAddr, Message)>) {
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(h, number, true);
    let out = h.out();
    (alice, out)
}

#[test]
fn a_phone_dials_out_through_the_route_with_its_caller_id_and_digits() {
    let mut h = H::with_directory(outbound_directory(|_, _, _| {}));
    h.out();
    let (_, out) = dial(&mut h, "0290001234");
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 1, "{out:?}");
    let (dest, inv) = invs[0].clone();
    assert_eq!(dest.to_string(), CARRIER, "the route's first trunk");
    assert_eq!(inv.uri_str(), Some("sip:0290001234@sip.carrier.test"));
    let from = inv.from().unwrap();
    assert_eq!((from.uri.user().as_deref(), from.display_name().as_deref()), (Some("+61290000101"), Some("Acme Sales")));
    assert!(from.uri_str.ends_with("@sip.carrier.test"), "the provider's domain for a registration trunk: {}", from.uri_str);
    assert!(inv.header(HeaderName::PAssertedIdentity).unwrap().contains("+61290000101"));
    assert!(inv.contact().unwrap().uri_str.starts_with("sip:acme@"));
    // the carrier wants credentials: the INVITE goes again, once, with them
    let challenge = "Digest realm=\"carrier\", nonce=\"xyz\", qop=\"auth\"";
    h.send(CARRIER, &carrier_answer(&inv, 407, |r| r.push_header(HeaderName::ProxyAuthenticate, challenge).unwrap()));
    let out = h.out();
    let (_, inv2) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    assert_eq!(inv2.call_id(), inv.call_id());
    assert_eq!(inv2.cseq().unwrap().seq, 2);
    assert!(inv2.header(HeaderName::ProxyAuthorization).unwrap().contains("username=\"acme\""));
    // 503: the next trunk of the route, with its own digit rules
    h.send(CARRIER, &carrier_answer(&inv2, 503, |_| {}));
    let out = h.out();
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 1, "failover: {out:?}");
    let (dest, inv3) = invs[0].clone();
    assert_eq!(dest.to_string(), CARRIER_B);
    assert_eq!(inv3.uri_str(), Some("sip:61290001234@ip.carrier.test"), "strip 1, prepend 61");
    // it answers: the caller is bridged
    h.send(
        CARRIER_B,
        &carrier_answer(&inv3, 200, |r| {
            r.push_header(HeaderName::Contact, "<sip:gw@203.0.113.20>").unwrap();
            r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }),
    );
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 200)).iter().filter(|(d, _)| d.to_string() == "10.0.0.5:5060").count(), 1);
    assert!(cdr_ops(&h.ops).iter().any(|c| c.starts_with("start Outbound 0290001234")), "{:?}", cdr_ops(&h.ops));
}

#[test]
fn busy_does_not_fail_over_and_classes_and_limits_refuse() {
    let mut h = H::with_directory(outbound_directory(|_, _, _| {}));
    h.out();
    let (_, out) = dial(&mut h, "0290001234");
    let (_, inv) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    h.send(CARRIER, &carrier_answer(&inv, 486, |_| {}));
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty(), "busy is the callee's answer, not the trunk's failure");
    assert_eq!(only(&out, |m| is_status(m, 486)).len(), 1);

    // international: not in alice's classes
    let mut rx = h.shared.subscribe();
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call_id = "intl".into();
    alice.n = 100; // new branches
    alice.call(&mut h, "0011442079460000", true);
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty());
    let refused = only(&out, |m| is_status(m, 403));
    assert_eq!(refused.len(), 1);
    assert!(matches!(rx.try_recv(), Ok(crate::PbxEvent::OutboundLimit { limit: "class_not_permitted", .. })));
    assert!(h.ops.iter().any(|o| matches!(o, PersistOp::Audit { action, .. } if action == "outbound_limit")));
    // a number no route takes
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call_id = "none".into();
    alice.n = 200;
    alice.call(&mut h, "12345", true);
    assert_eq!(only(&h.out(), |m| is_status(m, 404)).len(), 1);
}

#[test]
fn concurrent_calls_channels_and_emergency() {
    // alice may have one outbound call; the registration trunk holds one channel
    let mut h = H::with_directory(outbound_directory(|trunks, _, alice| {
        alice.max_outbound_calls = 1;
        trunks[0].max_channels = 1;
    }));
    h.out();
    let (_, out) = dial(&mut h, "0290001234");
    assert_eq!(only(&out, |m| is_req(m, Method::Invite))[0].0.to_string(), CARRIER);
    // a second call of alice's: her limit
    let mut a2 = Phone::new("alice", "alice-pw", "10.0.0.6:5060");
    a2.call_id = "second".into();
    a2.call(&mut h, "0290005678", true);
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty());
    assert_eq!(only(&out, |m| is_status(m, 403)).len(), 1, "too many outbound calls");
    // an emergency call goes whatever the limit, with her emergency caller id
    let mut a3 = Phone::new("alice", "alice-pw", "10.0.0.7:5060");
    a3.call_id = "emergency".into();
    a3.call(&mut h, "000", true);
    let out = h.out();
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 1, "{out:?}");
    // trunk 20 is full (one channel): the emergency call takes the next trunk
    assert_eq!(invs[0].0.to_string(), CARRIER_B);
    assert_eq!(invs[0].1.from().unwrap().uri.user().as_deref(), Some("+61290000999"));
    assert_eq!(invs[0].1.uri_str(), Some("sip:6100@ip.carrier.test"), "the trunk's own digit rules still apply");
}

#[test]
fn a_down_trunk_is_skipped() {
    let mut h = H::with_directory(outbound_directory(|trunks, _, _| trunks[0].options_interval = 30));
    h.out();
    h.advance(Duration::from_secs(9));
    h.out();
    assert!(!h.core.trunks.usable(20), "its OPTIONS went unanswered");
    let (_, out) = dial(&mut h, "0290001234");
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].0.to_string(), CARRIER_B, "straight to the next trunk");
}

#[test]
fn inbound_through_a_registration_trunk_and_impostors() {
    let mut h = H::with_directory({
        let d = outbound_directory(|trunks, _, _| {
            trunks[0].numbering = crate::routing::Numbering { country_code: "61".into(), national_prefix: "0".into(), international_prefix: "0011".into() };
        });
        let did = Did { number: "+61290000000".into(), trunk_id: Some(20), flow_id: Some(1) };
        let users = vec![User::for_test(1, "101", "alice", REALM, "alice-pw")];
        let trunks: Vec<crate::directory::Trunk> = d.trunks().iter().map(|t| (**t).clone()).collect();
        Directory::new(REALM, users, vec![], vec![did]).with_trunks(trunks, vec![])
    });
    h.out();
    let mut incoming = h.shared.take_incoming().unwrap();
    // the carrier addresses our registered contact (user "acme"); the DID is in To, national
    let inv = Message::request(Method::Invite, "sip:acme@192.0.2.1:5060")
        .unwrap()
        .with_header(HeaderName::Via, "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKin1")
        .unwrap()
        .with_header(HeaderName::MaxForwards, "70")
        .unwrap()
        .with_header(HeaderName::From, "\"Someone\" <sip:0400111222@sip.carrier.test>;tag=in1")
        .unwrap()
        .with_header(HeaderName::To, "<sip:0290000000@sip.carrier.test>")
        .unwrap()
        .with_header(HeaderName::CallId, "carrier-in-1")
        .unwrap()
        .with_header(HeaderName::CSeq, "1 INVITE")
        .unwrap()
        .with_header(HeaderName::Contact, "<sip:gw@203.0.113.10:5060>")
        .unwrap()
        .with_header(HeaderName::PAssertedIdentity, "\"Ann Caller\" <sip:0400999888@sip.carrier.test>")
        .unwrap();
    h.send(CARRIER, &inv);
    let out = h.out();
    assert!(only(&out, |m| is_status(m, 407)).is_empty(), "the carrier is trusted");
    let call = incoming.try_recv().expect("handed to the flow runner");
    assert_eq!(call.dialled, "+61290000000");
    assert_eq!(call.caller_id_num, "+61400999888", "P-Asserted-Identity, made E.164");
    assert_eq!(call.caller_id_name.as_deref(), Some("Ann Caller"));
    assert_eq!(call.trunk_id, 20);
    // the same INVITE from elsewhere is an ordinary request: challenged
    let mut fake = inv.clone();
    fake.set_header(HeaderName::CallId, "impostor").unwrap();
    fake.set_header(HeaderName::Via, "SIP/2.0/UDP 198.18.0.9:5060;branch=z9hG4bKfake").unwrap();
    h.send("198.18.0.9:5060", &fake);
    assert_eq!(only(&h.out(), |m| is_status(m, 407)).len(), 1);
    assert!(incoming.try_recv().is_err());
}

// ----- transfer -----

/// Alice (caller) ↔ Bob bridged, Dave (104) registered: returns the phones, Bob's leg INVITE
/// and the 200 Alice got.
fn bridged_with_dave(h: &mut H) -> (Phone, Phone, Phone, Message, Message) {
    let mut dave = Phone::new("dave", "dave-pw", "10.0.0.24:5060");
    h.register(&mut dave);
    let (mut alice, bob, _inv_a, inv_b) = alice_calls_bob(h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv_b, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200)).into_iter().find(|(d, _)| d.to_string() == "10.0.0.5:5060").unwrap().1.clone();
    let ack = alice.ack_for(&ok, false);
    h.send("10.0.0.5:5060", &ack);
    h.out();
    (alice, bob, dave, inv_b, ok)
}

#[test]
fn blind_transfer_by_the_callee_hands_the_caller_to_the_target() {
    let mut h = H::new();
    let (mut alice, mut bob, dave, inv_b, ok) = bridged_with_dave(&mut h);
    let mut refer = bob.in_dialog_as_callee(&inv_b, "b1", Method::Refer);
    refer.push_header(HeaderName::ReferTo, &format!("<sip:104@{REALM}>")).unwrap();
    h.send("10.0.0.21:5060", &refer);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 202)).len(), 1, "{out:?}");
    let notify = only(&out, |m| is_req(m, Method::Notify))[0].1.clone();
    assert_eq!(notify.header(HeaderName::Event), Some("refer"));
    assert!(String::from_utf8_lossy(notify.body()).starts_with("SIP/2.0 100 Trying"));
    let (dest, inv_d) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    assert_eq!(dest.to_string(), "10.0.0.24:5060", "the target rings");
    assert_eq!(inv_d.from().unwrap().uri.user().as_deref(), Some("101"), "the target sees the party it gets");
    h.send("10.0.0.21:5060", &bob.answer(&notify, 200, "x", false));
    h.send("10.0.0.24:5060", &dave.answer(&inv_d, 180, "d1", false));
    let out = h.out();
    let n180 = only(&out, |m| is_req(m, Method::Notify))[0].1.clone();
    assert!(String::from_utf8_lossy(n180.body()).starts_with("SIP/2.0 180 Ringing"));
    // Dave answers: ACKed, Bob hears 200 and gets a BYE, Alice is re-offered
    h.send("10.0.0.24:5060", &dave.answer(&inv_d, 200, "d1", true));
    let out = h.out();
    assert!(out.iter().any(|(d, m)| d.to_string() == "10.0.0.24:5060" && is_req(m, Method::Ack)), "{out:?}");
    let last = only(&out, |m| is_req(m, Method::Notify))[0].1.clone();
    assert!(String::from_utf8_lossy(last.body()).starts_with("SIP/2.0 200 OK"));
    assert!(last.header(HeaderName::SubscriptionState).unwrap().starts_with("terminated"));
    assert!(out.iter().any(|(d, m)| d.to_string() == "10.0.0.21:5060" && is_req(m, Method::Bye)), "the transferor goes");
    let (_, reinv) = out.iter().find(|(d, m)| d.to_string() == "10.0.0.5:5060" && is_req(m, Method::Invite)).expect("Alice re-INVITEd").clone();
    h.send("10.0.0.5:5060", &alice.answer(&reinv, 200, "x", true));
    assert!(h.out().iter().any(|(d, m)| d.to_string() == "10.0.0.5:5060" && is_req(m, Method::Ack)));
    // Bob's own BYE on the retired dialog: 200, the call goes on
    let bye = bob.in_dialog_as_callee(&inv_b, "b1", Method::Bye);
    h.send("10.0.0.21:5060", &bye);
    assert_eq!(only(&h.out(), |m| is_status(m, 200)).len(), 1);
    assert_eq!(h.shared.calls.len(), 1);
    // in-dialog requests from Alice now reach Dave
    let info = alice.in_dialog_as_caller(&ok, Method::Message);
    h.send("10.0.0.5:5060", &info);
    assert!(h.out().iter().any(|(d, m)| d.to_string() == "10.0.0.24:5060" && is_req(m, Method::Message)));
    // Dave hangs up: Alice gets the BYE, the CDR records the transfer
    let bye = Message::request(Method::Bye, inv_d.contact().unwrap().uri_str)
        .unwrap()
        .with_header(HeaderName::Via, "SIP/2.0/UDP 10.0.0.24:5060;branch=z9hG4bKdbye")
        .unwrap()
        .with_header(HeaderName::MaxForwards, "70")
        .unwrap()
        .with_header(HeaderName::From, &format!("{};tag=d1", inv_d.header(HeaderName::To).unwrap()))
        .unwrap()
        .with_header(HeaderName::To, inv_d.header(HeaderName::From).unwrap())
        .unwrap()
        .with_header(HeaderName::CallId, inv_d.call_id().unwrap())
        .unwrap()
        .with_header(HeaderName::CSeq, "9 BYE")
        .unwrap();
    h.send("10.0.0.24:5060", &bye);
    let out = h.out();
    assert!(out.iter().any(|(d, m)| d.to_string() == "10.0.0.5:5060" && is_req(m, Method::Bye)), "{out:?}");
    assert!(h.shared.calls.is_empty());
    let end = h.ops.iter().rev().find_map(|o| match o {
        PersistOp::CdrEnd { end, .. } => Some(end.clone()),
        _ => None,
    });
    let transfers = end.unwrap().transfers.unwrap();
    assert_eq!(transfers[0]["kind"], "blind");
    assert_eq!(transfers[0]["to"], "104");
}

#[test]
fn a_transfer_to_someone_busy_fails_and_the_call_stays() {
    let mut h = H::new();
    let (_alice, mut bob, dave, inv_b, _ok) = bridged_with_dave(&mut h);
    let mut refer = bob.in_dialog_as_callee(&inv_b, "b1", Method::Refer);
    refer.push_header(HeaderName::ReferTo, &format!("<sip:104@{REALM}>")).unwrap();
    h.send("10.0.0.21:5060", &refer);
    let out = h.out();
    let (_, inv_d) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    h.send("10.0.0.24:5060", &dave.answer(&inv_d, 486, "d1", false));
    let out = h.out();
    let last = only(&out, |m| is_req(m, Method::Notify)).last().unwrap().1.clone();
    assert!(String::from_utf8_lossy(last.body()).starts_with("SIP/2.0 486"), "{last}");
    assert!(only(&out, |m| is_req(m, Method::Bye)).is_empty(), "nobody is hung up");
    assert_eq!(h.shared.calls.len(), 1);
    // a REFER to nobody registered, and one from a call not answered yet
    let mut refer = bob.in_dialog_as_callee(&inv_b, "b1", Method::Refer);
    refer.push_header(HeaderName::ReferTo, &format!("<sip:102@{REALM}>")).unwrap();
    refer.set_header(HeaderName::CallId, inv_b.call_id().unwrap()).unwrap();
    h.send("10.0.0.21:5060", &refer);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 202)).len(), 1);
}

#[test]
fn blind_transfer_by_the_caller_puts_the_target_in_its_place() {
    let mut h = H::new();
    let (mut alice, bob, dave, inv_b, ok) = bridged_with_dave(&mut h);
    let mut refer = alice.in_dialog_as_caller(&ok, Method::Refer);
    refer.push_header(HeaderName::ReferTo, &format!("<sip:104@{REALM}>")).unwrap();
    refer.push_header(HeaderName::Contact, "<sip:alice@10.0.0.5:5060>").unwrap();
    h.send("10.0.0.5:5060", &refer);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 202)).len(), 1, "{out:?}");
    let (_, inv_d) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
    assert_eq!(inv_d.from().unwrap().uri.user().as_deref(), Some("102"), "Dave sees Bob, whom he gets");
    h.send("10.0.0.24:5060", &dave.answer(&inv_d, 200, "d1", true));
    let out = h.out();
    assert!(out.iter().any(|(d, m)| d.to_string() == "10.0.0.5:5060" && is_req(m, Method::Bye)), "Alice goes: {out:?}");
    let (_, reinv) = out.iter().find(|(d, m)| d.to_string() == "10.0.0.21:5060" && is_req(m, Method::Invite)).expect("Bob re-INVITEd").clone();
    h.send("10.0.0.21:5060", &bob.answer(&reinv, 200, "b1", true));
    h.out();
    // Bob hangs up: Dave (now the caller's side) gets the BYE, not Alice
    let mut bob2 = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    bob2.n = 50;
    let bye = bob2.in_dialog_as_callee(&inv_b, "b1", Method::Bye);
    h.send("10.0.0.21:5060", &bye);
    let out = h.out();
    assert!(out.iter().any(|(d, m)| d.to_string() == "10.0.0.24:5060" && is_req(m, Method::Bye)), "{out:?}");
    assert!(!out.iter().any(|(d, m)| d.to_string() == "10.0.0.5:5060" && is_req(m, Method::Bye)));
    assert!(h.shared.calls.is_empty());
}

#[test]
fn attended_transfer_with_replaces_moves_the_consulted_party_into_the_call() {
    let mut h = H::new();
    // call 1: Alice → Bob; call 2: Bob (a second line) consults Dave
    let (mut alice, mut bob, dave, inv_b, ok) = bridged_with_dave(&mut h);
    let mut bob2 = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    bob2.call_id = "consult-1".into();
    bob2.tag = "bc".into();
    bob2.call(&mut h, "104", true);
    let out = h.out();
    let (_, inv_d) = only(&out, |m| is_req(m, Method::Invite)).into_iter().find(|(d, _)| d.to_string() == "10.0.0.24:5060").unwrap().clone();
    h.send("10.0.0.24:5060", &dave.answer(&inv_d, 200, "d1", true));
    let out = h.out();
    let ok2 = only(&out, |m| is_status(m, 200)).into_iter().find(|(_, m)| m.call_id() == Some("consult-1")).unwrap().1.clone();
    let ack2 = bob2.ack_for(&ok2, false);
    h.send("10.0.0.21:5060", &ack2);
    h.out();
    assert_eq!(h.shared.calls.len(), 2);
    let pbx_tag = ok2.to().unwrap().tag().unwrap().to_owned();
    let replaces = format!("consult-1%3Bto-tag%3D{pbx_tag}%3Bfrom-tag%3Dbc");

    // the attacker's cases: Alice names Bob's consultation (not her call), a guessed tag
    let mut steal = alice.in_dialog_as_caller(&ok, Method::Refer);
    steal.push_header(HeaderName::ReferTo, &format!("<sip:104@{REALM}?Replaces={replaces}>")).unwrap();
    h.send("10.0.0.5:5060", &steal);
    assert_eq!(only(&h.out(), |m| is_status(m, 403)).len(), 1, "only the consultation's own party may join it");
    let mut guess = bob.in_dialog_as_callee(&inv_b, "b1", Method::Refer);
    guess.push_header(HeaderName::ReferTo, &format!("<sip:104@{REALM}?Replaces=consult-1%3Bto-tag%3Dguess%3Bfrom-tag%3Dbc>")).unwrap();
    h.send("10.0.0.21:5060", &guess);
    assert_eq!(only(&h.out(), |m| is_status(m, 481)).len(), 1, "every identifier must match");
    assert_eq!(h.shared.calls.len(), 2, "nothing moved");

    // Bob transfers call 1 to Dave, replacing the consultation
    let mut refer = bob.in_dialog_as_callee(&inv_b, "b1", Method::Refer);
    refer.push_header(HeaderName::ReferTo, &format!("<sip:104@{REALM}?Replaces={replaces}>")).unwrap();
    h.send("10.0.0.21:5060", &refer);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 202)).len(), 1, "{out:?}");
    // Dave is re-INVITEd on his own dialog, Bob's consultation line is hung up
    let (_, reinv_d) = out.iter().find(|(d, m)| d.to_string() == "10.0.0.24:5060" && is_req(m, Method::Invite)).expect("Dave re-INVITEd").clone();
    assert_eq!(reinv_d.call_id(), inv_d.call_id(), "on Dave's dialog");
    assert!(out.iter().any(|(_, m)| is_req(m, Method::Bye) && m.call_id() == Some("consult-1")), "the consultation ends: {out:?}");
    assert_eq!(h.shared.calls.len(), 1);
    h.send("10.0.0.24:5060", &dave.answer(&reinv_d, 200, "d1", true));
    let out = h.out();
    let last = only(&out, |m| is_req(m, Method::Notify)).last().expect("final NOTIFY").1.clone();
    assert!(String::from_utf8_lossy(last.body()).starts_with("SIP/2.0 200 OK"), "{last}");
    assert!(out.iter().any(|(_, m)| is_req(m, Method::Bye) && m.call_id() == inv_b.call_id()), "Bob's first line goes: {out:?}");
    let (_, reinv_a) = out.iter().find(|(d, m)| d.to_string() == "10.0.0.5:5060" && is_req(m, Method::Invite)).expect("Alice re-offered").clone();
    h.send("10.0.0.5:5060", &alice.answer(&reinv_a, 200, "x", true));
    h.out();
    // Alice and Dave are one call now: Alice's BYE reaches Dave
    let bye = alice.in_dialog_as_caller(&ok, Method::Bye);
    h.send("10.0.0.5:5060", &bye);
    let out = h.out();
    assert!(out.iter().any(|(d, m)| d.to_string() == "10.0.0.24:5060" && is_req(m, Method::Bye)), "{out:?}");
    assert!(h.shared.calls.is_empty());
    let end = h.ops.iter().rev().find_map(|o| match o {
        PersistOp::CdrEnd { end, .. } if end.transfers.is_some() => Some(end.clone()),
        _ => None,
    });
    let transfers = end.expect("the first call's CDR").transfers.unwrap();
    assert_eq!(transfers[0]["kind"], "attended");
    assert_eq!(transfers[0]["by"], "callee");
}

// ----- INVITE with Replaces (call pull) -----

/// Alice (10.0.0.5) ↔ Bob bridged with anchored media: Alice's and Bob's phones, Bob's leg
/// INVITE and the 200 Alice got.
fn bridged_anchored(h: &mut H) -> (Phone, Phone, Message, Message) {
    let (mut alice, bob, _inv_a, inv_b) = alice_calls_bob(h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv_b, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200)).into_iter().find(|(d, _)| d.to_string() == "10.0.0.5:5060").unwrap().1.clone();
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.out();
    (alice, bob, inv_b, ok)
}

/// The Replaces value naming the dialog of Alice's first call (as her desk phone sees it).
fn alices_dialog(ok: &Message) -> String {
    format!("{};to-tag={};from-tag={}", ok.call_id().unwrap(), ok.to().unwrap().tag().unwrap(), ok.from().unwrap().tag().unwrap())
}

/// `p` sends an authenticated INVITE to `to` with these Replaces headers and this SDP (none
/// when empty); what FlowPBX sent back, and the INVITE.
fn invite_replacing(h: &mut H, p: &mut Phone, to: &str, replaces: &[&str], sdp: &str) -> (Vec<(SocketAddr, Message)>, Message) {
    let build = |p: &mut Phone, ch: Option<&Challenge>| {
        let mut m = p.invite(to, ch, false);
        for r in replaces {
            m.push_header_named("Replaces", r).unwrap();
        }
        if !sdp.is_empty() {
            m.set_body(Some("application/sdp"), bytes::Bytes::from(sdp.to_owned())).unwrap();
        }
        m
    };
    let inv = build(p, None);
    h.send(&p.addr.clone(), &inv);
    let ch = h.out().iter().find_map(|(_, m)| challenge_in(m)).expect("407 challenge");
    let mut inv = build(p, Some(&ch));
    inv.set_header(HeaderName::CSeq, &format!("{} INVITE", p.cseq)).unwrap();
    h.send(&p.addr.clone(), &inv);
    (h.out(), inv)
}

const SDP_MOBILE: &str = "v=0\r\no=- 7 7 IN IP4 10.0.0.6\r\ns=-\r\nc=IN IP4 10.0.0.6\r\nt=0 0\r\nm=audio 4100 RTP/AVP 0\r\n";

#[test]
fn invite_with_replaces_pulls_the_callers_dialog_to_another_device() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let (mut alice, mut bob, inv_b, ok) = bridged_anchored(&mut h);
    media.take();
    let mut mobile = Phone::new("alice", "alice-pw", "10.0.0.6:5060");
    mobile.call_id = "pull-1".into();
    mobile.tag = "m1".into();
    let (out, inv_m) = invite_replacing(&mut h, &mut mobile, "102", &[&alices_dialog(&ok)], SDP_MOBILE);
    // the mobile is answered from side A's port; the desk phone's dialog gets a BYE
    let (dest, ok_m) = only(&out, |m| is_status(m, 200)).into_iter().find(|(_, m)| m.call_id() == Some("pull-1")).expect("200 to the mobile").clone();
    assert_eq!(dest.to_string(), "10.0.0.6:5060");
    let answer = body_of(&ok_m);
    assert!(answer.contains("c=IN IP4 192.0.2.1\r\n") && answer.contains("m=audio 20000 "), "{answer}");
    let byes: Vec<_> = only(&out, |m| is_req(m, Method::Bye));
    assert_eq!(byes.len(), 1, "{out:?}");
    assert_eq!(byes[0].0.to_string(), "10.0.0.5:5060");
    assert_eq!(byes[0].1.call_id(), ok.call_id(), "on the replaced dialog");
    assert!(!out.iter().any(|(d, _)| d.to_string() == "10.0.0.21:5060"), "Bob sees nothing: {out:?}");
    assert!(media.take().iter().any(|l| l.starts_with("remote A 10.0.0.6:4100")), "side A's media now goes to the mobile");
    h.send("10.0.0.6:5060", &mobile.ack_for(&ok_m, false));
    h.out();
    assert_eq!(h.shared.calls.len(), 1);
    assert_eq!(h.shared.calls.iter().next().map(|c| c.call_id.clone()).as_deref(), inv_m.call_id());
    // the desk phone's dialog is over: its BYE ends nothing
    h.send("10.0.0.5:5060", &alice.in_dialog_as_caller(&ok, Method::Bye));
    assert_eq!(only(&h.out(), |m| is_status(m, 481)).len(), 1);
    assert_eq!(h.shared.calls.len(), 1);
    // Bob hangs up: the mobile gets the BYE; the call's CDR ends once and records the pull
    h.send("10.0.0.21:5060", &bob.in_dialog_as_callee(&inv_b, "b1", Method::Bye));
    let out = h.out();
    let byes = only(&out, |m| is_req(m, Method::Bye));
    assert_eq!(byes.len(), 1, "{out:?}");
    assert_eq!((byes[0].0.to_string(), byes[0].1.call_id()), ("10.0.0.6:5060".to_owned(), Some("pull-1")));
    assert!(h.shared.calls.is_empty());
    let ends: Vec<_> = h.ops.iter().filter_map(|o| if let PersistOp::CdrEnd { end, .. } = o { Some(end.clone()) } else { None }).collect();
    assert_eq!(ends.len(), 1);
    let transfers = ends[0].transfers.clone().unwrap();
    assert_eq!(transfers[0]["kind"], "replaces");
    assert_eq!(transfers[0]["replaced_call"], ok.call_id().unwrap());
}

#[test]
fn invite_with_replaces_refuses_strangers_guesses_and_what_it_cannot_do() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let (_alice, _bob, _inv_b, ok) = bridged_anchored(&mut h);
    let dialog = alices_dialog(&ok);
    let status_of = |out: &[(SocketAddr, Message)]| out.iter().find_map(|(_, m)| m.status().filter(|s| *s >= 200)).unwrap();
    let mut mobile = Phone::new("alice", "alice-pw", "10.0.0.6:5060");
    // another extension naming Alice's dialog, with every identifier right
    let mut thief = Phone::new("bob", "bob-pw", "10.0.0.66:5060");
    let (out, _) = invite_replacing(&mut h, &mut thief, "102", &[&dialog], SDP_MOBILE);
    assert_eq!(status_of(&out), 403, "{out:?}");
    // a guessed tag, an unknown Call-ID
    let guessed = format!("{};to-tag=guess;from-tag={}", ok.call_id().unwrap(), ok.from().unwrap().tag().unwrap());
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &[&guessed], SDP_MOBILE);
    assert_eq!(status_of(&out), 481);
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &["nope;to-tag=a;from-tag=b"], SDP_MOBILE);
    assert_eq!(status_of(&out), 481);
    // early-only on a confirmed dialog
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &[&format!("{dialog};early-only")], SDP_MOBILE);
    assert_eq!(status_of(&out), 486);
    // unreadable, twice, an offer FlowPBX cannot answer
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &["x;to-tag"], SDP_MOBILE);
    assert_eq!(status_of(&out), 400);
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &[&dialog, &dialog], SDP_MOBILE);
    assert_eq!(status_of(&out), 400);
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &[&dialog], &SDP_MOBILE.replace("RTP/AVP 0", "RTP/AVP 98"));
    assert_eq!(status_of(&out), 488);
    // nothing moved: no BYE went out, the call and its media are as they were
    assert_eq!(h.shared.calls.len(), 1);
    assert!(!media.take().iter().any(|l| l.contains("10.0.0.6")), "the media never heard the refused offers");

    // Alice as the callee (side B) of a call from Bob: not supported, said so
    let mut h = H::with_media(FakeMedia::default());
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    h.register(&mut alice);
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    bob.call(&mut h, "101", true);
    let out = h.out();
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    h.send("10.0.0.5:5060", &alice.answer(&inv, 200, "a1", true));
    h.out();
    let b_side = format!("{};to-tag=a1;from-tag={}", inv.call_id().unwrap(), inv.from_tag().unwrap());
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &[&b_side], SDP_MOBILE);
    let refusal = out.iter().find(|(_, m)| m.status() == Some(501)).expect("501").1.clone();
    assert!(refusal.reason().unwrap_or("").contains("Not Supported"), "{refusal}");
    assert!(only(&out, |m| is_req(m, Method::Bye)).is_empty());

    // a call without anchored media
    let mut h = H::new();
    let (_alice, _bob, _inv_b, ok) = bridged_anchored(&mut h);
    let (out, _) = invite_replacing(&mut h, &mut mobile, "102", &[&alices_dialog(&ok)], SDP_MOBILE);
    assert_eq!(status_of(&out), 501);
    assert_eq!(h.shared.calls.len(), 1);
}

// ----- follow-me -----

fn follow_me(simultaneous: bool, confirm: bool, numbers: &[(&str, u64, u64)]) -> crate::directory::FollowMe {
    crate::directory::FollowMe {
        simultaneous,
        confirm,
        numbers: numbers
            .iter()
            .map(|&(n, delay, timeout)| crate::directory::FollowMeTarget {
                number: n.into(),
                delay: Duration::from_secs(delay),
                timeout: Duration::from_secs(timeout),
            })
            .collect(),
    }
}

/// The outbound directory with Bob's follow-me set (he rings 5 s), anchored in `media`.
fn follow_me_harness(fm: crate::directory::FollowMe, media: FakeMedia) -> H {
    let d = outbound_directory_with(
        |_, _, _| {},
        |bob| {
            bob.ring_timeout = 5;
            bob.follow_me = Some(fm);
        },
    );
    let mut h = H::build(|_| {}, Some(Box::new(media)));
    h.core.handle_command(h.now, crate::core::Command::Directory(Arc::new(d)));
    h.advance(Duration::ZERO);
    h.out();
    h
}

fn digit(h: &mut H, leg: media::LegId, d: char) {
    let digit = media::DigitEvent { leg, digit: d, duration: Duration::from_millis(120), source: media::DtmfSource::Rfc4733 };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Dtmf { call: crate::CallKey::from_raw(1), digit }));
}

fn carrier_200(inv: &Message) -> Message {
    carrier_answer(inv, 200, |r| {
        r.push_header(HeaderName::Contact, "<sip:mobile@203.0.113.10>").unwrap();
        r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
    })
}

#[test]
fn sequential_follow_me_rings_the_desk_then_the_mobile_which_must_press_1() {
    let media = FakeMedia::default();
    let mut h = follow_me_harness(follow_me(false, true, &[("0290001234", 0, 30)]), media.clone());
    let (mut alice, bob, _, desk_inv) = alice_calls_bob(&mut h, true);
    assert_eq!(desk_inv.uri_str(), Some("sip:bob@10.0.0.21:5060"), "the desk phone first");
    h.send("10.0.0.21:5060", &bob.answer(&desk_inv, 180, "b1", false));
    h.out();
    media.take();
    // the desk rings its 5 s: then it stops and the mobile rings, through the route
    h.advance(Duration::from_secs(5));
    let out = h.out();
    let cancels = only(&out, |m| is_req(m, Method::Cancel));
    assert_eq!(cancels.len(), 1, "{out:?}");
    assert_eq!(cancels[0].0.to_string(), "10.0.0.21:5060");
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 1, "{out:?}");
    let (dest, mob) = invs[0].clone();
    assert_eq!(dest.to_string(), CARRIER);
    assert_eq!(mob.uri_str(), Some("sip:0290001234@sip.carrier.test"));
    assert_eq!(mob.from().unwrap().uri.user().as_deref(), Some("101"), "the mobile sees who calls");
    // the carrier's 183 with announcements is not relayed as early media
    h.send(
        CARRIER,
        &carrier_answer(&mob, 183, |r| {
            r.push_header(HeaderName::Contact, "<sip:mobile@203.0.113.10>").unwrap();
            r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }),
    );
    let out = h.out();
    let ringing: Vec<_> = only(&out, |m| m.status().is_some_and(|c| (180..190).contains(&c)));
    assert_eq!(ringing.len(), 1);
    assert_eq!(ringing[0].1.status(), Some(180), "plain ringing, no carrier media");
    assert!(ringing[0].1.body().is_empty());
    // it answers (a voicemail would too): acknowledged, asked to press 1, not put through
    h.send(CARRIER, &carrier_200(&mob));
    let out = h.out();
    assert_eq!(only(&out, |m| is_req(m, Method::Ack)).len(), 1);
    assert!(only(&out, |m| is_status(m, 200)).is_empty(), "the caller is not answered yet: {out:?}");
    let log = media.take();
    assert!(log.iter().any(|l| l == "unbridge"), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("remote B 10.0.0.1:4000")), "{log:?}");
    assert!(log.iter().any(|l| l == "play B follow-me-accept x5"), "{log:?}");
    // the caller's digits and other keys change nothing
    digit(&mut h, media::LegId::A, '1');
    digit(&mut h, media::LegId::B, '2');
    assert!(only(&h.out(), |m| is_status(m, 200)).is_empty());
    // 1: put through
    digit(&mut h, media::LegId::B, '1');
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200));
    assert_eq!(ok.len(), 1, "{out:?}");
    assert_eq!(ok[0].0.to_string(), "10.0.0.5:5060");
    let log = media.take();
    assert_eq!(log.first().map(String::as_str), Some("stop B"), "{log:?}");
    assert!(log.iter().any(|l| l == "bridge"), "{log:?}");
    assert!(cdr_ops(&h.ops).contains(&"answer".to_string()));
    // the call runs between alice and the mobile: alice's BYE reaches the carrier
    let ok = ok[0].1.clone();
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.send("10.0.0.5:5060", &alice.in_dialog_as_caller(&ok, Method::Bye));
    let out = h.out();
    assert_eq!(only(&out, |m| is_req(m, Method::Bye))[0].0.to_string(), CARRIER);
}

#[test]
fn a_number_that_does_not_press_1_is_hung_up_and_the_next_rings() {
    let media = FakeMedia::default();
    let mut h = follow_me_harness(follow_me(false, true, &[("0290001234", 0, 30), ("0290005678", 0, 30)]), media.clone());
    let (_alice, _bob, _, _) = alice_calls_bob(&mut h, true);
    h.advance(Duration::from_secs(5));
    let out = h.out();
    let (_, first) = only(&out, |m| is_req(m, Method::Invite) && m.uri_str() == Some("sip:0290001234@sip.carrier.test"))[0].clone();
    h.send(CARRIER, &carrier_200(&first));
    h.out();
    // 20 s of prompt and no 1: the first number is hung up, the second rings
    h.advance(Duration::from_secs(20));
    let out = h.out();
    let byes = only(&out, |m| is_req(m, Method::Bye));
    assert!(!byes.is_empty() && byes.iter().all(|(_, b)| b.call_id() == first.call_id()), "{out:?}");
    let invs = only(&out, |m| is_req(m, Method::Invite) && m.uri_str() == Some("sip:0290005678@sip.carrier.test"));
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].1.uri_str(), Some("sip:0290005678@sip.carrier.test"));
    assert!(media.take().iter().any(|l| l == "stop B"), "the prompt stops with it");
    // the second one answers and hangs up before pressing anything: the ring is over
    let second = invs[0].1.clone();
    h.send(
        CARRIER,
        &carrier_answer(&second, 200, |r| {
            r.push_header(HeaderName::Contact, "<sip:mobile2@203.0.113.10>").unwrap();
            r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }),
    );
    h.out();
    let mut bye = Message::request(Method::Bye, "sip:flowpbx@192.0.2.1")
        .unwrap()
        .with_header(HeaderName::Via, "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKcarrierbye")
        .unwrap()
        .with_header(HeaderName::MaxForwards, "70")
        .unwrap()
        .with_header(HeaderName::From, &format!("{};tag=carrier-tag", second.header(HeaderName::To).unwrap()))
        .unwrap()
        .with_header(HeaderName::To, second.header(HeaderName::From).unwrap())
        .unwrap()
        .with_header(HeaderName::CallId, second.call_id().unwrap())
        .unwrap()
        .with_header(HeaderName::CSeq, "1 BYE")
        .unwrap();
    bye.push_header(HeaderName::Contact, "<sip:mobile2@203.0.113.10>").unwrap();
    h.send(CARRIER, &bye);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Bye).len(), 1, "{out:?}");
    let refused = only(&out, |m| is_status(m, 480));
    assert_eq!(refused.len(), 1, "nobody took it: the caller hears no answer: {out:?}");
    assert_eq!(refused[0].0.to_string(), "10.0.0.5:5060");
    assert_eq!(cdr_ops(&h.ops).last().unwrap(), "end no_answer no_answer");
}

#[test]
fn simultaneous_follow_me_rings_all_and_a_desk_answer_beats_a_number_confirming() {
    let media = FakeMedia::default();
    let mut h = follow_me_harness(follow_me(true, true, &[("0290001234", 0, 30), ("0290005678", 3, 30)]), media.clone());
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(&mut h, "102", true);
    let out = h.out();
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 2, "the desk and the first number at once: {out:?}");
    let desk = invs.iter().find(|(d, _)| d.to_string() == "10.0.0.21:5060").unwrap().1.clone();
    let mob = invs.iter().find(|(d, _)| d.to_string() == CARRIER).unwrap().1.clone();
    h.send("10.0.0.21:5060", &bob.answer(&desk, 180, "b1", false));
    h.send(CARRIER, &carrier_answer(&mob, 180, |_| {}));
    h.out();
    // the second number after its 3 s delay
    h.advance(Duration::from_secs(3));
    let out = h.out();
    let late = only(&out, |m| is_req(m, Method::Invite) && m.uri_str() != mob.uri_str());
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].1.uri_str(), Some("sip:0290005678@sip.carrier.test"));
    let mob2 = late[0].1.clone();
    // the first number answers and confirms slowly; the second answers meanwhile: hung up
    h.send(CARRIER, &carrier_200(&mob));
    h.out();
    h.send(
        CARRIER,
        &carrier_answer(&mob2, 200, |r| {
            r.push_header(HeaderName::Contact, "<sip:mobile2@203.0.113.10>").unwrap();
            r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        }),
    );
    let out = h.out();
    let byes = only(&out, |m| is_req(m, Method::Bye));
    assert_eq!(byes.len(), 1, "one number confirms at a time: {out:?}");
    assert_eq!(byes[0].1.call_id(), mob2.call_id());
    // bob picks up at his desk: he wins, the number confirming is hung up
    h.send("10.0.0.21:5060", &bob.answer(&desk, 200, "b1", true));
    let out = h.out();
    let byes = only(&out, |m| is_req(m, Method::Bye));
    assert_eq!(byes.len(), 1, "{out:?}");
    assert_eq!(byes[0].1.call_id(), mob.call_id());
    let ok = only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Invite);
    assert_eq!(ok.iter().filter(|(d, _)| d.to_string() == "10.0.0.5:5060").count(), 1);
    assert!(media.take().iter().any(|l| l == "stop B"), "the prompt does not play to bob");
    // a 1 on the callee side is bob's now: relayed to alice like any digit, nothing else
    digit(&mut h, media::LegId::B, '1');
    let out = h.out();
    assert!(out.iter().all(|(d, m)| is_req(m, Method::Info) && d.to_string() == "10.0.0.5:5060"), "{out:?}");
}

#[test]
fn follow_me_numbers_keep_the_extensions_classes() {
    // bob may not call international numbers; his follow-me cannot either
    let media = FakeMedia::default();
    let mut h = follow_me_harness(follow_me(false, true, &[("0011442079460000", 0, 30)]), media);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(&mut h, "102", true);
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty(), "{out:?}");
    assert_eq!(only(&out, |m| is_status(m, 480)).len(), 1, "no desk registered, the number not allowed: unavailable");
}

#[test]
fn follow_me_to_an_internal_number_rings_its_phones_without_confirmation() {
    let media = FakeMedia::default();
    let mut h = follow_me_harness(follow_me(false, true, &[("101", 0, 30)]), media.clone());
    // nobody at bob's desk: alice's own extension is his follow-me number; her second phone rings
    let mut alice2 = Phone::new("alice", "alice-pw", "10.0.0.6:5060");
    h.register(&mut alice2);
    let mut caller = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    caller.call(&mut h, "102", true);
    let out = h.out();
    let invs = only(&out, |m| is_req(m, Method::Invite));
    assert_eq!(invs.len(), 1, "{out:?}");
    assert_eq!(invs[0].0.to_string(), "10.0.0.6:5060");
    h.send("10.0.0.6:5060", &alice2.answer(&invs[0].1, 200, "a2", true));
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Invite).len(), 1, "put through at once");
    assert!(!media.take().iter().any(|l| l.starts_with("play")));
}

// ----- SIP over TLS -----

impl H {
    fn send_tls(&mut self, from: &str, msg: &Message) {
        let p = Peer { transport: Transport::Tls, addr: from.parse().unwrap() };
        self.core.handle_frame(self.now, p, Ok(msg.clone()));
        self.core.take_ops(&mut self.ops);
    }

    fn out_peers(&mut self) -> Vec<(Peer, Message)> {
        let mut v = Vec::new();
        while let Some(t) = self.core.poll_transmit() {
            v.push((t.dest, Message::parse(&t.payload).expect("we send what we can parse")));
        }
        self.core.take_ops(&mut self.ops);
        v
    }
}

/// A request of `p` over TLS with a `sips:` Contact.
fn over_tls(mut m: Message, p: &Phone) -> Message {
    let via = m.header(HeaderName::Via).unwrap().replace("SIP/2.0/UDP", "SIP/2.0/TLS");
    m.set_header(HeaderName::Via, &via).unwrap();
    m.set_header(HeaderName::Contact, &format!("<sips:{}@{}>", p.user, p.addr)).unwrap();
    m
}

#[test]
fn a_sips_call_over_tls_rides_the_registration_connection_with_sips_contacts() {
    let mut h = H::new();
    // Bob registers over TLS (a sips: contact) from his connection's address
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:40001");
    let r = over_tls(bob.register(None), &bob);
    h.send_tls("10.0.0.21:40001", &r);
    let out = h.out_peers();
    assert_eq!(out[0].0.transport, Transport::Tls, "answered down the connection");
    let ch = challenge_in(&out[0].1).expect("a challenge");
    let r = over_tls(bob.register(Some(&ch)), &bob);
    h.send_tls("10.0.0.21:40001", &r);
    let out = h.out_peers();
    assert_eq!(out[0].1.status(), Some(200), "{}", out[0].1);
    let b = h.shared.bindings.get(&2).unwrap()[0].clone();
    assert_eq!((b.source.transport, b.next_hop), (Transport::Tls, Peer { transport: Transport::Tls, addr: "10.0.0.21:40001".parse().unwrap() }));

    // Alice calls sips:102 over TLS
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:40002");
    let sips_invite = |alice: &mut Phone, ch: Option<&Challenge>| {
        let uri = format!("sips:102@{REALM}");
        let mut m = over_tls(alice.base(Method::Invite, &uri, &format!("<{uri}>")), alice);
        if let Some(ch) = ch {
            m.push_header(HeaderName::ProxyAuthorization, &ch.authorization("INVITE", &uri, "alice", "alice-pw", "cn", 1)).unwrap();
        }
        m.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        m
    };
    let inv = sips_invite(&mut alice, None);
    h.send_tls("10.0.0.5:40002", &inv);
    let ch = h.out_peers().iter().find_map(|(_, m)| challenge_in(m)).expect("407");
    let mut inv_a = sips_invite(&mut alice, Some(&ch));
    inv_a.set_header(HeaderName::CSeq, &format!("{} INVITE", alice.cseq)).unwrap();
    h.send_tls("10.0.0.5:40002", &inv_a);
    let out = h.out_peers();
    let (to, inv_b) = out.iter().find(|(_, m)| is_req(m, Method::Invite)).expect("an INVITE to Bob").clone();
    // down Bob's registration connection, to his sips: contact, with a sips: Contact of ours
    assert_eq!(to, Peer { transport: Transport::Tls, addr: "10.0.0.21:40001".parse().unwrap() });
    assert_eq!(inv_b.uri_str(), Some("sips:bob@10.0.0.21:40001"));
    assert!(inv_b.header(HeaderName::Via).unwrap().starts_with("SIP/2.0/TLS 192.0.2.1:5061;"), "{inv_b}");
    assert_eq!(inv_b.contact().unwrap().uri_str, "sips:101@192.0.2.1:5061", "{inv_b}");
    // Bob answers: Alice's 200 carries a sips: Contact too (RFC 3261 12.1.1)
    h.send_tls("10.0.0.21:40001", &bob.answer(&inv_b, 200, "bt", true));
    let out = h.out_peers();
    let (to, ok) = out.iter().find(|(_, m)| is_status(m, 200)).expect("200 to Alice").clone();
    assert_eq!(to.transport, Transport::Tls);
    assert!(ok.contact().unwrap().uri_str.starts_with("sips:102@192.0.2.1:5061"), "{ok}");
}

#[test]
fn a_sips_call_never_rings_a_contact_reached_in_clear() {
    let mut h = H::new();
    // Bob registered over UDP only
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    // Alice calls sips:102 over TLS: no hop to Bob may be in clear, so 480 and no INVITE
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:40002");
    let uri = format!("sips:102@{REALM}");
    let sips_invite = |alice: &mut Phone, ch: Option<&Challenge>| {
        let mut m = over_tls(alice.base(Method::Invite, &uri, &format!("<{uri}>")), alice);
        if let Some(ch) = ch {
            m.push_header(HeaderName::ProxyAuthorization, &ch.authorization("INVITE", &uri, "alice", "alice-pw", "cn", 1)).unwrap();
        }
        m.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
        m
    };
    let inv = sips_invite(&mut alice, None);
    h.send_tls("10.0.0.5:40002", &inv);
    let ch = h.out_peers().iter().find_map(|(_, m)| challenge_in(m)).expect("407");
    let mut inv_a = sips_invite(&mut alice, Some(&ch));
    inv_a.set_header(HeaderName::CSeq, &format!("{} INVITE", alice.cseq)).unwrap();
    h.send_tls("10.0.0.5:40002", &inv_a);
    let out = h.out_peers();
    assert!(!out.iter().any(|(_, m)| is_req(m, Method::Invite)), "an INVITE went out in clear: {out:?}");
    assert!(out.iter().any(|(p, m)| is_status(m, 480) && p.transport == Transport::Tls), "{out:?}");
    // the same call as sip: rings him
    let mut carol = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let out = call_with_sdp(&mut h, &mut carol, SDP);
    assert_eq!(only(&out, |m| is_req(m, Method::Invite)).len(), 1, "{out:?}");
}

// ----- SRTP (SDES) per leg -----

/// alice (101) and bob (102) with these SRTP policies.
fn srtp_h(media: &FakeMedia, alice: store::SrtpPolicy, bob: store::SrtpPolicy) -> H {
    let mut dir_users = Vec::new();
    let mut a = User::for_test(1, "101", "alice", REALM, "alice-pw");
    a.srtp = alice;
    let mut b = User::for_test(2, "102", "bob", REALM, "bob-pw");
    b.srtp = bob;
    dir_users.push(a);
    dir_users.push(b);
    let dir = Directory::new(REALM, dir_users, vec![], vec![]);
    H::build_in(|_| {}, Some(Box::new(media.clone())), dir)
}

const KEY30: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn sdp_with(proto: &str, crypto: &[String]) -> String {
    let mut s = SDP.replace("RTP/AVP", proto);
    for c in crypto {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    s
}

/// alice's authenticated INVITE to bob with `body` as its SDP; what FlowPBX sent back.
fn call_with_sdp(h: &mut H, alice: &mut Phone, body: &str) -> Vec<(SocketAddr, Message)> {
    let mut inv = alice.invite("102", None, false);
    inv.set_body(Some("application/sdp"), bytes::Bytes::from(body.to_owned())).unwrap();
    h.send("10.0.0.5:5060", &inv);
    let out = h.out();
    let ch = out.iter().find_map(|(_, m)| challenge_in(m)).expect("407 challenge");
    let mut inv = alice.invite("102", Some(&ch), false);
    inv.set_header(HeaderName::CSeq, &format!("{} INVITE", alice.cseq)).unwrap();
    inv.set_body(Some("application/sdp"), bytes::Bytes::from(body.to_owned())).unwrap();
    h.send("10.0.0.5:5060", &inv);
    h.out()
}

fn crypto_lines(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("a=crypto:")).map(str::to_owned).collect()
}

#[test]
fn srtp_required_refuses_a_plain_offer_with_488() {
    let media = FakeMedia::default();
    let mut h = srtp_h(&media, store::SrtpPolicy::Required, store::SrtpPolicy::Off);
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    for body in [
        SDP.to_owned(),
        sdp_with("RTP/SAVP", &[]),
        sdp_with("RTP/SAVP", &[format!("1 F8_128_HMAC_SHA1_80 inline:{KEY30}")]),
        sdp_with("RTP/AVP", &[format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^31|1:4")]),
    ] {
        let out = call_with_sdp(&mut h, &mut alice, &body);
        assert_eq!(only(&out, |m| is_status(m, 488)).len(), 1, "{body}");
        assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty(), "nothing rings");
        let log = media.take();
        assert!(log.iter().all(|l| !l.starts_with("srtp") && !l.starts_with("remote")), "{log:?}");
    }
}

#[test]
fn srtp_phone_to_plain_phone_is_terminated_per_leg() {
    let media = FakeMedia::default();
    let mut h = srtp_h(&media, store::SrtpPolicy::Required, store::SrtpPolicy::Off);
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let theirs = format!("5 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}");
    let gcm = media::CryptoAttribute::generate(6, media::SrtpSuite::AeadAes128Gcm).unwrap().to_string();
    let out = call_with_sdp(&mut h, &mut alice, &sdp_with("RTP/SAVP", &[theirs.clone(), gcm.clone()]));
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    let offer = body_of(&inv);
    assert!(offer.contains("m=audio 20002 RTP/AVP "), "bob (off) is offered plain RTP: {offer}");
    assert!(crypto_lines(&offer).is_empty(), "no keys toward a plain leg: {offer}");
    assert!(!offer.contains(KEY30));
    assert_eq!(media.take(), ["open 1", "srtp A AEAD_AES_128_GCM", "remote A 10.0.0.1:4000 Pcmu te=false SendRecv"], "alice's keys before her remote");

    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    let answer = body_of(&ok);
    assert!(answer.contains("m=audio 20000 RTP/SAVP 0\r\n"), "the answer mirrors alice's profile: {answer}");
    let lines = crypto_lines(&answer);
    assert_eq!(lines.len(), 1, "{answer}");
    let ours = media::CryptoAttribute::parse(&lines[0]).unwrap();
    assert_eq!((ours.tag, ours.suite()), (6, media::SrtpSuite::AeadAes128Gcm), "the best suite offered, under its tag");
    assert_ne!(ours.to_string(), gcm, "FlowPBX's own key, not alice's");
    let log = media.take();
    assert_eq!(log, ["remote B 10.0.0.1:4000 Pcmu te=false SendRecv", "remote A 10.0.0.1:4000 Pcmu te=false SendRecv", "bridge"], "bob stays plain");
    let view = h.shared.calls.iter().next().map(|c| (c.caller_srtp, c.callee_srtp)).unwrap();
    assert_eq!(view, (Some("AEAD_AES_128_GCM"), None));
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.out();

    // alice re-INVITEs with the same key: answered with FlowPBX's same key (contexts kept)
    let mut re = alice.in_dialog_as_caller(&ok, Method::Invite);
    re.set_body(Some("application/sdp"), bytes::Bytes::from(sdp_with("RTP/SAVP", std::slice::from_ref(&gcm)))).unwrap();
    h.send("10.0.0.5:5060", &re);
    let out = h.out();
    let reinv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    assert!(crypto_lines(&body_of(&reinv)).is_empty(), "bob still gets plain");
    assert_eq!(media.take()[0], "srtp A AEAD_AES_128_GCM");
    h.send("10.0.0.21:5060", &bob.answer(&reinv, 200, "b1", true));
    let out = h.out();
    let ok2 = only(&out, |m| is_status(m, 200) && m.cseq().unwrap().method == Method::Invite)[0].1.clone();
    let again = crypto_lines(&body_of(&ok2));
    assert_eq!(again, lines, "the same key again");
    media.take();
    // a re-INVITE dropping crypto is refused; the call stays encrypted
    let mut re = alice.in_dialog_as_caller(&ok, Method::Invite);
    re.set_body(Some("application/sdp"), bytes::Bytes::from(SDP)).unwrap();
    h.send("10.0.0.5:5060", &re);
    let out = h.out();
    assert_eq!(only(&out, |m| is_status(m, 488)).len(), 1);
    assert!(media.take().is_empty());
}

#[test]
fn srtp_required_callee_gets_savp_and_its_answer_is_checked() {
    let media = FakeMedia::default();
    let mut h = srtp_h(&media, store::SrtpPolicy::Optional, store::SrtpPolicy::Required);
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    // alice offers plain: fine for her (optional)
    let out = call_with_sdp(&mut h, &mut alice, SDP);
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    let offer = body_of(&inv);
    assert!(offer.contains("m=audio 20002 RTP/SAVP "), "{offer}");
    let offered = crypto_lines(&offer);
    assert_eq!(offered.len(), 3, "{offer}");
    media.take();
    // bob answers without crypto: he requires SRTP, so the leg fails (BYE) and alice gets 488
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    assert_eq!(only(&out, |m| is_req(m, Method::Bye)).len(), 1, "the unusable answer is hung up");
    assert_eq!(only(&out, |m| is_status(m, 488)).len(), 1);

    // again, bob answers the 80-bit suite with his own key
    let out = call_with_sdp(&mut h, &mut alice, SDP);
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    let offered = crypto_lines(&body_of(&inv));
    media.take();
    let bob_key = media::sdes::answer(offered.iter().map(String::as_str), &[media::SrtpSuite::AesCm128HmacSha1_80]).unwrap();
    let mut ok = bob.answer(&inv, 200, "b2", false);
    ok.set_body(Some("application/sdp"), bytes::Bytes::from(sdp_with("RTP/SAVP", &[bob_key.attribute.to_string()]))).unwrap();
    h.send("10.0.0.21:5060", &ok);
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    let answer = body_of(&ok);
    assert!(answer.contains("RTP/AVP") && crypto_lines(&answer).is_empty(), "alice offered plain and gets plain: {answer}");
    let log = media.take();
    assert_eq!(log[0], "srtp B AES_CM_128_HMAC_SHA1_80", "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("srtp A")), "{log:?}");
}

#[test]
fn srtp_required_trunk_answered_by_a_flow_then_bridged_to_a_plain_answer() {
    // the carrier (trunk 9) requires SRTP; bob (102) optional
    let media = FakeMedia::default();
    let mut bob_user = User::for_test(2, "102", "bob", REALM, "bob-pw");
    bob_user.srtp = store::SrtpPolicy::Optional;
    let mut carrier = crate::directory::Trunk::for_test(9, "carrier.example", "198.51.100.7:5060", None);
    carrier.srtp = store::SrtpPolicy::Required;
    let dir = Directory::new(
        REALM,
        vec![User::for_test(1, "101", "alice", REALM, "alice-pw"), bob_user],
        vec![TrustedTrunk::for_test(9, "carrier", &["198.51.100.0/24"])],
        vec![Did { number: "+61290000000".into(), trunk_id: Some(9), flow_id: Some(1) }],
    )
    .with_trunks(vec![carrier], vec![]);
    let mut h = H::build_in(|_| {}, Some(Box::new(media.clone())), dir);
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut incoming = h.shared.take_incoming().unwrap();
    // a plain offer from the carrier: refused before the flow sees it
    let mut inv = trunk_invite("+61290000000");
    inv.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
    h.send("198.51.100.7:5060", &inv);
    assert_eq!(only(&h.out(), |m| is_status(m, 488)).len(), 1);
    assert!(incoming.try_recv().is_err());
    assert_eq!(media.take().len(), 2, "opened and closed at once");
    // with crypto: the flow answers, with FlowPBX's own key under the carrier's tag
    let mut inv = trunk_invite("+61290000000");
    inv.set_header(HeaderName::CallId, "trunk-call-2").unwrap();
    inv.set_header(HeaderName::Via, "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtrunk2").unwrap();
    inv.set_body(Some("application/sdp"), bytes::Bytes::from(sdp_with("RTP/SAVP", &[format!("3 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}")]))).unwrap();
    h.send("198.51.100.7:5060", &inv);
    h.out();
    let call = incoming.try_recv().unwrap();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Answer { call: call.key, reply: tx }));
    assert!(rx.try_recv().unwrap().is_ok());
    let ok = only(&h.out(), |m| is_status(m, 200))[0].1.clone();
    let answer = body_of(&ok);
    assert!(answer.contains("m=audio 20000 RTP/SAVP 0\r\n"), "{answer}");
    let lines = crypto_lines(&answer);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("3 AES_CM_128_HMAC_SHA1_32 inline:") && !lines[0].contains(KEY30), "{}", lines[0]);
    let log = media.take();
    assert_eq!(log.get(1).map(String::as_str), Some("srtp A AES_CM_128_HMAC_SHA1_32"), "keys before the remote: {log:?}");
    // the flow rings bob (optional): RTP/AVP with fresh keys of FlowPBX's, none of the carrier's
    let (tx, _rx) = tokio::sync::oneshot::channel();
    let req = crate::RingRequest { extensions: vec![2], numbers: vec![], timeout: Duration::from_secs(10), caller_id: None };
    h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Ring { call: call.key, request: req, reply: tx }));
    let to_bob = only(&h.out(), |m| is_req(m, Method::Invite))[0].1.clone();
    let offer = body_of(&to_bob);
    assert!(offer.contains("RTP/AVP"), "{offer}");
    let offered = crypto_lines(&offer);
    assert_eq!(offered.len(), 3, "{offer}");
    assert!(offered.iter().all(|l| !l.contains(KEY30) && !l.contains(&lines[0][lines[0].find("inline:").unwrap()..])), "keys never cross legs");
    // bob answers plain (optional): his leg stays plain, the carrier's stays encrypted
    h.send("10.0.0.21:5060", &bob.answer(&to_bob, 200, "b1", true));
    h.out();
    let log = media.take();
    assert!(!log.iter().any(|l| l.starts_with("srtp")), "{log:?}");
    assert!(log.contains(&"bridge".to_owned()), "{log:?}");
    let view = h.shared.calls.iter().next().map(|c| (c.caller_srtp, c.callee_srtp)).unwrap();
    assert_eq!(view, (Some("AES_CM_128_HMAC_SHA1_32"), None));
}

#[test]
fn srtp_delayed_offer_is_offered_with_keys_and_a_plain_ack_is_hung_up() {
    for with_keys in [true, false] {
        let media = FakeMedia::default();
        let mut h = srtp_h(&media, store::SrtpPolicy::Required, store::SrtpPolicy::Off);
        let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
        h.register(&mut bob);
        let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
        // no SDP in alice's INVITE: bob's 200 offers, FlowPBX re-offers alice with keys
        alice.call(&mut h, "102", false);
        let inv = only(&h.out(), |m| is_req(m, Method::Invite))[0].1.clone();
        assert!(inv.body().is_empty(), "a delayed offer stays delayed");
        h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
        let ok = only(&h.out(), |m| is_status(m, 200))[0].1.clone();
        let offer = body_of(&ok);
        assert!(offer.contains("RTP/SAVP"), "alice requires SRTP: {offer}");
        let offered = crypto_lines(&offer);
        assert_eq!(offered.len(), 3, "{offer}");
        media.take();
        let mut ack = alice.ack_for(&ok, false);
        let body = if with_keys {
            let theirs = media::sdes::answer(offered.iter().map(String::as_str), &[media::SrtpSuite::AesCm128HmacSha1_80]).unwrap();
            sdp_with("RTP/SAVP", &[theirs.attribute.to_string()])
        } else {
            SDP.to_owned()
        };
        ack.set_body(Some("application/sdp"), bytes::Bytes::from(body)).unwrap();
        h.send("10.0.0.5:5060", &ack);
        let out = h.out();
        let log = media.take();
        if with_keys {
            assert_eq!(log.first().map(String::as_str), Some("srtp A AES_CM_128_HMAC_SHA1_80"), "{log:?}");
            assert!(only(&out, |m| is_req(m, Method::Bye)).is_empty());
        } else {
            assert!(!log.iter().any(|l| l.starts_with("srtp")), "{log:?}");
            assert_eq!(only(&out, |m| is_req(m, Method::Bye)).len(), 2, "a required leg answering plain ends the call: {out:?}");
        }
    }
}

#[test]
fn srtp_required_trunk_caller_answered_by_a_flow_without_an_offer() {
    for with_keys in [true, false] {
        let media = FakeMedia::default();
        let mut carrier = crate::directory::Trunk::for_test(9, "carrier.example", "198.51.100.7:5060", None);
        carrier.srtp = store::SrtpPolicy::Required;
        let did = Did { number: "+61290000000".into(), trunk_id: Some(9), flow_id: Some(1) };
        let dir = Directory::new(REALM, vec![], vec![TrustedTrunk::for_test(9, "carrier", &["198.51.100.0/24"])], vec![did]).with_trunks(vec![carrier], vec![]);
        let mut h = H::build_in(|_| {}, Some(Box::new(media.clone())), dir);
        let mut incoming = h.shared.take_incoming().unwrap();
        h.send("198.51.100.7:5060", &trunk_invite("+61290000000"));
        h.out();
        let call = incoming.try_recv().unwrap();
        let (tx, _rx) = tokio::sync::oneshot::channel();
        h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Answer { call: call.key, reply: tx }));
        let ok = only(&h.out(), |m| is_status(m, 200))[0].1.clone();
        let offer = body_of(&ok);
        assert!(offer.contains("RTP/SAVP"), "{offer}");
        let offered = crypto_lines(&offer);
        assert_eq!(offered.len(), 3);
        media.take();
        let body = if with_keys {
            let theirs = media::sdes::answer(offered.iter().map(String::as_str), &[media::SrtpSuite::AeadAes128Gcm]).unwrap();
            sdp_with("RTP/SAVP", &[theirs.attribute.to_string()])
        } else {
            SDP.to_owned()
        };
        let to = format!("{};tag={}", ok.header(HeaderName::To).unwrap().split(";tag=").next().unwrap(), ok.to_tag().unwrap());
        let ack = Message::request(Method::Ack, "sip:192.0.2.1:5060")
            .unwrap()
            .with_header(HeaderName::Via, "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtrunkack")
            .unwrap()
            .with_header(HeaderName::MaxForwards, "70")
            .unwrap()
            .with_header(HeaderName::From, "\"Carrier Caller\" <sip:+61400000001@198.51.100.7>;tag=tr1")
            .unwrap()
            .with_header(HeaderName::To, &to)
            .unwrap()
            .with_header(HeaderName::CallId, "trunk-call-1")
            .unwrap()
            .with_header(HeaderName::CSeq, "1 ACK")
            .unwrap();
        let mut ack = ack;
        ack.set_body(Some("application/sdp"), bytes::Bytes::from(body)).unwrap();
        h.send("198.51.100.7:5060", &ack);
        let out = h.out();
        let log = media.take();
        if with_keys {
            assert_eq!(log.first().map(String::as_str), Some("srtp A AEAD_AES_128_GCM"), "{log:?}");
            assert!(only(&out, |m| is_req(m, Method::Bye)).is_empty(), "{out:?}");
        } else {
            assert!(!log.iter().any(|l| l.starts_with("srtp")), "{log:?}");
            assert_eq!(only(&out, |m| is_req(m, Method::Bye)).len(), 1, "the carrier's plain answer ends the call: {out:?} {log:?}");
        }
    }
}

const SDP_WEBRTC: &str = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
    a=fingerprint:sha-256 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF\r\na=setup:actpass\r\n\
    a=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";

#[test]
fn a_webrtc_caller_is_answered_by_the_media_engines_webrtc_transport() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let out = call_with_sdp(&mut h, &mut alice, SDP_WEBRTC);
    // bob gets a plain RTP/AVP offer from the PBX: DTLS, ICE and the browser's keys stay on A
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    let offer = body_of(&inv);
    assert!(offer.contains("m=audio 20002 RTP/AVP 111 0 8"), "{offer}");
    assert!(!offer.contains("fingerprint") && !offer.contains("ice-") && !offer.contains("crypto"), "{offer}");
    media.take();
    // bob answers PCMU: alice's answer is the WebRTC transport's, for PCMU
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    let answer = body_of(&ok);
    assert!(answer.contains("UDP/TLS/RTP/SAVPF") && answer.contains("a=ice-lite"), "{answer}");
    let log = media.take();
    assert_eq!(log[0], "webrtc A Some(Pcmu)", "{log:?}");
    assert!(log.contains(&"bridge".to_owned()), "{log:?}");
}

#[test]
fn a_webrtc_offer_without_a_fingerprint_is_not_taken_for_rtp() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let no_fp: String = SDP_WEBRTC.lines().filter(|l| !l.starts_with("a=fingerprint")).map(|l| format!("{l}\r\n")).collect();
    let out = call_with_sdp(&mut h, &mut alice, &no_fp);
    assert!(only(&out, |m| is_status(m, 488)).len() == 1, "{out:?}");
}

#[test]
fn a_phone_registered_over_websocket_is_offered_webrtc_and_its_answer_completes_it() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    // bob's browser registers over WSS
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:40001");
    let ws = |mut m: Message, p: &Phone| {
        let via = m.header(HeaderName::Via).unwrap().replace("SIP/2.0/UDP", "SIP/2.0/WSS");
        m.set_header(HeaderName::Via, &via).unwrap();
        m.set_header(HeaderName::Contact, &format!("<sip:{}@abc.invalid;transport=ws>", p.user)).unwrap();
        m
    };
    let wss = Peer { transport: Transport::Wss, addr: "10.0.0.21:40001".parse().unwrap() };
    let r = ws(bob.register(None), &bob);
    h.core.handle_frame(h.now, wss, Ok(r));
    let ch = h.out_peers().iter().find_map(|(_, m)| challenge_in(m)).expect("a challenge");
    let r = ws(bob.register(Some(&ch)), &bob);
    h.core.handle_frame(h.now, wss, Ok(r));
    assert_eq!(h.out_peers()[0].1.status(), Some(200));
    // alice (plain RTP over UDP) calls him: the INVITE goes down his connection with a WebRTC offer
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    alice.call(&mut h, "102", true);
    let out = h.out_peers();
    let (to, inv) = out.iter().find(|(_, m)| is_req(m, Method::Invite)).expect("an INVITE to Bob").clone();
    assert_eq!(to, wss);
    let offer = body_of(&inv);
    assert!(offer.contains("UDP/TLS/RTP/SAVPF") && offer.contains("a=fingerprint"), "{offer}");
    assert!(media.take().iter().any(|l| l == "webrtc offer B [Pcmu, Pcma, Opus, TelephoneEvent]"));
    // his browser answers: the answer completes the WebRTC transport, alice gets plain RTP
    let mut ok = Message::response_to(&inv, 200, None, Some("b1"));
    ok.push_header(HeaderName::Contact, "<sip:bob@abc.invalid;transport=ws>").unwrap();
    ok.set_body(Some("application/sdp"), bytes::Bytes::from(SDP_WEBRTC.replace("a=setup:actpass", "a=setup:active").replace(" 111 0 8\r\n", " 0\r\n")))
        .unwrap();
    h.core.handle_frame(h.now, wss, Ok(ok));
    let out = h.out_peers();
    let to_alice = only_peers(&out, |m| is_status(m, 200))[0].clone();
    let answer = body_of(&to_alice);
    assert!(answer.contains("RTP/AVP") && !answer.contains("fingerprint"), "{answer}");
    let log = media.take();
    assert_eq!(log[0], "webrtc accept B", "{log:?}");
    assert!(log.contains(&"bridge".to_owned()), "{log:?}");
}

#[test]
fn a_hold_toward_a_browser_is_refused_and_the_call_stays() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let out = call_with_sdp(&mut h, &mut alice, SDP_WEBRTC);
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.out();
    media.take();
    // bob holds: a plain re-offer must not reach the browser (its transport is DTLS/ICE)
    let mut reinv = bob.in_dialog_as_callee(&inv, "b1", Method::Invite);
    let hold = SDP.replace("m=audio 4000 RTP/AVP 0\r\n", "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n");
    reinv.set_body(Some("application/sdp"), bytes::Bytes::from(hold)).unwrap();
    h.send("10.0.0.21:5060", &reinv);
    let out = h.out();
    assert!(only(&out, |m| is_req(m, Method::Invite)).is_empty(), "nothing relayed to the browser: {out:?}");
    assert_eq!(only(&out, |m| is_status(m, 488)).len(), 1, "{out:?}");
    assert!(!only(&out, |m| is_req(m, Method::Bye)).iter().any(|_| true), "the call stays: {out:?}");
    assert!(!media.take().iter().any(|l| l.starts_with("remote")), "the media session is untouched");
}

fn only_peers(out: &[(Peer, Message)], f: impl Fn(&Message) -> bool) -> Vec<Message> {
    out.iter().filter(|(_, m)| f(m)).map(|(_, m)| m.clone()).collect()
}

#[test]
fn a_webrtc_callers_leg_is_reported_as_dtls_srtp() {
    let media = FakeMedia::default();
    let mut h = H::with_media(media.clone());
    let mut bob = Phone::new("bob", "bob-pw", "10.0.0.21:5060");
    h.register(&mut bob);
    let mut alice = Phone::new("alice", "alice-pw", "10.0.0.5:5060");
    let out = call_with_sdp(&mut h, &mut alice, SDP_WEBRTC);
    let inv = only(&out, |m| is_req(m, Method::Invite))[0].1.clone();
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    h.out();
    let view = h.shared.calls.iter().next().map(|c| (c.caller_srtp, c.callee_srtp)).unwrap();
    assert_eq!(view, (Some("DTLS-SRTP"), None));
}

#[test]
fn star_one_toggles_an_on_demand_recording_with_a_beep_to_both_sides() {
    let mut alice = User::for_test(1, "101", "alice", REALM, "alice-pw");
    alice.record_on_demand = true;
    let bob = User::for_test(2, "102", "bob", REALM, "bob-pw");
    let dir = Directory::new(REALM, vec![alice, bob], vec![], vec![]);
    let media = FakeMedia::default();
    let mut h = H::build_in(|_| {}, Some(Box::new(media.clone())), dir);
    let (mut alice, bob, _, inv) = alice_calls_bob(&mut h, true);
    h.send("10.0.0.21:5060", &bob.answer(&inv, 200, "b1", true));
    let out = h.out();
    let ok = only(&out, |m| is_status(m, 200))[0].1.clone();
    h.send("10.0.0.5:5060", &alice.ack_for(&ok, false));
    h.out();
    let log = media.take();
    assert!(!log.iter().any(|l| l == "record"), "on demand: nothing recorded at answer: {log:?}");
    let key = crate::CallKey::from_raw(1);
    let press = |h: &mut H, leg: media::LegId, digit: char| {
        let d = media::DigitEvent { leg, digit, duration: Duration::from_millis(100), source: media::DtmfSource::Rfc4733 };
        h.core.handle_command(h.now, crate::core::Command::Call(crate::b2bua::CallCommand::Dtmf { call: key, digit: d }));
        h.out();
    };
    // bob (not on demand) pressing *1 does nothing
    press(&mut h, media::LegId::B, '*');
    press(&mut h, media::LegId::B, '1');
    assert!(!media.take().iter().any(|l| l == "record"));
    // alice: *1 starts, with a beep to both legs
    press(&mut h, media::LegId::A, '*');
    press(&mut h, media::LegId::A, '1');
    assert_eq!(media.take(), ["record", "play A beep x1", "play B beep x1"]);
    // a * too long ago does not count
    press(&mut h, media::LegId::A, '*');
    h.advance(Duration::from_secs(4));
    press(&mut h, media::LegId::A, '1');
    assert!(!media.take().iter().any(|l| l == "stop record"));
    // *1 again stops it
    press(&mut h, media::LegId::A, '*');
    press(&mut h, media::LegId::A, '1');
    assert_eq!(media.take(), ["stop record", "play A beep x1", "play B beep x1"]);
    // *2 is not the code
    press(&mut h, media::LegId::A, '*');
    press(&mut h, media::LegId::A, '2');
    assert!(media.take().iter().all(|l| !l.contains("record")));
}

#[test]
fn a_trunk_that_records_outbound_calls_records_them_at_answer() {
    for (record_outbound, record_inbound) in [(true, false), (false, true)] {
        let dir = outbound_directory(|trunks, _, _| {
            trunks[0].record_outbound = record_outbound;
            // inbound recording is about calls that arrive through the trunk, not these
            trunks[0].record_inbound = record_inbound;
        });
        let media = FakeMedia::default();
        let mut h = H::build_in(|_| {}, Some(Box::new(media.clone())), dir);
        h.out();
        let (_, out) = dial(&mut h, "0290001234");
        let (dest, inv) = only(&out, |m| is_req(m, Method::Invite))[0].clone();
        assert_eq!(dest.to_string(), CARRIER);
        assert!(!media.take().iter().any(|l| l == "record"), "nothing recorded before the answer");
        h.send(
            CARRIER,
            &carrier_answer(&inv, 200, |r| {
                r.push_header(HeaderName::Contact, "<sip:gw@203.0.113.20>").unwrap();
                r.set_body(Some("application/sdp"), bytes::Bytes::from_static(SDP.as_bytes())).unwrap();
            }),
        );
        h.out();
        let log = media.take();
        assert_eq!(log.iter().any(|l| l == "record"), record_outbound, "record_outbound {record_outbound}: {log:?}");
    }
}
