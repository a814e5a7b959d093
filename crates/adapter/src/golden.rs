//! One golden-file harness for every adapter's mappings (feature `test-support`, for tests only).
//!
//! Every `<name>.<source>.json` in a directory is an input; the prefix of `<name>` picks the
//! mapping the adapter registered for it ([`Golden::map`]). The mapped resources are written as
//! FHIR JSON (one resource as itself, none or several as a `collection` Bundle) and compared byte
//! for byte with `<name>.fhir.json`, and any further file the mapping returns (a note's markdown,
//! say) with `<name>.<extension>`. An expected file no input produces is stale. With
//! `UPDATE_GOLDEN=1` ([`UPDATE_ENV`]) the expected files are (re)written instead of compared; review
//! the diff.
//!
//! Besides the comparison, every resource must pass [`Rules::check`]: it re-parses with fhirbolt
//! (strict mode) to the same JSON, its id is one of the source's, its dates, instants and codes have
//! FHIR's lexical forms, its references are valid and, where the rules ask, a reference into another
//! source is one the case says exists (never a broken link).
//!
//! Nothing stops at the first problem: [`Golden::run`] returns every failure, one line each, and
//! [`Failures::assert_none`] panics listing them all.
//!
//! ```no_run
//! use adapter::golden::{Golden, Mapped, Rules};
//!
//! const RULES: Rules = Rules {
//!     source: "acme",
//!     instants: &["lastUpdated", "start", "end", "date"],
//!     codes: &["code"],
//!     unchecked: &[],
//!     meta_source: true,
//!     foreign_references_resolve: false,
//! };
//!
//! Golden::new("testdata/golden", RULES)
//!     .at_least(1)
//!     .map("patient-", |input| {
//!         let _json: serde_json::Value = input.json()?;
//!         Ok(Mapped::new(Vec::new()))
//!     })
//!     .run()
//!     .assert_none();
//! ```

use std::collections::HashSet;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Resource;
use crate::fhir::resources::{Bundle, BundleEntry};
use crate::format::{is_code, is_date, is_instant};
use crate::id::is_valid_fhir_id;
use crate::systems;

/// The environment variable that turns comparing into (re)writing: `UPDATE_GOLDEN=1`.
pub const UPDATE_ENV: &str = "UPDATE_GOLDEN";

/// The checks every produced resource passes, with what differs between sources.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// The source whose mappings are tested: inputs are `*.{source}.json`, ids start `{source}-`.
    pub source: &'static str,
    /// Keys whose string values must be FHIR `instant`s.
    pub instants: &'static [&'static str],
    /// Keys whose string values must be FHIR `code`s.
    pub codes: &'static [&'static str],
    /// Keys whose string values are not checked (an xhtml `div`).
    pub unchecked: &'static [&'static str],
    /// Whether `meta.source` must name the source.
    pub meta_source: bool,
    /// Whether a literal reference into another source must be one of the case's resolved ones.
    pub foreign_references_resolve: bool,
}

impl Rules {
    /// The problems of one resource (empty when there are none). `resolved` holds the references
    /// into other sources (`Patient/ehr-12`) the case says exist.
    pub fn check(&self, resource: &Resource, resolved: &HashSet<String>) -> Vec<String> {
        let mut problems = Vec::new();
        let json = fhirbolt::json::to_string(resource, None).unwrap();
        // fhirbolt's default deserialization mode is strict: unknown elements are errors.
        match fhirbolt::json::from_str::<Resource>(&json, None) {
            Ok(back) => {
                if fhirbolt::json::to_string(&back, None).unwrap() != json {
                    problems.push("does not re-parse to the same resource".to_owned());
                }
            }
            Err(e) => problems.push(format!("does not re-parse: {e}")),
        }
        let value: Value = serde_json::from_str(&json).unwrap();
        let own_prefix = format!("{}-", self.source);
        match value["id"].as_str() {
            Some(id) if is_valid_fhir_id(id) && id.starts_with(&own_prefix) => {}
            other => problems.push(format!("bad id {other:?}")),
        }
        if self.meta_source && value["meta"]["source"] != systems::meta_source(self.source) {
            problems.push(format!("meta.source does not name {}", self.source));
        }
        self.walk(&value, "", resolved, &mut problems);
        problems
    }

    fn walk(&self, value: &Value, key: &str, resolved: &HashSet<String>, problems: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.walk(v, k, resolved, problems);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, key, resolved, problems)),
            Value::String(s) => {
                let ok = if self.instants.contains(&key) {
                    is_instant(s)
                } else if key == "birthDate" {
                    is_date(s)
                } else if key == "reference" {
                    let valid = s
                        .split_once('/')
                        .is_some_and(|(t, id)| t.bytes().all(|b| b.is_ascii_alphabetic()) && is_valid_fhir_id(id));
                    let own = format!("/{}-", self.source);
                    if self.foreign_references_resolve && valid && !s.contains(&own) && !resolved.contains(s) {
                        problems.push(format!("reference {s:?} into another source did not resolve"));
                    }
                    valid
                } else if self.codes.contains(&key) {
                    is_code(s)
                } else if self.unchecked.contains(&key) {
                    true
                } else {
                    !s.is_empty() && s.trim() == s
                };
                if !ok {
                    problems.push(format!("{key} {s:?} is not valid FHIR"));
                }
            }
            _ => {}
        }
    }
}

/// One golden input: its name (the file name without `.{source}.json`) and its text.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub text: String,
}

impl Input {
    /// The input read as JSON of type `T` straight from its text (so a JSON object keeps its key
    /// order for a type that reads it in order).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.text).map_err(|e| format!("input: {e}"))
    }
}

/// A vendor object, given as JSON, read as its wire type; the error says it is the wire shape.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("wire: {e}"))
}

/// What a mapping made of one input.
#[derive(Debug, Default)]
pub struct Mapped {
    /// The resources, written as the one resource or, for none or several, a `collection` Bundle.
    pub resources: Vec<Resource>,
    /// References into other sources (`Patient/ehr-12`) the case says exist.
    pub resolved: HashSet<String>,
    /// Further expected files: (extension, content), compared with `<name>.<extension>`.
    pub files: Vec<(String, String)>,
    /// What the adapter's own checks of this case found.
    pub problems: Vec<String>,
}

impl Mapped {
    /// The resources of a case that names no other source and has no further file.
    pub fn new(resources: Vec<Resource>) -> Self {
        Self {
            resources,
            ..Self::default()
        }
    }
}

/// The mapping registered for one prefix.
type Mapping<'a> = Box<dyn FnMut(&Input) -> Result<Mapped, String> + 'a>;

/// A golden-file suite: a directory, the rules its resources pass, and one mapping per input
/// prefix. See the module docs.
pub struct Golden<'a> {
    dir: PathBuf,
    rules: Rules,
    min_inputs: usize,
    mappings: Vec<(&'static str, Mapping<'a>)>,
}

impl<'a> Golden<'a> {
    /// A suite over the `*.{source}.json` inputs in `dir`.
    pub fn new(dir: impl Into<PathBuf>, rules: Rules) -> Self {
        Self {
            dir: dir.into(),
            rules,
            min_inputs: 1,
            mappings: Vec::new(),
        }
    }

    /// Fails (panics) when fewer than `n` inputs are found: inputs went missing.
    pub fn at_least(mut self, n: usize) -> Self {
        self.min_inputs = n;
        self
    }

    /// Maps the inputs whose name starts with `prefix` (the first registered prefix that matches
    /// wins). An error is reported as the case's mapping failure.
    pub fn map(mut self, prefix: &'static str, mapping: impl FnMut(&Input) -> Result<Mapped, String> + 'a) -> Self {
        self.mappings.push((prefix, Box::new(mapping)));
        self
    }

    /// Maps, checks and compares (or, with `UPDATE_GOLDEN=1`, writes) every input; returns every
    /// failure found.
    pub fn run(self) -> Failures {
        let update = std::env::var_os(UPDATE_ENV).is_some_and(|v| v == "1");
        self.run_with(update)
    }

    fn run_with(mut self, update: bool) -> Failures {
        let suffix = format!(".{}.json", self.rules.source);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(&suffix))
            .collect();
        inputs.sort();
        assert!(inputs.len() >= self.min_inputs, "golden inputs are missing");

        let mut failures = Failures::default();
        let mut expected_files = Vec::new();
        for input_path in &inputs {
            let file = input_path.file_name().unwrap().to_string_lossy();
            let name = file.trim_end_matches(suffix.as_str()).to_owned();
            let input = Input {
                name: name.clone(),
                text: std::fs::read_to_string(input_path).unwrap(),
            };
            let Some(index) = self.mappings.iter().position(|(prefix, _)| name.starts_with(prefix)) else {
                failures.push(format!("{name}: mapping failed: unknown prefix"));
                continue;
            };
            let mapped = match (self.mappings[index].1)(&input) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{name}: mapping failed: {e}"));
                    continue;
                }
            };
            for problem in mapped
                .resources
                .iter()
                .flat_map(|r| self.rules.check(r, &mapped.resolved))
            {
                failures.push(format!("{name}: {problem}"));
            }
            for problem in mapped.problems {
                failures.push(format!("{name}: {problem}"));
            }

            let mut outputs: Vec<(String, String)> = mapped
                .files
                .into_iter()
                .map(|(extension, content)| (format!("{name}.{extension}"), content))
                .collect();
            let json = fhirbolt::json::to_string_pretty(&output_of(mapped.resources), None).unwrap() + "\n";
            outputs.push((format!("{name}.fhir.json"), json));

            for (file, actual) in outputs {
                let path = self.dir.join(&file);
                expected_files.push(file.clone());
                if update {
                    std::fs::write(&path, &actual).unwrap();
                    continue;
                }
                match std::fs::read(&path) {
                    Ok(expected) if expected == actual.as_bytes() => {}
                    Ok(expected) => failures.push(format!(
                        "{file}: differs from the mapping ({UPDATE_ENV}=1 to accept)\n{}",
                        first_difference(&String::from_utf8_lossy(&expected), &actual)
                    )),
                    Err(_) => failures.push(format!("{file}: missing ({UPDATE_ENV}=1 writes it)")),
                }
            }
        }

        // An expected file without an input is stale.
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !file.ends_with(&suffix) && !expected_files.contains(&file) {
                failures.push(format!("{file}: no input produces it"));
            }
        }
        failures
    }
}

/// The failures of a golden run (or of any test that collects problems), one line each.
#[derive(Debug, Default)]
#[must_use = "a golden run fails only through `assert_none`"]
pub struct Failures(Vec<String>);

impl Failures {
    /// Adds one failure.
    pub fn push(&mut self, failure: impl Into<String>) {
        self.0.push(failure.into());
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Panics listing every failure when there is any.
    pub fn assert_none(self) {
        let listing: String = self.0.iter().map(|f| format!("{f}\n")).collect();
        assert!(self.0.is_empty(), "\n{listing}");
    }
}

/// One resource as itself; none or several as a `collection` Bundle.
fn output_of(mut resources: Vec<Resource>) -> Resource {
    if resources.len() == 1 {
        return resources.remove(0);
    }
    Resource::Bundle(Box::new(Bundle {
        r#type: "collection".into(),
        entry: resources
            .into_iter()
            .map(|r| BundleEntry {
                resource: Some(r),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

/// The first line where `expected` and `actual` differ, or their line counts.
fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("  line {}:\n  expected: {e}\n  actual:   {a}", i + 1);
        }
    }
    format!(
        "  lengths differ: expected {} lines, actual {}",
        expected.lines().count(),
        actual.lines().count()
    )
}

#[cfg(test)]
mod tests {
    use crate::fhir::resources::Patient;
    use crate::fhir::types::{Meta, Reference};

    use super::*;

    const RULES: Rules = Rules {
        source: "acme",
        instants: &["lastUpdated"],
        codes: &["code"],
        unchecked: &["div"],
        meta_source: true,
        foreign_references_resolve: true,
    };

    fn patient(id: &str, general_practitioner: &str) -> Resource {
        Resource::Patient(Box::new(Patient {
            id: Some(id.into()),
            meta: Some(Box::new(Meta {
                last_updated: Some("2024-01-01T00:00:00Z".into()),
                source: Some(systems::meta_source("acme").into()),
                ..Default::default()
            })),
            general_practitioner: vec![Reference {
                reference: Some(general_practitioner.into()),
                ..Default::default()
            }],
            ..Default::default()
        }))
    }

    #[test]
    fn resources_pass_the_rules_or_say_why_not() {
        let resolved: HashSet<String> = ["Practitioner/ehr-1".to_owned()].into();
        assert_eq!(
            RULES.check(&patient("acme-1", "Practitioner/acme-2"), &resolved),
            Vec::<String>::new()
        );
        assert_eq!(
            RULES.check(&patient("acme-1", "Practitioner/ehr-1"), &resolved),
            Vec::<String>::new()
        );
        assert_eq!(
            RULES.check(&patient("other-1", "Practitioner/ehr-2"), &resolved),
            [
                "bad id Some(\"other-1\")",
                "reference \"Practitioner/ehr-2\" into another source did not resolve"
            ]
        );
        let lax = Rules {
            meta_source: false,
            foreign_references_resolve: false,
            ..RULES
        };
        assert!(
            lax.check(&patient("acme-1", "Practitioner/ehr-2"), &resolved)
                .is_empty()
        );
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("adapter-golden-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn suite(dir: &std::path::Path) -> Golden<'static> {
        Golden::new(dir, RULES).map("patient-", |input| {
            let value: Value = input.json()?;
            let id = value["id"].as_str().ok_or("no id")?;
            let mut mapped = Mapped::new(vec![patient(id, "Practitioner/acme-2")]);
            mapped.files.push(("md".into(), format!("# {}\n", input.name)));
            Ok(mapped)
        })
    }

    #[test]
    fn every_mismatch_missing_and_stale_file_is_reported() {
        let dir = scratch_dir("report");
        std::fs::write(dir.join("patient-a.acme.json"), r#"{"id": "acme-1"}"#).unwrap();
        std::fs::write(dir.join("patient-b.acme.json"), r#"{}"#).unwrap();
        std::fs::write(dir.join("visit-c.acme.json"), r#"{}"#).unwrap();
        std::fs::write(dir.join("patient-a.md"), "# something else\n").unwrap();
        std::fs::write(dir.join("gone.fhir.json"), "{}\n").unwrap();
        let failures = suite(&dir).run_with(false);
        assert_eq!(
            failures.0,
            [
                "patient-a.md: differs from the mapping (UPDATE_GOLDEN=1 to accept)\n  line 1:\n  expected: # something else\n  actual:   # patient-a",
                "patient-a.fhir.json: missing (UPDATE_GOLDEN=1 writes it)",
                "patient-b: mapping failed: no id",
                "visit-c: mapping failed: unknown prefix",
                "gone.fhir.json: no input produces it",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn matching_files_pass_and_one_resource_is_written_as_itself() {
        let dir = scratch_dir("pass");
        std::fs::write(dir.join("patient-a.acme.json"), r#"{"id": "acme-1"}"#).unwrap();
        std::fs::write(dir.join("patient-a.md"), "# patient-a\n").unwrap();
        let json = fhirbolt::json::to_string_pretty(&patient("acme-1", "Practitioner/acme-2"), None).unwrap() + "\n";
        std::fs::write(dir.join("patient-a.fhir.json"), &json).unwrap();
        let failures = suite(&dir).at_least(1).run_with(false);
        assert!(failures.is_empty(), "{failures:?}");
        failures.assert_none();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn none_or_several_resources_are_a_collection_bundle() {
        let Resource::Bundle(empty) = output_of(Vec::new()) else {
            panic!("not a Bundle")
        };
        assert!(empty.entry.is_empty());
        let two = output_of(vec![patient("acme-1", "x"), patient("acme-2", "y")]);
        let Resource::Bundle(two) = two else {
            panic!("not a Bundle")
        };
        assert_eq!(two.r#type.value.as_deref(), Some("collection"));
        assert_eq!(two.entry.len(), 2);
    }

    #[test]
    fn the_first_difference_names_its_line() {
        assert_eq!(
            first_difference("a\nb\n", "a\nc\n"),
            "  line 2:\n  expected: b\n  actual:   c"
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            "  lengths differ: expected 1 lines, actual 2"
        );
    }
}
