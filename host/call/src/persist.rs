//! Write-behind: the event loop never waits on SQLite. It appends [`PersistOp`]s to a shared
//! queue; a writer task takes the queue every [`FLUSH_EVERY`] and applies it in one
//! transaction — registrations (so bindings survive a restart) and CDR rows (start, answer
//! and end, each written within one flush of happening, so a killed process loses at most
//! the end of the calls in progress).

use crate::events::CallKey;
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
        key: CallKey,
        /// The row.
        cdr: NewCdr,
    },
    /// The call was answered.
    CdrAnswer {
        /// The call.
        key: CallKey,
        /// When.
        at: Timestamp,
    },
    /// The call ended.
    CdrEnd {
        /// The call.
        key: CallKey,
        /// How.
        end: CdrEnd,
        /// When it started (for the durations).
        start: Timestamp,
        /// When it was answered.
        answer: Option<Timestamp>,
    },
    /// The call's per-leg media statistics (its media session closed; the CDR's end may be
    /// written already).
    CdrMedia {
        /// The call.
        key: CallKey,
        /// `{"a": {...}, "b": {...}}`.
        stats: serde_json::Value,
        /// Each leg's SRTP suite (caller, callee); None: plain RTP.
        srtp: [Option<String>; 2],
    },
    /// What a flow did with the call (before or after the call's end is written).
    CdrFlow {
        /// The call.
        key: CallKey,
        /// The flow and the version walked.
        flow_id: i64,
        /// The version.
        version: i64,
        /// The trace's path.
        path: serde_json::Value,
        /// Replaces signalling's disposition (voicemail).
        disposition: Option<store::CallDisposition>,
    },
    /// A call recording is complete under its final name: its `recordings` row, tied to the
    /// call's CDR.
    Recording {
        /// The call.
        key: CallKey,
        /// Its SIP Call-ID.
        call_id: String,
        /// The WAV, relative to the data dir.
        file_path: String,
        /// Length of the audio in whole seconds.
        duration: i64,
        /// Size of the file.
        size_bytes: i64,
    },
    /// Something the SIP stack did on its own that the audit log keeps (a toll-fraud limit
    /// refused a call).
    Audit {
        /// What (`outbound_limit`).
        action: String,
        /// Of what.
        entity_type: String,
        /// Which one.
        entity_id: Option<String>,
        /// The details.
        details: serde_json::Value,
    },
}

/// How long a finished call's CDR id is kept for details that arrive after its end (media
/// statistics, a flow's trace).
const KEEP_ENDED: Duration = Duration::from_secs(120);

/// The writer's memory of the calls it wrote.
#[derive(Default)]
struct Written {
    /// Call key → CDR id.
    ids: HashMap<CallKey, i64>,
    /// Keys whose end is written, oldest first, with when.
    ended: std::collections::VecDeque<(std::time::Instant, CallKey)>,
    ended_keys: std::collections::HashSet<CallKey>,
    /// A flow's result that came before its call's end: the end must not overwrite it.
    flows: HashMap<CallKey, (serde_json::Value, Option<store::CallDisposition>)>,
}

impl Written {
    fn forget_old(&mut self) {
        while let Some(&(at, key)) = self.ended.front() {
            if at.elapsed() < KEEP_ENDED {
                break;
            }
            self.ended.pop_front();
            self.ended_keys.remove(&key);
            self.ids.remove(&key);
            self.flows.remove(&key);
        }
    }
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
pub(crate) async fn writer(store: Store, outbox: Arc<Outbox>, stop: Arc<tokio::sync::Notify>, shared: Arc<crate::events::Shared>) {
    let mut cdr_ids = Written::default();
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
        cdr_ids.forget_old();
        let began = std::time::Instant::now();
        let applied = apply(&store, &ops, &mut cdr_ids).await;
        shared.metrics.flush.observe(began.elapsed());
        if applied.is_err() {
            shared.metrics.flush_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match applied {
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

async fn apply(store: &Store, ops: &[PersistOp], written: &mut Written) -> Result<(), store::StoreError> {
    // A call answered before its start was written gets one row with both.
    let started: std::collections::HashSet<CallKey> =
        ops.iter().filter_map(|o| if let PersistOp::CdrStart { key, .. } = o { Some(*key) } else { None }).collect();
    let mut answered: HashMap<CallKey, Timestamp> = HashMap::new();
    for o in ops {
        if let PersistOp::CdrAnswer { key, at } = o
            && started.contains(key)
        {
            answered.entry(*key).or_insert(*at);
        }
    }
    let mut tx = store.begin().await?;
    // 1. registrations, in order
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
            _ => {}
        }
    }
    // 2. the calls that started, in one statement
    let starts: Vec<(CallKey, (store::NewCdr, Option<Timestamp>))> = ops
        .iter()
        .filter_map(|o| match o {
            PersistOp::CdrStart { key, cdr } => Some((*key, (cdr.clone(), answered.get(key).copied()))),
            _ => None,
        })
        .collect();
    let mut new_ids: HashMap<CallKey, i64> = HashMap::new();
    if !starts.is_empty() {
        let rows: Vec<(store::NewCdr, Option<Timestamp>)> = starts.iter().map(|(_, r)| r.clone()).collect();
        let ids = tx.cdrs().insert_many(&rows).await?;
        new_ids.extend(starts.iter().map(|(k, _)| *k).zip(ids));
    }
    let id_of = |key: CallKey| new_ids.get(&key).or_else(|| written.ids.get(&key)).copied();
    // a flow's result arriving before (or with) the end of its call is kept in the end
    let mut flows = written.flows.clone();
    for op in ops {
        if let PersistOp::CdrFlow { key, path, disposition, .. } = op {
            flows.insert(*key, (path.clone(), *disposition));
        }
    }
    // 3. answers of calls written earlier
    for op in ops {
        if let PersistOp::CdrAnswer { key, at } = op
            && !answered.contains_key(key)
            && let Some(id) = id_of(*key)
        {
            tx.cdrs().update_answer(id, *at).await?;
        }
    }
    // 4. the calls that ended, in one statement
    let mut ended = Vec::new();
    let ends: Vec<(i64, CdrEnd, Timestamp, Option<Timestamp>)> = ops
        .iter()
        .filter_map(|o| match o {
            PersistOp::CdrEnd { key, end, start, answer } => {
                ended.push(*key);
                let mut end = end.clone();
                if let Some((path, disposition)) = flows.get(key) {
                    end.flow_path = path.clone();
                    if let Some(d) = disposition {
                        end.disposition = *d;
                    }
                }
                id_of(*key).map(|id| (id, end, *start, *answer))
            }
            _ => None,
        })
        .collect();
    if !ends.is_empty() {
        tx.cdrs().finish_many(&ends).await?;
    }
    // 5. details that come on their own: media statistics, a flow's result
    for op in ops {
        match op {
            PersistOp::CdrMedia { key, stats, srtp } => match id_of(*key) {
                Some(id) => {
                    tx.cdrs().set_media_stats(id, stats).await?;
                    tx.cdrs().set_media_encryption(id, srtp[0].as_deref(), srtp[1].as_deref()).await?;
                }
                None => tracing::debug!(key = %key, "media statistics of an unknown call dropped"),
            },
            PersistOp::CdrFlow { key, flow_id, version, path, disposition } => match id_of(*key) {
                Some(id) => {
                    tx.cdrs().set_flow(id, *flow_id, *version, path, *disposition).await?;
                }
                None => tracing::debug!(key = %key, "a flow result of an unknown call dropped"),
            },
            PersistOp::Recording { key, call_id, file_path, duration, size_bytes } => {
                let rec = store::NewRecording {
                    cdr_id: id_of(*key),
                    call_id: call_id.clone(),
                    file_path: file_path.clone(),
                    duration: Some(*duration),
                    size_bytes: *size_bytes,
                };
                tx.recordings().insert(&rec).await?;
            }
            PersistOp::Audit { action, entity_type, entity_id, details } => {
                tx.audit(&store::Actor::system(), action, entity_type, entity_id.as_deref(), None, Some(details)).await?;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    written.ids.extend(new_ids);
    let now = std::time::Instant::now();
    for op in ops {
        if let PersistOp::CdrFlow { key, path, disposition, .. } = op
            && !ended.contains(key)
            && !written.ended_keys.contains(key)
        {
            written.flows.insert(*key, (path.clone(), *disposition));
        }
    }
    for k in ended {
        written.flows.remove(&k);
        written.ended_keys.insert(k);
        written.ended.push_back((now, k));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{CallDirection, CallDisposition, ExtensionFields, NewCdr, Page, StoreOptions};

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(StoreOptions::new(dir.path().join(store::DB_FILE), store::SecretKey::generate(), "r")).await.unwrap();
        (s, dir)
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[tokio::test]
    async fn cdr_rows_follow_the_call_across_batches() {
        let (s, _d) = store().await;
        let mut ids = Written::default();
        let cdr = NewCdr {
            call_id: "c1".into(),
            start_time: t(0),
            caller_id_name: Some("A".into()),
            caller_id_num: Some("101".into()),
            callee: Some("102".into()),
            trunk_id: None,
            direction: CallDirection::Internal,
            flow_id: None,
            flow_version: None,
            extension_id: None,
            route_id: None,
        };
        // start and answer in one flush: one row, answered
        apply(
            &s,
            &[PersistOp::CdrStart { key: CallKey::from_raw(7), cdr: cdr.clone() }, PersistOp::CdrAnswer { key: CallKey::from_raw(7), at: t(1500) }],
            &mut ids,
        )
        .await
        .unwrap();
        let row = &s.cdrs().list(&Default::default(), Page::default()).await.unwrap().items[0];
        assert_eq!((row.answer_time, row.end_time), (Some(t(1500)), None), "written before the end: a crash loses only the end");
        // the end in a later flush
        let end = CdrEnd {
            end_time: t(61_500),
            disposition: CallDisposition::Answered,
            hangup_cause: Some("normal_clearing".into()),
            flow_path: serde_json::json!([]),
            recording_file: None,
            trunk_id: None,
            transfers: None,
        };
        apply(&s, &[PersistOp::CdrEnd { key: CallKey::from_raw(7), end, start: t(0), answer: Some(t(1500)) }], &mut ids).await.unwrap();
        let row = s.cdrs().get(row.id).await.unwrap().unwrap();
        assert_eq!((row.duration, row.billable_dur, row.disposition), (Some(61), Some(60), Some(CallDisposition::Answered)));
        assert_eq!(ids.ended.len(), 1, "an ended call is remembered for its late details");

        // several calls in one flush; one answered in a later flush, ends together
        let other = |n: &str| NewCdr { call_id: n.into(), ..cdr.clone() };
        apply(
            &s,
            &[PersistOp::CdrStart { key: CallKey::from_raw(8), cdr: other("c8") }, PersistOp::CdrStart { key: CallKey::from_raw(9), cdr: other("c9") }],
            &mut ids,
        )
        .await
        .unwrap();
        apply(&s, &[PersistOp::CdrAnswer { key: CallKey::from_raw(9), at: t(3000) }], &mut ids).await.unwrap();
        let end = |d| CdrEnd {
            end_time: t(10_000),
            disposition: d,
            hangup_cause: None,
            flow_path: serde_json::json!([]),
            recording_file: None,
            trunk_id: None,
            transfers: None,
        };
        apply(
            &s,
            &[
                PersistOp::CdrEnd { key: CallKey::from_raw(8), end: end(CallDisposition::NoAnswer), start: t(0), answer: None },
                PersistOp::CdrEnd { key: CallKey::from_raw(9), end: end(CallDisposition::Answered), start: t(0), answer: Some(t(3000)) },
            ],
            &mut ids,
        )
        .await
        .unwrap();
        let all = s.cdrs().list(&Default::default(), Page::default()).await.unwrap().items;
        let by = |n: &str| all.iter().find(|c| c.call_id == n).cloned().unwrap();
        assert_eq!((by("c8").disposition, by("c8").billable_dur), (Some(CallDisposition::NoAnswer), Some(0)));
        assert_eq!((by("c9").answer_time, by("c9").billable_dur), (Some(t(3000)), Some(7)));
        assert_eq!(ids.ended.len(), 3);
    }

    #[tokio::test]
    async fn media_statistics_and_flow_results_reach_the_cdr_in_any_order() {
        let (s, _d) = store().await;
        let mut ids = Written::default();
        let cdr = |n: &str| NewCdr {
            call_id: n.into(),
            start_time: t(0),
            caller_id_name: None,
            caller_id_num: Some("+15550001111".into()),
            callee: Some("+61290000000".into()),
            trunk_id: None,
            direction: CallDirection::Inbound,
            flow_id: Some(3),
            flow_version: None,
            extension_id: None,
            route_id: None,
        };
        let end = CdrEnd {
            end_time: t(9_000),
            disposition: CallDisposition::Answered,
            hangup_cause: Some("normal_clearing".into()),
            flow_path: serde_json::json!([]),
            recording_file: None,
            trunk_id: None,
            transfers: None,
        };
        let path = serde_json::json!([{"node_id": "n1", "output": "next"}]);
        // bridged by the flow: its result before the end, which must not erase it
        apply(&s, &[PersistOp::CdrStart { key: CallKey::from_raw(1), cdr: cdr("bridged") }], &mut ids).await.unwrap();
        apply(&s, &[PersistOp::CdrFlow { key: CallKey::from_raw(1), flow_id: 3, version: 2, path: path.clone(), disposition: None }], &mut ids).await.unwrap();
        apply(&s, &[PersistOp::CdrEnd { key: CallKey::from_raw(1), end: end.clone(), start: t(0), answer: Some(t(100)) }], &mut ids).await.unwrap();
        apply(
            &s,
            &[PersistOp::CdrMedia {
                key: CallKey::from_raw(1),
                stats: serde_json::json!({"a": {"packets_received": 50}}),
                srtp: [Some("AES_CM_128_HMAC_SHA1_80".into()), None],
            }],
            &mut ids,
        )
        .await
        .unwrap();
        // voicemail: the flow's result after the end, with its disposition
        apply(
            &s,
            &[
                PersistOp::CdrStart { key: CallKey::from_raw(2), cdr: cdr("vm") },
                PersistOp::CdrEnd { key: CallKey::from_raw(2), end, start: t(0), answer: Some(t(100)) },
            ],
            &mut ids,
        )
        .await
        .unwrap();
        apply(
            &s,
            &[PersistOp::CdrFlow { key: CallKey::from_raw(2), flow_id: 3, version: 2, path: path.clone(), disposition: Some(CallDisposition::Voicemail) }],
            &mut ids,
        )
        .await
        .unwrap();
        let all = s.cdrs().list(&Default::default(), Page::default()).await.unwrap().items;
        let by = |n: &str| all.iter().find(|c| c.call_id == n).cloned().unwrap();
        let b = by("bridged");
        assert_eq!((b.flow_path.clone(), b.flow_version, b.disposition), (path.clone(), Some(2), Some(CallDisposition::Answered)));
        assert_eq!(b.media_stats, Some(serde_json::json!({"a": {"packets_received": 50}})));
        assert_eq!(
            (b.caller_srtp.as_deref(), b.callee_srtp.as_deref()),
            (Some("AES_CM_128_HMAC_SHA1_80"), None),
            "the caller's leg was encrypted, the callee's plain"
        );
        let v = by("vm");
        assert_eq!((v.caller_srtp.clone(), v.callee_srtp.clone()), (None, None));
        assert_eq!((v.flow_path, v.disposition), (path, Some(CallDisposition::Voicemail)));
        assert!(ids.flows.is_empty());
    }

    #[tokio::test]
    async fn registrations_are_upserted_and_deleted() {
        let (s, _d) = store().await;
        let e = s
            .extensions()
            .insert(&ExtensionFields { extension: "101".into(), name: "A".into(), sip_username: "101".into(), ..Default::default() }, "password-1")
            .await
            .unwrap();
        let reg = |expires| {
            PersistOp::RegUpsert(store::NewRegistration {
                extension_id: e.id,
                contact_uri: "sip:101@10.0.0.1".into(),
                transport: Some("udp".into()),
                user_agent: None,
                source_ip: Some("10.0.0.1".into()),
                source_port: Some(5060),
                expires,
                call_id: Some("x".into()),
                cseq: Some(1),
                push_token: None,
                push_platform: None,
                device_id: None,
            })
        };
        let mut ids = Written::default();
        // a binding for an extension deleted meanwhile is skipped, not an error
        let mut gone = reg(t(60_000));
        if let PersistOp::RegUpsert(r) = &mut gone {
            r.extension_id = 999;
        }
        apply(&s, &[reg(t(60_000)), gone], &mut ids).await.unwrap();
        assert_eq!(s.registrations().list_all_unexpired(t(0)).await.unwrap().len(), 1);
        apply(&s, &[PersistOp::RegDelete { extension_id: e.id, contact_uri: "sip:101@10.0.0.1".into() }], &mut ids).await.unwrap();
        assert!(s.registrations().list_all_unexpired(t(0)).await.unwrap().is_empty());
    }
}
