//! What the API handlers share: Zoom's error body, query parameters, JSON bodies and times.

use axum::Json;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Zoom's error codes as the simulator uses them.
pub(crate) mod codes {
    /// Validation failed / invalid request (Zoom's generic 300), incl. an expired
    /// `next_page_token`.
    pub const INVALID: i64 = 300;
    /// Invalid or expired access token.
    pub const INVALID_TOKEN: i64 = 124;
    /// Rate limit reached.
    pub const RATE_LIMITED: i64 = 429;
    /// Patient or provider (a Zoom user) does not exist.
    pub const USER_NOT_FOUND: i64 = 1001;
    /// Visit does not exist.
    pub const VISIT_NOT_FOUND: i64 = 3001;
    /// The visit's status does not allow the request.
    pub const VISIT_STATE: i64 = 3000;
    /// Clinical note feature not enabled for this user.
    pub const NOTES_DISABLED: i64 = 30001;
    /// Resource access denied.
    pub const ACCESS_DENIED: i64 = 30007;
    /// Query user does not exist.
    pub const QUERY_USER_NOT_FOUND: i64 = 30008;
    /// Clinical note does not exist.
    pub const NOTE_NOT_FOUND: i64 = 30009;
    /// Failed to update note.
    pub const NOTE_UPDATE_FAILED: i64 = 30011;
}

/// An error answered as Zoom's JSON: `{"code", "message"[, "errors"]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: i64,
    message: String,
    errors: Vec<(String, String)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 400 / 300 "Validation Failed." naming the field.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: codes::INVALID,
            message: "Validation Failed.".into(),
            errors: vec![(field.to_owned(), message.into())],
        }
    }

    pub(crate) fn invalid_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID,
            "Request Body should be a valid JSON object.",
        )
    }

    pub(crate) fn visit_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::VISIT_NOT_FOUND,
            format!("Visit does not exist: {id}."),
        )
    }

    pub(crate) fn patient_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::USER_NOT_FOUND,
            format!("Patient does not exist: {id}."),
        )
    }

    pub(crate) fn provider_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::USER_NOT_FOUND,
            format!("User does not exist: {id}."),
        )
    }

    pub(crate) fn visit_state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::VISIT_STATE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
        }
        (self.status, Json(body)).into_response()
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// A JSON response with status.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(body) => (status, Json(body)).into_response(),
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, "Internal error.").into_response(),
    }
}

/// Query parameters; a repeated key keeps its last value, an empty value counts as absent.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(uri: &Uri) -> Self {
        Params(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// A meeting UUID from a query or path: decoded once more when it was double-encoded (as the
/// doc asks for UUIDs that start with `/` or contain `//`).
pub(crate) fn decode_meeting_id(raw: &str) -> String {
    if raw.contains('%') {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .unwrap_or_else(|_| raw.to_owned())
    } else {
        raw.to_owned()
    }
}

/// A JSON object body; an empty body is an empty object when `allow_empty`.
pub(crate) fn object_body(body: &Bytes, allow_empty: bool) -> Result<Map<String, Value>, ApiError> {
    if allow_empty && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::invalid_body()),
    }
}

/// `from`/`to` bounds: `yyyy-MM-dd'T'HH:mm:ss'Z'` (any RFC 3339 time) or a date, which means
/// its first (`from`) or last (`to`) second in UTC.
pub(crate) fn range_bound(params: &Params, key: &str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = params.get(key) else {
        return Ok(None);
    };
    if let Some(t) = super::data::parse_ts(raw) {
        return Ok(Some(t));
    }
    let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") else {
        return Err(ApiError::field(
            key,
            format!("Invalid {key}: use yyyy-MM-dd'T'HH:mm:ss'Z' or yyyy-MM-dd."),
        ));
    };
    let time = if end_of_day {
        NaiveTime::from_hms_opt(23, 59, 59)
    } else {
        Some(NaiveTime::MIN)
    };
    Ok(Some(date.and_time(time.unwrap_or(NaiveTime::MIN)).and_utc()))
}

/// Optional `from` and `to` bounds.
pub(crate) type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Both bounds, refusing a range that ends before it starts.
pub(crate) fn range(params: &Params) -> Result<Bounds, ApiError> {
    let from = range_bound(params, "from", false)?;
    let to = range_bound(params, "to", true)?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(ApiError::field("to", "The end of the range is before its start."));
    }
    Ok((from, to))
}

/// `value` with the keys of `patch` laid over it (for settings objects sent in part).
pub(crate) fn merge<T: Serialize + DeserializeOwned>(base: &T, patch: &Value, field: &str) -> Result<T, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::field(field, format!("{field} must be an object.")));
    };
    let mut merged = match serde_json::to_value(base) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (key, value) in patch {
        merged.insert(key.clone(), value.clone());
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|error| ApiError::field(field, format!("Invalid {field}: {error}.")))
}

pub(crate) fn opt_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::field(key, format!("{key} must be a string."))),
    }
}

pub(crate) fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::field(key, format!("{key} must be a boolean."))),
    }
}

pub(crate) fn opt_int(body: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::field(
                key,
                format!("{key} must be an integer from {min} to {max}."),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoded_meeting_ids_are_decoded_once_more() {
        assert_eq!(decode_meeting_id("%2F%2Fab+c=="), "//ab+c==");
        assert_eq!(decode_meeting_id("/ab+c=="), "/ab+c==");
        assert_eq!(decode_meeting_id("%ZZ"), "%ZZ");
    }

    #[test]
    fn range_bounds_accept_dates_and_times() {
        let uri: Uri = "/x?from=2025-01-02&to=2025-01-03T04:05:06Z".parse().unwrap();
        let (from, to) = range(&Params::parse(&uri)).unwrap();
        assert_eq!(
            from.map(|t| t.to_rfc3339()).as_deref(),
            Some("2025-01-02T00:00:00+00:00")
        );
        assert_eq!(to.map(|t| t.to_rfc3339()).as_deref(), Some("2025-01-03T04:05:06+00:00"));
        let uri: Uri = "/x?from=2025-01-05&to=2025-01-03".parse().unwrap();
        assert!(range(&Params::parse(&uri)).is_err());
        let uri: Uri = "/x?from=yesterday".parse().unwrap();
        assert!(range(&Params::parse(&uri)).is_err());
    }
}
