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
}

/// A FHIR operation a source performs on instances of a type (`Appointment/{id}/$admit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationDef {
    /// The name without `$` (`admit`).
    pub name: &'static str,
    /// What it does, for the CapabilityStatement and the OpenAPI document.
    pub description: &'static str,
    /// True when the operation changes vendor data (it is a write for access policy).
    pub affects_state: bool,
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
