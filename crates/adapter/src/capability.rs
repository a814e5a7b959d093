//! What a source can do: resource types, interactions, pushed-down search parameters.

use std::fmt;
use std::str::FromStr;

/// The FHIR resource types the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Patient,
    Practitioner,
    Location,
    Appointment,
    Encounter,
    DocumentReference,
    Schedule,
    Slot,
}

impl ResourceType {
    /// Every type, in CapabilityStatement order.
    pub const ALL: [ResourceType; 8] = [
        Self::Patient,
        Self::Practitioner,
        Self::Location,
        Self::Appointment,
        Self::Encounter,
        Self::DocumentReference,
        Self::Schedule,
        Self::Slot,
    ];

    /// The FHIR name (`Patient`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Practitioner => "Practitioner",
            Self::Location => "Location",
            Self::Appointment => "Appointment",
            Self::Encounter => "Encounter",
            Self::DocumentReference => "DocumentReference",
            Self::Schedule => "Schedule",
            Self::Slot => "Slot",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or(())
    }
}

/// A FHIR RESTful interaction on a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    Read,
    SearchType,
    Create,
    Update,
    Patch,
    Delete,
}

impl Interaction {
    /// The CapabilityStatement code (`search-type`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::SearchType => "search-type",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// What a source supports for one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceCapability {
    pub resource_type: ResourceType,
    pub interactions: Vec<Interaction>,
    /// Search parameters the vendor filters on itself (the gateway filters every parameter anyway;
    /// this tells it, and the CapabilityStatement's readers, which ones narrow the vendor call).
    pub pushdown: Vec<&'static str>,
    /// Profiles the resources claim in `meta.profile`.
    pub profiles: Vec<&'static str>,
    /// Instance operations (`POST /fhir/{type}/{id}/${name}`) the source performs.
    pub operations: Vec<OperationDef>,
    /// The writes (of `interactions`) a patient-facing caller may also make, on their own
    /// compartment; every other write is for providers and systems only.
    pub patient_writes: Vec<Interaction>,
}

impl ResourceCapability {
    /// Who may make the write `interaction` on this type.
    pub fn performer(&self, interaction: Interaction) -> Performer {
        if self.patient_writes.contains(&interaction) {
            Performer::AlsoPatient
        } else {
            Performer::Provider
        }
    }
}

/// Who may perform a write or an operation. The gateway refuses a provider-only one (403) to a
/// patient-facing caller: a signed-in patient, or a token holding only `patient/` scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Performer {
    /// Providers and backend systems only.
    Provider,
    /// Also the patient, on their own compartment.
    AlsoPatient,
}

impl Performer {
    /// In words, for the OperationDefinitions and the OpenAPI document.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Provider => {
                "Performed by providers and backend systems only: a patient-facing access token (a signed-in patient, or only patient/ scopes) is refused with 403."
            }
            Self::AlsoPatient => "Also performed by a patient, on their own records.",
        }
    }
}

/// A FHIR operation a source performs on instances of a type (`Appointment/{id}/$admit`).
///
/// The gateway publishes each one as an `OperationDefinition` (`/fhir/OperationDefinition/{type}-{name}`),
/// in the CapabilityStatement and in the OpenAPI document, all from this declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationDef {
    /// The name without `$` (`admit`).
    pub name: &'static str,
    /// What it does, for the CapabilityStatement and the OpenAPI document.
    pub description: &'static str,
    /// True when the operation changes vendor data (it is a write for access policy).
    pub affects_state: bool,
    /// Whose instances it runs on: the source's own, or any source's (Noa starts a scribe session
    /// for a DrChrono `Appointment`).
    pub target: OperationTarget,
    /// True when the vendor completes the work later: the gateway answers `202 Accepted` with the
    /// `Parameters` the adapter returned and a `Content-Location` pointing at the resource its
    /// `follow` parameter names (the resource that reflects completion).
    pub asynchronous: bool,
    /// The input and output parameters, in order.
    pub parameters: &'static [OperationParam],
    /// Who may run it.
    pub performer: Performer,
}

/// Whose instances an operation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationTarget {
    /// The declaring source's own resources ([`crate::Adapter::operation`]).
    Own,
    /// Resources of any source ([`crate::Adapter::operation_on`]): the gateway reads the target for
    /// the caller and hands it over.
    AnySource,
}

/// Whether a parameter goes in or comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamUse {
    In,
    Out,
}

impl ParamUse {
    /// The `OperationDefinition.parameter.use` code.
    pub fn code(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// One parameter of an [`OperationDef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationParam {
    pub name: &'static str,
    pub direction: ParamUse,
    pub min: u32,
    /// `None` is `*`.
    pub max: Option<u32>,
    /// The FHIR type (`string`, `code`, `Reference`, `dateTime`, …); `None` for a parameter made of
    /// `parts`.
    pub fhir_type: Option<&'static str>,
    pub documentation: &'static str,
    /// Nested parameters (`Parameters.parameter.part`).
    pub parts: &'static [OperationParam],
}

impl OperationParam {
    /// A simple parameter of a FHIR type.
    pub const fn new(
        name: &'static str,
        direction: ParamUse,
        min: u32,
        max: Option<u32>,
        fhir_type: &'static str,
        documentation: &'static str,
    ) -> Self {
        Self {
            name,
            direction,
            min,
            max,
            fhir_type: Some(fhir_type),
            documentation,
            parts: &[],
        }
    }
}

/// Everything one source supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub resources: Vec<ResourceCapability>,
}

impl Capabilities {
    /// The capability for one type, if the source serves it.
    pub fn resource(&self, resource_type: ResourceType) -> Option<&ResourceCapability> {
        self.resources.iter().find(|r| r.resource_type == resource_type)
    }

    /// True when the source supports `interaction` on `resource_type`.
    pub fn supports(&self, resource_type: ResourceType, interaction: Interaction) -> bool {
        self.resource(resource_type)
            .is_some_and(|r| r.interactions.contains(&interaction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_type_names_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>(), Ok(t));
        }
        assert!("patient".parse::<ResourceType>().is_err());
        assert!("Observation".parse::<ResourceType>().is_err());
    }
}
