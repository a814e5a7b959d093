//! Bearer-token verification: the gateway's own access tokens and an external IdP's.

use sha2::{Digest, Sha256};
use std::sync::Arc;

use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scopes::{Scope, ScopeSet};
use crate::util::{b64url, sha256};
use crate::{External, Identity, SmartAuth, Unauthorized};

/// Clock skew tolerated on `exp` and `nbf`.
pub(crate) const LEEWAY: u64 = 60;
/// Longest bearer token accepted.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The JOSE `typ` of the gateway's access tokens (RFC 9068).
pub(crate) const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of the gateway's access tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) jti: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) encounter: Option<String>,
    /// Absolute URL of the user's FHIR resource.
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub(crate) fhir_user: Option<String>,
}

/// Words for a failed verification (never the token).
fn describe(e: &jsonwebtoken::errors::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidAudience => "the token is not meant for this server (aud)",
        ErrorKind::InvalidIssuer => "the token's issuer is not trusted",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::InvalidKeyFormat => {
            "the token's signing algorithm is not accepted"
        }
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        _ => "the token is malformed",
    }
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, Unauthorized> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Unauthorized::missing());
    };
    if values.next().is_some() {
        return Err(Unauthorized::invalid("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Unauthorized::invalid("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Unauthorized::missing());
    }
    let token = token.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.chars().all(b64token) {
        return Err(Unauthorized::invalid("the bearer token is malformed"));
    }
    Ok(token)
}

/// The unverified `iss` of a JWT (to pick the verifier).
fn peek_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Verified tokens remembered at most (then the expired go, or all).
const MAX_VERIFIED: usize = 10_000;

impl SmartAuth {
    /// Verifies the bearer token of a request: one of this server's access tokens, or (when
    /// configured) one of the external IdP's.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Unauthorized> {
        let token = bearer(headers)?;
        self.verify_token(token).await
    }

    /// Verifies an access token of either issuer. One of this server's tokens verified before is
    /// only checked for expiry and revocation (an external IdP's is verified every time: its keys
    /// can be withdrawn).
    pub(crate) async fn verify_token(&self, token: &str) -> Result<Identity, Unauthorized> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(identity) = self.remembered(&digest) {
            return Ok(identity);
        }
        let identity = self.verify_token_fully(token).await?;
        if identity.issuer == self.inner.issuer {
            let mut verified = self.inner.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.len() >= MAX_VERIFIED {
                let t = crate::util::now();
                verified.retain(|_, id| id.expires_at > t);
                if verified.len() >= MAX_VERIFIED {
                    verified.clear();
                }
            }
            verified.insert(digest, identity.clone());
        }
        Ok(identity)
    }

    /// Drops tokens just revoked from the verified-token cache. Every cache hit checks revocation
    /// and expiry anyway (a token verified while it was being revoked may be cached after this ran);
    /// this keeps revoked tokens out of the cache as well.
    pub(crate) fn forget_verified(&self, jtis: &[String]) {
        if jtis.is_empty() {
            return;
        }
        let jtis: std::collections::HashSet<&str> = jtis.iter().map(String::as_str).collect();
        self.inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, identity| !jtis.contains(identity.token_id.as_str()));
    }

    /// True when `token` (this server's, verified before) is in the verified-token cache.
    #[cfg(test)]
    pub(crate) fn is_remembered(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&digest)
    }

    /// One of this server's tokens verified before, still unexpired and not revoked (checked on
    /// every hit: the cache never outlives a revocation or an expiry).
    fn remembered(&self, digest: &[u8; 32]) -> Option<Identity> {
        let identity = {
            let verified = self.inner.verified.lock().unwrap_or_else(|e| e.into_inner());
            verified.get(digest)?.clone()
        };
        let usable = crate::util::now() <= identity.expires_at.saturating_add(LEEWAY as i64)
            && !self.store().is_revoked(&identity.token_id);
        if !usable {
            self.inner
                .verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(digest);
            return None;
        }
        Some(identity)
    }

    async fn verify_token_fully(&self, token: &str) -> Result<Identity, Unauthorized> {
        let issuer = peek_issuer(token).ok_or_else(|| Unauthorized::invalid("the token is not a JWT"))?;
        if issuer == self.inner.issuer {
            let claims = self.verify_own(token)?;
            return Ok(self.identity_from_own(claims));
        }
        match &self.inner.external {
            Some(ext) if ext.cfg.issuer == issuer => self.verify_external(ext, token).await,
            _ => Err(Unauthorized::invalid("the token's issuer is not trusted")),
        }
    }

    /// Verifies one of the gateway's own access tokens: known kid, the key's own algorithm,
    /// signature, `exp`/`nbf` (60 s leeway), `iss`, `aud` = the FHIR base URL, type, not revoked.
    pub(crate) fn verify_own(&self, token: &str) -> Result<AccessClaims, Unauthorized> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Unauthorized::invalid(describe(&e)))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| Unauthorized::invalid("the token names no signing key (kid)"))?;
        let key = self
            .inner
            .keys
            .find(kid)
            .ok_or_else(|| Unauthorized::invalid("the token's signing key is unknown"))?;
        if header.alg != key.alg {
            return Err(Unauthorized::invalid("the token's signing algorithm is not accepted"));
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(Unauthorized::invalid("the token is not an access token"));
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.fhir_base]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| Unauthorized::invalid(describe(&e)))?;
        let claims = data.claims;
        if self.store().is_revoked(&claims.jti) {
            return Err(Unauthorized::invalid("the token has been revoked"));
        }
        Ok(claims)
    }

    /// A relative reference when `fhir_user` points into this server's FHIR base.
    pub(crate) fn relative_fhir_user(&self, fhir_user: &str) -> String {
        fhir_user
            .strip_prefix(&self.inner.fhir_base)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(fhir_user)
            .to_owned()
    }

    pub(crate) fn identity_from_own(&self, c: AccessClaims) -> Identity {
        Identity {
            client_id: c.client_id,
            // Signed by this server from a parsed set, so it parses; an unparsable one grants nothing.
            scopes: Arc::new(ScopeSet::parse(&c.scope).unwrap_or_default()),
            patient: c.patient,
            encounter: c.encounter,
            fhir_user: c.fhir_user.map(|u| self.relative_fhir_user(&u)),
            subject: Some(c.sub),
            token_id: c.jti,
            expires_at: c.exp,
            issuer: c.iss,
        }
    }

    async fn verify_external(&self, ext: &External, token: &str) -> Result<Identity, Unauthorized> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Unauthorized::invalid(describe(&e)))?;
        let alg = header.alg;
        if !matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(Unauthorized::invalid("the token's signing algorithm is not accepted"));
        }
        let keys = ext
            .jwks
            .candidates(header.kid.as_deref(), alg)
            .await
            .map_err(|_| Unauthorized::invalid("the issuer's signing keys cannot be fetched"))?;
        if keys.is_empty() {
            return Err(Unauthorized::invalid("the token's signing key is unknown"));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&ext.cfg.issuer]);
        validation.set_audience(&[&ext.cfg.audience]);
        let mut last = Unauthorized::invalid("the token's signature does not verify");
        for key in &keys {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &validation) {
                Ok(data) => return Ok(self.identity_from_external(ext, token, data.claims)),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => last = Unauthorized::invalid(describe(&e)),
            }
        }
        Err(last)
    }

    fn identity_from_external(&self, ext: &External, token: &str, claims: serde_json::Map<String, Value>) -> Identity {
        let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let mut tokens: Vec<String> = Vec::new();
        if let Some(s) = string("scope") {
            tokens.extend(s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned));
        }
        match claims.get("scp") {
            Some(Value::String(s)) => tokens.extend(s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned)),
            Some(Value::Array(items)) => tokens.extend(items.iter().filter_map(Value::as_str).map(str::to_owned)),
            _ => {}
        }
        // Scopes this grammar does not know are ignored rather than failing the token.
        let valid: Vec<String> = tokens.into_iter().filter(|t| Scope::parse(t).is_ok()).collect();
        let scopes = ScopeSet::parse(&valid.join(" ")).unwrap_or_default();
        let patient = string(&ext.cfg.patient_claim).map(|p| p.strip_prefix("Patient/").unwrap_or(&p).to_owned());
        let fhir_user = ext
            .cfg
            .fhir_user_claim
            .as_deref()
            .and_then(string)
            .map(|u| self.relative_fhir_user(&u));
        let subject = string("sub");
        let client_id = string("client_id")
            .or_else(|| string("azp"))
            .or_else(|| string("cid"))
            .or_else(|| subject.clone())
            .unwrap_or_default();
        Identity {
            client_id,
            scopes: Arc::new(scopes),
            patient,
            encounter: string("encounter"),
            fhir_user,
            subject,
            token_id: string("jti").unwrap_or_else(|| b64url(&sha256(token.as_bytes()))),
            expires_at: claims.get("exp").and_then(Value::as_i64).unwrap_or_default(),
            issuer: ext.cfg.issuer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(&HeaderMap::new()).unwrap_err().error, None);
        assert_eq!(bearer(&headers("Basic abc")).unwrap_err().error, None);
        assert_eq!(bearer(&headers("Bearer ")).unwrap_err().error, Some("invalid_token"));
        assert_eq!(bearer(&headers("Bearer a b")).unwrap_err().error, Some("invalid_token"));
        assert_eq!(bearer(&headers("bearer abc.def.ghi")).unwrap(), "abc.def.ghi");
    }

    #[test]
    fn challenges_never_break_quoting() {
        let u = Unauthorized::invalid("bad \"quote\" \\ and\nnewline");
        assert_eq!(
            u.www_authenticate(),
            "Bearer realm=\"fhir-gateway\", error=\"invalid_token\", error_description=\"bad quote  andnewline\""
        );
        assert_eq!(
            Unauthorized::missing().www_authenticate(),
            "Bearer realm=\"fhir-gateway\""
        );
    }

    struct NoPatients;

    #[async_trait::async_trait]
    impl crate::PatientDirectory for NoPatients {
        async fn search(&self, _text: &str, _limit: usize) -> Vec<crate::PatientChoice> {
            Vec::new()
        }

        async fn exists(&self, _patient_id: &str) -> bool {
            false
        }
    }

    /// A server and one of its access tokens (jti, exp, token).
    fn server_and_token(jti: &str) -> (SmartAuth, String, i64, String) {
        let settings = crate::AuthSettings::new(url::Url::parse("https://gw.example").unwrap());
        let auth = SmartAuth::new(settings, Arc::new(NoPatients)).unwrap();
        let t = crate::util::now();
        let claims = AccessClaims {
            iss: auth.issuer().to_owned(),
            sub: "backend".into(),
            aud: auth.fhir_base_url().to_owned(),
            exp: t + 300,
            iat: t,
            nbf: t,
            jti: jti.to_owned(),
            client_id: "backend".into(),
            scope: "system/*.rs".into(),
            patient: None,
            encounter: None,
            fhir_user: None,
        };
        let token = auth.inner.keys.current().sign(ACCESS_TOKEN_TYP, &claims).unwrap();
        (auth, jti.to_owned(), t + 300, token)
    }

    #[tokio::test]
    async fn every_cache_hit_checks_revocation() {
        let (auth, jti, exp, token) = server_and_token("jti-1");
        assert!(auth.verify_token(&token).await.is_ok());
        assert!(auth.is_remembered(&token), "verified tokens are cached");
        // Revoked behind the cache's back (no purge): the hit still refuses it and drops it.
        auth.store().revoke_access(&jti, exp);
        let err = auth.verify_token(&token).await.unwrap_err();
        assert!(err.description.contains("revoked"), "{err}");
        assert!(!auth.is_remembered(&token));
    }

    #[tokio::test]
    async fn revocation_purges_the_cache() {
        let (auth, jti, _, token) = server_and_token("jti-2");
        assert!(auth.verify_token(&token).await.is_ok());
        auth.forget_verified(&["other".to_owned()]);
        assert!(auth.is_remembered(&token), "only the revoked ids are dropped");
        auth.forget_verified(std::slice::from_ref(&jti));
        assert!(!auth.is_remembered(&token));
    }

    #[test]
    fn issuers_are_peeked_only_from_three_part_tokens() {
        let payload = data_encoding::BASE64URL_NOPAD.encode(br#"{"iss":"https://x"}"#);
        assert_eq!(peek_issuer(&format!("a.{payload}.c")).as_deref(), Some("https://x"));
        assert_eq!(peek_issuer(&format!("a.{payload}")), None);
        assert_eq!(peek_issuer(&format!("a.{payload}.c.d")), None);
        assert_eq!(peek_issuer("a.!!!.c"), None);
    }
}
