//! `ApiError`: every failure of a request, rendered as the JSON error envelope
//! `{"error": {"code", "message", "details": [{"field", "message"}]}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::{Reference, StoreError};
use utoipa::ToSchema;

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field ("extension", "members[2]", "flow_data.nodes[0].id")
    pub field: String,
    pub message: String,
}

/// The error envelope's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// machine-readable: bad_request, validation_failed, unauthorized, forbidden, not_found,
    /// conflict, payload_too_large, unsupported_media_type, misdirected_request, too_many_requests,
    /// unavailable, internal
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
    /// For a 409 on delete: what still refers to the entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<Reference>>,
    /// For `flow_invalid` (publishing a flow with errors): every problem the validator found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<crate::flows_engine::ProblemView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// Everything a handler can fail with. Internal errors are logged and reported to the client
/// without their details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, details: Vec<FieldError> },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("authentication required")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { message: String, references: Vec<Reference> },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64, message: &'static str },
    /// A `Host` this server does not answer to (DNS rebinding); 421.
    #[error("{0}")]
    MisdirectedRequest(&'static str),
    /// A component the request needs is not running (the PBX, for live data); 503.
    #[error("{0}")]
    Unavailable(String),
    /// A flow graph with errors; 422 `flow_invalid` with `error.problems`.
    #[error("{message}")]
    FlowInvalid { message: String, problems: Vec<crate::flows_engine::ProblemView> },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest { message: message.into(), details: Vec::new() }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::FlowInvalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(self) -> ErrorBody {
        let mut flow_problems = None;
        let (code, message, details, references) = match self {
            ApiError::BadRequest { message, details } => ("bad_request", message, details, None),
            ApiError::Validation(details) => {
                let message = match details.first() {
                    Some(d) if details.len() == 1 => format!("{}: {}", d.field, d.message),
                    _ => format!("{} values are not valid", details.len()),
                };
                ("validation_failed", message, details, None)
            }
            ApiError::Unauthorized(m) => ("unauthorized", m.to_owned(), vec![], None),
            ApiError::Forbidden(m) => ("forbidden", m.to_owned(), vec![], None),
            ApiError::NotFound => ("not_found", "not found".to_owned(), vec![], None),
            ApiError::Conflict { message, references } => {
                let details = references
                    .iter()
                    .map(|r| FieldError {
                        field: format!("{}:{}", r.entity_type, r.entity_id),
                        message: format!("{} “{}” uses it {}", r.entity_type.replace('_', " "), r.name, via_words(&r.via)),
                    })
                    .collect();
                let refs = if references.is_empty() { None } else { Some(references) };
                ("conflict", message, details, refs)
            }
            ApiError::MethodNotAllowed => ("method_not_allowed", "method not allowed".to_owned(), vec![], None),
            ApiError::PayloadTooLarge => ("payload_too_large", "request body too large".to_owned(), vec![], None),
            ApiError::UnsupportedMediaType(m) => ("unsupported_media_type", m.to_owned(), vec![], None),
            ApiError::TooManyRequests { message, .. } => ("too_many_requests", message.to_owned(), vec![], None),
            ApiError::MisdirectedRequest(m) => ("misdirected_request", m.to_owned(), vec![], None),
            ApiError::Unavailable(m) => ("unavailable", m, vec![], None),
            ApiError::FlowInvalid { message, problems } => {
                flow_problems = Some(problems);
                ("flow_invalid", message, vec![], None)
            }
            ApiError::Internal(_) => ("internal", "the server had a problem; its log says what".to_owned(), vec![], None),
        };
        ErrorBody { code, message, details, references, problems: flow_problems }
    }
}

/// Where a reference uses an entity, in words (`members` → "as a member", `node:n3` → "in
/// its draft"): the node id of a flow means nothing to the person deleting.
pub(crate) fn via_words(via: &str) -> String {
    if let Some(rest) = via.strip_prefix("published:v") {
        let version = rest.split(':').next().unwrap_or("");
        return format!("in its live version {version}");
    }
    if via.starts_with("node:") {
        return "in its draft".into();
    }
    match via {
        "members" => "as a member".into(),
        "notify_extension_id" => "for its message-waiting lamp".into(),
        "trunk_id" => "as its trunk".into(),
        "flow_id" => "to route its calls".into(),
        "greeting_file" => "as its greeting".into(),
        "trunk_ids" => "among its trunks".into(),
        "extension_ids" => "among the extensions it serves".into(),
        other => format!("({})", other.replace('_', " ")),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict { column } => {
                let field = column.rsplit('.').next().unwrap_or(&column).to_owned();
                ApiError::field(field, "is already in use")
            }
            StoreError::ForeignKey => {
                ApiError::Conflict { message: "the change refers to a missing entity or removes one still in use".into(), references: vec![] }
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<pbx::Error> for ApiError {
    fn from(e: pbx::Error) -> Self {
        match e {
            pbx::Error::NotFound => ApiError::NotFound,
            pbx::Error::Invalid(problems) => ApiError::Validation(problems.into_iter().map(|p| FieldError { field: p.field, message: p.message }).collect()),
            pbx::Error::FlowInvalid(problems) => {
                let n = problems.iter().filter(|p| p.severity == flow::validate::Severity::Error).count();
                ApiError::FlowInvalid {
                    message: format!("the flow has {n} error(s); nothing was changed"),
                    problems: problems.iter().map(crate::flows_engine::ProblemView::from).collect(),
                }
            }
            pbx::Error::Conflict { message, references } => ApiError::Conflict { message, references },
            pbx::Error::Unavailable(m) => ApiError::Unavailable(m),
            pbx::Error::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = match &self {
            ApiError::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "request failed");
        }
        let mut resp = (status, axum::Json(ErrorEnvelope { error: self.body() })).into_response();
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
