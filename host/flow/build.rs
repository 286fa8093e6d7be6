//! Builds the built-in node crates in `nodes/` for wasm32-unknown-unknown, turns each into a
//! component with wit-component, and generates `builtin_nodes.rs` which embeds them in the
//! crate (and so in the `flowpbx` binary).
//!
//! The nested cargo gets its own target dir (`<repo>/target/wasm-nodes`) so it never waits on
//! the lock of the build that runs this script, and an environment cleaned of this build's
//! settings. It runs again only when `nodes/`, `wit/` or `sdk/` change. The test components
//! under `nodes/testing/` are built too but not embedded: tests find them through the
//! `FLOW_TEST_COMPONENTS` environment variable set here.

#[path = "src/toolchain.rs"]
#[allow(dead_code)]
mod toolchain;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    std::process::exit(1);
}

/// `members = [ ... ]` of `nodes/Cargo.toml`, without a TOML parser: one quoted path per
/// line, as that file is written.
fn members(nodes: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(nodes.join("Cargo.toml")).unwrap_or_else(|e| fail(&format!("nodes/Cargo.toml: {e}")));
    let start = text.find("members").unwrap_or_else(|| fail("nodes/Cargo.toml has no members"));
    let list = &text[start..];
    let end = list.find(']').unwrap_or_else(|| fail("nodes/Cargo.toml: unterminated members"));
    list[..end].split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// The package name in a crate's Cargo.toml (its first `name = "..."`).
fn package_name(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("name").map(|r| r.trim_start().trim_start_matches('=').trim().trim_matches('"').to_string()))
        .unwrap_or_else(|| fail(&format!("{}/Cargo.toml has no package name", dir.display())))
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| fail("CARGO_MANIFEST_DIR unset")));
    let root = manifest.join("../..").canonicalize().unwrap_or_else(|e| fail(&format!("repo root: {e}")));
    let nodes = root.join("nodes");
    for p in ["nodes", "wit", "sdk/src", "sdk/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-changed=src/toolchain.rs");

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR unset")));
    let components = out.join("components");
    std::fs::create_dir_all(&components).unwrap_or_else(|e| fail(&format!("{}: {e}", components.display())));

    let tc = toolchain::WasmToolchain::detect(std::env::var_os("RUSTC").map(PathBuf::from), std::env::var_os("CARGO").map(PathBuf::from))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let target_dir = root.join("target/wasm-nodes");
    let mut cmd = tc.build_command(&nodes, &target_dir);
    cmd.args(["--workspace", "--locked", "--quiet"]);
    let output = cmd.output().unwrap_or_else(|e| fail(&format!("running {}: {e}; {}", tc.cargo.display(), toolchain::SETUP_HINT)));
    if !output.status.success() {
        fail(&format!("building the built-in nodes (nodes/, with {:?}) failed:\n{}", tc.kind, String::from_utf8_lossy(&output.stderr)));
    }

    let mut generated = String::from(
        "/// The built-in node components, built from `nodes/` by build.rs: (crate name, component).\n\
         pub(crate) static BUILTIN_COMPONENTS: &[(&str, &[u8])] = &[\n",
    );
    for member in members(&nodes) {
        let name = package_name(&nodes.join(&member));
        let lib = name.replace('-', "_");
        let core = toolchain::WasmToolchain::artifact(&target_dir, &lib);
        let bytes = std::fs::read(&core).unwrap_or_else(|e| fail(&format!("{}: {e}", core.display())));
        let component = wit_component::ComponentEncoder::default()
            .module(&bytes)
            .and_then(|e| e.validate(true).encode())
            .unwrap_or_else(|e| fail(&format!("turning {name} into a component: {e:#}")));
        let path = components.join(format!("{lib}.wasm"));
        std::fs::write(&path, component).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        if !member.starts_with("testing/") {
            let _ = writeln!(generated, "    ({lib:?}, include_bytes!({:?})),", path.display().to_string());
        }
    }
    generated.push_str("];\n");
    std::fs::write(out.join("builtin_nodes.rs"), generated).unwrap_or_else(|e| fail(&format!("builtin_nodes.rs: {e}")));
    println!("cargo:rustc-env=FLOW_TEST_COMPONENTS={}", components.display());
}
