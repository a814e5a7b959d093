//! Shared test harness: a configured server, test keys, HTTP helpers, the HTML flow.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode, header};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use smart_auth::{
    AuthSettings, ClientAuth, ClientRegistration, GrantType, PatientChoice, PatientDirectory, SmartAuth, UserAccount,
    async_trait, hash_password,
};
use tower::ServiceExt;
use url::Url;

pub const BASE: &str = "https://gw.example";
pub const FHIR: &str = "https://gw.example/fhir";
pub const TOKEN_URL: &str = "https://gw.example/auth/token";
pub const APP_REDIRECT: &str = "https://app.example/callback";
pub const APP_SCOPES: &str = "openid fhirUser launch launch/patient launch/encounter offline_access online_access \
                              patient/*.cruds user/*.cruds patient/*.read user/*.read";

/// A patient directory over a fixed list.
pub struct Patients(pub Vec<PatientChoice>);

#[async_trait]
impl PatientDirectory for Patients {
    async fn search(&self, text: &str, limit: usize) -> Vec<PatientChoice> {
        let text = text.to_lowercase();
        self.0
            .iter()
            .filter(|p| p.display.to_lowercase().contains(&text))
            .take(limit)
            .cloned()
            .collect()
    }

    async fn exists(&self, patient_id: &str) -> bool {
        self.0.iter().any(|p| p.id == patient_id)
    }
}

pub fn patients() -> Arc<Patients> {
    Arc::new(Patients(vec![
        PatientChoice {
            id: "drchrono-9".into(),
            display: "Ann Lee, 1980-02-03".into(),
        },
        PatientChoice {
            id: "drchrono-10".into(),
            display: "Bob Stone, 1975-05-06".into(),
        },
        PatientChoice {
            id: "drchrono-11".into(),
            display: "Carla <Diaz>, 1990-07-08".into(),
        },
    ]))
}

/// PEM-encodes DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A private key for signing test JWTs, with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub alg: Algorithm,
    pub kid: String,
    pub pem: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn ec(alg: Algorithm, kid: &str) -> Self {
        let curve = match alg {
            Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
            _ => &ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let pair = EcdsaKeyPair::generate(curve).unwrap();
        let pem = pem("PRIVATE KEY", pair.to_pkcs8v1().unwrap().as_ref());
        Self::from_pem(alg, kid, pem)
    }

    pub fn rsa(alg: Algorithm, kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pem = pem("PRIVATE KEY", pair.as_der().unwrap().as_ref());
        Self::from_pem(alg, kid, pem)
    }

    pub fn from_pem(alg: Algorithm, kid: &str, pem: String) -> Self {
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        let jwk = serde_json::to_value(&jwk).unwrap();
        Self {
            alg,
            kid: kid.to_owned(),
            pem,
            encoding,
            jwk,
        }
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// Signs `claims` with this key (`typ` in the header when given).
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Keys made once per test binary.
pub struct Keys {
    /// The gateway's signing key (configured, so tests can forge tokens with it).
    pub gateway: TestKey,
    pub client_es: TestKey,
    pub client_rs: TestKey,
    pub secret_hash: String,
    pub password_hash: String,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        gateway: TestKey::ec(Algorithm::ES256, "set-by-server"),
        client_es: TestKey::ec(Algorithm::ES384, "es-1"),
        client_rs: TestKey::rsa(Algorithm::RS384, "rs-1"),
        secret_hash: hash_password("s3cret"),
        password_hash: hash_password("pw"),
    })
}

pub fn client(id: &str, auth: ClientAuth, scopes: &str, grants: &[GrantType], redirect: &[&str]) -> ClientRegistration {
    ClientRegistration {
        client_id: id.into(),
        name: format!("Test {id}"),
        auth,
        redirect_uris: redirect.iter().map(|s| s.to_string()).collect(),
        allow_loopback_any_port: false,
        scopes: scopes.into(),
        grant_types: grants.to_vec(),
    }
}

pub fn settings() -> AuthSettings {
    let k = keys();
    let mut s = AuthSettings::new(Url::parse(BASE).unwrap());
    s.signing_key_pem = Some(k.gateway.pem.clone());
    s.clients = vec![
        client(
            "app",
            ClientAuth::Public,
            APP_SCOPES,
            &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            &[APP_REDIRECT],
        ),
        client(
            "confidential-app",
            ClientAuth::SecretBasic {
                secret_hash: k.secret_hash.clone(),
            },
            "openid fhirUser launch/patient patient/*.rs offline_access",
            &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            &["https://conf.example/cb"],
        ),
        client(
            "backend",
            ClientAuth::SecretBasic {
                secret_hash: k.secret_hash.clone(),
            },
            "system/*.rs system/Appointment.cruds",
            &[GrantType::ClientCredentials],
            &[],
        ),
        client(
            "jwt-es",
            ClientAuth::PrivateKeyJwt {
                jwks: Some(k.client_es.jwks()),
                jwks_url: None,
            },
            "system/*.cruds",
            &[GrantType::ClientCredentials],
            &[],
        ),
        client(
            "jwt-rs",
            ClientAuth::PrivateKeyJwt {
                jwks: Some(k.client_rs.jwks()),
                jwks_url: None,
            },
            "system/*.rs",
            &[GrantType::ClientCredentials],
            &[],
        ),
    ];
    s.users = vec![
        UserAccount {
            username: "dr".into(),
            password_hash: k.password_hash.clone(),
            display_name: "Dr. Test".into(),
            fhir_user: "Practitioner/drchrono-1".into(),
        },
        UserAccount {
            username: "pat".into(),
            password_hash: k.password_hash.clone(),
            display_name: "Ann Lee".into(),
            fhir_user: "Patient/drchrono-9".into(),
        },
    ];
    s
}

/// A response, body read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    /// The query parameters of the Location header.
    pub fn location_params(&self) -> HashMap<String, String> {
        let url = Url::parse(self.header(header::LOCATION)).unwrap_or_else(|_| panic!("no redirect: {self:?}"));
        url.query_pairs().into_owned().collect()
    }
}

pub struct Server {
    pub auth: SmartAuth,
    pub app: Router,
}

pub fn server() -> Server {
    server_with(settings())
}

pub fn server_with(settings: AuthSettings) -> Server {
    let auth = SmartAuth::new(settings, patients()).unwrap();
    let app = auth.router();
    Server { auth, app }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{id}:{secret}").as_bytes())
    )
}

impl Server {
    pub async fn send(&self, request: Request<Body>) -> Resp {
        read_whole(self.app.clone().oneshot(request).await.unwrap()).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    /// POSTs a form, with an Authorization header when given.
    pub async fn post(&self, path: &str, authorization: Option<&str>, body: &str) -> Resp {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(a) = authorization {
            request = request.header(header::AUTHORIZATION, a);
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap()).await
    }

    pub async fn token(&self, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Resp {
        self.post("/auth/token", authorization, &form(pairs)).await
    }

    /// Verifies an access token as the gateway's token gate does.
    pub async fn verify(&self, token: &str) -> Result<smart_auth::Identity, smart_auth::Unauthorized> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        self.auth.authenticate(&headers).await
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}-{}", rand_hex(), rand_hex());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, data_encoding::BASE64URL_NOPAD.encode(digest.as_ref()))
}

fn rand_hex() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    data_encoding::HEXLOWER.encode(&b)
}

/// The hidden transaction id of an authorization page.
pub fn tx_of(html: &str) -> String {
    let marker = "name=\"tx\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no tx in page: {html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// An authorization request URL.
pub fn authorize_url(client_id: &str, redirect: &str, scope: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("scope", scope),
        ("state", "st-123"),
        ("aud", FHIR),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    pairs.extend_from_slice(extra);
    format!("/auth/authorize?{}", form(&pairs))
}

/// Runs the pages: login as `user`, pick `patient` when the picker shows, allow. Returns the code.
pub async fn authorize(s: &Server, url: &str, user: &str, patient: Option<&str>) -> (String, HashMap<String, String>) {
    let page = s.get(url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let tx = tx_of(&page.body);
    let mut page = s
        .post(
            "/auth/authorize/login",
            None,
            &form(&[("tx", &tx), ("username", user), ("password", "pw")]),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    if page.body.contains("id=\"patient-search\"") {
        let patient = patient.expect("the picker was shown");
        let tx = tx_of(&page.body);
        page = s
            .post(
                "/auth/authorize/patient",
                None,
                &form(&[("tx", &tx), ("patient", patient)]),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }
    assert!(
        page.body.contains("id=\"allow\""),
        "consent page expected: {}",
        page.body
    );
    let tx = tx_of(&page.body);
    let done = s
        .post(
            "/auth/authorize/consent",
            None,
            &form(&[("tx", &tx), ("decision", "allow")]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let params = done.location_params();
    (params["code"].clone(), params)
}

/// A full authorization-code flow for `app`, returning the token response.
pub async fn app_tokens(s: &Server, scope: &str, user: &str, patient: Option<&str>) -> Value {
    let (verifier, challenge) = pkce();
    let url = authorize_url("app", APP_REDIRECT, scope, &challenge, &[]);
    let (code, _) = authorize(s, &url, user, patient).await;
    let r = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A client assertion for `client_id` signed by `key`.
pub fn assertion(key: &TestKey, client_id: &str, aud: &str, exp_in: i64, jti: &str) -> String {
    key.sign(
        None,
        &json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now() + exp_in, "jti": jti}),
    )
}

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn short(d: u64) -> Duration {
    Duration::from_secs(d)
}

/// Runs `body` with the URL of a PostgreSQL server started for it, on a runtime of its own
/// (`workers` threads; 0: current-thread). The runtime, and with it every connection the stores
/// hold (their listeners included), ends before the server is stopped, so its shutdown does not
/// wait for clients.
pub fn on_postgres<F, Fut>(workers: usize, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pg = store::testing::TempPostgres::start().unwrap_or_else(|e| panic!("PostgreSQL for the replica tests: {e}"));
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .unwrap();
    runtime.block_on(body(pg.url()));
    drop(runtime);
    drop(pg);
}

/// A router's answer, its body read whole (at most 1 MiB).
pub async fn read_whole(response: http::Response<Body>) -> Resp {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Opens the login page of a new authorization request of `app`; its transaction id.
pub async fn start_login(s: &Server) -> String {
    let (_, challenge) = pkce();
    let page = s
        .get(&authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[]))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    tx_of(&page.body)
}

/// The login form of transaction `tx`.
pub fn login_request(tx: &str, user: &str, password: &str) -> Request<Body> {
    Request::post("/auth/authorize/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form(&[
            ("tx", tx),
            ("username", user),
            ("password", password),
        ])))
        .unwrap()
}
