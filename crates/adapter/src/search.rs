//! A parsed FHIR search, as the gateway hands it to adapters, and the pages they answer with.
//!
//! The gateway parses and validates the query string against the FHIR search parameter
//! definitions; adapters receive typed values and push down what their vendor can filter on.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::{FhirId, Resource, ResourceType};

/// One search on one resource type: every parameter must match (AND).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    pub resource_type: Option<ResourceType>,
    pub params: Vec<SearchParam>,
}

/// One query parameter: any of its values may match (comma OR).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParam {
    pub name: String,
    pub modifier: Option<Modifier>,
    pub values: Vec<SearchValue>,
}

/// The search modifiers the gateway understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    Exact,
    Contains,
    Missing,
    Not,
}

/// A typed parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    String(String),
    Token(TokenValue),
    Date(DateValue),
    Reference(ReferenceValue),
    /// The value of a `:missing` parameter.
    Missing(bool),
}

/// `[system]|[code]`, `code`, `system|`, or `|code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    /// `None`: any system; `Some("")`: no system (`|code`).
    pub system: Option<String>,
    /// `None`: any code in the system (`system|`).
    pub code: Option<String>,
}

/// The FHIR search prefixes for ordered values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

impl Prefix {
    /// Splits a known two-letter prefix off a value (`ge2024-01-01` → `Ge`, `2024-01-01`).
    pub fn split(value: &str) -> (Prefix, &str) {
        let table = [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("gt", Prefix::Gt),
            ("lt", Prefix::Lt),
            ("ge", Prefix::Ge),
            ("le", Prefix::Le),
            ("sa", Prefix::Sa),
            ("eb", Prefix::Eb),
            ("ap", Prefix::Ap),
        ];
        for (p, prefix) in table {
            if let Some(rest) = value.strip_prefix(p) {
                return (prefix, rest);
            }
        }
        (Prefix::Eq, value)
    }
}

/// A date search value: a prefix and the half-open instant range its precision implies.
#[derive(Debug, Clone, PartialEq)]
pub struct DateValue {
    pub prefix: Prefix,
    pub range: DateRange,
}

/// A half-open range of instants `[start, end)`: the time a FHIR date, dateTime or instant covers
/// at its precision (`2024` covers the whole year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A date that is not a valid FHIR date, dateTime or instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a FHIR date, dateTime or instant")]
pub struct BadDate;

impl DateRange {
    /// Parses a FHIR `date`/`dateTime`/`instant` (`2024`, `2024-03`, `2024-03-05`,
    /// `2024-03-05T10:00`, `2024-03-05T10:00:00+01:00`, `...Z`). Values without a zone are read in `tz`.
    pub fn parse(value: &str, tz: Tz) -> Result<Self, BadDate> {
        let local = |naive: NaiveDateTime| -> Result<DateTime<Utc>, BadDate> {
            tz.from_local_datetime(&naive)
                .earliest()
                // A local time in a gap (or past chrono's range): the instant an hour later.
                .or_else(|| {
                    naive
                        .checked_add_signed(Duration::hours(1))
                        .and_then(|later| tz.from_local_datetime(&later).earliest())
                })
                .map(|d| d.with_timezone(&Utc))
                .ok_or(BadDate)
        };
        let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
        match value.len() {
            4 => {
                let year: i32 = value.parse().map_err(|_| BadDate)?;
                let start = NaiveDate::from_ymd_opt(year, 1, 1).ok_or(BadDate)?;
                let end = NaiveDate::from_ymd_opt(year + 1, 1, 1).ok_or(BadDate)?;
                Ok(Self {
                    start: local(midnight(start))?,
                    end: local(midnight(end))?,
                })
            }
            7 => {
                let start = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").map_err(|_| BadDate)?;
                let end = start.checked_add_months(chrono::Months::new(1)).ok_or(BadDate)?;
                if value.as_bytes()[4] != b'-' {
                    return Err(BadDate);
                }
                Ok(Self {
                    start: local(midnight(start))?,
                    end: local(midnight(end))?,
                })
            }
            10 => {
                let start = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| BadDate)?;
                if start.year() < 1 {
                    return Err(BadDate);
                }
                let end = start.succ_opt().ok_or(BadDate)?;
                Ok(Self {
                    start: local(midnight(start))?,
                    end: local(midnight(end))?,
                })
            }
            _ => {
                if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
                    let start = dt.with_timezone(&Utc);
                    let precise = value.contains('.');
                    let step = if precise {
                        Duration::milliseconds(1)
                    } else {
                        Duration::seconds(1)
                    };
                    return Ok(Self {
                        start,
                        end: start + step,
                    });
                }
                // dateTime with minutes only, with or without a zone; or without a zone at all.
                let (body, zone) = split_zone(value);
                let (naive, step) = if let Ok(n) = NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M") {
                    (n, Duration::minutes(1))
                } else if let Ok(n) = NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S") {
                    (n, Duration::seconds(1))
                } else if let Ok(n) = NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f") {
                    (n, Duration::milliseconds(1))
                } else {
                    return Err(BadDate);
                };
                // FHIR years have four digits; chrono's signed `%Y` reads more, up to where adding a
                // step would overflow.
                if !(1..=9999).contains(&naive.year()) {
                    return Err(BadDate);
                }
                let start = match zone {
                    None => local(naive)?,
                    Some(z) => {
                        let with_zone = format!("{}:00{z}", naive.format("%Y-%m-%dT%H:%M"));
                        DateTime::parse_from_rfc3339(&with_zone)
                            .map_err(|_| BadDate)?
                            .with_timezone(&Utc)
                    }
                };
                Ok(Self {
                    start,
                    end: start.checked_add_signed(step).ok_or(BadDate)?,
                })
            }
        }
    }

    /// True when a resource value covering `self` satisfies `prefix search` (FHIR search rules).
    pub fn matches(&self, prefix: Prefix, search: &DateRange) -> bool {
        match prefix {
            Prefix::Eq => self.start >= search.start && self.end <= search.end,
            Prefix::Ne => !(self.start >= search.start && self.end <= search.end),
            Prefix::Gt => self.end > search.end,
            Prefix::Lt => self.start < search.start,
            Prefix::Ge => self.end > search.start,
            Prefix::Le => self.start < search.end,
            Prefix::Sa => self.start >= search.end,
            Prefix::Eb => self.end <= search.start,
            Prefix::Ap => {
                let width = (search.end - search.start).max(Duration::days(1));
                let slack = width / 10 + Duration::days(1);
                self.start < search.end + slack && self.end > search.start - slack
            }
        }
    }
}

fn split_zone(value: &str) -> (&str, Option<&str>) {
    if let Some(body) = value.strip_suffix('Z') {
        return (body, Some("Z"));
    }
    // The zone is ASCII: a split inside a multi-byte character is no zone (and would panic).
    if value.len() > 6 && value.is_char_boundary(value.len() - 6) {
        let (body, zone) = value.split_at(value.len() - 6);
        let z = zone.as_bytes();
        if (z[0] == b'+' || z[0] == b'-') && z[3] == b':' && body.contains('T') {
            return (body, Some(zone));
        }
    }
    (value, None)
}

/// A reference search value (`Patient/drchrono-12`, or a bare id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceValue {
    pub resource_type: Option<ResourceType>,
    pub id: String,
}

impl ReferenceValue {
    /// The native id when the reference points at `source` (and at `resource_type` if typed).
    pub fn native_for(&self, source: &str, resource_type: ResourceType) -> Option<String> {
        if self.resource_type.is_some_and(|t| t != resource_type) {
            return None;
        }
        let id = FhirId::parse(&self.id).ok()?;
        (id.source() == source).then(|| id.native().to_owned())
    }
}

impl SearchRequest {
    /// The parameters with this name (each is ANDed).
    pub fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SearchParam> + 'a {
        self.params.iter().filter(move |p| p.name == name)
    }

    /// The single value of a parameter given once, with one value and no modifier (the only shape
    /// most vendors can filter on).
    pub fn single<'a>(&'a self, name: &'a str) -> Option<&'a SearchValue> {
        let mut it = self.params(name);
        let p = it.next()?;
        if it.next().is_some() || p.values.len() != 1 || p.modifier.is_some() {
            return None;
        }
        p.values.first()
    }

    /// The native ids of `source` referenced by a reference parameter, when the parameter is given
    /// once. `Some(vec![])` means the parameter is given but names nothing of `source` (so the source
    /// can have no match); `None` means the parameter does not constrain this source.
    pub fn reference_natives(&self, name: &str, source: &str, target: ResourceType) -> Option<Vec<String>> {
        let mut it = self.params(name);
        let p = it.next()?;
        if it.next().is_some() || p.modifier.is_some() {
            return None;
        }
        Some(
            p.values
                .iter()
                .filter_map(|v| match v {
                    SearchValue::Reference(r) => r.native_for(source, target),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The native ids of `source` named by the first `_id` parameter without a modifier (or with
    /// `:exact`), in the order given; `None` when there is no such `_id`. Values that are not ids of
    /// `source` name nothing.
    pub fn id_natives(&self, source: &str) -> Option<Vec<String>> {
        let param = self
            .params("_id")
            .find(|p| p.modifier.is_none() || p.modifier == Some(Modifier::Exact))?;
        Some(
            param
                .values
                .iter()
                .filter_map(|value| {
                    let id = match value {
                        SearchValue::String(s) => s.as_str(),
                        SearchValue::Token(TokenValue { code: Some(c), .. }) => c.as_str(),
                        _ => return None,
                    };
                    let id = FhirId::parse(id).ok()?;
                    (id.source() == source).then(|| id.native().to_owned())
                })
                .collect(),
        )
    }

    /// The codes of the first `identifier` parameter without a modifier whose values are all
    /// `system|code` tokens: what a search by the identifier under `system` names. `None` when there
    /// is none (a value of another system, or of none, may match other identifiers).
    pub fn identifier_codes(&self, system: &str) -> Option<Vec<String>> {
        self.params("identifier").find_map(|p| {
            if p.modifier.is_some() {
                return None;
            }
            p.values
                .iter()
                .map(|value| match value {
                    SearchValue::Token(TokenValue {
                        system: Some(s),
                        code: Some(code),
                    }) if s == system => Some(code.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    /// The codes of a token parameter given once without a modifier (a status, say), when every
    /// value is a code without a system, with `system`, or a plain string. `None` when the
    /// parameter is absent, repeated, modified, or has any other value: it cannot be pushed down.
    pub fn token_codes<'a>(&'a self, name: &str, system: &str) -> Option<Vec<&'a str>> {
        let mut params = self.params.iter().filter(|p| p.name == name);
        let param = params.next()?;
        if params.next().is_some() || param.modifier.is_some() {
            return None;
        }
        param
            .values
            .iter()
            .map(|value| match value {
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some(code),
                }) => Some(code.as_str()),
                SearchValue::Token(TokenValue {
                    system: Some(s),
                    code: Some(code),
                }) if s == system => Some(code.as_str()),
                SearchValue::String(code) => Some(code.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A `[start, end)` window that contains the start of every value matching all the date
    /// constraints on `name` (`eq ge gt le lt sa eb`): what a vendor date filter can safely be
    /// narrowed to. `None` when the parameter is absent or cannot be bounded (OR values, `ne`, `ap`).
    pub fn date_bounds(&self, name: &str) -> Option<DateRange> {
        let mut lo: Option<DateTime<Utc>> = None;
        let mut hi: Option<DateTime<Utc>> = None;
        let mut any = false;
        for p in self.params(name) {
            if p.modifier.is_some() || p.values.len() != 1 {
                continue;
            }
            let Some(SearchValue::Date(d)) = p.values.first() else {
                continue;
            };
            let (l, h) = match d.prefix {
                Prefix::Eq => (Some(d.range.start), Some(d.range.end)),
                Prefix::Ge | Prefix::Gt => (Some(d.range.start), None),
                Prefix::Sa => (Some(d.range.end), None),
                Prefix::Le => (None, Some(d.range.end)),
                Prefix::Lt | Prefix::Eb => (None, Some(d.range.start)),
                Prefix::Ne | Prefix::Ap => continue,
            };
            any = true;
            if let Some(l) = l {
                lo = Some(lo.map_or(l, |x| x.max(l)));
            }
            if let Some(h) = h {
                hi = Some(hi.map_or(h, |x| x.min(h)));
            }
        }
        if !any {
            return None;
        }
        let far_past = DateTime::<Utc>::MIN_UTC;
        let far_future = DateTime::<Utc>::MAX_UTC;
        Some(DateRange {
            start: lo.unwrap_or(far_past),
            end: hi.unwrap_or(far_future),
        })
    }
}

/// True when `t` is an instant a vendor record can carry: from 1 January `earliest_year` to
/// 1 January 2400 (UTC). The open ends of a one-sided [`SearchRequest::date_bounds`]
/// (`DateTime::MIN_UTC`, `DateTime::MAX_UTC`) are not, so they are never sent to a vendor.
pub fn plausible_instant(t: DateTime<Utc>, earliest_year: i32) -> bool {
    let lo = NaiveDate::from_ymd_opt(earliest_year, 1, 1).map(|d| d.and_time(NaiveTime::MIN).and_utc());
    let hi = NaiveDate::from_ymd_opt(2400, 1, 1).map(|d| d.and_time(NaiveTime::MIN).and_utc());
    matches!((lo, hi), (Some(lo), Some(hi)) if lo <= t && t <= hi)
}

/// An opaque vendor continuation (a DrChrono `next` URL, a Zoom `next_page_token`, an offset).
/// The gateway signs it into its paging links and hands it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation(pub String);

/// What page of a search to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The continuation of the previous page, `None` for the first page.
    pub cursor: Option<Continuation>,
    /// How many resources the gateway would like (a hint; vendors have their own maxima).
    pub size: u32,
}

/// One vendor page of a search.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub resources: Vec<Resource>,
    /// Where the next vendor page starts, `None` at the end.
    pub next: Option<Continuation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn date_precisions_cover_their_span() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let y = DateRange::parse("2024", Tz::UTC).unwrap();
        assert_eq!(
            (y.start, y.end),
            (utc("2024-01-01T00:00:00Z"), utc("2025-01-01T00:00:00Z"))
        );
        let m = DateRange::parse("2024-02", Tz::UTC).unwrap();
        assert_eq!(m.end, utc("2024-03-01T00:00:00Z"));
        let d = DateRange::parse("2024-07-04", ny).unwrap();
        assert_eq!(
            (d.start, d.end),
            (utc("2024-07-04T04:00:00Z"), utc("2024-07-05T04:00:00Z"))
        );
        let s = DateRange::parse("2024-07-04T10:30:00+02:00", ny).unwrap();
        assert_eq!(
            (s.start, s.end),
            (utc("2024-07-04T08:30:00Z"), utc("2024-07-04T08:30:01Z"))
        );
        let local = DateRange::parse("2024-07-04T10:30", ny).unwrap();
        assert_eq!(local.start, utc("2024-07-04T14:30:00Z"));
        let z = DateRange::parse("2024-07-04T10:30Z", ny).unwrap();
        assert_eq!(z.start, utc("2024-07-04T10:30:00Z"));
        for bad in [
            "",
            "20240",
            "2024-13",
            "2024-02-30",
            "2024/01/01",
            "yesterday",
            "2024-01-01T25:00",
        ] {
            assert!(DateRange::parse(bad, Tz::UTC).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_follow_fhir_semantics() {
        let day = |s| DateRange::parse(s, Tz::UTC).unwrap();
        let v = day("2024-05-10");
        assert!(v.matches(Prefix::Eq, &day("2024-05-10")));
        assert!(v.matches(Prefix::Eq, &day("2024-05")));
        assert!(!v.matches(Prefix::Eq, &day("2024-05-11")));
        assert!(v.matches(Prefix::Ne, &day("2024-05-11")));
        assert!(v.matches(Prefix::Ge, &day("2024-05-10")));
        assert!(!v.matches(Prefix::Gt, &day("2024-05-10")));
        assert!(v.matches(Prefix::Gt, &day("2024-05-09")));
        assert!(v.matches(Prefix::Le, &day("2024-05-10")));
        assert!(!v.matches(Prefix::Lt, &day("2024-05-10")));
        assert!(v.matches(Prefix::Lt, &day("2024-05-11")));
        assert!(v.matches(Prefix::Sa, &day("2024-05-09")));
        assert!(v.matches(Prefix::Eb, &day("2024-05-11")));
        assert!(v.matches(Prefix::Ap, &day("2024-05-11")));
        assert!(!v.matches(Prefix::Ap, &day("2024-08-11")));
        assert_eq!(Prefix::split("ge2024"), (Prefix::Ge, "2024"));
        assert_eq!(Prefix::split("2024"), (Prefix::Eq, "2024"));
    }

    #[test]
    fn date_bounds_intersect_and_references_resolve() {
        let d = |prefix, s| SearchParam {
            name: "date".into(),
            modifier: None,
            values: vec![SearchValue::Date(DateValue {
                prefix,
                range: DateRange::parse(s, Tz::UTC).unwrap(),
            })],
        };
        let req = SearchRequest {
            resource_type: Some(ResourceType::Appointment),
            params: vec![
                d(Prefix::Ge, "2024-01-01"),
                d(Prefix::Lt, "2024-02-01"),
                SearchParam {
                    name: "patient".into(),
                    modifier: None,
                    values: vec![
                        SearchValue::Reference(ReferenceValue {
                            resource_type: Some(ResourceType::Patient),
                            id: "drchrono-7".into(),
                        }),
                        SearchValue::Reference(ReferenceValue {
                            resource_type: None,
                            id: "zoom-9".into(),
                        }),
                    ],
                },
            ],
        };
        let b = req.date_bounds("date").unwrap();
        assert_eq!(
            (b.start, b.end),
            (utc("2024-01-01T00:00:00Z"), utc("2024-02-01T00:00:00Z"))
        );
        assert_eq!(
            req.reference_natives("patient", "drchrono", ResourceType::Patient),
            Some(vec!["7".into()])
        );
        assert_eq!(
            req.reference_natives("patient", "noa", ResourceType::Patient),
            Some(vec![])
        );
        assert_eq!(
            req.reference_natives("practitioner", "drchrono", ResourceType::Practitioner),
            None
        );
    }

    fn param(name: &str, modifier: Option<Modifier>, values: Vec<SearchValue>) -> SearchParam {
        SearchParam {
            name: name.into(),
            modifier,
            values,
        }
    }

    fn token(system: Option<&str>, code: Option<&str>) -> SearchValue {
        SearchValue::Token(TokenValue {
            system: system.map(Into::into),
            code: code.map(Into::into),
        })
    }

    fn request(params: Vec<SearchParam>) -> SearchRequest {
        SearchRequest {
            resource_type: Some(ResourceType::Patient),
            params,
        }
    }

    #[test]
    fn ids_name_the_natives_of_one_source() {
        let req = request(vec![
            param("_id", Some(Modifier::Not), vec![SearchValue::String("ehr-9".into())]),
            param(
                "_id",
                Some(Modifier::Exact),
                vec![
                    SearchValue::String("ehr-2".into()),
                    token(None, Some("ehr-x.MFPTC")),
                    SearchValue::String("other-3".into()),
                    SearchValue::String("not an id".into()),
                    token(Some("s"), None),
                    SearchValue::String("ehr-2".into()),
                ],
            ),
        ]);
        assert_eq!(req.id_natives("ehr"), Some(vec!["2".into(), "a_1".into(), "2".into()]));
        assert_eq!(req.id_natives("none"), Some(vec![]));
        assert_eq!(request(vec![]).id_natives("ehr"), None);
    }

    #[test]
    fn identifiers_name_codes_only_under_one_system() {
        let req = request(vec![
            param("identifier", Some(Modifier::Not), vec![token(Some("sys"), Some("0"))]),
            param(
                "identifier",
                None,
                vec![token(Some("sys"), Some("1")), token(None, Some("2"))],
            ),
            param(
                "identifier",
                None,
                vec![token(Some("sys"), Some("3")), token(Some("sys"), Some("4"))],
            ),
        ]);
        assert_eq!(req.identifier_codes("sys"), Some(vec!["3".into(), "4".into()]));
        assert_eq!(req.identifier_codes("other"), None);
    }

    #[test]
    fn token_codes_are_read_only_when_they_can_be_pushed_down() {
        let codes = |params| request(params).token_codes("status", "sys").map(|c| c.join(","));
        assert_eq!(codes(vec![]), None);
        assert_eq!(
            codes(vec![param(
                "status",
                None,
                vec![
                    token(None, Some("a")),
                    token(Some("sys"), Some("b")),
                    SearchValue::String("c".into())
                ]
            )]),
            Some("a,b,c".into())
        );
        assert_eq!(codes(vec![param("status", None, vec![])]), Some(String::new()));
        for cannot in [
            vec![param("status", None, vec![token(Some("other"), Some("a"))])],
            vec![param("status", None, vec![token(Some("sys"), None)])],
            vec![param("status", Some(Modifier::Not), vec![token(None, Some("a"))])],
            vec![
                param("status", None, vec![token(None, Some("a"))]),
                param("status", None, vec![token(None, Some("b"))]),
            ],
        ] {
            assert_eq!(codes(cannot), None);
        }
    }

    #[test]
    fn only_instants_a_record_can_carry_are_plausible() {
        assert!(plausible_instant(utc("1900-01-01T00:00:00Z"), 1900));
        assert!(!plausible_instant(utc("1899-12-31T23:59:59Z"), 1900));
        assert!(plausible_instant(utc("1850-06-01T00:00:00Z"), 1800));
        assert!(plausible_instant(utc("2400-01-01T00:00:00Z"), 1900));
        assert!(!plausible_instant(utc("2400-01-01T00:00:01Z"), 1900));
        assert!(!plausible_instant(DateTime::<Utc>::MIN_UTC, 1800));
        assert!(!plausible_instant(DateTime::<Utc>::MAX_UTC, 1800));
    }
}
