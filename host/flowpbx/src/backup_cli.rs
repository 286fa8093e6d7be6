//! `flowpbx backup --out FILE` and `flowpbx restore FILE`, over `pbx::backup`.

use std::path::Path;

use anyhow::Context;

use crate::config::Settings;

/// Writes an archive of the data dir; the server may be running (the database is copied as
/// one consistent snapshot).
pub fn backup(settings: &Settings, out: &Path, recordings: bool) -> anyhow::Result<std::process::ExitCode> {
    let data_dir = &settings.data_dir;
    let db = data_dir.join(store::DB_FILE);
    anyhow::ensure!(db.is_file(), "no database at {}: is --data-dir right?", db.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let info = rt
        .block_on(pbx::backup::create(pbx::backup::Source::File(&db), data_dir, out, recordings, env!("CARGO_PKG_VERSION")))
        .with_context(|| format!("backing up {}", data_dir.display()))?;
    println!("backup written to {} ({} files, {} bytes, schema {})", info.path.display(), info.files, info.size, info.schema_version);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Restores an archive into --data-dir, which must be empty or absent.
pub fn restore(settings: &Settings, file: &Path) -> anyhow::Result<std::process::ExitCode> {
    let m = pbx::backup::restore(file, &settings.data_dir).with_context(|| format!("restoring {}", file.display()))?;
    println!(
        "restored {} files into {} (backup of {}, FlowPBX {}, schema {})",
        m.files.len(),
        settings.data_dir.display(),
        m.created_at,
        m.flowpbx_version,
        m.schema_version
    );
    Ok(std::process::ExitCode::SUCCESS)
}
