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
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(p).ok()?, &mut hasher).ok()?;
    let want = std::fs::read_to_string(sidecar(p)).ok()?;
    if hex::encode(hasher.finalize()) != want.trim() {
        tracing::warn!(path = %p.display(), "cached component does not match its checksum; recompiling");
        return None;
    }
    // SAFETY: `Component::deserialize_file` trusts its input to be a wasmtime artifact and
    // maps the file rather than copying it (a node's compiled code costs resident memory only
    // for the pages a run touches). The file was produced by `Component::serialize` of this
    // same engine configuration (the name carries its compatibility fingerprint, and wasmtime
    // re-checks it), written by us into the PBX's own data dir, and matches the checksum
    // written beside it — a torn or corrupted write is never loaded. A cache file is never
    // modified in place: it is written under a temporary name and renamed over, so the mapped
    // file keeps its contents for as long as the component lives.
    #[allow(unsafe_code)]
    let c = unsafe { Component::deserialize_file(engine, p) };
    match c {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %p.display(), "cached component unusable ({e}); recompiling");
            None
        }
    }
}

/// Why a compiled component was not cached (logged; the component is used all the same).
#[derive(Debug, thiserror::Error)]
enum CacheWriteError {
    #[error("{0}")]
    Serialize(wasmtime::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn write_cached(c: &Component, p: &Path) -> Result<(), CacheWriteError> {
    let bytes = c.serialize().map_err(CacheWriteError::Serialize)?;
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::write(sidecar(p), sha256_hex(&bytes))?;
    Ok(std::fs::rename(&tmp, p)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_file(dir: &Path, ext: &str) -> PathBuf {
        let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(ext)).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.into_iter().next().unwrap()
    }

    fn inode(p: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
    }

    #[test]
    fn a_cached_component_is_mapped_from_disk_and_a_corrupted_one_recompiled() {
        let engine = wasmtime::Engine::new(wasmtime::Config::new().wasm_component_model(true)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(Some(dir.path().to_path_buf()));
        let (_, bytes) = crate::builtin::BUILTIN_COMPONENTS.iter().find(|(n, _)| *n == "node_hangup").expect("the hangup node is built in");
        let (first, sha) = cache.load(&engine, bytes).unwrap();
        assert_eq!(sha, sha256_hex(bytes));
        let file = only_file(dir.path(), ".cwasm");
        assert!(file.file_name().unwrap().to_string_lossy().starts_with(&sha), "{}", file.display());
        assert_eq!(std::fs::read_to_string(sidecar(&file)).unwrap(), sha256_hex(&std::fs::read(&file).unwrap()));

        // a hit loads the file as it is (same inode: nothing was rewritten) and gives the
        // same component
        let ino = inode(&file);
        let (again, _) = cache.load(&engine, bytes).unwrap();
        assert_eq!(inode(&file), ino, "a cache hit does not recompile");
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(maps.lines().any(|l| l.ends_with(&*file.to_string_lossy())), "the compiled code is mapped from the cache file, not copied");
        assert_eq!(again.component_type().exports(&engine).count(), first.component_type().exports(&engine).count());

        // a flipped byte fails the checksum: compiled again, and the file replaced by a good one
        let mut corrupt = std::fs::read(&file).unwrap();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0xff;
        std::fs::write(&file, &corrupt).unwrap();
        let (fixed, _) = cache.load(&engine, bytes).unwrap();
        assert_ne!(std::fs::read(&file).unwrap(), corrupt, "the corrupted file was replaced");
        assert_eq!(std::fs::read_to_string(sidecar(&file)).unwrap(), sha256_hex(&std::fs::read(&file).unwrap()));
        assert_eq!(fixed.component_type().exports(&engine).count(), first.component_type().exports(&engine).count());
        assert_eq!(only_file(dir.path(), ".cwasm"), file, "no stray temporary files");
    }

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
