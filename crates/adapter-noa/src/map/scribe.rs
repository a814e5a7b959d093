//! `$start-scribe` on an EHR Appointment: the FHIR side of starting a Noa session, pure.
//!
//! - [`scribe_input`] reads the `Parameters` the caller sent (`language`, `visitType`,
//!   `speciality`, `template` with `title`/`instruction` parts, in order);
//! - [`scribe_target`] reads what Noa needs from the Appointment as the gateway read it (its
//!   patient, practitioner and locations, all of the configured EHR source);
//! - [`practitioner_name`] and [`location_step`] read the doctor's name and whether a Location
//!   stands for itself (an office) or for its `partOf` (an exam room → its office);
//! - [`scribe_outcome`] answers Noa's session as `Parameters`.
//!
//! Errors are the caller's: [`AdapterError::InvalidRequest`] for a malformed input,
//! [`AdapterError::Unprocessable`] naming the Appointment element that makes a session impossible.

use adapter::fhir::resources::{Location, Parameters, ParametersParameter, ParametersParameterValue, Practitioner};
use adapter::fhir::types::Reference;
use adapter::{AdapterError, FhirId, Resource, ResourceType};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::codes::VisitType;
use super::{fhir_code, ids, present, time};
use crate::client::unmappable;
use crate::config::NOA_LANGUAGES;
use crate::wire;

/// What the caller asked for besides the appointment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScribeInput {
    /// One of Noa's languages.
    pub language: Option<String>,
    pub visit_type: Option<VisitType>,
    pub speciality: Option<String>,
    /// The summary template, sections in the order given; `None` for the consumer's default.
    pub template: Option<wire::Template>,
}

/// Reads `$start-scribe`'s input. Every parameter is optional; an unknown one, a repeated single
/// one, a language or visit type Noa does not know, or a template section without a title (or
/// with a title given twice: Noa's template is an object keyed by title) is refused.
pub fn scribe_input(input: Option<Resource>) -> Result<ScribeInput, AdapterError> {
    let parameters = match input {
        Some(Resource::Parameters(p)) => p.parameter,
        Some(_) => return Err(invalid("$start-scribe takes a Parameters resource")),
        None => Vec::new(),
    };
    let mut out = ScribeInput::default();
    let mut sections: Vec<wire::TemplateSection> = Vec::new();
    for p in parameters {
        let name = p.name.value.as_deref().unwrap_or_default();
        match name {
            "language" => {
                let language = text_value(&p).ok_or_else(|| invalid("language must be a code"))?;
                if !NOA_LANGUAGES.contains(&language.as_str()) {
                    return Err(invalid(&format!(
                        "language must be one of Noa's languages: {}",
                        NOA_LANGUAGES.join(", ")
                    )));
                }
                if out.language.replace(language).is_some() {
                    return Err(invalid("language may be given once"));
                }
            }
            "visitType" => {
                let visit = text_value(&p)
                    .and_then(|v| VisitType::from_wire(&v))
                    .ok_or_else(|| invalid("visitType must be FirstVisit or FollowUpVisit"))?;
                if out.visit_type.replace(visit).is_some() {
                    return Err(invalid("visitType may be given once"));
                }
            }
            "speciality" => {
                let speciality = text_value(&p).ok_or_else(|| invalid("speciality must be a string"))?;
                if out.speciality.replace(speciality).is_some() {
                    return Err(invalid("speciality may be given once"));
                }
            }
            "template" => {
                if p.value.is_some() || p.resource.is_some() {
                    return Err(invalid("template has the parts title and instruction, no value"));
                }
                let mut title = None;
                let mut instruction = None;
                for part in &p.part {
                    let slot = match part.name.value.as_deref() {
                        Some("title") => &mut title,
                        Some("instruction") => &mut instruction,
                        _ => return Err(invalid("a template section has only the parts title and instruction")),
                    };
                    let text = text_value(part).ok_or_else(|| invalid("title and instruction must be strings"))?;
                    if slot.replace(text).is_some() {
                        return Err(invalid("a template section has one title and one instruction"));
                    }
                }
                let title = title.ok_or_else(|| invalid("every template section needs a title"))?;
                if sections.iter().any(|s| s.title == title) {
                    return Err(invalid("template section titles must be unique"));
                }
                sections.push(wire::TemplateSection {
                    title,
                    instruction: instruction.unwrap_or_default(),
                });
            }
            _ => {
                return Err(invalid(
                    "$start-scribe takes only language, visitType, speciality and template",
                ));
            }
        }
    }
    if !sections.is_empty() {
        out.template = Some(wire::Template { sections });
    }
    Ok(out)
}

/// A parameter's (or part's) text: `valueCode`, `valueString` or `valueMarkdown`, trimmed;
/// `None` when absent, blank or of another type.
fn text_value(p: &ParametersParameter) -> Option<String> {
    let text = match &p.value {
        Some(ParametersParameterValue::Code(c)) => c.value.as_deref(),
        Some(ParametersParameterValue::String(s)) => s.value.as_deref(),
        Some(ParametersParameterValue::Markdown(m)) => m.value.as_deref(),
        _ => None,
    }?;
    present(text).map(str::to_owned)
}

/// What the Appointment gives a session: native ids of the configured EHR source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScribeTarget {
    /// The appointment's native id: Noa's `episodeId`.
    pub appointment: String,
    /// The patient's native id (the session's metadata).
    pub patient: String,
    /// The practitioner's gateway id (`drchrono-3`); its native id is Noa's `doctorId`.
    pub practitioner: FhirId,
    /// The practitioner reference's `display`, if any.
    pub practitioner_display: Option<String>,
    /// The Locations' gateway ids, in the appointment's order, with their `display`s.
    pub locations: Vec<(FhirId, Option<String>)>,
}

/// Reads `target` (the Appointment `target_id`, as the gateway read it) for `$start-scribe`.
///
/// The Appointment must belong to `ehr_source` (its ids are the ones Noa's episode, doctor and
/// facility use), must not be cancelled, a no-show or entered in error, and must name a patient, a
/// practitioner and a location of that source among its participants (the first of each kind is
/// used; all locations are kept, the adapter uses the first it can read).
pub fn scribe_target(target_id: &FhirId, target: &Resource, ehr_source: &str) -> Result<ScribeTarget, AdapterError> {
    let Resource::Appointment(appointment) = target else {
        return Err(invalid("$start-scribe runs on an Appointment"));
    };
    if target_id.source() != ehr_source {
        return Err(unprocessable(
            "Appointment",
            format!("Noa sessions are started for Appointments of {ehr_source}"),
        ));
    }
    let status = appointment.status.value.as_deref().unwrap_or_default();
    if matches!(status, "cancelled" | "noshow" | "entered-in-error") {
        return Err(unprocessable(
            "Appointment.status",
            format!("no session can be started for an appointment that is {status}"),
        ));
    }
    let mut patient = None;
    let mut practitioner = None;
    let mut locations: Vec<(FhirId, Option<String>)> = Vec::new();
    for participant in &appointment.participant {
        let Some(actor) = participant.actor.as_deref() else {
            continue;
        };
        let Some((kind, id)) = ehr_reference(actor, ehr_source) else {
            continue;
        };
        let display = actor
            .display
            .as_ref()
            .and_then(|d| d.value.as_deref())
            .and_then(present)
            .map(str::to_owned);
        match kind {
            ResourceType::Patient if patient.is_none() => patient = Some(id.native().to_owned()),
            ResourceType::Practitioner if practitioner.is_none() => practitioner = Some((id, display)),
            ResourceType::Location if !locations.iter().any(|(l, _)| *l == id) => locations.push((id, display)),
            _ => {}
        }
    }
    let element = "Appointment.participant";
    let patient =
        patient.ok_or_else(|| unprocessable(element, format!("the appointment names no {ehr_source} Patient")))?;
    let (practitioner, practitioner_display) = practitioner
        .ok_or_else(|| unprocessable(element, format!("the appointment names no {ehr_source} Practitioner")))?;
    if locations.is_empty() {
        return Err(unprocessable(
            element,
            format!("the appointment names no {ehr_source} Location (Noa needs the facility)"),
        ));
    }
    Ok(ScribeTarget {
        appointment: target_id.native().to_owned(),
        patient,
        practitioner,
        practitioner_display,
        locations,
    })
}

/// A literal reference `{Type}/{source}-{native}` of `ehr_source`, as its type and gateway id.
fn ehr_reference(r: &Reference, ehr_source: &str) -> Option<(ResourceType, FhirId)> {
    let literal = r.reference.as_ref()?.value.as_deref()?;
    let mut parts = literal.rsplit('/');
    let id = parts.next()?;
    let type_name = parts.next()?;
    let resource_type: ResourceType = type_name.parse().ok()?;
    let id = FhirId::parse(id).ok()?;
    (id.source() == ehr_source).then_some((resource_type, id))
}

/// A practitioner's name for Noa: the official (else the first) name's `text`, else its prefix,
/// given names, family name and suffix joined by spaces.
pub fn practitioner_name(p: &Practitioner) -> Option<String> {
    let name = p
        .name
        .iter()
        .find(|n| n.r#use.as_ref().and_then(|u| u.value.as_deref()) == Some("official"))
        .or_else(|| p.name.first())?;
    if let Some(text) = name.text.as_ref().and_then(|t| t.value.as_deref()).and_then(present) {
        return Some(text.to_owned());
    }
    let words: Vec<&str> = name
        .prefix
        .iter()
        .chain(&name.given)
        .chain(name.family.iter())
        .chain(&name.suffix)
        .filter_map(|s| s.value.as_deref().and_then(present))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// What a Location is for Noa.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationStep {
    /// The Location is the facility itself (an office), with its name.
    Facility { name: Option<String> },
    /// The Location is part of another one of the EHR (an exam room of an office): the facility
    /// is that one (its gateway id and the reference's display).
    PartOf { id: FhirId, display: Option<String> },
}

/// Whether `location` stands for itself or for the Location it is part of. A `partOf` outside
/// `ehr_source` is ignored (Noa's facility ids are the EHR's).
pub fn location_step(location: &Location, ehr_source: &str) -> LocationStep {
    if let Some(parent) = location.part_of.as_deref()
        && let Some((ResourceType::Location, id)) = ehr_reference(parent, ehr_source)
    {
        let display = parent
            .display
            .as_ref()
            .and_then(|d| d.value.as_deref())
            .and_then(present)
            .map(str::to_owned);
        return LocationStep::PartOf { id, display };
    }
    LocationStep::Facility {
        name: location
            .name
            .as_ref()
            .and_then(|n| n.value.as_deref())
            .and_then(present)
            .map(str::to_owned),
    }
}

/// `$start-scribe`'s answer: the session as Noa created (or resumed) it.
///
/// `encounter` (the session's Encounter, which follows its lifecycle), `sessionId`,
/// `sessionToken` (for the recorder widget), `consumerId`, `expiresIn` and `expires` (`now` +
/// `expiresIn`, in the practice zone), `recorderUrl`, `summaryUrl`, `status` (Noa's) and `resumed`
/// (Noa answered an existing live session).
pub fn scribe_outcome(
    created: &wire::SessionCreated,
    resumed: bool,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Resource, AdapterError> {
    let session_id = present(&created.session_id).ok_or_else(|| unmappable("Noa answered a session without id"))?;
    let encounter = ids::fhir_id(session_id).map_err(|_| unmappable("a Noa session id cannot be a FHIR id"))?;
    let param = |name: &str, value: ParametersParameterValue| ParametersParameter {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let text = |s: &str| present(s).map(|t| ParametersParameterValue::String(t.into()));
    let url = |s: &str| {
        present(s)
            .filter(|u| url::Url::parse(u).is_ok())
            .map(|u| ParametersParameterValue::Url(u.into()))
    };
    let mut out = vec![param(
        "encounter",
        ParametersParameterValue::Reference(Box::new(Reference {
            reference: Some(format!("Encounter/{encounter}").into()),
            ..Default::default()
        })),
    )];
    out.push(param("sessionId", ParametersParameterValue::String(session_id.into())));
    out.extend(text(&created.session_token).map(|v| param("sessionToken", v)));
    out.extend(text(&created.consumer_id).map(|v| param("consumerId", v)));
    if let Some(seconds) = created.expires_in.filter(|s| *s >= 0) {
        if let Ok(small) = i32::try_from(seconds) {
            out.push(param("expiresIn", ParametersParameterValue::Integer(small.into())));
        }
        if let Some(expires) = Duration::try_seconds(seconds).and_then(|d| now.checked_add_signed(d)) {
            let expires = expires.with_timezone(&tz).fixed_offset();
            out.push(param(
                "expires",
                ParametersParameterValue::Instant(time::fhir_instant(&expires).into()),
            ));
        }
    }
    out.extend(url(&created.recorder_url).map(|v| param("recorderUrl", v)));
    out.extend(url(&created.summary_url).map(|v| param("summaryUrl", v)));
    if let Some(status) = fhir_code(&created.status) {
        out.push(param("status", ParametersParameterValue::Code(status.into())));
    }
    out.push(param("resumed", ParametersParameterValue::Boolean(resumed.into())));
    Ok(Resource::Parameters(Box::new(Parameters {
        parameter: out,
        ..Default::default()
    })))
}

fn invalid(detail: &str) -> AdapterError {
    AdapterError::InvalidRequest { detail: detail.into() }
}

fn unprocessable(element: &str, detail: String) -> AdapterError {
    AdapterError::Unprocessable {
        element: element.into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn resource(v: Value) -> Resource {
        fhirbolt::json::from_str(&v.to_string(), None).unwrap()
    }

    fn parameters(params: Value) -> Option<Resource> {
        Some(resource(json!({"resourceType": "Parameters", "parameter": params})))
    }

    #[test]
    fn the_input_is_read_in_order() {
        let input = scribe_input(parameters(json!([
            {"name": "language", "valueCode": "pl-PL"},
            {"name": "visitType", "valueCode": "FollowUpVisit"},
            {"name": "speciality", "valueString": "cardiology"},
            {"name": "template", "part": [{"name": "title", "valueString": "Zeta"}, {"name": "instruction", "valueString": "z"}]},
            {"name": "template", "part": [{"name": "title", "valueString": "Alpha"}]}
        ])))
        .unwrap();
        assert_eq!(input.language.as_deref(), Some("pl-PL"));
        assert_eq!(input.visit_type, Some(VisitType::FollowUpVisit));
        assert_eq!(input.speciality.as_deref(), Some("cardiology"));
        let titles: Vec<_> = input
            .template
            .unwrap()
            .sections
            .into_iter()
            .map(|s| (s.title, s.instruction))
            .collect();
        assert_eq!(titles, [("Zeta".into(), "z".into()), ("Alpha".into(), String::new())]);
        assert_eq!(scribe_input(None), Ok(ScribeInput::default()));
    }

    #[test]
    fn bad_inputs_are_invalid_requests() {
        for bad in [
            json!([{"name": "language", "valueCode": "en"}]),
            json!([{"name": "language", "valueCode": "en-US"}, {"name": "language", "valueCode": "pl-PL"}]),
            json!([{"name": "visitType", "valueCode": "Checkup"}]),
            json!([{"name": "speciality", "valueBoolean": true}]),
            json!([{"name": "template", "part": [{"name": "instruction", "valueString": "x"}]}]),
            json!([{"name": "template", "part": [{"name": "title", "valueString": "A"}]},
                   {"name": "template", "part": [{"name": "title", "valueString": "A"}]}]),
            json!([{"name": "template", "part": [{"name": "heading", "valueString": "A"}]}]),
            json!([{"name": "doctor", "valueString": "x"}]),
        ] {
            assert!(
                matches!(
                    scribe_input(parameters(bad.clone())),
                    Err(AdapterError::InvalidRequest { .. })
                ),
                "{bad}"
            );
        }
        let patient = resource(json!({"resourceType": "Patient"}));
        assert!(scribe_input(Some(patient)).is_err());
    }

    fn appointment(status: &str, participants: Value) -> Resource {
        resource(json!({"resourceType": "Appointment", "status": status, "participant": participants}))
    }

    fn actor(reference: &str) -> Value {
        json!({"actor": {"reference": reference, "display": "Dr X"}, "status": "accepted"})
    }

    #[test]
    fn the_target_names_patient_practitioner_and_locations() {
        let id = FhirId::parse("drchrono-9001").unwrap();
        let a = appointment(
            "booked",
            json!([
                actor("Patient/drchrono-12"),
                actor("Practitioner/drchrono-3"),
                actor("Location/drchrono-5-room-1"),
                actor("Patient/zoom-1"),
                actor("Location/drchrono-5-room-1")
            ]),
        );
        let t = scribe_target(&id, &a, "drchrono").unwrap();
        assert_eq!(t.appointment, "9001");
        assert_eq!(t.patient, "12");
        assert_eq!(t.practitioner.to_string(), "drchrono-3");
        assert_eq!(t.practitioner_display.as_deref(), Some("Dr X"));
        assert_eq!(t.locations.len(), 1);
        assert_eq!(t.locations[0].0.native(), "5-room-1");
    }

    #[test]
    fn unusable_targets_are_refused_naming_the_element() {
        let element = |r: Result<ScribeTarget, AdapterError>| match r {
            Err(AdapterError::Unprocessable { element, .. }) => element,
            other => panic!("{other:?}"),
        };
        let ok = json!([
            actor("Patient/drchrono-12"),
            actor("Practitioner/drchrono-3"),
            actor("Location/drchrono-5")
        ]);
        let id = FhirId::parse("drchrono-9001").unwrap();
        for status in ["cancelled", "noshow", "entered-in-error"] {
            assert_eq!(
                element(scribe_target(&id, &appointment(status, ok.clone()), "drchrono")),
                "Appointment.status"
            );
        }
        let zoom = FhirId::parse("zoom-v1").unwrap();
        assert_eq!(
            element(scribe_target(&zoom, &appointment("booked", ok.clone()), "drchrono")),
            "Appointment"
        );
        for missing in [0, 1, 2] {
            let mut list = ok.as_array().unwrap().clone();
            list.remove(missing);
            assert_eq!(
                element(scribe_target(
                    &id,
                    &appointment("booked", Value::from(list)),
                    "drchrono"
                )),
                "Appointment.participant"
            );
        }
        let patient = resource(json!({"resourceType": "Patient"}));
        assert!(matches!(
            scribe_target(&id, &patient, "drchrono"),
            Err(AdapterError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn names_and_locations() {
        let p = |v: Value| match resource(v) {
            Resource::Practitioner(p) => *p,
            _ => unreachable!(),
        };
        let named = p(json!({"resourceType": "Practitioner", "name": [
            {"use": "usual", "text": "Doc"},
            {"use": "official", "family": "House", "given": ["Gregory"], "prefix": ["Dr."]}
        ]}));
        assert_eq!(practitioner_name(&named).as_deref(), Some("Dr. Gregory House"));
        let text = p(json!({"resourceType": "Practitioner", "name": [{"text": " Dr Who "}]}));
        assert_eq!(practitioner_name(&text).as_deref(), Some("Dr Who"));
        assert_eq!(practitioner_name(&p(json!({"resourceType": "Practitioner"}))), None);

        let l = |v: Value| match resource(v) {
            Resource::Location(l) => *l,
            _ => unreachable!(),
        };
        let room = l(json!({"resourceType": "Location", "name": "Exam room 1",
                            "partOf": {"reference": "Location/drchrono-5", "display": "Main office"}}));
        assert_eq!(
            location_step(&room, "drchrono"),
            LocationStep::PartOf {
                id: FhirId::parse("drchrono-5").unwrap(),
                display: Some("Main office".into())
            }
        );
        let office = l(json!({"resourceType": "Location", "name": "Main office"}));
        assert_eq!(
            location_step(&office, "drchrono"),
            LocationStep::Facility {
                name: Some("Main office".into())
            }
        );
        let foreign = l(json!({"resourceType": "Location", "partOf": {"reference": "Location/other-5"}}));
        assert_eq!(
            location_step(&foreign, "drchrono"),
            LocationStep::Facility { name: None }
        );
    }

    #[test]
    fn the_outcome_names_the_encounter_and_the_session() {
        let created = wire::SessionCreated {
            session_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            session_token: "tok".into(),
            consumer_id: "c1".into(),
            expires_in: Some(7200),
            recorder_url: "https://noa.example/recorder/sessions/0f8f".into(),
            summary_url: "not a url".into(),
            status: "New".into(),
        };
        let now = DateTime::parse_from_rfc3339("2025-03-14T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let out = scribe_outcome(&created, true, now, chrono_tz::Europe::Warsaw).unwrap();
        let json = fhirbolt::json::to_json_value(out, None).unwrap();
        let names: Vec<&str> = json["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "encounter",
                "sessionId",
                "sessionToken",
                "consumerId",
                "expiresIn",
                "expires",
                "recorderUrl",
                "status",
                "resumed"
            ]
        );
        assert_eq!(
            json["parameter"][0]["valueReference"]["reference"],
            "Encounter/noa-0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert_eq!(json["parameter"][5]["valueInstant"], "2025-03-14T12:00:00+01:00");
        assert_eq!(json["parameter"][8]["valueBoolean"], true);
        let nameless = wire::SessionCreated::default();
        assert!(scribe_outcome(&nameless, false, now, Tz::UTC).is_err());
    }
}
