//! Public keys of others: an external IdP's JWKS and the JWKS of `private_key_jwt` clients, fetched
//! from a URL and cached per `Cache-Control: max-age`, or given inline.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Cache lifetime when the JWKS response says nothing.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Bounds on what `max-age` may ask for.
const MIN_MAX_AGE: Duration = Duration::from_secs(1);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// An unknown kid refetches at most this often.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// A stale cache whose refetch failed is retried at most this often.
const FAILED_FETCH_RETRY: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Parses a JWKS document, keeping the keys it can use (unknown key types and algorithms are skipped,
/// not fatal).
pub(crate) fn parse_jwks(value: &serde_json::Value) -> Result<Vec<Jwk>, String> {
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("a JWKS is an object with a 'keys' array")?;
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| {
            matches!(
                k.algorithm,
                AlgorithmParameters::RSA(_)
                    | AlgorithmParameters::EllipticCurve(_)
                    | AlgorithmParameters::OctetKeyPair(_)
            )
        })
        .collect())
}

/// True when `jwk` may verify a signature made with `alg`: an asymmetric key of the right type and
/// curve, meant for signatures, whose own `alg` (if any) is `alg`.
pub(crate) fn usable_for(jwk: &Jwk, alg: Algorithm) -> bool {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return false;
    }
    if let Some(ka) = jwk.common.key_algorithm
        && Algorithm::try_from(ka).ok() != Some(alg)
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    }
}

/// The keys of `set` that may verify a token with this header (by kid when it names one).
pub(crate) fn candidates(set: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
    set.iter()
        .filter(|k| match kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid),
            None => true,
        })
        .filter(|k| usable_for(k, alg))
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .collect()
}

/// A JWKS fetched from a URL.
pub(crate) struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    /// Held across the fetch, so concurrent misses cause one request.
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: Vec<Jwk>,
    fetched_at: Option<Instant>,
    max_age: Duration,
    /// When the last fetch failed (cleared by a success).
    last_failure: Option<Instant>,
    last_unknown_kid_fetch: Option<Instant>,
}

impl RemoteJwks {
    pub(crate) fn new(url: String, http: reqwest::Client) -> Self {
        Self {
            url,
            http,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// The keys that may verify a token with this kid and alg: from the cache while fresh, else
    /// refetched; an unknown kid refetches (at most once per 30 s) in case the keys rotated.
    pub(crate) async fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<DecodingKey>, String> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < cache.max_age);
        let may_retry = cache.last_failure.is_none_or(|t| t.elapsed() >= FAILED_FETCH_RETRY);
        let mut fetch_error = None;
        let mut fetched_now = false;
        if !fresh && may_retry {
            match self.fetch(&mut cache).await {
                Ok(()) => fetched_now = true,
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed");
                    fetch_error = Some(e);
                }
            }
        }
        let found = candidates(&cache.keys, kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        let unknown_kid_allowed = cache
            .last_unknown_kid_fetch
            .is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFETCH);
        if kid.is_some() && !fetched_now && fetch_error.is_none() && unknown_kid_allowed && cache.fetched_at.is_some() {
            cache.last_unknown_kid_fetch = Some(Instant::now());
            if let Err(e) = self.fetch(&mut cache).await {
                tracing::warn!(url = %self.url, error = %e, "JWKS refetch failed");
                return Err(e);
            }
            return Ok(candidates(&cache.keys, kid, alg));
        }
        match fetch_error {
            Some(e) if cache.fetched_at.is_none() => Err(e),
            _ => Ok(Vec::new()),
        }
    }

    async fn fetch(&self, cache: &mut Cache) -> Result<(), String> {
        let result = self.fetch_keys().await;
        match result {
            Ok((keys, max_age)) => {
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.max_age = max_age;
                cache.last_failure = None;
                Ok(())
            }
            Err(e) => {
                cache.last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn fetch_keys(&self) -> Result<(Vec<Jwk>, Duration), String> {
        let response = self
            .http
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| format!("JWKS request failed: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        let max_age = response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        if response.content_length().is_some_and(|l| l > MAX_JWKS_BYTES as u64) {
            return Err("JWKS document is too large".to_owned());
        }
        let body = read_limited(response, MAX_JWKS_BYTES).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "JWKS document is not JSON".to_owned())?;
        Ok((parse_jwks(&value)?, max_age))
    }
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("JWKS read failed: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            return Err("JWKS document is too large".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age=N` of a Cache-Control value; `no-store`/`no-cache` are 0 (then clamped to the minimum).
fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|d| {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let n = lower.strip_prefix("max-age=")?;
        n.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(parse_max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let set = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB", "kid": "enc"},
            {"kty": "EC", "crv": "P-384", "kid": "a", "alg": "ES384", "use": "sig",
             "x": "Y-pJD36v-pJzDl9t9-WxcYrX-tm5l7iBeAH3thudWRLTyTmHWyWmx0HIuvNA7KHi",
             "y": "qxdiVdyyLpDkLBdWH0ANiElRvFgD2JfK1j4_QXA4drGpRLC7VGCKaktj0YfRE6dQ"}
        ]});
        let keys = parse_jwks(&set).unwrap();
        assert_eq!(keys.len(), 2, "the HMAC key is dropped");
        assert!(
            candidates(&keys, Some("enc"), Algorithm::RS256).is_empty(),
            "an encryption key never verifies"
        );
        assert_eq!(candidates(&keys, Some("a"), Algorithm::ES384).len(), 1);
        assert_eq!(candidates(&keys, None, Algorithm::ES384).len(), 1);
        assert!(
            candidates(&keys, Some("a"), Algorithm::ES256).is_empty(),
            "curve mismatch"
        );
        assert!(
            candidates(&keys, Some("a"), Algorithm::RS384).is_empty(),
            "type mismatch"
        );
        assert!(candidates(&keys, Some("b"), Algorithm::ES384).is_empty());
        assert!(parse_jwks(&serde_json::json!({"nope": 1})).is_err());
    }
}
