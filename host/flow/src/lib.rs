//! The FlowPBX flow engine: the graph model and its validator, the wasmtime host that runs
//! node components under limits, the node registry, the graph walker, the call simulator,
//! and the plugin tooling. See ARCHITECTURE.md ("host/flow") for the map.
//!
//! Entry points:
//! - [`Engine`]: start one per process ([`Engine::new`]); [`Engine::validate`],
//!   [`Engine::prepare`] + [`Engine::install`] (publish), [`Engine::published`],
//!   [`Engine::run_call`] (walk a call), [`Engine::simulate`], [`Engine::install_plugin`].
//! - [`control::CallControl`]: what a call must offer the engine (implemented by `pbx`).
//! - [`entity::EntityCache`], [`services`]: what the PBX must offer (filled by `pbx`).
//! - [`tooling`]: `node new|build|test` and upload validation.
//!
//! **Architecture invariant:** nothing here knows SIP or media; the same engine runs a real
//! call or a simulated one.

// The generated bindings and one audited use in `cache` need `unsafe`; nothing else does.
#![deny(unsafe_code)]

#[allow(unsafe_code, clippy::all)]
mod bindings;
pub mod builtin;
pub mod cache;
pub mod control;
pub mod diff;
pub mod egress;
mod engine;
pub mod entity;
mod error;
pub mod graph;
mod host;
pub mod registry;
pub mod services;
pub mod sim;
#[allow(dead_code)]
mod toolchain;
pub mod tooling;
pub mod trace;
pub mod types;
pub mod validate;
mod walker;

pub use engine::{Engine, EngineConfig, Limits, PreparedFlow, RunError};
pub use error::Error;
pub use walker::SORRY_PROMPT;
