//! Retention: once a day, what is older than its keeping time goes, file and row together,
//! and the audit log says what went.
//!
//! - voicemail messages: each box's `retention_days` (0: kept);
//! - call recordings: the `recording_retention_days` setting (0 or unset: kept);
//! - CDRs: the `cdr_retention_days` setting (0 or unset: kept); a recording outlives its CDR
//!   only as long as its own retention allows (its `cdr_id` becomes null);
//! - the webhook delivery log: finished deliveries after 30 days.
//!
//! The time comes from a [`Clock`], so tests run a purge "100 days later" without waiting.
//! A file already gone is not an error (the row still goes); a file that cannot be removed
//! keeps its row, to be tried again the next day.

use std::path::{Component, Path};
use std::sync::Arc;
use std::time::Duration;

use store::{Actor, Store, Timestamp};

use crate::settings::keys;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub voicemail_messages: u64,
    pub recordings: u64,
    pub cdrs: u64,
    /// Webhook deliveries delivered or failed more than 30 days ago (the delivery log).
    pub webhook_deliveries: u64,
    /// Files that could not be removed (their rows are kept).
    pub files_kept: u64,
}

/// Rows handled per query.
const BATCH: i64 = 500;

fn days_before(now: Timestamp, days: i64) -> Timestamp {
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(days.saturating_mul(86_400_000))).unwrap_or(now)
}

/// Removes a file under the data dir named by a row; Ok when it is gone (or never was).
async fn remove_file(data_dir: &Path, rel: &str) -> bool {
    let p = Path::new(rel);
    if p.as_os_str().is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        tracing::warn!(file = rel, "a row names a file outside the data dir: left alone");
        return true;
    }
    match tokio::fs::remove_file(data_dir.join(p)).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(error = %e, file = rel, "retention could not remove a file");
            false
        }
    }
}

fn setting_days(stored: &std::collections::BTreeMap<String, String>, key: &str) -> i64 {
    stored.get(key).and_then(|v| v.trim().parse::<i64>().ok()).filter(|d| *d > 0).unwrap_or(0)
}

/// Purges what is older than its retention at `now`, and writes one audit row with the
/// counts (when anything went).
pub async fn purge(store: &Store, data_dir: &Path, now: Timestamp) -> store::Result<Purged> {
    let mut out = Purged::default();
    let stored = store.settings().all().await?;
    // voicemail, per box
    for (mailbox, days) in store.voicemail_boxes().retention_days().await? {
        let cutoff = days_before(now, days);
        loop {
            let batch = store.voicemail_messages().stored_before(mailbox, cutoff, BATCH).await?;
            let n = batch.len();
            let mut progressed = false;
            for (id, file) in batch {
                if remove_file(data_dir, &file).await {
                    progressed |= store.voicemail_messages().remove(id).await?;
                    out.voicemail_messages += 1;
                } else {
                    out.files_kept += 1;
                }
            }
            if (n as i64) < BATCH || !progressed {
                break;
            }
        }
    }
    // recordings
    let days = setting_days(&stored, keys::RECORDING_RETENTION_DAYS);
    if days > 0 {
        let cutoff = days_before(now, days);
        loop {
            let batch = store.recordings().created_before(cutoff, BATCH).await?;
            let n = batch.len();
            let mut progressed = false;
            for r in batch {
                if remove_file(data_dir, &r.file_path).await {
                    progressed |= store.recordings().delete(r.id).await?.is_some();
                    out.recordings += 1;
                } else {
                    out.files_kept += 1;
                }
            }
            if (n as i64) < BATCH || !progressed {
                break;
            }
        }
    }
    // CDRs
    let days = setting_days(&stored, keys::CDR_RETENTION_DAYS);
    if days > 0 {
        out.cdrs = store.cdrs().delete_started_before(days_before(now, days)).await?;
    }
    // the webhook delivery log keeps 30 days of finished deliveries
    out.webhook_deliveries = store.webhook_deliveries().delete_finished_before(days_before(now, 30)).await?;
    if out != Purged::default() {
        let mut tx = store.begin().await?;
        let details = serde_json::json!({ "at": now, "purged": out });
        tx.audit(&Actor::system(), "retention_purge", "retention", None, None, Some(&details)).await?;
        tx.commit().await?;
        tracing::info!(voicemail = out.voicemail_messages, recordings = out.recordings, cdrs = out.cdrs, "retention purge");
    }
    Ok(out)
}

/// Runs [`purge`] a minute after start and then every `every` (a day).
pub fn spawn_daily(store: Store, data_dir: std::path::PathBuf, clock: Arc<dyn Clock>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        loop {
            if let Err(e) = purge(&store, &data_dir, clock.now()).await {
                tracing::warn!(error = %e, "retention purge failed");
            }
            tokio::time::sleep(every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock the test moves.
    struct FakeClock(Mutex<Timestamp>);

    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }

    impl FakeClock {
        fn advance_days(&self, d: i64) {
            let mut t = self.0.lock().unwrap();
            *t = days_before(*t, -d);
        }
    }

    async fn file(dir: &Path, rel: &str) {
        let p = dir.join(rel);
        tokio::fs::create_dir_all(p.parent().unwrap()).await.unwrap();
        tokio::fs::write(&p, b"RIFF....WAVE").await.unwrap();
    }

    #[tokio::test]
    async fn old_voicemail_recordings_and_cdrs_go_with_their_files_and_an_audit_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(store::StoreOptions::new(dir.path().join("flowpbx.db"), store::SecretKey::generate(), "flowpbx")).await.unwrap();
        let data = dir.path();
        let clock = FakeClock(Mutex::new(Timestamp::now()));

        // a box keeping messages 30 days, one keeping them for ever
        let short =
            store.voicemail_boxes().insert(&store::VoicemailBoxFields { name: "short".into(), retention_days: 30, ..Default::default() }, None).await.unwrap();
        let forever =
            store.voicemail_boxes().insert(&store::VoicemailBoxFields { name: "forever".into(), retention_days: 0, ..Default::default() }, None).await.unwrap();
        let mut msgs = Vec::new();
        for (b, rel) in [(short.row.id, "voicemail/1/a.wav"), (forever.row.id, "voicemail/2/b.wav")] {
            file(data, rel).await;
            let m = store::NewVoicemailMessage {
                mailbox_id: b,
                caller_id_name: None,
                caller_id_num: Some("101".into()),
                timestamp: Timestamp::now(),
                duration: Some(3),
                file_path: rel.into(),
            };
            msgs.push(store.voicemail_messages().insert(&m).await.unwrap().id);
        }
        // a call with its CDR and recording
        let cdr = store
            .cdrs()
            .insert_start(&store::NewCdr {
                call_id: "c1".into(),
                start_time: Timestamp::now(),
                caller_id_name: None,
                caller_id_num: Some("101".into()),
                callee: Some("102".into()),
                trunk_id: None,
                direction: store::CallDirection::Internal,
                flow_id: None,
                flow_version: None,
                extension_id: None,
                route_id: None,
            })
            .await
            .unwrap();
        file(data, "recordings/2026/01/01/1-c1.wav").await;
        let rec = store
            .recordings()
            .insert(&store::NewRecording {
                cdr_id: Some(cdr),
                call_id: "c1".into(),
                file_path: "recordings/2026/01/01/1-c1.wav".into(),
                duration: Some(3),
                size_bytes: 12,
            })
            .await
            .unwrap();
        store.settings().set(keys::RECORDING_RETENTION_DAYS, "90").await.unwrap();
        store.settings().set(keys::CDR_RETENTION_DAYS, "365").await.unwrap();

        // a webhook delivery, delivered today
        let hook = store
            .webhooks()
            .insert(
                &store::WebhookFields { name: "crm".into(), url: "https://203.0.114.1/".into(), events: vec!["*".into()], enabled: true },
                "0123456789abcdef",
            )
            .await
            .unwrap();
        let d = store.webhook_deliveries().enqueue_for(hook.id, "webhook.test", &serde_json::json!({}), Timestamp::now()).await.unwrap();
        store.webhook_deliveries().record(d.id, store::DeliveryStatus::Delivered, true, None, Some(200), None, Timestamp::now()).await.unwrap();

        // today: nothing is old
        assert_eq!(purge(&store, data, clock.now()).await.unwrap(), Purged::default());
        // 29 days later: still nothing
        clock.advance_days(29);
        assert_eq!(purge(&store, data, clock.now()).await.unwrap(), Purged::default());
        // 31 days: the short box's message goes, file and row; the other box keeps its own
        clock.advance_days(2);
        let p = purge(&store, data, clock.now()).await.unwrap();
        assert_eq!(p, Purged { voicemail_messages: 1, webhook_deliveries: 1, ..Default::default() }, "the 30-day delivery log too");
        assert!(!data.join("voicemail/1/a.wav").exists());
        assert!(store.voicemail_messages().get(msgs[0]).await.unwrap().is_none());
        assert!(data.join("voicemail/2/b.wav").exists());
        assert!(store.voicemail_messages().get(msgs[1]).await.unwrap().is_some());
        assert!(store.recordings().get(rec.id).await.unwrap().is_some(), "recordings keep 90 days");
        // 91 days: the recording goes; the CDR (365 days) stays
        clock.advance_days(60);
        let p = purge(&store, data, clock.now()).await.unwrap();
        assert_eq!(p, Purged { recordings: 1, ..Default::default() });
        assert!(!data.join("recordings/2026/01/01/1-c1.wav").exists());
        assert!(store.recordings().get(rec.id).await.unwrap().is_none());
        assert!(store.cdrs().get(cdr).await.unwrap().is_some());
        // 366 days: the CDR goes
        clock.advance_days(275);
        assert_eq!(purge(&store, data, clock.now()).await.unwrap(), Purged { cdrs: 1, ..Default::default() });
        assert!(store.cdrs().get(cdr).await.unwrap().is_none());
        assert!(store.voicemail_messages().get(msgs[1]).await.unwrap().is_some(), "a box with retention 0 keeps for ever");
        // each purge that removed something is in the audit log
        let audit = store.audit_log().list(&store::AuditFilter::default(), store::Page { limit: 50, offset: 0 }).await.unwrap();
        let purges: Vec<_> = audit.items.iter().filter(|e| e.action == "retention_purge").collect();
        assert_eq!(purges.len(), 3, "{purges:?}");
    }

    #[tokio::test]
    async fn a_row_naming_a_path_outside_the_data_dir_never_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim.wav");
        tokio::fs::write(&victim, b"x").await.unwrap();
        let rel = format!("recordings/../../{}", victim.display());
        assert!(remove_file(dir.path(), &rel).await, "the row may go");
        assert!(remove_file(dir.path(), &victim.display().to_string()).await);
        assert!(victim.exists(), "the file outside stays");
    }
}
