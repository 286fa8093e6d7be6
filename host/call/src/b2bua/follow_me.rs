//! Follow-me (the extension's `follow_me_*` settings): an extension that is rung rings its devices and its numbers.
//!
//! **Sequential**: the devices ring for the ring time (the flow's, else the extension's),
//! then each number in turn for its own time. **Simultaneous**: the devices and the numbers
//! ring together, each number starting after its delay; the devices ring until the last
//! number stops. In both, when nothing is ringing any more (every device busy or
//! unregistered, a number that failed at once), the next number starts at once instead of
//! waiting for its time.
//!
//! A number is an internal extension (its devices ring, nothing to confirm) or a number
//! outside, placed through the outbound routes with the extension's permission classes (its
//! follow-me cannot reach what it may not dial) and presenting the caller. With confirmation
//! on (the default), a number outside that answers is not put through: it hears "press 1 to
//! accept" (the media session's callee side, unbridged, so the caller hears ringback and
//! nothing of it), and only the digit 1 within [`CONFIRM_WINDOW`] bridges it; anything else,
//! silence, or hanging up lets the others ring on. A carrier's voicemail never takes the
//! call. One number confirms at a time (the media session has one callee side): a second
//! that answers meanwhile is hung up. A device that answers wins over a number confirming.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use sip::dialog::Dialog;
use sip::transaction::{ClientTxId, Peer, ServerTxId};
use sip::{HeaderName, Instant, Message, Method};

use super::*;
use crate::directory::FollowMe;
use crate::routing::{CallerId, Placer};

/// How long a number outside that answered has to press 1.
pub(super) const CONFIRM_WINDOW: Duration = Duration::from_secs(20);
/// The prompt it hears.
pub(super) const CONFIRM_PROMPT: &str = media::prompts::FOLLOW_ME_ACCEPT;
/// How many times the prompt plays (about three seconds each) within the window.
const CONFIRM_REPEATS: usize = 5;
/// The digit that accepts.
const ACCEPT: char = '1';

/// What follow-me still has to ring for a call.
#[derive(Debug)]
pub(super) struct FollowMePlan {
    /// The extension whose follow-me it is.
    extension_id: i64,
    /// What it may dial (its numbers outside go through the routes as if it dialled them).
    classes: Vec<store::CallClass>,
    /// A number outside must press 1.
    confirm: bool,
    /// Who calls (what the numbers are shown).
    caller: Party,
    /// The numbers not yet rung, in order.
    steps: VecDeque<Step>,
}

/// One number to ring.
#[derive(Debug)]
struct Step {
    /// Simultaneous mode: when it starts (`None`: when the one before it ends).
    at: Option<Instant>,
    number: String,
    ring_for: Duration,
}

/// The cause of a follow-me ring nobody took: busy or declined when a device (or a person at
/// a number) said so; otherwise no answer (a number's network failure is not the person's
/// answer); unavailable when nothing could ring at all.
pub(super) fn cause(codes: &[u16]) -> Cause {
    if codes.is_empty() {
        Cause::Unavailable
    } else if codes.iter().any(|&c| c == 486 || c == 600) {
        Cause::Busy
    } else if codes.contains(&603) {
        Cause::Declined
    } else {
        Cause::NoAnswer
    }
}

impl B2bua {
    /// Rings `person` with follow-me: the devices now (for `devices_for` when sequential),
    /// the numbers as the plan says.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ring_follow_me(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        key: CallKey,
        person: Arc<User>,
        fm: &FollowMe,
        devices_for: Duration,
        caller_id: Option<Party>,
        completion: Completion,
        exclude: Option<Peer>,
    ) {
        let Some(call) = self.table.get_mut(key) else { return };
        let caller = caller_id.unwrap_or_else(|| call.caller.clone());
        let steps: VecDeque<Step> =
            fm.numbers.iter().map(|n| Step { at: fm.simultaneous.then(|| now + n.delay), number: n.number.clone(), ring_for: n.timeout }).collect();
        // simultaneous: the devices ring as long as the last number does
        let devices_until =
            if fm.simultaneous { now + fm.numbers.iter().map(|n| n.delay + n.timeout).max().unwrap_or_default().max(devices_for) } else { now + devices_for };
        let plan = FollowMePlan { extension_id: person.id, classes: person.call_classes.clone(), confirm: fm.confirm, caller: caller.clone(), steps };
        let first_leg = call.legs.len();
        match &mut call.phase {
            Phase::Waiting { ring } | Phase::AnsweredLocally { ring } => *ring = Some(Ring { completion, follow: Some(plan), first_leg }),
            Phase::Bridged { .. } => {
                if let Completion::Notify(reply) = completion {
                    let _ = reply.send(Err(CallError::InvalidState("the call is bridged")));
                }
                return;
            }
        }
        self.set_timer(key, TimerKind::Ring, None);
        tracing::info!(key = %key, extension = %person.extension, simultaneous = fm.simultaneous, numbers = fm.numbers.len(), "follow-me");
        let (_, legs) = self.start_contacts(cx, now, key, std::slice::from_ref(&person), &caller, exclude);
        self.set_deadlines(key, &legs, devices_until);
        self.start_due_steps(cx, now, key);
        // nothing rings (no device, numbers later): the next number now, or the end
        self.after_leg_failed(cx, now, key);
        self.arm_legs(key);
        self.publish(key);
    }

    fn set_deadlines(&mut self, key: CallKey, legs: &[LegIdx], until: Instant) {
        let Some(call) = self.table.get_mut(key) else { return };
        for &i in legs {
            if let Some(l) = call.leg_mut(i) {
                l.deadline = Some(until);
            }
        }
    }

    fn plan_mut(&mut self, key: CallKey) -> Option<&mut FollowMePlan> {
        match &mut self.table.get_mut(key)?.phase {
            Phase::Waiting { ring } | Phase::AnsweredLocally { ring } => ring.as_mut()?.follow.as_mut(),
            Phase::Bridged { .. } => None,
        }
    }

    /// Starts the simultaneous numbers whose delay has passed.
    fn start_due_steps(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        loop {
            let Some(plan) = self.plan_mut(key) else { return };
            if plan.steps.front().is_none_or(|s| s.at.is_none_or(|at| at > now)) {
                return;
            }
            let Some(step) = plan.steps.pop_front() else { return };
            self.start_step(cx, now, key, step);
        }
    }

    /// Nothing rings: starts the next number that can ring (false when none is left).
    pub(super) fn next_follow_me_step(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) -> bool {
        loop {
            let Some(step) = self.plan_mut(key).and_then(|p| p.steps.pop_front()) else { return false };
            if self.start_step(cx, now, key, step) {
                self.arm_legs(key);
                return true;
            }
        }
    }

    /// Rings one follow-me number; false when it could not ring at all.
    fn start_step(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, step: Step) -> bool {
        let Some(plan) = self.plan_mut(key) else { return false };
        let (ext_id, classes, confirm, caller) = (plan.extension_id, plan.classes.clone(), plan.confirm, plan.caller.clone());
        let until = now + step.ring_for;
        if let Some(user) = cx.dir.by_number(&step.number).cloned() {
            // an internal number: its devices (a person at a desk confirms by answering)
            let (_, legs) = self.start_contacts(cx, now, key, &[user], &caller, None);
            self.set_deadlines(key, &legs, until);
            return !legs.is_empty();
        }
        if self.limits.emergency_numbers.contains(&step.number) {
            tracing::warn!(key = %key, extension = ext_id, "an emergency number is not a follow-me destination: skipped");
            return false;
        }
        let out_now = self.table.calls().filter(|c| c.outbound.is_some()).count() as u32;
        if out_now >= self.limits.max_calls {
            tracing::warn!(key = %key, extension = ext_id, "follow-me number not rung: the PBX's outbound limit is reached");
            let number = step.number.clone();
            self.shared.emit(|| PbxEvent::OutboundLimit { extension_id: ext_id, number, limit: "pbx_concurrent_calls" });
            return false;
        }
        let placer = Placer::FollowMe { id: ext_id, classes, caller: CallerId { name: caller.name.clone(), number: caller.number.clone() } };
        let all_trunks: Vec<i64> = cx.dir.trunks().iter().map(|t| t.id).collect();
        let plan = match crate::routing::plan(&step.number, &placer, cx.dir.routes(), &self.limits.emergency_numbers, &all_trunks) {
            Ok(p) => p,
            Err(refusal) => {
                tracing::warn!(key = %key, extension = ext_id, number = %step.number, ?refusal, "follow-me number not rung: no route it may use");
                return false;
            }
        };
        let Some(idx) = self.start_trunk_legs(cx, now, key, TrunkAttempt::all_of(&plan), LegPurpose::Ring) else { return false };
        if let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) {
            leg.deadline = Some(until);
            leg.confirm = confirm;
        }
        true
    }

    /// (Re)schedules the legs timer: the earliest deadline of a leg still in the race, or the
    /// next simultaneous number's start.
    fn arm_legs(&mut self, key: CallKey) {
        let Some(call) = self.table.get(key) else { return };
        let legs = call.legs.iter().filter(|l| l.active()).filter_map(|l| l.deadline);
        let step = call.ring().and_then(|r| r.follow.as_ref()).and_then(|p| p.steps.front()).and_then(|s| s.at);
        let at = legs.chain(step).min();
        self.set_timer(key, TimerKind::Legs, at);
    }

    /// The legs timer fired: legs past their time stop (a number confirming too slowly is
    /// hung up), due numbers start, and the ring ends when nothing is left.
    pub(crate) fn legs_due(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey) {
        let Some(call) = self.table.get_mut(key) else { return };
        call.legs_at = None;
        if call.ring().is_none() {
            return;
        }
        let mut stop = Vec::new();
        let mut hang = Vec::new();
        for l in call.legs.iter_mut().filter(|l| l.active() && l.deadline.is_some_and(|d| d <= now)) {
            if l.state == LegState::Confirming {
                if let Some(d) = l.dialog.take() {
                    hang.push((l.dest, d));
                }
            } else {
                stop.push((l.tx, l.dest, l.provisional, cancel_for(&l.invite)));
            }
            l.state = LegState::Done;
            l.code = Some(480);
        }
        for (tx, d, p, c) in stop {
            self.cancel_leg(cx, now, tx, d, p, c);
        }
        if !hang.is_empty() {
            tracing::info!(key = %key, "a follow-me number did not accept in time: hung up");
        }
        self.hang_up_confirming(cx, now, key, hang);
        self.start_due_steps(cx, now, key);
        self.after_leg_failed(cx, now, key);
        self.arm_legs(key);
    }

    /// Hangs up legs that were confirming, and silences the prompt.
    pub(super) fn hang_up_confirming(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, legs: Vec<(Peer, Dialog)>) {
        if legs.is_empty() {
            return;
        }
        for (dest, mut d) in legs {
            let via = cx.sig.via_for(dest);
            let bye = d.request(Method::Bye, &via);
            self.send_fire(cx, now, dest, Some(bye));
        }
        if let Some(port) = self.media.as_mut() {
            port.stop_playback(key, media_leg(Side::B));
        }
    }

    /// The leg that is confirming, if one is.
    pub(super) fn confirming_leg(&self, key: CallKey) -> Option<LegIdx> {
        self.table.get(key)?.legs.iter().position(|l| l.state == LegState::Confirming).map(LegIdx)
    }

    /// A follow-me number outside answered: it hears the prompt and must press 1.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_confirming(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        tx: ClientTxId,
        key: CallKey,
        idx: LegIdx,
        msg: Message,
        dest: Peer,
        dialog: Dialog,
    ) {
        let refused = if self.confirming_leg(key).is_some() {
            tracing::info!(key = %key, "another follow-me number is confirming: this one is hung up");
            Some(486)
        } else if let Err(e) = self.sdp_listen(key, Side::B, msg.content_type(), msg.body()) {
            tracing::warn!(key = %key, ?e, "a follow-me number answered with SDP FlowPBX cannot use: hung up");
            Some(488)
        } else {
            None
        };
        if let Some(code) = refused {
            if let Some(l) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) {
                l.state = LegState::Done;
                l.code = Some(code);
            }
            self.ack_and_bye(cx, now, tx, dest, dialog);
            return self.after_leg_failed(cx, now, key);
        }
        let via = cx.sig.via_for(dest);
        let _ = cx.sig.txl.send_ack(tx, dest, dialog.ack(&via));
        let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) else { return };
        leg.state = LegState::Confirming;
        leg.dialog = Some(dialog);
        leg.answer = Some((msg.content_type().map(str::to_owned), msg.body().clone()));
        leg.deadline = Some(now + CONFIRM_WINDOW);
        tracing::info!(key = %key, "a follow-me number answered: asking it to press 1");
        if let Some(port) = self.media.as_mut() {
            port.play_prompt(key, media_leg(Side::B), CONFIRM_PROMPT, CONFIRM_REPEATS);
        }
        self.arm_legs(key);
        self.publish(key);
    }

    /// A digit from the number confirming: 1 puts it through; anything else is ignored (the
    /// prompt keeps asking until the window closes).
    pub(super) fn on_confirm_digit(&mut self, cx: &mut Ctx<'_>, now: Instant, key: CallKey, digit: char) {
        let Some(idx) = self.confirming_leg(key) else { return };
        if digit != ACCEPT {
            tracing::debug!(key = %key, %digit, "a follow-me number pressed another key");
            return;
        }
        if let Some(port) = self.media.as_mut() {
            port.stop_playback(key, media_leg(Side::B));
        }
        let Some(call) = self.table.get_mut(key) else { return };
        let caller_waits = match call.phase {
            Phase::Waiting { .. } => true,
            Phase::AnsweredLocally { .. } => call.a.dialog.is_some(),
            Phase::Bridged { .. } => false,
        };
        let a_peer = call.a.source;
        if let Some(policy) = call.leg(idx).map(|l| super::target_policy(cx.dir, l.target))
            && let Some(m) = call.media.as_mut()
        {
            m.set_policy(Side::B, policy);
        }
        let Some(leg) = call.leg_mut(idx) else { return };
        let (ct, body) = leg.answer.take().unwrap_or_default();
        leg.deadline = None;
        let crossed = if caller_waits { self.sdp_across(cx, key, Side::B, SdpKind::Answer, ct.as_deref(), &body, a_peer).ok() } else { None };
        match crossed {
            Some((ct, body)) => {
                tracing::info!(key = %key, "a follow-me number accepted the call");
                self.leg_wins(cx, now, key, idx, ct, body);
            }
            None => {
                let hang = self.retire_confirming(key, idx, 488);
                self.hang_up_confirming(cx, now, key, hang);
                self.after_leg_failed(cx, now, key);
            }
        }
    }

    /// Marks a confirming leg done with `code`; its dialog, to hang up.
    fn retire_confirming(&mut self, key: CallKey, idx: LegIdx, code: u16) -> Vec<(Peer, Dialog)> {
        let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) else { return Vec::new() };
        leg.state = LegState::Done;
        leg.code = Some(code);
        leg.deadline = None;
        leg.dialog.take().map(|d| vec![(leg.dest, d)]).unwrap_or_default()
    }

    /// A request in the dialog of a number confirming: its BYE (it hung up), its digits by
    /// SIP INFO, keep-alives.
    pub(super) fn on_confirming_request(&mut self, cx: &mut Ctx<'_>, now: Instant, tx: ServerTxId, key: CallKey, idx: LegIdx, msg: &Message) {
        let Some(method) = msg.method().cloned() else { return };
        let Some(leg) = self.table.get_mut(key).and_then(|c| c.leg_mut(idx)) else { return cx.sig.reply(now, tx, 481) };
        let check = match leg.dialog.as_mut() {
            Some(d) => d.on_request(msg),
            None => return cx.sig.reply(now, tx, 481),
        };
        if let Err(e) = check {
            let (code, reason) = e.status().unwrap_or((500, "Server Internal Error"));
            return cx.sig.reply_with(now, tx, code, Some(reason), |_| Ok(()));
        }
        match method {
            Method::Bye => {
                cx.sig.reply(now, tx, 200);
                tracing::info!(key = %key, "a follow-me number hung up without accepting");
                // its dialog is over: nothing to send it, only the prompt to stop
                let _ = self.retire_confirming(key, idx, 480);
                if let Some(port) = self.media.as_mut() {
                    port.stop_playback(key, media_leg(Side::B));
                }
                self.after_leg_failed(cx, now, key);
                self.arm_legs(key);
            }
            Method::Info if is_dtmf_info(msg.content_type()) => {
                if let Some(port) = self.media.as_mut() {
                    port.sip_info(key, media_leg(Side::B), msg.content_type().unwrap_or_default(), msg.body());
                }
                cx.sig.reply(now, tx, 200);
            }
            Method::Options | Method::Info | Method::Notify => cx.sig.reply(now, tx, 200),
            // not put through yet: nothing to change about its session
            Method::Invite | Method::Update => cx.sig.reply_with(now, tx, 488, None, |_| Ok(())),
            _ => cx.sig.reply_with(now, tx, 405, None, |r| r.push_header(HeaderName::Allow, ALLOW)),
        }
    }
}
