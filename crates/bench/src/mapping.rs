//! Item 6: mapping throughput per vendor on one core — vendor wire JSON (the simulators' demo
//! datasets, serialized as their APIs send them) deserialized into the adapter's wire type, mapped
//! to FHIR with the adapter's public `map` functions, and serialized as FHIR JSON.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::time::{Duration, Instant};

use adapter::MapCtx;
use adapter::fhir::Resource;
use anyhow::{Context, Result};
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vendor_sim::drchrono::DrChronoSim;
use vendor_sim::noa::NoaSim;
use vendor_sim::zoom::ZoomSim;

use crate::practice::drchrono_config;
use crate::report::Row;
use crate::stats::{count, median};
use crate::{Opts, Section};

/// How long each mapping runs per run.
const SPAN: Duration = Duration::from_secs(1);

/// Wire JSON → the length of the FHIR JSON (`None`: the input maps to no resource, e.g. a break).
type MapFn = Box<dyn Fn(&[u8]) -> Result<Option<usize>>>;

/// One mapping: a corpus of wire JSON documents and what turns one into FHIR JSON bytes.
struct Case {
    vendor: &'static str,
    what: &'static str,
    inputs: Vec<Vec<u8>>,
    map: MapFn,
}

fn wire<T: Serialize>(items: &[T]) -> Result<Vec<Vec<u8>>> {
    items
        .iter()
        .map(|i| serde_json::to_vec(i).map_err(Into::into))
        .collect()
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

fn fhir_len(resource: Resource) -> Result<Option<usize>> {
    let bytes = fhirbolt::json::to_vec(&resource, None).map_err(|e| anyhow::anyhow!("FHIR JSON: {e}"))?;
    Ok(Some(bytes.len()))
}

/// The demo datasets of the three simulators (the same seed and day as the demo) as cases.
fn cases() -> Result<Vec<Case>> {
    let dr_config = drchrono_config();
    let (seed, anchor) = (dr_config.seed, dr_config.anchor);
    let tz: chrono_tz::Tz = dr_config.timezone.parse().unwrap_or(chrono_tz::UTC);
    let dr = DrChronoSim::new(dr_config).dataset();
    let zoom = ZoomSim::new(vendor_sim::zoom::ZoomSimConfig::demo(
        seed,
        anchor,
        vendor_sim::zoom::EhrRefs::from_drchrono(&dr),
    ))
    .dataset();
    let noa = NoaSim::new(vendor_sim::noa::NoaSimConfig::demo(
        seed,
        anchor,
        vendor_sim::noa::EhrRefs::from_drchrono(&dr),
    ))
    .dataset();
    let base = MapCtx::new(Utc::now(), tz);

    // DrChrono: doctors' zones as the adapter learns them from /api/doctors.
    let mut dr_ctx = adapter_drchrono::map::DrCtx::new(base.clone());
    for doctor in wire(&dr.doctors)? {
        let d: adapter_drchrono::wire::Doctor = parse(&doctor)?;
        if let Some(zone) = adapter_drchrono::map::doctor_timezone(&d) {
            dr_ctx.doctor_tz.insert(d.id, zone);
        }
    }
    let dr_patients = {
        let ctx = dr_ctx.clone();
        Case {
            vendor: "DrChrono",
            what: "patient → Patient",
            inputs: wire(&dr.patients)?,
            map: Box::new(move |b| {
                let p: adapter_drchrono::wire::Patient = parse(b)?;
                fhir_len(Resource::Patient(Box::new(adapter_drchrono::map::patient(&p, &ctx)?)))
            }),
        }
    };
    let dr_appointments = {
        let ctx = dr_ctx;
        Case {
            vendor: "DrChrono",
            what: "appointment → Appointment",
            inputs: wire(&dr.appointments)?,
            map: Box::new(move |b| {
                let a: adapter_drchrono::wire::Appointment = parse(b)?;
                match adapter_drchrono::map::appointment(&a, &ctx)? {
                    Some(a) => fhir_len(Resource::Appointment(Box::new(a))),
                    None => Ok(None),
                }
            }),
        }
    };

    // Zoom: every EHR reference resolved (they all come from the DrChrono practice), note owners
    // from the providers list.
    let ehr = adapter_zoom::map::DEFAULT_EHR_SOURCE;
    let notes = wire(&zoom.clinical_notes)?;
    let visits = wire(&zoom.visits)?;
    let mut zoom_ctx = adapter_zoom::map::ZoomCtx::new(base.clone());
    for n in &notes {
        let n: adapter_zoom::wire::ClinicalNote = parse(n)?;
        zoom_ctx.resolved.extend(adapter_zoom::map::ehr_references(&n, ehr));
    }
    for v in &visits {
        let v: adapter_zoom::wire::Visit = parse(v)?;
        zoom_ctx
            .resolved
            .extend(adapter_zoom::map::visit_ehr_references(&v, ehr));
    }
    let mut owners: HashMap<String, adapter_zoom::wire::Provider> = HashMap::new();
    for p in wire(&zoom.providers)? {
        let p: adapter_zoom::wire::Provider = parse(&p)?;
        owners.insert(p.user_id.trim().to_owned(), p);
    }
    let zoom_notes = {
        let ctx = zoom_ctx.clone();
        Case {
            vendor: "Zoom",
            what: "clinical note → DocumentReference",
            inputs: notes,
            map: Box::new(move |b| {
                let n: adapter_zoom::wire::ClinicalNote = parse(b)?;
                let owner = owners.get(n.note_owner_user_id.trim());
                let d = adapter_zoom::map::clinical_note_with_owner(&n, owner, &ctx)?;
                fhir_len(Resource::DocumentReference(Box::new(d)))
            }),
        }
    };
    let zoom_visits = {
        let ctx = zoom_ctx;
        Case {
            vendor: "Zoom",
            what: "visit → Appointment",
            inputs: visits,
            map: Box::new(move |b| {
                let v: adapter_zoom::wire::Visit = parse(b)?;
                fhir_len(Resource::Appointment(Box::new(adapter_zoom::map::visit_appointment(
                    &v, &ctx,
                )?)))
            }),
        }
    };

    // Noa: episodes' patients from the DrChrono appointments, every EHR reference resolved.
    let mut noa_ctx = adapter_noa::map::NoaCtx::new(base);
    noa_ctx.episode_patients = dr
        .appointments
        .iter()
        .filter_map(|a| Some((a.id.clone(), a.patient?.to_string())))
        .collect();
    let sessions = wire(&noa.sessions)?;
    let mut parsed_sessions: HashMap<String, adapter_noa::wire::Session> = HashMap::new();
    let mut resolved = HashSet::new();
    for s in &sessions {
        let s: adapter_noa::wire::Session = parse(s)?;
        resolved.extend(adapter_noa::map::session_references(&s, &noa_ctx));
        parsed_sessions.insert(s.session_id.clone(), s);
    }
    noa_ctx.resolved = resolved;
    let noa_sessions = {
        let ctx = noa_ctx.clone();
        Case {
            vendor: "Noa",
            what: "session → Encounter",
            inputs: sessions,
            map: Box::new(move |b| {
                let s: adapter_noa::wire::Session = parse(b)?;
                fhir_len(Resource::Encounter(Box::new(adapter_noa::map::session_encounter(
                    &s, &ctx,
                )?)))
            }),
        }
    };
    let noa_summaries = {
        let ctx = noa_ctx;
        Case {
            vendor: "Noa",
            what: "summary → DocumentReference (session already parsed)",
            inputs: wire(&noa.summaries)?,
            map: Box::new(move |b| {
                let summary: adapter_noa::wire::Summary = parse(b)?;
                let session = parsed_sessions
                    .get(&summary.session_id)
                    .context("a summary without its session")?;
                let d = adapter_noa::map::summary_document(session, &summary, &ctx)?;
                fhir_len(Resource::DocumentReference(Box::new(d)))
            }),
        }
    };
    Ok(vec![
        dr_patients,
        dr_appointments,
        zoom_notes,
        zoom_visits,
        noa_sessions,
        noa_summaries,
    ])
}

/// Runs on the calling thread (one core).
pub fn run(opts: &Opts) -> Result<Section> {
    let mut section = Section::default();
    for mut case in cases()? {
        // Keep what maps; say what does not.
        let before = case.inputs.len();
        let mut wire_bytes = 0;
        let mut fhir_bytes = 0;
        let mut produced = 0;
        let mut failures = Vec::new();
        case.inputs.retain(|input| match (case.map)(input) {
            Ok(out) => {
                wire_bytes += input.len();
                if let Some(n) = out {
                    fhir_bytes += n;
                    produced += 1;
                }
                true
            }
            Err(e) => {
                failures.push(e.to_string());
                false
            }
        });
        if !failures.is_empty() {
            section.notes.push(format!(
                "item 6, {} {}: {} of {before} inputs do not map and were left out (first: {})",
                case.vendor,
                case.what,
                failures.len(),
                failures[0]
            ));
        }
        if case.inputs.is_empty() {
            continue;
        }
        let mut rates = Vec::new();
        for _ in 0..opts.runs {
            let start = Instant::now();
            let mut done = 0usize;
            while start.elapsed() < SPAN {
                for input in &case.inputs {
                    black_box((case.map)(black_box(input))?);
                }
                done += case.inputs.len();
            }
            rates.push(done as f64 / start.elapsed().as_secs_f64());
        }
        let what = format!(
            "Mapping {} {}: {} inputs, avg {:.1} KB wire → {:.1} KB FHIR JSON",
            case.vendor,
            case.what,
            case.inputs.len(),
            wire_bytes as f64 / case.inputs.len() as f64 / 1024.0,
            fhir_bytes as f64 / produced.max(1) as f64 / 1024.0,
        );
        eprintln!("  {what}: {} inputs/s", count(median(&rates)));
        let mut row =
            Row::new(6, what, "inputs/s, one core (deserialize + map + serialize)").gateway(count(median(&rates)));
        if produced < case.inputs.len() {
            row = row.comparison(format!("{} of {} inputs give a resource", produced, case.inputs.len()));
        }
        section.rows.push(row);
    }
    Ok(section)
}
