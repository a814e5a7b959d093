//! Prometheus metrics: HTTP requests by route and status, vendor calls by source and outcome,
//! latency histograms for both, and each vendor client's resilience (breaker, retries, rate
//! budgets).
//!
//! Built on `prometheus-client`. Each [`Metrics`] owns its [`Registry`]: several gateways run in one
//! test process, so nothing is global. Requests record into label [`Family`]s: finding a series takes
//! the family's read lock (its write lock only the first time a label set is seen) and counting is
//! atomic, so there is no lock that every request takes, as there was with the one `Mutex` of the
//! hand-written registry this replaces.
//!
//! The encoder writes the Prometheus text format (0.0.4), what `/metrics` has always served: a
//! counter is registered without `_total` (e.g. `fhir_gateway_http_requests`) and the encoder adds
//! the suffix to its `# HELP`, `# TYPE` and samples alike (`fhir_gateway_http_requests_total{…}`).
//! `/metrics` appends the caches' and the vendor clients' figures (`Snapshot`, encoded the same way)
//! after [`Metrics::render`].

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use adapter::{BudgetStatus, SourceName, VendorHealth};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// The latency histograms' bucket upper bounds, in seconds (`+Inf` is added by the histogram).
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram of a new series.
fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
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

/// The labels of `fhir_gateway_http_requests_total` (the fields' order is the labels' order).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// The labels of `fhir_gateway_http_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The labels of `fhir_gateway_vendor_calls_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    source: String,
    op: String,
    outcome: String,
}

/// The labels of `fhir_gateway_vendor_call_duration_seconds` and `fhir_gateway_webhooks_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    source: String,
    outcome: String,
}

/// The labels of `fhir_gateway_change_events_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// The labels of `fhir_gateway_rate_limited_total`: one of [`RATE_LIMIT_KEYS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KeyLabels {
    key: &'static str,
}

/// The labels of `fhir_gateway_audit_events_lost_total`: why (`queue`, `write`, `closed`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why audit events can be lost (the label's every value, shown from the start at 0).
pub const AUDIT_LOST_REASONS: [&str; 3] = ["queue", "write", "closed"];

/// The gateway's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    /// Every family below, registered once; [`Metrics::render`] encodes it.
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_latency: Family<RouteLabels, Histogram>,
    vendor_calls: Family<CallLabels, Counter>,
    vendor_latency: Family<OutcomeLabels, Histogram>,
    webhooks: Family<OutcomeLabels, Counter>,
    change_events: Family<SourceLabels, Counter>,
    /// Requests refused by the per-client rate limit, by key kind ([`RATE_LIMIT_KEYS`]).
    rate_limited: Family<KeyLabels, Counter>,
    /// HTTP connections open now.
    connections_open: Gauge,
    /// Connections closed because a client sent no whole request header in time.
    header_timeouts: Counter,
    /// Audit events written to the store.
    audit_written: Counter,
    /// Failed audit batch writes (each retried until it is lost).
    audit_write_failures: Counter,
    /// Audit events lost, by reason.
    audit_lost: Family<ReasonLabels, Counter>,
    /// Audit events waiting for the writer.
    audit_queue: Gauge,
}

/// Registers `metric` under `name` (a counter's without `_total`, which the encoder adds to its
/// samples). The registry ends every help text with a full stop of its own, so one written here is
/// dropped rather than doubled.
fn register(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help.trim_end_matches('.'), metric);
}

/// The Prometheus text exposition (0.0.4) of `registry`.
fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a `String` cannot fail, and the metrics here encode nothing else that could.
    let _ = prometheus_text::encode(&mut out, registry);
    out
}

impl Default for Metrics {
    /// A registry of its own with every family registered: empty until recorded into, except the
    /// rate-limit refusals, whose keys are a fixed set and both shown from the start (at 0).
    fn default() -> Self {
        let http_requests: Family<RequestLabels, Counter> = Family::default();
        let http_latency: Family<RouteLabels, Histogram> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let vendor_calls: Family<CallLabels, Counter> = Family::default();
        let vendor_latency: Family<OutcomeLabels, Histogram> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let webhooks: Family<OutcomeLabels, Counter> = Family::default();
        let change_events: Family<SourceLabels, Counter> = Family::default();
        let rate_limited: Family<KeyLabels, Counter> = Family::default();
        let connections_open: Gauge = Gauge::default();
        let header_timeouts: Counter = Counter::default();
        let audit_written: Counter = Counter::default();
        let audit_write_failures: Counter = Counter::default();
        let audit_lost: Family<ReasonLabels, Counter> = Family::default();
        let audit_queue: Gauge = Gauge::default();
        let mut registry = Registry::default();
        register(
            &mut registry,
            "fhir_gateway_http_requests",
            "HTTP requests served, by method, route and status.",
            http_requests.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_http_request_duration_seconds",
            "HTTP request latency by route.",
            http_latency.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_vendor_calls",
            "Calls to vendor adapters, by source, operation and outcome.",
            vendor_calls.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_vendor_call_duration_seconds",
            "Vendor call latency by source and outcome.",
            vendor_latency.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_webhooks",
            "Inbound vendor webhook calls, by source and outcome.",
            webhooks.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_change_events",
            "Change events received from vendor webhooks, by source.",
            change_events.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_rate_limited",
            "Requests refused (429) by the per-client rate limit, by key (client: a token's client_id; ip: an unauthenticated caller's address).",
            rate_limited.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_http_connections",
            "HTTP connections open.",
            connections_open.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_http_header_timeouts",
            "Connections closed because the client did not send a whole request header in time.",
            header_timeouts.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_audit_events",
            "Audit events written to the store.",
            audit_written.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_audit_write_failures",
            "Failed writes of a batch of audit events (each is retried, then its events are counted lost).",
            audit_write_failures.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_audit_events_lost",
            "Audit events lost, by reason (queue: the queue was full; write: the store refused the batch every time; closed: the writer had stopped).",
            audit_lost.clone(),
        );
        register(
            &mut registry,
            "fhir_gateway_audit_queue",
            "Audit events waiting to be written.",
            audit_queue.clone(),
        );
        for key in RATE_LIMIT_KEYS {
            rate_limited.get_or_create(&KeyLabels { key }).inc_by(0);
        }
        for reason in AUDIT_LOST_REASONS {
            audit_lost.get_or_create(&ReasonLabels { reason }).inc_by(0);
        }
        Self {
            registry,
            http_requests,
            http_latency,
            vendor_calls,
            vendor_latency,
            webhooks,
            change_events,
            rate_limited,
            connections_open,
            header_timeouts,
            audit_written,
            audit_write_failures,
            audit_lost,
            audit_queue,
        }
    }
}

impl Metrics {
    /// Records one HTTP request (`route` is the matched route template, never the raw path; the
    /// method is one of [`METHODS`]).
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.to_owned(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_latency
            .get_or_create(&RouteLabels { route: labels.route })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one vendor call (`op` is read/search/check, `outcome` ok or an error class).
    pub fn vendor_call(&self, source: &str, op: &str, outcome: &str, elapsed: Duration) {
        let labels = CallLabels {
            source: source.to_owned(),
            op: op.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.vendor_calls.get_or_create(&labels).inc();
        self.vendor_latency
            .get_or_create(&OutcomeLabels {
                source: labels.source,
                outcome: labels.outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one inbound webhook call and the change events it produced.
    pub fn webhook(&self, source: &str, outcome: &str, events: usize) {
        let source = source.to_owned();
        self.webhooks
            .get_or_create(&OutcomeLabels {
                source: source.clone(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.change_events
            .get_or_create(&SourceLabels { source })
            .inc_by(events as u64);
    }

    /// Records one request refused by the per-client rate limit (`key`: `client` or `ip`).
    pub fn rate_limited(&self, key: &str) {
        let key = RATE_LIMIT_KEYS
            .iter()
            .find(|k| **k == key)
            .copied()
            .unwrap_or(RATE_LIMIT_KEYS[RATE_LIMIT_KEYS.len() - 1]);
        self.rate_limited.get_or_create(&KeyLabels { key }).inc();
    }

    /// Records an HTTP connection accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// Records an HTTP connection closed; `header_timeout` when the client did not send a whole
    /// request header within `server.header_read_timeout_secs`.
    pub fn connection_closed(&self, header_timeout: bool) {
        self.connections_open.dec();
        if header_timeout {
            self.header_timeouts.inc();
        }
    }

    /// Records audit events queued for the writer.
    pub fn audit_queued(&self, n: usize) {
        self.audit_queue.inc_by(n as i64);
    }

    /// Records audit events taken off the queue by the writer.
    pub fn audit_dequeued(&self, n: usize) {
        self.audit_queue.dec_by(n as i64);
    }

    /// Records audit events written.
    pub fn audit_written(&self, n: usize) {
        self.audit_written.inc_by(n as u64);
    }

    /// Records a failed write of a batch of audit events.
    pub fn audit_write_failed(&self) {
        self.audit_write_failures.inc();
    }

    /// Records audit events lost (`reason`: one of [`AUDIT_LOST_REASONS`]).
    pub fn audit_lost(&self, reason: &str, n: usize) {
        let reason = AUDIT_LOST_REASONS
            .iter()
            .find(|r| **r == reason)
            .copied()
            .unwrap_or(AUDIT_LOST_REASONS[0]);
        self.audit_lost.get_or_create(&ReasonLabels { reason }).inc_by(n as u64);
    }

    /// The registry in the Prometheus text exposition format: `/metrics`
    /// appends the caches' and the vendor clients' figures after it.
    pub fn render(&self) -> String {
        encode(&self.registry)
    }
}

/// Whether a figure read at scrape time is a counter (a total kept elsewhere, by a vendor client or
/// a cache) or a gauge.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// A label set of a [`Snapshot`] family: a struct deriving [`EncodeLabelSet`], its fields the label
/// names in order.
pub(crate) trait LabelSet: EncodeLabelSet + Clone + Eq + Hash + Debug + Send + Sync + 'static {}

impl<T: EncodeLabelSet + Clone + Eq + Hash + Debug + Send + Sync + 'static> LabelSet for T {}

/// Figures kept elsewhere and read at scrape time (a vendor client's breaker and budgets, a cache's
/// counters), encoded exactly as the [`Metrics`] registry is: each family is registered, holding the
/// values just read, in a registry made for this one scrape. The whole of `/metrics` so follows one
/// convention (a counter family named without `_total`, its samples with it), and reading them
/// takes nothing on any request's path.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    registry: Registry,
}

impl Snapshot {
    /// Adds a family: `name` (a counter's without `_total`), its help text, and each series' value.
    pub(crate) fn add<L: LabelSet>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        values: impl IntoIterator<Item = (L, u64)>,
    ) {
        match kind {
            Kind::Counter => {
                let family = Family::<L, Counter>::default();
                for (labels, value) in values {
                    family.get_or_create(&labels).inc_by(value);
                }
                register(&mut self.registry, name, help, family);
            }
            Kind::Gauge => {
                let family = Family::<L, Gauge>::default();
                for (labels, value) in values {
                    family
                        .get_or_create(&labels)
                        .set(i64::try_from(value).unwrap_or(i64::MAX));
                }
                register(&mut self.registry, name, help, family);
            }
        }
    }

    /// The families added, in the text exposition format (Prometheus 0.0.4).
    pub(crate) fn render(&self) -> String {
        encode(&self.registry)
    }
}

/// One family of [`render_health`]: its name, kind, help text and value.
struct Series<T> {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&T) -> u64,
}

/// The vendor clients' resilience figures, one series per source (and per budget label): the
/// breaker state (0 closed, 1 half-open, 2 open), retries, breaker and budget refusals, budget
/// waits, and each budget's limit and what is left of its current window. Read at scrape time from
/// each client (see `Snapshot`).
pub fn render_health(sources: &[(SourceName, VendorHealth)]) -> String {
    /// The labels of a per-source series.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Source {
        source: SourceName,
    }
    /// The labels of a per-budget series.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Budget {
        source: SourceName,
        label: String,
    }
    let per_source: [Series<VendorHealth>; 5] = [
        Series {
            name: "fhir_gateway_vendor_breaker_state",
            kind: Kind::Gauge,
            help: "The circuit breaker toward the vendor: 0 closed, 1 half-open, 2 open.",
            value: |h| u64::from(h.breaker.as_gauge()),
        },
        Series {
            name: "fhir_gateway_vendor_retries",
            kind: Kind::Counter,
            help: "Vendor calls attempted again after a transient failure.",
            value: |h| h.retries,
        },
        Series {
            name: "fhir_gateway_vendor_breaker_rejections",
            kind: Kind::Counter,
            help: "Vendor calls refused without being sent because the breaker was open.",
            value: |h| h.breaker_rejections,
        },
        Series {
            name: "fhir_gateway_vendor_budget_waits",
            kind: Kind::Counter,
            help: "Vendor calls that waited for the next window of a client-side rate budget.",
            value: |h| h.budget_waits,
        },
        Series {
            name: "fhir_gateway_vendor_budget_rejections",
            kind: Kind::Counter,
            help: "Vendor calls refused because a client-side rate budget was used up.",
            value: |h| h.budget_rejections,
        },
    ];
    let per_budget: [Series<BudgetStatus>; 2] = [
        Series {
            name: "fhir_gateway_vendor_budget_remaining",
            kind: Kind::Gauge,
            help: "Calls left in the current window of a client-side rate budget.",
            value: |b| u64::from(b.remaining),
        },
        Series {
            name: "fhir_gateway_vendor_budget_limit",
            kind: Kind::Gauge,
            help: "Calls allowed per window of a client-side rate budget.",
            value: |b| u64::from(b.limit),
        },
    ];
    let mut snapshot = Snapshot::default();
    for series in &per_source {
        let values = sources
            .iter()
            .map(|(source, health)| (Source { source }, (series.value)(health)));
        snapshot.add(series.name, series.help, series.kind, values);
    }
    for series in &per_budget {
        let values = sources.iter().flat_map(|(source, health)| {
            health.budgets.iter().map(move |budget| {
                let labels = Budget {
                    source,
                    label: budget.label.clone(),
                };
                (labels, (series.value)(budget))
            })
        });
        snapshot.add(series.name, series.help, series.kind, values);
    }
    snapshot.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{…}` whose labels are exactly `labels`, in whatever order (the
    /// encoder writes a histogram's `le` before the family's labels).
    fn value<'t>(text: &'t str, name: &str, labels: &[&str]) -> Option<&'t str> {
        text.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let set = series.strip_prefix(name)?.strip_prefix('{')?.strip_suffix('}')?;
            let set: Vec<&str> = set.split(',').collect();
            (set.len() == labels.len() && labels.iter().all(|l| set.contains(l))).then_some(value)
        })
    }

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
        let bucket = |le: &str| {
            let le = format!("le=\"{le}\"");
            value(
                &text,
                "fhir_gateway_http_request_duration_seconds_bucket",
                &[le.as_str(), "route=\"/fhir/{type}\""],
            )
        };
        assert_eq!(bucket("0.001"), Some("0"));
        assert_eq!(bucket("0.005"), Some("1"));
        assert_eq!(bucket("0.25"), Some("1"));
        assert_eq!(bucket("0.5"), Some("2"));
        assert_eq!(bucket("+Inf"), Some("2"));
        assert!(text.contains("fhir_gateway_http_request_duration_seconds_count{route=\"/fhir/{type}\"} 2"));
        assert!(text.contains("fhir_gateway_vendor_calls_total{source=\"drchrono\",op=\"search\",outcome=\"ok\"} 1"));
        assert!(text.contains("fhir_gateway_vendor_call_duration_seconds_count{source=\"drchrono\",outcome=\"ok\"} 1"));
    }

    #[test]
    fn the_exposition_is_prometheus_text_with_counters_named_total() {
        let m = Metrics::default();
        m.http_request("GET", "/healthz", 200, Duration::from_millis(1));
        let text = m.render();
        for line in [
            "# HELP fhir_gateway_http_requests_total HTTP requests served, by method, route and status.",
            "# TYPE fhir_gateway_http_requests_total counter",
            "# TYPE fhir_gateway_http_request_duration_seconds histogram",
            "# TYPE fhir_gateway_http_connections gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // Prometheus text 0.0.4 has no terminator (`/metrics` appends more families after this text).
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn each_gateway_has_its_own_registry() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.http_request("GET", "/healthz", 200, Duration::from_millis(1));
        assert!(a.render().contains("fhir_gateway_http_requests_total{"));
        assert!(!b.render().contains("fhir_gateway_http_requests_total{"));
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
        // A family's series come in no particular order.
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("fhir_gateway_http_requests_total{"))
            .collect();
        series.sort_unstable();
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
    fn both_rate_limit_keys_are_shown_before_any_refusal() {
        let text = Metrics::default().render();
        for line in [
            "fhir_gateway_rate_limited_total{key=\"client\"} 0",
            "fhir_gateway_rate_limited_total{key=\"ip\"} 0",
            "fhir_gateway_http_header_timeouts_total 0",
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
        assert!(!text.contains("# EOF"), "{text}");
    }
}
