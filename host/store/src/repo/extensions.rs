use sqlx::types::Json;

use super::{delete_by_id, paged, Extensions};
use crate::secrets::{constant_time_eq, ha1_md5, ha1_sha256};
use crate::{Extension, ExtensionFields, Page, Paged, Result, SipCredentials, StoreError, Timestamp};

pub(crate) const COL_PASSWORD: &str = "extensions.sip_password";
const COL_HA1_MD5: &str = "extensions.ha1_md5";
const COL_HA1_SHA256: &str = "extensions.ha1_sha256";

macro_rules! cols {
    () => {
        "id, extension, name, email, sip_username, ring_timeout, dnd, follow_me_enabled, \
         follow_me_numbers, follow_me_mode, follow_me_confirm, srtp, recording_mode, max_registrations, mwi_unsolicited, outbound_caller_id_name, \
         outbound_caller_id_num, emergency_caller_id_num, call_classes, max_outbound_calls, daily_outbound_minutes, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: i64,
    extension: String,
    sip_username: String,
    sip_password_enc: Vec<u8>,
    ha1_md5_enc: Vec<u8>,
    ha1_sha256_enc: Vec<u8>,
    ha1_realm: String,
}

impl Extensions<'_> {
    /// Extensions ordered by number.
    pub async fn list(self, page: Page) -> Result<Paged<Extension>> {
        let mut c = self.db.acquire().await?;
        paged(
            &mut c,
            concat!("SELECT ", cols!(), " FROM extensions ORDER BY length(extension), extension LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM extensions",
            page,
        )
        .await
    }

    pub async fn get(self, id: i64) -> Result<Option<Extension>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM extensions WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The extension dialled as `number` ("101").
    pub async fn get_by_extension(self, number: &str) -> Result<Option<Extension>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM extensions WHERE extension = ?")).bind(number).fetch_optional(&mut *c).await?)
    }

    pub async fn get_by_sip_username(self, username: &str) -> Result<Option<Extension>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM extensions WHERE sip_username = ?")).bind(username).fetch_optional(&mut *c).await?)
    }

    /// Several extensions by id (those that exist), in id order.
    pub async fn get_many(self, ids: &[i64]) -> Result<Vec<Extension>> {
        let mut c = self.db.acquire().await?;
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM extensions WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"))
            .bind(ids)
            .fetch_all(&mut *c)
            .await?)
    }

    pub async fn count(self) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM extensions").fetch_one(&mut *c).await?;
        Ok(n)
    }

    /// Inserts an extension; its SIP password is sealed and its HA1s computed over the
    /// store's realm.
    pub async fn insert(self, f: &ExtensionFields, sip_password: &str) -> Result<Extension> {
        let realm = self.realm();
        let cipher = &self.inner.cipher;
        let pw = cipher.seal_str(COL_PASSWORD, sip_password);
        let md5 = cipher.seal_str(COL_HA1_MD5, &ha1_md5(&f.sip_username, &realm, sip_password));
        let sha = cipher.seal_str(COL_HA1_SHA256, &ha1_sha256(&f.sip_username, &realm, sip_password));
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO extensions (extension, name, email, sip_username, sip_password_enc, ha1_md5_enc, \
             ha1_sha256_enc, ha1_realm, ring_timeout, dnd, follow_me_enabled, follow_me_numbers, follow_me_mode, follow_me_confirm, srtp, recording_mode, \
             max_registrations, mwi_unsolicited, outbound_caller_id_name, outbound_caller_id_num, emergency_caller_id_num, call_classes, \
             max_outbound_calls, daily_outbound_minutes, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            cols!()
        ))
        .bind(&f.extension)
        .bind(&f.name)
        .bind(&f.email)
        .bind(&f.sip_username)
        .bind(pw)
        .bind(md5)
        .bind(sha)
        .bind(&realm)
        .bind(f.ring_timeout)
        .bind(f.dnd)
        .bind(f.follow_me_enabled)
        .bind(Json(&f.follow_me_numbers))
        .bind(f.follow_me_mode)
        .bind(f.follow_me_confirm)
        .bind(f.srtp)
        .bind(f.recording_mode)
        .bind(f.max_registrations)
        .bind(f.mwi_unsolicited)
        .bind(&f.outbound_caller_id_name)
        .bind(&f.outbound_caller_id_num)
        .bind(&f.emergency_caller_id_num)
        .bind(Json(&f.call_classes))
        .bind(f.max_outbound_calls)
        .bind(f.daily_outbound_minutes)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Replaces an extension's fields; `sip_password` None keeps the stored one. The HA1s are
    /// recomputed (the username is part of them).
    pub async fn update(self, id: i64, f: &ExtensionFields, sip_password: Option<&str>) -> Result<Extension> {
        let realm = self.realm();
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let secret: Option<SecretRow> = sqlx::query_as(
            "SELECT id, extension, sip_username, sip_password_enc, ha1_md5_enc, ha1_sha256_enc, ha1_realm \
             FROM extensions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
        let secret = secret.ok_or(StoreError::NotFound)?;
        let password = match sip_password {
            Some(p) => p.to_owned(),
            None => inner.cipher.open_string(COL_PASSWORD, &secret.sip_password_enc)?,
        };
        let cipher = &inner.cipher;
        let pw = cipher.seal_str(COL_PASSWORD, &password);
        let md5 = cipher.seal_str(COL_HA1_MD5, &ha1_md5(&f.sip_username, &realm, &password));
        let sha = cipher.seal_str(COL_HA1_SHA256, &ha1_sha256(&f.sip_username, &realm, &password));
        Ok(sqlx::query_as(concat!(
            "UPDATE extensions SET extension = ?, name = ?, email = ?, sip_username = ?, sip_password_enc = ?, \
             ha1_md5_enc = ?, ha1_sha256_enc = ?, ha1_realm = ?, ring_timeout = ?, dnd = ?, follow_me_enabled = ?, \
             follow_me_numbers = ?, follow_me_mode = ?, follow_me_confirm = ?, srtp = ?, recording_mode = ?, max_registrations = ?, mwi_unsolicited = ?, outbound_caller_id_name = ?, \
             outbound_caller_id_num = ?, emergency_caller_id_num = ?, call_classes = ?, max_outbound_calls = ?, \
             daily_outbound_minutes = ?, updated_at = ? WHERE id = ? RETURNING ",
            cols!()
        ))
        .bind(&f.extension)
        .bind(&f.name)
        .bind(&f.email)
        .bind(&f.sip_username)
        .bind(pw)
        .bind(md5)
        .bind(sha)
        .bind(&realm)
        .bind(f.ring_timeout)
        .bind(f.dnd)
        .bind(f.follow_me_enabled)
        .bind(Json(&f.follow_me_numbers))
        .bind(f.follow_me_mode)
        .bind(f.follow_me_confirm)
        .bind(f.srtp)
        .bind(f.recording_mode)
        .bind(f.max_registrations)
        .bind(f.mwi_unsolicited)
        .bind(&f.outbound_caller_id_name)
        .bind(&f.outbound_caller_id_num)
        .bind(&f.emergency_caller_id_num)
        .bind(Json(&f.call_classes))
        .bind(f.max_outbound_calls)
        .bind(f.daily_outbound_minutes)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Sets do-not-disturb (the app's and the phone's toggle).
    pub async fn set_dnd(self, id: i64, dnd: bool) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE extensions SET dnd = ?, updated_at = ? WHERE id = ?").bind(dnd).bind(Timestamp::now()).bind(id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM extensions WHERE id = ?", id).await
    }

    /// The digest credentials of `username` over the current realm, decrypted.
    pub async fn sip_credentials(self, username: &str) -> Result<Option<SipCredentials>> {
        let realm = self.realm();
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let row: Option<SecretRow> = sqlx::query_as(
            "SELECT id, extension, sip_username, sip_password_enc, ha1_md5_enc, ha1_sha256_enc, ha1_realm \
             FROM extensions WHERE sip_username = ?",
        )
        .bind(username)
        .fetch_optional(&mut *c)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let cipher = &inner.cipher;
        let (md5, sha) = if row.ha1_realm == realm {
            (cipher.open_string(COL_HA1_MD5, &row.ha1_md5_enc)?, cipher.open_string(COL_HA1_SHA256, &row.ha1_sha256_enc)?)
        } else {
            // the realm changed since the HA1s were stored: compute them from the password
            let pw = cipher.open_string(COL_PASSWORD, &row.sip_password_enc)?;
            (ha1_md5(&row.sip_username, &realm, &pw), ha1_sha256(&row.sip_username, &realm, &pw))
        };
        Ok(Some(SipCredentials { extension_id: row.id, extension: row.extension, username: row.sip_username, realm, ha1_md5: md5, ha1_sha256: sha }))
    }

    /// The digest credentials of every extension over the current realm, decrypted: what the
    /// SIP stack keeps in memory so no request waits on the database.
    pub async fn all_sip_credentials(self) -> Result<Vec<SipCredentials>> {
        let realm = self.realm();
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let rows: Vec<SecretRow> = sqlx::query_as(
            "SELECT id, extension, sip_username, sip_password_enc, ha1_md5_enc, ha1_sha256_enc, ha1_realm \
             FROM extensions ORDER BY id",
        )
        .fetch_all(&mut *c)
        .await?;
        let cipher = &inner.cipher;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (md5, sha) = if row.ha1_realm == realm {
                (cipher.open_string(COL_HA1_MD5, &row.ha1_md5_enc)?, cipher.open_string(COL_HA1_SHA256, &row.ha1_sha256_enc)?)
            } else {
                let pw = cipher.open_string(COL_PASSWORD, &row.sip_password_enc)?;
                (ha1_md5(&row.sip_username, &realm, &pw), ha1_sha256(&row.sip_username, &realm, &pw))
            };
            out.push(SipCredentials {
                extension_id: row.id,
                extension: row.extension,
                username: row.sip_username,
                realm: realm.clone(),
                ha1_md5: md5,
                ha1_sha256: sha,
            });
        }
        Ok(out)
    }

    /// A value that changes whenever an extension, trunk, inbound number, outbound route or published flow
    /// version is added, changed or removed, or the global recording policy changes: the SIP stack polls it (one cheap query) to know
    /// when to reload its in-memory directory.
    pub async fn change_stamp(self) -> Result<String> {
        let mut c = self.db.acquire().await?;
        let (stamp,): (String,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) || '/' || TOTAL(id) || '/' || IFNULL(MAX(updated_at), '') FROM extensions) || ';' || \
             (SELECT COUNT(*) || '/' || TOTAL(id) || '/' || IFNULL(MAX(updated_at), '') FROM trunks) || ';' || \
             (SELECT COUNT(*) || '/' || TOTAL(id) || '/' || IFNULL(MAX(updated_at), '') FROM inbound_numbers) || ';' || \
             (SELECT COUNT(*) || '/' || TOTAL(id) || '/' || IFNULL(MAX(updated_at), '') FROM outbound_routes) || ';' || \
             (SELECT COUNT(*) || '/' || TOTAL(id) || '/' || IFNULL(MAX(updated_at), '') FROM voicemail_boxes) || ';' || \
             (SELECT COUNT(*) || '/' || TOTAL(id) FROM flow_versions) || ';' || \
             IFNULL((SELECT value FROM system_config WHERE key = 'recording_policy'), '')",
        )
        .fetch_one(&mut *c)
        .await?;
        Ok(stamp)
    }

    /// Checks a SIP username and password (the mobile app's login); the extension on success.
    pub async fn verify_sip_password(self, username: &str, password: &str) -> Result<Option<Extension>> {
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let row: Option<SecretRow> = sqlx::query_as(
            "SELECT id, extension, sip_username, sip_password_enc, ha1_md5_enc, ha1_sha256_enc, ha1_realm \
             FROM extensions WHERE sip_username = ?",
        )
        .bind(username)
        .fetch_optional(&mut *c)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored = inner.cipher.open_string(COL_PASSWORD, &row.sip_password_enc)?;
        if !constant_time_eq(stored.as_bytes(), password.as_bytes()) {
            return Ok(None);
        }
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM extensions WHERE id = ?")).bind(row.id).fetch_optional(&mut *c).await?)
    }

    /// Recomputes the HA1s of every extension whose HA1s were computed over another realm.
    pub async fn recompute_ha1(self, realm: &str) -> Result<u64> {
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let rows: Vec<SecretRow> = sqlx::query_as(
            "SELECT id, extension, sip_username, sip_password_enc, ha1_md5_enc, ha1_sha256_enc, ha1_realm \
             FROM extensions WHERE ha1_realm != ?",
        )
        .bind(realm)
        .fetch_all(&mut *c)
        .await?;
        let cipher = &inner.cipher;
        for row in &rows {
            let pw = cipher.open_string(COL_PASSWORD, &row.sip_password_enc)?;
            let md5 = cipher.seal_str(COL_HA1_MD5, &ha1_md5(&row.sip_username, realm, &pw));
            let sha = cipher.seal_str(COL_HA1_SHA256, &ha1_sha256(&row.sip_username, realm, &pw));
            sqlx::query("UPDATE extensions SET ha1_md5_enc = ?, ha1_sha256_enc = ?, ha1_realm = ? WHERE id = ?")
                .bind(md5)
                .bind(sha)
                .bind(realm)
                .bind(row.id)
                .execute(&mut *c)
                .await?;
        }
        Ok(rows.len() as u64)
    }

    fn realm(&self) -> String {
        self.inner.realm.read().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;

    fn ext(n: &str) -> ExtensionFields {
        ExtensionFields { extension: n.into(), name: format!("User {n}"), sip_username: format!("u{n}"), ..Default::default() }
    }

    #[tokio::test]
    async fn crud_and_credentials() {
        let (s, _d) = open_temp().await;
        let e = s.extensions().insert(&ext("101"), "s3cret-pass").await.unwrap();
        assert_eq!(e.extension, "101");
        assert_eq!(s.extensions().get_by_extension("101").await.unwrap().unwrap().id, e.id);
        let cred = s.extensions().sip_credentials("u101").await.unwrap().unwrap();
        assert_eq!(cred.realm, "flowpbx");
        assert_eq!(cred.ha1_md5, ha1_md5("u101", "flowpbx", "s3cret-pass"));
        assert_eq!(cred.ha1_sha256, ha1_sha256("u101", "flowpbx", "s3cret-pass"));
        assert!(s.extensions().verify_sip_password("u101", "s3cret-pass").await.unwrap().is_some());
        assert!(s.extensions().verify_sip_password("u101", "nope").await.unwrap().is_none());

        // duplicate number
        let mut dup = ext("101");
        dup.sip_username = "other".into();
        let err = s.extensions().insert(&dup, "x").await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { ref column } if column == "extensions.extension"), "{err:?}");

        // rename the user keeps the password, recomputes HA1
        let mut f = e.fields.clone();
        f.sip_username = "alice".into();
        s.extensions().update(e.id, &f, None).await.unwrap();
        let cred = s.extensions().sip_credentials("alice").await.unwrap().unwrap();
        assert_eq!(cred.ha1_md5, ha1_md5("alice", "flowpbx", "s3cret-pass"));

        // realm change recomputes
        assert_eq!(s.set_sip_realm("pbx.example.com").await.unwrap(), 1);
        let cred = s.extensions().sip_credentials("alice").await.unwrap().unwrap();
        assert_eq!(cred.ha1_sha256, ha1_sha256("alice", "pbx.example.com", "s3cret-pass"));
        assert_eq!(s.set_sip_realm("pbx.example.com").await.unwrap(), 0);

        let all = s.extensions().all_sip_credentials().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].ha1_md5, ha1_md5("alice", "pbx.example.com", "s3cret-pass"));
        let stamp = s.extensions().change_stamp().await.unwrap();
        assert_eq!(s.extensions().change_stamp().await.unwrap(), stamp);
        std::thread::sleep(std::time::Duration::from_millis(3)); // updated_at has millisecond precision
        s.extensions().set_dnd(e.id, true).await.unwrap();
        let after_dnd = s.extensions().change_stamp().await.unwrap();
        assert_ne!(after_dnd, stamp, "an update changes the stamp");
        let page = s.extensions().list(Page::default()).await.unwrap();
        assert_eq!(page.total, 1);
        assert!(s.extensions().delete(e.id).await.unwrap());
        assert!(!s.extensions().delete(e.id).await.unwrap());
    }

    #[tokio::test]
    async fn transaction_rolls_back_when_dropped() {
        let (s, _d) = open_temp().await;
        {
            let mut tx = s.begin().await.unwrap();
            tx.extensions().insert(&ext("200"), "pw").await.unwrap();
        }
        assert_eq!(s.extensions().count().await.unwrap(), 0);
        let mut tx = s.begin().await.unwrap();
        tx.extensions().insert(&ext("200"), "pw").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(s.extensions().count().await.unwrap(), 1);
    }
}
