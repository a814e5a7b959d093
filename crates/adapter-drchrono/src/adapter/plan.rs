//! FHIR search → DrChrono list queries: what is pushed down, and how date ranges become DrChrono
//! `date` / `date_range` windows.
//!
//! Pure: the practice time zones come in as arguments, and no clock is read. Every translation may
//! widen the FHIR search (the gateway filters every parameter again) but never narrows it.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use adapter::search::{DateRange, Modifier, Prefix, SearchParam, SearchValue, TokenValue, plausible_instant};
use adapter::{ResourceType, SearchRequest, systems};

use super::cursor::{Stream, Window};
use crate::map::codes::AppointmentStatus;
use crate::map::ids;
// A canonical positive decimal id (`12`, not `012` or `+12`).
pub(crate) use crate::map::ids::canonical_positive as numeric;

/// DrChrono's longest `date_range` that reaches into the present or future (`/api/appointments`,
/// `/api/clinical_notes`: "Cannot be longer than 190 days, unless it is in the past").
pub(crate) const MAX_WINDOW_DAYS: i64 = 190;

/// A date span needing more windows than this is listed whole (`since`) instead: one call per
/// 250 records beats dozens of mostly empty windows.
pub(crate) const MAX_WINDOWS: i64 = 8;

/// `since` value meaning "everything" for lists that refuse to list without a date filter.
pub(crate) const SINCE_EVER: &str = "1970-01-01T00:00:00";

/// The doc: "Passing verbose=true … will reduce the default and maximum page sizes to 50."
const VERBOSE_PAGE_SIZE: u32 = 50;

const ADMINISTRATIVE_GENDER: &str = "http://hl7.org/fhir/administrative-gender";
const APPOINTMENT_STATUS: &str = "http://hl7.org/fhir/appointmentstatus";

/// What a search needs from DrChrono.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing at DrChrono can match (e.g. a reference to another source): no vendor call.
    Nothing,
    /// Read these native ids one by one (`_id`).
    Ids(Vec<String>),
    /// Walk these lists, in order.
    Lists(Vec<ListQuery>),
}

/// One DrChrono list with its filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) stream: Stream,
    /// Query parameters besides `page_size` and the date window.
    pub(crate) params: Vec<(&'static str, String)>,
    /// Practice-local dates the list is restricted to, walked in [`Window`]s.
    pub(crate) span: Option<Window>,
    pub(crate) page_size: u32,
}

impl ListQuery {
    fn new(stream: Stream, page_size: u32) -> Self {
        Self {
            stream,
            params: Vec::new(),
            span: None,
            page_size: page_size.clamp(1, stream.max_page_size()),
        }
    }

    /// The notes of one patient's appointments on one day (`day` as DrChrono wrote it).
    pub(crate) fn notes_of_day(day: &str, patient: i64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("page_size", &Stream::ClinicalNotes.max_page_size().to_string())
            .append_pair("verbose", "true")
            .append_pair("date", day)
            .append_pair("patient", &patient.to_string());
        format!("{}?{}", Stream::ClinicalNotes.path(), query.finish())
    }

    /// Every appointment of one patient, verbose (the doc: at most 50 a page then), so that their
    /// `clinical_note` carries each note's lock state.
    pub(crate) fn appointments_of_patient(patient: i64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("page_size", &VERBOSE_PAGE_SIZE.to_string())
            .append_pair("verbose", "true")
            .append_pair("patient", &patient.to_string())
            .append_pair("since", SINCE_EVER);
        format!("{}?{}", Stream::Appointments.path(), query.finish())
    }

    /// The relative URL of the first page of `window` (or of the whole list).
    pub(crate) fn first_page(&self, window: Option<Window>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("page_size", &self.page_size.to_string());
        for (name, value) in &self.params {
            query.append_pair(name, value);
        }
        if let Some(w) = window {
            if w.first == w.last {
                query.append_pair("date", &w.first.to_string());
            } else {
                query.append_pair("date_range", &w.encode());
            }
        }
        format!("{}?{}", self.stream.path(), query.finish())
    }

    /// The first window of the list (`None` for lists without a date span).
    pub(crate) fn first_window(&self) -> Option<Window> {
        self.span.and_then(|span| window_from(span, span.first))
    }

    /// The window after `current`, `None` after the last.
    pub(crate) fn next_window(&self, current: Window) -> Option<Window> {
        let span = self.span?;
        window_from(span, current.last.succ_opt()?)
    }

    /// True when `window` may come from this list's span (a continuation of this search).
    pub(crate) fn owns_window(&self, window: Option<Window>) -> bool {
        match (self.span, window) {
            (None, None) => true,
            (Some(span), Some(w)) => span.first <= w.first && w.last <= span.last && window_days(w) <= MAX_WINDOW_DAYS,
            _ => false,
        }
    }
}

/// The window of `span` starting at `start`, at most [`MAX_WINDOW_DAYS`] long. Windows never
/// depend on "today": DrChrono's exception for long ranges in the past is judged by its clock,
/// not the gateway's.
fn window_from(span: Window, start: NaiveDate) -> Option<Window> {
    if start > span.last {
        return None;
    }
    let first = start.max(span.first);
    let last = span.last.min(first + Duration::days(MAX_WINDOW_DAYS - 1));
    Some(Window { first, last })
}

/// Days a window covers, both ends included.
fn window_days(w: Window) -> i64 {
    (w.last - w.first).num_days() + 1
}

/// The inputs a plan depends on besides the request.
#[derive(Debug, Clone)]
pub(crate) struct PlanCtx<'a> {
    /// Every time zone DrChrono's zone-less timestamps of this account can be in (not empty).
    pub(crate) zones: &'a [Tz],
    pub(crate) page_size: u32,
}

/// Plans `request` on `resource_type`.
pub(crate) fn plan(resource_type: ResourceType, request: &SearchRequest, ctx: &PlanCtx) -> Plan {
    if let Some(ids) = id_filter(resource_type, request) {
        return if ids.is_empty() { Plan::Nothing } else { Plan::Ids(ids) };
    }
    let planned = match resource_type {
        ResourceType::Patient => patients(request, ctx),
        ResourceType::Practitioner => Some(vec![ListQuery::new(Stream::Doctors, ctx.page_size)]),
        ResourceType::Location => {
            let mut q = ListQuery::new(Stream::Offices, ctx.page_size);
            // Archived offices are inactive Locations, not missing ones.
            q.params.push(("show_archived", "true".into()));
            Some(vec![q])
        }
        ResourceType::Appointment => appointments(request, ctx),
        ResourceType::DocumentReference => documents(request, ctx),
        ResourceType::Encounter | ResourceType::Schedule | ResourceType::Slot => None,
    };
    match planned {
        Some(lists) => Plan::Lists(lists),
        None => Plan::Nothing,
    }
}

/// The FHIR parameters [`plan`] pushes down, per type (for the capabilities).
pub(crate) fn pushdown(resource_type: ResourceType) -> Vec<&'static str> {
    match resource_type {
        ResourceType::Patient => vec![
            "_id",
            "identifier",
            "family",
            "birthdate",
            "gender",
            "email",
            "_lastUpdated",
        ],
        ResourceType::Practitioner | ResourceType::Location => vec!["_id", "identifier"],
        ResourceType::Appointment => vec![
            "_id",
            "identifier",
            "patient",
            "practitioner",
            "location",
            "date",
            "status",
            "_lastUpdated",
        ],
        ResourceType::DocumentReference => vec!["_id", "identifier", "patient", "subject", "author", "date"],
        ResourceType::Encounter | ResourceType::Schedule | ResourceType::Slot => vec![],
    }
}

/// The native ids a search names directly, `None` when it names none: `_id=drchrono-1,drchrono-2`
/// or `identifier=urn:fhir-gateway:id:drchrono:{kind}|1` (the identifier every resource carries
/// its native id under).
fn id_filter(resource_type: ResourceType, request: &SearchRequest) -> Option<Vec<String>> {
    let mut natives = match request.id_natives(ids::SOURCE) {
        Some(natives) => natives,
        // An identifier of another system, or of none, may match other identifiers (the chart id).
        None => request.identifier_codes(&systems::native_id_system(ids::SOURCE, native_kind(resource_type)?))?,
    };
    natives.sort();
    natives.dedup();
    Some(natives)
}

/// The `kind` of the native-id identifier system of each type.
fn native_kind(resource_type: ResourceType) -> Option<&'static str> {
    match resource_type {
        ResourceType::Patient => Some(ids::kind::PATIENT),
        ResourceType::Practitioner => Some(ids::kind::PRACTITIONER),
        ResourceType::Location => Some(ids::kind::LOCATION),
        ResourceType::Appointment => Some(ids::kind::APPOINTMENT),
        ResourceType::DocumentReference => Some(ids::kind::DOCUMENT_REFERENCE),
        ResourceType::Encounter | ResourceType::Schedule | ResourceType::Slot => None,
    }
}

fn patients(request: &SearchRequest, ctx: &PlanCtx) -> Option<Vec<ListQuery>> {
    let mut q = ListQuery::new(Stream::Patients, ctx.page_size);
    // FHIR searches inactive patients too; DrChrono hides them unless asked.
    q.params.push(("show_inactive", "true".into()));
    // DrChrono: "Case-insensitive and includes partial matches" — wider than FHIR's starts-with.
    if let Some(family) = partial_string(request, "family") {
        q.params.push(("last_name", family));
    }
    if let Some(dob) = request.single("birthdate").and_then(|v| birth_date(v, ctx.zones)) {
        q.params.push(("date_of_birth", dob.to_string()));
    }
    if let Some(gender) = single_code(request, "gender", ADMINISTRATIVE_GENDER) {
        let vendor = match gender.as_str() {
            "male" => Some("Male"),
            "female" => Some("Female"),
            "other" => Some("Other"),
            _ => None,
        };
        if let Some(vendor) = vendor {
            q.params.push(("gender", vendor.into()));
        }
    }
    if let Some(email) = single_code(request, "email", "") {
        q.params.push(("email", email));
    }
    push_since(&mut q, request, "_lastUpdated", ctx.zones);
    Some(vec![q])
}

fn appointments(request: &SearchRequest, ctx: &PlanCtx) -> Option<Vec<ListQuery>> {
    let mut q = ListQuery::new(Stream::Appointments, ctx.page_size);
    push_numeric_reference(&mut q, request, "patient", ResourceType::Patient, "patient")?;
    push_numeric_reference(&mut q, request, "practitioner", ResourceType::Practitioner, "doctor")?;
    if let Some(natives) = request.reference_natives("location", ids::SOURCE, ResourceType::Location) {
        let offices: Vec<i64> = natives
            .iter()
            .filter_map(|n| ids::parse_location(n))
            .map(|l| match l {
                ids::LocationId::Office(office) => office,
                ids::LocationId::ExamRoom { office, .. } => office,
            })
            .collect();
        match offices.as_slice() {
            [] => return None,
            [office] => q.params.push(("office", office.to_string())),
            [first, rest @ ..] if rest.iter().all(|o| o == first) => {
                q.params.push(("office", first.to_string()));
            }
            _ => {}
        }
    }
    if let Some(status) = single_code(request, "status", APPOINTMENT_STATUS)
        && let Some(vendor) = appointment_status(&status)
    {
        q.params.push(("status", vendor.into()));
    }
    q.span = request
        .date_bounds("date")
        .and_then(|range| local_span(range, ctx.zones));
    push_since(&mut q, request, "_lastUpdated", ctx.zones);
    require_date_filter(&mut q);
    Some(vec![q])
}

fn documents(request: &SearchRequest, ctx: &PlanCtx) -> Option<Vec<ListQuery>> {
    let mut notes = ListQuery::new(Stream::ClinicalNotes, ctx.page_size);
    // The section values only come with `verbose=true`.
    notes.params.push(("verbose", "true".into()));
    let mut docs = ListQuery::new(Stream::Documents, ctx.page_size);
    for name in ["patient", "subject"] {
        let before = notes.params.len();
        push_numeric_reference(&mut notes, request, name, ResourceType::Patient, "patient")?;
        if notes.params.len() > before {
            // Both name the subject: one filter narrows enough, the gateway checks the other.
            docs.params.push(("patient", notes.params[before].1.clone()));
            break;
        }
    }
    if let Some(natives) = request.reference_natives("author", ids::SOURCE, ResourceType::Practitioner) {
        let doctors: Vec<i64> = natives.iter().filter_map(|n| numeric(n)).collect();
        match doctors.as_slice() {
            [] => return None,
            [doctor] => docs.params.push(("doctor", doctor.to_string())),
            _ => {}
        }
    }
    // A note's `context.period` is its appointment's: DrChrono's note `date`/`date_range` filter
    // on the appointment's day. A period can start before a `ge` bound and still match, so the
    // span starts a day early (appointments are shorter than a day).
    notes.span = request
        .date_bounds("period")
        .and_then(|range| local_span(range, ctx.zones))
        .and_then(|span| {
            Some(Window {
                first: span.first.pred_opt()?,
                last: span.last,
            })
        });
    // A note's `date` and `meta.lastUpdated` are its `updated_at`, which `since` filters on.
    push_since(&mut notes, request, "date", ctx.zones);
    push_since(&mut notes, request, "_lastUpdated", ctx.zones);
    // A document's `date` is its own field (no DrChrono filter); `meta.lastUpdated` is `updated_at`.
    push_since(&mut docs, request, "_lastUpdated", ctx.zones);
    require_date_filter(&mut notes);
    // A document's category is text alone ("Document"): a `category` token, with no modifier,
    // matches no document, so their list is not walked (a chart's clinical-note search is one
    // list, not two).
    if request.params("category").any(|p| p.modifier.is_none()) {
        return Some(vec![notes]);
    }
    Some(vec![notes, docs])
}

/// Pushes `param=<native>` of a reference search to `filter` when it names exactly one numeric
/// DrChrono id; `None` when the reference can match nothing at DrChrono.
fn push_numeric_reference(
    q: &mut ListQuery,
    request: &SearchRequest,
    param: &str,
    target: ResourceType,
    filter: &'static str,
) -> Option<()> {
    let Some(natives) = request.reference_natives(param, ids::SOURCE, target) else {
        return Some(());
    };
    let mut numbers: Vec<i64> = natives.iter().filter_map(|n| numeric(n)).collect();
    numbers.dedup();
    match numbers.as_slice() {
        [] => None,
        [one] => {
            q.params.push((filter, one.to_string()));
            Some(())
        }
        _ => Some(()),
    }
}

/// Appointments and clinical notes are only listed with `since`, `date` or `date_range`.
fn require_date_filter(q: &mut ListQuery) {
    if q.span
        .is_some_and(|span| window_days(span) > MAX_WINDOWS * MAX_WINDOW_DAYS)
    {
        q.span = None;
    }
    if q.span.is_none() && !q.params.iter().any(|(name, _)| *name == "since") {
        q.params.push(("since", SINCE_EVER.into()));
    }
}

/// The lower bound of a date parameter on `updated_at` (`_lastUpdated=ge…`, a note's `date`) →
/// `since`: the earliest local reading of the bound in any zone, a day early (a wall time in a DST
/// gap, or a vendor reading `since` in yet another zone, stays covered; a day more of records is
/// cheap). Two bounds keep the later one: both must hold.
fn push_since(q: &mut ListQuery, request: &SearchRequest, name: &str, zones: &[Tz]) {
    let Some(range) = request.date_bounds(name) else {
        return;
    };
    if !plausible(range.start) {
        return;
    }
    let Some(earliest) = zones.iter().map(|tz| range.start.with_timezone(tz).naive_local()).min() else {
        return;
    };
    let since = (earliest - Duration::days(1)).format("%Y-%m-%dT%H:%M:%S").to_string();
    match q.params.iter_mut().find(|(n, _)| *n == "since") {
        // Same format throughout: the text order is the time order.
        Some((_, existing)) => {
            if since > *existing {
                *existing = since;
            }
        }
        None => q.params.push(("since", since)),
    }
}

/// The practice-local dates covering `range` in every zone, when both ends are bounded.
fn local_span(range: DateRange, zones: &[Tz]) -> Option<Window> {
    if !plausible(range.start) || !plausible(range.end) || range.end <= range.start {
        return None;
    }
    let last_instant = range.end - Duration::milliseconds(1);
    let first = zones
        .iter()
        .map(|tz| range.start.with_timezone(tz).date_naive())
        .min()?;
    let last = zones
        .iter()
        .map(|tz| last_instant.with_timezone(tz).date_naive())
        .max()?;
    Some(Window { first, last })
}

/// Instants a DrChrono record can carry (from 1800: birth dates); open bounds
/// (`DateTime::MIN_UTC`…) are not.
fn plausible(t: DateTime<Utc>) -> bool {
    plausible_instant(t, 1800)
}

/// `birthdate=1980-05-10`: the day, when the value is exactly one local day in one of the zones.
fn birth_date(value: &SearchValue, zones: &[Tz]) -> Option<NaiveDate> {
    let SearchValue::Date(d) = value else {
        return None;
    };
    if d.prefix != Prefix::Eq || !plausible(d.range.start) || !plausible(d.range.end) {
        return None;
    }
    let mut found: Option<NaiveDate> = None;
    for tz in zones.iter().chain(std::iter::once(&Tz::UTC)) {
        let start = d.range.start.with_timezone(tz).naive_local();
        let end = d.range.end.with_timezone(tz).naive_local();
        let day = start.date();
        if start.time() == NaiveTime::MIN && end.time() == NaiveTime::MIN && day.succ_opt() == Some(end.date()) {
            match found {
                Some(other) if other != day => return None,
                _ => found = Some(day),
            }
        }
    }
    found
}

/// The one string value of a `family`/`given` search that DrChrono's partial match covers.
fn partial_string(request: &SearchRequest, name: &str) -> Option<String> {
    request.params(name).find_map(|p: &SearchParam| {
        if !matches!(p.modifier, None | Some(Modifier::Exact | Modifier::Contains)) {
            return None;
        }
        match p.values.as_slice() {
            [SearchValue::String(s)] if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        }
    })
}

/// The code of a token parameter given once with one value, without a modifier, and either no
/// system or `system` (when `system` is not empty).
fn single_code(request: &SearchRequest, name: &str, system: &str) -> Option<String> {
    match request.single(name)? {
        SearchValue::Token(TokenValue {
            system: s,
            code: Some(code),
        }) if !code.is_empty() && (s.is_none() || (!system.is_empty() && s.as_deref() == Some(system))) => {
            Some(code.clone())
        }
        SearchValue::String(code) if !code.is_empty() => Some(code.clone()),
        _ => None,
    }
}

/// FHIR Appointment.status → the DrChrono status, when exactly one maps to it (the inverse of
/// the mapping's code table: `pending`, `arrived`, `fulfilled`, `noshow`).
fn appointment_status(fhir: &str) -> Option<&'static str> {
    let mut sources = AppointmentStatus::ALL.into_iter().filter(|s| s.fhir().code() == fhir);
    match (sources.next(), sources.next()) {
        (Some(only), None) => Some(only.wire()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use adapter::search::{DateValue, ReferenceValue};

    use super::*;

    const NY: Tz = chrono_tz::America::New_York;

    fn p(name: &str, modifier: Option<Modifier>, values: Vec<SearchValue>) -> SearchParam {
        SearchParam {
            name: name.into(),
            modifier,
            values,
        }
    }

    fn s(v: &str) -> SearchValue {
        SearchValue::String(v.into())
    }

    fn t(system: Option<&str>, code: &str) -> SearchValue {
        SearchValue::Token(TokenValue {
            system: system.map(Into::into),
            code: Some(code.into()),
        })
    }

    fn r(resource_type: ResourceType, id: &str) -> SearchValue {
        SearchValue::Reference(ReferenceValue {
            resource_type: Some(resource_type),
            id: id.into(),
        })
    }

    fn d(prefix: Prefix, value: &str) -> SearchValue {
        SearchValue::Date(DateValue {
            prefix,
            range: DateRange::parse(value, NY).unwrap(),
        })
    }

    fn planned(resource_type: ResourceType, params: Vec<SearchParam>) -> Plan {
        let request = SearchRequest {
            resource_type: Some(resource_type),
            params,
        };
        plan(
            resource_type,
            &request,
            &PlanCtx {
                zones: &[NY],
                page_size: 100,
            },
        )
    }

    /// The first-page URL of each list of the plan.
    fn urls(resource_type: ResourceType, params: Vec<SearchParam>) -> Vec<String> {
        match planned(resource_type, params) {
            Plan::Lists(lists) => lists.iter().map(|q| q.first_page(q.first_window())).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn one(resource_type: ResourceType, params: Vec<SearchParam>) -> String {
        let mut all = urls(resource_type, params);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn a_patients_appointments_are_listed_verbose_since_ever() {
        assert_eq!(
            ListQuery::appointments_of_patient(42),
            "api/appointments?page_size=50&verbose=true&patient=42&since=1970-01-01T00%3A00%3A00"
        );
    }

    #[test]
    fn patient_parameters_push_down_where_drchrono_is_as_wide() {
        use ResourceType::Patient;
        let base = "api/patients?page_size=100&show_inactive=true";
        assert_eq!(one(Patient, vec![]), base);
        let cases = [
            (p("family", None, vec![s("Smi")]), "&last_name=Smi"),
            (p("family", Some(Modifier::Exact), vec![s("Smith")]), "&last_name=Smith"),
            (p("family", Some(Modifier::Contains), vec![s("mit")]), "&last_name=mit"),
            // OR of two names, :missing, and `given` (which also matches middle and nick names)
            // cannot be sent.
            (p("family", None, vec![s("A"), s("B")]), ""),
            (
                p("family", Some(Modifier::Missing), vec![SearchValue::Missing(true)]),
                "",
            ),
            (p("given", None, vec![s("Ann")]), ""),
            (
                p("birthdate", None, vec![d(Prefix::Eq, "1980-05-10")]),
                "&date_of_birth=1980-05-10",
            ),
            (p("birthdate", None, vec![d(Prefix::Eq, "1980-05")]), ""),
            (p("birthdate", None, vec![d(Prefix::Ge, "1980-05-10")]), ""),
            (p("gender", None, vec![t(None, "female")]), "&gender=Female"),
            (
                p("gender", None, vec![t(Some(ADMINISTRATIVE_GENDER), "male")]),
                "&gender=Male",
            ),
            (p("gender", None, vec![t(None, "other")]), "&gender=Other"),
            (p("gender", None, vec![t(None, "unknown")]), ""),
            (p("gender", None, vec![t(Some("urn:x"), "male")]), ""),
            (p("gender", Some(Modifier::Not), vec![t(None, "male")]), ""),
            (p("email", None, vec![t(None, "a@b.test")]), "&email=a%40b.test"),
            (
                p("_lastUpdated", None, vec![d(Prefix::Ge, "2024-03-05T10:00:00Z")]),
                "&since=2024-03-04T05%3A00%3A00",
            ),
            (p("_lastUpdated", None, vec![d(Prefix::Le, "2024-03-05")]), ""),
        ];
        for (param, expected) in cases {
            let name = param.name.clone();
            assert_eq!(one(Patient, vec![param]), format!("{base}{expected}"), "{name}");
        }
    }

    #[test]
    fn ids_and_native_identifiers_are_read_directly() {
        use ResourceType::{Appointment, Patient};
        let ids = p(
            "_id",
            None,
            vec![t(None, "drchrono-2"), t(None, "zoom-3"), t(None, "drchrono-1")],
        );
        assert_eq!(planned(Patient, vec![ids]), Plan::Ids(vec!["1".into(), "2".into()]));
        assert_eq!(
            planned(Patient, vec![p("_id", None, vec![t(None, "zoom-3")])]),
            Plan::Nothing
        );
        let system = "urn:fhir-gateway:id:drchrono:appointment";
        assert_eq!(
            planned(Appointment, vec![p("identifier", None, vec![t(Some(system), "9001")])]),
            Plan::Ids(vec!["9001".into()])
        );
        // Without the native system an identifier may be a chart id: listed, not read.
        assert!(matches!(
            planned(Patient, vec![p("identifier", None, vec![t(None, "9001")])]),
            Plan::Lists(_)
        ));
    }

    #[test]
    fn appointment_parameters_push_down() {
        use ResourceType::{Appointment, Location, Patient, Practitioner};
        let base = "api/appointments?page_size=100";
        let ever = "&since=1970-01-01T00%3A00%3A00";
        assert_eq!(one(Appointment, vec![]), format!("{base}{ever}"));
        let cases = [
            (p("patient", None, vec![r(Patient, "drchrono-7")]), "&patient=7"),
            (
                p("patient", None, vec![r(Patient, "drchrono-7"), r(Patient, "zoom-1")]),
                "&patient=7",
            ),
            (
                p(
                    "patient",
                    None,
                    vec![r(Patient, "drchrono-7"), r(Patient, "drchrono-8")],
                ),
                "",
            ),
            (
                p("practitioner", None, vec![r(Practitioner, "drchrono-3")]),
                "&doctor=3",
            ),
            (p("location", None, vec![r(Location, "drchrono-4")]), "&office=4"),
            (p("location", None, vec![r(Location, "drchrono-4-room-2")]), "&office=4"),
            (p("status", None, vec![t(None, "noshow")]), "&status=No+Show"),
            (p("status", None, vec![t(None, "pending")]), "&status=Not+Confirmed"),
            (p("status", None, vec![t(None, "arrived")]), "&status=Arrived"),
            (p("status", None, vec![t(None, "fulfilled")]), "&status=Complete"),
            (p("status", None, vec![t(None, "booked")]), ""),
            (p("status", None, vec![t(None, "cancelled")]), ""),
            (p("status", None, vec![t(None, "checked-in")]), ""),
        ];
        for (param, expected) in cases {
            let name = param.name.clone();
            assert_eq!(
                one(Appointment, vec![param]),
                format!("{base}{expected}{ever}"),
                "{name}"
            );
        }
        for other_source in [
            p("patient", None, vec![r(Patient, "zoom-7")]),
            p("patient", None, vec![r(Patient, "drchrono-x7")]),
            p("practitioner", None, vec![r(Practitioner, "noa-3")]),
            p("location", None, vec![r(Location, "drchrono-room")]),
        ] {
            assert_eq!(planned(Appointment, vec![other_source]), Plan::Nothing);
        }
    }

    #[test]
    fn appointment_dates_become_windows_of_at_most_190_days() {
        use ResourceType::Appointment;
        assert_eq!(
            one(Appointment, vec![p("date", None, vec![d(Prefix::Eq, "2024-07-04")])]),
            "api/appointments?page_size=100&date=2024-07-04"
        );
        // An instant late in the evening UTC is still the same New York day.
        assert_eq!(
            one(
                Appointment,
                vec![p("date", None, vec![d(Prefix::Eq, "2024-07-05T02:30:00Z")])]
            ),
            "api/appointments?page_size=100&date=2024-07-04"
        );
        let Plan::Lists(lists) = planned(
            Appointment,
            vec![
                p("date", None, vec![d(Prefix::Ge, "2024-01-01")]),
                p("date", None, vec![d(Prefix::Lt, "2025-01-01")]),
            ],
        ) else {
            panic!()
        };
        let q = &lists[0];
        let mut windows = vec![q.first_window().unwrap()];
        while let Some(w) = q.next_window(*windows.last().unwrap()) {
            windows.push(w);
        }
        let encoded: Vec<String> = windows.iter().map(|w| w.encode()).collect();
        assert_eq!(encoded, ["2024-01-01/2024-07-08", "2024-07-09/2024-12-31"]);
        assert!(windows.iter().all(|w| q.owns_window(Some(*w))));
        assert!(!q.owns_window(Window::parse("2023-12-01/2024-01-02")));
        assert!(!q.owns_window(None));
        assert_eq!(
            q.first_page(Some(windows[1])),
            "api/appointments?page_size=100&date_range=2024-07-09%2F2024-12-31"
        );
        // Open-ended, `ne`, or longer than eight windows: listed whole.
        for params in [
            vec![p("date", None, vec![d(Prefix::Ge, "2024-01-01")])],
            vec![p("date", None, vec![d(Prefix::Ne, "2024-01-01")])],
            vec![
                p("date", None, vec![d(Prefix::Ge, "2010")]),
                p("date", None, vec![d(Prefix::Le, "2024")]),
            ],
        ] {
            assert_eq!(
                one(Appointment, params),
                "api/appointments?page_size=100&since=1970-01-01T00%3A00%3A00"
            );
        }
    }

    #[test]
    fn document_searches_list_notes_then_documents() {
        use ResourceType::{DocumentReference, Patient, Practitioner};
        let notes = "api/clinical_notes?page_size=20&verbose=true";
        let docs = "api/documents?page_size=100";
        let ever = "&since=1970-01-01T00%3A00%3A00";
        assert_eq!(
            urls(DocumentReference, vec![]),
            [format!("{notes}{ever}"), docs.to_owned()]
        );
        for name in ["patient", "subject"] {
            assert_eq!(
                urls(DocumentReference, vec![p(name, None, vec![r(Patient, "drchrono-5")])]),
                [format!("{notes}&patient=5{ever}"), format!("{docs}&patient=5")]
            );
        }
        assert_eq!(
            urls(
                DocumentReference,
                vec![p("author", None, vec![r(Practitioner, "drchrono-2")])]
            ),
            [format!("{notes}{ever}"), format!("{docs}&doctor=2")]
        );
        assert_eq!(
            planned(
                DocumentReference,
                vec![p("author", None, vec![r(Practitioner, "zoom-2")])]
            ),
            Plan::Nothing
        );
        // `period` is the appointment's: the notes of its days (and the day before).
        assert_eq!(
            urls(
                DocumentReference,
                vec![p("period", None, vec![d(Prefix::Eq, "2024-07-04")])]
            ),
            [format!("{notes}&date_range=2024-07-03%2F2024-07-04"), docs.to_owned()]
        );
        // `date` is the note's update time; `_lastUpdated` also the document's.
        assert_eq!(
            urls(
                DocumentReference,
                vec![
                    p("date", None, vec![d(Prefix::Ge, "2024-07-04")]),
                    p("_lastUpdated", None, vec![d(Prefix::Gt, "2024-06-01")]),
                ]
            ),
            [
                format!("{notes}&since=2024-07-03T00%3A00%3A00"),
                format!("{docs}&since=2024-05-31T00%3A00%3A00")
            ]
        );
        // A document's category is text alone: a `category` token matches none of them, so only
        // the notes are listed; with a modifier (`:not`) documents may match.
        let category = |modifier| p("category", modifier, vec![t(None, "clinical-note")]);
        assert_eq!(
            urls(
                DocumentReference,
                vec![p("patient", None, vec![r(Patient, "drchrono-5")]), category(None)]
            ),
            [format!("{notes}&patient=5{ever}")]
        );
        assert_eq!(
            urls(DocumentReference, vec![category(Some(Modifier::Not))]),
            [format!("{notes}{ever}"), docs.to_owned()]
        );
    }

    #[test]
    fn practitioners_and_locations_are_listed_whole() {
        assert_eq!(one(ResourceType::Practitioner, vec![]), "api/doctors?page_size=100");
        assert_eq!(
            one(ResourceType::Location, vec![]),
            "api/offices?page_size=100&show_archived=true"
        );
        assert_eq!(planned(ResourceType::Encounter, vec![]), Plan::Nothing);
    }

    #[test]
    fn numeric_ids_are_canonical() {
        assert_eq!(numeric("12"), Some(12));
        for bad in ["012", "+12", "-1", "0", "1.0", "", "x"] {
            assert_eq!(numeric(bad), None, "{bad}");
        }
    }
}
