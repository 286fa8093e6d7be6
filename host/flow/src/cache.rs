//! Compiled components cached on disk by the sha256 of the component, so start-up does not
//! recompile the built-ins and installed plugins: `<dir>/<sha256>-<engine>.cwasm`, where
//! `<engine>` fingerprints the wasmtime version and the settings that affect compiled code
//! (another binary sharing the data dir keeps its own files). Each file is written to a
//! temporary name and renamed, with a `.sha256` of its contents beside it that is checked
//! before the file is loaded.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

use crate::Error;

/// The sha256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The cache. `dir: None` compiles every time (tests that want no disk state).
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache in `dir` (`<data-dir>/cache/components`), created if missing. A directory
    /// that cannot be created costs start-up time, not the engine: it is logged, and
    /// components are compiled at every start.
    pub fn new(dir: Option<PathBuf>) -> ComponentCache {
        let dir = dir.filter(|d| match std::fs::create_dir_all(d) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "cannot create the component cache; node components are compiled at every start");
                false
            }
        });
        ComponentCache { dir }
    }

    fn path(&self, engine: &wasmtime::Engine, sha: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{sha}-{:016x}.cwasm", h.finish())))
    }

    /// The compiled component for `bytes` (a component binary), and its sha256.
    pub fn load(&self, engine: &wasmtime::Engine, bytes: &[u8]) -> Result<(Component, String), Error> {
        let sha = sha256_hex(bytes);
        let path = self.path(engine, &sha);
        if let Some(p) = &path
            && let Some(c) = read_cached(engine, p)
        {
            return Ok((c, sha));
        }
        let component = Component::new(engine, bytes).map_err(|e| Error::component(format!("compiling {}", &sha[..12]), e))?;
        if let Some(p) = &path
            && let Err(e) = write_cached(&component, p)
        {
            tracing::warn!(path = %p.display(), "could not cache a compiled component: {e}");
        }
        Ok((component, sha))
    }
}

fn sidecar(p: &Path) -> PathBuf {
    p.with_extension("cwasm.sha256")
}

fn read_cached(engine: &wasmtime::Engine, p: &Path) -> Option<Component> {
    let bytes = std::fs::read(p).ok()?;
    let want = std::fs::read_to_string(sidecar(p)).ok()?;
    if sha256_hex(&bytes) != want.trim() {
        tracing::warn!(path = %p.display(), "cached component does not match its checksum; recompiling");
        return None;
    }
    // SAFETY: `Component::deserialize` trusts its input to be a wasmtime artifact. These bytes
    // were produced by `Component::serialize` of this same engine configuration (the file
    // name carries its compatibility fingerprint, and wasmtime re-checks it), written by us
    // into the PBX's own data dir, and match the checksum written beside them — a torn or
    // corrupted write is never loaded.
    #[allow(unsafe_code)]
    let c = unsafe { Component::deserialize(engine, &bytes) };
    match c {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %p.display(), "cached component unusable ({e}); recompiling");
            None
        }
    }
}

fn write_cached(c: &Component, p: &Path) -> Result<(), String> {
    let bytes = c.serialize().map_err(|e| e.to_string())?;
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
    std::fs::write(sidecar(p), sha256_hex(&bytes)).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, p).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_dir_that_cannot_be_created_means_no_cache_not_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // a directory below a regular file cannot exist
        let cache = ComponentCache::new(Some(file.path().join("components")));
        assert!(cache.dir.is_none());
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(Some(dir.path().join("a/b")));
        assert!(cache.dir.as_deref().is_some_and(Path::is_dir));
    }
}
