//! Plugin tooling, as library functions the binary's subcommands and the API call:
//!
//! - [`scaffold_plugin`]: `flowpbx node new vendor/name` — a plugin crate ready to build;
//! - [`build_plugin`]: `flowpbx node build` — wasm32 build, wit-component, world check,
//!   `describe()`;
//! - [`Engine::test_plugin`](crate::Engine::test_plugin) (in `sim`): `flowpbx node test
//!   PLUGIN.wasm --script SCRIPT`;
//! - [`inspect_plugin`]: what `POST /api/v1/plugins` runs on an upload (size limit, world
//!   version, `describe()` within limits, namespaced id, sha256).

use serde::Serialize;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

use crate::engine::Engine;
use crate::registry::{valid_plugin_id, NodeType};
use crate::toolchain::WasmToolchain;
use crate::types::{Capability, NodeTypeInfo, PluginGrants};
use crate::Error;

/// The WIT package every node targets.
pub const WORLD_PACKAGE: &str = "flowpbx:node";
/// The world versions this host loads. A component built against any of them runs; see
/// `wit/README.md` for the policy.
pub const SUPPORTED_WORLD_VERSIONS: &[&str] = &["0.1.0"];
/// The interfaces a node may import.
const IMPORTABLE: [&str; 7] = ["types", "call", "directory", "clock", "http", "kv", "log"];

/// `flowpbx:node/<iface>@<version>` → (iface, version).
fn split_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(WORLD_PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// Why a component is not a node this FlowPBX can load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("the component does not export {WORLD_PACKAGE}/node: it is not a FlowPBX node")]
    NotANode,
    /// It targets a world version this FlowPBX does not load.
    #[error("the component targets {WORLD_PACKAGE}@{version}; this FlowPBX loads {}", SUPPORTED_WORLD_VERSIONS.join(", "))]
    Version { version: String },
    /// It imports something outside the contract (`name`) at `version`.
    #[error("the component imports {name}, which a node cannot have (nodes get no WASI and nothing outside {WORLD_PACKAGE}@{version})")]
    Import { name: String, version: String },
}

/// Checks that a component exports `flowpbx:node/node` at a supported version and imports
/// nothing but the contract's interfaces (no WASI, nothing else). Returns the version.
pub fn check_world(engine: &wasmtime::Engine, component: &Component) -> Result<String, WorldError> {
    let ty = component.component_type();
    let mut version = None;
    for (name, _) in ty.exports(engine) {
        if let Some(("node", v)) = split_name(name) {
            version = Some(v.to_string());
        }
    }
    let Some(version) = version else {
        return Err(WorldError::NotANode);
    };
    if !SUPPORTED_WORLD_VERSIONS.contains(&version.as_str()) {
        return Err(WorldError::Version { version });
    }
    for (name, _) in ty.imports(engine) {
        match split_name(name) {
            Some((iface, v)) if IMPORTABLE.contains(&iface) && v == version => {}
            _ => return Err(WorldError::Import { name: name.to_string(), version }),
        }
    }
    Ok(version)
}

/// What an upload (or a build) turned out to be.
#[derive(Debug, Clone, Serialize)]
pub struct PluginManifest {
    /// What `describe()` said; `granted` is empty here: an administrator grants later.
    pub info: NodeTypeInfo,
    pub sha256: String,
    pub world_version: String,
    pub size: usize,
}

impl PluginManifest {
    /// The capabilities the plugin asks for (the plugins row's `requested`).
    pub fn requested(&self) -> &[Capability] {
        &self.info.capabilities
    }
}

const COMPONENT_MAGIC: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const CORE_MAGIC: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

impl Engine {
    /// Checks and loads a plugin component into a node type with what was `granted`.
    pub(crate) fn plugin_type(&self, bytes: &[u8], granted: &PluginGrants) -> Result<NodeType, Error> {
        let max = self.limits().max_plugin_bytes;
        if bytes.len() > max {
            return Err(Error::Plugin(format!("the component is {} bytes; the limit is {max}", bytes.len())));
        }
        if bytes.starts_with(&CORE_MAGIC) {
            return Err(Error::Plugin("this is a core wasm module, not a component: build it with `flowpbx node build`".into()));
        }
        if !bytes.starts_with(&COMPONENT_MAGIC) {
            return Err(Error::Plugin("this is not a WebAssembly component".into()));
        }
        let t = self.node_type_from(bytes, false, Some(granted))?;
        if !valid_plugin_id(&t.info.id) {
            return Err(Error::Plugin(format!("plugin ids are `vendor/name` (lowercase letters, digits, - and _); {:?} is not", t.info.id)));
        }
        if self.registry().get(&t.info.id).is_some_and(|b| b.info.builtin) {
            return Err(Error::Plugin(format!("{} is a built-in node type", t.info.id)));
        }
        Ok(t)
    }
}

/// Validates an uploaded plugin without installing it: size limit, a component (not a core
/// module), the supported world, imports limited to the contract, `describe()` run within
/// the limits, a namespaced id. The caller stores it as `<data-dir>/plugins/<sha256>.wasm`
/// and lists `requested()` for an administrator to grant.
pub fn inspect_plugin(engine: &Engine, bytes: &[u8]) -> Result<PluginManifest, Error> {
    let t = engine.plugin_type(bytes, &PluginGrants::default())?;
    let component = t.component.as_ref().ok_or_else(|| Error::Plugin("no component".into()))?;
    let world_version = check_world(&engine.inner.wasm, component).map_err(|e| Error::Plugin(e.to_string()))?;
    Ok(PluginManifest { sha256: t.info.sha256.clone(), info: t.info, world_version, size: bytes.len() })
}

/// Turns a core wasm module built with wit-bindgen into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, Error> {
    wit_component::ComponentEncoder::default().module(core).and_then(|e| e.validate(true).encode()).map_err(|e| Error::Build(format!("wit-component: {e:#}")))
}

/// Where the plugin's SDK dependency comes from in a scaffolded crate.
#[derive(Debug, Clone)]
pub enum SdkSource {
    /// A copy of the SDK this binary was built with, written into the plugin's directory
    /// (`flowpbx-node-sdk/`): works offline, always matches the host's world.
    Vendored,
    /// A path to an SDK checkout (`sdk/` of the FlowPBX sources).
    Path(PathBuf),
    /// A version from a registry.
    Version(String),
}

/// A node crate's `.cargo/config.toml`: 2 MiB of initial memory, so the SDK's allocator
/// serves a run from it without growing memory (growth costs the host two `mprotect`s).
const NODE_CARGO_CONFIG: &str = include_str!("../../../nodes/.cargo/config.toml");

/// The SDK sources, for [`SdkSource::Vendored`].
const SDK_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../sdk/Cargo.toml")),
    ("README.md", include_str!("../../../sdk/README.md")),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("src/entity.rs", include_str!("../../../sdk/src/entity.rs")),
    ("src/host.rs", include_str!("../../../sdk/src/host.rs")),
    ("src/alloc.rs", include_str!("../../../sdk/src/alloc.rs")),
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    ("wit/call.wit", include_str!("../../../wit/call.wit")),
    ("wit/directory.wit", include_str!("../../../wit/directory.wit")),
    ("wit/clock.wit", include_str!("../../../wit/clock.wit")),
    ("wit/http.wit", include_str!("../../../wit/http.wit")),
    ("wit/kv.wit", include_str!("../../../wit/kv.wit")),
    ("wit/log.wit", include_str!("../../../wit/log.wit")),
    ("wit/world.wit", include_str!("../../../wit/world.wit")),
];

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Writes a new plugin crate for node type `id` (`vendor/name`) into `parent/<name>`: a
/// working example node (it greets the caller by TTS and continues), its Cargo.toml, a
/// README, and a simulator script for `flowpbx node test`. Returns the crate's directory.
pub fn scaffold_plugin(id: &str, parent: &Path, sdk: &SdkSource) -> Result<PathBuf, Error> {
    if !valid_plugin_id(id) {
        return Err(Error::Plugin(format!("{id:?}: a node type id is vendor/name (lowercase letters, digits, - and _)")));
    }
    let (_, name) = id.split_once('/').unwrap_or(("", id));
    let dir = parent.join(name);
    if dir.exists() {
        return Err(Error::Plugin(format!("{} already exists", dir.display())));
    }
    let dep = match sdk {
        SdkSource::Vendored => {
            for (rel, text) in SDK_FILES {
                write(&dir.join("flowpbx-node-sdk").join(rel), text)?;
            }
            r#"{ path = "flowpbx-node-sdk" }"#.to_string()
        }
        SdkSource::Path(p) => format!("{{ path = {:?} }}", p.display().to_string()),
        SdkSource::Version(v) => format!("{v:?}"),
    };
    let ty = name.replace('-', "_");
    let struct_name: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    write(
        &dir.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
description = "FlowPBX node type {id}"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
flowpbx-node-sdk = {dep}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A plugin is a workspace of its own.
[workspace]
exclude = ["flowpbx-node-sdk"]
"#
        ),
    )?;
    write(
        &dir.join("src/lib.rs"),
        &format!(
            r#"//! The FlowPBX node type `{id}`. Build it with `flowpbx node build`, try it with
//! `flowpbx node test target/flowpbx/{ty}.wasm --script test-script.json`.

use flowpbx_node_sdk::{{self as sdk, Host, Input, Node, NodeError, NodeInfo}};
use serde::Deserialize;

/// The graph node's configuration (checked against the schema in `describe`).
#[derive(Deserialize)]
pub struct Config {{
    /// What to say to the caller.
    #[serde(default = "default_greeting")]
    pub greeting: String,
}}

fn default_greeting() -> String {{
    "Hello, and thank you for calling.".into()
}}

pub struct {struct_name};

impl Node for {struct_name} {{
    type Config = Config;

    fn describe() -> NodeInfo {{
        NodeInfo {{
            category: "audio".into(),
            icon: "👋".into(),
            description: "Greets the caller by name when it is known, then continues.".into(),
            config_schema: sdk::schema(serde_json::json!({{
                "type": "object",
                "properties": {{ "greeting": {{ "type": "string", "minLength": 1, "maxLength": 500 }} }}
            }})),
            outputs: vec![sdk::output("next", "Next")],
            waits_for_caller: true,
            wall_clock_ms: 60_000,
            ..sdk::node_info("{id}", "{struct_name}", env!("CARGO_PKG_VERSION"))
        }}
    }}

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {{
        let caller = host.info().caller;
        let text = match caller.name {{
            Some(name) => format!("{{}} {{}}", input.config.greeting, name),
            None => input.config.greeting.clone(),
        }};
        sdk::info!(host, "greeting {{}}", caller.number);
        host.say(&text)?;
        Ok("next".into())
    }}
}}

#[cfg(target_arch = "wasm32")]
sdk::export_node!({struct_name});
"#
        ),
    )?;
    write(
        &dir.join("test-script.json"),
        r#"{
  "caller": { "number": "+61400000001", "name": "Alice" },
  "dialled": "+61299990000",
  "clock": { "start": "2026-12-25T09:00", "zone": "Australia/Sydney" },
  "node": { "config": { "greeting": "Good morning" } }
}
"#,
    )?;
    write(&dir.join(".gitignore"), "/target\n")?;
    write(&dir.join(".cargo/config.toml"), NODE_CARGO_CONFIG)?;
    write(
        &dir.join("README.md"),
        &format!(
            "# {id}\n\nA FlowPBX node type.\n\n- `flowpbx node build` builds `target/flowpbx/{ty}.wasm` (a component) and runs its `describe()`.\n- `flowpbx node test target/flowpbx/{ty}.wasm --script test-script.json` runs it in the call simulator.\n- Upload the `.wasm` in the web UI (Plugins) and grant what it asks for.\n\nThe SDK's documentation (`cargo doc --open -p flowpbx-node-sdk`) has a complete example.\n"
        ),
    )?;
    Ok(dir)
}

/// The result of [`build_plugin`].
#[derive(Debug, Clone, Serialize)]
pub struct BuildOutput {
    /// `target/flowpbx/<lib>.wasm`: the component.
    pub component: PathBuf,
    pub manifest: PluginManifest,
}

fn cdylib_name(cargo: &Path, dir: &Path) -> Result<String, Error> {
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dir)
        .output()
        .map_err(|e| Error::Build(format!("running {} metadata: {e}", cargo.display())))?;
    if !out.status.success() {
        return Err(Error::Build(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Build(format!("cargo metadata: {e}")))?;
    let manifest = dir.join("Cargo.toml").canonicalize().map_err(|e| Error::io("Cargo.toml", e))?;
    let pkg = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().and_then(|m| Path::new(m).canonicalize().ok()).as_deref() == Some(&manifest))
        .ok_or_else(|| Error::Build(format!("no package in {}", manifest.display())))?;
    pkg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["crate_types"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .and_then(|t| t["name"].as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| Error::Build("the crate has no cdylib target: add `crate-type = [\"cdylib\", \"rlib\"]` under [lib]".into()))
}

/// Builds the plugin crate in `dir`: `cargo build --release --target wasm32-unknown-unknown`
/// (rustup's target, or Debian's toolchain with build-std), wit-component, then the checks of
/// [`inspect_plugin`] (world version, `describe()`). Writes `<target>/flowpbx/<lib>.wasm`;
/// `target_dir` defaults to `<dir>/target`.
pub fn build_plugin(engine: &Engine, dir: &Path, target_dir: Option<&Path>) -> Result<BuildOutput, Error> {
    let tc = WasmToolchain::detect(None, None)?;
    let lib = cdylib_name(&tc.cargo, dir)?;
    let target = target_dir.map(Path::to_path_buf).unwrap_or_else(|| dir.join("target"));
    let out = tc.build_command(dir, &target).output().map_err(|e| Error::Build(format!("running {}: {e}", tc.cargo.display())))?;
    if !out.status.success() {
        return Err(Error::Build(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let core_path = WasmToolchain::artifact(&target, &lib);
    let core = std::fs::read(&core_path).map_err(|e| Error::io(format!("reading {}", core_path.display()), e))?;
    let component = componentize(&core)?;
    let path = target.join("flowpbx").join(format!("{lib}.wasm"));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    std::fs::write(&path, &component).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let manifest = inspect_plugin(engine, &component)?;
    Ok(BuildOutput { component: path, manifest })
}
