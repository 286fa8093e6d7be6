//! Settings: every stored setting's effective value and where it came from. The layering is
//! flag > environment > stored (`system_config`) > default; the binary supplies the flag, env
//! and default layers ([`SettingsLayers`]), the store the stored one.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Deserializer, Serialize};
use store::{Actor, Tx};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Data, Json};
use crate::validate::{is_host, is_hostname, Errors};
use crate::AppState;

/// The stored settings' keys (also their names as flags with `_` → `-`, and as environment
/// variables, upper-cased with the `FLOWPBX_` prefix).
pub mod keys {
    pub const HTTP_PORT: &str = "http_port";
    pub const SIP_UDP_PORT: &str = "sip_udp_port";
    pub const SIP_TCP_PORT: &str = "sip_tcp_port";
    pub const SIP_TLS_PORT: &str = "sip_tls_port";
    pub const EXTERNAL_IP: &str = "external_ip";
    pub const HOSTNAME: &str = "hostname";
    pub const SIP_REALM: &str = "sip_realm";
    pub const RTP_PORT_MIN: &str = "rtp_port_min";
    pub const RTP_PORT_MAX: &str = "rtp_port_max";
    pub const MEDIA_TIMEOUT_SECS: &str = "media_timeout_secs";
    pub const SIP_LOG: &str = "sip_log";
    pub const RECORDING_MIN_FREE_MB: &str = "recording_min_free_mb";
}

/// The realm used when neither sip_realm nor hostname is set.
pub const DEFAULT_REALM: &str = "flowpbx";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Port,
    Ip,
    Host,
    Text,
    Number { min: u64, max: u64 },
    Choice(&'static [&'static str]),
}

/// (key, kind, takes effect only after a restart)
const CATALOGUE: &[(&str, Kind, bool)] = &[
    (keys::HTTP_PORT, Kind::Port, true),
    (keys::SIP_UDP_PORT, Kind::Port, true),
    (keys::SIP_TCP_PORT, Kind::Port, true),
    (keys::SIP_TLS_PORT, Kind::Port, true),
    (keys::EXTERNAL_IP, Kind::Ip, true),
    (keys::HOSTNAME, Kind::Host, false),
    (keys::SIP_REALM, Kind::Text, false),
    (keys::RTP_PORT_MIN, Kind::Port, true),
    (keys::RTP_PORT_MAX, Kind::Port, true),
    (keys::MEDIA_TIMEOUT_SECS, Kind::Number { min: 5, max: 3600 }, true),
    (keys::SIP_LOG, Kind::Choice(&["off", "headers", "full"]), true),
    (keys::RECORDING_MIN_FREE_MB, Kind::Number { min: 0, max: 1_000_000 }, true),
];

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    Flag,
    Env,
    Stored,
    Default,
}

/// The binary's layers for one setting: the value given by flag or environment (which the
/// stored value cannot override), and the default.
#[derive(Debug, Clone)]
pub struct SettingLayer {
    pub key: &'static str,
    pub fixed: Option<(String, SettingSource)>,
    pub default: Option<String>,
}

/// The flag/env/default layers of every stored setting.
#[derive(Debug, Clone, Default)]
pub struct SettingsLayers {
    layers: Vec<SettingLayer>,
}

/// An effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: Option<String>,
    pub source: SettingSource,
}

impl SettingsLayers {
    pub fn new(layers: Vec<SettingLayer>) -> Self {
        Self { layers }
    }

    /// The same layers without the flag/env values: what applies once those are gone.
    pub fn without_overrides(&self) -> Self {
        Self { layers: self.layers.iter().map(|l| SettingLayer { fixed: None, ..l.clone() }).collect() }
    }

    fn layer(&self, key: &str) -> Option<&SettingLayer> {
        self.layers.iter().find(|l| l.key == key)
    }

    /// The stored-setting keys this build knows.
    pub fn known_keys() -> impl Iterator<Item = &'static str> {
        CATALOGUE.iter().map(|(k, _, _)| *k)
    }

    /// Effective values: flag > env > stored > default. The realm defaults to the effective
    /// hostname, else [`DEFAULT_REALM`].
    pub fn resolve(&self, stored: &BTreeMap<String, String>) -> BTreeMap<&'static str, Resolved> {
        let mut out = BTreeMap::new();
        for (key, _, _) in CATALOGUE {
            let layer = self.layer(key);
            let r = if let Some((v, src)) = layer.and_then(|l| l.fixed.clone()) {
                Resolved { value: Some(v), source: src }
            } else if let Some(v) = stored.get(*key) {
                Resolved { value: Some(v.clone()), source: SettingSource::Stored }
            } else {
                Resolved { value: layer.and_then(|l| l.default.clone()), source: SettingSource::Default }
            };
            out.insert(*key, r);
        }
        let realm_unset = out.get(keys::SIP_REALM).is_none_or(|r| r.value.as_deref().is_none_or(str::is_empty));
        if realm_unset {
            let realm = out
                .get(keys::HOSTNAME)
                .and_then(|r| r.value.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_REALM.to_owned());
            out.insert(keys::SIP_REALM, Resolved { value: Some(realm), source: SettingSource::Default });
        }
        out
    }
}

/// One setting as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingView {
    /// a number, a string, a list or null (unset), by setting
    pub value: serde_json::Value,
    pub source: SettingSource,
    /// as `value`
    pub default: serde_json::Value,
    /// a change takes effect after a restart
    pub restart_required: bool,
}

fn typed(kind: Kind, v: Option<&str>) -> serde_json::Value {
    match (kind, v) {
        (_, None) => serde_json::Value::Null,
        (Kind::Port | Kind::Number { .. }, Some(s)) => {
            s.parse::<u64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::String(s.to_owned()))
        }
        (_, Some(s)) => serde_json::Value::String(s.to_owned()),
    }
}

fn view(state: &AppState, stored: &BTreeMap<String, String>) -> BTreeMap<String, SettingView> {
    let layers = state.settings_layers();
    let resolved = layers.resolve(stored);
    CATALOGUE
        .iter()
        .map(|(key, kind, restart)| {
            let r = resolved.get(key).cloned().unwrap_or(Resolved { value: None, source: SettingSource::Default });
            let default = layers.layer(key).and_then(|l| l.default.clone());
            (
                (*key).to_owned(),
                SettingView {
                    value: typed(*kind, r.value.as_deref()),
                    source: r.source,
                    default: typed(*kind, default.as_deref()),
                    restart_required: *restart,
                },
            )
        })
        .collect()
}

/// Absent: unchanged; null: back to the default; a value: stored.
fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A change of stored settings. Absent fields are left alone, `null` resets to the default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u16>)]
    pub http_port: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u16>)]
    pub sip_udp_port: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u16>)]
    pub sip_tcp_port: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u16>)]
    pub sip_tls_port: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub external_ip: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub hostname: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub sip_realm: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u16>)]
    pub rtp_port_min: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u16>)]
    pub rtp_port_max: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u64>)]
    pub media_timeout_secs: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub sip_log: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u64>)]
    pub recording_min_free_mb: Option<Option<u64>>,
}

impl SettingsUpdate {
    /// (key, change) pairs: None = unchanged, Some(None) = reset, Some(Some(text)) = store.
    fn changes(&self) -> Vec<(&'static str, Option<Option<String>>)> {
        fn s<T: ToString>(v: &Option<Option<T>>) -> Option<Option<String>> {
            v.as_ref().map(|o| o.as_ref().map(|x| x.to_string()))
        }
        vec![
            (keys::HTTP_PORT, s(&self.http_port)),
            (keys::SIP_UDP_PORT, s(&self.sip_udp_port)),
            (keys::SIP_TCP_PORT, s(&self.sip_tcp_port)),
            (keys::SIP_TLS_PORT, s(&self.sip_tls_port)),
            (keys::EXTERNAL_IP, s(&self.external_ip)),
            (keys::HOSTNAME, s(&self.hostname)),
            (keys::SIP_REALM, s(&self.sip_realm)),
            (keys::RTP_PORT_MIN, s(&self.rtp_port_min)),
            (keys::RTP_PORT_MAX, s(&self.rtp_port_max)),
            (keys::MEDIA_TIMEOUT_SECS, s(&self.media_timeout_secs)),
            (keys::SIP_LOG, s(&self.sip_log)),
            (keys::RECORDING_MIN_FREE_MB, s(&self.recording_min_free_mb)),
        ]
    }
}

fn validate_value(e: &mut Errors, key: &str, kind: Kind, v: &str) {
    match kind {
        Kind::Port => match v.parse::<u16>() {
            Ok(p) if p >= 1 => {}
            _ => e.add(key, "must be a port number between 1 and 65535"),
        },
        Kind::Ip => e.check(v.parse::<std::net::IpAddr>().is_ok(), key, "must be an IPv4 or IPv6 address"),
        Kind::Host => e.check(is_hostname(v) || v.parse::<std::net::IpAddr>().is_ok(), key, "must be a host name or IP address"),
        Kind::Text => e.check(
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            key,
            "must be 1-128 printable characters without quotes or backslashes",
        ),
        Kind::Number { min, max } => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => {}
            _ => e.add(key, format!("must be a whole number between {min} and {max}")),
        },
        Kind::Choice(opts) => e.check(opts.contains(&v), key, format!("must be one of {}", opts.join(", "))),
    }
}

/// Validates and writes a settings change inside `tx`, with its audit row. Returns the new
/// effective SIP realm when it changed (the caller applies it to the store after commit).
pub(crate) async fn apply_settings_update(
    state: &AppState,
    tx: &mut Tx,
    update: &SettingsUpdate,
    actor: &Actor,
) -> ApiResult<Option<String>> {
    let changes: Vec<_> = update.changes().into_iter().filter_map(|(k, c)| c.map(|c| (k, c))).collect();
    if changes.is_empty() {
        return Ok(None);
    }
    let mut e = Errors::new();
    for (key, change) in &changes {
        if let (Some(v), Some((_, kind, _))) = (change, CATALOGUE.iter().find(|(k, _, _)| k == key)) {
            validate_value(&mut e, key, *kind, v);
        }
    }
    e.finish()?;

    let before = tx.settings().all().await?;
    let mut after = before.clone();
    for (key, change) in &changes {
        match change {
            Some(v) => after.insert((*key).to_owned(), v.clone()),
            None => after.remove(*key),
        };
    }
    let layers = state.settings_layers();
    let old = layers.resolve(&before);
    let new = layers.resolve(&after);
    // cross-field rules, on the effective values and on what the stored values alone give
    // (so that nothing breaks once a flag or environment variable is dropped)
    let mut e = Errors::new();
    for view in [&new, &layers.without_overrides().resolve(&after)] {
        let num = |k: &str| view.get(k).and_then(|r| r.value.as_deref()).and_then(|v| v.parse::<u32>().ok());
        if let (Some(lo), Some(hi)) = (num(keys::RTP_PORT_MIN), num(keys::RTP_PORT_MAX)) {
            if lo >= hi {
                e.add(keys::RTP_PORT_MIN, "must be below rtp_port_max");
            } else if hi - lo < 3 {
                e.add(keys::RTP_PORT_MAX, "the RTP range must hold at least two port pairs");
            }
        }
        if let (Some(h), Some(t)) = (num(keys::HTTP_PORT), num(keys::SIP_TCP_PORT)) {
            e.check(h != t, keys::HTTP_PORT, "must differ from sip_tcp_port");
        }
        if let (Some(t), Some(tls)) = (num(keys::SIP_TCP_PORT), num(keys::SIP_TLS_PORT)) {
            e.check(t != tls, keys::SIP_TLS_PORT, "must differ from sip_tcp_port");
        }
        if let Some(h) = view.get(keys::HOSTNAME).and_then(|r| r.value.as_deref()) {
            e.check(is_host(h), keys::HOSTNAME, "must be a host name or IP address");
        }
        if !e.is_empty() {
            break;
        }
    }
    e.finish()?;

    for (key, change) in &changes {
        match change {
            Some(v) => tx.settings().set(key, v).await?,
            None => {
                tx.settings().delete(key).await?;
            }
        }
    }
    let before_json: BTreeMap<&str, Option<&String>> = changes.iter().map(|(k, _)| (*k, before.get(*k))).collect();
    let after_json: BTreeMap<&str, Option<&String>> = changes.iter().map(|(k, _)| (*k, after.get(*k))).collect();
    tx.audit(
        actor,
        "update",
        "settings",
        None,
        Some(&serde_json::to_value(before_json).unwrap_or_default()),
        Some(&serde_json::to_value(after_json).unwrap_or_default()),
    )
    .await?;
    let realm = |m: &BTreeMap<&'static str, Resolved>| m.get(keys::SIP_REALM).and_then(|r| r.value.clone());
    Ok(if realm(&old) != realm(&new) { realm(&new) } else { None })
}

/// The result of a settings change.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsChanged {
    pub settings: BTreeMap<String, SettingView>,
    /// changed keys that take effect after a restart
    pub restart_required: Vec<String>,
    /// changed keys whose stored value is shadowed by a flag or environment variable
    pub overridden: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, body = inline(Data<BTreeMap<String, SettingView>>))))]
pub(crate) async fn get_settings(State(state): State<AppState>) -> ApiResult<Data<BTreeMap<String, SettingView>>> {
    let stored = state.store().settings().all().await?;
    Ok(Data::new(view(&state, &stored)))
}

#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = SettingsUpdate,
    responses((status = 200, body = inline(Data<SettingsChanged>)), (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    Json(update): Json<SettingsUpdate>,
) -> ApiResult<Data<SettingsChanged>> {
    let store = state.store();
    let before = store.settings().all().await?;
    let mut tx = store.begin().await?;
    let realm = apply_settings_update(&state, &mut tx, &update, &caller.actor()).await?;
    tx.commit().await?;
    if let Some(realm) = realm {
        store.set_sip_realm(&realm).await?;
    }
    state.refresh_host_policy().await?;
    let after = store.settings().all().await?;
    let old = view(&state, &before);
    let new = view(&state, &after);
    let changed: Vec<&'static str> =
        update.changes().into_iter().filter(|(_, c)| c.is_some()).map(|(k, _)| k).collect();
    let restart_required = changed
        .iter()
        .filter(|k| {
            let (o, n) = (old.get(**k), new.get(**k));
            n.is_some_and(|n| n.restart_required) && o.map(|o| &o.value) != n.map(|n| &n.value)
        })
        .map(|k| (*k).to_owned())
        .collect();
    let overridden = changed
        .iter()
        .filter(|k| new.get(**k).is_some_and(|v| matches!(v.source, SettingSource::Flag | SettingSource::Env)))
        .map(|k| (*k).to_owned())
        .collect();
    Ok(Data::new(SettingsChanged { settings: new, restart_required, overridden }))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/settings", get(get_settings).put(put_settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_and_realm_default() {
        let layers = SettingsLayers::new(vec![
            SettingLayer { key: keys::HTTP_PORT, fixed: Some(("9000".into(), SettingSource::Flag)), default: Some("8080".into()) },
            SettingLayer { key: keys::SIP_UDP_PORT, fixed: None, default: Some("5060".into()) },
            SettingLayer { key: keys::HOSTNAME, fixed: None, default: None },
            SettingLayer { key: keys::SIP_REALM, fixed: None, default: None },
        ]);
        let mut stored = BTreeMap::new();
        stored.insert("http_port".to_string(), "7000".to_string());
        stored.insert("sip_udp_port".to_string(), "5070".to_string());
        let r = layers.resolve(&stored);
        assert_eq!(r[keys::HTTP_PORT], Resolved { value: Some("9000".into()), source: SettingSource::Flag });
        assert_eq!(r[keys::SIP_UDP_PORT], Resolved { value: Some("5070".into()), source: SettingSource::Stored });
        assert_eq!(r[keys::SIP_REALM].value.as_deref(), Some(DEFAULT_REALM));
        stored.insert("hostname".to_string(), "pbx.example.com".to_string());
        assert_eq!(layers.resolve(&stored)[keys::SIP_REALM].value.as_deref(), Some("pbx.example.com"));
    }
}
