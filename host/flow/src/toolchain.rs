//! Finding a toolchain that builds `wasm32-unknown-unknown` node crates, and the `cargo build`
//! command for it.
//!
//! Shared, as source, by `build.rs` (which builds the built-in nodes) and by the plugin
//! tooling (`flowpbx node build`), so both pick the same toolchain the same way: rustup's
//! `wasm32-unknown-unknown` target when it is installed, else Debian's `rustc-web` +
//! `rust-web-src` with `-Zbuild-std` and a `wasm-ld` from LLVM. Only `std` is used here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every node is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// What to tell someone who has neither toolchain.
pub const SETUP_HINT: &str = "building FlowPBX nodes needs a wasm32-unknown-unknown toolchain: run scripts/setup \
     (it installs Debian's rustc-web, cargo-web, rust-web-src and lld-19), or `rustup target add wasm32-unknown-unknown`";

/// Which toolchain was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolchainKind {
    /// rustup's toolchain with the `wasm32-unknown-unknown` standard library installed.
    Rustup,
    /// Debian's `/usr/bin/rustc` + `/usr/bin/cargo`, building `std` from `rust-web-src`.
    DebianBuildStd {
        /// The `wasm-ld` to link with.
        linker: PathBuf,
    },
}

/// A usable toolchain.
#[derive(Debug, Clone)]
pub struct WasmToolchain {
    pub cargo: PathBuf,
    pub rustc: PathBuf,
    pub kind: ToolchainKind,
}

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// Environment variables an outer cargo sets for build scripts (or a user set for the host
/// build) that would misdirect a nested wasm build.
fn misleading(key: &str) -> bool {
    const EXACT: [&str; 15] = [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
        "NUM_JOBS",
        "RUSTC_BOOTSTRAP",
    ];
    const KEEP: [&str; 3] = ["CARGO_HOME", "CARGO_MAKEFLAGS", "CARGO_NET_OFFLINE"];
    if EXACT.contains(&key) {
        return true;
    }
    key.starts_with("CARGO_") && !KEEP.contains(&key) && !key.starts_with("CARGO_REGISTRIES_") && !key.starts_with("CARGO_HTTP_")
}

/// The `wasm-ld` to use with Debian's toolchain: `/usr/bin/rust-lld` when it resolves to
/// an existing file (it is a symlink to an lld that may not be installed), else the newest
/// `/usr/lib/llvm-*/bin/wasm-ld`.
pub fn find_wasm_ld() -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize("/usr/bin/rust-lld")
        && p.is_file()
    {
        return Some(PathBuf::from("/usr/bin/rust-lld"));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(v) = name.strip_prefix("llvm-").and_then(|v| v.parse::<u32>().ok()) else { continue };
        let ld = entry.path().join("bin/wasm-ld");
        if ld.is_file() && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, ld));
        }
    }
    best.map(|(_, p)| p)
}

fn sysroot(rustc: &Path) -> Option<PathBuf> {
    let out = Command::new(rustc).args(["--print", "sysroot"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Why no toolchain for the nodes was found. (No thiserror: build.rs includes this file.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolchainError {
    /// Neither rustup's wasm32 target nor Debian's toolchain with the std sources.
    NoWasmTarget,
    /// Debian's toolchain, but no linker for wasm.
    NoWasmLd,
}

impl std::fmt::Display for ToolchainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolchainError::NoWasmTarget => f.write_str(SETUP_HINT),
            ToolchainError::NoWasmLd => write!(f, "no wasm-ld found (/usr/bin/rust-lld or /usr/lib/llvm-*/bin/wasm-ld); {SETUP_HINT}"),
        }
    }
}

impl std::error::Error for ToolchainError {}

impl WasmToolchain {
    /// Finds a toolchain. `rustc`/`cargo` are the host's (a build script's `RUSTC`/`CARGO`);
    /// `None` means the ones on `PATH`.
    pub fn detect(rustc: Option<PathBuf>, cargo: Option<PathBuf>) -> Result<WasmToolchain, ToolchainError> {
        let rustc = rustc.unwrap_or_else(|| PathBuf::from("rustc"));
        let cargo = cargo.unwrap_or_else(|| PathBuf::from("cargo"));
        if let Some(root) = sysroot(&rustc)
            && root.join("lib/rustlib").join(WASM_TARGET).join("lib").is_dir()
        {
            return Ok(WasmToolchain { cargo, rustc, kind: ToolchainKind::Rustup });
        }
        let debian = Path::new(DEBIAN_RUSTC).is_file() && Path::new(DEBIAN_CARGO).is_file() && Path::new(DEBIAN_STD_SRC).is_dir();
        if !debian {
            return Err(ToolchainError::NoWasmTarget);
        }
        let linker = find_wasm_ld().ok_or(ToolchainError::NoWasmLd)?;
        Ok(WasmToolchain { cargo: DEBIAN_CARGO.into(), rustc: DEBIAN_RUSTC.into(), kind: ToolchainKind::DebianBuildStd { linker } })
    }

    /// `cargo build --release --target wasm32-unknown-unknown` in `dir`, into `target_dir`,
    /// with an environment cleaned of the outer build's settings. Add `--workspace`,
    /// `--locked` or `-p` as needed.
    pub fn build_command(&self, dir: &Path, target_dir: &Path) -> Command {
        let mut c = Command::new(&self.cargo);
        c.current_dir(dir);
        let vars: Vec<OsString> = std::env::vars_os().map(|(k, _)| k).collect();
        for k in vars {
            if misleading(&k.to_string_lossy()) {
                c.env_remove(&k);
            }
        }
        c.args(["build", "--release", "--target", WASM_TARGET]);
        c.env("CARGO_TARGET_DIR", target_dir);
        // an outer `build.build-dir` (shared between checkouts, say) would hold the nested
        // build's intermediate artifacts too, where another checkout's nodes — the same
        // package ids — could pass for this one's: the nested build keeps its own
        c.env("CARGO_BUILD_BUILD_DIR", target_dir);
        c.env("RUSTC", &self.rustc);
        if let ToolchainKind::DebianBuildStd { linker } = &self.kind {
            c.env("RUSTC_BOOTSTRAP", "1");
            c.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker);
            c.arg("-Zbuild-std=std,panic_abort");
        }
        c
    }

    /// Where `cargo build` leaves a cdylib named `lib_name` (dashes already underscores).
    pub fn artifact(target_dir: &Path, lib_name: &str) -> PathBuf {
        target_dir.join(WASM_TARGET).join("release").join(format!("{lib_name}.wasm"))
    }
}
