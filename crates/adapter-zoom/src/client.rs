//! The Zoom HTTP client: Server-to-Server OAuth (account credentials), authenticated JSON calls,
//! redirects that never leave the configured origins, Zoom's `{code, message}` errors turned into
//! [`AdapterError`]s, and the rate-limit headers Zoom sends, remembered per label.
//!
//! Paths are given as segments and percent-encoded one by one, so an id can never add a path
//! level or a query. Log lines carry the method, the path and the status: never a query string,
//! a body, a Zoom error message, or a credential.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use adapter::http::{same_origin, with_trailing_slash};
use adapter::resilience::Guard;
use adapter::token_slot::{IssuedToken, TokenSlot, token_lifetime};
use adapter::{AdapterError, VendorHealth};
use chrono::{DateTime, Utc};
use data_encoding::BASE64;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use url::Url;

use crate::config::{ConfigError, Secret, ZoomConfig};

/// The vendor name in errors.
pub const VENDOR: &str = "zoom";

/// Redirect hops followed for one request.
const MAX_REDIRECTS: usize = 5;

/// The largest response body read.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Zoom error codes the adapter tells apart (`zoom-clinical-notes-api.md`, and Zoom's general
/// paging error).
pub mod codes {
    /// "The next page token is invalid or expired" (Zoom's paging error; 400).
    pub const INVALID_PAGE_TOKEN: i64 = 300;
    /// "Clinical note feature not enabled for this user." (400 / 403).
    pub const NOTES_FEATURE_DISABLED: i64 = 30001;
    /// "Resource access denied. Contact your administrator." (403).
    pub const ACCESS_DENIED: i64 = 30007;
    /// "Query user does not exist." (400).
    pub const USER_NOT_FOUND: i64 = 30008;
    /// "Clinical note does not exist." (404).
    pub const NOTE_NOT_FOUND: i64 = 30009;
    /// "Failed to update note. Try again later." (500).
    pub const UPDATE_FAILED: i64 = 30011;
    /// The visit's status does not allow the request (the Healthcare API; 400).
    pub const VISIT_STATE: i64 = 3000;
}

/// What Zoom answered to a call that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON body (200, 201).
    Json(Value),
    /// No body (204, or an empty 2xx body).
    NoContent,
    /// The object does not exist (404, or error code 30009).
    NotFound,
}

impl Reply {
    /// The JSON body; `None` when the object does not exist. An answer without a body where one
    /// was expected is unmappable.
    pub fn into_json(self) -> Result<Option<Value>, AdapterError> {
        match self {
            Self::Json(value) => Ok(Some(value)),
            Self::NotFound => Ok(None),
            Self::NoContent => Err(unmappable("Zoom answered without the expected body")),
        }
    }
}

/// The last rate-limit headers Zoom sent for one label (`X-RateLimit-Category`: Light, Medium,
/// Heavy, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// `X-RateLimit-Category`, or `unlabelled` when Zoom sent none.
    pub category: String,
    /// `X-RateLimit-Type` (`QPS`, `Daily-limit`, …).
    pub kind: Option<String>,
    /// `X-RateLimit-Limit`.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// When the headers were seen.
    pub observed: Instant,
}

/// An authenticated client of one Zoom account. Cheap to share behind an `Arc`; concurrent
/// requests share one access token and trigger at most one token request at a time.
pub struct ZoomClient {
    http: reqwest::Client,
    api: Url,
    token_url: Url,
    account_id: String,
    client_id: String,
    client_secret: Secret,
    token: TokenSlot,
    rate_limits: std::sync::Mutex<BTreeMap<String, RateLimitStatus>>,
    guard: Guard,
}

impl std::fmt::Debug for ZoomClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomClient")
            .field("api", &self.api.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ZoomClient {
    /// Builds the client; no request is made until the first call (which fetches the token).
    pub fn new(config: &ZoomConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let api = with_trailing_slash(config.api_base.clone());
        let token_url = with_trailing_slash(config.oauth_base.clone())
            .join("oauth/token")
            .map_err(|_| ConfigError::Invalid {
                setting: "oauth_base",
                reason: "cannot hold the token path".into(),
            })?;
        let https_only = api.scheme() == "https" && token_url.scheme() == "https";
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .https_only(https_only)
            .user_agent(concat!("fhir-gateway-zoom/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient {
                reason: e.without_url().to_string(),
            })?;
        Ok(Self {
            http,
            api,
            token_url,
            account_id: config.account_id.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            token: TokenSlot::new(),
            rate_limits: std::sync::Mutex::new(BTreeMap::new()),
            guard: Guard::new(VENDOR, config.guard_settings()),
        })
    }

    /// The circuit breaker, retries and per-label budgets of the calls made so far.
    pub fn health(&self) -> VendorHealth {
        self.guard.health()
    }

    /// The configured API base (always ending in `/`).
    pub fn api_base(&self) -> &Url {
        &self.api
    }

    /// The rate-limit headers last seen per label.
    pub fn rate_limits(&self) -> Vec<RateLimitStatus> {
        self.rate_limits
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// GETs one object; `None` when Zoom does not have it.
    pub async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Option<Value>, AdapterError> {
        self.call(Method::GET, path, query, None, false).await?.into_json()
    }

    /// GETs one page of a list. `page_token` is the `next_page_token` of the previous page; one
    /// Zoom no longer accepts is [`AdapterError::ContinuationExpired`].
    pub async fn get_page(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        page_token: Option<&str>,
    ) -> Result<Option<Value>, AdapterError> {
        let mut query = query.to_vec();
        if let Some(token) = page_token {
            query.push(("next_page_token", token.to_owned()));
        }
        self.call(Method::GET, path, &query, None, page_token.is_some())
            .await?
            .into_json()
    }

    /// Sends a write (`POST`, `PATCH`, `DELETE`) with an optional JSON body.
    pub async fn write(&self, method: Method, path: &[&str], body: Option<&Value>) -> Result<Reply, AdapterError> {
        self.call(method, path, &[], body, false).await
    }

    /// An authenticated call: fetches or refreshes the token first when needed, and once more when
    /// Zoom answers 401, then retries once.
    pub async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        paged: bool,
    ) -> Result<Reply, AdapterError> {
        let url = self.url(path, query)?;
        let body = match body {
            Some(value) => Some(
                serde_json::to_vec(value).map_err(|_| unmappable("a request body for Zoom could not be written"))?,
            ),
            None => None,
        };
        let label = rate_limit_label(&method, path);
        let token = self.access_token().await?;
        let mut response = self.send_api(&method, &url, &token, body.as_deref(), label).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            tracing::debug!(path = url.path(), "Zoom refused the access token; fetching a new one");
            let token = self.replace_rejected(&token).await?;
            response = self.send_api(&method, &url, &token, body.as_deref(), label).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                tracing::warn!(path = url.path(), "Zoom refused a fresh access token");
                return Err(AdapterError::VendorAuth { vendor: VENDOR });
            }
        }
        self.read_reply(&method, &url, response, paged).await
    }

    /// The API URL of `path` (each segment percent-encoded) with `query`.
    fn url(&self, path: &[&str], query: &[(&str, String)]) -> Result<Url, AdapterError> {
        let mut url = self.api.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|_| unmappable("the Zoom API base cannot hold a path"))?;
            segments.pop_if_empty();
            for segment in path {
                if segment.is_empty() || *segment == "." || *segment == ".." {
                    return Err(unmappable("an empty or relative path segment for Zoom"));
                }
                segments.push(segment);
            }
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    async fn send_api(
        &self,
        method: &Method,
        url: &Url,
        token: &Secret,
        body: Option<&[u8]>,
        label: &str,
    ) -> Result<Response, AdapterError> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| unmappable("the Zoom token endpoint sent an unusable token"))?;
        auth.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, auth);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if body.is_some() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let response = self
            .send(method, url.clone(), &self.api, headers, body, Some(label))
            .await?;
        self.observe_rate_limit(response.headers());
        Ok(response)
    }

    /// Sends a request, following redirects by hand and only on `origin`: a GET follows any
    /// redirect, other methods only 307/308 (which keep the method and body); at most
    /// [`MAX_REDIRECTS`] hops. Each hop goes through the guard (deadline, breaker, the `budget`
    /// named, retries of GETs).
    async fn send(
        &self,
        method: &Method,
        mut url: Url,
        origin: &Url,
        headers: HeaderMap,
        body: Option<&[u8]>,
        budget: Option<&str>,
    ) -> Result<Response, AdapterError> {
        let idempotent = *method == Method::GET || *method == Method::HEAD;
        for _ in 0..=MAX_REDIRECTS {
            if !same_origin(&url, origin) {
                tracing::warn!(
                    "refused a Zoom URL outside the configured origin (host {:?})",
                    url.host_str()
                );
                return Err(unmappable(
                    "Zoom pointed outside its configured origin; the link was not followed",
                ));
            }
            let response = self
                .guard
                .send(idempotent, budget, || {
                    let mut request = self.http.request(method.clone(), url.clone()).headers(headers.clone());
                    if let Some(body) = body {
                        request = request.body(body.to_vec());
                    }
                    request.send()
                })
                .await
                .inspect_err(|error| {
                    tracing::debug!(%method, path = url.path(), error = %error, "Zoom request failed");
                })?;
            let status = response.status();
            tracing::debug!(%method, path = url.path(), status = status.as_u16(), "Zoom answered");
            let follows = match status.as_u16() {
                307 | 308 => true,
                301..=303 => *method == Method::GET,
                _ => false,
            };
            if !follows {
                if status.is_redirection() {
                    return Err(unmappable("Zoom redirected a request that cannot be redirected"));
                }
                return Ok(response);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| unmappable("Zoom redirected without a Location"))?;
            url = url
                .join(location.trim())
                .map_err(|_| unmappable("Zoom redirected to an unparsable Location"))?;
        }
        Err(unmappable("Zoom redirected too many times"))
    }

    /// Reads an API answer: JSON, no content, not found, or the error it stands for.
    async fn read_reply(
        &self,
        method: &Method,
        url: &Url,
        response: Response,
        paged: bool,
    ) -> Result<Reply, AdapterError> {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_body(response).await?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Reply::NoContent);
            }
            return serde_json::from_slice(&bytes)
                .map(Reply::Json)
                .map_err(|_| unmappable("Zoom sent a body that is not valid JSON"));
        }
        let code = serde_json::from_slice::<ZoomErrorBody>(&bytes)
            .ok()
            .and_then(|b| b.code);
        tracing::debug!(%method, path = url.path(), status = status.as_u16(), code, "Zoom refused the call");
        let retry = retry_after(&headers, Utc::now());
        match classify(status, code, retry, paged) {
            Classified::NotFound => Ok(Reply::NotFound),
            Classified::Error(error) => Err(error),
        }
    }

    fn observe_rate_limit(&self, headers: &HeaderMap) {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_owned())
        };
        let number = |name: &str| text(name).and_then(|s| s.parse::<u64>().ok());
        let (kind, limit, remaining) = (
            text("x-ratelimit-type"),
            number("x-ratelimit-limit"),
            number("x-ratelimit-remaining"),
        );
        if kind.is_none() && limit.is_none() && remaining.is_none() {
            return;
        }
        let category = text("x-ratelimit-category")
            .filter(|c| !c.is_empty() && c.len() <= 64)
            .unwrap_or_else(|| "unlabelled".to_owned());
        if let Ok(mut map) = self.rate_limits.lock() {
            // Zoom has a handful of labels; anything beyond is not a label.
            if map.len() >= 16 && !map.contains_key(&category) {
                return;
            }
            map.insert(
                category.clone(),
                RateLimitStatus {
                    category,
                    kind,
                    limit,
                    remaining,
                    observed: Instant::now(),
                },
            );
        }
    }

    /// The current access token, fetching a new one first when there is none or it is about to
    /// expire. Callers that arrive during a fetch wait for it and share its result.
    async fn access_token(&self) -> Result<Secret, AdapterError> {
        self.token.current(|| self.fetch_token()).await
    }

    /// A new access token after Zoom refused `rejected`; when another request has already replaced
    /// it, that newer token is used instead of fetching again.
    async fn replace_rejected(&self, rejected: &Secret) -> Result<Secret, AdapterError> {
        self.token.replace_rejected(rejected, || self.fetch_token()).await
    }

    /// The account-credentials grant: `POST /oauth/token?grant_type=account_credentials&account_id=…`
    /// with the app's client id and secret as HTTP Basic credentials.
    async fn fetch_token(&self) -> Result<IssuedToken, AdapterError> {
        let mut url = self.token_url.clone();
        url.query_pairs_mut()
            .append_pair("grant_type", "account_credentials")
            .append_pair("account_id", &self.account_id);
        let basic = BASE64.encode(format!("{}:{}", self.client_id, self.client_secret.expose()).as_bytes());
        let mut auth = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| AdapterError::VendorAuth { vendor: VENDOR })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, auth);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let origin = self.token_url.clone();
        let response = self.send(&Method::POST, url, &origin, headers, Some(b""), None).await?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => {}
            400 | 401 | 403 => {
                tracing::warn!(status = status.as_u16(), "Zoom refused the app's account credentials");
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
                    detail: format!("the Zoom token endpoint answered HTTP {code}"),
                });
            }
            code => return Err(unmappable(format!("the Zoom token endpoint answered HTTP {code}"))),
        }
        let bytes = read_body(response).await?;
        let grant: TokenGrant = serde_json::from_slice(&bytes)
            .map_err(|_| unmappable("the Zoom token endpoint sent an unreadable answer"))?;
        let access = grant
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| unmappable("the Zoom token endpoint sent no access token"))?;
        let lifetime = token_lifetime(grant.expires_in);
        tracing::debug!(lifetime_s = lifetime.as_secs(), "fetched a Zoom access token");
        Ok(IssuedToken {
            value: Secret::new(access),
            expires_in: grant.expires_in,
        })
    }
}

#[derive(serde::Deserialize)]
struct TokenGrant {
    access_token: Option<String>,
    expires_in: Option<f64>,
}

/// Zoom's error body (`{"code": 30009, "message": "…"}`); the message is never read.
#[derive(serde::Deserialize)]
struct ZoomErrorBody {
    code: Option<i64>,
}

/// What a refusal means.
#[derive(Debug, Clone, PartialEq)]
enum Classified {
    NotFound,
    Error(AdapterError),
}

/// The meaning of a non-2xx answer (401 is handled before: it refreshes the token). `paged` is
/// true when the request carried a `next_page_token`. Details name the HTTP status and never
/// Zoom's message.
fn classify(status: StatusCode, code: Option<i64>, retry_after: Option<Duration>, paged: bool) -> Classified {
    let error = match (status.as_u16(), code) {
        (429, _) => AdapterError::RateLimited {
            vendor: VENDOR,
            retry_after,
        },
        (_, Some(codes::NOTE_NOT_FOUND)) | (404 | 410, _) => {
            if paged && status.as_u16() == 410 {
                return Classified::Error(AdapterError::ContinuationExpired { vendor: VENDOR });
            }
            return Classified::NotFound;
        }
        (_, Some(codes::INVALID_PAGE_TOKEN)) if paged => AdapterError::ContinuationExpired { vendor: VENDOR },
        (400, None) if paged => AdapterError::ContinuationExpired { vendor: VENDOR },
        (_, Some(codes::ACCESS_DENIED)) | (403, None) => AdapterError::Forbidden {
            detail: "Zoom denies the gateway's account access to this resource".into(),
        },
        (_, Some(codes::NOTES_FEATURE_DISABLED)) => AdapterError::Forbidden {
            detail: "the Zoom Clinical Notes feature is not enabled for this user".into(),
        },
        (_, Some(codes::USER_NOT_FOUND)) => AdapterError::InvalidRequest {
            detail: "the Zoom user named in the request does not exist".into(),
        },
        (_, Some(codes::VISIT_STATE)) => AdapterError::Unprocessable {
            element: "status".into(),
            detail: "the Zoom visit's status does not allow this change".into(),
        },
        (_, Some(codes::UPDATE_FAILED)) => AdapterError::Unavailable {
            vendor: VENDOR,
            detail: "Zoom could not store the change; try again later".into(),
        },
        (403, Some(_)) => AdapterError::Forbidden {
            detail: "Zoom refused the operation for the gateway's account".into(),
        },
        (s @ 400..=499, _) => AdapterError::InvalidRequest {
            detail: format!("Zoom refused the request (HTTP {s})"),
        },
        (s @ 500..=599, _) => AdapterError::Unavailable {
            vendor: VENDOR,
            detail: format!("Zoom answered HTTP {s}"),
        },
        (s, _) => unmappable(format!("Zoom answered with unexpected HTTP {s}")),
    };
    Classified::Error(error)
}

/// The rate-limit label of an API call, by method and path below the API base. The clinical notes
/// document gives LIGHT for its three endpoints; the Healthcare API document gives none, so
/// single-object reads and updates are LIGHT, lists and creates MEDIUM, and messages sent to
/// patients (invite, notify) HEAVY.
pub fn rate_limit_label(method: &Method, path: &[&str]) -> &'static str {
    match path {
        ["clinical_notes", ..] => "light",
        ["healthcare", "visits" | "providers" | "waiting_room"] => "medium",
        ["healthcare", "patients"] if *method == Method::POST => "medium",
        ["healthcare", "patients", _, "invite"] | ["healthcare", "waiting_room", _, "notify"] => "heavy",
        _ => "light",
    }
}

/// Reads a body up to [`MAX_BODY_BYTES`].
async fn read_body(response: Response) -> Result<Vec<u8>, AdapterError> {
    adapter::http::read_body(VENDOR, response, MAX_BODY_BYTES).await
}

/// The `Retry-After` of a 429.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    adapter::http::retry_after_header(headers, now)
}

pub(crate) fn unmappable(detail: impl Into<String>) -> AdapterError {
    adapter::http::unmappable(VENDOR, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, code: Option<i64>, paged: bool) -> Classified {
        classify(StatusCode::from_u16(status).unwrap(), code, None, paged)
    }

    #[test]
    fn zoom_codes_have_their_meaning() {
        assert_eq!(error(404, Some(30009), false), Classified::NotFound);
        assert_eq!(error(404, None, false), Classified::NotFound);
        assert_eq!(error(400, Some(30009), false), Classified::NotFound);
        assert!(matches!(
            error(403, Some(30007), false),
            Classified::Error(AdapterError::Forbidden { .. })
        ));
        assert!(matches!(
            error(400, Some(30001), false),
            Classified::Error(AdapterError::Forbidden { .. })
        ));
        assert!(matches!(
            error(400, Some(30008), false),
            Classified::Error(AdapterError::InvalidRequest { .. })
        ));
        let Classified::Error(unavailable) = error(500, Some(30011), false) else {
            panic!()
        };
        assert!(matches!(unavailable, AdapterError::Unavailable { .. }) && unavailable.is_transient());
        for paged_refusal in [(400, Some(300)), (400, None), (410, None)] {
            assert_eq!(
                error(paged_refusal.0, paged_refusal.1, true),
                Classified::Error(AdapterError::ContinuationExpired { vendor: VENDOR }),
                "{paged_refusal:?}"
            );
        }
        assert!(matches!(
            error(400, Some(3000), false),
            Classified::Error(AdapterError::Unprocessable { .. })
        ));
        assert!(matches!(
            error(400, Some(300), false),
            Classified::Error(AdapterError::InvalidRequest { .. })
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(429), Some(Duration::from_secs(3)), false),
            Classified::Error(AdapterError::RateLimited {
                retry_after: Some(d),
                ..
            }) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            error(502, None, false),
            Classified::Error(AdapterError::Unavailable { .. })
        ));
        let Classified::Error(denied) = error(403, Some(30007), false) else {
            panic!()
        };
        assert!(!denied.to_string().contains("admin"), "{denied}");
    }

    #[test]
    fn every_endpoint_has_its_rate_limit_label() {
        let cases: [(Method, &[&str], &str); 12] = [
            (Method::GET, &["clinical_notes", "notes"], "light"),
            (Method::GET, &["clinical_notes", "notes", "n1"], "light"),
            (Method::PATCH, &["clinical_notes", "notes", "n1"], "light"),
            (Method::GET, &["healthcare", "visits"], "medium"),
            (Method::POST, &["healthcare", "visits"], "medium"),
            (Method::GET, &["healthcare", "providers"], "medium"),
            (Method::GET, &["healthcare", "waiting_room"], "medium"),
            (Method::POST, &["healthcare", "patients"], "medium"),
            (Method::GET, &["healthcare", "patients"], "light"),
            (Method::GET, &["healthcare", "visits", "v1"], "light"),
            (Method::POST, &["healthcare", "patients", "p1", "invite"], "heavy"),
            (Method::POST, &["healthcare", "waiting_room", "w1", "notify"], "heavy"),
        ];
        for (method, path, label) in cases {
            assert_eq!(rate_limit_label(&method, path), label, "{method} {path:?}");
        }
    }

    #[test]
    fn path_segments_are_encoded_one_by_one() {
        let config = ZoomConfig::new("acct", "id", "secret", "hook")
            .with_api_base(Url::parse("https://api.zoom.us/v2").unwrap());
        let client = ZoomClient::new(&config).unwrap();
        let url = client
            .url(
                &["clinical_notes", "notes", "a/b?c=d"],
                &[("meeting_id", "I3pH/E+x==".into())],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.zoom.us/v2/clinical_notes/notes/a%2Fb%3Fc=d?meeting_id=I3pH%2FE%2Bx%3D%3D"
        );
        assert!(client.url(&["notes", ".."], &[]).is_err());
        assert!(client.url(&["notes", ""], &[]).is_err());
        assert_eq!(client.token_url.as_str(), "https://zoom.us/oauth/token");
    }
}
