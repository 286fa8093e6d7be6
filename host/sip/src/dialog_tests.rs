use super::*;

fn parse(s: &str) -> Message {
    Message::parse(s.replace('\n', "\r\n").as_bytes()).expect("test message parses")
}

fn invite() -> Message {
    parse(
        "INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1
Max-Forwards: 70
From: \"Alice\" <sip:alice@example.com>;tag=atag
To: <sip:bob@example.com>
Call-ID: dlg-1@192.0.2.1
CSeq: 10 INVITE
Contact: <sip:alice@192.0.2.1:5060>
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
Content-Length: 0

",
    )
}

fn resp(code: u16, tag: &str, contact: &str) -> Message {
    // (the Record-Route is copied from the INVITE by response_to, RFC 3261 §12.1.1)
    let mut r = Message::response_to(&invite(), code, None, Some(tag));
    r.push_header(HeaderName::Contact, contact).unwrap();
    Message::parse(&r.to_bytes()).unwrap()
}

const VIA: &str = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnext";

#[test]
fn uac_early_then_confirmed_with_route_set_and_target() {
    let inv = invite();
    let mut d = Dialog::uac(&inv, &resp(180, "b1", "<sip:bob@192.0.2.2>"), "sip:alice@192.0.2.1").unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert_eq!(d.route_set, vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]);
    assert_eq!(d.id.remote_tag, "b1");
    d.on_response(&resp(200, "b1", "<sip:bob@192.0.2.3:5070>")).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.remote_target, "sip:bob@192.0.2.3:5070");
    // Another fork's 2xx is another dialog.
    assert_eq!(d.on_response(&resp(200, "b2", "<sip:x@y>")), Err(DialogError::WrongDialog));
    // ACK for the 2xx: INVITE's CSeq number, loose route set.
    let ack = d.ack(VIA);
    assert_eq!(ack.uri_str(), Some("sip:bob@192.0.2.3:5070"));
    assert_eq!(ack.cseq().unwrap().seq, 10);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.routes().map(|r| r.uri_str).collect::<Vec<_>>(), vec!["sip:p2.example.com;lr", "sip:p1.example.com;lr"]);
    assert_eq!(ack.to_tag(), Some("b1"));
    assert_eq!(ack.from_tag(), Some("atag"));
    // BYE gets the next CSeq.
    let bye = d.request(Method::Bye, VIA);
    assert_eq!(bye.cseq().unwrap().seq, 11);
    assert!(bye.contact().is_none());
    let reinvite = d.request(Method::Invite, VIA);
    assert_eq!(reinvite.cseq().unwrap().seq, 12);
    assert_eq!(reinvite.contact().unwrap().uri_str, "sip:alice@192.0.2.1");
    assert_eq!(d.ack(VIA).cseq().unwrap().seq, 12);
    // Everything built parses back.
    for m in [ack, bye, reinvite] {
        Message::parse(&m.to_bytes()).unwrap();
    }
}

#[test]
fn early_dialog_ends_on_failure() {
    let mut d = Dialog::uac(&invite(), &resp(183, "b1", "<sip:bob@192.0.2.2>"), "sip:a@h").unwrap();
    d.on_response(&resp(486, "b1", "<sip:bob@192.0.2.2>")).unwrap();
    assert_eq!(d.state, DialogState::Terminated);
    assert!(Dialog::uac(&invite(), &resp(100, "", "<sip:b@h>"), "sip:a@h").is_err());
    let mut no_tag = Message::response_to(&invite(), 180, None, None);
    no_tag.push_header(HeaderName::Contact, "<sip:b@h>").unwrap();
    assert!(Dialog::uac(&invite(), &no_tag, "sip:a@h").is_err());
}

#[test]
fn uas_cseq_rules_and_target_refresh() {
    let inv = invite();
    let mut d = Dialog::uas(&inv, "btag", "sip:bob@192.0.2.2", true).unwrap();
    assert_eq!(d.local, "<sip:bob@example.com>;tag=btag");
    assert_eq!(d.route_set.len(), 2, "UAS keeps Record-Route order");
    let mut bye = d.request(Method::Bye, VIA);
    assert_eq!(bye.uri_str(), Some("sip:alice@192.0.2.1:5060"));
    assert_eq!(bye.to_tag(), Some("atag"));
    assert_eq!(bye.from_tag(), Some("btag"));
    assert_eq!(bye.cseq().unwrap().seq, 1);
    bye.set_header(HeaderName::CSeq, "1 BYE").unwrap();

    let in_dialog = |method: &str, seq: u32, contact: &str| {
        parse(&format!(
            "{method} sip:bob@192.0.2.2 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{seq}{method}
From: <sip:alice@example.com>;tag=atag
To: <sip:bob@example.com>;tag=btag
Call-ID: dlg-1@192.0.2.1
CSeq: {seq} {method}
{contact}Content-Length: 0

"
        ))
    };
    assert_eq!(d.on_request(&in_dialog("ACK", 10, "")), Ok(()));
    assert_eq!(d.on_request(&in_dialog("INFO", 10, "")), Err(DialogError::CSeqOutOfOrder));
    assert_eq!(DialogError::CSeqOutOfOrder.status(), Some((500, "CSeq Out of Order")));
    assert_eq!(d.on_request(&in_dialog("INVITE", 11, "Contact: <sip:alice@198.51.100.1:6000>\n")), Ok(()));
    assert_eq!(d.remote_target, "sip:alice@198.51.100.1:6000");
    assert_eq!(d.on_request(&in_dialog("UPDATE", 11, "")), Err(DialogError::CSeqOutOfOrder));
    let mut other = in_dialog("BYE", 12, "");
    other.set_header(HeaderName::CallId, "other").unwrap();
    assert_eq!(d.on_request(&other), Err(DialogError::WrongDialog));
    assert_eq!(d.on_request(&in_dialog("BYE", 12, "")), Ok(()));
    assert_eq!(d.state, DialogState::Terminated);
    assert_eq!(d.on_request(&in_dialog("INFO", 13, "")), Err(DialogError::Terminated));
}

#[test]
fn strict_router_first_in_route_set() {
    let mut d = Dialog::uas(&invite(), "btag", "sip:bob@192.0.2.2", true).unwrap();
    d.route_set = vec!["<sip:strict.example.com>".into(), "<sip:p2.example.com;lr>".into()];
    let bye = d.request(Method::Bye, VIA);
    assert_eq!(bye.uri_str(), Some("sip:strict.example.com"));
    let routes: Vec<_> = bye.routes().map(|r| r.uri_str.to_owned()).collect();
    assert_eq!(routes, vec!["sip:p2.example.com;lr", "sip:alice@192.0.2.1:5060"]);
}

#[test]
fn session_timer_negotiation_and_deadlines() {
    let cfg = SessionTimerConfig::default();
    let mut inv = invite();
    SessionTimer::offer(&SessionTimerConfig { min_se: 90, interval: 600 }, &mut inv);
    assert!(inv.supports("timer"));
    assert_eq!(inv.session_expires().unwrap().interval, 600);

    // The UAC supports timers and names no refresher: it refreshes (refresher=uac).
    let mut ok = Message::response_to(&inv, 200, None, Some("b"));
    let st = SessionTimer::answer(&cfg, &inv, &mut ok, Instant::from_millis(0)).unwrap();
    assert_eq!(ok.header(HeaderName::SessionExpires), Some("600;refresher=uac"));
    assert!(ok.require().any(|t| t == "timer"));
    assert!(!st.we_refresh);
    assert_eq!(st.refresh_at(), None);
    // BYE 32 s before the end when the peer does not refresh.
    assert_eq!(st.expires_at(), Instant::from_millis(568_000));
    assert_eq!(st.poll(Instant::from_millis(567_999)), None);
    assert_eq!(st.poll(Instant::from_millis(568_000)), Some(SessionTimerAction::Expire));

    // The UAC side reads the same 2xx and refreshes at half time.
    let mut uac = SessionTimer::from_response(&Message::parse(&ok.to_bytes()).unwrap(), Instant::from_millis(0)).unwrap();
    assert!(uac.we_refresh);
    assert_eq!(uac.refresh_at(), Some(Instant::from_millis(300_000)));
    assert_eq!(uac.poll(Instant::from_millis(300_000)), Some(SessionTimerAction::Refresh));
    uac.refreshed(Instant::from_millis(300_000));
    assert_eq!(uac.next_deadline(), Instant::from_millis(600_000));

    // Too small: 422 with our Min-SE, and the UAC retries with it.
    let mut small = invite();
    small.set_header(HeaderName::SessionExpires, "60").unwrap();
    let mut r = Message::response_to(&small, 200, None, Some("b"));
    let err = SessionTimer::answer(&cfg, &small, &mut r, Instant::ZERO).unwrap_err();
    assert_eq!(err, DialogError::SessionIntervalTooSmall(90));
    let mut r422 = Message::response_to(&small, 422, None, Some("b"));
    SessionTimer::reject(&cfg, &mut r422);
    assert_eq!(SessionTimer::interval_after_422(&r422), Some(90));

    // A UAC without timer support: we refresh, and say so without Require.
    let plain = invite();
    let mut r = Message::response_to(&plain, 200, None, Some("b"));
    let st = SessionTimer::answer(&cfg, &plain, &mut r, Instant::ZERO).unwrap();
    assert!(st.we_refresh);
    assert_eq!(r.header(HeaderName::SessionExpires), Some("1800;refresher=uas"));
    assert_eq!(r.require().count(), 0);
    assert_eq!(st.refresh_at(), Some(Instant::from_millis(900_000)));
}
