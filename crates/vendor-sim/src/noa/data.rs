//! Deterministic synthetic Noa consumer: sessions for the EHR's appointments in every status,
//! their summaries, and the facilities and doctors they were registered under, all drawn from
//! one ChaCha stream seeded by [`NoaSimConfig::seed`] and shaped by [`NoaSimConfig::ehr`].
//!
//! The clock stands at noon on the anchor date (in the configured zone) at start. The sessions
//! whose appointments are nearest to it are in flight (New, Recording, Recorded, Transcribing,
//! Transcribed, Analyzing, sometimes Summarized) and carry on along their plan when the clock
//! moves; the others belong to the most recent past appointments and are mostly Verified, with
//! some Summarized (not verified yet), EmptySummaryVerified, Interrupted, Failed and Expired. An
//! error is sometimes followed by a second session for the same appointment. One EHR doctor who
//! has appointments (the one with fewest) is left unregistered and has no sessions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use super::lifecycle::{NewSession, Outcome, Plan, Session, State, uuid};
use super::wire::{Doctor, Facility, SessionDetails, SessionStatus, Summary, Template};
use super::{EhrAppointment, EhrDoctor, EhrOffice, EhrRefs, NoaSimConfig};

/// A snapshot of everything the simulator serves. Sessions are in creation order (`createdAt`,
/// then `sessionId`), summaries in the order of their sessions, facilities and doctors in
/// registration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dataset {
    pub consumer_id: String,
    pub facilities: Vec<Facility>,
    pub doctors: Vec<Doctor>,
    pub sessions: Vec<SessionDetails>,
    pub summaries: Vec<Summary>,
}

impl Dataset {
    pub fn session(&self, session_id: &str) -> Option<&SessionDetails> {
        self.sessions.iter().find(|s| s.session_id == session_id)
    }

    pub fn summary(&self, session_id: &str) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.session_id == session_id)
    }

    pub fn facility(&self, external_facility_id: &str) -> Option<&Facility> {
        self.facilities
            .iter()
            .find(|f| f.external_facility_id == external_facility_id)
    }

    pub fn doctor(&self, external_facility_id: &str, external_doctor_id: &str) -> Option<&Doctor> {
        self.doctors
            .iter()
            .find(|d| d.external_facility_id == external_facility_id && d.external_doctor_id == external_doctor_id)
    }

    /// Sessions in `status`.
    pub fn sessions_in(&self, status: SessionStatus) -> impl Iterator<Item = &SessionDetails> {
        self.sessions.iter().filter(move |s| s.status == status)
    }
}

/// `2025-03-14T12:00:00Z`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Any RFC 3339 timestamp, in UTC.
pub(crate) fn parse_ts(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Noon on `anchor` in `tz`, in UTC.
pub(crate) fn synthetic_now(anchor: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    local_to_utc(
        anchor.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN)),
        tz,
    )
}

/// A zone-less local time in `tz` as UTC; a time in a DST gap moves an hour on.
pub(crate) fn local_to_utc(local: NaiveDateTime, tz: chrono_tz::Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => tz
            .from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
    }
}

fn parse_local(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S"))
        .ok()
}

fn weighted<T: Copy>(rng: &mut impl RngCore, items: &[(T, u32)], fallback: T) -> T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return fallback;
    }
    let mut draw = rng.random_range(0..total);
    for (item, weight) in items {
        if draw < *weight {
            return *item;
        }
        draw -= weight;
    }
    fallback
}

const LANGUAGE_WEIGHTS: &[(&str, u32)] = &[
    ("en-US", 85),
    ("es-MX", 5),
    ("pl-PL", 3),
    ("pt-BR", 3),
    ("de-DE", 2),
    ("es-ES", 2),
];

const VISIT_TYPE_WEIGHTS: &[(Option<&str>, u32)] = &[(Some("FollowUpVisit"), 50), (Some("FirstVisit"), 30), (None, 20)];

const SPECIALITIES: &[(Option<&str>, u32)] = &[
    (None, 55),
    (Some("family medicine"), 20),
    (Some("internal medicine"), 10),
    (Some("psychiatrist"), 8),
    (Some("cardiology"), 7),
];

/// Custom templates some sessions use (the first is the public doc's example).
const CUSTOM_TEMPLATES: &[&[(&str, &str)]] = &[
    &[
        (
            "Personal Information",
            "Include patient demographics and insurance information",
        ),
        ("Reason for the Visit", "Detailed description of the presenting problem"),
    ],
    &[
        ("Subjective", "Symptoms and history in the patient's words"),
        ("Objective", "Vital signs and examination findings"),
        ("Assessment", "Working diagnosis"),
        ("Plan", "Treatment, orders and follow-up"),
    ],
    &[
        ("Reason for the Visit", "Why the patient came"),
        ("History of Present Illness", "Onset, course and modifying factors"),
        ("Medications", "Current medications and changes made today"),
        ("Allergies", "Known allergies"),
        ("Plan", "Next steps as a list"),
    ],
];

/// Past statuses and their weights (beyond the one of each that is always present).
const PAST_WEIGHTS: &[(SessionStatus, u32)] = &[
    (SessionStatus::Verified, 80),
    (SessionStatus::Summarized, 5),
    (SessionStatus::EmptySummaryVerified, 3),
    (SessionStatus::Interrupted, 4),
    (SessionStatus::Failed, 4),
    (SessionStatus::Expired, 4),
];

/// Statuses that are present at least once among the past sessions.
const PAST_REQUIRED: &[SessionStatus] = &[
    SessionStatus::Verified,
    SessionStatus::Summarized,
    SessionStatus::EmptySummaryVerified,
    SessionStatus::Interrupted,
    SessionStatus::Failed,
    SessionStatus::Expired,
];

/// Statuses of the sessions nearest to "now", in that order; more are drawn from
/// [`IN_FLIGHT_EXTRA`].
const IN_FLIGHT: &[SessionStatus] = &[
    SessionStatus::New,
    SessionStatus::Recording,
    SessionStatus::Recorded,
    SessionStatus::Transcribing,
    SessionStatus::Transcribed,
    SessionStatus::Analyzing,
];

const IN_FLIGHT_EXTRA: &[(SessionStatus, u32)] = &[
    (SessionStatus::New, 3),
    (SessionStatus::Recording, 3),
    (SessionStatus::Transcribing, 1),
    (SessionStatus::Summarized, 3),
];

/// An EHR appointment with its start in UTC.
struct Slot<'a> {
    appointment: &'a EhrAppointment,
    start: DateTime<Utc>,
}

struct Generator<'a> {
    config: &'a NoaSimConfig,
    rng: ChaCha20Rng,
    now: DateTime<Utc>,
    ttl: TimeDelta,
    specialities: BTreeMap<i64, Option<&'static str>>,
}

/// Generates the consumer's data; `now` is the clock's start.
pub(crate) fn generate(config: &NoaSimConfig, tz: chrono_tz::Tz, now: DateTime<Utc>) -> State {
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed ^ 0x00a0_5e55_1000_0001);
    let synthetic;
    let ehr = if config.ehr.appointments.is_empty() {
        synthetic = synthetic_ehr(&mut rng, config.anchor, config.sessions);
        &synthetic
    } else {
        &config.ehr
    };
    let mut generator = Generator {
        config,
        rng,
        now,
        ttl: TimeDelta::from_std(config.session_ttl).unwrap_or(TimeDelta::hours(2)),
        specialities: BTreeMap::new(),
    };
    let excluded = unregistered_doctor(ehr);
    let mut slots: Vec<Slot<'_>> = ehr
        .appointments
        .iter()
        .filter(|a| Some(a.doctor) != excluded)
        .filter_map(|a| {
            Some(Slot {
                appointment: a,
                start: local_to_utc(parse_local(&a.scheduled_time)?, tz),
            })
        })
        .collect();
    // Stable order whatever the EHR's order: by start, then id.
    slots.sort_by(|a, b| (a.start, &a.appointment.id).cmp(&(b.start, &b.appointment.id)));

    let total = config.sessions;
    let mut sessions: Vec<Session> = Vec::new();

    // In flight: the appointments nearest to now (at most two hours ahead).
    let in_flight_count = (IN_FLIGHT.len() + total / 30).min(total);
    let mut near: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].start <= now + TimeDelta::hours(2))
        .collect();
    near.sort_by_key(|&i| ((slots[i].start - now).num_seconds().abs(), i));
    near.truncate(in_flight_count);
    let used: BTreeSet<usize> = near.iter().copied().collect();
    for (n, &i) in near.iter().enumerate() {
        let target = match IN_FLIGHT.get(n) {
            Some(status) => *status,
            None => weighted(&mut generator.rng, IN_FLIGHT_EXTRA, SessionStatus::New),
        };
        sessions.push(generator.in_flight(slots[i].appointment, target));
    }

    // Past: the most recent appointments that ended at least six hours ago.
    let mut past: Vec<usize> = (0..slots.len())
        .filter(|i| !used.contains(i))
        .filter(|&i| slots[i].start <= now - TimeDelta::hours(6))
        .collect();
    past.reverse();
    let past_count = total.saturating_sub(sessions.len());
    let mut statuses: Vec<SessionStatus> = (0..past_count)
        .map(|_| weighted(&mut generator.rng, PAST_WEIGHTS, SessionStatus::Verified))
        .collect();
    let mut positions: Vec<usize> = (0..past_count).collect();
    positions.shuffle(&mut generator.rng);
    for (status, position) in PAST_REQUIRED.iter().zip(positions) {
        statuses[position] = *status;
    }
    let mut appointments = past.into_iter();
    let mut previous: Option<(&EhrAppointment, DateTime<Utc>)> = None;
    for target in statuses {
        // After an error, the doctor sometimes tried again for the same appointment.
        let retry = previous.take().filter(|_| generator.rng.random_bool(0.4));
        let (appointment, created) = match retry {
            Some((appointment, ended)) => {
                let delay = TimeDelta::minutes(generator.rng.random_range(2..=20));
                (appointment, ended + delay)
            }
            None => {
                let Some(i) = appointments.next() else {
                    break;
                };
                let jitter = TimeDelta::minutes(generator.rng.random_range(-10..=10));
                (slots[i].appointment, slots[i].start + jitter)
            }
        };
        let session = generator.past(appointment, target, created);
        if target.is_error() && retry.is_none() {
            let ended = parse_ts(&session.details.updated_at).unwrap_or(session.created);
            previous = Some((appointment, ended));
        }
        sessions.push(session);
    }
    for session in &mut sessions {
        if session.next.is_some_and(|(at, _)| at <= now) {
            session.next = None;
        }
    }

    let (facilities, doctors) = registrations(&sessions, ehr);
    let mut state = State {
        consumer_id: config.consumer_id.clone(),
        facilities,
        doctors,
        sessions,
    };
    state.sort_sessions();
    state
}

impl Generator<'_> {
    /// The attributes of a session for `appointment` with an outcome leading to `target`.
    fn attributes(&mut self, appointment: &EhrAppointment, target: SessionStatus) -> NewSession {
        let rng = &mut self.rng;
        let outcome = match target {
            SessionStatus::Expired => Outcome::Expire,
            SessionStatus::Interrupted => Outcome::Interrupt,
            SessionStatus::Failed if rng.random_bool(0.5) => Outcome::FailTranscribing,
            SessionStatus::Failed => Outcome::FailAnalyzing,
            _ => Outcome::Complete,
        };
        let session_id = uuid(rng);
        let plan = Plan::draw(rng, outcome);
        let language = weighted(rng, LANGUAGE_WEIGHTS, "en-US").to_owned();
        let visit_type = weighted(rng, VISIT_TYPE_WEIGHTS, None).map(str::to_owned);
        let metadata = rng
            .random_ratio(3, 4)
            .then(|| BTreeMap::from([("patientId".to_owned(), appointment.patient.to_string())]));
        let template = if rng.random_ratio(3, 20) {
            let sections = CUSTOM_TEMPLATES[rng.random_range(0..CUSTOM_TEMPLATES.len())];
            Some(Template::new(sections.iter().copied()))
        } else {
            None
        };
        let content_seed = rng.random();
        let speciality = *self
            .specialities
            .entry(appointment.doctor)
            .or_insert_with(|| weighted(rng, SPECIALITIES, None));
        NewSession {
            session_id,
            consumer_id: self.config.consumer_id.clone(),
            episode_id: appointment.id.clone(),
            doctor_id: appointment.doctor.to_string(),
            facility_id: Some(appointment.office.to_string()),
            visit_type,
            language,
            speciality: speciality.map(str::to_owned),
            metadata,
            template,
            webhook_url: None,
            plan,
            content_seed,
        }
    }

    /// Runs the session's plan from creation until it is in `target` (approving it when the
    /// target is verified, `approve_after` after it was summarized); `None` if the plan cannot
    /// get there.
    fn play(&self, session: &mut Session, target: SessionStatus, approve_after: TimeDelta) -> Option<DateTime<Utc>> {
        let auto = self.config.auto_approve_after;
        for _ in 0..16 {
            if session.details.status == target {
                return Some(parse_ts(&session.details.updated_at).unwrap_or(session.created));
            }
            if matches!(target, SessionStatus::Verified | SessionStatus::EmptySummaryVerified)
                && session.details.status == SessionStatus::Summarized
            {
                let summarized = parse_ts(&session.details.updated_at).unwrap_or(session.created);
                let at = summarized + approve_after;
                session
                    .approve(target == SessionStatus::EmptySummaryVerified, at)
                    .ok()?;
                continue;
            }
            let (at, to) = session.next?;
            session.enter(to, at, auto);
        }
        None
    }

    /// A past session created at `created`, brought to `target`.
    fn past(&mut self, appointment: &EhrAppointment, target: SessionStatus, created: DateTime<Utc>) -> Session {
        let new = self.attributes(appointment, target);
        let mut session = Session::create(&new, created, self.ttl);
        // Approved between ten minutes and a day and a half after the summary, before now.
        let wanted = TimeDelta::minutes(self.rng.random_range(10..=36 * 60));
        let mut probe = session.clone();
        let approve_after = match self.play(&mut probe, SessionStatus::Summarized, TimeDelta::zero()) {
            Some(summarized) => wanted
                .min(self.now - TimeDelta::minutes(1) - summarized)
                .max(TimeDelta::minutes(1)),
            None => wanted,
        };
        self.play(&mut session, target, approve_after);
        session
    }

    /// A session that is in `target` now: created so that now falls inside its stay there.
    fn in_flight(&mut self, appointment: &EhrAppointment, target: SessionStatus) -> Session {
        let new = self.attributes(appointment, target);
        let mut probe = Session::create(&new, self.now, self.ttl);
        let entered = self.play(&mut probe, target, TimeDelta::zero()).unwrap_or(self.now);
        let stay = match probe.next {
            Some((at, _)) if target != SessionStatus::Summarized => at - entered,
            _ => self
                .config
                .auto_approve_after
                .unwrap_or(TimeDelta::hours(1))
                .min(TimeDelta::hours(1)),
        };
        let into = TimeDelta::seconds((stay.num_seconds() as f64 * self.rng.random_range(0.15..0.85)) as i64);
        let created = self.now - (entered - self.now) - into;
        let mut session = Session::create(&new, created, self.ttl);
        self.play(&mut session, target, TimeDelta::zero());
        session
    }
}

/// The doctor with the fewest appointments (the highest id among equals) when at least two
/// doctors have appointments: left unregistered, with no sessions.
fn unregistered_doctor(ehr: &EhrRefs) -> Option<i64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for appointment in &ehr.appointments {
        *counts.entry(appointment.doctor).or_default() += 1;
    }
    if counts.len() < 2 {
        return None;
    }
    counts
        .into_iter()
        .min_by_key(|(id, count)| (*count, std::cmp::Reverse(*id)))
        .map(|(id, _)| id)
}

/// The facilities and doctors the sessions use, named after the EHR's offices and doctors.
fn registrations(sessions: &[Session], ehr: &EhrRefs) -> (Vec<Facility>, Vec<Doctor>) {
    let numeric = |raw: &str| raw.parse::<i64>().unwrap_or(i64::MAX);
    let mut pairs: BTreeSet<(i64, String, i64, String)> = BTreeSet::new();
    for session in sessions {
        if let Some(facility) = &session.details.facility_id {
            pairs.insert((
                numeric(facility),
                facility.clone(),
                numeric(&session.details.doctor_id),
                session.details.doctor_id.clone(),
            ));
        }
    }
    let office_name = |id: &str| {
        ehr.offices
            .iter()
            .find(|o| o.id.to_string() == id)
            .map(|o| o.name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Office {id}"))
    };
    let doctor_name = |id: &str| {
        ehr.doctors
            .iter()
            .find(|d| d.id.to_string() == id)
            .map(|d| d.name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Doctor {id}"))
    };
    let mut facilities: Vec<Facility> = Vec::new();
    let mut doctors = Vec::new();
    for (_, facility, _, doctor) in pairs {
        if !facilities.iter().any(|f| f.external_facility_id == facility) {
            facilities.push(Facility {
                name: office_name(&facility),
                external_facility_id: facility.clone(),
            });
        }
        doctors.push(Doctor {
            name: doctor_name(&doctor),
            external_doctor_id: doctor,
            external_facility_id: facility,
        });
    }
    (facilities, doctors)
}

/// An EHR for when none is given: three doctors, two offices and appointments over the sixty
/// days up to the anchor (a few of them on the anchor day).
fn synthetic_ehr(rng: &mut ChaCha20Rng, anchor: NaiveDate, sessions: usize) -> EhrRefs {
    let doctors = vec![
        EhrDoctor {
            id: 900_001,
            name: "Maria Lopez".into(),
        },
        EhrDoctor {
            id: 900_002,
            name: "James Carter".into(),
        },
        EhrDoctor {
            id: 900_003,
            name: "Aisha Khan".into(),
        },
    ];
    let offices = vec![
        EhrOffice {
            id: 700_001,
            name: "Main Street Clinic".into(),
        },
        EhrOffice {
            id: 700_002,
            name: "Riverside Office".into(),
        },
    ];
    let count = sessions * 2 + 24;
    let appointments = (0..count)
        .map(|i| {
            let days_back = if i < 12 { 0 } else { rng.random_range(0..60u64) };
            let date = anchor.checked_sub_days(chrono::Days::new(days_back)).unwrap_or(anchor);
            let hour = rng.random_range(8..17);
            let minute = [0, 15, 30, 45][rng.random_range(0..4)];
            let time = NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN);
            // The third doctor has few appointments.
            let doctor = if rng.random_ratio(1, 12) {
                900_003
            } else if rng.random_bool(0.5) {
                900_001
            } else {
                900_002
            };
            EhrAppointment {
                id: (800_000 + i as i64).to_string(),
                patient: 600_000 + rng.random_range(0..40),
                doctor,
                office: if rng.random_bool(0.6) { 700_001 } else { 700_002 },
                scheduled_time: date.and_time(time).format("%Y-%m-%dT%H:%M:%S").to_string(),
                duration: 30,
            }
        })
        .collect();
    EhrRefs {
        doctors,
        offices,
        appointments,
    }
}
