//! The seam where access policy plugs in.
//!
//! An auth layer (SMART on FHIR) authenticates the request and puts a [`Caller`] into its
//! extensions; handlers ask the [`AccessPolicy`] whether the caller may perform an interaction, and
//! every resource about to be returned goes through [`AccessPolicy::visible`] and
//! [`AccessPolicy::redact`] **after** it was fetched (and, later, cached), so a cache entry is never
//! the reason one client sees what another may not.

use std::sync::Arc;

use adapter::{Interaction, ResourceType};
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

    /// True when provider-only data must be withheld: the signed-in user is a patient, or the token
    /// holds only `patient/` resource scopes (no user or system access).
    pub fn patient_facing(&self) -> bool {
        match self {
            Self::Unauthenticated => false,
            Self::Token(g) => {
                g.fhir_user.as_deref().is_some_and(|u| u.starts_with("Patient/"))
                    || (!g.scopes.is_empty()
                        && g.scopes.resource_scopes().next().is_some()
                        && g.scopes.resource_scopes().all(|s| s.context == Context::Patient))
            }
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

    /// Removes what `caller` may see the resource without: for patient-facing callers, every
    /// provider-only extension ([`adapter::systems::PROVIDER_ONLY_EXTENSIONS`], e.g. the Zoom
    /// provider join URL), wherever it stands in the resource.
    fn redact(&self, caller: &Caller, resource: &mut Value) {
        if caller.patient_facing() {
            strip_provider_only(resource);
        }
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

    /// True when `json` matches every `name=value` of a scope's constraint.
    fn satisfies(&self, t: ResourceType, constraint: &[(String, String)], json: &Value) -> bool {
        if constraint.is_empty() {
            return true;
        }
        let limits = CountLimits { default: 1, max: 1 };
        let Ok(parsed) = query::parse(t, constraint, true, limits, self.tz, "") else {
            // A constraint the gateway cannot evaluate grants nothing.
            return false;
        };
        parsed
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
        let context_ok = match scope.context {
            Context::Patient => grant
                .patient
                .as_deref()
                .is_some_and(|p| self.in_compartment(t, p, json)),
            Context::User | Context::System => true,
        };
        context_ok && self.satisfies(t, &scope.constraint, json)
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
            .any(|s| s.context != Context::Patient || grant.patient.is_some());
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
        grant
            .scopes
            .resource_scopes()
            .filter(|s| {
                s.covers_type(t.as_str())
                    && (s.permissions.contains(Permission::Read) || s.permissions.contains(Permission::Search))
            })
            .any(|s| self.grant_shows(grant, s, t, resource))
    }

    fn search_filter(&self, caller: &Caller, resource_type: ResourceType) -> Vec<(String, String)> {
        let Caller::Token(grant) = caller else {
            return Vec::new();
        };
        let (Some(patient), Some(param)) = (grant.patient.as_deref(), compartment_param(resource_type)) else {
            return Vec::new();
        };
        // Only when every grant that could return this type is bounded by the compartment.
        let all_patient = grant
            .scopes
            .grants(resource_type.as_str(), Permission::Search)
            .all(|s| s.context == Context::Patient);
        if !all_patient {
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
