//! `GET/PUT /settings`: every stored setting's effective value and where it came from, and
//! changing the stored ones. The catalogue, the layering (flag > environment > stored >
//! default) and the rules a change must follow are `pbx::settings`'; this module maps them to
//! HTTP.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use pbx::settings::{keys, Change, SettingKind};
use serde::{Deserialize, Deserializer, Serialize};
use store::{Actor, Tx};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Data, Json};
use crate::AppState;

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    Flag,
    Env,
    Stored,
    Default,
}

impl From<pbx::settings::SettingSource> for SettingSource {
    fn from(s: pbx::settings::SettingSource) -> Self {
        match s {
            pbx::settings::SettingSource::Flag => SettingSource::Flag,
            pbx::settings::SettingSource::Env => SettingSource::Env,
            pbx::settings::SettingSource::Stored => SettingSource::Stored,
            pbx::settings::SettingSource::Default => SettingSource::Default,
        }
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
    /// What fixes the value when `source` is `flag` or `env`: the flag as typed
    /// (`--sip-port`) or the environment variable (`FLOWPBX_SIP_PORT`). A stored value is
    /// kept but does not apply while it is set; change it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,
    /// The values it takes, when it is a choice (the SIP log: off, headers, full).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// The smallest and largest value of a number (a port: 1 to 65535).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u64>,
}

/// A setting's view from its effective value.
pub(crate) fn setting_view(e: &pbx::settings::Effective) -> SettingView {
    let (minimum, maximum) = match e.setting.kind {
        SettingKind::Port => (Some(1), Some(65535)),
        SettingKind::Number { min, max } => (Some(min), Some(max)),
        _ => (None, None),
    };
    SettingView {
        value: typed(e.setting.kind, e.value.as_deref()),
        source: e.source.into(),
        default: typed(e.setting.kind, e.default.as_deref()),
        restart_required: e.setting.restart_required,
        set_by: e.fixed_by.clone(),
        choices: match e.setting.kind {
            SettingKind::Choice(c) => Some(c.iter().map(|x| (*x).to_owned()).collect()),
            _ => None,
        },
        minimum,
        maximum,
    }
}

fn typed(kind: SettingKind, v: Option<&str>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(s) if kind.is_numeric() => s.parse::<u64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::String(s.to_owned())),
        Some(s) => serde_json::Value::String(s.to_owned()),
    }
}

fn view(state: &AppState, stored: &BTreeMap<String, String>) -> BTreeMap<String, SettingView> {
    state.settings_layers().effective(stored).into_iter().map(|e| (e.setting.key.to_owned(), setting_view(&e))).collect()
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
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u64>)]
    pub backup_interval_hours: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u64>)]
    pub backup_keep: Option<Option<u64>>,
    /// Recording for every extension on top of its own mode: per_extension, always, on_demand.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub recording_policy: Option<Option<String>>,
    /// Days call recordings are kept (0: for ever), applied daily.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u64>)]
    pub recording_retention_days: Option<Option<u64>>,
    /// Days CDRs are kept (0: for ever), applied daily.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<u64>)]
    pub cdr_retention_days: Option<Option<u64>>,
}

impl SettingsUpdate {
    /// Reads a change from a JSON object field by field, so every field that is wrong is
    /// named at once (a typed body stops at the first): the change of the fields that are
    /// right, and what is wrong with the others.
    pub(crate) fn from_object(obj: serde_json::Map<String, serde_json::Value>) -> (SettingsUpdate, Vec<FieldError>) {
        let mut u = SettingsUpdate::default();
        let mut errors = Vec::new();
        for (k, v) in obj {
            let port = pbx::settings::find(&k).is_some_and(|s| s.kind == SettingKind::Port);
            macro_rules! take {
                ($f:ident) => {
                    match serde_json::from_value(v) {
                        Ok(x) => u.$f = Some(x),
                        Err(err) => errors.push(FieldError {
                            field: k.clone(),
                            message: if port { "must be a port number from 1 to 65535".into() } else { crate::extract::plain_words(&err.to_string()) },
                        }),
                    }
                };
            }
            match k.as_str() {
                keys::HTTP_PORT => take!(http_port),
                keys::SIP_UDP_PORT => take!(sip_udp_port),
                keys::SIP_TCP_PORT => take!(sip_tcp_port),
                keys::SIP_TLS_PORT => take!(sip_tls_port),
                keys::EXTERNAL_IP => take!(external_ip),
                keys::HOSTNAME => take!(hostname),
                keys::SIP_REALM => take!(sip_realm),
                keys::RTP_PORT_MIN => take!(rtp_port_min),
                keys::RTP_PORT_MAX => take!(rtp_port_max),
                keys::MEDIA_TIMEOUT_SECS => take!(media_timeout_secs),
                keys::SIP_LOG => take!(sip_log),
                keys::RECORDING_MIN_FREE_MB => take!(recording_min_free_mb),
                keys::BACKUP_INTERVAL_HOURS => take!(backup_interval_hours),
                keys::BACKUP_KEEP => take!(backup_keep),
                keys::RECORDING_POLICY => take!(recording_policy),
                keys::RECORDING_RETENTION_DAYS => take!(recording_retention_days),
                keys::CDR_RETENTION_DAYS => take!(cdr_retention_days),
                _ => errors.push(FieldError { field: k.clone(), message: "is not a setting".into() }),
            }
        }
        (u, errors)
    }

    /// (key, change) pairs: None = unchanged, Some(None) = reset, Some(Some(text)) = store.
    fn changes(&self) -> Vec<(&'static str, Option<Change>)> {
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
            (keys::BACKUP_INTERVAL_HOURS, s(&self.backup_interval_hours)),
            (keys::BACKUP_KEEP, s(&self.backup_keep)),
            (keys::RECORDING_POLICY, s(&self.recording_policy)),
            (keys::RECORDING_RETENTION_DAYS, s(&self.recording_retention_days)),
            (keys::CDR_RETENTION_DAYS, s(&self.cdr_retention_days)),
        ]
    }
}

/// Validates and writes a settings change inside `tx`, with its audit row
/// ([`pbx::settings::apply_update`]). Returns the new effective SIP realm when it changed (the
/// caller applies it to the store after commit).
pub(crate) async fn apply_settings_update(state: &AppState, tx: &mut Tx, update: &SettingsUpdate, actor: &Actor) -> ApiResult<Option<String>> {
    let changes: Vec<(&'static str, Change)> = update.changes().into_iter().filter_map(|(k, c)| c.map(|c| (k, c))).collect();
    Ok(pbx::settings::apply_update(state.settings_layers(), tx, &changes, actor).await?)
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
    responses((status = 200, body = inline(Data<SettingsChanged>)), (status = 422, description = "every field that is wrong, at once", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Data<SettingsChanged>> {
    let (update, mut errors) = SettingsUpdate::from_object(body);
    let store = state.store();
    let before = store.settings().all().await?;
    let changes: Vec<(&'static str, Change)> = update.changes().into_iter().filter_map(|(k, c)| c.map(|c| (k, c))).collect();
    errors
        .extend(pbx::settings::check_update(state.settings_layers(), &before, &changes).into_iter().map(|p| FieldError { field: p.field, message: p.message }));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
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
    let changed: Vec<&'static str> = update.changes().into_iter().filter(|(_, c)| c.is_some()).map(|(k, _)| k).collect();
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
