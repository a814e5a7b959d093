//! The seam where access policy plugs in.
//!
//! An auth layer (SMART on FHIR) authenticates the request and puts a [`Caller`] into its
//! extensions; handlers ask the [`AccessPolicy`] whether the caller may perform an interaction, and
//! every resource about to be returned goes through [`AccessPolicy::visible`] and
//! [`AccessPolicy::redact`] **after** it was fetched (and, later, cached), so a cache entry is never
//! the reason one client sees what another may not.

use std::sync::Arc;

use adapter::{Interaction, Performer, ResourceType};
use chrono_tz::Tz;
use serde_json::Value;
use smart_auth::scopes::{Context, Permission, ResourceScope, ScopeSet};

use crate::error::GatewayError;
use crate::params;
use crate::query::{self, CountLimits};

/// Who is calling, as established by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No auth layer is configured (demo mode, or `serve --insecure-no-auth`).
    Unauthenticated,
    /// A verified access token.
    Token(Arc<Grant>),
}

/// What a verified token grants: its client, scopes and launch context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    pub scopes: Arc<ScopeSet>,
    /// The launch patient (`drchrono-9`): `patient/` scopes speak for this compartment only.
    pub patient: Option<String>,
    pub encounter: Option<String>,
    /// `Practitioner/drchrono-1`, `Patient/drchrono-9`.
    pub fhir_user: Option<String>,
}

impl Caller {
    /// A token caller (tests and the auth layer).
    pub fn token(client_id: &str, scopes: &str, patient: Option<&str>, fhir_user: Option<&str>) -> Self {
        Self::Token(Arc::new(Grant {
            client_id: client_id.to_owned(),
            scopes: Arc::new(ScopeSet::parse(scopes).unwrap_or_default()),
            patient: patient.map(str::to_owned),
            encounter: None,
            fhir_user: fhir_user.map(str::to_owned),
        }))
    }

    /// A patient app's token: `patient/*.rs` for `patient`, signed in as that patient.
    pub fn patient(patient: &str) -> Self {
        Self::token(
            "patient-app",
            "patient/*.rs",
            Some(patient),
            Some(&format!("Patient/{patient}")),
        )
    }

    /// True when provider-only data must be withheld and provider-only actions refused: the
    /// signed-in user is a patient, or the token holds only `patient/` resource scopes (no user or
    /// system access).
    pub fn patient_facing(&self) -> bool {
        match self {
            Self::Unauthenticated => false,
            Self::Token(g) => {
                !matches!(g.user(), User::Provider | User::None)
                    || (!g.scopes.is_empty()
                        && g.scopes.resource_scopes().next().is_some()
                        && g.scopes.resource_scopes().all(|s| s.context == Context::Patient))
            }
        }
    }

    /// The patient a patient-facing caller acts for: the signed-in patient, else the launch
    /// patient. `None` for other callers (and for a patient-facing token without a patient, which
    /// may then write nothing that names a patient).
    pub fn own_patient(&self) -> Option<&str> {
        match self {
            Self::Token(g) if self.patient_facing() => g.patient_user().or(g.patient.as_deref()),
            _ => None,
        }
    }
}

/// The signed-in user, as far as access is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum User<'a> {
    /// No `fhirUser`: a backend service, or a token that does not say.
    None,
    /// A `Practitioner` or `PractitionerRole`.
    Provider,
    /// A patient: their own compartment only.
    Patient(&'a str),
    /// Anyone else (`RelatedPerson`, `Person`, …): not a provider.
    Other,
}

/// Whose records one scope of a grant reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound<'a> {
    /// Everyone's (a practitioner's `user/` scope, a `system/` scope).
    All,
    /// This patient's compartment only.
    Compartment(&'a str),
    /// Nothing: a `patient/` scope without a patient in context, or one naming another patient
    /// than the signed-in one.
    Nothing,
}

impl Grant {
    /// Who the signed-in user is, from `fhirUser` (`Patient/drchrono-9`, or an absolute URL of
    /// this or another server, with or without `/_history/{v}`).
    fn user(&self) -> User<'_> {
        let Some(user) = self.fhir_user.as_deref() else {
            return User::None;
        };
        let path = user.trim_end_matches('/');
        let path = path.find("/_history/").map_or(path, |i| &path[..i]);
        let mut parts = path.rsplit('/');
        match (parts.next(), parts.next()) {
            (Some(id), Some("Patient")) if !id.is_empty() => User::Patient(id),
            (Some(id), Some("Practitioner" | "PractitionerRole")) if !id.is_empty() => User::Provider,
            _ => User::Other,
        }
    }

    /// The signed-in patient, when the user is one (`fhirUser` `Patient/drchrono-9`). A `fhirUser`
    /// of another server (`https://idp.example/fhir/Patient/9`) still names a patient user: such a
    /// user is bounded too (to an id no record here has).
    pub fn patient_user(&self) -> Option<&str> {
        match self.user() {
            User::Patient(id) => Some(id),
            _ => None,
        }
    }

    /// Whose records `scope` reaches. A `user/` scope grants what the user may see, and a
    /// patient user may see their own compartment only: so for a patient user **every** scope is
    /// bounded by their compartment, whatever its context says (the authorization server already
    /// narrows their `user/` scopes; tokens of an external IdP may not).
    ///
    /// Only a practitioner (or a token naming no user: a backend service, or an external IdP that
    /// does not say who) has `user/` and `system/` scopes over everyone's records. Any other user
    /// (`RelatedPerson/…`, `Person/…`, something unparseable) is not a provider: their scopes reach
    /// the launch patient's compartment, or nothing.
    fn bound(&self, scope: &ResourceScope) -> Bound<'_> {
        let launch = || self.patient.as_deref().map_or(Bound::Nothing, Bound::Compartment);
        match (self.user(), scope.context) {
            (User::Patient(own), Context::Patient) if self.patient.as_deref().is_some_and(|p| p != own) => {
                Bound::Nothing
            }
            (User::Patient(own), _) => Bound::Compartment(own),
            (_, Context::Patient) => launch(),
            (User::Provider | User::None, Context::User | Context::System) => Bound::All,
            (User::Other, Context::User) => launch(),
            (User::Other, Context::System) => Bound::Nothing,
        }
    }
}

/// Decides what a caller may do and see.
pub trait AccessPolicy: Send + Sync + 'static {
    /// May `caller` perform `interaction` on `resource_type`?
    fn authorize(
        &self,
        caller: &Caller,
        interaction: Interaction,
        resource_type: ResourceType,
    ) -> Result<(), GatewayError>;

    /// May `caller` see this resource? Resources it may not see are answered as if missing.
    fn visible(&self, caller: &Caller, resource: &Value) -> bool;

    /// Search parameters forced onto every search of `resource_type` by `caller` (a patient-context
    /// token's compartment: `patient=<id>`), so vendors filter instead of the gateway discarding. A
    /// search for another patient then finds nothing.
    fn search_filter(&self, caller: &Caller, resource_type: ResourceType) -> Vec<(String, String)> {
        let _ = (caller, resource_type);
        Vec::new()
    }

    /// May `caller` see every resource of `resource_type` (an unconstrained scope reaching
    /// everyone's records)? When not, what the gateway cannot check — a deleted record, one the
    /// vendor sent in a shape that cannot be mapped — is answered as missing, since telling it
    /// apart would tell the caller that someone else's record exists.
    fn sees_all(&self, caller: &Caller, resource_type: ResourceType) -> bool {
        let _ = (caller, resource_type);
        true
    }

    /// May `caller` make a write or run an operation that `performer` may perform? A
    /// provider-only one is refused to patient-facing callers.
    fn may_perform(&self, caller: &Caller, performer: Performer, what: &str) -> Result<(), GatewayError> {
        if performer == Performer::Provider && caller.patient_facing() {
            return Err(GatewayError::Forbidden(format!(
                "{what} is for providers and backend systems only, not for a patient-facing access token"
            )));
        }
        Ok(())
    }

    /// A patient-facing caller's write may name no patient but their own: every `Patient`
    /// reference in `resource` (a participant, the subject) must be theirs, or already stand in
    /// `before`, the current version the caller could see (a Zoom visit linked to the EHR names
    /// the patient twice, as Zoom's patient and as the EHR's).
    fn names_only_own_patient(
        &self,
        caller: &Caller,
        resource: &Value,
        before: Option<&Value>,
    ) -> Result<(), GatewayError> {
        if !caller.patient_facing() {
            return Ok(());
        }
        let own = caller.own_patient();
        let mut known: Vec<String> = Vec::new();
        if let Some(before) = before {
            visit_patient_references(before, &mut |id| known.extend(id.map(str::to_owned)));
        }
        let mut ok = true;
        visit_patient_references(resource, &mut |id| {
            ok &= id.is_some_and(|id| Some(id) == own || known.iter().any(|k| k == id))
        });
        if ok {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(
                "a patient-facing access token may write only resources that name no patient but its own".into(),
            ))
        }
    }

    /// Removes what `caller` may see the resource without: for patient-facing callers, every
    /// provider-only extension ([`adapter::systems::PROVIDER_ONLY_EXTENSIONS`], e.g. the Zoom
    /// provider join URL), wherever it stands in the resource.
    fn redact(&self, caller: &Caller, resource: &mut Value) {
        if caller.patient_facing() {
            strip_provider_only(resource);
        }
    }

    /// Would [`Self::redact`] change this document for `caller`? When not, the caller receives the
    /// cached document's bytes unchanged.
    fn redacts(&self, caller: &Caller, doc: &crate::doc::Doc) -> bool {
        caller.patient_facing() && doc.provider_only()
    }
}

/// Calls `f` with the id of every reference to a `Patient` in `value` (at any depth): `Some(id)`
/// for a literal `Patient/{id}` (relative or absolute), `None` for a `Patient`-typed reference
/// the gateway cannot tie to an id of its own (a logical reference by identifier, a contained
/// one).
fn visit_patient_references(value: &Value, f: &mut dyn FnMut(Option<&str>)) {
    match value {
        Value::Object(map) => {
            let literal = map.get("reference").and_then(Value::as_str).and_then(|r| {
                let mut parts = r.rsplit('/');
                let id = parts.next()?;
                (parts.next()? == "Patient").then_some(id)
            });
            let typed = map.get("type").and_then(Value::as_str) == Some("Patient")
                && (map.contains_key("reference") || map.contains_key("identifier") || map.contains_key("display"));
            match literal {
                Some(id) => f(Some(id)),
                None if typed => f(None),
                None => {}
            }
            map.values().for_each(|v| visit_patient_references(v, f));
        }
        Value::Array(items) => items.iter().for_each(|v| visit_patient_references(v, f)),
        _ => {}
    }
}

/// Removes provider-only extensions at any depth.
pub fn strip_provider_only(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in ["extension", "modifierExtension"] {
                if let Some(Value::Array(items)) = map.get_mut(key) {
                    items.retain(|e| {
                        !e.get("url")
                            .and_then(Value::as_str)
                            .is_some_and(|u| adapter::systems::PROVIDER_ONLY_EXTENSIONS.contains(&u))
                    });
                    if items.is_empty() {
                        map.remove(key);
                    }
                }
            }
            map.values_mut().for_each(strip_provider_only);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_provider_only),
        _ => {}
    }
}

/// Everything is allowed (provider-only data is still removed for patient-context callers): only
/// for demo mode and `--insecure-no-auth`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAccess;

impl AccessPolicy for OpenAccess {
    fn authorize(&self, _: &Caller, _: Interaction, _: ResourceType) -> Result<(), GatewayError> {
        Ok(())
    }

    fn visible(&self, _: &Caller, _: &Value) -> bool {
        true
    }
}

/// The SMART policy: every interaction needs a matching scope, `patient/` scopes see only the
/// launch patient's compartment, and `?`-constrained scopes only resources matching their search
/// parameters. It runs per request on resources already fetched (and, with caching, already
/// cached), so nothing cached is ever the reason a caller sees what its token does not grant.
#[derive(Debug, Clone)]
pub struct SmartPolicy {
    tz: Tz,
}

/// The Patient compartment of the types the gateway serves: the search parameter naming the
/// patient (`None` for Patient itself, matched by id). Other types are outside any compartment.
fn compartment_param(t: ResourceType) -> Option<Option<&'static str>> {
    match t {
        ResourceType::Patient => Some(None),
        ResourceType::Appointment | ResourceType::Encounter | ResourceType::DocumentReference => Some(Some("patient")),
        ResourceType::Practitioner | ResourceType::Location | ResourceType::Schedule | ResourceType::Slot => None,
    }
}

/// The permission an interaction needs.
pub fn permission(interaction: Interaction) -> Permission {
    match interaction {
        Interaction::Read => Permission::Read,
        Interaction::SearchType => Permission::Search,
        Interaction::Create => Permission::Create,
        Interaction::Update | Interaction::Patch => Permission::Update,
        Interaction::Delete => Permission::Delete,
    }
}

impl SmartPolicy {
    pub fn new(tz: Tz) -> Self {
        Self { tz }
    }

    /// True when `json` matches every `name=value` of a scope's constraint. A constraint must be
    /// made of search parameters of the type: one naming anything else (`?_count=1`, a parameter
    /// the gateway does not know) grants nothing, rather than being read as no constraint.
    fn satisfies(&self, t: ResourceType, constraint: &[(String, String)], json: &Value) -> bool {
        if constraint.is_empty() {
            return true;
        }
        let searchable = |name: &str| params::find(t, name.split(':').next().unwrap_or(name)).is_some();
        if !constraint.iter().all(|(name, _)| searchable(name)) {
            return false;
        }
        let limits = CountLimits { default: 1, max: 1 };
        let Ok(parsed) = query::parse(t, constraint, true, limits, self.tz, "") else {
            // A constraint the gateway cannot evaluate grants nothing.
            return false;
        };
        !parsed.request.params.is_empty()
            && parsed
                .request
                .params
                .iter()
                .all(|p| params::find(t, &p.name).is_some_and(|def| params::matches(def, p, json, self.tz)))
    }

    /// True when `json` (of type `t`) is in `patient`'s compartment, or `t` is in none.
    fn in_compartment(&self, t: ResourceType, patient: &str, json: &Value) -> bool {
        match compartment_param(t) {
            None => true,
            Some(None) => json.get("id").and_then(Value::as_str) == Some(patient),
            Some(Some(name)) => self.satisfies(t, &[(name.to_owned(), format!("Patient/{patient}"))], json),
        }
    }

    /// May this grant show `json`?
    fn grant_shows(&self, grant: &Grant, scope: &ResourceScope, t: ResourceType, json: &Value) -> bool {
        let bound_ok = match grant.bound(scope) {
            Bound::All => true,
            Bound::Compartment(p) => self.in_compartment(t, p, json),
            Bound::Nothing => false,
        };
        bound_ok && self.satisfies(t, &scope.constraint, json)
    }

    /// The scopes of `grant` that let it read or search `t`.
    fn readers<'a>(grant: &'a Grant, t: ResourceType) -> impl Iterator<Item = &'a ResourceScope> + 'a {
        grant.scopes.resource_scopes().filter(move |s| {
            s.covers_type(t.as_str())
                && (s.permissions.contains(Permission::Read) || s.permissions.contains(Permission::Search))
        })
    }
}

impl AccessPolicy for SmartPolicy {
    fn authorize(
        &self,
        caller: &Caller,
        interaction: Interaction,
        resource_type: ResourceType,
    ) -> Result<(), GatewayError> {
        let Caller::Token(grant) = caller else {
            return Err(GatewayError::Forbidden("this request needs an access token".into()));
        };
        let needed = permission(interaction);
        let usable = grant
            .scopes
            .grants(resource_type.as_str(), needed)
            .any(|s| grant.bound(s) != Bound::Nothing);
        if usable {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!(
                "the access token's scopes do not allow {} on {resource_type}",
                needed.verb()
            )))
        }
    }

    fn visible(&self, caller: &Caller, resource: &Value) -> bool {
        let Caller::Token(grant) = caller else {
            return false;
        };
        let Some(t) = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<ResourceType>().ok())
        else {
            return false;
        };
        Self::readers(grant, t).any(|s| self.grant_shows(grant, s, t, resource))
    }

    fn sees_all(&self, caller: &Caller, resource_type: ResourceType) -> bool {
        let Caller::Token(grant) = caller else {
            return false;
        };
        Self::readers(grant, resource_type).any(|s| grant.bound(s) == Bound::All && s.constraint.is_empty())
    }

    fn search_filter(&self, caller: &Caller, resource_type: ResourceType) -> Vec<(String, String)> {
        let Caller::Token(grant) = caller else {
            return Vec::new();
        };
        let Some(param) = compartment_param(resource_type) else {
            return Vec::new();
        };
        // Only when every grant that could return this type is bounded by one compartment.
        let mut bounds = grant
            .scopes
            .grants(resource_type.as_str(), Permission::Search)
            .map(|s| grant.bound(s))
            .filter(|b| *b != Bound::Nothing);
        let Some(Bound::Compartment(patient)) = bounds.next() else {
            return Vec::new();
        };
        if !bounds.all(|b| b == Bound::Compartment(patient)) {
            return Vec::new();
        }
        match param {
            None => vec![("_id".to_owned(), patient.to_owned())],
            Some(name) => vec![(name.to_owned(), format!("Patient/{patient}"))],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn appt(id: &str, patient: &str) -> Value {
        json!({"resourceType": "Appointment", "id": id, "status": "booked",
               "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                               {"actor": {"reference": "Practitioner/drchrono-1"}, "status": "accepted"}]})
    }

    fn patient(id: &str) -> Value {
        json!({"resourceType": "Patient", "id": id})
    }

    fn policy() -> SmartPolicy {
        SmartPolicy::new(Tz::UTC)
    }

    #[test]
    fn a_patient_user_sees_only_their_compartment_whatever_the_scope_says() {
        let p = policy();
        for scopes in [
            "user/*.rs",
            "user/*.cruds",
            "user/*.read",
            "user/*.*",
            "user/Patient.rs user/Appointment.rs",
            "system/*.rs",
            "patient/*.rs",
            "patient/*.read",
            "patient/Appointment.rs patient/Patient.rs",
        ] {
            for launch in [None, Some("drchrono-9")] {
                let caller = Caller::token("app", scopes, launch, Some("Patient/drchrono-9"));
                assert!(caller.patient_facing(), "{scopes}");
                assert_eq!(caller.own_patient(), Some("drchrono-9"));
                assert!(p.visible(&caller, &patient("drchrono-9")), "{scopes}: own record");
                assert!(
                    !p.visible(&caller, &patient("drchrono-10")),
                    "{scopes}: another patient"
                );
                assert!(p.visible(&caller, &appt("a1", "drchrono-9")), "{scopes}");
                assert!(!p.visible(&caller, &appt("a2", "drchrono-10")), "{scopes}");
                assert!(!p.sees_all(&caller, ResourceType::Appointment), "{scopes}");
                assert_eq!(
                    p.search_filter(&caller, ResourceType::Appointment),
                    vec![("patient".to_owned(), "Patient/drchrono-9".to_owned())],
                    "{scopes}: searches are narrowed"
                );
                assert_eq!(
                    p.search_filter(&caller, ResourceType::Patient),
                    vec![("_id".to_owned(), "drchrono-9".to_owned())]
                );
            }
        }
        // A launch patient other than the signed-in patient reaches nothing through patient/ scopes.
        let mismatched = Caller::token("app", "patient/*.rs", Some("drchrono-10"), Some("Patient/drchrono-9"));
        assert!(!p.visible(&mismatched, &patient("drchrono-10")));
        assert!(!p.visible(&mismatched, &patient("drchrono-9")));
        assert!(
            p.authorize(&mismatched, Interaction::Read, ResourceType::Patient)
                .is_err()
        );
    }

    #[test]
    fn users_who_are_not_providers_reach_only_the_launch_patient() {
        let p = policy();
        for user in [
            "RelatedPerson/drchrono-3",
            "Person/1",
            "patient/drchrono-10",
            "nonsense",
        ] {
            let launched = Caller::token("app", "user/*.rs", Some("drchrono-9"), Some(user));
            assert!(launched.patient_facing(), "{user}");
            assert!(p.visible(&launched, &patient("drchrono-9")), "{user}");
            assert!(!p.visible(&launched, &patient("drchrono-10")), "{user}");
            let alone = Caller::token("app", "user/*.rs system/*.rs", None, Some(user));
            assert!(!p.visible(&alone, &patient("drchrono-10")), "{user}");
            assert!(p.authorize(&alone, Interaction::Read, ResourceType::Patient).is_err());
        }
        for user in [
            "https://idp.example/fhir/Patient/drchrono-9/_history/2",
            "Patient/drchrono-9/",
        ] {
            let c = Caller::token("app", "user/*.rs", None, Some(user));
            assert_eq!(c.own_patient(), Some("drchrono-9"), "{user}");
            assert!(!p.visible(&c, &patient("drchrono-10")), "{user}");
        }
        let role = Caller::token("ehr", "user/*.rs", None, Some("PractitionerRole/r1"));
        assert!(p.visible(&role, &patient("drchrono-10")) && !role.patient_facing());
    }

    #[test]
    fn practitioners_and_systems_see_everyone() {
        let p = policy();
        for caller in [
            Caller::token("ehr", "user/*.rs", None, Some("Practitioner/drchrono-1")),
            Caller::token("backend", "system/*.rs", None, None),
        ] {
            assert!(!caller.patient_facing());
            assert!(p.visible(&caller, &patient("drchrono-10")));
            assert!(p.sees_all(&caller, ResourceType::Appointment));
            assert!(p.search_filter(&caller, ResourceType::Appointment).is_empty());
        }
        // A constrained scope does not see everything, so deletions stay hidden from it.
        let constrained = Caller::token("ehr", "user/Appointment.rs?status=booked", None, None);
        assert!(!p.sees_all(&constrained, ResourceType::Appointment));
    }

    #[test]
    fn a_constraint_that_selects_nothing_grants_nothing() {
        let p = policy();
        let caller = Caller::token("app", "user/Appointment.rs?foo=bar", None, None);
        assert!(!p.visible(&caller, &appt("a1", "drchrono-9")));
        let booked = Caller::token("app", "user/Appointment.rs?status=booked", None, None);
        assert!(p.visible(&booked, &appt("a1", "drchrono-9")));
    }

    #[test]
    fn provider_actions_are_refused_to_patient_facing_callers() {
        let p = policy();
        for caller in [
            Caller::patient("drchrono-9"),
            Caller::token("app", "patient/*.cruds", Some("drchrono-9"), None),
            Caller::token("app", "user/*.cruds", None, Some("Patient/drchrono-9")),
        ] {
            let e = p.may_perform(&caller, Performer::Provider, "$admit").unwrap_err();
            assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
            assert!(p.may_perform(&caller, Performer::AlsoPatient, "booking").is_ok());
        }
        for caller in [
            Caller::Unauthenticated,
            Caller::token("ehr", "user/*.cruds", None, Some("Practitioner/drchrono-1")),
            Caller::token(
                "ehr",
                "patient/*.cruds user/*.cruds",
                Some("drchrono-9"),
                Some("Practitioner/drchrono-1"),
            ),
            Caller::token("backend", "system/*.cruds", None, None),
        ] {
            assert!(
                p.may_perform(&caller, Performer::Provider, "$admit").is_ok(),
                "{caller:?}"
            );
        }
    }

    #[test]
    fn a_patient_writes_only_what_names_themselves() {
        let p = policy();
        let me = Caller::token("app", "user/*.cruds", None, Some("Patient/drchrono-9"));
        assert!(p.names_only_own_patient(&me, &appt("a", "drchrono-9"), None).is_ok());
        let mut both = appt("a", "drchrono-9");
        both["participant"]
            .as_array_mut()
            .unwrap()
            .push(json!({"actor": {"reference": "http://x/fhir/Patient/drchrono-10"}}));
        assert!(
            p.names_only_own_patient(&me, &both, None).is_err(),
            "an absolute reference to another patient"
        );
        let logical = json!({"resourceType": "Appointment", "participant": [
            {"actor": {"type": "Patient", "identifier": {"system": "urn:x", "value": "10"}}}]});
        assert!(
            p.names_only_own_patient(&me, &logical, None).is_err(),
            "a patient by identifier"
        );
        assert!(p.names_only_own_patient(&me, &appt("a", "zoom-10"), None).is_err());
        let provider = Caller::token("ehr", "user/*.cruds", None, Some("Practitioner/drchrono-1"));
        assert!(p.names_only_own_patient(&provider, &both, None).is_ok());
        // What the visit already named (the Zoom patient of a linked visit) may stay.
        let mut linked = appt("a", "drchrono-9");
        linked["participant"]
            .as_array_mut()
            .unwrap()
            .push(json!({"actor": {"reference": "Patient/zoom-4"}}));
        assert!(p.names_only_own_patient(&me, &linked, Some(&linked)).is_ok());
        assert!(p.names_only_own_patient(&me, &both, Some(&linked)).is_err());
    }

    #[test]
    fn provider_join_urls_are_removed_for_patients_only() {
        let appt = json!({"resourceType": "Appointment", "extension": [
            {"url": adapter::systems::EXT_PROVIDER_JOIN_URL, "valueUrl": "https://zoom.example/s/host"},
            {"url": adapter::systems::EXT_R5_VIRTUAL_SERVICE, "extension": [{"url": "addressUrl", "valueUrl": "https://zoom.example/j/patient"}]}
        ], "participant": [{"extension": [{"url": adapter::systems::EXT_PROVIDER_JOIN_URL, "valueUrl": "x"}]}]});
        let mut for_patient = appt.clone();
        OpenAccess.redact(&Caller::patient("drchrono-1"), &mut for_patient);
        let text = for_patient.to_string();
        assert!(!text.contains(adapter::systems::EXT_PROVIDER_JOIN_URL) && !text.contains("/s/host"));
        assert!(
            text.contains("https://zoom.example/j/patient"),
            "the patient's own join URL stays"
        );
        assert!(for_patient["participant"][0].get("extension").is_none());
        for caller in [
            Caller::Unauthenticated,
            Caller::token("ehr", "user/*.rs", None, Some("Practitioner/drchrono-1")),
            Caller::token("backend", "system/*.rs", None, None),
            // A practitioner's app launched with a patient still sees provider data.
            Caller::token(
                "ehr",
                "patient/*.rs user/*.rs",
                Some("drchrono-1"),
                Some("Practitioner/drchrono-1"),
            ),
        ] {
            let mut v = appt.clone();
            OpenAccess.redact(&caller, &mut v);
            assert_eq!(v, appt, "{caller:?} sees the provider URL");
        }
    }
}
