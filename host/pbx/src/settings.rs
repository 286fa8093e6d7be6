//! Settings: the catalogue of stored settings, every setting's effective value and where it
//! came from, and changing the stored ones. The layering is flag > environment > stored
//! (`system_config`) > default; the binary supplies the flag, env and default layers
//! ([`SettingsLayers`]), the store the stored one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use store::{Actor, Tx};

use crate::error::{Problems, Result};

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
    pub const BACKUP_INTERVAL_HOURS: &str = "backup_interval_hours";
    pub const BACKUP_KEEP: &str = "backup_keep";
    /// Recording for every extension on top of its own mode: `per_extension` (default),
    /// `always`, `on_demand` (read by the SIP stack's directory).
    pub const RECORDING_POLICY: &str = "recording_policy";
    /// Days call recordings are kept (0 or unset: for ever); applied daily.
    pub const RECORDING_RETENTION_DAYS: &str = "recording_retention_days";
    /// Days CDRs are kept (0 or unset: for ever); applied daily.
    pub const CDR_RETENTION_DAYS: &str = "cdr_retention_days";
}

/// The realm used when neither sip_realm nor hostname is set.
pub const DEFAULT_REALM: &str = "flowpbx";

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Port,
    Ip,
    Host,
    Text,
    Number { min: u64, max: u64 },
    Choice(&'static [&'static str]),
}

impl SettingKind {
    /// Whether its values are numbers (shown as JSON numbers).
    pub fn is_numeric(self) -> bool {
        matches!(self, SettingKind::Port | SettingKind::Number { .. })
    }
}

/// One stored setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub kind: SettingKind,
    /// A change takes effect only after a restart.
    pub restart_required: bool,
}

const fn setting(key: &'static str, kind: SettingKind, restart_required: bool) -> Setting {
    Setting { key, kind, restart_required }
}

/// Every stored setting, in the order they are shown.
pub const CATALOGUE: &[Setting] = &[
    setting(keys::HTTP_PORT, SettingKind::Port, true),
    setting(keys::SIP_UDP_PORT, SettingKind::Port, true),
    setting(keys::SIP_TCP_PORT, SettingKind::Port, true),
    setting(keys::SIP_TLS_PORT, SettingKind::Port, true),
    setting(keys::EXTERNAL_IP, SettingKind::Ip, true),
    setting(keys::HOSTNAME, SettingKind::Host, false),
    setting(keys::SIP_REALM, SettingKind::Text, false),
    setting(keys::RTP_PORT_MIN, SettingKind::Port, true),
    setting(keys::RTP_PORT_MAX, SettingKind::Port, true),
    setting(keys::MEDIA_TIMEOUT_SECS, SettingKind::Number { min: 5, max: 3600 }, true),
    setting(keys::SIP_LOG, SettingKind::Choice(&["off", "headers", "full"]), true),
    setting(keys::RECORDING_MIN_FREE_MB, SettingKind::Number { min: 0, max: 1_000_000 }, true),
    // scheduled backups into <data-dir>/backups (pbx::backup::run_schedule reads them live)
    setting(keys::BACKUP_INTERVAL_HOURS, SettingKind::Number { min: 0, max: 720 }, false),
    setting(keys::BACKUP_KEEP, SettingKind::Number { min: 1, max: 1000 }, false),
    setting(keys::RECORDING_POLICY, SettingKind::Choice(&["per_extension", "always", "on_demand"]), false),
    setting(keys::RECORDING_RETENTION_DAYS, SettingKind::Number { min: 0, max: 36_500 }, false),
    setting(keys::CDR_RETENTION_DAYS, SettingKind::Number { min: 0, max: 36_500 }, false),
];

/// A setting of the catalogue by key.
pub fn find(key: &str) -> Option<&'static Setting> {
    CATALOGUE.iter().find(|s| s.key == key)
}

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// What fixed it, as the administrator would change it: the flag (`--sip-port`) or the
    /// environment variable (`FLOWPBX_SIP_PORT`).
    pub fixed_by: Option<String>,
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

/// One setting as it is in force: its catalogue entry, value, source and default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub setting: Setting,
    pub value: Option<String>,
    pub source: SettingSource,
    pub default: Option<String>,
    /// The flag or environment variable that fixes it, when one does.
    pub fixed_by: Option<String>,
}

impl SettingsLayers {
    pub fn new(layers: Vec<SettingLayer>) -> Self {
        Self { layers }
    }

    /// The same layers without the flag/env values: what applies once those are gone.
    pub fn without_overrides(&self) -> Self {
        Self { layers: self.layers.iter().map(|l| SettingLayer { fixed: None, fixed_by: None, ..l.clone() }).collect() }
    }

    /// The layers of one setting.
    pub fn layer(&self, key: &str) -> Option<&SettingLayer> {
        self.layers.iter().find(|l| l.key == key)
    }

    /// The stored-setting keys this build knows.
    pub fn known_keys() -> impl Iterator<Item = &'static str> {
        CATALOGUE.iter().map(|s| s.key)
    }

    /// Effective values: flag > env > stored > default. The realm defaults to the effective
    /// hostname, else [`DEFAULT_REALM`].
    pub fn resolve(&self, stored: &BTreeMap<String, String>) -> BTreeMap<&'static str, Resolved> {
        let mut out = BTreeMap::new();
        for s in CATALOGUE {
            let layer = self.layer(s.key);
            let r = if let Some((v, src)) = layer.and_then(|l| l.fixed.clone()) {
                Resolved { value: Some(v), source: src }
            } else if let Some(v) = stored.get(s.key) {
                Resolved { value: Some(v.clone()), source: SettingSource::Stored }
            } else {
                Resolved { value: layer.and_then(|l| l.default.clone()), source: SettingSource::Default }
            };
            out.insert(s.key, r);
        }
        let realm_unset = out.get(keys::SIP_REALM).is_none_or(|r| r.value.as_deref().is_none_or(str::is_empty));
        if realm_unset {
            let realm = out.get(keys::HOSTNAME).and_then(|r| r.value.clone()).filter(|h| !h.is_empty()).unwrap_or_else(|| DEFAULT_REALM.to_owned());
            out.insert(keys::SIP_REALM, Resolved { value: Some(realm), source: SettingSource::Default });
        }
        out
    }

    /// Every setting of the catalogue as it is in force with `stored`, in catalogue order.
    pub fn effective(&self, stored: &BTreeMap<String, String>) -> Vec<Effective> {
        let resolved = self.resolve(stored);
        CATALOGUE
            .iter()
            .map(|s| {
                let r = resolved.get(s.key).cloned().unwrap_or(Resolved { value: None, source: SettingSource::Default });
                let layer = self.layer(s.key);
                let fixed_by = match r.source {
                    SettingSource::Flag | SettingSource::Env => layer.and_then(|l| l.fixed_by.clone()),
                    _ => None,
                };
                Effective { setting: *s, value: r.value, source: r.source, default: layer.and_then(|l| l.default.clone()), fixed_by }
            })
            .collect()
    }
}

/// A DNS name: dot-separated labels of letters, digits and `-` (not at either end).
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// A host: an IP address or a DNS name.
pub fn is_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_hostname(s)
}

fn validate_value(e: &mut Problems, key: &str, kind: SettingKind, v: &str) {
    match kind {
        SettingKind::Port => match v.parse::<u16>() {
            Ok(p) if p >= 1 => {}
            _ => e.add(key, "must be a port number from 1 to 65535"),
        },
        SettingKind::Ip => e.check(v.parse::<IpAddr>().is_ok(), key, "must be an IPv4 or IPv6 address"),
        SettingKind::Host => e.check(is_host(v), key, "must be a host name or IP address"),
        SettingKind::Text => e.check(
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            key,
            "must be 1-128 printable characters without quotes or backslashes",
        ),
        SettingKind::Number { min, max } => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => {}
            _ => e.add(key, format!("must be a whole number from {min} to {max}")),
        },
        SettingKind::Choice(opts) => e.check(opts.contains(&v), key, format!("must be one of {}", opts.join(", "))),
    }
}

/// One change of a stored setting: `Some(text)` stores it, `None` removes it (back to the
/// default).
pub type Change = Option<String>;

/// Every problem of a change of stored settings, all at once: each value against its kind,
/// then the rules between settings — among the values that passed — on the effective values
/// and on what the stored values alone give (so nothing breaks once a flag or environment
/// variable is dropped). `stored` is what is stored now. Messages name other settings as the
/// Settings page labels them.
pub fn check_update(layers: &SettingsLayers, stored: &BTreeMap<String, String>, changes: &[(&'static str, Change)]) -> Vec<crate::error::FieldProblem> {
    let mut e = Problems::new();
    let mut bad = std::collections::BTreeSet::new();
    for (key, change) in changes {
        let before = e.len();
        match (change, find(key)) {
            (_, None) => e.add(*key, "is not a setting"),
            (Some(v), Some(s)) => validate_value(&mut e, key, s.kind, v),
            (None, Some(_)) => {}
        }
        if e.len() > before {
            bad.insert(*key);
        }
    }
    let mut after = stored.clone();
    for (key, change) in changes.iter().filter(|(k, _)| !bad.contains(k)) {
        match change {
            Some(v) => after.insert((*key).to_owned(), v.clone()),
            None => after.remove(*key),
        };
    }
    let new = layers.resolve(&after);
    let mut cross = Problems::new();
    for view in [&new, &layers.without_overrides().resolve(&after)] {
        let num = |k: &str| view.get(k).and_then(|r| r.value.as_deref()).and_then(|v| v.parse::<u32>().ok());
        if let (Some(lo), Some(hi)) = (num(keys::RTP_PORT_MIN), num(keys::RTP_PORT_MAX)) {
            if lo >= hi {
                cross.add(keys::RTP_PORT_MIN, format!("must be lower than the last RTP port ({hi})"));
            } else if hi - lo < 3 {
                cross.add(keys::RTP_PORT_MAX, format!("must be at least {} so two calls fit (a call takes a pair of ports)", lo + 3));
            }
        }
        if let (Some(h), Some(t)) = (num(keys::HTTP_PORT), num(keys::SIP_TCP_PORT)) {
            cross.check(h != t, keys::HTTP_PORT, format!("must differ from the SIP TCP port ({t})"));
        }
        if let (Some(t), Some(tls)) = (num(keys::SIP_TCP_PORT), num(keys::SIP_TLS_PORT)) {
            cross.check(t != tls, keys::SIP_TLS_PORT, format!("must differ from the SIP TCP port ({t})"));
        }
        if let Some(h) = view.get(keys::HOSTNAME).and_then(|r| r.value.as_deref()) {
            cross.check(is_host(h), keys::HOSTNAME, "must be a host name or IP address");
        }
        if !cross.is_empty() {
            break;
        }
    }
    let mut all = e.into_vec();
    // a key already refused for its value is not refused again for what it would clash with
    all.extend(cross.into_vec().into_iter().filter(|p| !bad.contains(p.field.as_str())));
    all
}

/// Validates ([`check_update`]: every problem at once) and writes a change of stored
/// settings inside `tx`, with its audit row. Returns the new effective SIP realm when it
/// changed (the caller applies it to the store after the commit).
pub async fn apply_update(layers: &SettingsLayers, tx: &mut Tx, changes: &[(&'static str, Change)], actor: &Actor) -> Result<Option<String>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let before = tx.settings().all().await?;
    let problems = check_update(layers, &before, changes);
    if !problems.is_empty() {
        return Err(crate::Error::Invalid(problems));
    }
    let mut after = before.clone();
    for (key, change) in changes {
        match change {
            Some(v) => after.insert((*key).to_owned(), v.clone()),
            None => after.remove(*key),
        };
    }
    let old = layers.resolve(&before);
    let new = layers.resolve(&after);

    for (key, change) in changes {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_and_realm_default() {
        let layers = SettingsLayers::new(vec![
            SettingLayer {
                key: keys::HTTP_PORT,
                fixed: Some(("9000".into(), SettingSource::Flag)),
                fixed_by: Some("--http-port".into()),
                default: Some("8080".into()),
            },
            SettingLayer { key: keys::SIP_UDP_PORT, fixed: None, fixed_by: None, default: Some("5060".into()) },
            SettingLayer { key: keys::HOSTNAME, fixed: None, fixed_by: None, default: None },
            SettingLayer { key: keys::SIP_REALM, fixed: None, fixed_by: None, default: None },
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
        let eff = layers.effective(&stored);
        assert_eq!(eff.len(), CATALOGUE.len());
        let http = eff.iter().find(|e| e.setting.key == keys::HTTP_PORT).unwrap();
        assert_eq!((http.value.as_deref(), http.source, http.default.as_deref()), (Some("9000"), SettingSource::Flag, Some("8080")));
        assert_eq!(http.fixed_by.as_deref(), Some("--http-port"));
        assert!(eff.iter().filter(|e| e.setting.key != keys::HTTP_PORT).all(|e| e.fixed_by.is_none()));
    }

    #[test]
    fn hosts() {
        assert!(is_host("pbx.example.com") && is_host("192.0.2.1") && is_host("2001:db8::1"));
        assert!(!is_host("") && !is_host("-x.example") && !is_host("a..b") && !is_host("a b"));
    }

    async fn store() -> (store::Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = store::Store::open(store::StoreOptions::new(dir.path().join("flowpbx.db"), store::SecretKey::generate(), "flowpbx")).await.unwrap();
        (s, dir)
    }

    #[tokio::test]
    async fn changes_are_checked_field_by_field_and_across_fields() {
        let (s, _dir) = store().await;
        let layers = SettingsLayers::new(vec![SettingLayer {
            key: keys::HTTP_PORT,
            fixed: Some(("5060".into(), SettingSource::Env)),
            fixed_by: Some("FLOWPBX_HTTP_PORT".into()),
            default: Some("8080".into()),
        }]);
        let actor = Actor { name: "t".into(), ip: None };
        let mut tx = s.begin().await.unwrap();
        let bad = [(keys::SIP_UDP_PORT, Some("0".to_string())), (keys::SIP_LOG, Some("loud".to_string())), ("nope", None)];
        let Err(crate::Error::Invalid(p)) = apply_update(&layers, &mut tx, &bad, &actor).await else { panic!() };
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, [keys::SIP_UDP_PORT, keys::SIP_LOG, "nope"]);
        // every problem at once: a bad value and a clash between two good ones
        let both =
            [(keys::SIP_UDP_PORT, Some("70000".to_string())), (keys::RTP_PORT_MIN, Some("20000".to_string())), (keys::RTP_PORT_MAX, Some("10000".to_string()))];
        let Err(crate::Error::Invalid(p)) = apply_update(&layers, &mut tx, &both, &actor).await else { panic!() };
        let got: Vec<(&str, &str)> = p.iter().map(|p| (p.field.as_str(), p.message.as_str())).collect();
        assert_eq!(got, [(keys::SIP_UDP_PORT, "must be a port number from 1 to 65535"), (keys::RTP_PORT_MIN, "must be lower than the last RTP port (10000)")]);
        assert!(p.iter().all(|p| !p.message.contains('_')), "no setting key in a message: {p:?}");
        // the environment's HTTP port is the TCP port asked for: refused
        let clash = [(keys::SIP_TCP_PORT, Some("5060".to_string()))];
        let Err(crate::Error::Invalid(p)) = apply_update(&layers, &mut tx, &clash, &actor).await else { panic!() };
        assert_eq!(p[0].field, keys::HTTP_PORT);
        // a realm follows the hostname
        let ok = [(keys::HOSTNAME, Some("pbx.example.com".to_string()))];
        assert_eq!(apply_update(&layers, &mut tx, &ok, &actor).await.unwrap().as_deref(), Some("pbx.example.com"));
        tx.commit().await.unwrap();
        assert_eq!(s.settings().all().await.unwrap().get(keys::HOSTNAME).map(String::as_str), Some("pbx.example.com"));
    }
}
