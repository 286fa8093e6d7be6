//! The flow graph: React Flow JSON as the editor saves it (`web/src/components/flow/graph.ts`), parsed into types that
//! keep every field they do not know so a round trip through the API loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

use crate::Error;

/// The node type id of the entry marker: the host resolves it, no component runs.
pub const ENTRY_TYPE: &str = "inbound_number";
/// The output every node has implicitly; the host takes it when the node fails.
pub const ERROR_OUTPUT: &str = "error";

/// A flow graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Graph {
    #[serde(default)]
    pub nodes: Vec<GraphNode>,
    #[serde(default)]
    pub edges: Vec<GraphEdge>,
    /// Flow-wide settings (the fallback).
    #[serde(default, skip_serializing_if = "FlowSettings::is_default")]
    pub settings: FlowSettings,
    /// Whatever else the editor saved (viewport, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where a call goes when a node fails and the flow connects no `error` edge from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FlowSettings {
    /// A node to continue at (a voicemail, an operator). When absent, or when the call fails
    /// again after reaching it, the caller hears `fallback_prompt` and the call is hung up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_node: Option<String>,
    /// The prompt played before hanging up; `system/sorry` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_prompt: Option<String>,
}

impl FlowSettings {
    fn is_default(&self) -> bool {
        *self == FlowSettings::default()
    }
}

/// A canvas position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Position {
    #[serde(default)]
    pub x: f64,
    #[serde(default)]
    pub y: f64,
}

/// A graph node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    pub id: String,
    /// The node type id (`time_switch`, `acme/crm-lookup`).
    #[serde(rename = "type")]
    pub node_type: String,
    #[serde(default)]
    pub position: Position,
    #[serde(default)]
    pub data: NodeData,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A graph node's `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeData {
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_id")]
    pub entity_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// The node's configuration; `{}` when absent.
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Entity ids arrive as numbers, numeric strings (form fields) or null.
fn lenient_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| serde::de::Error::custom("entity_id is not an integer")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| serde::de::Error::custom("entity_id is not an integer")),
        Some(_) => Err(serde::de::Error::custom("entity_id is not an integer")),
    }
}

/// A graph edge: from a node's output (`sourceHandle`) to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub id: String,
    pub source: String,
    pub target: String,
    #[serde(rename = "sourceHandle", default, skip_serializing_if = "Option::is_none")]
    pub source_handle: Option<String>,
    #[serde(rename = "targetHandle", default, skip_serializing_if = "Option::is_none")]
    pub target_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Graph {
    /// Parses the editor's JSON. Only the shape is checked here; [`crate::validate`] checks
    /// the meaning.
    pub fn parse(json: &str) -> Result<Graph, Error> {
        serde_json::from_str(json).map_err(|e| Error::Graph(e.to_string()))
    }

    /// Parses an already-decoded JSON value.
    pub fn from_value(v: Value) -> Result<Graph, Error> {
        serde_json::from_value(v).map_err(|e| Error::Graph(e.to_string()))
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // A Graph holds only strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&GraphNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The entry nodes.
    pub fn entries(&self) -> impl Iterator<Item = &GraphNode> {
        self.nodes.iter().filter(|n| n.node_type == ENTRY_TYPE)
    }

    /// The edges leaving `node_id`, by the output they leave from (`None`: no handle).
    pub fn edges_from(&self, node_id: &str) -> HashMap<Option<&str>, Vec<&GraphEdge>> {
        let mut m: HashMap<Option<&str>, Vec<&GraphEdge>> = HashMap::new();
        for e in self.edges.iter().filter(|e| e.source == node_id) {
            m.entry(e.source_handle.as_deref()).or_default().push(e);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_parses_and_round_trips_unknown_fields() {
        let json = r#"{
          "nodes": [
            {"id":"node_1","type":"inbound_number","position":{"x":100,"y":200},
             "data":{"label":"Main Number","entity_id":1,"entity_type":"inbound_number","config":{}},"width":150},
            {"id":"node_2","type":"time_switch","position":{"x":400,"y":200},
             "data":{"label":"Business Hours","entity_id":"1","entity_type":"time_switch"}}
          ],
          "edges": [
            {"id":"edge_1-2","source":"node_1","target":"node_2","sourceHandle":"next","targetHandle":"incoming","animated":true}
          ],
          "viewport": {"x":0,"y":0,"zoom":1}
        }"#;
        let g = Graph::parse(json).unwrap();
        assert_eq!(g.nodes[1].data.entity_id, Some(1));
        assert_eq!(g.nodes[1].data.config, serde_json::json!({}));
        assert_eq!(g.entries().count(), 1);
        let back: Value = serde_json::from_str(&g.to_json()).unwrap();
        assert_eq!(back["viewport"]["zoom"], 1);
        assert_eq!(back["nodes"][0]["width"], 150);
        assert_eq!(back["edges"][0]["animated"], true);
        assert_eq!(g.edges_from("node_1")[&Some("next")].len(), 1);
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        assert!(Graph::parse("[]").is_err());
        assert!(Graph::parse(r#"{"nodes":[{"id":1}]}"#).is_err());
        assert!(Graph::parse(r#"{"nodes":[{"id":"a","type":"x","data":{"entity_id":"abc"}}]}"#).is_err());
        assert!(Graph::parse(r#"{"nodes":[{"id":"a","type":"x","data":{"entity_id":1.5}}]}"#).is_err());
        assert_eq!(Graph::parse("{}").unwrap().nodes.len(), 0);
    }
}
