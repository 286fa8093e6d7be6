//! A voicemail box's messages (list, mark read/unread, delete, audio with byte ranges) and
//! its custom greeting upload.
//!
//! The greeting is a prompt like any other (`greeting_file` names a prompt; the voicemail
//! node plays it by name): the upload is converted by the media crate and stored as the
//! custom prompt `vm-<box id>-greeting`, replacing the previous one, and the box switches to
//! `greeting_type = custom`.

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use store::{GreetingType, NewPrompt, SecretUpdate, VoicemailMessage};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Data, Deleted, List, ListMeta, PageQuery, PathParams, Query};
use crate::views::VoicemailBoxView;
use crate::{files, prompts, AppState};

/// The prompt name a box's uploaded greeting is stored as.
pub(crate) fn greeting_prompt_name(box_id: i64) -> String {
    format!("vm-{box_id}-greeting")
}

async fn message_of(state: &AppState, box_id: i64, msg_id: i64) -> ApiResult<VoicemailMessage> {
    state.store().voicemail_boxes().get(box_id).await?.ok_or(ApiError::NotFound)?;
    match state.store().voicemail_messages().get(msg_id).await? {
        Some(m) if m.mailbox_id == box_id => Ok(m),
        _ => Err(ApiError::NotFound),
    }
}

#[utoipa::path(get, path = "/api/v1/voicemail-boxes/{id}/messages", tag = "voicemail-boxes", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = inline(List<VoicemailMessage>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn list_messages(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<List<VoicemailMessage>> {
    let page = q.page()?;
    state.store().voicemail_boxes().get(id).await?.ok_or(ApiError::NotFound)?;
    let p = state.store().voicemail_messages().list(id, page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

/// The body of `PUT …/read` (optional: no body marks the message read).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadState {
    pub read: bool,
}

#[utoipa::path(put, path = "/api/v1/voicemail-boxes/{id}/messages/{message_id}/read", tag = "voicemail-boxes",
    params(("id" = i64, Path), ("message_id" = i64, Path)), request_body(content = Option<ReadState>, description = "absent: mark read"),
    responses((status = 200, body = inline(Data<VoicemailMessage>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn set_read(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, msg)): PathParams<(i64, i64)>,
    body: bytes::Bytes,
) -> ApiResult<Data<VoicemailMessage>> {
    let read = if crate::extract::is_absent_body(&body) { true } else { crate::extract::parse_json::<ReadState>(&body)?.read };
    message_of(&state, id, msg).await?;
    state.store().voicemail_messages().set_read(msg, read).await?;
    let m = message_of(&state, id, msg).await?;
    let mut tx = state.store().begin().await?;
    let action = if read { "mark_read" } else { "mark_unread" };
    tx.audit(&caller.actor(), action, "voicemail_message", Some(&msg.to_string()), None, None).await?;
    tx.commit().await?;
    state.voicemail_changed().await;
    Ok(Data::new(m))
}

#[utoipa::path(delete, path = "/api/v1/voicemail-boxes/{id}/messages/{message_id}", tag = "voicemail-boxes",
    params(("id" = i64, Path), ("message_id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_message(State(state): State<AppState>, caller: Caller, PathParams((id, msg)): PathParams<(i64, i64)>) -> ApiResult<Data<Deleted>> {
    message_of(&state, id, msg).await?;
    let mut tx = state.store().begin().await?;
    let m = tx.voicemail_messages().delete(msg).await?.ok_or(ApiError::NotFound)?;
    tx.audit(&caller.actor(), "delete", "voicemail_message", Some(&msg.to_string()), Some(&serde_json::to_value(&m).unwrap_or_default()), None).await?;
    tx.commit().await?;
    state.voicemail_changed().await;
    if let Err(e) = tokio::fs::remove_file(state.config().data_dir.join(&m.file_path)).await {
        tracing::warn!(error = %e, file = %m.file_path, "could not remove a deleted voicemail message's file");
    }
    Ok(Data::new(Deleted { id: msg, deleted: true }))
}

#[utoipa::path(get, path = "/api/v1/voicemail-boxes/{id}/messages/{message_id}/audio", tag = "voicemail-boxes",
    params(("id" = i64, Path), ("message_id" = i64, Path)),
    responses((status = 200, description = "the WAV file (byte ranges accepted)", content_type = "audio/wav"), (status = 206, description = "a byte range"),
        (status = 404, body = crate::error::ErrorEnvelope), (status = 416, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn message_audio(State(state): State<AppState>, PathParams((id, msg)): PathParams<(i64, i64)>, headers: HeaderMap) -> ApiResult<Response> {
    let m = message_of(&state, id, msg).await?;
    files::serve(&state.config().data_dir.join(&m.file_path), "audio/wav", Some(&format!("voicemail-{id}-{msg}.wav")), &headers).await
}

#[utoipa::path(post, path = "/api/v1/voicemail-boxes/{id}/greeting", tag = "voicemail-boxes", params(("id" = i64, Path)),
    request_body(content_type = "multipart/form-data", description = "field: file (any readable WAV; converted to 8 kHz mono)"),
    responses((status = 200, body = inline(Data<VoicemailBoxView>), description = "the box, greeting_type custom, greeting_file the prompt's name"),
        (status = 404, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn upload_greeting(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    mut form: Multipart,
) -> ApiResult<Data<VoicemailBoxView>> {
    let current = state.store().voicemail_boxes().get(id).await?.ok_or(ApiError::NotFound)?;
    let (_, original, data) = prompts::read_upload(&mut form, false).await?;
    let name = greeting_prompt_name(id);
    let (rel, info) = prompts::ingest_prompt(&state.config().data_dir, &name, data).await?;
    let new = NewPrompt {
        name: name.clone(),
        file_path: rel,
        original_name: original.map(|o| o.chars().take(255).collect()),
        sample_rate: i64::from(info.sample_rate),
        channels: i64::from(info.channels),
        bits_per_sample: i64::from(info.bits_per_sample),
        duration_ms: info.duration_ms as i64,
        size_bytes: info.size_bytes as i64,
    };
    let mut fields = current.row.fields.clone();
    fields.greeting_file = Some(name.clone());
    fields.greeting_type = GreetingType::Custom;
    let mut tx = state.store().begin().await?;
    if let Some(old) = tx.prompts().get_by_name(&name).await? {
        tx.prompts().delete(old.id).await?;
    }
    let prompt = tx.prompts().insert(&new).await?;
    let updated = tx.voicemail_boxes().update(id, &fields, SecretUpdate::Keep).await?;
    tx.audit(
        &caller.actor(),
        "upload_greeting",
        "voicemail_box",
        Some(&id.to_string()),
        Some(&serde_json::to_value(&current).unwrap_or_default()),
        Some(&serde_json::json!({ "greeting_file": name, "prompt_id": prompt.id })),
    )
    .await?;
    tx.commit().await?;
    let view = crate::views::voicemail_boxes(&state, vec![updated]).await?.pop().ok_or_else(|| ApiError::internal("lost the box"))?;
    Ok(Data::new(view))
}

pub(crate) fn routes(max_upload: usize) -> Router<AppState> {
    Router::new()
        .route("/voicemail-boxes/{id}/messages", get(list_messages))
        .route("/voicemail-boxes/{id}/messages/{message_id}", axum::routing::delete(delete_message))
        .route("/voicemail-boxes/{id}/messages/{message_id}/read", put(set_read))
        .route("/voicemail-boxes/{id}/messages/{message_id}/audio", get(message_audio))
        .route("/voicemail-boxes/{id}/greeting", post(upload_greeting).layer(DefaultBodyLimit::max(max_upload)))
}
