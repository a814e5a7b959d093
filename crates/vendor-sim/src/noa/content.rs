//! Deterministic clinical-looking summary text: one scenario per session (from its content
//! seed), one short markdown block per template section.
//!
//! Known section titles (the default template's, and common ones such as "Personal
//! Information", "Reason for the Visit", "Medications", "Allergies", "Physical Examination")
//! get matching text; any other title gets a generic paragraph quoting its instruction.
//! `variant` is the summary revision being written: revision 1 uses the first phrasing, a
//! regeneration (revision 2 and later) the other one, with its own small details.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::wire::{DEFAULT_SECTIONS, Section, Template};

struct Scenario {
    complaint: &'static str,
    /// `{onset}` is replaced by a duration.
    hpi: [&'static str; 2],
    exam: &'static str,
    assessment: [&'static str; 2],
    plan: [&'static [&'static str]; 2],
    medications: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        complaint: "Cough and low-grade fever",
        hpi: [
            "Productive cough for {onset} with temperatures up to 38.1 °C. No shortness of breath or chest pain. A household contact had similar symptoms last week.",
            "Reports {onset} of cough with yellowish sputum and intermittent low fevers. Denies dyspnea, hemoptysis or pleuritic pain. Sick contact at home.",
        ],
        exam: "Scattered rhonchi in the right lower field, no wheezing. SpO2 97% on room air.",
        assessment: [
            "Acute bronchitis, most likely viral.",
            "Likely viral lower respiratory tract infection (acute bronchitis); pneumonia less likely given normal saturation.",
        ],
        plan: [
            &[
                "Supportive care: fluids, rest, honey for cough",
                "Paracetamol 500 mg up to four times daily as needed",
                "Return if fever persists beyond 3 days or breathing worsens",
            ],
            &[
                "Symptomatic treatment and hydration",
                "Antipyretic as needed; no antibiotics indicated at this time",
                "Chest X-ray if not improving within a week",
            ],
        ],
        medications: "Paracetamol 500 mg as needed.",
    },
    Scenario {
        complaint: "Follow-up of hypertension",
        hpi: [
            "Home readings over the last {onset} average 142/90. Taking lisinopril 10 mg daily with good adherence. No headaches, chest pain or edema.",
            "Brings a log from the past {onset}: most readings in the low 140s systolic. Adherent to lisinopril, occasional missed evening walk. Asymptomatic.",
        ],
        exam: "BP 144/88 (left arm, seated), HR 72. Heart sounds regular, no peripheral edema.",
        assessment: [
            "Essential hypertension, not at goal.",
            "Hypertension above target despite adherence to monotherapy.",
        ],
        plan: [
            &[
                "Increase lisinopril to 20 mg daily",
                "Basic metabolic panel in 2 weeks",
                "Reduce sodium intake; 30 minutes of walking most days",
                "Follow-up in 6 weeks with home readings",
            ],
            &[
                "Titrate lisinopril to 20 mg once daily",
                "Check potassium and creatinine in 2 weeks",
                "Lifestyle counselling repeated (salt, activity, alcohol)",
                "Review in 6 weeks",
            ],
        ],
        medications: "Lisinopril 10 mg daily (increased to 20 mg today).",
    },
    Scenario {
        complaint: "Low back pain",
        hpi: [
            "Lower back pain for {onset} after lifting boxes. Pain 6/10, worse with bending, no radiation below the knee. No numbness, weakness or bladder symptoms.",
            "Mechanical low back pain that started {onset} ago while moving furniture. Rated 5-6/10, eased by rest. Denies leg weakness, saddle anesthesia or incontinence.",
        ],
        exam: "Paraspinal tenderness L4-L5, straight-leg raise negative bilaterally, normal reflexes and strength.",
        assessment: [
            "Acute mechanical low back strain without red flags.",
            "Lumbar muscle strain; no signs of radiculopathy or cauda equina.",
        ],
        plan: [
            &[
                "Ibuprofen 400 mg three times daily with food for 5 days",
                "Stay active; avoid bed rest",
                "Physical therapy referral if not better in 2 weeks",
            ],
            &[
                "Short course of NSAIDs with food",
                "Heat and gentle mobility exercises",
                "Refer to physiotherapy if symptoms persist",
            ],
        ],
        medications: "Ibuprofen 400 mg three times daily for 5 days.",
    },
    Scenario {
        complaint: "Type 2 diabetes check-up",
        hpi: [
            "Routine review. Metformin 1000 mg twice daily. Fasting glucose at home 130-150 mg/dL over the last {onset}. Occasional tingling in the feet.",
            "Diabetes follow-up: fasting values 130s-150s during the past {onset}, on metformin twice daily. Mentions intermittent tingling in both feet.",
        ],
        exam: "Weight 92 kg, BMI 31. Monofilament sensation reduced at both great toes. Pedal pulses present.",
        assessment: [
            "Type 2 diabetes, suboptimal control; possible early peripheral neuropathy.",
            "T2DM above glycemic target with early sensory changes in the feet.",
        ],
        plan: [
            &[
                "HbA1c, lipid panel and urine albumin today",
                "Discuss adding a GLP-1 receptor agonist at the next visit",
                "Podiatry referral and daily foot checks",
            ],
            &[
                "Order HbA1c, lipids and urine albumin-to-creatinine ratio",
                "Consider treatment intensification once results are back",
                "Foot care education; podiatry referral",
            ],
        ],
        medications: "Metformin 1000 mg twice daily.",
    },
    Scenario {
        complaint: "Anxiety and poor sleep",
        hpi: [
            "Worsening worry and difficulty falling asleep for {onset}, related to work stress. GAD-7 score 12. No suicidal ideation.",
            "Describes {onset} of persistent worry, restlessness and sleep-onset insomnia linked to job pressure. GAD-7 of 12; denies thoughts of self-harm.",
        ],
        exam: "Alert, cooperative, mildly anxious affect, linear thought process.",
        assessment: [
            "Generalized anxiety disorder, moderate.",
            "Moderate generalized anxiety with secondary insomnia.",
        ],
        plan: [
            &[
                "Referral to cognitive behavioural therapy",
                "Sleep hygiene handout reviewed",
                "Consider an SSRI if no improvement in 4 weeks",
            ],
            &[
                "Start CBT (referral sent)",
                "Sleep hygiene measures; limit caffeine after noon",
                "Reassess in 4 weeks; discuss sertraline if still symptomatic",
            ],
        ],
        medications: "None currently.",
    },
    Scenario {
        complaint: "Seasonal allergic rhinitis",
        hpi: [
            "Sneezing, itchy eyes and clear rhinorrhea for {onset}, every spring. Over-the-counter loratadine helps partially.",
            "Recurrent spring symptoms for {onset}: sneezing, watery itchy eyes, clear nasal discharge. Partial relief from loratadine.",
        ],
        exam: "Pale, boggy nasal turbinates, mild conjunctival injection, clear lungs.",
        assessment: [
            "Seasonal allergic rhinoconjunctivitis.",
            "Allergic rhinitis with conjunctivitis, seasonal pattern.",
        ],
        plan: [
            &[
                "Fluticasone nasal spray, 2 sprays per nostril daily",
                "Continue loratadine 10 mg daily",
                "Allergy testing if symptoms persist next season",
            ],
            &[
                "Add an intranasal corticosteroid daily through the season",
                "Keep a daily non-sedating antihistamine",
                "Consider allergen testing",
            ],
        ],
        medications: "Loratadine 10 mg daily; fluticasone nasal spray started.",
    },
    Scenario {
        complaint: "Knee pain after running",
        hpi: [
            "Anterior right knee pain for {onset}, started after increasing running distance. Worse on stairs, no swelling or locking.",
            "Right anterior knee pain over the past {onset} since a jump in weekly mileage. Aggravated by stairs and squatting; no effusion, no giving way.",
        ],
        exam: "Pain on patellar compression, full range of motion, stable ligaments, no effusion.",
        assessment: [
            "Patellofemoral pain syndrome.",
            "Overuse patellofemoral pain of the right knee.",
        ],
        plan: [
            &[
                "Reduce running volume by half for 3 weeks",
                "Quadriceps and hip strengthening program",
                "Ice after activity; ibuprofen as needed",
            ],
            &[
                "Relative rest from running, cross-train with cycling",
                "Physiotherapy: quadriceps and gluteal strengthening",
                "Review footwear; reassess in 4 weeks",
            ],
        ],
        medications: "Ibuprofen 400 mg as needed.",
    },
    Scenario {
        complaint: "Headaches",
        hpi: [
            "Bilateral pressing headaches 3-4 times a week for {onset}, worse at the end of the workday. No aura, no neurological symptoms.",
            "Frequent band-like headaches over the last {onset}, typically late afternoon after screen work. No visual aura, weakness or vomiting.",
        ],
        exam: "Normal neurological examination, no papilledema, pericranial muscle tenderness.",
        assessment: [
            "Frequent episodic tension-type headache.",
            "Tension-type headache, frequent episodic; no red flags.",
        ],
        plan: [
            &[
                "Headache diary for 4 weeks",
                "Limit analgesics to 2 days per week to avoid medication overuse",
                "Regular breaks from screen work; posture advice",
            ],
            &[
                "Keep a headache and trigger diary",
                "Analgesics no more than twice weekly",
                "Ergonomic review of the workstation; consider physiotherapy",
            ],
        ],
        medications: "Ibuprofen as needed (no more than 2 days a week).",
    },
];

const ONSETS: &[&str] = &[
    "2 days", "3 days", "a week", "10 days", "2 weeks", "a month", "3 months",
];

const ALLERGIES: &[&str] = &[
    "No known drug allergies.",
    "Penicillin (rash).",
    "Sulfonamides (hives).",
    "No known drug allergies; seasonal pollen.",
];

/// What the text of one session's summary depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context<'a> {
    pub(crate) seed: u64,
    /// Summary revision being written (1 = original).
    pub(crate) variant: u32,
    pub(crate) visit_type: Option<&'a str>,
    pub(crate) speciality: Option<&'a str>,
}

/// The sections of a summary: the template's (in its order) or the default ones.
pub(crate) fn sections(template: Option<&Template>, context: Context<'_>) -> Vec<Section> {
    let scenario = &SCENARIOS[usize::try_from(context.seed % SCENARIOS.len() as u64).unwrap_or(0)];
    let phrasing = usize::from(context.variant > 1);
    let mut rng = ChaCha8Rng::seed_from_u64(context.seed ^ u64::from(context.variant).wrapping_mul(0x9e37_79b9));
    let onset = ONSETS[rng.random_range(0..ONSETS.len())];
    let allergies = ALLERGIES[usize::try_from(context.seed / 7 % ALLERGIES.len() as u64).unwrap_or(0)];
    let titles: Vec<(String, String)> = match template {
        Some(template) if !template.value.is_empty() => template.value.clone(),
        _ => DEFAULT_SECTIONS
            .iter()
            .map(|t| ((*t).to_owned(), String::new()))
            .collect(),
    };
    titles
        .into_iter()
        .map(|(title, instruction)| {
            let content = section_text(
                &title,
                &instruction,
                scenario,
                phrasing,
                onset,
                allergies,
                &context,
                &mut rng,
            );
            Section { title, content }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn section_text(
    title: &str,
    instruction: &str,
    scenario: &Scenario,
    phrasing: usize,
    onset: &str,
    allergies: &str,
    context: &Context<'_>,
    rng: &mut ChaCha8Rng,
) -> String {
    let key = title.to_lowercase();
    let first_visit = context.visit_type == Some("FirstVisit");
    if key.contains("complaint") || key.contains("reason") {
        let kind = if first_visit {
            "New patient visit"
        } else {
            "Follow-up visit"
        };
        return match phrasing {
            0 => format!("{}.\n\n_{kind}._", scenario.complaint),
            _ => format!("**{}** ({}).", scenario.complaint, kind.to_lowercase()),
        };
    }
    if key.contains("history") || key.contains("hpi") || key.contains("subjective") {
        return scenario.hpi[phrasing].replace("{onset}", onset);
    }
    if key.contains("assessment") || key.contains("diagnos") || key.contains("impression") {
        return scenario.assessment[phrasing].to_owned();
    }
    if key.contains("plan") || key.contains("recommendation") {
        let follow_up = rng.random_range(2..=8);
        let mut lines: Vec<String> = scenario.plan[phrasing].iter().map(|item| format!("- {item}")).collect();
        lines.push(format!("- Follow-up in {follow_up} weeks or sooner if needed"));
        return lines.join("\n");
    }
    if key.contains("medication") || key.contains("prescription") {
        return format!("- {}", scenario.medications);
    }
    if key.contains("allerg") {
        return allergies.to_owned();
    }
    if key.contains("exam") || key.contains("objective") || key.contains("finding") {
        let (systolic, diastolic, pulse) = (
            rng.random_range(112..146),
            rng.random_range(68..92),
            rng.random_range(58..96),
        );
        return format!(
            "{}\n\n- BP {systolic}/{diastolic} mmHg\n- HR {pulse} bpm",
            scenario.exam
        );
    }
    if key.contains("personal") || key.contains("demograph") || key.contains("patient information") {
        let age = rng.random_range(19..86);
        return format!(
            "- Age: {age}\n- {}\n- Insurance details confirmed at check-in",
            if first_visit {
                "New to the practice"
            } else {
                "Established patient"
            }
        );
    }
    let speciality = context.speciality.map(|s| format!(" ({s})")).unwrap_or_default();
    match (instruction.trim().is_empty(), phrasing) {
        (true, 0) => format!(
            "Discussed in relation to {}{speciality}.",
            scenario.complaint.to_lowercase()
        ),
        (true, _) => format!(
            "Covered during the visit{speciality}: {}.",
            scenario.complaint.to_lowercase()
        ),
        (false, 0) => format!(
            "{}\n\n- Relevant to: {}{speciality}",
            instruction.trim(),
            scenario.complaint.to_lowercase()
        ),
        (false, _) => format!(
            "- {}\n- Context: {}{speciality}",
            instruction.trim(),
            scenario.complaint.to_lowercase()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(variant: u32) -> Context<'static> {
        Context {
            seed: 12345,
            variant,
            visit_type: Some("FollowUpVisit"),
            speciality: None,
        }
    }

    #[test]
    fn default_sections_in_order_and_deterministic() {
        let a = sections(None, context(1));
        let titles: Vec<&str> = a.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, DEFAULT_SECTIONS);
        assert_eq!(a, sections(None, context(1)));
        assert!(a.iter().all(|s| !s.content.is_empty()));
        assert_ne!(a, sections(None, context(2)));
    }

    #[test]
    fn template_sections_follow_the_template() {
        let template = Template::new([
            ("Reason for the Visit", "Detailed description"),
            ("Personal Information", "Demographics"),
            ("Something Else", ""),
        ]);
        let s = sections(Some(&template), context(1));
        let titles: Vec<&str> = s.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            vec!["Reason for the Visit", "Personal Information", "Something Else"]
        );
    }
}
