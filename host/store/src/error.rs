//! The store's one error type.

/// Everything that can go wrong in the store. Callers map it onto the wire: `NotFound` to 404,
/// `Conflict` to a 409/422 naming the field, the rest to an internal error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file was written by a newer FlowPBX (it has migrations this binary lacks).
    #[error(
        "the database at {path} was written by a newer FlowPBX (schema version {found}, this binary knows up to {known}); \
         run the newer binary or restore a backup"
    )]
    NewerSchema { path: String, found: i64, known: i64 },
    /// The secret key cannot open the secrets already stored in this database.
    #[error("the secret key does not match this database: {0}")]
    WrongSecretKey(String),
    /// The secret key given (FLOWPBX_SECRET_KEY or secret.key) is malformed.
    #[error("invalid secret key: {0}")]
    InvalidSecretKey(String),
    /// A uniqueness constraint was violated; `column` names the column ("extensions.extension").
    #[error("{column} is already in use")]
    Conflict { column: String },
    /// A foreign key points to a row that does not exist, or a row still referenced was deleted.
    #[error("a referenced row does not exist or the row is still referenced")]
    ForeignKey,
    /// The row the operation names does not exist.
    #[error("not found")]
    NotFound,
    /// A stored secret failed to decrypt (tampered or sealed under another key).
    #[error("a stored secret could not be decrypted")]
    Decrypt,
    /// A JSON column holds something of the wrong shape.
    #[error("malformed JSON in {column}: {source}")]
    Json { column: &'static str, source: serde_json::Error },
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// Upgrading the schema failed; the database was left as it was.
    #[error("upgrading the database from schema version {from} failed, the database is unchanged (a copy taken before is at {backup}): {source}")]
    UpgradeFailed { from: i64, backup: String, source: sqlx::migrate::MigrateError },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return StoreError::NotFound;
        }
        if let Some(db) = e.as_database_error() {
            let msg = db.message();
            // SQLite: "UNIQUE constraint failed: extensions.extension"
            if let Some(rest) = msg.strip_prefix("UNIQUE constraint failed: ") {
                let column = rest.split(',').next().unwrap_or(rest).trim().to_owned();
                return StoreError::Conflict { column };
            }
            if msg.starts_with("FOREIGN KEY constraint failed") {
                return StoreError::ForeignKey;
            }
        }
        StoreError::Db(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
