//! The ring group: rings the group's member extensions by its strategy until one answers or
//! the group's `ring_timeout` has passed.
//!
//! - `ring_all`: every member at once for `ring_timeout`.
//! - `sequential`: one member at a time in list order, each for `member_timeout`.
//! - `round_robin`: like sequential, starting one member further on every call (the pointer
//!   lives in kv under `rr:<group id>`, advanced atomically).
//! - `random`: one at a time in a random order.
//! - `longest_idle`: one at a time, the member idle longest first (from the directory);
//!   members on a call, on do-not-disturb or with no registered device are skipped.
//!
//! Answered leaves by `answered` (the caller is bridged: the flow ends); anything else by
//! `no_answer`.

use sdk::call::{RingOptions, RingResult};
use sdk::entity::{CallerIdMode, RingGroup as Group, RingStrategy};
use sdk::types::{Capability, Destination, Party};
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct RingGroup;

/// Optional overrides of the group's settings for this graph node.
#[derive(Deserialize)]
pub struct Config {
    /// Seconds before `no_answer`, instead of the group's `ring_timeout`.
    #[serde(default)]
    pub timeout: Option<u32>,
}

const DEFAULT_MEMBER_TIMEOUT_S: u32 = 15;
/// A member is not worth ringing for less than this.
const MIN_RING_MS: u64 = 1000;

/// splitmix64: a small, well-mixed PRNG step.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A random order, seeded by the call id and the time (there is no other entropy in a node;
/// call ids are unique, so calls spread evenly, and a simulation stays reproducible).
fn shuffle(members: &mut [i64], call_id: &str, unix_ms: i64) {
    let mut seed = call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    seed ^= unix_ms as u64;
    for i in (1..members.len()).rev() {
        seed = mix(seed);
        let j = (seed % (i as u64 + 1)) as usize;
        members.swap(i, j);
    }
}

fn caller_id(group: &Group, caller: &Party) -> Option<Party> {
    match group.caller_id_mode {
        CallerIdMode::Pass => None,
        CallerIdMode::Fixed => Some(Party {
            number: group.caller_id_number.clone().unwrap_or_else(|| caller.number.clone()),
            name: group.caller_id_name.clone().or_else(|| caller.name.clone()),
        }),
        CallerIdMode::Prepend => {
            let prefix = group.caller_id_name.clone().unwrap_or_else(|| format!("{}: ", group.name));
            let name = caller.name.clone().unwrap_or_else(|| caller.number.clone());
            Some(Party { number: caller.number.clone(), name: Some(format!("{prefix}{name}")) })
        }
    }
}

/// What a ring came to, in words for the call's log.
fn said(r: &RingResult) -> String {
    match r {
        RingResult::Answered => "answered".into(),
        RingResult::NoAnswer => "no answer".into(),
        RingResult::Busy => "busy".into(),
        RingResult::Failed(why) => format!("could not ring: {why}"),
    }
}

/// The members in the order the strategy rings them (one at a time).
fn order(group: &Group, host: &mut dyn Host, call_id: &str, unix_ms: i64) -> Result<Vec<i64>, NodeError> {
    let mut members = group.members.clone();
    match group.strategy {
        RingStrategy::RingAll | RingStrategy::Sequential => {}
        RingStrategy::RoundRobin => {
            let start = match host.kv_increment(&format!("rr:{}", group.id), 1) {
                Ok(n) => (n - 1).rem_euclid(members.len() as i64) as usize,
                Err(_) => {
                    sdk::warn!(host, "the round-robin position could not be read; starting at the first member");
                    0
                }
            };
            members.rotate_left(start);
        }
        RingStrategy::Random => shuffle(&mut members, call_id, unix_ms),
        RingStrategy::LongestIdle => {
            let mut ready = Vec::new();
            for (pos, id) in members.iter().enumerate() {
                match host.extension(*id)? {
                    Some(x) if x.registered_devices > 0 && !x.dnd && !x.in_call => {
                        // Never idle since start-up counts as idle longest.
                        ready.push((x.idle_ms.unwrap_or(u64::MAX), pos, *id));
                    }
                    Some(_) => {}
                    None => sdk::warn!(host, "ring group {}: member {id} is not an extension", group.id),
                }
            }
            ready.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            members = ready.into_iter().map(|(_, _, id)| id).collect();
        }
    }
    Ok(members)
}

impl Node for RingGroup {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "👥".into(),
            description: "Rings the group's extensions by its strategy (ring all, round robin, random, longest idle, sequential).".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "timeout": { "type": "integer", "title": "Ring for (seconds)", "minimum": 1, "maximum": 600 } }
            })),
            outputs: vec![sdk::terminal_output("answered", "Answered"), sdk::output("no_answer", "No answer")],
            capabilities: vec![Capability::Directory, Capability::Kv, Capability::CallerId],
            entity_kind: Some("ring_group".into()),
            entity_required: true,
            waits_for_caller: true,
            wall_clock_ms: 11 * 60 * 1000,
            ..sdk::node_info("ring_group", "Ring Group", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let group: Group = input.entity()?;
        if group.members.is_empty() {
            sdk::warn!(host, "ring group {} has no members", group.id);
            return Ok("no_answer".into());
        }
        let info = host.info();
        let caller_id = caller_id(&group, &info.caller);
        let total_ms = u64::from(input.config.timeout.unwrap_or(group.ring_timeout).clamp(1, 600)) * 1000;
        let started = host.now("UTC").map_err(NodeError::Failed)?.unix_ms;

        if group.strategy == RingStrategy::RingAll {
            let targets: Vec<Destination> = group.members.iter().map(|id| Destination::Extension(*id)).collect();
            let r = host.ring(&targets, &RingOptions { timeout_ms: total_ms as u32, caller_id })?;
            sdk::info!(host, "ring group {} (ring all): {}", group.name, said(&r));
            return Ok(if matches!(r, RingResult::Answered) { "answered" } else { "no_answer" }.into());
        }

        let member_ms = u64::from(group.member_timeout.unwrap_or(DEFAULT_MEMBER_TIMEOUT_S).clamp(1, 600)) * 1000;
        for member in order(&group, host, &info.call_id, started)? {
            let elapsed = (host.now("UTC").map_err(NodeError::Failed)?.unix_ms - started).max(0) as u64;
            let left = total_ms.saturating_sub(elapsed);
            if left < MIN_RING_MS {
                break;
            }
            let r = host.ring(&[Destination::Extension(member)], &RingOptions { timeout_ms: member_ms.min(left) as u32, caller_id: caller_id.clone() })?;
            sdk::debug!(host, "ring group {}: member {member}: {}", group.name, said(&r));
            if matches!(r, RingResult::Answered) {
                return Ok("answered".into());
            }
        }
        Ok("no_answer".into())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(RingGroup);
