use std::collections::BTreeMap;

use super::Settings;
use crate::*;

fn sealed_column(key: &str) -> String {
    format!("system_config.{key}")
}

impl Settings<'_> {
    /// Every plain (not sealed) setting, by key.
    pub async fn all(self) -> Result<BTreeMap<String, String>> {
        let mut c = self.db.acquire().await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM system_config WHERE encrypted = 0 AND value IS NOT NULL").fetch_all(&mut *c).await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn get(self, key: &str) -> Result<Option<String>> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT value FROM system_config WHERE key = ? AND encrypted = 0").bind(key).fetch_optional(&mut *c).await?;
        Ok(row.and_then(|r| r.0))
    }

    pub async fn set(self, key: &str, value: &str) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query(
            "INSERT INTO system_config (key, value, value_enc, encrypted, updated_at) VALUES (?, ?, NULL, 0, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, value_enc = NULL, encrypted = 0, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(Timestamp::now())
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    /// Removes a setting (it falls back to its default).
    pub async fn delete(self, key: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM system_config WHERE key = ?").bind(key).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a secret setting (SMTP password, licence key…) sealed.
    pub async fn set_secret(self, key: &str, value: &str) -> Result<()> {
        let sealed = self.inner.cipher.seal_str(&sealed_column(key), value);
        let mut c = self.db.acquire().await?;
        sqlx::query(
            "INSERT INTO system_config (key, value, value_enc, encrypted, updated_at) VALUES (?, NULL, ?, 1, ?) \
             ON CONFLICT (key) DO UPDATE SET value = NULL, value_enc = excluded.value_enc, encrypted = 1, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(sealed)
        .bind(Timestamp::now())
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    pub async fn get_secret(self, key: &str) -> Result<Option<String>> {
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT value_enc FROM system_config WHERE key = ? AND encrypted = 1").bind(key).fetch_optional(&mut *c).await?;
        match row {
            Some((Some(sealed),)) => Ok(Some(inner.cipher.open_string(&sealed_column(key), &sealed)?)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;

    #[tokio::test]
    async fn plain_and_secret() {
        let (s, _d) = open_temp().await;
        s.settings().set("sip_udp_port", "5070").await.unwrap();
        s.settings().set("sip_udp_port", "5080").await.unwrap();
        assert_eq!(s.settings().get("sip_udp_port").await.unwrap().as_deref(), Some("5080"));
        s.settings().set_secret("smtp_password", "pa55").await.unwrap();
        assert_eq!(s.settings().get_secret("smtp_password").await.unwrap().as_deref(), Some("pa55"));
        assert_eq!(s.settings().get("smtp_password").await.unwrap(), None);
        let all = s.settings().all().await.unwrap();
        assert_eq!(all.get("sip_udp_port").map(String::as_str), Some("5080"));
        assert!(!all.contains_key("smtp_password"));
        assert!(s.settings().delete("sip_udp_port").await.unwrap());
    }
}
