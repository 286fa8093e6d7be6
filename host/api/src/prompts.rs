//! Audio prompts: upload (a WAV checked with hound, stored under
//! `<data-dir>/prompts/custom/`), list, download, delete.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use store::{EntityKind, NewPrompt, Prompt};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Created, Data, Deleted, List, ListMeta, PageQuery, PathParams, Query};
use crate::validate::is_prompt_name;
use crate::AppState;

/// Where uploaded prompts live, relative to the data dir.
pub const CUSTOM_PROMPTS_DIR: &str = "prompts/custom";

/// What an uploaded file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub duration_ms: u64,
}

/// Checks that `bytes` is a WAV file hound can read to the end, and describes it.
pub fn inspect_wav(bytes: &[u8]) -> Result<AudioInfo, String> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| format!("not a readable WAV file: {e}"))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err("WAV header has no channels or sample rate".into());
    }
    let frames = u64::from(reader.duration());
    // read every sample: a truncated or corrupt data chunk is refused now, not mid-call
    let ok = match spec.sample_format {
        hound::SampleFormat::Int => reader.samples::<i32>().all(|s| s.is_ok()),
        hound::SampleFormat::Float => reader.samples::<f32>().all(|s| s.is_ok()),
    };
    if !ok {
        return Err("the WAV data is truncated or corrupt".into());
    }
    if frames == 0 {
        return Err("the WAV file holds no audio".into());
    }
    Ok(AudioInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: spec.bits_per_sample,
        duration_ms: frames * 1000 / u64::from(spec.sample_rate),
    })
}

/// Accepts an uploaded prompt: validates it and writes it (temporary name, then rename) to
/// `<data-dir>/prompts/custom/<name>.wav`. Returns the path relative to the data dir.
///
/// This is the one place an upload becomes a prompt file; conversion to the media engine's
/// internal format slots in here.
pub async fn ingest_prompt(data_dir: &Path, name: &str, bytes: &[u8]) -> Result<(String, AudioInfo), ApiError> {
    let info = inspect_wav(bytes).map_err(|m| ApiError::field("file", m))?;
    let rel = format!("{CUSTOM_PROMPTS_DIR}/{name}.wav");
    let dir = data_dir.join(CUSTOM_PROMPTS_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", store::random_token(6)));
    let dest = data_dir.join(&rel);
    let write = async {
        tokio::fs::write(&tmp, bytes).await?;
        let f = tokio::fs::File::open(&tmp).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &dest).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::internal(e));
    }
    Ok((rel, info))
}

fn data_path(state: &AppState, rel: &str) -> PathBuf {
    state.config().data_dir.join(rel)
}

#[utoipa::path(get, path = "/api/v1/prompts", tag = "prompts", params(PageQuery), responses((status = 200, body = inline(List<Prompt>))))]
pub(crate) async fn list_prompts(State(state): State<AppState>, Query(q): Query<PageQuery>) -> ApiResult<List<Prompt>> {
    let page = q.page()?;
    let p = state.store().prompts().list(page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(post, path = "/api/v1/prompts", tag = "prompts",
    request_body(content_type = "multipart/form-data", description = "fields: file (WAV), name (optional; letters, digits, _ and -)"),
    responses((status = 201, body = inline(Data<Prompt>)), (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn upload_prompt(State(state): State<AppState>, caller: Caller, mut form: Multipart) -> ApiResult<Created<Prompt>> {
    let mut name: Option<String> = None;
    let mut file: Option<(Option<String>, bytes::Bytes)> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::PayloadTooLarge),
            Err(e) => return Err(ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))),
        };
        match field.name() {
            Some("name") => name = Some(field.text().await.map_err(|e| ApiError::field("name", e.body_text()))?.trim().to_owned()),
            Some("file") => {
                let original = field.file_name().map(str::to_owned);
                let data = field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE { ApiError::PayloadTooLarge } else { ApiError::field("file", e.body_text()) }
                })?;
                file = Some((original, data));
            }
            Some(other) => return Err(ApiError::field(other, "unknown field (expected file, name)")),
            None => return Err(ApiError::bad_request("multipart field without a name")),
        }
    }
    let Some((original, data)) = file else { return Err(ApiError::field("file", "is required")) };
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => original
            .as_deref()
            .and_then(|f| Path::new(f).file_stem())
            .and_then(|s| s.to_str())
            .map(|s| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect::<String>())
            .unwrap_or_default(),
    };
    if !is_prompt_name(&name) {
        return Err(ApiError::field("name", "must be 1-64 letters, digits, _ or -"));
    }
    if state.store().prompts().get_by_name(&name).await?.is_some() {
        return Err(ApiError::field("name", "a prompt with this name exists"));
    }
    let (rel, info) = ingest_prompt(&state.config().data_dir, &name, &data).await?;
    let new = NewPrompt {
        name: name.clone(),
        file_path: rel.clone(),
        original_name: original.map(|o| o.chars().take(255).collect()),
        sample_rate: i64::from(info.sample_rate),
        channels: i64::from(info.channels),
        bits_per_sample: i64::from(info.bits_per_sample),
        duration_ms: info.duration_ms as i64,
        size_bytes: data.len() as i64,
    };
    let result = async {
        let mut tx = state.store().begin().await?;
        let p = tx.prompts().insert(&new).await?;
        tx.audit(&caller.actor(), "create", "prompt", Some(&p.id.to_string()), None, Some(&serde_json::to_value(&p).unwrap_or_default()))
            .await?;
        tx.commit().await?;
        Ok::<_, ApiError>(p)
    }
    .await;
    match result {
        Ok(p) => Ok(Created(p)),
        Err(e) => {
            let _ = tokio::fs::remove_file(data_path(&state, &rel)).await;
            Err(e)
        }
    }
}

#[utoipa::path(get, path = "/api/v1/prompts/{id}", tag = "prompts", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Prompt>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_prompt(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Prompt>> {
    state.store().prompts().get(id).await?.map(Data::new).ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/prompts/{id}/audio", tag = "prompts", params(("id" = i64, Path)),
    responses((status = 200, description = "the WAV file", content_type = "audio/wav"), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn prompt_audio(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Response> {
    let p = state.store().prompts().get(id).await?.ok_or(ApiError::NotFound)?;
    let bytes = match tokio::fs::read(data_path(&state, &p.file_path)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::NotFound),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let disposition = format!("attachment; filename=\"{}.wav\"", p.name);
    Ok(([(header::CONTENT_TYPE, "audio/wav".to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response())
}

#[utoipa::path(delete, path = "/api/v1/prompts/{id}", tag = "prompts", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope), (status = 409, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_prompt(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    let mut tx = state.store().begin().await?;
    let refs = tx.references().to(EntityKind::Prompt, id).await?;
    if !refs.is_empty() {
        return Err(ApiError::Conflict { message: format!("the prompt is still in use ({} references)", refs.len()), references: refs });
    }
    let p = tx.prompts().delete(id).await?.ok_or(ApiError::NotFound)?;
    tx.audit(&caller.actor(), "delete", "prompt", Some(&id.to_string()), Some(&serde_json::to_value(&p).unwrap_or_default()), None).await?;
    tx.commit().await?;
    if let Err(e) = tokio::fs::remove_file(data_path(&state, &p.file_path)).await {
        tracing::warn!(error = %e, file = %p.file_path, "could not remove a deleted prompt's file");
    }
    Ok(Data::new(Deleted { id, deleted: true }))
}

pub(crate) fn routes(max_upload: usize) -> Router<AppState> {
    Router::new()
        .route("/prompts", get(list_prompts).post(upload_prompt).layer(DefaultBodyLimit::max(max_upload)))
        .route("/prompts/{id}", get(get_prompt).delete(delete_prompt))
        .route("/prompts/{id}/audio", get(prompt_audio))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn wav(samples: usize) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        let spec = hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
        for i in 0..samples {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap();
        c.into_inner()
    }

    #[test]
    fn wav_checks() {
        let info = inspect_wav(&wav(8000)).unwrap();
        assert_eq!(info, AudioInfo { sample_rate: 8000, channels: 1, bits_per_sample: 16, duration_ms: 1000 });
        assert!(inspect_wav(b"RIFF....WAVEfmt nonsense").is_err());
        let w = wav(8000);
        assert!(inspect_wav(&w[..w.len() / 2]).is_err(), "truncated data is refused");
        assert!(inspect_wav(&wav(0)).is_err());
    }
}
