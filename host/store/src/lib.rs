//! FlowPBX storage: SQLite in WAL mode at `<data-dir>/flowpbx.db`, the migrations in
//! `migrations/`, typed repositories for the whole data model, and secrets at rest.
//!
//! Entry points: [`Store::open`], then `store.<table>()` for reads and single-statement writes
//! (e.g. `store.extensions().get(id)`, `store.cdrs().insert_start(..)`), or [`Store::begin`]
//! for a transaction (`tx.extensions().insert(..)`, `tx.audit(..)`, `tx.commit()`): the API
//! makes every change, with its audit row, in one transaction.
//!
//! **Architecture invariant:** no SQL outside this crate; no dependency on any other FlowPBX
//! crate. Secrets never leave it in clear except through the functions that exist to hand them
//! to the SIP stack (`sip_credentials`, `trunks().password`).
#![forbid(unsafe_code)]

mod error;
mod model;
mod repo;
mod secrets;
mod timestamp;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

pub use error::{Result, StoreError};
pub use model::*;
pub use repo::*;
pub use secrets::{constant_time_eq, ha1_md5, ha1_sha256, hash_password, random_token, sha256_hex, verify_password, Cipher, SecretKey};
pub use timestamp::Timestamp;

/// The migrations of `migrations/`, embedded.
/// The schema version this binary brings (its highest migration).
pub fn latest_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn vacuum_into(pool: &SqlitePool, dest: &Path) -> Result<()> {
    let dest = dest.to_str().ok_or_else(|| StoreError::Io(std::io::Error::other("the backup path is not UTF-8")))?;
    sqlx::query("VACUUM INTO ?").bind(dest).execute(pool).await?;
    Ok(())
}

/// Writes a consistent copy of the database file `db` to `dest` (`VACUUM INTO`) without
/// migrating or otherwise writing to it — what `flowpbx backup` does beside a running server.
/// Returns the copy's schema version.
pub async fn snapshot_file(db: &Path, dest: &Path) -> Result<i64> {
    let connect = SqliteConnectOptions::from_str("sqlite://").map_err(StoreError::Db)?.filename(db).read_only(true).busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(connect).await?;
    let r = async {
        vacuum_into(&pool, dest).await?;
        Store::applied_version(&pool).await
    }
    .await;
    pool.close().await;
    r
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "flowpbx.db";
/// The secret key file's name inside the data dir.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The database file (usually `<data-dir>/flowpbx.db`); created when missing.
    pub path: PathBuf,
    /// The key secrets are sealed under.
    pub secret_key: SecretKey,
    /// The SIP realm the extensions' HA1s are computed over. None: decide later with
    /// [`Store::set_sip_realm`] (the binary does, once it has read the stored settings).
    pub sip_realm: Option<String>,
    /// Pool size (readers and the writer share it; SQLite serialises writers).
    pub max_connections: u32,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>, secret_key: SecretKey, sip_realm: impl Into<String>) -> Self {
        Self { path: path.into(), secret_key, sip_realm: Some(sip_realm.into()), max_connections: 4 }
    }
}

pub(crate) struct Inner {
    pub(crate) cipher: Cipher,
    pub(crate) realm: RwLock<String>,
    pub(crate) path: PathBuf,
}

/// The database handle. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
    }
}

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"flowpbx secret key check";

impl Store {
    /// Opens (creating when missing) the database, applies the migrations, checks the secret
    /// key against the database, and makes sure the HA1s match `sip_realm`.
    ///
    /// Refuses a database written by a newer binary ([`StoreError::NewerSchema`]) and a key
    /// that does not open the secrets already stored ([`StoreError::WrongSecretKey`]).
    pub async fn open(opts: StoreOptions) -> Result<Store> {
        let connect = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::Db)?
            .filename(&opts.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-4096");
        let pool_opts =
            || SqlitePoolOptions::new().max_connections(opts.max_connections.max(1)).min_connections(0).idle_timeout(Some(Duration::from_secs(300)));
        let mut pool = pool_opts().connect_with(connect.clone()).await?;
        let path_display = opts.path.display().to_string();
        Self::check_schema_not_newer(&pool, &path_display).await?;
        let current = Self::applied_version(&pool).await?;
        if current > 0 && current < latest_schema_version() {
            // an upgrade: a backup first, then every pending migration on a copy, which
            // replaces the database only once all of them applied — a failing migration
            // leaves the database as it was
            pool = Self::upgrade(pool, &opts.path, current, connect, pool_opts).await?;
        } else {
            MIGRATOR.run(&pool).await?;
        }

        let store = Store {
            pool,
            inner: Arc::new(Inner {
                cipher: Cipher::new(&opts.secret_key),
                realm: RwLock::new(opts.sip_realm.clone().unwrap_or_else(|| "flowpbx".to_owned())),
                path: opts.path.clone(),
            }),
        };
        store.check_secret_key().await?;
        if let Some(realm) = &opts.sip_realm {
            store.set_sip_realm(realm).await?;
        }
        Ok(store)
    }

    /// The highest migration applied (0: a new database).
    async fn applied_version(pool: &SqlitePool) -> Result<i64> {
        let has_table: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'").fetch_optional(pool).await?;
        if has_table.is_none() {
            return Ok(0);
        }
        let (v,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1").fetch_one(pool).await?;
        Ok(v.unwrap_or(0))
    }

    /// Upgrades the database at `path` from schema `current`: writes
    /// `<dir>/backups/pre-upgrade-v<current>-<unix time>.db` (a consistent copy), migrates
    /// another copy, and renames it over the database only when every migration applied.
    async fn upgrade(
        pool: SqlitePool,
        path: &Path,
        current: i64,
        connect: SqliteConnectOptions,
        pool_opts: impl Fn() -> SqlitePoolOptions,
    ) -> Result<SqlitePool> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let backups = dir.join("backups");
        std::fs::create_dir_all(&backups)?;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let backup = backups.join(format!("pre-upgrade-v{current}-{secs}.db"));
        vacuum_into(&pool, &backup).await?;
        let work = path.with_extension("db.upgrading");
        for stale in [work.clone(), work.with_extension("upgrading-wal"), work.with_extension("upgrading-shm")] {
            let _ = std::fs::remove_file(stale);
        }
        vacuum_into(&pool, &work).await?;
        let copy = pool_opts().connect_with(connect.clone().filename(&work)).await?;
        let migrated = MIGRATOR.run(&copy).await;
        copy.close().await;
        if let Err(e) = migrated {
            let _ = std::fs::remove_file(&work);
            let _ = std::fs::remove_file(work.with_extension("upgrading-wal"));
            let _ = std::fs::remove_file(work.with_extension("upgrading-shm"));
            return Err(StoreError::UpgradeFailed { from: current, backup: backup.display().to_string(), source: e });
        }
        // the old database's connections close (its WAL checkpointed) before the swap
        pool.close().await;
        std::fs::rename(&work, path)?;
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{side}", path.display()));
        }
        Ok(pool_opts().connect_with(connect).await?)
    }

    async fn check_schema_not_newer(pool: &SqlitePool, path: &str) -> Result<()> {
        let has_table: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'").fetch_optional(pool).await?;
        if has_table.is_none() {
            return Ok(());
        }
        let (found,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1").fetch_one(pool).await?;
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        match found {
            Some(found) if found > known => Err(StoreError::NewerSchema { path: path.to_owned(), found, known }),
            _ => Ok(()),
        }
    }

    async fn check_secret_key(&self) -> Result<()> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT value_enc FROM system_config WHERE key = ?").bind(KEY_CHECK).fetch_optional(&self.pool).await?;
        match row {
            Some((Some(sealed),)) => match self.inner.cipher.open(KEY_CHECK, &sealed) {
                Ok(p) if p == KEY_CHECK_PLAINTEXT => Ok(()),
                _ => Err(StoreError::WrongSecretKey(
                    "the secrets in this database were sealed under another key \
                     (check FLOWPBX_SECRET_KEY or <data-dir>/secret.key)"
                        .into(),
                )),
            },
            _ => {
                let sealed = self.inner.cipher.seal(KEY_CHECK, KEY_CHECK_PLAINTEXT);
                sqlx::query(
                    "INSERT INTO system_config (key, value, value_enc, encrypted, updated_at) VALUES (?, NULL, ?, 1, ?) \
                     ON CONFLICT (key) DO UPDATE SET value_enc = excluded.value_enc, encrypted = 1, updated_at = excluded.updated_at",
                )
                .bind(KEY_CHECK)
                .bind(sealed)
                .bind(Timestamp::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    }

    /// The schema version (the highest migration applied).
    pub async fn schema_version(&self) -> Result<i64> {
        let (v,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1").fetch_one(&self.pool).await?;
        Ok(v.unwrap_or(0))
    }

    /// A cheap liveness check for the health endpoint.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The SIP realm HA1s are computed over.
    pub fn sip_realm(&self) -> String {
        self.inner.realm.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Changes the SIP realm: recomputes (in one transaction) the HA1s of every extension whose
    /// HA1s were computed over another realm. Returns how many were recomputed.
    pub async fn set_sip_realm(&self, realm: &str) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = tx.extensions().recompute_ha1(realm).await?;
        tx.commit().await?;
        if let Ok(mut r) = self.inner.realm.write() {
            *r = realm.to_owned();
        }
        if n > 0 {
            tracing::info!(realm, extensions = n, "recomputed SIP digest HA1s for the new realm");
        }
        Ok(n)
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`: it takes the write lock at once, so it
    /// never fails half-way for a lock another writer holds).
    pub async fn begin(&self) -> Result<Tx> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Tx { tx, inner: self.inner.clone() })
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Connections the pool holds now, and how many of them are idle.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Writes a consistent copy of the database to `dest` while the server runs (SQLite's
    /// `VACUUM INTO`: one read transaction, so the copy is the database at one instant, WAL
    /// included). `dest` must not exist.
    pub async fn backup_into(&self, dest: &Path) -> Result<()> {
        vacuum_into(&self.pool, dest).await
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    tx: Transaction<'static, Sqlite>,
    inner: Arc<Inner>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }

    pub(crate) fn parts(&mut self) -> (&mut SqliteConnection, &Inner) {
        (&mut *self.tx, &self.inner)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub async fn open_temp() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(StoreOptions::new(dir.path().join(DB_FILE), SecretKey::generate(), "flowpbx")).await.expect("open store");
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_creates_wal_db_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let path = dir.path().join(DB_FILE);
        let s = Store::open(StoreOptions::new(&path, key.clone(), "r1")).await.unwrap();
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(s.pool()).await.unwrap();
        assert_eq!(mode, "wal");
        assert!(s.schema_version().await.unwrap() >= 1);
        s.close().await;
        let s = Store::open(StoreOptions::new(&path, key, "r1")).await.unwrap();
        s.close().await;
        // another key is refused
        let err = Store::open(StoreOptions::new(&path, SecretKey::generate(), "r1")).await.unwrap_err();
        assert!(matches!(err, StoreError::WrongSecretKey(_)), "{err}");
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let path = dir.path().join(DB_FILE);
        let s = Store::open(StoreOptions::new(&path, key.clone(), "r")).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
        )
        .execute(s.pool())
        .await
        .unwrap();
        s.close().await;
        let err = Store::open(StoreOptions::new(&path, key, "r")).await.unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("newer FlowPBX"));
    }
}
