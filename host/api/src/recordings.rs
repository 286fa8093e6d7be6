//! Call recordings: the list (the call log's filters, each with its CDR's parties), one
//! recording, its audio with byte ranges (inline for the player, or as a download), delete
//! (file and row, audited).
//!
//! A recording's file is named by its row, never by the request: the id is a number, and
//! the stored path must stay under `<data-dir>/recordings/` (a row naming anything else is
//! refused as not found).

use std::path::{Component, Path, PathBuf};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use store::{Recording, RecordingItem};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::cdrs::CdrQuery;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Data, Deleted, List, ListMeta, PageQuery, PathParams, Query};
use crate::{files, AppState};

/// Where a recording's file is, when its stored path is a plain relative path under
/// `recordings/`.
pub(crate) fn recording_file(data_dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let mut parts = p.components();
    if parts.next() != Some(Component::Normal("recordings".as_ref())) {
        return None;
    }
    if p.components().count() < 2 || !parts.all(|c| matches!(c, Component::Normal(_))) || p.extension().is_none_or(|e| e != "wav") {
        return None;
    }
    Some(data_dir.join(p))
}

#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings", params(CdrQuery), responses((status = 200, body = inline(List<RecordingItem>))))]
pub(crate) async fn list_recordings(State(state): State<AppState>, Query(q): Query<CdrQuery>) -> ApiResult<List<RecordingItem>> {
    let page = PageQuery { limit: q.limit, offset: q.offset }.page()?;
    let filter = q.filter()?;
    let p = state.store().recordings().list_filtered(&filter, page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(get, path = "/api/v1/recordings/{id}", tag = "recordings", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Recording>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_recording(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Recording>> {
    state.store().recordings().get(id).await?.map(Data::new).ok_or(ApiError::NotFound)
}

/// `download=true`: `Content-Disposition: attachment` (else inline, for the player).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AudioQuery {
    pub download: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/recordings/{id}/audio", tag = "recordings", params(("id" = i64, Path), AudioQuery),
    responses((status = 200, description = "the WAV file (byte ranges accepted)", content_type = "audio/wav"), (status = 206, description = "a byte range"),
        (status = 404, body = crate::error::ErrorEnvelope), (status = 416, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn recording_audio(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    Query(q): Query<AudioQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let r = state.store().recordings().get(id).await?.ok_or(ApiError::NotFound)?;
    let Some(path) = recording_file(&state.config().data_dir, &r.file_path) else {
        tracing::warn!(id, file = %r.file_path, "a recording row names a file outside recordings/: not served");
        return Err(ApiError::NotFound);
    };
    let name = format!("recording-{id}.wav");
    let mut resp = files::serve(&path, "audio/wav", Some(&name), &headers).await?;
    if q.download == Some(true)
        && let Ok(v) = format!("attachment; filename=\"{name}\"").parse()
    {
        resp.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[utoipa::path(delete, path = "/api/v1/recordings/{id}", tag = "recordings", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_recording(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    let mut tx = state.store().begin().await?;
    let r = tx.recordings().delete(id).await?.ok_or(ApiError::NotFound)?;
    tx.audit(&caller.actor(), "delete", "recording", Some(&id.to_string()), Some(&serde_json::to_value(&r).unwrap_or_default()), None).await?;
    tx.commit().await?;
    match recording_file(&state.config().data_dir, &r.file_path) {
        Some(path) => {
            if let Err(e) = tokio::fs::remove_file(&path).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, file = %r.file_path, "could not remove a deleted recording's file");
            }
        }
        None => tracing::warn!(id, file = %r.file_path, "a deleted recording's row named a file outside recordings/: left alone"),
    }
    Ok(Data::new(Deleted { id, deleted: true }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_recordings, get_recording, recording_audio, delete_recording))]
pub(crate) struct RecordingsDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/recordings", get(list_recordings))
        .route("/recordings/{id}", get(get_recording).delete(delete_recording))
        .route("/recordings/{id}/audio", get(recording_audio))
}

#[cfg(test)]
mod tests {
    use super::recording_file;
    use std::path::Path;

    #[test]
    fn only_plain_paths_under_recordings_are_served() {
        let d = Path::new("/data");
        assert_eq!(recording_file(d, "recordings/2026/01/02/1-a.wav"), Some(d.join("recordings/2026/01/02/1-a.wav")));
        for bad in [
            "recordings/../secret.key",
            "recordings/../../x.wav",
            "/etc/passwd",
            "/data/recordings/x.wav",
            "voicemail/1/2.wav",
            "../recordings/x.wav",
            "",
            "recordings",
            "recordings/2026",
        ] {
            assert!(recording_file(d, bad).is_none(), "{bad}");
        }
    }
}
