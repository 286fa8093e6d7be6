//! Entities as the API shows them when the stored row is not all there is: live, read-only
//! fields from the running PBX and the store, added to lists, GET, create and update
//! (`Resource::view`). Request bodies never carry them (unknown fields are refused).

use serde::Serialize;
use store::{ConferenceBridge, Extension, Trunk, VoicemailBox};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::trunks;
use crate::AppState;

/// An extension with its live registration count.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtensionView {
    #[serde(flatten)]
    pub row: Extension,
    /// Live SIP contacts (registered devices) now, from the registrar.
    pub registration_count: usize,
}

/// A trunk with its live status.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkView {
    #[serde(flatten)]
    pub row: Trunk,
    /// registered | registering | failed | unregistered | unmonitored | disabled
    pub status: &'static str,
    /// Why, in words ("403 Forbidden", what is not monitored…).
    pub status_detail: Option<String>,
}

/// A voicemail box with its message counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoicemailBoxView {
    #[serde(flatten)]
    pub row: VoicemailBox,
    pub message_count: i64,
    pub unread_count: i64,
}

/// A conference bridge with the callers in it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConferenceView {
    #[serde(flatten)]
    pub row: ConferenceBridge,
    /// Callers in the bridge now. The PBX runs no conference mixer yet (the `call` crate
    /// bridges two parties only), so no call can be in a bridge: this is 0 until it does.
    pub participant_count: usize,
}

pub(crate) async fn extensions(state: &AppState, rows: Vec<Extension>) -> ApiResult<Vec<ExtensionView>> {
    let counts = crate::calls::registration_counts(state);
    Ok(rows
        .into_iter()
        .map(|row| {
            let registration_count = if counts.contains_key(&row.id) { crate::calls::registration_count(state, row.id) } else { 0 };
            ExtensionView { row, registration_count }
        })
        .collect())
}

pub(crate) async fn trunks(state: &AppState, rows: Vec<Trunk>) -> ApiResult<Vec<TrunkView>> {
    Ok(rows
        .into_iter()
        .map(|row| {
            let s = trunks::status_of(state, &row);
            TrunkView { row, status: s.status, status_detail: s.detail }
        })
        .collect())
}

pub(crate) async fn voicemail_boxes(state: &AppState, rows: Vec<VoicemailBox>) -> ApiResult<Vec<VoicemailBoxView>> {
    let counts = match rows.as_slice() {
        [one] => {
            let c = state.store().voicemail_messages().counts(one.row.id).await?;
            std::iter::once((one.row.id, c)).collect()
        }
        _ => state.store().voicemail_messages().counts_by_box().await?,
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let (message_count, unread_count) = counts.get(&row.row.id).copied().unwrap_or((0, 0));
            VoicemailBoxView { row, message_count, unread_count }
        })
        .collect())
}

pub(crate) async fn conferences(_state: &AppState, rows: Vec<ConferenceBridge>) -> ApiResult<Vec<ConferenceView>> {
    Ok(rows.into_iter().map(|row| ConferenceView { row, participant_count: 0 }).collect())
}
