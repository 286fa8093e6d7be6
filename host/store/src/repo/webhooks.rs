//! Webhook endpoints (the HMAC secret sealed, readable only by the notifier) and their
//! deliveries: the outbox the notifier works through and the log the UI shows.

use sqlx::types::Json;

use super::{WebhookDeliveries, Webhooks};
use crate::*;

const SECRET_COLUMN: &str = "webhooks.secret";

macro_rules! hook_cols {
    () => {
        "id, name, url, events, enabled, created_at, updated_at"
    };
}

macro_rules! delivery_cols {
    () => {
        "id, webhook_id, event, payload, status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at"
    };
}

impl Webhooks<'_> {
    /// Every endpoint, by name.
    pub async fn list(self) -> Result<Vec<Webhook>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", hook_cols!(), " FROM webhooks ORDER BY name, id")).fetch_all(&mut *c).await?)
    }

    pub async fn get(self, id: i64) -> Result<Option<Webhook>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", hook_cols!(), " FROM webhooks WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The endpoint's HMAC key.
    pub async fn secret(self, id: i64) -> Result<Option<String>> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT secret FROM webhooks WHERE id = ?").bind(id).fetch_optional(&mut *c).await?;
        match row {
            Some((sealed,)) => Ok(Some(self.inner.cipher.open_string(SECRET_COLUMN, &sealed)?)),
            None => Ok(None),
        }
    }

    pub async fn insert(self, f: &WebhookFields, secret: &str) -> Result<Webhook> {
        let mut c = self.db.acquire().await?;
        let now = Timestamp::now();
        Ok(sqlx::query_as(concat!(
            "INSERT INTO webhooks (name, url, secret, events, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ",
            hook_cols!()
        ))
        .bind(&f.name)
        .bind(&f.url)
        .bind(self.inner.cipher.seal_str(SECRET_COLUMN, secret))
        .bind(Json(&f.events))
        .bind(f.enabled)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Updates the fields; a new secret when `secret` is given.
    pub async fn update(self, id: i64, f: &WebhookFields, secret: Option<&str>) -> Result<Option<Webhook>> {
        let mut c = self.db.acquire().await?;
        let sealed = secret.map(|s| self.inner.cipher.seal_str(SECRET_COLUMN, s));
        Ok(sqlx::query_as(concat!(
            "UPDATE webhooks SET name = ?, url = ?, events = ?, enabled = ?, secret = COALESCE(?, secret), updated_at = ? WHERE id = ? RETURNING ",
            hook_cols!()
        ))
        .bind(&f.name)
        .bind(&f.url)
        .bind(Json(&f.events))
        .bind(f.enabled)
        .bind(sealed)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?)
    }

    pub async fn delete(self, id: i64) -> Result<Option<Webhook>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("DELETE FROM webhooks WHERE id = ? RETURNING ", hook_cols!())).bind(id).fetch_optional(&mut *c).await?)
    }
}

impl WebhookDeliveries<'_> {
    /// Queues `event` for every enabled endpoint that receives it; how many were queued.
    pub async fn enqueue(self, event: &str, payload: &serde_json::Value, now: Timestamp) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, next_attempt_at, created_at, updated_at) \
             SELECT w.id, ?, ?, 'pending', 0, ?, ?, ? FROM webhooks w \
             WHERE w.enabled = 1 AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = ? OR e.value = '*')",
        )
        .bind(event)
        .bind(Json(payload))
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(event)
        .execute(&mut *c)
        .await?;
        Ok(r.rows_affected())
    }

    /// Queues one event for one endpoint (a test delivery).
    pub async fn enqueue_for(self, webhook_id: i64, event: &str, payload: &serde_json::Value, now: Timestamp) -> Result<WebhookDelivery> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) RETURNING ",
            delivery_cols!()
        ))
        .bind(webhook_id)
        .bind(event)
        .bind(Json(payload))
        .bind(now)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Pending deliveries due at `now`, oldest first.
    pub async fn due(self, now: Timestamp, limit: i64) -> Result<Vec<WebhookDelivery>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    /// When the next pending delivery is due.
    pub async fn next_due(self) -> Result<Option<Timestamp>> {
        let mut c = self.db.acquire().await?;
        let (t,): (Option<Timestamp>,) =
            sqlx::query_as("SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'").fetch_one(&mut *c).await?;
        Ok(t)
    }

    /// Records an attempt (or a skipped one: `counted` false) and what comes next.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        self,
        id: i64,
        status: DeliveryStatus,
        counted: bool,
        next_attempt_at: Option<Timestamp>,
        last_status: Option<i64>,
        last_error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + ?, next_attempt_at = ?, last_status = COALESCE(?, last_status), \
             last_error = ?, updated_at = ? WHERE id = ?",
        )
        .bind(status)
        .bind(i64::from(counted))
        .bind(next_attempt_at)
        .bind(last_status)
        .bind(last_error)
        .bind(now)
        .bind(id)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first (the delivery log).
    pub async fn list(self, webhook_id: i64, page: Page) -> Result<Paged<WebhookDelivery>> {
        let mut c = self.db.acquire().await?;
        let items = sqlx::query_as(concat!("SELECT ", delivery_cols!(), " FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"))
            .bind(webhook_id)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(&mut *c)
            .await?;
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?").bind(webhook_id).fetch_one(&mut *c).await?;
        Ok(Paged { items, total })
    }

    /// Deletes finished deliveries older than `cutoff` (retention of the log).
    pub async fn delete_finished_before(self, cutoff: Timestamp) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM webhook_deliveries WHERE status != 'pending' AND updated_at < ?").bind(cutoff).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }
}
