//! # Writing FlowPBX flow nodes
//!
//! A FlowPBX call flow is a graph of nodes; every node type is a WebAssembly component that
//! targets the world `flowpbx:node/plugin@0.1.0` (the `.wit` files in `wit/`). This crate
//! is what a node is written with:
//!
//! - the generated bindings of the world: [`call`], [`directory`], [`clock`], [`http`],
//!   [`kv`], [`log`] (the host functions) and [`types`];
//! - the [`Node`] trait, with the node's configuration deserialised by serde into a type of
//!   yours ([`Input`]), and [`export_node!`] to export it;
//! - [`entity`]: the entities (IVR menus, ring groups, ...) a node can link, as typed structs;
//! - [`Host`]: every host function behind one trait, so a node's logic runs in the component
//!   ([`Wasm`]) and natively against a fake in your unit tests;
//! - small helpers: [`node_info`], [`output`], [`terminal_output`], [`schema`], and the
//!   [`info!`]/[`warn!`]/... log macros.
//!
//! A node is a `cdylib` built for `wasm32-unknown-unknown` and turned into a component:
//! `flowpbx node build` does both and runs `describe()` to check it; `flowpbx node new
//! vendor/name` writes a crate ready for it, and `flowpbx node test PLUGIN.wasm --script
//! SCRIPT` runs it in the call simulator. A node has no WASI and no ambient authority: it
//! reaches the call and the outside world only through the host functions, and the ones
//! behind a [`types::Capability`] only when an administrator granted that capability.
//!
//! ## A complete plugin
//!
//! A node that looks the caller up in a CRM over HTTP and routes VIPs differently:
//!
//! ```no_run
//! use flowpbx_node_sdk::{self as sdk, Host, Input, Node, NodeError, NodeInfo};
//! use flowpbx_node_sdk::types::Capability;
//! use flowpbx_node_sdk::http;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     /// e.g. "https://crm.example.com/api/lookup"
//!     url: String,
//!     #[serde(default = "default_timeout")]
//!     timeout_ms: u32,
//! }
//! fn default_timeout() -> u32 { 3000 }
//!
//! struct CrmLookup;
//!
//! impl Node for CrmLookup {
//!     type Config = Config;
//!
//!     fn describe() -> NodeInfo {
//!         NodeInfo {
//!             category: "integration".into(),
//!             icon: "📇".into(),
//!             description: "Looks the caller up in the CRM; VIPs leave by `vip`.".into(),
//!             config_schema: sdk::schema(serde_json::json!({
//!                 "type": "object",
//!                 "required": ["url"],
//!                 "properties": {
//!                     "url": { "type": "string", "format": "uri" },
//!                     "timeout_ms": { "type": "integer", "minimum": 100, "maximum": 10000 }
//!                 }
//!             })),
//!             outputs: vec![sdk::output("vip", "VIP"), sdk::output("other", "Everyone else")],
//!             capabilities: vec![Capability::Http("crm.example.com".into())],
//!             wall_clock_ms: 15_000,
//!             ..sdk::node_info("acme/crm-lookup", "CRM lookup", env!("CARGO_PKG_VERSION"))
//!         }
//!     }
//!
//!     fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
//!         let caller = host.info().caller.number;
//!         let response = host.http_send(&http::Request {
//!             method: "POST".into(),
//!             url: input.config.url.clone(),
//!             headers: vec![("content-type".into(), "application/json".into())],
//!             body: serde_json::json!({ "phone": caller }).to_string().into_bytes(),
//!             timeout_ms: input.config.timeout_ms,
//!         })
//!         .map_err(|e| NodeError::Failed(format!("CRM lookup: {e:?}")))?;
//!         let body: serde_json::Value = serde_json::from_slice(&response.body)
//!             .map_err(|e| NodeError::Failed(format!("CRM answered with bad JSON: {e}")))?;
//!         let vip = body.get("vip").and_then(|v| v.as_bool()).unwrap_or(false);
//!         sdk::info!(host, "caller {caller} vip={vip}");
//!         Ok(if vip { "vip" } else { "other" }.to_string())
//!     }
//! }
//!
//! // Only the component exports the node; a native build (unit tests with a fake `Host`)
//! // must not define the export symbols.
//! #[cfg(target_arch = "wasm32")]
//! sdk::export_node!(CrmLookup);
//! # fn main() {}
//! ```
//!
//! Its `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "crm-lookup"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! flowpbx-node-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! panic = "abort"
//! codegen-units = 1
//! strip = true
//! ```
//!
//! `flowpbx node build` in that directory writes `target/flowpbx/crm-lookup.wasm`; upload it
//! in the web UI (Plugins) or with `POST /api/v1/plugins`, grant it `http:crm.example.com`,
//! enable it, and the node appears in the flow editor's palette.
//!
//! ## Rules a node lives by
//!
//! - `run` returns the id of one of its outputs. An error, a trap (a panic is a trap), an
//!   output it did not declare, or a limit (memory 16 MiB, CPU 50 ms, its `wall_clock_ms`)
//!   sends the call down the graph node's `error` output, or to the flow's fallback.
//! - Host functions block the node but not the PBX. When one returns
//!   [`NodeError::CallerHungUp`], return at once.
//! - `describe` and `outputs` must not touch the call: they also run when no call exists.
//! - Entities (`input.entity`) are live: the host passes their current data on every run.

// The generated bindings need `unsafe` (the canonical ABI); everything written here is safe.
#![deny(unsafe_code)]

#[cfg(all(feature = "bump-alloc", target_arch = "wasm32"))]
mod alloc;
pub mod entity;
#[cfg(feature = "guest")]
mod host;

/// Nodes allocate with a bump allocator (see `alloc.rs`; feature `bump-alloc`).
#[cfg(all(feature = "bump-alloc", target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: alloc::NodeAllocator = alloc::NodeAllocator::new();
#[cfg(feature = "guest")]
pub use host::{Host, Wasm};

use serde::de::DeserializeOwned;

#[cfg(feature = "guest")]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    //! The wit-bindgen bindings of `flowpbx:node/plugin@0.1.0`.
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_guest",
        default_bindings_module: "::flowpbx_node_sdk::bindings",
    });
}

#[cfg(feature = "guest")]
pub use bindings::flowpbx::node::{call, clock, directory, http, kv, log, types};
#[cfg(feature = "guest")]
pub use types::{Capability, NodeError, NodeInfo, NodeInput, Output};

/// The world version this SDK targets.
pub const WORLD_VERSION: &str = "0.1.0";

/// A node's input: its configuration, deserialised, and the linked entity, if any.
#[derive(Debug, Clone)]
pub struct Input<C> {
    /// The graph node's `data.config`.
    pub config: C,
    /// The linked entity's kind, id and current data.
    pub entity: Option<EntityData>,
}

/// A linked entity as the host passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityData {
    /// `ivr_menu`, `ring_group`, ...
    pub kind: String,
    pub id: i64,
    /// The entity as a JSON object.
    pub json: String,
}

/// Why a node's input is unusable. Its text is what the flow's trace shows; `?` turns it
/// into the `String` of [`Node::outputs`] or a [`NodeError::InvalidConfig`](types::NodeError).
#[derive(Debug)]
pub enum InputError {
    /// The node needs a linked entity and has none.
    NoEntity,
    /// The linked entity does not parse as the type asked for.
    Entity { kind: String, id: i64, source: serde_json::Error },
    /// The configuration does not parse as the node's `Config`.
    Config(serde_json::Error),
}

impl core::fmt::Display for InputError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InputError::NoEntity => f.write_str("this node needs a linked entity"),
            InputError::Entity { kind, id, source } => write!(f, "the linked {kind} (id {id}) is unusable: {source}"),
            InputError::Config(e) => write!(f, "invalid configuration: {e}"),
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InputError::NoEntity => None,
            InputError::Entity { source, .. } | InputError::Config(source) => Some(source),
        }
    }
}

/// The message the WIT's `result<_, string>` carries.
impl From<InputError> for String {
    fn from(e: InputError) -> String {
        e.to_string()
    }
}

#[cfg(feature = "guest")]
impl From<InputError> for NodeError {
    fn from(e: InputError) -> NodeError {
        NodeError::InvalidConfig(e.to_string())
    }
}

impl<C> Input<C> {
    /// The linked entity as `T` (one of [`entity`]'s types, or your own), failing when there
    /// is none or it does not parse.
    pub fn entity<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        let e = self.entity.as_ref().ok_or(InputError::NoEntity)?;
        serde_json::from_str(&e.json).map_err(|source| InputError::Entity { kind: e.kind.clone(), id: e.id, source })
    }
}

/// Parses the raw input the host passes into an [`Input`].
pub fn parse_input<C: DeserializeOwned>(config: &str, entity: Option<(String, i64, String)>) -> Result<Input<C>, InputError> {
    let config = if config.trim().is_empty() { "{}" } else { config };
    let config = serde_json::from_str(config).map_err(InputError::Config)?;
    Ok(Input { config, entity: entity.map(|(kind, id, json)| EntityData { kind, id, json }) })
}

/// A node type. Implement it and export the type with [`export_node!`].
///
/// The host functions reach the node through a [`Host`]: in the component that is [`Wasm`]
/// (the imports); in a native unit test of your node it is whatever fake you write.
#[cfg(feature = "guest")]
pub trait Node {
    /// The graph node's `data.config`, deserialised with serde. Use `serde_json::Value` to
    /// take it raw, an empty struct for none.
    type Config: DeserializeOwned;

    /// What the node type is (see [`node_info`]).
    fn describe() -> NodeInfo;

    /// The outputs of a graph node with this input. The default returns
    /// `describe().outputs`; override it when outputs depend on configuration. May use
    /// only [`Host::now`] and [`Host::log`].
    fn outputs(input: &Input<Self::Config>, host: &mut dyn Host) -> Result<Vec<Output>, String> {
        let _ = (input, host);
        Ok(Self::describe().outputs)
    }

    /// Runs the node for one call; returns an output id.
    fn run(input: Input<Self::Config>, host: &mut dyn Host) -> Result<String, NodeError>;
}

/// The glue [`export_node!`] expands to; not part of the API.
#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod __private {
    use super::*;

    fn parse<N: Node>(input: NodeInput) -> Result<Input<N::Config>, InputError> {
        parse_input(&input.config, input.entity.map(|e| (e.kind, e.id, e.data)))
    }

    pub fn outputs<N: Node>(input: NodeInput) -> Result<Vec<Output>, String> {
        N::outputs(&parse::<N>(input)?, &mut Wasm)
    }

    pub fn run<N: Node>(input: NodeInput) -> Result<String, NodeError> {
        N::run(parse::<N>(input)?, &mut Wasm)
    }
}

/// Exports a [`Node`] implementation as the component's `node` interface.
///
/// ```ignore
/// flowpbx_node_sdk::export_node!(MyNode);
/// ```
#[cfg(feature = "guest")]
#[macro_export]
#[rustfmt::skip] // rustfmt does not settle on the `with_types_in` line
macro_rules! export_node {
    ($node:ty) => {
        const _: () = {
            struct __FlowpbxNodeExport;
            impl $crate::bindings::exports::flowpbx::node::node::Guest for __FlowpbxNodeExport {
                fn describe() -> $crate::types::NodeInfo {
                    <$node as $crate::Node>::describe()
                }
                fn outputs(input: $crate::types::NodeInput) -> ::core::result::Result<::std::vec::Vec<$crate::types::Output>, ::std::string::String> {
                    $crate::__private::outputs::<$node>(input)
                }
                fn run(input: $crate::types::NodeInput) -> ::core::result::Result<::std::string::String, $crate::types::NodeError> {
                    $crate::__private::run::<$node>(input)
                }
            }
            $crate::bindings::export_guest!(__FlowpbxNodeExport with_types_in $crate::bindings);
        };
    };
}

/// A [`NodeInfo`] with sensible defaults, to complete with struct-update syntax: category
/// `integration`, icon 🧩, an object config schema, no outputs, no capabilities, no entity,
/// not waiting for the caller, 10 s of wall clock.
#[cfg(feature = "guest")]
pub fn node_info(id: &str, name: &str, version: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        category: "integration".to_string(),
        icon: "🧩".to_string(),
        description: String::new(),
        config_schema: r#"{"type":"object"}"#.to_string(),
        outputs: Vec::new(),
        capabilities: Vec::new(),
        entity_kind: None,
        entity_required: false,
        waits_for_caller: false,
        wall_clock_ms: 10_000,
    }
}

/// An output the call continues from.
#[cfg(feature = "guest")]
pub fn output(id: &str, label: &str) -> Output {
    Output { id: id.to_string(), label: label.to_string(), terminal: false }
}

/// An output taken when the call has left the flow (answered and bridged, transferred).
#[cfg(feature = "guest")]
pub fn terminal_output(id: &str, label: &str) -> Output {
    Output { id: id.to_string(), label: label.to_string(), terminal: true }
}

/// A JSON Schema as the text `node-info.config-schema` wants.
pub fn schema(value: serde_json::Value) -> String {
    value.to_string()
}

/// Writes a log line through a [`Host`]: `sdk::log_at!(host, Level::Info, "x = {}", x)`.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! log_at {
    ($host:expr, $level:expr, $($arg:tt)*) => {
        $crate::Host::log($host, $level, &::std::format!($($arg)*))
    };
}

/// Writes a debug line: `sdk::debug!(host, "...")`.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! debug { ($host:expr, $($arg:tt)*) => { $crate::log_at!($host, $crate::log::Level::Debug, $($arg)*) }; }
/// Writes an info line: `sdk::info!(host, "...")`.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! info { ($host:expr, $($arg:tt)*) => { $crate::log_at!($host, $crate::log::Level::Info, $($arg)*) }; }
/// Writes a warning: `sdk::warn!(host, "...")`.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! warn { ($host:expr, $($arg:tt)*) => { $crate::log_at!($host, $crate::log::Level::Warn, $($arg)*) }; }
/// Writes an error line: `sdk::error!(host, "...")`.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! error { ($host:expr, $($arg:tt)*) => { $crate::log_at!($host, $crate::log::Level::Error, $($arg)*) }; }

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Cfg {
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn input_parses_config_and_entity() {
        let i: Input<Cfg> = parse_input("", None).unwrap();
        assert_eq!(i.config.n, 0);
        let i: Input<Cfg> = parse_input(r#"{"n":3}"#, Some(("ring_group".into(), 4, r#"{"id":4,"name":"S","members":[7]}"#.into()))).unwrap();
        assert_eq!(i.config.n, 3);
        let g: entity::RingGroup = i.entity().unwrap();
        assert_eq!(g.members, vec![7]);
        let bad = parse_input::<Cfg>(r#"{"n":"x"}"#, None).unwrap_err();
        assert!(matches!(bad, InputError::Config(_)) && bad.to_string().starts_with("invalid configuration: "), "{bad}");
        assert!(std::error::Error::source(&bad).is_some());
        let none: Input<Cfg> = parse_input("{}", None).unwrap();
        assert!(matches!(none.entity::<entity::RingGroup>(), Err(InputError::NoEntity)));
        let wrong: Input<Cfg> = parse_input("{}", Some(("ring_group".into(), 4, "[]".into()))).unwrap();
        let e = wrong.entity::<entity::RingGroup>().unwrap_err();
        assert!(e.to_string().starts_with("the linked ring_group (id 4) is unusable: "), "{e}");
    }
}
