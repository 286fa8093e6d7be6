//! The OpenAPI document, generated from the handlers' annotations and the generic resources,
//! served at `/api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::SESSION_COOKIE,
            "admin session from POST /api/v1/auth/login; state-changing requests also need the X-CSRF-Token header",
        ))));
        c.add_security_scheme("api_token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "FlowPBX API", description = "REST API of FlowPBX. Every response is {\"data\": …} (lists add \"meta\") or {\"error\": {\"code\", \"message\", \"details\"}}."),
    paths(
        crate::auth::setup_status, crate::auth::setup, crate::auth::login, crate::auth::logout, crate::auth::me,
        crate::auth::list_tokens, crate::auth::create_token, crate::auth::revoke_token,
        crate::entities::extension_registrations, crate::entities::flow_versions, crate::entities::flow_version,
        crate::cdrs::list_cdrs, crate::cdrs::get_cdr, crate::cdrs::export_cdrs,
        crate::prompts::list_prompts, crate::prompts::upload_prompt, crate::prompts::get_prompt, crate::prompts::prompt_audio, crate::prompts::delete_prompt,
        crate::settings::get_settings, crate::settings::put_settings,
        crate::system::health, crate::system::status, crate::system::audit_log,
        crate::calls::list_active, crate::calls::hangup, crate::calls::dashboard_stats,
        crate::voicemail::list_messages, crate::voicemail::set_read, crate::voicemail::delete_message,
        crate::voicemail::message_audio, crate::voicemail::upload_greeting,
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::extract::ListMeta, crate::extract::Deleted)),
    modifiers(&Security),
    security(("session" = []), ("api_token" = [])),
)]
struct ApiDoc;

/// The whole document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(crate::flows_engine::FlowsDoc::openapi());
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        crate::resources::document(&mut doc);
        doc
    })
}

async fn openapi_json() -> Response {
    axum::Json(document()).into_response()
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}
