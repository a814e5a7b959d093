//! Code tables: DrChrono values → FHIR codes, one enum per table, every row tested below.
//!
//! Vendor values are matched after trimming and ignoring ASCII case. Each table documents what an
//! unknown vendor value does.

use adapter::systems;

pub use adapter::codes::{ATTENDER, CLINICAL_NOTE_CATEGORY, Code, FhirAppointmentStatus, FhirDocStatus};

fn matches(wire: &str, spelling: &str) -> bool {
    wire.trim().eq_ignore_ascii_case(spelling)
}

// ---------------------------------------------------------------------------------------------
// Appointment status
// ---------------------------------------------------------------------------------------------

/// DrChrono appointment `status`. An unknown status (e.g. a practice's custom status) is refused
/// by the mapping: guessing whether a visit happened would be worse than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentStatus {
    /// `""`: no status set yet.
    Unset,
    Confirmed,
    NotConfirmed,
    Arrived,
    CheckedIn,
    InRoom,
    InSession,
    Complete,
    Cancelled,
    Rescheduled,
    NoShow,
}

impl AppointmentStatus {
    pub const ALL: [Self; 11] = [
        Self::Unset,
        Self::Confirmed,
        Self::NotConfirmed,
        Self::Arrived,
        Self::CheckedIn,
        Self::InRoom,
        Self::InSession,
        Self::Complete,
        Self::Cancelled,
        Self::Rescheduled,
        Self::NoShow,
    ];

    /// The vendor's spelling.
    pub fn wire(self) -> &'static str {
        match self {
            Self::Unset => "",
            Self::Confirmed => "Confirmed",
            Self::NotConfirmed => "Not Confirmed",
            Self::Arrived => "Arrived",
            Self::CheckedIn => "Checked In",
            Self::InRoom => "In Room",
            Self::InSession => "In Session",
            Self::Complete => "Complete",
            Self::Cancelled => "Cancelled",
            Self::Rescheduled => "Rescheduled",
            Self::NoShow => "No Show",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| matches(s, v.wire()))
    }

    /// The FHIR status. "Checked In", "In Room" and "In Session" are all past check-in;
    /// DrChrono's "Arrived" (in the waiting room, not yet checked in) is FHIR `arrived`.
    pub fn fhir(self) -> FhirAppointmentStatus {
        match self {
            Self::Unset | Self::Confirmed => FhirAppointmentStatus::Booked,
            Self::NotConfirmed => FhirAppointmentStatus::Pending,
            Self::Arrived => FhirAppointmentStatus::Arrived,
            Self::CheckedIn | Self::InRoom | Self::InSession => FhirAppointmentStatus::CheckedIn,
            Self::Complete => FhirAppointmentStatus::Fulfilled,
            Self::Cancelled | Self::Rescheduled => FhirAppointmentStatus::Cancelled,
            Self::NoShow => FhirAppointmentStatus::Noshow,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gender
// ---------------------------------------------------------------------------------------------

/// DrChrono patient `gender`: "Male", "Female", "Other" (doc) plus "", "UNK" and "ASKU"
/// (OpenAPI). US Core requires `Patient.gender`, so blank, UNK, ASKU **and any unrecognised
/// value** map to `unknown` rather than leaving the element out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Other,
    /// "", "UNK", "ASKU" or a value this table does not know.
    Unknown,
}

impl Gender {
    pub const ALL: [Self; 4] = [Self::Male, Self::Female, Self::Other, Self::Unknown];

    pub fn from_wire(s: &str) -> Self {
        [Self::Male, Self::Female, Self::Other]
            .into_iter()
            .find(|g| matches(s, g.wire()))
            .unwrap_or(Self::Unknown)
    }

    /// The vendor's spelling (`""` for unknown).
    pub fn wire(self) -> &'static str {
        match self {
            Self::Male => "Male",
            Self::Female => "Female",
            Self::Other => "Other",
            Self::Unknown => "",
        }
    }

    /// FHIR `AdministrativeGender`.
    pub fn fhir(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Patient status
// ---------------------------------------------------------------------------------------------

/// DrChrono `patient_status`. `Patient.active` is a modifier element, so an unknown value is an
/// error rather than a guess; blank leaves `active` out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientStatus {
    /// "A".
    Active,
    /// "I".
    Inactive,
    /// "D": inactive-deceased.
    Deceased,
}

impl PatientStatus {
    pub const ALL: [Self; 3] = [Self::Active, Self::Inactive, Self::Deceased];

    pub fn wire(self) -> &'static str {
        match self {
            Self::Active => "A",
            Self::Inactive => "I",
            Self::Deceased => "D",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| matches(s, v.wire()))
    }

    /// `Patient.active`.
    pub fn active(self) -> bool {
        matches!(self, Self::Active)
    }

    /// `Patient.deceasedBoolean`, when the status says anything about it.
    pub fn deceased(self) -> Option<bool> {
        matches!(self, Self::Deceased).then_some(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Race and ethnicity (US Core, OMB categories under urn:oid:2.16.840.1.113883.6.238)
// ---------------------------------------------------------------------------------------------

/// "asked but declined", the US Core answer for a patient who declined to state.
pub const ASKED_BUT_DECLINED: Code = Code {
    system: systems::V3_NULL_FLAVOR,
    code: "ASKU",
    display: "asked but declined",
};

/// What a race or ethnicity value becomes in the US Core extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OmbAnswer {
    /// The `ombCategory` coding, if the value is one of the OMB categories (or ASKU).
    pub omb_category: Option<Code>,
    /// The `detailed` coding, for a CDC code below the OMB categories.
    pub detailed: Option<Code>,
    /// The extension's required `text`.
    pub text: &'static str,
}

/// DrChrono `race`. Blank gives no extension. A value this table does not know gives an
/// extension with only `text` (the vendor value), which US Core allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Race {
    Blank,
    Indian,
    Asian,
    Black,
    Hawaiian,
    White,
    /// OpenAPI only.
    Other,
    Declined,
}

const fn cdc(code: &'static str, display: &'static str) -> Code {
    Code {
        system: systems::CDC_RACE_ETHNICITY,
        code,
        display,
    }
}

impl Race {
    pub const ALL: [Self; 8] = [
        Self::Blank,
        Self::Indian,
        Self::Asian,
        Self::Black,
        Self::Hawaiian,
        Self::White,
        Self::Other,
        Self::Declined,
    ];

    pub fn wire(self) -> &'static str {
        match self {
            Self::Blank => "blank",
            Self::Indian => "indian",
            Self::Asian => "asian",
            Self::Black => "black",
            Self::Hawaiian => "hawaiian",
            Self::White => "white",
            Self::Other => "other",
            Self::Declined => "declined",
        }
    }

    /// `""` reads as [`Race::Blank`]; `None` for a value the table does not know.
    pub fn from_wire(s: &str) -> Option<Self> {
        if s.trim().is_empty() {
            return Some(Self::Blank);
        }
        Self::ALL.into_iter().find(|v| matches(s, v.wire()))
    }

    /// The extension content; `None` for blank.
    pub fn answer(self) -> Option<OmbAnswer> {
        let omb = |code: Code| OmbAnswer {
            omb_category: Some(code),
            detailed: None,
            text: code.display,
        };
        match self {
            Self::Blank => None,
            Self::Indian => Some(omb(cdc("1002-5", "American Indian or Alaska Native"))),
            Self::Asian => Some(omb(cdc("2028-9", "Asian"))),
            Self::Black => Some(omb(cdc("2054-5", "Black or African American"))),
            Self::Hawaiian => Some(omb(cdc("2076-8", "Native Hawaiian or Other Pacific Islander"))),
            Self::White => Some(omb(cdc("2106-3", "White"))),
            // "Other Race" is a CDC race code but not an OMB category: it goes in `detailed`.
            Self::Other => Some(OmbAnswer {
                omb_category: None,
                detailed: Some(cdc("2131-1", "Other Race")),
                text: "Other Race",
            }),
            Self::Declined => Some(omb(ASKED_BUT_DECLINED)),
        }
    }
}

/// DrChrono `ethnicity`. Blank gives no extension; an unknown value gives a text-only extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ethnicity {
    Blank,
    Hispanic,
    NotHispanic,
    Declined,
}

impl Ethnicity {
    pub const ALL: [Self; 4] = [Self::Blank, Self::Hispanic, Self::NotHispanic, Self::Declined];

    pub fn wire(self) -> &'static str {
        match self {
            Self::Blank => "blank",
            Self::Hispanic => "hispanic",
            Self::NotHispanic => "not_hispanic",
            Self::Declined => "declined",
        }
    }

    /// `""` reads as [`Ethnicity::Blank`]; `None` for a value the table does not know.
    pub fn from_wire(s: &str) -> Option<Self> {
        if s.trim().is_empty() {
            return Some(Self::Blank);
        }
        Self::ALL.into_iter().find(|v| matches(s, v.wire()))
    }

    /// The extension content; `None` for blank.
    pub fn answer(self) -> Option<OmbAnswer> {
        let code = match self {
            Self::Blank => return None,
            Self::Hispanic => cdc("2135-2", "Hispanic or Latino"),
            Self::NotHispanic => cdc("2186-5", "Not Hispanic or Latino"),
            Self::Declined => ASKED_BUT_DECLINED,
        };
        Some(OmbAnswer {
            omb_category: Some(code),
            detailed: None,
            text: code.display,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Languages: ISO 639-2 (bibliographic or terminologic) → BCP-47
// ---------------------------------------------------------------------------------------------

macro_rules! languages {
    ($($variant:ident => $bcp47:literal, $name:literal, [$($iso:literal),+];)*) => {
        /// A language of DrChrono's `preferred_language` (ISO 639-2 alpha-3).
        ///
        /// BCP-47 uses the ISO 639-1 two-letter code where one exists, else the three-letter code.
        /// DrChrono's non-language values ("blank", "other", "unknown", "declined", "") are not
        /// languages ([`Language::is_no_language`]) and give no `communication`. Any other code this
        /// table does not know keeps only the text (the vendor's description, else the code).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Language { $($variant,)* }

        impl Language {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The ISO 639-2 codes of the language (bibliographic and terminologic).
            pub fn iso639_2(self) -> &'static [&'static str] {
                match self { $(Self::$variant => &[$($iso),+],)* }
            }

            /// The BCP-47 tag.
            pub fn bcp47(self) -> &'static str {
                match self { $(Self::$variant => $bcp47,)* }
            }

            /// The English name (the display of the `urn:ietf:bcp:47` coding).
            pub fn display(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
        }
    };
}

languages! {
    Afrikaans => "af", "Afrikaans", ["afr"];
    Albanian => "sq", "Albanian", ["sqi", "alb"];
    Amharic => "am", "Amharic", ["amh"];
    Arabic => "ar", "Arabic", ["ara"];
    Armenian => "hy", "Armenian", ["hye", "arm"];
    Bengali => "bn", "Bengali", ["ben"];
    Bosnian => "bs", "Bosnian", ["bos"];
    Bulgarian => "bg", "Bulgarian", ["bul"];
    Burmese => "my", "Burmese", ["mya", "bur"];
    Catalan => "ca", "Catalan", ["cat"];
    Chamorro => "ch", "Chamorro", ["cha"];
    Cherokee => "chr", "Cherokee", ["chr"];
    Chinese => "zh", "Chinese", ["zho", "chi"];
    Croatian => "hr", "Croatian", ["hrv"];
    Czech => "cs", "Czech", ["ces", "cze"];
    Danish => "da", "Danish", ["dan"];
    Dutch => "nl", "Dutch", ["nld", "dut"];
    English => "en", "English", ["eng"];
    Estonian => "et", "Estonian", ["est"];
    Fijian => "fj", "Fijian", ["fij"];
    Finnish => "fi", "Finnish", ["fin"];
    French => "fr", "French", ["fra", "fre"];
    Georgian => "ka", "Georgian", ["kat", "geo"];
    German => "de", "German", ["deu", "ger"];
    Greek => "el", "Greek", ["ell", "gre"];
    Gujarati => "gu", "Gujarati", ["guj"];
    HaitianCreole => "ht", "Haitian Creole", ["hat"];
    Hausa => "ha", "Hausa", ["hau"];
    Hawaiian => "haw", "Hawaiian", ["haw"];
    Hebrew => "he", "Hebrew", ["heb"];
    Hindi => "hi", "Hindi", ["hin"];
    Hmong => "hmn", "Hmong", ["hmn"];
    Hungarian => "hu", "Hungarian", ["hun"];
    Icelandic => "is", "Icelandic", ["isl", "ice"];
    Igbo => "ig", "Igbo", ["ibo"];
    Iloko => "ilo", "Iloko", ["ilo"];
    Indonesian => "id", "Indonesian", ["ind"];
    Irish => "ga", "Irish", ["gle"];
    Italian => "it", "Italian", ["ita"];
    Japanese => "ja", "Japanese", ["jpn"];
    Kannada => "kn", "Kannada", ["kan"];
    Khmer => "km", "Khmer", ["khm"];
    Korean => "ko", "Korean", ["kor"];
    Kurdish => "ku", "Kurdish", ["kur"];
    Lao => "lo", "Lao", ["lao"];
    Latvian => "lv", "Latvian", ["lav"];
    Lithuanian => "lt", "Lithuanian", ["lit"];
    Macedonian => "mk", "Macedonian", ["mkd", "mac"];
    Malay => "ms", "Malay", ["msa", "may"];
    Malayalam => "ml", "Malayalam", ["mal"];
    Marathi => "mr", "Marathi", ["mar"];
    Marshallese => "mh", "Marshallese", ["mah"];
    Mongolian => "mn", "Mongolian", ["mon"];
    Navajo => "nv", "Navajo", ["nav"];
    Nepali => "ne", "Nepali", ["nep"];
    Norwegian => "no", "Norwegian", ["nor"];
    Oromo => "om", "Oromo", ["orm"];
    Panjabi => "pa", "Panjabi", ["pan"];
    Pashto => "ps", "Pashto", ["pus"];
    Persian => "fa", "Persian", ["fas", "per"];
    Polish => "pl", "Polish", ["pol"];
    Portuguese => "pt", "Portuguese", ["por"];
    Romanian => "ro", "Romanian", ["ron", "rum"];
    Russian => "ru", "Russian", ["rus"];
    Samoan => "sm", "Samoan", ["smo"];
    Serbian => "sr", "Serbian", ["srp"];
    Sinhala => "si", "Sinhala", ["sin"];
    Slovak => "sk", "Slovak", ["slk", "slo"];
    Slovenian => "sl", "Slovenian", ["slv"];
    Somali => "so", "Somali", ["som"];
    Spanish => "es", "Spanish", ["spa"];
    Swahili => "sw", "Swahili", ["swa"];
    Swedish => "sv", "Swedish", ["swe"];
    Tagalog => "tl", "Tagalog", ["tgl"];
    Tamil => "ta", "Tamil", ["tam"];
    Telugu => "te", "Telugu", ["tel"];
    Thai => "th", "Thai", ["tha"];
    Tibetan => "bo", "Tibetan", ["bod", "tib"];
    Tigrinya => "ti", "Tigrinya", ["tir"];
    Tongan => "to", "Tongan", ["ton"];
    Turkish => "tr", "Turkish", ["tur"];
    Ukrainian => "uk", "Ukrainian", ["ukr"];
    Urdu => "ur", "Urdu", ["urd"];
    Vietnamese => "vi", "Vietnamese", ["vie"];
    Welsh => "cy", "Welsh", ["cym", "wel"];
    Yiddish => "yi", "Yiddish", ["yid"];
    Yoruba => "yo", "Yoruba", ["yor"];
}

impl Language {
    /// The language of an ISO 639-2 code; `None` for non-languages and unknown codes.
    pub fn from_iso639_2(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|l| l.iso639_2().iter().any(|iso| matches(s, iso)))
    }

    /// True for DrChrono's `preferred_language` values that name no language.
    pub fn is_no_language(s: &str) -> bool {
        ["", "blank", "other", "unknown", "declined"]
            .iter()
            .any(|v| matches(s, v))
    }

    pub fn code(self) -> Code {
        Code {
            system: systems::URN_IETF_BCP47,
            code: self.bcp47(),
            display: self.display(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FHIR-side code tables (our own enums so a typo cannot reach a resource)
// ---------------------------------------------------------------------------------------------

/// `ContactPoint.system` + `ContactPoint.use` for each kind of vendor contact field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Telecom {
    /// A phone number whose use DrChrono does not say.
    Phone,
    MobilePhone,
    HomePhone,
    WorkPhone,
    WorkFax,
    HomeEmail,
    WorkEmail,
    WorkUrl,
}

impl Telecom {
    pub const ALL: [Self; 8] = [
        Self::Phone,
        Self::MobilePhone,
        Self::HomePhone,
        Self::WorkPhone,
        Self::WorkFax,
        Self::HomeEmail,
        Self::WorkEmail,
        Self::WorkUrl,
    ];

    /// (`ContactPoint.system`, `ContactPoint.use`).
    pub fn codes(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Phone => ("phone", None),
            Self::MobilePhone => ("phone", Some("mobile")),
            Self::HomePhone => ("phone", Some("home")),
            Self::WorkPhone => ("phone", Some("work")),
            Self::WorkFax => ("fax", Some("work")),
            Self::HomeEmail => ("email", Some("home")),
            Self::WorkEmail => ("email", Some("work")),
            Self::WorkUrl => ("url", Some("work")),
        }
    }
}

/// `Location.physicalType` codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhysicalType {
    /// An office: the building (suite) the practice works in.
    Building,
    /// An exam room.
    Room,
}

impl PhysicalType {
    pub fn code(self) -> Code {
        let (code, display) = match self {
            Self::Building => ("bu", "Building"),
            Self::Room => ("ro", "Room"),
        };
        Code {
            system: systems::LOCATION_PHYSICAL_TYPE,
            code,
            display,
        }
    }
}

/// `DocumentReference.status` (required binding `document-reference-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStatus {
    Current,
    Superseded,
    EnteredInError,
}

impl DocumentStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Superseded => "superseded",
            Self::EnteredInError => "entered-in-error",
        }
    }

    /// `archived` (DrChrono's soft delete) → entered-in-error; otherwise current.
    pub fn from_archived(archived: bool) -> Self {
        if archived { Self::EnteredInError } else { Self::Current }
    }
}

/// A clinical note's `docStatus`: a locked (signed) DrChrono note is final; an open one is
/// preliminary.
pub fn note_doc_status(locked: bool) -> FhirDocStatus {
    if locked {
        FhirDocStatus::Final
    } else {
        FhirDocStatus::Preliminary
    }
}

/// The LOINC type of a DrChrono clinical note: always "Progress note". DrChrono notes are
/// free-form templates whose section names say nothing reliable about the document class, so no
/// other LOINC is guessed from the content.
pub const PROGRESS_NOTE: Code = Code {
    system: systems::LOINC,
    code: "11506-3",
    display: "Progress note",
};

/// `unknown` from v3-NullFlavor: the US Core DocumentReference type value set includes it, and it
/// is the honest type of an uploaded document DrChrono says nothing about.
pub const UNKNOWN_DOCUMENT_TYPE: Code = Code {
    system: systems::V3_NULL_FLAVOR,
    code: "UNK",
    display: "unknown",
};

/// v2-0131 contact role of an emergency contact.
pub const EMERGENCY_CONTACT: Code = Code {
    system: "http://terminology.hl7.org/CodeSystem/v2-0131",
    code: "C",
    display: "Emergency Contact",
};

/// v2-0203 identifier type of a chart (medical record) number.
pub const MEDICAL_RECORD_NUMBER: Code = Code {
    system: systems::V2_0203,
    code: "MR",
    display: "Medical record number",
};

// ---------------------------------------------------------------------------------------------
// File types
// ---------------------------------------------------------------------------------------------

/// A file's MIME type from the extension of its URL's path (query and fragment ignored). Unknown
/// extensions give no `contentType` rather than a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Pdf,
    Jpeg,
    Png,
    Gif,
    Tiff,
    Bmp,
    Webp,
    Heic,
    Text,
    Rtf,
    Html,
    Xml,
    Csv,
    Doc,
    Docx,
    Dicom,
}

impl FileType {
    pub const ALL: [Self; 16] = [
        Self::Pdf,
        Self::Jpeg,
        Self::Png,
        Self::Gif,
        Self::Tiff,
        Self::Bmp,
        Self::Webp,
        Self::Heic,
        Self::Text,
        Self::Rtf,
        Self::Html,
        Self::Xml,
        Self::Csv,
        Self::Doc,
        Self::Docx,
        Self::Dicom,
    ];

    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Pdf => &["pdf"],
            Self::Jpeg => &["jpg", "jpeg"],
            Self::Png => &["png"],
            Self::Gif => &["gif"],
            Self::Tiff => &["tif", "tiff"],
            Self::Bmp => &["bmp"],
            Self::Webp => &["webp"],
            Self::Heic => &["heic"],
            Self::Text => &["txt"],
            Self::Rtf => &["rtf"],
            Self::Html => &["htm", "html"],
            Self::Xml => &["xml"],
            Self::Csv => &["csv"],
            Self::Doc => &["doc"],
            Self::Docx => &["docx"],
            Self::Dicom => &["dcm"],
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
            Self::Webp => "image/webp",
            Self::Heic => "image/heic",
            Self::Text => "text/plain",
            Self::Rtf => "application/rtf",
            Self::Html => "text/html",
            Self::Xml => "application/xml",
            Self::Csv => "text/csv",
            Self::Doc => "application/msword",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Dicom => "application/dicom",
        }
    }

    /// The type of the file a URL points at.
    pub fn from_url(url: &str) -> Option<Self> {
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        let (_, ext) = last.rsplit_once('.')?;
        Self::ALL
            .into_iter()
            .find(|t| t.extensions().iter().any(|e| ext.eq_ignore_ascii_case(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_appointment_status_row() {
        use FhirAppointmentStatus as F;
        let table = [
            ("", F::Booked),
            ("Confirmed", F::Booked),
            ("Not Confirmed", F::Pending),
            ("Arrived", F::Arrived),
            ("Checked In", F::CheckedIn),
            ("In Room", F::CheckedIn),
            ("In Session", F::CheckedIn),
            ("Complete", F::Fulfilled),
            ("Cancelled", F::Cancelled),
            ("Rescheduled", F::Cancelled),
            ("No Show", F::Noshow),
        ];
        assert_eq!(table.len(), AppointmentStatus::ALL.len());
        for (wire, fhir) in table {
            let status = AppointmentStatus::from_wire(wire).expect(wire);
            assert_eq!(status.wire(), wire);
            assert_eq!(status.fhir(), fhir, "{wire:?}");
        }
        assert_eq!(
            AppointmentStatus::from_wire(" checked in "),
            Some(AppointmentStatus::CheckedIn)
        );
        for unknown in ["Waiting", "Checked-In", "Confirmed!", "Lab Only"] {
            assert_eq!(AppointmentStatus::from_wire(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn every_gender_row() {
        let table = [
            ("Male", "male"),
            ("Female", "female"),
            ("Other", "other"),
            ("", "unknown"),
            ("UNK", "unknown"),
            ("ASKU", "unknown"),
            ("female", "female"),
            ("F", "unknown"),
            ("nonsense", "unknown"),
        ];
        for (wire, fhir) in table {
            assert_eq!(Gender::from_wire(wire).fhir(), fhir, "{wire:?}");
        }
        for g in Gender::ALL {
            assert_eq!(Gender::from_wire(g.wire()), g);
        }
    }

    #[test]
    fn every_patient_status_row() {
        let table = [("A", true, None), ("I", false, None), ("D", false, Some(true))];
        assert_eq!(table.len(), PatientStatus::ALL.len());
        for (wire, active, deceased) in table {
            let s = PatientStatus::from_wire(wire).unwrap();
            assert_eq!((s.wire(), s.active(), s.deceased()), (wire, active, deceased));
        }
        assert_eq!(PatientStatus::from_wire("X"), None);
        assert_eq!(PatientStatus::from_wire(""), None);
    }

    #[test]
    fn every_race_row() {
        let cdc = systems::CDC_RACE_ETHNICITY;
        let nf = systems::V3_NULL_FLAVOR;
        type SystemCode = (&'static str, &'static str);
        type Expected = Option<(Option<SystemCode>, Option<SystemCode>, &'static str)>;
        let table: [(&str, Expected); 8] = [
            ("blank", None),
            (
                "indian",
                Some((Some((cdc, "1002-5")), None, "American Indian or Alaska Native")),
            ),
            ("asian", Some((Some((cdc, "2028-9")), None, "Asian"))),
            (
                "black",
                Some((Some((cdc, "2054-5")), None, "Black or African American")),
            ),
            (
                "hawaiian",
                Some((Some((cdc, "2076-8")), None, "Native Hawaiian or Other Pacific Islander")),
            ),
            ("white", Some((Some((cdc, "2106-3")), None, "White"))),
            ("other", Some((None, Some((cdc, "2131-1")), "Other Race"))),
            ("declined", Some((Some((nf, "ASKU")), None, "asked but declined"))),
        ];
        assert_eq!(table.len(), Race::ALL.len());
        for (wire, expected) in table {
            let race = Race::from_wire(wire).unwrap();
            assert_eq!(race.wire(), wire);
            let got = race.answer().map(|a| {
                (
                    a.omb_category.map(|c| (c.system, c.code)),
                    a.detailed.map(|c| (c.system, c.code)),
                    a.text,
                )
            });
            assert_eq!(got, expected, "{wire}");
        }
        assert_eq!(Race::from_wire(""), Some(Race::Blank));
        assert_eq!(Race::from_wire("White"), Some(Race::White));
        assert_eq!(Race::from_wire("martian"), None);
    }

    #[test]
    fn every_ethnicity_row() {
        let cdc = systems::CDC_RACE_ETHNICITY;
        let table = [
            ("blank", None),
            ("hispanic", Some((cdc, "2135-2", "Hispanic or Latino"))),
            ("not_hispanic", Some((cdc, "2186-5", "Not Hispanic or Latino"))),
            (
                "declined",
                Some((systems::V3_NULL_FLAVOR, "ASKU", "asked but declined")),
            ),
        ];
        assert_eq!(table.len(), Ethnicity::ALL.len());
        for (wire, expected) in table {
            let e = Ethnicity::from_wire(wire).unwrap();
            assert_eq!(e.wire(), wire);
            let got = e.answer().map(|a| {
                assert_eq!(a.detailed, None);
                let c = a.omb_category.unwrap();
                assert_eq!(a.text, c.display);
                (c.system, c.code, c.display)
            });
            assert_eq!(got, expected, "{wire}");
        }
        assert_eq!(Ethnicity::from_wire(""), Some(Ethnicity::Blank));
        assert_eq!(Ethnicity::from_wire("latino"), None);
    }

    #[test]
    fn every_language_row() {
        // Written out independently of the macro table: ISO 639-2 → BCP-47.
        let table: &[(&str, &str)] = &[
            ("afr", "af"),
            ("sqi", "sq"),
            ("alb", "sq"),
            ("amh", "am"),
            ("ara", "ar"),
            ("hye", "hy"),
            ("arm", "hy"),
            ("ben", "bn"),
            ("bos", "bs"),
            ("bul", "bg"),
            ("mya", "my"),
            ("bur", "my"),
            ("cat", "ca"),
            ("cha", "ch"),
            ("chr", "chr"),
            ("zho", "zh"),
            ("chi", "zh"),
            ("hrv", "hr"),
            ("ces", "cs"),
            ("cze", "cs"),
            ("dan", "da"),
            ("nld", "nl"),
            ("dut", "nl"),
            ("eng", "en"),
            ("est", "et"),
            ("fij", "fj"),
            ("fin", "fi"),
            ("fra", "fr"),
            ("fre", "fr"),
            ("kat", "ka"),
            ("geo", "ka"),
            ("deu", "de"),
            ("ger", "de"),
            ("ell", "el"),
            ("gre", "el"),
            ("guj", "gu"),
            ("hat", "ht"),
            ("hau", "ha"),
            ("haw", "haw"),
            ("heb", "he"),
            ("hin", "hi"),
            ("hmn", "hmn"),
            ("hun", "hu"),
            ("isl", "is"),
            ("ice", "is"),
            ("ibo", "ig"),
            ("ilo", "ilo"),
            ("ind", "id"),
            ("gle", "ga"),
            ("ita", "it"),
            ("jpn", "ja"),
            ("kan", "kn"),
            ("khm", "km"),
            ("kor", "ko"),
            ("kur", "ku"),
            ("lao", "lo"),
            ("lav", "lv"),
            ("lit", "lt"),
            ("mkd", "mk"),
            ("mac", "mk"),
            ("msa", "ms"),
            ("may", "ms"),
            ("mal", "ml"),
            ("mar", "mr"),
            ("mah", "mh"),
            ("mon", "mn"),
            ("nav", "nv"),
            ("nep", "ne"),
            ("nor", "no"),
            ("orm", "om"),
            ("pan", "pa"),
            ("pus", "ps"),
            ("fas", "fa"),
            ("per", "fa"),
            ("pol", "pl"),
            ("por", "pt"),
            ("ron", "ro"),
            ("rum", "ro"),
            ("rus", "ru"),
            ("smo", "sm"),
            ("srp", "sr"),
            ("sin", "si"),
            ("slk", "sk"),
            ("slo", "sk"),
            ("slv", "sl"),
            ("som", "so"),
            ("spa", "es"),
            ("swa", "sw"),
            ("swe", "sv"),
            ("tgl", "tl"),
            ("tam", "ta"),
            ("tel", "te"),
            ("tha", "th"),
            ("bod", "bo"),
            ("tib", "bo"),
            ("tir", "ti"),
            ("ton", "to"),
            ("tur", "tr"),
            ("ukr", "uk"),
            ("urd", "ur"),
            ("vie", "vi"),
            ("cym", "cy"),
            ("wel", "cy"),
            ("yid", "yi"),
            ("yor", "yo"),
        ];
        for (iso, bcp47) in table {
            let lang = Language::from_iso639_2(iso).unwrap_or_else(|| panic!("{iso}"));
            assert_eq!(lang.bcp47(), *bcp47, "{iso}");
            let code = lang.code();
            assert_eq!((code.system, code.code), (systems::URN_IETF_BCP47, *bcp47));
            assert!(!code.display.is_empty());
        }
        // Every variant and every ISO code of the enum is covered by the table above.
        let isos: usize = Language::ALL.iter().map(|l| l.iso639_2().len()).sum();
        assert_eq!(isos, table.len());
        for lang in Language::ALL {
            assert!(table.iter().any(|(_, b)| *b == lang.bcp47()), "{lang:?}");
        }
        assert_eq!(Language::from_iso639_2("SPA"), Some(Language::Spanish));
        for unknown in ["xyz", "en", "english", "sgn"] {
            assert_eq!(Language::from_iso639_2(unknown), None, "{unknown}");
        }
        for none in ["", "blank", "other", "unknown", "declined", "Declined"] {
            assert!(Language::is_no_language(none), "{none}");
            assert_eq!(Language::from_iso639_2(none), None);
        }
        assert!(!Language::is_no_language("eng"));
    }

    #[test]
    fn every_telecom_row() {
        let table = [
            (Telecom::Phone, ("phone", None)),
            (Telecom::MobilePhone, ("phone", Some("mobile"))),
            (Telecom::HomePhone, ("phone", Some("home"))),
            (Telecom::WorkPhone, ("phone", Some("work"))),
            (Telecom::WorkFax, ("fax", Some("work"))),
            (Telecom::HomeEmail, ("email", Some("home"))),
            (Telecom::WorkEmail, ("email", Some("work"))),
            (Telecom::WorkUrl, ("url", Some("work"))),
        ];
        assert_eq!(table.len(), Telecom::ALL.len());
        for (t, codes) in table {
            assert_eq!(t.codes(), codes);
        }
    }

    #[test]
    fn physical_types_and_document_statuses() {
        assert_eq!(PhysicalType::Building.code().code, "bu");
        assert_eq!(PhysicalType::Room.code().code, "ro");
        assert_eq!(
            PhysicalType::Room.code().system,
            "http://terminology.hl7.org/CodeSystem/location-physical-type"
        );
        assert_eq!(DocumentStatus::from_archived(false).code(), "current");
        assert_eq!(DocumentStatus::from_archived(true).code(), "entered-in-error");
        assert_eq!(DocumentStatus::Superseded.code(), "superseded");
        assert_eq!(note_doc_status(true).code(), "final");
        assert_eq!(note_doc_status(false).code(), "preliminary");
    }

    #[test]
    fn fixed_codes() {
        assert_eq!(
            (PROGRESS_NOTE.system, PROGRESS_NOTE.code),
            ("http://loinc.org", "11506-3")
        );
        assert_eq!(CLINICAL_NOTE_CATEGORY.code, "clinical-note");
        assert_eq!(EMERGENCY_CONTACT.code, "C");
        assert_eq!(MEDICAL_RECORD_NUMBER.code, "MR");
        assert_eq!(ATTENDER.code, "ATND");
        assert_eq!(UNKNOWN_DOCUMENT_TYPE.code, "UNK");
        assert_eq!(ASKED_BUT_DECLINED.code, "ASKU");
    }

    #[test]
    fn every_file_type_row() {
        let table = [
            ("https://x/a.pdf", "application/pdf"),
            ("https://x/a.jpg", "image/jpeg"),
            ("https://x/a.JPEG", "image/jpeg"),
            ("https://x/a.png", "image/png"),
            ("https://x/a.gif", "image/gif"),
            ("https://x/a.tif", "image/tiff"),
            ("https://x/a.tiff", "image/tiff"),
            ("https://x/a.bmp", "image/bmp"),
            ("https://x/a.webp", "image/webp"),
            ("https://x/a.heic", "image/heic"),
            ("https://x/a.txt", "text/plain"),
            ("https://x/a.rtf", "application/rtf"),
            ("https://x/a.htm", "text/html"),
            ("https://x/a.html", "text/html"),
            ("https://x/a.xml", "application/xml"),
            ("https://x/a.csv", "text/csv"),
            ("https://x/a.doc", "application/msword"),
            (
                "https://x/a.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            ("https://x/a.dcm", "application/dicom"),
        ];
        let exts: usize = FileType::ALL.iter().map(|t| t.extensions().len()).sum();
        assert_eq!(table.len(), exts);
        for (url, mime) in table {
            assert_eq!(FileType::from_url(url).map(FileType::mime), Some(mime), "{url}");
        }
        assert_eq!(
            FileType::from_url("https://cdn.example/f/scan.PDF?sig=a.b&x=1#p.2"),
            Some(FileType::Pdf)
        );
        for none in [
            "https://x/a",
            "https://x.pdf/file",
            "https://x/a.exe",
            "",
            "https://x/a.",
        ] {
            assert_eq!(FileType::from_url(none), None, "{none}");
        }
    }
}
