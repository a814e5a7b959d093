//! Code systems, identifier systems and extension URLs shared by every adapter.

/// `meta.source` of resources from a source: names the vendor.
pub fn meta_source(source: &str) -> String {
    format!("urn:fhir-gateway:source:{source}")
}

/// The identifier system under which a source's native ids of one kind are published
/// (`urn:fhir-gateway:id:drchrono:patient`).
pub fn native_id_system(source: &str, kind: &str) -> String {
    format!("urn:fhir-gateway:id:{source}:{kind}")
}

pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
pub const LOINC: &str = "http://loinc.org";
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const V3_PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub const V3_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub const V3_NULL_FLAVOR: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";
pub const CDC_RACE_ETHNICITY: &str = "urn:oid:2.16.840.1.113883.6.238";
pub const US_CORE_RACE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";
pub const US_CORE_ETHNICITY: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity";
pub const US_CORE_DOC_CATEGORY: &str = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
pub const URN_IETF_BCP47: &str = "urn:ietf:bcp:47";
pub const LOCATION_PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
pub const DOC_TAGS: &str = "urn:fhir-gateway:tag:document-metatag";

/// URL of the core `data-absent-reason` extension.
pub const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

pub const PROFILE_US_CORE_PATIENT: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient";
pub const PROFILE_US_CORE_PRACTITIONER: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitioner";
pub const PROFILE_US_CORE_LOCATION: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-location";
pub const PROFILE_US_CORE_DOCUMENTREFERENCE: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference";

/// An extension carrying the provider's (host's) join URL of a virtual visit. Only practitioner and
/// system callers may see it: the gateway's access policy removes it for patient-context callers.
pub const EXT_PROVIDER_JOIN_URL: &str = "urn:fhir-gateway:ext:provider-join-url";

/// Extensions (by URL) that carry provider-only data, removed wherever they appear in a resource
/// served to a patient-context caller.
pub const PROVIDER_ONLY_EXTENSIONS: &[&str] = &[EXT_PROVIDER_JOIN_URL];

/// The R5 cross-version extension for `Appointment.virtualService` (with its `_datatype`).
pub const EXT_R5_VIRTUAL_SERVICE: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService";
