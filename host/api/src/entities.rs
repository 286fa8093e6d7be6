//! The entities' inputs, validation and store calls ([`Resource`] impls), plus their extra
//! read routes (an extension's registrations, a flow's published versions).
//!
//! Inputs have every field optional: on create, absent fields take the data model's defaults
//! (required ones are reported), on update they keep the stored value; `null` clears a
//! nullable field. Write-only secrets (`sip_password`, trunk `password`, `pin`) are accepted
//! and never returned: rows carry `password_set`/`pin_set` instead.

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use flow::graph::Graph;
use serde::{Deserialize, Deserializer, Serialize};
use store::*;
use utoipa::openapi::schema::{KnownFormat, SchemaFormat, SchemaType};
use utoipa::openapi::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, RefOr, Schema, Type};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Data, List, ListMeta, PageQuery, PathParams, Query};
use crate::resources::{rows_as_is, Resource, SecretNames};
use crate::route_patterns;
use crate::validate::*;
use crate::AppState;

/// Absent → None; null → Some(None); value → Some(Some(v)).
fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn required<T>(e: &mut Errors, creating: bool, v: &Option<T>, field: &str) {
    if creating && v.is_none() {
        e.add(field, "is required");
    }
}

/// The number is free in the dial plan (extensions, conference bridges, mailbox numbers).
async fn check_number_free(state: &AppState, e: &mut Errors, field: &str, number: &str, me: Option<(ResourceKind, i64)>) -> ApiResult<()> {
    if let Some(o) = state.store().references().number_owners(number, me).await?.first() {
        e.add(field, format!("{number} is already used by {} \"{}\"", o.entity_type.replace('_', " "), o.name));
    }
    Ok(())
}

async fn check_exists(state: &AppState, e: &mut Errors, field: &str, kind: ResourceKind, id: i64) -> ApiResult<()> {
    if !state.store().references().exists(kind, id).await? {
        e.add(field, format!("no {} with id {id}", kind.as_str().replace('_', " ")));
    }
    Ok(())
}

/// Trimmed; empty is none.
fn trim_opt(v: Option<Option<String>>) -> Option<Option<String>> {
    v.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

fn caller_id_name(e: &mut Errors, field: &str, v: &Option<String>) {
    if let Some(n) = v {
        e.check(is_caller_id_name(n), field, "must be at most 64 characters without control characters");
    }
}

fn caller_id_num(e: &mut Errors, field: &str, v: &Option<String>) {
    if let Some(n) = v {
        e.check(is_caller_id_num(n), field, "must be 1 to 32 digits, * or # (optionally starting with +)");
    }
}

/// An array of distinct items (`uniqueItems`), nullable like every input field.
fn unique_array(items: impl Into<RefOr<Schema>>, min: Option<usize>, max: usize, description: &str) -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(items.into())
        .unique_items(true)
        .min_items(min)
        .max_items(Some(max))
        .description(Some(description))
}

fn call_classes_schema() -> ArrayBuilder {
    unique_array(
        Ref::from_schema_name(CallClass::name()),
        None,
        CallClass::ALL.len(),
        "the classes of outbound numbers it may call, each at most once (emergency numbers always); empty: none",
    )
}

fn int64() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

/// Seconds between OPTIONS keep-alives: 0 (none) or 5 to 3600.
fn options_interval_schema() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(int64().minimum(Some(0)).maximum(Some(0)).description(Some("no keep-alive")))
        .item(int64().minimum(Some(5)).maximum(Some(3600)).description(Some("seconds between OPTIONS")))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("0 (no OPTIONS keep-alive) or 5 to 3600 seconds"))
}

fn secret_pin(e: &mut Errors, pin: &Option<Option<String>>) {
    if let Some(Some(p)) = pin {
        e.check((4..=12).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()), "pin", "must be 4 to 12 digits");
    }
}

fn owned_update(v: &Option<Option<String>>) -> OwnedSecret {
    match v {
        None => OwnedSecret::Keep,
        Some(None) => OwnedSecret::Clear,
        Some(Some(s)) => OwnedSecret::Set(s.clone()),
    }
}

/// A secret change, owned.
#[derive(Debug, Clone)]
pub(crate) enum OwnedSecret {
    Keep,
    Set(String),
    Clear,
}

impl OwnedSecret {
    fn as_update(&self) -> SecretUpdate<'_> {
        match self {
            OwnedSecret::Keep => SecretUpdate::Keep,
            OwnedSecret::Set(s) => SecretUpdate::Set(s),
            OwnedSecret::Clear => SecretUpdate::Clear,
        }
    }
    fn set_value(&self) -> Option<&str> {
        match self {
            OwnedSecret::Set(s) => Some(s),
            _ => None,
        }
    }
    fn changed(&self) -> bool {
        !matches!(self, OwnedSecret::Keep)
    }
}

// ---------------------------------------------------------------------------------------------
// extensions

/// An extension to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionInput {
    /// 2-6 digits, unique in the dial plan
    #[schema(pattern = r"^\s*[0-9]{2,6}\s*$")]
    pub extension: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// defaults to the extension number
    #[schema(pattern = r"^\s*[A-Za-z0-9._-]{1,64}\s*$")]
    pub sip_username: Option<String>,
    /// write-only; required on create, 8-128 characters
    #[schema(min_length = 8, max_length = 128, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub sip_password: Option<String>,
    #[schema(minimum = 5, maximum = 300)]
    pub ring_timeout: Option<i64>,
    pub dnd: Option<bool>,
    pub follow_me_enabled: Option<bool>,
    pub follow_me_numbers: Option<Vec<FollowMeNumber>>,
    /// `sequential`: the devices ring for `ring_timeout`, then each number in turn for its
    /// `timeout`; `simultaneous`: the devices and the numbers together, each number after its
    /// `delay`
    pub follow_me_mode: Option<FollowMeMode>,
    /// a number outside must press 1 to take the call, so its voicemail never does
    pub follow_me_confirm: Option<bool>,
    /// SRTP (SDES) for the extension's media: `off` (plain RTP only; an RTP/SAVP offer is
    /// refused with 488), `optional` (RTP/AVP offers carry `a=crypto` lines; crypto offered is
    /// answered), `required` (RTP/SAVP offers; an offer without usable crypto gets 488)
    pub srtp: Option<SrtpPolicy>,
    pub recording_mode: Option<RecordingMode>,
    #[schema(minimum = 1, maximum = 20)]
    pub max_registrations: Option<i64>,
    /// phones that do not subscribe to `message-summary` get unsolicited MWI NOTIFYs (out of
    /// dialog) when they register and whenever the voicemail counts change
    pub mwi_unsolicited: Option<bool>,
    /// what it presents when it calls out (a route may present its own); null or empty: none
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub outbound_caller_id_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*(\+?[0-9*#]{1,32})?\s*$")]
    pub outbound_caller_id_num: Option<Option<String>>,
    /// the callback number emergency services are given
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*(\+?[0-9*#]{1,32})?\s*$")]
    pub emergency_caller_id_num: Option<Option<String>>,
    #[schema(schema_with = call_classes_schema)]
    pub call_classes: Option<Vec<CallClass>>,
    /// outbound calls at once (0: none)
    #[schema(minimum = 0, maximum = 100)]
    pub max_outbound_calls: Option<i64>,
    /// outbound minutes a day (0: no cap)
    #[schema(minimum = 0, maximum = 100000)]
    pub daily_outbound_minutes: Option<i64>,
}

pub(crate) struct Extensions;

impl Resource for Extensions {
    const PATH: &'static str = "/extensions";
    const KIND: ResourceKind = ResourceKind::Extension;
    const LABEL: &'static str = "extension";
    const CREATE_REQUIRED: &'static [&'static str] = &["extension", "name", "sip_password"];
    type Row = Extension;
    type Item = crate::views::ExtensionView;
    type Input = ExtensionInput;
    type Prepared = (ExtensionFields, Option<String>);

    fn id(row: &Extension) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<Extension>, StoreError> {
        store.extensions().list(page).await
    }
    async fn view(state: &AppState, rows: Vec<Extension>) -> ApiResult<Vec<Self::Item>> {
        crate::views::extensions(state, rows).await
    }
    async fn get(store: &Store, id: i64) -> Result<Option<Extension>, StoreError> {
        store.extensions().get(id).await
    }

    async fn prepare(state: &AppState, i: ExtensionInput, cur: Option<&Extension>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.extension, "extension");
        required(&mut e, creating, &i.name, "name");
        required(&mut e, creating, &i.sip_password, "sip_password");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or_default();
        let username_given = i.sip_username.is_some();
        set(&mut f.extension, i.extension.map(|s| s.trim().to_owned()));
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.email, i.email.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())));
        set(&mut f.sip_username, i.sip_username.map(|s| s.trim().to_owned()));
        if creating && !username_given {
            f.sip_username = f.extension.clone();
        }
        set(&mut f.ring_timeout, i.ring_timeout);
        set(&mut f.dnd, i.dnd);
        set(&mut f.follow_me_enabled, i.follow_me_enabled);
        set(&mut f.follow_me_numbers, i.follow_me_numbers);
        set(&mut f.follow_me_mode, i.follow_me_mode);
        set(&mut f.follow_me_confirm, i.follow_me_confirm);
        set(&mut f.srtp, i.srtp);
        set(&mut f.recording_mode, i.recording_mode);
        set(&mut f.max_registrations, i.max_registrations);
        set(&mut f.mwi_unsolicited, i.mwi_unsolicited);
        set(&mut f.outbound_caller_id_name, trim_opt(i.outbound_caller_id_name));
        set(&mut f.outbound_caller_id_num, trim_opt(i.outbound_caller_id_num));
        set(&mut f.emergency_caller_id_num, trim_opt(i.emergency_caller_id_num));
        set(&mut f.call_classes, i.call_classes);
        set(&mut f.max_outbound_calls, i.max_outbound_calls);
        set(&mut f.daily_outbound_minutes, i.daily_outbound_minutes);

        if !e.has("extension") {
            e.check(is_internal_number(&f.extension), "extension", "must be 2 to 6 digits");
        }
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        if let Some(m) = &f.email {
            e.check(is_email(m), "email", "must be an e-mail address");
        }
        e.check(is_sip_username(&f.sip_username), "sip_username", "must be 1-64 letters, digits, '.', '_' or '-'");
        if let Some(p) = &i.sip_password {
            e.check(
                (8..=128).contains(&p.chars().count()) && !p.chars().any(char::is_control),
                "sip_password",
                "must be 8 to 128 characters without control characters",
            );
        }
        e.range("ring_timeout", f.ring_timeout, 5, 300);
        e.range("max_registrations", f.max_registrations, 1, 20);
        e.check(f.follow_me_numbers.len() <= 10, "follow_me_numbers", "at most 10 numbers");
        for (n, fm) in f.follow_me_numbers.iter().enumerate() {
            e.check(is_dial_string(&fm.number), format!("follow_me_numbers[{n}].number"), "must be a phone number");
            e.check(fm.delay <= 300, format!("follow_me_numbers[{n}].delay"), "must be between 0 and 300");
            e.check((5..=300).contains(&fm.timeout), format!("follow_me_numbers[{n}].timeout"), "must be between 5 and 300");
        }
        e.check(!(f.follow_me_enabled && f.follow_me_numbers.is_empty()), "follow_me_numbers", "must not be empty when follow-me is enabled");
        caller_id_name(&mut e, "outbound_caller_id_name", &f.outbound_caller_id_name);
        caller_id_num(&mut e, "outbound_caller_id_num", &f.outbound_caller_id_num);
        caller_id_num(&mut e, "emergency_caller_id_num", &f.emergency_caller_id_num);
        let mut seen = HashSet::new();
        for (n, c) in f.call_classes.iter().enumerate() {
            e.check(seen.insert(*c), format!("call_classes[{n}]"), "is listed twice");
        }
        e.range("max_outbound_calls", f.max_outbound_calls, 0, 100);
        e.range("daily_outbound_minutes", f.daily_outbound_minutes, 0, 100_000);
        let me = cur.map(|c| (ResourceKind::Extension, c.id));
        if !e.has("extension") {
            check_number_free(state, &mut e, "extension", &f.extension, me).await?;
        }
        if !e.has("sip_username")
            && let Some(other) = state.store().extensions().get_by_sip_username(&f.sip_username).await?
            && Some(other.id) != cur.map(|c| c.id)
        {
            e.add("sip_username", format!("already used by extension {}", other.extension));
        }
        e.finish()?;
        let secrets = if i.sip_password.is_some() { vec!["sip_password"] } else { vec![] };
        Ok(((f, i.sip_password), secrets))
    }

    async fn insert(tx: &mut Tx, (f, pw): &Self::Prepared) -> Result<Extension, StoreError> {
        tx.extensions().insert(f, pw.as_deref().unwrap_or_default()).await
    }
    async fn update(tx: &mut Tx, id: i64, (f, pw): &Self::Prepared) -> Result<Extension, StoreError> {
        tx.extensions().update(id, f, pw.as_deref()).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.extensions().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// trunks

pub const CODECS: &[&str] = &["g711u", "g711a", "opus", "g722"];

/// A SIP trunk to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub trunk_type: Option<TrunkType>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub host: Option<Option<String>>,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<i64>,
    pub transport: Option<Transport>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 128)]
    pub username: Option<Option<String>>,
    /// write-only; null removes it
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128)]
    pub password: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 128)]
    pub auth_username: Option<Option<String>>,
    #[schema(minimum = 60, maximum = 86400)]
    pub register_expiry: Option<i64>,
    pub remote_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub local_host: Option<Option<String>>,
    pub codecs: Option<Vec<String>>,
    #[schema(minimum = 0, maximum = 10000)]
    pub max_channels: Option<i64>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 64)]
    pub caller_id_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub caller_id_num: Option<Option<String>>,
    #[schema(minimum = 0, maximum = 20)]
    pub prefix_strip: Option<i64>,
    #[schema(pattern = r"^([0-9+]{0,20}|\+?[0-9*#]{2,19})$")]
    pub prefix_add: Option<String>,
    #[schema(minimum = 0, maximum = 1000)]
    pub priority: Option<i64>,
    /// where requests to the carrier go first: `host[:port]` or a `sip:`/`sips:` URI; null
    /// or empty: straight to `host`
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 256)]
    pub outbound_proxy: Option<Option<String>>,
    #[schema(schema_with = options_interval_schema)]
    pub options_interval: Option<i64>,
    /// the carrier's country code (`61`); empty: numbers are taken as written
    #[schema(pattern = r"^\s*([1-9][0-9]{0,2})?\s*$")]
    pub country_code: Option<String>,
    /// the national trunk prefix (`0`); needs country_code
    #[schema(pattern = r"^\s*[0-9]{0,6}\s*$")]
    pub national_prefix: Option<String>,
    /// the international prefix (`0011`, `00`)
    #[schema(pattern = r"^\s*[0-9]{0,6}\s*$")]
    pub international_prefix: Option<String>,
    /// transport `tls`: whether the carrier's certificate must be trusted (public CAs and the
    /// system's store) and name its host; false only for transport `tls` (a carrier with a
    /// private CA)
    pub tls_verify: Option<bool>,
    /// SRTP (SDES) toward the carrier: `off`, `optional` (RTP/AVP offers with `a=crypto`
    /// lines) or `required` (RTP/SAVP; a call without usable crypto fails with 488)
    pub srtp: Option<SrtpPolicy>,
    /// record calls that arrive through this trunk, from answer to end (like an `always`
    /// extension's calls)
    pub record_inbound: Option<bool>,
    /// record calls that leave through this trunk, from answer to end
    pub record_outbound: Option<bool>,
}

pub(crate) struct Trunks;

impl Resource for Trunks {
    const PATH: &'static str = "/trunks";
    const KIND: ResourceKind = ResourceKind::Trunk;
    const LABEL: &'static str = "trunk";
    const CREATE_REQUIRED: &'static [&'static str] = &["name", "type"];
    const CREATE_REQUIRED_WHEN: &'static [(&'static str, &'static str, &'static [&'static str])] =
        &[("type", "register", &["host", "username", "password"]), ("type", "ip", &["remote_hosts"])];
    type Row = Trunk;
    type Item = crate::views::TrunkView;
    type Input = TrunkInput;
    type Prepared = (TrunkFields, OwnedSecret);

    fn id(row: &Trunk) -> i64 {
        row.row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<Trunk>, StoreError> {
        store.trunks().list(page).await
    }
    async fn view(state: &AppState, rows: Vec<Trunk>) -> ApiResult<Vec<Self::Item>> {
        crate::views::trunks(state, rows).await
    }
    async fn get(store: &Store, id: i64) -> Result<Option<Trunk>, StoreError> {
        store.trunks().get(id).await
    }

    async fn prepare(_state: &AppState, i: TrunkInput, cur: Option<&Trunk>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        required(&mut e, creating, &i.trunk_type, "type");
        let mut f = cur.map(|c| c.row.fields.clone()).unwrap_or_default();
        let trim = |o: Option<Option<String>>| o.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.trunk_type, i.trunk_type);
        set(&mut f.enabled, i.enabled);
        set(&mut f.host, trim(i.host));
        set(&mut f.port, i.port);
        set(&mut f.transport, i.transport);
        set(&mut f.username, trim(i.username));
        set(&mut f.auth_username, trim(i.auth_username));
        set(&mut f.register_expiry, i.register_expiry);
        set(&mut f.remote_hosts, i.remote_hosts.map(|v| v.into_iter().map(|s| s.trim().to_owned()).collect()));
        set(&mut f.local_host, trim(i.local_host));
        set(&mut f.codecs, i.codecs.map(|v| v.into_iter().map(|s| s.trim().to_ascii_lowercase()).collect()));
        set(&mut f.max_channels, i.max_channels);
        set(&mut f.caller_id_name, trim(i.caller_id_name));
        set(&mut f.caller_id_num, trim(i.caller_id_num));
        set(&mut f.prefix_strip, i.prefix_strip);
        set(&mut f.prefix_add, i.prefix_add.map(|s| s.trim().to_owned()));
        set(&mut f.priority, i.priority);
        set(&mut f.outbound_proxy, trim(i.outbound_proxy));
        set(&mut f.options_interval, i.options_interval);
        set(&mut f.country_code, i.country_code.map(|s| s.trim().to_owned()));
        set(&mut f.national_prefix, i.national_prefix.map(|s| s.trim().to_owned()));
        set(&mut f.international_prefix, i.international_prefix.map(|s| s.trim().to_owned()));
        set(&mut f.tls_verify, i.tls_verify);
        set(&mut f.srtp, i.srtp);
        set(&mut f.record_inbound, i.record_inbound);
        set(&mut f.record_outbound, i.record_outbound);
        let password = owned_update(&i.password);

        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        if let Some(h) = &f.host {
            e.check(is_host(h), "host", "must be a host name or IP address");
        }
        e.range("port", f.port, 1, 65535);
        e.range("register_expiry", f.register_expiry, 60, 86400);
        e.range("max_channels", f.max_channels, 0, 10000);
        e.range("prefix_strip", f.prefix_strip, 0, 20);
        e.range("priority", f.priority, 0, 1000);
        e.check(
            f.prefix_add.len() <= 20
                && (f.prefix_add.is_empty() || is_dial_string(&f.prefix_add) || f.prefix_add.bytes().all(|b| b.is_ascii_digit() || b == b'+')),
            "prefix_add",
            "must be digits (optionally starting with +), at most 20",
        );
        if let Some(n) = &f.caller_id_num {
            e.check(is_dial_string(n), "caller_id_num", "must be a phone number");
        }
        e.opt_len("caller_id_name", &f.caller_id_name, 64);
        e.opt_len("username", &f.username, 128);
        e.opt_len("auth_username", &f.auth_username, 128);
        if let Some(l) = &f.local_host {
            e.check(l.parse::<std::net::IpAddr>().is_ok(), "local_host", "must be an IP address");
        }
        e.check(!f.codecs.is_empty(), "codecs", "must list at least one codec");
        let mut seen = HashSet::new();
        for (n, c) in f.codecs.iter().enumerate() {
            e.check(CODECS.contains(&c.as_str()), format!("codecs[{n}]"), format!("must be one of {}", CODECS.join(", ")));
            e.check(seen.insert(c.clone()), format!("codecs[{n}]"), "is listed twice");
        }
        let mut remote_hosts = Vec::with_capacity(f.remote_hosts.len());
        for (n, h) in f.remote_hosts.iter().enumerate() {
            match RemoteHost::parse(h) {
                Some(h) => remote_hosts.push(h),
                None => e.add(format!("remote_hosts[{n}]"), "must be an IP address or CIDR block"),
            }
        }
        if remote_hosts.len() == f.remote_hosts.len() {
            // stored as parsed: what the SIP directory reads back
            f.remote_hosts = remote_hosts.iter().map(RemoteHost::to_string).collect();
        }
        if let Some(p) = password.set_value() {
            e.check((1..=128).contains(&p.chars().count()), "password", "must be 1 to 128 characters");
        }
        if let Some(p) = &f.outbound_proxy {
            e.check(p.len() <= 256 && (is_host_port(p) || is_sip_uri(p)), "outbound_proxy", "must be host[:port] or a sip: or sips: URI");
        }
        e.check(f.options_interval == 0 || (5..=3600).contains(&f.options_interval), "options_interval", "must be 0 (none) or between 5 and 3600");
        e.check(f.tls_verify || f.transport == Transport::Tls, "tls_verify", "can be turned off only for transport tls");
        let digits = |s: &str, max: usize| s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
        e.check(
            f.country_code.is_empty() || (digits(&f.country_code, 3) && !f.country_code.starts_with('0')),
            "country_code",
            "must be 1 to 3 digits not starting with 0, or empty",
        );
        e.check(digits(&f.national_prefix, 6), "national_prefix", "must be at most 6 digits");
        e.check(digits(&f.international_prefix, 6), "international_prefix", "must be at most 6 digits");
        if !f.national_prefix.is_empty() && !e.has("national_prefix") {
            e.check(!f.country_code.is_empty(), "national_prefix", "needs country_code (a national number becomes +<country code><number>)");
        }
        match f.trunk_type {
            TrunkType::Register => {
                e.check(f.host.is_some() || e.has("host"), "host", "is required for a registration trunk");
                e.check(f.username.is_some(), "username", "is required for a registration trunk");
                let has_pw = match &password {
                    OwnedSecret::Set(_) => true,
                    OwnedSecret::Clear => false,
                    OwnedSecret::Keep => cur.is_some_and(|c| c.password_set),
                };
                e.check(has_pw, "password", "is required for a registration trunk");
            }
            TrunkType::Ip => {
                e.check(!f.remote_hosts.is_empty(), "remote_hosts", "must list the provider's addresses for an IP trunk");
            }
        }
        e.finish()?;
        let secrets = if password.changed() { vec!["password"] } else { vec![] };
        Ok(((f, password), secrets))
    }

    async fn insert(tx: &mut Tx, (f, pw): &Self::Prepared) -> Result<Trunk, StoreError> {
        tx.trunks().insert(f, pw.set_value()).await
    }
    async fn update(tx: &mut Tx, id: i64, (f, pw): &Self::Prepared) -> Result<Trunk, StoreError> {
        tx.trunks().update(id, f, pw.as_update()).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.trunks().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// outbound routes

fn patterns_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(route_patterns::MAX_REGEX)))
        .min_items(Some(1))
        .max_items(Some(MAX_PATTERNS))
        .description(Some(
            "dialled-number patterns, each a prefix of 0-9 + * # (`9`, `+44`), an Asterisk pattern starting with _ \
             (`_NXXNXXXXXX`, `_0[2-9]XXXXXXXX`, `_00.`: X any digit, Z 1-9, N 2-9, [set], . one or more, ! zero or more) \
             or a regular expression starting with ^ (`^\\+44[0-9]+$`); each at most once",
        ))
}

fn trunk_ids_schema() -> ArrayBuilder {
    unique_array(int64(), Some(1), MAX_ROUTE_TRUNKS, "the route's trunks (ids), tried in this order")
}

fn extension_ids_schema() -> ArrayBuilder {
    unique_array(int64(), None, MAX_ROUTE_EXTENSIONS, "the extensions (ids) that may use the route; empty: every extension whose call classes allow it")
}

const MAX_PATTERNS: usize = 20;
const MAX_ROUTE_TRUNKS: usize = 20;
const MAX_ROUTE_EXTENSIONS: usize = 1000;

/// An outbound route to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundRouteInput {
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: Option<String>,
    /// routes are tried by position, lower first (then by id)
    #[schema(minimum = 0, maximum = 10000)]
    pub position: Option<i64>,
    pub enabled: Option<bool>,
    #[schema(schema_with = patterns_schema)]
    pub patterns: Option<Vec<String>>,
    /// the class of the numbers it reaches: an extension needs it in its call_classes
    pub call_class: Option<CallClass>,
    /// digits taken off the front of the dialled number
    #[schema(minimum = 0, maximum = 20)]
    pub strip_digits: Option<i64>,
    /// put in front after stripping
    #[schema(pattern = r"^\s*[0-9+*#]{0,20}\s*$")]
    pub prepend: Option<String>,
    /// whose caller id is presented; `route` needs caller_id_num
    pub caller_id_mode: Option<RouteCallerId>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub caller_id_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*(\+?[0-9*#]{1,32})?\s*$")]
    pub caller_id_num: Option<Option<String>>,
    #[schema(schema_with = extension_ids_schema)]
    pub extension_ids: Option<Vec<i64>>,
    #[schema(schema_with = trunk_ids_schema)]
    pub trunk_ids: Option<Vec<i64>>,
}

pub(crate) struct OutboundRoutes;

impl Resource for OutboundRoutes {
    const PATH: &'static str = "/outbound-routes";
    const KIND: ResourceKind = ResourceKind::OutboundRoute;
    const LABEL: &'static str = "outbound route";
    const CREATE_REQUIRED: &'static [&'static str] = &["name", "patterns", "trunk_ids"];
    type Row = OutboundRoute;
    type Item = crate::views::OutboundRouteView;
    type Input = OutboundRouteInput;
    type Prepared = OutboundRouteFields;

    fn id(row: &OutboundRoute) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<OutboundRoute>, StoreError> {
        store.outbound_routes().list(page).await
    }
    async fn view(state: &AppState, rows: Vec<OutboundRoute>) -> ApiResult<Vec<Self::Item>> {
        crate::views::outbound_routes(state, rows).await
    }
    async fn get(store: &Store, id: i64) -> Result<Option<OutboundRoute>, StoreError> {
        store.outbound_routes().get(id).await
    }

    async fn prepare(state: &AppState, i: OutboundRouteInput, cur: Option<&OutboundRoute>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        required(&mut e, creating, &i.patterns, "patterns");
        required(&mut e, creating, &i.trunk_ids, "trunk_ids");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or_default();
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.position, i.position);
        set(&mut f.enabled, i.enabled);
        set(&mut f.patterns, i.patterns.map(|v| v.iter().map(|p| route_patterns::normalise(p)).collect()));
        set(&mut f.call_class, i.call_class);
        set(&mut f.strip_digits, i.strip_digits);
        set(&mut f.prepend, i.prepend.map(|s| s.trim().to_owned()));
        set(&mut f.caller_id_mode, i.caller_id_mode);
        set(&mut f.caller_id_name, trim_opt(i.caller_id_name));
        set(&mut f.caller_id_num, trim_opt(i.caller_id_num));
        set(&mut f.extension_ids, i.extension_ids);
        set(&mut f.trunk_ids, i.trunk_ids);

        if !e.has("name") {
            e.non_empty("name", &f.name, 64);
            e.check(!f.name.chars().any(char::is_control), "name", "must not contain control characters");
        }
        e.range("position", f.position, 0, 10_000);
        e.range("strip_digits", f.strip_digits, 0, 20);
        e.check(
            f.prepend.len() <= 20 && f.prepend.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#')),
            "prepend",
            "must be at most 20 digits, +, * or #",
        );
        caller_id_name(&mut e, "caller_id_name", &f.caller_id_name);
        caller_id_num(&mut e, "caller_id_num", &f.caller_id_num);
        if f.caller_id_mode == RouteCallerId::Route && f.caller_id_num.is_none() && !e.has("caller_id_num") {
            e.add("caller_id_num", "is required when caller_id_mode is route");
        }

        if !e.has("patterns") {
            e.check(!f.patterns.is_empty(), "patterns", "must list at least one pattern");
            e.check(f.patterns.len() <= MAX_PATTERNS, "patterns", format!("at most {MAX_PATTERNS} patterns"));
        }
        // the items of an over-long list are not looked at: the list is refused as a whole
        let mut seen = HashSet::new();
        for (n, p) in f.patterns.iter().enumerate().filter(|_| f.patterns.len() <= MAX_PATTERNS) {
            if let Err(why) = route_patterns::parse(p) {
                e.add(format!("patterns[{n}]"), why);
            } else {
                e.check(seen.insert(p.as_str()), format!("patterns[{n}]"), "is listed twice");
            }
        }

        if !e.has("trunk_ids") {
            e.check(!f.trunk_ids.is_empty(), "trunk_ids", "must list at least one trunk");
            e.check(f.trunk_ids.len() <= MAX_ROUTE_TRUNKS, "trunk_ids", format!("at most {MAX_ROUTE_TRUNKS} trunks"));
        }
        let mut seen = HashSet::new();
        for (n, t) in f.trunk_ids.iter().enumerate().filter(|_| f.trunk_ids.len() <= MAX_ROUTE_TRUNKS) {
            if seen.insert(*t) {
                check_exists(state, &mut e, &format!("trunk_ids[{n}]"), ResourceKind::Trunk, *t).await?;
            } else {
                e.add(format!("trunk_ids[{n}]"), "is listed twice");
            }
        }
        e.check(f.extension_ids.len() <= MAX_ROUTE_EXTENSIONS, "extension_ids", format!("at most {MAX_ROUTE_EXTENSIONS} extensions"));
        let mut seen = HashSet::new();
        for (n, x) in f.extension_ids.iter().enumerate().filter(|_| f.extension_ids.len() <= MAX_ROUTE_EXTENSIONS) {
            if seen.insert(*x) {
                check_exists(state, &mut e, &format!("extension_ids[{n}]"), ResourceKind::Extension, *x).await?;
            } else {
                e.add(format!("extension_ids[{n}]"), "is listed twice");
            }
        }

        // two enabled routes at the same position with the same pattern: which one takes the
        // call would depend on their ids, so the second is refused
        if f.enabled {
            let me = cur.map(|c| c.id);
            let others = state.store().outbound_routes().all().await?;
            for (n, p) in f.patterns.iter().enumerate() {
                let clash = others.iter().find(|o| Some(o.id) != me && o.enabled && o.position == f.position && o.patterns.contains(p));
                if let Some(o) = clash
                    && !e.has(&format!("patterns[{n}]"))
                {
                    e.add(
                        format!("patterns[{n}]"),
                        format!(
                            "route \"{}\" (id {}) has the same pattern at the same position {}; give one of them another position",
                            o.name, o.id, o.position
                        ),
                    );
                }
            }
        }
        e.finish()?;
        Ok((f, vec![]))
    }

    async fn insert(tx: &mut Tx, f: &Self::Prepared) -> Result<OutboundRoute, StoreError> {
        tx.outbound_routes().insert(f).await
    }
    async fn update(tx: &mut Tx, id: i64, f: &Self::Prepared) -> Result<OutboundRoute, StoreError> {
        tx.outbound_routes().update(id, f).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.outbound_routes().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// inbound numbers

/// A DID to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundNumberInput {
    /// E.164, e.g. +61299990000
    #[schema(pattern = r"^\s*\+[1-9][0-9]{1,14}\s*$")]
    pub number: Option<String>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<i64>)]
    pub trunk_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<i64>)]
    pub flow_id: Option<Option<i64>>,
    /// a node id of the flow's graph
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub flow_entry_node: Option<Option<String>>,
    pub enabled: Option<bool>,
}

pub(crate) struct Numbers;

impl Resource for Numbers {
    const PATH: &'static str = "/numbers";
    const KIND: ResourceKind = ResourceKind::InboundNumber;
    const LABEL: &'static str = "inbound number";
    const CREATE_REQUIRED: &'static [&'static str] = &["number"];
    type Row = InboundNumber;
    type Item = InboundNumber;
    type Input = InboundNumberInput;
    type Prepared = InboundNumberFields;

    fn id(row: &InboundNumber) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<InboundNumber>, StoreError> {
        store.inbound_numbers().list(page).await
    }
    rows_as_is!();
    async fn get(store: &Store, id: i64) -> Result<Option<InboundNumber>, StoreError> {
        store.inbound_numbers().get(id).await
    }

    async fn prepare(state: &AppState, i: InboundNumberInput, cur: Option<&InboundNumber>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.number, "number");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or(InboundNumberFields { enabled: true, ..Default::default() });
        set(&mut f.number, i.number.map(|s| s.trim().to_owned()));
        set(&mut f.name, i.name.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())));
        set(&mut f.trunk_id, i.trunk_id);
        set(&mut f.flow_id, i.flow_id);
        set(&mut f.flow_entry_node, i.flow_entry_node.map(|o| o.filter(|s| !s.is_empty())));
        set(&mut f.enabled, i.enabled);
        if !e.has("number") {
            e.check(is_e164(&f.number), "number", "must be an E.164 number such as +61299990000");
        }
        e.opt_len("name", &f.name, 100);
        if let Some(t) = f.trunk_id {
            check_exists(state, &mut e, "trunk_id", ResourceKind::Trunk, t).await?;
        }
        match (f.flow_id, &f.flow_entry_node) {
            (Some(fid), entry) => match state.store().call_flows().get(fid).await? {
                None => e.add("flow_id", format!("no call flow with id {fid}")),
                Some(flow) => {
                    if let Some(node) = entry {
                        let found = Graph::deserialize(&flow.flow_data).is_ok_and(|g| g.node(node).is_some());
                        e.check(found, "flow_entry_node", format!("flow \"{}\" has no node {node}", flow.name));
                    }
                }
            },
            (None, Some(_)) => e.add("flow_entry_node", "needs flow_id"),
            (None, None) => {}
        }
        if !e.has("number")
            && let Some(other) = state.store().inbound_numbers().get_by_number(&f.number).await?
            && Some(other.id) != cur.map(|c| c.id)
        {
            e.add("number", "is already configured");
        }
        e.finish()?;
        Ok((f, vec![]))
    }

    async fn insert(tx: &mut Tx, f: &Self::Prepared) -> Result<InboundNumber, StoreError> {
        tx.inbound_numbers().insert(f).await
    }
    async fn update(tx: &mut Tx, id: i64, f: &Self::Prepared) -> Result<InboundNumber, StoreError> {
        tx.inbound_numbers().update(id, f).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.inbound_numbers().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// voicemail boxes

/// A voicemail box to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoicemailBoxInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*([0-9]{2,6})?\s*$")]
    pub mailbox_number: Option<Option<String>>,
    /// write-only, 4-12 digits; null removes it
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, min_length = 4, max_length = 12, pattern = r"^[0-9]{4,12}$")]
    pub pin: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*([A-Za-z0-9_-]{1,64})?\s*$")]
    pub greeting_file: Option<Option<String>>,
    pub greeting_type: Option<GreetingType>,
    pub email_notify: Option<bool>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub email_address: Option<Option<String>>,
    pub email_attach_audio: Option<bool>,
    #[schema(minimum = 10, maximum = 3600)]
    pub max_message_duration: Option<i64>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_messages: Option<i64>,
    #[schema(minimum = 0, maximum = 3650)]
    pub retention_days: Option<i64>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<i64>)]
    pub notify_extension_id: Option<Option<i64>>,
}

pub(crate) struct VoicemailBoxes;

impl Resource for VoicemailBoxes {
    const PATH: &'static str = "/voicemail-boxes";
    const KIND: ResourceKind = ResourceKind::VoicemailBox;
    const LABEL: &'static str = "voicemail box";
    const CREATE_REQUIRED: &'static [&'static str] = &["name"];
    type Row = VoicemailBox;
    type Item = crate::views::VoicemailBoxView;
    type Input = VoicemailBoxInput;
    type Prepared = (VoicemailBoxFields, OwnedSecret);

    fn id(row: &VoicemailBox) -> i64 {
        row.row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<VoicemailBox>, StoreError> {
        store.voicemail_boxes().list(page).await
    }
    async fn view(state: &AppState, rows: Vec<VoicemailBox>) -> ApiResult<Vec<Self::Item>> {
        crate::views::voicemail_boxes(state, rows).await
    }
    async fn get(store: &Store, id: i64) -> Result<Option<VoicemailBox>, StoreError> {
        store.voicemail_boxes().get(id).await
    }

    async fn prepare(state: &AppState, i: VoicemailBoxInput, cur: Option<&VoicemailBox>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        let mut f = cur.map(|c| c.row.fields.clone()).unwrap_or_default();
        let trim = |o: Option<Option<String>>| o.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.mailbox_number, trim(i.mailbox_number));
        set(&mut f.greeting_file, trim(i.greeting_file));
        set(&mut f.greeting_type, i.greeting_type);
        set(&mut f.email_notify, i.email_notify);
        set(&mut f.email_address, trim(i.email_address));
        set(&mut f.email_attach_audio, i.email_attach_audio);
        set(&mut f.max_message_duration, i.max_message_duration);
        set(&mut f.max_messages, i.max_messages);
        set(&mut f.retention_days, i.retention_days);
        set(&mut f.notify_extension_id, i.notify_extension_id);
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        secret_pin(&mut e, &i.pin);
        if let Some(g) = &f.greeting_file {
            e.check(is_prompt_name(g), "greeting_file", "must be a prompt name (letters, digits, _ and -)");
        }
        e.check(!(f.greeting_type == GreetingType::Custom && f.greeting_file.is_none()), "greeting_file", "is required for a custom greeting");
        if let Some(a) = &f.email_address {
            e.check(is_email(a), "email_address", "must be an e-mail address");
        }
        e.check(!(f.email_notify && f.email_address.is_none()), "email_address", "is required when email_notify is on");
        e.range("max_message_duration", f.max_message_duration, 10, 3600);
        e.range("max_messages", f.max_messages, 1, 1000);
        e.range("retention_days", f.retention_days, 0, 3650);
        if let Some(x) = f.notify_extension_id {
            check_exists(state, &mut e, "notify_extension_id", ResourceKind::Extension, x).await?;
        }
        if let Some(n) = f.mailbox_number.clone() {
            if is_internal_number(&n) {
                check_number_free(state, &mut e, "mailbox_number", &n, cur.map(|c| (ResourceKind::VoicemailBox, c.row.id))).await?;
            } else {
                e.add("mailbox_number", "must be 2 to 6 digits");
            }
        }
        e.finish()?;
        let pin = owned_update(&i.pin);
        let secrets = if pin.changed() { vec!["pin"] } else { vec![] };
        Ok(((f, pin), secrets))
    }

    async fn insert(tx: &mut Tx, (f, pin): &Self::Prepared) -> Result<VoicemailBox, StoreError> {
        tx.voicemail_boxes().insert(f, pin.set_value()).await
    }
    async fn update(tx: &mut Tx, id: i64, (f, pin): &Self::Prepared) -> Result<VoicemailBox, StoreError> {
        tx.voicemail_boxes().update(id, f, pin.as_update()).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.voicemail_boxes().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// ring groups

/// A ring group to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RingGroupInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    pub strategy: Option<RingStrategy>,
    #[schema(minimum = 5, maximum = 600)]
    pub ring_timeout: Option<i64>,
    /// extension ids, in ring order
    #[schema(min_items = 1, max_items = 100)]
    pub members: Option<Vec<i64>>,
    pub caller_id_mode: Option<CallerIdMode>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub caller_id_value: Option<Option<String>>,
}

pub(crate) struct RingGroups;

impl Resource for RingGroups {
    const PATH: &'static str = "/ring-groups";
    const KIND: ResourceKind = ResourceKind::RingGroup;
    const LABEL: &'static str = "ring group";
    const CREATE_REQUIRED: &'static [&'static str] = &["name", "members"];
    type Row = RingGroup;
    type Item = RingGroup;
    type Input = RingGroupInput;
    type Prepared = RingGroupFields;

    fn id(row: &RingGroup) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<RingGroup>, StoreError> {
        store.ring_groups().list(page).await
    }
    rows_as_is!();
    async fn get(store: &Store, id: i64) -> Result<Option<RingGroup>, StoreError> {
        store.ring_groups().get(id).await
    }

    async fn prepare(state: &AppState, i: RingGroupInput, cur: Option<&RingGroup>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        required(&mut e, creating, &i.members, "members");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or_default();
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.strategy, i.strategy);
        set(&mut f.ring_timeout, i.ring_timeout);
        set(&mut f.members, i.members);
        set(&mut f.caller_id_mode, i.caller_id_mode);
        set(&mut f.caller_id_value, i.caller_id_value.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())));
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        e.range("ring_timeout", f.ring_timeout, 5, 600);
        if !e.has("members") {
            e.check(!f.members.is_empty() && f.members.len() <= 100, "members", "must list 1 to 100 extensions");
        }
        let found: HashSet<i64> = state.store().extensions().get_many(&f.members).await?.into_iter().map(|x| x.id).collect();
        let mut seen = HashSet::new();
        for (n, m) in f.members.iter().enumerate() {
            e.check(found.contains(m), format!("members[{n}]"), format!("no extension with id {m}"));
            e.check(seen.insert(*m), format!("members[{n}]"), "is listed twice");
        }
        match f.caller_id_mode {
            CallerIdMode::Pass => {}
            CallerIdMode::Fixed => e.check(f.caller_id_value.as_deref().is_some_and(is_dial_string), "caller_id_value", "must be the phone number to present"),
            CallerIdMode::Prepend => e.check(
                f.caller_id_value.as_deref().is_some_and(|v| (1..=20).contains(&v.chars().count())),
                "caller_id_value",
                "must be the text to prepend (1-20 characters)",
            ),
        }
        e.finish()?;
        Ok((f, vec![]))
    }

    async fn insert(tx: &mut Tx, f: &Self::Prepared) -> Result<RingGroup, StoreError> {
        tx.ring_groups().insert(f).await
    }
    async fn update(tx: &mut Tx, id: i64, f: &Self::Prepared) -> Result<RingGroup, StoreError> {
        tx.ring_groups().update(id, f).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.ring_groups().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// IVR menus

/// An IVR menu to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IvrMenuInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// a prompt name
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*([A-Za-z0-9_-]{1,64})?\s*$")]
    pub greeting_file: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub greeting_tts: Option<Option<String>>,
    #[schema(minimum = 1, maximum = 60)]
    pub timeout: Option<i64>,
    #[schema(minimum = 0, maximum = 10)]
    pub max_retries: Option<i64>,
    #[schema(minimum = 1, maximum = 30)]
    pub digit_timeout: Option<i64>,
    /// "0"-"9", "*", "#", "i" (invalid), "t" (timeout) → output label or node id
    pub options: Option<BTreeMap<String, String>>,
}

pub(crate) struct IvrMenus;

impl Resource for IvrMenus {
    const PATH: &'static str = "/ivr-menus";
    const KIND: ResourceKind = ResourceKind::IvrMenu;
    const LABEL: &'static str = "IVR menu";
    const CREATE_REQUIRED: &'static [&'static str] = &["name"];
    type Row = IvrMenu;
    type Item = IvrMenu;
    type Input = IvrMenuInput;
    type Prepared = IvrMenuFields;

    fn id(row: &IvrMenu) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<IvrMenu>, StoreError> {
        store.ivr_menus().list(page).await
    }
    rows_as_is!();
    async fn get(store: &Store, id: i64) -> Result<Option<IvrMenu>, StoreError> {
        store.ivr_menus().get(id).await
    }

    async fn prepare(_state: &AppState, i: IvrMenuInput, cur: Option<&IvrMenu>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or_default();
        let trim = |o: Option<Option<String>>| o.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.greeting_file, trim(i.greeting_file));
        set(&mut f.greeting_tts, trim(i.greeting_tts));
        set(&mut f.timeout, i.timeout);
        set(&mut f.max_retries, i.max_retries);
        set(&mut f.digit_timeout, i.digit_timeout);
        set(&mut f.options, i.options);
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        if let Some(g) = &f.greeting_file {
            e.check(is_prompt_name(g), "greeting_file", "must be a prompt name (letters, digits, _ and -)");
        }
        e.opt_len("greeting_tts", &f.greeting_tts, 1000);
        e.range("timeout", f.timeout, 1, 60);
        e.range("max_retries", f.max_retries, 0, 10);
        e.range("digit_timeout", f.digit_timeout, 1, 30);
        for (k, v) in &f.options {
            let ok_key = k.len() == 1 && matches!(k.as_bytes()[0], b'0'..=b'9' | b'*' | b'#' | b'i' | b't');
            e.check(ok_key, format!("options.{k}"), "keys must be a digit, *, #, i (invalid) or t (timeout)");
            e.check((1..=100).contains(&v.trim().len()), format!("options.{k}"), "must name an output (1-100 characters)");
        }
        e.finish()?;
        Ok((f, vec![]))
    }

    async fn insert(tx: &mut Tx, f: &Self::Prepared) -> Result<IvrMenu, StoreError> {
        tx.ivr_menus().insert(f).await
    }
    async fn update(tx: &mut Tx, id: i64, f: &Self::Prepared) -> Result<IvrMenu, StoreError> {
        tx.ivr_menus().update(id, f).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.ivr_menus().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// time switches

/// A time switch to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSwitchInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// IANA time zone, e.g. Australia/Sydney
    pub timezone: Option<String>,
    pub rules: Option<Vec<TimeRule>>,
    pub overrides: Option<Vec<DateOverride>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub default_dest: Option<Option<String>>,
}

const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(crate) struct TimeSwitches;

impl Resource for TimeSwitches {
    const PATH: &'static str = "/time-switches";
    const KIND: ResourceKind = ResourceKind::TimeSwitch;
    const LABEL: &'static str = "time switch";
    const CREATE_REQUIRED: &'static [&'static str] = &["name"];
    type Row = TimeSwitch;
    type Item = TimeSwitch;
    type Input = TimeSwitchInput;
    type Prepared = TimeSwitchFields;

    fn id(row: &TimeSwitch) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<TimeSwitch>, StoreError> {
        store.time_switches().list(page).await
    }
    rows_as_is!();
    async fn get(store: &Store, id: i64) -> Result<Option<TimeSwitch>, StoreError> {
        store.time_switches().get(id).await
    }

    async fn prepare(_state: &AppState, i: TimeSwitchInput, cur: Option<&TimeSwitch>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or_default();
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.timezone, i.timezone.map(|s| s.trim().to_owned()));
        set(&mut f.rules, i.rules);
        set(&mut f.overrides, i.overrides);
        set(&mut f.default_dest, i.default_dest.map(|o| o.filter(|s| !s.trim().is_empty())));
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        e.check(is_iana_timezone(&f.timezone), "timezone", "must be an IANA time zone such as Australia/Sydney");
        e.check(f.rules.len() <= 50, "rules", "at most 50 rules");
        for (n, r) in f.rules.iter().enumerate() {
            let p = format!("rules[{n}]");
            e.check(!r.label.trim().is_empty() && r.label.chars().count() <= 100, format!("{p}.label"), "must be 1-100 characters");
            e.check(!r.days.is_empty(), format!("{p}.days"), "must list at least one day");
            let mut seen = HashSet::new();
            for (d, day) in r.days.iter().enumerate() {
                e.check(DAYS.contains(&day.as_str()), format!("{p}.days[{d}]"), "must be one of mon, tue, wed, thu, fri, sat, sun");
                e.check(seen.insert(day), format!("{p}.days[{d}]"), "is listed twice");
            }
            e.check(is_hhmm(&r.start), format!("{p}.start"), "must be HH:MM");
            e.check(is_hhmm(&r.end), format!("{p}.end"), "must be HH:MM");
            e.check(r.start != r.end, format!("{p}.end"), "must differ from start");
            e.opt_len(&format!("{p}.dest_node"), &r.dest_node, 100);
        }
        e.check(f.overrides.len() <= 366, "overrides", "at most 366 overrides");
        for (n, o) in f.overrides.iter().enumerate() {
            let p = format!("overrides[{n}]");
            e.check(!o.label.trim().is_empty() && o.label.chars().count() <= 100, format!("{p}.label"), "must be 1-100 characters");
            e.check(is_date(&o.date), format!("{p}.date"), "must be a date YYYY-MM-DD");
            if let Some(end) = &o.end_date {
                e.check(is_date(end) && end.as_str() >= o.date.as_str(), format!("{p}.end_date"), "must be a date YYYY-MM-DD not before date");
            }
            match (&o.start, &o.end) {
                (None, None) => {}
                (Some(s), Some(t)) => {
                    e.check(is_hhmm(s), format!("{p}.start"), "must be HH:MM");
                    e.check(is_hhmm(t), format!("{p}.end"), "must be HH:MM");
                }
                _ => e.add(format!("{p}.end"), "start and end go together"),
            }
            e.opt_len(&format!("{p}.dest_node"), &o.dest_node, 100);
        }
        e.opt_len("default_dest", &f.default_dest, 100);
        e.finish()?;
        Ok((f, vec![]))
    }

    async fn insert(tx: &mut Tx, f: &Self::Prepared) -> Result<TimeSwitch, StoreError> {
        tx.time_switches().insert(f).await
    }
    async fn update(tx: &mut Tx, id: i64, f: &Self::Prepared) -> Result<TimeSwitch, StoreError> {
        tx.time_switches().update(id, f).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.time_switches().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// conference bridges

/// A conference bridge to create or change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConferenceInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// dial-in number, 2-6 digits, unique in the dial plan
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, pattern = r"^\s*([0-9]{2,6})?\s*$")]
    pub extension: Option<Option<String>>,
    /// write-only, 4-12 digits; null removes it
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, min_length = 4, max_length = 12, pattern = r"^[0-9]{4,12}$")]
    pub pin: Option<Option<String>>,
    #[schema(minimum = 2, maximum = 100)]
    pub max_members: Option<i64>,
    pub record: Option<bool>,
    pub mute_on_join: Option<bool>,
    pub announce_joins: Option<bool>,
}

pub(crate) struct Conferences;

impl Resource for Conferences {
    const PATH: &'static str = "/conferences";
    const KIND: ResourceKind = ResourceKind::ConferenceBridge;
    const LABEL: &'static str = "conference bridge";
    const CREATE_REQUIRED: &'static [&'static str] = &["name"];
    type Row = ConferenceBridge;
    type Item = crate::views::ConferenceView;
    type Input = ConferenceInput;
    type Prepared = (ConferenceBridgeFields, OwnedSecret);

    fn id(row: &ConferenceBridge) -> i64 {
        row.row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<ConferenceBridge>, StoreError> {
        store.conference_bridges().list(page).await
    }
    async fn view(state: &AppState, rows: Vec<ConferenceBridge>) -> ApiResult<Vec<Self::Item>> {
        crate::views::conferences(state, rows).await
    }
    async fn get(store: &Store, id: i64) -> Result<Option<ConferenceBridge>, StoreError> {
        store.conference_bridges().get(id).await
    }

    async fn prepare(state: &AppState, i: ConferenceInput, cur: Option<&ConferenceBridge>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        let mut f = cur.map(|c| c.row.fields.clone()).unwrap_or_default();
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.extension, i.extension.map(|o| o.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())));
        set(&mut f.max_members, i.max_members);
        set(&mut f.record, i.record);
        set(&mut f.mute_on_join, i.mute_on_join);
        set(&mut f.announce_joins, i.announce_joins);
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        secret_pin(&mut e, &i.pin);
        e.range("max_members", f.max_members, 2, 100);
        if let Some(n) = f.extension.clone() {
            if is_internal_number(&n) {
                check_number_free(state, &mut e, "extension", &n, cur.map(|c| (ResourceKind::ConferenceBridge, c.row.id))).await?;
            } else {
                e.add("extension", "must be 2 to 6 digits");
            }
        }
        e.finish()?;
        let pin = owned_update(&i.pin);
        let secrets = if pin.changed() { vec!["pin"] } else { vec![] };
        Ok(((f, pin), secrets))
    }

    async fn insert(tx: &mut Tx, (f, pin): &Self::Prepared) -> Result<ConferenceBridge, StoreError> {
        tx.conference_bridges().insert(f, pin.set_value()).await
    }
    async fn update(tx: &mut Tx, id: i64, (f, pin): &Self::Prepared) -> Result<ConferenceBridge, StoreError> {
        tx.conference_bridges().update(id, f, pin.as_update()).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.conference_bridges().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// call flows

/// A call flow (its draft graph) to create or change. Publishing arrives with the flow engine.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallFlowInput {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// React Flow JSON: {"nodes": [{id, type, position, data}], "edges": [{id, source, target, …}]}
    #[schema(value_type = Option<Object>)]
    pub flow_data: Option<serde_json::Value>,
}

const MAX_NODES: usize = 500;

/// What a draft must be beyond its shape: known top-level keys, at most [`MAX_NODES`]
/// nodes, node ids unique and at most 100 characters, node types named, edges between nodes
/// of the flow. That is the structure the editor needs to open it again; an unfinished node
/// (no entity chosen yet, a linked entity that has gone, a config the node rejects) saves,
/// because drafts always save: what a node's type, config, entity and outputs must be is the
/// validator's, at Validate and Publish.
fn check_graph(e: &mut Errors, g: &Graph) {
    for k in g.extra.keys().filter(|k| *k != "viewport") {
        e.add(format!("flow_data.{k}"), "unknown field (expected nodes, edges, viewport, settings)");
    }
    e.check(g.nodes.len() <= MAX_NODES, "flow_data.nodes", format!("at most {MAX_NODES} nodes"));
    let mut ids = HashSet::new();
    for (n, node) in g.nodes.iter().enumerate() {
        let p = format!("flow_data.nodes[{n}]");
        if node.id.is_empty() || node.id.len() > 100 {
            e.add(format!("{p}.id"), "must be a non-empty string of at most 100 characters");
        } else {
            e.check(ids.insert(node.id.as_str()), format!("{p}.id"), "is used by another node");
        }
        e.check(!node.node_type.is_empty() && node.node_type.len() <= 100, format!("{p}.type"), "must name the node's type (at most 100 characters)");
        e.check(node.data.entity_type.as_ref().is_none_or(|k| k.len() <= 100), format!("{p}.data.entity_type"), "must be at most 100 characters");
    }
    for (n, edge) in g.edges.iter().enumerate() {
        let p = format!("flow_data.edges[{n}]");
        e.check(!edge.id.is_empty(), format!("{p}.id"), "must be a non-empty string");
        for (end, id) in [("source", &edge.source), ("target", &edge.target)] {
            e.check(ids.contains(id.as_str()), format!("{p}.{end}"), "must be the id of a node of this flow");
        }
    }
}

pub(crate) struct Flows;

impl Resource for Flows {
    const PATH: &'static str = "/flows";
    const KIND: ResourceKind = ResourceKind::CallFlow;
    const LABEL: &'static str = "call flow";
    const CREATE_REQUIRED: &'static [&'static str] = &["name"];
    type Row = CallFlow;
    type Item = crate::flow_versions::FlowView;
    type Input = CallFlowInput;
    type Prepared = CallFlowFields;

    fn id(row: &CallFlow) -> i64 {
        row.id
    }
    async fn list(store: &Store, page: Page) -> Result<Paged<CallFlow>, StoreError> {
        store.call_flows().list(page).await
    }
    async fn view(state: &AppState, rows: Vec<CallFlow>) -> ApiResult<Vec<Self::Item>> {
        crate::flow_versions::flows(state, rows).await
    }
    async fn get(store: &Store, id: i64) -> Result<Option<CallFlow>, StoreError> {
        store.call_flows().get(id).await
    }

    async fn prepare(_state: &AppState, i: CallFlowInput, cur: Option<&CallFlow>) -> ApiResult<(Self::Prepared, SecretNames)> {
        let creating = cur.is_none();
        let mut e = Errors::new();
        required(&mut e, creating, &i.name, "name");
        let mut f = cur.map(|c| c.fields.clone()).unwrap_or_default();
        set(&mut f.name, i.name.map(|s| s.trim().to_owned()));
        set(&mut f.flow_data, i.flow_data);
        if !e.has("name") {
            e.non_empty("name", &f.name, 100);
        }
        if let Some(graph) = parse_graph(&mut e, &f.flow_data) {
            check_graph(&mut e, &graph);
        }
        e.finish()?;
        Ok((f, vec![]))
    }

    async fn insert(tx: &mut Tx, f: &Self::Prepared) -> Result<CallFlow, StoreError> {
        tx.call_flows().insert(f).await
    }
    async fn update(tx: &mut Tx, id: i64, f: &Self::Prepared) -> Result<CallFlow, StoreError> {
        tx.call_flows().update(id, f).await
    }
    async fn delete(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        tx.call_flows().delete(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// extra read routes

/// A live contact of an extension, with how its calls' media is encrypted.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ExtensionRegistration {
    #[serde(flatten)]
    pub registration: Registration,
    /// `dtls-srtp` for a WebRTC phone (registered over WS/WSS: its media is always DTLS-SRTP);
    /// otherwise the extension's SDES policy: `srtp` (required), `srtp-optional` (encrypted
    /// when the phone offers or takes keys), `none`
    pub media_encryption: &'static str,
}

/// How a contact's media is encrypted, from its transport and its extension's SRTP policy.
pub(crate) fn media_encryption(transport: Option<&str>, policy: SrtpPolicy) -> &'static str {
    match (transport.map(str::to_ascii_lowercase).as_deref(), policy) {
        (Some("ws" | "wss"), _) => "dtls-srtp",
        (_, SrtpPolicy::Required) => "srtp",
        (_, SrtpPolicy::Optional) => "srtp-optional",
        (_, SrtpPolicy::Off) => "none",
    }
}

#[utoipa::path(get, path = "/api/v1/extensions/{id}/registrations", tag = "extensions", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Vec<ExtensionRegistration>>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn extension_registrations(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Vec<ExtensionRegistration>>> {
    let ext = state.store().extensions().get(id).await?.ok_or(ApiError::NotFound)?;
    let regs = state.store().registrations().list_unexpired(id, Timestamp::now()).await?;
    Ok(Data::new(
        regs.into_iter()
            .map(|r| {
                let media_encryption = media_encryption(r.transport.as_deref(), ext.srtp);
                ExtensionRegistration { registration: r, media_encryption }
            })
            .collect(),
    ))
}

/// A SIP event subscription one of an extension's phones holds (the message-waiting lamp).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// The event package: `message-summary`.
    pub event: &'static str,
    /// The subscriber's address (`ip:port`).
    pub contact: String,
    /// udp | tcp | tls | ws | wss
    pub transport: String,
    /// When it lapses unless the phone refreshes it.
    pub expires_at: Timestamp,
}

#[utoipa::path(get, path = "/api/v1/extensions/{id}/subscriptions", tag = "extensions", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Vec<SubscriptionView>>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn extension_subscriptions(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Vec<SubscriptionView>>> {
    state.store().extensions().get(id).await?.ok_or(ApiError::NotFound)?;
    let subs = state.pbx().map(|p| p.subscriptions(id)).unwrap_or_default();
    let mut v: Vec<SubscriptionView> = subs
        .into_iter()
        .map(|s| SubscriptionView {
            event: s.package.as_str(),
            contact: s.peer.to_string(),
            transport: s.transport.as_str().to_ascii_lowercase(),
            expires_at: Timestamp::from_unix_millis(s.expires_unix.saturating_mul(1000)).unwrap_or_else(Timestamp::now),
        })
        .collect();
    v.sort_by(|a, b| a.contact.cmp(&b.contact));
    Ok(Data::new(v))
}

#[utoipa::path(get, path = "/api/v1/flows/{id}/versions", tag = "flows", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = inline(List<FlowVersionSummary>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn flow_versions(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<List<FlowVersionSummary>> {
    let page = q.page()?;
    state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let p = state.store().flow_versions().list(id, page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(get, path = "/api/v1/flows/{id}/versions/{version}", tag = "flows", params(("id" = i64, Path), ("version" = i64, Path)),
    responses((status = 200, body = inline(Data<FlowVersion>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn flow_version(State(state): State<AppState>, PathParams((id, version)): PathParams<(i64, i64)>) -> ApiResult<Data<FlowVersion>> {
    state.store().flow_versions().get(id, version).await?.map(Data::new).ok_or(ApiError::NotFound)
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/extensions/{id}/registrations", get(extension_registrations))
        .route("/extensions/{id}/subscriptions", get(extension_subscriptions))
        .route("/flows/{id}/versions", get(flow_versions))
        .route("/flows/{id}/versions/{version}", get(flow_version))
}

#[cfg(test)]
mod registration_tests {
    use super::*;

    #[test]
    fn webrtc_contacts_are_dtls_srtp_whatever_the_policy_others_follow_it() {
        assert_eq!(media_encryption(Some("wss"), SrtpPolicy::Off), "dtls-srtp");
        assert_eq!(media_encryption(Some("WS"), SrtpPolicy::Required), "dtls-srtp");
        assert_eq!(media_encryption(Some("tls"), SrtpPolicy::Required), "srtp");
        assert_eq!(media_encryption(Some("udp"), SrtpPolicy::Optional), "srtp-optional");
        assert_eq!(media_encryption(None, SrtpPolicy::Off), "none");
    }
}
