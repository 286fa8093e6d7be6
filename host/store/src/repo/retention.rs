//! What retention reads: each box's retention, and the voicemail messages stored before a
//! time (only the columns retention needs, so this stays apart from the message model).

use super::{VoicemailBoxes, VoicemailMessages};
use crate::*;

impl VoicemailBoxes<'_> {
    /// `(box id, retention_days)` of the boxes that keep messages for a limited time
    /// (`retention_days > 0`).
    pub async fn retention_days(self) -> Result<Vec<(i64, i64)>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as("SELECT id, retention_days FROM voicemail_boxes WHERE retention_days > 0 ORDER BY id").fetch_all(&mut *c).await?)
    }
}

impl VoicemailMessages<'_> {
    /// `(id, file_path)` of a box's messages stored before `cutoff`, oldest first, at most
    /// `limit`.
    pub async fn stored_before(self, mailbox_id: i64, cutoff: Timestamp, limit: i64) -> Result<Vec<(i64, String)>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as("SELECT id, file_path FROM voicemail_messages WHERE mailbox_id = ? AND created_at < ? ORDER BY created_at, id LIMIT ?")
            .bind(mailbox_id)
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?)
    }

    /// Deletes one message row by id (retention; the file is the caller's); whether it was
    /// there.
    pub async fn remove(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM voicemail_messages WHERE id = ?").bind(id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }
}
