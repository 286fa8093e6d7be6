//! Transfer (RFC 3515 REFER, RFC 3891 Replaces): a party to a bridged call hands the other
//! party on to someone else.
//!
//! FlowPBX terminates the REFER: it never passes it to the other party. For a blind transfer
//! by side S of a call S ↔ R, it answers 202, reports progress to S with NOTIFYs of
//! `message/sipfrag`, and starts a new leg to the target T with its own SDP offer from the
//! media port S used. When T answers, T takes S's place: the media session's leg S now talks
//! to T (R keeps its port and dialog), S gets the final NOTIFY and a BYE (its dialog is
//! retired: a BYE it sends itself is answered 200), and R is re-offered `sendrecv` (the
//! transferor usually put it on hold first). When T fails, S hears why in the NOTIFY and the
//! call stays as it was. The target is an extension (its registered contacts ring at once)
//! or a number outside, through the outbound routes with the transferor's permissions.
//!
//! An attended transfer is a REFER whose Refer-To carries `Replaces` naming the transferor's
//! other call (S ↔ T, the consultation): FlowPBX moves T into the first call in S's place (a
//! re-INVITE to T from the first call's media port), ends both of S's dialogs and the
//! second call.

use std::collections::VecDeque;

use bytes::Bytes;
use sip::msg::{NameAddr, Uri};
use sip::transaction::{ClientTxId, Peer, ServerTxId};
use sip::{HeaderName, Instant, Message, Method};

use super::*;

/// A transfer in progress.
#[derive(Debug)]
pub(super) struct TransferJob {
    /// The side that asked (its REFER).
    pub(super) by: Side,
    /// What it asked for, as written (the CDR's record).
    pub(super) target: String,
    /// The trunks still to try for a number outside (failover).
    pub(super) next: VecDeque<TrunkAttempt>,
    /// 180 was reported already.
    pub(super) ringing_notified: bool,
}

/// How long a transfer target may ring.
const TRANSFER_RING: std::time::Duration = std::time::Duration::from_secs(60);

/// The sipfrag status line of a transfer's progress.
fn sipfrag(code: u16) -> String {
    format!("SIP/2.0 {code} {}\r\n", sip::msg::reason_phrase(code))
}

impl B2bua {
    /// The extension a side of the call belongs to (the one whose permissions a transfer
    /// by it uses); `None` for a trunk's side.
    pub(super) fn side_extension(&self, key: CallKey, side: Side) -> Option<i64> {
        let call = self.table.get(key)?;
        match side {
            Side::A => match call.a_leg {
                Some(l) => match call.leg(l)?.target {
                    LegTarget::Extension(id) => Some(id),
                    LegTarget::Trunk { .. } => None,
                },
                None => call.caller_ext,
            },
            Side::B => match call.leg(call.winner()?)?.target {
                LegTarget::Extension(id) => Some(id),
                LegTarget::Trunk { .. } => None,
            },
        }
    }

    /// A REFER from `side` of a bridged call.
    pub(super) fn on_refer(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, side: Side, tx: ServerTxId, msg: &Message) {
        let Some(call) = self.table.get(key) else { return cx.sig.reply(now, tx, 481) };
        if call.winner().is_none() {
            return cx.sig.reply_with(now, tx, 403, Some("Only Answered Calls Transfer"), |_| Ok(()));
        }
        if call.transfer.is_some() || call.media.as_ref().is_some_and(|m| m.offer.is_some()) {
            return cx.sig.reply(now, tx, 491);
        }
        let Some(refer_to) = msg.header(HeaderName::ReferTo).and_then(NameAddr::parse) else {
            return cx.sig.reply_with(now, tx, 400, Some("Bad Refer-To"), |_| Ok(()));
        };
        let Some(by_ext) = self.side_extension(key, side) else {
            tracing::info!(key = %key, ?side, "REFER from a trunk's side refused");
            return cx.sig.reply_with(now, tx, 403, Some("Transfer Not Allowed"), |_| Ok(()));
        };
        let Uri::Sip(target_uri) = &refer_to.uri else {
            return cx.sig.reply_with(now, tx, 416, None, |_| Ok(()));
        };
        // attended: Refer-To: <sip:t@pbx?Replaces=callid%3Bto-tag%3D..%3Bfrom-tag%3D..>
        if let Some(replaces) = target_uri.headers.and_then(replaces_header) {
            return self.attended_transfer(cx, now, key, side, by_ext, tx, &replaces);
        }
        let Some(target) = target_uri.user_unescaped().map(|u| u.into_owned()).filter(|u| !u.is_empty()) else {
            return cx.sig.reply_with(now, tx, 400, Some("Refer-To Names No One"), |_| Ok(()));
        };
        cx.sig.reply(now, tx, 202);
        if let Some(call) = self.table.get_mut(key) {
            call.transfer = Some(TransferJob { by: side, target: target.clone(), next: VecDeque::new(), ringing_notified: false });
        }
        self.notify_transferor(cx, now, key, 100, false);
        tracing::info!(key = %key, ?side, %target, "blind transfer");
        match self.start_transfer_legs(cx, now, key, by_ext, &target) {
            Ok(()) => self.set_timer(key, TimerKind::Transfer, Some(now + TRANSFER_RING)),
            Err(code) => self.fail_transfer(cx, now, key, code),
        }
    }

    /// Rings the target of a transfer: an extension's contacts, or a number through the
    /// transferor's outbound routes. `Err` is the status the transfer fails with.
    fn start_transfer_legs(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, by_ext: i64, target: &str) -> Result<(), u16> {
        let Some(by) = self.table.get(key).and_then(|c| c.transfer.as_ref()).map(|t| t.by) else { return Err(500) };
        // what the target sees: the party it gets (the other side)
        let shown = self.side_party(key, other(by)).unwrap_or(Party { name: None, number: crate::b2bua::ANONYMOUS.to_owned() });
        if let Some(user) = cx.dir.by_number(target).cloned() {
            if user.dnd {
                return Err(486);
            }
            let contacts = cx.registrar.contacts(user.id, now);
            if contacts.is_empty() {
                return Err(480);
            }
            let mut started = 0;
            for b in contacts {
                let (ct, body) = self.transfer_offer(cx, key, by, b.next_hop, user.srtp);
                let spec =
                    ContactLeg { extension_id: user.id, ext: &user.extension, binding: &b, caller: &shown, max_forwards: 70, purpose: LegPurpose::Transfer };
                if self.start_contact_leg(cx, now, key, spec, ct, body).is_ok() {
                    started += 1;
                }
            }
            return if started > 0 { Ok(()) } else { Err(500) };
        }
        // a number outside: the transferor's classes and routes
        let Some(user) = cx.dir.by_id(by_ext).cloned() else { return Err(403) };
        if !target.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#')) {
            return Err(404);
        }
        let placer = crate::routing::Placer::Extension {
            id: user.id,
            classes: user.call_classes.clone(),
            outbound: user.outbound_caller_id.clone(),
            emergency: user.emergency_caller_id.clone(),
            own: crate::routing::CallerId { name: Some(user.name.clone()), number: user.extension.clone() },
        };
        let all_trunks: Vec<i64> = cx.dir.trunks().iter().map(|t| t.id).collect();
        let plan = match crate::routing::plan(target, &placer, cx.dir.routes(), &self.limits.emergency_numbers, &all_trunks) {
            Ok(p) => p,
            Err(r) => {
                if matches!(r, crate::routing::Refusal::NotPermitted { .. }) {
                    self.limit_tripped(user.id, target, "class_not_permitted");
                }
                return Err(r.status());
            }
        };
        if let Some(call) = self.table.get_mut(key) {
            call.outbound.get_or_insert(Outbound { route_id: plan.route_id, emergency: plan.emergency, trunk_id: None });
        }
        let mut attempts = TrunkAttempt::all_of(&plan);
        while let Some(a) = attempts.pop_front() {
            if self.start_trunk_leg_for(cx, now, key, &a, LegPurpose::Transfer).is_ok() {
                if let Some(t) = self.table.get_mut(key).and_then(|c| c.transfer.as_mut()) {
                    t.next = attempts;
                }
                return Ok(());
            }
        }
        Err(503)
    }

    /// Who a side is, as shown to a transfer target.
    fn side_party(&self, key: CallKey, side: Side) -> Option<Party> {
        let call = self.table.get(key)?;
        match (side, call.a_leg) {
            (Side::A, None) => Some(call.caller.clone()),
            _ => {
                let leg = call.leg(if side == Side::A { call.a_leg? } else { call.winner()? })?;
                let number = leg.invite.to().and_then(|t| t.uri.user().map(|u| u.into_owned()))?;
                Some(Party::from_untrusted(None, Some(&number)))
            }
        }
    }

    /// A response on a transfer leg.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_transfer_leg_response(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        tx: ClientTxId,
        key: CallKey,
        idx: LegIdx,
        code: u16,
        msg: Message,
        dest: Peer,
    ) {
        let Some(call) = self.table.get_mut(key) else { return };
        let Some(leg) = call.leg_mut(idx) else { return };
        if code < 200 {
            leg.provisional = true;
            let first = call.transfer.as_mut().is_some_and(|t| !std::mem::replace(&mut t.ringing_notified, true));
            if code != 100 && first {
                self.notify_transferor(cx, now, key, 180, false);
            }
            return;
        }
        if code < 300 {
            return self.complete_transfer(cx, now, tx, key, idx, msg, dest);
        }
        if matches!(code, 401 | 407) && matches!(leg.target, LegTarget::Trunk { auth_tried: false, .. }) && self.authenticate_leg(cx, now, key, idx, &msg) {
            return;
        }
        if let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) {
            leg.state = LegState::Done;
            leg.code = Some(code);
        }
        self.transfer_leg_failed(cx, now, key, code);
    }

    /// A transfer leg failed: the next trunk, else (nothing else ringing) the transfer fails.
    pub(super) fn transfer_leg_failed(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, code: u16) {
        let Some(call) = self.table.get_mut(key) else { return };
        if call.transfer.is_none() {
            return;
        }
        let ringing = call.legs.iter().any(|l| l.purpose == LegPurpose::Transfer && l.state == LegState::Calling);
        if ringing {
            return;
        }
        if fails_over(code) {
            let mut next = call.transfer.as_mut().map(|t| std::mem::take(&mut t.next)).unwrap_or_default();
            while let Some(a) = next.pop_front() {
                if self.start_trunk_leg_for(cx, now, key, &a, LegPurpose::Transfer).is_ok() {
                    if let Some(t) = self.table.get_mut(key).and_then(|c| c.transfer.as_mut()) {
                        t.next = next;
                    }
                    return;
                }
            }
        }
        self.fail_transfer(cx, now, key, code);
    }

    /// The transfer failed: the transferor hears why; the call stays as it was.
    pub(super) fn fail_transfer(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, code: u16) {
        let code = if (300..700).contains(&code) { code } else { 480 };
        tracing::info!(key = %key, code, "transfer failed");
        self.notify_transferor(cx, now, key, code, true);
        self.set_timer(key, TimerKind::Transfer, None);
        let mut stop = Vec::new();
        if let Some(call) = self.table.get_mut(key) {
            call.transfer = None;
            for l in call.legs.iter_mut().filter(|l| l.purpose == LegPurpose::Transfer && l.state == LegState::Calling) {
                l.state = LegState::Done;
                stop.push((l.tx, l.dest, l.provisional, cancel_for(&l.invite)));
            }
            // the offer made to the target is void
            if let Some(m) = call.media.as_mut() {
                m.offer = None;
            }
        }
        for (ltx, d, p, c) in stop {
            self.cancel_leg(cx, now, ltx, d, p, c);
        }
    }

    /// The transfer target did not answer in time.
    pub(super) fn transfer_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        if self.table.get(key).is_some_and(|c| c.transfer.is_some()) {
            self.fail_transfer(cx, now, key, 408);
        }
    }

    /// The target answered: it takes the transferor's place.
    fn complete_transfer(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, key: CallKey, idx: LegIdx, msg: Message, dest: Peer) {
        let Some(call) = self.table.get_mut(key) else { return };
        let Some(job) = call.transfer.take() else { return };
        let by = job.by;
        let Some(leg) = call.leg_mut(idx) else { return };
        let dialog = match Dialog::uac(&leg.invite, &msg, &leg.contact) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "an unusable 2xx from a transfer target");
                leg.state = LegState::Done;
                call.transfer = Some(job);
                return self.transfer_leg_failed(cx, now, key, 502);
            }
        };
        // the answer to our offer goes to the media leg the transferor used
        let toward = self.side_peer(key, other(by));
        if let Some(toward) = toward
            && let Err(e) = self.sdp_across(cx, key, by, SdpKind::Answer, msg.content_type(), msg.body(), toward)
        {
            tracing::warn!(key = %key, ?e, "a transfer target answered with SDP FlowPBX cannot use: hung up");
            self.ack_and_bye(cx, now, tx, dest, dialog);
            if let Some(call) = self.table.get_mut(key) {
                if let Some(l) = call.leg_mut(idx) {
                    l.state = LegState::Done;
                }
                call.transfer = Some(job);
            }
            return self.transfer_leg_failed(cx, now, key, 488);
        }
        let via = cx.sig.via_for(dest);
        let _ = cx.sig.txl.send_ack(tx, dest, dialog.ack(&via));
        // the transferor hears it worked, and goes
        self.notify_transferor_with(cx, now, key, by, 200, true);
        self.bye_side(cx, now, key, by);
        self.set_timer(key, TimerKind::Transfer, None);
        let Some(call) = self.table.get_mut(key) else { return };
        let mut stop = Vec::new();
        for (i, l) in call.legs.iter_mut().enumerate() {
            if i != idx.0 && l.purpose == LegPurpose::Transfer && l.state == LegState::Calling {
                l.state = LegState::Done;
                stop.push((l.tx, l.dest, l.provisional, cancel_for(&l.invite)));
            }
        }
        if let Some(l) = call.leg_mut(idx) {
            l.state = LegState::Answered;
            l.dialog = Some(dialog);
        }
        match by {
            Side::B => {
                if let Some(old) = call.winner().and_then(|w| call.leg_mut(w)) {
                    old.state = LegState::Retired;
                }
                call.phase = Phase::Bridged { winner: idx };
            }
            Side::A => {
                if let Some(old) = call.a_leg.and_then(|w| call.leg_mut(w)) {
                    old.state = LegState::Retired;
                }
                call.a_leg = Some(idx);
            }
        }
        let target = match call.leg(idx).map(|l| l.target) {
            Some(LegTarget::Extension(id)) => serde_json::json!({ "extension_id": id }),
            Some(LegTarget::Trunk { trunk_id, .. }) => serde_json::json!({ "trunk_id": trunk_id }),
            None => serde_json::Value::Null,
        };
        call.transfers.push(serde_json::json!({
            "at_ms": wall(now).unix_millis(),
            "kind": "blind",
            "by": if by == Side::A { "caller" } else { "callee" },
            "to": job.target,
            "answered_by": target,
        }));
        for (ltx, d, p, c) in stop {
            self.cancel_leg(cx, now, ltx, d, p, c);
        }
        if by == Side::A {
            // the original caller's session timer ends with its dialog
            self.set_timer(key, TimerKind::Session, None);
        }
        tracing::info!(key = %key, ?by, "transfer completed");
        // the party that stays is taken off hold, and hears the new party from our port
        self.reoffer(cx, now, key, other(by));
        self.publish(key);
    }

    /// A NOTIFY of the transfer's progress to the side that asked (on its dialog).
    pub(super) fn notify_transferor(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, code: u16, last: bool) {
        let Some(by) = self.table.get(key).and_then(|c| c.transfer.as_ref()).map(|t| t.by) else { return };
        self.notify_transferor_with(cx, now, key, by, code, last);
    }

    fn notify_transferor_with(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, by: Side, code: u16, last: bool) {
        let Some(peer) = self.side_peer(key, by) else { return };
        let via = cx.sig.via_for(peer);
        let Some(dialog) = self.side_dialog(key, by) else { return };
        let mut n = dialog.request(Method::Notify, &via);
        let state = if last { "terminated;reason=noresource" } else { "active;expires=60" };
        let built = n
            .push_header(HeaderName::Event, "refer")
            .and_then(|()| n.push_header(HeaderName::SubscriptionState, state))
            .and_then(|()| n.set_body(Some("message/sipfrag;version=2.0"), Bytes::from(sipfrag(code))));
        if built.is_ok() {
            self.send_fire(cx, now, peer, Some(n));
        }
    }

    /// Hangs up one side's dialog (BYE), leaving the call.
    pub(super) fn bye_side(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, side: Side) {
        let Some(peer) = self.side_peer(key, side) else { return };
        let via = cx.sig.via_for(peer);
        let Some(dialog) = self.side_dialog(key, side) else { return };
        let bye = dialog.request(Method::Bye, &via);
        self.send_fire(cx, now, peer, Some(bye));
    }

    /// Sends `side` a re-INVITE with FlowPBX's own offer (`sendrecv`) from its media port:
    /// after a transfer the party that stays is taken off hold and renegotiates with us.
    pub(super) fn reoffer(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, side: Side) {
        let Some(peer) = self.side_peer(key, side) else { return };
        let (ct, body) = match self.answer_locally(cx, key, side, None, None, peer) {
            Ok(b) => b,
            Err(e) => return tracing::debug!(key = %key, ?e, "no re-offer after the transfer"),
        };
        let via = cx.sig.via_for(peer);
        let Some(dialog) = self.side_dialog(key, side) else { return };
        let mut inv = dialog.request(Method::Invite, &via);
        if !body.is_empty() && inv.set_body(ct.as_deref(), body).is_err() {
            return;
        }
        match cx.sig.txl.send_request(now, peer, inv) {
            Ok(tx) => self.table.add_client(tx, ClientRole::LocalReInvite { call: key, to: side }, peer),
            Err(e) => tracing::debug!(error = %e, "re-offer not sent"),
        }
    }

    /// The answer to FlowPBX's own re-INVITE.
    pub(super) fn on_local_reinvite_response(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ClientTxId, key: CallKey, to: Side, code: u16, msg: Message) {
        if !(200..300).contains(&code) {
            if code >= 300
                && let Some(m) = self.table.get_mut(key).and_then(|c| c.media.as_mut())
            {
                m.offer = None;
            }
            return;
        }
        let Some(peer) = self.side_peer(key, to) else { return };
        let via = cx.sig.via_for(peer);
        if let Some(dialog) = self.side_dialog(key, to) {
            let _ = dialog.on_response(&msg);
            let ack = dialog.ack(&via);
            let _ = cx.sig.txl.send_ack(tx, peer, ack);
        }
        if let Err(e) = self.sdp_across(cx, key, to, SdpKind::Answer, msg.content_type(), msg.body(), peer) {
            tracing::info!(key = %key, ?e, "the answer to our re-offer is not usable");
        }
        self.session_refreshed(now, key);
    }

    /// An attended transfer: side `by` of call `key` asks that the party of its other call
    /// (the dialog `replaces` names, as seen by `by`) take its place here. The named dialog
    /// must be one of the transferor's own (the same extension, all three of Call-ID and tags
    /// matching): nobody moves someone else's call by guessing its identifiers.
    #[allow(clippy::too_many_arguments)]
    fn attended_transfer(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, by: Side, by_ext: i64, tx: ServerTxId, replaces: &Replaces) {
        let Some((other_key, other_side)) = self.find_dialog(&replaces.call_id, &replaces.from_tag, &replaces.to_tag) else {
            return cx.sig.reply_with(now, tx, 481, Some("Replaced Dialog Not Found"), |_| Ok(()));
        };
        if other_key == key {
            return cx.sig.reply_with(now, tx, 400, Some("Replaces Names This Call"), |_| Ok(()));
        }
        if self.side_extension(other_key, other_side) != Some(by_ext) {
            tracing::warn!(key = %key, "REFER with Replaces naming another extension's call refused");
            return cx.sig.reply_with(now, tx, 403, Some("Not Your Call"), |_| Ok(()));
        }
        // the consultation call: its other side (the target T) comes into this call
        let Some(t_side_leg) = self.table.get(other_key).and_then(|c| if other_side == Side::A { c.winner() } else { c.a_leg.or(None) }) else {
            // T is the caller of the other call (its A side): moving a caller's dialog
            // between calls is not supported; the transferor can transfer the other way
            return cx.sig.reply_with(now, tx, 501, Some("Attended Transfer Of A Caller Not Supported"), |_| Ok(()));
        };
        let Some(t_leg) =
            self.table.get(other_key).and_then(|c| c.leg(t_side_leg)).map(|l| (l.target, l.dest, l.contact.clone(), l.call_id.clone(), l.dialog.clone()))
        else {
            return cx.sig.reply(now, tx, 481);
        };
        let (target, dest, contact, leg_call_id, Some(mut dialog)) = t_leg else { return cx.sig.reply(now, tx, 481) };
        if self.table.get(key).is_some_and(|c| c.transfer.is_some()) {
            return cx.sig.reply(now, tx, 491);
        }
        cx.sig.reply(now, tx, 202);
        if let Some(call) = self.table.get_mut(key) {
            call.transfer = Some(TransferJob { by, target: replaces.call_id.clone(), next: VecDeque::new(), ringing_notified: true });
        }
        self.notify_transferor(cx, now, key, 100, false);
        // T's dialog moves to this call: retired in the consultation, a leg here
        if let Some(c) = self.table.get_mut(other_key)
            && let Some(l) = c.leg_mut(t_side_leg)
        {
            l.state = LegState::Retired;
        }
        // re-INVITE T from this call's media port for `by`, on T's own dialog
        let policy = super::target_policy(cx.dir, target);
        let (ct, body) = self.transfer_offer(cx, key, by, dest, policy);
        let via = cx.sig.via_for(dest);
        let mut inv = dialog.request(Method::Invite, &via);
        if !body.is_empty() && inv.set_body(ct.as_deref(), body).is_err() {
            return self.fail_transfer(cx, now, key, 500);
        }
        let Ok(ctx) = cx.sig.txl.send_request(now, dest, inv.clone()) else { return self.fail_transfer(cx, now, key, 503) };
        // T's own dialog, confirmed long ago: no provisional will come
        let leg = BLeg { provisional: true, dialog: Some(dialog), ..BLeg::calling(target, LegPurpose::Transfer, leg_call_id, ctx, inv, dest, contact) };
        if self.add_leg(key, leg).is_none() {
            return;
        }
        self.set_timer(key, TimerKind::Transfer, Some(now + std::time::Duration::from_secs(32)));
        // the consultation call ends: the transferor's dialog there is hung up
        let Some(other_call) = self.table.get(other_key) else { return };
        let _ = other_call;
        self.end_call(cx, now, other_key, 0, Cause::Normal, Some(other(other_side)));
        if let Some(call) = self.table.get_mut(key) {
            call.transfers.push(serde_json::json!({ "at_ms": wall(now).unix_millis(), "kind": "attended", "by": if by == Side::A { "caller" } else { "callee" }, "replaced_call": replaces.call_id }));
        }
    }

    /// The call and side whose confirmed dialog has this Call-ID and these two tags (in
    /// either order: the sender may write them as it or as its peer sees the dialog).
    pub(super) fn find_dialog(&self, call_id: &str, from_tag: &str, to_tag: &str) -> Option<(CallKey, Side)> {
        let found = if let Some(k) = self.table.by_caller_dialog(call_id, from_tag).or_else(|| self.table.by_caller_dialog(call_id, to_tag)) {
            (k, Side::A)
        } else {
            let (k, leg) = self.table.by_leg_call_id(call_id)?;
            let call = self.table.get(k)?;
            if call.winner() == Some(leg) {
                (k, Side::B)
            } else if call.a_leg == Some(leg) {
                (k, Side::A)
            } else {
                return None;
            }
        };
        let call = self.table.get(found.0)?;
        let dialog = match found.1 {
            Side::A => match call.a_leg {
                Some(l) => call.leg(l)?.dialog.as_ref(),
                None => call.a.dialog.as_ref(),
            },
            Side::B => call.winner().and_then(|w| call.leg(w)).and_then(|l| l.dialog.as_ref()),
        }?;
        let (l, r) = (dialog.id.local_tag.as_str(), dialog.id.remote_tag.as_str());
        let tags_match = (l == from_tag && r == to_tag) || (l == to_tag && r == from_tag);
        (dialog.id.call_id == call_id && tags_match).then_some(found)
    }
}

/// A `Replaces` header (RFC 3891): the dialog, and its tags as the sender sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    /// `early-only`: replace the dialog only while it is early (RFC 3891 §3, a 486 else).
    pub early_only: bool,
}

impl Replaces {
    pub(crate) fn parse(v: &str) -> Option<Replaces> {
        let mut parts = v.split(';');
        let call_id = parts.next()?.trim().to_owned();
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (k, val) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            match (k.to_ascii_lowercase().as_str(), val) {
                ("to-tag", Some(v)) => to_tag = Some(v.to_owned()),
                ("from-tag", Some(v)) => from_tag = Some(v.to_owned()),
                ("early-only", None) => early_only = true,
                ("to-tag" | "from-tag" | "early-only", _) => return None,
                _ => {}
            }
        }
        let (to_tag, from_tag) = (to_tag?, from_tag?);
        if call_id.is_empty() || to_tag.is_empty() || from_tag.is_empty() {
            return None;
        }
        Some(Replaces { call_id, to_tag, from_tag, early_only })
    }
}

/// The Replaces of a Refer-To URI's headers (`Replaces=...&...`, escaped).
fn replaces_header(headers: &str) -> Option<Replaces> {
    headers.split('&').find_map(|h| {
        let (k, v) = h.split_once('=')?;
        k.eq_ignore_ascii_case("replaces").then(|| sip::msg::unescape(v)).and_then(|v| Replaces::parse(&v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_in_a_refer_to() {
        let r = replaces_header("Replaces=abc%40host%3Bto-tag%3D7%3Bfrom-tag%3D9").unwrap();
        assert_eq!(r, Replaces { call_id: "abc@host".into(), to_tag: "7".into(), from_tag: "9".into(), early_only: false });
        assert!(replaces_header("Other=1").is_none());
        assert!(Replaces::parse("only-a-call-id").is_none());
    }

    #[test]
    fn replaces_header_values() {
        let r = Replaces::parse("abc@host; from-tag=9 ;to-tag=7;early-only;x=1").unwrap();
        assert_eq!(r, Replaces { call_id: "abc@host".into(), to_tag: "7".into(), from_tag: "9".into(), early_only: true });
        // a flag with a value, a tag without one, an empty tag or Call-ID: unreadable
        for bad in ["abc;to-tag=7;from-tag=9;early-only=yes", "abc;to-tag;from-tag=9", "abc;to-tag=;from-tag=9", ";to-tag=7;from-tag=9", "", "abc;;;"] {
            assert!(Replaces::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sipfrag_lines() {
        assert_eq!(sipfrag(180), "SIP/2.0 180 Ringing\r\n");
        assert_eq!(sipfrag(200), "SIP/2.0 200 OK\r\n");
    }
}
