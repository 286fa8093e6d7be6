//! The entity cache: the current data of every entity a node can link, in memory, so a node
//! run never waits on storage. `pbx` (`flow_sync.rs`) fills it from the store at start-up
//! ([`EntityCache::replace_all`]) and after every change ([`EntityCache::upsert`],
//! [`EntityCache::remove`]); drafts, validation and simulated drafts read it, so they see
//! edits at once.
//!
//! A published version carries [`Pinned`] entities: the configuration of the menus, ring
//! groups, time switches, voicemail boxes and conference bridges it was published with. Its
//! calls see those ([`Pinned::lookup`]), and only extensions and inbound numbers live.
//!
//! The entity types are the SDK's ([`sdk::entity`]): what the host serialises is exactly what
//! a node deserialises.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use sdk::entity::*;

/// An entity as cached: the typed value, its JSON for nodes, and a revision that changes on
/// every update (the engine keys its per-node output cache on it).
#[derive(Debug, Clone)]
pub struct Cached {
    pub entity: Arc<Entity>,
    pub json: Arc<str>,
    /// Unique across all caches of the process and all updates.
    pub rev: u64,
}

/// One consistent view of every entity.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    map: HashMap<(EntityKind, i64), Cached>,
}

impl Snapshot {
    /// An entity.
    pub fn get(&self, kind: EntityKind, id: i64) -> Option<&Cached> {
        self.map.get(&(kind, id))
    }

    /// Every entity of a kind, in id order.
    pub fn all(&self, kind: EntityKind) -> Vec<&Cached> {
        let mut v: Vec<&Cached> = self.map.iter().filter(|((k, _), _)| *k == kind).map(|(_, c)| c).collect();
        v.sort_by_key(|c| c.entity.id());
        v
    }

    /// The extension with this number.
    pub fn extension_by_number(&self, number: &str) -> Option<&Extension> {
        self.map.values().find_map(|c| match &*c.entity {
            Entity::Extension(x) if x.extension == number => Some(x),
            _ => None,
        })
    }

    /// The enabled inbound number for a dialled number (exact match).
    pub fn inbound_number(&self, number: &str) -> Option<&InboundNumber> {
        self.map.values().find_map(|c| match &*c.entity {
            Entity::InboundNumber(n) if n.enabled && n.number == number => Some(n),
            _ => None,
        })
    }

    /// Whether an inbound number maps to this entry node of this flow.
    pub fn entry_mapped(&self, flow_id: Option<i64>, node_id: &str) -> bool {
        self.map.values().any(|c| match &*c.entity {
            Entity::InboundNumber(n) => n.flow_entry_node.as_deref() == Some(node_id) && (flow_id.is_none() || n.flow_id == flow_id),
            _ => false,
        })
    }
}

/// Global revision counter: revisions never repeat, even across caches.
static REV: AtomicU64 = AtomicU64::new(1);

fn cached(e: Entity) -> Cached {
    let json: Arc<str> = e.to_json().into();
    Cached { entity: Arc::new(e), json, rev: REV.fetch_add(1, Ordering::Relaxed) }
}

/// The cache. Reads are lock-free snapshots; writes copy the (small) map.
#[derive(Debug, Default)]
pub struct EntityCache {
    snap: ArcSwap<Snapshot>,
    write: Mutex<()>,
}

impl EntityCache {
    /// An empty cache.
    pub fn new() -> EntityCache {
        EntityCache::default()
    }

    /// A cache holding these entities.
    pub fn with(entities: impl IntoIterator<Item = Entity>) -> EntityCache {
        let c = EntityCache::new();
        c.replace_all(entities);
        c
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        // A poisoned lock only means another writer panicked mid-copy; the snapshot it would
        // have stored was never published, so carrying on is safe.
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&self.snap.load());
        f(&mut next);
        self.snap.store(Arc::new(next));
    }

    /// Adds or replaces one entity.
    pub fn upsert(&self, e: Entity) {
        self.update(|s| {
            s.map.insert((e.kind(), e.id()), cached(e));
        });
    }

    /// Removes one entity.
    pub fn remove(&self, kind: EntityKind, id: i64) {
        self.update(|s| {
            s.map.remove(&(kind, id));
        });
    }

    /// Replaces everything (start-up, or a full refresh).
    pub fn replace_all(&self, entities: impl IntoIterator<Item = Entity>) {
        let map = entities.into_iter().map(|e| ((e.kind(), e.id()), cached(e))).collect();
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.snap.store(Arc::new(Snapshot { map }));
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.load_full()
    }

    /// One entity now.
    pub fn get(&self, kind: EntityKind, id: i64) -> Option<Cached> {
        self.snap.load().get(kind, id).cloned()
    }

    /// A new cache with this one's entities plus (replacing) `extra`: what a simulation with
    /// scripted entities runs against, leaving the live cache untouched.
    pub fn overlay(&self, extra: impl IntoIterator<Item = Entity>) -> EntityCache {
        let mut snap = Snapshot::clone(&self.snap.load());
        for e in extra {
            snap.map.insert((e.kind(), e.id()), cached(e));
        }
        EntityCache { snap: ArcSwap::from_pointee(snap), write: Mutex::new(()) }
    }
}

/// Whether a published flow version captures this kind of entity (its configuration is flow
/// configuration: menus, ring groups, time switches, voicemail boxes, conference bridges) or
/// reads it live (extensions — people and phones — and inbound numbers).
pub fn is_versioned(kind: EntityKind) -> bool {
    !matches!(kind, EntityKind::Extension | EntityKind::InboundNumber)
}

/// The entities a published flow version runs with: what it captured when it was published
/// (or, for a version loaded again, what it had captured then). Immutable; the engine looks a
/// versioned entity up here before the live cache, so an edit reaches a flow's calls only
/// when the flow is published again.
#[derive(Debug, Default)]
pub struct Pinned {
    map: HashMap<(EntityKind, i64), Cached>,
}

impl Pinned {
    /// These entities, each with a revision of its own (kinds that are not versioned are
    /// left out: they stay live).
    pub fn new(entities: impl IntoIterator<Item = Entity>) -> Pinned {
        Pinned { map: entities.into_iter().filter(|e| is_versioned(e.kind())).map(|e| ((e.kind(), e.id()), cached(e))).collect() }
    }

    /// One pinned entity.
    pub fn get(&self, kind: EntityKind, id: i64) -> Option<&Cached> {
        self.map.get(&(kind, id))
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entity a flow run sees: `pinned`'s for a versioned kind it holds, else the live
    /// cache's.
    pub fn lookup(pinned: Option<&Pinned>, live: &EntityCache, kind: EntityKind, id: i64) -> Option<Cached> {
        match pinned.and_then(|p| p.get(kind, id)) {
            Some(c) => Some(c.clone()),
            None => live.get(kind, id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_entities_win_over_live_ones_and_extensions_are_never_pinned() {
        let menu = |opts: &str| Entity::from_json(EntityKind::IvrMenu, &format!(r#"{{"id": 3, "name": "M", "options": {opts}}}"#)).unwrap();
        let live = EntityCache::with([menu(r#"{"1": "A", "3": "B"}"#), ext(1, "101")]);
        let pinned = Pinned::new([menu(r#"{"1": "A"}"#), ext(1, "999")]);
        assert_eq!(pinned.len(), 1, "an extension is not flow configuration");
        let seen = Pinned::lookup(Some(&pinned), &live, EntityKind::IvrMenu, 3).unwrap();
        let Entity::IvrMenu(m) = &*seen.entity else { panic!() };
        assert_eq!(m.options.keys().collect::<Vec<_>>(), ["1"]);
        let Entity::IvrMenu(now) = &*Pinned::lookup(None, &live, EntityKind::IvrMenu, 3).unwrap().entity else { panic!() };
        assert_eq!(now.options.len(), 2, "without pins (a draft) the live entity");
        let x = Pinned::lookup(Some(&pinned), &live, EntityKind::Extension, 1).unwrap();
        assert!(x.json.contains("\"101\""), "extensions stay live");
        // the pinned revision stays put while the live entity changes
        live.upsert(menu(r#"{"2": "C"}"#));
        assert_eq!(Pinned::lookup(Some(&pinned), &live, EntityKind::IvrMenu, 3).unwrap().rev, seen.rev);
    }

    fn ext(id: i64, number: &str) -> Entity {
        Entity::Extension(Extension {
            id,
            extension: number.into(),
            name: format!("E{id}"),
            ring_timeout: 30,
            dnd: false,
            follow_me_enabled: false,
            follow_me_numbers: vec![],
            recording_mode: RecordingMode::Off,
        })
    }

    #[test]
    fn updates_show_at_once_with_a_new_revision_and_old_snapshots_stay_consistent() {
        let c = EntityCache::with([ext(1, "101")]);
        let before = c.snapshot();
        let r1 = c.get(EntityKind::Extension, 1).unwrap().rev;
        c.upsert(ext(1, "111"));
        let now = c.get(EntityKind::Extension, 1).unwrap();
        assert!(now.rev > r1);
        assert!(now.json.contains("\"111\""));
        assert_eq!(before.extension_by_number("101").map(|x| x.id), Some(1));
        assert_eq!(c.snapshot().extension_by_number("111").map(|x| x.id), Some(1));
        c.remove(EntityKind::Extension, 1);
        assert!(c.get(EntityKind::Extension, 1).is_none());
    }

    #[test]
    fn an_overlay_leaves_the_live_cache_alone() {
        let live = EntityCache::with([ext(1, "101")]);
        let sim = live.overlay([ext(1, "999"), ext(2, "102")]);
        assert_eq!(live.snapshot().extension_by_number("999"), None);
        assert!(live.get(EntityKind::Extension, 2).is_none());
        assert_eq!(sim.snapshot().extension_by_number("999").map(|x| x.id), Some(1));
        assert_ne!(sim.get(EntityKind::Extension, 1).unwrap().rev, live.get(EntityKind::Extension, 1).unwrap().rev);
    }

    #[test]
    fn inbound_numbers_map_entries() {
        let c = EntityCache::with([Entity::InboundNumber(InboundNumber {
            id: 1,
            number: "+61299990000".into(),
            name: None,
            flow_id: Some(4),
            flow_entry_node: Some("node_1".into()),
            enabled: true,
        })]);
        let s = c.snapshot();
        assert!(s.entry_mapped(Some(4), "node_1"));
        assert!(!s.entry_mapped(Some(5), "node_1"));
        assert!(!s.entry_mapped(Some(4), "node_2"));
        assert_eq!(s.inbound_number("+61299990000").and_then(|n| n.flow_id), Some(4));
    }
}
