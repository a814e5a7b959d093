//! The audit hook: every token issued or refused and every failed or locked-out sign-in reaches the
//! `AuthAudit` set on the server, with the client, user, grant, scope, error code and caller address,
//! and never a secret.

use crate::common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::connect_info::MockConnectInfo;
use common::*;
use http::StatusCode;
use smart_auth::{AuthAudit, AuthEvent, AuthEventKind, AuthSettings, SmartAuth};

/// Collects the events.
#[derive(Default)]
struct Collected(Mutex<Vec<AuthEvent>>);

impl AuthAudit for Collected {
    fn record(&self, event: AuthEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collected {
    /// The events so far, emptying the list.
    fn take(&self) -> Vec<AuthEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The one event recorded since the last take.
    fn one(&self) -> AuthEvent {
        let mut events = self.take();
        assert_eq!(events.len(), 1, "exactly one event expected: {events:?}");
        events.remove(0)
    }
}

const V4: [u8; 4] = [203, 0, 113, 7];

fn v4() -> IpAddr {
    IpAddr::from(V4)
}

/// A server with an audit sink whose every request comes from `addr`.
fn audited_from(settings: AuthSettings, addr: SocketAddr) -> (Server, Arc<Collected>) {
    let auth = SmartAuth::new(settings, patients()).unwrap();
    let sink = Arc::new(Collected::default());
    auth.set_audit(sink.clone());
    let app = auth.router().layer(MockConnectInfo(addr));
    (Server { auth, app }, sink)
}

fn audited(settings: AuthSettings) -> (Server, Arc<Collected>) {
    audited_from(settings, SocketAddr::from((V4, 40_000)))
}

async fn login(s: &Server, tx: &str, user: &str, password: &str) -> Resp {
    s.post(
        "/auth/authorize/login",
        None,
        &form(&[("tx", tx), ("username", user), ("password", password)]),
    )
    .await
}

fn assert_recent(event: &AuthEvent, since: i64) {
    assert!(
        event.at >= since && event.at <= now() + 1,
        "at {} not in [{since}, now]",
        event.at
    );
}

fn assert_no_secret(events: &[AuthEvent], secrets: &[&str]) {
    let text = format!("{events:?}");
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "an event carries the secret {secret:?}: {text}");
    }
}

#[tokio::test]
async fn client_credentials_issued_with_client_grant_scope_and_full_ipv6_address() {
    let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0xaaaa, 0xbbbb, 0xcccc, 0xdddd));
    let (s, sink) = audited_from(settings(), SocketAddr::new(ip, 50_000));
    let since = now();
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "system/Patient.rs system/Appointment.c"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::TokenIssued);
    assert_recent(&e, since);
    assert_eq!(e.client_id.as_deref(), Some("backend"));
    assert_eq!(e.grant_type, Some("client_credentials"));
    assert_eq!(e.scope.as_deref(), Some("system/Patient.rs system/Appointment.c"));
    assert_eq!(e.error, None);
    assert_eq!(e.fhir_user, None);
    assert_eq!(e.patient, None);
    assert_eq!(e.username, None);
    assert_eq!(e.ip, Some(ip), "the whole address, not its /64");
    assert_no_secret(&[e], &["s3cret", token.as_str()]);
}

#[tokio::test]
async fn refused_client_authentication_names_the_claimed_client() {
    let (s, sink) = audited(settings());
    let since = now();
    // A wrong secret of a known client.
    let r = s
        .token(
            Some(&basic("backend", "wrong-secret-1f9d")),
            &[("grant_type", "client_credentials"), ("scope", "system/*.rs")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::TokenRefused);
    assert_recent(&e, since);
    assert_eq!(e.error.as_deref(), Some("invalid_client"));
    assert_eq!(e.client_id.as_deref(), Some("backend"));
    assert_eq!(e.grant_type, Some("client_credentials"));
    assert_eq!(e.scope, None);
    assert_eq!(e.ip, Some(v4()));
    let mut all = vec![e];

    // An unknown client: the name it gave.
    let r = s
        .token(
            Some(&basic("nobody", "wrong-secret-2c4e")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref()),
        (AuthEventKind::TokenRefused, Some("invalid_client"), Some("nobody"))
    );
    all.push(e);

    // A public client's id in the form, with a client secret it must not post.
    let r = s
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "wrong-secret-3a7b"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref()),
        (AuthEventKind::TokenRefused, Some("invalid_client"), Some("app"))
    );
    all.push(e);

    // A client id longer than 128 characters is cut.
    let long = "c".repeat(300);
    let r = s
        .token(Some(&basic(&long, "x")), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let e = sink.one();
    assert_eq!(e.client_id, Some("c".repeat(128)));
    all.push(e);

    // A client assertion without client_id, signed with a key the client does not have: the
    // client its iss names.
    let signed = assertion(&keys().client_rs, "jwt-es", TOKEN_URL, 60, "audit-jti-1");
    let r = s
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &signed),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref()),
        (AuthEventKind::TokenRefused, Some("invalid_client"), Some("jwt-es"))
    );
    all.push(e);

    assert_no_secret(
        &all,
        &[
            "wrong-secret-1f9d",
            "wrong-secret-2c4e",
            "wrong-secret-3a7b",
            signed.as_str(),
        ],
    );
}

#[tokio::test]
async fn unsupported_grant_types_and_unparsable_requests_are_refused() {
    let (s, sink) = audited(settings());
    let r = s
        .token(
            None,
            &[
                ("grant_type", "password"),
                ("client_id", "app"),
                ("username", "dr"),
                ("password", "pw-never-recorded"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::TokenRefused);
    assert_eq!(e.error.as_deref(), Some("unsupported_grant_type"));
    assert_eq!(e.client_id.as_deref(), Some("app"));
    assert_eq!(e.grant_type, None, "not a grant type this server knows");
    assert_eq!(e.username, None);
    assert_eq!(e.ip, Some(v4()));
    assert_no_secret(&[e], &["pw-never-recorded"]);

    // No grant_type at all.
    let r = s.token(None, &[("client_id", "app")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref(), e.grant_type),
        (AuthEventKind::TokenRefused, Some("invalid_request"), Some("app"), None)
    );

    // A body that does not parse (a repeated parameter): no client is known.
    let r = s
        .post(
            "/auth/token",
            None,
            "grant_type=client_credentials&grant_type=client_credentials&client_id=app",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref(), e.grant_type),
        (AuthEventKind::TokenRefused, Some("invalid_request"), None, None)
    );

    // A client not allowed the grant: it authenticated, so it is named.
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "refresh_token"), ("refresh_token", "rt-never-recorded")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref(), e.grant_type),
        (
            AuthEventKind::TokenRefused,
            Some("unauthorized_client"),
            Some("backend"),
            Some("refresh_token")
        )
    );
    assert_no_secret(&[e], &["rt-never-recorded", "s3cret"]);
}

#[tokio::test]
async fn the_authorization_code_flow_issues_to_the_signed_in_user() {
    let (s, sink) = audited(settings());
    let since = now();
    let scope = "openid fhirUser launch/patient patient/*.rs offline_access";
    let (verifier, challenge) = pkce();
    let url = authorize_url("app", APP_REDIRECT, scope, &challenge, &[]);
    let (code, _) = authorize(&s, &url, "dr", Some("drchrono-9")).await;
    assert!(sink.take().is_empty(), "a successful sign-in is not an event");
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", "app"),
    ];
    let r = s.token(None, &redeem).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let t = r.json();
    assert_eq!(t["scope"], scope);
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::TokenIssued);
    assert_recent(&e, since);
    assert_eq!(e.client_id.as_deref(), Some("app"));
    assert_eq!(e.grant_type, Some("authorization_code"));
    assert_eq!(e.scope.as_deref(), Some(scope));
    assert_eq!(e.patient.as_deref(), Some("drchrono-9"));
    assert_eq!(e.fhir_user.as_deref(), Some("Practitioner/drchrono-1"));
    assert_eq!(e.username, None);
    assert_eq!(e.error, None);
    assert_eq!(e.ip, Some(v4()));
    let mut all = vec![e];

    // The refresh: the same user and patient, the grant it is.
    let refresh_token = t["refresh_token"].as_str().unwrap().to_owned();
    let r = s
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", "app"),
                ("scope", "patient/Appointment.rs"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let t2 = r.json();
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::TokenIssued);
    assert_eq!(e.grant_type, Some("refresh_token"));
    assert_eq!(e.scope.as_deref(), Some("patient/Appointment.rs"));
    assert_eq!(e.patient.as_deref(), Some("drchrono-9"));
    assert_eq!(e.fhir_user.as_deref(), Some("Practitioner/drchrono-1"));
    all.push(e);

    // The code again: refused, invalid_grant, the client named.
    let r = s.token(None, &redeem).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref(), e.grant_type),
        (
            AuthEventKind::TokenRefused,
            Some("invalid_grant"),
            Some("app"),
            Some("authorization_code")
        )
    );
    assert_eq!(e.fhir_user, None);
    all.push(e);

    let mut secrets = vec![code.as_str(), verifier.as_str(), refresh_token.as_str()];
    for body in [&t, &t2] {
        for key in ["access_token", "refresh_token", "id_token"] {
            if let Some(v) = body[key].as_str() {
                secrets.push(v);
            }
        }
    }
    assert!(secrets.len() >= 7, "{secrets:?}");
    assert_no_secret(&all, &secrets);
}

#[tokio::test]
async fn a_wrong_password_is_a_failed_sign_in_with_the_username() {
    let (s, sink) = audited(settings());
    let since = now();
    let tx = start_login(&s).await;
    let r = login(&s, &tx, "dr", "wrong-pw-5e2c").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("The username or password is incorrect."), "{}", r.body);
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::LoginFailed);
    assert_recent(&e, since);
    assert_eq!(e.client_id.as_deref(), Some("app"));
    assert_eq!(e.username.as_deref(), Some("dr"));
    assert_eq!(e.fhir_user.as_deref(), Some("Practitioner/drchrono-1"));
    assert_eq!(e.ip, Some(v4()));
    assert_eq!(
        (e.grant_type, e.scope.as_deref(), e.error.as_deref()),
        (None, None, None)
    );
    let mut all = vec![e];

    // A username that does not exist: no fhirUser; a long one is cut to 128 characters.
    let r = login(&s, &tx, "mallory", "wrong-pw-8b1d").await;
    assert_eq!(r.status, StatusCode::OK);
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::LoginFailed);
    assert_eq!(e.username.as_deref(), Some("mallory"));
    assert_eq!(e.fhir_user, None);
    all.push(e);
    let long = "u".repeat(200);
    let r = login(&s, &tx, &long, "wrong-pw-9c3f").await;
    assert_eq!(r.status, StatusCode::OK);
    let e = sink.one();
    assert_eq!(e.username, Some("u".repeat(128)));
    all.push(e);

    // The right password: signed in, nothing recorded.
    let r = login(&s, &tx, "dr", "pw").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"allow\""), "{}", r.body);
    assert!(sink.take().is_empty());

    assert_no_secret(&all, &["wrong-pw-5e2c", "wrong-pw-8b1d", "wrong-pw-9c3f", tx.as_str()]);
}

#[tokio::test]
async fn the_lock_out_is_a_locked_sign_in() {
    let mut settings = settings();
    settings.login_failures_per_user = 2;
    let (s, sink) = audited(settings);
    for password in ["wrong-pw-a1", "wrong-pw-b2"] {
        let tx = start_login(&s).await;
        assert_eq!(login(&s, &tx, "pat", password).await.status, StatusCode::OK);
    }
    let failed = sink.take();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for e in &failed {
        assert_eq!(e.kind, AuthEventKind::LoginFailed);
        assert_eq!(e.username.as_deref(), Some("pat"));
        assert_eq!(e.fhir_user.as_deref(), Some("Patient/drchrono-9"));
    }
    // Locked out: even the right password is refused before it is checked.
    let tx = start_login(&s).await;
    let r = login(&s, &tx, "pat", "pw").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let e = sink.one();
    assert_eq!(e.kind, AuthEventKind::LoginLocked);
    assert_eq!(e.client_id.as_deref(), Some("app"));
    assert_eq!(e.username.as_deref(), Some("pat"));
    assert_eq!(e.fhir_user.as_deref(), Some("Patient/drchrono-9"));
    assert_eq!(e.ip, Some(v4()));
    assert_eq!(e.error, None);

    let mut all = failed;
    all.push(e);
    assert_no_secret(&all, &["wrong-pw-a1", "wrong-pw-b2", tx.as_str()]);
}

#[tokio::test]
async fn the_audit_sink_is_set_once() {
    let (s, first) = audited(settings());
    let second = Arc::new(Collected::default());
    s.auth.set_audit(second.clone());
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = first.one();
    assert_eq!(e.kind, AuthEventKind::TokenIssued);
    assert_eq!(e.scope.as_deref(), Some("system/*.rs system/Appointment.cruds"));
    assert!(second.take().is_empty(), "the second sink is ignored");
}

#[tokio::test]
async fn without_connection_information_the_address_is_unknown() {
    let auth = SmartAuth::new(settings(), patients()).unwrap();
    let sink = Arc::new(Collected::default());
    auth.set_audit(sink.clone());
    let s = Server {
        app: auth.router(),
        auth,
    };
    let r = s
        .token(None, &[("grant_type", "client_credentials"), ("client_id", "app")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let e = sink.one();
    assert_eq!(
        (e.kind, e.error.as_deref(), e.client_id.as_deref(), e.ip),
        (
            AuthEventKind::TokenRefused,
            Some("unauthorized_client"),
            Some("app"),
            None
        )
    );
}
