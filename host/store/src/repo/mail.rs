//! The e-mail outbox.

use super::MailOutbox;
use crate::*;

macro_rules! mail_cols {
    () => {
        "id, kind, recipient, subject, body, attachment_path, attachment_name, status, attempts, next_attempt_at, last_error, created_at, updated_at"
    };
}

impl MailOutbox<'_> {
    /// Queues a mail, due at `now`.
    pub async fn enqueue(self, m: &NewMail, now: Timestamp) -> Result<MailItem> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO mail_outbox (kind, recipient, subject, body, attachment_path, attachment_name, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) RETURNING ",
            mail_cols!()
        ))
        .bind(&m.kind)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(&m.attachment_path)
        .bind(&m.attachment_name)
        .bind(now)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn get(self, id: i64) -> Result<Option<MailItem>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", mail_cols!(), " FROM mail_outbox WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// Pending mail due at `now`, oldest first.
    pub async fn due(self, now: Timestamp, limit: i64) -> Result<Vec<MailItem>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            mail_cols!(),
            " FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    /// When the next pending mail is due.
    pub async fn next_due(self) -> Result<Option<Timestamp>> {
        let mut c = self.db.acquire().await?;
        let (t,): (Option<Timestamp>,) = sqlx::query_as("SELECT MIN(next_attempt_at) FROM mail_outbox WHERE status = 'pending'").fetch_one(&mut *c).await?;
        Ok(t)
    }

    /// Records an attempt and what comes next.
    pub async fn record(self, id: i64, status: MailStatus, next_attempt_at: Option<Timestamp>, last_error: Option<&str>, now: Timestamp) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query("UPDATE mail_outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(next_attempt_at)
            .bind(last_error)
            .bind(now)
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// The outbox and log, newest first.
    pub async fn list(self, page: Page) -> Result<Paged<MailItem>> {
        let mut c = self.db.acquire().await?;
        super::paged(&mut c, concat!("SELECT ", mail_cols!(), " FROM mail_outbox ORDER BY id DESC LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM mail_outbox", page)
            .await
    }
}
