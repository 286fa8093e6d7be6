use sqlx::types::Json;

use super::{PluginKv, Plugins};
use crate::*;

macro_rules! plugin_cols {
    () => {
        "id, vendor, name, version, sha256, file_path, requested_capabilities, granted_capabilities, enabled, created_at, updated_at"
    };
}

impl Plugins<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<Plugin>> {
        let mut c = self.db.acquire().await?;
        super::paged(
            &mut c,
            concat!("SELECT ", plugin_cols!(), " FROM plugins ORDER BY vendor, name, id LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM plugins",
            page,
        )
        .await
    }

    /// Every enabled plugin version (what the flow engine loads).
    pub async fn list_enabled(self) -> Result<Vec<Plugin>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", plugin_cols!(), " FROM plugins WHERE enabled = 1 ORDER BY vendor, name, id")).fetch_all(&mut *c).await?)
    }

    pub async fn get(self, id: i64) -> Result<Option<Plugin>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", plugin_cols!(), " FROM plugins WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn get_by_identity(self, vendor: &str, name: &str, version: &str) -> Result<Option<Plugin>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", plugin_cols!(), " FROM plugins WHERE vendor = ? AND name = ? AND version = ?"))
            .bind(vendor)
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *c)
            .await?)
    }

    pub async fn insert(self, p: &NewPlugin) -> Result<Plugin> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO plugins (vendor, name, version, sha256, file_path, requested_capabilities, granted_capabilities, \
             enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            plugin_cols!()
        ))
        .bind(&p.vendor)
        .bind(&p.name)
        .bind(&p.version)
        .bind(&p.sha256)
        .bind(&p.file_path)
        .bind(Json(&p.requested_capabilities))
        .bind(Json(&p.granted_capabilities))
        .bind(p.enabled)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Sets what the administrator granted.
    pub async fn set_granted(self, id: i64, granted: &serde_json::Value) -> Result<Plugin> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!("UPDATE plugins SET granted_capabilities = ?, updated_at = ? WHERE id = ? RETURNING ", plugin_cols!()))
            .bind(Json(granted))
            .bind(Timestamp::now())
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn set_enabled(self, id: i64, enabled: bool) -> Result<Plugin> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!("UPDATE plugins SET enabled = ?, updated_at = ? WHERE id = ? RETURNING ", plugin_cols!()))
            .bind(enabled)
            .bind(Timestamp::now())
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a plugin version row and returns it (the caller removes the file).
    pub async fn delete(self, id: i64) -> Result<Option<Plugin>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("DELETE FROM plugins WHERE id = ? RETURNING ", plugin_cols!())).bind(id).fetch_optional(&mut *c).await?)
    }
}

impl PluginKv<'_> {
    /// The value of `key` for `plugin` ("vendor/name").
    pub async fn get(self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT value FROM plugin_kv WHERE plugin = ? AND key = ?").bind(plugin).bind(key).fetch_optional(&mut *c).await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn set(self, plugin: &str, key: &str, value: &[u8]) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query(
            "INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(key)
        .bind(value)
        .bind(Timestamp::now())
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    pub async fn delete(self, plugin: &str, key: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM plugin_kv WHERE plugin = ? AND key = ?").bind(plugin).bind(key).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// A plugin's keys, sorted.
    pub async fn keys(self, plugin: &str) -> Result<Vec<String>> {
        let mut c = self.db.acquire().await?;
        let rows: Vec<(String,)> = sqlx::query_as("SELECT key FROM plugin_kv WHERE plugin = ? ORDER BY key").bind(plugin).fetch_all(&mut *c).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Total bytes of a plugin's values (for a quota).
    pub async fn size(self, plugin: &str) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (Option<i64>,) =
            sqlx::query_as("SELECT SUM(length(key) + length(value)) FROM plugin_kv WHERE plugin = ?").bind(plugin).fetch_one(&mut *c).await?;
        Ok(n.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;

    #[tokio::test]
    async fn plugins_and_kv() {
        let (s, _d) = open_temp().await;
        let p = s
            .plugins()
            .insert(&NewPlugin {
                vendor: "acme".into(),
                name: "weather".into(),
                version: "1.0.0".into(),
                sha256: "00".repeat(32),
                file_path: "plugins/x.wasm".into(),
                requested_capabilities: serde_json::json!({"http": ["api.example.com"]}),
                granted_capabilities: serde_json::json!({}),
                enabled: false,
            })
            .await
            .unwrap();
        assert_eq!(p.key(), "acme/weather");
        let p = s.plugins().set_granted(p.id, &serde_json::json!({"http": ["api.example.com"]})).await.unwrap();
        assert_eq!(p.granted_capabilities["http"][0], "api.example.com");
        assert!(s.plugins().set_enabled(p.id, true).await.unwrap().enabled);
        assert_eq!(s.plugins().list_enabled().await.unwrap().len(), 1);

        let kv = "flowpbx/ring-group";
        assert_eq!(s.plugin_kv().get(kv, "rr:1").await.unwrap(), None);
        s.plugin_kv().set(kv, "rr:1", b"3").await.unwrap();
        s.plugin_kv().set(kv, "rr:1", b"4").await.unwrap();
        assert_eq!(s.plugin_kv().get(kv, "rr:1").await.unwrap().as_deref(), Some(&b"4"[..]));
        assert_eq!(s.plugin_kv().keys(kv).await.unwrap(), vec!["rr:1".to_string()]);
        assert_eq!(s.plugin_kv().size(kv).await.unwrap(), 5);
        assert!(s.plugin_kv().delete(kv, "rr:1").await.unwrap());
    }
}
