//! FlowPBX's application layer: what both the HTTP API (`api`) and the binary (`flowpbx`)
//! use, above the SIP core (`call`), the flow engine (`flow`), the media engine (`media`)
//! and storage (`store`).
//!
//! - [`settings`]: the stored-setting catalogue, resolution (flag > env > stored > default)
//!   and validated changes.
//! - [`flows`]: the flow runtime and its lifecycle ([`flows::FlowService`]: not started,
//!   starting in the background, ready or failed) and the operations on flows: node types
//!   and outputs, validate, publish, rollback, the graphs of versions, simulate.
//! - [`versions`]: what a published version captures of the entities it links (menus, ring
//!   groups, time switches, voicemail boxes, conference bridges), how a draft stands against
//!   the live version, which flows an entity's edit affects, the entity side of a diff, and
//!   resetting a draft to the live version.
//! - [`plugins`]: uploading, granting, enabling and deleting node plugins.
//! - [`engine`]: the server's engine with its live services (presence from the PBX, kv in the
//!   database, webhooks' HTTP) and its start.
//! - [`flow_sync`]: entities from the store into the flow engine's entity cache, and the
//!   nodes' kv state in the database.
//! - [`call_runner`]: every inbound call to a number walks its flow, on its own task, and
//!   its trace reaches the CDR; [`call_control`]: the flow engine's `CallControl` over a real
//!   call (prompts, TTS, digits, ringing, voicemail, conference with PIN, transfer, hang-up),
//!   with [`pin_guard`] counting wrong conference PINs across calls; [`voicemail_menu`]:
//!   the dial-in voicemail (`*97`, `*98`, a box's mailbox number, `*` during a greeting).
//!
//! One error enum, [`Error`]; the API maps it onto its envelope.
//!
//! **Architecture invariant:** no HTTP here (no axum, no status codes, no OpenAPI): an
//! operation takes typed input and answers typed output or an [`Error`] naming the field at
//! fault; no SQL either (the store's repositories only).
#![forbid(unsafe_code)]

pub mod backup;
pub mod call_control;
pub mod call_runner;
pub mod engine;
mod error;
pub mod flow_sync;
pub mod flows;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod pin_guard;
pub mod plugins;
pub mod retention;
pub mod settings;
pub mod versions;
pub mod voicemail_menu;

pub use error::{Error, FieldProblem, Problems, Result};
