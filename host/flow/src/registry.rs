//! The node registry: every node type available now — the built-ins, compiled from the
//! components embedded in the binary, the entry marker, and the enabled plugins — with what
//! their `describe()` said and what the host decided (grants, wall clock, compiled schema).
//!
//! A registry is an immutable value; the engine swaps in a new one when a plugin is installed
//! or removed. Published flows hold the types they were published with, so a new plugin
//! version changes no published flow until that flow is republished.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;

use crate::bindings::types as wit;
use crate::graph::ENTRY_TYPE;
use crate::types::{Capability, CapabilityError, Grants, NodeTypeInfo, OutputDecl};
use crate::validate::ConfigError;

/// One node type.
pub struct NodeType {
    pub info: NodeTypeInfo,
    /// `None` for the entry marker (no component runs for it).
    pub(crate) component: Option<Component>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) wall_clock: Duration,
    pub(crate) schema: Option<Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for NodeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeType").field("id", &self.info.id).field("builtin", &self.info.builtin).finish_non_exhaustive()
    }
}

impl NodeType {
    /// Where `config` does not match the type's schema (empty: it does). A missing required
    /// property is reported at the property itself.
    pub fn config_errors(&self, config: &serde_json::Value) -> Vec<ConfigError> {
        let Some(v) = &self.schema else { return Vec::new() };
        v.iter_errors(config)
            .map(|e| {
                let mut path: Vec<String> = e.instance_path().segments().map(|seg| seg.to_string()).collect();
                if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
                    path.push(property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string()));
                }
                ConfigError { field: path.join("."), message: schema_words(e.kind()) }
            })
            .collect()
    }

    /// The entry marker type: the host resolves it; it leaves by `next`.
    pub(crate) fn entry() -> NodeType {
        NodeType {
            info: NodeTypeInfo {
                id: ENTRY_TYPE.into(),
                name: "Inbound Number".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                category: "entry".into(),
                icon: "📞".into(),
                description: "Where calls to the mapped numbers enter the flow.".into(),
                config_schema: serde_json::json!({"type": "object"}),
                outputs: vec![OutputDecl { id: "next".into(), label: "Next".into(), terminal: false }],
                capabilities: vec![],
                granted: vec![],
                entity_kind: Some("inbound_number".into()),
                entity_required: false,
                waits_for_caller: false,
                wall_clock_ms: 0,
                builtin: true,
                sha256: String::new(),
                coming: false,
            },
            component: None,
            grants: Arc::new(Grants::default()),
            wall_clock: Duration::ZERO,
            schema: None,
        }
    }
}

/// What a config value breaks, in the administrator's words (jsonschema's own messages quote
/// the value and the regular expression: `"12ab" does not match "^\\+?[0-9*#]{1,32}$"`).
/// The field is named by the problem, not here.
pub(crate) fn schema_words(kind: &jsonschema::error::ValidationErrorKind) -> String {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    let num = |v: &serde_json::Value| v.to_string();
    match kind {
        K::Required { .. } => "is required".into(),
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            format!(
                "{} not a setting of this node",
                if unexpected.len() == 1 { format!("“{}” is", unexpected[0]) } else { format!("“{}” are", unexpected.join("”, “")) }
            )
        }
        K::Minimum { limit } => format!("must be at least {}", num(limit)),
        K::Maximum { limit } => format!("must be at most {}", num(limit)),
        K::ExclusiveMinimum { limit } => format!("must be more than {}", num(limit)),
        K::ExclusiveMaximum { limit } => format!("must be less than {}", num(limit)),
        K::MinLength { limit: 1 } => "must not be empty".into(),
        K::MinLength { limit } => format!("must be at least {limit} characters long"),
        K::MaxLength { limit } => format!("must be at most {limit} characters long"),
        K::MinItems { limit } => format!("needs at least {limit} entr{}", if *limit == 1 { "y" } else { "ies" }),
        K::MaxItems { limit } => format!("takes at most {limit} entries"),
        K::UniqueItems => "lists something twice".into(),
        K::Pattern { .. } | K::Format { .. } => "does not have the expected form".into(),
        K::Enum { options } => match options.as_array() {
            Some(o) => {
                format!("must be one of {}", o.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(", "))
            }
            None => "is not one of the choices".into(),
        },
        K::Constant { expected_value } => format!("must be {}", expected_value.as_str().map(str::to_owned).unwrap_or_else(|| expected_value.to_string())),
        K::Type { kind } => {
            let word = |t: &jsonschema::JsonType| match t.to_string().as_str() {
                "integer" => "a whole number",
                "number" => "a number",
                "string" => "text",
                "boolean" => "yes or no",
                "array" => "a list",
                "object" => "a group of settings",
                _ => "empty",
            };
            match kind {
                TypeKind::Single(t) => format!("must be {}", word(t)),
                TypeKind::Multiple(ts) => format!("must be {}", ts.iter().map(|t| word(&t)).collect::<Vec<_>>().join(" or ")),
            }
        }
        K::AnyOf { .. } | K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } | K::Not { .. } => "is not one of the accepted forms".into(),
        _ => "is not a valid value".into(),
    }
}

/// A plugin id is `vendor/name`, both lowercase letters, digits, `-` and `_`.
pub fn valid_plugin_id(id: &str) -> bool {
    let part = |s: &str| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    matches!(id.split_once('/'), Some((v, n)) if part(v) && part(n))
}

pub(crate) fn capability_from_wit(c: &wit::Capability) -> Result<Capability, CapabilityError> {
    Ok(match c {
        wit::Capability::Http(h) => format!("http:{h}").parse()?,
        wit::Capability::Kv => Capability::Kv,
        wit::Capability::Directory => Capability::Directory,
        wit::Capability::ExternalCalls => Capability::ExternalCalls,
        wit::Capability::Voicemail => Capability::Voicemail,
        wit::Capability::Conference => Capability::Conference,
        wit::Capability::CallerId => Capability::CallerId,
    })
}

pub(crate) fn output_from_wit(o: &wit::Output) -> OutputDecl {
    OutputDecl { id: o.id.clone(), label: o.label.clone(), terminal: o.terminal }
}

/// Why a node's declared outputs are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputsError {
    #[error("output {0} has an empty or over-long id")]
    BadId(usize),
    #[error("`error` is reserved: every node has it")]
    Reserved,
    #[error("output {0:?} is declared twice")]
    Duplicate(String),
}

/// Checks a list of outputs: ids non-empty, unique, not `error`.
pub(crate) fn check_outputs(outs: &[OutputDecl]) -> Result<(), OutputsError> {
    for (i, o) in outs.iter().enumerate() {
        if o.id.is_empty() || o.id.len() > 64 {
            return Err(OutputsError::BadId(i));
        }
        if o.id == crate::graph::ERROR_OUTPUT {
            return Err(OutputsError::Reserved);
        }
        if outs[..i].iter().any(|p| p.id == o.id) {
            return Err(OutputsError::Duplicate(o.id.clone()));
        }
    }
    Ok(())
}

/// Why what `describe()` returned cannot be a node type.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("the node type id is empty or too long")]
    BadId,
    #[error("the node type has no name")]
    NoName,
    #[error("config-schema is not JSON: {0}")]
    SchemaJson(#[source] serde_json::Error),
    #[error("config-schema is not a usable JSON Schema: {0}")]
    Schema(#[source] Box<jsonschema::ValidationError<'static>>),
    #[error("{0}")]
    Outputs(#[from] OutputsError),
    #[error("{0}")]
    Capability(#[from] CapabilityError),
    #[error("entity-kind {0:?} is not an entity type")]
    EntityKind(String),
}

/// Built-ins that are drawn but do not work yet: the queue waits for queues (ACD, hold
/// music). They load, so a flow holding one still opens, but the editor does not offer them
/// and the validator refuses to publish them (`ProblemCode::NotAvailable`).
pub const COMING_BUILTINS: &[&str] = &["queue"];

/// Turns what `describe()` returned into a node type's info, refusing what cannot work.
/// `granted: None` is a built-in (granted everything it declares).
pub(crate) fn info_from_describe(
    d: &wit::NodeInfo,
    builtin: bool,
    granted: Option<&[Capability]>,
    sha256: &str,
    wall_clock: Duration,
) -> Result<(NodeTypeInfo, Grants, Option<jsonschema::Validator>), DescribeError> {
    if d.id.is_empty() || d.id.len() > 129 {
        return Err(DescribeError::BadId);
    }
    if d.name.trim().is_empty() {
        return Err(DescribeError::NoName);
    }
    let schema: serde_json::Value = serde_json::from_str(&d.config_schema).map_err(DescribeError::SchemaJson)?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| DescribeError::Schema(Box::new(e)))?;
    let outputs: Vec<OutputDecl> = d.outputs.iter().map(output_from_wit).collect();
    check_outputs(&outputs)?;
    let capabilities = d.capabilities.iter().map(capability_from_wit).collect::<Result<Vec<_>, _>>()?;
    if let Some(k) = &d.entity_kind
        && crate::entity::EntityKind::parse(k).is_none()
    {
        return Err(DescribeError::EntityKind(k.clone()));
    }
    let grants = Grants::effective(&capabilities, granted);
    let info = NodeTypeInfo {
        id: d.id.clone(),
        name: d.name.clone(),
        version: d.version.clone(),
        category: d.category.clone(),
        icon: d.icon.clone(),
        description: d.description.clone(),
        config_schema: schema,
        outputs,
        capabilities,
        granted: grants.list(),
        entity_kind: d.entity_kind.clone(),
        entity_required: d.entity_required && d.entity_kind.is_some(),
        waits_for_caller: d.waits_for_caller,
        wall_clock_ms: wall_clock.as_millis() as u64,
        builtin,
        sha256: sha256.to_string(),
        coming: builtin && COMING_BUILTINS.contains(&d.id.as_str()),
    };
    Ok((info, grants, Some(validator)))
}

/// The node types available now.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    types: BTreeMap<String, Arc<NodeType>>,
}

impl Registry {
    /// A type by id.
    pub fn get(&self, id: &str) -> Option<&Arc<NodeType>> {
        self.types.get(id)
    }

    /// Every type's info, built-ins first, each group by id: `GET /api/v1/node-types`.
    pub fn list(&self) -> Vec<NodeTypeInfo> {
        let mut v: Vec<NodeTypeInfo> = self.types.values().map(|t| t.info.clone()).collect();
        v.sort_by(|a, b| b.builtin.cmp(&a.builtin).then(a.id.cmp(&b.id)));
        v
    }

    pub(crate) fn insert(&mut self, t: NodeType) {
        self.types.insert(t.info.id.clone(), Arc::new(t));
    }

    pub(crate) fn remove(&mut self, id: &str) -> bool {
        self.types.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_ids_are_namespaced() {
        for ok in ["acme/crm", "a-b/c_d", "x1/y2"] {
            assert!(valid_plugin_id(ok), "{ok}");
        }
        for bad in ["crm", "Acme/crm", "acme/", "/crm", "acme/crm/x", "acme/cr m", "time_switch"] {
            assert!(!valid_plugin_id(bad), "{bad}");
        }
    }

    #[test]
    fn outputs_must_be_unique_and_not_error() {
        let o = |id: &str| OutputDecl { id: id.into(), label: id.into(), terminal: false };
        assert!(check_outputs(&[o("a"), o("b")]).is_ok());
        assert_eq!(check_outputs(&[o("a"), o("a")]), Err(OutputsError::Duplicate("a".into())));
        assert_eq!(check_outputs(&[o("error")]), Err(OutputsError::Reserved));
        assert_eq!(check_outputs(&[o("b"), o("")]), Err(OutputsError::BadId(1)));
        assert_eq!(OutputsError::Duplicate("a".into()).to_string(), "output \"a\" is declared twice");
    }
}
