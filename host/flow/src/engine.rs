//! The wasmtime host: one [`Engine`] per process. It owns the wasmtime engine (component
//! model, async, pooling allocator, epoch interruption), the linker with the host
//! interfaces, the compiled-component cache, the node registry and the table of published
//! flows, and runs node components under their limits.
//!
//! Limits of one node run: memory (`Limits::memory_bytes`, enforced by a resource limiter
//! and the pool's slot size), CPU (`Limits::cpu` of guest execution: an epoch callback
//! compares wall time minus time spent in host calls with the budget, so waiting for a
//! caller costs nothing), wall clock (the host's `Limits::wall_clock` of the node's own
//! time — a node type may ask for less in `describe()`, never more — with waits on the caller
//! not counted, and `Limits::max_wall_clock` for the whole run), and the wasm stack. A
//! separate thread advances the epoch every millisecond.

use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::{types as wit, Plugin, PluginPre};
use crate::cache::ComponentCache;
use crate::control::CallControl;
use crate::egress::Egress;
use crate::entity::{EntityKind, Pinned};
use crate::graph::{Graph, GraphNode, ENTRY_TYPE, ERROR_OUTPUT};
use crate::host::{guest_text, wall_limited, CallCtx, HostState, WallClock, MAX_LOG_BYTES};
use crate::registry::{self, NodeType, Registry};
use crate::services::Services;
use crate::trace::{LogLine, Trace};
use crate::types::{Grants, NodeTypeInfo, OutputDecl, PluginGrants};
use crate::validate::{self, Catalog, Problem};
use crate::Error;

/// Limits on node runs and plugins.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory of one run (default 16 MiB).
    pub memory_bytes: usize,
    /// Guest CPU time of one run, host calls excluded (default 50 ms).
    pub cpu: Duration,
    /// Node runs per call (default 200): stops a runaway flow.
    pub max_node_runs: u32,
    /// The wall clock of a node's own time in one run (default 30 s): guest code and the host
    /// calls that do not wait on the caller (HTTP, kv, …). The host's limit: a node type may
    /// ask for less in `describe()` (`wall-clock-ms`), never more. Time waiting on the caller
    /// (prompts, digits, ringing, voicemail, transfer, conference) is not counted.
    pub wall_clock: Duration,
    /// The longest one run may last, waits on the caller included (default 4 h 5 min: a
    /// conference).
    pub max_wall_clock: Duration,
    /// Wall clock of `describe()` and `outputs()` (default 2 s).
    pub describe_wall_clock: Duration,
    /// Per node type id, an own-time wall clock to use instead of `wall_clock` and what the
    /// type asks for (the host's configuration: it may be longer than `wall_clock`).
    pub wall_clock_overrides: BTreeMap<String, Duration>,
    /// Where the built-in nodes' HTTP (the webhook) may go beyond the public internet and
    /// ports 80 and 443 (default: nowhere). A plugin's comes from its grant.
    pub builtin_egress: Egress,
    /// The largest plugin component accepted (default 10 MiB).
    pub max_plugin_bytes: usize,
    /// Node runs that may execute at once (the pooling allocator's size; default 256).
    pub max_concurrent_runs: u32,
    /// The wasm stack of one run (default 512 KiB).
    pub max_wasm_stack: usize,
    /// How much of a freed memory slot stays resident to be reset in place rather than
    /// decommitted (default 1 MiB; Linux 6.7+ only). Bounds the resident memory of idle
    /// slots at `max_concurrent_runs` × this.
    pub keep_resident_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 16 << 20,
            cpu: Duration::from_millis(50),
            max_node_runs: 200,
            wall_clock: Duration::from_secs(30),
            max_wall_clock: Duration::from_secs(4 * 3600 + 300),
            describe_wall_clock: Duration::from_secs(2),
            wall_clock_overrides: BTreeMap::new(),
            builtin_egress: Egress::default(),
            max_plugin_bytes: 10 << 20,
            max_concurrent_runs: 256,
            max_wasm_stack: 512 << 10,
            keep_resident_bytes: 1 << 20,
        }
    }
}

/// How to build an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Where compiled components are cached (`<data-dir>/cache/components`); `None`: no cache.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
}

/// Why a node run failed. Shown in the trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("CPU budget of {0:?} exceeded")]
    Cpu(Duration),
    #[error("memory limit of {0} bytes exceeded")]
    Memory(usize),
    #[error("wall-clock limit of {0:?} exceeded")]
    WallClock(Duration),
    #[error("wasm stack overflow")]
    StackOverflow,
    #[error("trap: {0}")]
    Trap(String),
    #[error("returned output {0:?}, which the node does not declare")]
    UndeclaredOutput(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("the caller hung up")]
    CallerHungUp,
    #[error("node run limit ({0} per call) reached")]
    StepLimit(u32),
}

const TICK: Duration = Duration::from_millis(1);
/// A running guest yields to the executor at least this often (in ticks).
const SLICE_TICKS: u64 = 10;

fn ticks(d: Duration) -> u64 {
    (d.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

/// Advances the engine's epoch every [`TICK`] while guest code may run (a store is alive),
/// and sleeps parked otherwise: an idle PBX pays no thousand wake-ups a second.
struct Ticker {
    shared: Arc<TickShared>,
}

struct TickShared {
    stop: AtomicBool,
    /// Stores alive ([`Awake`] guards).
    running: AtomicUsize,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// Keeps the epoch advancing while held: one per store (in its [`HostState`]).
pub(crate) struct Awake(Arc<TickShared>);

impl Drop for Awake {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    fn start(engine: wasmtime::Engine) -> Result<Ticker, Error> {
        let shared = Arc::new(TickShared { stop: AtomicBool::new(false), running: AtomicUsize::new(0), thread: std::sync::OnceLock::new() });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("flow-epoch".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Relaxed) {
                    if s.running.load(Ordering::SeqCst) == 0 {
                        // an unpark that came first makes this return at once
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| Error::io("starting the epoch thread", e))?;
        let _ = shared.thread.set(handle.thread().clone());
        Ok(Ticker { shared })
    }

    /// The epoch advances until the guard is dropped.
    fn wake(&self) -> Awake {
        if self.shared.running.fetch_add(1, Ordering::SeqCst) == 0
            && let Some(t) = self.shared.thread.get()
        {
            t.unpark();
        }
        Awake(self.shared.clone())
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.shared.thread.get() {
            t.unpark();
        }
    }
}

/// One graph node, ready to run.
pub(crate) struct PreparedNode {
    pub node: GraphNode,
    pub ty: Arc<NodeType>,
    pub pre: Option<PluginPre<HostState>>,
    /// `data.config` as JSON text.
    pub config_json: String,
    /// The node's outputs, keyed by the revision of the entity they were computed with (0:
    /// no entity): recomputed in the run's own instance when the entity changed.
    pub outputs: Mutex<(u64, Arc<Vec<OutputDecl>>)>,
}

impl PreparedNode {
    fn cached_outputs(&self, rev: u64) -> Option<Arc<Vec<OutputDecl>>> {
        let g = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        (g.0 == rev).then(|| g.1.clone())
    }
    /// Whether `out` is a terminal output (by the outputs last computed).
    pub(crate) fn cached_terminal(&self, out: &str) -> bool {
        self.outputs.lock().unwrap_or_else(|e| e.into_inner()).1.iter().any(|o| o.id == out && o.terminal)
    }
    fn store_outputs(&self, rev: u64, o: Arc<Vec<OutputDecl>>) {
        *self.outputs.lock().unwrap_or_else(|e| e.into_inner()) = (rev, o);
    }
}

/// A flow version linked and ready to walk: immutable; calls hold it for their whole life.
pub struct PreparedFlow {
    pub flow_id: i64,
    /// The published version (0 for a draft).
    pub version: i64,
    pub graph: Arc<Graph>,
    /// The warnings validation found (a prepared flow has no errors).
    pub warnings: Vec<Problem>,
    /// The entities this version runs with (see [`Pinned`]); `None`: the live ones (a draft,
    /// or a version prepared without them).
    pub pinned: Option<Arc<Pinned>>,
    pub(crate) nodes: HashMap<String, PreparedNode>,
    /// (source node, output) → target node.
    pub(crate) edges: HashMap<(String, String), String>,
}

impl std::fmt::Debug for PreparedFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedFlow").field("flow_id", &self.flow_id).field("version", &self.version).finish_non_exhaustive()
    }
}

impl PreparedFlow {
    /// The node an output leads to.
    pub fn next(&self, node: &str, output: &str) -> Option<&str> {
        self.edges.get(&(node.to_string(), output.to_string())).map(String::as_str)
    }

    /// The plugin node types this version runs, by id, with the sha256 of the component it
    /// was published with: what to pin when the version is loaded again (start-up, rollback).
    pub fn plugins(&self) -> BTreeMap<String, String> {
        self.nodes.values().filter(|n| !n.ty.info.builtin).map(|n| (n.ty.info.id.clone(), n.ty.info.sha256.clone())).collect()
    }

    /// The entry node ids.
    pub fn entries(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.nodes.values().filter(|n| n.ty.info.id == ENTRY_TYPE).map(|n| n.node.id.as_str()).collect();
        v.sort_unstable();
        v
    }
}

pub(crate) struct Inner {
    pub wasm: wasmtime::Engine,
    linker: Linker<HostState>,
    pub cache: ComponentCache,
    pub limits: Limits,
    registry: ArcSwap<Registry>,
    published: ArcSwap<HashMap<i64, Arc<PreparedFlow>>>,
    publish_lock: Mutex<()>,
    pub services: Services,
    ticker: Ticker,
}

/// The flow engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Outcome of running guest code in a store, before mapping to [`RunError`]: `Err` is the
/// wall-clock limit that ran out.
pub(crate) type GuestResult<T> = Result<wasmtime::Result<T>, Duration>;

impl Engine {
    /// Starts the engine: configures wasmtime, compiles (or loads from the cache) the
    /// built-in nodes and describes them. `services` are the live ones the walker uses for
    /// real calls.
    pub fn new(config: EngineConfig, services: Services) -> Result<Engine, Error> {
        let limits = config.limits;
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        let n = limits.max_concurrent_runs.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .max_core_instances_per_component(16)
            .total_memories(n)
            .max_memories_per_component(2)
            .total_tables(n * 4)
            .max_tables_per_component(8)
            .total_stacks(n)
            .max_memory_size(limits.memory_bytes)
            .decommit_batch_size(16);
        // On Linux 6.7+ a freed slot's dirty pages are found with the PAGEMAP_SCAN ioctl and
        // reset in place (up to `keep_resident_bytes`) instead of being decommitted with
        // madvise: no syscall, no TLB shootdown, and no page faults when the slot is reused.
        // That is most of the cost of a node run (see tests/bench/flow_nodes.rs). Older
        // kernels would memset the lowest addresses instead, mostly untouched stack: there,
        // keep the default.
        if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes).linear_memory_keep_resident(limits.keep_resident_bytes).table_keep_resident(4096);
        }
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.max_wasm_stack)
            .async_stack_size(limits.max_wasm_stack + (1 << 20))
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let wasm = wasmtime::Engine::new(&cfg).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&wasm);
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let cache = ComponentCache::new(config.cache_dir);
        let ticker = Ticker::start(wasm.clone())?;
        let inner = Arc::new(Inner {
            wasm,
            linker,
            cache,
            limits,
            registry: ArcSwap::from_pointee(Registry::default()),
            published: ArcSwap::from_pointee(HashMap::new()),
            publish_lock: Mutex::new(()),
            services,
            ticker,
        });
        let engine = Engine { inner };
        let mut reg = Registry::default();
        reg.insert(NodeType::entry());
        for (name, bytes) in crate::builtin::BUILTIN_COMPONENTS {
            let t = engine.node_type_from(bytes, true, None).map_err(|e| Error::component(format!("built-in {name}"), e))?;
            reg.insert(t);
        }
        engine.inner.registry.store(Arc::new(reg));
        Ok(engine)
    }

    /// The live services.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The registry now.
    pub fn registry(&self) -> Arc<Registry> {
        self.inner.registry.load_full()
    }

    /// `GET /api/v1/node-types`.
    pub fn node_types(&self) -> Vec<NodeTypeInfo> {
        self.registry().list()
    }

    /// A node type's own-time wall clock: the host's configured override for the type, else
    /// what it asked for when that is less than the host's limit, else the host's limit (at
    /// least 100 ms; never more than a run's total).
    fn wall_clock_for(&self, id: &str, declared_ms: u32) -> Duration {
        let l = &self.inner.limits;
        let asked = Duration::from_millis(u64::from(declared_ms).max(100));
        l.wall_clock_overrides.get(id).copied().unwrap_or(asked.min(l.wall_clock)).min(l.max_wall_clock)
    }

    /// A store for one run of guest code, with the memory limiter and the CPU budget armed.
    pub(crate) fn store(&self, mut state: HostState) -> Store<HostState> {
        state.awake = Some(self.inner.ticker.wake());
        let mut store = Store::new(&self.inner.wasm, state);
        store.limiter(|s| &mut s.limiter);
        let budget = store.data().meter.budget;
        store.epoch_deadline_callback(|mut ctx| {
            let m = &mut ctx.data_mut().meter;
            let used = m.used();
            if used >= m.budget {
                m.exceeded = true;
                return Err(wasmtime::Error::msg("CPU budget exceeded"));
            }
            Ok(UpdateDeadline::Yield(ticks(m.budget - used).min(SLICE_TICKS)))
        });
        store.set_epoch_deadline(ticks(budget).min(SLICE_TICKS));
        store
    }

    /// Maps a failed guest call onto a [`RunError`], using what the store saw.
    pub(crate) fn classify<T>(&self, store: &Store<HostState>, r: GuestResult<T>) -> Result<T, RunError> {
        match r {
            Err(limit) => Err(RunError::WallClock(limit)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let s = store.data();
                if s.meter.exceeded {
                    Err(RunError::Cpu(s.meter.budget))
                } else if s.limiter.denied {
                    Err(RunError::Memory(s.limiter.cap))
                } else if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::StackOverflow)) {
                    Err(RunError::StackOverflow)
                } else {
                    // (a wasm backtrace names the guest's functions: its text, made fit for
                    // a log line)
                    Err(RunError::Trap(guest_text(&format!("{e:#}"), 4 * MAX_LOG_BYTES)))
                }
            }
        }
    }

    /// The store data of a run whose own time is limited to `wall` (and the whole run to
    /// `Limits::max_wall_clock`).
    fn state(&self, wall: Duration, node_id: &str, ty: &str, grants: Arc<Grants>, services: Services, call: Option<CallCtx>) -> HostState {
        let l = &self.inner.limits;
        HostState::new(l.memory_bytes, l.cpu, WallClock::new(wall, l.max_wall_clock), node_id.into(), ty.into(), grants, services, call)
    }

    /// Runs `describe()` of a component.
    pub(crate) async fn describe(&self, pre: &PluginPre<HostState>) -> Result<wit::NodeInfo, RunError> {
        let wall = self.inner.limits.describe_wall_clock;
        let mut store = self.store(self.state(wall, "", "", Arc::new(Grants::default()), Services::in_memory(), None));
        let (clock, wall) = (store.data().meter.clock(), store.data().wall.clone());
        let r = wall_limited(
            wall,
            crate::host::CpuMeter::guest(clock, async {
                let inst = pre.instantiate_async(&mut store).await?;
                inst.flowpbx_node_node().call_describe(&mut store).await
            }),
        )
        .await;
        let r = self.classify(&store, r);
        // (describe runs before the node type exists: its lines are not kept)
        drop(store.into_data().finish_logs());
        r
    }

    /// Runs `outputs()` for a graph node without a call (validation, publishing).
    async fn outputs_of(
        &self,
        ty: &NodeType,
        pre: &PluginPre<HostState>,
        node: &GraphNode,
        input: &wit::NodeInput,
        services: &Services,
    ) -> Result<Vec<OutputDecl>, String> {
        let wall = self.inner.limits.describe_wall_clock;
        let mut store = self.store(self.state(wall, &node.id, &ty.info.id, ty.grants.clone(), services.clone(), None));
        let (clock, wall) = (store.data().meter.clock(), store.data().wall.clone());
        let r = wall_limited(
            wall,
            crate::host::CpuMeter::guest(clock, async {
                let inst = pre.instantiate_async(&mut store).await?;
                inst.flowpbx_node_node().call_outputs(&mut store, input).await
            }),
        )
        .await;
        let r = self.classify(&store, r);
        drop(store.into_data().finish_logs());
        match r {
            Err(e) => Err(format!("outputs() failed: {e}")),
            Ok(Err(m)) => Err(m),
            Ok(Ok(o)) => {
                let o: Vec<OutputDecl> = o.iter().map(registry::output_from_wit).collect();
                registry::check_outputs(&o).map_err(|e| e.to_string())?;
                Ok(o)
            }
        }
    }

    /// Compiles (or loads) a component, checks that it targets the world, describes it and
    /// builds its node type. `granted: None` = built-in.
    /// `granted: None` = everything it declares, and the built-ins' egress
    /// (`Limits::builtin_egress`).
    pub(crate) fn node_type_from(&self, bytes: &[u8], builtin: bool, granted: Option<&PluginGrants>) -> Result<NodeType, Error> {
        let (component, sha) = self.inner.cache.load(&self.inner.wasm, bytes)?;
        crate::tooling::check_world(&self.inner.wasm, &component).map_err(|e| Error::Plugin(e.to_string()))?;
        let pre = self.link(&component)?;
        let d = run_blocking_or_inline(self.describe(&pre))
            .map_err(|e| Error::Engine(format!("a runtime for describe(): {e}")))?
            .map_err(|e| Error::Plugin(format!("describe() failed: {e}")))?;
        let wall = self.wall_clock_for(&d.id, d.wall_clock_ms);
        let (info, grants, schema) =
            registry::info_from_describe(&d, builtin, granted.map(|g| g.capabilities.as_slice()), &sha, wall).map_err(|e| Error::Plugin(e.to_string()))?;
        let egress = granted.map_or_else(|| self.inner.limits.builtin_egress.clone(), |g| g.egress.clone());
        Ok(NodeType { info, component: Some(component), grants: Arc::new(grants.with_egress(egress)), wall_clock: wall, schema: schema.map(Arc::new) })
    }

    pub(crate) fn link(&self, component: &Component) -> Result<PluginPre<HostState>, Error> {
        let pre = self.inner.linker.instantiate_pre(component).map_err(|e| Error::component("linking", e))?;
        PluginPre::new(pre).map_err(|e| Error::component("linking", e))
    }

    /// Installs (or replaces) an enabled plugin with what an administrator granted it.
    /// Published flows keep the version they were published with.
    pub fn install_plugin(&self, bytes: &[u8], granted: &PluginGrants) -> Result<NodeTypeInfo, Error> {
        let manifest = crate::tooling::inspect_plugin(self, bytes)?;
        let t = self.node_type_from(bytes, false, Some(granted))?;
        debug_assert_eq!(t.info.id, manifest.info.id);
        let info = t.info.clone();
        let _g = self.inner.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut reg = Registry::clone(&self.registry());
        reg.insert(t);
        self.inner.registry.store(Arc::new(reg));
        Ok(info)
    }

    /// The live registry with these plugin versions in place of (or beside) the installed
    /// ones: what a published version is prepared against when it is loaded again, so it
    /// runs the plugin versions it was published with. Each entry is a component and what
    /// an administrator granted it. Blocking (compiles or loads from the cache, runs
    /// `describe()`): call it from a blocking thread.
    pub fn registry_pinned(&self, plugins: &[(&[u8], &PluginGrants)]) -> Result<Registry, Error> {
        let mut reg = Registry::clone(&self.registry());
        for (bytes, granted) in plugins {
            reg.insert(self.plugin_type(bytes, granted)?);
        }
        Ok(reg)
    }

    /// The outputs a node of type `type_id` has with this config and entity (its
    /// `outputs()`), as the editor draws them. `Ok(Err(why))` when the node rejects the
    /// config or entity; `Err(NotFound)` when no such type is installed.
    pub async fn node_outputs(
        &self,
        type_id: &str,
        config: &serde_json::Value,
        entity: Option<&crate::entity::Entity>,
    ) -> Result<Result<Vec<OutputDecl>, String>, Error> {
        let reg = self.registry();
        let t = reg.get(type_id).ok_or_else(|| Error::NotFound(format!("node type {type_id}")))?;
        let Some(component) = &t.component else {
            return Ok(Ok(t.info.outputs.clone()));
        };
        let pre = self.link(component)?;
        let node: GraphNode = serde_json::from_value(serde_json::json!({ "id": "outputs", "type": type_id, "data": { "config": config } }))
            .map_err(|e| Error::Graph(e.to_string()))?;
        let input = wit::NodeInput {
            config: config.to_string(),
            entity: entity.map(|e| wit::Entity { kind: e.kind().as_str().into(), id: e.id(), data: e.to_json() }),
        };
        Ok(self.outputs_of(t, &pre, &node, &input, &self.inner.services).await)
    }

    /// Removes a plugin (disabled or deleted). Published flows using it keep running.
    pub fn remove_plugin(&self, id: &str) -> bool {
        if !registry::valid_plugin_id(id) {
            return false;
        }
        let _g = self.inner.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut reg = Registry::clone(&self.registry());
        let removed = reg.remove(id);
        self.inner.registry.store(Arc::new(reg));
        removed
    }

    /// The node input for a graph node with its entity: the pinned one of its version, else
    /// the live one of `services`.
    fn input_for(node: &GraphNode, config: String, services: &Services, pinned: Option<&Pinned>) -> (wit::NodeInput, u64) {
        let kind = node.data.entity_type.as_deref().and_then(EntityKind::parse);
        let cached = match (node.data.entity_id, kind) {
            (Some(id), Some(k)) => Pinned::lookup(pinned, &services.entities, k, id).map(|c| (k, id, c)),
            _ => None,
        };
        match cached {
            Some((k, id, c)) => (wit::NodeInput { config, entity: Some(wit::Entity { kind: k.as_str().into(), id, data: c.json.to_string() }) }, c.rev),
            None => (wit::NodeInput { config, entity: None }, 0),
        }
    }

    /// Validates a graph against a registry and services, running each node's `outputs()`.
    async fn check(
        &self,
        flow_id: Option<i64>,
        graph: &Graph,
        reg: &Registry,
        services: &Services,
        pinned: Option<&Pinned>,
    ) -> (Vec<Problem>, HashMap<String, (u64, Result<Vec<OutputDecl>, String>)>, HashMap<String, PluginPre<HostState>>) {
        let mut pres: HashMap<String, PluginPre<HostState>> = HashMap::new();
        let mut outputs = HashMap::new();
        for n in &graph.nodes {
            let Some(t) = reg.get(&n.node_type) else { continue };
            if n.node_type == ENTRY_TYPE {
                outputs.insert(n.id.clone(), (0, Ok(t.info.outputs.clone())));
                continue;
            }
            let Some(component) = &t.component else { continue };
            let pre = match pres.get(&t.info.id) {
                Some(p) => p.clone(),
                None => match self.link(component) {
                    Ok(p) => {
                        pres.insert(t.info.id.clone(), p.clone());
                        p
                    }
                    Err(e) => {
                        outputs.insert(n.id.clone(), (0, Err(e.to_string())));
                        continue;
                    }
                },
            };
            let (input, rev) = Self::input_for(n, n.data.config.to_string(), services, pinned);
            let o = self.outputs_of(t, &pre, n, &input, services).await;
            outputs.insert(n.id.clone(), (rev, o));
        }
        let catalog = EngineCatalog { reg, outputs: &outputs, services, flow_id, pinned };
        (validate::validate(graph, &catalog), outputs, pres)
    }

    /// Every problem of a graph (`POST /api/v1/flows/:id/validate`), against the live
    /// registry and entities.
    pub async fn validate(&self, flow_id: Option<i64>, graph: &Graph) -> Vec<Problem> {
        let reg = self.registry();
        self.check(flow_id, graph, &reg, &self.inner.services, None).await.0
    }

    /// Validates and links a flow version: what publishing installs and simulating runs.
    /// Fails with [`Error::Invalid`] (all problems) when validation finds an error.
    pub async fn prepare(&self, flow_id: i64, version: i64, graph: Graph) -> Result<Arc<PreparedFlow>, Error> {
        let reg = self.registry();
        self.prepare_with(flow_id, version, graph, &reg, &self.inner.services, None).await
    }

    /// Like [`prepare`](Engine::prepare) against another registry (one from
    /// [`registry_pinned`](Engine::registry_pinned)).
    pub async fn prepare_in(&self, flow_id: i64, version: i64, graph: Graph, reg: &Registry) -> Result<Arc<PreparedFlow>, Error> {
        self.prepare_with(flow_id, version, graph, reg, &self.inner.services, None).await
    }

    /// Prepares a published version with the entities it runs with: validated against them
    /// (a linked menu, group, switch, box or bridge must be among them), its outputs computed
    /// from them, and its calls see them instead of the live ones. `reg`: a registry from
    /// [`registry_pinned`](Engine::registry_pinned), else the live one.
    pub async fn prepare_pinned(
        &self,
        flow_id: i64,
        version: i64,
        graph: Graph,
        reg: Option<&Registry>,
        pinned: Arc<Pinned>,
    ) -> Result<Arc<PreparedFlow>, Error> {
        match reg {
            Some(r) => self.prepare_with(flow_id, version, graph, r, &self.inner.services, Some(pinned)).await,
            None => self.prepare_with(flow_id, version, graph, &self.registry(), &self.inner.services, Some(pinned)).await,
        }
    }

    pub(crate) async fn prepare_with(
        &self,
        flow_id: i64,
        version: i64,
        graph: Graph,
        reg: &Registry,
        services: &Services,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<Arc<PreparedFlow>, Error> {
        let (problems, mut outputs, pres) = self.check(Some(flow_id), &graph, reg, services, pinned.as_deref()).await;
        if validate::has_errors(&problems) {
            return Err(Error::Invalid(problems));
        }
        let mut nodes = HashMap::new();
        for n in &graph.nodes {
            let ty = reg.get(&n.node_type).cloned().ok_or_else(|| Error::NotFound(format!("node type {}", n.node_type)))?;
            let (rev, o) = outputs.remove(&n.id).unwrap_or((0, Ok(Vec::new())));
            let o = o.map_err(|e| Error::Invalid(vec![Problem::node(validate::Severity::Error, validate::ProblemCode::InvalidConfig, &n.id, e)]))?;
            nodes.insert(
                n.id.clone(),
                PreparedNode {
                    node: n.clone(),
                    pre: pres.get(&ty.info.id).cloned(),
                    ty,
                    config_json: n.data.config.to_string(),
                    outputs: Mutex::new((rev, Arc::new(o))),
                },
            );
        }
        let mut edges = HashMap::new();
        for e in &graph.edges {
            let Some(src) = nodes.get(&e.source) else { continue };
            let handle = match &e.source_handle {
                Some(h) => h.clone(),
                None => {
                    let outs = src.outputs.lock().unwrap_or_else(|p| p.into_inner()).1.clone();
                    match outs.as_slice() {
                        [only] => only.id.clone(),
                        _ => continue,
                    }
                }
            };
            edges.insert((e.source.clone(), handle), e.target.clone());
        }
        let warnings = problems;
        Ok(Arc::new(PreparedFlow { flow_id, version, graph: Arc::new(graph), warnings, pinned, nodes, edges }))
    }

    /// Makes a prepared version the published one of its flow, atomically: calls that
    /// started on the old version keep it; calls starting after this returns get the new.
    pub fn install(&self, flow: Arc<PreparedFlow>) {
        let _g = self.inner.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = HashMap::clone(&self.inner.published.load());
        m.insert(flow.flow_id, flow);
        self.inner.published.store(Arc::new(m));
    }

    /// Stops new calls from entering a flow (deleted, or no version published).
    pub fn unpublish(&self, flow_id: i64) -> Option<Arc<PreparedFlow>> {
        let _g = self.inner.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = HashMap::clone(&self.inner.published.load());
        let old = m.remove(&flow_id);
        self.inner.published.store(Arc::new(m));
        old
    }

    /// The published version of a flow now.
    pub fn published(&self, flow_id: i64) -> Option<Arc<PreparedFlow>> {
        self.inner.published.load().get(&flow_id).cloned()
    }

    /// Walks a call through a flow from an entry node with the live services; returns the
    /// trace for the CDR. Never fails: every failure ends in the trace's outcome.
    pub async fn run_call(&self, flow: Arc<PreparedFlow>, entry_node: &str, call: Arc<dyn CallControl>) -> Trace {
        let services = self.inner.services.clone();
        crate::walker::walk(self, &flow, entry_node, call, &services).await
    }

    /// Like [`run_call`](Engine::run_call) with other services (the simulator's).
    pub async fn run_call_with(&self, flow: Arc<PreparedFlow>, entry_node: &str, call: Arc<dyn CallControl>, services: &Services) -> Trace {
        crate::walker::walk(self, &flow, entry_node, call, services).await
    }

    /// Runs one node of a prepared flow for a call, outside a walk: what a benchmark or a
    /// single-node test measures. The output is checked as in a walk; nothing is followed.
    pub async fn run_one(
        &self,
        flow: &PreparedFlow,
        node_id: &str,
        call: Arc<dyn CallControl>,
        services: &Services,
    ) -> (Result<String, RunError>, Vec<LogLine>) {
        let Some(pn) = flow.nodes.get(node_id) else {
            return (Err(RunError::Failed(format!("the flow has no node {node_id:?}"))), Vec::new());
        };
        let shared = Arc::new(Mutex::new(crate::host::CallShared { caller: call.caller(), variables: Vec::new(), left: None }));
        let ctx = CallCtx { control: call, shared, flow_id: flow.flow_id, flow_version: flow.version, entry_node: node_id.into(), pinned: flow.pinned.clone() };
        self.run_node(pn, ctx, services).await
    }

    /// Runs one graph node for a call: instantiate from its `InstancePre`, refresh its
    /// outputs if its entity changed, `run()`, check the output. Returns the output or why
    /// it failed, and the node's log lines.
    pub(crate) async fn run_node(&self, pn: &PreparedNode, call: CallCtx, services: &Services) -> (Result<String, RunError>, Vec<LogLine>) {
        let Some(pre) = &pn.pre else {
            return (Err(RunError::Failed(format!("node type {} has no component", pn.ty.info.id))), Vec::new());
        };
        let (input, rev) = Self::input_for(&pn.node, pn.config_json.clone(), services, call.pinned.as_deref());
        if pn.ty.info.entity_required && input.entity.is_none() {
            let what = pn.ty.info.entity_kind.clone().unwrap_or_default();
            return (Err(RunError::InvalidConfig(format!("the linked {what} no longer exists"))), Vec::new());
        }
        let cached = pn.cached_outputs(rev);
        let mut store = self.store(self.state(pn.ty.wall_clock, &pn.node.id, &pn.ty.info.id, pn.ty.grants.clone(), services.clone(), Some(call)));
        let (clock, wall) = (store.data().meter.clock(), store.data().wall.clone());
        let r = wall_limited(
            wall,
            crate::host::CpuMeter::guest(clock, async {
                let inst = pre.instantiate_async(&mut store).await?;
                let g = inst.flowpbx_node_node();
                let outs = match cached {
                    Some(o) => o,
                    None => match g.call_outputs(&mut store, &input).await? {
                        Ok(o) => {
                            let o: Vec<OutputDecl> = o.iter().map(registry::output_from_wit).collect();
                            if let Err(e) = registry::check_outputs(&o) {
                                return Ok(Err(e.to_string()));
                            }
                            let o = Arc::new(o);
                            pn.store_outputs(rev, o.clone());
                            o
                        }
                        Err(m) => return Ok(Err(m)),
                    },
                };
                let r = g.call_run(&mut store, &input).await?;
                Ok(Ok((r, outs)))
            }),
        )
        .await;
        // What the guest says (an error's text, an output id) reaches the trace and the
        // process log: made fit for a log line like its log lines.
        let text = |m: String| guest_text(&m, MAX_LOG_BYTES);
        let result = match self.classify(&store, r) {
            Err(e) => Err(e),
            Ok(Err(config)) => Err(RunError::InvalidConfig(text(config))),
            Ok(Ok((Err(e), _))) => Err(match e {
                wit::NodeError::CallerHungUp => RunError::CallerHungUp,
                wit::NodeError::Denied(m) => RunError::Denied(text(m)),
                wit::NodeError::InvalidConfig(m) => RunError::InvalidConfig(text(m)),
                wit::NodeError::Failed(m) => RunError::Failed(text(m)),
            }),
            Ok(Ok((Ok(out), outs))) => {
                let declared = out == ERROR_OUTPUT || outs.iter().any(|o| o.id == out) || (out.is_empty() && outs.is_empty());
                if declared {
                    Ok(out)
                } else {
                    Err(RunError::UndeclaredOutput(text(out)))
                }
            }
        };
        (result, store.into_data().finish_logs())
    }
}

/// `describe()` runs inside `Engine::new` and `install_plugin`, which are synchronous and may
/// be called from inside or outside a tokio runtime: run the future on a scoped thread with
/// its own small runtime.
fn run_blocking_or_inline<F: Future + Send>(f: F) -> Result<F::Output, std::io::Error>
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
            Ok(rt.block_on(f))
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// The engine's view for the validator.
struct EngineCatalog<'a> {
    reg: &'a Registry,
    outputs: &'a HashMap<String, (u64, Result<Vec<OutputDecl>, String>)>,
    services: &'a Services,
    flow_id: Option<i64>,
    /// A published version's entities: a versioned entity must be among them.
    pinned: Option<&'a Pinned>,
}

impl Catalog for EngineCatalog<'_> {
    fn node_type(&self, t: &str) -> Option<&NodeTypeInfo> {
        self.reg.get(t).map(|t| &t.info)
    }
    fn config_errors(&self, n: &GraphNode) -> Vec<validate::ConfigError> {
        self.reg.get(&n.node_type).map(|t| t.config_errors(&n.data.config)).unwrap_or_default()
    }
    fn outputs(&self, n: &GraphNode) -> Result<Vec<OutputDecl>, String> {
        match self.outputs.get(&n.id) {
            Some((_, r)) => r.clone(),
            None => Err("the node's outputs could not be computed".into()),
        }
    }
    fn entity_exists(&self, kind: EntityKind, id: i64) -> bool {
        match self.pinned {
            Some(p) if crate::entity::is_versioned(kind) => p.get(kind, id).is_some(),
            _ => self.services.entities.get(kind, id).is_some(),
        }
    }
    fn entry_mapped(&self, n: &GraphNode) -> bool {
        let snap = self.services.entities.snapshot();
        snap.entry_mapped(self.flow_id, &n.id)
            // the entry links a number routed to this flow that names no entry node of its own
            || n.data.entity_id.is_some_and(|id| {
                matches!(snap.get(EntityKind::InboundNumber, id).map(|c| &*c.entity),
                    Some(crate::entity::Entity::InboundNumber(num))
                        if num.enabled && num.flow_id.is_some() && num.flow_id == self.flow_id && num.flow_entry_node.as_deref().is_none_or(|e| e == n.id))
            })
    }
}
