//! What the flow engine reads from storage, kept in step with it: the entity cache (every
//! entity a node can link, in the SDK's shape) and the nodes' persistent kv state.
//!
//! - [`load_entities`] fills the engine's [`EntityCache`] at start-up;
//!   [`refresh_entity`] brings one entity up to date after every committed change
//!   (`FlowService::entity_changed`, which the API's CRUD layer calls): drafts, validation
//!   and the editor see an edit at once, and so do calls for the kinds that stay live
//!   (extensions, inbound numbers). A published version runs with the entities it captured
//!   (`crate::versions`), which the cache does not change.
//! - [`sdk_entity`] is the one mapping from the data model's columns to the entity JSON a
//!   node receives (`sdk::entity`); the editor's unsaved values go through it too.
//! - [`StoreKv`] is the engine's [`KvStore`] over the `plugin_kv` table.

use std::sync::Arc;

use async_trait::async_trait;
use flow::entity::{Entity, EntityCache, EntityKind};
use flow::services::{KvError, KvStore};
use serde_json::{Map, Value};
use store::{Page, ResourceKind, Store, StoreError};

/// The flow engine's kind for a store entity kind (`None`: nodes never link it).
pub fn flow_kind(kind: ResourceKind) -> Option<EntityKind> {
    EntityKind::parse(kind.as_str())
}

/// The JSON a node receives for an entity, from the entity as the API shows it (its row, or
/// the unsaved values of a form: the data model's column names). Fields a node has no
/// business seeing (e-mail addresses, SIP usernames) are dropped by the SDK's types.
///
/// Where the data model and the node contract differ:
/// - ring group: `caller_id_value` is the number shown (mode `fixed`, when it is a number;
///   else the name shown) or the text put before the caller's name (mode `prepend`);
/// - IVR menu: the keys `i` and `t` (the seed's invalid/timeout targets) are not choices:
///   every menu has `invalid` and `timeout` outputs; a `greeting_file` that is a prompt id is
///   resolved to the prompt's name by [`resolve_prompts`];
/// - time switch: a rule's output id is its label (what the editor connects and what an
///   override's `dest_node` names); an override leaves by `dest_node`, or by an output of
///   its own when it names none;
/// - conference bridge: `pin_set` becomes `has_pin`.
pub fn sdk_entity(kind: EntityKind, id: i64, v: &Value) -> Result<Entity, EntityMapError> {
    let mut o: Map<String, Value> = v.as_object().cloned().ok_or(EntityMapError::NotAnObject(kind))?;
    o.insert("id".into(), id.into());
    // Absent and null mean the same to the API; the SDK's defaults fill in for absent.
    o.retain(|_, v| !v.is_null());
    match kind {
        EntityKind::RingGroup => {
            let value = o.remove("caller_id_value").and_then(|v| v.as_str().map(str::to_owned)).filter(|s| !s.trim().is_empty());
            match (o.get("caller_id_mode").and_then(Value::as_str), value) {
                (Some("fixed"), Some(v)) if is_phone_number(&v) => {
                    o.insert("caller_id_number".into(), v.into());
                }
                (Some("fixed"), Some(v)) => {
                    o.insert("caller_id_name".into(), v.into());
                }
                (Some("prepend"), Some(v)) => {
                    let sep = if v.ends_with(|c: char| c.is_whitespace() || c.is_ascii_punctuation()) { "" } else { ": " };
                    o.insert("caller_id_name".into(), format!("{v}{sep}").into());
                }
                _ => {}
            }
        }
        EntityKind::IvrMenu => {
            if let Some(Value::Object(opts)) = o.get_mut("options") {
                opts.retain(|k, _| k != "i" && k != "t");
            }
        }
        EntityKind::TimeSwitch => {
            if let Some(Value::Array(rules)) = o.get_mut("rules") {
                for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                    r.remove("dest_node");
                    if !r.contains_key("id")
                        && let Some(label) = r.get("label").cloned()
                    {
                        r.insert("id".into(), label);
                    }
                }
            }
            if let Some(Value::Array(overrides)) = o.get_mut("overrides") {
                for d in overrides.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(dest) = d.remove("dest_node").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                        d.insert("output".into(), dest);
                    }
                }
            }
        }
        EntityKind::ConferenceBridge => {
            let pin = o.remove("pin_set").and_then(|v| v.as_bool()).unwrap_or(false);
            o.insert("has_pin".into(), pin.into());
        }
        EntityKind::InboundNumber | EntityKind::Extension | EntityKind::VoicemailBox => {}
    }
    Entity::from_json(kind, &Value::Object(o).to_string()).map_err(|source| EntityMapError::Unreadable { kind, source })
}

/// Why a row could not become the entity nodes read ([`sdk_entity`]).
#[derive(Debug, thiserror::Error)]
pub enum EntityMapError {
    #[error("the {0} is not a JSON object")]
    NotAnObject(EntityKind),
    /// The mapped JSON does not have the SDK type's shape.
    #[error("the {kind} cannot be read by nodes: {source}")]
    Unreadable {
        kind: EntityKind,
        #[source]
        source: serde_json::Error,
    },
}

fn is_phone_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// An IVR menu's or a voicemail box's `greeting_file` may hold a prompt id (the prompt picker
/// writes ids): nodes play prompts by name, so an id of an existing prompt becomes its name.
pub async fn resolve_prompts(store: &Store, kind: EntityKind, v: &mut Value) -> Result<(), StoreError> {
    if !matches!(kind, EntityKind::IvrMenu | EntityKind::VoicemailBox) {
        return Ok(());
    }
    let Some(id) = v.get("greeting_file").and_then(Value::as_str).and_then(|s| s.parse::<i64>().ok()) else { return Ok(()) };
    if let Some(p) = store.prompts().get(id).await? {
        v["greeting_file"] = p.name.into();
    }
    Ok(())
}

/// One entity's row as the API shows it (the data model's column names), read from the
/// store (`None`: it does not exist).
pub async fn read_row(store: &Store, kind: EntityKind, id: i64) -> Result<Option<Value>, StoreError> {
    Ok(match kind {
        EntityKind::InboundNumber => to_value(store.inbound_numbers().get(id).await?),
        EntityKind::Extension => to_value(store.extensions().get(id).await?),
        EntityKind::VoicemailBox => to_value(store.voicemail_boxes().get(id).await?),
        EntityKind::RingGroup => to_value(store.ring_groups().get(id).await?),
        EntityKind::IvrMenu => to_value(store.ivr_menus().get(id).await?),
        EntityKind::TimeSwitch => to_value(store.time_switches().get(id).await?),
        EntityKind::ConferenceBridge => to_value(store.conference_bridges().get(id).await?),
    })
}

/// One entity as nodes see it, read from the store (`None`: it does not exist).
pub async fn read_entity(store: &Store, kind: EntityKind, id: i64) -> Result<Option<Entity>, StoreError> {
    let Some(row) = read_row(store, kind, id).await? else { return Ok(None) };
    node_entity(store, kind, id, row).await
}

/// The entity nodes see for a row (or a version's captured columns) of the data model:
/// prompt ids resolved to names, then [`sdk_entity`]. `None` (logged) when the mapping fails.
pub async fn node_entity(store: &Store, kind: EntityKind, id: i64, mut row: Value) -> Result<Option<Entity>, StoreError> {
    resolve_prompts(store, kind, &mut row).await?;
    match sdk_entity(kind, id, &row) {
        Ok(e) => Ok(Some(e)),
        Err(e) => {
            // The API validated the row; a mismatch is a bug in the mapping. The node sees
            // the entity as missing (its error path) rather than wrong data.
            tracing::error!(kind = %kind, id, error = %e, "entity not usable by nodes");
            Ok(None)
        }
    }
}

fn to_value<T: serde::Serialize>(row: Option<T>) -> Option<Value> {
    row.and_then(|r| serde_json::to_value(r).ok())
}

fn to_values<T: serde::Serialize>(rows: Vec<T>) -> Vec<Value> {
    rows.into_iter().filter_map(|r| serde_json::to_value(r).ok()).collect()
}

/// Every entity nodes can link, from the store, into `cache` (replacing what it held).
/// Returns how many were loaded.
pub async fn load_entities(store: &Store, cache: &EntityCache) -> Result<usize, StoreError> {
    let all = Page::all();
    let mut rows: Vec<(EntityKind, Value)> = Vec::new();
    let mut add = |k: EntityKind, v: Vec<Value>| rows.extend(v.into_iter().map(|r| (k, r)));
    add(EntityKind::InboundNumber, to_values(store.inbound_numbers().list(all).await?.items));
    add(EntityKind::Extension, to_values(store.extensions().list(all).await?.items));
    add(EntityKind::VoicemailBox, to_values(store.voicemail_boxes().list(all).await?.items));
    add(EntityKind::RingGroup, to_values(store.ring_groups().list(all).await?.items));
    add(EntityKind::IvrMenu, to_values(store.ivr_menus().list(all).await?.items));
    add(EntityKind::TimeSwitch, to_values(store.time_switches().list(all).await?.items));
    add(EntityKind::ConferenceBridge, to_values(store.conference_bridges().list(all).await?.items));
    let mut entities = Vec::with_capacity(rows.len());
    for (kind, mut row) in rows {
        let Some(id) = row.get("id").and_then(Value::as_i64) else { continue };
        resolve_prompts(store, kind, &mut row).await?;
        match sdk_entity(kind, id, &row) {
            Ok(e) => entities.push(e),
            Err(e) => tracing::error!(kind = %kind, id, error = %e, "entity not usable by nodes"),
        }
    }
    let n = entities.len();
    cache.replace_all(entities);
    Ok(n)
}

/// Brings one entity of the cache up to date with the store (after a create, update or
/// delete). Failing to read is logged: the next change or restart repairs it.
pub async fn refresh_entity(store: &Store, cache: &EntityCache, kind: ResourceKind, id: i64) {
    let Some(k) = flow_kind(kind) else { return };
    match read_entity(store, k, id).await {
        Ok(Some(e)) => cache.upsert(e),
        Ok(None) => cache.remove(k, id),
        Err(e) => tracing::error!(kind = %k, id, error = %e, "could not refresh an entity for the flow engine"),
    }
}

/// Per-node-type state that outlives a call, in the `plugin_kv` table (the namespace is
/// the node type id, so state survives a plugin upgrade).
#[derive(Clone)]
pub struct StoreKv {
    store: Store,
}

impl StoreKv {
    pub fn new(store: Store) -> Arc<StoreKv> {
        Arc::new(StoreKv { store })
    }
}

fn kv_err(e: StoreError) -> KvError {
    KvError::Failed(e.to_string())
}

fn parse_counter(v: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<i64>().ok()).ok_or(KvError::NotANumber)
}

#[async_trait]
impl KvStore for StoreKv {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store.plugin_kv().get(ns, key).await.map_err(kv_err)
    }
    async fn set(&self, ns: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.store.plugin_kv().set(ns, key, value).await.map_err(kv_err)
    }
    async fn delete(&self, ns: &str, key: &str) -> Result<(), KvError> {
        self.store.plugin_kv().delete(ns, key).await.map(|_| ()).map_err(kv_err)
    }
    async fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        // One write transaction (BEGIN IMMEDIATE): two calls incrementing at once each get
        // their own number.
        let mut tx = self.store.begin().await.map_err(kv_err)?;
        let current = match tx.plugin_kv().get(ns, key).await.map_err(kv_err)? {
            None => 0,
            Some(v) => parse_counter(&v)?,
        };
        let next = current.wrapping_add(delta);
        tx.plugin_kv().set(ns, key, next.to_string().as_bytes()).await.map_err(kv_err)?;
        tx.commit().await.map_err(kv_err)?;
        Ok(next)
    }
    async fn count(&self, ns: &str) -> Result<u64, KvError> {
        self.store.plugin_kv().keys(ns).await.map(|k| k.len() as u64).map_err(kv_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_map_onto_the_node_contract() {
        let g = sdk_entity(
            EntityKind::RingGroup,
            4,
            &json!({"name": "Sales", "strategy": "round_robin", "ring_timeout": 20, "members": [1, 2], "caller_id_mode": "prepend", "caller_id_value": "Sales", "created_at": "x"}),
        )
        .unwrap();
        let Entity::RingGroup(g) = g else { panic!() };
        assert_eq!((g.id, g.members.clone(), g.caller_id_name.as_deref()), (4, vec![1, 2], Some("Sales: ")));
        let Entity::RingGroup(f) =
            sdk_entity(EntityKind::RingGroup, 4, &json!({"name": "S", "members": [], "caller_id_mode": "fixed", "caller_id_value": "+61299990000"})).unwrap()
        else {
            panic!()
        };
        assert_eq!((f.caller_id_number.as_deref(), f.caller_id_name), (Some("+61299990000"), None));

        let Entity::IvrMenu(m) =
            sdk_entity(EntityKind::IvrMenu, 1, &json!({"name": "M", "options": {"1": "Sales", "i": "node_9", "t": "node_8"}, "greeting_file": null})).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.options.keys().collect::<Vec<_>>(), ["1"]);

        let Entity::TimeSwitch(t) = sdk_entity(
            EntityKind::TimeSwitch,
            2,
            &json!({"name": "Hours", "timezone": "UTC", "rules": [{"label": "Open", "days": ["mon"], "start": "09:00", "end": "17:00", "dest_node": "node_3"}],
                    "overrides": [{"label": "Xmas", "date": "2026-12-25", "dest_node": "default"}, {"label": "Party", "date": "2026-12-24"}], "default_dest": null}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(t.rules[0].id.as_deref(), Some("Open"));
        assert_eq!(t.overrides[0].output.as_deref(), Some("default"));
        assert_eq!(t.overrides[1].output, None);

        let Entity::ConferenceBridge(c) = sdk_entity(EntityKind::ConferenceBridge, 3, &json!({"name": "Board", "max_members": 5, "pin_set": true})).unwrap()
        else {
            panic!()
        };
        assert!(c.has_pin);
        assert!(matches!(sdk_entity(EntityKind::Extension, 1, &json!([1])), Err(EntityMapError::NotAnObject(EntityKind::Extension))));
        let e = sdk_entity(EntityKind::Extension, 1, &json!({"extension": 7})).unwrap_err();
        assert!(matches!(e, EntityMapError::Unreadable { kind: EntityKind::Extension, .. }), "{e:?}");
        assert!(e.to_string().starts_with("the extension cannot be read by nodes: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
