//! The seam where access policy plugs in.
//!
//! An auth layer (SMART on FHIR) authenticates the request and puts a [`Caller`] into its
//! extensions; handlers ask the [`AccessPolicy`] whether the caller may perform an interaction, and
//! every resource about to be returned goes through [`AccessPolicy::visible`] and
//! [`AccessPolicy::redact`] **after** it was fetched (and, later, cached), so a cache entry is never
//! the reason one client sees what another may not.

use adapter::{Interaction, ResourceType};
use serde_json::Value;

use crate::error::GatewayError;

/// Who is calling, as established by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No auth layer is configured (demo mode, or `serve --insecure-no-auth`).
    Unauthenticated,
    /// A patient-context token: only this patient's compartment, and no provider-only data.
    Patient { patient: String },
    /// A practitioner (user) token.
    Practitioner { fhir_user: Option<String> },
    /// A backend service (client credentials).
    System { client_id: String },
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

    /// Removes what `caller` may see the resource without: for patient-context callers, every
    /// provider-only extension ([`adapter::systems::PROVIDER_ONLY_EXTENSIONS`], e.g. the Zoom
    /// provider join URL), wherever it stands in the resource.
    fn redact(&self, caller: &Caller, resource: &mut Value) {
        if matches!(caller, Caller::Patient { .. }) {
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
        OpenAccess.redact(
            &Caller::Patient {
                patient: "drchrono-1".into(),
            },
            &mut for_patient,
        );
        let text = for_patient.to_string();
        assert!(!text.contains(adapter::systems::EXT_PROVIDER_JOIN_URL) && !text.contains("/s/host"));
        assert!(
            text.contains("https://zoom.example/j/patient"),
            "the patient's own join URL stays"
        );
        assert!(for_patient["participant"][0].get("extension").is_none());
        for caller in [
            Caller::Unauthenticated,
            Caller::Practitioner { fhir_user: None },
            Caller::System { client_id: "c".into() },
        ] {
            let mut v = appt.clone();
            OpenAccess.redact(&caller, &mut v);
            assert_eq!(v, appt, "{caller:?} sees the provider URL");
        }
    }
}
