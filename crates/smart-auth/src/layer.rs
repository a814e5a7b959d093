//! The tower layer that puts an [`Identity`](crate::Identity) into every request it wraps, or answers 401.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};

use crate::{SmartAuth, Unauthorized};

/// Verifies the bearer token of every request it wraps. On success the request goes on with the
/// [`Identity`](crate::Identity) in its extensions; on failure it is answered `401` with
/// `WWW-Authenticate: Bearer realm="fhir-gateway", error="invalid_token", error_description="…"` (no
/// `error` when no token was sent) and an OperationOutcome (`application/fhir+json`).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: SmartAuth,
}

impl AuthLayer {
    pub(crate) fn new(auth: SmartAuth) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// The service [`AuthLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    auth: SmartAuth,
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for AuthService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            match auth.authenticate(request.headers()).await {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(unauthorized) => {
                    tracing::debug!(reason = %unauthorized.description, "bearer token refused");
                    Ok(unauthorized.into_response())
                }
            }
        })
    }
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let outcome = serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": "login",
                "diagnostics": self.description,
            }]
        });
        let mut response = Response::new(Body::from(outcome.to_string()));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
        if let Ok(v) = HeaderValue::from_str(&self.www_authenticate()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
