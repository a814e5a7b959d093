//! The state behind the simulator and the session lifecycle on the simulated clock.
//!
//! Every session carries a [`Plan`] drawn when it is created: how long until the doctor starts
//! recording, how long the recording lasts, how long transcription and analysis take, and how
//! the session ends (completed, expired, interrupted or failed). The next step of a session is
//! kept as `(due time, status)`; [`State::run_due`] applies every step due, in time order, each
//! at its own due time (which becomes `updatedAt` and the webhook's `occurredAt`).
//!
//! New → Recording (after 1-3 min) → Recorded (5-25 min of recording) → Transcribing (+30 s) →
//! Transcribed (+1-2 min) → Analyzing (+30 s) → Summarized (+1-2 min) → Verified by
//! [`super::NoaSimHandle::approve`] or after [`super::NoaSimConfig::auto_approve_after`].
//! Planned errors: Expired at `expiresAt` (never recorded), Interrupted part-way through the
//! recording, Failed part-way through transcription or analysis. Recover and regenerate
//! (re-)enter Analyzing and end Summarized with the next revision; they never fail.

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, RngCore};

use super::content;
use super::data::{Dataset, ts};
use super::wire::{Doctor, Facility, Operation, Section, SessionDetails, SessionStatus, Summary};

/// Why a control operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("session {0} does not exist")]
    NotFound(String),
    #[error("session {id} is {from} and cannot become {to}")]
    InvalidTransition {
        id: String,
        from: SessionStatus,
        to: SessionStatus,
    },
}

/// How a session's story ends (when nobody intervenes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Recorded, transcribed, analysed and summarized.
    Complete,
    /// Never recorded: Expired at `expiresAt`.
    Expire,
    /// The recording ends Interrupted.
    Interrupt,
    /// Transcription ends Failed.
    FailTranscribing,
    /// Analysis ends Failed.
    FailAnalyzing,
}

/// Durations of a session's steps, drawn when it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) outcome: Outcome,
    pub(crate) to_recording: TimeDelta,
    pub(crate) recording: TimeDelta,
    pub(crate) interrupted_after: TimeDelta,
    pub(crate) to_transcribing: TimeDelta,
    pub(crate) transcribing: TimeDelta,
    pub(crate) to_analyzing: TimeDelta,
    pub(crate) analyzing: TimeDelta,
    pub(crate) failed_after: TimeDelta,
    pub(crate) reanalyzing: TimeDelta,
}

fn secs(rng: &mut impl RngCore, from: i64, to: i64) -> TimeDelta {
    TimeDelta::seconds(rng.random_range(from..=to))
}

impl Plan {
    /// Durations for `outcome`.
    pub(crate) fn draw(rng: &mut impl RngCore, outcome: Outcome) -> Self {
        let recording = secs(rng, 5 * 60, 25 * 60);
        let interrupted_after = TimeDelta::seconds(rng.random_range(30..=recording.num_seconds().max(31)));
        Self {
            outcome,
            to_recording: secs(rng, 60, 180),
            recording,
            interrupted_after,
            to_transcribing: TimeDelta::seconds(30),
            transcribing: secs(rng, 60, 120),
            to_analyzing: TimeDelta::seconds(30),
            analyzing: secs(rng, 60, 120),
            failed_after: secs(rng, 20, 50),
            reanalyzing: secs(rng, 60, 120),
        }
    }

    /// An outcome drawn with the configured error rates, then its durations.
    pub(crate) fn draw_with_rates(rng: &mut impl RngCore, expired: f64, interrupted: f64, failed: f64) -> Self {
        let rate = |r: f64| if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) };
        let (expired, interrupted, failed) = (rate(expired), rate(interrupted), rate(failed));
        let draw: f64 = rng.random();
        let outcome = if draw < expired {
            Outcome::Expire
        } else if draw < expired + interrupted {
            Outcome::Interrupt
        } else if draw < expired + interrupted + failed {
            if rng.random_bool(0.5) {
                Outcome::FailTranscribing
            } else {
                Outcome::FailAnalyzing
            }
        } else {
            Outcome::Complete
        };
        Self::draw(rng, outcome)
    }
}

/// A status change, as the webhook announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) session_id: String,
    pub(crate) episode_id: String,
    pub(crate) doctor_id: String,
    pub(crate) facility_id: Option<String>,
    pub(crate) from: SessionStatus,
    pub(crate) to: SessionStatus,
    pub(crate) at: DateTime<Utc>,
    /// The session's own webhook URL (the consumer's default applies when `None`).
    pub(crate) webhook_url: Option<String>,
}

/// One session with what the API does not show.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) details: SessionDetails,
    pub(crate) summary: Option<Summary>,
    /// Revision 1's sections (what recover brings back).
    pub(crate) original: Option<Vec<Section>>,
    pub(crate) plan: Plan,
    pub(crate) next: Option<(DateTime<Utc>, SessionStatus)>,
    /// A recover or regenerate in progress.
    pub(crate) operation: Option<Operation>,
    pub(crate) content_seed: u64,
    pub(crate) created: DateTime<Utc>,
    pub(crate) expires: DateTime<Utc>,
}

/// What a new session is made of (from the API or the generator).
#[derive(Clone, Debug)]
pub(crate) struct NewSession {
    pub(crate) session_id: String,
    pub(crate) consumer_id: String,
    pub(crate) episode_id: String,
    pub(crate) doctor_id: String,
    pub(crate) facility_id: Option<String>,
    pub(crate) visit_type: Option<String>,
    pub(crate) language: String,
    pub(crate) speciality: Option<String>,
    pub(crate) metadata: Option<std::collections::BTreeMap<String, String>>,
    pub(crate) template: Option<super::wire::Template>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) plan: Plan,
    pub(crate) content_seed: u64,
}

impl Session {
    /// A session in New created at `created`, expiring `ttl` later, with its first step planned.
    pub(crate) fn create(new: &NewSession, created: DateTime<Utc>, ttl: TimeDelta) -> Self {
        let expires = created.checked_add_signed(ttl).unwrap_or(created);
        let mut session = Session {
            details: SessionDetails {
                session_id: new.session_id.clone(),
                consumer_id: new.consumer_id.clone(),
                episode_id: new.episode_id.clone(),
                doctor_id: new.doctor_id.clone(),
                facility_id: new.facility_id.clone(),
                status: SessionStatus::New,
                visit_type: new.visit_type.clone(),
                language: new.language.clone(),
                speciality: new.speciality.clone(),
                metadata: new.metadata.clone(),
                webhook_url: new.webhook_url.clone(),
                template: new.template.clone(),
                created_at: ts(created),
                updated_at: ts(created),
                recording_started_at: None,
                recording_ended_at: None,
                expires_at: ts(expires),
            },
            summary: None,
            original: None,
            plan: new.plan.clone(),
            next: None,
            operation: None,
            content_seed: new.content_seed,
            created,
            expires,
        };
        session.next = session.next_step(SessionStatus::New, created, None);
        session
    }

    /// The step that follows entering `status` at `at`.
    fn next_step(
        &self,
        status: SessionStatus,
        at: DateTime<Utc>,
        auto_approve: Option<TimeDelta>,
    ) -> Option<(DateTime<Utc>, SessionStatus)> {
        use SessionStatus::*;
        let plan = &self.plan;
        let after = |delta: TimeDelta, to: SessionStatus| Some((at.checked_add_signed(delta).unwrap_or(at), to));
        match status {
            New => {
                let recording = at.checked_add_signed(plan.to_recording).unwrap_or(at);
                if plan.outcome == Outcome::Expire || recording >= self.expires {
                    Some((self.expires.max(at), Expired))
                } else {
                    Some((recording, Recording))
                }
            }
            Recording if plan.outcome == Outcome::Interrupt => after(plan.interrupted_after, Interrupted),
            Recording => after(plan.recording, Recorded),
            Recorded => after(plan.to_transcribing, Transcribing),
            Transcribing if plan.outcome == Outcome::FailTranscribing => after(plan.failed_after, Failed),
            Transcribing => after(plan.transcribing, Transcribed),
            Transcribed => after(plan.to_analyzing, Analyzing),
            Analyzing if self.operation.is_some() => after(plan.reanalyzing, Summarized),
            Analyzing if plan.outcome == Outcome::FailAnalyzing => after(plan.failed_after, Failed),
            Analyzing => after(plan.analyzing, Summarized),
            Summarized => auto_approve.and_then(|delta| after(delta, Verified)),
            Verified | EmptySummaryVerified | Interrupted | Failed | Expired => None,
        }
    }

    fn content_context(&self, variant: u32) -> content::Context<'_> {
        content::Context {
            seed: self.content_seed,
            variant,
            visit_type: self.details.visit_type.as_deref(),
            speciality: self.details.speciality.as_deref(),
        }
    }

    /// Moves the session to `to` at `at` (no check of the lifecycle: callers decide), updates
    /// its times and summary, and plans its next step.
    pub(crate) fn enter(&mut self, to: SessionStatus, at: DateTime<Utc>, auto_approve: Option<TimeDelta>) -> Change {
        use SessionStatus::*;
        let from = self.details.status;
        self.details.status = to;
        self.details.updated_at = ts(at);
        match to {
            Recording => self.details.recording_started_at = Some(ts(at)),
            Recorded => self.details.recording_ended_at = Some(ts(at)),
            Interrupted if self.details.recording_started_at.is_some() => {
                self.details.recording_ended_at = Some(ts(at));
            }
            Summarized => self.summarize(at),
            Verified | EmptySummaryVerified => {
                if let Some(summary) = &mut self.summary {
                    summary.doctor_approved = true;
                    summary.approved_at = Some(ts(at));
                    if to == EmptySummaryVerified {
                        for section in &mut summary.sections {
                            section.content.clear();
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(summary) = &mut self.summary {
            summary.status = to;
        }
        self.next = self.next_step(to, at, auto_approve);
        Change {
            session_id: self.details.session_id.clone(),
            episode_id: self.details.episode_id.clone(),
            doctor_id: self.details.doctor_id.clone(),
            facility_id: self.details.facility_id.clone(),
            from,
            to,
            at,
            webhook_url: self.details.webhook_url.clone(),
        }
    }

    /// Writes the summary on entering Summarized: revision 1 the first time, the next revision
    /// after a recover (revision 1's sections) or a regenerate (new text).
    fn summarize(&mut self, at: DateTime<Utc>) {
        let operation = self.operation.take();
        let revision = match (&self.summary, operation) {
            (Some(summary), Some(_)) => summary.revision.saturating_add(1),
            (Some(summary), None) => summary.revision,
            (None, _) => 1,
        };
        let sections = match (operation, &self.original) {
            (Some(Operation::Recover), Some(original)) => original.clone(),
            _ => content::sections(self.details.template.as_ref(), self.content_context(revision)),
        };
        match (&mut self.summary, operation) {
            (Some(summary), Some(_)) => {
                summary.sections = sections;
                summary.revision = revision;
                summary.doctor_approved = false;
                summary.approved_at = None;
                summary.generated_at = ts(at);
            }
            (Some(summary), None) => {
                // Re-entered without an operation (not a path of the lifecycle): keep the text.
                summary.generated_at = ts(at);
            }
            (None, _) => {
                self.original = Some(sections.clone());
                self.summary = Some(Summary {
                    session_id: self.details.session_id.clone(),
                    status: SessionStatus::Summarized,
                    doctor_approved: false,
                    language: self.details.language.clone(),
                    sections,
                    revision: 1,
                    generated_at: ts(at),
                    approved_at: None,
                });
            }
        }
    }

    /// Summarized → Verified (or EmptySummaryVerified: every section's content becomes `""`).
    pub(crate) fn approve(&mut self, empty: bool, at: DateTime<Utc>) -> Result<Change, SimError> {
        let to = if empty {
            SessionStatus::EmptySummaryVerified
        } else {
            SessionStatus::Verified
        };
        if self.details.status != SessionStatus::Summarized || self.summary.is_none() {
            return Err(self.invalid(to));
        }
        Ok(self.enter(to, at, None))
    }

    /// New → Recording now.
    pub(crate) fn start_recording(
        &mut self,
        at: DateTime<Utc>,
        auto_approve: Option<TimeDelta>,
    ) -> Result<Change, SimError> {
        if self.details.status != SessionStatus::New {
            return Err(self.invalid(SessionStatus::Recording));
        }
        Ok(self.enter(SessionStatus::Recording, at, auto_approve))
    }

    /// Whether recover/regenerate may start: there is a summary and none is being redone.
    pub(crate) fn can_redo(&self) -> bool {
        self.summary.is_some()
            && self.operation.is_none()
            && matches!(
                self.details.status,
                SessionStatus::Summarized | SessionStatus::Verified | SessionStatus::EmptySummaryVerified
            )
    }

    /// Starts recover or regenerate: back to Analyzing now; the summary stays readable but is no
    /// longer approved.
    pub(crate) fn redo(&mut self, operation: Operation, at: DateTime<Utc>) -> Result<Change, SimError> {
        if !self.can_redo() {
            return Err(self.invalid(SessionStatus::Analyzing));
        }
        self.operation = Some(operation);
        if let Some(summary) = &mut self.summary {
            summary.doctor_approved = false;
            summary.approved_at = None;
        }
        Ok(self.enter(SessionStatus::Analyzing, at, None))
    }

    fn invalid(&self, to: SessionStatus) -> SimError {
        SimError::InvalidTransition {
            id: self.details.session_id.clone(),
            from: self.details.status,
            to,
        }
    }
}

/// Everything the simulator serves.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub(crate) consumer_id: String,
    /// In registration order.
    pub(crate) facilities: Vec<Facility>,
    /// In registration order.
    pub(crate) doctors: Vec<Doctor>,
    /// In creation order (`createdAt`, then `sessionId`).
    pub(crate) sessions: Vec<Session>,
}

impl State {
    pub(crate) fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.details.session_id == id)
    }

    pub(crate) fn session_mut(&mut self, id: &str) -> Result<&mut Session, SimError> {
        self.sessions
            .iter_mut()
            .find(|s| s.details.session_id == id)
            .ok_or_else(|| SimError::NotFound(id.to_owned()))
    }

    pub(crate) fn facility(&self, id: &str) -> Option<&Facility> {
        self.facilities.iter().find(|f| f.external_facility_id == id)
    }

    pub(crate) fn doctor(&self, facility_id: &str, doctor_id: &str) -> Option<&Doctor> {
        self.doctors
            .iter()
            .find(|d| d.external_facility_id == facility_id && d.external_doctor_id == doctor_id)
    }

    /// Applies every step due at or before `now`, earliest first (ties in session order).
    pub(crate) fn run_due(&mut self, now: DateTime<Utc>, auto_approve: Option<TimeDelta>) -> Vec<Change> {
        let mut changes = Vec::new();
        loop {
            let due = self
                .sessions
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.next.filter(|(at, _)| *at <= now).map(|(at, to)| (at, i, to)))
                .min_by_key(|(at, i, _)| (*at, *i));
            let Some((at, index, to)) = due else {
                break;
            };
            changes.push(self.sessions[index].enter(to, at, auto_approve));
        }
        changes
    }

    /// Keeps sessions in `createdAt`, then `sessionId` order.
    pub(crate) fn sort_sessions(&mut self) {
        self.sessions
            .sort_by(|a, b| (a.created, &a.details.session_id).cmp(&(b.created, &b.details.session_id)));
    }

    pub(crate) fn dataset(&self) -> Dataset {
        Dataset {
            consumer_id: self.consumer_id.clone(),
            facilities: self.facilities.clone(),
            doctors: self.doctors.clone(),
            sessions: self.sessions.iter().map(|s| s.details.clone()).collect(),
            summaries: self.sessions.iter().filter_map(|s| s.summary.clone()).collect(),
        }
    }
}

/// A lower-case version-4-style UUID from `rng`.
pub(crate) fn uuid(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `raw` is a UUID (`8-4-4-4-12` hex digits, any case).
pub(crate) fn is_uuid(raw: &str) -> bool {
    let parts: Vec<&str> = raw.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn uuids_are_well_formed() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let id = uuid(&mut rng);
        assert!(is_uuid(&id), "{id}");
        assert_eq!(id, id.to_lowercase());
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("0000000-0000-0000-0000-000000000000"));
    }

    #[test]
    fn rates_of_one_force_the_outcome() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for _ in 0..20 {
            assert_eq!(Plan::draw_with_rates(&mut rng, 1.0, 0.0, 0.0).outcome, Outcome::Expire);
            assert_eq!(
                Plan::draw_with_rates(&mut rng, 0.0, 1.0, 0.0).outcome,
                Outcome::Interrupt
            );
            assert!(matches!(
                Plan::draw_with_rates(&mut rng, 0.0, 0.0, 1.0).outcome,
                Outcome::FailAnalyzing | Outcome::FailTranscribing
            ));
            assert_eq!(
                Plan::draw_with_rates(&mut rng, 0.0, 0.0, 0.0).outcome,
                Outcome::Complete
            );
        }
    }
}
