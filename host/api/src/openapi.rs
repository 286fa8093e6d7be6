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
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "admin session from POST /api/v1/auth/login; state-changing requests also need the X-CSRF-Token header",
            ))),
        );
        c.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "an API token (POST /api/v1/api-tokens, from a signed-in session). Its scope bounds what it reaches: \
                         read: GET only; write: entity changes too; admin: settings, tokens, plugins, the audit log and the system \
                         status too. No token may create tokens, upload plugins, grant plugin capabilities, change a password or \
                         list and end sessions (403). Tokens expire (90 days unless created with another lifetime, at most 365).",
                    ))
                    .build(),
            ),
        );
    }
}

/// What every operation can answer besides its own responses, and the bounds the handlers
/// check, so that the document says what the server does:
/// - public operations (health, first-boot setup, login) need no credentials: `security: [{}]`;
/// - every other operation can answer 401 (no or a bad session or token) and 403 (beyond an
///   API token's scope, a session-only operation, or a state-changing one without the CSRF
///   token);
/// - every operation can answer 421 (a `Host` the server does not answer to);
/// - every operation can answer 400 (a malformed path, query or body);
/// - every operation can answer 422 (a parameter or a field fails validation), and one with a
///   request body 413 (too large) and 415 (not JSON, or not the upload type);
/// - `limit` is 1..=100 and `offset` >= 0 wherever a list takes them, and every 64-bit
///   integer parameter says so.
///
/// Every error has the `ErrorEnvelope` body.
struct Conventions;

const PUBLIC: &[(&str, &str)] = &[("/api/v1/health", "get"), ("/api/v1/setup", "get"), ("/api/v1/setup", "post"), ("/api/v1/auth/login", "post")];

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterIn};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};

        fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build())
                    .build(),
            )
        }
        fn add(op: &mut Operation, code: &str, description: &str) {
            op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(description));
        }
        fn bound(op: &mut Operation) {
            use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
            for p in op.parameters.iter_mut().flatten() {
                let Some(RefOr::T(Schema::Object(o))) = &mut p.schema else { continue };
                match (&p.parameter_in, p.name.as_str()) {
                    (ParameterIn::Query, "limit") => {
                        o.minimum = Some(utoipa::Number::Int(1));
                        o.maximum = Some(utoipa::Number::Int(100));
                    }
                    (ParameterIn::Query, "offset") => {
                        o.minimum = Some(utoipa::Number::Int(0));
                        o.maximum = Some(utoipa::Number::Int(i64::MAX as isize));
                    }
                    // an id or a number in a path or query is a 64-bit signed integer
                    _ if o.format == Some(SchemaFormat::KnownFormat(KnownFormat::Int64)) => {
                        o.minimum.get_or_insert(utoipa::Number::Int(i64::MIN as isize));
                        o.maximum.get_or_insert(utoipa::Number::Int(i64::MAX as isize));
                    }
                    _ => {}
                }
            }
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [("get", &mut item.get), ("put", &mut item.put), ("post", &mut item.post), ("delete", &mut item.delete), ("patch", &mut item.patch)];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                if PUBLIC.contains(&(path.as_str(), method)) {
                    op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::default()]);
                } else {
                    add(op, "401", "not signed in: no or an expired session, or a bad API token");
                    add(
                        op,
                        "403",
                        if method == "get" {
                            "forbidden: beyond the API token's scope, or a session-only operation"
                        } else {
                            "forbidden: a state-changing request without the X-CSRF-Token header, beyond the API token's scope, or a session-only operation"
                        },
                    );
                }
                add(op, "400", "a malformed request: path, query or body");
                add(op, "421", "the Host header names a host this server does not answer to (see the hostname setting)");
                add(op, "422", "a parameter or field failed validation (details name it)");
                if op.request_body.is_some() {
                    add(op, "413", "the body is too large");
                    add(op, "415", "the body is not of the expected media type");
                }
                bound(op);
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "FlowPBX API", description = "REST API of FlowPBX. Every response is {\"data\": …} (lists add \"meta\") or {\"error\": {\"code\", \"message\", \"details\"}}."),
    paths(
        crate::auth::setup_status, crate::auth::setup, crate::auth::login, crate::auth::logout, crate::auth::me,
        crate::auth::list_tokens, crate::auth::create_token, crate::auth::revoke_token,
        crate::auth::change_password, crate::auth::list_sessions, crate::auth::end_other_sessions, crate::auth::end_session,
        crate::entities::extension_registrations, crate::entities::extension_subscriptions, crate::entities::flow_versions, crate::entities::flow_version,
        crate::cdrs::list_cdrs, crate::cdrs::get_cdr, crate::cdrs::export_cdrs, crate::cdrs::sip_messages,
        crate::prompts::list_prompts, crate::prompts::upload_prompt, crate::prompts::get_prompt, crate::prompts::prompt_audio, crate::prompts::delete_prompt,
        crate::settings::get_settings, crate::settings::put_settings,
        crate::system::health, crate::system::status, crate::system::audit_log, crate::system::drain, crate::system::list_backups, crate::system::create_backup,
        crate::transport::get_tls, crate::transport::renew,
        crate::calls::list_active, crate::calls::hangup, crate::calls::dashboard_stats,
        crate::trunks::trunk_status, crate::trunks::test_trunk, crate::route_order::order_outbound_routes,
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
        doc.merge(crate::flow_versions::VersionsDoc::openapi());
        doc.merge(crate::recordings::RecordingsDoc::openapi());
        doc.merge(crate::webhooks::WebhooksDoc::openapi());
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        crate::resources::document(&mut doc);
        Conventions.modify(&mut doc);
        doc
    })
}

async fn openapi_json() -> Response {
    axum::Json(document()).into_response()
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}
