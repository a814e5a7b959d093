//! The Noa Notes HTTP client: consumer sign-in (`POST clients/authenticate` with the client id and
//! secret), the bearer token cached until shortly before it expires and fetched again once when
//! Noa answers 401, `api-version` on every request, and Noa's answers turned into [`Reply`]s or
//! [`AdapterError`]s.
//!
//! Paths come from [`NoaPaths`] with each placeholder value percent-encoded as one segment, so an
//! id can never add a path level or a query. Noa does not redirect: a redirect is refused. Log
//! lines carry the method, the endpoint's name and the status: never an id, a query string, a
//! body, a problem detail, or a credential.

use std::time::Duration;

use adapter::http::with_trailing_slash;
use adapter::resilience::Guard;
use adapter::token_slot::{IssuedToken, TokenSlot, token_lifetime};
use adapter::{AdapterError, VendorHealth};
use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::config::{ConfigError, Endpoint, NoaConfig, NoaPaths, Secret};
use crate::wire;

/// The vendor name in errors.
pub const VENDOR: &str = "noa";

/// The query parameter naming the API version.
pub const API_VERSION_PARAM: &str = "api-version";

/// The largest response body read.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What Noa answered to a call that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A 2xx answer: its status and JSON body (`None` when empty).
    Ok { status: u16, body: Option<Value> },
    /// 404: the object (or, for a write, one it names) does not exist.
    NotFound,
    /// 409: the object's state does not allow the call (a regeneration already running, a doctor
    /// already registered).
    Conflict,
}

impl Reply {
    /// The JSON body of a 2xx answer; `None` for 404. Any other answer, or a 2xx without a body,
    /// is unmappable.
    pub fn into_json(self) -> Result<Option<Value>, AdapterError> {
        match self {
            Self::Ok { body: Some(body), .. } => Ok(Some(body)),
            Self::NotFound => Ok(None),
            Self::Ok { body: None, .. } => Err(unmappable("Noa answered without the expected body")),
            Self::Conflict => Err(unmappable("Noa answered a read with a conflict")),
        }
    }
}

/// An authenticated client of one Noa consumer. Cheap to share behind an `Arc`; concurrent
/// requests share one consumer token and trigger at most one sign-in at a time.
pub struct NoaClient {
    http: reqwest::Client,
    api: Url,
    paths: NoaPaths,
    api_version: String,
    client_id: String,
    client_secret: Secret,
    token: TokenSlot,
    guard: Guard,
}

impl std::fmt::Debug for NoaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoaClient")
            .field("api", &self.api.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl NoaClient {
    /// Builds the client; no request is made until the first call (which signs in).
    pub fn new(config: &NoaConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let api = with_trailing_slash(config.api_base.clone());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .https_only(api.scheme() == "https")
            .user_agent(concat!("fhir-gateway-noa/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient {
                reason: e.without_url().to_string(),
            })?;
        Ok(Self {
            http,
            api,
            paths: config.paths.clone(),
            api_version: config.api_version.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            token: TokenSlot::new(),
            guard: Guard::new(VENDOR, config.resilience.clone()),
        })
    }

    /// The circuit breaker, retries and any budgets of the calls made so far.
    pub fn health(&self) -> VendorHealth {
        self.guard.health()
    }

    /// The configured API base (always ending in `/`).
    pub fn api_base(&self) -> &Url {
        &self.api
    }

    /// GETs one object; `None` when Noa does not have it.
    pub async fn get(&self, endpoint: Endpoint<'_>, query: &[(&str, String)]) -> Result<Option<Value>, AdapterError> {
        self.call::<()>(Method::GET, endpoint, query, None, false)
            .await?
            .into_json()
    }

    /// GETs one page of the session list. `page_token` is the previous page's `nextPageToken`; one
    /// Noa refuses (400) is [`AdapterError::ContinuationExpired`].
    pub async fn get_page(
        &self,
        endpoint: Endpoint<'_>,
        query: &[(&str, String)],
        page_token: Option<&str>,
    ) -> Result<Option<Value>, AdapterError> {
        let mut query = query.to_vec();
        if let Some(token) = page_token {
            query.push(("pageToken", token.to_owned()));
        }
        self.call::<()>(Method::GET, endpoint, &query, None, page_token.is_some())
            .await?
            .into_json()
    }

    /// Sends a write (`POST`, `PUT`) with an optional JSON body, written straight from `body` (so
    /// a template keeps its order).
    pub async fn write<B: Serialize + ?Sized>(
        &self,
        method: Method,
        endpoint: Endpoint<'_>,
        body: Option<&B>,
    ) -> Result<Reply, AdapterError> {
        self.call(method, endpoint, &[], body, false).await
    }

    /// Signs in now unless a fresh token is cached (the start-up probe).
    pub async fn sign_in(&self) -> Result<(), AdapterError> {
        self.access_token().await.map(|_| ())
    }

    /// An authenticated call: signs in first when needed, and once more when Noa answers 401, then
    /// retries once.
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        endpoint: Endpoint<'_>,
        query: &[(&str, String)],
        body: Option<&B>,
        paged: bool,
    ) -> Result<Reply, AdapterError> {
        let url = self.url(endpoint, query)?;
        let body = match body {
            Some(value) => {
                Some(serde_json::to_vec(value).map_err(|_| unmappable("a request body for Noa could not be written"))?)
            }
            None => None,
        };
        let name = endpoint.name();
        let token = self.access_token().await?;
        let mut response = self.send(&method, &url, Some(&token), body.as_deref(), name).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            tracing::debug!(endpoint = name, "Noa refused the consumer token; signing in again");
            let token = self.replace_rejected(&token).await?;
            response = self.send(&method, &url, Some(&token), body.as_deref(), name).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                tracing::warn!(endpoint = name, "Noa refused a fresh consumer token");
                return Err(AdapterError::VendorAuth { vendor: VENDOR });
            }
        }
        read_reply(&method, name, response, paged).await
    }

    /// The API URL of `endpoint` (each segment percent-encoded) with `query` and `api-version`.
    fn url(&self, endpoint: Endpoint<'_>, query: &[(&str, String)]) -> Result<Url, AdapterError> {
        let mut url = self.api.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|_| unmappable("the Noa API base cannot hold a path"))?;
            segments.pop_if_empty();
            for segment in self.paths.segments(endpoint) {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(AdapterError::InvalidRequest {
                        detail: "an empty or relative id cannot name a Noa object".into(),
                    });
                }
                segments.push(&segment);
            }
        }
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair(API_VERSION_PARAM, &self.api_version);
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// Sends one request (with the bearer token when given) through the guard: deadline, breaker,
    /// retries of GETs. Noa documents no rate limit, so no budget is named.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        token: Option<&Secret>,
        body: Option<&[u8]>,
        name: &'static str,
    ) -> Result<Response, AdapterError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| unmappable("Noa's sign-in sent an unusable token"))?;
            auth.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, auth);
        }
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if body.is_some() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let idempotent = *method == Method::GET || *method == Method::HEAD;
        let response = self
            .guard
            .send(idempotent, None, || {
                let mut request = self.http.request(method.clone(), url.clone()).headers(headers.clone());
                if let Some(body) = body {
                    request = request.body(body.to_vec());
                }
                request.send()
            })
            .await
            .inspect_err(|error| {
                tracing::debug!(%method, endpoint = name, error = %error, "Noa request failed");
            })?;
        tracing::debug!(%method, endpoint = name, status = response.status().as_u16(), "Noa answered");
        Ok(response)
    }

    /// The current consumer token, signing in first when there is none or it is about to expire.
    /// Callers that arrive during a sign-in wait for it and share its result.
    async fn access_token(&self) -> Result<Secret, AdapterError> {
        self.token.current(|| self.fetch_token()).await
    }

    /// A new token after Noa refused `rejected`; when another request has already replaced it,
    /// that newer token is used instead of signing in again.
    async fn replace_rejected(&self, rejected: &Secret) -> Result<Secret, AdapterError> {
        self.token.replace_rejected(rejected, || self.fetch_token()).await
    }

    /// `POST clients/authenticate {"clientId", "secret"}` → `{"accessToken", "expiresIn"}`.
    async fn fetch_token(&self) -> Result<IssuedToken, AdapterError> {
        let url = self.url(Endpoint::Authenticate, &[])?;
        let body = serde_json::to_vec(&wire::Authenticate {
            client_id: &self.client_id,
            secret: self.client_secret.expose(),
        })
        .map_err(|_| unmappable("the Noa sign-in could not be written"))?;
        let response = self
            .send(&Method::POST, &url, None, Some(&body), Endpoint::Authenticate.name())
            .await?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => {}
            400 | 401 | 403 => {
                tracing::warn!(status = status.as_u16(), "Noa refused the client credentials");
                return Err(AdapterError::VendorAuth { vendor: VENDOR });
            }
            429 => {
                return Err(AdapterError::RateLimited {
                    vendor: VENDOR,
                    retry_after: retry_after(response.headers(), Utc::now()),
                });
            }
            code @ 500..=599 => {
                return Err(AdapterError::Unavailable {
                    vendor: VENDOR,
                    detail: format!("the Noa sign-in answered HTTP {code}"),
                });
            }
            code => return Err(unmappable(format!("the Noa sign-in answered HTTP {code}"))),
        }
        let bytes = read_body(response).await?;
        let grant: wire::TokenGrant =
            serde_json::from_slice(&bytes).map_err(|_| unmappable("the Noa sign-in sent an unreadable answer"))?;
        let access = grant
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| unmappable("the Noa sign-in sent no access token"))?;
        let lifetime = token_lifetime(grant.expires_in);
        tracing::debug!(lifetime_s = lifetime.as_secs(), "signed in to Noa");
        Ok(IssuedToken {
            value: Secret::new(access),
            expires_in: grant.expires_in,
        })
    }
}

/// Reads an API answer: JSON, 404, 409, or the error it stands for.
async fn read_reply(
    method: &Method,
    name: &'static str,
    response: Response,
    paged: bool,
) -> Result<Reply, AdapterError> {
    let status = response.status();
    let retry = retry_after(response.headers(), Utc::now());
    let bytes = read_body(response).await?;
    if status.is_success() {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Reply::Ok {
                status: status.as_u16(),
                body: None,
            });
        }
        return serde_json::from_slice(&bytes)
            .map(|body| Reply::Ok {
                status: status.as_u16(),
                body: Some(body),
            })
            .map_err(|_| unmappable("Noa sent a body that is not valid JSON"));
    }
    tracing::debug!(%method, endpoint = name, status = status.as_u16(), "Noa refused the call");
    classify(status, retry, paged)
}

/// The meaning of a non-2xx answer (401 is handled before: it signs in again). `paged` is true
/// when the request carried a `pageToken`. Details name the HTTP status, never Noa's problem text.
fn classify(status: StatusCode, retry_after: Option<Duration>, paged: bool) -> Result<Reply, AdapterError> {
    Err(match status.as_u16() {
        404 => return Ok(Reply::NotFound),
        409 => return Ok(Reply::Conflict),
        429 => AdapterError::RateLimited {
            vendor: VENDOR,
            retry_after,
        },
        400 | 410 if paged => AdapterError::ContinuationExpired { vendor: VENDOR },
        403 => AdapterError::Forbidden {
            detail: "Noa refused the operation for the gateway's consumer".into(),
        },
        s @ 400..=499 => AdapterError::InvalidRequest {
            detail: format!("Noa refused the request (HTTP {s})"),
        },
        s @ 500..=599 => AdapterError::Unavailable {
            vendor: VENDOR,
            detail: format!("Noa answered HTTP {s}"),
        },
        s => unmappable(format!("Noa answered with unexpected HTTP {s}")),
    })
}

/// Reads a body up to [`MAX_BODY_BYTES`].
async fn read_body(response: Response) -> Result<Vec<u8>, AdapterError> {
    adapter::http::read_body(VENDOR, response, MAX_BODY_BYTES).await
}

/// The `Retry-After` of a 429.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    adapter::http::retry_after_header(headers, now)
}

pub(crate) fn unmappable(detail: impl Into<String>) -> AdapterError {
    adapter::http::unmappable(VENDOR, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(status: u16, paged: bool) -> Result<Reply, AdapterError> {
        classify(
            StatusCode::from_u16(status).unwrap(),
            Some(Duration::from_secs(3)),
            paged,
        )
    }

    #[test]
    fn statuses_have_their_meaning() {
        assert_eq!(classified(404, false), Ok(Reply::NotFound));
        assert_eq!(classified(409, false), Ok(Reply::Conflict));
        assert_eq!(
            classified(429, false),
            Err(AdapterError::RateLimited {
                vendor: VENDOR,
                retry_after: Some(Duration::from_secs(3))
            })
        );
        assert_eq!(
            classified(400, true),
            Err(AdapterError::ContinuationExpired { vendor: VENDOR })
        );
        assert!(matches!(
            classified(400, false),
            Err(AdapterError::InvalidRequest { .. })
        ));
        assert!(matches!(classified(403, false), Err(AdapterError::Forbidden { .. })));
        for s in [500, 502, 503] {
            let e = classified(s, false).unwrap_err();
            assert!(matches!(e, AdapterError::Unavailable { .. }) && e.is_transient(), "{s}");
        }
        assert!(matches!(classified(302, false), Err(AdapterError::Unmappable { .. })));
    }

    #[test]
    fn urls_carry_the_api_version_and_encode_ids_as_one_segment() {
        let config = NoaConfig::new("client", "secret", "x".repeat(32))
            .with_api_base(Url::parse("https://noa.example/api/v1").unwrap());
        let client = NoaClient::new(&config).unwrap();
        let url = client
            .url(Endpoint::SessionStatus("a/b?c=d"), &[("episodeId", "7 8".into())])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://noa.example/api/v1/consumers/sessions/a%2Fb%3Fc=d/status?api-version=1.0&episodeId=7+8"
        );
        assert!(client.url(Endpoint::SessionStatus(".."), &[]).is_err());
        assert!(client.url(Endpoint::SessionStatus(""), &[]).is_err());
        assert_eq!(
            client.url(Endpoint::Authenticate, &[]).unwrap().as_str(),
            "https://noa.example/api/v1/clients/authenticate?api-version=1.0"
        );
    }
}
