//! Prometheus metrics: HTTP requests by route and status, vendor calls by source and outcome,
//! latency histograms for both, and each vendor client's resilience (breaker, retries, rate
//! budgets). Rendered in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use adapter::{BudgetStatus, SourceName, VendorHealth};

const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    http_requests: BTreeMap<(String, String, u16), u64>,
    http_latency: BTreeMap<String, Histogram>,
    vendor_calls: BTreeMap<(String, String, String), u64>,
    vendor_latency: BTreeMap<(String, String), Histogram>,
    webhooks: BTreeMap<(String, String), u64>,
    change_events: BTreeMap<String, u64>,
    /// Requests refused by the per-client rate limit, by key kind ([`RATE_LIMIT_KEYS`]).
    rate_limited: [u64; RATE_LIMIT_KEYS.len()],
    /// HTTP connections open now, and closed because a client sent no whole request header in time.
    connections_open: u64,
    header_timeouts: u64,
}

/// The `method` label's values: every other request method is counted as `OTHER`, so a client
/// cannot grow the label set.
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"];

/// The `method` label of a request method.
pub fn method_label(method: &str) -> &'static str {
    METHODS[..METHODS.len() - 1]
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// The `key` label of `fhir_gateway_rate_limited_total`: a token's client, or an address.
pub const RATE_LIMIT_KEYS: [&str; 2] = ["client", "ip"];

/// The gateway's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Records one HTTP request (`route` is the matched route template, never the raw path; the
    /// method is one of [`METHODS`]).
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.with(|m| {
            *m.http_requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            m.http_latency
                .entry(route.to_owned())
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// Records one vendor call (`op` is read/search/check, `outcome` ok or an error class).
    pub fn vendor_call(&self, source: &str, op: &str, outcome: &str, elapsed: Duration) {
        self.with(|m| {
            *m.vendor_calls
                .entry((source.to_owned(), op.to_owned(), outcome.to_owned()))
                .or_default() += 1;
            m.vendor_latency
                .entry((source.to_owned(), outcome.to_owned()))
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// Records one inbound webhook call and the change events it produced.
    pub fn webhook(&self, source: &str, outcome: &str, events: usize) {
        self.with(|m| {
            *m.webhooks.entry((source.to_owned(), outcome.to_owned())).or_default() += 1;
            *m.change_events.entry(source.to_owned()).or_default() += events as u64;
        });
    }

    /// Records one request refused by the per-client rate limit (`key`: `client` or `ip`).
    pub fn rate_limited(&self, key: &str) {
        let i = RATE_LIMIT_KEYS
            .iter()
            .position(|k| *k == key)
            .unwrap_or(RATE_LIMIT_KEYS.len() - 1);
        self.with(|m| m.rate_limited[i] += 1);
    }

    /// Records an HTTP connection accepted.
    pub fn connection_opened(&self) {
        self.with(|m| m.connections_open += 1);
    }

    /// Records an HTTP connection closed; `header_timeout` when the client did not send a whole
    /// request header within `server.header_read_timeout_secs`.
    pub fn connection_closed(&self, header_timeout: bool) {
        self.with(|m| {
            m.connections_open = m.connections_open.saturating_sub(1);
            m.header_timeouts += u64::from(header_timeout);
        });
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str(
                "# HELP fhir_gateway_http_requests_total HTTP requests served, by method, route and status.\n",
            );
            out.push_str("# TYPE fhir_gateway_http_requests_total counter\n");
            for ((method, route, status), n) in &m.http_requests {
                let _ = writeln!(
                    out,
                    "fhir_gateway_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
            out.push_str("# HELP fhir_gateway_http_request_duration_seconds HTTP request latency by route.\n");
            out.push_str("# TYPE fhir_gateway_http_request_duration_seconds histogram\n");
            for (route, h) in &m.http_latency {
                render_histogram(
                    &mut out,
                    "fhir_gateway_http_request_duration_seconds",
                    &format!("route=\"{route}\""),
                    h,
                );
            }
            out.push_str(
                "# HELP fhir_gateway_vendor_calls_total Calls to vendor adapters, by source, operation and outcome.\n",
            );
            out.push_str("# TYPE fhir_gateway_vendor_calls_total counter\n");
            for ((source, op, outcome), n) in &m.vendor_calls {
                let _ = writeln!(
                    out,
                    "fhir_gateway_vendor_calls_total{{source=\"{source}\",op=\"{op}\",outcome=\"{outcome}\"}} {n}"
                );
            }
            out.push_str(
                "# HELP fhir_gateway_vendor_call_duration_seconds Vendor call latency by source and outcome.\n",
            );
            out.push_str("# TYPE fhir_gateway_vendor_call_duration_seconds histogram\n");
            for ((source, outcome), h) in &m.vendor_latency {
                render_histogram(
                    &mut out,
                    "fhir_gateway_vendor_call_duration_seconds",
                    &format!("source=\"{source}\",outcome=\"{outcome}\""),
                    h,
                );
            }
            out.push_str("# HELP fhir_gateway_webhooks_total Inbound vendor webhook calls, by source and outcome.\n");
            out.push_str("# TYPE fhir_gateway_webhooks_total counter\n");
            for ((source, outcome), n) in &m.webhooks {
                let _ = writeln!(
                    out,
                    "fhir_gateway_webhooks_total{{source=\"{source}\",outcome=\"{outcome}\"}} {n}"
                );
            }
            out.push_str(
                "# HELP fhir_gateway_change_events_total Change events received from vendor webhooks, by source.\n",
            );
            out.push_str("# TYPE fhir_gateway_change_events_total counter\n");
            for (source, n) in &m.change_events {
                let _ = writeln!(out, "fhir_gateway_change_events_total{{source=\"{source}\"}} {n}");
            }
            out.push_str(
                "# HELP fhir_gateway_rate_limited_total Requests refused (429) by the per-client rate limit, by key (client: a token's client_id; ip: an unauthenticated caller's address).\n",
            );
            out.push_str("# TYPE fhir_gateway_rate_limited_total counter\n");
            for (key, n) in RATE_LIMIT_KEYS.iter().zip(m.rate_limited) {
                let _ = writeln!(out, "fhir_gateway_rate_limited_total{{key=\"{key}\"}} {n}");
            }
            out.push_str("# HELP fhir_gateway_http_connections HTTP connections open.\n");
            out.push_str("# TYPE fhir_gateway_http_connections gauge\n");
            let _ = writeln!(out, "fhir_gateway_http_connections {}", m.connections_open);
            out.push_str(
                "# HELP fhir_gateway_http_header_timeouts_total Connections closed because the client did not send a whole request header in time.\n",
            );
            out.push_str("# TYPE fhir_gateway_http_header_timeouts_total counter\n");
            let _ = writeln!(out, "fhir_gateway_http_header_timeouts_total {}", m.header_timeouts);
            out
        })
    }
}

/// One series of [`render_health`]: its name, type, help text and value.
struct Series<T> {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&T) -> u64,
}

impl<T> Series<T> {
    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
    }
}

/// The vendor clients' resilience figures, one series per source (and per budget label): the
/// breaker state (0 closed, 1 half-open, 2 open), retries, breaker and budget refusals, budget
/// waits, and each budget's limit and what is left of its current window.
pub fn render_health(sources: &[(SourceName, VendorHealth)]) -> String {
    let per_source: [Series<VendorHealth>; 5] = [
        Series {
            name: "fhir_gateway_vendor_breaker_state",
            kind: "gauge",
            help: "The circuit breaker toward the vendor: 0 closed, 1 half-open, 2 open.",
            value: |h| u64::from(h.breaker.as_gauge()),
        },
        Series {
            name: "fhir_gateway_vendor_retries_total",
            kind: "counter",
            help: "Vendor calls attempted again after a transient failure.",
            value: |h| h.retries,
        },
        Series {
            name: "fhir_gateway_vendor_breaker_rejections_total",
            kind: "counter",
            help: "Vendor calls refused without being sent because the breaker was open.",
            value: |h| h.breaker_rejections,
        },
        Series {
            name: "fhir_gateway_vendor_budget_waits_total",
            kind: "counter",
            help: "Vendor calls that waited for the next window of a client-side rate budget.",
            value: |h| h.budget_waits,
        },
        Series {
            name: "fhir_gateway_vendor_budget_rejections_total",
            kind: "counter",
            help: "Vendor calls refused because a client-side rate budget was used up.",
            value: |h| h.budget_rejections,
        },
    ];
    let per_budget: [Series<BudgetStatus>; 2] = [
        Series {
            name: "fhir_gateway_vendor_budget_remaining",
            kind: "gauge",
            help: "Calls left in the current window of a client-side rate budget.",
            value: |b| u64::from(b.remaining),
        },
        Series {
            name: "fhir_gateway_vendor_budget_limit",
            kind: "gauge",
            help: "Calls allowed per window of a client-side rate budget.",
            value: |b| u64::from(b.limit),
        },
    ];
    let mut out = String::new();
    for series in &per_source {
        series.header(&mut out);
        for (source, health) in sources {
            let _ = writeln!(out, "{}{{source=\"{source}\"}} {}", series.name, (series.value)(health));
        }
    }
    for series in &per_budget {
        series.header(&mut out);
        for (source, health) in sources {
            for budget in &health.budgets {
                let _ = writeln!(
                    out,
                    "{}{{source=\"{source}\",label=\"{}\"}} {}",
                    series.name,
                    budget.label,
                    (series.value)(budget)
                );
            }
        }
    }
    out
}

fn render_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (i, b) in BUCKETS.iter().enumerate() {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {}", h.counts[i]);
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.http_request("GET", "/fhir/{type}", 200, Duration::from_millis(3));
        m.http_request("GET", "/fhir/{type}", 200, Duration::from_millis(300));
        m.vendor_call("drchrono", "search", "ok", Duration::from_millis(20));
        let text = m.render();
        assert!(
            text.contains("fhir_gateway_http_requests_total{method=\"GET\",route=\"/fhir/{type}\",status=\"200\"} 2")
        );
        assert!(
            text.contains("fhir_gateway_http_request_duration_seconds_bucket{route=\"/fhir/{type}\",le=\"0.005\"} 1")
        );
        assert!(
            text.contains("fhir_gateway_http_request_duration_seconds_bucket{route=\"/fhir/{type}\",le=\"0.5\"} 2")
        );
        assert!(text.contains("fhir_gateway_vendor_calls_total{source=\"drchrono\",op=\"search\",outcome=\"ok\"} 1"));
        assert!(text.contains("fhir_gateway_vendor_call_duration_seconds_count{source=\"drchrono\",outcome=\"ok\"} 1"));
    }

    #[test]
    fn the_method_label_is_one_of_a_fixed_set() {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert_eq!(method_label(method), method);
        }
        let long = "X".repeat(100);
        for method in [
            "BREW",
            "get",
            "PROPFIND",
            "CONNECT",
            "TRACE",
            "OTHER",
            "",
            long.as_str(),
        ] {
            assert_eq!(method_label(method), "OTHER", "{method}");
        }
        let m = Metrics::default();
        for (i, method) in ["BREW", "PROPFIND", "M1", "M2"].iter().enumerate() {
            m.http_request(method, "/healthz", 200, Duration::from_millis(i as u64));
        }
        m.http_request("GET", "/healthz", 200, Duration::from_millis(1));
        let text = m.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("fhir_gateway_http_requests_total{"))
            .collect();
        assert_eq!(
            series,
            vec![
                "fhir_gateway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
                "fhir_gateway_http_requests_total{method=\"OTHER\",route=\"/healthz\",status=\"200\"} 4",
            ]
        );
    }

    #[test]
    fn renders_rate_limit_refusals_and_connections() {
        let m = Metrics::default();
        m.rate_limited("client");
        m.rate_limited("ip");
        m.rate_limited("ip");
        m.connection_opened();
        m.connection_opened();
        m.connection_closed(true);
        let text = m.render();
        for line in [
            "# TYPE fhir_gateway_rate_limited_total counter",
            "fhir_gateway_rate_limited_total{key=\"client\"} 1",
            "fhir_gateway_rate_limited_total{key=\"ip\"} 2",
            "fhir_gateway_http_connections 1",
            "fhir_gateway_http_header_timeouts_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn renders_each_source_s_breaker_counters_and_budgets() {
        let health = |breaker, retries, budgets| VendorHealth {
            breaker,
            retries,
            breaker_rejections: 2,
            budget_waits: 3,
            budget_rejections: 4,
            budgets,
        };
        let budget = |label: &str, limit, remaining| adapter::BudgetStatus {
            label: label.into(),
            limit,
            window: Duration::from_secs(1),
            remaining,
        };
        let text = render_health(&[
            (
                "drchrono",
                health(adapter::BreakerState::Open, 7, vec![budget("hourly", 500, 480)]),
            ),
            (
                "zoom",
                health(
                    adapter::BreakerState::HalfOpen,
                    0,
                    vec![budget("light", 30, 29), budget("heavy", 10, 10)],
                ),
            ),
        ]);
        for line in [
            "# TYPE fhir_gateway_vendor_breaker_state gauge",
            "fhir_gateway_vendor_breaker_state{source=\"drchrono\"} 2",
            "fhir_gateway_vendor_breaker_state{source=\"zoom\"} 1",
            "# TYPE fhir_gateway_vendor_retries_total counter",
            "fhir_gateway_vendor_retries_total{source=\"drchrono\"} 7",
            "fhir_gateway_vendor_breaker_rejections_total{source=\"zoom\"} 2",
            "fhir_gateway_vendor_budget_waits_total{source=\"zoom\"} 3",
            "fhir_gateway_vendor_budget_rejections_total{source=\"drchrono\"} 4",
            "# TYPE fhir_gateway_vendor_budget_remaining gauge",
            "fhir_gateway_vendor_budget_remaining{source=\"drchrono\",label=\"hourly\"} 480",
            "fhir_gateway_vendor_budget_remaining{source=\"zoom\",label=\"light\"} 29",
            "fhir_gateway_vendor_budget_limit{source=\"zoom\",label=\"heavy\"} 10",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 7);
    }
}
