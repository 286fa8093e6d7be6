//! Backup archives of a data dir, and their restore.
//!
//! An archive is a tar file: the database as one consistent snapshot (`VACUUM INTO`, taken
//! while the server runs), the secret key, custom prompts, voicemail, the plugin store, the
//! TLS state, recordings when asked for, and last `manifest.json` — format, FlowPBX version,
//! schema version, creation time, and every file with its size and SHA-256.
//!
//! Restoring reads the archive into a staging directory next to the target, refusing any
//! entry that is not a plain file under a plain relative path (no `..`, no absolute path, no
//! link, no device), any file the manifest does not list or lists with another checksum,
//! a listed file that is missing, and a schema newer than this binary's; only then is the
//! staging directory renamed into place. The target must be empty or absent.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::Store;

/// The manifest's name inside the archive.
pub const MANIFEST: &str = "manifest.json";
/// The database's name inside the archive (and in a data dir).
pub const DATABASE: &str = store::DB_FILE;
/// The format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Folders of the data dir an archive carries (recordings only when asked for).
const FOLDERS: [&str; 4] = ["prompts/custom", "voicemail", "plugins", "tls"];
/// The largest archive entry accepted on restore (a recording of hours is well under it).
const MAX_ENTRY: u64 = 8 << 30;

/// What went wrong with a backup or a restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("database snapshot: {0}")]
    Store(#[from] store::StoreError),
    #[error("the archive's manifest is missing or unreadable: {0}")]
    Manifest(String),
    #[error("the archive holds an unsafe entry {0:?} (only plain files under relative paths are restored)")]
    UnsafeEntry(String),
    #[error("checksum mismatch for {0}: the archive was altered or damaged")]
    Checksum(String),
    #[error("the archive holds {0}, which its manifest does not list")]
    Unlisted(String),
    #[error("the archive lacks {0}, which its manifest lists")]
    Missing(String),
    #[error("the archive is of format {0}; this FlowPBX reads format {FORMAT}")]
    Format(u32),
    #[error("the archive's database has schema version {found}; this FlowPBX knows up to {known}: restore it with a newer FlowPBX")]
    NewerSchema { found: i64, known: i64 },
    #[error("the target {0} is not empty: restore into an empty or new data dir")]
    NotEmpty(String),
    #[error("the output {0} exists already")]
    Exists(String),
}

/// Creates `path` for writing, readable by its owner only (an archive holds the secret key).
fn create_private(path: &Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.display().to_string(), source }
}

/// One file of an archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What an archive holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub flowpbx_version: String,
    pub schema_version: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub recordings: bool,
    pub files: Vec<ManifestFile>,
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackupInfo {
    pub path: PathBuf,
    pub size: u64,
    pub files: usize,
    pub schema_version: i64,
}

/// Where the database snapshot comes from.
pub enum Source<'a> {
    /// The running server's store.
    Store(&'a Store),
    /// A database file (the `flowpbx backup` command, beside a running server or not).
    File(&'a Path),
}

/// Writes an archive of `data_dir` to `out` (refusing to overwrite it): written to a
/// temporary name beside it and renamed when complete.
pub async fn create(source: Source<'_>, data_dir: &Path, out: &Path, recordings: bool, version: &str) -> Result<BackupInfo, BackupError> {
    if out.exists() {
        return Err(BackupError::Exists(out.display().to_string()));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    let staging = tempfile::Builder::new().prefix(".flowpbx-backup-").tempdir_in(parent).map_err(io_at(parent))?;
    let snapshot = staging.path().join(DATABASE);
    let schema_version = match source {
        Source::Store(s) => {
            s.backup_into(&snapshot).await?;
            s.schema_version().await?
        }
        Source::File(db) => store::snapshot_file(db, &snapshot).await?,
    };
    let data_dir = data_dir.to_path_buf();
    let out = out.to_path_buf();
    let version = version.to_owned();
    let staging_path = staging.path().to_path_buf();
    let info = tokio::task::spawn_blocking(move || write_archive(&data_dir, &staging_path, &out, recordings, schema_version, &version))
        .await
        .map_err(|e| BackupError::Io { path: "backup task".into(), source: io::Error::other(e.to_string()) })??;
    drop(staging);
    Ok(info)
}

fn sha256_file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut f = File::open(path).map_err(io_at(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Every regular file under `dir` (symlinks are not followed), as paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BackupError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries {
        let e = e.map_err(io_at(dir))?;
        let ft = e.file_type().map_err(io_at(&e.path()))?;
        let name = e.file_name();
        // a file being written (temporary names) is not yet part of the data
        if name.to_string_lossy().starts_with(".tmp") || name.to_string_lossy().ends_with(".tmp") {
            continue;
        }
        if ft.is_dir() {
            walk(root, &e.path(), out)?;
        } else if ft.is_file()
            && let Ok(rel) = e.path().strip_prefix(root)
        {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

fn write_archive(data_dir: &Path, staging: &Path, out: &Path, recordings: bool, schema_version: i64, version: &str) -> Result<BackupInfo, BackupError> {
    // (archive path, file on disk)
    let mut files: Vec<(String, PathBuf)> = vec![(DATABASE.to_owned(), staging.join(DATABASE))];
    let key = data_dir.join(store::SECRET_KEY_FILE);
    if key.is_file() {
        files.push((store::SECRET_KEY_FILE.to_owned(), key));
    }
    let mut folders: Vec<&str> = FOLDERS.to_vec();
    if recordings {
        folders.push("recordings");
    }
    for folder in folders {
        let mut found = Vec::new();
        walk(data_dir, &data_dir.join(folder), &mut found)?;
        found.sort();
        for rel in found {
            let name = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
            files.push((name, data_dir.join(&rel)));
        }
    }
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let file = create_private(&tmp).map_err(io_at(&tmp))?;
    let mut tar = tar::Builder::new(io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut listed = Vec::with_capacity(files.len());
    for (name, path) in &files {
        let (size, sha256) = sha256_file(path)?;
        let mut f = File::open(path).map_err(io_at(path))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        // (a file that grew since it was hashed would be cut at the hashed size)
        tar.append_data(&mut header, name, (&mut f).take(size)).map_err(io_at(path))?;
        listed.push(ManifestFile { path: name.clone(), size, sha256 });
    }
    let manifest = Manifest {
        format: FORMAT,
        flowpbx_version: version.to_owned(),
        schema_version,
        created_at: jiff::Timestamp::now().to_string(),
        recordings,
        files: listed,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Manifest(e.to_string()))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, MANIFEST, body.as_slice()).map_err(io_at(&tmp))?;
    let mut w = tar.into_inner().map_err(io_at(&tmp))?;
    w.flush().map_err(io_at(&tmp))?;
    w.get_ref().sync_all().map_err(io_at(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(io_at(out))?;
    let size = std::fs::metadata(out).map_err(io_at(out))?.len();
    Ok(BackupInfo { path: out.to_path_buf(), size, files: manifest.files.len(), schema_version })
}

/// A relative path made only of normal components, else `None`.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if name.is_empty() || name.contains('\0') || name.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn dir_is_empty_or_absent(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(BackupError::Io { path: dir.display().to_string(), source: e }),
    }
}

/// Restores `archive` into `target` (empty or absent). Returns the manifest.
pub fn restore(archive: &Path, target: &Path) -> Result<Manifest, BackupError> {
    if !dir_is_empty_or_absent(target)? {
        return Err(BackupError::NotEmpty(target.display().to_string()));
    }
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    let staging = tempfile::Builder::new().prefix(".flowpbx-restore-").tempdir_in(parent).map_err(io_at(parent))?;
    let file = File::open(archive).map_err(io_at(archive))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    for entry in tar.entries().map_err(io_at(archive))? {
        let mut entry = entry.map_err(io_at(archive))?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular && entry.header().entry_type() != tar::EntryType::GNUSparse {
            if entry.header().entry_type().is_dir() && safe_relative(&raw_name).is_some() {
                continue;
            }
            return Err(BackupError::UnsafeEntry(raw_name));
        }
        let Some(rel) = safe_relative(&raw_name) else {
            return Err(BackupError::UnsafeEntry(raw_name));
        };
        let name = rel.to_string_lossy().into_owned();
        if entry.size() > MAX_ENTRY {
            return Err(BackupError::UnsafeEntry(raw_name));
        }
        if name == MANIFEST {
            let mut body = Vec::new();
            (&mut entry).take(16 << 20).read_to_end(&mut body).map_err(io_at(archive))?;
            manifest = Some(serde_json::from_slice(&body).map_err(|e| BackupError::Manifest(e.to_string()))?);
            continue;
        }
        if seen.contains_key(&name) {
            return Err(BackupError::UnsafeEntry(raw_name));
        }
        let dest = staging.path().join(&rel);
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d).map_err(io_at(d))?;
        }
        let mut out = create_private(&dest).map_err(io_at(&dest))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(io_at(archive))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_at(&dest))?;
            size += n as u64;
        }
        out.sync_all().map_err(io_at(&dest))?;
        seen.insert(name, (size, hex::encode(h.finalize())));
    }
    let manifest = manifest.ok_or_else(|| BackupError::Manifest("no manifest.json".into()))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Format(manifest.format));
    }
    let known = store::latest_schema_version();
    if manifest.schema_version > known {
        return Err(BackupError::NewerSchema { found: manifest.schema_version, known });
    }
    let listed: BTreeMap<&str, &ManifestFile> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for (name, (size, sha)) in &seen {
        let Some(f) = listed.get(name.as_str()) else {
            return Err(BackupError::Unlisted(name.clone()));
        };
        if f.size != *size || !f.sha256.eq_ignore_ascii_case(sha) {
            return Err(BackupError::Checksum(name.clone()));
        }
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains_key(&f.path)) {
        return Err(BackupError::Missing(missing.path.clone()));
    }
    if !seen.contains_key(DATABASE) {
        return Err(BackupError::Missing(DATABASE.into()));
    }
    // into place: the (empty) target goes, the staging directory takes its name
    if target.exists() {
        std::fs::remove_dir(target).map_err(io_at(target))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, target).map_err(io_at(target))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700));
    }
    Ok(manifest)
}

/// The backups in `dir` (`flowpbx-*.tar`), newest first: name, size, modified (unix secs).
pub fn list(dir: &Path) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("flowpbx-") && name.ends_with(".tar")) {
                return None;
            }
            let m = e.metadata().ok()?;
            let modified = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            Some((name, m.len(), modified))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out
}

/// Takes a scheduled backup into `dir` as `flowpbx-<UTC time>.tar` and keeps the newest
/// `keep` of them.
pub async fn scheduled(store: &Store, data_dir: &Path, dir: &Path, keep: usize, recordings: bool, version: &str) -> Result<BackupInfo, BackupError> {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let out = dir.join(format!("flowpbx-{stamp}.tar"));
    let info = create(Source::Store(store), data_dir, &out, recordings, version).await?;
    for (name, _, _) in list(dir).into_iter().skip(keep.max(1)) {
        let _ = std::fs::remove_file(dir.join(name));
    }
    Ok(info)
}

/// The folder scheduled backups go to.
pub fn backups_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("backups")
}

/// The last scheduled backup's outcome (for the API).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleState {
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
}

/// Takes a backup into `<data-dir>/backups` every `backup_interval_hours` (the settings as in
/// force, read every minute; 0: none), keeping the newest `backup_keep`. The first comes one
/// interval after start unless an older backup is already due.
pub async fn run_schedule(
    store: Store,
    layers: crate::settings::SettingsLayers,
    data_dir: PathBuf,
    version: String,
    state: std::sync::Arc<std::sync::Mutex<ScheduleState>>,
) {
    use crate::settings::keys;
    let started = std::time::SystemTime::now();
    let dir = backups_dir(&data_dir);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let stored = match store.settings().all().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "scheduled backup: reading the settings");
                continue;
            }
        };
        let r = layers.resolve(&stored);
        let num = |k: &str| r.get(k).and_then(|v| v.value.as_deref()).and_then(|v| v.parse::<u64>().ok());
        let hours = num(keys::BACKUP_INTERVAL_HOURS).unwrap_or(0);
        let keep = num(keys::BACKUP_KEEP).unwrap_or(7).max(1) as usize;
        if hours == 0 {
            continue;
        }
        let interval = std::time::Duration::from_secs(hours * 3600);
        let newest = list(&dir).first().map(|b| std::time::UNIX_EPOCH + std::time::Duration::from_secs(b.2));
        let since = newest.map_or(started, |n| n.max(started));
        if std::time::SystemTime::now().duration_since(since).unwrap_or_default() < interval {
            continue;
        }
        let outcome = scheduled(&store, &data_dir, &dir, keep, false, &version).await;
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(info) => {
                tracing::info!(path = %info.path.display(), bytes = info.size, files = info.files, "scheduled backup written");
                st.last_error = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup failed");
                st.last_error = Some(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(safe_relative("voicemail/201/a.wav").is_some());
        assert!(safe_relative("./flowpbx.db").is_some());
        for bad in ["../etc/passwd", "a/../../b", "/etc/passwd", "", "a\\..\\b"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
