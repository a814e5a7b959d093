//! The `GET` endpoints: lists with the doc's filters and pagination, and objects by id.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Value, json};

use super::data::{ETHNICITIES, RACES, fmt_ts};
use super::wire::{APPOINTMENT_VERBOSE_KEYS, Appointment, OFFICE_VERBOSE_KEYS, PATIENT_VERBOSE_KEYS};
use super::{Dataset, Shared, read};

/// The longest `date_range` the doc allows unless the range is in the past.
const MAX_RANGE_DAYS: i64 = 190;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Collection {
    Patients,
    Doctors,
    Offices,
    Appointments,
    ClinicalNotes,
    Documents,
}

const COLLECTIONS: &[(&str, Collection)] = &[
    ("patients", Collection::Patients),
    ("doctors", Collection::Doctors),
    ("offices", Collection::Offices),
    ("appointments", Collection::Appointments),
    ("clinical_notes", Collection::ClinicalNotes),
    ("documents", Collection::Documents),
];

/// `/api/{collection}` and `/api/{collection}/{id}`, each with and without a trailing slash.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    let mut router = Router::new();
    for (name, collection) in COLLECTIONS {
        let collection = *collection;
        let list = get(
            move |State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap| async move {
                list(&shared, collection, &uri, &headers).unwrap_or_else(|e| e.into_response())
            },
        );
        let detail = get(
            move |State(shared): State<Arc<Shared>>, Path(id): Path<String>, uri: Uri| async move {
                detail(&shared, collection, &id, &uri).unwrap_or_else(|e| e.into_response())
            },
        );
        router = router
            .route(&format!("/api/{name}"), list.clone())
            .route(&format!("/api/{name}/"), list)
            .route(&format!("/api/{name}/{{id}}"), detail.clone())
            .route(&format!("/api/{name}/{{id}}/"), detail);
    }
    router
}

/// An error answered as the vendor's JSON.
#[derive(Debug)]
enum ApiError {
    /// 400 with this JSON body.
    BadRequest(Value),
    NotFound,
    InvalidPage,
}

impl ApiError {
    fn field(key: &str, message: &str) -> Self {
        ApiError::BadRequest(json!({ key: [message] }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(body) => (StatusCode::BAD_REQUEST, Json(body)).into_response(),
            ApiError::NotFound => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))).into_response(),
            ApiError::InvalidPage => (StatusCode::NOT_FOUND, Json(json!({"detail": "Invalid page."}))).into_response(),
        }
    }
}

pub(crate) async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

/// Query parameters; a repeated key keeps its last value, an empty value counts as absent
/// (as django-filter does).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &Uri) -> Self {
        Params(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| v.parse().map_err(|_| ApiError::field(key, "Enter a whole number.")))
            .transpose()
    }

    fn date(&self, key: &str) -> Result<Option<NaiveDate>, ApiError> {
        self.get(key)
            .map(|v| parse_date(v).ok_or_else(|| ApiError::field(key, "Enter a valid date.")))
            .transpose()
    }

    /// Booleans: `true`/`false` (any case), `1`/`0`, `yes`/`no`, `on`/`off`.
    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        // "If present": a bare `show_archived` (empty value) counts as true.
        if self.get(key).is_none() {
            return Ok(self.0.iter().any(|(k, v)| k == key && v.trim().is_empty()));
        }
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            _ => Err(ApiError::field(key, "Must be a valid boolean.")),
        }
    }

    fn verbose(&self) -> bool {
        self.get("verbose").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn choice<'a>(&'a self, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            Some(v) if allowed.contains(&v) => Ok(Some(v)),
            Some(v) => Err(ApiError::field(
                key,
                &format!("Select a valid choice. {v} is not one of the available choices."),
            )),
            None => Ok(None),
        }
    }

    /// `since`: a timestamp (zone-less = practice time; with `Z` or an offset, converted to
    /// practice time) or a date (midnight).
    fn since(&self, tz: chrono_tz::Tz) -> Result<Option<String>, ApiError> {
        let Some(raw) = self.get("since") else {
            return Ok(None);
        };
        parse_timestamp(raw, tz)
            .map(|t| Some(fmt_ts(t)))
            .ok_or_else(|| ApiError::field("since", "Enter a valid date/time."))
    }

    /// `date_range` as `(start, end)`, inclusive.
    fn date_range(&self, today: NaiveDate) -> Result<Option<(NaiveDate, NaiveDate)>, ApiError> {
        let Some(raw) = self.get("date_range") else {
            return Ok(None);
        };
        let invalid = || ApiError::field("date_range", "Enter a date range as YYYY-MM-DD/YYYY-MM-DD.");
        let (start, end) = raw.split_once('/').ok_or_else(invalid)?;
        let start = parse_date(start.trim()).ok_or_else(invalid)?;
        let end = parse_date(end.trim()).ok_or_else(invalid)?;
        if end < start {
            return Err(ApiError::field(
                "date_range",
                "The start of the range must not be after its end.",
            ));
        }
        if (end - start).num_days() > MAX_RANGE_DAYS && end >= today {
            return Err(ApiError::field(
                "date_range",
                "Date range cannot be longer than 190 days, unless it is in the past.",
            ));
        }
        Ok(Some((start, end)))
    }
}

fn parse_date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

fn parse_timestamp(raw: &str, tz: chrono_tz::Tz) -> Option<NaiveDateTime> {
    if let Ok(zoned) = DateTime::parse_from_rfc3339(raw) {
        return Some(zoned.with_timezone(&tz).naive_local());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(t);
        }
    }
    parse_date(raw).and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// Date part of a doc timestamp (`2014-02-24T15:32:19` → 2014-02-24).
fn date_of(timestamp: &str) -> Option<NaiveDate> {
    timestamp.get(..10).and_then(parse_date)
}

fn in_dates(timestamp: &str, date: Option<NaiveDate>, range: Option<(NaiveDate, NaiveDate)>) -> bool {
    let day = date_of(timestamp);
    date.is_none_or(|d| day == Some(d))
        && range.is_none_or(|(start, end)| day.is_some_and(|day| start <= day && day <= end))
}

fn require_window(params: &Params) -> Result<(), ApiError> {
    if ["since", "date", "date_range"]
        .iter()
        .any(|key| params.get(key).is_some())
    {
        Ok(())
    } else {
        Err(ApiError::BadRequest(json!({
            "detail": "One of the since, date or date_range query parameters must be specified."
        })))
    }
}

/// Serializes `item`, leaving out what needs `verbose=true`.
fn to_json<T: Serialize>(item: &T, collection: Collection, verbose: bool) -> Value {
    let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
    if verbose {
        return value;
    }
    let keys: &[&str] = match collection {
        Collection::Patients => PATIENT_VERBOSE_KEYS,
        Collection::Appointments => APPOINTMENT_VERBOSE_KEYS,
        Collection::Offices => OFFICE_VERBOSE_KEYS,
        Collection::ClinicalNotes => {
            // The doc: "you need to pass verbose=true for the values".
            if let Some(sections) = value.get_mut("clinical_note_sections").and_then(Value::as_array_mut) {
                for section in sections {
                    if let Some(section) = section.as_object_mut() {
                        section.remove("values");
                    }
                }
            }
            &[]
        }
        Collection::Doctors | Collection::Documents => &[],
    };
    if let Some(object) = value.as_object_mut() {
        for key in keys {
            object.remove(*key);
        }
    }
    value
}

fn list(shared: &Shared, collection: Collection, uri: &Uri, headers: &HeaderMap) -> Result<Response, ApiError> {
    let params = Params::parse(uri);
    let dataset = shared.dataset();
    let verbose = params.verbose();
    let items = select(shared, &dataset, collection, &params)?;

    let (default_size, max_size) = match (collection, verbose) {
        (Collection::ClinicalNotes, _) => (5, 20),
        (_, true) => (50, 50),
        (_, false) => (250, 250),
    };
    // As Django REST framework does: a page_size that is not a positive integer is ignored.
    let page_size = params
        .get("page_size")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(default_size, |n| n.min(max_size));
    let page = match params.get("page") {
        None => 1,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ApiError::InvalidPage)?,
    };
    let pages = items.len().div_ceil(page_size).max(1);
    if page > pages {
        return Err(ApiError::InvalidPage);
    }
    let start = (page - 1) * page_size;
    let results: Vec<Value> = items
        .iter()
        .skip(start)
        .take(page_size)
        .map(|item| item.to_json(collection, verbose))
        .collect();

    let origin = shared
        .faults()
        .foreign_next_origin
        .unwrap_or_else(|| request_origin(shared, headers));
    let link = |target: usize| Value::String(page_url(&origin, uri, &params, target));
    let body = json!({
        "next": if page < pages { link(page + 1) } else { Value::Null },
        "previous": if page > 1 { link(page - 1) } else { Value::Null },
        "results": results,
    });
    Ok(Json(body).into_response())
}

/// `http://{Host}` of the request, else the bound address.
fn request_origin(shared: &Shared, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(|host| format!("http://{host}"))
        .or_else(|| read(&shared.origin))
        .unwrap_or_else(|| super::PLACEHOLDER_ORIGIN.to_owned())
}

/// The requested URL with `page` set to `target` (and dropped for page 1, as Django REST
/// framework does).
fn page_url(origin: &str, uri: &Uri, params: &Params, target: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut placed = false;
    for (key, value) in &params.0 {
        if key == "page" {
            if !placed && target > 1 {
                query.append_pair("page", &target.to_string());
            }
            placed = true;
        } else {
            query.append_pair(key, value);
        }
    }
    if !placed && target > 1 {
        query.append_pair("page", &target.to_string());
    }
    let query = query.finish();
    let origin = origin.trim_end_matches('/');
    if query.is_empty() {
        format!("{origin}{}", uri.path())
    } else {
        format!("{origin}{}?{query}", uri.path())
    }
}

/// A borrowed object of any collection.
enum Item<'a> {
    Patient(&'a super::wire::Patient),
    Doctor(&'a super::wire::Doctor),
    Office(&'a super::wire::Office),
    Appointment(&'a Appointment),
    ClinicalNote(&'a super::wire::ClinicalNote),
    Document(&'a super::wire::Document),
}

impl Item<'_> {
    fn to_json(&self, collection: Collection, verbose: bool) -> Value {
        match self {
            Item::Patient(x) => to_json(*x, collection, verbose),
            Item::Doctor(x) => to_json(*x, collection, verbose),
            Item::Office(x) => to_json(*x, collection, verbose),
            Item::Appointment(x) => to_json(*x, collection, verbose),
            Item::ClinicalNote(x) => to_json(*x, collection, verbose),
            Item::Document(x) => to_json(*x, collection, verbose),
        }
    }
}

/// The filtered list, in id order (the dataset is stored in id order).
fn select<'a>(
    shared: &Shared,
    dataset: &'a Dataset,
    collection: Collection,
    params: &Params,
) -> Result<Vec<Item<'a>>, ApiError> {
    let tz = shared.timezone;
    let today = shared.config.anchor;
    let items = match collection {
        Collection::Doctors => dataset.doctors.iter().map(Item::Doctor).collect(),
        Collection::Offices => {
            let show_archived = params.flag("show_archived")?;
            dataset
                .offices
                .iter()
                .filter(|o| show_archived || !o.archived)
                .map(Item::Office)
                .collect()
        }
        Collection::Patients => {
            let date_of_birth = params.date("date_of_birth")?.map(|d| d.to_string());
            let doctor = params.int("doctor")?;
            let email = params.get("email").map(str::to_lowercase);
            let ethnicity = params.choice("ethnicity", ETHNICITIES)?;
            let first_name = params.get("first_name").map(str::to_lowercase);
            let last_name = params.get("last_name").map(str::to_lowercase);
            let gender = params.choice("gender", &["Male", "Female", "Other"])?;
            let offices: Option<Vec<i64>> = params
                .get("offices")
                .map(|raw| {
                    raw.split(',')
                        .map(|id| id.trim().parse::<i64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| ApiError::field("offices", "Enter office IDs separated by commas."))
                })
                .transpose()?;
            let preferred_language = params.get("preferred_language");
            let race = params.choice("race", RACES)?;
            let since = params.since(tz)?;
            let show_inactive = params.flag("show_inactive")?;
            dataset
                .patients
                .iter()
                .filter(|p| {
                    (show_inactive || p.patient_status == "A")
                        && date_of_birth
                            .as_deref()
                            .is_none_or(|d| p.date_of_birth.as_deref() == Some(d))
                        && doctor.is_none_or(|d| p.doctor == d)
                        && email.as_deref().is_none_or(|e| p.email.to_lowercase() == e)
                        && ethnicity.is_none_or(|e| p.ethnicity == e)
                        && first_name
                            .as_deref()
                            .is_none_or(|n| p.first_name.to_lowercase().contains(n))
                        && last_name
                            .as_deref()
                            .is_none_or(|n| p.last_name.to_lowercase().contains(n))
                        && gender.is_none_or(|g| p.gender == g)
                        && offices
                            .as_ref()
                            .is_none_or(|ids| p.offices.iter().any(|o| ids.contains(o)))
                        && preferred_language.is_none_or(|l| p.preferred_language == l)
                        && race.is_none_or(|r| p.race == r)
                        && since.as_deref().is_none_or(|s| p.updated_at.as_str() >= s)
                })
                .map(Item::Patient)
                .collect()
        }
        Collection::Appointments => {
            require_window(params)?;
            let date = params.date("date")?;
            let range = params.date_range(today)?;
            let doctor = params.int("doctor")?;
            let office = params.int("office")?;
            let patient = params.int("patient")?;
            let since = params.since(tz)?;
            let status = params.get("status");
            let show_archived = params.flag("show_archived")?;
            dataset
                .appointments
                .iter()
                .filter(|a| {
                    (show_archived || !a.deleted_flag)
                        && in_dates(&a.scheduled_time, date, range)
                        && doctor.is_none_or(|d| a.doctor == d)
                        && office.is_none_or(|o| a.office == o)
                        && patient.is_none_or(|p| a.patient == Some(p))
                        && since.as_deref().is_none_or(|s| a.updated_at.as_str() >= s)
                        && status.is_none_or(|s| a.status == s)
                })
                .map(Item::Appointment)
                .collect()
        }
        Collection::ClinicalNotes => {
            require_window(params)?;
            let date = params.date("date")?;
            let range = params.date_range(today)?;
            let office = params.int("office")?;
            let patient = params.int("patient")?;
            let since = params.since(tz)?;
            let show_archived = params.flag("show_archived")?;
            let appointments: HashMap<i64, &Appointment> = dataset
                .appointments
                .iter()
                .filter_map(|a| a.appointment_id_number().ok().map(|id| (id, a)))
                .collect();
            dataset
                .clinical_notes
                .iter()
                .filter(|n| {
                    let appointment = appointments.get(&n.appointment);
                    (show_archived || !n.archived)
                        && (date.is_none() && range.is_none()
                            || appointment.is_some_and(|a| in_dates(&a.scheduled_time, date, range)))
                        && office.is_none_or(|o| appointment.is_some_and(|a| a.office == o))
                        && patient.is_none_or(|p| n.patient == p)
                        && since.as_deref().is_none_or(|s| n.updated_at.as_str() >= s)
                })
                .map(Item::ClinicalNote)
                .collect()
        }
        Collection::Documents => {
            let doctor = params.int("doctor")?;
            let patient = params.int("patient")?;
            let since = params.since(tz)?;
            dataset
                .documents
                .iter()
                .filter(|d| {
                    doctor.is_none_or(|x| d.doctor == x)
                        && patient.is_none_or(|x| d.patient == x)
                        && since.as_deref().is_none_or(|s| d.updated_at.as_str() >= s)
                })
                .map(Item::Document)
                .collect()
        }
    };
    Ok(items)
}

fn detail(shared: &Shared, collection: Collection, id: &str, uri: &Uri) -> Result<Response, ApiError> {
    let params = Params::parse(uri);
    let verbose = params.verbose();
    let dataset = shared.dataset();
    let numeric = id.parse::<i64>().ok();
    let item = match collection {
        Collection::Patients => dataset
            .patients
            .iter()
            .find(|x| Some(x.id) == numeric)
            .map(Item::Patient),
        Collection::Doctors => dataset.doctors.iter().find(|x| Some(x.id) == numeric).map(Item::Doctor),
        Collection::Offices => dataset.offices.iter().find(|x| Some(x.id) == numeric).map(Item::Office),
        Collection::Appointments => dataset.appointments.iter().find(|x| x.id == id).map(Item::Appointment),
        Collection::ClinicalNotes => dataset
            .clinical_notes
            .iter()
            .find(|x| Some(x.id) == numeric)
            .map(Item::ClinicalNote),
        Collection::Documents => dataset
            .documents
            .iter()
            .find(|x| Some(x.id) == numeric)
            .map(Item::Document),
    };
    let item = item.ok_or(ApiError::NotFound)?;
    Ok(Json(item.to_json(collection, verbose)).into_response())
}

/// The files behind `document` and `clinical_note.pdf` URLs: a tiny PDF for every id the
/// dataset knows. Like the vendor's CDN links they need no bearer token.
pub(crate) async fn media(State(shared): State<Arc<Shared>>, Path((kind, file)): Path<(String, String)>) -> Response {
    let dataset = shared.dataset();
    let Some(id) = file.strip_suffix(".pdf") else {
        return ApiError::NotFound.into_response();
    };
    let known = match kind.as_str() {
        "documents" => dataset.documents.iter().any(|d| d.id.to_string() == id),
        "clinical_notes" => dataset.appointments.iter().any(|a| a.id == id),
        _ => false,
    };
    if !known {
        return ApiError::NotFound.into_response();
    }
    let mut response = tiny_pdf(&format!("{kind} {id}")).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    response
}

/// A minimal one-page PDF showing `text`.
fn tiny_pdf(text: &str) -> Vec<u8> {
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '_')
        .collect();
    let stream = format!("BT /F1 18 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = pdf.len();
    pdf.push_str(&format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1));
    for offset in offsets {
        pdf.push_str(&format!("{offset:010} 00000 n \n"));
    }
    pdf.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_url_replaces_or_appends_page() {
        let uri: Uri = "/api/patients?page_size=2&page=3&doctor=7".parse().unwrap();
        let params = Params::parse(&uri);
        assert_eq!(
            page_url("http://h:1", &uri, &params, 4),
            "http://h:1/api/patients?page_size=2&page=4&doctor=7"
        );
        assert_eq!(
            page_url("http://h:1", &uri, &params, 1),
            "http://h:1/api/patients?page_size=2&doctor=7"
        );
        let uri: Uri = "/api/patients/".parse().unwrap();
        let params = Params::parse(&uri);
        assert_eq!(
            page_url("http://h:1", &uri, &params, 2),
            "http://h:1/api/patients/?page=2"
        );
    }

    #[test]
    fn since_accepts_dates_timestamps_and_zoned_times() {
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let t = |s: &str| parse_timestamp(s, tz).map(fmt_ts);
        assert_eq!(t("2025-01-02").as_deref(), Some("2025-01-02T00:00:00"));
        assert_eq!(t("2025-01-02T03:04:05").as_deref(), Some("2025-01-02T03:04:05"));
        assert_eq!(t("2025-01-02T15:00:00Z").as_deref(), Some("2025-01-02T10:00:00"));
        assert_eq!(t("yesterday"), None);
    }

    #[test]
    fn date_ranges_longer_than_190_days_need_to_be_past() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        let range = |raw: &str| {
            let uri: Uri = format!("/api/appointments?date_range={raw}").parse().unwrap();
            Params::parse(&uri).date_range(today)
        };
        assert!(range("2024-12-01/2025-07-01").is_err());
        assert!(range("2025-01-01/2025-07-01").is_ok());
        assert!(range("2024-01-01/2024-12-31").is_ok());
        assert!(range("2025-05-01/2025-07-01").is_ok());
        assert!(range("2025-07-01/2025-05-01").is_err());
        assert!(range("2025-07-01").is_err());
    }
}
