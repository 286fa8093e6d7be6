//! The in-memory directory: what the SIP path reads instead of the database — the
//! extensions with their decrypted HA1s, the IP-authenticated trunks and the inbound
//! numbers. A snapshot is immutable (`Arc<Directory>`); the refresher task polls the store's
//! change stamp and hands the event loop a new snapshot when something changed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use sip::auth::Algorithm;
use store::{Page, Store, TrunkType};

/// One extension, as the SIP stack needs it.
pub struct User {
    /// The extension's id.
    pub id: i64,
    /// Its number ("101").
    pub extension: String,
    /// Its display name.
    pub name: String,
    /// The digest username.
    pub username: String,
    /// Lowercase hex HA1 over the realm, MD5.
    ha1_md5: String,
    /// Lowercase hex HA1 over the realm, SHA-256.
    ha1_sha256: String,
    /// Do not disturb: calls get 486.
    pub dnd: bool,
    /// How long a call rings before the caller gets 480, seconds.
    pub ring_timeout: u32,
    /// Contacts the extension may register at once.
    pub max_registrations: u32,
    /// Its calls are recorded (recording mode `always`).
    pub record_always: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("extension", &self.extension).field("username", &self.username).finish_non_exhaustive()
    }
}

impl User {
    /// The stored HA1 for the base algorithm of `alg`.
    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg.base() {
            Algorithm::Sha256 => &self.ha1_sha256,
            _ => &self.ha1_md5,
        }
    }

    /// A user for tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64, extension: &str, username: &str, realm: &str, password: &str) -> User {
        User {
            id,
            extension: extension.to_owned(),
            name: format!("User {extension}"),
            username: username.to_owned(),
            ha1_md5: sip::auth::ha1(Algorithm::Md5, username, realm, password),
            ha1_sha256: sip::auth::ha1(Algorithm::Sha256, username, realm, password),
            dnd: false,
            ring_timeout: 30,
            max_registrations: 5,
            record_always: false,
        }
    }
}

/// An enabled trunk of type `ip`: requests from its addresses are trusted.
#[derive(Debug, Clone)]
pub struct TrustedTrunk {
    /// The trunk's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    nets: Vec<IpNet>,
}

impl TrustedTrunk {
    /// A trunk for tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64, name: &str, hosts: &[&str]) -> TrustedTrunk {
        TrustedTrunk { id, name: name.into(), nets: hosts.iter().filter_map(|h| parse_net(h)).collect() }
    }
}

/// An enabled inbound number (DID).
#[derive(Debug, Clone)]
pub struct Did {
    /// The number as stored (E.164).
    pub number: String,
    /// The trunk it belongs to, when set: then only that trunk may deliver it.
    pub trunk_id: Option<i64>,
    /// The flow it enters (the flow runner walks it; see [`crate::PbxHandle::incoming_calls`]).
    pub flow_id: Option<i64>,
}

/// A snapshot of everything the SIP path looks up.
#[derive(Default)]
pub struct Directory {
    /// The digest realm the HA1s are computed over.
    pub realm: String,
    by_username: HashMap<String, Arc<User>>,
    by_number: HashMap<String, Arc<User>>,
    by_id: HashMap<i64, Arc<User>>,
    trunks: Vec<TrustedTrunk>,
    dids: HashMap<String, Did>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("realm", &self.realm)
            .field("users", &self.by_id.len())
            .field("trunks", &self.trunks.len())
            .field("dids", &self.dids.len())
            .finish()
    }
}

impl Directory {
    /// A directory from parts (the loader and tests).
    pub fn new(realm: impl Into<String>, users: Vec<User>, trunks: Vec<TrustedTrunk>, dids: Vec<Did>) -> Directory {
        let mut d = Directory { realm: realm.into(), ..Default::default() };
        for u in users {
            let u = Arc::new(u);
            d.by_username.insert(u.username.clone(), u.clone());
            d.by_number.insert(u.extension.clone(), u.clone());
            d.by_id.insert(u.id, u);
        }
        d.trunks = trunks;
        for did in dids {
            d.dids.insert(did.number.clone(), did);
        }
        d
    }

    /// The extension whose digest username is `username`.
    pub fn user(&self, username: &str) -> Option<&Arc<User>> {
        self.by_username.get(username)
    }

    /// The extension dialled as `number`.
    pub fn by_number(&self, number: &str) -> Option<&Arc<User>> {
        self.by_number.get(number)
    }

    /// The extension with this id.
    pub fn by_id(&self, id: i64) -> Option<&Arc<User>> {
        self.by_id.get(&id)
    }

    /// How many extensions there are.
    pub fn user_count(&self) -> usize {
        self.by_id.len()
    }

    /// How many trusted trunks and inbound numbers there are.
    pub fn trunk_and_number_counts(&self) -> (usize, usize) {
        (self.trunks.len(), self.dids.len())
    }

    /// The trusted trunk `ip` belongs to.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&TrustedTrunk> {
        let ip = canonical(ip);
        self.trunks.iter().find(|t| t.nets.iter().any(|n| n.contains(&ip)))
    }

    /// The inbound number `dialled` names: exact, or with/without the leading `+`.
    pub fn did(&self, dialled: &str) -> Option<&Did> {
        if let Some(d) = self.dids.get(dialled) {
            return Some(d);
        }
        match dialled.strip_prefix('+') {
            Some(bare) => self.dids.get(bare),
            None => self.dids.get(&format!("+{dialled}")),
        }
    }

    /// Loads a snapshot from the store.
    pub async fn load(store: &Store) -> Result<Directory, store::StoreError> {
        let creds = store.extensions().all_sip_credentials().await?;
        let exts = store.extensions().list(Page::all()).await?.items;
        let ext_by_id: HashMap<i64, &store::Extension> = exts.iter().map(|e| (e.id, e)).collect();
        let realm = creds.first().map(|c| c.realm.clone()).unwrap_or_else(|| store.sip_realm());
        let users = creds
            .into_iter()
            .filter_map(|c| {
                let e = ext_by_id.get(&c.extension_id)?;
                Some(User {
                    id: c.extension_id,
                    extension: c.extension,
                    name: e.name.clone(),
                    username: c.username,
                    ha1_md5: c.ha1_md5,
                    ha1_sha256: c.ha1_sha256,
                    dnd: e.dnd,
                    ring_timeout: u32::try_from(e.ring_timeout).unwrap_or(30).clamp(1, 600),
                    max_registrations: u32::try_from(e.max_registrations).unwrap_or(5).max(1),
                    record_always: e.recording_mode == store::RecordingMode::Always,
                })
            })
            .collect();
        let trunks = store
            .trunks()
            .list_enabled()
            .await?
            .into_iter()
            .filter(|t| t.trunk_type == TrunkType::Ip)
            .map(|t| TrustedTrunk { id: t.row.id, name: t.name.clone(), nets: t.remote_hosts.iter().filter_map(|h| parse_net(h)).collect() })
            .collect();
        let mut dids = Vec::new();
        for n in store.inbound_numbers().list(Page::all()).await?.items {
            if !n.enabled {
                continue;
            }
            dids.push(Did { number: n.number.clone(), trunk_id: n.trunk_id, flow_id: n.flow_id });
        }
        Ok(Directory::new(realm, users, trunks, dids))
    }
}

/// Maps IPv4-mapped IPv6 addresses to IPv4, so `::ffff:10.0.0.1` matches `10.0.0.0/8`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An IP (a /32 or /128) or a CIDR.
fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Polls the store's change stamp and realm; sends a fresh snapshot when either changed.
/// `poke` makes it check at once (an API write can call it).
pub(crate) async fn refresher(
    store: Store,
    interval: Duration,
    mut stamp: String,
    poke: Arc<tokio::sync::Notify>,
    send: impl Fn(Arc<Directory>) -> bool,
) {
    let mut realm = store.sip_realm();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = poke.notified() => {}
        }
        let now_stamp = match store.extensions().change_stamp().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "directory: cannot read the change stamp");
                continue;
            }
        };
        let now_realm = store.sip_realm();
        if now_stamp == stamp && now_realm == realm {
            continue;
        }
        match Directory::load(&store).await {
            Ok(d) => {
                tracing::debug!(users = d.user_count(), realm = %d.realm, "directory reloaded");
                if !send(Arc::new(d)) {
                    return;
                }
                stamp = now_stamp;
                realm = now_realm;
            }
            Err(e) => tracing::warn!(error = %e, "directory: reload failed"),
        }
    }
}

/// The change stamp now (for the first snapshot).
pub(crate) async fn current_stamp(store: &Store) -> Result<String, store::StoreError> {
    store.extensions().change_stamp().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_matching_and_did_forms() {
        let t = TrustedTrunk { id: 1, name: "carrier".into(), nets: ["203.0.113.0/24", "198.51.100.7"].iter().filter_map(|s| parse_net(s)).collect() };
        let d = Directory::new(
            "r",
            vec![],
            vec![t],
            vec![Did { number: "+61290000000".into(), trunk_id: None, flow_id: Some(3) }],
        );
        assert_eq!(d.trunk_for("203.0.113.9".parse().unwrap()).map(|t| t.id), Some(1));
        assert_eq!(d.trunk_for("::ffff:198.51.100.7".parse().unwrap()).map(|t| t.id), Some(1));
        assert!(d.trunk_for("198.51.100.8".parse().unwrap()).is_none());
        assert_eq!(d.did("61290000000").and_then(|d| d.flow_id), Some(3));
        assert_eq!(d.did("+61290000000").and_then(|d| d.flow_id), Some(3));
        assert!(d.did("0290000000").is_none());
    }
}
