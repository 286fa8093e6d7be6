use super::Registrations;
use crate::*;

macro_rules! reg_cols {
    () => {
        "id, extension_id, contact_uri, transport, user_agent, source_ip, source_port, expires, registered_at, call_id, \
         cseq, push_token, push_platform, device_id"
    };
}

impl Registrations<'_> {
    /// Inserts or refreshes the binding of (extension, contact URI). `registered_at` is kept
    /// from the first registration of the binding.
    pub async fn upsert(self, r: &NewRegistration) -> Result<Registration> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO registrations (extension_id, contact_uri, transport, user_agent, source_ip, source_port, expires, \
             registered_at, call_id, cseq, push_token, push_platform, device_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (extension_id, contact_uri) DO UPDATE SET transport = excluded.transport, \
             user_agent = excluded.user_agent, source_ip = excluded.source_ip, source_port = excluded.source_port, \
             expires = excluded.expires, call_id = excluded.call_id, cseq = excluded.cseq, \
             push_token = COALESCE(excluded.push_token, push_token), \
             push_platform = COALESCE(excluded.push_platform, push_platform), \
             device_id = COALESCE(excluded.device_id, device_id) RETURNING ",
            reg_cols!()
        ))
        .bind(r.extension_id)
        .bind(&r.contact_uri)
        .bind(&r.transport)
        .bind(&r.user_agent)
        .bind(&r.source_ip)
        .bind(r.source_port)
        .bind(r.expires)
        .bind(Timestamp::now())
        .bind(&r.call_id)
        .bind(r.cseq)
        .bind(&r.push_token)
        .bind(r.push_platform)
        .bind(&r.device_id)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Removes one binding (REGISTER with Expires: 0).
    pub async fn delete(self, extension_id: i64, contact_uri: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r =
            sqlx::query("DELETE FROM registrations WHERE extension_id = ? AND contact_uri = ?").bind(extension_id).bind(contact_uri).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes every binding of an extension (REGISTER with Contact: * and Expires: 0).
    pub async fn delete_for_extension(self, extension_id: i64) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM registrations WHERE extension_id = ?").bind(extension_id).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }

    /// Removes the bindings that expired at `now`; returns them (for events).
    pub async fn delete_expired(self, now: Timestamp) -> Result<Vec<Registration>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("DELETE FROM registrations WHERE expires <= ? RETURNING ", reg_cols!())).bind(now).fetch_all(&mut *c).await?)
    }

    /// Removes every binding (registrations do not survive a restart).
    pub async fn clear(self) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM registrations").execute(&mut *c).await?;
        Ok(r.rows_affected())
    }

    /// The live bindings of an extension at `now`, newest first.
    pub async fn list_unexpired(self, extension_id: i64, now: Timestamp) -> Result<Vec<Registration>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", reg_cols!(), " FROM registrations WHERE extension_id = ? AND expires > ? ORDER BY registered_at DESC, id DESC"))
            .bind(extension_id)
            .bind(now)
            .fetch_all(&mut *c)
            .await?)
    }

    /// Every live binding at `now`.
    pub async fn list_all_unexpired(self, now: Timestamp) -> Result<Vec<Registration>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", reg_cols!(), " FROM registrations WHERE expires > ? ORDER BY extension_id, id"))
            .bind(now)
            .fetch_all(&mut *c)
            .await?)
    }

    /// How many live bindings an extension has (against `max_registrations`).
    pub async fn count_unexpired(self, extension_id: i64, now: Timestamp) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM registrations WHERE extension_id = ? AND expires > ?").bind(extension_id).bind(now).fetch_one(&mut *c).await?;
        Ok(n)
    }

    /// Sets the push token of an extension's device (the app's push-token endpoint).
    pub async fn set_push_token(self, extension_id: i64, device_id: &str, platform: PushPlatform, token: &str) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE registrations SET push_token = ?, push_platform = ? WHERE extension_id = ? AND device_id = ?")
            .bind(token)
            .bind(platform)
            .bind(extension_id)
            .bind(device_id)
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

    #[tokio::test]
    async fn upsert_expire_cascade() {
        let (s, _d) = open_temp().await;
        let e = s
            .extensions()
            .insert(&ExtensionFields { extension: "101".into(), name: "A".into(), sip_username: "a".into(), ..Default::default() }, "pw")
            .await
            .unwrap();
        let now = Timestamp::now();
        let mut r = NewRegistration {
            extension_id: e.id,
            contact_uri: "sip:a@10.0.0.2:5060".into(),
            transport: Some("udp".into()),
            user_agent: None,
            source_ip: Some("10.0.0.2".into()),
            source_port: Some(5060),
            expires: now + Duration::seconds(60),
            call_id: Some("c1".into()),
            cseq: Some(1),
            push_token: None,
            push_platform: None,
            device_id: None,
        };
        let first = s.registrations().upsert(&r).await.unwrap();
        r.cseq = Some(2);
        r.expires = now + Duration::seconds(120);
        let second = s.registrations().upsert(&r).await.unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(second.cseq, Some(2));
        assert_eq!(s.registrations().count_unexpired(e.id, now).await.unwrap(), 1);
        assert_eq!(s.registrations().list_unexpired(e.id, now + Duration::seconds(200)).await.unwrap().len(), 0);
        assert_eq!(s.registrations().delete_expired(now + Duration::seconds(200)).await.unwrap().len(), 1);
        s.registrations().upsert(&r).await.unwrap();
        s.extensions().delete(e.id).await.unwrap();
        assert_eq!(s.registrations().list_all_unexpired(now).await.unwrap().len(), 0);
    }
}
