//! Fuzzes the datagram parser, the stream framer, the typed getters and the SDP and digest
//! parsers: none may panic, and whatever parses must survive a serialise/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::msg::Frame;
use sip::{HeaderName, Message, StreamFramer};

fn exercise(m: &Message) {
    let _ = (m.top_via(), m.from(), m.to(), m.call_id(), m.cseq(), m.max_forwards(), m.expires());
    let _ = (m.vias().count(), m.contacts().count(), m.routes().count(), m.record_routes().count());
    let _ = (m.session_expires(), m.min_se(), m.supports("timer"), m.uri());
    for c in m.contacts() {
        let _ = (c.expires(), c.instance(), c.q(), c.reg_id());
    }
    for h in [HeaderName::Authorization, HeaderName::WwwAuthenticate] {
        for v in m.headers(h) {
            let _ = sip::auth::Credentials::parse(v);
            let _ = sip::auth::Challenge::parse(v);
        }
    }
    let _ = sip::sdp::SessionDescription::parse(m.body());
    let wire = m.to_bytes();
    let again = Message::parse(&wire).expect("a parsed message re-parses after serialising");
    assert_eq!(again.to_bytes(), wire);
    let _ = Message::response_to(m, 400, None, Some("x"));
}

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(m) => exercise(&m),
        Err(e) => {
            let _ = e.disposition();
            if let Some(req) = e.request() {
                let _ = Message::response_to(req, 400, None, Some("x")).to_bytes();
            }
        }
    }
    let mut framer = StreamFramer::default();
    for chunk in data.chunks(13) {
        framer.push(chunk);
        while let Some(f) = framer.next_frame() {
            if let Ok(Frame::Message(m)) = f {
                exercise(&m);
            }
        }
    }
});
