
use super::{AdminUsers, ApiTokens, Sessions};
use crate::secrets::hash_password;
use crate::*;

impl AdminUsers<'_> {
    pub async fn count(self) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admin_users").fetch_one(&mut *c).await?;
        Ok(n)
    }

    /// Creates the first administrator, only while there is none (first-boot setup).
    /// None when an administrator already exists.
    pub async fn create_first(self, username: &str, password: &str) -> Result<Option<AdminUser>> {
        let hash = hash_password(password).await?;
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "INSERT INTO admin_users (username, password_hash, created_at, updated_at) \
             SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM admin_users) \
             RETURNING id, username, created_at, updated_at, last_login_at",
        )
        .bind(username)
        .bind(hash)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?)
    }

    /// Creates another administrator.
    pub async fn create(self, username: &str, password: &str) -> Result<AdminUser> {
        let hash = hash_password(password).await?;
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "INSERT INTO admin_users (username, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?) \
             RETURNING id, username, created_at, updated_at, last_login_at",
        )
        .bind(username)
        .bind(hash)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn get(self, id: i64) -> Result<Option<AdminUser>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as("SELECT id, username, created_at, updated_at, last_login_at FROM admin_users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?)
    }

    /// The user and their password hash, for a login check.
    pub async fn get_with_hash(self, username: &str) -> Result<Option<(AdminUser, String)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: AdminUser,
            password_hash: String,
        }
        let mut c = self.db.acquire().await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, username, created_at, updated_at, last_login_at, password_hash FROM admin_users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&mut *c)
        .await?;
        Ok(row.map(|r| (r.user, r.password_hash)))
    }

    pub async fn set_password(self, id: i64, password: &str) -> Result<bool> {
        let hash = hash_password(password).await?;
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE admin_users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash)
            .bind(Timestamp::now())
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn touch_login(self, id: i64) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query("UPDATE admin_users SET last_login_at = ? WHERE id = ?").bind(Timestamp::now()).bind(id).execute(&mut *c).await?;
        Ok(())
    }
}

/// A session to create. `token_hash` is the SHA-256 (hex) of the cookie's token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub admin_user_id: i64,
    pub csrf_token: String,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Sessions<'_> {
    pub async fn create(self, s: &NewSession) -> Result<()> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        sqlx::query(
            "INSERT INTO sessions (id, admin_user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.token_hash)
        .bind(s.admin_user_id)
        .bind(&s.csrf_token)
        .bind(now)
        .bind(now)
        .bind(s.expires_at)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`, if it has not expired at `now`.
    pub async fn get_live(self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT s.id, s.admin_user_id, u.username, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at \
             FROM sessions s JOIN admin_users u ON u.id = s.admin_user_id WHERE s.id = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?)
    }

    /// Extends a session on activity.
    pub async fn touch(self, token_hash: &str, now: Timestamp, expires_at: Timestamp) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?")
            .bind(now)
            .bind(expires_at)
            .bind(token_hash)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    pub async fn delete(self, token_hash: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE id = ?").bind(token_hash).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete_expired(self, now: Timestamp) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?").bind(now).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }
}

macro_rules! token_cols {
    () => {
        "id, name, jti, created_by, created_at, expires_at, revoked_at, last_used_at"
    };
}

impl ApiTokens<'_> {
    pub async fn create(self, name: &str, jti: &str, created_by: Option<i64>, expires_at: Option<Timestamp>) -> Result<ApiToken> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO api_tokens (name, jti, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING ",
            token_cols!()
        ))
        .bind(name)
        .bind(jti)
        .bind(created_by)
        .bind(Timestamp::now())
        .bind(expires_at)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn list(self, page: Page) -> Result<Paged<ApiToken>> {
        let mut c = self.db.acquire().await?;
        super::paged(
            &mut c,
            concat!("SELECT ", token_cols!(), " FROM api_tokens ORDER BY id DESC LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM api_tokens",
            page,
        )
        .await
    }

    pub async fn get(self, id: i64) -> Result<Option<ApiToken>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM api_tokens WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The token with this JWT id if it is neither revoked nor expired at `now`; marks it used.
    pub async fn use_live(self, jti: &str, now: Timestamp) -> Result<Option<ApiToken>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "UPDATE api_tokens SET last_used_at = ? WHERE jti = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) \
             RETURNING ",
            token_cols!()
        ))
        .bind(now)
        .bind(jti)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?)
    }

    /// Revokes a token; the revoked row, or None if there is no such token.
    pub async fn revoke(self, id: i64) -> Result<Option<ApiToken>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ",
            token_cols!()
        ))
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;
    use time::Duration;

    #[tokio::test]
    async fn first_admin_only_once_and_sessions() {
        let (s, _d) = open_temp().await;
        let a = s.admin_users().create_first("admin", "password1").await.unwrap().unwrap();
        assert!(s.admin_users().create_first("other", "password2").await.unwrap().is_none());
        let (u, hash) = s.admin_users().get_with_hash("admin").await.unwrap().unwrap();
        assert_eq!(u.id, a.id);
        assert!(verify_password("password1", &hash).await);

        let now = Timestamp::now();
        s.sessions()
            .create(&NewSession {
                token_hash: "h1".into(),
                admin_user_id: a.id,
                csrf_token: "c".into(),
                expires_at: now + Duration::hours(24),
                ip: None,
                user_agent: None,
            })
            .await
            .unwrap();
        assert_eq!(s.sessions().get_live("h1", now).await.unwrap().unwrap().username, "admin");
        assert!(s.sessions().get_live("h1", now + Duration::hours(25)).await.unwrap().is_none());
        s.sessions().touch("h1", now, now + Duration::hours(48)).await.unwrap();
        assert!(s.sessions().get_live("h1", now + Duration::hours(25)).await.unwrap().is_some());

        let t = s.api_tokens().create("crm", "jti-1", Some(a.id), None).await.unwrap();
        assert!(s.api_tokens().use_live("jti-1", now).await.unwrap().is_some());
        s.api_tokens().revoke(t.id).await.unwrap();
        assert!(s.api_tokens().use_live("jti-1", now).await.unwrap().is_none());
    }
}
