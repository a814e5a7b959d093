//! Property tests: whatever a client or a vendor sends, the gateway never panics and never answers
//! with a 5xx it did not mean.
//!
//! - FHIR JSON bodies (arbitrary JSON, FHIR-ish resources, mutations of valid ones, deep nesting):
//!   what `fhir_json::check` lets through never panics the FHIR JSON parser, and the guarded parse
//!   never panics nor fails as a server error.
//! - The query parser and the paging cursor decoder on arbitrary input.
//! - Every write route and operation through the real router over the simulated practice
//!   (DrChrono, Zoom, Noa): never 5xx, an OperationOutcome whenever not 2xx.
//! - Every vendor's webhook receiver, signed or not, directly and through `/webhooks/{source}`.
//!
//! Plus the regression tests of the three bodies that used to answer 500 (empty arrays).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use adapter::{Adapter, Resource, ResourceType, WebhookRequest};
use adapter_drchrono::{DrChronoAdapter, DrChronoConfig};
use adapter_noa::{NoaAdapter, NoaConfig};
use adapter_zoom::map::ids::ZoomId;
use adapter_zoom::{ZoomAdapter, ZoomConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use chrono_tz::Tz;
use data_encoding::HEXLOWER;
use gateway::access::OpenAccess;
use gateway::demo::{Demo, PracticeConfig, start_practice};
use gateway::error::GatewayError;
use gateway::fhir_json;
use gateway::paging::{Cursor, CursorCodec, Position, SourcePos};
use gateway::query::{self, CountLimits};
use gateway::run::{GatewayOptions, state};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tower::ServiceExt;
use url::Url;
use vendor_sim::drchrono::DrChronoSimConfig;
use vendor_sim::noa::NoaSimConfig;
use vendor_sim::noa::wire::SessionStatus;
use vendor_sim::zoom::ZoomSimConfig;

// ---------------------------------------------------------------------------------------------
// JSON strategies

/// Property names a FHIR JSON body may use (and a few it must not).
const KEYS: &[&str] = &[
    "resourceType",
    "id",
    "_id",
    "status",
    "_status",
    "participant",
    "actor",
    "reference",
    "start",
    "_start",
    "end",
    "minutesDuration",
    "extension",
    "modifierExtension",
    "url",
    "valueString",
    "valueCode",
    "valueDecimal",
    "valueInteger",
    "valueBoolean",
    "valueReference",
    "parameter",
    "name",
    "part",
    "resource",
    "given",
    "_given",
    "family",
    "content",
    "attachment",
    "contentType",
    "data",
    "subject",
    "type",
    "coding",
    "system",
    "code",
    "meta",
    "contained",
    "text",
    "div",
    "value",
    "a b",
    "_",
    "$serde_json::private::Number",
];

const STRINGS: &[&str] = &[
    "",
    "booked",
    "accepted",
    "current",
    "Appointment",
    "Parameters",
    "Patient/drchrono-1",
    "2026-06-15T10:00:00Z",
    "2026-06-15",
    "$invalid",
    "1.5",
    "abc",
    "urn:x",
];

const TYPES: &[&str] = &[
    "Appointment",
    "Parameters",
    "DocumentReference",
    "Patient",
    "Encounter",
    "Bundle",
    "Nope",
    "",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[_a-zA-Z$ .]{0,10}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, empty arrays and objects included, with FHIR-ish property names.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// An object naming a resource type, with arbitrary properties.
fn fhirish_body() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec((key(), json_value()), 0..6),
    )
        .prop_map(|(ty, pairs)| {
            let mut map = Map::new();
            map.insert("resourceType".to_owned(), Value::String(ty.to_owned()));
            map.extend(pairs);
            Value::Object(map)
        })
}

fn appointment() -> Value {
    json!({"resourceType": "Appointment", "id": "zoom-1", "status": "booked",
        "start": "2026-06-15T10:00:00Z", "end": "2026-06-15T10:30:00Z", "minutesDuration": 30,
        "_start": {"extension": [{"url": "urn:test", "valueString": "x"}]},
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/zoom-p1"}},
                        {"status": "accepted", "actor": {"reference": "Practitioner/zoom-d1"}}],
        "reasonCode": [{"text": "check-up"}]})
}

fn parameters() -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "language", "valueCode": "en-US"},
        {"name": "template", "part": [{"name": "title", "valueString": "Plan"},
                                      {"name": "instruction", "valueString": "What happens next"}]},
        {"name": "n", "valueDecimal": 1.5}]})
}

fn document_reference() -> Value {
    json!({"resourceType": "DocumentReference", "id": "zoom-note-1", "status": "current", "docStatus": "final",
        "subject": {"reference": "Patient/zoom-p1"},
        "category": [{"coding": [{"system": "urn:test", "code": "clinical-note"}]}],
        "content": [{"attachment": {"contentType": "text/markdown", "data": "SGVsbG8="}}]})
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "drchrono-1", "gender": "female", "birthDate": "1970-01-01",
        "name": [{"family": "Smith", "given": ["Ann", null],
                  "_given": [null, {"extension": [{"url": "urn:test", "valueString": "y"}]}]}]})
}

fn valid_bodies() -> Vec<Value> {
    vec![appointment(), parameters(), document_reference(), patient()]
}

/// One change to a JSON document, at the node an [`Index`] picks among all its nodes.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Value),
    Insert(Index, String, Value),
    Remove(Index),
    Empty(Index),
    Wrap(Index),
    Nullify(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), json_value()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        (any::<Index>(), key(), json_value()).prop_map(|(at, k, v)| Mutation::Insert(at, k, v)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Empty),
        any::<Index>().prop_map(Mutation::Wrap),
        any::<Index>().prop_map(Mutation::Nullify),
    ]
}

/// The JSON pointers of every node of `value` (the root is `""`).
fn pointers(value: &Value) -> Vec<String> {
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), value)];
    while let Some((pointer, v)) = stack.pop() {
        match v {
            Value::Object(map) => {
                stack.extend(map.iter().map(|(k, c)| (format!("{pointer}/{}", escape(k)), c)));
            }
            Value::Array(items) => {
                stack.extend(items.iter().enumerate().map(|(i, c)| (format!("{pointer}/{i}"), c)));
            }
            _ => {}
        }
        out.push(pointer);
    }
    out
}

fn mutate(mut body: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let all = pointers(&body);
        let at = |i: &Index| i.get(&all).clone();
        match m {
            Mutation::Replace(i, v) => {
                if let Some(target) = body.pointer_mut(&at(i)) {
                    *target = v.clone();
                }
            }
            Mutation::Insert(i, k, v) => match body.pointer_mut(&at(i)) {
                Some(Value::Object(map)) => {
                    map.insert(k.clone(), v.clone());
                }
                Some(Value::Array(items)) => items.push(v.clone()),
                _ => {}
            },
            Mutation::Remove(i) => {
                let pointer = at(i);
                if let Some((parent, last)) = pointer.rsplit_once('/') {
                    match body.pointer_mut(parent) {
                        Some(Value::Object(map)) => {
                            map.remove(&last.replace("~1", "/").replace("~0", "~"));
                        }
                        Some(Value::Array(items)) => {
                            if let Ok(n) = last.parse::<usize>()
                                && n < items.len()
                            {
                                items.remove(n);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Empty(i) => match body.pointer_mut(&at(i)) {
                Some(Value::Object(map)) => map.clear(),
                Some(Value::Array(items)) => items.clear(),
                _ => {}
            },
            Mutation::Wrap(i) => {
                if let Some(target) = body.pointer_mut(&at(i)) {
                    *target = Value::Array(vec![target.take()]);
                }
            }
            Mutation::Nullify(i) => {
                if let Some(target) = body.pointer_mut(&at(i)) {
                    *target = Value::Null;
                }
            }
        }
    }
    body
}

/// How deeply `value` nests objects and arrays (a scalar is 0, `{}` is 1).
fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(depth);
                stack.extend(items.iter().map(|c| (c, depth + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(depth);
                stack.extend(map.values().map(|c| (c, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// What `check` lets through never panics fhirbolt; the guarded parse never panics and refuses
/// only with a client error.
fn parser_is_safe(body: &Value) -> Result<(), TestCaseError> {
    let checked = fhir_json::check(body);
    if let Err(e) = &checked {
        prop_assert!(e.status().is_client_error(), "{e:?}");
    } else {
        let text = body.to_string();
        let raw = std::panic::catch_unwind(|| {
            let _ = fhirbolt::json::from_str::<Resource>(&text, None);
        });
        prop_assert!(
            raw.is_ok(),
            "fhirbolt panicked on a body the check let through: {}",
            text
        );
    }
    if let Err(e) = fhir_json::parse(body, "resource") {
        prop_assert!(e.status().is_client_error(), "{e:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fhirish_bodies_never_panic_the_parser(body in fhirish_body()) {
        parser_is_safe(&body)?;
    }

    #[test]
    fn arbitrary_json_never_panics_the_parser(body in json_value()) {
        parser_is_safe(&body)?;
    }

    #[test]
    fn mutated_valid_bodies_never_panic_the_parser(
        base in prop::sample::select(valid_bodies()),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        parser_is_safe(&mutate(base, &mutations))?;
    }

    #[test]
    fn nesting_is_refused_past_the_bound_and_never_panics(depth in 0usize..120, arrays in any::<bool>()) {
        let mut inner = json!({"url": "urn:test", "valueString": "x"});
        for _ in 0..depth {
            let mut map = Map::new();
            let wrapped = if arrays { Value::Array(vec![inner]) } else { inner };
            map.insert("extension".to_owned(), wrapped);
            inner = Value::Object(map);
        }
        let mut body = Map::new();
        body.insert("resourceType".to_owned(), json!("Patient"));
        body.insert("extension".to_owned(), Value::Array(vec![inner]));
        let body = Value::Object(body);
        prop_assert_eq!(fhir_json::check(&body).is_ok(), nesting(&body) <= fhir_json::MAX_DEPTH);
        parser_is_safe(&body)?;
    }
}

#[test]
fn valid_bodies_pass_the_check_and_parse() {
    for body in valid_bodies() {
        fhir_json::check(&body).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        fhir_json::parse(&body, "resource").unwrap_or_else(|e| panic!("{body}: {e:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The query parser and the paging cursor decoder

const LIMITS: CountLimits = CountLimits { default: 20, max: 100 };
const BASE: &str = "http://gw.test/fhir";

const PARAM_NAMES: &[&str] = &[
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_id",
    "_lastUpdated",
    "date",
    "date:missing",
    "date:",
    "patient",
    "patient:Patient",
    "patient:x",
    "subject",
    "identifier",
    "identifier:not",
    "family",
    "name",
    "name:exact",
    "name:contains",
    "status",
    "status:not",
    "category",
    "gender",
    "birthdate",
    "actor",
    "practitioner",
    "location",
    "encounter",
    "period",
    ":",
    "",
];

const PARAM_VALUES: &[&str] = &[
    "+262142-12-31T23:59",
    "-262143-01-01T00:00",
    "ap+262142-12-31T23:58",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00+23:59",
    "ge2026-06-01",
    "2024-03-10T02:30",
    "aaaa€aaaaa",
    "2024-07-04T10:30+02:0€",
    "2024",
    "+999",
    "2024-13",
    "Patient/drchrono-1",
    "http://gw.test/fhir/Patient/x",
    "http://elsewhere/Patient/x",
    "x|y",
    "|",
    "a\\,b",
    "\\",
    ",,",
    "true",
    "false",
    "-1",
    "4294967296",
    "Appointment:patient",
    "Patient:x:y",
    "-date,family,",
    "count",
];

fn query_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(PARAM_NAMES).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(PARAM_VALUES).prop_map(str::to_owned),
        "(eq|ne|gt|lt|ge|le|sa|eb|ap)?[+-]?[0-9]{1,7}(-[0-9]{1,2}(-[0-9]{1,2}(T[0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\\.[0-9]{1,4})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?",
        "[a-zA-Z0-9/|,\\\\:.$-]{0,20}",
        "\\PC{0,24}",
    ]
}

fn source_pos() -> impl Strategy<Value = SourcePos> {
    (
        "\\PC{0,8}",
        prop::option::of("\\PC{0,16}"),
        any::<usize>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(src, cont, skip, done, failed)| SourcePos {
            src,
            cont,
            skip,
            done,
            failed,
        })
}

fn cursor() -> impl Strategy<Value = Cursor> {
    let position = prop_oneof![
        prop::collection::vec(source_pos(), 0..3).prop_map(|sources| Position::Stream { sources }),
        any::<usize>().prop_map(|offset| Position::Offset { offset }),
    ];
    (
        "\\PC{0,12}",
        prop::collection::vec(("\\PC{0,8}", "\\PC{0,8}"), 0..3),
        any::<i64>(),
        position,
    )
        .prop_map(|(t, q, iat, pos)| Cursor { t, q, iat, pos })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_query_parser_never_panics_nor_fails_as_a_server_error(
        t in prop::sample::select(ResourceType::ALL.to_vec()),
        pairs in prop::collection::vec((query_name(), query_value()), 0..6),
        strict in any::<bool>(),
        tz in prop::sample::select(vec![
            Tz::UTC,
            Tz::America__New_York,
            Tz::Pacific__Apia,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Kathmandu,
        ]),
    ) {
        if let Err(e) = query::parse(t, &pairs, strict, LIMITS, tz, BASE) {
            prop_assert!(e.status().is_client_error(), "{e:?}");
        }
    }

    #[test]
    fn the_cursor_decoder_never_panics_on_arbitrary_text(token in "\\PC{0,120}", now in 0i64..4_000_000_000) {
        let codec = CursorCodec::new(b"property-test-key", 600);
        if let Err(e) = codec.decode(&token, now) {
            prop_assert!(e.status().is_client_error(), "{e:?}");
        }
        let dotted = format!("{token}.{token}");
        if let Err(e) = codec.decode(&dotted, now) {
            prop_assert!(e.status().is_client_error(), "{e:?}");
        }
    }

    #[test]
    fn minted_altered_and_foreign_cursors(
        c in cursor(),
        at in any::<Index>(),
        byte in any::<u8>(),
        now in 0i64..4_000_000_000,
    ) {
        let codec = CursorCodec::new(b"property-test-key", 600);
        let token = codec.encode(&c);
        match codec.decode(&token, now) {
            Ok(back) => prop_assert_eq!(&back, &c),
            Err(e) => prop_assert!(e.status().is_client_error(), "{e:?}"),
        }
        let foreign = CursorCodec::new(b"another-key", 600).decode(&token, now);
        prop_assert!(matches!(foreign, Err(GatewayError::BadParameter { .. })), "{foreign:?}");
        let mut bytes = token.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let altered = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = codec.decode(&altered, now) {
            prop_assert!(e.status().is_client_error(), "{e:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

const DRCHRONO_SECRET: &str = "drchrono-webhook-secret-for-property-tests";
const ZOOM_SECRET: &str = "zoom-webhook-secret-for-property-tests";
const NOA_SECRET: &str = "noa-webhook-secret-for-the-property-tests";
const SOURCES: [&str; 3] = ["drchrono", "zoom", "noa"];

const EVENTS: &[&str] = &[
    "APPOINTMENT_CREATE",
    "APPOINTMENT_MODIFY",
    "APPOINTMENT_DELETE",
    "PATIENT_CREATE",
    "PATIENT_MODIFY",
    "CLINICAL_NOTE_LOCK",
    "PING",
    "endpoint.url_validation",
    "clinical_notes.note_created",
    "clinical_notes.note_updated",
    "healthcare.visit.scheduled",
    "healthcare.visit.started",
    "healthcare.visit.ended",
    "healthcare.patient.waiting",
    "healthcare.patient.admitted",
    "meeting.started",
];

const HOOK_IDS: &[&str] = &[
    "12",
    "0",
    "-1",
    "abc",
    "",
    " ",
    "x/y",
    "ü",
    "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
];

const NOA_STATUSES: &[&str] = &["Verified", "EmptySummaryVerified", "Analyzing", "New", "", " ", "bogus"];

/// The adapters whose receivers are tested, with known secrets; their vendor base URLs are a
/// closed loopback port, so nothing they might fetch leaves the machine.
fn webhook_adapters() -> Vec<Arc<dyn Adapter>> {
    let closed = Url::parse("http://127.0.0.1:9/").expect("a URL");
    let drchrono = DrChronoConfig::new("client", "secret", "refresh", "http://localhost/callback")
        .with_base_url(closed.clone())
        .with_webhook_secret(DRCHRONO_SECRET);
    let zoom = ZoomConfig::new("account", "client", "secret", ZOOM_SECRET)
        .with_api_base(closed.clone())
        .with_oauth_base(closed.clone());
    let noa = NoaConfig::new("client", "secret", NOA_SECRET)
        .with_api_base(closed)
        .with_webhook_url(format!("http://localhost/webhooks/noa/{NOA_SECRET}"));
    vec![
        Arc::new(DrChronoAdapter::new(drchrono).expect("a valid DrChrono configuration")),
        Arc::new(ZoomAdapter::new(zoom).expect("a valid Zoom configuration")),
        Arc::new(NoaAdapter::new(noa).expect("a valid Noa configuration")),
    ]
}

fn receivers() -> &'static [Arc<dyn Adapter>] {
    static ADAPTERS: OnceLock<Vec<Arc<dyn Adapter>>> = OnceLock::new();
    ADAPTERS.get_or_init(webhook_adapters)
}

/// A webhook body: arbitrary JSON, or shaped like one of the vendors' events.
fn hook_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        (
            prop::sample::select(EVENTS),
            prop::sample::select(HOOK_IDS),
            prop::sample::select(vec!["account", "other"]),
            json_value(),
        )
            .prop_map(|(event, id, account, x)| json!({"event": event, "payload": {
                "account_id": account, "plainToken": id,
                "object": {"id": id, "visit_id": id, "note_id": id, "patient_joined_at": x}}})),
        (
            prop::sample::select(HOOK_IDS),
            prop::sample::select(NOA_STATUSES),
            json_value(),
        )
            .prop_map(|(id, status, x)| json!({"sessionId": id, "status": status, "eventId": x})),
        (prop::sample::select(HOOK_IDS), json_value())
            .prop_map(|(id, x)| json!({"receiver": x, "object": {"id": id, "appointment": id}})),
    ]
}

#[derive(Debug, Clone)]
struct HookCase {
    source: Index,
    method: &'static str,
    /// Signed with the right secret (Noa: called on the secret path).
    signed: bool,
    event: String,
    body: Vec<u8>,
    /// Seconds between the Zoom timestamp and now.
    skew: i64,
    query: Vec<(String, String)>,
}

fn hook_case() -> impl Strategy<Value = HookCase> {
    (
        any::<Index>(),
        prop::sample::select(vec!["POST", "GET", "PUT"]),
        any::<bool>(),
        prop_oneof![prop::sample::select(EVENTS).prop_map(str::to_owned), "[A-Za-z_.]{0,24}",],
        prop_oneof![
            3 => hook_json().prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ],
        -400i64..400,
        prop::collection::vec((prop_oneof![Just("msg".to_owned()), "[a-z]{0,6}"], "\\PC{0,40}"), 0..2),
    )
        .prop_map(|(source, method, signed, event, body, skew, query)| HookCase {
            source,
            method,
            signed,
            event,
            body,
            skew,
            query,
        })
}

fn zoom_signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(ZOOM_SECRET.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", HEXLOWER.encode(&mac.finalize().into_bytes()))
}

/// The source, path after `/webhooks/{source}` and headers of a case.
fn hook_call(case: &HookCase, now: i64) -> (&'static str, String, Vec<(String, String)>) {
    let source = *case.source.get(&SOURCES);
    let mut headers = Vec::new();
    let mut path = String::new();
    match source {
        "drchrono" => {
            let signature = if case.signed { DRCHRONO_SECRET } else { "forged" };
            headers.push(("x-drchrono-signature".to_owned(), signature.to_owned()));
            headers.push(("x-drchrono-event".to_owned(), case.event.clone()));
        }
        "zoom" => {
            let timestamp = (now + case.skew).to_string();
            let signature = if case.signed {
                zoom_signature(&timestamp, &case.body)
            } else {
                "v0=00".to_owned()
            };
            headers.push(("x-zm-request-timestamp".to_owned(), timestamp));
            headers.push(("x-zm-signature".to_owned(), signature));
        }
        _ => {
            path = if case.signed {
                format!("/{NOA_SECRET}")
            } else {
                "/not-the-secret".to_owned()
            };
        }
    }
    (source, path, headers)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Called directly (outside any runtime, so Noa's summary prefetch never starts).
    #[test]
    fn webhook_receivers_never_panic_and_believe_only_signed_calls(case in hook_case()) {
        let now = Utc::now();
        let (source, path, headers) = hook_call(&case, now.timestamp());
        let adapter = receivers()
            .iter()
            .find(|a| a.source() == source)
            .expect("a receiver per source");
        let receiver = adapter.webhooks().expect("the source receives webhooks");
        let request = WebhookRequest {
            method: case.method,
            path: &path,
            headers: &headers,
            query: &case.query,
            body: &case.body,
            now,
        };
        let result = receiver.receive(&request);
        if !case.signed && let Ok(answer) = &result {
            prop_assert!(answer.events.is_empty(), "an unsigned {source} call changed something");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.body(Body::from(body)).expect("a well-formed request");
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn content_type(media: &str) -> Vec<(String, String)> {
    vec![("content-type".to_owned(), media.to_owned())]
}

#[test]
fn webhook_routes_never_answer_5xx() {
    let rt = runtime();
    let app = rt.block_on(async {
        let st = state(
            webhook_adapters(),
            &GatewayOptions::new(Tz::UTC),
            "http://gw.test",
            Arc::new(OpenAccess),
        );
        gateway::app::app(st)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&hook_case(), |case| {
            let (source, path, headers) = hook_call(&case, Utc::now().timestamp());
            let mut uri = format!("/webhooks/{source}{path}");
            if !case.query.is_empty() {
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&case.query)
                    .finish();
                uri = format!("{uri}?{q}");
            }
            let (status, body) = rt.block_on(send(&app, case.method, &uri, &headers, case.body.clone()));
            prop_assert!(
                !status.is_server_error(),
                "{} {uri} answered {status}: {body}",
                case.method
            );
            Ok(())
        })
        .expect("no webhook call answers 5xx");
}

// ---------------------------------------------------------------------------------------------
// Write routes and operations over the simulated practice

fn anchor() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 6, 15).unwrap_or_default()
}

async fn practice() -> Demo {
    start_practice(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        PracticeConfig {
            drchrono: DrChronoSimConfig::small(7, anchor()),
            zoom: Some(ZoomSimConfig::small),
            noa: Some(NoaSimConfig::small),
            auth: false,
        },
        |_| {},
    )
    .await
    .expect("the practice starts")
}

/// Ids of the practice's resources each write route and operation is aimed at.
struct Targets {
    drchrono_appointment: String,
    drchrono_patient: String,
    zoom_appointment: String,
    zoom_note: String,
    noa_document: String,
}

fn targets(practice: &Demo) -> Targets {
    let dr = practice.sim.dataset();
    let drchrono_appointment = dr
        .appointments
        .iter()
        .find(|a| a.patient.is_some() && !a.appt_is_break && !a.deleted_flag)
        .or(dr.appointments.first())
        .and_then(|a| adapter::id::fhir_id("drchrono", &a.id).ok())
        .unwrap_or_else(|| "drchrono-1".to_owned());
    let drchrono_patient = dr
        .patients
        .first()
        .map_or_else(|| "drchrono-1".to_owned(), |p| format!("drchrono-{}", p.id));
    let zoom = practice.zoom.dataset();
    let zoom_appointment = zoom
        .visits
        .first()
        .and_then(|v| ZoomId::Appointment(v.id.clone()).fhir_id().ok())
        .unwrap_or_else(|| "zoom-1".to_owned());
    let zoom_note = zoom
        .clinical_notes
        .first()
        .and_then(|n| ZoomId::Note(n.note_id.clone()).fhir_id().ok())
        .unwrap_or_else(|| "zoom-note-1".to_owned());
    let noa_document = practice
        .noa
        .as_ref()
        .and_then(|noa| {
            let sessions = noa.dataset().sessions;
            sessions
                .iter()
                .find(|s| s.status == SessionStatus::Verified)
                .or(sessions.first())
                .map(|s| format!("noa-{}", s.session_id))
        })
        .unwrap_or_else(|| "noa-1".to_owned());
    Targets {
        drchrono_appointment,
        drchrono_patient,
        zoom_appointment,
        zoom_note,
        noa_document,
    }
}

/// One write route or operation, and a valid body for it (what mutations start from).
struct Route {
    method: &'static str,
    uri: String,
    base: Value,
    /// Takes a JSON Patch document.
    patch: bool,
}

async fn read_or(app: &axum::Router, uri: &str, fallback: Value) -> Value {
    let (status, body) = send(app, "GET", uri, &[], Vec::new()).await;
    if status.is_success() { body } else { fallback }
}

async fn write_routes(app: &axum::Router, t: &Targets) -> Vec<Route> {
    let zoom_appointment = read_or(app, &format!("/fhir/Appointment/{}", t.zoom_appointment), appointment()).await;
    let mut new_appointment = zoom_appointment.clone();
    if let Some(fields) = new_appointment.as_object_mut() {
        fields.remove("id");
        fields.remove("meta");
    }
    let note = read_or(
        app,
        &format!("/fhir/DocumentReference/{}", t.zoom_note),
        document_reference(),
    )
    .await;
    let patient = read_or(app, &format!("/fhir/Patient/{}", t.drchrono_patient), patient()).await;
    let scribe = json!({"resourceType": "Parameters", "parameter": [
        {"name": "language", "valueCode": "en-US"},
        {"name": "visitType", "valueCode": "FollowUpVisit"},
        {"name": "template", "part": [{"name": "title", "valueString": "Plan"},
                                      {"name": "instruction", "valueString": "What happens next"}]}]});
    let invite = json!({"resourceType": "Parameters", "parameter": [
        {"name": "channel", "valueCode": "email"}, {"name": "message", "valueString": "See you soon"}]});
    let plain = json!({"resourceType": "Parameters", "parameter": [{"name": "note", "valueString": "x"}]});
    let route = |method, uri: String, base: &Value, patch| Route {
        method,
        uri,
        base: base.clone(),
        patch,
    };
    vec![
        route("POST", "/fhir/Appointment".to_owned(), &new_appointment, false),
        route(
            "PUT",
            format!("/fhir/Appointment/{}", t.zoom_appointment),
            &zoom_appointment,
            false,
        ),
        route(
            "PATCH",
            format!("/fhir/Appointment/{}", t.zoom_appointment),
            &zoom_appointment,
            true,
        ),
        route("PUT", format!("/fhir/DocumentReference/{}", t.zoom_note), &note, false),
        route("PATCH", format!("/fhir/DocumentReference/{}", t.zoom_note), &note, true),
        route("PUT", format!("/fhir/Patient/{}", t.drchrono_patient), &patient, false),
        route("PATCH", format!("/fhir/Patient/{}", t.drchrono_patient), &patient, true),
        route(
            "POST",
            format!("/fhir/Appointment/{}/$admit", t.zoom_appointment),
            &plain,
            false,
        ),
        route(
            "POST",
            format!("/fhir/Appointment/{}/$invite", t.zoom_appointment),
            &invite,
            false,
        ),
        route(
            "POST",
            format!("/fhir/Appointment/{}/$start-scribe", t.drchrono_appointment),
            &scribe,
            false,
        ),
        route(
            "POST",
            format!("/fhir/DocumentReference/{}/$regenerate", t.noa_document),
            &plain,
            false,
        ),
        route(
            "POST",
            format!("/fhir/DocumentReference/{}/$recover", t.noa_document),
            &plain,
            false,
        ),
    ]
}

const PATCH_OPS: &[&str] = &["add", "replace", "remove", "test", "move", "copy"];
const PATCH_PATHS: &[&str] = &[
    "",
    "/participant",
    "/participant/0",
    "/participant/0/actor",
    "/participant/-",
    "/start",
    "/_start",
    "/_start/extension",
    "/status",
    "/id",
    "/resourceType",
    "/meta",
    "/extension",
    "/extension/0",
    "/content",
    "/content/0/attachment",
    "/docStatus",
    "/name/0/given",
    "/text",
    "/nope/deeper",
];

fn patch_document() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(PATCH_OPS),
            prop::sample::select(PATCH_PATHS),
            prop::sample::select(PATCH_PATHS),
            json_value(),
        ),
        1..4,
    )
    .prop_map(|ops| {
        Value::Array(
            ops.into_iter()
                .map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
                .collect(),
        )
    })
}

/// What a write case sends.
#[derive(Debug, Clone)]
enum Payload {
    /// The route's valid body, changed (for a PATCH route: a patch replacing the whole resource
    /// with it).
    Mutated(Vec<Mutation>),
    Json(Value),
    Patch(Value),
    Raw(Vec<u8>),
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        4 => prop::collection::vec(mutation(), 1..4).prop_map(Payload::Mutated),
        2 => fhirish_body().prop_map(Payload::Json),
        1 => json_value().prop_map(Payload::Json),
        2 => patch_document().prop_map(Payload::Patch),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(Payload::Raw),
    ]
}

fn encode(route: &Route, payload: &Payload) -> Vec<u8> {
    match payload {
        Payload::Mutated(mutations) => {
            let body = mutate(route.base.clone(), mutations);
            if route.patch {
                json!([{"op": "replace", "path": "", "value": body}])
                    .to_string()
                    .into_bytes()
            } else {
                body.to_string().into_bytes()
            }
        }
        Payload::Json(v) | Payload::Patch(v) => v.to_string().into_bytes(),
        Payload::Raw(bytes) => bytes.clone(),
    }
}

#[test]
fn write_routes_and_operations_never_answer_5xx() {
    let rt = runtime();
    let practice = rt.block_on(practice());
    let app = gateway::app::app(practice.gateway.state.clone());
    let targets = targets(&practice);
    let routes = rt.block_on(write_routes(&app, &targets));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(any::<Index>(), payload()), |(at, payload)| {
            let route = at.get(&routes);
            let media = if route.patch {
                "application/json-patch+json"
            } else {
                "application/fhir+json"
            };
            let body = encode(route, &payload);
            let (status, answer) = rt.block_on(send(&app, route.method, &route.uri, &content_type(media), body));
            prop_assert!(
                !status.is_server_error(),
                "{} {} answered {status}: {answer}",
                route.method,
                route.uri
            );
            if !status.is_success() {
                prop_assert_eq!(
                    answer["resourceType"].as_str(),
                    Some("OperationOutcome"),
                    "{} {} answered {}: {}",
                    route.method,
                    route.uri,
                    status,
                    answer
                );
            }
            Ok(())
        })
        .expect("no write answers 5xx, and every refusal is an OperationOutcome");
}

// ---------------------------------------------------------------------------------------------
// Regressions: empty arrays answered 500 (the FHIR JSON parser unwrapped them)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_arrays_are_refused_naming_the_element() {
    let practice = practice().await;
    let app = gateway::app::app(practice.gateway.state.clone());
    let t = targets(&practice);
    let fhir = content_type("application/fhir+json");
    let cases = [
        (
            "POST",
            format!("/fhir/Appointment/{}/$start-scribe", t.drchrono_appointment),
            json!({"resourceType": "Parameters", "parameter": []}),
            "Parameters.parameter",
        ),
        (
            "POST",
            "/fhir/Appointment".to_owned(),
            json!({"resourceType": "Appointment", "status": "booked", "participant": []}),
            "Appointment.participant",
        ),
        (
            "POST",
            "/fhir/Appointment".to_owned(),
            json!({"resourceType": "Appointment", "status": "booked", "_start": {"extension": []}}),
            "Appointment._start.extension",
        ),
        (
            "PUT",
            format!("/fhir/Appointment/{}", t.zoom_appointment),
            json!({"resourceType": "Appointment", "id": t.zoom_appointment, "status": "booked", "participant": []}),
            "Appointment.participant",
        ),
    ];
    for (method, uri, body, element) in cases {
        let (status, outcome) = send(&app, method, &uri, &fhir, body.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
        let issue = &outcome["issue"][0];
        assert_eq!(issue["code"], "invalid", "{outcome}");
        assert_eq!(issue["expression"][0], element, "{outcome}");
        assert!(
            issue["diagnostics"].as_str().is_some_and(|d| d.contains(element)),
            "{outcome}"
        );
    }

    // A patch that empties an array: the patched resource is refused (422) naming the element.
    let (status, outcome) = send(
        &app,
        "PATCH",
        &format!("/fhir/Appointment/{}", t.zoom_appointment),
        &content_type("application/json-patch+json"),
        json!([{"op": "add", "path": "/participant", "value": []}])
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{outcome}");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("Appointment.participant")),
        "{outcome}"
    );
}
