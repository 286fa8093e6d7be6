//! Write-behind: the event loop never waits on SQLite. It appends [`PersistOp`]s to a shared
//! queue; a writer task takes the queue every [`FLUSH_EVERY`] and applies it in one
//! transaction — registrations (so bindings survive a restart) and CDR rows (start, answer
//! and end, each written within one flush of happening, so a killed process loses at most
//! the end of the calls in progress).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{CdrEnd, NewCdr, NewRegistration, Store, Timestamp};

/// How often the writer flushes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// One write for the store.
#[derive(Debug, Clone)]
pub enum PersistOp {
    /// Insert or refresh a binding.
    RegUpsert(NewRegistration),
    /// Remove one binding.
    RegDelete {
        /// The extension.
        extension_id: i64,
        /// The contact URI.
        contact_uri: String,
    },
    /// A call started: insert its CDR; `key` names it in the later updates.
    CdrStart {
        /// The PBX's key for the call.
        key: u64,
        /// The row.
        cdr: NewCdr,
    },
    /// The call was answered.
    CdrAnswer {
        /// The call.
        key: u64,
        /// When.
        at: Timestamp,
    },
    /// The call ended.
    CdrEnd {
        /// The call.
        key: u64,
        /// How.
        end: CdrEnd,
    },
}

/// The queue between the event loop and the writer.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    ops: Mutex<Vec<PersistOp>>,
}

impl Outbox {
    /// Appends ops (one lock per event-loop turn).
    pub(crate) fn extend(&self, ops: &mut Vec<PersistOp>) {
        if ops.is_empty() {
            return;
        }
        match self.ops.lock() {
            Ok(mut q) => q.append(ops),
            Err(p) => p.into_inner().append(ops),
        }
    }

    fn take(&self) -> Vec<PersistOp> {
        match self.ops.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }
}

/// Applies the queue every [`FLUSH_EVERY`] until `stop` is set and the queue is empty.
pub(crate) async fn writer(store: Store, outbox: Arc<Outbox>, stop: Arc<tokio::sync::Notify>) {
    let mut cdr_ids: HashMap<u64, i64> = HashMap::new();
    let mut retry: Vec<PersistOp> = Vec::new();
    let mut stopping = false;
    loop {
        if !stopping {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = stop.notified() => stopping = true,
            }
        }
        let mut ops = std::mem::take(&mut retry);
        ops.extend(outbox.take());
        if ops.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        match apply(&store, &ops, &mut cdr_ids).await {
            Ok(()) => {}
            Err(e) if !stopping && ops.len() < 100_000 => {
                tracing::warn!(error = %e, ops = ops.len(), "write-behind flush failed; retrying");
                retry = ops;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => tracing::error!(error = %e, ops = ops.len(), "write-behind flush failed; dropped"),
        }
    }
}

async fn apply(store: &Store, ops: &[PersistOp], cdr_ids: &mut HashMap<u64, i64>) -> Result<(), store::StoreError> {
    let mut tx = store.begin().await?;
    let mut new_ids: Vec<(u64, i64)> = Vec::new();
    let mut ended: Vec<u64> = Vec::new();
    let lookup = |key: u64, new_ids: &[(u64, i64)]| {
        new_ids.iter().rev().find(|(k, _)| *k == key).map(|(_, id)| *id).or_else(|| cdr_ids.get(&key).copied())
    };
    for op in ops {
        match op {
            PersistOp::RegUpsert(r) => match tx.registrations().upsert(r).await {
                Ok(_) => {}
                // the extension was deleted meanwhile (foreign key): nothing to keep
                Err(store::StoreError::ForeignKey) => {}
                Err(e) => return Err(e),
            },
            PersistOp::RegDelete { extension_id, contact_uri } => {
                tx.registrations().delete(*extension_id, contact_uri).await?;
            }
            PersistOp::CdrStart { key, cdr } => {
                let id = tx.cdrs().insert_start(cdr).await?;
                new_ids.push((*key, id));
            }
            PersistOp::CdrAnswer { key, at } => {
                if let Some(id) = lookup(*key, &new_ids) {
                    tx.cdrs().update_answer(id, *at).await?;
                }
            }
            PersistOp::CdrEnd { key, end } => {
                if let Some(id) = lookup(*key, &new_ids) {
                    match tx.cdrs().update_end(id, end).await {
                        Ok(_) | Err(store::StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                ended.push(*key);
            }
        }
    }
    tx.commit().await?;
    cdr_ids.extend(new_ids);
    for k in ended {
        cdr_ids.remove(&k);
    }
    Ok(())
}
