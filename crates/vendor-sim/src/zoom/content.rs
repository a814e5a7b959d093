//! Synthetic clinical note content: SOAP-style markdown drafted from a small set of telehealth
//! scenarios, in the three layouts an AI scribe produces (markdown headings, plain headings as
//! in the doc's example, and a bold S/O/A/P layout).

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha20Rng;

use super::wire::VisitType;

pub(crate) struct Scenario {
    pub reason: &'static str,
    pub visit_type: VisitType,
    chief_complaint: &'static str,
    hpi: &'static [&'static str],
    ros: &'static [&'static str],
    observations: &'static [&'static str],
    vitals: &'static [(&'static str, &'static str)],
    assessment: &'static [(&'static str, &'static str, &'static [&'static str])],
    recommendations: &'static [&'static str],
}

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        reason: "Acute lower abdominal pain",
        visit_type: VisitType::UrgentCare,
        chief_complaint: "The patient presents with severe stomach pain near the lower abdomen since this morning.",
        hpi: &[
            "Pain is located in the lower abdomen and started this morning.",
            "Attended a dinner party at a restaurant last night.",
            "Pain rated 7/10, cramping, intermittent.",
            "Denies fever, vomiting or blood in the stool.",
        ],
        ros: &[
            "Gastrointestinal: reports lower abdominal pain; denies other GI symptoms.",
            "Constitutional: no fever or chills.",
        ],
        observations: &[
            "Appears uncomfortable but in no acute distress on video.",
            "Able to self-palpate; reports tenderness in the lower quadrants, no guarding described.",
        ],
        vitals: &[
            ("Temperature (self-reported)", "98.9 °F"),
            ("Heart rate (wearable)", "92 bpm"),
        ],
        assessment: &[(
            "Acute abdominal pain, likely food-related gastroenteritis",
            "R10.30",
            &[
                "Medication prescribed for pain management.",
                "Oral rehydration; bland diet for 48 h.",
                "Red flags reviewed: worsening pain, fever > 101 °F, or bloody stools → ED.",
            ],
        )],
        recommendations: &[
            "Take the prescribed medicine regularly.",
            "Avoid eating out until symptoms resolve.",
            "Return to the clinic if the pain worsens or new symptoms develop.",
        ],
    },
    Scenario {
        reason: "Hypertension follow-up",
        visit_type: VisitType::FollowUp,
        chief_complaint: "Follow-up of hypertension after starting lisinopril 10 mg daily 4 weeks ago.",
        hpi: &[
            "Home BP log shows readings of 128–138 / 78–86 mmHg over the last 2 weeks.",
            "Reports good adherence; missed 1 dose.",
            "Mild dry cough in the evenings since starting therapy.",
            "Denies chest pain, shortness of breath, headaches or dizziness.",
        ],
        ros: &[
            "Cardiovascular: denies chest pain and palpitations.",
            "Respiratory: occasional dry cough; no wheeze.",
        ],
        observations: &["Alert, well appearing, speaking in full sentences."],
        vitals: &[
            ("Blood pressure (home cuff)", "134/82 mmHg"),
            ("Heart rate", "74 bpm"),
            ("Weight (home scale)", "191 lb"),
        ],
        assessment: &[
            (
                "Essential hypertension, improving",
                "I10",
                &[
                    "Continue lisinopril 10 mg daily.",
                    "Basic metabolic panel in 1 week (K+, creatinine).",
                ],
            ),
            (
                "Cough, possibly ACE-inhibitor related",
                "R05.9",
                &["Monitor; switch to losartan 50 mg if the cough persists or worsens."],
            ),
        ],
        recommendations: &[
            "Keep logging BP twice daily and upload readings to the portal.",
            "Limit sodium to < 2 g/day; 30 min of walking 5×/week.",
            "Follow up in 6 weeks.",
        ],
    },
    Scenario {
        reason: "Type 2 diabetes management",
        visit_type: VisitType::FollowUp,
        chief_complaint: "Routine review of type 2 diabetes; latest HbA1c 7.9 %.",
        hpi: &[
            "Taking metformin 1000 mg twice daily; some GI upset after the evening dose.",
            "Fasting glucose 140–165 mg/dL on the home meter.",
            "No hypoglycaemic episodes.",
            "Reports tingling in both feet at night for about 2 months.",
        ],
        ros: &[
            "Endocrine: polyuria improved; no polydipsia.",
            "Neurological: bilateral foot paresthesia at night.",
        ],
        observations: &["Feet shown on camera: no visible ulcers or skin breakdown."],
        vitals: &[("Fasting glucose (meter)", "152 mg/dL"), ("Weight", "212 lb")],
        assessment: &[
            (
                "Type 2 diabetes mellitus without complications, not at goal",
                "E11.9",
                &[
                    "Switch to metformin XR 2000 mg with dinner.",
                    "Start empagliflozin 10 mg daily; sick-day rules discussed.",
                ],
            ),
            (
                "Paresthesia of both feet",
                "R20.2",
                &["In-person monofilament exam and B12 level at next visit."],
            ),
        ],
        recommendations: &[
            "Daily foot checks; never walk barefoot.",
            "Repeat HbA1c in 3 months.",
            "Diabetes education class referral sent.",
        ],
    },
    Scenario {
        reason: "Anxiety and sleep",
        visit_type: VisitType::MentalHealth,
        chief_complaint: "Increased anxiety and difficulty falling asleep over the past month.",
        hpi: &[
            "Work stress since a change of role; racing thoughts at bedtime.",
            "Sleep onset 60–90 min; wakes at 4 a.m. most nights.",
            "GAD-7 score today: 13 (moderate).",
            "Denies suicidal ideation, intent or plan.",
        ],
        ros: &[
            "Psychiatric: anxious mood, no hopelessness.",
            "Constitutional: fatigue during the day.",
        ],
        observations: &[
            "Well groomed, good eye contact, speech normal rate.",
            "Affect anxious but reactive; thought process linear.",
        ],
        vitals: &[],
        assessment: &[
            (
                "Generalized anxiety disorder",
                "F41.1",
                &[
                    "Start sertraline 25 mg daily for 1 week, then 50 mg.",
                    "Referral to CBT; patient agrees.",
                ],
            ),
            (
                "Insomnia due to anxiety",
                "F51.05",
                &["Sleep hygiene handout; avoid screens 1 h before bed."],
            ),
        ],
        recommendations: &[
            "Call 988 or go to the nearest ED if thoughts of self-harm occur.",
            "Follow up by video in 4 weeks.",
        ],
    },
    Scenario {
        reason: "Upper respiratory symptoms",
        visit_type: VisitType::UrgentCare,
        chief_complaint: "Sore throat, nasal congestion and cough for 4 days.",
        hpi: &[
            "Symptoms started after a sick contact at home.",
            "Low-grade fever (max 100.4 °F) on day 1, none since.",
            "Home COVID-19 antigen test negative ×2.",
            "Tolerating fluids; no shortness of breath.",
        ],
        ros: &[
            "ENT: congestion, sore throat; no ear pain.",
            "Respiratory: dry cough; denies wheeze or dyspnea.",
        ],
        observations: &[
            "Mild nasal voice; no respiratory distress; speaks in full sentences.",
            "Posterior pharynx mildly erythematous on camera, no exudate visible.",
        ],
        vitals: &[("Temperature", "99.1 °F"), ("SpO₂ (pulse oximeter)", "98 %")],
        assessment: &[(
            "Acute viral upper respiratory infection",
            "J06.9",
            &[
                "Supportive care: fluids, rest, saline rinses.",
                "Antibiotics not indicated.",
            ],
        )],
        recommendations: &[
            "Acetaminophen or ibuprofen as needed for throat pain.",
            "Seek care if fever returns > 3 days or breathing becomes difficult.",
        ],
    },
    Scenario {
        reason: "Low back pain",
        visit_type: VisitType::InitialConsultation,
        chief_complaint: "Low back pain for 10 days after lifting boxes during a move.",
        hpi: &[
            "Pain is in the lumbar region, non-radiating, worse with bending.",
            "Ibuprofen 400 mg helps partially.",
            "Denies numbness, weakness, bladder or bowel changes.",
        ],
        ros: &[
            "Musculoskeletal: lumbar pain and stiffness.",
            "Neurological: no saddle anesthesia, no weakness.",
        ],
        observations: &[
            "Able to stand from a chair and walk across the room on video with mild guarding.",
            "Forward flexion limited by pain.",
        ],
        vitals: &[],
        assessment: &[(
            "Acute low back strain",
            "S39.012A",
            &[
                "NSAIDs with food for 7 days; heat 20 min 3×/day.",
                "Physical therapy referral placed.",
            ],
        )],
        recommendations: &[
            "Stay active; avoid bed rest.",
            "Urgent evaluation if leg weakness or loss of bladder control develops.",
        ],
    },
    Scenario {
        reason: "Rash on forearm",
        visit_type: VisitType::SpecialistConsult,
        chief_complaint: "Itchy red rash on the left forearm for 1 week.",
        hpi: &[
            "Started after gardening; spreading slowly.",
            "Tried OTC hydrocortisone 1 % with little relief.",
            "No new medications, soaps or detergents.",
        ],
        ros: &[
            "Skin: pruritic rash; no blisters reported.",
            "Constitutional: no fever.",
        ],
        observations: &[
            "Linear erythematous papules and plaques on the volar left forearm (photo uploaded to the chart).",
        ],
        vitals: &[],
        assessment: &[(
            "Allergic contact dermatitis, likely plant-related",
            "L23.7",
            &[
                "Triamcinolone 0.1 % cream twice daily for 14 days.",
                "Oral cetirizine at night for itch.",
            ],
        )],
        recommendations: &[
            "Wear gloves and long sleeves when gardening.",
            "Send a new photo through the portal in 1 week.",
        ],
    },
    Scenario {
        reason: "Asthma check",
        visit_type: VisitType::FollowUp,
        chief_complaint: "Asthma review; using albuterol 3–4 times a week.",
        hpi: &[
            "Night-time cough twice a week; triggered by cold air.",
            "Currently on albuterol as needed only.",
            "No ED visits or oral steroids this year.",
        ],
        ros: &[
            "Respiratory: intermittent wheeze, night cough.",
            "ENT: seasonal rhinitis.",
        ],
        observations: &["No audible wheeze during conversation; no accessory muscle use."],
        vitals: &[("Peak flow (home)", "380 L/min (personal best 450)")],
        assessment: &[(
            "Mild persistent asthma, not well controlled",
            "J45.30",
            &[
                "Start budesonide-formoterol 160/4.5 two puffs twice daily.",
                "Written asthma action plan shared.",
            ],
        )],
        recommendations: &[
            "Rinse mouth after each inhaled steroid dose.",
            "Review inhaler technique video sent via the portal.",
            "Follow up in 8 weeks.",
        ],
    },
    Scenario {
        reason: "Medication refill and lab review",
        visit_type: VisitType::FollowUp,
        chief_complaint: "Review of recent labs and refill of atorvastatin.",
        hpi: &[
            "LDL 96 mg/dL (was 162 before treatment); ALT normal.",
            "No muscle aches.",
            "Walking 4 days a week.",
        ],
        ros: &["Musculoskeletal: no myalgias.", "Cardiovascular: no chest pain."],
        observations: &["Well appearing."],
        vitals: &[],
        assessment: &[(
            "Hyperlipidemia, at goal on therapy",
            "E78.5",
            &["Refill atorvastatin 20 mg daily, 90 days with 3 refills."],
        )],
        recommendations: &[
            "Repeat lipid panel in 12 months.",
            "Continue the Mediterranean-style diet.",
        ],
    },
    Scenario {
        reason: "Postpartum mood check",
        visit_type: VisitType::MentalHealth,
        chief_complaint: "Postpartum follow-up, 6 weeks after delivery; low mood some days.",
        hpi: &[
            "Sleeping in 2–3 h stretches; partner helps with night feeds.",
            "EPDS score 9.",
            "Enjoys time with the baby; no intrusive thoughts of harm.",
        ],
        ros: &[
            "Psychiatric: tearful at times, no anhedonia.",
            "Breast: feeding well, no pain.",
        ],
        observations: &["Calm, engaged, baby present on camera."],
        vitals: &[],
        assessment: &[(
            "Postpartum adjustment, low risk",
            "Z39.2",
            &["Support group information shared.", "Repeat EPDS in 4 weeks."],
        )],
        recommendations: &[
            "Reach out any time mood worsens — crisis line 988 available 24/7.",
            "Rest when the baby sleeps when possible.",
        ],
    },
    Scenario {
        reason: "Group session: stress management",
        visit_type: VisitType::GroupTherapy,
        chief_complaint: "Participation in the weekly stress-management group (session 4 of 8).",
        hpi: &[
            "Practised box breathing daily since the last session.",
            "Reports fewer panic episodes (1 this week vs 3 last week).",
        ],
        ros: &["Psychiatric: improving anxiety, stable mood."],
        observations: &["Engaged in group discussion; shared a coping example."],
        vitals: &[],
        assessment: &[(
            "Panic disorder, improving",
            "F41.0",
            &["Continue group sessions; homework: thought record 3×/week."],
        )],
        recommendations: &["Next group session in 1 week, same link."],
    },
    Scenario {
        reason: "Knee pain after running",
        visit_type: VisitType::SpecialistConsult,
        chief_complaint: "Right knee pain for 3 weeks after increasing running distance.",
        hpi: &[
            "Pain at the front of the knee, worse on stairs and after sitting.",
            "No swelling, locking or giving way.",
            "Running 25 miles/week, up from 10.",
        ],
        ros: &["Musculoskeletal: anterior knee pain; no other joints involved."],
        observations: &["Full squat shown on video provokes anterior knee pain; gait normal."],
        vitals: &[],
        assessment: &[(
            "Patellofemoral pain syndrome, right knee",
            "M22.2X1",
            &[
                "Reduce mileage by 50 % for 2 weeks.",
                "Quadriceps and hip strengthening program.",
            ],
        )],
        recommendations: &[
            "Ice after runs; gradual return to distance (≤ 10 % per week).",
            "In-person exam if no better in 6 weeks.",
        ],
    },
];

/// Picks a scenario suited to `visit_type` (any scenario when none matches).
pub(crate) fn scenario_for(rng: &mut ChaCha20Rng, visit_type: Option<VisitType>) -> &'static Scenario {
    let matching: Vec<&'static Scenario> = SCENARIOS
        .iter()
        .filter(|s| visit_type.is_none_or(|t| s.visit_type == t))
        .collect();
    match matching.choose(rng) {
        Some(scenario) => scenario,
        None => SCENARIOS.choose(rng).unwrap_or(&SCENARIOS[0]),
    }
}

/// Renders the note in one of three layouts, with a random subset of the details.
pub(crate) fn render(rng: &mut ChaCha20Rng, scenario: &Scenario, duration_minutes: i64) -> String {
    let mut hpi: Vec<&str> = scenario.hpi.to_vec();
    // Drop at most one detail so notes of the same scenario differ.
    if hpi.len() > 2 && rng.random_bool(0.5) {
        let drop = rng.random_range(1..hpi.len());
        hpi.remove(drop);
    }
    let mut recommendations: Vec<&str> = scenario.recommendations.to_vec();
    if recommendations.len() > 2 && rng.random_bool(0.3) {
        recommendations.shuffle(rng);
    }
    match rng.random_range(0..3u8) {
        0 => render_markdown(scenario, &hpi, &recommendations, duration_minutes),
        1 => render_plain(scenario, &hpi, &recommendations),
        _ => render_soap(scenario, &hpi, &recommendations, duration_minutes),
    }
}

fn render_markdown(scenario: &Scenario, hpi: &[&str], recommendations: &[&str], duration_minutes: i64) -> String {
    let mut out = String::new();
    out.push_str("## Chief Complaint\n");
    out.push_str(scenario.chief_complaint);
    out.push_str("\n\n## History of Present Illness\n");
    for line in hpi {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("\n## Review of Systems\n");
    for line in scenario.ros {
        out.push_str(&format!("- {line}\n"));
    }
    if !scenario.vitals.is_empty() {
        out.push_str("\n## Vital Signs (patient-reported)\n| Measure | Value |\n|---|---|\n");
        for (name, value) in scenario.vitals {
            out.push_str(&format!("| {name} | {value} |\n"));
        }
    }
    out.push_str("\n## Virtual Exam\n");
    for line in scenario.observations {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("\n## Assessment and Plan\n");
    for (i, (diagnosis, code, plan)) in scenario.assessment.iter().enumerate() {
        out.push_str(&format!("{}. **{diagnosis}** (ICD-10 `{code}`)\n", i + 1));
        for step in *plan {
            out.push_str(&format!("   - {step}\n"));
        }
    }
    out.push_str("\n## Patient Recommendations\n");
    for line in recommendations {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str(&format!(
        "\n---\n_Telehealth visit, {duration_minutes} minutes. Patient consented to an AI-drafted note._\n"
    ));
    out
}

/// The layout of the doc's example: headings on their own lines, no markdown markers.
fn render_plain(scenario: &Scenario, hpi: &[&str], recommendations: &[&str]) -> String {
    let mut out = String::new();
    out.push_str("Chief Complaint\n");
    out.push_str(scenario.chief_complaint);
    out.push_str("\nHistory of Present Illness\n");
    for line in hpi {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("Review of Systems\n");
    for line in scenario.ros {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("Assessment and Plan\n");
    for (i, (diagnosis, _, plan)) in scenario.assessment.iter().enumerate() {
        out.push_str(&format!("{}. {diagnosis}\n", i + 1));
        for step in *plan {
            out.push_str(&format!("- {step}\n"));
        }
    }
    out.push_str("Patient Recommendations\n");
    let last = recommendations.len().saturating_sub(1);
    for (i, line) in recommendations.iter().enumerate() {
        out.push_str(&format!("- {line}"));
        if i != last {
            out.push('\n');
        }
    }
    out
}

fn render_soap(scenario: &Scenario, hpi: &[&str], recommendations: &[&str], duration_minutes: i64) -> String {
    let mut out = String::new();
    out.push_str("# Visit Note\n\n**Subjective**\n\n");
    out.push_str(&format!("> {}\n\n", scenario.chief_complaint));
    for line in hpi {
        out.push_str(&format!("* {line}\n"));
    }
    for line in scenario.ros {
        out.push_str(&format!("* ROS — {line}\n"));
    }
    out.push_str("\n**Objective**\n\n");
    for line in scenario.observations {
        out.push_str(&format!("* {line}\n"));
    }
    for (name, value) in scenario.vitals {
        out.push_str(&format!("* {name}: {value}\n"));
    }
    out.push_str("\n**Assessment**\n\n");
    for (diagnosis, code, _) in scenario.assessment {
        out.push_str(&format!("* {diagnosis} — {code}\n"));
    }
    out.push_str("\n**Plan**\n\n");
    for (_, _, plan) in scenario.assessment {
        for step in *plan {
            out.push_str(&format!("1. {step}\n"));
        }
    }
    for line in recommendations {
        out.push_str(&format!("1. {line}\n"));
    }
    out.push_str(&format!(
        "\nTime spent: {duration_minutes} min (video) <!-- generated draft -->\n"
    ));
    out
}
