//! Fault knobs shared by the simulators: latency and latency spikes, server errors, rate-limit
//! answers (random or in bursts), malformed and truncated bodies, dropped connections, and foreign
//! pagination origins.
//!
//! Which request gets which fault is decided by a ChaCha PRNG seeded from the simulator's seed,
//! so a run with the same seed and the same request sequence sees the same faults. A knob left at
//! zero draws nothing from the PRNG, so adding a knob does not change the faults the others give.

use std::future::Future;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Faults injected into a simulator's API responses (never into its OAuth endpoints).
///
/// Rates are fractions of API requests in `0.0..=1.0` (clamped; NaN is zero). The outcome rates
/// are checked in the order error, malformed, truncated, rate limit, drop, from one draw, so
/// their sum should stay at or below 1.
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
    /// Fraction of API requests answered 429 with the vendor's own rate-limit body and
    /// `Retry-After: 1`, instead of being served.
    pub rate_limit_rate: f64,
    /// The next this-many API requests (of those that pass the token check) are answered 429 as
    /// for `rate_limit_rate`; counted down by each one (set it again, e.g. through the handles'
    /// `set_rate_limit_burst`, for a new burst).
    pub rate_limit_burst: u32,
    /// Fraction of API requests held `spike_latency` longer (on top of `latency`).
    pub spike_rate: f64,
    /// The extra delay of a latency spike.
    pub spike_latency: Duration,
    /// Fraction of API requests whose connection is dropped: the request is not served and the
    /// client receives no byte of an answer (the connection closes under it).
    pub drop_rate: f64,
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
    /// Answer 429 (the vendor's rate-limit answer, `Retry-After: 1`) and do not serve it.
    RateLimited,
    /// Do not serve it and close the connection without answering.
    Dropped,
}

/// The fate of one API request: hold it `delay` (a latency spike; `latency` is not included),
/// then do `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    pub delay: Duration,
    pub action: FaultAction,
}

impl FaultPlan {
    /// No delay, served normally.
    pub const SERVE: FaultPlan = FaultPlan {
        delay: Duration::ZERO,
        action: FaultAction::Serve,
    };
}

/// Draws a [`FaultPlan`] per request from a seeded PRNG.
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

    /// Decides the fate of one request under `faults`: first whether it is held by a spike, then
    /// whether a pending 429 burst answers it (counting the burst down), else one draw over the
    /// outcome rates.
    pub fn roll(&mut self, faults: &mut Faults) -> FaultPlan {
        let spike = clamp_rate(faults.spike_rate);
        let delay = if spike > 0.0 && !faults.spike_latency.is_zero() && self.rng.random::<f64>() < spike {
            faults.spike_latency
        } else {
            Duration::ZERO
        };
        if faults.rate_limit_burst > 0 {
            faults.rate_limit_burst -= 1;
            return FaultPlan {
                delay,
                action: FaultAction::RateLimited,
            };
        }
        FaultPlan {
            delay,
            action: self.outcome(faults),
        }
    }

    fn outcome(&mut self, faults: &Faults) -> FaultAction {
        let error = clamp_rate(faults.error_rate);
        let malformed = clamp_rate(faults.malformed_rate);
        let truncated = clamp_rate(faults.truncated_rate);
        let limited = clamp_rate(faults.rate_limit_rate);
        let dropped = clamp_rate(faults.drop_rate);
        if error + malformed + truncated + limited + dropped <= 0.0 {
            return FaultAction::Serve;
        }
        let draw: f64 = self.rng.random();
        let mut bound = error;
        if draw < bound {
            let status = match self.rng.random_range(0..3u8) {
                0 => StatusCode::INTERNAL_SERVER_ERROR,
                1 => StatusCode::BAD_GATEWAY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return FaultAction::ServerError(status);
        }
        for (rate, action) in [
            (malformed, FaultAction::Malformed),
            (truncated, FaultAction::Truncated),
            (limited, FaultAction::RateLimited),
            (dropped, FaultAction::Dropped),
        ] {
            bound += rate;
            if draw < bound {
                return action;
            }
        }
        FaultAction::Serve
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) }
}

/// Carries out `plan` for one API request: waits out its delay, then answers as its action says.
/// `serve` is the request's normal handling (run only for `Serve` and `Truncated`);
/// `rate_limited` builds the vendor's own 429 answer.
pub(crate) async fn apply<F>(plan: FaultPlan, path: &str, rate_limited: impl FnOnce() -> Response, serve: F) -> Response
where
    F: Future<Output = Response>,
{
    if !plan.delay.is_zero() {
        tracing::debug!(%path, delay_ms = plan.delay.as_millis() as u64, "injecting a latency spike");
        tokio::time::sleep(plan.delay).await;
    }
    match plan.action {
        FaultAction::Serve => serve.await,
        FaultAction::ServerError(status) => {
            tracing::debug!(%path, %status, "injecting a server error");
            server_error_response(status)
        }
        FaultAction::Malformed => {
            tracing::debug!(%path, "injecting a malformed body");
            malformed_response()
        }
        FaultAction::Truncated => {
            tracing::debug!(%path, "injecting a truncated body");
            truncate_response(serve.await).await
        }
        FaultAction::RateLimited => {
            tracing::debug!(%path, "injecting a rate-limit answer");
            rate_limited()
        }
        FaultAction::Dropped => {
            tracing::debug!(%path, "dropping the connection");
            dropped_response()
        }
    }
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

/// The response for [`FaultAction::Dropped`]: its body fails on the first poll, before hyper has
/// flushed the status line, so the connection is closed with no byte of an answer and the client
/// sees it end under its request (for reqwest: an incomplete-message request error).
pub fn dropped_response() -> Response {
    let failing = futures::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "fault injection: connection dropped",
    ))]);
    let mut response = Response::new(Body::from_stream(failing));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(seed: u64, faults: &Faults, n: usize) -> Vec<FaultPlan> {
        let mut dice = FaultDice::new(seed);
        let mut faults = faults.clone();
        (0..n).map(|_| dice.roll(&mut faults)).collect()
    }

    fn count(plans: &[FaultPlan], action: FaultAction) -> usize {
        plans.iter().filter(|p| p.action == action).count()
    }

    #[test]
    fn zero_rates_always_serve() {
        assert!(
            actions(1, &Faults::default(), 1000)
                .iter()
                .all(|p| *p == FaultPlan::SERVE)
        );
        // A spike latency without a rate, or a rate without a latency, is no spike.
        for faults in [
            Faults {
                spike_latency: Duration::from_secs(2),
                ..Faults::default()
            },
            Faults {
                spike_rate: 1.0,
                ..Faults::default()
            },
        ] {
            assert!(actions(1, &faults, 100).iter().all(|p| *p == FaultPlan::SERVE));
        }
    }

    #[test]
    fn full_rates_always_fire() {
        let plans = actions(
            1,
            &Faults {
                error_rate: 1.0,
                ..Faults::default()
            },
            100,
        );
        assert!(
            plans
                .iter()
                .all(|p| matches!(p.action, FaultAction::ServerError(s) if s.is_server_error()))
        );
        for (faults, action) in [
            (
                Faults {
                    rate_limit_rate: 1.0,
                    ..Faults::default()
                },
                FaultAction::RateLimited,
            ),
            (
                Faults {
                    drop_rate: 1.0,
                    ..Faults::default()
                },
                FaultAction::Dropped,
            ),
            (
                Faults {
                    malformed_rate: 1.0,
                    ..Faults::default()
                },
                FaultAction::Malformed,
            ),
            (
                Faults {
                    truncated_rate: 1.0,
                    ..Faults::default()
                },
                FaultAction::Truncated,
            ),
        ] {
            let plans = actions(3, &faults, 100);
            assert_eq!(count(&plans, action), 100, "{action:?}");
            assert!(plans.iter().all(|p| p.delay.is_zero()));
        }
        let spike = Duration::from_millis(1500);
        let plans = actions(
            3,
            &Faults {
                spike_rate: 1.0,
                spike_latency: spike,
                ..Faults::default()
            },
            100,
        );
        assert!(plans.iter().all(|p| p.delay == spike && p.action == FaultAction::Serve));
    }

    #[test]
    fn out_of_range_rates_are_clamped() {
        let faults = Faults {
            drop_rate: 7.0,
            error_rate: f64::NAN,
            rate_limit_rate: -1.0,
            ..Faults::default()
        };
        assert_eq!(count(&actions(5, &faults, 50), FaultAction::Dropped), 50);
    }

    #[test]
    fn rates_are_roughly_respected() {
        for faults in [
            Faults {
                malformed_rate: 0.25,
                ..Faults::default()
            },
            Faults {
                rate_limit_rate: 0.25,
                ..Faults::default()
            },
            Faults {
                drop_rate: 0.25,
                ..Faults::default()
            },
        ] {
            let plans = actions(7, &faults, 4000);
            let fired = plans.iter().filter(|p| p.action != FaultAction::Serve).count();
            assert!((800..1200).contains(&fired), "{faults:?}: {fired}");
        }
        let plans = actions(
            7,
            &Faults {
                spike_rate: 0.1,
                spike_latency: Duration::from_secs(2),
                error_rate: 0.3,
                ..Faults::default()
            },
            4000,
        );
        let spiked = plans.iter().filter(|p| !p.delay.is_zero()).count();
        let failed = plans
            .iter()
            .filter(|p| matches!(p.action, FaultAction::ServerError(_)))
            .count();
        assert!((300..500).contains(&spiked), "{spiked}");
        assert!((1000..1400).contains(&failed), "{failed}");
        // Outcomes are drawn from one number: the rates add up in order and never overlap.
        let plans = actions(
            9,
            &Faults {
                error_rate: 0.2,
                malformed_rate: 0.2,
                truncated_rate: 0.2,
                rate_limit_rate: 0.2,
                drop_rate: 0.2,
                ..Faults::default()
            },
            5000,
        );
        for action in [
            FaultAction::Malformed,
            FaultAction::Truncated,
            FaultAction::RateLimited,
            FaultAction::Dropped,
        ] {
            let n = count(&plans, action);
            assert!((800..1200).contains(&n), "{action:?}: {n}");
        }
        assert_eq!(count(&plans, FaultAction::Serve), 0);
    }

    #[test]
    fn a_burst_answers_exactly_the_next_n_requests() {
        let mut dice = FaultDice::new(11);
        let mut faults = Faults {
            rate_limit_burst: 3,
            ..Faults::default()
        };
        let plans: Vec<FaultPlan> = (0..5).map(|_| dice.roll(&mut faults)).collect();
        let limited: Vec<bool> = plans.iter().map(|p| p.action == FaultAction::RateLimited).collect();
        assert_eq!(limited, [true, true, true, false, false]);
        assert_eq!(faults.rate_limit_burst, 0);
        // A new burst at run time.
        faults.rate_limit_burst = 1;
        assert_eq!(dice.roll(&mut faults).action, FaultAction::RateLimited);
        assert_eq!(dice.roll(&mut faults), FaultPlan::SERVE);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = Faults {
            error_rate: 0.2,
            malformed_rate: 0.1,
            truncated_rate: 0.1,
            rate_limit_rate: 0.1,
            drop_rate: 0.1,
            spike_rate: 0.2,
            spike_latency: Duration::from_secs(2),
            ..Faults::default()
        };
        let a = actions(42, &faults, 500);
        assert_eq!(a, actions(42, &faults, 500));
        assert_ne!(a, actions(43, &faults, 500));
        // A knob at zero draws nothing: the error stream is the one it was before the new knobs.
        let errors_only = Faults {
            error_rate: 0.5,
            ..Faults::default()
        };
        let with_idle_knobs = Faults {
            spike_latency: Duration::from_secs(2),
            rate_limit_burst: 0,
            ..errors_only.clone()
        };
        assert_eq!(actions(5, &errors_only, 300), actions(5, &with_idle_knobs, 300));
    }

    #[tokio::test]
    async fn a_dropped_connection_sends_no_byte() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let app = axum::Router::new().route("/", axum::routing::get(|| async { dropped_response() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        socket
            .write_all(b"GET / HTTP/1.1\r\nhost: sim\r\n\r\n")
            .await
            .expect("write");
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut received)).await;
        assert!(read.is_ok(), "the connection is closed, not left hanging");
        assert!(
            received.is_empty(),
            "no byte of an answer: {:?}",
            String::from_utf8_lossy(&received)
        );
        // reqwest sees a request error, neither a status nor a body.
        let error = reqwest::get(format!("http://{addr}/")).await.expect_err("no answer");
        assert!(
            !error.is_connect() && !error.is_timeout() && error.status().is_none(),
            "{error:?}"
        );
    }
}
