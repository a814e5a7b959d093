//! SMART scopes, v2 (`patient/Appointment.rs`, `user/*.cruds`, `system/DocumentReference.r?category=…`)
//! and v1 (`patient/*.read`, `user/Patient.write`, `system/*.*`), parsed once into a [`ScopeSet`] that
//! answers which grants cover an interaction on a resource type.
//!
//! - v2 permissions are a subset of `cruds` written in that order (`rs`, `cud`, never `sr`).
//! - v1 `read` is `rs`, `write` is `cud`, `*` is `cruds`.
//! - A `?` suffix constrains a grant to resources matching those search parameters
//!   (`patient/DocumentReference.rs?category=clinical-note`); the gateway evaluates the constraint on
//!   each resource, since it owns search-parameter evaluation.
//! - Everything else (`openid`, `fhirUser`, `launch`, `launch/patient`, `offline_access`, …) is kept as
//!   a plain scope: it grants no resource access.

use std::fmt;

/// Whose data a resource scope speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// The launch patient's compartment only.
    Patient,
    /// What the signed-in user may see.
    User,
    /// A backend service, no user.
    System,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::User => "user",
            Self::System => "system",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "patient" => Some(Self::Patient),
            "user" => Some(Self::User),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// One SMART v2 permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Permission {
    /// In grammar order.
    pub const ALL: [Self; 5] = [Self::Create, Self::Read, Self::Update, Self::Delete, Self::Search];

    pub fn letter(self) -> char {
        match self {
            Self::Create => 'c',
            Self::Read => 'r',
            Self::Update => 'u',
            Self::Delete => 'd',
            Self::Search => 's',
        }
    }

    /// In words, for the consent page.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Search => "search",
        }
    }
}

/// A set of permissions (a bit per [`Permission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    fn bit(p: Permission) -> u8 {
        1 << (p as u8)
    }

    pub fn of(perms: &[Permission]) -> Self {
        Self(perms.iter().fold(0, |acc, p| acc | Self::bit(*p)))
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every permission in `other` is in `self`.
    pub fn covers(self, other: Self) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The v2 letters (`rs`).
    pub fn letters(self) -> String {
        self.iter().map(Permission::letter).collect()
    }

    /// Parses v2 letters: a non-empty subset of `cruds`, in that order, each at most once.
    fn parse_v2(s: &str) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        let mut last: Option<usize> = None;
        let mut out = 0u8;
        for c in s.chars() {
            let index = Permission::ALL.iter().position(|p| p.letter() == c)?;
            if last.is_some_and(|l| index <= l) {
                return None;
            }
            last = Some(index);
            out |= Self::bit(Permission::ALL[index]);
        }
        Some(Self(out))
    }

    /// Parses v1 `read`, `write`, `*`.
    fn parse_v1(s: &str) -> Option<Self> {
        use Permission::*;
        match s {
            "read" => Some(Self::of(&[Read, Search])),
            "write" => Some(Self::of(&[Create, Update, Delete])),
            "*" => Some(Self::of(&Permission::ALL)),
            _ => None,
        }
    }
}

/// A resource scope: context, type (`None` is `*`), permissions, optional constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: Context,
    /// The FHIR resource type, or `None` for `*`.
    pub resource_type: Option<String>,
    pub permissions: Permissions,
    /// `?name=value&…` search parameters every resource it grants must match (percent-decoded).
    pub constraint: Vec<(String, String)>,
    /// True when written in the v1 grammar.
    pub v1: bool,
}

/// Types a `*` scope does not reach: only a scope naming them grants them (the audit trail is
/// for auditors, not for every backend service holding `system/*.rs`).
pub const NAMED_ONLY: &[&str] = &["AuditEvent"];

impl ResourceScope {
    /// True when it speaks for `resource_type` (a `*` scope: any type but [`NAMED_ONLY`]).
    pub fn covers_type(&self, resource_type: &str) -> bool {
        match self.resource_type.as_deref() {
            Some(t) => t == resource_type,
            None => !NAMED_ONLY.contains(&resource_type),
        }
    }

    /// The scope in words, for the consent page ("read and search your Appointments").
    pub fn describe(&self) -> String {
        let verbs: Vec<&str> = self.permissions.iter().map(Permission::verb).collect();
        let verbs = match verbs.as_slice() {
            [] => String::new(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        let what = match &self.resource_type {
            None => "all records".to_owned(),
            Some(t) => format!("{t} records"),
        };
        let whose = match self.context {
            Context::Patient => "of the selected patient",
            Context::User => "you can access",
            Context::System => "(backend service)",
        };
        let mut out = format!("{verbs} {what} {whose}");
        if !self.constraint.is_empty() {
            let c: Vec<String> = self.constraint.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(", only where {}", c.join(" and ")));
        }
        out
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}.{}",
            self.context.as_str(),
            self.resource_type.as_deref().unwrap_or("*"),
            self.permissions.letters()
        )?;
        if !self.constraint.is_empty() {
            let q: Vec<String> = self
                .constraint
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            write!(f, "?{}", q.join("&"))?;
        }
        Ok(())
    }
}

/// One scope of a token or request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Resource(ResourceScope),
    /// `openid`, `fhirUser`, `launch/patient`, `offline_access`, …
    Other(String),
}

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("'{0}' is not a valid SMART scope")]
    Invalid(String),
}

/// Characters a scope token may hold (RFC 6749 §3.3: printable ASCII except space, `"` and `\`).
fn is_scope_char(c: char) -> bool {
    c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c)
}

/// FHIR's result and control parameters: they shape an answer and select nothing, so a scope
/// constrained by them alone would grant as much as one without a constraint.
const NOT_SELECTING: &[&str] = &[
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_contained",
    "_containedType",
    "_format",
    "_pretty",
    "_page",
    "_offset",
    "_maxresults",
];

fn is_resource_type(s: &str) -> bool {
    s == "*"
        || (s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl Scope {
    /// Parses one scope token.
    pub fn parse(token: &str) -> Result<Self, ScopeError> {
        let invalid = || ScopeError::Invalid(token.chars().take(80).collect());
        if token.is_empty() || !token.chars().all(is_scope_char) {
            return Err(invalid());
        }
        let Some((context, rest)) = token.split_once('/') else {
            return Ok(Self::Other(token.to_owned()));
        };
        let Some(context) = Context::parse(context) else {
            // `launch/patient`, `launch/encounter` and other non-resource scopes with a slash.
            return Ok(Self::Other(token.to_owned()));
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (ty, perms) = body.split_once('.').ok_or_else(invalid)?;
        if !is_resource_type(ty) {
            return Err(invalid());
        }
        let (permissions, v1) = match Permissions::parse_v2(perms) {
            Some(p) => (p, false),
            None => (Permissions::parse_v1(perms).ok_or_else(invalid)?, true),
        };
        if v1 && query.is_some() {
            return Err(invalid());
        }
        let mut constraint = Vec::new();
        if let Some(q) = query {
            for pair in q.split('&') {
                let (k, v) = pair.split_once('=').ok_or_else(invalid)?;
                let (k, v) = (decode(k).ok_or_else(invalid)?, decode(v).ok_or_else(invalid)?);
                let name = k.split(':').next().unwrap_or_default();
                if k.is_empty() || v.is_empty() || NOT_SELECTING.contains(&name) {
                    return Err(invalid());
                }
                constraint.push((k, v));
            }
            if constraint.is_empty() {
                return Err(invalid());
            }
        }
        Ok(Self::Resource(ResourceScope {
            context,
            resource_type: (ty != "*").then(|| ty.to_owned()),
            permissions,
            constraint,
            v1,
        }))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resource(r) => r.fmt(f),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// A [`ScopeSet`] kept as its scope string (what the durable store holds for a grant).
pub(crate) mod as_string {
    use super::ScopeSet;

    pub(crate) fn serialize<S: serde::Serializer>(set: &ScopeSet, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&set.to_scope_string())
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ScopeSet, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        ScopeSet::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The scopes of a token, parsed once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
    /// The tokens as written (what `scope` in a token response echoes).
    raw: Vec<String>,
}

impl ScopeSet {
    /// Parses a space-separated scope string; every token must be valid.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let mut set = Self::default();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if set.raw.iter().any(|r| r == token) {
                continue;
            }
            set.scopes.push(Scope::parse(token)?);
            set.raw.push(token.to_owned());
        }
        Ok(set)
    }

    /// The scope string (space separated, as written).
    pub fn to_scope_string(&self) -> String {
        self.raw.join(" ")
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }

    /// The tokens as written.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.raw.iter().map(String::as_str)
    }

    /// True when the plain scope `name` (`openid`, `launch/patient`, `offline_access`) is present.
    pub fn has(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| matches!(s, Scope::Other(o) if o == name))
    }

    /// The resource scopes.
    pub fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.scopes.iter().filter_map(|s| match s {
            Scope::Resource(r) => Some(r),
            Scope::Other(_) => None,
        })
    }

    /// The grants that allow `permission` on `resource_type` (any context, constrained or not).
    pub fn grants<'a>(
        &'a self,
        resource_type: &'a str,
        permission: Permission,
    ) -> impl Iterator<Item = &'a ResourceScope> + 'a {
        self.resource_scopes()
            .filter(move |r| r.covers_type(resource_type) && r.permissions.contains(permission))
    }

    /// True when some grant allows `permission` on `resource_type`.
    pub fn allows(&self, resource_type: &str, permission: Permission) -> bool {
        self.grants(resource_type, permission).next().is_some()
    }

    /// True when every scope in `self` is also granted by `other` (a refresh or a token request may
    /// narrow its scopes, never widen them). Resource scopes are compared by what they grant: each
    /// must be covered by one scope of `other` with the same context, a type at least as wide,
    /// permissions at least as wide, and no constraint `self`'s does not also have.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.scopes.iter().all(|s| match s {
            Scope::Other(o) => other.has(o),
            Scope::Resource(r) => other.resource_scopes().any(|g| {
                g.context == r.context
                    && match (&g.resource_type, &r.resource_type) {
                        (None, Some(t)) => !NAMED_ONLY.contains(&t.as_str()),
                        (None, None) => true,
                        (Some(_), _) => g.resource_type == r.resource_type,
                    }
                    && g.permissions.covers(r.permissions)
                    && g.constraint.iter().all(|c| r.constraint.contains(c))
            }),
        })
    }

    /// The scopes of `self` that `allowed` grants (what a server may grant of a request): every
    /// token of `self` that is, alone, a subset of `allowed`.
    pub fn intersect(&self, allowed: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::default();
        for (scope, raw) in self.scopes.iter().zip(&self.raw) {
            let single = ScopeSet {
                scopes: vec![scope.clone()],
                raw: vec![raw.clone()],
            };
            if single.is_subset_of(allowed) {
                out.scopes.push(scope.clone());
                out.raw.push(raw.clone());
            }
        }
        out
    }

    /// The scopes a **patient user** may hold. In SMART a `user/` scope grants what the signed-in
    /// user may see, and a patient user may see their own compartment only: so each `user/` scope
    /// becomes the same `patient/` scope (same type, permissions and constraint), and `system/`
    /// scopes, which speak for no user, are dropped. Other scopes are kept as they are.
    pub fn for_patient_user(&self) -> ScopeSet {
        let mut out = ScopeSet::default();
        for (scope, raw) in self.scopes.iter().zip(&self.raw) {
            let (scope, raw) = match scope {
                Scope::Resource(r) if r.context == Context::System => continue,
                Scope::Resource(r) if r.context == Context::User => {
                    let mut narrowed = r.clone();
                    narrowed.context = Context::Patient;
                    let rest = raw.strip_prefix("user/").unwrap_or(raw);
                    (Scope::Resource(narrowed), format!("patient/{rest}"))
                }
                other => (other.clone(), raw.clone()),
            };
            if !out.raw.contains(&raw) {
                out.scopes.push(scope);
                out.raw.push(raw);
            }
        }
        out
    }

    /// The contexts the resource scopes speak for.
    pub fn contexts(&self) -> Vec<Context> {
        let mut out: Vec<Context> = self.resource_scopes().map(|r| r.context).collect();
        out.sort();
        out.dedup();
        out
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes (and `+` as space); `None` for malformed escapes or non-UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = hex(*bytes.get(i + 1)?)?;
                let l = hex(*bytes.get(i + 2)?)?;
                out.push(h * 16 + l);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~|:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    fn one(s: &str) -> ResourceScope {
        match Scope::parse(s).unwrap() {
            Scope::Resource(r) => r,
            Scope::Other(o) => panic!("{o} parsed as a plain scope"),
        }
    }

    #[test]
    fn v2_scopes_parse_with_ordered_permissions() {
        let s = one("patient/Appointment.rs");
        assert_eq!(s.context, Context::Patient);
        assert_eq!(s.resource_type.as_deref(), Some("Appointment"));
        assert_eq!(s.permissions, Permissions::of(&[Read, Search]));
        assert!(!s.v1);
        assert_eq!(one("user/*.cruds").permissions, Permissions::of(&Permission::ALL));
        assert_eq!(one("user/*.cruds").resource_type, None);
        assert_eq!(one("system/DocumentReference.r").permissions, Permissions::of(&[Read]));
        for bad in [
            "patient/Appointment.sr",
            "patient/Appointment.rr",
            "patient/Appointment.x",
            "patient/Appointment.",
            "patient/appointment.rs",
            "patient/Appointment",
            "patient/Appointment.rs?",
            "patient/Appointment.rs?category",
            "patient/Appointment.read?x=1",
            "bad\"scope",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn v1_scopes_map_to_v2_permissions() {
        assert_eq!(one("patient/*.read").permissions, Permissions::of(&[Read, Search]));
        assert_eq!(
            one("user/Patient.write").permissions,
            Permissions::of(&[Create, Update, Delete])
        );
        assert_eq!(one("system/*.*").permissions, Permissions::of(&Permission::ALL));
        assert!(one("patient/*.read").v1);
    }

    #[test]
    fn constrained_scopes_keep_their_query() {
        let s = one("patient/DocumentReference.rs?category=clinical-note");
        assert_eq!(s.constraint, [("category".to_owned(), "clinical-note".to_owned())]);
        let s = one(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category%7Claboratory",
        );
        assert_eq!(
            s.constraint[0].1,
            "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
        );
        assert_eq!(
            s.to_string(),
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
        );
        assert!(s.describe().contains("only where category="));
    }

    #[test]
    fn other_scopes_grant_nothing() {
        let set = ScopeSet::parse("openid fhirUser launch/patient offline_access").unwrap();
        assert!(set.has("launch/patient") && set.has("openid"));
        assert!(!set.allows("Patient", Read));
        assert_eq!(set.to_scope_string(), "openid fhirUser launch/patient offline_access");
    }

    #[test]
    fn grants_answer_per_type_and_permission() {
        let set = ScopeSet::parse("patient/Appointment.rs system/Patient.r user/*.s").unwrap();
        assert!(set.allows("Appointment", Read) && set.allows("Appointment", Search));
        assert!(!set.allows("Appointment", Create));
        assert!(set.allows("Patient", Read));
        assert!(set.allows("Encounter", Search), "user/*.s covers every type");
        assert!(!set.allows("AuditEvent", Search), "but the audit trail only when named");
        let audit = ScopeSet::parse("system/AuditEvent.rs").unwrap();
        assert!(audit.allows("AuditEvent", Search));
        assert!(
            !audit.is_subset_of(&ScopeSet::parse("system/*.rs").unwrap()),
            "a client registered for system/*.rs is not granted the audit trail"
        );
        assert!(audit.is_subset_of(&ScopeSet::parse("system/AuditEvent.rs system/*.rs").unwrap()));
        assert!(!set.allows("Encounter", Read));
        let contexts: Vec<Context> = set.grants("Patient", Search).map(|g| g.context).collect();
        assert_eq!(contexts, [Context::User]);
        assert_eq!(set.contexts(), [Context::Patient, Context::User, Context::System]);
    }

    #[test]
    fn subsets_never_widen() {
        let granted = ScopeSet::parse("patient/*.rs openid offline_access").unwrap();
        for narrower in [
            "patient/Appointment.r",
            "patient/*.s openid",
            "patient/DocumentReference.rs?category=x",
        ] {
            assert!(ScopeSet::parse(narrower).unwrap().is_subset_of(&granted), "{narrower}");
        }
        for wider in ["patient/*.cruds", "user/Appointment.r", "system/*.rs", "launch/patient"] {
            assert!(!ScopeSet::parse(wider).unwrap().is_subset_of(&granted), "{wider}");
        }
        let constrained = ScopeSet::parse("patient/DocumentReference.rs?category=clinical-note").unwrap();
        assert!(
            !ScopeSet::parse("patient/DocumentReference.rs")
                .unwrap()
                .is_subset_of(&constrained)
        );
        let asked = ScopeSet::parse("patient/Appointment.rs user/*.cruds openid").unwrap();
        assert_eq!(
            asked.intersect(&granted).to_scope_string(),
            "patient/Appointment.rs openid"
        );
    }

    #[test]
    fn constraints_must_select() {
        for bad in [
            "patient/Appointment.rs?_count=1",
            "user/*.rs?_sort=date",
            "patient/DocumentReference.rs?category=clinical-note&_include=DocumentReference:subject",
            "patient/Appointment.rs?_summary:x=count",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad} is refused");
        }
        assert!(Scope::parse("patient/Appointment.rs?_id=drchrono-1").is_ok());
    }

    #[test]
    fn a_patient_user_holds_patient_scopes_only() {
        let requested =
            ScopeSet::parse("openid fhirUser user/*.rs user/Appointment.cruds patient/*.rs user/Patient.read system/*.rs user/DocumentReference.rs?category=clinical-note")
                .unwrap();
        let narrowed = requested.for_patient_user();
        assert_eq!(
            narrowed.to_scope_string(),
            "openid fhirUser patient/*.rs patient/Appointment.cruds patient/Patient.read patient/DocumentReference.rs?category=clinical-note"
        );
        assert!(narrowed.resource_scopes().all(|r| r.context == Context::Patient));
        assert!(narrowed.is_subset_of(&narrowed));
        let constrained = narrowed.resource_scopes().last().unwrap();
        assert_eq!(
            constrained.constraint,
            vec![("category".to_owned(), "clinical-note".to_owned())]
        );
        assert!(narrowed.resource_scopes().any(|r| r.v1), "v1 scopes keep their grammar");
    }

    #[test]
    fn consent_words() {
        assert_eq!(
            one("patient/Appointment.rs").describe(),
            "read and search Appointment records of the selected patient"
        );
        assert_eq!(
            one("user/*.cruds").describe(),
            "create, read, update, delete and search all records you can access"
        );
    }
}
