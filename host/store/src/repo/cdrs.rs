use sqlx::types::Json;
use sqlx::QueryBuilder;

use super::{Cdrs, Db};
use crate::*;

macro_rules! cdr_cols {
    () => {
        "id, call_id, start_time, answer_time, end_time, duration, billable_dur, caller_id_name, caller_id_num, callee, \
         trunk_id, direction, disposition, recording_file, flow_id, flow_version, flow_path, hangup_cause, media_stats, \
         extension_id, route_id, transfers, caller_srtp, callee_srtp"
    };
}

/// Rows per statement of the batch writes (well under SQLite's 32766 bound parameters).
const BATCH_ROWS: usize = 500;

pub(crate) fn push_filter(q: &mut QueryBuilder<Db>, f: &CdrFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(d) = f.direction {
        q.push(" AND direction = ").push_bind(d);
    }
    if let Some(d) = f.disposition {
        q.push(" AND disposition = ").push_bind(d);
    }
    if let Some(t) = f.from {
        q.push(" AND start_time >= ").push_bind(t);
    }
    if let Some(t) = f.to {
        q.push(" AND start_time < ").push_bind(t);
    }
    if let Some(c) = &f.caller {
        q.push(" AND caller_id_num = ").push_bind(c.clone());
    }
    if let Some(c) = &f.callee {
        q.push(" AND callee = ").push_bind(c.clone());
    }
    if let Some(t) = f.trunk_id {
        q.push(" AND trunk_id = ").push_bind(t);
    }
    if let Some(c) = &f.call_id {
        q.push(" AND call_id = ").push_bind(c.clone());
    }
    if let Some(p) = &f.party {
        q.push(" AND (caller_id_num = ").push_bind(p.clone()).push(" OR callee = ").push_bind(p.clone()).push(")");
    }
}

impl Cdrs<'_> {
    /// Writes the CDR of a call that starts; returns its id for the later updates.
    pub async fn insert_start(self, n: &NewCdr) -> Result<i64> {
        self.insert_start_answered(n, None).await
    }

    /// Writes the CDR of a call that starts, with its answer time when the call was answered
    /// before the row was written (the SIP stack writes in batches); returns its id.
    pub async fn insert_start_answered(self, n: &NewCdr, answer_time: Option<Timestamp>) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO cdrs (call_id, start_time, answer_time, caller_id_name, caller_id_num, callee, trunk_id, direction, \
             flow_id, flow_version, extension_id, route_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&n.call_id)
        .bind(n.start_time)
        .bind(answer_time)
        .bind(&n.caller_id_name)
        .bind(&n.caller_id_num)
        .bind(&n.callee)
        .bind(n.trunk_id)
        .bind(n.direction)
        .bind(n.flow_id)
        .bind(n.flow_version)
        .bind(n.extension_id)
        .bind(n.route_id)
        .fetch_one(&mut *c)
        .await?;
        Ok(id)
    }

    /// Records the answer time (the first answer wins; later calls change nothing).
    pub async fn update_answer(self, id: i64, answer_time: Timestamp) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE cdrs SET answer_time = ? WHERE id = ? AND answer_time IS NULL").bind(answer_time).bind(id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Completes the CDR at hang-up: end time, disposition, cause, flow path, recording, and the
    /// durations (total from start, billable from answer).
    pub async fn update_end(self, id: i64, e: &CdrEnd) -> Result<Cdr> {
        let mut c = self.db.acquire().await?;
        let cur: Option<(Timestamp, Option<Timestamp>)> =
            sqlx::query_as("SELECT start_time, answer_time FROM cdrs WHERE id = ?").bind(id).fetch_optional(&mut *c).await?;
        let (start, answer) = cur.ok_or(StoreError::NotFound)?;
        let duration = e.end_time.seconds_since(start);
        let billable = answer.map(|a| e.end_time.seconds_since(a)).unwrap_or(0);
        Ok(sqlx::query_as(concat!(
            "UPDATE cdrs SET end_time = ?, duration = ?, billable_dur = ?, disposition = ?, hangup_cause = ?, flow_path = ?, \
             recording_file = COALESCE(?, recording_file), trunk_id = COALESCE(?, trunk_id), \
             transfers = COALESCE(?, transfers) WHERE id = ? RETURNING ",
            cdr_cols!()
        ))
        .bind(e.end_time)
        .bind(duration)
        .bind(billable)
        .bind(e.disposition)
        .bind(&e.hangup_cause)
        .bind(Json(&e.flow_path))
        .bind(&e.recording_file)
        .bind(e.trunk_id)
        .bind(e.transfers.as_ref().map(Json))
        .bind(id)
        .fetch_one(&mut *c)
        .await?)
    }

    /// Writes the CDRs of several calls that start (each with its answer time when already
    /// answered) in one statement; returns their ids in the order given.
    pub async fn insert_many(self, rows: &[(NewCdr, Option<Timestamp>)]) -> Result<Vec<i64>> {
        let mut c = self.db.acquire().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(BATCH_ROWS) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO cdrs (call_id, start_time, answer_time, caller_id_name, caller_id_num, callee, trunk_id, direction, \
                 flow_id, flow_version, extension_id, route_id) ",
            );
            q.push_values(chunk, |mut b, (n, answer)| {
                b.push_bind(n.call_id.clone())
                    .push_bind(n.start_time)
                    .push_bind(*answer)
                    .push_bind(n.caller_id_name.clone())
                    .push_bind(n.caller_id_num.clone())
                    .push_bind(n.callee.clone())
                    .push_bind(n.trunk_id)
                    .push_bind(n.direction)
                    .push_bind(n.flow_id)
                    .push_bind(n.flow_version)
                    .push_bind(n.extension_id)
                    .push_bind(n.route_id);
            });
            q.push(" RETURNING id");
            let mut got: Vec<(i64,)> = q.build_query_as().fetch_all(&mut *c).await?;
            // A rowid table gives the rows of one INSERT increasing ids in VALUES order;
            // RETURNING lists them in no promised order.
            got.sort_unstable();
            ids.extend(got.into_iter().map(|(id,)| id));
        }
        Ok(ids)
    }

    /// Completes several CDRs at hang-up in one statement, like [`Cdrs::finish`]: `(id, end,
    /// start, answer)`. Returns how many rows it completed.
    pub async fn finish_many(self, rows: &[(i64, CdrEnd, Timestamp, Option<Timestamp>)]) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let mut n = 0;
        for chunk in rows.chunks(BATCH_ROWS) {
            let mut q = QueryBuilder::<Db>::new(
                "WITH v(id, end_time, duration, billable_dur, disposition, hangup_cause, flow_path, recording_file, trunk_id, transfers) AS (",
            );
            q.push_values(chunk, |mut b, (id, e, start, answer)| {
                b.push_bind(*id)
                    .push_bind(e.end_time)
                    .push_bind(e.end_time.seconds_since(*start))
                    .push_bind(answer.map(|a| e.end_time.seconds_since(a)).unwrap_or(0))
                    .push_bind(e.disposition)
                    .push_bind(e.hangup_cause.clone())
                    .push_bind(Json(e.flow_path.clone()))
                    .push_bind(e.recording_file.clone())
                    .push_bind(e.trunk_id)
                    .push_bind(e.transfers.clone().map(Json));
            });
            q.push(
                ") UPDATE cdrs SET end_time = v.end_time, duration = v.duration, billable_dur = v.billable_dur, \
                 disposition = v.disposition, hangup_cause = v.hangup_cause, flow_path = v.flow_path, \
                 recording_file = COALESCE(v.recording_file, cdrs.recording_file), \
                 trunk_id = COALESCE(v.trunk_id, cdrs.trunk_id), transfers = COALESCE(v.transfers, cdrs.transfers) \
                 FROM v WHERE cdrs.id = v.id",
            );
            n += q.build().execute(&mut *c).await?.rows_affected();
        }
        Ok(n)
    }

    /// Completes the CDR at hang-up like [`Cdrs::update_end`], for a caller that knows the call's
    /// start and answer times: no read before, no row returned (the SIP stack's batched writes).
    /// False when there is no such CDR.
    pub async fn finish(self, id: i64, e: &CdrEnd, start: Timestamp, answer: Option<Timestamp>) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query(
            "UPDATE cdrs SET end_time = ?, duration = ?, billable_dur = ?, disposition = ?, hangup_cause = ?, flow_path = ?, \
             recording_file = COALESCE(?, recording_file), trunk_id = COALESCE(?, trunk_id), \
             transfers = COALESCE(?, transfers) WHERE id = ?",
        )
        .bind(e.end_time)
        .bind(e.end_time.seconds_since(start))
        .bind(answer.map(|a| e.end_time.seconds_since(a)).unwrap_or(0))
        .bind(e.disposition)
        .bind(&e.hangup_cause)
        .bind(Json(&e.flow_path))
        .bind(&e.recording_file)
        .bind(e.trunk_id)
        .bind(e.transfers.as_ref().map(Json))
        .bind(id)
        .execute(&mut *c)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Outbound seconds talked per extension on calls that started at `since` or later (the
    /// daily minute caps are counted from it).
    pub async fn outbound_seconds_since(self, since: Timestamp) -> Result<Vec<(i64, i64)>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT extension_id, CAST(TOTAL(billable_dur) AS INTEGER) FROM cdrs \
             WHERE direction = 'outbound' AND extension_id IS NOT NULL AND start_time >= ? GROUP BY extension_id",
        )
        .bind(since)
        .fetch_all(&mut *c)
        .await?)
    }

    /// Writes a call's per-leg media statistics (when its media session closed).
    pub async fn set_media_stats(self, id: i64, stats: &serde_json::Value) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE cdrs SET media_stats = ? WHERE id = ?").bind(Json(stats)).bind(id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Writes whether each leg's media was encrypted: its SRTP suite, none for plain RTP
    /// (when the call's media session closed).
    pub async fn set_media_encryption(self, id: i64, caller_srtp: Option<&str>, callee_srtp: Option<&str>) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r =
            sqlx::query("UPDATE cdrs SET caller_srtp = ?, callee_srtp = ? WHERE id = ?").bind(caller_srtp).bind(callee_srtp).bind(id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Writes what a flow did with a call: the flow and version it walked, its path, and a
    /// disposition that replaces the one signalling gave (a call that ended in voicemail).
    pub async fn set_flow(self, id: i64, flow_id: i64, flow_version: i64, flow_path: &serde_json::Value, disposition: Option<CallDisposition>) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE cdrs SET flow_id = ?, flow_version = ?, flow_path = ?, disposition = COALESCE(?, disposition) WHERE id = ?")
            .bind(flow_id)
            .bind(flow_version)
            .bind(Json(flow_path))
            .bind(disposition)
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn get(self, id: i64) -> Result<Option<Cdr>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", cdr_cols!(), " FROM cdrs WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The call log, newest first, filtered.
    pub async fn list(self, filter: &CdrFilter, page: Page) -> Result<Paged<Cdr>> {
        let mut c = self.db.acquire().await?;
        let mut q = QueryBuilder::new(concat!("SELECT ", cdr_cols!(), " FROM cdrs"));
        push_filter(&mut q, filter);
        q.push(" ORDER BY start_time DESC, id DESC LIMIT ").push_bind(page.limit).push(" OFFSET ").push_bind(page.offset);
        let items = q.build_query_as().fetch_all(&mut *c).await?;
        let mut q = QueryBuilder::new("SELECT COUNT(*) FROM cdrs");
        push_filter(&mut q, filter);
        let (total,): (i64,) = q.build_query_as().fetch_one(&mut *c).await?;
        Ok(Paged { items, total })
    }

    /// Keyset page for exports: up to `limit` CDRs matching `filter` that come after
    /// `after` = (start_time, id) in newest-first order.
    pub async fn list_after(self, filter: &CdrFilter, after: Option<(Timestamp, i64)>, limit: i64) -> Result<Vec<Cdr>> {
        let mut c = self.db.acquire().await?;
        let mut q = QueryBuilder::new(concat!("SELECT ", cdr_cols!(), " FROM cdrs"));
        push_filter(&mut q, filter);
        if let Some((t, id)) = after {
            q.push(" AND (start_time < ").push_bind(t).push(" OR (start_time = ").push_bind(t).push(" AND id < ").push_bind(id).push("))");
        }
        q.push(" ORDER BY start_time DESC, id DESC LIMIT ").push_bind(limit);
        Ok(q.build_query_as().fetch_all(&mut *c).await?)
    }

    /// Deletes the CDRs of calls that started before `cutoff` (retention); how many.
    pub async fn delete_started_before(self, cutoff: Timestamp) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM cdrs WHERE start_time < ?").bind(cutoff).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }

    /// Attaches a recording file to a CDR.
    pub async fn set_recording(self, id: i64, file: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE cdrs SET recording_file = ? WHERE id = ?").bind(file).bind(id).execute(&mut *c).await?;
        Ok(r.rows_affected() > 0)
    }

    /// When `number` last finished a call (the longest-idle ring strategy); None if never.
    pub async fn last_call_end(self, number: &str) -> Result<Option<Timestamp>> {
        let mut c = self.db.acquire().await?;
        let (t,): (Option<Timestamp>,) = sqlx::query_as(
            "SELECT MAX(end_time) FROM (SELECT end_time FROM cdrs WHERE caller_id_num = ? \
             UNION ALL SELECT end_time FROM cdrs WHERE callee = ?)",
        )
        .bind(number)
        .bind(number)
        .fetch_one(&mut *c)
        .await?;
        Ok(t)
    }

    pub async fn count(self) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cdrs").fetch_one(&mut *c).await?;
        Ok(n)
    }

    /// Deletes CDRs that started before `before` (retention); returns how many.
    pub async fn delete_before(self, before: Timestamp) -> Result<u64> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("DELETE FROM cdrs WHERE start_time < ?").bind(before).execute(&mut *c).await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;
    use time::Duration;

    #[tokio::test]
    async fn lifecycle_and_filters() {
        let (s, _d) = open_temp().await;
        let t0 = Timestamp::parse("2026-01-02T10:00:00Z").unwrap();
        let id = s
            .cdrs()
            .insert_start(&NewCdr {
                call_id: "abc@h".into(),
                start_time: t0,
                caller_id_name: Some("Bob".into()),
                caller_id_num: Some("+61400000000".into()),
                callee: Some("101".into()),
                trunk_id: None,
                direction: CallDirection::Inbound,
                flow_id: None,
                flow_version: None,
                extension_id: None,
                route_id: None,
            })
            .await
            .unwrap();
        assert!(s.cdrs().update_answer(id, t0 + Duration::seconds(5)).await.unwrap());
        assert!(!s.cdrs().update_answer(id, t0 + Duration::seconds(9)).await.unwrap());
        let cdr = s
            .cdrs()
            .update_end(
                id,
                &CdrEnd {
                    end_time: t0 + Duration::seconds(65),
                    disposition: CallDisposition::Answered,
                    hangup_cause: Some("normal_clearing".into()),
                    flow_path: serde_json::json!(["n1", "n2"]),
                    recording_file: None,
                    trunk_id: None,
                    transfers: None,
                },
            )
            .await
            .unwrap();
        assert_eq!((cdr.duration, cdr.billable_dur), (Some(65), Some(60)));
        // the batched path: start and answer in one insert, the end without a read
        let t1 = t0 - Duration::days(1);
        let n = NewCdr {
            call_id: "def@h".into(),
            start_time: t1,
            caller_id_name: None,
            caller_id_num: Some("101".into()),
            callee: Some("102".into()),
            trunk_id: None,
            direction: CallDirection::Internal,
            flow_id: None,
            flow_version: None,
            extension_id: None,
            route_id: None,
        };
        let id2 = s.cdrs().insert_start_answered(&n, Some(t1 + Duration::seconds(2))).await.unwrap();
        let end = CdrEnd {
            end_time: t1 + Duration::seconds(12),
            disposition: CallDisposition::Answered,
            hangup_cause: Some("normal_clearing".into()),
            flow_path: serde_json::json!([]),
            recording_file: None,
            trunk_id: None,
            transfers: None,
        };
        assert!(s.cdrs().finish(id2, &end, t1, Some(t1 + Duration::seconds(2))).await.unwrap());
        let c2 = s.cdrs().get(id2).await.unwrap().unwrap();
        assert_eq!((c2.duration, c2.billable_dur, c2.answer_time), (Some(12), Some(10), Some(t1 + Duration::seconds(2))));
        assert!(!s.cdrs().finish(999_999, &end, t1, None).await.unwrap());
        assert_eq!(s.cdrs().delete_before(t0).await.unwrap(), 1);
        // batches: ids in the order given, ends matched by id
        let batch: Vec<(NewCdr, Option<Timestamp>)> = (0..3)
            .map(|i| (NewCdr { call_id: format!("b{i}"), start_time: t1 + Duration::seconds(i), ..n.clone() }, (i == 1).then_some(t1 + Duration::seconds(5))))
            .collect();
        let ids = s.cdrs().insert_many(&batch).await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(s.cdrs().get(*id).await.unwrap().unwrap().call_id, format!("b{i}"));
        }
        let ends: Vec<_> = ids.iter().enumerate().map(|(i, id)| (*id, end.clone(), t1 + Duration::seconds(i as i64), batch[i].1)).collect();
        assert_eq!(s.cdrs().finish_many(&ends).await.unwrap(), 3);
        let b1 = s.cdrs().get(ids[1]).await.unwrap().unwrap();
        assert_eq!((b1.duration, b1.billable_dur, b1.hangup_cause.as_deref()), (Some(11), Some(7), Some("normal_clearing")));
        assert_eq!(s.cdrs().delete_before(t0).await.unwrap(), 3);
        assert_eq!(cdr.flow_path, serde_json::json!(["n1", "n2"]));

        let f = CdrFilter { direction: Some(CallDirection::Inbound), from: Timestamp::parse("2026-01-02"), ..Default::default() };
        assert_eq!(s.cdrs().list(&f, Page::default()).await.unwrap().total, 1);
        let f = CdrFilter { direction: Some(CallDirection::Outbound), ..Default::default() };
        assert_eq!(s.cdrs().list(&f, Page::default()).await.unwrap().total, 0);
        let f = CdrFilter { to: Timestamp::parse("2026-01-02"), ..Default::default() };
        assert_eq!(s.cdrs().list(&f, Page::default()).await.unwrap().total, 0);
        let f = CdrFilter { party: Some("101".into()), ..Default::default() };
        assert_eq!(s.cdrs().list_after(&f, None, 10).await.unwrap().len(), 1);
        assert_eq!(s.cdrs().list_after(&f, Some((t0, id)), 10).await.unwrap().len(), 0);
        assert_eq!(s.cdrs().last_call_end("101").await.unwrap(), Some(t0 + Duration::seconds(65)));
    }
}
