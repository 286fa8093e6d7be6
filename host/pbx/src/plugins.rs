//! Node plugins: upload a component (checked: size limit, a component targeting a supported
//! world version, `describe()` within the limits, a namespaced id), grant capabilities,
//! networks and ports, enable or disable a version, delete one no flow uses.
//!
//! A component is stored as `<data-dir>/plugins/<sha256>.wasm` and described by a
//! `plugins` row; several versions of one plugin may be uploaded, one is enabled at a time.
//! Enabling puts its node type in the registry (the palette and new publications use it);
//! published flows keep the version they were published with until they are republished.
//! Grants are the row's: a change applies to the next call of every flow running that
//! version. Besides capabilities, an administrator may open non-public networks (CIDRs) and
//! ports other than 80 and 443 to a plugin's HTTP; its `http:<host>` grants alone reach only
//! public addresses on 80 and 443 (see `flow::egress`). They are stored in the row's
//! `granted_capabilities` JSON as `{"capabilities", "networks", "ports"}`; rows holding the
//! first shape, a bare list of capabilities, keep loading.
//!
//! Who may do what (only a signed-in session uploads or grants) is the API's to check.

use std::path::Path;

use flow::types::{Capability, PluginGrants};
use serde_json::{json, Value};
use store::{Actor, NewPlugin, Page, Plugin, Reference, Store};

use crate::error::{Error, FieldProblem, Result};
use crate::flows::{install_plugin_row, plugin_bytes, FlowRuntime, PLUGINS_DIR};

/// What a plugins row grants (`granted_capabilities`: capabilities, networks and ports, or
/// the column's first shape, a list of capabilities); unreadable entries are skipped.
pub fn grants(p: &Plugin) -> PluginGrants {
    let (g, bad) = PluginGrants::from_stored(&p.granted_capabilities);
    for b in bad {
        tracing::warn!(plugin = %p.key(), version = %p.version, entry = %b, "ignoring an unreadable stored grant");
    }
    g
}

/// Capabilities stored in a plugins row (a JSON array of strings); unreadable ones are
/// skipped.
pub fn capabilities(v: &Value) -> Vec<Capability> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| match c.as_str().map(str::parse::<Capability>) {
            Some(Ok(c)) => Some(c),
            _ => {
                tracing::warn!(capability = %c, "ignoring an unreadable stored capability");
                None
            }
        })
        .collect()
}

/// Where a plugin component is stored: `<data-dir>/plugins/<sha256>.wasm` (relative path).
pub fn component_file(sha256: &str) -> String {
    Path::new(PLUGINS_DIR).join(format!("{sha256}.wasm")).to_string_lossy().into_owned()
}

/// A change of a plugin version; absent fields are kept.
#[derive(Debug, Clone, Default)]
pub struct PluginChange {
    /// The capabilities granted (each one it asks for); the rest are denied.
    pub granted_capabilities: Option<Vec<String>>,
    /// Non-public networks its HTTP may reach: CIDRs without host bits, or addresses.
    pub granted_networks: Option<Vec<String>>,
    /// Ports its HTTP may use besides 80 and 443.
    pub granted_ports: Option<Vec<u16>>,
    /// Enabling one version of a plugin disables its other versions.
    pub enabled: Option<bool>,
}

impl PluginChange {
    /// Whether it changes what the plugin may reach.
    pub fn grants_anything(&self) -> bool {
        self.granted_capabilities.is_some() || self.granted_networks.is_some() || self.granted_ports.is_some()
    }
}

/// The grants a change asks for: the stored ones with the fields it gives replaced, each
/// checked (every problem named by its field: `granted_networks[1]`).
pub fn parse_grants(p: &Plugin, change: &PluginChange) -> Result<PluginGrants> {
    let mut out = grants(p);
    let mut errors = Vec::new();
    if let Some(given) = &change.granted_capabilities {
        let requested = capabilities(&p.requested_capabilities);
        out.capabilities.clear();
        for (i, s) in given.iter().enumerate() {
            let field = format!("granted_capabilities[{i}]");
            match s.parse::<Capability>() {
                Err(m) => errors.push(FieldProblem { field, message: m.to_string() }),
                Ok(c) if !requested.contains(&c) => errors.push(FieldProblem { field, message: format!("{c} is not something {} asks for", p.key()) }),
                Ok(c) => {
                    if !out.capabilities.contains(&c) {
                        out.capabilities.push(c);
                    }
                }
            }
        }
    }
    if let Some(given) = &change.granted_networks {
        out.egress.networks.clear();
        for (i, s) in given.iter().enumerate() {
            match flow::egress::parse_network(s) {
                Err(m) => errors.push(FieldProblem { field: format!("granted_networks[{i}]"), message: m.to_string() }),
                Ok(n) => {
                    if !out.egress.networks.contains(&n) {
                        out.egress.networks.push(n);
                    }
                }
            }
        }
    }
    if let Some(given) = &change.granted_ports {
        out.egress.ports.clear();
        for (i, &port) in given.iter().enumerate() {
            if port == 0 {
                errors.push(FieldProblem { field: format!("granted_ports[{i}]"), message: "must be between 1 and 65535".into() });
            } else if !out.egress.ports.contains(&port) {
                out.egress.ports.push(port);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Where a plugin version is still used: the nodes of live versions that run it, and — when
/// it is the enabled version, the one drafts use — the nodes of drafts.
async fn users(store: &Store, p: &Plugin) -> Result<Vec<Reference>> {
    let key = p.key();
    let mut out = Vec::new();
    for f in store.call_flows().list(Page::all()).await?.items {
        let mut nodes_of = |graph: &Value, via: &dyn Fn(&str) -> String| {
            for n in graph["nodes"].as_array().into_iter().flatten() {
                if n["type"].as_str() == Some(key.as_str()) {
                    out.push(Reference { entity_type: "call_flow".into(), entity_id: f.id, name: f.name.clone(), via: via(n["id"].as_str().unwrap_or("?")) });
                }
            }
        };
        if p.enabled {
            nodes_of(&f.flow_data, &|n| format!("node:{n}"));
        }
        if f.published
            && let Some(v) = store.flow_versions().latest(f.id).await?
            && v.plugins.get(&key).and_then(Value::as_str) == Some(p.sha256.as_str())
        {
            let version = v.version;
            nodes_of(&v.flow_data, &|n| format!("published:v{version}:node:{n}"));
        }
    }
    Ok(out)
}

impl FlowRuntime {
    /// Installs an enabled plugin row into the engine's registry.
    async fn install_plugin(&self, p: &Plugin) -> Result<()> {
        install_plugin_row(self.engine(), self.data_dir(), p)
            .await
            .map(|_| ())
            .map_err(|m| Error::Internal(format!("installing {} {}: {m}", p.key(), p.version)))
    }

    /// Writes a component to `<data-dir>/plugins/<sha256>.wasm` (temporary name, then rename).
    async fn store_component(&self, sha256: &str, bytes: &[u8]) -> Result<String> {
        let rel = component_file(sha256);
        let dir = self.data_dir().join(PLUGINS_DIR);
        let io = |e: std::io::Error| Error::Internal(format!("storing a plugin component: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let tmp = dir.join(format!(".{sha256}.{}.tmp", store::random_token(6)));
        let write = async {
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            tokio::fs::rename(&tmp, self.data_dir().join(&rel)).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io(e));
        }
        Ok(rel)
    }

    /// Stores an uploaded component as a new plugin version: disabled, nothing granted. A
    /// component the engine refuses names `file`; a version already uploaded is a conflict.
    pub async fn upload_plugin(&self, bytes: Vec<u8>, actor: &Actor) -> Result<Plugin> {
        let engine = self.engine().clone();
        let (manifest, bytes) =
            tokio::task::spawn_blocking(move || (flow::tooling::inspect_plugin(&engine, &bytes), bytes)).await.map_err(|e| Error::Internal(e.to_string()))?;
        let manifest = manifest.map_err(|e| Error::from_flow(e, "file"))?;
        let id = manifest.info.id.clone();
        let (vendor, name) = id.split_once('/').ok_or_else(|| Error::field("file", format!("{id:?} is not vendor/name")))?;
        let version = manifest.info.version.clone();
        let store = self.store();
        if let Some(existing) = store.plugins().get_by_identity(vendor, name, &version).await? {
            return Err(if existing.sha256 == manifest.sha256 {
                Error::Conflict { message: format!("{id} {version} is already uploaded (plugin {})", existing.id), references: vec![] }
            } else {
                Error::field("file", format!("{id} {version} is already uploaded with other content: give the new build a new version"))
            });
        }
        let rel = self.store_component(&manifest.sha256, &bytes).await?;
        let requested: Vec<String> = manifest.requested().iter().map(Capability::to_string).collect();
        let new = NewPlugin {
            vendor: vendor.to_owned(),
            name: name.to_owned(),
            version: version.clone(),
            sha256: manifest.sha256.clone(),
            file_path: rel.clone(),
            requested_capabilities: json!(requested),
            granted_capabilities: PluginGrants::default().to_stored(),
            enabled: false,
        };
        let result = async {
            let mut tx = store.begin().await?;
            let p = tx.plugins().insert(&new).await?;
            let after = json!({"plugin": id, "version": version, "sha256": p.sha256, "size": bytes.len(), "requested_capabilities": requested});
            tx.audit(actor, "create", "plugin", Some(&p.id.to_string()), None, Some(&after)).await?;
            tx.commit().await?;
            Ok::<_, Error>(p)
        }
        .await;
        match result {
            Ok(p) => {
                tracing::info!(plugin = %id, %version, sha256 = %p.sha256, "plugin uploaded");
                Ok(p)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(self.data_dir().join(&rel)).await;
                Err(e)
            }
        }
    }

    /// Changes a plugin version's grants or whether it is enabled (enabling one version
    /// disables the others of its plugin). Grant changes reach the next call of every live
    /// flow running this version.
    pub async fn update_plugin(&self, id: i64, change: &PluginChange, actor: &Actor) -> Result<Plugin> {
        let store = self.store();
        let current = store.plugins().get(id).await?.ok_or(Error::NotFound)?;
        let granted = parse_grants(&current, change)?;
        let grants_changed = granted != grants(&current);
        let enable = change.enabled.unwrap_or(current.enabled);
        if enable && !current.enabled {
            // Checked before anything changes: the component still loads.
            let bytes = plugin_bytes(self.data_dir(), &current).await.map_err(|m| Error::field("enabled", m.to_string()))?;
            let engine = self.engine().clone();
            tokio::task::spawn_blocking(move || flow::tooling::inspect_plugin(&engine, &bytes))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map_err(|e| Error::from_flow(e, "enabled"))?;
        }
        let mut tx = store.begin().await?;
        let mut row = current.clone();
        if grants_changed {
            row = tx.plugins().set_granted(id, &granted.to_stored()).await?;
        }
        let mut disabled_others = Vec::new();
        if enable != current.enabled {
            if enable {
                for other in store.plugins().list_enabled().await?.into_iter().filter(|o| o.key() == current.key() && o.id != id) {
                    tx.plugins().set_enabled(other.id, false).await?;
                    disabled_others.push(other.version);
                }
            }
            row = tx.plugins().set_enabled(id, enable).await?;
        }
        let before = json!({"granted_capabilities": current.granted_capabilities, "enabled": current.enabled});
        let after = json!({"granted_capabilities": row.granted_capabilities, "enabled": row.enabled, "disabled_versions": disabled_others});
        tx.audit(actor, "update", "plugin", Some(&id.to_string()), Some(&before), Some(&after)).await?;
        tx.commit().await?;

        if row.enabled && (!current.enabled || grants_changed) {
            self.install_plugin(&row).await?;
        } else if !row.enabled && current.enabled {
            self.engine().remove_plugin(&row.key());
        }
        if grants_changed {
            self.reload_flows_using(&row.sha256).await;
        }
        Ok(row)
    }

    /// Deletes a plugin version no flow uses (a conflict listing the flows' nodes when one
    /// does), with its component file.
    pub async fn delete_plugin(&self, id: i64, actor: &Actor) -> Result<Plugin> {
        let store = self.store();
        let p = store.plugins().get(id).await?.ok_or(Error::NotFound)?;
        let refs = users(store, &p).await?;
        if !refs.is_empty() {
            return Err(Error::Conflict { message: format!("{} {} is still in use ({} references)", p.key(), p.version, refs.len()), references: refs });
        }
        let mut tx = store.begin().await?;
        let gone = tx.plugins().delete(id).await?.ok_or(Error::NotFound)?;
        let before = json!({"plugin": gone.key(), "version": gone.version, "sha256": gone.sha256, "enabled": gone.enabled});
        tx.audit(actor, "delete", "plugin", Some(&id.to_string()), Some(&before), None).await?;
        tx.commit().await?;
        if gone.enabled {
            self.engine().remove_plugin(&gone.key());
        }
        if let Err(e) = tokio::fs::remove_file(self.data_dir().join(&gone.file_path)).await {
            tracing::warn!(error = %e, file = %gone.file_path, "could not remove a deleted plugin's component");
        }
        Ok(gone)
    }
}
