//! Host-side forms of what a node says about itself (`describe()`), as the API lists them:
//! capabilities, outputs, node type info.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::egress::Egress;

/// A capability a node asks for or an administrator grants. Written as a string on the wire
/// and in the plugins table: `http:api.example.com`, `http:*.example.com`, `http:*`, `kv`,
/// `directory`, `external_calls`, `voicemail`, `conference`, `caller_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Http(String),
    Kv,
    Directory,
    ExternalCalls,
    Voicemail,
    Conference,
    CallerId,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Http(h) => write!(f, "http:{h}"),
            Capability::Kv => f.write_str("kv"),
            Capability::Directory => f.write_str("directory"),
            Capability::ExternalCalls => f.write_str("external_calls"),
            Capability::Voicemail => f.write_str("voicemail"),
            Capability::Conference => f.write_str("conference"),
            Capability::CallerId => f.write_str("caller_id"),
        }
    }
}

/// A host pattern is a DNS name, `*.` + a DNS name, or `*`.
fn valid_host_pattern(p: &str) -> bool {
    if p == "*" {
        return true;
    }
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Why a capability string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// `http:` with something that is not a host pattern.
    #[error("{0:?} is not a host name, *.name or *")]
    HostPattern(String),
    #[error("unknown capability {0:?}")]
    Unknown(String),
}

impl FromStr for Capability {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, CapabilityError> {
        Ok(match s {
            "kv" => Capability::Kv,
            "directory" => Capability::Directory,
            "external_calls" => Capability::ExternalCalls,
            "voicemail" => Capability::Voicemail,
            "conference" => Capability::Conference,
            "caller_id" => Capability::CallerId,
            _ => match s.strip_prefix("http:") {
                Some(h) if valid_host_pattern(&h.to_ascii_lowercase()) => Capability::Http(h.to_ascii_lowercase()),
                Some(h) => return Err(CapabilityError::HostPattern(h.to_string())),
                None => return Err(CapabilityError::Unknown(s.to_string())),
            },
        })
    }
}

impl Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `host` (a URL's host, lowercase) matches a granted pattern.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        _ if pattern == "*" => true,
        Some(base) => host.len() > base.len() + 1 && host.ends_with(base) && host[..host.len() - base.len()].ends_with('.'),
        None => host == pattern,
    }
}

/// What an administrator granted a plugin: capabilities (each one it asks for) and, for its
/// HTTP, the non-public networks and the ports besides 80 and 443 it may reach. Stored in the
/// plugins table's `granted_capabilities` column as `{"capabilities": [..], "networks":
/// [CIDR..], "ports": [..]}`; a bare array of capabilities (the column's first shape) is read
/// as capabilities alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginGrants {
    pub capabilities: Vec<Capability>,
    pub egress: Egress,
}

impl PluginGrants {
    /// Capabilities alone (public addresses, ports 80 and 443).
    pub fn of(capabilities: &[Capability]) -> PluginGrants {
        PluginGrants { capabilities: capabilities.to_vec(), egress: Egress::default() }
    }

    /// Reads the stored column. Entries that do not parse are left out and returned as
    /// messages beside what did.
    pub fn from_stored(v: &serde_json::Value) -> (PluginGrants, Vec<String>) {
        let mut bad = Vec::new();
        let (caps, nets, ports) = match v {
            serde_json::Value::Array(_) => (Some(v), None, None),
            serde_json::Value::Object(m) => (m.get("capabilities"), m.get("networks"), m.get("ports")),
            serde_json::Value::Null => (None, None, None),
            other => {
                bad.push(format!("granted capabilities are neither a list nor an object: {other}"));
                (None, None, None)
            }
        };
        let items = |x: Option<&serde_json::Value>| x.and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
        let mut g = PluginGrants::default();
        for c in items(caps) {
            match c.as_str().map(str::parse::<Capability>) {
                Some(Ok(c)) if !g.capabilities.contains(&c) => g.capabilities.push(c),
                Some(Ok(_)) => {}
                _ => bad.push(format!("capability {c}")),
            }
        }
        for n in items(nets) {
            match n.as_str().map(crate::egress::parse_network) {
                Some(Ok(n)) if !g.egress.networks.contains(&n) => g.egress.networks.push(n),
                Some(Ok(_)) => {}
                _ => bad.push(format!("network {n}")),
            }
        }
        for p in items(ports) {
            match p.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) {
                Some(p) if !g.egress.ports.contains(&p) => g.egress.ports.push(p),
                Some(_) => {}
                None => bad.push(format!("port {p}")),
            }
        }
        (g, bad)
    }

    /// The stored column's value.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::json!({
            "capabilities": self.capabilities.iter().map(Capability::to_string).collect::<Vec<_>>(),
            "networks": self.egress.networks.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "ports": self.egress.ports,
        })
    }
}

/// What a node may use: the capabilities it declared that it was also granted, and where its
/// HTTP may go beyond the public internet. A built-in is granted everything it declares; a
/// plugin only what an administrator granted of that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    set: std::collections::BTreeSet<Capability>,
    egress: Egress,
}

impl Grants {
    /// `granted: None` = a built-in (everything declared). No egress beyond the public
    /// internet (see [`Grants::with_egress`]).
    pub fn effective(declared: &[Capability], granted: Option<&[Capability]>) -> Grants {
        let set = declared.iter().filter(|c| granted.is_none_or(|g| g.contains(c))).cloned().collect();
        Grants { set, egress: Egress::default() }
    }

    /// The same grants with these networks and ports open to its HTTP.
    pub fn with_egress(mut self, egress: Egress) -> Grants {
        self.egress = egress;
        self
    }

    /// Where its HTTP may go beyond the public internet and ports 80 and 443.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Whether a capability (other than `http`) is held.
    pub fn allows(&self, c: &Capability) -> bool {
        self.set.contains(c)
    }

    /// Whether HTTP to this host is held.
    pub fn allows_host(&self, host: &str) -> bool {
        self.set.iter().any(|c| matches!(c, Capability::Http(p) if host_matches(p, host)))
    }

    /// The capabilities held, in order.
    pub fn list(&self) -> Vec<Capability> {
        self.set.iter().cloned().collect()
    }
}

/// One output of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDecl {
    pub id: String,
    pub label: String,
    /// The call has left the flow when a node takes it; no edge is followed.
    #[serde(default)]
    pub terminal: bool,
}

/// A node type as `GET /api/v1/node-types` lists it: what `describe()` returned, plus what
/// the host decided (granted capabilities, wall clock after clamping, origin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTypeInfo {
    pub id: String,
    pub name: String,
    pub version: String,
    pub category: String,
    pub icon: String,
    pub description: String,
    /// The JSON Schema of the node's config.
    pub config_schema: serde_json::Value,
    /// The outputs it has when they do not depend on config (the implicit `error` output
    /// is not listed: every node has it).
    pub outputs: Vec<OutputDecl>,
    /// What it asks for.
    pub capabilities: Vec<Capability>,
    /// What it gets: everything it asks for (built-ins), or what an administrator granted of
    /// that (plugins).
    pub granted: Vec<Capability>,
    pub entity_kind: Option<String>,
    pub entity_required: bool,
    pub waits_for_caller: bool,
    /// The wall-clock limit of one run, after the host's clamp.
    pub wall_clock_ms: u64,
    /// Built into the binary, or an uploaded plugin.
    pub builtin: bool,
    /// The sha256 of the component (hex); empty for the entry marker.
    pub sha256: String,
    /// A built-in that is drawn but not working yet (the queue, until queues exist): the
    /// editor does not offer it, and a flow that uses it is refused at publishing.
    #[serde(default)]
    pub coming: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_round_trip_as_strings() {
        for s in ["http:api.example.com", "http:*.example.com", "http:*", "kv", "directory", "external_calls", "voicemail", "conference", "caller_id"] {
            let c: Capability = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Capability>(&json).unwrap(), c);
        }
        assert_eq!("http:API.Example.com".parse::<Capability>().unwrap(), Capability::Http("api.example.com".into()));
        for bad in ["http:", "http:a..b", "http:exa mple.com", "http:**", "root", "http:*.", "http:x/y"] {
            assert!(bad.parse::<Capability>().is_err(), "{bad}");
        }
    }

    #[test]
    fn plugins_get_only_what_was_both_declared_and_granted() {
        let declared = vec![Capability::Http("api.example.com".into()), Capability::Kv, Capability::Directory];
        let builtin = Grants::effective(&declared, None);
        assert!(builtin.allows(&Capability::Kv) && builtin.allows(&Capability::Directory));
        let plugin = Grants::effective(&declared, Some(&[Capability::Kv, Capability::Voicemail, Capability::Http("*".into())]));
        assert_eq!(plugin.list(), vec![Capability::Kv]);
        assert!(!plugin.allows(&Capability::Voicemail), "granted but never declared");
        assert!(!plugin.allows_host("api.example.com"), "a wider grant than declared gives nothing");
        let http = Grants::effective(&declared, Some(&[Capability::Http("api.example.com".into())]));
        assert!(http.allows_host("api.example.com") && !http.allows_host("other.example.com"));
    }

    #[test]
    fn stored_grants_load_in_both_shapes_and_round_trip() {
        use serde_json::json;
        // the column's first shape: a list of capabilities
        let (g, bad) = PluginGrants::from_stored(&json!(["kv", "http:api.example.com"]));
        assert!(bad.is_empty());
        assert_eq!(g, PluginGrants::of(&[Capability::Kv, Capability::Http("api.example.com".into())]));
        // the object, and back
        let v = json!({"capabilities": ["kv"], "networks": ["127.0.0.0/8", "fd00::/8"], "ports": [8080]});
        let (g, bad) = PluginGrants::from_stored(&v);
        assert!(bad.is_empty());
        assert_eq!(g.egress.networks.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.0/8", "fd00::/8"]);
        assert_eq!(g.egress.ports, [8080]);
        assert_eq!(g.to_stored(), v);
        assert_eq!(PluginGrants::from_stored(&g.to_stored()).0, g);
        // what does not parse is left out and reported; the rest loads
        let (g, bad) =
            PluginGrants::from_stored(&json!({"capabilities": ["kv", "root"], "networks": ["10.0.0.1/8", "10.0.0.0/8"], "ports": [0, 70000, "x", 22]}));
        assert_eq!(g.capabilities, [Capability::Kv]);
        assert_eq!(g.egress.networks.len(), 1);
        assert_eq!(g.egress.ports, [22]);
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert_eq!(PluginGrants::from_stored(&json!(null)).0, PluginGrants::default());
        assert_eq!(PluginGrants::from_stored(&json!({})).0, PluginGrants::default());
        assert_eq!(PluginGrants::from_stored(&json!("kv")).1.len(), 1);
    }

    #[test]
    fn host_patterns_match_exactly_what_they_say() {
        assert!(host_matches("*", "anything.test"));
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(host_matches("api.example.com", "api.example.com."));
        assert!(!host_matches("api.example.com", "evil-api.example.com"));
        assert!(!host_matches("api.example.com", "api.example.com.evil.test"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
    }
}
