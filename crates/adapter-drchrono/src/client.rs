//! The DrChrono HTTP client: OAuth refresh-token flow with rotation, authenticated JSON GETs,
//! pagination and redirects that never leave the configured origin, and vendor failures turned into
//! [`AdapterError`]s.
//!
//! DrChrono rotates refresh tokens: every grant returns a new one and the old one stops working.
//! With a [`TokenVault`] ([`DrChronoClient::with_token_vault`]) the client keeps them durably and
//! shares them across replicas: a refresh runs under the vault's lock, first adopts what another
//! process stored meanwhile (a fresh access token, or the newest refresh token, which supersedes
//! the configured one), and saves every newly granted refresh token before it is used.
//!
//! Every request, pagination `next` link and redirect target is checked against the configured
//! origin (scheme, host and port) *before* anything is sent, so the bearer token only ever goes to
//! DrChrono. Log lines carry the method, the path and the status: never a query string (it can hold
//! patient names) and never a credential.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::http::{same_origin, with_trailing_slash};
use adapter::resilience::Guard;
use adapter::token_slot::{CachedToken, token_lifetime};
use adapter::vault::{TokenVault, VaultTokens};
use adapter::{AdapterError, VendorHealth};
use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use crate::config::{ConfigError, DrChronoConfig, HOURLY_BUDGET, Secret};

/// The vendor name in errors.
pub const VENDOR: &str = "drchrono";

/// Redirect hops followed for one request (`Responses`: "Some endpoints may return a 302").
const MAX_REDIRECTS: usize = 5;

/// The largest response body read (a DrChrono page of 250 verbose patients is far smaller).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// One page of a DrChrono list.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorPage {
    /// The objects of the page (`results`, or `data` in the OpenAPI document's shape).
    pub results: Vec<Value>,
    /// The absolute URL of the next page, already checked to be on the configured origin.
    pub next: Option<String>,
}

/// An authenticated client of one DrChrono account. Cheap to share behind an `Arc`; concurrent
/// requests share one access token and trigger at most one token refresh at a time.
pub struct DrChronoClient {
    http: reqwest::Client,
    base: Url,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    /// The refresh token of the configuration: the fallback when DrChrono refuses the stored one
    /// (an operator authorized the account again and configured the new token).
    configured_refresh: Secret,
    tokens: Mutex<Tokens>,
    vault: Option<Arc<dyn TokenVault>>,
    guard: Guard,
}

impl std::fmt::Debug for DrChronoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrChronoClient")
            .field("base", &self.base.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The rotating refresh token and the access token it last bought (the token endpoint names a
/// lifetime; the doc says it is always 48 hours, an hour is assumed when it names none).
struct Tokens {
    refresh: Secret,
    access: Option<CachedToken>,
    /// `refresh` was granted but not saved to the vault (the save failed or was abandoned): the
    /// vault's copy is spent, so the next refresh uses `refresh` rather than the stored one.
    unsaved: bool,
}

impl DrChronoClient {
    /// Builds the client; no request is made until the first call (the first call fetches the
    /// access token).
    pub fn new(config: &DrChronoConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = with_trailing_slash(config.base_url.clone());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .https_only(base.scheme() == "https")
            .user_agent(concat!("fhir-gateway-drchrono/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient {
                reason: e.without_url().to_string(),
            })?;
        Ok(Self {
            http,
            base,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_uri: config.redirect_uri.clone(),
            configured_refresh: config.refresh_token.clone(),
            tokens: Mutex::new(Tokens {
                refresh: config.refresh_token.clone(),
                access: None,
                unsaved: false,
            }),
            vault: None,
            guard: Guard::new(VENDOR, config.guard_settings()),
        })
    }

    /// The circuit breaker, retries and the hourly budget of the calls made so far.
    pub fn health(&self) -> VendorHealth {
        self.guard.health()
    }

    /// Keeps the tokens in `vault` (see the module docs): the refresh token stored there supersedes
    /// the configured one, and refreshes are serialized across every process sharing the vault.
    pub fn with_token_vault(mut self, vault: Arc<dyn TokenVault>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Counts the hourly budget in `shared` too, under `scope` (the account), so that replicas
    /// sharing the account together stay within DrChrono's limit.
    pub fn with_shared_budgets(mut self, shared: Arc<dyn adapter::resilience::SharedBudgets>, scope: &str) -> Self {
        self.guard = self.guard.with_shared_budgets(shared, format!("drchrono:{scope}"));
        self
    }

    /// The configured base URL (always ending in `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// GETs one JSON document (`/api/patients/12`, a path with its query, relative to the base URL,
    /// or an absolute URL on the configured origin). `Ok(None)` when DrChrono answers 404 or 410.
    pub async fn get_json(&self, path_and_query: &str) -> Result<Option<Value>, AdapterError> {
        let url = self.resolve(path_and_query)?;
        self.get(url).await.map(|(_, value)| value)
    }

    /// GETs one page of a list: a path with its query for the first page, or the `next` URL of the
    /// previous page. A `next` URL that is not on the configured origin is refused before anything
    /// is sent. A page that no longer exists (404 on a `next` URL) is a
    /// [`AdapterError::ContinuationExpired`].
    pub async fn get_page(&self, url_or_path: &str) -> Result<VendorPage, AdapterError> {
        let url = self.resolve(url_or_path)?;
        let is_continuation = Url::parse(url_or_path).is_ok();
        let (final_url, value) = self.get(url.clone()).await?;
        let Some(value) = value else {
            return Err(if is_continuation {
                AdapterError::ContinuationExpired { vendor: VENDOR }
            } else {
                unmappable("DrChrono does not know this list endpoint")
            });
        };
        let page = self.parse_page(value, &final_url)?;
        if page.next.as_deref() == Some(url.as_str()) {
            return Err(unmappable("a DrChrono page links to itself as its next page"));
        }
        Ok(page)
    }

    /// Resolves a path (relative to the base URL) or an absolute URL, refusing any other origin.
    pub fn resolve(&self, url_or_path: &str) -> Result<Url, AdapterError> {
        let url = match Url::parse(url_or_path) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => self
                .base
                .join(url_or_path.trim_start_matches('/'))
                .map_err(|_| unmappable("a DrChrono path could not be parsed"))?,
            Err(_) => return Err(unmappable("a DrChrono URL could not be parsed")),
        };
        self.check_origin(&url)?;
        Ok(url)
    }

    /// True when `url` is on the configured DrChrono origin.
    pub fn is_own_origin(&self, url: &Url) -> bool {
        same_origin(url, &self.base)
    }

    fn check_origin(&self, url: &Url) -> Result<(), AdapterError> {
        if self.is_own_origin(url) {
            Ok(())
        } else {
            tracing::warn!(
                "refused a DrChrono URL outside the configured origin (host {:?})",
                url.host_str()
            );
            Err(unmappable(
                "DrChrono pointed outside its configured origin; the link was not followed",
            ))
        }
    }

    fn parse_page(&self, value: Value, url: &Url) -> Result<VendorPage, AdapterError> {
        let mut object = match value {
            Value::Array(results) => {
                return Ok(VendorPage { results, next: None });
            }
            Value::Object(object) => object,
            _ => return Err(unmappable("a DrChrono list is not a JSON object")),
        };
        let results = match object.remove("results").or_else(|| object.remove("data")) {
            Some(Value::Array(results)) => results,
            _ => return Err(unmappable("a DrChrono list has no results array")),
        };
        let next = match object.remove("next") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let next = url
                    .join(s.trim())
                    .map_err(|_| unmappable("a DrChrono next link could not be parsed"))?;
                self.check_origin(&next)?;
                Some(next.to_string())
            }
            Some(_) => return Err(unmappable("a DrChrono next link is not a string")),
        };
        Ok(VendorPage { results, next })
    }

    /// An authenticated GET: refreshes the token when it is about to expire, and once more when
    /// DrChrono answers 401, then retries once. Returns the URL that finally answered.
    async fn get(&self, url: Url) -> Result<(Url, Option<Value>), AdapterError> {
        let token = self.access_token().await?;
        let (final_url, response) = self.send_api(&url, &token).await?;
        let (final_url, response) = if response.status() == StatusCode::UNAUTHORIZED {
            tracing::debug!(path = url.path(), "DrChrono refused the access token; refreshing");
            let token = self.refresh_rejected(&token).await?;
            let (final_url, response) = self.send_api(&url, &token).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                tracing::warn!(path = url.path(), "DrChrono refused a fresh access token");
                return Err(AdapterError::VendorAuth { vendor: VENDOR });
            }
            (final_url, response)
        } else {
            (final_url, response)
        };
        let value = read_api_response(response).await?;
        Ok((final_url, value))
    }

    async fn send_api(&self, url: &Url, token: &Secret) -> Result<(Url, Response), AdapterError> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| unmappable("the DrChrono token endpoint sent an unusable token"))?;
        auth.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, auth);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        self.send(Method::GET, url.clone(), headers, None, Some(HOURLY_BUDGET))
            .await
    }

    /// Sends a request, following redirects by hand: the same method, headers and body to the new
    /// `Location`, only on the configured origin, at most [`MAX_REDIRECTS`] hops. Each hop goes
    /// through the guard (deadline, breaker, the `budget` named, retries of GETs).
    async fn send(
        &self,
        method: Method,
        mut url: Url,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        budget: Option<&str>,
    ) -> Result<(Url, Response), AdapterError> {
        let idempotent = method == Method::GET || method == Method::HEAD;
        for _ in 0..=MAX_REDIRECTS {
            self.check_origin(&url)?;
            let response = self
                .guard
                .send(idempotent, budget, || {
                    let mut request = self.http.request(method.clone(), url.clone()).headers(headers.clone());
                    if let Some(body) = &body {
                        request = request.body(body.clone());
                    }
                    request.send()
                })
                .await
                .inspect_err(|error| {
                    tracing::debug!(%method, path = url.path(), error = %error, "DrChrono request failed");
                })?;
            let status = response.status();
            tracing::debug!(%method, path = url.path(), status = status.as_u16(), "DrChrono answered");
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok((url, response));
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| unmappable("DrChrono redirected without a Location"))?;
            url = url
                .join(location.trim())
                .map_err(|_| unmappable("DrChrono redirected to an unparsable Location"))?;
        }
        Err(unmappable("DrChrono redirected too many times"))
    }

    /// The current access token, fetching a new one first when there is none or it is about to
    /// expire. Callers that arrive during a refresh wait for it and share its result.
    async fn access_token(&self) -> Result<Secret, AdapterError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(value) = tokens.access.as_ref().and_then(CachedToken::fresh) {
            return Ok(value.clone());
        }
        self.renew(&mut tokens, None).await
    }

    /// A new access token after DrChrono refused `rejected`; when another request has already
    /// replaced it, that newer token is used instead of refreshing again.
    async fn refresh_rejected(&self, rejected: &Secret) -> Result<Secret, AdapterError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(value) = tokens.access.as_ref().and_then(|t| t.fresh_unless(rejected)) {
            return Ok(value.clone());
        }
        self.renew(&mut tokens, Some(rejected)).await
    }

    /// A new access token (the caller holds the `tokens` lock and found none usable). Without a
    /// vault this is a refresh; with one it runs under the vault's lock, which is released on
    /// every path (and, should the caller give up midway, by a task spawned for it).
    async fn renew(&self, tokens: &mut Tokens, rejected: Option<&Secret>) -> Result<Secret, AdapterError> {
        let Some(vault) = &self.vault else {
            return self.refresh(tokens).await;
        };
        vault.acquire().await?;
        let mut held = VaultLock(Some(vault.clone()));
        let result = self.renew_in_vault(&**vault, tokens, rejected).await;
        if let Some(vault) = held.0.take() {
            vault.release().await;
        }
        result
    }

    /// [`Self::renew`] under the vault's lock: adopts an access token another process stored
    /// meanwhile (no call to DrChrono), else refreshes with the stored refresh token, falling back
    /// to the configured one when DrChrono refuses the stored one.
    async fn renew_in_vault(
        &self,
        vault: &dyn TokenVault,
        tokens: &mut Tokens,
        rejected: Option<&Secret>,
    ) -> Result<Secret, AdapterError> {
        // While this process holds a granted refresh token it could not save, the vault's copy is
        // older (its refresh token spent): memory is used, and the refresh saves it again.
        let stored = if tokens.unsaved { None } else { vault.load().await? };
        if let Some(stored) = stored.filter(|stored| !stored.refresh.is_empty()) {
            if let (Some(access), Some(refresh_at)) = (stored.access, stored.access_refresh_at) {
                // Another process (or this one before a restart) refreshed meanwhile.
                let cached = CachedToken::until_unix(access, refresh_at);
                if cached.fresh().is_some_and(|value| Some(value) != rejected) {
                    tracing::debug!("adopted the stored DrChrono access token");
                    let value = cached.value().clone();
                    tokens.refresh = stored.refresh;
                    tokens.access = Some(cached);
                    return Ok(value);
                }
            }
            // The stored refresh token is the newest one: DrChrono has spent the configured one.
            tokens.refresh = stored.refresh;
        }
        let used = tokens.refresh.clone();
        match self.refresh(tokens).await {
            Err(AdapterError::VendorAuth { .. }) if used != self.configured_refresh => {
                tracing::warn!("DrChrono refused the stored refresh token; trying the configured one");
                tokens.refresh = self.configured_refresh.clone();
                tokens.unsaved = false;
                self.refresh(tokens).await
            }
            other => other,
        }
    }

    /// The refresh-token grant (`/o/token/`, form-encoded). Keeps the rotated refresh token, and
    /// with a vault saves it (and the access token) there before anything uses it.
    async fn refresh(&self, tokens: &mut Tokens) -> Result<Secret, AdapterError> {
        tokens.access = None;
        let url = self.resolve("o/token/")?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("refresh_token", tokens.refresh.expose())
            .append_pair("redirect_uri", &self.redirect_uri)
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let requested = Instant::now();
        let (_, response) = self
            .send(Method::POST, url, headers, Some(body.into_bytes()), None)
            .await?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => {}
            400 | 401 | 403 => {
                tracing::warn!(status = status.as_u16(), "DrChrono refused the refresh token");
                return Err(AdapterError::VendorAuth { vendor: VENDOR });
            }
            _ => return Err(status_error(&response)),
        }
        let bytes = read_body(response).await?;
        let grant: TokenGrant = serde_json::from_slice(&bytes)
            .map_err(|_| unmappable("the DrChrono token endpoint sent an unreadable answer"))?;
        let access = grant
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| unmappable("the DrChrono token endpoint sent no access token"))?;
        let value = Secret::new(access);
        let cached = CachedToken::new(value.clone(), requested, grant.expires_in);
        if let Some(refresh) = grant.refresh_token.filter(|t| !t.trim().is_empty()) {
            let refresh = Secret::new(refresh);
            if refresh != tokens.refresh {
                // The old token is spent at DrChrono: from here on memory holds the only usable
                // copy until the vault has one (a caller giving up during the save loses nothing).
                tokens.refresh = refresh;
                tokens.unsaved = self.vault.is_some();
            }
        }
        if let Some(vault) = &self.vault {
            let stored = VaultTokens {
                refresh: tokens.refresh.clone(),
                access: Some(value.clone()),
                access_refresh_at: Some(cached.refresh_at_unix()),
            };
            match vault.save(&stored).await {
                Ok(()) => tokens.unsaved = false,
                Err(error) => {
                    // Memory keeps the new tokens; the next refresh saves again.
                    tracing::error!(error = %error, "could not save the DrChrono tokens; keeping them in memory");
                    tokens.unsaved = true;
                }
            }
        }
        tokens.access = Some(cached);
        let lifetime = token_lifetime(grant.expires_in);
        tracing::debug!(lifetime_s = lifetime.as_secs(), "fetched a DrChrono access token");
        Ok(value)
    }
}

/// The vault's lock while a refresh runs: released by `renew`, or by a spawned task when the
/// refresh is abandoned midway (the future dropped), so another process is not locked out.
struct VaultLock(Option<Arc<dyn TokenVault>>);

impl Drop for VaultLock {
    fn drop(&mut self) {
        if let Some(vault) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { vault.release().await });
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenGrant {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<f64>,
}

/// Reads a DrChrono API answer: JSON for 2xx, `None` for 404/410, an error otherwise.
async fn read_api_response(response: Response) -> Result<Option<Value>, AdapterError> {
    let status = response.status();
    if status.is_success() {
        let bytes = read_body(response).await?;
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| unmappable("DrChrono sent a body that is not valid JSON"));
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Ok(None);
    }
    Err(status_error(&response))
}

/// The error for a status that is neither success nor 404.
fn status_error(response: &Response) -> AdapterError {
    let status = response.status();
    match status.as_u16() {
        401 | 403 => AdapterError::VendorAuth { vendor: VENDOR },
        429 => AdapterError::RateLimited {
            vendor: VENDOR,
            retry_after: retry_after(response.headers(), Utc::now()),
        },
        400..=499 => AdapterError::InvalidRequest {
            detail: format!("DrChrono refused the request (HTTP {})", status.as_u16()),
        },
        500..=599 => AdapterError::Unavailable {
            vendor: VENDOR,
            detail: format!("DrChrono answered HTTP {}", status.as_u16()),
        },
        code => unmappable(format!("DrChrono answered with unexpected HTTP {code}")),
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

    fn client(base: &str) -> DrChronoClient {
        let config =
            DrChronoConfig::new("id", "secret", "refresh", "https://cb.test/").with_base_url(Url::parse(base).unwrap());
        DrChronoClient::new(&config).unwrap()
    }

    #[test]
    fn only_the_configured_origin_resolves() {
        let c = client("https://drchrono.com");
        assert_eq!(
            c.resolve("/api/patients?page_size=2").unwrap().as_str(),
            "https://drchrono.com/api/patients?page_size=2"
        );
        assert!(c.resolve("https://drchrono.com:443/api/x").is_ok());
        for foreign in [
            "https://drchrono.com.evil.test/api",
            "http://drchrono.com/api",
            "https://drchrono.com:8443/api",
            "https://user:pw@drchrono.com/api",
        ] {
            assert!(c.resolve(foreign).is_err(), "{foreign}");
        }
    }

    #[test]
    fn pages_accept_results_or_data_and_check_next() {
        let c = client("https://drchrono.com");
        let here = Url::parse("https://drchrono.com/api/x?page=1").unwrap();
        let p = c
            .parse_page(
                serde_json::json!({"results": [1], "next": "https://drchrono.com/api/x?page=2"}),
                &here,
            )
            .unwrap();
        assert_eq!(p.results, vec![serde_json::json!(1)]);
        assert_eq!(p.next.as_deref(), Some("https://drchrono.com/api/x?page=2"));
        let p = c
            .parse_page(serde_json::json!({"data": [2], "next": null}), &here)
            .unwrap();
        assert_eq!((p.results.len(), p.next), (1, None));
        let p = c
            .parse_page(serde_json::json!({"data": [], "next": "/api/x?page=3"}), &here)
            .unwrap();
        assert_eq!(p.next.as_deref(), Some("https://drchrono.com/api/x?page=3"));
        assert!(
            c.parse_page(
                serde_json::json!({"results": [], "next": "https://evil.test/api/x?page=2"}),
                &here
            )
            .is_err()
        );
        assert!(c.parse_page(serde_json::json!({"next": null}), &here).is_err());
        assert!(c.parse_page(serde_json::json!("x"), &here).is_err());
    }
}
