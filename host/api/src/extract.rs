//! Extractors and response wrappers that speak the envelope: a JSON body, a query string or a
//! path that does not parse is answered with a 4xx envelope naming the field, never with
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, FieldError};

/// The largest JSON body accepted (uploads have their own limit).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Turns a serde_path_to_error failure into a field-naming error.
pub(crate) fn path_error(path: &serde_path_to_error::Path, inner: &str) -> FieldError {
    let base = path.to_string();
    let base = if base == "." || base == "?" { String::new() } else { base };
    // unknown/missing fields are reported on the parent; name the field itself
    let named = ["unknown field `", "missing field `", "duplicate field `"].iter().find_map(|p| inner.strip_prefix(p)).and_then(|rest| rest.split('`').next());
    let field = match named {
        Some(name) if base.is_empty() => name.to_owned(),
        Some(name) if base == name || base.ends_with(&format!(".{name}")) => base,
        Some(name) => format!("{base}.{name}"),
        None if base.is_empty() => "body".to_owned(),
        None => base,
    };
    // serde_json appends " at line 1 column 10"; keep the message short
    let message = plain_words(inner.split(" at line ").next().unwrap_or(inner));
    FieldError { field, message }
}

/// What a value must be, from serde's `expected …` (`u16`, `a string`, `one of `a`, `b``).
fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    let listed = |s: &str| s.split(['`', ',']).map(str::trim).filter(|w| !w.is_empty() && *w != "or").collect::<Vec<_>>().join(", ");
    if let Some(rest) = e.strip_prefix("one of ") {
        return format!("must be one of: {}", listed(rest));
    }
    if e.starts_with('`') {
        return format!("must be one of: {}", listed(e));
    }
    match e {
        "u8" => "must be a whole number from 0 to 255".into(),
        "u16" => "must be a whole number from 0 to 65535".into(),
        "u32" | "u64" | "usize" => "must be a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "must be a whole number".into(),
        "f32" | "f64" => "must be a number".into(),
        "a boolean" => "must be true or false".into(),
        "a string" | "a borrowed string" | "a character" => "must be text".into(),
        "a sequence" | "a list" => "must be a list".into(),
        e if e.starts_with("struct ") || e.starts_with("a map") || e.contains("object") => "must be an object".into(),
        e if e.starts_with("a ") || e.starts_with("an ") => format!("must be {e}"),
        _ => "has a value of the wrong kind".into(),
    }
}

/// serde's messages in words for the person who filled the form: `invalid value: integer
/// `-5`, expected u64` → "must be a whole number, 0 or more"; `unknown variant `loud`,
/// expected one of `off`, `full`` → "must be one of: off, full". A message of our own (a
/// custom deserialiser's) is kept.
pub(crate) fn plain_words(inner: &str) -> String {
    if inner.starts_with("unknown field `") {
        return "is not a field here".into();
    }
    if inner.starts_with("missing field `") {
        return "is required".into();
    }
    if inner.starts_with("duplicate field `") {
        return "is given twice".into();
    }
    if let Some(rest) = inner.strip_prefix("unknown variant `") {
        return match rest.split_once(", expected ") {
            Some((_, expected)) => expected_words(expected),
            None => "is not one of the choices".into(),
        };
    }
    if let Some(rest) = inner.strip_prefix("invalid type: ").or_else(|| inner.strip_prefix("invalid value: ")) {
        return match rest.rsplit_once(", expected ") {
            Some(("null", expected)) => format!("{} (it is empty)", expected_words(expected)),
            Some((_, expected)) => expected_words(expected),
            None => "is not a valid value".into(),
        };
    }
    if let Some(rest) = inner.strip_prefix("invalid length ") {
        return match rest.split_once(", expected ") {
            Some((_, expected)) => format!("must have {expected}"),
            None => "has the wrong number of entries".into(),
        };
    }
    inner.to_owned()
}

/// serde_json's syntax errors in words: what is wrong and where.
fn syntax_words(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "it ends too early",
        _ => "it is not valid JSON",
    };
    format!("The request could not be read: {what} (line {}, column {}).", e.line(), e.column())
}

/// A JSON request body: `Content-Type: application/json`, at most [`MAX_JSON_BODY`] bytes,
/// deserialised into `T` (which should `deny_unknown_fields`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))) {
            return Err(ApiError::UnsupportedMediaType("expected Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request(rej.body_text())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Deserialises a JSON object, naming the field that is wrong. A number with a zero
/// fraction (`30.0`) is an integer, as JSON Schema has it, wherever an integer is expected.
/// Whether an optional JSON body was left out: empty, whitespace, or a JSON `null`.
pub fn is_absent_body(bytes: &[u8]) -> bool {
    let t = bytes.trim_ascii();
    t.is_empty() || t == b"null"
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|inner| {
        let message = syntax_words(&inner);
        ApiError::BadRequest { message: message.clone(), details: vec![FieldError { field: "body".into(), message }] }
    })?;
    // every request body of the API is an object; serde would read an array as a struct's
    // fields in order
    if doc.is_array() {
        return Err(ApiError::Validation(vec![FieldError { field: "body".into(), message: "must be a JSON object, not an array".into() }]));
    }
    integral_floats(&mut doc);
    serde_path_to_error::deserialize::<_, T>(doc).map_err(|e| ApiError::Validation(vec![path_error(e.path(), &e.inner().to_string())]))
}

/// Turns every float with a zero fraction that an i64 holds exactly into an integer.
fn integral_floats(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= 9_007_199_254_740_992.0
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats),
        Value::Object(o) => o.values_mut().for_each(integral_floats),
        _ => {}
    }
}

/// A query string deserialised into `T`; a bad value is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let fe = path_error(e.path(), &e.inner().to_string());
            ApiError::BadRequest { message: format!("invalid query parameter {}: {}", fe.field, fe.message), details: vec![fe] }
        })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// Path parameters; a malformed id is a 400 naming the parameter.
#[derive(Debug, Clone, Copy)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParams(v)),
            Err(rej) => Err(ApiError::BadRequest { message: rej.body_text(), details: vec![FieldError { field: "path".into(), message: rej.body_text() }] }),
        }
    }
}

/// `{"data": T}` with 200.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

impl<T> Data<T> {
    pub fn new(data: T) -> Self {
        Self { data }
    }
}

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

/// `{"data": T}` with 201.
#[derive(Debug)]
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, axum::Json(Data { data: self.0 })).into_response()
    }
}

/// Pagination metadata of a list.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ListMeta {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `{"data": [T], "meta": {"total", "limit", "offset"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub meta: ListMeta,
}

impl<T: Serialize> IntoResponse for List<T> {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

/// `?limit=&offset=`: default 20, limit 1..=100, offset >= 0 (out of range: 400).
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=100, default 20
    pub limit: Option<i64>,
    /// default 0
    pub offset: Option<i64>,
}

impl PageQuery {
    pub fn page(&self) -> Result<store::Page, ApiError> {
        let limit = self.limit.unwrap_or(store::Page::DEFAULT_LIMIT);
        let offset = self.offset.unwrap_or(0);
        let mut details = Vec::new();
        if !(1..=store::Page::MAX_LIMIT).contains(&limit) {
            details.push(FieldError { field: "limit".into(), message: format!("must be between 1 and {}", store::Page::MAX_LIMIT) });
        }
        if offset < 0 {
            details.push(FieldError { field: "offset".into(), message: "must not be negative".into() });
        }
        if !details.is_empty() {
            return Err(ApiError::BadRequest { message: "invalid pagination".into(), details });
        }
        Ok(store::Page::new(limit, offset))
    }
}

/// The result of a delete: `{"data": {"id": 3, "deleted": true}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: i64,
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u8,
        b: Option<Vec<u8>>,
    }

    fn field_of(r: Result<T, ApiError>) -> (u16, String) {
        match r {
            Err(ApiError::Validation(d)) => (422, d[0].field.clone()),
            Err(ApiError::BadRequest { details, .. }) => (400, details[0].field.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_optional_body_is_absent_when_empty_blank_or_null() {
        for b in [&b""[..], b"  \r\n", b"null", b" null\n"] {
            assert!(is_absent_body(b), "{b:?}");
        }
        for b in [&b"{}"[..], b"nul", b"[null]", b"\"null\""] {
            assert!(!is_absent_body(b), "{b:?}");
        }
    }

    #[test]
    fn serde_messages_become_words() {
        for (serde, words) in [
            ("invalid value: integer `-5`, expected u64", "must be a whole number, 0 or more"),
            ("invalid value: integer `70000`, expected u16", "must be a whole number from 0 to 65535"),
            ("invalid type: string \"x\", expected i64", "must be a whole number"),
            ("invalid type: null, expected a string", "must be text (it is empty)"),
            ("invalid type: integer `3`, expected a boolean", "must be true or false"),
            ("invalid type: map, expected a sequence", "must be a list"),
            ("unknown variant `loud`, expected one of `off`, `headers`, `full`", "must be one of: off, headers, full"),
            ("unknown variant `x`, expected `a` or `b`", "must be one of: a, b"),
            ("unknown field `colour`, expected one of `a`, `b`", "is not a field here"),
            ("missing field `name`", "is required"),
            ("entity_id is not an integer", "entity_id is not an integer"),
        ] {
            assert_eq!(plain_words(serde), words, "{serde}");
        }
        // through the extractor: no serde jargon reaches the envelope
        let Err(ApiError::Validation(d)) = parse_json::<T>(br#"{"a": -5}"#) else { panic!() };
        assert_eq!((d[0].field.as_str(), d[0].message.as_str()), ("a", "must be a whole number from 0 to 255"));
        let Err(ApiError::BadRequest { message, details }) = parse_json::<T>(b"{\"a\": ") else { panic!() };
        assert!(message.starts_with("The request could not be read: it ends too early"), "{message}");
        assert_eq!(details[0].field, "body");
    }

    #[test]
    fn errors_name_fields() {
        assert_eq!(field_of(parse_json(br#"{"a": 1, "zz": 2}"#)), (422, "zz".into()));
        assert_eq!(field_of(parse_json(br#"{"a": "x"}"#)), (422, "a".into()));
        assert_eq!(field_of(parse_json(br#"{"a": 1, "b": [1, "x"]}"#)), (422, "b[1]".into()));
        assert_eq!(field_of(parse_json(br#"{}"#)), (422, "a".into()));
        assert_eq!(field_of(parse_json(br#"{"a": 1"#)), (400, "body".into()));
        assert_eq!(field_of(parse_json(br#"[1]"#)), (422, "body".into()));
    }

    #[test]
    fn a_float_with_a_zero_fraction_is_an_integer() {
        let t: T = parse_json(br#"{"a": 30.0, "b": [1.0, 2]}"#).unwrap();
        assert_eq!((t.a, t.b), (30, Some(vec![1, 2])));
        assert_eq!(field_of(parse_json(br#"{"a": 30.5}"#)), (422, "a".into()));
        assert_eq!(field_of(parse_json(br#"{"a": 300.0}"#)), (422, "a".into()));
        // a float field keeps taking integers and floats
        let v: serde_json::Value = parse_json(br#"{"x": 1.5, "y": 2.0}"#).unwrap();
        assert_eq!(v, serde_json::json!({"x": 1.5, "y": 2}));
    }
}
