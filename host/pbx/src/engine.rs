//! The flow engine of the server, wired to its live services: one [`flow::Engine`] per
//! process with the entity cache (filled and kept current by [`crate::flows::FlowService`]),
//! presence from the SIP registrar and the calls in progress ([`PbxDirectory`]), kv state in
//! the database ([`crate::flow_sync::StoreKv`]) and outbound HTTP for webhooks
//! ([`ReqwestClient`], the built-in nodes reaching what [`EngineSettings::builtin_egress`]
//! opens) — started with the published flows and enabled plugins loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flow::entity::{Entity, EntityCache, EntityKind};
use flow::services::{Directory, Presence, ReqwestClient, Services};
use flow::{Engine, EngineConfig, Limits};

use crate::error::{Error, Result};
use crate::flows::{FlowRuntime, FlowService};

/// What the server's flow engine is started with.
#[derive(Debug, Clone, Default)]
pub struct EngineSettings {
    /// `--cache-dir`: where compiled components are cached (else `<data-dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// What the built-in nodes' HTTP (the webhook) may reach besides public 80/443.
    pub builtin_egress: flow::egress::Egress,
}

/// Where compiled components are cached: `--cache-dir` (else `<data-dir>/cache`) +
/// `components`.
pub fn server_cache_dir(cache_dir: Option<&Path>, data_dir: &Path) -> PathBuf {
    cache_dir.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join("cache")).join("components")
}

/// Builds an engine (compiling the built-in nodes, or loading them from the cache) on a
/// blocking thread.
pub async fn build_engine(cache_dir: Option<PathBuf>, services: Services, limits: Limits) -> Result<Engine> {
    tokio::task::spawn_blocking(move || Engine::new(EngineConfig { cache_dir, limits }, services))
        .await
        .map_err(|e| Error::Internal(format!("starting the flow engine: {e}")))?
        .map_err(Error::Flow)
}

/// Builds the server's engine with its live services and starts `flows` with it, which
/// loads entities, enabled plugins and the live version of every published flow. Returns the
/// runtime the call wiring reaches the engine through.
pub async fn start(flows: &FlowService, pbx: &call::PbxHandle, settings: &EngineSettings) -> Result<FlowRuntime> {
    let t0 = std::time::Instant::now();
    let entities = Arc::new(EntityCache::new());
    let directory = PbxDirectory::start(pbx.clone(), entities.clone());
    let http = ReqwestClient::new().map_err(|e| Error::Internal(format!("the webhook HTTP client: {e}")))?;
    let services = Services { entities, directory, kv: crate::flow_sync::StoreKv::new(flows.store().clone()), http: Arc::new(http) };
    let limits = Limits { builtin_egress: settings.builtin_egress.clone(), ..Limits::default() };
    let engine = build_engine(Some(server_cache_dir(settings.cache_dir.as_deref(), flows.data_dir())), services, limits).await?;
    let boot = flows.start(engine).await?;
    tracing::info!(
        entities = boot.entities,
        plugins = boot.plugins,
        flows = boot.flows,
        failed = boot.failed.len(),
        ms = t0.elapsed().as_millis() as u64,
        "flow engine ready"
    );
    flows.runtime().cloned().ok_or_else(|| Error::Internal("the flow engine did not start".into()))
}

/// Starts the server's flow engine in the background (a first start compiles the node
/// components, seconds on a small machine) and then runs every inbound call through its
/// number's flow ([`crate::call_runner::run`]). The PBX's inbound calls are taken now, so calls
/// arriving while the engine starts wait for it; operations on flows wait too
/// ([`FlowService::ready`]). An engine that cannot start is logged and marked failed (health
/// says why, operations fail at once) and calls to numbers are refused with 480; the rest of
/// the PBX serves on.
pub fn start_in_background(flows: FlowService, pbx: call::PbxHandle, settings: EngineSettings) -> tokio::task::JoinHandle<()> {
    let incoming = pbx.incoming_calls();
    flows.starting();
    tokio::spawn(async move {
        match start(&flows, &pbx, &settings).await {
            Ok(runtime) => {
                if let Some(rx) = incoming {
                    crate::call_runner::run(pbx, runtime, rx, flows.metrics().clone()).await;
                }
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, "the flow engine could not start: calls to numbers are refused");
                flows.failed(&why);
            }
        }
    })
}

/// Presence for the ring strategies and routing decisions, from the running PBX: registered
/// devices from the registrar's bindings; on a call and the end of the last call from the
/// calls in progress, matched by the extension's number (the caller's number or the number
/// dialled). A call a flow bridged to an extension is attributed once the call crate reports
/// the answering extension.
pub struct PbxDirectory {
    pbx: call::PbxHandle,
    entities: Arc<EntityCache>,
    /// Numbers (caller and callee) of each call in progress, by call key.
    calls: Mutex<HashMap<call::CallKey, [String; 2]>>,
    /// Number → when its last call ended.
    last_end: Mutex<HashMap<String, jiff::Timestamp>>,
}

impl PbxDirectory {
    /// The directory, following the PBX's call events from now on.
    pub fn start(pbx: call::PbxHandle, entities: Arc<EntityCache>) -> Arc<PbxDirectory> {
        let d = Arc::new(PbxDirectory { pbx: pbx.clone(), entities, calls: Mutex::new(HashMap::new()), last_end: Mutex::new(HashMap::new()) });
        let mut events = pbx.subscribe();
        let me = Arc::downgrade(&d);
        tokio::spawn(async move {
            loop {
                let ev = match events.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "presence missed call events");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let Some(d) = me.upgrade() else { break };
                d.on_event(ev);
            }
        });
        d
    }

    fn on_event(&self, ev: call::PbxEvent) {
        match ev {
            call::PbxEvent::CallStarted(c) | call::PbxEvent::CallUpdated(c) => {
                self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(c.key, [c.caller_id_num, c.callee]);
            }
            call::PbxEvent::CallEnded { key, .. } => {
                let numbers = self.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                if let Some(numbers) = numbers {
                    let now = jiff::Timestamp::now();
                    let mut last = self.last_end.lock().unwrap_or_else(|e| e.into_inner());
                    for n in numbers {
                        last.insert(n, now);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Directory for PbxDirectory {
    fn presence(&self, extension_id: i64) -> Presence {
        let registered_devices = u32::try_from(self.pbx.registrations(extension_id).len()).unwrap_or(u32::MAX);
        let number = match self.entities.get(EntityKind::Extension, extension_id).map(|c| c.entity) {
            Some(e) => match &*e {
                Entity::Extension(x) => Some(x.extension.clone()),
                _ => None,
            },
            None => None,
        };
        let Some(number) = number else { return Presence { registered_devices, ..Presence::default() } };
        let in_call = self.pbx.active_calls().iter().any(|c| c.state == call::CallState::Answered && (c.caller_id_num == number || c.callee == number));
        let last_call_ended = self.last_end.lock().unwrap_or_else(|e| e.into_inner()).get(&number).copied();
        Presence { registered_devices, in_call, last_call_ended }
    }
}
