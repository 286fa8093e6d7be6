//! INVITE with Replaces (RFC 3891): a new INVITE that names a confirmed dialog of FlowPBX
//! takes that dialog's place in its call.
//!
//! What fits the B2BUA today is a party on the caller's side (A) of a call: a user moves a
//! call it placed from one device to another ("call pull"). The new INVITE's sender is
//! answered 200 with SDP from the media port side A used (its offer becomes A's remote; an
//! offer-less INVITE gets FlowPBX's offer and answers in its ACK), the call's side A becomes
//! the new dialog (found by its Call-ID and From-tag from then on), and the replaced dialog
//! gets a BYE. The other party keeps its dialog and its port and hears the new device.
//!
//! Only the extension that owns the replaced dialog may replace it (403), every identifier
//! must match (481), `early-only` is honoured (486 on a confirmed dialog).

use sip::dialog::{Dialog, SessionTimer, SessionTimerConfig};
use sip::transaction::{Peer, ServerTxId};
use sip::{HeaderName, Instant, Message};

use super::transfer::Replaces;
use super::*;

impl B2bua {
    /// An authenticated extension's INVITE carrying `Replaces` (the core sends every such
    /// INVITE here instead of routing it as a new call).
    pub(crate) fn invite_with_replaces(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, msg: Message, source: Peer, caller: Arc<User>) {
        // RFC 3891 §3: more than one Replaces is a bad request; so is one we cannot read
        let parsed = {
            let mut values = msg.headers_named("Replaces");
            match (values.next(), values.next()) {
                (Some(v), None) => Replaces::parse(v).ok_or("Bad Replaces"),
                _ => Err("Exactly One Replaces Allowed"),
            }
        };
        let replaces = match parsed {
            Ok(r) => r,
            Err(why) => return cx.sig.reply_with(now, tx, 400, Some(why), |_| Ok(())),
        };
        if !self.check_invite(cx, now, tx, &msg) {
            return;
        }
        // a confirmed dialog of ours, all three identifiers matching (an early dialog FlowPBX
        // did not initiate is never replaced: RFC 3891 §3 answers it 481 too)
        let Some((key, side)) = self.find_dialog(&replaces.call_id, &replaces.from_tag, &replaces.to_tag) else {
            tracing::info!(user = %caller.username, "INVITE with Replaces naming no dialog of ours");
            return cx.sig.reply_with(now, tx, 481, Some("Replaced Dialog Not Found"), |_| Ok(()));
        };
        if self.side_extension(key, side) != Some(caller.id) {
            tracing::warn!(key = %key, user = %caller.username, "INVITE with Replaces naming another party's dialog refused");
            return cx.sig.reply_with(now, tx, 403, Some("Not Your Call"), |_| Ok(()));
        }
        if replaces.early_only {
            return cx.sig.reply_with(now, tx, 486, Some("Replaced Dialog Already Confirmed"), |_| Ok(()));
        }
        if side == Side::B {
            // A callee's dialog is the client side of one of our legs: taking its place
            // means a server-side B leg (our 200 to a new INVITE standing in for the callee),
            // which the call model does not have yet. Call pickup (issue 16) needs the same
            // B leg; until then this is refused plainly rather than half done.
            return cx.sig.reply_with(now, tx, 501, Some("Replacing A Callee Dialog Not Supported"), |_| Ok(()));
        }
        let Some(call) = self.table.get(key) else { return cx.sig.reply(now, tx, 481) };
        if call.media.is_none() {
            // without anchored media the new device's SDP would have to be offered to the
            // other party in a re-INVITE and its answer relayed back in our 200: not built
            return cx.sig.reply_with(now, tx, 501, Some("Replaces Needs Anchored Media"), |_| Ok(()));
        }
        if call.transfer.is_some() || call.pending_ack.is_some() || call.media.as_ref().is_some_and(|m| m.offer.is_some()) {
            return cx.sig.reply(now, tx, 491);
        }
        let (Some(call_id), Some(from_tag)) = (msg.call_id(), msg.from_tag()) else { return cx.sig.reply(now, tx, 400) };
        if self.table.by_caller_dialog(call_id, from_tag).is_some() {
            return cx.sig.reply_with(now, tx, 400, Some("Dialog Already Exists"), |_| Ok(()));
        }
        // the offer is checked before anything changes: the replaced dialog keeps its media
        // when the new one cannot be answered
        if let Err(e) = self.check_offer(key, Side::A, msg.content_type(), msg.body()) {
            let (code, reason) = fault_status(e);
            return cx.sig.reply_with(now, tx, code, Some(reason), |_| Ok(()));
        }
        let (ct, body) = match self.answer_locally(cx, key, Side::A, Some(msg.body()), msg.content_type(), source) {
            Ok(b) => b,
            Err(e) => {
                let (code, reason) = fault_status(e);
                return cx.sig.reply_with(now, tx, code, Some(reason), |_| Ok(()));
            }
        };
        let to_tag = cx.sig.ids.tag();
        let sips = matches!(msg.uri(), Some(sip::msg::Uri::Sip(u)) if u.secure);
        let callee = self.table.get(key).map(|c| c.callee.clone()).unwrap_or_default();
        let contact = cx.sig.contact_for_scheme(&callee, source, sips);
        let Some(req) = cx.sig.txl.request(tx) else { return };
        let mut ok = Message::response_to(req, 200, None, Some(&to_tag));
        let built = ok.push_header(HeaderName::Contact, &format!("<{contact}>")).and_then(|()| ok.push_header(HeaderName::Allow, ALLOW)).and_then(|()| {
            if body.is_empty() {
                Ok(())
            } else {
                ok.set_body(ct.as_deref(), body)
            }
        });
        if built.is_err() {
            // (the media session already heard the new offer: the call cannot go on as it was)
            tracing::warn!(key = %key, "the answer to an INVITE with Replaces could not be written: the call ends");
            cx.sig.reply(now, tx, 500);
            return self.end_call(cx, now, key, 0, Cause::Failed(500), None);
        }
        // the replaced dialog ends (on its own address, before side A is the new one)
        self.bye_side(cx, now, key, Side::A);
        let Some(call) = self.table.get_mut(key) else { return };
        let old_call_id = match call.a_leg.take() {
            // side A was a leg a transfer put there: retired (its BYE, if it sends one, is
            // answered 200)
            Some(l) => call.leg_mut(l).map(|leg| {
                leg.state = LegState::Retired;
                leg.call_id.clone()
            }),
            None => call.a.invite.call_id().map(str::to_owned),
        }
        .unwrap_or_default();
        // the session timer is the new caller's, as `answer_caller` negotiates it
        let refresher_is_caller = msg.session_expires().is_some_and(|se| se.refresher != Some(sip::msg::Refresher::Uas));
        call.session = if refresher_is_caller && msg.supports("timer") {
            let cfg = SessionTimerConfig { interval: self.session_expires, ..SessionTimerConfig::default() };
            SessionTimer::answer(&cfg, &msg, &mut ok, now).ok()
        } else {
            None
        };
        let session_at = call.session.map(|s| s.expires_at());
        call.transfers.push(serde_json::json!({
            "at_ms": wall(now).unix_millis(),
            "kind": "replaces",
            "by": "caller",
            "replaced_call": old_call_id,
            "extension_id": caller.id,
        }));
        let dialog = Dialog::uas(&msg, &to_tag, &contact, true).ok();
        let new = ALeg { tx, invite: msg, source, to_tag, contact, dialog, early_media: false };
        // (the call was found above: the swap cannot miss it)
        let _ = self.table.replace_a(key, new);
        let _ = cx.sig.txl.send_response(now, tx, ok);
        self.set_timer(key, TimerKind::Session, session_at);
        tracing::info!(key = %key, user = %caller.username, replaced = %old_call_id, "caller's dialog replaced");
        self.publish(key);
    }
}
