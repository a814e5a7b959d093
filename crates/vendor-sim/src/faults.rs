//! Fault knobs shared by the simulators: latency, server errors, malformed and truncated bodies,
//! and foreign pagination origins.
//!
//! Which request gets which fault is decided by a ChaCha PRNG seeded from the simulator's seed,
//! so a run with the same seed and the same request sequence sees the same faults.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Faults injected into a simulator's API responses (never into its OAuth endpoints).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added to every API response.
    pub latency: Duration,
    /// Fraction of API requests answered 500, 502 or 503 instead of being served.
    pub error_rate: f64,
    /// Fraction of API requests answered 200 with a body that is not JSON.
    pub malformed_rate: f64,
    /// Fraction of API requests answered 200 with the real JSON body cut in half.
    pub truncated_rate: f64,
    /// When set, pagination `next`/`previous` URLs use this origin (e.g. `https://evil.example`)
    /// instead of the simulator's own, to test that clients refuse to follow them.
    pub foreign_next_origin: Option<String>,
}

/// What to do with one API request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Serve it normally.
    Serve,
    /// Answer with this 5xx status and do not serve it.
    ServerError(StatusCode),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Serve it, then cut the body in half.
    Truncated,
}

/// Draws a [`FaultAction`] per request from a seeded PRNG.
#[derive(Debug)]
pub struct FaultDice {
    rng: ChaCha8Rng,
}

impl FaultDice {
    pub fn new(seed: u64) -> Self {
        // Mix the seed so the fault stream differs from the data generator's stream.
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17_0000_0001),
        }
    }

    /// Decides the fate of one request under `faults`. Rates are clamped to `0.0..=1.0` and
    /// checked in the order error, malformed, truncated.
    pub fn roll(&mut self, faults: &Faults) -> FaultAction {
        let error = clamp_rate(faults.error_rate);
        let malformed = clamp_rate(faults.malformed_rate);
        let truncated = clamp_rate(faults.truncated_rate);
        if error + malformed + truncated <= 0.0 {
            return FaultAction::Serve;
        }
        let draw: f64 = self.rng.random();
        if draw < error {
            let status = match self.rng.random_range(0..3u8) {
                0 => StatusCode::INTERNAL_SERVER_ERROR,
                1 => StatusCode::BAD_GATEWAY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            FaultAction::ServerError(status)
        } else if draw < error + malformed {
            FaultAction::Malformed
        } else if draw < error + malformed + truncated {
            FaultAction::Truncated
        } else {
            FaultAction::Serve
        }
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) }
}

/// The response for [`FaultAction::ServerError`]: an HTML page as a web server or load balancer
/// would send it (clients must not expect JSON on a 5xx).
pub fn server_error_response(status: StatusCode) -> Response {
    let body = match status {
        StatusCode::BAD_GATEWAY => {
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1></body></html>\n"
        }
        _ => "<h1>Server Error (500)</h1>\n",
    };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The response for [`FaultAction::Malformed`]: status 200, a JSON content type, and a body
/// that is not JSON.
pub fn malformed_response() -> Response {
    let body = "<!DOCTYPE html><html><body><p>Our servers are busy. Please try again.</p></body></html>\n";
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Applies [`FaultAction::Truncated`] to a served response: the first half of its body, with a
/// matching `Content-Length`, so the client receives a complete HTTP message whose JSON is cut.
pub async fn truncate_response(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rates_always_serve() {
        let mut dice = FaultDice::new(1);
        let faults = Faults::default();
        assert!((0..1000).all(|_| dice.roll(&faults) == FaultAction::Serve));
    }

    #[test]
    fn full_error_rate_always_fails() {
        let mut dice = FaultDice::new(1);
        let faults = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
        assert!((0..100).all(|_| matches!(dice.roll(&faults), FaultAction::ServerError(s) if s.is_server_error())));
    }

    #[test]
    fn rates_are_roughly_respected() {
        let mut dice = FaultDice::new(7);
        let faults = Faults {
            malformed_rate: 0.25,
            ..Faults::default()
        };
        let malformed = (0..4000)
            .filter(|_| dice.roll(&faults) == FaultAction::Malformed)
            .count();
        assert!((800..1200).contains(&malformed), "{malformed}");
    }
}
