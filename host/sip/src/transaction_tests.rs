//! Transaction layer tests: bytes in, a fake clock, every timer path.

use super::*;

const MS: fn(u64) -> Instant = Instant::from_millis;

fn udp(port: u16) -> Peer {
    Peer { transport: Transport::Udp, addr: SocketAddr::from(([192, 0, 2, 10], port)) }
}

fn tcp(port: u16) -> Peer {
    Peer { transport: Transport::Tcp, addr: SocketAddr::from(([192, 0, 2, 10], port)) }
}

fn request(method: &str, branch: &str, extra: &str) -> Message {
    let text = format!(
        "{method} sip:bob@192.0.2.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=ft1\r\n\
         To: <sip:bob@example.com>{extra}\r\n\
         Call-ID: call-1@192.0.2.10\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(text.as_bytes()).expect("test request parses")
}

fn response(req: &Message, code: u16, tag: &str) -> Message {
    let r = Message::response_to(req, code, None, (!tag.is_empty()).then_some(tag));
    Message::parse(&r.to_bytes()).expect("test response parses")
}

struct Out {
    sent: Vec<Transmit>,
    events: Vec<Event>,
}

fn drain(tl: &mut TransactionLayer) -> Out {
    let mut sent = Vec::new();
    while let Some(t) = tl.poll_transmit() {
        sent.push(t);
    }
    let mut events = Vec::new();
    while let Some(e) = tl.poll_event() {
        events.push(e);
    }
    Out { sent, events }
}

fn sent_lines(out: &Out) -> Vec<String> {
    out.sent
        .iter()
        .map(|t| {
            let text = String::from_utf8_lossy(&t.payload);
            text.lines().next().unwrap_or("").to_string()
        })
        .collect()
}

/// Advances the clock from timeout to timeout until `until`, recording when something was sent.
fn run_until(tl: &mut TransactionLayer, until: Instant) -> (Vec<u64>, Vec<Event>) {
    let mut times = Vec::new();
    let mut events = Vec::new();
    while let Some(t) = tl.poll_timeout() {
        if t > until {
            break;
        }
        tl.handle_timeout(t);
        let out = drain(tl);
        for _ in &out.sent {
            times.push(t.since_epoch().as_millis() as u64);
        }
        events.extend(out.events);
    }
    (times, events)
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(Config::default())
}

#[test]
fn timer_a_retransmits_and_timer_b_times_out() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKa1", "");
    let tx = tl.send_request(MS(0), udp(5060), inv).unwrap();
    assert_eq!(drain(&mut tl).sent.len(), 1);
    let (times, events) = run_until(&mut tl, MS(40_000));
    // A: 500, 1500, 3500, 7500, 15500, 31500; B at 32000.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(matches!(events.as_slice(), [Event::Timeout { tx: t }] if *t == tx));
    assert!(tl.is_empty());
}

#[test]
fn invite_over_tcp_is_not_retransmitted_and_timer_d_is_zero() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKt1", "");
    tl.send_request(MS(0), tcp(5060), inv.clone()).unwrap();
    drain(&mut tl);
    tl.handle_message(MS(100), tcp(5060), response(&inv, 180, "x"));
    tl.handle_message(MS(200), tcp(5060), response(&inv, 486, "x"));
    let out = drain(&mut tl);
    assert_eq!(sent_lines(&out), vec!["ACK sip:bob@192.0.2.20 SIP/2.0"]);
    assert_eq!(out.events.len(), 2);
    assert_eq!(tl.poll_timeout(), Some(MS(200)));
    tl.handle_timeout(MS(200));
    assert!(tl.is_empty());
}

#[test]
fn non_2xx_final_is_acked_inside_the_transaction_and_timer_d_absorbs() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKa2", "");
    let tx = tl.send_request(MS(0), udp(5060), inv.clone()).unwrap();
    drain(&mut tl);
    tl.handle_message(MS(100), udp(5060), response(&inv, 100, ""));
    tl.handle_message(MS(200), udp(5060), response(&inv, 180, "bt"));
    // After a provisional response timer A stops (nothing at 500 ms) and B no longer runs.
    let out = drain(&mut tl);
    assert_eq!(out.events.len(), 2);
    assert_eq!(tl.poll_timeout(), None);
    tl.handle_message(MS(1000), udp(5060), response(&inv, 486, "bt"));
    let out = drain(&mut tl);
    let ack = Message::parse(&out.sent[0].payload).unwrap();
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKa2"));
    assert_eq!(ack.to_tag(), Some("bt"));
    assert_eq!(ack.cseq().unwrap(), crate::msg::CSeq { seq: 1, method: Method::Ack });
    assert!(matches!(&out.events[..], [Event::Response { tx: t, msg }] if *t == tx && msg.status() == Some(486)));
    // A retransmitted 486 is answered with the same ACK and not passed up.
    tl.handle_message(MS(1500), udp(5060), response(&inv, 486, "bt"));
    let out = drain(&mut tl);
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].payload, ack.to_bytes());
    assert!(out.events.is_empty());
    // Timer D: 32 s.
    assert_eq!(tl.poll_timeout(), Some(MS(33_000)));
    tl.handle_timeout(MS(33_000));
    assert!(tl.is_empty());
}

#[test]
fn forking_passes_every_fork_up_and_resends_acks_for_retransmitted_2xx() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKf1", "");
    let tx = tl.send_request(MS(0), udp(5060), inv.clone()).unwrap();
    drain(&mut tl);
    for (t, code, tag) in [(10, 180, "a"), (20, 180, "b"), (30, 183, "b"), (40, 200, "a"), (50, 200, "b")] {
        tl.handle_message(MS(t), udp(5060), response(&inv, code, tag));
    }
    let out = drain(&mut tl);
    let got: Vec<_> = out
        .events
        .iter()
        .map(|e| match e {
            Event::Response { tx: t, msg } if *t == tx => (msg.status().unwrap(), msg.to_tag().unwrap().to_string()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, vec![(180, "a".into()), (180, "b".into()), (183, "b".into()), (200, "a".into()), (200, "b".into())]);
    // The user ACKs fork a; its retransmitted 200 gets the same ACK back, no event.
    let mut ack = request("ACK", "z9hG4bKack-a", ";tag=a");
    ack.set_header(HeaderName::CSeq, "1 ACK").unwrap();
    tl.send_ack(tx, udp(5070), ack.clone()).unwrap();
    assert_eq!(drain(&mut tl).sent.len(), 1);
    tl.handle_message(MS(600), udp(5060), response(&inv, 200, "a"));
    let out = drain(&mut tl);
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].dest, udp(5070));
    assert!(out.events.is_empty());
    // Fork b's 200 again, still not ACKed: passed up again so the user ACKs (and BYEs) it.
    tl.handle_message(MS(700), udp(5060), response(&inv, 200, "b"));
    assert_eq!(drain(&mut tl).events.len(), 1);
    // Timer M ends the transaction 64*T1 after the first 2xx; a late 2xx is then stray.
    assert_eq!(tl.poll_timeout(), Some(MS(40 + 32_000)));
    tl.handle_timeout(MS(40 + 32_000));
    assert!(tl.is_empty());
    assert!(drain(&mut tl).events.is_empty());
    tl.handle_message(MS(40_000), udp(5060), response(&inv, 200, "c"));
    assert!(matches!(drain(&mut tl).events.as_slice(), [Event::StrayResponse { .. }]));
    // A stray non-2xx is dropped.
    tl.handle_message(MS(40_001), udp(5060), response(&inv, 486, "c"));
    assert!(drain(&mut tl).events.is_empty());
}

#[test]
fn timer_e_backs_off_to_t2_and_timer_f_times_out() {
    let mut tl = layer();
    let opt = request("OPTIONS", "z9hG4bKe1", "");
    let tx = tl.send_request(MS(0), udp(5060), opt).unwrap();
    drain(&mut tl);
    let (times, events) = run_until(&mut tl, MS(40_000));
    assert_eq!(times, vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert!(matches!(events.as_slice(), [Event::Timeout { tx: t }] if *t == tx));
    assert!(tl.is_empty());
}

#[test]
fn non_invite_provisional_moves_e_to_t2_then_final_and_timer_k() {
    let mut tl = layer();
    let reg = request("REGISTER", "z9hG4bKe2", "");
    tl.send_request(MS(0), udp(5060), reg.clone()).unwrap();
    drain(&mut tl);
    tl.handle_timeout(MS(500));
    assert_eq!(drain(&mut tl).sent.len(), 1);
    tl.handle_message(MS(600), udp(5060), response(&reg, 100, ""));
    assert_eq!(drain(&mut tl).events.len(), 1);
    // Next retransmission: the one scheduled at 1500, then every T2.
    let (times, _) = run_until(&mut tl, MS(10_000));
    assert_eq!(times, vec![1500, 5500, 9500]);
    tl.handle_message(MS(10_000), udp(5060), response(&reg, 401, "r"));
    let out = drain(&mut tl);
    assert!(matches!(&out.events[..], [Event::Response { msg, .. }] if msg.status() == Some(401)));
    // Retransmitted final absorbed; timer K = T4.
    tl.handle_message(MS(10_100), udp(5060), response(&reg, 401, "r"));
    assert!(drain(&mut tl).events.is_empty());
    assert_eq!(tl.poll_timeout(), Some(MS(15_000)));
    tl.handle_timeout(MS(15_000));
    assert!(tl.is_empty());
}

#[test]
fn non_invite_over_tcp_ends_at_once() {
    let mut tl = layer();
    let reg = request("REGISTER", "z9hG4bKt2", "");
    tl.send_request(MS(0), tcp(5060), reg.clone()).unwrap();
    drain(&mut tl);
    assert_eq!(tl.poll_timeout(), Some(MS(32_000)), "only timer F runs over TCP");
    tl.handle_message(MS(50), tcp(5060), response(&reg, 200, "r"));
    assert_eq!(drain(&mut tl).events.len(), 1);
    assert!(tl.is_empty());
}

#[test]
fn a_burst_of_transactions_gives_its_memory_back_once_they_end() {
    let mut tl = layer();
    for i in 0..20_000u32 {
        let reg = request("REGISTER", &format!("z9hG4bKburst{i}"), "");
        tl.handle_message(MS(0), udp(5060), reg);
        let tx = match drain(&mut tl).events.as_slice() {
            [Event::Request { tx, .. }] => *tx,
            other => panic!("{other:?}"),
        };
        tl.reply(MS(1), tx, 200, None, Some("t")).unwrap();
        tl.send_request(MS(1), udp(5070), request("OPTIONS", &format!("z9hG4bKout{i}"), "")).unwrap();
        drain(&mut tl);
    }
    assert_eq!(tl.len(), 40_000);
    assert!(tl.servers.capacity() >= 20_000 && tl.clients.capacity() >= 20_000);
    run_until(&mut tl, MS(60_000));
    assert!(tl.is_empty());
    for cap in [tl.servers.capacity(), tl.server_index.capacity(), tl.clients.capacity(), tl.client_index.capacity(), tl.scheduled.capacity()] {
        assert!(cap <= 2 * MAP_FLOOR, "an empty map kept room for {cap} entries");
    }
}

#[test]
fn server_non_invite_absorbs_retransmissions_and_timer_j() {
    let mut tl = layer();
    let reg = request("REGISTER", "z9hG4bKs1", "");
    tl.handle_message(MS(0), udp(5060), reg.clone());
    let out = drain(&mut tl);
    let tx = match &out.events[..] {
        [Event::Request { tx, msg, .. }] => {
            // received/rport were filled in.
            let via = msg.top_via().unwrap();
            assert_eq!(via.rport(), Some(Some(5060)));
            *tx
        }
        other => panic!("{other:?}"),
    };
    assert!(out.sent.is_empty(), "no 100 for non-INVITE");
    // A retransmission before any response is absorbed silently.
    tl.handle_message(MS(500), udp(5060), reg.clone());
    let out = drain(&mut tl);
    assert!(out.sent.is_empty() && out.events.is_empty());
    tl.reply(MS(600), tx, 200, None, Some("srv")).unwrap();
    assert_eq!(sent_lines(&drain(&mut tl)), vec!["SIP/2.0 200 OK"]);
    assert!(tl.reply(MS(601), tx, 200, None, None).is_err());
    // Now a retransmission gets the 200 again.
    tl.handle_message(MS(1500), udp(5060), reg.clone());
    let out = drain(&mut tl);
    assert_eq!(sent_lines(&out), vec!["SIP/2.0 200 OK"]);
    assert!(out.events.is_empty());
    // Timer J: 64*T1 after the final response.
    assert_eq!(tl.poll_timeout(), Some(MS(600 + 32_000)));
    tl.handle_timeout(MS(600 + 32_000));
    assert!(tl.is_empty());
}

#[test]
fn server_non_invite_over_tcp_timer_j_is_zero() {
    let mut tl = layer();
    let reg = request("OPTIONS", "z9hG4bKs2", "");
    tl.handle_message(MS(0), tcp(40000), reg);
    let tx = match drain(&mut tl).events.pop() {
        Some(Event::Request { tx, .. }) => tx,
        other => panic!("{other:?}"),
    };
    tl.reply(MS(10), tx, 200, None, None).unwrap();
    assert_eq!(drain(&mut tl).sent[0].dest, tcp(40000));
    tl.handle_timeout(MS(10));
    assert!(tl.is_empty());
}

fn new_invite_server(tl: &mut TransactionLayer, inv: &Message) -> ServerTxId {
    tl.handle_message(MS(0), udp(5060), inv.clone());
    let out = drain(tl);
    assert_eq!(sent_lines(&out), vec!["SIP/2.0 100 Trying"]);
    match &out.events[..] {
        [Event::Request { tx, .. }] => *tx,
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_invite_timer_g_until_ack_then_timer_i() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKg1", "");
    let tx = new_invite_server(&mut tl, &inv);
    // A retransmitted INVITE gets the 100 again.
    tl.handle_message(MS(400), udp(5060), inv.clone());
    assert_eq!(sent_lines(&drain(&mut tl)), vec!["SIP/2.0 100 Trying"]);
    tl.reply(MS(1000), tx, 486, None, Some("u1")).unwrap();
    drain(&mut tl);
    let (times, _) = run_until(&mut tl, MS(9000));
    // G: T1, 2T1, 4T1, then capped at T2.
    assert_eq!(times, vec![1500, 2500, 4500, 8500]);
    let mut ack = request("ACK", "z9hG4bKg1", ";tag=u1");
    ack.set_header(HeaderName::CSeq, "1 ACK").unwrap();
    tl.handle_message(MS(9000), udp(5060), ack.clone());
    let out = drain(&mut tl);
    assert!(out.events.is_empty(), "the ACK of a non-2xx stays in the transaction");
    // Confirmed: no more retransmissions, ACK retransmissions absorbed, timer I = T4.
    tl.handle_message(MS(9100), udp(5060), ack);
    assert!(drain(&mut tl).sent.is_empty());
    assert_eq!(tl.poll_timeout(), Some(MS(14_000)));
    tl.handle_timeout(MS(14_000));
    assert!(tl.is_empty());
}

#[test]
fn server_invite_timer_h_reports_missing_ack() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKh1", "");
    let tx = new_invite_server(&mut tl, &inv);
    tl.reply(MS(0), tx, 603, None, Some("u1")).unwrap();
    let (times, events) = run_until(&mut tl, MS(40_000));
    assert_eq!(times.len(), 1 + 10, "the 603 plus G retransmissions");
    assert!(matches!(events.as_slice(), [Event::AckTimeout { tx: t }] if *t == tx));
    assert!(tl.is_empty());
}

#[test]
fn server_invite_2xx_retransmitted_until_the_end_to_end_ack() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKl1", "");
    let tx = new_invite_server(&mut tl, &inv);
    tl.reply(MS(0), tx, 200, None, Some("u2")).unwrap();
    drain(&mut tl);
    let (times, _) = run_until(&mut tl, MS(2000));
    assert_eq!(times, vec![500, 1500]);
    // The ACK of a 2xx has a new branch; it still finds the transaction through the dialog.
    let mut ack = request("ACK", "z9hG4bKnewbranch", ";tag=u2");
    ack.set_header(HeaderName::CSeq, "1 ACK").unwrap();
    tl.handle_message(MS(2000), udp(5060), ack.clone());
    let out = drain(&mut tl);
    assert!(matches!(&out.events[..], [Event::Ack { tx: Some(t), .. }] if *t == tx));
    // A retransmitted ACK is not passed up twice; no more 2xx retransmissions; timer L ends it.
    tl.handle_message(MS(2100), udp(5060), ack);
    assert!(drain(&mut tl).events.is_empty());
    let (times, events) = run_until(&mut tl, MS(40_000));
    assert!(times.is_empty() && events.is_empty());
    assert!(tl.is_empty());
}

#[test]
fn server_invite_2xx_without_ack_times_out_with_timer_l() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKl2", "");
    let tx = new_invite_server(&mut tl, &inv);
    tl.reply(MS(0), tx, 200, None, Some("u3")).unwrap();
    let (_, events) = run_until(&mut tl, MS(40_000));
    assert!(matches!(events.as_slice(), [Event::AckTimeout { tx: t }] if *t == tx));
    // An ACK with no transaction left is still passed up to the dialog.
    let mut ack = request("ACK", "z9hG4bKlate", ";tag=u3");
    ack.set_header(HeaderName::CSeq, "1 ACK").unwrap();
    tl.handle_message(MS(40_000), udp(5060), ack);
    assert!(matches!(drain(&mut tl).events.as_slice(), [Event::Ack { tx: None, .. }]));
}

#[test]
fn cancel_before_the_final_response() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKc1", "");
    let itx = new_invite_server(&mut tl, &inv);
    tl.reply(MS(100), itx, 180, None, Some("u4")).unwrap();
    drain(&mut tl);
    let cancel = Message::parse(&cancel_for(&inv).unwrap().to_bytes()).unwrap();
    tl.handle_message(MS(200), udp(5060), cancel);
    let ctx = match &drain(&mut tl).events[..] {
        [Event::Cancel { tx, invite, .. }] => {
            assert_eq!(*invite, itx);
            *tx
        }
        other => panic!("{other:?}"),
    };
    tl.reply(MS(210), ctx, 200, None, Some("u4")).unwrap();
    tl.reply(MS(210), itx, 487, None, Some("u4")).unwrap();
    assert_eq!(sent_lines(&drain(&mut tl)), vec!["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]);
    let mut ack = request("ACK", "z9hG4bKc1", ";tag=u4");
    ack.set_header(HeaderName::CSeq, "1 ACK").unwrap();
    tl.handle_message(MS(300), udp(5060), ack);
    assert!(drain(&mut tl).events.is_empty());
}

#[test]
fn cancel_after_the_200_and_cancel_matching_nothing() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKc2", "");
    let itx = new_invite_server(&mut tl, &inv);
    tl.reply(MS(100), itx, 200, None, Some("u5")).unwrap();
    drain(&mut tl);
    let cancel = cancel_for(&inv).unwrap();
    tl.handle_message(MS(200), udp(5060), cancel);
    let out = drain(&mut tl);
    assert_eq!(sent_lines(&out), vec!["SIP/2.0 200 OK"]);
    let resp = Message::parse(&out.sent[0].payload).unwrap();
    assert_eq!(resp.cseq().unwrap().method, Method::Cancel);
    assert!(out.events.is_empty(), "the call goes on; nothing for the user");
    let stray = cancel_for(&request("INVITE", "z9hG4bKnothing", "")).unwrap();
    tl.handle_message(MS(300), udp(5060), stray);
    assert_eq!(sent_lines(&drain(&mut tl)), vec!["SIP/2.0 481 Call/Transaction Does Not Exist"]);
}

#[test]
fn client_cancel_guards_the_invite() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKc3", "");
    let itx = tl.send_request(MS(0), udp(5060), inv.clone()).unwrap();
    tl.handle_message(MS(100), udp(5060), response(&inv, 180, "r"));
    drain(&mut tl);
    assert_eq!(tl.poll_timeout(), None);
    let ctx = tl.send_request(MS(1000), udp(5060), cancel_for(&inv).unwrap()).unwrap();
    let out = drain(&mut tl);
    assert_eq!(sent_lines(&out), vec!["CANCEL sip:bob@192.0.2.20 SIP/2.0"]);
    let cancel = Message::parse(&out.sent[0].payload).unwrap();
    tl.handle_message(MS(1100), udp(5060), response(&cancel, 200, "r"));
    assert!(matches!(drain(&mut tl).events.as_slice(), [Event::Response { tx, .. }] if *tx == ctx));
    // The far end never sends 487: the INVITE gives up 64*T1 after the CANCEL.
    let (_, events) = run_until(&mut tl, MS(40_000));
    assert!(events.iter().any(|e| matches!(e, Event::Timeout { tx } if *tx == itx)));
    assert!(tl.is_empty());
}

#[test]
fn rfc2543_requests_match_without_the_magic_cookie() {
    let mut tl = layer();
    let text = "INVITE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.15\r\n\
                From: <sip:a@example.com>;tag=old\r\nTo: <sip:bob@example.com>\r\n\
                Call-ID: legacy@192.0.2.15\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
    let inv = Message::parse(text.as_bytes()).unwrap();
    tl.handle_message(MS(0), udp(5060), inv.clone());
    let out = drain(&mut tl);
    let tx = match &out.events[..] {
        [Event::Request { tx, .. }] => *tx,
        other => panic!("{other:?}"),
    };
    // The 100 goes to the source IP (stamped as `received`) and the sent-by port (default).
    assert_eq!(out.sent[0].dest.addr, SocketAddr::from(([192, 0, 2, 10], 5060)));
    tl.handle_message(MS(300), udp(5060), inv.clone());
    let out = drain(&mut tl);
    assert_eq!(out.sent.len(), 1);
    assert!(out.events.is_empty(), "retransmission matched by RFC 2543 rules");
    tl.reply(MS(400), tx, 404, None, Some("nf")).unwrap();
    drain(&mut tl);
    // An ACK with another To-tag does not match; the right one confirms the transaction.
    let ack = |tag: &str| {
        Message::parse(
            text.replace("INVITE sip", "ACK sip")
                .replace("7 INVITE", "7 ACK")
                .replace("<sip:bob@example.com>", &format!("<sip:bob@example.com>;tag={tag}"))
                .as_bytes(),
        )
        .unwrap()
    };
    tl.handle_message(MS(500), udp(5060), ack("other"));
    assert!(matches!(drain(&mut tl).events.as_slice(), [Event::Ack { tx: None, .. }]));
    tl.handle_message(MS(600), udp(5060), ack("nf"));
    assert!(drain(&mut tl).events.is_empty());
    assert_eq!(tl.poll_timeout(), Some(MS(5600)), "timer I after the ACK");
}

#[test]
fn responses_follow_received_and_rport() {
    let mut tl = layer();
    // The phone is behind NAT: it says 10.0.0.5:5060 but we see 198.51.100.7:40123.
    let text = "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport\r\n\
                From: <sip:a@pbx>;tag=1\r\nTo: <sip:pbx>\r\nCall-ID: nat@x\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let src = Peer { transport: Transport::Udp, addr: "198.51.100.7:40123".parse().unwrap() };
    tl.handle_message(MS(0), src, Message::parse(text.as_bytes()).unwrap());
    let tx = match drain(&mut tl).events.pop() {
        Some(Event::Request { tx, msg, .. }) => {
            assert_eq!(msg.top_via().unwrap().received(), Some("198.51.100.7"));
            tx
        }
        other => panic!("{other:?}"),
    };
    tl.reply(MS(1), tx, 200, None, None).unwrap();
    let out = drain(&mut tl);
    assert_eq!(out.sent[0].dest, src);
    let resp = Message::parse(&out.sent[0].payload).unwrap();
    assert_eq!(resp.top_via().unwrap().rport(), Some(Some(40123)));
    // Without rport, from a host the Via does not name: the source address and port (the
    // port written beside another host means nothing for where the request came from).
    let text2 = text.replace(";rport", "").replace("z9hG4bKnat", "z9hG4bKnat2");
    tl.handle_message(MS(2), src, Message::parse(text2.as_bytes()).unwrap());
    let tx = match drain(&mut tl).events.pop() {
        Some(Event::Request { tx, .. }) => tx,
        other => panic!("{other:?}"),
    };
    tl.reply(MS(3), tx, 200, None, None).unwrap();
    assert_eq!(drain(&mut tl).sent[0].dest.addr, src.addr);
    // Without rport, from the host the Via names: the Via's port (RFC 3261 §18.2.2).
    let text3 = text2.replace("10.0.0.5:5060", "198.51.100.7:5070").replace("z9hG4bKnat2", "z9hG4bKnat3");
    tl.handle_message(MS(4), src, Message::parse(text3.as_bytes()).unwrap());
    let tx = match drain(&mut tl).events.pop() {
        Some(Event::Request { tx, .. }) => tx,
        other => panic!("{other:?}"),
    };
    tl.reply(MS(5), tx, 200, None, None).unwrap();
    assert_eq!(drain(&mut tl).sent[0].dest.addr, "198.51.100.7:5070".parse().unwrap());
}

/// A request that names another host in its Via, or carries its own `received=`/`rport=`,
/// is still answered to where it came from: nothing the client writes aims a response
/// elsewhere (no reflection towards a victim, loopback or the LAN).
#[test]
fn responses_never_follow_what_the_client_wrote() {
    let src = Peer { transport: Transport::Udp, addr: "198.51.100.7:40123".parse().unwrap() };
    let forged = [
        "SIP/2.0/UDP 127.0.0.1:22;branch=z9hG4bKf1",
        "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKf2;received=10.1.1.1",
        "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKf3;received=10.1.1.1;rport=53",
        "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKf4;rport=53",
        "SIP/2.0/UDP victim.example.com:9;branch=z9hG4bKf5;rport;received=192.0.2.99",
    ];
    for via in forged {
        let mut tl = layer();
        let text = format!(
            "OPTIONS sip:pbx SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@pbx>;tag=1\r\nTo: <sip:pbx>\r\n\
             Call-ID: forged@x\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        tl.handle_message(MS(0), src, Message::parse(text.as_bytes()).unwrap());
        let (tx, stamped) = match drain(&mut tl).events.pop() {
            Some(Event::Request { tx, msg, .. }) => (tx, msg.top_via().unwrap().params.get("received").flatten().map(str::to_owned)),
            other => panic!("{other:?}"),
        };
        assert!(stamped.is_none() || stamped.as_deref() == Some("198.51.100.7"), "{via}: received {stamped:?}");
        tl.reply(MS(1), tx, 200, None, None).unwrap();
        let out = drain(&mut tl);
        let dest = out.sent[0].dest.addr;
        assert_eq!(dest.ip(), src.addr.ip(), "{via}");
        if via.contains("198.51.100.7:5060") {
            // the Via names the source itself and asks no rport: its port
            assert_eq!(dest, "198.51.100.7:5060".parse().unwrap(), "{via}");
        } else {
            assert_eq!(dest, src.addr, "{via}");
        }
        let resp = Message::parse(&out.sent[0].payload).unwrap();
        let v = resp.top_via().unwrap();
        assert!(v.received().is_none_or(|r| r == "198.51.100.7"), "{via}: {:?}", v.received());
        assert!(v.rport().is_none_or(|p| p == Some(40123)), "{via}: {:?}", v.rport());
    }
}

#[test]
fn transport_errors_and_bad_sends() {
    let mut tl = layer();
    let inv = request("INVITE", "z9hG4bKx1", "");
    let tx = tl.send_request(MS(0), tcp(5060), inv.clone()).unwrap();
    assert_eq!(tl.send_request(MS(0), tcp(5060), inv), Err(TransactionError::Duplicate));
    tl.handle_transport_error(tx);
    assert!(matches!(drain(&mut tl).events.as_slice(), [Event::TransportError { .. }]));
    assert!(tl.is_empty());
    let legacy = request("OPTIONS", "nocookie", "");
    assert!(tl.send_request(MS(0), udp(1), legacy).is_err());
    let ack = request("ACK", "z9hG4bKx2", "");
    assert!(tl.send_request(MS(0), udp(1), ack).is_err());
    assert_eq!(tl.send_response(MS(0), ServerTxId(999), response(&request("OPTIONS", "z9hG4bKx3", ""), 200, "t")), Err(TransactionError::NoSuchTransaction));
}

#[test]
fn overload_answers_503_statelessly() {
    let mut tl = TransactionLayer::new(Config { max_transactions: 1, ..Config::default() });
    tl.handle_message(MS(0), udp(5060), request("OPTIONS", "z9hG4bKo1", ""));
    drain(&mut tl);
    tl.handle_message(MS(0), udp(5060), request("OPTIONS", "z9hG4bKo2", ""));
    let out = drain(&mut tl);
    assert_eq!(sent_lines(&out), vec!["SIP/2.0 503 Service Unavailable"]);
    assert!(out.events.is_empty());
    assert_eq!(tl.len(), 1);
}
