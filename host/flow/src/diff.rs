//! Differences between two flow versions (`GET /api/v1/flows/:id/versions/:a/diff/:b`):
//! nodes, edges and configuration added, removed and changed.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::graph::{Graph, GraphEdge, GraphNode};

/// A node in both versions that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeChange {
    pub id: String,
    /// Which of `type`, `label`, `entity`, `config`, `position` changed.
    pub fields: Vec<&'static str>,
    /// Config keys (top level) added, removed or changed, with old and new values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigChange>,
}

/// One config key's change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// An edge in both versions that differs (ends, output or label).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeChange {
    pub id: String,
    pub old: GraphEdge,
    pub new: GraphEdge,
}

/// What changed from `a` to `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct GraphDiff {
    pub nodes_added: Vec<GraphNode>,
    pub nodes_removed: Vec<GraphNode>,
    pub nodes_changed: Vec<NodeChange>,
    pub edges_added: Vec<GraphEdge>,
    pub edges_removed: Vec<GraphEdge>,
    pub edges_changed: Vec<EdgeChange>,
    /// Whether the flow settings (fallback) changed.
    pub settings_changed: bool,
}

impl GraphDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == GraphDiff::default()
    }
}

fn config_changes(a: &Value, b: &Value) -> Vec<ConfigChange> {
    let empty = serde_json::Map::new();
    let (ma, mb) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    if a.as_object().is_none() || b.as_object().is_none() {
        return if a == b { vec![] } else { vec![ConfigChange { key: String::new(), old: Some(a.clone()), new: Some(b.clone()) }] };
    }
    let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| ma.get(*k) != mb.get(*k)).map(|k| ConfigChange { key: k.clone(), old: ma.get(k).cloned(), new: mb.get(k).cloned() }).collect()
}

/// The differences from `a` to `b`, nodes and edges matched by id, in id order.
pub fn diff(a: &Graph, b: &Graph) -> GraphDiff {
    let na: BTreeMap<&str, &GraphNode> = a.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let nb: BTreeMap<&str, &GraphNode> = b.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut d = GraphDiff::default();
    for (id, n) in &nb {
        match na.get(id) {
            None => d.nodes_added.push((*n).clone()),
            Some(old) => {
                let mut fields = Vec::new();
                if old.node_type != n.node_type {
                    fields.push("type");
                }
                if old.data.label != n.data.label {
                    fields.push("label");
                }
                if (old.data.entity_id, &old.data.entity_type) != (n.data.entity_id, &n.data.entity_type) {
                    fields.push("entity");
                }
                let config = config_changes(&old.data.config, &n.data.config);
                if !config.is_empty() {
                    fields.push("config");
                }
                if old.position != n.position {
                    fields.push("position");
                }
                if !fields.is_empty() {
                    d.nodes_changed.push(NodeChange { id: id.to_string(), fields, config });
                }
            }
        }
    }
    d.nodes_removed = na.iter().filter(|(id, _)| !nb.contains_key(*id)).map(|(_, n)| (*n).clone()).collect();
    let ea: BTreeMap<&str, &GraphEdge> = a.edges.iter().map(|e| (e.id.as_str(), e)).collect();
    let eb: BTreeMap<&str, &GraphEdge> = b.edges.iter().map(|e| (e.id.as_str(), e)).collect();
    for (id, e) in &eb {
        match ea.get(id) {
            None => d.edges_added.push((*e).clone()),
            Some(old) => {
                let same = (&old.source, &old.target, &old.source_handle, &old.label) == (&e.source, &e.target, &e.source_handle, &e.label);
                if !same {
                    d.edges_changed.push(EdgeChange { id: id.to_string(), old: (*old).clone(), new: (*e).clone() });
                }
            }
        }
    }
    d.edges_removed = ea.iter().filter(|(id, _)| !eb.contains_key(*id)).map(|(_, e)| (*e).clone()).collect();
    d.settings_changed = a.settings != b.settings;
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_every_kind_of_change() {
        let a = Graph::from_value(json!({
            "nodes": [
                {"id": "n1", "type": "inbound_number", "data": {}},
                {"id": "n2", "type": "play_message", "data": {"label": "Hi", "config": {"tts": "hello", "repeat": 1}}},
                {"id": "n3", "type": "hangup", "data": {}}
            ],
            "edges": [
                {"id": "e1", "source": "n1", "sourceHandle": "next", "target": "n2"},
                {"id": "e2", "source": "n2", "sourceHandle": "next", "target": "n3"}
            ]
        }))
        .unwrap();
        let b = Graph::from_value(json!({
            "nodes": [
                {"id": "n1", "type": "inbound_number", "data": {}, "position": {"x": 5, "y": 0}},
                {"id": "n2", "type": "play_message", "data": {"label": "Hi", "config": {"tts": "welcome", "prompt": "p"}}},
                {"id": "n4", "type": "voicemail", "data": {"entity_id": 1, "entity_type": "voicemail_box"}}
            ],
            "edges": [
                {"id": "e1", "source": "n1", "sourceHandle": "next", "target": "n2"},
                {"id": "e2", "source": "n2", "sourceHandle": "next", "target": "n4"}
            ],
            "settings": {"fallback_node": "n4"}
        }))
        .unwrap();
        let d = diff(&a, &b);
        assert_eq!(d.nodes_added.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["n4"]);
        assert_eq!(d.nodes_removed.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["n3"]);
        assert_eq!(d.nodes_changed.len(), 2);
        let n2 = d.nodes_changed.iter().find(|c| c.id == "n2").unwrap();
        assert_eq!(n2.fields, vec!["config"]);
        let keys: Vec<(&str, Option<&Value>, Option<&Value>)> = n2.config.iter().map(|c| (c.key.as_str(), c.old.as_ref(), c.new.as_ref())).collect();
        assert_eq!(keys, vec![("prompt", None, Some(&json!("p"))), ("repeat", Some(&json!(1)), None), ("tts", Some(&json!("hello")), Some(&json!("welcome")))]);
        assert_eq!(d.nodes_changed.iter().find(|c| c.id == "n1").unwrap().fields, vec!["position"]);
        assert_eq!(d.edges_changed.len(), 1);
        assert_eq!(d.edges_changed[0].new.target, "n4");
        assert!(d.edges_added.is_empty() && d.edges_removed.is_empty());
        assert!(d.settings_changed);
        assert!(diff(&a, &a).is_empty());
    }
}
