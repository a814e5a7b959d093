//! The audit hook: what the authorization server tells the gateway about every token it issues or
//! refuses and every failed sign-in, for its audit trail. The gateway implements [`AuthAudit`] and
//! sets it with [`SmartAuth::set_audit`](crate::SmartAuth::set_audit); events never carry a secret.

use std::net::IpAddr;
use std::sync::Arc;

use crate::SmartAuth;
use crate::util::{now, truncate};

/// Longest client id and username an event carries (characters).
const MAX_NAME: usize = 128;

/// What the authorization server tells an [`AuthAudit`] about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEventKind {
    /// The token endpoint issued tokens.
    TokenIssued,
    /// The token endpoint refused a request (any OAuth error, including a failed client authentication).
    TokenRefused,
    /// A sign-in at the login page failed (wrong username or password).
    LoginFailed,
    /// A sign-in was refused because of the lock-out after too many failures.
    LoginLocked,
}

/// One event. Never carries a secret: no password, no token, no code, no client secret.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    pub kind: AuthEventKind,
    /// When (unix seconds).
    pub at: i64,
    /// The client: authenticated, or for a refusal the one the request named (form `client_id`, else the Basic user, else the unverified `iss` of a client assertion), truncated to 128 chars.
    pub client_id: Option<String>,
    /// The user's `fhirUser` (`Practitioner/…`, `Patient/…`) when known (issued tokens of a signed-in user; a failed sign-in of a username that exists: its fhirUser), else None.
    pub fhir_user: Option<String>,
    /// The username typed at a failed/locked sign-in, truncated to 128 chars (it is what an auditor needs to see an attack on an account).
    pub username: Option<String>,
    /// The launch/patient context of issued tokens.
    pub patient: Option<String>,
    /// `authorization_code`, `refresh_token`, `client_credentials` (token events).
    pub grant_type: Option<&'static str>,
    /// The granted scopes (issued) — a space-separated string.
    pub scope: Option<String>,
    /// The OAuth error code of a refusal (`invalid_client`, `invalid_grant`, …) — the code only, not the description.
    pub error: Option<String>,
    /// The caller's address (full, not truncated), when known.
    pub ip: Option<std::net::IpAddr>,
}

impl AuthEvent {
    /// An event of `kind` now, every detail unknown.
    pub(crate) fn new(kind: AuthEventKind) -> Self {
        Self {
            kind,
            at: now(),
            client_id: None,
            fhir_user: None,
            username: None,
            patient: None,
            grant_type: None,
            scope: None,
            error: None,
            ip: None,
        }
    }
}

/// Receives the authorization server's events. Must not block: called on the request path.
pub trait AuthAudit: Send + Sync + 'static {
    fn record(&self, event: AuthEvent);
}

/// A client id or username as an event carries it: at most 128 characters.
pub(crate) fn name(s: &str) -> String {
    truncate(s, MAX_NAME)
}

/// The full address of the peer of a request served with
/// `axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())` (or given by
/// axum's `MockConnectInfo` in tests); an IPv4-mapped IPv6 address as its IPv4 address.
pub(crate) fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    crate::throttle::peer_addr(extensions).map(|a| a.ip().to_canonical())
}

impl SmartAuth {
    /// Sets where the authorization server's events go (the gateway's audit trail). Once: a second
    /// call is ignored (with a warning). Without one, events are not even built.
    pub fn set_audit(&self, audit: Arc<dyn AuthAudit>) {
        if self.inner.audit.set(audit).is_err() {
            tracing::warn!("an audit sink is already set; the new one is ignored");
        }
    }

    /// Records the event `make` builds, when an audit sink is set.
    pub(crate) fn audit(&self, make: impl FnOnce() -> AuthEvent) {
        if let Some(sink) = self.inner.audit.get() {
            sink.record(make());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peer_addresses_are_kept_whole_and_mapped_ipv4_is_unmapped() {
        assert_eq!(peer_ip(&http::Extensions::new()), None);
        let of = |addr: &str, connected: bool| {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut extensions = http::Extensions::new();
            if connected {
                extensions.insert(ConnectInfo(addr));
            } else {
                extensions.insert(MockConnectInfo(addr));
            }
            peer_ip(&extensions)
        };
        // Not cut to the /64 the throttle counts by.
        assert_eq!(of("[2001:db8:1:2:aaaa::1]:443", true), Some(ip("2001:db8:1:2:aaaa::1")));
        assert_eq!(
            of("[2001:db8:1:2:aaaa::1]:443", false),
            Some(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(of("[::ffff:192.0.2.7]:443", true), Some(ip("192.0.2.7")));
        assert_eq!(of("198.51.100.4:5000", false), Some(ip("198.51.100.4")));
    }

    #[test]
    fn names_are_truncated_to_128_characters() {
        assert_eq!(name(&"é".repeat(300)).chars().count(), 128);
        assert_eq!(name("backend"), "backend");
    }
}
