//! Webhook: sends the call's details to a URL and routes on the response. The value at
//! `field` (a dotted path into the JSON response, e.g. `route` or `data.queue`) picks the
//! route whose `value` equals it; no match, or no `field`, leaves by `default`; no response
//! in time by `timeout`; a non-2xx status or a body that is not JSON takes the error path.
//! `variables` copies response values into call variables for later nodes.

use sdk::http::{HttpError, Request};
use sdk::types::{Capability, NodeError, Output};
use sdk::{Host, Input, Node, NodeInfo};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The node type.
pub struct Webhook;

/// One route: a response value and its output.
#[derive(Deserialize, Clone)]
pub struct Route {
    /// Compared with the response value (strings as they are, numbers and booleans as JSON
    /// text).
    pub value: Value,
    /// The output id; the value's text when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

fn post() -> String {
    "POST".into()
}
fn five_s() -> u32 {
    5000
}

/// The request and how to route on its response.
#[derive(Deserialize)]
pub struct Config {
    pub url: String,
    #[serde(default = "post")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "five_s")]
    pub timeout_ms: u32,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Call variable name to a dotted path into the response.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

const RESERVED: [&str; 3] = ["default", "timeout", "error"];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn route_outputs(c: &Config) -> Result<Vec<Output>, String> {
    let mut out: Vec<Output> = Vec::new();
    for r in &c.routes {
        let id = r.id.clone().unwrap_or_else(|| text(&r.value));
        if id.is_empty() || RESERVED.contains(&id.as_str()) || out.iter().any(|o| o.id == id) {
            return Err(format!("route {id:?} is empty, reserved or used twice"));
        }
        let label = r.label.clone().unwrap_or_else(|| text(&r.value));
        out.push(sdk::output(&id, &label));
    }
    out.push(sdk::output("default", "No match"));
    out.push(sdk::output("timeout", "Timeout"));
    Ok(out)
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').filter(|p| !p.is_empty()).try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

impl Node for Webhook {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "integration".into(),
            icon: "🌐".into(),
            description: "Sends the call's details to a URL and routes on a field of the JSON response.".into(),
            config_schema: sdk::schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {
                    "url": { "type": "string", "title": "URL", "pattern": "^https?://" },
                    "method": { "enum": ["POST", "PUT", "GET"] },
                    "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                    "timeout_ms": { "type": "integer", "title": "Timeout (milliseconds)", "minimum": 100, "maximum": 10000 },
                    "field": { "type": "string", "minLength": 1 },
                    "routes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["value"],
                            "properties": {
                                "value": { "type": ["string", "number", "boolean"] },
                                "id": { "type": "string", "minLength": 1 },
                                "label": { "type": "string" }
                            }
                        }
                    },
                    "variables": { "type": "object", "additionalProperties": { "type": "string" } }
                }
            })),
            outputs: vec![sdk::output("default", "No match"), sdk::output("timeout", "Timeout")],
            // The URL is the administrator's own configuration: any host.
            capabilities: vec![Capability::Http("*".into())],
            wall_clock_ms: 12_000,
            ..sdk::node_info("webhook", "Webhook", env!("CARGO_PKG_VERSION"))
        }
    }

    fn outputs(input: &Input<Config>, _host: &mut dyn Host) -> Result<Vec<Output>, String> {
        route_outputs(&input.config)
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let c = input.config;
        route_outputs(&c).map_err(NodeError::InvalidConfig)?;
        let info = host.info();
        let body = json!({
            "call_id": info.call_id,
            "caller": { "number": info.caller.number, "name": info.caller.name },
            "dialled": info.dialled,
            "flow_id": info.flow_id,
            "flow_version": info.flow_version,
            "node_id": info.node_id,
            "variables": info.variables.iter().cloned().collect::<BTreeMap<String, String>>(),
        });
        let mut headers: Vec<(String, String)> = c.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let get = c.method.eq_ignore_ascii_case("GET");
        if !get && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let req = Request {
            method: c.method.to_ascii_uppercase(),
            url: c.url.clone(),
            headers,
            body: if get { Vec::new() } else { body.to_string().into_bytes() },
            timeout_ms: c.timeout_ms.clamp(100, 10_000),
        };
        let resp = match host.http_send(&req) {
            Ok(r) => r,
            Err(HttpError::Timeout) => {
                sdk::warn!(host, "webhook {}: timed out", c.url);
                return Ok("timeout".into());
            }
            Err(HttpError::Denied(h)) => return Err(NodeError::Denied(format!("http to {h}"))),
            Err(HttpError::InvalidRequest(why)) => return Err(NodeError::InvalidConfig(format!("the request to {} cannot be sent: {why}", c.url))),
            Err(HttpError::TooLarge) => return Err(NodeError::Failed(format!("{} answered with more than 1 MiB", c.url))),
            Err(HttpError::Failed(why)) => return Err(NodeError::Failed(format!("{} could not be reached: {why}", c.url))),
        };
        if !(200..300).contains(&resp.status) {
            return Err(NodeError::Failed(format!("webhook {} answered {}", c.url, resp.status)));
        }
        let needs_json = c.field.is_some() || !c.variables.is_empty();
        let doc: Value = if needs_json {
            serde_json::from_slice(&resp.body).map_err(|e| NodeError::Failed(format!("webhook {} answered with a body that is not JSON: {e}", c.url)))?
        } else {
            Value::Null
        };
        for (var, path) in &c.variables {
            if let Some(v) = lookup(&doc, path) {
                host.set_var(var, &text(v))?;
            }
        }
        let Some(field) = &c.field else { return Ok("default".into()) };
        let Some(value) = lookup(&doc, field) else {
            sdk::info!(host, "webhook {}: no {field:?} in the response", c.url);
            return Ok("default".into());
        };
        let value = text(value);
        let out = c.routes.iter().find(|r| text(&r.value) == value).map(|r| r.id.clone().unwrap_or_else(|| text(&r.value))).unwrap_or_else(|| "default".into());
        sdk::info!(host, "webhook {}: {field} = {value:?} -> {out}", c.url);
        Ok(out)
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Webhook);
