//! [`Host`]: every host function of the world behind one trait, so a node's logic can run in
//! the component ([`Wasm`]) and, for unit tests and benchmarks, natively against a fake.

use crate::bindings::flowpbx::node::{call, clock, directory, http, kv, log, types};
use call::{CollectOptions, Collected, ConferenceOptions, ConferenceResult, HangupCause, RingOptions, RingResult, VoicemailOptions, VoicemailResult};
use types::{CallInfo, Destination, NodeError, Party};

/// The host functions a node may call. Each method documents nothing of its own: it is the
/// WIT function of the same name (see the `call`, `directory`, `clock`, `http`, `kv` and
/// `log` modules).
pub trait Host {
    fn info(&mut self) -> CallInfo;
    fn answer(&mut self) -> Result<(), NodeError>;
    fn play(&mut self, prompt: &str) -> Result<(), NodeError>;
    fn say(&mut self, text: &str) -> Result<(), NodeError>;
    fn collect_digits(&mut self, options: &CollectOptions) -> Result<Collected, NodeError>;
    fn ring(&mut self, targets: &[Destination], options: &RingOptions) -> Result<RingResult, NodeError>;
    fn voicemail(&mut self, mailbox: i64, options: VoicemailOptions) -> Result<VoicemailResult, NodeError>;
    /// (A fake host that does not model it refuses it.)
    fn check_voicemail(&mut self, mailbox: i64) -> Result<(), NodeError> {
        Err(NodeError::Failed(format!("check-voicemail of box {mailbox} is not offered by this host")))
    }
    fn transfer(&mut self, target: &Destination) -> Result<(), NodeError>;
    fn hangup(&mut self, cause: HangupCause) -> Result<(), NodeError>;
    fn set_caller_id(&mut self, caller: &Party) -> Result<(), NodeError>;
    fn conference(&mut self, bridge: i64, options: ConferenceOptions) -> Result<ConferenceResult, NodeError>;
    fn get_var(&mut self, name: &str) -> Option<String>;
    fn set_var(&mut self, name: &str, value: &str) -> Result<(), NodeError>;
    fn extension(&mut self, id: i64) -> Result<Option<directory::ExtensionInfo>, NodeError>;
    fn find_extension(&mut self, number: &str) -> Result<Option<directory::ExtensionInfo>, NodeError>;
    fn now(&mut self, zone: &str) -> Result<clock::LocalTime, String>;
    fn http_send(&mut self, request: &http::Request) -> Result<http::Response, http::HttpError>;
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, kv::KvError>;
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), kv::KvError>;
    fn kv_delete(&mut self, key: &str) -> Result<(), kv::KvError>;
    fn kv_increment(&mut self, key: &str, delta: i64) -> Result<i64, kv::KvError>;
    fn log(&mut self, level: log::Level, message: &str);
}

/// The real host: the component's imports.
pub struct Wasm;

impl Host for Wasm {
    fn info(&mut self) -> CallInfo {
        call::info()
    }
    fn answer(&mut self) -> Result<(), NodeError> {
        call::answer()
    }
    fn play(&mut self, prompt: &str) -> Result<(), NodeError> {
        call::play(prompt)
    }
    fn say(&mut self, text: &str) -> Result<(), NodeError> {
        call::say(text)
    }
    fn collect_digits(&mut self, options: &CollectOptions) -> Result<Collected, NodeError> {
        call::collect_digits(options)
    }
    fn ring(&mut self, targets: &[Destination], options: &RingOptions) -> Result<RingResult, NodeError> {
        call::ring(targets, options)
    }
    fn voicemail(&mut self, mailbox: i64, options: VoicemailOptions) -> Result<VoicemailResult, NodeError> {
        call::voicemail(mailbox, options)
    }
    fn check_voicemail(&mut self, mailbox: i64) -> Result<(), NodeError> {
        call::check_voicemail(mailbox)
    }
    fn transfer(&mut self, target: &Destination) -> Result<(), NodeError> {
        call::transfer(target)
    }
    fn hangup(&mut self, cause: HangupCause) -> Result<(), NodeError> {
        call::hangup(cause)
    }
    fn set_caller_id(&mut self, caller: &Party) -> Result<(), NodeError> {
        call::set_caller_id(caller)
    }
    fn conference(&mut self, bridge: i64, options: ConferenceOptions) -> Result<ConferenceResult, NodeError> {
        call::conference(bridge, options)
    }
    fn get_var(&mut self, name: &str) -> Option<String> {
        call::get_var(name)
    }
    fn set_var(&mut self, name: &str, value: &str) -> Result<(), NodeError> {
        call::set_var(name, value)
    }
    fn extension(&mut self, id: i64) -> Result<Option<directory::ExtensionInfo>, NodeError> {
        directory::extension(id)
    }
    fn find_extension(&mut self, number: &str) -> Result<Option<directory::ExtensionInfo>, NodeError> {
        directory::find_extension(number)
    }
    fn now(&mut self, zone: &str) -> Result<clock::LocalTime, String> {
        clock::now(zone)
    }
    fn http_send(&mut self, request: &http::Request) -> Result<http::Response, http::HttpError> {
        http::send(request)
    }
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, kv::KvError> {
        kv::get(key)
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), kv::KvError> {
        kv::set(key, value)
    }
    fn kv_delete(&mut self, key: &str) -> Result<(), kv::KvError> {
        kv::delete(key)
    }
    fn kv_increment(&mut self, key: &str, delta: i64) -> Result<i64, kv::KvError> {
        kv::increment(key, delta)
    }
    fn log(&mut self, level: log::Level, message: &str) {
        log::log(level, message)
    }
}
