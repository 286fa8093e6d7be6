//! Audio prompts: upload (any readable WAV, converted by the media crate to 8 kHz mono and
//! stored under `<data-dir>/prompts/custom/`), list (the default `system` prompts shipped in
//! the binary, then the uploads), download with byte ranges, delete.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use store::{NewPrompt, Prompt, ResourceKind};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Created, Data, Deleted, List, ListMeta, PageQuery, PathParams, Query};
use crate::files;
use crate::validate::is_prompt_name;
use crate::AppState;

/// Where uploaded prompts live, relative to the data dir.
pub const CUSTOM_PROMPTS_DIR: &str = "prompts/custom";

/// What a stored prompt file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub duration_ms: u64,
    pub size_bytes: u64,
}

/// Describes a WAV file hound can read to the end (the stored, converted prompts).
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
        size_bytes: bytes.len() as u64,
    })
}

/// Converts an upload (any WAV the media crate reads: any rate and channel count, PCM,
/// float, A-law, µ-law) to the media engine's internal format (8 kHz mono 16-bit PCM), on
/// the blocking pool. Unreadable or empty audio is a 422 on `file`.
pub async fn convert_upload(bytes: bytes::Bytes) -> Result<(Vec<u8>, AudioInfo), ApiError> {
    let converted = tokio::task::spawn_blocking(move || media::wav::convert_to_internal(&bytes)).await.map_err(ApiError::internal)?.map_err(|e| match e {
        media::MediaError::UnreadableAudio(m) => ApiError::field("file", format!("cannot read the audio: {m}")),
        other => ApiError::internal(other),
    })?;
    let info = inspect_wav(&converted).map_err(|m| ApiError::field("file", m))?;
    Ok((converted, info))
}

/// Accepts an uploaded prompt: converts it to the internal format and writes it (temporary
/// name, fsync, rename) to `<data-dir>/prompts/custom/<name>.wav`, replacing a file of that
/// name. Returns the path relative to the data dir and what the stored file is.
///
/// This is the one place an upload becomes a prompt file (prompts and voicemail greetings).
pub async fn ingest_prompt(data_dir: &Path, name: &str, bytes: bytes::Bytes) -> Result<(String, AudioInfo), ApiError> {
    let (converted, info) = convert_upload(bytes).await?;
    let rel = format!("{CUSTOM_PROMPTS_DIR}/{name}.wav");
    let dir = data_dir.join(CUSTOM_PROMPTS_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", store::random_token(6)));
    let dest = data_dir.join(&rel);
    let write = async {
        tokio::fs::write(&tmp, &converted).await?;
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

/// Reads a multipart body of `file` (and, when `allow_name`, `name`) fields: (name, original
/// file name, bytes).
pub(crate) async fn read_upload(form: &mut Multipart, allow_name: bool) -> ApiResult<(Option<String>, Option<String>, bytes::Bytes)> {
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
            Some("name") if allow_name => name = Some(field.text().await.map_err(|e| ApiError::field("name", e.body_text()))?.trim().to_owned()),
            Some("file") => {
                let original = field.file_name().map(str::to_owned);
                let data = field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::field("file", e.body_text())
                    }
                })?;
                file = Some((original, data));
            }
            Some(other) => {
                let expected = if allow_name { "file, name" } else { "file" };
                return Err(ApiError::field(other, format!("unknown field (expected {expected})")));
            }
            None => return Err(ApiError::bad_request("multipart field without a name")),
        }
    }
    let Some((original, data)) = file else { return Err(ApiError::field("file", "is required")) };
    Ok((name, original, data))
}

/// A prompt as the library lists it: an upload (`custom`, numeric id) or one of the default
/// prompts shipped in the binary (`system`, id `system:<name>`, cannot be deleted). A custom
/// prompt with a system prompt's name replaces it where it is played.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PromptItem {
    /// A number for uploads, `system:<name>` for the default prompts.
    #[schema(value_type = String)]
    pub id: serde_json::Value,
    /// What flows and entities refer to (`greeting_file`).
    pub name: String,
    /// system | custom
    pub kind: &'static str,
    pub original_name: Option<String>,
    pub sample_rate: i64,
    pub channels: i64,
    pub bits_per_sample: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub created_at: Option<store::Timestamp>,
}

impl From<Prompt> for PromptItem {
    fn from(p: Prompt) -> Self {
        PromptItem {
            id: serde_json::Value::from(p.id),
            name: p.name,
            kind: "custom",
            original_name: p.original_name,
            sample_rate: p.sample_rate,
            channels: p.channels,
            bits_per_sample: p.bits_per_sample,
            duration_ms: p.duration_ms,
            size_bytes: p.size_bytes,
            created_at: Some(p.created_at),
        }
    }
}

/// The default prompts, described once from the embedded files (the binary extracts them to
/// `<data-dir>/prompts/system` at start).
fn system_prompts() -> &'static [PromptItem] {
    static SYSTEM: std::sync::OnceLock<Vec<PromptItem>> = std::sync::OnceLock::new();
    SYSTEM.get_or_init(|| {
        let mut v: Vec<PromptItem> = media::prompts::embedded()
            .iter()
            .filter_map(|(name, bytes)| {
                let info = inspect_wav(bytes).ok()?;
                Some(PromptItem {
                    id: serde_json::Value::from(format!("{SYSTEM_ID_PREFIX}{name}")),
                    name: (*name).to_owned(),
                    kind: "system",
                    original_name: None,
                    sample_rate: i64::from(info.sample_rate),
                    channels: i64::from(info.channels),
                    bits_per_sample: i64::from(info.bits_per_sample),
                    duration_ms: info.duration_ms as i64,
                    size_bytes: info.size_bytes as i64,
                    created_at: None,
                })
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    })
}

const SYSTEM_ID_PREFIX: &str = "system:";

/// Which prompts a list shows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PromptQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// system | custom (both when absent)
    #[param(value_type = Option<String>, pattern = "^(system|custom)$")]
    pub kind: Option<String>,
}

fn data_path(state: &AppState, rel: &str) -> PathBuf {
    state.config().data_dir.join(rel)
}

#[utoipa::path(get, path = "/api/v1/prompts", tag = "prompts", params(PromptQuery), responses((status = 200, body = inline(List<PromptItem>))))]
pub(crate) async fn list_prompts(State(state): State<AppState>, Query(q): Query<PromptQuery>) -> ApiResult<List<PromptItem>> {
    let page = PageQuery { limit: q.limit, offset: q.offset }.page()?;
    let (system, custom) = match q.kind.as_deref() {
        None => (true, true),
        Some("system") => (true, false),
        Some("custom") => (false, true),
        Some(_) => return Err(ApiError::field("kind", "must be system or custom")),
    };
    // the system prompts first, then the uploads, as one list
    let sys: &[PromptItem] = if system { system_prompts() } else { &[] };
    let n_sys = sys.len() as i64;
    let mut data: Vec<PromptItem> = sys.iter().skip(page.offset.min(n_sys) as usize).take(page.limit.max(0) as usize).cloned().collect();
    let mut total = n_sys;
    if custom {
        let want = page.limit - data.len() as i64;
        let offset = (page.offset - n_sys).max(0);
        let p = state.store().prompts().list(store::Page::new(want.max(1), offset)).await?;
        total += p.total;
        if want > 0 {
            data.extend(p.items.into_iter().map(PromptItem::from));
        }
    }
    Ok(List { data, meta: ListMeta { total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(post, path = "/api/v1/prompts", tag = "prompts",
    request_body(content_type = "multipart/form-data", description = "fields: file (WAV), name (optional; letters, digits, _ and -)"),
    responses((status = 201, body = inline(Data<Prompt>)), (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn upload_prompt(State(state): State<AppState>, caller: Caller, mut form: Multipart) -> ApiResult<Created<PromptItem>> {
    let (name, original, data) = read_upload(&mut form, true).await?;
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
    let (rel, info) = ingest_prompt(&state.config().data_dir, &name, data).await?;
    let new = NewPrompt {
        name: name.clone(),
        file_path: rel.clone(),
        original_name: original.map(|o| o.chars().take(255).collect()),
        sample_rate: i64::from(info.sample_rate),
        channels: i64::from(info.channels),
        bits_per_sample: i64::from(info.bits_per_sample),
        duration_ms: info.duration_ms as i64,
        size_bytes: info.size_bytes as i64,
    };
    let result = async {
        let mut tx = state.store().begin().await?;
        let p = tx.prompts().insert(&new).await?;
        tx.audit(&caller.actor(), "create", "prompt", Some(&p.id.to_string()), None, Some(&serde_json::to_value(&p).unwrap_or_default())).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(p)
    }
    .await;
    match result {
        Ok(p) => Ok(Created(p.into())),
        Err(e) => {
            let _ = tokio::fs::remove_file(data_path(&state, &rel)).await;
            Err(e)
        }
    }
}

/// A prompt id of a route: an upload's number or `system:<name>`.
enum PromptId {
    Custom(i64),
    System(&'static PromptItem),
}

fn prompt_id(id: &str) -> ApiResult<PromptId> {
    if let Some(name) = id.strip_prefix(SYSTEM_ID_PREFIX) {
        return system_prompts().iter().find(|p| p.name == name).map(PromptId::System).ok_or(ApiError::NotFound);
    }
    id.parse().map(PromptId::Custom).map_err(|_| ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/prompts/{id}", tag = "prompts", params(("id" = String, Path, description = "a number, or system:<name>")),
    responses((status = 200, body = inline(Data<PromptItem>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_prompt(State(state): State<AppState>, PathParams(id): PathParams<String>) -> ApiResult<Data<PromptItem>> {
    match prompt_id(&id)? {
        PromptId::System(p) => Ok(Data::new(p.clone())),
        PromptId::Custom(id) => state.store().prompts().get(id).await?.map(|p| Data::new(p.into())).ok_or(ApiError::NotFound),
    }
}

#[utoipa::path(get, path = "/api/v1/prompts/{id}/audio", tag = "prompts", params(("id" = String, Path, description = "a number, or system:<name>")),
    responses((status = 200, description = "the WAV file (byte ranges accepted)", content_type = "audio/wav"), (status = 206, description = "a byte range"),
        (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn prompt_audio(State(state): State<AppState>, PathParams(id): PathParams<String>, headers: HeaderMap) -> ApiResult<Response> {
    let (path, name) = match prompt_id(&id)? {
        PromptId::System(p) => {
            let path = state.config().data_dir.join("prompts/system").join(format!("{}.wav", p.name));
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                // not extracted (a data dir the binary could not write): the embedded copy
                let bytes = media::prompts::embedded_wav(&p.name).ok_or(ApiError::NotFound)?;
                return Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response());
            }
            (path, p.name.clone())
        }
        PromptId::Custom(id) => {
            let p = state.store().prompts().get(id).await?.ok_or(ApiError::NotFound)?;
            (data_path(&state, &p.file_path), p.name)
        }
    };
    files::serve(&path, "audio/wav", Some(&format!("{name}.wav")), &headers).await
}

#[utoipa::path(delete, path = "/api/v1/prompts/{id}", tag = "prompts", params(("id" = String, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 403, body = crate::error::ErrorEnvelope, description = "a system prompt"),
        (status = 404, body = crate::error::ErrorEnvelope), (status = 409, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_prompt(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<String>) -> ApiResult<Data<Deleted>> {
    let id = match prompt_id(&id)? {
        PromptId::System(_) => return Err(ApiError::Forbidden("the default prompts ship with FlowPBX and cannot be deleted")),
        PromptId::Custom(id) => id,
    };
    let mut tx = state.store().begin().await?;
    let refs = tx.references().to(ResourceKind::Prompt, id).await?;
    if !refs.is_empty() {
        return Err(ApiError::Conflict { message: crate::resources::in_use_message("prompt", &refs), references: refs });
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
        wav_with(samples, 8000, 1)
    }

    fn wav_with(frames: usize, rate: u32, channels: u16) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
        for i in 0..frames * usize::from(channels) {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap();
        c.into_inner()
    }

    #[test]
    fn wav_checks() {
        let w = wav(8000);
        let info = inspect_wav(&w).unwrap();
        assert_eq!(info, AudioInfo { sample_rate: 8000, channels: 1, bits_per_sample: 16, duration_ms: 1000, size_bytes: w.len() as u64 });
        assert!(inspect_wav(b"RIFF....WAVEfmt nonsense").is_err());
        let w = wav(8000);
        assert!(inspect_wav(&w[..w.len() / 2]).is_err(), "truncated data is refused");
        assert!(inspect_wav(&wav(0)).is_err());
    }

    #[tokio::test]
    async fn uploads_are_converted_to_8k_mono() {
        let (bytes, info) = convert_upload(wav_with(44_100 * 2, 44_100, 2).into()).await.unwrap();
        assert_eq!((info.sample_rate, info.channels, info.bits_per_sample), (8000, 1, 16));
        assert!((1990..=2010).contains(&info.duration_ms), "{info:?}");
        assert_eq!(info.size_bytes, bytes.len() as u64);
        let e = convert_upload(bytes::Bytes::from_static(b"RIFF\x10\0\0\0WAVEjunk")).await.unwrap_err();
        assert!(matches!(e, ApiError::Validation(ref d) if d[0].field == "file"), "{e:?}");
    }

    #[test]
    fn system_prompts_are_listed() {
        let sys = system_prompts();
        assert!(sys.iter().any(|p| p.name == "welcome" && p.kind == "system" && p.id == "system:welcome"));
        assert!(matches!(prompt_id("system:welcome"), Ok(PromptId::System(_))));
        assert!(matches!(prompt_id("12"), Ok(PromptId::Custom(12))));
        assert!(prompt_id("system:nope").is_err());
    }
}
