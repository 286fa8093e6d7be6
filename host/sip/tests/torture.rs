//! RFC 4475-style torture corpus (tests/data/torture): every valid-but-weird message parses and
//! survives a serialise/parse round trip; every invalid one fails with the classification
//! written in invalid/EXPECT.

use std::path::PathBuf;

use sip::msg::{Contact, Host, Uri};
use sip::{Disposition, HeaderName, Message, Method, StreamFramer};

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/torture").join(sub)
}

fn load(sub: &str, name: &str) -> Vec<u8> {
    std::fs::read(dir(sub).join(format!("{name}.sip"))).expect("corpus file")
}

fn valid(name: &str) -> Message {
    Message::parse(&load("valid", name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn every_valid_message_parses_and_round_trips() {
    let mut n = 0;
    for entry in std::fs::read_dir(dir("valid")).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let msg = Message::parse(&data).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let again = Message::parse(&msg.to_bytes()).unwrap_or_else(|e| panic!("{} reparse: {e:?}", path.display()));
        assert_eq!(again.to_bytes(), msg.to_bytes(), "{}", path.display());
        assert_eq!(again.call_id(), msg.call_id());
        assert_eq!(again.cseq(), msg.cseq());
        // The stream framer cuts the same message out of a byte stream fed in small pieces.
        let mut framer = StreamFramer::default();
        let wire = msg.to_bytes();
        let mut got = None;
        for chunk in wire.chunks(7) {
            framer.push(chunk);
            if let Some(f) = framer.next_frame() {
                got = Some(f.unwrap());
            }
        }
        match got {
            Some(sip::msg::Frame::Message(m)) => assert_eq!(m.to_bytes(), wire),
            other => panic!("{}: framer gave {other:?}", path.display()),
        }
        n += 1;
    }
    assert!(n >= 20, "corpus has {n} valid messages");
}

#[test]
fn every_invalid_message_is_classified() {
    let expect = std::fs::read_to_string(dir("invalid").join("EXPECT")).unwrap();
    let mut n = 0;
    for line in expect.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, want) = line.split_once(' ').unwrap();
        let data = load("invalid", name);
        let err = match Message::parse(&data) {
            Ok(m) => panic!("{name} parsed: {m:?}"),
            Err(e) => e,
        };
        let got = match err.disposition() {
            Disposition::Drop => "drop".to_string(),
            Disposition::Reply(code, reason) => {
                // The answer can be built from what was read.
                let req = err.request().expect("partial request");
                let resp = Message::response_to(req, code, Some(reason), Some("t1"));
                assert_eq!(resp.status(), Some(code));
                assert!(resp.top_via().is_some(), "{name}: answer has a Via");
                format!("{code} {reason}")
            }
        };
        assert_eq!(got, want, "{name}");
        n += 1;
    }
    assert!(n >= 30, "corpus has {n} invalid messages");
}

#[test]
fn wsinv_reads_every_tortured_header() {
    let m = valid("wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name().unwrap(), "J Rosenberg \\\"");
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.cseq().unwrap().seq, 9);
    let vias: Vec<_> = m.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert!(!vias[0].has_magic_cookie());
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, Host::Domain("spindle.example.com"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.header_named("NewFangledHeader"), Some("newfangled value continued newfangled value"));
    let c = m.contacts().next().unwrap();
    assert_eq!(c.q(), Some(330));
    assert_eq!(c.addr().unwrap().params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(m.routes().count(), 1);
    assert!(m.body().starts_with(b"v=0"));
}

#[test]
fn weird_tokens_escapes_and_addresses() {
    let m = valid("intmeth");
    assert_eq!(m.method().unwrap().as_str(), "!interesting-Method0123456789_*+`.%indeed'~");
    assert_eq!(m.max_forwards(), Some(255));
    assert_eq!(m.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    assert!(m.uri().unwrap().as_sip().unwrap().password.is_some());

    let m = valid("esc01");
    assert_eq!(m.uri().unwrap().user().unwrap(), "sips:user@example.com");
    assert_eq!(m.to().unwrap().uri.user().unwrap(), "user");
    assert_eq!(m.from().unwrap().uri.user().unwrap(), "I have spaces");
    assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));

    let m = valid("escnull");
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(m.to().unwrap().uri.user().unwrap(), "null-\0-null");

    let m = valid("semiuri");
    assert_eq!(m.uri().unwrap().as_sip().unwrap().user, Some("user;par=u%40example.net"));
    assert_eq!(m.headers(HeaderName::Accept).flat_map(sip::msg::split_list).count(), 6);

    let m = valid("ipv6");
    let via = m.top_via().unwrap();
    assert_eq!(via.host.ip(), Some("2001:db8::9:1".parse().unwrap()));
    assert_eq!(via.port, Some(5070));
    assert_eq!(m.uri().unwrap().host().unwrap().ip(), Some("2001:db8::10".parse().unwrap()));
    assert_eq!(m.from().unwrap().display_name().unwrap(), "Ipv6 User");
    assert_eq!(m.expires(), Some(3600));

    let m = valid("tel");
    assert!(matches!(m.uri(), Some(Uri::Tel(_))));
    assert_eq!(m.to().unwrap().uri.user().unwrap(), "+1-555-123-4567");

    let m = valid("transports");
    let t: Vec<_> = m.vias().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn compact_lf_and_framing_oddities() {
    let m = valid("compact");
    assert_eq!(m.call_id(), Some("compact-1@192.0.2.1"));
    assert_eq!(m.top_via().unwrap().rport(), Some(None));
    assert!(m.supports("timer"));
    assert_eq!(m.session_expires().unwrap().interval, 1800);
    assert_eq!(m.content_type(), Some("application/sdp"));
    assert_eq!(m.body().len(), m.to_bytes().len() - m.to_bytes().windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4);
    // Serialising writes long names.
    let text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
    assert!(text.contains("\r\nVia: SIP/2.0/UDP") && text.contains("\r\nCall-ID: compact-1"));

    assert_eq!(valid("lfonly").cseq().unwrap().method, Method::Options);
    assert_eq!(valid("leadingcrlf").method(), Some(&Method::Options));
    assert_eq!(valid("extrabytes").body().as_ref(), b"abcd");
    assert_eq!(valid("zeromf").max_forwards(), Some(0));
    assert!(!valid("inv2543").top_via().unwrap().has_magic_cookie());
    assert_eq!(valid("noreason").reason(), Some(""));
    assert!(valid("unreason").reason().unwrap().contains("простое"));
    assert!(valid("mpart01").body().ends_with(b"--7a9cbec02ceef655--\r\n"));
    assert_eq!(valid("longreq").vias().count(), 40);

    let m = valid("starcontact");
    assert_eq!(m.contacts().collect::<Vec<_>>(), vec![Contact::Star]);
    let m = valid("instance");
    let c = m.contacts().next().unwrap();
    assert_eq!(c.instance().unwrap(), "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF");
    assert_eq!(c.reg_id(), Some(1));
    assert_eq!(c.expires(), Some(600));
    assert_eq!(m.user_agent(), Some("Yealink SIP-T46S 66.86.0.15"));
}
