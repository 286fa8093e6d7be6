//! Micro-benchmark (not run by the test suite): `cargo bench -p sip`.
//! Prints ns per parse+serialise of typical REGISTER and INVITE messages, µs per digest
//! verification, and µs for the sip-crate share of an authenticated REGISTER (parse,
//! transaction layer, credentials, verification, 200 OK with Contact and serialise).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant as Clock};

use sip::auth::{ha1, Algorithm, Challenge, Credentials, DigestServer, ReplayGuard};
use sip::transaction::{Config, Event, Peer, Transport};
use sip::{HeaderName, IdGenerator, Instant, Message, TransactionLayer};

const REGISTER: &str = "REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a3bc3e9f1e5c6d1b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@192.0.2.10:5060;rinstance=8d1f0c0e4a5b6c7d;transport=UDP>\r\n\
To: <sip:1001@pbx.example.com>\r\n\
From: <sip:1001@pbx.example.com>;tag=9b6c7f2a\r\n\
Call-ID: NzQ5YjE0ZGE3ZjY0YjE4ZWI0ZTNkNjY2ZTc5ZjIxNGM\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Zoiper v2.10.20.2\r\n\
{AUTH}\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:1002@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: \"Bob\" <sip:1002@pbx.example.com>\r\n\
From: \"Alice\" <sip:1001@pbx.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:1001@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n\
Supported: timer, replaces\r\n\
Session-Expires: 1800\r\n\
User-Agent: Foo/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 118\r\n\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n";

fn time<F: FnMut() -> usize>(name: &str, iters: u32, mut f: F) -> Duration {
    let mut sink = 0usize;
    for _ in 0..iters / 10 {
        sink = sink.wrapping_add(f());
    }
    let t = Clock::now();
    for _ in 0..iters {
        sink = sink.wrapping_add(f());
    }
    let per = t.elapsed() / iters;
    black_box(sink);
    println!("{name:<52} {:>9.2} µs  ({} ns)", per.as_secs_f64() * 1e6, per.as_nanos());
    per
}

fn main() {
    let src = Peer { transport: Transport::Udp, addr: SocketAddr::from(([192, 0, 2, 10], 5060)) };
    let ip = src.addr.ip();
    let realm = "pbx.example.com";
    let server = DigestServer::new([9; 32], realm, Duration::from_secs(300));
    let mut ids = IdGenerator::new([3; 32]);
    let now = Instant::from_millis(10_000);

    let plain_register = REGISTER.replace("{AUTH}", "");
    time("parse REGISTER", 200_000, || Message::parse(plain_register.as_bytes()).map(|m| m.body().len()).unwrap_or(0));
    time("parse + serialise REGISTER", 200_000, || Message::parse(plain_register.as_bytes()).map(|m| m.to_bytes().len()).unwrap_or(0));
    time("parse + serialise INVITE (with SDP)", 200_000, || Message::parse(INVITE.as_bytes()).map(|m| m.to_bytes().len()).unwrap_or(0));
    let inv = Message::parse(INVITE.as_bytes()).expect("bench INVITE parses");
    time("typed reads: top Via, From/To tags, CSeq, Contact", 500_000, || {
        inv.top_via().map(|v| v.branch().map_or(0, str::len)).unwrap_or(0)
            + inv.from_tag().map_or(0, str::len)
            + inv.to().map(|t| t.uri_str.len()).unwrap_or(0)
            + inv.cseq().map(|c| c.seq as usize).unwrap_or(0)
            + inv.contact().map(|c| c.uri_str.len()).unwrap_or(0)
    });

    // Credentials as a phone would send them for the challenge above.
    let ch = Challenge::parse(&server.challenge(now, ip, &mut ids, Algorithm::Md5, false)).expect("challenge");
    let stored = ha1(Algorithm::Md5, "1001", realm, "secret");
    let mut nc = 0u32;
    let mut guard = ReplayGuard::new(100_000);
    let auth_value = ch.authorization("REGISTER", "sip:pbx.example.com", "1001", "secret", "0a4f113b", 1);
    let creds = Credentials::parse(&auth_value).expect("creds");
    time("digest verify MD5 (nonce MAC + response)", 200_000, || {
        let mut g = ReplayGuard::new(4);
        server.verify(now, ip, "REGISTER", &creds, &stored, &mut g).map(|_| 1).unwrap_or(0)
    });
    let ch256 = Challenge::parse(&server.challenge(now, ip, &mut ids, Algorithm::Sha256, false)).expect("challenge");
    let stored256 = ha1(Algorithm::Sha256, "1001", realm, "secret");
    let creds256 = Credentials::parse(&ch256.authorization("REGISTER", "sip:pbx.example.com", "1001", "secret", "0a4f113b", 1)).expect("creds");
    time("digest verify SHA-256", 200_000, || {
        let mut g = ReplayGuard::new(4);
        server.verify(now, ip, "REGISTER", &creds256, &stored256, &mut g).map(|_| 1).unwrap_or(0)
    });
    time("digest challenge (401 with SHA-256 + MD5)", 200_000, || {
        let req = Message::parse(plain_register.as_bytes()).expect("parses");
        let mut resp = Message::response_to(&req, 401, None, Some("t"));
        server.add_challenges(&mut resp, now, ip, &mut ids, false);
        resp.to_bytes().len()
    });

    // The sip-crate share of one authenticated REGISTER: a fresh nc each time, so the replay
    // guard accepts it, as a real re-registration would.
    // Timed from the received bytes to the 200 OK bytes; the phone-side text is built outside.
    let mut tl = TransactionLayer::new(Config::default());
    let mut branch = 0u64;
    let mut out = 0usize;
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        nc += 1;
        branch += 1;
        let v = ch.authorization("REGISTER", "sip:pbx.example.com", "1001", "secret", "0a4f113b", nc);
        let wire = REGISTER.replace("{AUTH}", &format!("Authorization: {v}\r\n")).replace("a3bc3e9f1e5c6d1b", &branch.to_string());
        let t = Clock::now();
        let msg = Message::parse(wire.as_bytes()).expect("parses");
        tl.handle_message(now, src, msg);
        while let Some(ev) = tl.poll_event() {
            if let Event::Request { tx, msg, .. } = ev {
                let creds = Credentials::from_message(&msg, HeaderName::Authorization, realm).expect("creds");
                let ok = server.verify(now, ip, "REGISTER", &creds, &stored, &mut guard).is_ok();
                let mut resp = Message::response_to(&msg, if ok { 200 } else { 403 }, None, Some("srvtag"));
                if let Some(c) = msg.contact() {
                    resp.push_header(HeaderName::Contact, &format!("<{}>;expires=3600", c.uri_str)).unwrap();
                }
                let _ = tl.send_response(now, tx, resp);
            }
        }
        while let Some(t) = tl.poll_transmit() {
            out += t.payload.len();
        }
        samples.push(t.elapsed());
        tl.handle_timeout(now + Duration::from_secs(40));
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let mean: Duration = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{:<52} {:>9.2} µs  (median {:.2} µs; parse, tx layer, verify, 200, serialise)",
        "authenticated REGISTER, sip share only",
        mean.as_secs_f64() * 1e6,
        p50.as_secs_f64() * 1e6
    );
    black_box(out);
}
