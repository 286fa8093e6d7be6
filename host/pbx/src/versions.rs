//! What a published flow version captures of its entities, and how a flow's draft stands
//! against its live version.
//!
//! A call experiences exactly what was published: the graph *and* the configuration of every
//! entity its nodes link that is flow configuration — IVR menus, ring groups, time switches
//! (with their holidays), voicemail boxes and conference bridges ([`flow::entity::is_versioned`]).
//! Publishing captures each of those entities' columns ([`capture`]) into
//! `flow_version_entities`, in the transaction that writes the version ([`record`]); the
//! engine runs the version with them ([`pin`], `flow::entity::Pinned`). Extensions (people,
//! phones, passwords, do-not-disturb, follow-me) and inbound numbers are not captured: they
//! stay live.
//!
//! An entity's row is therefore its draft, shared by every flow linking it: editing it changes
//! the drafts of those flows, never what their live versions do. [`draft_status`] says whether
//! a flow's draft (its graph, positions aside, or a linked entity) differs from its live
//! version, [`flows_using`] which flows an entity's edit affects, [`entity_changes`] what
//! changed field by field between two versions (or a version and the draft), and
//! [`reset_draft`] puts the live version back into the draft: its graph and the captured
//! configuration of its entities.
//!
//! Versions published before entities were captured have none recorded: they are loaded
//! with the entities as they are at that moment ([`of_version`] fills them in), and the live
//! version of each flow records them at start-up, so from then on an edit no longer reaches
//! it.

use std::collections::{BTreeMap, BTreeSet};

use flow::entity::{is_versioned, EntityKind, Pinned};
use flow::graph::Graph;
use serde::Serialize;
use serde_json::{json, Map, Value};
use store::{
    Actor, CallFlow, ConferenceBridgeFields, FlowVersion, IvrMenuFields, Page, ResourceKind, RingGroupFields, SecretUpdate, Store, TimeSwitchFields, Tx,
    VoicemailBoxFields,
};

use crate::error::{Error, Problems, Result};
use crate::flow_sync;
use crate::flows::VersionSel;

/// Columns of a row that are not configuration: its identity and its timestamps.
const NOT_CONFIG: [&str; 3] = ["id", "created_at", "updated_at"];

/// An entity's configuration: its columns as the API shows them (secrets are never there;
/// `pin_set` says whether a PIN is stored), without id and timestamps. What a version
/// captured, or what the draft has now.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityConfig {
    pub kind: EntityKind,
    pub id: i64,
    pub data: Value,
}

impl EntityConfig {
    /// The configuration in a row of the data model.
    pub fn from_row(kind: EntityKind, id: i64, mut row: Value) -> EntityConfig {
        if let Some(o) = row.as_object_mut() {
            for k in NOT_CONFIG {
                o.remove(k);
            }
        }
        EntityConfig { kind, id, data: row }
    }

    /// Its name (empty when it has none).
    pub fn name(&self) -> &str {
        self.data.get("name").and_then(Value::as_str).unwrap_or("")
    }

    fn reference(&self) -> EntityRef {
        EntityRef { entity_type: self.kind.as_str().to_owned(), entity_id: self.id, name: self.name().to_owned() }
    }
}

/// An entity named for a person: its kind, id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntityRef {
    pub entity_type: String,
    pub entity_id: i64,
    pub name: String,
}

/// What the kind is called in a sentence ("IVR menu").
pub fn kind_label(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::InboundNumber => "inbound number",
        EntityKind::Extension => "extension",
        EntityKind::VoicemailBox => "voicemail box",
        EntityKind::RingGroup => "ring group",
        EntityKind::IvrMenu => "IVR menu",
        EntityKind::TimeSwitch => "time switch",
        EntityKind::ConferenceBridge => "conference bridge",
    }
}

/// The versioned entities a graph's nodes link, once each, in order.
pub fn linked_entities(graph: &Graph) -> Vec<(EntityKind, i64)> {
    let set: BTreeSet<(EntityKind, i64)> = graph
        .nodes
        .iter()
        .filter_map(|n| {
            let kind = EntityKind::parse(n.data.entity_type.as_deref()?)?;
            let id = n.data.entity_id?;
            is_versioned(kind).then_some((kind, id))
        })
        .collect();
    set.into_iter().collect()
}

async fn current(store: &Store, kind: EntityKind, id: i64) -> Result<Option<EntityConfig>> {
    Ok(flow_sync::read_row(store, kind, id).await?.map(|row| EntityConfig::from_row(kind, id, row)))
}

/// The configuration, now, of every versioned entity `graph` links (one that does not exist
/// is left out: validation reports the node).
pub async fn capture(store: &Store, graph: &Graph) -> Result<Vec<EntityConfig>> {
    let mut out = Vec::new();
    for (kind, id) in linked_entities(graph) {
        if let Some(c) = current(store, kind, id).await? {
            out.push(c);
        }
    }
    Ok(out)
}

/// The entities nodes see for these configurations (the engine's pins of a version).
pub async fn pin(store: &Store, configs: &[EntityConfig]) -> Result<Pinned> {
    let mut entities = Vec::with_capacity(configs.len());
    for c in configs {
        if let Some(e) = flow_sync::node_entity(store, c.kind, c.id, c.data.clone()).await? {
            entities.push(e);
        }
    }
    Ok(Pinned::new(entities))
}

/// Records what a version captured, in the transaction that writes it.
pub async fn record(tx: &mut Tx, flow_id: i64, version: i64, configs: &[EntityConfig]) -> Result<()> {
    for c in configs {
        tx.flow_version_entities().insert(flow_id, version, c.kind.as_str(), c.id, &c.data).await?;
    }
    Ok(())
}

/// What a published version runs with.
#[derive(Debug, Clone, Default)]
pub struct VersionEntities {
    /// Every versioned entity it links, as captured (or filled in).
    pub configs: Vec<EntityConfig>,
    /// Those it links but never captured (published before versions captured entities),
    /// filled in from the entities as they are now.
    pub filled: Vec<EntityConfig>,
}

/// What a published version runs with: what it captured, and for a version published before
/// entities were captured, the entities as they are now.
pub async fn of_version(store: &Store, row: &FlowVersion) -> Result<VersionEntities> {
    let mut map: BTreeMap<(EntityKind, i64), EntityConfig> = BTreeMap::new();
    for e in store.flow_version_entities().of_version(row.flow_id, row.version).await? {
        match EntityKind::parse(&e.entity_type) {
            Some(kind) => {
                map.insert((kind, e.entity_id), EntityConfig { kind, id: e.entity_id, data: e.data });
            }
            None => tracing::warn!(flow = row.flow_id, version = row.version, entity_type = %e.entity_type, "a captured entity of an unknown kind is ignored"),
        }
    }
    let mut filled = Vec::new();
    if let Ok(graph) = Graph::from_value(row.flow_data.clone()) {
        for (kind, id) in linked_entities(&graph) {
            if map.contains_key(&(kind, id)) {
                continue;
            }
            if let Some(c) = current(store, kind, id).await? {
                filled.push(c.clone());
                map.insert((kind, id), c);
            }
        }
    }
    Ok(VersionEntities { configs: map.into_values().collect(), filled })
}

/// The versioned entities of a version (captured) or of the draft (as they are now).
pub async fn entities_at(store: &Store, flow_id: i64, sel: VersionSel) -> Result<Vec<EntityConfig>> {
    match sel {
        VersionSel::Draft => {
            let flow = store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
            match Graph::from_value(flow.flow_data.clone()) {
                Ok(g) => capture(store, &g).await,
                Err(_) => Ok(Vec::new()),
            }
        }
        VersionSel::Live => {
            let v = store.flow_versions().latest(flow_id).await?.ok_or_else(|| Error::field("version", "the flow has no published version"))?;
            Ok(of_version(store, &v).await?.configs)
        }
        VersionSel::Number(n) => {
            let v = store.flow_versions().get(flow_id, n).await?.ok_or(Error::NotFound)?;
            Ok(of_version(store, &v).await?.configs)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The draft against the live version

/// How a flow's draft stands against its live version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DraftStatus {
    /// The live version (`None`: never published).
    pub live_version: Option<i64>,
    /// Whether publishing the draft would change what calls get: its graph (node positions
    /// aside) or the configuration of an entity it links differs from the live version's.
    /// `false` for a flow never published.
    pub differs_from_live: bool,
    /// Whether the graph differs (nodes, edges, labels, settings; not positions).
    pub graph_changed: bool,
    /// Entities the draft links whose configuration is no longer what the live version
    /// captured (edited since, from the canvas or their page).
    pub entities_changed: Vec<EntityRef>,
}

/// Whether two graphs route calls differently (or name things differently): everything
/// but node positions and the canvas viewport.
pub fn graphs_differ(a: &Graph, b: &Graph) -> bool {
    let d = flow::diff::diff(a, b);
    !(d.nodes_added.is_empty()
        && d.nodes_removed.is_empty()
        && d.nodes_changed.iter().all(|c| c.fields == ["position"])
        && d.edges_added.is_empty()
        && d.edges_removed.is_empty()
        && d.edges_changed.is_empty()
        && !d.settings_changed)
}

/// How `flow`'s draft stands against its live version.
pub async fn draft_status(store: &Store, flow: &CallFlow) -> Result<DraftStatus> {
    let Some(live) = store.flow_versions().latest(flow.id).await? else { return Ok(DraftStatus::default()) };
    let draft = Graph::from_value(flow.flow_data.clone()).ok();
    let graph_changed = match (Graph::from_value(live.flow_data.clone()).ok(), &draft) {
        (Some(a), Some(b)) => graphs_differ(&a, b),
        _ => live.flow_data != flow.flow_data,
    };
    let linked: BTreeSet<(EntityKind, i64)> = draft.as_ref().map(linked_entities).unwrap_or_default().into_iter().collect();
    let mut entities_changed = Vec::new();
    for captured in of_version(store, &live).await?.configs {
        if !linked.contains(&(captured.kind, captured.id)) {
            continue;
        }
        if let Some(now) = current(store, captured.kind, captured.id).await?
            && now.data != captured.data
        {
            entities_changed.push(now.reference());
        }
    }
    Ok(DraftStatus { live_version: Some(live.version), differs_from_live: graph_changed || !entities_changed.is_empty(), graph_changed, entities_changed })
}

/// A flow that links an entity, and what an edit of the entity means for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowUse {
    pub flow_id: i64,
    pub name: String,
    /// The draft links it.
    pub in_draft: bool,
    /// The live version, when it links it.
    pub live_version: Option<i64>,
    /// The entity's configuration is no longer what the live version captured: calls do
    /// not get the edit until the flow is published.
    pub entity_changed: bool,
    /// The flow's draft differs from its live version (this entity or anything else).
    pub needs_publish: bool,
}

/// Every flow whose draft or live version links the entity, by name.
pub async fn flows_using(store: &Store, kind: EntityKind, id: i64) -> Result<Vec<FlowUse>> {
    let links = |v: &Value| {
        Graph::from_value(v.clone()).is_ok_and(|g| g.nodes.iter().any(|n| n.data.entity_id == Some(id) && n.data.entity_type.as_deref() == Some(kind.as_str())))
    };
    let mut out = Vec::new();
    for flow in store.call_flows().list(Page::all()).await?.items {
        let in_draft = links(&flow.flow_data);
        let live = store.flow_versions().latest(flow.id).await?;
        let live_version = live.as_ref().filter(|v| links(&v.flow_data)).map(|v| v.version);
        if !in_draft && live_version.is_none() {
            continue;
        }
        let status = draft_status(store, &flow).await?;
        let entity_changed = status.entities_changed.iter().any(|e| e.entity_type == kind.as_str() && e.entity_id == id);
        out.push(FlowUse { flow_id: flow.id, name: flow.fields.name.clone(), in_draft, live_version, entity_changed, needs_publish: status.differs_from_live });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// What changed between two versions

/// One field's value before and after (absent: the field, or a key of it, was not there).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// The column (`timeout`), or a key inside a JSON column (`options.3`).
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// How an entity differs between two sides of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Linked only by the newer side.
    Added,
    /// Linked only by the older side.
    Removed,
    /// Linked by both, configured differently.
    Changed,
}

/// An entity's change between two sides of a diff, field by field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityChange {
    pub entity_type: String,
    pub entity_id: i64,
    /// Its name on the newer side (the older one's when removed).
    pub name: String,
    pub change: ChangeKind,
    /// For a change: every field that differs, with both values.
    pub fields: Vec<FieldChange>,
}

fn field_changes(a: &Value, b: &Value) -> Vec<FieldChange> {
    let empty = Map::new();
    let (ma, mb) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (va, vb) = (ma.get(k), mb.get(k));
        if va == vb {
            continue;
        }
        match (va, vb) {
            // a map column (an IVR menu's options): key by key
            (Some(Value::Object(oa)), Some(Value::Object(ob))) => {
                let sub: BTreeSet<&String> = oa.keys().chain(ob.keys()).collect();
                out.extend(sub.into_iter().filter(|s| oa.get(*s) != ob.get(*s)).map(|s| FieldChange {
                    field: format!("{k}.{s}"),
                    before: oa.get(s).cloned(),
                    after: ob.get(s).cloned(),
                }));
            }
            _ => out.push(FieldChange { field: k.clone(), before: va.cloned(), after: vb.cloned() }),
        }
    }
    out
}

/// The entity changes from side `a` to side `b`, by kind and id.
pub fn entity_changes(a: &[EntityConfig], b: &[EntityConfig]) -> Vec<EntityChange> {
    let ma: BTreeMap<(EntityKind, i64), &EntityConfig> = a.iter().map(|c| ((c.kind, c.id), c)).collect();
    let mb: BTreeMap<(EntityKind, i64), &EntityConfig> = b.iter().map(|c| ((c.kind, c.id), c)).collect();
    let keys: BTreeSet<&(EntityKind, i64)> = ma.keys().chain(mb.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let change =
            |c: &EntityConfig, change, fields| EntityChange { entity_type: c.kind.as_str().into(), entity_id: c.id, name: c.name().into(), change, fields };
        match (ma.get(k), mb.get(k)) {
            (Some(x), Some(y)) => {
                let fields = field_changes(&x.data, &y.data);
                if !fields.is_empty() {
                    out.push(change(y, ChangeKind::Changed, fields));
                }
            }
            (None, Some(y)) => out.push(change(y, ChangeKind::Added, Vec::new())),
            (Some(x), None) => out.push(change(x, ChangeKind::Removed, Vec::new())),
            (None, None) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reset the draft to the live version

/// What [`reset_draft`] did.
#[derive(Debug, Clone)]
pub struct Reset {
    /// The flow with its draft reset.
    pub flow: CallFlow,
    /// The version the draft now equals.
    pub version: i64,
    /// Entities whose rows were put back to what the live version captured (their other
    /// flows' drafts changed with them).
    pub restored: Vec<EntityRef>,
}

/// Puts the live version back into the flow's draft: its graph (the draft's canvas viewport
/// kept) and, for each entity it captured whose row has been edited since, the captured
/// configuration (PINs untouched: they are credentials). Refused, with nothing changed, when
/// the flow was never published or a captured entity can no longer be restored as it was (a
/// member extension or a number since deleted or taken). The caller tells the engine about
/// the restored entities.
pub async fn reset_draft(store: &Store, flow_id: i64, actor: &Actor) -> Result<Reset> {
    let flow = store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
    let live = store
        .flow_versions()
        .latest(flow_id)
        .await?
        .ok_or_else(|| Error::field("version", "the flow was never published: there is no live version to reset to"))?;
    let captured = of_version(store, &live).await?.configs;
    let mut stale = Vec::new();
    let mut problems = Problems::new();
    for c in captured {
        match current(store, c.kind, c.id).await? {
            None => problems.add("entities", format!("the {} \"{}\" was deleted after version {} was published", kind_label(c.kind), c.name(), live.version)),
            Some(now) if now.data != c.data => stale.push((c, now)),
            Some(_) => {}
        }
    }
    problems.finish()?;

    let mut graph = live.flow_data.clone();
    if let (Some(g), Some(vp)) = (graph.as_object_mut(), flow.flow_data.get("viewport")) {
        g.insert("viewport".into(), vp.clone());
    }
    let mut tx = store.begin().await?;
    let mut restored = Vec::new();
    for (c, now) in &stale {
        restore(&mut tx, c, live.version).await?;
        let after = flow_sync_row(&mut tx, c).await?;
        let id = c.id.to_string();
        tx.audit(actor, "update", c.kind.as_str(), Some(&id), Some(&now.data), Some(&after)).await?;
        restored.push(c.reference());
    }
    let fields = store::CallFlowFields { name: flow.fields.name.clone(), flow_data: graph };
    let updated = tx.call_flows().update(flow_id, &fields).await?;
    let after = json!({"reset_to_version": live.version, "entities_restored": restored.iter().map(|r| json!({"entity_type": r.entity_type, "entity_id": r.entity_id})).collect::<Vec<_>>()});
    tx.audit(
        actor,
        "reset_draft",
        ResourceKind::CallFlow.as_str(),
        Some(&flow_id.to_string()),
        Some(&json!({"flow_data": flow.fields.flow_data})),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Reset { flow: updated, version: live.version, restored })
}

/// The row after a restore, for the audit.
async fn flow_sync_row(tx: &mut Tx, c: &EntityConfig) -> Result<Value> {
    let v = match c.kind {
        EntityKind::IvrMenu => serde_json::to_value(tx.ivr_menus().get(c.id).await?),
        EntityKind::RingGroup => serde_json::to_value(tx.ring_groups().get(c.id).await?),
        EntityKind::TimeSwitch => serde_json::to_value(tx.time_switches().get(c.id).await?),
        EntityKind::VoicemailBox => serde_json::to_value(tx.voicemail_boxes().get(c.id).await?),
        EntityKind::ConferenceBridge => serde_json::to_value(tx.conference_bridges().get(c.id).await?),
        EntityKind::Extension | EntityKind::InboundNumber => Ok(Value::Null),
    };
    Ok(v.unwrap_or(Value::Null))
}

fn fields<T: serde::de::DeserializeOwned>(c: &EntityConfig) -> Result<T> {
    serde_json::from_value(c.data.clone())
        .map_err(|e| Error::Internal(format!("the {} {} captured by a version cannot be read back: {e}", kind_label(c.kind), c.id)))
}

/// A number the restored entity had must not belong to something else now (the dial plan
/// is shared by extensions, mailboxes and conference bridges).
async fn check_number(tx: &mut Tx, me: (ResourceKind, i64), what: &str, version: i64, number: &Option<String>, problems: &mut Problems) -> Result<()> {
    if let Some(n) = number
        && let Some(owner) = tx.references().number_owners(n, Some(me)).await?.first()
    {
        problems.add(
            "entities",
            format!("{what} had number {n} in version {version}, which the {} \"{}\" now uses", owner.entity_type.replace('_', " "), owner.name),
        );
    }
    Ok(())
}

/// Writes a captured configuration back to its row, after checking what it refers to still
/// allows it.
async fn restore(tx: &mut Tx, c: &EntityConfig, version: i64) -> Result<()> {
    let mut problems = Problems::new();
    let what = format!("the {} \"{}\"", kind_label(c.kind), c.name());
    let resource = ResourceKind::parse(c.kind.as_str()).ok_or_else(|| Error::Internal(format!("{} is not a resource", c.kind)))?;
    match c.kind {
        EntityKind::IvrMenu => {
            tx.ivr_menus().update(c.id, &fields::<IvrMenuFields>(c)?).await?;
        }
        EntityKind::TimeSwitch => {
            tx.time_switches().update(c.id, &fields::<TimeSwitchFields>(c)?).await?;
        }
        EntityKind::RingGroup => {
            let f = fields::<RingGroupFields>(c)?;
            for m in &f.members {
                if !tx.references().exists(ResourceKind::Extension, *m).await? {
                    problems.add("entities", format!("{what} rang extension {m} in version {version}, which has been deleted"));
                }
            }
            problems.finish()?;
            tx.ring_groups().update(c.id, &f).await?;
        }
        EntityKind::VoicemailBox => {
            let f = fields::<VoicemailBoxFields>(c)?;
            if let Some(x) = f.notify_extension_id
                && !tx.references().exists(ResourceKind::Extension, x).await?
            {
                problems.add("entities", format!("{what} notified extension {x} in version {version}, which has been deleted"));
            }
            check_number(tx, (resource, c.id), &what, version, &f.mailbox_number, &mut problems).await?;
            problems.finish()?;
            tx.voicemail_boxes().update(c.id, &f, SecretUpdate::Keep).await?;
        }
        EntityKind::ConferenceBridge => {
            let f = fields::<ConferenceBridgeFields>(c)?;
            check_number(tx, (resource, c.id), &what, version, &f.extension, &mut problems).await?;
            problems.finish()?;
            tx.conference_bridges().update(c.id, &f, SecretUpdate::Keep).await?;
        }
        EntityKind::Extension | EntityKind::InboundNumber => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: EntityKind, id: i64, data: Value) -> EntityConfig {
        EntityConfig { kind, id, data }
    }

    #[test]
    fn only_flow_configuration_is_linked_for_capture() {
        let g = Graph::from_value(json!({"nodes": [
            {"id": "a", "type": "ivr_menu", "data": {"entity_type": "ivr_menu", "entity_id": 3}},
            {"id": "b", "type": "ivr_menu", "data": {"entity_type": "ivr_menu", "entity_id": 3}},
            {"id": "c", "type": "extension", "data": {"entity_type": "extension", "entity_id": 1}},
            {"id": "d", "type": "inbound_number", "data": {"entity_type": "inbound_number", "entity_id": 1}},
            {"id": "e", "type": "ring_group", "data": {"entity_type": "ring_group", "entity_id": 2}},
            {"id": "f", "type": "voicemail", "data": {"entity_type": "voicemail_box"}}
        ]}))
        .unwrap();
        assert_eq!(linked_entities(&g), [(EntityKind::RingGroup, 2), (EntityKind::IvrMenu, 3)]);
        let c = EntityConfig::from_row(EntityKind::IvrMenu, 3, json!({"id": 3, "name": "M", "created_at": "x", "updated_at": "y", "timeout": 5}));
        assert_eq!(c.data, json!({"name": "M", "timeout": 5}));
    }

    #[test]
    fn changes_name_each_field_before_and_after() {
        let a = [
            cfg(EntityKind::IvrMenu, 3, json!({"name": "Main", "timeout": 10, "options": {"1": "A", "2": "B"}})),
            cfg(EntityKind::TimeSwitch, 1, json!({"name": "Hours", "rules": []})),
            cfg(EntityKind::RingGroup, 2, json!({"name": "Sales", "members": [1]})),
        ];
        let b = [
            cfg(EntityKind::IvrMenu, 3, json!({"name": "Main", "timeout": 5, "options": {"1": "A", "3": "C"}})),
            cfg(EntityKind::TimeSwitch, 1, json!({"name": "Hours", "rules": []})),
            cfg(EntityKind::VoicemailBox, 4, json!({"name": "Sales box"})),
        ];
        let d = entity_changes(&a, &b);
        let summary: Vec<(&str, i64, ChangeKind)> = d.iter().map(|c| (c.entity_type.as_str(), c.entity_id, c.change)).collect();
        assert_eq!(summary, [("voicemail_box", 4, ChangeKind::Added), ("ring_group", 2, ChangeKind::Removed), ("ivr_menu", 3, ChangeKind::Changed)]);
        let menu = &d[2];
        assert_eq!(menu.name, "Main");
        let f: Vec<(&str, Option<&Value>, Option<&Value>)> = menu.fields.iter().map(|f| (f.field.as_str(), f.before.as_ref(), f.after.as_ref())).collect();
        assert_eq!(f, [("options.2", Some(&json!("B")), None), ("options.3", None, Some(&json!("C"))), ("timeout", Some(&json!(10)), Some(&json!(5)))]);
        assert!(entity_changes(&a, &a).is_empty());
    }

    #[test]
    fn positions_alone_do_not_make_a_draft_differ() {
        let g = |x: i64, label: &str| {
            Graph::from_value(json!({"nodes": [{"id": "n", "type": "hangup", "position": {"x": x, "y": 0}, "data": {"label": label}}], "viewport": {"x": x}}))
                .unwrap()
        };
        assert!(!graphs_differ(&g(0, "Bye"), &g(50, "Bye")));
        assert!(graphs_differ(&g(0, "Bye"), &g(0, "Goodbye")));
    }
}
