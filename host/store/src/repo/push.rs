//! Extensions' push targets (ntfy or Gotify), the token sealed.

use super::PushTargets;
use crate::*;

const TOKEN_COLUMN: &str = "push_targets.token";

impl PushTargets<'_> {
    pub async fn get(self, extension_id: i64) -> Result<Option<PushTarget>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as("SELECT extension_id, kind, url, token IS NOT NULL AS token_set, updated_at FROM push_targets WHERE extension_id = ?")
            .bind(extension_id)
            .fetch_optional(&mut *c)
            .await?)
    }

    /// The target's token in clear (for sending).
    pub async fn token(self, extension_id: i64) -> Result<Option<String>> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT token FROM push_targets WHERE extension_id = ?").bind(extension_id).fetch_optional(&mut *c).await?;
        match row.and_then(|(t,)| t) {
            Some(sealed) => Ok(Some(self.inner.cipher.open_string(TOKEN_COLUMN, &sealed)?)),
            None => Ok(None),
        }
    }

    /// Sets the target; `token`: `None` keeps the stored one, `Some("")` removes it.
    pub async fn set(self, extension_id: i64, kind: PushKind, url: &str, token: Option<&str>) -> Result<PushTarget> {
        let mut c = self.db.acquire().await?;
        let now = Timestamp::now();
        let sealed = token.filter(|t| !t.is_empty()).map(|t| self.inner.cipher.seal_str(TOKEN_COLUMN, t));
        let clear = token == Some("");
        Ok(sqlx::query_as(
            "INSERT INTO push_targets (extension_id, kind, url, token, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (extension_id) DO UPDATE SET kind = excluded.kind, url = excluded.url, \
             token = CASE WHEN ? THEN NULL ELSE COALESCE(excluded.token, push_targets.token) END, updated_at = excluded.updated_at \
             RETURNING extension_id, kind, url, token IS NOT NULL AS token_set, updated_at",
        )
        .bind(extension_id)
        .bind(kind)
        .bind(url)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .bind(clear)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn delete(self, extension_id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM push_targets WHERE extension_id = ?").bind(extension_id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }
}
