//! `flowpbx:node/call`: acting on the call through [`CallControl`](crate::control::CallControl).
//!
//! The calls that wait on the caller — `play`, `say`, `collect-digits`, `ring`, `voicemail`,
//! `transfer`, `conference` — run through [`HostState::waiting`]: their time is not the
//! node's own wall-clock time. Each is bounded by its arguments (clamped here) or by the
//! caller (a prompt's length, a ring's timeout, a box's longest message, the caller leaving a
//! conference), and all by the run's total limit.

use std::time::Duration;

use super::{call_error, HostState, Left};
use crate::bindings::call::{self as wit, Host};
use crate::bindings::types::{CallInfo, Destination, Media, NodeError, Party};
use crate::control::{self, Target};
use crate::entity::{Entity, EntityKind};
use crate::types::Capability;

const MAX_TARGETS: usize = 100;
const MAX_VARS: usize = 64;
const MAX_VAR_NAME: usize = 64;
const MAX_VAR_VALUE: usize = 1024;
const MAX_TEXT: usize = 4000;

fn ms(v: u32, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(u64::from(v).clamp(lo, hi))
}

fn party_in(p: Party) -> control::Party {
    control::Party { number: p.number, name: p.name }
}

/// A caller id a node presents: `anonymous` or a number of 1–32 characters of `[0-9+*#]`
/// (a `+` only first) and a name of at most 64 characters without control characters. Anything else is
/// the node's error, never written into a SIP header.
fn check_caller_id(p: &Party) -> Result<(), NodeError> {
    let n = &p.number;
    let number_ok = n == "anonymous"
        || !n.is_empty() && n.len() <= 32 && n.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0));
    if !number_ok {
        return Err(NodeError::InvalidConfig(format!("caller id number {n:?}: 1 to 32 of 0-9 + * # (+ first)")));
    }
    if let Some(name) = &p.name
        && (name.chars().count() > 64 || name.chars().any(char::is_control))
    {
        return Err(NodeError::InvalidConfig("caller id name: at most 64 characters, no control characters".into()));
    }
    Ok(())
}

fn party_out(p: control::Party) -> Party {
    Party { number: p.number, name: p.name }
}

impl HostState {
    /// Resolves a destination to a target, checking `external-calls` for numbers.
    fn target(&mut self, d: Destination) -> Result<Target, NodeError> {
        match d {
            Destination::Extension(id) => match self.services.entities.get(EntityKind::Extension, id).map(|c| c.entity) {
                Some(e) => match &*e {
                    Entity::Extension(x) => Ok(Target::Extension(x.clone())),
                    _ => Err(NodeError::Failed(format!("entity {id} is not an extension"))),
                },
                None => Err(NodeError::Failed(format!("there is no extension {id}"))),
            },
            Destination::Number(n) => {
                self.require(&Capability::ExternalCalls)?;
                let ok = !n.is_empty() && n.len() <= 32 && n.trim_start_matches('+').chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#');
                if !ok {
                    return Err(NodeError::InvalidConfig(format!("{n:?} is not a phone number")));
                }
                Ok(Target::Number(n))
            }
        }
    }

    /// An entity the node names (a voicemail box, a conference bridge): the one its flow
    /// version was published with, else the live one.
    fn entity(&self, kind: EntityKind, id: i64) -> Result<std::sync::Arc<Entity>, NodeError> {
        let pinned = self.call.as_ref().and_then(|c| c.pinned.as_deref());
        crate::entity::Pinned::lookup(pinned, &self.services.entities, kind, id)
            .map(|c| c.entity)
            .ok_or_else(|| NodeError::Failed(format!("there is no {kind} {id}")))
    }
}

fn too_long(what: &str, s: &str) -> Result<(), NodeError> {
    if s.len() > MAX_TEXT {
        Err(NodeError::InvalidConfig(format!("{what} is longer than {MAX_TEXT} bytes")))
    } else {
        Ok(())
    }
}

impl Host for HostState {
    async fn info(&mut self) -> CallInfo {
        let Some(c) = &self.call else {
            return CallInfo {
                call_id: String::new(),
                caller: Party { number: String::new(), name: None },
                dialled: String::new(),
                flow_id: 0,
                flow_version: 0,
                entry_node: String::new(),
                node_id: self.node_id.to_string(),
                answered: false,
                variables: Vec::new(),
            };
        };
        let s = c.shared();
        CallInfo {
            call_id: c.control.call_id().to_string(),
            caller: party_out(s.caller.clone()),
            dialled: c.control.dialled().to_string(),
            flow_id: c.flow_id,
            flow_version: c.flow_version,
            entry_node: c.entry_node.to_string(),
            node_id: self.node_id.to_string(),
            answered: c.control.is_answered(),
            variables: s.variables.clone(),
        }
    }

    async fn answer(&mut self) -> Result<(), NodeError> {
        let c = self.live_call()?;
        self.timed(c.control.answer()).await.map_err(|e| call_error(&c, e))
    }

    async fn play(&mut self, prompt: String) -> Result<(), NodeError> {
        too_long("the prompt name", &prompt)?;
        let c = self.live_call()?;
        self.waiting(c.control.play(&prompt)).await.map_err(|e| call_error(&c, e))
    }

    async fn say(&mut self, text: String) -> Result<(), NodeError> {
        too_long("the text", &text)?;
        let c = self.live_call()?;
        self.waiting(c.control.say(&text)).await.map_err(|e| call_error(&c, e))
    }

    async fn collect_digits(&mut self, o: wit::CollectOptions) -> Result<wit::Collected, NodeError> {
        let c = self.live_call()?;
        let prompt = match o.prompt {
            None => None,
            Some(Media::Prompt(p)) => {
                too_long("the prompt name", &p)?;
                Some(control::Media::Prompt(p))
            }
            Some(Media::Tts(t)) => {
                too_long("the text", &t)?;
                Some(control::Media::Tts(t))
            }
        };
        let opts = control::CollectOptions {
            prompt,
            max_digits: o.max_digits.clamp(1, 32),
            first_digit_timeout: ms(o.first_digit_timeout_ms, 0, 300_000),
            inter_digit_timeout: ms(o.inter_digit_timeout_ms, 0, 300_000),
            terminators: o.terminators.chars().filter(|c| "0123456789*#ABCD".contains(*c)).collect(),
        };
        let r = self.waiting(c.control.collect_digits(&opts)).await.map_err(|e| call_error(&c, e))?;
        Ok(wit::Collected {
            digits: r.digits,
            ended_by: match r.ended_by {
                control::CollectEnd::MaxDigits => wit::CollectEnd::MaxDigits,
                control::CollectEnd::Terminator => wit::CollectEnd::Terminator,
                control::CollectEnd::Timeout => wit::CollectEnd::Timeout,
            },
        })
    }

    async fn ring(&mut self, targets: Vec<Destination>, o: wit::RingOptions) -> Result<wit::RingResult, NodeError> {
        let c = self.live_call()?;
        if targets.is_empty() || targets.len() > MAX_TARGETS {
            return Err(NodeError::InvalidConfig(format!("ring needs 1 to {MAX_TARGETS} targets")));
        }
        let mut resolved = Vec::with_capacity(targets.len());
        for t in targets {
            resolved.push(self.target(t)?);
        }
        let caller_id = match o.caller_id {
            Some(p) => {
                self.require(&Capability::CallerId)?;
                check_caller_id(&p)?;
                Some(party_in(p))
            }
            None => None,
        };
        let opts = control::RingOptions { timeout: ms(o.timeout_ms, 1000, 600_000), caller_id };
        let r = self.waiting(c.control.ring(&resolved, &opts)).await.map_err(|e| call_error(&c, e))?;
        Ok(match r {
            control::RingOutcome::Answered(to) => {
                c.shared().left = Some(Left::Bridged(to));
                wit::RingResult::Answered
            }
            control::RingOutcome::NoAnswer => wit::RingResult::NoAnswer,
            control::RingOutcome::Busy => wit::RingResult::Busy,
            control::RingOutcome::Failed(m) => wit::RingResult::Failed(m),
        })
    }

    async fn voicemail(&mut self, mailbox: i64, o: wit::VoicemailOptions) -> Result<wit::VoicemailResult, NodeError> {
        let c = self.live_call()?;
        self.require(&Capability::Voicemail)?;
        let Entity::VoicemailBox(b) = &*self.entity(EntityKind::VoicemailBox, mailbox)? else {
            return Err(NodeError::Failed(format!("entity {mailbox} is not a voicemail box")));
        };
        let b = b.clone();
        let limit = u64::from(b.max_message_duration.max(1));
        let max = Duration::from_secs(o.max_duration_s.map(u64::from).unwrap_or(limit).clamp(1, limit));
        let opts = control::VoicemailOptions { play_greeting: o.play_greeting, max_duration: Some(max) };
        let r = self.waiting(c.control.voicemail(&b, &opts)).await.map_err(|e| call_error(&c, e))?;
        Ok(wit::VoicemailResult { recorded: r.recorded, duration_ms: r.duration.as_millis().min(u32::MAX as u128) as u32 })
    }

    async fn check_voicemail(&mut self, mailbox: i64) -> Result<(), NodeError> {
        let c = self.live_call()?;
        self.require(&Capability::Voicemail)?;
        let Entity::VoicemailBox(b) = &*self.entity(EntityKind::VoicemailBox, mailbox)? else {
            return Err(NodeError::Failed(format!("entity {mailbox} is not a voicemail box")));
        };
        let b = b.clone();
        self.waiting(c.control.check_voicemail(&b)).await.map_err(|e| call_error(&c, e))
    }

    async fn transfer(&mut self, target: Destination) -> Result<(), NodeError> {
        let c = self.live_call()?;
        let t = self.target(target)?;
        self.waiting(c.control.transfer(&t)).await.map_err(|e| call_error(&c, e))?;
        c.shared().left = Some(Left::Transferred(t.describe()));
        Ok(())
    }

    async fn hangup(&mut self, cause: wit::HangupCause) -> Result<(), NodeError> {
        let c = self.live_call()?;
        let cause = match cause {
            wit::HangupCause::Normal => control::HangupCause::Normal,
            wit::HangupCause::Busy => control::HangupCause::Busy,
            wit::HangupCause::Rejected => control::HangupCause::Rejected,
            wit::HangupCause::Unavailable => control::HangupCause::Unavailable,
            wit::HangupCause::NoAnswer => control::HangupCause::NoAnswer,
            wit::HangupCause::Congestion => control::HangupCause::Congestion,
        };
        self.timed(c.control.hangup(cause)).await.map_err(|e| call_error(&c, e))?;
        c.shared().left = Some(Left::HungUp(cause));
        Ok(())
    }

    async fn set_caller_id(&mut self, caller: Party) -> Result<(), NodeError> {
        let c = self.live_call()?;
        self.require(&Capability::CallerId)?;
        check_caller_id(&caller)?;
        let p = party_in(caller);
        self.timed(c.control.set_caller_id(&p)).await.map_err(|e| call_error(&c, e))?;
        c.shared().caller = p;
        Ok(())
    }

    async fn conference(&mut self, bridge: i64, o: wit::ConferenceOptions) -> Result<wit::ConferenceResult, NodeError> {
        let c = self.live_call()?;
        self.require(&Capability::Conference)?;
        let Entity::ConferenceBridge(b) = &*self.entity(EntityKind::ConferenceBridge, bridge)? else {
            return Err(NodeError::Failed(format!("entity {bridge} is not a conference bridge")));
        };
        let b = b.clone();
        let r = self.waiting(c.control.conference(&b, &control::ConferenceOptions { muted: o.muted })).await.map_err(|e| call_error(&c, e))?;
        Ok(wit::ConferenceResult { duration_ms: r.duration.as_millis().min(u64::MAX as u128) as u64 })
    }

    async fn get_var(&mut self, name: String) -> Option<String> {
        let c = self.call.as_ref()?;
        c.shared().variables.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }

    async fn set_var(&mut self, name: String, value: String) -> Result<(), NodeError> {
        let c = self.live_call()?;
        let ok_name = !name.is_empty() && name.len() <= MAX_VAR_NAME && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
        if !ok_name {
            return Err(NodeError::InvalidConfig(format!("{name:?} is not a variable name")));
        }
        if value.len() > MAX_VAR_VALUE {
            return Err(NodeError::InvalidConfig(format!("the value of {name} is longer than {MAX_VAR_VALUE} bytes")));
        }
        let mut s = c.shared();
        if let Some(slot) = s.variables.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = value;
        } else if s.variables.len() >= MAX_VARS {
            return Err(NodeError::Failed(format!("a call holds at most {MAX_VARS} variables")));
        } else {
            s.variables.push((name, value));
        }
        Ok(())
    }
}
