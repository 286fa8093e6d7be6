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
        Ok(sqlx::query_as("SELECT id, username, created_at, updated_at, last_login_at FROM admin_users WHERE id = ?").bind(id).fetch_optional(&mut *c).await?)
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
        let row: Option<Row> = sqlx::query_as("SELECT id, username, created_at, updated_at, last_login_at, password_hash FROM admin_users WHERE username = ?")
            .bind(username)
            .fetch_optional(&mut *c)
            .await?;
        Ok(row.map(|r| (r.user, r.password_hash)))
    }

    /// An administrator's password hash, to check their current password.
    pub async fn password_hash(self, id: i64) -> Result<Option<String>> {
        let mut c = self.db.acquire().await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT password_hash FROM admin_users WHERE id = ?").bind(id).fetch_optional(&mut *c).await?;
        Ok(row.map(|(h,)| h))
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
    /// The first sliding expiry.
    pub expires_at: Timestamp,
    /// The end of the session however active it is.
    pub absolute_expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

macro_rules! session_cols {
    () => {
        "s.id, s.token_hash, s.admin_user_id, u.username, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, s.absolute_expires_at"
    };
}

impl Sessions<'_> {
    /// Creates a session; its number.
    pub async fn create(self, s: &NewSession) -> Result<i64> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO sessions (token_hash, admin_user_id, csrf_token, created_at, last_seen_at, expires_at, absolute_expires_at, ip, user_agent) \
             VALUES (?, ?, ?, ?, ?, MIN(?, ?), ?, ?, ?) RETURNING id",
        )
        .bind(&s.token_hash)
        .bind(s.admin_user_id)
        .bind(&s.csrf_token)
        .bind(now)
        .bind(now)
        .bind(s.expires_at)
        .bind(s.absolute_expires_at)
        .bind(s.absolute_expires_at)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .fetch_one(&mut *c)
        .await?;
        Ok(id)
    }

    /// The session whose token hashes to `token_hash`, if neither of its expiries has passed
    /// at `now`.
    pub async fn get_live(self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions s JOIN admin_users u ON u.id = s.admin_user_id \
             WHERE s.token_hash = ? AND s.expires_at > ? AND s.absolute_expires_at > ?"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?)
    }

    /// Extends a session on activity: its sliding expiry becomes `expires_at`, or its absolute
    /// one when that is sooner. The expiry it now has.
    pub async fn touch(self, token_hash: &str, now: Timestamp, expires_at: Timestamp) -> Result<Option<Timestamp>> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Timestamp,)> =
            sqlx::query_as("UPDATE sessions SET last_seen_at = ?, expires_at = MIN(?, absolute_expires_at) WHERE token_hash = ? RETURNING expires_at")
                .bind(now)
                .bind(expires_at)
                .bind(token_hash)
                .fetch_optional(&mut *c)
                .await?;
        Ok(row.map(|(t,)| t))
    }

    pub async fn delete(self, token_hash: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(token_hash).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete_expired(self, now: Timestamp) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR absolute_expires_at <= ?").bind(now).bind(now).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }

    /// The live sessions of one administrator, the most recently used first.
    pub async fn list_for_user(self, admin_user_id: i64, now: Timestamp) -> Result<Vec<SessionInfo>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT id, created_at, last_seen_at, expires_at, absolute_expires_at, ip, user_agent FROM sessions \
             WHERE admin_user_id = ? AND expires_at > ? AND absolute_expires_at > ? ORDER BY last_seen_at DESC, id DESC",
        )
        .bind(admin_user_id)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *c)
        .await?)
    }

    /// Ends one of an administrator's sessions by its number; false when they have no such
    /// session (another administrator's is not theirs to end).
    pub async fn delete_for_user(self, admin_user_id: i64, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE id = ? AND admin_user_id = ?").bind(id).bind(admin_user_id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends every session of an administrator but the one numbered `keep`; how many ended.
    pub async fn delete_others(self, admin_user_id: i64, keep: i64) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM sessions WHERE admin_user_id = ? AND id <> ?").bind(admin_user_id).bind(keep).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }
}

macro_rules! token_cols {
    () => {
        "id, name, jti, scope, created_by, created_at, expires_at, revoked_at, last_used_at"
    };
}

/// An API token to create.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub name: &'a str,
    /// The JWT id that names the token inside its JWT.
    pub jti: &'a str,
    pub scope: TokenScope,
    pub created_by: Option<i64>,
    pub expires_at: Timestamp,
}

impl ApiTokens<'_> {
    pub async fn create(self, t: &NewApiToken<'_>) -> Result<ApiToken> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO api_tokens (name, jti, scope, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
            token_cols!()
        ))
        .bind(t.name)
        .bind(t.jti)
        .bind(t.scope)
        .bind(t.created_by)
        .bind(Timestamp::now())
        .bind(t.expires_at)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn list(self, page: Page) -> Result<Paged<ApiToken>> {
        let mut c = self.db.acquire().await?;
        super::paged(&mut c, concat!("SELECT ", token_cols!(), " FROM api_tokens ORDER BY id DESC LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM api_tokens", page)
            .await
    }

    pub async fn get(self, id: i64) -> Result<Option<ApiToken>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM api_tokens WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The token with this JWT id if it is neither revoked nor expired at `now`; marks it used.
    /// A token without an expiry (none is made since migration 0004) is not live.
    pub async fn use_live(self, jti: &str, now: Timestamp) -> Result<Option<ApiToken>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "UPDATE api_tokens SET last_used_at = ? WHERE jti = ? AND revoked_at IS NULL AND expires_at > ? \
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
        Ok(sqlx::query_as(concat!("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ", token_cols!()))
            .bind(Timestamp::now())
            .bind(id)
            .fetch_optional(&mut *c)
            .await?)
    }

    /// Revokes every live token an administrator created; how many.
    pub async fn revoke_created_by(self, admin_user_id: i64) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE created_by = ? AND revoked_at IS NULL")
            .bind(Timestamp::now())
            .bind(admin_user_id)
            .execute(&mut *c)
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;
    use time::Duration;

    fn session(token_hash: &str, admin_user_id: i64, now: Timestamp) -> NewSession {
        NewSession {
            token_hash: token_hash.into(),
            admin_user_id,
            csrf_token: "c".into(),
            expires_at: now + Duration::hours(24),
            absolute_expires_at: now + Duration::days(7),
            ip: Some("192.0.2.1".into()),
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn first_admin_only_once_and_sessions() {
        let (s, _d) = open_temp().await;
        let a = s.admin_users().create_first("admin", "password1").await.unwrap().unwrap();
        assert!(s.admin_users().create_first("other", "password2").await.unwrap().is_none());
        let (u, hash) = s.admin_users().get_with_hash("admin").await.unwrap().unwrap();
        assert_eq!(u.id, a.id);
        assert!(verify_password("password1", &hash).await);
        assert_eq!(s.admin_users().password_hash(a.id).await.unwrap(), Some(hash));

        let now = Timestamp::now();
        s.sessions().create(&session("h1", a.id, now)).await.unwrap();
        assert_eq!(s.sessions().get_live("h1", now).await.unwrap().unwrap().username, "admin");
        assert!(s.sessions().get_live("h1", now + Duration::hours(25)).await.unwrap().is_none());
        s.sessions().touch("h1", now, now + Duration::hours(48)).await.unwrap();
        assert!(s.sessions().get_live("h1", now + Duration::hours(25)).await.unwrap().is_some());
    }

    /// However often a session is used, it ends at its absolute expiry.
    #[tokio::test]
    async fn a_session_ends_at_its_absolute_expiry() {
        let (s, _d) = open_temp().await;
        let a = s.admin_users().create_first("admin", "password1").await.unwrap().unwrap();
        let now = Timestamp::now();
        s.sessions().create(&session("h1", a.id, now)).await.unwrap();
        // used every 23 hours for a week: the sliding expiry never passes the absolute one
        for day in 1..=7 {
            let t = now + Duration::hours(23 * day);
            assert!(s.sessions().get_live("h1", t).await.unwrap().is_some(), "day {day}");
            let until = s.sessions().touch("h1", t, t + Duration::hours(24)).await.unwrap().unwrap();
            assert!(until <= now + Duration::days(7), "day {day}: {until}");
        }
        assert!(s.sessions().get_live("h1", now + Duration::days(7)).await.unwrap().is_none());
        assert_eq!(s.sessions().delete_expired(now + Duration::days(7)).await.unwrap(), 1);
        // a first expiry past the absolute one is cut to it
        s.sessions().create(&NewSession { expires_at: now + Duration::days(30), ..session("h2", a.id, now) }).await.unwrap();
        assert!(s.sessions().get_live("h2", now + Duration::days(7)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sessions_are_listed_and_ended_per_administrator() {
        let (s, _d) = open_temp().await;
        let a = s.admin_users().create_first("admin", "password1").await.unwrap().unwrap();
        let b = s.admin_users().create("other", "password2").await.unwrap();
        let now = Timestamp::now();
        let a1 = s.sessions().create(&session("a1", a.id, now)).await.unwrap();
        let a2 = s.sessions().create(&session("a2", a.id, now)).await.unwrap();
        let _a3 = s.sessions().create(&session("a3", a.id, now)).await.unwrap();
        let b1 = s.sessions().create(&session("b1", b.id, now)).await.unwrap();
        let listed: Vec<i64> = s.sessions().list_for_user(a.id, now).await.unwrap().iter().map(|x| x.id).collect();
        assert_eq!(listed.len(), 3);
        assert!(!listed.contains(&b1));
        // another administrator's session is not theirs to end
        assert!(!s.sessions().delete_for_user(a.id, b1).await.unwrap());
        assert!(s.sessions().get_live("b1", now).await.unwrap().is_some());
        assert!(s.sessions().delete_for_user(a.id, a2).await.unwrap());
        assert!(s.sessions().get_live("a2", now).await.unwrap().is_none());
        // all others but the current one
        assert_eq!(s.sessions().delete_others(a.id, a1).await.unwrap(), 1);
        assert_eq!(s.sessions().list_for_user(a.id, now).await.unwrap().iter().map(|x| x.id).collect::<Vec<_>>(), vec![a1]);
        assert!(s.sessions().get_live("b1", now).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tokens_have_a_scope_expire_and_revoke() {
        let (s, _d) = open_temp().await;
        let a = s.admin_users().create_first("admin", "password1").await.unwrap().unwrap();
        let now = Timestamp::now();
        let new = |jti: &'static str, scope| NewApiToken { name: "crm", jti, scope, created_by: Some(a.id), expires_at: now + Duration::days(1) };
        let t = s.api_tokens().create(&new("jti-1", TokenScope::Read)).await.unwrap();
        assert_eq!(t.scope, TokenScope::Read);
        assert_eq!(s.api_tokens().use_live("jti-1", now).await.unwrap().unwrap().scope, TokenScope::Read);
        assert!(s.api_tokens().use_live("jti-1", now + Duration::days(1)).await.unwrap().is_none(), "expired");
        s.api_tokens().revoke(t.id).await.unwrap();
        assert!(s.api_tokens().use_live("jti-1", now).await.unwrap().is_none());

        s.api_tokens().create(&new("jti-2", TokenScope::Write)).await.unwrap();
        s.api_tokens().create(&new("jti-3", TokenScope::Admin)).await.unwrap();
        assert_eq!(s.api_tokens().revoke_created_by(a.id).await.unwrap(), 2);
        assert!(s.api_tokens().use_live("jti-3", now).await.unwrap().is_none());
        assert!(TokenScope::Admin.allows(TokenScope::Write) && TokenScope::Write.allows(TokenScope::Read));
        assert!(!TokenScope::Read.allows(TokenScope::Write) && !TokenScope::Write.allows(TokenScope::Admin));
    }

    /// Migration 0004 keeps live sessions (with an absolute expiry 7 days after their start)
    /// and gives tokens made without an expiry the default 90 days and the admin scope.
    #[tokio::test]
    async fn migration_0004_carries_sessions_and_tokens_over() {
        use sqlx::migrate::Migrate;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
        {
            let mut c = pool.acquire().await.unwrap();
            c.ensure_migrations_table("_sqlx_migrations").await.unwrap();
            for m in MIGRATOR.iter().filter(|m| m.version < 4) {
                c.apply("_sqlx_migrations", m).await.unwrap();
            }
        }
        sqlx::query(
            "INSERT INTO admin_users (id, username, password_hash, created_at, updated_at) VALUES (1, 'admin', 'x', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
             INSERT INTO sessions (id, admin_user_id, csrf_token, created_at, last_seen_at, expires_at) VALUES ('hash1', 1, 'c', '2026-01-01T10:00:00.123Z', '2026-01-01T10:00:00.123Z', '2099-01-01T00:00:00.000Z');
             INSERT INTO api_tokens (name, jti, created_by, created_at) VALUES ('old', 'j-old', 1, '2026-01-01T00:00:00.000Z');
             INSERT INTO api_tokens (name, jti, created_by, created_at, expires_at) VALUES ('long', 'j-long', 1, '2026-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z');",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let s = Store::open(StoreOptions::new(&path, SecretKey::generate(), "r")).await.unwrap();
        let (hash, absolute): (String, Timestamp) = sqlx::query_as("SELECT token_hash, absolute_expires_at FROM sessions").fetch_one(s.pool()).await.unwrap();
        assert_eq!((hash.as_str(), absolute), ("hash1", Timestamp::parse("2026-01-08T10:00:00.123Z").unwrap()));
        let now = Timestamp::now();
        let old = s.api_tokens().use_live("j-old", now).await.unwrap().expect("the old token lives on");
        assert_eq!(old.scope, TokenScope::Admin);
        let days = |t: &ApiToken| t.expires_at.unwrap().seconds_since(now) / 86_400;
        assert!((89..=90).contains(&days(&old)), "{old:?}");
        let long = s.api_tokens().use_live("j-long", now).await.unwrap().unwrap();
        assert!((364..=365).contains(&days(&long)), "{long:?}");
    }
}
