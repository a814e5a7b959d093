//! Every error a client sees, and the one place it becomes an `OperationOutcome` with a status.

use std::time::Duration;

use adapter::AdapterError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::format::FHIR_JSON;

/// The `OperationOutcome.issue.code` values the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    NotFound,
    NotSupported,
    Deleted,
    Throttled,
    Transient,
    Timeout,
    Exception,
    Processing,
    Expired,
    Forbidden,
    Security,
    Informational,
    Incomplete,
    /// The request (body, URL, headers, a value) is longer than the gateway accepts.
    TooLong,
    /// The request asks for more work than the gateway does for one request.
    TooCostly,
    /// The request carries no acceptable bearer token.
    Login,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::NotFound => "not-found",
            Self::NotSupported => "not-supported",
            Self::Deleted => "deleted",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Timeout => "timeout",
            Self::Exception => "exception",
            Self::Processing => "processing",
            Self::Expired => "expired",
            Self::Forbidden => "forbidden",
            Self::Security => "security",
            Self::Informational => "informational",
            Self::Incomplete => "incomplete",
            Self::TooLong => "too-long",
            Self::TooCostly => "too-costly",
            Self::Login => "login",
        }
    }
}

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    pub diagnostics: String,
    /// FHIRPath-ish locations (e.g. the offending parameter name).
    pub expression: Vec<String>,
}

impl Issue {
    pub fn new(severity: Severity, code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }
}

/// Builds an `OperationOutcome` resource from issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({
                "severity": i.severity.as_str(),
                "code": i.code.as_str(),
                "diagnostics": i.diagnostics,
            });
            if !i.expression.is_empty() {
                v["expression"] = json!(i.expression);
            }
            v
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

/// A request the gateway could not serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(String),
    /// A request parameter with a bad value (the name goes into `expression`).
    #[error("{message}")]
    BadParameter { name: String, message: String },
    #[error("unknown resource type '{0}'")]
    UnknownType(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Gone(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PageExpired(String),
    /// The request carries no acceptable bearer token (401 with the `WWW-Authenticate` challenge).
    #[error("{}", .0.description)]
    Unauthorized(#[from] smart_auth::Unauthorized),
    /// The caller's token does not allow this interaction (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller is over its rate limit (`[rate_limit]`): 429 with `Retry-After`.
    #[error("too many requests from this client: retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// Several sources failed under `Prefer: handling=strict`; the first decides the status.
    #[error("{0}")]
    Internal(String),
    /// The request ran past the gateway's own deadline (`server.request_timeout_secs`).
    #[error("the request took longer than the gateway's deadline of {0} s")]
    DeadlineExceeded(u64),
    /// The request body is over the route's limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The URL's query is over `limits.max_query_bytes` (414).
    #[error("{0}")]
    UriTooLong(String),
    /// The request headers are over `limits.max_header_bytes` (431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A parameter value (or name) over `limits.max_value_len` (400); `name` goes into
    /// `expression` when the parameter can be named.
    #[error("{message}")]
    ValueTooLong { name: Option<String>, message: String },
    /// More parameters, `_sort` keys, includes or `_elements` than the `[limits]` allow (400).
    #[error("{message}")]
    TooCostly { name: Option<String>, message: String },
}

impl GatewayError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BadParameter { .. } | Self::ValueTooLong { .. } | Self::TooCostly { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnknownType(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Gone(_) | Self::PageExpired(_) => StatusCode::GONE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Adapter(e) => adapter_status(e),
        }
    }

    /// The issue describing this error (no PHI: messages name parameters and sources, not values
    /// from records).
    pub fn issue(&self) -> Issue {
        let (code, expression) = match self {
            Self::BadRequest(_) => (IssueCode::Invalid, None),
            Self::BadParameter { name, .. } => (IssueCode::Invalid, Some(name.clone())),
            Self::UnknownType(_) => (IssueCode::NotSupported, None),
            Self::NotFound(_) => (IssueCode::NotFound, None),
            Self::Gone(_) => (IssueCode::Deleted, None),
            Self::MethodNotAllowed { .. } => (IssueCode::NotSupported, None),
            Self::NotAcceptable(_) | Self::UnsupportedMediaType(_) => (IssueCode::NotSupported, None),
            Self::PageExpired(_) => (IssueCode::Expired, None),
            Self::Internal(_) => (IssueCode::Exception, None),
            Self::DeadlineExceeded(_) => (IssueCode::Timeout, None),
            Self::Unauthorized(_) => (IssueCode::Login, None),
            Self::Forbidden(_) => (IssueCode::Forbidden, None),
            Self::TooManyRequests { .. } => (IssueCode::Throttled, None),
            Self::Adapter(e) => (adapter_issue_code(e), None),
            Self::PayloadTooLarge(_) | Self::UriTooLong(_) | Self::HeadersTooLarge(_) => (IssueCode::TooLong, None),
            Self::ValueTooLong { name, .. } => (IssueCode::TooLong, name.clone()),
            Self::TooCostly { name, .. } => (IssueCode::TooCostly, name.clone()),
        };
        let mut issue = Issue::new(Severity::Error, code, self.to_string());
        if let Some(e) = expression {
            issue = issue.at(e);
        }
        issue
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Adapter(AdapterError::RateLimited { retry_after, .. }) => {
                Some(retry_after.unwrap_or(Duration::from_secs(60)))
            }
            Self::TooManyRequests { retry_after_secs } => Some(Duration::from_secs(*retry_after_secs)),
            _ => None,
        }
    }
}

/// The status for an adapter failure.
pub fn adapter_status(e: &AdapterError) -> StatusCode {
    match e {
        AdapterError::NotFound { .. } => StatusCode::NOT_FOUND,
        AdapterError::Gone { .. } | AdapterError::ContinuationExpired { .. } => StatusCode::GONE,
        AdapterError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AdapterError::Unavailable { .. } | AdapterError::TokenStore { .. } => StatusCode::SERVICE_UNAVAILABLE,
        AdapterError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        AdapterError::Unmappable { .. } | AdapterError::VendorAuth { .. } => StatusCode::BAD_GATEWAY,
        AdapterError::Unsupported { .. } | AdapterError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
        AdapterError::Forbidden { .. } => StatusCode::FORBIDDEN,
        AdapterError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn adapter_issue_code(e: &AdapterError) -> IssueCode {
    match e {
        AdapterError::NotFound { .. } => IssueCode::NotFound,
        AdapterError::Gone { .. } => IssueCode::Deleted,
        AdapterError::ContinuationExpired { .. } => IssueCode::Expired,
        AdapterError::RateLimited { .. } => IssueCode::Throttled,
        AdapterError::Unavailable { .. } | AdapterError::TokenStore { .. } => IssueCode::Transient,
        AdapterError::Timeout { .. } => IssueCode::Timeout,
        AdapterError::Unmappable { .. } | AdapterError::VendorAuth { .. } => IssueCode::Exception,
        AdapterError::Unsupported { .. } => IssueCode::NotSupported,
        AdapterError::InvalidRequest { .. } => IssueCode::Invalid,
        AdapterError::Forbidden { .. } => IssueCode::Forbidden,
        AdapterError::Unprocessable { .. } => IssueCode::Processing,
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Server-side failures name sources and kinds, never record values: log them. A client
        // error's message can echo the client's own search values (names, dates), so only its
        // status is logged.
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request refused");
        }
        let body = operation_outcome(&[self.issue()]);
        let mut resp = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        if let Some(after) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        if let Self::MethodNotAllowed { allow, .. } = &self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            headers.insert(header::ALLOW, v);
        }
        if let Self::Unauthorized(unauthorized) = &self {
            // The token gate's answer has always been `application/fhir+json` without a charset, the
            // RFC 6750 challenge, and never stored.
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
            if let Ok(v) = HeaderValue::from_str(&unauthorized.www_authenticate()) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token gate's 401 is the one smart-auth's layer used to answer: the RFC 6750 challenge,
    /// never stored, and an OperationOutcome with the `login` code.
    #[tokio::test]
    async fn unauthorized_answers_the_bearer_challenge() {
        let refused = GatewayError::from(smart_auth::Unauthorized {
            error: Some("invalid_token"),
            description: "the token has expired".into(),
        });
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "application/fhir+json");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"fhir-gateway\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let outcome: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            outcome,
            json!({
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "login", "diagnostics": "the token has expired"}],
            })
        );

        let missing = GatewayError::from(smart_auth::Unauthorized {
            error: None,
            description: "a Bearer access token is required".into(),
        })
        .into_response();
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"fhir-gateway\""
        );
    }
}
