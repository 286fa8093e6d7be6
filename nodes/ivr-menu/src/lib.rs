//! The IVR menu: plays the menu's greeting (a prompt, else its TTS text), collects a choice
//! and leaves by the output of that choice. A choice is one or more DTMF digits (`1`, `*`,
//! `#`, `11`); after a digit that starts a longer choice the menu waits the inter-digit
//! timeout for the next one. A timeout or an invalid choice repeats the greeting up to
//! `max_retries` times, then leaves by `timeout` or `invalid` (whichever happened last).

use sdk::call::{CollectOptions, Collected};
use sdk::entity::IvrMenu as Menu;
use sdk::types::Media;
use sdk::{Host, Input, Node, NodeError, NodeInfo, Output};
use serde::Deserialize;

/// The node type.
pub struct IvrMenu;

/// No configuration of its own: everything is in the linked `ivr_menu` entity.
#[derive(Deserialize)]
pub struct Config {}

const DIGITS: &str = "0123456789*#";
const MAX_CHOICE_LEN: usize = 8;

fn check(menu: &Menu) -> Result<(), String> {
    if menu.options.is_empty() {
        return Err("the menu has no options".into());
    }
    for key in menu.options.keys() {
        if key.is_empty() || key.len() > MAX_CHOICE_LEN || !key.chars().all(|c| DIGITS.contains(c)) {
            return Err(format!("option {key:?} is not 1 to {MAX_CHOICE_LEN} of the digits 0-9 * #"));
        }
    }
    Ok(())
}

fn label(key: &str, text: &str) -> String {
    // The seed stored node ids as option values; a label that looks like one says nothing.
    if text.trim().is_empty() || text.starts_with("node_") {
        format!("Digit {key}")
    } else {
        text.to_string()
    }
}

enum Miss {
    Timeout,
    Invalid,
}

fn secs(s: u32) -> u32 {
    s.saturating_mul(1000)
}

/// One attempt: the greeting with barge-in, then digits until a choice is complete.
fn attempt(menu: &Menu, host: &mut dyn Host) -> Result<Result<String, Miss>, NodeError> {
    let greeting = match (&menu.greeting_file, &menu.greeting_tts) {
        (Some(p), _) if !p.is_empty() => Some(Media::Prompt(p.clone())),
        (_, Some(t)) if !t.is_empty() => Some(Media::Tts(t.clone())),
        _ => None,
    };
    let first = host.collect_digits(&CollectOptions {
        prompt: greeting,
        max_digits: 1,
        first_digit_timeout_ms: secs(menu.timeout),
        inter_digit_timeout_ms: secs(menu.digit_timeout),
        terminators: String::new(),
    })?;
    let mut choice = first.digits;
    if choice.is_empty() {
        return Ok(Err(Miss::Timeout));
    }
    loop {
        let longer = menu.options.keys().any(|k| k.len() > choice.len() && k.starts_with(&choice));
        if !longer {
            break;
        }
        let Collected { digits, .. } = host.collect_digits(&CollectOptions {
            prompt: None,
            max_digits: 1,
            first_digit_timeout_ms: secs(menu.digit_timeout),
            inter_digit_timeout_ms: secs(menu.digit_timeout),
            terminators: String::new(),
        })?;
        if digits.is_empty() {
            break;
        }
        choice.push_str(&digits);
    }
    Ok(if menu.options.contains_key(&choice) { Ok(choice) } else { Err(Miss::Invalid) })
}

impl Node for IvrMenu {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "routing".into(),
            icon: "🔢".into(),
            description: "Plays a greeting and routes by the digits the caller presses; repeats on timeout or an invalid choice.".into(),
            config_schema: sdk::schema(serde_json::json!({"type": "object", "additionalProperties": false})),
            outputs: vec![sdk::output("timeout", "Timeout"), sdk::output("invalid", "Invalid")],
            entity_kind: Some("ivr_menu".into()),
            entity_required: true,
            waits_for_caller: true,
            wall_clock_ms: 5 * 60 * 1000,
            ..sdk::node_info("ivr_menu", "IVR Menu", env!("CARGO_PKG_VERSION"))
        }
    }

    fn outputs(input: &Input<Config>, _host: &mut dyn Host) -> Result<Vec<Output>, String> {
        let menu: Menu = input.entity()?;
        check(&menu)?;
        let mut out: Vec<Output> = menu.options.iter().map(|(k, v)| sdk::output(k, &label(k, v))).collect();
        out.push(sdk::output("timeout", "Timeout"));
        out.push(sdk::output("invalid", "Invalid"));
        Ok(out)
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let menu: Menu = input.entity()?;
        check(&menu).map_err(NodeError::InvalidConfig)?;
        let mut tries = 0;
        loop {
            let miss = match attempt(&menu, host)? {
                Ok(choice) => {
                    sdk::info!(host, "menu {}: caller chose {choice}", menu.id);
                    return Ok(choice);
                }
                Err(miss) => miss,
            };
            tries += 1;
            if tries > menu.max_retries {
                let out = match miss {
                    Miss::Timeout => "timeout",
                    Miss::Invalid => "invalid",
                };
                sdk::info!(host, "menu {}: no valid choice after {tries} tries, leaving by {out}", menu.id);
                return Ok(out.to_string());
            }
            match miss {
                Miss::Invalid => host.play(menu.invalid_prompt.as_deref().unwrap_or("system/invalid-option"))?,
                Miss::Timeout => {
                    if let Some(p) = &menu.timeout_prompt {
                        host.play(p)?
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(IvrMenu);
