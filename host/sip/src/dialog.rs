//! Dialogs (RFC 3261 §12) and session timers (RFC 4028), as plain data the user keeps per
//! call leg.
//!
//! A UAC creates a [`Dialog`] from the INVITE it sent and a 1xx-with-To-tag or 2xx it got
//! ([`Dialog::uac`]); a UAS from the INVITE it got and the To-tag it chose ([`Dialog::uas`]).
//! In-dialog requests are built with [`Dialog::request`] (BYE, re-INVITE, UPDATE, INFO, ...)
//! and [`Dialog::ack`]; incoming ones are checked with [`Dialog::on_request`].

use std::time::Duration;

use crate::error::DialogError;
use crate::msg::{HeaderName, Message, Method, NameAddr, Refresher};
use crate::time::Instant;

/// What identifies a dialog at this end (RFC 3261 §12): Call-ID and both tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl DialogId {
    /// The id, at the UAS, of the dialog an incoming request belongs to (local = To-tag).
    pub fn of_incoming(req: &Message) -> Option<DialogId> {
        Some(DialogId { call_id: req.call_id()?.to_owned(), local_tag: req.to_tag()?.to_owned(), remote_tag: req.from_tag()?.to_owned() })
    }

    /// The id, at the UAC, of the dialog a response belongs to (local = From-tag).
    pub fn of_response(resp: &Message) -> Option<DialogId> {
        Some(DialogId { call_id: resp.call_id()?.to_owned(), local_tag: resp.from_tag()?.to_owned(), remote_tag: resp.to_tag()?.to_owned() })
    }
}

/// The state of a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended (BYE, or the early dialog's INVITE failed).
    Terminated,
}

/// One dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Early, confirmed or terminated.
    pub state: DialogState,
    /// Our From (UAC) / To (UAS) value, tag included, as we write it in our requests' From.
    pub local: String,
    /// The peer's value, tag included, as we write it in our requests' To.
    pub remote: String,
    /// Where our requests go: the peer's Contact URI.
    pub remote_target: String,
    /// The route set (Record-Route values, in the order our requests carry them).
    pub route_set: Vec<String>,
    /// Our Contact value, sent in target refresh requests.
    pub local_contact: String,
    /// The last CSeq number we used.
    pub local_seq: u32,
    /// The last CSeq number the peer used, once it sent a request.
    pub remote_seq: Option<u32>,
    /// CSeq number of the INVITE that created the dialog or of the last re-INVITE we sent
    /// (what [`Dialog::ack`] uses).
    pub invite_seq: u32,
    /// Whether the dialog was set up over sips:.
    pub secure: bool,
}

fn contact_uri(msg: &Message) -> Option<String> {
    msg.contact().map(|c| c.uri_str.to_owned())
}

fn without_tag(v: &str) -> bool {
    NameAddr::parse(v).is_some_and(|n| n.tag().is_none())
}

impl Dialog {
    /// The UAC's dialog from the INVITE it sent and a response with a To-tag: 101–199 make it
    /// early, 2xx confirmed (RFC 3261 §12.1.2). The route set is the response's Record-Route
    /// reversed.
    pub fn uac(invite: &Message, resp: &Message, local_contact: &str) -> Result<Dialog, DialogError> {
        check_contact(local_contact)?;
        let code = resp.status().ok_or(DialogError::InvalidMessage("not a response"))?;
        if !(101..300).contains(&code) {
            return Err(DialogError::InvalidMessage("only 101-299 create dialogs"));
        }
        let id = DialogId::of_response(resp).ok_or(DialogError::InvalidMessage("no To-tag"))?;
        let mut route_set: Vec<String> = resp.headers(HeaderName::RecordRoute).flat_map(crate::msg::split_list).map(str::to_owned).collect();
        route_set.reverse();
        let remote_target = contact_uri(resp).ok_or(DialogError::InvalidMessage("no Contact"))?;
        let seq = invite.cseq().ok_or(DialogError::InvalidMessage("no CSeq"))?.seq;
        Ok(Dialog {
            id,
            state: if code >= 200 { DialogState::Confirmed } else { DialogState::Early },
            local: invite.header(HeaderName::From).ok_or(DialogError::InvalidMessage("no From"))?.to_owned(),
            remote: resp.header(HeaderName::To).ok_or(DialogError::InvalidMessage("no To"))?.to_owned(),
            remote_target,
            route_set,
            local_contact: local_contact.to_owned(),
            local_seq: seq,
            remote_seq: None,
            invite_seq: seq,
            secure: invite.uri().is_some_and(|u| u.scheme() == Some(crate::msg::Scheme::Sips)),
        })
    }

    /// The UAS's dialog from the INVITE it received and the To-tag it put in its 1xx/2xx
    /// (RFC 3261 §12.1.1). `confirmed` when created by sending a 2xx.
    pub fn uas(invite: &Message, local_tag: &str, local_contact: &str, confirmed: bool) -> Result<Dialog, DialogError> {
        check_contact(local_contact)?;
        if !crate::msg::is_token(local_tag) {
            return Err(DialogError::InvalidMessage("our tag is not a token"));
        }
        let call_id = invite.call_id().ok_or(DialogError::InvalidMessage("no Call-ID"))?;
        let remote_tag = invite.from_tag().ok_or(DialogError::InvalidMessage("no From-tag"))?;
        let to = invite.header(HeaderName::To).ok_or(DialogError::InvalidMessage("no To"))?;
        let local = if without_tag(to) { format!("{to};tag={local_tag}") } else { to.to_owned() };
        let seq = invite.cseq().ok_or(DialogError::InvalidMessage("no CSeq"))?.seq;
        Ok(Dialog {
            id: DialogId { call_id: call_id.to_owned(), local_tag: local_tag.to_owned(), remote_tag: remote_tag.to_owned() },
            state: if confirmed { DialogState::Confirmed } else { DialogState::Early },
            local,
            remote: invite.header(HeaderName::From).ok_or(DialogError::InvalidMessage("no From"))?.to_owned(),
            remote_target: contact_uri(invite).ok_or(DialogError::InvalidMessage("no Contact"))?,
            route_set: invite.headers(HeaderName::RecordRoute).flat_map(crate::msg::split_list).map(str::to_owned).collect(),
            local_contact: local_contact.to_owned(),
            local_seq: 0,
            remote_seq: Some(seq),
            invite_seq: seq,
            secure: invite.uri().is_some_and(|u| u.scheme() == Some(crate::msg::Scheme::Sips)),
        })
    }

    /// Updates the dialog with a response to a request we sent in it (or to the INVITE that
    /// created it): a 2xx to INVITE confirms an early dialog and recomputes its route set
    /// (RFC 3261 §13.2.2.4); a 2xx to a target refresh (INVITE, UPDATE) updates the remote
    /// target; 481/408 to an in-dialog request terminate it (RFC 3261 §12.2.1.2).
    pub fn on_response(&mut self, resp: &Message) -> Result<(), DialogError> {
        let code = resp.status().ok_or(DialogError::InvalidMessage("not a response"))?;
        let cseq = resp.cseq().ok_or(DialogError::InvalidMessage("no CSeq"))?;
        if resp.call_id() != Some(&self.id.call_id) || resp.from_tag() != Some(&self.id.local_tag) {
            return Err(DialogError::WrongDialog);
        }
        if let Some(tag) = resp.to_tag()
            && tag != self.id.remote_tag
        {
            return Err(DialogError::WrongDialog);
        }
        let refresh = matches!(cseq.method, Method::Invite | Method::Update);
        match code {
            101..=199 if refresh && self.state == DialogState::Early => {
                if let Some(t) = contact_uri(resp) {
                    self.remote_target = t;
                }
            }
            200..=299 => {
                if cseq.method == Method::Invite && self.state == DialogState::Early {
                    self.state = DialogState::Confirmed;
                    let mut rs: Vec<String> = resp.headers(HeaderName::RecordRoute).flat_map(crate::msg::split_list).map(str::to_owned).collect();
                    rs.reverse();
                    self.route_set = rs;
                }
                if refresh && let Some(t) = contact_uri(resp) {
                    self.remote_target = t;
                }
            }
            300.. if self.state == DialogState::Early && cseq.method == Method::Invite => {
                self.state = DialogState::Terminated;
            }
            408 | 481 => self.state = DialogState::Terminated,
            _ => {}
        }
        Ok(())
    }

    /// Checks a request received in this dialog (RFC 3261 §12.2.2): it must belong to it,
    /// and its CSeq must be higher than the last one ([`DialogError::CSeqOutOfOrder`]: answer
    /// 500). ACK and CANCEL reuse their INVITE's number and are exempt. A re-INVITE or UPDATE
    /// with a Contact updates the remote target; BYE terminates the dialog.
    pub fn on_request(&mut self, req: &Message) -> Result<(), DialogError> {
        let method = req.method().ok_or(DialogError::InvalidMessage("not a request"))?;
        if DialogId::of_incoming(req).as_ref() != Some(&self.id) {
            return Err(DialogError::WrongDialog);
        }
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        let seq = req.cseq().ok_or(DialogError::InvalidMessage("no CSeq"))?.seq;
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if self.remote_seq.is_some_and(|last| seq <= last) {
            return Err(DialogError::CSeqOutOfOrder);
        }
        self.remote_seq = Some(seq);
        match method {
            Method::Invite | Method::Update => {
                if let Some(t) = contact_uri(req) {
                    self.remote_target = t;
                }
            }
            Method::Bye => self.state = DialogState::Terminated,
            _ => {}
        }
        Ok(())
    }

    fn build(&self, method: Method, seq: u32, top_via: &str) -> Message {
        // RFC 3261 §12.2.1.1: loose routing keeps the remote target as Request-URI; a strict
        // router first in the route set becomes the Request-URI and the target goes last.
        let first_route =
            self.route_set.first().and_then(|r| NameAddr::parse(r).map(|n| (n.uri_str.to_owned(), n.uri.as_sip().is_some_and(|s| s.is_loose_router()))));
        let (ruri, routes): (String, Vec<String>) = match first_route {
            Some((uri, false)) => {
                let mut rest: Vec<String> = self.route_set[1..].to_vec();
                rest.push(format!("<{}>", self.remote_target));
                (uri, rest)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut m = Message::request_copied(method.clone(), &ruri);
        m.push_copied(HeaderName::Via, top_via);
        m.push_copied(HeaderName::MaxForwards, "70");
        for r in &routes {
            m.push_copied(HeaderName::Route, r);
        }
        m.push_copied(HeaderName::From, &self.local);
        m.push_copied(HeaderName::To, &self.remote);
        m.push_copied(HeaderName::CallId, &self.id.call_id);
        m.push_copied(HeaderName::CSeq, &format!("{seq} {method}"));
        if matches!(method, Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer) {
            m.push_copied(HeaderName::Contact, &format!("<{}>", self.local_contact.trim_matches(['<', '>'])));
        }
        m
    }

    /// A new request in the dialog (BYE, re-INVITE, UPDATE, INFO, REFER, ...), with the next
    /// CSeq, the route set and our Contact for target refreshes. `top_via` is the full Via
    /// value (`SIP/2.0/UDP host:port;branch=...;rport`), its branch fresh. Add a body with
    /// [`Message::set_body`]. Not for ACK or CANCEL.
    pub fn request(&mut self, method: Method, top_via: &str) -> Message {
        self.local_seq = self.local_seq.saturating_add(1);
        if method == Method::Invite {
            self.invite_seq = self.local_seq;
        }
        self.build(method, self.local_seq, top_via)
    }

    /// The ACK for a 2xx to our (re-)INVITE (RFC 3261 §13.2.2.4): CSeq number of that INVITE,
    /// its own new branch in `top_via`. Send it with
    /// [`crate::TransactionLayer::send_ack`].
    pub fn ack(&self, top_via: &str) -> Message {
        let mut m = self.build(Method::Ack, self.invite_seq, top_via);
        let cseq = format!("{} ACK", self.invite_seq);
        m.set_copied(HeaderName::CSeq, &cseq);
        m
    }
}

/// Our Contact for a dialog must be a URI we can write: no whitespace, CR, LF or NUL.
fn check_contact(c: &str) -> Result<(), DialogError> {
    let c = c.trim_matches(['<', '>']);
    if c.is_empty() || c.bytes().any(|b| b.is_ascii_whitespace() || b == 0 || b == b'<' || b == b'>') {
        return Err(DialogError::InvalidMessage("our Contact is not a URI"));
    }
    Ok(())
}

/// Session timer settings (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The smallest interval we accept (Min-SE), seconds; at least 90.
    pub min_se: u32,
    /// The interval we ask for or grant, seconds.
    pub interval: u32,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig { min_se: 90, interval: 1800 }
    }
}

/// What a session timer wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerAction {
    /// We are the refresher and half the interval has passed: send a re-INVITE or UPDATE.
    Refresh,
    /// No refresh came in time: end the session with BYE.
    Expire,
}

/// A negotiated session timer for one dialog: deadlines the driver schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The negotiated interval, seconds.
    pub interval: u32,
    /// Whether this end refreshes.
    pub we_refresh: bool,
    last_refresh: Instant,
}

impl SessionTimer {
    /// UAC side: adds Session-Expires, Min-SE and `Supported: timer` to an outgoing INVITE.
    pub fn offer(cfg: &SessionTimerConfig, invite: &mut Message) {
        let min_se = cfg.min_se.max(90);
        invite.set_copied(HeaderName::SessionExpires, &cfg.interval.max(min_se).to_string());
        invite.set_copied(HeaderName::MinSe, &min_se.to_string());
        if !invite.supports("timer") {
            invite.push_copied(HeaderName::Supported, "timer");
        }
    }

    /// UAC side: after a 422, the interval to retry with (the 422's Min-SE).
    pub fn interval_after_422(resp: &Message) -> Option<u32> {
        (resp.status() == Some(422)).then(|| resp.min_se()).flatten()
    }

    /// UAC side: the timer a 2xx to our INVITE/UPDATE sets up, if it carries Session-Expires.
    pub fn from_response(resp: &Message, now: Instant) -> Option<SessionTimer> {
        let se = resp.session_expires()?;
        Some(SessionTimer { interval: se.interval, we_refresh: se.refresher != Some(Refresher::Uas), last_refresh: now })
    }

    /// UAS side (RFC 4028 §9): reads an INVITE/UPDATE and fills in the 2xx. Returns
    /// [`DialogError::SessionIntervalTooSmall`] when the request's Session-Expires is below our
    /// Min-SE — answer 422 with [`SessionTimer::reject`]. Without Session-Expires in the
    /// request we still run a timer: refreshed by the UAC when it supports `timer`, else by us.
    pub fn answer(cfg: &SessionTimerConfig, req: &Message, resp: &mut Message, now: Instant) -> Result<SessionTimer, DialogError> {
        let min_se = cfg.min_se.max(90);
        let uac_supports = req.supports("timer");
        let (interval, asked) = match req.session_expires() {
            Some(se) if se.interval < min_se => return Err(DialogError::SessionIntervalTooSmall(min_se)),
            // We may lower the interval, never below the request's Min-SE or ours.
            Some(se) => (se.interval.min(cfg.interval).max(req.min_se().unwrap_or(90)).max(min_se), se.refresher),
            None => (cfg.interval.max(min_se), None),
        };
        let refresher = match asked {
            Some(r) => r,
            None if uac_supports => Refresher::Uac,
            None => Refresher::Uas,
        };
        if refresher == Refresher::Uac && !uac_supports {
            // The UAC cannot refresh what it does not support.
            return Self::answer_as(resp, interval, Refresher::Uas, false, now);
        }
        Self::answer_as(resp, interval, refresher, uac_supports, now)
    }

    fn answer_as(resp: &mut Message, interval: u32, refresher: Refresher, require: bool, now: Instant) -> Result<SessionTimer, DialogError> {
        resp.set_copied(HeaderName::SessionExpires, &format!("{interval};refresher={}", refresher.as_str()));
        if require {
            resp.set_copied(HeaderName::Require, "timer");
        }
        Ok(SessionTimer { interval, we_refresh: refresher == Refresher::Uas, last_refresh: now })
    }

    /// Adds our Min-SE to a 422 response.
    pub fn reject(cfg: &SessionTimerConfig, resp: &mut Message) {
        resp.set_copied(HeaderName::MinSe, &cfg.min_se.max(90).to_string());
    }

    /// A refresh (a 2xx to a re-INVITE/UPDATE, sent or received) happened at `now`.
    pub fn refreshed(&mut self, now: Instant) {
        self.last_refresh = now;
    }

    /// When we must refresh, if we are the refresher: half the interval after the last one.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.we_refresh.then(|| self.last_refresh + Duration::from_secs(u64::from(self.interval)) / 2)
    }

    /// When the session expires without a refresh. If the peer refreshes, BYE is due a bit
    /// before the end (interval minus min(32 s, interval/3), RFC 4028 §10); if we refresh and
    /// our refresh keeps failing, at the interval itself.
    pub fn expires_at(&self) -> Instant {
        let i = u64::from(self.interval);
        let secs = if self.we_refresh { i } else { i - (i / 3).min(32) };
        self.last_refresh + Duration::from_secs(secs)
    }

    /// The next deadline to schedule.
    pub fn next_deadline(&self) -> Instant {
        self.refresh_at().unwrap_or_else(|| self.expires_at())
    }

    /// What is due at `now`, if anything.
    pub fn poll(&self, now: Instant) -> Option<SessionTimerAction> {
        if now >= self.expires_at() {
            Some(SessionTimerAction::Expire)
        } else if self.refresh_at().is_some_and(|r| now >= r) {
            Some(SessionTimerAction::Refresh)
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "dialog_tests.rs"]
mod tests;
