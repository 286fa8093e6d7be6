//! The call log: filtered, paginated list, one record, and CSV export of a filter.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use store::{CallDirection, CallDisposition, Cdr, CdrFilter, Store, Timestamp};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Data, List, ListMeta, PageQuery, PathParams, Query};
use crate::AppState;

/// Filters of the call log. `from`/`to` take RFC 3339 or a date (`to=2026-01-31` includes
/// that whole day).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CdrQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    #[param(inline)]
    pub direction: Option<CallDirection>,
    #[param(inline)]
    pub disposition: Option<CallDisposition>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub trunk_id: Option<i64>,
    pub call_id: Option<String>,
    /// calls from or to this number
    pub party: Option<String>,
}

impl CdrQuery {
    pub(crate) fn filter(&self) -> ApiResult<CdrFilter> {
        let mut details = Vec::new();
        let mut time = |field: &str, v: &Option<String>, end: bool| -> Option<Timestamp> {
            let s = non_blank(v)?;
            match Timestamp::parse(s) {
                Some(t) if end && s.len() == 10 => Some(t + time::Duration::days(1)),
                Some(t) => Some(t),
                None => {
                    details.push(FieldError { field: field.into(), message: "must be a date (YYYY-MM-DD) or an RFC 3339 date-time".into() });
                    None
                }
            }
        };
        let from = time("from", &self.from, false);
        let to = time("to", &self.to, true);
        if !details.is_empty() {
            return Err(ApiError::BadRequest { message: "invalid filter".into(), details });
        }
        Ok(CdrFilter {
            direction: self.direction,
            disposition: self.disposition,
            from,
            to,
            caller: non_empty(&self.caller),
            callee: non_empty(&self.callee),
            trunk_id: self.trunk_id,
            call_id: non_empty(&self.call_id),
            party: non_empty(&self.party),
        })
    }
}

/// A filter parameter, trimmed; a blank one (a form submitted with the field empty) filters
/// nothing.
fn non_blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A text filter: absent when blank.
fn non_empty(v: &Option<String>) -> Option<String> {
    non_blank(v).map(str::to_owned)
}

#[utoipa::path(get, path = "/api/v1/cdrs", tag = "cdrs", params(CdrQuery), responses((status = 200, body = inline(List<Cdr>))))]
pub(crate) async fn list_cdrs(State(state): State<AppState>, Query(q): Query<CdrQuery>) -> ApiResult<List<Cdr>> {
    let page = PageQuery { limit: q.limit, offset: q.offset }.page()?;
    let filter = q.filter()?;
    let p = state.store().cdrs().list(&filter, page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(get, path = "/api/v1/cdrs/{id}", tag = "cdrs", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Cdr>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_cdr(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Cdr>> {
    state.store().cdrs().get(id).await?.map(Data::new).ok_or(ApiError::NotFound)
}

/// One SIP message of a call, as the viewer shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SipMessageView {
    /// When (RFC 3339, UTC).
    pub at: Timestamp,
    /// `in` (received by FlowPBX) or `out` (sent).
    pub direction: &'static str,
    pub transport: &'static str,
    /// The other side's address.
    pub peer: String,
    /// This message's Call-ID (a callee leg has its own).
    pub call_id: String,
    /// The message: headers, or all of it with `sip_log` = `full`; credentials and SRTP keys
    /// redacted.
    pub text: String,
}

/// The last SIP messages of a call.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SipMessages {
    /// Whether the server keeps messages (the `sip_log` setting is not `off`).
    pub kept: bool,
    /// At most this many of a call's last messages are kept (recent calls only).
    pub limit: usize,
    pub messages: Vec<SipMessageView>,
}

#[utoipa::path(get, path = "/api/v1/cdrs/{id}/sip-messages", tag = "cdrs", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<SipMessages>), description = "the call's last SIP messages, caller and callee legs, oldest first; empty when the server did not keep them (the SIP log off, or an old call)"),
              (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn sip_messages(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<SipMessages>> {
    let cdr = state.store().cdrs().get(id).await?.ok_or(ApiError::NotFound)?;
    let (kept, messages) = match state.pbx() {
        Some(pbx) => (pbx.keeps_sip_messages(), pbx.sip_messages(&cdr.call_id)),
        None => (false, Vec::new()),
    };
    let messages = messages
        .into_iter()
        .map(|m| SipMessageView {
            at: Timestamp::from_unix_millis(m.at_ms).unwrap_or_else(Timestamp::now),
            direction: m.direction,
            transport: m.transport,
            peer: m.peer,
            call_id: m.call_id,
            text: m.text,
        })
        .collect();
    Ok(Data::new(SipMessages { kept, limit: call::SIP_MESSAGES_PER_CALL, messages }))
}

const CSV_HEADER: &str = "id,call_id,start_time,answer_time,end_time,duration,billable_dur,caller_id_name,caller_id_num,callee,\
trunk_id,direction,disposition,recording_file,flow_id,flow_version,flow_path,hangup_cause\r\n";

/// One CSV cell. A cell a spreadsheet would read as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return: a caller name from a trunk is outside input) is prefixed
/// with `'` so that it stays text; then a cell with a comma, a quote or a line break is quoted.
fn csv_field(out: &mut String, v: &str) {
    let guard = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { "'" } else { "" };
    if v.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(guard);
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(guard);
        out.push_str(v);
    }
}

fn csv_row(out: &mut String, c: &Cdr) {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let fields = [
        c.id.to_string(),
        c.call_id.clone(),
        c.start_time.to_string(),
        opt(c.answer_time.map(|t| t.to_string())),
        opt(c.end_time.map(|t| t.to_string())),
        opt(c.duration.map(|v| v.to_string())),
        opt(c.billable_dur.map(|v| v.to_string())),
        opt(c.caller_id_name.clone()),
        opt(c.caller_id_num.clone()),
        opt(c.callee.clone()),
        opt(c.trunk_id.map(|v| v.to_string())),
        c.direction.to_string(),
        opt(c.disposition.map(|d| d.to_string())),
        opt(c.recording_file.clone()),
        opt(c.flow_id.map(|v| v.to_string())),
        opt(c.flow_version.map(|v| v.to_string())),
        c.flow_path.to_string(),
        opt(c.hangup_cause.clone()),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

const EXPORT_CHUNK: i64 = 1000;

#[utoipa::path(get, path = "/api/v1/cdrs/export", tag = "cdrs", params(CdrQuery),
    responses((status = 200, description = "CSV of every matching CDR, newest first (`limit` and `offset` are checked like the list's and do not apply: the export has every row)", content_type = "text/csv")))]
pub(crate) async fn export_cdrs(State(state): State<AppState>, Query(q): Query<CdrQuery>) -> ApiResult<Response> {
    // the same query as the list's (the UI passes its list's parameters): paging is checked, not applied
    PageQuery { limit: q.limit, offset: q.offset }.page()?;
    let filter = q.filter()?;
    let store: Store = state.store().clone();
    // keyset pagination: memory stays flat however many rows match
    let stream = futures_util::stream::unfold((store, filter, None::<(Timestamp, i64)>, false, true), |(store, filter, after, done, first)| async move {
        if done {
            return None;
        }
        match store.cdrs().list_after(&filter, after, EXPORT_CHUNK).await {
            Ok(rows) => {
                let mut out = String::new();
                if first {
                    out.push_str(CSV_HEADER);
                }
                for r in &rows {
                    csv_row(&mut out, r);
                }
                let next = rows.last().map(|r| (r.start_time, r.id));
                let finished = (rows.len() as i64) < EXPORT_CHUNK;
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), (store, filter, next, finished, false)))
            }
            Err(e) => {
                tracing::error!(error = %e, "CDR export failed");
                Some((Err(std::io::Error::other(e.to_string())), (store, filter, after, true, false)))
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"cdrs.csv\"")], Body::from_stream(stream))
        .into_response())
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/cdrs", get(list_cdrs))
        .route("/cdrs/export", get(export_cdrs))
        .route("/cdrs/{id}", get(get_cdr))
        .route("/cdrs/{id}/sip-messages", get(sip_messages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_filters_filter_nothing() {
        let q: CdrQuery = serde_json::from_value(serde_json::json!({"from": "", "to": " ", "caller": "", "callee": " 100 ", "party": ""})).unwrap();
        let f = q.filter().unwrap();
        assert!(f.from.is_none() && f.to.is_none() && f.caller.is_none() && f.party.is_none(), "{f:?}");
        assert_eq!(f.callee.as_deref(), Some("100"));
        let q: CdrQuery = serde_json::from_value(serde_json::json!({"from": "yesterday"})).unwrap();
        assert!(q.filter().is_err());
    }

    #[test]
    fn csv_quoting() {
        let mut s = String::new();
        csv_field(&mut s, "plain");
        s.push(',');
        csv_field(&mut s, "a \"b\", c");
        assert_eq!(s, "plain,\"a \"\"b\"\", c\"");
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_stay_text() {
        let cell = |v: &str| {
            let mut s = String::new();
            csv_field(&mut s, v);
            s
        };
        assert_eq!(cell("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        assert_eq!(cell("+61299990000"), "'+61299990000");
        assert_eq!(cell("-1+cmd|' /C calc'!A0"), "'-1+cmd|' /C calc'!A0");
        assert_eq!(cell("@SUM(A1:A2)"), "'@SUM(A1:A2)");
        assert_eq!(cell("\t=1"), "'\t=1");
        assert_eq!(cell("\r=1"), "\"'\r=1\"");
        assert_eq!(cell("=1,2"), "\"'=1,2\"");
        // inside a cell they are harmless
        assert_eq!(cell("a=b"), "a=b");
        assert_eq!(cell("2026-01-01T10:00:00Z"), "2026-01-01T10:00:00Z");
    }
}
