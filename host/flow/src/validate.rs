//! The validator: every problem of a graph, each with the node or edge it concerns and a
//! severity. Errors block publishing; warnings do not.
//!
//! Pure: what it needs to know about node types, their outputs for a given config and the
//! entities comes through [`Catalog`], so it is tested without any wasm. The engine's
//! catalog runs the components' `outputs()` (see `Engine::validate`).

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

use crate::entity::EntityKind;
use crate::graph::{Graph, GraphNode, ERROR_OUTPUT};
use crate::types::{NodeTypeInfo, OutputDecl};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The flow cannot be published.
    Error,
    /// Publishing is allowed; the editor shows it.
    Warning,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// Two nodes or two edges share an id.
    DuplicateId,
    /// The flow has no entry (inbound number) node.
    NoEntry,
    /// An entry node no inbound number maps to.
    EntryUnmapped,
    /// An edge leads into an entry node.
    EdgeIntoEntry,
    /// No node type has this id (or its plugin is disabled).
    UnknownNodeType,
    /// The config does not match the node type's JSON Schema (`field` names where), or the
    /// node rejected its config or entity. Written `config_invalid` on the wire: the editor
    /// shows problems whose code starts with `config` next to the config field.
    #[serde(rename = "config_invalid")]
    InvalidConfig,
    /// A required entity is not linked, the linked one does not exist, or it is of the
    /// wrong type.
    MissingEntity,
    /// An edge starts or ends at a node that does not exist.
    DanglingEdge,
    /// An edge leaves from an output its node does not have.
    UnknownOutput,
    /// Two edges leave from the same output.
    DuplicateEdge,
    /// An edge leaves from a terminal output: it is never followed.
    EdgeFromTerminal,
    /// An output has no edge: a call taking it ends there.
    UnconnectedOutput,
    /// No entry reaches the node.
    Unreachable,
    /// A loop in which no node waits for the caller: it would spin.
    EndlessLoop,
    /// `settings.fallback_node` names no node.
    BadFallback,
    /// A node type that is drawn but not working yet (the queue): it cannot be published.
    NotAvailable,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub severity: Severity,
    pub code: ProblemCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    /// For a config problem: the path inside the node's config, dotted (`rules.0.start`;
    /// empty for the config as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub(crate) fn node(severity: Severity, code: ProblemCode, node: &str, message: String) -> Problem {
        Problem { severity, code, message, node_id: Some(node.to_string()), edge_id: None, field: None }
    }
    fn edge(severity: Severity, code: ProblemCode, edge: &str, message: String) -> Problem {
        Problem { severity, code, message, node_id: None, edge_id: Some(edge.to_string()), field: None }
    }
    fn flow(severity: Severity, code: ProblemCode, message: String) -> Problem {
        Problem { severity, code, message, node_id: None, edge_id: None, field: None }
    }
}

/// Where a config does not match its node type's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The path inside the config, dotted (`rules.0.start`); empty for the whole config.
    pub field: String,
    pub message: String,
}

/// Whether any problem blocks publishing.
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

/// What the validator needs to know beyond the graph.
pub trait Catalog {
    /// The node type, if one with this id is available.
    fn node_type(&self, type_id: &str) -> Option<&NodeTypeInfo>;
    /// Where the config does not match the type's schema (empty: it does).
    fn config_errors(&self, node: &GraphNode) -> Vec<ConfigError>;
    /// The node's outputs with its config and entity, or why the node rejects them.
    fn outputs(&self, node: &GraphNode) -> Result<Vec<OutputDecl>, String>;
    /// Whether an entity exists.
    fn entity_exists(&self, kind: EntityKind, id: i64) -> bool;
    /// Whether an inbound number maps to this entry node of this flow.
    fn entry_mapped(&self, node: &GraphNode) -> bool;
}

/// An entity kind as an administrator says it (`ivr_menu` → "IVR menu").
pub fn kind_words(kind: &str) -> String {
    match kind {
        "ivr_menu" => "IVR menu".into(),
        "inbound_number" => "inbound number".into(),
        other => other.replace('_', " "),
    }
}

/// A config key as a label: `max_duration_s` → "Max duration (seconds)".
pub fn humanize_key(key: &str) -> String {
    let (stem, unit) = match key {
        k if k.ends_with("_ms") => (&k[..k.len() - 3], " (milliseconds)"),
        k if k.ends_with("_secs") => (&k[..k.len() - 5], " (seconds)"),
        k if k.ends_with("_s") => (&k[..k.len() - 2], " (seconds)"),
        k => (k, ""),
    };
    let words = stem.replace(['_', '-'], " ");
    let words = words.trim();
    let mut c = words.chars();
    match c.next() {
        Some(f) => format!("{}{}{unit}", f.to_uppercase(), c.as_str()),
        None => key.to_string(),
    }
}

/// A dotted config path as the editor labels it (the schema's `title`, else the key made
/// readable; list items by their position from 1): `rules.0.start` → "Rules › 1 › Start".
pub fn field_label(schema: &serde_json::Value, path: &str) -> String {
    let mut at = Some(schema);
    let mut parts = Vec::new();
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let s = at;
        let prop = s.and_then(|s| s.get("properties")).and_then(|p| p.get(seg));
        if let Some(p) = prop {
            parts.push(p.get("title").and_then(|t| t.as_str()).map(str::to_owned).unwrap_or_else(|| humanize_key(seg)));
            at = Some(p);
        } else if let Ok(i) = seg.parse::<usize>() {
            parts.push((i + 1).to_string());
            at = s.and_then(|s| s.get("items"));
        } else {
            parts.push(humanize_key(seg));
            at = s.and_then(|s| s.get("additionalProperties")).filter(|a| a.is_object());
        }
    }
    parts.join(" › ")
}

/// Every problem of `graph`, errors first, then in graph order. Messages are written for the
/// administrator: nodes are named by their label (else their type), outputs by their label,
/// never by an internal id.
pub fn validate(graph: &Graph, catalog: &dyn Catalog) -> Vec<Problem> {
    use ProblemCode::*;
    use Severity::*;
    let mut out = Vec::new();
    let node_name = |id: &str| -> String {
        match graph.node(id) {
            Some(n) if !n.data.label.trim().is_empty() => format!("“{}”", n.data.label.trim()),
            Some(n) => match catalog.node_type(&n.node_type) {
                Some(t) => format!("the {} node", t.name),
                None => "a node".into(),
            },
            None => "a node that is no longer in the flow".into(),
        }
    };

    let mut seen = HashSet::new();
    for n in &graph.nodes {
        if !seen.insert(n.id.as_str()) {
            out.push(Problem::node(Error, DuplicateId, &n.id, "two nodes share one identifier: delete one of them and add it again".into()));
        }
    }
    let mut seen_edges = HashSet::new();
    for e in &graph.edges {
        if !seen_edges.insert(e.id.as_str()) {
            out.push(Problem::edge(Error, DuplicateId, &e.id, "two connections share one identifier: delete one of them and draw it again".into()));
        }
    }

    // Per node: type, config, entity, outputs.
    let mut outputs: HashMap<&str, Vec<OutputDecl>> = HashMap::new();
    let mut waits: HashMap<&str, bool> = HashMap::new();
    for n in &graph.nodes {
        let Some(t) = catalog.node_type(&n.node_type) else {
            out.push(Problem::node(Error, UnknownNodeType, &n.id, format!("the node type “{}” is not installed, or its plugin is disabled", n.node_type)));
            continue;
        };
        waits.insert(&n.id, t.waits_for_caller);
        if t.coming {
            out.push(Problem::node(Error, NotAvailable, &n.id, format!("{} nodes are not available yet: remove this one to publish", t.name)));
        }
        for e in catalog.config_errors(n) {
            let message = if e.field.is_empty() { e.message.clone() } else { format!("{}: {}", field_label(&t.config_schema, &e.field), e.message) };
            let mut p = Problem::node(Error, InvalidConfig, &n.id, message);
            p.field = Some(e.field);
            out.push(p);
        }
        let mut entity_ok = true;
        match (&t.entity_kind, n.data.entity_id) {
            (Some(kind), None) if t.entity_required => {
                entity_ok = false;
                out.push(Problem::node(Error, MissingEntity, &n.id, format!("choose the {} this {} node uses", kind_words(kind), t.name)));
            }
            (None, Some(_)) => out.push(Problem::node(Error, MissingEntity, &n.id, format!("a {} node links nothing: remove its link", t.name))),
            (Some(kind), Some(id)) => {
                let declared = n.data.entity_type.as_deref().unwrap_or(kind);
                match EntityKind::parse(kind) {
                    _ if declared != kind => {
                        entity_ok = false;
                        out.push(Problem::node(
                            Error,
                            MissingEntity,
                            &n.id,
                            format!("a {} node uses a {}, not a {}: choose one again", t.name, kind_words(kind), kind_words(declared)),
                        ));
                    }
                    Some(k) if !catalog.entity_exists(k, id) => {
                        entity_ok = false;
                        out.push(Problem::node(Error, MissingEntity, &n.id, format!("the {} it used no longer exists: choose another", kind_words(kind))));
                    }
                    None => {
                        entity_ok = false;
                        out.push(Problem::node(Error, MissingEntity, &n.id, format!("the node type links an unknown kind of thing ({kind})")));
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
        if !entity_ok {
            continue;
        }
        match catalog.outputs(n) {
            Ok(o) => {
                outputs.insert(&n.id, o);
            }
            Err(e) => out.push(Problem::node(Error, InvalidConfig, &n.id, e)),
        }
    }

    // Edges: ends, outputs, duplicates. Resolved edges feed reachability and loops.
    let ids: HashSet<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    let entry_ids: HashSet<&str> = graph.entries().map(|n| n.id.as_str()).collect();
    let mut followed: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut used: HashMap<(&str, String), &str> = HashMap::new();
    for e in &graph.edges {
        if !ids.contains(e.source.as_str()) || !ids.contains(e.target.as_str()) {
            out.push(Problem::edge(Error, DanglingEdge, &e.id, "a connection leads to or from a node that is no longer in the flow: delete it".into()));
            continue;
        }
        if entry_ids.contains(e.target.as_str()) {
            out.push(Problem::edge(Error, EdgeIntoEntry, &e.id, "nothing can lead into an inbound number: calls only enter there".into()));
        }
        let Some(outs) = outputs.get(e.source.as_str()) else {
            // The source node already has a problem of its own; count the edge as followed so
            // reachability does not pile on.
            followed.entry(&e.source).or_default().push(&e.target);
            continue;
        };
        let handle = match e.source_handle.as_deref() {
            Some(h) => h.to_string(),
            None => {
                let non_error: Vec<&OutputDecl> = outs.iter().collect();
                if non_error.len() == 1 {
                    non_error[0].id.clone()
                } else {
                    out.push(Problem::edge(
                        Error,
                        UnknownOutput,
                        &e.id,
                        format!("a connection from {} does not say which output it leaves by: draw it again", node_name(&e.source)),
                    ));
                    continue;
                }
            }
        };
        let decl = outs.iter().find(|o| o.id == handle);
        if decl.is_none() && handle != ERROR_OUTPUT {
            out.push(Problem::edge(
                Error,
                UnknownOutput,
                &e.id,
                format!("{} no longer has the output “{handle}”: delete this connection or draw it again", node_name(&e.source)),
            ));
            continue;
        }
        let label =
            decl.map(|d| d.label.clone()).filter(|l| !l.is_empty()).unwrap_or_else(|| if handle == ERROR_OUTPUT { "error".into() } else { handle.clone() });
        if used.insert((&e.source, handle.clone()), &e.id).is_some() {
            out.push(Problem::edge(
                Error,
                DuplicateEdge,
                &e.id,
                format!("the output “{label}” of {} has two connections: a call can follow only one", node_name(&e.source)),
            ));
            continue;
        }
        if decl.is_some_and(|d| d.terminal) {
            out.push(Problem::edge(
                Warning,
                EdgeFromTerminal,
                &e.id,
                format!("the output “{label}” of {} ends the call's way through the flow: this connection is never followed", node_name(&e.source)),
            ));
            continue;
        }
        followed.entry(&e.source).or_default().push(&e.target);
    }

    // Outputs without edges.
    for n in &graph.nodes {
        for o in outputs.get(n.id.as_str()).into_iter().flatten() {
            if !o.terminal && !used.contains_key(&(n.id.as_str(), o.id.clone())) {
                out.push(Problem::node(
                    Warning,
                    UnconnectedOutput,
                    &n.id,
                    format!("the output “{}” leads nowhere: a call taking it is hung up", if o.label.is_empty() { &o.id } else { &o.label }),
                ));
            }
        }
    }

    // Entries.
    let entries: Vec<&GraphNode> = graph.entries().collect();
    if entries.is_empty() && !graph.nodes.is_empty() {
        out.push(Problem::flow(Error, NoEntry, "add an Inbound Number node: calls enter the flow there".into()));
    }
    for e in &entries {
        if !catalog.entry_mapped(e) {
            out.push(Problem::node(Warning, EntryUnmapped, &e.id, "no inbound number routes calls here yet: choose one".into()));
        }
    }

    // Reachability from the entries (and the fallback node, which errors reach).
    let mut reached: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = entries.iter().map(|n| n.id.as_str()).collect();
    if let Some(f) = &graph.settings.fallback_node {
        if ids.contains(f.as_str()) {
            stack.push(f);
        } else {
            out.push(Problem::flow(Error, BadFallback, "the node calls fall back to when something fails is no longer in the flow".into()));
        }
    }
    while let Some(id) = stack.pop() {
        if reached.insert(id) {
            stack.extend(followed.get(id).into_iter().flatten().copied());
        }
    }
    if !entries.is_empty() {
        for n in &graph.nodes {
            if !reached.contains(n.id.as_str()) {
                out.push(Problem::node(Warning, Unreachable, &n.id, "no call can reach this node: nothing leads to it from an inbound number".into()));
            }
        }
    }

    // Loops without a node that waits for the caller.
    for scc in strongly_connected(&graph.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), &followed) {
        let cyclic = scc.len() > 1 || followed.get(scc[0]).is_some_and(|t| t.contains(&scc[0]));
        if cyclic && !scc.iter().any(|id| waits.get(id).copied().unwrap_or(true)) {
            let mut ids: Vec<&str> = scc.clone();
            ids.sort_unstable();
            let mut names: Vec<String> = ids.iter().map(|id| node_name(id)).collect();
            names.dedup();
            out.push(Problem::node(
                Error,
                EndlessLoop,
                ids[0],
                format!("the loop through {} never waits for the caller: a call would go round it until it is cut off", names.join(", ")),
            ));
        }
    }

    out.sort_by_key(|p| p.severity);
    out
}

/// Tarjan's strongly connected components, iteratively (graphs come from users: no
/// recursion depth to exhaust).
fn strongly_connected<'a>(nodes: &[&'a str], edges: &HashMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut low: HashMap<&str, usize> = HashMap::new();
    let mut on_stack: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    let empty = Vec::new();
    for &root in nodes {
        if index.contains_key(root) {
            continue;
        }
        // (node, position in its successor list)
        let mut work: Vec<(&str, usize)> = vec![(root, 0)];
        while let Some((v, i)) = work.pop() {
            if i == 0 {
                index.insert(v, next);
                low.insert(v, next);
                next += 1;
                stack.push(v);
                on_stack.insert(v);
            }
            let succ = edges.get(v).unwrap_or(&empty);
            if let Some(&w) = succ.get(i) {
                work.push((v, i + 1));
                if !index.contains_key(w) {
                    work.push((w, 0));
                } else if on_stack.contains(w) {
                    let lw = index[w].min(low[v]);
                    low.insert(v, lw);
                }
                continue;
            }
            // All successors done: propagate to the parent, maybe pop a component.
            if let Some(&(parent, _)) = work.last() {
                let lp = low[parent].min(low[v]);
                low.insert(parent, lp);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack.remove(w);
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(comp);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Graph;
    use serde_json::json;

    /// A catalog of a few hand-written node types.
    struct Fake {
        types: HashMap<String, NodeTypeInfo>,
        entities: HashSet<(EntityKind, i64)>,
        mapped: HashSet<String>,
    }

    fn info(id: &str, outputs: &[(&str, bool)], waits: bool, entity: Option<&str>) -> NodeTypeInfo {
        NodeTypeInfo {
            id: id.into(),
            name: id.into(),
            version: "1".into(),
            category: "x".into(),
            icon: "x".into(),
            description: String::new(),
            config_schema: json!({}),
            outputs: outputs.iter().map(|(o, t)| OutputDecl { id: o.to_string(), label: o.to_string(), terminal: *t }).collect(),
            capabilities: vec![],
            granted: vec![],
            entity_kind: entity.map(str::to_string),
            entity_required: entity.is_some(),
            waits_for_caller: waits,
            wall_clock_ms: 1000,
            builtin: true,
            sha256: String::new(),
            coming: false,
        }
    }

    fn fake() -> Fake {
        let mut types = HashMap::new();
        for t in [
            info("inbound_number", &[("next", false)], false, None),
            info("menu", &[("1", false), ("2", false), ("timeout", false)], true, Some("ivr_menu")),
            info("switch", &[("open", false), ("default", false)], false, None),
            info("ring", &[("answered", true), ("no_answer", false)], true, None),
            info("hangup", &[], false, None),
        ] {
            types.insert(t.id.clone(), t);
        }
        Fake { types, entities: [(EntityKind::IvrMenu, 1)].into_iter().collect(), mapped: ["entry".to_string()].into_iter().collect() }
    }

    impl Catalog for Fake {
        fn node_type(&self, t: &str) -> Option<&NodeTypeInfo> {
            self.types.get(t)
        }
        fn config_errors(&self, n: &GraphNode) -> Vec<ConfigError> {
            if n.data.config.get("bad").is_some() {
                vec![ConfigError { field: "bad".into(), message: "is not allowed".into() }]
            } else {
                vec![]
            }
        }
        fn outputs(&self, n: &GraphNode) -> Result<Vec<OutputDecl>, String> {
            if n.data.config.get("reject").is_some() {
                return Err("rules are unusable".into());
            }
            Ok(self.types[&n.node_type].outputs.clone())
        }
        fn entity_exists(&self, k: EntityKind, id: i64) -> bool {
            self.entities.contains(&(k, id))
        }
        fn entry_mapped(&self, n: &GraphNode) -> bool {
            self.mapped.contains(&n.id)
        }
    }

    fn graph(nodes: serde_json::Value, edges: serde_json::Value) -> Graph {
        Graph::from_value(json!({ "nodes": nodes, "edges": edges })).unwrap()
    }

    fn n(id: &str, t: &str) -> serde_json::Value {
        json!({ "id": id, "type": t, "data": {} })
    }

    fn e(id: &str, s: &str, h: &str, t: &str) -> serde_json::Value {
        json!({ "id": id, "source": s, "sourceHandle": h, "target": t })
    }

    fn codes(p: &[Problem]) -> Vec<(ProblemCode, Option<&str>, Option<&str>)> {
        p.iter().map(|p| (p.code, p.node_id.as_deref(), p.edge_id.as_deref())).collect()
    }

    #[test]
    fn a_sound_flow_has_no_problems() {
        let g = graph(
            json!([n("entry", "inbound_number"), n("sw", "switch"), n("r", "ring"), n("h", "hangup")]),
            json!([e("e1", "entry", "next", "sw"), e("e2", "sw", "open", "r"), e("e3", "sw", "default", "h"), e("e4", "r", "no_answer", "h")]),
        );
        assert_eq!(validate(&g, &fake()), vec![]);
    }

    #[test]
    fn every_problem_names_its_node_or_edge() {
        let mut menu = n("m", "menu");
        menu["data"]["entity_id"] = json!(7);
        let mut sw = n("sw", "switch");
        sw["data"]["config"] = json!({ "bad": 1 });
        let mut sw2 = n("sw2", "switch");
        sw2["data"]["config"] = json!({ "reject": 1 });
        let g = graph(
            json!([
                n("entry", "inbound_number"),
                n("entry2", "inbound_number"),
                menu,
                sw,
                sw2,
                n("x", "nope"),
                n("r", "ring"),
                n("lost", "hangup"),
                n("entry", "hangup")
            ]),
            json!([
                e("e1", "entry", "next", "sw"),
                e("e2", "sw", "open", "r"),
                e("e3", "sw", "nowhere", "r"),
                e("e4", "r", "answered", "lost"),
                e("e5", "sw", "default", "ghost"),
                e("e6", "r", "no_answer", "entry2"),
                e("e7", "sw", "open", "sw2"),
                e("e1", "entry2", "next", "m"),
            ]),
        );
        let p = validate(&g, &fake());
        let c = codes(&p);
        for want in [
            (ProblemCode::DuplicateId, Some("entry"), None),
            (ProblemCode::DuplicateId, None, Some("e1")),
            (ProblemCode::MissingEntity, Some("m"), None),
            (ProblemCode::InvalidConfig, Some("sw"), None),
            (ProblemCode::InvalidConfig, Some("sw2"), None),
            (ProblemCode::UnknownNodeType, Some("x"), None),
            (ProblemCode::UnknownOutput, None, Some("e3")),
            (ProblemCode::EdgeFromTerminal, None, Some("e4")),
            (ProblemCode::DanglingEdge, None, Some("e5")),
            (ProblemCode::EdgeIntoEntry, None, Some("e6")),
            (ProblemCode::DuplicateEdge, None, Some("e7")),
            (ProblemCode::EntryUnmapped, Some("entry2"), None),
            (ProblemCode::Unreachable, Some("lost"), None),
        ] {
            assert!(c.contains(&want), "missing {want:?} in {c:#?}");
        }
        // Errors come first; warnings after.
        let first_warning = p.iter().position(|p| p.severity == Severity::Warning).unwrap();
        assert!(p[first_warning..].iter().all(|p| p.severity == Severity::Warning));
        assert!(has_errors(&p));
        // The problem for the missing entity says which.
        assert!(p.iter().any(|p| p.message.contains("choose the IVR menu") || p.message.contains("no longer exists")));
        // no message names a node or an edge by its id
        for p in &p {
            for id in ["\"entry\"", "\"sw\"", "\"ghost\"", "\"e1\"", "\"e3\"", "\"e7\"", "config."] {
                assert!(!p.message.contains(id), "{id} in {:?}", p.message);
            }
        }
        // A schema problem names the config field, and says `config_invalid` on the wire.
        let schema = p.iter().find(|p| p.node_id.as_deref() == Some("sw") && p.code == ProblemCode::InvalidConfig).unwrap();
        assert_eq!(schema.field.as_deref(), Some("bad"));
        assert_eq!(schema.message, "Bad: is not allowed");
        assert_eq!(serde_json::to_value(schema).unwrap()["code"], "config_invalid");
        let rejected = p.iter().find(|p| p.node_id.as_deref() == Some("sw2") && p.code == ProblemCode::InvalidConfig).unwrap();
        assert_eq!(rejected.field, None);
    }

    #[test]
    fn an_existing_entity_is_accepted_and_a_missing_one_named() {
        let mut ok = n("m", "menu");
        ok["data"]["entity_id"] = json!(1);
        let mut gone = n("m2", "menu");
        gone["data"]["entity_id"] = json!(2);
        let mut wrong = n("m3", "menu");
        wrong["data"]["entity_id"] = json!(1);
        wrong["data"]["entity_type"] = json!("ring_group");
        let g = graph(json!([n("entry", "inbound_number"), ok, gone, wrong]), json!([e("e1", "entry", "next", "m")]));
        let p = validate(&g, &fake());
        let missing: Vec<_> = p.iter().filter(|p| p.code == ProblemCode::MissingEntity).map(|p| (p.node_id.clone().unwrap(), p.message.clone())).collect();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing.iter().any(|(n, m)| n == "m2" && m.contains("the IVR menu it used no longer exists")));
        assert!(missing.iter().any(|(n, m)| n == "m3" && m.contains("not a ring group")));
    }

    #[test]
    fn unconnected_outputs_are_warnings_but_terminal_ones_are_not() {
        let g = graph(json!([n("entry", "inbound_number"), n("r", "ring")]), json!([e("e1", "entry", "next", "r")]));
        let p = validate(&g, &fake());
        assert_eq!(codes(&p), vec![(ProblemCode::UnconnectedOutput, Some("r"), None)]);
        assert!(p[0].message.contains("no_answer"));
        assert!(!has_errors(&p));
    }

    #[test]
    fn a_loop_without_a_waiting_node_is_an_error_and_one_with_is_fine() {
        // switch -> switch2 -> switch: spins.
        let g = graph(
            json!([n("entry", "inbound_number"), n("a", "switch"), n("b", "switch"), n("h", "hangup")]),
            json!([
                e("e1", "entry", "next", "a"),
                e("e2", "a", "open", "b"),
                e("e3", "b", "open", "a"),
                e("e4", "a", "default", "h"),
                e("e5", "b", "default", "h")
            ]),
        );
        let p = validate(&g, &fake());
        let loops: Vec<_> = p.iter().filter(|p| p.code == ProblemCode::EndlessLoop).collect();
        assert_eq!(loops.len(), 1, "{p:#?}");
        assert!(loops[0].message.contains("the switch node"), "{}", loops[0].message);
        assert_eq!(loops[0].severity, Severity::Error);

        // A self-loop through a non-waiting node spins too.
        let g = graph(
            json!([n("entry", "inbound_number"), n("a", "switch"), n("h", "hangup")]),
            json!([e("e1", "entry", "next", "a"), e("e2", "a", "open", "a"), e("e3", "a", "default", "h")]),
        );
        assert!(validate(&g, &fake()).iter().any(|p| p.code == ProblemCode::EndlessLoop));

        // switch -> ring -(no answer)-> switch: the ring waits for the caller.
        let g = graph(
            json!([n("entry", "inbound_number"), n("a", "switch"), n("r", "ring"), n("h", "hangup")]),
            json!([e("e1", "entry", "next", "a"), e("e2", "a", "open", "r"), e("e3", "r", "no_answer", "a"), e("e4", "a", "default", "h")]),
        );
        assert!(!validate(&g, &fake()).iter().any(|p| p.code == ProblemCode::EndlessLoop));

        // A loop through the implicit error output counts as well.
        let g = graph(
            json!([n("entry", "inbound_number"), n("a", "switch"), n("h", "hangup")]),
            json!([e("e1", "entry", "next", "a"), e("e2", "a", "error", "a"), e("e3", "a", "open", "h"), e("e4", "a", "default", "h")]),
        );
        assert!(validate(&g, &fake()).iter().any(|p| p.code == ProblemCode::EndlessLoop));
    }

    #[test]
    fn no_entry_and_bad_fallback_are_errors() {
        let mut g = graph(json!([n("h", "hangup")]), json!([]));
        g.settings.fallback_node = Some("nope".into());
        let c: Vec<ProblemCode> = validate(&g, &fake()).iter().map(|p| p.code).collect();
        assert!(c.contains(&ProblemCode::NoEntry));
        assert!(c.contains(&ProblemCode::BadFallback));
        assert!(validate(&Graph::default(), &fake()).is_empty());
    }

    #[test]
    fn the_fallback_node_counts_as_reachable_and_a_handleless_edge_needs_a_single_output() {
        let mut g = graph(
            json!([n("entry", "inbound_number"), n("h", "hangup"), n("fb", "hangup"), n("sw", "switch")]),
            json!([{ "id": "e1", "source": "entry", "target": "sw" }, { "id": "e2", "source": "sw", "target": "h" }]),
        );
        g.settings.fallback_node = Some("fb".into());
        let p = validate(&g, &fake());
        assert!(!p.iter().any(|p| p.code == ProblemCode::Unreachable && p.node_id.as_deref() == Some("fb")), "{p:#?}");
        assert!(p.iter().any(|p| p.code == ProblemCode::UnknownOutput && p.edge_id.as_deref() == Some("e2")));
        assert!(!p.iter().any(|p| p.edge_id.as_deref() == Some("e1")));
    }

    #[test]
    fn a_coming_node_type_cannot_be_published() {
        let mut cat = fake();
        let mut q = info("queue", &[("answered", true)], true, None);
        q.coming = true;
        q.name = "Queue".into();
        cat.types.insert("queue".into(), q);
        let g = graph(json!([n("entry", "inbound_number"), n("q", "queue")]), json!([e("e1", "entry", "next", "q")]));
        let p = validate(&g, &cat);
        let na: Vec<_> = p.iter().filter(|p| p.code == ProblemCode::NotAvailable).collect();
        assert_eq!(na.len(), 1, "{p:#?}");
        assert_eq!((na[0].severity, na[0].node_id.as_deref()), (Severity::Error, Some("q")));
        assert!(na[0].message.starts_with("Queue nodes are not available yet"), "{}", na[0].message);
        assert_eq!(serde_json::to_value(na[0]).unwrap()["code"], "not_available");
        // the same graph without the flag publishes
        cat.types.get_mut("queue").unwrap().coming = false;
        assert!(!has_errors(&validate(&g, &cat)));
    }

    #[test]
    fn config_fields_are_named_as_the_editor_labels_them() {
        assert_eq!(humanize_key("max_duration_s"), "Max duration (seconds)");
        assert_eq!(humanize_key("timeout_ms"), "Timeout (milliseconds)");
        assert_eq!(humanize_key("number"), "Number");
        let schema = json!({"properties": {"rules": {"items": {"properties": {"start": {"title": "Opens at"}}}}, "headers": {"additionalProperties": {"type": "string"}}}});
        assert_eq!(field_label(&schema, "rules.0.start"), "Rules › 1 › Opens at");
        assert_eq!(field_label(&schema, "headers.x_api_key"), "Headers › X api key");
        assert_eq!(field_label(&schema, "unknown_s"), "Unknown (seconds)");
        assert_eq!(kind_words("ivr_menu"), "IVR menu");
        assert_eq!(kind_words("ring_group"), "ring group");
    }

    #[test]
    fn deep_graphs_do_not_exhaust_the_stack() {
        let mut nodes = vec![n("entry", "inbound_number")];
        let mut edges = vec![e("e0", "entry", "next", "s0")];
        for i in 0..20_000 {
            nodes.push(n(&format!("s{i}"), "switch"));
            edges.push(e(&format!("o{i}"), &format!("s{i}"), "open", &format!("s{}", i + 1)));
            edges.push(e(&format!("d{i}"), &format!("s{i}"), "default", "h"));
        }
        nodes.push(n("s20000", "hangup"));
        nodes.push(n("h", "hangup"));
        let g = graph(json!(nodes), json!(edges));
        assert!(!has_errors(&validate(&g, &fake())));
    }
}
