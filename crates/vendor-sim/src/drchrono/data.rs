//! Deterministic synthetic practice: doctors, offices, patients, appointments, clinical notes and
//! documents, all drawn from one ChaCha stream seeded by [`DrChronoSimConfig::seed`].
//!
//! The synthetic clock stands at noon on the anchor date: appointments before it are in the past
//! (completed, cancelled, no-shows), those after it are booked; `created_at`/`updated_at` never
//! lie after it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::DrChronoSimConfig;
use super::wire::*;

/// Every appointment status of the doc, including the empty one.
pub const APPOINTMENT_STATUSES: &[&str] = &[
    "",
    "Arrived",
    "Checked In",
    "In Room",
    "Cancelled",
    "Complete",
    "Confirmed",
    "In Session",
    "No Show",
    "Not Confirmed",
    "Rescheduled",
];

/// Patient races of the doc.
pub const RACES: &[&str] = &["blank", "indian", "asian", "black", "hawaiian", "white", "declined"];

/// Patient ethnicities of the doc.
pub const ETHNICITIES: &[&str] = &["blank", "hispanic", "not_hispanic", "declined"];

/// Preferred languages the generator uses (ISO 639-2 alpha-3, plus "blank" and "").
pub const LANGUAGES: &[&str] = &[
    "eng", "spa", "zho", "vie", "fra", "deu", "ara", "rus", "kor", "por", "blank", "",
];

/// The truth behind the simulator: every object it serves, in id order.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Dataset {
    pub patients: Vec<Patient>,
    pub doctors: Vec<Doctor>,
    pub offices: Vec<Office>,
    pub appointments: Vec<Appointment>,
    pub clinical_notes: Vec<ClinicalNote>,
    pub documents: Vec<Document>,
}

impl Dataset {
    /// Rewrites the origin of the file URLs (`document`, `clinical_note.pdf`) from `from` to `to`.
    pub(crate) fn rebase_media(&mut self, from: &str, to: &str) {
        fn rebase(url: &mut String, from: &str, to: &str) {
            if let Some(rest) = url.strip_prefix(from) {
                *url = format!("{to}{rest}");
            }
        }
        for document in &mut self.documents {
            rebase(&mut document.document, from, to);
        }
        for appointment in &mut self.appointments {
            if let Some(note) = &mut appointment.clinical_note {
                rebase(&mut note.pdf, from, to);
            }
        }
    }
}

/// Formats a timestamp the way the doc does: ISO 8601 without zone or fraction.
pub fn fmt_ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The synthetic "now": noon on the anchor date.
pub fn synthetic_now(anchor: NaiveDate) -> NaiveDateTime {
    anchor.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN))
}

struct Region {
    cities: &'static [(&'static str, &'static str, &'static str, &'static [&'static str])],
    practice: &'static str,
}

const REGION_EAST: Region = Region {
    cities: &[
        ("New York", "NY", "100", &["212", "646"]),
        ("Brooklyn", "NY", "112", &["718", "347"]),
        ("Yonkers", "NY", "107", &["914"]),
        ("Jersey City", "NJ", "073", &["201"]),
        ("Hoboken", "NJ", "070", &["201", "551"]),
    ],
    practice: "Hudson Valley Family Health",
};
const REGION_CENTRAL: Region = Region {
    cities: &[
        ("Chicago", "IL", "606", &["312", "773"]),
        ("Evanston", "IL", "602", &["847"]),
        ("Oak Park", "IL", "603", &["708"]),
        ("Naperville", "IL", "605", &["630"]),
    ],
    practice: "Lakeshore Family Health",
};
const REGION_MOUNTAIN: Region = Region {
    cities: &[
        ("Denver", "CO", "802", &["303", "720"]),
        ("Aurora", "CO", "800", &["303"]),
        ("Boulder", "CO", "803", &["303"]),
        ("Lakewood", "CO", "802", &["720"]),
    ],
    practice: "Front Range Family Health",
};
const REGION_WEST: Region = Region {
    cities: &[
        ("Los Angeles", "CA", "900", &["213", "323"]),
        ("Pasadena", "CA", "911", &["626"]),
        ("Santa Monica", "CA", "904", &["310"]),
        ("Long Beach", "CA", "908", &["562"]),
    ],
    practice: "Pacific Coast Family Health",
};

fn region_for(timezone: &str) -> &'static Region {
    match timezone {
        "America/Chicago" => &REGION_CENTRAL,
        "America/Denver" | "America/Phoenix" => &REGION_MOUNTAIN,
        "America/Los_Angeles" => &REGION_WEST,
        _ => &REGION_EAST,
    }
}

const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Park Ave",
    "Washington Blvd",
    "Lincoln Rd",
    "Elm St",
    "Highland Ave",
    "Riverside Dr",
    "Church St",
    "Sunset Blvd",
    "Lake St",
    "Hillcrest Rd",
    "2nd Ave",
];

struct Culture {
    female: &'static [&'static str],
    male: &'static [&'static str],
    last: &'static [&'static str],
    language: &'static str,
    weight: u32,
}

const CULTURES: &[Culture] = &[
    Culture {
        female: &[
            "Mary",
            "Patricia",
            "Jennifer",
            "Linda",
            "Elizabeth",
            "Susan",
            "Jessica",
            "Sarah",
            "Karen",
            "Emily",
            "Olivia",
            "Hannah",
        ],
        male: &[
            "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Daniel", "Noah",
            "Ethan",
        ],
        last: &[
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
            "Moore", "Jackson", "White", "Harris", "Thompson",
        ],
        language: "eng",
        weight: 40,
    },
    Culture {
        female: &["Siobhán", "Aoife", "Niamh", "Maeve", "Ciara"],
        male: &["Seán", "Liam", "Patrick", "Conor", "Declan"],
        last: &["O'Brien", "O'Connor", "Murphy", "Kelly", "D'Arcy"],
        language: "eng",
        weight: 6,
    },
    Culture {
        female: &["María", "Sofía", "Lucía", "Ana", "Isabel", "Camila", "Valentina"],
        male: &["José", "Luis", "Carlos", "Miguel", "Jorge", "Andrés", "Martín"],
        last: &[
            "García",
            "Rodríguez",
            "Martínez",
            "Hernández",
            "López",
            "González",
            "Núñez",
            "Peña",
            "Ibáñez",
            "Pérez",
        ],
        language: "spa",
        weight: 18,
    },
    Culture {
        female: &["Linh", "Thảo", "Ngọc", "Hoa", "Mai", "Trang"],
        male: &["Minh", "Tuấn", "Bảo", "Huy", "Long", "Nam"],
        last: &["Nguyen", "Tran", "Pham", "Le", "Vo", "Dang"],
        language: "vie",
        weight: 8,
    },
    Culture {
        female: &["Mei", "Xiu", "Yan", "Li Na", "Jing"],
        male: &["Wei", "Jun", "Hao", "Lei", "Zhi Wei"],
        last: &["Chen", "Wang", "Li", "Zhang", "Liu", "Huang"],
        language: "zho",
        weight: 7,
    },
    Culture {
        female: &["Chloé", "Amélie", "Camille", "Léa"],
        male: &["Pierre", "Louis", "Julien", "Théo"],
        last: &["Dubois", "Lefèvre", "Moreau", "Laurent"],
        language: "fra",
        weight: 4,
    },
    Culture {
        female: &["Anna", "Lena", "Greta", "Sophie"],
        male: &["Lukas", "Jonas", "Felix", "Jürgen"],
        last: &["Müller", "Schmidt", "Schneider", "Fischer"],
        language: "deu",
        weight: 4,
    },
    Culture {
        female: &["Aisha", "Fatima", "Layla", "Mariam"],
        male: &["Omar", "Ahmed", "Youssef", "Khalid"],
        last: &["Hassan", "Khan", "Haddad", "Al-Sayed", "Mansour"],
        language: "ara",
        weight: 5,
    },
    Culture {
        female: &["Olga", "Natalia", "Svetlana", "Irina"],
        male: &["Dmitri", "Ivan", "Sergei", "Alexei"],
        last: &["Ivanov", "Petrov", "Smirnov", "Volkov"],
        language: "rus",
        weight: 4,
    },
    Culture {
        female: &["Ji-woo", "Seo-yeon", "Min-ji"],
        male: &["Min-jun", "Ji-ho", "Hyun-woo"],
        last: &["Kim", "Park", "Choi", "Jung"],
        language: "kor",
        weight: 3,
    },
    Culture {
        female: &["Beatriz", "Inês", "Mariana"],
        male: &["João", "Tiago", "Rafael"],
        last: &["Silva", "Santos", "Oliveira", "Conceição"],
        language: "por",
        weight: 2,
    },
];

const NEUTRAL_FIRST: &[&str] = &["Alex", "Jordan", "Taylor", "Riley", "Casey", "Sam", "Avery"];
const NICK_NAMES: &[(&str, &str)] = &[
    ("William", "Bill"),
    ("Robert", "Bob"),
    ("Elizabeth", "Liz"),
    ("Michael", "Mike"),
    ("Patricia", "Pat"),
    ("Richard", "Rick"),
    ("José", "Pepe"),
    ("Daniel", "Danny"),
    ("Jennifer", "Jen"),
    ("Alexei", "Sasha"),
];

const SPECIALTIES: &[&str] = &[
    "Internist",
    "Pediatrician",
    "Cardiologist",
    "Dermatologist",
    "Endocrinologist",
    "Obstetrician/Gynecologist",
    "Psychiatrist",
    "Nurse Practitioner",
    "Orthopedic Surgeon",
    "Gastroenterologist",
    "Neurologist",
    "Pulmonologist",
    "Rheumatologist",
];

struct Insurer {
    company: &'static str,
    payer_id: &'static str,
    plans: &'static [(&'static str, &'static str)],
}

const INSURERS: &[Insurer] = &[
    Insurer {
        company: "Aetna",
        payer_id: "60054",
        plans: &[("Aetna Choice POS II", "POS"), ("Aetna Open Access HMO", "HMO")],
    },
    Insurer {
        company: "Cigna",
        payer_id: "62308",
        plans: &[("Cigna Open Access Plus", "PPO")],
    },
    Insurer {
        company: "UnitedHealthcare",
        payer_id: "87726",
        plans: &[("UHC Choice Plus", "PPO"), ("UHC Navigate", "HMO")],
    },
    Insurer {
        company: "Humana",
        payer_id: "61101",
        plans: &[("Humana Gold Plus", "HMO")],
    },
    Insurer {
        company: "Medicare",
        payer_id: "13202",
        plans: &[("Medicare Part B", "Medicare Part B")],
    },
    Insurer {
        company: "Blue Cross Blue Shield",
        payer_id: "00803",
        plans: &[("BlueCard PPO", "PPO"), ("Blue Advantage HMO", "HMO")],
    },
];

/// Who a visit reason suits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    Anyone,
    Adults,
    Children,
}

/// A reason for a visit and what the clinician concludes.
struct VisitReason {
    reason: &'static str,
    assessment: &'static str,
    icd10: &'static str,
    plan: &'static str,
    audience: Audience,
}

const fn visit(
    reason: &'static str,
    assessment: &'static str,
    icd10: &'static str,
    plan: &'static str,
    audience: Audience,
) -> VisitReason {
    VisitReason {
        reason,
        assessment,
        icd10,
        plan,
        audience,
    }
}

/// The first entry is the fallback for appointments without a reason.
const VISIT_REASONS: &[VisitReason] = &[
    visit(
        "Follow-up visit",
        "Encounter for follow-up examination",
        "Z09",
        "Return as needed.",
        Audience::Anyone,
    ),
    visit(
        "Annual physical",
        "Routine adult health examination",
        "Z00.00",
        "Age-appropriate screening ordered. Continue healthy diet and exercise.",
        Audience::Adults,
    ),
    visit(
        "Hypertension follow-up",
        "Essential hypertension",
        "I10",
        "Continue lisinopril 10 mg daily. Keep a home blood pressure log.",
        Audience::Adults,
    ),
    visit(
        "Diabetes check",
        "Type 2 diabetes mellitus without complications",
        "E11.9",
        "Order HbA1c. Continue metformin 500 mg twice daily.",
        Audience::Adults,
    ),
    visit(
        "Flu-like symptoms",
        "Influenza-like illness",
        "J11.1",
        "Supportive care, fluids and rest. Return if fever persists beyond 3 days.",
        Audience::Anyone,
    ),
    visit(
        "Lower back pain",
        "Low back pain, unspecified",
        "M54.50",
        "Ibuprofen 400 mg as needed. Refer to physical therapy.",
        Audience::Adults,
    ),
    visit(
        "Medication review",
        "Long-term drug therapy",
        "Z79.899",
        "Medication list reconciled; duplicate therapy discontinued.",
        Audience::Adults,
    ),
    visit(
        "Skin rash",
        "Contact dermatitis, unspecified cause",
        "L25.9",
        "Hydrocortisone 1% cream twice daily for 7 days. Avoid the irritant.",
        Audience::Anyone,
    ),
    visit(
        "Sore throat",
        "Acute pharyngitis",
        "J02.9",
        "Rapid strep test negative. Salt-water gargles, acetaminophen as needed.",
        Audience::Anyone,
    ),
    visit(
        "Anxiety follow-up",
        "Generalized anxiety disorder",
        "F41.1",
        "Continue sertraline 50 mg daily. Referral to counseling.",
        Audience::Adults,
    ),
    visit(
        "Asthma follow-up",
        "Mild intermittent asthma, uncomplicated",
        "J45.20",
        "Continue albuterol inhaler as needed. Inhaler technique reviewed.",
        Audience::Anyone,
    ),
    visit(
        "Lab results review",
        "Hyperlipidemia, unspecified",
        "E78.5",
        "Start atorvastatin 20 mg daily. Repeat lipid panel in 3 months.",
        Audience::Adults,
    ),
    visit(
        "Knee pain",
        "Pain in right knee",
        "M25.561",
        "Rest, ice and compression. X-ray of the right knee ordered.",
        Audience::Adults,
    ),
    visit(
        "Headache",
        "Tension-type headache, not intractable",
        "G44.209",
        "Acetaminophen as needed. Keep a headache diary.",
        Audience::Anyone,
    ),
    visit(
        "New patient visit",
        "Encounter for general examination",
        "Z00.00",
        "Outside records requested. Baseline labs ordered.",
        Audience::Anyone,
    ),
    visit(
        "Well-child visit",
        "Routine child health examination",
        "Z00.129",
        "Vaccines up to date per schedule. Growth and development normal.",
        Audience::Children,
    ),
];

fn age_in_years(date_of_birth: Option<&str>, on: NaiveDate) -> Option<i64> {
    let dob = NaiveDate::parse_from_str(date_of_birth?, "%Y-%m-%d").ok()?;
    Some(i64::from(on.years_since(dob)?))
}

const BREAK_REASONS: &[&str] = &["Lunch", "Staff meeting", "Admin time", "Out of office"];

const APPOINTMENT_NOTES: &[&str] = &[
    "Patient prefers morning appointments.",
    "Bring previous lab results.",
    "Interpreter requested.",
    "Fasting required for labs.",
    "Telehealth link sent by email.",
    "Running 10 min late per phone call.",
    "Needs wheelchair access.",
];

const COLORS: &[&str] = &["", "#1E90FF", "#32CD32", "#FFA500", "#BA55D3", "rgb(220, 20, 60)"];

const DOCUMENT_KINDS: &[(&str, &[&str])] = &[
    ("Lab results - CBC", &["lab", "cbc"]),
    ("Lab results - Lipid panel", &["lab", "lipids"]),
    ("Chest X-ray report", &["imaging", "radiology"]),
    ("Referral letter - Cardiology", &["referral"]),
    ("Insurance card (front and back)", &["insurance"]),
    ("Signed consent form", &["consent"]),
    ("Hospital discharge summary", &["discharge", "hospital"]),
    ("Immunization record", &["immunization"]),
    ("Outside records from previous PCP", &["records"]),
    ("MRI lumbar spine report", &["imaging", "mri"]),
    ("ECG tracing", &["cardiology", "ecg"]),
    ("Patient intake questionnaire", &[]),
];

const RELATIONS: &[&str] = &[
    "Spouse", "Mother", "Father", "Daughter", "Son", "Sibling", "Friend", "Partner",
];

const FLAG_TYPES: &[(&str, &str, i64)] = &[
    ("Fall risk", "#FF4500", 1),
    ("Allergy alert", "#DC143C", 1),
    ("Needs interpreter", "#1E90FF", 2),
    ("Balance due", "#DAA520", 3),
];

const CUSTOM_DEMOGRAPHICS: &[(i64, &[&str])] = &[
    (7001, &["Married", "Single", "Divorced", "Widowed"]),
    (7002, &["Phone", "Email", "Text message", "Portal"]),
];

/// Sections of a clinical note template: (name, field ids).
type TemplateSections = &'static [(&'static str, &'static [i64])];

/// (template id, sections)
const NOTE_TEMPLATES: &[(i64, TemplateSections)] = &[
    (
        9101,
        &[
            ("Subjective", &[310_101, 310_102]),
            ("Objective", &[310_111]),
            ("Assessment", &[310_121]),
            ("Plan", &[310_131]),
        ],
    ),
    (
        9102,
        &[
            ("Chief Complaint", &[310_201]),
            ("History of Present Illness", &[310_211]),
            ("Review of Systems", &[310_221]),
            ("Physical Exam", &[310_231, 310_232]),
            ("Assessment", &[310_241]),
            ("Plan", &[310_251]),
        ],
    ),
];

fn ordinal_rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn pick<'a, T>(rng: &mut ChaCha20Rng, items: &'a [T], fallback: &'a T) -> &'a T {
    items.choose(rng).unwrap_or(fallback)
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
        draw -= *weight;
    }
    fallback
}

/// Hands out increasing ids with small random gaps (ids are not contiguous in a real practice).
struct IdSeq(i64);

impl IdSeq {
    fn take(&mut self, rng: &mut ChaCha20Rng) -> i64 {
        let id = self.0;
        self.0 += rng.random_range(1..=4);
        id
    }
}

fn phone(rng: &mut ChaCha20Rng, area_codes: &[&'static str]) -> String {
    let area = pick_str(rng, area_codes);
    let area = if area.is_empty() { "555" } else { area };
    // 555-0100 .. 555-0199 are reserved for fiction.
    format!("({area}) 555-01{:02}", rng.random_range(0..100))
}

/// A 10-digit NPI whose last digit is the Luhn check digit over "80840" + the first nine.
fn npi(rng: &mut ChaCha20Rng) -> String {
    let mut digits: Vec<u32> = vec![rng.random_range(1..=2)];
    digits.extend((0..8).map(|_| rng.random_range(0..10)));
    let payload: Vec<u32> = [8, 0, 8, 4, 0].iter().copied().chain(digits.iter().copied()).collect();
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                *d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from_digit(*d, 10).unwrap_or('0')).collect()
}

/// Uppercase ASCII letters of a name, with the accents the generator uses folded away.
fn ascii_letters(name: &str) -> String {
    name.chars()
        .filter_map(|c| {
            let folded = match c {
                'á' | 'à' | 'ả' | 'ã' | 'â' | 'ạ' | 'Á' => 'a',
                'é' | 'è' | 'ê' | 'É' => 'e',
                'í' | 'ì' | 'Í' => 'i',
                'ó' | 'ò' | 'ọ' | 'ô' | 'õ' | 'Ó' => 'o',
                'ú' | 'ù' | 'ü' | 'ấ' | 'Ú' => 'u',
                'ñ' | 'Ñ' => 'n',
                'ç' => 'c',
                other => other,
            };
            folded.is_ascii_alphabetic().then(|| folded.to_ascii_uppercase())
        })
        .collect()
}

fn email_local(first: &str, last: &str) -> String {
    format!(
        "{}.{}",
        ascii_letters(first).to_lowercase(),
        ascii_letters(last).to_lowercase()
    )
}

fn add_days(date: NaiveDate, days: i64) -> NaiveDate {
    if days >= 0 {
        date.checked_add_days(Days::new(days.unsigned_abs())).unwrap_or(date)
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs())).unwrap_or(date)
    }
}

fn at(date: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(hour.min(23), minute.min(59), 0).unwrap_or(NaiveTime::MIN))
}

/// A business-hours moment on `date`.
fn business_time(rng: &mut ChaCha20Rng, date: NaiveDate) -> NaiveDateTime {
    let minutes = rng.random_range(8 * 60..18 * 60);
    at(date, minutes / 60, minutes % 60) + Duration::seconds(rng.random_range(0..60))
}

struct OfficeHours {
    start_minute: u32,
    end_minute: u32,
}

/// Generates the whole dataset. `media_origin` prefixes file URLs.
pub fn generate(config: &DrChronoSimConfig, media_origin: &str) -> Dataset {
    let mut rng = ordinal_rng(config.seed);
    let anchor = config.anchor;
    let now = synthetic_now(anchor);
    let region = region_for(&config.timezone);

    let doctors = gen_doctors(&mut rng, config, region);
    let (offices, hours) = gen_offices(&mut rng, config, region, &doctors);
    let mut patients = gen_patients(&mut rng, config, region, &doctors, now);
    let (mut appointments, seen_at) = gen_appointments(&mut rng, config, &doctors, &offices, &hours, &patients, now);
    let clinical_notes = gen_clinical_notes(
        &mut rng,
        config,
        &mut appointments,
        &seen_at,
        &patients,
        &doctors,
        now,
        media_origin,
    );
    let documents = gen_documents(&mut rng, config, &patients, &appointments, now, media_origin);

    // `offices`: every office the patient has been to.
    let mut visited: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for appointment in &appointments {
        if let (Some(patient), false) = (appointment.patient, appointment.deleted_flag) {
            visited.entry(patient).or_default().insert(appointment.office);
        }
    }
    for patient in &mut patients {
        patient.offices = visited
            .get(&patient.id)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
    }

    Dataset {
        patients,
        doctors,
        offices,
        appointments,
        clinical_notes,
        documents,
    }
}

fn gen_doctors(rng: &mut ChaCha20Rng, config: &DrChronoSimConfig, region: &Region) -> Vec<Doctor> {
    let count = config.doctors.max(1);
    let mut ids = IdSeq(301_000 + rng.random_range(0..500));
    let group_npi = npi(rng);
    let area_codes: Vec<&'static str> = region.cities.iter().flat_map(|c| c.3.iter().copied()).collect();
    let mut used_names = BTreeSet::new();
    (0..count)
        .map(|i| {
            let (first, last) = loop {
                let culture = pick(rng, CULTURES, &CULTURES[0]);
                let female = rng.random_bool(0.5);
                let first = pick_str(rng, if female { culture.female } else { culture.male });
                let last = pick_str(rng, culture.last);
                if used_names.insert((first, last)) || used_names.len() > 1000 {
                    break (first, last);
                }
            };
            let specialty = if i == 0 {
                "Family Practitioner"
            } else {
                pick_str(rng, SPECIALTIES)
            };
            let is_np = specialty == "Nurse Practitioner";
            let only_group_npi = i % 4 == 2;
            let email_domain = "example.com";
            Doctor {
                id: ids.take(rng),
                first_name: first.to_string(),
                last_name: last.to_string(),
                suffix: if is_np {
                    "NP".into()
                } else if rng.random_bool(0.3) {
                    pick_str(rng, &["MD", "DO", "MD, PhD"]).into()
                } else {
                    String::new()
                },
                specialty: specialty.into(),
                job_title: if is_np { "Nurse Practitioner" } else { "Physician" }.into(),
                npi_number: if only_group_npi { String::new() } else { npi(rng) },
                group_npi_number: if only_group_npi || rng.random_bool(0.5) {
                    group_npi.clone()
                } else {
                    String::new()
                },
                cell_phone: if rng.random_bool(0.6) {
                    phone(rng, &area_codes)
                } else {
                    String::new()
                },
                home_phone: String::new(),
                office_phone: phone(rng, &area_codes),
                email: format!("dr.{}@{email_domain}", email_local(first, last)),
                website: if i == 0 {
                    "https://www.example.com/our-team".into()
                } else {
                    String::new()
                },
                profile_picture: String::new(),
                practice_group: Some(5501),
                practice_group_name: region.practice.into(),
                timezone: config.timezone.clone(),
                country: "US".into(),
                is_account_suspended: count >= 5 && i == count - 1,
            }
        })
        .collect()
}

fn gen_offices(
    rng: &mut ChaCha20Rng,
    config: &DrChronoSimConfig,
    region: &Region,
    doctors: &[Doctor],
) -> (Vec<Office>, Vec<OfficeHours>) {
    const NAMES: &[&str] = &[
        "Downtown Clinic",
        "Northside Office",
        "Riverside Medical Suite",
        "Westfield Clinic",
        "Eastgate Family Practice",
        "Hilltop Health Center",
        "Harbor View Office",
        "Parkside Clinic",
    ];
    let count = config.offices.max(1);
    let mut ids = IdSeq(88_000 + rng.random_range(0..300));
    let mut offices = Vec::with_capacity(count);
    let mut hours = Vec::with_capacity(count);
    for i in 0..count {
        let city = pick(rng, region.cities, &region.cities[0]);
        let start_hour: u32 = if rng.random_bool(0.5) { 8 } else { 9 };
        let end_hour: u32 = if rng.random_bool(0.5) { 17 } else { 18 };
        let rooms = rng.random_range(2..=4);
        let online = i % 2 == 0;
        let exam_rooms = (1..=rooms)
            .map(|index| ExamRoom {
                index,
                name: if index == rooms && rooms > 2 {
                    "Procedure Room".into()
                } else {
                    format!("Exam Room {index}")
                },
                online_scheduling: online && index <= 2,
            })
            .collect();
        let online_timeslots = if online {
            (0..5u8)
                .flat_map(|day| {
                    [(9u8, 0u8), (9, 30), (14, 0), (14, 30)]
                        .into_iter()
                        .map(move |(hour, minute)| OnlineTimeslot { day, hour, minute })
                })
                .collect()
        } else {
            Vec::new()
        };
        let name = NAMES
            .get(i)
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("Satellite Office {}", i + 1));
        offices.push(Office {
            id: ids.take(rng),
            name,
            address: format!(
                "{} {}, Suite {}",
                rng.random_range(10..2000),
                pick_str(rng, STREETS),
                rng.random_range(100..500)
            ),
            city: city.0.into(),
            state: city.1.into(),
            zip_code: format!("{}{:02}", city.2, rng.random_range(1..99)),
            country: "US".into(),
            phone_number: phone(rng, city.3),
            fax_number: if rng.random_bool(0.8) {
                phone(rng, city.3)
            } else {
                String::new()
            },
            doctor: doctors[i % doctors.len()].id,
            start_time: format!("{start_hour:02}:00:00"),
            end_time: format!("{end_hour:02}:00:00"),
            archived: count >= 3 && i == count - 1,
            online_scheduling: online,
            exam_rooms,
            online_timeslots,
        });
        hours.push(OfficeHours {
            start_minute: start_hour * 60,
            end_minute: end_hour * 60,
        });
    }
    (offices, hours)
}

fn empty_insurance() -> Insurance {
    Insurance::default()
}

#[allow(clippy::too_many_arguments)]
fn insurance(
    rng: &mut ChaCha20Rng,
    first: &str,
    last: &str,
    dob: Option<&str>,
    gender: &str,
    address: (&str, &str, &str, &str),
    self_subscriber: bool,
) -> Insurance {
    let insurer = pick(rng, INSURERS, &INSURERS[0]);
    let (plan, plan_type) = *pick(rng, insurer.plans, &("", ""));
    let (sub_first, sub_dob, relationship) = if self_subscriber {
        (first.to_string(), dob.map(str::to_string), "18")
    } else {
        (
            pick_str(rng, CULTURES[0].male).to_string(),
            Some("1970-05-14".to_string()),
            "19",
        )
    };
    Insurance {
        insurance_company: insurer.company.into(),
        insurance_payer_id: insurer.payer_id.into(),
        insurance_plan_name: plan.into(),
        insurance_plan_type: plan_type.into(),
        insurance_id_number: format!(
            "{}{:09}",
            ascii_letters(insurer.company).chars().take(3).collect::<String>(),
            rng.random_range(0..1_000_000_000u64)
        ),
        insurance_group_number: format!("GRP{:06}", rng.random_range(0..1_000_000)),
        insurance_group_name: String::new(),
        insurance_claim_office_number: "(800) 555-0199".into(),
        is_subscriber_the_patient: self_subscriber,
        patient_relationship_to_subscriber: relationship.into(),
        subscriber_first_name: sub_first,
        subscriber_middle_name: String::new(),
        subscriber_last_name: last.into(),
        subscriber_suffix: String::new(),
        subscriber_date_of_birth: sub_dob,
        subscriber_gender: gender.into(),
        subscriber_address: address.0.into(),
        subscriber_city: address.1.into(),
        subscriber_state: address.2.into(),
        subscriber_zip_code: address.3.into(),
        subscriber_country: "US".into(),
        subscriber_social_security: String::new(),
        photo_front: None,
        photo_back: None,
    }
}

fn gen_patients(
    rng: &mut ChaCha20Rng,
    config: &DrChronoSimConfig,
    region: &Region,
    doctors: &[Doctor],
    now: NaiveDateTime,
) -> Vec<Patient> {
    let count = config.patients;
    let anchor = now.date();
    let mut ids = IdSeq(61_200_000 + rng.random_range(0..10_000));
    let culture_weights: Vec<(usize, u32)> = CULTURES.iter().enumerate().map(|(i, c)| (i, c.weight)).collect();
    let flag_types: Vec<PatientFlagType> = FLAG_TYPES
        .iter()
        .enumerate()
        .map(|(i, (name, color, priority))| PatientFlagType {
            id: 4100 + i as i64,
            name: (*name).into(),
            color: (*color).into(),
            priority: *priority,
            doctor: doctors[0].id,
            archived: false,
            created_at: fmt_ts(at(add_days(anchor, -900), 9, 0)),
            updated_at: fmt_ts(at(add_days(anchor, -900), 9, 0)),
        })
        .collect();
    let mut flag_ids = IdSeq(52_000);
    let mut patients: Vec<Patient> = Vec::with_capacity(count);
    for _ in 0..count {
        let culture = &CULTURES[weighted(rng, &culture_weights, 0)];
        let gender = weighted(rng, &[("Female", 50), ("Male", 47), ("Other", 3)], "Female");
        let first = match gender {
            "Female" => pick_str(rng, culture.female),
            "Male" => pick_str(rng, culture.male),
            _ => pick_str(rng, NEUTRAL_FIRST),
        };
        let last = pick_str(rng, culture.last);
        let middle = if rng.random_bool(0.35) {
            let pool = if gender == "Male" { culture.male } else { culture.female };
            pick_str(rng, pool).to_string()
        } else {
            String::new()
        };
        let nick = NICK_NAMES
            .iter()
            .find(|(full, _)| *full == first)
            .filter(|_| rng.random_bool(0.5))
            .map(|(_, nick)| nick.to_string())
            .unwrap_or_default();
        let age_years: i64 = weighted(rng, &[(0u8, 15), (1, 60), (2, 25)], 1) as i64;
        let age_years = match age_years {
            0 => rng.random_range(0..18),
            1 => rng.random_range(18..65),
            _ => rng.random_range(65..96),
        };
        let dob_date = add_days(anchor, -(age_years * 365 + rng.random_range(0..365)));
        let dob = if rng.random_bool(0.01) {
            None
        } else {
            Some(fmt_date(dob_date))
        };
        let city = pick(rng, region.cities, &region.cities[0]);
        let address = format!("{} {}", rng.random_range(1..9999), pick_str(rng, STREETS));
        let apartment = if rng.random_bool(0.3) {
            format!(
                " Apt {}{}",
                rng.random_range(1..30),
                pick_str(rng, &["A", "B", "C", "D"])
            )
        } else {
            String::new()
        };
        let address = format!("{address}{apartment}");
        let zip = format!("{}{:02}", city.2, rng.random_range(1..99));
        let race = match culture.language {
            "vie" | "zho" | "kor" => weighted(rng, &[("asian", 90), ("declined", 5), ("blank", 5)], "asian"),
            "ara" => weighted(
                rng,
                &[("white", 60), ("black", 10), ("declined", 15), ("blank", 15)],
                "white",
            ),
            _ => weighted(
                rng,
                &[
                    ("white", 45),
                    ("black", 20),
                    ("asian", 5),
                    ("indian", 4),
                    ("hawaiian", 3),
                    ("declined", 8),
                    ("blank", 15),
                ],
                "blank",
            ),
        };
        let ethnicity = if culture.language == "spa" {
            weighted(rng, &[("hispanic", 85), ("declined", 5), ("blank", 10)], "hispanic")
        } else {
            weighted(
                rng,
                &[("not_hispanic", 70), ("hispanic", 5), ("declined", 8), ("blank", 17)],
                "blank",
            )
        };
        let language = if culture.language == "eng" {
            weighted(rng, &[("eng", 90), ("blank", 6), ("", 4)], "eng")
        } else {
            weighted(
                rng,
                &[(culture.language, 60), ("eng", 35), ("blank", 3), ("", 2)],
                "eng",
            )
        };
        let status = weighted(rng, &[("A", 90), ("I", 7), ("D", 3)], "A");
        let doctor = pick(rng, doctors, &doctors[0]).id;
        let created_day = add_days(anchor, -rng.random_range(5..2500));
        let created = business_time(rng, created_day);
        let updated = if rng.random_bool(0.1) {
            let day = add_days(anchor, -rng.random_range(0..3));
            business_time(rng, day).min(now)
        } else {
            let span = (now - created).num_minutes().max(1);
            created + Duration::minutes(rng.random_range(0..span))
        };
        let updated = updated.max(created);
        let email = if rng.random_bool(0.85) {
            let suffix = if rng.random_bool(0.4) {
                rng.random_range(1..99).to_string()
            } else {
                String::new()
            };
            format!(
                "{}{suffix}@{}",
                email_local(first, last),
                pick_str(rng, &["example.com", "example.org", "example.net"])
            )
        } else {
            String::new()
        };
        let minor = age_years < 18;
        let (ec_name, ec_phone, ec_relation) = if rng.random_bool(0.75) || minor {
            let relation = if minor {
                pick_str(rng, &["Mother", "Father"])
            } else {
                pick_str(rng, RELATIONS)
            };
            let ec_first = pick_str(
                rng,
                if relation == "Mother" {
                    culture.female
                } else {
                    culture.male
                },
            );
            (format!("{ec_first} {last}"), phone(rng, city.3), relation.to_string())
        } else {
            (String::new(), String::new(), String::new())
        };
        let has_primary = rng.random_bool(0.75);
        let addr_tuple = (address.as_str(), city.0, city.1, zip.as_str());
        let primary_insurance = if has_primary {
            insurance(rng, first, last, dob.as_deref(), gender, addr_tuple, !minor)
        } else {
            empty_insurance()
        };
        let secondary_insurance = if has_primary && rng.random_bool(0.2) {
            insurance(rng, first, last, dob.as_deref(), gender, addr_tuple, !minor)
        } else {
            empty_insurance()
        };
        let tertiary_insurance = if secondary_insurance.insurance_company.is_empty() || !rng.random_bool(0.1) {
            empty_insurance()
        } else {
            insurance(rng, first, last, dob.as_deref(), gender, addr_tuple, !minor)
        };
        let flags_attached: Vec<PatientFlag> = if rng.random_bool(0.15) {
            let flag_type = pick(rng, &flag_types, &flag_types[0]);
            vec![PatientFlag {
                id: flag_ids.take(rng),
                flag_type: flag_type.id,
                flag_text: format!("{} - see chart", flag_type.name),
                archived: false,
                created_at: fmt_ts(updated),
                updated_at: fmt_ts(updated),
            }]
        } else {
            Vec::new()
        };
        let patient_flags = flags_attached
            .iter()
            .filter_map(|f| flag_types.iter().find(|t| t.id == f.flag_type).cloned())
            .collect();
        let mut custom_demographics = Vec::new();
        for (field_type, values) in CUSTOM_DEMOGRAPHICS {
            if rng.random_bool(0.3) {
                custom_demographics.push(CustomDemographicValue {
                    field_type: *field_type,
                    value: pick_str(rng, values).into(),
                    updated_at: fmt_ts(updated),
                });
            }
        }
        let referring_doctor = if rng.random_bool(0.25) {
            let rd_first = pick_str(rng, CULTURES[0].female);
            let rd_last = pick_str(rng, CULTURES[0].last);
            ReferringDoctor {
                first_name: rd_first.into(),
                last_name: rd_last.into(),
                specialty: pick_str(rng, SPECIALTIES).into(),
                npi: npi(rng),
                phone: phone(rng, city.3),
                email: format!("{}@example.org", email_local(rd_first, rd_last)),
                ..ReferringDoctor::default()
            }
        } else {
            ReferringDoctor::default()
        };
        let employed = !minor && rng.random_bool(0.4);
        patients.push(Patient {
            id: ids.take(rng),
            chart_id: String::new(),
            first_name: first.into(),
            middle_name: middle,
            last_name: last.into(),
            nick_name: nick,
            date_of_birth: dob,
            gender: gender.into(),
            address,
            city: city.0.into(),
            state: city.1.into(),
            zip_code: zip,
            email,
            cell_phone: if rng.random_bool(0.85) {
                phone(rng, city.3)
            } else {
                String::new()
            },
            home_phone: if rng.random_bool(0.3) {
                phone(rng, city.3)
            } else {
                String::new()
            },
            office_phone: String::new(),
            doctor,
            offices: Vec::new(),
            patient_status: status.into(),
            race: race.into(),
            ethnicity: ethnicity.into(),
            preferred_language: language.into(),
            emergency_contact_name: ec_name,
            emergency_contact_phone: ec_phone,
            emergency_contact_relation: ec_relation,
            employer: if employed {
                pick_str(
                    rng,
                    &[
                        "Acme Logistics",
                        "City School District",
                        "General Hospital",
                        "Self-employed",
                        "Riverside Bakery",
                    ],
                )
                .into()
            } else {
                String::new()
            },
            employer_address: String::new(),
            employer_city: if employed { city.0.into() } else { String::new() },
            employer_state: if employed { city.1.into() } else { String::new() },
            employer_zip_code: String::new(),
            primary_care_physician: if rng.random_bool(0.3) {
                format!(
                    "Dr. {} {}",
                    pick_str(rng, CULTURES[0].male),
                    pick_str(rng, CULTURES[0].last)
                )
            } else {
                String::new()
            },
            referring_source: pick_str(rng, &["", "", "", "Google", "Friend or family", "Insurance directory"]).into(),
            responsible_party_name: String::new(),
            responsible_party_relation: String::new(),
            responsible_party_phone: String::new(),
            responsible_party_email: String::new(),
            social_security_number: String::new(),
            default_pharmacy: if rng.random_bool(0.5) {
                format!("{:07}", rng.random_range(1_000_000..9_999_999))
            } else {
                String::new()
            },
            disable_sms_messages: rng.random_bool(0.05),
            patient_payment_profile: if has_primary {
                "Insurance".into()
            } else {
                pick_str(rng, &["", "Cash"]).into()
            },
            patient_photo: None,
            patient_photo_date: None,
            created_at: fmt_ts(created),
            updated_at: fmt_ts(updated),
            primary_insurance,
            secondary_insurance,
            tertiary_insurance,
            auto_accident_insurance: AutoAccidentInsurance::default(),
            workers_comp_insurance: WorkersCompInsurance::default(),
            custom_demographics,
            patient_flags,
            patient_flags_attached: flags_attached,
            referring_doctor,
        });
        if minor && let Some(patient) = patients.last_mut() {
            patient.responsible_party_name = patient.emergency_contact_name.clone();
            patient.responsible_party_relation = patient.emergency_contact_relation.clone();
            patient.responsible_party_phone = patient.emergency_contact_phone.clone();
        }
    }

    // Search fixtures: families sharing a name, and names with apostrophes and accents.
    let forced: &[(&str, usize)] = &[("Nguyen", 3), ("Smith", 3), ("O'Brien", 1), ("Núñez", 1)];
    let mut untouched: Vec<usize> = (0..patients.len()).collect();
    untouched.shuffle(rng);
    for (name, wanted) in forced {
        let have = patients.iter().filter(|p| p.last_name == *name).count();
        for _ in have..*wanted {
            let Some(index) = untouched.pop() else { break };
            if let Some(patient) = patients.get_mut(index) {
                patient.last_name = (*name).into();
            }
        }
    }
    ensure_each(rng, &mut patients, RACES, &mut untouched, |p| &mut p.race);
    ensure_each(rng, &mut patients, ETHNICITIES, &mut untouched, |p| &mut p.ethnicity);
    ensure_each(rng, &mut patients, LANGUAGES, &mut untouched, |p| {
        &mut p.preferred_language
    });
    ensure_each(rng, &mut patients, &["A", "I", "D"], &mut untouched, |p| {
        &mut p.patient_status
    });
    ensure_each(rng, &mut patients, &["Male", "Female", "Other"], &mut untouched, |p| {
        &mut p.gender
    });

    // Auto-accident and workers' comp cases on a few insured patients.
    for (i, patient) in patients.iter_mut().enumerate() {
        if i % 23 == 7 {
            patient.auto_accident_insurance = AutoAccidentInsurance {
                auto_accident_company: "Geico".into(),
                auto_accident_payer_id: "GEICO".into(),
                auto_accident_case_number: format!("AA-{}", patient.id),
                auto_accident_policy_number: format!("POL{:08}", patient.id % 100_000_000),
                auto_accident_date_of_accident: Some(fmt_date(add_days(anchor, -45))),
                auto_accident_state_of_occurrence: patient.state.clone(),
                auto_accident_notes: String::new(),
            };
        }
        if i % 31 == 11 && !patient.employer.is_empty() {
            patient.workers_comp_insurance = WorkersCompInsurance {
                workers_comp_company: "State Insurance Fund".into(),
                workers_comp_payer_id: "SIF01".into(),
                workers_comp_case_number: format!("WC-{}", patient.id),
                workers_comp_date_of_accident: Some(fmt_date(add_days(anchor, -80))),
                workers_comp_state_of_occurrence: patient.state.clone(),
                workers_comp_notes: String::new(),
            };
        }
    }

    // chart_id is set from the last and first names when absent, as the doc says.
    for (seq, patient) in patients.iter_mut().enumerate() {
        let last: String = ascii_letters(&patient.last_name).chars().take(2).collect();
        let first: String = ascii_letters(&patient.first_name).chars().take(2).collect();
        patient.chart_id = format!("{last:X<2}{first:X<2}{:06}", seq + 1);
    }
    patients
}

/// Makes every value of `values` occur at least once, overwriting patients taken from `spare`.
fn ensure_each(
    rng: &mut ChaCha20Rng,
    patients: &mut [Patient],
    values: &[&str],
    spare: &mut Vec<usize>,
    field: impl Fn(&mut Patient) -> &mut String,
) {
    for value in values {
        if patients.iter_mut().any(|p| field(p).as_str() == *value) {
            continue;
        }
        let index = match spare.pop() {
            Some(index) => index,
            None if !patients.is_empty() => rng.random_range(0..patients.len()),
            None => return,
        };
        if let Some(patient) = patients.get_mut(index) {
            *field(patient) = (*value).to_string();
        }
    }
}

/// Statuses of appointments a clinician has seen (they get vitals and may get a note).
fn seen(status: &str) -> bool {
    matches!(status, "Complete" | "In Session" | "In Room" | "Checked In" | "Arrived")
}

fn gen_appointments(
    rng: &mut ChaCha20Rng,
    config: &DrChronoSimConfig,
    doctors: &[Doctor],
    offices: &[Office],
    hours: &[OfficeHours],
    patients: &[Patient],
    now: NaiveDateTime,
) -> (Vec<Appointment>, Vec<Option<NaiveDateTime>>) {
    let anchor = now.date();
    let active: Vec<usize> = (0..offices.len()).filter(|i| !offices[*i].archived).collect();
    let archived: Vec<usize> = (0..offices.len()).filter(|i| offices[*i].archived).collect();
    // Each doctor works in one or two of the active offices.
    let works_at: Vec<Vec<usize>> = (0..doctors.len())
        .map(|d| {
            let mut mine = vec![active[d % active.len()]];
            if d % 2 == 0 && active.len() > 1 {
                mine.push(active[(d + 1) % active.len()]);
            }
            mine
        })
        .collect();
    let active_patients: Vec<usize> = (0..patients.len())
        .filter(|i| patients[*i].patient_status == "A")
        .collect();
    let mut occupied: BTreeSet<(usize, i64, NaiveDate, u32)> = BTreeSet::new();

    struct Draft {
        appointment: Appointment,
        start: NaiveDateTime,
        created: NaiveDateTime,
        seen_at: Option<NaiveDateTime>,
    }
    let mut drafts: Vec<Draft> = Vec::with_capacity(config.appointments);
    for _ in 0..config.appointments {
        let bucket = weighted(rng, &[(0u8, 62), (1, 3), (2, 35)], 0);
        let mut date = match bucket {
            0 => add_days(anchor, -rng.random_range(1..=120)),
            1 => anchor,
            _ => add_days(anchor, rng.random_range(1..=90)),
        };
        match date.weekday() {
            Weekday::Sun => date = add_days(date, if date > anchor { 1 } else { -2 }),
            Weekday::Sat if !rng.random_bool(0.1) => date = add_days(date, if date > anchor { 2 } else { -1 }),
            _ => {}
        }
        let is_break = patients.is_empty() || rng.random_bool(0.04);
        let patient_index = if is_break {
            None
        } else if rng.random_bool(0.95) && !active_patients.is_empty() {
            active_patients.choose(rng).copied()
        } else {
            Some(rng.random_range(0..patients.len()))
        };
        let doctor_index = match patient_index {
            Some(p) if rng.random_bool(0.75) => doctors.iter().position(|d| d.id == patients[p].doctor).unwrap_or(0),
            _ => rng.random_range(0..doctors.len()),
        };
        let office_index = if date < anchor && !archived.is_empty() && rng.random_bool(0.03) {
            archived[0]
        } else {
            works_at[doctor_index].choose(rng).copied().unwrap_or(active[0])
        };
        let office = &offices[office_index];
        let room_count = office.exam_rooms.len().max(1) as i64;
        let duration: i64 = if is_break {
            pick(rng, &[30, 60], &30).to_owned()
        } else {
            pick(rng, &[10, 15, 20, 30, 30, 30, 45, 60], &30).to_owned()
        };
        let open = hours[office_index].start_minute;
        let close = hours[office_index].end_minute;
        let slots = ((close - open) as i64 - duration).max(0) / 15 + 1;
        let mut chosen = None;
        for _ in 0..8 {
            let room = rng.random_range(1..=room_count);
            let start = open + 15 * rng.random_range(0..slots) as u32;
            let cells: Vec<u32> = (0..((duration + 14) / 15) as u32).map(|k| start + 15 * k).collect();
            if cells
                .iter()
                .all(|c| !occupied.contains(&(office_index, room, date, *c)))
            {
                for c in cells {
                    occupied.insert((office_index, room, date, c));
                }
                chosen = Some((room, start, false));
                break;
            }
        }
        let (room, start_minute, overlapping) = chosen.unwrap_or_else(|| {
            let room = rng.random_range(1..=room_count);
            (room, open + 15 * rng.random_range(0..slots) as u32, true)
        });
        let start = at(date, start_minute / 60, start_minute % 60);
        let end = start + Duration::minutes(duration);
        let status = if is_break {
            ""
        } else if end <= now && date < anchor {
            weighted(
                rng,
                &[
                    ("Complete", 70),
                    ("Cancelled", 8),
                    ("No Show", 6),
                    ("Rescheduled", 4),
                    ("", 3),
                    ("Confirmed", 3),
                    ("Checked In", 2),
                    ("Arrived", 1),
                    ("In Room", 1),
                    ("In Session", 1),
                    ("Not Confirmed", 1),
                ],
                "Complete",
            )
        } else if date == anchor && start <= now {
            weighted(
                rng,
                &[
                    ("Complete", 30),
                    ("In Session", 15),
                    ("In Room", 15),
                    ("Checked In", 15),
                    ("Arrived", 15),
                    ("No Show", 10),
                ],
                "Arrived",
            )
        } else {
            weighted(
                rng,
                &[
                    ("Confirmed", 40),
                    ("Not Confirmed", 30),
                    ("", 20),
                    ("Cancelled", 6),
                    ("Rescheduled", 4),
                ],
                "",
            )
        };
        let patient = patient_index.map(|p| &patients[p]);
        let child = patient
            .and_then(|p| age_in_years(p.date_of_birth.as_deref(), date))
            .map(|age| age < 18);
        let suitable: Vec<&VisitReason> = VISIT_REASONS
            .iter()
            .filter(|v| match (v.audience, child) {
                (Audience::Anyone, _) | (_, None) => true,
                (Audience::Children, Some(child)) => child,
                (Audience::Adults, Some(child)) => !child,
            })
            .collect();
        let visit = suitable.choose(rng).copied().unwrap_or(&VISIT_REASONS[0]);
        let created = {
            let lead_days = rng.random_range(1..=60);
            let t = business_time(rng, add_days(date, -lead_days));
            t.min(now - Duration::hours(1))
        };
        let updated = if status.is_empty() || status == "Not Confirmed" || status == "Confirmed" {
            let span = (now - created).num_minutes().max(1);
            created + Duration::minutes(rng.random_range(0..span.min(60 * 24 * 7)))
        } else if status == "Cancelled" || status == "Rescheduled" {
            let latest = start.min(now);
            let span = (latest - created).num_minutes().max(1);
            created + Duration::minutes(rng.random_range(0..span))
        } else {
            (end + Duration::minutes(rng.random_range(5..240))).min(now)
        };
        let updated = updated.max(created);
        let seen_at = (seen(status) && !is_break).then(|| (start + Duration::minutes(5)).min(now));
        let (insurer_name, insurer_payer, insurance_id) = patient
            .map(|p| {
                (
                    p.primary_insurance.insurance_company.clone(),
                    p.primary_insurance.insurance_payer_id.clone(),
                    p.primary_insurance.insurance_id_number.clone(),
                )
            })
            .unwrap_or_default();
        let (sec_name, sec_payer, sec_id) = patient
            .map(|p| {
                (
                    p.secondary_insurance.insurance_company.clone(),
                    p.secondary_insurance.insurance_payer_id.clone(),
                    p.secondary_insurance.insurance_id_number.clone(),
                )
            })
            .unwrap_or_default();
        let vitals = match seen_at {
            Some(_) => {
                let height: f64 = rng.random_range(58..=76) as f64;
                let weight: f64 = (rng.random_range(1100..=2600) as f64) / 10.0;
                let bmi = weight * 703.0 / (height * height);
                Vitals {
                    height: Some(height),
                    height_units: "inches".into(),
                    weight: Some(weight),
                    weight_units: "lbs".into(),
                    bmi: format!("{bmi:.2}"),
                    temperature: Some((rng.random_range(970..=1003) as f64) / 10.0),
                    temperature_units: "f".into(),
                    pulse: Some(rng.random_range(55..=100)),
                    respiratory_rate: Some(rng.random_range(12..=20)),
                    oxygen_saturation: Some(rng.random_range(94..=100) as f64),
                    blood_pressure_1: Some(rng.random_range(105..=150)),
                    blood_pressure_2: Some(rng.random_range(65..=95)),
                    pain: rng.random_range(0..=6).to_string(),
                    smoking_status: pick_str(rng, &["blank", "266919005", "8517006", "449868002"]).into(),
                    head_circumference: None,
                    head_circumference_units: "inches".into(),
                }
            }
            None => Vitals {
                height_units: "inches".into(),
                weight_units: "lbs".into(),
                temperature_units: "f".into(),
                head_circumference_units: "inches".into(),
                smoking_status: "blank".into(),
                ..Vitals::default()
            },
        };
        let custom_vitals = if seen_at.is_some() && rng.random_bool(0.2) {
            vec![CustomVitalValue {
                vital_type: 3301,
                value: rng.random_range(70..=140).to_string(),
            }]
        } else {
            Vec::new()
        };
        let reminders = if !is_break && created < start - Duration::days(1) {
            vec![Reminder {
                id: 0,
                scheduled_time: fmt_ts(at(add_days(start.date(), -1), 9, 0)),
                kind: pick_str(rng, &["email", "sms", "phone", "auto_call"]).into(),
            }]
        } else {
            Vec::new()
        };
        let appointment = Appointment {
            id: String::new(),
            doctor: doctors[doctor_index].id,
            office: office.id,
            exam_room: room,
            patient: patient.map(|p| p.id),
            scheduled_time: fmt_ts(start),
            duration,
            status: status.into(),
            reason: if is_break {
                pick_str(rng, BREAK_REASONS).into()
            } else if rng.random_bool(0.05) {
                String::new()
            } else {
                visit.reason.into()
            },
            notes: if !is_break && rng.random_bool(0.3) {
                pick_str(rng, APPOINTMENT_NOTES).into()
            } else {
                String::new()
            },
            color: if is_break {
                "#CCCCCC".into()
            } else {
                pick_str(rng, COLORS).into()
            },
            profile: None,
            appt_is_break: is_break,
            deleted_flag: rng.random_bool(0.03),
            allow_overlapping: overlapping,
            is_walk_in: !is_break && date <= anchor && rng.random_bool(0.03),
            is_virtual_base: false,
            recurring_appointment: false,
            base_recurring_appointment: None,
            cloned_from: None,
            supervising_provider: None,
            billing_status: if status == "Complete" {
                pick_str(rng, &["", "Bill Insurance", "Paid In Full", "Balance Due"]).into()
            } else {
                String::new()
            },
            billing_provider: None,
            billing_notes: Vec::new(),
            icd10_codes: String::new(),
            icd9_codes: String::new(),
            first_billed_date: None,
            last_billed_date: None,
            primary_insurer_payer_id: insurer_payer,
            primary_insurer_name: insurer_name,
            primary_insurance_id_number: insurance_id,
            secondary_insurer_payer_id: sec_payer,
            secondary_insurer_name: sec_name,
            secondary_insurance_id_number: sec_id,
            custom_fields: Vec::new(),
            created_at: fmt_ts(created),
            updated_at: fmt_ts(updated),
            clinical_note: None,
            custom_vitals,
            extended_updated_at: fmt_ts(updated.max(seen_at.unwrap_or(updated))),
            reminders,
            status_transitions: Vec::new(),
            vitals,
        };
        drafts.push(Draft {
            appointment,
            start,
            created,
            seen_at,
        });
    }

    // Every status of the doc occurs at least once (only matters for tiny datasets).
    for status in APPOINTMENT_STATUSES {
        if drafts.iter().any(|d| d.appointment.status == *status) {
            continue;
        }
        let counts = |drafts: &[Draft], s: &str| drafts.iter().filter(|d| d.appointment.status == s).count();
        let candidate = (0..drafts.len()).find(|i| {
            let d = &drafts[*i];
            !d.appointment.appt_is_break && counts(&drafts, &d.appointment.status) > 1
        });
        if let Some(i) = candidate {
            drafts[i].appointment.status = (*status).into();
            if !seen(status) {
                drafts[i].seen_at = None;
            }
        }
    }

    // Ids grow with creation time, as they do in the vendor's database.
    drafts.sort_by_key(|d| d.created);
    let mut ids = IdSeq(184_500_000 + rng.random_range(0..100_000));
    let mut reminder_ids = IdSeq(9_100_000);
    let mut appointments = Vec::with_capacity(drafts.len());
    let mut seen_times = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let mut appointment = draft.appointment;
        appointment.id = ids.take(rng).to_string();
        for reminder in &mut appointment.reminders {
            reminder.id = reminder_ids.take(rng);
        }
        appointment.status_transitions = transitions(&appointment, draft.start, draft.created);
        appointments.push(appointment);
        seen_times.push(draft.seen_at);
    }
    (appointments, seen_times)
}

fn transitions(appointment: &Appointment, start: NaiveDateTime, created: NaiveDateTime) -> Vec<StatusTransition> {
    let path: &[&str] = match appointment.status.as_str() {
        "" => &[],
        "Complete" => &[
            "Confirmed",
            "Arrived",
            "Checked In",
            "In Room",
            "In Session",
            "Complete",
        ],
        "In Session" => &["Confirmed", "Arrived", "Checked In", "In Room", "In Session"],
        "In Room" => &["Confirmed", "Arrived", "Checked In", "In Room"],
        "Checked In" => &["Confirmed", "Arrived", "Checked In"],
        "Arrived" => &["Confirmed", "Arrived"],
        "No Show" => &["Confirmed", "No Show"],
        other => {
            return vec![StatusTransition {
                appointment: appointment.id.clone(),
                from_status: String::new(),
                to_status: other.into(),
                datetime: appointment.updated_at.clone(),
            }];
        }
    };
    let mut from = String::new();
    path.iter()
        .enumerate()
        .map(|(step, to)| {
            let when = if step == 0 {
                created + Duration::hours(2)
            } else {
                start + Duration::minutes(5 * step as i64 - 10)
            };
            let transition = StatusTransition {
                appointment: appointment.id.clone(),
                from_status: from.clone(),
                to_status: (*to).into(),
                datetime: fmt_ts(when),
            };
            from = (*to).into();
            transition
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn gen_clinical_notes(
    rng: &mut ChaCha20Rng,
    config: &DrChronoSimConfig,
    appointments: &mut [Appointment],
    seen_at: &[Option<NaiveDateTime>],
    patients: &[Patient],
    doctors: &[Doctor],
    now: NaiveDateTime,
    media_origin: &str,
) -> Vec<ClinicalNote> {
    // Past, non-break appointments; the ones the clinician saw come first.
    let mut seen_list: Vec<usize> = Vec::new();
    let mut other_list: Vec<usize> = Vec::new();
    for (i, appointment) in appointments.iter().enumerate() {
        let past = appointment.scheduled_time.as_str() < fmt_ts(now).as_str();
        if !past || appointment.appt_is_break || appointment.patient.is_none() {
            continue;
        }
        if seen_at[i].is_some() {
            seen_list.push(i);
        } else {
            other_list.push(i);
        }
    }
    seen_list.shuffle(rng);
    other_list.shuffle(rng);
    let mut chosen: Vec<usize> = seen_list
        .into_iter()
        .chain(other_list)
        .take(config.clinical_notes)
        .collect();
    chosen.sort_by(|a, b| {
        appointments[*a]
            .scheduled_time
            .cmp(&appointments[*b].scheduled_time)
            .then(a.cmp(b))
    });

    let mut ids = IdSeq(27_400_000 + rng.random_range(0..10_000));
    let mut value_ids = IdSeq(733_000_000);
    let mut notes = Vec::with_capacity(chosen.len());
    for index in chosen {
        let appointment = &appointments[index];
        let Ok(appointment_id) = appointment.appointment_id_number() else {
            continue;
        };
        let Some(patient_id) = appointment.patient else {
            continue;
        };
        let patient = patients.iter().find(|p| p.id == patient_id);
        let doctor = doctors.iter().find(|d| d.id == appointment.doctor);
        let start = NaiveDateTime::parse_from_str(&appointment.scheduled_time, "%Y-%m-%dT%H:%M:%S").unwrap_or(now);
        let visit = VISIT_REASONS
            .iter()
            .find(|v| v.reason == appointment.reason)
            .unwrap_or(&VISIT_REASONS[0]);
        let finished = start + Duration::minutes(appointment.duration);
        let updated = (finished + Duration::minutes(rng.random_range(10..60 * 72))).min(now);
        let locked = if now - updated > Duration::days(2) {
            rng.random_bool(0.9)
        } else {
            rng.random_bool(0.4)
        };
        let (template, sections) = *pick(rng, NOTE_TEMPLATES, &NOTE_TEMPLATES[0]);
        let dob = patient
            .and_then(|p| p.date_of_birth.as_deref())
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let age = dob.and_then(|dob| {
            let years = start.date().years_since(dob)?;
            Some(if years >= 2 {
                format!("{years}-year-old")
            } else {
                let months = (start.date() - dob).num_days() / 30;
                format!("{months}-month-old")
            })
        });
        let who = match (age, patient.map(|p| p.gender.as_str())) {
            (Some(age), Some("Female")) => format!("{age} female"),
            (Some(age), Some("Male")) => format!("{age} male"),
            (Some(age), _) => format!("{age} patient"),
            (None, _) => "Patient".into(),
        };
        let vitals = &appointment.vitals;
        let clinical_note_sections = sections
            .iter()
            .map(|(name, fields)| ClinicalNoteSection {
                clinical_note_template: template,
                name: (*name).into(),
                values: fields
                    .iter()
                    .enumerate()
                    .map(|(k, field)| ClinicalNoteValue {
                        id: value_ids.take(rng),
                        clinical_note_field: *field,
                        value: section_text(rng, name, k, visit, &who, vitals),
                    })
                    .collect(),
            })
            .collect();
        let doctor_name = doctor
            .map(|d| format!("{} {}", d.first_name, d.last_name))
            .unwrap_or_default();
        notes.push(ClinicalNote {
            id: ids.take(rng),
            appointment: appointment_id,
            patient: patient_id,
            archived: appointment.deleted_flag,
            clinical_note_sections,
            signee: ClinicalNoteSignee {
                locked_by: if locked { doctor_name } else { String::new() },
                supervisor_locked_by: String::new(),
            },
            updated_at: fmt_ts(updated),
        });
        let appointment = &mut appointments[index];
        appointment.clinical_note = Some(AppointmentClinicalNote {
            locked,
            pdf: format!("{media_origin}/media/clinical_notes/{}.pdf", appointment.id),
            updated_at: fmt_ts(updated),
        });
        appointment.icd10_codes = visit.icd10.into();
        if appointment.extended_updated_at < fmt_ts(updated) {
            appointment.extended_updated_at = fmt_ts(updated);
        }
    }
    notes.sort_by_key(|n| n.id);
    notes
}

fn section_text(
    rng: &mut ChaCha20Rng,
    section: &str,
    field: usize,
    visit: &VisitReason,
    who: &str,
    vitals: &Vitals,
) -> String {
    let VisitReason {
        reason,
        assessment,
        icd10,
        plan,
        ..
    } = visit;
    let days = rng.random_range(2..21);
    match (section, field) {
        ("Chief Complaint", _) => reason.to_string(),
        ("Subjective", 0) | ("History of Present Illness", _) => format!(
            "{who} presents for {}. Symptoms or concerns began about {days} days ago. \
             Denies fever, chest pain or shortness of breath.",
            reason.to_lowercase()
        ),
        ("Subjective", _) => pick_str(
            rng,
            &[
                "Medications reviewed and reconciled.",
                "No known drug allergies.",
                "Allergies: penicillin (rash).",
            ],
        )
        .to_string(),
        ("Review of Systems", _) => {
            "Constitutional: negative.\nCardiovascular: negative.\nRespiratory: negative.\nGI: negative.".to_string()
        }
        ("Objective", _) | ("Physical Exam", 0) => {
            match (vitals.blood_pressure_1, vitals.blood_pressure_2, vitals.pulse) {
                (Some(sys), Some(dia), Some(pulse)) => format!(
                    "BP {sys}/{dia} mmHg, pulse {pulse} bpm, temp {:.1} °F, SpO2 {:.0}%.",
                    vitals.temperature.unwrap_or(98.6),
                    vitals.oxygen_saturation.unwrap_or(98.0)
                ),
                _ => "Vitals not recorded.".to_string(),
            }
        }
        ("Physical Exam", _) => {
            "General: alert, in no acute distress. Heart: regular rate and rhythm. Lungs: clear.".to_string()
        }
        ("Assessment", _) => format!("{assessment} ({icd10})"),
        ("Plan", _) => format!(
            "1. {plan}\n2. Patient education provided; questions answered.\n3. Follow up in {} weeks or sooner if symptoms worsen.",
            rng.random_range(1..12)
        ),
        _ => String::new(),
    }
}

fn gen_documents(
    rng: &mut ChaCha20Rng,
    config: &DrChronoSimConfig,
    patients: &[Patient],
    appointments: &[Appointment],
    now: NaiveDateTime,
    media_origin: &str,
) -> Vec<Document> {
    if patients.is_empty() {
        return Vec::new();
    }
    let anchor = now.date();
    struct Draft {
        doctor: i64,
        patient: i64,
        date: NaiveDate,
        kind: usize,
        archived: bool,
        updated: NaiveDateTime,
    }
    let mut drafts: Vec<Draft> = (0..config.documents)
        .map(|_| {
            // Documents cluster on patients with visits, filed by the visit's doctor.
            let visit = if rng.random_bool(0.7) {
                appointments
                    .choose(rng)
                    .filter(|a| !a.appt_is_break && a.scheduled_time.as_str() < fmt_ts(now).as_str())
            } else {
                None
            };
            let (patient, doctor, date) = match visit.and_then(|a| a.patient.map(|p| (p, a))) {
                Some((patient, a)) => (
                    patient,
                    a.doctor,
                    NaiveDateTime::parse_from_str(&a.scheduled_time, "%Y-%m-%dT%H:%M:%S")
                        .map(|t| t.date())
                        .unwrap_or(anchor),
                ),
                None => {
                    let patient = pick(rng, patients, &patients[0]);
                    (patient.id, patient.doctor, add_days(anchor, -rng.random_range(0..400)))
                }
            };
            let day = add_days(date, rng.random_range(0..3));
            let updated = business_time(rng, day).min(now);
            Draft {
                doctor,
                patient,
                date,
                kind: rng.random_range(0..DOCUMENT_KINDS.len()),
                archived: rng.random_bool(0.05),
                updated,
            }
        })
        .collect();
    drafts.sort_by_key(|d| d.updated);
    let mut ids = IdSeq(41_700_000 + rng.random_range(0..10_000));
    drafts
        .into_iter()
        .map(|d| {
            let id = ids.take(rng);
            let (description, tags) = DOCUMENT_KINDS[d.kind];
            Document {
                id,
                doctor: d.doctor,
                patient: d.patient,
                date: fmt_date(d.date),
                description: description.into(),
                document: format!("{media_origin}/media/documents/{id}.pdf"),
                metatags: tags.iter().map(|t| (*t).to_string()).collect(),
                archived: d.archived,
                updated_at: fmt_ts(d.updated),
            }
        })
        .collect()
}

impl Appointment {
    /// The numeric form of the id, as clinical notes reference it.
    pub fn appointment_id_number(&self) -> Result<i64, std::num::ParseIntError> {
        self.id.parse()
    }
}
