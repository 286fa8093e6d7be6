//! The one `bindgen!` over `wit/`: host traits for the imports (async on the host, blocking
//! for the guest) and typed access to the `node` export.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub(crate) use flowpbx::node::{call, clock, directory, http, kv, log, types};
