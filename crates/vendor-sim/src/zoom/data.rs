//! Deterministic synthetic Zoom account: providers (one per EHR doctor, plus a Zoom-only
//! therapist), their availability, healthcare patients, visits and clinical notes, all drawn from
//! one ChaCha stream seeded by [`ZoomSimConfig::seed`] and shaped by [`ZoomSimConfig::ehr`].
//!
//! The account's clock stands at noon on the anchor date (in the configured zone) at start:
//! completed, cancelled and no-show visits lie before it, scheduled ones after it, a few patients
//! are in the waiting room and a few visits are in progress; notes only exist for meetings that
//! ended before it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use data_encoding::BASE64;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use super::content::{self, SCENARIOS, Scenario};
use super::wire::*;
use super::{EhrAppointment, ZoomSimConfig};

/// The truth behind the simulator. Notes are in creation order, visits in scheduled order,
/// everything else in creation order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dataset {
    pub account_id: String,
    /// The account's admin user: Server-to-Server OAuth apps act as this user, so it is the
    /// `note_last_modified_user_id` of notes completed through the API.
    pub admin_user_id: String,
    pub providers: Vec<Provider>,
    /// One per provider, in the same order.
    pub availability: Vec<Availability>,
    pub patients: Vec<Patient>,
    pub visits: Vec<Visit>,
    pub clinical_notes: Vec<ClinicalNote>,
    pub invitations: Vec<Invitation>,
    pub waiting_room_notifications: Vec<WaitingRoomNotification>,
}

impl Dataset {
    pub fn note(&self, note_id: &str) -> Option<&ClinicalNote> {
        self.clinical_notes.iter().find(|n| n.note_id == note_id)
    }

    pub fn visit(&self, visit_id: &str) -> Option<&Visit> {
        self.visits.iter().find(|v| v.id == visit_id)
    }

    pub fn patient(&self, patient_id: &str) -> Option<&Patient> {
        self.patients.iter().find(|p| p.id == patient_id)
    }

    /// By provider id or by Zoom user id.
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id || p.user_id == id)
    }

    pub fn availability_of(&self, provider_id: &str) -> Option<&Availability> {
        self.availability.iter().find(|a| a.provider_id == provider_id)
    }

    /// Any Zoom user of the account: the admin or a provider.
    pub fn is_user(&self, user_id: &str) -> bool {
        user_id == self.admin_user_id || self.providers.iter().any(|p| p.user_id == user_id)
    }
}

/// `2025-05-15T03:01:08.608Z`: notes' timestamps.
pub(crate) fn ts_ms(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `2024-02-01T14:00:00Z`: healthcare timestamps.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses any RFC 3339 timestamp into UTC.
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
            .from_local_datetime(&(local + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
    }
}

fn parse_local(raw: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%d %H:%M:%S"))
        .ok()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub(crate) fn random_string(rng: &mut impl RngCore, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// `visit_k3j9x0q2ma`-style ids.
pub(crate) fn prefixed_id(rng: &mut impl RngCore, prefix: &str) -> String {
    format!("{prefix}_{}", random_string(rng, LOWER_ALNUM, 10))
}

/// A Zoom user id: 22 characters of base64url, like `dqV7XEpnS5G3rGsvqylmjQ`.
pub(crate) fn user_id(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// A note id: 21 alphanumerics, like `ArfRXokSTiGTCSYFVtxNa`.
pub(crate) fn note_id(rng: &mut impl RngCore) -> String {
    random_string(rng, ALNUM, 21)
}

/// A meeting instance UUID (standard base64 of 16 bytes, ending `==`). By `variant`: one in ten
/// starts with `/`, one in ten with `//` (the ones the doc says to double-encode), four in ten
/// contain both `/` and `+`, the rest are whatever the bytes give.
pub(crate) fn meeting_uuid(rng: &mut impl RngCore, variant: usize) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    match variant % 10 {
        0 => bytes[0] = 0xFC | (bytes[0] & 0x03),
        1 => {
            bytes[0] = 0xFF;
            bytes[1] = 0xF0 | (bytes[1] & 0x0F);
        }
        2..=5 => {
            for _ in 0..500 {
                let encoded = BASE64.encode(&bytes);
                if encoded.contains('/') && encoded.contains('+') {
                    return encoded;
                }
                rng.fill_bytes(&mut bytes);
            }
            // Unlikely to be reached: force both characters.
            bytes[0] = 0xFB;
            bytes[1] = 0xEF;
        }
        _ => {}
    }
    BASE64.encode(&bytes)
}

pub(crate) fn meeting_number(rng: &mut impl RngCore) -> i64 {
    rng.random_range(81_000_000_000..99_999_999_999)
}

/// The doc's join URL shape: `https://zoom.us/j/{number}?pwd=…`, a different password per role.
pub(crate) fn join_urls(rng: &mut impl RngCore, number: i64) -> (String, String) {
    let patient = format!("https://zoom.us/j/{number}?pwd={}", random_string(rng, ALNUM, 32));
    let provider = format!(
        "https://zoom.us/j/{number}?pwd={}&zak={}",
        random_string(rng, ALNUM, 32),
        random_string(rng, ALNUM, 40)
    );
    (patient, provider)
}

/// `(212) 555-0143` → `+12125550143`; anything that is not a NANP number stays as given.
pub(crate) fn normalize_phone(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        10 => format!("+1{digits}"),
        11 if digits.starts_with('1') => format!("+{digits}"),
        _ => raw.trim().to_owned(),
    }
}

fn pick_str(rng: &mut ChaCha20Rng, items: &[&'static str]) -> &'static str {
    items.choose(rng).copied().unwrap_or("")
}

fn weighted<T: Copy>(rng: &mut ChaCha20Rng, items: &[(T, u32)], fallback: T) -> T {
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

const FIRST_NAMES: &[&str] = &[
    "Ava", "Mateo", "Grace", "Kenji", "Amara", "Lucas", "Zoë", "Rafael", "Priya", "Owen", "Nadia", "Tomás", "Leah",
    "Andre", "Mei", "Samuel", "Fatima", "Elijah", "Ingrid", "Jamal",
];
const LAST_NAMES: &[&str] = &[
    "Okafor",
    "Lindqvist",
    "Castillo",
    "Nakamura",
    "Reyes",
    "Petrov",
    "O'Neill",
    "Haddad",
    "Kowalski",
    "Brennan",
    "Nguyen",
    "Fischer",
    "Mbeki",
    "Duarte",
    "Sato",
];

const VISIT_TYPE_WEIGHTS: &[(VisitType, u32)] = &[
    (VisitType::FollowUp, 40),
    (VisitType::InitialConsultation, 15),
    (VisitType::UrgentCare, 12),
    (VisitType::MentalHealth, 15),
    (VisitType::GroupTherapy, 4),
    (VisitType::SpecialistConsult, 14),
];

/// Generates the whole dataset.
pub(crate) fn generate(config: &ZoomSimConfig, tz: chrono_tz::Tz) -> Dataset {
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed ^ 0x2003_c11e_0000_0001);
    let now = synthetic_now(config.anchor, tz);
    let admin_user_id = user_id(&mut rng);
    let providers = gen_providers(&mut rng, config, now);
    let availability = providers
        .iter()
        .map(|p| gen_availability(&mut rng, config, p, now))
        .collect();
    let patients = gen_patients(&mut rng, config, now);
    let ctx = Ctx {
        config,
        tz,
        now,
        providers: &providers,
        patients: &patients,
    };
    let visits = gen_visits(&mut rng, &ctx);
    let clinical_notes = gen_notes(&mut rng, &ctx, &visits);
    Dataset {
        account_id: config.account_id.clone(),
        admin_user_id,
        providers,
        availability,
        patients,
        visits,
        clinical_notes,
        invitations: Vec::new(),
        waiting_room_notifications: Vec::new(),
    }
}

fn practitioner_ref(id: i64) -> String {
    format!("Practitioner/{id}")
}

fn patient_ref(id: i64) -> String {
    format!("Patient/{id}")
}

fn gen_providers(rng: &mut ChaCha20Rng, config: &ZoomSimConfig, now: DateTime<Utc>) -> Vec<Provider> {
    let mut providers = Vec::new();
    let created = |rng: &mut ChaCha20Rng| ts(now - Duration::days(rng.random_range(200..900)));
    for doctor in &config.ehr.doctors {
        let email = if doctor.email.is_empty() {
            format!("provider{}@example.com", doctor.id)
        } else {
            doctor.email.clone()
        };
        providers.push(Provider {
            id: prefixed_id(rng, "prov"),
            user_id: user_id(rng),
            first_name: doctor.first_name.clone(),
            last_name: doctor.last_name.clone(),
            display_name: format!("Dr. {} {}", doctor.first_name, doctor.last_name),
            email,
            timezone: config.timezone.clone(),
            status: "active".into(),
            clinical_notes_enabled: true,
            ehr_context: Some(EhrContext {
                provider_id: Some(practitioner_ref(doctor.id)),
                ..EhrContext::default()
            }),
            created_at: created(rng),
        });
    }
    if providers.is_empty() {
        for (first, last) in [("Helen", "Marsh"), ("Victor", "Osei"), ("Ruth", "Aldana")] {
            providers.push(Provider {
                id: prefixed_id(rng, "prov"),
                user_id: user_id(rng),
                first_name: first.into(),
                last_name: last.into(),
                display_name: format!("Dr. {first} {last}"),
                email: format!("{}.{}@clinic.example.com", first.to_lowercase(), last.to_lowercase()),
                timezone: config.timezone.clone(),
                status: "active".into(),
                clinical_notes_enabled: true,
                ehr_context: None,
                created_at: created(rng),
            });
        }
    }
    // A therapist who only works in Zoom and has no Clinical Notes licence.
    providers.push(Provider {
        id: prefixed_id(rng, "prov"),
        user_id: user_id(rng),
        first_name: "Noor".into(),
        last_name: "Castellanos".into(),
        display_name: "Noor Castellanos, LCSW".into(),
        email: "noor.castellanos@telehealth.example.com".into(),
        timezone: config.timezone.clone(),
        status: "active".into(),
        clinical_notes_enabled: false,
        ehr_context: None,
        created_at: created(rng),
    });
    providers
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn hours(day: usize, start: &str, end: &str) -> WeeklyHours {
    WeeklyHours {
        day: WEEKDAYS[day % 7].into(),
        start_time: start.into(),
        end_time: end.into(),
    }
}

fn gen_availability(
    rng: &mut ChaCha20Rng,
    config: &ZoomSimConfig,
    provider: &Provider,
    now: DateTime<Utc>,
) -> Availability {
    let therapist = !provider.clinical_notes_enabled;
    let weekly_hours = match if therapist { 3 } else { rng.random_range(0..3u8) } {
        0 => (0..5).map(|d| hours(d, "09:00", "17:00")).collect(),
        1 => {
            let mut h: Vec<WeeklyHours> = (0..4).map(|d| hours(d, "08:00", "16:00")).collect();
            h.push(hours(4, "08:00", "12:00"));
            h
        }
        2 => (1..6).map(|d| hours(d, "10:00", "18:00")).collect(),
        _ => vec![
            hours(0, "09:00", "13:00"),
            hours(1, "13:00", "19:00"),
            hours(2, "09:00", "13:00"),
            hours(3, "13:00", "19:00"),
            hours(4, "09:00", "13:00"),
        ],
    };
    let today = now.date_naive();
    let mut date_overrides = Vec::new();
    let off = today + Duration::days(rng.random_range(3..25));
    date_overrides.push(DateOverride {
        date: off.format("%Y-%m-%d").to_string(),
        available: false,
        start_time: None,
        end_time: None,
        reason: pick_str(rng, &["Conference", "Vacation", "Personal day", "CME course"]).into(),
    });
    if rng.random_bool(0.5) {
        let late = today + Duration::days(rng.random_range(1..20));
        date_overrides.push(DateOverride {
            date: late.format("%Y-%m-%d").to_string(),
            available: true,
            start_time: Some("12:00".into()),
            end_time: Some("20:00".into()),
            reason: "Evening clinic".into(),
        });
    }
    date_overrides.sort_by(|a, b| a.date.cmp(&b.date));
    let visit_types = if therapist {
        vec![VisitType::MentalHealth, VisitType::GroupTherapy]
    } else {
        let mut types: Vec<VisitType> = VisitType::ALL
            .into_iter()
            .filter(|t| *t != VisitType::GroupTherapy && (rng.random_bool(0.8) || *t == VisitType::FollowUp))
            .collect();
        types.sort();
        types
    };
    Availability {
        provider_id: provider.id.clone(),
        timezone: config.timezone.clone(),
        slot_duration_minutes: *[15i64, 20, 30].choose(rng).unwrap_or(&30),
        accepting_new_patients: rng.random_bool(0.8),
        visit_types,
        weekly_hours,
        date_overrides,
        updated_at: ts(now - Duration::days(rng.random_range(1..60)) - Duration::minutes(rng.random_range(0..600))),
        available_slots: None,
    }
}

fn gen_patients(rng: &mut ChaCha20Rng, config: &ZoomSimConfig, now: DateTime<Utc>) -> Vec<Patient> {
    let wanted = config.patients;
    let zoom_only = if wanted == 0 { 0 } else { (wanted / 10).max(1) };
    let mut ehr: Vec<&super::EhrPatient> = config.ehr.patients.iter().collect();
    ehr.shuffle(rng);
    let mirrored = ehr.len().min(wanted - zoom_only);
    let mut patients: Vec<Patient> = Vec::with_capacity(wanted);
    for source in &ehr[..mirrored] {
        let created = now - Duration::days(rng.random_range(30..400)) - Duration::minutes(rng.random_range(0..1440));
        patients.push(Patient {
            id: prefixed_id(rng, "pat"),
            first_name: source.first_name.clone(),
            last_name: source.last_name.clone(),
            email: source.email.clone(),
            phone: normalize_phone(&source.phone),
            date_of_birth: source.date_of_birth.clone(),
            language: if rng.random_bool(0.85) { "en-US" } else { "es-US" }.into(),
            ehr_context: Some(EhrContext {
                patient_id: Some(patient_ref(source.id)),
                ..EhrContext::default()
            }),
            created_at: ts(created),
            updated_at: ts(created + Duration::days(rng.random_range(0..20))),
        });
    }
    let mut used: BTreeSet<(&str, &str)> = BTreeSet::new();
    while patients.len() < wanted {
        let first = pick_str(rng, FIRST_NAMES);
        let last = pick_str(rng, LAST_NAMES);
        if !used.insert((first, last)) && used.len() < FIRST_NAMES.len() * LAST_NAMES.len() / 2 {
            continue;
        }
        let created = now - Duration::days(rng.random_range(1..200)) - Duration::minutes(rng.random_range(0..1440));
        let local: String = format!("{first}.{last}")
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let has_phone = rng.random_bool(0.8);
        patients.push(Patient {
            id: prefixed_id(rng, "pat"),
            first_name: first.into(),
            last_name: last.into(),
            email: format!("{local}@example.net"),
            phone: if has_phone {
                format!("+1555{:07}", rng.random_range(0..10_000_000u32))
            } else {
                String::new()
            },
            date_of_birth: if rng.random_bool(0.7) {
                let year = rng.random_range(1940..2010);
                NaiveDate::from_ymd_opt(year, rng.random_range(1..=12), rng.random_range(1..=28))
                    .map(|d| d.format("%Y-%m-%d").to_string())
            } else {
                None
            },
            language: "en-US".into(),
            ehr_context: None,
            created_at: ts(created),
            updated_at: ts(created),
        });
    }
    patients
}

/// What the generators share.
struct Ctx<'a> {
    config: &'a ZoomSimConfig,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    providers: &'a [Provider],
    patients: &'a [Patient],
}

impl Ctx<'_> {
    /// EHR doctor id → provider index.
    fn provider_for_doctor(&self) -> BTreeMap<String, usize> {
        self.providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.ehr_context.as_ref()?.provider_id.clone()?, i)))
            .collect()
    }

    /// EHR patient reference → patient index.
    fn patient_for_ehr(&self) -> BTreeMap<String, usize> {
        self.patients
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.ehr_context.as_ref()?.patient_id.clone()?, i)))
            .collect()
    }

    /// Past and future EHR appointments with their UTC start, in EHR order.
    fn appointments(&self) -> Vec<(&EhrAppointment, DateTime<Utc>)> {
        self.config
            .ehr
            .appointments
            .iter()
            .filter_map(|a| Some((a, local_to_utc(parse_local(&a.scheduled_time)?, self.tz))))
            .collect()
    }
}

/// The plan of one visit before it is built.
struct VisitPlan {
    status: VisitStatus,
    start: DateTime<Utc>,
    duration: i64,
    patient: usize,
    provider: usize,
    ehr: Option<EhrContext>,
}

fn gen_visits(rng: &mut ChaCha20Rng, ctx: &Ctx) -> Vec<Visit> {
    let total = ctx.config.visits;
    if total == 0 || ctx.patients.is_empty() || ctx.providers.is_empty() {
        return Vec::new();
    }
    let now = ctx.now;
    let quarter = round_down_15(now);
    let mut plans: Vec<VisitPlan> = Vec::with_capacity(total);
    let random_patient = |rng: &mut ChaCha20Rng| rng.random_range(0..ctx.patients.len());
    let random_provider = |rng: &mut ChaCha20Rng| rng.random_range(0..ctx.providers.len());

    // Statuses that time alone would rarely produce: patients waiting and visits in progress
    // right now, no-shows and cancellations.
    let forced = [
        (VisitStatus::Waiting, (total / 25).max(1)),
        (VisitStatus::InProgress, (total / 25).max(1)),
        (VisitStatus::NoShow, (total / 15).max(1)),
        (VisitStatus::Cancelled, (total / 15).max(1)),
        (VisitStatus::Completed, (total / 20).max(1)),
        (VisitStatus::Scheduled, (total / 20).max(1)),
    ];
    // Patients in the waiting room or in a visit right now: one visit each.
    let mut busy: BTreeSet<usize> = BTreeSet::new();
    'forced: for (status, count) in forced {
        for i in 0..count {
            if plans.len() >= total {
                break 'forced;
            }
            let mut patient = random_patient(rng);
            if matches!(status, VisitStatus::Waiting | VisitStatus::InProgress) {
                for _ in 0..20 {
                    if busy.insert(patient) {
                        break;
                    }
                    patient = random_patient(rng);
                }
            }
            let start = match status {
                VisitStatus::Waiting => quarter + Duration::minutes(15 * (i as i64 % 2)),
                VisitStatus::InProgress => quarter - Duration::minutes(15),
                VisitStatus::NoShow | VisitStatus::Completed => business_time(rng, ctx, -40, -1),
                VisitStatus::Cancelled if i % 2 == 0 => business_time(rng, ctx, -40, -1),
                VisitStatus::Cancelled | VisitStatus::Scheduled => business_time(rng, ctx, 1, 30),
            };
            plans.push(VisitPlan {
                status,
                start,
                duration: *[20i64, 30, 30, 45].choose(rng).unwrap_or(&30),
                patient,
                provider: random_provider(rng),
                ehr: None,
            });
        }
    }

    // About half of the rest are scheduled for EHR appointments of mirrored patients.
    let doctors = ctx.provider_for_doctor();
    let ehr_patients = ctx.patient_for_ehr();
    let mut candidates: Vec<(&EhrAppointment, DateTime<Utc>)> = ctx
        .appointments()
        .into_iter()
        .filter(|(a, start)| {
            *start >= now - Duration::days(60)
                && *start <= now + Duration::days(30)
                && doctors.contains_key(&practitioner_ref(a.doctor))
                && ehr_patients.contains_key(&patient_ref(a.patient))
        })
        .collect();
    candidates.shuffle(rng);
    let linked = (total.saturating_sub(plans.len()) / 2).min(candidates.len());
    for (appointment, start) in candidates.into_iter().take(linked) {
        let duration = appointment.duration.clamp(5, 240);
        let end = start + Duration::minutes(duration);
        let status = if end <= now {
            VisitStatus::Completed
        } else if start > now {
            VisitStatus::Scheduled
        } else {
            VisitStatus::InProgress
        };
        let (Some(&provider), Some(&patient)) = (
            doctors.get(&practitioner_ref(appointment.doctor)),
            ehr_patients.get(&patient_ref(appointment.patient)),
        ) else {
            continue;
        };
        plans.push(VisitPlan {
            status,
            start,
            duration,
            patient,
            provider,
            ehr: Some(EhrContext {
                appointment_id: Some(appointment.id.clone()),
                patient_id: Some(patient_ref(appointment.patient)),
                provider_id: Some(practitioner_ref(appointment.doctor)),
            }),
        });
    }

    while plans.len() < total {
        let start = business_time(rng, ctx, -60, 30);
        let duration = *[15i64, 20, 30, 30, 45, 60].choose(rng).unwrap_or(&30);
        let end = start + Duration::minutes(duration);
        let status = if end <= now {
            weighted(
                rng,
                &[
                    (VisitStatus::Completed, 80),
                    (VisitStatus::NoShow, 10),
                    (VisitStatus::Cancelled, 10),
                ],
                VisitStatus::Completed,
            )
        } else if start > now {
            weighted(
                rng,
                &[(VisitStatus::Scheduled, 85), (VisitStatus::Cancelled, 15)],
                VisitStatus::Scheduled,
            )
        } else {
            VisitStatus::InProgress
        };
        plans.push(VisitPlan {
            status,
            start,
            duration,
            patient: random_patient(rng),
            provider: random_provider(rng),
            ehr: None,
        });
    }

    let mut visits: Vec<Visit> = plans.into_iter().map(|plan| build_visit(rng, ctx, plan)).collect();
    visits.sort_by(|a, b| a.scheduled_time.cmp(&b.scheduled_time).then_with(|| a.id.cmp(&b.id)));
    visits
}

fn round_down_15(t: DateTime<Utc>) -> DateTime<Utc> {
    let minute = t.minute() - t.minute() % 15;
    t.with_minute(minute)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// A weekday quarter-hour between 08:00 and 17:00 local, `from..=to` days from today.
fn business_time(rng: &mut ChaCha20Rng, ctx: &Ctx, from: i64, to: i64) -> DateTime<Utc> {
    let today = ctx.now.with_timezone(&ctx.tz).date_naive();
    let mut day = today + Duration::days(rng.random_range(from..=to));
    while day.weekday().number_from_monday() > 5 {
        day = if from < 0 && to < 0 {
            day - Duration::days(1)
        } else {
            day + Duration::days(1)
        };
    }
    let minutes = rng.random_range(8 * 4..17 * 4) * 15;
    let local = day.and_time(NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN));
    local_to_utc(local, ctx.tz)
}

fn build_visit(rng: &mut ChaCha20Rng, ctx: &Ctx, plan: VisitPlan) -> Visit {
    let now = ctx.now;
    let provider = &ctx.providers[plan.provider];
    let patient = &ctx.patients[plan.patient];
    let visit_type = if !provider.clinical_notes_enabled {
        if rng.random_bool(0.8) {
            VisitType::MentalHealth
        } else {
            VisitType::GroupTherapy
        }
    } else {
        weighted(rng, VISIT_TYPE_WEIGHTS, VisitType::FollowUp)
    };
    let scenario = content::scenario_for(rng, Some(visit_type));
    let number = meeting_number(rng);
    let (join_url_patient, join_url_provider) = join_urls(rng, number);
    let variant = rng.random_range(0..10);
    let meeting_id = meeting_uuid(rng, variant);
    let start = plan.start;
    let lead = Duration::days(rng.random_range(1..21)) + Duration::minutes(rng.random_range(0..600));
    let created = (start - lead).min(now - Duration::hours(1));

    let mut settings = VisitSettings::default();
    if rng.random_bool(0.06) {
        settings.recording = true;
        settings.extra.insert("recording_consent".into(), true.into());
    }
    if visit_type == VisitType::GroupTherapy {
        settings.extra.insert("max_participants".into(), 8.into());
    }
    let mut notifications = VisitNotifications {
        patient_sms: rng.random_bool(0.5) && !patient.phone.is_empty(),
        ..VisitNotifications::default()
    };
    if rng.random_bool(0.2) {
        notifications.reminder_minutes = vec![1440];
    }

    let mut visit = Visit {
        id: prefixed_id(rng, "visit"),
        patient_id: patient.id.clone(),
        provider_id: provider.id.clone(),
        scheduled_time: ts(start),
        duration_minutes: plan.duration,
        status: plan.status,
        visit_type,
        reason: scenario.reason.into(),
        join_url_patient,
        join_url_provider,
        meeting_number: number,
        meeting_id,
        settings,
        meeting_settings: MeetingSettings::default(),
        data_retention: DataRetention::default(),
        notifications,
        ehr_context: plan.ehr,
        created_at: ts(created),
        updated_at: ts(created),
        patient_joined_at: None,
        started_at: None,
        ended_at: None,
        cancelled_at: None,
    };
    let minutes = |rng: &mut ChaCha20Rng, lo: i64, hi: i64| Duration::minutes(rng.random_range(lo..=hi));
    let updated = match plan.status {
        VisitStatus::Scheduled => created,
        VisitStatus::Waiting => {
            let joined = (now - minutes(rng, 1, 9)).max(created);
            visit.patient_joined_at = Some(ts(joined));
            joined
        }
        VisitStatus::InProgress => {
            let joined = start - minutes(rng, 0, 5);
            let started = (start + minutes(rng, 0, 4)).min(now);
            visit.patient_joined_at = Some(ts(joined.min(started)));
            visit.started_at = Some(ts(started));
            started
        }
        VisitStatus::Completed => {
            let joined = start - minutes(rng, 0, 5);
            let started = start + minutes(rng, 0, 4);
            let ended = (started + Duration::minutes(plan.duration) + minutes(rng, -5, 5)).min(now);
            visit.patient_joined_at = Some(ts(joined));
            visit.started_at = Some(ts(started));
            visit.ended_at = Some(ts(ended));
            ended
        }
        VisitStatus::NoShow => (start + Duration::minutes(15)).min(now),
        VisitStatus::Cancelled => {
            let cancelled = (created + (start - created) / 2).min(now);
            visit.cancelled_at = Some(ts(cancelled));
            cancelled
        }
    };
    visit.updated_at = ts(updated.max(created));
    visit
}

/// The plan of one note before it is written.
struct NotePlan {
    owner: usize,
    start: DateTime<Utc>,
    duration: i64,
    meeting_id: Option<String>,
    meeting_number: Option<i64>,
    ehr: Option<EhrContext>,
    visit_type: Option<VisitType>,
    reason: Option<String>,
}

fn gen_notes(rng: &mut ChaCha20Rng, ctx: &Ctx, visits: &[Visit]) -> Vec<ClinicalNote> {
    let total = ctx.config.notes;
    let now = ctx.now;
    let writers: Vec<usize> = (0..ctx.providers.len())
        .filter(|i| ctx.providers[*i].clinical_notes_enabled)
        .collect();
    if total == 0 || writers.is_empty() {
        return Vec::new();
    }
    // About one note in sixteen has a sibling draft of the same meeting ("Version B").
    let siblings = total / 16;
    let singles = total - siblings;
    let mut plans: Vec<NotePlan> = Vec::with_capacity(total);
    let provider_index: BTreeMap<&str, usize> = ctx
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let doctors = ctx.provider_for_doctor();

    // 1. Completed visits whose provider writes notes (up to 40 %).
    let mut used_appointments: BTreeSet<&str> = BTreeSet::new();
    for visit in visits {
        if plans.len() >= singles * 2 / 5 {
            break;
        }
        let (VisitStatus::Completed, Some(&owner)) = (visit.status, provider_index.get(visit.provider_id.as_str()))
        else {
            continue;
        };
        if !ctx.providers[owner].clinical_notes_enabled {
            continue;
        }
        let Some(start) = visit.started_at.as_deref().and_then(parse_ts) else {
            continue;
        };
        let ehr = match &visit.ehr_context {
            Some(ehr) => Some(ehr.clone()),
            None => {
                // The patient mirrors an EHR patient but the visit was not booked from an
                // appointment: a context without `appointment_id`.
                let patient = ctx.patients.iter().find(|p| p.id == visit.patient_id);
                let patient_id = patient.and_then(|p| p.ehr_context.as_ref()?.patient_id.clone());
                let provider_id = ctx.providers[owner]
                    .ehr_context
                    .as_ref()
                    .and_then(|c| c.provider_id.clone());
                match (patient_id, provider_id) {
                    (Some(patient_id), Some(provider_id)) => Some(EhrContext {
                        appointment_id: None,
                        patient_id: Some(patient_id),
                        provider_id: Some(provider_id),
                    }),
                    _ => None,
                }
            }
        };
        if let Some(id) = visit.ehr_context.as_ref().and_then(|c| c.appointment_id.as_deref()) {
            used_appointments.insert(id);
        }
        plans.push(NotePlan {
            owner,
            start,
            duration: visit.duration_minutes,
            meeting_id: Some(visit.meeting_id.clone()),
            meeting_number: Some(visit.meeting_number),
            ehr,
            visit_type: Some(visit.visit_type),
            reason: Some(visit.reason.clone()),
        });
    }

    // 2. Past EHR appointments launched into Zoom from the EHR (up to 80 % in all).
    let mut past: Vec<(&EhrAppointment, DateTime<Utc>)> = ctx
        .appointments()
        .into_iter()
        .filter(|(a, start)| {
            *start + Duration::minutes(a.duration.clamp(5, 24 * 60)) + Duration::minutes(5) <= now
                && *start >= now - Duration::days(180)
                && !used_appointments.contains(a.id.as_str())
                && doctors.contains_key(&practitioner_ref(a.doctor))
        })
        .collect();
    past.shuffle(rng);
    let room = (singles * 4 / 5).saturating_sub(plans.len());
    for (appointment, start) in past.into_iter().take(room) {
        let Some(&owner) = doctors.get(&practitioner_ref(appointment.doctor)) else {
            continue;
        };
        plans.push(NotePlan {
            owner,
            start: start + Duration::minutes(rng.random_range(0..5)),
            duration: appointment.duration.clamp(5, 120),
            meeting_id: None,
            meeting_number: None,
            ehr: Some(EhrContext {
                appointment_id: Some(appointment.id.clone()),
                patient_id: Some(patient_ref(appointment.patient)),
                provider_id: Some(practitioner_ref(appointment.doctor)),
            }),
            visit_type: None,
            reason: None,
        });
    }

    // 3. Meetings outside any EHR workflow.
    while plans.len() < singles {
        let owner = *writers.choose(rng).unwrap_or(&writers[0]);
        let minutes_ago = rng.random_range(90..(120 * 24 * 60));
        plans.push(NotePlan {
            owner,
            start: now - Duration::minutes(minutes_ago) + Duration::seconds(rng.random_range(0..60)),
            duration: *[15i64, 20, 30, 45].choose(rng).unwrap_or(&30),
            meeting_id: None,
            meeting_number: None,
            ehr: None,
            visit_type: None,
            reason: None,
        });
    }

    let mut notes: Vec<ClinicalNote> = Vec::with_capacity(total);
    for (i, plan) in plans.iter().enumerate() {
        let note = write_note(rng, ctx, plan, i);
        notes.push(note);
    }
    let mut doubled: BTreeSet<usize> = BTreeSet::new();
    for k in 0..siblings {
        if plans.is_empty() {
            break;
        }
        let index = (k * 7 + 3) % plans.len();
        if !doubled.insert(index) {
            continue;
        }
        let first = notes[index].clone();
        let Some(created) = parse_ts(&first.note_created_time) else {
            continue;
        };
        let regenerated = created + Duration::minutes(rng.random_range(2..30));
        if regenerated > now {
            continue;
        }
        let plan = &plans[index];
        let scenario = scenario_of(rng, plan);
        notes[index].note_title = format!("{} - Version A", first.note_title);
        let mut second = first.clone();
        second.note_id = note_id(rng);
        second.note_title = format!("{} - Version B", first.note_title);
        second.note_content = content::render(rng, scenario, plan.duration);
        second.note_created_time = ts_ms(regenerated + millis(rng));
        second.note_last_modified_time = second.note_created_time.clone();
        second.is_note_completed = false;
        second.note_completed_time = None;
        notes.push(second);
    }
    notes.sort_by(|a, b| {
        a.note_created_time
            .cmp(&b.note_created_time)
            .then_with(|| a.note_id.cmp(&b.note_id))
    });
    notes
}

fn millis(rng: &mut ChaCha20Rng) -> Duration {
    Duration::milliseconds(rng.random_range(0..1000))
}

fn scenario_of(rng: &mut ChaCha20Rng, plan: &NotePlan) -> &'static Scenario {
    match plan
        .reason
        .as_deref()
        .and_then(|r| SCENARIOS.iter().find(|s| s.reason == r))
    {
        Some(scenario) => scenario,
        None => content::scenario_for(rng, plan.visit_type),
    }
}

fn write_note(rng: &mut ChaCha20Rng, ctx: &Ctx, plan: &NotePlan, index: usize) -> ClinicalNote {
    let now = ctx.now;
    let owner = &ctx.providers[plan.owner];
    let scenario = scenario_of(rng, plan);
    let start = plan.start + millis(rng);
    let spoken = (plan.duration * 60 * rng.random_range(60..=100) / 100).max(120);
    let end = (start + Duration::seconds(spoken)).min(now - Duration::seconds(30));
    let created = (end + Duration::seconds(rng.random_range(8..90)) + millis(rng)).min(now);
    let recent = now - created < Duration::hours(24);
    let completed_at = if rng.random_bool(if recent { 0.4 } else { 0.78 }) {
        Some(created + Duration::minutes(rng.random_range(2..600)) + millis(rng)).filter(|t| *t <= now)
    } else {
        None
    };
    let edited = if completed_at.is_none() && rng.random_bool(0.3) {
        Some(created + Duration::minutes(rng.random_range(1..60)) + millis(rng)).filter(|t| *t <= now)
    } else {
        None
    };
    let last_modified = completed_at.or(edited).unwrap_or(created);
    let local_date = start.with_timezone(&ctx.tz).format("%b %-d");
    let title = match rng.random_range(0..20u8) {
        0..=8 => format!("{} {}'s Zoom Meeting", owner.first_name, owner.last_name),
        9..=15 => format!("Video visit: {}", scenario.reason),
        _ => format!(
            "Telehealth – {} – {local_date}",
            type_label(plan.visit_type.unwrap_or(scenario.visit_type))
        ),
    };
    ClinicalNote {
        meeting_id: plan.meeting_id.clone().unwrap_or_else(|| meeting_uuid(rng, index)),
        meeting_number: plan.meeting_number.unwrap_or_else(|| meeting_number(rng)),
        note_id: note_id(rng),
        note_owner_user_id: owner.user_id.clone(),
        note_start_time: ts_ms(start),
        note_end_time: ts_ms(end),
        note_created_time: ts_ms(created),
        note_last_modified_time: ts_ms(last_modified),
        note_last_modified_user_id: owner.user_id.clone(),
        note_title: title,
        note_content: content::render(rng, scenario, plan.duration),
        is_note_completed: completed_at.is_some(),
        note_completed_time: completed_at.map(ts_ms),
        ehr_context: plan.ehr.clone(),
    }
}

fn type_label(visit_type: VisitType) -> &'static str {
    match visit_type {
        VisitType::InitialConsultation => "New patient consultation",
        VisitType::FollowUp => "Follow-up",
        VisitType::UrgentCare => "Urgent care",
        VisitType::MentalHealth => "Behavioral health",
        VisitType::GroupTherapy => "Group session",
        VisitType::SpecialistConsult => "Specialist consult",
    }
}

/// Content for a note created after start-up.
pub(crate) fn synthetic_note_content(rng: &mut ChaCha20Rng, visit_type: Option<VisitType>, duration: i64) -> String {
    let scenario = content::scenario_for(rng, visit_type);
    content::render(rng, scenario, duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_uuids_look_like_zoom_uuids() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for i in 0..200 {
            let uuid = meeting_uuid(&mut rng, i);
            assert_eq!(uuid.len(), 24, "{uuid}");
            assert!(uuid.ends_with("=="), "{uuid}");
            assert_eq!(BASE64.decode(uuid.as_bytes()).map(|b| b.len()).ok(), Some(16));
            match i % 10 {
                0 => assert!(uuid.starts_with('/'), "{uuid}"),
                1 => assert!(uuid.starts_with("//"), "{uuid}"),
                2..=5 => assert!(uuid.contains('/') && uuid.contains('+'), "{uuid}"),
                _ => {}
            }
        }
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(normalize_phone("(212) 555-0143"), "+12125550143");
        assert_eq!(normalize_phone("1-303-555-0100"), "+13035550100");
        assert_eq!(normalize_phone("+44 20 7946 0958"), "+44 20 7946 0958");
        assert_eq!(normalize_phone(""), "");
    }
}
